/* Scalar row primitives (any x86-64 or other CPU) and the run-time choice; see vec.h. The loops are
 * written with 16 partial sums so that they add in exactly the order the AVX-512 version does. */
#include "vec.h"

#include <math.h>
#include <string.h>

#include "../numerics.h"

static inline float ld1(const uint16_t *p, int i, DType t) { return t == DTYPE_BF16 ? pp8_bf2f(p[i]) : pp8_h2f(p[i]); }

static void s_load(float *dst, const uint16_t *src, int n, DType t)
{
    for (int i = 0; i < n; i++) dst[i] = ld1(src, i, t);
}

static void s_store(uint16_t *dst, const float *src, int n, DType t)
{
    for (int i = 0; i < n; i++) dst[i] = t == DTYPE_BF16 ? pp8_f2bf(src[i]) : pp8_f2h(src[i]);
}

/* pairwise tree over the 16 lanes (l + l+8, then + l+4, + l+2, + l+1): the order the AVX-512 version's
 * shuffles add in, a few vector instructions there instead of 15 dependent scalar adds */
static float lanes_total(const float acc[16])
{
    float a[16];
    for (int l = 0; l < 16; l++) a[l] = acc[l];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) a[l] = a[l] + a[l + w];
    return a[0];
}

static float s_dot(const float *q, const uint16_t *k, int n, DType t)
{
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += q[i + l] * ld1(k, i + l, t);
    for (int l = 0; i < n; i++, l++) acc[l] += q[i] * ld1(k, i, t);
    return lanes_total(acc);
}

static void s_scale_axpy(float *acc, float c, float p, const uint16_t *v, int n, DType t)
{
    for (int i = 0; i < n; i++) acc[i] = acc[i] * c + p * ld1(v, i, t);
}

static void s_dots(const float *q, const uint16_t *k, int n, int E, float *s, DType t, const uint16_t *pf)
{
    (void)pf;
    for (int j = 0; j < n; j++) s[j] = s_dot(q, k + (size_t)j * E, E, t);
}

/* n scale_axpy calls, c = 1 after the first: acc * 1 == acc exactly, so this gives the bits of the
 * vector version, which multiplies by c once and then only adds */
static void s_axpys(float *acc, float c, const float *p, const uint16_t *v, int n, int E, DType t, const uint16_t *pf)
{
    (void)pf;
    for (int j = 0; j < n; j++) s_scale_axpy(acc, j == 0 ? c : 1.0f, p[j], v + (size_t)j * E, E, t);
}

/* exp(x) for x <= 0, operation for operation what vec_avx512.c's exp16 does (fmaf where it fuses,
 * nearbyintf for its round-to-nearest-even): x = n ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial
 * for exp(r), times 2^n built in the exponent bits. Below -87 (2^n would leave the normal range) 0. */
float vec_exp_ref(float x)
{
    if (x != x) return x; /* NaN (the vector version's arithmetic carries it) */
    if (x < -87.0f) return 0.0f;
    float n = nearbyintf(x * 1.44269504088896341f);
    float r = fmaf(-n, 0.693359375f, x);
    r = fmaf(-n, -2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    uint32_t e = (uint32_t)((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &e, sizeof two_n);
    return p * two_n;
}

static float s_exp_sum(float *s, int n, float m)
{
    float acc[16] = {0};
    for (int j = 0; j < n; j++) {
        s[j] = vec_exp_ref(s[j] - m);
        acc[j % 16] += s[j];
    }
    return lanes_total(acc);
}

static float s_sum(const float *x, int n)
{
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += x[i];
    return lanes_total(acc);
}

static float s_sqdev(const float *x, float mean, int n)
{
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) {
            float d = x[i + l] - mean;
            acc[l] += d * d;
        }
    for (int l = 0; i < n; i++, l++) {
        float d = x[i] - mean;
        acc[l] += d * d;
    }
    return lanes_total(acc);
}

float vec_tanh_ref(float y)
{
    float t = vec_exp_ref(-2.0f * fabsf(y));
    return copysignf((1.0f - t) / (1.0f + t), y);
}

static void s_gelu(float *x, int n)
{
    for (int i = 0; i < n; i++) {
        float v = x[i];
        float inner = 0.79788456f * v * (1.0f + 0.044715f * v * v);
        x[i] = v * 0.5f * (1.0f + vec_tanh_ref(inner));
    }
}

static const VecOps SCALAR = {s_load, s_store, s_dot, s_scale_axpy, s_dots, s_axpys, s_exp_sum, s_sum, s_sqdev, s_gelu};

const VecOps *vec_ops_scalar(void) { return &SCALAR; }

const VecOps *vec_ops_best(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return vec_ops_avx512();
    return &SCALAR;
}

const char *vec_ops_name(const VecOps *v) { return v == &SCALAR ? "scalar" : "avx512"; }
