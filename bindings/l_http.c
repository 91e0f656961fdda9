/* kboot.http: HTTP(S) client userdata over runtime/http.c, with JSON in and out (lua-cjson)
 * and error statuses turned into error objects (status, body). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "kboot/http.h"

#define CLIENT_MT "kboot.http.client"
#define RESP_MT "kboot.http.resp"

/* Upvalues of the JSON-aware functions. */
#define UV_ENCODE lua_upvalueindex(1) /* cjson.encode (raises on unencodable values: misuse) */
#define UV_DECODE lua_upvalueindex(2) /* cjson.safe.decode */

typedef struct {
    kb_http_client *c;
} client_box;

/* ---- client userdata ---- */

static int client_free(lua_State *L)
{
    client_box *b = luaL_checkudata(L, 1, CLIENT_MT);
    kb_http_client_free(b->c);
    b->c = NULL;
    return 0;
}

static kb_http_client *check_client(lua_State *L)
{
    client_box *b = luaL_checkudata(L, 1, CLIENT_MT);
    if (!b->c)
        luaL_error(L, "attempt to use a closed http client");
    return b->c;
}

static int l_client(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    kb_http_opts o;
    kb_http_opts_init(&o);
    kb_err e;
    o.server = kb_opt_string(L, 1, "server", NULL, NULL);
    if (!o.server)
        return luaL_argerror(L, 1, "option 'server' is required");
    /* libcurl is loaded here, on the first client: a missing library is nil, err, not a raise. */
    if (kb_http_global_init(&e) < 0)
        return kb_pushfail(L, &e);
    if (kb_http_check_server(o.server, &e) < 0)
        return luaL_argerror(L, 1, e.msg);
    o.ca_pem = kb_opt_string(L, 1, "ca_pem", NULL, &o.ca_len);
    o.cert_pem = kb_opt_string(L, 1, "cert_pem", NULL, &o.cert_len);
    o.key_pem = kb_opt_string(L, 1, "key_pem", NULL, &o.key_len);
    o.token = kb_opt_string(L, 1, "token", NULL, NULL);
    o.user_agent = kb_opt_string(L, 1, "user_agent", NULL, NULL);
    o.insecure = kb_opt_boolean(L, 1, "insecure", 0);
    o.plain_http = kb_opt_boolean(L, 1, "plain_http", 0);
    o.timeout = kb_opt_number(L, 1, "timeout", o.timeout);
    o.connect_timeout = kb_opt_number(L, 1, "connect_timeout", o.connect_timeout);
    o.retries = (int)kb_opt_integer(L, 1, "retries", o.retries);
    o.retry_deadline = kb_opt_number(L, 1, "retry_deadline", o.retry_deadline);
    luaL_argcheck(L, o.retries >= 0 && o.retries <= 100, 1, "option 'retries': 0..100 expected");
    luaL_argcheck(L, o.timeout >= 0 && o.connect_timeout >= 0 && o.retry_deadline >= 0, 1,
                  "timeouts must not be negative");
    if (o.token && strpbrk(o.token, "\r\n"))
        return luaL_argerror(L, 1, "option 'token' contains a line break");

    client_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, CLIENT_MT);
    lua_pushstring(L, o.server);
    lua_setiuservalue(L, -2, 1);
    if (!(b->c = kb_http_client_new(&o, &e)))
        return kb_pushfail(L, &e);
    return 1;
}

static int client_tostring(lua_State *L)
{
    client_box *b = luaL_checkudata(L, 1, CLIENT_MT);
    lua_getiuservalue(L, 1, 1);
    lua_pushfstring(L, "kboot.http.client (%s%s)", lua_tostring(L, -1), b->c ? "" : ", closed");
    return 1;
}

static int client_stats(lua_State *L)
{
    kb_http_stats s;
    kb_http_client_stats(check_client(L), &s);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, s.requests);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, s.connects);
    lua_setfield(L, -2, "connects");
    lua_pushinteger(L, s.retries);
    lua_setfield(L, -2, "retries");
    return 1;
}

/* ---- building a request from (method, path, opts) ---- */

