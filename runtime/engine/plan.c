/* Memory planner and time model: the layer split, every byte a rank holds, and a roofline time per
 * stage (see plan.h). The memory model and the time model are each documented in ONE place below; the
 * code under them only adds those terms up. It does not model kernel efficiency, allocator
 * fragmentation or the host side of a rank, and it never shrinks a term to make a plan fit.
 * B batch, T prompt tokens, G generated tokens, D hidden, F ffn, H heads, V vocab, L layers, S stages */
#include "plan.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef PP8_CONFIGS_DIR
#define PP8_CONFIGS_DIR "configs"
#endif

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MIB (1024.0 * 1024.0)

/* ==== The memory model: every term, in one place ======================================================
 *
 * Per decoder layer (BLOOM and OPT have the same linear shapes; BLOOM's F = 4D):
 *   linear weights  Nlin = 3D·D (qkv) + D·D (attention out) + F·D (fc1 / dense_h_to_4h)
 *                          + D·F (fc2 / dense_4h_to_h)                     = 4D² + 2DF parameters
 *                   int8: 1 byte each, plus SCB: one float32 per output row, rows = 3D + D + F + D
 *                   (bitsandbytes' Int8Params row-wise scale); fp16/bf16: 2 bytes each
 *   16-bit rest     biases 3D + D + F + D, two LayerNorms (weight + bias) 4D: 2 bytes each in every mode
 *                   (transformers keeps them 16-bit in 8-bit models; DESIGN.md "Other numerics")
 *   BLOOM-176B (D 14336): int8 12D² + 36D + 26D = 2 467 139 584 B ≈ 2.47 GB; bf16 4 932 874 240 B
 *   ≈ 4.93 GB, as shared/ANCHORS.md "Memory facts" says.
 * First rank: token embedding V·D·2 (16-bit in every mode; 7.19 GB for BLOOM-176B), BLOOM's
 *   word_embeddings_layernorm 2D·2, OPT's learned positions (max_pos + 2)·D·2 (offset 2,
 *   transformers OPTLearnedPositionalEmbedding).
 * Last rank: final LayerNorm 2D·2 and the LM head V·D·2 (16-bit in every mode). With tied weights the
 *   head is the embedding matrix: first and last rank each hold a copy, one rank owning both holds one.
 *   --int8-head (int8 mode): the head is V·D int8 + V·4 SCB, a copy of its own even on a rank that also
 *   holds the 16-bit embedding (BLOOM-176B: 3.60 GB instead of 7.19 GB).
 * KV cache: 2 (k, v) × layers of the rank × B × (T + G) × D × 2 bytes (fp16; bf16 in bf16 mode),
 *   preallocated for the whole generation (DESIGN.md "Data flow"); ≈ 4.0 MB per token for BLOOM-176B.
 * Activation workspace: one arena per rank sized once for the largest step, the prefill of R = B·T rows
 *   (STYLE.md "size first, allocate once"), so the terms add up rather than overlap:
 *     hidden   5·R·D·2      residual stream, LayerNorm output, attention context, receive + send buffers
 *     qkv      R·3D·2       fused (BLOOM) or separate (OPT) q, k, v projections
 *     ffn      R·F·2        fc1 output, activation applied in place
 *     scores   B·H·max(T·T, T+G)·4   fp32 attention scores of every head (DESIGN.md: fp32 before softmax):
 *                           prefill T×T, decode 1×(T+G)
 *     int8     R·max(D,F) (CA, int8 activations) + R·4 (SCA) + R·max(3D,F)·4 (int32 accumulator)
 *              + 256·(R + max(3D,F))·2 (outlier columns of X and the dequantized columns of W for up to
 *              256 outlier features; generous: the LLM.int8() paper (Dettmers et al. 2022, §3) finds
 *              ~150k outliers per sequence in 6.7B but concentrated in only 6 hidden dimensions)
 *     logits   R·V·4        last rank only: fp32 logits of every position (what `pp8 logits` writes),
 *              + R·V·2 with --int8-head: the head's fp16 output before it is widened to fp32
 * Reserve: the device preset's fixed reserve (CUDA context, cuBLASLt workspace, NCCL buffers; the
 *   preset's notes say where each number comes from). Small for a CPU rank.
 * total = weights + kv_cache + workspace + reserve, and a plan fits when every rank's total ≤ its memory.
 * ====================================================================================================== */
static void terms_compute(const Config *c, const PlanRequest *r, PlanTerms *t)
{
    const double D = c->hidden, F = c->ffn, V = c->vocab, H = c->heads;
    const double B = r->batch, T = r->prompt_len, G = r->gen;
    const bool int8 = r->dtype == DTYPE_I8, int8_head = int8 && r->int8_head;
    const double nlin = 4 * D * D + 2 * D * F, out_rows = 3 * D + D + F + D;
    memset(t, 0, sizeof *t);
    t->layer_linear = nlin * (int8 ? 1 : 2);
    t->layer_scales = int8 ? 4 * out_rows : 0;
    t->layer_16bit = 2 * (out_rows + 4 * D);
    t->layer = t->layer_linear + t->layer_scales + t->layer_16bit;
    t->embed = V * D * 2;
    t->embed_norm = c->arch == ARCH_BLOOM ? 2 * D * 2 : 0;
    t->positions = c->arch == ARCH_OPT ? ((double)c->max_pos + 2) * D * 2 : 0;
    t->final_norm = 2 * D * 2;
    t->lm_head = int8_head ? V * D + 4 * V : V * D * 2;
    t->kv_layer = 2 * B * (T + G) * D * 2;
    /* a server reads prompts in chunks of r->rows rows (decode rows included), each attending to up to
     * T + G keys; otherwise the whole prefill of B x T rows is one step */
    const double R = r->rows > 0 ? r->rows : B * T, widest_in = fmax(D, F), widest_out = fmax(3 * D, F);
    t->rows = R;
    t->ws_hidden = 5 * R * D * 2;
    t->ws_qkv = R * 3 * D * 2;
    t->ws_ffn = R * F * 2;
    t->ws_scores = r->rows > 0 ? R * H * (T + G) * 4 : B * H * fmax(T * T, T + G) * 4;
    t->ws_int8 = int8 ? R * widest_in + R * 4 + R * widest_out * 4 + 256 * (R + widest_out) * 2 : 0;
    t->ws_logits = R * V * (int8_head ? 4 + 2 : 4);
}

