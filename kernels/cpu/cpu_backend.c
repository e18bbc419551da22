/* PLACEHOLDER: being written. */
#include <stdio.h>
#include "../backend.h"
#include "cpu_linear.h"
Backend *backend_cpu_create(const BackendOptions *o, char *err, size_t errlen)
{
    (void)o;
    snprintf(err, errlen, "not yet");
    return NULL;
}
const char *cpu_isa_string(void) { return "?"; }
