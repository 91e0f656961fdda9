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

#endif
