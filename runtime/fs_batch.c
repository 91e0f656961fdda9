/* kboot.fs group commit: while a batch is open kb_fs_write leaves each new content in its
 * complete temp file (no fsync, no rename) and records it here; the commit makes them all
 * durable at once, renames them over their targets, and makes the renames durable.
 *
 * Why syncfs() twice and not per-file fsync: bench/bench_fs_sync.c on this machine's ext4
 * (34 files of 2 kB in 4 directories, the files of one `kboot init`, median of 15 rounds, other
 * jobs writing to the same disk): per-file fsync + directory fsync 22-29 ms; fsync of each
 * temp + fsync of each directory 14-17 ms; the same after sync_file_range(WRITE) started the
 * writeback of each temp 13-19 ms; syncfs, rename all, syncfs 6-7.5 ms. Each fsync waits for
 * its own journal commit; syncfs waits for one. The price: syncfs also writes back other
 * processes' dirty data on that file system, so it is slower on a disk busy with writes
 * (still the fastest measured here, with other jobs writing). Before Linux 5.8 syncfs did
 * not report writeback errors; there a failing disk would go unnoticed at commit.
 * syncfs is called on one directory fd per distinct file system (st_dev) the batch touched;
 * where it fails with ENOSYS or EINVAL the commit falls back to fsync of each temp, then of
 * each directory whose entries changed.
 *
 * Everything is named by cluster path and opened beneath the root when used (fs_beneath.c):
 * the commit renames each temp inside its target's directory as resolved then, so a symlink
 * planted meanwhile cannot carry a rename outside the root either. */
#define _GNU_SOURCE
#include "fs_batch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A pending write: target cluster path, the temp's cluster path (tcp; tmp is its last
 * component, in the target's directory), file system. */
struct pend {
    char *cp, *tcp;
    const char *tmp;
    dev_t dev;
};
/* A file system the batch changed, with a directory fd on it for syncfs. */
struct fsys {
    dev_t dev;
    int fd;
};
/* A directory whose entries a deferred mkdir changed (for the fsync fallback only). */
struct ddir {
    char *cp;
    dev_t dev;
};

static int g_depth;
static struct pend *g_pend;
static size_t g_npend, g_cappend;
static struct fsys *g_fsys;
static size_t g_nfsys, g_capfsys;
static struct ddir *g_dirs;
static size_t g_ndirs, g_capdirs;
/* Cluster paths of the directories made while the batch is open, oldest first, kept until its
 * outermost end (a flush keeps them): what kb_fs_batch_prune may take back. */
static char **g_made;
static size_t g_nmade, g_capmade;

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? 2 * *cap : 16;
    void *na = realloc(*arr, nc * size);
    if (!na)
        return errno = ENOMEM, -1;
    *arr = na;
    *cap = nc;
    return 0;
}

int fs_batching(void) { return g_depth > 0 && !fs_state()->dry; }

static struct pend *pend_find(const char *cp)
{
    for (size_t i = 0; i < g_npend; i++)
        if (strcmp(g_pend[i].cp, cp) == 0)
            return &g_pend[i];
    return NULL;
}

int fs_open_of(const struct loc *l, int flags)
{
    const struct pend *p = g_npend ? pend_find(l->cp) : NULL;
    return p ? fs_open_beneath(p->tcp, flags | O_NOFOLLOW, 0) : fs_open_beneath(l->cp, flags, 0);
}

size_t fs_pend_count(void) { return g_npend; }
const char *fs_pend_path(size_t i) { return g_pend[i].cp; }

int fs_pend_is_temp(const char *dir_cp, const char *name)
{
    for (size_t i = 0; i < g_npend; i++)
        if (fs_is_child(g_pend[i].cp, dir_cp) && strcmp(g_pend[i].tmp, name) == 0)
            return 1;
    return 0;
}

/* Remember the file system of directory dfd (a dup of dfd is kept for syncfs). */
static int note_fsys(int dfd, dev_t *dev)
{
    struct stat st;
    if (fstat(dfd, &st) != 0)
        return -1;
    *dev = st.st_dev;
    for (size_t i = 0; i < g_nfsys; i++)
        if (g_fsys[i].dev == st.st_dev)
            return 0;
    if (grow((void **)&g_fsys, &g_capfsys, g_nfsys, sizeof *g_fsys))
        return -1;
    int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    g_fsys[g_nfsys].dev = st.st_dev;
    g_fsys[g_nfsys++].fd = fd;
    return 0;
}

