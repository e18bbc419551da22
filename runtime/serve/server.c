/* See server.h. A request's life: an HTTP thread reads the body (413 past max_body), checks the key,
 * parses it (api.c), tokenizes each prompt and checks it against --max-seq-len, then queues a Job of
 * one Choice per prompt (429 when the queue is full, 503 while draining). The engine thread's poll
 * admits queued choices as EngineSeqs; on_token detokenizes into each choice's Completion; on_finish
 * marks it done. The HTTP thread waits on the job (non-streaming) or turns new text into server-sent
 * events as MHD asks for more (streaming); either way it polls its socket between waits, so a client
 * that hangs up cancels its sequences, whose slots the engine frees at once. A Job is freed when both
 * sides have let go of it (refs). */
#define _GNU_SOURCE /* POLLRDHUP: a peer that closed its end */
#include "server.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../text/completion.h"
#include "../util/log.h"
#include "api.h"

#define WAIT_MS 50 /* how often a waiting HTTP thread looks at its socket */

/* Prometheus histogram buckets (seconds) of time to first token and inter-token latency */
static const double LAT_BUCKETS[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS (int)(sizeof LAT_BUCKETS / sizeof LAT_BUCKETS[0])

typedef struct Histo {
    long count[NBUCKETS + 1]; /* last: +Inf */
    double sum;
    long n;
} Histo;

typedef struct Choice {
    struct Job *job;
    int index;
    EngineSeq seq;
    int32_t *ids; /* (nids) the prompt's ids */
    int nids;
    char *prompt_text; /* what echo shows: the prompt as sent, or its ids decoded */
    size_t prompt_len;
    Completion comp;   /* the engine thread writes, the HTTP thread reads; both under job->mu */
    int32_t *gen_ids;  /* (ngen) */
    EngineLogprob *gen_lp; /* (ngen) when logprobs */
    int ngen, cap;
    EngineLogprob *prompt_lp; /* (nids) when echo + logprobs; [0] unused (nothing predicts it) */
    Finish finish;
    bool done;
    double t_last; /* the last token's time (inter-token latency) */
    /* streaming: what was sent */
    bool sent_echo, sent_final;
    int sent_tok;
} Choice;

typedef struct Job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* the HTTP side and, once queued, the engine side */
    struct Server *srv;
    CompletionRequest req;
    Choice *choices;
    int n, ndone;
    bool cancel;      /* the client is gone: the engine thread cancels its sequences */
    bool queued, admitted;
    char id[48];
    long created;
    double t_arrival;
    struct MHD_Connection *conn;
    Str out;          /* streaming: events built, not yet handed to MHD */
    size_t out_pos;
    bool sent_usage, sent_done;
    struct Job *next; /* the server's pending list */
    struct Job *anext, *aprev; /* the server's active list (admitted, not done) */
} Job;

struct Server {
    ServeOpts o;
    const Tokenizer *tok;
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu; /* the lists and counters below; taken before any job->mu */
    pthread_cond_t cv;  /* the engine thread waits here for work */
    Job *pending_head, *pending_tail;
    int npending;       /* prompts queued, not yet admitted */
    int nwaiting;       /* prompts admitted, waiting for a slot (as of the last poll) */
    int nrunning;       /* sequences in slots (as of the last poll) */
    bool cancels;       /* some job wants its sequences cancelled */
    Job *active;        /* admitted jobs not yet done */
    volatile sig_atomic_t stop_requested;
    bool draining;
    double drain_deadline;
    long job_counter;
    /* metrics */
    pthread_mutex_t mmu;
    long req_status[600]; /* answered requests by HTTP status */
    int http_jobs;        /* queued jobs whose HTTP side has not let go yet (serve_destroy waits for them) */
    long prompt_tokens, gen_tokens;
    Histo ttft, itl;
    double busy[64], busy_at;
    double start_time;
    int nranks;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += (long)ms * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(cv, mu, &t);
}

static void histo_add(Histo *h, double v)
{
    int b = 0;
    while (b < NBUCKETS && v > LAT_BUCKETS[b]) b++;
    h->count[b]++;
    h->sum += v;
    h->n++;
}

static void count_status(Server *srv, int status)
{
    pthread_mutex_lock(&srv->mmu);
    srv->req_status[status > 0 && status < 600 ? status : 599]++;
    pthread_mutex_unlock(&srv->mmu);
}

/* ---- jobs ---- */

static void job_free(Job *job)
{
    for (int i = 0; i < job->n; i++) {
        Choice *c = &job->choices[i];
        free(c->ids);
        free(c->prompt_text);
        completion_free(&c->comp);
        free(c->gen_ids);
        free(c->gen_lp);
        free(c->prompt_lp);
    }
    free(job->choices);
    api_request_free(&job->req);
    str_free(&job->out);
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->cv);
    free(job);
}

static void job_release(Job *job)
{
    pthread_mutex_lock(&job->mu);
    int left = --job->refs;
    pthread_mutex_unlock(&job->mu);
    if (left == 0) job_free(job);
}

