/* PLACEHOLDER: the CUDA backend is being written. */
#include <stdio.h>
#include "../backend.h"
extern "C" Backend *backend_cuda_create(const BackendOptions *o, char *err, size_t errlen)
{
    (void)o;
    snprintf(err, errlen, "cuda backend not implemented yet");
    return NULL;
}
