/* AVX-512 kernels of the CPU linear layers: LLM.int8() activation quantization, the VNNI int8 GEMV /
 * small-M kernel, the bf16 (vdpbf16ps at 1-4 rows, fp32 FMA from 5) and fp16 (vcvtph2ps + fp32 FMA)
 * kernels, the fp32-FMA panels for many rows (avx512-fma) and their epilogues.
 * Runs only after linear.c's CPUID checks. The int8 parts are bit-identical to linear.c's scalar code:
 * exact int32 sums, and the epilogue does numerics.h's operations in its order (no FMA, vcvtps2ph with
 * round-to-nearest-even). fp16 arithmetic (AVX512-FP16) is deliberately not used: it accumulates in fp16. */
#include <immintrin.h>
#include <string.h>

#include "../numerics.h"
#include "cpu_linear.h"
#include "bf16_avx512.h"

/* Software prefetch distance on each weight stream, bytes, as OpenBLAS sgemv reaches the read ceiling
 * (ANCHORS.md): the CPU vendor's (membw_pf_bytes: Intel 2048, AMD 512; the measurements are in membw.c),
 * read once per process by cpu_linear_create into lin_pf_bytes. prefetchnta read 7.2 GB/s where T0 read
 * 14.9 on Sapphire Rapids (NTA bypasses L2 and starves the stream). */
#define LIN_PF_BYTES lin_pf_bytes

#define LIN_RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline __mmask16 lin_mask16(int nv) { return nv >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nv) - 1); }

/* n / G for n < 2^20 and 1 <= G <= 64 without a divide in the inner loops: n * (2^32 / G + 1) >> 32 is exact
 * there (the error n (G - 2^32 mod G) / (G 2^32) < 1 / G) */
static inline uint64_t lin_div_magic(int G) { return 0xffffffffull / (uint64_t)G + 1; }
static inline size_t lin_div_small(uint32_t n, uint64_t magic) { return (size_t)(((uint64_t)n * magic) >> 32); }

/* ---- activation quantization (bitsandbytes int8_vectorwise_quant; DESIGN.md) ---- */

void lin_i8_flags_avx512(const uint16_t *x, int m, int k, float t, int c0, int c1, uint8_t *flags)
{
    const __m512 vt = _mm512_set1_ps(t);
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int j = c0; j < c1; j += 16) {
        __mmask16 ld = lin_mask16(c1 - j), out = 0;
        for (int r = 0; r < m; r++) {
            __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(ld, x + (size_t)r * k + j));
            out |= _mm512_mask_cmp_ps_mask(ld, _mm512_andnot_ps(sign, v), vt, _CMP_GE_OQ);
        }
        /* one byte per column: 1 where flagged */
        _mm_mask_storeu_epi8(flags + j, ld, _mm_maskz_set1_epi8(out, 1));
    }
}

float lin_i8_quant_row_avx512(int8_t *ca, const uint16_t *x, int k, int kp, float t, const uint8_t *flags, int nout,
                              uint8_t xor_mask)
{
    const __m512 sign = _mm512_set1_ps(-0.0f), vt = _mm512_set1_ps(t);
    __m512 amax = _mm512_setzero_ps();
    for (int j = 0; j < k; j += 16) {
        __mmask16 ld = lin_mask16(k - j);
        __m512 a = _mm512_andnot_ps(sign, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(ld, x + j)));
        /* elements at or above t are outliers and excluded from SCA (pp8_i8_is_outlier) */
        __mmask16 keep = t > 0.0f ? _mm512_mask_cmp_ps_mask(ld, a, vt, _CMP_LT_OQ) : ld;
        amax = _mm512_mask_max_ps(amax, keep, amax, a);
    }
    float am = _mm512_reduce_max_ps(amax);
    const __m512 s = _mm512_set1_ps(pp8_i8_scale(am));
    const __m128i xm = _mm_set1_epi8((char)xor_mask);
    for (int j = 0; j < kp; j += 16) {
        __mmask16 ld = lin_mask16(k - j > 0 ? k - j : 0);
        __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(ld, x + j));
        /* vcvtps2dq rounds with MXCSR = nearest-even, as rintf in pp8_i8_quant */
        __m128i q = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v, s)));
        if (nout) {
            __mmask16 o = _mm_mask_test_epi8_mask(ld, _mm_loadu_si128((const __m128i *)(flags + j)),
                                                  _mm_set1_epi8(1));
            q = _mm_mask_mov_epi8(q, o, _mm_setzero_si128());
        }
        _mm_storeu_si128((__m128i *)(ca + j), _mm_xor_si128(q, xm));
    }
    return am;
}

/* ---- int8 epilogue: DESIGN.md steps 2-4 on 16 outputs at once ---- */

void lin_i8_epilogue_avx512(const LinJob *j, int blk, int r0, int nr, const int32_t *acc, int stride, void *ts)
{
    const Linear *w = j->w;
    int o0 = blk * 16, nv = j->n - o0;
    __mmask16 mk = lin_mask16(nv);
    const __m512 scb = _mm512_maskz_loadu_ps(mk, w->scb + o0);
    const __m512 bias = w->bias ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, w->bias + o0)) : _mm512_setzero_ps();
    const __m512 inv127sq = _mm512_set1_ps(PP8_INV_127SQ), inv127 = _mm512_set1_ps(PP8_INV_127);
    uint16_t *y = j->y;
    float *os = ts; /* (nr, 16) outlier sums */
    if (j->dbg_acc)
        for (int r = 0; r < nr; r++)
            _mm512_mask_storeu_epi32(j->dbg_acc + (size_t)(r0 + r) * j->n + o0, mk,
                                     _mm512_loadu_si512(acc + (size_t)r * stride));
    if (j->nout) {
        const int8_t *wb = (const int8_t *)w->w + (size_t)blk * 16 * j->kp;
        for (int r = 0; r < nr; r++) _mm512_store_ps(os + r * 16, _mm512_setzero_ps());
        for (int c = 0; c < j->nout; c++) {
            int col = j->ocols[c];
            /* CB[o0..o0+15, col]: byte col%4 of each dword of k-group col/4, sign-extended */
            __m512i g = _mm512_load_si512(wb + (size_t)(col >> 2) * 64);
            g = _mm512_sll_epi32(g, _mm_cvtsi32_si128(24 - 8 * (col & 3)));
            g = _mm512_srai_epi32(g, 24);
            /* step 3: Wd = fp16(float(CB) * SCB * (1/127)) */
            __m512 wd = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(g), scb), inv127);
            wd = _mm512_cvtph_ps(_mm512_cvtps_ph(wd, LIN_RNE));
            for (int r = 0; r < nr; r++) {
                __m512 xv = _mm512_set1_ps(j->xo[(size_t)(r0 + r) * j->nout + c]);
                _mm512_store_ps(os + r * 16, _mm512_add_ps(_mm512_load_ps(os + r * 16), _mm512_mul_ps(xv, wd)));
            }
        }
    }
    for (int r = 0; r < nr; r++) {
        __m512 a = _mm512_cvtepi32_ps(_mm512_loadu_si512(acc + (size_t)r * stride));
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(a, _mm512_set1_ps(j->sca[r0 + r])), scb), inv127sq);
        __m256i h = _mm512_cvtps_ph(_mm512_add_ps(v, bias), LIN_RNE);
        if (j->nout) h = _mm512_cvtps_ph(_mm512_add_ps(_mm512_cvtph_ps(h), _mm512_load_ps(os + r * 16)), LIN_RNE);
        _mm256_mask_storeu_epi16(y + (size_t)(r0 + r) * j->n + o0, mk, h);
    }
}

