/* pp8 generate: text in, text out (or token ids in, ids out) for a batch of sequences through the
 * pipeline. Rank 0 owns the tokenizer, the streaming detokenizer, stop strings and all output; the last
 * rank samples with each sequence's parameters (DESIGN.md "Text in and out"). One text prompt streams
 * to stdout as it is generated; several, or --jsonl, give one JSON object per sequence. It does not
 * prepend config.json's "prefix" (transformers' text-generation pipeline does, for OPT). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/check.h"
#include "../../parallel/control.h"
#include "../engine/session.h"
#include "../text/completion.h"
#include "../text/sampler.h"
#include "../text/tokenizer.h"
#include "../util/log.h"
#include "../util/str.h"
#include "../util/tokens.h"
#include "commands.h"

#define MAX_FLAG_LIST 256 /* --prompt and --stop given at most this often */

typedef struct GenArgs {
    SessionOpts o;
    const char *tokens;                  /* --tokens */
    const char *prompts[MAX_FLAG_LIST];  /* --prompt, in order */
    int nprompts;
    const char *prompts_file;
    const char *stops[MAX_FLAG_LIST];
    int nstops;
    int max_new;
    SampleParams sp;
    int echo, jsonl, no_stream;
} GenArgs;

/* one text prompt: its bytes (a --prompts-file line may hold any character, NUL aside) */
typedef struct Prompt {
    char *text;
    size_t len;
    char where[64]; /* "--prompt 2" or "FILE:7", for messages */
} Prompt;

static void usage(void)
{
    printf("usage: [mpirun -np N] pp8 generate (--model DIR | --config C --tokenizer DIR) (--prompt TEXT [--prompt TEXT ...]\n"
           "                    | --prompts-file F) [sampling options] [--stop S ...] [--echo] [--jsonl] [--no-stream]\n"
           "       [mpirun -np N] pp8 generate (--model DIR | --config C) --tokens \"1,2,3;7,8\" [options]\n\n"
           "Text in, text out. The prompt is tokenized as Hugging Face's tokenizer(prompt) does (OPT: the BOS </s>\n"
           "in front; BLOOM: nothing added), and the completion is decode(new ids, skip_special_tokens=True). One\n"
           "prompt: the completion streams to stdout as it is generated, then a newline. Several prompts (one\n"
           "batch), or --jsonl: one JSON object per sequence, in order: {\"index\", \"prompt\", \"text\", \"ids\",\n"
           "\"finish_reason\", \"prompt_tokens\", \"completion_tokens\", \"text_ms_per_token\", \"decode_ms_per_token\"};\n"
           "\"text\" is the completion only, \"ids\" the generated ids with the EOS that ended the sequence, as\n"
           "transformers' generate returns them; finish_reason is \"stop\" (EOS or a stop string) or \"length\".\n"
           "A sequence stops at config.json's eos_token_id, at a stop string (cut from the text) or after --max-new.\n"
           "Unlike transformers' text-generation pipeline, pp8 does not prepend config.json's \"prefix\" (OPT's\n"
           "configs have \"</s>\"), so its OPT output is what model.generate(tokenizer(prompt)) gives.\n"
           "With --tokens (ids in: ',' within a sequence, ';' between sequences, lengths may differ) it prints one\n"
           "line of generated ids per sequence.\n\n"
           "  --prompt TEXT        a prompt (repeat for a batch); valid UTF-8\n"
           "  --prompts-file F     one prompt per line, each a JSON string or {\"prompt\": \"...\"} (so a prompt\n"
           "                       may hold newlines); blank lines are skipped\n"
           "  --tokens IDS         token ids instead of text\n"
           "  --max-new N          new tokens per sequence, at most (default 16)\n"
           "  --temperature T      0 = greedy (argmax, lowest id on ties; the default); > 0 samples\n"
           "  --top-k K            keep the K most likely (and every token tied with the K-th); 0 = off;\n"
           "                       sampling without it uses 50, as transformers' GenerationConfig does\n"
           "  --top-p P            nucleus sampling, P in [0, 1] (default 1 = off)\n"
           "  --min-p P            drop tokens below P x the top probability, P in [0, 1] (default 0 = off)\n"
           "  --repetition-penalty R  > 0 (default 1 = off); divides positive logits of the prompt's and the\n"
           "                       generated ids by R, multiplies negative ones; applies when greedy too\n"
           "  --seed N             sampling seed (default 0): sequence i's draws depend only on (seed, i, step)\n"
           "  --stop S             stop when the text contains S (repeatable); S is cut from the text\n"
           "  --echo               print the prompt before the completion (text output)\n"
           "  --jsonl              JSON Lines output, also for one prompt\n"
           "  --no-stream          print the completion at the end instead of as it comes\n"
           "Sampling applies, in transformers' order: repetition penalty, then temperature, top-k, top-p, min-p.\n\n%s",
           session_flags_help(SESSION_HELP_GENERATE));
}

