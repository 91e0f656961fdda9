/* kboot.crypto: random, tokens, SHA-256/HMAC, hex/base64, detached JWS, AES-256-GCM.
 * Strings in, strings out; misuse raises, failures return nil, err (runtime/crypto.c). */
#include <openssl/crypto.h>
#include <string.h>

#include "common.h"
#include "kboot/crypto.h"

#define SCRATCH_MT "kboot.crypto.scratch"

/* Scratch memory for secrets (keys, decrypted files): a userdata whose __gc wipes it, so
 * even a Lua error between filling and freeing it leaves nothing behind. */
typedef struct {
    size_t n;
    unsigned char data[];
} scratch;

static int scratch_gc(lua_State *L)
{
    scratch *s = luaL_checkudata(L, 1, SCRATCH_MT);
    OPENSSL_cleanse(s->data, s->n);
    s->n = 0; /* safe to run twice */
    return 0;
}

static unsigned char *scratch_new(lua_State *L, size_t n)
{
    scratch *s = lua_newuserdatauv(L, sizeof *s + n, 0);
    s->n = 0;
    luaL_setmetatable(L, SCRATCH_MT);
    s->n = n;
    return s->data;
}

/* Wipe now (the __gc will find nothing left to do) and drop it from the stack. */
static void scratch_done(lua_State *L, int idx)
{
    scratch *s = lua_touserdata(L, idx);
    OPENSSL_cleanse(s->data, s->n);
    s->n = 0;
    lua_remove(L, idx);
}

static size_t check_size(lua_State *L, int arg)
{
    lua_Integer n = luaL_checkinteger(L, arg);
    luaL_argcheck(L, n >= 0, arg, "size must not be negative");
    return (size_t)n;
}

static int l_random(lua_State *L)
{
    size_t n = check_size(L, 1);
    luaL_Buffer b;
    kb_err e;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, n);
    if (kb_crypto_random(p, n, &e) < 0)
        return kb_pushfail(L, &e);
    luaL_pushresultsize(&b, n);
    return 1;
}

static int l_random_string(lua_State *L)
{
    size_t n = check_size(L, 1), alen;
    const char *alphabet = luaL_optlstring(L, 2, KB_TOKEN_ALPHABET, &alen);
    luaL_argcheck(L, alen >= 1 && alen <= 256, 2, "alphabet must have 1 to 256 characters");
    luaL_Buffer b;
    kb_err e;
    char *p = luaL_buffinitsize(L, &b, n);
    if (kb_crypto_random_string(p, n, alphabet, alen, &e) < 0)
        return kb_pushfail(L, &e);
    luaL_pushresultsize(&b, n);
    return 1;
}

