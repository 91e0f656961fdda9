/* Helpers shared by the runtime/pki*.c files only. */
#ifndef KBOOT_PKI_INTERNAL_H
#define KBOOT_PKI_INTERNAL_H

#include <openssl/bio.h>
#include <openssl/x509v3.h>

#include "kboot/pki.h"

char *kb_pki_bio_take(BIO *b, size_t *len, kb_err *e, const char *op);
/* Subject name as Go's pkix.Name marshals it: one RDN with every O, then CN. */
X509_NAME *kb_pki_build_name(const char *cn, const char *const *o, size_t n_o, kb_err *e);
/* SAN extension value: DNS names then IPs; NULL with e set on failure. */
GENERAL_NAMES *kb_pki_build_sans(const struct kb_cert_spec *s, kb_err *e);
/* Digest to sign with for key k: NULL for Ed25519 (no pre-hash). */
const EVP_MD *kb_pki_sign_md(const EVP_PKEY *k);
/* Fill pk (algorithm + key bits) from k's provider parameters, without OpenSSL 3's
 * encoder look-up (which walks every provider algorithm on each call). RSA, EC on a named
 * curve and Ed25519; 1 done, 0 another key type (use the encoder), -1 failure. pk's cached
 * EVP_PKEY is left alone: X509_PUBKEY_get0 on pk fails until it is parsed from DER. */
int kb_pki_spki_set(X509_PUBKEY *pk, const EVP_PKEY *k);
/* 1 when kb_pki_spki_set handles k (the key's parameters say how OpenSSL encodes it). */
int kb_pki_fast_key(const EVP_PKEY *k);
/* DER SubjectPublicKeyInfo of k (OPENSSL_free it); length or -1. */
int kb_pki_spki_der(const EVP_PKEY *k, unsigned char **der);
/* Traditional private key DER (PKCS#1 "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY") and its PEM
 * type; length, or -1 when k needs OpenSSL's own writer. OPENSSL_clear_free the DER. */
int kb_pki_private_der(const EVP_PKEY *k, unsigned char **der, const char **type);

#endif
