/* AMX kernels of the CPU linear layers: int8 (tdpbssd, exact int32, then the shared AVX-512 LLM.int8()
 * epilogue) and bf16 (tdpbf16ps, fp32 accumulate, then the 16-bit epilogue) for M >= 2; fp16 weights as
 * exact bf16 hi/lo pairs on tdpbf16ps for large M. (The tile-resident peak probes are peak_amx.c's.)
 * Runs only after linear.c's CPUID/XCR0 checks and the arch_prctl tile-data permission. Tiles are
 * configured once per thread per call, not around tile ops (re-configuring costs ~30%, ANCHORS.md). */
#include <immintrin.h>

#include "cpu_linear.h"

/* Software prefetch of each B-tile (weight) stream, every line twice: LIN_AMX_PF_FAR bytes ahead, then
 * again LIN_AMX_PF_NEAR ahead (the second catches prefetches dropped while the fill buffers were full).
 * Tile loads that wait on memory stall the AMX pipeline. Measured at M=32 on this VM (2 MiB pages,
 * interleaved A/B against a prefetching read of the same weights): 2+4 KiB ~0.87 of the read rate;
 * one level at 2, 4, 8 or 16 KiB 0.75-0.78; T2 (L2) for the far level 0.80. Re-measured later with
 * bench-linear 1T (K,N) = (2048,8192), bw_frac, 2+4 KiB -> 768 B + 1.25 KiB: int8 M=16 0.80 -> 0.87-0.88
 * (M=12 0.82 -> 0.90, (8192,2048) M=16 0.79 -> 0.92), bf16 M=8 0.86 -> 0.99-1.00, M=16 0.85 -> 0.98,
 * int8 M=32 0.69-0.71 -> 0.73, bf16 M=32 0.84-0.85 -> 0.87-0.88, M=128 +0.02. Swept at M=12/16 (near,
 * far): (1024, 2048) 0.84, (512, 1024) 0.84, (512, 1536) 0.86-0.88, (512, 1792) 0.83, (1536, 3072)
 * 0.80, (512, 1152) 0.86, (640..1024, 1280) 0.88-0.92. */
#define LIN_AMX_PF_NEAR 768
#define LIN_AMX_PF_FAR 1280

/* Intel SDM vol. 1 ch. 18 / intrinsics guide `_tile_loadconfig`: palette 1, tiles 0-7 of 16 rows x 64
 * bytes. Tiles: C 0..3 (C[mi][ni] = 2*mi + ni), A 4..5, B 6..7. A static const object: gcc 12 does not
 * see that ldtilecfg reads its operand and dropped the stores into a local config as dead (seen at -O2
 * in a test program: #UD on the first tile instruction). */
typedef struct __attribute__((aligned(64))) LinTileCfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} LinTileCfg;

static const LinTileCfg g_lin_tile_cfg = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

void lin_amx_config(void) { _tile_loadconfig(&g_lin_tile_cfg); }

/* always_inline and unrolled: gcc 12's IPA pure/const pass sees no side effect in a function that only
 * prefetches and, when it does not inline it, deletes the calls (the first AMX kernels had no prefetch
 * at all); a rolled loop tripled the instructions per k step, so fewer k steps fit in the
 * out-of-order window while a tile load waits. */
static inline __attribute__((always_inline)) void lin_amx_prefetch(const char *p)
{
#pragma GCC unroll 16
    for (int l = 0; l < 1024; l += 64) {
        _mm_prefetch(p + LIN_AMX_PF_FAR + l, _MM_HINT_T0);
        _mm_prefetch(p + LIN_AMX_PF_NEAR + l, _MM_HINT_T0);
    }
}

/* k step at byte offset o of a block of bs bytes: prefetches that would run past the block's end go
 * `jump` further, to the same stream of the next group of blocks (jump = (group size - 1) * bs), so
 * every stream of the next group starts warm, not only the one behind the last stream (as
 * lin_vnni_rq). bench-linear 1T bw_frac, side by side: K=2048 N=8192 M=12/16 0.76-0.77 -> 0.80-0.81,
 * M=24/32 +0.01; K=8192 N=2048 M=12/16 0.75-0.78 -> 0.79-0.80, M=24/32 0.77-0.79 -> 0.81-0.85. The
 * far level as T1: 0.01-0.03 worse; without lin_amx_prefetch_next behind it: 0-0.02 worse. Also tried:
 * the epilogue into an L1 scratch, then y as non-temporal 64-byte lines (y's rows are N*2 bytes apart,
 * one L1 set, each line an RFO): bench-linear M=16..32 +0.03-0.08, but no gain in decode, where the
 * next op then reads y from DRAM (pp8 bench --profile, OPT-1.3B batch 32: the linears equal, ReLU
 * 1.6 -> 3.5 ms per step), so the epilogue writes y directly. */
