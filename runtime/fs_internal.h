/* Shared by runtime/fs*.c only: the process-global state of kboot.fs and the helpers the
 * parts use (paths and errors: fs_path.c; dry-run overlay, record and merged view:
 * fs_overlay.c; operations: fs.c). Not a public header. */
#ifndef KBOOT_FS_INTERNAL_H
#define KBOOT_FS_INTERNAL_H

#include <sys/stat.h>

#include "kboot/fs.h"

extern char fs_g_root[KB_FS_PATH_MAX]; /* "" when there is no prefix */
extern int fs_g_dry;

/* A resolved path: cluster path and host path. */
struct loc {
    char cp[KB_FS_PATH_MAX];
    char hp[KB_FS_PATH_MAX];
};

/* ---- paths and errors (fs_path.c) ---- */

/* "cannot <verb> <cluster path> (<host path>): strerror(err)"; returns -1. */
int fs_fail(kb_err *e, int err, const char *op, const char *verb, const struct loc *l);
int fs_nomem(kb_err *e, const char *op);
/* Bad paths are the caller's mistake: a plain message, no strerror. */
#define path_err(e, errnum, ...) \
    (kb_err_set(e, "path", __VA_ARGS__), (e) ? (void)((e)->code = (errnum)) : (void)0, -1)
int fs_resolve(const char *p, struct loc *l, kb_err *e);
/* Cut the last component of both paths ("/" stays "/"). */
void fs_loc_parent(const struct loc *l, struct loc *p);
const char *fs_basename(const struct loc *l);

/* ---- dry-run overlay and record (fs_overlay.c) ---- */

/* One entry per touched cluster path. kind KB_FS_NONE is a whiteout (removed). An opaque
 * directory hides whatever the disk has below it, so "remove /a; mkdir /a" does not
 * resurrect the old children of /a. */
struct ov {
    char *path;
    int kind;
    int opaque;
    unsigned mode;
    char *data; /* file content or link target */
    size_t len;
    long long mtime;
};
extern struct ov *fs_g_ov;
extern size_t fs_g_nov;

struct ov *fs_ov_find(const char *cp);
/* Set the entry for cp; data is copied. Returns the entry or NULL (no memory). */
struct ov *fs_ov_put(const char *cp, int kind, int opaque, unsigned mode, const void *data, size_t len);
void fs_ov_clear(void);
int fs_is_child(const char *p, const char *dir); /* is p a direct child of dir? */
int fs_record(int op, const char *cp, unsigned mode, const void *data, size_t len, const char *target,
              int recursive);
void fs_overlay_free(void); /* dry run off, overlay and record freed */

/* ---- the merged view ---- */

struct view {
    int type;
    unsigned mode;
    struct ov *ov;  /* set when the answer comes from the overlay */
    struct stat st; /* set when it comes from disk */
};

int fs_type_of(mode_t m);
/* 0 with v->type KB_FS_NONE when nothing is there; -1 (errno) on other lstat errors. */
int fs_view_get(const struct loc *l, struct view *v);

/* ---- group commit (fs_batch.c) ---- */

int fs_batching(void);                      /* a batch is open and this is no dry run */
const char *fs_host_of(const struct loc *l); /* host path to read: a pending temp or l->hp */
/* Record (or, for a pending path, replace) the write of l whose complete content is in
 * tmpname in directory dfd. -1 (errno) when out of memory or fds; nothing recorded then. */
int fs_pend_put(const struct loc *l, int dfd, const char *tmpname);
size_t fs_pend_count(void);
const char *fs_pend_path(size_t i);                    /* cluster path of pending write i */
int fs_pend_is_temp(const char *dir_cp, const char *name); /* is name in dir a pending temp? */
/* A directory entry was made in dfd (host path hp) and not synced: the commit syncs it. */
int fs_batch_defer_dir(int dfd, const char *hp);
void fs_batch_free(void);

#endif
