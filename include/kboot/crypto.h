/* Small cryptographic primitives: random, SHA-256, HMAC-SHA256, hex, base64, detached
 * JWS (HS256) and AES-256-GCM sealed as nonce || ciphertext || tag (Go's cipher.AEAD
 * output with the nonce in front).
 *
 * Everything uses OpenSSL 3 EVP. Functions returning int give 0 on success and -1 on
 * failure with `e` filled (e may be NULL). Output buffers are the caller's; each function
 * says how large they must be. Nothing here keeps state between calls. */
#ifndef KBOOT_CRYPTO_H
#define KBOOT_CRYPTO_H

#include <stddef.h>

#include "kboot/err.h"

#define KB_SHA256_LEN 32
#define KB_AES256_KEY_LEN 32
#define KB_GCM_NONCE_LEN 12
#define KB_GCM_TAG_LEN 16
#define KB_GCM_OVERHEAD (KB_GCM_NONCE_LEN + KB_GCM_TAG_LEN)
#define KB_TOKEN_ID_LEN 6
#define KB_TOKEN_SECRET_LEN 16
#define KB_TOKEN_LEN (KB_TOKEN_ID_LEN + 1 + KB_TOKEN_SECRET_LEN) /* "abcdef.0123456789abcdef" */
#define KB_TOKEN_ALPHABET "0123456789abcdefghijklmnopqrstuvwxyz"

/* n bytes from the OpenSSL CSPRNG. */
int kb_crypto_random(void *buf, size_t n, kb_err *e);
/* n characters drawn uniformly from alphabet[0..alen) (1 <= alen <= 256) by rejection
 * sampling, so no character is favoured. out receives n bytes, no NUL. */
int kb_crypto_random_string(char *out, size_t n, const char *alphabet, size_t alen, kb_err *e);

/* A fresh bootstrap token "[a-z0-9]{6}.[a-z0-9]{16}"; out holds KB_TOKEN_LEN + 1 (NUL added). */
int kb_crypto_token(char *out, kb_err *e);
/* 0 if s[0..n) is a well-formed bootstrap token (id = s[0..6), secret = s[7..23)). The
 * error names what is wrong but never echoes the token, which is a credential. */
int kb_crypto_token_check(const char *s, size_t n, kb_err *e);

int kb_crypto_sha256(const void *data, size_t n, unsigned char out[KB_SHA256_LEN], kb_err *e);
/* SHA-512/256: 32 bytes, like SHA-256 */
int kb_crypto_sha512_256(const void *data, size_t n, unsigned char out[KB_SHA256_LEN], kb_err *e);
int kb_crypto_hmac_sha256(const void *key, size_t klen, const void *data, size_t n,
                          unsigned char out[KB_SHA256_LEN], kb_err *e);

/* Lowercase hex of in[0..n): out holds 2n + 1 (NUL added). */
void kb_crypto_hex(const void *in, size_t n, char *out);
/* Hex (either case) to bytes; out holds n / 2. Odd length or a non-hex character fails. */
int kb_crypto_unhex(const char *s, size_t n, unsigned char *out, size_t *outlen, kb_err *e);

/* Base64. url = 0: standard alphabet with '=' padding (RFC 4648 section 4);
 * url = 1: URL-safe alphabet, no padding (section 5, as JWS uses it). */
size_t kb_crypto_base64_len(size_t n, int url);                   /* encoded length, no NUL */
size_t kb_crypto_base64(const void *in, size_t n, char *out, int url); /* out holds len + 1 */
/* Strict decode: bad characters, bad or misplaced padding and non-zero leftover bits fail.
 * Standard mode skips '\r' and '\n' (line-wrapped input); URL mode skips nothing and
 * rejects '='. out holds kb_crypto_unbase64_max(n). */
size_t kb_crypto_unbase64_max(size_t n);
int kb_crypto_unbase64(const char *s, size_t n, unsigned char *out, size_t *outlen, int url,
                       kb_err *e);

/* Constant-time equality; different lengths are unequal (the length is not secret). */
int kb_crypto_equal(const void *a, size_t an, const void *b, size_t bn);

/* Detached JWS, HS256, as Kubernetes' bootstrap signer writes it (runtime/jws.c):
 * b64url('{"alg":"HS256","kid":"<kid>"}') ".." b64url(HMAC-SHA256(key, header "." b64url(payload))).
 * kid must satisfy kb_crypto_jws_kid_ok (it is copied into the JSON header unescaped). */
int kb_crypto_jws_kid_ok(const char *kid, size_t kidlen);
size_t kb_crypto_jws_len(size_t kidlen); /* length of the JWS string, no NUL */
int kb_crypto_jws_sign(const void *payload, size_t n, const char *kid, size_t kidlen,
                       const void *key, size_t klen, char *out, kb_err *e); /* out: len + 1 */
/* 0 if jws is a detached HS256 JWS over payload whose header names kid and whose
 * signature is right for key. The error says which check failed. */
int kb_crypto_jws_verify(const char *jws, size_t jlen, const void *payload, size_t n,
                         const char *kid, size_t kidlen, const void *key, size_t klen, kb_err *e);

/* AES-256-GCM, no AAD. seal writes nonce(12) || ciphertext(n) || tag(16) to out (n + 28
 * bytes) with a fresh random nonce. open takes that blob back; out holds n - 28 bytes and
 * is wiped if authentication fails. Input and output must not overlap. */
int kb_crypto_aes_gcm_seal(const unsigned char key[KB_AES256_KEY_LEN], const void *pt, size_t n,
                           unsigned char *out, kb_err *e);
/* Same with a caller's nonce: only for known-answer tests. Never reuse a nonce with one key. */
int kb_crypto_aes_gcm_seal_nonce(const unsigned char key[KB_AES256_KEY_LEN],
                                 const unsigned char nonce[KB_GCM_NONCE_LEN], const void *pt,
                                 size_t n, unsigned char *out, kb_err *e);
int kb_crypto_aes_gcm_open(const unsigned char key[KB_AES256_KEY_LEN], const void *blob, size_t n,
                           unsigned char *out, size_t *outlen, kb_err *e);

#endif
