/* pp8 serve: an OpenAI-compatible completions server (DESIGN.md "Serving") over the continuous-
 * batching engine. Every rank loads its slice; rank 0 also runs the HTTP front end (serve/server.c) and
 * the schedule, the others only compute. The plan (ranks, layers, KV slots of --max-seq-len positions)
 * is printed at start-up. SIGTERM or SIGUSR1 (to rank 0, or every rank: the others ignore them) drains:
 * no new requests, running ones get --drain-timeout seconds, then every rank exits 0. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../parallel/control.h"
#include "../engine/session.h"
#include "../serve/server.h"
#include "../text/tokenizer.h"
#include "../util/log.h"
#include "commands.h"

static void usage(void)
{
    printf("usage: [mpirun -np N] pp8 serve (--model DIR | --config C --tokenizer DIR) [--host ADDR] [--port N]\n"
           "                 [--max-seqs N] [--max-queue N] [--api-key K] [--served-model-name NAME]\n"
           "                 [--drain-timeout S] [--static-batching] [--max-batch-tokens N] [options]\n\n"
           "OpenAI's completions API over HTTP on rank 0: POST /v1/completions (prompt: string, list of strings, token\n"
           "ids; max_tokens, temperature, top_p, seed, stop, stream (server-sent events), stream_options.include_usage,\n"
           "echo, logprobs up to 5 (with echo: the prompt's too), and pp8's top_k, min_p, repetition_penalty,\n"
           "ignore_eos), GET /v1/models, GET /health, GET /metrics (Prometheus). /v1/chat/completions answers 400:\n"
           "BLOOM and OPT have no chat template. Defaults are OpenAI's (max_tokens 16, temperature 1, no top-k, a\n"
           "random seed). Requests join the running batch at the next step and leave when they finish (continuous\n"
           "batching); a long prompt is read in chunks so it does not stall the others. A client that disconnects\n"
           "cancels its sequences. SIGTERM or SIGUSR1 to rank 0 drains: no new requests (503), running ones get\n"
           "--drain-timeout, then every rank exits 0. Under mpirun, signal launch/pp8run (it forwards SIGTERM as SIGUSR1)\n"
           "or send SIGUSR1 to mpirun: mpirun itself turns SIGTERM into a SIGKILL of every rank soon after.\n\n"
           "  --host ADDR          address to bind (default 127.0.0.1; 0.0.0.0 for every interface)\n"
           "  --port N             TCP port (default 8000; 0: any free port, printed at start-up)\n"
           "  --max-seqs N         sequences running at once = KV slots of --max-seq-len positions (default: as many\n"
           "                       as the memory plan fits, up to 256)\n"
           "  --max-queue N        prompts waiting for a slot before new requests get 429 (default 4 x --max-seqs)\n"
           "  --api-key K          require \"Authorization: Bearer K\" on /v1/ (not on /health, /metrics)\n"
           "  --served-model-name NAME  the \"model\" clients send (default: the model directory's name)\n"
           "  --drain-timeout S    seconds running requests get after SIGTERM (default 30)\n"
           "  --static-batching    admit a new batch only when the last has finished (for comparison only)\n"
           "  --max-batch-tokens N rows per pipeline item: decode rows + a prompt chunk (default 512)\n%s",
           session_flags_help(SESSION_HELP_GENERATE));
}

typedef struct ServeArgs {
    SessionOpts o;
    const char *host, *api_key, *name;
    int port, max_seqs, max_queue, budget, static_batching;
    double drain;
} ServeArgs;

static int parse(ServeArgs *a, int argc, char **argv, int *help, Err *e)
{
    memset(a, 0, sizeof *a);
    session_defaults(&a->o);
    a->host = "127.0.0.1";
    a->port = 8000;
    a->drain = 30;
    a->budget = 512;
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            *help = 1;
            return 0;
        }
        int r = session_flag(&a->o, argc, argv, &i, e);
        if (r < 0) return -1;
        if (r) continue;
        if (!strcmp(f, "--static-batching")) {
            a->static_batching = 1;
            continue;
        }
        if (strcmp(f, "--host") && strcmp(f, "--port") && strcmp(f, "--max-seqs") && strcmp(f, "--max-queue") &&
            strcmp(f, "--api-key") && strcmp(f, "--served-model-name") && strcmp(f, "--drain-timeout") &&
            strcmp(f, "--max-batch-tokens"))
            return err_set(e, "unknown option '%s' (pp8 serve --help)", f);
        if (!(v = cli_value(argc, argv, &i, e))) return -1;
        if (!strcmp(f, "--host")) a->host = v;
        else if (!strcmp(f, "--port")) {
            if (cli_int(v, f, 0, 65535, &a->port, e)) return -1;
        } else if (!strcmp(f, "--max-seqs")) {
            if (cli_int(v, f, 1, 65536, &a->max_seqs, e)) return -1;
        } else if (!strcmp(f, "--max-queue")) {
            if (cli_int(v, f, 1, 1 << 24, &a->max_queue, e)) return -1;
        } else if (!strcmp(f, "--api-key")) {
            if (!v[0]) return err_set(e, "--api-key: the key is empty");
            a->api_key = v;
        } else if (!strcmp(f, "--served-model-name")) {
            if (!v[0]) return err_set(e, "--served-model-name: the name is empty");
            a->name = v;
        } else if (!strcmp(f, "--drain-timeout")) {
            if (cli_double(v, f, 0, 86400, &a->drain, e)) return -1;
        } else if (cli_int(v, f, 16, 1 << 20, &a->budget, e)) {
            return -1;
        }
    }
    if (!a->o.config && !a->o.model) return err_set(e, "give --model DIR, or --config C with --tokenizer DIR");
    return 0;
}

static Server *g_server; /* for the SIGTERM handler (rank 0) */

