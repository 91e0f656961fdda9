/* kboot.fs paths: the shared state, the root prefix, cluster path -> host path, error messages
 * naming both. The bottom layer: it calls nothing above it (see fs_path.h). */
#define _GNU_SOURCE /* O_PATH */
#include "fs_path.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct fs_state g_state = { .rootfd = -1 };

struct fs_state *fs_state(void) { return &g_state; }

/* ---- errors ---------------------------------------------------------------- */

int fs_fail(kb_err *e, int err, const char *op, const char *verb, const struct loc *l)
{
    if (g_state.root[0])
        return kb_err_sys(e, err, op, "cannot %s %s (%s)", verb, l->cp, l->hp);
    return kb_err_sys(e, err, op, "cannot %s %s", verb, l->cp);
}

int fs_nomem(kb_err *e, const char *op) { return kb_err_sys(e, ENOMEM, op, "out of memory"); }

void fs_free_secret(void *p, size_t n)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, n);
    free(p);
}

void kb_fs_free_data(char *data, size_t len) { fs_free_secret(data, data ? len + 1 : 0); }

/* ---- paths ----------------------------------------------------------------- */

/* clamp: ".." above the root stays at the root (a link's target, as under chroot); else an error */
static int clean(const char *p, char *out, size_t n, int clamp, kb_err *e)
{
    if (!p || p[0] != '/')
        return path_err(e, EINVAL, "absolute path expected, got '%s'", p ? p : "(null)");
    size_t o = 0;
    for (const char *s = p; *s;) {
        while (*s == '/')
            s++;
        const char *c = s;
        while (*s && *s != '/')
            s++;
        size_t len = (size_t)(s - c);
        if (len == 0 || (len == 1 && c[0] == '.'))
            continue;
        if (len == 2 && c[0] == '.' && c[1] == '.') {
            if (o == 0 && clamp)
                continue;
            if (o == 0)
                return path_err(e, EINVAL, "path '%s' escapes the root", p);
            while (out[o - 1] != '/')
                o--;
            o--;
            continue;
        }
        if (o + 1 + len + 1 > n)
            return path_err(e, ENAMETOOLONG, "path '%.64s...' is too long", p);
        out[o++] = '/';
        memcpy(out + o, c, len);
        o += len;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return 0;
}

int kb_fs_clean_path(const char *p, char *out, size_t n, kb_err *e) { return clean(p, out, n, 0, e); }

int fs_clean_in_root(const char *p, char *out, size_t n, kb_err *e) { return clean(p, out, n, 1, e); }

int kb_fs_host_path(const char *p, char *out, size_t n, kb_err *e)
{
    char cp[KB_FS_PATH_MAX];
    if (kb_fs_clean_path(p, cp, sizeof cp, e))
        return -1;
    int k = snprintf(out, n, "%s%s", g_state.root, g_state.root[0] && strcmp(cp, "/") == 0 ? "" : cp);
    if (k < 0 || (size_t)k >= n)
        return path_err(e, ENAMETOOLONG, "path '%.64s...' is too long under the root", p);
    return 0;
}

int fs_resolve(const char *p, struct loc *l, kb_err *e)
{
    if (kb_fs_clean_path(p, l->cp, sizeof l->cp, e))
        return -1;
    return kb_fs_host_path(l->cp, l->hp, sizeof l->hp, e);
}

/* Cut the last component of both paths ("/" stays "/"). */
void fs_loc_parent(const struct loc *l, struct loc *p)
{
    memcpy(p, l, sizeof *p);
    char *s = strrchr(p->cp, '/');
    if (s == p->cp) {
        s[1] = '\0';
        if (g_state.root[0])
            snprintf(p->hp, sizeof p->hp, "%s", g_state.root);
        else
            strcpy(p->hp, "/");
        return;
    }
    *s = '\0';
    *strrchr(p->hp, '/') = '\0';
}

const char *fs_basename(const struct loc *l) { return strrchr(l->cp, '/') + 1; }

int fs_is_below(const char *p, const char *dir)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return p[1] != '\0';
    return strncmp(p, dir, n) == 0 && p[n] == '/';
}

int fs_is_child(const char *p, const char *dir)
{
    return fs_is_below(p, dir) && strrchr(p, '/') == p + (strcmp(dir, "/") == 0 ? 0 : strlen(dir));
}

int fs_root_check(const char *dir, char *real, int *fd, kb_err *e)
{
    struct stat st;
    *fd = -1;
    if (dir && strcmp(dir, "/") != 0) {
        if (!realpath(dir, real))
            return kb_err_sys(e, errno, "set_root", "cannot use root %s", dir);
        if (strlen(real) >= sizeof g_state.root / 2)
            return kb_err_sys(e, ENAMETOOLONG, "set_root", "cannot use root %s", dir);
        /* what every path is resolved beneath from now on (fs_beneath.c) */
        if ((*fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 || fstat(*fd, &st) != 0) {
            int err = errno;
            if (*fd >= 0)
                close(*fd);
            *fd = -1;
            return kb_err_sys(e, err, "set_root", "cannot use root %s", dir);
        }
    } else {
        strcpy(real, "/");
    }
    return 0;
}

void fs_root_set(const char *real, int fd)
{
    if (g_state.rootfd >= 0)
        close(g_state.rootfd);
    g_state.rootfd = fd;
    g_state.resolver = 0;
    strcpy(g_state.root, strcmp(real, "/") == 0 ? "" : real);
}

const char *kb_fs_root(void) { return g_state.root[0] ? g_state.root : "/"; }
