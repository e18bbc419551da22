/* Logging: stdout carries results only; logs go to stderr with a rank prefix, and only rank 0 prints
 * banners and progress (STYLE.md). */
#ifndef PP8_LOG_H
#define PP8_LOG_H

void log_init(int rank, int size, const char *host);
int log_rank(void);
int log_size(void);
/* rank 0 only */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* any rank, prefixed with the rank */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* seconds on CLOCK_MONOTONIC, for timings and progress */
double wall_s(void);

#endif
