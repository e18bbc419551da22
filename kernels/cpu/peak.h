/* Compute peaks of the CPU linear paths, for `pp8 bench`'s compute bound: per kernel path (the names
 * cpu_linear_path gives), the rate of the instruction its inner loop is built on, measured with the
 * operands in registers or tiles (no memory traffic) and the caller's thread count. These are ceilings,
 * not the kernels' achieved rates (pp8 bench-linear measures those), and they say nothing about memory.
 * Ops are counted 2 per multiply-add (int8: 2 per MAC). */
#ifndef PP8_PEAK_H
#define PP8_PEAK_H

#include "../dtype.h"

typedef enum PeakProbe {
    PEAK_SCALAR_INT,  /* scalar imul + add: the int8 "scalar" kernel's MAC */
    PEAK_SCALAR_FP32, /* scalar mulss + addss (no FMA: the 16-bit "scalar" kernel is built without contraction) */
    PEAK_AVX2_INT8,   /* vpabsb/vpsignb, vpmaddubsw, vpmaddwd, vpaddd on ymm: avx2-int8's sequence */
    PEAK_AVX2_FMA,    /* vfmadd ymm: avx2-fma, avx2-f16c */
    PEAK_AVX512_FMA,  /* vfmadd zmm: avx512-f16c, avx512-fma */
    PEAK_AVX512_VNNI, /* vpdpbusd zmm: avx512-vnni */
    PEAK_AVX512_BF16, /* vdpbf16ps zmm: avx512-bf16 */
    PEAK_AMX_INT8,    /* tdpbssd: amx-int8 */
    PEAK_AMX_BF16,    /* tdpbf16ps: amx-bf16, and amx-f16split at a quarter (four per useful product) */
    PEAK_COUNT
} PeakProbe;

/* short name ("avx512-vnni") and the instruction measured ("vpdpbusd zmm") */
const char *cpu_peak_name(PeakProbe p);
const char *cpu_peak_what(PeakProbe p);
/* 0 scalar, 1 avx2, 2 avx512, 3 amx; and whether the probe counts integer ops (1) or flops (0) */
int cpu_peak_tier(PeakProbe p);
int cpu_peak_is_int(PeakProbe p);
/* Can this machine (CPUID, OS state, AMX permission: the linear dispatch's own checks) run it? */
int cpu_peak_available(PeakProbe p);
/* GOP/s with `threads` OpenMP threads, every thread running the loop at once: the best of 9 runs of
 * ~4 ms, ~40 ms in all (a register-resident loop cannot run faster than the core allows, so the best
 * run is the one least disturbed by other processes, not an outlier). 0 when not available here. */
double cpu_peak_gops(PeakProbe p, int threads);

/* The probe that bounds linear path `path` for weights `wdt`, and the useful ops one probe op is worth
 * (*useful: 1, or 0.25 for amx-f16split). Returns 0 for a known path; 1 for a name this table does not
 * know, for which *p is the widest FMA probe the machine has (a path added to linear.c without a probe
 * here; the caller should say so). */
int cpu_peak_for_path(DType wdt, const char *path, PeakProbe *p, double *useful);

/* ---- internal: the loops peak.c times (peak_avx2.c, peak_avx512.c, peak_amx.c, peak.c's scalar ones),
 * run only after cpu_peak_available. Each runs `iters` iterations of PEAK_OPS_* ops on the calling thread
 * and returns a value made from its accumulators, so the compiler must compute them. */
#define PEAK_OPS_SCALAR_INT (6 * 2)                 /* 6 chains x (imul + add) */
#define PEAK_OPS_SCALAR_FP32 (8 * 2)                /* 8 chains x (mulss + addss) */
#define PEAK_OPS_AVX2_INT8 (4 * 32 * 2)             /* 4 chains x 32 u8*s8 MACs */
#define PEAK_OPS_AVX2_FMA (12 * 8 * 2)              /* 12 chains x 8 lanes */
#define PEAK_OPS_AVX512_FMA (12 * 16 * 2)           /* 12 chains x 16 lanes */
#define PEAK_OPS_AVX512_VNNI (12 * 16 * 4 * 2)      /* 12 chains x 16 lanes x 4 MACs */
#define PEAK_OPS_AVX512_BF16 (12 * 16 * 2 * 2)      /* 12 chains x 16 lanes x 2 MACs */
#define PEAK_OPS_AMX_INT8 (4.0 * 16 * 16 * 64 * 2)  /* 4 C tiles x (16 x 16) x 64 MACs */
#define PEAK_OPS_AMX_BF16 (4.0 * 16 * 16 * 32 * 2)  /* 4 C tiles x (16 x 16) x 32 MACs */
double peak_loop_avx2_int8(long iters);
double peak_loop_avx2_fma(long iters);
double peak_loop_avx512_fma(long iters);
double peak_loop_avx512_vnni(long iters);
double peak_loop_avx512_bf16(long iters);
double peak_loop_amx_int8(long iters);
double peak_loop_amx_bf16(long iters);

#endif
