/* pp8_f2bf (numerics.h) on 16 lanes, for the AVX-512 files only (compiled with AVX-512 enabled). */
#ifndef PP8_CPU_BF16_AVX512_H
#define PP8_CPU_BF16_AVX512_H

#include <immintrin.h>

/* u + 0x7fff + ((u >> 16) & 1), NaN kept quiet. Integer ops so denormals round like the scalar code
 * (vcvtneps2bf16 would flush them). */
static inline __m256i pp8_ps_to_bf16x16(__m512 f)
{
    __m512i u = _mm512_castps_si512(f);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    __mmask16 nan = _mm512_cmp_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                          _mm512_set1_epi32(0x7f800000), _MM_CMPINT_NLE);
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

#endif
