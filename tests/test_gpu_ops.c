/* Every op of the CUDA backend against a plain CPU computation: bit for bit where the arithmetic is the
 * same by construction (embed, add, relu, gather_rows, KV-cache writes, int8 CA/SCA, LLM.int8() through
 * the GEMV path, and the cuBLASLt path without outlier columns), within 1 fp16 ulp (or the fp32
 * reassociation bound) for cuBLASLt's outlier sums, and within stated tolerances for fp32 reductions
 * (layernorm, attention, gelu's tanhf, 16-bit GEMMs). Exits 77 (skipped) without a CUDA device. The
 * kernel set is PP8_CUDA_KERNELS's (CTest runs it with v1 and with v2: the same expectations). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/backend.h"
#include "test_util.h"
#include "../kernels/cpu/cpu_linear.h"
#include "../kernels/cuda_host.h"
#include "../kernels/numerics.h"

static Backend *g_b;
static int g_fail, g_checks;

#define FATAL(...)                                                                                                     \
    do {                                                                                                               \
        fprintf(stderr, "FAIL " __VA_ARGS__);                                                                          \
        fputc('\n', stderr);                                                                                           \
        exit(1);                                                                                                       \
    } while (0)

/* ---- helpers ---- */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform [-1, 1) */
{
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static void fill16(uint16_t *p, size_t n, float scale, DType t)
{
    for (size_t i = 0; i < n; i++) p[i] = test_to16(frand() * scale, t);
}
static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) FATAL("out of memory");
    return p;
}
static void *dev_copy(const void *h, size_t bytes)
{
    void *d = g_b->alloc(g_b->ctx, bytes);
    if (!d) FATAL("device alloc of %zu bytes", bytes);
    if (h && bytes) g_b->to_device(g_b->ctx, d, h, bytes);
    return d;
}
static void dev_get(void *h, const void *d, size_t bytes) { g_b->to_host(g_b->ctx, h, d, bytes); }
static void dev_free(void *d) { g_b->free(g_b->ctx, d); }

static int expect_bits16(const char *what, const uint16_t *got, const uint16_t *want, size_t n, long max_ulp, DType t)
{
    int bad = 0;
    g_checks++;
    for (size_t i = 0; i < n; i++) {
        int ok = max_ulp == 0 ? got[i] == want[i] : test_ulp16(got[i], want[i]) <= max_ulp;
        if (ok) continue;
        if (bad < 5)
            fprintf(stderr, "FAIL %s[%zu]: got %#06x (%.8g) want %#06x (%.8g)\n", what, i, got[i], test_from16(got[i], t),
                    want[i], test_from16(want[i], t));
        bad++;
    }
    if (bad) {
        fprintf(stderr, "FAIL %s: %d of %zu differ (allowed %ld ulp)\n", what, bad, n, max_ulp);
        g_fail++;
    }
    return bad;
}

static int expect_close(const char *what, const float *got, const double *want, size_t n, double atol, double rtol)
{
    int bad = 0;
    g_checks++;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d <= atol + rtol * fabs(want[i]) && got[i] == got[i]) continue;
        if (bad < 5) fprintf(stderr, "FAIL %s[%zu]: got %.8g want %.8g\n", what, i, got[i], want[i]);
        bad++;
    }
    if (bad) {
        fprintf(stderr, "FAIL %s: %d of %zu outside atol %g rtol %g\n", what, bad, n, atol, rtol);
        g_fail++;
    }
    return bad;
}

static double atol16(DType t) { return t == DTYPE_BF16 ? 1.6e-2 : 2e-3; }

/* ---- memory ---- */
static void test_memory(void)
{
    char h[1000], back[1000];
    for (int i = 0; i < 1000; i++) h[i] = (char)(i * 31);
    void *d1 = dev_copy(h, sizeof h), *d2 = dev_copy(NULL, sizeof h);
    g_b->to_device(g_b->ctx, d2, d1, sizeof h); /* device -> device */
    g_b->sync(g_b->ctx);
    memset(back, 0, sizeof back);
    dev_get(back, d2, sizeof back);
    g_checks++;
    if (memcmp(h, back, sizeof h)) g_fail++, fprintf(stderr, "FAIL to_device / to_host round trip\n");
    dev_free(d1);
    dev_free(d2);
}

