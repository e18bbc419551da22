/* The pp8 subcommands (DESIGN.md, "Command line" is the single source for names and flags).
 * Each returns 0, or -1 with e set to one line naming the file/tensor/field/rank and the fix. A command
 * returns on every rank (after agreeing on failures where it uses collectives); main agrees once more,
 * rank 0 prints the error, and every rank finalizes MPI and exits non-zero. */
#ifndef PP8_COMMANDS_H
#define PP8_COMMANDS_H

#include "../util/args.h"
#include "../util/err.h"

int cmd_plan(int argc, char **argv, Err *e);
int cmd_bench(int argc, char **argv, Err *e);
int cmd_bench_linear(int argc, char **argv, Err *e);
int cmd_logits(int argc, char **argv, Err *e);
int cmd_generate(int argc, char **argv, Err *e);
int cmd_perplexity(int argc, char **argv, Err *e);
int cmd_quantize(int argc, char **argv, Err *e);
int cmd_serve(int argc, char **argv, Err *e);
int cmd_tokenize(int argc, char **argv, Err *e);
int cmd_detokenize(int argc, char **argv, Err *e);

/* Around rank 0's writing of a command's results to stdout: SIGTERM / SIGINT (main.c's handler) wait
 * for the end (up to 1 s), so a stopped job never leaves half a result line. */
void cli_results_begin(void);
void cli_results_end(void);

#endif
