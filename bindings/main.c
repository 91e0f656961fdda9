/* The kboot host: a Lua 5.4 state with every kboot module preloaded, running a built-in
 * script (`kboot init ...`) or a file (`kboot ./site.lua ...`). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "kboot/fs.h"
#include "kboot/log.h"
#include "loader.h"

extern int luaopen_cjson(lua_State *L);
extern int luaopen_cjson_safe(lua_State *L);
int luaopen_kboot_repl(lua_State *L);
int luaopen_kboot_scripts(lua_State *L);

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const luaL_Reg preloads[] = {
    { "kboot.error", luaopen_kboot_error },   { "kboot.log", luaopen_kboot_log },
    { "kboot.fs", luaopen_kboot_fs },         { "kboot.pki", luaopen_kboot_pki },
    { "kboot.crypto", luaopen_kboot_crypto }, { "kboot.yaml", luaopen_kboot_yaml },
    { "kboot.http", luaopen_kboot_http },     { "kboot.repl", luaopen_kboot_repl },
    { "kboot.time", luaopen_kboot_time },     { "kboot.build", luaopen_kboot_build },
    { "kboot.hostfs", luaopen_kboot_hostfs }, { "kboot.scripts", luaopen_kboot_scripts },
    { "cjson", luaopen_cjson },               { "cjson.safe", luaopen_cjson_safe },
    { "kboot.json", luaopen_cjson },          { NULL, NULL },
};

static void usage(FILE *f)
{
    fputs("Usage: kboot [-v] [--scripts DIR] COMMAND [ARGS...]\n"
          "       kboot [-v] [--scripts DIR] FILE.lua [ARGS...]\n\n"
          "kboot bootstraps Kubernetes clusters; every command is a Lua script you can read and edit.\n\n"
          "Built-in commands:\n",
          f);
    for (const struct kb_embedded *e = kb_embedded_scripts; e->name; e++) {
        if (strchr(e->name, '.'))
            continue; /* library module, not a command */
        fprintf(f, "  %-12s %s\n", e->name, e->summary ? e->summary : "");
    }
    fputs("\nOptions:\n"
          "  -v, --verbose     more output; a traceback with errors (repeat for more)\n"
          "  --v=N             verbosity as a number (0 the default): 1 or more is -v, 6 or more -vv\n"
          "  --log-format=json one JSON object per log line (also KBOOT_LOG_FORMAT=json); NO_COLOR is honoured\n"
          "  --scripts DIR     files in DIR override built-in scripts and modules of the same name\n"
          "                    (also KBOOT_SCRIPTS); DIR/kboot/certs_table.lua replaces kboot.certs_table;\n"
          "                    `kboot scripts export DIR` writes the built-in ones there, -v names each override used\n"
          "  --version         print the version\n"
          "  -h, --help        this text; `kboot help COMMAND` or `kboot COMMAND --help` for a command\n",
          f);
}

/* --v=N (the scripts take it too) as a count of -v: 1 or more is -v, 6 or more -vv; -1 when s is
 * not a number. */
static int klog_verbosity(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (!*s || *end || n < 0)
        return -1;
    return n >= 6 ? 2 : n >= 1 ? 1 : 0;
}

/* --log-format / KBOOT_LOG_FORMAT: 0 on "text" or "json", -1 otherwise. */
static int set_log_format(const char *s)
{
    if (strcmp(s, "json") != 0 && strcmp(s, "text") != 0)
        return -1;
    kb_log_set_json(strcmp(s, "json") == 0);
    return 0;
}

/* Message handler: keep error objects (tables) as they are, add a traceback to strings. */
static int msghandler(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_getfield(L, 1, "traceback");
        int has = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (!has) {
            luaL_traceback(L, L, NULL, 1);
            lua_setfield(L, 1, "traceback");
        }
        return 1;
    }
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    lua_createtable(L, 0, 2);
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "msg");
    luaL_traceback(L, L, NULL, 1);
    lua_setfield(L, -2, "traceback");
    return 1;
}

/* An error object may carry `exit` (e.g. 2 for usage errors, 0 after --help) and `msg`. */
static int report(lua_State *L)
{
    int obj = lua_gettop(L);
    int code = EXIT_FAIL;
    const char *msg;
    if (lua_type(L, obj) == LUA_TTABLE) {
        if (lua_getfield(L, obj, "exit") == LUA_TNUMBER)
            code = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (luaL_getmetafield(L, obj, "__tostring") != LUA_TNIL) {
            lua_pop(L, 1);
            msg = luaL_tolstring(L, obj, NULL);
        } else {
            lua_getfield(L, obj, "msg");
            msg = lua_tostring(L, -1);
        }
    } else {
        msg = lua_tostring(L, obj);
    }
    if (msg && *msg)
        kb_log_write(code == EXIT_OK ? KB_LOG_INFO : KB_LOG_ERROR, NULL, msg);
    if (code != EXIT_OK && kb_log_level() >= KB_LOG_DEBUG && lua_type(L, obj) == LUA_TTABLE) {
        lua_getfield(L, obj, "traceback");
        if (lua_isstring(L, -1))
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
    }
    return code;
}

struct run_args {
    int argc;
    char **argv;
    int script;      /* index of the script name in argv */
    const char *scripts_dir;
};

