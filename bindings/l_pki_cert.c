/* kboot.pki: certificates (self-signed CA, sign, sign a CSR, load, info, verify). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "l_pki.h"

/* ---- certificates ---- */

static int l_self_signed_ca(lua_State *L)
{
    EVP_PKEY *k = pki_checkkey(L, 1);
    struct kb_cert_spec s;
    int is_ca = 1;
    if (lua_istable(L, 2))
        pki_optbool(L, 2, 2, "is_ca", &is_ca);
    luaL_argcheck(L, is_ca, 2, "spec.is_ca: a self-signed CA is always a CA");
    pki_check_spec(L, 2, &s, 0);
    s.defer_key = 1;
    certbox *b = pki_newcert(L);
    kb_err e;
    if (!(b->x = kb_pki_self_signed_ca(k, &s, &e)))
        return kb_pushfail(L, &e);
    b->deferred = 1;
    return 1;
}

static int l_sign(lua_State *L)
{
    struct kb_cert_spec s;
    pki_check_spec(L, 1, &s, 0);
    EVP_PKEY *sub = pki_checkkey(L, 2);
    X509 *ca = pki_rawcert(L, 3);
    EVP_PKEY *cak = pki_checkkey(L, 4);
    s.defer_key = 1;
    certbox *b = pki_newcert(L);
    kb_err e;
    if (!(b->x = kb_pki_sign(&s, sub, ca, cak, &e)))
        return kb_pushfail(L, &e);
    b->deferred = 1;
    return 1;
}

static int l_sign_csr(lua_State *L)
{
    X509_REQ *r = pki_checkcsr(L, 1);
    struct kb_cert_spec s;
    pki_check_spec(L, 2, &s, 0);
    X509 *ca = pki_rawcert(L, 3);
    EVP_PKEY *cak = pki_checkkey(L, 4);
    s.defer_key = 1;
    certbox *b = pki_newcert(L);
    kb_err e;
    if (!(b->x = kb_pki_sign_csr(&s, r, ca, cak, &e)))
        return kb_pushfail(L, &e);
    b->deferred = 1;
    return 1;
}

