#include "kboot/dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int kb_dl_load(const char *env, const char *soname, const char *package, const kb_dl_sym *syms, size_t n,
               char *err, size_t errlen)
{
    const char *lib = env ? getenv(env) : NULL;
    if (!lib || !*lib)
        lib = soname;
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(err, errlen, "%s cannot be loaded: %s; install %s", lib, why ? why : "unknown error", package);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(*syms[i].slot = dlsym(h, syms[i].name))) {
            snprintf(err, errlen, "%s cannot be used: it has no %s; install %s", lib, syms[i].name, package);
            for (size_t j = 0; j < i; j++)
                *syms[j].slot = NULL;
            dlclose(h);
            return -1;
        }
    }
    return 0;
}
