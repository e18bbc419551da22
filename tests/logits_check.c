/* Test tool: compares pp8's logits (.npy) with a reference array of a golden.safetensors file.
 *   logits_check tokens GOLDEN                     prints the stored tokens as "1,2,3"
 *   logits_check compare OUT.npy GOLDEN KEY [MAXREL NMSE]
 *       passes when max|out-ref| <= MAXREL * max|ref| and mean (out-ref)^2 / mean ref^2 <= NMSE
 *   logits_check closer A.npy B.npy GOLDEN KEY     passes when A is closer to KEY than B (by NMSE)
 *   logits_check nll (GOLDEN KEY | FILE.npy) TOKENS FROM
 *       prints "SUM COUNT": the summed NLL (nats, double) of tokens[j] given the logits at row j - 1, over
 *       j in [FROM, T): a perplexity reference computed with no pp8 code but the readers
 * Prints the numbers and the first mismatching rows when it fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/npy.h"
#include "model/safetensors.h"

static const float *golden(Checkpoint **ck, const char *path, const char *key, int64_t *rows, int64_t *cols)
{
    Err e = {{0}};
    if (ckpt_open(ck, path, &e)) {
        fprintf(stderr, "FAIL: %s (the golden data in ../shared/golden is required)\n", e.msg);
        exit(1);
    }
    const StTensor *t = ckpt_find(*ck, key);
    if (!t) {
        fprintf(stderr, "FAIL: %s has no tensor %s\n", path, key);
        exit(1);
    }
    *rows = t->shape[0];
    *cols = t->ndim > 1 ? t->shape[1] : 1;
    return t->data;
}

static float *load(const char *path, int *rows, int *cols)
{
    Err e = {{0}};
    float *d;
    if (npy_read_f32(path, &d, rows, cols, &e)) {
        fprintf(stderr, "FAIL: %s\n", e.msg);
        exit(1);
    }
    return d;
}

static void stats(const float *x, const float *r, size_t n, double *maxrel, double *nmse)
{
    double maxd = 0, maxr = 0, se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - r[i]);
        if (!(d <= maxd)) maxd = d; /* NaN propagates */
        if (fabs(r[i]) > maxr) maxr = fabs(r[i]);
        se += d * d;
        sr += (double)r[i] * r[i];
    }
    *maxrel = maxd / maxr;
    *nmse = se / sr;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "tokens")) {
        Checkpoint *ck;
        int64_t n, c;
        const int32_t *t = (const int32_t *)golden(&ck, argv[2], "tokens", &n, &c);
        for (int64_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", t[i]);
        printf("\n");
        ckpt_close(ck);
        return 0;
    }
    if (argc >= 5 && !strcmp(argv[1], "compare")) {
        Checkpoint *ck;
        int64_t rr, rc;
        int xr, xc;
        const float *ref = golden(&ck, argv[3], argv[4], &rr, &rc);
        float *x = load(argv[2], &xr, &xc);
        double tol_rel = argc > 5 ? atof(argv[5]) : 1e-2, tol_nmse = argc > 6 ? atof(argv[6]) : 2e-5;
        if (xr != rr || xc != rc) {
            fprintf(stderr, "FAIL: %s is [%d, %d], %s is [%lld, %lld]\n", argv[2], xr, xc, argv[4], (long long)rr,
                    (long long)rc);
            return 1;
        }
        double maxrel, nmse;
        stats(x, ref, (size_t)rr * rc, &maxrel, &nmse);
        int ok = maxrel <= tol_rel && nmse <= tol_nmse;
        printf("%s %s vs %s: max|d|/max|ref| = %.3e (<= %.1e), nmse = %.3e (<= %.1e)\n", ok ? "ok" : "FAIL", argv[2],
               argv[4], maxrel, tol_rel, nmse, tol_nmse);
        if (!ok)
            for (int64_t r = 0, shown = 0; r < rr && shown < 3; r++) {
                double m = 0;
                int64_t at = 0;
                for (int64_t j = 0; j < rc; j++)
                    if (fabs(x[r * rc + j] - ref[r * rc + j]) > m) m = fabs(x[r * rc + j] - ref[r * rc + j]), at = j;
                if (m > tol_rel * 0.5) {
                    printf("  row %lld: worst column %lld: pp8 %.6g ref %.6g\n", (long long)r, (long long)at,
                           x[r * rc + at], ref[r * rc + at]);
                    shown++;
                }
            }
        free(x);
        ckpt_close(ck);
        return ok ? 0 : 1;
    }
    if (argc >= 6 && !strcmp(argv[1], "closer")) {
        Checkpoint *ck;
        int64_t rr, rc;
        int ar, ac, br, bc;
        const float *ref = golden(&ck, argv[4], argv[5], &rr, &rc);
        float *a = load(argv[2], &ar, &ac), *b = load(argv[3], &br, &bc);
        if (ar != rr || br != rr || ac != rc || bc != rc) {
            fprintf(stderr, "FAIL: shape mismatch\n");
            return 1;
        }
        double ma, na, mb, nb;
        stats(a, ref, (size_t)rr * rc, &ma, &na);
        stats(b, ref, (size_t)rr * rc, &mb, &nb);
        int ok = na < nb;
        printf("%s: nmse to %s: %s %.3e vs %s %.3e\n", ok ? "ok" : "FAIL", argv[5], argv[2], na, argv[3], nb);
        free(a);
        free(b);
        ckpt_close(ck);
        return ok ? 0 : 1;
    }
    if (argc >= 5 && !strcmp(argv[1], "nll")) {
        Checkpoint *ck = NULL;
        int64_t rows, cols;
        const float *lg;
        float *own = NULL;
        int a = 2;
        if (strstr(argv[2], ".npy")) {
            int r, c;
            lg = own = load(argv[2], &r, &c);
            rows = r, cols = c;
            a = 3;
        } else {
            lg = golden(&ck, argv[2], argv[3], &rows, &cols);
            a = 4;
        }
        if (argc < a + 2) return 2;
        int64_t T = 0;
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)(rows + 1));
        for (const char *p = argv[a]; *p && T <= rows; T++) {
            tok[T] = (int32_t)strtol(p, (char **)&p, 10);
            if (*p == ',') p++;
        }
        int64_t from = atoll(argv[a + 1]);
        if (T != rows || from < 1) {
            fprintf(stderr, "FAIL: %lld tokens for %lld logit rows (FROM %lld)\n", (long long)T, (long long)rows,
                    (long long)from);
            return 1;
        }
        double sum = 0;
        long n = 0;
        for (int64_t j = from; j < T; j++, n++) {
            const float *row = lg + (size_t)(j - 1) * cols;
            double mx = -INFINITY, z = 0;
            for (int64_t v = 0; v < cols; v++) mx = row[v] > mx ? row[v] : mx;
            for (int64_t v = 0; v < cols; v++) z += exp((double)row[v] - mx);
            sum += mx + log(z) - (double)row[tok[j]];
        }
        printf("%.17g %ld\n", sum, n);
        free(tok);
        free(own);
        if (ck) ckpt_close(ck);
        return 0;
    }
    fprintf(stderr, "usage: logits_check tokens GOLDEN | compare OUT.npy GOLDEN KEY [MAXREL NMSE] | closer A B GOLDEN KEY | nll (GOLDEN KEY | X.npy) TOKENS FROM\n");
    return 2;
}
