/* LLM.int8() kernels around the int8 GEMM (DESIGN.md, bitsandbytes >= 0.45 semantics): outlier columns
 * over the micro-batch, row-wise activation quantization (CA, SCA), the int32 -> fp16 dequant epilogue,
 * and the gathers and final rounding of the outlier part that cuBLASLt multiplies. Every arithmetic step
 * is a numerics.h function, so CA, SCA and Y1 are the CPU's bits. No GEMM and no GEMV here. */
#include "cuda_internal.cuh"

#define QUANT_THREADS 256
#define COMPACT_THREADS 1024
#define EW_THREADS 256

/* flags[j] = some row has |x[r,j]| >= t (bitsandbytes int8_vectorwise_quant's outlier columns) */
__global__ void k_int8_outlier_flags(const uint16_t *__restrict__ x, int m, int k, float t, uint8_t *__restrict__ flags)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= k) return;
    int out = 0;
    for (int r = 0; r < m && !out; r++) out = pp8_i8_is_outlier(fabsf(pp8_h2f(x[(size_t)r * k + j])), t);
    flags[j] = (uint8_t)out;
}

/* The whole block: the flagged columns in ascending order (a block-wide exclusive scan per blockDim.x
 * columns), so the outlier sums run in the column order the CPU uses. flags may have been written by
 * this block before a __syncthreads. */
static __device__ void block_compact_cols(const uint8_t *flags, int k, int32_t *cols, int32_t *ncols)
{
    __shared__ int warp_tot[32];
    __shared__ int base_sh;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, nw = blockDim.x >> 5;
    if (tid == 0) base_sh = 0;
    __syncthreads();
    for (int j0 = 0; j0 < k; j0 += blockDim.x) {
        int j = j0 + tid, f = j < k ? (int)flags[j] : 0, v = f;
        for (int o = 1; o < 32; o <<= 1) { /* inclusive scan within the warp */
            int u = __shfl_up_sync(CUDA_FULL_MASK, v, o);
            if (lane >= o) v += u;
        }
        if (lane == 31) warp_tot[w] = v;
        __syncthreads();
        if (w == 0) { /* inclusive scan of the warp totals */
            int s = lane < nw ? warp_tot[lane] : 0;
            for (int o = 1; o < 32; o <<= 1) {
                int u = __shfl_up_sync(CUDA_FULL_MASK, s, o);
                if (lane >= o) s += u;
            }
            warp_tot[lane] = s;
        }
        __syncthreads();
        int base = base_sh, before = v - f + (w > 0 ? warp_tot[w - 1] : 0);
        if (f) cols[base + before] = j;
        __syncthreads(); /* everyone has read base_sh and warp_tot */
        if (tid == blockDim.x - 1) base_sh = base + before + f;
        __syncthreads();
    }
    if (tid == 0) *ncols = base_sh;
}

__global__ void k_int8_outlier_compact(const uint8_t *__restrict__ flags, int k, int32_t *__restrict__ cols,
                                       int32_t *__restrict__ ncols)
{
    block_compact_cols(flags, k, cols, ncols);
}

/* One block per row: SCA = max |x| over the elements below the threshold, CA = round_half_even(x * 127/SCA)
 * with every outlier column zeroed (bitsandbytes kInt8VectorQuant, but with pp8_i8_scale's correctly
 * rounded 127/SCA instead of __fdividef). flags == NULL: no outlier columns (t = 0). */
__global__ void k_int8_quant_rows(const uint16_t *__restrict__ x, int k, float t, const uint8_t *__restrict__ flags,
                                  int8_t *__restrict__ ca, float *__restrict__ sca)
{
    __shared__ float sh[32];
    const int r = blockIdx.x;
    const uint16_t *xr = x + (size_t)r * k;
    int8_t *qr = ca + (size_t)r * k;
    float amax = 0.0f;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        float a = fabsf(pp8_h2f(xr[j]));
        if (!pp8_i8_is_outlier(a, t)) amax = fmaxf(amax, a);
    }
    amax = block_max(amax, sh); /* max is exact: the order does not matter */
    const float s = pp8_i8_scale(amax);
    if (threadIdx.x == 0) sca[r] = amax;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        float v = pp8_h2f(xr[j]);
        bool zero = (flags && flags[j]) || pp8_i8_is_outlier(fabsf(v), t);
        qr[j] = zero ? (int8_t)0 : pp8_i8_quant(v, s);
    }
}

/* The decode path (m <= CUDA_GEMV_MAX_ROWS, K % 8 == 0, 16-byte aligned x) in one launch of one block:
 * outlier flags, their ascending columns and count, CA and SCA. Each thread reads 8 columns of every row
 * at once (16-byte loads, all rows in flight together), so the flags (any row's |x| >= t), the row
 * maxima and the quantization come from registers in two passes over x. The same numerics.h functions
 * and rules as the three kernels the larger products use, so the same bits; one launch instead of
 * three matters when a decode step is hundreds of small kernels. Measured on an H100: README. */
#define QS_ROWS CUDA_GEMV_MAX_ROWS

