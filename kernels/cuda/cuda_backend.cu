/* The CUDA backend: backend.h's vtable on one device and one non-blocking stream. Memory, reserve()
 * (every scratch buffer and the cuBLASLt workspace, sized once: no cudaMalloc in the token loop), and the
 * linear layers: LLM.int8() (quantize -> int8 GEMV or cuBLASLt IMMA -> dequant -> outlier part) and the
 * fp16/bf16 cuBLASLt baseline. The other ops are thin calls into one .cu file per op family. It never
 * selects the device for a rank (cuda_pick_device in cuda_host.c does) and knows nothing of NCCL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"

#define CUDA_GRAPH_SLOTS 16 /* decode row counts of the micro-batches in flight, per RunState */
#define CUDA_TIMERS 4096    /* --profile: two per timed op of a step (forward.h PROF_PENDING) */

typedef struct CudaCtx {
    int device, cc_major, cc_minor, sms; /* sms: multiprocessors */
    cudaStream_t stream;
    CudaGemm *gemm;
    /* scratch from reserve(); cuda_scratch_plan says how large */
    CudaScratchPlan plan;
    int max_rows, max_k, max_n;
    void *workspace;
    int8_t *ca;      /* (max_rows, max_k) */
    float *sca;      /* (max_rows) */
    uint8_t *flags;  /* (max_k) */
    int32_t *cols;   /* (max_k) ascending outlier columns, then the count at cols[max_k] */
    int32_t *c32;    /* (plan.c32_elems) int32 products, reused as fp32 outlier sums */
    uint16_t *xo;    /* (max_rows, chunk) */
    uint16_t *wd;    /* (max_n, chunk) */
    int *ncols_host; /* pinned: the outlier count the cuBLASLt path needs on the host */
    cudaEvent_t ncols_ready;
    cudaEvent_t *timers; /* (CUDA_TIMERS) --profile's timestamps, created at the first timer_record */
    int ntimers;         /* used since the last timer_reset */
    int *fin_rec;      /* (2) device: finite_mark's record since the last fetch */
    int *fin_host;     /* (2) pinned: the fetched record */
    cudaEvent_t fin_ready;
    /* graph_run's captured graphs, least recently used replaced */
    struct {
        uint64_t key;
        cudaGraphExec_t exec;
        unsigned long used;
    } graphs[CUDA_GRAPH_SLOTS];
    unsigned long graph_clock;
    int graphs_off; /* PP8_CUDA_GRAPHS=0, or after a capture failed */
    CudaKernels kernels; /* PP8_CUDA_KERNELS: v1 (default) or v2 (cuda_v2.cu) */
    CudaMemMeter mem;    /* every cudaMalloc below, by pointer (backend_cuda_mem_stats) */
    size_t used_at_create, used_peak, mem_total; /* cudaMemGetInfo: in use at creation, the most added since */
} CudaCtx;

extern "C" void cuda_fatal(const char *file, int line, const char *func, const char *lib, const char *name,
                           const char *what, const char *stmt)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s error %s: %s", lib, name ? name : "?", what ? what : "?");
    pp8_fatal(file, line, func, msg, stmt);
}

/* ---- memory ---- */
/* cudaMalloc counted in c->mem; NULL when the GPU is out of memory (the sticky-free error cleared) */
static void *dev_malloc(CudaCtx *c, size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        return NULL;
    }
    CUDA_CHECK(e);
    (void)cuda_mem_meter_add(&c->mem, p, bytes ? bytes : 256); /* a block it cannot hold goes uncounted */
    return p;
}

static void dev_free(CudaCtx *c, void *p)
{
    if (!p) return;
    (void)cuda_mem_meter_remove(&c->mem, p);
    CUDA_CHECK(cudaFree(p));
}

/* what this rank added to its GPU since the backend was created, as cudaMemGetInfo sees it, into
 * used_peak (cudaMemGetInfo counts the whole GPU: ranks sharing it add theirs) */
static void mem_sample(CudaCtx *c)
{
    size_t free_b = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
    size_t used = total - free_b, added = used > c->used_at_create ? used - c->used_at_create : 0;
    if (added > c->used_peak) c->used_peak = added;
}

static void *cu_alloc(void *ctx, size_t bytes)
{
    return dev_malloc((CudaCtx *)ctx, bytes); /* NULL: the caller reports "does not fit" */
}

static void cu_free(void *ctx, void *p) { dev_free((CudaCtx *)ctx, p); }

