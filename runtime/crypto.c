/* Small cryptographic primitives on OpenSSL 3 EVP (see include/kboot/crypto.h); the detached
 * JWS built on them is in jws.c. */
#include "kboot/crypto.h"

#include "crypto_internal.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <string.h>

/* EVP lengths are int; feed larger inputs in slices of this size. */
#define SLICE (1u << 30)

/* ---- random ---------------------------------------------------------------------------- */

int kb_crypto_random(void *buf, size_t n, kb_err *e)
{
    unsigned char *p = buf;
    while (n > 0) {
        int k = n > SLICE ? (int)SLICE : (int)n;
        if (RAND_bytes(p, k) != 1)
            return kb_err_ssl(e, "random", "cannot get %d random bytes", k);
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int kb_crypto_random_string(char *out, size_t n, const char *alphabet, size_t alen, kb_err *e)
{
    if (alen == 0 || alen > 256)
        return kb_err_set(e, "random_string", "alphabet must have 1 to 256 characters, has %zu", alen);
    /* Bytes at or above the largest multiple of alen would favour the first characters. */
    unsigned limit = 256 - 256 % (unsigned)alen;
    unsigned char pool[64];
    size_t used = sizeof pool, i = 0;
    while (i < n) {
        if (used == sizeof pool) {
            if (kb_crypto_random(pool, sizeof pool, e) < 0) {
                OPENSSL_cleanse(pool, sizeof pool);
                return -1;
            }
            used = 0;
        }
        unsigned b = pool[used++];
        if (b < limit)
            out[i++] = alphabet[b % alen];
    }
    OPENSSL_cleanse(pool, sizeof pool);
    return 0;
}

/* ---- bootstrap tokens ------------------------------------------------------------------ */

int kb_crypto_token(char *out, kb_err *e)
{
    const size_t alen = sizeof KB_TOKEN_ALPHABET - 1;
    if (kb_crypto_random_string(out, KB_TOKEN_ID_LEN, KB_TOKEN_ALPHABET, alen, e) < 0 ||
        kb_crypto_random_string(out + KB_TOKEN_ID_LEN + 1, KB_TOKEN_SECRET_LEN, KB_TOKEN_ALPHABET,
                                alen, e) < 0) {
        OPENSSL_cleanse(out, KB_TOKEN_LEN);
        return -1;
    }
    out[KB_TOKEN_ID_LEN] = '.';
    out[KB_TOKEN_LEN] = '\0';
    return 0;
}

#define TOKEN_FORM "expected the form [a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef"

int kb_crypto_token_check(const char *s, size_t n, kb_err *e)
{
    if (n != KB_TOKEN_LEN)
        return kb_err_set(e, "token_parse", "invalid bootstrap token: %zu characters, %s", n,
                          TOKEN_FORM);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (i == KB_TOKEN_ID_LEN) {
            if (c != '.')
                return kb_err_set(e, "token_parse",
                                  "invalid bootstrap token: no '.' after the 6-character id, %s",
                                  TOKEN_FORM);
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            /* Position only: the token is a credential and must not reach logs. */
            return kb_err_set(e, "token_parse",
                              "invalid bootstrap token: character %zu of the %s is not in [a-z0-9], %s",
                              i < KB_TOKEN_ID_LEN ? i + 1 : i - KB_TOKEN_ID_LEN,
                              i < KB_TOKEN_ID_LEN ? "id" : "secret", TOKEN_FORM);
        }
    }
    return 0;
}

/* ---- digests --------------------------------------------------------------------------- */

int kb_crypto_sha256(const void *data, size_t n, unsigned char out[KB_SHA256_LEN], kb_err *e)
{
    unsigned int len = 0;
    if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1 || len != KB_SHA256_LEN)
        return kb_err_ssl(e, "sha256", "SHA-256 failed");
    return 0;
}

/* SHA-512/256 (FIPS 180-4): the digest a kubelet names its bootstrap CSR with. */
int kb_crypto_sha512_256(const void *data, size_t n, unsigned char out[KB_SHA256_LEN], kb_err *e)
{
    unsigned int len = 0;
    if (EVP_Digest(data, n, out, &len, EVP_sha512_256(), NULL) != 1 || len != KB_SHA256_LEN)
        return kb_err_ssl(e, "sha512_256", "SHA-512/256 failed");
    return 0;
}

