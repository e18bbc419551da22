/* The CPU backend: host memory, OpenMP threads pinned to this rank's cores, and every op of
 * backend.h except the linear layers, which live in cpu_linear.h. fp32 inside every op, 16-bit
 * (act dtype) between ops. Each output row is computed by one thread in a fixed order, so results
 * never depend on the thread count. */
#define _GNU_SOURCE
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../check.h"
#include "../numerics.h"
#include "cpu_linear.h"
#include "vec.h"

#define CHUNK 4096     /* elements per work item of the elementwise ops */

typedef struct {
    int threads;
    CpuLinear *lin;
    const VecOps *v;
    float *scratch;       /* (threads, scratch_per_thread) fp32 rows for the ops below */
    size_t scratch_per_thread;
    int fin_row, fin_tag;     /* finite_mark's record since the last fetch (row -1: all finite) */
    int fetched_row, fetched_tag; /* what finite_fetch took */
} CpuCtx;

static void *cpu_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    void *p = NULL;
    size_t n = bytes ? (bytes + 63) & ~(size_t)63 : 64;
    /* large buffers (weights, KV cache) on 2 MiB pages: a streaming read over 4 KiB pages runs ~20%
     * slower here (measured by bench-linear's probe), and decode is such a read */
    size_t align = n >= ((size_t)2 << 20) ? (size_t)2 << 20 : 64;
    if (posix_memalign(&p, align, n)) return NULL;
    if (align > 64) madvise(p, n, MADV_HUGEPAGE);
    memset(p, 0, n); /* first touch now, not inside a timed token loop */
    return p;
}

static void cpu_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    (void)ctx;
    memcpy(dst, src, bytes);
}

static void cpu_sync(void *ctx) { (void)ctx; }

static void cpu_reserve(void *ctx, int max_rows, int max_k, int max_n)
{
    CpuCtx *c = ctx;
    cpu_linear_reserve(c->lin, max_rows, max_k, max_n);
    /* the widest op: layernorm's three rows of max(K, N), or two CHUNKs of an elementwise op */
    size_t per = (size_t)3 * (size_t)(max_k > max_n ? max_k : max_n) + 2 * CHUNK + 64;
    if (per > c->scratch_per_thread) {
        free(c->scratch);
        c->scratch_per_thread = per;
        c->scratch = cpu_alloc(c, sizeof(float) * per * (size_t)c->threads);
        PP8_CHECK(c->scratch, "out of memory for CPU scratch");
    }
}

static float *thread_scratch(CpuCtx *c, size_t need)
{
    PP8_CHECK(need <= c->scratch_per_thread, "CPU scratch too small: reserve() was not called with these sizes");
    return c->scratch + (size_t)omp_get_thread_num() * c->scratch_per_thread;
}

static size_t cpu_linear_bytes_op(void *ctx, DType wdt, int n, int k)
{
    (void)ctx;
    return cpu_linear_bytes(wdt, n, k);
}

static void cpu_linear_pack_op(void *ctx, Linear *w, const void *rowmajor, const float *scb)
{
    (void)ctx;
    cpu_linear_pack(w, rowmajor, scb);
}

static void cpu_linear_pack_rows_op(void *ctx, Linear *w, const void *rowmajor, const float *scb, int row0, int rows)
{
    (void)ctx;
    cpu_linear_pack_rows(w, rowmajor, scb, row0, rows);
}

/* The exponent bits all set: inf or NaN (fp16 0x7c00, bf16 0x7f80). One branch-free pass per row, which
 * gcc vectorizes (~0.1% of a decode step); the marks stop at the first row holding one, since only the
 * first row and the smallest tag are kept. */
static void cpu_finite_mark(void *ctx, const uint16_t *x, int rows, int dim, DType act, int tag)
{
    CpuCtx *c = ctx;
    const uint16_t e = act == DTYPE_BF16 ? 0x7f80 : 0x7c00;
    for (int r = 0; r < rows; r++) {
        const uint16_t *row = x + (size_t)r * dim;
        unsigned bad = 0;
        for (int i = 0; i < dim; i++) bad |= (row[i] & e) == e;
        if (!bad) continue;
        if (c->fin_row < 0 || r < c->fin_row) c->fin_row = r;
        if (tag < c->fin_tag) c->fin_tag = tag;
        return;
    }
}

