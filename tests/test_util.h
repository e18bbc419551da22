/* Helpers every test executable links (tests/test_util.c): a fatal CHECK, allocation that fails loudly,
 * and the 16-bit ulp distance and outlier tolerance the int8 tests share. Tests only. */
#ifndef PP8_TEST_UTIL_H
#define PP8_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/safetensors.h"

/* prints file:line, the condition and a message, then exits 1 */
#define CHECK(cond, ...)                                                                                             \
    do {                                                                                                             \
        if (!(cond)) {                                                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                                                            \
            fputc('\n', stderr);                                                                                     \
            exit(1);                                                                                                 \
        }                                                                                                            \
    } while (0)

/* files in a test's temporary directory: dir/name (8 results live at once), mkdir -p of one level, a whole
 * file written (CHECK-ed) */
const char *test_path(const char *dir, const char *name);
void test_mkdir(const char *path);
void test_write_file(const char *path, const void *p, size_t n);
/* a hand-made safetensors file: the length field says hlen (which may lie), then hdr, then data_len
 * bytes counting up from 0 */
void test_write_safetensors(const char *path, uint64_t hlen, const char *hdr, size_t data_len);

/* the same report, but the test goes on: test_fail_count counts failed checks, test_check_count all */
extern int test_fail_count, test_check_count;
#define CHECK_ON(cond, ...)                                                                                          \
    do {                                                                                                             \
        test_check_count++;                                                                                          \
        if (!(cond)) {                                                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                                                            \
            fputc('\n', stderr);                                                                                     \
            test_fail_count++;                                                                                       \
        }                                                                                                            \
    } while (0)

/* tensor "case<cs>.<name>" of the golden LLM.int8() vectors, of dtype dt and ndim dims; exits with FAIL
 * when it is missing or differs */
const StTensor *test_case_tensor(const Checkpoint *ck, int cs, const char *name, DType dt, int ndim);
/* all of case cs: X, W, bias, threshold, CB, SCB, CA, SCA, outlier_cols, Y (dtypes and ranks checked) */
void test_int8_case(const Checkpoint *ck, int cs, const StTensor **x, const StTensor **w, const StTensor **bias,
                    const StTensor **threshold, const StTensor **cb, const StTensor **scb, const StTensor **ca,
                    const StTensor **sca, const StTensor **ocols, const StTensor **y);

/* xorshift64 step on *state, mapped to a float uniform in [-1, 1) (deterministic test data) */
float test_frand(uint64_t *state);
/* a float to / from a 16-bit value of dtype t (fp16 or bf16), round to nearest even */
uint16_t test_to16(float f, DType t);
float test_from16(uint16_t v, DType t);

/* 64-byte aligned, zeroed; exits with FAIL when out of memory */
void *test_xmalloc(size_t n);
/* distance in units in the last place between two fp16 / bf16 values (+0 and -0 are 0 apart) */
long test_ulp16(uint16_t a, uint16_t b);
/* The cuBLASLt path sums the outlier products in its own fp32 order. Allowed: 1 fp16 ulp, or (under
 * cancellation, where Y1 + sum is much smaller than its terms) the fp32 reassociation bound
 * 2 * ncols * 2^-24 * sum_j |x[r,j] * Wd[o,j]| plus one ulp of the expected value. */
int test_outlier_close(uint16_t got, uint16_t want, const uint16_t *xr, const int8_t *cbo, float scb, const int *cols,
                       int nc);

#endif
