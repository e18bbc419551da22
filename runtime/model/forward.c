/* stage_forward(): BLOOM and OPT decoder blocks as transformers writes them (pre-LayerNorm, residual
 * adds, fp32 softmax), a dozen coarse backend ops in model order. No scheduling, no transport. */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/check.h"
#include "../util/log.h"
#include "../util/proc.h"

#define ALIGN 64

const char *const prof_op_name[PROF_COUNT] = {"embed", "layernorm", "qkv", "attention", "out", "fc1",
                                              "act", "fc2", "add", "head", "sample"};

/* run STMT, adding its time (and BYTES read) to rs->prof's op OP at layer prof_layer (a local of the
 * caller: -1 outside the layers) when profiling */
typedef struct ProfTick {
    double t;
    int e; /* the backend's timer, or -1: the wall clock between syncs */
} ProfTick;

void prof_flush(Backend *be, Prof *p)
{
    for (int i = 0; i < p->npend; i++) {
        double sec = 1e-3 * be->timer_ms(be->ctx, p->pend[i].e0, p->pend[i].e1);
        p->s[p->pend[i].op] += sec;
        p->layer_s[p->pend[i].layer][p->pend[i].op] += sec;
    }
    p->npend = 0;
    if (be->timer_reset) be->timer_reset(be->ctx);
}

static ProfTick prof_start(Backend *be, RunState *rs)
{
    ProfTick t = {0, -1};
    if (!rs->prof) return t;
    if (be->timer_record) {
        if (rs->prof->npend == PROF_PENDING) prof_flush(be, rs->prof);
        if ((t.e = be->timer_record(be->ctx)) >= 0) return t;
    }
    be->sync(be->ctx);
    t.t = wall_s();
    return t;
}

static void prof_stop(Backend *be, RunState *rs, ProfTick t, int op, int layer, double bytes)
{
    Prof *p = rs->prof;
    if (!p) return;
    const int li = layer < 0 ? PROF_LAYERS : layer < PROF_LAYERS ? layer : PROF_LAYERS - 1;
    p->layer_bytes[li][op] += bytes;
    int e1 = t.e >= 0 ? be->timer_record(be->ctx) : -1;
    if (e1 >= 0) {
        p->pend[p->npend].op = op, p->pend[p->npend].layer = li;
        p->pend[p->npend].e0 = t.e, p->pend[p->npend].e1 = e1;
        p->npend++;
        return;
    }
    be->sync(be->ctx);
    const double sec = t.e >= 0 ? 0 : wall_s() - t.t; /* a timer pool that ran out mid-op: not counted */
    p->s[op] += sec;
    p->layer_s[li][op] += sec;
}

#define PROFB(OP, BYTES, STMT)                                                                                       \
    do {                                                                                                             \
        ProfTick t_ = prof_start(be, rs);                                                                            \
        STMT;                                                                                                        \
        prof_stop(be, rs, t_, OP, prof_layer, BYTES);                                                                \
    } while (0)
#define PROF(OP, STMT) PROFB(OP, 0.0, STMT)

