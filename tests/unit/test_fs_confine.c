/* cmocka tests of kboot.fs confinement (runtime/fs_beneath.c): symlinks planted under the root
 * -- an absolute target, a relative one with more ".." than the root is deep, one in a parent,
 * one through the host's /proc -- never lead a write, read, mkdir, remove, rename (batch commit),
 * chmod, symlink, lock or clean_temps outside the root. They resolve as inside chroot(root):
 * while the root-relative target is missing every operation fails (or finds nothing), once it
 * exists every operation lands there. A tree outside the root, which every link names, is hashed
 * before and after and must not change. Each test runs with openat2 and with the walk
 * (KBOOT_FS_RESOLVE=walk); a child under a seccomp filter that refuses openat2 (ENOSYS, EPERM)
 * checks that the walk is chosen at run time. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static char out[256]; /* the outside tree, a sibling of the root */

static void put(const char *host, const char *s)
{
    FILE *f = fopen(host, "wb");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

/* ---- a hash of a tree: names, types, modes, link targets, contents ------------------ */

static uint64_t g_hash;
static size_t g_base;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
    return h;
}

static int hash_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)flag;
    (void)f;
    uint64_t h = fnv(1469598103934665603ull, path + g_base, strlen(path + g_base) + 1);
    h = fnv(h, &st->st_mode, sizeof st->st_mode);
    char buf[4096];
    if (S_ISLNK(st->st_mode)) {
        ssize_t n = readlink(path, buf, sizeof buf);
        h = fnv(h, buf, n > 0 ? (size_t)n : 0);
    } else if (S_ISREG(st->st_mode)) {
        int fd = open(path, O_RDONLY);
        ssize_t n;
        while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0)
            h = fnv(h, buf, (size_t)n);
        if (fd >= 0)
            close(fd);
    }
    g_hash += h * 0x9e3779b97f4a7c15ull; /* order-independent: directory order may differ */
    return 0;
}

static uint64_t tree_hash(const char *dir)
{
    g_hash = 0;
    g_base = strlen(dir);
    assert_int_equal(nftw(dir, hash_entry, 16, FTW_PHYS), 0);
    return g_hash;
}

/* ---- fixture ------------------------------------------------------------------------- */

static int setup_out(void **state)
{
    if (setup(state))
        return -1;
    snprintf(out, sizeof out, "/tmp/kboot-fs-outside.XXXXXX");
    if (!mkdtemp(out))
        return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/keep", out);
    put(p, "keep");
    chmod(p, 0640);
    snprintf(p, sizeof p, "%s/sub", out);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/secret", out);
    put(p, "secret");
    snprintf(p, sizeof p, "%s/.keep.kboot-tmp-aaaaaa", out); /* what clean_temps would take */
    put(p, "");
    return 0;
}

static int teardown_out(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    if (system(cmd) != 0)
        return -1;
    unsetenv("KBOOT_FS_RESOLVE");
    return teardown(state);
}

/* Use the walk (or not) from now on: the choice is made when the root is set. */
static void use_walk(int on)
{
    kb_err e;
    if (on)
        setenv("KBOOT_FS_RESOLVE", "walk", 1);
    else
        unsetenv("KBOOT_FS_RESOLVE");
    assert_int_equal(kb_fs_set_root(tmp, &e), 0);
}

/* A link target that means `out` (+ rest) on the host: absolute, or relative with more ".."
 * than any link here is deep. */
static const char *target(int relative, const char *rest)
{
    static char buf[4][1024];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, 1024, "%s%s%s", relative ? "../../../../../../../../../../../../../../../../" : "",
             relative ? out + 1 : out, rest);
    return b;
}

/* ---- the operations, through links to a missing and then a present target ----------- */