/* ---- embed, add, relu, gelu, gather_rows ---- */
static void test_rows_and_elementwise(DType t)
{
    const int V = 50, D = 72, R = 5, P = 20, off = 2;
    uint16_t *table = xmalloc(2 * V * D), *pt = xmalloc(2 * (P + off) * D), *x = xmalloc(2 * R * D);
    uint16_t *want = xmalloc(2 * R * D);
    int32_t tok[5] = {3, 49, 0, 3, 17}, pos[5] = {0, 1, 2, 19, 7};
    fill16(table, (size_t)V * D, 2.0f, t);
    fill16(pt, (size_t)(P + off) * D, 2.0f, t);
    uint16_t *dtab = dev_copy(table, 2 * V * D), *dpt = dev_copy(pt, 2 * (P + off) * D),
             *dx = dev_copy(NULL, 2 * R * D);
    int32_t *dtok = dev_copy(tok, sizeof tok), *dpos = dev_copy(pos, sizeof pos);
    g_b->embed(g_b->ctx, dx, dtok, NULL, R, dtab, NULL, 0, D, t);
    dev_get(x, dx, 2 * R * D);
    for (int r = 0; r < R; r++) memcpy(want + r * D, table + tok[r] * D, 2 * D);
    expect_bits16("embed", x, want, (size_t)R * D, 0, t);
    g_b->embed(g_b->ctx, dx, dtok, dpos, R, dtab, dpt, off, D, t);
    dev_get(x, dx, 2 * R * D);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < D; i++)
            want[r * D + i] = test_to16(pp8_add(test_from16(table[tok[r] * D + i], t), test_from16(pt[(pos[r] + off) * D + i], t)), t);
    expect_bits16("embed+pos", x, want, (size_t)R * D, 0, t);

    /* add (in place on a), relu, gelu */
    const size_t n = 10007;
    uint16_t *a = xmalloc(2 * n), *b = xmalloc(2 * n), *y = xmalloc(2 * n), *w2 = xmalloc(2 * n);
    fill16(a, n, 8.0f, t);
    fill16(b, n, 8.0f, t);
    a[0] = 0x8000, a[1] = 0x0000, b[0] = 0x8000, b[1] = 0x8000; /* -0 + -0 = -0, +0 + -0 = +0 */
    uint16_t *da = dev_copy(a, 2 * n), *db = dev_copy(b, 2 * n);
    g_b->add(g_b->ctx, da, da, db, n, t);
    dev_get(y, da, 2 * n);
    for (size_t i = 0; i < n; i++) w2[i] = test_to16(pp8_add(test_from16(a[i], t), test_from16(b[i], t)), t);
    expect_bits16("add", y, w2, n, 0, t);

    a[2] = 0x8000, a[3] = 0x7e00, a[4] = 0xfe00, a[5] = 0xfc00; /* -0 stays, NaN, -NaN -> 0, -inf -> 0 */
    g_b->to_device(g_b->ctx, da, a, 2 * n);
    g_b->relu(g_b->ctx, da, n, t);
    dev_get(y, da, 2 * n);
    for (size_t i = 0; i < n; i++) w2[i] = ((a[i] & 0x8000u) && a[i] != 0x8000u) ? 0 : a[i];
    expect_bits16("relu", y, w2, n, 0, t);

    fill16(a, n, 6.0f, t);
    g_b->to_device(g_b->ctx, da, a, 2 * n);
    g_b->gelu(g_b->ctx, da, n, t);
    dev_get(y, da, 2 * n);
    float *gf = xmalloc(sizeof(float) * n);
    double *gw = xmalloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) {
        double v = test_from16(a[i], t);
        gw[i] = v * 0.5 * (1.0 + tanh(0.79788456 * v * (1.0 + 0.044715 * v * v)));
        gf[i] = test_from16(y[i], t);
    }
    expect_close(t == DTYPE_BF16 ? "gelu bf16" : "gelu f16", gf, gw, n, atol16(t), atol16(t));

    /* gather_rows: odd row sizes (byte copies) and 16-byte rows */
    const size_t sizes[2] = {6, 144};
    int32_t idx[4] = {4, 0, 4, 2};
    int32_t *didx = dev_copy(idx, sizeof idx);
    for (int s = 0; s < 2; s++) {
        size_t rb = sizes[s];
        unsigned char *src = xmalloc(5 * rb), *dst = xmalloc(4 * rb), *exp = xmalloc(4 * rb);
        for (size_t i = 0; i < 5 * rb; i++) src[i] = (unsigned char)(i * 7 + 1);
        void *dsrc = dev_copy(src, 5 * rb), *ddst = dev_copy(NULL, 4 * rb);
        g_b->gather_rows(g_b->ctx, ddst, dsrc, didx, 4, rb);
        dev_get(dst, ddst, 4 * rb);
        for (int i = 0; i < 4; i++) memcpy(exp + i * rb, src + idx[i] * rb, rb);
        g_checks++;
        if (memcmp(dst, exp, 4 * rb)) g_fail++, fprintf(stderr, "FAIL gather_rows (%zu-byte rows)\n", rb);
        dev_free(dsrc), dev_free(ddst), free(src), free(dst), free(exp);
    }
    dev_free(didx), dev_free(dtab), dev_free(dpt), dev_free(dx), dev_free(dtok), dev_free(dpos), dev_free(da),
        dev_free(db);
    free(table), free(pt), free(x), free(want), free(a), free(b), free(y), free(w2), free(gf), free(gw);
}

