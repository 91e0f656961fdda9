/* kboot.pki: keys, certificates, CSRs and PEM (runtime/pki*.c). Argument checking and
 * conversion only; one userdata type per OpenSSL type. */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "kboot/pki.h"

#define KEY_MT "kboot.pki.key"
#define CERT_MT "kboot.pki.cert"
#define CSR_MT "kboot.pki.csr"

typedef struct { EVP_PKEY *k; } keybox;
/* deferred: issued here with defer_key, the key object not decoded yet (see checkcert). */
typedef struct { X509 *x; int deferred; } certbox;
typedef struct { X509_REQ *r; } csrbox;

/* ---- boxes: zeroed and with their metatable before the OpenSSL object exists ---- */

static keybox *newkey(lua_State *L)
{
    keybox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->k = NULL;
    luaL_setmetatable(L, KEY_MT);
    return b;
}

static certbox *newcert(lua_State *L)
{
    certbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->x = NULL;
    b->deferred = 0;
    luaL_setmetatable(L, CERT_MT);
    return b;
}

static csrbox *newcsr(lua_State *L)
{
    csrbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->r = NULL;
    luaL_setmetatable(L, CSR_MT);
    return b;
}

static EVP_PKEY *checkkey(lua_State *L, int i)
{
    keybox *b = luaL_checkudata(L, i, KEY_MT);
    luaL_argcheck(L, b->k, i, "key is closed");
    return b->k;
}

/* The certificate as it is: enough for its bytes, and as the CA of sign / sign_csr. */
static X509 *rawcert(lua_State *L, int i)
{
    certbox *b = luaL_checkudata(L, i, CERT_MT);
    luaL_argcheck(L, b->x, i, "certificate is closed");
    return b->x;
}

/* The certificate with its public key object, for anything that reads the key. Certificates
 * issued here have it decoded on first use only: most are just written out. */
static X509 *checkcert(lua_State *L, int i)
{
    certbox *b = luaL_checkudata(L, i, CERT_MT);
    luaL_argcheck(L, b->x, i, "certificate is closed");
    if (b->deferred) {
        kb_err e;
        b->deferred = 0;
        if (!(b->x = kb_pki_cert_complete(b->x, &e)))
            luaL_error(L, "%s", e.msg); /* out of memory: the certificate came from kb_pki_sign */
    }
    return b->x;
}

static X509_REQ *checkcsr(lua_State *L, int i)
{
    csrbox *b = luaL_checkudata(L, i, CSR_MT);
    luaL_argcheck(L, b->r, i, "CSR is closed");
    return b->r;
}

/* One free function per type, for both __gc and __close; safe to call twice.
 * EVP_PKEY_free cleanses private key material itself. */
static int key_free(lua_State *L)
{
    keybox *b = luaL_checkudata(L, 1, KEY_MT);
    EVP_PKEY_free(b->k);
    b->k = NULL;
    return 0;
}

static int cert_free(lua_State *L)
{
    certbox *b = luaL_checkudata(L, 1, CERT_MT);
    X509_free(b->x);
    b->x = NULL;
    return 0;
}

static int csr_free(lua_State *L)
{
    csrbox *b = luaL_checkudata(L, 1, CSR_MT);
    X509_REQ_free(b->r);
    b->r = NULL;
    return 0;
}

/* A guard owns runtime memory while Lua pushes (which can raise a memory error) run:
 * its __gc releases whatever the caller has not taken yet. */
#define GUARD_MT "kboot.pki.guard"
typedef struct { void (*fn)(void *, size_t); void *p; size_t n; } guard;

static guard *newguard(lua_State *L, void (*fn)(void *, size_t))
{
    guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->fn = fn;
    g->p = NULL;
    g->n = 0;
    luaL_setmetatable(L, GUARD_MT);
    return g;
}

static int guard_free(lua_State *L)
{
    guard *g = luaL_checkudata(L, 1, GUARD_MT);
    if (g->p)
        g->fn(g->p, g->n);
    g->p = NULL;
    return 0;
}

