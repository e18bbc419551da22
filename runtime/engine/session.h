/* What every running command (logits, generate, bench) sets up the same way: the flags they share,
 * the config, the layer split, the backend, the transport, this rank's weights and the RunState. Every
 * fallible step ends in a collective agreement, so a bad input on any rank stops all ranks together. */
#ifndef PP8_SESSION_H
#define PP8_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "../../kernels/cuda_host.h"
#include "../../parallel/transport.h"
#include "../model/config.h"
#include "../model/forward.h"
#include "../model/model.h"
#include "pipeline.h"
#include "../util/tokens.h"

typedef struct SessionOpts {
    const char *config;     /* --config: config.json (random weights unless --model) */
    const char *model;      /* --model DIR */
    DType wdt;              /* --dtype (default int8) */
    float threshold;        /* --threshold (default 6.0) */
    int threads;            /* --threads (0 = cores of this rank) */
    const char *backend;    /* --backend cpu|cuda (NULL = cuda when built and present, else cpu) */
    int exclusive_gpus;     /* --exclusive-gpus: one rank per GPU of the node, checked */
    int share_gpus;         /* --share-gpus: more ranks than GPUs, round robin, hidden states over MPI */
    double mem_per_rank;    /* --mem-per-rank in bytes (0 = node memory / ranks on the node) */
    Schedule sched;         /* --schedule */
    int micro_batches;      /* --micro-batches (0 = default) */
    uint64_t weights_seed;  /* --weights-seed: seed of --config's random weights */
    int max_seq_len;        /* --max-seq-len (0 = the model's: OPT max_position_embeddings, BLOOM 2048) */
    const char *tokenizer;  /* --tokenizer DIR (NULL = the model directory) */
    int check_finite;       /* --check-finite: look for inf/NaN after every layer, not once per stage */
    int int8_head;          /* --int8-head: the LM head in LLM.int8() too (int8 weights only; default fp16) */
    /* not flags: set by the command */
    int int8_head_int8_only; /* bench's dtype list: --int8-head applies to the int8 runs and is not refused
                              * beside fp16/bf16 ones */
    int plan_rows;          /* rows per item the workspace is planned for (0: slots x max_seq, one prefill) */
    int max_slots;          /* session_open with slots 0: the most KV slots (up to this) that fit */
} SessionOpts;

typedef struct Session {
    SessionOpts o;
    Config cfg;
    int rank, size, local_rank, local_size;
    int gpu_sharing; /* GPU ranks: the node-local ranks on this rank's GPU, itself included; else 0 */
    int *layer_begin, *layer_end; /* (size) the split every rank agreed on */
    Backend *be;
    Transport *tr;
    Model m;
    RunState rs;
    int slots;       /* the KV slots the session was opened with (the planner's choice when asked for 0) */
    bool model_loaded, rs_ready;
} Session;

void session_defaults(SessionOpts *o);
/* argv[*i] is a shared flag: consume it (and its value) and return 1; 0 when not a shared flag; -1 on a
 * bad value */
int session_flag(SessionOpts *o, int argc, char **argv, int *i, Err *e);
/* the help lines for the shared flags, with each command's own defaults (bench lists --dtype and
 * --schedule itself, as comma lists) */
typedef enum SessionHelp { SESSION_HELP_GENERATE, SESSION_HELP_LOGITS, SESSION_HELP_BENCH } SessionHelp;
const char *session_flags_help(SessionHelp which);
int parse_dtype(const char *s, DType *out, Err *e);
const char *dtype_label(DType t); /* "int8" | "fp16" | "bf16" */

/* Collective. Loads the config, splits the layers for (batch, max_seq), creates backend and transport,
 * loads this rank's weights and a RunState for max_rows rows of one micro-batch, `slots` sequences of
 * up to max_seq positions and max_out logit rows. slots 0: as many as the plan fits, up to
 * o->max_slots (s->slots says how many). */
int session_open(Session *s, const SessionOpts *o, int max_rows, int slots, int max_seq, int max_out, Err *e);
/* Collective: reload the weights in another dtype, keeping config, split, backend and transport. */
int session_reload(Session *s, DType wdt, int max_rows, int slots, int max_seq, int max_out, Err *e);
void session_close(Session *s);
/* 1 when this rank computes on a GPU (the CUDA backend) */
int session_on_gpu(const Session *s);
/* What this node's ranks see of its GPUs (cuda_host.h CudaNodeView), from their visible devices' PCI
 * bus ids gathered over the node: the device choice of cuda_pick_device. Collective over the world. */
CudaNodeView session_node_gpu_view(int local_size);
/* what one rank is, for log lines and tables: "one GPU", "1/N of a GPU" (--share-gpus) or "N thread(s)" */
const char *session_rank_desc(const Session *s, char *buf, size_t n);
/* Collective, before session_open: loads the config (--config, else --model DIR) and parses --tokens
 * against its vocabulary; max_seqs > 0 caps the sequence count (what `logits` needs). On failure every
 * rank returns -1 with nothing left allocated. */
int session_read_tokens(const SessionOpts *o, const char *tokens, int max_seqs, Config *cfg, TokenBatch *tb, Err *e);
/* Not collective: the positions a sequence may hold (--max-seq-len, else OPT's max_position_embeddings
 * or 2048 for ALiBi models); -1 when --max-seq-len is beyond what the model can place */
int session_max_seq_len(const SessionOpts *o, const Config *c, int *out, Err *e);
/* Collective: rank 0's token batch (made from text there) copied to every rank */
int session_bcast_tokens(TokenBatch *tb, Err *e);
/* the config.json a session reads: --config, else --model's own */
const char *session_config_path(const SessionOpts *o);
/* the tokenizer directory: --tokenizer, else --model; NULL with e set when there is neither */
const char *session_tokenizer_dir(const SessionOpts *o, Err *e);
/* The pipelined schedule's default micro-batch count for a batch: plan_default_micro_batches' measured
 * rule, min(stages, max(1, batch / 4)). Not collective; every rank computes the same. */
int session_default_micro_batches(const Session *s, int batch);

/* Every rank returns the same verdict: 0 when no rank failed, else -1 with e holding the first
 * failing rank's message. */
int session_agree(int rc, Err *e);

#endif
