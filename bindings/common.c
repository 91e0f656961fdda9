#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int err_tostring(lua_State *L)
{
    lua_getfield(L, 1, "msg");
    if (!lua_isstring(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "unknown error");
    }
    return 1;
}

/* Lets scripts write `"...: " .. err` without tostring(). */
static int err_concat(lua_State *L)
{
    luaL_tolstring(L, 1, NULL);
    luaL_tolstring(L, 2, NULL);
    lua_concat(L, 2);
    return 1;
}

static void push_errmeta(lua_State *L)
{
    if (luaL_newmetatable(L, KB_ERROR_MT)) {
        lua_pushcfunction(L, err_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, err_concat);
        lua_setfield(L, -2, "__concat");
        lua_pushliteral(L, "kboot.error");
        lua_setfield(L, -2, "__name");
    }
}

void kb_push_errobj(lua_State *L, const kb_err *e)
{
    lua_createtable(L, 0, 4);
    lua_pushstring(L, e->op);
    lua_setfield(L, -2, "op");
    lua_pushstring(L, e->msg[0] ? e->msg : "unknown error");
    lua_setfield(L, -2, "msg");
    if (e->status) {
        lua_pushinteger(L, e->status);
        lua_setfield(L, -2, "status");
    }
    if (e->code) {
        lua_pushinteger(L, e->code);
        lua_setfield(L, -2, "code");
    }
    push_errmeta(L);
    lua_setmetatable(L, -2);
}

int kb_pushfail(lua_State *L, const kb_err *e)
{
    lua_pushnil(L);
    kb_push_errobj(L, e);
    return 2;
}

int kb_fail(lua_State *L, const char *op, const char *fmt, ...)
{
    kb_err e;
    memset(&e, 0, sizeof e);
    snprintf(e.op, sizeof e.op, "%s", op);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return kb_pushfail(L, &e);
}

static int opt_field(lua_State *L, int idx, const char *k, int type)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    int t = lua_getfield(L, idx, k);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != type && !(type == LUA_TNUMBER && t == LUA_TSTRING && lua_isnumber(L, -1)))
        return luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': %s expected, got %s", k,
                                                      lua_typename(L, type), luaL_typename(L, -1)));
    return 1;
}

const char *kb_opt_string(lua_State *L, int idx, const char *k, const char *def, size_t *len)
{
    idx = lua_absindex(L, idx);
    if (!opt_field(L, idx, k, LUA_TSTRING)) {
        if (len)
            *len = def ? strlen(def) : 0;
        return def;
    }
    /* The string stays alive: it is referenced by the option table. */
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    return s;
}

lua_Integer kb_opt_integer(lua_State *L, int idx, const char *k, lua_Integer def)
{
    idx = lua_absindex(L, idx);
    if (!opt_field(L, idx, k, LUA_TNUMBER))
        return def;
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint)
        return luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': number has no integer representation", k));
    lua_pop(L, 1);
    return v;
}

lua_Number kb_opt_number(lua_State *L, int idx, const char *k, lua_Number def)
{
    idx = lua_absindex(L, idx);
    if (!opt_field(L, idx, k, LUA_TNUMBER))
        return def;
    lua_Number v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

int kb_opt_boolean(lua_State *L, int idx, const char *k, int def)
{
    idx = lua_absindex(L, idx);
    if (!opt_field(L, idx, k, LUA_TBOOLEAN))
        return def;
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* kboot.error: lets scripts make and recognise the same error objects the bindings return. */
static int l_error_new(lua_State *L)
{
    kb_err e;
    memset(&e, 0, sizeof e);
    snprintf(e.op, sizeof e.op, "%s", luaL_checkstring(L, 1));
    snprintf(e.msg, sizeof e.msg, "%s", luaL_checkstring(L, 2));
    kb_push_errobj(L, &e);
    if (lua_istable(L, 3)) { /* extra fields, e.g. status, reason */
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -4);
        }
    }
    return 1;
}

static int l_error_is(lua_State *L)
{
    int ok = 0;
    if (lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, KB_ERROR_MT);
        ok = lua_rawequal(L, -1, -2);
    }
    lua_pushboolean(L, ok);
    return 1;
}

/* wrap(op, e): e when it is a kboot.error already, else a new one with op and tostring(e), so a
 * phase that gets a plain message from a helper still returns the one error shape. */
static int l_error_wrap(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_settop(L, 2);
    if (lua_getmetatable(L, 2)) {
        luaL_getmetatable(L, KB_ERROR_MT);
        if (lua_rawequal(L, -1, -2)) {
            lua_settop(L, 2);
            return 1;
        }
    }
    lua_settop(L, 2);
    kb_err e;
    memset(&e, 0, sizeof e);
    snprintf(e.op, sizeof e.op, "%s", lua_tostring(L, 1));
    if (lua_istable(L, 2) && lua_getfield(L, 2, "msg") == LUA_TSTRING) /* a plain {msg=} table */
        snprintf(e.msg, sizeof e.msg, "%s", lua_tostring(L, -1));
    else
        snprintf(e.msg, sizeof e.msg, "%s", luaL_tolstring(L, 2, NULL));
    kb_push_errobj(L, &e);
    return 1;
}

int luaopen_kboot_error(lua_State *L)
{
    static const luaL_Reg fns[] = { { "new", l_error_new }, { "is", l_error_is }, { "wrap", l_error_wrap },
                                    { NULL, NULL } };
    luaL_newlib(L, fns);
    push_errmeta(L);
    lua_setfield(L, -2, "meta");
    return 1;
}