/* ---- int8 VNNI kernel ----
 * Packed block = [KP/4][16][4]: one vpdpbusd per 64 bytes of weights with 4 activation bytes broadcast,
 * 16 outputs per zmm, no horizontal sums. Activations are u8 = CA + 128, so every accumulator starts at
 * -128 * sum_k CB[o,k] (exact in int32 for K < 66000). */

/* one row: four accumulators so the vpdpbusd latency never limits the stream */
static inline void lin_vnni_r1(const int8_t *wb, const uint8_t *a, int kg, __m512i init, int32_t *out)
{
    __m512i s0 = init, s1 = _mm512_setzero_si512(), s2 = _mm512_setzero_si512(), s3 = _mm512_setzero_si512();
    const int32_t *a32 = (const int32_t *)a;
    for (int g = 0; g < kg; g += 4) {
        const char *p = (const char *)wb + (size_t)g * 64;
        _mm_prefetch(p + LIN_PF_BYTES, _MM_HINT_T0);
        _mm_prefetch(p + LIN_PF_BYTES + 64, _MM_HINT_T0);
        _mm_prefetch(p + LIN_PF_BYTES + 128, _MM_HINT_T0);
        _mm_prefetch(p + LIN_PF_BYTES + 192, _MM_HINT_T0);
        s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(a32[g]), _mm512_load_si512(p));
        s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(a32[g + 1]), _mm512_load_si512(p + 64));
        s2 = _mm512_dpbusd_epi32(s2, _mm512_set1_epi32(a32[g + 2]), _mm512_load_si512(p + 128));
        s3 = _mm512_dpbusd_epi32(s3, _mm512_set1_epi32(a32[g + 3]), _mm512_load_si512(p + 192));
    }
    _mm512_store_si512(out, _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3)));
}

/* R rows (2..8) share each 64-byte weight load: one block at a time (blocks left over by lin_vnni_rq's groups, M > 8) */
static inline __attribute__((always_inline)) void lin_vnni_rn(const int8_t *wb, const uint8_t *a, int ld, int kg,
                                                              __m512i init, int R, int32_t *out)
{
    __m512i s[8];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) s[r] = init;
    for (int g = 0; g < kg; g++) {
        const char *p = (const char *)wb + (size_t)g * 64;
        _mm_prefetch(p + LIN_PF_BYTES, _MM_HINT_T0);
        __m512i wv = _mm512_load_si512(p);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            int32_t av;
            memcpy(&av, a + (size_t)r * ld + (size_t)g * 4, 4);
            s[r] = _mm512_dpbusd_epi32(s[r], _mm512_set1_epi32(av), wv);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) _mm512_store_si512(out + r * 16, s[r]);
}

/* Prefetch of Q weight streams bs apart at 64-byte step g of kg: LIN_PF_BYTES ahead on each; over the
 * last LIN_PF_BYTES of a block, into the same offset of the next group's stream (Q bs further), so all
 * Q streams are warm when the next group starts (lin_vnni_rq, lin_16f_rq). */
static inline __attribute__((always_inline)) void lin_pf_streams(const char *wb, size_t bs, int Q, int kg, int g)
{
    int gs = kg - LIN_PF_BYTES / 64 > 0 ? kg - LIN_PF_BYTES / 64 : 0;
    const char *pf = wb + LIN_PF_BYTES + (size_t)g * 64 + (g >= gs ? (size_t)(Q - 1) * bs : 0);
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++) _mm_prefetch(pf + q * bs, _MM_HINT_T0);
}

/* R rows (1..8) by Q blocks side by side: Q weight streams in flight, and each row's broadcast of 4
 * activation bytes feeds Q vpdpbusd (R*Q accumulators + R broadcasts within 32 zmm). At R = 1 it
 * replaced a one-row kernel with the same four streams but its own prefetch (bench-linear 1T, (K,N) =
 * (2048,8192) (4096,12288) (8192,2048): 0.98 1.03 0.97 of the bandwidth against 0.95 1.00 0.96).
 * out: (Q, R, 16). Measured 1T K=2048 N=8192 against the read probe: M=8 0.86 with Q=2 streams and
 * 0.88 with Q=3; one prefetch level 2 KiB ahead that runs on into the next group's blocks 0.88-0.89
 * at M=8 (0.86 without the run-on: Q-1 streams started cold each group); 4 KiB 0.83, 8 KiB 0.79; the
 * second, 512-byte level +0-2%. */
#define LIN_RQ_KERNEL(NAME, VT, DP, STORE)                                                                      \
    static inline __attribute__((always_inline)) void NAME(const char *wb, size_t bs, const char *a, size_t lda,   \
                                                           int kg, const VT *init, int R, int Q, char *out)       \
    {                                                                                                            \
        VT s[4][8];                                                                                              \
        const char *p[4];                                                                                        \
        _Pragma("GCC unroll 4") for (int q = 0; q < Q; q++)                                                      \
        {                                                                                                        \
            p[q] = wb + q * bs;                                                                                  \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) s[q][r] = init[q];                               \
        }                                                                                                        \
        for (int g = 0; g < kg; g++) {                                                                           \
            size_t o = (size_t)g * 64;                                                                           \
            lin_pf_streams(wb, bs, Q, kg, g);                                                                    \
            _Pragma("GCC unroll 4") for (int q = 0; q < Q; q++) _mm_prefetch(p[q] + o + 512, _MM_HINT_T0);       \
            __m512i av[8];                                                                                       \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                                  \
            {                                                                                                    \
                int32_t v;                                                                                       \
                memcpy(&v, a + (size_t)r * lda + (size_t)g * 4, 4);                                              \
                av[r] = _mm512_set1_epi32(v);                                                                    \
            }                                                                                                    \
            _Pragma("GCC unroll 4") for (int q = 0; q < Q; q++)                                                  \
            {                                                                                                    \
                __m512i wv = _mm512_load_si512(p[q] + o);                                                        \
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) s[q][r] = DP(s[q][r], av[r], wv);            \
            }                                                                                                    \
        }                                                                                                        \
        _Pragma("GCC unroll 4") for (int q = 0; q < Q; q++)                                                      \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) STORE(out + (size_t)(q * R + r) * 64, s[q][r]);  \
    }

/* int8: u8 activations x s8 weights into exact int32; bf16: pairs of x times pairs of w into fp32. Both
 * take 4 bytes of activations (4 u8, or one bf16 pair) per 64-byte step of [KP/4][16][4] or [KP/2][16][2]
 * packed weights, so one body serves both. */
#define LIN_DP_I8(s, a, w) _mm512_dpbusd_epi32(s, a, w)
#define LIN_DP_BF16(s, a, w) _mm512_dpbf16_ps(s, (__m512bh)(a), (__m512bh)(w))
#define LIN_ST_I8(p, v) _mm512_store_si512(p, v)
#define LIN_ST_PS(p, v) _mm512_store_ps(p, v)
LIN_RQ_KERNEL(lin_vnni_rq, __m512i, LIN_DP_I8, LIN_ST_I8)
LIN_RQ_KERNEL(lin_bf16_rq, __m512, LIN_DP_BF16, LIN_ST_PS)

