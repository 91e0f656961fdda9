/* kboot.fs dry run (fs_overlay.c): the overlay of changes a dry run "made" and the record of
 * them. Internal to runtime/fs*.c; see fs_path.h for the layers. */
#ifndef KBOOT_FS_OVERLAY_H
#define KBOOT_FS_OVERLAY_H

#include <stddef.h>

#include "fs_path.h"

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

struct ov *fs_ov_find(const char *cp);
/* Set the entry for cp; data is copied. Returns the entry or NULL (no memory). The pointer
 * stays valid until the next fs_ov_put or fs_ov_clear. */
struct ov *fs_ov_put(const char *cp, int kind, int opaque, unsigned mode, const void *data, size_t len);
size_t fs_ov_count(void);
struct ov *fs_ov_at(size_t i); /* entries 0 .. fs_ov_count()-1, in no particular order */
void fs_ov_clear(void);
int fs_record(int op, const char *cp, unsigned mode, const void *data, size_t len, const char *target,
              int recursive);
void fs_overlay_free(void); /* dry run off, overlay and record freed */

#endif
