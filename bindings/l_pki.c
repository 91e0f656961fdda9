/* kboot.pki: keys, certificates, CSRs and PEM (runtime/pki*.c). Argument checking and
 * conversion only; one userdata type per OpenSSL type. This file: the boxes, the spec reader and
 * info-table helpers the types share, PEM and pins, and the module; the types' functions are in
 * l_pki_key.c, l_pki_cert.c and l_pki_csr.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "l_pki.h"

/* ---- boxes: zeroed and with their metatable before the OpenSSL object exists ---- */

keybox *pki_newkey(lua_State *L)
{
    keybox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->k = NULL;
    luaL_setmetatable(L, KEY_MT);
    return b;
}

certbox *pki_newcert(lua_State *L)
{
    certbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->x = NULL;
    b->deferred = 0;
    luaL_setmetatable(L, CERT_MT);
    return b;
}

csrbox *pki_newcsr(lua_State *L)
{
    csrbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->r = NULL;
    luaL_setmetatable(L, CSR_MT);
    return b;
}

EVP_PKEY *pki_checkkey(lua_State *L, int i)
{
    keybox *b = luaL_checkudata(L, i, KEY_MT);
    luaL_argcheck(L, b->k, i, "key is closed");
    return b->k;
}

/* The certificate as it is: enough for its bytes, and as the CA of sign / sign_csr. */
X509 *pki_rawcert(lua_State *L, int i)
{
    certbox *b = luaL_checkudata(L, i, CERT_MT);
    luaL_argcheck(L, b->x, i, "certificate is closed");
    return b->x;
}

/* The certificate with its public key object, for anything that reads the key. Certificates
 * issued here have it decoded on first use only: most are just written out. */
X509 *pki_checkcert(lua_State *L, int i)
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

X509_REQ *pki_checkcsr(lua_State *L, int i)
{
    csrbox *b = luaL_checkudata(L, i, CSR_MT);
    luaL_argcheck(L, b->r, i, "CSR is closed");
    return b->r;
}

/* One free function per type, for both __gc and __close; safe to call twice.
 * EVP_PKEY_free cleanses private key material itself. */
int pki_key_free(lua_State *L)
{
    keybox *b = luaL_checkudata(L, 1, KEY_MT);
    EVP_PKEY_free(b->k);
    b->k = NULL;
    return 0;
}

int pki_cert_free(lua_State *L)
{
    certbox *b = luaL_checkudata(L, 1, CERT_MT);
    X509_free(b->x);
    b->x = NULL;
    return 0;
}

int pki_csr_free(lua_State *L)
{
    csrbox *b = luaL_checkudata(L, 1, CSR_MT);
    X509_REQ_free(b->r);
    b->r = NULL;
    return 0;
}


guard *pki_newguard(lua_State *L, void (*fn)(void *, size_t))
{
    guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->fn = fn;
    g->p = NULL;
    g->n = 0;
    luaL_setmetatable(L, GUARD_MT);
    return g;
}

int pki_guard_free(lua_State *L)
{
    guard *g = luaL_checkudata(L, 1, GUARD_MT);
    if (g->p)
        g->fn(g->p, g->n);
    g->p = NULL;
    return 0;
}

void pki_free_certs(void *p, size_t n)
{
    X509 **all = p;
    for (size_t i = 0; i < n; i++)
        X509_free(all[i]);
    free(all);
}

void pki_free_blocks(void *p, size_t n) { kb_pki_pem_free(p, n); }

/* Push a malloc'd string and free it; on NULL push the error instead. */
int pki_push_owned(lua_State *L, char *s, size_t len, const kb_err *e)
{
    if (!s)
        return kb_pushfail(L, e);
    lua_pushlstring(L, s, len);
    free(s);
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

int pki_optbool(lua_State *L, int arg, int t, const char *field, int *v)
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
void pki_check_spec(lua_State *L, int arg, struct kb_cert_spec *s, int csr_only)
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
        pki_optbool(L, arg, t, "is_ca", &s->is_ca);
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

void pki_push_name(lua_State *L, const X509_NAME *n, const char *field, const char *strfield)
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
void pki_san_field(int kind, const char *v, void *ud)
{
    struct filler *f = ud;
    lua_getfield(f->L, f->t, kind == 'D' ? "dns" : "ip");
    lua_pushstring(f->L, v);
    lua_rawseti(f->L, -2, (lua_Integer)lua_rawlen(f->L, -2) + 1);
    lua_pop(f->L, 1);
}

void pki_set_str(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

void pki_set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

void pki_push_keyinfo(lua_State *L, EVP_PKEY *k)
{
    char pin[KB_PIN_LEN];
    if (!k)
        return;
    pki_set_str(L, "key_type", kb_pki_key_type(k));
    pki_set_int(L, "key_bits", kb_pki_key_bits(k));
    pki_set_str(L, "curve", kb_pki_key_curve(k));
    if (kb_pki_key_pin(k, pin, NULL) == 0)
        pki_set_str(L, "spki_pin", pin);
}

/* ---- PEM and pins ---- */

static int l_spki_pin(lua_State *L)
{
    if (luaL_testudata(L, 1, CERT_MT))
        return pki_cert_spki_pin(L);
    if (luaL_testudata(L, 1, KEY_MT))
        return pki_key_spki_pin(L);
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    certbox *cb = pki_newcert(L);
    keybox *kb = pki_newkey(L);
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
    return pki_push_key_pin(L, kb->k);
}

static int l_pem_decode(lua_State *L)
{
    size_t len, n;
    const char *text = luaL_checklstring(L, 1, &len);
    struct kb_pem_block *bl;
    guard *g = pki_newguard(L, pki_free_blocks);
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
    static const luaL_Reg fns[] = {
        { "spki_pin", l_spki_pin }, { "pem_decode", l_pem_decode }, { "pem_encode", l_pem_encode },
        { NULL, NULL },
    };
        newmeta(L, KEY_MT, pki_key_methods, pki_key_free, pki_key_tostring);
    newmeta(L, CERT_MT, pki_cert_methods, pki_cert_free, pki_cert_tostring);
    luaL_getmetatable(L, CERT_MT);
    lua_pushcfunction(L, pki_cert_eq);
    lua_setfield(L, -2, "__eq");
    lua_pop(L, 1);
    newmeta(L, CSR_MT, pki_csr_methods, pki_csr_free, pki_csr_tostring);
    luaL_newmetatable(L, GUARD_MT);
    lua_pushcfunction(L, pki_guard_free);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_setfuncs(L, pki_key_fns, 0);
    luaL_setfuncs(L, pki_cert_fns, 0);
    luaL_setfuncs(L, pki_csr_fns, 0);
    luaL_setfuncs(L, fns, 0);
    return 1;
}