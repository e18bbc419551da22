/* pp8 quantize: a 16-bit Hugging Face checkpoint -> an int8 one in the layout transformers saves for a
 * load_in_8bit model (per linear inside the blocks: weight I8 [out, in], SCB F32 [out], weight_format U8
 * 0 = row-major, bias unchanged; everything else byte-identical), plus config.json with
 * quantization_config. Writes one model.safetensors, holding one tensor in memory at a time. Crash-safe:
 * everything goes into OUT.tmp.<pid>/ (free space checked first, every file and the directory fsynced),
 * which is renamed into place, so OUT is absent, the old one, or the complete new one. Does not shard its
 * output, and runs as a single process (nothing here needs a second rank). */
#define _GNU_SOURCE /* renameat2(RENAME_EXCHANGE): --force swaps the new OUT in with no moment without one */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
    fprintf(f, "usage: pp8 quantize --model DIR --out DIR [--threshold T] [--force]\n\n"
               "Writes an int8 (LLM.int8()) checkpoint in the layout transformers saves for load_in_8bit models:\n"
               "every linear inside the blocks becomes weight (I8 [out, in], per-row absmax), SCB (F32 [out])\n"
               "and weight_format (U8, 0 = row-major); all other tensors are copied unchanged. OUT gets one\n"
               "model.safetensors, config.json with quantization_config, and the tokenizer files.\n\n"
               "  --model DIR      Hugging Face checkpoint (config.json + model.safetensors or shards + index)\n"
               "  --out DIR        output directory: must not exist, or be empty (must differ from --model)\n"
               "  --threshold T    llm_int8_threshold recorded in config.json (default 6.0; 0 = no outlier\n"
               "                   decomposition). Weights quantize the same for every T.\n"
               "  --force          replace a non-empty --out DIR (all of it); the old one stays in place until\n"
               "                   the new one is complete, then is deleted\n\n"
               "Crash-safe: the free space the files need is checked first; everything is written into\n"
               "DIR.tmp.<pid>/ beside DIR, fsynced, and renamed to DIR, so a run that fails, runs out of space or\n"
               "is killed leaves no DIR (or the old one) or a complete one, never a half-written one. A failed\n"
               "run removes its DIR.tmp.<pid>/; one killed with SIGKILL cannot: leftover DIR.tmp.* directories\n"
               "are from killed runs and can be deleted (the next quantize to DIR removes those whose process\n"
               "is gone).\n"
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
    FileOut o;
    if (file_out_open(&o, to, e)) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0 && file_out_write(&o, buf, k)) {
    }
    int bad = ferror(in);
    fclose(in);
    if (bad) {
        file_out_abort(&o);
        return err_set(e, "%s: read error", from);
    }
    return file_out_commit(&o, e);
}

/* config.json's text with quantization_config added; every other key kept as it was. */
static char *quantize_config_text(const Config *c, double threshold, Err *e)
{
    cJSON *root = json_read_file(c->path, e);
    if (!root) return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
    cJSON *q = cJSON_AddObjectToObject(root, "quantization_config");
    char *text = NULL;
    if (q && cJSON_AddTrueToObject(q, "load_in_8bit") && cJSON_AddNumberToObject(q, "llm_int8_threshold", threshold) &&
        cJSON_AddStringToObject(q, "quant_method", "bitsandbytes"))
        text = cJSON_Print(root);
    cJSON_Delete(root);
    char *full = text ? malloc(strlen(text) + 2) : NULL;
    if (full) sprintf(full, "%s\n", text);
    free(text);
    if (!full) err_set(e, "%s: out of memory writing config.json", c->path);
    return full;
}

/* ---- the output directory ---- */

static void quantize_fmt_size(char *buf, size_t cap, unsigned long long b)
{
    if (b >= 1000000000ull)
        snprintf(buf, cap, "%.2f GB", (double)b / 1e9);
    else
        snprintf(buf, cap, "%.1f MB", (double)b / 1e6);
}

/* d is dir or a directory above it */
static bool quantize_holds(const char *d, const char *dir)
{
    size_t n = strlen(d);
    return !strncmp(dir, d, n) && (dir[n] == 0 || dir[n] == '/' || n == 1);
}

