/* Certificates: spec checking and issuing (shaped like Go's crypto/x509 output, so files match
 * what Go tools write). Loading, encoding and verification are in pki_load.c. */
#include "pki_internal.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_VALIDITY (365 * 24 * 3600)

/* KeyUsage: name, bit number in the BIT STRING, mask from X509_get_key_usage. */
static const struct { const char *name; int bitnum; unsigned mask; } usages[] = {
    { "digital signature", 0, KU_DIGITAL_SIGNATURE },
    { "content commitment", 1, KU_NON_REPUDIATION },
    { "key encipherment", 2, KU_KEY_ENCIPHERMENT },
    { "data encipherment", 3, KU_DATA_ENCIPHERMENT },
    { "key agreement", 4, KU_KEY_AGREEMENT },
    { "cert sign", 5, KU_KEY_CERT_SIGN },
    { "crl sign", 6, KU_CRL_SIGN },
    { "encipher only", 7, KU_ENCIPHER_ONLY },
    { "decipher only", 8, KU_DECIPHER_ONLY },
};
#define N_USAGES (sizeof usages / sizeof usages[0])

static const struct { const char *name; int nid; } ekus[] = {
    { "server auth", NID_server_auth },       { "client auth", NID_client_auth },
    { "code signing", NID_code_sign },        { "email protection", NID_email_protect },
    { "timestamping", NID_time_stamp },       { "ocsp signing", NID_OCSP_sign },
};
#define N_EKUS (sizeof ekus / sizeof ekus[0])

unsigned kb_pki_usage_bit(const char *name)
{
    for (size_t i = 0; name && i < N_USAGES; i++)
        if (strcmp(name, usages[i].name) == 0)
            return usages[i].mask;
    return 0;
}

const char *kb_pki_usage_name(size_t i, unsigned *bit)
{
    if (i >= N_USAGES)
        return NULL;
    *bit = usages[i].mask;
    return usages[i].name;
}

int kb_pki_eku_nid(const char *name)
{
    for (size_t i = 0; name && i < N_EKUS; i++)
        if (strcmp(name, ekus[i].name) == 0)
            return ekus[i].nid;
    return NID_undef;
}

const char *kb_pki_eku_name(size_t i, int *nid)
{
    if (i >= N_EKUS)
        return NULL;
    *nid = ekus[i].nid;
    return ekus[i].name;
}

int kb_pki_ip_parse(const char *s, unsigned char out[16])
{
    if (inet_pton(AF_INET, s, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, s, out) == 1)
        return 16;
    return -1;
}

static int64_t now(void) { return (int64_t)time(NULL); }

static void validity(const struct kb_cert_spec *s, int64_t *nb, int64_t *na)
{
    int64_t t = now();
    *nb = s->not_before ? s->not_before : t;
    *na = s->not_after ? s->not_after : t + DEFAULT_VALIDITY;
}

static int hex_ok(const char *h)
{
    size_t n = strlen(h), nz = 0;
    if (n == 0 || n > 40) /* RFC 5280: at most 20 octets */
        return 0;
    for (const char *p = h; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
            return 0;
        nz |= *p != '0';
    }
    return nz != 0; /* serials are positive */
}

int kb_pki_spec_check(const struct kb_cert_spec *s, kb_err *e)
{
    unsigned char ip[16];
    for (size_t i = 0; i < s->n_dns; i++) {
        const char *d = s->dns[i];
        if (!*d)
            return kb_err_set(e, "spec", "dns[%zu]: empty name", i + 1);
        for (const char *p = d; *p; p++)
            if (*p <= ' ' || *p > '~')
                return kb_err_set(e, "spec", "dns[%zu]: invalid character in '%s'", i + 1, d);
    }
    for (size_t i = 0; i < s->n_ip; i++)
        if (kb_pki_ip_parse(s->ip[i], ip) < 0)
            return kb_err_set(e, "spec", "ip[%zu]: invalid IP address '%s'", i + 1, s->ip[i]);
    for (size_t i = 0; i < s->n_usages; i++)
        if (!kb_pki_usage_bit(s->usages[i]))
            return kb_err_set(e, "spec", "usages[%zu]: unknown key usage '%s'", i + 1, s->usages[i]);
    for (size_t i = 0; i < s->n_ekus; i++)
        if (kb_pki_eku_nid(s->ekus[i]) == NID_undef)
            return kb_err_set(e, "spec", "ext_key_usages[%zu]: unknown extended key usage '%s'",
                              i + 1, s->ekus[i]);
    if (s->path_len >= 0 && !s->is_ca)
        return kb_err_set(e, "spec", "path_len: only allowed with is_ca");
    if (s->serial_hex && !hex_ok(s->serial_hex))
        return kb_err_set(e, "spec", "serial: want a positive hex number of at most 40 digits");
    int64_t nb, na;
    validity(s, &nb, &na);
    /* RFC 5280 times end at 9999-12-31T23:59:59Z (and start at year 0): past that OpenSSL
     * encodes a time no parser reads back as the one asked for */
    const int64_t first = -62167219200, last = 253402300799;
    if (nb < first || nb > last)
        return kb_err_set(e, "spec", "not_before: outside what an X.509 time can hold (years 0 to 9999)");
    if (na > last)
        return kb_err_set(e, "spec", "not_after: later than 9999-12-31T23:59:59Z, the last X.509 time");
    if (na < first)
        return kb_err_set(e, "spec", "not_after: outside what an X.509 time can hold (years 0 to 9999)");
    if (na <= nb)
        return kb_err_set(e, "spec", "not_after: must be later than not_before");
    return 0;
}

