/* The pipeline schedule: micro-batches flow through the stages (ranks), hidden states cross over the
 * Transport, sampled token ids come back from the last rank to the first over MPI. Two schedules:
 * pipelined (stage r works on micro-batch i while stage r-1 works on i+1) and naive (one micro-batch
 * in flight at a time, like accelerate's device_map). Results are identical for both and for any rank
 * count, given the same micro-batch composition. Knows nothing about kernels or checkpoints. */
#ifndef PP8_PIPELINE_H
#define PP8_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "../../parallel/transport.h"
#include "../model/forward.h"

typedef enum { SCHED_PIPELINED = 0, SCHED_NAIVE = 1 } Schedule;

typedef struct Engine {
    Model *m;
    RunState *rs;
    Transport *tr;
    int rank, size;
    Schedule sched;

    /* the batch: every rank knows the lengths; only rank 0 needs the prompt tokens */
    int nseq;
    const int *len;            /* (nseq) prompt lengths */
    const int32_t *const *prompt; /* (nseq) prompts, rank 0 */
    int M;                     /* micro-batches */
    int *group;                /* (M + 1) sequence boundaries of the micro-batches (generate) */
    bool chunked;              /* logits mode: one sequence, its prompt split into M chunks */
    int *chunk;                /* (M + 1) token boundaries (logits mode) */

    int32_t *next_tok;         /* (nseq) the token each sequence feeds next (rank 0 and last) */
    int32_t *out;              /* (nseq, max_new) generated ids (rank 0 and last) */
    int max_new;
    float *all_logits;         /* (T, V) host, logits mode, last rank */

    int32_t *h_tok, *h_pos, *h_slot, *h_out; /* (R) host row descriptors */
    int32_t *h_sampled;                      /* (R) */
    float *h_logits;                         /* (max_out, V) logits on the host: a copy, or rs->logits itself
                                                on a host backend (own_logits = 0) */
    bool own_logits;
    void *sendbuf[4];          /* send ring: host (MPI) or device (NCCL) */
    void *recvbuf;             /* host staging of MPI receives for a device backend */
    bool device_ring;          /* sendbuf are backend (device) buffers: the NCCL transport */
    bool staged;
    int sendreq[4];
    long items_done, items_recv;             /* work items finished (last rank) / received (rank 0) */
    double busy_s;                           /* compute seconds since the last engine_reset_busy */
} Engine;

/* Split B sequences (or T tokens) into M contiguous groups whose sizes differ by at most one. */
void pipeline_split(int *bounds, int n, int M);

/* Sets up the batch (micro-batches of whole sequences; M is capped by the batch size). */
int engine_init(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, int nseq, const int *len,
                const int32_t *const *prompt, int M, int max_new, Err *e);
/* logits mode: one sequence of T tokens in M chunks; logits of every row land in all_logits */
int engine_init_chunked(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, int T,
                        const int32_t *tokens, int M, Err *e);
void engine_free(Engine *en);

/* Runs steps [first, last): step 0 is the prefill (produces each sequence's first new token), step t > 0
 * decodes one token per sequence. Returns when every rank has finished them. */
void engine_run(Engine *en, int first, int last);

#endif
