/* `pp8 bench-linear`: one linear layer, int8 (LLM.int8(), threshold 6, two outlier columns in x) vs bf16
 * vs fp16, per row count and thread count: ms, weight GB/s, GOP/s, and the fraction of this machine's
 * read bandwidth measured in the same run (kernels/cpu/membw.h), then the issue-3 ratios side by side.
 * Weights are rotated over copies totalling >= 256 MiB per dtype so every call reads uncached weights,
 * as in a model. Runs on rank 0 only. It checks no results: tests/test_linear_paths.c does. */
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../../kernels/cpu/cpu_linear.h"
#include "../../kernels/cpu/membw.h"
#include "../../kernels/cpu/peak.h"
#include "../../kernels/numerics.h"
#include "commands.h"
#include "../util/log.h"
#include "version.h"

#define BL_MAX_LIST 16
#define BL_MAX_SHAPES 4
#define BL_ROTATE_BYTES (256.0 * 1024 * 1024) /* per dtype: above what the caches keep for us */
#define BL_MEMBW_BYTES ((size_t)512 << 20)
#define BL_TARGET_S 0.25 /* timed seconds per configuration (median of the calls) */
#define BL_MIN_CALLS 3
#define BL_MAX_CALLS 200
#define BL_THRESHOLD 6.0f
#define BL_HUGE ((size_t)2 << 20)

typedef struct {
    int k, n;
} BlShape;

static const BlShape g_h4096[BL_MAX_SHAPES] = {{4096, 12288}, {4096, 4096}, {4096, 16384}, {16384, 4096}};

typedef struct {
    BlShape shapes[BL_MAX_SHAPES];
    int nshapes;
    int m[BL_MAX_LIST], nm;
    DType dt[3];
    int ndt;
    int th[BL_MAX_LIST], nth;
    const char *json;
} BlArgs;

typedef struct {
    DType wdt;
    int m, k, n, threads;
    double ms, gbs, gops;
    double read_gbs; /* the prefetching read probe interleaved with this row's calls */
    double frac;     /* gbs / read_gbs */
    const char *path;
} BlRow;

static void bl_usage(FILE *f)
{
    fprintf(f,
            "usage: pp8 bench-linear [--k K --n N | --shapes h4096] [--m 1,8,32,128,512] [--dtype int8,bf16,fp16]\n"
            "                        [--threads 1,2] [--json FILE]\n\n"
            "Times one linear layer y = x W^T + b on this CPU: int8 (LLM.int8(), threshold 6, x with two outlier\n"
            "columns), bf16 and fp16, for every row count M and thread count. Weights rotate over copies of\n"
            ">= 256 MiB per dtype so each call reads weights from memory. Prints ms (median), weight GB/s,\n"
            "GOP/s (2*M*N*K / time), the fraction of the read bandwidth measured in the same run, the kernel\n"
            "path, then int8/bf16 at M=1 and int8 at M=32 against min(bandwidth bound, AMX peak).\n\n"
            "  --k K --n N     one shape: K inputs, N outputs\n"
            "  --shapes h4096  (default) (K,N) = (4096,12288) (4096,4096) (4096,16384) (16384,4096)\n"
            "  --m LIST        row counts (default 1,8,32,128,512)\n"
            "  --dtype LIST    int8, bf16, fp16 (default all three)\n"
            "  --threads LIST  thread counts (default 1,2)\n"
            "  --json FILE     also write the results as JSON (DESIGN.md \"Benchmark output\")\n\n"
            "Results go to stdout, progress to stderr. PP8_ISA=scalar|avx2|avx512|amx caps the kernels;\n"
            "PP8_PF_BYTES=N sets the weight streams' prefetch distance (default AMD 512, else 2048);\n"
            "PP8_I8_PANEL_ROWS=N the row count from which int8 takes the VNNI panels (default 9).\n");
}

static const char *bl_dt_name(DType d) { return d == DTYPE_I8 ? "int8" : d == DTYPE_BF16 ? "bf16" : "fp16"; }

