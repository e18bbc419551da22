/* pp8 quantize: a 16-bit Hugging Face checkpoint -> an int8 one in the layout transformers saves for a
 * load_in_8bit model (per linear inside the blocks: weight I8 [out, in], SCB F32 [out], weight_format U8
 * 0 = row-major, bias unchanged; everything else byte-identical), plus config.json with
 * quantization_config. Writes one model.safetensors, holding one tensor in memory at a time. Does not
 * shard its output, and runs as a single process (nothing here needs a second rank). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../kernels/cpu/cpu_linear.h"
#include "../../kernels/numerics.h"
#include "commands.h"
#include "../model/config.h"
#include "../util/file.h"
#include "../util/log.h"
#include "../model/safetensors.h"

/* D hidden, F ffn, L layers */

enum { QK_COPY = 0, QK_WEIGHT, QK_SCB, QK_FORMAT };

/* The linear layers LLM.int8() replaces (transformers' replace_with_bnb_linear: every nn.Linear inside
 * the blocks; the LM head stays 16-bit). out/in in units of D and F: {out_d, out_f, in_d, in_f}. */
typedef struct QLinearName {
    const char *fmt;
    int out_d, out_f, in_d, in_f;
} QLinearName;

static const QLinearName BLOOM_LINEARS[] = {
    {"transformer.h.%d.self_attention.query_key_value.weight", 3, 0, 1, 0},
    {"transformer.h.%d.self_attention.dense.weight", 1, 0, 1, 0},
    {"transformer.h.%d.mlp.dense_h_to_4h.weight", 0, 1, 1, 0},
    {"transformer.h.%d.mlp.dense_4h_to_h.weight", 1, 0, 0, 1},
};
static const QLinearName OPT_LINEARS[] = {
    {"model.decoder.layers.%d.self_attn.q_proj.weight", 1, 0, 1, 0},
    {"model.decoder.layers.%d.self_attn.k_proj.weight", 1, 0, 1, 0},
    {"model.decoder.layers.%d.self_attn.v_proj.weight", 1, 0, 1, 0},
    {"model.decoder.layers.%d.self_attn.out_proj.weight", 1, 0, 1, 0},
    {"model.decoder.layers.%d.fc1.weight", 0, 1, 1, 0},
    {"model.decoder.layers.%d.fc2.weight", 1, 0, 0, 1},
};

/* What st_write_stream's fill callback needs: for output i, its kind and source tensor. */
typedef struct QuantJob {
    const StTensor **src; /* (n_out) */
    unsigned char *kind;  /* (n_out) QK_* */
    int *layer;           /* (n_out) block of a QK_WEIGHT, for progress */
    int layers;
    int logged;    /* last layer reported */
    uint16_t *w16; /* (out, in) the weight in fp16, scratch */
    size_t w16_cap;
    float *scb; /* (out) scratch: ref_quantize_weights' scales when writing a weight */
    size_t scb_cap;
} QuantJob;

static void quantize_usage(FILE *f)
{
    fprintf(f, "usage: pp8 quantize --model DIR --out DIR [--threshold T]\n\n"
               "Writes an int8 (LLM.int8()) checkpoint in the layout transformers saves for load_in_8bit models:\n"
               "every linear inside the blocks becomes weight (I8 [out, in], per-row absmax), SCB (F32 [out])\n"
               "and weight_format (U8, 0 = row-major); all other tensors are copied unchanged. OUT gets one\n"
               "model.safetensors, config.json with quantization_config, and the tokenizer files.\n\n"
               "  --model DIR      Hugging Face checkpoint (config.json + model.safetensors or shards + index)\n"
               "  --out DIR        output directory (created if missing; must differ from --model)\n"
               "  --threshold T    llm_int8_threshold recorded in config.json (default 6.0; 0 = no outlier\n"
               "                   decomposition). Weights quantize the same for every T.\n"
               "Runs as one process (not under mpirun -np N > 1).\n");
}

