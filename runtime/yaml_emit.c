/* Block YAML emitter in kubectl's layout (see include/kboot/yaml.h). libyaml's own emitter
 * can be told neither the quoting rule nor this layout. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kboot/yaml.h"
#include "yaml_internal.h"

/* Where a node goes: the top of a document, after "key:", or after "- ". */
enum pos { P_TOP, P_MAPVAL, P_SEQITEM };

struct kb_yaml_frame {
    int seq;
    enum pos pos;   /* where the collection itself went */
    int col;        /* a mapping's key column, a sequence's dash column */
    size_t count;   /* entries (keys) or items so far */
    int want_value; /* mapping: a key was written, its value is due */
};

static int oom(kb_err *e)
{
    kb_err_set(e, "yaml_emit", "not enough memory");
    if (e)
        e->code = ENOMEM;
    return -1;
}

static int misuse(kb_err *e, const char *what)
{
    kb_err_set(e, "yaml_emit", "%s", what);
    if (e)
        e->code = EINVAL;
    return -1;
}

static int reserve(kb_yaml_emitter *em, size_t more, kb_err *e)
{
    if (em->len + more <= em->cap)
        return 0;
    size_t c = em->cap ? em->cap : 256;
    while (c < em->len + more)
        c *= 2;
    char *p = realloc(em->text, c);
    if (!p)
        return oom(e);
    em->text = p;
    em->cap = c;
    return 0;
}

static int put(kb_yaml_emitter *em, const char *s, size_t n, kb_err *e)
{
    if (n == 0)
        return 0;
    if (reserve(em, n, e))
        return -1;
    memcpy(em->text + em->len, s, n);
    em->len += n;
    return 0;
}

static int put_str(kb_yaml_emitter *em, const char *s, kb_err *e) { return put(em, s, strlen(s), e); }

static int spaces(kb_yaml_emitter *em, int n, kb_err *e)
{
    if (n <= 0)
        return 0;
    if (reserve(em, (size_t)n, e))
        return -1;
    memset(em->text + em->len, ' ', (size_t)n);
    em->len += (size_t)n;
    return 0;
}

int kb_yaml_emitter_init(kb_yaml_emitter *em, int indent, kb_err *e)
{
    memset(em, 0, sizeof *em);
    if (indent < 1 || indent > 9)
        return misuse(e, "indent must be 1..9");
    em->indent = indent;
    return 0;
}

void kb_yaml_emitter_free(kb_yaml_emitter *em)
{
    free(em->text);
    free(em->open);
    memset(em, 0, sizeof *em);
}

size_t kb_yaml_emitter_depth(const kb_yaml_emitter *em) { return em->depth; }

static struct kb_yaml_frame *top(kb_yaml_emitter *em) { return em->depth ? &em->open[em->depth - 1] : NULL; }

/* The first child of a collection that is a mapping's value starts on the next line. */
static int child_line(kb_yaml_emitter *em, struct kb_yaml_frame *f, kb_err *e)
{
    if (f->count == 0 && f->pos == P_MAPVAL && put(em, "\n", 1, e))
        return -1;
    /* the first child of a sequence item shares the line of its "- " */
    if (f->count > 0 || f->pos != P_SEQITEM)
        return spaces(em, f->col, e);
    return 0;
}

/* Start a node (not a key): write what comes before it and say where it is. col: for
 * P_MAPVAL its key's column, for P_SEQITEM the column after "- ". */
static int begin(kb_yaml_emitter *em, int *col, enum pos *pos, kb_err *e)
{
    struct kb_yaml_frame *f = top(em);
    if (!f) {
        if (em->docs++ > 0 && put(em, "---\n", 4, e))
            return -1;
        *col = 0, *pos = P_TOP;
        return 0;
    }
    if (f->seq) {
        if (child_line(em, f, e) || put(em, "- ", 2, e))
            return -1;
        f->count++;
        *col = f->col + 2, *pos = P_SEQITEM;
        return 0;
    }
    if (!f->want_value)
        return misuse(e, "a value where a mapping key is due");
    f->want_value = 0;
    *col = f->col, *pos = P_MAPVAL;
    return 0;
}

/* A one-line scalar, already formatted. */
static int scalar(kb_yaml_emitter *em, const char *text, kb_err *e)
{
    int col;
    enum pos pos;
    if (begin(em, &col, &pos, e))
        return -1;
    if (pos == P_MAPVAL && put(em, " ", 1, e))
        return -1;
    return put_str(em, text, e) || put(em, "\n", 1, e) ? -1 : 0;
}

/* ---- collections ------------------------------------------------------------------------ */

