/* The fast key encodings of runtime/pki_der.c against OpenSSL's own encoders, the issued
 * certificate's key (public only, equal to the subject key), and inline key batches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/pki_internal.h"

static void assert_contains_ca(const char *msg)
{
    if (!strstr(msg, "not a CA"))
        fail_msg("'%s' does not say 'not a CA'", msg);
}

static const int ALGS[] = { KB_ALG_RSA2048, KB_ALG_P256, KB_ALG_P384, KB_ALG_ED25519 };
#define N_ALGS (sizeof ALGS / sizeof ALGS[0])

/* What OpenSSL's encoder writes for k: a PEM (trad: traditional private, else public). */
static char *openssl_pem(EVP_PKEY *k, int trad)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(trad ? PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL)
                     : PEM_write_bio_PUBKEY(b, k));
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *r = strndup(p, (size_t)n);
    BIO_free(b);
    return r;
}

/* a and b have the same DER SubjectPublicKeyInfo (OpenSSL's encoder). */
static void assert_same_spki(EVP_PKEY *a, EVP_PKEY *b)
{
    unsigned char *da = NULL, *db = NULL;
    int na = i2d_PUBKEY(a, &da), nb = i2d_PUBKEY(b, &db);
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, (size_t)na);
    OPENSSL_free(da);
    OPENSSL_free(db);
}

/* kboot's encodings of k equal OpenSSL's: SPKI DER, public PEM, traditional private PEM. */
static void check_encodings(EVP_PKEY *k, int expect_fast)
{
    unsigned char *mine = NULL, *ref = NULL;
    int n = kb_pki_spki_der(k, &mine), m = i2d_PUBKEY(k, &ref);
    assert_true(n > 0);
    assert_int_equal(n, m);
    assert_memory_equal(mine, ref, (size_t)n);
    OPENSSL_free(mine);
    OPENSSL_free(ref);

    kb_err e;
    size_t len;
    char *pub = kb_pki_key_public_pem(k, &len, &e), *want = openssl_pem(k, 0);
    assert_string_equal(pub, want);
    free(pub);
    free(want);

    if (EVP_PKEY_is_a(k, "ED25519") || !kb_pki_key_is_private(k))
        return;
    const char *type;
    unsigned char *der = NULL;
    int dl = kb_pki_private_der(k, &der, &type);
    assert_int_equal(dl > 0, expect_fast);
    if (der)
        OPENSSL_clear_free(der, (size_t)dl);
    char *priv = kb_pki_key_pem(k, KB_KEY_TRADITIONAL, &len, &e);
    want = openssl_pem(k, 1);
    assert_non_null(priv);
    assert_string_equal(priv, want);
    kb_pki_secret_free(priv, len);
    free(want);
}

static void test_encodings_match_openssl(void **state)
{
    for (size_t i = 0; i < N_ALGS; i++) {
        kb_err e;
        EVP_PKEY *k = kb_pki_keygen(ALGS[i], &e);
        assert_non_null(k);
        check_encodings(k, 1);
        EVP_PKEY *pub = kb_pki_public_copy(k, &e);
        assert_non_null(pub);
        assert_false(kb_pki_key_is_private(pub));
        assert_true(kb_pki_key_eq(pub, k));
        assert_same_spki(pub, k);
        check_encodings(pub, 1);
        EVP_PKEY_free(pub);
        EVP_PKEY_free(k);
    }
}

