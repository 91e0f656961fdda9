/* Certificates in and out, and checked: loading PEM, encoding PEM and DER, verification against
 * CAs, issuer checks and validity dates. Issuing is in pki_cert.c. */
#include "pki_internal.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

X509 *kb_pki_load_cert(const char *pem, size_t len, kb_err *e)
{
    X509 **all = NULL;
    size_t n = 0;
    if (kb_pki_load_certs(pem, len, &all, &n, e) < 0)
        return NULL;
    X509 *x = all[0];
    for (size_t i = 1; i < n; i++)
        X509_free(all[i]);
    free(all);
    return x;
}

int kb_pki_load_certs(const char *pem, size_t len, X509 ***out, size_t *nout, kb_err *e)
{
    *out = NULL;
    *nout = 0;
    struct kb_pem_block *bl = NULL;
    size_t nb = 0;
    if (kb_pki_pem_decode(pem, len, &bl, &nb, e) < 0)
        return -1;
    X509 **all = calloc(nb, sizeof *all);
    size_t n = 0;
    int rc = all ? 0 : kb_err_set(e, "load_cert", "out of memory");
    for (size_t i = 0; rc == 0 && i < nb; i++) {
        if (strcmp(bl[i].type, "CERTIFICATE") != 0)
            continue;
        const unsigned char *p = bl[i].der;
        X509 *x = d2i_X509(NULL, &p, (long)bl[i].len);
        if (!x || p != bl[i].der + bl[i].len) {
            X509_free(x);
            rc = kb_err_ssl(e, "load_cert", "certificate %zu: invalid DER", n + 1);
        } else
            all[n++] = x;
    }
    if (rc == 0 && n == 0)
        rc = kb_err_set(e, "load_cert", "no CERTIFICATE in PEM data (first block is %s)", bl[0].type);
    kb_pki_pem_free(bl, nb);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            X509_free(all[i]);
        free(all);
        return -1;
    }
    *out = all;
    *nout = n;
    return 0;
}

char *kb_pki_cert_pem(const X509 *c, size_t *len, kb_err *e)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *r = NULL;
    if (!b || !PEM_write_bio_X509(b, c))
        kb_err_ssl(e, "cert_pem", "encoding the certificate failed");
    else
        r = kb_pki_bio_take(b, len, e, "cert_pem");
    BIO_free(b);
    return r;
}

unsigned char *kb_pki_cert_der(const X509 *c, size_t *len, kb_err *e)
{
    unsigned char *der = NULL;
    int n = i2d_X509(c, &der);
    unsigned char *r = n > 0 ? malloc((size_t)n) : NULL;
    if (r) {
        memcpy(r, der, (size_t)n);
        *len = (size_t)n;
    } else
        kb_err_ssl(e, "cert_der", "encoding the certificate failed");
    OPENSSL_free(der);
    return r;
}

int kb_pki_verify(X509 *c, X509 *const *cas, size_t n, int64_t t, kb_err *e)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *chain = sk_X509_new_null();
    int rc = -1;
    if (!st || !ctx || !chain) {
        kb_err_ssl(e, "verify", "out of memory");
        goto done;
    }
    /* Self-signed certificates among cas are the roots and the others intermediates, so
     * constraints along the chain are checked. Without a root, the given CAs are trusted as
     * they are (a pinned intermediate), like Go's x509 Roots pool. */
    size_t roots = 0;
    for (size_t i = 0; i < n; i++)
        roots += X509_self_signed(cas[i], 0) == 1;
    ERR_clear_error();
    for (size_t i = 0; i < n; i++) {
        int root = !roots || X509_self_signed(cas[i], 0) == 1;
        if (!(root ? X509_STORE_add_cert(st, cas[i]) : sk_X509_push(chain, cas[i]) > 0)) {
            kb_err_ssl(e, "verify", "adding CA certificate %zu failed", i + 1);
            goto done;
        }
    }
    if (!roots)
        X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
    if (!X509_STORE_CTX_init(ctx, st, c, chain)) {
        kb_err_ssl(e, "verify", "setting up verification failed");
        goto done;
    }
    if (t)
        X509_STORE_CTX_set_time(ctx, 0, (time_t)t);
    if (X509_verify_cert(ctx) == 1)
        rc = 0;
    else {
        ERR_clear_error();
        int err = X509_STORE_CTX_get_error(ctx);
        kb_err_set(e, "verify", "certificate verify failed: %s", X509_verify_cert_error_string(err));
        if (e)
            e->code = err;
    }
done:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    sk_X509_free(chain);
    return rc;
}

int kb_pki_issued_by(X509 *c, X509 *ca)
{
    EVP_PKEY *k = X509_get0_pubkey(ca);
    ERR_set_mark();
    int ok = k && X509_verify(c, k) == 1;
    ERR_pop_to_mark();
    return ok;
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

int64_t kb_pki_cert_not_before(const X509 *c) { return asn1_unix(X509_get0_notBefore(c)); }
int64_t kb_pki_cert_not_after(const X509 *c) { return asn1_unix(X509_get0_notAfter(c)); }
