/* kboot.fs merged view: the dry-run overlay over the disk, where a batch's pending writes read
 * from their temps. */
#define _GNU_SOURCE /* O_PATH */
#include "fs_view.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_type_of(mode_t m)
{
    return S_ISREG(m) ? KB_FS_FILE : S_ISDIR(m) ? KB_FS_DIR : S_ISLNK(m) ? KB_FS_LINK : KB_FS_OTHER;
}

int fs_view_get(const struct loc *l, struct view *v)
{
    memset(v, 0, sizeof *v);
    if (fs_state()->dry) {
        if ((v->ov = fs_ov_find(l->cp))) {
            v->type = v->ov->kind;
            v->mode = v->ov->mode;
            return 0;
        }
        /* The deepest touched ancestor decides whether the disk shows through. */
        char a[KB_FS_PATH_MAX];
        strcpy(a, l->cp);
        while (strcmp(a, "/") != 0) {
            char *s = strrchr(a, '/');
            s[s == a ? 1 : 0] = '\0';
            struct ov *o = fs_ov_find(a);
            if (o) {
                if (o->kind == KB_FS_DIR && !o->opaque)
                    break;
                return 0;
            }
        }
    }
    /* lstat beneath the root (a pending write of a batch: its temp) */
    int fd = fs_open_of(l, O_PATH | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    int rc = fstat(fd, &v->st), err = errno;
    close(fd);
    if (rc != 0)
        return errno = err, -1;
    v->type = fs_type_of(v->st.st_mode);
    v->mode = v->st.st_mode & 07777;
    return 0;
}