static inline __attribute__((always_inline)) void lin_amx_prefetch_ro(const char *p, size_t o, size_t bs, size_t jump)
{
    const char *f = p + LIN_AMX_PF_FAR + (o + LIN_AMX_PF_FAR >= bs ? jump : 0);
    const char *n = p + LIN_AMX_PF_NEAR + (o + LIN_AMX_PF_NEAR >= bs ? jump : 0);
#pragma GCC unroll 16
    for (int l = 0; l < 1024; l += 64) {
        _mm_prefetch(f + l, _MM_HINT_T0);
        _mm_prefetch(n + l, _MM_HINT_T0);
    }
}

/* the first lines of the next block pair, so the weight stream keeps flowing through the epilogue */
static inline __attribute__((always_inline)) void lin_amx_prefetch_next(const char *next, int nblocks, size_t bs)
{
    for (int q = 0; q < nblocks; q++)
        for (int l = 0; l < LIN_AMX_PF_FAR; l += 64) _mm_prefetch(next + q * bs + l, _MM_HINT_T0);
}

/* B tile kc of block b = bytes [kc*1024, +1024) of the block: the packed layout is the AMX B layout. */

/* 2 m-tiles x 2 n-blocks, first pass over these weights: the hot loop at M >= 17, without branches */
#define LIN_AMX_LOOP22(DP, ASTEP)                                                                             \
    for (int kc = 0; kc < nkc; kc++) {                                                                       \
        const char *p0 = w0 + (size_t)kc * 1024, *p1 = w1 + (size_t)kc * 1024;                               \
        lin_amx_prefetch_ro(p0, (size_t)kc * 1024, bs, bs);                                                  \
        lin_amx_prefetch_ro(p1, (size_t)kc * 1024, bs, bs);                                                  \
        _tile_loadd(6, p0, 64);                                                                              \
        _tile_loadd(7, p1, 64);                                                                              \
        _tile_loadd(4, a0 + (size_t)kc * ASTEP, astride);                                                    \
        _tile_loadd(5, a1 + (size_t)kc * ASTEP, astride);                                                    \
        DP(0, 4, 6);                                                                                         \
        DP(1, 4, 7);                                                                                         \
        DP(2, 5, 6);                                                                                         \
        DP(3, 5, 7);                                                                                         \
    }

/* the general case: 2x2, 2x1, 1x2 or 1x1 tiles; prefetch only on the first pass (pf) */
#define LIN_AMX_LOOP(DP, ASTEP)                                                                               \
    for (int kc = 0; kc < nkc; kc++) {                                                                       \
        const char *p0 = w0 + (size_t)kc * 1024, *p1 = w1 + (size_t)kc * 1024;                               \
        if (pf) {                                                                                            \
            lin_amx_prefetch(p0);                                                                            \
            if (two) lin_amx_prefetch(p1);                                                                   \
        }                                                                                                    \
        _tile_loadd(6, p0, 64);                                                                              \
        if (two) _tile_loadd(7, p1, 64);                                                                     \
        _tile_loadd(4, a0 + (size_t)kc * ASTEP, astride);                                                    \
        if (twom) _tile_loadd(5, a1 + (size_t)kc * ASTEP, astride);                                          \
        DP(0, 4, 6);                                                                                         \
        if (two) DP(1, 4, 7);                                                                                \
        if (twom) DP(2, 5, 6);                                                                               \
        if (two && twom) DP(3, 5, 7);                                                                        \
    }

/* One 16-row tile against up to four n-blocks (M <= 16): four weight streams in flight, which read
 * ~10% faster than two; the B tiles alternate between tiles 6 and 7. A third B tile (tile 5, unused at
 * M <= 16), so that only the fourth block waits for a tile to be read, measured the same (bench-linear
 * 1T M=16, K=2048 N=8192 and K=8192 N=2048: 0.78-0.80 either way). */
