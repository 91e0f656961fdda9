/* kboot.fs: helpers the operations share (see fs_ops.h): whole-file I/O, temp files, mkdir -p
 * and the parent check, all over the merged view. */
#define _GNU_SOURCE /* O_PATH */
#include "fs_ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fs_read_fd(int fd, char **data, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    if (S_ISDIR(st.st_mode))
        return errno = EISDIR, -1;
    /* /proc files report size 0: grow as needed (not with realloc, which could leave a copy of
     * the content behind uncleansed) */
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 2 : 4096, n = 0; /* + the NUL + room to see EOF */
    char *buf = malloc(cap);
    if (!buf)
        return errno = ENOMEM, -1;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = malloc(cap * 2);
            if (!nb) {
                fs_free_secret(buf, n);
                return errno = ENOMEM, -1;
            }
            memcpy(nb, buf, n);
            fs_free_secret(buf, n);
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int s = errno;
            fs_free_secret(buf, n);
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

int fs_write_all(int fd, const char *p, size_t n)
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

int fs_same_content(const struct loc *l, const char *data, size_t len)
{
    int fd = fs_open_of(l, O_RDONLY | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    char buf[65536];
    size_t off = 0, used = 0;
    int same = 1;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            same = r == 0 && off == len;
            break;
        }
        used = (size_t)r > used ? (size_t)r : used;
        if (off + (size_t)r > len || memcmp(buf, data + off, (size_t)r) != 0) {
            same = 0;
            break;
        }
        off += (size_t)r;
    }
    close(fd);
    OPENSSL_cleanse(buf, used); /* the file may be a private key */
    return same;
}

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

void fs_temp_name(char *out, size_t n, const char *base)
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

int fs_clean_temps_at(int dfd, const char *base, const char *keep, int remove)
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

/* The leftover temps (of a killed run) of each directory a write went into, read once per
 * process: scanning the directory on every write made N new files in one directory O(N^2). */
struct stale {
    dev_t dev;
    ino_t ino;
    char **names; /* temp names found by the first scan, not yet removed */
    size_t n;
};
static struct stale *g_stale;
static size_t g_nstale, g_capstale;

void fs_stale_forget(void)
{
    for (size_t i = 0; i < g_nstale; i++) {
        for (size_t j = 0; j < g_stale[i].n; j++)
            free(g_stale[i].names[j]);
        free(g_stale[i].names);
    }
    free(g_stale);
    g_stale = NULL;
    g_nstale = g_capstale = 0;
}

/* Read directory dfd's temps into s; -1 (errno) on failure, s left empty. */
static int stale_scan(int dfd, struct stale *s, const char *keep)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_temp(de->d_name, NULL) || (keep && strcmp(de->d_name, keep) == 0))
            continue;
        char *name = strdup(de->d_name);
        if (name && s->n == cap) {
            char **g = realloc(s->names, (cap = cap ? 2 * cap : 4) * sizeof *g);
            if (g)
                s->names = g;
            else
                free(name), name = NULL;
        }
        if (!name) {
            closedir(d);
            return errno = ENOMEM, -1;
        }
        s->names[s->n++] = name;
    }
    closedir(d);
    return 0;
}

int fs_clean_stale_temps(int dfd, const char *base, const char *keep)
{
    static unsigned pruned;
    if (pruned != fs_pruned_dirs()) {
        fs_stale_forget();
        pruned = fs_pruned_dirs();
    }
    struct stat st;
    if (fstat(dfd, &st) != 0)
        return -1;
    struct stale *s = NULL;
    for (size_t i = 0; i < g_nstale && !s; i++)
        if (g_stale[i].dev == st.st_dev && g_stale[i].ino == st.st_ino)
            s = &g_stale[i];
    if (!s) {
        if (g_nstale == g_capstale) {
            size_t cap = g_capstale ? 2 * g_capstale : 8;
            struct stale *g = realloc(g_stale, cap * sizeof *g);
            if (!g)
                return fs_clean_temps_at(dfd, base, keep, 1); /* no memory: the slow way */
            g_stale = g;
            g_capstale = cap;
        }
        struct stale fresh = { st.st_dev, st.st_ino, NULL, 0 };
        if (stale_scan(dfd, &fresh, keep) != 0) {
            for (size_t j = 0; j < fresh.n; j++)
                free(fresh.names[j]);
            free(fresh.names);
            return fs_clean_temps_at(dfd, base, keep, 1);
        }
        g_stale[g_nstale] = fresh;
        s = &g_stale[g_nstale++];
    }
    int count = 0;
    for (size_t j = 0; j < s->n;)
        if (is_temp(s->names[j], base) && !(keep && strcmp(s->names[j], keep) == 0)) {
            if (unlinkat(dfd, s->names[j], 0) == 0)
                count++;
            free(s->names[j]);
            s->names[j] = s->names[--s->n];
        } else {
            j++;
        }
    return count;
}

unsigned fs_dir_mode_of(const kb_fs_write_opts *o) { return o && o->dir_mode ? o->dir_mode : 0755; }

/* Why mkdir -p cannot go on at p, a symlink that leads to no directory beneath the root. */
static int link_fail(kb_err *e, int err, const struct loc *p)
{
    char *target = NULL;
    if (!e || fs_readlink_of(p, &target) != 0)
        return fs_fail(e, err, "mkdir", "create directory", p);
    if (fs_state()->root[0])
        kb_err_sys(e, err, "mkdir",
                   "cannot create directory %s (%s): it is a symlink to %s, which leads to no directory "
                   "beneath the root (links resolve inside %s, as under chroot)",
                   p->cp, p->hp, target, fs_state()->root);
    else
        kb_err_sys(e, err, "mkdir", "cannot create directory %s: it is a symlink to %s, which leads to no directory",
                   p->cp, target);
    free(target);
    return -1;
}

