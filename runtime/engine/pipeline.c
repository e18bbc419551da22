/* See pipeline.h. One loop per role. Rank 0: admit waiting sequences into free slots, then for each
 * group whose previous item has come back (or produced no tokens) build its next item from the group's
 * running sequences (decode rows first, then prompt chunks up to the budget), send its rows down,
 * embed and run its layers; when nothing can start, take the oldest item's results, or wait for work.
 * Every other rank follows the items as they arrive: receive the rows and the hidden state,
 * stage_forward, then send the hidden state on or, on the last rank, sample / score and send the
 * results back to rank 0. */
#include "pipeline.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/check.h"
#include "../../parallel/control.h"
#include "../util/log.h"

/* an item as it travels down: [kind, rows, nout, nstart, tok[rows], pos[rows], slot[rows], out[nout],
 * target[nout], start[nstart][START_WORDS], busy[size]] (busy: each rank's compute seconds as float
 * bits, filled in on the way, returned by the last rank for pp8_stage_busy_ratio). A reply, last rank
 * to rank 0: per logit row [id, logprob bits, ntop, ntop x (id, logprob bits)], then busy[size]. */
enum { ITEM_END = 0, ITEM_WORK = 1, ITEM_HDR = 4 };
enum { OUT_SAMPLE = -1, OUT_RAW = -2, OUT_NONE = -3 }; /* a row's target; >= 0: score that token */
enum { START_WORDS = 12, REPLY_MAX = 3 + 2 * ENGINE_MAX_TOP };

const char *finish_reason(Finish f)
{
    switch (f) {
    case FINISH_LENGTH: return "length";
    case FINISH_EOS:
    case FINISH_STOP: return "stop";
    case FINISH_CANCELLED: return "abort";
    case FINISH_ERROR: return "error";
    default: return NULL;
    }
}

