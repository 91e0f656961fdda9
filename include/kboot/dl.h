/* Optional shared libraries loaded on first use (dlopen), as systemd does with its optional
 * dependencies: kboot links neither libcurl (and its ~30 dependencies) nor libedit, so a run that
 * needs no HTTP or line editing never loads them. The caller keeps one typed pointer per function
 * (`static __typeof__(f) *sym_f;`, so calls are checked against the library's own prototypes) and
 * hands their addresses here by name. */
#ifndef KBOOT_DL_H
#define KBOOT_DL_H

#include <stddef.h>

typedef struct kb_dl_sym {
    const char *name;
    void **slot;
} kb_dl_sym;

/* Load the library named by the environment variable env when set and not empty, else soname, and
 * fill every slot. 0 on success (the library stays loaded for the life of the process); -1 with a
 * one-line reason in err: "<lib> cannot be loaded: <dlerror>; install <package>" or "<lib> cannot
 * be used: it has no <symbol>; install <package>" (then nothing stays loaded). */
int kb_dl_load(const char *env, const char *soname, const char *package, const kb_dl_sym *syms, size_t n,
               char *err, size_t errlen);

#endif
