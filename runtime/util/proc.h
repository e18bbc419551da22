/* What the kernel says about this process's memory: the peak resident set (VmHWM, every page the
 * process has touched at once: its heap, its arenas and the file pages of a memory-mapped checkpoint),
 * which pp8 bench reports beside the plan, and a reset of that peak, so each of bench's dtypes is
 * measured from its own load. */
#ifndef PP8_PROC_H
#define PP8_PROC_H

#include <stddef.h>
#include <stdint.h>

/* VmHWM of /proc/self/status in bytes; 0 where there is none (not Linux) */
uint64_t proc_peak_rss_bytes(void);
/* VmRSS of /proc/self/status in bytes; 0 where there is none */
uint64_t proc_rss_bytes(void);
/* the address-space limit (ulimit -v, RLIMIT_AS) in bytes; 0 when unlimited */
uint64_t proc_as_limit_bytes(void);
/* for an allocation that failed: "; this process's address space is limited to X GB (ulimit -v): raise
 * it" when a limit is set, else "" (into buf, which it returns) */
const char *proc_limit_hint(char *buf, size_t len);
/* sets the peak to the current resident set (/proc/self/clear_refs, "5"); 0, or -1 where refused */
int proc_reset_peak_rss(void);

#endif
