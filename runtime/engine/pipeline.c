/* See pipeline.h. One loop for every rank: for each work item (step, micro-batch) in order: get the
 * input (embedding of token ids on rank 0, a received hidden state elsewhere), stage_forward, then send
 * the hidden state on or, on the last rank, sample and send the token ids back to rank 0. The two
 * schedules differ only in when rank 0 may start an item: pipelined waits for the tokens the item
 * needs; naive waits until the previous item has left the last stage. */
#include "pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/check.h"
#include "../../parallel/control.h"
#include "../util/log.h"

void pipeline_split(int *bounds, int n, int M)
{
    bounds[0] = 0;
    for (int i = 0; i < M; i++) bounds[i + 1] = bounds[i] + n / M + (i < n % M ? 1 : 0);
}

static int engine_common(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, Err *e)
{
    en->m = m;
    en->rs = rs;
    en->tr = tr;
    en->rank = tr->rank;
    en->size = tr->size;
    en->sched = s;
    size_t R = (size_t)rs->max_rows, D = (size_t)m->cfg.hidden;
    en->h_tok = calloc(R, sizeof(int32_t));
    en->h_pos = calloc(R, sizeof(int32_t));
    en->h_slot = calloc(R, sizeof(int32_t));
    en->h_out = calloc(R, sizeof(int32_t));
    en->h_sampled = calloc(R, sizeof(int32_t));
    bool mpi = !strcmp(tr->name, "mpi"), host = !strcmp(m->be->name, "cpu");
    /* a host backend's logits are sampled where they are: the copy cost BLOOM-560M 2.3 ms per 16 rows */
    en->h_logits = !m->last ? NULL
                   : host   ? rs->logits
                            : malloc(sizeof(float) * (size_t)rs->max_out * (size_t)m->cfg.vocab);
    en->own_logits = m->last && !host;
    bool ok = en->h_tok && en->h_pos && en->h_slot && en->h_out && en->h_sampled && (!m->last || en->h_logits);
    en->staged = mpi && !host; /* receives go through recvbuf before reaching the device */
    en->device_ring = !mpi;    /* NCCL sends from device copies: rs->x is overwritten by the next recv */
    if (en->staged && !m->first) ok = ok && (en->recvbuf = malloc(2 * R * D));
    for (int i = 0; i < 4; i++) {
        en->sendreq[i] = -1;
        if (!m->last) {
            en->sendbuf[i] = en->device_ring ? m->be->alloc(m->be->ctx, 2 * R * D) : malloc(2 * R * D);
            ok = ok && en->sendbuf[i];
        }
    }
    return ok ? 0 : err_set(e, "out of memory for pipeline buffers");
}

int engine_init(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, int nseq, const int *len,
                const int32_t *const *prompt, int M, int max_new, Err *e)
{
    memset(en, 0, sizeof *en);
    if (M > nseq) M = nseq; /* a micro-batch holds at least one sequence */
    en->nseq = nseq;
    en->len = len;
    en->prompt = prompt;
    en->M = M;
    en->max_new = max_new;
    en->group = calloc((size_t)M + 1, sizeof(int));
    en->next_tok = calloc((size_t)nseq, sizeof(int32_t));
    en->out = calloc((size_t)nseq * (size_t)(max_new > 0 ? max_new : 1), sizeof(int32_t));
    if (!en->group || !en->next_tok || !en->out) return err_set(e, "out of memory");
    pipeline_split(en->group, nseq, M);
    return engine_common(en, m, rs, tr, s, e);
}

int engine_init_chunked(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, int T, const int32_t *tokens,
                        int M, Err *e)
{
    memset(en, 0, sizeof *en);
    static int one[1];
    if (M > T) M = T;
    one[0] = T;
    en->nseq = 1;
    en->len = one;
    en->prompt = NULL;
    en->chunked = true;
    en->M = M;
    en->max_new = 1;
    en->chunk = calloc((size_t)M + 1, sizeof(int));
    en->group = calloc(2, sizeof(int));
    en->next_tok = calloc(1, sizeof(int32_t));
    en->out = calloc(1, sizeof(int32_t));
    en->all_logits = m->last ? malloc(sizeof(float) * (size_t)T * (size_t)m->cfg.vocab) : NULL;
    if (!en->chunk || !en->group || !en->next_tok || !en->out || (m->last && !en->all_logits))
        return err_set(e, "out of memory");
    pipeline_split(en->chunk, T, M);
    en->group[1] = 1;
    static const int32_t *p[1];
    p[0] = tokens;
    en->prompt = p;
    return engine_common(en, m, rs, tr, s, e);
}