/* Go's asn1 uses PrintableString when every character allows it, else UTF8String. */
static int string_type(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(" '()+,-./:=?", *p)))
            return V_ASN1_UTF8STRING;
    return V_ASN1_PRINTABLESTRING;
}

X509_NAME *kb_pki_build_name(const char *cn, const char *const *o, size_t n_o, kb_err *e)
{
    X509_NAME *n = X509_NAME_new();
    int ok = n != NULL;
    for (size_t i = 0; ok && i < n_o; i++) /* set -1: same RDN as the previous O */
        ok = X509_NAME_add_entry_by_NID(n, NID_organizationName, string_type(o[i]),
                                        (const unsigned char *)o[i], -1, -1, i ? -1 : 0);
    if (ok && cn)
        ok = X509_NAME_add_entry_by_NID(n, NID_commonName, string_type(cn),
                                        (const unsigned char *)cn, -1, -1, 0);
    if (!ok) {
        kb_err_ssl(e, "name", "building the subject name failed");
        X509_NAME_free(n);
        return NULL;
    }
    return n;
}

GENERAL_NAMES *kb_pki_build_sans(const struct kb_cert_spec *s, kb_err *e)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int ok = gens != NULL;
    for (size_t i = 0; ok && i < s->n_dns + s->n_ip; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_STRING *v = ASN1_STRING_type_new(i < s->n_dns ? V_ASN1_IA5STRING : V_ASN1_OCTET_STRING);
        unsigned char ip[16];
        if (i < s->n_dns)
            ok = g && v && ASN1_STRING_set(v, s->dns[i], -1);
        else {
            int n = kb_pki_ip_parse(s->ip[i - s->n_dns], ip);
            ok = g && v && n > 0 && ASN1_STRING_set(v, ip, n);
        }
        if (ok) {
            GENERAL_NAME_set0_value(g, i < s->n_dns ? GEN_DNS : GEN_IPADD, v);
            v = NULL;
            ok = sk_GENERAL_NAME_push(gens, g) > 0;
        }
        if (!ok) {
            ASN1_STRING_free(v);
            GENERAL_NAME_free(g);
        }
    }
    if (!ok) {
        kb_err_ssl(e, "sans", "building the subjectAltName failed");
        GENERAL_NAMES_free(gens);
        return NULL;
    }
    return gens;
}

const EVP_MD *kb_pki_sign_md(const EVP_PKEY *k)
{
    if (EVP_PKEY_is_a(k, "ED25519"))
        return NULL;
    const char *c = kb_pki_key_curve(k);
    if (c && strcmp(c, "P-384") == 0)
        return EVP_sha384();
    if (c && strcmp(c, "P-521") == 0)
        return EVP_sha512();
    return EVP_sha256();
}

static int set_serial(X509 *x, const char *hex)
{
    BIGNUM *bn = NULL;
    int ok;
    if (hex)
        ok = BN_hex2bn(&bn, hex) > 0;
    else {
        bn = BN_new();
        ok = bn && BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
        if (ok && BN_is_zero(bn))
            ok = BN_one(bn);
    }
    ok = ok && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static int add_key_usage(X509 *x, const struct kb_cert_spec *s)
{
    static const char *const ca_default[] = { "digital signature", "key encipherment", "cert sign" };
    const char *const *names = s->usages;
    size_t n = s->n_usages;
    if (!s->has_usages) {
        names = ca_default;
        n = s->is_ca ? 3 : 2;
    }
    if (n == 0)
        return 1; /* explicit empty list: no extension, as Go does for KeyUsage 0 */
    ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
    int ok = bs != NULL;
    for (size_t i = 0; ok && i < n; i++)
        for (size_t j = 0; j < N_USAGES; j++)
            if (strcmp(names[i], usages[j].name) == 0)
                ok = ASN1_BIT_STRING_set_bit(bs, usages[j].bitnum, 1);
    ok = ok && X509_add1_ext_i2d(x, NID_key_usage, bs, 1, X509V3_ADD_REPLACE) == 1;
    ASN1_BIT_STRING_free(bs);
    return ok;
}

static int add_ext_key_usage(X509 *x, const struct kb_cert_spec *s)
{
    if (s->n_ekus == 0)
        return 1;
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    int ok = eku != NULL;
    for (size_t i = 0; ok && i < s->n_ekus; i++) {
        int nid = kb_pki_eku_nid(s->ekus[i]), dup = 0;
        for (int j = 0; j < sk_ASN1_OBJECT_num(eku); j++)
            dup |= OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, j)) == nid;
        if (!dup)
            ok = sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(nid)) > 0;
    }
    ok = ok && X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_REPLACE) == 1;
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return ok;
}

