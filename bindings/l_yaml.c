/* kboot.yaml: YAML <-> Lua values.
 *
 * Decoding builds tables straight from libyaml's parser events (no intermediate tree), typing
 * plain scalars by the YAML 1.2 core schema as sigs.k8s.io/yaml readers expect. Encoding is a
 * small block-style emitter of our own: what matters is the quoting rule (a string must never
 * re-read as a number, bool or null under a YAML 1.1 or 1.2 reader) and kubectl's layout, and
 * libyaml's emitter can be told neither. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common.h"

#define DEC_MT "kboot.yaml.parser"
#define ENC_MT "kboot.yaml.buffer"
#define MAX_DEPTH 1000
#define MAX_NODES 1000000 /* after alias expansion: stops "billion laughs" */

/* Upvalues shared by the module functions. */
#define UV_ARRAY_MT lua_upvalueindex(1)
#define UV_MAP_MT lua_upvalueindex(2)

/* ------------------------------------------------------------------------------------------ */
/* Scalar resolution, shared by the decoder (typing) and the encoder (must this be quoted?). */

enum kind { K_STR, K_NULL, K_BOOL, K_INT, K_FLOAT };

struct scalar {
    enum kind kind;
    int b;
    lua_Integer i;
    double f;
    int f_from_text; /* K_FLOAT whose value the caller converts from the text */
    int overflow;    /* K_FLOAT from an integer too big for int64 */
};

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_oct(int c) { return c >= '0' && c <= '7'; }
static int hexval(int c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

static int word_in(const char *s, size_t n, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == n && memcmp(s, *words, n) == 0)
            return 1;
    return 0;
}

static const char *const core_null[] = { "~", "null", "Null", "NULL", NULL };
static const char *const core_true[] = { "true", "True", "TRUE", NULL };
static const char *const core_false[] = { "false", "False", "FALSE", NULL };

/* Digits s[0..n) in base 8, 10 or 16: an integer if it fits int64, else a float (as Go does). */
static void parse_digits(const char *s, size_t n, int base, int neg, struct scalar *out)
{
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    double d = 0;
    int over = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned dig = (unsigned)hexval((unsigned char)s[k]);
        d = d * base + dig;
        if (!over && v > (lim - dig) / (unsigned)base)
            over = 1;
        else if (!over)
            v = v * (unsigned)base + dig;
    }
    if (over) {
        out->kind = K_FLOAT;
        out->f = neg ? -d : d;
        out->f_from_text = base == 10; /* decimal: let strtod round exactly */
        out->overflow = 1; /* decimal: let strtod round exactly */
    } else {
        out->kind = K_INT;
        out->i = neg ? (lua_Integer)(0 - v) : (lua_Integer)v;
    }
}

/* [-+]? ( \.[0-9]+ | [0-9]+ (\.[0-9]*)? ) ([eE][-+]?[0-9]+)? */
static int core_float_syntax(const char *s, size_t n)
{
    size_t k = 0, before = 0, after = 0;
    if (k < n && (s[k] == '-' || s[k] == '+'))
        k++;
    while (k < n && is_digit(s[k]))
        k++, before++;
    if (k < n && s[k] == '.') {
        k++;
        while (k < n && is_digit(s[k]))
            k++, after++;
    }
    if (before == 0 && after == 0)
        return 0;
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        size_t exp = 0;
        k++;
        if (k < n && (s[k] == '-' || s[k] == '+'))
            k++;
        while (k < n && is_digit(s[k]))
            k++, exp++;
        if (exp == 0)
            return 0;
    }
    return k == n;
}

/* Type a plain scalar by the YAML 1.2 core schema. */
static void resolve_core(const char *s, size_t n, struct scalar *out)
{
    memset(out, 0, sizeof *out);
    out->kind = K_STR;
    if (n == 0 || word_in(s, n, core_null)) {
        out->kind = K_NULL;
        return;
    }
    if (word_in(s, n, core_true) || word_in(s, n, core_false)) {
        out->kind = K_BOOL;
        out->b = s[0] == 't' || s[0] == 'T';
        return;
    }
    size_t k = 0;
    int neg = 0;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        k = 1;
    }
    const char *rest = s + k;
    size_t m = n - k;
    if (k == 0 && n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        int (*ok)(int) = s[1] == 'x' ? is_hex : is_oct;
        for (size_t j = 2; j < n; j++)
            if (!ok((unsigned char)s[j]))
                return;
        parse_digits(s + 2, n - 2, s[1] == 'x' ? 16 : 8, 0, out);
        return;
    }
    if (m > 0) {
        size_t j = 0;
        while (j < m && is_digit(rest[j]))
            j++;
        if (j == m) {
            parse_digits(rest, m, 10, neg, out);
            return;
        }
    }
    static const char *const inf[] = { ".inf", ".Inf", ".INF", NULL };
    static const char *const nan[] = { ".nan", ".NaN", ".NAN", NULL };
    if (word_in(rest, m, inf)) {
        out->kind = K_FLOAT;
        out->f = neg ? -HUGE_VAL : HUGE_VAL;
        return;
    }
    if (k == 0 && word_in(s, n, nan)) {
        out->kind = K_FLOAT;
        out->f = NAN;
        return;
    }
    if (core_float_syntax(s, n)) {
        out->kind = K_FLOAT;
        out->f_from_text = 1;
    }
}

/* Would a YAML 1.1 reader (Go yaml.v2, PyYAML) or a 1.2 reader take this plain text for
 * anything but a string? Then the encoder quotes it. */
static int scan_digits(const char *s, size_t n, size_t *k, int (*ok)(int))
{
    size_t start = *k;
    while (*k < n && (ok((unsigned char)s[*k]) || s[*k] == '_'))
        (*k)++;
    return *k > start;
}