static int parse(GenArgs *a, int argc, char **argv, int *help, Err *e)
{
    memset(a, 0, sizeof *a);
    session_defaults(&a->o);
    sample_params_default(&a->sp);
    a->max_new = 16;
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        double d;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            *help = 1;
            return 0;
        }
        int r = session_flag(&a->o, argc, argv, &i, e);
        if (r < 0) return -1;
        if (r) continue;
        if (!strcmp(f, "--echo")) {
            a->echo = 1;
            continue;
        }
        if (!strcmp(f, "--jsonl")) {
            a->jsonl = 1;
            continue;
        }
        if (!strcmp(f, "--no-stream")) {
            a->no_stream = 1;
            continue;
        }
        if (strcmp(f, "--tokens") && strcmp(f, "--prompt") && strcmp(f, "--prompts-file") && strcmp(f, "--stop") &&
            strcmp(f, "--max-new") && strcmp(f, "--temperature") && strcmp(f, "--top-k") && strcmp(f, "--top-p") &&
            strcmp(f, "--min-p") && strcmp(f, "--repetition-penalty") && strcmp(f, "--seed"))
            return err_set(e, "unknown option '%s' (pp8 generate --help)", f);
        if (!(v = cli_value(argc, argv, &i, e))) return -1;
        if (!strcmp(f, "--tokens")) {
            a->tokens = v;
        } else if (!strcmp(f, "--prompt")) {
            if (a->nprompts == MAX_FLAG_LIST) return err_set(e, "--prompt: at most %d; use --prompts-file", MAX_FLAG_LIST);
            a->prompts[a->nprompts++] = v;
        } else if (!strcmp(f, "--prompts-file")) {
            a->prompts_file = v;
        } else if (!strcmp(f, "--stop")) {
            if (!v[0]) return err_set(e, "--stop: the stop string is empty (it would match at once); give some text");
            if (a->nstops == MAX_FLAG_LIST) return err_set(e, "--stop: at most %d stop strings", MAX_FLAG_LIST);
            a->stops[a->nstops++] = v;
        } else if (!strcmp(f, "--max-new")) {
            if (!strcmp(v, "0")) return err_set(e, "--max-new 0: nothing to generate; give at least 1");
            if (cli_int(v, f, 1, 1 << 24, &a->max_new, e)) return -1;
        } else if (!strcmp(f, "--temperature")) {
            if (cli_double(v, f, 0, 1e6, &d, e))
                return err_set(e, "--temperature %s: expected a number >= 0 (0 = greedy)", v);
            a->sp.temperature = (float)d;
        } else if (!strcmp(f, "--top-k")) {
            if (cli_int(v, f, 0, 1 << 30, &a->sp.top_k, e))
                return err_set(e, "--top-k %s: expected an integer >= 0 (0 = off)", v);
        } else if (!strcmp(f, "--top-p")) {
            if (cli_double(v, f, 0, 1, &d, e)) return err_set(e, "--top-p %s: expected a number in [0, 1] (1 = off)", v);
            a->sp.top_p = d;
        } else if (!strcmp(f, "--min-p")) {
            if (cli_double(v, f, 0, 1, &d, e)) return err_set(e, "--min-p %s: expected a number in [0, 1] (0 = off)", v);
            a->sp.min_p = (float)d;
        } else if (!strcmp(f, "--repetition-penalty")) {
            if (cli_double(v, f, 0, 1e6, &d, e) || !(d > 0))
                return err_set(e, "--repetition-penalty %s: expected a number > 0 (1 = off)", v);
            a->sp.repetition_penalty = (float)d;
        } else {
            int n;
            if (cli_int(v, f, 0, 2147483647, &n, e)) return -1;
            a->sp.seed = (uint64_t)n;
        }
    }
    int text = a->nprompts > 0 || a->prompts_file;
    if (a->tokens && text) return err_set(e, "--tokens and --prompt/--prompts-file both given: give text or ids, not both");
    if (a->nprompts > 0 && a->prompts_file) return err_set(e, "--prompt and --prompts-file both given: give one");
    if (!a->tokens && !text) return err_set(e, "nothing to generate from: give --prompt TEXT, --prompts-file F or --tokens IDS");
    if (!a->o.config && !a->o.model) return err_set(e, "give --model DIR, or --config C (random weights)");
    return 0;
}

