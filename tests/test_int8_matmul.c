/* LLM.int8() against bitsandbytes' golden vectors (shared/golden/int8_matmul.safetensors): CB, SCB,
 * outlier columns, CA, SCA and Y bit for bit, for the scalar reference and for cpu_linear through every
 * int8 path this machine has (scalar, AVX2, AVX-512 VNNI, AMX), with 1 and 2 threads.
 * argv[1] = the vectors file (default: ../shared/golden/int8_matmul.safetensors as configured); a missing
 * file fails (never skips). Does not test speed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/cpu_linear.h"
#include "test_util.h"
#include "../kernels/numerics.h"
#include "model/safetensors.h"

static int g_fail;

/* compares n elements of `size` bytes bit for bit; prints the first mismatches */
static int expect_bits(const char *what, int cs, const void *got, const void *want, size_t n, size_t size,
                       DType dt)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *g = (const char *)got + i * size, *w = (const char *)want + i * size;
        if (!memcmp(g, w, size)) continue;
        if (bad < 5) {
            double gv = 0, wv = 0;
            switch (dt) {
            case DTYPE_I8: gv = *(const int8_t *)g, wv = *(const int8_t *)w; break;
            case DTYPE_F32: gv = *(const float *)g, wv = *(const float *)w; break;
            case DTYPE_F16: gv = pp8_h2f(*(const uint16_t *)g), wv = pp8_h2f(*(const uint16_t *)w); break;
            case DTYPE_I64: gv = (double)*(const int64_t *)g, wv = (double)*(const int64_t *)w; break;
            case DTYPE_I32: gv = *(const int32_t *)g, wv = *(const int32_t *)w; break;
            default: break;
            }
            fprintf(stderr, "FAIL case%d %s[%zu]: got %.9g want %.9g\n", cs, what, i, gv, wv);
        }
        bad++;
    }
    if (bad) {
        fprintf(stderr, "FAIL case%d %s: %d of %zu differ\n", cs, what, bad, n);
        g_fail++;
    }
    return bad;
}

int main(int argc, char **argv)
{
    /* any vectors file in the same layout can be run through it; default: the shared golden one */
    const char *vectors = argc >= 2 ? argv[1] : PP8_DEFAULT_VECTORS;
    Checkpoint *ck = NULL;
    Err e = {{0}};
    if (ckpt_open(&ck, vectors, &e)) {
        fprintf(stderr, "FAIL cannot read the golden vectors: %s\n", e.msg);
        return 1;
    }
    CpuLinear *lin = cpu_linear_create(2);
    cpu_linear_reserve(lin, 64, 256, 256);
    const char *paths[8];
    int npaths = cpu_linear_path_list(DTYPE_I8, paths, 8);
    int ncases = 0, nruns = 0;
    for (int cs = 0; cs < 7; cs++) {
        const StTensor *X, *W, *B, *T, *CB, *SCB, *CA, *SCA, *OC, *Y;
        test_int8_case(ck, cs, &X, &W, &B, &T, &CB, &SCB, &CA, &SCA, &OC, &Y);
        int m = (int)X->shape[0], k = (int)X->shape[1], n = (int)W->shape[0];
        float t;
        memcpy(&t, T->data, sizeof t);
        const uint16_t *x = X->data, *wt = W->data, *bias = B->data;
        if (W->shape[1] != k || CB->shape[0] != n || CB->shape[1] != k || CA->shape[0] != m || CA->shape[1] != k ||
            SCA->shape[0] != m || SCB->shape[0] != n || Y->shape[0] != m || Y->shape[1] != n || B->shape[0] != n) {
            fprintf(stderr, "FAIL case%d: inconsistent shapes in the vectors file\n", cs);
            return 1;
        }

        /* the reference, quantity by quantity */
        int8_t *cb = test_xmalloc((size_t)n * k), *ca = test_xmalloc((size_t)m * k);
        float *scb = test_xmalloc(sizeof(float) * n), *sca = test_xmalloc(sizeof(float) * m);
        int *cols = test_xmalloc(sizeof(int) * k);
        int64_t *cols64 = test_xmalloc(sizeof(int64_t) * (k + 1));
        uint16_t *y = test_xmalloc(sizeof(uint16_t) * (size_t)m * n);
        ref_quantize_weights(cb, scb, wt, n, k);
        expect_bits("CB", cs, cb, CB->data, (size_t)n * k, 1, DTYPE_I8);
        expect_bits("SCB", cs, scb, SCB->data, n, 4, DTYPE_F32);
        int nc = ref_outlier_cols(cols, x, m, k, t);
        for (int i = 0; i < nc; i++) cols64[i] = cols[i];
        if (nc != OC->shape[0]) {
            fprintf(stderr, "FAIL case%d outlier_cols: %d columns, want %lld\n", cs, nc, (long long)OC->shape[0]);
            g_fail++;
        } else {
            expect_bits("outlier_cols", cs, cols64, OC->data, nc, 8, DTYPE_I64);
        }
        ref_quantize_acts(ca, sca, x, m, k, cols, nc, t);
        expect_bits("CA", cs, ca, CA->data, (size_t)m * k, 1, DTYPE_I8);
        expect_bits("SCA", cs, sca, SCA->data, m, 4, DTYPE_F32);
        ref_int8_linear(y, x, m, k, cb, scb, bias, n, t);
        expect_bits("Y ref", cs, y, Y->data, (size_t)m * n, 2, DTYPE_F16);

        /* cpu_linear through every path, packed from the golden CB/SCB */
        Linear w = {.wdt = DTYPE_I8, .n = n, .k = k, .bias = (uint16_t *)bias};
        w.w = test_xmalloc(cpu_linear_bytes(DTYPE_I8, n, k));
        w.scb = test_xmalloc(sizeof(float) * n);
        cpu_linear_pack(&w, CB->data, SCB->data);
        for (int p = 0; p <= npaths; p++) { /* p == npaths: automatic dispatch */
            if (cpu_linear_force_path(lin, DTYPE_I8, p < npaths ? paths[p] : NULL)) {
                fprintf(stderr, "FAIL path %s listed but refused\n", paths[p]);
                return 1;
            }
            for (int th = 1; th <= 2; th++) {
                cpu_linear_set_threads(lin, th);
                memset(y, 0xff, sizeof(uint16_t) * (size_t)m * n);
                cpu_linear(lin, &w, x, m, DTYPE_F16, y, DTYPE_F16, t);
                char what[96];
                snprintf(what, sizeof what, "Y %s %dT", cpu_linear_path(lin, DTYPE_I8, m), th);
                expect_bits(what, cs, y, Y->data, (size_t)m * n, 2, DTYPE_F16);
                nruns++;
            }
        }
        free(w.w);
        free(w.scb);
        free(cb), free(ca), free(scb), free(sca), free(cols), free(cols64), free(y);
        printf("case%d: M=%d K=%d N=%d t=%g outlier cols=%d: checked\n", cs, m, k, n, t, nc);
        ncases++;
    }
    cpu_linear_destroy(lin);
    ckpt_close(ck);
    printf("%d cases, %d cpu_linear runs over paths:", ncases, nruns);
    for (int p = 0; p < npaths; p++) printf(" %s", paths[p]);
    printf("\n%s\n", g_fail ? "FAILED" : "all bit-exact");
    return g_fail ? 1 : 0;
}