/* the HTTP side lets go: a job still running is cancelled (its client is gone) */
static void job_abandon(Job *job)
{
    Server *srv = job->srv;
    pthread_mutex_lock(&srv->mu);
    pthread_mutex_lock(&job->mu);
    if (job->queued && job->ndone < job->n && !job->cancel) {
        job->cancel = true;
        srv->cancels = true;
        pthread_cond_signal(&srv->cv);
    }
    if (job->queued) {
        srv->http_jobs--;
        pthread_cond_broadcast(&srv->cv); /* serve_destroy may be waiting for the last response */
    }
    pthread_mutex_unlock(&job->mu);
    pthread_mutex_unlock(&srv->mu);
    job_release(job);
}

/* ---- the engine thread's hooks ---- */

static void active_remove(Server *srv, Job *job)
{
    if (job->aprev) job->aprev->anext = job->anext;
    else if (srv->active == job) srv->active = job->anext;
    if (job->anext) job->anext->aprev = job->aprev;
    job->anext = job->aprev = NULL;
}

/* a queued job never admitted ends here (cancelled or drained): its choices are done, the engine's ref goes */
static void job_end_unadmitted(Job *job, Finish f)
{
    pthread_mutex_lock(&job->mu);
    for (int i = 0; i < job->n; i++)
        if (!job->choices[i].done) {
            job->choices[i].done = true;
            job->choices[i].finish = f;
            job->ndone++;
        }
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    job_release(job);
}

static int hook_poll(void *ctx, Engine *en, double wait_s)
{
    Server *srv = ctx;
    pthread_mutex_lock(&srv->mu);
    if (wait_s > 0 && !srv->pending_head && !srv->cancels && !srv->stop_requested)
        cond_wait_ms(&srv->cv, &srv->mu, (int)(wait_s * 1000));
    double t = now_s();
    if (srv->stop_requested && !srv->draining) {
        srv->draining = true;
        srv->drain_deadline = t + srv->o.drain_timeout;
        log_info("SIGTERM: no new requests; %d running, %d waiting get up to %.0f s", srv->nrunning,
                 srv->nwaiting + srv->npending, srv->o.drain_timeout);
    }
    /* the clients that went away */
    if (srv->cancels) {
        srv->cancels = false;
        Job **pp = &srv->pending_head, *prev = NULL;
        while (*pp) { /* queued, never admitted: out of the queue */
            Job *job = *pp;
            if (job->cancel) {
                *pp = job->next;
                if (srv->pending_tail == job) srv->pending_tail = prev;
                srv->npending -= job->n;
                job_end_unadmitted(job, FINISH_CANCELLED);
            } else {
                prev = job;
                pp = &job->next;
            }
        }
        for (Job *job = srv->active; job; job = job->anext)
            if (job->cancel)
                for (int i = 0; i < job->n; i++) engine_cancel(en, &job->choices[i].seq, FINISH_CANCELLED);
    }
    /* queued requests become sequences (the engine gives them slots as they free up) */
    while (srv->pending_head) {
        Job *job = srv->pending_head;
        srv->pending_head = job->next;
        if (!srv->pending_head) srv->pending_tail = NULL;
        job->next = NULL;
        srv->npending -= job->n;
        job->admitted = true;
        job->anext = srv->active;
        if (srv->active) srv->active->aprev = job;
        srv->active = job;
        for (int i = 0; i < job->n; i++) engine_admit(en, &job->choices[i].seq);
    }
    /* the drain's time is up: what still runs ends now */
    if (srv->draining && t > srv->drain_deadline)
        for (Job *job = srv->active; job; job = job->anext)
            for (int i = 0; i < job->n; i++) engine_cancel(en, &job->choices[i].seq, FINISH_CANCELLED);
    srv->nwaiting = engine_waiting(en);
    srv->nrunning = engine_running(en);
    int done = srv->draining && srv->nrunning == 0 && srv->nwaiting == 0 && srv->npending == 0;
    pthread_mutex_unlock(&srv->mu);
    pthread_mutex_lock(&srv->mmu);
    for (int r = 0; r < srv->nranks && r < 64; r++) srv->busy[r] = en->busy_rank[r];
    srv->busy_at = t;
    pthread_mutex_unlock(&srv->mmu);
    return done;
}