int fs_batch_defer_dir(int dfd, const char *cp)
{
    dev_t dev;
    char *copy = strdup(cp);
    if (!copy || note_fsys(dfd, &dev) || grow((void **)&g_dirs, &g_capdirs, g_ndirs, sizeof *g_dirs)) {
        free(copy);
        return -1;
    }
    g_dirs[g_ndirs].cp = copy;
    g_dirs[g_ndirs++].dev = dev;
    return 0;
}

int fs_batch_made_dir(const char *cp)
{
    char *copy = strdup(cp);
    if (!copy || grow((void **)&g_made, &g_capmade, g_nmade, sizeof *g_made)) {
        free(copy);
        return errno = ENOMEM, -1;
    }
    g_made[g_nmade++] = copy;
    return 0;
}

static void forget_made(void)
{
    for (size_t i = 0; i < g_nmade; i++)
        free(g_made[i]);
    g_nmade = 0;
}

static unsigned g_pruned; /* directories kb_fs_batch_prune removed, ever */
unsigned fs_pruned_dirs(void) { return g_pruned; }

size_t kb_fs_batch_prune(void)
{
    size_t n = 0;
    /* newest first: a directory made inside another made one goes before its parent */
    for (size_t i = g_nmade; i-- > 0;) {
        int dfd = fs_open_dir_of(g_made[i]);
        if (dfd >= 0 && unlinkat(dfd, strrchr(g_made[i], '/') + 1, AT_REMOVEDIR) == 0)
            n++;
        if (dfd >= 0)
            close(dfd);
    }
    forget_made();
    g_pruned += n;
    return n;
}

int fs_pend_put(const struct loc *l, int dfd, const char *tmpname)
{
    dev_t dev;
    size_t dirlen = (size_t)(strrchr(l->cp, '/') - l->cp);
    char *tcp = malloc(dirlen + 1 + strlen(tmpname) + 1);
    if (!tcp || note_fsys(dfd, &dev)) {
        free(tcp);
        return -1;
    }
    sprintf(tcp, "%.*s/%s", (int)dirlen, l->cp, tmpname);
    struct pend *p = pend_find(l->cp);
    if (p) { /* a second write of a pending path: the new temp replaces the old one */
        if (strcmp(p->tmp, tmpname) != 0)
            unlinkat(dfd, p->tmp, 0);
        free(p->tcp);
        p->tcp = tcp;
        p->tmp = tcp + dirlen + 1;
        return 0;
    }
    char *cp = strdup(l->cp);
    if (!cp || grow((void **)&g_pend, &g_cappend, g_npend, sizeof *g_pend)) {
        free(cp);
        free(tcp);
        return errno = ENOMEM, -1;
    }
    g_pend[g_npend++] = (struct pend){ cp, tcp, tcp + dirlen + 1, dev };
    return 0;
}

/* Remove pending write p's temp (in its target's directory, beneath the root). */
static void unlink_temp(const struct pend *p)
{
    int dfd = fs_open_dir_of(p->cp);
    if (dfd >= 0) {
        unlinkat(dfd, p->tmp, 0);
        close(dfd);
    }
}

/* Forget every pending write (unlinking temps from index `from` on) and every file system. */
static void forget(size_t from)
{
    for (size_t i = 0; i < g_npend; i++) {
        if (i >= from)
            unlink_temp(&g_pend[i]);
        free(g_pend[i].cp);
        free(g_pend[i].tcp);
    }
    g_npend = 0;
    for (size_t i = 0; i < g_nfsys; i++)
        close(g_fsys[i].fd);
    g_nfsys = 0;
    for (size_t i = 0; i < g_ndirs; i++)
        free(g_dirs[i].cp);
    g_ndirs = 0;
}

static int fsync_path(const char *cp, int flags)
{
    int fd = fs_open_beneath(cp, O_RDONLY | flags, 0);
    if (fd < 0)
        return -1;
    int rc = fsync(fd), err = errno;
    close(fd);
    return errno = err, rc;
}

/* The parent directory of cluster path cp into out. */
static void dir_of(const char *cp, char *out, size_t n)
{
    size_t len = (size_t)(strrchr(cp, '/') - cp);
    snprintf(out, n, "%.*s", (int)(len ? len : 1), cp);
}

/* Fallback for file system f: fsync each pending temp on it (before the renames), or each
 * directory on it whose entries changed (after them: parents of the first nren targets and of
 * directories made in the batch). On failure *what names the path. */
