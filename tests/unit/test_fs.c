/* cmocka tests of runtime/fs.c: paths, atomic writes and their failure paths, remove, dry-run overlay. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kboot/fs.h"
#include "fs_fixture.h"

static void put(const char *host, const char *s)
{
    FILE *f = fopen(host, "wb");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static int entries(const char *host) /* names in a directory, without . and .. */
{
    DIR *d = opendir(host);
    int n = 0;
    struct dirent *de;
    if (!d)
        return -1;
    while ((de = readdir(d)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

static unsigned mode_of(const char *host)
{
    struct stat st;
    assert_int_equal(lstat(host, &st), 0);
    return st.st_mode & 07777;
}

static void test_clean_path(void **state)
{
    static const char *const cases[][2] = {
        { "/", "/" },           { "//", "/" },         { "/a//b/", "/a/b" },  { "/a/./b/.", "/a/b" },
        { "/a/b/../c", "/a/c" }, { "/a/..", "/" },     { "/..a/b..", "/..a/b.." }, { "/a/../b/../c", "/c" },
    };
    char out[KB_FS_PATH_MAX];
    kb_err e;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(kb_fs_clean_path(cases[i][0], out, sizeof out, &e), 0);
        assert_string_equal(out, cases[i][1]);
    }
    assert_int_equal(kb_fs_clean_path("a/b", out, sizeof out, &e), -1);
    assert_string_equal(e.msg, "absolute path expected, got 'a/b'");
    assert_int_equal(kb_fs_clean_path("", out, sizeof out, &e), -1);
    assert_int_equal(kb_fs_clean_path("/..", out, sizeof out, &e), -1);
    assert_string_equal(e.msg, "path '/..' escapes the root");
    assert_int_equal(kb_fs_clean_path("/a/../../etc", out, sizeof out, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(kb_fs_clean_path("/abcdef", out, 6, &e), -1);
    assert_int_equal(e.code, ENAMETOOLONG);
}

static void test_root_prefix(void **state)
{
    char hp[KB_FS_PATH_MAX], want[KB_FS_PATH_MAX];
    kb_err e;
    assert_int_equal(kb_fs_host_path("/etc//kubernetes/./x", hp, sizeof hp, &e), 0);
    snprintf(want, sizeof want, "%s/etc/kubernetes/x", tmp);
    assert_string_equal(hp, want);
    assert_int_equal(kb_fs_host_path("/", hp, sizeof hp, &e), 0);
    assert_string_equal(hp, tmp);
    assert_int_equal(kb_fs_host_path("/x/../..", hp, sizeof hp, &e), -1);
    assert_int_equal(kb_fs_set_root("/", &e), 0);
    assert_string_equal(kb_fs_root(), "/");
    assert_int_equal(kb_fs_host_path("/etc/x", hp, sizeof hp, &e), 0);
    assert_string_equal(hp, "/etc/x");
    assert_int_equal(kb_fs_set_root(H("/missing"), &e), -1);
    assert_int_equal(e.code, ENOENT);
    put(H("/file"), "x");
    assert_int_equal(kb_fs_set_root(H("/file"), &e), -1);
    assert_int_equal(e.code, ENOTDIR);
    assert_string_equal(kb_fs_root(), "/");
    assert_int_equal(kb_fs_set_root(tmp, &e), 0);
    assert_string_equal(kb_fs_root(), tmp);
}

static void test_atomic_write(void **state)
{
    kb_err e;
    int changed = -1;
    mode_t old = umask(0777); /* the mode must not depend on it */
    kb_fs_write_opts o = { .mkdir = 1, .dir_mode = 0750 };
    assert_int_equal(kb_fs_write("/etc/k/a.conf", "hello", 5, 0640, &o, &changed, &e), 0);
    umask(old);
    assert_int_equal(changed, 1);
    assert_string_equal(slurp(H("/etc/k/a.conf")), "hello");
    assert_int_equal(mode_of(H("/etc/k/a.conf")), 0640);
    assert_int_equal(mode_of(H("/etc/k")), 0750);
    assert_int_equal(mode_of(H("/etc")), 0755); /* a missing parent above it: 0755 */
    assert_int_equal(entries(H("/etc/k")), 1);

    struct stat a, b;
    assert_int_equal(stat(H("/etc/k/a.conf"), &a), 0);
    assert_int_equal(kb_fs_write("/etc/k/a.conf", "hello", 5, 0640, NULL, &changed, &e), 0);
    assert_int_equal(changed, 0);
    assert_int_equal(stat(H("/etc/k/a.conf"), &b), 0);
    assert_int_equal(a.st_ino, b.st_ino); /* untouched */

    /* Replacing goes through a new inode (rename), never an in-place rewrite. */
    assert_int_equal(kb_fs_write("/etc/k/a.conf", "bye", 3, 0600, NULL, &changed, &e), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(stat(H("/etc/k/a.conf"), &b), 0);
    assert_int_not_equal(a.st_ino, b.st_ino);
    assert_string_equal(slurp(H("/etc/k/a.conf")), "bye");
    assert_int_equal(mode_of(H("/etc/k/a.conf")), 0600);
    assert_int_equal(entries(H("/etc/k")), 1);

    char *data;
    size_t len;
    assert_int_equal(kb_fs_read("/etc/k/a.conf", &data, &len, &e), 0);
    assert_int_equal(len, 3);
    assert_string_equal(data, "bye");
    free(data);
}

static void test_write_failures_keep_old_file(void **state)
{
    kb_err e;
    assert_int_equal(mkdir(H("/d"), 0755), 0);
    assert_int_equal(mkdir(H("/d/sub"), 0755), 0);
    put(H("/d/f"), "old");

    assert_int_equal(kb_fs_write("/missing/x", "n", 1, 0644, NULL, NULL, &e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_string_equal(e.op, "write");
    assert_non_null(strstr(e.msg, "cannot write /missing/x"));
    assert_non_null(strstr(e.msg, "directory /missing is missing"));

    assert_int_equal(kb_fs_write("/d/sub", "n", 1, 0644, NULL, NULL, &e), -1);
    assert_int_equal(e.code, EISDIR);
    assert_int_equal(kb_fs_write("/d/f/x", "n", 1, 0644, NULL, NULL, &e), -1);
    assert_int_equal(e.code, ENOTDIR);
    kb_fs_write_opts o = { .mkdir = 1 };
    assert_int_equal(kb_fs_write("/d/f/x/y", "n", 1, 0644, &o, NULL, &e), -1);
    assert_int_equal(e.code, ENOTDIR);

    /* A write that fails half-way (file size limit: EFBIG) leaves the old file and no temp. */
    struct rlimit saved, small = { 4096, 4096 };
    static char big[65536];
    memset(big, 'x', sizeof big);
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved);
    small.rlim_max = saved.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = kb_fs_write("/d/f", big, sizeof big, 0644, NULL, NULL, &e);
    setrlimit(RLIMIT_FSIZE, &saved);
    assert_int_equal(rc, -1);
    assert_int_equal(e.code, EFBIG);
    assert_non_null(strstr(e.msg, "cannot write /d/f"));

    assert_string_equal(slurp(H("/d/f")), "old");
    assert_int_equal(entries(H("/d")), 2);
    assert_int_equal(entries(tmp), 1);
}

static void test_temps_are_cleaned(void **state)
{
    kb_err e;
    assert_int_equal(mkdir(H("/d"), 0755), 0);
    put(H("/d/.f.kboot-tmp-aaaaaa"), "partial");
    put(H("/d/.g.kboot-tmp-bbbbbb"), "partial");
    put(H("/d/.f.kboot-tmp-"), "not ours");
    assert_int_equal(kb_fs_write("/d/f", "x", 1, 0644, NULL, NULL, &e), 0);
    assert_int_equal(access(H("/d/.f.kboot-tmp-aaaaaa"), F_OK), -1);
    assert_int_equal(access(H("/d/.g.kboot-tmp-bbbbbb"), F_OK), 0);
    assert_int_equal(kb_fs_clean_temps("/d", &e), 1);
    assert_int_equal(entries(H("/d")), 2);
}

/* Leftovers are found by one scan per directory (the first write into it), and each goes with the
 * next write of its own file, however many writes come between. */
static void test_temps_found_once_per_directory(void **state)
{
    kb_err e;
    kb_fs_write_opts mk = { .mkdir = 1 };
    assert_int_equal(mkdir(H("/d"), 0755), 0);
    put(H("/d/.f.kboot-tmp-aaaaaa"), "partial");
    put(H("/d/.g.kboot-tmp-bbbbbb"), "partial");
    assert_int_equal(kb_fs_write("/d/g", "x", 1, 0644, NULL, NULL, &e), 0); /* the scan */
    assert_int_equal(access(H("/d/.g.kboot-tmp-bbbbbb"), F_OK), -1);
    assert_int_equal(access(H("/d/.f.kboot-tmp-aaaaaa"), F_OK), 0);
    char name[32];
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "/d/n%d", i);
        assert_int_equal(kb_fs_write(name, "x", 1, 0644, NULL, NULL, &e), 0);
    }
    assert_int_equal(access(H("/d/.f.kboot-tmp-aaaaaa"), F_OK), 0);
    assert_int_equal(kb_fs_write("/d/f", "x", 1, 0644, NULL, NULL, &e), 0);
    assert_int_equal(access(H("/d/.f.kboot-tmp-aaaaaa"), F_OK), -1);
    assert_int_equal(entries(H("/d")), 52);
    /* a directory removed and made again (its inode may be reused) is scanned again */
    assert_int_equal(kb_fs_remove("/d", 1, &e), 0);
    assert_int_equal(mkdir(H("/d"), 0755), 0);
    put(H("/d/.f.kboot-tmp-cccccc"), "partial");
    assert_int_equal(kb_fs_write("/d/f", "x", 1, 0644, &mk, NULL, &e), 0);
    assert_int_equal(access(H("/d/.f.kboot-tmp-cccccc"), F_OK), -1);
    assert_int_equal(entries(H("/d")), 1);
}

static void test_remove_tree_not_links(void **state)
{
    kb_err e;
    char outside[KB_FS_PATH_MAX];
    snprintf(outside, sizeof outside, "%s/outside", tmp);
    assert_int_equal(mkdir(outside, 0755), 0);
    put(H("/outside/keep"), "keep");
    kb_fs_write_opts o = { .mkdir = 1 };
    assert_int_equal(kb_fs_write("/t/a/b/c", "x", 1, 0644, &o, NULL, &e), 0);
    assert_int_equal(symlink(outside, H("/t/a/link")), 0);
    assert_int_equal(kb_fs_remove("/t", 0, &e), -1);
    assert_int_equal(e.code, ENOTEMPTY);
    assert_int_equal(kb_fs_remove("/t", 1, &e), 0);
    assert_int_equal(kb_fs_exists("/t"), 0);
    assert_string_equal(slurp(H("/outside/keep")), "keep");
    assert_int_equal(kb_fs_remove("/t", 1, &e), 0); /* missing: fine */
    assert_int_equal(kb_fs_remove("/", 1, &e), -1);
    assert_int_equal(e.code, EINVAL);
}

/* Mounting needs privileges: tests/integration/test_reset.lua unmounts real mounts (in a mount
 * namespace of its own); here, what needs none. */
static void test_unmount_refusals(void **state)
{
    kb_err e;
    assert_int_equal(mkdir(H("/d"), 0755), 0);
    assert_int_equal(kb_fs_unmount("/d", 0, &e), -1); /* not a mount point */
    assert_true(e.code == EINVAL || e.code == EPERM);
    assert_non_null(strstr(e.msg, "cannot unmount /d ("));
    assert_int_equal(kb_fs_unmount("/", KB_FS_UMOUNT_DETACH, &e), -1);
    assert_int_equal(e.code, EINVAL);
    kb_fs_set_dry_run(1);
    assert_int_equal(kb_fs_unmount("/d", 0, &e), 0); /* a dry run unmounts nothing */
    assert_int_equal(kb_fs_unmount("/missing", 0, &e), 0);
    kb_fs_set_dry_run(0);
}

static void test_dry_run_overlay(void **state)
{
    kb_err e;
    kb_fs_write_opts o = { .mkdir = 1 };
    assert_int_equal(mkdir(H("/old"), 0755), 0);
    put(H("/old/f"), "disk");
    kb_fs_set_dry_run(1);
    assert_int_equal(kb_fs_write("/etc/k/x", "X", 1, 0600, &o, NULL, &e), 0);
    assert_int_equal(kb_fs_remove("/old", 1, &e), 0);
    assert_int_equal(kb_fs_mkdir("/old/new", 0700, &e), 0);

    /* nothing on disk changed */
    assert_int_equal(access(H("/etc"), F_OK), -1);
    assert_string_equal(slurp(H("/old/f")), "disk");
    assert_int_equal(entries(tmp), 1);

    /* the overlay answers */
    char *data;
    size_t len;
    assert_int_equal(kb_fs_read("/etc/k/x", &data, &len, &e), 0);
    assert_string_equal(data, "X");
    free(data);
    kb_fs_info st;
    assert_int_equal(kb_fs_stat("/etc/k/x", &st, &e), 0);
    assert_int_equal(st.type, KB_FS_FILE);
    assert_int_equal(st.mode, 0600);
    assert_int_equal(kb_fs_exists("/old/f"), 0);
    assert_int_equal(kb_fs_read("/old/f", &data, &len, &e), -1);
    assert_int_equal(e.code, ENOENT);
    char **names;
    size_t n;
    assert_int_equal(kb_fs_list("/old", &names, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "new");
    kb_fs_free_list(names, n);

    size_t nops;
    const kb_fs_op *ops = kb_fs_recorded(&nops);
    assert_int_equal(nops, 4);
    assert_int_equal(ops[0].op, KB_FS_OP_MKDIR);
    assert_string_equal(ops[0].path, "/etc/k");
    assert_int_equal(ops[1].op, KB_FS_OP_WRITE);
    assert_int_equal(ops[1].len, 1);
    assert_int_equal(ops[1].mode, 0600);
    assert_int_equal(ops[2].op, KB_FS_OP_REMOVE);
    assert_int_equal(ops[2].recursive, 1);
    assert_int_equal(ops[3].op, KB_FS_OP_MKDIR);
    assert_string_equal(kb_fs_op_name(ops[3].op), "mkdir");

    kb_fs_set_dry_run(0);
    ops = kb_fs_recorded(&nops);
    assert_int_equal(nops, 0);
    assert_int_equal(kb_fs_exists("/old/f"), 1);
    assert_int_equal(kb_fs_exists("/etc/k/x"), 0);
}

static void test_lock(void **state)
{
    kb_err e;
    int fd = kb_fs_lock("/.kboot.lock", NULL, &e);
    assert_true(fd >= 0);
    assert_int_equal(kb_fs_lock("/.kboot.lock", NULL, &e), -1);
    assert_int_equal(e.code, EWOULDBLOCK);
    assert_non_null(strstr(e.msg, "another kboot holds /.kboot.lock (pid "));
    kb_fs_unlock(fd);
    fd = kb_fs_lock("/.kboot.lock", NULL, &e);
    assert_true(fd >= 0);
    kb_fs_unlock(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failures_keep_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_temps_are_cleaned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_temps_found_once_per_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_tree_not_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmount_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_overlay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
