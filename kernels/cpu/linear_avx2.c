/* AVX2 fallback kernels of the CPU linear layers, for x86 machines without AVX-512: int8 with
 * vpmaddubsw on |CA| and sign-moved CB (exact: |products| <= 2*127*127 < 2^15, so no saturation while
 * CB is in [-127, 127] as LLM.int8() quantization gives), and bf16/fp16 converted to fp32 with FMA.
 * Not tuned for bandwidth like the AVX-512 ones; epilogues are linear.c's scalar ones. */
#include <immintrin.h>

#include "cpu_linear.h"

void lin_i8_avx2(const LinJob *j, int b0, int b1, void *ts)
{
    (void)ts;
    int kp = j->kp, kg = kp / 4;
    const __m256i ones = _mm256_set1_epi16(1);
    int32_t acc[16] __attribute__((aligned(32)));
    for (int b = b0; b < b1; b++) {
        const int8_t *wb = (const int8_t *)j->w->w + (size_t)b * 16 * kp;
        for (int r = 0; r < j->m; r++) {
            const int32_t *a32 = (const int32_t *)(j->ca + (size_t)r * j->ca_ld);
            __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
            for (int g = 0; g < kg; g++) {
                __m256i a = _mm256_set1_epi32(a32[g]), aa = _mm256_abs_epi8(a);
                __m256i w0 = _mm256_load_si256((const __m256i *)(wb + (size_t)g * 64));
                __m256i w1 = _mm256_load_si256((const __m256i *)(wb + (size_t)g * 64 + 32));
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(w0, a)), ones));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(w1, a)), ones));
            }
            _mm256_store_si256((__m256i *)acc, lo);
            _mm256_store_si256((__m256i *)(acc + 8), hi);
            lin_i8_epilogue_scalar(j, b, r, 1, acc, 16);
        }
    }
}

void lin_16_avx2(const LinJob *j, int b0, int b1, void *ts)
{
    (void)ts;
    int kp = j->kp;
    int bf = j->w->wdt == DTYPE_BF16;
    float acc[16] __attribute__((aligned(32)));
    const __m256i himask = _mm256_set1_epi32((int)0xffff0000u);
    for (int b = b0; b < b1; b++) {
        const uint16_t *wb = (const uint16_t *)j->w->w + (size_t)b * 16 * kp;
        for (int r = 0; r < j->m; r++) {
            __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
            if (bf) {
                const uint16_t *x = (const uint16_t *)j->xs + (size_t)r * j->xs_ld;
                for (int p = 0; p < kp / 2; p++) {
                    /* a dword = (k even, k odd) of one output: low half << 16 and high half are fp32 */
                    __m256 xe = _mm256_castsi256_ps(_mm256_set1_epi32((int)((uint32_t)x[2 * p] << 16)));
                    __m256 xo = _mm256_castsi256_ps(_mm256_set1_epi32((int)((uint32_t)x[2 * p + 1] << 16)));
                    __m256i w0 = _mm256_load_si256((const __m256i *)(wb + (size_t)p * 32));
                    __m256i w1 = _mm256_load_si256((const __m256i *)(wb + (size_t)p * 32 + 16));
                    lo = _mm256_fmadd_ps(xe, _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16)), lo);
                    lo = _mm256_fmadd_ps(xo, _mm256_castsi256_ps(_mm256_and_si256(w0, himask)), lo);
                    hi = _mm256_fmadd_ps(xe, _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16)), hi);
                    hi = _mm256_fmadd_ps(xo, _mm256_castsi256_ps(_mm256_and_si256(w1, himask)), hi);
                }
            } else {
                const float *x = (const float *)j->xs + (size_t)r * j->xs_ld;
                for (int i = 0; i < kp; i++) {
                    __m256 xv = _mm256_set1_ps(x[i]);
                    lo = _mm256_fmadd_ps(xv, _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(wb + (size_t)i * 16))), lo);
                    hi = _mm256_fmadd_ps(xv, _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(wb + (size_t)i * 16 + 8))), hi);
                }
            }
            _mm256_store_ps(acc, lo);
            _mm256_store_ps(acc + 8, hi);
            lin_16_epilogue_scalar(j, b, r, 1, acc, 16);
        }
    }
}

/* ---- 16-bit panels at many rows (linear_avx512.c's lin_16_panel_avx512 in ymm): per K chunk one block's
 * weights converted once to fp32 [KC][16], then up to 6 rows at a time with 2 weight loads and 1
 * broadcast per 12 FMAs (12 accumulators + 3 of the 16 ymm), where lin_16_avx2 converts every weight
 * for every row. One accumulator per output in ascending k and exact products: ref_linear16's bits. */

