/* Compute-peak probes of the CPU linear paths (peak.h): which instruction bounds each path, whether this
 * machine can run it, and the timing (OpenMP threads all running the same register-resident loop at
 * once). The SIMD loops live in peak_avx2.c / peak_avx512.c / peak_amx.c and run only after the linear
 * dispatch's own CPUID checks say their path exists here; the scalar loops are here. It does not model
 * the kernels' other work (quantization, epilogues, amx-f16split's weight split): the memory side of
 * pp8 bench's bound and the kernels' own efficiency account for those. */
#include "peak.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "cpu_linear.h"

#define PEAK_RUN_S 0.004 /* seconds per timed run: short, so that some of them run undisturbed on a shared machine */
#define PEAK_RUNS 9

typedef double (*PeakLoop)(long iters);

static volatile uint32_t g_peak_bits = 0x12345679u;
static volatile double g_peak_sink; /* the loops' results end here, so they must be computed */

/* Scalar loops: built without vectorization, so they stay what the scalar kernels run (one multiply and
 * one add per MAC, linear.c: imul/add for int8, mulss/addss for 16-bit with -ffp-contract=off). The
 * empty asm makes the factors look new every iteration, so the products are not hoisted out of the
 * loop; six (int) or eight (fp, addss latency 4 at two per cycle) add chains. */
__attribute__((optimize("no-tree-vectorize"))) static double peak_loop_scalar_int(long iters)
{
    uint32_t x0 = g_peak_bits, x1 = x0 ^ 0x55u, x2 = x0 + 7u, y0 = (x0 & 0xf0u) | 3u, y1 = x0 >> 3;
    uint32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0;
    for (long i = 0; i < iters; i++) {
        __asm__("" : "+r"(x0), "+r"(x1), "+r"(x2));
        s0 += x0 * y0;
        s1 += x1 * y0;
        s2 += x2 * y0;
        s3 += x0 * y1;
        s4 += x1 * y1;
        s5 += x2 * y1;
    }
    return (double)s0 + s1 + s2 + s3 + s4 + s5;
}

__attribute__((optimize("no-tree-vectorize"))) static double peak_loop_scalar_fp32(long iters)
{
    float x0 = 1e-3f + (float)(g_peak_bits & 1), x1 = 2e-3f, y0 = 0.999f, y1 = 0.998f, y2 = 0.997f, y3 = 0.996f;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (long i = 0; i < iters; i++) {
        __asm__("" : "+x"(x0), "+x"(x1));
        s0 = s0 + x0 * y0;
        s1 = s1 + x0 * y1;
        s2 = s2 + x0 * y2;
        s3 = s3 + x0 * y3;
        s4 = s4 + x1 * y0;
        s5 = s5 + x1 * y1;
        s6 = s6 + x1 * y2;
        s7 = s7 + x1 * y3;
    }
    return (double)s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

typedef struct PeakInfo {
    const char *name, *what;
    int tier, is_int;
    double ops; /* per loop iteration */
    PeakLoop loop;
} PeakInfo;

static const PeakInfo g_peak[PEAK_COUNT] = {
    [PEAK_SCALAR_INT] = {"scalar-int", "imul + add", 0, 1, PEAK_OPS_SCALAR_INT, peak_loop_scalar_int},
    [PEAK_SCALAR_FP32] = {"scalar-fp32", "mulss + addss", 0, 0, PEAK_OPS_SCALAR_FP32, peak_loop_scalar_fp32},
    [PEAK_AVX2_INT8] = {"avx2-int8", "vpsignb + vpmaddubsw + vpmaddwd + vpaddd ymm", 1, 1, PEAK_OPS_AVX2_INT8,
                        peak_loop_avx2_int8},
    [PEAK_AVX2_FMA] = {"avx2-fma", "vfmadd ymm", 1, 0, PEAK_OPS_AVX2_FMA, peak_loop_avx2_fma},
    [PEAK_AVX512_FMA] = {"avx512-fma", "vfmadd zmm", 2, 0, PEAK_OPS_AVX512_FMA, peak_loop_avx512_fma},
    [PEAK_AVX512_VNNI] = {"avx512-vnni", "vpdpbusd zmm", 2, 1, PEAK_OPS_AVX512_VNNI, peak_loop_avx512_vnni},
    [PEAK_AVX512_BF16] = {"avx512-bf16", "vdpbf16ps zmm", 2, 0, PEAK_OPS_AVX512_BF16, peak_loop_avx512_bf16},
    [PEAK_AMX_INT8] = {"amx-int8", "tdpbssd", 3, 1, PEAK_OPS_AMX_INT8, peak_loop_amx_int8},
    [PEAK_AMX_BF16] = {"amx-bf16", "tdpbf16ps", 3, 0, PEAK_OPS_AMX_BF16, peak_loop_amx_bf16},
};

const char *cpu_peak_name(PeakProbe p) { return g_peak[p].name; }
const char *cpu_peak_what(PeakProbe p) { return g_peak[p].what; }
int cpu_peak_tier(PeakProbe p) { return g_peak[p].tier; }
int cpu_peak_is_int(PeakProbe p) { return g_peak[p].is_int; }

/* the linear dispatch's own answer (CPUID, XCR0, AMX permission; not capped by PP8_ISA) */
static int peak_has_path(DType wdt, const char *path)
{
    const char *names[8];
    int n = cpu_linear_path_list(wdt, names, 8);
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], path)) return 1;
    return 0;
}

