/* LLM.int8() on the GPU against bitsandbytes' golden vectors (shared/golden/int8_matmul.safetensors): CB/SCB
 * (the row quantization with t = 0), outlier columns, CA, SCA bit for bit; Y through `linear` bit for bit on
 * the GEMV path (M <= 8, shapes IMMA cannot take) and without outlier columns, else within 1 fp16 ulp (or the
 * fp32 reassociation bound) of cuBLASLt's outlier sums. argv[1] = the file; 77 = skipped without a GPU. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/backend.h"
#include "test_util.h"
#include "../kernels/cuda_host.h"
#include "../kernels/numerics.h"
#include "model/safetensors.h"

static Backend *g_b;
static int g_fail;

/* n elements of `size` bytes; max_ulp > 0 only for fp16 */
static void expect(const char *what, int cs, const void *got, const void *want, size_t n, size_t size, long max_ulp)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *g = (const char *)got + i * size, *w = (const char *)want + i * size;
        if (!memcmp(g, w, size)) continue;
        if (max_ulp > 0 && size == 2) {
            uint16_t a, b;
            memcpy(&a, g, 2);
            memcpy(&b, w, 2);
            if (test_ulp16(a, b) <= max_ulp) continue;
        }
        if (bad < 5) {
            fprintf(stderr, "FAIL case%d %s[%zu]: got", cs, what, i);
            for (size_t j = 0; j < size; j++) fprintf(stderr, " %02x", (unsigned char)g[j]);
            fprintf(stderr, " want");
            for (size_t j = 0; j < size; j++) fprintf(stderr, " %02x", (unsigned char)w[j]);
            if (size == 2) {
                uint16_t a, b;
                memcpy(&a, g, 2);
                memcpy(&b, w, 2);
                fprintf(stderr, " (%.8g vs %.8g)", pp8_h2f(a), pp8_h2f(b));
            }
            fputc('\n', stderr);
        }
        bad++;
    }
    if (bad) {
        fprintf(stderr, "FAIL case%d %s: %d of %zu differ (allowed %ld ulp)\n", cs, what, bad, n, max_ulp);
        g_fail++;
    }
}

static void *dev(const void *h, size_t bytes)
{
    void *d = g_b->alloc(g_b->ctx, bytes ? bytes : 1);
    if (!d) {
        fprintf(stderr, "FAIL device alloc\n");
        exit(1);
    }
    if (h && bytes) g_b->to_device(g_b->ctx, d, h, bytes);
    return d;
}

