/* Row primitives for the CPU backend's non-GEMM ops (attention, LayerNorm, elementwise), with an
 * AVX-512 version chosen at run time. Both versions use the same order of fp32 operations
 * (16 lane-wise partial sums, then lanes 0..15 in order), so a result never depends on the thread
 * count. The GEMMs live in cpu_linear.h, not here. */
#ifndef PP8_CPU_VEC_H
#define PP8_CPU_VEC_H

#include <stddef.h>
#include <stdint.h>

#include "../dtype.h"

/* One position chunk of attention for heads [0, nh): for each head h, its nb (1..VEC_ATTN_CHUNK) keys
 * and values of the chunk are k + h * hs + j * E and v + h * hs + j * E (j < nb). The chunk is scored,
 * folded into the head's online softmax (running max m[h], sum l[h]) and summed into acc + h * E:
 *   s[j] = scale * dot(q_h, k_j) (+ slope[h] * (float)(j0 + j) when slope), bm = max_j s[j];
 *   corr = 1, or vec_exp_ref(m[h] - bm) and m[h] = bm when bm > m[h];
 *   p[j] = vec_exp_ref(s[j] - m[h]); l[h] = l[h] * corr + sum_j p[j] (lane j, then the lane tree);
 *   acc = fmaf(p[0], v_0, acc * corr), then acc = fmaf(p[j], v_j, acc) for j = 1..nb-1 in order.
 * Fused multiply-adds (one rounding, and a third fewer vector instructions than multiply then add;
 * attention is not the LLM.int8() arithmetic that DESIGN.md keeps unfused) and vec_exp_ref for corr
 * too, not libm's expf, whose call inside the vector kernel would spill every vector register. */
enum { VEC_ATTN_CHUNK = 16 };
typedef struct VecAttnChunk {
    const float *q;          /* (nh, E) fp32 queries */
    const uint16_t *k, *v;   /* head 0's first key and value of the chunk */
    size_t hs;               /* values from one head's keys (values) to the next's */
    int nh, nb, E, j0;       /* heads, keys, head size, position of key 0 (for ALiBi) */
    float scale;             /* score_scale */
    const float *slope;      /* (nh) ALiBi slopes, or NULL */
    float *m, *l, *acc;      /* (nh), (nh), (nh, E): running max, sum and accumulator */
    size_t pf;               /* 0, or prefetch the K and V values this far (in values) past each one read */
    DType t;
} VecAttnChunk;

typedef struct VecOps {
    /* dst[i] = float(src[i]) */
    void (*load)(float *dst, const uint16_t *src, int n, DType t);
    /* dst[i] = round(src[i]) to t */
    void (*store)(uint16_t *dst, const float *src, int n, DType t);
    /* sum_i q[i] * float(k[i]): lane l = i % 16 accumulates fmaf(q[i], k[i], lane), then the lane tree */
    float (*dot)(const float *q, const uint16_t *k, int n, DType t);
    /* acc[i] = fmaf(p, float(v[i]), acc[i] * c) */
    void (*scale_axpy)(float *acc, float c, float p, const uint16_t *v, int n, DType t);
    /* the chunk above: scores key by key bitwise dot(), the values bitwise scale_axpy() (c = corr, then 1) */
    void (*attn_chunk)(const VecAttnChunk *c);
    /* sum_i x[i] and sum_i (x[i]-mean)^2 */
    float (*sum)(const float *x, int n);
    float (*sqdev)(const float *x, float mean, int n);
    /* x[i] = BLOOM's tanh GELU of x[i], in transformers' operation order (bloom_gelu_forward):
     * (x * 0.5) * (1 + tanh((0.79788456 * x) * (1 + (0.044715 * x) * x))), with vec_tanh_ref's tanh;
     * the same bits in both versions */
    void (*gelu)(float *x, int n);
} VecOps;

/* exp for x <= 0, the softmax numerators': Cephes expf as a polynomial (<= 2 ulp of the true value, 0
 * below -87), the same bits as the AVX-512 version's 16 lanes; m >= every score keeps the arguments <= 0 */
float vec_exp_ref(float x);
/* tanh(y) = sign(y) (1 - t) / (1 + t), t = vec_exp_ref(-2|y|): within 4e-7 of tanh (test_vec), +-1 for
 * +-inf, NaN kept. glibc's tanhf, which the GELU called before, is scalar only and cost BLOOM-560M's
 * first stage half its decode time at batch 32 (61 of 122 ms per step, pp8 bench --profile). */
float vec_tanh_ref(float y);

const VecOps *vec_ops_scalar(void);
const VecOps *vec_ops_avx512(void); /* only call when the CPU has avx512f + f16c */
const VecOps *vec_ops_avx2(void);   /* the scalar ops built for AVX2 + FMA: only call when the CPU has both */
const VecOps *vec_ops_best(void);
const char *vec_ops_name(const VecOps *v);

#endif