static int hook_token(void *ctx, EngineSeq *s, int32_t id, const EngineLogprob *lp)
{
    Server *srv = ctx;
    Choice *c = s->user;
    Job *job = c->job;
    double t = now_s();
    pthread_mutex_lock(&job->mu);
    if (c->ngen == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        int32_t *ids = realloc(c->gen_ids, sizeof(int32_t) * (size_t)cap);
        EngineLogprob *l = job->req.logprobs >= 0 ? realloc(c->gen_lp, sizeof(EngineLogprob) * (size_t)cap) : NULL;
        if (ids) c->gen_ids = ids;
        if (l) c->gen_lp = l;
        if (ids && (l || job->req.logprobs < 0)) c->cap = cap;
    }
    int stop = 0;
    if (c->ngen < c->cap) {
        c->gen_ids[c->ngen] = id;
        if (c->gen_lp) c->gen_lp[c->ngen] = lp ? *lp : (EngineLogprob){0};
        c->ngen++;
        stop = completion_push(&c->comp, id) == 1;
    } else {
        stop = 1; /* out of memory: end it rather than lose tokens silently */
    }
    double first = c->ngen == 1 ? t - job->t_arrival : -1, gap = c->ngen > 1 ? t - c->t_last : -1;
    c->t_last = t;
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    pthread_mutex_lock(&srv->mmu);
    srv->gen_tokens++;
    if (first >= 0) histo_add(&srv->ttft, first);
    if (gap >= 0) histo_add(&srv->itl, gap);
    pthread_mutex_unlock(&srv->mmu);
    return stop;
}

static void hook_prompt_logprob(void *ctx, EngineSeq *s, int pos, const EngineLogprob *lp)
{
    (void)ctx;
    Choice *c = s->user;
    pthread_mutex_lock(&c->job->mu);
    if (c->prompt_lp && pos > 0 && pos < c->nids) c->prompt_lp[pos] = *lp;
    pthread_mutex_unlock(&c->job->mu);
}

static void hook_finish(void *ctx, EngineSeq *s)
{
    Server *srv = ctx;
    Choice *c = s->user;
    Job *job = c->job;
    pthread_mutex_lock(&srv->mu);
    pthread_mutex_lock(&job->mu);
    c->finish = s->finish;
    if (s->finish != FINISH_CANCELLED && s->finish != FINISH_ERROR) completion_finish(&c->comp);
    c->done = true;
    job->ndone++;
    bool all = job->ndone == job->n;
    if (all) active_remove(srv, job);
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    pthread_mutex_unlock(&srv->mu);
    if (all) job_release(job);
}

EngineHooks serve_hooks(Server *srv)
{
    return (EngineHooks){.ctx = srv, .poll = hook_poll, .on_token = hook_token,
                         .on_prompt_logprob = hook_prompt_logprob, .on_finish = hook_finish};
}

void serve_request_stop(Server *srv)
{
    srv->stop_requested = 1; /* a signal handler may not lock; poll wakes within its 50 ms wait */
}

/* ---- building responses (under job->mu) ---- */

/* a token's text as the logprobs arrays show it (its bytes made valid UTF-8) */
static char *token_text(const Server *srv, int32_t id, size_t *len)
{
    char *t = NULL;
    if (tok_decode(srv->tok, &id, 1, false, &t, len) != 0) {
        *len = 0;
        return NULL;
    }
    return t;
}

/* ApiTokenLogprob entries for the tokens [from, to) of a choice (prompt tokens first when echo),
 * with their texts in *texts (free each), offsets from base */
static int fill_logprobs(const Server *srv, const Choice *c, bool echo, int from, int to, size_t base,
                         ApiTokenLogprob *out, char **texts)
{
    const int np = echo ? c->nids : 0;
    int k = 0;
    size_t off = base;
    for (int i = from; i < to; i++, k++) {
        ApiTokenLogprob *t = &out[k];
        memset(t, 0, sizeof *t);
        int32_t id = i < np ? c->ids[i] : c->gen_ids[i - np];
        const EngineLogprob *lp = i < np ? (i > 0 ? &c->prompt_lp[i] : NULL) : &c->gen_lp[i - np];
        size_t n = 0;
        texts[k * (1 + ENGINE_MAX_TOP)] = token_text(srv, id, &n);
        t->token = texts[k * (1 + ENGINE_MAX_TOP)] ? texts[k * (1 + ENGINE_MAX_TOP)] : "";
        t->token_len = n;
        t->text_offset = off;
        off += n;
        t->has_logprob = lp != NULL;
        if (!lp) continue;
        t->logprob = lp->logprob;
        int want = c->job->req.logprobs;
        t->ntop = lp->ntop < want ? lp->ntop : want;
        for (int j = 0; j < t->ntop; j++) {
            size_t tl = 0;
            char *s = token_text(srv, lp->top_id[j], &tl);
            texts[k * (1 + ENGINE_MAX_TOP) + 1 + j] = s;
            t->top_token[j] = s ? s : "";
            t->top_len[j] = tl;
            t->top_logprob[j] = lp->top_lp[j];
        }
    }
    return k;
}

static void free_texts(char **texts, int n)
{
    for (int i = 0; i < n * (1 + ENGINE_MAX_TOP); i++) free(texts[i]);
    free(texts);
}

static void job_usage(const Job *job, ApiUsage *u)
{
    u->prompt_tokens = u->completion_tokens = 0;
    for (int i = 0; i < job->n; i++) {
        u->prompt_tokens += job->choices[i].nids;
        u->completion_tokens += job->choices[i].ngen;
    }
}

