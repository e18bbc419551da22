/* 8-bit checkpoints with something wrong (issue 3): a missing SCB, an SCB of the wrong length, a
 * weight_format other than row, and an 8-bit checkpoint run with --dtype fp16 are all refused by
 * model_load with a message naming the tensor.
 *   test_int8_ckpt_errors QUANTIZED_DIR (made by pp8 quantize) WORK_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "model/model.h"
#include "model/safetensors.h"

static int failures = 0;

/* copies src's tensors into dir/model.safetensors, applying one change, and config.json beside it */
static void write_variant(const Checkpoint *ck, const char *src_dir, const char *dir, const char *drop,
                          const char *shorten, const char *format_one)
{
    char path[2048];
    snprintf(path, sizeof path, "mkdir -p %s && cp %s/config.json %s/", dir, src_dir, dir);
    if (system(path)) exit(1);
    int n = ckpt_count(ck), k = 0;
    StWriteTensor *w = calloc((size_t)n, sizeof *w);
    static uint8_t one = 1;
    for (int i = 0; i < n; i++) {
        const StTensor *t = ckpt_tensor(ck, i);
        if (drop && !strcmp(t->name, drop)) continue;
        w[k] = (StWriteTensor){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
        memcpy(w[k].shape, t->shape, sizeof t->shape);
        if (shorten && !strcmp(t->name, shorten)) w[k].shape[0] -= 1;
        if (format_one && !strcmp(t->name, format_one)) w[k].data = &one;
        k++;
    }
    Err e = {{0}};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (st_write(path, w, k, &e)) {
        printf("FAIL: writing %s: %s\n", path, e.msg);
        exit(1);
    }
    free(w);
}

static void expect_refused(Backend *be, const char *dir, DType wdt, const char *want, const char *what)
{
    Err e = {{0}};
    Config cfg;
    Model m;
    if (config_load(&cfg, dir, &e)) {
        printf("FAIL: %s: config: %s\n", what, e.msg);
        failures++;
        return;
    }
    ModelOptions mo = {.model_dir = dir, .wdt = wdt, .threshold = 6.0f, .layer_begin = 0, .layer_end = cfg.layers};
    int rc = model_load(&m, &cfg, &mo, be, &e);
    if (rc == 0) {
        printf("FAIL: %s: loaded without error\n", what);
        model_free(&m);
        failures++;
    } else if (!strstr(e.msg, want)) {
        printf("FAIL: %s: message lacks '%s': %s\n", what, want, e.msg);
        failures++;
    } else {
        printf("ok: %s: %s\n", what, e.msg);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_int8_ckpt_errors QUANTIZED_DIR WORK_DIR\n");
        return 2;
    }
    Err e = {{0}};
    Checkpoint *ck;
    if (ckpt_open(&ck, argv[1], &e)) {
        printf("FAIL: %s\n", e.msg);
        return 1;
    }
    char err[256], dir[1024];
    BackendOptions bo = {.threads = 1, .first_cpu = -1};
    Backend *be = backend_cpu_create(&bo, err, sizeof err);
    if (!be) {
        printf("FAIL: %s\n", err);
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/no-scb", argv[2]);
    write_variant(ck, argv[1], dir, "transformer.h.0.self_attention.dense.SCB", NULL, NULL);
    expect_refused(be, dir, DTYPE_I8, "SCB", "missing SCB");
    snprintf(dir, sizeof dir, "%s/short-scb", argv[2]);
    write_variant(ck, argv[1], dir, NULL, "transformer.h.1.mlp.dense_h_to_4h.SCB", NULL);
    expect_refused(be, dir, DTYPE_I8, "dense_h_to_4h.SCB", "SCB of the wrong length");
    snprintf(dir, sizeof dir, "%s/format", argv[2]);
    write_variant(ck, argv[1], dir, NULL, NULL, "transformer.h.0.mlp.dense_4h_to_h.weight_format");
    expect_refused(be, dir, DTYPE_I8, "weight_format", "weight_format not row");
    expect_refused(be, argv[1], DTYPE_F16, "--dtype int8", "8-bit checkpoint with --dtype fp16");
    backend_destroy(be);
    ckpt_close(ck);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