/* Columns [8c, 8c + 8) of rows 0..m-1 into v (16-byte loads, all rows in flight together); returns
 * their outlier bits (bit e: some row's |x| >= t at column 8c + e) and raises amax[r] to each row's
 * largest non-outlier |x| there. */
static __device__ __forceinline__ unsigned qs_cols8(const uint16_t *x, int m, int k, int c, float t,
                                                    uint4 (&v)[QS_ROWS], float (&amax)[QS_ROWS])
{
#pragma unroll
    for (int r = 0; r < QS_ROWS; r++)
        if (r < m) v[r] = __ldg((const uint4 *)(x + (size_t)r * k) + c);
    unsigned fl = 0;
#pragma unroll
    for (int r = 0; r < QS_ROWS; r++)
        if (r < m) {
            const uint16_t *h = (const uint16_t *)&v[r];
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float a = fabsf(pp8_h2f(h[e]));
                if (pp8_i8_is_outlier(a, t))
                    fl |= 1u << e;
                else
                    amax[r] = fmaxf(amax[r], a);
            }
        }
    return fl;
}

__global__ void __launch_bounds__(COMPACT_THREADS)
    k_int8_quant_small(const uint16_t *__restrict__ x, int m, int k, float t, uint8_t *__restrict__ flags,
                       int32_t *__restrict__ cols, int32_t *__restrict__ ncols, int8_t *__restrict__ ca,
                       float *__restrict__ sca)
{
    __shared__ float part[QS_ROWS][32];
    __shared__ float row_max[QS_ROWS];
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, nw = blockDim.x >> 5, k8 = k >> 3;
    const bool dec = t > 0.0f;
    float amax[QS_ROWS];
#pragma unroll
    for (int r = 0; r < QS_ROWS; r++) amax[r] = 0.0f;
    /* pass 1: flags and row maxima (over each row's own non-outlier values) */
    for (int c = tid; c < k8; c += blockDim.x) {
        uint4 v[QS_ROWS];
        unsigned fl = qs_cols8(x, m, k, c, t, v, amax);
        if (dec) {
            uint2 f8;
            f8.x = (fl & 1u) | (fl >> 1 & 1u) << 8 | (fl >> 2 & 1u) << 16 | (fl >> 3 & 1u) << 24;
            f8.y = (fl >> 4 & 1u) | (fl >> 5 & 1u) << 8 | (fl >> 6 & 1u) << 16 | (fl >> 7 & 1u) << 24;
            *((uint2 *)flags + c) = f8;
        }
    }
#pragma unroll
    for (int r = 0; r < QS_ROWS; r++) { /* max is exact: the order does not matter */
        float v = warp_max(amax[r]);
        if (lane == 0) part[r][w] = v;
    }
    __syncthreads(); /* also: the flags, in global memory, are visible to the whole block from here */
    if (w < m) {
        float v = warp_max(lane < nw ? part[w][lane] : 0.0f);
        if (lane == 0) row_max[w] = v, sca[w] = v;
    }
    __syncthreads();
    if (dec)
        block_compact_cols(flags, k, cols, ncols);
    else if (tid == 0)
        *ncols = 0;
    float s[QS_ROWS];
#pragma unroll
    for (int r = 0; r < QS_ROWS; r++) s[r] = r < m ? pp8_i8_scale(row_max[r]) : 0.0f;
    /* pass 2: CA, outlier columns (of any row) zeroed */
    for (int c = tid; c < k8; c += blockDim.x) {
        uint4 v[QS_ROWS];
        float unused[QS_ROWS] = {0}; /* pass 1 took the maxima */
        unsigned fl = qs_cols8(x, m, k, c, t, v, unused);
#pragma unroll
        for (int r = 0; r < QS_ROWS; r++)
            if (r < m) {
                const uint16_t *h = (const uint16_t *)&v[r];
                union {
                    int8_t q[8];
                    uint2 u;
                } o;
#pragma unroll
                for (int e = 0; e < 8; e++) o.q[e] = (fl >> e & 1u) ? (int8_t)0 : pp8_i8_quant(pp8_h2f(h[e]), s[r]);
                *((uint2 *)(ca + (size_t)r * k) + c) = o.u;
            }
    }
}

/* Step 2: Y1 = fp16((acc * SCA * SCB) * (1/16129) + bias) */
__global__ void k_int8_dequant(const int32_t *__restrict__ acc, const float *__restrict__ sca,
                               const float *__restrict__ scb, const uint16_t *__restrict__ bias, int m, int n,
                               uint16_t *__restrict__ y)
{
    size_t total = (size_t)m * n;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int r = (int)(i / n), o = (int)(i % n);
        float b = bias ? pp8_h2f(bias[o]) : 0.0f;
        y[i] = pp8_i8_dequant(acc[i], sca[r], scb[o], b);
    }
}