/* --prompts-file: one JSON string or {"prompt": string} per non-blank line */
static int read_prompts_file(const char *path, Prompt **out, int *n, Err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "--prompts-file %s: %s", path, strerror(errno));
    Prompt *p = NULL;
    int np = 0, cap = 0, lineno = 0, rc = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    while (!rc && (got = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == len) continue;
        if (memchr(line, 0, len)) {
            rc = err_set(e, "%s:%d: a NUL byte in the line; write it as \\u0000 inside the JSON string", path, lineno);
            break;
        }
        line[len] = 0;
        cJSON *j = cJSON_ParseWithLength(line, len);
        cJSON *s = cJSON_IsString(j) ? j : cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "prompt") : NULL;
        if (!j || !cJSON_IsString(s)) {
            rc = err_set(e, "%s:%d: expected a JSON string or an object {\"prompt\": \"...\"} on each line%s", path,
                         lineno, !j ? " (this line is not JSON)" : "");
        } else {
            if (np == cap) {
                cap = cap ? 2 * cap : 16;
                Prompt *q = realloc(p, sizeof *p * (size_t)cap);
                if (!q) rc = err_set(e, "out of memory reading %s", path);
                else p = q;
            }
            if (!rc) {
                p[np].text = strdup(s->valuestring);
                p[np].len = strlen(s->valuestring);
                snprintf(p[np].where, sizeof p[np].where, "%.40s:%d", path, lineno);
                if (!p[np].text) rc = err_set(e, "out of memory reading %s", path);
                else np++;
            }
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    if (!rc && np == 0) rc = err_set(e, "--prompts-file %s: no prompts in it (one JSON string per line)", path);
    *out = p;
    *n = np;
    return rc;
}

/* rank 0: the tokenizer, checked against the model's vocabulary */
static int load_tokenizer(const GenArgs *a, const Config *cfg, Tokenizer **tok, Err *e)
{
    const char *dir = session_tokenizer_dir(&a->o, e);
    if (!dir || tok_load(tok, dir, e)) return -1;
    if (tok_size(*tok) > cfg->vocab)
        return err_set(e, "%s: the tokenizer has ids up to %d but %s has vocab_size %d: the tokenizer does not belong "
                          "to this model (give the right --tokenizer)", tok_path(*tok), tok_size(*tok) - 1, cfg->path,
                       cfg->vocab);
    return 0;
}

/* rank 0: every prompt's ids (HF's tokenizer(prompt): add_special_tokens=True) */
static int encode_prompts(const Tokenizer *tok, const Prompt *p, int n, TokenBatch *tb, double *text_s, Err *e)
{
    memset(tb, 0, sizeof *tb);
    tb->len = calloc((size_t)n, sizeof(int));
    tb->ids = calloc((size_t)n, sizeof(int32_t *));
    if (!tb->len || !tb->ids) return err_set(e, "out of memory");
    tb->n = n;
    for (int q = 0; q < n; q++) {
        double t0 = wall_s();
        Err te = {{0}};
        if (tok_encode(tok, p[q].text, p[q].len, true, &tb->ids[q], &tb->len[q], &te))
            return err_set(e, "%s: %s", p[q].where, te.msg);
        text_s[q] += wall_s() - t0;
        if (tb->len[q] == 0)
            return err_set(e, "%s: the prompt is empty, and this tokenizer adds no BOS token (BLOOM), so there is "
                              "nothing to condition on: give some text", p[q].where);
        if (tb->len[q] > tb->max_len) tb->max_len = tb->len[q];
        tb->total += tb->len[q];
    }
    return 0;
}

