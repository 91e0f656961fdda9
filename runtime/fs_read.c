/* kboot.fs reading operations: read, stat, exists, list, readlink, over the merged view (a dry
 * run's overlay over the disk, a batch's pending writes as if they had landed). */
#include "fs_ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int kb_fs_read(const char *path, char **data, size_t *len, kb_err *e)
{
    static int depth;
    struct loc l;
    struct view v;
    *data = NULL;
    *len = 0;
    if (fs_resolve(path, &l, e))
        return -1;
    if (fs_state()->dry) {
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
            char t[KB_FS_PATH_MAX], c[KB_FS_PATH_MAX];
            struct loc p;
            fs_loc_parent(&l, &p);
            int k = snprintf(t, sizeof t, "%s/%s", v.ov->data[0] == '/' ? "" : p.cp, v.ov->data);
            if (k < 0 || (size_t)k >= sizeof t || fs_clean_in_root(t, c, sizeof c, NULL))
                return fs_fail(e, ENAMETOOLONG, "read", "read", &l);
            if (depth >= 8)
                return fs_fail(e, ELOOP, "read", "read", &l);
            depth++;
            int rc = kb_fs_read(c, data, len, e);
            depth--;
            return rc;
        }
    }
    int fd = fs_open_of(&l, O_RDONLY);
    if (fd < 0)
        return fs_fail(e, errno, "read", "read", &l);
    int rc = fs_read_fd(fd, data, len);
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
        int dfd = fs_open_beneath(l.cp, O_RDONLY | O_DIRECTORY, 0);
        DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        if (!d) {
            int err = errno;
            if (dfd >= 0)
                close(dfd);
            return fs_fail(e, err, "list", "list", &l);
        }
        struct dirent *de;
        char child[KB_FS_PATH_MAX + 260];
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            /* Children the overlay knows about are added (or hidden) below. */
            snprintf(child, sizeof child, "%s/%s", strcmp(l.cp, "/") ? l.cp : "", de->d_name);
            if ((fs_state()->dry && fs_ov_find(child)) || fs_pend_is_temp(l.cp, de->d_name))
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
            int known = !fs_is_child(p, l.cp) || (fs_state()->dry && fs_ov_find(p));
            for (size_t j = 0; j < ndisk && !known; j++)
                known = strcmp((*names)[j], name) == 0;
            if (!known && push_name(names, n, &cap, name)) {
                kb_fs_free_list(*names, *n);
                return fs_nomem(e, "list");
            }
        }
    }
    for (size_t i = 0; fs_state()->dry && i < fs_ov_count(); i++) {
        const struct ov *o = fs_ov_at(i);
        const char *p = o->path;
        if (o->kind == KB_FS_NONE || !fs_is_child(p, l.cp))
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

int kb_fs_readlink(const char *path, char **target, kb_err *e)
{
    struct loc l;
    struct view v;
    *target = NULL;
    if (fs_resolve(path, &l, e))
        return -1;
    if (fs_state()->dry) {
        if (fs_view_get(&l, &v))
            return fs_fail(e, errno, "readlink", "readlink", &l);
        if (v.type == KB_FS_NONE)
            return fs_fail(e, ENOENT, "readlink", "readlink", &l);
        if (v.ov && v.type != KB_FS_LINK)
            return fs_fail(e, EINVAL, "readlink", "readlink", &l);
        if (v.ov)
            return (*target = strdup(v.ov->data)) ? 0 : fs_nomem(e, "readlink");
    }
    return fs_readlink_of(&l, target) ? fs_fail(e, errno, "readlink", "readlink", &l) : 0;
}