static void free_certs(void *p, size_t n)
{
    X509 **all = p;
    for (size_t i = 0; i < n; i++)
        X509_free(all[i]);
    free(all);
}

static void free_blocks(void *p, size_t n) { kb_pki_pem_free(p, n); }

/* Push a malloc'd string and free it; on NULL push the error instead. */
static int push_owned(lua_State *L, char *s, size_t len, const kb_err *e)
{
    if (!s)
        return kb_pushfail(L, e);
    lua_pushlstring(L, s, len);
    free(s);
    return 1;
}

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
    keybox *b = newkey(L);
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
        newkey(L);
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
    lua_pushstring(L, kb_pki_key_type(checkkey(L, 1)));
    return 1;
}

static int key_bits(lua_State *L)
{
    lua_pushinteger(L, kb_pki_key_bits(checkkey(L, 1)));
    return 1;
}

static int key_curve(lua_State *L)
{
    const char *c = kb_pki_key_curve(checkkey(L, 1));
    c ? lua_pushstring(L, c) : lua_pushnil(L);
    return 1;
}

static int key_algorithm(lua_State *L)
{
    const char *a = kb_pki_alg_name(kb_pki_key_alg(checkkey(L, 1)));
    a ? lua_pushstring(L, a) : lua_pushnil(L);
    return 1;
}

static int key_pem(lua_State *L)
{
    static const char *const fmts[] = { "pkcs8", "traditional", NULL };
    EVP_PKEY *k = checkkey(L, 1);
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
    char *pem = kb_pki_key_public_pem(checkkey(L, 1), &len, &e);
    return push_owned(L, pem, len, &e);
}

static int key_is_private(lua_State *L)
{
    lua_pushboolean(L, kb_pki_key_is_private(checkkey(L, 1)));
    return 1;
}

/* The public key of a key, certificate or CSR argument. */
static EVP_PKEY *any_pubkey(lua_State *L, int i)
{
    keybox *kb = luaL_testudata(L, i, KEY_MT);
    if (kb)
        return checkkey(L, i);
    if (luaL_testudata(L, i, CERT_MT))
        return X509_get0_pubkey(checkcert(L, i));
    if (luaL_testudata(L, i, CSR_MT))
        return X509_REQ_get0_pubkey(checkcsr(L, i));
    luaL_typeerror(L, i, "kboot.pki.key, kboot.pki.cert or kboot.pki.csr");
    return NULL;
}

static int key_matches(lua_State *L)
{
    EVP_PKEY *k = checkkey(L, 1), *other = any_pubkey(L, 2);
    lua_pushboolean(L, other && kb_pki_key_eq(k, other));
    return 1;
}

