#include "kboot/gzip.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <zlib.h>

#include "kboot/dl.h"

#define ZSYMS(X) X(inflateInit2_) X(inflate) X(inflateEnd)
#define ZSYM_DEF(f) static __typeof__(f) *sym_##f;
ZSYMS(ZSYM_DEF)
#undef ZSYM_DEF

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_err[512]; /* empty once zlib is loaded */

static void load(void)
{
#define ZSYM_ENTRY(f) { #f, (void **)&sym_##f },
    static const kb_dl_sym syms[] = { ZSYMS(ZSYM_ENTRY) };
#undef ZSYM_ENTRY
    kb_dl_load("KBOOT_LIBZ", "libz.so.1", "zlib1g", syms, sizeof syms / sizeof syms[0], load_err, sizeof load_err);
}

int kb_gunzip(const unsigned char *in, size_t inlen, unsigned char *out, size_t outlen, kb_err *e)
{
    pthread_once(&once, load);
    if (load_err[0])
        return kb_err_set(e, "gunzip", "%s", load_err);
    if (inlen > UINT_MAX || outlen > UINT_MAX)
        return kb_err_set(e, "gunzip", "input too large");
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 16 + MAX_WBITS: a gzip header and trailer, not a zlib one */
    int rc = sym_inflateInit2_(&z, 16 + MAX_WBITS, ZLIB_VERSION, (int)sizeof z);
    if (rc != Z_OK)
        return kb_err_set(e, "gunzip", "inflateInit2: error %d", rc);
    z.next_in = (unsigned char *)in;
    z.avail_in = (unsigned)inlen;
    z.next_out = out;
    z.avail_out = (unsigned)outlen;
    rc = sym_inflate(&z, Z_FINISH);
    size_t got = z.total_out;
    unsigned left = z.avail_in;
    const char *why = z.msg;
    sym_inflateEnd(&z);
    if (rc != Z_STREAM_END)
        return kb_err_set(e, "gunzip", "corrupt data (%s)", why ? why : rc == Z_BUF_ERROR ? "longer than expected" : "truncated");
    if (got != outlen || left != 0)
        return kb_err_set(e, "gunzip", "%zu bytes, expected %zu", got, outlen);
    return 0;
}
