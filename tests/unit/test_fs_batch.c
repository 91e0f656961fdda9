/* cmocka tests of kboot.fs batches (runtime/fs_batch.c): pending writes seen by kboot's reads and
 * absent from the disk's targets until the commit; nesting; rewrites; mutators committing first;
 * dry run; a rename failing at commit; a child that exits or is killed mid-batch; the fsync
 * fallback where syncfs is missing (seccomp makes it ENOSYS in a child). Disk state is checked
 * with plain libc on host paths, never through kb_fs. */
#include <dirent.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kboot/fs.h"
#include "fs_fixture.h"

static void put(const char *host, const char *s, mode_t mode)
{
    FILE *f = fopen(host, "wb");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
    assert_int_equal(chmod(host, mode), 0);
}

static int absent(const char *host)
{
    struct stat st;
    return lstat(host, &st) != 0 && errno == ENOENT;
}

static unsigned mode_of(const char *host)
{
    struct stat st;
    assert_int_equal(lstat(host, &st), 0);
    return st.st_mode & 07777;
}

/* Temp files in a host directory; the name of the last one into name (may be NULL). */
static int temps(const char *host, char *name, size_t n)
{
    DIR *d = opendir(host);
    int count = 0;
    struct dirent *de;
    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (strstr(de->d_name, KB_FS_TEMP_TAG)) {
            count++;
            if (name)
                snprintf(name, n, "%s/%s", host, de->d_name);
        }
    closedir(d);
    return count;
}

static void w(const char *path, const char *data, unsigned mode, int *changed)
{
    kb_err e;
    kb_fs_write_opts o = { .mkdir = 1, .dir_mode = 0750 };
    int rc = kb_fs_write(path, data, strlen(data), mode, &o, changed, &e);
    if (rc)
        fail_msg("write %s: %s", path, e.msg);
}

