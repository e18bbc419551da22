/* pp8: one binary, subcommands (DESIGN.md "Command line"). Sets up MPI (singleton when not under
 * mpirun), the rank-prefixed logs and the abort hook, runs the command, and makes every rank agree on
 * the outcome: rank 0 prints one error line, all ranks finalize and exit non-zero together. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../kernels/check.h"
#include "../../parallel/control.h"
#include "commands.h"
#include "../util/log.h"
#include "version.h"

static const struct {
    const char *name;
    int (*run)(int, char **, Err *);
    const char *what;
} COMMANDS[] = {
    {"plan", cmd_plan, "layer split, memory per rank and minimum rank/GPU count (int8 vs fp16/bf16)"},
    {"bench", cmd_bench, "pipeline throughput benchmark: prefill and decode at several batch sizes"},
    {"bench-linear", cmd_bench_linear, "one linear layer: int8 vs bf16 vs fp16, GB/s and GOP/s"},
    {"logits", cmd_logits, "forward a token sequence and write float32 logits [T, vocab] as .npy"},
    {"generate", cmd_generate, "text in, text out (or ids): sampling, stop strings, streaming, JSON Lines"},
    {"perplexity", cmd_perplexity, "sliding-window perplexity of a text (Hugging Face's method): int8 vs 16-bit quality"},
    {"serve", cmd_serve, "OpenAI-compatible completions server with continuous batching through the pipeline"},
    {"tokenize", cmd_tokenize, "text to token ids with a tokenizer directory, as Hugging Face's tokenizer(text)"},
    {"detokenize", cmd_detokenize, "token ids to text, as Hugging Face's tokenizer.decode(ids)"},
    {"quantize", cmd_quantize, "write an int8 (LLM.int8()) checkpoint in transformers' 8-bit layout"},
};
#define NCOMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f)
{
    fprintf(f, "pp8 %s: pipeline-parallel LLM.int8() inference (BLOOM, OPT)\n\n"
               "usage: [mpirun -np N] pp8 COMMAND [options]     pp8 COMMAND --help for its options\n\n",
            PP8_VERSION);
    for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-13s %s\n", COMMANDS[i].name, COMMANDS[i].what);
    fprintf(f, "  --version     build: backends, ISA paths, MPI, CUDA, NCCL\n");
}

static void abort_hook(int code) { ctl_abort(code); }

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        version_print(stdout);
        return 0;
    }
    int ci = -1;
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) ci = i;
    if (ci < 0) {
        fprintf(stderr, "pp8: unknown command '%s'; commands:", argv[1]);
        for (int i = 0; i < NCOMMANDS; i++) fprintf(stderr, " %s", COMMANDS[i].name);
        fprintf(stderr, " (pp8 --help)\n");
        return 2;
    }

    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char host[64] = "host";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    log_init(rank, size, host);
    pp8_set_abort_hook(abort_hook);

    Err e = {{0}};
    int rc = COMMANDS[ci].run(argc - 1, argv + 1, &e);
    if (rc != 0 && !e.msg[0]) snprintf(e.msg, sizeof e.msg, "pp8 %s failed", argv[1]);
    int failed = ctl_agree(rc != 0, e.msg, sizeof e.msg);
    if (failed && rank == 0) {
        fprintf(stderr, "pp8 %s: error: %s\n", argv[1], e.msg);
        fflush(stderr);
    }
    fflush(stdout);
    MPI_Finalize();
    return failed ? 1 : 0;
}
