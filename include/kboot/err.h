/* Error reporting shared by every runtime primitive.
 *
 * Runtime functions return 0 (or a valid pointer) on success and -1 (or NULL) on
 * failure, filling a caller-owned kb_err. The bindings turn a kb_err into the
 * Lua convention `nil, err` (see bindings/common.h). */
#ifndef KBOOT_ERR_H
#define KBOOT_ERR_H

#include <stddef.h>

typedef struct kb_err {
    char op[32];    /* what was attempted, short: "write", "pem_decode", "GET" */
    char msg[480];  /* why, for a human: one line, no trailing newline */
    long status;    /* HTTP status where it applies, else 0 */
    int  code;      /* errno, curl code, ... where it applies, else 0 */
} kb_err;

/* Fill e (if not NULL) and return -1, so `return kb_err_set(...)` reads well. */
int kb_err_set(kb_err *e, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like kb_err_set, then append ": <reason>" from the OpenSSL error queue (drained). */
int kb_err_ssl(kb_err *e, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like kb_err_set, then append ": <strerror(errnum)>" and record errnum in e->code. */
int kb_err_sys(kb_err *e, int errnum, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