/* ---- layernorm (in place too) ---- */
static void test_layernorm(DType t, int rows, int dim)
{
    uint16_t *x = xmalloc(2 * (size_t)rows * dim), *g = xmalloc(2 * dim), *b = xmalloc(2 * dim);
    uint16_t *y = xmalloc(2 * (size_t)rows * dim);
    fill16(x, (size_t)rows * dim, 3.0f, t);
    for (int i = 0; i < dim; i++) x[i] = test_to16(100.0f + frand(), t); /* a row with a large mean */
    fill16(g, dim, 1.5f, t);
    fill16(b, dim, 0.5f, t);
    uint16_t *dx = dev_copy(x, 2 * (size_t)rows * dim), *dg = dev_copy(g, 2 * dim), *db = dev_copy(b, 2 * dim);
    g_b->layernorm(g_b->ctx, dx, dx, dg, db, rows, dim, 1e-5f, t);
    dev_get(y, dx, 2 * (size_t)rows * dim);
    float *got = xmalloc(sizeof(float) * rows * dim);
    double *want = xmalloc(sizeof(double) * rows * dim);
    for (int r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += test_from16(x[r * dim + i], t);
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (test_from16(x[r * dim + i], t) - mean) * (test_from16(x[r * dim + i], t) - mean);
        var /= dim;
        for (int i = 0; i < dim; i++) {
            want[r * dim + i] =
                (test_from16(x[r * dim + i], t) - mean) / sqrt(var + 1e-5) * test_from16(g[i], t) + test_from16(b[i], t);
            got[r * dim + i] = test_from16(y[r * dim + i], t);
        }
    }
    char what[64];
    snprintf(what, sizeof what, "layernorm %s %dx%d", dtype_name(t), rows, dim);
    expect_close(what, got, want, (size_t)rows * dim, 2 * atol16(t), atol16(t));
    dev_free(dx), dev_free(dg), dev_free(db);
    free(x), free(g), free(b), free(y), free(got), free(want);
}

