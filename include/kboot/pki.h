/* X.509 and key primitives on OpenSSL 3 (EVP only).
 *
 * Objects are plain OpenSSL ones (EVP_PKEY, X509, X509_REQ); the caller owns what a
 * function returns and frees it with the OpenSSL free function. Every function that can
 * fail fills a kb_err and returns NULL / -1. No policy lives here: a certificate is
 * whatever a kb_cert_spec says. */
#ifndef KBOOT_PKI_H
#define KBOOT_PKI_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "kboot/err.h"

/* Key algorithms (the bindings map the scripts' names for them onto these). */
enum kb_pki_alg {
    KB_ALG_RSA2048, KB_ALG_RSA3072, KB_ALG_RSA4096,
    KB_ALG_P256, KB_ALG_P384, KB_ALG_ED25519,
    KB_ALG_COUNT
};

int kb_pki_alg_parse(const char *name);        /* enum value, or -1 for an unknown name */
const char *kb_pki_alg_name(int alg);          /* "RSA-2048"...; NULL when out of range */

/* ---- keys ---- */
EVP_PKEY *kb_pki_keygen(int alg, kb_err *e);
/* n keys of algs[i] into out[i]: RSA on min(#RSA, nthreads) threads (nthreads <= 0: one per
 * core), EC and Ed25519 inline on the calling thread (cheaper than starting a thread).
 * All or nothing: on failure out[] is all NULL. */
int kb_pki_keygen_batch(const int *algs, size_t n, EVP_PKEY **out, int nthreads, kb_err *e);
int kb_pki_ncpu(void);

/* Supported keys only: RSA, EC (named curve), Ed25519. Others fail at load. */
const char *kb_pki_key_type(const EVP_PKEY *k);  /* "RSA" | "EC" | "ED25519" | NULL */
int kb_pki_key_bits(const EVP_PKEY *k);
const char *kb_pki_key_curve(const EVP_PKEY *k); /* "P-256" | "P-384" | "P-521" | NULL */
int kb_pki_key_alg(const EVP_PKEY *k);           /* enum kb_pki_alg or -1 */
int kb_pki_key_is_private(const EVP_PKEY *k);
int kb_pki_key_eq(const EVP_PKEY *a, const EVP_PKEY *b); /* same public key */
/* A public-only copy. Needed for a certificate's key: X509_get_pubkey hands back the very
 * EVP_PKEY given to X509_set_pubkey, private part included, on certs made in-process. */
EVP_PKEY *kb_pki_public_copy(const EVP_PKEY *k, kb_err *e);

enum kb_pki_keyfmt { KB_KEY_PKCS8, KB_KEY_TRADITIONAL };
/* Private key PEM. The buffer holds key material: release with kb_pki_secret_free. */
char *kb_pki_key_pem(const EVP_PKEY *k, int fmt, size_t *len, kb_err *e);
void kb_pki_secret_free(char *buf, size_t len);
/* "PUBLIC KEY" PEM (SubjectPublicKeyInfo); free() the result. */
char *kb_pki_key_public_pem(const EVP_PKEY *k, size_t *len, kb_err *e);
/* Private (PKCS#8, PKCS#1, SEC1) or public ("PUBLIC KEY") PEM; the first key block. */
EVP_PKEY *kb_pki_load_key(const char *pem, size_t len, kb_err *e);

/* SHA-256 of the DER SubjectPublicKeyInfo, as "sha256:<64 hex>" (RFC 7469 pin). */
#define KB_PIN_LEN 72
int kb_pki_key_pin(const EVP_PKEY *k, char out[KB_PIN_LEN], kb_err *e);
int kb_pki_cert_pin(const X509 *c, char out[KB_PIN_LEN], kb_err *e);

/* ---- certificates ---- */
struct kb_cert_spec {
    const char *cn;                 /* NULL: no CN */
    const char *const *o;  size_t n_o;
    const char *const *dns; size_t n_dns;
    const char *const *ip;  size_t n_ip;  /* textual IPv4/IPv6 */
    const char *const *usages; size_t n_usages;   /* KeyUsage names, see kb_pki_usage_bit */
    int has_usages;                 /* 0: defaults (see kb_pki_sign); 1: exactly usages[] */
    const char *const *ekus; size_t n_ekus;       /* ExtKeyUsage names */
    int is_ca;
    int path_len;                   /* -1: no limit */
    int64_t not_before, not_after;  /* unix seconds; 0: now / now + 365 days */
    const char *serial_hex;         /* NULL: random positive 128-bit */
    /* kb_pki_sign_csr only: take the subject / SANs from the CSR when 0 */
    int has_subject, has_sans;
    /* 1: leave the issued certificate's key object undecoded, so X509_get0_pubkey fails on it
     * until kb_pki_cert_complete. Decoding costs OpenSSL 3.0 a decoder set-up (~1.5 M
     * instructions), wasted on a certificate that is only written out. Same bytes either way;
     * such a certificate may still be the CA of kb_pki_sign / kb_pki_sign_csr. */
    int defer_key;
};

/* Name tables shared by spec checking and cert inspection. */
unsigned kb_pki_usage_bit(const char *name);     /* 0 when unknown */
int kb_pki_eku_nid(const char *name);            /* NID_undef when unknown */
/* Next known name at table index *i (start at 0), or NULL at the end. */
const char *kb_pki_usage_name(size_t i, unsigned *bit);
const char *kb_pki_eku_name(size_t i, int *nid);
/* Parse a textual IP into 4 or 16 bytes; returns the length, or -1. */
int kb_pki_ip_parse(const char *s, unsigned char out[16]);

