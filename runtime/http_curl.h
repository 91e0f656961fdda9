/* kboot.http, bottom layer (http_curl.c): libcurl, loaded on first use. Internal to runtime/http*.c.
 *
 * libcurl pulls in some 30 shared libraries (gnutls, krb5, ldap, ssh2, ...): linking it would
 * make every kboot run, online or not, load and relocate them all. So it is dlopen()ed the
 * first time a client is made, as systemd does with its optional libraries, and each curl
 * function is called through a pointer of curl's own prototype (sym_<name>).
 * The pointers are set once, under pthread_once in kb_http_global_init, and only read after:
 * every other http*.c file calls curl through them once that succeeded.
 *
 * The layers: http_curl.h <- http_resp.h (collecting a response) <- http.c (clients, requests). */
#ifndef KBOOT_HTTP_CURL_H
#define KBOOT_HTTP_CURL_H

#include <curl/curl.h>

#include "kboot/http.h"

#define CURL_SYMS(X)                                                                            \
    X(curl_global_init) X(curl_easy_init) X(curl_easy_cleanup) X(curl_easy_setopt)              \
    X(curl_easy_getinfo) X(curl_easy_perform) X(curl_easy_strerror) X(curl_easy_escape)         \
    X(curl_free) X(curl_share_init) X(curl_share_setopt) X(curl_share_cleanup)                  \
    X(curl_slist_append) X(curl_slist_free_all) X(curl_url) X(curl_url_set) X(curl_url_get)     \
    X(curl_url_cleanup) X(curl_url_strerror) X(curl_version_info)

#define CURL_SYM_DECL(f) extern __typeof__(f) *sym_##f;
CURL_SYMS(CURL_SYM_DECL)
#undef CURL_SYM_DECL

#endif