/* Strings the request points at live in an anchor table at `anchor` until the call returns. */
static const char *anchor_str(lua_State *L, int anchor, int top)
{
    const char *s = lua_tostring(L, top);
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
    return s;
}

static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~", *s) && !(*s >= '0' && *s <= '9') && !((*s | 32) >= 'a' && (*s | 32) <= 'z'))
            return 0;
    return 1;
}

struct qpair {
    const char *k, *v;
    size_t i;
};

static int qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static const char *query_value(lua_State *L, int opts, const char *k)
{
    int t = lua_type(L, -1);
    if (t == LUA_TBOOLEAN) {
        lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
        lua_replace(L, -2);
    } else if (t == LUA_TNUMBER) {
        lua_pushstring(L, lua_tostring(L, -1));
        lua_replace(L, -2);
    } else if (t != LUA_TSTRING)
        luaL_argerror(L, opts, lua_pushfstring(L, "option 'query': value of '%s' must be a string, number or boolean", k));
    return lua_tostring(L, -1);
}

/* opts.query {k = v or {v1, v2}} -> sorted pairs (sorted so URLs are reproducible). */
static void build_query(lua_State *L, int opts, int anchor, kb_http_req *r)
{
    if (lua_isnoneornil(L, opts) || lua_getfield(L, opts, "query") == LUA_TNIL) {
        if (!lua_isnoneornil(L, opts))
            lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1))
        luaL_argerror(L, opts, lua_pushfstring(L, "option 'query': table expected, got %s", luaL_typename(L, -1)));
    int q = lua_gettop(L);
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, q); lua_pop(L, 1))
        n += lua_istable(L, -1) ? lua_rawlen(L, -1) : 1;
    struct qpair *pairs = lua_newuserdatauv(L, (n ? n : 1) * sizeof *pairs, 0);
    size_t i = 0;
    for (lua_pushnil(L); lua_next(L, q); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, opts, "option 'query': keys must be strings");
        const char *k = lua_tostring(L, -2);
        if (lua_istable(L, -1)) {
            lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer j = 1; j <= m && i < n; j++) {
                lua_rawgeti(L, -1, j);
                query_value(L, opts, k);
                pairs[i].v = anchor_str(L, anchor, lua_gettop(L));
                pairs[i].k = k;
                pairs[i].i = i;
                i++;
            }
        } else if (i < n) {
            lua_pushvalue(L, -1);
            query_value(L, opts, k);
            pairs[i].v = anchor_str(L, anchor, lua_gettop(L));
            pairs[i].k = k; /* keys are kept alive by the query table */
            pairs[i].i = i;
            i++;
        }
    }
    qsort(pairs, i, sizeof *pairs, qpair_cmp);
    const char **flat = lua_newuserdatauv(L, (2 * i + 1) * sizeof *flat, 0);
    for (size_t j = 0; j < i; j++) {
        flat[2 * j] = pairs[j].k;
        flat[2 * j + 1] = pairs[j].v;
    }
    r->query = flat;
    r->nquery = i;
    /* Keep the query table and the flat array alive via the anchor; drop the pair array. */
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
    lua_pop(L, 1);
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
}

static int has_header(const char *const *h, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (strncasecmp(h[i], name, len) == 0 && h[i][len] == ':')
            return 1;
    return 0;
}

