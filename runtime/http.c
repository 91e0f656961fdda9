/* Clients and requests: handles sharing a connection pool, TLS material from memory, retries with
 * backoff. libcurl is reached through http_curl.h, responses are collected by http_resp.c. */

#include "http_resp.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kboot/clock.h"
#include "kboot/intr.h"
#include "kboot/log.h"

#ifndef KBOOT_VERSION
#define KBOOT_VERSION "0"
#endif

/* Two easy handles share one connection pool: `easy` for ordinary requests, `stream` for
 * streamed ones, so a watch callback may still issue requests on the same client. */
struct kb_http_client {
    CURLSH *share;
    CURL *easy;
    CURL *stream;
    int busy_easy, busy_stream;
    char *server;           /* without trailing '/' */
    char *ca, *cert, *key;  /* private copies; key cleansed on free */
    size_t ca_len, cert_len, key_len;
    char *auth_header;      /* "Authorization: Bearer ...", cleansed on free */
    char *user_agent;
    int insecure;
    double timeout, connect_timeout, retry_deadline;
    int retries;
    kb_http_stats stats;
};

void kb_http_opts_init(kb_http_opts *o)
{
    memset(o, 0, sizeof *o);
    o->timeout = 30;
    o->connect_timeout = 10;
    o->retries = 4;
    o->retry_deadline = 60;
}

/* ---- small helpers ---- */

static char *memdup0(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void free_secret(char *p, size_t n)
{
    if (p) {
        OPENSSL_cleanse(p, n);
        free(p);
    }
}

/* ---- PEM checks ---- */

/* The PEM password callback must never prompt on a terminal: an encrypted key is an error. */
static int no_password(char *buf, int size, int rwflag, void *u) { return -1; }

static int check_pem(const kb_http_opts *o, kb_err *e)
{
    int rc = -1, n = 0;
    X509 *x = NULL, *leaf = NULL;
    EVP_PKEY *pk = NULL;
    BIO *b = NULL;
    ERR_clear_error();
    if (o->ca_len > INT32_MAX || o->cert_len > INT32_MAX || o->key_len > INT32_MAX)
        return kb_err_set(e, "http", "PEM data too large");
    if (o->ca_pem) {
        b = BIO_new_mem_buf(o->ca_pem, (int)o->ca_len);
        while (b && (x = PEM_read_bio_X509(b, NULL, no_password, NULL))) {
            X509_free(x);
            n++;
        }
        BIO_free(b);
        b = NULL;
        if (n == 0) {
            kb_err_ssl(e, "http", "ca_pem: no PEM certificate found");
            goto done;
        }
        /* Running out of PEM blocks ends the loop with "no start line"; anything else is a
         * broken certificate after the good ones. */
        if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
            kb_err_ssl(e, "http", "ca_pem: certificate %d is not valid", n + 1);
            goto done;
        }
        ERR_clear_error();
    }
    if (!o->cert_pem != !o->key_pem) {
        kb_err_set(e, "http", "cert_pem and key_pem must be given together");
        goto done;
    }
    if (o->cert_pem) {
        b = BIO_new_mem_buf(o->cert_pem, (int)o->cert_len);
        if (!b || !(leaf = PEM_read_bio_X509(b, NULL, no_password, NULL))) {
            kb_err_ssl(e, "http", "cert_pem: no PEM certificate found");
            goto done;
        }
        BIO_free(b);
        b = BIO_new_mem_buf(o->key_pem, (int)o->key_len);
        if (!b || !(pk = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL))) {
            kb_err_ssl(e, "http", "key_pem: no PEM private key found (or it is encrypted)");
            goto done;
        }
        if (X509_check_private_key(leaf, pk) != 1) {
            kb_err_ssl(e, "http", "key_pem does not match cert_pem");
            goto done;
        }
    }
    rc = 0;
done:
    BIO_free(b);
    X509_free(leaf);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return rc;
}

/* ---- client ---- */

/* Called by curl many times a second, and when a signal interrupts its poll(): a pending
 * interrupt request aborts the transfer (CURLE_ABORTED_BY_CALLBACK). */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    return kb_intr_pending();
}

