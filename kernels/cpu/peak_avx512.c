/* AVX-512 peak probes (peak.h): vfmadd, vpdpbusd and vdpbf16ps on zmm, twelve independent accumulator
 * chains each (enough to cover a 4-6 cycle latency at two per cycle), operands in registers, no loads
 * in the loop. Runs only after peak.c's cpu_peak_available. Not the kernels' loops: their loads,
 * broadcasts and prefetches are what the memory side of the bound pays for. */
#include <immintrin.h>
#include <stdint.h>

#include "peak.h"

#define PEAK_REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* operands the compiler cannot see (so it cannot fold or hoist the loop body); each chain starts from
 * its own value, else gcc merges the twelve identical chains into one (seen: one vfmadd per iteration) */
static volatile uint32_t g_peak_bits = 0x3c003c00u; /* two fp16 / one fp32 1.0-ish pattern, see users */

/* unsigned lane sum: the value is only a sink, and signed reductions overflow (UBSan) */
static uint64_t peak_lanes_u32(__m512i v)
{
    uint32_t l[16];
    uint64_t t = 0;
    _mm512_storeu_si512(l, v);
    for (int i = 0; i < 16; i++) t += l[i];
    return t;
}

double peak_loop_avx512_fma(long iters)
{
    const __m512 a = _mm512_set1_ps(1e-3f + (float)(g_peak_bits & 1)), w = _mm512_set1_ps(0.999f);
#define DECL(i) __m512 s##i = _mm512_set1_ps((float)(i));
#define STEP(i) s##i = _mm512_fmadd_ps(a, w, s##i);
#define SUM(i) t = _mm512_add_ps(t, s##i);
    PEAK_REP12(DECL)
    for (long it = 0; it < iters; it++) {
        PEAK_REP12(STEP)
    }
    __m512 t = _mm512_setzero_ps();
    PEAK_REP12(SUM)
#undef DECL
#undef STEP
#undef SUM
    return (double)_mm512_reduce_add_ps(t);
}

double peak_loop_avx512_vnni(long iters)
{
    const __m512i a = _mm512_set1_epi32((int)(g_peak_bits ^ 0x01010101u)), w = _mm512_set1_epi32((int)g_peak_bits);
#define DECL(i) __m512i s##i = _mm512_set1_epi32(i);
#define STEP(i) s##i = _mm512_dpbusd_epi32(s##i, a, w);
#define SUM(i) t = _mm512_add_epi32(t, s##i);
    PEAK_REP12(DECL)
    for (long it = 0; it < iters; it++) {
        PEAK_REP12(STEP)
    }
    __m512i t = _mm512_setzero_si512();
    PEAK_REP12(SUM)
#undef DECL
#undef STEP
#undef SUM
    return (double)peak_lanes_u32(t);
}

/* bf16 pairs of ~0.5: the fp32 sums grow by ~0.5 per step and stay far from overflow and denormals */
double peak_loop_avx512_bf16(long iters)
{
    const __m512i bits = _mm512_set1_epi32((int)(g_peak_bits ^ 0x3c003c00u ^ 0x3f003f00u));
    const __m512bh a = (__m512bh)bits, w = (__m512bh)bits;
#define DECL(i) __m512 s##i = _mm512_set1_ps((float)(i));
#define STEP(i) s##i = _mm512_dpbf16_ps(s##i, a, w);
#define SUM(i) t = _mm512_add_ps(t, s##i);
    PEAK_REP12(DECL)
    for (long it = 0; it < iters; it++) {
        PEAK_REP12(STEP)
    }
    __m512 t = _mm512_setzero_ps();
    PEAK_REP12(SUM)
#undef DECL
#undef STEP
#undef SUM
    return (double)_mm512_reduce_add_ps(t);
}
