/* CPU linear layers: packing, run-time ISA dispatch, LLM.int8() activation quantization and outlier
 * columns, the scalar kernels and epilogues, and the OpenMP split over output columns. The SIMD inner
 * loops live in linear_avx512.c / linear_amx.c / linear_avx2.c and run only after the CPUID checks here.
 * Deliberately no allocation per call (cpu_linear_reserve sizes everything) and no per-call choice
 * that depends on the thread count: every output is computed by one thread in a fixed order.
 *
 * Why hand-written kernels and not oneDNN (shared/ANCHORS.md, this machine kind): oneDNN 2.6 s8 matmul
 * reaches 5.5-6.1 GB/s (1T) / 10-11.5 GB/s (2T) at M=1, 60-90% of the 11.2-12.1 / 20.3-23.1 GB/s
 * read ceiling, 220-310 GOP/s at M=32 (~37% of min(bandwidth bound, AMX peak)) and 300-500 GOP/s at
 * M=512. The issue-3 targets are >= 85% at M=1 and >= 70% at M=32. These kernels, `pp8 bench-linear`
 * on this VM with weights on 2 MiB pages: M=1 int8 0.96-1.0 of a prefetching read of the same
 * weights (17.5-18.4 GB/s 1T, 33-35 GB/s 2T), M=32 0.76-0.90 of the bandwidth bound, M=512
 * 1.3-1.5 TOP/s 1T / 2.6-3.4 TOP/s 2T. */
#include <cpuid.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xmmintrin.h>

#include "../check.h"
#include "../numerics.h"
#include "membw.h"
#include "cpu_linear.h"

/* ---- ISA detection (Intel SDM vol. 2A, CPUID leaf 1 / leaf 7; XCR0 via xgetbv) ---- */

enum { TIER_SCALAR, TIER_AVX2, TIER_AVX512, TIER_AMX, TIER_COUNT };
static const char *const g_tier_name[TIER_COUNT] = {"scalar", "avx2", "avx512", "amx"};

typedef struct Isa {
    int avx2;         /* avx2 + fma + f16c, ymm state enabled by the OS */
    int avx512;       /* avx512 f/bw/vl/dq + vnni + f16c, zmm state enabled */
    int avx512_bf16;  /* vdpbf16ps */
    int amx_int8;     /* amx-tile + amx-int8, tile state in XCR0 and arch_prctl permission granted */
    int amx_bf16;
    int amx_refused;  /* the CPU has AMX but the kernel refused the tile-data permission */
    int amd;          /* AuthenticAMD: vdpbf16ps outruns fp32 FMA (lin_bf16_dot_default) */
    char str[160];
} Isa;

static Isa g_isa;
int lin_pf_bytes = 2048;
int lin_vnni_q8 = 4;
static pthread_once_t g_isa_once = PTHREAD_ONCE_INIT;

static uint64_t isa_xgetbv0(void)
{
    uint32_t a, d;
    __asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
    return ((uint64_t)d << 32) | a;
}

/* Linux >= 5.16: AMX tile data must be requested once per process before the first tile instruction,
 * else SIGILL (Documentation/arch/x86/xstate.rst). ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18. */
static int isa_amx_request(void)
{
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

static void isa_detect(void)
{
    Isa *s = &g_isa;
    unsigned a, b, c, d;
    unsigned max = __get_cpuid_max(0, NULL);
    int osxsave = 0, avx = 0, fma = 0, f16c = 0;
    uint64_t xcr0 = 0;
    if (__get_cpuid(0, &a, &b, &c, &d)) s->amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u; /* "AuthenticAMD" */
    if (max >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
        fma = (c >> 12) & 1;
        osxsave = (c >> 27) & 1;
        avx = (c >> 28) & 1;
        f16c = (c >> 29) & 1;
    }
    if (osxsave) xcr0 = isa_xgetbv0();
    int ymm_os = (xcr0 & 0x6) == 0x6, zmm_os = ymm_os && (xcr0 & 0xe0) == 0xe0;
    int amx_os = (xcr0 & (3ull << 17)) == (3ull << 17);
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        int avx2 = (b >> 5) & 1, f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
        int vnni = (c >> 11) & 1;
        int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1, amx_int8 = (d >> 25) & 1;
        unsigned a1 = 0, b1, c1, d1;
        if (a >= 1) __cpuid_count(7, 1, a1, b1, c1, d1);
        int avx512_bf16 = (a1 >> 5) & 1;
        s->avx2 = ymm_os && avx && avx2 && fma && f16c;
        s->avx512 = s->avx2 && zmm_os && f && dq && bw && vl && vnni;
        s->avx512_bf16 = s->avx512 && avx512_bf16;
        if (s->avx512 && amx_os && amx_tile && amx_int8) {
            if (isa_amx_request()) {
                s->amx_int8 = 1;
                s->amx_bf16 = amx_bf16 && s->avx512_bf16;
            } else {
                s->amx_refused = 1;
            }
        }
    }
    snprintf(s->str, sizeof s->str, "%s%s%s%s%s%s%s", s->avx2 ? "avx2 " : "", s->avx512 ? "avx512f " : "",
             s->avx512 ? "avx512_vnni " : "", s->avx512_bf16 ? "avx512_bf16 " : "", s->amx_int8 ? "amx_int8 " : "",
             s->amx_bf16 ? "amx_bf16 " : "", s->amx_refused ? "(amx: tile permission refused) " : "");
    size_t len = strlen(s->str);
    if (len && s->str[len - 1] == ' ') s->str[len - 1] = 0;
    if (!len) snprintf(s->str, sizeof s->str, "scalar");
}

