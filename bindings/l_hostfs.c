/* kboot.hostfs: the admin's own files on this machine, which are never under --root: the
 * directories a config names (patch files), site script trees. Reading only; kboot.fs is for
 * what kboot writes. io.open reads a host file; this adds what Lua's io lacks. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* hostfs.list(dir) -> sorted array of names (no . and ..) | nil, err */
static int l_list(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    DIR *d = opendir(dir);
    if (!d) {
        int code = errno;
        kb_fail(L, "hostfs", "cannot list %s: %s", dir, strerror(code));
        lua_pushinteger(L, code);
        lua_setfield(L, -2, "code");
        return 2;
    }
    size_t n = 0, cap = 16;
    char **names = malloc(cap * sizeof *names);
    struct dirent *de;
    int failed = names == NULL;
    while (!failed && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            char **more = realloc(names, 2 * cap * sizeof *names);
            if (!more) {
                failed = 1;
                break;
            }
            names = more;
            cap *= 2;
        }
        if (!(names[n] = strdup(de->d_name))) {
            failed = 1;
            break;
        }
        n++;
    }
    closedir(d);
    if (failed) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return luaL_error(L, "hostfs.list: not enough memory");
    }
    qsort(names, n, sizeof *names, cmp_names);
    /* copy first, free after (an allocation error while building the table leaks the list) */
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return 1;
}

/* hostfs.stat(path) -> { type = "file" | "dir" | "other", size =, mode = } | nil, err (follows
 * symlinks: a link to a directory is a directory, as the admin means it) */
static int l_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        int code = errno;
        kb_fail(L, "hostfs", "%s: %s", path, strerror(code));
        lua_pushinteger(L, code);
        lua_setfield(L, -2, "code");
        return 2;
    }
    lua_createtable(L, 0, 3);
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : "other");
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    lua_setfield(L, -2, "mode");
    return 1;
}

/* hostfs.cwd() -> the working directory | nil, err (to make a relative path absolute) */
static int l_cwd(lua_State *L)
{
    char buf[4096];
    if (!getcwd(buf, sizeof buf)) {
        int code = errno;
        kb_fail(L, "hostfs", "cannot get the working directory: %s", strerror(code));
        lua_pushinteger(L, code);
        lua_setfield(L, -2, "code");
        return 2;
    }
    lua_pushstring(L, buf);
    return 1;
}

int luaopen_kboot_hostfs(lua_State *L)
{
    static const luaL_Reg fns[] = { { "list", l_list }, { "stat", l_stat }, { "cwd", l_cwd }, { NULL, NULL } };
    luaL_newlib(L, fns);
    return 1;
}
