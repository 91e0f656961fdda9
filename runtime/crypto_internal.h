/* Helpers shared by runtime/crypto.c and runtime/jws.c only. */
#ifndef KBOOT_CRYPTO_INTERNAL_H
#define KBOOT_CRYPTO_INTERNAL_H

#include <openssl/evp.h>

#include "kboot/crypto.h"

/* Streaming HMAC-SHA256, so that a JWS signs its payload without copying it whole.
 * new: NULL with e set on failure. update: 1 on success, 0 on failure (n == 0 is a no-op).
 * final: takes the AND of the updates' results in ok, and frees ctx in every case. */
EVP_MAC_CTX *kb_crypto_hmac_new(const void *key, size_t klen, const char *op, kb_err *e);
int kb_crypto_hmac_update(EVP_MAC_CTX *ctx, const void *data, size_t n);
int kb_crypto_hmac_final(EVP_MAC_CTX *ctx, int ok, unsigned char out[KB_SHA256_LEN], const char *op,
                         kb_err *e);

#endif
