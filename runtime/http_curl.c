/* kboot.http: loading libcurl (see http_curl.h), its version, and the server URL check that needs its
 * URL parser. */
#include "http_curl.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kboot/dl.h"

#define CURL_SYM_DEF(f) __typeof__(f) *sym_##f;
CURL_SYMS(CURL_SYM_DEF)
#undef CURL_SYM_DEF

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static char global_err[512]; /* empty once libcurl is loaded and initialised */

static int load_curl(void)
{
#define CURL_SYM_ENTRY(f) { #f, (void **)&sym_##f },
    static const kb_dl_sym syms[] = { CURL_SYMS(CURL_SYM_ENTRY) };
#undef CURL_SYM_ENTRY
    return kb_dl_load("KBOOT_LIBCURL", KB_HTTP_LIBCURL, "libcurl4", syms, sizeof syms / sizeof syms[0], global_err,
                      sizeof global_err);
}

static void global_init(void)
{
    if (load_curl() < 0)
        return;
    CURLcode rc = sym_curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        snprintf(global_err, sizeof global_err, "curl_global_init: %s", sym_curl_easy_strerror(rc));
}

int kb_http_global_init(kb_err *e)
{
    pthread_once(&global_once, global_init);
    if (global_err[0])
        return kb_err_set(e, "http", "%s", global_err);
    return 0;
}

int kb_http_curl_version(const char **version, const char **ssl, kb_err *e)
{
    if (kb_http_global_init(e) < 0)
        return -1;
    const curl_version_info_data *d = sym_curl_version_info(CURLVERSION_NOW);
    *version = d && d->version ? d->version : "unknown";
    *ssl = d ? d->ssl_version : NULL;
    return 0;
}

int kb_http_check_server(const char *server, kb_err *e)
{
    if (kb_http_global_init(e) < 0)
        return -1;
    CURLU *u = sym_curl_url();
    if (!u)
        return kb_err_set(e, "http", "out of memory");
    char *scheme = NULL, *host = NULL, *query = NULL, *frag = NULL;
    int rc = -1;
    CURLUcode uc = sym_curl_url_set(u, CURLUPART_URL, server, 0);
    if (uc != CURLUE_OK)
        kb_err_set(e, "http", "server \"%s\": %s", server, sym_curl_url_strerror(uc));
    else if (sym_curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0))
        kb_err_set(e, "http", "server \"%s\": scheme must be https:// or http://", server);
    else if (sym_curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        kb_err_set(e, "http", "server \"%s\": no host", server);
    else if (sym_curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
             sym_curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK)
        kb_err_set(e, "http", "server \"%s\": must not have a query or fragment", server);
    else
        rc = 0;
    sym_curl_free(scheme);
    sym_curl_free(host);
    sym_curl_free(query);
    sym_curl_free(frag);
    sym_curl_url_cleanup(u);
    return rc;
}
