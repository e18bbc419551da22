/* One-line user-facing errors; see err.h. */
#include "err.h"

#include <stdio.h>

int err_vset(Err *e, const char *fmt, va_list ap)
{
    if (e) vsnprintf(e->msg, sizeof e->msg, fmt, ap);
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