void pipeline_split(int *bounds, int n, int M)
{
    bounds[0] = 0;
    for (int i = 0; i < M; i++) bounds[i + 1] = bounds[i] + n / M + (i < n % M ? 1 : 0);
}

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int engine_init(Engine *en, Model *m, RunState *rs, Transport *tr, Schedule s, int M, Err *e)
{
    memset(en, 0, sizeof *en);
    for (int b = 0; b < 4; b++) en->desc_req[b] = en->reply_req[b] = en->sendreq[b] = -1;
    en->m = m;
    en->rs = rs;
    en->tr = tr;
    en->rank = tr->rank;
    en->size = tr->size;
    en->sched = s;
    en->M = M < 1 ? 1 : M;
    en->budget = rs->max_rows;
    en->slots = rs->slots;
    en->eos_id = -1;
    en->limit = INT_MAX;
    if (en->size > 64) return err_set(e, "at most 64 ranks");
    const size_t R = (size_t)rs->max_rows, D = (size_t)m->cfg.hidden, S = (size_t)en->slots;
    const size_t O = (size_t)rs->max_out, P = (size_t)en->size;
    en->desc_words = ITEM_HDR + 3 * R + 2 * O + START_WORDS * R + P;
    en->reply_words = REPLY_MAX * O + P;
    en->h_tok = calloc(R, sizeof(int32_t));
    en->h_pos = calloc(R, sizeof(int32_t));
    en->h_slot = calloc(R, sizeof(int32_t));
    en->h_out = calloc(O, sizeof(int32_t));
    en->h_target = calloc(O, sizeof(int32_t));
    en->h_start = calloc(R * START_WORDS, sizeof(int32_t));
    en->h_sampled = calloc(en->reply_words, sizeof(int32_t));
    bool ok = en->h_tok && en->h_pos && en->h_slot && en->h_out && en->h_target && en->h_start && en->h_sampled;
    for (int b = 0; b < 4; b++) {
        ok = ok && (en->desc[b] = malloc(sizeof(int32_t) * en->desc_words));
        if (m->last) ok = ok && (en->reply[b] = malloc(sizeof(int32_t) * en->reply_words));
    }
    if (en->rank == 0) {
        en->fifo_cap = en->M + 16;
        const size_t F = (size_t)en->fifo_cap;
        en->by_slot = calloc(S, sizeof(EngineSeq *));
        en->group_seqs = calloc((size_t)en->M, sizeof(int));
        en->group_wait = calloc((size_t)en->M, sizeof(bool));
        en->group_inflight = calloc((size_t)en->M, sizeof(int));
        en->fifo_group = calloc(F, sizeof(int));
        en->fifo_nout = calloc(F, sizeof(int));
        en->fifo_nm = calloc(F, sizeof(int));
        /* per entry: its logit rows' sequences and kinds (budget each), then its member sequences */
        en->fifo_seq = calloc(F * 2 * R, sizeof(EngineSeq *));
        en->fifo_kind = calloc(F * R, sizeof(int32_t));
        en->reply_in = calloc(en->reply_words, sizeof(int32_t));
        ok = ok && en->by_slot && en->group_seqs && en->group_wait && en->group_inflight && en->fifo_group &&
             en->fifo_nout && en->fifo_nm && en->fifo_seq && en->fifo_kind && en->reply_in;
    }
    if (m->last) {
        en->slot_sp = calloc(S, sizeof(SampleParams));
        en->slot_stream = calloc(S, sizeof(uint64_t));
        en->slot_logprobs = calloc(S, sizeof(int));
        en->nsampled = calloc(S, sizeof(int));
        en->hist = calloc(S * (size_t)rs->max_seq, sizeof(int32_t));
        en->sample = sampler_scratch_create(m->cfg.vocab);
        en->raw = malloc(sizeof(float) * (size_t)m->cfg.vocab);
        ok = ok && en->slot_sp && en->slot_stream && en->slot_logprobs && en->nsampled && en->hist && en->sample &&
             en->raw;
    }
    bool mpi = !strcmp(tr->name, "mpi"), host = !strcmp(m->be->name, "cpu");
    /* a host backend's logits are sampled where they are: the copy cost BLOOM-560M 2.3 ms per 16 rows */
    en->h_logits = !m->last ? NULL : host ? rs->logits : malloc(sizeof(float) * O * (size_t)m->cfg.vocab);
    en->own_logits = m->last && !host;
    ok = ok && (!m->last || en->h_logits);
    en->staged = mpi && !host; /* receives go through recvbuf before reaching the device */
    en->device_ring = !mpi;    /* NCCL sends from device copies: rs->x is overwritten by the next recv */
    if (en->staged && !m->first) ok = ok && (en->recvbuf = malloc(2 * R * D));
    for (int i = 0; i < 4 && !m->last; i++) {
        en->sendbuf[i] = en->device_ring ? m->be->alloc(m->be->ctx, 2 * R * D) : malloc(2 * R * D);
        ok = ok && en->sendbuf[i];
    }
    return ok ? 0 : err_set(e, "out of memory for pipeline buffers");
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
    free(en->by_slot);
    free(en->group_seqs);
    free(en->group_wait);
    free(en->group_inflight);
    free(en->fifo_group);
    free(en->fifo_nout);
    free(en->fifo_nm);
    free(en->fifo_seq);
    free(en->fifo_kind);
    free(en->reply_in);
    free(en->slot_sp);
    free(en->slot_stream);
    free(en->slot_logprobs);
    free(en->nsampled);
    free(en->hist);
    sampler_scratch_free(en->sample);
    free(en->raw);
    free(en->h_tok);
    free(en->h_pos);
    free(en->h_slot);
    free(en->h_out);
    free(en->h_target);
    free(en->h_start);
    free(en->h_sampled);
    if (en->own_logits) free(en->h_logits);
    memset(en, 0, sizeof *en);
    for (int b = 0; b < 4; b++) en->desc_req[b] = en->reply_req[b] = en->sendreq[b] = -1;
}

/* ---- rank 0: sequences, slots and groups ---- */

void engine_admit(Engine *en, EngineSeq *s)
{
    s->slot = -1;
    s->sent = s->ngen = s->inflight = 0;
    s->finish = FINISH_NONE;
    s->next = NULL;
    if (en->wait_tail) en->wait_tail->next = s;
    else en->wait_head = s;
    en->wait_tail = s;
}

int engine_running(const Engine *en) { return en->running; }

int engine_waiting(const Engine *en)
{
    int n = 0;
    for (const EngineSeq *s = en->wait_head; s; s = s->next) n++;
    return n;
}

/* waiting sequences into the lowest free slots, in order; static batching admits only into an empty
 * engine, and then as many as fit */
