/* Files under one root prefix, written atomically, with a dry-run overlay.
 *
 * Every path given to these functions is an absolute "cluster path" such as
 * "/etc/pki/ca.crt"; it is normalised and joined to the root prefix
 * (kb_fs_set_root) to give the host path. Paths whose ".." would climb above the
 * root, relative paths and paths with NUL bytes are rejected (op "path").
 * On disk every path is resolved beneath the root as inside chroot(root): a symlink's
 * absolute target names a path below the root and ".." stops at it, so no link under the
 * root leads a read, write, mkdir, remove or rename outside it (runtime/fs_beneath.c).
 *
 * In dry-run mode nothing on disk changes: changes are recorded (kb_fs_recorded)
 * and kept in an overlay that read/exists/stat/list/readlink consult first, so a
 * later phase of a dry run sees what an earlier phase "wrote". Only changes are
 * recorded: writing identical content, creating an existing directory or removing
 * a missing path records nothing.
 *
 * Group commit (batch): between kb_fs_batch_begin and kb_fs_batch_commit, kb_fs_write
 * leaves each new content complete in its temp file and syncs and renames nothing; the
 * commit makes all temps durable (one syncfs per file system), renames each over its target
 * in order and syncs once more. A crash or kill at any moment leaves every target with its
 * complete old or complete new content (a killed batch: the old one, plus temp files that
 * the next write of the same path removes). See "Batches" below.
 *
 * The state (root, dry-run flag, overlay, batch) is process-global; kboot is single-threaded
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
    unsigned dir_mode;   /* the mode of the file's own directory; 0 means 0755 (those above: 0755) */
} kb_fs_write_opts;

/* Root prefix. dir must be an existing directory; NULL or "/" resets to no prefix.
 * Changing the root drops the dry-run overlay. Pending writes of an open batch are committed
 * first (under the old root); if that fails the root is unchanged. The batch stays open. */
int kb_fs_set_root(const char *dir, kb_err *e);
const char *kb_fs_root(void); /* "/" when there is no prefix */
/* How paths are resolved beneath the root, for diagnostics and tests: "none" (no root),
 * "openat2" (RESOLVE_IN_ROOT) or "walk" (one component at a time: no openat2, or
 * KBOOT_FS_RESOLVE=walk in the environment when the root was set). */
const char *kb_fs_resolver(void);

/* Normalise a cluster path ("//a/./b/../c/" -> "/a/c") into out. */
int kb_fs_clean_path(const char *p, char *out, size_t n, kb_err *e);
/* Cluster path -> host path (root prefix joined, normalised, no "//"). */
int kb_fs_host_path(const char *p, char *out, size_t n, kb_err *e);

/* Atomic write: temp file in the same directory (O_EXCL, fchmod), write, fsync,
 * rename over path, fsync the directory (in a batch: the temp only, see Batches). On failure the target is untouched and
 * the temp file removed. *changed (may be NULL) is 0 when path already held exactly
 * data with this mode and nothing was done. Leftover temp files of path from an
 * interrupted earlier write are removed. */
int kb_fs_write(const char *path, const void *data, size_t len, unsigned mode,
                const kb_fs_write_opts *o, int *changed, kb_err *e);
/* Whole file into a malloc'd buffer (NUL-terminated; free it with kb_fs_free_data, which
 * cleanses it: it may hold a private key); works for /proc files. */
int kb_fs_read(const char *path, char **data, size_t *len, kb_err *e);
/* Cleanse data[0..len] (OPENSSL_cleanse) and free it; NULL is fine. */
void kb_fs_free_data(char *data, size_t len);
/* lstat semantics. A missing path fails with e->code ENOENT. */
int kb_fs_stat(const char *path, kb_fs_info *st, kb_err *e);
int kb_fs_exists(const char *path); /* 1 if anything (even a dangling link) is there */
/* Sorted names in dir, without "." and "..". Free with kb_fs_free_list. */
int kb_fs_list(const char *dir, char ***names, size_t *n, kb_err *e);
void kb_fs_free_list(char **names, size_t n);
/* mkdir -p; path gets exactly mode, its missing parents 0755. An existing directory is fine. Each new
 * directory's entry is fsynced in its parent (in a batch: by the commit's sync instead). */
