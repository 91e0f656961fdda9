/* Files under a root prefix: atomic writes, safe recursive remove, locks. Paths and errors
 * are in fs_path.c, the dry-run overlay in fs_overlay.c. See include/kboot/fs.h for the contract. */
#include "fs_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void kb_fs_reset(void)
{
    fs_batch_free(); /* discards: pending temps removed, targets keep their old content */
    fs_g_root[0] = '\0';
    fs_overlay_free();
}

/* ---- small I/O helpers ----------------------------------------------------- */

static int read_fd(int fd, char **data, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    if (S_ISDIR(st.st_mode))
        return errno = EISDIR, -1;
    /* /proc files report size 0: grow as needed. */
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return errno = ENOMEM, -1;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return errno = ENOMEM, -1;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int s = errno;
            free(buf);
            return errno = s, -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Does host file hp hold exactly data? */
static int same_content(const char *hp, const char *data, size_t len)
{
    int fd = open(hp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    char buf[65536];
    size_t off = 0;
    int same = 1;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            same = r == 0 && off == len;
            break;
        }
        if (off + (size_t)r > len || memcmp(buf, data + off, (size_t)r) != 0) {
            same = 0;
            break;
        }
        off += (size_t)r;
    }
    close(fd);
    return same;
}

/* Temp names: ".<base>.kboot-tmp-XXXXXX" so leftovers are recognisable. */
static int is_temp(const char *name, const char *base)
{
    size_t n = strlen(name), tag = sizeof KB_FS_TEMP_TAG - 1;
    if (name[0] != '.' || n < 1 + 1 + tag + 6)
        return 0;
    const char *t = name + n - 6 - tag;
    if (strncmp(t, KB_FS_TEMP_TAG, tag) != 0)
        return 0;
    for (const char *c = t + tag; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            return 0;
    if (!base)
        return 1;
    size_t bl = strlen(base);
    return (size_t)(t - name - 1) == bl && strncmp(name + 1, base, bl) == 0;
}

static void temp_name(char *out, size_t n, const char *base)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static unsigned counter;
    unsigned char r[6];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        unsigned x = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) ^ ++counter * 40503u;
        for (int i = 0; i < 6; i++, x = x * 1103515245u + 12345u)
            r[i] = (unsigned char)(x >> 16);
    }
    char sfx[7];
    for (int i = 0; i < 6; i++)
        sfx[i] = chars[r[i] % 62];
    sfx[6] = '\0';
    snprintf(out, n, ".%s%s%s", base, KB_FS_TEMP_TAG, sfx);
}

/* Remove temps in directory dfd (of base, or all when base is NULL) except keep; count them. */
static int clean_temps_at(int dfd, const char *base, const char *keep, int remove)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (is_temp(de->d_name, base) && !(keep && strcmp(de->d_name, keep) == 0) &&
            (!remove || unlinkat(dfd, de->d_name, 0) == 0))
            count++;
    closedir(d);
    return count;
}

/* ---- operations ------------------------------------------------------------ */

static unsigned dir_mode_of(const kb_fs_write_opts *o) { return o && o->dir_mode ? o->dir_mode : 0755; }

