/* kboot.fs dry run: the overlay of changes a dry run "made" and the record of them. The merged
 * view that reads it is fs_view.c. Contents are cleansed when freed (private keys among them). */
#include "fs_overlay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static struct ov *g_ov;
static size_t g_nov, g_capov;
static kb_fs_op *g_rec;
static size_t g_nrec, g_caprec;

void fs_ov_clear(void)
{
    for (size_t i = 0; i < g_nov; i++) {
        free(g_ov[i].path);
        fs_free_secret(g_ov[i].data, g_ov[i].len);
    }
    g_nov = 0;
}

/* ---- overlay and record ---------------------------------------------------- */

size_t fs_ov_count(void) { return g_nov; }
struct ov *fs_ov_at(size_t i) { return &g_ov[i]; }

struct ov *fs_ov_find(const char *cp)
{
    for (size_t i = 0; i < g_nov; i++)
        if (strcmp(g_ov[i].path, cp) == 0)
            return &g_ov[i];
    return NULL;
}

static void ov_drop_below(const char *cp)
{
    size_t j = 0;
    for (size_t i = 0; i < g_nov; i++) {
        if (fs_is_below(g_ov[i].path, cp)) {
            free(g_ov[i].path);
            fs_free_secret(g_ov[i].data, g_ov[i].len);
        } else {
            g_ov[j++] = g_ov[i];
        }
    }
    g_nov = j;
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
        if (g_nov == g_capov) {
            size_t cap = g_capov ? 2 * g_capov : 16;
            struct ov *nv = realloc(g_ov, cap * sizeof *nv);
            if (!nv) {
                fs_free_secret(copy, len);
                return NULL;
            }
            g_ov = nv;
            g_capov = cap;
        }
        o = &g_ov[g_nov];
        memset(o, 0, sizeof *o);
        if (!(o->path = strdup(cp))) {
            fs_free_secret(copy, len);
            return NULL;
        }
        g_nov++;
    }
    fs_free_secret(o->data, o->len);
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
        free(r->data); /* nothing copied into it yet */
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
        fs_free_secret(g_rec[i].data, g_rec[i].len);
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
    if (!!on == fs_state()->dry)
        return;
    kb_fs_reset_recorded();
    fs_ov_clear();
    fs_state()->dry = !!on;
}

int kb_fs_dry_run(void) { return fs_state()->dry; }

void fs_overlay_free(void)
{
    fs_state()->dry = 0;
    fs_ov_clear();
    kb_fs_reset_recorded();
    free(g_rec);
    free(g_ov);
    g_rec = NULL;
    g_ov = NULL;
    g_caprec = g_capov = 0;
}