/* blocks per pass of lin_vnni_rq: four streams for every row count R, though at R = 5..8 the 4R
 * accumulators and a broadcast no longer fit 32 zmm and a few spill: bench-linear 1T M=8, bw_frac for
 * (K,N) = (2048,6144) (2048,8192) (2048,2048) (8192,2048), two runs each: Q=3 0.86-0.87 0.88 0.81-0.82
 * 0.97; Q=4 0.90 0.93-0.94 0.85-0.86 0.97-0.98; Q=6 (48 accumulators) 0.85-0.88 0.89 0.80-0.82 0.86-0.89 */
#define LIN_VNNI_Q 4
/* At R = 8, lin_vnni_q8 blocks per pass (cpu_linear_create sets it by vendor): Intel 4 as above; AMD 3,
 * where 32 accumulators + 8 broadcasts spill far worse: Zen 4 EPYC VM, bench-linear 1T with the 512-byte
 * prefetch, M=8, read fraction Q=4 0.19-0.26, Q=3 0.67-0.76, Q=2 0.61-0.75 ((K,N) = (2048,8192)
 * (8192,2048), two runs each); at M=4..7 Q=4 stays best (0.72-0.93 against Q=3's 0.67-0.88). */

void lin_i8_vnni_avx512(const LinJob *j, int b0, int b1, void *ts)
{
    int kp = j->kp, kg = kp / 4;
    const int8_t *W = j->w->w;
    const int32_t *wsum = (const int32_t *)(W + (size_t)j->nb * 16 * kp);
    int32_t *acc = ts;                         /* (4 blocks, 8 rows, 16) */
    void *ets = (char *)ts + 4 * 8 * 16 * sizeof(int32_t);
    const uint8_t *ca = (const uint8_t *)j->ca;
    const __m512i m128 = _mm512_set1_epi32(-128);
    int b = b0;
    if (j->m >= 1 && j->m <= 8) {
        const int R = j->m, Q = R == 8 ? lin_vnni_q8 : LIN_VNNI_Q;
        for (; b + Q <= b1; b += Q) {
            __m512i init[4];
            for (int q = 0; q < 4; q++)
                init[q] = q < Q ? _mm512_mullo_epi32(_mm512_loadu_si512(wsum + (b + q) * 16), m128) : _mm512_setzero_si512();
            const char *wc = (const char *)(W + (size_t)b * 16 * kp), *ac = (const char *)ca;
            size_t bs = (size_t)16 * kp, lda = (size_t)j->ca_ld;
            char *oc = (char *)acc;
            switch (R) {
            case 1: lin_vnni_rq(wc, bs, ac, lda, kg, init, 1, LIN_VNNI_Q, oc); break;
            case 2: lin_vnni_rq(wc, bs, ac, lda, kg, init, 2, LIN_VNNI_Q, oc); break;
            case 3: lin_vnni_rq(wc, bs, ac, lda, kg, init, 3, LIN_VNNI_Q, oc); break;
            case 4: lin_vnni_rq(wc, bs, ac, lda, kg, init, 4, LIN_VNNI_Q, oc); break;
            case 5: lin_vnni_rq(wc, bs, ac, lda, kg, init, 5, LIN_VNNI_Q, oc); break;
            case 6: lin_vnni_rq(wc, bs, ac, lda, kg, init, 6, LIN_VNNI_Q, oc); break;
            case 7: lin_vnni_rq(wc, bs, ac, lda, kg, init, 7, LIN_VNNI_Q, oc); break;
            default:
                if (Q == 3)
                    lin_vnni_rq(wc, bs, ac, lda, kg, init, 8, 3, oc);
                else
                    lin_vnni_rq(wc, bs, ac, lda, kg, init, 8, LIN_VNNI_Q, oc);
                break;
            }
            for (int q = 0; q < Q; q++) lin_i8_epilogue_avx512(j, b + q, 0, R, acc + q * R * 16, 16, ets);
        }
    }
    for (; b < b1; b++) {
        const int8_t *wb = W + (size_t)b * 16 * kp;
        __m512i init = _mm512_mullo_epi32(_mm512_loadu_si512(wsum + b * 16), m128);
        for (int r0 = 0; r0 < j->m; r0 += 8) {
            int R = j->m - r0 < 8 ? j->m - r0 : 8;
            const uint8_t *a = ca + (size_t)r0 * j->ca_ld;
            switch (R) {
            case 1: lin_vnni_r1(wb, a, kg, init, acc); break;
            case 2: lin_vnni_rn(wb, a, j->ca_ld, kg, init, 2, acc); break;
            case 3: lin_vnni_rn(wb, a, j->ca_ld, kg, init, 3, acc); break;
            case 4: lin_vnni_rn(wb, a, j->ca_ld, kg, init, 4, acc); break;
            case 5: lin_vnni_rn(wb, a, j->ca_ld, kg, init, 5, acc); break;
            case 6: lin_vnni_rn(wb, a, j->ca_ld, kg, init, 6, acc); break;
            case 7: lin_vnni_rn(wb, a, j->ca_ld, kg, init, 7, acc); break;
            default: lin_vnni_rn(wb, a, j->ca_ld, kg, init, 8, acc); break;
            }
            lin_i8_epilogue_avx512(j, b, r0, R, acc, 16, ets);
        }
    }
}

/* ---- int8 and bf16 panels: many rows without AMX ----
 * lin_vnni_rn above feeds 8 rows from one block, 8 accumulators: too few chains for vpdpbusd's latency at
 * two per cycle, and nine loads per eight. Here two blocks side by side and up to 14 rows (28
 * accumulators + 2 weight registers + 1 broadcast), the weights of the pair read from L1/L2 once per
 * row group and the rows' activation dwords packed per row group so one pointer reaches them all: int8,
 * u8 CA in j->cap ([KP/4][R] per group; the sums are exact int32 whatever the order, the same bits as
 * every other int8 path); bf16, pairs of x in j->xs ([KP/2][R]) against vdpbf16ps where it outruns fp32
 * FMA (AMD: 1T register probes on a Zen 5 EPYC, vdpbf16ps zmm 514 GOP/s against vfmadd zmm 268; on Intel's
 * AVX-512 cores half the FMA rate, and linear.c keeps FMA there). vdpbf16ps rounds after each pair (the
 * 16-bit tolerance of DESIGN.md, as lin_bf16_avx512). Both take 64 bytes of weights and one dword of x per
 * row per step, so one body serves both (as LIN_RQ_KERNEL).
 * pf: the next pair's two weight streams, prefetched spread over the row groups of this pair: group gi of
 * G asks at step g for line (gi ks + g) / G, so each line is asked for ~once per G steps in order
 * (prefetching it all during the first group issued lines faster than memory returns them: M=32 read
 * 6.5 GB/s where the weights alone stream at 18) */
