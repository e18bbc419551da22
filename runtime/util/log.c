/* See log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "../../kernels/check.h"

static int g_rank = 0, g_size = 1;

void log_init(int rank, int size, const char *host)
{
    char prefix[96];
    g_rank = rank;
    g_size = size;
    snprintf(prefix, sizeof prefix, "r%d/%d %s", rank, size, host);
    pp8_set_log_prefix(prefix);
}

int log_rank(void) { return g_rank; }
int log_size(void) { return g_size; }

void log_info(const char *fmt, ...)
{
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[pp8] ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[pp8 %s] ", pp8_log_prefix());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