/* xo (m, kpad) = x[:, cols[c0 .. c0+nc)], zero beyond nc (zero columns add +0 to the sums) */
__global__ void k_int8_gather_x(const uint16_t *__restrict__ x, int m, int k, const int32_t *__restrict__ cols, int c0,
                                int nc, int kpad, uint16_t *__restrict__ xo)
{
    size_t total = (size_t)m * kpad;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int r = (int)(i / kpad), c = (int)(i % kpad);
        xo[i] = c < nc ? x[(size_t)r * k + cols[c0 + c]] : (uint16_t)0;
    }
}

/* Step 3: wd (n, kpad) = fp16(CB[:, col] * SCB * (1/127)) for the chunk's outlier columns */
__global__ void k_int8_gather_wd(const int8_t *__restrict__ cb, const float *__restrict__ scb, int n, int k,
                                 const int32_t *__restrict__ cols, int c0, int nc, int kpad, uint16_t *__restrict__ wd)
{
    size_t total = (size_t)n * kpad;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int o = (int)(i / kpad), c = (int)(i % kpad);
        wd[i] = c < nc ? pp8_i8_weight_dequant(cb[(size_t)o * k + cols[c0 + c]], scb[o]) : (uint16_t)0;
    }
}

/* Step 4: Y = fp16(float(Y1) + sum), one rounding */
__global__ void k_int8_outlier_finish(uint16_t *__restrict__ y, const float *__restrict__ sum, size_t count)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        y[i] = pp8_i8_outlier_finish(y[i], sum[i]);
}

static void int8_outliers(const uint16_t *x, int m, int k, float t, uint8_t *flags, int32_t *cols, int32_t *ncols,
                          cudaStream_t st)
{
    if (!(t > 0.0f) || m <= 0 || k <= 0) { /* decomposition off: no outlier column */
        CUDA_CHECK(cudaMemsetAsync(ncols, 0, sizeof(int32_t), st));
        return;
    }
    k_int8_outlier_flags<<<cuda_grid_1d((size_t)k, EW_THREADS), EW_THREADS, 0, st>>>(x, m, k, t, flags);
    CUDA_CHECK_LAUNCH();
    k_int8_outlier_compact<<<1, COMPACT_THREADS, 0, st>>>(flags, k, cols, ncols);
    CUDA_CHECK_LAUNCH();
}

static void int8_quant_rows(const uint16_t *x, int m, int k, float t, const uint8_t *flags, int8_t *ca, float *sca,
                            cudaStream_t st)
{
    if (m <= 0) return;
    k_int8_quant_rows<<<m, QUANT_THREADS, 0, st>>>(x, k, t, t > 0.0f ? flags : NULL, ca, sca);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_int8_quantize(const uint16_t *x, int m, int k, float t, uint8_t *flags, int32_t *cols,
                                   int32_t *ncols, int8_t *ca, float *sca, cudaStream_t st)
{
    const bool small = m >= 1 && m <= CUDA_GEMV_MAX_ROWS && k > 0 && k % 8 == 0 && (uintptr_t)x % 16 == 0 &&
                       (uintptr_t)ca % 8 == 0 && (uintptr_t)flags % 8 == 0;
    if (small) {
        k_int8_quant_small<<<1, COMPACT_THREADS, 0, st>>>(x, m, k, t, flags, cols, ncols, ca, sca);
        CUDA_CHECK_LAUNCH();
        return;
    }
    int8_outliers(x, m, k, t, flags, cols, ncols, st);
    int8_quant_rows(x, m, k, t, flags, ca, sca, st);
}

extern "C" void cuda_int8_dequant(const int32_t *acc, const float *sca, const float *scb, const uint16_t *bias, int m,
                                  int n, uint16_t *y, cudaStream_t st)
{
    size_t total = (size_t)m * n;
    if (!total) return;
    k_int8_dequant<<<cuda_grid_1d(total, EW_THREADS), EW_THREADS, 0, st>>>(acc, sca, scb, bias, m, n, y);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_int8_gather_x(const uint16_t *x, int m, int k, const int32_t *cols, int c0, int nc, int kpad,
                                   uint16_t *xo, cudaStream_t st)
{
    size_t total = (size_t)m * kpad;
    if (!total) return;
    k_int8_gather_x<<<cuda_grid_1d(total, EW_THREADS), EW_THREADS, 0, st>>>(x, m, k, cols, c0, nc, kpad, xo);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_int8_gather_wd(const int8_t *cb, const float *scb, int n, int k, const int32_t *cols, int c0,
                                    int nc, int kpad, uint16_t *wd, cudaStream_t st)
{
    size_t total = (size_t)n * kpad;
    if (!total) return;
    k_int8_gather_wd<<<cuda_grid_1d(total, EW_THREADS), EW_THREADS, 0, st>>>(cb, scb, n, k, cols, c0, nc, kpad, wd);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_int8_outlier_finish(uint16_t *y, const float *sum, size_t count, cudaStream_t st)
{
    if (!count) return;
    k_int8_outlier_finish<<<cuda_grid_1d(count, EW_THREADS), EW_THREADS, 0, st>>>(y, sum, count);
    CUDA_CHECK_LAUNCH();
}
