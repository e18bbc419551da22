/* Names and sizes of the element types; no conversions here (see numerics.h). */
#include "dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} DTYPES[DTYPE_COUNT] = {
    [DTYPE_F32] = {"F32", 4}, [DTYPE_F16] = {"F16", 2}, [DTYPE_BF16] = {"BF16", 2}, [DTYPE_I8] = {"I8", 1},
    [DTYPE_U8] = {"U8", 1},   [DTYPE_I32] = {"I32", 4}, [DTYPE_I64] = {"I64", 8},
};

size_t dtype_size(DType t) { return (unsigned)t < DTYPE_COUNT ? DTYPES[t].size : 0; }

const char *dtype_name(DType t) { return (unsigned)t < DTYPE_COUNT ? DTYPES[t].name : "?"; }

int dtype_parse(const char *s)
{
    for (int i = 0; s && i < DTYPE_COUNT; i++)
        if (strcmp(s, DTYPES[i].name) == 0) return i;
    return -1;
}