/* Keys outside the fast path keep OpenSSL's encoders, with the same results. */
static void test_other_keys_fall_back(void **state)
{
    EVP_PKEY *explicit = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_true(EVP_PKEY_set_utf8_string_param(explicit, OSSL_PKEY_PARAM_EC_ENCODING,
                                               OSSL_PKEY_EC_ENCODING_EXPLICIT));
    X509_PUBKEY *pk = X509_PUBKEY_new();
    assert_int_equal(kb_pki_spki_set(pk, explicit), 0);
    X509_PUBKEY_free(pk);
    check_encodings(explicit, 0);

    EVP_PKEY *nopub = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_true(EVP_PKEY_set_int_param(nopub, OSSL_PKEY_PARAM_EC_INCLUDE_PUBLIC, 0));
    check_encodings(nopub, 0);

    /* A subject key kboot cannot generate still gets a public-only certificate key. */
    EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    pk = X509_PUBKEY_new();
    assert_int_equal(kb_pki_spki_set(pk, x25519), 0);
    X509_PUBKEY_free(pk);
    kb_err e;
    EVP_PKEY *cak = kb_pki_keygen(KB_ALG_P256, &e);
    struct kb_cert_spec s = { .cn = "ca", .path_len = -1 };
    X509 *ca = kb_pki_self_signed_ca(cak, &s, &e);
    s.cn = "x25519";
    X509 *c = kb_pki_sign(&s, x25519, ca, cak, &e);
    assert_non_null(c);
    assert_true(kb_pki_key_eq(X509_get0_pubkey(c), x25519));
    assert_false(kb_pki_key_is_private(X509_get0_pubkey(c)));
    X509_free(c);
    X509_free(ca);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(x25519);
    EVP_PKEY_free(nopub);
    EVP_PKEY_free(explicit);
}

/* Every issued certificate carries the subject's public key only, equal to the key, and the
 * object equals the certificate parsed back from its own DER. */
static void check_cert(X509 *c, EVP_PKEY *k)
{
    assert_non_null(c);
    EVP_PKEY *pub = X509_get0_pubkey(c);
    assert_non_null(pub);
    assert_true(kb_pki_key_eq(pub, k));
    assert_false(kb_pki_key_is_private(pub));
    assert_ptr_not_equal(pub, k);
    char p1[KB_PIN_LEN], p2[KB_PIN_LEN];
    kb_err e;
    assert_int_equal(kb_pki_cert_pin(c, p1, &e), 0);
    assert_int_equal(kb_pki_key_pin(k, p2, &e), 0);
    assert_string_equal(p1, p2);
    size_t len;
    unsigned char *der = kb_pki_cert_der(c, &len, &e);
    const unsigned char *p = der;
    X509 *again = d2i_X509(NULL, &p, (long)len);
    assert_int_equal(X509_cmp(again, c), 0);
    X509_free(again);
    free(der);
}

static void test_cert_key_is_public_copy(void **state)
{
    for (size_t i = 0; i < N_ALGS; i++) {
        kb_err e;
        EVP_PKEY *cak = kb_pki_keygen(ALGS[i], &e), *k = kb_pki_keygen(ALGS[(i + 1) % N_ALGS], &e);
        struct kb_cert_spec s = { .cn = "ca", .path_len = -1 };
        X509 *ca = kb_pki_self_signed_ca(cak, &s, &e);
        check_cert(ca, cak);
        s.cn = "leaf";
        X509 *leaf = kb_pki_sign(&s, k, ca, cak, &e);
        check_cert(leaf, k);
        assert_int_equal(kb_pki_verify(leaf, &ca, 1, 0, &e), 0);
        /* The certificate's own key object gives the same key again. */
        X509 *viapub = kb_pki_sign(&s, X509_get0_pubkey(leaf), ca, cak, &e);
        check_cert(viapub, k);
        X509_REQ *r = kb_pki_csr(k, &s, &e);
        X509 *fromcsr = kb_pki_sign_csr(&s, r, ca, cak, &e);
        check_cert(fromcsr, k);
        assert_true(kb_pki_issued_by(fromcsr, ca));
        assert_int_equal(kb_pki_verify(fromcsr, &ca, 1, 0, &e), 0);
        X509_free(fromcsr);
        X509_REQ_free(r);
        X509_free(viapub);
        X509_free(leaf);
        X509_free(ca);
        EVP_PKEY_free(k);
        EVP_PKEY_free(cak);
    }
}

static void test_cheap_batch(void **state)
{
    enum { N = 16 };
    int algs[N];
    EVP_PKEY *keys[N];
    for (int threads = 0; threads <= 1; threads++) {
        for (int i = 0; i < N; i++) /* P-256 mostly, RSA in the middle goes to the pool */
            algs[i] = i == 5 ? KB_ALG_RSA2048 : i % 4 == 1 ? KB_ALG_P384 : i % 4 == 3 ? KB_ALG_ED25519 : KB_ALG_P256;
        kb_err e;
        assert_int_equal(kb_pki_keygen_batch(algs, N, keys, threads, &e), 0);
        for (int i = 0; i < N; i++) {
            assert_int_equal(kb_pki_key_alg(keys[i]), algs[i]);
            assert_true(kb_pki_key_is_private(keys[i]));
            for (int j = 0; j < i; j++)
                assert_false(kb_pki_key_eq(keys[i], keys[j]));
        }
        check_encodings(keys[0], 1);
        check_encodings(keys[1], 1);
        for (int i = 0; i < N; i++)
            EVP_PKEY_free(keys[i]);
    }
}

