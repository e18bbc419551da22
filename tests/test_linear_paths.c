/* Every CPU linear path against the scalar reference on shapes that are not multiples of any SIMD width:
 * int8 int32 accumulators and fp16 outputs bit-exact (threshold 0 and 6, with and without outlier
 * columns, all-zero rows and rows whose only non-zeros are outliers); fp16/bf16 within a stated
 * tolerance (fp16 also on subnormals, +-65504 and an inf weight); and every result identical with 1 and
 * 2 threads. Not a speed test. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/cpu_linear.h"
#include "test_util.h"
#include "../kernels/numerics.h"

static const int KS[] = {1, 3, 37, 64, 250, 300, 1000}; /* 300: the panels' K chunks of 128 + a partial one */
static const int NS[] = {1, 5, 17, 48, 100};
static const int MS[] = {1, 2, 4, 6, 7, 8, 9, 16, 33, 100}; /* 8: the VNNI row kernel's 3 or 4 blocks; 9: the int8 panels; 16: the fp32-FMA panels */
#define NK (int)(sizeof KS / sizeof KS[0])
#define NN (int)(sizeof NS / sizeof NS[0])
#define NM (int)(sizeof MS / sizeof MS[0])
#define MAXM 530
#define MAXK 1000
#define MAXN 300
#define STREAM_N 131072 /* 8 rows x 131072 F32 = 4 MiB = LIN_STREAM_Y_BYTES */

/* 16-bit tolerance: |y - ref| <= REL * max|ref| (+ one ulp of ref's 16-bit type for 16-bit outputs).
 * The fast paths sum in another order (and vdpbf16ps rounds after each pair); fp32 rounding of sums of
 * up to 1000 products stays far below 1e-5 of the largest output. */
#define REL 1e-5

static int g_fail, g_checks;

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() & 0xffffff) / 16777216.0f; }

static int report(const char *ctx, int bad, size_t n)
{
    g_checks++;
    if (bad) {
        fprintf(stderr, "FAIL %s: %d of %zu differ\n", ctx, bad, n);
        g_fail++;
    }
    return bad;
}

/* activations: |x| < 3, plus (variant 1, 2) outlier columns with values >= 6 (one exactly 6.0, which
 * counts: the rule is >=), an all-zero row 0 and a row 1 whose only non-zeros are outliers */
static void make_x(uint16_t *x, int m, int k, int outliers, int zero_rows)
{
    for (size_t i = 0; i < (size_t)m * k; i++) x[i] = pp8_f2h(rndf(-3.0f, 3.0f));
    if (outliers && k >= 3) {
        int nc = 1 + (int)(rnd() % (k / 3 < 4 ? k / 3 : 4));
        for (int c = 0; c < nc; c++) {
            int col = (int)(rnd() % (uint32_t)k);
            for (int r = 0; r < m; r++)
                if (rnd() % 3 == 0 || r == 1) x[(size_t)r * k + col] = pp8_f2h((rnd() & 1 ? -1 : 1) * rndf(6.0f, 20.0f));
            if (c == 0) x[(size_t)(m - 1) * k + col] = pp8_f2h(6.0f);
        }
        if (m >= 3) /* row 1: only its outlier-column values >= 6 stay */
            for (int i = 0; i < k; i++)
                if (fabsf(pp8_h2f(x[(size_t)1 * k + i])) < 6.0f) x[(size_t)1 * k + i] = 0;
    }
    if (zero_rows && m >= 2) memset(x, 0, sizeof(uint16_t) * k);
}

