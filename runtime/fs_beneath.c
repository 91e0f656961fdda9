/* kboot.fs: opening cluster paths beneath the root, so that a symlink planted under --root
 * (absolute, or with more ".." than the root is deep, or in a parent directory) can never make
 * kboot read, write, create or remove anything outside it. Links keep working; they resolve
 * as they would inside chroot(root).
 *
 * With openat2(2) (Linux 5.6) the kernel does it: RESOLVE_IN_ROOT treats the root's descriptor
 * as "/" for the whole lookup, absolute links and ".." included, and fails with EAGAIN rather
 * than be raced out of it (retried here). Where openat2 is missing (ENOSYS: an old kernel, or
 * valgrind) or a seccomp filter refuses it (EPERM: some container runtimes), the walk does the
 * same one component at a time: each component is opened with O_NOFOLLOW relative to the
 * directory before it; a symlink is read (readlinkat) and its target put in front of the rest
 * of the path, an absolute target starting again at the root; ".." goes back along the
 * components already walked (opened again from the root), never above the root. Which one is
 * probed once per root: one openat2 of the root itself. */
#define _GNU_SOURCE
#include "fs_beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif
#endif
#ifndef RESOLVE_IN_ROOT
struct open_how {
    unsigned long long flags, mode, resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_IN_ROOT 0x10
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define MAX_LINKS 40    /* the kernel's MAXSYMLINKS */
#define EAGAIN_TRIES 16 /* openat2 saw a rename or mount race; each try is a fresh lookup */

static int sys_openat2(int dfd, const char *path, int flags, unsigned mode)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.mode = flags & O_CREAT ? mode : 0; /* openat2 refuses a mode without O_CREAT */
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dfd, path, &how, sizeof how);
}

int fs_resolver(void)
{
    struct fs_state *s = fs_state();
    if (s->rootfd < 0)
        return FS_RESOLVE_NONE;
    if (s->resolver)
        return s->resolver;
    const char *env = getenv("KBOOT_FS_RESOLVE");
    if (env && strcmp(env, "walk") == 0)
        return s->resolver = FS_RESOLVE_WALK;
    int fd = sys_openat2(s->rootfd, ".", O_PATH | O_DIRECTORY, 0);
    if (fd >= 0) {
        close(fd);
        return s->resolver = FS_RESOLVE_OPENAT2;
    }
    if (errno == ENOSYS || errno == EPERM || errno == E2BIG || errno == EINVAL)
        return s->resolver = FS_RESOLVE_WALK;
    return FS_RESOLVE_WALK; /* out of descriptors, say: walk this time, probe again next time */
}

/* ---- the walk -------------------------------------------------------------- */

/* The directory reached so far: cur (rootfd, or an O_PATH descriptor owned here) and its path
 * below the root (at: "/a/b", "" for the root), which ".." shortens instead of trusting the
 * disk's "..". */
struct walk {
    int rootfd, cur;
    char at[KB_FS_PATH_MAX];
    size_t len;
};

static void w_set(struct walk *w, int fd)
{
    if (w->cur != w->rootfd)
        close(w->cur);
    w->cur = fd;
}

static int w_down(struct walk *w, const char *name, int fd)
{
    size_t n = strlen(name);
    if (w->len + 1 + n + 1 > sizeof w->at) {
        close(fd);
        return errno = ENAMETOOLONG, -1;
    }
    w->at[w->len++] = '/';
    memcpy(w->at + w->len, name, n + 1);
    w->len += n;
    w_set(w, fd);
    return 0;
}

/* "..": drop the last component and open the rest again from the root (all directories, no
 * links: what the walk found them to be; a change since fails with ENOTDIR or ELOOP). */