EVP_MAC_CTX *kb_crypto_hmac_new(const void *key, size_t klen, const char *op, kb_err *e)
{
    static const unsigned char nokey[1];
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) {
        kb_err_ssl(e, op, "HMAC is not available");
        return NULL;
    }
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (!ctx) {
        kb_err_ssl(e, op, "cannot create HMAC context");
        return NULL;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    /* A NULL key means "keep the previous key" to EVP_MAC_init; an empty key is still a key. */
    if (EVP_MAC_init(ctx, klen ? key : nokey, klen, params) != 1) {
        kb_err_ssl(e, op, "cannot initialise HMAC-SHA256");
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int kb_crypto_hmac_update(EVP_MAC_CTX *ctx, const void *data, size_t n)
{
    return n == 0 || EVP_MAC_update(ctx, data, n) == 1;
}

int kb_crypto_hmac_final(EVP_MAC_CTX *ctx, int ok, unsigned char out[KB_SHA256_LEN], const char *op,
                         kb_err *e)
{
    size_t len = 0;
    if (!ok || EVP_MAC_final(ctx, out, &len, KB_SHA256_LEN) != 1 || len != KB_SHA256_LEN) {
        EVP_MAC_CTX_free(ctx);
        return kb_err_ssl(e, op, "HMAC-SHA256 failed");
    }
    EVP_MAC_CTX_free(ctx); /* cleanses the key schedule */
    return 0;
}

int kb_crypto_hmac_sha256(const void *key, size_t klen, const void *data, size_t n,
                          unsigned char out[KB_SHA256_LEN], kb_err *e)
{
    EVP_MAC_CTX *ctx = kb_crypto_hmac_new(key, klen, "hmac_sha256", e);
    if (!ctx)
        return -1;
    return kb_crypto_hmac_final(ctx, kb_crypto_hmac_update(ctx, data, n), out, "hmac_sha256", e);
}

/* ---- hex ------------------------------------------------------------------------------- */

void kb_crypto_hex(const void *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int kb_crypto_unhex(const char *s, size_t n, unsigned char *out, size_t *outlen, kb_err *e)
{
    if (n % 2)
        return kb_err_set(e, "unhex", "invalid hex: odd length %zu", n);
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) {
            size_t at = hi < 0 ? i : i + 1;
            return kb_err_set(e, "unhex", "invalid hex: byte 0x%02x at offset %zu is not a hex digit",
                              (unsigned char)s[at], at);
        }
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *outlen = n / 2;
    return 0;
}

/* ---- base64 ---------------------------------------------------------------------------- */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t kb_crypto_base64_len(size_t n, int url)
{
    if (!url)
        return (n + 2) / 3 * 4;
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t kb_crypto_base64(const void *in, size_t n, char *out, int url)
{
    const unsigned char *p = in;
    const char *a = url ? b64_url : b64_std;
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = a[v >> 18];
        *o++ = a[(v >> 12) & 63];
        *o++ = a[(v >> 6) & 63];
        *o++ = a[v & 63];
    }
    if (i < n) {
        int two = n - i == 2;
        uint32_t v = (uint32_t)p[i] << 16 | (two ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = a[v >> 18];
        *o++ = a[(v >> 12) & 63];
        if (two)
            *o++ = a[(v >> 6) & 63];
        if (!url) {
            if (!two)
                *o++ = '=';
            *o++ = '=';
        }
    }
    *o = '\0';
    return (size_t)(o - out);
}

size_t kb_crypto_unbase64_max(size_t n) { return n / 4 * 3 + 3; }

static int b64val(unsigned char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

int kb_crypto_unbase64(const char *s, size_t n, unsigned char *out, size_t *outlen, int url,
                       kb_err *e)
{
    const char *op = url ? "unbase64url" : "unbase64";
    const char *what = url ? "invalid base64url" : "invalid base64";
    uint32_t acc = 0;
    size_t o = 0, q = 0, pad = 0; /* q: characters in the current 4-character group */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!url && (c == '\n' || c == '\r'))
            continue;
        if (c == '=' && !url) {
            if (q < 2 || q + pad >= 4)
                return kb_err_set(e, op, "%s: misplaced '=' at offset %zu", what, i);
            pad++;
            continue;
        }
        int v = b64val(c, url);
        if (v < 0) {
            if (c == '=')
                return kb_err_set(e, op, "%s: '=' padding at offset %zu (base64url has none)", what, i);
            return kb_err_set(e, op, "%s: byte 0x%02x at offset %zu is not in the alphabet", what, c, i);
        }
        if (pad)
            return kb_err_set(e, op, "%s: data after '=' padding at offset %zu", what, i);
        acc = acc << 6 | (uint32_t)v;
        if (++q == 4) {
            out[o++] = (unsigned char)(acc >> 16);
            out[o++] = (unsigned char)(acc >> 8);
            out[o++] = (unsigned char)acc;
            acc = 0;
            q = 0;
        }
    }
    if (q == 1)
        return kb_err_set(e, op, "%s: truncated input (one character left over)", what);
    if (!url && q && q + pad != 4)
        return kb_err_set(e, op, "%s: missing '=' padding at the end", what);
    if (q == 2) {
        if (acc & 0xf)
            return kb_err_set(e, op, "%s: non-zero bits after the last byte (not canonical)", what);
        out[o++] = (unsigned char)(acc >> 4);
    } else if (q == 3) {
        if (acc & 0x3)
            return kb_err_set(e, op, "%s: non-zero bits after the last byte (not canonical)", what);
        out[o++] = (unsigned char)(acc >> 10);
        out[o++] = (unsigned char)(acc >> 2);
    }
    *outlen = o;
    return 0;
}

/* ---- comparison ------------------------------------------------------------------------ */

int kb_crypto_equal(const void *a, size_t an, const void *b, size_t bn)
{
    if (an != bn)
        return 0;
    return an == 0 || CRYPTO_memcmp(a, b, an) == 0;
}

/* ---- AES-256-GCM ----------------------------------------------------------------------- */

/* Run EVP_CipherUpdate over n bytes in int-sized slices. */
static int gcm_update(EVP_CIPHER_CTX *ctx, const unsigned char *in, size_t n, unsigned char *out)
{
    while (n > 0) {
        int k = n > SLICE ? (int)SLICE : (int)n, got = 0;
        if (EVP_CipherUpdate(ctx, out, &got, in, k) != 1 || got != k)
            return 0;
        in += k;
        out += k;
        n -= (size_t)k;
    }
    return 1;
}

int kb_crypto_aes_gcm_seal_nonce(const unsigned char key[KB_AES256_KEY_LEN],
                                 const unsigned char nonce[KB_GCM_NONCE_LEN], const void *pt,
                                 size_t n, unsigned char *out, kb_err *e)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return kb_err_ssl(e, "aes_gcm_seal", "cannot create cipher context");
    unsigned char *ct = out + KB_GCM_NONCE_LEN;
    int got = 0;
    memmove(out, nonce, KB_GCM_NONCE_LEN);
    /* The default GCM IV length is 96 bits, the nonce size of Go's cipher.NewGCM. */
    int ok = EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), key, nonce, NULL) == 1 &&
             gcm_update(ctx, pt, n, ct) && EVP_EncryptFinal_ex(ctx, ct + n, &got) == 1 &&
             got == 0 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, KB_GCM_TAG_LEN, ct + n) == 1;
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    if (!ok)
        return kb_err_ssl(e, "aes_gcm_seal", "AES-256-GCM encryption failed");
    return 0;
}

