/* The v2 decode kernels (issue 15, PP8_CUDA_KERNELS=v2; v1 stays the default until these have won on a
 * GPU, side by side in launch/gpu-check.sh's kernels phase). Hand-written because a decode step's
 * linears are GEMVs of 1-8 rows, where cuBLASLt's GEMMs and v1's kernels leave HBM bandwidth unused
 * (GPU-PLAN.md §2), and no library does LLM.int8()'s epilogue with pp8's bits:
 *   - the activation quantization from many blocks: a statistics kernel over 2048-column slices (outlier
 *     bits as a bitmask, per-slice row maxima, no atomics) and an apply kernel whose blocks write CA from
 *     the maxima while one more block compacts the bitmask into ascending columns in one scan; v1 ran
 *     all of it in one block, its compaction in K/1024 serial rounds;
 *   - the int8 GEMV compiled per row tile (1, 2, 4, 8), two weight loads in flight per output and lane
 *     beside the one being multiplied, and a K split chosen so the grid spreads evenly over the SMs
 *     (cuda_gemv2_plan);
 *   - a 16-bit GEMV (fp16/bf16 weights, fp32 sums) with the bias and the one rounding fused, for the
 *     bf16 baseline and the fp16 LM head, replacing cuBLASLt + k_bias_round at few rows;
 *   - LayerNorm with the row read once in 16-byte loads and kept in registers (v1's operations).
 * The int8 numerics are numerics.h's (the same CA, SCA, ascending outlier columns and epilogue as v1,
 * hence the CPU's bits); the hardware fp16 -> fp32 conversion on loads is exact (cuda_conv_check). */
#include <cuda_fp16.h>

#include "cuda_internal.cuh"

#define Q2_THREADS CUDA_QUANT2_THREADS
#define Q2_WARPS (Q2_THREADS / 32)
#define GEMV2_WARPS CUDA_GEMV4_WARPS
#define GEMV2_OUTS CUDA_GEMV4_OUTS
#define GEMV16_MAX_ROWS CUDA_GEMV16_MAX_ROWS

/* fp16 -> fp32 in hardware: exact, the same bits as pp8_h2f for every non-NaN value (cuda_conv_check) */
static __device__ __forceinline__ float h2f_hw(uint16_t h) { return __half2float(__ushort_as_half(h)); }

/* ---- step 1: the activation quantization, v2 ---- */

/* Columns [8c, 8c+8) of every row: outlier bits (any row's |x| >= t) into mask[c] and each row's largest
 * non-outlier |x| into the slice's maximum part[blockIdx.x][r]: the rules of v1's qs_cols8. */
template <int M>
__global__ void __launch_bounds__(Q2_THREADS)
    k_quant2_stats(const uint16_t *__restrict__ x, int m, int k, float t, uint8_t *__restrict__ mask,
                   float *__restrict__ part)
{
    __shared__ float sh[M][Q2_WARPS];
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, c = blockIdx.x * Q2_THREADS + tid;
    float amax[M];
#pragma unroll
    for (int r = 0; r < M; r++) amax[r] = 0.0f;
    if (c < (k >> 3)) {
        uint4 v[M];
#pragma unroll
        for (int r = 0; r < M; r++)
            if (r < m) v[r] = __ldg((const uint4 *)(x + (size_t)r * k) + c);
        unsigned fl = 0;
#pragma unroll
        for (int r = 0; r < M; r++)
            if (r < m) {
                const uint16_t *h = (const uint16_t *)&v[r];
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    float a = fabsf(h2f_hw(h[e]));
                    if (pp8_i8_is_outlier(a, t))
                        fl |= 1u << e;
                    else
                        amax[r] = fmaxf(amax[r], a);
                }
            }
        mask[c] = (uint8_t)fl;
    }
#pragma unroll
    for (int r = 0; r < M; r++) { /* max is exact: any order gives the same bits */
        float v = warp_max(amax[r]);
        if (lane == 0) sh[r][w] = v;
    }
    __syncthreads();
    if (w == 0)
#pragma unroll
        for (int r = 0; r < M; r++) {
            float v = warp_max(lane < Q2_WARPS ? sh[r][lane] : 0.0f);
            if (lane == 0 && r < m) part[(size_t)blockIdx.x * CUDA_GEMV_MAX_ROWS + r] = v;
        }
}

