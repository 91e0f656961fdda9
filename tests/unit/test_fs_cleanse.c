/* cmocka tests: file contents that pass through kboot.fs buffers (fs.read's result, the copies a
 * dry run keeps in its overlay and record, the buffer a growing read leaves behind, the one the
 * "unchanged" check reads into) are cleansed before they are freed, so a private key read or
 * "written" by kboot does not linger in freed heap. This test defines OPENSSL_cleanse itself (the
 * runtime's calls bind to it) and counts the buffers it is given that hold the key's marker. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kboot/fs.h"
#include "fs_fixture.h"

#define MARK "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"

static int g_cleansed; /* buffers holding MARK that were cleansed */

void OPENSSL_cleanse(void *p, size_t n);
void OPENSSL_cleanse(void *p, size_t n)
{
    if (p && n >= sizeof MARK - 1 && memmem(p, n, MARK, sizeof MARK - 1))
        g_cleansed++;
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static void put(const char *host, const char *s)
{
    FILE *f = fopen(host, "wb");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void test_read_result(void **state)
{
    (void)state;
    kb_err e;
    char *data;
    size_t len;
    put(H("/ca.key"), MARK "\n-----END PRIVATE KEY-----\n");
    g_cleansed = 0;
    assert_int_equal(kb_fs_read("/ca.key", &data, &len, &e), 0);
    kb_fs_free_data(data, len);
    assert_int_equal(g_cleansed, 1);
    kb_fs_free_data(NULL, 0); /* safe */
}

/* A file whose size is not known up front (a pipe, /proc) is read into a growing buffer: the
 * smaller buffers it outgrows are cleansed too. */
static void test_growing_read(void **state)
{
    (void)state;
    kb_err e;
    char *data;
    size_t len;
    assert_int_equal(mkfifo(H("/fifo"), 0600), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(H("/fifo"), O_WRONLY);
        char pad[20000];
        memset(pad, 'x', sizeof pad);
        _exit(fd >= 0 && write(fd, MARK, sizeof MARK - 1) > 0 && write(fd, pad, sizeof pad) > 0 ? 0 : 1);
    }
    g_cleansed = 0;
    assert_int_equal(kb_fs_read("/fifo", &data, &len, &e), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(len, sizeof MARK - 1 + 20000);
    assert_true(g_cleansed >= 2); /* 4 KiB -> 8 -> 16 -> 32: each outgrown buffer holds MARK */
    int before = g_cleansed;
    kb_fs_free_data(data, len);
    assert_int_equal(g_cleansed, before + 1);
}

/* A dry run keeps what it "writes" twice (overlay and record): both copies are cleansed when the
 * overlay is dropped, replaced or the record forgotten; so is what chmod copies in from disk. */
static void test_dry_run_copies(void **state)
{
    (void)state;
    kb_err e;
    kb_fs_set_dry_run(1);
    g_cleansed = 0;
    assert_int_equal(kb_fs_write("/k", MARK, sizeof MARK - 1, 0600, NULL, NULL, &e), 0);
    assert_int_equal(g_cleansed, 0);
    assert_int_equal(kb_fs_write("/k", "other", 5, 0600, NULL, NULL, &e), 0); /* replaces the overlay copy */
    assert_int_equal(g_cleansed, 1);
    kb_fs_reset_recorded(); /* the record of the first write */
    assert_int_equal(g_cleansed, 2);
    assert_int_equal(kb_fs_write("/k2", MARK, sizeof MARK - 1, 0600, NULL, NULL, &e), 0);
    kb_fs_set_dry_run(0); /* drops overlay and record */
    assert_int_equal(g_cleansed, 4);
    put(H("/disk.key"), MARK);
    kb_fs_set_dry_run(1);
    g_cleansed = 0;
    assert_int_equal(kb_fs_chmod("/disk.key", 0400, &e), 0); /* read into the overlay */
    assert_int_equal(g_cleansed, 1);                          /* the read buffer */
    kb_fs_reset();                                            /* frees everything */
    assert_int_equal(g_cleansed, 2);
    assert_int_equal(kb_fs_set_root(tmp, &e), 0);
}

/* The "unchanged" check compares the file on disk with the new content through a buffer. */
static void test_unchanged_check(void **state)
{
    (void)state;
    kb_err e;
    int changed = -1;
    assert_int_equal(kb_fs_write("/k", MARK, sizeof MARK - 1, 0600, NULL, &changed, &e), 0);
    g_cleansed = 0;
    assert_int_equal(kb_fs_write("/k", MARK, sizeof MARK - 1, 0600, NULL, &changed, &e), 0);
    assert_int_equal(changed, 0);
    assert_int_equal(g_cleansed, 1);
    assert_string_equal(slurp(H("/k")), MARK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_growing_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchanged_check, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
