/* pp8 perplexity: Hugging Face's "Perplexity of fixed-length models" (transformers docs,
 * perplexity.md): windows of up to --max-length tokens every --stride tokens; in each window only the
 * tokens no earlier window scored count (the guide's labels[:, :-trg_len] = -100), each predicted from
 * the window's tokens before it; ppl = exp(mean NLL over every scored token). The mean is the exact
 * mean over tokens (the guide weights each window's mean by its label count minus one, which differs
 * slightly). The last rank turns its logits into NLLs as each chunk arrives, so no [T, V] array is kept. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../parallel/control.h"
#include "../engine/session.h"
#include "../text/tokenizer.h"
#include "../util/file.h"
#include "../util/log.h"
#include "../util/tokens.h"
#include "commands.h"

static void usage(void)
{
    printf("usage: [mpirun -np N] pp8 perplexity (--model DIR | --config C [--tokenizer DIR]) (--file F | --text TEXT |\n"
           "                      --tokens IDS) [--max-length N] [--stride S] [--json FILE] [options]\n\n"
           "Sliding-window perplexity as Hugging Face's guide computes it: windows of up to --max-length tokens,\n"
           "one every --stride tokens; a window scores only the tokens no earlier window scored, each predicted\n"
           "from the window's tokens before it. Text is tokenized with the tokenizer's BOS (OPT's </s>), if it has\n"
           "one, once at the start. Prints `ppl P mean_nll X tokens N windows W` (N = tokens scored: all but the\n"
           "first); ppl = exp(mean NLL in nats).\n\n"
           "  --file F             the text to score (raw bytes, valid UTF-8)\n"
           "  --text TEXT          the text on the command line\n"
           "  --tokens IDS         token ids instead of text (comma-separated)\n"
           "  --max-length N       tokens per window (default --max-seq-len)\n"
           "  --stride S           tokens between window starts, 1..max-length (default half of --max-length)\n"
           "  --json FILE          also write {\"ppl\" (null when exp overflows), \"mean_nll\", \"tokens\", \"windows\"}\n%s",
           session_flags_help(SESSION_HELP_LOGITS));
}

typedef struct PplArgs {
    SessionOpts o;
    const char *file, *text, *tokens, *json;
    int max_length, stride;
} PplArgs;

static int parse(PplArgs *a, int argc, char **argv, int *help, Err *e)
{
    memset(a, 0, sizeof *a);
    session_defaults(&a->o);
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
        if (strcmp(f, "--file") && strcmp(f, "--text") && strcmp(f, "--tokens") && strcmp(f, "--json") &&
            strcmp(f, "--max-length") && strcmp(f, "--stride"))
            return err_set(e, "unknown option '%s' (pp8 perplexity --help)", f);
        if (!(v = cli_value(argc, argv, &i, e))) return -1;
        if (!strcmp(f, "--file")) a->file = v;
        else if (!strcmp(f, "--text")) a->text = v;
        else if (!strcmp(f, "--tokens")) a->tokens = v;
        else if (!strcmp(f, "--json")) a->json = v;
        else if (!strcmp(f, "--max-length")) {
            if (cli_int(v, f, 2, 1 << 24, &a->max_length, e))
                return err_set(e, "--max-length %s: expected an integer >= 2 (a window needs a token to predict from)", v);
        } else if (cli_int(v, f, 1, 1 << 24, &a->stride, e)) {
            return -1;
        }
    }
    if (!!a->file + !!a->text + !!a->tokens != 1) return err_set(e, "give exactly one of --file F, --text TEXT, --tokens IDS");
    if (!a->o.config && !a->o.model) return err_set(e, "give --model DIR, or --config C (random weights)");
    return 0;
}

/* rank 0: the text's ids, with the tokenizer's BOS once at the start */
static int encode_text(const PplArgs *a, const Config *cfg, TokenBatch *tb, Err *e)
{
    char *buf = NULL;
    size_t len = 0;
    if (a->file) {
        Err fe = {{0}};
        if (!(buf = file_read_all(a->file, &len, &fe))) return err_set(e, "--file %s", fe.msg);
    }
    const char *dir = session_tokenizer_dir(&a->o, e);
    Tokenizer *tok = NULL;
    int rc = !dir || tok_load(&tok, dir, e) ? -1 : 0;
    if (!rc && tok_size(tok) > cfg->vocab)
        rc = err_set(e, "%s: the tokenizer has ids up to %d but %s has vocab_size %d: give the model's own --tokenizer",
                     tok_path(tok), tok_size(tok) - 1, cfg->path, cfg->vocab);
    memset(tb, 0, sizeof *tb);
    tb->len = calloc(1, sizeof(int));
    tb->ids = calloc(1, sizeof(int32_t *));
    if (!rc && (!tb->len || !tb->ids)) rc = err_set(e, "out of memory");
    if (!rc) {
        tb->n = 1;
        Err te = {{0}};
        if (tok_encode(tok, a->file ? buf : a->text, a->file ? len : strlen(a->text), true, &tb->ids[0], &tb->len[0], &te))
            rc = err_set(e, "%s: %s", a->file ? a->file : "--text", te.msg);
        tb->max_len = tb->total = tb->len[0];
    }
    tok_free(tok);
    free(buf);
    return rc;
}