static const Isa *isa_get(void)
{
    pthread_once(&g_isa_once, isa_detect);
    return &g_isa;
}

const char *cpu_isa_string(void) { return isa_get()->str; }

/* ---- paths ---- */

/* Row counts from which the AMX kernels take over from the AVX-512 kernels. Measured side by side
 * (K=4096, N=12288): at M=1 the four-stream VNNI/bf16 GEMVs read ~5-15% faster than AMX with one
 * 16-row tile. int8: the multi-block VNNI kernel (lin_vnni_rq, 2-4 weight streams) reads 0.86-1.0 of
 * the prefetching read rate at M=2..8 where amx-int8 reads 0.76-0.80 (bench-linear, (K,N) = (2048,8192)
 * (8192,2048) (4096,12288), 1T and 2T); from M=9 the VNNI path makes two row passes and AMX leads. */
#define LIN_I8_AMX_MIN_ROWS 9
/* bf16: the multi-block AVX-512 kernel reads 1.02-1.06 of the bandwidth at 2-4 rows, amx-bf16 0.84-0.86;
 * from 5 rows vdpbf16ps limits the former (linear_avx512.c, lin_bf16_avx512) */
#define LIN_BF16_AMX_MIN_ROWS 5
/* fp16 weights: amx-f16split (four tdpbf16ps per tile pair plus splitting the weights on the fly) takes
 * over from avx512-f16c here. Its time is flat at M <= 16 (the split), while avx512-f16c grows with M.
 * bench-linear 1T bw_frac, K=2048 N=50272 / K=4096 N=12288, avx512-f16c vs amx-f16split with the
 * truncated split (linear_amx.c): M=9 0.75-0.79 vs 0.75-0.76, M=10 0.68-0.69 / 0.68-0.72 vs 0.71-0.74 /
 * 0.71-0.72, M=11 0.61 / 0.59-0.65 vs 0.70-0.72 / 0.71-0.72, M=12 0.52-0.54 vs 0.72-0.73. (With the
 * rounded split it was 13: equal at M=12.) */
#define LIN_F16_AMX_MIN_ROWS 10
/* 16-bit weights below AMX (or without it): from this many rows the fp32-FMA panels (avx512-fma,
 * linear_avx512.c; the AVX2 tier's panels, linear_avx2.c) take over from the kernels that widen weights in
 * registers for every use. Weights streamed from memory, 1T K=1024 N=4096: at M=16 the panel ran at 6.5-6.8
 * GB/s where those kernels read 8.6-9.7 GB/s at M=14 (two passes of 7); at M=32 the panel did 133-149
 * GFLOP/s, at M=128-512 0.77-0.81 of the FMA register probe (on the same core just before). */
#define LIN_16_PANEL_MIN_ROWS 17
/* AVX2 (ymm panels, 6 rows x 16 outputs): from 2 rows; 1T K=1024 N=4096 bf16 weights streamed, panel vs
 * lin_16_avx2: M=3 7.1 vs 3.9 GB/s, M=8 6.4 vs 1.8, M=32 87 vs 17.5 GFLOP/s */
#define LIN_16_PANEL_MIN_ROWS_AVX2 2

typedef enum { DT_I8, DT_BF16, DT_F16, DT_COUNT } LinDt;

static const char *const g_path_name[DT_COUNT][TIER_COUNT] = {
    {"scalar", "avx2-int8", "avx512-vnni", "amx-int8"},
    {"scalar", "avx2-fma", "avx512-bf16", "amx-bf16"},
    {"scalar", "avx2-f16c", "avx512-f16c", "amx-f16split"},
};

static int lin_dt(DType wdt)
{
    switch (wdt) {
    case DTYPE_I8: return DT_I8;
    case DTYPE_BF16: return DT_BF16;
    case DTYPE_F16: return DT_F16;
    default: PP8_CHECK(0, "linear weights must be I8, F16 or BF16"); return 0;
    }
}

/* Is tier `t` runnable for dtype `dt` on this machine? */
static int lin_tier_ok(int dt, int t)
{
    const Isa *s = isa_get();
    switch (t) {
    case TIER_SCALAR: return 1;
    case TIER_AVX2: return s->avx2;
    case TIER_AVX512: return dt == DT_BF16 ? s->avx512_bf16 : s->avx512;
    case TIER_AMX: return dt == DT_I8 ? s->amx_int8 : s->amx_bf16; /* F16: exact bf16 hi/lo split */
    }
    return 0;
}

struct CpuLinear {
    int threads, max_threads;
    int cap;                 /* highest tier allowed (PP8_ISA) */
    int forced[DT_COUNT];    /* tier forced by cpu_linear_force_path, or -1 */
    int bf16_dot;            /* bf16 on the AVX-512 tier: vdpbf16ps at every row count (else FMA from 5) */
    int i8_panel_rows;       /* int8 on the AVX-512 tier: the VNNI panels from this many rows */
    int max_rows, max_k, max_n;
    int8_t *ca;              /* (MP, KP) quantized activations */
    void *xs;                /* (MP, KP) staged 16-bit activations (float for F16, bf16 for BF16) */
    float *sca;              /* (MP) */
    uint8_t *flags;          /* (KP) outlier flag per column */
    int *ocols;              /* (KP) outlier columns, ascending */
    float *xo;               /* (MP, KP) fp32 x of the outlier columns (int8); aliases xs */
    uint8_t *ts;             /* (max_threads, ts_bytes) per-thread scratch */
    size_t ts_bytes;         /* LIN_TSCRATCH, + LIN_F16SPLIT_BYTES(KP) where amx-f16split can run */
    int32_t *dbg_acc;
    int8_t *ca_panel;        /* (MP, KP) CA packed per row group for the VNNI panels */
};

