/* kboot.time: monotonic now, sleep, Go durations (runtime/clock.c). */
#include <math.h>

#include "common.h"
#include "kboot/clock.h"

static int l_now(lua_State *L)
{
    lua_pushnumber(L, kb_clock_monotonic());
    return 1;
}

static int l_sleep(lua_State *L)
{
    kb_clock_sleep(luaL_checknumber(L, 1));
    return 0;
}

/* parse_duration(s) -> seconds (an integer when whole) | nil, err */
static int l_parse_duration(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING) {
        lua_pushnil(L);
        lua_pushstring(L, "a duration must be a string such as \"24h0m0s\"");
        return 2;
    }
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    double v;
    char err[160];
    if (kb_duration_parse(s, len, &v, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_Integer i;
    if (v == floor(v) && lua_numbertointeger(v, &i))
        lua_pushinteger(L, i);
    else
        lua_pushnumber(L, v);
    return 1;
}

/* format_duration(seconds) -> "25h1m1s" (whole seconds, rounded down) */
static int l_format_duration(lua_State *L)
{
    lua_Number n = luaL_checknumber(L, 1);
    luaL_argcheck(L, fabs(n) < 9.2e18, 1, "out of range");
    char buf[64];
    kb_duration_format((long long)floor(n), buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

int luaopen_kboot_time(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "now", l_now },
        { "sleep", l_sleep },
        { "parse_duration", l_parse_duration },
        { "format_duration", l_format_duration },
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
