/* --int8-head (issue 18): the LM head quantized per row at load time and multiplied with LLM.int8()
 * gives, bit for bit, what the scalar reference of DESIGN.md's four steps gives on the same head input,
 * with the head's weights taken from the checkpoint by this test itself (the tied embedding or
 * lm_head.weight, converted to fp16 and quantized with ref_quantize_weights). Checked on the golden
 * checkpoints and on random weights, for the whole sequence's rows at once and row by row (other kernel
 * paths), at thresholds 6 (the default), 0 (no decomposition) and a low one that gives the head outlier
 * columns. Also: the layers' output (the head input) is the same with either head, the logits are not
 * (the flag did something), and the bytes a decode step reads shrink by the head's V x D bytes - 4V.
 *   test_int8_head GOLDEN_DIR CONFIGS_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/cpu_linear.h"
#include "../kernels/numerics.h"
#include "model/config.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "test_util.h"

#define T 12

/* the head's 16-bit weights as fp16 (V, D), read from the checkpoint without the loader; NULL model_dir:
 * the random model's tied embedding (m->embed, the values the head is made of) */
static uint16_t *head_weights(const char *model_dir, const Model *m)
{
    const Config *c = &m->cfg;
    size_t n = (size_t)c->vocab * c->hidden;
    uint16_t *w = test_xmalloc(2 * n);
    if (!model_dir) {
        CHECK(m->embed && c->tie_word_embeddings, "random weights: the head is the tied embedding");
        memcpy(w, m->embed, 2 * n);
        return w;
    }
    Err e = {{0}};
    Checkpoint *ck;
    CHECK(ckpt_open(&ck, model_dir, &e) == 0, "%s", e.msg);
    const StTensor *t = ckpt_find(ck, "lm_head.weight");
    if (!t)
        t = ckpt_find(ck, c->arch == ARCH_BLOOM ? "transformer.word_embeddings.weight"
                                                : "model.decoder.embed_tokens.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == c->vocab && t->shape[1] == c->hidden, "%s: no head tensor", model_dir);
    for (size_t i = 0; i < n; i++) {
        float f = t->dtype == DTYPE_F32   ? ((const float *)t->data)[i]
                  : t->dtype == DTYPE_F16 ? pp8_h2f(((const uint16_t *)t->data)[i])
                                          : pp8_bf2f(((const uint16_t *)t->data)[i]);
        w[i] = pp8_f2h(f); /* LLM.int8() quantizes the fp16 weights (bitsandbytes converts first) */
    }
    ckpt_close(ck);
    return w;
}

/* first index where the fp32 logits differ from the widened fp16 reference, -1 when none */
static long first_diff(const float *got, const uint16_t *ref, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float r = pp8_h2f(ref[i]);
        if (memcmp(&got[i], &r, sizeof r)) return (long)i;
    }
    return -1;
}

