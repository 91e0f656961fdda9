/* Detached JWS (HS256), as Kubernetes' bootstrap signer writes it for cluster-info
 * (see include/kboot/crypto.h). */
#include <openssl/crypto.h>
#include <string.h>

#include "crypto_internal.h"
#include "kboot/crypto.h"

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

#define KID_MAX 256
#define JWS_HDR_PREFIX "{\"alg\":\"HS256\",\"kid\":\""
#define JWS_HDR_SUFFIX "\"}"
#define JWS_SIG_B64 43 /* base64url of 32 bytes */

int kb_crypto_jws_kid_ok(const char *kid, size_t kidlen)
{
    if (kidlen == 0 || kidlen > KID_MAX)
        return 0;
    /* Characters a JSON encoder would escape (Go's also escapes <, >, &) are refused, so
     * the header bytes are the same whoever writes them. */
    for (size_t i = 0; i < kidlen; i++) {
        unsigned char c = (unsigned char)kid[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&')
            return 0;
    }
    return 1;
}

size_t kb_crypto_jws_len(size_t kidlen)
{
    size_t hdr = sizeof JWS_HDR_PREFIX - 1 + kidlen + sizeof JWS_HDR_SUFFIX - 1;
    return kb_crypto_base64_len(hdr, 1) + 2 + JWS_SIG_B64;
}

/* HMAC over the JWS signing input: header_b64 "." base64url(payload), the payload encoded
 * slice by slice so it is never copied whole. */
static int jws_mac(const char *hdr, size_t hlen, const void *payload, size_t n, const void *key,
                   size_t klen, unsigned char mac[KB_SHA256_LEN], const char *op, kb_err *e)
{
    EVP_MAC_CTX *ctx = kb_crypto_hmac_new(key, klen, op, e);
    if (!ctx)
        return -1;
    int ok = kb_crypto_hmac_update(ctx, hdr, hlen) && kb_crypto_hmac_update(ctx, ".", 1);
    const unsigned char *p = payload;
    char chunk[1024 + 1];
    while (ok && n > 0) {
        size_t k = n > 768 ? 768 : n; /* a multiple of 3 except the final slice */
        size_t m = kb_crypto_base64(p, k, chunk, 1);
        ok = kb_crypto_hmac_update(ctx, chunk, m);
        p += k;
        n -= k;
    }
    return kb_crypto_hmac_final(ctx, ok, mac, op, e);
}

int kb_crypto_jws_sign(const void *payload, size_t n, const char *kid, size_t kidlen,
                       const void *key, size_t klen, char *out, kb_err *e)
{
    if (!kb_crypto_jws_kid_ok(kid, kidlen))
        return kb_err_set(e, "jws_sign", "kid must be 1 to %d printable ASCII characters "
                          "without quotes, backslashes, '<', '>' or '&'", KID_MAX);
    char hdr[sizeof JWS_HDR_PREFIX + KID_MAX + sizeof JWS_HDR_SUFFIX];
    size_t hl = 0;
    memcpy(hdr, JWS_HDR_PREFIX, sizeof JWS_HDR_PREFIX - 1);
    hl += sizeof JWS_HDR_PREFIX - 1;
    memcpy(hdr + hl, kid, kidlen);
    hl += kidlen;
    memcpy(hdr + hl, JWS_HDR_SUFFIX, sizeof JWS_HDR_SUFFIX - 1);
    hl += sizeof JWS_HDR_SUFFIX - 1;

    size_t h64 = kb_crypto_base64(hdr, hl, out, 1);
    unsigned char mac[KB_SHA256_LEN];
    if (jws_mac(out, h64, payload, n, key, klen, mac, "jws_sign", e) < 0)
        return -1;
    out[h64] = '.';
    out[h64 + 1] = '.';
    kb_crypto_base64(mac, sizeof mac, out + h64 + 2, 1);
    return 0;
}

/* A just-big-enough JSON reader for the protected header: a flat object whose "alg",
 * "kid" and "crit" members matter; other members are checked for syntax and skipped. */
typedef struct {
    const unsigned char *p, *end;
} jcur;

static void jws_ws(jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Decode a string into out (cap bytes, NUL-terminated; *fit cleared when it did not fit).
 * Non-ASCII and NUL become 0xff: no valid alg or kid contains them. */
static int jstring(jcur *c, char *out, size_t cap, int *fit)
{
    size_t o = 0;
    if (c->p >= c->end || *c->p != '"')
        return -1;
    c->p++;
    while (c->p < c->end) {
        unsigned ch = *c->p++;
        if (ch == '"') {
            if (out)
                out[o] = '\0';
            return 0;
        }
        if (ch < 0x20)
            return -1;
        if (ch == '\\') {
            if (c->p >= c->end)
                return -1;
            switch (ch = *c->p++) {
            case '"': case '\\': case '/': break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                unsigned code = 0;
                for (int k = 0; k < 4; k++) {
                    int v = c->p < c->end ? hexval(*c->p++) : -1;
                    if (v < 0)
                        return -1;
                    code = code << 4 | (unsigned)v;
                }
                ch = code == 0 || code >= 0x80 ? 0xff : code;
                break;
            }
            default: return -1;
            }
        }
        if (out) {
            if (o + 1 < cap)
                out[o++] = (char)ch;
            else
                *fit = 0;
        }
    }
    return -1;
}

static int jvalue(jcur *c, int depth)
{
    jws_ws(c);
    if (c->p >= c->end)
        return -1;
    unsigned char ch = *c->p;
    if (ch == '"')
        return jstring(c, NULL, 0, NULL);
    if (ch == '{' || ch == '[') {
        unsigned char close = ch == '{' ? '}' : ']';
        if (depth > 16)
            return -1;
        c->p++;
        jws_ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (close == '}') {
                jws_ws(c);
                if (jstring(c, NULL, 0, NULL) < 0)
                    return -1;
                jws_ws(c);
                if (c->p >= c->end || *c->p++ != ':')
                    return -1;
            }
            if (jvalue(c, depth + 1) < 0)
                return -1;
            jws_ws(c);
            if (c->p >= c->end)
                return -1;
            ch = *c->p++;
            if (ch == close)
                return 0;
            if (ch != ',')
                return -1;
        }
    }
    /* true, false, null or a number: a run of their characters, loosely checked. */
    const unsigned char *s = c->p;
    while (c->p < c->end && strchr("truefalsn0123456789+-.E", *c->p) && *c->p)
        c->p++;
    size_t len = (size_t)(c->p - s);
    if (len == 0)
        return -1;
    if (*s >= 'a' && *s <= 'z')
        return (len == 4 && !memcmp(s, "true", 4)) || (len == 5 && !memcmp(s, "false", 5)) ||
                       (len == 4 && !memcmp(s, "null", 4))
                   ? 0
                   : -1;
    return 0;
}