/* What a rank owning k layers holds; first/last say whether it owns the embedding / the head. */
static PlanBytes stage_bytes(const Config *c, const PlanRequest *r, const PlanTerms *t, int k, bool first,
                             bool last, double *embed_out, double *head_out)
{
    const Device *d = &r->dev;
    double embed = first ? t->embed + t->embed_norm + t->positions : 0;
    /* tied 16-bit head on the rank that also holds the embedding: one copy (see the model above) */
    const bool shared = first && c->tie_word_embeddings && !(r->int8_head && r->dtype == DTYPE_I8);
    double head = last ? t->final_norm + (shared ? 0 : t->lm_head) : 0;
    PlanBytes b;
    b.weights = k * t->layer + embed + head;
    b.kv_cache = k * t->kv_layer;
    b.workspace = t->ws_hidden + t->ws_qkv + t->ws_ffn + t->ws_scores + t->ws_int8 + (last ? t->ws_logits : 0);
    b.reserve = d->reserve_bytes;
    b.total = b.weights + b.kv_cache + b.workspace + b.reserve;
    if (embed_out) *embed_out = embed;
    if (head_out) *head_out = head;
    return b;
}

/* ==== The time model (per stage; roofline, not a measurement) ==========================================
 * A piece of work costs max(bytes read / mem_bw, ops / peak): it is bound by whichever is slower; on a
 *   CPU rank the sum (roof_s).
 *   decoder layer, m sequences × q new tokens each, attending over ctx positions:
 *     bytes = layer weights + KV read 2·m·ctx·D·2;   ops = 2·(m·q)·Nlin at the int8 peak (int8 mode) or
 *     the fp16/bf16 peak, + attention 4·m·q·ctx·D at the fp16 peak (QKᵀ and PV, 2 ops per MAC)
 *   embedding lookup (first rank): m·q·D·2 bytes read, no ops
 *   LM head (last rank): V·D·2 + final LayerNorm bytes, 2·m·V·D ops at the fp16 peak; only each
 *     sequence's last position needs logits in generation, so m rows, also in prefill. --int8-head:
 *     V·D + 4V bytes and the ops at the int8 peak (its outlier columns, re-read from CB, are left out
 *     as they are for the layers' linears)
 *   stage time = sum over its layers + embedding + head
 *   decode: q = 1, ctx = T + (G+1)/2 (the mean context over the G steps); prefill: q = T, ctx = T
 * Links: a hop costs latency + m·q·D·2 / link bandwidth (net bandwidth at a node boundary); the sampled
 *   token ids go back from the last rank to the first (latency + m·4 bytes) in decode.
 * Schedules, M micro-batches of m = ceil(B/M) sequences (DESIGN.md "Data flow"):
 *   naive (M = 1, accelerate's device_map):  Σ_s t_s(B) + hops
 *   pipelined decode: a micro-batch's next token cannot start before its last one came round the ring,
 *     and a stage serves M micro-batches per step:  max(Σ_s t_s(m) + hops + return, M · max_s t_s(m)).
 *     While weight-bound t_s(m) ≈ t_s(B) (only the KV reads and the compute shrink with m), so this is
 *     ≈ naive for M ≤ S and worse beyond; compute-bound it approaches naive / S.
 *   pipelined prefill: Σ_s t_s(m) + hops + (M − 1)·max_s t_s(m): fill, then one micro-batch per slot
 *     (S = 2 balanced, compute-bound: speed-up 2M/(M+1)).
 * The split is balanced on the decode step at the full batch (naive stage times): bytes and ops per stage,
 * including the embedding on the first and the LM head on the last rank.
 * ====================================================================================================== */
typedef struct {
    const Config *c;
    const PlanRequest *r;
    const PlanTerms *t;
} Model;

/* A GPU overlaps its weight stream with its compute: the slower of the two. A CPU rank's thread issues
 * both, and pp8's kernels overlap them only in part (amx-f16split's weight split, quantization and
 * epilogues take the core's ports while the stream waits), so there the two add up. Measured per 16-row
 * item, OPT-1.3B int8, 2 ranks x 1 thread, AMX (pp8 bench --profile, batch 32, 2026-12-02): the fp16 LM
 * head costs 4.29 decoder layers at 48 positions of context and 3.48 at 160; the sum predicts 4.33 and
 * 3.60, the max 3.64 and 2.90, which gave the first rank 16 ms of every 141 ms step idle at 160 (split
 * 13+11 where 14+10 balances). */
static double roof_s(const Device *d, double bytes, double ops_lin, double peak_lin, double ops_fp, double peak_fp)
{
    double mem = bytes / (d->mem_bw_gbs * 1e9);
    double comp = ops_lin / (peak_lin * 1e12) + ops_fp / (peak_fp * 1e12);
    if (d->kind == DEVICE_CPU) return mem + comp;
    return mem > comp ? mem : comp;
}

/* the peak of 16-bit matrix work in this dtype: bf16 mode runs bf16, int8 and fp16 modes fp16 */
static double peak16(const Device *d, DType dtype) { return dtype == DTYPE_BF16 ? d->bf16_tflops : d->fp16_tflops; }

