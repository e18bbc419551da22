/* Numeric conventions shared bit for bit by the CPU and CUDA backends: 16-bit float conversions and
 * LLM.int8() (Dettmers et al. 2022) exactly as bitsandbytes >= 0.45 defines it, but in plain IEEE fp32
 * (correctly rounded division, no fused multiply-add; see DESIGN.md). Small static inline functions on
 * plain types only; no loops over tensors, no allocation. Build C with -ffp-contract=off; in CUDA the
 * _rn intrinsics below keep nvcc from contracting. */
#ifndef PP8_NUMERICS_H
#define PP8_NUMERICS_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define PP8_HD __host__ __device__
#else
#define PP8_HD
#include <math.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* LLM.int8() default outlier threshold (bitsandbytes llm_int8_threshold). */
#define PP8_INT8_THRESHOLD_DEFAULT 6.0f
/* 1/127^2 and 1/127 as bitsandbytes spells them (kdequant_mm_int32_fp16, int8_vectorwise_dequant). */
#define PP8_INV_127SQ (1.0f / 16129.0f)
#define PP8_INV_127 7.874015718698502e-3f

/* ---- IEEE arithmetic that no compiler may fuse ---- */
static inline PP8_HD float pp8_mul(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
static inline PP8_HD float pp8_add(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
static inline PP8_HD float pp8_div(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

static inline PP8_HD uint32_t pp8_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline PP8_HD float pp8_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- fp16 / bf16 <-> fp32, round to nearest even (as __float2half / torch .half()) ---- */
static inline PP8_HD float pp8_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) { /* zero or subnormal: m * 2^-24 is exact in fp32 */
        float f = pp8_mul((float)m, 5.9604644775390625e-8f);
        return sign ? -f : f;
    }
    if (e == 31) return pp8_bits_f32(sign | 0x7f800000u | (m << 13));
    return pp8_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

/* F. Giesen's float_to_half_fast3_rtne: exact round-half-even incl. subnormals, overflow to inf. */
static inline PP8_HD uint16_t pp8_f2h(float f)
{
    uint32_t u = pp8_f32_bits(f), sign = u & 0x80000000u, o;
    u ^= sign;
    if (u >= 0x47800000u) { /* >= 65536 (or inf / nan) */
        o = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (u < 0x38800000u) { /* < 2^-14: the FPU rounds the mantissa for us */
        const uint32_t magic = 126u << 23; /* 0.5f */
        o = pp8_f32_bits(pp8_add(pp8_bits_f32(u), pp8_bits_f32(magic))) - magic;
    } else {
        uint32_t odd = (u >> 13) & 1u;
        u += ((uint32_t)(15 - 127) << 23) + 0xfffu;
        u += odd;
        o = u >> 13;
    }
    return (uint16_t)(o | (sign >> 16));
}

static inline PP8_HD float pp8_bf2f(uint16_t b) { return pp8_bits_f32((uint32_t)b << 16); }

static inline PP8_HD uint16_t pp8_f2bf(float f)
{
    uint32_t u = pp8_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- LLM.int8() ---- */

/* Round half to even to int (values are within int8 range by construction). */
static inline PP8_HD int32_t pp8_rint(float v)
{
#ifdef __CUDA_ARCH__
    return __float2int_rn(v);
#else
    return (int32_t)rintf(v); /* default rounding mode is to-nearest-even; never changed by pp8 */
#endif
}

/* s = 127 / absmax, correctly rounded; absmax == 0 gives 0 so the row quantizes to zeros
 * (bitsandbytes divides by zero there; DESIGN.md). */
static inline PP8_HD float pp8_i8_scale(float absmax) { return absmax > 0.0f ? pp8_div(127.0f, absmax) : 0.0f; }

/* CB[o,i] or CA[r,j] = round_half_even(v * s) (bitsandbytes kInt8VectorQuant). */
static inline PP8_HD int8_t pp8_i8_quant(float v, float s) { return (int8_t)pp8_rint(pp8_mul(v, s)); }

/* Is |x| an outlier for threshold t? t == 0 turns decomposition off. The rule is >= (bitsandbytes). */
static inline PP8_HD int pp8_i8_is_outlier(float absx, float t) { return t > 0.0f && absx >= t; }

/* Step 2: Y1 = fp16((float(acc) * SCA * SCB) * (1/16129) + bias), left to right, one rounding each.
 * bias is the fp32 value of the fp16 bias, or 0.0f when the layer has none (bitsandbytes adds 0). */
static inline PP8_HD uint16_t pp8_i8_dequant(int32_t acc, float sca, float scb, float bias)
{
    float y = pp8_mul(pp8_mul(pp8_mul((float)acc, sca), scb), PP8_INV_127SQ);
    return pp8_f2h(pp8_add(y, bias));
}

/* Step 3: dequantized outlier weight Wd = fp16(float(CB) * SCB * (1/127)), left to right. */
static inline PP8_HD uint16_t pp8_i8_weight_dequant(int8_t cb, float scb)
{
    return pp8_f2h(pp8_mul(pp8_mul((float)cb, scb), PP8_INV_127));
}

/* Step 4 term: the fp32 product X[r,j] * Wd[o,j] added in ascending column order to a sum that
 * starts at 0; pp8_i8_outlier_finish then adds that sum to Y1 and rounds once. */
static inline PP8_HD float pp8_i8_outlier_term(float sum, uint16_t x, uint16_t wd)
{
    return pp8_add(sum, pp8_mul(pp8_h2f(x), pp8_h2f(wd)));
}
static inline PP8_HD uint16_t pp8_i8_outlier_finish(uint16_t y1, float sum) { return pp8_f2h(pp8_add(pp8_h2f(y1), sum)); }

#ifdef __cplusplus
}
#endif
#endif