typedef struct {
    char alg[16], kid[KID_MAX + 2];
    int has_alg, alg_fit, has_kid, kid_fit, crit;
} jws_hdr;

/* Returns -1 (with a reason in *why) if the header is not a JSON object we can read. */
static int jws_parse_header(const unsigned char *h, size_t n, jws_hdr *hd, const char **why)
{
    jcur c = { h, h + n };
    memset(hd, 0, sizeof *hd);
    *why = "header is not a JSON object";
    jws_ws(&c);
    if (c.p >= c.end || *c.p++ != '{')
        return -1;
    jws_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (;;) {
            char key[8];
            int kfit = 1;
            jws_ws(&c);
            if (jstring(&c, key, sizeof key, &kfit) < 0)
                return -1;
            jws_ws(&c);
            if (c.p >= c.end || *c.p++ != ':')
                return -1;
            jws_ws(&c);
            int *seen = NULL;
            if (kfit && !strcmp(key, "alg"))
                seen = &hd->has_alg;
            else if (kfit && !strcmp(key, "kid"))
                seen = &hd->has_kid;
            else if (kfit && !strcmp(key, "crit"))
                seen = &hd->crit;
            if (seen && *seen) {
                *why = "header repeats a member (alg, kid or crit)";
                return -1;
            }
            if (seen)
                *seen = 1;
            /* A non-string alg or kid reads as empty: it then matches nothing. */
            if (seen == &hd->has_alg && c.p < c.end && *c.p == '"') {
                hd->alg_fit = 1;
                if (jstring(&c, hd->alg, sizeof hd->alg, &hd->alg_fit) < 0)
                    return -1;
            } else if (seen == &hd->has_kid && c.p < c.end && *c.p == '"') {
                hd->kid_fit = 1;
                if (jstring(&c, hd->kid, sizeof hd->kid, &hd->kid_fit) < 0)
                    return -1;
            } else if (jvalue(&c, 0) < 0) {
                return -1;
            }
            jws_ws(&c);
            if (c.p >= c.end)
                return -1;
            unsigned char ch = *c.p++;
            if (ch == '}')
                break;
            if (ch != ',')
                return -1;
        }
    }
    jws_ws(&c);
    return c.p == c.end ? 0 : -1;
}