/* the whole response of a finished job */
static void job_json(Server *srv, Job *job, Str *out)
{
    ApiChoice *ch = calloc((size_t)job->n, sizeof *ch);
    ApiTokenLogprob **lps = calloc((size_t)job->n, sizeof *lps);
    char ***texts = calloc((size_t)job->n, sizeof *texts);
    Str *full = calloc((size_t)job->n, sizeof *full);
    if (!ch || !lps || !texts || !full) {
        str_puts(out, "{\"error\": {\"message\": \"out of memory\", \"type\": \"server_error\", \"param\": null, \"code\": null}}");
        free(ch), free(lps), free(texts), free(full);
        return;
    }
    const bool echo = job->req.echo;
    for (int i = 0; i < job->n; i++) {
        const Choice *c = &job->choices[i];
        if (echo) str_append(&full[i], c->prompt_text, c->prompt_len);
        str_append(&full[i], c->comp.text ? c->comp.text : "", c->comp.len);
        ch[i].index = i;
        ch[i].text = full[i].p ? full[i].p : "";
        ch[i].len = full[i].len;
        ch[i].finish_reason = finish_reason(c->finish);
        if (job->req.logprobs >= 0) {
            int nt = (echo ? c->nids : 0) + c->ngen;
            lps[i] = calloc((size_t)(nt > 0 ? nt : 1), sizeof **lps);
            texts[i] = calloc((size_t)(nt > 0 ? nt : 1) * (1 + ENGINE_MAX_TOP), sizeof(char *));
            if (lps[i] && texts[i]) {
                ch[i].nlogprobs = fill_logprobs(srv, c, echo, 0, nt, 0, lps[i], texts[i]);
                ch[i].logprobs = lps[i];
            }
        }
    }
    ApiUsage u;
    job_usage(job, &u);
    api_completion_json(out, job->id, job->created, srv->o.model_name, ch, job->n, &u);
    for (int i = 0; i < job->n; i++) {
        int nt = (echo ? job->choices[i].nids : 0) + job->choices[i].ngen;
        if (texts[i]) free_texts(texts[i], nt > 0 ? nt : 1);
        free(lps[i]);
        str_free(&full[i]);
    }
    free(ch), free(lps), free(texts), free(full);
}

/* streaming: the events that are ready, appended to job->out; returns 1 when the stream is complete */
static int job_events(Server *srv, Job *job)
{
    const bool echo = job->req.echo, lp = job->req.logprobs >= 0;
    for (int i = 0; i < job->n; i++) {
        Choice *c = &job->choices[i];
        if (c->sent_final) continue;
        ApiChoice ch = {.index = i};
        /* echo: the prompt first, with its log-probabilities once the prompt has been read */
        if (echo && !c->sent_echo && (!lp || c->ngen > 0 || c->done)) {
            ch.text = c->prompt_text;
            ch.len = c->prompt_len;
            ApiTokenLogprob *l = NULL;
            char **tx = NULL;
            if (lp && c->nids > 0 && (l = calloc((size_t)c->nids, sizeof *l)) &&
                (tx = calloc((size_t)c->nids * (1 + ENGINE_MAX_TOP), sizeof *tx))) {
                ch.nlogprobs = fill_logprobs(srv, c, true, 0, c->nids, 0, l, tx);
                ch.logprobs = l;
            }
            api_chunk_sse(&job->out, job->id, job->created, srv->o.model_name, &ch, NULL);
            if (tx) free_texts(tx, c->nids);
            free(l);
            c->sent_echo = true;
            ch.logprobs = NULL, ch.nlogprobs = 0;
        }
        if (echo && !c->sent_echo) continue;
        const char *p = NULL;
        size_t n = completion_ready(&c->comp, &p);
        int ntok = c->ngen - c->sent_tok;
        bool final = c->done;
        /* a chunk per generated token, its text empty when it shows nothing yet (held for a stop string or an
         * unfinished character, or an id the tokenizer lacks): clients see progress, and inter-token
         * latency is measured per token, as vLLM streams it */
        if (n == 0 && !final && ntok == 0) continue;
        ch.text = n ? p : "";
        ch.len = n;
        ch.finish_reason = final ? finish_reason(c->finish) : NULL;
        ApiTokenLogprob *l = NULL;
        char **tx = NULL;
        int base = echo ? c->nids : 0;
        if (lp && ntok > 0 && (l = calloc((size_t)ntok, sizeof *l)) &&
            (tx = calloc((size_t)ntok * (1 + ENGINE_MAX_TOP), sizeof *tx))) {
            ch.nlogprobs = fill_logprobs(srv, c, echo, base + c->sent_tok, base + c->ngen, 0, l, tx);
            ch.logprobs = l;
        }
        api_chunk_sse(&job->out, job->id, job->created, srv->o.model_name, &ch, NULL);
        if (tx) free_texts(tx, ntok);
        free(l);
        c->sent_tok = c->ngen;
        if (final) c->sent_final = true;
    }
    for (int i = 0; i < job->n; i++)
        if (!job->choices[i].sent_final) return 0;
    if (job->req.include_usage && !job->sent_usage) {
        ApiUsage u;
        job_usage(job, &u);
        api_chunk_sse(&job->out, job->id, job->created, srv->o.model_name, NULL, &u);
        job->sent_usage = true;
    }
    if (!job->sent_done) {
        api_done_sse(&job->out);
        job->sent_done = true;
    }
    return 1;
}

