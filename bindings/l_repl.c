/* kboot.repl: placeholder until the module lands. */
#include "common.h"

int luaopen_kboot_repl(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