static void cpu_finite_fetch(void *ctx)
{
    CpuCtx *c = ctx;
    c->fetched_row = c->fin_row, c->fetched_tag = c->fin_tag;
    c->fin_row = -1, c->fin_tag = FINITE_TAG_OUTPUT;
}

static int cpu_finite_result(void *ctx, int *row, int *tag)
{
    CpuCtx *c = ctx;
    *row = c->fetched_row, *tag = c->fetched_tag;
    return c->fetched_row >= 0;
}

static void cpu_linear_op(void *ctx, const Linear *w, const uint16_t *x, int rows, DType act, void *y, DType ydt,
                          float threshold)
{
    CpuCtx *c = ctx;
    cpu_linear(c->lin, w, x, rows, act, y, ydt, threshold);
}

static const char *cpu_linear_path_op(void *ctx, DType wdt, int rows)
{
    CpuCtx *c = ctx;
    return cpu_linear_path(c->lin, wdt, rows);
}

static void cpu_embed(void *ctx, uint16_t *x, const int32_t *tokens, const int32_t *pos, int rows,
                      const uint16_t *table, const uint16_t *pos_table, int pos_offset, int dim, DType act)
{
    CpuCtx *c = ctx;
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (int r = 0; r < rows; r++) {
        const uint16_t *e = table + (size_t)tokens[r] * dim;
        uint16_t *o = x + (size_t)r * dim;
        if (!pos_table) {
            memcpy(o, e, sizeof *o * (size_t)dim);
            continue;
        }
        /* OPT: inputs_embeds + positions, added in fp32 and rounded once */
        float *a = thread_scratch(c, 2 * (size_t)dim), *b = a + dim;
        c->v->load(a, e, dim, act);
        c->v->load(b, pos_table + (size_t)(pos[r] + pos_offset) * dim, dim, act);
#pragma omp simd
        for (int i = 0; i < dim; i++) a[i] += b[i];
        c->v->store(o, a, dim, act);
    }
}

static void cpu_layernorm(void *ctx, uint16_t *y, const uint16_t *x, const uint16_t *g, const uint16_t *b, int rows,
                          int dim, float eps, DType act)
{
    CpuCtx *c = ctx;
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (int r = 0; r < rows; r++) {
        float *f = thread_scratch(c, 3 * (size_t)dim), *gf = f + dim, *bf = gf + dim;
        c->v->load(f, x + (size_t)r * dim, dim, act);
        c->v->load(gf, g, dim, act);
        c->v->load(bf, b, dim, act);
        /* two-pass mean and variance in fp32 (torch.nn.functional.layer_norm, biased variance) */
        float mean = c->v->sum(f, dim) / (float)dim;
        float var = c->v->sqdev(f, mean, dim) / (float)dim;
        float inv = 1.0f / sqrtf(var + eps);
#pragma omp simd
        for (int i = 0; i < dim; i++) f[i] = (f[i] - mean) * inv * gf[i] + bf[i];
        c->v->store(y + (size_t)r * dim, f, dim, act);
    }
}

/* The CPU backend's KV-cache layout inside a layer's (slots * S * H * E)-value block: per slot,
 * positions in chunks of ATTN_CHUNK, and per chunk the heads one after another, each with its
 * ATTN_CHUNK (or, for the last chunk of S, the rest) positions of E values. A row's keys for all heads
 * are then one run of (pos + 1) * H * E values, read front to back, where a (slots, H, S, E) layout has
 * H runs of (pos + 1) * E values with the S - pos - 1 unused positions between them, and the hardware
 * prefetcher reads on past the end of every run. Measured against that layout (one (row, head) read
 * per run, the next one prefetched meanwhile), OPT-1.3B shape, 16 rows at position 47, 14 layers, a
 * 50 MiB read between layers as a rank's weights are: 1.50 -> 1.34 us per (row, head) with S = 64,
 * 1.61 -> 1.30 with S = 200; pp8 bench --profile at batch 32, side by side, 3 runs each: attention
 * per decode step 21.7-22.6 -> 18.6-19.4 ms on rank 0, 15.3-15.8 -> 13.4-14.1 on rank 1. */