static int w_up(struct walk *w)
{
    char name[NAME_MAX + 1];
    if (w->len == 0) /* ".." of the root is the root */
        return 0;
    while (w->at[w->len - 1] != '/')
        w->len--;
    w->at[--w->len] = '\0';
    w_set(w, w->rootfd);
    for (const char *s = w->at; *s;) {
        const char *c = ++s; /* past the '/' */
        while (*s && *s != '/')
            s++;
        memcpy(name, c, (size_t)(s - c));
        name[s - c] = '\0';
        int fd = openat(w->cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return -1;
        w_set(w, fd);
    }
    return 0;
}

static int walk(int rootfd, const char *cp, int flags, unsigned mode)
{
    struct walk w = { .rootfd = rootfd, .cur = rootfd };
    char rem[2 * KB_FS_PATH_MAX], name[NAME_MAX + 1], target[KB_FS_PATH_MAX];
    int links = 0, fd = -1, err = 0;
    size_t n = strlen(cp);
    if (n >= sizeof rem)
        return errno = ENAMETOOLONG, -1;
    memcpy(rem, cp, n + 1);
    flags |= O_CLOEXEC;
    for (char *s = rem;;) {
        while (*s == '/')
            s++;
        const char *c = s;
        while (*s && *s != '/')
            s++;
        size_t len = (size_t)(s - c);
        while (*s == '/')
            s++;
        int last = *s == '\0';
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) {
            if (len == 2 && w_up(&w) != 0) {
                err = errno;
                break;
            }
            if (!last)
                continue;
            if ((fd = openat(w.cur, ".", flags, mode)) < 0) /* the path ends at a directory */
                err = errno;
            break;
        }
        if (len > NAME_MAX) {
            err = ENAMETOOLONG;
            break;
        }
        memcpy(name, c, len);
        name[len] = '\0';
        if (last && (flags & O_NOFOLLOW)) {
            if ((fd = openat(w.cur, name, flags, mode)) < 0)
                err = errno;
            break;
        }
        fd = last ? openat(w.cur, name, flags | O_NOFOLLOW, mode)
                  : openat(w.cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && last && (flags & O_PATH) && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
            close(fd); /* O_PATH|O_NOFOLLOW opened the link itself: follow it */
            fd = -1;
            errno = ELOOP;
        }
        if (fd >= 0) {
            if (last)
                break;
            if (w_down(&w, name, fd) != 0) {
                err = errno;
                fd = -1;
                break;
            }
            continue;
        }
        /* ELOOP (a link where O_NOFOLLOW stopped) or ENOTDIR (a link, or no directory) */
        err = errno;
        if (err != ELOOP && err != ENOTDIR)
            break;
        ssize_t t = readlinkat(w.cur, name, target, sizeof target);
        if (t < 0) {
            if (errno != EINVAL) /* EINVAL: no link, so the open's error stands */
                err = errno;
            break;
        }
        if ((size_t)t >= sizeof target) {
            err = ENAMETOOLONG;
            break;
        }
        if (t == 0) {
            err = ENOENT;
            break;
        }
        if (++links > MAX_LINKS) {
            err = ELOOP;
            break;
        }
        /* rem = target "/" rest: the link's target replaces the link */
        size_t rest = strlen(s);
        if ((size_t)t + 1 + rest + 1 > sizeof rem) {
            err = ENAMETOOLONG;
            break;
        }
        memmove(rem + t + 1, s, rest + 1);
        memcpy(rem, target, (size_t)t);
        rem[t] = '/';
        s = rem;
        if (target[0] == '/') { /* absolute: from the root again */
            w.len = 0;
            w.at[0] = '\0';
            w_set(&w, rootfd);
        }
    }
    w_set(&w, rootfd);
    if (fd < 0)
        errno = err;
    return fd;
}

/* ---- entry points ---------------------------------------------------------- */

int fs_open_beneath(const char *cp, int flags, unsigned mode)
{
    struct fs_state *s = fs_state();
    switch (fs_resolver()) {
    case FS_RESOLVE_NONE:
        return open(cp, flags | O_CLOEXEC, mode);
    case FS_RESOLVE_OPENAT2:
        for (int i = 0; i < EAGAIN_TRIES; i++) {
            int fd = sys_openat2(s->rootfd, cp, flags, mode);
            if (fd >= 0 || errno != EAGAIN)
                return fd;
        }
        break; /* raced every time: the walk is confined too, whatever moves meanwhile */
    }
    return walk(s->rootfd, cp, flags, mode);
}

int fs_open_dir_of(const char *cp)
{
    char dir[KB_FS_PATH_MAX];
    const char *s = strrchr(cp, '/');
    size_t n = s && s != cp ? (size_t)(s - cp) : 1;
    if (n >= sizeof dir)
        return errno = ENAMETOOLONG, -1;
    memcpy(dir, cp, n);
    dir[n] = '\0';
    return fs_open_beneath(dir, O_RDONLY | O_DIRECTORY, 0);
}

const char *kb_fs_resolver(void)
{
    switch (fs_resolver()) {
    case FS_RESOLVE_NONE: return "none";
    case FS_RESOLVE_OPENAT2: return "openat2";
    default: return "walk";
    }
}