static void test_pending_visible_not_on_disk(void **state)
{
    kb_err e;
    int changed = -1;
    mkdir(H("/etc"), 0755);
    put(H("/etc/old"), "old content", 0600);
    kb_fs_batch_begin();
    w("/etc/new", "new file", 0640, &changed);
    assert_int_equal(changed, 1);
    w("/etc/old", "replaced", 0644, &changed);
    w("/etc/sub/dir/deep", "deep", 0600, &changed);
    assert_int_equal(kb_fs_batch_pending(), 3);
    /* the disk: targets untouched, complete temps beside them, new directories already there */
    assert_true(absent(H("/etc/new")));
    assert_string_equal(slurp(H("/etc/old")), "old content");
    assert_int_equal(mode_of(H("/etc/old")), 0600);
    assert_true(absent(H("/etc/sub/dir/deep")));
    assert_int_equal(mode_of(H("/etc/sub/dir")), 0750);
    assert_int_equal(temps(H("/etc"), NULL, 0), 2);
    /* kboot's view: as if they had landed */
    char *data;
    size_t len;
    assert_int_equal(kb_fs_read("/etc/new", &data, &len, &e), 0);
    assert_string_equal(data, "new file");
    free(data);
    assert_int_equal(kb_fs_read("/etc/old", &data, &len, &e), 0);
    assert_string_equal(data, "replaced");
    free(data);
    kb_fs_info st;
    assert_int_equal(kb_fs_stat("/etc/old", &st, &e), 0);
    assert_int_equal(st.type, KB_FS_FILE);
    assert_int_equal(st.mode, 0644);
    assert_int_equal(st.size, 8);
    assert_int_equal(kb_fs_stat("/etc/new", &st, &e), 0);
    assert_int_equal(st.mode, 0640);
    assert_true(kb_fs_exists("/etc/new"));
    assert_true(kb_fs_exists("/etc/sub/dir/deep"));
    char **names;
    size_t n;
    assert_int_equal(kb_fs_list("/etc", &names, &n, &e), 0);
    assert_int_equal(n, 3); /* new, old, sub: no temp names */
    assert_string_equal(names[0], "new");
    assert_string_equal(names[1], "old");
    assert_string_equal(names[2], "sub");
    kb_fs_free_list(names, n);
    assert_int_equal(kb_fs_list("/etc/sub/dir", &names, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "deep");
    kb_fs_free_list(names, n);
    assert_int_equal(kb_fs_list("/etc/new", &names, &n, &e), -1);
    assert_int_equal(e.code, ENOTDIR);
    char *target;
    assert_int_equal(kb_fs_readlink("/etc/new", &target, &e), -1);
    assert_int_equal(e.code, EINVAL);
    /* the same content again is "unchanged", compared with the pending one */
    w("/etc/old", "replaced", 0644, &changed);
    assert_int_equal(changed, 0);
    /* commit: contents and modes exact, no temp left */
    assert_int_equal(kb_fs_batch_commit(&e), 0);
    assert_int_equal(kb_fs_batch_pending(), 0);
    assert_int_equal(kb_fs_batch_depth(), 0);
    assert_string_equal(slurp(H("/etc/new")), "new file");
    assert_int_equal(mode_of(H("/etc/new")), 0640);
    assert_string_equal(slurp(H("/etc/old")), "replaced");
    assert_int_equal(mode_of(H("/etc/old")), 0644);
    assert_string_equal(slurp(H("/etc/sub/dir/deep")), "deep");
    assert_int_equal(temps(H("/etc"), NULL, 0), 0);
    assert_int_equal(temps(H("/etc/sub/dir"), NULL, 0), 0);
    /* outside a batch nothing is pending: a write lands at once */
    w("/etc/new", "again", 0640, &changed);
    assert_string_equal(slurp(H("/etc/new")), "again");
}

static void test_nested_and_misuse(void **state)
{
    kb_err e;
    assert_int_equal(kb_fs_batch_commit(&e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_string_equal(e.msg, "no batch is open (kb_fs_batch_begin first)");
    kb_fs_batch_begin();
    kb_fs_batch_begin();
    w("/a", "a", 0600, NULL);
    assert_int_equal(kb_fs_batch_depth(), 2);
    assert_int_equal(kb_fs_batch_commit(&e), 0); /* inner: nothing lands */
    assert_true(absent(H("/a")));
    assert_int_equal(kb_fs_batch_pending(), 1);
    w("/b", "b", 0600, NULL);
    assert_int_equal(kb_fs_batch_commit(&e), 0); /* outer */
    assert_string_equal(slurp(H("/a")), "a");
    assert_string_equal(slurp(H("/b")), "b");
    /* flush lands everything and keeps the batch open */
    kb_fs_batch_begin();
    kb_fs_batch_begin();
    w("/c", "c", 0600, NULL);
    assert_int_equal(kb_fs_batch_flush(&e), 0);
    assert_string_equal(slurp(H("/c")), "c");
    assert_int_equal(kb_fs_batch_depth(), 2);
    w("/d", "d", 0600, NULL);
    assert_true(absent(H("/d")));
    /* close: every level, committed */
    assert_int_equal(kb_fs_batch_close(&e), 0);
    assert_int_equal(kb_fs_batch_depth(), 0);
    assert_string_equal(slurp(H("/d")), "d");
}

static void test_second_write_replaces_pending_temp(void **state)
{
    kb_err e;
    int changed;
    put(H("/f"), "disk", 0600);
    kb_fs_batch_begin();
    w("/f", "one", 0600, &changed);
    char first[KB_FS_PATH_MAX], second[KB_FS_PATH_MAX];
    assert_int_equal(temps(tmp, first, sizeof first), 1);
    w("/f", "two", 0640, &changed);
    assert_int_equal(changed, 1);
    assert_int_equal(temps(tmp, second, sizeof second), 1); /* the old temp is gone */
    assert_string_not_equal(first, second);
    assert_true(absent(first));
    assert_int_equal(kb_fs_batch_pending(), 1);
    /* back to the disk's content: still a change against the pending one */
    w("/f", "disk", 0600, &changed);
    assert_int_equal(changed, 1);
    assert_string_equal(slurp(H("/f")), "disk");
    w("/f", "three", 0600, &changed);
    assert_int_equal(kb_fs_batch_commit(&e), 0);
    assert_string_equal(slurp(H("/f")), "three");
    assert_int_equal(mode_of(H("/f")), 0600);
    assert_int_equal(temps(tmp, NULL, 0), 0);
}

static void test_mutators_commit_first(void **state)
{
    kb_err e;
    int changed;
    put(H("/other"), "x", 0600);
    kb_fs_batch_begin();
    /* mkdir does not commit: the directory is there at once, the pending write stays */
    w("/p1", "1", 0600, NULL);
    assert_int_equal(kb_fs_mkdir("/newdir/a", 0700, &e), 0);
    assert_int_equal(mode_of(H("/newdir/a")), 0700);
    assert_int_equal(kb_fs_batch_pending(), 1);
    /* chmod commits, then works unbatched; the batch stays open */
    assert_int_equal(kb_fs_chmod("/other", 0644, &e), 0);
    assert_int_equal(kb_fs_batch_pending(), 0);
    assert_string_equal(slurp(H("/p1")), "1");
    assert_int_equal(mode_of(H("/other")), 0644);
    assert_int_equal(kb_fs_batch_depth(), 1);
    /* remove of a pending path: it lands, then goes */
    w("/p2", "2", 0600, NULL);
    assert_int_equal(kb_fs_remove("/p2", 0, &e), 0);
    assert_true(absent(H("/p2")));
    assert_int_equal(temps(tmp, NULL, 0), 0);
    /* remove of a missing path commits nothing */
    w("/p3", "3", 0600, NULL);
    assert_int_equal(kb_fs_remove("/missing", 0, &e), 0);
    assert_int_equal(kb_fs_batch_pending(), 1);
    /* symlink commits */
    assert_int_equal(kb_fs_symlink("p3", "/link", &changed, &e), 0);
    assert_int_equal(kb_fs_batch_pending(), 0);
    assert_string_equal(slurp(H("/link")), "3");
    /* clean_temps: pending temps are no leftovers; they land, nothing is counted */
    w("/p4", "4", 0600, NULL);
    assert_int_equal(kb_fs_clean_temps("/", &e), 0);
    assert_string_equal(slurp(H("/p4")), "4");
    /* set_root commits under the old root, the batch stays open */
    w("/p5", "5", 0600, NULL);
    assert_int_equal(kb_fs_set_root(H("/newdir"), &e), 0);
    assert_string_equal(slurp(H("/p5")), "5");
    assert_int_equal(kb_fs_batch_depth(), 1);
    assert_int_equal(kb_fs_batch_commit(&e), 0);
}

static void test_reset_discards(void **state)
{
    put(H("/keep"), "old", 0600);
    kb_fs_batch_begin();
    w("/keep", "new", 0600, NULL);
    w("/gone", "new", 0600, NULL);
    kb_fs_reset();
    assert_int_equal(kb_fs_batch_depth(), 0);
    assert_int_equal(kb_fs_batch_pending(), 0);
    assert_string_equal(slurp(H("/keep")), "old");
    assert_true(absent(H("/gone")));
    assert_int_equal(temps(tmp, NULL, 0), 0);
    kb_err e;
    assert_int_equal(kb_fs_set_root(tmp, &e), 0);
    kb_fs_batch_begin();
    w("/gone", "new", 0600, NULL);
    kb_fs_batch_discard();
    assert_true(absent(H("/gone")));
    assert_int_equal(temps(tmp, NULL, 0), 0);
}

/* A directory the prune took back and that is made again (its inode may be reused) is read again
 * for leftover temps: the write's own scan of the old one does not stand for it. */
static void test_pruned_directory_scanned_again(void **state)
{
    kb_err e;
    kb_fs_batch_begin();
    w("/d/f", "new", 0600, NULL); /* makes /d: scanned, no leftovers */
    assert_int_equal(kb_fs_remove("/d/f", 0, &e), 0); /* lands f first, then removes it */
    assert_int_equal(kb_fs_batch_prune(), 1);
    kb_fs_batch_discard();
    assert_true(absent(H("/d")));
    assert_int_equal(mkdir(H("/d"), 0755), 0);
    put(H("/d/.f" KB_FS_TEMP_TAG "aaaaaa"), "partial", 0600);
    w("/d/f", "full", 0600, NULL);
    assert_int_equal(temps(H("/d"), NULL, 0), 0);
    assert_string_equal(slurp(H("/d/f")), "full");
}

static void test_dry_run_unaffected(void **state)
{
    kb_err e;
    int changed;
    kb_fs_set_dry_run(1);
    kb_fs_batch_begin();
    w("/d/x", "dry", 0600, &changed);
    assert_int_equal(changed, 1);
    assert_int_equal(kb_fs_batch_pending(), 0);
    assert_true(absent(H("/d")));
    char *data;
    size_t len;
    assert_int_equal(kb_fs_read("/d/x", &data, &len, &e), 0);
    assert_string_equal(data, "dry");
    free(data);
    assert_int_equal(kb_fs_batch_commit(&e), 0);
    assert_true(absent(H("/d")));
    size_t n;
    const kb_fs_op *ops = kb_fs_recorded(&n);
    assert_int_equal(n, 2);
    assert_int_equal(ops[0].op, KB_FS_OP_MKDIR);
    assert_int_equal(ops[1].op, KB_FS_OP_WRITE);
    assert_string_equal(ops[1].path, "/d/x");
    kb_fs_set_dry_run(0);
    /* a batch opened for real, then a dry run: pending writes read as disk content */
    kb_fs_batch_begin();
    w("/r", "real", 0600, NULL);
    kb_fs_set_dry_run(1);
    assert_int_equal(kb_fs_read("/r", &data, &len, &e), 0);
    assert_string_equal(data, "real");
    free(data);
    w("/r", "overlay", 0600, NULL);
    assert_true(absent(H("/r")));
    kb_fs_set_dry_run(0);
    assert_int_equal(kb_fs_batch_commit(&e), 0);
    assert_string_equal(slurp(H("/r")), "real");
}

static void test_rename_failure_reports_path(void **state)
{
    kb_err e;
    mkdir(H("/d"), 0755);
    put(H("/d/c"), "old c", 0600);
    kb_fs_batch_begin();
    w("/d/a", "new a", 0600, NULL);
    w("/d/b", "new b", 0600, NULL);
    w("/d/c", "new c", 0600, NULL);
    /* remove b's temp behind the batch's back */
    DIR *d = opendir(H("/d"));
    struct dirent *de;
    char victim[KB_FS_PATH_MAX] = "";
    while ((de = readdir(d)))
        if (strncmp(de->d_name, ".b" KB_FS_TEMP_TAG, 2 + strlen(KB_FS_TEMP_TAG)) == 0)
            snprintf(victim, sizeof victim, "%s/%s", H("/d"), de->d_name);
    closedir(d);
    assert_int_equal(unlink(victim), 0);
    assert_int_equal(kb_fs_batch_commit(&e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_string_equal(e.op, "commit");
    assert_non_null(strstr(e.msg, "cannot commit the write of /d/b (rename "));
    assert_non_null(strstr(e.msg, "1 earlier write(s) of the batch landed, 1 later one(s) dropped"));
    assert_string_equal(slurp(H("/d/a")), "new a"); /* before the failure: landed */
    assert_true(absent(H("/d/b")));
    assert_string_equal(slurp(H("/d/c")), "old c"); /* after it: old content, temp removed */
    assert_int_equal(temps(H("/d"), NULL, 0), 0);
    assert_int_equal(kb_fs_batch_depth(), 0);
    assert_int_equal(kb_fs_batch_pending(), 0);
}

/* Run fn in a child; its exit status (or 128 + signal). */
static int in_child(void (*fn)(int), int wfd)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn(wfd);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void child_exits_mid_batch(int fd)
{
    kb_fs_batch_begin();
    w("/k/a", "new a", 0600, NULL);
    w("/k/b", "new b", 0600, NULL);
    w("/k/c", "new c", 0600, NULL);
    _exit(kb_fs_batch_pending() == 3 ? 0 : 1); /* no commit, no atexit */
}

static void child_killed_mid_batch(int fd)
{
    kb_fs_batch_begin();
    w("/k/a", "killed a", 0600, NULL);
    w("/k/b", "killed b", 0600, NULL);
    w("/k/c", "killed c", 0600, NULL);
    if (write(fd, "w", 1) != 1)
        _exit(1);
    for (;;)
        pause();
}

static void check_old_then_clean(void)
{
    assert_string_equal(slurp(H("/k/a")), "old a");
    assert_string_equal(slurp(H("/k/b")), "old b");
    assert_true(absent(H("/k/c")));
    assert_int_equal(temps(H("/k"), NULL, 0), 3);
    /* a later write of the same path removes its leftover temp: unbatched ... */
    w("/k/a", "later a", 0600, NULL);
    assert_int_equal(temps(H("/k"), NULL, 0), 2);
    /* ... and batched */
    kb_err e;
    kb_fs_batch_begin();
    w("/k/b", "later b", 0600, NULL);
    w("/k/c", "later c", 0600, NULL);
    assert_int_equal(temps(H("/k"), NULL, 0), 2); /* the two pending ones */
    assert_int_equal(kb_fs_batch_commit(&e), 0);
    assert_int_equal(temps(H("/k"), NULL, 0), 0);
    assert_string_equal(slurp(H("/k/b")), "later b");
    assert_string_equal(slurp(H("/k/c")), "later c");
}

static void test_child_exit_without_commit(void **state)
{
    mkdir(H("/k"), 0755);
    put(H("/k/a"), "old a", 0600);
    put(H("/k/b"), "old b", 0600);
    assert_int_equal(in_child(child_exits_mid_batch, -1), 0);
    check_old_then_clean();
}

static void test_child_sigkill_mid_batch(void **state)
{
    mkdir(H("/k"), 0755);
    put(H("/k/a"), "old a", 0600);
    put(H("/k/b"), "old b", 0600);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_killed_mid_batch(p[1]);
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1); /* all three written, pending */
    close(p[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    check_old_then_clean();
}

/* syncfs fails with ENOSYS (a seccomp filter, as on a kernel without it): fsync per file. */
static void child_without_syncfs(int fd)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_syncfs, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
        _exit(77);
    if (syscall(__NR_syncfs, 0) != -1 || errno != ENOSYS)
        _exit(78);
    kb_err e;
    kb_fs_batch_begin();
    w("/s/a", "a", 0600, NULL);
    w("/s/t/b", "b", 0640, NULL);
    if (kb_fs_batch_commit(&e) != 0)
        _exit(2);
    /* the fallback also reports failures: a temp removed before the commit */
    kb_fs_batch_begin();
    w("/s/c", "c", 0600, NULL);
    char victim[KB_FS_PATH_MAX];
    if (temps(H("/s"), victim, sizeof victim) != 1 || unlink(victim) != 0)
        _exit(3);
    if (kb_fs_batch_commit(&e) == 0 || e.code != ENOENT || !strstr(e.msg, "cannot sync the new contents"))
        _exit(4);
    _exit(0);
}

static void test_fsync_fallback_without_syncfs(void **state)
{
    int rc = in_child(child_without_syncfs, -1);
    if (rc == 77)
        skip(); /* no seccomp here */
    assert_int_equal(rc, 0);
    assert_string_equal(slurp(H("/s/a")), "a");
    assert_string_equal(slurp(H("/s/t/b")), "b");
    assert_int_equal(mode_of(H("/s/t/b")), 0640);
    assert_true(absent(H("/s/c")));
    assert_int_equal(temps(H("/s"), NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pending_visible_not_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_and_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_write_replaces_pending_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutators_commit_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_discards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pruned_directory_scanned_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_unaffected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_failure_reports_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_child_exit_without_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_child_sigkill_mid_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_fallback_without_syncfs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