/* Printable copy of s for messages: at most 64 bytes, odd bytes shown as '?'. */
static const char *shown(const char *s, size_t n, char buf[72])
{
    size_t k = n > 64 ? 64 : n;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    strcpy(buf + k, n > 64 ? "..." : "");
    return buf;
}

int kb_crypto_jws_verify(const char *jws, size_t jlen, const void *payload, size_t n,
                         const char *kid, size_t kidlen, const void *key, size_t klen, kb_err *e)
{
    static const char *op = "jws_verify";
    const char *d1 = memchr(jws, '.', jlen);
    const char *d2 = d1 ? memchr(d1 + 1, '.', jlen - (size_t)(d1 + 1 - jws)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', jlen - (size_t)(d2 + 1 - jws)) || d1 == jws ||
        d2 + 1 == jws + jlen)
        return kb_err_set(e, op, "malformed JWS: expected <header>..<signature> (compact form, "
                                 "detached payload)");
    if (d2 != d1 + 1)
        return kb_err_set(e, op, "malformed JWS: the payload part must be empty (detached)");
    size_t hlen = (size_t)(d1 - jws);
    const char *sig64 = d2 + 1;
    size_t slen = jlen - (size_t)(sig64 - jws);

    unsigned char *hdr = OPENSSL_malloc(kb_crypto_unbase64_max(hlen));
    if (!hdr)
        return kb_err_set(e, op, "out of memory");
    size_t hn = 0;
    kb_err sub;
    if (kb_crypto_unbase64(jws, hlen, hdr, &hn, 1, &sub) < 0) {
        OPENSSL_free(hdr);
        return kb_err_set(e, op, "malformed JWS: header: %s", sub.msg);
    }
    jws_hdr hd;
    const char *why;
    int bad = jws_parse_header(hdr, hn, &hd, &why);
    OPENSSL_free(hdr);
    char b1[72], b2[72];
    if (bad)
        return kb_err_set(e, op, "malformed JWS: %s", why);
    if (!hd.has_alg)
        return kb_err_set(e, op, "alg must be HS256, header has no alg");
    if (!hd.alg_fit || strcmp(hd.alg, "HS256")) /* "none" and the RS/ES algs end here */
        return kb_err_set(e, op, "alg must be HS256, header has \"%s\"",
                          shown(hd.alg, strlen(hd.alg), b1));
    if (hd.crit)
        return kb_err_set(e, op, "JWS header has critical extensions (crit), which are not supported");
    if (!hd.has_kid)
        return kb_err_set(e, op, "JWS header has no kid; expected token id \"%s\"",
                          shown(kid, kidlen, b2));
    if (!hd.kid_fit || strlen(hd.kid) != kidlen || memcmp(hd.kid, kid, kidlen))
        return kb_err_set(e, op, "kid \"%s\" does not match token id \"%s\"",
                          shown(hd.kid, strlen(hd.kid), b1), shown(kid, kidlen, b2));

    unsigned char sig[KB_SHA256_LEN + 3], mac[KB_SHA256_LEN];
    size_t sn = 0;
    if (slen != JWS_SIG_B64)
        return kb_err_set(e, op, "malformed JWS: signature is %zu characters, HS256 gives %d",
                          slen, JWS_SIG_B64);
    if (kb_crypto_unbase64(sig64, slen, sig, &sn, 1, &sub) < 0)
        return kb_err_set(e, op, "malformed JWS: signature: %s", sub.msg);
    if (jws_mac(jws, hlen, payload, n, key, klen, mac, op, e) < 0)
        return -1;
    int same = kb_crypto_equal(sig, sn, mac, sizeof mac);
    OPENSSL_cleanse(mac, sizeof mac);
    if (!same)
        return kb_err_set(e, op, "signature mismatch: the content or the token secret differs "
                                 "from what was signed");
    return 0;
}