static void test_int8(CpuLinear *lin, int m, int k, int n, const char **paths, int npaths)
{
    static uint16_t x[MAXM * MAXK], w16[MAXN * MAXK], bias[MAXN], y[MAXM * MAXN], yref[MAXM * MAXN];
    static int8_t cb[MAXN * MAXK], ca[MAXM * MAXK];
    static float scb[MAXN], sca[MAXM];
    static int cols[MAXK];
    static int32_t acc[MAXM * MAXN], accref[MAXM * MAXN];
    for (int i = 0; i < n * k; i++) w16[i] = pp8_f2h(rndf(-1.0f, 1.0f));
    for (int i = 0; i < n; i++) bias[i] = pp8_f2h(rndf(-0.5f, 0.5f));
    ref_quantize_weights(cb, scb, w16, n, k);
    Linear w = {.wdt = DTYPE_I8, .n = n, .k = k, .bias = (m + k) & 1 ? bias : NULL};
    w.w = test_xmalloc(cpu_linear_bytes(DTYPE_I8, n, k));
    w.scb = test_xmalloc(sizeof(float) * n);
    cpu_linear_pack(&w, cb, scb);
    for (int variant = 0; variant < 3; variant++) {
        float t = variant == 0 ? 0.0f : 6.0f; /* 0: t = 0 with outliers; 1: t = 6 with; 2: t = 6 without */
        make_x(x, m, k, variant < 2, variant != 2);
        int nc = ref_outlier_cols(cols, x, m, k, t);
        ref_quantize_acts(ca, sca, x, m, k, cols, nc, t);
        ref_int8_acc(accref, ca, cb, m, k, n);
        ref_int8_linear(yref, x, m, k, cb, scb, w.bias, n, t);
        for (int p = 0; p < npaths; p++) {
            cpu_linear_force_path(lin, DTYPE_I8, paths[p]);
            for (int th = 1; th <= 2; th++) {
                cpu_linear_set_threads(lin, th);
                memset(acc, 0x5a, sizeof(int32_t) * m * n);
                memset(y, 0xff, sizeof(uint16_t) * m * n);
                cpu_linear_debug_acc(lin, acc);
                cpu_linear(lin, &w, x, m, DTYPE_F16, y, DTYPE_F16, t);
                cpu_linear_debug_acc(lin, NULL);
                int bad_acc = 0, bad_y = 0;
                for (int i = 0; i < m * n; i++) {
                    if (acc[i] != accref[i] && bad_acc++ < 3)
                        fprintf(stderr, "  acc[%d,%d] = %d, want %d\n", i / n, i % n, acc[i], accref[i]);
                    if (y[i] != yref[i] && bad_y++ < 3)
                        fprintf(stderr, "  y[%d,%d] = %a (0x%04x), want %a (0x%04x)\n", i / n, i % n,
                                pp8_h2f(y[i]), y[i], pp8_h2f(yref[i]), yref[i]);
                }
                char ctx[160];
                snprintf(ctx, sizeof ctx, "int8 %s %dT M=%d K=%d N=%d t=%g outlier cols=%d: acc", paths[p], th, m, k,
                         n, t, nc);
                report(ctx, bad_acc, (size_t)m * n);
                snprintf(ctx, sizeof ctx, "int8 %s %dT M=%d K=%d N=%d t=%g outlier cols=%d: y", paths[p], th, m, k, n,
                         t, nc);
                report(ctx, bad_y, (size_t)m * n);
            }
        }
    }
    cpu_linear_force_path(lin, DTYPE_I8, NULL);
    free(w.w);
    free(w.scb);
}

static float load16(uint16_t v, DType dt) { return dt == DTYPE_BF16 ? pp8_bf2f(v) : pp8_h2f(v); }
static float ulp16(float v, DType dt)
{
    int e;
    frexpf(fabsf(v), &e); /* v = f * 2^e, f in [0.5, 1) */
    int mant = dt == DTYPE_BF16 ? 8 : 11;
    if (dt == DTYPE_F16 && e < -13) e = -13; /* fp16 subnormals */
    return ldexpf(1.0f, e - mant);
}