static void *host(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "FAIL out of memory\n");
        exit(1);
    }
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "FAIL usage: test_gpu_int8_matmul path/to/int8_matmul.safetensors\n");
        return 1;
    }
    if (backend_cuda_device_count() <= 0) {
        printf("skipped: no CUDA device visible\n");
        return 77;
    }
    char err[256];
    BackendOptions o = {.threads = 0, .first_cpu = -1, .device = 0};
    g_b = backend_cuda_create(&o, err, sizeof err);
    if (!g_b) {
        printf("skipped: %s\n", err);
        return 77;
    }
    Checkpoint *ck = NULL;
    Err e = {{0}};
    if (ckpt_open(&ck, argv[1], &e)) {
        fprintf(stderr, "FAIL cannot read the golden vectors: %s\n", e.msg);
        return 1;
    }
    g_b->reserve(g_b->ctx, 64, 256, 256);
    for (int cs = 0; cs < 7; cs++) {
        const StTensor *X, *W, *B, *T, *CB, *SCB, *CA, *SCA, *OC, *Y;
        test_int8_case(ck, cs, &X, &W, &B, &T, &CB, &SCB, &CA, &SCA, &OC, &Y);
        int m = (int)X->shape[0], k = (int)X->shape[1], n = (int)W->shape[0], nref = (int)OC->shape[0];
        float t;
        memcpy(&t, T->data, sizeof t);
        if (W->shape[1] != k || CB->shape[0] != n || CB->shape[1] != k || CA->shape[0] != m || CA->shape[1] != k ||
            SCA->shape[0] != m || SCB->shape[0] != n || Y->shape[0] != m || Y->shape[1] != n || B->shape[0] != n ||
            m > 64 || k > 256 || n > 256) {
            fprintf(stderr, "FAIL case%d: inconsistent shapes in the vectors file\n", cs);
            return 1;
        }
        uint16_t *dx = dev(X->data, 2 * (size_t)m * k), *dw = dev(W->data, 2 * (size_t)n * k);
        int8_t *dq = dev(NULL, (size_t)(m > n ? m : n) * k);
        float *ds = dev(NULL, sizeof(float) * (m > n ? m : n));
        int32_t *dcols = dev(NULL, sizeof(int32_t) * k);
        int8_t *q = host((size_t)(m > n ? m : n) * k);
        float *s = host(sizeof(float) * (m > n ? m : n));
        int32_t *cols = host(sizeof(int32_t) * k);
        int64_t *cols64 = host(sizeof(int64_t) * (k + 1));

        /* CB, SCB: bitsandbytes' weight quantization is the same row quantization with t = 0 */
        int none = backend_cuda_int8_quantize(g_b, dw, n, k, 0.0f, dq, ds, dcols);
        g_b->to_host(g_b->ctx, q, dq, (size_t)n * k);
        g_b->to_host(g_b->ctx, s, ds, sizeof(float) * n);
        if (none != 0) fprintf(stderr, "FAIL case%d: t = 0 gave %d outlier columns\n", cs, none), g_fail++;
        expect("CB", cs, q, CB->data, (size_t)n * k, 1, 0);
        expect("SCB", cs, s, SCB->data, n, 4, 0);

        /* outlier columns, CA, SCA */
        int nc = backend_cuda_int8_quantize(g_b, dx, m, k, t, dq, ds, dcols);
        g_b->to_host(g_b->ctx, q, dq, (size_t)m * k);
        g_b->to_host(g_b->ctx, s, ds, sizeof(float) * m);
        g_b->to_host(g_b->ctx, cols, dcols, sizeof(int32_t) * k);
        if (nc != nref) {
            fprintf(stderr, "FAIL case%d outlier_cols: %d columns, want %d\n", cs, nc, nref);
            g_fail++;
        } else {
            for (int i = 0; i < nc; i++) cols64[i] = cols[i];
            expect("outlier_cols", cs, cols64, OC->data, nc, 8, 0);
        }
        expect("CA", cs, q, CA->data, (size_t)m * k, 1, 0);
        expect("SCA", cs, s, SCA->data, m, 4, 0);

        /* Y through linear, packed from the golden CB/SCB */
        Linear w = {.wdt = DTYPE_I8, .n = n, .k = k};
        size_t wb = g_b->linear_bytes(g_b->ctx, DTYPE_I8, n, k);
        if (wb != (size_t)n * k) fprintf(stderr, "FAIL case%d: linear_bytes %zu\n", cs, wb), g_fail++;
        w.w = dev(NULL, wb);
        w.scb = dev(NULL, sizeof(float) * n);
        w.bias = dev(B->data, 2 * (size_t)n);
        g_b->linear_pack(g_b->ctx, &w, CB->data, SCB->data);
        uint16_t *dy = dev(NULL, 2 * (size_t)m * n), *y = host(2 * (size_t)m * n);
        g_b->linear(g_b->ctx, &w, dx, m, DTYPE_F16, dy, DTYPE_F16, t);
        g_b->to_host(g_b->ctx, y, dy, 2 * (size_t)m * n);
        int exact = cuda_int8_use_gemv(m, n, k) || nref == 0;
        if (exact) {
            expect("Y (exact)", cs, y, Y->data, (size_t)m * n, 2, 0);
        } else if (nc == nref) {
            const uint16_t *yw = Y->data, *xh = X->data;
            const int8_t *cbh = CB->data;
            const float *scbh = SCB->data;
            int *ic = host(sizeof(int) * (nc + 1)), bad = 0;
            for (int i = 0; i < nc; i++) ic[i] = cols[i];
            for (int r = 0; r < m; r++)
                for (int o = 0; o < n; o++) {
                    size_t i = (size_t)r * n + o;
                    if (test_outlier_close(y[i], yw[i], xh + (size_t)r * k, cbh + (size_t)o * k, scbh[o], ic, nc)) continue;
                    if (bad++ < 5)
                        fprintf(stderr, "FAIL case%d Y[%d,%d]: got %.8g want %.8g\n", cs, r, o, pp8_h2f(y[i]),
                                pp8_h2f(yw[i]));
                }
            if (bad) g_fail++, fprintf(stderr, "FAIL case%d Y: %d outside 1 ulp / the fp32 bound\n", cs, bad);
            free(ic);
        }
        printf("case%d: M=%d K=%d N=%d t=%g outlier cols=%d path=%s: checked\n", cs, m, k, n, t, nref,
               cuda_int8_use_gemv(m, n, k) ? "gemv-dp4a" : "cublaslt-imma");

        void *dptr[] = {dx, dw, dq, ds, dcols, w.w, w.scb, w.bias, dy};
        for (size_t i = 0; i < sizeof dptr / sizeof dptr[0]; i++) g_b->free(g_b->ctx, dptr[i]);
        free(q), free(s), free(cols), free(cols64), free(y);
    }
    ckpt_close(ck);
    backend_destroy(g_b);
    printf("%s\n", g_fail ? "FAILED" : "all checked");
    return g_fail ? 1 : 0;
}