/* Exclusive prefix sum of v over the block (blockDim.x == Q2_THREADS); *total gets the sum. */
static __device__ __forceinline__ int block_exclusive_scan(int v, int *total)
{
    __shared__ int warp_tot[Q2_WARPS];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int s = v;
    for (int o = 1; o < 32; o <<= 1) {
        int u = __shfl_up_sync(CUDA_FULL_MASK, s, o);
        if (lane >= o) s += u;
    }
    if (lane == 31) warp_tot[w] = s;
    __syncthreads();
    int before = 0, all = 0;
#pragma unroll
    for (int i = 0; i < Q2_WARPS; i++) {
        if (i < w) before += warp_tot[i];
        all += warp_tot[i];
    }
    *total = all;
    return before + s - v;
}

/* Blocks 0..nb-1: SCA (the slices' maxima) and CA for their columns, every flagged column zeroed.
 * Block nb: the bitmask's set bits as ascending columns and their count (thread i takes the i-th
 * contiguous segment of bytes, cuda_quant2_segment; __ffs walks each byte's bits upwards). */
template <int M>
__global__ void __launch_bounds__(Q2_THREADS)
    k_quant2_apply(const uint16_t *__restrict__ x, int m, int k, float t, const uint8_t *__restrict__ mask,
                   const float *__restrict__ part, int nb, int8_t *__restrict__ ca, float *__restrict__ sca,
                   int32_t *__restrict__ cols, int32_t *__restrict__ ncols)
{
    const int tid = threadIdx.x;
    const bool dec = t > 0.0f;
    if (blockIdx.x == nb) {
        if (!dec) {
            if (tid == 0) *ncols = 0;
            return;
        }
        const int nbytes = k >> 3, per = (nbytes + Q2_THREADS - 1) / Q2_THREADS;
        const int b0 = min(tid * per, nbytes), b1 = min(b0 + per, nbytes);
        int cnt = 0;
        for (int b = b0; b < b1; b++) cnt += __popc((unsigned)mask[b]);
        int total;
        int o = block_exclusive_scan(cnt, &total);
        for (int b = b0; b < b1; b++)
            for (unsigned f = mask[b]; f; f &= f - 1) cols[o++] = 8 * b + (__ffs((int)f) - 1);
        if (tid == 0) *ncols = total;
        return;
    }
    __shared__ float row_max[M];
    if (tid < M) {
        float a = 0.0f;
        if (tid < m)
            for (int b = 0; b < nb; b++) a = fmaxf(a, part[(size_t)b * CUDA_GEMV_MAX_ROWS + tid]);
        row_max[tid] = a;
        if (blockIdx.x == 0 && tid < m) sca[tid] = a;
    }
    __syncthreads();
    const int c = blockIdx.x * Q2_THREADS + tid;
    if (c >= (k >> 3)) return;
    const unsigned fl = dec ? mask[c] : 0u;
#pragma unroll
    for (int r = 0; r < M; r++)
        if (r < m) {
            const float s = pp8_i8_scale(row_max[r]);
            uint4 v = __ldg((const uint4 *)(x + (size_t)r * k) + c);
            const uint16_t *h = (const uint16_t *)&v;
            union {
                int8_t q[8];
                uint2 u;
            } o;
#pragma unroll
            for (int e = 0; e < 8; e++) o.q[e] = (fl >> e & 1u) ? (int8_t)0 : pp8_i8_quant(h2f_hw(h[e]), s);
            *((uint2 *)(ca + (size_t)r * k) + c) = o.u;
        }
}

template <int M>
static void quant2_launch(const uint16_t *x, int m, int k, float t, uint8_t *mask, int32_t *cols, int32_t *ncols,
                          int8_t *ca, float *sca, float *part, cudaStream_t st)
{
    const int nb = cuda_quant2_blocks(k);
    k_quant2_stats<M><<<nb, Q2_THREADS, 0, st>>>(x, m, k, t, mask, part);
    CUDA_CHECK_LAUNCH();
    k_quant2_apply<M><<<nb + 1, Q2_THREADS, 0, st>>>(x, m, k, t, mask, part, nb, ca, sca, cols, ncols);
    CUDA_CHECK_LAUNCH();
}