/* returns 1 for --help */
static int bl_parse(int argc, char **argv, BlArgs *a, Err *e)
{
    memset(a, 0, sizeof *a);
    int k = 0, n = 0, shapes = 0;
    a->nm = 5;
    a->m[0] = 1, a->m[1] = 8, a->m[2] = 32, a->m[3] = 128, a->m[4] = 512;
    a->ndt = 3;
    a->dt[0] = DTYPE_I8, a->dt[1] = DTYPE_BF16, a->dt[2] = DTYPE_F16;
    a->nth = 2;
    a->th[0] = 1, a->th[1] = 2;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) return 1;
        if (strcmp(f, "--k") && strcmp(f, "--n") && strcmp(f, "--shapes") && strcmp(f, "--m") && strcmp(f, "--dtype") &&
            strcmp(f, "--threads") && strcmp(f, "--json"))
            return err_set(e, "unknown option '%s' for pp8 bench-linear (pp8 bench-linear --help)", f);
        if (!(v = cli_value(argc, argv, &i, e))) return -1;
        if (!strcmp(f, "--k")) {
            if (cli_int(v, "--k", 1, 1 << 20, &k, e)) return -1;
        } else if (!strcmp(f, "--n")) {
            if (cli_int(v, "--n", 1, 1 << 22, &n, e)) return -1;
        } else if (!strcmp(f, "--shapes")) {
            if (strcmp(v, "h4096")) return err_set(e, "--shapes %s: the only shape set is h4096", v);
            shapes = 1;
        } else if (!strcmp(f, "--m")) {
            if ((a->nm = cli_int_list(v, "--m", 1, 1 << 16, a->m, BL_MAX_LIST, e)) < 0) return -1;
        } else if (!strcmp(f, "--threads")) {
            if ((a->nth = cli_int_list(v, "--threads", 1, 1024, a->th, BL_MAX_LIST, e)) < 0) return -1;
        } else if (!strcmp(f, "--dtype")) {
            a->ndt = 0;
            for (const char *p = v; *p;) {
                size_t len = strcspn(p, ",");
                DType d;
                if (len == 4 && !strncmp(p, "int8", 4)) d = DTYPE_I8;
                else if (len == 4 && !strncmp(p, "bf16", 4)) d = DTYPE_BF16;
                else if (len == 4 && !strncmp(p, "fp16", 4)) d = DTYPE_F16;
                else return err_set(e, "--dtype %s: expected a list of int8, bf16, fp16", v);
                for (int j = 0; j < a->ndt; j++)
                    if (a->dt[j] == d) return err_set(e, "--dtype %s: %s given twice", v, bl_dt_name(d));
                a->dt[a->ndt++] = d;
                p += len + (p[len] == ',');
            }
            if (!a->ndt) return err_set(e, "--dtype: empty list");
        } else {
            a->json = v;
        }
    }
    if ((k > 0) != (n > 0)) return err_set(e, "--k and --n go together (pp8 bench-linear --help)");
    if (k > 0 && shapes) return err_set(e, "--k/--n and --shapes: give one");
    if (k > 0) {
        a->shapes[0] = (BlShape){k, n};
        a->nshapes = 1;
    } else {
        memcpy(a->shapes, g_h4096, sizeof g_h4096);
        a->nshapes = BL_MAX_SHAPES;
    }
    return 0;
}

static int bl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double bl_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bl_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint32_t g_bl_rng = 12345u;
static float bl_rand(void) /* uniform in [-1, 1) */
{
    g_bl_rng = g_bl_rng * 1664525u + 1013904223u;
    return (float)(g_bl_rng >> 8) / 8388608.0f - 1.0f;
}

/* packed copies of one layer for one dtype, back to back in one buffer */
typedef struct {
    DType wdt;
    int copies;
    Linear *w;
    char *base;    /* the copies' weights */
    float *scbs;   /* (copies, N) int8 scales */
} BlLayer;

static int bl_layer_make(BlLayer *L, DType wdt, int k, int n, const uint16_t *w16, const uint16_t *wbf,
                         const int8_t *cb, const float *scb, uint16_t *bias, int threads, Err *e)
{
    size_t bytes = cpu_linear_bytes(wdt, n, k), stride = (bytes + 63) / 64 * 64;
    L->wdt = wdt;
    L->copies = (int)ceil(BL_ROTATE_BYTES / (double)stride);
    if (L->copies < 2) L->copies = 2;
    /* 2 MiB-aligned and MADV_HUGEPAGE, as weights should be: on this VM a streaming read of 2 MiB pages
     * runs ~20% faster than of 4 KiB pages (fewer page walks on the prefetch streams) */
    size_t total = (stride * (size_t)L->copies + BL_HUGE - 1) / BL_HUGE * BL_HUGE;
    L->w = calloc((size_t)L->copies, sizeof(Linear));
    L->base = aligned_alloc(BL_HUGE, total);
    L->scbs = wdt == DTYPE_I8 ? malloc(sizeof(float) * (size_t)n * L->copies) : NULL;
    if (!L->w || !L->base || (wdt == DTYPE_I8 && !L->scbs))
        return err_set(e, "bench-linear: out of memory for %d copies of %zu bytes", L->copies, bytes);
    madvise(L->base, total, MADV_HUGEPAGE);
    for (int c = 0; c < L->copies; c++)
        L->w[c] = (Linear){.wdt = wdt, .n = n, .k = k, .bias = bias, .w = L->base + stride * (size_t)c,
                           .scb = L->scbs ? L->scbs + (size_t)n * c : NULL};
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int c = 0; c < L->copies; c++)
        cpu_linear_pack(&L->w[c], wdt == DTYPE_I8 ? (const void *)cb : wdt == DTYPE_BF16 ? (const void *)wbf : w16, scb);
    return 0;
}

