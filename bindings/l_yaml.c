/* kboot.yaml: YAML <-> Lua values.
 *
 * Decoding (l_yaml_decode.c) builds tables straight from libyaml's parser events, typing plain
 * scalars with kb_yaml_resolve. Encoding (l_yaml_encode.c) walks the value and feeds kboot's
 * own block emitter (include/kboot/yaml.h). This file is the module and what both share. */
#include "common.h"
#include "l_yaml.h"

void kb_yaml_box_meta(lua_State *L, const char *name, lua_CFunction release)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
}

/* yaml.ordered(t, keys): t's mapping keys are written in this order first. */
static int l_ordered(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    if (!lua_getmetatable(L, 1) || lua_rawequal(L, -1, KB_YAML_UV_MAP_MT)) {
        /* never write into the shared map_mt: give t a metatable of its own */
        lua_createtable(L, 0, 3);
        lua_pushliteral(L, "yaml.map");
        lua_setfield(L, -2, "__name");
        lua_pushliteral(L, "object");
        lua_setfield(L, -2, "__jsontype");
        lua_pushvalue(L, -1);
        lua_setmetatable(L, 1);
    } else if (lua_rawequal(L, -1, KB_YAML_UV_ARRAY_MT)) {
        return luaL_argerror(L, 1, "a sequence has no key order");
    }
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "__order");
    lua_settop(L, 1);
    return 1;
}

/* cjson.empty_array_mt when this cjson has one (2.1.0.x forks do), so both encoders agree. */
static void push_array_mt(lua_State *L)
{
    int top = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1) &&
        lua_getfield(L, -1, "empty_array_mt") == LUA_TTABLE) {
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
        return;
    }
    lua_settop(L, top);
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "yaml.array");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
}

int luaopen_kboot_yaml(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "decode", kb_yaml_l_decode }, { "decode_all", kb_yaml_l_decode_all },
        { "encode", kb_yaml_l_encode }, { "encode_all", kb_yaml_l_encode_all },
        { "ordered", l_ordered },       { NULL, NULL },
    };
    kb_yaml_decode_open(L);
    kb_yaml_encode_open(L);
    luaL_newlibtable(L, fns);
    push_array_mt(L);
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "yaml.map");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__jsontype");
    lua_pushvalue(L, -2);
    lua_setfield(L, -4, "array_mt");
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "map_mt");
    luaL_setfuncs(L, fns, 2);
    lua_pushlightuserdata(L, NULL); /* the same value as cjson.null */
    lua_setfield(L, -2, "null");
    return 1;
}
