/* The small-batch int8 path: an LLM.int8() GEMV for M <= CUDA_GEMV_MAX_ROWS that reads each weight byte
 * once per call (__dp4a over K, exact int32), then the whole epilogue in the
 * same kernel: dequant (step 2) and the outlier part (steps 3-4) summed in ascending column order, i.e.
 * bit for bit the CPU reference even on outlier rows. Shapes int8 IMMA cannot take (N or K not a
 * multiple of 4) run here for any M, in blocks of CUDA_GEMV_MAX_ROWS rows. No quantization here. */
#include "cuda_internal.cuh"

#define GEMV_WARPS 8 /* outputs per block of k_int8_gemv */
#define GEMV4_WARPS CUDA_GEMV4_WARPS /* warps per block of k_int8_gemv4, each with GEMV4_OUTS outputs */
#define GEMV4_OUTS CUDA_GEMV4_OUTS
/* K % 16 == 0 with 16-byte aligned rows (every real layer): each warp computes GEMV4_OUTS outputs, so
 * one activation load feeds GEMV4_OUTS weight loads and each lane has GEMV4_OUTS 16-byte weight loads in
 * flight, plus the next pass's (loaded before this pass's products). Measured on an H100 against the
 * one-output-per-warp kernel below: see README, GPU numbers. KS > 1 (cuda_int8_gemv_ksplit): the KS
 * warps of a group share its outputs, each summing 1/KS of K; warp 0 of the group adds the int32
 * partial sums (exact) and runs the epilogue.
 * The 8 rows x 4 outputs of a warp are 32 (row, output) pairs: lane u*8 + r ends with pair (r, u). */
template <int KS>
__global__ void __launch_bounds__(GEMV4_WARPS * 32)
    k_int8_gemv4(const int8_t *__restrict__ cb, const float *__restrict__ scb, const uint16_t *__restrict__ bias,
                 const int8_t *__restrict__ ca, const float *__restrict__ sca, const uint16_t *__restrict__ x,
                 const int32_t *__restrict__ cols, const int32_t *__restrict__ ncols, int m, int n, int k,
                 uint16_t *__restrict__ y)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % KS;
    const int o0 = (blockIdx.x * (GEMV4_WARPS / KS) + warp / KS) * GEMV4_OUTS;
    const int r0 = blockIdx.y * CUDA_GEMV_MAX_ROWS;
    const bool live = o0 < n; /* no early return: with KS > 1 the block meets at a barrier */
    const int mr = m - r0 < CUDA_GEMV_MAX_ROWS ? m - r0 : CUDA_GEMV_MAX_ROWS;
    const int nk = k >> 4, per = (nk + KS - 1) / KS, i0 = part * per, i1 = i0 + per < nk ? i0 + per : nk;
    const int4 *w4[GEMV4_OUTS];
#pragma unroll
    for (int u = 0; u < GEMV4_OUTS; u++) /* outputs past n re-read row o0 and are dropped at the end */
        w4[u] = (const int4 *)(cb + (size_t)(o0 + u < n ? o0 + u : live ? o0 : 0) * k);
    const int4 *a4 = (const int4 *)(ca + (size_t)r0 * k);
    int acc[CUDA_GEMV_MAX_ROWS][GEMV4_OUTS];
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_MAX_ROWS; r++)
#pragma unroll
        for (int u = 0; u < GEMV4_OUTS; u++) acc[r][u] = 0;

    int i = i0 + lane;
    int4 wv[GEMV4_OUTS];
    if (live && i < i1)
#pragma unroll
        for (int u = 0; u < GEMV4_OUTS; u++) wv[u] = __ldcs(w4[u] + i); /* read once: stream past L2 */
    for (; live && i < i1; i += 32) {
        int4 wn[GEMV4_OUTS] = {};
        if (i + 32 < i1)
#pragma unroll
            for (int u = 0; u < GEMV4_OUTS; u++) wn[u] = __ldcs(w4[u] + i + 32);
#pragma unroll
        for (int r = 0; r < CUDA_GEMV_MAX_ROWS; r++)
            if (r < mr) {
                int4 av = __ldg(a4 + (size_t)r * nk + i);
#pragma unroll
                for (int u = 0; u < GEMV4_OUTS; u++) {
                    acc[r][u] = __dp4a(wv[u].x, av.x, acc[r][u]);
                    acc[r][u] = __dp4a(wv[u].y, av.y, acc[r][u]);
                    acc[r][u] = __dp4a(wv[u].z, av.z, acc[r][u]);
                    acc[r][u] = __dp4a(wv[u].w, av.w, acc[r][u]);
                }
            }
#pragma unroll
        for (int u = 0; u < GEMV4_OUTS; u++) wv[u] = wn[u];
    }
    int mine = 0; /* exact int32: any summation order gives the same bits */
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_MAX_ROWS; r++)
#pragma unroll
        for (int u = 0; u < GEMV4_OUTS; u++) {
            int v = acc[r][u];
            for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(CUDA_FULL_MASK, v, off);
            if (lane == u * CUDA_GEMV_MAX_ROWS + r) mine = v;
        }
    if (KS > 1) {
        __shared__ int partial[GEMV4_WARPS][32];
        partial[warp][lane] = mine;
        __syncthreads();
        if (part != 0) return;
#pragma unroll
        for (int p = 1; p < KS; p++) mine += partial[warp + p][lane];
    }
    const int r = lane % CUDA_GEMV_MAX_ROWS, o = o0 + lane / CUDA_GEMV_MAX_ROWS;
    if (!live || r >= mr || o >= n) return;
    const int row = r0 + r;
    y[(size_t)row * n + o] = gemv_epilogue(mine, row, o, k, cb + (size_t)o * k, scb, bias, sca, x, cols, *ncols);
}

