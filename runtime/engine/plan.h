/* Memory planner (DESIGN.md "Memory planner"): which contiguous layers each rank owns, what every rank
 * holds in memory (weights, KV cache, workspace, reserve) and a roofline time per decode step that
 * balances the split. `pp8 plan` prints it; the pipeline runtime calls plan_compute() to place layers
 * and to refuse a model that does not fit before loading. It reads no weights and allocates nothing on
 * a device; its times are models (bytes at full bandwidth, operations at dense peak), not measurements.
 * B batch, T prompt tokens, G generated tokens, D hidden, F ffn, V vocab, L layers, S stages, M micro-batches */
#ifndef PP8_PLAN_H
#define PP8_PLAN_H

#include <stdbool.h>
#include <stdio.h>

#include "../../kernels/dtype.h"
#include "../model/config.h"
#include "../util/err.h"

typedef enum { DEVICE_GPU = 0, DEVICE_CPU = 1 } DeviceKind;

/* One rank's accelerator (or CPU share). Bandwidths in GB/s = 1e9 B/s, peaks dense, per rank. */
typedef struct Device {
    char name[64];          /* preset name ("a100-80g") or "cpu" */
    char description[128];  /* "NVIDIA A100-SXM4-80GB" */
    DeviceKind kind;
    double mem_bytes;       /* memory per rank, as nvidia-smi reports it (MiB * 2^20) */
    double mem_bw_gbs;      /* HBM / DRAM read bandwidth */
    double int8_tops;       /* int8 tensor-core / AMX peak, 1e12 op/s */
    double fp16_tflops;     /* fp16 peak (with fp32 accumulation) */
    double bf16_tflops;     /* bf16 peak: the same as fp16 on A100/H100; on the CPU AMX-BF16 is far above
                               fp16, which has no fp32-accumulating matrix unit there */
    double link_gbs;        /* stage-to-stage within a node, one direction (NVLink; shared-memory MPI) */
    double net_gbs;         /* stage-to-stage across nodes, one direction (InfiniBand) */
    double link_latency_us; /* per message, both kinds of link */
    int ranks_per_node;     /* GPUs per node: hops at multiples of it use net_gbs; 0 = one node */
    double reserve_bytes;   /* fixed runtime reserve (CUDA context, cuBLASLt workspace, NCCL buffers) */
    char reserve_what[192]; /* its parts, "cuda_context 512 + cublaslt_workspace 4 + nccl 256 MiB" */
    char notes[640];        /* where the reserve and the peaks come from; pp8 plan prints it */
} Device;

/* Loads configs/accel/NAME.json (directory: $PP8_CONFIGS if set, else the source tree's configs/).
 * Unknown name: error listing the presets there. */
int device_preset(Device *d, const char *name, Err *e);
/* A CPU rank: mem_bytes of memory, read_gbs of practical DRAM read bandwidth, `threads` cores.
 * Compute peaks of this machine kind from shared/ANCHORS.md (AMX int8 ~2 TOP/s, bf16 ~1 TFLOP/s per core). */
void device_cpu(Device *d, double mem_bytes, double read_gbs, int threads);

typedef struct PlanRequest {
    DType dtype;       /* DTYPE_I8 (LLM.int8() linears), DTYPE_F16 or DTYPE_BF16 */
    int batch;         /* B sequences */
    int prompt_len;    /* T */
    int gen;           /* G new tokens per sequence; the KV cache holds T + G positions */
    int ranks;         /* > 0: exactly this many stages; 0: the minimum that fits (1..L) */
    int micro_batches; /* pipelined schedule's M; 0 = plan_default_micro_batches() */
    Device dev;
    int rows;          /* rows one pipeline item holds at most (a server's token budget), which sizes the
                          activation workspace; 0 = B x T, the whole prefill in one item */
    bool int8_head;    /* --int8-head: the LM head int8 too (dtype DTYPE_I8 only; ignored otherwise) */
    int balance_ctx;   /* > 0: the decode context the split balances on (a session sizes its cache for T =
                          --max-seq-len positions, which its sequences fill half of on average); 0: the mean
                          context of the request's decode, T + (G+1)/2 */
} PlanRequest;

