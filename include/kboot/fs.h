/* Files under one root prefix, written atomically, with a dry-run overlay.
 *
 * Every path given to these functions is an absolute "cluster path" such as
 * "/etc/kubernetes/pki/ca.crt"; it is normalised and joined to the root prefix
 * (kb_fs_set_root) to give the host path. Paths whose ".." would climb above the
 * root, relative paths and paths with NUL bytes are rejected (op "path").
 *
 * In dry-run mode nothing on disk changes: changes are recorded (kb_fs_recorded)
 * and kept in an overlay that read/exists/stat/list/readlink consult first, so a
 * later phase of a dry run sees what an earlier phase "wrote". Only changes are
 * recorded: writing identical content, creating an existing directory or removing
 * a missing path records nothing.
 *
 * The state (root, dry-run flag, overlay) is process-global; kboot is single-threaded
 * where it touches files. */
#ifndef KBOOT_FS_H
#define KBOOT_FS_H

#include <stddef.h>

#include "kboot/err.h"

#define KB_FS_PATH_MAX 4096
/* Temp files are ".<name>" KB_FS_TEMP_TAG "XXXXXX" in the target's directory. */
#define KB_FS_TEMP_TAG ".kboot-tmp-"

enum kb_fs_type { KB_FS_NONE = 0, KB_FS_FILE, KB_FS_DIR, KB_FS_LINK, KB_FS_OTHER };

typedef struct kb_fs_info {
    int type;            /* enum kb_fs_type */
    unsigned mode;       /* permission bits (07777) */
    long long size;
    long long mtime;     /* seconds since the epoch */
    unsigned uid, gid;
} kb_fs_info;

typedef struct kb_fs_write_opts {
    int mkdir;           /* create missing parent directories */
    unsigned dir_mode;   /* their mode; 0 means 0755 */
} kb_fs_write_opts;

/* Root prefix. dir must be an existing directory; NULL or "/" resets to no prefix.
 * Changing the root drops the dry-run overlay. */
int kb_fs_set_root(const char *dir, kb_err *e);
const char *kb_fs_root(void); /* "/" when there is no prefix */

/* Normalise a cluster path ("//a/./b/../c/" -> "/a/c") into out. */
int kb_fs_clean_path(const char *p, char *out, size_t n, kb_err *e);
/* Cluster path -> host path (root prefix joined, normalised, no "//"). */
int kb_fs_host_path(const char *p, char *out, size_t n, kb_err *e);

/* Atomic write: temp file in the same directory (O_EXCL, fchmod), write, fsync,
 * rename over path, fsync the directory. On failure the target is untouched and
 * the temp file removed. *changed (may be NULL) is 0 when path already held exactly
 * data with this mode and nothing was done. Leftover temp files of path from an
 * interrupted earlier write are removed. */
int kb_fs_write(const char *path, const void *data, size_t len, unsigned mode,
                const kb_fs_write_opts *o, int *changed, kb_err *e);
/* Whole file into a malloc'd buffer (NUL-terminated, free it); works for /proc files. */
int kb_fs_read(const char *path, char **data, size_t *len, kb_err *e);
/* lstat semantics. A missing path fails with e->code ENOENT. */
int kb_fs_stat(const char *path, kb_fs_info *st, kb_err *e);
int kb_fs_exists(const char *path); /* 1 if anything (even a dangling link) is there */
/* Sorted names in dir, without "." and "..". Free with kb_fs_free_list. */
int kb_fs_list(const char *dir, char ***names, size_t *n, kb_err *e);
void kb_fs_free_list(char **names, size_t n);
/* mkdir -p; new directories get exactly mode. An existing directory is fine. */
int kb_fs_mkdir(const char *path, unsigned mode, kb_err *e);
/* A missing path is success. recursive never follows symlinks and does not descend
 * into another file system (a mount point fails with EXDEV). "/" is refused. */
int kb_fs_remove(const char *path, int recursive, kb_err *e);
int kb_fs_chmod(const char *path, unsigned mode, kb_err *e);
/* Atomic create-or-replace of a symlink (temp name + rename); target stored verbatim. */
int kb_fs_symlink(const char *target, const char *path, int *changed, kb_err *e);
int kb_fs_readlink(const char *path, char **target, kb_err *e); /* malloc'd */
/* Remove leftover temp files in dir; returns how many (dry run: counts, removes none). */
int kb_fs_clean_temps(const char *dir, kb_err *e);

/* Exclusive non-blocking flock on path (created 0600 if missing; o may be NULL).
 * Returns an fd to pass to kb_fs_unlock, or -1: "another kboot holds <path>"
 * (e->code EWOULDBLOCK) or an I/O error. In dry run a missing lock file is not
 * created: the result is then -2, a lock that holds nothing. */
int kb_fs_lock(const char *path, const kb_fs_write_opts *o, kb_err *e);
void kb_fs_unlock(int fd);

/* Dry run. Turning it on or off drops the overlay and the record. */
void kb_fs_set_dry_run(int on);
int kb_fs_dry_run(void);

enum kb_fs_opkind { KB_FS_OP_WRITE, KB_FS_OP_MKDIR, KB_FS_OP_REMOVE, KB_FS_OP_CHMOD, KB_FS_OP_SYMLINK };
typedef struct kb_fs_op {
    int op;              /* enum kb_fs_opkind */
    char *path;          /* cluster path */
    unsigned mode;       /* write, mkdir, chmod */
    char *data;          /* write */
    size_t len;
    char *target;        /* symlink */
    int recursive;       /* remove */
} kb_fs_op;

/* Recorded changes in order; valid until the next fs call. */
const kb_fs_op *kb_fs_recorded(size_t *n);
void kb_fs_reset_recorded(void); /* forget the record; the overlay stays */
const char *kb_fs_op_name(int op);

/* Drop root, dry-run state, overlay and record (frees all memory). */
void kb_fs_reset(void);

#endif