/* mkdir p (its parent exists) with exactly mode, whatever the umask; the new entry durable. */
static int make_dir(const struct loc *p, unsigned mode, kb_err *e)
{
    struct loc pp;
    fs_loc_parent(p, &pp);
    int dfd = fs_open_dir_of(p->cp), err;
    const char *name = fs_basename(p);
    if (dfd < 0)
        return fs_fail(e, errno, "mkdir", "create directory", p);
    if (mkdirat(dfd, name, mode) != 0) {
        err = errno;
        close(dfd);
        return err == EEXIST ? 1 : fs_fail(e, err, "mkdir", "create directory", p); /* EEXIST: lost a race */
    }
    /* the new directory itself (O_NOFOLLOW: no link swapped in meanwhile), else by name */
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = fd >= 0 ? fchmod(fd, mode) : fchmodat(dfd, name, mode, 0);
    err = errno;
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        close(dfd);
        return fs_fail(e, err, "mkdir", "chmod directory", p);
    }
    if (fs_batching() && fs_batch_made_dir(p->cp)) {
        close(dfd);
        return fs_nomem(e, "mkdir");
    }
    /* in a batch the commit's sync covers it (fsync now if it cannot be noted) */
    if (!fs_batching() || fs_batch_defer_dir(dfd, pp.cp))
        fsync(dfd);
    close(dfd);
    return 0;
}

int fs_mkdir_p(const struct loc *l, unsigned mode, int *created, kb_err *e)
{
    struct loc p;
    struct view v;
    *created = 0;
    size_t n = strlen(l->cp);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && l->cp[i] != '/')
            continue;
        unsigned m = i < n ? 0755 : mode; /* missing parents 0755, as mkdir -p gives them; l its mode */
        memcpy(p.cp, l->cp, i);
        p.cp[i] = '\0';
        if (kb_fs_host_path(p.cp, p.hp, sizeof p.hp, e))
            return -1;
        if (fs_view_get(&p, &v))
            return fs_fail(e, errno, "mkdir", "create directory", l);
        if (v.type == KB_FS_LINK && !v.ov) { /* mkdir -p follows links to directories, beneath the root */
            int fd = fs_open_beneath(p.cp, O_PATH | O_DIRECTORY, 0);
            if (fd < 0)
                return link_fail(e, errno, &p);
            close(fd);
            continue;
        }
        if (v.type == KB_FS_DIR)
            continue;
        if (v.type != KB_FS_NONE)
            return fs_fail(e, i < n ? ENOTDIR : EEXIST, "mkdir", "create directory", l);
        if (fs_state()->dry) {
            if (!fs_ov_put(p.cp, KB_FS_DIR, 1, m, NULL, 0))
                return fs_nomem(e, "mkdir");
        } else {
            int rc = make_dir(&p, m, e);
            if (rc < 0)
                return -1;
            if (rc > 0) /* made by someone else meanwhile */
                continue;
        }
        *created = 1;
    }
    return 0;
}

int fs_open_parent(const struct loc *l, const kb_fs_write_opts *o, const char *op, const char *verb,
                   int *dfd, kb_err *e)
{
    struct loc p;
    struct view v;
    fs_loc_parent(l, &p);
    if (o && o->mkdir) {
        int created;
        if (fs_mkdir_p(&p, fs_dir_mode_of(o), &created, e))
            return -1;
        if (fs_state()->dry && created && fs_record(KB_FS_OP_MKDIR, p.cp, fs_dir_mode_of(o), NULL, 0, NULL, 0))
            return fs_nomem(e, op);
    }
    if (fs_state()->dry) {
        if (fs_view_get(&p, &v))
            return fs_fail(e, errno, op, verb, l);
        if (v.type == KB_FS_LINK && !v.ov) { /* a link to a directory beneath the root */
            int fd = fs_open_beneath(p.cp, O_PATH | O_DIRECTORY, 0);
            v.type = fd >= 0 ? KB_FS_DIR : KB_FS_OTHER;
            if (fd >= 0)
                close(fd);
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
    if ((*dfd = fs_open_beneath(p.cp, O_RDONLY | O_DIRECTORY, 0)) < 0) {
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

int fs_readlink_of(const struct loc *l, char **target)
{
    struct stat st;
    int fd = fs_open_of(l, O_PATH | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    int rc = fstat(fd, &st);
    if (rc != 0 || !S_ISLNK(st.st_mode)) {
        int s = rc != 0 ? errno : EINVAL;
        close(fd);
        return errno = s, -1;
    }
    for (size_t cap = 256; cap <= KB_FS_PATH_MAX * 4; cap *= 2) {
        char *buf = malloc(cap);
        if (!buf) {
            close(fd);
            return errno = ENOMEM, -1;
        }
        ssize_t n = readlinkat(fd, "", buf, cap); /* the link fd itself (O_PATH|O_NOFOLLOW) */
        if (n < 0) {
            int s = errno;
            free(buf);
            close(fd);
            return errno = s, -1;
        }
        if ((size_t)n < cap) {
            buf[n] = '\0';
            *target = buf;
            close(fd);
            return 0;
        }
        free(buf);
    }
    close(fd);
    return errno = ENAMETOOLONG, -1;
}