static int start(kb_yaml_emitter *em, int seq, kb_err *e)
{
    int col;
    enum pos pos;
    if (begin(em, &col, &pos, e))
        return -1;
    if (em->depth == em->open_cap) {
        size_t c = em->open_cap ? em->open_cap * 2 : 16;
        struct kb_yaml_frame *p = realloc(em->open, c * sizeof *p);
        if (!p)
            return oom(e);
        em->open = p;
        em->open_cap = c;
    }
    /* a mapping's keys go one indent under its key; a sequence stays at its key's column */
    int fcol = seq ? (pos == P_TOP ? 0 : col)
                   : (pos == P_MAPVAL ? col + em->indent : pos == P_SEQITEM ? col : 0);
    em->open[em->depth++] = (struct kb_yaml_frame){ seq, pos, fcol, 0, 0 };
    return 0;
}

static int end(kb_yaml_emitter *em, int seq, kb_err *e)
{
    struct kb_yaml_frame *f = top(em);
    if (!f || f->seq != seq)
        return misuse(e, seq ? "no sequence to end" : "no mapping to end");
    if (f->want_value)
        return misuse(e, "mapping ended after a key without its value");
    struct kb_yaml_frame done = *f;
    em->depth--;
    if (done.count > 0)
        return 0;
    if (done.pos == P_MAPVAL && put(em, " ", 1, e))
        return -1;
    return put_str(em, seq ? "[]\n" : "{}\n", e);
}

int kb_yaml_emit_map_start(kb_yaml_emitter *em, kb_err *e) { return start(em, 0, e); }
int kb_yaml_emit_map_end(kb_yaml_emitter *em, kb_err *e) { return end(em, 0, e); }
int kb_yaml_emit_seq_start(kb_yaml_emitter *em, kb_err *e) { return start(em, 1, e); }
int kb_yaml_emit_seq_end(kb_yaml_emitter *em, kb_err *e) { return end(em, 1, e); }

/* ---- strings ---------------------------------------------------------------------------- */

static int put_single(kb_yaml_emitter *em, const char *s, size_t n, kb_err *e)
{
    if (put(em, "'", 1, e))
        return -1;
    for (const char *q; (q = memchr(s, '\'', n)) != NULL; n -= (size_t)(q + 1 - s), s = q + 1)
        if (put(em, s, (size_t)(q + 1 - s), e) || put(em, "'", 1, e))
            return -1;
    return put(em, s, n, e) || put(em, "'", 1, e) ? -1 : 0;
}

static int put_double(kb_yaml_emitter *em, const char *s, size_t n, kb_err *e)
{
    char esc[12];
    if (put(em, "\"", 1, e))
        return -1;
    for (size_t k = 0; k < n;) {
        uint32_t c;
        int len = kb_yaml_utf8_next((const unsigned char *)s + k, n - k, &c);
        const char *r = NULL;
        switch (c) {
        case '"': r = "\\\""; break;
        case '\\': r = "\\\\"; break;
        case '\n': r = "\\n"; break;
        case '\t': r = "\\t"; break;
        case '\r': r = "\\r"; break;
        case 0: r = "\\0"; break;
        case 0x07: r = "\\a"; break;
        case 0x08: r = "\\b"; break;
        case 0x0B: r = "\\v"; break;
        case 0x0C: r = "\\f"; break;
        case 0x1B: r = "\\e"; break;
        default:
            if (!kb_yaml_printable(c)) {
                snprintf(esc, sizeof esc, c <= 0xFF ? "\\x%02X" : "\\u%04X", (unsigned)c);
                r = esc;
            }
        }
        if (r ? put_str(em, r, e) : put(em, s + k, (size_t)len, e))
            return -1;
        k += (size_t)len;
    }
    return put(em, "\"", 1, e);
}

/* Literal block: "|" clips to one final newline, "|-" strips it, "|+" keeps several (or the only
 * one). Text starting with a space or a newline states its indentation (`|2`), relative to the
 * parent's: the block's own indentation could not be guessed from its first line. */
static int put_literal(kb_yaml_emitter *em, const char *s, size_t n, int col, int hint, kb_err *e)
{
    size_t trail = 0;
    while (trail < n && s[n - 1 - trail] == '\n')
        trail++;
    size_t body = n - trail;
    char head[8];
    int h = 0;
    head[h++] = '|';
    if (s[0] == ' ' || s[0] == '\n')
        head[h++] = (char)('0' + hint);
    if (trail != 1 || body == 0)
        head[h++] = trail == 0 ? '-' : '+';
    head[h++] = '\n';
    if (put(em, head, (size_t)h, e))
        return -1;
    for (size_t k = 0; k < body;) {
        const char *nl = memchr(s + k, '\n', body - k);
        size_t end_ = nl ? (size_t)(nl - s) : body;
        if (end_ > k && (spaces(em, col, e) || put(em, s + k, end_ - k, e)))
            return -1;
        if (put(em, "\n", 1, e))
            return -1;
        k = end_ + 1;
    }
    for (size_t k = body > 0; k < trail; k++)
        if (put(em, "\n", 1, e))
            return -1;
    return 0;
}