static void ops_through_links(int relative)
{
    kb_err e;
    char *data;
    size_t len;
    kb_fs_info st;
    char **names;
    size_t n;
    int changed;
    kb_fs_write_opts mk = { .mkdir = 1 };
    uint64_t before = tree_hash(out);

    /* /d -> out (a directory link), /f -> out/keep (a file link), /p -> out (for /p/x: a link
     * in a parent of the path), /m -> /proc/self/root/out/keep (the host's root, on a host
     * resolution) */
    assert_int_equal(symlink(target(relative, ""), H("/d")), 0);
    assert_int_equal(symlink(target(relative, "/keep"), H("/f")), 0);
    assert_int_equal(mkdir(H("/q"), 0755), 0);
    assert_int_equal(symlink(target(relative, ""), H("/q/p")), 0);
    char magic[600];
    snprintf(magic, sizeof magic, "/proc/self/root%s/keep", out);
    assert_int_equal(symlink(magic, H("/m")), 0);

    /* 1. the root-relative target is missing: nothing is found, nothing can be made */
    assert_int_equal(kb_fs_read("/d/keep", &data, &len, &e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_int_equal(kb_fs_read("/f", &data, &len, &e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_int_equal(kb_fs_read("/q/p/sub/secret", &data, &len, &e), -1);
    assert_int_equal(kb_fs_read("/m", &data, &len, &e), -1);
    assert_int_equal(kb_fs_exists("/d/keep"), 0);
    assert_int_equal(kb_fs_exists("/q/p/sub"), 0);
    assert_int_equal(kb_fs_stat("/d/sub", &st, &e), -1);
    assert_int_equal(kb_fs_list("/d", &names, &n, &e), -1);
    assert_int_equal(kb_fs_write("/d/new", "x", 1, 0644, NULL, NULL, &e), -1);
    assert_int_equal(kb_fs_write("/d/keep", "x", 1, 0644, NULL, NULL, &e), -1);
    assert_int_equal(kb_fs_write("/q/p/new/x", "x", 1, 0644, &mk, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "cannot create directory /q/p ("));
    assert_non_null(strstr(e.msg, "it is a symlink to "));
    assert_non_null(strstr(e.msg, "beneath the root"));
    assert_int_equal(kb_fs_mkdir("/d/sub2", 0755, &e), -1);
    assert_int_equal(kb_fs_mkdir("/d", 0755, &e), -1);
    assert_int_equal(kb_fs_remove("/d/keep", 0, &e), 0); /* missing below the root: nothing to do */
    assert_int_equal(kb_fs_remove("/q/p/sub", 1, &e), 0);
    assert_int_equal(kb_fs_chmod("/f", 0777, &e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_int_equal(kb_fs_chmod("/d/keep", 0777, &e), -1);
    assert_int_equal(kb_fs_symlink("x", "/d/l", NULL, &e), -1);
    assert_int_equal(kb_fs_lock("/d/.lock", NULL, &e), -1);
    assert_int_equal(kb_fs_clean_temps("/d", &e), -1);
    kb_fs_batch_begin();
    assert_int_equal(kb_fs_write("/d/b", "x", 1, 0644, NULL, NULL, &e), -1);
    assert_int_equal(kb_fs_batch_commit(&e), 0);
    assert_int_equal(tree_hash(out), before);
    /* the links themselves are inside the root: read, and replaced by a write */
    char *t;
    assert_int_equal(kb_fs_readlink("/d", &t, &e), 0);
    assert_string_equal(t, target(relative, ""));
    free(t);
    assert_int_equal(kb_fs_write("/f", "new", 3, 0644, NULL, &changed, &e), 0);
    assert_int_equal(kb_fs_stat("/f", &st, &e), 0);
    assert_int_equal(st.type, KB_FS_FILE);
    assert_int_equal(symlink(target(relative, "/keep"), H("/g")), 0);
    assert_int_equal(tree_hash(out), before);

    /* 2. the root-relative target exists: everything happens there */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s%s/sub' && echo -n inside > '%s%s/keep' && touch '%s%s/.keep.kboot-tmp-bbbbbb'",
             tmp, out, tmp, out, tmp, out);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(kb_fs_read("/g", &data, &len, &e), 0);
    assert_string_equal(data, "inside");
    free(data);
    assert_int_equal(kb_fs_write("/d/new", "x", 1, 0644, NULL, NULL, &e), 0);
    assert_string_equal(slurp(H(target(0, "/new"))), "x");
    assert_int_equal(kb_fs_write("/q/p/made/x", "y", 1, 0600, &mk, NULL, &e), 0);
    assert_string_equal(slurp(H(target(0, "/made/x"))), "y");
    assert_int_equal(kb_fs_list("/d", &names, &n, &e), 0);
    assert_int_equal(n, 5); /* keep, made, new, sub, the leftover temp */
    kb_fs_free_list(names, n);
    assert_int_equal(kb_fs_mkdir("/d/sub2/deeper", 0700, &e), 0);
    assert_int_equal(kb_fs_stat(target(0, "/sub2/deeper"), &st, &e), 0);
    kb_fs_batch_begin();
    assert_int_equal(kb_fs_write("/d/b1", "1", 1, 0644, NULL, NULL, &e), 0);
    assert_int_equal(kb_fs_write("/q/p/sub/b2", "2", 1, 0644, NULL, NULL, &e), 0);
    assert_int_equal(kb_fs_read("/d/b1", &data, &len, &e), 0); /* a pending write, read back */
    assert_string_equal(data, "1");
    free(data);
    assert_int_equal(kb_fs_batch_commit(&e), 0);
    assert_string_equal(slurp(H(target(0, "/b1"))), "1");
    assert_string_equal(slurp(H(target(0, "/sub/b2"))), "2");
    assert_int_equal(kb_fs_chmod("/g", 0600, &e), 0);
    assert_int_equal(kb_fs_stat(target(0, "/keep"), &st, &e), 0);
    assert_int_equal(st.mode, 0600);
    assert_int_equal(kb_fs_symlink("x", "/d/l", &changed, &e), 0);
    assert_int_equal(kb_fs_readlink(target(0, "/l"), &t, &e), 0);
    free(t);
    int fd = kb_fs_lock("/d/.lock", NULL, &e);
    assert_true(fd >= 0);
    kb_fs_unlock(fd);
    assert_int_equal(kb_fs_clean_temps("/d", &e), 1);
    assert_int_equal(kb_fs_remove("/d/new", 1, &e), 0);
    assert_int_equal(kb_fs_remove("/q/p/sub", 1, &e), 0);
    assert_int_equal(kb_fs_exists(target(0, "/sub")), 0);
    assert_int_equal(kb_fs_remove("/d/keep", 0, &e), 0);
    assert_int_equal(kb_fs_exists(target(0, "/keep")), 0);
    assert_int_equal(tree_hash(out), before);
}

static void test_absolute_links(void **state)
{
    (void)state;
    ops_through_links(0);
}

static void test_relative_links(void **state)
{
    (void)state;
    ops_through_links(1);
}

static void test_absolute_links_walk(void **state)
{
    (void)state;
    use_walk(1);
    assert_string_equal(kb_fs_resolver(), "walk");
    ops_through_links(0);
}

static void test_relative_links_walk(void **state)
{
    (void)state;
    use_walk(1);
    ops_through_links(1);
}

/* Links that stay inside: ".." stops at the root, chains and loops as the kernel has them. */
static void dotdot_and_chains(void)
{
    kb_err e;
    char *data;
    size_t len;
    kb_fs_write_opts mk = { .mkdir = 1 };
    assert_int_equal(kb_fs_write("/etc/x", "x", 1, 0644, &mk, NULL, &e), 0);
    assert_int_equal(symlink("../../../..", H("/up")), 0);
    assert_int_equal(kb_fs_read("/up/up/etc/x", &data, &len, &e), 0);
    assert_string_equal(data, "x");
    free(data);
    assert_int_equal(mkdir(H("/a"), 0755), 0);
    assert_int_equal(symlink("/etc", H("/a/e")), 0);      /* absolute: from the root */
    assert_int_equal(symlink("e/../etc/x", H("/a/c")), 0); /* e/.. is the root (/etc/..) */
    assert_int_equal(kb_fs_read("/a/c", &data, &len, &e), 0);
    assert_string_equal(data, "x");
    free(data);
    assert_int_equal(symlink("loop2", H("/loop1")), 0);
    assert_int_equal(symlink("loop1", H("/loop2")), 0);
    assert_int_equal(kb_fs_read("/loop1", &data, &len, &e), -1);
    assert_int_equal(e.code, ELOOP);
    assert_int_equal(symlink("x/y", H("/etc/xy")), 0); /* x is a file */
    assert_int_equal(kb_fs_read("/etc/xy", &data, &len, &e), -1);
    assert_int_equal(e.code, ENOTDIR);
    assert_int_equal(kb_fs_read("/", &data, &len, &e), -1);
    assert_int_equal(e.code, EISDIR);
}

static void test_dotdot_and_chains(void **state)
{
    (void)state;
    dotdot_and_chains();
}

static void test_dotdot_and_chains_walk(void **state)
{
    (void)state;
    use_walk(1);
    dotdot_and_chains();
}

/* A dry run reads the disk through the same resolution; its own links resolve inside too. */
static void test_dry_run_confined(void **state)
{
    (void)state;
    kb_err e;
    char *data;
    size_t len;
    assert_int_equal(symlink(target(0, "/keep"), H("/f")), 0);
    kb_fs_set_dry_run(1);
    assert_int_equal(kb_fs_read("/f", &data, &len, &e), -1);
    assert_int_equal(kb_fs_symlink("../../../../../../../../../etc/x", "/l", NULL, &e), 0);
    assert_int_equal(kb_fs_write("/etc/x", "x", 1, 0644, &(kb_fs_write_opts){ .mkdir = 1 }, NULL, &e), 0);
    assert_int_equal(kb_fs_read("/l", &data, &len, &e), 0);
    assert_string_equal(data, "x");
    free(data);
    kb_fs_set_dry_run(0);
}

/* ---- the walk is chosen at run time where openat2 is refused ------------------------ */

static int refuse_openat2(int err)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void test_openat2_refused(void **state)
{
    (void)state;
    static const int errs[] = { ENOSYS, EPERM };
    assert_int_equal(symlink(target(0, "/keep"), H("/f")), 0);
    uint64_t before = tree_hash(out);
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) { /* exit codes: 0 ok, 2 no seccomp here, else what failed */
            kb_err e;
            char *data;
            size_t len;
            if (refuse_openat2(errs[i]) != 0)
                _exit(2);
            if (kb_fs_set_root(tmp, &e) != 0)
                _exit(3);
            if (strcmp(kb_fs_resolver(), "walk") != 0)
                _exit(4);
            if (kb_fs_read("/f", &data, &len, &e) != -1 || e.code != ENOENT)
                _exit(5);
            if (kb_fs_write("/f", "new", 3, 0644, NULL, NULL, &e) != 0)
                _exit(6);
            _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 2) {
            print_message("seccomp filters are not available here: skipped\n");
            continue;
        }
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(tree_hash(out), before);
        assert_int_equal(unlink(H("/f")), 0);
        assert_int_equal(symlink(target(0, "/keep"), H("/f")), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_absolute_links, setup_out, teardown_out),
        cmocka_unit_test_setup_teardown(test_relative_links, setup_out, teardown_out),
        cmocka_unit_test_setup_teardown(test_absolute_links_walk, setup_out, teardown_out),
        cmocka_unit_test_setup_teardown(test_relative_links_walk, setup_out, teardown_out),
        cmocka_unit_test_setup_teardown(test_dotdot_and_chains, setup_out, teardown_out),
        cmocka_unit_test_setup_teardown(test_dotdot_and_chains_walk, setup_out, teardown_out),
        cmocka_unit_test_setup_teardown(test_dry_run_confined, setup_out, teardown_out),
        cmocka_unit_test_setup_teardown(test_openat2_refused, setup_out, teardown_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
