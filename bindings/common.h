/* Helpers shared by the bindings: the `nil, err` convention and option-table access. */
#ifndef KBOOT_BINDINGS_COMMON_H
#define KBOOT_BINDINGS_COMMON_H

#include <lauxlib.h>
#include <lua.h>

#include "kboot/err.h"

#define KB_ERROR_MT "kboot.error"

/* Push an error object {op=, msg=, status=?, code=?} whose tostring is msg. */
void kb_push_errobj(lua_State *L, const kb_err *e);
/* Push nil and the error object; return 2 (so `return kb_pushfail(L, &e);`). */
int kb_pushfail(lua_State *L, const kb_err *e);
/* Same, building the kb_err in place. */
int kb_fail(lua_State *L, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Option tables: read field `k` of the table at `idx`, which must be the options table's argument
 * index (errors say "bad argument #idx to 'f' (option 'k': ...)"). Absent (nil) gives the default;
 * a value of the wrong type, or a non-table at idx, raises that argument error. */
const char *kb_opt_string(lua_State *L, int idx, const char *k, const char *def, size_t *len);
lua_Integer kb_opt_integer(lua_State *L, int idx, const char *k, lua_Integer def);
lua_Number kb_opt_number(lua_State *L, int idx, const char *k, lua_Number def);
int kb_opt_boolean(lua_State *L, int idx, const char *k, int def);

/* Module openers (package.preload["kboot.<name>"]). */
int luaopen_kboot_error(lua_State *L);
int luaopen_kboot_log(lua_State *L);
int luaopen_kboot_fs(lua_State *L);
int luaopen_kboot_pki(lua_State *L);
int luaopen_kboot_crypto(lua_State *L);
int luaopen_kboot_yaml(lua_State *L);
int luaopen_kboot_http(lua_State *L);
int luaopen_kboot_time(lua_State *L);
int luaopen_kboot_build(lua_State *L);
int luaopen_kboot_hostfs(lua_State *L);

#endif