static int l_token(lua_State *L)
{
    char tok[KB_TOKEN_LEN + 1];
    kb_err e;
    if (kb_crypto_token(tok, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushlstring(L, tok, KB_TOKEN_LEN);
    OPENSSL_cleanse(tok, sizeof tok);
    return 1;
}

static int l_token_parse(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    kb_err e;
    if (kb_crypto_token_check(s, n, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushlstring(L, s, KB_TOKEN_ID_LEN);
    lua_pushlstring(L, s + KB_TOKEN_ID_LEN + 1, KB_TOKEN_SECRET_LEN);
    return 2;
}

static int l_token_valid(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, kb_crypto_token_check(s, n, NULL) == 0);
    return 1;
}

static int l_certificate_key(lua_State *L)
{
    unsigned char key[KB_AES256_KEY_LEN];
    char hex[2 * sizeof key + 1];
    kb_err e;
    if (kb_crypto_random(key, sizeof key, &e) < 0)
        return kb_pushfail(L, &e);
    kb_crypto_hex(key, sizeof key, hex);
    lua_pushlstring(L, hex, 2 * sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(hex, sizeof hex);
    return 1;
}

static int l_sha256(lua_State *L)
{
    size_t n;
    const char *d = luaL_checklstring(L, 1, &n);
    unsigned char md[KB_SHA256_LEN];
    kb_err e;
    if (kb_crypto_sha256(d, n, md, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushlstring(L, (const char *)md, sizeof md);
    return 1;
}

static int l_sha512_256(lua_State *L)
{
    size_t n;
    const char *d = luaL_checklstring(L, 1, &n);
    unsigned char md[KB_SHA256_LEN];
    kb_err e;
    if (kb_crypto_sha512_256(d, n, md, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushlstring(L, (const char *)md, sizeof md);
    return 1;
}

static int l_sha256_hex(lua_State *L)
{
    size_t n;
    const char *d = luaL_checklstring(L, 1, &n);
    unsigned char md[KB_SHA256_LEN];
    char hex[2 * KB_SHA256_LEN + 1];
    kb_err e;
    if (kb_crypto_sha256(d, n, md, &e) < 0)
        return kb_pushfail(L, &e);
    kb_crypto_hex(md, sizeof md, hex);
    lua_pushlstring(L, hex, 2 * sizeof md);
    return 1;
}

static int l_hmac_sha256(lua_State *L)
{
    size_t kn, n;
    const char *key = luaL_checklstring(L, 1, &kn);
    const char *d = luaL_checklstring(L, 2, &n);
    unsigned char mac[KB_SHA256_LEN];
    kb_err e;
    if (kb_crypto_hmac_sha256(key, kn, d, n, mac, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    return 1;
}

static int l_hex(lua_State *L)
{
    size_t n;
    const char *d = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, 2 * n + 1);
    kb_crypto_hex(d, n, p);
    luaL_pushresultsize(&b, 2 * n);
    return 1;
}

static int l_unhex(lua_State *L)
{
    size_t n, m = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    kb_err e;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, n / 2);
    if (kb_crypto_unhex(s, n, p, &m, &e) < 0)
        return kb_pushfail(L, &e);
    luaL_pushresultsize(&b, m);
    return 1;
}

static int encode64(lua_State *L, int url)
{
    size_t n;
    const char *d = luaL_checklstring(L, 1, &n);
    size_t len = kb_crypto_base64_len(n, url);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len + 1);
    kb_crypto_base64(d, n, p, url);
    luaL_pushresultsize(&b, len);
    return 1;
}

static int decode64(lua_State *L, int url)
{
    size_t n, m = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    kb_err e;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, kb_crypto_unbase64_max(n));
    if (kb_crypto_unbase64(s, n, p, &m, url, &e) < 0)
        return kb_pushfail(L, &e);
    luaL_pushresultsize(&b, m);
    return 1;
}

static int l_base64(lua_State *L) { return encode64(L, 0); }
static int l_unbase64(lua_State *L) { return decode64(L, 0); }
static int l_base64url(lua_State *L) { return encode64(L, 1); }
static int l_unbase64url(lua_State *L) { return decode64(L, 1); }

static int l_equal(lua_State *L)
{
    size_t an, bn;
    const char *a = luaL_checklstring(L, 1, &an);
    const char *b = luaL_checklstring(L, 2, &bn);
    lua_pushboolean(L, kb_crypto_equal(a, an, b, bn));
    return 1;
}

static int l_jws_sign(lua_State *L)
{
    size_t n, kidlen, klen;
    const char *payload = luaL_checklstring(L, 1, &n);
    const char *kid = luaL_checklstring(L, 2, &kidlen);
    const char *key = luaL_checklstring(L, 3, &klen);
    luaL_argcheck(L, kb_crypto_jws_kid_ok(kid, kidlen), 2,
                  "token id must be 1 to 256 printable ASCII characters without '\"', '\\', '<', '>', '&'");
    size_t len = kb_crypto_jws_len(kidlen);
    luaL_Buffer b;
    kb_err e;
    char *p = luaL_buffinitsize(L, &b, len + 1);
    if (kb_crypto_jws_sign(payload, n, kid, kidlen, key, klen, p, &e) < 0)
        return kb_pushfail(L, &e);
    luaL_pushresultsize(&b, len);
    return 1;
}

static int l_jws_verify(lua_State *L)
{
    size_t jlen, n, kidlen, klen;
    const char *jws = luaL_checklstring(L, 1, &jlen);
    const char *payload = luaL_checklstring(L, 2, &n);
    const char *kid = luaL_checklstring(L, 3, &kidlen);
    const char *key = luaL_checklstring(L, 4, &klen);
    kb_err e;
    if (kb_crypto_jws_verify(jws, jlen, payload, n, kid, kidlen, key, klen, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static const unsigned char *check_key32(lua_State *L, int arg)
{
    size_t n;
    const char *k = luaL_checklstring(L, arg, &n);
    if (n != KB_AES256_KEY_LEN)
        luaL_argerror(L, arg, lua_pushfstring(L, "AES-256 key must be 32 raw bytes, got %d "
                                                 "(unhex a certificate key first)", (int)n));
    return (const unsigned char *)k;
}

static int l_aes_gcm_seal(lua_State *L)
{
    const unsigned char *key = check_key32(L, 1);
    size_t n;
    const char *pt = luaL_checklstring(L, 2, &n);
    luaL_Buffer b;
    kb_err e;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, n + KB_GCM_OVERHEAD);
    if (kb_crypto_aes_gcm_seal(key, pt, n, p, &e) < 0)
        return kb_pushfail(L, &e);
    luaL_pushresultsize(&b, n + KB_GCM_OVERHEAD);
    return 1;
}

static int l_aes_gcm_open(lua_State *L)
{
    const unsigned char *key = check_key32(L, 1);
    size_t n, m = 0;
    const char *blob = luaL_checklstring(L, 2, &n);
    kb_err e;
    /* The plaintext is often a private key: decrypt into wiped scratch, not a Lua buffer.
     * A too-short blob gets an empty scratch and the runtime's error. */
    unsigned char *p = scratch_new(L, n > KB_GCM_OVERHEAD ? n - KB_GCM_OVERHEAD : 0);
    int idx = lua_gettop(L);
    if (kb_crypto_aes_gcm_open(key, blob, n, p, &m, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushlstring(L, (const char *)p, m);
    scratch_done(L, idx);
    return 1;
}

int luaopen_kboot_crypto(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "random", l_random },
        { "random_string", l_random_string },
        { "token", l_token },
        { "token_parse", l_token_parse },
        { "token_valid", l_token_valid },
        { "certificate_key", l_certificate_key },
        { "sha256", l_sha256 },
        { "sha256_hex", l_sha256_hex },
        { "sha512_256", l_sha512_256 },
        { "hmac_sha256", l_hmac_sha256 },
        { "hex", l_hex },
        { "unhex", l_unhex },
        { "base64", l_base64 },
        { "unbase64", l_unbase64 },
        { "base64url", l_base64url },
        { "unbase64url", l_unbase64url },
        { "equal", l_equal },
        { "jws_sign", l_jws_sign },
        { "jws_verify", l_jws_verify },
        { "aes_gcm_seal", l_aes_gcm_seal },
        { "aes_gcm_open", l_aes_gcm_open },
        { NULL, NULL },
    };
    if (luaL_newmetatable(L, SCRATCH_MT)) {
        lua_pushcfunction(L, scratch_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, scratch_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