static int lin_tier(const CpuLinear *c, int dt, int rows)
{
    if (c->forced[dt] >= 0) return c->forced[dt];
    for (int t = c->cap; t > TIER_SCALAR; t--) {
        if (!lin_tier_ok(dt, t)) continue;
        if (t == TIER_AMX && dt == DT_I8 && rows < LIN_I8_AMX_MIN_ROWS) continue;
        if (t == TIER_AMX && dt == DT_BF16 && rows < LIN_BF16_AMX_MIN_ROWS) continue;
        if (t == TIER_AMX && dt == DT_F16 && rows < LIN_F16_AMX_MIN_ROWS) continue;
        return t;
    }
    return TIER_SCALAR;
}

/* bf16 below AMX, from this many rows: on Intel's AVX-512 cores fp32 FMA on weights widened in registers
 * (lin_bf16_fma_avx512, then the fp32-FMA panels) replaces vdpbf16ps, which runs at half the FMA ports'
 * rate there (1T register probes on a Sapphire Rapids VM: 122 vs 244 GFLOP/s); on AMD's vdpbf16ps runs
 * at twice the FMA rate (Zen 5 EPYC: 514 vs 268; Zen 4 by the same rule, unmeasured), and the vdpbf16ps panels
 * (lin_bf16_panel_avx512) take these rows instead. CpuLinear.bf16_dot says which; PP8_BF16_DOT=vdpbf16ps|fma
 * overrides the vendor's default. */
#define LIN_BF16_FMA_MIN_ROWS 5

static int lin_bf16_dot_default(void) { return isa_get()->amd; }

/* int8 on the AVX-512 tier (below AMX, or without it): from this many rows the VNNI panels (two blocks by
 * up to 14 rows, lin_i8_vnni_panel_avx512) take over from lin_vnni_rq (up to four blocks by 8 rows).
 * Intel: rq reads 0.90-0.94 of the read rate at M=8 (LIN_VNNI_Q's measurements, Sapphire Rapids). AMD,
 * Zen 4 EPYC VM with the 512-byte prefetch (membw.c) and 3 blocks at 8 rows (lin_vnni_q8), bench-linear
 * 1T (K,N) = (2048,8192) (8192,2048), rq against the panels: M=2 0.84-0.96 vs 0.71-0.85, M=4 0.75-0.94
 * vs 0.64-0.72, M=7 0.63-0.87 vs 0.55-0.59, M=8 0.67-0.76 vs 0.53-0.57. (On a Zen 5 VM with the old
 * 2048-byte prefetch and 4 blocks at M=8, rq collapsed at 7-8 rows, 2.04x behind the panels at M=8.)
 * PP8_I8_PANEL_ROWS=N overrides; tests take the panels at every row count. */
#define LIN_I8_PANEL_MIN_ROWS 9

static int lin_i8_panel_rows_default(void) { return LIN_I8_PANEL_MIN_ROWS; }

/* Does a bf16 call take the vdpbf16ps panels? */
static int lin_bf16_dp_panel(const CpuLinear *c, int dt, int tier, int rows)
{
    return dt == DT_BF16 && tier == TIER_AVX512 && c->bf16_dot && rows >= LIN_BF16_FMA_MIN_ROWS;
}

/* Does a bf16 call take lin_bf16_fma_avx512 (fp32 FMA below the panels' row count)? */
static int lin_bf16_fma(const CpuLinear *c, int dt, int tier, int rows)
{
    return dt == DT_BF16 && tier == TIER_AVX512 && !c->bf16_dot && rows >= LIN_BF16_FMA_MIN_ROWS;
}

/* Does a 16-bit call at this tier and row count take the fp32-FMA panels? */
static int lin_16_panel(const CpuLinear *c, int dt, int tier, int rows)
{
    if (dt == DT_I8 || lin_bf16_dp_panel(c, dt, tier, rows)) return 0;
    if (tier == TIER_AVX512) return rows >= LIN_16_PANEL_MIN_ROWS;
    return tier == TIER_AVX2 && rows >= LIN_16_PANEL_MIN_ROWS_AVX2;
}

const char *cpu_linear_path(CpuLinear *c, DType wdt, int rows)
{
    int dt = lin_dt(wdt), tier = lin_tier(c, dt, rows);
    if (tier == TIER_AVX512 && (lin_16_panel(c, dt, tier, rows) || lin_bf16_fma(c, dt, tier, rows))) return "avx512-fma";
    return g_path_name[dt][tier];
}

int cpu_linear_path_list(DType wdt, const char **names, int max)
{
    int dt = lin_dt(wdt), n = 0;
    for (int t = 0; t < TIER_COUNT && n < max; t++)
        if (g_path_name[dt][t] && lin_tier_ok(dt, t)) names[n++] = g_path_name[dt][t];
    return n;
}

