/* kboot.fs, bottom layer (fs_path.c): the process state every layer reads, resolved paths,
 * and error messages naming both paths. Internal to runtime/fs*.c.
 *
 * The layers, each header including only those below it:
 *   fs_path.h  <-  fs_overlay.h (dry-run overlay, record), fs_batch.h (group commit)
 *              <-  fs_view.h (the merged view)  <-  fs_ops.h (helpers the operations share)
 *              <-  fs.c, fs_read.c (the kb_fs_* operations). */
#ifndef KBOOT_FS_PATH_H
#define KBOOT_FS_PATH_H

#include "kboot/fs.h"

/* The state of kboot.fs the layers share; each layer's own tables stay private to its file. */
struct fs_state {
    char root[KB_FS_PATH_MAX]; /* "" when there is no prefix */
    int dry;                   /* dry run: changes go to the overlay, the disk is only read */
};
struct fs_state *fs_state(void);

/* A resolved path: cluster path and host path. */
struct loc {
    char cp[KB_FS_PATH_MAX];
    char hp[KB_FS_PATH_MAX];
};

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
int fs_is_below(const char *p, const char *dir); /* is p strictly below dir? */
int fs_is_child(const char *p, const char *dir); /* is p a direct child of dir? */

/* The canonical form of a new root directory (real must hold PATH_MAX bytes; "/" for none),
 * or -1 when it cannot be one. fs_root_set makes it the root; kb_fs_set_root (fs.c) does both
 * around flushing the batch and clearing the overlay, which belong to the layers above. */
int fs_root_check(const char *dir, char *real, kb_err *e);
void fs_root_set(const char *real);

#endif
