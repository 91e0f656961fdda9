/* runtime/pki*.c and keypool.c without Lua. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kboot/pki.h"

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

static void test_alg_names(void **state)
{
    assert_int_equal(kb_pki_alg_parse("RSA-2048"), KB_ALG_RSA2048);
    assert_int_equal(kb_pki_alg_parse("ECDSA-P384"), KB_ALG_P384);
    assert_int_equal(kb_pki_alg_parse("ED25519"), KB_ALG_ED25519);
    assert_int_equal(kb_pki_alg_parse("rsa-2048"), -1);
    assert_int_equal(kb_pki_alg_parse(NULL), -1);
    assert_string_equal(kb_pki_alg_name(KB_ALG_P256), "ECDSA-P256");
    assert_null(kb_pki_alg_name(KB_ALG_COUNT));
    assert_null(kb_pki_alg_name(-1));
}

static void test_keygen_each(void **state)
{
    /* RSA-3072/4096 only in the integration test: slow under valgrind. */
    const struct { int alg; const char *type; int bits; const char *curve; } want[] = {
        { KB_ALG_RSA2048, "RSA", 2048, NULL }, { KB_ALG_P256, "EC", 256, "P-256" },
        { KB_ALG_P384, "EC", 384, "P-384" },   { KB_ALG_ED25519, "ED25519", 256, NULL },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        kb_err e;
        EVP_PKEY *k = kb_pki_keygen(want[i].alg, &e);
        assert_non_null(k);
        assert_string_equal(kb_pki_key_type(k), want[i].type);
        assert_int_equal(kb_pki_key_bits(k), want[i].bits);
        if (want[i].curve)
            assert_string_equal(kb_pki_key_curve(k), want[i].curve);
        else
            assert_null(kb_pki_key_curve(k));
        assert_int_equal(kb_pki_key_alg(k), want[i].alg);
        assert_true(kb_pki_key_is_private(k));
        EVP_PKEY *pub = kb_pki_public_copy(k, &e);
        assert_non_null(pub);
        assert_false(kb_pki_key_is_private(pub));
        assert_true(kb_pki_key_eq(k, pub));
        EVP_PKEY_free(pub);
        EVP_PKEY_free(k);
    }
    kb_err e;
    assert_null(kb_pki_keygen(99, &e));
    assert_contains(e.msg, "unknown key algorithm");
}

static void test_batch_distinct(void **state)
{
    enum { N = 12 };
    int algs[N];
    EVP_PKEY *keys[N];
    for (int threads = 0; threads <= 4; threads += 4) { /* 0: one per core */
        for (int i = 0; i < N; i++)
            algs[i] = i % 3 == 0 ? KB_ALG_ED25519 : KB_ALG_P256;
        kb_err e;
        assert_int_equal(kb_pki_keygen_batch(algs, N, keys, threads, &e), 0);
        for (int i = 0; i < N; i++) {
            assert_non_null(keys[i]);
            assert_int_equal(kb_pki_key_alg(keys[i]), algs[i]);
            for (int j = 0; j < i; j++)
                assert_false(kb_pki_key_eq(keys[i], keys[j]));
        }
        for (int i = 0; i < N; i++)
            EVP_PKEY_free(keys[i]);
    }
    assert_true(kb_pki_ncpu() >= 1);
    kb_err e;
    assert_int_equal(kb_pki_keygen_batch(algs, 0, keys, 0, &e), 0);
}

static void test_batch_bad_alg_is_all_or_nothing(void **state)
{
    int algs[3] = { KB_ALG_P256, 42, KB_ALG_P256 };
    EVP_PKEY *keys[3] = { (EVP_PKEY *)1, (EVP_PKEY *)1, (EVP_PKEY *)1 };
    kb_err e;
    assert_int_equal(kb_pki_keygen_batch(algs, 3, keys, 2, &e), -1);
    assert_contains(e.msg, "unknown key algorithm 42");
    for (int i = 0; i < 3; i++)
        assert_null(keys[i]);
}

