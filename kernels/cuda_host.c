/* Host-side decisions of the CUDA backend (see cuda_host.h): plain C on plain types, compiled into
 * pp8_kernels on every machine and unit-tested by tests/test_cuda_host.c. Without CUDA it also answers
 * the backend's plain-C entry points with "not built". It never includes a CUDA header. */
#include "cuda_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int mat_type(DType t, CudaMatType *out)
{
    switch (t) {
    case DTYPE_I8: *out = CUDA_MAT_I8; return 0;
    case DTYPE_I32: *out = CUDA_MAT_I32; return 0;
    case DTYPE_F16: *out = CUDA_MAT_F16; return 0;
    case DTYPE_BF16: *out = CUDA_MAT_BF16; return 0;
    case DTYPE_F32: *out = CUDA_MAT_F32; return 0;
    default: return -1;
    }
}

int cuda_int8_shape_ok(int n, int k) { return n > 0 && k > 0 && n % 4 == 0 && k % 4 == 0; }

int cuda_gemm_describe(CudaGemmDesc *g, DType in, DType out, int m, int n, int k)
{
    memset(g, 0, sizeof *g);
    if (m <= 0 || n <= 0 || k <= 0) return -1;
    CudaMatType tin, tout;
    if (mat_type(in, &tin) || mat_type(out, &tout)) return -1;
    if (in == DTYPE_I8) {
        /* cuBLAS type table: 32I compute, 32I scale, A/B 8I, C/D 32I; "Epilogue is not supported" */
        if (out != DTYPE_I32 || !cuda_int8_shape_ok(n, k)) return -1;
        g->compute = CUDA_COMPUTE_32I;
    } else if (in == DTYPE_F16 || in == DTYPE_BF16) {
        /* rows "32F | 32F | 16F | 16F", "… 16F | 32F" and the same for 16BF */
        if (out != in && out != DTYPE_F32) return -1;
        g->compute = CUDA_COMPUTE_32F;
    } else {
        return -1;
    }
    g->transa = 1; /* "TN": the only int8 IMMA form that runs on both sm_80 and sm_90 */
    g->transb = 0;
    g->a = (CudaMatLayout){tin, (uint64_t)k, (uint64_t)n, k};  /* w [N,K] row-major == K x N col-major */
    g->b = (CudaMatLayout){tin, (uint64_t)k, (uint64_t)m, k};  /* x [M,K] row-major == K x M col-major */
    g->c = (CudaMatLayout){tout, (uint64_t)n, (uint64_t)m, n}; /* N x M col-major == y [M,N] row-major */
    return 0;
}

int cuda_int8_use_gemv(int m, int n, int k) { return m <= CUDA_GEMV_MAX_ROWS || !cuda_int8_shape_ok(n, k); }

int cuda_int8_gemv_ksplit(int m, int n, int k, int sms)
{
    if (m <= 0 || n <= 0 || k <= 0 || k % 16) return 1; /* the split is in the 16-byte kernel only */
    const long per_block = CUDA_GEMV4_WARPS * CUDA_GEMV4_OUTS;
    const long blocks = (n + per_block - 1) / per_block * ((m + CUDA_GEMV_MAX_ROWS - 1) / CUDA_GEMV_MAX_ROWS);
    const long lane_pass = 16L * 32; /* bytes of K one pass of a warp's lanes covers */
    return blocks < 2L * sms && k >= CUDA_GEMV_KSPLIT * lane_pass ? CUDA_GEMV_KSPLIT : 1;
}

int cuda_kernels_parse(const char *s, CudaKernels *out, char *err, size_t errlen)
{
    if (!s || !s[0] || !strcmp(s, "v1")) {
        *out = CUDA_KERNELS_V1;
        return 0;
    }
    if (!strcmp(s, "v2")) {
        *out = CUDA_KERNELS_V2;
        return 0;
    }
    snprintf(err, errlen, "PP8_CUDA_KERNELS='%.40s': the CUDA kernel set must be v1 (default) or v2", s);
    return -1;
}

const char *cuda_kernels_name(CudaKernels k) { return k == CUDA_KERNELS_V2 ? "v2" : "v1"; }

int cuda_gemv2_rows_tile(int m)
{
    if (m < 1 || m > CUDA_GEMV_MAX_ROWS) return 0;
    int t = 1;
    while (t < m) t <<= 1;
    return t;
}

