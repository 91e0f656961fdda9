/* Lua scripts compiled into the binary, and the package.searchers entry that finds them. */
#ifndef KBOOT_LOADER_H
#define KBOOT_LOADER_H

#include <stddef.h>

#include "kboot/err.h"

/* Each script is luac5.4 bytecode with debug info; its chunk name ("@scripts/kboot/cli.lua") is
 * inside the bytecode, so errors and tracebacks name the script's file and line. */
struct kb_embedded {
    const char *name;    /* "kboot.cli", "init" */
    const char *path;    /* "scripts/kboot/cli.lua" */
    const char *summary; /* an entry script's first line "--- text" without "--- ", or NULL */
    const unsigned char *bytecode;
    size_t len;
    const unsigned char *source; /* the source text, gzip-compressed when source_gz */
    size_t source_len;           /* bytes at source */
    size_t source_size;          /* bytes of the text itself */
    int source_gz;
};

/* Generated at build time by cmake/embed_scripts.cmake; ends with a NULL name. */
extern const struct kb_embedded kb_embedded_scripts[];

const struct kb_embedded *kb_embedded_find(const char *name);

/* The source text of e, decompressed, NUL-terminated, in a malloc()ed *text (e->source_size bytes
 * before the NUL); 0, or -1 with err filled (zlib cannot be loaded). */
int kb_embedded_source(const struct kb_embedded *e, unsigned char **text, kb_err *err);

/* The docs/api pages as text (cmake/embed_docs.cmake), for the REPL's help(); ends with a NULL name. */
struct kb_embedded_doc {
    const char *name; /* "kube" for docs/api/kube.md */
    const char *text; /* NUL-terminated */
    size_t len;
};
extern const struct kb_embedded_doc kb_embedded_docs[];

#ifdef LUA_VERSION_NUM
/* Install the searcher (override dir first, then embedded) right after the preload searcher.
 * override_dir may be NULL. Embedded chunks load as bytecode only ("b"), files from the
 * override dir as source text only ("t"). */
void kb_loader_install(lua_State *L, const char *override_dir);

/* Load entry script NAME (override dir, then embedded) as a chunk on the stack.
 * Returns a lua_load status, or -1 with a message pushed when there is no such script. */
int kb_loader_load_script(lua_State *L, const char *name);

/* The override directory (--scripts DIR / KBOOT_SCRIPTS), or NULL. */
const char *kb_loader_override_dir(lua_State *L);

/* Push DIR/<name with '.' as '/'>.lua and return 1 when that regular file exists; else 0. */
int kb_loader_override_path(lua_State *L, const char *name);
#endif

#endif