static int run(lua_State *L)
{
    struct run_args *a = lua_touserdata(L, 1);
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const luaL_Reg *r = preloads; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -2, r->name);
    }
    lua_pop(L, 1);
    kb_loader_install(L, a->scripts_dir);

    /* arg: [-1] = program, [0] = script, [1..] = its arguments, as lua.c does. */
    lua_createtable(L, a->argc - a->script, a->script + 1);
    for (int i = 0; i < a->argc; i++) {
        lua_pushstring(L, a->argv[i]);
        lua_rawseti(L, -2, i - a->script);
    }
    lua_setglobal(L, "arg");

    const char *name = a->argv[a->script];
    size_t n = strlen(name);
    int st;
    if (strchr(name, '/') || (n > 4 && strcmp(name + n - 4, ".lua") == 0))
        st = luaL_loadfile(L, name);
    else
        st = kb_loader_load_script(L, name);
    if (st == -1) {
        lua_pushfstring(L, "unknown command '%s' (see 'kboot --help')", name);
        lua_createtable(L, 0, 2);
        lua_insert(L, -2);
        lua_setfield(L, -2, "msg");
        lua_pushinteger(L, EXIT_USAGE);
        lua_setfield(L, -2, "exit");
        return lua_error(L);
    }
    if (st != LUA_OK)
        return lua_error(L);
    int nargs = a->argc - a->script - 1;
    luaL_checkstack(L, nargs, "too many arguments");
    for (int i = a->script + 1; i < a->argc; i++)
        lua_pushstring(L, a->argv[i]);
    lua_call(L, nargs, 1);
    /* A script may return an exit code; anything else means success. */
    int isint = 0;
    lua_Integer rc = lua_tointegerx(L, -1, &isint);
    lua_pushinteger(L, isint ? rc : EXIT_OK);
    return 1;
}

int main(int argc, char **argv)
{
    struct run_args a = { argc, argv, 0, getenv("KBOOT_SCRIPTS") };
    int verbose = 0;
    const char *fmt = getenv("KBOOT_LOG_FORMAT");
    if (fmt && *fmt && set_log_format(fmt) != 0) {
        fprintf(stderr, "kboot: KBOOT_LOG_FORMAT=%s: want text or json\n", fmt);
        return EXIT_USAGE;
    }
    int i = 1;
    for (; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "-v") == 0 || strcmp(o, "--verbose") == 0)
            verbose++;
        else if (strncmp(o, "--v=", 4) == 0 || strncmp(o, "-v=", 3) == 0) {
            int v = klog_verbosity(strchr(o, '=') + 1);
            if (v < 0) {
                fprintf(stderr, "kboot: %s: want a number (the verbosity, 0 to 10)\n", o);
                return EXIT_USAGE;
            }
            verbose = v > verbose ? v : verbose;
        } else if (strncmp(o, "--log-format=", 13) == 0 || (strcmp(o, "--log-format") == 0 && i + 1 < argc)) {
            const char *f = o[12] == '=' ? o + 13 : argv[++i];
            if (set_log_format(f) != 0) {
                fprintf(stderr, "kboot: --log-format %s: want text or json\n", f);
                return EXIT_USAGE;
            }
        } else if (strcmp(o, "-vv") == 0)
            verbose += 2;
        else if (strcmp(o, "--scripts") == 0 && i + 1 < argc)
            a.scripts_dir = argv[++i];
        else if (strncmp(o, "--scripts=", 10) == 0)
            a.scripts_dir = o + 10;
        else if (strcmp(o, "--version") == 0) {
            printf("kboot %s (%s)\n", KBOOT_VERSION, LUA_RELEASE);
            return EXIT_OK;
        } else if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else if (o[0] == '-') {
            fprintf(stderr, "kboot: unknown option '%s'\n\n", o);
            usage(stderr);
            return EXIT_USAGE;
        } else
            break;
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* An override directory that is not there would silently run the built-in scripts instead. */
    int from_env = a.scripts_dir && a.scripts_dir == getenv("KBOOT_SCRIPTS");
    if (a.scripts_dir && from_env && !*a.scripts_dir)
        a.scripts_dir = NULL;
    if (a.scripts_dir) {
        struct stat st;
        const char *why = stat(a.scripts_dir, &st) != 0 ? strerror(errno)
                          : !S_ISDIR(st.st_mode)        ? "not a directory"
                                                        : NULL;
        if (why) {
            fprintf(stderr, "kboot: %s%s: %s\n", from_env ? "KBOOT_SCRIPTS=" : "--scripts ", a.scripts_dir, why);
            return EXIT_USAGE;
        }
    }
    /* `kboot help NAME` is `kboot NAME --help`. */
    char *help_argv[3];
    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 >= argc) {
            usage(stdout);
            return EXIT_OK;
        }
        help_argv[0] = argv[0];
        help_argv[1] = argv[i + 1];
        help_argv[2] = "--help";
        a.argv = help_argv;
        a.argc = 3;
        i = 1;
    }
    a.script = i;
    kb_log_set_level(KB_LOG_INFO + verbose);

    lua_State *L = luaL_newstate();
    if (!L) {
        fputs("kboot: cannot create Lua state: not enough memory\n", stderr);
        return EXIT_FAIL;
    }
    lua_pushcfunction(L, msghandler);
    lua_pushcfunction(L, run);
    lua_pushlightuserdata(L, &a);
    int code, st = lua_pcall(L, 1, 1, 1);
    /* A batch the script left open (returned or raised inside fs.batch/fs.begin): commit it,
     * so an early exit never leaves finished files as temps. A failure turns success into 1. */
    kb_err e;
    if ((kb_fs_batch_depth() > 0 || kb_fs_batch_pending() > 0) && kb_fs_batch_close(&e) != 0) {
        kb_log_write(KB_LOG_WARN, "fs", e.msg);
        if (st == LUA_OK && lua_tointeger(L, -1) == EXIT_OK) {
            lua_pop(L, 1);
            lua_pushinteger(L, EXIT_FAIL);
        }
    }
    if (st == LUA_OK)
        code = (int)lua_tointeger(L, -1);
    else
        code = report(L);
    lua_close(L);
    return code;
}
