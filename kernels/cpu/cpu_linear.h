/* CPU linear layers: packing, the LLM.int8() decomposed product and the 16-bit baseline, with run-time
 * ISA dispatch (AMX, AVX-512 VNNI/BF16, AVX2, scalar). Internal to the cpu backend; the scalar
 * reference functions at the bottom are what tests compare every fast path against. */
#ifndef PP8_CPU_LINEAR_H
#define PP8_CPU_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

typedef struct CpuLinear CpuLinear; /* scratch + dispatch state, one per backend */

CpuLinear *cpu_linear_create(int threads);
void cpu_linear_destroy(CpuLinear *c);
void cpu_linear_reserve(CpuLinear *c, int max_rows, int max_k, int max_n);
size_t cpu_linear_bytes(DType wdt, int n, int k);
void cpu_linear_pack(Linear *w, const void *rowmajor, const float *scb);
void cpu_linear(CpuLinear *c, const Linear *w, const uint16_t *x, int rows, DType act, void *y, DType ydt,
                float threshold);
const char *cpu_linear_path(CpuLinear *c, DType wdt, int rows);
/* ISA features found at run time, e.g. "avx512f avx512_vnni avx512_bf16 amx_int8 amx_bf16" */
const char *cpu_isa_string(void);

/* ---- scalar references (row-major weights), DESIGN.md's four steps ---- */
/* per-row weight quantization: CB (N,K), SCB (N) from fp16 W */
void ref_quantize_weights(int8_t *cb, float *scb, const uint16_t *w, int n, int k);
/* outlier columns of x (M,K) for threshold t; returns their count, cols ascending */
int ref_outlier_cols(int *cols, const uint16_t *x, int m, int k, float t);
/* CA (M,K), SCA (M) with outlier columns zeroed */
void ref_quantize_acts(int8_t *ca, float *sca, const uint16_t *x, int m, int k, const int *cols, int ncols,
                       float t);
/* full LLM.int8() product into fp16 y (M,N) */
void ref_int8_linear(uint16_t *y, const uint16_t *x, int m, int k, const int8_t *cb, const float *scb,
                     const uint16_t *bias, int n, float t);
/* 16-bit product, fp32 accumulate in ascending k, y of dtype ydt (act dtype or F32) */
void ref_linear16(void *y, DType ydt, const uint16_t *x, DType act, int m, int k, const uint16_t *w, DType wdt,
                  const uint16_t *bias, int n);

#endif