static void assign_slots(Engine *en)
{
    if (en->static_batching && en->running > 0) return;
    for (int slot = 0; slot < en->slots && en->wait_head; slot++) {
        if (en->by_slot[slot]) continue;
        EngineSeq *s = en->wait_head;
        en->wait_head = s->next;
        if (!en->wait_head) en->wait_tail = NULL;
        s->next = NULL;
        int g = s->group >= 0 ? s->group % en->M : 0;
        if (s->group < 0)
            for (int k = 1; k < en->M; k++)
                if (en->group_seqs[k] < en->group_seqs[g]) g = k;
        s->group = g;
        s->slot = slot;
        en->by_slot[slot] = s;
        en->group_seqs[g]++;
        en->running++;
    }
}

/* the sequence ends: its slot is free at once (an item still in flight that writes its cache rows
 * reaches every rank before the rows of the slot's next sequence); on_finish once nothing in flight
 * refers to it */
static void finish_seq(Engine *en, EngineSeq *s, Finish f)
{
    if (s->finish != FINISH_NONE) return;
    s->finish = f;
    if (s->slot >= 0) {
        en->by_slot[s->slot] = NULL;
        en->group_seqs[s->group]--;
        en->running--;
        s->slot = -1;
    }
    s->next = en->done;
    en->done = s;
}

void engine_cancel(Engine *en, EngineSeq *s, Finish finish)
{
    if (s->finish != FINISH_NONE) return;
    if (s->slot < 0) { /* still waiting: out of the list */
        EngineSeq **pp = &en->wait_head, *prev = NULL;
        while (*pp && *pp != s) prev = *pp, pp = &(*pp)->next;
        if (*pp) {
            *pp = s->next;
            if (en->wait_tail == s) en->wait_tail = prev;
        }
    }
    finish_seq(en, s, finish == FINISH_NONE ? FINISH_CANCELLED : finish);
}

static void flush_done(Engine *en)
{
    EngineSeq **pp = &en->done;
    while (*pp) {
        EngineSeq *s = *pp;
        if (s->inflight > 0) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        s->next = NULL;
        if (en->hooks.on_finish) en->hooks.on_finish(en->hooks.ctx, s);
    }
}

/* ---- rank 0: building an item ---- */

static void add_start(Engine *en, const EngineSeq *s)
{
    int32_t *w = en->h_start + (size_t)en->nstart++ * START_WORDS;
    uint64_t top_p, seed = s->sp.seed, stream = s->stream;
    memcpy(&top_p, &s->sp.top_p, 8);
    w[0] = s->slot;
    w[1] = (int32_t)f2u(s->sp.temperature);
    w[2] = s->sp.top_k;
    w[3] = (int32_t)(uint32_t)top_p, w[4] = (int32_t)(uint32_t)(top_p >> 32);
    w[5] = (int32_t)f2u(s->sp.min_p);
    w[6] = (int32_t)f2u(s->sp.repetition_penalty);
    w[7] = (int32_t)(uint32_t)seed, w[8] = (int32_t)(uint32_t)(seed >> 32);
    w[9] = (int32_t)(uint32_t)stream, w[10] = (int32_t)(uint32_t)(stream >> 32);
    w[11] = s->logprobs;
}

static void add_out(Engine *en, int *nout, int row, int32_t target, EngineSeq *s, int32_t kind)
{
    en->h_out[*nout] = row;
    en->h_target[*nout] = target;
    en->item_seq[*nout] = s;
    en->item_kind[*nout] = kind;
    (*nout)++;
}

/* The next item of group g: one row per running sequence of g that is past its prompt, then prompt
 * chunks of g's sequences in slot order while the budget lasts. Rows of one sequence count it once in
 * members. Returns the row count (0: nothing to do). */
