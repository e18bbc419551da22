/* Scalar row primitives (any x86-64 or other CPU) and the run-time choice; see vec.h. The loops are
 * written with 16 partial sums so that they add in exactly the order the AVX-512 version does. */
#include "vec.h"

#include <math.h>
#include <string.h>

#include "../numerics.h"

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

float vec_tanh_ref(float y)
{
    float t = vec_exp_ref(-2.0f * fabsf(y));
    return copysignf((1.0f - t) / (1.0f + t), y);
}

#define VEC_TABLE SCALAR
#include "vec_scalar.inc"

const VecOps *vec_ops_scalar(void) { return &SCALAR; }

const VecOps *vec_ops_best(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return vec_ops_avx512();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return vec_ops_avx2();
    return &SCALAR;
}

const char *vec_ops_name(const VecOps *v) { return v == &SCALAR ? "scalar" : v == vec_ops_avx2() ? "avx2" : "avx512"; }