#define ATTN_CHUNK VEC_ATTN_CHUNK /* positions per chunk, and keys scored together before one softmax rescale */
/* Software prefetch distance ahead of the K and V reads, in values (2 KiB: one head's chunk of E = 64).
 * The time per byte is the compute's plus the misses it does not overlap, so the work per chunk was cut
 * first: one vec.h attn_chunk call per chunk for all of a row's heads, with the scores, their softmax
 * and the accumulator in registers, FMA products, and no stack spills in the 16-key reduction. From
 * L2 (one row of OPT-1.3B's shape, H 32, E 64, at position 136): 44 -> 29 us, the old per-head
 * dots / exp_sum / axpys calls 40% softmax and call overhead. From memory (16 rows at position 136,
 * 12 layers, a 50 MiB read between layers as a rank's weights are, 1 thread, /tmp benchmark, runs
 * alternated): 10.2-10.6 GB/s before, 12.9-13.7 now, against 14.6-15.0 for a plain sum over the
 * same byte count. Distances of 512-1536 values 13.1-13.6, 2048 12.1-13.2, none 11.2-11.5; T0 and
 * T1 within noise. Past the cache's end a prefetch touches at most this much beyond the last slot;
 * it never faults. */
#define ATTN_PF_AHEAD 1024

static inline size_t attn_at(const AttnArgs *a, int slot, int h, int p)
{
    const int H = a->heads, E = a->head_dim, S = a->max_seq, c0 = p / ATTN_CHUNK * ATTN_CHUNK;
    const int cl = S - c0 < ATTN_CHUNK ? S - c0 : ATTN_CHUNK;
    return (size_t)slot * S * H * E + (size_t)c0 * H * E + ((size_t)h * cl + (size_t)(p - c0)) * E;
}

/* (row r, heads [h0, h1)): fp32 scores over positions 0..pos a chunk at a time, online softmax across
 * chunks, output rounded once (vec.h attn_chunk), one attn_chunk call per chunk for all these heads, so
 * their keys and values are read in cache order. Each head's result is the same whichever item and
 * order computes it. */
static void attn_row_heads(CpuCtx *c, const AttnArgs *a, int r, int h0, int h1, size_t pf)
{
    const int H = a->heads, E = a->head_dim, S = a->max_seq, nh = h1 - h0;
    const int P = a->pos[r];
    float *q = thread_scratch(c, 2 * (size_t)nh * (E + 1)), *acc = q + (size_t)nh * E, *m = acc + (size_t)nh * E;
    float *l = m + nh;
    for (int h = h0; h < h1; h++) {
        c->v->load(q + (size_t)(h - h0) * E, a->q + (size_t)r * a->row_stride + (size_t)h * a->head_stride, E, a->act);
        m[h - h0] = -INFINITY;
        l[h - h0] = 0.0f;
    }
    memset(acc, 0, sizeof(float) * (size_t)nh * E);
    for (int j0 = 0; j0 <= P; j0 += ATTN_CHUNK) {
        const size_t at = attn_at(a, a->slot[r], h0, j0);
        const int cl = S - j0 < ATTN_CHUNK ? S - j0 : ATTN_CHUNK; /* the chunk's length in the layout */
        VecAttnChunk ch = {
            .q = q,
            .k = a->k_cache + at,
            .v = a->v_cache + at,
            .hs = (size_t)cl * E,
            .nh = nh,
            .nb = P + 1 - j0 < ATTN_CHUNK ? P + 1 - j0 : ATTN_CHUNK,
            .E = E,
            .j0 = j0,
            .scale = a->score_scale,
            .slope = a->alibi ? a->alibi + h0 : NULL,
            .m = m,
            .l = l,
            .acc = acc,
            .pf = pf,
            .t = a->act,
        };
        c->v->attn_chunk(&ch);
    }
    for (int h = h0; h < h1; h++) {
        float *ah = acc + (size_t)(h - h0) * E, inv = 1.0f / l[h - h0];
        for (int i = 0; i < E; i++) ah[i] *= inv;
        c->v->store(a->out + (size_t)r * H * E + (size_t)h * E, ah, E, a->act);
    }
}

