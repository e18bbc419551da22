/* AVX-512 row primitives (F16C conversions, 16 fp32 lanes), same operation order as vec.c's scalar
 * loops: lane l accumulates elements l, l+16, ... and the lanes are added as a pairwise tree. */
#include <immintrin.h>

#include "../numerics.h"
#include "vec.h"

static inline __m512 ld16(const uint16_t *p, DType t)
{
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (t == DTYPE_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

static inline __m512 ldmask(const uint16_t *p, int n, DType t)
{
    __m256i h = _mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1u), p);
    if (t == DTYPE_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* lanes l + l+8, then + l+4, + l+2, + l+1: the same tree as vec.c's scalar lanes_total */
static inline float lanes_total(__m512 acc)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_shuffle_ps(q, q, 0x4e)); /* lanes 2,3,0,1 */
    q = _mm_add_ps(q, _mm_shuffle_ps(q, q, 0xb1)); /* lanes 1,0,3,2 */
    return _mm_cvtss_f32(q);
}

static void v_load(float *dst, const uint16_t *src, int n, DType t)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, ld16(src + i, t));
    if (i < n) _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << (n - i)) - 1u), ldmask(src + i, n - i, t));
}

static void v_store(uint16_t *dst, const float *src, int n, DType t)
{
    int i = 0;
    if (t == DTYPE_F16)
        for (; i + 16 <= n; i += 16)
            _mm256_storeu_si256((__m256i *)(dst + i),
                                _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = t == DTYPE_BF16 ? pp8_f2bf(src[i]) : pp8_f2h(src[i]);
}

static float v_dot(const float *q, const uint16_t *k, int n, DType t)
{
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(q + i), ld16(k + i, t)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        acc = _mm512_mask_add_ps(acc, m, acc, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, q + i), ldmask(k + i, n - i, t)));
    }
    return lanes_total(acc);
}

static void v_scale_axpy(float *acc, float c, float p, const uint16_t *v, int n, DType t)
{
    __m512 vc = _mm512_set1_ps(c), vp = _mm512_set1_ps(p);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(acc + i, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(acc + i), vc),
                                                _mm512_mul_ps(vp, ld16(v + i, t))));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 a = _mm512_maskz_loadu_ps(m, acc + i);
        _mm512_mask_storeu_ps(acc + i, m, _mm512_add_ps(_mm512_mul_ps(a, vc), _mm512_mul_ps(vp, ldmask(v + i, n - i, t))));
    }
}

static float v_sum(const float *x, int n)
{
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + i));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        acc = _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(m, x + i));
    }
    return lanes_total(acc);
}

static float v_sqdev(const float *x, float mean, int n)
{
    __m512 acc = _mm512_setzero_ps(), mu = _mm512_set1_ps(mean);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), mu);
        acc = _mm512_add_ps(acc, _mm512_mul_ps(d, d));
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mu);
        acc = _mm512_mask_add_ps(acc, m, acc, _mm512_mul_ps(d, d));
    }
    return lanes_total(acc);
}

static const VecOps AVX512 = {v_load, v_store, v_dot, v_scale_axpy, v_sum, v_sqdev};

const VecOps *vec_ops_avx512(void) { return &AVX512; }