/* seconds for stage (k layers, first/last) on m sequences × q tokens over ctx positions */
static double stage_time_s(const Model *x, int k, bool first, bool last, double m, double q, double ctx)
{
    const Config *c = x->c;
    const Device *d = &x->r->dev;
    const double D = c->hidden, V = c->vocab;
    const double nlin = 4 * D * D + 2 * D * (double)c->ffn;
    const double p16 = peak16(d, x->r->dtype);
    const double peak_lin = x->r->dtype == DTYPE_I8 ? d->int8_tops : p16;
    /* attention (scores and weighted sum) runs at the fp16 rate: vector fp32 work on the CPU */
    double layer =
        roof_s(d, x->t->layer + 2 * m * ctx * D * 2, 2 * m * q * nlin, peak_lin, 4 * m * q * ctx * D, d->fp16_tflops);
    double s = k * layer;
    if (first) s += roof_s(d, m * q * D * 2, 0, peak_lin, 0, p16);
    /* the LM head is 16-bit (fp16 for int8 and fp16, bf16 for bf16), or int8 with --int8-head */
    const bool int8_head = x->r->dtype == DTYPE_I8 && x->r->int8_head;
    if (last)
        s += roof_s(d, x->t->lm_head + x->t->final_norm, int8_head ? 2 * m * V * D : 0, peak_lin,
                    int8_head ? 0 : 2 * m * V * D, p16);
    return s;
}

static double hop_s(const Device *d, double bytes, bool cross_node)
{
    double gbs = cross_node ? d->net_gbs : d->link_gbs;
    return d->link_latency_us * 1e-6 + bytes / (gbs * 1e9);
}

static bool crosses_node(const Device *d, int s)
{
    return d->ranks_per_node > 0 && (s + 1) % d->ranks_per_node == 0;
}

/* counts[s] layers per stage; returns seconds of one pass of m sequences × q tokens through all stages
 * (Σ t_s + hops) and the slowest stage in *tmax */
static double pass_s(const Model *x, const int *counts, int S, double m, double q, double ctx, double *tmax)
{
    double sum = 0, mx = 0;
    for (int s = 0; s < S; s++) {
        double ts = stage_time_s(x, counts[s], s == 0, s == S - 1, m, q, ctx);
        sum += ts;
        if (ts > mx) mx = ts;
        if (s < S - 1) sum += hop_s(&x->r->dev, m * q * x->c->hidden * 2, crosses_node(&x->r->dev, s));
    }
    *tmax = mx;
    return sum;
}

static double decode_s(const Model *x, const int *counts, int S, int M, bool pipelined)
{
    const PlanRequest *r = x->r;
    double ctx = r->prompt_len + (r->gen + 1) / 2.0;
    if (!pipelined) M = 1;
    double m = ceil((double)r->batch / M), tmax;
    double ring = pass_s(x, counts, S, m, 1, ctx, &tmax);
    if (S > 1) ring += hop_s(&r->dev, m * 4, r->dev.ranks_per_node > 0 && S > r->dev.ranks_per_node);
    double busy = M * tmax;
    return ring > busy ? ring : busy;
}

static double prefill_s(const Model *x, const int *counts, int S, int M, bool pipelined)
{
    const PlanRequest *r = x->r;
    if (!pipelined) M = 1;
    double m = ceil((double)r->batch / M), tmax;
    double fill = pass_s(x, counts, S, m, r->prompt_len, r->prompt_len, &tmax);
    return fill + (M - 1) * tmax;
}

/* ---- the split ---------------------------------------------------------------------------------------- */

/* Most layers a rank in this role can hold within the budget (0 when not even one fits). */
static int stage_capacity(const Config *c, const PlanRequest *r, const PlanTerms *t, bool first, bool last)
{
    const Device *d = &r->dev;
    int k = 0;
    while (k < c->layers && stage_bytes(c, r, t, k + 1, first, last, NULL, NULL).total <= d->mem_bytes) k++;
    return k;
}

/* Capacity check for S ranks; on failure writes which term prevents it. */
static bool split_feasible(const Config *c, const PlanRequest *r, const PlanTerms *t, int S, char *why,
                           size_t len)
{
    const Device *d = &r->dev;
    const double budget = d->mem_bytes;
    if (S > c->layers) {
        snprintf(why, len, "more ranks (%d) than layers (%d): every rank needs at least one layer", S, c->layers);
        return false;
    }
    if (S == 1) {
        int k = stage_capacity(c, r, t, true, true);
        if (k >= c->layers) return true;
        PlanBytes b = stage_bytes(c, r, t, c->layers, true, true, NULL, NULL);
        snprintf(why, len,
                 "one rank needs %.2f GiB (weights %.2f + KV cache %.2f + workspace %.2f + reserve %.2f) "
                 "but has %.2f GiB; it holds %d of %d layers",
                 b.total / GIB, b.weights / GIB, b.kv_cache / GIB, b.workspace / GIB, b.reserve / GIB,
                 budget / GIB, k, c->layers);
        return false;
    }
    int cf = stage_capacity(c, r, t, true, false), cm = stage_capacity(c, r, t, false, false);
    int cl = stage_capacity(c, r, t, false, true);
    const char *role[3] = {"first", "middle", "last"};
    int caps[3] = {cf, cm, cl};
    bool used[3] = {true, S > 2, true};
    int ranks_of[3] = {0, 1, S - 1};
    for (int i = 0; i < 3; i++) {
        if (!used[i] || caps[i] >= 1) continue;
        PlanBytes b = stage_bytes(c, r, t, 1, i == 0, i == 2, NULL, NULL);
        snprintf(why, len,
                 "rank %d (%s) needs %.2f GiB for %s1 layer (%.2f GiB weights + %.2f GiB KV cache) + "
                 "workspace %.2f GiB + reserve %.2f GiB but has %.2f GiB",
                 ranks_of[i], role[i], b.total / GIB,
                 i == 0 ? "the embedding + " : i == 2 ? "the LM head + " : "", t->layer / GIB, t->kv_layer / GIB,
                 b.workspace / GIB, b.reserve / GIB, budget / GIB);
        return false;
    }
    long held = (long)cf + cl + (long)(S - 2) * cm;
    if (held >= c->layers) return true;
    char mid[96] = "";
    if (S == 3) snprintf(mid, sizeof mid, ", rank 1 %d", cm);
    else if (S > 3) snprintf(mid, sizeof mid, ", ranks 1-%d %d each", S - 2, cm);
    snprintf(why, len,
             "%d ranks of %.2f GiB hold at most %ld of %d layers (rank 0 %d beside the %.2f GiB embedding%s, "
             "rank %d %d beside the %.2f GiB LM head + %.2f GiB logits); a layer is %.2f GiB of weights + "
             "%.3f GiB of KV cache (batch %d x %d positions), every rank also reserves %.2f GiB + %.2f GiB "
             "workspace",
             S, budget / GIB, held, c->layers, cf, (t->embed + t->embed_norm + t->positions) / GIB, mid, S - 1,
             cl, (t->final_norm + t->lm_head) / GIB, t->ws_logits / GIB, t->layer / GIB, t->kv_layer / GIB,
             r->batch, r->prompt_len + r->gen, d->reserve_bytes / GIB,
             (t->ws_hidden + t->ws_qkv + t->ws_ffn + t->ws_scores + t->ws_int8) / GIB);
    return false;
}