#define LIN_PANEL_RQ_KERNEL(NAME, VT, DP, STORE)                                                                \
    static inline __attribute__((always_inline)) void NAME(const char *w0p, const char *w1p, const int32_t *a,    \
                                                           int ks, const VT *init, const char *const *pf, int gi, \
                                                           int G, char *out, int R, int Q)                        \
    {                                                                                                            \
        VT s[14][2];                                                                                             \
        const uint64_t ginv = lin_div_magic(G);                                                                  \
        _Pragma("GCC unroll 14") for (int r = 0; r < R; r++)                                                     \
            _Pragma("GCC unroll 2") for (int q = 0; q < Q; q++) s[r][q] = init[q];                               \
        for (int g = 0; g < ks; g++) {                                                                           \
            size_t line = lin_div_small((uint32_t)(gi * ks + g), ginv) * 64;                                     \
            _mm_prefetch(pf[0] + line, _MM_HINT_T0);                                                             \
            _mm_prefetch(pf[1] + line, _MM_HINT_T0);                                                             \
            __m512i w0 = _mm512_load_si512(w0p + (size_t)g * 64);                                                \
            __m512i w1 = Q > 1 ? _mm512_load_si512(w1p + (size_t)g * 64) : w0;                                   \
            _Pragma("GCC unroll 14") for (int r = 0; r < R; r++)                                                 \
            {                                                                                                    \
                __m512i av = _mm512_set1_epi32(a[(size_t)g * R + r]);                                            \
                if (Q > 1) __asm__("" : "+v"(av)); /* one vpbroadcastd for both (lin_panel_rq) */                \
                s[r][0] = DP(s[r][0], av, w0);                                                                   \
                if (Q > 1) s[r][1] = DP(s[r][1], av, w1);                                                        \
            }                                                                                                    \
        }                                                                                                        \
        _Pragma("GCC unroll 14") for (int r = 0; r < R; r++)                                                     \
            _Pragma("GCC unroll 2") for (int q = 0; q < Q; q++) STORE(out + (size_t)(r * 32 + q * 16) * 4, s[r][q]); \
    }
LIN_PANEL_RQ_KERNEL(lin_vnni_panel_rq, __m512i, LIN_DP_I8, LIN_ST_I8)
LIN_PANEL_RQ_KERNEL(lin_bf16_panel_rq, __m512, LIN_DP_BF16, LIN_ST_PS)

/* the panels' driver; bf16: the vdpbf16ps panels, else int8 */
static inline __attribute__((always_inline)) void lin_panels(const LinJob *j, int b0, int b1, void *ts, const int bf16)
{
    const int kp = j->kp, m = j->m, ks = bf16 ? kp / 2 : kp / 4;
    const size_t bb = (size_t)(bf16 ? 32 : 16) * kp; /* bytes per block of 16 outputs */
    const char *W = j->w->w;
    const int32_t *wsum = bf16 ? NULL : (const int32_t *)(W + (size_t)j->nb * bb);
    const int32_t *x32 = bf16 ? (const int32_t *)j->xs : (const int32_t *)j->cap;
    char *acc = ts; /* (14 rows, 32) */
    void *ets = (char *)ts + 14 * 32 * sizeof(int32_t);
    const __m512i m128 = _mm512_set1_epi32(-128);
    /* row blocks of packed x within L2 (int8: 1 byte per value; bf16 <= ~256 KiB, half the fp32 panels'
     * 512: M=512 K=1024 read 0.49 of the vdpbf16ps probe with 512, 0.94 with 256), balanced (M=128 bf16:
     * 5 + 5 groups, not 9 + 1) */
    const int ng = lin_panel_groups(m, 14), gb = lin_panel_block_groups(bf16 ? kp : kp / 4, 14);
    const int nblk = (ng + gb - 1) / gb;
    for (int bi = 0; bi < nblk; bi++) {
        const int g0 = ng * bi / nblk, ge = ng * (bi + 1) / nblk;
        for (int b = b0; b < b1; b += 2) {
            const int Q = b + 1 < b1 ? 2 : 1;
            const char *w0p = W + (size_t)b * bb, *w1p = Q > 1 ? w0p + bb : w0p;
            __m512i init[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
            for (int q = 0; q < Q && !bf16; q++) init[q] = _mm512_mullo_epi32(_mm512_loadu_si512(wsum + (b + q) * 16), m128);
            const __m512 zero[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
            /* the next pair's weights, one line per step and stream, spread over this pair's row groups */
            const char *next[2] = {w0p, w1p};
            if (b + 2 < b1) {
                next[0] = w0p + 2 * bb;
                next[1] = b + 3 < b1 ? next[0] + bb : next[0];
            }
            for (int g = g0; g < ge; g++) {
                const int r0 = (int)((long)m * g / ng), R = (int)((long)m * (g + 1) / ng) - r0;
                const int32_t *a = x32 + (size_t)r0 * ks;
                const char *const *pf = next;
                const int gi = g - g0, G = ge - g0;
#define LIN_PANEL_CASE(n)                                                                                      \
    case n:                                                                                                    \
        if (bf16 && Q > 1)                                                                                     \
            lin_bf16_panel_rq(w0p, w1p, a, ks, zero, pf, gi, G, acc, n, 2);                                    \
        else if (bf16)                                                                                         \
            lin_bf16_panel_rq(w0p, w1p, a, ks, zero, pf, gi, G, acc, n, 1);                                    \
        else if (Q > 1)                                                                                        \
            lin_vnni_panel_rq(w0p, w1p, a, ks, init, pf, gi, G, acc, n, 2);                                    \
        else                                                                                                   \
            lin_vnni_panel_rq(w0p, w1p, a, ks, init, pf, gi, G, acc, n, 1);                                    \
        break;
                switch (R) {
                    LIN_PANEL_CASE(1) LIN_PANEL_CASE(2) LIN_PANEL_CASE(3) LIN_PANEL_CASE(4) LIN_PANEL_CASE(5)
                    LIN_PANEL_CASE(6) LIN_PANEL_CASE(7) LIN_PANEL_CASE(8) LIN_PANEL_CASE(9) LIN_PANEL_CASE(10)
                    LIN_PANEL_CASE(11) LIN_PANEL_CASE(12) LIN_PANEL_CASE(13) default: LIN_PANEL_CASE(14)
                }
#undef LIN_PANEL_CASE
                for (int q = 0; q < Q; q++)
                    if (bf16)
                        lin_16_epilogue_avx512(j, b + q, r0, R, (const float *)acc + q * 16, 32);
                    else
                        lin_i8_epilogue_avx512(j, b + q, r0, R, (const int32_t *)acc + q * 16, 32, ets);
            }
        }
    }
}

void lin_i8_vnni_panel_avx512(const LinJob *j, int b0, int b1, void *ts) { lin_panels(j, b0, b1, ts, 0); }
void lin_bf16_panel_avx512(const LinJob *j, int b0, int b1, void *ts) { lin_panels(j, b0, b1, ts, 1); }

/* ---- 16-bit epilogue: + bias, then fp32 / fp16 / bf16 (round to nearest even, as pp8_f2bf) ---- */

static inline __m512 lin_bf16x16_to_ps(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }

void lin_16_epilogue_avx512(const LinJob *j, int blk, int r0, int nr, const float *acc, int stride)
{
    const Linear *w = j->w;
    int o0 = blk * 16;
    __mmask16 mk = lin_mask16(j->n - o0);
    __m512 bias = _mm512_setzero_ps();
    if (w->bias) {
        __m256i b = _mm256_maskz_loadu_epi16(mk, w->bias + o0);
        bias = w->wdt == DTYPE_BF16 ? lin_bf16x16_to_ps(b) : _mm512_cvtph_ps(b);
    }
    for (int r = 0; r < nr; r++) {
        __m512 v = _mm512_loadu_ps(acc + (size_t)r * stride);
        if (w->bias) v = _mm512_add_ps(v, bias);
        size_t at = (size_t)(r0 + r) * j->n + o0;
        if (j->ydt == DTYPE_F32 && j->y_stream && mk == 0xffff)
            _mm512_stream_ps((float *)j->y + at, v);
        else if (j->ydt == DTYPE_F32)
            _mm512_mask_storeu_ps((float *)j->y + at, mk, v);
        else if (j->ydt == DTYPE_BF16)
            _mm256_mask_storeu_epi16((uint16_t *)j->y + at, mk, pp8_ps_to_bf16x16(v));
        else
            _mm256_mask_storeu_epi16((uint16_t *)j->y + at, mk, _mm512_cvtps_ph(v, LIN_RNE));
    }
}

/* ---- bf16: vdpbf16ps on [KP/2][16][2] pairs, a broadcast bf16 pair of x per 64 bytes ---- */

/* one row: eight accumulators; with four, vdpbf16ps latency held the stream to ~85% of the rate the
 * fp16 kernel reaches (measured side by side on this VM) */
static inline void lin_bf16_r1(const uint16_t *wb, const uint16_t *x, int kq, float *out)
{
    __m512 s[8];
    const int32_t *x32 = (const int32_t *)x;
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) s[i] = _mm512_setzero_ps();
    for (int p = 0; p < kq; p += 8) { /* kq = KP/2 is a multiple of 16 */
        const char *q = (const char *)(wb + (size_t)p * 32);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            _mm_prefetch(q + LIN_PF_BYTES + 64 * i, _MM_HINT_T0);
            s[i] = _mm512_dpbf16_ps(s[i], (__m512bh)_mm512_set1_epi32(x32[p + i]), (__m512bh)_mm512_load_si512(q + 64 * i));
        }
    }
    __m512 t = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])),
                             _mm512_add_ps(_mm512_add_ps(s[4], s[5]), _mm512_add_ps(s[6], s[7])));
    _mm512_store_ps(out, t);
}