static void test_16(CpuLinear *lin, DType dt, int m, int k, int n, const char **paths, int npaths)
{
    const size_t mn = (size_t)m * n;
    uint16_t *x = test_xmalloc(sizeof(uint16_t) * (size_t)m * k), *w16 = test_xmalloc(sizeof(uint16_t) * (size_t)n * k);
    uint16_t *bias = test_xmalloc(sizeof(uint16_t) * (size_t)n);
    float *yref = test_xmalloc(sizeof(float) * mn), *y = test_xmalloc(sizeof(float) * mn);
    float *yfirst = test_xmalloc(sizeof(float) * mn), *abssum = test_xmalloc(sizeof(float) * mn);
    uint16_t *yref16 = test_xmalloc(sizeof(uint16_t) * mn), *y16 = test_xmalloc(sizeof(uint16_t) * mn);
    uint16_t *yfirst16 = test_xmalloc(sizeof(uint16_t) * mn);
    for (int i = 0; i < m * k; i++) x[i] = dt == DTYPE_BF16 ? pp8_f2bf(rndf(-3.0f, 3.0f)) : pp8_f2h(rndf(-3.0f, 3.0f));
    if (m >= 2) memset(x, 0, sizeof(uint16_t) * k);
    for (int i = 0; i < n * k; i++) w16[i] = dt == DTYPE_BF16 ? pp8_f2bf(rndf(-1.0f, 1.0f)) : pp8_f2h(rndf(-1.0f, 1.0f));
    for (int i = 0; i < n; i++) bias[i] = dt == DTYPE_BF16 ? pp8_f2bf(rndf(-0.5f, 0.5f)) : pp8_f2h(rndf(-0.5f, 0.5f));
    Linear w = {.wdt = dt, .n = n, .k = k, .bias = (m + k) & 1 ? NULL : bias};
    w.w = test_xmalloc(cpu_linear_bytes(dt, n, k));
    cpu_linear_pack(&w, w16, NULL);
    ref_linear16(yref, DTYPE_F32, x, dt, m, k, w16, dt, w.bias, n);
    ref_linear16(yref16, dt, x, dt, m, k, w16, dt, w.bias, n);
    float ymax = 0.0f;
    for (int i = 0; i < m * n; i++) ymax = fmaxf(ymax, fabsf(yref[i]));
    float atol = (float)REL * ymax;
    /* plus the summation bound of each output: a reordered fp32 sum of K terms errs by up to ~K eps
     * sum|x w| (1e-6 here, about sqrt(K) eps for K <= 1000), which exceeds REL * max|ref| when one output
     * cancels to far below the others (N=1, K=1000: 0.27 from terms summing to ~750 in magnitude) */
    for (int r = 0; r < m; r++)
        for (int o = 0; o < n; o++) {
            double a = 0;
            for (int i = 0; i < k; i++) a += fabs((double)load16(x[(size_t)r * k + i], dt) * load16(w16[(size_t)o * k + i], dt));
            abssum[r * n + o] = (float)(1e-6 * a);
        }
    for (int p = 0; p < npaths; p++) {
        cpu_linear_force_path(lin, dt, paths[p]);
        /* ascending k, one accumulator per output, exact products: ref_linear16's sums bit for bit (the
         * scalar kernel, the fp32-FMA panels and the AVX2 kernels) */
        const char *taken = cpu_linear_path(lin, dt, m);
        int exact = !strcmp(taken, "scalar") || !strcmp(taken, "avx512-fma") || !strncmp(taken, "avx2-", 5);
        for (int out16 = 0; out16 < 2; out16++)
            for (int th = 1; th <= 2; th++) {
                cpu_linear_set_threads(lin, th);
                memset(y, 0xff, sizeof(float) * m * n);
                memset(y16, 0xff, sizeof(uint16_t) * m * n);
                if (out16)
                    cpu_linear(lin, &w, x, m, dt, y16, dt, 0.0f);
                else
                    cpu_linear(lin, &w, x, m, dt, y, DTYPE_F32, 0.0f);
                int bad = 0, bad_th = 0;
                for (int i = 0; i < m * n; i++) {
                    float got = out16 ? load16(y16[i], dt) : y[i];
                    float want = out16 ? load16(yref16[i], dt) : yref[i];
                    float tol = exact ? 0.0f : atol + abssum[i] + (out16 ? ulp16(want, dt) : 0.0f);
                    if (!(fabsf(got - want) <= tol) && bad++ < 3)
                        fprintf(stderr, "  y[%d,%d] = %.9g, want %.9g (tol %.3g)\n", i / n, i % n, got, want, tol);
                }
                /* thread-count independence: bit-identical to the 1-thread run */
                if (th == 1) {
                    memcpy(yfirst, y, sizeof(float) * m * n);
                    memcpy(yfirst16, y16, sizeof(uint16_t) * m * n);
                } else {
                    bad_th = out16 ? memcmp(yfirst16, y16, sizeof(uint16_t) * m * n) != 0
                                   : memcmp(yfirst, y, sizeof(float) * m * n) != 0;
                }
                char ctx[160];
                snprintf(ctx, sizeof ctx, "%s %s (%s%s) %dT M=%d K=%d N=%d out=%s", dtype_name(dt), paths[p], taken,
                         exact ? ", exact" : "", th, m, k, n, out16 ? dtype_name(dt) : "F32");
                report(ctx, bad, (size_t)m * n);
                snprintf(ctx, sizeof ctx, "%s %s M=%d K=%d N=%d out=%s: 2 threads differ from 1", dtype_name(dt),
                         paths[p], m, k, n, out16 ? dtype_name(dt) : "F32");
                report(ctx, bad_th, 1);
            }
    }
    cpu_linear_force_path(lin, dt, NULL);
    free(w.w);
    free(x), free(w16), free(bias), free(yref), free(y), free(yfirst), free(abssum), free(yref16), free(y16), free(yfirst16);
}