static int cu_is_device(const void *p)
{
    cudaPointerAttributes at;
    if (cudaPointerGetAttributes(&at, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return at.type == cudaMemoryTypeDevice || at.type == cudaMemoryTypeManaged;
}

/* cudaMemcpyDefault: either side may be host or device memory (unified addressing), so the runtime can
 * also copy device -> device with to_device. A copy that touches host memory returns when it is done
 * (the host buffer may be reused at once); device -> device only enqueues. bytes == 0: a stream sync. */
static void cu_copy(CudaCtx *c, void *dst, const void *src, size_t bytes)
{
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, c->stream));
    if (!bytes || !cu_is_device(dst) || !cu_is_device(src)) CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

static void cu_to_device(void *ctx, void *dst, const void *src, size_t bytes)
{
    cu_copy((CudaCtx *)ctx, dst, src, bytes);
}
static void cu_to_host(void *ctx, void *dst, const void *src, size_t bytes)
{
    cu_copy((CudaCtx *)ctx, dst, src, bytes);
}

static void cu_sync(void *ctx) { CUDA_CHECK(cudaStreamSynchronize(((CudaCtx *)ctx)->stream)); }

static void scratch_free(CudaCtx *c)
{
    void *bufs[] = {c->workspace, c->ca, c->sca, c->flags, c->cols, c->c32, c->xo, c->wd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dev_free(c, bufs[i]);
    c->workspace = NULL, c->ca = NULL, c->sca = NULL, c->flags = NULL, c->cols = NULL, c->c32 = NULL;
    c->xo = NULL, c->wd = NULL;
}

static void *scratch_alloc(CudaCtx *c, size_t bytes)
{
    void *p = dev_malloc(c, bytes);
    if (!p)
        pp8_fatal(__FILE__, __LINE__, __func__,
                  "out of GPU memory for the CUDA "
                  "backend's scratch (the planner's reserve was too small)",
                  "cudaMalloc");
    return p;
}

static void cu_reserve(void *ctx, int max_rows, int max_k, int max_n)
{
    CudaCtx *c = (CudaCtx *)ctx;
    if (c->workspace && max_rows <= c->max_rows && max_k <= c->max_k && max_n <= c->max_n) return;
    if (c->workspace) { /* growing: keep the larger of old and new; happens before the token loop only */
        if (c->max_rows > max_rows) max_rows = c->max_rows;
        if (c->max_k > max_k) max_k = c->max_k;
        if (c->max_n > max_n) max_n = c->max_n;
    }
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    scratch_free(c);
    cuda_scratch_plan(&c->plan, c->cc_major, max_rows, max_k, max_n);
    c->max_rows = max_rows > 0 ? max_rows : 1;
    c->max_k = max_k > 0 ? max_k : 1;
    c->max_n = max_n > 0 ? max_n : 1;
    c->workspace = scratch_alloc(c, c->plan.workspace);
    c->ca = (int8_t *)scratch_alloc(c, c->plan.ca);
    c->sca = (float *)scratch_alloc(c, c->plan.sca);
    c->flags = (uint8_t *)scratch_alloc(c, c->plan.flags);
    c->cols = (int32_t *)scratch_alloc(c, c->plan.cols);
    c->c32 = (int32_t *)scratch_alloc(c, c->plan.c32);
    c->xo = (uint16_t *)scratch_alloc(c, c->plan.xo);
    c->wd = (uint16_t *)scratch_alloc(c, c->plan.wd);
    cuda_gemm_set_workspace(c->gemm, c->workspace, c->plan.workspace);
    mem_sample(c);
}

/* ---- linear layers ---- */
static size_t cu_linear_bytes(void *ctx, DType wdt, int n, int k)
{
    (void)ctx;
    return cuda_linear_bytes(wdt, n, k);
}

/* Row-major [N, K] as given (int8 CB + SCB, or the 16-bit W): both the GEMV and cuBLASLt's TN call read
 * exactly this layout, so packing is a copy. */
static void cu_linear_pack(void *ctx, Linear *w, const void *rowmajor, const float *scb)
{
    CudaCtx *c = (CudaCtx *)ctx;
    size_t bytes = cuda_linear_bytes(w->wdt, w->n, w->k);
    PP8_CHECK(bytes > 0, "linear_pack: weight dtype must be I8, F16 or BF16 and N, K positive");
    PP8_CHECK(w->w, "linear_pack: w->w was not allocated (linear_bytes)");
    cu_copy(c, w->w, rowmajor, bytes);
    if (w->wdt == DTYPE_I8) {
        PP8_CHECK(scb && w->scb, "linear_pack: int8 weights need SCB (host) and w->scb (device)");
        PP8_CHECK(w->k < 133144, "linear_pack: int8 K >= 133144 would overflow the exact int32 accumulator");
        cu_copy(c, w->scb, scb, sizeof(float) * (size_t)w->n);
    }
}

static void check_scratch(const CudaCtx *c, int rows, int k, int n)
{
    PP8_CHECK(c->workspace, "reserve() was not called before linear");
    PP8_CHECK(rows <= c->max_rows && k <= c->max_k && n <= c->max_n,
              "linear larger than reserve(max_rows, max_k, max_n)");
}

/* LLM.int8() (DESIGN.md): outlier columns and CA/SCA for the whole micro-batch, then either the GEMV
 * kernel (product + dequant + outlier part in ascending column order: the CPU's bits) or cuBLASLt:
 * int8 IMMA -> int32, dequant to Y1, and the outlier columns as an fp16 x fp16 -> fp32 cuBLASLt product
 * whose sum k_int8_outlier_finish adds to Y1 with one rounding. cuBLAS's fp32 summation order is
 * unspecified, so on rows with outlier columns the cuBLASLt path may differ from the CPU by one fp16 ulp;
 * the int8 part (exact int32) and every row of a product without outliers are bit-exact. */
static void linear_int8(CudaCtx *c, const Linear *w, const uint16_t *x, int rows, uint16_t *y, float t)
{
    const int n = w->n, k = w->k;
    cudaStream_t st = c->stream;
    int32_t *ncols_dev = c->cols + c->max_k;
    /* IMMA also needs 4-byte aligned pointers; the runtime's arena gives 64, but never fail on it */
    const int gemv = cuda_int8_use_gemv(rows, n, k) || ((uintptr_t)w->w & 3);
    /* v2: the same bits from other kernels where they take the shape (the part maxima live in c32, which
     * the GEMV path does not use) */
    const int v2 = c->kernels == CUDA_KERNELS_V2 && rows <= CUDA_GEMV_MAX_ROWS &&
                   (size_t)cuda_quant2_blocks(k) * CUDA_GEMV_MAX_ROWS <= c->plan.c32_elems;
    if (!v2 || !cuda_int8_quantize_v2(x, rows, k, t, c->flags, c->cols, ncols_dev, c->ca, c->sca, (float *)c->c32, st))
        cuda_int8_quantize(x, rows, k, t, c->flags, c->cols, ncols_dev, c->ca, c->sca, st);
    if (gemv) {
        if (v2 && cuda_int8_gemv_v2((const int8_t *)w->w, w->scb, w->bias, c->ca, c->sca, x, c->cols, ncols_dev, rows,
                                    n, k, y, c->sms, st))
            return;
        cuda_int8_gemv((const int8_t *)w->w, w->scb, w->bias, c->ca, c->sca, x, c->cols, ncols_dev, rows, n, k, y,
                       c->sms, st);
        return;
    }
    int has_outliers = t > 0.0f;
    if (has_outliers) { /* the count is needed on the host to size the outlier GEMMs */
        CUDA_CHECK(cudaMemcpyAsync(c->ncols_host, ncols_dev, sizeof(int32_t), cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaEventRecord(c->ncols_ready, st));
    }
    int ncols = -1;
    const int rb = cuda_rows_per_block(c->plan.c32_elems, rows, n);
    for (int r0 = 0; r0 < rows; r0 += rb) {
        const int nr = rows - r0 < rb ? rows - r0 : rb;
        const int8_t *ca = c->ca + (size_t)r0 * k;
        uint16_t *yb = y + (size_t)r0 * n;
        cuda_gemm_run(c->gemm, DTYPE_I8, DTYPE_I32, nr, n, k, w->w, ca, c->c32, 0, st); /* step 1 */
        cuda_int8_dequant(c->c32, c->sca + r0, w->scb, w->bias, nr, n, yb, st);         /* step 2 */
        if (!has_outliers) continue;
        if (ncols < 0) { /* waits only for the quantization, not for the GEMM just enqueued */
            CUDA_CHECK(cudaEventSynchronize(c->ncols_ready));
            ncols = *c->ncols_host;
            PP8_CHECK(ncols >= 0 && ncols <= k, "outlier column count out of range");
        }
        if (ncols == 0) continue;
        float *sum = (float *)c->c32; /* the int32 products are consumed by the dequant above */
        int c0, nc, kpad;
        for (int i = 0; (kpad = cuda_outlier_chunk_cols(ncols, c->plan.chunk, i, &c0, &nc)) > 0; i++) {
            cuda_int8_gather_x(x + (size_t)r0 * k, nr, k, c->cols, c0, nc, kpad, c->xo, st);
            cuda_int8_gather_wd((const int8_t *)w->w, w->scb, n, k, c->cols, c0, nc, kpad, c->wd, st); /* step 3 */
            cuda_gemm_run(c->gemm, DTYPE_F16, DTYPE_F32, nr, n, kpad, c->wd, c->xo, sum, i > 0, st);
        }
        cuda_int8_outlier_finish(yb, sum, (size_t)nr * n, st); /* step 4: Y = fp16(Y1 + sum) */
    }
}

static void cu_linear(void *ctx, const Linear *w, const uint16_t *x, int rows, DType act, void *y, DType ydt,
                      float threshold)
{
    CudaCtx *c = (CudaCtx *)ctx;
    if (rows <= 0) return;
    check_scratch(c, rows, w->k, w->n);
    if (w->wdt == DTYPE_I8) {
        PP8_CHECK(act == DTYPE_F16 && ydt == DTYPE_F16, "LLM.int8() takes and returns fp16 activations");
        linear_int8(c, w, x, rows, (uint16_t *)y, threshold);
        return;
    }
    PP8_CHECK(w->wdt == act, "16-bit linear: weights and activations must have the same dtype");
    PP8_CHECK(ydt == act || ydt == DTYPE_F32, "16-bit linear: output must be the activation dtype or F32");
    if (c->kernels == CUDA_KERNELS_V2 && cuda_gemv16_v2((const uint16_t *)w->w, w->bias, x, act, rows, w->n, w->k, y,
                                                        ydt, c->sms, c->stream))
        return; /* few rows: the v2 GEMV, bias and the one rounding in its epilogue */
    /* y = x W^T + b with one rounding. fp32 y: b is C of a beta = 1 GEMM. 16-bit y: the fp32 product goes
     * to scratch and k_bias_round adds b and rounds once. A bf16 beta = 1 GEMM with C = b was seen on an
     * H100 to round twice (up to 3 bf16 ulps off at M=5 N=96 K=128, test_gpu_ops), even with split-K
     * reductions limited to the compute type, so cuBLASLt's C is not trusted with a 16-bit D. */
    if (!w->bias || ydt == DTYPE_F32) {
        if (w->bias) cuda_bias_rows((float *)y, w->bias, act, rows, w->n, c->stream);
        cuda_gemm_run(c->gemm, act, ydt, rows, w->n, w->k, w->w, x, y, w->bias != NULL, c->stream);
        return;
    }
    float *acc = (float *)c->c32;
    const int n = w->n, k = w->k, rb = cuda_rows_per_block(c->plan.c32_elems, rows, n);
    for (int r0 = 0; r0 < rows; r0 += rb) {
        const int nr = rows - r0 < rb ? rows - r0 : rb;
        cuda_gemm_run(c->gemm, act, DTYPE_F32, nr, n, k, w->w, x + (size_t)r0 * k, acc, 0, c->stream);
        cuda_bias_round((uint16_t *)y + (size_t)r0 * n, acc, w->bias, act, nr, n, c->stream);
    }
}

/* ---- inf/NaN (backend.h finite_*): the record stays on the device until a fetch copies it behind the
 * step's ops; the host reads it after the step's own sync (a decode step's graph holds the marks, and no
 * wait is added for them) ---- */
static void cu_finite_mark(void *ctx, const uint16_t *x, int rows, int dim, DType act, int tag)
{
    CudaCtx *c = (CudaCtx *)ctx;
    cuda_finite_mark(x, rows, dim, act, tag, c->fin_rec, c->stream);
}

static void cu_finite_fetch(void *ctx)
{
    CudaCtx *c = (CudaCtx *)ctx;
    CUDA_CHECK(cudaMemcpyAsync(c->fin_host, c->fin_rec, 2 * sizeof(int), cudaMemcpyDeviceToHost, c->stream));
    cuda_finite_reset(c->fin_rec, c->stream);
    CUDA_CHECK(cudaEventRecord(c->fin_ready, c->stream));
}

static int cu_finite_result(void *ctx, int *row, int *tag)
{
    CudaCtx *c = (CudaCtx *)ctx;
    CUDA_CHECK(cudaEventSynchronize(c->fin_ready)); /* done already after the step's sync */
    if (c->fin_host[0] == 0x7fffffff) return 0;
    *row = c->fin_host[0], *tag = c->fin_host[1];
    return 1;
}

/* ---- --profile's timers (backend.h timer_*): events on the stream, read once the step is done ---- */
static int cu_timer_record(void *ctx)
{
    CudaCtx *c = (CudaCtx *)ctx;
    if (!c->timers) {
        c->timers = (cudaEvent_t *)calloc(CUDA_TIMERS, sizeof *c->timers);
        PP8_CHECK(c->timers, "out of memory for --profile's CUDA events");
        for (int i = 0; i < CUDA_TIMERS; i++) CUDA_CHECK(cudaEventCreate(&c->timers[i]));
    }
    if (c->ntimers == CUDA_TIMERS) return -1;
    CUDA_CHECK(cudaEventRecord(c->timers[c->ntimers], c->stream));
    return c->ntimers++;
}

static double cu_timer_ms(void *ctx, int e0, int e1)
{
    CudaCtx *c = (CudaCtx *)ctx;
    PP8_CHECK(c->timers && e0 >= 0 && e1 >= 0 && e0 < c->ntimers && e1 < c->ntimers, "timer_ms: no such timestamp");
    CUDA_CHECK(cudaEventSynchronize(c->timers[e1]));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, c->timers[e0], c->timers[e1]));
    return ms;
}

static void cu_timer_reset(void *ctx) { ((CudaCtx *)ctx)->ntimers = 0; }

static const char *cu_linear_path(void *ctx, DType wdt, int rows)
{
    if (((CudaCtx *)ctx)->kernels == CUDA_KERNELS_V2) { /* where the shape allows (16-byte rows, aligned) */
        if (wdt == DTYPE_I8 && rows <= CUDA_GEMV_MAX_ROWS) return "cuda-int8-gemv-v2";
        if ((wdt == DTYPE_BF16 || wdt == DTYPE_F16) && rows <= CUDA_GEMV16_MAX_ROWS)
            return wdt == DTYPE_BF16 ? "cuda-bf16-gemv-v2" : "cuda-f16-gemv-v2";
    }
    if (wdt == DTYPE_I8) return rows <= CUDA_GEMV_MAX_ROWS ? "cuda-int8-gemv-dp4a" : "cuda-int8-cublaslt-imma";
    if (wdt == DTYPE_BF16) return "cuda-bf16-cublaslt";
    if (wdt == DTYPE_F16) return "cuda-f16-cublaslt";
    return "?";
}

/* ---- the other ops ---- */
static void cu_embed(void *ctx, uint16_t *x, const int32_t *tokens, const int32_t *pos, int rows, const uint16_t *table,
                     const uint16_t *pos_table, int pos_offset, int dim, DType act)
{
    cuda_embed(x, tokens, pos, rows, table, pos_table, pos_offset, dim, act, ((CudaCtx *)ctx)->stream);
}

static void cu_layernorm(void *ctx, uint16_t *y, const uint16_t *x, const uint16_t *g, const uint16_t *b, int rows,
                         int dim, float eps, DType act)
{
    CudaCtx *c = (CudaCtx *)ctx;
    if (c->kernels == CUDA_KERNELS_V2 && cuda_layernorm_v2(y, x, g, b, rows, dim, eps, act, c->stream)) return;
    cuda_layernorm(y, x, g, b, rows, dim, eps, act, c->stream);
}

static void cu_attention(void *ctx, const AttnArgs *a) { cuda_attention(a, ((CudaCtx *)ctx)->stream); }

static void cu_gelu(void *ctx, uint16_t *x, size_t n, DType act) { cuda_gelu(x, n, act, ((CudaCtx *)ctx)->stream); }

static void cu_relu(void *ctx, uint16_t *x, size_t n, DType act)
{
    (void)act;
    cuda_relu(x, n, ((CudaCtx *)ctx)->stream);
}

static void cu_add(void *ctx, uint16_t *y, const uint16_t *a, const uint16_t *b, size_t n, DType act)
{
    cuda_add(y, a, b, n, act, ((CudaCtx *)ctx)->stream);
}

static void cu_gather_rows(void *ctx, void *dst, const void *src, const int32_t *idx, int n, size_t row_bytes)
{
    cuda_gather_rows(dst, src, idx, n, row_bytes, ((CudaCtx *)ctx)->stream);
}

static void cu_widen(void *ctx, float *y, const uint16_t *x, size_t n, DType act)
{
    cuda_widen(y, x, n, act, ((CudaCtx *)ctx)->stream);
}

/* ---- CUDA graphs: a decode step of a few rows is hundreds of short kernels; captured once per key and
 * replayed, they launch as one (10-14% off OPT-1.3B's batch-1 step on an H100, README "One GPU"). Only up
 * to CUDA_GEMV_MAX_ROWS rows: beyond, the int8 product takes cuBLASLt with a host wait for the outlier
 * count, which a capture cannot hold. Capture mode relaxed: the ops may set kernel attributes and query
 * the device; nothing in them synchronizes with the host at these row counts. */
static void cu_graph_reset(void *ctx)
{
    CudaCtx *c = (CudaCtx *)ctx;
    CUDA_CHECK(cudaStreamSynchronize(c->stream)); /* no replay still running on what is about to go */
    for (int i = 0; i < CUDA_GRAPH_SLOTS; i++) {
        if (c->graphs[i].exec) CUDA_CHECK(cudaGraphExecDestroy(c->graphs[i].exec));
        c->graphs[i].exec = NULL;
    }
}

static int cu_graph_run(void *ctx, uint64_t key, int rows, void (*fn)(void *), void *arg)
{
    CudaCtx *c = (CudaCtx *)ctx;
    if (c->graphs_off || rows > CUDA_GEMV_MAX_ROWS) return 0;
    int slot = 0;
    for (int i = 0; i < CUDA_GRAPH_SLOTS; i++) {
        if (c->graphs[i].exec && c->graphs[i].key == key) {
            c->graphs[i].used = ++c->graph_clock;
            CUDA_CHECK(cudaGraphLaunch(c->graphs[i].exec, c->stream));
            return 1;
        }
        if (!c->graphs[i].exec || (c->graphs[slot].exec && c->graphs[i].used < c->graphs[slot].used)) slot = i;
    }
    cudaGraph_t g = NULL;
    cudaGraphExec_t exec = NULL;
    CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeRelaxed));
    fn(arg);
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, g, 0);
    if (g) CUDA_CHECK(cudaGraphDestroy(g));
    if (e != cudaSuccess) { /* nothing ran: the caller issues fn's ops one by one, from now on always */
        (void)cudaGetLastError();
        c->graphs_off = 1;
        fprintf(stderr, "[pp8] CUDA graph capture failed (%s): launching kernels one by one\n", cudaGetErrorString(e));
        return 0;
    }
    if (c->graphs[slot].exec) CUDA_CHECK(cudaGraphExecDestroy(c->graphs[slot].exec));
    c->graphs[slot].key = key;
    c->graphs[slot].exec = exec;
    c->graphs[slot].used = ++c->graph_clock;
    CUDA_CHECK(cudaGraphLaunch(exec, c->stream));
    return 1;
}