static void test_key_pem_roundtrip(void **state)
{
    kb_err e;
    EVP_PKEY *k = kb_pki_keygen(KB_ALG_P256, &e);
    size_t len;
    char *pem = kb_pki_key_pem(k, KB_KEY_TRADITIONAL, &len, &e);
    assert_non_null(pem);
    assert_int_equal(strncmp(pem, "-----BEGIN EC PRIVATE KEY-----\n", 31), 0);
    assert_int_equal(strlen(pem), len);
    EVP_PKEY *l = kb_pki_load_key(pem, len, &e);
    assert_non_null(l);
    assert_true(kb_pki_key_eq(k, l));
    kb_pki_secret_free(pem, len);

    char *pub = kb_pki_key_public_pem(k, &len, &e);
    EVP_PKEY *p = kb_pki_load_key(pub, len, &e);
    assert_non_null(p);
    assert_false(kb_pki_key_is_private(p));
    assert_null(kb_pki_key_pem(p, KB_KEY_PKCS8, &len, &e));
    assert_contains(e.msg, "no private part");
    char pin1[KB_PIN_LEN], pin2[KB_PIN_LEN];
    assert_int_equal(kb_pki_key_pin(k, pin1, &e), 0);
    assert_int_equal(kb_pki_key_pin(p, pin2, &e), 0);
    assert_string_equal(pin1, pin2);
    assert_int_equal(strlen(pin1), 71);
    free(pub);
    EVP_PKEY_free(p);
    EVP_PKEY_free(l);

    EVP_PKEY *ed = kb_pki_keygen(KB_ALG_ED25519, &e);
    assert_null(kb_pki_key_pem(ed, KB_KEY_TRADITIONAL, &len, &e));
    assert_contains(e.msg, "use pkcs8");
    EVP_PKEY_free(ed);
    EVP_PKEY_free(k);
}

static void test_load_key_errors(void **state)
{
    kb_err e;
    assert_null(kb_pki_load_key("nothing", 7, &e));
    assert_string_equal(e.msg, "no PEM data found");
    assert_string_equal(e.op, "pem_decode");
    size_t n;
    char *pem = kb_pki_pem_encode("ENCRYPTED PRIVATE KEY", (const unsigned char *)"x", 1, &n, &e);
    assert_null(kb_pki_load_key(pem, n, &e));
    assert_contains(e.msg, "encrypted private keys are not supported");
    free(pem);
    pem = kb_pki_pem_encode("PRIVATE KEY", (const unsigned char *)"xyz", 3, &n, &e);
    assert_null(kb_pki_load_key(pem, n, &e));
    assert_contains(e.msg, "cannot parse PRIVATE KEY");
    free(pem);
}

static const char *const dns[] = { "kubernetes", "kubernetes.default" };
static const char *const ips[] = { "10.96.0.1", "fd00::1" };
static const char *const orgs[] = { "system:masters" };
static const char *const ekus[] = { "server auth" };

static X509 *make_ca(EVP_PKEY **key)
{
    kb_err e;
    *key = kb_pki_keygen(KB_ALG_P256, &e);
    struct kb_cert_spec s = { .cn = "ca", .path_len = -1 };
    X509 *ca = kb_pki_self_signed_ca(*key, &s, &e);
    assert_non_null(ca);
    return ca;
}