/* fp16 special values (amx-f16split splits every value into bf16 hi + lo): x and w spread over fp16's
 * whole exponent range, subnormals and +-65504 included, one +inf weight, then (variant 1) also an inf
 * and a NaN in x. Finite outputs within the 16-bit tolerance; non-finite ones as the reference gives
 * them (+-inf, NaN from 0 * inf), never a NaN from inf - inf or 0 * inf in a correction term. */
static void test_f16_special(CpuLinear *lin, const char **paths, int npaths)
{
    enum { M = 16, K = 70, N = 20 };
    static uint16_t x[M * K], w16[N * K], y16[M * N], yref16[M * N];
    static float y[M * N], yref[M * N];
    for (int i = 0; i < M * K; i++) x[i] = (uint16_t)((rnd() & 0x8000) | (rnd() % 0x5000));   /* |x| < 32 */
    for (int i = 0; i < N * K; i++) w16[i] = (uint16_t)((rnd() & 0x8000) | (rnd() % 0x3c00)); /* |w| < 1 */
    /* the extremes meet small partners, so that max|ref| (the tolerance) stays that of the rest */
    w16[0] = 0x7bff; /* 65504: hi rounds up to 65536 in bf16 */
    x[0] = 0x0001;   /* 2^-24 */
    x[2] = 0xfbff;   /* -65504 against subnormal weights */
    for (int o = 0; o < N; o++) w16[o * K + 2] = (uint16_t)((rnd() & 0x8000) | (rnd() % 0x400));
    x[3] = 0x03ff;           /* largest subnormal */
    w16[3 * K + 5] = 0x7c00; /* +inf */
    x[0 * K + 5] = 0;        /* row 0: 0 * inf = NaN */
    Linear w = {.wdt = DTYPE_F16, .n = N, .k = K, .bias = NULL};
    w.w = test_xmalloc(cpu_linear_bytes(DTYPE_F16, N, K));
    cpu_linear_pack(&w, w16, NULL);
    for (int variant = 0; variant < 2; variant++) {
        if (variant == 1) {
            x[5 * K + 9] = 0xfc00; /* -inf */
            x[6 * K + 9] = 0x7e00; /* NaN */
        }
        ref_linear16(yref, DTYPE_F32, x, DTYPE_F16, M, K, w16, DTYPE_F16, NULL, N);
        ref_linear16(yref16, DTYPE_F16, x, DTYPE_F16, M, K, w16, DTYPE_F16, NULL, N);
        float ymax = 0.0f;
        for (int i = 0; i < M * N; i++)
            if (isfinite(yref[i])) ymax = fmaxf(ymax, fabsf(yref[i]));
        for (int p = 0; p < npaths; p++) {
            cpu_linear_force_path(lin, DTYPE_F16, paths[p]);
            for (int out16 = 0; out16 < 2; out16++) {
                if (out16)
                    cpu_linear(lin, &w, x, M, DTYPE_F16, y16, DTYPE_F16, 0.0f);
                else
                    cpu_linear(lin, &w, x, M, DTYPE_F16, y, DTYPE_F32, 0.0f);
                int bad = 0;
                for (int i = 0; i < M * N; i++) {
                    float got = out16 ? pp8_h2f(y16[i]) : y[i], want = out16 ? pp8_h2f(yref16[i]) : yref[i];
                    float tol = (float)REL * ymax + (out16 ? ulp16(want, DTYPE_F16) : 0.0f);
                    int ok = isfinite(want) ? fabsf(got - want) <= tol : isnan(want) ? isnan(got) : got == want;
                    if (!ok && bad++ < 3) fprintf(stderr, "  y[%d,%d] = %.9g, want %.9g\n", i / N, i % N, got, want);
                }
                char ctx[120];
                snprintf(ctx, sizeof ctx, "F16 special values%s %s out=%s", variant ? " (inf, NaN in x)" : "", paths[p],
                         out16 ? "F16" : "F32");
                report(ctx, bad, (size_t)M * N);
            }
        }
    }
    cpu_linear_force_path(lin, DTYPE_F16, NULL);
    free(w.w);
}

