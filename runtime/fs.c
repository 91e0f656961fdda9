/* kboot.fs operations that change files: atomic writes, mkdir, safe recursive remove, chmod,
 * symlinks, locks, the root. Reads are in fs_read.c, shared helpers in fs_ops.c, and the layers
 * below in fs_view.c, fs_overlay.c, fs_batch.c, fs_path.c (see fs_path.h). The contract is
 * include/kboot/fs.h. */
#define _GNU_SOURCE /* O_PATH */
#include "fs_ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

void kb_fs_reset(void)
{
    fs_batch_free(); /* discards: pending temps removed, targets keep their old content */
    fs_root_set("/", -1);
    fs_overlay_free();
    fs_stale_forget();
}

int kb_fs_set_root(const char *dir, kb_err *e)
{
    char real[PATH_MAX];
    int fd;
    if (fs_root_check(dir, real, &fd, e))
        return -1;
    if (kb_fs_batch_flush(e)) { /* pending writes land under the root they were made in */
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fs_root_set(real, fd);
    fs_ov_clear();
    fs_stale_forget();
    return 0;
}

int kb_fs_mkdir(const char *path, unsigned mode, kb_err *e)
{
    struct loc l;
    int created;
    if (fs_resolve(path, &l, e) || fs_mkdir_p(&l, mode & 07777, &created, e))
        return -1;
    if (fs_state()->dry && created && fs_record(KB_FS_OP_MKDIR, l.cp, mode & 07777, NULL, 0, NULL, 0))
        return fs_nomem(e, "mkdir");
    return 0;
}

int kb_fs_write(const char *path, const void *data, size_t len, unsigned mode, const kb_fs_write_opts *o,
                int *changed, kb_err *e)
{
    struct loc l;
    struct view v;
    int dfd, fd = -1, err;
    char tmp[NAME_MAX + 64];
    int dummy;
    if (!changed)
        changed = &dummy;
    *changed = 0;
    if (!data)
        data = "";
    mode &= 07777;
    if (fs_resolve(path, &l, e))
        return -1;
    if (fs_view_get(&l, &v))
        return fs_fail(e, errno, "write", "write", &l);
    if (v.type == KB_FS_DIR)
        return fs_fail(e, EISDIR, "write", "write", &l);
    if (v.type == KB_FS_FILE && v.mode == mode) {
        int same = v.ov ? v.ov->len == len && memcmp(v.ov->data, data, len) == 0
                        : (size_t)v.st.st_size == len && fs_same_content(&l, data, len);
        if (same)
            return 0;
    }
    if (fs_open_parent(&l, o, "write", "write", &dfd, e))
        return -1;
    if (fs_state()->dry) {
        if (!fs_ov_put(l.cp, KB_FS_FILE, 0, mode, data, len) ||
            fs_record(KB_FS_OP_WRITE, l.cp, mode, data, len, NULL, 0))
            return fs_nomem(e, "write");
        *changed = 1;
        return 0;
    }
    /* In a batch: the temp only, complete; the commit syncs and renames (fs_batch.c). */
    int batch = fs_batching();
    if (!batch)
        fs_clean_stale_temps(dfd, fs_basename(&l), NULL);
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        fs_temp_name(tmp, sizeof tmp, fs_basename(&l));
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST) {
            err = errno;
            close(dfd);
            return fs_fail(e, err, "write", "write", &l);
        }
    }
    if (fd < 0) {
        close(dfd);
        return fs_fail(e, EEXIST, "write", "create a temp file for", &l);
    }
    if (fchmod(fd, mode) != 0 || fs_write_all(fd, data, len) != 0 || (!batch && fsync(fd) != 0))
        goto undo;
    err = close(fd);
    fd = -1;
    if (err == 0 && batch) {
        if (fs_pend_put(&l, dfd, tmp) != 0)
            goto undo;
        /* only now: a pending temp of l this write replaces stays until the new one is complete */
        fs_clean_stale_temps(dfd, fs_basename(&l), tmp);
        close(dfd);
        *changed = 1;
        return 0;
    }
    if (err != 0 || renameat(dfd, tmp, dfd, fs_basename(&l)) != 0)
        goto undo;
    /* The rename is only durable once the directory is synced. */
    if (fsync(dfd) != 0) {
        err = errno;
        close(dfd);
        return fs_fail(e, err, "write", "sync the directory of", &l);
    }
    close(dfd);
    *changed = 1;
    return 0;