int cpu_linear_force_path(CpuLinear *c, DType wdt, const char *path)
{
    int dt = lin_dt(wdt);
    if (!path) {
        c->forced[dt] = -1;
        return 0;
    }
    for (int t = 0; t < TIER_COUNT; t++)
        if (g_path_name[dt][t] && !strcmp(g_path_name[dt][t], path)) {
            if (!lin_tier_ok(dt, t)) return -1;
            c->forced[dt] = t;
            return 0;
        }
    return -1;
}

int cpu_linear_set_bf16_dot(CpuLinear *c, int on)
{
    int was = c->bf16_dot;
    c->bf16_dot = on != 0;
    return was;
}

int cpu_linear_set_i8_panel_rows(CpuLinear *c, int rows)
{
    int was = c->i8_panel_rows;
    c->i8_panel_rows = rows > 0 ? rows : lin_i8_panel_rows_default();
    return was;
}

void cpu_linear_debug_acc(CpuLinear *c, int32_t *acc) { c->dbg_acc = acc; }

/* ---- lifetime and scratch ---- */

static int lin_round_up(int v, int m) { return (v + m - 1) / m * m; }
static int lin_kp(int dt, int k) { return lin_round_up(k > 0 ? k : 1, dt == DT_I8 ? 64 : 32); }

static void *lin_alloc(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    PP8_CHECK(p != NULL, "out of memory for linear-layer scratch");
    memset(p, 0, bytes);
    return p;
}

CpuLinear *cpu_linear_create(int threads)
{
    isa_get(); /* detect (and request AMX tile permission) once, before any kernel runs */
    lin_pf_bytes = membw_pf_bytes();
    lin_vnni_q8 = isa_get()->amd ? 3 : 4;
    CpuLinear *c = calloc(1, sizeof *c);
    PP8_CHECK(c != NULL, "out of memory");
    if (threads <= 0) threads = omp_get_num_procs();
    c->threads = c->max_threads = threads;
    c->cap = TIER_AMX;
    for (int d = 0; d < DT_COUNT; d++) c->forced[d] = -1;
    c->bf16_dot = lin_bf16_dot_default();
    const char *dot = getenv("PP8_BF16_DOT");
    if (dot && *dot) {
        if (!strcmp(dot, "vdpbf16ps") || !strcmp(dot, "fma"))
            c->bf16_dot = !strcmp(dot, "vdpbf16ps");
        else
            fprintf(stderr, "[pp8 %s] warning: PP8_BF16_DOT=%s is not one of vdpbf16ps|fma; ignored\n",
                    pp8_log_prefix(), dot);
    }
    c->i8_panel_rows = lin_i8_panel_rows_default();
    const char *pr = getenv("PP8_I8_PANEL_ROWS");
    if (pr && *pr) {
        char *end;
        long v = strtol(pr, &end, 10);
        if (*end || v < 1 || v > 1000000)
            fprintf(stderr, "[pp8 %s] warning: PP8_I8_PANEL_ROWS=%s is not a row count >= 1; ignored\n",
                    pp8_log_prefix(), pr);
        else
            c->i8_panel_rows = (int)v;
    }
    const char *env = getenv("PP8_ISA");
    if (env && *env) {
        int found = -1;
        for (int t = 0; t < TIER_COUNT; t++)
            if (!strcmp(env, g_tier_name[t])) found = t;
        if (found < 0)
            fprintf(stderr, "[pp8 %s] warning: PP8_ISA=%s is not one of scalar|avx2|avx512|amx; ignored\n",
                    pp8_log_prefix(), env);
        else
            c->cap = found;
    }
    return c;
}

/* the buffers cpu_linear_reserve sizes */
static void lin_free_buffers(CpuLinear *c)
{
    free(c->ca);
    free(c->xs);
    free(c->sca);
    free(c->flags);
    free(c->ocols);
    free(c->ts);
    free(c->ca_panel);
}

void cpu_linear_destroy(CpuLinear *c)
{
    if (!c) return;
    lin_free_buffers(c);
    free(c);
}

int cpu_linear_threads(const CpuLinear *c) { return c->threads; }

void cpu_linear_set_threads(CpuLinear *c, int threads)
{
    PP8_CHECK(threads >= 1 && threads <= c->max_threads, "thread count above the one given at create");
    c->threads = threads;
}

void cpu_linear_reserve(CpuLinear *c, int max_rows, int max_k, int max_n)
{
    PP8_CHECK(max_rows >= 0 && max_k >= 0 && max_n >= 0, "negative linear-layer sizes");
    if (max_rows <= c->max_rows && max_k <= c->max_k && max_n <= c->max_n && c->ca) return;
    if (max_rows < c->max_rows) max_rows = c->max_rows;
    if (max_k < c->max_k) max_k = c->max_k;
    if (max_n < c->max_n) max_n = c->max_n;
    lin_free_buffers(c);
    size_t mp = (size_t)lin_round_up(max_rows > 0 ? max_rows : 1, 32), kp = (size_t)lin_kp(DT_I8, max_k);
    c->ca = lin_alloc(mp * (kp + 64));
    c->ca_panel = lin_alloc(mp * kp);
    c->xs = lin_alloc(mp * (kp + 16) * sizeof(float)); /* = mp * (2 KP + 32) bf16: amx-f16split's hi/lo too */
    c->sca = lin_alloc(mp * sizeof(float));
    c->flags = lin_alloc(kp);
    c->ocols = lin_alloc(kp * sizeof(int));
    c->xo = c->xs; /* int8 calls never stage 16-bit activations */
    /* after LIN_TSCRATCH: amx-f16split's weight split or the panels' per-row sums, never both at once */
    size_t split = isa_get()->amx_bf16 ? LIN_F16SPLIT_BYTES(kp) : 0, panel = isa_get()->avx2 ? LIN_PANEL_ACC_BYTES(mp) : 0;
    c->ts_bytes = LIN_TSCRATCH + (split > panel ? split : panel);
    c->ts = lin_alloc((size_t)c->max_threads * c->ts_bytes);
    c->max_rows = max_rows;
    c->max_k = max_k;
    c->max_n = max_n;
}