static int yaml11_typed(const char *s, size_t n)
{
    static const char *const words[] = { "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                                         "on", "On", "ON", "off", "Off", "OFF", "=", "<<", NULL };
    if (word_in(s, n, words))
        return 1;
    size_t k = 0;
    if (k < n && (s[k] == '-' || s[k] == '+'))
        k++;
    int prefix = n - k > 2 && s[k] == '0' ? s[k + 1] | 0x20 : 0; /* Go also takes 0X, 0B, 0O */
    if (prefix == 'b' || prefix == 'x' || prefix == 'o') {
        int (*ok)(int) = prefix == 'x' ? is_hex : prefix == 'o' ? is_oct : is_digit;
        k += 2;
        return scan_digits(s, n, &k, ok) && k == n; /* 0b with 2..9 digits: harmless to quote */
    }
    /* 4-digit year followed by '-': a timestamp to 1.1 readers, e.g. 2024-01-31T10:00:00Z */
    if (n >= 8 && k == 0 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
        s[4] == '-' && is_digit(s[5]))
        return 1;
    int has_int = k < n && is_digit(s[k]) && scan_digits(s, n, &k, is_digit);
    if (k == n)
        return has_int;
    if (has_int && s[k] == ':') { /* sexagesimal: 1:30, 190:20:30.15 */
        while (k < n && s[k] == ':') {
            k++;
            if (!scan_digits(s, n, &k, is_digit))
                return 0;
        }
        if (k < n && s[k] == '.') {
            k++;
            scan_digits(s, n, &k, is_digit);
        }
        return k == n;
    }
    if (s[k] != '.')
        return 0;
    k++;
    int has_frac = scan_digits(s, n, &k, is_digit);
    if (!has_int && !has_frac)
        return 0;
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '-' || s[k] == '+'))
            k++;
        if (!scan_digits(s, n, &k, is_digit))
            return 0;
    }
    return k == n;
}

/* ------------------------------------------------------------------------------------------ */
/* Decoder */

struct dec {
    yaml_parser_t parser;
    yaml_event_t ev;
    int has_parser, has_ev;
    lua_State *L;
    const unsigned char *text;
    size_t len;
    int anchors, sizes; /* stack slots: name -> value, name -> expanded node count */
    lua_Integer nodes;  /* nodes in this document, an alias counting as its whole target */
    char err[320];
};

static int dec_release(lua_State *L)
{
    struct dec *d = luaL_checkudata(L, 1, DEC_MT);
    if (d->has_ev)
        yaml_event_delete(&d->ev);
    if (d->has_parser)
        yaml_parser_delete(&d->parser);
    d->has_ev = d->has_parser = 0;
    return 0;
}

static int dec_fail(struct dec *d, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int dec_fail(struct dec *d, yaml_mark_t m, const char *fmt, ...)
{
    int n = snprintf(d->err, sizeof d->err, "yaml: line %zu, column %zu: ", m.line + 1, m.column + 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err + n, sizeof d->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int dec_fail_parser(struct dec *d)
{
    yaml_parser_t *p = &d->parser;
    yaml_mark_t m = p->problem_mark;
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_MEMORY_ERROR)
        return snprintf(d->err, sizeof d->err, "yaml: out of memory"), -1;
    if (p->error == YAML_READER_ERROR) { /* no mark: find line and column from the byte offset */
        memset(&m, 0, sizeof m);
        for (size_t k = 0; k < p->problem_offset && k < d->len; k++) {
            if (d->text[k] == '\n')
                m.line++, m.column = 0;
            else
                m.column++;
        }
        if (p->problem_value != -1)
            return dec_fail(d, m, "%s (#x%X)", problem, (unsigned)p->problem_value);
        return dec_fail(d, m, "%s", problem);
    }
    if (p->context)
        return dec_fail(d, m, "%s (%s)", problem, p->context);
    return dec_fail(d, m, "%s", problem);
}

static int next_event(struct dec *d)
{
    if (d->has_ev) {
        yaml_event_delete(&d->ev);
        d->has_ev = 0;
    }
    if (!yaml_parser_parse(&d->parser, &d->ev))
        return dec_fail_parser(d);
    d->has_ev = 1;
    return 0;
}

static int count_nodes(struct dec *d, lua_Integer n)
{
    d->nodes += n;
    if (d->nodes > MAX_NODES)
        return dec_fail(d, d->ev.start_mark, "document too large: more than %d nodes after alias expansion",
                        MAX_NODES);
    return 0;
}

/* Strict base64 for !!binary (whitespace ignored, as in YAML's folded binary blocks). */
static int push_base64(lua_State *L, const char *s, size_t n)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (size_t k = 0; k < n; k++) {
        int c = (unsigned char)s[k], v;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad)
            return -1;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (is_digit(c)) v = c - '0' + 52;
        else if (c == '+') v = 62;
        else if (c == '/') v = 63;
        else return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            luaL_addchar(&b, (char)((acc >> bits) & 0xFF));
        }
    }
    if (pad > 2 || bits >= 6)
        return -1;
    luaL_pushresult(&b);
    return 0;
}

#define TAG(x) "tag:yaml.org,2002:" x

