/* kboot.yaml decoding: Lua values built straight from libyaml's parser events (no tree in
 * between), plain scalars typed by the YAML 1.2 core schema as sigs.k8s.io/yaml readers expect
 * (kb_yaml_resolve). Anchors, aliases and merge keys are resolved here; the limits on nodes and
 * depth keep an alias bomb or a deep nesting from taking the process down. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "common.h"
#include "kboot/yaml.h"
#include "l_yaml.h"

#define DEC_MT "kboot.yaml.parser"
#define MAX_NODES 1000000 /* after alias expansion: stops "billion laughs" */

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
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
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
    struct kb_yaml_scalar sc;
    if (n > KB_YAML_MAX_SCALAR)
        return dec_fail(d, ev->start_mark, "scalar of %zu bytes is longer than the limit of %d bytes (%d MiB)", n,
                        KB_YAML_MAX_SCALAR, KB_YAML_MAX_SCALAR >> 20);
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
    kb_yaml_resolve(s, n, &sc);
    if (tag) {
        /* other tags: type as untagged */
        enum kb_yaml_kind want = strcmp(tag, TAG("int")) == 0     ? KB_YAML_INT
                                 : strcmp(tag, TAG("float")) == 0 ? KB_YAML_FLOAT
                                 : strcmp(tag, TAG("bool")) == 0  ? KB_YAML_BOOL
                                 : strcmp(tag, TAG("null")) == 0  ? KB_YAML_NULL
                                                                  : KB_YAML_STR;
        if (want == KB_YAML_FLOAT && sc.kind == KB_YAML_INT) {
            sc.kind = KB_YAML_FLOAT;
            sc.f = (double)sc.i;
        }
        /* an !!int too big for int64 comes back as a float, as it does untagged */
        if (want != KB_YAML_STR && sc.kind != want && !(want == KB_YAML_INT && sc.overflow))
            return dec_fail(d, ev->start_mark, "cannot decode \"%.40s\" as !!%s", s,
                            tag + strlen(TAG("")));
    }
    if (as_key && sc.kind != KB_YAML_INT) {
        lua_pushlstring(L, s, n);
        return 0;
    }
    switch (sc.kind) {
    case KB_YAML_NULL: lua_pushlightuserdata(L, NULL); break;
    case KB_YAML_BOOL: lua_pushboolean(L, sc.b); break;
    case KB_YAML_INT: lua_pushinteger(L, sc.i); break;
    case KB_YAML_FLOAT: lua_pushnumber(L, sc.f); break;
    default: lua_pushlstring(L, s, n); break;
    }
    return 0;
}

static int parse_node(struct dec *d, int depth, int as_key);

static int parse_sequence(struct dec *d, int depth)
{
    lua_State *L = d->L;
    lua_newtable(L);
    lua_pushvalue(L, KB_YAML_UV_ARRAY_MT);
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

/* If mapping t already has a key that Kubernetes reads as the same one as the key on top of the
 * stack, push that key and return 1: the key itself, or the other spelling of an integer key
 * (sigs.k8s.io/yaml makes every key a JSON string, so 1 and '1' collide; '01', '+1', '0x1F'
 * do not). Else push nothing and return 0. */
static int push_same_key(lua_State *L, int t)
{
    int k = lua_gettop(L);
    luaL_checkstack(L, 4, "yaml keys");
    lua_pushvalue(L, k);
    if (lua_rawget(L, t) != LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushvalue(L, k);
        return 1;
    }
    lua_pop(L, 1);
    if (lua_isinteger(L, k)) {
        lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, k));
    } else {
        /* the integer this string is the decimal spelling of, exactly */
        if (lua_type(L, k) != LUA_TSTRING || lua_rawlen(L, k) > 20 || !lua_stringtonumber(L, lua_tostring(L, k)))
            return 0;
        if (!lua_isinteger(L, -1)) {
            lua_settop(L, k);
            return 0;
        }
        lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
        int exact = lua_rawequal(L, -1, k);
        lua_pop(L, 1);
        if (!exact) {
            lua_settop(L, k);
            return 0;
        }
    }
    lua_pushvalue(L, -1);
    if (lua_rawget(L, t) == LUA_TNIL) {
        lua_settop(L, k);
        return 0;
    }
    lua_pop(L, 1);
    return 1;
}