/* ---- attention: a prompt of 4 rows in slot 0 and a decode row in slot 1 with 5 cached positions ---- */
static void test_attention(DType t, int with_alibi, int E)
{
    const int H = 3, S = 12, slots = 2, R = 5, HE = H * E;
    /* BLOOM-like fused rows [head][q|k|v][E] */
    const int row_stride = 3 * HE, head_stride = 3 * E;
    uint16_t *qkv = xmalloc(2 * (size_t)R * row_stride);
    fill16(qkv, (size_t)R * row_stride, 2.0f, t);
    size_t cache_n = (size_t)slots * H * S * E;
    uint16_t *kc = xmalloc(2 * cache_n), *vc = xmalloc(2 * cache_n);
    fill16(kc, cache_n, 2.0f, t);
    fill16(vc, cache_n, 1.0f, t);
    int32_t slot[5] = {0, 0, 0, 0, 1}, pos[5] = {0, 1, 2, 3, 5};
    float alibi[3] = {0.5f, 0.25f, 0.125f};
    uint16_t *dqkv = dev_copy(qkv, 2 * (size_t)R * row_stride), *dkc = dev_copy(kc, 2 * cache_n);
    uint16_t *dvc = dev_copy(vc, 2 * cache_n), *dout = dev_copy(NULL, 2 * (size_t)R * HE);
    int32_t *dslot = dev_copy(slot, sizeof slot), *dpos = dev_copy(pos, sizeof pos);
    float *dal = dev_copy(alibi, sizeof alibi);
    AttnArgs a = {
        .rows = R,
        .heads = H,
        .head_dim = E,
        .q = dqkv,
        .k = dqkv + E,
        .v = dqkv + 2 * E,
        .row_stride = row_stride,
        .head_stride = head_stride,
        .slot = dslot,
        .pos = dpos,
        .k_cache = dkc,
        .v_cache = dvc,
        .max_seq = S,
        .alibi = with_alibi ? dal : NULL,
        .score_scale = 1.0f / sqrtf((float)E),
        .out = dout,
        .act = t,
    };
    g_b->attention(g_b->ctx, &a);
    /* reference: caches first, then each (row, head) */
    for (int r = 0; r < R; r++)
        for (int h = 0; h < H; h++)
            for (int e = 0; e < E; e++) {
                size_t dst = (((size_t)slot[r] * H + h) * S + pos[r]) * E + e;
                kc[dst] = qkv[r * row_stride + h * head_stride + E + e];
                vc[dst] = qkv[r * row_stride + h * head_stride + 2 * E + e];
            }
    uint16_t *gk = xmalloc(2 * cache_n), *gv = xmalloc(2 * cache_n), *out = xmalloc(2 * (size_t)R * HE);
    dev_get(gk, dkc, 2 * cache_n);
    dev_get(gv, dvc, 2 * cache_n);
    dev_get(out, dout, 2 * (size_t)R * HE);
    expect_bits16("attention k_cache", gk, kc, cache_n, 0, t);
    expect_bits16("attention v_cache", gv, vc, cache_n, 0, t);
    float *got = xmalloc(sizeof(float) * R * HE);
    double *want = xmalloc(sizeof(double) * R * HE), sc[16];
    for (int r = 0; r < R; r++)
        for (int h = 0; h < H; h++) {
            const uint16_t *q = qkv + r * row_stride + h * head_stride;
            const uint16_t *kb = kc + ((size_t)slot[r] * H + h) * S * E, *vb = vc + ((size_t)slot[r] * H + h) * S * E;
            double m = -INFINITY, l = 0;
            for (int j = 0; j <= pos[r]; j++) {
                double d = 0;
                for (int e = 0; e < E; e++) d += (double)test_from16(q[e], t) * test_from16(kb[j * E + e], t);
                sc[j] = (double)a.score_scale * d + (with_alibi ? (double)alibi[h] * j : 0.0);
                if (sc[j] > m) m = sc[j];
            }
            for (int j = 0; j <= pos[r]; j++) l += (sc[j] = exp(sc[j] - m));
            for (int e = 0; e < E; e++) {
                double acc = 0;
                for (int j = 0; j <= pos[r]; j++) acc += sc[j] * test_from16(vb[j * E + e], t);
                want[r * HE + h * E + e] = acc / l;
                got[r * HE + h * E + e] = test_from16(out[r * HE + h * E + e], t);
            }
        }
    char what[64];
    snprintf(what, sizeof what, "attention %s E=%d alibi=%d", dtype_name(t), E, with_alibi);
    expect_close(what, got, want, (size_t)R * HE, atol16(t), atol16(t));
    dev_free(dqkv), dev_free(dkc), dev_free(dvc), dev_free(dout), dev_free(dslot), dev_free(dpos), dev_free(dal);
    free(qkv), free(kc), free(vc), free(gk), free(gv), free(out), free(got), free(want);
}

