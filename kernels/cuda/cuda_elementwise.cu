/* Elementwise ops of the CUDA backend on act-dtype (fp16 / bf16) tensors: BLOOM's tanh GELU, ReLU, the
 * residual add (fp32, rounded once) and the bias rows a beta = 1 GEMM adds. Each follows the CPU
 * backend's operation order with unfused IEEE fp32 steps; only tanhf may differ from glibc's by an ulp
 * (CUDA's tanhf is not correctly rounded), so gelu is compared with a tolerance. No reductions here. */
#include "cuda_internal.cuh"

#define EW_THREADS 256

#define GRID_STRIDE(i, n)                                                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* transformers bloom_gelu_forward: x * 0.5 * (1.0 + tanh(0.79788456 * x * (1 + 0.044715 * x * x))),
 * evaluated left to right as the CPU backend does */
__global__ void k_gelu(uint16_t *__restrict__ x, size_t n, int bf16)
{
    GRID_STRIDE(i, n)
    {
        float f = act_load(x[i], bf16);
        float inner = pp8_mul(pp8_mul(0.79788456f, f), pp8_add(1.0f, pp8_mul(pp8_mul(0.044715f, f), f)));
        x[i] = act_store(pp8_mul(pp8_mul(f, 0.5f), pp8_add(1.0f, tanhf(inner))), bf16);
    }
}

/* on the bits, like the CPU: sign set and not -0 -> +0 (same rule for fp16 and bf16) */
__global__ void k_relu(uint16_t *__restrict__ x, size_t n)
{
    GRID_STRIDE(i, n)
    {
        uint16_t v = x[i];
        if ((v & 0x8000u) && v != 0x8000u) x[i] = 0;
    }
}

__global__ void k_add(uint16_t *y, const uint16_t *a, const uint16_t *b, size_t n, int bf16)
{
    GRID_STRIDE(i, n) y[i] = act_store(pp8_add(act_load(a[i], bf16), act_load(b[i], bf16)), bf16);
}

__global__ void k_bias_rows(float *__restrict__ y, const uint16_t *__restrict__ bias, int bf16, int m, int n)
{
    GRID_STRIDE(i, (size_t)m * n) y[i] = act_load(bias[i % (size_t)n], bf16);
}

/* y[r, o] = act(acc[r, o] + bias[o]): one rounding of the fp32 sum plus the bias, as the CPU does */
__global__ void k_bias_round(uint16_t *__restrict__ y, const float *__restrict__ acc, const uint16_t *__restrict__ bias,
                             int bf16, int m, int n)
{
    GRID_STRIDE(i, (size_t)m * n)
    {
        y[i] = act_store(pp8_add(acc[i], act_load(bias[i % (size_t)n], bf16)), bf16);
    }
}

extern "C" void cuda_bias_round(uint16_t *y, const float *acc, const uint16_t *bias, DType act, int m, int n,
                                cudaStream_t st)
{
    size_t total = (size_t)m * n;
    if (!total) return;
    k_bias_round<<<cuda_grid_1d(total, EW_THREADS), EW_THREADS, 0, st>>>(y, acc, bias, act == DTYPE_BF16, m, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_gelu(uint16_t *x, size_t n, DType act, cudaStream_t st)
{
    if (!n) return;
    k_gelu<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, st>>>(x, n, act == DTYPE_BF16);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_relu(uint16_t *x, size_t n, cudaStream_t st)
{
    if (!n) return;
    k_relu<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, st>>>(x, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_add(uint16_t *y, const uint16_t *a, const uint16_t *b, size_t n, DType act, cudaStream_t st)
{
    if (!n) return;
    /* y may alias a or b: each element is read and written by the same thread */
    k_add<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, st>>>(y, a, b, n, act == DTYPE_BF16);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_bias_rows(float *y, const uint16_t *bias, DType act, int m, int n, cudaStream_t st)
{
    size_t total = (size_t)m * n;
    if (!total) return;
    k_bias_rows<<<cuda_grid_1d(total, EW_THREADS), EW_THREADS, 0, st>>>(y, bias, act == DTYPE_BF16, m, n);
    CUDA_CHECK_LAUNCH();
}

/* fp16 / bf16 -> fp32, exact (the int8 LM head's fp16 logits for the sampler) */
__global__ void k_widen(float *__restrict__ y, const uint16_t *__restrict__ x, size_t n, int bf16)
{
    GRID_STRIDE(i, n) y[i] = act_load(x[i], bf16);
}

extern "C" void cuda_widen(float *y, const uint16_t *x, size_t n, DType act, cudaStream_t st)
{
    if (!n) return;
    k_widen<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, st>>>(y, x, n, act == DTYPE_BF16);
    CUDA_CHECK_LAUNCH();
}

/* finite_mark (backend.h): rec[0] = the first row holding an inf or NaN (exponent bits all set: fp16
 * 0x7c00, bf16 0x7f80), rec[1] = the smallest tag that found one; INT_MAX in both when none. Only a
 * non-finite value writes (an atomicMin), so a finite step costs one read of rows x dim values. */
__global__ void k_finite_mark(const uint16_t *__restrict__ x, size_t n, int dim, uint16_t e, int tag, int *rec)
{
    GRID_STRIDE(i, n)
    {
        if ((x[i] & e) == e) {
            atomicMin(rec, (int)(i / (size_t)dim));
            atomicMin(rec + 1, tag);
        }
    }
}

__global__ void k_finite_reset(int *rec) { rec[0] = rec[1] = 0x7fffffff; }

extern "C" void cuda_finite_mark(const uint16_t *x, int rows, int dim, DType act, int tag, int *rec, cudaStream_t st)
{
    size_t n = (size_t)rows * dim;
    if (!n) return;
    const uint16_t e = act == DTYPE_BF16 ? 0x7f80 : 0x7c00;
    k_finite_mark<<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, st>>>(x, n, dim, e, tag, rec);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_finite_reset(int *rec, cudaStream_t st)
{
    k_finite_reset<<<1, 1, 0, st>>>(rec);
    CUDA_CHECK_LAUNCH();
}
