#define _GNU_SOURCE /* memmem */
/* runtime/http.c without Lua: URL and PEM checks, error texts, retries and response parsing
 * against a canned-response server forked from the test (plain sockets, no mocks of curl). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kboot/http.h"

/* A listening (or, with listen_too=0, merely bound) socket on 127.0.0.1; returns the port. */
static int bind_local(int *fd, int listen_too)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t n = sizeof a;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    if (listen_too)
        assert_int_equal(listen(*fd, 8), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &n), 0);
    return ntohs(a.sin_port);
}

/* Child: answers successive requests (any connection) with replies[i], then exits. */
static pid_t serve(const char *const *replies, int n, int *port)
{
    int lfd;
    *port = bind_local(&lfd, 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0) {
        close(lfd);
        return pid;
    }
    int c = -1;
    for (int i = 0; i < n;) {
        if (c < 0 && (c = accept(lfd, NULL, NULL)) < 0)
            _exit(1);
        char buf[8192];
        size_t got = 0;
        while (!memmem(buf, got, "\r\n\r\n", 4)) {
            ssize_t r = read(c, buf + got, sizeof buf - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (!memmem(buf, got, "\r\n\r\n", 4)) { /* the client closed: take the next connection */
            close(c);
            c = -1;
            continue;
        }
        if (write(c, replies[i], strlen(replies[i])) < 0)
            _exit(1);
        i++;
    }
    _exit(0);
}

static void reap(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static kb_http_client *new_client(const char *url, int retries)
{
    kb_http_opts o;
    kb_http_opts_init(&o);
    o.server = url;
    o.retries = retries;
    o.timeout = 10;
    kb_err e;
    kb_http_client *c = kb_http_client_new(&o, &e);
    if (!c)
        fail_msg("client: %s", e.msg);
    return c;
}

static void test_check_server(void **state)
{
    kb_err e;
    assert_int_equal(kb_http_check_server("https://10.0.0.1:6443", &e), 0);
    assert_int_equal(kb_http_check_server("http://localhost/prefix/", &e), 0);
    assert_int_equal(kb_http_check_server("ftp://x", &e), -1);
    assert_non_null(strstr(e.msg, "scheme must be"));
    assert_int_equal(kb_http_check_server("https://h/?q=1", &e), -1);
    assert_non_null(strstr(e.msg, "query or fragment"));
    assert_int_equal(kb_http_check_server("not a url", &e), -1);
}

static void test_bad_pem(void **state)
{
    kb_http_opts o;
    kb_http_opts_init(&o);
    o.server = "https://127.0.0.1:1";
    o.ca_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    o.ca_len = strlen(o.ca_pem);
    kb_err e;
    assert_null(kb_http_client_new(&o, &e));
    assert_string_equal(e.op, "http");
    assert_non_null(strstr(e.msg, "ca_pem: no PEM certificate found"));
    o.ca_pem = NULL;
    o.cert_pem = "x";
    o.cert_len = 1;
    assert_null(kb_http_client_new(&o, &e));
    assert_non_null(strstr(e.msg, "cert_pem and key_pem must be given together"));
}

static void test_refused_after_retries(void **state)
{
    int fd;
    int port = bind_local(&fd, 0); /* bound, not listening: connections are refused */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    kb_http_client *c = new_client(url, 1);
    kb_http_req r = { .method = "GET", .path = "/x", .timeout = -1, .retries = -1 };
    kb_http_resp resp;
    kb_err e;
    assert_int_equal(kb_http_request(c, &r, &resp, &e), -1);
    char want[128];
    snprintf(want, sizeof want, "GET %s/x: Couldn't connect to server (", url);
    assert_memory_equal(e.msg, want, strlen(want));
    assert_non_null(strstr(e.msg, "(after 2 attempts)"));
    assert_string_equal(e.op, "GET");
    assert_int_equal(e.code, 7);
    kb_http_stats s;
    kb_http_client_stats(c, &s);
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.retries, 1);
    kb_http_resp_free(&resp); /* empty after a failure: safe */
    kb_http_client_free(c);
    kb_http_client_free(NULL);
    close(fd);
}

static void test_response_and_retry(void **state)
{
    static const char *const replies[] = {
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!",
    };
    int port;
    pid_t pid = serve(replies, 3, &port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    kb_http_client *c = new_client(url, 2);
    const char *q[] = { "a b", "c&d" };
    kb_http_req r = { .method = "GET", .path = "/p", .query = q, .nquery = 1, .timeout = -1, .retries = -1 };
    kb_http_resp resp;
    kb_err e;
    assert_int_equal(kb_http_request(c, &r, &resp, &e), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 5);
    assert_string_equal(resp.body, "hello");
    assert_string_equal(kb_http_resp_header(&resp, "x-a"), "1, 2");
    assert_string_equal(kb_http_resp_header(&resp, "content-type"), "text/plain");
    assert_null(kb_http_resp_header(&resp, "X-A")); /* names are stored lowercased */
    kb_http_resp_free(&resp);
    /* a 404 is a response, and is not retried */
    r.query = NULL;
    r.nquery = 0;
    assert_int_equal(kb_http_request(c, &r, &resp, &e), 0);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.body, "no!");
    kb_http_resp_free(&resp);
    kb_http_stats s;
    kb_http_client_stats(c, &s);
    assert_int_equal(s.requests, 2);
    assert_int_equal(s.retries, 1);
    assert_int_equal(s.connects, 1);
    kb_http_client_free(c);
    reap(pid);
}

struct chunks {
    char buf[256];
    size_t n;
    int calls;
};

static int collect(void *ud, const char *data, size_t len)
{
    struct chunks *ch = ud;
    if (ch->n + len < sizeof ch->buf) {
        memcpy(ch->buf + ch->n, data, len);
        ch->n += len;
    }
    ch->calls++;
    return 1;
}

static void test_stream(void **state)
{
    static const char *const replies[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "6\r\nline1\n\r\n6\r\nline2\n\r\n0\r\n\r\n",
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied",
    };
    int port;
    pid_t pid = serve(replies, 2, &port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    kb_http_client *c = new_client(url, 0);
    struct chunks ch = { .n = 0 };
    kb_http_req r = { .method = "GET", .path = "/watch", .timeout = -1, .retries = -1, .on_chunk = collect, .ud = &ch };
    kb_http_resp resp;
    kb_err e;
    assert_int_equal(kb_http_request(c, &r, &resp, &e), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 0);
    ch.buf[ch.n] = '\0';
    assert_string_equal(ch.buf, "line1\nline2\n");
    kb_http_resp_free(&resp);
    /* an error status is kept as a body, not streamed */
    ch.n = 0;
    ch.calls = 0;
    assert_int_equal(kb_http_request(c, &r, &resp, &e), 0);
    assert_int_equal(resp.status, 403);
    assert_string_equal(resp.body, "denied");
    assert_int_equal(ch.calls, 0);
    kb_http_resp_free(&resp);
    kb_http_client_free(c);
    reap(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_server),       cmocka_unit_test(test_bad_pem),
        cmocka_unit_test(test_refused_after_retries), cmocka_unit_test(test_response_and_retry),
        cmocka_unit_test(test_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