static int build_item(Engine *en, int g, int *nout, int *nmembers, EngineSeq **members, bool *samples)
{
    int rows = 0, no = 0, nm = 0;
    en->nstart = 0;
    *samples = false;
    for (int slot = 0; slot < en->slots; slot++) {
        EngineSeq *s = en->by_slot[slot];
        if (!s || s->group != g || s->sent < s->nprompt || s->ngen == 0) continue;
        if (s->ngen >= s->max_new || s->ngen >= en->limit || rows >= en->budget) continue;
        en->h_tok[rows] = s->last;
        en->h_pos[rows] = s->nprompt + s->ngen - 1;
        en->h_slot[rows] = slot;
        add_out(en, &no, rows++, OUT_SAMPLE, s, OUT_SAMPLE);
        members[nm++] = s;
        *samples = true;
    }
    const int max_out = en->rs->max_out < en->budget ? en->rs->max_out : en->budget;
    for (int slot = 0; slot < en->slots && rows < en->budget; slot++) {
        EngineSeq *s = en->by_slot[slot];
        if (!s || s->group != g || s->sent >= s->nprompt) continue;
        if (s->sent == 0) add_start(en, s);
        int p = s->sent;
        for (; p < s->nprompt && rows < en->budget; p++, rows++) {
            int32_t target = OUT_NONE;
            if (s->logits_from >= 0 && p >= s->logits_from) target = OUT_RAW;
            else if (s->prompt_logprobs && p + 1 < s->nprompt) target = s->prompt[p + 1];
            else if (p + 1 == s->nprompt && s->max_new > 0 && en->limit > 0) target = OUT_SAMPLE;
            if (target != OUT_NONE && no == max_out) break; /* the logits buffer is full: the chunk ends */
            en->h_tok[rows] = s->prompt[p];
            en->h_pos[rows] = p;
            en->h_slot[rows] = slot;
            if (target == OUT_RAW) add_out(en, &no, rows, OUT_RAW, s, OUT_RAW);
            else if (target >= 0) add_out(en, &no, rows, target, s, p + 1);
            else if (target == OUT_SAMPLE) {
                add_out(en, &no, rows, OUT_SAMPLE, s, OUT_SAMPLE);
                *samples = true;
            }
        }
        if (p == s->sent) { /* nothing of it fitted: take back its start record */
            if (s->sent == 0) en->nstart--;
            break;
        }
        s->sent = p;
        members[nm++] = s;
        if (no == max_out) break;
    }
    *nout = no;
    *nmembers = nm;
    return rows;
}

/* ---- results ---- */

/* rank 0: one generated id (id < 0: the last rank found non-finite logits) */
static void take_token(Engine *en, EngineSeq *s, int32_t id, const EngineLogprob *lp)
{
    if (id < 0) {
        log_warn("a sequence (stream %llu, %d ids generated) ended with an error: non-finite logits",
                 (unsigned long long)s->stream, s->ngen);
        finish_seq(en, s, FINISH_ERROR);
        return;
    }
    s->ngen++;
    s->last = id;
    int stop = en->hooks.on_token ? en->hooks.on_token(en->hooks.ctx, s, id, s->logprobs >= 0 ? lp : NULL) : 0;
    if (!s->ignore_eos && en->eos_id >= 0 && id == en->eos_id) finish_seq(en, s, FINISH_EOS);
    else if (stop) finish_seq(en, s, FINISH_STOP);
    else if (s->ngen >= s->max_new) finish_seq(en, s, FINISH_LENGTH);
}

/* rank 0: the results of fifo entry f, in the words of a reply */
static void take_reply(Engine *en, int f, const int32_t *w)
{
    const size_t R = (size_t)en->budget;
    EngineSeq **seq = en->fifo_seq + (size_t)f * 2 * R, **members = seq + R;
    const int32_t *kind = en->fifo_kind + (size_t)f * R;
    const int nout = en->fifo_nout[f];
    size_t at = 0;
    for (int j = 0; j < nout; j++) {
        EngineLogprob lp = {.logprob = u2f((uint32_t)w[at + 1]), .ntop = w[at + 2]};
        int32_t id = w[at];
        PP8_CHECK(lp.ntop >= 0 && lp.ntop <= ENGINE_MAX_TOP, "a malformed reply from the last rank");
        for (int t = 0; t < lp.ntop; t++) {
            lp.top_id[t] = w[at + 3 + 2 * t];
            lp.top_lp[t] = u2f((uint32_t)w[at + 4 + 2 * t]);
        }
        at += 3 + 2 * (size_t)lp.ntop;
        EngineSeq *s = seq[j];
        if (kind[j] == OUT_SAMPLE) {
            if (s->finish == FINISH_NONE) take_token(en, s, id, &lp);
        } else if (kind[j] >= 1 && s->finish != FINISH_CANCELLED && s->finish != FINISH_ERROR) {
            if (en->hooks.on_prompt_logprob) en->hooks.on_prompt_logprob(en->hooks.ctx, s, kind[j], &lp);
        }
    }
    for (int r = 0; r < en->size; r++) en->busy_rank[r] = u2f((uint32_t)w[at + (size_t)r]);
    en->busy_rank[0] = en->busy_s;
    int nm = en->fifo_nm[f], g = en->fifo_group[f];
    for (int k = 0; k < nm; k++) {
        EngineSeq *s = members[k];
        s->inflight--;
        /* a prompt read to its end with nothing to generate: done when its last rows are back */
        if (s->finish == FINISH_NONE && s->max_new == 0 && s->sent == s->nprompt && s->inflight == 0)
            finish_seq(en, s, FINISH_LENGTH);
    }
    en->group_inflight[g]--;
    if (en->group_inflight[g] == 0) en->group_wait[g] = false;
    flush_done(en);
}

