/* See pipeline.h. Rank 0 runs the schedule: for each work item (step, micro-batch) in order it waits as
 * the schedule says, builds the item's rows from the sequences still running, sends them down the
 * pipeline, embeds and runs its layers. Every other rank follows the items as they arrive: receive the
 * rows and the hidden state, stage_forward, then send the hidden state on or, on the last rank,
 * sample and send the ids back to rank 0, which ends sequences on EOS, on the caller's word (stop
 * strings) or at their token budget. The two schedules differ only in when rank 0 may start an item:
 * pipelined waits for the tokens the item needs; naive waits until the previous item has left the
 * last stage. */
#include "pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/check.h"
#include "../../parallel/control.h"
#include "../util/log.h"

/* an item as it travels: [kind, rows, nout, tok[rows], pos[rows], slot[rows], out[nout]] */
enum { ITEM_END = 0, ITEM_WORK = 1, ITEM_HDR = 3 };

void pipeline_split(int *bounds, int n, int M)
{
    bounds[0] = 0;
    for (int i = 0; i < M; i++) bounds[i + 1] = bounds[i] + n / M + (i < n % M ? 1 : 0);
}

/* a freshly zeroed engine that engine_free may take whatever step of init failed */
static void engine_zero(Engine *en)
{
    memset(en, 0, sizeof *en);
    for (int b = 0; b < 4; b++) en->desc_req[b] = en->reply_req[b] = en->sendreq[b] = -1;
}

