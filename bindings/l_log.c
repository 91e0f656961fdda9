/* kboot.log: log.info(phase, fmt, ...) and friends; phase may be nil. */
#include <string.h>

#include "common.h"
#include "kboot/log.h"

static const char *const level_names[] = { "error", "warn", "info", "debug", "trace", NULL };

/* Format args 2.. with string.format when there is more than a message. */
static const char *message(lua_State *L)
{
    if (lua_gettop(L) <= 2)
        return luaL_tolstring(L, 2, NULL);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    lua_insert(L, 2);
    lua_call(L, lua_gettop(L) - 2, 1);
    return lua_tostring(L, -1);
}

static int write_at(lua_State *L, int level)
{
    if (level > kb_log_level())
        return 0;
    const char *phase = luaL_optstring(L, 1, NULL);
    kb_log_write(level, phase, message(L));
    return 0;
}

static int l_error(lua_State *L) { return write_at(L, KB_LOG_ERROR); }
static int l_warn(lua_State *L) { return write_at(L, KB_LOG_WARN); }
static int l_info(lua_State *L) { return write_at(L, KB_LOG_INFO); }
static int l_debug(lua_State *L) { return write_at(L, KB_LOG_DEBUG); }
static int l_trace(lua_State *L) { return write_at(L, KB_LOG_TRACE); }

/* log.line(level, text): text as it is (no phase, no tag), coloured as its level */
static int l_line(lua_State *L)
{
    int level = luaL_checkoption(L, 1, NULL, level_names);
    const char *text = luaL_checkstring(L, 2);
    if (level <= kb_log_level())
        kb_log_line(level, text);
    return 0;
}

static int l_set_level(lua_State *L)
{
    int level = lua_type(L, 1) == LUA_TNUMBER ? (int)luaL_checkinteger(L, 1)
                                             : luaL_checkoption(L, 1, NULL, level_names);
    luaL_argcheck(L, level >= KB_LOG_ERROR && level <= KB_LOG_TRACE, 1, "level 0..4 expected");
    kb_log_set_level(level);
    return 0;
}

static int l_level(lua_State *L)
{
    lua_pushinteger(L, kb_log_level());
    lua_pushstring(L, level_names[kb_log_level()]);
    return 2;
}

static int l_set_json(lua_State *L)
{
    kb_log_set_json(lua_toboolean(L, 1));
    return 0;
}

static int l_set_color(lua_State *L)
{
    static const char *const modes[] = { "auto", "never", "always", NULL };
    int m = luaL_checkoption(L, 1, "auto", modes);
    kb_log_set_color(m == 0 ? -1 : m == 1 ? 0 : 1);
    return 0;
}

int luaopen_kboot_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "error", l_error },         { "warn", l_warn },       { "info", l_info },
        { "debug", l_debug },         { "trace", l_trace },     { "set_level", l_set_level },
        { "level", l_level },         { "set_json", l_set_json }, { "set_color", l_set_color },
        { "line", l_line },
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
