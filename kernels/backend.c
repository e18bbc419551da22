/* Backend lifetime, and the CUDA constructor's answer when pp8 was built without CUDA. */
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"

void backend_destroy(Backend *b)
{
    if (!b) return;
    if (b->destroy) b->destroy(b->ctx);
    free(b);
}

#ifndef PP8_HAVE_CUDA
Backend *backend_cuda_create(const BackendOptions *o, char *err, size_t errlen)
{
    (void)o;
    snprintf(err, errlen, "--backend cuda: this pp8 was built without CUDA (rebuild on a machine with nvcc, "
                          "or use --backend cpu)");
    return NULL;
}
#endif