extern "C" int cuda_int8_quantize_v2(const uint16_t *x, int m, int k, float t, uint8_t *flags, int32_t *cols,
                                     int32_t *ncols, int8_t *ca, float *sca, float *part, cudaStream_t st)
{
    if (m < 1 || m > CUDA_GEMV_MAX_ROWS || k <= 0 || k % 8 || (uintptr_t)x % 16 || (uintptr_t)ca % 8) return 0;
    switch (cuda_gemv2_rows_tile(m)) {
    case 1: quant2_launch<1>(x, m, k, t, flags, cols, ncols, ca, sca, part, st); break;
    case 2: quant2_launch<2>(x, m, k, t, flags, cols, ncols, ca, sca, part, st); break;
    case 4: quant2_launch<4>(x, m, k, t, flags, cols, ncols, ca, sca, part, st); break;
    default: quant2_launch<8>(x, m, k, t, flags, cols, ncols, ca, sca, part, st); break;
    }
    return 1;
}

/* ---- the weight stream both v2 GEMVs share ---- */

/* A lane's walk over its part [i, i1) of the 16-byte weight loads of GEMV2_OUTS rows, 32 lanes apart:
 * dot(wv, j) multiplies the loads at j while those of the next two steps are in flight (read once:
 * __ldcs streams them past L2). */
template <class Dot>
static __device__ __forceinline__ void gemv2_stream(const int4 *const (&w4)[GEMV2_OUTS], int i, int i1, bool live,
                                                    Dot dot)
{
    int4 wa[GEMV2_OUTS] = {}, wb[GEMV2_OUTS] = {};
    if (live) {
        if (i < i1)
#pragma unroll
            for (int u = 0; u < GEMV2_OUTS; u++) wa[u] = __ldcs(w4[u] + i);
        if (i + 32 < i1)
#pragma unroll
            for (int u = 0; u < GEMV2_OUTS; u++) wb[u] = __ldcs(w4[u] + i + 32);
    }
    for (; live && i < i1; i += 64) {
        int4 na[GEMV2_OUTS] = {}, nb[GEMV2_OUTS] = {};
        if (i + 64 < i1)
#pragma unroll
            for (int u = 0; u < GEMV2_OUTS; u++) na[u] = __ldcs(w4[u] + i + 64);
        dot(wa, i);
        if (i + 96 < i1)
#pragma unroll
            for (int u = 0; u < GEMV2_OUTS; u++) nb[u] = __ldcs(w4[u] + i + 96);
        if (i + 32 < i1) dot(wb, i + 32);
#pragma unroll
        for (int u = 0; u < GEMV2_OUTS; u++) wa[u] = na[u], wb[u] = nb[u];
    }
}

/* ---- the int8 GEMV, v2 ---- */

/* acc[r][u] += CB[o0+u, 16i .. 16i+16) . CA[r, 16i .. 16i+16) for the tile's rows below m */
template <int M>
static __device__ __forceinline__ void dot_i8(int (&acc)[M][GEMV2_OUTS], const int4 (&wv)[GEMV2_OUTS],
                                              const int4 *__restrict__ a4, int nk, int i, int m)
{
#pragma unroll
    for (int r = 0; r < M; r++)
        if (r < m) {
            const int4 av = __ldg(a4 + (size_t)r * nk + i);
#pragma unroll
            for (int u = 0; u < GEMV2_OUTS; u++) {
                acc[r][u] = __dp4a(wv[u].x, av.x, acc[r][u]);
                acc[r][u] = __dp4a(wv[u].y, av.y, acc[r][u]);
                acc[r][u] = __dp4a(wv[u].z, av.z, acc[r][u]);
                acc[r][u] = __dp4a(wv[u].w, av.w, acc[r][u]);
            }
        }
}

/* Each warp owns GEMV2_OUTS outputs (KS warps of a block share them over parts of K); each lane walks
 * its part of K in 16-byte steps of 32 lanes, with the loads of the next two steps issued before the
 * products of this one. Lane u*M + r ends with the exact int32 sum of (row r, output o0 + u). */
template <int M, int KS>
__global__ void __launch_bounds__(GEMV2_WARPS * 32)
    k_int8_gemv2(const int8_t *__restrict__ cb, const float *__restrict__ scb, const uint16_t *__restrict__ bias,
                 const int8_t *__restrict__ ca, const float *__restrict__ sca, const uint16_t *__restrict__ x,
                 const int32_t *__restrict__ cols, const int32_t *__restrict__ ncols, int m, int n, int k,
                 uint16_t *__restrict__ y)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % KS;
    const int o0 = (blockIdx.x * (GEMV2_WARPS / KS) + warp / KS) * GEMV2_OUTS;
    const bool live = o0 < n; /* no early return: with KS > 1 the block meets at a barrier */
    const int nk = k >> 4, per = (nk + KS - 1) / KS, i0 = part * per, i1 = min(i0 + per, nk);
    const int4 *w4[GEMV2_OUTS];
