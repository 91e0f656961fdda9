#include "kboot/err.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void vset(kb_err *e, const char *op, const char *fmt, va_list ap)
{
    memset(e, 0, sizeof *e);
    snprintf(e->op, sizeof e->op, "%s", op ? op : "");
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
}

static void append(kb_err *e, const char *s)
{
    size_t n = strlen(e->msg);
    snprintf(e->msg + n, sizeof e->msg - n, ": %s", s);
}

int kb_err_set(kb_err *e, const char *op, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vset(e, op, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int kb_err_ssl(kb_err *e, const char *op, const char *fmt, ...)
{
    /* The most specific reason is the earliest queued error; drain the rest so
     * they do not leak into the next failure's message. */
    unsigned long code = ERR_get_error();
    char reason[256] = "";
    if (code)
        ERR_error_string_n(code, reason, sizeof reason);
    ERR_clear_error();
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vset(e, op, fmt, ap);
        va_end(ap);
        if (code) {
            const char *r = ERR_reason_error_string(code);
            append(e, r ? r : reason);
        }
    }
    return -1;
}

int kb_err_sys(kb_err *e, int errnum, const char *op, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vset(e, op, fmt, ap);
        va_end(ap);
        append(e, strerror(errnum));
        e->code = errnum;
    }
    return -1;
}