static int l_load_cert(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    certbox *b = pki_newcert(L);
    kb_err e;
    if (!(b->x = kb_pki_load_cert(pem, len, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int l_load_certs(lua_State *L)
{
    size_t len, n;
    const char *pem = luaL_checklstring(L, 1, &len);
    guard *g = pki_newguard(L, pki_free_certs);
    X509 **all;
    kb_err e;
    if (kb_pki_load_certs(pem, len, &all, &n, &e) < 0)
        return kb_pushfail(L, &e);
    g->p = all;
    g->n = n;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        certbox *b = pki_newcert(L);
        b->x = all[i];
        all[i] = NULL;
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int cert_pem(lua_State *L)
{
    kb_err e;
    size_t len = 0;
    char *pem = kb_pki_cert_pem(pki_rawcert(L, 1), &len, &e);
    return pki_push_owned(L, pem, len, &e);
}

static int cert_der(lua_State *L)
{
    kb_err e;
    size_t len = 0;
    char *der = (char *)kb_pki_cert_der(pki_rawcert(L, 1), &len, &e);
    return pki_push_owned(L, der, len, &e);
}

static int cert_info(lua_State *L)
{
    X509 *x = pki_checkcert(L, 1);
    lua_createtable(L, 0, 24);
    int t = lua_gettop(L);
    pki_push_name(L, X509_get_subject_name(x), "subject", "subject_string");
    pki_push_name(L, X509_get_issuer_name(x), "issuer", "issuer_string");
    struct kb_cert_info ci;
    kb_err e;
    if (kb_pki_cert_info(x, &ci, &e) < 0) {
        kb_pki_cert_info_free(&ci);
        return luaL_error(L, "%s", e.msg);
    }
    pki_set_str(L, "serial", ci.serial_hex);
    pki_set_int(L, "not_before", ci.not_before);
    pki_set_int(L, "not_after", ci.not_after);
    lua_pushboolean(L, ci.is_ca);
    lua_setfield(L, t, "is_ca");
    if (ci.path_len >= 0)
        pki_set_int(L, "path_len", ci.path_len);
    pki_set_str(L, "signature_algorithm", ci.sig_alg);
    pki_set_str(L, "ski", ci.ski_hex);
    pki_set_str(L, "aki", ci.aki_hex);
    pki_set_int(L, "version", ci.version);
    kb_pki_cert_info_free(&ci);
    lua_newtable(L);
    lua_setfield(L, t, "dns");
    lua_newtable(L);
    lua_setfield(L, t, "ip");
    struct filler f = { L, t, 0 };
    kb_pki_cert_sans(x, pki_san_field, &f);

    int present;
    unsigned ku = kb_pki_cert_usages(x, &present), bit;
    lua_newtable(L);
    const char *name;
    for (size_t i = 0; (name = kb_pki_usage_name(i, &bit)); i++)
        if (ku & bit) {
            lua_pushstring(L, name);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        }
    lua_setfield(L, t, "usages");
    int nids[32];
    size_t n = kb_pki_cert_ekus(x, nids, 32);
    lua_newtable(L);
    for (size_t i = 0; i < n; i++) {
        const char *en = NULL;
        int nid;
        for (size_t j = 0; (name = kb_pki_eku_name(j, &nid)); j++)
            if (nid == nids[i])
                en = name;
        lua_pushstring(L, en ? en : kb_pki_nid_name(nids[i]));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, t, "ext_key_usages");

    pki_push_keyinfo(L, X509_get0_pubkey(x));
    char pin[KB_PIN_LEN];
    if (kb_pki_cert_pin(x, pin, NULL) == 0)
        pki_set_str(L, "spki_pin", pin);
    return 1;
}

int pki_cert_spki_pin(lua_State *L)
{
    char pin[KB_PIN_LEN];
    kb_err e;
    if (kb_pki_cert_pin(pki_rawcert(L, 1), pin, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushstring(L, pin);
    return 1;
}

static int cert_public_key(lua_State *L)
{
    X509 *x = pki_checkcert(L, 1);
    keybox *b = pki_newkey(L);
    kb_err e;
    EVP_PKEY *k = X509_get0_pubkey(x);
    if (!k)
        return kb_fail(L, "public_key", "certificate has no usable public key");
    if (!(b->k = kb_pki_public_copy(k, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int cert_verify(lua_State *L)
{
    X509 *x = pki_checkcert(L, 1);
    lua_Integer t = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        t = kb_opt_integer(L, 3, "time", 0);
    }
    size_t n = 1;
    X509 **cas;
    if (lua_istable(L, 2)) {
        n = lua_rawlen(L, 2);
        luaL_argcheck(L, n > 0, 2, "empty CA list");
        cas = lua_newuserdatauv(L, n * sizeof *cas, 0);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, 2, (lua_Integer)i + 1);
            if (!luaL_testudata(L, -1, CERT_MT))
                luaL_argerror(L, 2, lua_pushfstring(L, "CA list[%d]: kboot.pki.cert expected", (int)i + 1));
            cas[i] = pki_checkcert(L, lua_gettop(L));
            lua_pop(L, 1);
        }
    } else {
        cas = lua_newuserdatauv(L, sizeof *cas, 0);
        cas[0] = pki_checkcert(L, 2);
    }
    kb_err e;
    if (kb_pki_verify(x, cas, n, t, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int cert_issued_by(lua_State *L)
{
    lua_pushboolean(L, kb_pki_issued_by(pki_checkcert(L, 1), pki_checkcert(L, 2)));
    return 1;
}

static int cert_expires_in(lua_State *L)
{
    lua_pushinteger(L, kb_pki_cert_not_after(pki_rawcert(L, 1)) - (lua_Integer)time(NULL));
    return 1;
}

int pki_cert_eq(lua_State *L)
{
    certbox *a = luaL_checkudata(L, 1, CERT_MT), *b = luaL_checkudata(L, 2, CERT_MT);
    lua_pushboolean(L, a->x && b->x && X509_cmp(a->x, b->x) == 0);
    return 1;
}

int pki_cert_tostring(lua_State *L)
{
    certbox *b = luaL_checkudata(L, 1, CERT_MT);
    char *s = b->x ? kb_pki_name_string(X509_get_subject_name(b->x)) : NULL;
    lua_pushfstring(L, "kboot.pki.cert: %s", b->x ? (s ? s : "?") : "(closed)");
    free(s);
    return 1;
}

const luaL_Reg pki_cert_methods[] = {
    { "pem", cert_pem },         { "der", cert_der },             { "info", cert_info },
    { "spki_pin", pki_cert_spki_pin }, { "public_key", cert_public_key }, { "verify", cert_verify },
    { "issued_by", cert_issued_by }, { "expires_in", cert_expires_in }, { NULL, NULL },
};

const luaL_Reg pki_cert_fns[] = {
    { "self_signed_ca", l_self_signed_ca }, { "sign", l_sign },           { "sign_csr", l_sign_csr },
    { "load_cert", l_load_cert },           { "load_certs", l_load_certs }, { NULL, NULL },
};
