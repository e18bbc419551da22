/* /proc/self/status and /proc/self/clear_refs (proc(5)). */
#include "proc.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static uint64_t status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t n = strlen(key);
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') {
            if (sscanf(line + n + 1, "%llu", &kb) != 1) kb = 0;
            break;
        }
    fclose(f);
    return (uint64_t)kb * 1024;
}

uint64_t proc_peak_rss_bytes(void) { return status_kb("VmHWM"); }

uint64_t proc_rss_bytes(void) { return status_kb("VmRSS"); }

int proc_reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

uint64_t proc_as_limit_bytes(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return 0;
    return (uint64_t)r.rlim_cur;
}

const char *proc_limit_hint(char *buf, size_t len)
{
    uint64_t lim = proc_as_limit_bytes();
    if (!lim) snprintf(buf, len, "%s", "");
    else
        snprintf(buf, len, "; this process's address space is limited to %.2f GB (ulimit -v %llu): raise the limit",
                 (double)lim / 1e9, (unsigned long long)(lim / 1024));
    return buf;
}
