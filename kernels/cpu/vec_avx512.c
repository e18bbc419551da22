/* AVX-512 row primitives (F16C conversions, 16 fp32 lanes), same operation order as vec.c's scalar
 * loops: lane l accumulates elements l, l+16, ... and the lanes are added as a pairwise tree. */
#include <immintrin.h>

#include "../numerics.h"
#include "bf16_avx512.h"
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

/* pp8_f2bf / pp8_f2h on 16 lanes; vcvtps2ph keeps a NaN's payload where pp8_f2h gives the sign and 0x7e00 */
static inline __m256i st16(__m512 f, DType t)
{
    if (t == DTYPE_BF16) return pp8_ps_to_bf16x16(f);
    __m256i h = _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
    if (!nan) return h;
    __m256i sign = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(f), 16));
    __m256i canon = _mm256_or_si256(_mm256_and_si256(sign, _mm256_set1_epi16((short)0x8000)), _mm256_set1_epi16(0x7e00));
    return _mm256_mask_mov_epi16(h, nan, canon);
}

/* both dtypes 16 lanes at a time, the tail masked (bf16 was one value at a time: 7% of BLOOM-560M's bf16
 * prefill samples on a Zen 5 VM, from the attention outputs, norms and GELU) */
static void v_store(uint16_t *dst, const float *src, int n, DType t)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *)(dst + i), st16(_mm512_loadu_ps(src + i), t));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm256_mask_storeu_epi16(dst + i, m, st16(_mm512_maskz_loadu_ps(m, src + i), t));
    }
}

static float v_dot(const float *q, const uint16_t *k, int n, DType t)
{
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), ld16(k + i, t), acc);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        acc = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), ldmask(k + i, n - i, t), acc, m);
    }
    return lanes_total(acc);
}

static void v_scale_axpy(float *acc, float c, float p, const uint16_t *v, int n, DType t)
{
    __m512 vc = _mm512_set1_ps(c), vp = _mm512_set1_ps(p);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(vp, ld16(v + i, t), _mm512_mul_ps(_mm512_loadu_ps(acc + i), vc)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 a = _mm512_maskz_loadu_ps(m, acc + i);
        _mm512_mask_storeu_ps(acc + i, m, _mm512_fmadd_ps(vp, ldmask(v + i, n - i, t), _mm512_mul_ps(a, vc)));
    }
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

/* K and V ahead of the reads, one or two lines per key (VecAttnChunk.pf; the hardware prefetcher alone
 * streams the cache at 11.2-11.5 GB/s where this reaches 13.1-13.6, cpu_backend.c). always_inline: gcc
 * 12 may delete calls to a non-inlined function that only prefetches (linear_amx.c) */
static inline __attribute__((always_inline)) void pf_range(const uint16_t *p, size_t bytes)
{
    for (size_t b = 0; b < bytes; b += 64) _mm_prefetch((const char *)p + b, _MM_HINT_T1);
}

/* one key's products summed per lane (E = NV * 16): lane l holds elements l, l+16, ... as dot() adds them */
static inline __attribute__((always_inline)) __m512 key_acc(const __m512 *qv, const uint16_t *kp, DType t, const int NV)
{
    __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < NV; i++) acc = _mm512_fmadd_ps(qv[i], ld16(kp + 16 * i, t), acc);
    return acc;
}

/* The softmax of one head's chunk, from its 16 raw scores in one vector (lane j = key j, lanes >= nb
 * ignored): vec.h's order, with the scores and their exp in registers. p[j] = the numerators; returns corr. */
