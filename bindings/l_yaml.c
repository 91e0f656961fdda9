/* kboot.yaml: placeholder until the module lands. */
#include "common.h"

int luaopen_kboot_yaml(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
