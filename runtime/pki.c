/* Keys and PEM: generation, inspection, (de)serialisation, SPKI pins. */
#include "pki_internal.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name, *type; size_t param; } algs[KB_ALG_COUNT] = {
    [KB_ALG_RSA2048] = { "RSA-2048", "RSA", 2048 },
    [KB_ALG_RSA3072] = { "RSA-3072", "RSA", 3072 },
    [KB_ALG_RSA4096] = { "RSA-4096", "RSA", 4096 },
    [KB_ALG_P256] = { "ECDSA-P256", "EC", 0 },
    [KB_ALG_P384] = { "ECDSA-P384", "EC", 0 },
    [KB_ALG_ED25519] = { "ED25519", "ED25519", 0 },
};

int kb_pki_alg_parse(const char *name)
{
    for (int i = 0; name && i < KB_ALG_COUNT; i++)
        if (strcmp(name, algs[i].name) == 0)
            return i;
    return -1;
}

const char *kb_pki_alg_name(int alg)
{
    return alg >= 0 && alg < KB_ALG_COUNT ? algs[alg].name : NULL;
}

EVP_PKEY *kb_pki_keygen(int alg, kb_err *e)
{
    EVP_PKEY *k = NULL;
    switch (alg) {
    case KB_ALG_RSA2048: case KB_ALG_RSA3072: case KB_ALG_RSA4096:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", algs[alg].param);
        break;
    case KB_ALG_P256: k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); break;
    case KB_ALG_P384: k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"); break;
    case KB_ALG_ED25519: k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); break;
    default: kb_err_set(e, "keygen", "unknown key algorithm %d", alg); return NULL;
    }
    if (!k)
        kb_err_ssl(e, "keygen", "generating a %s key failed", algs[alg].name);
    return k;
}

const char *kb_pki_key_type(const EVP_PKEY *k)
{
    if (EVP_PKEY_is_a(k, "RSA"))
        return "RSA";
    if (EVP_PKEY_is_a(k, "EC"))
        return "EC";
    if (EVP_PKEY_is_a(k, "ED25519"))
        return "ED25519";
    return NULL;
}

int kb_pki_key_bits(const EVP_PKEY *k)
{
    /* OpenSSL says 253 for Ed25519 (the group order); people mean the 256-bit key. */
    return EVP_PKEY_is_a(k, "ED25519") ? 256 : EVP_PKEY_get_bits(k);
}

const char *kb_pki_key_curve(const EVP_PKEY *k)
{
    char group[64];
    if (!EVP_PKEY_is_a(k, "EC"))
        return NULL;
    if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL)) {
        ERR_clear_error();
        return NULL;
    }
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    return nid == NID_undef ? NULL : EC_curve_nid2nist(nid);
}

int kb_pki_key_alg(const EVP_PKEY *k)
{
    const char *t = kb_pki_key_type(k);
    if (!t)
        return -1;
    if (strcmp(t, "RSA") == 0) {
        switch (EVP_PKEY_get_bits(k)) {
        case 2048: return KB_ALG_RSA2048;
        case 3072: return KB_ALG_RSA3072;
        case 4096: return KB_ALG_RSA4096;
        default: return -1;
        }
    }
    if (strcmp(t, "EC") == 0) {
        const char *c = kb_pki_key_curve(k);
        if (c && strcmp(c, "P-256") == 0)
            return KB_ALG_P256;
        if (c && strcmp(c, "P-384") == 0)
            return KB_ALG_P384;
        return -1;
    }
    return KB_ALG_ED25519;
}

int kb_pki_key_is_private(const EVP_PKEY *k)
{
    /* OpenSSL 3 has no "has private part" query; ask for the private component. */
    int ok = 0;
    ERR_set_mark();
    if (EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "EC")) {
        BIGNUM *d = NULL;
        ok = EVP_PKEY_get_bn_param(k, EVP_PKEY_is_a(k, "RSA") ? OSSL_PKEY_PARAM_RSA_D
                                                               : OSSL_PKEY_PARAM_PRIV_KEY, &d);
        BN_clear_free(d);
    } else if (EVP_PKEY_is_a(k, "ED25519")) {
        size_t n = 0;
        ok = EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PRIV_KEY, NULL, 0, &n) && n > 0;
    }
    ERR_pop_to_mark();
    return ok ? 1 : 0;
}

