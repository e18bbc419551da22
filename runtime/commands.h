/* The pp8 subcommands (DESIGN.md, "Command line" is the single source for names and flags).
 * Each returns 0, or -1 with e set to one line naming the file/tensor/field/rank and the fix. A command
 * returns on every rank (after agreeing on failures where it uses collectives); main agrees once more,
 * rank 0 prints the error, and every rank finalizes MPI and exits non-zero. */
#ifndef PP8_COMMANDS_H
#define PP8_COMMANDS_H

#include "err.h"

int cmd_plan(int argc, char **argv, Err *e);
int cmd_bench(int argc, char **argv, Err *e);
int cmd_bench_linear(int argc, char **argv, Err *e);
int cmd_logits(int argc, char **argv, Err *e);
int cmd_generate(int argc, char **argv, Err *e);
int cmd_quantize(int argc, char **argv, Err *e);

/* shared flag parsing: argv[i] is `flag`; returns its value (argv[i+1]) or sets e when missing */
const char *cli_value(int argc, char **argv, int *i, Err *e);
int cli_int(const char *s, const char *flag, int lo, int hi, int *out, Err *e);
int cli_double(const char *s, const char *flag, double lo, double hi, double *out, Err *e);
/* "1,8,32" -> list; returns count or -1 */
int cli_int_list(const char *s, const char *flag, int lo, int hi, int *out, int max, Err *e);

/* Prints root as JSON into path (with a final newline) and deletes root; errors name the flag and file. */
struct cJSON;
int cli_write_json(const char *path, struct cJSON *root, Err *e);

#endif