int kb_fs_mkdir(const char *path, unsigned mode, kb_err *e);
/* A missing path is success. recursive never follows symlinks and does not descend
 * into another file system (a mount point fails with EXDEV). "/" is refused. */
int kb_fs_remove(const char *path, int recursive, kb_err *e);
int kb_fs_chmod(const char *path, unsigned mode, kb_err *e);
/* Atomic create-or-replace of a symlink (temp name + rename); target stored verbatim. */
int kb_fs_symlink(const char *target, const char *path, int *changed, kb_err *e);
int kb_fs_readlink(const char *path, char **target, kb_err *e); /* malloc'd */
/* umount2(2) of the mount point at path (root-prefixed), always with UMOUNT_NOFOLLOW, so a
 * symlink at path is never followed to whatever it names; flags adds KB_FS_UMOUNT_FORCE,
 * _DETACH, _EXPIRE. In dry run nothing is unmounted (0 returned): the caller says what it
 * would do. Errors: EINVAL (not a mount point, or a symlink), EBUSY, EPERM, ... */
enum { KB_FS_UMOUNT_FORCE = 1, KB_FS_UMOUNT_DETACH = 2, KB_FS_UMOUNT_EXPIRE = 4 };
int kb_fs_unmount(const char *path, int flags, kb_err *e);
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

/* Drop root, dry-run state, overlay and record (frees all memory). An open batch is
 * discarded: its temp files are removed and its targets keep their old content. */
void kb_fs_reset(void);

/* ---- Batches (group commit) ----
 * While a batch is open (and this is no dry run; in a dry run batching changes nothing):
 * - kb_fs_write writes the temp file (O_EXCL, fchmod, all of data) and records it; no fsync,
 *   no rename. Missing parents (mkdir option) and kb_fs_mkdir are created at once but not
 *   synced; the commit's sync covers them.
 * - kboot's own reads see pending writes as if they had landed: read, stat, exists, list (the
 *   new names, not the temps), readlink (EINVAL: a file), and the "unchanged" check of a later
 *   write. A second write of a pending path replaces its temp. Other processes see nothing
 *   until the commit, so commit before running anything that reads these files. A read
 *   through a symlink to a pending path (or a directory link above it) sees the disk.
 * - kb_fs_remove, kb_fs_chmod, kb_fs_symlink and kb_fs_clean_temps commit the pending writes
 *   first (kb_fs_batch_flush; its error is theirs) and then work unbatched; the batch stays
 *   open. kb_fs_remove of a missing path and an unchanged kb_fs_symlink commit nothing.
 * - kb_fs_set_dry_run leaves the batch alone: a dry run shows pending writes as disk content.
 * - exit without commit (or a kill): targets keep their old content; temp files are left
 *   for the next write of the same path (or kb_fs_clean_temps) to remove. */

/* Open a batch; nestable (a depth counter). */
void kb_fs_batch_begin(void);
/* Close one level; the outermost commits (kb_fs_batch_flush). -1 with e->code EINVAL when no
 * batch is open. After a failed commit the batch is closed and nothing is pending. */
int kb_fs_batch_commit(kb_err *e);
/* Commit every pending write now, whatever the depth; the batch stays open. One syncfs per
 * file system (fsync per temp and directory where syncfs fails with ENOSYS/EINVAL), rename
 * each temp in order, one syncfs again. A sync failure before the renames: nothing renamed,
 * temps removed. A rename failure: stop there; e names the path; earlier targets keep their
 * new content, the remaining temps are removed. Nothing pending: 0 at no cost. */
int kb_fs_batch_flush(kb_err *e);
/* Commit and close every level (the host calls it when the script ends). */
int kb_fs_batch_close(kb_err *e);
/* Drop every pending write (temps removed, targets untouched) and close every level. */
void kb_fs_batch_discard(void);
/* Take back the directories made while the batch is open (kb_fs_mkdir, the mkdir option,
 * kb_fs_lock's) that are empty now, newest first; for a run that failed. Returns how many were
 * removed; the batch stays open and forgets them all. Directories that were already there, or
 * that hold anything (a pending temp too), stay. */
size_t kb_fs_batch_prune(void);
size_t kb_fs_batch_pending(void); /* pending writes (0 outside a batch) */
int kb_fs_batch_depth(void);      /* 0 when no batch is open */

#endif
