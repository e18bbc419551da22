/* The compute contract: a struct of function pointers plus ctx (after ggml's backend interface).
 * cpu/ and cuda/ implement it. It knows nothing of ranks, files or configs, and no CUDA type appears
 * here. Every pointer an op takes lives in the backend's memory (host for cpu, device for cuda).
 * 16-bit tensors are uint16_t with a DType saying F16 or BF16 (the activation dtype `act`).
 *
 * Letters: M rows of the current micro-batch, K inputs, N outputs, H heads, E head_dim, S max_seq. */
#ifndef PP8_BACKEND_H
#define PP8_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* finite_mark's tag for a stage's output hidden state (larger than any layer: a layer's mark wins) */
#define FINITE_TAG_OUTPUT 0x7fffffff

/* One linear layer y = x W^T + b, W [N, K] row-major in the checkpoint. */
typedef struct Linear {
    DType wdt;      /* DTYPE_I8 (LLM.int8()), DTYPE_F16 or DTYPE_BF16 */
    int n, k;       /* out features, in features */
    void *w;        /* packed weights in the backend's own layout (linear_bytes); int8: CB */
    float *scb;     /* (N) int8 only: SCB[o] = max_i |W[o,i]| of the fp16 weights; NULL otherwise */
    uint16_t *bias; /* (N) in the activation dtype; NULL when the layer has none */
} Linear;

typedef struct AttnArgs {
    int rows;                     /* M */
    int heads, head_dim;          /* H, E */
    const uint16_t *q, *k, *v;    /* row r, head h at base + r*row_stride + h*head_stride (E contiguous) */
    int row_stride, head_stride;  /* in elements */
    const int32_t *slot;          /* (M) KV-cache slot of the row's sequence */
    const int32_t *pos;           /* (M) position of the row in its sequence; the row sees 0..pos */
    uint16_t *k_cache, *v_cache;  /* this layer's cache, slots * S * H * E values each, in the backend's own
                                   * layout (cpu: cpu_backend.c; cuda: (slots, H, S, E)); the rows' k/v are
                                   * written first */
    int max_seq;                  /* S */
    const float *alibi;           /* (H) ALiBi slopes (BLOOM), NULL for none */
    float score_scale;            /* scores = alibi[h]*j + score_scale * q.k  (fp32) */
    uint16_t *out;                /* (M, H*E) */
    DType act;
} AttnArgs;

typedef struct BackendOptions {
    int threads;   /* cpu: worker threads (0 = all cores available to the process) */
    int first_cpu; /* cpu: index into the process's affinity mask where this rank's threads are pinned
                      (ranks sharing a node without binding get disjoint cores); -1 = do not pin */
    int device;   /* cuda: device ordinal (node-local rank) */
} BackendOptions;

