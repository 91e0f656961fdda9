/* kboot.http: collecting a response: headers and body of a transfer, then the kb_http_resp. */
#include "http_resp.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int http_buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

size_t http_on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb, len = n;
    while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        x->hdrs.n = 0; /* a new response (after 100-continue or a retry): forget the old */
        x->nhdrs = 0;
        return n;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon || colon == data)
        return n;
    size_t nl = (size_t)(colon - data);
    const char *v = colon + 1;
    const char *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    char name[128];
    if (nl >= sizeof name)
        return n;
    for (size_t i = 0; i < nl; i++)
        name[i] = (char)tolower((unsigned char)data[i]);
    name[nl] = '\0';
    if (http_buf_add(&x->hdrs, name, nl + 1) < 0 || http_buf_add(&x->hdrs, v, (size_t)(end - v)) < 0 ||
        http_buf_add(&x->hdrs, "", 1) < 0) {
        x->oom = 1;
        return 0;
    }
    x->nhdrs++;
    return n;
}

size_t http_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (x->req->on_chunk) {
        long status = 0;
        sym_curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            x->delivered = 1;
            if (n > 0 && !x->req->on_chunk(x->req->ud, data, n)) {
                x->resp->stopped = 1;
                return CURL_WRITEFUNC_ERROR;
            }
            return n;
        }
    }
    if (http_buf_add(&x->body, data, n) < 0) {
        x->oom = 1;
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

int http_finish_headers(struct xfer *x)
{
    kb_http_resp *r = x->resp;
    r->headers = calloc(2 * x->nhdrs + 1, sizeof(char *));
    if (!r->headers)
        return -1;
    const char *p = x->hdrs.p;
    for (size_t i = 0; i < x->nhdrs; i++) {
        const char *name = p, *val = p + strlen(p) + 1;
        p = val + strlen(val) + 1;
        size_t j = 0;
        while (j < r->nheaders && strcmp(r->headers[2 * j], name) != 0)
            j++;
        if (j < r->nheaders) {
            char *old = r->headers[2 * j + 1];
            size_t on = strlen(old), vn = strlen(val);
            char *joined = realloc(old, on + 2 + vn + 1);
            if (!joined)
                return -1;
            memcpy(joined + on, ", ", 2);
            memcpy(joined + on + 2, val, vn + 1);
            r->headers[2 * j + 1] = joined;
            continue;
        }
        if (!(r->headers[2 * j] = strdup(name)) || !(r->headers[2 * j + 1] = strdup(val)))
            return -1;
        r->nheaders++;
    }
    return 0;
}

void kb_http_resp_free(kb_http_resp *r)
{
    if (!r)
        return;
    if (r->headers)
        for (size_t i = 0; i < 2 * r->nheaders + 1; i++)
            free(r->headers[i]);
    free(r->headers);
    free(r->body);
    for (size_t i = 0; i < r->ncerts; i++)
        free(r->certs[i]);
    free(r->certs);
    free(r->info);
    memset(r, 0, sizeof *r);
}

const char *kb_http_resp_header(const kb_http_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[2 * i], name) == 0)
            return r->headers[2 * i + 1];
    return NULL;
}
