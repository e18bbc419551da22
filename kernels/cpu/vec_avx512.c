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

/* out[kk] = lanes_total(a[kk]) for 16 vectors at once: the same pairwise tree (l + l+8, + l+4, + l+2,
 * + l+1), done across vectors with shuffles, then a 4x4 lane transpose into key order */
static inline void lanes_total16(const __m512 a[16], float *out)
{
    __m512 t[8], u[4], v[2];
    for (int i = 0; i < 8; i++) /* key 2i in lanes 0..7, key 2i+1 in 8..15: l + l+8 */
        t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int i = 0; i < 4; i++) /* 128-bit block m: key 4i+m, + l+4 */
        u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int i = 0; i < 2; i++) /* block m: keys 8i+m (lanes 0,1) and 8i+4+m (lanes 2,3), + l+2 */
        v[i] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* + l+1: lane 4m + e holds key m + 4e */
    __m512 w = _mm512_add_ps(_mm512_shuffle_ps(v[0], v[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(v[0], v[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(idx, w));
}

/* Prefetch of the K and V cache rows the caller reads next (pf: the next (row, head)'s, at the same
 * offsets), spread over this call's work: one (row, head) reads only (pos + 1) * E values of each, a
 * short stream the hardware prefetcher (which restarts at every 4 KiB) picks up late, and with a
 * max_seq of gap between heads the streams never join. Into L2 (T1): T1 11.9 GB/s, T0 11.1, T2 10.5,
 * none 8.9 for the scores alone in a stand-alone loop over the OPT-1.3B cache shape (batch 32, 49
 * positions). In pp8 bench --profile (2 ranks, batch 8) attention went from 10.1 to 8.6 ms per step. */
/* always_inline: gcc 12 may delete calls to a non-inlined function that only prefetches (linear_amx.c) */
static inline __attribute__((always_inline)) void pf_range(const uint16_t *p, size_t bytes)
{
    for (size_t b = 0; b < bytes; b += 64) _mm_prefetch((const char *)p + b, _MM_HINT_T1);
}

/* 16 keys per pass with q in registers and one transposed reduction instead of 16 horizontal ones
 * (E = NV * 16); NV is a constant in each instantiation so q and the sums stay in registers */
static inline __attribute__((always_inline)) int dots16(const float *q, const uint16_t *k, int n, int E, float *s,
                                                        DType t, const uint16_t *pf, const int NV)
{
    __m512 qv[8];
#pragma GCC unroll 8
    for (int i = 0; i < NV; i++) qv[i] = _mm512_loadu_ps(q + 16 * i);
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 a[16];
        if (pf) pf_range(pf + (size_t)j * E, (size_t)16 * E * 2);
#pragma GCC unroll 16
        for (int kk = 0; kk < 16; kk++) {
            const uint16_t *kp = k + (size_t)(j + kk) * E;
            __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 8
            for (int i = 0; i < NV; i++) acc = _mm512_add_ps(acc, _mm512_mul_ps(qv[i], ld16(kp + 16 * i, t)));
            a[kk] = acc;
        }
        lanes_total16(a, s + j);
    }
    return j;
}

static void v_dots(const float *q, const uint16_t *k, int n, int E, float *s, DType t, const uint16_t *pf)
{
    int j = 0;
    switch (E) {
    case 16: j = dots16(q, k, n, E, s, t, pf, 1); break;
    case 32: j = dots16(q, k, n, E, s, t, pf, 2); break;
    case 64: j = dots16(q, k, n, E, s, t, pf, 4); break;
    case 80: j = dots16(q, k, n, E, s, t, pf, 5); break;
    case 128: j = dots16(q, k, n, E, s, t, pf, 8); break;
    default: break;
    }
    if (pf && j < n) pf_range(pf + (size_t)j * E, (size_t)(n - j) * E * 2);
    for (; j < n; j++) s[j] = v_dot(q, k + (size_t)j * E, E, t);
}

/* the accumulator stays in registers over all n values (E = NV * 16) */
static inline __attribute__((always_inline)) void axpys_nv(float *acc, float c, const float *p, const uint16_t *v,
                                                           int n, int E, DType t, const uint16_t *pf, const int NV)
{
    __m512 a[8];
    __m512 vc = _mm512_set1_ps(c);
    /* acc * c, then the same add of each p[j] * v[j] (scale_axpy's acc * c + p * v, in that order) */
#pragma GCC unroll 8
    for (int i = 0; i < NV; i++) a[i] = _mm512_mul_ps(_mm512_loadu_ps(acc + 16 * i), vc);
    for (int j = 0; j < n; j++) {
        __m512 vp = _mm512_set1_ps(p[j]);
        const uint16_t *vj = v + (size_t)j * E;
        if (pf) pf_range(pf + (size_t)j * E, (size_t)E * 2);
#pragma GCC unroll 8
        for (int i = 0; i < NV; i++) a[i] = _mm512_add_ps(a[i], _mm512_mul_ps(vp, ld16(vj + 16 * i, t)));
    }
#pragma GCC unroll 8
    for (int i = 0; i < NV; i++) _mm512_storeu_ps(acc + 16 * i, a[i]);
}

static void v_axpys(float *acc, float c, const float *p, const uint16_t *v, int n, int E, DType t, const uint16_t *pf)
{
    if (n <= 0) return; /* as scale_axpy n times: nothing */
    switch (E) {
    case 16: axpys_nv(acc, c, p, v, n, E, t, pf, 1); return;
    case 32: axpys_nv(acc, c, p, v, n, E, t, pf, 2); return;
    case 64: axpys_nv(acc, c, p, v, n, E, t, pf, 4); return;
    case 80: axpys_nv(acc, c, p, v, n, E, t, pf, 5); return;
    case 128: axpys_nv(acc, c, p, v, n, E, t, pf, 8); return;
    default: break;
    }
    if (pf) pf_range(pf, (size_t)n * E * 2);
    for (int j = 0; j < n; j++) v_scale_axpy(acc, j == 0 ? c : 1.0f, p[j], v + (size_t)j * E, E, t);
}

/* vec.c's vec_exp_ref on 16 lanes, the same operations (x < -87 -> 0; NaN stays NaN) */
static inline __m512 exp16(__m512 x)
{
    __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps((__mmask16)~under, p, _mm512_castsi512_ps(e));
}

static float v_exp_sum(float *s, int n, float m)
{
    __m512 acc = _mm512_setzero_ps(), vm = _mm512_set1_ps(m);
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), vm));
        _mm512_storeu_ps(s + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (j < n) {
        __mmask16 k = (__mmask16)((1u << (n - j)) - 1u);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), vm));
        _mm512_mask_storeu_ps(s + j, k, e);
        acc = _mm512_mask_add_ps(acc, k, acc, e);
    }
    return lanes_total(acc);
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

/* vec.c's vec_tanh_ref on 16 lanes: |y|, exp16 of -2|y|, (1 - t) / (1 + t), y's sign */
static inline __m512 tanh16(__m512 y)
{
    const __m512 sign = _mm512_set1_ps(-0.0f), one = _mm512_set1_ps(1.0f);
    __m512 t = exp16(_mm512_mul_ps(_mm512_set1_ps(-2.0f), _mm512_andnot_ps(sign, y)));
    __m512 r = _mm512_div_ps(_mm512_sub_ps(one, t), _mm512_add_ps(one, t));
    return _mm512_or_ps(r, _mm512_and_ps(sign, y));
}

static inline __m512 gelu16(__m512 v)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 inner = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.79788456f), v),
                                 _mm512_add_ps(one, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), v)));
    return _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.5f)), _mm512_add_ps(one, tanh16(inner)));
}

static void v_gelu(float *x, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, gelu16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static const VecOps AVX512 = {v_load, v_store, v_dot, v_scale_axpy, v_dots, v_axpys, v_exp_sum, v_sum, v_sqdev, v_gelu};

const VecOps *vec_ops_avx512(void) { return &AVX512; }
