/* kboot.pki: private and public keys (generate, batch, load, PEM, pins). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "l_pki.h"

/* ---- keys ---- */

/* name's algorithm, or an argument error on arg; what names the list element if any. */
static int alg_of(lua_State *L, int arg, const char *name, const char *what)
{
    int alg = kb_pki_alg_parse(name);
    if (alg < 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "%sunknown key algorithm '%s' (want RSA-2048, RSA-3072, "
                                              "RSA-4096, ECDSA-P256, ECDSA-P384, ED25519)", what, name));
    return alg;
}

static int check_alg(lua_State *L, int i)
{
    return alg_of(L, i, luaL_optstring(L, i, "RSA-2048"), "");
}

static int l_generate_key(lua_State *L)
{
    int alg = check_alg(L, 1);
    keybox *b = pki_newkey(L);
    kb_err e;
    if (!(b->k = kb_pki_keygen(alg, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int l_generate_batch(lua_State *L)
{
    size_t n;
    int *algs;
    if (lua_istable(L, 1)) {
        n = lua_rawlen(L, 1);
        luaL_argcheck(L, n <= 100000, 1, "at most 100000 keys");
        algs = lua_newuserdatauv(L, (n ? n : 1) * sizeof *algs, 0);
        for (size_t i = 0; i < n; i++) {
            char what[32];
            snprintf(what, sizeof what, "[%d]: ", (int)i + 1);
            if (lua_rawgeti(L, 1, (lua_Integer)i + 1) != LUA_TSTRING)
                luaL_argerror(L, 1, lua_pushfstring(L, "%sstring expected, got %s", what, luaL_typename(L, -1)));
            algs[i] = alg_of(L, 1, lua_tostring(L, -1), what);
            lua_pop(L, 1);
        }
    } else {
        lua_Integer cnt = luaL_checkinteger(L, 1);
        luaL_argcheck(L, cnt >= 0 && cnt <= 100000, 1, "count must be 0..100000");
        n = (size_t)cnt;
        int alg = check_alg(L, 2);
        algs = lua_newuserdatauv(L, (n ? n : 1) * sizeof *algs, 0);
        for (size_t i = 0; i < n; i++)
            algs[i] = alg;
    }
    /* Every box exists before any key does, so a Lua memory error cannot leak a key. */
    EVP_PKEY **keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        pki_newkey(L);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    kb_err e;
    if (kb_pki_keygen_batch(algs, n, keys, 0, &e) < 0)
        return kb_pushfail(L, &e);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        ((keybox *)lua_touserdata(L, -1))->k = keys[i];
        lua_pop(L, 1);
    }
    return 1;
}

static int key_type(lua_State *L)
{
    lua_pushstring(L, kb_pki_key_type(pki_checkkey(L, 1)));
    return 1;
}

static int key_bits(lua_State *L)
{
    lua_pushinteger(L, kb_pki_key_bits(pki_checkkey(L, 1)));
    return 1;
}

static int key_curve(lua_State *L)
{
    const char *c = kb_pki_key_curve(pki_checkkey(L, 1));
    c ? lua_pushstring(L, c) : lua_pushnil(L);
    return 1;
}

static int key_algorithm(lua_State *L)
{
    const char *a = kb_pki_alg_name(kb_pki_key_alg(pki_checkkey(L, 1)));
    a ? lua_pushstring(L, a) : lua_pushnil(L);
    return 1;
}

static int key_pem(lua_State *L)
{
    static const char *const fmts[] = { "pkcs8", "traditional", NULL };
    EVP_PKEY *k = pki_checkkey(L, 1);
    int fmt = luaL_checkoption(L, 2, "pkcs8", fmts) == 0 ? KB_KEY_PKCS8 : KB_KEY_TRADITIONAL;
    luaL_argcheck(L, !(fmt == KB_KEY_TRADITIONAL && EVP_PKEY_is_a(k, "ED25519")), 2,
                  "Ed25519 keys have no traditional PEM form, use pkcs8");
    kb_err e;
    size_t len = 0;
    char *pem = kb_pki_key_pem(k, fmt, &len, &e);
    if (!pem)
        return kb_pushfail(L, &e);
    lua_pushlstring(L, pem, len);
    kb_pki_secret_free(pem, len);
    return 1;
}

static int key_public_pem(lua_State *L)
{
    kb_err e;
    size_t len = 0;
    char *pem = kb_pki_key_public_pem(pki_checkkey(L, 1), &len, &e);
    return pki_push_owned(L, pem, len, &e);
}

static int key_is_private(lua_State *L)
{
    lua_pushboolean(L, kb_pki_key_is_private(pki_checkkey(L, 1)));
    return 1;
}

/* The public key of a key, certificate or CSR argument. */
static EVP_PKEY *any_pubkey(lua_State *L, int i)
{
    keybox *kb = luaL_testudata(L, i, KEY_MT);
    if (kb)
        return pki_checkkey(L, i);
    if (luaL_testudata(L, i, CERT_MT))
        return X509_get0_pubkey(pki_checkcert(L, i));
    if (luaL_testudata(L, i, CSR_MT))
        return X509_REQ_get0_pubkey(pki_checkcsr(L, i));
    luaL_typeerror(L, i, "kboot.pki.key, kboot.pki.cert or kboot.pki.csr");
    return NULL;
}

static int key_matches(lua_State *L)
{
    EVP_PKEY *k = pki_checkkey(L, 1), *other = any_pubkey(L, 2);
    lua_pushboolean(L, other && kb_pki_key_eq(k, other));
    return 1;
}

int pki_push_key_pin(lua_State *L, EVP_PKEY *k)
{
    char pin[KB_PIN_LEN];
    kb_err e;
    if (kb_pki_key_pin(k, pin, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushstring(L, pin);
    return 1;
}

int pki_key_spki_pin(lua_State *L) { return pki_push_key_pin(L, pki_checkkey(L, 1)); }

int pki_key_tostring(lua_State *L)
{
    keybox *b = luaL_checkudata(L, 1, KEY_MT);
    if (!b->k) {
        lua_pushliteral(L, "kboot.pki.key (closed)");
        return 1;
    }
    const char *alg = kb_pki_alg_name(kb_pki_key_alg(b->k));
    const char *what = kb_pki_key_is_private(b->k) ? "private" : "public";
    if (alg)
        lua_pushfstring(L, "kboot.pki.key: %s %s", alg, what);
    else
        lua_pushfstring(L, "kboot.pki.key: %s-%d %s", kb_pki_key_type(b->k), kb_pki_key_bits(b->k), what);
    return 1;
}

static int l_load_key(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    keybox *b = pki_newkey(L);
    kb_err e;
    if (!(b->k = kb_pki_load_key(pem, len, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

const luaL_Reg pki_key_methods[] = {
    { "type", key_type },       { "bits", key_bits },           { "curve", key_curve },
    { "algorithm", key_algorithm }, { "pem", key_pem },         { "public_pem", key_public_pem },
    { "is_private", key_is_private }, { "matches", key_matches }, { "spki_pin", pki_key_spki_pin },
    { NULL, NULL },
};

const luaL_Reg pki_key_fns[] = {
    { "generate_key", l_generate_key }, { "generate_batch", l_generate_batch },
    { "load_key", l_load_key },         { NULL, NULL },
};
