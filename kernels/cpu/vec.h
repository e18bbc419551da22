/* Row primitives for the CPU backend's non-GEMM ops (attention, LayerNorm, elementwise), with an
 * AVX-512 version chosen at run time. Both versions use the same order of fp32 operations
 * (16 lane-wise partial sums, then lanes 0..15 in order), so a result never depends on the thread
 * count. The GEMMs live in cpu_linear.h, not here. */
#ifndef PP8_CPU_VEC_H
#define PP8_CPU_VEC_H

#include <stddef.h>
#include <stdint.h>

#include "../dtype.h"

typedef struct VecOps {
    /* dst[i] = float(src[i]) */
    void (*load)(float *dst, const uint16_t *src, int n, DType t);
    /* dst[i] = round(src[i]) to t */
    void (*store)(uint16_t *dst, const float *src, int n, DType t);
    /* sum_i q[i] * float(k[i]) */
    float (*dot)(const float *q, const uint16_t *k, int n, DType t);
    /* acc[i] = acc[i] * c + p * float(v[i]) */
    void (*scale_axpy)(float *acc, float c, float p, const uint16_t *v, int n, DType t);
    /* s[j] = dot(q, k + j * E, E) for j < n (keys E apart), each bitwise equal to dot()'s result.
     * pf: NULL, or n * E values the caller reads next (the next head's keys), prefetched meanwhile */
    void (*dots)(const float *q, const uint16_t *k, int n, int E, float *s, DType t, const uint16_t *pf);
    /* acc = acc * c + p[0] * v[0], then acc = acc + p[j] * v[j] for j = 1..n-1 in order (values E apart),
     * E wide: n scale_axpy() calls with c = 1 after the first, bitwise. pf as for dots */
    void (*axpys)(float *acc, float c, const float *p, const uint16_t *v, int n, int E, DType t, const uint16_t *pf);
    /* s[j] = exp(s[j] - m) for j < n, returns their sum (16 lane sums, then the lane tree). exp is
     * vec.c's polynomial (Cephes expf, <= 2 ulp of the true value, 0 below -87), the same bits in both
     * versions, for the softmax numerators; m >= every s[j] keeps the arguments <= 0 */
    float (*exp_sum)(float *s, int n, float m);
    /* sum_i x[i] and sum_i (x[i]-mean)^2 */
    float (*sum)(const float *x, int n);
    float (*sqdev)(const float *x, float mean, int n);
    /* x[i] = BLOOM's tanh GELU of x[i], in transformers' operation order (bloom_gelu_forward):
     * (x * 0.5) * (1 + tanh((0.79788456 * x) * (1 + (0.044715 * x) * x))), with vec_tanh_ref's tanh;
     * the same bits in both versions */
    void (*gelu)(float *x, int n);
} VecOps;

/* vec.c's exp for x <= 0 (see exp_sum), for tests */
float vec_exp_ref(float x);
/* tanh(y) = sign(y) (1 - t) / (1 + t), t = vec_exp_ref(-2|y|): within 4e-7 of tanh (test_vec), +-1 for
 * +-inf, NaN kept. glibc's tanhf, which the GELU called before, is scalar only and cost BLOOM-560M's
 * first stage half its decode time at batch 32 (61 of 122 ms per step, pp8 bench --profile). */
float vec_tanh_ref(float y);

const VecOps *vec_ops_scalar(void);
const VecOps *vec_ops_avx512(void); /* only call when the CPU has avx512f + f16c */
const VecOps *vec_ops_best(void);
const char *vec_ops_name(const VecOps *v);

#endif