/* Source weight (any float dtype) -> fp16, as bitsandbytes does with .half() before quantizing. */
static int quantize_to_f16(uint16_t *dst, const StTensor *t, Err *e)
{
    size_t n = (size_t)t->shape[0] * (size_t)t->shape[1];
    const unsigned char *p = t->data;
    /* memcpy per element: nothing in the safetensors format promises aligned tensor data */
    if (t->dtype == DTYPE_F16) {
        memcpy(dst, p, n * 2);
    } else if (t->dtype == DTYPE_BF16) {
        memcpy(dst, p, n * 2);
        for (size_t i = 0; i < n; i++) dst[i] = pp8_f2h(pp8_bf2f(dst[i]));
    } else {
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            dst[i] = pp8_f2h(f);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if ((dst[i] & 0x7c00u) == 0x7c00u)
            return err_set(e,
                           "tensor '%s' element %zu is %s in fp16 (beyond +-65504 or not finite): it cannot be "
                           "quantized as bitsandbytes would",
                           t->name, i, (dst[i] & 0x3ffu) ? "NaN" : "infinite");
    }
    return 0;
}

static int quantize_fill(void *ctx, int i, void *buf, size_t bytes, Err *e)
{
    QuantJob *j = ctx;
    const StTensor *t = j->src[i];
    if (j->kind[i] == QK_FORMAT) {
        memset(buf, 0, bytes); /* 0 = row-major, the only format bitsandbytes >= 0.45 saves */
        return 0;
    }
    if (j->kind[i] != QK_WEIGHT && j->kind[i] != QK_SCB)
        return err_set(e, "internal: tensor '%s' has no data to write", t->name);
    int n = (int)t->shape[0], k = (int)t->shape[1];
    size_t nk = (size_t)n * (size_t)k;
    if (nk > j->w16_cap) {
        free(j->w16);
        j->w16 = malloc(nk * sizeof *j->w16);
        j->w16_cap = j->w16 ? nk : 0;
    }
    if ((size_t)n > j->scb_cap) {
        free(j->scb);
        j->scb = malloc((size_t)n * sizeof *j->scb);
        j->scb_cap = j->scb ? (size_t)n : 0;
    }
    if (!j->w16 || !j->scb) return err_set(e, "out of memory quantizing '%s'", t->name);
    if (quantize_to_f16(j->w16, t, e)) return -1;
    if (j->kind[i] == QK_SCB) {
        /* SCB alone, written apart from its weight (see the output order): the row absmax of the fp16
         * weight, which is exactly what ref_quantize_weights stores; test_quantize compares the two */
        float *scb = buf;
        for (int o = 0; o < n; o++) {
            float m = 0.0f;
            for (int c = 0; c < k; c++) m = fmaxf(m, fabsf(pp8_h2f(j->w16[(size_t)o * k + c])));
            scb[o] = m;
        }
        return 0;
    }
    ref_quantize_weights(buf, j->scb, j->w16, n, k);
    if (j->layer[i] > j->logged) {
        j->logged = j->layer[i];
        int step = j->layers >= 8 ? j->layers / 8 : 1;
        if (j->logged % step == 0 || j->logged == j->layers - 1)
            log_info("quantize: layer %d/%d", j->logged + 1, j->layers);
    }
    return 0;
}

/* One output tensor before the output order is fixed. */
typedef struct QOut {
    StWriteTensor w;
    const StTensor *src; /* the source tensor (for SCB / weight_format: the weight they belong to) */
    unsigned char kind;  /* QK_* */
    int layer;
} QOut;

/* "<prefix>.weight" -> "<prefix><suffix>" */
static char *quantize_name(const char *weight_name, const char *suffix)
{
    size_t n = strlen(weight_name), s = strlen(suffix);
    if (n >= 7 && strcmp(weight_name + n - 7, ".weight") == 0) n -= 7;
    char *p = malloc(n + s + 1);
    if (!p) return NULL;
    memcpy(p, weight_name, n);
    memcpy(p + n, suffix, s + 1);
    return p;
}

static int quantize_copy_file(const char *from, const char *to, Err *e)
{
    FILE *in = fopen(from, "rb");
    if (!in) return 0; /* optional files */
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return err_set(e, "%s: cannot create (%s)", to, strerror(errno));
    }
    char buf[65536];
    size_t k;
    int ok = 1;
    while (ok && (k = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, k, out) == k;
    ok = ok && !ferror(in);
    fclose(in);
    if (fclose(out) != 0) ok = 0;
    return ok ? 0 : err_set(e, "%s: write failed (%s)", to, strerror(errno));
}

