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

/* Per-op time of stage_forward() (pp8 bench --profile). Where the backend has timers (the GPU: event pairs
 * around each op, read after the step) the ops run as they would without profiling, on one stream, with no
 * host waits between them; elsewhere (the CPU) each op is timed between two syncs by the wall clock. */
typedef enum ProfOp {
    PROF_EMBED, PROF_LAYERNORM, PROF_QKV, PROF_ATTENTION, PROF_OUT, PROF_FC1, PROF_ACT, PROF_FC2, PROF_ADD, PROF_HEAD,
    PROF_SAMPLE, PROF_COUNT
} ProfOp;
extern const char *const prof_op_name[PROF_COUNT];

#define PROF_LAYERS 128   /* per-layer slots; a stage's layers from here on share the last one's */
#define PROF_PENDING 2048 /* timed ops whose timers are read at the end of the step */
typedef struct Prof {
    /* the doubles first, in this order: what pp8 bench gathers from every rank (PROF_DOUBLES) */
    double s[PROF_COUNT];                            /* seconds per op, summed over layers and steps */
    double layer_s[PROF_LAYERS + 1][PROF_COUNT];     /* by this stage's layer; [PROF_LAYERS]: outside layers */
    double layer_bytes[PROF_LAYERS + 1][PROF_COUNT]; /* bytes they read from weights and the KV cache (0: the
                                                      * op's bytes are not counted) */
    int npend;
    struct { int op, layer, e0, e1; } pend[PROF_PENDING];
} Prof;
#define PROF_DOUBLES (PROF_COUNT * (1 + 2 * (PROF_LAYERS + 1)))
/* reads the pending timers into the sums (waits for the last of them) */
void prof_flush(Backend *be, Prof *p);

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
    Prof *prof;   /* NULL: not profiling */
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