/* Any K and alignment: one warp per output. mode: 4 = int loads (K % 4 == 0, 4-byte aligned rows),
 * 1 = bytes. */
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    k_int8_gemv(const int8_t *__restrict__ cb, const float *__restrict__ scb, const uint16_t *__restrict__ bias,
                const int8_t *__restrict__ ca, const float *__restrict__ sca, const uint16_t *__restrict__ x,
                const int32_t *__restrict__ cols, const int32_t *__restrict__ ncols, int m, int n, int k, int mode,
                uint16_t *__restrict__ y)
{
    const int lane = threadIdx.x & 31, o = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    const int r0 = blockIdx.y * CUDA_GEMV_MAX_ROWS;
    if (o >= n) return; /* whole warps only; no block-wide barrier below */
    const int mr = m - r0 < CUDA_GEMV_MAX_ROWS ? m - r0 : CUDA_GEMV_MAX_ROWS;
    const int8_t *w = cb + (size_t)o * k, *a = ca + (size_t)r0 * k;
    int acc[CUDA_GEMV_MAX_ROWS];
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_MAX_ROWS; r++) acc[r] = 0;

    if (mode == 4) {
        const int *w1 = (const int *)w;
        for (int i = lane; i < (k >> 2); i += 32) {
            int wv = __ldg(w1 + i);
#pragma unroll
            for (int r = 0; r < CUDA_GEMV_MAX_ROWS; r++)
                if (r < mr) acc[r] = __dp4a(wv, __ldg((const int *)(a + (size_t)r * k) + i), acc[r]);
        }
    } else {
        for (int i = lane; i < k; i += 32) {
            int wv = w[i];
#pragma unroll
            for (int r = 0; r < CUDA_GEMV_MAX_ROWS; r++)
                if (r < mr) acc[r] += wv * (int)a[(size_t)r * k + i];
        }
    }
    /* int32 sums are exact, so any order gives the cuBLASLt IMMA result bit for bit (|CA|, |CB| <= 127
     * and K < 133144 keep every partial sum inside int32) */
    int mine = 0;
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_MAX_ROWS; r++) {
        int v = acc[r];
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(CUDA_FULL_MASK, v, off);
        if (lane == r) mine = v;
    }
    if (lane >= mr) return;
    const int row = r0 + lane;
    y[(size_t)row * n + o] = gemv_epilogue(mine, row, o, k, w, scb, bias, sca, x, cols, *ncols);
}

extern "C" void cuda_int8_gemv(const int8_t *cb, const float *scb, const uint16_t *bias, const int8_t *ca,
                               const float *sca, const uint16_t *x, const int32_t *cols, const int32_t *ncols, int m,
                               int n, int k, uint16_t *y, int sms, cudaStream_t st)
{
    if (m <= 0 || n <= 0) return;
    PP8_CHECK(k > 0 && k < 133144, "int8 K out of range: int32 accumulation would not be exact");
    uintptr_t pw = (uintptr_t)cb, pa = (uintptr_t)ca;
    int mode = 1;
    if (k % 16 == 0 && pw % 16 == 0 && pa % 16 == 0)
        mode = 16;
    else if (k % 4 == 0 && pw % 4 == 0 && pa % 4 == 0)
        mode = 4;
    const unsigned row_blocks = (unsigned)((m + CUDA_GEMV_MAX_ROWS - 1) / CUDA_GEMV_MAX_ROWS);
    PP8_CHECK(row_blocks <= 65535u, "too many rows for the GEMV grid");
    if (mode == 16) {
        const int ks = cuda_int8_gemv_ksplit(m, n, k, sms), per_block = GEMV4_WARPS / ks * GEMV4_OUTS;
        dim3 grid((unsigned)((n + per_block - 1) / per_block), row_blocks);
        if (ks == CUDA_GEMV_KSPLIT)
            k_int8_gemv4<CUDA_GEMV_KSPLIT><<<grid, GEMV4_WARPS * 32, 0, st>>>(cb, scb, bias, ca, sca, x, cols, ncols, m, n,
                                                                             k, y);
        else
            k_int8_gemv4<1><<<grid, GEMV4_WARPS * 32, 0, st>>>(cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, y);
    } else {
        dim3 grid((unsigned)((n + GEMV_WARPS - 1) / GEMV_WARPS), row_blocks);
        k_int8_gemv<<<grid, GEMV_WARPS * 32, 0, st>>>(cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, mode, y);
    }
    CUDA_CHECK_LAUNCH();
}