/* Push the value of the current scalar event. A key keeps its text unless it is an integer. */
static int push_scalar(struct dec *d, int as_key)
{
    lua_State *L = d->L;
    yaml_event_t *ev = &d->ev;
    const char *s = (const char *)ev->data.scalar.value, *tag = (const char *)ev->data.scalar.tag;
    size_t n = ev->data.scalar.length;
    struct scalar sc;
    if (tag && (strcmp(tag, TAG("str")) == 0 || strcmp(tag, "!") == 0)) {
        lua_pushlstring(L, s, n);
        return 0;
    }
    if (tag && strcmp(tag, TAG("binary")) == 0) {
        if (push_base64(L, s, n) != 0)
            return dec_fail(d, ev->start_mark, "invalid !!binary value (not base64)");
        return 0;
    }
    if (!tag && ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        lua_pushlstring(L, s, n);
        return 0;
    }
    resolve_core(s, n, &sc);
    if (tag) {
        enum kind want = strcmp(tag, TAG("int")) == 0     ? K_INT
                         : strcmp(tag, TAG("float")) == 0 ? K_FLOAT
                         : strcmp(tag, TAG("bool")) == 0  ? K_BOOL
                         : strcmp(tag, TAG("null")) == 0  ? K_NULL
                                                          : K_STR; /* other tags: type as untagged */
        if (want == K_FLOAT && sc.kind == K_INT) {
            sc.kind = K_FLOAT;
            sc.f = (double)sc.i;
        }
        /* an !!int too big for int64 comes back as a float, as it does untagged */
        if (want != K_STR && sc.kind != want && !(want == K_INT && sc.overflow))
            return dec_fail(d, ev->start_mark, "cannot decode \"%.40s\" as !!%s", s,
                            tag + strlen(TAG("")));
    }
    if (as_key && sc.kind != K_INT) {
        lua_pushlstring(L, s, n);
        return 0;
    }
    switch (sc.kind) {
    case K_NULL: lua_pushlightuserdata(L, NULL); break;
    case K_BOOL: lua_pushboolean(L, sc.b); break;
    case K_INT: lua_pushinteger(L, sc.i); break;
    case K_FLOAT:
        /* Lua's own numeral reader: independent of the C locale, and the text (digits with a
         * '.' or an exponent, or too many digits for an integer) always gives a float */
        if (!sc.f_from_text || lua_stringtonumber(L, s) == 0)
            lua_pushnumber(L, sc.f);
        break;
    default: lua_pushlstring(L, s, n); break;
    }
    return 0;
}

static int parse_node(struct dec *d, int depth, int as_key);

static int parse_sequence(struct dec *d, int depth)
{
    lua_State *L = d->L;
    lua_newtable(L);
    lua_pushvalue(L, UV_ARRAY_MT);
    lua_setmetatable(L, -2);
    for (lua_Integer i = 1;; i++) {
        if (next_event(d))
            return -1;
        if (d->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        if (parse_node(d, depth + 1, 0))
            return -1;
        lua_rawseti(L, -2, i);
    }
}

/* "<<: *base" (plain, untagged): Go's yaml, which kubectl and sigs.k8s.io/yaml use, merges. */
static int is_merge_key(const yaml_event_t *ev)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    return ev->type == YAML_SCALAR_EVENT && ev->data.scalar.length == 2 &&
           memcmp(ev->data.scalar.value, "<<", 2) == 0 &&
           (tag ? strcmp(tag, TAG("merge")) == 0 : ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
}

/* Merge the mapping (or sequence of mappings, earlier ones winning) at the top into the mapping
 * at t; keys already there stay. Keys added are recorded at t+1 so that an explicit key later
 * in the mapping may still override them. */
static int merge_into(struct dec *d, int t, yaml_mark_t km)
{
    lua_State *L = d->L;
    int src = lua_gettop(L), is_seq = 0;
    if (lua_getmetatable(L, src)) {
        is_seq = lua_rawequal(L, -1, UV_ARRAY_MT);
        lua_pop(L, 1);
    }
    lua_Integer n = is_seq ? (lua_Integer)lua_rawlen(L, src) : 1;
    for (lua_Integer i = 1; i <= n; i++) {
        if (is_seq)
            lua_rawgeti(L, src, i);
        else
            lua_pushvalue(L, src);
        int m = lua_gettop(L), is_map = 0;
        if (lua_getmetatable(L, m)) {
            is_map = lua_rawequal(L, -1, UV_MAP_MT);
            lua_pop(L, 1);
        }
        if (!is_map)
            return dec_fail(d, km, "merge key \"<<\" needs a mapping or a sequence of mappings");
        if (lua_isnil(L, t + 1)) {
            lua_newtable(L);
            lua_replace(L, t + 1);
        }
        lua_pushnil(L);
        while (lua_next(L, m)) {
            lua_pushvalue(L, -2);
            if (lua_rawget(L, t) == LUA_TNIL) {
                lua_pushvalue(L, -3);
                lua_pushvalue(L, -3);
                lua_rawset(L, t);
                lua_pushvalue(L, -3);
                lua_pushboolean(L, 1);
                lua_rawset(L, t + 1);
            }
            lua_pop(L, 2);
        }
        lua_settop(L, src);
    }
    lua_settop(L, src - 1);
    return 0;
}

static int parse_mapping(struct dec *d, int depth)
{
    lua_State *L = d->L;
    yaml_mark_t start = d->ev.start_mark;
    lua_newtable(L);
    lua_pushvalue(L, UV_MAP_MT);
    lua_setmetatable(L, -2);
    int t = lua_gettop(L);
    lua_pushnil(L); /* t+1: keys that came from a merge, made on first use */
    for (;;) {
        if (next_event(d))
            return -1;
        if (d->ev.type == YAML_MAPPING_END_EVENT) {
            lua_settop(L, t);
            return 0;
        }
        yaml_mark_t km = d->ev.start_mark;
        if (is_merge_key(&d->ev)) {
            if (next_event(d) || parse_node(d, depth + 1, 0) || merge_into(d, t, km))
                return -1;
            continue;
        }
        if (parse_node(d, depth + 1, 1))
            return -1;
        int kt = lua_type(L, -1);
        if (kt == LUA_TBOOLEAN || kt == LUA_TLIGHTUSERDATA ||
            (kt == LUA_TNUMBER && !lua_isinteger(L, -1))) {
            /* an alias of a typed scalar used as a key: a key is text, as in sigs.k8s.io/yaml */
            if (kt == LUA_TLIGHTUSERDATA)
                lua_pushliteral(L, "null");
            else
                luaL_tolstring(L, -1, NULL);
            lua_replace(L, -2);
        } else if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
            return dec_fail(d, km, "mapping key must be a scalar (in mapping at line %zu, column %zu)",
                            start.line + 1, start.column + 1);
        }
        lua_pushvalue(L, -1);
        if (lua_rawget(L, t) != LUA_TNIL) {
            int merged = 0; /* an explicit key overrides a merged one, once */
            if (!lua_isnil(L, t + 1)) {
                lua_pushvalue(L, -2);
                merged = lua_rawget(L, t + 1) != LUA_TNIL;
                lua_pop(L, 1);
            }
            if (!merged) {
                const char *k = luaL_tolstring(L, -2, NULL);
                return dec_fail(d, km, "duplicate key \"%.80s\" (in mapping at line %zu, column %zu)", k,
                                start.line + 1, start.column + 1);
            }
            lua_pushvalue(L, -2);
            lua_pushnil(L);
            lua_rawset(L, t + 1);
        }
        lua_pop(L, 1);
        if (next_event(d) || parse_node(d, depth + 1, 0))
            return -1;
        lua_rawset(L, t);
    }
}

