/* kboot.crypto: placeholder until the module lands. */
#include "common.h"

int luaopen_kboot_crypto(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