int cuda_gemv2_plan(int m, int n, int k, int elem_bytes, int sms, int blocks_per_sm, CudaGemv2Plan *p)
{
    memset(p, 0, sizeof *p);
    const int tile = cuda_gemv2_rows_tile(m);
    if (!tile || n <= 0 || k <= 0 || (elem_bytes != 1 && elem_bytes != 2) || (long)k * elem_bytes % 16) return -1;
    if (sms < 1) sms = 1;
    if (blocks_per_sm < 1) blocks_per_sm = 1;
    const long loads = (long)k * elem_bytes / 16; /* 16-byte loads a row */
    double best = -1.0;
    for (int ks = 1; ks <= CUDA_GEMV2_MAX_KSPLIT; ks <<= 1) {
        if (ks > 1 && loads / ks < 2L * 32) break; /* each lane keeps >= 2 loads per output in its part */
        const long per_block = (long)(CUDA_GEMV4_WARPS / ks) * CUDA_GEMV4_OUTS;
        const long blocks = (n + per_block - 1) / per_block;
        const double per_sm = (double)blocks / sms, most = (double)((blocks + sms - 1) / sms);
        /* the busiest SM sets the time: mean blocks per SM over the most any SM gets; and fewer than
         * CUDA_GEMV2_FILL blocks per SM keep too few weight loads in flight to stream HBM */
        double score = per_sm / most;
        if (per_sm < CUDA_GEMV2_FILL) score *= per_sm / CUDA_GEMV2_FILL;
        if (score > best * 1.05) { /* a larger split must win by more than 5% (its partial sums cost) */
            best = score;
            p->ksplit = ks;
            p->blocks = blocks;
        }
    }
    p->rows_tile = tile;
    p->waves = (double)p->blocks / ((double)sms * blocks_per_sm);
    return 0;
}

int cuda_quant2_blocks(int k) { return k > 0 ? (k + CUDA_QUANT2_COLS - 1) / CUDA_QUANT2_COLS : 0; }

void cuda_quant2_segment(int nbytes, int threads, int i, int *b0, int *b1)
{
    const int per = threads > 0 ? (nbytes + threads - 1) / threads : 0;
    long a = (long)i * per, z = a + per;
    if (a > nbytes) a = nbytes;
    if (z > nbytes) z = nbytes;
    *b0 = (int)a, *b1 = (int)z;
}

size_t cuda_linear_bytes(DType wdt, int n, int k)
{
    if (n <= 0 || k <= 0) return 0;
    if (wdt == DTYPE_I8) return (size_t)n * (size_t)k;
    if (wdt == DTYPE_F16 || wdt == DTYPE_BF16) return 2 * (size_t)n * (size_t)k;
    return 0;
}

size_t cuda_workspace_bytes(int cc_major) { return (cc_major >= 9 ? (size_t)32 : (size_t)4) << 20; }

uint32_t cuda_ptr_align(uintptr_t p)
{
    uint32_t a = 1;
    if (p == 0) return 256;
    while (a < 256 && !(p & a)) a <<= 1;
    return a;
}

int cuda_copy_width(uintptr_t dst, uintptr_t src, size_t row_bytes)
{
    for (int w = 16; w > 1; w >>= 1)
        if (dst % (uintptr_t)w == 0 && src % (uintptr_t)w == 0 && row_bytes % (size_t)w == 0) return w;
    return 1;
}

int cuda_outlier_chunk(int max_n)
{
    size_t n = max_n > 0 ? (size_t)max_n : 1;
    size_t c = CUDA_WD_MAX_BYTES / (2 * n);
    c -= c % CUDA_OUTLIER_PAD;
    if (c < CUDA_OUTLIER_PAD) c = CUDA_OUTLIER_PAD;
    if (c > CUDA_OUTLIER_CHUNK_MAX) c = CUDA_OUTLIER_CHUNK_MAX;
    return (int)c;
}

int cuda_outlier_chunk_cols(int ncols, int chunk, int i, int *c0, int *nc)
{
    *c0 = i * chunk;
    *nc = 0;
    if (i < 0 || chunk <= 0 || *c0 >= ncols) return 0;
    *nc = ncols - *c0 < chunk ? ncols - *c0 : chunk;
    return (*nc + CUDA_OUTLIER_PAD - 1) / CUDA_OUTLIER_PAD * CUDA_OUTLIER_PAD;
}