/* Contiguous split into S stages minimising the slowest stage's decode time, then (among those) the
 * sum of squared stage times, so the slack spreads evenly. Layers are identical, so a stage is its
 * layer count and role. DP over (stage, layers covered); k ascending with strict '<' keeps it
 * deterministic. mem_limit false: ignore memory (to show a plan that does not fit). A stage's time is
 * that of one pipelined item, ceil(B / M) sequences, at the context balance_ctx (or the decode's mean):
 * with B sequences at the full context the KV reads outweighed the fp16 LM head, and the split 13+11
 * of OPT-1.3B int8 (batch 32, 2 ranks, --max-seq-len 288 or 512) left the first rank 12% of each step
 * idle where 14+10 balances (pp8 bench --profile, AMX, 2026-12-02). */
static int split_balance(const Model *x, int S, bool mem_limit, int *counts)
{
    const Config *c = x->c;
    const int L = c->layers;
    const int B = x->r->batch,
              M = x->r->micro_batches > 0 ? x->r->micro_batches : plan_default_micro_batches(c, x->r, &(Plan){.nstages = S});
    const double m = ceil((double)B / M),
                 ctx = x->r->balance_ctx > 0 ? x->r->balance_ctx : x->r->prompt_len + (x->r->gen + 1) / 2.0;
    double *f = malloc(sizeof(double) * (size_t)S * (L + 1));
    int *arg = malloc(sizeof(int) * (size_t)S * (L + 1));
    double *tk = malloc(sizeof(double) * 4 * (L + 1)); /* stage time by role (first, last) and k */
    int cap[4];
    if (!f || !arg || !tk) {
        free(f), free(arg), free(tk);
        return -1;
    }
    for (int role = 0; role < 4; role++) {
        bool first = role & 1, last = role & 2;
        cap[role] = mem_limit ? stage_capacity(c, x->r, x->t, first, last) : L;
        for (int k = 0; k <= L; k++) tk[role * (L + 1) + k] = stage_time_s(x, k, first, last, m, 1, ctx);
    }
#define ROLE(s) (((s) == 0 ? 1 : 0) | ((s) == S - 1 ? 2 : 0))
    double tstar = HUGE_VAL;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: f = min over splits of the max stage time; pass 1: min Σ t² with every t ≤ tstar */
        for (int s = 0; s < S; s++)
            for (int n = 0; n <= L; n++) {
                f[s * (L + 1) + n] = HUGE_VAL;
                arg[s * (L + 1) + n] = 0;
                if (n < s + 1) continue;
                int role = ROLE(s);
                for (int k = 1; k <= n - s && k <= cap[role]; k++) {
                    double prev = s == 0 ? (k == n ? 0 : HUGE_VAL) : f[(s - 1) * (L + 1) + n - k];
                    if (prev == HUGE_VAL) continue;
                    double ts = tk[role * (L + 1) + k], v;
                    if (pass == 0) v = prev > ts ? prev : ts;
                    else if (ts > tstar * (1 + 1e-12)) continue;
                    else v = prev + ts * ts;
                    if (v < f[s * (L + 1) + n]) {
                        f[s * (L + 1) + n] = v;
                        arg[s * (L + 1) + n] = k;
                    }
                }
            }
        if (pass == 0) tstar = f[(S - 1) * (L + 1) + L];
        if (tstar == HUGE_VAL) break;
    }
#undef ROLE
    int rc = -1;
    if (tstar != HUGE_VAL) {
        int n = L;
        for (int s = S - 1; s >= 0; s--) {
            counts[s] = arg[s * (L + 1) + n];
            n -= counts[s];
        }
        rc = n == 0 ? 0 : -1;
    }
    free(f), free(arg), free(tk);
    return rc;
}

/* ---- public ------------------------------------------------------------------------------------------- */

const char *plan_dtype_name(DType t)
{
    return t == DTYPE_I8 ? "int8" : t == DTYPE_F16 ? "fp16" : t == DTYPE_BF16 ? "bf16" : "?";
}