static CURL *new_handle(kb_http_client *c)
{
    CURL *h = sym_curl_easy_init();
    if (!h)
        return NULL;
    sym_curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    sym_curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    sym_curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    sym_curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    sym_curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    sym_curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    sym_curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    sym_curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    if (c->connect_timeout > 0)
        sym_curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->connect_timeout * 1000));
    if (c->ca) {
        /* Only the given CAs: without this curl would also trust its built-in bundle. */
        struct curl_blob ca = { c->ca, c->ca_len, CURL_BLOB_NOCOPY };
        sym_curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
        sym_curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        sym_curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    }
    if (c->insecure) {
        sym_curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        sym_curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->cert) {
        struct curl_blob cert = { c->cert, c->cert_len, CURL_BLOB_NOCOPY };
        struct curl_blob key = { c->key, c->key_len, CURL_BLOB_NOCOPY };
        sym_curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
        sym_curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        sym_curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
        sym_curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    return h;
}

/* Combinations that would quietly give away what the caller asked for. */
static int check_security(const kb_http_opts *o, kb_err *e)
{
    if (o->insecure && o->ca_pem)
        return kb_err_set(e, "http", "insecure (skip TLS verification) together with ca_pem is refused, as client-go "
                                     "refuses it: verify with the CA, or skip verification, not both");
    if (strncasecmp(o->server, "http://", 7) == 0 && !o->plain_http && (o->token || o->cert_pem))
        return kb_err_set(e, "http", "server %s is plain http://: the %s would not be protected by TLS; use "
                                     "https://, or allow it explicitly (plain_http)",
                          o->server, o->token ? "bearer token" : "client certificate");
    return 0;
}

kb_http_client *kb_http_client_new(const kb_http_opts *o, kb_err *e)
{
    if (kb_http_global_init(e) < 0 || kb_http_check_server(o->server, e) < 0 || check_security(o, e) < 0 ||
        check_pem(o, e) < 0)
        return NULL;
    kb_http_client *c = calloc(1, sizeof *c);
    if (!c) {
        kb_err_set(e, "http", "out of memory");
        return NULL;
    }
    size_t n = strlen(o->server);
    while (n > 0 && o->server[n - 1] == '/')
        n--;
    c->server = memdup0(o->server, n);
    if (o->ca_pem)
        c->ca = memdup0(o->ca_pem, c->ca_len = o->ca_len);
    if (o->cert_pem) {
        c->cert = memdup0(o->cert_pem, c->cert_len = o->cert_len);
        c->key = memdup0(o->key_pem, c->key_len = o->key_len);
    }
    if (o->token) {
        size_t tn = strlen(o->token) + 32;
        if ((c->auth_header = malloc(tn)))
            snprintf(c->auth_header, tn, "Authorization: Bearer %s", o->token);
    }
    c->user_agent = strdup(o->user_agent ? o->user_agent : "kboot/" KBOOT_VERSION);
    c->insecure = o->insecure;
    c->timeout = o->timeout;
    c->connect_timeout = o->connect_timeout;
    c->retries = o->retries < 0 ? 0 : o->retries;
    c->retry_deadline = o->retry_deadline;
    c->share = sym_curl_share_init();
    if (!c->server || (o->ca_pem && !c->ca) || (o->cert_pem && (!c->cert || !c->key)) ||
        (o->token && !c->auth_header) || !c->user_agent || !c->share) {
        kb_err_set(e, "http", "out of memory");
        kb_http_client_free(c);
        return NULL;
    }
    sym_curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    sym_curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    sym_curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    if (!(c->easy = new_handle(c))) {
        kb_err_set(e, "http", "curl_easy_init failed");
        kb_http_client_free(c);
        return NULL;
    }
    return c;
}

void kb_http_client_free(kb_http_client *c)
{
    if (!c)
        return;
    if (c->easy)
        sym_curl_easy_cleanup(c->easy);
    if (c->stream)
        sym_curl_easy_cleanup(c->stream);
    if (c->share)
        sym_curl_share_cleanup(c->share);
    free(c->server);
    free(c->ca);
    free(c->cert);
    free_secret(c->key, c->key_len);
    if (c->auth_header)
        free_secret(c->auth_header, strlen(c->auth_header));
    free(c->user_agent);
    free(c);
}

void kb_http_client_stats(const kb_http_client *c, kb_http_stats *s) { *s = c->stats; }