/* Check every name, IP and the dates; the message names the field ("ip[2]: ..."). */
int kb_pki_spec_check(const struct kb_cert_spec *s, kb_err *e);

/* Default usages when !has_usages: CA {digital signature, key encipherment, cert sign},
 * leaf {digital signature, key encipherment}. */
X509 *kb_pki_self_signed_ca(EVP_PKEY *key, const struct kb_cert_spec *s, kb_err *e);
X509 *kb_pki_sign(const struct kb_cert_spec *s, EVP_PKEY *subject_key, X509 *ca,
                  EVP_PKEY *ca_key, kb_err *e);
X509 *kb_pki_sign_csr(const struct kb_cert_spec *s, X509_REQ *csr, X509 *ca, EVP_PKEY *ca_key,
                      kb_err *e);

/* x with its key object decoded (see defer_key): takes x and returns it when it already is,
 * else an object parsed from its DER (x freed); NULL with e set on failure (x freed). */
X509 *kb_pki_cert_complete(X509 *x, kb_err *e);

X509 *kb_pki_load_cert(const char *pem, size_t len, kb_err *e);
/* All certificates of a bundle; *out is a malloc'd array of *n X509 (free each, then it). */
int kb_pki_load_certs(const char *pem, size_t len, X509 ***out, size_t *n, kb_err *e);
char *kb_pki_cert_pem(const X509 *c, size_t *len, kb_err *e);   /* free() */
unsigned char *kb_pki_cert_der(const X509 *c, size_t *len, kb_err *e); /* free() */

/* Verify c at time t (0: now). Self-signed certs among cas are the trust roots, the others
 * intermediates; when none is self-signed all of cas are trusted as anchors. */
int kb_pki_verify(X509 *c, X509 *const *cas, size_t n, int64_t t, kb_err *e);
int kb_pki_issued_by(X509 *c, X509 *ca);         /* 1 when ca's key signed c */
int64_t kb_pki_cert_not_before(const X509 *c);
int64_t kb_pki_cert_not_after(const X509 *c);

/* ---- CSRs ---- */
X509_REQ *kb_pki_csr(EVP_PKEY *key, const struct kb_cert_spec *s, kb_err *e);
/* First CSR in pem, with its self-signature verified. */
X509_REQ *kb_pki_load_csr(const char *pem, size_t len, kb_err *e);
char *kb_pki_csr_pem(const X509_REQ *r, size_t *len, kb_err *e); /* free() */

/* ---- PEM ---- */
struct kb_pem_block { char *type; unsigned char *der; size_t len; int encrypted; };
/* All blocks of text; free with kb_pki_pem_free. Fails when there is none or one is bad. */
int kb_pki_pem_decode(const char *text, size_t len, struct kb_pem_block **out, size_t *n,
                      kb_err *e);
void kb_pki_pem_free(struct kb_pem_block *b, size_t n);
char *kb_pki_pem_encode(const char *type, const unsigned char *der, size_t len, size_t *outlen,
                        kb_err *e); /* free() */

int kb_pki_pem_type_ok(const char *type);       /* A-Z, 0-9, spaces; 1..64 chars */

/* ---- inspection helpers for bindings ---- */
/* Calls fn('C', cn) / fn('O', o) for each CN and O attribute (UTF-8), in order. */
void kb_pki_name_each(const X509_NAME *n, void (*fn)(int, const char *, void *), void *ud);
/* One-line RFC 2253 form of a name; free(). */
char *kb_pki_name_string(const X509_NAME *n);
/* Hex of a byte string (serial, SKI, AKI); free(). NULL on NULL input. */
char *kb_pki_hex(const unsigned char *p, size_t len);
/* The scalar facts of a certificate, in one call (the rest: names, SANs, usages, EKUs, key). */
struct kb_cert_info {
    int version;            /* 1..3 */
    char *serial_hex;       /* lower-case hex */
    int64_t not_before, not_after;
    int is_ca;              /* basicConstraints CA:TRUE */
    long path_len;          /* -1: no pathLenConstraint */
    const char *sig_alg;    /* long name of the signature algorithm (static) */
    char *ski_hex, *aki_hex; /* key identifiers, NULL when absent */
};
/* 0, or -1 with e (memory). Free with kb_pki_cert_info_free, also after a failure. */
int kb_pki_cert_info(X509 *c, struct kb_cert_info *out, kb_err *e);
void kb_pki_cert_info_free(struct kb_cert_info *i);
/* Long name of a CSR's signature algorithm, and of an object NID ("unknown" when none). */
const char *kb_pki_csr_sig_alg(const X509_REQ *r);
const char *kb_pki_nid_name(int nid);
char *kb_pki_cert_serial_hex(const X509 *c);
/* SAN entries: calls fn(kind 'D'|'I', text, ud) for each DNS/IP entry. */
void kb_pki_cert_sans(const X509 *c, void (*fn)(int, const char *, void *), void *ud);
void kb_pki_csr_sans(const X509_REQ *r, void (*fn)(int, const char *, void *), void *ud);
/* KeyUsage bits (0 when absent) and whether the extension exists. */
unsigned kb_pki_cert_usages(X509 *c, int *present);
/* ExtKeyUsage NIDs in the certificate's order; *n entries into out (up to max). */
size_t kb_pki_cert_ekus(const X509 *c, int *out, size_t max);

#endif
