/* One pipeline stage's forward pass over the rows of one micro-batch, read top to bottom: embedding on
 * the first rank, this rank's layers, final LayerNorm and LM head on the last. Sending and receiving
 * happen around it (pipeline.c), never inside the layer loop.
 *
 * R rows of the largest micro-batch, B KV-cache slots (sequences), S max sequence, D hidden, F ffn,
 * V vocab, L local layers, H heads, E head_dim */
#ifndef PP8_FORWARD_H
#define PP8_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Per-op wall time of stage_forward() (pp8 bench --profile): the backend is synchronized around each op,
 * so the figures hold for asynchronous backends too, at some cost. */
typedef enum ProfOp {
    PROF_EMBED, PROF_LAYERNORM, PROF_QKV, PROF_ATTENTION, PROF_OUT, PROF_FC1, PROF_ACT, PROF_FC2, PROF_ADD, PROF_HEAD,
    PROF_SAMPLE, PROF_COUNT
} ProfOp;
extern const char *const prof_op_name[PROF_COUNT];

typedef struct RunState {
    int max_rows, slots, max_seq, max_out;
    uint16_t *x;      /* (R, D) residual stream; what crosses between ranks */
    uint16_t *h;      /* (R, D) LayerNorm output */
    uint16_t *qkv;    /* (R, 3D) BLOOM rows [head][q|k|v][E], OPT rows [q|k|v][D] */
    uint16_t *att;    /* (R, D) attention output */
    uint16_t *ffn;    /* (R, F) */
    uint16_t *tmp;    /* (R, D) projection outputs before the residual add */
    uint16_t *sel;    /* (max_out, D) rows that need logits */
    float *logits;    /* (max_out, V) last rank */
    uint16_t *logits16; /* (max_out, V) last rank with an int8 LM head: its fp16 output before widening;
                         * NULL otherwise */
    int32_t *tokens, *pos, *slot, *out_idx; /* (R) backend copies of the row descriptors */
    uint16_t *k_cache, *v_cache;            /* per layer B * S * H * E values, laid out by the backend */
    void *arena;
    size_t arena_bytes, kv_bytes;
    double *prof; /* (PROF_COUNT) seconds per op, summed; NULL: not profiling */
    uint32_t id;  /* unique per runstate_alloc in this process: part of the backend's graph keys */
    bool check_layers; /* --check-finite: a finite_mark after every layer, tagged with its number */
} RunState;

/* bytes runstate_alloc will take (activations + KV cache), for the planner and error messages */
size_t runstate_bytes(const Model *m, int max_rows, int slots, int max_seq, int max_out, size_t *kv_bytes);
int runstate_alloc(RunState *rs, const Model *m, int max_rows, int slots, int max_seq, int max_out, Err *e);
void runstate_free(RunState *rs, const Model *m);

/* rows: token ids (first rank), position and KV slot of each row (host arrays). On the first rank the
 * input comes from the embedding, elsewhere from rs->x (received). On the last rank the logits of the
 * nout rows listed in out_idx land in rs->logits (backend memory). */
void stage_forward(const Model *m, RunState *rs, int rows, const int32_t *tokens, const int32_t *pos,
                   const int32_t *slot, const int32_t *out_idx, int nout);

#endif
