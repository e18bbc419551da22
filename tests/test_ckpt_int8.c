/* Checks a `pp8 quantize` output against its source: every block linear became weight I8 / SCB F32 equal
 * to ref_quantize_weights of the fp16-converted original, weight_format U8 0 ([] or [1]), bias and every
 * other tensor byte-identical, nothing extra, and config.json carries quantization_config.
 * Usage: test_ckpt_int8 QUANTIZED_DIR ORIGINAL_DIR THRESHOLD (run by test_quantize.sh). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/cpu_linear.h"
#include "../kernels/numerics.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "test_util.h"

static const char *const BLOOM_LIN[] = {"self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h",
                                        "mlp.dense_4h_to_h", NULL};
static const char *const OPT_LIN[] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2", NULL};

/* "<...>.h.3.<lin>.weight" / "<...>.layers.3.<lin>.weight" for one of this arch's linears */
static int is_linear_weight(const Config *c, const char *name, char *stem, size_t cap)
{
    const char *const *lin = c->arch == ARCH_BLOOM ? BLOOM_LIN : OPT_LIN;
    const char *blk = c->arch == ARCH_BLOOM ? "h." : "layers.";
    size_t n = strlen(name);
    if (n < 8 || strcmp(name + n - 7, ".weight")) return 0;
    const char *b = strstr(name, blk);
    if (!b || (b != name && b[-1] != '.')) return 0;
    for (int i = 0; lin[i]; i++) {
        size_t k = strlen(lin[i]);
        if (n >= k + 7 && strncmp(name + n - 7 - k, lin[i], k) == 0 && name[n - 8 - k] == '.') {
            snprintf(stem, cap, "%.*s", (int)(n - 7), name);
            return 1;
        }
    }
    return 0;
}

static void to_f16(uint16_t *dst, const StTensor *t, size_t n)
{
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        float f;
        if (t->dtype == DTYPE_F16) {
            memcpy(&h, p + 2 * i, 2);
        } else if (t->dtype == DTYPE_BF16) {
            memcpy(&h, p + 2 * i, 2);
            h = pp8_f2h(pp8_bf2f(h));
        } else {
            memcpy(&f, p + 4 * i, 4);
            h = pp8_f2h(f);
        }
        dst[i] = h;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_ckpt_int8 QUANTIZED_DIR ORIGINAL_DIR THRESHOLD\n");
        return 1;
    }
    const char *qdir = argv[1], *odir = argv[2];
    float threshold = strtof(argv[3], NULL);
    Config qc, oc;
    Err e = {{0}};
    CHECK(config_load(&oc, odir, &e) == 0, "%s", e.msg);
    CHECK(config_load(&qc, qdir, &e) == 0, "%s", e.msg);
    CHECK(qc.load_in_8bit && !oc.load_in_8bit, "quantization_config.load_in_8bit %d", qc.load_in_8bit);
    CHECK(qc.int8_threshold == threshold, "llm_int8_threshold %g, expected %g", qc.int8_threshold, threshold);
    CHECK(qc.arch == oc.arch && qc.hidden == oc.hidden && qc.layers == oc.layers && qc.heads == oc.heads &&
              qc.vocab == oc.vocab && qc.ffn == oc.ffn && qc.max_pos == oc.max_pos &&
              qc.torch_dtype == oc.torch_dtype && qc.eos_id == oc.eos_id,
          "config.json keys changed");

    Checkpoint *q, *o;
    CHECK(ckpt_open(&o, odir, &e) == 0, "%s", e.msg);
    CHECK(ckpt_open(&q, qdir, &e) == 0, "%s", e.msg);
    int nlin = 0, ncopy = 0;
    for (int i = 0; i < ckpt_count(o); i++) {
        const StTensor *t = ckpt_tensor(o, i), *u;
        char stem[512];
        if (!is_linear_weight(&oc, t->name, stem, sizeof stem)) {
            /* copied unchanged, under the same name */
            CHECK(ckpt_get(q, &u, (int)t->dtype, t->ndim, t->shape, &e, "%s", t->name) == 0, "%s", e.msg);
            CHECK(strcmp(u->name, t->name) == 0, "renamed %s -> %s", t->name, u->name);
            CHECK(u->bytes == t->bytes && memcmp(u->data, t->data, t->bytes) == 0, "%s differs from the original",
                  t->name);
            ncopy++;
            continue;
        }
        int n = (int)t->shape[0], k = (int)t->shape[1];
        size_t nk = (size_t)n * (size_t)k;
        CHECK(ckpt_get(q, &u, DTYPE_I8, 2, t->shape, &e, "%s", t->name) == 0, "%s", e.msg);
        const StTensor *scb, *fmt;
        CHECK(ckpt_get(q, &scb, DTYPE_F32, 1, (int64_t[]){n}, &e, "%s.SCB", stem) == 0, "%s", e.msg);
        CHECK(ckpt_get(q, &fmt, DTYPE_U8, -1, NULL, &e, "%s.weight_format", stem) == 0, "%s", e.msg);
        CHECK(fmt->ndim == 0 || (fmt->ndim == 1 && fmt->shape[0] == 1), "%s.weight_format shape", stem);
        CHECK(*(const uint8_t *)fmt->data == 0, "%s.weight_format is %d, expected 0 (row)", stem,
              *(const uint8_t *)fmt->data);
        uint16_t *w16 = malloc(nk * 2);
        int8_t *cb = malloc(nk);
        float *s = malloc((size_t)n * 4);
        to_f16(w16, t, nk);
        ref_quantize_weights(cb, s, w16, n, k);
        CHECK(memcmp(cb, u->data, nk) == 0, "%s: int8 weight differs from ref_quantize_weights", t->name);
        CHECK(memcmp(s, scb->data, (size_t)n * 4) == 0, "%s.SCB differs from ref_quantize_weights", stem);
        /* the scales are absmax of the fp16 rows, never zero for these random models */
        for (int r = 0; r < n; r++) CHECK(s[r] > 0 && isfinite(s[r]), "%s.SCB[%d] = %g", stem, r, s[r]);
        free(w16);
        free(cb);
        free(s);
        nlin++;
    }
    /* pp8 maps weights in place: every tensor of the output must start aligned to its element size */
    for (int i = 0; i < ckpt_count(q); i++) {
        const StTensor *t = ckpt_tensor(q, i);
        CHECK((uintptr_t)t->data % dtype_size(t->dtype) == 0, "%s (%s) is misaligned in the file", t->name,
              dtype_name(t->dtype));
    }
    int per_layer = oc.arch == ARCH_BLOOM ? 4 : 6;
    CHECK(nlin == per_layer * oc.layers, "%d linear weights quantized, expected %d", nlin, per_layer * oc.layers);
    CHECK(ckpt_count(q) == ckpt_count(o) + 2 * nlin, "%d tensors in the output, expected %d", ckpt_count(q),
          ckpt_count(o) + 2 * nlin);
    printf("ok   %s: %d linears quantized (weight, SCB, weight_format), %d tensors copied, threshold %g\n", qdir, nlin,
           ncopy, qc.int8_threshold);
    ckpt_close(q);
    ckpt_close(o);
    return 0;
}
