/* YAML primitives: typing a plain scalar, choosing how a string must be written so that it
 * reads back as the same string, and a block-style emitter in kubectl's layout.
 *
 * Parsing is libyaml's; what is here is what libyaml cannot be told. Readers differ: Go's
 * sigs.k8s.io/yaml (what the API machinery decodes with) types plain scalars by the YAML 1.2
 * core schema, while YAML 1.1 readers (Go yaml.v2, PyYAML) also take yes/no/on/off, 0b1010,
 * 1:30 or 2024-01-31 for non-strings. kb_yaml_resolve answers the first question; the style
 * chosen for output keeps a string a string under both. */
#ifndef KBOOT_YAML_H
#define KBOOT_YAML_H

#include <stddef.h>
#include <stdint.h>

#include "kboot/err.h"

/* ---- scalars (runtime/yaml_scalar.c) ---------------------------------------------------- */

enum kb_yaml_kind { KB_YAML_STR, KB_YAML_NULL, KB_YAML_BOOL, KB_YAML_INT, KB_YAML_FLOAT };

struct kb_yaml_scalar {
    enum kb_yaml_kind kind;
    int b;        /* KB_YAML_BOOL */
    int64_t i;    /* KB_YAML_INT */
    double f;     /* KB_YAML_FLOAT */
    int overflow; /* KB_YAML_FLOAT from an integer literal too big for int64 (Go does the same) */
};

/* Type the plain (unquoted, untagged) scalar s[0..n) by the YAML 1.2 core schema: "" and
 * ~/null/Null/NULL are null; true/false in three spellings are bools; decimal, 0x and 0o
 * integers, with a sign for decimal; floats including .inf, -.Inf and .nan; anything else,
 * yes/on/y included, a string. s[n] must not continue the text (a NUL, as libyaml and Lua
 * strings have, is right): decimal floats are converted by strtod, in the C locale. */
void kb_yaml_resolve(const char *s, size_t n, struct kb_yaml_scalar *out);

/* 1 when a YAML 1.1 reader would take the plain text s[0..n) for anything but a string:
 * y/n/yes/no/on/off (three spellings), "=" and "<<", 0b/0x/0o integers, digits with '_',
 * sexagesimal numbers (1:30), floats and timestamps starting with a 4-digit year. */
int kb_yaml_11_typed(const char *s, size_t n);

enum kb_yaml_style {
    KB_YAML_PLAIN,   /* as is */
    KB_YAML_SINGLE,  /* 'it''s': only an indicator or an edge space forbids plain */
    KB_YAML_DOUBLE,  /* "6443", "a\tb": would re-type, or holds something to escape */
    KB_YAML_LITERAL, /* |, |-, |+: multi-line text a block can hold */
    KB_YAML_INVALID, /* not UTF-8: YAML cannot hold it */
};

/* The style Go's yaml (kubectl) writes the string s[0..n) in, quoting a little more than Go so
 * that YAML 1.1 readers read the same string (see kb_yaml_11_typed; also a leading '?' or ':').
 * A key (key = 1) is never a literal block. */
enum kb_yaml_style kb_yaml_style(const char *s, size_t n, int key);

/* ---- emitter (runtime/yaml_emit.c) ------------------------------------------------------ */

/* Block YAML written as a stream of nodes: scalars, and mappings and sequences opened and
 * closed around their children. Inside a mapping, each value is preceded by a key. Every
 * top-level node is one document; a document after the first is preceded by "---\n".
 * The layout is kubectl's: a mapping's children one indent deeper than its key, a sequence
 * under a key at the key's column, "- " items, {} and [] for empty collections.
 *
 * Functions returning int give 0, or -1 with e filled: e->code is ENOMEM when memory ran out,
 * EILSEQ for a string or key that is not UTF-8, EINVAL for a node where it cannot go (a value
 * where a key is due, a close that does not match). After a failure the text is incomplete;
 * only kb_yaml_emitter_free is left to call. */

struct kb_yaml_frame; /* one open collection, private */

typedef struct kb_yaml_emitter {
    char *text; /* the output so far, text[0..len), not NUL-terminated; owned by the emitter */
    size_t len;
    /* private */
    size_t cap;
    int indent;
    int docs;
    struct kb_yaml_frame *open;
    size_t depth, open_cap;
} kb_yaml_emitter;

/* indent: spaces per level, 1..9 (kubectl writes 2). */
int kb_yaml_emitter_init(kb_yaml_emitter *em, int indent, kb_err *e);
void kb_yaml_emitter_free(kb_yaml_emitter *em);
/* Collections open (depth + 1) or closed; 0 when the emitter is between documents. */
size_t kb_yaml_emitter_depth(const kb_yaml_emitter *em);

int kb_yaml_emit_map_start(kb_yaml_emitter *em, kb_err *e);
int kb_yaml_emit_map_end(kb_yaml_emitter *em, kb_err *e);
int kb_yaml_emit_seq_start(kb_yaml_emitter *em, kb_err *e);
int kb_yaml_emit_seq_end(kb_yaml_emitter *em, kb_err *e);

/* The key of the next mapping entry: a string (quoted as kb_yaml_style says; one longer than
 * 1000 bytes written as an explicit "? key", since readers refuse longer implicit keys) or an
 * integer. */
int kb_yaml_emit_key(kb_yaml_emitter *em, const char *s, size_t n, kb_err *e);
int kb_yaml_emit_key_int(kb_yaml_emitter *em, int64_t i, kb_err *e);

int kb_yaml_emit_string(kb_yaml_emitter *em, const char *s, size_t n, kb_err *e);
int kb_yaml_emit_int(kb_yaml_emitter *em, int64_t i, kb_err *e);
/* The shortest of %.15g..%.17g that reads back as f, always with a '.' (1.0, 1.0e+20) so that
 * YAML 1.1 readers see a float; .inf, -.inf, .nan. */
int kb_yaml_emit_float(kb_yaml_emitter *em, double f, kb_err *e);
int kb_yaml_emit_bool(kb_yaml_emitter *em, int b, kb_err *e);
int kb_yaml_emit_null(kb_yaml_emitter *em, kb_err *e);

#endif
