/* kboot.fs: helpers the operations share (see fs_ops.h): whole-file I/O, temp files, mkdir -p
 * and the parent check, all over the merged view. */
#include "fs_ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

int fs_same_content(const char *hp, const char *data, size_t len)
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

unsigned fs_dir_mode_of(const kb_fs_write_opts *o) { return o && o->dir_mode ? o->dir_mode : 0755; }

int fs_mkdir_p(const struct loc *l, unsigned mode, int *created, kb_err *e)
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
        if (fs_state()->dry) {
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
            if (fs_batching() && fs_batch_made_dir(p.hp))
                return fs_nomem(e, "mkdir");
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

int fs_readlink_host(const char *hp, char **target)
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