/* ---- 16-bit linear (fp32 accumulate): within 1 output ulp + the fp32 summation-order error ---- */
static void test_linear16(DType t, DType ydt, int m, int n, int k, int with_bias)
{
    uint16_t *x = xmalloc(2 * (size_t)m * k), *w = xmalloc(2 * (size_t)n * k), *bias = xmalloc(2 * n);
    fill16(x, (size_t)m * k, 1.0f, t);
    fill16(w, (size_t)n * k, 0.5f, t);
    fill16(bias, n, 1.0f, t);
    size_t ysz = dtype_size(ydt) * (size_t)m * n;
    void *yref = xmalloc(ysz), *y = xmalloc(ysz);
    ref_linear16(yref, ydt, x, t, m, k, w, t, with_bias ? bias : NULL, n);
    Linear L = {.wdt = t, .n = n, .k = k};
    L.w = dev_copy(NULL, g_b->linear_bytes(g_b->ctx, t, n, k));
    L.bias = with_bias ? dev_copy(bias, 2 * n) : NULL;
    g_b->linear_pack(g_b->ctx, &L, w, NULL);
    uint16_t *dx = dev_copy(x, 2 * (size_t)m * k);
    void *dy = dev_copy(NULL, ysz);
    g_b->linear(g_b->ctx, &L, dx, m, t, dy, ydt, 0.0f);
    dev_get(y, dy, ysz);
    int bad = 0;
    for (int r = 0; r < m; r++)
        for (int o = 0; o < n; o++) {
            double terms = 0;
            for (int j = 0; j < k; j++) terms += fabs((double)test_from16(x[r * k + j], t) * test_from16(w[o * k + j], t));
            size_t i = (size_t)r * n + o;
            double gv, rv, ulp;
            if (ydt == DTYPE_F32) {
                gv = ((float *)y)[i], rv = ((float *)yref)[i], ulp = 0;
            } else {
                uint16_t rb = ((uint16_t *)yref)[i], gb = ((uint16_t *)y)[i];
                gv = test_from16(gb, ydt), rv = test_from16(rb, ydt);
                ulp = fabs(test_from16((uint16_t)(rb | 1), ydt) - test_from16((uint16_t)(rb & ~1), ydt)); /* one ulp at rb */
            }
            if (fabs(gv - rv) <= ulp + 4e-5 * terms + 1e-30) continue;
            if (bad < 5) fprintf(stderr, "FAIL linear16 [%d,%d]: got %.8g want %.8g\n", r, o, gv, rv);
            bad++;
        }
    g_checks++;
    if (bad) {
        fprintf(stderr, "FAIL linear16 %s -> %s M=%d N=%d K=%d bias=%d: %d differ\n", dtype_name(t), dtype_name(ydt), m,
                n, k, with_bias, bad);
        g_fail++;
    }
    dev_free(L.w), dev_free(dx), dev_free(dy);
    if (L.bias) dev_free(L.bias);
    free(x), free(w), free(bias), free(yref), free(y);
}