/* A compressed-point EC key: the encoders honour the key's point format, so does kboot. */
static void test_compressed_point(void **state)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_true(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                               OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED));
    check_encodings(k, 0);
    kb_err e;
    EVP_PKEY *pub = kb_pki_public_copy(k, &e);
    assert_same_spki(pub, k);
    EVP_PKEY_free(pub);
    struct kb_cert_spec s = { .cn = "compressed", .path_len = -1 };
    X509 *ca = kb_pki_self_signed_ca(k, &s, &e);
    check_cert(ca, k);
    assert_same_spki(X509_get0_pubkey(ca), k);
    X509_free(ca);
    EVP_PKEY_free(k);
}

/* defer_key: same bytes, no key object until kb_pki_cert_complete; usable as a CA meanwhile. */
static void test_defer_key(void **state)
{
    kb_err e;
    EVP_PKEY *cak = kb_pki_keygen(KB_ALG_ED25519, &e), *other = kb_pki_keygen(KB_ALG_ED25519, &e);
    EVP_PKEY *k = kb_pki_keygen(KB_ALG_P256, &e);
    struct kb_cert_spec s = { .cn = "ca", .path_len = -1, .serial_hex = "01", .not_before = 1700000000,
                              .not_after = 1800000000 };
    X509 *full = kb_pki_self_signed_ca(cak, &s, &e);
    s.defer_key = 1;
    X509 *ca = kb_pki_self_signed_ca(cak, &s, &e);
    assert_non_null(ca);
    size_t n1, n2;
    unsigned char *d1 = kb_pki_cert_der(full, &n1, &e), *d2 = kb_pki_cert_der(ca, &n2, &e);
    assert_int_equal(n1, n2);
    assert_memory_equal(d1, d2, n1); /* Ed25519 signatures are deterministic */
    free(d1);
    free(d2);
    ERR_set_mark();
    assert_null(X509_get0_pubkey(ca));
    ERR_pop_to_mark();

    /* The deferred CA signs; the checks on it work without its key object. */
    s.cn = "leaf";
    s.serial_hex = "02";
    X509 *leaf = kb_pki_sign(&s, k, ca, cak, &e);
    assert_non_null(leaf);
    assert_int_equal(ERR_peek_error(), 0);
    assert_null(kb_pki_sign(&s, k, ca, other, &e));
    assert_string_equal(e.msg, "CA key does not match CA certificate");
    assert_null(kb_pki_sign(&s, k, leaf, k, &e));
    assert_contains_ca(e.msg);
    s.defer_key = 0;
    X509 *leaf2 = kb_pki_sign(&s, k, full, cak, &e);
    d1 = kb_pki_cert_der(leaf, &n1, &e);
    d2 = kb_pki_cert_der(leaf2, &n2, &e);
    assert_int_equal(n1, n2);
    assert_memory_equal(d1, d2, n1);
    free(d1);
    free(d2);

    X509 *same = full;
    assert_ptr_equal(kb_pki_cert_complete(full, &e), same);
    ca = kb_pki_cert_complete(ca, &e);
    leaf = kb_pki_cert_complete(leaf, &e);
    check_cert(ca, cak);
    check_cert(leaf, k);
    assert_int_equal(kb_pki_verify(leaf, &ca, 1, 1750000000, &e), 0);
    assert_int_equal(X509_cmp(leaf, leaf2), 0);
    X509_free(leaf2);
    X509_free(leaf);
    X509_free(ca);
    X509_free(full);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    EVP_PKEY_free(cak);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encodings_match_openssl), cmocka_unit_test(test_other_keys_fall_back),
        cmocka_unit_test(test_cert_key_is_public_copy), cmocka_unit_test(test_cheap_batch),
        cmocka_unit_test(test_compressed_point),        cmocka_unit_test(test_defer_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