/* last rank: the NLL of every scored token of the current window */
typedef struct Scorer {
    const int32_t *ids; /* the window's tokens */
    int len, lo;        /* window length; labels at positions >= lo count */
    double nll;
    long count;
} Scorer;

static void score_row(void *ctx, int t, const float *row, int V)
{
    Scorer *sc = ctx;
    int j = t + 1; /* logits at t predict the token at t + 1 */
    if (j < sc->lo || j >= sc->len) return;
    double mx = -INFINITY, sum = 0;
    for (int v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
    for (int v = 0; v < V; v++) sum += exp((double)row[v] - mx);
    sc->nll += mx + log(sum) - (double)row[sc->ids[j]];
    sc->count++;
}

int cmd_perplexity(int argc, char **argv, Err *e)
{
    PplArgs a;
    int help;
    if (parse(&a, argc, argv, &help, e)) return -1;
    if (help) {
        if (ctl_rank() == 0) usage();
        return 0;
    }
    const int rank = ctl_rank(), size = ctl_size();
    Config cfg;
    TokenBatch tb = {0};
    int rc, limit = 0;
    if (a.tokens) {
        if (session_read_tokens(&a.o, a.tokens, 1, &cfg, &tb, e)) return -1;
        rc = 0;
    } else {
        rc = config_load(&cfg, session_config_path(&a.o), e);
        if (!rc && rank == 0) rc = encode_text(&a, &cfg, &tb, e);
        rc = session_agree(rc, e);
        if (!rc) rc = session_bcast_tokens(&tb, e);
    }
    if (!rc) {
        rc = session_max_seq_len(&a.o, &cfg, &limit, e);
        if (!rc && a.max_length > limit)
            rc = err_set(e, "--max-length %d is more than --max-seq-len %d%s", a.max_length, limit,
                         cfg.arch == ARCH_OPT && !a.o.max_seq_len ? " (max_position_embeddings)" : "");
        if (!rc && !a.max_length) a.max_length = limit;
        if (!rc && !a.stride) a.stride = a.max_length / 2 > 0 ? a.max_length / 2 : 1;
        if (!rc && a.stride > a.max_length)
            rc = err_set(e, "--stride %d is larger than the window (--max-length %d): tokens between windows would "
                            "never be scored; give a stride of at most %d", a.stride, a.max_length, a.max_length);
        if (!rc && tb.len[0] < 2)
            rc = err_set(e, "perplexity needs at least 2 tokens (one to predict from, one to score); the input has %d",
                         tb.len[0]);
        rc = session_agree(rc, e);
    }
    if (rc) {
        tokens_free(&tb);
        return -1;
    }
    const int T = tb.len[0];
    const int L = a.max_length < T ? a.max_length : T;
    int M = a.o.micro_batches > 0 ? a.o.micro_batches : 1;
    if (M > L) M = L;
    const int chunk = (L + M - 1) / M;
    Session s;
    rc = session_open(&s, &a.o, chunk, 1, L, chunk, e);
    Scorer sc = {0};
    int windows = 0;
    double t0 = wall_s();
    Engine en;
    if (!rc) {
        rc = engine_init(&en, &s.m, &s.rs, s.tr, a.o.sched, 1, e);
        en.on_logits = score_row;
        en.logits_ctx = &sc;
        if (session_agree(rc, e)) rc = -1;
        /* each window is one sequence in KV slot 0, read in chunks; its logits become NLLs on the last rank */
        for (int begin = 0, prev_end = 0; !rc && begin < T; begin += a.stride) {
            int end = begin + a.max_length < T ? begin + a.max_length : T;
            int trg = end - prev_end;
            sc.ids = tb.ids[0] + begin;
            sc.len = end - begin;
            sc.lo = sc.len - trg > 1 ? sc.len - trg : 1;
            EngineSeq q = {.prompt = sc.ids, .nprompt = sc.len, .max_new = 0, .logprobs = -1, .logits_from = sc.lo - 1,
                           .group = 0};
            sample_params_default(&q.sp);
            if (rank == 0) engine_admit(&en, &q);
            engine_run(&en, NULL, INT_MAX);
            windows++;
            prev_end = end;
            if (rank == 0 && (windows % 16 == 0 || end == T))
                log_info("perplexity: window %d, tokens %d of %d, %.1f s", windows, end, T, wall_s() - t0);
            if (end == T) break;
        }
        engine_free(&en);
    }
    double res[2] = {sc.nll, (double)sc.count};
    if (!rc) ctl_bcast_double(res, 2, size - 1);
    if (!rc && rank == 0) {
        double mean = res[0] / res[1], ppl = exp(mean);
        printf("ppl %.6g mean_nll %.6f tokens %.0f windows %d\n", ppl, mean, res[1], windows);
        fflush(stdout);
        if (a.json) {
            cJSON *root = cJSON_CreateObject();
            if (isfinite(ppl)) cJSON_AddNumberToObject(root, "ppl", ppl);
            else cJSON_AddNullToObject(root, "ppl");
            cJSON_AddNumberToObject(root, "mean_nll", mean);
            cJSON_AddNumberToObject(root, "tokens", res[1]);
            cJSON_AddNumberToObject(root, "windows", windows);
            rc = cli_write_json(a.json, root, e);
        }
    }
    rc = session_agree(rc, e);
    session_close(&s);
    tokens_free(&tb);
    return rc;
}