static void test_sign_and_verify(void **state)
{
    kb_err e;
    EVP_PKEY *cak, *cak2;
    X509 *ca = make_ca(&cak), *ca2 = make_ca(&cak2);
    EVP_PKEY *k = kb_pki_keygen(KB_ALG_ED25519, &e);
    struct kb_cert_spec s = {
        .cn = "kube-apiserver", .o = orgs, .n_o = 1, .dns = dns, .n_dns = 2, .ip = ips, .n_ip = 2,
        .ekus = ekus, .n_ekus = 1, .path_len = -1, .serial_hex = "1f",
    };
    X509 *leaf = kb_pki_sign(&s, k, ca, cak, &e);
    assert_non_null(leaf);
    assert_int_equal(kb_pki_verify(leaf, &ca, 1, 0, &e), 0);
    assert_true(kb_pki_issued_by(leaf, ca));
    assert_false(kb_pki_issued_by(leaf, ca2));
    assert_int_equal(kb_pki_verify(leaf, &ca2, 1, 0, &e), -1);
    assert_contains(e.msg, "unable to get local issuer certificate");
    assert_int_equal(kb_pki_verify(leaf, &ca, 1, time(NULL) + 400 * 86400, &e), -1);
    assert_contains(e.msg, "certificate has expired");
    assert_int_equal(kb_pki_cert_not_after(leaf) - kb_pki_cert_not_before(leaf), 365 * 86400);
    char *serial = kb_pki_cert_serial_hex(leaf);
    assert_string_equal(serial, "1f");
    free(serial);
    int present;
    unsigned ku = kb_pki_cert_usages(leaf, &present);
    assert_true(present);
    assert_int_equal(ku, kb_pki_usage_bit("digital signature") | kb_pki_usage_bit("key encipherment"));
    int nids[4];
    assert_int_equal(kb_pki_cert_ekus(leaf, nids, 4), 1);
    assert_int_equal(nids[0], kb_pki_eku_nid("server auth"));
    char pin1[KB_PIN_LEN], pin2[KB_PIN_LEN];
    kb_pki_cert_pin(leaf, pin1, &e);
    kb_pki_key_pin(k, pin2, &e);
    assert_string_equal(pin1, pin2);

    /* the scalar facts in one call: a v3 leaf, not a CA, with both key identifiers; the CA's
     * SKI is the leaf's AKI */
    struct kb_cert_info li, ci;
    assert_int_equal(kb_pki_cert_info(leaf, &li, &e), 0);
    assert_int_equal(kb_pki_cert_info(ca, &ci, &e), 0);
    assert_int_equal(li.version, 3);
    assert_string_equal(li.serial_hex, "1f");
    assert_false(li.is_ca);
    assert_int_equal(li.path_len, -1);
    assert_true(ci.is_ca);
    assert_int_equal(li.not_after - li.not_before, 365 * 86400);
    assert_string_equal(li.sig_alg, OBJ_nid2ln(X509_get_signature_nid(leaf)));
    /* as Go's x509 (kubeadm): a leaf carries no SKI of its own, only the AKI of its CA */
    assert_null(li.ski_hex);
    assert_non_null(li.aki_hex);
    assert_non_null(ci.ski_hex);
    assert_string_equal(li.aki_hex, ci.ski_hex);
    kb_pki_cert_info_free(&li);
    kb_pki_cert_info_free(&ci);
    kb_pki_cert_info_free(&li); /* twice is safe */
    assert_string_equal(kb_pki_nid_name(NID_undef), "unknown");

    size_t len;
    char *pem = kb_pki_cert_pem(leaf, &len, &e);
    X509 *again = kb_pki_load_cert(pem, len, &e);
    assert_non_null(again);
    assert_int_equal(X509_cmp(again, leaf), 0);
    free(pem);
    X509_free(again);

    /* The wrong CA key is refused before anything is signed. */
    assert_null(kb_pki_sign(&s, k, ca, cak2, &e));
    assert_string_equal(e.msg, "CA key does not match CA certificate");
    assert_null(kb_pki_sign(&s, k, leaf, k, &e));
    assert_contains(e.msg, "not a CA");

    X509_free(leaf);
    X509_free(ca);
    X509_free(ca2);
    EVP_PKEY_free(k);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(cak2);
}

static void test_spec_check(void **state)
{
    kb_err e;
    const char *const bad_ip[] = { "10.0.0.1", "10.0.0.256" };
    const char *const bad_usage[] = { "cert sign", "signing" };
    const char *const bad_eku[] = { "any" };
    const char *const bad_dns[] = { "a b" };
    struct kb_cert_spec s = { .path_len = -1 };
    assert_int_equal(kb_pki_spec_check(&s, &e), 0);
    s.ip = bad_ip, s.n_ip = 2;
    assert_int_equal(kb_pki_spec_check(&s, &e), -1);
    assert_string_equal(e.msg, "ip[2]: invalid IP address '10.0.0.256'");
    s.n_ip = 0, s.usages = bad_usage, s.n_usages = 2;
    assert_int_equal(kb_pki_spec_check(&s, &e), -1);
    assert_string_equal(e.msg, "usages[2]: unknown key usage 'signing'");
    s.n_usages = 0, s.ekus = bad_eku, s.n_ekus = 1;
    assert_int_equal(kb_pki_spec_check(&s, &e), -1);
    assert_string_equal(e.msg, "ext_key_usages[1]: unknown extended key usage 'any'");
    s.n_ekus = 0, s.dns = bad_dns, s.n_dns = 1;
    assert_int_equal(kb_pki_spec_check(&s, &e), -1);
    assert_contains(e.msg, "dns[1]: invalid character");
    s.n_dns = 0, s.path_len = 2;
    assert_int_equal(kb_pki_spec_check(&s, &e), -1);
    assert_contains(e.msg, "path_len");
    s.path_len = -1, s.serial_hex = "0";
    assert_int_equal(kb_pki_spec_check(&s, &e), -1);
    assert_contains(e.msg, "serial");
    s.serial_hex = NULL, s.not_before = 2000, s.not_after = 1000;
    assert_int_equal(kb_pki_spec_check(&s, &e), -1);
    assert_contains(e.msg, "not_after");

    /* The signing functions check too (a caller that skipped the check). */
    EVP_PKEY *cak;
    X509 *ca = make_ca(&cak);
    assert_null(kb_pki_sign(&s, cak, ca, cak, &e));
    assert_contains(e.msg, "not_after");
    X509_free(ca);
    EVP_PKEY_free(cak);
}

