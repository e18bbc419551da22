/* The engine: iteration-level (continuous) batching through the pipeline of ranks, one for generate,
 * bench, logits, perplexity and serve. Rank 0 schedules: sequences are admitted into free KV slots and
 * M in-flight groups; each work item (one micro-batch) carries a group's next rows: one decode row per
 * running sequence and chunks of prompts still being read, within a token budget, so a long prompt
 * does not stall the others. Rank 0 sends every item's row descriptors (DESIGN.md "The row
 * descriptor") down the pipeline over MPI ahead of the hidden state, with the sampling parameters of
 * each sequence that starts in it; the last rank samples (or scores prompt tokens, or hands raw logits
 * to a callback) and sends the results back to rank 0, which ends sequences on EOS, on the client's
 * word (a stop string, a cancelled request) or at their token budget. A finished sequence leaves at
 * once and its slot is reused.
 * Two schedules: pipelined (stage r works on one group's item while stage r-1 works on the next) and
 * naive (one item in flight at a time, like accelerate's device_map). A group's next item waits for
 * its previous one when that one produces tokens, so what an item holds never depends on timing: given
 * the same sequences, admission and M, results are identical for both schedules and any rank count.
 * Knows nothing about kernels, checkpoints, text or HTTP. */
#ifndef PP8_PIPELINE_H
#define PP8_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "../../parallel/transport.h"
#include "../model/forward.h"
#include "../text/sampler.h"

typedef enum { SCHED_PIPELINED = 0, SCHED_NAIVE = 1 } Schedule;

/* why a sequence stopped: generate's and serve's finish_reason "length" (LENGTH), "stop" (EOS, STOP),
 * "abort" (CANCELLED), "error" (ERROR: non-finite logits) */
typedef enum { FINISH_NONE = 0, FINISH_LENGTH, FINISH_EOS, FINISH_STOP, FINISH_CANCELLED, FINISH_ERROR } Finish;
const char *finish_reason(Finish f);

#define ENGINE_MAX_TOP 5 /* top alternatives per token the last rank can return (OpenAI's logprobs limit) */

/* one token's log-probability under the raw model distribution (log_softmax of the logits, before
 * any penalty or warper), and the top alternatives */
typedef struct EngineLogprob {
    float logprob;
    int ntop;
    int32_t top_id[ENGINE_MAX_TOP];
    float top_lp[ENGINE_MAX_TOP];
} EngineLogprob;

/* One sequence as rank 0's client hands it to the engine. The client sets the first block, calls
 * engine_admit, and owns the struct again after on_finish. */
typedef struct EngineSeq {
    const int32_t *prompt; /* (nprompt) ids, alive until on_finish */
    int nprompt;           /* >= 1 */
    int max_new;           /* ids to generate at most; 0: only read (score) the prompt */
    SampleParams sp;
    uint64_t stream;       /* the index of its draw stream (generate: its batch index; serve: the choice's) */
    int logprobs;          /* -1: none; else log-probabilities with this many alternatives (<= ENGINE_MAX_TOP) */
    bool prompt_logprobs;  /* score every prompt token after the first too (echo + logprobs) */
    int logits_from;       /* -1: none; else prompt positions >= it hand their raw logits to on_logits */
    bool ignore_eos;
    int group;             /* -1: the engine picks the group with the fewest sequences */
    void *user;

    /* the engine's */
    int slot;              /* -1 while waiting for a slot */
    int sent;              /* prompt tokens sent down the pipeline */
    int ngen;              /* ids generated */
    int32_t last;          /* the last id generated: what the next decode row feeds */
    Finish finish;
    int inflight;          /* items in flight that carry rows of it */
    struct EngineSeq *next; /* the engine's waiting / finished lists */
} EngineSeq;

struct Engine;
/* rank 0's client */
typedef struct EngineHooks {
    void *ctx;
    /* Between items: admit new sequences (engine_admit) and cancel some (engine_cancel). When the
     * engine has nothing to do it passes wait_s > 0: block up to that long for new work. Return 1 once no
     * more sequences will come (the engine then returns when the admitted ones are done). */
    int (*poll)(void *ctx, struct Engine *en, double wait_s);
    /* each generated id with its log-probabilities (NULL unless asked); return 1 to end the sequence
     * there (a stop string matched) */
    int (*on_token)(void *ctx, EngineSeq *s, int32_t id, const EngineLogprob *lp);
    /* prompt_logprobs: the log-probability of prompt token pos (>= 1) given the tokens before it */
    void (*on_prompt_logprob)(void *ctx, EngineSeq *s, int pos, const EngineLogprob *lp);
    /* the sequence is done (s->finish) and nothing in flight refers to it */
    void (*on_finish)(void *ctx, EngineSeq *s);
} EngineHooks;

/* last rank, logits_from: the raw logits of prompt position t (V values; the buffer is reused after) */
typedef void (*EngineLogitsFn)(void *ctx, int t, const float *row, int V);