#pragma unroll
    for (int u = 0; u < GEMV2_OUTS; u++) /* outputs past n re-read row o0 and are dropped at the end */
        w4[u] = (const int4 *)(cb + (size_t)(o0 + u < n ? o0 + u : live ? o0 : 0) * k);
    const int4 *a4 = (const int4 *)ca;
    int acc[M][GEMV2_OUTS];
#pragma unroll
    for (int r = 0; r < M; r++)
#pragma unroll
        for (int u = 0; u < GEMV2_OUTS; u++) acc[r][u] = 0;

    gemv2_stream(w4, i0 + lane, i1, live,
                 [&](const int4(&wv)[GEMV2_OUTS], int j) { dot_i8<M>(acc, wv, a4, nk, j, m); });
    int mine = 0; /* exact int32: any summation order gives the same bits */
#pragma unroll
    for (int r = 0; r < M; r++)
#pragma unroll
        for (int u = 0; u < GEMV2_OUTS; u++) {
            int v = acc[r][u];
            for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(CUDA_FULL_MASK, v, off);
            if (lane == u * M + r) mine = v;
        }
    if (KS > 1) {
        __shared__ int partial[GEMV2_WARPS][32];
        partial[warp][lane] = mine;
        __syncthreads();
        if (part != 0) return;
#pragma unroll
        for (int p = 1; p < KS; p++) mine += partial[warp + p][lane];
    }
    const int r = lane % M, u = lane / M, o = o0 + u;
    if (!live || u >= GEMV2_OUTS || r >= m || o >= n) return;
    y[(size_t)r * n + o] = gemv_epilogue(mine, r, o, k, cb + (size_t)o * k, scb, bias, sca, x, cols, *ncols);
}

template <int M>
static void gemv2_launch(const CudaGemv2Plan *p, const int8_t *cb, const float *scb, const uint16_t *bias,
                         const int8_t *ca, const float *sca, const uint16_t *x, const int32_t *cols,
                         const int32_t *ncols, int m, int n, int k, uint16_t *y, cudaStream_t st)
{
    const dim3 grid((unsigned)p->blocks), block(GEMV2_WARPS * 32);
    if (p->ksplit == 4)
        k_int8_gemv2<M, 4><<<grid, block, 0, st>>>(cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, y);
    else if (p->ksplit == 2)
        k_int8_gemv2<M, 2><<<grid, block, 0, st>>>(cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, y);
    else
        k_int8_gemv2<M, 1><<<grid, block, 0, st>>>(cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, y);
    CUDA_CHECK_LAUNCH();
}

extern "C" int cuda_int8_gemv_v2(const int8_t *cb, const float *scb, const uint16_t *bias, const int8_t *ca,
                                 const float *sca, const uint16_t *x, const int32_t *cols, const int32_t *ncols, int m,
                                 int n, int k, uint16_t *y, int sms, cudaStream_t st)
{
    CudaGemv2Plan p;
    if ((uintptr_t)cb % 16 || (uintptr_t)ca % 16 || k >= 133144 || cuda_gemv2_plan(m, n, k, 1, sms, 4, &p)) return 0;
    PP8_CHECK(p.blocks <= 0x7fffffffL, "v2 GEMV grid too large");
    switch (p.rows_tile) {
    case 1: gemv2_launch<1>(&p, cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, y, st); break;
    case 2: gemv2_launch<2>(&p, cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, y, st); break;
    case 4: gemv2_launch<4>(&p, cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, y, st); break;
    default: gemv2_launch<8>(&p, cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, y, st); break;
    }
    return 1;
}

/* ---- the 16-bit GEMV, v2 ---- */

