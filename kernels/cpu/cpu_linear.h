/* CPU linear layers: packing, the LLM.int8() decomposed product and the 16-bit baseline, with run-time
 * ISA dispatch (AMX, AVX-512 VNNI/BF16, AVX2, scalar). Internal to the cpu backend; the scalar
 * reference functions at the bottom are what tests compare every fast path against.
 * Nothing here allocates per call: scratch is sized once by cpu_linear_reserve. */
#ifndef PP8_CPU_LINEAR_H
#define PP8_CPU_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

typedef struct CpuLinear CpuLinear; /* scratch + dispatch state, one per backend */

/* threads: OpenMP threads of every parallel region (0 = all cores available to the process).
 * The environment variable PP8_ISA=scalar|avx2|avx512|amx caps the dispatch. */
CpuLinear *cpu_linear_create(int threads);
void cpu_linear_destroy(CpuLinear *c);
void cpu_linear_reserve(CpuLinear *c, int max_rows, int max_k, int max_n);
size_t cpu_linear_bytes(DType wdt, int n, int k);
void cpu_linear_pack(Linear *w, const void *rowmajor, const float *scb);
/* rows [row0, row0 + rows) of w from a row-major [rows, K] block: row0 a multiple of 16, the last block
 * ending at a multiple of 16 or at N; blocks in order from row0 = 0 (the fp16 inf/NaN flag accumulates) */
void cpu_linear_pack_rows(Linear *w, const void *rowmajor, const float *scb, int row0, int rows);
void cpu_linear(CpuLinear *c, const Linear *w, const uint16_t *x, int rows, DType act, void *y, DType ydt,
                float threshold);
/* the kernel a call with this many rows takes: a name of cpu_linear_path_list, or "avx512-fma" where the
 * avx512 tier runs bf16/fp16 with fp32 FMA (bf16 from 5 rows, both from 17: linear.c) */
const char *cpu_linear_path(CpuLinear *c, DType wdt, int rows);
/* ISA features found at run time, e.g. "avx512f avx512_vnni avx512_bf16 amx_int8 amx_bf16" */
const char *cpu_isa_string(void);

/* ---- knobs for tests and benchmarks ---- */
int cpu_linear_threads(const CpuLinear *c);
void cpu_linear_set_threads(CpuLinear *c, int threads); /* must not exceed the count given at create */
/* Paths this machine can run for wdt, best last (e.g. "scalar", "avx2-int8", "avx512-vnni", "amx-int8");
 * returns the count written to names. */
int cpu_linear_path_list(DType wdt, const char **names, int max);
/* Forces the path named (one of cpu_linear_path_list) for every row count; NULL returns to automatic
 * dispatch. Returns -1 when the path is unknown or not available here. */
int cpu_linear_force_path(CpuLinear *c, DType wdt, const char *path);
/* bf16 on the AVX-512 tier from 5 rows: 1 vdpbf16ps (the panels), 0 fp32 FMA; the default is the CPU
 * vendor's (AMD 1, Intel 0) unless PP8_BF16_DOT says. Returns the previous setting (tests take both). */
int cpu_linear_set_bf16_dot(CpuLinear *c, int on);
/* int8 on the AVX-512 tier: the VNNI panels from this many rows, below them the multi-block row kernel;
 * the default is 9 unless PP8_I8_PANEL_ROWS says; rows <= 0 restores the default. Returns the previous setting (tests take both kernels at every row count). */
int cpu_linear_set_i8_panel_rows(CpuLinear *c, int rows);
/* int8 only: when non-NULL, every later call also writes its exact int32 accumulators acc (rows, N)
 * (CA . CB^T) here; for tests that compare paths before the epilogue. */
void cpu_linear_debug_acc(CpuLinear *c, int32_t *acc);

/* ---- scalar references (row-major weights), DESIGN.md's four steps ---- */
/* per-row weight quantization: CB (N,K), SCB (N) from fp16 W */
void ref_quantize_weights(int8_t *cb, float *scb, const uint16_t *w, int n, int k);
/* outlier columns of x (M,K) for threshold t; returns their count, cols ascending */
int ref_outlier_cols(int *cols, const uint16_t *x, int m, int k, float t);
/* CA (M,K), SCA (M) with outlier columns zeroed */
void ref_quantize_acts(int8_t *ca, float *sca, const uint16_t *x, int m, int k, const int *cols, int ncols,
                       float t);
/* acc (M,N) = CA . CB^T, exact int32 */
void ref_int8_acc(int32_t *acc, const int8_t *ca, const int8_t *cb, int m, int k, int n);
/* full LLM.int8() product into fp16 y (M,N) */
void ref_int8_linear(uint16_t *y, const uint16_t *x, int m, int k, const int8_t *cb, const float *scb,
                     const uint16_t *bias, int n, float t);
/* 16-bit product, fp32 accumulate in ascending k, y of dtype ydt (act dtype or F32) */
void ref_linear16(void *y, DType ydt, const uint16_t *x, DType act, int m, int k, const uint16_t *w, DType wdt,
                  const uint16_t *bias, int n);

