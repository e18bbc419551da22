/* The pipeline schedule: work items (one micro-batch of rows) flow through the stages (ranks). Rank 0
 * decides every item: it builds the item's row descriptors (DESIGN.md "The row descriptor": token,
 * position, KV slot, whether logits are wanted), sends them down the pipeline over MPI ahead of the
 * hidden state, and gets the sampled ids back from the last rank. Two schedules: pipelined (stage r
 * works on micro-batch i while stage r-1 works on i+1) and naive (one item in flight at a time, like
 * accelerate's device_map). Results are identical for both and for any rank count, given the same
 * micro-batch composition. A sequence leaves its micro-batch as soon as it finishes (EOS, a stop the
 * caller detects, or its token budget). Knows nothing about kernels, checkpoints or text. */
#ifndef PP8_PIPELINE_H
#define PP8_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "../../parallel/transport.h"
#include "../model/forward.h"
#include "../text/sampler.h"

typedef enum { SCHED_PIPELINED = 0, SCHED_NAIVE = 1 } Schedule;

/* why a sequence stopped (generate's finish_reason: "length" for FINISH_LENGTH, "stop" otherwise) */
typedef enum { FINISH_NONE = 0, FINISH_LENGTH, FINISH_EOS, FINISH_STOP } Finish;

/* rank 0, for every generated id in the order they arrive: return 1 to stop the sequence there (a stop
 * string matched), else 0 */
typedef int (*EngineTokenFn)(void *ctx, int seq, int32_t id);
/* last rank, logits mode: the logits of prompt position t (V values; the buffer is reused after) */
typedef void (*EngineLogitsFn)(void *ctx, int t, const float *row, int V);

typedef struct Engine {
    Model *m;
    RunState *rs;
    Transport *tr;
    int rank, size;
    Schedule sched;

    /* the batch: every rank knows the lengths; only rank 0 needs the prompt tokens */
    int nseq;
    const int *len;               /* (nseq) prompt lengths */
    const int32_t *const *prompt; /* (nseq) prompts, rank 0 */
    int M;                        /* micro-batches */
    int *group;                   /* (M + 1) sequence boundaries of the micro-batches (generate) */
    bool chunked;                 /* logits mode: one sequence, its prompt split into M chunks */
    const int32_t *tokens;        /* logits mode: the sequence (rank 0) */
    int *chunk;                   /* (M + 1) token boundaries (logits mode) */
    int want_from;                /* logits mode: positions >= want_from get logits (default 0: all) */
    EngineLogitsFn on_logits;     /* logits mode, last rank */
    void *logits_ctx;

    /* generation; set after engine_init, before engine_run */
    const SampleParams *params; /* (nseq) every rank (the last samples with them); NULL: greedy */
    int32_t eos_id;             /* config.json's eos_token_id, checked on generated ids only; -1: none */
    EngineTokenFn on_token;     /* rank 0; NULL: none */
    void *token_ctx;

    /* rank 0 (and the last rank when it is rank 0) */
    int32_t *next_tok; /* (nseq) the token each sequence feeds next */
    int32_t *out;      /* (nseq, max_new) generated ids */
    int *ngen;         /* (nseq) ids generated so far */
    Finish *finish;    /* (nseq) */
    int max_new;
    /* items in flight, oldest first: their group and the sequences of their logit rows, in order */
    int fifo_cap, fifo_head, fifo_len;
    int *fifo_group, *fifo_nout; /* (fifo_cap) */
    int32_t *fifo_seq;           /* (fifo_cap, nseq) */
    bool *group_busy;            /* (M) the group has an item in flight (pipelined gating) */
    int32_t *ids_back;           /* (nseq) sampled ids as they come back */

    /* last rank */
    int32_t *hist;          /* (nseq, max_seq) the token at each position: the repetition penalty's ids */
    int *nsampled;          /* (nseq) draws so far: the step of the next draw's random stream */
    SamplerScratch *sample; /* V scores of work space */

    int32_t *h_tok, *h_pos, *h_slot, *h_out; /* (R) host row descriptors of the current item */
    int32_t *h_sampled;                      /* (R) */
    int32_t *desc[4];                        /* (3 + 4R) ring: items as they travel down the pipeline */
    int desc_req[4];
    int32_t *reply[4];                       /* (R) ring, last rank: sampled ids going back to rank 0 */
    int reply_req[4];
    long items;                              /* items this rank has handled: the rings' position */
    float *h_logits;                         /* (max_out, V) logits on the host: a copy, or rs->logits itself
                                                on a host backend (own_logits = 0) */
    bool own_logits;
    void *sendbuf[4]; /* send ring: host (MPI) or device (NCCL) */
    void *recvbuf;    /* host staging of MPI receives for a device backend */
    bool device_ring; /* sendbuf are backend (device) buffers: the NCCL transport */
    bool staged;
    int sendreq[4];
    double busy_s;   /* compute seconds since the last reset (the caller zeroes it) */
} Engine;

/* Split B sequences (or T tokens) into M contiguous groups whose sizes differ by at most one. */
void pipeline_split(int *bounds, int n, int M);

/* Sets up the batch (micro-batches of whole sequences; M is capped by the batch size). Every sequence
 * generates up to max_new ids. Greedy, no EOS and no callback until the caller sets params, eos_id
 * and on_token. */
int engine_init(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, int nseq, const int *len,
                const int32_t *const *prompt, int M, int max_new, Err *e);
/* logits mode: one sequence of T tokens in M chunks; the last rank hands the logits of every position
 * >= want_from to on_logits */
int engine_init_chunked(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, int T,
                        const int32_t *tokens, int M, Err *e);
void engine_free(Engine *en);

/* Runs steps [first, last): step 0 is the prefill (produces each sequence's first new token), step t > 0
 * decodes one token per running sequence. It stops early when every sequence has finished. Returns
 * when every rank has finished the items. Collective. */
void engine_run(Engine *en, int first, int last);
/* rank 0: the sequences still running */
int engine_running(const Engine *en);

#endif
