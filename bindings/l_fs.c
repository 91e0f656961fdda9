/* kboot.fs: files under the root prefix (runtime/fs*.c). Paths are cluster paths;
 * a relative path or one escaping the root is an argument error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kboot/fs.h"
#include "kboot/log.h"

#define LOCK_MT "kboot.fs.lock"

/* An absolute cluster path without NUL bytes and without ".." above the root. */
static const char *checkpath(lua_State *L, int idx)
{
    size_t len;
    const char *p = luaL_checklstring(L, idx, &len);
    char cp[KB_FS_PATH_MAX];
    kb_err e;
    if (strlen(p) != len)
        luaL_argerror(L, idx, "path contains a NUL byte");
    if (kb_fs_clean_path(p, cp, sizeof cp, &e))
        luaL_argerror(L, idx, e.msg);
    return p;
}

/* Permission bits: an integer (0x1a4, 420) or an octal string ("0644", "644"). The value is at
 * stack index idx; errors name argument arg (the options table when the mode is one of its fields). */
static unsigned tomode(lua_State *L, int idx, int arg, const char *what)
{
    lua_Integer m = -1;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        int isint;
        m = lua_tointegerx(L, idx, &isint);
        if (!isint)
            m = -1;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        char *end;
        if (*s && strspn(s, "01234567") == strlen(s) && strlen(s) <= 5)
            m = strtol(s, &end, 8);
    } else if (idx == arg) {
        luaL_typeerror(L, idx, "integer or octal string (mode)");
    } else {
        luaL_argerror(L, arg, lua_pushfstring(L, "option '%s': integer or octal string expected, got %s", what,
                                              luaL_typename(L, idx)));
    }
    if (m < 0 || m > 07777)
        luaL_argerror(L, arg,
                      lua_pushfstring(L, "bad %s '%s': 0..07777 (integer or octal string like \"0644\") expected",
                                      what, luaL_tolstring(L, idx, NULL)));
    return (unsigned)m;
}

static unsigned checkmode(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        luaL_argerror(L, idx, "mode expected (integer or octal string like \"0644\")");
    return tomode(L, idx, idx, "mode");
}

static void checkopts(lua_State *L, int idx, kb_fs_write_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mkdir = kb_opt_boolean(L, idx, "mkdir", 0);
    o->dir_mode = 0755;
    if (lua_istable(L, idx)) {
        if (lua_getfield(L, idx, "dir_mode") != LUA_TNIL)
            o->dir_mode = tomode(L, lua_gettop(L), idx, "dir_mode");
        lua_pop(L, 1);
    }
}

static int ok_or_fail(lua_State *L, int rc, const kb_err *e)
{
    if (rc < 0)
        return kb_pushfail(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

static int changed_result(lua_State *L, int rc, int changed, const kb_err *e)
{
    if (rc < 0)
        return kb_pushfail(L, e);
    lua_pushboolean(L, 1);
    lua_pushstring(L, changed ? "written" : "unchanged");
    return 2;
}

static int l_set_root(lua_State *L)
{
    const char *dir = luaL_optstring(L, 1, NULL);
    kb_err e;
    return ok_or_fail(L, kb_fs_set_root(dir, &e), &e);
}

static int l_root(lua_State *L)
{
    lua_pushstring(L, kb_fs_root());
    return 1;
}

static int l_resolver(lua_State *L)
{
    lua_pushstring(L, kb_fs_resolver());
    return 1;
}

static int l_path(lua_State *L)
{
    const char *p = checkpath(L, 1);
    char hp[KB_FS_PATH_MAX];
    kb_err e;
    if (kb_fs_host_path(p, hp, sizeof hp, &e))
        return luaL_argerror(L, 1, e.msg);
    lua_pushstring(L, hp);
    return 1;
}

static int l_write(lua_State *L)
{
    const char *p = checkpath(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    unsigned mode = checkmode(L, 3);
    kb_fs_write_opts o;
    checkopts(L, 4, &o);
    kb_err e;
    int changed = 0;
    int rc = kb_fs_write(p, data, len, mode, &o, &changed, &e);
    return changed_result(L, rc, changed, &e);
}

static int l_read(lua_State *L)
{
    const char *p = checkpath(L, 1);
    char *data;
    size_t len;
    kb_err e;
    if (kb_fs_read(p, &data, &len, &e))
        return kb_pushfail(L, &e);
    lua_pushlstring(L, data, len);
    kb_fs_free_data(data, len); /* the Lua string is Lua's; this copy is cleansed */
    return 1;
}

static int l_exists(lua_State *L)
{
    lua_pushboolean(L, kb_fs_exists(checkpath(L, 1)));
    return 1;
}

static int l_stat(lua_State *L)
{
    static const char *const types[] = { "none", "file", "dir", "link", "other" };
    const char *p = checkpath(L, 1);
    kb_fs_info st;
    kb_err e;
    if (kb_fs_stat(p, &st, &e))
        return kb_pushfail(L, &e);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, types[st.type]);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, st.mode);
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, st.size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, st.mtime);
    lua_setfield(L, -2, "mtime");
    lua_pushinteger(L, st.uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, st.gid);
    lua_setfield(L, -2, "gid");
    return 1;
}