/* ---- moving items ---- */

static void recv_hidden(Engine *en, int rows)
{
    size_t bytes = 2 * (size_t)rows * (size_t)en->m->cfg.hidden;
    void *dst = en->staged ? en->recvbuf : (void *)en->rs->x;
    int req;
    PP8_CHECK(en->tr->irecv(en->tr->ctx, dst, bytes, en->rank - 1, CTL_TAG_HIDDEN, &req) == 0, "irecv failed");
    PP8_CHECK(en->tr->wait(en->tr->ctx, req) == 0, "receiving a hidden state failed");
    if (en->staged) en->m->be->to_device(en->m->be->ctx, en->rs->x, dst, bytes);
}

/* Hidden states leave through a ring of four send buffers so that compute goes on while sends
 * complete: host buffers over MPI, device buffers over NCCL (copies ordered on the stream). */
static void send_hidden(Engine *en, int rows)
{
    size_t bytes = 2 * (size_t)rows * (size_t)en->m->cfg.hidden;
    int b = (int)(en->items % 4);
    if (en->sendreq[b] >= 0) PP8_CHECK(en->tr->wait(en->tr->ctx, en->sendreq[b]) == 0, "sending a hidden state failed");
    if (en->device_ring) en->m->be->to_device(en->m->be->ctx, en->sendbuf[b], en->rs->x, bytes);
    else en->m->be->to_host(en->m->be->ctx, en->sendbuf[b], en->rs->x, bytes);
    PP8_CHECK(en->tr->isend(en->tr->ctx, en->sendbuf[b], bytes, en->rank + 1, CTL_TAG_HIDDEN, &en->sendreq[b]) == 0,
              "isend failed");
}

/* rank 0: the item in h_* goes to rank 1 */
static void send_rows(Engine *en, int kind, int rows, int nout)
{
    int b = (int)(en->items % 4);
    ctl_wait(en->desc_req[b]);
    int32_t *d = en->desc[b];
    d[0] = kind, d[1] = rows, d[2] = nout, d[3] = en->nstart;
    int32_t *p = d + ITEM_HDR;
    memcpy(p, en->h_tok, sizeof(int32_t) * (size_t)rows), p += rows;
    memcpy(p, en->h_pos, sizeof(int32_t) * (size_t)rows), p += rows;
    memcpy(p, en->h_slot, sizeof(int32_t) * (size_t)rows), p += rows;
    memcpy(p, en->h_out, sizeof(int32_t) * (size_t)nout), p += nout;
    memcpy(p, en->h_target, sizeof(int32_t) * (size_t)nout), p += nout;
    memcpy(p, en->h_start, sizeof(int32_t) * (size_t)en->nstart * START_WORDS), p += en->nstart * START_WORDS;
    for (int r = 0; r < en->size; r++) p[r] = 0;
    p[0] = (int32_t)f2u((float)en->busy_s);
    en->desc_req[b] = ctl_isend_tag_i32(d, (int)(p + en->size - d), 1, CTL_TAG_ROWS);
}

/* ranks > 0: the next item from the previous rank, passed on at once (so the next rank can post its
 * receive while this one computes) with this rank's busy seconds in it. Returns 0 at the end of a run. */
static int recv_rows(Engine *en, int *rows, int *nout, int32_t **busy)
{
    int b = (int)(en->items % 4);
    ctl_wait(en->desc_req[b]);
    int32_t *d = en->desc[b];
    int n = ctl_recv_tag_i32_idle(d, (int)en->desc_words, en->rank - 1, CTL_TAG_ROWS);
    PP8_CHECK(n >= ITEM_HDR && n == ITEM_HDR + 3 * d[1] + 2 * d[2] + START_WORDS * d[3] + en->size,
              "a malformed item arrived from the previous rank");
    *rows = d[1], *nout = d[2], en->nstart = d[3];
    const int32_t *p = d + ITEM_HDR;
    memcpy(en->h_tok, p, sizeof(int32_t) * (size_t)*rows), p += *rows;
    memcpy(en->h_pos, p, sizeof(int32_t) * (size_t)*rows), p += *rows;
    memcpy(en->h_slot, p, sizeof(int32_t) * (size_t)*rows), p += *rows;
    memcpy(en->h_out, p, sizeof(int32_t) * (size_t)*nout), p += *nout;
    memcpy(en->h_target, p, sizeof(int32_t) * (size_t)*nout), p += *nout;
    memcpy(en->h_start, p, sizeof(int32_t) * (size_t)en->nstart * START_WORDS), p += en->nstart * START_WORDS;
    *busy = (int32_t *)p;
    (*busy)[en->rank] = (int32_t)f2u((float)en->busy_s);
    if (!en->m->last) en->desc_req[b] = ctl_isend_tag_i32(d, n, en->rank + 1, CTL_TAG_ROWS);
    return d[0] == ITEM_WORK;
}