/* config.json with quantization_config added; every other key kept as it was. */
static int quantize_write_config(const Config *c, const char *out_dir, double threshold, Err *e)
{
    cJSON *root = json_read_file(c->path, e);
    if (!root) return -1;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
    cJSON *q = cJSON_AddObjectToObject(root, "quantization_config");
    char *text = NULL;
    if (q && cJSON_AddTrueToObject(q, "load_in_8bit") && cJSON_AddNumberToObject(q, "llm_int8_threshold", threshold) &&
        cJSON_AddStringToObject(q, "quant_method", "bitsandbytes"))
        text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return err_set(e, "%s: out of memory writing config.json", out_dir);
    char path[2048], tmp[2100];
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) {
        rc = err_set(e, "%s: cannot create (%s)", tmp, strerror(errno));
    } else {
        size_t n = strlen(text);
        int ok = fwrite(text, 1, n, f) == n && fputc('\n', f) != EOF;
        if (fclose(f) != 0) ok = 0;
        if (!ok || rename(tmp, path) != 0) {
            rc = err_set(e, "%s: write failed (%s)", path, strerror(errno));
            unlink(tmp);
        }
    }
    free(text);
    return rc;
}

/* Marks each block linear's weight in the checkpoint (lin[i] = its layer), checking dtype and shape. */
static int quantize_find_linears(const Config *c, const Checkpoint *ck, int *lin, Err *e)
{
    const QLinearName *names = c->arch == ARCH_BLOOM ? BLOOM_LINEARS : OPT_LINEARS;
    int nn = c->arch == ARCH_BLOOM ? (int)(sizeof BLOOM_LINEARS / sizeof *BLOOM_LINEARS)
                                   : (int)(sizeof OPT_LINEARS / sizeof *OPT_LINEARS);
    for (int i = 0; i < ckpt_count(ck); i++) lin[i] = -1;
    for (int l = 0; l < c->layers; l++) {
        for (int m = 0; m < nn; m++) {
            int64_t shape[2] = {(int64_t)names[m].out_d * c->hidden + (int64_t)names[m].out_f * c->ffn,
                                (int64_t)names[m].in_d * c->hidden + (int64_t)names[m].in_f * c->ffn};
            const StTensor *t;
            if (ckpt_get(ck, &t, -1, 2, shape, e, names[m].fmt, l)) return -1;
            lin[t - ckpt_tensor(ck, 0)] = l;
        }
    }
    /* a block beyond config.json's count would be copied unquantized: refuse instead */
    char extra[256];
    snprintf(extra, sizeof extra, names[0].fmt, c->layers);
    if (ckpt_find(ck, extra))
        return err_set(e,
                       "checkpoint %s has tensor '%s' but %s says %d layers: checkpoint and config.json do not "
                       "match",
                       ckpt_dir(ck), extra, c->path, c->layers);
    for (int i = 0; i < ckpt_count(ck); i++) {
        const char *n = ckpt_tensor(ck, i)->name;
        size_t len = strlen(n);
        if (len >= 4 && strcmp(n + len - 4, ".SCB") == 0)
            return err_set(e, "checkpoint %s already holds int8 weights ('%s'): give pp8 quantize the 16-bit model",
                           ckpt_dir(ck), n);
    }
    return 0;
}

