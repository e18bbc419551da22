/* Internal to kernels/cuda/ and included only by its .cu files (so CUDA types are fine here): the
 * CUDA_CHECK / CUBLAS_CHECK macros, the extern "C" launchers each .cu file exports to cuda_backend.cu,
 * and the few device helpers several kernels share (act-dtype load/store, warp and block reductions).
 * The helpers live in this header because without -rdc a __device__ function cannot be called across
 * .cu files; they hold no numeric convention of their own (that is numerics.h). */
#ifndef PP8_CUDA_INTERNAL_CUH
#define PP8_CUDA_INTERNAL_CUH

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "../backend.h"
#include "../check.h"
#include "../cuda_host.h"
#include "../numerics.h"

/* ---- checks: one line with file:line and the statement, then the abort hook (MPI_Abort) ---- */
extern "C" __attribute__((noreturn)) void cuda_fatal(const char *file, int line, const char *func, const char *lib,
                                                     const char *name, const char *what, const char *stmt);

#define CUDA_CHECK(stmt)                                                                                               \
    do {                                                                                                               \
        cudaError_t e_ = (stmt);                                                                                       \
        if (e_ != cudaSuccess)                                                                                         \
            cuda_fatal(__FILE__, __LINE__, __func__, "CUDA", cudaGetErrorName(e_), cudaGetErrorString(e_), #stmt);     \
    } while (0)

#define CUBLAS_CHECK(stmt)                                                                                             \
    do {                                                                                                               \
        cublasStatus_t s_ = (stmt);                                                                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                               \
            cuda_fatal(__FILE__, __LINE__, __func__, "cuBLASLt", cublasLtGetStatusName(s_),                            \
                       cublasLtGetStatusString(s_), #stmt);                                                            \
    } while (0)

/* after every <<<>>>: a bad configuration is reported here, not at the next sync */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUDA_FULL_MASK 0xffffffffu

/* ---- launchers (extern "C", one family per .cu file); all enqueue on `st` and return at once ---- */
extern "C" {
/* cuda_gemm.cu: cuBLASLt handle, workspace and the plan cache */
typedef struct CudaGemm CudaGemm;
CudaGemm *cuda_gemm_create(void);
void cuda_gemm_set_workspace(CudaGemm *g, void *ws, size_t bytes);
/* y (M,N) = x (M,K) . w (N,K)^T (+ y when accumulate; fp32 compute only), see cuda_gemm_describe */
void cuda_gemm_run(CudaGemm *g, DType in, DType out, int m, int n, int k, const void *w, const void *x, void *y,
                   int accumulate, cudaStream_t st);
void cuda_gemm_destroy(CudaGemm *g);

/* cuda_int8.cu: LLM.int8() activation quantization and epilogues (DESIGN.md steps 2-4) */
/* Step 1 for x (m, k): the outlier columns (flags, ascending cols, their count in ncols, device memory)
 * and CA, SCA with those columns zeroed. 1..CUDA_GEMV_MAX_ROWS rows (the decode path) with K % 8 == 0 and
 * aligned pointers take one launch (k_int8_quant_small), anything else two kernels; the same bits. */
void cuda_int8_quantize(const uint16_t *x, int m, int k, float t, uint8_t *flags, int32_t *cols, int32_t *ncols,
                        int8_t *ca, float *sca, cudaStream_t st);
void cuda_int8_dequant(const int32_t *acc, const float *sca, const float *scb, const uint16_t *bias, int m, int n,
                       uint16_t *y, cudaStream_t st);
void cuda_int8_gather_x(const uint16_t *x, int m, int k, const int32_t *cols, int c0, int nc, int kpad, uint16_t *xo,
                        cudaStream_t st);
void cuda_int8_gather_wd(const int8_t *cb, const float *scb, int n, int k, const int32_t *cols, int c0, int nc,
                         int kpad, uint16_t *wd, cudaStream_t st);
void cuda_int8_outlier_finish(uint16_t *y, const float *sum, size_t count, cudaStream_t st);

/* cuda_int8_gemv.cu: dp4a product + the whole epilogue, rows in blocks of CUDA_GEMV_MAX_ROWS */
void cuda_int8_gemv(const int8_t *cb, const float *scb, const uint16_t *bias, const int8_t *ca, const float *sca,
                    const uint16_t *x, const int32_t *cols, const int32_t *ncols, int m, int n, int k, uint16_t *y,
                    int sms, cudaStream_t st);

/* cuda_v2.cu: the v2 decode kernels (PP8_CUDA_KERNELS=v2), each falling back to v1's for what it does
 * not take. Step 1 for m <= CUDA_GEMV_MAX_ROWS rows: the same flags/cols/ncols/CA/SCA bits as
 * cuda_int8_quantize, from many blocks; part is scratch of cuda_quant2_blocks(k) * CUDA_GEMV_MAX_ROWS
 * floats. Returns 0 when it does not take the shape (the caller runs v1's). */
int cuda_int8_quantize_v2(const uint16_t *x, int m, int k, float t, uint8_t *flags, int32_t *cols, int32_t *ncols,
                          int8_t *ca, float *sca, float *part, cudaStream_t st);
/* the int8 GEMV and its epilogue for m <= CUDA_GEMV_MAX_ROWS (cuda_gemv2_plan); 0 when not taken */
int cuda_int8_gemv_v2(const int8_t *cb, const float *scb, const uint16_t *bias, const int8_t *ca, const float *sca,
                      const uint16_t *x, const int32_t *cols, const int32_t *ncols, int m, int n, int k, uint16_t *y,
                      int sms, cudaStream_t st);
/* y (m, n) = x W^T + b with one rounding (16-bit y) or in fp32 (F32 y), fp32 sums, W fp16 or bf16 =
 * act; m <= CUDA_GEMV_MAX_ROWS; 0 when not taken */
int cuda_gemv16_v2(const uint16_t *w, const uint16_t *bias, const uint16_t *x, DType act, int m, int n, int k,
                   void *y, DType ydt, int sms, cudaStream_t st);
/* cuda_layernorm's operations from one read of each row (dim % 8 == 0, 16-byte aligned, dim <= 16384);
 * 0 when not taken */
int cuda_layernorm_v2(uint16_t *y, const uint16_t *x, const uint16_t *g, const uint16_t *b, int rows, int dim,
                      float eps, DType act, cudaStream_t st);
/* the exhaustive conversion check (backend_cuda_conv_check); synchronizes st */
void cuda_conv_check(uint64_t mismatch[2], int64_t first[2], cudaStream_t st);

/* cuda_elementwise.cu */
void cuda_gelu(uint16_t *x, size_t n, DType act, cudaStream_t st);
void cuda_relu(uint16_t *x, size_t n, cudaStream_t st);
void cuda_add(uint16_t *y, const uint16_t *a, const uint16_t *b, size_t n, DType act, cudaStream_t st);
/* y[i] = float(x[i]), exact */
void cuda_widen(float *y, const uint16_t *x, size_t n, DType act, cudaStream_t st);
/* finite_mark's record rec[2] (device): first non-finite row, smallest tag; reset: INT_MAX in both */
void cuda_finite_mark(const uint16_t *x, int rows, int dim, DType act, int tag, int *rec, cudaStream_t st);
void cuda_finite_reset(int *rec, cudaStream_t st);
/* y[r, o] = float(bias[o]): the fp32 C of a beta = 1 GEMM */
void cuda_bias_rows(float *y, const uint16_t *bias, DType act, int m, int n, cudaStream_t st);
/* y[r, o] = act(acc[r, o] + bias[o]) with one rounding (acc fp32) */
void cuda_bias_round(uint16_t *y, const float *acc, const uint16_t *bias, DType act, int m, int n, cudaStream_t st);

/* cuda_norm.cu */
void cuda_layernorm(uint16_t *y, const uint16_t *x, const uint16_t *g, const uint16_t *b, int rows, int dim, float eps,
                    DType act, cudaStream_t st);

/* cuda_rows.cu */
void cuda_embed(uint16_t *x, const int32_t *tokens, const int32_t *pos, int rows, const uint16_t *table,
                const uint16_t *pos_table, int pos_offset, int dim, DType act, cudaStream_t st);
void cuda_gather_rows(void *dst, const void *src, const int32_t *idx, int n, size_t row_bytes, cudaStream_t st);

/* cuda_attention.cu */
void cuda_attention(const AttnArgs *a, cudaStream_t st);
}

/* ---- device helpers ---- */
#ifdef __CUDACC__
static __device__ __forceinline__ float act_load(uint16_t v, int bf16) { return bf16 ? pp8_bf2f(v) : pp8_h2f(v); }
static __device__ __forceinline__ uint16_t act_store(float f, int bf16) { return bf16 ? pp8_f2bf(f) : pp8_f2h(f); }

#define GEMV_OUTLIER_BATCH 8 /* outlier columns whose loads gemv_epilogue issues at once */

/* Steps 2-4 of the int8 GEMVs (v1 and v2) for one (row, output) from its exact int32 product: dequant,
 * then the outlier part summed in ascending columns from +0, as the CPU does. */
static __device__ __forceinline__ uint16_t gemv_epilogue(int acc, int row, int o, int k, const int8_t *w,
                                                         const float *scb, const uint16_t *bias, const float *sca,
                                                         const uint16_t *x, const int32_t *cols, int nc)
{
    const float s_o = scb[o];
    uint16_t v = pp8_i8_dequant(acc, sca[row], s_o, bias ? pp8_h2f(bias[o]) : 0.0f); /* step 2 */
    if (nc > 0) { /* steps 3-4 */
        const uint16_t *xr = x + (size_t)row * k;
        float sum = 0.0f;
        int c = 0;
        /* GEMV_OUTLIER_BATCH columns' loads issued together, then summed in order: one column per
         * iteration waited out a global-memory round trip per column */
        for (; c + GEMV_OUTLIER_BATCH <= nc; c += GEMV_OUTLIER_BATCH) {
            uint16_t xv[GEMV_OUTLIER_BATCH];
            int8_t wv[GEMV_OUTLIER_BATCH];
#pragma unroll
            for (int u = 0; u < GEMV_OUTLIER_BATCH; u++) {
                int j = cols[c + u];
                xv[u] = xr[j];
                wv[u] = w[j];
            }
#pragma unroll
            for (int u = 0; u < GEMV_OUTLIER_BATCH; u++)
                sum = pp8_i8_outlier_term(sum, xv[u], pp8_i8_weight_dequant(wv[u], s_o));
        }
        for (; c < nc; c++) {
            int j = cols[c];
            sum = pp8_i8_outlier_term(sum, xr[j], pp8_i8_weight_dequant(w[j], s_o));
        }
        v = pp8_i8_outlier_finish(v, sum);
    }
    return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(CUDA_FULL_MASK, v, o));
    return v;
}

/* butterfly sum: every lane ends with the same bits (each pair is added in both orders, and fp32
 * addition is commutative) */
static __device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = pp8_add(v, __shfl_xor_sync(CUDA_FULL_MASK, v, o));
    return v;
}

/* Block-wide max / sum for blockDim.x a multiple of 32 (<= 1024); sh is a __shared__ float[32]. Every
 * thread gets the result. Safe to call repeatedly with the same sh. */
static __device__ __forceinline__ float block_max(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    return warp_max(lane < nw ? sh[lane] : -INFINITY);
}

static __device__ __forceinline__ float block_sum(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    return warp_sum(lane < nw ? sh[lane] : 0.0f);
}
#endif

#endif