static void bl_layer_free(BlLayer *L)
{
    free(L->w);
    free(L->base);
    free(L->scbs);
    L->w = NULL;
    L->base = NULL;
    L->scbs = NULL;
}

/* One (shape, M, threads) group: a call of every dtype and prefetching reads of two int8 copies (one and
 * four streams per thread, membw_read_once over the same rotated weights), round robin, so the VM's
 * bandwidth drifts hit them alike; ms[d] = median per call, *read_gbs = the better probe's median. */
static void bl_group(CpuLinear *lin, const BlLayer *L, int nl, const uint16_t *x16, const uint16_t *xbf, int m,
                     int th, void *y, double *ms, double *read_gbs)
{
    static double t[5][BL_MAX_CALLS];
    int cur[5] = {0};
    const BlLayer *P = &L[0];
    size_t pbytes = cpu_linear_bytes(P->wdt, P->w[0].n, P->w[0].k);
    double est = 0.0;
    /* warm-up: every copy once (or 0.3 s per dtype): page tables, tile permission, thread pool */
    for (int l = 0; l < nl; l++) {
        DType act = L[l].wdt == DTYPE_I8 ? DTYPE_F16 : L[l].wdt;
        const uint16_t *x = L[l].wdt == DTYPE_BF16 ? xbf : x16;
        double t0 = wall_s(), one = 0.0;
        for (int i = 0; i < L[l].copies && wall_s() - t0 < 0.3; i++) {
            double s = wall_s();
            cpu_linear(lin, &L[l].w[cur[l]], x, m, act, y, act, BL_THRESHOLD);
            one = wall_s() - s;
            cur[l] = (cur[l] + 1) % L[l].copies;
        }
        est += one;
    }
    int rounds = est > 0 ? (int)(BL_TARGET_S * nl / est) : BL_MAX_CALLS;
    if (rounds < BL_MIN_CALLS) rounds = BL_MIN_CALLS;
    if (rounds > BL_MAX_CALLS) rounds = BL_MAX_CALLS;
    for (int r = 0; r < rounds; r++) {
        for (int l = 0; l < nl; l++) {
            DType act = L[l].wdt == DTYPE_I8 ? DTYPE_F16 : L[l].wdt;
            const uint16_t *x = L[l].wdt == DTYPE_BF16 ? xbf : x16;
            double s = wall_s();
            cpu_linear(lin, &L[l].w[cur[l]], x, m, act, y, act, BL_THRESHOLD);
            t[l][r] = wall_s() - s;
            cur[l] = (cur[l] + 1) % L[l].copies;
        }
        /* the better of one and four streams per thread is the ceiling (membw.h) */
        t[3][r] = membw_read_once(P->w[cur[3]].w, pbytes, th, 1, 1);
        cur[3] = (cur[3] + 1) % P->copies;
        t[4][r] = membw_read_once(P->w[cur[3]].w, pbytes, th, 1, 4);
        cur[3] = (cur[3] + 1) % P->copies;
    }
    for (int l = 0; l < nl; l++) ms[l] = 1e3 * bl_median(t[l], rounds);
    double best = bl_median(t[3], rounds), four = bl_median(t[4], rounds);
    *read_gbs = (double)pbytes / (four < best ? four : best) * 1e-9;
}

