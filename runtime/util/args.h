/* The small argv and JSON-output helpers that the commands and the session flags share. In util/ so
 * that engine/ (session flags) never includes cli/. */
#ifndef PP8_ARGS_H
#define PP8_ARGS_H

#include "err.h"

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