/* 8 packed 16-bit values -> fp32, exact (bf16: a shift; fp16: the hardware conversion) */
template <bool BF>
static __device__ __forceinline__ void widen8(const int4 &v, float (&f)[8])
{
    const unsigned wds[4] = {(unsigned)v.x, (unsigned)v.y, (unsigned)v.z, (unsigned)v.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        if (BF) {
            f[2 * j] = __uint_as_float(wds[j] << 16);
            f[2 * j + 1] = __uint_as_float(wds[j] & 0xffff0000u);
        } else {
            f[2 * j] = h2f_hw((uint16_t)(wds[j] & 0xffffu));
            f[2 * j + 1] = h2f_hw((uint16_t)(wds[j] >> 16));
        }
    }
}

template <int M, bool BF>
static __device__ __forceinline__ void dot_16(float (&acc)[M][GEMV2_OUTS], const int4 (&wv)[GEMV2_OUTS],
                                              const int4 *__restrict__ x4, int nk, int i, int m)
{
    float wf[GEMV2_OUTS][8];
#pragma unroll
    for (int u = 0; u < GEMV2_OUTS; u++) widen8<BF>(wv[u], wf[u]);
#pragma unroll
    for (int r = 0; r < M; r++)
        if (r < m) {
            float xf[8];
            widen8<BF>(__ldg(x4 + (size_t)r * nk + i), xf);
#pragma unroll
            for (int u = 0; u < GEMV2_OUTS; u++)
#pragma unroll
                for (int e = 0; e < 8; e++) acc[r][u] = __fmaf_rn(wf[u][e], xf[e], acc[r][u]);
        }
}

/* The int8 GEMV's shape on 16-bit weights (8 per 16-byte load), fp32 sums; the epilogue adds the bias
 * and rounds once (as k_bias_round), or writes fp32. */
template <int M, int KS, bool BF>
__global__ void __launch_bounds__(GEMV2_WARPS * 32)
    k_gemv16_v2(const uint16_t *__restrict__ w, const uint16_t *__restrict__ bias, const uint16_t *__restrict__ x,
                int m, int n, int k, void *__restrict__ y, int yf32)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % KS;
    const int o0 = (blockIdx.x * (GEMV2_WARPS / KS) + warp / KS) * GEMV2_OUTS;
    const bool live = o0 < n;
    const int nk = k >> 3, per = (nk + KS - 1) / KS, i0 = part * per, i1 = min(i0 + per, nk);
    const int4 *w4[GEMV2_OUTS];
#pragma unroll
    for (int u = 0; u < GEMV2_OUTS; u++) w4[u] = (const int4 *)(w + (size_t)(o0 + u < n ? o0 + u : live ? o0 : 0) * k);
    const int4 *x4 = (const int4 *)x;
    float acc[M][GEMV2_OUTS];
#pragma unroll
    for (int r = 0; r < M; r++)
#pragma unroll
        for (int u = 0; u < GEMV2_OUTS; u++) acc[r][u] = 0.0f;
    gemv2_stream(w4, i0 + lane, i1, live,
                 [&](const int4(&wv)[GEMV2_OUTS], int j) { dot_16<M, BF>(acc, wv, x4, nk, j, m); });
    float mine = 0.0f;
#pragma unroll
    for (int r = 0; r < M; r++)
#pragma unroll
        for (int u = 0; u < GEMV2_OUTS; u++) {
            float v = warp_sum(acc[r][u]);
            if (lane == u * M + r) mine = v;
        }
    if (KS > 1) {
        __shared__ float partial[GEMV2_WARPS][32];
        partial[warp][lane] = mine;
        __syncthreads();
        if (part != 0) return;
#pragma unroll
        for (int p = 1; p < KS; p++) mine = pp8_add(mine, partial[warp + p][lane]);
    }
    const int r = lane % M, u = lane / M, o = o0 + u;
    if (!live || u >= GEMV2_OUTS || r >= m || o >= n) return;
    const size_t idx = (size_t)r * n + o;
    if (bias) mine = pp8_add(mine, BF ? pp8_bf2f(bias[o]) : h2f_hw(bias[o]));
    if (yf32)
        ((float *)y)[idx] = mine;
    else
        ((uint16_t *)y)[idx] = act_store(mine, BF);
}