static void cu_destroy(void *ctx)
{
    CudaCtx *c = (CudaCtx *)ctx;
    CUDA_CHECK(cudaSetDevice(c->device));
    cu_graph_reset(c);
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    cuda_gemm_destroy(c->gemm);
    scratch_free(c);
    CUDA_CHECK(cudaFreeHost(c->ncols_host));
    CUDA_CHECK(cudaEventDestroy(c->ncols_ready));
    dev_free(c, c->fin_rec);
    for (int i = 0; c->timers && i < CUDA_TIMERS; i++) CUDA_CHECK(cudaEventDestroy(c->timers[i]));
    free(c->timers);
    CUDA_CHECK(cudaFreeHost(c->fin_host));
    CUDA_CHECK(cudaEventDestroy(c->fin_ready));
    CUDA_CHECK(cudaStreamDestroy(c->stream));
    cuda_mem_meter_free(&c->mem);
    free(c);
}

/* ---- plain-C entry points (cuda_host.h) ---- */
extern "C" int backend_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

/* cudaDeviceGetPCIBusId needs no context (it names the device, as NCCL's and nvidia-smi's bus ids do) */
extern "C" int backend_cuda_bus_ids(char *ids, int max, size_t stride)
{
    int n = backend_cuda_device_count(), k = 0;
    for (int d = 0; d < n && k < max; d++) {
        char *dst = ids + (size_t)k * stride;
        if (cudaDeviceGetPCIBusId(dst, (int)stride, d) != cudaSuccess) {
            (void)cudaGetLastError();
            snprintf(dst, stride, "unknown-%d", d);
        }
        dst[stride - 1] = 0;
        k++;
    }
    return k;
}