/* ---- packing ---- */

size_t cpu_linear_bytes(DType wdt, int n, int k)
{
    int dt = lin_dt(wdt);
    size_t np = (size_t)lin_round_up(n > 0 ? n : 1, 16), kp = (size_t)lin_kp(dt, k);
    if (dt == DT_I8) return np * kp + np * sizeof(int32_t);
    /* fp16: + 64 bytes after the blocks, an int32 that says whether any weight is inf or NaN (amx-f16split) */
    return np * kp * sizeof(uint16_t) + (dt == DT_F16 ? 64 : 0);
}

void cpu_linear_pack(Linear *w, const void *rowmajor, const float *scb) { cpu_linear_pack_rows(w, rowmajor, scb, 0, w->n); }

void cpu_linear_pack_rows(Linear *w, const void *rowmajor, const float *scb, int row0, int rows)
{
    int dt = lin_dt(w->wdt), n = w->n, k = w->k, kp = lin_kp(dt, k), nb = (n + 15) / 16;
    int end = row0 + rows;
    PP8_CHECK(((uintptr_t)w->w & 63) == 0, "packed weights must be 64-byte aligned");
    PP8_CHECK(row0 >= 0 && row0 % 16 == 0 && rows >= 0 && end <= n && (end % 16 == 0 || end == n),
              "packing a row range that is not whole blocks of 16 rows");
    int b0 = row0 / 16, b1 = end == n ? nb : end / 16;
    if (dt == DT_I8) {
        const int8_t *cb = rowmajor;
        int8_t *dst = w->w;
        int32_t *wsum = (int32_t *)(dst + (size_t)nb * 16 * kp);
        for (int b = b0; b < b1; b++)
            for (int l = 0; l < 16; l++) {
                int o = b * 16 + l;
                int32_t s = 0;
                for (int i = 0; i < kp; i++) {
                    int8_t v = o < n && i < k ? cb[(size_t)(o - row0) * k + i] : 0;
                    dst[(((size_t)b * (kp / 4) + i / 4) * 16 + l) * 4 + (i & 3)] = v;
                    s += v;
                }
                wsum[o] = s;
            }
        PP8_CHECK(w->scb != NULL && scb != NULL, "int8 weights need SCB");
        memcpy(w->scb + row0, scb, sizeof(float) * (size_t)rows);
        return;
    }
    const uint16_t *src = rowmajor;
    uint16_t *dst = w->w;
    int32_t special = 0; /* fp16: some weight is inf or NaN */
    for (int b = b0; b < b1; b++)
        for (int l = 0; l < 16; l++) {
            int o = b * 16 + l;
            for (int i = 0; i < kp; i++) {
                uint16_t v = o < n && i < k ? src[(size_t)(o - row0) * k + i] : 0;
                size_t at = dt == DT_BF16 ? (((size_t)b * (kp / 2) + i / 2) * 16 + l) * 2 + (i & 1)
                                          : ((size_t)b * kp + i) * 16 + l;
                dst[at] = v;
                special |= (v & 0x7c00) == 0x7c00;
            }
        }
    if (dt == DT_F16) {
        int32_t *flag = (int32_t *)(dst + (size_t)nb * 16 * kp);
        *flag = row0 == 0 ? special : (*flag | special);
    }
}

/* ---- scalar activation quantization (the AVX-512 versions must give the same bits) ---- */

static void lin_i8_flags_scalar(const uint16_t *x, int m, int k, float t, int c0, int c1, uint8_t *flags)
{
    for (int j = c0; j < c1; j++) {
        int out = 0;
        for (int r = 0; r < m; r++) out |= pp8_i8_is_outlier(fabsf(pp8_h2f(x[(size_t)r * k + j])), t);
        flags[j] = (uint8_t)out;
    }
}

static float lin_i8_quant_row_scalar(int8_t *ca, const uint16_t *x, int k, int kp, float t, const uint8_t *flags,
                                     int nout, uint8_t xor_mask)
{
    float amax = 0.0f;
    for (int j = 0; j < k; j++) {
        float a = fabsf(pp8_h2f(x[j]));
        if (!pp8_i8_is_outlier(a, t)) amax = fmaxf(amax, a);
    }
    float s = pp8_i8_scale(amax);
    for (int j = 0; j < k; j++) {
        int8_t q = nout && flags[j] ? 0 : pp8_i8_quant(pp8_h2f(x[j]), s);
        ca[j] = (int8_t)((uint8_t)q ^ xor_mask);
    }
    for (int j = k; j < kp; j++) ca[j] = (int8_t)xor_mask;
    return amax;
}

/* ---- scalar kernels on the packed layouts ---- */

static int lin_min(int a, int b) { return a < b ? a : b; }