static int add_basic_constraints(X509 *x, const struct kb_cert_spec *s)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    int ok = bc != NULL;
    if (ok && s->is_ca) {
        bc->ca = 0xFF;
        if (s->path_len >= 0) {
            bc->pathlen = ASN1_INTEGER_new();
            ok = bc->pathlen && ASN1_INTEGER_set(bc->pathlen, s->path_len);
        }
    }
    ok = ok && X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_REPLACE) == 1;
    BASIC_CONSTRAINTS_free(bc);
    return ok;
}

/* SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2 method 1), as Go computes it. */
static int add_ski(X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    int ok = os && X509_pubkey_digest(x, EVP_sha1(), md, &n) && ASN1_OCTET_STRING_set(os, md, (int)n) &&
             X509_add1_ext_i2d(x, NID_subject_key_identifier, os, 0, X509V3_ADD_REPLACE) == 1;
    ASN1_OCTET_STRING_free(os);
    return ok;
}

static int add_aki(X509 *x, X509 *ca)
{
    ERR_set_mark(); /* see check_ca */
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
    ERR_pop_to_mark();
    if (!ski)
        return 1; /* Go also leaves it out when the issuer has no SKI */
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    int ok = akid && (akid->keyid = ASN1_OCTET_STRING_dup(ski)) != NULL &&
             X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_REPLACE) == 1;
    AUTHORITY_KEYID_free(akid);
    return ok;
}

static X509 *reparse(const X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    const unsigned char *p = der;
    X509 *r = n > 0 ? d2i_X509(NULL, &p, n) : NULL;
    OPENSSL_free(der);
    return r;
}

/* Issue a certificate for pub. subject/sans override the spec's when given (CSR signing);
 * ca NULL means self-signed. */
static X509 *issue(const struct kb_cert_spec *s, EVP_PKEY *pub, X509_NAME *subject,
                   GENERAL_NAMES *sans, X509 *ca, EVP_PKEY *sign_key, kb_err *e)
{
    if (kb_pki_spec_check(s, e) < 0)
        return NULL;
    int64_t nb, na;
    validity(s, &nb, &na);
    X509_NAME *own_subject = subject ? NULL : kb_pki_build_name(s->cn, s->o, s->n_o, e);
    GENERAL_NAMES *own_sans = NULL;
    if (!subject && !own_subject)
        return NULL;
    if (!sans && s->n_dns + s->n_ip > 0 && !(own_sans = kb_pki_build_sans(s, e))) {
        X509_NAME_free(own_subject);
        return NULL;
    }
    if (!subject)
        subject = own_subject;
    if (!sans)
        sans = own_sans;

    /* The SubjectPublicKeyInfo straight from the key's parameters (see pki_der.c); other key
     * types through a public copy, so the certificate never keeps the subject's private key. */
    X509 *x = X509_new();
    EVP_PKEY *pubcopy = NULL;
    int spki = x ? kb_pki_spki_set(X509_get_X509_PUBKEY(x), pub) : -1;
    if (spki == 0 && (pubcopy = kb_pki_public_copy(pub, e)) == NULL)
        spki = -2; /* e is set */
    int ok = spki >= 0 && X509_set_version(x, X509_VERSION_3) && set_serial(x, s->serial_hex) &&
             X509_set_subject_name(x, subject) &&
             X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : subject) &&
             ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) &&
             ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) && (!pubcopy || X509_set_pubkey(x, pubcopy));
    /* Extension order follows Go: KU, EKU, BC, SKI, AKI, SAN. */
    ok = ok && add_key_usage(x, s) && add_ext_key_usage(x, s) && add_basic_constraints(x, s);
    if (ok && s->is_ca)
        ok = add_ski(x);
    if (ok && ca)
        ok = add_aki(x, ca);
    if (ok && sans && sk_GENERAL_NAME_num(sans) > 0) /* critical only with an empty subject */
        ok = X509_add1_ext_i2d(x, NID_subject_alt_name, sans,
                               X509_NAME_entry_count(subject) == 0, X509V3_ADD_REPLACE) == 1;
    ok = ok && X509_sign(x, sign_key, kb_pki_sign_md(sign_key)) > 0;
    if (ok && spki == 1 && !s->defer_key) {
        /* The key was set as bytes only, so X509_get0_pubkey would fail: parse the signed
         * certificate once, which decodes the public key (and only the public key). */
        X509 *parsed = reparse(x);
        X509_free(x);
        ok = (x = parsed) != NULL;
    }
    if (!ok) {
        if (spki != -2)
            kb_err_ssl(e, "sign", "issuing the certificate failed");
        X509_free(x);
        x = NULL;
    }
    EVP_PKEY_free(pubcopy);
    X509_NAME_free(own_subject);
    GENERAL_NAMES_free(own_sans);
    return x;
}