/* opts.headers {Name = value} plus defaults (name/value pairs) the caller did not set. */
static void build_headers(lua_State *L, int opts, int anchor, kb_http_req *r, const char *const *defaults)
{
    size_t n = 0, nd = 0;
    while (defaults && defaults[2 * nd])
        nd++;
    int h = 0;
    if (!lua_isnoneornil(L, opts)) {
        if (lua_getfield(L, opts, "headers") != LUA_TNIL) {
            if (!lua_istable(L, -1))
                luaL_argerror(L, opts, lua_pushfstring(L, "option 'headers': table expected, got %s", luaL_typename(L, -1)));
            h = lua_gettop(L);
            for (lua_pushnil(L); lua_next(L, h); lua_pop(L, 1))
                n++;
        } else
            lua_pop(L, 1);
    }
    const char **lines = lua_newuserdatauv(L, (n + nd + 1) * sizeof *lines, 0);
    size_t i = 0;
    if (h) {
        for (lua_pushnil(L); lua_next(L, h); lua_pop(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING || !is_token(lua_tostring(L, -2)))
                luaL_argerror(L, opts, "option 'headers': bad header name");
            const char *name = lua_tostring(L, -2);
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
                luaL_argerror(L, opts, lua_pushfstring(L, "option 'headers': value of '%s' must be a string", name));
            const char *v = lua_tostring(L, -1);
            if (strpbrk(v, "\r\n"))
                luaL_argerror(L, opts, lua_pushfstring(L, "option 'headers': value of '%s' contains a line break", name));
            /* "Name;" is curl's spelling of a header with an empty value. */
            lua_pushfstring(L, *v ? "%s: %s" : "%s;", name, v);
            lines[i++] = anchor_str(L, anchor, lua_gettop(L));
        }
    }
    for (size_t d = 0; d < nd; d++) {
        if (has_header(lines, i, defaults[2 * d]))
            continue;
        lua_pushfstring(L, "%s: %s", defaults[2 * d], defaults[2 * d + 1]);
        lines[i++] = anchor_str(L, anchor, lua_gettop(L));
    }
    r->headers = lines;
    r->nheaders = i;
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
    if (h)
        lua_pop(L, 1);
}

static const char *check_method(lua_State *L, int idx)
{
    const char *m = luaL_checkstring(L, idx);
    size_t n = strlen(m);
    luaL_argcheck(L, n > 0 && n <= 16 && strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == n, idx,
                  "HTTP method in capitals expected (\"GET\", \"POST\", ...)");
    return m;
}

static const char *check_path(lua_State *L, int idx)
{
    const char *p = luaL_checkstring(L, idx);
    luaL_argcheck(L, p[0] == '/' && !strpbrk(p, " \t\r\n"), idx, "path must start with '/' and have no spaces");
    return p;
}

/* Common part of request/json/stream. Pushes the anchor table. */
static void build_req(lua_State *L, int opts, kb_http_req *r, double def_timeout)
{
    memset(r, 0, sizeof *r);
    if (!lua_isnoneornil(L, opts))
        luaL_checktype(L, opts, LUA_TTABLE);
    r->method = check_method(L, 2);
    r->path = check_path(L, 3);
    r->body = kb_opt_string(L, opts, "body", NULL, &r->body_len);
    r->timeout = kb_opt_number(L, opts, "timeout", NAN);
    r->tls_info = kb_opt_boolean(L, opts, "tls_info", 0);
    lua_Integer retries = kb_opt_integer(L, opts, "retries", LUA_MININTEGER);
    if (isnan(r->timeout))
        r->timeout = def_timeout; /* not given: the client's (-1) or the stream default (0) */
    else
        luaL_argcheck(L, r->timeout >= 0, opts, "option 'timeout' must not be negative");
    if (retries == LUA_MININTEGER)
        r->retries = -1; /* the client's */
    else {
        luaL_argcheck(L, retries >= 0 && retries <= 100, opts, "option 'retries': 0..100 expected");
        r->retries = (int)retries;
    }
    lua_newtable(L);
}

/* ---- responses ---- */

static int resp_gc(lua_State *L)
{
    kb_http_resp_free(luaL_checkudata(L, 1, RESP_MT));
    return 0;
}

/* A response box, so a memory error while converting it cannot leak it. */
static kb_http_resp *new_resp(lua_State *L)
{
    kb_http_resp *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, RESP_MT);
    return r;
}