typedef struct Backend {
    const char *name; /* "cpu" | "cuda" */
    void *ctx;

    /* memory: weights arena and activations are allocated once, before the token loop */
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *p);
    void (*to_device)(void *ctx, void *dst, const void *src, size_t bytes);
    void (*to_host)(void *ctx, void *dst, const void *src, size_t bytes);
    void (*sync)(void *ctx);
    /* sizes the scratch every later op may use; called once after the model is known */
    void (*reserve)(void *ctx, int max_rows, int max_k, int max_n);

    /* weights: bytes of the packed layout, and packing from a host row-major [N, K] matrix of dtype
     * w->wdt (int8 CB plus SCB for DTYPE_I8) into w->w / w->scb, which the caller allocated */
    size_t (*linear_bytes)(void *ctx, DType wdt, int n, int k);
    void (*linear_pack)(void *ctx, Linear *w, const void *rowmajor, const float *scb);
    /* as linear_pack, for the output rows [row0, row0 + rows) only, given as a row-major [rows, K] block
     * (and their SCB): row0 a multiple of 16, the blocks in order from row0 = 0, so a loader stages a few
     * MiB at a time instead of a whole matrix. NULL where a backend packs whole matrices only. */
    void (*linear_pack_rows)(void *ctx, Linear *w, const void *rowmajor, const float *scb, int row0, int rows);

    /* ops */
    /* x[r] = table[tokens[r]] (+ pos_table[pos[r] + pos_offset] when pos_table) */
    void (*embed)(void *ctx, uint16_t *x, const int32_t *tokens, const int32_t *pos, int rows,
                  const uint16_t *table, const uint16_t *pos_table, int pos_offset, int dim, DType act);
    /* y = LayerNorm(x) * g + b over `dim`, fp32 inside; y may equal x */
    void (*layernorm)(void *ctx, uint16_t *y, const uint16_t *x, const uint16_t *g, const uint16_t *b, int rows,
                      int dim, float eps, DType act);
    /* y (M, N) of dtype ydt (act or DTYPE_F32) = x (M, K) W^T + b. For DTYPE_I8 weights this is the
     * LLM.int8() decomposed product with the given threshold (act must be DTYPE_F16). */
    void (*linear)(void *ctx, const Linear *w, const uint16_t *x, int rows, DType act, void *y, DType ydt,
                   float threshold);
    void (*attention)(void *ctx, const AttnArgs *a);
    void (*gelu)(void *ctx, uint16_t *x, size_t n, DType act); /* BLOOM's tanh form, in place */
    void (*relu)(void *ctx, uint16_t *x, size_t n, DType act);
    void (*add)(void *ctx, uint16_t *y, const uint16_t *a, const uint16_t *b, size_t n, DType act);
    /* dst[i] = src[idx[i]] for rows of `row_bytes` bytes */
    void (*gather_rows)(void *ctx, void *dst, const void *src, const int32_t *idx, int n, size_t row_bytes);
    /* y[i] = float(x[i]) for n values of dtype act (exact: every fp16 and bf16 value is an fp32 value).
     * For the int8 LM head (--int8-head), whose LLM.int8() product gives fp16 like every int8 linear,
     * while the sampler and `pp8 logits` read fp32 logits; x and y do not overlap. */
    void (*widen)(void *ctx, float *y, const uint16_t *x, size_t n, DType act);

    /* Optional (NULL where not offered, as on the CPU): issue fn(arg)'s ops, which are only ops of this
     * backend (no copies to or from the host), as one captured graph. The first call with a key captures
     * fn's ops and launches them; later calls with that key replay them without calling fn, so the key
     * must change whenever any argument of any op fn issues would. `rows` is the most rows any op of fn
     * takes. Returns 0, having run nothing, when the backend declines (rows it does not capture, graphs
     * turned off, a capture that failed): the caller then calls fn itself. */
    int (*graph_run)(void *ctx, uint64_t key, int rows, void (*fn)(void *arg), void *arg);
    /* drops every captured graph (the buffers they use are about to be freed); NULL with graph_run */
    void (*graph_reset)(void *ctx);

    /* inf/NaN in activations (issue 17), without a host wait of its own on either backend. finite_mark
     * looks at rows x dim 16-bit values at x (backend memory) and records, in the backend, the first row
     * holding an inf or NaN and the smallest `tag` (>= 0: a layer; FINITE_TAG_OUTPUT: a stage's output) of
     * the marks that found one; an op like the others (a GPU graph may hold it). finite_fetch starts
     * taking what the marks since the last fetch recorded and clears it; finite_result, after the next
     * sync or copy to the host (the GPU's record travels with the step's results), gives it: 0 when every
     * value was finite, else 1 with *row and *tag. NULL where not offered. */
    void (*finite_mark)(void *ctx, const uint16_t *x, int rows, int dim, DType act, int tag);
    void (*finite_fetch)(void *ctx);
    int (*finite_result)(void *ctx, int *row, int *tag);

    /* Optional timers for --profile (NULL on the CPU, which times ops by the wall clock between syncs):
     * timer_record enqueues a timestamp behind the ops issued so far and returns its index, -1 when its pool
     * (>= 2 * 2048) is used up; timer_ms waits for timestamp e1 and gives the milliseconds from e0 to e1;
     * timer_reset makes the pool's timestamps free again. */
    int (*timer_record)(void *ctx);
    double (*timer_ms)(void *ctx, int e0, int e1);
    void (*timer_reset)(void *ctx);

    /* name of the kernel path `linear` takes for this weight dtype and row count (for reports) */
    const char *(*linear_path)(void *ctx, DType wdt, int rows);
    void (*destroy)(void *ctx);
} Backend;

/* Returns NULL and fills err when the backend is not available (not built, no device). */
Backend *backend_cpu_create(const BackendOptions *o, char *err, size_t errlen);
Backend *backend_cuda_create(const BackendOptions *o, char *err, size_t errlen);
void backend_destroy(Backend *b);
/* CPUs in this process's affinity mask (what mpirun's binding left it) */
int backend_cpu_cores(void);

#ifdef __cplusplus
}
#endif
#endif
