/* See test_util.h. */
#include "test_util.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "numerics.h"

int test_fail_count, test_check_count;

float test_frand(uint64_t *state)
{
    uint64_t s = *state;
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    *state = s;
    return (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

uint16_t test_to16(float f, DType t) { return t == DTYPE_BF16 ? pp8_f2bf(f) : pp8_f2h(f); }
float test_from16(uint16_t v, DType t) { return t == DTYPE_BF16 ? pp8_bf2f(v) : pp8_h2f(v); }

void *test_xmalloc(size_t n)
{
    size_t bytes = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        fprintf(stderr, "FAIL out of memory (%zu bytes)\n", n);
        exit(1);
    }
    memset(p, 0, bytes ? bytes : 64);
    return p;
}

long test_ulp16(uint16_t a, uint16_t b)
{
    long va = (a & 0x8000) ? -(long)(a & 0x7fff) : (long)(a & 0x7fff);
    long vb = (b & 0x8000) ? -(long)(b & 0x7fff) : (long)(b & 0x7fff);
    return va > vb ? va - vb : vb - va;
}

int test_outlier_close(uint16_t got, uint16_t want, const uint16_t *xr, const int8_t *cbo, float scb, const int *cols,
                       int nc)
{
    if (test_ulp16(got, want) <= 1) return 1;
    double mag = 0;
    for (int c = 0; c < nc; c++)
        mag += fabs((double)pp8_h2f(xr[cols[c]]) * pp8_h2f(pp8_i8_weight_dequant(cbo[cols[c]], scb)));
    double ulp = fabs((double)pp8_h2f((uint16_t)(want ^ 1)) - pp8_h2f(want));
    return fabs((double)pp8_h2f(got) - pp8_h2f(want)) <= ulp + 2.0 * nc * ldexp(mag, -24);
}

const StTensor *test_case_tensor(const Checkpoint *ck, int cs, const char *name, DType dt, int ndim)
{
    char full[64];
    snprintf(full, sizeof full, "case%d.%s", cs, name);
    const StTensor *t = ckpt_find(ck, full);
    if (!t || t->dtype != dt || t->ndim != ndim) {
        fprintf(stderr, "FAIL %s: missing or not %s with %d dims\n", full, dtype_name(dt), ndim);
        exit(1);
    }
    return t;
}

void test_int8_case(const Checkpoint *ck, int cs, const StTensor **x, const StTensor **w, const StTensor **bias,
                    const StTensor **threshold, const StTensor **cb, const StTensor **scb, const StTensor **ca,
                    const StTensor **sca, const StTensor **ocols, const StTensor **y)
{
    *x = test_case_tensor(ck, cs, "X", DTYPE_F16, 2);
    *w = test_case_tensor(ck, cs, "W", DTYPE_F16, 2);
    *bias = test_case_tensor(ck, cs, "bias", DTYPE_F16, 1);
    *threshold = test_case_tensor(ck, cs, "threshold", DTYPE_F32, 1);
    *cb = test_case_tensor(ck, cs, "CB", DTYPE_I8, 2);
    *scb = test_case_tensor(ck, cs, "SCB", DTYPE_F32, 1);
    *ca = test_case_tensor(ck, cs, "CA", DTYPE_I8, 2);
    *sca = test_case_tensor(ck, cs, "SCA", DTYPE_F32, 1);
    *ocols = test_case_tensor(ck, cs, "outlier_cols", DTYPE_I64, 1);
    *y = test_case_tensor(ck, cs, "Y", DTYPE_F16, 2);
}

const char *test_path(const char *dir, const char *name)
{
    static char bufs[8][2048];
    static int k;
    char *p = bufs[k++ % 8];
    snprintf(p, sizeof bufs[0], "%s/%s", dir, name);
    return p;
}

void test_mkdir(const char *path) { CHECK(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s", path); }

void test_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot create %s", path);
    CHECK(fwrite(p, 1, n, f) == n, "write %s", path);
    fclose(f);
}

void test_write_safetensors(const char *path, uint64_t hlen, const char *hdr, size_t data_len)
{
    size_t hl = strlen(hdr);
    unsigned char *buf = malloc(8 + hl + data_len + 1);
    CHECK(buf, "out of memory writing %s", path);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (unsigned char)i;
    test_write_file(path, buf, 8 + hl + data_len);
    free(buf);
}