template <int M, bool BF>
static void gemv16_launch(const CudaGemv2Plan *p, const uint16_t *w, const uint16_t *bias, const uint16_t *x, int m,
                          int n, int k, void *y, int yf32, cudaStream_t st)
{
    const dim3 grid((unsigned)p->blocks), block(GEMV2_WARPS * 32);
    if (p->ksplit == 4)
        k_gemv16_v2<M, 4, BF><<<grid, block, 0, st>>>(w, bias, x, m, n, k, y, yf32);
    else if (p->ksplit == 2)
        k_gemv16_v2<M, 2, BF><<<grid, block, 0, st>>>(w, bias, x, m, n, k, y, yf32);
    else
        k_gemv16_v2<M, 1, BF><<<grid, block, 0, st>>>(w, bias, x, m, n, k, y, yf32);
    CUDA_CHECK_LAUNCH();
}

template <bool BF>
static void gemv16_rows(const CudaGemv2Plan *p, const uint16_t *w, const uint16_t *bias, const uint16_t *x, int m,
                        int n, int k, void *y, int yf32, cudaStream_t st)
{
    switch (p->rows_tile) {
    case 1: gemv16_launch<1, BF>(p, w, bias, x, m, n, k, y, yf32, st); break;
    case 2: gemv16_launch<2, BF>(p, w, bias, x, m, n, k, y, yf32, st); break;
    default: gemv16_launch<4, BF>(p, w, bias, x, m, n, k, y, yf32, st); break;
    }
}

extern "C" int cuda_gemv16_v2(const uint16_t *w, const uint16_t *bias, const uint16_t *x, DType act, int m, int n,
                              int k, void *y, DType ydt, int sms, cudaStream_t st)
{
    CudaGemv2Plan p;
    if (m > GEMV16_MAX_ROWS || (act != DTYPE_F16 && act != DTYPE_BF16) || (ydt != act && ydt != DTYPE_F32)) return 0;
    if ((uintptr_t)w % 16 || (uintptr_t)x % 16 || cuda_gemv2_plan(m, n, k, 2, sms, 4, &p)) return 0;
    PP8_CHECK(p.blocks <= 0x7fffffffL, "v2 GEMV grid too large");
    const int yf32 = ydt == DTYPE_F32;
    if (act == DTYPE_BF16)
        gemv16_rows<true>(&p, w, bias, x, m, n, k, y, yf32, st);
    else
        gemv16_rows<false>(&p, w, bias, x, m, n, k, y, yf32, st);
    return 1;
}

/* ---- LayerNorm, v2 ---- */

#define LN2_THREADS 256
#define LN2_CHUNKS 8 /* 16-byte chunks a thread holds: rows up to LN2_THREADS * 8 * LN2_CHUNKS = 16384 */

static __device__ __forceinline__ float ln2_load(uint16_t v, int bf16) { return bf16 ? pp8_bf2f(v) : h2f_hw(v); }

/* v1's k_layernorm (the same fp32 operations on each element: two-pass mean and biased variance, then
 * (x - mean) * inv * g + b, rounded once) with the row read once, in 16-byte loads all issued together
 * and kept in registers for both passes, and the hardware fp16 conversion: v1 read each 2-byte element
 * three times, one load in flight per thread. Block sums in the same tree as v1. y may equal x. */
__global__ void __launch_bounds__(LN2_THREADS)
    k_layernorm2(uint16_t *y, const uint16_t *x, const uint16_t *__restrict__ g, const uint16_t *__restrict__ b,
                 int dim, float eps, int bf16)
{
    __shared__ float sh[32];
    const int n8 = dim >> 3;
    const uint4 *xr = (const uint4 *)(x + (size_t)blockIdx.x * dim);
    uint4 v[LN2_CHUNKS];
#pragma unroll
    for (int c = 0; c < LN2_CHUNKS; c++) {
        const int j = threadIdx.x + c * LN2_THREADS;
        v[c] = j < n8 ? xr[j] : make_uint4(0, 0, 0, 0);
    }
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < LN2_CHUNKS; c++)
        if (threadIdx.x + c * LN2_THREADS < n8) {
            const uint16_t *h = (const uint16_t *)&v[c];
#pragma unroll
            for (int e = 0; e < 8; e++) s = pp8_add(s, ln2_load(h[e], bf16));
        }
    const float mean = pp8_div(block_sum(s, sh), (float)dim);
    float q = 0.0f;
#pragma unroll
    for (int c = 0; c < LN2_CHUNKS; c++)
        if (threadIdx.x + c * LN2_THREADS < n8) {
            const uint16_t *h = (const uint16_t *)&v[c];
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float d = pp8_add(ln2_load(h[e], bf16), -mean);
                q = pp8_add(q, pp8_mul(d, d));
            }
        }
    const float var = pp8_div(block_sum(q, sh), (float)dim);
    const float inv = pp8_div(1.0f, sqrtf(pp8_add(var, eps))); /* sqrtf is correctly rounded (-prec-sqrt=true) */
    uint4 *yr = (uint4 *)(y + (size_t)blockIdx.x * dim);