static int invalid_utf8(kb_err *e, int key)
{
    kb_err_set(e, "yaml_emit", key ? "invalid UTF-8 in key" : "invalid UTF-8 in string");
    if (e)
        e->code = EILSEQ;
    return -1;
}

/* A string in one of the one-line styles (a key never gets a literal block). */
static int put_inline(kb_yaml_emitter *em, const char *s, size_t n, enum kb_yaml_style st, kb_err *e)
{
    if (st == KB_YAML_PLAIN)
        return put(em, s, n, e);
    if (st == KB_YAML_SINGLE)
        return put_single(em, s, n, e);
    return put_double(em, s, n, e);
}

int kb_yaml_emit_string(kb_yaml_emitter *em, const char *s, size_t n, kb_err *e)
{
    enum kb_yaml_style st = kb_yaml_style(s, n, 0);
    if (st == KB_YAML_INVALID)
        return invalid_utf8(e, 0);
    int col;
    enum pos pos;
    if (begin(em, &col, &pos, e) || (pos == P_MAPVAL && put(em, " ", 1, e)))
        return -1;
    /* a block's content goes one indent under its key, or where a sequence item starts */
    if (st == KB_YAML_LITERAL)
        return pos == P_SEQITEM ? put_literal(em, s, n, col, 2, e)
                                : put_literal(em, s, n, col + em->indent, em->indent, e);
    return put_inline(em, s, n, st, e) || put(em, "\n", 1, e) ? -1 : 0;
}

/* ---- keys ------------------------------------------------------------------------------- */

static struct kb_yaml_frame *key_frame(kb_yaml_emitter *em, kb_err *e)
{
    struct kb_yaml_frame *f = top(em);
    if (!f || f->seq || f->want_value) {
        misuse(e, !f || f->seq ? "a key outside a mapping" : "a key where a value is due");
        return NULL;
    }
    if (child_line(em, f, e))
        return NULL;
    f->count++;
    f->want_value = 1;
    return f;
}

int kb_yaml_emit_key(kb_yaml_emitter *em, const char *s, size_t n, kb_err *e)
{
    enum kb_yaml_style st = kb_yaml_style(s, n, 1);
    if (st == KB_YAML_INVALID)
        return invalid_utf8(e, 1);
    struct kb_yaml_frame *f = key_frame(em, e);
    if (!f)
        return -1;
    size_t at = em->len;
    if (put_inline(em, s, n, st, e))
        return -1;
    if (em->len - at > 1000) { /* readers refuse implicit keys over 1024 characters */
        em->len = at;
        if (put(em, "? ", 2, e) || put_inline(em, s, n, st, e) || put(em, "\n", 1, e) ||
            spaces(em, f->col, e))
            return -1;
    }
    return put(em, ":", 1, e);
}

int kb_yaml_emit_key_int(kb_yaml_emitter *em, int64_t i, kb_err *e)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%" PRId64 ":", i);
    return key_frame(em, e) ? put_str(em, tmp, e) : -1;
}

/* ---- other scalars ---------------------------------------------------------------------- */

int kb_yaml_emit_int(kb_yaml_emitter *em, int64_t i, kb_err *e)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%" PRId64, i);
    return scalar(em, tmp, e);
}

int kb_yaml_emit_float(kb_yaml_emitter *em, double f, kb_err *e)
{
    char tmp[64];
    if (isnan(f))
        return scalar(em, ".nan", e);
    if (isinf(f))
        return scalar(em, f > 0 ? ".inf" : "-.inf", e);
    for (int prec = 15; prec <= 17; prec++) {
        kb_yaml_format_g(tmp, sizeof tmp, prec, f);
        if (kb_yaml_strtod(tmp) == f)
            break;
    }
    /* keep a '.', so that YAML 1.1 readers (which need one) read a float back */
    if (!strchr(tmp, '.')) {
        char *ex = strchr(tmp, 'e');
        size_t at = ex ? (size_t)(ex - tmp) : strlen(tmp);
        memmove(tmp + at + 2, tmp + at, strlen(tmp + at) + 1);
        memcpy(tmp + at, ".0", 2);
    }
    return scalar(em, tmp, e);
}

int kb_yaml_emit_bool(kb_yaml_emitter *em, int b, kb_err *e) { return scalar(em, b ? "true" : "false", e); }

int kb_yaml_emit_null(kb_yaml_emitter *em, kb_err *e) { return scalar(em, "null", e); }