#define LIN_AMX_LOOP14(DP, ASTEP)                                                                             \
    for (int kc = 0; kc < nkc; kc++) {                                                                       \
        const char *p = w0 + (size_t)kc * 1024;                                                              \
        for (int q = 0; q < nn; q++) lin_amx_prefetch_ro(p + q * bs, (size_t)kc * 1024, bs, 3 * bs);          \
        _tile_loadd(4, a0 + (size_t)kc * ASTEP, astride);                                                    \
        _tile_loadd(6, p, 64);                                                                               \
        if (nn > 1) _tile_loadd(7, p + bs, 64);                                                              \
        DP(0, 4, 6);                                                                                         \
        if (nn > 1) DP(1, 4, 7);                                                                             \
        if (nn > 2) {                                                                                        \
            _tile_loadd(6, p + 2 * bs, 64);                                                                  \
            DP(2, 4, 6);                                                                                     \
        }                                                                                                    \
        if (nn > 3) {                                                                                        \
            _tile_loadd(7, p + 3 * bs, 64);                                                                  \
            DP(3, 4, 7);                                                                                     \
        }                                                                                                    \
    }

#define LIN_DPBSSD(c, a, b) _tile_dpbssd(c, a, b)
#define LIN_DPBF16PS(c, a, b) _tile_dpbf16ps(c, a, b)

static inline void lin_amx_store22(void *cbuf)
{
    char *c = cbuf; /* (32, 32) x 4 bytes: C00 | C01 over C10 | C11 */
    _tile_stored(0, c, 128);
    _tile_stored(1, c + 64, 128);
    _tile_stored(2, c + 16 * 128, 128);
    _tile_stored(3, c + 16 * 128 + 64, 128);
}

static inline void lin_amx_store14(void *cbuf)
{
    char *c = cbuf; /* (16, 64) x 4 bytes: C0 | C1 | C2 | C3 */
    _tile_stored(0, c, 256);
    _tile_stored(1, c + 64, 256);
    _tile_stored(2, c + 128, 256);
    _tile_stored(3, c + 192, 256);
}

static inline void lin_amx_epilogue(const LinJob *j, int i8, int blk, int r0, int nr, const char *acc, int stride,
                                    void *ets)
{
    if (i8)
        lin_i8_epilogue_avx512(j, blk, r0, nr, (const int32_t *)acc, stride, ets);
    else
        lin_16_epilogue_avx512(j, blk, r0, nr, (const float *)acc, stride);
}

/* The int8 and bf16 kernels differ only in the tile op, the element size and the epilogue. Per thread:
 * blocks [b0, b1); M <= 16: one 16-row tile against four n-blocks; else 2x2 tiles (32 rows x 32
 * outputs) over all of K with C resident in the tiles, the weights of a block pair read from memory
 * once and from L2 for further row pairs. A rows beyond M are zeros (linear.c pads to 16). */