static void push_resp(lua_State *L, const kb_http_resp *r)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, 0, (int)r->nheaders);
    for (size_t i = 0; i < r->nheaders; i++) {
        lua_pushstring(L, r->headers[2 * i + 1]);
        lua_setfield(L, -2, r->headers[2 * i]);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body, r->body_len);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, r->http_version ? r->http_version : "1.1");
    lua_setfield(L, -2, "http_version");
    const struct {
        const char *name;
        double v;
    } steps[] = { { "dns", r->timing.dns }, { "connect", r->timing.connect }, { "tls", r->timing.tls },
                  { "first_byte", r->timing.first_byte }, { "total", r->timing.total } };
    lua_createtable(L, 0, 5);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        lua_pushnumber(L, steps[i].v);
        lua_setfield(L, -2, steps[i].name);
    }
    lua_setfield(L, -2, "timing");
    if (r->primary_ip[0]) {
        lua_pushstring(L, r->primary_ip);
        lua_setfield(L, -2, "ip");
        lua_pushinteger(L, r->primary_port);
        lua_setfield(L, -2, "port");
    }
    if (r->certs) {
        lua_createtable(L, (int)r->ncerts, 0);
        for (size_t i = 0; i < r->ncerts; i++) {
            lua_pushstring(L, r->certs[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "certs");
    }
    if (r->info) {
        lua_pushstring(L, r->info);
        lua_setfield(L, -2, "info");
    }
}

/* nil, err for an error status: err {op, msg, status, body}. The message is the status and the
 * first 200 bytes of the body on one line; what the body means (a Kubernetes Status, say) is
 * for the caller to read (kboot.kube does). */
static int push_status_error(lua_State *L, const char *method, const char *path, const kb_http_resp *r)
{
    kb_err e;
    memset(&e, 0, sizeof e);
    snprintf(e.op, sizeof e.op, "%s", method);
    e.status = r->status;
    char excerpt[201];
    size_t n = r->body_len < 200 ? r->body_len : 200;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)r->body[i];
        excerpt[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    while (n > 0 && excerpt[n - 1] == ' ')
        n--;
    excerpt[n] = '\0';
    snprintf(e.msg, sizeof e.msg, "%s %s: %ld%s%s", method, path, r->status, n ? ": " : "", excerpt);
    lua_pushnil(L);
    kb_push_errobj(L, &e);
    lua_pushlstring(L, r->body, r->body_len);
    lua_setfield(L, -2, "body");
    return 2;
}

/* cjson 2.1 gives every number as a float; integral ones become integers again so that
 * replicas = 1 stays 1 when re-encoded as YAML. */
static void fix_integers(lua_State *L, int idx, int depth)
{
    if (depth > 1000 || !lua_checkstack(L, 3))
        return;
    idx = lua_absindex(L, idx);
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
        if (lua_type(L, -1) == LUA_TTABLE)
            fix_integers(L, -1, depth + 1);
        else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
            lua_Number d = lua_tonumber(L, -1);
            if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
                lua_pushvalue(L, -2);
                lua_pushinteger(L, (lua_Integer)d);
                lua_rawset(L, idx);
            }
        }
    }
}

/* ---- methods ---- */

static int client_request(lua_State *L)
{
    kb_http_client *c = check_client(L);
    lua_settop(L, 4);
    kb_http_req r;
    build_req(L, 4, &r, -1);
    int anchor = lua_gettop(L);
    build_query(L, 4, anchor, &r);
    build_headers(L, 4, anchor, &r, NULL);
    kb_http_resp *resp = new_resp(L);
    kb_err e;
    if (kb_http_request(c, &r, resp, &e) < 0)
        return kb_pushfail(L, &e);
    push_resp(L, resp);
    return 1;
}

static int client_json(lua_State *L)
{
    kb_http_client *c = check_client(L);
    lua_settop(L, 5);
    kb_http_req r;
    build_req(L, 5, &r, -1);
    int anchor = lua_gettop(L);
    if (!lua_isnoneornil(L, 4)) {
        if (lua_type(L, 4) == LUA_TSTRING)
            lua_pushvalue(L, 4);
        else {
            lua_pushvalue(L, UV_ENCODE);
            lua_pushvalue(L, 4);
            lua_call(L, 1, 1);
        }
        r.body = lua_tolstring(L, -1, &r.body_len);
        lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
    }
    const char *ctype = kb_opt_string(L, 5, "content_type", "application/json", NULL);
    const char *defaults[] = { "Accept", "application/json", r.body ? "Content-Type" : NULL, ctype, NULL, NULL };
    build_query(L, 5, anchor, &r);
    build_headers(L, 5, anchor, &r, defaults);
    kb_http_resp *resp = new_resp(L);
    kb_err e;
    if (kb_http_request(c, &r, resp, &e) < 0)
        return kb_pushfail(L, &e);
    if (resp->status >= 400)
        return push_status_error(L, r.method, r.path, resp);
    if (resp->body_len == 0)
        lua_newtable(L);
    else {
        lua_pushvalue(L, UV_DECODE);
        lua_pushlstring(L, resp->body, resp->body_len);
        lua_call(L, 1, 2);
        if (lua_isnil(L, -2)) {
            kb_err je;
            memset(&je, 0, sizeof je);
            snprintf(je.op, sizeof je.op, "%s", r.method);
            snprintf(je.msg, sizeof je.msg, "%s %s: %ld response is not valid JSON: %s", r.method, r.path,
                     resp->status, lua_tostring(L, -1));
            je.status = resp->status;
            return kb_pushfail(L, &je);
        }
        lua_pop(L, 1);
        if (lua_istable(L, -1))
            fix_integers(L, -1, 0);
    }
    push_resp(L, resp);
    return 2;
}

