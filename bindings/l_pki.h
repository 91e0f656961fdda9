/* kboot.pki's binding, shared between l_pki.c (boxes, specs, info tables, PEM, the module),
 * l_pki_key.c, l_pki_cert.c and l_pki_csr.c. */
#ifndef KBOOT_L_PKI_H
#define KBOOT_L_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common.h"
#include "kboot/pki.h"

#define KEY_MT "kboot.pki.key"
#define CERT_MT "kboot.pki.cert"
#define CSR_MT "kboot.pki.csr"
#define GUARD_MT "kboot.pki.guard"

typedef struct { EVP_PKEY *k; } keybox;
/* deferred: issued here with defer_key, the key object not decoded yet (see pki_checkcert). */
typedef struct { X509 *x; int deferred; } certbox;
typedef struct { X509_REQ *r; } csrbox;

/* A guard owns runtime memory while Lua pushes (which can raise a memory error) run:
 * its __gc releases whatever the caller has not taken yet. */
typedef struct { void (*fn)(void *, size_t); void *p; size_t n; } guard;

/* boxes: zeroed and with their metatable before the OpenSSL object exists */
keybox *pki_newkey(lua_State *L);
certbox *pki_newcert(lua_State *L);
csrbox *pki_newcsr(lua_State *L);
EVP_PKEY *pki_checkkey(lua_State *L, int i);
X509 *pki_rawcert(lua_State *L, int i);
X509 *pki_checkcert(lua_State *L, int i);
X509_REQ *pki_checkcsr(lua_State *L, int i);
int pki_key_free(lua_State *L);
int pki_cert_free(lua_State *L);
int pki_csr_free(lua_State *L);
guard *pki_newguard(lua_State *L, void (*fn)(void *, size_t));
int pki_guard_free(lua_State *L);
void pki_free_certs(void *p, size_t n);
void pki_free_blocks(void *p, size_t n);
int pki_push_owned(lua_State *L, char *s, size_t len, const kb_err *e);

/* specs and info tables */
int pki_optbool(lua_State *L, int arg, int t, const char *field, int *v);
void pki_check_spec(lua_State *L, int arg, struct kb_cert_spec *s, int csr_only);
struct filler { lua_State *L; int t; int cn_set; };
void pki_push_name(lua_State *L, const X509_NAME *n, const char *field, const char *strfield);
void pki_san_field(int kind, const char *v, void *ud);
void pki_set_str(lua_State *L, const char *k, const char *v);
void pki_set_int(lua_State *L, const char *k, lua_Integer v);
void pki_push_keyinfo(lua_State *L, EVP_PKEY *k);

/* per type: methods, module functions, __tostring (and the certificate's __eq) */
extern const luaL_Reg pki_key_methods[], pki_key_fns[];
extern const luaL_Reg pki_cert_methods[], pki_cert_fns[];
extern const luaL_Reg pki_csr_methods[], pki_csr_fns[];
int pki_key_tostring(lua_State *L);
int pki_cert_tostring(lua_State *L);
int pki_csr_tostring(lua_State *L);
int pki_cert_eq(lua_State *L);
int pki_push_key_pin(lua_State *L, EVP_PKEY *k);
int pki_key_spki_pin(lua_State *L);
int pki_cert_spki_pin(lua_State *L);

#endif