X509 *kb_pki_self_signed_ca(EVP_PKEY *key, const struct kb_cert_spec *s, kb_err *e)
{
    if (!kb_pki_key_is_private(key)) {
        kb_err_set(e, "self_signed_ca", "key has no private part");
        return NULL;
    }
    struct kb_cert_spec ca = *s;
    ca.is_ca = 1;
    return issue(&ca, key, NULL, NULL, NULL, key, e);
}

X509 *kb_pki_cert_complete(X509 *x, kb_err *e)
{
    ERR_set_mark();
    EVP_PKEY *k = X509_get0_pubkey(x);
    ERR_pop_to_mark();
    if (k)
        return x;
    X509 *r = reparse(x);
    X509_free(x);
    if (!r)
        kb_err_ssl(e, "certificate", "decoding the certificate's public key failed");
    return r;
}

/* ca's key is key's public half. The SubjectPublicKeyInfo bytes first: they need no decoded
 * key object (ca may be a defer_key certificate); then the keys, for a certificate that
 * encodes the same key differently (say, a compressed EC point). */
static int ca_key_matches(X509 *ca, EVP_PKEY *key)
{
    unsigned char *a = NULL, *b = NULL;
    int na = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(ca), &a), nb = kb_pki_spki_der(key, &b);
    int same = na > 0 && na == nb && memcmp(a, b, (size_t)na) == 0;
    OPENSSL_free(a);
    OPENSSL_free(b);
    if (same)
        return 1;
    ERR_set_mark();
    EVP_PKEY *pub = X509_get0_pubkey(ca);
    ERR_pop_to_mark();
    return pub && kb_pki_key_eq(pub, key);
}

static int check_ca(X509 *ca, EVP_PKEY *ca_key, kb_err *e)
{
    if (!kb_pki_key_is_private(ca_key))
        return kb_err_set(e, "sign", "CA key has no private part");
    if (!ca_key_matches(ca, ca_key))
        return kb_err_set(e, "sign", "CA key does not match CA certificate");
    /* Caching the extensions asks for the key object, missing on a defer_key certificate:
     * only the self-signed flag depends on it, and that is not used here. */
    ERR_set_mark();
    uint32_t flags = X509_get_extension_flags(ca), ku = X509_get_key_usage(ca);
    ERR_pop_to_mark();
    if (!(flags & EXFLAG_CA))
        return kb_err_set(e, "sign", "CA certificate is not a CA (no basicConstraints CA:TRUE)");
    if (ku != UINT32_MAX && !(ku & KU_KEY_CERT_SIGN))
        return kb_err_set(e, "sign", "CA certificate's key usage does not allow cert sign");
    return 0;
}

X509 *kb_pki_sign(const struct kb_cert_spec *s, EVP_PKEY *subject_key, X509 *ca, EVP_PKEY *ca_key,
                  kb_err *e)
{
    if (check_ca(ca, ca_key, e) < 0)
        return NULL;
    return issue(s, subject_key, NULL, NULL, ca, ca_key, e);
}

X509 *kb_pki_sign_csr(const struct kb_cert_spec *s, X509_REQ *csr, X509 *ca, EVP_PKEY *ca_key,
                      kb_err *e)
{
    if (check_ca(ca, ca_key, e) < 0)
        return NULL;
    EVP_PKEY *pub = X509_REQ_get0_pubkey(csr);
    ERR_set_mark();
    if (!pub || X509_REQ_verify(csr, pub) != 1) {
        ERR_pop_to_mark();
        kb_err_set(e, "sign_csr", "CSR signature is invalid");
        return NULL;
    }
    ERR_pop_to_mark();
    STACK_OF(X509_EXTENSION) *exts = NULL;
    GENERAL_NAMES *sans = NULL;
    if (!s->has_sans) {
        exts = X509_REQ_get_extensions(csr);
        sans = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
    }
    X509 *x = issue(s, pub, s->has_subject ? NULL : X509_REQ_get_subject_name(csr), sans, ca,
                    ca_key, e);
    GENERAL_NAMES_free(sans);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return x;
}