/* last rank: the start records of the item's new sequences */
static void take_starts(Engine *en)
{
    for (int k = 0; k < en->nstart; k++) {
        const int32_t *w = en->h_start + (size_t)k * START_WORDS;
        int slot = w[0];
        PP8_CHECK(slot >= 0 && slot < en->slots, "a start record names a slot outside the plan");
        SampleParams *p = &en->slot_sp[slot];
        uint64_t top_p = (uint64_t)(uint32_t)w[3] | (uint64_t)(uint32_t)w[4] << 32;
        p->temperature = u2f((uint32_t)w[1]);
        p->top_k = w[2];
        memcpy(&p->top_p, &top_p, 8);
        p->min_p = u2f((uint32_t)w[5]);
        p->repetition_penalty = u2f((uint32_t)w[6]);
        p->seed = (uint64_t)(uint32_t)w[7] | (uint64_t)(uint32_t)w[8] << 32;
        en->slot_stream[slot] = (uint64_t)(uint32_t)w[9] | (uint64_t)(uint32_t)w[10] << 32;
        en->slot_logprobs[slot] = w[11] > ENGINE_MAX_TOP ? ENGINE_MAX_TOP : w[11];
        en->nsampled[slot] = 0;
    }
}

/* 1 when every value is finite: an inf or NaN anywhere makes the sum NaN. Eight independent sums so
 * the loop does not wait on one addition's latency (no -ffast-math to let gcc split it). */
static int row_finite(const float *v, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += v[i + l] * 0.0f;
    for (; i < n; i++) acc[0] += v[i] * 0.0f;
    float a = 0;
    for (int l = 0; l < 8; l++) a += acc[l];
    return a == 0.0f;
}

/* log_softmax's normalizer (in double) and the top alternatives of a raw row */
static double row_lse_top(const float *v, int V, int ntop, EngineLogprob *lp)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = v[i] > mx ? v[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)v[i] - mx);
    double lse = mx + log(sum);
    lp->ntop = 0;
    for (int i = 0; i < V && ntop > 0; i++) {
        int k = lp->ntop;
        if (k == ntop && !(v[i] > v[lp->top_id[k - 1]])) continue;
        if (k < ntop) lp->ntop++;
        else k--;
        while (k > 0 && v[i] > v[lp->top_id[k - 1]]) {
            lp->top_id[k] = lp->top_id[k - 1];
            k--;
        }
        lp->top_id[k] = i;
    }
    for (int t = 0; t < lp->ntop; t++) lp->top_lp[t] = (float)((double)v[lp->top_id[t]] - lse);
    return lse;
}

static int32_t *put_record(int32_t *w, int32_t id, float logprob, const EngineLogprob *lp)
{
    w[0] = id;
    w[1] = (int32_t)f2u(logprob);
    w[2] = lp ? lp->ntop : 0;
    for (int t = 0; lp && t < lp->ntop; t++) {
        w[3 + 2 * t] = lp->top_id[t];
        w[4 + 2 * t] = (int32_t)f2u(lp->top_lp[t]);
    }
    return w + 3 + 2 * (lp ? lp->ntop : 0);
}

/* last rank: the logits of the item's logit rows become results in h_sampled: a draw with the slot's
 * parameters from its own stream, a prompt token's log-probability, or raw logits for on_logits. The
 * repetition penalty sees the tokens at positions 0..pos of the slot, which this rank records from the
 * rows it is sent. Returns the reply's length in words, busy trailer excluded. */