static inline __attribute__((always_inline)) void lin_bf16_rn(const uint16_t *wb, const uint16_t *x, int ld, int kq,
                                                              int R, float *out)
{
    __m512 s[8];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) s[r] = _mm512_setzero_ps();
    for (int p = 0; p < kq; p++) {
        const char *q = (const char *)(wb + (size_t)p * 32);
        _mm_prefetch(q + LIN_PF_BYTES, _MM_HINT_T0);
        __m512bh wv = (__m512bh)_mm512_load_si512(q);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            int32_t xv;
            memcpy(&xv, x + (size_t)r * ld + (size_t)p * 2, 4);
            s[r] = _mm512_dpbf16_ps(s[r], (__m512bh)_mm512_set1_epi32(xv), wv);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) _mm512_store_ps(out + r * 16, s[r]);
}

void lin_bf16_avx512(const LinJob *j, int b0, int b1, void *ts)
{
    int kp = j->kp, kq = kp / 2;
    float *acc = ts;
    const uint16_t *W = j->w->w, *xs = j->xs;
    int b = b0;
    if (j->m >= 1 && j->m <= 4) {
        /* R rows by four blocks per pass, as int8 (lin_vnni_rq; at M=1 1.03-1.04 of the bandwidth where
         * one row against four blocks with two accumulators each read 0.94). Only to 4 rows: vdpbf16ps
         * then limits it (bench-linear 1T bw_frac, (K,N) = (2048,8192) (8192,2048) (4096,12288): M=2-4 1.02-1.06
         * where amx-bf16 reads 0.84-0.86; M=8 0.66-0.71 with four blocks, 0.57 with two; M=5 0.89-0.98,
         * M=6 0.80-0.86 with two, around amx-bf16's 0.85), so linear.c hands 5 rows on to AMX */
        int R = j->m;
        const __m512 zero[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (; b + 4 <= b1; b += 4) {
            const char *wb = (const char *)(W + (size_t)b * 16 * kp), *x = (const char *)xs;
            size_t bs = (size_t)32 * kp, ld = (size_t)j->xs_ld * 2;
            switch (R) {
            case 1: lin_bf16_rq(wb, bs, x, ld, kq, zero, 1, 4, (char *)acc); break;
            case 2: lin_bf16_rq(wb, bs, x, ld, kq, zero, 2, 4, (char *)acc); break;
            case 3: lin_bf16_rq(wb, bs, x, ld, kq, zero, 3, 4, (char *)acc); break;
            default: lin_bf16_rq(wb, bs, x, ld, kq, zero, 4, 4, (char *)acc); break;
            }
            for (int q = 0; q < 4; q++) lin_16_epilogue_avx512(j, b + q, 0, R, acc + q * R * 16, 16);
        }
    }
    for (; b < b1; b++) {
        const uint16_t *wb = W + (size_t)b * 16 * kp;
        for (int r0 = 0; r0 < j->m; r0 += 8) {
            int R = j->m - r0 < 8 ? j->m - r0 : 8;
            const uint16_t *x = xs + (size_t)r0 * j->xs_ld;
            switch (R) {
            case 1: lin_bf16_r1(wb, x, kq, acc); break;
            case 2: lin_bf16_rn(wb, x, j->xs_ld, kq, 2, acc); break;
            case 3: lin_bf16_rn(wb, x, j->xs_ld, kq, 3, acc); break;
            case 4: lin_bf16_rn(wb, x, j->xs_ld, kq, 4, acc); break;
            case 5: lin_bf16_rn(wb, x, j->xs_ld, kq, 5, acc); break;
            case 6: lin_bf16_rn(wb, x, j->xs_ld, kq, 6, acc); break;
            case 7: lin_bf16_rn(wb, x, j->xs_ld, kq, 7, acc); break;
            default: lin_bf16_rn(wb, x, j->xs_ld, kq, 8, acc); break;
            }
            lin_16_epilogue_avx512(j, b, r0, R, acc, 16);
        }
    }
}

/* ---- fp16: vcvtph2ps of 16 outputs of one k, fp32 FMA with a broadcast fp32 x (never fp16 math) ---- */

static inline void lin_f16_r1(const uint16_t *wb, const float *x, int kp, float *out)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < kp; i += 4) {
        const char *q = (const char *)(wb + (size_t)i * 16);
        _mm_prefetch(q + LIN_PF_BYTES, _MM_HINT_T0);
        _mm_prefetch(q + LIN_PF_BYTES + 64, _MM_HINT_T0);
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)q)), s0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 1]), _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(q + 32))), s1);
        s2 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 2]), _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(q + 64))), s2);
        s3 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 3]), _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(q + 96))), s3);
    }
    _mm512_store_ps(out, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* one row, four blocks: four weight streams, two accumulators per block */
static inline void lin_f16_r1x4(const uint16_t *wb, size_t bs, const float *x, int kp, float *out)
{
    __m512 s[8];
    const char *p[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) s[i] = _mm512_setzero_ps();
    for (int q = 0; q < 4; q++) p[q] = (const char *)wb + q * bs * 2;
    for (int i = 0; i < kp; i += 2) {
        size_t o = (size_t)i * 32;
        __m512 x0 = _mm512_set1_ps(x[i]), x1 = _mm512_set1_ps(x[i + 1]);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            _mm_prefetch(p[q] + o + LIN_PF_BYTES, _MM_HINT_T0);
            s[2 * q] = _mm512_fmadd_ps(x0, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(p[q] + o))), s[2 * q]);
            s[2 * q + 1] =
                _mm512_fmadd_ps(x1, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(p[q] + o + 32))), s[2 * q + 1]);
        }
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) _mm512_store_ps(out + 16 * q, _mm512_add_ps(s[2 * q], s[2 * q + 1]));
}