/* The current event starts a node: push its value. */
static int parse_node(struct dec *d, int depth, int as_key)
{
    lua_State *L = d->L;
    yaml_event_t *ev = &d->ev;
    const char *anchor = NULL;
    if (depth > MAX_DEPTH)
        return dec_fail(d, ev->start_mark, "nesting deeper than %d levels", MAX_DEPTH);
    luaL_checkstack(L, 8, "yaml nesting");
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        if (lua_getfield(L, d->sizes, name) == LUA_TNIL)
            return dec_fail(d, ev->start_mark, "unknown anchor \"%.80s\" referenced", name);
        lua_Integer size = lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, d->anchors, name);
        return count_nodes(d, size);
    }
    case YAML_SCALAR_EVENT: anchor = (const char *)ev->data.scalar.anchor; break;
    case YAML_SEQUENCE_START_EVENT: anchor = (const char *)ev->data.sequence_start.anchor; break;
    case YAML_MAPPING_START_EVENT: anchor = (const char *)ev->data.mapping_start.anchor; break;
    default: return dec_fail(d, ev->start_mark, "unexpected parser event %d", (int)ev->type);
    }
    lua_Integer before = d->nodes;
    if (count_nodes(d, 1))
        return -1;
    if (anchor) /* copy the name now: the event is gone once the children are parsed */
        lua_pushstring(L, anchor);
    int rc = ev->type == YAML_SCALAR_EVENT           ? push_scalar(d, as_key)
             : ev->type == YAML_SEQUENCE_START_EVENT ? parse_sequence(d, depth)
                                                     : parse_mapping(d, depth);
    if (rc)
        return -1;
    if (anchor) {
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, d->anchors);
        lua_pushvalue(L, -2);
        lua_pushinteger(L, d->nodes - before);
        lua_rawset(L, d->sizes);
        lua_remove(L, -2);
    }
    return 0;
}

/* Stack: 1 text, 2 parser box (to-be-closed), 3 anchors, 4 sizes, 5 result array when max > 1.
 * With max == 1 the first document's value is left at 5. Returns 0, or -1 with d->err set. */
static int decode_docs(struct dec *d, int max, int *count)
{
    lua_State *L = d->L;
    *count = 0;
    if (next_event(d)) /* STREAM-START */
        return -1;
    while (*count < max) {
        if (next_event(d))
            return -1;
        if (d->ev.type == YAML_STREAM_END_EVENT)
            break;
        /* anchors are scoped to their document */
        lua_newtable(L);
        lua_replace(L, d->anchors);
        lua_newtable(L);
        lua_replace(L, d->sizes);
        d->nodes = 0;
        if (next_event(d) || parse_node(d, 1, 0))
            return -1;
        if (next_event(d)) /* DOCUMENT-END */
            return -1;
        (*count)++;
        if (max > 1)
            lua_rawseti(L, 5, *count);
    }
    return 0;
}

static struct dec *dec_open(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    struct dec *d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, DEC_MT);
    lua_toclose(L, 2); /* frees the parser on every way out, errors included */
    if (!yaml_parser_initialize(&d->parser))
        luaL_error(L, "yaml: cannot initialize parser: out of memory");
    d->has_parser = 1;
    yaml_parser_set_input_string(&d->parser, (const unsigned char *)text, len);
    d->L = L;
    d->text = (const unsigned char *)text;
    d->len = len;
    d->anchors = 3;
    d->sizes = 4;
    lua_pushnil(L);
    lua_pushnil(L);
    return d;
}

static int l_decode(lua_State *L)
{
    struct dec *d = dec_open(L);
    int count;
    if (decode_docs(d, 1, &count) != 0)
        return kb_fail(L, "yaml.decode", "%s", d->err);
    if (count == 0)
        lua_pushnil(L);
    return 1;
}

