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

/* One line in one write: stderr is unbuffered, and under mpirun every rank's stderr is forwarded in
 * the chunks it was written in, so a line written in pieces can be split by another rank's line. */
static void emit_line(const char *head, const char *fmt, va_list ap)
{
    char line[4096];
    int n = snprintf(line, sizeof line, "%s", head);
    if (n < 0 || n >= (int)sizeof line - 1) n = 0;
    const size_t room = sizeof line - (size_t)n - 1; /* one byte kept for the newline */
    int m = vsnprintf(line + n, room, fmt, ap);      /* a longer message is cut to room - 1 bytes */
    if (m > 0) n += (size_t)m < room ? m : (int)room - 1;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}

void log_info(const char *fmt, ...)
{
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    emit_line("[pp8] ", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    char head[128];
    snprintf(head, sizeof head, "[pp8 %s] ", pp8_log_prefix());
    va_list ap;
    va_start(ap, fmt);
    emit_line(head, fmt, ap);
    va_end(ap);
}

double wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