/* ---- LLM.int8(): CA/SCA/outlier columns bit-exact, Y against the CPU reference ---- */
static void test_int8(int m, int n, int k, float t, int inject)
{
    uint16_t *x = xmalloc(2 * (size_t)m * k), *w = xmalloc(2 * (size_t)n * k), *bias = xmalloc(2 * n);
    fill16(x, (size_t)m * k, 2.0f, DTYPE_F16);
    fill16(w, (size_t)n * k, 0.1f, DTYPE_F16);
    fill16(bias, n, 0.5f, DTYPE_F16);
    if (inject) { /* outlier features: two columns with large values in some rows, one exactly at 6.0 */
        for (int r = 0; r < m; r += 2) x[(size_t)r * k + (k > 5 ? 5 : 0)] = pp8_f2h(-9.5f + r);
        x[(size_t)(m - 1) * k + k - 1] = pp8_f2h(6.0f);
    }
    if (inject == 2) /* and many, spread over K (every 37th column, in one row each): v2's bitmask is
                      * compacted in segments by one block, its maxima come from 2048-column slices */
        for (int j = 3; j < k; j += 37) x[(size_t)(j % m) * k + j] = pp8_f2h(j % 2 ? 7.25f : -64.0f);
    int8_t *cb = xmalloc((size_t)n * k), *ca = xmalloc((size_t)m * k), *gca = xmalloc((size_t)m * k);
    float *scb = xmalloc(sizeof(float) * n), *sca = xmalloc(sizeof(float) * m), *gsca = xmalloc(sizeof(float) * m);
    int *cols = xmalloc(sizeof(int) * k);
    int32_t *gcols = xmalloc(sizeof(int32_t) * k);
    ref_quantize_weights(cb, scb, w, n, k);
    int nc = ref_outlier_cols(cols, x, m, k, t);
    ref_quantize_acts(ca, sca, x, m, k, cols, nc, t);
    uint16_t *yref = xmalloc(2 * (size_t)m * n), *y = xmalloc(2 * (size_t)m * n);
    ref_int8_linear(yref, x, m, k, cb, scb, bias, n, t);

    char what[128];
    snprintf(what, sizeof what, "int8 M=%d N=%d K=%d t=%g outliers=%d", m, n, k, t, nc);
    /* the activation quantization alone */
    uint16_t *dx = dev_copy(x, 2 * (size_t)m * k);
    int8_t *dca = dev_copy(NULL, (size_t)m * k);
    float *dsca = dev_copy(NULL, sizeof(float) * m);
    int32_t *dcols = dev_copy(NULL, sizeof(int32_t) * k);
    int gnc = backend_cuda_int8_quantize(g_b, dx, m, k, t, dca, dsca, dcols);
    dev_get(gca, dca, (size_t)m * k);
    dev_get(gsca, dsca, sizeof(float) * m);
    dev_get(gcols, dcols, sizeof(int32_t) * k);
    g_checks++;
    int qbad = gnc != nc || memcmp(gca, ca, (size_t)m * k) || memcmp(gsca, sca, sizeof(float) * m);
    for (int i = 0; !qbad && i < nc; i++) qbad = gcols[i] != cols[i];
    if (qbad) g_fail++, fprintf(stderr, "FAIL %s: CA/SCA/outlier columns differ (%d vs %d columns)\n", what, gnc, nc);

    Linear L = {.wdt = DTYPE_I8, .n = n, .k = k};
    L.w = dev_copy(NULL, g_b->linear_bytes(g_b->ctx, DTYPE_I8, n, k));
    L.scb = dev_copy(NULL, sizeof(float) * n);
    L.bias = dev_copy(bias, 2 * n);
    g_b->linear_pack(g_b->ctx, &L, cb, scb);
    uint16_t *dy = dev_copy(NULL, 2 * (size_t)m * n);
    g_b->linear(g_b->ctx, &L, dx, m, DTYPE_F16, dy, DTYPE_F16, t);
    dev_get(y, dy, 2 * (size_t)m * n);
    /* the GEMV sums outliers in the CPU's order; cuBLASLt's order is unspecified: 1 ulp on those rows */
    int exact = cuda_int8_use_gemv(m, n, k) || nc == 0;
    if (exact) {
        strncat(what, " (exact)", sizeof what - strlen(what) - 1);
        expect_bits16(what, y, yref, (size_t)m * n, 0, DTYPE_F16);
    } else {
        int bad = 0;
        g_checks++;
        for (int r = 0; r < m; r++)
            for (int o = 0; o < n; o++) {
                size_t i = (size_t)r * n + o;
                if (test_outlier_close(y[i], yref[i], x + (size_t)r * k, cb + (size_t)o * k, scb[o], cols, nc)) continue;
                if (bad++ < 5)
                    fprintf(stderr, "FAIL %s [%d,%d]: got %.8g want %.8g\n", what, r, o, pp8_h2f(y[i]),
                            pp8_h2f(yref[i]));
            }
        if (bad) g_fail++, fprintf(stderr, "FAIL %s: %d outside 1 ulp / the fp32 reassociation bound\n", what, bad);
    }

    dev_free(dx), dev_free(dca), dev_free(dsca), dev_free(dcols), dev_free(L.w), dev_free(L.scb), dev_free(L.bias);
    dev_free(dy);
    free(x), free(w), free(bias), free(cb), free(ca), free(gca), free(scb), free(sca), free(gsca), free(cols);
    free(gcols), free(yref), free(y);
}