int main(void)
{
    CpuLinear *lin = cpu_linear_create(2);
    cpu_linear_reserve(lin, MAXM, MAXK, STREAM_N);
    const char *p8[8], *pb[8], *ph[8];
    int n8 = cpu_linear_path_list(DTYPE_I8, p8, 8), nb = cpu_linear_path_list(DTYPE_BF16, pb, 8),
        nh = cpu_linear_path_list(DTYPE_F16, ph, 8);
    printf("isa: %s\n", cpu_isa_string());
    for (int a = 0; a < NK; a++)
        for (int b = 0; b < NN; b++)
            for (int c = 0; c < NM; c++) {
                /* int8 on the AVX-512 tier: the vendor's row count for the VNNI panels, then the panels at
                 * every row count (1 and up), so both kernels meet every M */
                for (int pr = 0; pr < 2; pr++) {
                    cpu_linear_set_i8_panel_rows(lin, pr ? 1 : 0);
                    test_int8(lin, MS[c], KS[a], NS[b], p8, n8);
                }
                cpu_linear_set_i8_panel_rows(lin, 0);
                test_16(lin, DTYPE_F16, MS[c], KS[a], NS[b], ph, nh);
                /* bf16 on the AVX-512 tier from 5 rows: the vdpbf16ps panels and fp32 FMA, whichever
                 * this CPU's vendor defaults to */
                for (int dot = 0; dot < 2; dot++) {
                    cpu_linear_set_bf16_dot(lin, dot);
                    test_16(lin, DTYPE_BF16, MS[c], KS[a], NS[b], pb, nb);
                }
            }
    /* more rows than one avx512-fma row block (504) and outputs than one super-block (256), and more rows
     * than the VNNI panels' row block at this K */
    test_int8(lin, 530, 300, 290, p8, n8);
    test_16(lin, DTYPE_F16, 530, 300, 290, ph, nh);
    for (int dot = 0; dot < 2; dot++) {
        cpu_linear_set_bf16_dot(lin, dot);
        test_16(lin, DTYPE_BF16, 530, 300, 290, pb, nb);
        test_16(lin, DTYPE_BF16, 33, 70, 32000, pb, nb);
    }
    test_f16_special(lin, ph, nh);
    /* F32 outputs of LIN_STREAM_Y_BYTES and more (the LM head's logits) take streaming stores */
    test_16(lin, DTYPE_F16, 8, 40, STREAM_N, ph, nh);
    test_16(lin, DTYPE_F16, 33, 70, 32000, ph, nh);
    cpu_linear_destroy(lin);
    printf("paths: int8");
    for (int i = 0; i < n8; i++) printf(" %s", p8[i]);
    printf("; F16");
    for (int i = 0; i < nh; i++) printf(" %s", ph[i]);
    printf("; BF16");
    for (int i = 0; i < nb; i++) printf(" %s", pb[i]);
    printf("\n%d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