static void on_sigterm(int sig)
{
    (void)sig;
    if (g_server) serve_request_stop(g_server);
}

/* the model's name as clients send it: the checkpoint directory's (or the config file's) last component */
static void default_name(const ServeArgs *a, const Config *cfg, char *buf, size_t n)
{
    const char *p = a->o.model ? a->o.model : NULL;
    if (!p) {
        snprintf(buf, n, "%s", cfg->name);
        return;
    }
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/') len--;
    size_t s = len;
    while (s > 0 && p[s - 1] != '/') s--;
    snprintf(buf, n, "%.*s", (int)(len - s), p + s);
}

int cmd_serve(int argc, char **argv, Err *e)
{
    ServeArgs a;
    int help;
    if (parse(&a, argc, argv, &help, e)) return -1;
    if (help) {
        if (ctl_rank() == 0) usage();
        return 0;
    }
    const int rank = ctl_rank();
    /* until rank 0 listens, a drain request has nothing to drain: SIGUSR1 (pp8run's) must not kill */
    signal(SIGUSR1, SIG_IGN);
    Config cfg;
    Tokenizer *tok = NULL;
    int limit = 0;
    int rc = config_load(&cfg, session_config_path(&a.o), e);
    if (!rc) rc = session_max_seq_len(&a.o, &cfg, &limit, e);
    if (!rc && rank == 0) {
        const char *dir = session_tokenizer_dir(&a.o, e);
        rc = !dir || tok_load(&tok, dir, e) ? -1 : 0;
        if (!rc && tok_size(tok) > cfg.vocab)
            rc = err_set(e, "%s: the tokenizer has ids up to %d but %s has vocab_size %d: give the model's own --tokenizer",
                         tok_path(tok), tok_size(tok) - 1, cfg.path, cfg.vocab);
    }
    if (session_agree(rc, e)) {
        tok_free(tok);
        return -1;
    }
    /* KV slots of --max-seq-len positions; the workspace for items of --max-batch-tokens rows */
    a.o.plan_rows = a.budget;
    a.o.max_slots = a.max_seqs > 0 ? a.max_seqs : 256;
    Session s;
    rc = session_open(&s, &a.o, a.budget, a.max_seqs, limit, a.budget, e);
    Engine en;
    Server *srv = NULL;
    memset(&en, 0, sizeof en);
    int M = 1;
    if (!rc) {
        M = a.o.micro_batches > 0 ? a.o.micro_batches
            : a.o.sched == SCHED_NAIVE ? 1
                                       : session_default_micro_batches(&s, s.slots);
        if (M > s.slots) M = s.slots;
        if ((s.slots + M - 1) / M >= a.budget)
            rc = err_set(e, "--max-batch-tokens %d: must exceed the sequences per micro-batch (%d slots in %d groups), "
                            "or prompts would never be read", a.budget, s.slots, M);
        if (!rc) rc = engine_init(&en, &s.m, &s.rs, s.tr, a.o.sched, M, e);
        en.eos_id = cfg.eos_id;
        en.static_batching = a.static_batching;
        rc = session_agree(rc, e);
    }
    char name[256];
    if (!rc && rank == 0) {
        default_name(&a, &cfg, name, sizeof name);
        ServeOpts so = {.host = a.host, .port = a.port, .max_queue = a.max_queue > 0 ? a.max_queue : 4 * s.slots,
                        .api_key = a.api_key, .model_name = a.name ? a.name : name, .drain_timeout = a.drain,
                        .max_seq_len = limit, .vocab = cfg.vocab, .slots = s.slots, .ranks = s.size,
                        .max_body = (size_t)1 << 20, .max_prompts = 64};
        rc = serve_create(&srv, &so, tok, e);
        if (!rc) rc = serve_listen(srv, e);
    }
    if (!session_agree(rc, e)) {
        /* the plan, then the address (what someone starting it wants to see) */
        for (int r = 0; r < s.size; r++)
            log_info("serve: rank %d: layers [%d, %d)%s%s", r, s.layer_begin[r], s.layer_end[r],
                     r == 0 ? " + embedding" : "", r == s.size - 1 ? " + final norm and LM head" : "");
        log_info("serve: %d KV slots of %d positions (--max-seq-len), %d micro-batch group(s), items of up to %d "
                 "tokens, %s batching, %s schedule", s.slots, limit, M, a.budget,
                 a.static_batching ? "static" : "continuous", a.o.sched == SCHED_NAIVE ? "naive" : "pipelined");
        if (rank == 0)
            log_info("serve: model \"%s\" on http://%s:%d/v1 (POST /v1/completions; GET /v1/models /health /metrics)",
                     a.name ? a.name : name, a.host, serve_port(srv));
        signal(SIGPIPE, SIG_IGN);
        if (rank == 0) {
            g_server = srv;
            struct sigaction sa = {.sa_handler = on_sigterm};
            sigemptyset(&sa.sa_mask);
            sigaction(SIGTERM, &sa, NULL);
            sigaction(SIGINT, &sa, NULL);
            sigaction(SIGUSR1, &sa, NULL); /* what launch/pp8run turns SIGTERM into (mpirun forwards it at once) */
            EngineHooks hooks = serve_hooks(srv);
            engine_run(&en, &hooks, INT_MAX);
            g_server = NULL;
            log_info("serve: drained; exiting");
        } else {
            /* rank 0 decides when to stop; mpirun forwards SIGTERM to every rank */
            signal(SIGTERM, SIG_IGN);
            signal(SIGINT, SIG_IGN);
            signal(SIGUSR1, SIG_IGN);
            engine_run(&en, NULL, INT_MAX);
        }
    } else {
        rc = -1;
    }
    serve_destroy(srv);
    engine_free(&en);
    session_close(&s);
    tok_free(tok);
    return rc;
}