/* ---- request ---- */

static char *build_url(kb_http_client *c, CURL *h, const kb_http_req *r)
{
    struct buf u = { 0 };
    int bad = http_buf_add(&u, c->server, strlen(c->server)) < 0 || http_buf_add(&u, r->path, strlen(r->path)) < 0;
    char sep = strchr(r->path, '?') ? '&' : '?';
    for (size_t i = 0; !bad && i < r->nquery; i++) {
        char *k = sym_curl_easy_escape(h, r->query[2 * i], 0);
        char *v = sym_curl_easy_escape(h, r->query[2 * i + 1], 0);
        bad = !k || !v || http_buf_add(&u, &sep, 1) < 0 || http_buf_add(&u, k, strlen(k)) < 0 ||
              http_buf_add(&u, "=", 1) < 0 || http_buf_add(&u, v, strlen(v)) < 0;
        sep = '&';
        sym_curl_free(k);
        sym_curl_free(v);
    }
    if (bad) {
        free(u.p);
        return NULL;
    }
    return u.p;
}

static int retryable_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

static int retryable_status(long s) { return s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

static int is_tls_verify(CURLcode rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH || rc == CURLE_SSL_ISSUER_ERROR ||
           rc == CURLE_SSL_INVALIDCERTSTATUS;
}

/* The server refusing our client certificate arrives as a TLS alert, often only on the first
 * read (TLS 1.3), so curl reports a plain send/recv error; it must not be retried. */
static int is_tls_refused(CURLcode rc, const char *detail)
{
    return (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
            rc == CURLE_HTTP2) &&
           strstr(detail, "alert") != NULL;
}

static void fail_curl(kb_err *e, const kb_http_client *c, const kb_http_req *r, const char *url, CURLcode rc,
                      const char *detail, int attempts)
{
    char tail[48] = "";
    if (attempts > 1)
        snprintf(tail, sizeof tail, " (after %d attempts)", attempts);
    const char *why = sym_curl_easy_strerror(rc);
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        kb_err_set(e, r->method, "%s %s: interrupted", r->method, url);
    else if (is_tls_verify(rc))
        kb_err_set(e, r->method, "%s %s: TLS verification failed: %s (%s); check the CA%s", r->method,
                   url, why, detail, tail);
    else if (is_tls_refused(rc, detail))
        kb_err_set(e, r->method, "%s %s: TLS connection refused by the server: %s (%s); check the "
                   "client certificate%s", r->method, url, why, detail, tail);
    else if (strncmp(url, "https:", 6) == 0 && strstr(detail, "reset by peer"))
        /* With TLS 1.3 the refusal alert races our first write; a reset is what is left. */
        kb_err_set(e, r->method, "%s %s: %s (%s)%s; the server may have %s", r->method, url, why, detail,
                   tail, c->cert ? "refused the client certificate" : "wanted a client certificate");
    else if (*detail)
        kb_err_set(e, r->method, "%s %s: %s (%s)%s", r->method, url, why, detail, tail);
    else
        kb_err_set(e, r->method, "%s %s: %s%s", r->method, url, why, tail);
    if (e)
        e->code = (int)rc;
}

/* The list may hold "Authorization: Bearer <token>": wipe before freeing. */
static void free_headers(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next)
        OPENSSL_cleanse(p->data, strlen(p->data));
    sym_curl_slist_free_all(l);
}

static struct curl_slist *build_headers(kb_http_client *c, const kb_http_req *r, int *oom)
{
    struct curl_slist *l = NULL, *t;
    int has_auth = 0;
    *oom = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strncasecmp(r->headers[i], "authorization:", 14) == 0)
            has_auth = 1;
        if (!(t = sym_curl_slist_append(l, r->headers[i])))
            goto oom;
        l = t;
    }
    /* No "Expect: 100-continue" round trip for large bodies: the apiserver answers anyway. */
    if (!(t = sym_curl_slist_append(l, "Expect:")))
        goto oom;
    l = t;
    if (c->auth_header && !has_auth) {
        if (!(t = sym_curl_slist_append(l, c->auth_header)))
            goto oom;
        l = t;
    }
    return l;
oom:
    free_headers(l);
    *oom = 1;
    return NULL;
}