#define LIN_AMX_KERNEL(NAME, DP, I8)                                                                          \
    void NAME(const LinJob *j, int b0, int b1, void *ts)                                                     \
    {                                                                                                        \
        lin_amx_config();                                                                                    \
        const int es = (I8) ? 1 : 2;                                                                         \
        int kp = j->kp, nkc = kp * es / 64, mp = (j->m + 15) / 16 * 16;                                       \
        size_t bs = (size_t)16 * kp * es, astride = (I8) ? (size_t)j->ca_ld : (size_t)j->xs_ld * 2;          \
        const char *W = j->w->w, *A = (I8) ? (const char *)j->ca : (const char *)j->xs;                      \
        char *cbuf = ts; /* tile stores, 4 KiB */                                                            \
        void *ets = (char *)ts + 4096;                                                                        \
        if (mp == 16) {                                                                                      \
            const char *a0 = A;                                                                              \
            for (int b = b0, nn; b < b1; b += nn) {                                                          \
                nn = b1 - b < 4 ? b1 - b : 4;                                                                \
                const char *w0 = W + (size_t)b * bs;                                                         \
                _tile_zero(0);                                                                               \
                _tile_zero(1);                                                                               \
                _tile_zero(2);                                                                               \
                _tile_zero(3);                                                                               \
                LIN_AMX_LOOP14(DP, 64)                                                                       \
                lin_amx_store14(cbuf);                                                                       \
                for (int q = 0; q < nn; q++) lin_amx_epilogue(j, (I8), b + q, 0, j->m, cbuf + 64 * q, 64, ets); \
            }                                                                                                \
        } else {                                                                                             \
            for (int b = b0, two; b < b1; b += 1 + two) {                                                    \
                two = b + 1 < b1;                                                                            \
                const char *w0 = W + (size_t)b * bs, *w1 = two ? w0 + bs : w0;                               \
                for (int m0 = 0; m0 < mp; m0 += 32) {                                                        \
                    int twom = m0 + 16 < mp, pf = m0 == 0;                                                   \
                    const char *a0 = A + (size_t)m0 * astride, *a1 = twom ? a0 + 16 * astride : a0;          \
                    _tile_zero(0);                                                                           \
                    _tile_zero(1);                                                                           \
                    _tile_zero(2);                                                                           \
                    _tile_zero(3);                                                                           \
                    if (two && twom && pf) {                                                                 \
                        LIN_AMX_LOOP22(DP, 64)                                                               \
                    } else {                                                                                 \
                        LIN_AMX_LOOP(DP, 64)                                                                 \
                    }                                                                                        \
                    if (m0 + 32 >= mp && b + 2 < b1) lin_amx_prefetch_next(w0 + 2 * bs, b + 3 < b1 ? 2 : 1, bs); \
                    lin_amx_store22(cbuf);                                                                   \
                    int nr = j->m - m0 < 32 ? j->m - m0 : 32;                                                \
                    lin_amx_epilogue(j, (I8), b, m0, nr, cbuf, 32, ets);                                     \
                    if (two) lin_amx_epilogue(j, (I8), b + 1, m0, nr, cbuf + 64, 32, ets);                   \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
        _tile_release();                                                                                     \
    }

LIN_AMX_KERNEL(lin_i8_amx, LIN_DPBSSD, 1)
LIN_AMX_KERNEL(lin_bf16_amx, LIN_DPBF16PS, 0)

/* ---- fp16 weights on AMX-BF16: the exact hi/lo split (amx-f16split) ----
 * Every fp16 v is hi + lo with hi = v truncated to bf16 (the upper half of its fp32 bits) and lo = v - hi,
 * both exact: v has at most 11 significant bits, hi keeps the first 8, so lo has at most 3 and is its
 * own upper half too; fp16's range lies inside bf16's, and fp16 subnormals are normal bf16. Products of
 * two bf16 are exact in fp32, so x.w = xh.wh + xh.wl + xl.wh + xl.wl differs from the fp32-FMA paths
 * only in summation order. All four terms are computed: xl.wl (<= 2^-16 of the product) needs no extra
 * tile load in the schedule below, only a fourth tdpbf16ps per tile pair, and without it 6 of
 * test_linear_paths' checks (|y - ref| <= 1e-5 max|ref|, K = 1000) failed. */

/* One B-tile pair: 32 k of one packed block ([32][16] fp16, 1 KiB) -> hi, lo and hi-finite in the AMX
 * VNNI-pair layout ([16 pairs][16 outputs][2] bf16, 1 KiB each, LIN_F16_SPLIT_KC bytes in all). An inf
 * or NaN weight gives lo = 0 (inf - inf would be NaN) and 0 in hi-finite, the copy of hi that meets xl:
 * xl is 0 for every x exact in bf16, and 0 * inf would turn the +-inf that xh * inf gives into NaN. A
 * NaN stays NaN through xh * hi (vcvtph2ps sets the quiet bit, which lies in the upper half). A matrix
 * without inf or NaN weights (cpu_linear_pack's flag, every real checkpoint) skips the compare and the
 * hi-finite copy, and xl meets hi itself (bw_frac at M=16 0.66-0.69 -> 0.69-0.73). Port 5
 * bounds this loop (the conversions, the mask compare): the pair layout lane l = (even k, odd k) of
 * output l is the upper halves of the two converted vectors' lanes l, merged with a shift and a
 * ternary logic op, no permute. bench-linear 1T K=2048 N=50272, bw_frac: M=16 0.58-0.61 with a rounded
 * hi (vcvtne2ps2bf16 and two vpermw per 32 weights), 0.66-0.69 with the truncated one; M=32 0.46-0.48
 * -> 0.51-0.55. */
#define LIN_F16_SPLIT_KC 3072 /* split bytes of one k step of one block: hi, lo, hi-finite */

/* (upper half of a's lanes) | (upper half of b's lanes) << 16: lane l = the bf16 pair (a_l, b_l) */
static inline __m512i lin_pair_hi16(__m512 a, __m512 b)
{
    return _mm512_ternarylogic_epi32(_mm512_srli_epi32(_mm512_castps_si512(a), 16), _mm512_castps_si512(b),
                                     _mm512_set1_epi32((int)0xffff0000u), 0xf8); /* A | (B & C) */
}

static inline __attribute__((always_inline)) void lin_f16_split_kc(const char *src, char *dst, int special_any)
{
    const __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
    const __m512i absmask = _mm512_set1_epi16(0x7fff), infbits = _mm512_set1_epi16(0x7c00);
#pragma GCC unroll 4
    for (int p = 0; p < 16; p++) {
        const char *q = src + 64 * p; /* k = 2p for 16 outputs, then k = 2p + 1 */
        __m512 a = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)q));
        __m512 b = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(q + 32)));
        __m512i h = lin_pair_hi16(a, b);
        __m512 ha = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), himask));
        __m512 hb = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(b), himask));
        __m512i l = lin_pair_hi16(_mm512_sub_ps(a, ha), _mm512_sub_ps(b, hb)); /* exact, and exact in bf16 */
        _mm512_store_si512(dst + 64 * p, h);
        if (!special_any) { /* every weight of the matrix finite (cpu_linear_pack): no hi-finite copy */
            _mm512_store_si512(dst + 1024 + 64 * p, l);
            continue;
        }
        __m512i hf = h;
        __mmask32 special = _mm512_cmpge_epu16_mask(_mm512_and_si512(_mm512_load_si512(q), absmask), infbits);
        if (special) { /* rare: zero lo and hi-finite where the weight is inf or NaN (per 32-bit lane) */
            __mmask16 se = (__mmask16)(special & 0xffff), so = (__mmask16)(special >> 16);
            __m512i ev = _mm512_set1_epi32(0x0000ffff), od = _mm512_set1_epi32((int)0xffff0000u);
            __m512i zm = _mm512_or_si512(_mm512_maskz_mov_epi32(se, ev), _mm512_maskz_mov_epi32(so, od));
            l = _mm512_andnot_si512(zm, l);
            hf = _mm512_andnot_si512(zm, h);
        }
        _mm512_store_si512(dst + 1024 + 64 * p, l);
        _mm512_store_si512(dst + 2048 + 64 * p, hf);
    }
}