/* mkdir -p of l; *created set when anything was (or, in dry run, would be) made. */
static int mkdir_p(const struct loc *l, unsigned mode, int *created, kb_err *e)
{
    struct loc p;
    struct view v;
    *created = 0;
    size_t n = strlen(l->cp);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && l->cp[i] != '/')
            continue;
        memcpy(p.cp, l->cp, i);
        p.cp[i] = '\0';
        if (kb_fs_host_path(p.cp, p.hp, sizeof p.hp, e))
            return -1;
        if (fs_view_get(&p, &v))
            return fs_fail(e, errno, "mkdir", "create directory", l);
        if (v.type == KB_FS_LINK && !v.ov) { /* mkdir -p follows links to directories */
            struct stat st;
            v.type = stat(p.hp, &st) == 0 && S_ISDIR(st.st_mode) ? KB_FS_DIR : KB_FS_OTHER;
        }
        if (v.type == KB_FS_DIR)
            continue;
        if (v.type != KB_FS_NONE)
            return fs_fail(e, i < n ? ENOTDIR : EEXIST, "mkdir", "create directory", l);
        if (fs_g_dry) {
            if (!fs_ov_put(p.cp, KB_FS_DIR, 1, mode, NULL, 0))
                return fs_nomem(e, "mkdir");
        } else {
            if (mkdir(p.hp, mode) != 0) {
                if (errno == EEXIST) /* lost a race: it is there now */
                    continue;
                return fs_fail(e, errno, "mkdir", "create directory", &p);
            }
            /* Exactly mode, whatever the umask; and make the new entry durable. */
            if (chmod(p.hp, mode) != 0)
                return fs_fail(e, errno, "mkdir", "chmod directory", &p);
            struct loc pp;
            fs_loc_parent(&p, &pp);
            int dfd = open(pp.hp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                /* in a batch the commit's sync covers it (fsync now if it cannot be noted) */
                if (!fs_batching() || fs_batch_defer_dir(dfd, pp.hp))
                    fsync(dfd);
                close(dfd);
            }
        }
        *created = 1;
    }
    return 0;
}

int kb_fs_mkdir(const char *path, unsigned mode, kb_err *e)
{
    struct loc l;
    int created;
    if (fs_resolve(path, &l, e) || mkdir_p(&l, mode & 07777, &created, e))
        return -1;
    if (fs_g_dry && created && fs_record(KB_FS_OP_MKDIR, l.cp, mode & 07777, NULL, 0, NULL, 0))
        return fs_nomem(e, "mkdir");
    return 0;
}