#pragma unroll
    for (int c = 0; c < LN2_CHUNKS; c++) {
        const int j = threadIdx.x + c * LN2_THREADS;
        if (j >= n8) continue;
        const uint4 gv = __ldg((const uint4 *)g + j), bv = __ldg((const uint4 *)b + j);
        const uint16_t *h = (const uint16_t *)&v[c], *gh = (const uint16_t *)&gv, *bh = (const uint16_t *)&bv;
        union {
            uint16_t o[8];
            uint4 u;
        } out;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float d = pp8_add(ln2_load(h[e], bf16), -mean);
            out.o[e] = act_store(pp8_add(pp8_mul(pp8_mul(d, inv), ln2_load(gh[e], bf16)), ln2_load(bh[e], bf16)), bf16);
        }
        yr[j] = out.u;
    }
}

extern "C" int cuda_layernorm_v2(uint16_t *y, const uint16_t *x, const uint16_t *g, const uint16_t *b, int rows,
                                 int dim, float eps, DType act, cudaStream_t st)
{
    if (rows <= 0 || dim <= 0 || dim % 8 || dim > LN2_THREADS * 8 * LN2_CHUNKS) return 0;
    if (((uintptr_t)y | (uintptr_t)x | (uintptr_t)g | (uintptr_t)b) % 16) return 0;
    k_layernorm2<<<rows, LN2_THREADS, 0, st>>>(y, x, g, b, dim, eps, act == DTYPE_BF16);
    CUDA_CHECK_LAUNCH();
    return 1;
}

/* ---- the exhaustive check of the device conversions against numerics.h ---- */

static __device__ void conv_note(unsigned long long bad, unsigned long long first_bad, unsigned long long *mis,
                                 unsigned long long *first)
{
    if (!bad) return;
    atomicAdd(mis, bad);
    atomicMin(first, first_bad);
}

__global__ void k_conv_h2f(unsigned long long *mis, unsigned long long *first)
{
    const unsigned h = blockIdx.x * blockDim.x + threadIdx.x;
    if (h >= 65536u) return;
    const float a = h2f_hw((uint16_t)h), b = pp8_h2f((uint16_t)h);
    const bool same = __float_as_uint(a) == __float_as_uint(b) || (isnan(a) && isnan(b));
    conv_note(same ? 0 : 1, h, mis, first);
}

__global__ void k_conv_f2h(unsigned long long *mis, unsigned long long *first)
{
    unsigned long long bad = 0, first_bad = ~0ull;
    const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < (1ull << 32); i += step) {
        const float f = __uint_as_float((unsigned)i);
        const uint16_t a = __half_as_ushort(__float2half_rn(f)), b = pp8_f2h(f);
        const bool nan_a = (a & 0x7fffu) > 0x7c00u, nan_b = (b & 0x7fffu) > 0x7c00u;
        if (a != b && !(nan_a && nan_b)) {
            if (!bad) first_bad = i;
            bad++;
        }
    }
    conv_note(bad, first_bad, mis, first);
}

extern "C" void cuda_conv_check(uint64_t mismatch[2], int64_t first[2], cudaStream_t st)
{
    unsigned long long *d = NULL, h[4];
    CUDA_CHECK(cudaMalloc((void **)&d, 4 * sizeof *d));
    const unsigned long long init[4] = {0, 0, ~0ull, ~0ull}; /* mismatches h2f, f2h; first h2f, f2h */
    CUDA_CHECK(cudaMemcpyAsync(d, init, sizeof init, cudaMemcpyHostToDevice, st));
    k_conv_h2f<<<65536 / 256, 256, 0, st>>>(d + 0, d + 2);
    CUDA_CHECK_LAUNCH();
    k_conv_f2h<<<4096, 256, 0, st>>>(d + 1, d + 3);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    CUDA_CHECK(cudaFree(d));
    for (int i = 0; i < 2; i++) {
        mismatch[i] = h[i];
        first[i] = h[2 + i] == ~0ull ? -1 : (int64_t)h[2 + i];
    }
}
