/* kboot.fs group commit (fs_batch.c): writes made while a batch is open wait in complete temp
 * files until the commit. Internal to runtime/fs*.c; see fs_path.h for the layers. */
#ifndef KBOOT_FS_BATCH_H
#define KBOOT_FS_BATCH_H

#include <stddef.h>

#include "fs_beneath.h"

int fs_batching(void); /* a batch is open and this is no dry run */
/* How many directories kb_fs_batch_prune has removed in this process (fs_ops.c drops its
 * per-directory scans when that changes: an inode may come back as another directory). */
unsigned fs_pruned_dirs(void);
/* Open what l holds now, beneath the root (fs_open_beneath's flags): a pending write's temp,
 * or l itself. -1 (errno). */
int fs_open_of(const struct loc *l, int flags);
/* Record (or, for a pending path, replace) the write of l whose complete content is in
 * tmpname in directory dfd (l's parent). -1 (errno) when out of memory or fds; nothing
 * recorded then. */
int fs_pend_put(const struct loc *l, int dfd, const char *tmpname);
size_t fs_pend_count(void);
const char *fs_pend_path(size_t i);                        /* cluster path of pending write i */
int fs_pend_is_temp(const char *dir_cp, const char *name); /* is name in dir a pending temp? */
/* A directory entry was made in dfd (cluster path cp) and not synced: the commit syncs it. */
int fs_batch_defer_dir(int dfd, const char *cp);
/* Directory cp was made in the batch (kb_fs_batch_prune's list). -1 (ENOMEM): not noted. */
int fs_batch_made_dir(const char *cp);
void fs_batch_free(void);

#endif