static size_t sample_rows(Engine *en, int rows, int nout)
{
    const int V = en->m->cfg.vocab, S = en->rs->max_seq;
    for (int r = 0; r < rows; r++) en->hist[(size_t)en->h_slot[r] * S + en->h_pos[r]] = en->h_tok[r];
    int32_t *w = en->h_sampled;
    for (int j = 0; j < nout; j++) {
        const int r = en->h_out[j], slot = en->h_slot[r], target = en->h_target[j];
        float *row = en->h_logits + (size_t)j * V;
        EngineLogprob lp = {0};
        if (target == OUT_RAW) {
            if (en->on_logits) en->on_logits(en->logits_ctx, en->h_pos[r], row, V);
            w = put_record(w, 0, 0, NULL);
        } else if (target >= 0) {
            int n = en->slot_logprobs[slot] > 0 ? en->slot_logprobs[slot] : 0;
            double lse = row_lse_top(row, V, n, &lp);
            w = put_record(w, target, (float)((double)row[target] - lse), &lp);
        } else if (!row_finite(row, V)) {
            log_warn("non-finite logits for KV slot %d at position %d (draw %d): that sequence ends with an error",
                     slot, en->h_pos[r], en->nsampled[slot]);
            w = put_record(w, -1, 0, NULL);
        } else {
            int n = en->slot_logprobs[slot];
            double lse = 0;
            if (n >= 0) {
                memcpy(en->raw, row, sizeof(float) * (size_t)V);
                lse = row_lse_top(en->raw, V, n, &lp);
            }
            int32_t id = sampler_next(&en->slot_sp[slot], row, V, en->hist + (size_t)slot * S, en->h_pos[r] + 1,
                                      en->slot_stream[slot], (uint64_t)en->nsampled[slot]++, en->sample);
            w = put_record(w, id, n >= 0 ? (float)((double)en->raw[id] - lse) : 0, n >= 0 ? &lp : NULL);
        }
    }
    return (size_t)(w - en->h_sampled);
}

/* Every stage's output hidden state, once per item: inf or NaN there is an fp16 overflow in this rank's
 * layers (or an inf/NaN weight), which would otherwise reach the logits unexplained. The backend looks
 * (finite_mark, ~0.1% of a decode step on the CPU, one small kernel on the GPU) before the step's own
 * sync or copy to the host, so the answer comes back with the step's results and costs no wait of its
 * own (finite_start), and is read after (check_stage_output). The first reports name the rank, its
 * layers, the item, the first row's KV slot and position, and with --check-finite the first layer whose
 * output held it; the sequences then end with an error where their logits are non-finite (sample_rows). */
static void finite_start(Engine *en, int rows)
{
    Backend *be = en->m->be;
    if (!be->finite_mark) return;
    be->finite_mark(be->ctx, en->rs->x, rows, en->m->cfg.hidden, en->m->act, FINITE_TAG_OUTPUT);
    be->finite_fetch(be->ctx);
}

static void check_stage_output(Engine *en)
{
    const Model *m = en->m;
    Backend *be = m->be;
    int r, tag;
    if (!be->finite_result || !be->finite_result(be->ctx, &r, &tag)) return;
    if (++en->nonfinite_items > 3) return;
    char where[96];
    if (tag != FINITE_TAG_OUTPUT) snprintf(where, sizeof where, "first after layer %d", tag);
    else snprintf(where, sizeof where, "%s", en->rs->check_layers ? "in the embedding" : "--check-finite finds the layer");
    log_warn("rank %d (layers %d..%d): inf/NaN in the hidden state this stage computed (item %ld, first at KV slot %d, "
             "position %d; %s): an fp16 overflow in these layers or a non-finite weight; --dtype bf16 has fp32's "
             "range%s",
             en->rank, m->layer_begin, m->layer_end - 1, en->items, en->h_slot[r], en->h_pos[r], where,
             en->nonfinite_items == 3 ? " (further items with inf/NaN on this rank are not reported)" : "");
}

/* every rank: compute the item in h_* and pass its result on: the hidden state to the next rank, or the
 * results to rank 0 (or, when rank 0 is the last too, straight into fifo entry f) */