static CudaCtx *cuda_ctx(Backend *b) { return b && b->name && !strcmp(b->name, "cuda") ? (CudaCtx *)b->ctx : NULL; }

extern "C" void *backend_cuda_stream(Backend *b)
{
    CudaCtx *c = cuda_ctx(b);
    return c ? (void *)c->stream : NULL;
}

extern "C" int backend_cuda_int8_quantize(Backend *b, const uint16_t *x, int rows, int k, float t, int8_t *q,
                                          float *absmax, int32_t *cols)
{
    CudaCtx *c = cuda_ctx(b);
    PP8_CHECK(c, "backend_cuda_int8_quantize: not a CUDA backend");
    if (rows <= 0 || k <= 0) return 0;
    /* its own flags and count (a tool call, not the token loop), so it works for any k */
    uint8_t *flags = (uint8_t *)scratch_alloc(c, (size_t)k);
    int32_t *ncols_dev = (int32_t *)scratch_alloc(c, sizeof(int32_t));
    float *part = (float *)scratch_alloc(c, sizeof(float) * CUDA_GEMV_MAX_ROWS * (size_t)cuda_quant2_blocks(k));
    /* as linear does, with the backend's kernel set */
    if (c->kernels != CUDA_KERNELS_V2 ||
        !cuda_int8_quantize_v2(x, rows, k, t, flags, cols, ncols_dev, q, absmax, part, c->stream))
        cuda_int8_quantize(x, rows, k, t, flags, cols, ncols_dev, q, absmax, c->stream);
    int32_t n = 0;
    CUDA_CHECK(cudaMemcpyAsync(&n, ncols_dev, sizeof n, cudaMemcpyDeviceToHost, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    dev_free(c, part);
    dev_free(c, flags);
    dev_free(c, ncols_dev);
    return n;
}

extern "C" int backend_cuda_conv_check(Backend *b, uint64_t mismatch[2], int64_t first[2])
{
    CudaCtx *c = cuda_ctx(b);
    if (!c) return -1;
    cuda_conv_check(mismatch, first, c->stream);
    return 0;
}

extern "C" size_t backend_cuda_mem_bytes(Backend *b)
{
    CudaCtx *c = cuda_ctx(b);
    if (!c) return 0;
    size_t free_b = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
    return total;
}

extern "C" int backend_cuda_mem_stats(Backend *b, CudaMemStats *s)
{
    CudaCtx *c = cuda_ctx(b);
    if (!c) return -1;
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    mem_sample(c);
    *s = (CudaMemStats){.alloc_live = c->mem.live,
                        .alloc_peak = c->mem.peak,
                        .scratch = c->workspace ? c->plan.total : 0,
                        .context = c->used_at_create,
                        .used_peak = c->used_peak,
                        .total = c->mem_total};
    return 0;
}

/* every thread streams 16-byte loads over the buffer; the xor keeps them from being optimized away */
static __global__ void k_read(const int4 *p, size_t n, int *sink)
{
    int acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int4 v = __ldcs(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x7fffffff) *sink = acc;
}

extern "C" double backend_cuda_read_gbs(Backend *b, size_t bytes)
{
    CudaCtx *c = cuda_ctx(b);
    if (!c || bytes < 16) return 0.0;
    size_t n = bytes / 16;
    int4 *buf = NULL;
    if (cudaMalloc(&buf, n * 16 + 16) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0.0;
    }
    CUDA_CHECK(cudaMemsetAsync(buf, 1, n * 16 + 16, c->stream));
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    enum { PASSES = 5 };
    double gbs[PASSES];
    for (int pass = -1; pass < PASSES; pass++) { /* pass -1 warms up */
        CUDA_CHECK(cudaEventRecord(e0, c->stream));
        k_read<<<c->sms * 8, 256, 0, c->stream>>>(buf, n, (int *)(buf + n));
        CUDA_CHECK_LAUNCH();
        CUDA_CHECK(cudaEventRecord(e1, c->stream));
        CUDA_CHECK(cudaEventSynchronize(e1));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        if (pass >= 0) gbs[pass] = (double)n * 16 / (ms * 1e-3) * 1e-9;
    }
    for (int i = 1; i < PASSES; i++) /* insertion sort for the median */
        for (int j = i; j > 0 && gbs[j] < gbs[j - 1]; j--) {
            double t = gbs[j];
            gbs[j] = gbs[j - 1], gbs[j - 1] = t;
        }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    CUDA_CHECK(cudaFree(buf));
    return gbs[PASSES / 2];
}

extern "C" Backend *backend_cuda_create(const BackendOptions *o, char *err, size_t errlen)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        snprintf(err, errlen, "--backend cuda: no CUDA device (cudaGetDeviceCount: %s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        (void)cudaGetLastError();
        return NULL;
    }
    CudaKernels kernels;
    if (cuda_kernels_parse(getenv("PP8_CUDA_KERNELS"), &kernels, err, errlen)) return NULL;
    int dev = o ? o->device : 0;
    if (dev < 0 || dev >= count) {
        snprintf(err, errlen, "--backend cuda: device %d requested but %d visible (one rank per GPU)", dev, count);
        return NULL;
    }
    int major = 0, minor = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    if (major < 8) { /* built for sm_80 and sm_90 (+ compute_90 PTX for newer GPUs) */
        snprintf(err, errlen,
                 "--backend cuda: device %d has compute capability %d.%d; pp8 needs 8.0 or newer "
                 "(A100, H100)",
                 dev, major, minor);
        return NULL;
    }
    Backend *b = (Backend *)calloc(1, sizeof *b);
    CudaCtx *c = (CudaCtx *)calloc(1, sizeof *c);
    if (!b || !c) {
        free(b);
        free(c);
        snprintf(err, errlen, "out of memory creating the CUDA backend");
        return NULL;
    }
    c->device = dev;
    c->cc_major = major;
    c->cc_minor = minor;
    CUDA_CHECK(cudaDeviceGetAttribute(&c->sms, cudaDevAttrMultiProcessorCount, dev));
    /* the calling thread's device from now on: cuBLASLt's handle and NCCL's communicator bind to it */
    CUDA_CHECK(cudaSetDevice(dev));
    /* non-blocking: no implicit sync with the legacy default stream (NCCL's advice, CUDA-NOTES §4) */
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    {   /* the context exists now: what is in use is its memory (and other processes') */
        size_t free_b = 0;
        CUDA_CHECK(cudaMemGetInfo(&free_b, &c->mem_total));
        c->used_at_create = c->mem_total - free_b;
    }
    CUDA_CHECK(cudaEventCreateWithFlags(&c->ncols_ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaMallocHost((void **)&c->ncols_host, sizeof(int)));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->fin_ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaMallocHost((void **)&c->fin_host, 2 * sizeof(int)));
    c->fin_host[0] = c->fin_host[1] = 0x7fffffff;
    c->fin_rec = (int *)scratch_alloc(c, 2 * sizeof(int));
    cuda_finite_reset(c->fin_rec, c->stream);
    CUDA_CHECK(cudaEventRecord(c->fin_ready, c->stream));
    c->gemm = cuda_gemm_create();
    const char *graphs = getenv("PP8_CUDA_GRAPHS"); /* 0: launch op by op (for side-by-side timing) */
    c->graphs_off = graphs && !strcmp(graphs, "0");
    c->kernels = kernels;

    b->name = "cuda";
    b->ctx = c;
    b->alloc = cu_alloc;
    b->free = cu_free;
    b->to_device = cu_to_device;
    b->to_host = cu_to_host;
    b->sync = cu_sync;
    b->reserve = cu_reserve;
    b->linear_bytes = cu_linear_bytes;
    b->linear_pack = cu_linear_pack;
    b->embed = cu_embed;
    b->layernorm = cu_layernorm;
    b->linear = cu_linear;
    b->attention = cu_attention;
    b->gelu = cu_gelu;
    b->relu = cu_relu;
    b->add = cu_add;
    b->gather_rows = cu_gather_rows;
    b->widen = cu_widen;
    b->finite_mark = cu_finite_mark;
    b->finite_fetch = cu_finite_fetch;
    b->finite_result = cu_finite_result;
    b->timer_record = cu_timer_record;
    b->timer_ms = cu_timer_ms;
    b->timer_reset = cu_timer_reset;
    b->linear_path = cu_linear_path;
    b->graph_run = cu_graph_run;
    b->graph_reset = cu_graph_reset;
    b->destroy = cu_destroy;
    return b;
}
