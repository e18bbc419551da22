/* What this build contains, for `pp8 --version` and benchmark provenance. */
#ifndef PP8_VERSION_H
#define PP8_VERSION_H

#include <stdio.h>

void version_print(FILE *f);
const char *version_string(void); /* "0.1.0" */
const char *version_git(void);
/* "Intel(R) Xeon(R) ..." from /proc/cpuinfo */
const char *host_cpu_model(void);

#endif