static int l_decode_all(lua_State *L)
{
    struct dec *d = dec_open(L);
    int count;
    lua_newtable(L);
    lua_pushvalue(L, UV_ARRAY_MT);
    lua_setmetatable(L, -2);
    if (decode_docs(d, INT32_MAX, &count) != 0)
        return kb_fail(L, "yaml.decode_all", "%s", d->err);
    lua_settop(L, 5);
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Encoder */

struct keyent {
    const char *s; /* a key string of the table being written: alive while the table is */
    size_t len;
    lua_Integer i;
    int isint;
    lua_Integer rank; /* position in the order list, or LUA_MAXINTEGER */
};

/* Output and key scratch live in a userdata so an error raised mid-way frees them. */
struct obuf {
    char *p;
    size_t n, cap;
    struct keyent *keys;
    size_t nkeys, capkeys;
};

struct pathseg {
    const char *s;
    size_t len;
    lua_Integer i;
    int isint;
};

struct enc {
    lua_State *L;
    struct obuf *b;
    int indent;
    int order;    /* stack slot of {key -> rank} from opts.order, or 0 */
    int visiting; /* stack slot of {table -> true} for the tables on the current path */
    int depth;
    struct pathseg path[MAX_DEPTH + 2];
};

enum mode { M_TOP, M_MAPVAL, M_SEQITEM };

static int enc_release(lua_State *L)
{
    struct obuf *b = luaL_checkudata(L, 1, ENC_MT);
    free(b->p);
    free(b->keys);
    memset(b, 0, sizeof *b);
    return 0;
}

static void *grow(lua_State *L, void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * elem);
    if (!q)
        luaL_error(L, "yaml.encode: not enough memory");
    *cap = c;
    return q;
}

static void put(struct enc *e, const char *s, size_t n)
{
    struct obuf *b = e->b;
    if (n == 0)
        return;
    b->p = grow(e->L, b->p, &b->cap, b->n + n, 1);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_str(struct enc *e, const char *s) { put(e, s, strlen(s)); }

static void spaces(struct enc *e, int n)
{
    struct obuf *b = e->b;
    if (n <= 0)
        return;
    b->p = grow(e->L, b->p, &b->cap, b->n + (size_t)n, 1);
    memset(b->p + b->n, ' ', (size_t)n);
    b->n += (size_t)n;
}

static int plain_name(const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (!(c == '_' || c == '-' || c == '/' || c == ':' || is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')))
            return 0;
    }
    return 1;
}

/* Raise "yaml.encode: <msg> at <path>", the path in Lua syntax (spec.containers[2]). */
static int enc_error(struct enc *e, const char *msg)
{
    lua_State *L = e->L;
    luaL_Buffer p;
    luaL_buffinit(L, &p);
    if (e->depth == 0)
        luaL_addstring(&p, "(root)");
    for (int k = 0; k < e->depth; k++) {
        const struct pathseg *g = &e->path[k];
        if (g->isint) {
            lua_pushfstring(L, "[%I]", (LUAI_UACINT)g->i);
            luaL_addvalue(&p);
        } else if (g->len > 0 && plain_name(g->s, g->len)) {
            if (k > 0)
                luaL_addchar(&p, '.');
            luaL_addlstring(&p, g->s, g->len);
        } else { /* ["app.kubernetes.io/name"], other bytes escaped as Lua does */
            luaL_addstring(&p, "[\"");
            for (size_t j = 0; j < g->len; j++) {
                unsigned char c = (unsigned char)g->s[j];
                if (c == '"' || c == '\\') {
                    luaL_addchar(&p, '\\');
                    luaL_addchar(&p, (char)c);
                } else if (c < 0x20 || c >= 0x7F) {
                    lua_pushfstring(L, "\\%d", (int)c);
                    luaL_addvalue(&p);
                } else {
                    luaL_addchar(&p, (char)c);
                }
            }
            luaL_addstring(&p, "\"]");
        }
    }
    luaL_pushresult(&p);
    return luaL_error(L, "yaml.encode: %s at %s", msg, lua_tostring(L, -1));
}

/* One code point of strict UTF-8 (no overlongs, surrogates or > U+10FFFF); 0 if invalid. */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    int len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n)
        return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* YAML's printable set, minus what 1.1 readers take for line breaks (NEL, LS, PS) and the BOM. */
static int printable(uint32_t c)
{
    return (c >= 0x20 && c <= 0x7E) || (c >= 0xA0 && c <= 0xD7FF && c != 0x2028 && c != 0x2029) ||
           (c >= 0xE000 && c <= 0xFFFD && c != 0xFEFF) || (c >= 0x10000 && c <= 0x10FFFF);
}

enum style { S_PLAIN, S_SINGLE, S_DOUBLE, S_LITERAL, S_INVALID };

static int is_blank_at(const char *s, size_t n, size_t k) { return k >= n || s[k] == ' ' || s[k] == '\n'; }

/* The style Go's yaml (kubectl) would pick, from the same analysis as libyaml's emitter: a string
 * that would re-read as another type is double-quoted; multi-line text is a literal block when it
 * can be one; otherwise plain, or single-quoted when an indicator or edge space forbids plain;
 * double-quoted whenever something must be escaped. We quote a little more than Go: YAML 1.1
 * lookalikes for PyYAML-style readers, and a leading '?' or ':'. */
static enum style choose_style(const char *s, size_t n, int key)
{
    int special = 0, breaks = 0, space_break = 0, indicator = 0;
    for (size_t k = 0; k < n;) {
        uint32_t c;
        int len = utf8_next((const unsigned char *)s + k, n - k, &c);
        if (!len)
            return S_INVALID;
        if (c == '\n') {
            breaks = 1;
            space_break |= k > 0 && s[k - 1] == ' ';
        } else if (!printable(c)) { /* tab included, as in libyaml */
            special = 1;
        } else if (k == 0) {
            indicator |= (c < 0x80 && strchr("#,[]{}&*!|>'\"%@`?:", (int)c) != NULL) ||
                         (c == '-' && is_blank_at(s, n, 1));
        } else {
            indicator |= (c == ':' && is_blank_at(s, n, k + 1)) || (c == '#' && s[k - 1] == ' ');
        }
        k += (size_t)len;
    }
    if (n == 0 || special)
        return S_DOUBLE;
    if (breaks) /* a block can keep neither blanks before a break nor a final space */
        return key || space_break || s[n - 1] == ' ' ? S_DOUBLE : S_LITERAL;
    struct scalar sc;
    resolve_core(s, n, &sc);
    if (sc.kind != K_STR || yaml11_typed(s, n))
        return S_DOUBLE;
    if (indicator || s[0] == ' ' || s[n - 1] == ' ' ||
        (n >= 3 && (memcmp(s, "---", 3) == 0 || memcmp(s, "...", 3) == 0)))
        return S_SINGLE;
    return S_PLAIN;
}

static void put_single(struct enc *e, const char *s, size_t n)
{
    put(e, "'", 1);
    for (const char *q; (q = memchr(s, '\'', n)) != NULL; n -= (size_t)(q + 1 - s), s = q + 1) {
        put(e, s, (size_t)(q + 1 - s));
        put(e, "'", 1);
    }
    put(e, s, n);
    put(e, "'", 1);
}

static void put_double(struct enc *e, const char *s, size_t n)
{
    char esc[12];
    put(e, "\"", 1);
    for (size_t k = 0; k < n;) {
        uint32_t c;
        int len = utf8_next((const unsigned char *)s + k, n - k, &c);
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
            if (!printable(c)) {
                snprintf(esc, sizeof esc, c <= 0xFF ? "\\x%02X" : "\\u%04X", (unsigned)c);
                r = esc;
            }
        }
        if (r)
            put_str(e, r);
        else
            put(e, s + k, (size_t)len);
        k += (size_t)len;
    }
    put(e, "\"", 1);
}