typedef struct Engine {
    Model *m;
    RunState *rs;
    Transport *tr;
    int rank, size;
    Schedule sched;
    int M;          /* in-flight groups */
    int budget;     /* rows per item at most (decode rows + prompt chunks) = rs->max_rows */
    int slots;      /* KV slots = rs->slots */
    int32_t eos_id; /* config.json's eos_token_id, checked on generated ids only; -1: none */
    bool static_batching; /* admit only when no sequence is running (the comparison baseline) */
    EngineLogitsFn on_logits; /* last rank */
    void *logits_ctx;

    /* rank 0 */
    EngineHooks hooks;
    EngineSeq **by_slot;    /* (slots) NULL: free */
    int *group_seqs;        /* (M) sequences in each group */
    bool *group_wait;       /* (M) the group's last item in flight produces tokens: its next item waits */
    int *group_inflight;    /* (M) items in flight per group */
    EngineSeq *wait_head, *wait_tail; /* admitted, waiting for a slot, in order */
    EngineSeq *done;        /* finished, on_finish pending (inflight > 0) */
    int running;            /* sequences in slots */
    int limit;              /* engine_run's: sequences with ngen >= limit are not scheduled */
    int fifo_cap, fifo_head, fifo_len;
    int *fifo_group, *fifo_nout, *fifo_nm; /* (fifo_cap) group, logit rows, member sequences */
    EngineSeq **fifo_seq;          /* (fifo_cap, budget) the sequence of each logit row */
    int32_t *fifo_kind;            /* (fifo_cap, budget) OUT_SAMPLE, or the prompt position scored (>= 1) */
    int32_t *reply_in;             /* a reply as it arrives */
    int32_t *item_kind;            /* (budget) the current item's out-row kinds */
    EngineSeq **item_seq;          /* (budget) */
    double busy_rank[64];          /* each rank's compute seconds, as the last reply said (rank 0: own) */

    /* last rank */
    SampleParams *slot_sp;  /* (slots) each slot's sampling parameters, from its start record */
    uint64_t *slot_stream;  /* (slots) */
    int *slot_logprobs;     /* (slots) */
    int *nsampled;          /* (slots) draws so far: the step of the next draw's random stream */
    int32_t *hist;          /* (slots, max_seq) the token at each position: the repetition penalty's ids */
    SamplerScratch *sample; /* V scores of work space */
    float *raw;             /* (V) a copy of a row's raw logits when log-probabilities are asked */

    int32_t *h_tok, *h_pos, *h_slot, *h_out, *h_target; /* (R) the current item's rows and logit rows */
    int32_t *h_sampled;                      /* (R * reply record) the current item's results */
    int nstart;
    int32_t *h_start;                        /* (R, START_WORDS) start records of the current item */
    int32_t *desc[4];                        /* ring: items as they travel down the pipeline */
    int desc_req[4];
    int32_t *reply[4];                       /* ring, last rank: results going back to rank 0 */
    int reply_req[4];
    size_t desc_words, reply_words;
    long items;                              /* items this rank has handled: the rings' position */
    long nonfinite_items;                    /* items whose hidden state left this stage with inf/NaN */
    float *h_logits;                         /* (max_out, V) logits on the host: a copy, or rs->logits itself
                                                on a host backend (own_logits = 0) */
    bool own_logits;
    void *sendbuf[4]; /* send ring: host (MPI) or device (NCCL) */
    void *recvbuf;    /* host staging of MPI receives for a device backend */
    bool device_ring; /* sendbuf are backend (device) buffers: the NCCL transport */
    bool staged;
    int sendreq[4];
    double busy_s;    /* this rank's compute seconds (the caller may zero it between runs) */
} Engine;

/* Split n sequences (or tokens) into M contiguous groups whose sizes differ by at most one. */
void pipeline_split(int *bounds, int n, int M);

/* Every rank. M groups (>= 1), items of at most rs->max_rows rows, rs->slots sequences at a time. */
int engine_init(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, int M, Err *e);
void engine_free(Engine *en);

/* rank 0, from hooks->poll or before engine_run: hand a sequence to the engine (it waits for a slot) */
void engine_admit(Engine *en, EngineSeq *s);
/* rank 0: end a sequence now (FINISH_CANCELLED unless finish says otherwise); its slot is free at once */
void engine_cancel(Engine *en, EngineSeq *s, Finish finish);
/* rank 0: sequences in slots, and waiting for one */
int engine_running(const Engine *en);
int engine_waiting(const Engine *en);

/* Collective. Rank 0 runs the schedule with its hooks until poll has said no more will come and every
 * sequence is finished or has generated `limit` ids (INT_MAX: no limit; bench's prefill phase: 1),
 * then tells the other ranks, which follow the items until then. */
void engine_run(Engine *en, const EngineHooks *hooks, int limit);

#endif
