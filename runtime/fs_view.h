/* kboot.fs merged view (fs_view.c): what a path is, as every reader and mutator sees it: the
 * dry-run overlay over the disk, and a batch's pending writes as if they had landed.
 * Internal to runtime/fs*.c; see fs_path.h for the layers. */
#ifndef KBOOT_FS_VIEW_H
#define KBOOT_FS_VIEW_H

#include <sys/stat.h>

#include "fs_batch.h"
#include "fs_overlay.h"

struct view {
    int type;
    unsigned mode;
    struct ov *ov;  /* set when the answer comes from the overlay */
    struct stat st; /* set when it comes from disk */
};

int fs_type_of(mode_t m);
/* 0 with v->type KB_FS_NONE when nothing is there; -1 (errno) on other lstat errors. */
int fs_view_get(const struct loc *l, struct view *v);

#endif
