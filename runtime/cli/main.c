/* pp8: one binary, subcommands (DESIGN.md "Command line"). Sets up MPI (singleton when not under
 * mpirun), the rank-prefixed logs and the abort hook, runs the command, and makes every rank agree on
 * the outcome: rank 0 prints one error line, all ranks finalize and exit non-zero together. */
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
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

/* SIGTERM / SIGINT before a command finishes. mpirun sends SIGTERM to every rank ~1 s after it is itself
 * signalled and also after a rank has died (it names that rank itself), then SIGKILL a second later; a
 * rank killed silently left the user a bare non-zero exit. Rank 0 now says so in one line; every rank
 * then dies of the signal as it would have, so mpirun and shells see the usual status (143 / 130).
 * Only async-signal-safe calls here; the lines are formatted beforehand. Commands with their own
 * handling (serve's drain) install theirs over these. */
static char g_stop_msg[2][512];
static size_t g_stop_len[2];
static atomic_flag g_stopping = ATOMIC_FLAG_INIT;
static volatile sig_atomic_t g_writing; /* cli_results_begin .. end */
static sigset_t g_writing_mask;

static void on_stop_signal(int sig)
{
    /* mpirun signals more than once, and another thread may take the next one: the first does the
     * work, the others wait for the process to end (a default action there would cut the line short) */
    if (atomic_flag_test_and_set(&g_stopping))
        for (;;) pause();
    for (int t = 0; t < 100 && g_writing; t++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    int i = sig == SIGINT, left = 0;
    if (g_stop_len[i]) {
        ssize_t w = write(STDERR_FILENO, g_stop_msg[i], g_stop_len[i]);
        (void)w;
    }
    /* mpirun kills every rank the moment one dies and drops output it has not read yet (the line was lost
     * in about one run of three): rank 0 waits, up to 0.5 s, until its stderr pipe is read; the others
     * give it those 0.5 s before they die */
    for (int t = 0; t < 50; t++) {
        if (g_stop_len[i] && (ioctl(STDERR_FILENO, FIONREAD, &left) != 0 || left == 0)) break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    signal(sig, SIG_DFL);
    raise(sig); /* delivered, fatally, once this returns */
}

/* the writing thread blocks the signals meanwhile, so the handler runs in another one (which waits) or
 * after the end */
void cli_results_begin(void)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, &g_writing_mask);
    g_writing = 1;
}

void cli_results_end(void)
{
    fflush(stdout);
    g_writing = 0;
    pthread_sigmask(SIG_SETMASK, &g_writing_mask, NULL);
}

static void install_stop_handlers(const char *cmd, int rank, int size)
{
    static const char *names[2] = {"SIGTERM", "SIGINT"};
    for (int i = 0; i < 2; i++) {
        const char *why = size > 1 ? " (mpirun sends it to every rank when the job is signalled or a rank has died, "
                                     "and names that rank)"
                                   : "";
        int n = rank != 0 ? 0
                          : snprintf(g_stop_msg[i], sizeof g_stop_msg[i],
                                     "[pp8 %s] %s: stopped by %s before finishing, results incomplete%s\n",
                                     pp8_log_prefix(), cmd, names[i], why);
        g_stop_len[i] = n > 0 && (size_t)n < sizeof g_stop_msg[i] ? (size_t)n : 0;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(i ? SIGINT : SIGTERM, &sa, NULL);
    }
}

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

    /* pp8 COMMAND --help: the command's usage without starting MPI (its runtime's threads and components
     * are not needed to print text), once under mpirun or srun (the launcher's rank 0 prints it) */
    if (argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
        const char *r = getenv("OMPI_COMM_WORLD_RANK");
        if (!r) r = getenv("PMI_RANK");
        if (!r) r = getenv("SLURM_PROCID");
        if (r && atoi(r) != 0) return 0;
        Err e = {{0}};
        int rc = COMMANDS[ci].run(argc - 1, argv + 1, &e);
        if (rc) fprintf(stderr, "pp8 %s: error: %s\n", argv[1], e.msg[0] ? e.msg : "--help failed");
        fflush(stdout);
        return rc ? 1 : 0;
    }

    /* a write past the file size limit (ulimit -f) then fails with EFBIG and is reported, naming the file,
     * instead of SIGXFSZ killing pp8 with a half-written file (file.h's writers clean it up) */
    signal(SIGXFSZ, SIG_IGN);
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char host[64] = "host";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    log_init(rank, size, host);
    pp8_set_abort_hook(abort_hook);
    install_stop_handlers(argv[1], rank, size);

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