/* ---- internal: what linear.c hands the ISA-specific kernels (linear_*_avx512.c, _amx.c, _avx2.c) ----
 * Packed layouts (cpu_linear_pack), nb = ceil(N/16) blocks of 16 output rows:
 *   I8:   [nb][KP/4][16][4] int8 (KP = K rounded up to 64), then int32 wsum[nb*16] = sum_k CB[o,k]
 *         (the u8 x s8 correction of vpdpbusd). One 1 KiB run of 16 k-groups is one AMX B tile.
 *   BF16: [nb][KP/2][16][2] (KP = K rounded up to 32): vdpbf16ps / AMX-BF16 B-tile pairs.
 *   F16:  [nb][KP][16] (KP = K rounded up to 32): 16 outputs of one k = one vcvtph2ps. amx-f16split
 *         splits it per call into bf16 hi/lo B tiles in per-thread scratch (no second copy is stored). */
typedef struct LinJob {
    const Linear *w;
    int m, k, n;     /* M rows, K, N */
    int kp, nb;      /* padded K of the packed layout, blocks of 16 outputs */
    void *y;         /* (M, N) of ydt */
    DType ydt;
    /* int8 */
    const int8_t *ca; /* (MP, KP) rows ca_ld bytes apart: CA, s8 (AMX, scalar) or u8 = CA ^ 0x80 (VNNI) */
    int ca_ld, xs_ld; /* row strides of ca (bytes) and xs (elements): KP + 64 bytes, so that the rows of
                       * one tile or one register block do not all map to the same L1 set */
    const float *sca; /* (M) */
    const uint16_t *x; /* (M, K) the fp16 activations, for the outlier part */
    const int *ocols; /* (nout) ascending outlier columns */
    int nout;
    const float *xo;  /* (M, nout) fp32 values of x in the outlier columns (exact: fp16 -> fp32) */
    int32_t *dbg_acc; /* (M, N) or NULL */
    const int8_t *cap; /* avx512-vnni panels: u8 CA packed per row group (lin_panel_groups, 14 rows), group
                        * [r0, r1) at cap + r0 KP as [KP/4][r1 - r0] dwords */
    /* 16-bit */
    const void *xs;   /* (MP, KP) rows xs_ld apart, staged activations: bf16 for BF16, float for F16; for
                       * amx-f16split bf16 with per 32 k the 32 hi then the 32 lo values (row 2 KP + 32); for
                       * the panels packed per row group instead (fp32, or bf16 pairs for lin_bf16_panel_avx512) */
    int y_stream;     /* 16-bit epilogues: full 64-byte lines of an F32 y go out as streaming stores
                       * (LIN_STREAM_Y_BYTES); the caller fences after the kernels */
} LinJob;

/* F32 outputs from this size (the LM head's logits: 8 rows x 250,880 = 8 MB) skip the read for ownership
 * of every line they write, whose traffic competed with the weight stream: K=1024 N=250880 fp16 1T M=32,
 * PP8_ISA=avx512, 103.3 -> 99.6 ms; pp8 bench BLOOM-560M int8 batch 8, 1T, 141-142 -> 152-155 tokens/s
 * (AMX), 143-145 -> 156-157 (avx512), 2T 253-255 -> 278-291 (AMX) */
#define LIN_STREAM_Y_BYTES ((size_t)4 << 20)

/* the weight streams' software prefetch distance in bytes (membw_pf_bytes), set by cpu_linear_create */
extern int lin_pf_bytes;
/* blocks per pass of the VNNI row kernel at 8 rows (linear_avx512.c): AMD 3, else 4; set by cpu_linear_create */
extern int lin_vnni_q8;

/* per-thread scratch bytes every kernel may use (tile stores, outlier sums, GEMV accumulators) */
#define LIN_TSCRATCH (64 * 1024)
/* amx-f16split only: bytes after those LIN_TSCRATCH holding the hi/lo/hi-finite split of two weight
 * blocks (all of K, or a ring of two k steps, 12 KiB) */
#define LIN_F16SPLIT_BYTES(kp) ((size_t)(kp) * 192 + 12288)