int kb_pki_key_eq(const EVP_PKEY *a, const EVP_PKEY *b)
{
    ERR_set_mark();
    int r = EVP_PKEY_eq(a, b);
    ERR_pop_to_mark();
    return r == 1;
}

/* Copy a memory BIO's contents into a NUL-terminated malloc'd buffer. */
char *kb_pki_bio_take(BIO *b, size_t *len, kb_err *e, const char *op)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *r = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!r) {
        kb_err_set(e, op, "out of memory");
        return NULL;
    }
    if (n > 0) /* an empty BIO has no buffer at all */
        memcpy(r, p, (size_t)n);
    r[n] = '\0';
    if (len)
        *len = (size_t)n;
    return r;
}

char *kb_pki_key_pem(const EVP_PKEY *k, int fmt, size_t *len, kb_err *e)
{
    if (!kb_pki_key_is_private(k)) {
        kb_err_set(e, "key_pem", "key has no private part");
        return NULL;
    }
    if (fmt == KB_KEY_TRADITIONAL && EVP_PKEY_is_a(k, "ED25519")) {
        kb_err_set(e, "key_pem", "Ed25519 keys have no traditional PEM form, use pkcs8");
        return NULL;
    }
    /* secmem: the BIO buffer is cleansed when freed. */
    BIO *b = BIO_new(BIO_s_secmem());
    unsigned char *der = NULL;
    const char *type = NULL;
    int dlen = fmt == KB_KEY_TRADITIONAL ? kb_pki_private_der(k, &der, &type) : -1;
    int ok = b && (dlen > 0 ? PEM_write_bio(b, type, "", der, dlen)
                   : fmt == KB_KEY_TRADITIONAL
                       ? PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL)
                       : PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL));
    if (der)
        OPENSSL_clear_free(der, (size_t)dlen);
    char *r = NULL;
    if (!ok)
        kb_err_ssl(e, "key_pem", "encoding the private key failed");
    else
        r = kb_pki_bio_take(b, len, e, "key_pem");
    BIO_free(b);
    return r;
}

void kb_pki_secret_free(char *buf, size_t len)
{
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
}

char *kb_pki_key_public_pem(const EVP_PKEY *k, size_t *len, kb_err *e)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *r = NULL;
    unsigned char *der = NULL;
    int n = kb_pki_spki_der(k, &der);
    if (!b || n <= 0 || !PEM_write_bio(b, "PUBLIC KEY", "", der, n))
        kb_err_ssl(e, "public_pem", "encoding the public key failed");
    else
        r = kb_pki_bio_take(b, len, e, "public_pem");
    OPENSSL_free(der);
    BIO_free(b);
    return r;
}