/* Literal block: "|" clips to one final newline, "|-" strips it, "|+" keeps several (or the only
 * one). Text starting with a space or a newline states its indentation (`|2`), relative to the
 * parent's: the block's own indentation could not be guessed from its first line. */
static void put_literal(struct enc *e, const char *s, size_t n, int col, int hint)
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
    put(e, head, (size_t)h);
    for (size_t k = 0; k < body;) {
        const char *nl = memchr(s + k, '\n', body - k);
        size_t end = nl ? (size_t)(nl - s) : body;
        if (end > k) {
            spaces(e, col);
            put(e, s + k, end - k);
        }
        put(e, "\n", 1);
        k = end + 1;
    }
    for (size_t k = body > 0; k < trail; k++)
        put(e, "\n", 1);
}

static void put_number(struct enc *e, int idx)
{
    lua_State *L = e->L;
    char tmp[64];
    if (lua_isinteger(L, idx)) {
        snprintf(tmp, sizeof tmp, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    } else {
        double f = (double)lua_tonumber(L, idx);
        if (isnan(f)) {
            strcpy(tmp, ".nan");
        } else if (isinf(f)) {
            strcpy(tmp, f > 0 ? ".inf" : "-.inf");
        } else {
            /* the shortest of %.15g..%.17g that reads back exactly */
            for (int prec = 15; prec <= 17; prec++) {
                snprintf(tmp, sizeof tmp, "%.*g", prec, f);
                lua_Number back;
                if (lua_stringtonumber(L, tmp) && (back = lua_tonumber(L, -1), lua_pop(L, 1), back == f))
                    break;
            }
            for (char *c = tmp; *c; c++) /* a non-C locale may have written ',' */
                if (*c == ',')
                    *c = '.';
            /* keep a '.', so that YAML 1.1 readers (which need one) read a float back */
            if (!strchr(tmp, '.')) {
                char *ex = strchr(tmp, 'e');
                size_t at = ex ? (size_t)(ex - tmp) : strlen(tmp);
                memmove(tmp + at + 2, tmp + at, strlen(tmp + at) + 1);
                memcpy(tmp + at, ".0", 2);
            }
        }
    }
    put_str(e, tmp);
}

static void put_scalar(struct enc *e, const char *text, enum mode mode)
{
    if (mode == M_MAPVAL)
        put(e, " ", 1);
    if (text)
        put_str(e, text);
    else
        put_number(e, -1);
    put(e, "\n", 1);
}

static void put_string(struct enc *e, const char *s, size_t n, int key, int col, enum mode mode)
{
    enum style st = choose_style(s, n, key);
    if (st == S_INVALID)
        enc_error(e, key ? "invalid UTF-8 in key" : "invalid UTF-8 in string");
    if (mode == M_MAPVAL)
        put(e, " ", 1);
    if (st == S_LITERAL) /* content one indent under a key, or where a sequence item starts */
        put_literal(e, s, n, mode == M_SEQITEM ? col : col + e->indent, mode == M_SEQITEM ? 2 : e->indent);
    else if (st == S_PLAIN)
        put(e, s, n);
    else if (st == S_SINGLE)
        put_single(e, s, n);
    else
        put_double(e, s, n);
    if (!key && st != S_LITERAL)
        put(e, "\n", 1);
}

static int cmp_keys(const void *pa, const void *pb)
{
    const struct keyent *a = pa, *b = pb;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    if (a->isint != b->isint)
        return a->isint ? -1 : 1; /* integer keys first, in numeric order */
    if (a->isint)
        return a->i < b->i ? -1 : a->i > b->i;
    size_t m = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, m);
    return c ? c : a->len < b->len ? -1 : a->len > b->len;
}