/* the client hung up (or reset): poll says so without reading what it may still send */
static bool client_gone(struct MHD_Connection *conn)
{
    if (!conn) return false;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* MHD asks for more of a stream: ready bytes, or wait for the engine (looking at the socket meanwhile) */
static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    Job *job = cls;
    pthread_mutex_lock(&job->mu);
    for (;;) {
        if (job->out_pos < job->out.len) {
            size_t n = job->out.len - job->out_pos < max ? job->out.len - job->out_pos : max;
            memcpy(buf, job->out.p + job->out_pos, n);
            job->out_pos += n;
            if (job->out_pos == job->out.len) job->out.len = job->out_pos = 0;
            pthread_mutex_unlock(&job->mu);
            return (ssize_t)n;
        }
        if (job->sent_done) break;
        if (job_events(job->srv, job) && job->out.len == 0) break;
        if (job->out.len > 0) continue;
        if (job->out.oom) break;
        pthread_mutex_unlock(&job->mu);
        bool gone = client_gone(job->conn);
        pthread_mutex_lock(&job->mu);
        if (gone) {
            pthread_mutex_unlock(&job->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (job->out_pos >= job->out.len && !job->sent_done) cond_wait_ms(&job->cv, &job->mu, WAIT_MS);
    }
    pthread_mutex_unlock(&job->mu);
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static void sse_free(void *cls) { job_abandon(cls); }

/* ---- requests ---- */

/* per connection request: its body as it arrives */
typedef struct ReqCtx {
    Str body;
    bool too_big;
} ReqCtx;

typedef struct Answer {
    int status;
    Str body;
    const char *ctype;
    const char *retry_after;
    Job *job; /* a queued completion (status 0) */
} Answer;

static void answer_error(Server *srv, Answer *a, const ApiError *err)
{
    (void)srv;
    a->status = err->status;
    api_error_json(&a->body, err);
}

static bool header_is_json(const char *ctype)
{
    if (!ctype) return false;
    while (*ctype == ' ') ctype++;
    return !strncasecmp(ctype, "application/json", 16) && (ctype[16] == 0 || ctype[16] == ';' || ctype[16] == ' ');
}

static bool key_ok(const Server *srv, const char *auth)
{
    if (!srv->o.api_key) return true;
    if (!auth || strncmp(auth, "Bearer ", 7)) return false;
    const char *k = auth + 7, *want = srv->o.api_key;
    size_t n = strlen(k), m = strlen(want);
    unsigned diff = n != m;
    for (size_t i = 0; i < n && i < m; i++) diff |= (unsigned char)(k[i] ^ want[i]); /* no early exit */
    return diff == 0;
}

static void metrics_text(Server *srv, Str *o)
{
    pthread_mutex_lock(&srv->mu);
    int queue = srv->npending + srv->nwaiting, running = srv->nrunning;
    pthread_mutex_unlock(&srv->mu);
    pthread_mutex_lock(&srv->mmu);
    str_puts(o, "# HELP pp8_requests_total Requests answered, by HTTP status.\n"
                "# TYPE pp8_requests_total counter\n");
    for (int k = 100; k < 600; k++)
        if (srv->req_status[k] || k == 200) str_printf(o, "pp8_requests_total{status=\"%d\"} %ld\n", k, srv->req_status[k]);
    str_printf(o, "# HELP pp8_prompt_tokens_total Prompt tokens of admitted requests.\n"
                  "# TYPE pp8_prompt_tokens_total counter\npp8_prompt_tokens_total %ld\n"
                  "# HELP pp8_generation_tokens_total Tokens generated.\n"
                  "# TYPE pp8_generation_tokens_total counter\npp8_generation_tokens_total %ld\n"
                  "# HELP pp8_queue_length Prompts waiting for a KV slot.\n"
                  "# TYPE pp8_queue_length gauge\npp8_queue_length %d\n"
                  "# HELP pp8_running_sequences Sequences in KV slots.\n"
                  "# TYPE pp8_running_sequences gauge\npp8_running_sequences %d\n"
                  "# HELP pp8_kv_slots_used KV-cache slots in use.\n"
                  "# TYPE pp8_kv_slots_used gauge\npp8_kv_slots_used %d\n"
                  "# HELP pp8_kv_slots_total KV-cache slots planned (each --max-seq-len positions).\n"
                  "# TYPE pp8_kv_slots_total gauge\npp8_kv_slots_total %d\n",
               srv->prompt_tokens, srv->gen_tokens, queue, running, running, srv->o.slots);
    const Histo *hs[2] = {&srv->ttft, &srv->itl};
    const char *names[2] = {"pp8_time_to_first_token_seconds", "pp8_inter_token_latency_seconds"};
    const char *help[2] = {"Seconds from a request's arrival to its first generated token.",
                           "Seconds between consecutive generated tokens of a sequence."};
    for (int h = 0; h < 2; h++) {
        str_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", names[h], help[h], names[h]);
        long cum = 0;
        for (int b = 0; b < NBUCKETS; b++) {
            cum += hs[h]->count[b];
            str_printf(o, "%s_bucket{le=\"%g\"} %ld\n", names[h], LAT_BUCKETS[b], cum);
        }
        cum += hs[h]->count[NBUCKETS];
        str_printf(o, "%s_bucket{le=\"+Inf\"} %ld\n%s_sum %.6f\n%s_count %ld\n", names[h], cum, names[h], hs[h]->sum,
                   names[h], hs[h]->n);
    }
    str_puts(o, "# HELP pp8_stage_busy_ratio Fraction of the time since start each rank spent computing.\n"
                "# TYPE pp8_stage_busy_ratio gauge\n");
    double span = srv->busy_at - srv->start_time;
    for (int r = 0; r < srv->nranks && r < 64; r++)
        str_printf(o, "pp8_stage_busy_ratio{rank=\"%d\"} %.4f\n", r, span > 0 ? srv->busy[r] / span : 0.0);
    pthread_mutex_unlock(&srv->mmu);
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* a parsed request becomes a Job: prompts tokenized and checked; NULL with err on a bad prompt */
static Job *job_create(Server *srv, CompletionRequest *req, ApiError *err)
{
    Job *job = calloc(1, sizeof *job);
    if (!job) {
        api_error(err, 503, "server_error", "", "out of memory");
        return NULL;
    }
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    job->srv = srv;
    job->req = *req;
    memset(req, 0, sizeof *req);
    job->n = job->req.nprompts;
    job->refs = 1;
    job->choices = calloc((size_t)job->n, sizeof *job->choices);
    if (!job->choices) {
        job_free(job);
        api_error(err, 503, "server_error", "", "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&srv->mu);
    long serial = ++srv->job_counter;
    pthread_mutex_unlock(&srv->mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t rnd = mix64((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)serial);
    snprintf(job->id, sizeof job->id, "cmpl-%016llx%08lx", (unsigned long long)rnd, (unsigned long)serial);
    job->created = (long)ts.tv_sec;
    job->t_arrival = now_s();
    const CompletionRequest *r = &job->req;
    SampleParams sp;
    sample_params_default(&sp);
    sp.temperature = (float)r->temperature;
    sp.top_k = r->top_k > 0 ? r->top_k : 0; /* OpenAI has no top-k: off unless asked */
    sp.top_p = r->top_p;
    sp.min_p = (float)r->min_p;
    sp.repetition_penalty = (float)r->repetition_penalty;
    sp.seed = r->has_seed ? r->seed : mix64(rnd); /* OpenAI: a random seed when none is given */
    for (int i = 0; i < job->n; i++) {
        Choice *c = &job->choices[i];
        const ApiPrompt *p = &r->prompts[i];
        c->job = job;
        c->index = i;
        if (p->text) {
            Err te = {{0}};
            if (tok_encode(srv->tok, p->text, p->len, true, &c->ids, &c->nids, &te)) {
                api_error(err, 400, "invalid_request_error", "prompt", "prompt %d: %s", i, te.msg);
                job_free(job);
                return NULL;
            }
            c->prompt_text = malloc(p->len + 1);
            if (c->prompt_text) memcpy(c->prompt_text, p->text, p->len), c->prompt_text[p->len] = 0;
            c->prompt_len = p->len;
        } else {
            c->ids = malloc(sizeof(int32_t) * (size_t)(p->nids > 0 ? p->nids : 1));
            if (c->ids) memcpy(c->ids, p->ids, sizeof(int32_t) * (size_t)p->nids), c->nids = p->nids;
            if (tok_decode(srv->tok, p->ids, p->nids, false, &c->prompt_text, &c->prompt_len)) c->prompt_text = NULL;
        }
        if (!c->ids || !c->prompt_text) {
            job_free(job);
            api_error(err, 503, "server_error", "", "out of memory");
            return NULL;
        }
        if (c->nids == 0) {
            job_free(job);
            api_error(err, 400, "invalid_request_error", "prompt",
                      "prompt %d is empty, and this model's tokenizer adds no BOS token, so there is nothing to "
                      "condition on: give some text", i);
            return NULL;
        }
        if (c->nids + r->max_tokens > srv->o.max_seq_len) {
            int n = c->nids, m = r->max_tokens; /* r is the job's: gone after job_free */
            job_free(job);
            api_error(err, 400, "invalid_request_error", "prompt",
                      "This model's maximum context length is %d tokens. However, you requested %d tokens (%d in "
                      "your prompt; %d for the completion). Please reduce your prompt; or completion length.",
                      srv->o.max_seq_len, n + m, n, m);
            err->code = "context_length_exceeded";
            return NULL;
        }
        if (r->echo && r->logprobs >= 0 && !(c->prompt_lp = calloc((size_t)c->nids, sizeof *c->prompt_lp))) {
            job_free(job);
            api_error(err, 503, "server_error", "", "out of memory");
            return NULL;
        }
        completion_init(&c->comp, srv->tok, (const char *const *)r->stop, r->nstop);
        c->seq = (EngineSeq){.prompt = c->ids, .nprompt = c->nids, .max_new = r->max_tokens, .sp = sp,
                             .stream = (uint64_t)i, .logprobs = r->logprobs > ENGINE_MAX_TOP ? ENGINE_MAX_TOP : r->logprobs,
                             .prompt_logprobs = r->echo && r->logprobs >= 0, .logits_from = -1,
                             .ignore_eos = r->ignore_eos, .group = -1, .user = c};
    }
    return job;
}

/* every answer that does not need the engine, or a queued Job */
static void route(Server *srv, const char *method, const char *url, const char *auth, const char *ctype,
                  const char *body, size_t len, bool too_big, Answer *a, bool queue)
{
    ApiError err = {0};
    a->ctype = "application/json";
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        if (!get) goto not_allowed;
        bool draining = srv->stop_requested;
        a->status = draining ? 503 : 200;
        str_puts(&a->body, draining ? "{\"status\": \"draining\"}" : "{\"status\": \"ok\"}");
        return;
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) goto not_allowed;
        a->status = 200;
        a->ctype = "text/plain; version=0.0.4; charset=utf-8";
        metrics_text(srv, &a->body);
        return;
    }
    if (strncmp(url, "/v1/", 4)) {
        api_error(&err, 404, "not_found_error", "", "%s: no such endpoint (pp8 serves /v1/completions, /v1/models, "
                  "/health and /metrics)", url);
        goto fail;
    }
    if (!key_ok(srv, auth)) {
        api_error(&err, 401, "authentication_error", "", "Incorrect API key provided: send the --api-key as "
                  "\"Authorization: Bearer KEY\"");
        err.code = "invalid_api_key";
        goto fail;
    }
    if (!strcmp(url, "/v1/models")) {
        if (!get) goto not_allowed;
        a->status = 200;
        api_models_json(&a->body, srv->o.model_name, (long)time(NULL), srv->o.max_seq_len);
        return;
    }
    if (!strcmp(url, "/v1/chat/completions")) {
        api_error(&err, 400, "invalid_request_error", "messages", "BLOOM and OPT have no chat template: use "
                  "/v1/completions with a prompt");
        goto fail;
    }
    if (strcmp(url, "/v1/completions")) {
        api_error(&err, 404, "not_found_error", "", "%s: no such endpoint (pp8 serves /v1/completions, /v1/models, "
                  "/health and /metrics)", url);
        goto fail;
    }
    if (!post) goto not_allowed;
    if (too_big) {
        api_error(&err, 413, "invalid_request_error", "", "the request body is larger than %zu bytes",
                  srv->o.max_body);
        goto fail;
    }
    if (!header_is_json(ctype)) {
        api_error(&err, 415, "invalid_request_error", "", "Content-Type must be application/json (got %s)",
                  ctype ? ctype : "none");
        goto fail;
    }
    if (srv->stop_requested) {
        api_error(&err, 503, "server_error", "", "the server is shutting down (SIGTERM): no new requests");
        goto fail;
    }
    ApiLimits lim = {.model = srv->o.model_name, .vocab = srv->o.vocab, .max_prompts = srv->o.max_prompts,
                     .max_tokens = srv->o.max_seq_len, .max_stops = 4, .max_stop_len = 1024};
    CompletionRequest req;
    Str unknown = {0};
    if (api_parse_completion(body, len, &lim, &req, &err, &unknown)) {
        str_free(&unknown);
        goto fail;
    }
    if (unknown.len) log_info("request: ignoring unknown fields %s", unknown.p);
    str_free(&unknown);
    Job *job = job_create(srv, &req, &err);
    api_request_free(&req);
    if (!job) goto fail;
    if (!queue) { /* serve_handle_immediate: a valid request, not run */
        job_free(job);
        a->status = 0;
        return;
    }
    pthread_mutex_lock(&srv->mu);
    if (srv->npending + srv->nwaiting + job->n > srv->o.max_queue) {
        pthread_mutex_unlock(&srv->mu);
        job_free(job);
        api_error(&err, 429, "rate_limit_error", "", "the queue is full (%d prompts wait for a KV slot, "
                  "--max-queue %d): retry later", srv->npending + srv->nwaiting, srv->o.max_queue);
        a->retry_after = "1";
        goto fail;
    }
    job->refs = 2; /* the HTTP side and the engine side */
    job->queued = true;
    srv->http_jobs++;
    if (srv->pending_tail) srv->pending_tail->next = job;
    else srv->pending_head = job;
    srv->pending_tail = job;
    srv->npending += job->n;
    pthread_cond_signal(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    pthread_mutex_lock(&srv->mmu);
    for (int i = 0; i < job->n; i++) srv->prompt_tokens += job->choices[i].nids;
    pthread_mutex_unlock(&srv->mmu);
    a->status = 0;
    a->job = job;
    return;
not_allowed:
    api_error(&err, 405, "invalid_request_error", "", "%s %s: method not allowed", method, url);
fail:
    answer_error(srv, a, &err);
}

int serve_handle_immediate(Server *srv, const char *method, const char *url, const char *auth, const char *ctype,
                           const char *body, size_t len, int *status, Str *out)
{
    Answer a = {0};
    route(srv, method, url, auth, ctype, body, len, len > srv->o.max_body, &a, false);
    *status = a.status;
    if (a.status) str_append(out, a.body.p ? a.body.p : "", a.body.len);
    str_free(&a.body);
    return a.status != 0;
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, const Answer *a)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->body.len, a->body.p ? a->body.p : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", a->ctype);
    if (a->retry_after) MHD_add_response_header(r, "Retry-After", a->retry_after);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)a->status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    Server *srv = cls;
    ReqCtx *rc = *con_cls;
    if (!rc) {
        if (!(rc = calloc(1, sizeof *rc))) return MHD_NO;
        *con_cls = rc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (rc->body.len + *upload_size > srv->o.max_body) rc->too_big = true;
        else str_append(&rc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    Answer a = {0};
    route(srv, method, url, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
          MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"), rc->body.p ? rc->body.p : "",
          rc->body.len, rc->too_big || rc->body.oom, &a, true);
    if (!a.job) {
        count_status(srv, a.status);
        enum MHD_Result ok = send_answer(conn, &a);
        str_free(&a.body);
        return ok;
    }
    Job *job = a.job;
    job->conn = conn;
    if (job->req.stream) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_reader, job, sse_free);
        if (!r) {
            job_abandon(job);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        count_status(srv, 200);
        enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ok;
    }
    /* not streamed: wait for every choice, looking at the socket meanwhile */
    pthread_mutex_lock(&job->mu);
    while (job->ndone < job->n) {
        pthread_mutex_unlock(&job->mu);
        bool gone = client_gone(conn);
        pthread_mutex_lock(&job->mu);
        if (gone) break;
        if (job->ndone < job->n) cond_wait_ms(&job->cv, &job->mu, WAIT_MS);
    }
    bool complete = job->ndone == job->n;
    if (complete) {
        a.status = 200;
        job_json(srv, job, &a.body);
    }
    pthread_mutex_unlock(&job->mu);
    job_abandon(job);
    if (!complete) return MHD_NO; /* the client is gone: close */
    count_status(srv, 200);
    enum MHD_Result ok = send_answer(conn, &a);
    str_free(&a.body);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    ReqCtx *rc = *con_cls;
    if (!rc) return;
    str_free(&rc->body);
    free(rc);
    *con_cls = NULL;
}

/* ---- life ---- */

int serve_create(Server **out, const ServeOpts *o, const Tokenizer *tok, Err *e)
{
    Server *srv = calloc(1, sizeof *srv);
    if (!srv) return err_set(e, "out of memory");
    srv->o = *o;
    srv->tok = tok;
    srv->nranks = o->ranks;
    srv->start_time = now_s();
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->mmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&srv->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = srv;
    return 0;
}

int serve_listen(Server *srv, Err *e)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", srv->o.port);
    int gai = getaddrinfo(srv->o.host, port, &hints, &ai);
    if (gai || !ai) return err_set(e, "--host %s: %s", srv->o.host, gai_strerror(gai));
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG |
                     MHD_USE_ITC; /* MHD_quiesce_daemon needs it */
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    srv->d = MHD_start_daemon(flags, (uint16_t)srv->o.port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR,
                              ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)600, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->d)
        return err_set(e, "cannot listen on %s:%d (in use? give another --port, or --host)", srv->o.host, srv->o.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : srv->o.port;
    return 0;
}

int serve_port(const Server *srv) { return srv->port; }

void serve_destroy(Server *srv)
{
    if (!srv) return;
    if (srv->d) {
        /* no new connections; the last responses of finished jobs go out before the threads are stopped */
        MHD_socket ls = MHD_quiesce_daemon(srv->d);
        if (ls != MHD_INVALID_SOCKET) close(ls);
        double until = now_s() + 5;
        pthread_mutex_lock(&srv->mu);
        while (srv->http_jobs > 0 && now_s() < until) cond_wait_ms(&srv->cv, &srv->mu, WAIT_MS);
        pthread_mutex_unlock(&srv->mu);
        MHD_stop_daemon(srv->d);
    }
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->mmu);
    pthread_cond_destroy(&srv->cv);
    free(srv);
}
