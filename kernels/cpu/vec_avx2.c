/* vec.c's scalar row primitives compiled with AVX2 + FMA (this file's suffix gives the flags), chosen at
 * run time on x86 CPUs without AVX-512: attention's dots and value sums are fmaf per multiply-add (vec.h),
 * which the portable build calls into libm for, one call per multiply-add. Same source (vec_scalar.inc),
 * -ffp-contract=off everywhere (CMakeLists.txt), and fmaf is exact either way, so the same bits. */
#include "vec.h"

#include <math.h>
#include <string.h>

#include "../numerics.h"

#define VEC_TABLE AVX2
#include "vec_scalar.inc"

const VecOps *vec_ops_avx2(void) { return &AVX2; }