void engine_free(Engine *en)
{
    for (int i = 0; i < 4; i++) {
        if (en->sendreq[i] >= 0) en->tr->wait(en->tr->ctx, en->sendreq[i]);
        if (en->device_ring && en->sendbuf[i]) en->m->be->free(en->m->be->ctx, en->sendbuf[i]);
        else free(en->sendbuf[i]);
    }
    free(en->recvbuf);
    free(en->group);
    free(en->chunk);
    free(en->next_tok);
    free(en->out);
    free(en->all_logits);
    free(en->h_tok);
    free(en->h_pos);
    free(en->h_slot);
    free(en->h_out);
    free(en->h_sampled);
    if (en->own_logits) free(en->h_logits);
    memset(en, 0, sizeof *en);
}

/* Row descriptors of work item (step, i): returns the row count and the number of logit rows. */
static int item_rows(Engine *en, int step, int i, int *nout)
{
    int r = 0, o = 0;
    if (en->chunked) {
        for (int t = en->chunk[i]; t < en->chunk[i + 1]; t++, r++) {
            en->h_tok[r] = en->prompt[0][t];
            en->h_pos[r] = t;
            en->h_slot[r] = 0;
            en->h_out[o++] = r;
        }
        *nout = o;
        return r;
    }
    for (int s = en->group[i]; s < en->group[i + 1]; s++) {
        if (step == 0) {
            for (int t = 0; t < en->len[s]; t++, r++) {
                en->h_tok[r] = en->prompt ? en->prompt[s][t] : 0;
                en->h_pos[r] = t;
                en->h_slot[r] = s;
            }
            en->h_out[o++] = r - 1; /* the prompt's last row predicts the first new token */
        } else {
            en->h_tok[r] = en->next_tok[s];
            en->h_pos[r] = en->len[s] + step - 1;
            en->h_slot[r] = s;
            en->h_out[o++] = r++;
        }
    }
    *nout = o;
    return r;
}

/* greedy choice: the first index of the largest value (NaNs never win; v[0] = NaN gives 0). Two passes
 * so the compiler can vectorize the first (16 independent maxima; a > b ? a : b is maxps): the
 * dependent compare-and-index loop took ~1.5 ms per step over 8 x 50272 logits. */
static int32_t argmax(const float *v, int n)
{
    float lane[16];
    for (int l = 0; l < 16; l++) lane[l] = v[0];
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) lane[l] = v[i + l] > lane[l] ? v[i + l] : lane[l];
    float best = v[0];
    for (int l = 0; l < 16; l++) best = lane[l] > best ? lane[l] : best;
    for (; i < n; i++) best = v[i] > best ? v[i] : best;
    for (int j = 0; j < n; j++)
        if (v[j] == best) return j;
    return 0;
}

/* which sequence the j-th logit row of item (step, i) belongs to */
static int item_seq(const Engine *en, int i, int j) { return en->chunked ? 0 : en->group[i] + j; }

static void store_tokens(Engine *en, int step, int i, const int32_t *tok, int n)
{
    for (int j = 0; j < n; j++) {
        int s = item_seq(en, i, j);
        en->next_tok[s] = tok[j];
        if (step < en->max_new) en->out[(size_t)s * en->max_new + step] = tok[j];
    }
}

/* rank 0: receive the sampled tokens of work items up to and including k (in order) */
static void recv_until(Engine *en, long k)
{
    while (en->items_recv <= k) {
        int step = (int)(en->items_recv / en->M), i = (int)(en->items_recv % en->M), nout;
        item_rows(en, step, i, &nout);
        if (en->size > 1) {
            ctl_recv_i32(en->h_sampled, nout, en->size - 1);
            store_tokens(en, step, i, en->h_sampled, nout);
        }
        en->items_recv++;
    }
}