static void set_method(CURL *h, const kb_http_req *r)
{
    sym_curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    sym_curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    int is_post = strcmp(r->method, "POST") == 0;
    if (strcmp(r->method, "HEAD") == 0) {
        sym_curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        return;
    }
    if (r->body || is_post) {
        sym_curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
        sym_curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    }
    if (!is_post && strcmp(r->method, "GET") != 0)
        sym_curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    else if (!is_post && r->body)
        sym_curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "GET");
}

static const char *version_name(CURL *h)
{
    long v = 0;
    sym_curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &v);
    switch (v) {
    case CURL_HTTP_VERSION_1_0: return "1.0";
    case CURL_HTTP_VERSION_2_0: return "2";
    case CURL_HTTP_VERSION_3: return "3";
    default: return "1.1";
    }
}

/* tls_info: curl's own lines about the connection (CURLINFO_TEXT only: never headers or data,
 * so no credentials), bounded. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    struct xfer *x = ud;
    if (type == CURLINFO_TEXT && x->info.n + size < 16384 && http_buf_add(&x->info, data, size) < 0)
        x->oom = 1;
    return 0;
}

static double info_seconds(CURL *h, CURLINFO what)
{
    curl_off_t us = 0;
    return sym_curl_easy_getinfo(h, what, &us) == CURLE_OK ? (double)us / 1e6 : 0;
}

/* Where the response came from, how long each step took, and (tls_info) the chain. 0, or -1
 * when out of memory. */
