/* Causal attention of the CUDA backend for one micro-batch: every row's k/v go into the KV cache at
 * [slot][h][pos] first, then one block per (row, head) computes fp32 scores score_scale * (q . k_j)
 * (+ alibi[h] * j) for j = 0..pos, a max-subtracted fp32 softmax (expf) and out = (sum_j p_j v_j) * (1 / sum_j p_j)
 * rounded once. The CPU's online softmax and 16-lane dots differ in order: equal within a tolerance only.
 * No flash tiling: one row's scores live in shared memory (max_seq floats). */
#include "cuda_internal.cuh"

#define ATT_THREADS 128
#define KV_THREADS 128

__global__ void k_attn_write_kv(AttnArgs a)
{
    const int r = blockIdx.x, H = a.heads, E = a.head_dim;
    const size_t slot = (size_t)a.slot[r], pos = (size_t)a.pos[r];
    for (int i = threadIdx.x; i < H * E; i += blockDim.x) {
        int h = i / E, e = i % E;
        size_t src = (size_t)r * a.row_stride + (size_t)h * a.head_stride + e;
        size_t dst = ((slot * H + h) * (size_t)a.max_seq + pos) * E + e;
        a.k_cache[dst] = a.k[src];
        a.v_cache[dst] = a.v[src];
    }
}

__global__ void __launch_bounds__(ATT_THREADS) k_attn(AttnArgs a)
{
    extern __shared__ float sm[]; /* q (E), then the scores / probabilities of positions 0..pos */
    __shared__ float red[32];
    const int H = a.heads, E = a.head_dim, r = blockIdx.x / H, h = blockIdx.x % H;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const int bf16 = a.act == DTYPE_BF16, pos = a.pos[r];
    float *q = sm, *p = sm + E;
    const uint16_t *qg = a.q + (size_t)r * a.row_stride + (size_t)h * a.head_stride;
    for (int e = threadIdx.x; e < E; e += blockDim.x) q[e] = act_load(qg[e], bf16);
    __syncthreads();

    const size_t base = ((size_t)a.slot[r] * H + h) * (size_t)a.max_seq * E;
    const uint16_t *kc = a.k_cache + base, *vc = a.v_cache + base;
    /* scores: one warp per key, lanes across the head dimension */
    float mloc = -INFINITY;
    for (int j = warp; j <= pos; j += nwarps) {
        const uint16_t *kj = kc + (size_t)j * E;
        float d = 0.0f;
        for (int e = lane; e < E; e += 32) d = pp8_add(d, pp8_mul(q[e], act_load(kj[e], bf16)));
        d = warp_sum(d);
        float s = pp8_mul(a.score_scale, d);
        if (a.alibi) s = pp8_add(s, pp8_mul(a.alibi[h], (float)j)); /* BLOOM: alibi[h] * j */
        if (lane == 0) p[j] = s;
        mloc = fmaxf(mloc, s);
    }
    const float m = block_max(mloc, red); /* its barriers also publish p[] */
    float lsum = 0.0f;
    for (int j = threadIdx.x; j <= pos; j += blockDim.x) {
        float e = expf(pp8_add(p[j], -m));
        p[j] = e;
        lsum = pp8_add(lsum, e);
    }
    const float l = block_sum(lsum, red); /* and these publish the probabilities */
    const float inv = pp8_div(1.0f, l);
    uint16_t *out = a.out + (size_t)r * H * E + (size_t)h * E;
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j <= pos; j++) acc = pp8_add(acc, pp8_mul(p[j], act_load(vc[(size_t)j * E + e], bf16)));
        out[e] = act_store(pp8_mul(acc, inv), bf16);
    }
}

extern "C" void cuda_attention(const AttnArgs *a, cudaStream_t st)
{
    if (a->rows <= 0 || a->heads <= 0 || a->head_dim <= 0) return;
    PP8_CHECK(a->max_seq > 0, "attention: max_seq must be positive");
    k_attn_write_kv<<<a->rows, KV_THREADS, 0, st>>>(*a);
    CUDA_CHECK_LAUNCH();

    /* scores in dynamic shared memory: opt in (once per larger size) beyond the 48 KiB default; the
     * attribute counts dynamic bytes only, the 32-float static reduction scratch comes on top */
    size_t smem = cuda_attn_smem_bytes(a->head_dim, a->max_seq);
    static size_t s_set = 0;
    if (smem > s_set) {
        int dev = 0, maxopt = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&maxopt, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        PP8_CHECK(smem + 32 * sizeof(float) <= (size_t)maxopt,
                  "attention: head_dim + max_seq too large for the scores in this GPU's shared memory");
        CUDA_CHECK(cudaFuncSetAttribute(k_attn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        s_set = smem;
    }
    unsigned blocks = (unsigned)a->rows * (unsigned)a->heads;
    k_attn<<<blocks, ATT_THREADS, smem, st>>>(*a);
    CUDA_CHECK_LAUNCH();
}