static size_t al(size_t b) { return (b + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

/* --int8-head: the head's fp16 logits need a buffer of their own before they are widened to fp32 */
static size_t logits16_bytes(const Model *m, int max_out)
{
    return m->last && m->lm_head.wdt == DTYPE_I8 ? al(2 * (size_t)max_out * (size_t)m->cfg.vocab) : 0;
}

size_t runstate_bytes(const Model *m, int R, int B, int S, int max_out, size_t *kv_bytes)
{
    const Config *c = &m->cfg;
    size_t D = (size_t)c->hidden, L = (size_t)(m->layer_end - m->layer_begin);
    size_t kv = 2 * L * (size_t)B * (size_t)S * D * 2;
    if (kv_bytes) *kv_bytes = kv;
    return al(2 * R * D) * 4 + al(2 * R * 3 * D) + al(2 * R * (size_t)c->ffn) + al(2 * (size_t)max_out * D) +
           al(4 * (size_t)max_out * (size_t)c->vocab) + logits16_bytes(m, max_out) + 4 * al(4 * (size_t)R) +
           2 * al(kv / 2);
}

int runstate_alloc(RunState *rs, const Model *m, int R, int B, int S, int max_out, Err *e)
{
    static uint32_t last_id;
    memset(rs, 0, sizeof *rs);
    rs->id = ++last_id & 0xffffff; /* 24 bits of the graph key */
    const Config *c = &m->cfg;
    Backend *be = m->be;
    size_t D = (size_t)c->hidden;
    rs->max_rows = R;
    rs->slots = B;
    rs->max_seq = S;
    rs->max_out = max_out;
    rs->arena_bytes = runstate_bytes(m, R, B, S, max_out, &rs->kv_bytes);
    rs->arena = be->alloc(be->ctx, rs->arena_bytes);
    if (!rs->arena) {
        char hint[160];
        return err_set(e, "cannot allocate %.2f GB for activations and the KV cache (batch %d, %d positions)%s: use a "
                          "smaller batch or --gen, or more ranks (pp8 plan)", rs->arena_bytes / 1e9, B, S,
                       proc_limit_hint(hint, sizeof hint));
    }
    char *p = rs->arena;
#define TAKE(ptr, bytes)                                                                                             \
    do {                                                                                                             \
        (ptr) = (void *)p;                                                                                           \
        p += al(bytes);                                                                                              \
    } while (0)
    TAKE(rs->x, 2 * R * D);
    TAKE(rs->h, 2 * R * D);
    TAKE(rs->att, 2 * R * D);
    TAKE(rs->tmp, 2 * R * D);
    TAKE(rs->qkv, 2 * R * 3 * D);
    TAKE(rs->ffn, 2 * R * (size_t)c->ffn);
    TAKE(rs->sel, 2 * (size_t)max_out * D);
    TAKE(rs->logits, 4 * (size_t)max_out * (size_t)c->vocab);
    if (logits16_bytes(m, max_out)) TAKE(rs->logits16, 2 * (size_t)max_out * (size_t)c->vocab);
    TAKE(rs->tokens, 4 * (size_t)R);
    TAKE(rs->pos, 4 * (size_t)R);
    TAKE(rs->slot, 4 * (size_t)R);
    TAKE(rs->out_idx, 4 * (size_t)R);
    TAKE(rs->k_cache, rs->kv_bytes / 2);
    TAKE(rs->v_cache, rs->kv_bytes / 2);
#undef TAKE
    int max_k = c->ffn > c->hidden ? c->ffn : c->hidden;
    int max_n = c->ffn > 3 * c->hidden ? c->ffn : 3 * c->hidden;
    if (m->last && c->vocab > max_n) max_n = c->vocab;
    be->reserve(be->ctx, R, max_k, max_n);
    return 0;
}

void runstate_free(RunState *rs, const Model *m)
{
    if (m->be->graph_reset) m->be->graph_reset(m->be->ctx);
    if (rs->arena) m->be->free(m->be->ctx, rs->arena);
    memset(rs, 0, sizeof *rs);
}

static void linear(const Model *m, const Linear *w, const uint16_t *x, int rows, uint16_t *y)
{
    m->be->linear(m->be->ctx, w, x, rows, m->act, y, m->act, m->threshold);
}

/* one stage's ops for one micro-batch, after its row descriptors are on the device (graph_run's fn) */
typedef struct StageOps {
    const Model *m;
    RunState *rs;
    int rows, nout;
    double kv_bytes; /* what one layer's attention reads from the KV cache (for --profile) */
} StageOps;

static void stage_ops(void *arg)
{
    const StageOps *so = arg;
    const Model *m = so->m;
    RunState *rs = so->rs;
    const int rows = so->rows, nout = so->nout;
    const Config *c = &m->cfg;
    Backend *be = m->be;
    void *ctx = be->ctx;
    const int D = c->hidden, H = c->heads, E = c->head_dim, F = c->ffn;
    const size_t RD = (size_t)rows * D;
    int prof_layer = -1;

    if (m->first) {
        if (c->arch == ARCH_BLOOM) {
            PROF(PROF_EMBED, be->embed(ctx, rs->x, rs->tokens, rs->pos, rows, m->embed, NULL, 0, D, m->act);
                 be->layernorm(ctx, rs->x, rs->x, m->emb_ln_g, m->emb_ln_b, rows, D, c->ln_eps, m->act));
        } else {
            /* OPTLearnedPositionalEmbedding: position p reads row p + 2 */
            PROF(PROF_EMBED, be->embed(ctx, rs->x, rs->tokens, rs->pos, rows, m->embed, m->pos_embed, 2, D, m->act));
        }
    }

    const size_t layer_kv = (size_t)rs->slots * H * rs->max_seq * E;
    for (int l = 0; l < m->layer_end - m->layer_begin; l++) {
        const LayerWeights *w = &m->layers[l];
        prof_layer = l;
        AttnArgs a = {
            .rows = rows, .heads = H, .head_dim = E, .slot = rs->slot, .pos = rs->pos,
            .k_cache = rs->k_cache + l * layer_kv, .v_cache = rs->v_cache + l * layer_kv,
            .max_seq = rs->max_seq, .out = rs->att, .act = m->act,
        };
        PROF(PROF_LAYERNORM, be->layernorm(ctx, rs->h, rs->x, w->ln1_g, w->ln1_b, rows, D, c->ln_eps, m->act));
        if (c->arch == ARCH_BLOOM) {
            /* fused query_key_value, rows interleaved per head: [head][q|k|v][E] */
            PROFB(PROF_QKV, (double)linear_read_bytes(&w->qkv), linear(m, &w->qkv, rs->h, rows, rs->qkv));
            a.q = rs->qkv;
            a.k = rs->qkv + E;
            a.v = rs->qkv + 2 * E;
            a.row_stride = 3 * D;
            a.head_stride = 3 * E;
            a.alibi = m->alibi;
            a.score_scale = 1.0f / sqrtf((float)E); /* BloomAttention inv_norm_factor */
        } else {
            /* q_proj | k_proj | v_proj stacked (model.c): each row is [q | k | v] */
            PROFB(PROF_QKV, (double)linear_read_bytes(&w->qkv), linear(m, &w->qkv, rs->h, rows, rs->qkv));
            a.q = rs->qkv;
            a.k = rs->qkv + D;
            a.v = rs->qkv + 2 * D;
            a.row_stride = 3 * D;
            a.head_stride = E;
            a.score_scale = 1.0f / sqrtf((float)E); /* OPTAttention scaling = head_dim^-0.5 */
        }
        PROFB(PROF_ATTENTION, so->kv_bytes, be->attention(ctx, &a));
        PROFB(PROF_OUT, (double)linear_read_bytes(&w->out), linear(m, &w->out, rs->att, rows, rs->tmp));
        PROF(PROF_ADD, be->add(ctx, rs->x, rs->x, rs->tmp, RD, m->act));

        PROF(PROF_LAYERNORM, be->layernorm(ctx, rs->h, rs->x, w->ln2_g, w->ln2_b, rows, D, c->ln_eps, m->act));
        PROFB(PROF_FC1, (double)linear_read_bytes(&w->fc1), linear(m, &w->fc1, rs->h, rows, rs->ffn));
        if (c->arch == ARCH_BLOOM)
            PROF(PROF_ACT, be->gelu(ctx, rs->ffn, (size_t)rows * F, m->act));
        else
            PROF(PROF_ACT, be->relu(ctx, rs->ffn, (size_t)rows * F, m->act));
        PROFB(PROF_FC2, (double)linear_read_bytes(&w->fc2), linear(m, &w->fc2, rs->ffn, rows, rs->tmp));
        PROF(PROF_ADD, be->add(ctx, rs->x, rs->x, rs->tmp, RD, m->act));
        if (rs->check_layers && be->finite_mark) be->finite_mark(ctx, rs->x, rows, D, m->act, m->layer_begin + l);
    }

    prof_layer = -1;
    if (m->last && nout > 0) {
        PROF(PROF_HEAD, be->gather_rows(ctx, rs->sel, rs->x, rs->out_idx, nout, 2 * (size_t)D);
             be->layernorm(ctx, rs->sel, rs->sel, m->lnf_g, m->lnf_b, nout, D, c->ln_eps, m->act));
        if (m->lm_head.wdt == DTYPE_I8) {
            /* --int8-head: LLM.int8() over this micro-batch's logit rows (their own outlier columns), fp16
             * logits as bitsandbytes gives them, then widened exactly for the sampler */
            PROFB(PROF_HEAD, (double)linear_read_bytes(&m->lm_head), linear(m, &m->lm_head, rs->sel, nout, rs->logits16);
                 be->widen(ctx, rs->logits, rs->logits16, (size_t)nout * c->vocab, m->act));
        } else {
            PROFB(PROF_HEAD, (double)linear_read_bytes(&m->lm_head),
                  be->linear(ctx, &m->lm_head, rs->sel, nout, m->act, rs->logits, DTYPE_F32, 0.0f));
        }
    }
}

void stage_forward(const Model *m, RunState *rs, int rows, const int32_t *tokens, const int32_t *pos,
                   const int32_t *slot, const int32_t *out_idx, int nout)
{
    Backend *be = m->be;
    void *ctx = be->ctx;
    PP8_CHECK(rows > 0 && rows <= rs->max_rows && nout <= rs->max_out, "micro-batch larger than the RunState");
    /* the row descriptors first: the ops below then touch only device memory */
    be->to_device(ctx, rs->pos, pos, sizeof(int32_t) * rows);
    be->to_device(ctx, rs->slot, slot, sizeof(int32_t) * rows);
    if (m->first) be->to_device(ctx, rs->tokens, tokens, sizeof(int32_t) * rows);
    if (m->last && nout > 0) be->to_device(ctx, rs->out_idx, out_idx, sizeof(int32_t) * nout);

    StageOps so = {m, rs, rows, nout, 0};
    if (rs->prof)
        for (int r = 0; r < rows; r++) so.kv_bytes += 4.0 * m->cfg.heads * m->cfg.head_dim * (pos[r] + 1);
    /* every argument of every op is fixed by the RunState (buffers, model, sizes) and the two row counts
     * (20 bits each in the key; larger micro-batches, prefill only, never take a graph); profiling times
     * each op, so it runs them one by one, and reads the timers after the step */
    const int most = rows > nout ? rows : nout;
    const uint64_t key = (uint64_t)rs->id << 40 | (uint64_t)rows << 20 | (uint64_t)nout;
    if (!rs->prof && be->graph_run && most < (1 << 20) && be->graph_run(ctx, key, most, stage_ops, &so)) return;
    stage_ops(&so);
    if (rs->prof && rs->prof->npend) prof_flush(be, rs->prof);
}