/* rank 0 while generating: the sequences, their ids, one Completion each, the stream to stdout, the
 * time text takes */
typedef struct GenOut {
    EngineSeq *seqs;  /* (nseq) */
    int32_t *ids;     /* (nseq, max_new) generated ids */
    int max_new;
    Completion *comp; /* (nseq) NULL: ids only */
    double *text_s;   /* (nseq) seconds of tokenizing, detokenizing, stop strings and printing */
    int stream;       /* one prompt, streamed to stdout */
    int oom;
} GenOut;

static int on_token(void *ctx, EngineSeq *seq, int32_t id, const EngineLogprob *lp)
{
    (void)lp;
    GenOut *g = ctx;
    int s = (int)(seq - g->seqs);
    g->ids[(size_t)s * g->max_new + seq->ngen - 1] = id;
    if (!g->comp) return 0;
    double t0 = wall_s();
    int r = completion_push(&g->comp[s], id);
    if (r < 0) g->oom = 1;
    if (g->stream) {
        const char *p;
        size_t n = completion_ready(&g->comp[s], &p);
        if (n) {
            fwrite(p, 1, n, stdout);
            fflush(stdout);
        }
    }
    g->text_s[s] += wall_s() - t0;
    return r != 0;
}

/* the largest number of prompt rows any micro-batch holds in the prefill */
static int max_group_rows(const TokenBatch *tb, int M, int *max_seqs)
{
    int bounds[tb->n + 1], best = 0;
    pipeline_split(bounds, tb->n, M);
    *max_seqs = 0;
    for (int i = 0; i < M; i++) {
        int rows = 0;
        for (int q = bounds[i]; q < bounds[i + 1]; q++) rows += tb->len[q];
        if (rows > best) best = rows;
        if (bounds[i + 1] - bounds[i] > *max_seqs) *max_seqs = bounds[i + 1] - bounds[i];
    }
    return best;
}

/* every sequence must fit --max-seq-len with its --max-new tokens */
static int check_lengths(const GenArgs *a, const TokenBatch *tb, const Prompt *p, const Config *cfg, Err *e)
{
    int limit;
    if (session_max_seq_len(&a->o, cfg, &limit, e)) return -1;
    for (int q = 0; q < tb->n; q++)
        if (tb->len[q] + a->max_new > limit) {
            char where[64];
            if (p) snprintf(where, sizeof where, "%s", p[q].where);
            else snprintf(where, sizeof where, "--tokens sequence %d", q + 1);
            return err_set(e, "%s: %d prompt tokens + --max-new %d = %d positions, but --max-seq-len is %d%s: shorten "
                              "the prompt or --max-new%s", where, tb->len[q], a->max_new, tb->len[q] + a->max_new,
                           limit, a->o.max_seq_len ? "" : cfg->arch == ARCH_OPT ? " (max_position_embeddings)" : "",
                           cfg->arch == ARCH_OPT ? "" : ", or raise --max-seq-len");
        }
    return 0;
}

/* rank 0: one JSON object per sequence */
static void print_jsonl(const TokenBatch *tb, const Prompt *p, GenOut *g, double decode_ms)
{
    Str s = {0};
    for (int q = 0; q < tb->n; q++) {
        int n = g->seqs[q].ngen;
        double t0 = wall_s();
        s.len = 0;
        str_printf(&s, "{\"index\": %d, \"prompt\": ", q);
        if (p) str_json(&s, p[q].text, p[q].len);
        else str_puts(&s, "null");
        str_puts(&s, ", \"text\": ");
        if (g->comp) str_json(&s, g->comp[q].text ? g->comp[q].text : "", g->comp[q].len);
        else str_puts(&s, "null");
        str_puts(&s, ", \"ids\": [");
        for (int t = 0; t < n; t++) str_printf(&s, t ? ", %d" : "%d", g->ids[(size_t)q * g->max_new + t]);
        /* the line's own formatting and writing count as text too (an estimate taken before the write) */
        g->text_s[q] += wall_s() - t0;
        str_printf(&s, "], \"finish_reason\": \"%s\", \"prompt_tokens\": %d, \"completion_tokens\": %d, "
                       "\"text_ms_per_token\": %.6f, \"decode_ms_per_token\": %.6f}\n",
                   finish_reason(g->seqs[q].finish), tb->len[q], n, n ? 1e3 * g->text_s[q] / n : 0.0, decode_ms);
        double tw = wall_s();
        fwrite(s.p, 1, s.len, stdout);
        g->text_s[q] += wall_s() - tw;
    }
    str_free(&s);
}