/* Whether resolved directory d is, or holds, a directory any of the model's files really live in: a
 * Hugging Face cache snapshot links every file to ../../blobs/, which --force would otherwise delete. */
static bool quantize_holds_model_file(const char *d, const Checkpoint *ck, const char *config_path)
{
    bool hit = false;
    int last = -1;
    for (int i = 0; i <= ckpt_count(ck) && !hit; i++) {
        const char *f = i < ckpt_count(ck) ? NULL : config_path;
        if (!f) {
            int file = ckpt_tensor(ck, i)->file;
            if (file == last) continue;
            f = ckpt_file_path(ck, last = file);
        }
        char *r = realpath(f, NULL);
        if (!r) continue;
        char *slash = strrchr(r, '/');
        if (slash) *slash = 0;
        hit = quantize_holds(d, r[0] ? r : "/");
        free(r);
    }
    return hit;
}

/* Where OUT goes: dst (OUT resolved when it exists, so a symlinked OUT is written through), its parent and
 * name. Refuses a non-directory, the model's own directory or one above it (or one holding the files its
 * links point to), and a non-empty OUT without --force. */
static int quantize_out_check(const char *out, bool force, const char *model_dir, const Checkpoint *ck,
                              const char *config_path, char **dst, Err *e)
{
    char *d = NULL;
    struct stat st;
    if (lstat(out, &st) == 0) {
        if (!(d = realpath(out, NULL)))
            return err_set(e, "--out %s: cannot resolve it (%s); remove it or choose another --out", out,
                           strerror(errno));
        if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) {
            free(d);
            return err_set(e, "--out %s exists and is not a directory: choose another --out", out);
        }
        size_t n = strlen(d);
        bool same = !strcmp(d, model_dir), above = !strncmp(model_dir, d, n) && (n == 1 || model_dir[n] == '/');
        if (!same && !above && quantize_holds_model_file(d, ck, config_path)) {
            free(d);
            return err_set(e, "--out %s holds files of the --model (its links point there, as a Hugging Face cache's "
                              "blobs/): choose another one (--force would delete the model)", out);
        }
        if (same || above) {
            free(d);
            return err_set(e,
                           same ? "--out %s is the --model directory: choose another one (pp8 quantize reads the model "
                                  "while it writes)"
                                : "--out %s holds the --model directory: choose another one (--force would delete the "
                                  "model)",
                           out);
        }
        DIR *dir = opendir(d);
        bool empty = dir != NULL;
        for (struct dirent *de; dir && empty && (de = readdir(dir));)
            empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
        if (dir) closedir(dir);
        if (!empty && !force) {
            free(d);
            return err_set(e,
                           "--out %s is not empty: give --force to replace it (the old one stays until the new one "
                           "is complete) or choose another --out",
                           out);
        }
    } else if (errno == ENOENT) {
        d = strdup(out);
        if (!d) return err_set(e, "out of memory");
        for (size_t n = strlen(d); n > 1 && d[n - 1] == '/'; n--) d[n - 1] = 0;
    } else {
        return err_set(e, "--out %s: %s", out, strerror(errno));
    }
    *dst = d;
    return 0;
}

/* "a/b" -> "a", "b" -> ".", "/b" -> "/" (into a new string) */
static char *quantize_parent(const char *path)
{
    char *p = strdup(path);
    char *s = p ? strrchr(p, '/') : NULL;
    if (p && !s) {
        free(p);
        return strdup(".");
    }
    if (s) s == p ? (void)(p[1] = 0) : (void)(*s = 0);
    return p;
}

/* Removes DIR.tmp.<pid> siblings left by killed runs: the pid is gone and no live run holds the
 * directory's lock (each run holds its own, so a run in another pid namespace is not mistaken). */