static inline __attribute__((always_inline)) float chunk_softmax(const VecAttnChunk *c, int h, __m512 s, float *p)
{
    const __mmask16 km = (__mmask16)((1u << c->nb) - 1u);
    s = _mm512_mul_ps(_mm512_set1_ps(c->scale), s);
    if (c->slope) {
        __m512 pos = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_set1_epi32(c->j0),
                                                         _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)));
        s = _mm512_add_ps(s, _mm512_mul_ps(_mm512_set1_ps(c->slope[h]), pos));
    }
    const float bm = _mm512_mask_reduce_max_ps(km, s);
    float corr = 1.0f;
    if (bm > c->m[h]) {
        corr = _mm_cvtss_f32(_mm512_castps512_ps128(exp16(_mm512_set1_ps(c->m[h] - bm))));
        c->m[h] = bm;
    }
    __m512 e = _mm512_maskz_mov_ps(km, exp16(_mm512_sub_ps(s, _mm512_set1_ps(c->m[h]))));
    c->l[h] = c->l[h] * corr + lanes_total(e);
    _mm512_storeu_ps(p, e);
    return corr;
}

/* The values of NH heads' chunks from head h on (E = NV * 16; NH = 2 only for NV <= 4): per head
 * acc = fmaf(p[0], v_0, acc * corr), then fmaf(p[j], v_j, acc) in order, the accumulators in registers.
 * Two heads at once keep each head's operations and their order, so the bits, and interleave their
 * fmadd chains: alone, a head's NV chains of nb dependent fmadds (4 cycles each) left the FMA ports idle.
 * From L3 (pp8's attention on 16 rows of OPT-1.3B's shape at position 160, cache resident) one head at a
 * time ran at ~25 GB/s, two at 27.4, so from memory the compute and the stream added up to 13.5 GB/s of
 * a plain read's 17.5 (14.5-15.3 with two). */
static inline __attribute__((always_inline)) void chunk_values_nh(const VecAttnChunk *c, int h, const float *corr,
                                                                  const float (*p)[16], const int NH, const int NV)
{
    const int nb = c->nb, E = c->E;
    const uint16_t *v = c->v + (size_t)h * c->hs;
    float *acc = c->acc + (size_t)h * E;
    __m512 a[2][8];
#pragma GCC unroll 2
    for (int x = 0; x < NH; x++) {
        const __m512 vc = _mm512_set1_ps(corr[x]);
#pragma GCC unroll 8
        for (int i = 0; i < NV; i++) a[x][i] = _mm512_mul_ps(_mm512_loadu_ps(acc + (size_t)x * E + 16 * i), vc);
    }
    for (int j = 0; j < nb; j++) {
        __m512 vp[2];
#pragma GCC unroll 2
        for (int x = 0; x < NH; x++) {
            vp[x] = _mm512_set1_ps(p[x][j]);
            if (c->pf) pf_range(v + x * c->hs + c->pf + (size_t)j * E, (size_t)E * 2);
        }
#pragma GCC unroll 8
        for (int i = 0; i < NV; i++)
#pragma GCC unroll 2
            for (int x = 0; x < NH; x++)
                a[x][i] = _mm512_fmadd_ps(vp[x], ld16(v + x * c->hs + (size_t)j * E + 16 * i, c->t), a[x][i]);
    }
#pragma GCC unroll 2
    for (int x = 0; x < NH; x++)
#pragma GCC unroll 8
        for (int i = 0; i < NV; i++) _mm512_storeu_ps(acc + (size_t)x * E + 16 * i, a[x][i]);
}

/* any E: scale_axpy key by key (corr first, then 1) */
static inline __attribute__((always_inline)) void chunk_values_any(const VecAttnChunk *c, int h, float corr, const float *p)
{
    const int E = c->E;
    const uint16_t *v = c->v + (size_t)h * c->hs;
    float *acc = c->acc + (size_t)h * E;
    for (int j = 0; j < c->nb; j++) {
        if (c->pf) pf_range(v + c->pf + (size_t)j * E, (size_t)E * 2);
        v_scale_axpy(acc, j == 0 ? corr : 1.0f, p[j], v + (size_t)j * E, E, c->t);
    }
}

/* One head's 16 raw scores with E = NV * 16: q in registers, and one transposed reduction for the 16 keys
 * instead of 16 horizontal ones. The pairwise tree of lanes_total (l + l+8, + l+4, + l+2, + l+1) runs
 * across keys with shuffles, its first level as soon as a pair of keys is summed, so only 8 partial
 * vectors stay live (with all 16 keys' sums live, gcc 12 spilled the key loads to the stack: 42 -> 36
 * us for one OPT-1.3B row at position 136 from L2), then a 4x4 lane transpose into key order. Keys past nb are zero vectors
 * whose lanes the tail ignores. */
