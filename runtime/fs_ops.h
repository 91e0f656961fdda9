/* kboot.fs: helpers the operations in fs.c and fs_read.c share (fs_ops.c): whole-file I/O,
 * temp names, mkdir -p and parent checks over the merged view. Internal to runtime/fs*.c; see
 * fs_path.h for the layers. */
#ifndef KBOOT_FS_OPS_H
#define KBOOT_FS_OPS_H

#include <stddef.h>

#include "fs_view.h"

/* Whole content of fd into a malloc'd NUL-terminated buffer; -1 (errno) on failure. */
int fs_read_fd(int fd, char **data, size_t *len);
int fs_write_all(int fd, const char *p, size_t n);
int fs_same_content(const struct loc *l, const char *data, size_t len); /* does file l hold data? */
/* Temp names: ".<base>.kboot-tmp-XXXXXX" so leftovers are recognisable. */
void fs_temp_name(char *out, size_t n, const char *base);
/* Remove temps in directory dfd (of base, or all when base is NULL) except keep; count them. */
int fs_clean_temps_at(int dfd, const char *base, const char *keep, int remove);
/* The same for a write of base into dfd, from a scan made once per directory per process (the
 * first write into it): leftovers of a killed run go with the next write of their file, without
 * every write reading the whole directory. fs_stale_forget drops what the scans found (a new root,
 * a reset, a directory removed, here or by kb_fs_batch_prune: its inode may come back as another
 * directory). */
int fs_clean_stale_temps(int dfd, const char *base, const char *keep);
void fs_stale_forget(void);
int fs_readlink_of(const struct loc *l, char **target); /* malloc'd target; -1 (errno) */

unsigned fs_dir_mode_of(const kb_fs_write_opts *o);
/* mkdir -p of l beneath the root (a link on the way is followed, inside the root): l gets mode,
 * missing parents 0755; *created set when anything was (or, in dry run, would be) made. */
int fs_mkdir_p(const struct loc *l, unsigned mode, int *created, kb_err *e);
/* Check the parent of l (creating it when asked); in real mode return its fd, opened beneath
 * the root. */
int fs_open_parent(const struct loc *l, const kb_fs_write_opts *o, const char *op, const char *verb,
                   int *dfd, kb_err *e);

#endif
