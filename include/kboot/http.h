/* HTTP(S) client on libcurl (loaded on first use): one client per server, keep-alive, TLS material from memory,
 * retries with backoff. Knows nothing of Kubernetes or JSON; the bindings add those. */
#ifndef KBOOT_HTTP_H
#define KBOOT_HTTP_H

#include <stddef.h>

#include "kboot/err.h"

typedef struct kb_http_opts {
    const char *server;            /* "https://host:port" or "http://...", no query */
    const char *ca_pem;            /* trusted CAs; NULL: the system trust store */
    size_t ca_len;
    const char *cert_pem;          /* client certificate, with key_pem */
    size_t cert_len;
    const char *key_pem;
    size_t key_len;
    const char *token;             /* bearer token */
    const char *user_agent;        /* NULL: "kboot/<version>" */
    int insecure;                  /* skip peer verification (discovery only, verified later);
                                    * refused together with ca_pem, as client-go refuses it */
    int plain_http;                /* allow a token or client certificate with an http:// server */
    double timeout;                /* whole request, seconds; <= 0: none */
    double connect_timeout;        /* seconds; <= 0: curl's default */
    int retries;                   /* further attempts after the first */
    double retry_deadline;         /* seconds from the first attempt; <= 0: no deadline */
} kb_http_opts;

/* Fills o with the documented defaults (timeout 30, connect 10, retries 4, deadline 60). */
void kb_http_opts_init(kb_http_opts *o);

/* Body chunk of a streamed 2xx response; return 0 to stop the transfer (not an error). */
typedef int (*kb_http_chunk_fn)(void *ud, const char *data, size_t len);

typedef struct kb_http_req {
    const char *method;            /* "GET", "POST", ... */
    const char *path;              /* "/api/v1/..." possibly with its own "?query" */
    const char *const *query;      /* name/value pairs, URL-encoded here: q[2i], q[2i+1] */
    size_t nquery;                 /* number of pairs */
    const char *const *headers;    /* "Name: value" lines */
    size_t nheaders;
    const char *body;              /* NULL: no body */
    size_t body_len;
    double timeout;                /* < 0: client default; 0: none */
    int retries;                   /* < 0: client default */
    kb_http_chunk_fn on_chunk;     /* non-NULL: stream a 2xx body instead of keeping it */
    void *ud;
    int tls_info;                  /* keep the server's certificate chain and curl's lines about the
                                      connection (resp->certs, resp->info); only a new connection
                                      has them, so a client's first request */
} kb_http_req;

/* Seconds from the start of the last attempt to the end of each step (0: not reached, or reused). */
typedef struct kb_http_timing {
    double dns, connect, tls, first_byte, total;
} kb_http_timing;

typedef struct kb_http_resp {
    long status;
    char **headers;                /* names lowercased: headers[2i] name, headers[2i+1] value */
    size_t nheaders;
    char *body;                    /* NUL-terminated; empty for a streamed 2xx body */
    size_t body_len;
    int stopped;                   /* the chunk callback asked to stop */
    const char *http_version;      /* "1.0", "1.1", "2", "3" (static string) */
    kb_http_timing timing;
    char primary_ip[64];           /* the address connected to, and its port */
    long primary_port;
    char **certs;                  /* tls_info: the server's chain as PEM, as sent (leaf first) */
    size_t ncerts;
    char *info;                    /* tls_info: curl's informational lines (handshake, ALPN), or NULL */
} kb_http_resp;

typedef struct kb_http_stats {
    long requests;                 /* kb_http_request calls */
    long connects;                 /* new connections opened (CURLINFO_NUM_CONNECTS summed) */
    long retries;                  /* attempts after the first */
} kb_http_stats;

typedef struct kb_http_client kb_http_client;

/* libcurl is not linked: the first kb_http_global_init dlopen()s it, so offline runs never load
 * it (nor the ~30 libraries it needs). The environment variable KBOOT_LIBCURL names another file
 * to load (a path or a soname) instead of this one. */
#define KB_HTTP_LIBCURL "libcurl.so.4"

/* Loads libcurl and runs curl_global_init, exactly once per process (pthread_once). Fails with
 * "libcurl.so.4 cannot be loaded: <why>; install libcurl4" when the library is missing; every
 * later call gives the same error. kb_http_check_server and kb_http_client_new call it too. */
int kb_http_global_init(kb_err *e);

/* The loaded libcurl's version ("7.88.1") and its TLS library ("OpenSSL/3.0.17", NULL when it has
 * none): static strings of libcurl's. Loads libcurl as kb_http_global_init does, with its error. */
int kb_http_curl_version(const char **version, const char **ssl, kb_err *e);

/* 0 if server is an absolute http(s) URL with a host and nothing after the path; else -1. */
int kb_http_check_server(const char *server, kb_err *e);

/* Copies everything it needs from o. Checks the PEM material (a CA certificate, a client
 * certificate and its matching key) so a bad file fails here with a clear message. */
kb_http_client *kb_http_client_new(const kb_http_opts *o, kb_err *e);

/* Safe with NULL; cleanses the copies of key material. */
void kb_http_client_free(kb_http_client *c);

/* Performs r, retrying transport failures and 429/5xx. HTTP error statuses are a response,
 * not a failure. An interrupt request (kboot/intr.h) aborts the transfer and any further attempt:
 * e->code = KB_HTTP_EINTR. On failure resp is left empty and e->op = method, e->code = curl code.
 * Streamed requests (on_chunk) use a second curl handle sharing the connection pool, so
 * on_chunk may make ordinary requests on c; a streamed request from inside on_chunk fails
 * with e->code = KB_HTTP_EBUSY. r->method and r->path must not be NULL. */
int kb_http_request(kb_http_client *c, const kb_http_req *r, kb_http_resp *resp, kb_err *e);

/* The value of header name (lowercase) in resp, or NULL. */
const char *kb_http_resp_header(const kb_http_resp *resp, const char *name);

void kb_http_resp_free(kb_http_resp *resp);

void kb_http_client_stats(const kb_http_client *c, kb_http_stats *s);

/* e->code when the client was called from inside its own chunk callback. */
#define KB_HTTP_EBUSY (-2)
/* e->code when an interrupt request stopped the request (curl's CURLE_ABORTED_BY_CALLBACK). */
#define KB_HTTP_EINTR 42

#endif
