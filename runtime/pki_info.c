/* Reading fields back out of names, certificates and CSRs. */
#include "pki_internal.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

void kb_pki_name_each(const X509_NAME *n, void (*fn)(int, const char *, void *), void *ud)
{
    for (int i = 0; i < X509_NAME_entry_count(n); i++) {
        const X509_NAME_ENTRY *ne = X509_NAME_get_entry(n, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(ne));
        if (nid != NID_commonName && nid != NID_organizationName)
            continue;
        unsigned char *utf8 = NULL;
        if (ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(ne)) < 0) {
            ERR_clear_error();
            continue;
        }
        fn(nid == NID_commonName ? 'C' : 'O', (const char *)utf8, ud);
        OPENSSL_free(utf8);
    }
}

char *kb_pki_name_string(const X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *r = NULL;
    /* RFC 2253 but keep UTF-8 as is instead of \XX escapes. */
    if (b && X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0)
        r = kb_pki_bio_take(b, NULL, NULL, "name");
    BIO_free(b);
    return r;
}

char *kb_pki_cert_serial_hex(const X509 *c)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
    char *h = bn ? BN_bn2hex(bn) : NULL;
    char *r = h ? strdup(h) : NULL;
    OPENSSL_free(h);
    BN_free(bn);
    /* Lower case like the other hex fields. */
    for (char *p = r; p && *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p += 'a' - 'A';
    return r;
}

static void each_san(GENERAL_NAMES *g, void (*fn)(int, const char *, void *), void *ud)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(g); i++) {
        const GENERAL_NAME *n = sk_GENERAL_NAME_value(g, i);
        char buf[INET6_ADDRSTRLEN];
        if (n->type == GEN_DNS) {
            const ASN1_STRING *s = n->d.dNSName;
            char *t = strndup((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
            if (t)
                fn('D', t, ud);
            free(t);
        } else if (n->type == GEN_IPADD) {
            const ASN1_STRING *s = n->d.iPAddress;
            int len = ASN1_STRING_length(s);
            if ((len == 4 || len == 16) &&
                inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), buf, sizeof buf))
                fn('I', buf, ud);
        }
    }
}

void kb_pki_cert_sans(const X509 *c, void (*fn)(int, const char *, void *), void *ud)
{
    GENERAL_NAMES *g = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
    each_san(g, fn, ud);
    GENERAL_NAMES_free(g);
}

void kb_pki_csr_sans(const X509_REQ *r, void (*fn)(int, const char *, void *), void *ud)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions((X509_REQ *)r);
    GENERAL_NAMES *g = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
    each_san(g, fn, ud);
    GENERAL_NAMES_free(g);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ERR_clear_error();
}

unsigned kb_pki_cert_usages(X509 *c, int *present)
{
    uint32_t ku = X509_get_key_usage(c);
    *present = ku != UINT32_MAX;
    return *present ? ku : 0;
}

size_t kb_pki_cert_ekus(const X509 *c, int *out, size_t max)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(c, NID_ext_key_usage, NULL, NULL);
    size_t n = 0;
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku) && n < max; i++)
        out[n++] = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
    EXTENDED_KEY_USAGE_free(eku);
    return n;
}

int kb_pki_cert_info(X509 *c, struct kb_cert_info *out, kb_err *e)
{
    memset(out, 0, sizeof *out);
    out->version = (int)X509_get_version(c) + 1;
    out->not_before = kb_pki_cert_not_before(c);
    out->not_after = kb_pki_cert_not_after(c);
    out->is_ca = (X509_get_extension_flags(c) & EXFLAG_CA) != 0;
    out->path_len = X509_get_pathlen(c);
    out->sig_alg = kb_pki_nid_name(X509_get_signature_nid(c));
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(c), *aki = X509_get0_authority_key_id(c);
    out->serial_hex = kb_pki_cert_serial_hex(c);
    if (ski)
        out->ski_hex = kb_pki_hex(ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski));
    if (aki)
        out->aki_hex = kb_pki_hex(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki));
    if (!out->serial_hex || (ski && !out->ski_hex) || (aki && !out->aki_hex))
        return kb_err_set(e, "cert_info", "out of memory");
    return 0;
}

void kb_pki_cert_info_free(struct kb_cert_info *i)
{
    free(i->serial_hex);
    free(i->ski_hex);
    free(i->aki_hex);
    i->serial_hex = i->ski_hex = i->aki_hex = NULL;
}

const char *kb_pki_csr_sig_alg(const X509_REQ *r) { return kb_pki_nid_name(X509_REQ_get_signature_nid(r)); }

const char *kb_pki_nid_name(int nid)
{
    const char *n = nid != NID_undef ? OBJ_nid2ln(nid) : NULL;
    return n ? n : "unknown";
}