/* Hidden states leave through a ring of four send buffers so that compute goes on while sends
 * complete: host buffers over MPI, device buffers over NCCL (copies ordered on the stream). Receives
 * land in rs->x directly, except MPI into a device backend, which stages through host memory. */
static void recv_hidden(Engine *en, int rows)
{
    size_t bytes = 2 * (size_t)rows * (size_t)en->m->cfg.hidden;
    void *dst = en->staged ? en->recvbuf : (void *)en->rs->x;
    int req;
    PP8_CHECK(en->tr->irecv(en->tr->ctx, dst, bytes, en->rank - 1, CTL_TAG_HIDDEN, &req) == 0, "irecv failed");
    PP8_CHECK(en->tr->wait(en->tr->ctx, req) == 0, "receiving a hidden state failed");
    if (en->staged) en->m->be->to_device(en->m->be->ctx, en->rs->x, dst, bytes);
}

static void send_hidden(Engine *en, long k, int rows)
{
    size_t bytes = 2 * (size_t)rows * (size_t)en->m->cfg.hidden;
    int b = (int)(k % 4);
    if (en->sendreq[b] >= 0) PP8_CHECK(en->tr->wait(en->tr->ctx, en->sendreq[b]) == 0, "sending a hidden state failed");
    /* host ring (MPI): copy out; device ring (NCCL): a device-to-device copy ordered on the stream */
    if (en->device_ring)
        en->m->be->to_device(en->m->be->ctx, en->sendbuf[b], en->rs->x, bytes);
    else
        en->m->be->to_host(en->m->be->ctx, en->sendbuf[b], en->rs->x, bytes);
    PP8_CHECK(en->tr->isend(en->tr->ctx, en->sendbuf[b], bytes, en->rank + 1, CTL_TAG_HIDDEN, &en->sendreq[b]) == 0,
              "isend failed");
}

void engine_run(Engine *en, int first, int last)
{
    Model *m = en->m;
    RunState *rs = en->rs;
    Backend *be = m->be;
    const int V = m->cfg.vocab;
    if (en->chunked) last = 1;
    for (int step = first; step < last; step++) {
        for (int i = 0; i < en->M; i++) {
            long k = (long)step * en->M + i;
            /* when may this item start? (rank 0 gates the whole pipeline) */
            if (en->rank == 0 && en->size > 1) {
                if (en->sched == SCHED_NAIVE && k > 0) recv_until(en, k - 1);
                if (en->sched == SCHED_PIPELINED && step > 0) recv_until(en, k - en->M);
            }
            int nout, rows = item_rows(en, step, i, &nout);
            if (!m->first) recv_hidden(en, rows);
            double t0 = wall_s();
            stage_forward(m, rs, rows, en->h_tok, en->h_pos, en->h_slot, en->h_out, m->last ? nout : 0);
            if (m->last) {
                double ts = rs->prof ? wall_s() : 0;
                if (en->own_logits) be->to_host(be->ctx, en->h_logits, rs->logits, sizeof(float) * (size_t)nout * V);
                for (int j = 0; j < nout; j++) en->h_sampled[j] = argmax(en->h_logits + (size_t)j * V, V);
                if (rs->prof) rs->prof[PROF_SAMPLE] += wall_s() - ts;
                if (en->chunked)
                    memcpy(en->all_logits + (size_t)en->chunk[i] * V, en->h_logits, sizeof(float) * (size_t)nout * V);
            } else {
                be->sync(be->ctx);
            }
            en->busy_s += wall_s() - t0;
            if (m->last) {
                store_tokens(en, step, i, en->h_sampled, nout);
                if (en->size > 1) ctl_send_i32(en->h_sampled, nout, 0);
                else en->items_recv = k + 1;
                en->items_done = k + 1;
            } else {
                send_hidden(en, k, rows);
            }
        }
    }
    if (en->rank == 0 && en->size > 1) recv_until(en, (long)last * en->M - 1);
    for (int b = 0; b < 4; b++)
        if (en->sendreq[b] >= 0) {
            PP8_CHECK(en->tr->wait(en->tr->ctx, en->sendreq[b]) == 0, "send failed");
            en->sendreq[b] = -1;
        }
}
