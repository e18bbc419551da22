/* `pp8 plan`: the layer split, memory per rank and the minimum rank/GPU count for a config, per dtype and
 * batch, with the modelled time next to published measurements for BLOOM-176B (shared/ANCHORS.md).
 * Needs no weights and no mpirun; every rank computes the same plan, rank 0 alone prints and writes JSON.
 * It does not measure anything: `pp8 bench` does. Flags as in DESIGN.md "Command line". */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../parallel/control.h"
#include "commands.h"
#include "../model/config.h"
#include "../util/log.h"
#include "../engine/plan.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MAX_BATCHES 32
#define MAX_PLANS (3 * MAX_BATCHES)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pp8 plan (--config C | --model DIR) [--dtype int8|fp16|bf16] [--int8-head] [--compare]\n"
            "                [--gpu a100-40g|a100-80g|h100-80g|h200-141g | --mem-per-rank GiB] [--ranks N|auto]\n"
            "                [--batch B[,B...]] [--prompt-len N] [--gen N] [--json FILE]\n\n"
            "Layer split, memory per rank (weights, KV cache, workspace, reserve) and the minimum rank/GPU count\n"
            "that fits, from a config alone (no weights, no mpirun needed). Times are a roofline model, not a\n"
            "measurement.\n\n"
            "  --config C          model config.json (configs/bloom-176b.json, ...); --model DIR reads DIR/config.json\n"
            "  --dtype D           int8 (LLM.int8() linears, default), fp16 or bf16\n"
            "  --int8-head         int8 plans with the LM head in int8 too (V x D int8 + V SCB instead of V x D\n"
            "                      fp16, its product at the int8 rate); needs --dtype int8 or --compare, where it\n"
            "                      applies to the int8 plans (default: fp16 head, as transformers keeps it)\n"
            "  --compare           bf16, fp16 and int8 side by side, then each per-rank breakdown\n"
            "  --gpu NAME          accelerator preset from configs/accel/NAME.json (a100-40g, a100-80g, h100-80g, h200-141g)\n"
            "  --mem-per-rank GiB  memory of one (CPU) rank; default without --gpu: this node's MemTotal / ranks on it\n"
            "  --ranks N|auto      exactly N ranks, or the minimum that fits (default auto)\n"
            "  --batch B[,B...]    sequences per batch (default 1,8,32)\n"
            "  --prompt-len N      prompt tokens per sequence (default 16)\n"
            "  --gen N             new tokens per sequence (default 100); the KV cache holds prompt + gen\n"
            "  --json FILE         also write the plans as JSON (DESIGN.md \"Benchmark output\")\n\n"
            "Exit status 0 when the plans were computed, whether or not they fit (the output says which term\n"
            "prevents a fit); non-zero for bad input.\n");
}

typedef struct {
    const char *config_path;
    bool is_model_dir;
    DType dtype;
    bool compare;
    bool int8_head;
    const char *gpu;
    double mem_per_rank_gib; /* 0 = not given */
    int ranks;               /* 0 = auto */
    int batches[MAX_BATCHES], nbatches;
    int prompt_len, gen;
    const char *json_path;
} PlanArgs;

static int parse_dtype(const char *s, DType *out, Err *e)
{
    if (!strcmp(s, "int8")) *out = DTYPE_I8;
    else if (!strcmp(s, "fp16")) *out = DTYPE_F16;
    else if (!strcmp(s, "bf16")) *out = DTYPE_BF16;
    else return err_set(e, "--dtype %s: expected int8, fp16 or bf16", s);
    return 0;
}