int cmd_generate(int argc, char **argv, Err *e)
{
    GenArgs a;
    int help = 0;
    if (parse(&a, argc, argv, &help, e)) return -1;
    if (help) {
        if (ctl_rank() == 0) usage();
        return 0;
    }
    const int rank = ctl_rank();
    const int text = !a.tokens;
    Config cfg;
    TokenBatch tb = {0};
    Tokenizer *tok = NULL;
    Prompt *prompts = NULL;
    int nprompts = 0, rc = 0;
    double *text_s = NULL;

    /* the prompts become ids on rank 0 (which owns the tokenizer), then every rank gets them */
    if (!text) {
        if (session_read_tokens(&a.o, a.tokens, 0, &cfg, &tb, e)) return -1;
    } else {
        rc = config_load(&cfg, session_config_path(&a.o), e);
        if (!rc && rank == 0) {
            rc = load_tokenizer(&a, &cfg, &tok, e);
            if (!rc && a.prompts_file) {
                rc = read_prompts_file(a.prompts_file, &prompts, &nprompts, e);
            } else if (!rc) {
                nprompts = a.nprompts;
                prompts = calloc((size_t)nprompts, sizeof *prompts);
                if (!prompts) rc = err_set(e, "out of memory");
                for (int q = 0; !rc && q < nprompts; q++) {
                    prompts[q].text = strdup(a.prompts[q]);
                    prompts[q].len = strlen(a.prompts[q]);
                    snprintf(prompts[q].where, sizeof prompts[q].where, "--prompt %d", q + 1);
                    if (!prompts[q].text) rc = err_set(e, "out of memory");
                }
            }
            if (!rc && !(text_s = calloc((size_t)nprompts, sizeof(double)))) rc = err_set(e, "out of memory");
            if (!rc) rc = encode_prompts(tok, prompts, nprompts, &tb, text_s, e);
        }
        if (!session_agree(rc, e)) rc = session_bcast_tokens(&tb, e);
        else rc = -1;
    }
    if (!rc) rc = session_agree(rank == 0 ? check_lengths(&a, &tb, prompts, &cfg, e) : 0, e);
    if (!rc) {
        if (!text_s && !(text_s = calloc((size_t)tb.n, sizeof(double)))) rc = err_set(e, "out of memory");
        rc = session_agree(rc, e);
    }

    Session s;
    int opened = 0;
    double t_open = wall_s();
    if (!rc) {
        int max_seqs, rows = max_group_rows(&tb, 1, &max_seqs);
        rc = session_open(&s, &a.o, rows, tb.n, tb.max_len + a.max_new, max_seqs, e);
        opened = 1;
    }
    int M = a.o.micro_batches > 0 ? (a.o.micro_batches < tb.n ? a.o.micro_batches : tb.n)
            : a.o.sched == SCHED_NAIVE || rc ? 1
                                             : session_default_micro_batches(&s, tb.n);
    Engine en;
    GenOut g = {0};
    if (!rc) {
        rc = engine_init(&en, &s.m, &s.rs, s.tr, a.o.sched, M, e);
        g.max_new = a.max_new;
        g.seqs = calloc((size_t)tb.n, sizeof *g.seqs);
        g.ids = calloc((size_t)tb.n * (size_t)a.max_new, sizeof(int32_t));
        if (!rc && (!g.seqs || !g.ids)) rc = err_set(e, "out of memory");
        if (!rc && rank == 0 && text && !(g.comp = calloc((size_t)tb.n, sizeof *g.comp))) rc = err_set(e, "out of memory");
        if (session_agree(rc, e)) rc = -1;
        if (!rc) {
            en.eos_id = cfg.eos_id;
            g.text_s = text_s;
            g.stream = text && tb.n == 1 && !a.jsonl && !a.no_stream;
            /* sequence q is stream q of --seed and belongs to micro-batch i when bounds[i] <= q < bounds[i+1] */
            int bounds[tb.n + 1];
            pipeline_split(bounds, tb.n, M);
            for (int i = 0; i < M; i++)
                for (int q = bounds[i]; q < bounds[i + 1]; q++) {
                    g.seqs[q] = (EngineSeq){.prompt = tb.ids[q], .nprompt = tb.len[q], .max_new = a.max_new, .sp = a.sp,
                                            .stream = (uint64_t)q, .logprobs = -1, .logits_from = -1, .group = i};
                    if (rank == 0) engine_admit(&en, &g.seqs[q]);
                }
            for (int q = 0; g.comp && q < tb.n; q++) completion_init(&g.comp[q], tok, a.stops, a.nstops);
            EngineHooks hooks = {.ctx = &g, .on_token = on_token};
            int plain = rank == 0 && text && !a.jsonl && tb.n == 1;
            if (plain && a.echo) {
                fwrite(prompts[0].text, 1, prompts[0].len, stdout);
                fflush(stdout);
            }
            /* progress, so a long load or prefill is not silence (and tests can tell the phases apart) */
            log_info("loaded in %.1f s; prefill: %d sequence(s), %d prompt tokens", wall_s() - t_open, tb.n, tb.total);
            double t0 = wall_s();
            engine_run(&en, &hooks, 1);
            double t1 = wall_s();
            log_info("prefill done; decoding up to %d new tokens per sequence", a.max_new);
            en.busy_s = 0;
            engine_run(&en, &hooks, INT_MAX);
            double t2 = wall_s();
            if (rank == 0) {
                int decoded = 0, gen = 0;
                for (int q = 0; q < tb.n; q++) decoded += g.seqs[q].ngen - 1, gen += g.seqs[q].ngen;
                double decode_ms = decoded > 0 ? 1e3 * (t2 - t1) / decoded : 0;
                for (int q = 0; g.comp && q < tb.n; q++) {
                    double tf = wall_s();
                    if (completion_finish(&g.comp[q]) < 0) g.oom = 1;
                    text_s[q] += wall_s() - tf;
                }
                cli_results_begin(); /* a SIGTERM now waits: never half a JSON line or line of ids */
                if (g.oom) {
                    rc = err_set(e, "out of memory holding the generated text");
                } else if (plain) {
                    double tp = wall_s();
                    const char *p;
                    size_t n = completion_ready(&g.comp[0], &p);
                    if (n) fwrite(p, 1, n, stdout);
                    fputc('\n', stdout);
                    text_s[0] += wall_s() - tp;
                } else if (text || a.jsonl) {
                    print_jsonl(&tb, prompts, &g, decode_ms);
                } else {
                    for (int q = 0; q < tb.n; q++) {
                        for (int t = 0; t < g.seqs[q].ngen; t++) printf(t ? ",%d" : "%d", g.ids[(size_t)q * a.max_new + t]);
                        printf("\n");
                    }
                }
                fflush(stdout);
                cli_results_end();
                /* the results are out; a sequence cut short by inf/NaN still makes the run fail */
                int nerr = 0;
                for (int q = 0; q < tb.n; q++) nerr += g.seqs[q].finish == FINISH_ERROR;
                if (nerr && !rc)
                    rc = err_set(e, "%d of %d sequence(s) ended with an error: non-finite logits (the warnings above "
                                    "name the rank, its layers and the position); their output stops there; --dtype "
                                    "bf16 has fp32's range", nerr, tb.n);
                double ts = 0;
                for (int q = 0; q < tb.n; q++) ts += text_s[q];
                if (text)
                    log_info("%d sequence(s): %d prompt + %d generated tokens; prefill %.3f s, decode %.3f ms/token; "
                             "text %.4f ms/token (%.2f%% of a decode step)", tb.n, tb.total, gen, t1 - t0, decode_ms,
                             gen ? 1e3 * ts / gen : 0.0, decode_ms > 0 && gen ? 100.0 * (1e3 * ts / gen) / decode_ms : 0);
            }
            rc = session_agree(rc, e);
        }
        for (int q = 0; g.comp && q < tb.n; q++) completion_free(&g.comp[q]);
        free(g.comp);
        free(g.seqs);
        free(g.ids);
        engine_free(&en);
    }
    if (opened) session_close(&s);
    free(text_s);
    for (int q = 0; q < nprompts; q++) free(prompts[q].text);
    free(prompts);
    tok_free(tok);
    tokens_free(&tb);
    return rc;
}