static int l_list(lua_State *L)
{
    const char *p = checkpath(L, 1);
    char **names;
    size_t n;
    kb_err e;
    if (kb_fs_list(p, &names, &n, &e))
        return kb_pushfail(L, &e);
    /* Table creation may raise (memory): copy first, free after, so nothing leaks on
     * the normal path; an allocation error here leaks the list, which Lua cannot avoid. */
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    kb_fs_free_list(names, n);
    return 1;
}

static int l_mkdir(lua_State *L)
{
    const char *p = checkpath(L, 1);
    unsigned mode = checkmode(L, 2);
    kb_err e;
    return ok_or_fail(L, kb_fs_mkdir(p, mode, &e), &e);
}

static int l_remove(lua_State *L)
{
    const char *p = checkpath(L, 1);
    int recursive = kb_opt_boolean(L, 2, "recursive", 0);
    kb_err e;
    return ok_or_fail(L, kb_fs_remove(p, recursive, &e), &e);
}

/* unmount(path [, {force=, detach=, expire=}]): never follows a symlink at path */
static int l_unmount(lua_State *L)
{
    const char *p = checkpath(L, 1);
    int flags = 0;
    if (kb_opt_boolean(L, 2, "force", 0))
        flags |= KB_FS_UMOUNT_FORCE;
    if (kb_opt_boolean(L, 2, "detach", 0))
        flags |= KB_FS_UMOUNT_DETACH;
    if (kb_opt_boolean(L, 2, "expire", 0))
        flags |= KB_FS_UMOUNT_EXPIRE;
    kb_err e;
    return ok_or_fail(L, kb_fs_unmount(p, flags, &e), &e);
}

static int l_chmod(lua_State *L)
{
    const char *p = checkpath(L, 1);
    unsigned mode = checkmode(L, 2);
    kb_err e;
    return ok_or_fail(L, kb_fs_chmod(p, mode, &e), &e);
}

static int l_symlink(lua_State *L)
{
    size_t len;
    const char *target = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len > 0 && strlen(target) == len, 1, "non-empty target without NUL bytes expected");
    const char *p = checkpath(L, 2);
    kb_err e;
    int changed = 0;
    int rc = kb_fs_symlink(target, p, &changed, &e);
    return changed_result(L, rc, changed, &e);
}

static int l_readlink(lua_State *L)
{
    const char *p = checkpath(L, 1);
    char *target;
    kb_err e;
    if (kb_fs_readlink(p, &target, &e))
        return kb_pushfail(L, &e);
    lua_pushstring(L, target);
    free(target);
    return 1;
}

static int l_clean_temps(lua_State *L)
{
    const char *p = checkpath(L, 1);
    kb_err e;
    int n = kb_fs_clean_temps(p, &e);
    if (n < 0)
        return kb_pushfail(L, &e);
    lua_pushinteger(L, n);
    return 1;
}

static int l_set_dry_run(lua_State *L)
{
    kb_fs_set_dry_run(lua_toboolean(L, 1));
    return 0;
}

static int l_dry_run(lua_State *L)
{
    lua_pushboolean(L, kb_fs_dry_run());
    return 1;
}

static int l_recorded(lua_State *L)
{
    size_t n;
    const kb_fs_op *ops = kb_fs_recorded(&n);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const kb_fs_op *r = &ops[i];
        lua_createtable(L, 0, 4);
        lua_pushstring(L, kb_fs_op_name(r->op));
        lua_setfield(L, -2, "op");
        lua_pushstring(L, r->path);
        lua_setfield(L, -2, "path");
        if (r->op == KB_FS_OP_WRITE || r->op == KB_FS_OP_MKDIR || r->op == KB_FS_OP_CHMOD) {
            lua_pushinteger(L, r->mode);
            lua_setfield(L, -2, "mode");
        }
        if (r->data) {
            lua_pushlstring(L, r->data, r->len);
            lua_setfield(L, -2, "data");
        }
        if (r->target) {
            lua_pushstring(L, r->target);
            lua_setfield(L, -2, "target");
        }
        if (r->recursive) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "recursive");
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int l_reset_recorded(lua_State *L)
{
    kb_fs_reset_recorded();
    return 0;
}

