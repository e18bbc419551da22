/* numpy .npy files (format 1.0), float32 C-order only: what `pp8 logits --out` writes and tests read. */
#ifndef PP8_NPY_H
#define PP8_NPY_H

#include "err.h"

int npy_write_f32(const char *path, const float *data, int rows, int cols, Err *e);
/* allocates *data (free it); cols = 0 for a 1-d array */
int npy_read_f32(const char *path, float **data, int *rows, int *cols, Err *e);

#endif