int kb_crypto_aes_gcm_seal(const unsigned char key[KB_AES256_KEY_LEN], const void *pt, size_t n,
                           unsigned char *out, kb_err *e)
{
    unsigned char nonce[KB_GCM_NONCE_LEN];
    if (kb_crypto_random(nonce, sizeof nonce, e) < 0)
        return -1;
    return kb_crypto_aes_gcm_seal_nonce(key, nonce, pt, n, out, e);
}

int kb_crypto_aes_gcm_open(const unsigned char key[KB_AES256_KEY_LEN], const void *blob, size_t n,
                           unsigned char *out, size_t *outlen, kb_err *e)
{
    const unsigned char *b = blob;
    if (n < KB_GCM_OVERHEAD)
        return kb_err_set(e, "aes_gcm_open",
                          "ciphertext too short: %zu bytes, need at least %d (nonce and tag)", n,
                          KB_GCM_OVERHEAD);
    size_t m = n - KB_GCM_OVERHEAD;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return kb_err_ssl(e, "aes_gcm_open", "cannot create cipher context");
    unsigned char tag[KB_GCM_TAG_LEN];
    memcpy(tag, b + KB_GCM_NONCE_LEN + m, sizeof tag); /* the ctrl wants a writable buffer */
    int got = 0;
    int ok = EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), key, b, NULL) == 1 &&
             gcm_update(ctx, b + KB_GCM_NONCE_LEN, m, out) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, KB_GCM_TAG_LEN, tag) == 1;
    int authentic = ok && EVP_DecryptFinal_ex(ctx, out + m, &got) == 1 && got == 0;
    EVP_CIPHER_CTX_free(ctx);
    if (!authentic) {
        /* Unauthenticated plaintext must not survive. */
        OPENSSL_cleanse(out, m);
        if (!ok)
            return kb_err_ssl(e, "aes_gcm_open", "AES-256-GCM decryption failed");
        ERR_clear_error(); /* a tag mismatch may leave an entry; it is not news */
        return kb_err_set(e, "aes_gcm_open",
                          "authentication failed: wrong key, or the data was changed");
    }
    *outlen = m;
    return 0;
}