static int bl_write_json(const char *path, const BlArgs *a, const double *bw_pf, const double *bw_plain,
                         const double *amx, const BlRow *rows, int nrows, cJSON *ratios, Err *e)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *pp8 = cJSON_AddObjectToObject(root, "pp8");
    cJSON_AddStringToObject(pp8, "version", version_string());
    cJSON_AddStringToObject(pp8, "git", version_git());
    cJSON *host = cJSON_AddObjectToObject(root, "host");
    cJSON_AddStringToObject(host, "cpu", host_cpu_model());
    cJSON_AddStringToObject(host, "flags", cpu_isa_string());
    cJSON_AddNumberToObject(host, "cores", omp_get_num_procs());
    /* prefetch/plain at the largest thread count benchmarked; every thread count in per_threads */
    int last = a->nth - 1;
    for (int i = 0; i < a->nth; i++)
        if (a->th[i] > a->th[last]) last = i;
    cJSON *bw = cJSON_AddObjectToObject(root, "read_bandwidth_gbs");
    cJSON_AddNumberToObject(bw, "prefetch", bw_pf[last]);
    cJSON_AddNumberToObject(bw, "plain", bw_plain[last]);
    cJSON_AddNumberToObject(bw, "threads", a->th[last]);
    cJSON *per = cJSON_AddArrayToObject(bw, "per_threads");
    for (int i = 0; i < a->nth; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "threads", a->th[i]);
        cJSON_AddNumberToObject(o, "prefetch", bw_pf[i]);
        cJSON_AddNumberToObject(o, "plain", bw_plain[i]);
        cJSON_AddNumberToObject(o, "amx_int8_peak_gops", amx[i]);
        cJSON_AddItemToArray(per, o);
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "rows");
    for (int i = 0; i < nrows; i++) {
        const BlRow *r = &rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dtype", bl_dt_name(r->wdt));
        cJSON_AddNumberToObject(o, "m", r->m);
        cJSON_AddNumberToObject(o, "k", r->k);
        cJSON_AddNumberToObject(o, "n", r->n);
        cJSON_AddNumberToObject(o, "threads", r->threads);
        cJSON_AddNumberToObject(o, "ms", r->ms);
        cJSON_AddNumberToObject(o, "weight_gbs", r->gbs);
        cJSON_AddNumberToObject(o, "gops", r->gops);
        cJSON_AddNumberToObject(o, "bandwidth_fraction", r->frac);
        cJSON_AddNumberToObject(o, "read_gbs", r->read_gbs);
        cJSON_AddStringToObject(o, "path", r->path);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddItemToObject(root, "ratios", ratios);
    return cli_write_json(path, root, e);
}

static const BlRow *bl_find(const BlRow *rows, int nrows, DType d, int m, int k, int n, int th)
{
    for (int i = 0; i < nrows; i++)
        if (rows[i].wdt == d && rows[i].m == m && rows[i].k == k && rows[i].n == n && rows[i].threads == th)
            return &rows[i];
    return NULL;
}