EVP_PKEY *kb_pki_public_copy(const EVP_PKEY *k, kb_err *e)
{
    /* Export and import the public parameters: no DER encoder/decoder look-up. Keys with
     * unusual encodings (compressed points, ...) go through DER, which keeps them. */
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pub = NULL;
    ERR_set_mark();
    EVP_PKEY_CTX *ctx = kb_pki_fast_key(k) ? EVP_PKEY_CTX_new_from_pkey(NULL, (EVP_PKEY *)k, NULL) : NULL;
    if (ctx && EVP_PKEY_todata(k, EVP_PKEY_PUBLIC_KEY, &params) && EVP_PKEY_fromdata_init(ctx) > 0 &&
        EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pub = NULL;
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(ctx);
    ERR_pop_to_mark();
    if (!pub) {
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(k, &der);
        const unsigned char *p = der;
        pub = n > 0 ? d2i_PUBKEY(NULL, &p, n) : NULL;
        OPENSSL_free(der);
    }
    if (!pub)
        kb_err_ssl(e, "public_key", "copying the public key failed");
    return pub;
}

static int no_password(char *buf, int size, int rw, void *u)
{
    return -1; /* never prompt on the terminal */
}

/* Find the first PEM block that holds a key, to pick the reader and explain failures. A
 * traditional private key (PKCS#1 "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY") hands back its DER
 * in *der (free with OPENSSL_free), for a decoder told the key type. */
static int first_key_block(const char *pem, size_t len, char *type, size_t tlen, int *encrypted,
                           unsigned char **der, size_t *dlen, kb_err *e)
{
    struct kb_pem_block *bl = NULL;
    size_t n = 0;
    *der = NULL;
    *dlen = 0;
    if (kb_pki_pem_decode(pem, len, &bl, &n, e) < 0)
        return -1;
    int found = -1;
    for (size_t i = 0; i < n && found < 0; i++) {
        const char *t = bl[i].type;
        size_t tl = strlen(t);
        if ((tl >= 11 && strcmp(t + tl - 11, "PRIVATE KEY") == 0) ||
            (tl >= 10 && strcmp(t + tl - 10, "PUBLIC KEY") == 0)) {
            snprintf(type, tlen, "%s", t);
            *encrypted = strstr(t, "ENCRYPTED") != NULL || bl[i].encrypted;
            found = 0;
            if (!*encrypted && (strcmp(t, "RSA PRIVATE KEY") == 0 || strcmp(t, "EC PRIVATE KEY") == 0) &&
                bl[i].len > 0 && (*der = OPENSSL_memdup(bl[i].der, bl[i].len)) != NULL)
                *dlen = bl[i].len;
        }
    }
    if (found < 0)
        kb_err_set(e, "load_key", "no key in PEM data (first block is %s)", bl[0].type);
    kb_pki_pem_free(bl, n);
    return found;
}

EVP_PKEY *kb_pki_load_key(const char *pem, size_t len, kb_err *e)
{
    char type[64];
    int encrypted = 0;
    unsigned char *der = NULL;
    size_t dlen = 0;
    if (first_key_block(pem, len, type, sizeof type, &encrypted, &der, &dlen, e) < 0)
        return NULL;
    if (encrypted) {
        kb_err_set(e, "load_key", "encrypted private keys are not supported");
        return NULL;
    }
    int public = strstr(type, "PUBLIC KEY") != NULL;
    if (public && strcmp(type, "PUBLIC KEY") != 0) {
        kb_err_set(e, "load_key", "unsupported PEM type %s (want PUBLIC KEY)", type);
        return NULL;
    }
    EVP_PKEY *k = NULL;
    if (der) {
        /* The PEM type names the key type: a decoder for that type alone is set up several
         * times faster than the one that tries every format (traditional PEM is the common case). */
        const unsigned char *p = der;
        ERR_set_mark();
        k = d2i_PrivateKey(type[0] == 'R' ? EVP_PKEY_RSA : EVP_PKEY_EC, NULL, &p, (long)dlen);
        ERR_pop_to_mark();
        OPENSSL_free(der);
    }
    if (!k) {
        BIO *b = BIO_new_mem_buf(pem, (int)len);
        if (b)
            k = public ? PEM_read_bio_PUBKEY(b, NULL, no_password, NULL)
                       : PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
        BIO_free(b);
    }
    if (!k) {
        kb_err_ssl(e, "load_key", "cannot parse %s", type);
        return NULL;
    }
    if (!kb_pki_key_type(k) || (EVP_PKEY_is_a(k, "EC") && !kb_pki_key_curve(k))) {
        kb_err_set(e, "load_key", "unsupported key type %s (want RSA, EC or ED25519)",
                   EVP_PKEY_get0_type_name(k));
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

static int pin_of(const unsigned char *der, int n, char out[KB_PIN_LEN], kb_err *e)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (n <= 0 || !EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
        return kb_err_ssl(e, "spki_pin", "hashing the public key failed");
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int kb_pki_key_pin(const EVP_PKEY *k, char out[KB_PIN_LEN], kb_err *e)
{
    unsigned char *der = NULL;
    int n = kb_pki_spki_der(k, &der);
    int r = pin_of(der, n, out, e);
    OPENSSL_free(der);
    return r;
}

int kb_pki_cert_pin(const X509 *c, char out[KB_PIN_LEN], kb_err *e)
{
    /* Hash the SPKI bytes as they are in the certificate, not a re-encoding. */
    unsigned char *der = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &der);
    int r = pin_of(der, n, out, e);
    OPENSSL_free(der);
    return r;
}

int kb_pki_pem_decode(const char *text, size_t len, struct kb_pem_block **out, size_t *nout,
                      kb_err *e)
{
    *out = NULL;
    *nout = 0;
    if (len > INT_MAX)
        return kb_err_set(e, "pem_decode", "PEM data too large");
    BIO *b = BIO_new_mem_buf(text, (int)len);
    if (!b)
        return kb_err_ssl(e, "pem_decode", "out of memory");
    struct kb_pem_block *bl = NULL;
    size_t n = 0;
    int rc = 0;
    for (;;) {
        char *name = NULL, *hdr = NULL;
        unsigned char *data = NULL;
        long dlen = 0;
        ERR_set_mark();
        if (!PEM_read_bio(b, &name, &hdr, &data, &dlen)) {
            unsigned long err = ERR_peek_last_error();
            if (n > 0 && ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
                ERR_pop_to_mark();
                break;
            }
            ERR_clear_last_mark();
            if (n == 0 && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                rc = kb_err_set(e, "pem_decode", "no PEM data found");
            } else
                rc = kb_err_ssl(e, "pem_decode", "PEM block %zu is malformed", n + 1);
            break;
        }
        ERR_pop_to_mark();
        struct kb_pem_block *nb = realloc(bl, (n + 1) * sizeof *bl);
        char *type = nb ? strdup(name) : NULL;
        unsigned char *der = type ? malloc(dlen > 0 ? (size_t)dlen : 1) : NULL;
        if (der) {
            bl = nb;
            memcpy(der, data, (size_t)dlen);
            bl[n].type = type;
            bl[n].der = der;
            bl[n].len = (size_t)dlen;
            bl[n].encrypted = strstr(hdr, "ENCRYPTED") != NULL;
            n++;
        } else {
            if (nb)
                bl = nb;
            free(type);
            rc = kb_err_set(e, "pem_decode", "out of memory");
        }
        /* The block may be a private key. */
        OPENSSL_clear_free(data, (size_t)dlen);
        OPENSSL_free(name);
        OPENSSL_free(hdr);
        if (rc < 0)
            break;
    }
    BIO_free(b);
    if (rc < 0) {
        kb_pki_pem_free(bl, n);
        return -1;
    }
    *out = bl;
    *nout = n;
    return 0;
}

void kb_pki_pem_free(struct kb_pem_block *b, size_t n)
{
    for (size_t i = 0; b && i < n; i++) {
        OPENSSL_cleanse(b[i].der, b[i].len);
        free(b[i].der);
        free(b[i].type);
    }
    free(b);
}

int kb_pki_pem_type_ok(const char *type)
{
    if (!type || !*type || strlen(type) > 64)
        return 0;
    for (const char *p = type; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == ' '))
            return 0;
    return 1;
}

char *kb_pki_pem_encode(const char *type, const unsigned char *der, size_t len, size_t *outlen,
                        kb_err *e)
{
    if (!kb_pki_pem_type_ok(type)) {
        kb_err_set(e, "pem_encode", "invalid PEM type '%s' (A-Z, 0-9 and spaces)", type ? type : "");
        return NULL;
    }
    if (len > INT_MAX) {
        kb_err_set(e, "pem_encode", "data too large");
        return NULL;
    }
    BIO *b = BIO_new(BIO_s_secmem());
    char *r = NULL;
    if (!b || !PEM_write_bio(b, type, "", der, (long)len))
        kb_err_ssl(e, "pem_encode", "PEM encoding failed");
    else
        r = kb_pki_bio_take(b, outlen, e, "pem_encode");
    BIO_free(b);
    return r;
}

char *kb_pki_hex(const unsigned char *p, size_t len)
{
    if (!p)
        return NULL;
    char *r = malloc(2 * len + 1);
    if (!r)
        return NULL;
    for (size_t i = 0; i < len; i++)
        snprintf(r + 2 * i, 3, "%02x", p[i]);
    r[2 * len] = '\0';
    return r;
}