static int engine_common(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, Err *e)
{
    en->m = m;
    en->rs = rs;
    en->tr = tr;
    en->rank = tr->rank;
    en->size = tr->size;
    en->sched = s;
    en->eos_id = -1;
    size_t R = (size_t)rs->max_rows, D = (size_t)m->cfg.hidden, N = (size_t)en->nseq;
    en->h_tok = calloc(R, sizeof(int32_t));
    en->h_pos = calloc(R, sizeof(int32_t));
    en->h_slot = calloc(R, sizeof(int32_t));
    en->h_out = calloc(R, sizeof(int32_t));
    en->h_sampled = calloc(R, sizeof(int32_t));
    bool ok = en->h_tok && en->h_pos && en->h_slot && en->h_out && en->h_sampled;
    for (int b = 0; b < 4; b++) {
        ok = ok && (en->desc[b] = malloc(sizeof(int32_t) * (ITEM_HDR + 4 * R)));
        if (m->last) ok = ok && (en->reply[b] = malloc(sizeof(int32_t) * R));
    }
    /* rank 0: the schedule's bookkeeping; items in flight are at most one per micro-batch, or every
     * chunk of the prompt in logits mode */
    en->fifo_cap = en->M + 1;
    if (en->rank == 0) {
        en->fifo_group = calloc((size_t)en->fifo_cap, sizeof(int));
        en->fifo_nout = calloc((size_t)en->fifo_cap, sizeof(int));
        en->fifo_seq = calloc((size_t)en->fifo_cap * N, sizeof(int32_t));
        en->group_busy = calloc((size_t)en->M, sizeof(bool));
        en->ids_back = calloc(R > N ? R : N, sizeof(int32_t));
        ok = ok && en->fifo_group && en->fifo_nout && en->fifo_seq && en->group_busy && en->ids_back;
    }
    if (m->last && !en->chunked) {
        en->hist = calloc(N * (size_t)rs->max_seq, sizeof(int32_t));
        en->nsampled = calloc(N, sizeof(int));
        en->sample = sampler_scratch_create(m->cfg.vocab);
        ok = ok && en->hist && en->nsampled && en->sample;
    }
    bool mpi = !strcmp(tr->name, "mpi"), host = !strcmp(m->be->name, "cpu");
    /* a host backend's logits are sampled where they are: the copy cost BLOOM-560M 2.3 ms per 16 rows */
    en->h_logits = !m->last ? NULL
                   : host   ? rs->logits
                            : malloc(sizeof(float) * (size_t)rs->max_out * (size_t)m->cfg.vocab);
    en->own_logits = m->last && !host;
    ok = ok && (!m->last || en->h_logits);
    en->staged = mpi && !host; /* receives go through recvbuf before reaching the device */
    en->device_ring = !mpi;    /* NCCL sends from device copies: rs->x is overwritten by the next recv */
    if (en->staged && !m->first) ok = ok && (en->recvbuf = malloc(2 * R * D));
    for (int i = 0; i < 4; i++) {
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
    engine_zero(en);
    if (M > nseq) M = nseq; /* a micro-batch holds at least one sequence */
    en->nseq = nseq;
    en->len = len;
    en->prompt = prompt;
    en->M = M;
    en->max_new = max_new;
    en->group = calloc((size_t)M + 1, sizeof(int));
    en->next_tok = calloc((size_t)nseq, sizeof(int32_t));
    en->out = calloc((size_t)nseq * (size_t)(max_new > 0 ? max_new : 1), sizeof(int32_t));
    en->ngen = calloc((size_t)nseq, sizeof(int));
    en->finish = calloc((size_t)nseq, sizeof(Finish));
    if (!en->group || !en->next_tok || !en->out || !en->ngen || !en->finish) return err_set(e, "out of memory");
    pipeline_split(en->group, nseq, M);
    return engine_common(en, m, rs, tr, s, e);
}

int engine_init_chunked(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, int T, const int32_t *tokens,
                        int M, Err *e)
{
    engine_zero(en);
    if (M > T) M = T;
    en->nseq = 1;
    en->chunked = true;
    en->tokens = tokens;
    en->M = M;
    en->chunk = calloc((size_t)M + 1, sizeof(int));
    en->finish = calloc(1, sizeof(Finish));
    if (!en->chunk || !en->finish) return err_set(e, "out of memory");
    pipeline_split(en->chunk, T, M);
    return engine_common(en, m, rs, tr, s, e);
}

void engine_free(Engine *en)
{
    for (int i = 0; i < 4; i++) {
        if (en->sendreq[i] >= 0) en->tr->wait(en->tr->ctx, en->sendreq[i]);
        ctl_wait(en->desc_req[i]);
        ctl_wait(en->reply_req[i]);
        if (en->device_ring && en->sendbuf[i] && en->m) en->m->be->free(en->m->be->ctx, en->sendbuf[i]);
        else free(en->sendbuf[i]);
        free(en->desc[i]);
        free(en->reply[i]);
    }
    free(en->recvbuf);
    free(en->group);
    free(en->chunk);
    free(en->next_tok);
    free(en->out);
    free(en->ngen);
    free(en->finish);
    free(en->fifo_group);
    free(en->fifo_nout);
    free(en->fifo_seq);
    free(en->group_busy);
    free(en->ids_back);
    free(en->hist);
    free(en->nsampled);
    sampler_scratch_free(en->sample);
    free(en->h_tok);
    free(en->h_pos);
    free(en->h_slot);
    free(en->h_out);
    free(en->h_sampled);
    if (en->own_logits) free(en->h_logits);
    engine_zero(en);
}

int engine_running(const Engine *en)
{
    int n = 0;
    for (int s = 0; s < en->nseq; s++) n += en->finish[s] == FINISH_NONE;
    return n;
}

/* rank 0: the rows of item (step, i) from the sequences still running, and the sequence of each logit
 * row in seqs. Returns the row count (0: nothing left to run in this micro-batch). */
static int item_rows(Engine *en, int step, int i, int *nout, int32_t *seqs)
{
    int r = 0, o = 0;
    if (en->chunked) {
        for (int t = en->chunk[i]; t < en->chunk[i + 1]; t++, r++) {
            en->h_tok[r] = en->tokens[t];
            en->h_pos[r] = t;
            en->h_slot[r] = 0;
            if (t >= en->want_from) en->h_out[o++] = r;
        }
        *nout = o;
        return r;
    }
    for (int s = en->group[i]; s < en->group[i + 1]; s++) {
        if (en->finish[s] != FINISH_NONE) continue;
        if (step == 0) {
            for (int t = 0; t < en->len[s]; t++, r++) {
                en->h_tok[r] = en->prompt ? en->prompt[s][t] : 0;
                en->h_pos[r] = t;
                en->h_slot[r] = s;
            }
            en->h_out[o] = r - 1; /* the prompt's last row predicts the first new token */
        } else {
            en->h_tok[r] = en->next_tok[s];
            en->h_pos[r] = en->len[s] + en->ngen[s] - 1;
            en->h_slot[r] = s;
            en->h_out[o] = r++;
        }
        seqs[o++] = s;
    }
    *nout = o;
    return r;
}

/* rank 0: the ids sampled for one item's logit rows (in the order of seqs) */
static void take_ids(Engine *en, const int32_t *seqs, const int32_t *ids, int n)
{
    for (int j = 0; j < n; j++) {
        int s = seqs[j];
        int32_t id = ids[j];
        if (en->finish[s] != FINISH_NONE) continue;
        if (en->ngen[s] < en->max_new) en->out[(size_t)s * en->max_new + en->ngen[s]] = id;
        en->ngen[s]++;
        en->next_tok[s] = id;
        int stop = en->on_token ? en->on_token(en->token_ctx, s, id) : 0;
        if (en->eos_id >= 0 && id == en->eos_id) en->finish[s] = FINISH_EOS;
        else if (stop) en->finish[s] = FINISH_STOP;
        else if (en->ngen[s] >= en->max_new) en->finish[s] = FINISH_LENGTH;
    }
}

/* rank 0 of a multi-rank job: receive the ids of the oldest item in flight */
static void recv_oldest(Engine *en)
{
    int f = en->fifo_head, nout = en->fifo_nout[f];
    int n = ctl_recv_tag_i32(en->ids_back, nout, en->size - 1, CTL_TAG_SAMPLED);
    PP8_CHECK(n == nout, "the last rank returned a different number of ids than the item has logit rows");
    take_ids(en, en->fifo_seq + (size_t)f * en->nseq, en->ids_back, n);
    en->group_busy[en->fifo_group[f]] = false;
    en->fifo_head = (f + 1) % en->fifo_cap;
    en->fifo_len--;
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

static void send_hidden(Engine *en, int rows)
{
    size_t bytes = 2 * (size_t)rows * (size_t)en->m->cfg.hidden;
    int b = (int)(en->items % 4);
    if (en->sendreq[b] >= 0) PP8_CHECK(en->tr->wait(en->tr->ctx, en->sendreq[b]) == 0, "sending a hidden state failed");
    /* host ring (MPI): copy out; device ring (NCCL): a device-to-device copy ordered on the stream */
    if (en->device_ring)
        en->m->be->to_device(en->m->be->ctx, en->sendbuf[b], en->rs->x, bytes);
    else
        en->m->be->to_host(en->m->be->ctx, en->sendbuf[b], en->rs->x, bytes);
    PP8_CHECK(en->tr->isend(en->tr->ctx, en->sendbuf[b], bytes, en->rank + 1, CTL_TAG_HIDDEN, &en->sendreq[b]) == 0,
              "isend failed");
}

/* the item in h_* goes on to the next rank (ring slot of this rank's item count) */
static void send_rows(Engine *en, int kind, int rows, int nout)
{
    int b = (int)(en->items % 4);
    ctl_wait(en->desc_req[b]);
    int32_t *d = en->desc[b];
    d[0] = kind, d[1] = rows, d[2] = nout;
    memcpy(d + ITEM_HDR, en->h_tok, sizeof(int32_t) * (size_t)rows);
    memcpy(d + ITEM_HDR + rows, en->h_pos, sizeof(int32_t) * (size_t)rows);
    memcpy(d + ITEM_HDR + 2 * rows, en->h_slot, sizeof(int32_t) * (size_t)rows);
    memcpy(d + ITEM_HDR + 3 * rows, en->h_out, sizeof(int32_t) * (size_t)nout);
    en->desc_req[b] = ctl_isend_tag_i32(d, ITEM_HDR + 3 * rows + nout, en->rank + 1, CTL_TAG_ROWS);
}

/* ranks > 0: the next item from the previous rank, passed on at once (so the next rank can post its
 * receive while this one computes). Returns 0 for the end of the run. */
static int recv_rows(Engine *en, int *rows, int *nout)
{
    int b = (int)(en->items % 4);
    ctl_wait(en->desc_req[b]);
    int32_t *d = en->desc[b];
    int n = ctl_recv_tag_i32(d, ITEM_HDR + 4 * en->rs->max_rows, en->rank - 1, CTL_TAG_ROWS);
    PP8_CHECK(n >= ITEM_HDR && n == ITEM_HDR + 3 * d[1] + d[2], "a malformed item arrived from the previous rank");
    if (!en->m->last) en->desc_req[b] = ctl_isend_tag_i32(d, n, en->rank + 1, CTL_TAG_ROWS);
    *rows = d[1], *nout = d[2];
    memcpy(en->h_tok, d + ITEM_HDR, sizeof(int32_t) * (size_t)*rows);
    memcpy(en->h_pos, d + ITEM_HDR + *rows, sizeof(int32_t) * (size_t)*rows);
    memcpy(en->h_slot, d + ITEM_HDR + 2 * *rows, sizeof(int32_t) * (size_t)*rows);
    memcpy(en->h_out, d + ITEM_HDR + 3 * *rows, sizeof(int32_t) * (size_t)*nout);
    return d[0] == ITEM_WORK;
}

/* last rank: the logits of the item's logit rows become ids (generate) or go to on_logits (logits
 * mode). Each sequence draws with its own parameters from its own stream; the repetition penalty sees
 * the tokens at positions 0..pos of its slot, which this rank records from the rows it is sent. */
static void sample_rows(Engine *en, int rows, int nout)
{
    const int V = en->m->cfg.vocab, S = en->rs->max_seq;
    if (en->chunked) {
        for (int j = 0; j < nout; j++)
            if (en->on_logits) en->on_logits(en->logits_ctx, en->h_pos[en->h_out[j]], en->h_logits + (size_t)j * V, V);
        return;
    }
    for (int r = 0; r < rows; r++) en->hist[(size_t)en->h_slot[r] * S + en->h_pos[r]] = en->h_tok[r];
    SampleParams greedy;
    sample_params_default(&greedy);
    for (int j = 0; j < nout; j++) {
        int r = en->h_out[j], s = en->h_slot[r];
        const SampleParams *p = en->params ? &en->params[s] : &greedy;
        en->h_sampled[j] = sampler_next(p, en->h_logits + (size_t)j * V, V, en->hist + (size_t)s * S, en->h_pos[r] + 1,
                                        (uint64_t)s, (uint64_t)en->nsampled[s]++, en->sample);
    }
}

/* every rank: compute the item in h_* (rows, nout logit rows) and pass its result on: the hidden state
 * to the next rank, or the sampled ids to rank 0 (seqs: rank 0's list when it is also the last) */
static void item_compute(Engine *en, int rows, int nout, const int32_t *seqs)
{
    Model *m = en->m;
    RunState *rs = en->rs;
    Backend *be = m->be;
    if (!m->first) recv_hidden(en, rows);
    double t0 = wall_s();
    stage_forward(m, rs, rows, en->h_tok, en->h_pos, en->h_slot, en->h_out, m->last ? nout : 0);
    if (m->last) {
        double ts = rs->prof ? wall_s() : 0;
        if (en->own_logits && nout > 0)
            be->to_host(be->ctx, en->h_logits, rs->logits, sizeof(float) * (size_t)nout * m->cfg.vocab);
        sample_rows(en, rows, nout);
        if (rs->prof) rs->prof[PROF_SAMPLE] += wall_s() - ts;
    } else {
        be->sync(be->ctx);
    }
    en->busy_s += wall_s() - t0;
    if (!m->last) {
        send_hidden(en, rows);
    } else if (en->size > 1) {
        int b = (int)(en->items % 4), n = en->chunked ? 0 : nout;
        ctl_wait(en->reply_req[b]);
        memcpy(en->reply[b], en->h_sampled, sizeof(int32_t) * (size_t)n);
        en->reply_req[b] = ctl_isend_tag_i32(en->reply[b], n, 0, CTL_TAG_SAMPLED);
    } else if (!en->chunked) {
        take_ids(en, seqs, en->h_sampled, nout);
    }
    en->items++;
}

/* rank 0: the schedule */
static void run_first(Engine *en, int first, int last)
{
    bool multi = en->size > 1;
    for (int step = first; step < last; step++) {
        if (!en->chunked && !engine_running(en)) break;
        for (int i = 0; i < en->M; i++) {
            /* when may this item start? */
            if (multi && en->sched == SCHED_NAIVE)
                while (en->fifo_len > 0) recv_oldest(en);
            if (multi && en->sched == SCHED_PIPELINED && !en->chunked)
                while (en->group_busy[i]) recv_oldest(en);
            int f = (en->fifo_head + en->fifo_len) % en->fifo_cap, nout;
            int32_t *seqs = en->fifo_seq + (size_t)f * en->nseq;
            int rows = item_rows(en, step, i, &nout, seqs);
            if (rows == 0) continue;
            if (multi) {
                PP8_CHECK(en->fifo_len < en->fifo_cap, "more items in flight than micro-batches");
                en->fifo_group[f] = i;
                en->fifo_nout[f] = en->chunked ? 0 : nout;
                en->fifo_len++;
                en->group_busy[i] = true;
                send_rows(en, ITEM_WORK, rows, nout);
            }
            item_compute(en, rows, nout, seqs);
        }
        if (en->chunked) break;
    }
    while (multi && en->fifo_len > 0) recv_oldest(en);
    if (multi) send_rows(en, ITEM_END, 0, 0);
}

void engine_run(Engine *en, int first, int last)
{
    if (en->rank == 0) {
        run_first(en, first, last);
    } else {
        int rows, nout;
        while (recv_rows(en, &rows, &nout)) item_compute(en, rows, nout, NULL);
        en->items++;
    }
    for (int b = 0; b < 4; b++) {
        if (en->sendreq[b] >= 0) PP8_CHECK(en->tr->wait(en->tr->ctx, en->sendreq[b]) == 0, "send failed");
        en->sendreq[b] = -1;
        ctl_wait(en->desc_req[b]);
        ctl_wait(en->reply_req[b]);
        en->desc_req[b] = en->reply_req[b] = -1;
    }
}
