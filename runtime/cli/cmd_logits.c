/* pp8 logits: forward one token sequence through the pipeline and write float32 logits [T, vocab] as
 * .npy on the last rank. With --micro-batches M the prompt is split into M chunks that flow through
 * the stages one after another (chunked prefill). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../parallel/control.h"
#include "commands.h"
#include "../util/npy.h"
#include "../engine/session.h"
#include "../util/tokens.h"

static void usage(void)
{
    printf("usage: [mpirun -np N] pp8 logits (--config C | --model DIR) --tokens 1,2,3 --out FILE.npy [options]\n\n"
           "Writes float32 logits [T, vocab] of every position of one token sequence (numpy .npy).\n\n"
           "  --tokens IDS         comma-separated token ids\n"
           "  --out FILE.npy       output file (written by the last rank)\n%s",
           session_flags_help(SESSION_HELP_LOGITS));
}

/* last rank: each position's logits into the [T, V] array */
static void keep_row(void *ctx, int t, const float *row, int V)
{
    memcpy((float *)ctx + (size_t)t * V, row, sizeof(float) * (size_t)V);
}

int cmd_logits(int argc, char **argv, Err *e)
{
    SessionOpts o;
    session_defaults(&o);
    const char *toks = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (ctl_rank() == 0) usage();
            return 0;
        }
        int r = session_flag(&o, argc, argv, &i, e);
        if (r < 0) return -1;
        if (r) continue;
        if (!strcmp(argv[i], "--tokens")) {
            if (!(toks = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(argv[i], "--out")) {
            if (!(out = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(argv[i], "--seed")) {
            return err_set(e, "--seed is pp8 generate's sampling seed; the seed of --config's random weights is "
                              "--weights-seed");
        } else {
            return err_set(e, "unknown option '%s' (pp8 logits --help)", argv[i]);
        }
    }
    if (!toks) return err_set(e, "--tokens is required, e.g. --tokens 1,2,3");
    if (!out) return err_set(e, "--out FILE.npy is required");
    if (!o.config && !o.model) return err_set(e, "give --config C (random weights) or --model DIR");

    Config cfg;
    TokenBatch tb;
    if (session_read_tokens(&o, toks, 1, &cfg, &tb, e)) return -1;
    int T = tb.len[0], M = o.micro_batches > 0 ? o.micro_batches : 1;
    if (M > T) M = T;
    int chunk = (T + M - 1) / M;
    Session s;
    int rc = session_open(&s, &o, chunk, 1, T, chunk, e);
    Engine en;
    float *logits = NULL;
    if (!rc) {
        /* one sequence read in chunks of `chunk` tokens (the budget), every position's logits kept */
        rc = engine_init(&en, &s.m, &s.rs, s.tr, o.sched, 1, e);
        if (!rc && s.m.last && !(logits = malloc(sizeof(float) * (size_t)T * (size_t)cfg.vocab)))
            rc = err_set(e, "rank %d: out of memory for %d x %d logits", s.rank, T, cfg.vocab);
        en.on_logits = keep_row;
        en.logits_ctx = logits;
        if (session_agree(rc, e)) rc = -1;
        if (!rc) {
            EngineSeq q = {.prompt = tb.ids[0], .nprompt = T, .max_new = 0, .logprobs = -1, .logits_from = 0, .group = 0};
            sample_params_default(&q.sp);
            if (s.rank == 0) engine_admit(&en, &q);
            engine_run(&en, NULL, INT_MAX);
            int wrc = s.m.last ? npy_write_f32(out, logits, T, cfg.vocab, e) : 0;
            rc = session_agree(wrc, e);
        }
        engine_free(&en);
    }
    free(logits);
    session_close(&s);
    tokens_free(&tb);
    return rc;
}
