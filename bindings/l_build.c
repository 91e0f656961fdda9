/* kboot.build: what this binary is and what it runs with: kboot's version, the Lua it was built
 * against, and the versions of the C libraries as loaded now (which may be newer than the headers
 * it was compiled with: shared libraries are upgraded under a binary). */
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <yaml.h>

#include "common.h"
#include "kboot/http.h"

#ifndef KBOOT_VERSION
#define KBOOT_VERSION "0"
#endif

/* openssl() -> "OpenSSL 3.0.17 1 Jul 2025", "3.0.17" (the library loaded, not the headers) */
static int l_openssl(lua_State *L)
{
    lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
    lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION_STRING));
    return 2;
}

/* libyaml() -> "0.2.5" */
static int l_libyaml(lua_State *L)
{
    lua_pushstring(L, yaml_get_version_string());
    return 1;
}

/* libcurl() -> "7.88.1", "OpenSSL/3.0.17" | nil, err: loads libcurl, as the first http client does. */
static int l_libcurl(lua_State *L)
{
    const char *version, *ssl;
    kb_err e;
    if (kb_http_curl_version(&version, &ssl, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushstring(L, version);
    if (ssl)
        lua_pushstring(L, ssl);
    else
        lua_pushnil(L);
    return 2;
}

int luaopen_kboot_build(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "openssl", l_openssl }, { "libyaml", l_libyaml }, { "libcurl", l_libcurl }, { NULL, NULL },
    };
    luaL_newlib(L, fns);
    lua_pushliteral(L, KBOOT_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua");
    /* the OpenSSL headers of the build, to tell a library upgraded under the binary (yaml.h has
     * no version macro; libcurl's headers are not used by the bindings) */
    lua_pushliteral(L, OPENSSL_VERSION_TEXT);
    lua_setfield(L, -2, "openssl_headers");
    return 1;
}
