/* kboot.fs dry run: the overlay of changes a dry run "made", the record of them, and the merged
 * view (overlay over disk) every reader and mutator consults. */
#include "fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int fs_g_dry;
struct ov *fs_g_ov;
size_t fs_g_nov;
static size_t g_capov;
static kb_fs_op *g_rec;
static size_t g_nrec, g_caprec;

void fs_ov_clear(void)
{
    for (size_t i = 0; i < fs_g_nov; i++) {
        free(fs_g_ov[i].path);
        free(fs_g_ov[i].data);
    }
    fs_g_nov = 0;
}

/* ---- overlay and record ---------------------------------------------------- */

struct ov *fs_ov_find(const char *cp)
{
    for (size_t i = 0; i < fs_g_nov; i++)
        if (strcmp(fs_g_ov[i].path, cp) == 0)
            return &fs_g_ov[i];
    return NULL;
}

static int is_below(const char *p, const char *dir)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return p[1] != '\0';
    return strncmp(p, dir, n) == 0 && p[n] == '/';
}

/* Is p a direct child of dir? */
int fs_is_child(const char *p, const char *dir)
{
    return is_below(p, dir) && strrchr(p, '/') == p + (strcmp(dir, "/") == 0 ? 0 : strlen(dir));
}

static void ov_drop_below(const char *cp)
{
    size_t j = 0;
    for (size_t i = 0; i < fs_g_nov; i++) {
        if (is_below(fs_g_ov[i].path, cp)) {
            free(fs_g_ov[i].path);
            free(fs_g_ov[i].data);
        } else {
            fs_g_ov[j++] = fs_g_ov[i];
        }
    }
    fs_g_nov = j;
}

/* Set the entry for cp; data is copied. Returns the entry or NULL (no memory). */
struct ov *fs_ov_put(const char *cp, int kind, int opaque, unsigned mode, const void *data, size_t len)
{
    char *copy = NULL;
    if (data) {
        if (!(copy = malloc(len + 1)))
            return NULL;
        memcpy(copy, data, len);
        copy[len] = '\0';
    }
    if (kind != KB_FS_DIR)
        ov_drop_below(cp);
    struct ov *o = fs_ov_find(cp);
    if (!o) {
        if (fs_g_nov == g_capov) {
            size_t cap = g_capov ? 2 * g_capov : 16;
            struct ov *nv = realloc(fs_g_ov, cap * sizeof *nv);
            if (!nv) {
                free(copy);
                return NULL;
            }
            fs_g_ov = nv;
            g_capov = cap;
        }
        o = &fs_g_ov[fs_g_nov];
        memset(o, 0, sizeof *o);
        if (!(o->path = strdup(cp))) {
            free(copy);
            return NULL;
        }
        fs_g_nov++;
    }
    free(o->data);
    o->kind = kind;
    o->opaque = opaque;
    o->mode = mode;
    o->data = copy;
    o->len = len;
    o->mtime = (long long)time(NULL);
    return o;
}

int fs_record(int op, const char *cp, unsigned mode, const void *data, size_t len, const char *target,
                  int recursive)
{
    if (g_nrec == g_caprec) {
        size_t cap = g_caprec ? 2 * g_caprec : 16;
        kb_fs_op *nr = realloc(g_rec, cap * sizeof *nr);
        if (!nr)
            return -1;
        g_rec = nr;
        g_caprec = cap;
    }
    kb_fs_op *r = &g_rec[g_nrec];
    memset(r, 0, sizeof *r);
    r->op = op;
    r->mode = mode;
    r->recursive = recursive;
    r->len = len;
    r->path = strdup(cp);
    r->data = data ? malloc(len + 1) : NULL;
    r->target = target ? strdup(target) : NULL;
    if (!r->path || (data && !r->data) || (target && !r->target)) {
        free(r->path);
        free(r->data);
        free(r->target);
        return -1;
    }
    if (data) {
        memcpy(r->data, data, len);
        r->data[len] = '\0';
    }
    g_nrec++;
    return 0;
}

const kb_fs_op *kb_fs_recorded(size_t *n)
{
    *n = g_nrec;
    return g_rec;
}

void kb_fs_reset_recorded(void)
{
    for (size_t i = 0; i < g_nrec; i++) {
        free(g_rec[i].path);
        free(g_rec[i].data);
        free(g_rec[i].target);
    }
    g_nrec = 0;
}

const char *kb_fs_op_name(int op)
{
    static const char *const names[] = { "write", "mkdir", "remove", "chmod", "symlink" };
    return op >= 0 && op <= KB_FS_OP_SYMLINK ? names[op] : "?";
}

void kb_fs_set_dry_run(int on)
{
    if (!!on == fs_g_dry)
        return;
    kb_fs_reset_recorded();
    fs_ov_clear();
    fs_g_dry = !!on;
}

int kb_fs_dry_run(void) { return fs_g_dry; }

void fs_overlay_free(void)
{
    fs_g_dry = 0;
    fs_ov_clear();
    kb_fs_reset_recorded();
    free(g_rec);
    free(fs_g_ov);
    g_rec = NULL;
    fs_g_ov = NULL;
    g_caprec = g_capov = 0;
}


/* ---- the merged view (disk, or overlay over disk in dry run) ---------------- */

int fs_type_of(mode_t m)
{
    return S_ISREG(m) ? KB_FS_FILE : S_ISDIR(m) ? KB_FS_DIR : S_ISLNK(m) ? KB_FS_LINK : KB_FS_OTHER;
}

int fs_view_get(const struct loc *l, struct view *v)
{
    memset(v, 0, sizeof *v);
    if (fs_g_dry) {
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
    if (lstat(fs_host_of(l), &v->st) != 0) /* a pending write of a batch: its temp */
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    v->type = fs_type_of(v->st.st_mode);
    v->mode = v->st.st_mode & 07777;
    return 0;
}
