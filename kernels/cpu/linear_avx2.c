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