static int check_input(const Config *c, const PlanRequest *r, Err *e)
{
    const char *cfg = c->path[0] ? c->path : c->name;
    if (c->hidden <= 0) return err_set(e, "%s: hidden_size must be > 0 for the planner", cfg);
    if (c->layers <= 0) return err_set(e, "%s: number of layers (n_layer / num_hidden_layers) must be > 0", cfg);
    if (c->heads <= 0) return err_set(e, "%s: number of heads (n_head / num_attention_heads) must be > 0", cfg);
    if (c->ffn <= 0) return err_set(e, "%s: ffn size (BLOOM 4*hidden_size, OPT ffn_dim) must be > 0", cfg);
    if (c->vocab <= 0) return err_set(e, "%s: vocab_size must be > 0 for the planner", cfg);
    if (c->arch == ARCH_OPT && c->max_pos <= 0)
        return err_set(e, "%s: max_position_embeddings must be > 0 for OPT (size of the position table)", cfg);
    if (r->dtype != DTYPE_I8 && r->dtype != DTYPE_F16 && r->dtype != DTYPE_BF16)
        return err_set(e, "plan: dtype %s is not planned; use int8, fp16 or bf16", dtype_name(r->dtype));
    if (r->batch < 1) return err_set(e, "plan: batch %d must be >= 1", r->batch);
    if (r->prompt_len < 1) return err_set(e, "plan: prompt length %d must be >= 1", r->prompt_len);
    if (r->gen < 0) return err_set(e, "plan: generated tokens %d must be >= 0", r->gen);
    if (r->ranks < 0) return err_set(e, "plan: ranks %d must be >= 1 (or 0 for the minimum that fits)", r->ranks);
    if (r->ranks > c->layers)
        return err_set(e, "--ranks %d is more than the %d layers of %s: every rank needs at least one layer; "
                          "use --ranks <= %d or auto", r->ranks, c->layers, c->name[0] ? c->name : cfg, c->layers);
    if (r->micro_batches < 0 || r->micro_batches > r->batch)
        return err_set(e, "plan: micro-batches %d must be in [1, batch %d] (0 = default)", r->micro_batches,
                       r->batch);
    const Device *d = &r->dev;
    if (!(d->mem_bytes > 0))
        return err_set(e, "%s: memory per rank %.3g GiB must be positive", d->name, d->mem_bytes / GIB);
    if (!(d->mem_bw_gbs > 0) || !(d->int8_tops > 0) || !(d->fp16_tflops > 0) || !(d->bf16_tflops > 0) ||
        !(d->link_gbs > 0) ||
        !(d->net_gbs > 0) || !(d->reserve_bytes >= 0) || !(d->link_latency_us >= 0))
        return err_set(e, "%s: bandwidths and peaks must be positive, reserve and latency >= 0", d->name);
    return 0;
}

/* Bytes are counted in doubles, exact up to 2^53 (8 PiB). A workload whose terms go past that (a batch and
 * a length no machine holds, from flags, a server's --max-seqs or a config's sizes) is refused naming what
 * makes it so, rather than planned with inexact numbers; nothing is ever sized from such a plan. */
#define PLAN_MAX_BYTES 9007199254740992.0

static int terms_check(const Config *c, const PlanRequest *r, const PlanTerms *t, Err *e)
{
    const double L = c->layers, kv = t->kv_layer * L;
    const double weights = t->layer * L + t->embed + t->embed_norm + t->positions + t->final_norm + t->lm_head;
    const double ws = t->ws_hidden + t->ws_qkv + t->ws_ffn + t->ws_scores + t->ws_int8 + t->ws_logits;
    if (!(kv <= PLAN_MAX_BYTES))
        return err_set(e,
                       "plan: the KV cache, 2 (k, v) x batch %d x %.0f positions x hidden_size %d x 2 bytes x %d "
                       "layers = %.3g bytes, is more than pp8 sizes (2^53 bytes = 8 PiB): lower the batch (--batch, "
                       "--max-seqs, the number of prompts) or the positions (--max-seq-len, --prompt-len + --gen, "
                       "--max-new)",
                       r->batch, (double)r->prompt_len + r->gen, c->hidden, c->layers, kv);
    if (!(ws <= PLAN_MAX_BYTES))
        return err_set(e,
                       "plan: the activation workspace for %.0f rows (batch %d x prompt %d, or a server's token "
                       "budget) over %.0f positions = %.3g bytes is more than pp8 sizes (2^53 bytes = 8 PiB): lower "
                       "the batch, the prompt length or --max-batch-tokens",
                       t->rows, r->batch, r->prompt_len, (double)r->prompt_len + r->gen, ws);
    if (!(weights <= PLAN_MAX_BYTES))
        return err_set(e, "%s: the weights, %.3g bytes, are more than pp8 sizes (2^53 bytes = 8 PiB): the config's "
                          "sizes are wrong",
                       c->path[0] ? c->path : c->name, weights);
    return 0;
}

/* the layer counts of p's stages, malloc'd (NULL when out of memory) */
static int *plan_counts(const Plan *p)
{
    int *counts = malloc(sizeof(int) * (size_t)(p->nstages > 0 ? p->nstages : 1));
    for (int s = 0; counts && s < p->nstages; s++) counts[s] = p->stages[s].layer_end - p->stages[s].layer_begin;
    return counts;
}

/* ms of one phase (decode_s or prefill_s) of p's split with M micro-batches */
static double phase_ms(const Config *c, const PlanRequest *r, const Plan *p, int m, bool pipelined,
                       double (*phase)(const Model *, const int *, int, int, bool))
{
    PlanTerms t;
    terms_compute(c, r, &t);
    Model x = {c, r, &t};
    int *counts = plan_counts(p);
    double ms = counts && p->nstages > 0 ? 1e3 * phase(&x, counts, p->nstages, m, pipelined) : NAN;
    free(counts);
    return ms;
}

double plan_decode_ms(const Config *c, const PlanRequest *r, const Plan *p, int m, bool pipelined)
{
    return phase_ms(c, r, p, m, pipelined, decode_s);
}

double plan_prefill_ms(const Config *c, const PlanRequest *r, const Plan *p, int m, bool pipelined)
{
    return phase_ms(c, r, p, m, pipelined, prefill_s);
}