static void cpu_attention(void *ctx, const AttnArgs *a)
{
    CpuCtx *c = ctx;
    const int H = a->heads, E = a->head_dim;
    /* 1. this micro-batch's keys and values into the cache, so rows see each other causally */
    for (int r = 0; r < a->rows; r++)
        for (int h = 0; h < H; h++) {
            size_t src = (size_t)r * a->row_stride + (size_t)h * a->head_stride,
                   dst = attn_at(a, a->slot[r], h, a->pos[r]);
            memcpy(a->k_cache + dst, a->k + src, sizeof(uint16_t) * E);
            memcpy(a->v_cache + dst, a->v + src, sizeof(uint16_t) * E);
        }
    /* 2. Rows that are mostly a prompt's (neighbours in one KV slot) go head pair by head pair, all rows
     *    of a pair in turn: one pair's keys and values (at 512 positions and E = 64, 256 KiB) stay in L2
     *    while every row reads them, where row by row each row streamed all heads' (2 MiB per layer at 512
     *    positions, BLOOM-560M) from L3 or memory. perf, BLOOM-560M fp16 prefill of 512 tokens, 1 thread,
     *    Zen 5: attention 17% of the prefill's samples before. Decode rows (one per sequence) read their
     *    bytes once either way and go row by row, with the software prefetch that streams them.
     *    Row by row, rows are split into head groups only when there are fewer rows than threads. */
    int shared = 0;
    for (int r = 1; r < a->rows; r++) shared += a->slot[r] == a->slot[r - 1];
    if (a->rows >= 4 && 2 * shared >= a->rows) {
        const int pairs = (H + 1) / 2, rows = a->rows;
#pragma omp parallel for num_threads(c->threads) schedule(static)
        for (int it = 0; it < pairs * rows; it++) {
            const int g = it / rows, h0 = 2 * g, h1 = h0 + 2 < H ? h0 + 2 : H;
            attn_row_heads(c, a, it % rows, h0, h1, 0);
        }
        return;
    }
    const int per_row = (c->threads + a->rows - 1) / a->rows;
    const int groups = a->rows >= c->threads ? 1 : per_row < H ? per_row : H;
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (int it = 0; it < a->rows * groups; it++) {
        const int r = it / groups, g = it % groups;
        attn_row_heads(c, a, r, g * H / groups, (g + 1) * H / groups, ATTN_PF_AHEAD);
    }
}

static void cpu_gelu(void *ctx, uint16_t *x, size_t n, DType act)
{
    CpuCtx *c = ctx;
    long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (long ch = 0; ch < chunks; ch++) {
        size_t b = (size_t)ch * CHUNK, len = n - b < CHUNK ? n - b : CHUNK;
        float *f = thread_scratch(c, len);
        c->v->load(f, x + b, (int)len, act);
        c->v->gelu(f, (int)len); /* transformers bloom_gelu_forward (vec.h) */
        c->v->store(x + b, f, (int)len, act);
    }
}

static void cpu_relu(void *ctx, uint16_t *x, size_t n, DType act)
{
    (void)ctx;
    (void)act;
    /* the sign bit clears the whole value, identically for fp16 and bf16; branch-free so it
     * vectorizes (NaN inputs with the sign bit set become 0; the models never produce NaN here) */
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] &= (uint16_t)((x[i] >> 15) - 1u);
}

