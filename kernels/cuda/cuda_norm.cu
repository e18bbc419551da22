/* LayerNorm of the CUDA backend: one block per row, fp32 two-pass mean and biased variance
 * (torch.nn.functional.layer_norm), then (x - mean) * (1/sqrt(var + eps)) * g + b rounded once to the
 * act dtype, in the CPU backend's operation order. The block-wide sums add in a different order than
 * the CPU's 16-lane sums, so results agree within a tolerance, not bit for bit. y may equal x. */
#include "cuda_internal.cuh"

#define LN_THREADS 256

__global__ void __launch_bounds__(LN_THREADS)
    k_layernorm(uint16_t *y, const uint16_t *x, const uint16_t *__restrict__ g, const uint16_t *__restrict__ b, int dim,
                float eps, int bf16)
{
    __shared__ float sh[32];
    const uint16_t *xr = x + (size_t)blockIdx.x * dim;
    uint16_t *yr = y + (size_t)blockIdx.x * dim;
    float s = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) s = pp8_add(s, act_load(xr[i], bf16));
    const float mean = pp8_div(block_sum(s, sh), (float)dim);
    float q = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float d = pp8_add(act_load(xr[i], bf16), -mean);
        q = pp8_add(q, pp8_mul(d, d));
    }
    const float var = pp8_div(block_sum(q, sh), (float)dim);
    const float inv = pp8_div(1.0f, sqrtf(pp8_add(var, eps))); /* sqrtf is correctly rounded (-prec-sqrt=true) */
    /* every element is read and written by the same thread after both reductions: in place is safe */
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float d = pp8_add(act_load(xr[i], bf16), -mean);
        float v = pp8_add(pp8_mul(pp8_mul(d, inv), act_load(g[i], bf16)), act_load(b[i], bf16));
        yr[i] = act_store(v, bf16);
    }
}

extern "C" void cuda_layernorm(uint16_t *y, const uint16_t *x, const uint16_t *g, const uint16_t *b, int rows, int dim,
                               float eps, DType act, cudaStream_t st)
{
    if (rows <= 0 || dim <= 0) return;
    k_layernorm<<<rows, LN_THREADS, 0, st>>>(y, x, g, b, dim, eps, act == DTYPE_BF16);
    CUDA_CHECK_LAUNCH();
}