static inline __attribute__((always_inline)) void lin_panel2_rq(const float *pan, int kc, const float *x, float *c,
                                                                int first, int R)
{
    __m256 s[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
        for (int h = 0; h < 2; h++) s[r][h] = first ? _mm256_setzero_ps() : _mm256_load_ps(c + r * 16 + h * 8);
    for (int k = 0; k < kc; k++) {
        __m256 w0 = _mm256_load_ps(pan + (size_t)k * 16), w1 = _mm256_load_ps(pan + (size_t)k * 16 + 8);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            __m256 xv = _mm256_broadcast_ss(x + (size_t)k * R + r);
            s[r][0] = _mm256_fmadd_ps(xv, w0, s[r][0]);
            s[r][1] = _mm256_fmadd_ps(xv, w1, s[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
        for (int h = 0; h < 2; h++) _mm256_store_ps(c + r * 16 + h * 8, s[r][h]);
}

void lin_16_panel_avx2(const LinJob *j, int b0, int b1, void *ts)
{
    int kp = j->kp, m = j->m, bf16 = j->w->wdt == DTYPE_BF16;
    float *pan = ts, *acc = (float *)((char *)ts + LIN_TSCRATCH); /* [KC][16], then [M][16] */
    const uint16_t *W = j->w->w;
    const float *xs = j->xs;
    const __m256i himask = _mm256_set1_epi32((int)0xffff0000u);
    int ng = lin_panel_groups(m, 6), gb = lin_panel_block_groups(kp, 6);
    for (int g0 = 0; g0 < ng; g0 += gb) { /* row blocks whose x stays in L2 (lin_panel_block_groups) */
    int ge = g0 + gb < ng ? g0 + gb : ng, rb0 = (int)((long)m * g0 / ng), rb1 = (int)((long)m * ge / ng);
    for (int b = b0; b < b1; b++) {
        const uint16_t *wb = W + (size_t)b * 16 * kp;
        for (int k0 = 0; k0 < kp; k0 += LIN_PANEL_KC) {
            int kc = kp - k0 < LIN_PANEL_KC ? kp - k0 : LIN_PANEL_KC;
            for (int k = 0; k < kc; k += 2) {
                const uint16_t *q = wb + (size_t)(k0 + k) * 16;
                _mm_prefetch((const char *)q + 2048, _MM_HINT_T0);
                float *d = pan + (size_t)k * 16;
                if (bf16) { /* [KP/2][16][2]: dword l = (w[l][k], w[l][k+1]) */
                    __m256i v0 = _mm256_load_si256((const __m256i *)q), v1 = _mm256_load_si256((const __m256i *)(q + 16));
                    _mm256_store_ps(d, _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)));
                    _mm256_store_ps(d + 8, _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)));
                    _mm256_store_ps(d + 16, _mm256_castsi256_ps(_mm256_and_si256(v0, himask)));
                    _mm256_store_ps(d + 24, _mm256_castsi256_ps(_mm256_and_si256(v1, himask)));
                } else { /* [KP][16] */
                    for (int h = 0; h < 4; h++) _mm256_store_ps(d + 8 * h, _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(q + 8 * h))));
                }
            }
            for (int g = g0, r0 = rb0; g < ge; g++) {
                int r1 = (int)((long)m * (g + 1) / ng);
                const float *x = xs + (size_t)r0 * kp + (size_t)k0 * (r1 - r0);
                float *c = acc + (size_t)r0 * 16;
                switch (r1 - r0) {
                case 1: lin_panel2_rq(pan, kc, x, c, k0 == 0, 1); break;
                case 2: lin_panel2_rq(pan, kc, x, c, k0 == 0, 2); break;
                case 3: lin_panel2_rq(pan, kc, x, c, k0 == 0, 3); break;
                case 4: lin_panel2_rq(pan, kc, x, c, k0 == 0, 4); break;
                case 5: lin_panel2_rq(pan, kc, x, c, k0 == 0, 5); break;
                default: lin_panel2_rq(pan, kc, x, c, k0 == 0, 6); break;
                }
                r0 = r1;
            }
        }
        lin_16_epilogue_scalar(j, b, rb0, rb1 - rb0, acc + (size_t)rb0 * 16, 16);
    }
    }
}

/* lin_16_stage_avx512 in ymm: d[i * stride] = x[i] as fp32 for i < k, 0 up to kp (kp a multiple of 8) */
void lin_16_stage_avx2(float *d, size_t stride, const uint16_t *x, int k, int kp, int bf16)
{
    float t[8] __attribute__((aligned(32)));
    for (int i = 0; i < kp; i += 8) {
        uint16_t h8[8] = {0};
        for (int l = 0; l < 8 && i + l < k; l++) h8[l] = x[i + l];
        __m128i h = _mm_loadu_si128((const __m128i *)h8);
        __m256 f = bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
        _mm256_store_ps(t, f);
        for (int l = 0; l < 8; l++) d[(size_t)(i + l) * stride] = t[l];
    }
}