static void run(Backend *be, const char *model_dir, const char *config, float t, int want_outliers)
{
    Err e = {{0}};
    Config cfg;
    CHECK(config_load(&cfg, config, &e) == 0, "%s", e.msg);
    const int V = cfg.vocab, D = cfg.hidden;
    int32_t tok[T] = {5, 17, 99, 3, 250, 7, 64, 128, 1, 33, 200, 11}, pos[T], slot[T] = {0}, idx[T];
    for (int i = 0; i < T; i++) pos[i] = i, idx[i] = i, tok[i] %= V;
    const char *what = model_dir ? model_dir : config;

    Model m8, m16;
    RunState rs8, rs16;
    ModelOptions mo = {.model_dir = model_dir, .wdt = DTYPE_I8, .threshold = t, .layer_begin = 0,
                       .layer_end = cfg.layers, .seed = 7, .int8_head = true};
    CHECK(model_load(&m8, &cfg, &mo, be, &e) == 0 && runstate_alloc(&rs8, &m8, T, 1, T, T, &e) == 0, "%s", e.msg);
    mo.int8_head = false;
    CHECK(model_load(&m16, &cfg, &mo, be, &e) == 0 && runstate_alloc(&rs16, &m16, T, 1, T, T, &e) == 0, "%s", e.msg);
    CHECK_ON(m8.lm_head.wdt == DTYPE_I8 && m8.lm_head.scb && m16.lm_head.wdt == DTYPE_F16,
             "%s: head dtypes %d / %d", what, m8.lm_head.wdt, m16.lm_head.wdt);
    /* one decode step reads V*D int8 + 4V SCB instead of 2*V*D fp16 */
    CHECK_ON(m16.weight_bytes_read - m8.weight_bytes_read == (size_t)V * D - 4 * (size_t)V,
             "%s: weight_bytes_read %zu (int8 head) vs %zu (fp16 head)", what, m8.weight_bytes_read,
             m16.weight_bytes_read);

    stage_forward(&m8, &rs8, T, tok, pos, slot, idx, T);
    stage_forward(&m16, &rs16, T, tok, pos, slot, idx, T);
    /* the head input (final LayerNorm of the gathered rows) does not depend on the head */
    CHECK_ON(!memcmp(rs8.sel, rs16.sel, 2 * (size_t)T * D), "%s: head inputs differ between the two heads", what);

    /* the reference: DESIGN.md's four steps on the head, from the checkpoint's own weights */
    uint16_t *w = head_weights(model_dir, &m16);
    int8_t *cb = test_xmalloc((size_t)V * D);
    float *scb = test_xmalloc(sizeof(float) * V);
    ref_quantize_weights(cb, scb, w, V, D);
    uint16_t *ref = test_xmalloc(2 * (size_t)T * V);
    ref_int8_linear(ref, rs8.sel, T, D, cb, scb, NULL, V, t);
    int cols[4096];
    int nout = D <= 4096 ? ref_outlier_cols(cols, rs8.sel, T, D, t) : -1;
    CHECK_ON(want_outliers ? nout > 0 : 1, "%s t=%g: the head input has no outlier column; the test wants some", what,
             t);
    long bad = first_diff(rs8.logits, ref, (size_t)T * V);
    CHECK_ON(bad < 0, "%s t=%g: %d rows at once: logit [%ld, %ld] = %.9g, reference %.9g", what, t, T, bad / V,
             bad % V, bad < 0 ? 0 : rs8.logits[bad], bad < 0 ? 0 : pp8_h2f(ref[bad]));

    /* row by row (a decode step's one row takes other kernel paths; its outlier set is its own) */
    long bad1 = -1;
    uint16_t *y1 = test_xmalloc(2 * (size_t)V), *r1 = test_xmalloc(2 * (size_t)V);
    float *f1 = test_xmalloc(sizeof(float) * V);
    for (int r = 0; r < T && bad1 < 0; r++) {
        const uint16_t *x = rs8.sel + (size_t)r * D;
        be->linear(be->ctx, &m8.lm_head, x, 1, DTYPE_F16, y1, DTYPE_F16, t);
        be->widen(be->ctx, f1, y1, (size_t)V, DTYPE_F16);
        ref_int8_linear(r1, x, 1, D, cb, scb, NULL, V, t);
        if ((bad1 = first_diff(f1, r1, (size_t)V)) >= 0) bad1 += (long)r * V;
    }
    CHECK_ON(bad1 < 0, "%s t=%g: one row at a time: logit [%ld, %ld] differs from the reference", what, t, bad1 / V,
             bad1 % V);

    /* the flag changed the logits (and not into something else entirely: the fp16 head is the yardstick) */
    double maxd = 0, maxr = 0;
    size_t ndiff = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) {
        double d = fabs((double)rs8.logits[i] - rs16.logits[i]);
        ndiff += d != 0;
        if (!(d <= maxd)) maxd = d;
        if (fabs(rs16.logits[i]) > maxr) maxr = fabs(rs16.logits[i]);
    }
    CHECK_ON(ndiff > 0, "%s t=%g: int8 and fp16 heads gave identical logits: the flag changed nothing", what, t);
    CHECK_ON(maxd <= 0.05 * maxr, "%s t=%g: int8 head max|d| %.4g vs max|fp16 head| %.4g (> 5%%)", what, t, maxd, maxr);
    printf("%s %s t=%g: int8 head = LLM.int8() reference bit for bit (%d rows at once: %s, one by one: %s; %d "
           "outlier column(s)); vs fp16 head %zu of %zu logits differ, max|d|/max|ref| %.2e\n",
           bad < 0 && bad1 < 0 ? "ok" : "FAIL", what, t, T, be->linear_path(be->ctx, DTYPE_I8, T),
           be->linear_path(be->ctx, DTYPE_I8, 1), nout, ndiff, (size_t)T * V, maxd / maxr);

    free(w), free(cb), free(scb), free(ref), free(y1), free(r1), free(f1);
    runstate_free(&rs8, &m8);
    runstate_free(&rs16, &m16);
    model_free(&m8);
    model_free(&m16);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_int8_head GOLDEN_DIR CONFIGS_DIR\n");
        return 2;
    }
    char err[256], dir[1024], cfg[1100];
    BackendOptions bo = {.threads = 2, .first_cpu = -1};
    Backend *be = backend_cpu_create(&bo, err, sizeof err);
    CHECK(be, "%s", err);
    /* vocab 256, 256, 256, 5000 (not a multiple of 16: a partial block of packed rows), 3008 */
    const char *models[] = {"bloom-tiny", "opt-tiny", "bloom-bf16-sharded", "textgen/gen-bloom", "textgen/gen-opt"};
    for (int i = 0; i < 5; i++) {
        snprintf(dir, sizeof dir, "%s/%s", argv[1], models[i]);
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        run(be, dir, cfg, 6.0f, 0);
        run(be, dir, cfg, 0.0f, 0);
        /* the head input is a LayerNorm output (|x| of a few units): 1.5 makes outlier columns */
        run(be, dir, cfg, 1.5f, 1);
    }
    snprintf(cfg, sizeof cfg, "%s/bloom-tiny-test.json", argv[2]);
    run(be, NULL, cfg, 6.0f, 0);
    run(be, NULL, cfg, 1.5f, 1);
    backend_destroy(be);
    printf("%d of %d checks failed\n", test_fail_count, test_check_count);
    return test_fail_count ? 1 : 0;
}