/* Check the parent of l (creating it when asked); in real mode return its fd. */
static int open_parent(const struct loc *l, const kb_fs_write_opts *o, const char *op, const char *verb,
                       int *dfd, kb_err *e)
{
    struct loc p;
    struct view v;
    fs_loc_parent(l, &p);
    if (o && o->mkdir) {
        int created;
        if (mkdir_p(&p, dir_mode_of(o), &created, e))
            return -1;
        if (fs_g_dry && created && fs_record(KB_FS_OP_MKDIR, p.cp, dir_mode_of(o), NULL, 0, NULL, 0))
            return fs_nomem(e, op);
    }
    if (fs_g_dry) {
        if (fs_view_get(&p, &v))
            return fs_fail(e, errno, op, verb, l);
        if (v.type == KB_FS_LINK && !v.ov) {
            struct stat st;
            v.type = stat(p.hp, &st) == 0 && S_ISDIR(st.st_mode) ? KB_FS_DIR : KB_FS_OTHER;
        }
        if (v.type == KB_FS_NONE) {
            fs_fail(e, ENOENT, op, verb, l);
            size_t n = e ? strlen(e->msg) : 0;
            if (e)
                snprintf(e->msg + n, sizeof e->msg - n,
                         " (directory %s is missing; mkdir option creates it)", p.cp);
            return -1;
        }
        if (v.type != KB_FS_DIR)
            return fs_fail(e, ENOTDIR, op, verb, l);
        *dfd = -1;
        return 0;
    }
    if ((*dfd = open(p.hp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        fs_fail(e, errno, op, verb, l);
        if (e && e->code == ENOENT) { /* say which part is missing and what helps */
            size_t n = strlen(e->msg);
            snprintf(e->msg + n, sizeof e->msg - n, " (directory %s is missing; mkdir option creates it)",
                     p.cp);
        }
        return -1;
    }
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
                        : (size_t)v.st.st_size == len && same_content(fs_host_of(&l), data, len);
        if (same)
            return 0;
    }
    if (open_parent(&l, o, "write", "write", &dfd, e))
        return -1;
    if (fs_g_dry) {
        if (!fs_ov_put(l.cp, KB_FS_FILE, 0, mode, data, len) ||
            fs_record(KB_FS_OP_WRITE, l.cp, mode, data, len, NULL, 0))
            return fs_nomem(e, "write");
        *changed = 1;
        return 0;
    }
    /* In a batch: the temp only, complete; the commit syncs and renames (fs_batch.c). */
    int batch = fs_batching();
    if (!batch)
        clean_temps_at(dfd, fs_basename(&l), NULL, 1);
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        temp_name(tmp, sizeof tmp, fs_basename(&l));
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
    if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || (!batch && fsync(fd) != 0))
        goto undo;
    err = close(fd);
    fd = -1;
    if (err == 0 && batch) {
        if (fs_pend_put(&l, dfd, tmp) != 0)
            goto undo;
        /* only now: a pending temp of l this write replaces stays until the new one is complete */
        clean_temps_at(dfd, fs_basename(&l), tmp, 1);
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

int kb_fs_read(const char *path, char **data, size_t *len, kb_err *e)
{
    static int depth;
    struct loc l;
    struct view v;
    *data = NULL;
    *len = 0;
    if (fs_resolve(path, &l, e))
        return -1;
    if (fs_g_dry) {
        if (fs_view_get(&l, &v))
            return fs_fail(e, errno, "read", "read", &l);
        if (v.type == KB_FS_NONE)
            return fs_fail(e, ENOENT, "read", "read", &l);
        if (v.ov && v.type == KB_FS_DIR)
            return fs_fail(e, EISDIR, "read", "read", &l);
        if (v.ov && v.type == KB_FS_FILE) {
            if (!(*data = malloc(v.ov->len + 1)))
                return fs_nomem(e, "read");
            memcpy(*data, v.ov->data, v.ov->len + 1);
            *len = v.ov->len;
            return 0;
        }
        if (v.ov && v.type == KB_FS_LINK) { /* follow a link made in this dry run */
            char t[KB_FS_PATH_MAX];
            struct loc p;
            fs_loc_parent(&l, &p);
            int k = snprintf(t, sizeof t, "%s/%s", v.ov->data[0] == '/' ? "" : p.cp, v.ov->data);
            if (k < 0 || (size_t)k >= sizeof t)
                return fs_fail(e, ENAMETOOLONG, "read", "read", &l);
            if (depth >= 8)
                return fs_fail(e, ELOOP, "read", "read", &l);
            depth++;
            int rc = kb_fs_read(t, data, len, e);
            depth--;
            return rc;
        }
    }
    int fd = open(fs_host_of(&l), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fs_fail(e, errno, "read", "read", &l);
    int rc = read_fd(fd, data, len);
    int err = errno;
    close(fd);
    return rc ? fs_fail(e, err, "read", "read", &l) : 0;
}

int kb_fs_stat(const char *path, kb_fs_info *st, kb_err *e)
{
    struct loc l;
    struct view v;
    memset(st, 0, sizeof *st);
    if (fs_resolve(path, &l, e))
        return -1;
    if (fs_view_get(&l, &v))
        return fs_fail(e, errno, "stat", "stat", &l);
    if (v.type == KB_FS_NONE)
        return fs_fail(e, ENOENT, "stat", "stat", &l);
    st->type = v.type;
    st->mode = v.mode;
    if (v.ov) {
        st->size = (long long)(v.type == KB_FS_DIR ? 4096 : v.ov->len);
        st->mtime = v.ov->mtime;
        st->uid = (unsigned)geteuid();
        st->gid = (unsigned)getegid();
    } else {
        st->size = (long long)v.st.st_size;
        st->mtime = (long long)v.st.st_mtime;
        st->uid = (unsigned)v.st.st_uid;
        st->gid = (unsigned)v.st.st_gid;
    }
    return 0;
}

int kb_fs_exists(const char *path)
{
    struct loc l;
    struct view v;
    return fs_resolve(path, &l, NULL) == 0 && fs_view_get(&l, &v) == 0 && v.type != KB_FS_NONE;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int push_name(char ***names, size_t *n, size_t *cap, const char *name)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        char **nn = realloc(*names, nc * sizeof *nn);
        if (!nn)
            return -1;
        *names = nn;
        *cap = nc;
    }
    if (!((*names)[*n] = strdup(name)))
        return -1;
    (*n)++;
    return 0;
}

void kb_fs_free_list(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int kb_fs_list(const char *dir, char ***names, size_t *n, kb_err *e)
{
    struct loc l;
    struct view v;
    size_t cap = 0;
    *names = NULL;
    *n = 0;
    if (fs_resolve(dir, &l, e))
        return -1;
    if (fs_view_get(&l, &v))
        return fs_fail(e, errno, "list", "list", &l);
    if (v.type == KB_FS_NONE)
        return fs_fail(e, ENOENT, "list", "list", &l);
    if (v.type == KB_FS_FILE || (v.ov && v.type != KB_FS_DIR))
        return fs_fail(e, ENOTDIR, "list", "list", &l);
    if (!v.ov || !v.ov->opaque) {
        DIR *d = opendir(l.hp);
        if (!d)
            return fs_fail(e, errno, "list", "list", &l);
        struct dirent *de;
        char child[KB_FS_PATH_MAX + 260];
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            /* Children the overlay knows about are added (or hidden) below. */
            snprintf(child, sizeof child, "%s/%s", strcmp(l.cp, "/") ? l.cp : "", de->d_name);
            if ((fs_g_dry && fs_ov_find(child)) || fs_pend_is_temp(l.cp, de->d_name))
                continue;
            if (push_name(names, n, &cap, de->d_name)) {
                closedir(d);
                kb_fs_free_list(*names, *n);
                return fs_nomem(e, "list");
            }
        }
        closedir(d);
        /* a batch's pending writes show as if they had landed (their temps are hidden above) */
        size_t ndisk = *n;
        for (size_t i = 0; i < fs_pend_count(); i++) {
            const char *p = fs_pend_path(i), *name = strrchr(p, '/') + 1;
            int known = !fs_is_child(p, l.cp) || (fs_g_dry && fs_ov_find(p));
            for (size_t j = 0; j < ndisk && !known; j++)
                known = strcmp((*names)[j], name) == 0;
            if (!known && push_name(names, n, &cap, name)) {
                kb_fs_free_list(*names, *n);
                return fs_nomem(e, "list");
            }
        }
    }
    for (size_t i = 0; fs_g_dry && i < fs_g_nov; i++) {
        const char *p = fs_g_ov[i].path;
        if (fs_g_ov[i].kind == KB_FS_NONE || !fs_is_child(p, l.cp))
            continue;
        if (push_name(names, n, &cap, strrchr(p, '/') + 1)) {
            kb_fs_free_list(*names, *n);
            return fs_nomem(e, "list");
        }
    }
    if (*n > 1)
        qsort(*names, *n, sizeof **names, cmp_names);
    return 0;
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
    struct loc l, p;
    struct view v;
    if (fs_resolve(path, &l, e))
        return -1;
    if (strcmp(l.cp, "/") == 0)
        return kb_err_sys(e, EINVAL, "remove", "refusing to remove the root %s", kb_fs_root());
    if (fs_view_get(&l, &v))
        return fs_fail(e, errno, "remove", "remove", &l);
    if (v.type == KB_FS_NONE)
        return 0;
    if (fs_g_dry) {
        if (v.type == KB_FS_DIR && !recursive && view_has_children(&l))
            return fs_fail(e, ENOTEMPTY, "remove", "remove", &l);
        if (!fs_ov_put(l.cp, KB_FS_NONE, 0, 0, NULL, 0) || fs_record(KB_FS_OP_REMOVE, l.cp, 0, NULL, 0, NULL, recursive))
            return fs_nomem(e, "remove");
        return 0;
    }
    if (kb_fs_batch_flush(e)) /* a pending write there (or below) lands first */
        return -1;
    if (v.type != KB_FS_DIR) {
        if (unlink(l.hp) != 0 && errno != ENOENT)
            return fs_fail(e, errno, "remove", "remove", &l);
        return 0;
    }
    if (!recursive) {
        if (rmdir(l.hp) != 0 && errno != ENOENT)
            return fs_fail(e, errno, "remove", "remove", &l);
        return 0;
    }
    fs_loc_parent(&l, &p);
    int dfd = open(p.hp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat pst;
    if (dfd < 0 || fstat(dfd, &pst) != 0) {
        int err = errno;
        if (dfd >= 0)
            close(dfd);
        return fs_fail(e, err, "remove", "remove", &l);
    }
    char rel[KB_FS_PATH_MAX] = "";
    int rc = rm_at(dfd, fs_basename(&l), pst.st_dev, rel, sizeof rel);
    int err = errno;
    close(dfd);
    if (rc == 0)
        return 0;
    if (err == EXDEV)
        return kb_err_sys(e, EXDEV, "remove", "cannot remove %s: %s is a mount point of another file system",
                          l.cp, rel);
    return kb_err_sys(e, err, "remove", "cannot remove %s: %s", l.cp, rel);
}

int kb_fs_chmod(const char *path, unsigned mode, kb_err *e)
{
    struct loc l;
    struct view v;
    mode &= 07777;
    if (fs_resolve(path, &l, e))
        return -1;
    if (!fs_g_dry) {
        if (kb_fs_batch_flush(e))
            return -1;
        if (chmod(l.hp, mode) != 0)
            return fs_fail(e, errno, "chmod", "chmod", &l);
        return 0;
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
        free(data);
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

static int readlink_host(const char *hp, char **target)
{
    for (size_t cap = 256; cap <= KB_FS_PATH_MAX * 4; cap *= 2) {
        char *buf = malloc(cap);
        if (!buf)
            return errno = ENOMEM, -1;
        ssize_t n = readlink(hp, buf, cap);
        if (n < 0) {
            int s = errno;
            free(buf);
            return errno = s, -1;
        }
        if ((size_t)n < cap) {
            buf[n] = '\0';
            *target = buf;
            return 0;
        }
        free(buf);
    }
    return errno = ENAMETOOLONG, -1;
}

int kb_fs_readlink(const char *path, char **target, kb_err *e)
{
    struct loc l;
    struct view v;
    *target = NULL;
    if (fs_resolve(path, &l, e))
        return -1;
    if (fs_g_dry) {
        if (fs_view_get(&l, &v))
            return fs_fail(e, errno, "readlink", "readlink", &l);
        if (v.type == KB_FS_NONE)
            return fs_fail(e, ENOENT, "readlink", "readlink", &l);
        if (v.ov && v.type != KB_FS_LINK)
            return fs_fail(e, EINVAL, "readlink", "readlink", &l);
        if (v.ov)
            return (*target = strdup(v.ov->data)) ? 0 : fs_nomem(e, "readlink");
    }
    return readlink_host(fs_host_of(&l), target) ? fs_fail(e, errno, "readlink", "readlink", &l) : 0;
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
                        : readlink_host(l.hp, &old) == 0 && strcmp(old, target) == 0;
        free(old);
        if (same)
            return 0;
    }
    if (open_parent(&l, NULL, "symlink", "create symlink", &dfd, e))
        return -1;
    if (fs_g_dry) {
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
    clean_temps_at(dfd, fs_basename(&l), NULL, 1);
    int rc = -1;
    for (int tries = 0; rc != 0 && tries < 100; tries++) {
        temp_name(tmp, sizeof tmp, fs_basename(&l));
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
    int dfd = open(l.hp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return fs_fail(e, errno, "clean_temps", "clean temp files in", &l);
    int n = clean_temps_at(dfd, NULL, NULL, !fs_g_dry);
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
    if (fs_g_dry) {
        if ((fd = open(l.hp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
            return errno == ENOENT ? -2 : fs_fail(e, errno, "lock", "open lock file", &l);
    } else {
        int created;
        fs_loc_parent(&l, &p);
        if (o && o->mkdir && mkdir_p(&p, dir_mode_of(o), &created, e))
            return -1;
        if ((fd = open(l.hp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
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
    if (!fs_g_dry) { /* who holds it, for the message a second kboot prints */
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
