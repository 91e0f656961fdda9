/* Shared by the kboot.yaml binding's files: l_yaml.c (the module), l_yaml_decode.c and
 * l_yaml_encode.c. */
#ifndef KBOOT_L_YAML_H
#define KBOOT_L_YAML_H

#include <lauxlib.h>
#include <lua.h>

/* Upvalues of every module function: the metatables decoded sequences and mappings get, which
 * also tell the encoder how to write an empty or integer-keyed table. */
#define KB_YAML_UV_ARRAY_MT lua_upvalueindex(1)
#define KB_YAML_UV_MAP_MT lua_upvalueindex(2)

#define KB_YAML_MAX_DEPTH 1000
/* Decoding caps, far above anything Kubernetes keeps (etcd takes 1.5 MiB per object): a text of
 * 64 MB took 1.7 s and 130 MB of heap, and one scalar is held by libyaml and then by Lua. */
#define KB_YAML_MAX_INPUT (32 * 1024 * 1024)
#define KB_YAML_MAX_SCALAR (4 * 1024 * 1024)

/* Metatable of a to-be-closed box that frees C state on every way out, errors included. */
void kb_yaml_box_meta(lua_State *L, const char *name, lua_CFunction release);

/* l_yaml_decode.c */
void kb_yaml_decode_open(lua_State *L); /* registers the decoder's box metatable */
int kb_yaml_l_decode(lua_State *L);
int kb_yaml_l_decode_all(lua_State *L);

/* l_yaml_encode.c */
void kb_yaml_encode_open(lua_State *L);
int kb_yaml_l_encode(lua_State *L);
int kb_yaml_l_encode_all(lua_State *L);

#endif