int cmd_bench_linear(int argc, char **argv, Err *e)
{
    BlArgs a;
    int rc = bl_parse(argc, argv, &a, e);
    if (rc < 0) return -1;
    if (rc == 1) {
        bl_usage(stdout);
        return 0;
    }
    if (log_rank() != 0) return 0; /* one process measures; others would share its memory bandwidth */
    int maxm = 0, maxk = 0, maxn = 0, maxth = 0;
    for (int i = 0; i < a.nm; i++) maxm = a.m[i] > maxm ? a.m[i] : maxm;
    for (int i = 0; i < a.nth; i++) maxth = a.th[i] > maxth ? a.th[i] : maxth;
    for (int s = 0; s < a.nshapes; s++) {
        maxk = a.shapes[s].k > maxk ? a.shapes[s].k : maxk;
        maxn = a.shapes[s].n > maxn ? a.shapes[s].n : maxn;
    }

    /* read bandwidth and AMX roof: measured before the layers and again after each shape; the median
     * of all samples per thread count is the ceiling (the VM's bandwidth drifts over a run) */
    double bw_pf[BL_MAX_LIST], bw_plain[BL_MAX_LIST], amx[BL_MAX_LIST];
    double bw_samples[BL_MAX_LIST][BL_MAX_SHAPES + 1];
    int nsamples = 0;
    log_info("bench-linear: isa %s; measuring read bandwidth and the AMX roof", cpu_isa_string());
    for (int i = 0; i < a.nth; i++) {
        bw_samples[i][0] = membw_read_gbs(a.th[i], 1, BL_MEMBW_BYTES);
        bw_plain[i] = membw_read_gbs(a.th[i], 0, BL_MEMBW_BYTES);
        amx[i] = cpu_peak_gops(PEAK_AMX_INT8, a.th[i]); /* 0 without AMX */
    }
    nsamples = 1;

    CpuLinear *lin = cpu_linear_create(maxth);
    cpu_linear_reserve(lin, maxm, maxk, maxn);
    int maxrows = a.nshapes * a.ndt * a.nth * a.nm;
    BlRow *rows = calloc((size_t)maxrows, sizeof *rows);
    int nrows = 0;
    for (int s = 0; s < a.nshapes && !rc; s++) {
        int k = a.shapes[s].k, n = a.shapes[s].n;
        log_info("bench-linear: K=%d N=%d: making weights", k, n);
        size_t nk = (size_t)n * k;
        uint16_t *w16 = malloc(nk * 2), *wbf = malloc(nk * 2), *bias16 = malloc((size_t)n * 2),
                 *biasbf = malloc((size_t)n * 2);
        int8_t *cb = malloc(nk);
        float *scb = malloc(sizeof(float) * n);
        uint16_t *x16 = malloc((size_t)maxm * k * 2), *xbf = malloc((size_t)maxm * k * 2);
        void *y = malloc((size_t)maxm * n * 2);
        BlLayer layers[3] = {{0}};
        if (!w16 || !wbf || !bias16 || !biasbf || !cb || !scb || !x16 || !xbf || !y) {
            rc = err_set(e, "bench-linear: out of memory for K=%d N=%d", k, n);
            goto next;
        }
        for (size_t i = 0; i < nk; i++) {
            float v = 0.05f * bl_rand();
            w16[i] = pp8_f2h(v);
            wbf[i] = pp8_f2bf(pp8_h2f(w16[i]));
        }
        for (int i = 0; i < n; i++) {
            bias16[i] = pp8_f2h(0.1f * bl_rand());
            biasbf[i] = pp8_f2bf(pp8_h2f(bias16[i]));
        }
        /* activations |x| < 2, and two outlier columns (as LLM.int8() sees past ~6.7B parameters) */
        for (size_t i = 0; i < (size_t)maxm * k; i++) {
            x16[i] = pp8_f2h(2.0f * bl_rand());
            if (k > 8 && (i % k == 3 || i % k == (size_t)k / 2)) x16[i] = pp8_f2h(8.0f + bl_rand());
            xbf[i] = pp8_f2bf(pp8_h2f(x16[i]));
        }
        ref_quantize_weights(cb, scb, w16, n, k);
        for (int d = 0; d < a.ndt && !rc; d++)
            rc = bl_layer_make(&layers[d], a.dt[d], k, n, w16, wbf, cb, scb, a.dt[d] == DTYPE_BF16 ? biasbf : bias16,
                               maxth, e);
        free(w16), w16 = NULL;
        free(wbf), wbf = NULL;
        free(cb), cb = NULL;
        if (rc) goto next;
        /* dtypes and the read probe interleaved call by call: ratios compare like with like */
        for (int mi = 0; mi < a.nm; mi++)
            for (int ti = 0; ti < a.nth; ti++) {
                int m = a.m[mi], th = a.th[ti];
                double ms[3], rd;
                cpu_linear_set_threads(lin, th);
                bl_group(lin, layers, a.ndt, x16, xbf, m, th, y, ms, &rd);
                for (int d = 0; d < a.ndt; d++) {
                    DType wdt = a.dt[d];
                    BlRow *r = &rows[nrows++];
                    double wbytes = (double)nk * (wdt == DTYPE_I8 ? 1 : 2);
                    *r = (BlRow){.wdt = wdt, .m = m, .k = k, .n = n, .threads = th, .ms = ms[d],
                                 .gbs = wbytes / ms[d] * 1e-6, .gops = 2.0 * m * (double)nk / ms[d] * 1e-6,
                                 .read_gbs = rd, .frac = wbytes / ms[d] * 1e-6 / rd, .path = cpu_linear_path(lin, wdt, m)};
                    log_info("bench-linear: %s M=%d K=%d N=%d %dT: %.3f ms, %.2f GB/s, read probe %.2f GB/s (%s)",
                             bl_dt_name(wdt), m, k, n, th, ms[d], r->gbs, rd, r->path);
                }
            }
        for (int i = 0; i < a.nth; i++) bw_samples[i][nsamples] = membw_read_gbs(a.th[i], 1, BL_MEMBW_BYTES);
        nsamples++;
    next:
        for (int d = 0; d < 3; d++) bl_layer_free(&layers[d]);
        free(w16), free(wbf), free(bias16), free(biasbf), free(cb), free(scb), free(x16), free(xbf), free(y);
    }
    cpu_linear_destroy(lin);
    if (rc) {
        free(rows);
        return rc;
    }
    for (int i = 0; i < a.nth; i++) bw_pf[i] = bl_median(bw_samples[i], nsamples);

    /* ---- stdout: results ---- */
    printf("pp8 %s (git %s) bench-linear on %s, %d cores; isa: %s\n", version_string(), version_git(), host_cpu_model(),
           omp_get_num_procs(), cpu_isa_string());
    for (int i = 0; i < a.nth; i++)
        printf("read bandwidth %dT (membw, 512 MiB): prefetch %.2f GB/s (median of %d samples over the run), "
               "plain %.2f GB/s; AMX int8 tile-resident peak %.0f GOP/s\n",
               a.th[i], bw_pf[i], nsamples, bw_plain[i], amx[i]);
    printf("int8 = LLM.int8() threshold %.0f with 2 outlier columns; weight GB/s = N*K*bytes/time (medians);\n"
           "read_GB/s = prefetching read (better of 1 and 4 streams per thread) of the same rotated int8 weights,\n"
           "interleaved call by call with the row's kernels (the VM's bandwidth drifts by 2x within minutes);\n"
           "bw_frac = weight GB/s / read_GB/s. Weights on 2 MiB pages (MADV_HUGEPAGE).\n\n",
           BL_THRESHOLD);
    printf("%-5s %5s %6s %6s %7s %10s %11s %9s %9s %8s  %s\n", "dtype", "m", "k", "n", "threads", "ms", "weight_GB/s",
           "GOP/s", "read_GB/s", "bw_frac", "path");
    for (int i = 0; i < nrows; i++) {
        const BlRow *r = &rows[i];
        printf("%-5s %5d %6d %6d %7d %10.3f %11.2f %9.1f %9.2f %8.3f  %s\n", bl_dt_name(r->wdt), r->m, r->k, r->n,
               r->threads, r->ms, r->gbs, r->gops, r->read_gbs, r->frac, r->path);
    }
    cJSON *ratios = cJSON_CreateArray();
    printf("\nratios (targets: int8 M=1 bw_frac >= 0.85; int8/bf16 speed at M=1 >= 1.7; int8 M=32 >= 0.70 of "
           "min(bandwidth bound, AMX peak)):\n");
    for (int s = 0; s < a.nshapes; s++) {
        int k = a.shapes[s].k, n = a.shapes[s].n;
        for (int t = 0; t < a.nth; t++) {
            int th = a.th[t];
            const BlRow *i1 = bl_find(rows, nrows, DTYPE_I8, 1, k, n, th), *b1 = bl_find(rows, nrows, DTYPE_BF16, 1, k, n, th);
            const BlRow *i32 = bl_find(rows, nrows, DTYPE_I8, 32, k, n, th);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "k", k);
            cJSON_AddNumberToObject(o, "n", n);
            cJSON_AddNumberToObject(o, "threads", th);
            printf("  K=%5d N=%5d %dT:", k, n, th);
            if (i1) {
                printf("  int8 M=1 bw_frac %.2f", i1->frac);
                cJSON_AddNumberToObject(o, "int8_m1_bandwidth_fraction", i1->frac);
            }
            if (i1 && b1) {
                printf("  int8/bf16 M=1 %.2fx", b1->ms / i1->ms);
                cJSON_AddNumberToObject(o, "int8_over_bf16_speed_m1", b1->ms / i1->ms);
            }
            if (i32) {
                double bound = 2.0 * 32 * i32->read_gbs; /* int8: 2*M ops per weight byte */
                double roof = amx[t] > 0 && amx[t] < bound ? amx[t] : bound;
                printf("  int8 M=32 %.0f GOP/s = %.2f of min(bw bound %.0f, AMX %.0f)", i32->gops, i32->gops / roof,
                       bound, amx[t]);
                cJSON_AddNumberToObject(o, "int8_m32_fraction_of_roof", i32->gops / roof);
                cJSON_AddNumberToObject(o, "int8_m32_roof_gops", roof);
            }
            printf("\n");
            cJSON_AddItemToArray(ratios, o);
        }
    }
    fflush(stdout);
    if (a.json)
        rc = bl_write_json(a.json, &a, bw_pf, bw_plain, amx, rows, nrows, ratios, e);
    else
        cJSON_Delete(ratios);
    free(rows);
    return rc;
}