int cuda_rows_per_block(size_t cap, int rows, int n)
{
    size_t per = n > 0 ? cap / (size_t)n : (size_t)rows;
    if (per < 1) per = 1;
    return per < (size_t)rows ? (int)per : rows;
}

unsigned cuda_grid_1d(size_t n, unsigned block)
{
    size_t b = block ? (n + block - 1) / block : 1;
    if (b < 1) b = 1;
    return b > 65535u ? 65535u : (unsigned)b;
}

static size_t round256(size_t b) { return (b + 255) & ~(size_t)255; }

void cuda_scratch_plan(CudaScratchPlan *p, int cc_major, int max_rows, int max_k, int max_n)
{
    memset(p, 0, sizeof *p);
    size_t R = max_rows > 0 ? (size_t)max_rows : 1, K = max_k > 0 ? (size_t)max_k : 1;
    size_t N = max_n > 0 ? (size_t)max_n : 1;
    p->chunk = cuda_outlier_chunk((int)N);
    p->workspace = cuda_workspace_bytes(cc_major);
    p->ca = R * K;
    p->sca = sizeof(float) * R;
    p->flags = K;
    p->cols = sizeof(int32_t) * (K + 1);
    p->c32_elems = R * N < CUDA_C32_MAX_ELEMS ? R * N : CUDA_C32_MAX_ELEMS;
    if (p->c32_elems < N) p->c32_elems = N; /* at least one row of the widest product */
    p->c32 = sizeof(int32_t) * p->c32_elems;
    p->xo = 2 * R * (size_t)p->chunk;
    p->wd = 2 * N * (size_t)p->chunk;
    p->total = round256(p->workspace) + round256(p->ca) + round256(p->sca) + round256(p->flags) + round256(p->cols) +
               round256(p->c32) + round256(p->xo) + round256(p->wd);
}

size_t cuda_attn_smem_bytes(int head_dim, int max_seq)
{
    return sizeof(float) * ((size_t)(head_dim > 0 ? head_dim : 0) + (size_t)(max_seq > 0 ? max_seq : 0));
}

void cuda_plan_cache_init(CudaPlanCache *c) { memset(c, 0, sizeof *c); }

static int key_eq(const CudaGemmKey *a, const CudaGemmKey *b)
{
    return a->in == b->in && a->out == b->out && a->m == b->m && a->n == b->n && a->k == b->k &&
           a->align_a == b->align_a && a->align_b == b->align_b && a->align_c == b->align_c;
}

int cuda_plan_cache_find(CudaPlanCache *c, const CudaGemmKey *key, int *fresh, int *evicted)
{
    int free_slot = -1;
    for (int i = 0; i < CUDA_PLAN_SLOTS; i++) {
        if (c->used[i] && key_eq(&c->key[i], key)) {
            *fresh = 0;
            *evicted = 0;
            return i;
        }
        if (!c->used[i] && free_slot < 0) free_slot = i;
    }
    int s = free_slot;
    *evicted = 0;
    if (s < 0) { /* full: evict round-robin; the plan's descriptors are only host objects */
        s = c->next;
        c->next = (c->next + 1) % CUDA_PLAN_SLOTS;
        *evicted = 1;
    }
    c->key[s] = *key;
    c->used[s] = 1;
    *fresh = 1;
    return s;
}

static int ids_equal(const char *a, const char *b, size_t stride) { return !strncmp(a, b, stride); }

CudaNodeView cuda_node_view(const char *ids, const int *counts, int local_size, int max_dev, size_t stride)
{
    int same = 1, disjoint = 1;
    for (int i = 0; i < local_size; i++)
        for (int j = i + 1; j < local_size; j++) {
            int ni = counts[i] < max_dev ? counts[i] : max_dev, nj = counts[j] < max_dev ? counts[j] : max_dev;
            const char *ri = ids + (size_t)i * max_dev * stride, *rj = ids + (size_t)j * max_dev * stride;
            if (ni != nj) same = 0;
            for (int a = 0; a < ni; a++) {
                if (a < nj && !ids_equal(ri + a * stride, rj + a * stride, stride)) same = 0;
                for (int b = 0; b < nj; b++)
                    if (ids_equal(ri + a * stride, rj + b * stride, stride)) disjoint = 0;
            }
        }
    return same ? CUDA_VIEW_SAME : disjoint ? CUDA_VIEW_OWN : CUDA_VIEW_MIXED;
}