/* returns 1 when --help was asked for */
static int parse_args(int argc, char **argv, PlanArgs *a, Err *e)
{
    memset(a, 0, sizeof *a);
    a->dtype = DTYPE_I8;
    a->batches[0] = 1, a->batches[1] = 8, a->batches[2] = 32, a->nbatches = 3; /* the seed's workload */
    a->prompt_len = 16;
    a->gen = 100;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) return 1;
        if (!strcmp(f, "--compare")) {
            a->compare = true;
            continue;
        }
        if (!strcmp(f, "--int8-head")) {
            a->int8_head = true;
            continue;
        }
        if (strncmp(f, "--", 2) != 0 || !strcmp(f, "--"))
            return err_set(e, "unexpected argument '%s' (pp8 plan --help)", f);
        if (!strcmp(f, "--config") || !strcmp(f, "--model") || !strcmp(f, "--dtype") || !strcmp(f, "--gpu") ||
            !strcmp(f, "--mem-per-rank") || !strcmp(f, "--ranks") || !strcmp(f, "--batch") ||
            !strcmp(f, "--prompt-len") || !strcmp(f, "--gen") || !strcmp(f, "--json")) {
            if (!(v = cli_value(argc, argv, &i, e))) return -1;
        } else {
            return err_set(e, "unknown option '%s' for pp8 plan (pp8 plan --help)", f);
        }
        if (!strcmp(f, "--config") || !strcmp(f, "--model")) {
            if (a->config_path) return err_set(e, "%s: give one of --config or --model, once", f);
            a->config_path = v;
            a->is_model_dir = !strcmp(f, "--model");
        } else if (!strcmp(f, "--dtype")) {
            if (parse_dtype(v, &a->dtype, e)) return -1;
        } else if (!strcmp(f, "--gpu")) {
            a->gpu = v;
        } else if (!strcmp(f, "--mem-per-rank")) {
            char *end;
            double g = strtod(v, &end);
            if (end == v || *end || !isfinite(g) || g <= 0)
                return err_set(e, "--mem-per-rank %s: memory per rank must be a positive number of GiB (e.g. 80)", v);
            a->mem_per_rank_gib = g;
        } else if (!strcmp(f, "--ranks")) {
            if (!strcmp(v, "auto")) a->ranks = 0;
            else if (cli_int(v, "--ranks", 1, 1 << 20, &a->ranks, e)) return err_set(e, "--ranks %s: expected a positive integer or auto", v);
        } else if (!strcmp(f, "--batch")) {
            if ((a->nbatches = cli_int_list(v, "--batch", 1, 1 << 20, a->batches, MAX_BATCHES, e)) < 0) return -1;
        } else if (!strcmp(f, "--prompt-len")) {
            if (cli_int(v, "--prompt-len", 1, 1 << 24, &a->prompt_len, e)) return -1;
        } else if (!strcmp(f, "--gen")) {
            if (cli_int(v, "--gen", 0, 1 << 24, &a->gen, e)) return -1;
        } else if (!strcmp(f, "--json")) {
            a->json_path = v;
        }
    }
    if (!a->config_path) return err_set(e, "pp8 plan needs --config C or --model DIR (pp8 plan --help)");
    if (a->int8_head && a->dtype != DTYPE_I8 && !a->compare)
        return err_set(e, "--int8-head plans an int8 LM head, which needs --dtype int8 (got --dtype %s): drop "
                          "--int8-head, use --dtype int8, or --compare", plan_dtype_name(a->dtype));
    if (a->gpu && a->mem_per_rank_gib > 0)
        return err_set(e, "--gpu %s and --mem-per-rank: give one (the preset fixes the memory per GPU)", a->gpu);
    return 0;
}

/* MemTotal of this node in bytes, or 0 */
static double node_mem_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    double kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %lf kB", &kib) == 1) break;
    fclose(f);
    return kib * 1024.0;
}

static int device_from_args(const PlanArgs *a, Device *d, Err *e)
{
    if (a->gpu) return device_preset(d, a->gpu, e);
    int local_rank = 0, local_size = 1;
    ctl_node_info(&local_rank, &local_size);
    if (local_size < 1) local_size = 1;
    double mem = a->mem_per_rank_gib > 0 ? a->mem_per_rank_gib * GIB : node_mem_bytes() / local_size;
    if (!(mem > 0)) return err_set(e, "cannot read MemTotal from /proc/meminfo; give --mem-per-rank GiB or --gpu");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = (int)(cpus > 0 ? cpus : 1) / local_size;
    if (threads < 1) threads = 1;
    /* ~10 GB/s of practical read bandwidth per core (shared/ANCHORS.md: 11-12 GB/s on one core, 20-23 on
     * two), capped at a socket's worth; an assumption until `pp8 bench` measures it */
    double read_gbs = fmin(10.0 * threads, 300.0);
    device_cpu(d, mem, read_gbs, threads);
    return 0;
}

/* BLOOM-176B on A100, shared/ANCHORS.md "GPU anchors": ms per generated token at batch 1 / 8 / 32
 * (< 0 = out of memory, 0 = not published) */
