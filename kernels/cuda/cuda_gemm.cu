/* cuBLASLt GEMMs of the CUDA backend: one handle, one workspace (sized once by reserve) and a cache of
 * plans (descriptors + the heuristic's algorithm) per (dtypes, M, N, K, pointer alignments), so the
 * heuristic runs once per shape (cuBLAS doc 3.1.2). Layouts come from cuda_gemm_describe (plain C,
 * unit-tested): bitsandbytes' "TN" call on row-major buffers. It does no quantization or epilogue and
 * never falls back silently: a shape cuBLASLt refuses is a fatal error naming the shape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"

typedef struct GemmPlan {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} GemmPlan;

struct CudaGemm {
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
    CudaPlanCache cache;
    GemmPlan plan[CUDA_PLAN_SLOTS];
};

static cudaDataType_t gemm_data_type(CudaMatType t)
{
    switch (t) {
    case CUDA_MAT_I8: return CUDA_R_8I;
    case CUDA_MAT_I32: return CUDA_R_32I;
    case CUDA_MAT_F16: return CUDA_R_16F;
    case CUDA_MAT_BF16: return CUDA_R_16BF;
    case CUDA_MAT_F32: return CUDA_R_32F;
    }
    PP8_CHECK(0, "unknown matrix type");
    return CUDA_R_32F;
}

static void gemm_plan_destroy(GemmPlan *p)
{
    /* safe right after an enqueue: the descriptors are host objects (CUDALibrarySamples LtIgemmTensor) */
    if (p->c) CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->c));
    if (p->b) CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->b));
    if (p->a) CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->a));
    if (p->op) CUBLAS_CHECK(cublasLtMatmulDescDestroy(p->op));
    memset(p, 0, sizeof *p);
}

static void gemm_plan_build(CudaGemm *g, GemmPlan *p, const CudaGemmDesc *d, const CudaGemmKey *key)
{
    cublasComputeType_t ct = d->compute == CUDA_COMPUTE_32I ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F;
    cudaDataType_t scale = d->compute == CUDA_COMPUTE_32I ? CUDA_R_32I : CUDA_R_32F;
    cublasOperation_t ta = d->transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = d->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, ct, scale));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, gemm_data_type(d->a.type), d->a.rows, d->a.cols, d->a.ld));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, gemm_data_type(d->b.type), d->b.rows, d->b.cols, d->b.ld));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, gemm_data_type(d->c.type), d->c.rows, d->c.cols, d->c.ld));

    /* MIN_ALIGNMENT defaults to 256 bytes; ask only for what these pointers really have, so the algorithm
     * chosen never assumes more (micro-batch slices and arena offsets are not 256-aligned) */
    cublasLtMatmulPreference_t pref;
    uint64_t ws = g->ws_bytes;
    uint32_t al_a = (uint32_t)key->align_a, al_b = (uint32_t)key->align_b, al_c = (uint32_t)key->align_c;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
    CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c));
    /* split-K partial sums only in the compute type (fp32): the default also allows reductions in the
     * output type (INPLACE, OUTPUT_TYPE), which would round a bf16/fp16 D once per split (cublasLt.h) */
    uint32_t red = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red));

    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    memset(&res, 0, sizeof res);
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &nres));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (nres < 1 || res.state != CUBLAS_STATUS_SUCCESS || res.workspaceSize > g->ws_bytes) {
        char msg[256];
        snprintf(
            msg, sizeof msg,
            "cuBLASLt has no algorithm for %s x %s -> %s, M=%d N=%d K=%d, alignments %d/%d/%d bytes, workspace %zu",
            dtype_name((DType)key->in), dtype_name((DType)key->in), dtype_name((DType)key->out), key->m, key->n, key->k,
            key->align_a, key->align_b, key->align_c, g->ws_bytes);
        pp8_fatal(__FILE__, __LINE__, __func__, msg, "cublasLtMatmulAlgoGetHeuristic");
    }
    p->algo = res.algo;
}

extern "C" CudaGemm *cuda_gemm_create(void)
{
    CudaGemm *g = (CudaGemm *)calloc(1, sizeof *g);
    PP8_CHECK(g, "out of memory");
    /* tied to the current device (cuBLAS doc 3.4.1); created once, cublasLtDestroy syncs the device */
    CUBLAS_CHECK(cublasLtCreate(&g->lt));
    cuda_plan_cache_init(&g->cache);
    return g;
}

extern "C" void cuda_gemm_set_workspace(CudaGemm *g, void *ws, size_t bytes)
{
    /* plans were chosen under the old workspace limit: rebuild them */
    for (int i = 0; i < CUDA_PLAN_SLOTS; i++) gemm_plan_destroy(&g->plan[i]);
    cuda_plan_cache_init(&g->cache);
    g->ws = ws;
    g->ws_bytes = bytes;
}

extern "C" void cuda_gemm_run(CudaGemm *g, DType in, DType out, int m, int n, int k, const void *w, const void *x,
                              void *y, int accumulate, cudaStream_t st)
{
    CudaGemmDesc d;
    PP8_CHECK(cuda_gemm_describe(&d, in, out, m, n, k) == 0, "GEMM dtype combination or shape not supported");
    PP8_CHECK(g->ws, "reserve() was not called before the first GEMM");
    CudaGemmKey key;
    memset(&key, 0, sizeof key);
    key.in = in;
    key.out = out;
    key.m = m;
    key.n = n;
    key.k = k;
    key.align_a = (int)cuda_ptr_align((uintptr_t)w);
    key.align_b = (int)cuda_ptr_align((uintptr_t)x);
    key.align_c = (int)cuda_ptr_align((uintptr_t)y);
    int fresh = 0, evicted = 0;
    int s = cuda_plan_cache_find(&g->cache, &key, &fresh, &evicted);
    GemmPlan *p = &g->plan[s];
    if (evicted) gemm_plan_destroy(p);
    if (fresh) gemm_plan_build(g, p, &d, &key);

    /* HOST pointer mode: alpha/beta live on the stack (cuBLAS doc 2.1.5) */
    if (d.compute == CUDA_COMPUTE_32I) {
        PP8_CHECK(!accumulate, "int8 GEMMs overwrite their int32 output");
        int32_t alpha = 1, beta = 0;
        CUBLAS_CHECK(cublasLtMatmul(g->lt, p->op, &alpha, w, p->a, x, p->b, &beta, y, p->c, y, p->c, &p->algo, g->ws,
                                    g->ws_bytes, st));
    } else {
        /* D = 1 * acc + beta * C in fp32, converted to D's type once (cublasLt.h, SCALE_TYPE) */
        float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
        CUBLAS_CHECK(cublasLtMatmul(g->lt, p->op, &alpha, w, p->a, x, p->b, &beta, y, p->c, y, p->c, &p->algo, g->ws,
                                    g->ws_bytes, st));
    }
}

extern "C" void cuda_gemm_destroy(CudaGemm *g)
{
    if (!g) return;
    for (int i = 0; i < CUDA_PLAN_SLOTS; i++) gemm_plan_destroy(&g->plan[i]);
    CUBLAS_CHECK(cublasLtDestroy(g->lt));
    free(g);
}