static inline __attribute__((always_inline)) __m512 chunk_scores(const VecAttnChunk *c, int h, const int NV)
{
    const int nb = c->nb, E = c->E;
    const uint16_t *k = c->k + (size_t)h * c->hs;
    __m512 qv[8], tt[8], u[4], w[2];
#pragma GCC unroll 8
    for (int i = 0; i < NV; i++) qv[i] = _mm512_loadu_ps(c->q + (size_t)h * E + 16 * i);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) { /* key 2i in lanes 0..7, key 2i+1 in 8..15: l + l+8 */
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        if (2 * i < nb) {
            if (c->pf) pf_range(k + c->pf + (size_t)(2 * i) * E, (size_t)E * 2 * (2 * i + 1 < nb ? 2 : 1));
            a0 = key_acc(qv, k + (size_t)(2 * i) * E, c->t, NV);
        }
        if (2 * i + 1 < nb) a1 = key_acc(qv, k + (size_t)(2 * i + 1) * E, c->t, NV);
        tt[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* 128-bit block m: key 4i+m, + l+4 */
        u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(tt[2 * i], tt[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(tt[2 * i], tt[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* block m: keys 8i+m (lanes 0,1) and 8i+4+m (lanes 2,3), + l+2 */
        w[i] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* + l+1: lane 4m + e holds key m + 4e */
    __m512 s = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_ps(idx, s);
}

/* heads h .. h + NH - 1 (NH = 2 only for E = NV * 16 <= 64) */
static inline __attribute__((always_inline)) void chunk_nv(const VecAttnChunk *c, int h, const int NH, const int NV)
{
    float p[2][16], corr[2];
#pragma GCC unroll 2
    for (int x = 0; x < NH; x++) corr[x] = chunk_softmax(c, h + x, chunk_scores(c, h + x, NV), p[x]);
    chunk_values_nh(c, h, corr, (const float (*)[16])p, NH, NV);
}

/* any other E: dot() key by key */
static void chunk_any(const VecAttnChunk *c, int h)
{
    const uint16_t *k = c->k + (size_t)h * c->hs;
    float s[16] = {0};
    for (int j = 0; j < c->nb; j++) {
        if (c->pf) pf_range(k + c->pf + (size_t)j * c->E, (size_t)c->E * 2);
        s[j] = v_dot(c->q + (size_t)h * c->E, k + (size_t)j * c->E, c->E, c->t);
    }
    float p[16];
    chunk_values_any(c, h, chunk_softmax(c, h, _mm512_loadu_ps(s), p), p);
}

static void v_attn_chunk(const VecAttnChunk *c)
{
    int h = 0;
    switch (c->E) { /* head pairs where both heads' accumulators fit the registers */
    case 16: for (; h + 1 < c->nh; h += 2) chunk_nv(c, h, 2, 1); break;
    case 32: for (; h + 1 < c->nh; h += 2) chunk_nv(c, h, 2, 2); break;
    case 64: for (; h + 1 < c->nh; h += 2) chunk_nv(c, h, 2, 4); break;
    default: break;
    }
    for (; h < c->nh; h++) switch (c->E) {
        case 16: chunk_nv(c, h, 1, 1); break;
        case 32: chunk_nv(c, h, 1, 2); break;
        case 64: chunk_nv(c, h, 1, 4); break;
        case 80: chunk_nv(c, h, 1, 5); break;
        case 128: chunk_nv(c, h, 1, 8); break;
        default: chunk_any(c, h); break;
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

static const VecOps AVX512 = {v_load, v_store, v_dot, v_scale_axpy, v_attn_chunk, v_sum, v_sqdev, v_gelu};

const VecOps *vec_ops_avx512(void) { return &AVX512; }