/* finite_mark / fetch / result (issue 17): the first row holding an inf or NaN and the smallest tag of
 * the marks since the last fetch; a fetch clears the record; fp16's inf bits are a finite bf16 */
static void expect_finite(const char *what, int want, int want_row, int want_tag)
{
    int row = -1, tag = -1;
    g_b->sync(g_b->ctx);
    int got = g_b->finite_result(g_b->ctx, &row, &tag);
    g_checks++;
    if (got != want || (want && (row != want_row || tag != want_tag)))
        g_fail++, fprintf(stderr, "FAIL finite %s: got %d row %d tag %d, want %d row %d tag %d\n", what, got, row, tag,
                          want, want_row, want_tag);
}

static void test_finite(void)
{
    enum { R = 5, D = 100 };
    uint16_t h[R * D];
    fill16(h, R * D, 1.0f, DTYPE_F16);
    uint16_t *d = dev_copy(h, sizeof h);
    g_b->finite_mark(g_b->ctx, d, R, D, DTYPE_F16, 3);
    g_b->finite_mark(g_b->ctx, d, R, D, DTYPE_F16, FINITE_TAG_OUTPUT);
    g_b->finite_fetch(g_b->ctx);
    expect_finite("all finite", 0, 0, 0);
    h[4 * D + 99] = 0x7e00; /* NaN in the last row */
    h[3 * D + 17] = 0xfc00; /* -inf in row 3 */
    g_b->to_device(g_b->ctx, d, h, sizeof h);
    g_b->finite_mark(g_b->ctx, d, R, D, DTYPE_F16, 9);
    g_b->finite_mark(g_b->ctx, d + 4 * D, 1, D, DTYPE_F16, 4); /* row 0 of this view: row 4 */
    g_b->finite_mark(g_b->ctx, d, R, D, DTYPE_F16, FINITE_TAG_OUTPUT);
    g_b->finite_fetch(g_b->ctx);
    expect_finite("fp16 inf and NaN", 1, 0, 4);
    g_b->finite_mark(g_b->ctx, d + D, R - 1, D, DTYPE_F16, FINITE_TAG_OUTPUT);
    g_b->finite_fetch(g_b->ctx);
    expect_finite("fp16 after a fetch", 1, 2, FINITE_TAG_OUTPUT);
    g_b->finite_fetch(g_b->ctx);
    expect_finite("nothing marked", 0, 0, 0);
    for (int i = 0; i < R * D; i++) h[i] = i == 3 * D + 17 ? 0x7c00 : 0x3f80; /* finite bf16 values */
    g_b->to_device(g_b->ctx, d, h, sizeof h);
    g_b->finite_mark(g_b->ctx, d, R, D, DTYPE_BF16, 0);
    g_b->finite_fetch(g_b->ctx);
    expect_finite("bf16 0x7c00 is finite", 0, 0, 0);
    h[1 * D] = 0xff80; /* bf16 -inf */
    g_b->to_device(g_b->ctx, d, h, sizeof h);
    g_b->finite_mark(g_b->ctx, d, R, D, DTYPE_BF16, 0);
    g_b->finite_fetch(g_b->ctx);
    expect_finite("bf16 -inf", 1, 1, 0);
    dev_free(d);
}

