/* Transport lifetime, and the NCCL constructor's answer when pp8 was built without NCCL. */
#include <stdio.h>
#include <stdlib.h>

#include "transport.h"

void transport_destroy(Transport *t)
{
    if (!t) return;
    if (t->destroy) t->destroy(t->ctx);
    free(t);
}

#ifndef PP8_HAVE_NCCL
Transport *transport_nccl_create(void *stream, char *err, size_t errlen)
{
    (void)stream;
    snprintf(err, errlen, "pp8 was built without NCCL (configure on a machine with CUDA + NCCL)");
    return NULL;
}
#endif