/* R rows (2..16) per pass over a block: one vcvtph2ps (2 uops on the FMA ports) feeds R FMAs, so 16
 * rows keep ~89% of the FMA slots for FMAs (8 rows: 80%). Since lin_16f_rq: the tail blocks of a range
 * and M > 16 only. */
static inline __attribute__((always_inline)) void lin_f16_rn(const uint16_t *wb, const float *x, int kp, int ld,
                                                             int R, float *out)
{
    __m512 s[16];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) s[r] = _mm512_setzero_ps();
    for (int i = 0; i < kp; i++) {
        const char *q = (const char *)(wb + (size_t)i * 16);
        if (!(i & 1)) _mm_prefetch(q + LIN_PF_BYTES, _MM_HINT_T0);
        __m512 wv = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)q));
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) s[r] = _mm512_fmadd_ps(_mm512_set1_ps(x[(size_t)r * ld + i]), wv, s[r]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) _mm512_store_ps(out + r * 16, s[r]);
}

/* R rows (2..12) by Q blocks side by side (the fp16 form of lin_vnni_rq): each row's broadcast x value
 * feeds Q FMAs, where lin_f16_rn spends one embedded-broadcast load per FMA and reaches ~0.55 of the
 * FMA rate at R=8 (L1-resident microbenchmark, ns per 16 weights: R=8 2.62 one block, 1.70 two; R=12
 * 3.72 vs 2.46; the read budget at 18.7 GB/s is 1.71). The floor is then the FMA ports: R FMAs + 2 uops of
 * vcvtph2ps per 16 weights, (R+2)/2 cycles, below the read time up to R ~ 9. Each output keeps one accumulator summed in k
 * order, as lin_f16_rn, so the bits do not depend on Q, the grouping of blocks or the threads.
 * out: (Q, R, 16). Prefetch as lin_vnni_rq: LIN_PF_BYTES ahead on each stream, running on into the
 * next group's streams over the last LIN_PF_BYTES of a block (bench-linear K=2048 N=50272 1T, M=4/8/12: 4-8
 * KiB, a second level 512 B ahead, or prefetching x's rows measured within the VM's noise or slower). */
/* BF = 1: bf16 weights in the pair layout [KP/2][16][2], one 64-byte load per stream giving k even (<< 16)
 * and k odd (& 0xffff0000) as fp32, exactly, for 5..16 rows without AMX, where vdpbf16ps (half the FMA
 * ports' rate here) held lin_bf16_rn to 0.37-0.67 of the read bandwidth at M=8..14 (bench-linear 1T K=1024
 * N=4096; this form: M=8 14.1 GB/s against 12.3, M=12 140 GFLOP/s against 88). */
static inline __attribute__((always_inline)) void lin_16f_rq(const uint16_t *wb, size_t bs, const float *x, int kp,
                                                             int ld, int R, int Q, int BF, float *out)
{
    __m512 s[4][12];
    const char *p[4];
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++) {
        p[q] = (const char *)wb + q * bs;
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) s[q][r] = _mm512_setzero_ps();
    }
    int kg = kp / 2; /* 64-byte groups of two k per stream */
    for (int g = 0; g < kg; g++) {
        size_t o = (size_t)g * 64;
        lin_pf_streams((const char *)wb, bs, Q, kg, g);
        __m512i v[4]; /* bf16: the 64 bytes of one k pair per stream */
#pragma GCC unroll 4
        for (int q = 0; q < Q; q++) v[q] = BF ? _mm512_load_si512(p[q] + o) : _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512 wv[4];
#pragma GCC unroll 4
            for (int q = 0; q < Q; q++)
                wv[q] = BF ? _mm512_castsi512_ps(h ? _mm512_and_si512(v[q], hi) : _mm512_slli_epi32(v[q], 16))
                           : _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(p[q] + o + 32 * h)));
#pragma GCC unroll 12
            for (int r = 0; r < R; r++) {
                __m512 xv = _mm512_set1_ps(x[(size_t)r * ld + 2 * g + h]);
#pragma GCC unroll 4
                for (int q = 0; q < Q; q++) s[q][r] = _mm512_fmadd_ps(xv, wv[q], s[q][r]);
            }
        }
    }
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++)
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) _mm512_store_ps(out + (q * R + r) * 16, s[q][r]);
}

/* blocks per pass of lin_16f_rq for R rows: R*Q accumulators + Q converted weights + 1 broadcast <= 32 */
static inline int lin_f16_q(int R) { return R <= 4 ? 4 : R <= 8 ? 3 : 2; }

/* bf16 at 5..16 rows without AMX (linear.c stages x as fp32): lin_16f_rq (bf16) over groups of Q blocks (Q from
 * the rows per pass, lin_f16_q), 13..16 rows in two passes of 6..8, as lin_f16_avx512; a last group narrower
 * than Q block by block */
void lin_bf16_fma_avx512(const LinJob *j, int b0, int b1, void *ts)
{
    int kp = j->kp;
    float *acc = ts; /* (4 blocks, 12 rows, 16) */
    const uint16_t *W = j->w->w;
    const float *xs = j->xs;
    int P = j->m <= 12 ? j->m : (j->m + 1) / 2, Q = lin_f16_q(P);
    size_t bs = (size_t)32 * kp;
    for (int b = b0; b < b1;) {
        int one = b1 - b < Q; /* Q is the same for both passes: lin_f16_q(6..8) = 3 */
        const uint16_t *wb = W + (size_t)b * 16 * kp;
        for (int r0 = 0; r0 < j->m; r0 += P) {
            int R = j->m - r0 < P ? j->m - r0 : P;
            const float *x = xs + (size_t)r0 * j->xs_ld;
#define LIN_BF16F_CASE(n, qq)                                                                                   \
    case n:                                                                                                     \
        if (one)                                                                                                \
            lin_16f_rq(wb, bs, x, kp, j->xs_ld, n, 1, 1, acc);                                                   \
        else                                                                                                    \
            lin_16f_rq(wb, bs, x, kp, j->xs_ld, n, qq, 1, acc);                                                  \
        break;
            switch (R) {
                LIN_BF16F_CASE(1, 4) LIN_BF16F_CASE(2, 4) LIN_BF16F_CASE(3, 4) LIN_BF16F_CASE(4, 4) LIN_BF16F_CASE(5, 3)
                LIN_BF16F_CASE(6, 3) LIN_BF16F_CASE(7, 3) LIN_BF16F_CASE(8, 3) LIN_BF16F_CASE(9, 2) LIN_BF16F_CASE(10, 2)
                LIN_BF16F_CASE(11, 2) default: LIN_BF16F_CASE(12, 2)
            }
#undef LIN_BF16F_CASE
            for (int q = 0; q < (one ? 1 : Q); q++) lin_16_epilogue_avx512(j, b + q, r0, R, acc + q * R * 16, 16);
        }
        b += one ? 1 : Q;
    }
}

