/* cmocka tests of runtime/crypto.c: published test vectors and edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kboot/crypto.h"

/* Hex string to bytes for the test vectors; returns the length. */
static size_t unhex(const char *s, unsigned char *out)
{
    size_t n = 0;
    kb_err e;
    assert_int_equal(kb_crypto_unhex(s, strlen(s), out, &n, &e), 0);
    return n;
}

static void assert_hex(const unsigned char *got, size_t n, const char *want)
{
    char hex[1024];
    assert_true(2 * n < sizeof hex);
    kb_crypto_hex(got, n, hex);
    assert_string_equal(hex, want);
}

/* ---- hex ---- */

static void test_hex(void **state)
{
    char out[16];
    unsigned char b[8];
    size_t n = 99;
    kb_err e;
    kb_crypto_hex("\x00\x01\xab\xff", 4, out);
    assert_string_equal(out, "0001abff");
    kb_crypto_hex("", 0, out);
    assert_string_equal(out, "");
    assert_int_equal(kb_crypto_unhex("00ABff", 6, b, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(b, "\x00\xab\xff", 3);
    assert_int_equal(kb_crypto_unhex("", 0, b, &n, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kb_crypto_unhex("abc", 3, b, &n, &e), -1);
    assert_string_equal(e.msg, "invalid hex: odd length 3");
    assert_int_equal(kb_crypto_unhex("0g", 2, b, &n, &e), -1);
    assert_string_equal(e.msg, "invalid hex: byte 0x67 at offset 1 is not a hex digit");
    assert_string_equal(e.op, "unhex");
}

/* ---- base64 ---- */

static void check_b64(const char *in, const char *std, const char *url)
{
    char out[128];
    unsigned char back[128];
    size_t n = strlen(in), m = 0;
    kb_err e;
    assert_int_equal(kb_crypto_base64_len(n, 0), strlen(std));
    assert_int_equal(kb_crypto_base64(in, n, out, 0), strlen(std));
    assert_string_equal(out, std);
    assert_int_equal(kb_crypto_base64_len(n, 1), strlen(url));
    assert_int_equal(kb_crypto_base64(in, n, out, 1), strlen(url));
    assert_string_equal(out, url);
    assert_int_equal(kb_crypto_unbase64(std, strlen(std), back, &m, 0, &e), 0);
    assert_int_equal(m, n);
    assert_memory_equal(back, in, n);
    assert_int_equal(kb_crypto_unbase64(url, strlen(url), back, &m, 1, &e), 0);
    assert_int_equal(m, n);
    assert_memory_equal(back, in, n);
}

/* RFC 4648 section 10 test vectors, both alphabets. */
static void test_base64_rfc4648(void **state)
{
    check_b64("", "", "");
    check_b64("f", "Zg==", "Zg");
    check_b64("fo", "Zm8=", "Zm8");
    check_b64("foo", "Zm9v", "Zm9v");
    check_b64("foob", "Zm9vYg==", "Zm9vYg");
    check_b64("fooba", "Zm9vYmE=", "Zm9vYmE");
    check_b64("foobar", "Zm9vYmFy", "Zm9vYmFy");
    check_b64("\xfb\xff\xbf", "+/+/", "-_-_");
}

static void test_base64_binary_round_trip(void **state)
{
    unsigned char in[256], back[256 + 3];
    char enc[400];
    kb_err e;
    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)(255 - i);
    for (size_t n = 0; n <= sizeof in; n += 37) {
        for (int url = 0; url <= 1; url++) {
            size_t len = kb_crypto_base64(in, n, enc, url), m = 0;
            assert_int_equal(len, kb_crypto_base64_len(n, url));
            assert_true(kb_crypto_unbase64_max(len) <= sizeof back);
            assert_int_equal(kb_crypto_unbase64(enc, len, back, &m, url, &e), 0);
            assert_int_equal(m, n);
            assert_memory_equal(back, in, n);
        }
    }
}

static void b64_fails(const char *s, int url, const char *msg)
{
    unsigned char out[64];
    size_t m = 0;
    kb_err e;
    assert_int_equal(kb_crypto_unbase64(s, strlen(s), out, &m, url, &e), -1);
    assert_string_equal(e.msg, msg);
}

static void test_base64_strict(void **state)
{
    unsigned char out[64];
    size_t m = 0;
    kb_err e;
    /* Line breaks (as in wrapped PEM bodies or `base64` output) are skipped. */
    assert_int_equal(kb_crypto_unbase64("Zm9v\nYmE=\r\n", 11, out, &m, 0, &e), 0);
    assert_int_equal(m, 5);
    assert_memory_equal(out, "fooba", 5);
    b64_fails("Zm9v YmFy", 0, "invalid base64: byte 0x20 at offset 4 is not in the alphabet");
    b64_fails("Zm9v*", 0, "invalid base64: byte 0x2a at offset 4 is not in the alphabet");
    b64_fails("Zg", 0, "invalid base64: missing '=' padding at the end");
    b64_fails("Zg=", 0, "invalid base64: missing '=' padding at the end");
    b64_fails("Zm8", 0, "invalid base64: missing '=' padding at the end");
    b64_fails("Zg===", 0, "invalid base64: misplaced '=' at offset 4");
    b64_fails("Zm9v=", 0, "invalid base64: misplaced '=' at offset 4");
    b64_fails("=Zg=", 0, "invalid base64: misplaced '=' at offset 0");
    b64_fails("Zg==Zg==", 0, "invalid base64: data after '=' padding at offset 4");
    b64_fails("Zm9vY", 0, "invalid base64: truncated input (one character left over)");
    b64_fails("Zh==", 0, "invalid base64: non-zero bits after the last byte (not canonical)");
    b64_fails("Zm9=", 0, "invalid base64: non-zero bits after the last byte (not canonical)");
    b64_fails("Zm9v-_", 0, "invalid base64: byte 0x2d at offset 4 is not in the alphabet");
    /* URL mode: no padding, no '+' '/', no line breaks. */
    b64_fails("Zg==", 1, "invalid base64url: '=' padding at offset 2 (base64url has none)");
    b64_fails("Zm9v+", 1, "invalid base64url: byte 0x2b at offset 4 is not in the alphabet");
    b64_fails("Zm9v\nYg", 1, "invalid base64url: byte 0x0a at offset 4 is not in the alphabet");
    b64_fails("Zm9vY", 1, "invalid base64url: truncated input (one character left over)");
    b64_fails("Zh", 1, "invalid base64url: non-zero bits after the last byte (not canonical)");
    assert_int_equal(kb_crypto_unbase64("*", 1, out, &m, 0, &e), -1);
    assert_string_equal(e.op, "unbase64");
    assert_int_equal(kb_crypto_unbase64("\x80", 1, out, &m, 1, &e), -1);
    assert_string_equal(e.op, "unbase64url");
}

/* ---- SHA-256 and HMAC ---- */

static void test_sha256(void **state)
{
    unsigned char md[KB_SHA256_LEN];
    kb_err e;
    assert_int_equal(kb_crypto_sha256("", 0, md, &e), 0);
    assert_hex(md, sizeof md, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(kb_crypto_sha256("abc", 3, md, &e), 0);
    assert_hex(md, sizeof md, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* RFC 4231 section 4, HMAC-SHA-256 results. */
static void test_hmac_rfc4231(void **state)
{
    static const struct {
        const char *key, *data, *mac;
    } tc[] = {
        { "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
        { "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
          "dddddddddddddd",
          "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
        { "0102030405060708090a0b0c0d0e0f10111213141516171819",
          "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
          "cdcdcdcdcdcdcd",
          "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
        /* Test case 5 compares only the first 128 bits. */
        { "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "546573742057697468205472756e636174696f6e",
          "a3b6167473100ee06e0c796c2955552b" },
    };
    unsigned char key[200], data[200], mac[KB_SHA256_LEN];
    char hex[2 * KB_SHA256_LEN + 1];
    kb_err e;
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        size_t kn = unhex(tc[i].key, key), dn = unhex(tc[i].data, data);
        assert_int_equal(kb_crypto_hmac_sha256(key, kn, data, dn, mac, &e), 0);
        kb_crypto_hex(mac, sizeof mac, hex);
        assert_memory_equal(hex, tc[i].mac, strlen(tc[i].mac));
    }
    /* Test cases 6 and 7: a 131-byte key, longer than the block, is hashed first. */
    memset(key, 0xaa, 131);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    assert_int_equal(kb_crypto_hmac_sha256(key, 131, d6, strlen(d6), mac, &e), 0);
    assert_hex(mac, sizeof mac, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    const char *d7 = "This is a test using a larger than block-size key and a larger than block-size "
                     "data. The key needs to be hashed before being used by the HMAC algorithm.";
    assert_int_equal(kb_crypto_hmac_sha256(key, 131, d7, strlen(d7), mac, &e), 0);
    assert_hex(mac, sizeof mac, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static void test_hmac_empty_key(void **state)
{
    unsigned char mac[KB_SHA256_LEN];
    kb_err e;
    assert_int_equal(kb_crypto_hmac_sha256("", 0, "", 0, mac, &e), 0);
    assert_hex(mac, sizeof mac, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* ---- AES-256-GCM ---- */

/* McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-15 (AES-256,
 * 96-bit IV, no AAD), also in NIST's GCM test vectors. */
static void test_gcm_known_answers(void **state)
{
    static const struct {
        const char *key, *iv, *pt, *ct, *tag;
    } tc[] = {
        { "0000000000000000000000000000000000000000000000000000000000000000",
          "000000000000000000000000", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
        { "0000000000000000000000000000000000000000000000000000000000000000",
          "000000000000000000000000", "00000000000000000000000000000000",
          "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919" },
        { "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
          "cafebabefacedbaddecaf888",
          "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
          "49a6b525b16aedf5aa0de657ba637b391aafd255",
          "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
          "56828838c5f61e6393ba7a0abcc9f662898015ad",
          "b094dac5d93471bdec1a502270e3cc6c" },
    };
    unsigned char key[32], iv[12], pt[64], ct[64], tag[16], blob[64 + KB_GCM_OVERHEAD], back[64];
    kb_err e;
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        assert_int_equal(unhex(tc[i].key, key), 32);
        assert_int_equal(unhex(tc[i].iv, iv), 12);
        size_t n = unhex(tc[i].pt, pt);
        assert_int_equal(unhex(tc[i].ct, ct), n);
        unhex(tc[i].tag, tag);
        assert_int_equal(kb_crypto_aes_gcm_seal_nonce(key, iv, pt, n, blob, &e), 0);
        assert_memory_equal(blob, iv, 12);
        if (n)
            assert_memory_equal(blob + 12, ct, n);
        assert_memory_equal(blob + 12 + n, tag, 16);
        size_t m = 99;
        assert_int_equal(kb_crypto_aes_gcm_open(key, blob, n + KB_GCM_OVERHEAD, back, &m, &e), 0);
        assert_int_equal(m, n);
        if (n)
            assert_memory_equal(back, pt, n);
    }
}

static void test_gcm_round_trip_and_fresh_nonce(void **state)
{
    unsigned char key[32], a[5 + KB_GCM_OVERHEAD], b[5 + KB_GCM_OVERHEAD], back[5];
    size_t m = 0;
    kb_err e;
    assert_int_equal(kb_crypto_random(key, sizeof key, &e), 0);
    assert_int_equal(kb_crypto_aes_gcm_seal(key, "hello", 5, a, &e), 0);
    assert_int_equal(kb_crypto_aes_gcm_seal(key, "hello", 5, b, &e), 0);
    assert_memory_not_equal(a, b, KB_GCM_NONCE_LEN); /* a nonce is never reused */
    assert_int_equal(kb_crypto_aes_gcm_open(key, a, sizeof a, back, &m, &e), 0);
    assert_int_equal(m, 5);
    assert_memory_equal(back, "hello", 5);
    assert_int_equal(kb_crypto_aes_gcm_open(key, b, sizeof b, back, &m, &e), 0);
    assert_memory_equal(back, "hello", 5);
}

static void test_gcm_tamper(void **state)
{
    unsigned char key[32] = { 1 }, blob[16 + KB_GCM_OVERHEAD], back[16];
    size_t m = 0;
    kb_err e;
    assert_int_equal(kb_crypto_aes_gcm_seal(key, "sixteen byte msg", 16, blob, &e), 0);
    /* Every byte matters: nonce, ciphertext and tag. */
    for (size_t i = 0; i < sizeof blob; i++) {
        blob[i] ^= 0x01;
        memset(back, 0x55, sizeof back);
        assert_int_equal(kb_crypto_aes_gcm_open(key, blob, sizeof blob, back, &m, &e), -1);
        assert_string_equal(e.msg, "authentication failed: wrong key, or the data was changed");
        for (size_t k = 0; k < sizeof back; k++) /* unauthenticated plaintext wiped */
            assert_int_equal(back[k], 0);
        blob[i] ^= 0x01;
    }
    key[31] ^= 0x80;
    assert_int_equal(kb_crypto_aes_gcm_open(key, blob, sizeof blob, back, &m, &e), -1);
    assert_string_equal(e.op, "aes_gcm_open");
    key[31] ^= 0x80;
    assert_int_equal(kb_crypto_aes_gcm_open(key, blob, sizeof blob - 1, back, &m, &e), -1);
    assert_int_equal(kb_crypto_aes_gcm_open(key, blob, KB_GCM_OVERHEAD - 1, back, &m, &e), -1);
    assert_string_equal(e.msg, "ciphertext too short: 27 bytes, need at least 28 (nonce and tag)");
    assert_int_equal(kb_crypto_aes_gcm_open(key, blob, sizeof blob, back, &m, &e), 0);
}

/* ---- random, tokens, equal ---- */

static void test_random_string_uniform_alphabet(void **state)
{
    char out[4096];
    int seen[256] = { 0 };
    kb_err e;
    assert_int_equal(kb_crypto_random_string(out, sizeof out, "abc", 3, &e), 0);
    for (size_t i = 0; i < sizeof out; i++)
        seen[(unsigned char)out[i]]++;
    assert_int_equal(seen['a'] + seen['b'] + seen['c'], (int)sizeof out);
    assert_true(seen['a'] > 0 && seen['b'] > 0 && seen['c'] > 0);
    assert_int_equal(kb_crypto_random_string(out, 8, "z", 1, &e), 0);
    assert_memory_equal(out, "zzzzzzzz", 8);
    assert_int_equal(kb_crypto_random_string(out, 8, "", 0, &e), -1);
    assert_string_equal(e.msg, "alphabet must have 1 to 256 characters, has 0");
    assert_int_equal(kb_crypto_random_string(out, 0, "ab", 2, &e), 0);
}

static void test_token(void **state)
{
    char tok[KB_TOKEN_LEN + 1], other[KB_TOKEN_LEN + 1];
    kb_err e;
    assert_int_equal(kb_crypto_token(tok, &e), 0);
    assert_int_equal(strlen(tok), 23);
    assert_int_equal(kb_crypto_token_check(tok, 23, &e), 0);
    assert_int_equal(kb_crypto_token(other, &e), 0);
    assert_string_not_equal(tok, other);
    assert_int_equal(kb_crypto_token_check("abcdef.0123456789abcdef", 23, &e), 0);
    assert_int_equal(kb_crypto_token_check("abcdef.0123456789abcde", 22, &e), -1);
    assert_string_equal(e.msg, "invalid bootstrap token: 22 characters, expected the form "
                               "[a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef");
    assert_int_equal(kb_crypto_token_check("abcdefg0123456789abcdef", 23, &e), -1);
    assert_non_null(strstr(e.msg, "no '.' after the 6-character id"));
    assert_int_equal(kb_crypto_token_check("abCdef.0123456789abcdef", 23, &e), -1);
    assert_non_null(strstr(e.msg, "character 3 of the id is not in [a-z0-9]"));
    assert_int_equal(kb_crypto_token_check("qwerty.zyxwvutsrqponml_", 23, &e), -1);
    assert_non_null(strstr(e.msg, "character 16 of the secret is not in [a-z0-9]"));
    assert_null(strstr(e.msg, "qwerty")); /* the token never appears */
    assert_null(strstr(e.msg, "zyxwvu"));
}

static void test_equal(void **state)
{
    assert_true(kb_crypto_equal("abc", 3, "abc", 3));
    assert_false(kb_crypto_equal("abc", 3, "abd", 3));
    assert_false(kb_crypto_equal("abc", 3, "abcd", 4));
    assert_true(kb_crypto_equal("", 0, "", 0));
}

/* ---- JWS ---- */

static const char *payload = "apiVersion: v1\nkind: Config\n";

static void test_jws_sign_verify(void **state)
{
    char jws[256];
    kb_err e;
    assert_int_equal(kb_crypto_jws_len(6), 40 + 2 + 43);
    assert_int_equal(kb_crypto_jws_sign(payload, strlen(payload), "abcdef", 6, "0123456789abcdef", 16,
                                        jws, &e), 0);
    assert_int_equal(strlen(jws), kb_crypto_jws_len(6));
    assert_memory_equal(jws, "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..", 42);
    assert_int_equal(kb_crypto_jws_verify(jws, strlen(jws), payload, strlen(payload), "abcdef", 6,
                                          "0123456789abcdef", 16, &e), 0);
    assert_int_equal(kb_crypto_jws_verify(jws, strlen(jws), payload, strlen(payload) - 1, "abcdef", 6,
                                          "0123456789abcdef", 16, &e), -1);
    assert_string_equal(e.op, "jws_verify");
    assert_non_null(strstr(e.msg, "signature mismatch"));
    assert_int_equal(kb_crypto_jws_verify(jws, strlen(jws), payload, strlen(payload), "abcdef", 6,
                                          "0123456789abcdeg", 16, &e), -1);
    assert_non_null(strstr(e.msg, "signature mismatch"));
    assert_int_equal(kb_crypto_jws_verify(jws, strlen(jws), payload, strlen(payload), "abcdeg", 6,
                                          "0123456789abcdef", 16, &e), -1);
    assert_string_equal(e.msg, "kid \"abcdef\" does not match token id \"abcdeg\"");
}

/* A payload longer than one base64 slice, and of every length modulo 3, signs the same as
 * HMAC over the whole signing input built by hand. */
static void test_jws_long_payload(void **state)
{
    static unsigned char p[3000];
    static char input[5000];
    char jws[256], sig[64];
    unsigned char mac[32];
    kb_err e;
    for (size_t i = 0; i < sizeof p; i++)
        p[i] = (unsigned char)(i * 7);
    for (size_t n = 2995; n <= sizeof p; n++) {
        assert_int_equal(kb_crypto_jws_sign(p, n, "k", 1, "s", 1, jws, &e), 0);
        size_t hl = strchr(jws, '.') - jws;
        memcpy(input, jws, hl);
        input[hl] = '.';
        size_t il = hl + 1 + kb_crypto_base64(p, n, input + hl + 1, 1);
        assert_int_equal(kb_crypto_hmac_sha256("s", 1, input, il, mac, &e), 0);
        kb_crypto_base64(mac, 32, sig, 1);
        assert_string_equal(jws + hl + 2, sig);
    }
}

static void jws_fails(const char *jws, const char *msg)
{
    kb_err e;
    assert_int_equal(kb_crypto_jws_verify(jws, strlen(jws), payload, strlen(payload), "abcdef", 6,
                                          "0123456789abcdef", 16, &e), -1);
    if (!strstr(e.msg, msg))
        fail_msg("got \"%s\", want \"%s\"", e.msg, msg);
}

/* Build header..sig with a valid signature over any header, to reach the header checks. */
static void signed_with_header(const char *hdr, char *out)
{
    char input[512];
    unsigned char mac[32];
    kb_err e;
    size_t hl = kb_crypto_base64(hdr, strlen(hdr), out, 1);
    memcpy(input, out, hl);
    input[hl] = '.';
    size_t il = hl + 1 + kb_crypto_base64(payload, strlen(payload), input + hl + 1, 1);
    assert_int_equal(kb_crypto_hmac_sha256("0123456789abcdef", 16, input, il, mac, &e), 0);
    out[hl] = out[hl + 1] = '.';
    kb_crypto_base64(mac, 32, out + hl + 2, 1);
}

static void test_jws_header_checks(void **state)
{
    char jws[512];
    kb_err e;
    /* Other member order, whitespace, escapes and extra members are fine when signed. */
    signed_with_header(" { \"kid\" : \"abc\\u0064ef\", \"x\": [1, {\"y\": null}, true, -2.5e3],"
                       " \"alg\":\"HS\\u00325\\u0036\" } ", jws);
    assert_int_equal(kb_crypto_jws_verify(jws, strlen(jws), payload, strlen(payload), "abcdef", 6,
                                          "0123456789abcdef", 16, &e), 0);
    signed_with_header("{\"alg\":\"none\",\"kid\":\"abcdef\"}", jws);
    jws_fails(jws, "alg must be HS256, header has \"none\"");
    signed_with_header("{\"alg\":\"HS512\",\"kid\":\"abcdef\"}", jws);
    jws_fails(jws, "alg must be HS256, header has \"HS512\"");
    signed_with_header("{\"alg\":\"HS256\\u0000\",\"kid\":\"abcdef\"}", jws);
    jws_fails(jws, "alg must be HS256, header has \"HS256?\"");
    signed_with_header("{\"kid\":\"abcdef\"}", jws);
    jws_fails(jws, "alg must be HS256, header has no alg");
    signed_with_header("{\"alg\":256,\"kid\":\"abcdef\"}", jws);
    jws_fails(jws, "alg must be HS256");
    signed_with_header("{\"alg\":\"HS256\"}", jws);
    jws_fails(jws, "JWS header has no kid; expected token id \"abcdef\"");
    signed_with_header("{\"alg\":\"HS256\",\"kid\":\"abcdef\",\"kid\":\"abcdef\"}", jws);
    jws_fails(jws, "malformed JWS: header repeats a member");
    signed_with_header("{\"alg\":\"HS256\",\"kid\":\"abcdef\",\"crit\":[\"exp\"]}", jws);
    jws_fails(jws, "critical extensions");
    signed_with_header("{\"alg\":\"HS256\",\"kid\":\"abcdef\"", jws);
    jws_fails(jws, "malformed JWS: header is not a JSON object");
    signed_with_header("{\"alg\":\"HS256\",\"kid\":\"abcdef\"}x", jws);
    jws_fails(jws, "malformed JWS: header is not a JSON object");
    signed_with_header("[\"HS256\"]", jws);
    jws_fails(jws, "malformed JWS: header is not a JSON object");
    signed_with_header("{\"alg\":\"HS256\",\"kid\":\"abcdef\",\"x\":tru}", jws);
    jws_fails(jws, "malformed JWS: header is not a JSON object");
    signed_with_header("{\"alg\":\"HS256\",\"kid\":\"abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdef"
                       "abcdefabcdefabcdefabcdef\"}", jws);
    jws_fails(jws, "kid \"abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd...\" "
                   "does not match token id \"abcdef\"");
}

static void test_jws_malformed(void **state)
{
    char jws[256];
    kb_err e;
    assert_int_equal(kb_crypto_jws_sign(payload, strlen(payload), "abcdef", 6, "0123456789abcdef", 16,
                                        jws, &e), 0);
    char *sig = strstr(jws, "..") + 2;
    jws_fails("", "malformed JWS: expected <header>..<signature>");
    jws_fails("abc", "malformed JWS: expected <header>..<signature>");
    jws_fails("abc.def", "malformed JWS: expected <header>..<signature>");
    jws_fails("abc..", "malformed JWS: expected <header>..<signature>");
    jws_fails("..abc", "malformed JWS: expected <header>..<signature>");
    jws_fails("a..b.c", "malformed JWS: expected <header>..<signature>");
    jws_fails("a.b.c", "malformed JWS: the payload part must be empty (detached)");
    jws_fails("e*J..abc", "malformed JWS: header: invalid base64url: byte 0x2a at offset 1");
    /* An attached (non-detached) JWS is refused even when well signed. */
    char attached[512];
    size_t hl = strchr(jws, '.') - jws;
    memcpy(attached, jws, hl + 1);
    size_t pl = kb_crypto_base64(payload, strlen(payload), attached + hl + 1, 1);
    strcpy(attached + hl + 1 + pl, sig - 1);
    jws_fails(attached, "the payload part must be empty");
    /* Signature of the wrong length or alphabet. */
    char bad[256];
    strcpy(bad, jws);
    bad[strlen(bad) - 1] = '\0';
    jws_fails(bad, "malformed JWS: signature is 42 characters, HS256 gives 43");
    strcpy(bad, jws);
    strstr(bad, "..")[2] = '+';
    jws_fails(bad, "malformed JWS: signature: invalid base64url: byte 0x2b");
    /* Any changed signature character fails (the last one only in its significant bits). */
    for (size_t i = 0; i + 1 < strlen(sig); i++) {
        strcpy(bad, jws);
        char *s = strstr(bad, "..") + 2;
        s[i] = s[i] == 'A' ? 'B' : 'A';
        jws_fails(bad, "signature mismatch");
    }
}

static void test_jws_kid_rules(void **state)
{
    char jws[512];
    kb_err e;
    assert_true(kb_crypto_jws_kid_ok("abcdef", 6));
    assert_false(kb_crypto_jws_kid_ok("", 0));
    assert_false(kb_crypto_jws_kid_ok("a\"b", 3));
    assert_false(kb_crypto_jws_kid_ok("a\\b", 3));
    assert_false(kb_crypto_jws_kid_ok("a<b", 3));
    assert_false(kb_crypto_jws_kid_ok("a\nb", 3));
    assert_false(kb_crypto_jws_kid_ok("a\xc3\xa9", 3));
    assert_int_equal(kb_crypto_jws_sign("", 0, "a\"b", 3, "k", 1, jws, &e), -1);
    assert_string_equal(e.op, "jws_sign");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_binary_round_trip),
        cmocka_unit_test(test_base64_strict),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hmac_empty_key),
        cmocka_unit_test(test_gcm_known_answers),
        cmocka_unit_test(test_gcm_round_trip_and_fresh_nonce),
        cmocka_unit_test(test_gcm_tamper),
        cmocka_unit_test(test_random_string_uniform_alphabet),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_jws_sign_verify),
        cmocka_unit_test(test_jws_long_payload),
        cmocka_unit_test(test_jws_header_checks),
        cmocka_unit_test(test_jws_malformed),
        cmocka_unit_test(test_jws_kid_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