static int push_key_pin(lua_State *L, EVP_PKEY *k)
{
    char pin[KB_PIN_LEN];
    kb_err e;
    if (kb_pki_key_pin(k, pin, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushstring(L, pin);
    return 1;
}

static int key_spki_pin(lua_State *L) { return push_key_pin(L, checkkey(L, 1)); }

static int key_tostring(lua_State *L)
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
    keybox *b = newkey(L);
    kb_err e;
    if (!(b->k = kb_pki_load_key(pem, len, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

/* ---- specs ---- */

/* spec[field] as an array of strings; leaves the array and a pointer buffer on the stack
 * so the strings stay referenced until the call ends. */
static const char *const *strlist(lua_State *L, int arg, int t, const char *field, size_t *n,
                                  int *present)
{
    *n = 0;
    int ty = lua_getfield(L, t, field);
    if (present)
        *present = ty != LUA_TNIL;
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (ty != LUA_TTABLE)
        luaL_argerror(L, arg, lua_pushfstring(L, "spec.%s: table of strings expected, got %s", field,
                                              luaL_typename(L, -1)));
    int list = lua_gettop(L);
    size_t len = lua_rawlen(L, list);
    const char **v = lua_newuserdatauv(L, (len ? len : 1) * sizeof *v, 0);
    for (size_t i = 0; i < len; i++) {
        size_t sl;
        if (lua_rawgeti(L, list, (lua_Integer)i + 1) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "spec.%s[%d]: string expected, got %s", field,
                                                  (int)i + 1, luaL_typename(L, -1)));
        v[i] = lua_tolstring(L, -1, &sl);
        if (strlen(v[i]) != sl)
            luaL_argerror(L, arg, lua_pushfstring(L, "spec.%s[%d]: contains a NUL byte", field, (int)i + 1));
        lua_pop(L, 1);
    }
    *n = len;
    return v;
}

static const char *optstr(lua_State *L, int arg, int t, const char *field)
{
    int ty = lua_getfield(L, t, field);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    size_t len;
    if (ty != LUA_TSTRING)
        luaL_argerror(L, arg, lua_pushfstring(L, "spec.%s: string expected, got %s", field,
                                              luaL_typename(L, -1)));
    const char *s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len)
        luaL_argerror(L, arg, lua_pushfstring(L, "spec.%s: contains a NUL byte", field));
    lua_pop(L, 1); /* still referenced by the spec table */
    return s;
}

static int optint(lua_State *L, int arg, int t, const char *field, lua_Integer *v)
{
    int ty = lua_getfield(L, t, field), isint = 0;
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (ty == LUA_TNUMBER)
        *v = lua_tointegerx(L, -1, &isint);
    if (!isint)
        luaL_argerror(L, arg, lua_pushfstring(L, "spec.%s: integer expected, got %s", field,
                                              ty == LUA_TNUMBER ? "float" : luaL_typename(L, -1)));
    lua_pop(L, 1);
    return 1;
}

static int optbool(lua_State *L, int arg, int t, const char *field, int *v)
{
    int ty = lua_getfield(L, t, field);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (ty != LUA_TBOOLEAN)
        luaL_argerror(L, arg, lua_pushfstring(L, "spec.%s: boolean expected, got %s", field,
                                              luaL_typename(L, -1)));
    *v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return 1;
}

/* Read spec (argument arg) into s. Names, IPs and dates are checked by the runtime; any
 * problem is an argument error naming the field. */
static void check_spec(lua_State *L, int arg, struct kb_cert_spec *s, int csr_only)
{
    memset(s, 0, sizeof *s);
    s->path_len = -1;
    if (lua_isnoneornil(L, arg))
        return;
    luaL_checktype(L, arg, LUA_TTABLE);
    int t = lua_absindex(L, arg);
    luaL_checkstack(L, 20, "spec");
    int has_o, has_dns, has_ip;
    s->cn = optstr(L, arg, t, "cn");
    s->o = strlist(L, arg, t, "o", &s->n_o, &has_o);
    s->dns = strlist(L, arg, t, "dns", &s->n_dns, &has_dns);
    s->ip = strlist(L, arg, t, "ip", &s->n_ip, &has_ip);
    s->has_subject = s->cn || has_o;
    s->has_sans = has_dns || has_ip;
    if (!csr_only) {
        s->usages = strlist(L, arg, t, "usages", &s->n_usages, &s->has_usages);
        s->ekus = strlist(L, arg, t, "ext_key_usages", &s->n_ekus, NULL);
        optbool(L, arg, t, "is_ca", &s->is_ca);
        lua_Integer v;
        if (optint(L, arg, t, "path_len", &v)) {
            luaL_argcheck(L, v >= 0 && v <= 1000, arg, "spec.path_len: want 0..1000");
            s->path_len = (int)v;
        }
        if (optint(L, arg, t, "not_before", &v))
            s->not_before = v;
        if (optint(L, arg, t, "not_after", &v))
            s->not_after = v;
        int ty = lua_getfield(L, t, "serial");
        if (ty == LUA_TNUMBER) {
            int isint;
            lua_Integer sn = lua_tointegerx(L, -1, &isint);
            luaL_argcheck(L, isint && sn > 0, arg, "spec.serial: want a positive integer or hex string");
            char hex[24];
            snprintf(hex, sizeof hex, "%llx", (unsigned long long)sn);
            lua_pushstring(L, hex); /* kept on the stack until the call ends */
            s->serial_hex = lua_tostring(L, -1);
        } else if (ty == LUA_TSTRING) {
            s->serial_hex = lua_tostring(L, -1);
        } else if (ty != LUA_TNIL)
            luaL_argerror(L, arg, lua_pushfstring(L, "spec.serial: integer or hex string expected, got %s",
                                                  luaL_typename(L, -1)));
    }
    kb_err e;
    if (kb_pki_spec_check(s, &e) < 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "spec.%s", e.msg));
}

/* ---- certificates ---- */

static int l_self_signed_ca(lua_State *L)
{
    EVP_PKEY *k = checkkey(L, 1);
    struct kb_cert_spec s;
    int is_ca = 1;
    if (lua_istable(L, 2))
        optbool(L, 2, 2, "is_ca", &is_ca);
    luaL_argcheck(L, is_ca, 2, "spec.is_ca: a self-signed CA is always a CA");
    check_spec(L, 2, &s, 0);
    s.defer_key = 1;
    certbox *b = newcert(L);
    kb_err e;
    if (!(b->x = kb_pki_self_signed_ca(k, &s, &e)))
        return kb_pushfail(L, &e);
    b->deferred = 1;
    return 1;
}

static int l_sign(lua_State *L)
{
    struct kb_cert_spec s;
    check_spec(L, 1, &s, 0);
    EVP_PKEY *sub = checkkey(L, 2);
    X509 *ca = rawcert(L, 3);
    EVP_PKEY *cak = checkkey(L, 4);
    s.defer_key = 1;
    certbox *b = newcert(L);
    kb_err e;
    if (!(b->x = kb_pki_sign(&s, sub, ca, cak, &e)))
        return kb_pushfail(L, &e);
    b->deferred = 1;
    return 1;
}

static int l_sign_csr(lua_State *L)
{
    X509_REQ *r = checkcsr(L, 1);
    struct kb_cert_spec s;
    check_spec(L, 2, &s, 0);
    X509 *ca = rawcert(L, 3);
    EVP_PKEY *cak = checkkey(L, 4);
    s.defer_key = 1;
    certbox *b = newcert(L);
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
    certbox *b = newcert(L);
    kb_err e;
    if (!(b->x = kb_pki_load_cert(pem, len, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int l_load_certs(lua_State *L)
{
    size_t len, n;
    const char *pem = luaL_checklstring(L, 1, &len);
    guard *g = newguard(L, free_certs);
    X509 **all;
    kb_err e;
    if (kb_pki_load_certs(pem, len, &all, &n, &e) < 0)
        return kb_pushfail(L, &e);
    g->p = all;
    g->n = n;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        certbox *b = newcert(L);
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
    char *pem = kb_pki_cert_pem(rawcert(L, 1), &len, &e);
    return push_owned(L, pem, len, &e);
}

static int cert_der(lua_State *L)
{
    kb_err e;
    size_t len = 0;
    char *der = (char *)kb_pki_cert_der(rawcert(L, 1), &len, &e);
    return push_owned(L, der, len, &e);
}

struct filler { lua_State *L; int t; int cn_set; };

/* Name callback: t is the {cn=, o={}} table. */
static void name_field(int kind, const char *v, void *ud)
{
    struct filler *f = ud;
    lua_State *L = f->L;
    if (kind == 'C' && !f->cn_set) {
        lua_pushstring(L, v);
        lua_setfield(L, f->t, "cn");
        f->cn_set = 1;
    } else if (kind == 'O') {
        lua_getfield(L, f->t, "o");
        lua_pushstring(L, v);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 1);
    }
}

static void push_name(lua_State *L, const X509_NAME *n, const char *field, const char *strfield)
{
    lua_createtable(L, 0, 2);
    lua_newtable(L);
    lua_setfield(L, -2, "o");
    struct filler f = { L, lua_gettop(L), 0 };
    kb_pki_name_each(n, name_field, &f);
    lua_setfield(L, -2, field);
    char *s = kb_pki_name_string(n);
    lua_pushstring(L, s ? s : "");
    free(s);
    lua_setfield(L, -2, strfield);
}

/* SAN callback: t holds dns={} and ip={}. */
static void san_field(int kind, const char *v, void *ud)
{
    struct filler *f = ud;
    lua_getfield(f->L, f->t, kind == 'D' ? "dns" : "ip");
    lua_pushstring(f->L, v);
    lua_rawseti(f->L, -2, (lua_Integer)lua_rawlen(f->L, -2) + 1);
    lua_pop(f->L, 1);
}

static void push_hex(lua_State *L, const ASN1_OCTET_STRING *os, const char *field)
{
    char *h = os ? kb_pki_hex(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os)) : NULL;
    if (h) {
        lua_pushstring(L, h);
        lua_setfield(L, -2, field);
    }
    free(h);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void push_keyinfo(lua_State *L, EVP_PKEY *k)
{
    char pin[KB_PIN_LEN];
    if (!k)
        return;
    set_str(L, "key_type", kb_pki_key_type(k));
    set_int(L, "key_bits", kb_pki_key_bits(k));
    set_str(L, "curve", kb_pki_key_curve(k));
    if (kb_pki_key_pin(k, pin, NULL) == 0)
        set_str(L, "spki_pin", pin);
}

static int cert_info(lua_State *L)
{
    X509 *x = checkcert(L, 1);
    lua_createtable(L, 0, 24);
    int t = lua_gettop(L);
    push_name(L, X509_get_subject_name(x), "subject", "subject_string");
    push_name(L, X509_get_issuer_name(x), "issuer", "issuer_string");
    char *serial = kb_pki_cert_serial_hex(x);
    set_str(L, "serial", serial);
    free(serial);
    set_int(L, "not_before", kb_pki_cert_not_before(x));
    set_int(L, "not_after", kb_pki_cert_not_after(x));
    lua_newtable(L);
    lua_setfield(L, t, "dns");
    lua_newtable(L);
    lua_setfield(L, t, "ip");
    struct filler f = { L, t, 0 };
    kb_pki_cert_sans(x, san_field, &f);

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
        lua_pushstring(L, en ? en : nids[i] != NID_undef ? OBJ_nid2ln(nids[i]) : "unknown");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, t, "ext_key_usages");

    lua_pushboolean(L, (X509_get_extension_flags(x) & EXFLAG_CA) != 0);
    lua_setfield(L, t, "is_ca");
    long pl = X509_get_pathlen(x);
    if (pl >= 0)
        set_int(L, "path_len", pl);
    push_keyinfo(L, X509_get0_pubkey(x));
    char pin[KB_PIN_LEN];
    if (kb_pki_cert_pin(x, pin, NULL) == 0)
        set_str(L, "spki_pin", pin);
    set_str(L, "signature_algorithm", OBJ_nid2ln(X509_get_signature_nid(x)));
    push_hex(L, X509_get0_subject_key_id(x), "ski");
    push_hex(L, X509_get0_authority_key_id(x), "aki");
    set_int(L, "version", X509_get_version(x) + 1);
    return 1;
}

static int cert_spki_pin(lua_State *L)
{
    char pin[KB_PIN_LEN];
    kb_err e;
    if (kb_pki_cert_pin(rawcert(L, 1), pin, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushstring(L, pin);
    return 1;
}

static int cert_public_key(lua_State *L)
{
    X509 *x = checkcert(L, 1);
    keybox *b = newkey(L);
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
    X509 *x = checkcert(L, 1);
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
            cas[i] = checkcert(L, lua_gettop(L));
            lua_pop(L, 1);
        }
    } else {
        cas = lua_newuserdatauv(L, sizeof *cas, 0);
        cas[0] = checkcert(L, 2);
    }
    kb_err e;
    if (kb_pki_verify(x, cas, n, t, &e) < 0)
        return kb_pushfail(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int cert_issued_by(lua_State *L)
{
    lua_pushboolean(L, kb_pki_issued_by(checkcert(L, 1), checkcert(L, 2)));
    return 1;
}

static int cert_expires_in(lua_State *L)
{
    lua_pushinteger(L, kb_pki_cert_not_after(rawcert(L, 1)) - (lua_Integer)time(NULL));
    return 1;
}

static int cert_eq(lua_State *L)
{
    certbox *a = luaL_checkudata(L, 1, CERT_MT), *b = luaL_checkudata(L, 2, CERT_MT);
    lua_pushboolean(L, a->x && b->x && X509_cmp(a->x, b->x) == 0);
    return 1;
}

static int cert_tostring(lua_State *L)
{
    certbox *b = luaL_checkudata(L, 1, CERT_MT);
    char *s = b->x ? kb_pki_name_string(X509_get_subject_name(b->x)) : NULL;
    lua_pushfstring(L, "kboot.pki.cert: %s", b->x ? (s ? s : "?") : "(closed)");
    free(s);
    return 1;
}

/* ---- CSRs ---- */

static int l_csr(lua_State *L)
{
    EVP_PKEY *k = checkkey(L, 1);
    struct kb_cert_spec s;
    check_spec(L, 2, &s, 1);
    csrbox *b = newcsr(L);
    kb_err e;
    if (!(b->r = kb_pki_csr(k, &s, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int l_load_csr(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    csrbox *b = newcsr(L);
    kb_err e;
    if (!(b->r = kb_pki_load_csr(pem, len, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int csr_pem(lua_State *L)
{
    kb_err e;
    size_t len = 0;
    char *pem = kb_pki_csr_pem(checkcsr(L, 1), &len, &e);
    return push_owned(L, pem, len, &e);
}

static int csr_info(lua_State *L)
{
    X509_REQ *r = checkcsr(L, 1);
    lua_createtable(L, 0, 10);
    int t = lua_gettop(L);
    push_name(L, X509_REQ_get_subject_name(r), "subject", "subject_string");
    lua_newtable(L);
    lua_setfield(L, t, "dns");
    lua_newtable(L);
    lua_setfield(L, t, "ip");
    struct filler f = { L, t, 0 };
    kb_pki_csr_sans(r, san_field, &f);
    push_keyinfo(L, X509_REQ_get0_pubkey(r));
    set_str(L, "signature_algorithm", OBJ_nid2ln(X509_REQ_get_signature_nid(r)));
    return 1;
}

static int csr_public_key(lua_State *L)
{
    X509_REQ *r = checkcsr(L, 1);
    keybox *b = newkey(L);
    kb_err e;
    EVP_PKEY *k = X509_REQ_get0_pubkey(r);
    if (!k)
        return kb_fail(L, "public_key", "CSR has no usable public key");
    if (!(b->k = kb_pki_public_copy(k, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int csr_tostring(lua_State *L)
{
    csrbox *b = luaL_checkudata(L, 1, CSR_MT);
    char *s = b->r ? kb_pki_name_string(X509_REQ_get_subject_name(b->r)) : NULL;
    lua_pushfstring(L, "kboot.pki.csr: %s", b->r ? (s ? s : "?") : "(closed)");
    free(s);
    return 1;
}

/* ---- PEM and pins ---- */

static int l_spki_pin(lua_State *L)
{
    if (luaL_testudata(L, 1, CERT_MT))
        return cert_spki_pin(L);
    if (luaL_testudata(L, 1, KEY_MT))
        return key_spki_pin(L);
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    certbox *cb = newcert(L);
    keybox *kb = newkey(L);
    kb_err e, ke;
    char pin[KB_PIN_LEN];
    if ((cb->x = kb_pki_load_cert(pem, len, &e))) {
        if (kb_pki_cert_pin(cb->x, pin, &e) < 0)
            return kb_pushfail(L, &e);
        lua_pushstring(L, pin);
        return 1;
    }
    /* Not a certificate: a public or private key PEM has a pin too. */
    if (!(kb->k = kb_pki_load_key(pem, len, &ke)))
        return kb_pushfail(L, &e);
    return push_key_pin(L, kb->k);
}

static int l_pem_decode(lua_State *L)
{
    size_t len, n;
    const char *text = luaL_checklstring(L, 1, &len);
    struct kb_pem_block *bl;
    guard *g = newguard(L, free_blocks);
    kb_err e;
    if (kb_pki_pem_decode(text, len, &bl, &n, &e) < 0)
        return kb_pushfail(L, &e);
    g->p = bl;
    g->n = n;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, bl[i].type);
        lua_setfield(L, -2, "type");
        lua_pushlstring(L, (const char *)bl[i].der, bl[i].len);
        lua_setfield(L, -2, "der");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1; /* the guard frees (and cleanses) the blocks */
}

static int l_pem_encode(lua_State *L)
{
    const char *type = luaL_checkstring(L, 1);
    size_t len, outlen = 0;
    const char *der = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, kb_pki_pem_type_ok(type), 1, "PEM type: 1-64 of A-Z, 0-9 and spaces");
    kb_err e;
    char *pem = kb_pki_pem_encode(type, (const unsigned char *)der, len, &outlen, &e);
    if (!pem)
        return kb_pushfail(L, &e);
    lua_pushlstring(L, pem, outlen);
    kb_pki_secret_free(pem, outlen); /* the DER may be a private key */
    return 1;
}

/* ---- module ---- */

static void newmeta(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                    lua_CFunction tostr)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostr);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

int luaopen_kboot_pki(lua_State *L)
{
    static const luaL_Reg key_methods[] = {
        { "type", key_type },       { "bits", key_bits },           { "curve", key_curve },
        { "algorithm", key_algorithm }, { "pem", key_pem },         { "public_pem", key_public_pem },
        { "is_private", key_is_private }, { "matches", key_matches }, { "spki_pin", key_spki_pin },
        { NULL, NULL },
    };
    static const luaL_Reg cert_methods[] = {
        { "pem", cert_pem },         { "der", cert_der },             { "info", cert_info },
        { "spki_pin", cert_spki_pin }, { "public_key", cert_public_key }, { "verify", cert_verify },
        { "issued_by", cert_issued_by }, { "expires_in", cert_expires_in }, { NULL, NULL },
    };
    static const luaL_Reg csr_methods[] = {
        { "pem", csr_pem }, { "info", csr_info }, { "public_key", csr_public_key }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = {
        { "generate_key", l_generate_key }, { "generate_batch", l_generate_batch },
        { "load_key", l_load_key },         { "self_signed_ca", l_self_signed_ca },
        { "sign", l_sign },                 { "load_cert", l_load_cert },
        { "load_certs", l_load_certs },     { "csr", l_csr },
        { "load_csr", l_load_csr },         { "sign_csr", l_sign_csr },
        { "spki_pin", l_spki_pin },         { "pem_decode", l_pem_decode },
        { "pem_encode", l_pem_encode },     { NULL, NULL },
    };
    newmeta(L, KEY_MT, key_methods, key_free, key_tostring);
    newmeta(L, CERT_MT, cert_methods, cert_free, cert_tostring);
    luaL_getmetatable(L, CERT_MT);
    lua_pushcfunction(L, cert_eq);
    lua_setfield(L, -2, "__eq");
    lua_pop(L, 1);
    newmeta(L, CSR_MT, csr_methods, csr_free, csr_tostring);
    luaL_newmetatable(L, GUARD_MT);
    lua_pushcfunction(L, guard_free);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