/* ---- batches (group commit, include/kboot/fs.h) ---- */

static int l_begin(lua_State *L)
{
    kb_fs_batch_begin();
    return 0;
}

static int l_commit(lua_State *L)
{
    if (kb_fs_batch_depth() == 0)
        return luaL_error(L, "fs.commit: no batch is open (call fs.begin first)");
    kb_err e;
    return ok_or_fail(L, kb_fs_batch_commit(&e), &e);
}

static int l_discard(lua_State *L)
{
    kb_fs_batch_discard();
    return 0;
}

static int l_flush(lua_State *L)
{
    kb_err e;
    return ok_or_fail(L, kb_fs_batch_flush(&e), &e);
}

static int l_prune(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)kb_fs_batch_prune());
    return 1;
}

static int l_pending(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)kb_fs_batch_pending());
    lua_pushinteger(L, kb_fs_batch_depth());
    return 2;
}

/* fs.batch(fn, ...): fn(...) inside a batch, committed also when fn raises (then fn's error
 * is raised again); fn's results (true when none), or nil, err when the commit fails. */
static int l_batch(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int n = lua_gettop(L);
    kb_fs_batch_begin();
    int st = lua_pcall(L, n - 1, LUA_MULTRET, 0);
    kb_err e;
    int rc = kb_fs_batch_depth() > 0 ? kb_fs_batch_commit(&e) : 0; /* fn may have closed it */
    if (st != LUA_OK) {
        if (rc != 0)
            kb_log_write(KB_LOG_WARN, "fs", e.msg);
        return lua_error(L);
    }
    if (rc != 0)
        return kb_pushfail(L, &e);
    if (lua_gettop(L) == 0)
        lua_pushboolean(L, 1);
    return lua_gettop(L);
}

/* ---- lock handle ---- */

typedef struct lockbox {
    int fd;       /* -1 when nothing is held */
    int closed;
    char path[256];
} lockbox;

static lockbox *checklock(lua_State *L) { return luaL_checkudata(L, 1, LOCK_MT); }

/* __gc, __close and close: safe to call twice. */
static int lock_free(lua_State *L)
{
    lockbox *b = checklock(L);
    if (b->fd >= 0)
        kb_fs_unlock(b->fd);
    b->fd = -1;
    b->closed = 1;
    return 0;
}

static int lock_close(lua_State *L)
{
    lock_free(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int lock_tostring(lua_State *L)
{
    lockbox *b = checklock(L);
    lua_pushfstring(L, "kboot.fs.lock (%s%s)", b->path, b->closed ? ", closed" : "");
    return 1;
}

static int l_lock(lua_State *L)
{
    const char *p = checkpath(L, 1);
    kb_fs_write_opts o;
    checkopts(L, 2, &o);
    lockbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    b->fd = -1;
    luaL_setmetatable(L, LOCK_MT);
    snprintf(b->path, sizeof b->path, "%s", p);
    kb_err e;
    int fd = kb_fs_lock(p, &o, &e);
    if (fd == -1)
        return kb_pushfail(L, &e);
    b->fd = fd; /* -2: dry run without a lock file, nothing to hold */
    if (fd < 0)
        b->fd = -1;
    return 1;
}

static int state_gc(lua_State *L)
{
    kb_fs_reset();
    return 0;
}

int luaopen_kboot_fs(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "set_root", l_set_root },   { "root", l_root },
        { "path", l_path },           { "write", l_write },
        { "read", l_read },           { "exists", l_exists },
        { "stat", l_stat },           { "list", l_list },
        { "mkdir", l_mkdir },         { "remove", l_remove },
        { "chmod", l_chmod },         { "symlink", l_symlink },
        { "readlink", l_readlink },   { "clean_temps", l_clean_temps },
        { "set_dry_run", l_set_dry_run }, { "dry_run", l_dry_run },
        { "recorded", l_recorded },   { "reset_recorded", l_reset_recorded },
        { "lock", l_lock },           { "batch", l_batch },
        { "begin", l_begin },         { "commit", l_commit },
        { "flush", l_flush },         { "pending", l_pending },
        { "prune", l_prune },         { "unmount", l_unmount },
        { "discard", l_discard },
        { "resolver", l_resolver },
        { NULL, NULL },
    };
    static const luaL_Reg lock_methods[] = {
        { "close", lock_close }, { "__gc", lock_free }, { "__close", lock_free },
        { "__tostring", lock_tostring }, { NULL, NULL },
    };
    if (luaL_newmetatable(L, LOCK_MT)) {
        luaL_setfuncs(L, lock_methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    /* Frees the overlay and record when the state closes (keeps valgrind quiet). */
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, state_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "kboot.fs.state");
    luaL_newlib(L, fns);
    return 1;
}
