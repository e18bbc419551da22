/* The small-batch int8 path: an LLM.int8() GEMV for M <= CUDA_GEMV_MAX_ROWS that reads each weight byte
 * once per call (one warp per output row, __dp4a over K, exact int32), then the whole epilogue in the
 * same kernel: dequant (step 2) and the outlier part (steps 3-4) summed in ascending column order, i.e.
 * bit for bit the CPU reference even on outlier rows. Shapes int8 IMMA cannot take (N or K not a
 * multiple of 4) run here for any M, in blocks of CUDA_GEMV_MAX_ROWS rows. No quantization here. */
#include "cuda_internal.cuh"

#define GEMV_WARPS 8 /* outputs per block */

/* mode: 16 = int4 loads (K % 16 == 0, 16-byte aligned rows), 4 = int loads (K % 4 == 0), 1 = bytes */
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

    if (mode == 16) {
        const int4 *w4 = (const int4 *)w;
        for (int i = lane; i < (k >> 4); i += 32) {
            int4 wv = __ldg(w4 + i);
#pragma unroll
            for (int r = 0; r < CUDA_GEMV_MAX_ROWS; r++)
                if (r < mr) {
                    int4 av = __ldg((const int4 *)(a + (size_t)r * k) + i);
                    acc[r] = __dp4a(wv.x, av.x, acc[r]);
                    acc[r] = __dp4a(wv.y, av.y, acc[r]);
                    acc[r] = __dp4a(wv.z, av.z, acc[r]);
                    acc[r] = __dp4a(wv.w, av.w, acc[r]);
                }
        }
    } else if (mode == 4) {
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
    const float s_o = scb[o];
    uint16_t v = pp8_i8_dequant(mine, sca[row], s_o, bias ? pp8_h2f(bias[o]) : 0.0f); /* step 2 */
    const int nc = *ncols;
    if (nc > 0) { /* steps 3-4 in ascending columns from +0, as the CPU does */
        const uint16_t *xr = x + (size_t)row * k;
        float sum = 0.0f;
        for (int c = 0; c < nc; c++) {
            int j = cols[c];
            sum = pp8_i8_outlier_term(sum, xr[j], pp8_i8_weight_dequant(w[j], s_o));
        }
        v = pp8_i8_outlier_finish(v, sum);
    }
    y[(size_t)row * n + o] = v;
}

extern "C" void cuda_int8_gemv(const int8_t *cb, const float *scb, const uint16_t *bias, const int8_t *ca,
                               const float *sca, const uint16_t *x, const int32_t *cols, const int32_t *ncols, int m,
                               int n, int k, uint16_t *y, cudaStream_t st)
{
    if (m <= 0 || n <= 0) return;
    PP8_CHECK(k > 0 && k < 133144, "int8 K out of range: int32 accumulation would not be exact");
    uintptr_t pw = (uintptr_t)cb, pa = (uintptr_t)ca;
    int mode = 1;
    if (k % 16 == 0 && pw % 16 == 0 && pa % 16 == 0)
        mode = 16;
    else if (k % 4 == 0 && pw % 4 == 0 && pa % 4 == 0)
        mode = 4;
    dim3 grid((unsigned)((n + GEMV_WARPS - 1) / GEMV_WARPS),
              (unsigned)((m + CUDA_GEMV_MAX_ROWS - 1) / CUDA_GEMV_MAX_ROWS));
    PP8_CHECK(grid.y <= 65535u, "too many rows for the GEMV grid");
    k_int8_gemv<<<grid, GEMV_WARPS * 32, 0, st>>>(cb, scb, bias, ca, sca, x, cols, ncols, m, n, k, mode, y);
    CUDA_CHECK_LAUNCH();
}