void lin_i8_epilogue_scalar(const LinJob *j, int blk, int r0, int nr, const int32_t *acc, int stride)
{
    const Linear *w = j->w;
    const int8_t *wb = (const int8_t *)w->w + (size_t)blk * 16 * j->kp;
    int o0 = blk * 16, nv = lin_min(16, j->n - o0);
    uint16_t *y = j->y;
    for (int r = 0; r < nr; r++) {
        int row = r0 + r;
        for (int l = 0; l < nv; l++) {
            int o = o0 + l;
            int32_t a = acc[(size_t)r * stride + l];
            if (j->dbg_acc) j->dbg_acc[(size_t)row * j->n + o] = a;
            float bias = w->bias ? pp8_h2f(w->bias[o]) : 0.0f;
            uint16_t v = pp8_i8_dequant(a, j->sca[row], w->scb[o], bias); /* DESIGN.md step 2 */
            if (j->nout) {
                float sum = 0.0f; /* steps 3-4: ascending outlier columns, sum from 0 */
                for (int c = 0; c < j->nout; c++) {
                    int col = j->ocols[c];
                    int8_t cb = wb[((size_t)(col / 4) * 16 + l) * 4 + (col & 3)];
                    sum = pp8_i8_outlier_term(sum, j->x[(size_t)row * j->k + col], pp8_i8_weight_dequant(cb, w->scb[o]));
                }
                v = pp8_i8_outlier_finish(v, sum);
            }
            y[(size_t)row * j->n + o] = v;
        }
    }
}

void lin_i8_scalar(const LinJob *j, int b0, int b1, void *ts)
{
    (void)ts;
    int kg = j->kp / 4;
    for (int b = b0; b < b1; b++) {
        const int8_t *wb = (const int8_t *)j->w->w + (size_t)b * 16 * j->kp;
        for (int r = 0; r < j->m; r++) {
            const int8_t *a = j->ca + (size_t)r * j->ca_ld;
            int32_t acc[16] = {0};
            for (int g = 0; g < kg; g++)
                for (int l = 0; l < 16; l++)
                    for (int q = 0; q < 4; q++) acc[l] += (int32_t)a[g * 4 + q] * wb[((size_t)g * 16 + l) * 4 + q];
            lin_i8_epilogue_scalar(j, b, r, 1, acc, 16);
        }
    }
}

static float lin_load16(uint16_t v, DType dt) { return dt == DTYPE_BF16 ? pp8_bf2f(v) : pp8_h2f(v); }

void lin_16_epilogue_scalar(const LinJob *j, int blk, int r0, int nr, const float *acc, int stride)
{
    const Linear *w = j->w;
    int o0 = blk * 16, nv = lin_min(16, j->n - o0);
    for (int r = 0; r < nr; r++)
        for (int l = 0; l < nv; l++) {
            int o = o0 + l;
            float v = acc[(size_t)r * stride + l];
            if (w->bias) v = pp8_add(v, lin_load16(w->bias[o], w->wdt));
            size_t i = (size_t)(r0 + r) * j->n + o;
            if (j->ydt == DTYPE_F32)
                ((float *)j->y)[i] = v;
            else if (j->ydt == DTYPE_BF16)
                ((uint16_t *)j->y)[i] = pp8_f2bf(v);
            else
                ((uint16_t *)j->y)[i] = pp8_f2h(v);
        }
}

/* Ascending k with one fp32 accumulator per output: the same sums as ref_linear16, bit for bit. */
void lin_16_scalar(const LinJob *j, int b0, int b1, void *ts)
{
    (void)ts;
    DType dt = j->w->wdt;
    int kp = j->kp;
    for (int b = b0; b < b1; b++) {
        const uint16_t *wb = (const uint16_t *)j->w->w + (size_t)b * 16 * kp;
        for (int r = 0; r < j->m; r++) {
            const uint16_t *xr = j->x + (size_t)r * j->k;
            float acc[16] = {0};
            for (int i = 0; i < j->k; i++) {
                float xv = lin_load16(xr[i], dt);
                for (int l = 0; l < 16; l++) {
                    uint16_t wv = dt == DTYPE_BF16 ? wb[((size_t)(i / 2) * 16 + l) * 2 + (i & 1)] : wb[(size_t)i * 16 + l];
                    acc[l] = pp8_add(acc[l], pp8_mul(xv, lin_load16(wv, dt)));
                }
            }
            lin_16_epilogue_scalar(j, b, r, 1, acc, 16);
        }
    }
}

/* ---- the product ---- */

typedef void (*LinKernel)(const LinJob *j, int b0, int b1, void *ts);

/* Thread `tid` of `nt` gets blocks [*b0, *b1), in pairs so the AMX kernels can run two B tiles. */
static void lin_split(int nb, int nt, int tid, int *b0, int *b1)
{
    int pairs = (nb + 1) / 2;
    *b0 = lin_min(nb, 2 * (int)((long)pairs * tid / nt));
    *b1 = lin_min(nb, 2 * (int)((long)pairs * (tid + 1) / nt));
}

