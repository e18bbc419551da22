/* Element types shared by every room (checkpoints, kernels, planner).
 * Only names and sizes live here; conversions are in numerics.h. */
#ifndef PP8_DTYPE_H
#define PP8_DTYPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    DTYPE_F32 = 0,
    DTYPE_F16,
    DTYPE_BF16,
    DTYPE_I8,
    DTYPE_U8,
    DTYPE_I32,
    DTYPE_I64,
    DTYPE_COUNT
} DType;

/* bytes of one element */
size_t dtype_size(DType t);
/* safetensors spelling ("F16", "BF16", ...); NULL-safe parse returns -1 when unknown */
const char *dtype_name(DType t);
int dtype_parse(const char *s);

#ifdef __cplusplus
}
#endif
#endif