int cmd_quantize(int argc, char **argv, Err *e)
{
    const char *model = NULL, *out = NULL;
    double threshold = PP8_INT8_THRESHOLD_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            quantize_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(a, "--out")) {
            if (!(out = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(a, "--threshold")) {
            if (!(v = cli_value(argc, argv, &i, e)) || cli_double(v, "--threshold", -INFINITY, INFINITY, &threshold, e))
                return -1;
            if (threshold < 0)
                return err_set(e,
                               "--threshold %s: must be >= 0 (6.0 is bitsandbytes' default; 0 turns outlier "
                               "decomposition off)",
                               v);
        } else {
            return err_set(e, "unknown flag '%s' (pp8 quantize --help)", a);
        }
    }
    if (!model || !out) return err_set(e, "--model DIR and --out DIR are required (pp8 quantize --help)");
    if (log_size() > 1) return err_set(e, "pp8 quantize runs as one process; run it without mpirun (or with -np 1)");

    Config c;
    if (config_load(&c, model, e)) return -1;
    if (c.load_in_8bit)
        return err_set(e, "%s: quantization_config.load_in_8bit is already true: give pp8 quantize the 16-bit model",
                       c.path);
    Checkpoint *ck = NULL;
    if (ckpt_open(&ck, model, e)) return -1;

    int rc = 0, n_in = ckpt_count(ck), n_out = 0, n_names = 0;
    size_t cap = (size_t)n_in * 3 + 1;
    int *lin = malloc((size_t)(n_in + 1) * sizeof *lin);
    QOut *qo = calloc(cap, sizeof *qo);
    StWriteTensor *wt = calloc(cap, sizeof *wt);
    char **names = calloc((size_t)n_in * 2 + 1, sizeof *names);
    QuantJob job = {.layers = c.layers, .logged = -1};
    job.src = calloc(cap, sizeof *job.src);
    job.kind = calloc(cap, 1);
    job.layer = calloc(cap, sizeof *job.layer);
    char out_file[2048];
    snprintf(out_file, sizeof out_file, "%s/model.safetensors", out);
    if (!lin || !qo || !wt || !names || !job.src || !job.kind || !job.layer) {
        rc = err_set(e, "out of memory");
        goto done;
    }
    if ((rc = quantize_find_linears(&c, ck, lin, e))) goto done;

    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        rc = err_set(e, "%s: cannot create directory (%s)", out, strerror(errno));
        goto done;
    }
    char *out_full = realpath(out, NULL);
    int same = out_full && !strcmp(out_full, ckpt_dir(ck));
    free(out_full);
    if (same) {
        rc = err_set(e,
                     "--out %s is the --model directory: choose another one (pp8 quantize reads the model while it "
                     "writes)",
                     out);
        goto done;
    }

    /* What to write, in the source's order; names stay as stored (with or without the prefix). */
    int nq = 0;
    for (int i = 0; i < n_in; i++) {
        const StTensor *t = ckpt_tensor(ck, i);
        QOut *q = &qo[nq++];
        *q = (QOut){.w = {.name = t->name, .ndim = t->ndim}, .src = t, .layer = lin[i]};
        memcpy(q->w.shape, t->shape, sizeof q->w.shape);
        if (lin[i] < 0) {
            q->w.dtype = t->dtype;
            q->w.data = t->data;
            q->kind = QK_COPY;
            continue;
        }
        q->w.dtype = DTYPE_I8;
        q->kind = QK_WEIGHT;
        char *scb = quantize_name(t->name, ".SCB"), *fmt = quantize_name(t->name, ".weight_format");
        if (scb) names[n_names++] = scb;
        if (fmt) names[n_names++] = fmt;
        if (!scb || !fmt) {
            rc = err_set(e, "out of memory");
            goto done;
        }
        qo[nq++] = (QOut){.w = {.name = scb, .dtype = DTYPE_F32, .ndim = 1, .shape = {t->shape[0]}},
                          .src = t,
                          .kind = QK_SCB,
                          .layer = lin[i]};
        /* a 0-dim tensor, as torch.tensor(0, dtype=torch.uint8) in Linear8bitLt._save_to_state_dict */
        qo[nq++] =
            (QOut){.w = {.name = fmt, .dtype = DTYPE_U8, .ndim = 0}, .src = t, .kind = QK_FORMAT, .layer = lin[i]};
    }
    /* Written widest element first (as safetensors' own serializer sorts by alignment): the format has no
     * padding between tensors, so a 1-byte weight_format before a 16-bit bias would leave every later
     * tensor's data misaligned in the mmap. */
    for (size_t width = 8; width >= 1; width /= 2) {
        for (int i = 0; i < nq; i++) {
            if (dtype_size(qo[i].w.dtype) != width) continue;
            wt[n_out] = qo[i].w;
            job.src[n_out] = qo[i].src;
            job.kind[n_out] = qo[i].kind;
            job.layer[n_out++] = qo[i].layer;
        }
    }

    log_info("quantize: %s (%s, %d layers) -> %s, llm_int8_threshold %g", ckpt_dir(ck), arch_name(c.arch), c.layers,
             out_file, threshold);
    if ((rc = st_write_stream(out_file, wt, n_out, quantize_fill, &job, e))) goto done;
    if ((rc = quantize_write_config(&c, out, threshold, e))) goto done;
    static const char *const AUX[] = {
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "vocab.json",
        "merges.txt"};
    for (size_t a = 0; a < sizeof AUX / sizeof *AUX && !rc; a++) {
        char from[2048], to[2048];
        snprintf(from, sizeof from, "%s/%s", ckpt_dir(ck), AUX[a]);
        snprintf(to, sizeof to, "%s/%s", out, AUX[a]);
        rc = quantize_copy_file(from, to, e);
    }
    if (!rc) log_info("quantize: wrote %s (%d tensors) and config.json", out_file, n_out);

done:
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    free(wt);
    free(qo);
    free(lin);
    free(job.src);
    free(job.kind);
    free(job.layer);
    free(job.w16);
    free(job.scb);
    ckpt_close(ck);
    return rc;
}
