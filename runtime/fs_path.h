/* kboot.fs, bottom layer (fs_path.c): the process state every layer reads, resolved paths,
 * and error messages naming both paths. Internal to runtime/fs*.c.
 *
 * The layers, each header including only those below it:
 *   fs_path.h  <-  fs_beneath.h (opening a cluster path beneath the root, as under chroot)
 *              <-  fs_overlay.h (dry-run overlay, record), fs_batch.h (group commit)
 *              <-  fs_view.h (the merged view)  <-  fs_ops.h (helpers the operations share)
 *              <-  fs.c, fs_read.c (the kb_fs_* operations). */
#ifndef KBOOT_FS_PATH_H
#define KBOOT_FS_PATH_H

#include "kboot/fs.h"

/* The state of kboot.fs the layers share; each layer's own tables stay private to its file. */
struct fs_state {
    char root[KB_FS_PATH_MAX]; /* "" when there is no prefix */
    int rootfd;                /* O_PATH descriptor of the root, -1 when there is no prefix */
    int resolver;              /* how fs_beneath.c resolves beneath rootfd; 0: not probed yet */
    int dry;                   /* dry run: changes go to the overlay, the disk is only read */
};
struct fs_state *fs_state(void);

/* A resolved path: cluster path and host path. The host path is for messages and for other
 * programs; kboot.fs itself opens cluster paths beneath the root's descriptor (fs_beneath.h). */
struct loc {
    char cp[KB_FS_PATH_MAX];
    char hp[KB_FS_PATH_MAX];
};

/* "cannot <verb> <cluster path> (<host path>): strerror(err)"; returns -1. */
int fs_fail(kb_err *e, int err, const char *op, const char *verb, const struct loc *l);
int fs_nomem(kb_err *e, const char *op);
/* Cleanse p[0..n) and free p (NULL is fine): file contents may be private keys. */
void fs_free_secret(void *p, size_t n);
/* Bad paths are the caller's mistake: a plain message, no strerror. */
#define path_err(e, errnum, ...) \
    (kb_err_set(e, "path", __VA_ARGS__), (e) ? (void)((e)->code = (errnum)) : (void)0, -1)
int fs_resolve(const char *p, struct loc *l, kb_err *e);
/* kb_fs_clean_path, but ".." above the root stays at the root, as a link's target does. */
int fs_clean_in_root(const char *p, char *out, size_t n, kb_err *e);
/* Cut the last component of both paths ("/" stays "/"). */
void fs_loc_parent(const struct loc *l, struct loc *p);
const char *fs_basename(const struct loc *l);
int fs_is_below(const char *p, const char *dir); /* is p strictly below dir? */
int fs_is_child(const char *p, const char *dir); /* is p a direct child of dir? */

/* The canonical form of a new root directory (real must hold PATH_MAX bytes; "/" for none) and
 * an O_PATH descriptor of it in *fd (-1 for none), or -1 when it cannot be one. fs_root_set
 * makes it the root (taking fd, closing the old one); kb_fs_set_root (fs.c) does both around
 * flushing the batch and clearing the overlay, which belong to the layers above. */
int fs_root_check(const char *dir, char *real, int *fd, kb_err *e);
void fs_root_set(const char *real, int fd);

#endif