/* Micro-batches of at least 4 sequences, at most one per stage: M = min(S, max(1, B / 4)). A rule from
 * measurements, not from the time model, which mispredicted which M wins in both directions (it leaves
 * out what favours more micro-batches, the stages' per-row work, attention over the KV cache,
 * quantization, sampling, overlapping instead of adding up, and what hurts them, two ranks streaming at
 * once reading ~8% slower each). Decode, M = 2 against M = 1, 2 ranks x 1 thread (model's M2/M1 step
 * time in brackets): OPT-1.3B int8 split 14+10 batch 8 1.05x faster (0.98); split 15+9 batch 16 1.13x
 * faster (1.05), batch 4 0.91x (1.06); BLOOM-560M int8 23+1 batch 2 0.85x, batch 8 1.16x faster (1.23),
 * batch 32 1.42x faster (1.06); bf16 20+4 batch 8 1.24x faster (1.07). With 1-2 sequences per
 * micro-batch every stage is purely weight-bound and a second weight read per step costs more than the
 * overlap gains. The LLM.int8() outlier set is chosen per micro-batch, so M is part of what a run
 * computes (DESIGN.md "Data flow"). */
int plan_default_micro_batches(const Config *c, const PlanRequest *r, const Plan *p)
{
    (void)c;
    int m = r->batch / 4;
    if (m > p->nstages) m = p->nstages;
    return m < 1 ? 1 : m;
}

int plan_compute(const Config *c, const PlanRequest *r, Plan *p, Err *e)
{
    memset(p, 0, sizeof *p);
    if (check_input(c, r, e)) return -1;
    p->dtype = r->dtype;
    p->int8_head = r->dtype == DTYPE_I8 && r->int8_head;
    p->batch = r->batch;
    p->prompt_len = r->prompt_len;
    p->gen = r->gen;
    p->budget_bytes = r->dev.mem_bytes;
    terms_compute(c, r, &p->terms);
    if (terms_check(c, r, &p->terms, e)) return -1;
    Model x = {c, r, &p->terms};
    const int L = c->layers;

    int S = r->ranks;
    char why[sizeof p->why] = "";
    if (S > 0) {
        p->fits = split_feasible(c, r, &p->terms, S, why, sizeof why);
    } else {
        for (S = 1; S <= L; S++) {
            if (split_feasible(c, r, &p->terms, S, why, sizeof why)) {
                p->fits = true;
                break;
            }
            snprintf(p->why_not_fewer, sizeof p->why_not_fewer, "%s", why);
        }
        if (!p->fits) S = L;
        if (S == 1) p->why_not_fewer[0] = 0;
    }
    if (!p->fits) {
        snprintf(p->why, sizeof p->why, "%s", why);
        p->why_not_fewer[0] = 0;
    }

    int *counts = calloc((size_t)S, sizeof *counts);
    p->stages = calloc((size_t)S, sizeof *p->stages);
    if (!counts || !p->stages) {
        free(counts);
        plan_free(p);
        return err_set(e, "plan: out of host memory for %d stages", S);
    }
    /* a plan that does not fit is still laid out (balanced, memory ignored) so the printout shows
     * how far over each rank is */
    if (split_balance(&x, S, p->fits, counts) != 0 && split_balance(&x, S, false, counts) != 0) {
        free(counts);
        plan_free(p);
        return err_set(e, "plan: no split of %d layers into %d stages (internal)", L, S);
    }
    p->ranks = p->nstages = S;
    int begin = 0;
    for (int s = 0; s < S; s++) {
        PlanStage *st = &p->stages[s];
        bool first = s == 0, last = s == S - 1;
        st->rank = s;
        st->layer_begin = begin;
        st->layer_end = begin + counts[s];
        begin = st->layer_end;
        st->bytes = stage_bytes(c, r, &p->terms, counts[s], first, last, &st->embed_bytes, &st->head_bytes);
        st->modelled_ms = 1e3 * stage_time_s(&x, counts[s], first, last, r->batch, 1,
                                             r->prompt_len + (r->gen + 1) / 2.0);
    }
    free(counts);

    p->micro_batches = r->micro_batches > 0 ? r->micro_batches : plan_default_micro_batches(c, r, p);
    p->decode_ms_naive = plan_decode_ms(c, r, p, 1, false);
    p->decode_ms_pipelined = plan_decode_ms(c, r, p, p->micro_batches, true);
    p->prefill_ms_naive = plan_prefill_ms(c, r, p, 1, false);
    p->prefill_ms_pipelined = plan_prefill_ms(c, r, p, p->micro_batches, true);
    p->modelled_ms_per_token = p->decode_ms_pipelined / r->batch;
    /* weight-bound: the layers' weight reads outlast their compute at B rows */
    {
        const Device *d = &r->dev;
        double nlin = 4.0 * c->hidden * c->hidden + 2.0 * c->hidden * c->ffn;
        double peak = r->dtype == DTYPE_I8 ? d->int8_tops : peak16(d, r->dtype);
        p->weight_bound = p->terms.layer / (d->mem_bw_gbs * 1e9) > 2.0 * r->batch * nlin / (peak * 1e12);
    }
    return 0;
}

void plan_free(Plan *p)
{
    if (!p) return;
    free(p->stages);
    p->stages = NULL;
    p->nstages = 0;
}

/* ---- printing ----------------------------------------------------------------------------------------- */