static void cpu_add(void *ctx, uint16_t *y, const uint16_t *a, const uint16_t *b, size_t n, DType act)
{
    CpuCtx *c = ctx;
    long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (long ch = 0; ch < chunks; ch++) {
        size_t off = (size_t)ch * CHUNK, len = n - off < CHUNK ? n - off : CHUNK;
        float *fa = thread_scratch(c, 2 * (size_t)CHUNK), *fb = fa + CHUNK;
        c->v->load(fa, a + off, (int)len, act);
        c->v->load(fb, b + off, (int)len, act);
#pragma omp simd
        for (size_t i = 0; i < len; i++) fa[i] += fb[i];
        c->v->store(y + off, fa, (int)len, act);
    }
}

static void cpu_gather_rows(void *ctx, void *dst, const void *src, const int32_t *idx, int n, size_t row_bytes)
{
    (void)ctx;
    for (int i = 0; i < n; i++)
        memmove((char *)dst + (size_t)i * row_bytes, (const char *)src + (size_t)idx[i] * row_bytes, row_bytes);
}

static void cpu_widen(void *ctx, float *y, const uint16_t *x, size_t n, DType act)
{
    CpuCtx *c = ctx;
    long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (long ch = 0; ch < chunks; ch++) {
        size_t off = (size_t)ch * CHUNK, len = n - off < CHUNK ? n - off : CHUNK;
        c->v->load(y + off, x + off, (int)len, act);
    }
}

static void cpu_destroy(void *ctx)
{
    CpuCtx *c = ctx;
    cpu_linear_destroy(c->lin);
    free(c->scratch);
    free(c);
}

/* Pin OpenMP thread i to the (first_cpu + i)-th CPU of the process's affinity mask, so ranks that
 * share a node without mpirun binding still use disjoint cores and never oversubscribe. */
static void cpu_pin_threads(int threads, int first_cpu)
{
    cpu_set_t mask;
    if (first_cpu < 0 || sched_getaffinity(0, sizeof mask, &mask)) return;
    int cpus[CPU_SETSIZE], ncpu = 0;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &mask)) cpus[ncpu++] = i;
    if (ncpu < threads) return;
#pragma omp parallel num_threads(threads)
    {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[(first_cpu + omp_get_thread_num()) % ncpu], &one);
        sched_setaffinity(0, sizeof one, &one);
    }
}

int backend_cpu_cores(void)
{
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask)) return 1;
    return CPU_COUNT(&mask);
}

Backend *backend_cpu_create(const BackendOptions *o, char *err, size_t errlen)
{
    Backend *b = calloc(1, sizeof *b);
    CpuCtx *c = calloc(1, sizeof *c);
    if (!b || !c) {
        snprintf(err, errlen, "out of memory creating the CPU backend");
        free(b);
        free(c);
        return NULL;
    }
    c->threads = o && o->threads > 0 ? o->threads : backend_cpu_cores();
    c->fin_row = c->fetched_row = -1;
    c->fin_tag = c->fetched_tag = FINITE_TAG_OUTPUT;
    omp_set_dynamic(0);
    if (o) cpu_pin_threads(c->threads, o->first_cpu);
    c->lin = cpu_linear_create(c->threads);
    c->v = vec_ops_best();
    *b = (Backend){
        .name = "cpu",
        .ctx = c,
        .alloc = cpu_alloc,
        .free = cpu_free,
        .to_device = cpu_copy,
        .to_host = cpu_copy,
        .sync = cpu_sync,
        .reserve = cpu_reserve,
        .linear_bytes = cpu_linear_bytes_op,
        .linear_pack = cpu_linear_pack_op,
        .linear_pack_rows = cpu_linear_pack_rows_op,
        .finite_mark = cpu_finite_mark,
        .finite_fetch = cpu_finite_fetch,
        .finite_result = cpu_finite_result,
        .embed = cpu_embed,
        .layernorm = cpu_layernorm,
        .linear = cpu_linear_op,
        .attention = cpu_attention,
        .gelu = cpu_gelu,
        .relu = cpu_relu,
        .add = cpu_add,
        .gather_rows = cpu_gather_rows,
        .widen = cpu_widen,
        .linear_path = cpu_linear_path_op,
        .destroy = cpu_destroy,
    };
    return b;
}