static int fsync_each(const struct fsys *f, int after, size_t nren, const char **what)
{
    char a[KB_FS_PATH_MAX], b[KB_FS_PATH_MAX];
    for (size_t i = 0; i < (after ? nren : g_npend); i++) {
        if (g_pend[i].dev != f->dev)
            continue;
        *what = g_pend[i].cp;
        if (!after) {
            if (fsync_path(g_pend[i].tcp, O_NOFOLLOW))
                return -1;
            continue;
        }
        dir_of(g_pend[i].cp, a, sizeof a);
        int seen = 0; /* one fsync per directory */
        for (size_t j = 0; j < i && !seen; j++) {
            dir_of(g_pend[j].cp, b, sizeof b);
            seen = g_pend[j].dev == f->dev && strcmp(a, b) == 0;
        }
        if (!seen && fsync_path(a, O_DIRECTORY))
            return -1;
    }
    for (size_t i = 0; after && i < g_ndirs; i++) {
        *what = g_dirs[i].cp;
        if (g_dirs[i].dev == f->dev && fsync_path(g_dirs[i].cp, O_DIRECTORY) && errno != ENOENT)
            return -1;
    }
    return 0;
}

/* Make everything on every touched file system durable. */
static int sync_all(int after, size_t nren, kb_err *e)
{
    for (size_t i = 0; i < g_nfsys; i++) {
        const char *what = "a directory made in the batch";
        for (size_t j = g_npend; j-- > 0;)
            if (g_pend[j].dev == g_fsys[i].dev)
                what = g_pend[j].cp;
        int rc = syncfs(g_fsys[i].fd);
        if (rc != 0 && (errno == ENOSYS || errno == EINVAL))
            rc = fsync_each(&g_fsys[i], after, nren, &what);
        if (rc != 0)
            return kb_err_sys(e, errno, "commit", "cannot sync %s of the batch (%s)",
                              after ? "the renames" : "the new contents", what);
    }
    return 0;
}

int kb_fs_batch_flush(kb_err *e)
{
    size_t n = g_npend;
    if (n == 0 && g_nfsys == 0)
        return 0;
    /* 1. every temp complete on disk, else nothing is renamed (targets keep the old content) */
    if (sync_all(0, 0, e)) {
        forget(0);
        return -1;
    }
    /* 2. rename in order; on a failure stop: earlier targets are complete, later temps dropped */
    size_t i = 0;
    int rc = 0;
    for (; i < n; i++) {
        const struct pend *p = &g_pend[i];
        int dfd = fs_open_dir_of(p->cp);
        if (dfd < 0 || renameat(dfd, p->tmp, dfd, strrchr(p->cp, '/') + 1) != 0) {
            int err = errno;
            char th[KB_FS_PATH_MAX], hp[KB_FS_PATH_MAX];
            if (dfd >= 0)
                close(dfd);
            if (kb_fs_host_path(p->tcp, th, sizeof th, NULL) || kb_fs_host_path(p->cp, hp, sizeof hp, NULL))
                th[0] = hp[0] = '\0';
            rc = kb_err_sys(e, err, "commit",
                            "cannot commit the write of %s (rename %s -> %s); %zu earlier write(s) of the batch "
                            "landed, %zu later one(s) dropped",
                            p->cp, th, hp, i, n - i - 1);
            break;
        }
        close(dfd);
    }
    /* 3. the renames and directories made in the batch durable (also after a failure); with
     * nothing renamed the first sync covered the directories */
    kb_err e2;
    if ((i > 0 || rc) && sync_all(1, i, rc ? &e2 : e))
        rc = -1;
    forget(i);
    return rc;
}

void kb_fs_batch_begin(void) { g_depth++; }

int kb_fs_batch_commit(kb_err *e)
{
    if (g_depth == 0) {
        kb_err_set(e, "commit", "no batch is open (kb_fs_batch_begin first)");
        if (e)
            e->code = EINVAL;
        return -1;
    }
    if (--g_depth > 0)
        return 0;
    forget_made();
    return kb_fs_batch_flush(e);
}

int kb_fs_batch_close(kb_err *e)
{
    g_depth = 0;
    forget_made();
    return kb_fs_batch_flush(e);
}

void kb_fs_batch_discard(void)
{
    forget(0);
    forget_made();
    g_depth = 0;
}

void fs_batch_free(void)
{
    kb_fs_batch_discard();
    free(g_pend);
    free(g_fsys);
    free(g_dirs);
    free(g_made);
    g_pend = NULL;
    g_fsys = NULL;
    g_dirs = NULL;
    g_made = NULL;
    g_cappend = g_capfsys = g_capdirs = g_capmade = 0;
}

size_t kb_fs_batch_pending(void) { return g_npend; }
int kb_fs_batch_depth(void) { return g_depth; }
