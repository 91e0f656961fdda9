/* kboot.http: collecting a response (http_resp.c): growing buffers and the libcurl header and
 * body callbacks of one transfer. Internal to runtime/http*.c; see http_curl.h for the layers. */
#ifndef KBOOT_HTTP_RESP_H
#define KBOOT_HTTP_RESP_H

#include <stddef.h>

#include "http_curl.h"

struct buf {
    char *p;
    size_t n, cap;
};

/* Append n bytes and keep a NUL after them; -1 when out of memory. */
int http_buf_add(struct buf *b, const char *s, size_t n);

/* The state of one request's transfers (the last attempt's response). */
struct xfer {
    CURL *h;
    kb_http_resp *resp;
    struct buf body;
    struct buf hdrs;        /* "name\0value\0" pairs of the last response */
    size_t nhdrs;
    const kb_http_req *req;
    struct buf info;        /* tls_info: curl's informational lines of the last attempt */
    int delivered;          /* on_chunk saw data: the attempt cannot be retried */
    int oom;
};

/* libcurl callbacks; ud is the struct xfer. */
size_t http_on_header(char *data, size_t size, size_t nmemb, void *ud);
size_t http_on_body(char *data, size_t size, size_t nmemb, void *ud);
/* Header pairs into resp->headers, joining repeated names with ", " as HTTP allows. */
int http_finish_headers(struct xfer *x);

#endif