int cuda_pick_device(int local_rank, int local_size, int ndev, CudaNodeView view, CudaRankMode mode, int *dev,
                     int *sharing, char *err, size_t errlen)
{
    *dev = -1;
    *sharing = 0;
    if (ndev <= 0) {
        snprintf(err, errlen,
                 "--backend cuda: no CUDA device visible on this node (check the driver and "
                 "CUDA_VISIBLE_DEVICES, or use --backend cpu)");
        return -1;
    }
    if (local_rank < 0 || local_size <= 0 || local_rank >= local_size) {
        snprintf(err, errlen, "--backend cuda: bad node-local rank %d of %d", local_rank, local_size);
        return -1;
    }
    if (view == CUDA_VIEW_MIXED) {
        snprintf(err, errlen,
                 "--backend cuda: the %d ranks on this node see different but overlapping GPUs "
                 "(CUDA_VISIBLE_DEVICES differs per rank): give every rank all the node's GPUs, or each rank its "
                 "own (Slurm --gpus-per-task=1)",
                 local_size);
        return -1;
    }
    if (view == CUDA_VIEW_OWN) { /* this rank's own GPU(s): the first */
        *dev = 0;
        *sharing = 1;
        return 0;
    }
    if (mode == CUDA_RANKS_SHARED) {
        *dev = local_rank % ndev;
        *sharing = (local_size - *dev + ndev - 1) / ndev; /* local ranks r with r % ndev == dev */
        return 0;
    }
    if ((mode == CUDA_RANKS_EXCLUSIVE && local_size != ndev) || local_rank >= ndev) {
        snprintf(err, errlen,
                 "--backend cuda: %d ranks on this node but %d GPUs: one rank per GPU; use -np %d per node "
                 "(mpirun --map-by ppr:%d:node) or set CUDA_VISIBLE_DEVICES%s",
                 local_size, ndev, ndev, ndev,
                 local_size > ndev ? ", or let ranks share GPUs with --share-gpus (slower: host-staged)" : "");
        return -1;
    }
    *dev = local_rank;
    *sharing = 1;
    return 0;
}

#ifndef PP8_HAVE_CUDA
int backend_cuda_device_count(void) { return 0; }

int backend_cuda_bus_ids(char *ids, int max, size_t stride)
{
    (void)ids, (void)max, (void)stride;
    return 0;
}

void *backend_cuda_stream(Backend *b)
{
    (void)b;
    return NULL;
}

int backend_cuda_int8_quantize(Backend *b, const uint16_t *x, int rows, int k, float t, int8_t *q, float *absmax,
                               int32_t *cols)
{
    (void)b, (void)x, (void)rows, (void)k, (void)t, (void)q, (void)absmax, (void)cols;
    PP8_CHECK(0, "backend_cuda_int8_quantize: this pp8 was built without CUDA");
    return -1;
}

double backend_cuda_read_gbs(Backend *b, size_t bytes)
{
    (void)b, (void)bytes;
    return 0.0;
}

size_t backend_cuda_mem_bytes(Backend *b)
{
    (void)b;
    return 0;
}

int backend_cuda_mem_stats(Backend *b, CudaMemStats *s)
{
    (void)b, (void)s;
    return -1;
}

int backend_cuda_conv_check(Backend *b, uint64_t mismatch[2], int64_t first[2])
{
    (void)b, (void)mismatch, (void)first;
    return -1;
}
#endif

/* ---- device memory the backend holds ---- */
int cuda_mem_meter_add(CudaMemMeter *m, const void *p, size_t bytes)
{
    if (!p) return 0;
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        CudaMemBlock *b = realloc(m->blk, cap * sizeof *b);
        if (!b) return -1;
        m->blk = b, m->cap = cap;
    }
    m->blk[m->n++] = (CudaMemBlock){p, bytes};
    m->live += bytes;
    if (m->live > m->peak) m->peak = m->live;
    return 0;
}

size_t cuda_mem_meter_remove(CudaMemMeter *m, const void *p)
{
    /* from the end: scratch is freed and re-made more often than the weights, which came first */
    for (size_t i = m->n; p && i-- > 0;)
        if (m->blk[i].p == p) {
            size_t bytes = m->blk[i].bytes;
            m->blk[i] = m->blk[--m->n];
            m->live -= bytes;
            return bytes;
        }
    return 0;
}

void cuda_mem_meter_free(CudaMemMeter *m)
{
    free(m->blk);
    *m = (CudaMemMeter){0};
}