undo:
    err = errno;
    if (fd >= 0)
        close(fd);
    unlinkat(dfd, tmp, 0);
    close(dfd);
    return fs_fail(e, err, "write", "write", &l);
}

/* Remove name in dfd, recursively, never following links, staying on device dev.
 * On failure rel holds the path (relative to the top) that failed and errno why. */
static int rm_at(int dfd, const char *name, dev_t dev, char *rel, size_t cap)
{
    size_t n0 = strlen(rel);
    snprintf(rel + n0, cap - n0, "%s%s", n0 ? "/" : "", name);
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? (rel[n0] = '\0', 0) : -1;
    if (S_ISDIR(st.st_mode)) {
        if (st.st_dev != dev)
            return errno = EXDEV, -1;
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return -1;
        DIR *d = fdopendir(fd);
        if (!d) {
            int s = errno;
            close(fd);
            return errno = s, -1;
        }
        struct dirent *de;
        int rc = 0;
        while ((errno = 0, de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if ((rc = rm_at(fd, de->d_name, dev, rel, cap)) != 0)
                break;
        }
        int s = errno;
        closedir(d);
        if (rc || s)
            return errno = s, -1;
    }
    if (unlinkat(dfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT)
        return -1;
    rel[n0] = '\0';
    return 0;
}

static int view_has_children(const struct loc *l)
{
    char **names;
    size_t n;
    if (kb_fs_list(l->cp, &names, &n, NULL))
        return 0;
    kb_fs_free_list(names, n);
    return n > 0;
}

int kb_fs_remove(const char *path, int recursive, kb_err *e)
{
    struct loc l;
    struct view v;
    if (fs_resolve(path, &l, e))
        return -1;
    if (strcmp(l.cp, "/") == 0)
        return kb_err_sys(e, EINVAL, "remove", "refusing to remove the root %s", kb_fs_root());
    if (fs_view_get(&l, &v))
        return fs_fail(e, errno, "remove", "remove", &l);
    if (v.type == KB_FS_NONE)
        return 0;
    if (fs_state()->dry) {
        if (v.type == KB_FS_DIR && !recursive && view_has_children(&l))
            return fs_fail(e, ENOTEMPTY, "remove", "remove", &l);
        if (!fs_ov_put(l.cp, KB_FS_NONE, 0, 0, NULL, 0) || fs_record(KB_FS_OP_REMOVE, l.cp, 0, NULL, 0, NULL, recursive))
            return fs_nomem(e, "remove");
        return 0;
    }
    if (kb_fs_batch_flush(e)) /* a pending write there (or below) lands first */
        return -1;
    /* the last component in its directory, beneath the root: a link is removed, not followed */
    int dfd = fs_open_dir_of(l.cp), err;
    if (dfd < 0)
        return fs_fail(e, errno, "remove", "remove", &l);
    if (v.type != KB_FS_DIR || !recursive) {
        int rc = unlinkat(dfd, fs_basename(&l), v.type == KB_FS_DIR ? AT_REMOVEDIR : 0);
        err = errno;
        close(dfd);
        if (v.type == KB_FS_DIR)
            fs_stale_forget(); /* its inode may come back as another directory */
        if (rc != 0 && err != ENOENT)
            return fs_fail(e, err, "remove", "remove", &l);
        return 0;
    }
    struct stat pst;
    if (fstat(dfd, &pst) != 0) {
        err = errno;
        close(dfd);
        return fs_fail(e, err, "remove", "remove", &l);
    }
    char rel[KB_FS_PATH_MAX] = "";
    int rc = rm_at(dfd, fs_basename(&l), pst.st_dev, rel, sizeof rel);
    err = errno;
    close(dfd);
    fs_stale_forget(); /* removed directories' inodes may come back as other ones */
    if (rc == 0)
        return 0;
    if (err == EXDEV)
        return kb_err_sys(e, EXDEV, "remove", "cannot remove %s: %s is a mount point of another file system",
                          l.cp, rel);
    return kb_err_sys(e, err, "remove", "cannot remove %s: %s", l.cp, rel);
}

#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 0x00000008
#endif

int kb_fs_unmount(const char *path, int flags, kb_err *e)
{
    struct loc l;
    if (fs_resolve(path, &l, e))
        return -1;
    if (strcmp(l.cp, "/") == 0)
        return kb_err_sys(e, EINVAL, "unmount", "refusing to unmount the root %s", kb_fs_root());
    if (fs_state()->dry)
        return 0;
    int f = UMOUNT_NOFOLLOW;
    if (flags & KB_FS_UMOUNT_FORCE)
        f |= MNT_FORCE;
    if (flags & KB_FS_UMOUNT_DETACH)
        f |= MNT_DETACH;
    if (flags & KB_FS_UMOUNT_EXPIRE)
        f |= MNT_EXPIRE;
    if (fs_resolver() == FS_RESOLVE_NONE)
        return umount2(l.hp, f) != 0 ? fs_fail(e, errno, "unmount", "unmount", &l) : 0;
    /* umount2 takes a path: its directory beneath the root, named through /proc/self/fd (the
     * kernel goes straight to that directory), then the last component (never followed) */
    char via[64 + NAME_MAX];
    int dfd = fs_open_dir_of(l.cp);
    if (dfd < 0)
        return fs_fail(e, errno, "unmount", "unmount", &l);
    snprintf(via, sizeof via, "/proc/self/fd/%d/%s", dfd, fs_basename(&l));
    int rc = umount2(via, f), err = errno;
    close(dfd);
    return rc != 0 ? fs_fail(e, err, "unmount", "unmount", &l) : 0;
}

/* chmod(2) of l beneath the root (a link at l followed, inside the root): of the O_PATH
 * descriptor through /proc/self/fd, as glibc's fchmodat does; without /proc, of the file opened
 * for reading. */
static int chmod_beneath(const struct loc *l, unsigned mode)
{
    char via[64];
    if (fs_resolver() == FS_RESOLVE_NONE)
        return chmod(l->hp, mode);
    int fd = fs_open_beneath(l->cp, O_PATH, 0);
    if (fd < 0)
        return -1;
    snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
    int rc = chmod(via, mode), err = errno;
    close(fd);
    if (rc != 0 && err == ENOENT) {
        if ((fd = fs_open_beneath(l->cp, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0)) < 0)
            return -1;
        rc = fchmod(fd, mode);
        err = errno;
        close(fd);
    }
    return errno = err, rc;
}

int kb_fs_chmod(const char *path, unsigned mode, kb_err *e)
{
    struct loc l;
    struct view v;
    mode &= 07777;
    if (fs_resolve(path, &l, e))
        return -1;
    if (!fs_state()->dry) {
        if (kb_fs_batch_flush(e))
            return -1;
        return chmod_beneath(&l, mode) != 0 ? fs_fail(e, errno, "chmod", "chmod", &l) : 0;
    }
    if (fs_view_get(&l, &v))
        return fs_fail(e, errno, "chmod", "chmod", &l);
    if (v.type == KB_FS_NONE)
        return fs_fail(e, ENOENT, "chmod", "chmod", &l);
    if (v.mode == mode && v.type != KB_FS_LINK)
        return 0;
    if (v.ov && v.type != KB_FS_LINK) {
        v.ov->mode = mode;
    } else if (v.type == KB_FS_FILE) { /* copy the disk file into the overlay */
        char *data;
        size_t len;
        if (kb_fs_read(l.cp, &data, &len, e))
            return -1;
        struct ov *o = fs_ov_put(l.cp, KB_FS_FILE, 0, mode, data, len);
        kb_fs_free_data(data, len);
        if (!o)
            return fs_nomem(e, "chmod");
    } else if (v.type == KB_FS_DIR) {
        if (!fs_ov_put(l.cp, KB_FS_DIR, 0, mode, NULL, 0))
            return fs_nomem(e, "chmod");
    }
    if (fs_record(KB_FS_OP_CHMOD, l.cp, mode, NULL, 0, NULL, 0))
        return fs_nomem(e, "chmod");
    return 0;
}

int kb_fs_symlink(const char *target, const char *path, int *changed, kb_err *e)
{
    struct loc l;
    struct view v;
    int dfd, dummy;
    char tmp[NAME_MAX + 64];
    if (!changed)
        changed = &dummy;
    *changed = 0;
    if (fs_resolve(path, &l, e))
        return -1;
    if (fs_view_get(&l, &v))
        return fs_fail(e, errno, "symlink", "create symlink", &l);
    if (v.type == KB_FS_DIR)
        return fs_fail(e, EISDIR, "symlink", "create symlink", &l);
    if (v.type == KB_FS_LINK) {
        char *old = NULL;
        int same = v.ov ? strcmp(v.ov->data, target) == 0
                        : fs_readlink_of(&l, &old) == 0 && strcmp(old, target) == 0;
        free(old);
        if (same)
            return 0;
    }
    if (fs_open_parent(&l, NULL, "symlink", "create symlink", &dfd, e))
        return -1;
    if (fs_state()->dry) {
        if (!fs_ov_put(l.cp, KB_FS_LINK, 0, 0777, target, strlen(target)) ||
            fs_record(KB_FS_OP_SYMLINK, l.cp, 0, NULL, 0, target, 0))
            return fs_nomem(e, "symlink");
        *changed = 1;
        return 0;
    }
    if (kb_fs_batch_flush(e)) {
        close(dfd);
        return -1;
    }
    fs_clean_stale_temps(dfd, fs_basename(&l), NULL);
    int rc = -1;
    for (int tries = 0; rc != 0 && tries < 100; tries++) {
        fs_temp_name(tmp, sizeof tmp, fs_basename(&l));
        rc = symlinkat(target, dfd, tmp);
        if (rc != 0 && errno != EEXIST)
            break;
    }
    if (rc != 0 || renameat(dfd, tmp, dfd, fs_basename(&l)) != 0 || fsync(dfd) != 0) {
        int err = errno;
        if (rc == 0)
            unlinkat(dfd, tmp, 0);
        close(dfd);
        return fs_fail(e, err, "symlink", "create symlink", &l);
    }
    close(dfd);
    *changed = 1;
    return 0;
}

int kb_fs_clean_temps(const char *dir, kb_err *e)
{
    struct loc l;
    if (fs_resolve(dir, &l, e) || kb_fs_batch_flush(e)) /* pending temps are no leftovers */
        return -1;
    int dfd = fs_open_beneath(l.cp, O_RDONLY | O_DIRECTORY, 0);
    if (dfd < 0)
        return fs_fail(e, errno, "clean_temps", "clean temp files in", &l);
    int n = fs_clean_temps_at(dfd, NULL, NULL, !fs_state()->dry);
    int err = errno;
    close(dfd);
    return n < 0 ? fs_fail(e, err, "clean_temps", "clean temp files in", &l) : n;
}

int kb_fs_lock(const char *path, const kb_fs_write_opts *o, kb_err *e)
{
    struct loc l, p;
    if (fs_resolve(path, &l, e))
        return -1;
    int fd;
    if (fs_state()->dry) {
        if ((fd = fs_open_beneath(l.cp, O_RDONLY | O_NOFOLLOW, 0)) < 0)
            return errno == ENOENT ? -2 : fs_fail(e, errno, "lock", "open lock file", &l);
    } else {
        int created;
        fs_loc_parent(&l, &p);
        if (o && o->mkdir && fs_mkdir_p(&p, fs_dir_mode_of(o), &created, e))
            return -1;
        if ((fd = fs_open_beneath(l.cp, O_RDWR | O_CREAT | O_NOFOLLOW, 0600)) < 0)
            return fs_fail(e, errno, "lock", "open lock file", &l);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        close(fd);
        if (err != EWOULDBLOCK)
            return fs_fail(e, err, "lock", "lock", &l);
        int pid = n > 0 ? atoi(buf) : 0;
        if (pid > 0)
            kb_err_set(e, "lock", "another kboot holds %s (pid %d)", l.cp, pid);
        else
            kb_err_set(e, "lock", "another kboot holds %s", l.cp);
        if (e)
            e->code = EWOULDBLOCK;
        return -1;
    }
    if (!fs_state()->dry) { /* who holds it, for the message a second kboot prints */
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
        if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) < 0) {
            /* best effort */
        }
    }
    return fd;
}

void kb_fs_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the only descriptor releases the flock */
}