static void lin_run_int8(CpuLinear *c, LinJob *j, int tier, float t)
{
    static const LinKernel kern[TIER_COUNT] = {lin_i8_scalar, lin_i8_avx2, lin_i8_vnni_avx512, lin_i8_amx};
    int panel = tier == TIER_AVX512 && j->m >= c->i8_panel_rows;
    /* vpdpbusd multiplies u8 by s8: the VNNI kernels take CA + 128 and subtract 128 * sum_k CB (exact) */
    uint8_t xor_mask = tier == TIER_AVX512 ? 0x80 : 0;
    int simd = tier >= TIER_AVX512, m = j->m, k = j->k, kp = j->kp;
    int mp = tier == TIER_AMX ? lin_round_up(m, 16) : m;
    if (t < 0.0f) t = 0.0f;
#pragma omp parallel num_threads(c->threads)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        if (t > 0.0f) { /* outlier columns: each thread flags a column range over every row */
            int c0 = lin_min(k, lin_round_up((int)((long)k * tid / nt), 64));
            int c1 = lin_min(k, lin_round_up((int)((long)k * (tid + 1) / nt), 64));
            if (tid == nt - 1) c1 = k;
            if (c1 > c0) {
                if (simd)
                    lin_i8_flags_avx512(j->x, m, k, t, c0, c1, c->flags);
                else
                    lin_i8_flags_scalar(j->x, m, k, t, c0, c1, c->flags);
            }
#pragma omp barrier
#pragma omp single
            {
                int n = 0;
                for (int i = 0; i < k; i++)
                    if (c->flags[i]) c->ocols[n++] = i;
                j->nout = n;
            }
        }
        for (int r = (int)((long)mp * tid / nt); r < (int)((long)mp * (tid + 1) / nt); r++) {
            int8_t *car = c->ca + (size_t)r * j->ca_ld;
            if (r >= m) { /* AMX tile padding rows: zeros */
                memset(car, 0, (size_t)kp);
            } else if (simd) {
                c->sca[r] = lin_i8_quant_row_avx512(car, j->x + (size_t)r * k, k, kp, t, c->flags, j->nout, xor_mask);
                if (panel) { /* and its dwords into its row group's [KP/4][R] (LinJob.cap) */
                    int R, r0 = lin_panel_group_of(m, 14, r, &R);
                    int32_t *d = (int32_t *)(c->ca_panel + (size_t)r0 * kp) + (r - r0);
                    const int32_t *src = (const int32_t *)car;
                    for (int q = 0; q < kp / 4; q++) d[(size_t)q * R] = src[q];
                }
            } else {
                c->sca[r] = lin_i8_quant_row_scalar(car, j->x + (size_t)r * k, k, kp, t, c->flags, j->nout, xor_mask);
            }
            if (r < m) /* the epilogue broadcasts these; one fp16 -> fp32 per outlier value per call */
                for (int o = 0; o < j->nout; o++) c->xo[(size_t)r * j->nout + o] = pp8_h2f(j->x[(size_t)r * k + c->ocols[o]]);
        }
#pragma omp barrier
        int b0, b1;
        lin_split(j->nb, nt, tid, &b0, &b1);
        if (b1 > b0) (panel ? lin_i8_vnni_panel_avx512 : kern[tier])(j, b0, b1, c->ts + (size_t)tid * c->ts_bytes);
    }
}

/* fp16 v = hi + lo exactly, both bf16 (amx-f16split, linear_amx.c's lin_f16_split_kc does the same
 * for the weights): hi = bf16_rne(v); v - hi has at most 4 significant bits, so lo is exact. inf gives
 * lo = 0 (not inf - inf), NaN stays NaN through hi. */
static void lin_f16_split(uint16_t v, uint16_t *hi, uint16_t *lo)
{
    float f = pp8_h2f(v);
    uint16_t h = pp8_f2bf(f);
    float d = f - pp8_bf2f(h);
    *hi = h;
    *lo = d == d ? pp8_f2bf(d) : 0;
}