/* Merge the mapping (or sequence of mappings, earlier ones winning) at the top into the mapping
 * at t; keys already there stay. Keys added are recorded at t+1 so that an explicit key later
 * in the mapping may still override them. */
static int merge_into(struct dec *d, int t, yaml_mark_t km)
{
    lua_State *L = d->L;
    int src = lua_gettop(L), is_seq = 0;
    if (lua_getmetatable(L, src)) {
        is_seq = lua_rawequal(L, -1, KB_YAML_UV_ARRAY_MT);
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
            is_map = lua_rawequal(L, -1, KB_YAML_UV_MAP_MT);
            lua_pop(L, 1);
        }
        if (!is_map)
            return dec_fail(d, km, "merge key \"<<\" needs a mapping or a sequence of mappings");
        if (lua_isnil(L, t + 1)) {
            lua_newtable(L);
            lua_replace(L, t + 1);
        }
        lua_pushnil(L);
        while (lua_next(L, m)) { /* key, value */
            lua_pushvalue(L, -2);
            if (push_same_key(L, t)) { /* a key already there (explicit or merged first) wins */
                lua_pop(L, 2);
            } else {
                lua_pushvalue(L, -2);
                lua_rawset(L, t);
                lua_pushvalue(L, -2);
                lua_pushboolean(L, 1);
                lua_rawset(L, t + 1);
            }
            lua_pop(L, 1);
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
    lua_pushvalue(L, KB_YAML_UV_MAP_MT);
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
        if (push_same_key(L, t)) {
            int merged = 0; /* an explicit key overrides a merged one, once */
            if (!lua_isnil(L, t + 1)) {
                lua_pushvalue(L, -1);
                merged = lua_rawget(L, t + 1) != LUA_TNIL;
                lua_pop(L, 1);
            }
            if (!merged) {
                int twin = lua_type(L, -1) != lua_type(L, -2);
                const char *k = luaL_tolstring(L, -1, NULL);
                if (twin)
                    return dec_fail(d, km,
                                    "duplicate key \"%.80s\" (in mapping at line %zu, column %zu; the integer %s and "
                                    "the string \"%s\" are one key to Kubernetes)",
                                    k, start.line + 1, start.column + 1, k, k);
                return dec_fail(d, km, "duplicate key \"%.80s\" (in mapping at line %zu, column %zu)", k,
                                start.line + 1, start.column + 1);
            }
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, t + 1); /* no longer a merged key */
            lua_pushnil(L);
            lua_rawset(L, t); /* the merged value goes (under either spelling) */
        }
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
    if (depth > KB_YAML_MAX_DEPTH)
        return dec_fail(d, ev->start_mark, "nesting deeper than %d levels", KB_YAML_MAX_DEPTH);
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

/* The input cap, checked before libyaml sees any of it. */
static int too_large(lua_State *L, const char *op)
{
    size_t len;
    luaL_checklstring(L, 1, &len);
    if (len <= KB_YAML_MAX_INPUT)
        return 0;
    return kb_fail(L, op, "yaml: input of %zu bytes is larger than the limit of %d bytes (%d MiB)", len,
                   KB_YAML_MAX_INPUT, KB_YAML_MAX_INPUT >> 20);
}

int kb_yaml_l_decode(lua_State *L)
{
    int n = too_large(L, "yaml.decode");
    if (n)
        return n;
    struct dec *d = dec_open(L);
    int count;
    if (decode_docs(d, 1, &count) != 0)
        return kb_fail(L, "yaml.decode", "%s", d->err);
    if (count == 0)
        lua_pushnil(L);
    return 1;
}

int kb_yaml_l_decode_all(lua_State *L)
{
    int n = too_large(L, "yaml.decode_all");
    if (n)
        return n;
    struct dec *d = dec_open(L);
    int count;
    lua_newtable(L);
    lua_pushvalue(L, KB_YAML_UV_ARRAY_MT);
    lua_setmetatable(L, -2);
    if (decode_docs(d, INT32_MAX, &count) != 0)
        return kb_fail(L, "yaml.decode_all", "%s", d->err);
    lua_settop(L, 5);
    return 1;
}

void kb_yaml_decode_open(lua_State *L) { kb_yaml_box_meta(L, DEC_MT, dec_release); }