/* The table at the top: a sequence (returns its length, 0 for an empty one) or a mapping
 * (returns -1, its keys appended to the scratch array in output order). */
static lua_Integer classify(struct enc *e, int want_seq, int want_map)
{
    lua_State *L = e->L;
    int t = lua_gettop(L);
    struct obuf *b = e->b;
    size_t base = b->nkeys;
    lua_Integer nint = 0, nstr = 0, maxint = 0, minint = 0;
    int lookup = e->order;
    if (luaL_getmetafield(L, t, "__order") == LUA_TTABLE) { /* yaml.ordered(): this table's order */
        lua_newtable(L);
        for (lua_Integer k = 1; lua_rawgeti(L, -2, k) == LUA_TSTRING; k++) {
            lua_pushinteger(L, k);
            lua_rawset(L, -3);
        }
        lua_pop(L, 1);
        lookup = lua_gettop(L);
    } else {
        lua_settop(L, t);
    }
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        struct keyent k = { NULL, 0, 0, 0, LUA_MAXINTEGER };
        if (lua_type(L, -1) == LUA_TSTRING) {
            k.s = lua_tolstring(L, -1, &k.len);
            nstr++;
            if (lookup) {
                lua_pushvalue(L, -1);
                if (lua_rawget(L, lookup) == LUA_TNUMBER)
                    k.rank = lua_tointeger(L, -1);
                lua_pop(L, 1);
            }
        } else if (lua_isinteger(L, -1)) {
            k.i = lua_tointeger(L, -1);
            k.isint = 1;
            if (nint == 0 || k.i > maxint)
                maxint = k.i;
            if (nint == 0 || k.i < minint)
                minint = k.i;
            nint++;
        } else {
            lua_pushfstring(L, "unsupported key type (%s)",
                            lua_type(L, -1) == LUA_TNUMBER ? "non-integer number" : luaL_typename(L, -1));
            enc_error(e, lua_tostring(L, -1));
        }
        b->keys = grow(L, b->keys, &b->capkeys, b->nkeys + 1, sizeof *b->keys);
        b->keys[b->nkeys++] = k;
    }
    lua_settop(L, t);
    int dense = nstr == 0 && (nint == 0 || (minint == 1 && maxint == nint));
    if (want_seq || (!want_map && nint > 0)) {
        if (!dense)
            enc_error(e, "mixed table");
        b->nkeys = base;
        return nint;
    }
    if (b->nkeys > base)
        qsort(b->keys + base, b->nkeys - base, sizeof *b->keys, cmp_keys);
    return -1;
}

static void emit_value(struct enc *e, int col, enum mode mode);

static void emit_table(struct enc *e, int col, enum mode mode)
{
    lua_State *L = e->L;
    int t = lua_gettop(L);
    if (e->depth >= MAX_DEPTH)
        enc_error(e, "nesting deeper than 1000 levels");
    luaL_checkstack(L, 8, "yaml.encode nesting");
    lua_pushvalue(L, t);
    if (lua_rawget(L, e->visiting) != LUA_TNIL)
        enc_error(e, "cycle");
    lua_pop(L, 1);
    int want_seq = 0, want_map = 0;
    if (lua_getmetatable(L, t)) {
        want_seq = lua_rawequal(L, -1, UV_ARRAY_MT);
        want_map = lua_rawequal(L, -1, UV_MAP_MT) || luaL_getmetafield(L, t, "__order") != LUA_TNIL;
        lua_settop(L, t);
    }
    size_t base = e->b->nkeys;
    lua_Integer len = classify(e, want_seq, want_map);
    size_t nkeys = e->b->nkeys - base;
    if (len == 0 || (len < 0 && nkeys == 0)) {
        put_scalar(e, len == 0 ? "[]" : "{}", mode);
        return;
    }
    lua_pushvalue(L, t);
    lua_pushboolean(L, 1);
    lua_rawset(L, e->visiting);
    struct pathseg *seg = &e->path[e->depth++];
    if (mode == M_MAPVAL)
        put(e, "\n", 1);
    if (len > 0) {
        int dash = mode == M_TOP ? 0 : col;
        for (lua_Integer i = 1; i <= len; i++) {
            if (i > 1 || mode != M_SEQITEM)
                spaces(e, dash);
            put(e, "- ", 2);
            *seg = (struct pathseg){ NULL, 0, i, 1 };
            lua_rawgeti(L, t, i);
            emit_value(e, dash + 2, M_SEQITEM);
            lua_settop(L, t);
        }
    } else {
        int kc = mode == M_MAPVAL ? col + e->indent : mode == M_SEQITEM ? col : 0;
        for (size_t j = 0; j < nkeys; j++) {
            struct keyent k = e->b->keys[base + j]; /* by value: children may move the array */
            if (j > 0 || mode != M_SEQITEM)
                spaces(e, kc);
            *seg = (struct pathseg){ k.s, k.len, k.i, k.isint };
            if (k.isint) {
                lua_pushinteger(L, k.i);
                put_number(e, -1);
            } else {
                size_t at = e->b->n;
                put_string(e, k.s, k.len, 1, kc, M_TOP);
                if (e->b->n - at > 1000) { /* readers refuse implicit keys over 1024 chars */
                    e->b->n = at;
                    put(e, "? ", 2);
                    put_string(e, k.s, k.len, 1, kc, M_TOP);
                    put(e, "\n", 1);
                    spaces(e, kc);
                }
                lua_pushlstring(L, k.s, k.len);
            }
            put(e, ":", 1);
            lua_rawget(L, t);
            emit_value(e, kc, M_MAPVAL);
            lua_settop(L, t);
        }
    }
    e->depth--;
    e->b->nkeys = base;
    lua_pushvalue(L, t);
    lua_pushnil(L);
    lua_rawset(L, e->visiting);
}

