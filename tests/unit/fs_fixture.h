/* The fixture of the kboot.fs cmocka tests (test_fs.c, test_fs_batch.c): a fresh temp directory as
 * the root prefix for each test, host paths of cluster paths, and whole-file reads with plain libc
 * (disk state is checked without going through kb_fs). Include after <cmocka.h>. */
#ifndef KBOOT_TESTS_FS_FIXTURE_H
#define KBOOT_TESTS_FS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "kboot/fs.h"

static char tmp[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/kboot-fs-unit.XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    kb_err e;
    return kb_fs_set_root(tmp, &e);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    kb_fs_reset();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* Host path of a cluster path; four rotating buffers, so a call may take two or three. */
static const char *H(const char *p)
{
    static char buf[4][KB_FS_PATH_MAX];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, KB_FS_PATH_MAX, "%s%s", tmp, p);
    return b;
}

/* The whole file (up to 64 KiB) or NULL; four rotating buffers. */
static char *slurp(const char *host)
{
    static char buf[4][65536];
    static int i;
    char *b = buf[i++ % 4];
    FILE *f = fopen(host, "rb");
    if (!f)
        return NULL;
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    fclose(f);
    b[n] = '\0';
    return b;
}

#endif
