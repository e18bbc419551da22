/* Errors from user input (CLI, config, checkpoint, plan): returned, not thrown, so tests can assert
 * that bad input is refused and the ranks can agree before exiting. One line, naming the thing. */
#ifndef PP8_ERR_H
#define PP8_ERR_H

#include <stdarg.h>

typedef struct {
    char msg[768]; /* one line: "<file or tensor or field>: what is wrong; the fix" */
} Err;

/* Formats into e (when non-NULL) and returns -1, so callers can `return err_set(e, ...)`. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int err_vset(Err *e, const char *fmt, va_list ap);

#endif