struct stream_ctx {
    lua_State *L;
    int fn;       /* stack index of the callback */
    int errslot;  /* stack index holding the callback's error, if any */
    int failed;
};

/* fn, data (light userdata), len: fn(chunk), run under pcall so pushing the chunk may fail. */
static int call_chunk(lua_State *L)
{
    const char *data = lua_touserdata(L, 2);
    size_t len = (size_t)lua_tointeger(L, 3);
    lua_settop(L, 1);
    lua_pushlstring(L, data, len);
    lua_call(L, 1, 1);
    return 1;
}

/* Runs inside curl: a Lua error must not unwind through it, so the callback runs under
 * pcall and its error is re-raised after curl has returned. */
static int on_chunk(void *ud, const char *data, size_t len)
{
    struct stream_ctx *s = ud;
    lua_State *L = s->L;
    if (!lua_checkstack(L, 5)) {
        s->failed = 1;
        lua_pushliteral(L, "stack overflow in stream callback");
        lua_replace(L, s->errslot);
        return 0;
    }
    lua_pushcfunction(L, call_chunk);
    lua_pushvalue(L, s->fn);
    lua_pushlightuserdata(L, (void *)data);
    lua_pushinteger(L, (lua_Integer)len);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        s->failed = 1;
        lua_replace(L, s->errslot);
        return 0;
    }
    int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return !stop;
}

static int client_stream(lua_State *L)
{
    kb_http_client *c = check_client(L);
    luaL_checktype(L, 5, LUA_TFUNCTION);
    lua_settop(L, 5);
    kb_http_req r;
    build_req(L, 4, &r, 0); /* a watch runs until the server ends it: no timeout by default */
    int anchor = lua_gettop(L);
    build_query(L, 4, anchor, &r);
    build_headers(L, 4, anchor, &r, NULL);
    lua_pushnil(L);
    struct stream_ctx s = { L, 5, lua_gettop(L), 0 };
    r.on_chunk = on_chunk;
    r.ud = &s;
    kb_http_resp *resp = new_resp(L);
    kb_err e;
    int rc = kb_http_request(c, &r, resp, &e);
    if (s.failed) {
        kb_http_resp_free(resp);
        lua_pushvalue(L, s.errslot);
        return lua_error(L);
    }
    if (rc < 0)
        return kb_pushfail(L, &e);
    if (resp->status < 200 || resp->status >= 300)
        return push_status_error(L, r.method, r.path, resp);
    lua_pushboolean(L, 1);
    return 1;
}

static void push_cjson_fn(lua_State *L, const char *mod, const char *fn)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
}

/* Does not load libcurl: offline commands require this module without making requests. */
int luaopen_kboot_http(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "request", client_request }, { "json", client_json },   { "stream", client_stream },
        { "stats", client_stats },     { "close", client_free },  { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", client_free }, { "__close", client_free }, { "__tostring", client_tostring }, { NULL, NULL },
    };
    luaL_newmetatable(L, RESP_MT);
    lua_pushcfunction(L, resp_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    luaL_newmetatable(L, CLIENT_MT);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    push_cjson_fn(L, "cjson", "encode");
    push_cjson_fn(L, "cjson.safe", "decode");
    luaL_setfuncs(L, methods, 2);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    lua_newtable(L);
    lua_pushcfunction(L, l_client);
    lua_setfield(L, -2, "client");
    return 1;
}