typedef struct {
    const char *gpu;
    const char *label; /* as the source names the GPU */
    DType dtype;
    int gpus;
    double ms[3];
    const char *source;
} Published;

static const Published PUBLISHED[] = {
    {"a100-80g", "A100-80GB", DTYPE_BF16, 8, {239, 32, 9.9}, "HF LLM.int8() blog, accelerate device_map, one GPU busy at a time"},
    {"a100-80g", "A100-80GB", DTYPE_I8, 4, {282, 37.5, 10.2}, "HF LLM.int8() blog, accelerate device_map, one GPU busy at a time"},
    {"a100-80g", "A100-80GB", DTYPE_I8, 4, {284, 40.1, -1}, "transformers-bloom-inference, accelerate, greedy 100 tokens"},
    {"a100-40g", "A100-40GB", DTYPE_BF16, 14, {285, 36.5, 10.4}, "HF LLM.int8() blog, accelerate device_map"},
    {"a100-40g", "A100-40GB", DTYPE_I8, 5, {367, 46.4, -1}, "HF LLM.int8() blog, accelerate device_map"},
};
static const int PUBLISHED_BATCH[3] = {1, 8, 32};

static void print_published(FILE *f, const Config *c, const PlanArgs *a, const Device *d)
{
    bool any = false;
    for (size_t i = 0; i < sizeof PUBLISHED / sizeof PUBLISHED[0]; i++) {
        const Published *pb = &PUBLISHED[i];
        if (strcmp(pb->gpu, d->name) != 0) continue;
        if (!any)
            fprintf(f, "\nBLOOM-176B, ms per token at batch 1 / 8 / 32: published measurement (shared/ANCHORS.md) vs "
                       "pp8 modelled (roofline model at prompt %d + gen %d, not a measurement)\n",
                    a->prompt_len, a->gen);
        any = true;
        fprintf(f, "  %s %dx%s published measurement (%s):", plan_dtype_name(pb->dtype), pb->gpus, pb->label,
                pb->source);
        for (int b = 0; b < 3; b++) {
            if (pb->ms[b] < 0) fprintf(f, "%s out of memory", b ? " /" : "");
            else fprintf(f, "%s %g", b ? " /" : "", pb->ms[b]);
        }
        fprintf(f, "\n");
        char foot[600] = "";
        for (int sched = 0; sched < 3; sched++) {
            /* 0: the same GPU count, naive (what accelerate runs); 1: same count, pipelined;
             * 2: pp8's minimum count, pipelined */
            const char *label = sched == 0 ? "pp8 modelled, same GPU count, naive schedule (accelerate's)"
                                : sched == 1 ? "pp8 modelled, same GPU count, pipelined (default M)"
                                             : "pp8 modelled, minimum GPU count, pipelined (default M)";
            fprintf(f, "  %*s %-57s:", (int)strlen(plan_dtype_name(pb->dtype)), "", label);
            for (int b = 0; b < 3; b++) {
                /* the published runs kept the LM head fp16, so the comparison does too */
                PlanRequest r = {pb->dtype, PUBLISHED_BATCH[b], a->prompt_len, a->gen, sched == 2 ? 0 : pb->gpus,
                                 0, *d, 0, false, 0};
                Plan p;
                Err e2 = {{0}};
                if (plan_compute(c, &r, &p, &e2) != 0) {
                    fprintf(f, "%s error", b ? " /" : "");
                    continue;
                }
                double ms = sched == 0 ? p.decode_ms_naive / r.batch : p.modelled_ms_per_token;
                if (!p.fits) {
                    fprintf(f, "%s does not fit", b ? " /" : "");
                    if (!foot[0]) snprintf(foot, sizeof foot, "batch %d on %d: %s", r.batch, p.ranks, p.why);
                } else if (sched == 2) {
                    fprintf(f, "%s %.1f (%d GPUs)", b ? " /" : "", ms, p.ranks);
                } else {
                    fprintf(f, "%s %.1f", b ? " /" : "", ms);
                }
                plan_free(&p);
            }
            fprintf(f, "\n");
        }
        if (foot[0]) fprintf(f, "  %*s does not fit: %s\n", (int)strlen(plan_dtype_name(pb->dtype)), "", foot);
    }
    if (!any)
        fprintf(f, "\nBLOOM-176B: no published measurement on %s in shared/ANCHORS.md to compare with\n", d->name);
    else
        fprintf(f, "  (the roofline model reads every weight at full HBM bandwidth; the published runs include "
                   "kernel and framework overheads the model leaves out)\n");
}