void plan_print(FILE *f, const Config *c, const PlanRequest *r, const Plan *p)
{
    const PlanTerms *t = &p->terms;
    const char *unit = r->dev.kind == DEVICE_GPU ? "GPU" : "rank";
    fprintf(f, "%s%s, batch %d, prompt %d + gen %d: ", plan_dtype_name(p->dtype), p->int8_head ? " (int8 LM head)" : "",
            p->batch, p->prompt_len, p->gen);
    if (p->fits)
        fprintf(f, "fits on %d %s%s (%.2f GiB each)\n", p->ranks, unit, p->ranks == 1 ? "" : "s",
                p->budget_bytes / GIB);
    else
        fprintf(f, "DOES NOT FIT on %d %s%s (%.2f GiB each): %s\n", p->ranks, unit, p->ranks == 1 ? "" : "s",
                p->budget_bytes / GIB, p->why);
    if (p->fits && p->why_not_fewer[0]) fprintf(f, "  not on %d: %s\n", p->ranks - 1, p->why_not_fewer);
    fprintf(f, "  %4s  %-10s %4s  %8s %9s %10s %8s %8s %8s  %s\n", "rank", "layers", "n", "weights", "KV cache",
            "workspace", "reserve", "total", "free", "modelled ms/step");
    PlanBytes sum = {0, 0, 0, 0, 0};
    for (int s = 0; s < p->nstages; s++) {
        const PlanStage *st = &p->stages[s];
        char lay[32];
        snprintf(lay, sizeof lay, "[%d,%d)", st->layer_begin, st->layer_end);
        double free_b = p->budget_bytes - st->bytes.total;
        fprintf(f, "  %4d  %-10s %4d  %8.2f %9.2f %10.2f %8.2f %8.2f %8.2f  %8.2f%s\n", st->rank, lay,
                st->layer_end - st->layer_begin, st->bytes.weights / GIB, st->bytes.kv_cache / GIB,
                st->bytes.workspace / GIB, st->bytes.reserve / GIB, st->bytes.total / GIB, free_b / GIB,
                st->modelled_ms, free_b < 0 ? "  OVER BUDGET" : "");
        sum.weights += st->bytes.weights;
        sum.kv_cache += st->bytes.kv_cache;
        sum.workspace += st->bytes.workspace;
        sum.reserve += st->bytes.reserve;
        sum.total += st->bytes.total;
    }
    fprintf(f, "  %4s  %-10s %4d  %8.2f %9.2f %10.2f %8.2f %8.2f %8s  (GiB = 2^30 B)\n", "sum", "", c->layers,
            sum.weights / GIB, sum.kv_cache / GIB, sum.workspace / GIB, sum.reserve / GIB, sum.total / GIB, "");
    /* the terms the table is built from, so the columns can be checked by hand */
    fprintf(f, "  weights: %.4f GiB per layer (%s linear %.4f + %sbiases/LayerNorms %.4f)",
            t->layer / GIB, plan_dtype_name(p->dtype), t->layer_linear / GIB,
            p->dtype == DTYPE_I8 ? "SCB scales + " : "", (t->layer_scales + t->layer_16bit) / GIB);
    if (p->nstages > 0) {
        fprintf(f, "; rank 0 + embedding %.4f GiB", p->stages[0].embed_bytes / GIB);
        fprintf(f, "; rank %d + final LayerNorm%s %.4f GiB", p->nstages - 1,
                p->stages[p->nstages - 1].head_bytes <= t->final_norm ? ""
                : p->int8_head                                        ? " + int8 LM head (CB + SCB)"
                                                                      : " + LM head",
                p->stages[p->nstages - 1].head_bytes / GIB);
        if (p->int8_head && c->tie_word_embeddings) fprintf(f, " (tied: quantized from the embedding)");
        else if (c->tie_word_embeddings && p->nstages > 1) fprintf(f, " (tied: a second copy of the embedding)");
    }
    fprintf(f, "\n  KV cache: %.4f GiB per layer = 2 x batch %d x %d positions x D %d x 2 B\n", t->kv_layer / GIB,
            p->batch, p->prompt_len + p->gen, c->hidden);
    fprintf(f, "  workspace (%.0f prefill rows): hidden %.3f + qkv %.3f + ffn %.3f + scores %.3f", t->rows,
            t->ws_hidden / GIB, t->ws_qkv / GIB, t->ws_ffn / GIB, t->ws_scores / GIB);
    if (t->ws_int8 > 0) fprintf(f, " + int8 %.3f", t->ws_int8 / GIB);
    fprintf(f, " GiB; last rank + logits %.3f GiB\n", t->ws_logits / GIB);
    fprintf(f, "  reserve: %.3f GiB per rank = %s (%s preset notes)\n", r->dev.reserve_bytes / GIB,
            r->dev.reserve_what, r->dev.name);
    fprintf(f, "  modelled (roofline on %s, not a measurement): decode step naive %.2f ms, pipelined M=%d %.2f ms "
               "-> %.2f ms/token at batch %d (%s); prefill naive %.1f ms, pipelined %.1f ms\n",
            r->dev.name, p->decode_ms_naive, p->micro_batches, p->decode_ms_pipelined, p->modelled_ms_per_token,
            p->batch, p->weight_bound ? "decode weight-bound" : "decode compute-bound",
            p->prefill_ms_naive, p->prefill_ms_pipelined);
}

/* ---- devices ------------------------------------------------------------------------------------------ */

static const char *configs_dir(void)
{
    const char *env = getenv("PP8_CONFIGS");
    return env && env[0] ? env : PP8_CONFIGS_DIR;
}

static int name_cmp(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static void list_presets(char *out, size_t len)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/accel", configs_dir());
    out[0] = 0;
    DIR *dp = opendir(dir);
    if (!dp) return;
    char names[64][64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 5 && l < 64 && !strcmp(de->d_name + l - 5, ".json")) {
            memcpy(names[n], de->d_name, l - 5);
            names[n][l - 5] = 0;
            n++;
        }
    }
    closedir(dp);
    qsort(names, (size_t)n, sizeof names[0], name_cmp);
    for (int i = 0; i < n; i++) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", i ? ", " : "", names[i]);
    }
}

static int json_number(const cJSON *o, const char *key, const char *file, double *v, Err *e)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it)) return err_set(e, "%s: field \"%s\" missing or not a number", file, key);
    *v = it->valuedouble;
    return 0;
}

