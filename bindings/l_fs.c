/* kboot.fs: placeholder until the module lands. */
#include "common.h"

int luaopen_kboot_fs(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
