/* The NCCL transport, from pp8's CUDA module (libpp8_cuda.so; kernels/cuda_loader.c says why it is a
 * module and where it is found). parallel/ does not call kernels/, so it opens the module itself:
 * dlopen of a loaded module returns the same handle. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport.h"

#ifndef PP8_CUDA_PLUGIN_BUILT
#define PP8_CUDA_PLUGIN_BUILT "libpp8_cuda.so"
#endif

Transport *transport_nccl_create(void *stream, char *err, size_t errlen)
{
    char path[PATH_MAX] = PP8_CUDA_PLUGIN_BUILT, exe[PATH_MAX];
    const char *env = getenv("PP8_CUDA_PLUGIN");
    ssize_t n;
    if (env && env[0]) {
        snprintf(path, sizeof path, "%s", env);
    } else if ((n = readlink("/proc/self/exe", exe, sizeof exe - 1)) > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/'), beside[PATH_MAX];
        if (slash) {
            snprintf(beside, sizeof beside, "%.*s/libpp8_cuda.so", (int)(slash - exe), exe);
            if (access(beside, R_OK) == 0) snprintf(path, sizeof path, "%s", beside);
        }
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    Transport *(*f)(void *, char *, size_t) = h ? (Transport * (*)(void *, char *, size_t)) dlsym(h, "transport_nccl_create") : NULL;
    if (!f) {
        snprintf(err, errlen, "cannot load the NCCL transport from pp8's CUDA module %s (%s): rebuild pp8, or set "
                              "PP8_CUDA_PLUGIN", path, dlerror());
        return NULL;
    }
    return f(stream, err, errlen);
}
