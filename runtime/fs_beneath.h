/* kboot.fs: opening a cluster path beneath the root (fs_beneath.c), as open(2) would inside
 * chroot(root): symlinks are followed, but an absolute target starts again at the root and ".."
 * never climbs above it, so nothing under --root leads outside it. Internal to runtime/fs*.c;
 * see fs_path.h for the layers. */
#ifndef KBOOT_FS_BENEATH_H
#define KBOOT_FS_BENEATH_H

#include "fs_path.h"

/* Open cluster path cp (absolute, normalised) beneath the root with open(2)'s flags and mode;
 * O_NOFOLLOW concerns the last component only, as for open(2). O_CLOEXEC is always added.
 * Magic links (/proc/PID/fd/N and the like) are refused with ELOOP. Without a root it is
 * open(cp, ...). -1 with errno. */
int fs_open_beneath(const char *cp, int flags, unsigned mode);
/* The directory holding cp's last component, opened O_RDONLY|O_DIRECTORY beneath the root (links
 * in it followed as above), for the *at() calls on that component; for "/", the root itself. */
int fs_open_dir_of(const char *cp);

enum { FS_RESOLVE_NONE = 1, FS_RESOLVE_OPENAT2, FS_RESOLVE_WALK };
/* How paths are resolved under the current root: no root (plain paths), openat2(2) with
 * RESOLVE_IN_ROOT, or the walk, one component at a time (kernels before 5.6, seccomp filters that
 * refuse openat2, or KBOOT_FS_RESOLVE=walk in the environment when the root is set). */
int fs_resolver(void);

#endif
