/* kboot.yaml encoding: walks a Lua value and feeds it to kboot's block emitter
 * (include/kboot/yaml.h), which owns the quoting rule and kubectl's layout. What is decided
 * here is what only the Lua side knows: sequence or mapping, key order, cycles, and the path
 * (in Lua syntax) that an error names. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kboot/yaml.h"
#include "l_yaml.h"

#define ENC_MT "kboot.yaml.buffer"

struct keyent {
    const char *s; /* a key string of the table being written: alive while the table is */
    size_t len;
    lua_Integer i;
    int isint;
    lua_Integer rank; /* position in the order list, or LUA_MAXINTEGER */
};

/* The emitter and the key scratch live in a userdata so an error raised mid-way frees them. */
struct box {
    kb_yaml_emitter em;
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
    struct box *b;
    kb_err err;
    int order;    /* stack slot of {key -> rank} from opts.order, or 0 */
    int visiting; /* stack slot of {table -> true} for the tables on the current path */
    int depth;
    struct pathseg path[KB_YAML_MAX_DEPTH + 2];
};

static int enc_release(lua_State *L)
{
    struct box *b = luaL_checkudata(L, 1, ENC_MT);
    kb_yaml_emitter_free(&b->em);
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

static int plain_name(const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        int alnum = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        if (!(alnum || c == '_' || c == '-' || c == '/' || c == ':'))
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

/* An emitter call failed: raise, naming the path unless memory ran out. */
static void check(struct enc *e, int rc)
{
    if (rc == 0)
        return;
    if (e->err.code == ENOMEM)
        luaL_error(e->L, "yaml.encode: not enough memory");
    enc_error(e, e->err.msg);
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
    struct box *b = e->b;
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

static void emit_value(struct enc *e);

static void emit_table(struct enc *e)
{
    lua_State *L = e->L;
    kb_yaml_emitter *em = &e->b->em;
    int t = lua_gettop(L);
    if (e->depth >= KB_YAML_MAX_DEPTH)
        enc_error(e, "nesting deeper than 1000 levels");
    luaL_checkstack(L, 8, "yaml.encode nesting");
    lua_pushvalue(L, t);
    if (lua_rawget(L, e->visiting) != LUA_TNIL)
        enc_error(e, "cycle");
    lua_pop(L, 1);
    int want_seq = 0, want_map = 0;
    if (lua_getmetatable(L, t)) {
        want_seq = lua_rawequal(L, -1, KB_YAML_UV_ARRAY_MT);
        want_map = lua_rawequal(L, -1, KB_YAML_UV_MAP_MT) || luaL_getmetafield(L, t, "__order") != LUA_TNIL;
        lua_settop(L, t);
    }
    size_t base = e->b->nkeys;
    lua_Integer len = classify(e, want_seq, want_map);
    size_t nkeys = e->b->nkeys - base;
    lua_pushvalue(L, t);
    lua_pushboolean(L, 1);
    lua_rawset(L, e->visiting);
    struct pathseg *seg = &e->path[e->depth++];
    if (len >= 0) {
        check(e, kb_yaml_emit_seq_start(em, &e->err));
        for (lua_Integer i = 1; i <= len; i++) {
            *seg = (struct pathseg){ NULL, 0, i, 1 };
            lua_rawgeti(L, t, i);
            emit_value(e);
            lua_settop(L, t);
        }
        check(e, kb_yaml_emit_seq_end(em, &e->err));
    } else {
        check(e, kb_yaml_emit_map_start(em, &e->err));
        for (size_t j = 0; j < nkeys; j++) {
            struct keyent k = e->b->keys[base + j]; /* by value: children may move the array */
            *seg = (struct pathseg){ k.s, k.len, k.i, k.isint };
            if (k.isint) {
                check(e, kb_yaml_emit_key_int(em, k.i, &e->err));
                lua_pushinteger(L, k.i);
            } else {
                check(e, kb_yaml_emit_key(em, k.s, k.len, &e->err));
                lua_pushlstring(L, k.s, k.len);
            }
            lua_rawget(L, t);
            emit_value(e);
            lua_settop(L, t);
        }
        check(e, kb_yaml_emit_map_end(em, &e->err));
    }
    e->depth--;
    e->b->nkeys = base;
    lua_pushvalue(L, t);
    lua_pushnil(L);
    lua_rawset(L, e->visiting);
}

/* Write the value at the top of the stack. */
static void emit_value(struct enc *e)
{
    lua_State *L = e->L;
    kb_yaml_emitter *em = &e->b->em;
    switch (lua_type(L, -1)) {
    case LUA_TTABLE: emit_table(e); break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1))
            check(e, kb_yaml_emit_int(em, (int64_t)lua_tointeger(L, -1), &e->err));
        else
            check(e, kb_yaml_emit_float(em, (double)lua_tonumber(L, -1), &e->err));
        break;
    case LUA_TBOOLEAN: check(e, kb_yaml_emit_bool(em, lua_toboolean(L, -1), &e->err)); break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        check(e, kb_yaml_emit_string(em, s, n, &e->err));
        break;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, -1) == NULL) {
            check(e, kb_yaml_emit_null(em, &e->err));
            break;
        }
        /* fallthrough */
    default:
        lua_pushfstring(L, "cannot encode a %s value", luaL_typename(L, -1));
        enc_error(e, lua_tostring(L, -1));
    }
}

/* Stack after: 1 value, 2 opts, 3 order lookup or nil, 4 visiting, 5 box (to-be-closed). */
static void enc_open(lua_State *L, struct enc *e)
{
    luaL_checkany(L, 1);
    e->L = L;
    int indent = (int)kb_opt_integer(L, 2, "indent", 2);
    luaL_argcheck(L, indent >= 1 && indent <= 9, 2, "option 'indent' must be 1..9");
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
    check(e, kb_yaml_emitter_init(&e->b->em, indent, &e->err));
}

static int push_text(lua_State *L, struct enc *e)
{
    lua_pushlstring(L, e->b->em.text ? e->b->em.text : "", e->b->em.len);
    return 1;
}

int kb_yaml_l_encode(lua_State *L)
{
    struct enc e; /* ~32 KiB, most of it the path used for error messages */
    memset(&e, 0, sizeof e);
    enc_open(L, &e);
    lua_pushvalue(L, 1);
    emit_value(&e);
    return push_text(L, &e);
}

/* Each document is one top-level node: the emitter puts "---" between them. */
int kb_yaml_l_encode_all(lua_State *L)
{
    struct enc e;
    memset(&e, 0, sizeof e);
    luaL_checktype(L, 1, LUA_TTABLE);
    enc_open(L, &e);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        e.path[0] = (struct pathseg){ NULL, 0, i, 1 };
        e.depth = 1; /* errors name the document: [2].spec... */
        lua_rawgeti(L, 1, i);
        emit_value(&e);
        lua_settop(L, 5);
    }
    return push_text(L, &e);
}

void kb_yaml_encode_open(lua_State *L) { kb_yaml_box_meta(L, ENC_MT, enc_release); }