/* Write the value at the top of the stack. col: for M_MAPVAL the column of its key, for
 * M_SEQITEM the column after "- ". A mapping value's block goes one indent deeper than its key;
 * a sequence value stays at the key's column, as kubectl writes it. */
static void emit_value(struct enc *e, int col, enum mode mode)
{
    lua_State *L = e->L;
    switch (lua_type(L, -1)) {
    case LUA_TTABLE: emit_table(e, col, mode); break;
    case LUA_TNUMBER: put_scalar(e, NULL, mode); break;
    case LUA_TBOOLEAN: put_scalar(e, lua_toboolean(L, -1) ? "true" : "false", mode); break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        put_string(e, s, n, 0, col, mode);
        break;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, -1) == NULL) {
            put_scalar(e, "null", mode);
            break;
        }
        /* fallthrough */
    default:
        lua_pushfstring(L, "cannot encode a %s value", luaL_typename(L, -1));
        enc_error(e, lua_tostring(L, -1));
    }
}

/* Stack after: 1 value, 2 opts, 3 order lookup or nil, 4 visiting, 5 buffer (to-be-closed). */
static void enc_open(lua_State *L, struct enc *e)
{
    luaL_checkany(L, 1);
    e->L = L;
    e->indent = (int)kb_opt_integer(L, 2, "indent", 2);
    luaL_argcheck(L, e->indent >= 1 && e->indent <= 9, 2, "option 'indent' must be 1..9");
    lua_settop(L, 2);
    lua_pushnil(L);
    if (!lua_isnil(L, 2) && lua_getfield(L, 2, "order") != LUA_TNIL) {
        luaL_argcheck(L, lua_istable(L, -1), 2, "option 'order': table expected");
        lua_newtable(L);
        for (lua_Integer k = 1; lua_rawgeti(L, -2, k) != LUA_TNIL; k++) {
            luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "option 'order': strings expected");
            lua_pushinteger(L, k);
            lua_rawset(L, -3);
        }
        lua_pop(L, 1);
        lua_replace(L, 3);
        e->order = 3;
    }
    lua_settop(L, 3);
    lua_newtable(L);
    e->visiting = 4;
    e->b = lua_newuserdatauv(L, sizeof *e->b, 0);
    memset(e->b, 0, sizeof *e->b);
    luaL_setmetatable(L, ENC_MT);
    lua_toclose(L, 5);
}

static int l_encode(lua_State *L)
{
    struct enc e; /* ~32 KiB, most of it the path used for error messages */
    memset(&e, 0, sizeof e);
    enc_open(L, &e);
    lua_pushvalue(L, 1);
    emit_value(&e, 0, M_TOP);
    lua_pushlstring(L, e.b->p ? e.b->p : "", e.b->n);
    return 1;
}

static int l_encode_all(lua_State *L)
{
    struct enc e;
    memset(&e, 0, sizeof e);
    luaL_checktype(L, 1, LUA_TTABLE);
    enc_open(L, &e);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            put(&e, "---\n", 4);
        e.path[0] = (struct pathseg){ NULL, 0, i, 1 };
        e.depth = 1; /* errors name the document: [2].spec... */
        lua_rawgeti(L, 1, i);
        emit_value(&e, 0, M_TOP);
        lua_settop(L, 5);
    }
    lua_pushlstring(L, e.b->p ? e.b->p : "", e.b->n);
    return 1;
}

/* yaml.ordered(t, keys): t's mapping keys are written in this order first. */
static int l_ordered(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    if (!lua_getmetatable(L, 1) || lua_rawequal(L, -1, UV_MAP_MT)) {
        /* never write into the shared map_mt: give t a metatable of its own */
        lua_createtable(L, 0, 3);
        lua_pushliteral(L, "yaml.map");
        lua_setfield(L, -2, "__name");
        lua_pushliteral(L, "object");
        lua_setfield(L, -2, "__jsontype");
        lua_pushvalue(L, -1);
        lua_setmetatable(L, 1);
    } else if (lua_rawequal(L, -1, UV_ARRAY_MT)) {
        return luaL_argerror(L, 1, "a sequence has no key order");
    }
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "__order");
    lua_settop(L, 1);
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Module */

static void new_box_meta(lua_State *L, const char *name, lua_CFunction release)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
}

/* cjson.empty_array_mt when this cjson has one (2.1.0.x forks do), so both encoders agree. */
static void push_array_mt(lua_State *L)
{
    int top = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1) &&
        lua_getfield(L, -1, "empty_array_mt") == LUA_TTABLE) {
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
        return;
    }
    lua_settop(L, top);
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "yaml.array");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
}

int luaopen_kboot_yaml(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "decode", l_decode },         { "decode_all", l_decode_all }, { "encode", l_encode },
        { "encode_all", l_encode_all }, { "ordered", l_ordered },       { NULL, NULL },
    };
    new_box_meta(L, DEC_MT, dec_release);
    new_box_meta(L, ENC_MT, enc_release);
    luaL_newlibtable(L, fns);
    push_array_mt(L);
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "yaml.map");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__jsontype");
    lua_pushvalue(L, -2);
    lua_setfield(L, -4, "array_mt");
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "map_mt");
    luaL_setfuncs(L, fns, 2);
    lua_pushlightuserdata(L, NULL); /* the same value as cjson.null */
    lua_setfield(L, -2, "null");
    return 1;
}
