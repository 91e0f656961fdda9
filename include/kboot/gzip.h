/* gzip (RFC 1952) decompression through zlib, which is dlopen()ed on first use (kboot/dl.h) like
 * libcurl: only what reads a compressed blob (the embedded script sources) loads it. */
#ifndef KBOOT_GZIP_H
#define KBOOT_GZIP_H

#include <stddef.h>

#include "kboot/err.h"

/* Decompress the gzip member in[0..inlen) into out, which must be exactly outlen bytes long (the
 * caller knows the size). 0 on success (the CRC checked, every input byte used); -1 with e filled:
 * zlib that cannot be loaded (KBOOT_LIBZ names another file), corrupt data, or a size mismatch. */
int kb_gunzip(const unsigned char *in, size_t inlen, unsigned char *out, size_t outlen, kb_err *e);

#endif
