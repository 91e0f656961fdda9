/* Key encodings built from the key's provider parameters. OpenSSL 3.0 makes every
 * i2d_PUBKEY / X509_set_pubkey / PEM_write_*PrivateKey* call set up an OSSL_ENCODER (or
 * downgrade to a legacy key), walking all provider algorithms each time: ~1.5 M instructions
 * per call, more than signing the certificate. The structures are small and fixed, so they
 * are written here directly; any key outside RSA, named-curve EC and Ed25519 keeps the
 * encoder path. The output is byte for byte what the encoders write (see test_pki_fast). */
#include "pki_internal.h"

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <limits.h>
#include <string.h>

/* NID of k's named curve, or NID_undef: not EC, or not written the usual way (explicit
 * parameters, a compressed point; OpenSSL's encoders and its encoded-public-key parameter
 * do not agree on the point form then, so those keys are left to the encoders). */
static int curve_nid(const EVP_PKEY *k)
{
    char group[64], enc[32], form[32];
    if (!EVP_PKEY_is_a(k, "EC"))
        return NID_undef;
    ERR_set_mark();
    int ok = EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL);
    if (ok && EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_EC_ENCODING, enc, sizeof enc, NULL) &&
        strcmp(enc, OSSL_PKEY_EC_ENCODING_GROUP) != 0)
        ok = 0;
    if (ok && EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, form,
                                             sizeof form, NULL) &&
        strcmp(form, OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 0)
        ok = 0;
    ERR_pop_to_mark();
    if (!ok)
        return NID_undef;
    int nid = OBJ_sn2nid(group);
    return nid != NID_undef ? nid : EC_curve_nist2nid(group);
}

int kb_pki_fast_key(const EVP_PKEY *k)
{
    return EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "ED25519") || curve_nid(k) != NID_undef;
}

/* DER INTEGER of a non-negative BIGNUM: size, and writer (p advanced). */
static int int_size(const BIGNUM *bn)
{
    int n = BN_num_bytes(bn), pad = n == 0 || BN_is_bit_set(bn, n * 8 - 1);
    return ASN1_object_size(0, n + pad, V_ASN1_INTEGER);
}

static void put_int(unsigned char **p, const BIGNUM *bn)
{
    int n = BN_num_bytes(bn), pad = n == 0 || BN_is_bit_set(bn, n * 8 - 1);
    ASN1_put_object(p, 0, n + pad, V_ASN1_INTEGER, V_ASN1_UNIVERSAL);
    if (pad)
        *(*p)++ = 0;
    *p += BN_bn2bin(bn, *p);
}

/* SEQUENCE of the BIGNUMs (PKCS#1 RSAPublicKey / RSAPrivateKey); OPENSSL_malloc'd. */
static unsigned char *int_seq(BIGNUM *const *bn, int n, int *len)
{
    int body = 0;
    for (int i = 0; i < n; i++)
        body += int_size(bn[i]);
    *len = ASN1_object_size(1, body, V_ASN1_SEQUENCE);
    unsigned char *der = OPENSSL_malloc((size_t)*len), *p = der;
    if (!der)
        return NULL;
    ASN1_put_object(&p, 1, body, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    for (int i = 0; i < n; i++)
        put_int(&p, bn[i]);
    return der;
}

static unsigned char *octets(const EVP_PKEY *k, const char *param, size_t *len)
{
    size_t n = 0;
    unsigned char *b = NULL;
    if (EVP_PKEY_get_octet_string_param(k, param, NULL, 0, &n) && n > 0 && (b = OPENSSL_malloc(n)) &&
        !EVP_PKEY_get_octet_string_param(k, param, b, n, &n)) {
        OPENSSL_free(b);
        b = NULL;
    }
    *len = n;
    return b;
}

int kb_pki_spki_set(X509_PUBKEY *pk, const EVP_PKEY *k)
{
    unsigned char *bits = NULL;
    size_t blen = 0;
    int len = 0, nid = NID_undef, ptype = V_ASN1_UNDEF;
    void *pval = NULL;
    if (EVP_PKEY_is_a(k, "RSA")) {
        BIGNUM *ne[2] = { NULL, NULL };
        if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &ne[0]) &&
            EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &ne[1]))
            bits = int_seq(ne, 2, &len);
        BN_free(ne[0]);
        BN_free(ne[1]);
        blen = (size_t)len;
        nid = NID_rsaEncryption;
        ptype = V_ASN1_NULL;
    } else if (EVP_PKEY_is_a(k, "ED25519")) {
        nid = NID_ED25519;
        if (EVP_PKEY_get_raw_public_key(k, NULL, &blen) && (bits = OPENSSL_malloc(blen)) &&
            !EVP_PKEY_get_raw_public_key(k, bits, &blen)) {
            OPENSSL_free(bits);
            bits = NULL;
        }
    } else {
        int curve = curve_nid(k);
        if (curve == NID_undef)
            return 0;
        nid = NID_X9_62_id_ecPublicKey;
        ptype = V_ASN1_OBJECT;
        pval = OBJ_nid2obj(curve);
        bits = octets(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, &blen);
        if (bits && bits[0] != 0x04) { /* not uncompressed after all */
            OPENSSL_free(bits);
            return 0;
        }
    }
    if (!bits || blen > INT_MAX)
        goto fail;
    if (!X509_PUBKEY_set0_param(pk, OBJ_nid2obj(nid), ptype, pval, bits, (int)blen))
        goto fail;
    return 1;
