/* pp8 generate: greedy generation for a batch of token-id sequences of any lengths; prints one line of
 * generated ids per sequence (rank 0). Sampling, EOS and text prompts come later (DESIGN.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../parallel/control.h"
#include "commands.h"
#include "../engine/session.h"
#include "../util/tokens.h"

static void usage(void)
{
    printf("usage: [mpirun -np N] pp8 generate (--config C | --model DIR) --tokens \"1,2,3;7,8\" [--max-new N] "
           "[options]\n\n"
           "Greedy generation. ';' separates the sequences of one batch (lengths may differ). Prints, for each\n"
           "sequence in order, one line with the N generated token ids (the prompt is not repeated).\n\n"
           "  --tokens IDS         token ids, ',' within a sequence, ';' between sequences\n"
           "  --max-new N          new tokens per sequence (default 16)\n%s",
           session_flags_help(SESSION_HELP_GENERATE));
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

int cmd_generate(int argc, char **argv, Err *e)
{
    SessionOpts o;
    session_defaults(&o);
    const char *toks = NULL;
    int max_new = 16;
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
        } else if (!strcmp(argv[i], "--max-new")) {
            const char *v = cli_value(argc, argv, &i, e);
            if (!v || cli_int(v, "--max-new", 1, 1 << 20, &max_new, e)) return -1;
        } else {
            return err_set(e, "unknown option '%s' (pp8 generate --help)", argv[i]);
        }
    }
    if (!toks) return err_set(e, "--tokens is required, e.g. --tokens \"1,2,3;7,8\"");
    if (!o.config && !o.model) return err_set(e, "give --config C (random weights) or --model DIR");

    Config cfg;
    TokenBatch tb;
    if (session_read_tokens(&o, toks, 0, &cfg, &tb, e)) return -1;
    /* the RunState is sized for the largest micro-batch any M up to the stage count could make */
    int size = ctl_size();
    int Mmax = o.micro_batches > 0 ? o.micro_batches : 1;
    if (Mmax > tb.n) Mmax = tb.n;
    int max_seqs, rows = max_group_rows(&tb, 1, &max_seqs);
    (void)size;
    Session s;
    int rc = session_open(&s, &o, rows, tb.n, tb.max_len + max_new, max_seqs, e);
    int M = o.micro_batches > 0 ? Mmax
            : o.sched == SCHED_NAIVE || rc ? 1
                                           : session_default_micro_batches(&s, tb.n);
    Engine en;
    if (!rc) {
        rc = engine_init(&en, &s.m, &s.rs, s.tr, o.sched, tb.n, tb.len, (const int32_t *const *)tb.ids, M, max_new, e);
        if (session_agree(rc, e)) rc = -1;
    }
    if (!rc) {
        engine_run(&en, 0, max_new);
        if (s.rank == 0)
            for (int q = 0; q < tb.n; q++) {
                for (int t = 0; t < max_new; t++) printf(t ? ",%d" : "%d", en.out[(size_t)q * max_new + t]);
                printf("\n");
            }
        engine_free(&en);
    }
    session_close(&s);
    tokens_free(&tb);
    return rc;
}
