/* Certificate signing requests (PKCS#10). */
#include "pki_internal.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

X509_REQ *kb_pki_csr(EVP_PKEY *key, const struct kb_cert_spec *s, kb_err *e)
{
    if (!kb_pki_key_is_private(key)) {
        kb_err_set(e, "csr", "key has no private part");
        return NULL;
    }
    if (kb_pki_spec_check(s, e) < 0)
        return NULL;
    X509_NAME *name = kb_pki_build_name(s->cn, s->o, s->n_o, e);
    if (!name)
        return NULL;
    GENERAL_NAMES *sans = NULL;
    if (s->n_dns + s->n_ip > 0 && !(sans = kb_pki_build_sans(s, e))) {
        X509_NAME_free(name);
        return NULL;
    }
    X509_REQ *r = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = NULL;
    int ok = r && X509_REQ_set_version(r, X509_REQ_VERSION_1) && X509_REQ_set_subject_name(r, name) &&
             X509_REQ_set_pubkey(r, key);
    if (ok && sans) {
        exts = sk_X509_EXTENSION_new_null();
        ok = exts && X509V3_add1_i2d(&exts, NID_subject_alt_name, sans,
                                     X509_NAME_entry_count(name) == 0, X509V3_ADD_REPLACE) == 1 &&
             X509_REQ_add_extensions(r, exts);
    }
    ok = ok && X509_REQ_sign(r, key, kb_pki_sign_md(key)) > 0;
    if (!ok) {
        kb_err_ssl(e, "csr", "creating the CSR failed");
        X509_REQ_free(r);
        r = NULL;
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(sans);
    X509_NAME_free(name);
    return r;
}

X509_REQ *kb_pki_load_csr(const char *pem, size_t len, kb_err *e)
{
    struct kb_pem_block *bl = NULL;
    size_t n = 0;
    if (kb_pki_pem_decode(pem, len, &bl, &n, e) < 0)
        return NULL;
    X509_REQ *r = NULL;
    size_t i = 0;
    while (i < n && strcmp(bl[i].type, "CERTIFICATE REQUEST") != 0 &&
           strcmp(bl[i].type, "NEW CERTIFICATE REQUEST") != 0)
        i++;
    if (i == n)
        kb_err_set(e, "load_csr", "no CERTIFICATE REQUEST in PEM data (first block is %s)", bl[0].type);
    else {
        const unsigned char *p = bl[i].der;
        r = d2i_X509_REQ(NULL, &p, (long)bl[i].len);
        if (!r || p != bl[i].der + bl[i].len) {
            kb_err_ssl(e, "load_csr", "invalid CSR DER");
            X509_REQ_free(r);
            r = NULL;
        }
    }
    kb_pki_pem_free(bl, n);
    if (!r)
        return NULL;
    EVP_PKEY *k = X509_REQ_get0_pubkey(r);
    ERR_set_mark();
    int ok = k && X509_REQ_verify(r, k) == 1;
    ERR_pop_to_mark();
    if (!ok) {
        kb_err_set(e, "load_csr", "CSR signature is invalid");
        X509_REQ_free(r);
        return NULL;
    }
    if (!kb_pki_key_type(k)) {
        kb_err_set(e, "load_csr", "unsupported CSR key type %s (want RSA, EC or ED25519)",
                   EVP_PKEY_get0_type_name(k));
        X509_REQ_free(r);
        return NULL;
    }
    return r;
}

char *kb_pki_csr_pem(const X509_REQ *r, size_t *len, kb_err *e)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (!b || !PEM_write_bio_X509_REQ(b, r))
        kb_err_ssl(e, "csr_pem", "encoding the CSR failed");
    else
        out = kb_pki_bio_take(b, len, e, "csr_pem");
    BIO_free(b);
    return out;
}