static cJSON *plan_to_json(const Plan *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dtype", plan_dtype_name(p->dtype));
    cJSON_AddStringToObject(o, "lm_head", p->int8_head ? "int8" : p->dtype == DTYPE_BF16 ? "bf16" : "fp16");
    cJSON_AddNumberToObject(o, "batch", p->batch);
    cJSON_AddNumberToObject(o, "ranks", p->ranks);
    cJSON_AddBoolToObject(o, "fits", p->fits);
    if (!p->fits) cJSON_AddStringToObject(o, "why", p->why);
    else if (p->why_not_fewer[0]) cJSON_AddStringToObject(o, "why_not_fewer", p->why_not_fewer);
    cJSON_AddNumberToObject(o, "budget_bytes", p->budget_bytes);
    cJSON *st = cJSON_AddArrayToObject(o, "stages");
    for (int s = 0; s < p->nstages; s++) {
        const PlanStage *g = &p->stages[s];
        cJSON *so = cJSON_CreateObject();
        cJSON_AddNumberToObject(so, "rank", g->rank);
        cJSON_AddNumberToObject(so, "layer_begin", g->layer_begin);
        cJSON_AddNumberToObject(so, "layer_end", g->layer_end);
        cJSON *b = cJSON_AddObjectToObject(so, "bytes");
        cJSON_AddNumberToObject(b, "weights", g->bytes.weights);
        cJSON_AddNumberToObject(b, "kv_cache", g->bytes.kv_cache);
        cJSON_AddNumberToObject(b, "workspace", g->bytes.workspace);
        cJSON_AddNumberToObject(b, "reserve", g->bytes.reserve);
        cJSON_AddNumberToObject(b, "total", g->bytes.total);
        cJSON_AddNumberToObject(so, "modelled_ms", g->modelled_ms);
        cJSON_AddItemToArray(st, so);
    }
    cJSON_AddNumberToObject(o, "modelled_ms_per_token", p->modelled_ms_per_token);
    cJSON *m = cJSON_AddObjectToObject(o, "modelled");
    cJSON_AddNumberToObject(m, "micro_batches", p->micro_batches);
    cJSON_AddNumberToObject(m, "decode_step_ms_naive", p->decode_ms_naive);
    cJSON_AddNumberToObject(m, "decode_step_ms_pipelined", p->decode_ms_pipelined);
    cJSON_AddNumberToObject(m, "prefill_ms_naive", p->prefill_ms_naive);
    cJSON_AddNumberToObject(m, "prefill_ms_pipelined", p->prefill_ms_pipelined);
    cJSON_AddBoolToObject(m, "decode_weight_bound", p->weight_bound);
    return o;
}

static int write_json(const char *path, const Config *c, const PlanArgs *a, const Device *d, const Plan *plans,
                      int nplans, Err *e)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", c->name);
    cJSON_AddNumberToObject(root, "params", config_params(c));
    if (a->gpu) cJSON_AddStringToObject(root, "gpu", d->name);
    else cJSON_AddNumberToObject(root, "mem_per_rank_bytes", d->mem_bytes);
    cJSON *w = cJSON_AddObjectToObject(root, "workload");
    cJSON_AddItemToObject(w, "batch", cJSON_CreateIntArray(a->batches, a->nbatches));
    cJSON_AddNumberToObject(w, "prompt_len", a->prompt_len);
    cJSON_AddNumberToObject(w, "gen", a->gen);
    cJSON *arr = cJSON_AddArrayToObject(root, "plans");
    for (int i = 0; i < nplans; i++) cJSON_AddItemToArray(arr, plan_to_json(&plans[i]));
    return cli_write_json(path, root, e);
}