typedef struct PlanBytes {
    double weights, kv_cache, workspace, reserve;
    double total; /* = weights + kv_cache + workspace + reserve, exactly (integers in a double) */
} PlanBytes;

typedef struct PlanStage {
    int rank;
    int layer_begin, layer_end; /* half-open [begin, end) */
    PlanBytes bytes;
    double embed_bytes; /* part of weights: embedding (+ its LayerNorm, + OPT positions) on the first rank */
    double head_bytes;  /* part of weights: final LayerNorm + LM head copy on the last rank */
    double modelled_ms; /* one decode step of the whole batch through this stage (roofline) */
} PlanStage;

/* The unit sizes every total is built from (bytes), so a printout can show them adding up. */
typedef struct PlanTerms {
    double layer_linear, layer_scales, layer_16bit, layer; /* one decoder layer */
    double embed, embed_norm, positions;                   /* first rank */
    double final_norm, lm_head;                            /* last rank (one rank owning both: tied head not again,
                                                              unless it is int8: --int8-head) */
    double kv_layer;                                       /* KV cache of one layer for (B, T + G) */
    double ws_hidden, ws_qkv, ws_ffn, ws_scores, ws_int8;  /* workspace, every rank */
    double ws_logits;                                      /* workspace, last rank only (+ fp16 logits: int8 head) */
    double rows;                                           /* B * T: the prefill rows the workspace is sized for */
} PlanTerms;

typedef struct Plan {
    DType dtype;
    bool int8_head; /* the LM head is int8 (the request's int8_head with dtype int8) */
    int batch, prompt_len, gen;
    int ranks; /* = nstages */
    bool fits;
    int nstages;
    PlanStage *stages; /* nstages, malloc'd: plan_free() */
    double budget_bytes;
    PlanTerms terms;
    int micro_batches;            /* M used for the pipelined numbers (the request's, or the default) */
    double decode_ms_naive;       /* one decode step (every sequence one token), M = 1, stages in turn */
    double decode_ms_pipelined;   /* same with M micro-batches overlapping across stages */
    double prefill_ms_naive, prefill_ms_pipelined;
    double modelled_ms_per_token; /* pipelined decode step / B (DESIGN.md "ms per token") */
    bool weight_bound;            /* decode at B rows reads weights longer than it computes */
    char why[512];                /* when !fits: the term that prevents it */
    char why_not_fewer[512];      /* when fits with ranks auto and > 1: why one rank fewer does not fit */
} Plan;

/* Returns 0 and fills p (p->fits false when it does not fit: that is an answer, not an error), or -1
 * for bad input: ranks > layers, non-positive memory/bandwidth/peaks, config fields the planner needs
 * missing, micro_batches > batch. Call plan_free(p) after a 0 return. Deterministic. */
int plan_compute(const Config *c, const PlanRequest *r, Plan *p, Err *e);
void plan_free(Plan *p);
/* M for the pipelined schedule: micro-batches of at least 4 sequences, at most one per stage,
 * min(S, max(1, B / 4)) (measured; see plan.c). */
int plan_default_micro_batches(const Config *c, const PlanRequest *r, const Plan *p);
/* Modelled times (ms) of plan p's split with M micro-batches of ceil(B/M) sequences. */
double plan_decode_ms(const Config *c, const PlanRequest *r, const Plan *p, int m, bool pipelined);
double plan_prefill_ms(const Config *c, const PlanRequest *r, const Plan *p, int m, bool pipelined);
/* Per-rank table (GiB = 2^30 B), the terms and the modelled times, labelled as a model. */
void plan_print(FILE *f, const Config *c, const PlanRequest *r, const Plan *p);
const char *plan_dtype_name(DType t); /* "int8", "fp16", "bf16" */

#endif