static void item_compute(Engine *en, int rows, int nout, const int32_t *busy_in, int f)
{
    Model *m = en->m;
    RunState *rs = en->rs;
    Backend *be = m->be;
    if (m->last) take_starts(en);
    if (!m->first) recv_hidden(en, rows);
    double t0 = wall_s();
    stage_forward(m, rs, rows, en->h_tok, en->h_pos, en->h_slot, en->h_out, m->last ? nout : 0);
    finite_start(en, rows);
    size_t words = 0;
    if (m->last) {
        double ts = rs->prof ? wall_s() : 0;
        if (en->own_logits && nout > 0)
            be->to_host(be->ctx, en->h_logits, rs->logits, sizeof(float) * (size_t)nout * m->cfg.vocab);
        check_stage_output(en);
        words = sample_rows(en, rows, nout);
        if (rs->prof) {
            rs->prof->s[PROF_SAMPLE] += wall_s() - ts;
            rs->prof->layer_s[PROF_LAYERS][PROF_SAMPLE] += wall_s() - ts;
        }
    } else {
        be->sync(be->ctx);
        check_stage_output(en);
    }
    en->busy_s += wall_s() - t0;
    if (!m->last) {
        send_hidden(en, rows);
    } else if (en->size > 1) {
        int b = (int)(en->items % 4);
        ctl_wait(en->reply_req[b]);
        memcpy(en->reply[b], en->h_sampled, sizeof(int32_t) * words);
        int32_t *trail = en->reply[b] + words;
        memcpy(trail, busy_in, sizeof(int32_t) * (size_t)en->size);
        trail[en->rank] = (int32_t)f2u((float)en->busy_s);
        en->reply_req[b] = ctl_isend_tag_i32(en->reply[b], (int)(words + (size_t)en->size), 0, CTL_TAG_SAMPLED);
    } else {
        en->h_sampled[words] = (int32_t)f2u((float)en->busy_s);
        take_reply(en, f, en->h_sampled);
    }
    en->items++;
}

/* rank 0 of a multi-rank job: the results of the oldest item in flight */
static void recv_oldest(Engine *en)
{
    int f = en->fifo_head;
    ctl_recv_tag_i32(en->reply_in, (int)en->reply_words, en->size - 1, CTL_TAG_SAMPLED);
    take_reply(en, f, en->reply_in);
    en->fifo_head = (f + 1) % en->fifo_cap;
    en->fifo_len--;
}

/* rank 0: build and start group g's next item; 0 when it has nothing to run */
static int launch(Engine *en, int g)
{
    const size_t R = (size_t)en->budget;
    int f = (en->fifo_head + en->fifo_len) % en->fifo_cap, nout, nm;
    EngineSeq **seq = en->fifo_seq + (size_t)f * 2 * R, **members = seq + R;
    bool samples;
    en->item_seq = seq;
    en->item_kind = en->fifo_kind + (size_t)f * R;
    int rows = build_item(en, g, &nout, &nm, members, &samples);
    if (rows == 0) return 0;
    for (int k = 0; k < nm; k++) members[k]->inflight++;
    en->fifo_group[f] = g;
    en->fifo_nm[f] = nm;
    en->fifo_nout[f] = nout;
    en->group_inflight[g]++;
    if (samples) en->group_wait[g] = true;
    if (en->size > 1) {
        en->fifo_len++;
        send_rows(en, ITEM_WORK, rows, nout);
    }
    item_compute(en, rows, nout, NULL, f);
    return 1;
}

/* rank 0: the schedule */
static void run_first(Engine *en, int limit)
{
    bool multi = en->size > 1, no_more = false;
    en->limit = limit;
    for (;;) {
        if (!no_more && en->hooks.poll) no_more = en->hooks.poll(en->hooks.ctx, en, 0) != 0;
        if (!en->hooks.poll) no_more = true;
        assign_slots(en);
        flush_done(en);
        int launched = 0;
        for (int g = 0; g < en->M; g++) {
            if (multi && en->sched == SCHED_NAIVE && en->fifo_len > 0) break;
            if (multi && en->fifo_len == en->fifo_cap) break;
            if (en->group_wait[g]) continue;
            launched += launch(en, g);
        }
        if (launched) continue;
        if (multi && en->fifo_len > 0) {
            recv_oldest(en);
            continue;
        }
        /* nothing runs and nothing can start: the admitted sequences are done or at the limit */
        if (no_more) break;
        no_more = en->hooks.poll(en->hooks.ctx, en, 0.05) != 0;
    }
    flush_done(en);
    if (multi) {
        en->nstart = 0;
        send_rows(en, ITEM_END, 0, 0);
    }
}

void engine_run(Engine *en, const EngineHooks *hooks, int limit)
{
    if (en->rank == 0) {
        en->hooks = hooks ? *hooks : (EngineHooks){0};
        run_first(en, limit);
    } else {
        int rows, nout;
        int32_t *busy;
        while (recv_rows(en, &rows, &nout, &busy)) item_compute(en, rows, nout, busy, -1);
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