int device_preset(Device *d, const char *name, Err *e)
{
    memset(d, 0, sizeof *d);
    char avail[512];
    list_presets(avail, sizeof avail);
    if (!name || !name[0] || strchr(name, '/') || strlen(name) >= sizeof d->name)
        return err_set(e, "--gpu %s: unknown accelerator preset; available: %s", name ? name : "(null)",
                       avail[0] ? avail : "(none found)");
    char path[1400];
    snprintf(path, sizeof path, "%s/accel/%s.json", configs_dir(), name);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_set(e, "--gpu %s: unknown accelerator preset (no %s); available: %s", name, path,
                       avail[0] ? avail : "(none found)");
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 && n < (1 << 20)) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, fp) == (size_t)n) buf[n] = 0;
        else free(buf), buf = NULL;
    }
    fclose(fp);
    if (!buf) return err_set(e, "%s: cannot read the preset (or larger than 1 MiB)", path);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return err_set(e, "%s: not a JSON object", path);
    }
    int rc = -1;
    double mem_mib = 0, per_node = 0;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "reserve_mib");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(j, "description");
    const cJSON *notes = cJSON_GetObjectItemCaseSensitive(j, "notes");
    if (json_number(j, "mem_mib", path, &mem_mib, e) || json_number(j, "mem_bw_gbs", path, &d->mem_bw_gbs, e) ||
        json_number(j, "int8_tops", path, &d->int8_tops, e) ||
        json_number(j, "fp16_tflops", path, &d->fp16_tflops, e) ||
        json_number(j, "link_gbs", path, &d->link_gbs, e) || json_number(j, "net_gbs", path, &d->net_gbs, e) ||
        json_number(j, "link_latency_us", path, &d->link_latency_us, e) ||
        json_number(j, "gpus_per_node", path, &per_node, e))
        goto out;
    /* bf16 runs at the fp16 rate on A100/H100 unless a preset says otherwise */
    d->bf16_tflops = d->fp16_tflops;
    if (cJSON_GetObjectItemCaseSensitive(j, "bf16_tflops") && json_number(j, "bf16_tflops", path, &d->bf16_tflops, e))
        goto out;
    if (!cJSON_IsObject(res) || !res->child) {
        err_set(e, "%s: field \"reserve_mib\" missing (an object of named MiB amounts)", path);
        goto out;
    }
    for (const cJSON *it = res->child; it; it = it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0) {
            err_set(e, "%s: reserve_mib.%s must be a number >= 0", path, it->string ? it->string : "?");
            goto out;
        }
        d->reserve_bytes += it->valuedouble * MIB;
        size_t used = strlen(d->reserve_what);
        snprintf(d->reserve_what + used, sizeof d->reserve_what - used, "%s%s %g", used ? " + " : "",
                 it->string ? it->string : "?", it->valuedouble);
    }
    {
        size_t used = strlen(d->reserve_what);
        snprintf(d->reserve_what + used, sizeof d->reserve_what - used, " MiB");
    }
    if (!(mem_mib > 0)) {
        err_set(e, "%s: mem_mib %g must be positive", path, mem_mib);
        goto out;
    }
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->description, sizeof d->description, "%s", cJSON_IsString(desc) ? desc->valuestring : name);
    snprintf(d->notes, sizeof d->notes, "%s", cJSON_IsString(notes) ? notes->valuestring : "");
    d->kind = cJSON_IsString(kind) && !strcmp(kind->valuestring, "cpu") ? DEVICE_CPU : DEVICE_GPU;
    d->mem_bytes = mem_mib * MIB;
    d->ranks_per_node = (int)per_node;
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

void device_cpu(Device *d, double mem_bytes, double read_gbs, int threads)
{
    memset(d, 0, sizeof *d);
    if (threads < 1) threads = 1;
    snprintf(d->name, sizeof d->name, "cpu");
    snprintf(d->description, sizeof d->description, "CPU rank, %d thread%s", threads, threads == 1 ? "" : "s");
    d->kind = DEVICE_CPU;
    d->mem_bytes = mem_bytes;
    d->mem_bw_gbs = read_gbs;
    /* Achieved rates of pp8's own CPU kernels, not instruction peaks: pp8 bench-linear at M = 128 on this
     * machine kind (Sapphire Rapids, AMX) measures int8 ~1.45 TOP/s, bf16 ~0.8 TFLOP/s and fp16 ~0.35 TFLOP/s
     * per core (fp16 has no fp32-accumulating matrix unit here: AMX-BF16 on exact hi/lo splits, four
     * products), and a whole decoder layer (quantization, epilogue, attention, LayerNorms) runs ~30% below
     * its GEMMs (perf profile of pp8 bench): take 1.0, 0.6 and 0.3 per thread. The ratio matters most:
     * int8 mode's fp16 LM head is worth several layers at large batches, and the split must give the last
     * rank correspondingly fewer. */
    d->int8_tops = 1.0 * threads;
    d->bf16_tflops = 0.6 * threads;
    d->fp16_tflops = 0.3 * threads;
    /* ranks on one node talk through Open MPI's shared-memory transport: a single copy of a few MB/s of
     * hidden states; 5 GB/s and 2 us are assumptions (stage transfers are tiny next to the weights) */
    d->link_gbs = 5.0;
    d->net_gbs = 5.0;
    d->link_latency_us = 2.0;
    d->ranks_per_node = 0;
    d->reserve_bytes = 256 * MIB;
    snprintf(d->reserve_what, sizeof d->reserve_what, "host runtime 256 MiB");
    snprintf(d->notes, sizeof d->notes,
             "CPU rank: 256 MiB assumed for the binary, MPI shared-memory segments and thread stacks; compute "
             "rates int8 1.0 TOP/s, bf16 0.6 and fp16 0.3 TFLOP/s per thread (pp8 bench-linear, derated for a whole layer); "
             "a piece of work costs its read time plus its compute time (one thread issues both)");
}