static int fill_info(CURL *h, struct xfer *x, kb_http_resp *resp)
{
    kb_http_timing *t = &resp->timing;
    t->dns = info_seconds(h, CURLINFO_NAMELOOKUP_TIME_T);
    t->connect = info_seconds(h, CURLINFO_CONNECT_TIME_T);
    t->tls = info_seconds(h, CURLINFO_APPCONNECT_TIME_T);
    t->first_byte = info_seconds(h, CURLINFO_STARTTRANSFER_TIME_T);
    t->total = info_seconds(h, CURLINFO_TOTAL_TIME_T);
    char *ip = NULL;
    if (sym_curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
        snprintf(resp->primary_ip, sizeof resp->primary_ip, "%s", ip);
    sym_curl_easy_getinfo(h, CURLINFO_PRIMARY_PORT, &resp->primary_port);
    if (!x->req->tls_info)
        return 0;
    if (x->info.p) {
        resp->info = x->info.p;
        x->info.p = NULL;
    }
    struct curl_certinfo *ci = NULL;
    if (sym_curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci || ci->num_of_certs <= 0)
        return 0;
    if (!(resp->certs = calloc((size_t)ci->num_of_certs, sizeof *resp->certs)))
        return -1;
    for (int i = 0; i < ci->num_of_certs; i++)
        for (struct curl_slist *l = ci->certinfo[i]; l; l = l->next)
            if (strncmp(l->data, "Cert:", 5) == 0) {
                if (!(resp->certs[resp->ncerts] = strdup(l->data + 5)))
                    return -1;
                resp->ncerts++;
                break;
            }
    return 0;
}

/* One transfer. Returns the curl code; fills x. */
static CURLcode perform(kb_http_client *c, CURL *h, struct xfer *x, char *errbuf)
{
    x->body.n = 0;
    x->hdrs.n = 0;
    x->info.n = 0;
    x->nhdrs = 0;
    x->delivered = 0;
    x->oom = 0;
    x->resp->stopped = 0;
    errbuf[0] = '\0';
    CURLcode rc = sym_curl_easy_perform(h);
    long n = 0;
    if (sym_curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK)
        c->stats.connects += n;
    return rc;
}

int kb_http_request(kb_http_client *c, const kb_http_req *r, kb_http_resp *resp, kb_err *e)
{
    memset(resp, 0, sizeof *resp);
    int streaming = r->on_chunk != NULL;
    int *busy = streaming ? &c->busy_stream : &c->busy_easy;
    if (*busy) {
        kb_err_set(e, r->method, "http client busy: called again from inside its own stream callback");
        if (e)
            e->code = KB_HTTP_EBUSY;
        return -1;
    }
    if (streaming && !c->stream && !(c->stream = new_handle(c)))
        return kb_err_set(e, r->method, "curl_easy_init failed");
    CURL *h = streaming ? c->stream : c->easy;

    int oom = 0, rcode = -1;
    char errbuf[CURL_ERROR_SIZE];
    char *url = build_url(c, h, r);
    struct curl_slist *hl = url ? build_headers(c, r, &oom) : NULL;
    if (!url || oom) {
        free(url);
        return kb_err_set(e, r->method, "out of memory");
    }
    struct xfer x = { .h = h, .resp = resp, .req = r };
    double timeout = r->timeout < 0 ? c->timeout : r->timeout;
    int retries = r->retries < 0 ? c->retries : r->retries;
    sym_curl_easy_setopt(h, CURLOPT_URL, url);
    sym_curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    sym_curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout > 0 ? (long)(timeout * 1000) : 0L);
    sym_curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    sym_curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_on_header);
    sym_curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    sym_curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_on_body);
    sym_curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    if (r->tls_info) {
        sym_curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
        sym_curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
        sym_curl_easy_setopt(h, CURLOPT_DEBUGDATA, &x);
        sym_curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    }
    set_method(h, r);

    *busy = 1;
    c->stats.requests++;
    double start = kb_clock_monotonic(), backoff = 0.2;
    for (int attempt = 1;; attempt++) {
        CURLcode rc = perform(c, h, &x, errbuf);
        if (x.oom) {
            kb_err_set(e, r->method, "%s %s: out of memory", r->method, url);
            break;
        }
        int ok = rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && resp->stopped);
        long status = 0;
        if (ok)
            sym_curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        int again = !x.delivered && (ok ? retryable_status(status)
                                        : retryable_code(rc) && !is_tls_refused(rc, errbuf));
        double wait = backoff;
        curl_off_t ra = 0;
        if (ok && (status == 429 || status == 503) &&
            sym_curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            wait = ra > 60 ? 60.0 : (double)ra; /* without a deadline, a bogus hour must not hang us */
        if (again && (attempt > retries || kb_intr_pending() || (c->retry_deadline > 0 &&
                                            kb_clock_monotonic() - start + wait > c->retry_deadline)))
            again = 0;
        if (!again) {
            if (!ok) {
                fail_curl(e, c, r, url, rc, errbuf, attempt);
                break;
            }
            resp->status = status;
            resp->http_version = version_name(h);
            if (http_finish_headers(&x) < 0 || fill_info(h, &x, resp) < 0) {
                kb_http_resp_free(resp);
                kb_err_set(e, r->method, "%s %s: out of memory", r->method, url);
                break;
            }
            resp->body = x.body.p ? x.body.p : calloc(1, 1);
            resp->body_len = x.body.n;
            x.body.p = NULL;
            if (!resp->body) {
                kb_http_resp_free(resp);
                kb_err_set(e, r->method, "%s %s: out of memory", r->method, url);
                break;
            }
            rcode = 0;
            break;
        }
        char why[64];
        if (ok)
            snprintf(why, sizeof why, "HTTP %ld", status);
        else
            snprintf(why, sizeof why, "%s", sym_curl_easy_strerror(rc));
        char line[600];
        snprintf(line, sizeof line, "%s %s: %s; retrying in %.1fs (attempt %d of %d)", r->method, url, why,
                 wait, attempt + 1, retries + 1);
        kb_log_write(KB_LOG_DEBUG, "http", line);
        kb_clock_sleep(wait);
        if (kb_intr_pending()) { /* the wait was cut short: no further attempt */
            fail_curl(e, c, r, url, CURLE_ABORTED_BY_CALLBACK, "", attempt);
            break;
        }
        backoff = backoff * 2 > 5 ? 5 : backoff * 2;
        c->stats.retries++;
    }
    *busy = 0;
    /* Nothing in the handle may point at this call's memory once it returns. */
    sym_curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    sym_curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    sym_curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
    sym_curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    sym_curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    if (r->tls_info) {
        sym_curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
        sym_curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, NULL);
        sym_curl_easy_setopt(h, CURLOPT_DEBUGDATA, NULL);
        sym_curl_easy_setopt(h, CURLOPT_CERTINFO, 0L);
    }
    free_headers(hl);
    free(x.body.p);
    free(x.hdrs.p);
    free(x.info.p);
    free(url);
    return rcode;
}