fail:
    OPENSSL_free(bits);
    return -1;
}

int kb_pki_spki_der(const EVP_PKEY *k, unsigned char **der)
{
    *der = NULL;
    X509_PUBKEY *pk = X509_PUBKEY_new();
    int r = pk ? kb_pki_spki_set(pk, k) : -1, n = -1;
    if (r == 1)
        n = i2d_X509_PUBKEY(pk, der);
    else if (r == 0)
        n = i2d_PUBKEY(k, der);
    X509_PUBKEY_free(pk);
    return n > 0 ? n : -1;
}

/* SEC1 ECPrivateKey, as i2d_ECPrivateKey writes it for a named curve: version 1, the
 * scalar padded to the order's size, [0] curve OID, [1] public point. */
static unsigned char *sec1_der(const EVP_PKEY *k, int *len)
{
    int curve = curve_nid(k), inc = 1;
    ERR_set_mark();
    /* A key read without its public part asks for it to stay out: leave that to OpenSSL. */
    if (EVP_PKEY_get_int_param(k, OSSL_PKEY_PARAM_EC_INCLUDE_PUBLIC, &inc) && !inc)
        curve = NID_undef;
    ERR_pop_to_mark();
    if (curve == NID_undef)
        return NULL;
    BIGNUM *d = NULL;
    size_t plen = 0;
    unsigned char *pub = octets(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, &plen), *der = NULL;
    int dlen = (EVP_PKEY_get_bits(k) + 7) / 8;
    ASN1_OBJECT *oid = OBJ_nid2obj(curve);
    int olen = oid ? i2d_ASN1_OBJECT(oid, NULL) : -1;
    if (pub && pub[0] == 0x04 && plen < 1024 && olen > 0 && dlen > 0 &&
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d) && BN_num_bytes(d) <= dlen) {
        int bitstr = ASN1_object_size(0, (int)plen + 1, V_ASN1_BIT_STRING);
        int body = ASN1_object_size(0, 1, V_ASN1_INTEGER) + ASN1_object_size(0, dlen, V_ASN1_OCTET_STRING) +
                   ASN1_object_size(1, olen, 0) + ASN1_object_size(1, bitstr, 1);
        *len = ASN1_object_size(1, body, V_ASN1_SEQUENCE);
        unsigned char *p = der = OPENSSL_malloc((size_t)*len);
        if (der) {
            ASN1_put_object(&p, 1, body, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
            ASN1_put_object(&p, 0, 1, V_ASN1_INTEGER, V_ASN1_UNIVERSAL);
            *p++ = 1;
            ASN1_put_object(&p, 0, dlen, V_ASN1_OCTET_STRING, V_ASN1_UNIVERSAL);
            p += BN_bn2binpad(d, p, dlen);
            ASN1_put_object(&p, 1, olen, 0, V_ASN1_CONTEXT_SPECIFIC);
            i2d_ASN1_OBJECT(oid, &p);
            ASN1_put_object(&p, 1, bitstr, 1, V_ASN1_CONTEXT_SPECIFIC);
            ASN1_put_object(&p, 0, (int)plen + 1, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL);
            *p++ = 0; /* no unused bits */
            memcpy(p, pub, plen);
        }
    }
    BN_clear_free(d);
    OPENSSL_free(pub);
    return der;
}

/* PKCS#1 RSAPrivateKey (two primes only; version 0). */
static unsigned char *pkcs1_der(const EVP_PKEY *k, int *len)
{
    static const char *const names[] = {
        OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
        OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    BIGNUM *bn[9] = { NULL }, *third = NULL;
    unsigned char *der = NULL;
    int ok = (bn[0] = BN_new()) != NULL;
    for (int i = 0; ok && i < 8; i++)
        ok = EVP_PKEY_get_bn_param(k, names[i], &bn[i + 1]);
    ERR_set_mark();
    if (ok && EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_FACTOR3, &third))
        ok = 0; /* multi-prime: version 1 with otherPrimeInfos, OpenSSL's job */
    ERR_pop_to_mark();
    if (ok)
        der = int_seq(bn, 9, len);
    for (int i = 0; i < 9; i++)
        BN_clear_free(bn[i]);
    BN_clear_free(third);
    return der;
}

int kb_pki_private_der(const EVP_PKEY *k, unsigned char **der, const char **type)
{
    int len = 0;
    *der = NULL;
    if (EVP_PKEY_is_a(k, "RSA")) {
        *der = pkcs1_der(k, &len);
        *type = "RSA PRIVATE KEY";
    } else if (EVP_PKEY_is_a(k, "EC")) {
        *der = sec1_der(k, &len);
        *type = "EC PRIVATE KEY";
    }
    return *der ? len : -1;
}
