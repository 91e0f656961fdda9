/* kboot.scripts: the Lua scripts this binary holds (bytecode to run, source text to read) and where
 * each would be loaded from: the override directory (--scripts DIR, KBOOT_SCRIPTS) or built in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "loader.h"

static void push_entry(lua_State *L, const struct kb_embedded *e)
{
    lua_createtable(L, 0, 5);
    lua_pushstring(L, e->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, e->path);
    lua_setfield(L, -2, "path");
    if (e->summary) {
        lua_pushstring(L, e->summary);
        lua_setfield(L, -2, "summary");
    }
    /* an entry script (`kboot init`) has no dot in its name; a library module has */
    lua_pushboolean(L, strchr(e->name, '.') == NULL);
    lua_setfield(L, -2, "command");
    lua_pushinteger(L, (lua_Integer)e->source_size);
    lua_setfield(L, -2, "size");
}

/* scripts.list() -> array of { name =, path =, summary =, command =, size = }, by path */
static int l_list(lua_State *L)
{
    lua_newtable(L);
    lua_Integer i = 0;
    for (const struct kb_embedded *e = kb_embedded_scripts; e->name; e++) {
        push_entry(L, e);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

/* scripts.source(name) -> the built-in source text | nil, err */
static int l_source(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const struct kb_embedded *e = kb_embedded_find(name);
    if (!e)
        return kb_fail(L, "scripts", "no built-in script '%s'", name);
    unsigned char *text;
    kb_err err;
    if (kb_embedded_source(e, &text, &err) < 0)
        return kb_pushfail(L, &err);
    lua_pushlstring(L, (const char *)text, e->source_size);
    free(text);
    return 1;
}

/* scripts.override_dir() -> DIR | nil */
static int l_override_dir(lua_State *L)
{
    const char *d = kb_loader_override_dir(L);
    if (d)
        lua_pushstring(L, d);
    else
        lua_pushnil(L);
    return 1;
}

/* scripts.origin(name) -> "override", file | "builtin", "scripts/..." | nil: where require(name)
 * (or `kboot name` for an entry script) loads it from */
static int l_origin(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (kb_loader_override_path(L, name)) {
        lua_pushliteral(L, "override");
        lua_insert(L, -2);
        return 2;
    }
    const struct kb_embedded *e = kb_embedded_find(name);
    if (!e) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushliteral(L, "builtin");
    lua_pushstring(L, e->path);
    return 2;
}

/* scripts.load_builtin(name) -> the built-in chunk (bytecode, whatever overrides it) | nil, err: what
 * an override loads to wrap the module it replaces */
static int l_load_builtin(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const struct kb_embedded *e = kb_embedded_find(name);
    if (!e)
        return kb_fail(L, "scripts", "no built-in script '%s'", name);
    char chunkname[256];
    snprintf(chunkname, sizeof chunkname, "=%s", e->path);
    if (luaL_loadbufferx(L, (const char *)e->bytecode, e->len, chunkname, "b") != LUA_OK)
        return kb_fail(L, "scripts", "%s", lua_tostring(L, -1));
    return 1;
}

int luaopen_kboot_scripts(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "list", l_list },     { "source", l_source },           { "override_dir", l_override_dir },
        { "origin", l_origin }, { "load_builtin", l_load_builtin }, { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
