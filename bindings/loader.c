#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kboot/gzip.h"
#include "kboot/log.h"
#include "loader.h"

#define OVERRIDE_KEY "kboot.loader.override"

const struct kb_embedded *kb_embedded_find(const char *name)
{
    for (const struct kb_embedded *e = kb_embedded_scripts; e->name; e++)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

const char *kb_loader_override_dir(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, OVERRIDE_KEY);
    const char *d = lua_tostring(L, -1); /* kept alive by the registry */
    lua_pop(L, 1);
    return d;
}

/* "kboot.components.etcd" -> DIR/kboot/components/etcd.lua, if it exists. */
int kb_loader_override_path(lua_State *L, const char *name)
{
    const char *dir = kb_loader_override_dir(L);
    if (!dir)
        return 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, dir);
    luaL_addchar(&b, '/');
    for (const char *p = name; *p; p++)
        luaL_addchar(&b, *p == '.' ? '/' : *p);
    luaL_addstring(&b, ".lua");
    luaL_pushresult(&b);
    struct stat st;
    if (stat(lua_tostring(L, -1), &st) == 0 && S_ISREG(st.st_mode))
        return 1;
    lua_pop(L, 1);
    return 0;
}

/* Leaves the loaded chunk (or an error message) on the stack; returns the lua_load status. */
static int load_named(lua_State *L, const char *name)
{
    if (kb_loader_override_path(L, name)) {
        /* Source text only: Lua does not verify bytecode, so a binary chunk could crash kboot. */
        const char *path = lua_tostring(L, -1);
        if (kb_log_level() >= KB_LOG_DEBUG) {
            /* -v: which modules come from the override directory */
            char line[600];
            snprintf(line, sizeof line, "%s from %s%s", name, path,
                     kb_embedded_find(name) ? " (overrides the built-in)" : " (not a built-in module)");
            kb_log_write(KB_LOG_DEBUG, "scripts", line);
        }
        int st = luaL_loadfilex(L, path, "t");
        size_t n = strlen(path);
        const char *msg = lua_tostring(L, -1);
        if (st != LUA_OK && msg && (strncmp(msg, path, n) != 0 || msg[n] != ':')) {
            lua_pushfstring(L, "%s: %s", path, msg); /* "attempt to load a binary chunk" names no file */
            lua_replace(L, -2);
        }
        lua_remove(L, -2);
        return st;
    }
    const struct kb_embedded *e = kb_embedded_find(name);
    if (!e) {
        lua_pushfstring(L, "no built-in script '%s'", name);
        return -1;
    }
    /* The chunk name stored in the bytecode wins; this one only names the chunk in load errors. */
    char chunkname[256];
    snprintf(chunkname, sizeof chunkname, "=%s", e->path);
    return luaL_loadbufferx(L, (const char *)e->bytecode, e->len, chunkname, "b");
}

static int searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int st = load_named(L, name);
    if (st == -1) {
        lua_pushfstring(L, "no embedded kboot module '%s'", name);
        return 1;
    }
    /* One line that keeps the file:line (Lua's own "...:\n\t..." loses it where only the first line
     * of an error is shown, as a phase's error is without -v). */
    if (st != LUA_OK)
        return luaL_error(L, "error loading module '%s': %s", name, lua_tostring(L, -1));
    lua_pushstring(L, name);
    return 2;
}

void kb_loader_install(lua_State *L, const char *dir)
{
    if (dir) {
        lua_pushstring(L, dir);
        lua_setfield(L, LUA_REGISTRYINDEX, OVERRIDE_KEY);
    }
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    /* Shift searchers[2..n] up and put ours at 2, right after package.preload. */
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = n; i >= 2; i--) {
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, searcher);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
}

int kb_loader_load_script(lua_State *L, const char *name)
{
    if (strchr(name, '.') || strchr(name, '/')) {
        lua_pushfstring(L, "no built-in script '%s'", name);
        return -1;
    }
    return load_named(L, name);
}

int kb_embedded_source(const struct kb_embedded *e, unsigned char **text, kb_err *err)
{
    unsigned char *buf = malloc(e->source_size + 1);
    if (!buf)
        return kb_err_set(err, "scripts", "out of memory");
    if (e->source_gz) {
        if (kb_gunzip(e->source, e->source_len, buf, e->source_size, err) < 0) {
            free(buf);
            return -1;
        }
    } else {
        memcpy(buf, e->source, e->source_size);
    }
    buf[e->source_size] = 0;
    *text = buf;
    return 0;
}