void lin_f16_avx512(const LinJob *j, int b0, int b1, void *ts)
{
    int kp = j->kp;
    float *acc = ts; /* (4 blocks, 12 rows, 16) */
    const uint16_t *W = j->w->w;
    const float *xs = j->xs;
    int b = b0;
    if (j->m == 1)
        for (; b + 4 <= b1; b += 4) {
            lin_f16_r1x4(W + (size_t)b * 16 * kp, (size_t)16 * kp, xs, kp, acc);
            for (int q = 0; q < 4; q++) lin_16_epilogue_avx512(j, b + q, 0, 1, acc + 16 * q, 16);
        }
    if (j->m >= 2 && j->m <= 16) {
        /* rows per pass P: all of M <= 12 (two passes of 6 at M=12 measured the same, 19.6 vs 19.9 ms); 13-16
         * rows (AMX's range, here where AMX is absent or x is not finite) in two passes of 7-8 rows over each
         * group of blocks, the second reading the group from L2, Q (= lin_f16_q(P)) the same for both */
        int P = j->m <= 12 ? j->m : (j->m + 1) / 2, Q = lin_f16_q(P);
        size_t bs = (size_t)32 * kp;
        for (; b + Q <= b1; b += Q) {
            const uint16_t *wb = W + (size_t)b * 16 * kp;
            for (int r0 = 0; r0 < j->m; r0 += P) {
                int R = j->m - r0 < P ? j->m - r0 : P;
                const float *x = xs + (size_t)r0 * j->xs_ld;
                switch (R) {
                case 2: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 2, 4, 0, acc); break;
                case 3: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 3, 4, 0, acc); break;
                case 4: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 4, 4, 0, acc); break;
                case 5: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 5, 3, 0, acc); break;
                case 6: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 6, 3, 0, acc); break;
                case 7: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 7, 3, 0, acc); break;
                case 8: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 8, 3, 0, acc); break;
                case 9: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 9, 2, 0, acc); break;
                case 10: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 10, 2, 0, acc); break;
                case 11: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 11, 2, 0, acc); break;
                default: lin_16f_rq(wb, bs, x, kp, j->xs_ld, 12, 2, 0, acc); break;
                }
                for (int q = 0; q < Q; q++) lin_16_epilogue_avx512(j, b + q, r0, R, acc + q * R * 16, 16);
            }
        }
    }
    for (; b < b1; b++) {
        const uint16_t *wb = W + (size_t)b * 16 * kp;
        for (int r0 = 0; r0 < j->m; r0 += 16) {
            int R = j->m - r0 < 16 ? j->m - r0 : 16;
            const float *x = xs + (size_t)r0 * j->xs_ld;
            switch (R) {
            case 1: lin_f16_r1(wb, x, kp, acc); break;
#define LIN_F16_CASE(n)                                                                                       \
    case n: lin_f16_rn(wb, x, kp, j->xs_ld, n, acc); break;
                LIN_F16_CASE(2) LIN_F16_CASE(3) LIN_F16_CASE(4) LIN_F16_CASE(5) LIN_F16_CASE(6) LIN_F16_CASE(7)
                LIN_F16_CASE(8) LIN_F16_CASE(9) LIN_F16_CASE(10) LIN_F16_CASE(11) LIN_F16_CASE(12) LIN_F16_CASE(13)
                LIN_F16_CASE(14) LIN_F16_CASE(15)
#undef LIN_F16_CASE
            default: lin_f16_rn(wb, x, kp, j->xs_ld, 16, acc); break;
            }
            lin_16_epilogue_avx512(j, b, r0, R, acc, 16);
        }
    }
}

/* ---- 16-bit panels (avx512-fma): bf16 and fp16 weights at many rows, fp32 FMA at the compute limit ----
 * Without AMX the rows of prefill and batched decode make the 16-bit product compute-bound, and there
 * vdpbf16ps (one zmm per cycle on this Xeon: 122 GFLOP/s 1T, tile-free probe) and the per-use
 * vcvtph2ps of lin_f16_rn (two FMA-port uops per 16 weights) leave the FMA ports (2 zmm per cycle: 244
 * GFLOP/s 1T) half used. So: K in chunks of LIN_PANEL_KC; per chunk the weights of two blocks are
 * converted once to fp32 [KC][32] (bf16: a shift; fp16: vcvtph2ps; both exact), and every row runs
 * against that L1-resident panel with two weight loads and one broadcast per 2 R FMAs, carrying its 32
 * sums from chunk to chunk through [M][32] fp32 scratch. Each output has one accumulator summed in
 * ascending k, and every bf16/fp16 product is exact in fp32 (8x8 / 11x11 significant bits), so the FMA
 * rounds exactly where ref_linear16's add does: the result equals the scalar reference bit for bit,
 * whatever the blocking or thread count. */

/* R rows (1..14) by Q blocks (1, 2): R*Q accumulators + Q panel rows + 1 broadcast <= 31 zmm */
static inline __attribute__((always_inline)) void lin_panel_rq(const float *pan, int kc, const float *x, float *c,
                                                               int first, const char *const *pf, int gi, int G,
                                                               int R, int Q)
{
    __m512 s[14][2];
    const uint64_t ginv = lin_div_magic(G);
#pragma GCC unroll 14
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int q = 0; q < Q; q++) s[r][q] = first ? _mm512_setzero_ps() : _mm512_load_ps(c + r * 32 + q * 16);
    for (int k = 0; k < kc; k++) {
        size_t t = lin_div_small((uint32_t)(gi * kc + k), ginv); /* spread over the G row groups (lin_vnni_panel_rq) */
        _mm_prefetch(pf[t & 1] + (t >> 1) * 64, _MM_HINT_T0);
        __m512 w0 = _mm512_load_ps(pan + (size_t)k * 32), w1 = Q > 1 ? _mm512_load_ps(pan + (size_t)k * 32 + 16) : w0;
#pragma GCC unroll 14
        for (int r = 0; r < R; r++) {
            __m512 xv = _mm512_set1_ps(x[(size_t)k * R + r]);
            /* one vbroadcastss for both FMAs: gcc would fold it into each as an embedded broadcast, two
             * loads per two FMAs, which held the loop to ~0.77 of the FMA rate on the load ports */
            if (Q > 1) __asm__("" : "+v"(xv));
            s[r][0] = _mm512_fmadd_ps(xv, w0, s[r][0]);
            if (Q > 1) s[r][1] = _mm512_fmadd_ps(xv, w1, s[r][1]);
        }
    }
#pragma GCC unroll 14
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int q = 0; q < Q; q++) _mm512_store_ps(c + r * 32 + q * 16, s[r][q]);
}

/* pf: two streams of kc/2 64-byte lines each, the next chunk's weights, prefetched while this one computes
 * and spread over the G row groups (group gi of G) as lin_vnni_panel_rq does */
