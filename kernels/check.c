/* The one reporter behind every *_CHECK macro. It only prints and calls the hook; it knows nothing of
 * MPI (kernels/ may not), so runtime installs MPI_Abort as the hook. */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_prefix[64] = "r0/1 local";
static void (*g_abort)(int) = NULL;

void pp8_set_log_prefix(const char *prefix)
{
    snprintf(g_prefix, sizeof g_prefix, "%s", prefix);
}

const char *pp8_log_prefix(void) { return g_prefix; }

void pp8_set_abort_hook(void (*hook)(int code)) { g_abort = hook; }

void (*pp8_abort_hook(void))(int code) { return g_abort; }

void pp8_fatal(const char *file, int line, const char *func, const char *msg, const char *stmt)
{
    const char *base = strrchr(file, '/');
    fprintf(stderr, "[pp8 %s] error %s:%d in %s: %s (%s)\n", g_prefix, base ? base + 1 : file, line, func, msg,
            stmt);
    fflush(stderr);
    if (g_abort) g_abort(1);
    abort();
}
