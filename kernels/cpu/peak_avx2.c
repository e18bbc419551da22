/* AVX2 peak probes (peak.h): vfmadd ymm in twelve chains, and avx2-int8's per-32-weights sequence
 * (linear_avx2.c: vpsignb of the weights by the activations, vpmaddubsw of |a| with them, vpmaddwd by
 * ones, vpaddd into the accumulator; one vpabsb per broadcast serves two of them) in four chains.
 * Operands in registers; an empty asm makes the broadcast activations look new every iteration, so the
 * compiler recomputes the sequence instead of hoisting it (it is loop-invariant otherwise). Runs only
 * after peak.c's cpu_peak_available. */
#include <immintrin.h>
#include <stdint.h>

#include "peak.h"

static volatile uint32_t g_peak_bits = 0x01020304u;

double peak_loop_avx2_fma(long iters)
{
    const __m256 a = _mm256_set1_ps(1e-3f + (float)(g_peak_bits & 1)), w = _mm256_set1_ps(0.999f);
    /* distinct starting values: gcc merges identical chains into one */
    __m256 s0 = _mm256_set1_ps(0), s1 = _mm256_set1_ps(1), s2 = _mm256_set1_ps(2), s3 = _mm256_set1_ps(3),
           s4 = _mm256_set1_ps(4), s5 = _mm256_set1_ps(5), s6 = _mm256_set1_ps(6), s7 = _mm256_set1_ps(7),
           s8 = _mm256_set1_ps(8), s9 = _mm256_set1_ps(9), s10 = _mm256_set1_ps(10), s11 = _mm256_set1_ps(11);
    for (long it = 0; it < iters; it++) {
        s0 = _mm256_fmadd_ps(a, w, s0);
        s1 = _mm256_fmadd_ps(a, w, s1);
        s2 = _mm256_fmadd_ps(a, w, s2);
        s3 = _mm256_fmadd_ps(a, w, s3);
        s4 = _mm256_fmadd_ps(a, w, s4);
        s5 = _mm256_fmadd_ps(a, w, s5);
        s6 = _mm256_fmadd_ps(a, w, s6);
        s7 = _mm256_fmadd_ps(a, w, s7);
        s8 = _mm256_fmadd_ps(a, w, s8);
        s9 = _mm256_fmadd_ps(a, w, s9);
        s10 = _mm256_fmadd_ps(a, w, s10);
        s11 = _mm256_fmadd_ps(a, w, s11);
    }
    __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
                             _mm256_add_ps(_mm256_add_ps(s4, s5), _mm256_add_ps(s6, s7)));
    t = _mm256_add_ps(t, _mm256_add_ps(_mm256_add_ps(s8, s9), _mm256_add_ps(s10, s11)));
    float l[8];
    _mm256_storeu_ps(l, t);
    return (double)l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}

double peak_loop_avx2_int8(long iters)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i w0 = _mm256_set1_epi32((int)g_peak_bits), w1 = _mm256_set1_epi32((int)(g_peak_bits ^ 0x7f7f7f7fu));
    __m256i a0 = _mm256_set1_epi32((int)(g_peak_bits ^ 0x80808080u)), a1 = _mm256_set1_epi32((int)(g_peak_bits + 1));
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (long it = 0; it < iters; it++) {
        __asm__("" : "+x"(a0), "+x"(a1));
        __m256i aa0 = _mm256_abs_epi8(a0), aa1 = _mm256_abs_epi8(a1);
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_maddubs_epi16(aa0, _mm256_sign_epi8(w0, a0)), ones));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_maddubs_epi16(aa0, _mm256_sign_epi8(w1, a0)), ones));
        s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(_mm256_maddubs_epi16(aa1, _mm256_sign_epi8(w0, a1)), ones));
        s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(_mm256_maddubs_epi16(aa1, _mm256_sign_epi8(w1, a1)), ones));
    }
    uint32_t l[8];
    _mm256_storeu_si256((__m256i *)l, _mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3)));
    uint64_t t = 0;
    for (int i = 0; i < 8; i++) t += l[i];
    return (double)t;
}