static void lin_panel_rows(const float *pan, int kc, const float *x, float *c, int first, const char *const *pf,
                           int gi, int G, int R, int Q)
{
#define LIN_PANEL_CASE(n)                                                                                      \
    case n:                                                                                                    \
        if (Q > 1)                                                                                             \
            lin_panel_rq(pan, kc, x, c, first, pf, gi, G, n, 2);                                               \
        else                                                                                                   \
            lin_panel_rq(pan, kc, x, c, first, pf, gi, G, n, 1);                                               \
        break;
    switch (R) {
        LIN_PANEL_CASE(1) LIN_PANEL_CASE(2) LIN_PANEL_CASE(3) LIN_PANEL_CASE(4) LIN_PANEL_CASE(5) LIN_PANEL_CASE(6)
        LIN_PANEL_CASE(7) LIN_PANEL_CASE(8) LIN_PANEL_CASE(9) LIN_PANEL_CASE(10) LIN_PANEL_CASE(11)
        LIN_PANEL_CASE(12) LIN_PANEL_CASE(13) default: LIN_PANEL_CASE(14)
    }
#undef LIN_PANEL_CASE
}

/* weights k0 .. k0+kc of block wb (bf16 [KP/2][16][2] or fp16 [KP][16]) as fp32 into pan[k][16 of 32],
 * prefetching LIN_PF_BYTES ahead on the block's stream */
static void lin_panel_convert(const uint16_t *wb, int bf16, int k0, int kc, float *pan)
{
    if (bf16) {
        const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
        for (int k = 0; k < kc; k += 2) {
            const char *q = (const char *)(wb + (size_t)(k0 + k) * 16);
            _mm_prefetch(q + LIN_PF_BYTES, _MM_HINT_T0);
            __m512i v = _mm512_load_si512(q); /* 16 dwords (w[o][k], w[o][k+1]) */
            _mm512_store_ps(pan + (size_t)k * 32, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
            _mm512_store_ps(pan + (size_t)(k + 1) * 32, _mm512_castsi512_ps(_mm512_and_si512(v, hi)));
        }
    } else {
        for (int k = 0; k < kc; k += 2) {
            const char *q = (const char *)(wb + (size_t)(k0 + k) * 16);
            _mm_prefetch(q + LIN_PF_BYTES, _MM_HINT_T0);
            _mm512_store_ps(pan + (size_t)k * 32, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)q)));
            _mm512_store_ps(pan + (size_t)(k + 1) * 32, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(q + 32))));
        }
    }
}

/* Loop order (Goto's): row blocks of up to LIN_PANEL_MC_GROUPS groups, whose x chunk (rows x KC fp32,
 * <= 252 KiB) stays in L2; within one, output super-blocks of LIN_PANEL_NC_BLOCKS blocks, whose sums
 * (rows x 256 fp32) stay in L2 too; then K chunk by chunk, each pair's weight panel converted once and
 * run by every row group. The weights are so read from memory once per row block, whatever K (a row
 * block sized by all of K's x, 28 rows at K=4096, re-read them 18 times at M=512: 0.42-0.61 of the FMA
 * probe at K=4096 N=1024). */
void lin_16_panel_avx512(const LinJob *j, int b0, int b1, void *ts)
{
    int kp = j->kp, m = j->m, bf16 = j->w->wdt == DTYPE_BF16;
    float *pan = ts, *acc = (float *)((char *)ts + LIN_TSCRATCH); /* [KC][32], then [pair][rows][32] */
    const uint16_t *W = j->w->w;
    const float *xs = j->xs;
    int ng = lin_panel_groups(m, 14);
    for (int g0 = 0; g0 < ng; g0 += LIN_PANEL_MC_GROUPS) {
        int ge = g0 + LIN_PANEL_MC_GROUPS < ng ? g0 + LIN_PANEL_MC_GROUPS : ng;
        int rb0 = (int)((long)m * g0 / ng), rb1 = (int)((long)m * ge / ng), nr = rb1 - rb0;
        for (int nb0 = b0; nb0 < b1; nb0 += LIN_PANEL_NC_BLOCKS) {
            int nb1 = nb0 + LIN_PANEL_NC_BLOCKS < b1 ? nb0 + LIN_PANEL_NC_BLOCKS : b1;
            for (int k0 = 0; k0 < kp; k0 += LIN_PANEL_KC) {
                int kc = kp - k0 < LIN_PANEL_KC ? kp - k0 : LIN_PANEL_KC;
                for (int b = nb0; b < nb1; b += 2) {
                    int Q = b + 1 < nb1 ? 2 : 1;
                    for (int q = 0; q < Q; q++) lin_panel_convert(W + (size_t)(b + q) * 16 * kp, bf16, k0, kc, pan + q * 16);
                    /* the panel after this one, prefetched meanwhile */
                    int xb = -1, xk = 0, xe = nb1;
                    if (b + 2 < nb1) xb = b + 2, xk = k0;
                    else if (k0 + LIN_PANEL_KC < kp) xb = nb0, xk = k0 + LIN_PANEL_KC;
                    else if (nb1 < b1) xb = nb1, xk = 0, xe = nb1 + LIN_PANEL_NC_BLOCKS < b1 ? nb1 + LIN_PANEL_NC_BLOCKS : b1;
                    const char *next[2] = {(const char *)pan, (const char *)pan};
                    if (xb >= 0) {
                        next[0] = (const char *)(W + ((size_t)xb * kp + xk) * 16);
                        next[1] = xb + 1 < xe ? next[0] + (size_t)32 * kp : next[0];
                    }
                    float *cp = acc + (size_t)(b - nb0) / 2 * nr * 32;
                    for (int g = g0, r0 = rb0; g < ge; g++) {
                        int r1 = (int)((long)m * (g + 1) / ng);
                        lin_panel_rows(pan, kc, xs + (size_t)r0 * kp + (size_t)k0 * (r1 - r0), cp + (size_t)(r0 - rb0) * 32,
                                       k0 == 0, next, g - g0, ge - g0, r1 - r0, Q);
                        r0 = r1;
                    }
                }
            }
            for (int b = nb0; b < nb1; b++)
                lin_16_epilogue_avx512(j, b, rb0, nr, acc + (size_t)(b - nb0) / 2 * nr * 32 + (b - nb0) % 2 * 16, 32);
        }
    }
}

/* x row as fp32 for the 16-bit kernels: d[i * stride] = x[i] for i < k, 0 up to kp. vcvtph2ps is exact
 * on every fp16 (subnormals, inf, NaN payloads as pp8_h2f), bf16 << 16 is the definition; the branchy
 * scalar pp8_h2f cost ~20% of a K=4096 layer's time at 512 rows. */
void lin_16_stage_avx512(float *d, size_t stride, const uint16_t *x, int k, int kp, int bf16)
{
    float t[16] __attribute__((aligned(64)));
    for (int i = 0; i < kp; i += 16) {
        __mmask16 mk = lin_mask16(k - i > 0 ? k - i : 0);
        __m256i h = _mm256_maskz_loadu_epi16(mk, x + i);
        __m512 f = bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)) : _mm512_cvtph_ps(h);
        if (stride == 1) {
            _mm512_storeu_ps(d + i, f);
            continue;
        }
        _mm512_store_ps(t, f);
        for (int l = 0; l < 16; l++) d[(size_t)(i + l) * stride] = t[l];
    }
}
