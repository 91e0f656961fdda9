/* kboot.pki: certificate signing requests (create, load, info). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "l_pki.h"

/* ---- CSRs ---- */

static int l_csr(lua_State *L)
{
    EVP_PKEY *k = pki_checkkey(L, 1);
    struct kb_cert_spec s;
    pki_check_spec(L, 2, &s, 1);
    csrbox *b = pki_newcsr(L);
    kb_err e;
    if (!(b->r = kb_pki_csr(k, &s, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int l_load_csr(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    csrbox *b = pki_newcsr(L);
    kb_err e;
    if (!(b->r = kb_pki_load_csr(pem, len, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int csr_pem(lua_State *L)
{
    kb_err e;
    size_t len = 0;
    char *pem = kb_pki_csr_pem(pki_checkcsr(L, 1), &len, &e);
    return pki_push_owned(L, pem, len, &e);
}

static int csr_info(lua_State *L)
{
    X509_REQ *r = pki_checkcsr(L, 1);
    lua_createtable(L, 0, 10);
    int t = lua_gettop(L);
    pki_push_name(L, X509_REQ_get_subject_name(r), "subject", "subject_string");
    lua_newtable(L);
    lua_setfield(L, t, "dns");
    lua_newtable(L);
    lua_setfield(L, t, "ip");
    struct filler f = { L, t, 0 };
    kb_pki_csr_sans(r, pki_san_field, &f);
    pki_push_keyinfo(L, X509_REQ_get0_pubkey(r));
    pki_set_str(L, "signature_algorithm", kb_pki_csr_sig_alg(r));
    return 1;
}

static int csr_public_key(lua_State *L)
{
    X509_REQ *r = pki_checkcsr(L, 1);
    keybox *b = pki_newkey(L);
    kb_err e;
    EVP_PKEY *k = X509_REQ_get0_pubkey(r);
    if (!k)
        return kb_fail(L, "public_key", "CSR has no usable public key");
    if (!(b->k = kb_pki_public_copy(k, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

int pki_csr_tostring(lua_State *L)
{
    csrbox *b = luaL_checkudata(L, 1, CSR_MT);
    char *s = b->r ? kb_pki_name_string(X509_REQ_get_subject_name(b->r)) : NULL;
    lua_pushfstring(L, "kboot.pki.csr: %s", b->r ? (s ? s : "?") : "(closed)");
    free(s);
    return 1;
}

const luaL_Reg pki_csr_methods[] = {
    { "pem", csr_pem }, { "info", csr_info }, { "public_key", csr_public_key }, { NULL, NULL },
};

const luaL_Reg pki_csr_fns[] = {
    { "csr", l_csr }, { "load_csr", l_load_csr }, { NULL, NULL },
};