int cpu_peak_available(PeakProbe p)
{
    switch (p) {
    case PEAK_SCALAR_INT:
    case PEAK_SCALAR_FP32: return 1;
    case PEAK_AVX2_INT8: return peak_has_path(DTYPE_I8, "avx2-int8");
    case PEAK_AVX2_FMA: return peak_has_path(DTYPE_F16, "avx2-f16c"); /* avx2 + fma + f16c */
    case PEAK_AVX512_FMA: return peak_has_path(DTYPE_F16, "avx512-f16c");
    case PEAK_AVX512_VNNI: return peak_has_path(DTYPE_I8, "avx512-vnni");
    case PEAK_AVX512_BF16: return peak_has_path(DTYPE_BF16, "avx512-bf16");
    case PEAK_AMX_INT8: return peak_has_path(DTYPE_I8, "amx-int8");
    case PEAK_AMX_BF16: return peak_has_path(DTYPE_BF16, "amx-bf16");
    default: return 0;
    }
}

/* seconds for `threads` threads to each run fn(iters), from a barrier to a barrier */
static double peak_time(PeakLoop fn, long iters, int threads, int *got)
{
    double t0 = 0, t1 = 0, sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
#pragma omp barrier
#pragma omp master
        {
            *got = omp_get_num_threads();
            t0 = omp_get_wtime();
        }
        sink += fn(iters);
#pragma omp barrier
#pragma omp master
        t1 = omp_get_wtime();
    }
    g_peak_sink = sink;
    return t1 - t0;
}

double cpu_peak_gops(PeakProbe p, int threads)
{
    if (p < 0 || p >= PEAK_COUNT || !cpu_peak_available(p)) return 0.0;
    if (threads <= 0) threads = omp_get_num_procs();
    const PeakInfo *q = &g_peak[p];
    /* size a run on one thread (this also pays AMX's first-use tile-state allocation) */
    long iters = 256;
    double t = 0;
    int got = 1;
    for (;;) {
        t = peak_time(q->loop, iters, 1, &got);
        if (t >= 2e-3 || iters > (1L << 40)) break;
        iters *= 4;
    }
    iters = (long)(iters * (PEAK_RUN_S / (t > 0 ? t : 1e-9))) + 1;
    double best = 0;
    for (int run = 0; run < PEAK_RUNS; run++) {
        t = peak_time(q->loop, iters, threads, &got);
        double gops = t > 0 ? got * (double)iters * q->ops / t * 1e-9 : 0.0;
        if (gops > best) best = gops;
    }
    return best;
}

typedef struct PeakPath {
    DType wdt; /* DTYPE_F32: the scalar 16-bit path, for either F16 or BF16 */
    const char *path;
    PeakProbe probe;
    double useful;
} PeakPath;

/* linear.c's g_path_name, and the lead's planned "avx512-fma" (bf16/fp16 converted to fp32, FMA) */
static const PeakPath g_peak_paths[] = {
    {DTYPE_I8, "scalar", PEAK_SCALAR_INT, 1},
    {DTYPE_I8, "avx2-int8", PEAK_AVX2_INT8, 1},
    {DTYPE_I8, "avx512-vnni", PEAK_AVX512_VNNI, 1},
    {DTYPE_I8, "amx-int8", PEAK_AMX_INT8, 1},
    {DTYPE_F32, "scalar", PEAK_SCALAR_FP32, 1},
    {DTYPE_BF16, "avx2-fma", PEAK_AVX2_FMA, 1},
    {DTYPE_BF16, "avx512-bf16", PEAK_AVX512_BF16, 1},
    {DTYPE_BF16, "amx-bf16", PEAK_AMX_BF16, 1},
    {DTYPE_F16, "avx2-f16c", PEAK_AVX2_FMA, 1},
    {DTYPE_F16, "avx512-f16c", PEAK_AVX512_FMA, 1},
    /* x.w = xh.wh + xh.wl + xl.wh + xl.wl: four tdpbf16ps per useful product (linear_amx.c) */
    {DTYPE_F16, "amx-f16split", PEAK_AMX_BF16, 0.25},
    {DTYPE_F32, "avx512-fma", PEAK_AVX512_FMA, 1},
};

int cpu_peak_for_path(DType wdt, const char *path, PeakProbe *p, double *useful)
{
    DType key = wdt == DTYPE_F16 || wdt == DTYPE_BF16 ? wdt : DTYPE_I8;
    for (size_t i = 0; path && i < sizeof g_peak_paths / sizeof g_peak_paths[0]; i++) {
        const PeakPath *e = &g_peak_paths[i];
        if ((e->wdt == key || (e->wdt == DTYPE_F32 && key != DTYPE_I8)) && !strcmp(e->path, path)) {
            *p = e->probe;
            *useful = e->useful;
            return 0;
        }
    }
    /* unknown: the widest fp32 FMA here (every 16-bit SIMD path converts to fp32 and FMAs, or does better) */
    *p = cpu_peak_available(PEAK_AVX512_FMA) ? PEAK_AVX512_FMA
         : cpu_peak_available(PEAK_AVX2_FMA) ? PEAK_AVX2_FMA
                                             : PEAK_SCALAR_FP32;
    *useful = 1;
    return 1;
}