static void lin_run_16(CpuLinear *c, LinJob *j, int tier)
{
    int dt = lin_dt(j->w->wdt);
    int m = j->m, k = j->k, kp = j->kp, panel = lin_16_panel(c, dt, tier, m);
    int dp = lin_bf16_dp_panel(c, dt, tier, m), bfma = lin_bf16_fma(c, dt, tier, m);
    LinKernel k16 = tier == TIER_SCALAR ? lin_16_scalar
                    : tier == TIER_AVX2 ? (panel ? lin_16_panel_avx2 : lin_16_avx2)
                    : tier == TIER_AMX  ? (dt == DT_F16 ? lin_f16_amx_split : lin_bf16_amx)
                    : panel             ? lin_16_panel_avx512
                    : dt == DT_BF16     ? (dp ? lin_bf16_panel_avx512 : bfma ? lin_bf16_fma_avx512 : lin_bf16_avx512)
                                        : lin_f16_avx512;
    int mp = tier == TIER_AMX ? lin_round_up(m, 16) : m;
    int stage = tier != TIER_SCALAR;
    /* fp32 staging: the F16 kernels below AMX and every panel (bf16 -> fp32 is exact) */
    int stage32 = (dt == DT_F16 && tier != TIER_AMX) || panel || bfma;
#pragma omp parallel num_threads(c->threads)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        /* stage activations padded to KP with zeros (the kernels read whole pairs / tiles): fp32 for the
         * F16 kernels (vbroadcastss operands), the bf16 bits for the BF16 ones, bf16 hi/lo per 32 k for
         * amx-f16split */
        if (stage)
            for (int r = (int)((long)mp * tid / nt); r < (int)((long)mp * (tid + 1) / nt); r++) {
                const uint16_t *xr = j->x + (size_t)r * k;
                if (dt == DT_F16 && tier == TIER_AMX) {
                    uint16_t *d = (uint16_t *)c->xs + (size_t)r * j->xs_ld;
                    for (int i = 0; i < kp; i++) {
                        uint16_t hi = 0, lo = 0;
                        if (r < m && i < k) lin_f16_split(xr[i], &hi, &lo);
                        d[i / 32 * 64 + i % 32] = hi;
                        d[i / 32 * 64 + 32 + i % 32] = lo;
                    }
                } else if (dp) { /* bf16 pairs packed per row group: [KP/2][R] dwords at xs + r0 KP/2 */
                    int R, r0 = lin_panel_group_of(m, 14, r, &R);
                    uint32_t *d = (uint32_t *)c->xs + (size_t)r0 * (kp / 2) + (r - r0);
                    for (int p = 0; p < kp / 2; p++) {
                        uint32_t lo = 2 * p < k ? xr[2 * p] : 0, hi = 2 * p + 1 < k ? xr[2 * p + 1] : 0;
                        d[(size_t)p * R] = lo | hi << 16;
                    }
                } else if (panel) { /* packed per row group: [KP][R] at xs + r0 KP */
                    int R, r0 = lin_panel_group_of(m, tier == TIER_AVX2 ? 6 : 14, r, &R);
                    float *d = (float *)c->xs + (size_t)r0 * kp + (r - r0);
                    (tier == TIER_AVX2 ? lin_16_stage_avx2 : lin_16_stage_avx512)(d, (size_t)R, xr, k, kp, dt == DT_BF16);
                } else if (stage32 && r < m) {
                    float *d = (float *)c->xs + (size_t)r * j->xs_ld;
                    (tier == TIER_AVX2 ? lin_16_stage_avx2 : lin_16_stage_avx512)(d, 1, xr, k, kp, dt == DT_BF16);
                } else if (stage32) {
                    memset((float *)c->xs + (size_t)r * j->xs_ld, 0, sizeof(float) * (size_t)kp);
                } else {
                    uint16_t *d = (uint16_t *)c->xs + (size_t)r * j->xs_ld;
                    for (int i = 0; i < kp; i++) d[i] = r < m && i < k ? xr[i] : 0;
                }
            }
#pragma omp barrier
        int b0, b1;
        lin_split(j->nb, nt, tid, &b0, &b1);
        if (b1 > b0) k16(j, b0, b1, c->ts + (size_t)tid * c->ts_bytes);
        if (j->y_stream) _mm_sfence(); /* streaming stores are weakly ordered: visible before the barrier */
    }
}

/* Any fp16 inf or NaN in x (M, K)? amx-f16split's xh . wl term would give xh = inf times wl = 0 (every
 * w exact in bf16) = NaN where the other paths give +-inf, so such a call (an overflowed hidden state)
 * takes avx512-f16c. One pass over x, O(M K) against the O(M N K) product; depends only on the data. */
static int lin_f16_nonfinite(const uint16_t *x, int m, int k)
{
    int bad = 0;
    for (size_t i = 0; i < (size_t)m * k; i++) bad |= (x[i] & 0x7c00) == 0x7c00;
    return bad;
}

void cpu_linear(CpuLinear *c, const Linear *w, const uint16_t *x, int rows, DType act, void *y, DType ydt,
                float threshold)
{
    PP8_CHECK(c->ca != NULL, "cpu_linear_reserve was not called");
    PP8_CHECK(rows >= 0 && rows <= c->max_rows, "more rows than cpu_linear_reserve allowed");
    PP8_CHECK(w->k <= c->max_k && w->n <= c->max_n, "layer larger than cpu_linear_reserve allowed");
    if (rows == 0 || w->n == 0) return;
    int dt = lin_dt(w->wdt), tier = lin_tier(c, dt, rows);
    if (dt == DT_F16 && tier == TIER_AMX && lin_f16_nonfinite(x, rows, w->k)) tier = TIER_AVX512;
    LinJob j = {.w = w, .m = rows, .k = w->k, .n = w->n, .kp = lin_kp(dt, w->k), .nb = (w->n + 15) / 16,
                .y = y, .ydt = ydt, .ca = c->ca, .sca = c->sca, .x = x, .ocols = c->ocols, .nout = 0, .xo = c->xo,
                .dbg_acc = c->dbg_acc, .xs = c->xs, .cap = c->ca_panel};
    j.ca_ld = j.kp + 64;
    /* elements of xs per row: F16 floats, BF16 bf16, amx-f16split bf16 hi and lo (all fit in xs) */
    j.xs_ld = dt == DT_F16                                                                ? (tier == TIER_AMX ? 2 * j.kp + 32 : j.kp + 16)
              : lin_16_panel(c, dt, tier, rows) || lin_bf16_fma(c, dt, tier, rows) ? j.kp + 16
                                                                                                 : j.kp + 32;
    if (dt == DT_I8) {
        PP8_CHECK(act == DTYPE_F16 && ydt == DTYPE_F16, "LLM.int8() linear takes and gives fp16");
        lin_run_int8(c, &j, tier, threshold);
    } else {
        PP8_CHECK(act == w->wdt, "16-bit linear: activation dtype must equal the weight dtype");
        PP8_CHECK(ydt == act || ydt == DTYPE_F32, "16-bit linear: output is the activation dtype or F32");
        j.y_stream = tier >= TIER_AVX512 && ydt == DTYPE_F32 && (size_t)rows * (size_t)w->n * 4 >= LIN_STREAM_Y_BYTES &&
                     w->n % 16 == 0 && (uintptr_t)y % 64 == 0;
        lin_run_16(c, &j, tier);
    }
}

