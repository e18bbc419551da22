/* Row lookups of the CUDA backend: the token embedding (plus OPT's learned positions, added in fp32 and
 * rounded once, exactly as the CPU does) and gather_rows. Token ids, positions and indices are device
 * memory like every other operand. Neither checks indices: the runtime validates token ids on the host.
 * gather_rows' source and destination must not overlap (rows are copied in parallel). */
#include "cuda_internal.cuh"

#define ROW_THREADS 256

__global__ void k_embed(uint16_t *__restrict__ x, const int32_t *__restrict__ tokens, const int32_t *__restrict__ pos,
                        const uint16_t *__restrict__ table, const uint16_t *__restrict__ pos_table, int pos_offset,
                        int dim, int bf16)
{
    const int r = blockIdx.x;
    const uint16_t *e = table + (size_t)tokens[r] * dim;
    uint16_t *o = x + (size_t)r * dim;
    if (!pos_table) {
        for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = e[i];
        return;
    }
    const uint16_t *p = pos_table + (size_t)(pos[r] + pos_offset) * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        o[i] = act_store(pp8_add(act_load(e[i], bf16), act_load(p[i], bf16)), bf16);
}

/* one block per destination row; `width` bytes per copy (16, 8, 4, 2 or 1), chosen on the host */
__global__ void k_gather_rows(char *__restrict__ dst, const char *__restrict__ src, const int32_t *__restrict__ idx,
                              size_t row_bytes, int width)
{
    char *d = dst + (size_t)blockIdx.x * row_bytes;
    const char *s = src + (size_t)idx[blockIdx.x] * row_bytes;
    size_t units = row_bytes / (size_t)width;
    for (size_t u = threadIdx.x; u < units; u += blockDim.x) {
        switch (width) {
        case 16: ((int4 *)d)[u] = ((const int4 *)s)[u]; break;
        case 8: ((int2 *)d)[u] = ((const int2 *)s)[u]; break;
        case 4: ((int *)d)[u] = ((const int *)s)[u]; break;
        case 2: ((short *)d)[u] = ((const short *)s)[u]; break;
        default: d[u] = s[u]; break;
        }
    }
}

extern "C" void cuda_embed(uint16_t *x, const int32_t *tokens, const int32_t *pos, int rows, const uint16_t *table,
                           const uint16_t *pos_table, int pos_offset, int dim, DType act, cudaStream_t st)
{
    if (rows <= 0 || dim <= 0) return;
    k_embed<<<rows, ROW_THREADS, 0, st>>>(x, tokens, pos, table, pos_table, pos_offset, dim, act == DTYPE_BF16);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_gather_rows(void *dst, const void *src, const int32_t *idx, int n, size_t row_bytes,
                                 cudaStream_t st)
{
    if (n <= 0 || row_bytes == 0) return;
    int width = cuda_copy_width((uintptr_t)dst, (uintptr_t)src, row_bytes);
    k_gather_rows<<<n, ROW_THREADS, 0, st>>>((char *)dst, (const char *)src, idx, row_bytes, width);
    CUDA_CHECK_LAUNCH();
}
