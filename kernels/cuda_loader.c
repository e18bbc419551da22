/* The CUDA backend, loaded when it is needed. The backend (kernels/cuda/, cuBLASLt) and the NCCL
 * transport are built into one module, libpp8_cuda.so, beside the pp8 binary: linking CUDA's runtime,
 * cuBLASLt and NCCL into pp8 itself cost every process ~150-220 MB of resident memory at start-up (the
 * libraries' relocations and data), GPU or not, on every CPU rank, which no plan can account for. So a
 * process maps the module only when a GPU can be there (a /dev/nvidia* or /dev/dxg device node, and
 * CUDA_VISIBLE_DEVICES not hiding them all) or --backend cuda asks for it.
 * The module is found at $PP8_CUDA_PLUGIN, else beside the executable, else where the build put it;
 * PP8_CUDA_LOAD=1 loads it even where no device node says a GPU can be there. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "cuda_host.h"

#ifndef PP8_CUDA_PLUGIN_BUILT
#define PP8_CUDA_PLUGIN_BUILT "libpp8_cuda.so"
#endif

static void *g_mod;
static char g_err[1024];
static char g_path[PATH_MAX];

/* the module's path: $PP8_CUDA_PLUGIN, libpp8_cuda.so beside the executable, or the build's */
static const char *plugin_path(void)
{
    const char *env = getenv("PP8_CUDA_PLUGIN");
    if (env && env[0]) return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            snprintf(g_path, sizeof g_path, "%.*s/libpp8_cuda.so", (int)(slash - exe), exe);
            if (access(g_path, R_OK) == 0) return g_path;
        }
    }
    return PP8_CUDA_PLUGIN_BUILT;
}

/* The module, loaded once; NULL with g_err set when it cannot be. Its own copy of kernels/ reports
 * fatal errors with this process's log prefix and abort hook (MPI_Abort under mpirun). */
static void *module(void)
{
    if (g_mod || g_err[0]) return g_mod;
    const char *p = plugin_path();
    void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(g_err, sizeof g_err, "cannot load pp8's CUDA module %s (%s): rebuild pp8, or set PP8_CUDA_PLUGIN",
                 p, dlerror());
        return NULL;
    }
    void (*set_prefix)(const char *) = (void (*)(const char *))dlsym(h, "pp8_set_log_prefix");
    void (*set_hook)(void (*)(int)) = (void (*)(void (*)(int)))dlsym(h, "pp8_set_abort_hook");
    if (set_prefix) set_prefix(pp8_log_prefix());
    if (set_hook && pp8_abort_hook()) set_hook(pp8_abort_hook());
    g_mod = h;
    return g_mod;
}

static void *sym(const char *name)
{
    void *h = module();
    if (!h) return NULL;
    void *f = dlsym(h, name);
    if (!f) snprintf(g_err, sizeof g_err, "pp8's CUDA module lacks %s (%s): rebuild pp8", name, dlerror());
    return f;
}

const char *backend_cuda_load_error(void) { return g_err[0] ? g_err : NULL; }

/* Whether a GPU can be visible at all, without loading CUDA: an NVIDIA device node (or WSL's /dev/dxg),
 * and CUDA_VISIBLE_DEVICES not empty or starting with an invalid index such as -1 (CUDA then shows none). */
static int gpu_possible(void)
{
    const char *load = getenv("PP8_CUDA_LOAD"); /* 1: load the module anyway (tests, odd device setups) */
    if (load && !strcmp(load, "1")) return 1;
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    if (v && (!v[0] || v[0] == '-')) return 0;
    return access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0 || access("/dev/dxg", F_OK) == 0;
}

int backend_cuda_device_count(void)
{
    if (!gpu_possible()) return 0;
    int (*f)(void) = (int (*)(void))sym("backend_cuda_device_count");
    return f ? f() : 0;
}

int backend_cuda_bus_ids(char *ids, int max, size_t stride)
{
    if (!gpu_possible()) return 0;
    int (*f)(char *, int, size_t) = (int (*)(char *, int, size_t))sym("backend_cuda_bus_ids");
    return f ? f(ids, max, stride) : 0;
}

Backend *backend_cuda_create(const BackendOptions *o, char *err, size_t errlen)
{
    Backend *(*f)(const BackendOptions *, char *, size_t) =
        (Backend * (*)(const BackendOptions *, char *, size_t)) sym("backend_cuda_create");
    if (!f) {
        snprintf(err, errlen, "--backend cuda: %s", g_err);
        return NULL;
    }
    return f(o, err, errlen);
}

void *backend_cuda_stream(Backend *b)
{
    void *(*f)(Backend *) = (void *(*)(Backend *))sym("backend_cuda_stream");
    return f ? f(b) : NULL;
}

int backend_cuda_int8_quantize(Backend *b, const uint16_t *x, int rows, int k, float t, int8_t *q, float *absmax,
                               int32_t *cols)
{
    int (*f)(Backend *, const uint16_t *, int, int, float, int8_t *, float *, int32_t *) =
        (int (*)(Backend *, const uint16_t *, int, int, float, int8_t *, float *, int32_t *))sym(
            "backend_cuda_int8_quantize");
    PP8_CHECK(f != NULL, "backend_cuda_int8_quantize: the CUDA module is not loaded");
    return f(b, x, rows, k, t, q, absmax, cols);
}

double backend_cuda_read_gbs(Backend *b, size_t bytes)
{
    double (*f)(Backend *, size_t) = (double (*)(Backend *, size_t))sym("backend_cuda_read_gbs");
    return f ? f(b, bytes) : 0.0;
}

size_t backend_cuda_mem_bytes(Backend *b)
{
    size_t (*f)(Backend *) = (size_t(*)(Backend *))sym("backend_cuda_mem_bytes");
    return f ? f(b) : 0;
}

int backend_cuda_mem_stats(Backend *b, CudaMemStats *s)
{
    int (*f)(Backend *, CudaMemStats *) = (int (*)(Backend *, CudaMemStats *))sym("backend_cuda_mem_stats");
    return f ? f(b, s) : -1;
}

int backend_cuda_conv_check(Backend *b, uint64_t mismatch[2], int64_t first[2])
{
    int (*f)(Backend *, uint64_t *, int64_t *) = (int (*)(Backend *, uint64_t *, int64_t *))sym("backend_cuda_conv_check");
    return f ? f(b, mismatch, first) : -1;
}