int cmd_plan(int argc, char **argv, Err *e)
{
    PlanArgs a;
    int prc = parse_args(argc, argv, &a, e);
    if (prc == 1) {
        if (log_rank() == 0) usage(stdout);
        return 0;
    }
    if (prc) return -1;

    Config c;
    if (config_load(&c, a.config_path, e)) return -1;
    Device dev;
    if (device_from_args(&a, &dev, e)) return -1;

    DType dtypes[3] = {a.dtype};
    int ndt = 1;
    if (a.compare) {
        dtypes[0] = DTYPE_BF16, dtypes[1] = DTYPE_F16, dtypes[2] = DTYPE_I8;
        ndt = 3;
    }
    Plan plans[MAX_PLANS];
    PlanRequest reqs[MAX_PLANS];
    int np = 0, rc = 0;
    for (int di = 0; di < ndt && rc == 0; di++)
        for (int bi = 0; bi < a.nbatches && rc == 0; bi++) {
            reqs[np] = (PlanRequest){dtypes[di], a.batches[bi], a.prompt_len, a.gen, a.ranks, 0, dev, 0,
                                     a.int8_head && dtypes[di] == DTYPE_I8, 0};
            if (plan_compute(&c, &reqs[np], &plans[np], e)) rc = -1;
            else np++;
        }

    if (rc == 0 && log_rank() == 0) {
        FILE *f = stdout;
        const char *unit = dev.kind == DEVICE_GPU ? "GPUs" : "ranks";
        fprintf(f, "pp8 plan: %s (%s: D %d, L %d, H %d, F %d, V %d, %.2f B parameters%s)\n", c.name,
                arch_name(c.arch), c.hidden, c.layers, c.heads, c.ffn, c.vocab, config_params(&c) / 1e9,
                c.tie_word_embeddings ? ", tied embedding/LM head" : "");
        if (dev.kind == DEVICE_GPU)
            fprintf(f, "device: %s = %s: %.2f GiB per GPU, %.0f GB/s, int8 %.0f TOPS, fp16/bf16 %.0f TFLOPS, "
                       "link %.0f GB/s per direction (%d per node, %.0f GB/s between nodes)\n",
                    dev.name, dev.description, dev.mem_bytes / GIB, dev.mem_bw_gbs, dev.int8_tops, dev.fp16_tflops,
                    dev.link_gbs, dev.ranks_per_node, dev.net_gbs);
        else
            fprintf(f, "device: %s: %.2f GiB per rank (%s), %.0f GB/s read assumed, int8 %.1f TOP/s, bf16 %.1f "
                       "TFLOP/s, fp16 %.2f TFLOP/s\n",
                    dev.description, dev.mem_bytes / GIB,
                    a.mem_per_rank_gib > 0 ? "--mem-per-rank" : "MemTotal / ranks on this node", dev.mem_bw_gbs,
                    dev.int8_tops, dev.bf16_tflops, dev.fp16_tflops);
        fprintf(f, "reserve per rank: %s (%s)\n", dev.reserve_what, dev.notes);
        fprintf(f, "workload: prompt %d + gen %d tokens per sequence; ranks %s\n", a.prompt_len, a.gen,
                a.ranks ? "fixed" : "auto (the minimum that fits)");
        fprintf(f, "LM head: %s\n\n", a.int8_head ? "int8 in the int8 plans (--int8-head), 16-bit otherwise"
                                                    : "16-bit (fp16, bf16 in bf16 plans; --int8-head: int8)");
        fprintf(f, "modelled ms per token (roofline model, not measured) = decode step / batch\n");
        fprintf(f, "%-5s %6s %6s %-4s  %14s  %-22s\n", "dtype", "batch", unit, "fits", "naive", "pipelined (M)");
        for (int i = 0; i < np; i++) {
            const Plan *p = &plans[i];
            char pipe[48];
            snprintf(pipe, sizeof pipe, "%.2f (M=%d)", p->modelled_ms_per_token, p->micro_batches);
            fprintf(f, "%-5s %6d %6d %-4s  %14.2f  %-22s\n", plan_dtype_name(p->dtype), p->batch, p->ranks,
                    p->fits ? "yes" : "NO", p->decode_ms_naive / p->batch, pipe);
        }
        /* by shape, so --model DIR of any name counts too */
        bool bloom176 = c.arch == ARCH_BLOOM && c.hidden == 14336 && c.layers == 70 && c.vocab == 250880;
        if (bloom176 && a.gpu) print_published(f, &c, &a, &dev);
        for (int i = 0; i < np; i++) {
            fprintf(f, "\n");
            plan_print(f, &c, &reqs[i], &plans[i]);
        }
        if (a.json_path) rc = write_json(a.json_path, &c, &a, &dev, plans, np, e);
    }
    for (int i = 0; i < np; i++) plan_free(&plans[i]);
    return rc;
}