static void test_ip_parse(void **state)
{
    unsigned char b[16];
    assert_int_equal(kb_pki_ip_parse("192.0.2.1", b), 4);
    assert_int_equal(b[0], 192);
    assert_int_equal(kb_pki_ip_parse("::1", b), 16);
    assert_int_equal(b[15], 1);
    assert_int_equal(kb_pki_ip_parse("1.2.3", b), -1);
    assert_int_equal(kb_pki_ip_parse("", b), -1);
}

static void test_csr(void **state)
{
    kb_err e;
    EVP_PKEY *k = kb_pki_keygen(KB_ALG_P384, &e);
    struct kb_cert_spec s = { .cn = "system:node:n1", .o = orgs, .n_o = 1, .dns = dns, .n_dns = 1,
                              .path_len = -1 };
    X509_REQ *r = kb_pki_csr(k, &s, &e);
    assert_non_null(r);
    size_t len;
    char *pem = kb_pki_csr_pem(r, &len, &e);
    X509_REQ *l = kb_pki_load_csr(pem, len, &e);
    assert_non_null(l);
    free(pem);

    /* Flip a byte of the subject: the self-signature no longer holds. */
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(r, &der);
    unsigned char *hit = memmem(der, (size_t)n, "node:n1", 7);
    assert_non_null(hit);
    hit[6] = '2';
    char *bad = kb_pki_pem_encode("CERTIFICATE REQUEST", der, (size_t)n, &len, &e);
    assert_null(kb_pki_load_csr(bad, len, &e));
    assert_string_equal(e.msg, "CSR signature is invalid");
    free(bad);
    OPENSSL_free(der);

    EVP_PKEY *cak;
    X509 *ca = make_ca(&cak);
    struct kb_cert_spec none = { .path_len = -1 };
    X509 *c = kb_pki_sign_csr(&none, l, ca, cak, &e);
    assert_non_null(c);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(c), X509_REQ_get_subject_name(r)), 0);
    assert_true(kb_pki_key_eq(X509_get0_pubkey(c), k));
    X509_free(c);
    X509_free(ca);
    EVP_PKEY_free(cak);
    X509_REQ_free(l);
    X509_REQ_free(r);
    EVP_PKEY_free(k);
}

static void test_pem_codec(void **state)
{
    kb_err e;
    const unsigned char der[] = { 0, 1, 2, 255 };
    size_t len, n;
    char *a = kb_pki_pem_encode("A", der, sizeof der, &len, &e);
    char *b = kb_pki_pem_encode("B B", der, 2, &len, &e);
    size_t tl = strlen(a) + strlen(b) + 20;
    char *text = malloc(tl);
    snprintf(text, tl, "x\n%sy\n%s", a, b);
    struct kb_pem_block *bl;
    assert_int_equal(kb_pki_pem_decode(text, strlen(text), &bl, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(bl[0].type, "A");
    assert_int_equal(bl[0].len, 4);
    assert_memory_equal(bl[0].der, der, 4);
    assert_string_equal(bl[1].type, "B B");
    assert_int_equal(bl[1].len, 2);
    kb_pki_pem_free(bl, n);
    assert_int_equal(kb_pki_pem_decode("", 0, &bl, &n, &e), -1);
    assert_string_equal(e.msg, "no PEM data found");
    assert_null(kb_pki_pem_encode("a-b", der, 1, &len, &e));
    assert_contains(e.msg, "invalid PEM type");
    free(text);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_names),       cmocka_unit_test(test_keygen_each),
        cmocka_unit_test(test_batch_distinct),  cmocka_unit_test(test_batch_bad_alg_is_all_or_nothing),
        cmocka_unit_test(test_key_pem_roundtrip), cmocka_unit_test(test_load_key_errors),
        cmocka_unit_test(test_sign_and_verify), cmocka_unit_test(test_spec_check),
        cmocka_unit_test(test_ip_parse),        cmocka_unit_test(test_csr),
        cmocka_unit_test(test_pem_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