static void quantize_remove_stale(const char *parent, const char *base)
{
    DIR *d = opendir(parent);
    if (!d) return;
    size_t bl = strlen(base);
    for (struct dirent *de; (de = readdir(d));) {
        const char *n = de->d_name, *p = n + bl + 5;
        if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp.", 5) != 0 || !isdigit((unsigned char)*p)) continue;
        char *end;
        long pid = strtol(p, &end, 10);
        if (*end || pid <= 0 || (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", parent, n);
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue;
        bool free_to_go = flock(fd, LOCK_EX | LOCK_NB) == 0;
        close(fd);
        if (!free_to_go) continue;
        if (file_remove_tree(path) == 0)
            log_info("quantize: removed %s, left by a killed run", path);
        else
            log_warn("quantize: cannot remove %s, left by a killed run (%s); delete it by hand", path, strerror(errno));
    }
    closedir(d);
}

/* Refuses, before anything is written, when the filesystem lacks the blocks the files need. */
static int quantize_check_space(const char *out, const char *parent, const uint64_t *sizes, int n, Err *e)
{
    struct statvfs fs;
    if (statvfs(parent, &fs) != 0)
        return err_set(e, "--out %s: cannot check the free space of %s (%s)", out, parent, strerror(errno));
    uint64_t blk = fs.f_frsize ? fs.f_frsize : fs.f_bsize ? fs.f_bsize : 4096;
    uint64_t need = blk; /* the directory itself */
    for (int i = 0; i < n; i++) need += (sizes[i] + blk - 1) / blk * blk;
    uint64_t have = (uint64_t)fs.f_bavail * blk;
    if (need <= have) return 0;
    char a[32], b[32];
    quantize_fmt_size(a, sizeof a, need);
    quantize_fmt_size(b, sizeof b, have);
    return err_set(e,
                   "%s: needs %s (%llu bytes) free on the filesystem of %s, has %s (%llu bytes): free space there or "
                   "choose another --out",
                   out, a, (unsigned long long)need, parent, b, (unsigned long long)have);
}

/* tmp (complete and synced) becomes dst. Without --force only an absent or empty dst is replaced
 * (rename(2) refuses a non-empty one, so a run racing another cannot clobber it); with --force a
 * non-empty dst is swapped out atomically and then deleted. */
static void quantize_sync_parent(const char *parent)
{
    Err ignored; /* OUT is in place by now: a failed directory sync costs durability, not the run */
    if (file_fsync_dir(parent, &ignored)) log_warn("quantize: %s", ignored.msg);
}

static int quantize_install(const char *tmp, const char *dst, const char *out, const char *parent, bool force, Err *e)
{
    if (rename(tmp, dst) == 0) {
        quantize_sync_parent(parent);
        return 0;
    }
    if (errno != ENOTEMPTY && errno != EEXIST)
        return err_set(e, "--out %s: cannot rename %s into place (%s)", out, tmp, strerror(errno));
    if (!force)
        return err_set(e, "--out %s became non-empty while quantize ran (another run?): give --force to replace it",
                       out);
    const char *old = tmp;
    char aside[4200];
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_EXCHANGE) != 0) {
        /* a filesystem without RENAME_EXCHANGE: move the old one aside first; a crash in between
         * leaves the old one as DIR.old.<pid> */
        snprintf(aside, sizeof aside, "%s.old.%ld", dst, (long)getpid());
        if (rename(dst, aside) != 0)
            return err_set(e, "--out %s: cannot move the old one aside to %s (%s)", out, aside, strerror(errno));
        if (rename(tmp, dst) != 0) {
            int err = errno;
            rename(aside, dst);
            return err_set(e, "--out %s: cannot rename %s into place (%s)", out, tmp, strerror(err));
        }
        old = aside;
    }
    quantize_sync_parent(parent);
    if (file_remove_tree(old) != 0)
        log_warn("quantize: the old %s is left at %s (%s); delete it by hand", out, old, strerror(errno));
    return 0;
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
    bool force = false;
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
        } else if (!strcmp(a, "--force")) {
            force = true;
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
    char *dst = NULL, *parent = NULL, *tmp = NULL, *config_text = NULL;
    int tmp_fd = -1;
    if (!lin || !qo || !wt || !names || !job.src || !job.kind || !job.layer) {
        rc = err_set(e, "out of memory");
        goto done;
    }
    if ((rc = quantize_find_linears(&c, ck, lin, e))) goto done;

    if ((rc = quantize_out_check(out, force, ckpt_dir(ck), ck, c.path, &dst, e))) goto done;
    struct stat st;
    if (!(parent = quantize_parent(dst))) {
        rc = err_set(e, "out of memory");
        goto done;
    }
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = err_set(e, "--out %s: its parent directory %s does not exist: create it first", out, parent);
        goto done;
    }
    const char *base = strrchr(dst, '/') ? strrchr(dst, '/') + 1 : dst;
    quantize_remove_stale(parent, base);

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

    /* The exact bytes of every file, checked against the free space before anything is written. */
    static const char *const AUX[] = {
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "vocab.json",
        "merges.txt"};
    enum { NAUX = sizeof AUX / sizeof *AUX };
    uint64_t sizes[2 + NAUX] = {0};
    if ((rc = st_write_size(wt, n_out, &sizes[0], e))) goto done;
    if (!(config_text = quantize_config_text(&c, threshold, e))) {
        rc = -1;
        goto done;
    }
    sizes[1] = strlen(config_text);
    for (int a = 0; a < NAUX; a++) {
        char from[4096];
        snprintf(from, sizeof from, "%s/%s", ckpt_dir(ck), AUX[a]);
        if (stat(from, &st) == 0) sizes[2 + a] = (uint64_t)st.st_size;
    }
    if ((rc = quantize_check_space(out, parent, sizes, 2 + NAUX, e))) goto done;

    size_t tl = strlen(dst) + 32;
    if (!(tmp = malloc(tl))) {
        rc = err_set(e, "out of memory");
        goto done;
    }
    snprintf(tmp, tl, "%s.tmp.%ld", dst, (long)getpid());
    if (mkdir(tmp, 0755) != 0) {
        rc = err_set(e, "--out %s: cannot create %s (%s)", out, tmp, strerror(errno));
        free(tmp);
        tmp = NULL; /* not ours: leave it */
        goto done;
    }
    /* held until the end: tells quantize_remove_stale in another run (or pid namespace) that it is live */
    if ((tmp_fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) flock(tmp_fd, LOCK_EX | LOCK_NB);

    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    log_info("quantize: %s (%s, %d layers) -> %s, llm_int8_threshold %g", ckpt_dir(ck), arch_name(c.arch), c.layers,
             out, threshold);
    if ((rc = st_write_stream(path, wt, n_out, quantize_fill, &job, e))) goto done;
    snprintf(path, sizeof path, "%s/config.json", tmp);
    if ((rc = file_write_atomic(path, config_text, (size_t)sizes[1], e))) goto done;
    int copied = 0;
    for (int a = 0; a < NAUX && !rc; a++) {
        char from[4096];
        snprintf(from, sizeof from, "%s/%s", ckpt_dir(ck), AUX[a]);
        snprintf(path, sizeof path, "%s/%s", tmp, AUX[a]);
        rc = quantize_copy_file(from, path, e);
        copied += !rc && access(from, F_OK) == 0;
    }
    if (rc || (rc = file_fsync_dir(tmp, e)) || (rc = quantize_install(tmp, dst, out, parent, force, e))) goto done;
    free(tmp);
    tmp = NULL; /* installed (or swapped and deleted): nothing to clean up */
    log_info("quantize: wrote %s: model.safetensors (%d tensors), config.json and %d tokenizer/generation files", out,
             n_out, copied);

done:
    if (tmp) {
        /* a failed run leaves no trace: OUT as it was, no DIR.tmp.<pid> */
        if (file_remove_tree(tmp) != 0) log_warn("quantize: cannot remove %s (%s); delete it", tmp, strerror(errno));
        size_t k = strlen(e->msg);
        snprintf(e->msg + k, sizeof e->msg - k, "; --out %s left as it was", out);
        free(tmp);
    }
    if (tmp_fd >= 0) close(tmp_fd);
    free(config_text);
    free(parent);
    free(dst);
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