int main(void)
{
    int ndev = backend_cuda_device_count();
    if (ndev <= 0) {
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
    g_b->reserve(g_b->ctx, 64, 8448, 4096);
    const char *kset = getenv("PP8_CUDA_KERNELS");
    const int v2 = kset && !strcmp(kset, "v2");
    printf("kernel set %s\n", v2 ? "v2" : "v1");

    test_memory();
    test_finite();
    for (int ti = 0; ti < 2; ti++) {
        DType t = ti ? DTYPE_BF16 : DTYPE_F16;
        test_rows_and_elementwise(t);
        test_layernorm(t, 3, 64);
        test_layernorm(t, 2, 1000);
        test_layernorm(t, 8, 5120);  /* v2: 2.5 chunks a thread */
        test_layernorm(t, 1, 14336); /* v2: BLOOM-176B's hidden size, 7 chunks a thread */
        test_layernorm(t, 2, 1004);  /* dim % 8 != 0: v1's kernel in either set */
        for (int al = 0; al < 2; al++) {
            test_attention(t, al, 16);
            test_attention(t, al, 64);
        }
        test_linear16(t, t, 5, 96, 128, 1);
        test_linear16(t, t, 33, 100, 37, 0);
        test_linear16(t, DTYPE_F32, 3, 300, 64, 0);
    }
    test_linear16(DTYPE_F16, DTYPE_F32, 7, 64, 64, 1);
    /* rows <= CUDA_GEMV16_MAX_ROWS with K % 8 == 0: v2's 16-bit GEMV (each row tile, K splits, a last
     * warp with fewer outputs, fp32 output with and without bias) */
    for (int ti = 0; ti < 2; ti++) {
        DType t = ti ? DTYPE_BF16 : DTYPE_F16;
        test_linear16(t, t, 1, 300, 512, 1);
        test_linear16(t, t, 2, 50, 4096, 1);
        test_linear16(t, t, 3, 4096, 64, 0);
        test_linear16(t, t, 4, 96, 2056, 1);
        test_linear16(t, DTYPE_F32, 1, 1030, 1024, 0);
        test_linear16(t, DTYPE_F32, 4, 64, 8192, 1);
    }

    const int rows[] = {1, 2, 3, 4, 5, 8, 9, 33, 64};
    /* (N, K): K % 16 == 0 takes the 4-outputs-per-warp GEMV (N = 50: a last warp with 2 outputs); with
     * K >= 2048 and few outputs it splits K over 4 warps (cuda_int8_gemv_ksplit: 256 x 4096, 50 x 2064,
     * whose last part is shorter) */
    const int shapes[][2] = {{96, 128}, {36, 100}, {19, 37}, {256, 4096}, {50, 256}, {50, 2064}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            test_int8(rows[r], shapes[s][0], shapes[s][1], 6.0f, 1);
            test_int8(rows[r], shapes[s][0], shapes[s][1], 6.0f, 0);
            test_int8(rows[r], shapes[s][0], shapes[s][1], 0.0f, 1);
        }
    /* v2's kernels at sizes of its own: the quantizer over 1-4 slices of 2048 columns with many outlier
     * columns, K % 16 != 0 but % 8 == 0 (v2 quantizer, v1 GEMV), and grids that split K 1, 2 or 4 ways */
    const int shapes2[][2] = {{64, 8192}, {4096, 2048}, {200, 264}, {1000, 6144}, {20, 8200}};
    for (size_t s = 0; s < sizeof shapes2 / sizeof shapes2[0]; s++)
        for (int m = 1; m <= 8; m++) {
            test_int8(m, shapes2[s][0], shapes2[s][1], 6.0f, 2);
            if (m == 1 || m == 8) test_int8(m, shapes2[s][0], shapes2[s][1], 0.0f, 1);
        }
    g_checks++;
    if (strcmp(g_b->linear_path(g_b->ctx, DTYPE_I8, 1), v2 ? "cuda-int8-gemv-v2" : "cuda-int8-gemv-dp4a") ||
        strcmp(g_b->linear_path(g_b->ctx, DTYPE_I8, 9), "cuda-int8-cublaslt-imma") ||
        strcmp(g_b->linear_path(g_b->ctx, DTYPE_BF16, 4), v2 ? "cuda-bf16-gemv-v2" : "cuda-bf16-cublaslt") ||
        strcmp(g_b->linear_path(g_b->ctx, DTYPE_BF16, 5), "cuda-bf16-cublaslt"))
        g_fail++, fprintf(stderr, "FAIL linear_path names (kernel set %s)\n", v2 ? "v2" : "v1");

    backend_destroy(g_b);
    printf("%d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