/* k step kc (32 k) of one or two blocks w0, w1 into split scratch slot `slot` of s0, s1 ([slot][hi | lo |
 * hi-finite], 1 KiB each) */
static inline __attribute__((always_inline)) void lin_f16_split_pair(const char *w0, const char *w1, int two, char *s0,
                                                                     char *s1, int kc, int slot, int special_any)
{
    const char *p0 = w0 + (size_t)kc * 1024, *p1 = w1 + (size_t)kc * 1024;
    lin_amx_prefetch(p0);
    lin_f16_split_kc(p0, s0 + (size_t)slot * LIN_F16_SPLIT_KC, special_any);
    if (two) {
        lin_amx_prefetch(p1);
        lin_f16_split_kc(p1, s1 + (size_t)slot * LIN_F16_SPLIT_KC, special_any);
    }
}

/* Per thread: blocks [b0, b1) in pairs; each pair's weights are split once, k step by k step during the
 * first 32-row pass (the weight stream overlaps the tile ops), into LIN_F16SPLIT_BYTES(kp) bytes after
 * the first LIN_TSCRATCH of ts, and further row pairs read the split from there. With one row pass
 * (M <= 32) two k steps of scratch take turns instead, so the split stays in L1 (M=8..32, K=2048:
 * ~4% faster). At M <= 16 this kernel takes the split's time plus the tile ops' time (K=2048 N=50272
 * 1T: 15.7 ms split and stream alone, 20.7 ms in all); splitting in quarters between the groups of
 * tile ops, two k steps ahead, measured the same, so the simple order stays. Staged activations
 * (linear.c) hold per row and per 32 k the hi then the lo bf16 values, so A(hi) and A(lo) of one k step
 * are 64 bytes apart. Per k step, with C[mi][ni] in tiles 0..3: hh, hl, ll, lh in this order (fixed, so
 * results do not depend on the thread count). */
