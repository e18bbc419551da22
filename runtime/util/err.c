/* One-line user-facing errors; see err.h. */
#include "err.h"

#include <stdio.h>

/* The message is one line whatever it quotes from a file or a request: control characters (a newline
 * in a tensor name, a tab in a tokenizer string) become '?'. */
int err_vset(Err *e, const char *fmt, va_list ap)
{
    if (!e) return -1;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    for (char *p = e->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return -1;
}

int err_set(Err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, fmt, ap);
    va_end(ap);
    return -1;
}