/* Each kernel computes output blocks [b0, b1) for all M rows, epilogue included. */
void lin_i8_scalar(const LinJob *j, int b0, int b1, void *ts);
void lin_i8_epilogue_scalar(const LinJob *j, int blk, int r0, int nr, const int32_t *acc, int stride);
void lin_i8_vnni_avx512(const LinJob *j, int b0, int b1, void *ts);
void lin_i8_vnni_panel_avx512(const LinJob *j, int b0, int b1, void *ts); /* many rows, j->cap */
void lin_i8_epilogue_avx512(const LinJob *j, int blk, int r0, int nr, const int32_t *acc, int stride, void *ts);
void lin_i8_amx(const LinJob *j, int b0, int b1, void *ts);
void lin_i8_avx2(const LinJob *j, int b0, int b1, void *ts);
void lin_16_scalar(const LinJob *j, int b0, int b1, void *ts);
void lin_bf16_avx512(const LinJob *j, int b0, int b1, void *ts);
void lin_bf16_fma_avx512(const LinJob *j, int b0, int b1, void *ts); /* 5..15 rows, x staged fp32 */
void lin_bf16_panel_avx512(const LinJob *j, int b0, int b1, void *ts); /* vdpbf16ps panels, x per row group */
void lin_bf16_amx(const LinJob *j, int b0, int b1, void *ts);
void lin_f16_avx512(const LinJob *j, int b0, int b1, void *ts);
void lin_f16_amx_split(const LinJob *j, int b0, int b1, void *ts); /* ts: LIN_TSCRATCH + LIN_F16SPLIT_BYTES */
void lin_16_avx2(const LinJob *j, int b0, int b1, void *ts);
/* 16-bit panels (linear_avx512.c: avx512-fma; linear_avx2.c: the AVX2 paths at many rows). x is staged as
 * fp32 for both dtypes, packed per row group (lin_panel_groups): group [r0, r1) at xs + r0 KP as [KP][r1 - r0],
 * so one pointer and constant offsets reach every row's broadcast (one pointer per row ran out of
 * registers at 14 rows). ts: LIN_TSCRATCH (the fp32 weight panel of one K chunk, LIN_PANEL_KC * 128
 * bytes) then LIN_PANEL_ACC_BYTES(MP) of per-row sums. Bit-identical to lin_16_scalar. */
/* K chunk: 128 (a 16 KiB fp32 panel and a 14-row x chunk of 7 KiB) rather than 256, whose 32 KiB panel
 * with the next panel's prefetched lines overflowed the 48 KiB L1: 1.05x at M=32 K=1024 N=4096 */
#define LIN_PANEL_KC 128
#define LIN_PANEL_MC_GROUPS 36 /* avx512-fma row blocks: up to 36 groups of 14 rows (lin_16_panel_avx512) */
#define LIN_PANEL_NC_BLOCKS 16 /* avx512-fma output super-blocks: 16 blocks of 16 */
/* the panels' per-row sums: avx512-fma rows of a row block x 256 outputs; AVX2 all rows x 16 */
#define LIN_PANEL_ACC_BYTES(mp) ((size_t)((mp) < 36 * 14 ? (mp) : 36 * 14) * 256 * sizeof(float) + (size_t)(mp) * 16 * sizeof(float))
/* row groups of at most rmax rows, balanced (M=32, 14: 11 11 10) so none has too few accumulators to
 * cover the FMA latency; group g is rows [m g / ng, m (g + 1) / ng) */
static inline int lin_panel_groups(int m, int rmax) { return (m + rmax - 1) / rmax; }
/* the group holding row r: returns its first row, *R its row count */
static inline int lin_panel_group_of(int m, int rmax, int r, int *R)
{
    int ng = lin_panel_groups(m, rmax), g = (int)((long)r * ng / m);
    while ((int)((long)m * g / ng) > r) g--;
    while ((int)((long)m * (g + 1) / ng) <= r) g++;
    int r0 = (int)((long)m * g / ng);
    *R = (int)((long)m * (g + 1) / ng) - r0;
    return r0;
}
/* groups per row block: the kernels take the weights of their blocks once per row block, whose packed x
 * (rows x KP fp32) stays within ~512 KiB of L2 (at M=512, K=1024 a single block of all rows, 2 MiB, ran at
 * 0.72 of the FMA probe against 0.79 at M=128); at least two groups, so converting a weight panel is
 * shared by >= 2 rmax rows */
static inline int lin_panel_block_groups(int kp, int rmax)
{
    int g = 131072 / (kp > 0 ? kp : 1) / rmax;
    return g < 2 ? 2 : g;
}
void lin_16_panel_avx512(const LinJob *j, int b0, int b1, void *ts);
void lin_16_panel_avx2(const LinJob *j, int b0, int b1, void *ts);
/* one row of x as fp32, d[i * stride] for i < kp (zeros from k), exactly as pp8_h2f / pp8_bf2f */
void lin_16_stage_avx512(float *d, size_t stride, const uint16_t *x, int k, int kp, int bf16);
void lin_16_stage_avx2(float *d, size_t stride, const uint16_t *x, int k, int kp, int bf16);
/* 16-bit epilogue: y[r0.., blk*16..] = round(acc + bias), acc (nr, 16) fp32 with row stride */
void lin_16_epilogue_scalar(const LinJob *j, int blk, int r0, int nr, const float *acc, int stride);
void lin_16_epilogue_avx512(const LinJob *j, int blk, int r0, int nr, const float *acc, int stride);

/* Activation quantization, AVX-512 versions of linear.c's scalar ones (bit-identical): outlier flags of
 * columns [c0, c1) over all rows; one row's SCA and CA (xor 0x80 for u8), padded with zeros to kp. */
void lin_i8_flags_avx512(const uint16_t *x, int m, int k, float t, int c0, int c1, uint8_t *flags);
float lin_i8_quant_row_avx512(int8_t *ca, const uint16_t *x, int k, int kp, float t, const uint8_t *flags,
                              int nout, uint8_t xor_mask);
/* palette 1, tiles 0-7 of 16 rows x 64 bytes, for the calling thread (linear_amx.c; peak_amx.c's probes) */
void lin_amx_config(void);

#endif