void lin_f16_amx_split(const LinJob *j, int b0, int b1, void *ts)
{
    lin_amx_config();
    int kp = j->kp, nkc = kp / 32, mp = (j->m + 15) / 16 * 16;
    size_t bs = (size_t)16 * kp * 2, ss = (size_t)nkc * LIN_F16_SPLIT_KC, astride = (size_t)j->xs_ld * 2;
    const char *W = j->w->w, *A = j->xs;
    char *cbuf = ts; /* tile stores, 4 KiB */
    char *S = (char *)ts + LIN_TSCRATCH;
    /* cpu_linear_pack's flag after the blocks: some weight is inf or NaN, so hi-finite must be split */
    const int special = *(const int32_t *)(W + (size_t)j->nb * bs);
    const size_t hf = special ? 2048 : 0;
    for (int b = b0, two; b < b1; b += 1 + two) {
        two = b + 1 < b1;
        const char *w0 = W + (size_t)b * bs, *w1 = two ? w0 + bs : w0;
        int ring = mp <= 32; /* slot of k step kc: kc & 1, else kc */
        char *s0 = S, *s1 = S + (ring ? 2 * LIN_F16_SPLIT_KC : ss);
        for (int m0 = 0; m0 < mp; m0 += 32) {
            int twom = m0 + 16 < mp, first = m0 == 0;
            const char *a0 = A + (size_t)m0 * astride, *a1 = twom ? a0 + 16 * astride : a0;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            if (first) lin_f16_split_pair(w0, w1, two, s0, s1, 0, 0, special);
            for (int kc = 0; kc < nkc; kc++) {
                int slot = ring ? kc & 1 : kc;
                char *h0 = s0 + (size_t)slot * LIN_F16_SPLIT_KC, *h1 = s1 + (size_t)slot * LIN_F16_SPLIT_KC;
                const char *x0 = a0 + (size_t)kc * 128, *x1 = a1 + (size_t)kc * 128;
#define LIN_F16_DP4()                                                                                             \
    do {                                                                                                          \
        _tile_dpbf16ps(0, 4, 6);                                                                                  \
        if (two) _tile_dpbf16ps(1, 4, 7);                                                                         \
        if (twom) _tile_dpbf16ps(2, 5, 6);                                                                        \
        if (two && twom) _tile_dpbf16ps(3, 5, 7);                                                                 \
    } while (0)
                _tile_loadd(4, x0, astride); /* xh . wh */
                if (twom) _tile_loadd(5, x1, astride);
                _tile_loadd(6, h0, 64);
                if (two) _tile_loadd(7, h1, 64);
                LIN_F16_DP4();
                _tile_loadd(6, h0 + 1024, 64); /* xh . wl */
                if (two) _tile_loadd(7, h1 + 1024, 64);
                LIN_F16_DP4();
                _tile_loadd(4, x0 + 64, astride); /* xl . wl */
                if (twom) _tile_loadd(5, x1 + 64, astride);
                LIN_F16_DP4();
                _tile_loadd(6, h0 + hf, 64); /* xl . wh (hi-finite, or hi when every weight is finite) */
                if (two) _tile_loadd(7, h1 + hf, 64);
                LIN_F16_DP4();
#undef LIN_F16_DP4
                /* split the next k step while the tile ops above run (a tile load right behind the
                 * stores that wrote its bytes waits for them) */
                if (first && kc + 1 < nkc)
                    lin_f16_split_pair(w0, w1, two, s0, s1, kc + 1, ring ? (kc + 1) & 1 : kc + 1, special);
            }
            if (m0 + 32 >= mp && b + 2 < b1) lin_amx_prefetch_next(w0 + 2 * bs, b + 3 < b1 ? 2 : 1, bs);
            lin_amx_store22(cbuf);
            int nr = j->m - m0 < 32 ? j->m - m0 : 32;
            lin_16_epilogue_avx512(j, b, m0, nr, (const float *)cbuf, 32);
            if (two) lin_16_epilogue_avx512(j, b + 1, m0, nr, (const float *)(cbuf + 64), 32);
        }
    }
    _tile_release();
}
