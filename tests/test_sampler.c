/* The sampler (runtime/text/sampler.c) against Hugging Face: the 45 logits-processor cases of
 * golden/textgen/warpers.* (kept sets exact, scores bit for bit, probabilities within 1e-6, greedy ids),
 * every warper mix against a sort-based reference on random rows up to V = 20000, two rules no golden
 * case sits near (min-p's strict <, top-p's decimal threshold), rows with NaN / +inf, a chi-square fit of
 * 100,000 draws (and proof that the same statistic rejects wrong distributions), the draw stream's
 * purity and independence from the batch, greedy ties, parameter checks. argv[1] = the golden
 * directory (fails, never skips, without it). `test_sampler --speed [CONFIG]` prints ms per
 * sampler_next call at V = 250880 and is not a test (no timed tests). */
#include "test_util.h"
#include "text/sampler.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the golden file: safetensors with F64 params, which the checkpoint reader does not take ---- */

typedef struct GoldFile {
    char *buf; /* the whole file */
    size_t len;
    const char *data; /* the data section */
    size_t data_len;
    cJSON *hdr;
} GoldFile;

static void gold_load(GoldFile *g, const char *path)
{
    FILE *f = fopen(path, "rb");
    CHECK(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    CHECK(n > 8, "%s: %ld bytes", path, n);
    g->len = (size_t)n;
    g->buf = malloc(g->len + 1);
    CHECK(g->buf && fread(g->buf, 1, g->len, f) == g->len, "read %s", path);
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (uint8_t)g->buf[i];
    CHECK(hlen <= g->len - 8, "%s: header length %llu", path, (unsigned long long)hlen);
    g->hdr = cJSON_ParseWithLength(g->buf + 8, (size_t)hlen);
    CHECK(g->hdr, "%s: header is not JSON", path);
    g->data = g->buf + 8 + hlen;
    g->data_len = g->len - 8 - hlen;
}

/* a copy of tensor name (dtype, 1-D); *count = its length */
static void *gold_get(const GoldFile *g, const char *name, const char *dtype, int *count)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(g->hdr, name);
    CHECK(t, "golden has no tensor %s", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    CHECK(cJSON_IsString(dt) && strcmp(dt->valuestring, dtype) == 0, "%s: dtype %s, expected %s", name,
          cJSON_IsString(dt) ? dt->valuestring : "?", dtype);
    CHECK(cJSON_GetArraySize(sh) == 1, "%s: expected 1-D", name);
    size_t es = strcmp(dtype, "F32") == 0 ? 4 : 8; /* F32, or I64 / F64 */
    size_t n = (size_t)cJSON_GetArrayItem(sh, 0)->valuedouble;
    size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    CHECK(e >= b && e - b == n * es && e <= g->data_len, "%s: offsets [%zu, %zu] for %zu elements", name, b, e, n);
    void *p = test_xmalloc(n * es);
    memcpy(p, g->data + b, n * es);
    *count = (int)n;
    return p;
}

/* the warpers.jsonl object of case id */
static cJSON *gold_case_json(const char *path, const char *id)
{
    FILE *f = fopen(path, "r");
    CHECK(f, "cannot open %s", path);
    static char line[1 << 20];
    cJSON *found = NULL;
    while (!found && fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        CHECK(o, "%s: a line is not JSON", path);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");
        if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
            found = o;
        else
            cJSON_Delete(o);
    }
    fclose(f);
    CHECK(found, "%s has no case %s", path, id);
    return found;
}

/* softmax in double over the finite entries (0 for -inf) */
static void softmax_ref(const float *s, int V, double *p)
{
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < V; i++) mx = s[i] > mx ? s[i] : mx;
    for (int i = 0; i < V; i++) sum += p[i] = s[i] > -INFINITY ? exp((double)s[i] - mx) : 0.0;
    for (int i = 0; i < V; i++) p[i] /= sum;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* the first index of the largest finite value, computed plainly */
static int argmax_ref(const float *v, int V)
{
    int b = 0;
    for (int i = 1; i < V; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* Test 1 (and 4's c32-c36): each case's params through sampler_process; the kept set exact, scores
 * bit for bit and probabilities within 1e-6 except in the tie-dependent cases (c19-c21: the count, and
 * the sorted probabilities); greedy cases also through sampler_next; sampling cases draw only kept ids. */
static void test_golden(const char *golden)
{
    char path[2048], jpath[2048];
    snprintf(path, sizeof path, "%s/textgen/warpers.safetensors", golden);
    snprintf(jpath, sizeof jpath, "%s/textgen/warpers.jsonl", golden);
    GoldFile g;
    gold_load(&g, path);
    SamplerScratch *ws = sampler_scratch_create(5000);
    CHECK(ws, "scratch");
    int ncase = 0, nbits = 0, nbits_of = 0, nset = 0;
    for (int cs = 0; cs < 45; cs++) {
        char id[8], nm[64];
        snprintf(id, sizeof id, "c%02d", cs);
        cJSON *jc = gold_case_json(jpath, id);
        const char *name = cJSON_GetObjectItemCaseSensitive(jc, "name")->valuestring;
        bool tie = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(jc, "tie_dependent"));
        int want_kept = cJSON_GetObjectItemCaseSensitive(jc, "n_kept_finite")->valueint;
        int want_argmax = cJSON_GetObjectItemCaseSensitive(jc, "argmax")->valueint;
        int V, V2, V3, np, n7;
        snprintf(nm, sizeof nm, "%s.logits", id);
        float *logits = gold_get(&g, nm, "F32", &V);
        snprintf(nm, sizeof nm, "%s.scores", id);
        float *want = gold_get(&g, nm, "F32", &V2);
        snprintf(nm, sizeof nm, "%s.probs", id);
        float *wprob = gold_get(&g, nm, "F32", &V3);
        snprintf(nm, sizeof nm, "%s.prev_ids", id);
        int64_t *prev64 = gold_get(&g, nm, "I64", &np);
        snprintf(nm, sizeof nm, "%s.params", id);
        double *par = gold_get(&g, nm, "F64", &n7);
        CHECK(V == V2 && V == V3 && n7 == 7, "%s: shapes V %d %d %d, params %d", id, V, V2, V3, n7);
        CHECK(par[6] == 1.0, "%s: min_tokens_to_keep %g (the sampler keeps 1)", id, par[6]);
        int32_t *prev = test_xmalloc((size_t)np * 4 + 4);
        for (int j = 0; j < np; j++) prev[j] = (int32_t)prev64[j];

        /* params[] are the applied values: top_k 0 there is off, not "not given" */
        bool sample = par[0] != 0.0;
        SampleParams sp;
        sample_params_default(&sp);
        sp.temperature = sample ? (float)par[1] : 0.0f;
        sp.top_k = sample ? (int)par[2] : 0;
        sp.top_p = par[3];
        sp.min_p = (float)par[4];
        sp.repetition_penalty = (float)par[5];
        sp.seed = 1234 + (uint64_t)cs;
        CHECK(sample_params_check(&sp) == NULL, "%s: params refused: %s", id, sample_params_check(&sp));

        float *s = test_xmalloc((size_t)V * 4);
        memcpy(s, logits, (size_t)V * 4);
        sampler_process(&sp, s, V, prev, np, ws);
        int kept = 0, kept_want = 0, set_diff = 0, bit_diff = 0, first_bit = -1;
        for (int i = 0; i < V; i++) {
            kept += s[i] > -INFINITY;
            kept_want += want[i] > -INFINITY;
            set_diff += (s[i] > -INFINITY) != (want[i] > -INFINITY);
            if (f2u(s[i]) != f2u(want[i]) && !bit_diff++) first_bit = i;
        }
        double *p = test_xmalloc((size_t)V * 8), *q = test_xmalloc((size_t)V * 8), dp = 0.0;
        softmax_ref(s, V, p);
        for (int i = 0; i < V; i++) q[i] = wprob[i];
        if (tie) { /* which tied tokens survive is torch.sort's choice: compare the sorted probabilities */
            qsort(p, (size_t)V, 8, cmp_double);
            qsort(q, (size_t)V, 8, cmp_double);
        }
        for (int i = 0; i < V; i++) dp = fmax(dp, fabs(p[i] - q[i]));
        CHECK_ON(kept == want_kept && kept_want == want_kept, "%s %s: kept %d, HF %d (jsonl %d)", id, name, kept,
                 kept_want, want_kept);
        CHECK_ON(dp <= 1e-6, "%s %s: max |p - HF p| = %.3g", id, name, dp);
        if (!tie) {
            nbits_of++;
            nset += set_diff == 0;
            nbits += bit_diff == 0;
            CHECK_ON(set_diff == 0, "%s %s: %d ids kept by one side only", id, name, set_diff);
            /* the kept values are temperature's and the penalty's IEEE float32 results: bit-exact */
            CHECK_ON(bit_diff == 0, "%s %s: %d scores differ from HF's bits, first id %d: %.9g vs %.9g", id, name,
                     bit_diff, first_bit, first_bit >= 0 ? s[first_bit] : 0.0f,
                     first_bit >= 0 ? want[first_bit] : 0.0f);
            const cJSON *ki = cJSON_GetObjectItemCaseSensitive(jc, "kept_ids");
            if (cJSON_IsArray(ki)) {
                int j = 0, bad = 0;
                for (int i = 0; i < V; i++)
                    if (s[i] > -INFINITY)
                        bad += j >= cJSON_GetArraySize(ki) || cJSON_GetArrayItem(ki, j++)->valueint != i;
                CHECK_ON(!bad && j == cJSON_GetArraySize(ki), "%s %s: kept ids differ from the jsonl's", id, name);
            }
        }
        /* the choice: greedy = argmax (lowest id on ties); a draw only ever lands on a kept id */
        int draws_bad = 0, got_argmax = -1;
        if (!sample) {
            memcpy(s, logits, (size_t)V * 4);
            got_argmax = sampler_next(&sp, s, V, prev, np, 0, 0, ws);
            CHECK_ON(got_argmax == want_argmax && got_argmax == argmax_ref(want, V), "%s %s: greedy id %d, HF %d", id,
                     name, got_argmax, want_argmax);
        } else {
            float *ref = test_xmalloc((size_t)V * 4);
            memcpy(ref, logits, (size_t)V * 4);
            sampler_process(&sp, ref, V, prev, np, ws);
            for (int step = 0; step < 64; step++) {
                memcpy(s, logits, (size_t)V * 4);
                int t = sampler_next(&sp, s, V, prev, np, (uint64_t)cs, (uint64_t)step, ws);
                draws_bad += t < 0 || t >= V || !(ref[t] > -INFINITY) || (!tie && !(wprob[t] > 0.0f));
            }
            CHECK_ON(draws_bad == 0, "%s %s: %d of 64 draws picked a removed id", id, name, draws_bad);
            free(ref);
        }
        printf("%s %-36s V=%-4d kept %4d/%-4d%s max|dp| %.2g  scores %s", id, name, V, kept, want_kept,
               tie ? " (tie-dep.)" : "", dp,
               tie        ? "(tie-dependent)"
               : bit_diff ? "DIFFER"
                          : "bit-exact");
        if (!sample) printf("  greedy %d", got_argmax);
        printf("\n");
        ncase++;
        free(logits), free(want), free(wprob), free(prev64), free(par), free(prev), free(s), free(p), free(q);
        cJSON_Delete(jc);
    }
    printf("golden: %d cases; of the %d not tie-dependent: kept set exact in %d, scores bit-exact in %d\n", ncase,
           nbits_of, nset, nbits);
    sampler_scratch_free(ws);
    cJSON_Delete(g.hdr);
    free(g.buf);
}

/* ---- a sort-based reference of the warpers (the README's rules, literally) ---- */

typedef struct Pair {
    float s;
    int id;
} Pair;

/* ascending by score; within a tie the higher id first (the sampler's documented tie order) */
static int cmp_pair_asc(const void *a, const void *b)
{
    const Pair *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return y->id - x->id;
}

static int cmp_float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y;
}

/* p = exp(x - max) * float32(1 / sum), the sum in double in id order (the sampler's softmax) */
static float softmax_f32(const float *s, int V, float *p)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = s[i] > mx ? s[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += p[i] = s[i] > -INFINITY ? expf(s[i] - mx) : 0.0f;
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < V; i++) p[i] *= inv;
    return inv;
}

static void warp_ref(float *s, int V, float T, int top_k, double top_p, float min_p)
{
    for (int i = 0; i < V; i++) s[i] = T != 1.0f ? s[i] / T : s[i];
    float *tmp = test_xmalloc((size_t)V * 4), *p = test_xmalloc((size_t)V * 4);
    Pair *pr = test_xmalloc((size_t)V * sizeof *pr);
    int k = top_k < 0 ? 50 : top_k;
    if (k > 0) {
        k = k < V ? k : V;
        memcpy(tmp, s, (size_t)V * 4);
        qsort(tmp, (size_t)V, 4, cmp_float_desc);
        for (int i = 0; i < V; i++)
            if (s[i] < tmp[k - 1]) s[i] = -INFINITY;
    }
    if (top_p < 1.0) {
        softmax_f32(s, V, p);
        for (int i = 0; i < V; i++) pr[i] = (Pair){s[i], i};
        qsort(pr, (size_t)V, sizeof *pr, cmp_pair_asc);
        float thr = (float)(1.0 - top_p);
        double cum = 0.0;
        for (int j = 0; j < V - 1; j++) { /* the last (the max) always survives */
            cum += p[pr[j].id];
            if ((float)cum <= thr) s[pr[j].id] = -INFINITY;
        }
    }
    if (min_p > 0.0f) {
        float cut = min_p * softmax_f32(s, V, p);
        int top = argmax_ref(s, V);
        for (int i = 0; i < V; i++)
            if (p[i] < cut && i != top) s[i] = -INFINITY;
    }
    free(tmp), free(p), free(pr);
}

/* Every warper combination on rows of V from 1 to 20000, against the sorted reference, bit for bit.
 * Even trials: tie-heavy rows (small integers, some -inf) whose double sums are exact, so the sum order
 * cannot matter and the tie rule is what is compared; odd trials: continuous values (the selection's
 * sum order differs from the sort's in double, far below the float32 rounding the rule compares). */
static void test_warpers_vs_reference(void)
{
    const int Vs[] = {1, 2, 7, 17, 100, 1000, 3000, 20000};
    const double tps[] = {1.0, 0.0, 0.25, 0.5, 0.9, 0.95};
    const float mps[] = {0.0f, 0.05f, 1.0f};
    SamplerScratch *ws = sampler_scratch_create(20000);
    uint64_t st = 0x5eed;
    int trials = 0, bad = 0;
    for (int vi = 0; vi < 8; vi++)
        for (int ki = 0; ki < 9; ki++)
            for (int pi = 0; pi < 6; pi++)
                for (int mi = 0; mi < 3; mi++) {
                    int V = Vs[vi], t = trials;
                    int ks[] = {0, -1, 1, 2, 50, V / 2, V - 1, V, V + 3};
                    int range = 1 + t % 9;
                    float *l = test_xmalloc((size_t)V * 4), *a = test_xmalloc((size_t)V * 4);
                    float *b = test_xmalloc((size_t)V * 4);
                    for (int i = 0; i < V; i++) {
                        float r = test_frand(&st);
                        l[i] = r > 0.9f ? -INFINITY
                               : t % 2  ? 4.0f * test_frand(&st)
                                        : (float)(int)((r + 1.0f) * 0.5f * (float)range);
                    }
                    SampleParams sp;
                    sample_params_default(&sp);
                    sp.temperature = t % 4 == 3 ? 2.0f : t % 4 == 1 ? 0.7f : 1.0f;
                    sp.top_k = ks[ki];
                    sp.top_p = tps[pi];
                    sp.min_p = mps[mi];
                    memcpy(a, l, (size_t)V * 4);
                    memcpy(b, l, (size_t)V * 4);
                    sampler_process(&sp, a, V, NULL, 0, ws);
                    warp_ref(b, V, sp.temperature, sp.top_k, tps[pi], sp.min_p);
                    int diff = 0, first = -1, kept = 0;
                    for (int i = 0; i < V; i++) {
                        kept += a[i] > -INFINITY;
                        if (f2u(a[i]) != f2u(b[i]) && !diff++) first = i;
                    }
                    trials++;
                    bad += diff != 0 || (kept == 0 && V > 0 && l[argmax_ref(l, V)] > -INFINITY);
                    CHECK_ON(diff == 0,
                             "trial %d V %d T %g k %d p %g min_p %g: %d scores differ, first id %d: %g vs ref %g", t, V,
                             sp.temperature, sp.top_k, tps[pi], sp.min_p, diff, first, a[first], b[first]);
                    free(l), free(a), free(b);
                }
    printf("warpers vs sorted reference: %d/%d rows bit-identical (V 1..20000, every top-k/top-p/min-p mix)\n",
           trials - bad, trials);
    sampler_scratch_free(ws);
}

/* ---- test 2: the draws follow the distribution ---- */

/* the 0.999 quantile of chi-square with df degrees of freedom (Wilson-Hilferty; within 1% for df >= 5) */
static double chi2_q999(int df)
{
    double z = 3.090232306, a = 2.0 / (9.0 * df), c = 1.0 - a + z * sqrt(a);
    return df * c * c * c;
}

static double chi2(const long *count, const double *p, int K, long N, int *df)
{
    double x = 0.0;
    *df = -1;
    for (int i = 0; i < K; i++) {
        if (!(p[i] > 0.0)) continue;
        double e = p[i] * (double)N;
        x += (count[i] - e) * (count[i] - e) / e;
        (*df)++;
    }
    return x;
}

static void test_chi_square(void)
{
    enum { K = 20, N = 100000 };
    /* unequal logits; T 0.8, top-k 16 removes 4, top-p 0.95 a few more of the tail */
    const float logits[K] = {1.2f,  -0.3f, 2.0f,  0.7f, -1.5f, 0.1f, 1.9f, -0.8f, 0.4f, 1.5f,
                             -2.5f, 0.9f,  -0.1f, 2.3f, -1.1f, 0.0f, 1.0f, -3.0f, 0.6f, 1.7f};
    SampleParams sp;
    sample_params_default(&sp);
    sp.temperature = 0.8f, sp.top_k = 16, sp.top_p = 0.95, sp.seed = 20240607;
    SamplerScratch *ws = sampler_scratch_create(K);
    float s[K];
    double p[K], wrong[K], plain[K];
    memcpy(s, logits, sizeof s);
    sampler_process(&sp, s, K, NULL, 0, ws);
    softmax_ref(s, K, p);
    int kept = 0;
    for (int i = 0; i < K; i++) kept += p[i] > 0.0;
    CHECK_ON(kept > 5 && kept < 16, "top-k 16 + top-p 0.95 kept %d of 20 (expected fewer than 16)", kept);
    /* wrong 1: 3% of the mass moved from the likeliest to the least likely kept id; wrong 2: the row
     * without top-k / top-p (temperature only) */
    int hi = 0, lo = -1;
    for (int i = 0; i < K; i++) {
        wrong[i] = p[i];
        if (p[i] > p[hi]) hi = i;
        if (p[i] > 0.0 && (lo < 0 || p[i] < p[lo])) lo = i;
    }
    wrong[hi] -= 0.03, wrong[lo] += 0.03;
    for (int i = 0; i < K; i++) plain[i] = logits[i] / 0.8f;
    {
        float t[K];
        for (int i = 0; i < K; i++) t[i] = (float)plain[i];
        softmax_ref(t, K, plain);
    }
    for (int run = 0; run < 2; run++) { /* run 0: one sequence, steps 0..N-1; run 1: N sequences at step 3 */
        long count[K] = {0};
        for (long d = 0; d < N; d++) {
            memcpy(s, logits, sizeof s);
            int t = run == 0 ? sampler_next(&sp, s, K, NULL, 0, 7, (uint64_t)d, ws)
                             : sampler_next(&sp, s, K, NULL, 0, (uint64_t)d, 3, ws);
            CHECK(t >= 0 && t < K, "draw %d", t);
            count[t]++;
        }
        int zero_bad = 0;
        for (int i = 0; i < K; i++) zero_bad += p[i] == 0.0 && count[i] != 0;
        int df, df_w, df_p;
        double x = chi2(count, p, K, N, &df), xw = chi2(count, wrong, K, N, &df_w),
               xp = chi2(count, plain, K, N, &df_p);
        double q = chi2_q999(df);
        printf("chi-square (%s): %d draws over %d kept ids: chi2 %.2f (df %d, 0.999 quantile %.2f); against a "
               "3%%-shifted distribution %.1f, against temperature alone %.1f (df %d, quantile %.2f)\n",
               run ? "N sequences, one step" : "one sequence, N steps", N, kept, x, df, q, xw, xp, df_p,
               chi2_q999(df_p));
        CHECK_ON(zero_bad == 0, "%d removed ids were drawn", zero_bad);
        CHECK_ON(x < q, "chi2 %.2f >= %.2f: the draws do not follow softmax of the processed scores", x, q);
        CHECK_ON(xw > q, "chi2 %.2f against a wrong distribution is not rejected (quantile %.2f)", xw, q);
        CHECK_ON(xp > chi2_q999(df_p), "chi2 %.2f against temperature alone is not rejected", xp);
    }
    /* the uniform itself: 20 equal bins */
    long bins[20] = {0};
    double pu[20], mean = 0.0;
    for (int i = 0; i < 20; i++) pu[i] = 0.05;
    for (long d = 0; d < N; d++) {
        double u = sampler_uniform(99, (uint64_t)d % 7, (uint64_t)d / 7);
        bins[(int)(u * 20.0)]++;
        mean += u;
    }
    int df;
    double x = chi2(bins, pu, 20, N, &df);
    printf("uniform: 20 bins, chi2 %.2f (df %d, quantile %.2f), mean %.5f\n", x, df, chi2_q999(df), mean / N);
    CHECK_ON(x < chi2_q999(df), "sampler_uniform is not uniform: chi2 %.2f", x);
    sampler_scratch_free(ws);
}

/* u near 0 and near 1: the draw never lands on an id of probability 0 (a -inf score, or a finite score
 * whose exp underflows), at either end of the inverse CDF */
static void test_draw_edges(void)
{
    uint64_t hi_step = 0, lo_step = 0;
    bool hi = false, lo = false;
    for (uint64_t st = 0; st < 100000000 && !(hi && lo); st++) {
        double u = sampler_uniform(5, 1, st);
        if (!hi && u > 1.0 - 2e-6) hi = true, hi_step = st;
        if (!lo && u < 2e-6) lo = true, lo_step = st;
    }
    CHECK(hi && lo, "no u within 2e-6 of 0 and of 1 in 1e8 steps");
    printf("draw edges: u = %.9f at step %llu, %.3g at step %llu\n", sampler_uniform(5, 1, hi_step),
           (unsigned long long)hi_step, sampler_uniform(5, 1, lo_step), (unsigned long long)lo_step);
    SampleParams sp;
    sample_params_default(&sp);
    sp.temperature = 1.0f, sp.top_k = 0, sp.seed = 5;
    SamplerScratch *ws = sampler_scratch_create(8);
    /* ids 0 and 6 underflow to probability 0 (exp(-200) in float32), 7 is -inf */
    const float l[8] = {-200.0f, 0.0f, 1.0f, 0.5f, 0.25f, -3.0f, -200.0f, -INFINITY};
    float s[8];
    memcpy(s, l, sizeof s);
    int a = sampler_next(&sp, s, 8, NULL, 0, 1, hi_step, ws);
    memcpy(s, l, sizeof s);
    int b = sampler_next(&sp, s, 8, NULL, 0, 1, lo_step, ws);
    CHECK_ON(a == 5, "u near 1 drew id %d, expected 5 (the last of nonzero probability)", a);
    CHECK_ON(b == 1, "u near 0 drew id %d, expected 1 (the first of nonzero probability)", b);
    sampler_scratch_free(ws);
}

/* ---- test 3: determinism ---- */

/* a row of logits that depends only on (seq, step) */
static void make_row(float *l, int V, uint64_t seq, uint64_t step)
{
    uint64_t st = (seq * 1000003 + step) * 0x9e3779b97f4a7c15ull | 1;
    for (int i = 0; i < V; i++) l[i] = 3.0f * test_frand(&st);
}

static void test_determinism(void)
{
    enum { NS = 3, NQ = 16, NT = 64 };
    const uint64_t seeds[NS] = {0, 1, 0x8000000000000005ull};
    static double fwd[NS][NQ][NT];
    for (int a = 0; a < NS; a++)
        for (int q = 0; q < NQ; q++)
            for (int t = 0; t < NT; t++) fwd[a][q][t] = sampler_uniform(seeds[a], (uint64_t)q, (uint64_t)t);
    int order_bad = 0, range_bad = 0;
    for (int a = NS - 1; a >= 0; a--) /* the other order, with unrelated draws in between */
        for (int t = NT - 1; t >= 0; t--)
            for (int q = NQ - 1; q >= 0; q--) {
                (void)sampler_uniform(seeds[a] + 17, (uint64_t)q * 3, (uint64_t)t + 1);
                double u = sampler_uniform(seeds[a], (uint64_t)q, (uint64_t)t);
                order_bad += memcmp(&u, &fwd[a][q][t], 8) != 0;
                range_bad += !(u >= 0.0 && u < 1.0);
            }
    double *all = &fwd[0][0][0];
    int n = NS * NQ * NT, dup = 0;
    double *sorted = test_xmalloc((size_t)n * 8);
    memcpy(sorted, all, (size_t)n * 8);
    qsort(sorted, (size_t)n, 8, cmp_double);
    for (int i = 1; i < n; i++) dup += sorted[i] == sorted[i - 1];
    printf("uniform: %d draws over (seed, seq, step): %d order-dependent, %d out of [0, 1), %d repeated; "
           "u(0,0,0) = %.17g, u(1,2,3) = %.17g\n",
           n, order_bad, range_bad, dup, sampler_uniform(0, 0, 0), sampler_uniform(1, 2, 3));
    CHECK_ON(order_bad == 0 && range_bad == 0, "sampler_uniform is not a pure function into [0, 1)");
    CHECK_ON(dup == 0, "%d equal draws across seeds, sequences and steps", dup);
    /* pinned: the stream is part of what --seed reproduces across versions */
    CHECK_ON(sampler_uniform(0, 0, 0) == 0x1.886040b8f5983p-1 && sampler_uniform(1, 2, 3) == 0x1.9dc01dacb174fp-1,
             "the stream changed: u(0,0,0) = %a, u(1,2,3) = %a", sampler_uniform(0, 0, 0), sampler_uniform(1, 2, 3));
    free(sorted);

    /* sampler_next: sequence 3 alone, then interleaved with two others in a rotating order, one scratch */
    enum { V = 1000, STEPS = 60, NSEQ = 3 };
    SampleParams sps[NSEQ];
    for (int i = 0; i < NSEQ; i++) sample_params_default(&sps[i]);
    sps[0].temperature = 0.9f, sps[0].top_p = 0.9, sps[0].repetition_penalty = 1.1f, sps[0].seed = 42;
    sps[1].temperature = 1.3f, sps[1].top_k = 0, sps[1].min_p = 0.05f, sps[1].seed = 42;
    sps[2].temperature = 0.0f, sps[2].repetition_penalty = 1.3f;
    const uint64_t seqid[NSEQ] = {3, 5, 7};
    int32_t hist[NSEQ][STEPS + 4], alone[STEPS];
    float *l = test_xmalloc(V * 4);
    SamplerScratch *ws = sampler_scratch_create(V), *ws2 = sampler_scratch_create(V);
    for (int i = 0; i < 4; i++) hist[0][i] = i * 7;
    for (int t = 0; t < STEPS; t++) {
        make_row(l, V, seqid[0], (uint64_t)t);
        alone[t] = hist[0][4 + t] = sampler_next(&sps[0], l, V, hist[0], 4 + t, seqid[0], (uint64_t)t, ws2);
    }
    int distinct = 0;
    for (int t = 0; t < STEPS; t++) {
        int seen = 0;
        for (int u = 0; u < t; u++) seen |= alone[u] == alone[t];
        distinct += !seen;
    }
    for (int q = 0; q < NSEQ; q++)
        for (int i = 0; i < 4; i++) hist[q][i] = i * 7 + q;
    for (int i = 0; i < 4; i++) hist[0][i] = i * 7;
    int mismatch = 0;
    for (int t = 0; t < STEPS; t++)
        for (int r = 0; r < NSEQ; r++) {
            int q = (r + t) % NSEQ;
            make_row(l, V, seqid[q], (uint64_t)t);
            hist[q][4 + t] = sampler_next(&sps[q], l, V, hist[q], 4 + t, seqid[q], (uint64_t)t, ws);
            if (q == 0) mismatch += hist[0][4 + t] != alone[t];
        }
    printf("interleaving: sequence 3 drew %d distinct ids in %d steps alone; interleaved with 2 others, %d "
           "differ\n",
           distinct, STEPS, mismatch);
    CHECK_ON(mismatch == 0, "sequence 3's ids depend on the other sequences (%d of %d differ)", mismatch, STEPS);
    CHECK_ON(distinct >= 10, "only %d distinct ids: the interleaving check would prove nothing", distinct);
    sampler_scratch_free(ws), sampler_scratch_free(ws2);
    free(l);
}

/* ---- test 4: greedy ---- */

static void test_greedy(void)
{
    SampleParams sp;
    sample_params_default(&sp);
    SamplerScratch *ws = sampler_scratch_create(64);
    float a[7] = {1.0f, 5.0f, 3.0f, 5.0f, 5.0f, -INFINITY, 2.0f};
    CHECK_ON(sampler_next(&sp, a, 7, NULL, 0, 0, 0, ws) == 1, "tie at the max: not the lowest id");
    float b[4] = {NAN, 2.0f, 7.0f, 7.0f};
    CHECK_ON(sampler_next(&sp, b, 4, NULL, 0, 0, 0, ws) == 2, "NaN won, or the tie went to the higher id");
    float big[40];
    for (int i = 0; i < 40; i++) big[i] = (float)(i % 13); /* the max 12 at ids 12, 25, 38: past a 16-block */
    CHECK_ON(sampler_argmax(big, 40) == 12, "argmax over blocks: %d", sampler_argmax(big, 40));
    /* the penalty makes a tie (3 / 1.5 = 2): the lowest id wins; duplicates penalize once */
    sp.repetition_penalty = 1.5f;
    const int32_t once[1] = {0}, thrice[3] = {0, 0, 0};
    float c[3] = {3.0f, 2.0f, 1.0f};
    CHECK_ON(sampler_next(&sp, c, 3, once, 1, 0, 0, ws) == 0 && c[0] == 2.0f, "penalized tie: %g", c[0]);
    float d[3] = {3.0f, 2.0f, 1.0f};
    CHECK_ON(sampler_next(&sp, d, 3, thrice, 3, 0, 0, ws) == 0 && d[0] == 2.0f, "id 0 three times: %g", d[0]);
    /* the seen marks are cleared: the next call penalizes id 0 again */
    float e[3] = {3.0f, 2.5f, 1.0f};
    CHECK_ON(sampler_next(&sp, e, 3, once, 1, 0, 0, ws) == 1 && e[0] == 2.0f, "second call: id 0 scored %g", e[0]);
    /* negative scores are multiplied, 0 and -inf stay, out-of-range ids are skipped */
    const int32_t ids[5] = {0, 1, 2, 99, -4};
    float f[3] = {-2.0f, 0.0f, -INFINITY};
    sampler_process(&sp, f, 3, ids, 5, ws);
    CHECK_ON(f[0] == -3.0f && f[1] == 0.0f && f[2] == -INFINITY, "penalty: %g %g %g", f[0], f[1], f[2]);
    /* greedy ignores the warpers: top-k 1 would keep only the max, but the scores are only penalized */
    sp.top_k = 1, sp.top_p = 0.1, sp.min_p = 0.5f;
    float g[3] = {1.0f, 4.0f, 2.0f};
    sampler_process(&sp, g, 3, NULL, 0, ws);
    CHECK_ON(g[0] == 1.0f && g[2] == 2.0f, "greedy applied a warper");
    printf("greedy: lowest id on ties, NaN never wins, penalty once per distinct id, warpers off\n");
    sampler_scratch_free(ws);
}

/* Two rules no golden case sits close enough to pin: min-p's strict < (a token whose p equals
 * min_p * max(p) stays), and top-p's threshold float32(1 - top_p) taken in double from 0.9, not from
 * the float 0.9f (1 - 0.9 -> 0.1f; 1 - (double)0.9f -> 0.100000024f). Both build rows on the
 * sampler's own arithmetic (expf(x - max), the sum in double, times float32(1 / sum)). */
static void test_rule_edges(void)
{
    SamplerScratch *ws = sampler_scratch_create(8);
    SampleParams sp;
    sample_params_default(&sp);
    sp.temperature = 1.0f, sp.top_k = 0;
    float a[3] = {0.0f, -1.0f, -3.0f};
    sp.min_p = expf(-1.0f); /* p(id 1) = expf(-1) * inv = min_p * max(p), exactly */
    sampler_process(&sp, a, 3, NULL, 0, ws);
    CHECK_ON(a[0] == 0.0f && a[1] == -1.0f && a[2] == -INFINITY, "min-p at equality: %g %g %g (expected 0 -1 -inf)",
             a[0], a[1], a[2]);

    /* logits {0, x} with p(id 1) the first float above 0.1f: HF keeps it at top_p 0.9 (cum > 0.1f) */
    float x = logf(1.0f / 9.0f) - 1e-4f, p1 = 0.0f;
    for (int i = 0; i < 100000 && !(p1 > 0.1f); i++) {
        x = nextafterf(x, 0.0f);
        float e1 = expf(x);
        p1 = e1 * (float)(1.0 / (1.0 + (double)e1));
    }
    CHECK_ON(p1 > 0.1f && p1 <= 0.100000024f, "no row found: p %.9g", p1);
    sp.min_p = 0.0f, sp.top_p = 0.9;
    float b[2] = {0.0f, x};
    sampler_process(&sp, b, 2, NULL, 0, ws);
    CHECK_ON(b[1] == x, "top_p 0.9: p %.9g > 0.1f was removed (threshold taken from the float 0.9f?)", p1);
    printf("rule edges: min-p keeps p == min_p * max(p); top_p 0.9 keeps a token of p %.9g > 0.1f\n", p1);
    sampler_scratch_free(ws);
}

/* Rows no model should produce (NaN, +inf, nothing finite) through every kind of step: a valid id
 * always, never a NaN or -inf one while a finite one exists, a +inf one when there is one (it is the
 * argmax), and no NaN left where a warper listed the row. Run under ASan/UBSan too. */
static void test_nonfinite(void)
{
    enum { V = 3000 };
    SamplerScratch *ws = sampler_scratch_create(V);
    float *l = test_xmalloc(V * 4), *s = test_xmalloc(V * 4);
    const float T[] = {0.0f, 1.0f, 0.7f, 1.0f, 1.0f, 1.0f};
    const int K[] = {-1, 0, -1, 0, 0, 500};
    const double P[] = {1.0, 1.0, 0.9, 0.9, 1.0, 0.5};
    const float MP[] = {0.0f, 0.0f, 0.0f, 0.0f, 0.1f, 0.05f};
    int bad = 0, nan_left = 0, runs = 0;
    for (int row = 0; row < 4; row++) {
        uint64_t st = 11 + (uint64_t)row;
        for (int i = 0; i < V; i++) {
            float r = test_frand(&st);
            l[i] = row == 2 ? -INFINITY : row == 3 ? NAN : 3.0f * r;
            if (row < 2 && i % 97 == 5) l[i] = NAN;
            if (row < 2 && i % 89 == 7) l[i] = -INFINITY;
        }
        if (row == 1) l[1234] = INFINITY;
        for (int c = 0; c < 6; c++)
            for (int step = 0; step < 20; step++) {
                SampleParams sp;
                sample_params_default(&sp);
                sp.temperature = T[c], sp.top_k = K[c], sp.top_p = P[c], sp.min_p = MP[c], sp.seed = 3;
                memcpy(s, l, V * 4);
                int t = sampler_next(&sp, s, V, NULL, 0, 0, (uint64_t)step, ws);
                bool ok = t >= 0 && t < V;
                if (ok && row == 0) ok = l[t] > -INFINITY;
                if (ok && row == 1) ok = t == 1234;
                bad += !ok;
                if (P[c] < 1.0 || MP[c] > 0.0f) {
                    memcpy(s, l, V * 4);
                    sampler_process(&sp, s, V, NULL, 0, ws);
                    for (int i = 0; i < V; i++) nan_left += row != 1 && s[i] != s[i];
                }
                runs++;
            }
    }
    CHECK_ON(bad == 0, "%d of %d draws on non-finite rows gave an invalid or NaN/-inf id", bad, runs);
    CHECK_ON(nan_left == 0, "%d NaN scores left after a listing warper", nan_left);
    printf("non-finite rows: %d draws (NaN, +inf, all -inf, all NaN), %d bad\n", runs, bad);
    sampler_scratch_free(ws);
    free(l), free(s);
}

static void test_params_check(void)
{
    SampleParams p;
    sample_params_default(&p);
    CHECK_ON(sample_params_check(&p) == NULL, "the defaults are refused: %s", sample_params_check(&p));
    CHECK_ON(p.temperature == 0.0f && p.top_k == -1 && p.top_p == 1.0 && p.min_p == 0.0f &&
                 p.repetition_penalty == 1.0f && p.seed == 0,
             "defaults");
    SampleParams ok = p;
    ok.temperature = 0.7f, ok.top_k = 50, ok.top_p = 0.0, ok.min_p = 1.0f, ok.repetition_penalty = 0.5f;
    CHECK_ON(sample_params_check(&ok) == NULL, "valid params refused: %s", sample_params_check(&ok));
    struct {
        const char *field;
        SampleParams p;
    } bad[] = {
        {"temperature", p},
        {"temperature", p},
        {"temperature", p},
        {"top_k", p},
        {"top_p", p},
        {"top_p", p},
        {"top_p", p},
        {"min_p", p},
        {"min_p", p},
        {"min_p", p},
        {"repetition_penalty", p},
        {"repetition_penalty", p},
        {"repetition_penalty", p},
        {"repetition_penalty", p},
    };
    bad[0].p.temperature = -0.1f, bad[1].p.temperature = NAN, bad[2].p.temperature = INFINITY;
    bad[3].p.top_k = -2;
    bad[4].p.top_p = 1.01, bad[5].p.top_p = -0.1, bad[6].p.top_p = NAN;
    bad[7].p.min_p = -0.01f, bad[8].p.min_p = 1.5f, bad[9].p.min_p = NAN;
    bad[10].p.repetition_penalty = 0.0f, bad[11].p.repetition_penalty = -1.0f;
    bad[12].p.repetition_penalty = NAN, bad[13].p.repetition_penalty = INFINITY;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *m = sample_params_check(&bad[i].p);
        CHECK_ON(m && strncmp(m, bad[i].field, strlen(bad[i].field)) == 0 && m[strlen(bad[i].field)] == ':',
                 "bad %s (case %zu): message %s", bad[i].field, i, m ? m : "NULL");
    }
    printf("params: %zu invalid settings refused naming the field\n", sizeof bad / sizeof bad[0]);
}

/* ---- not a test: ms per sampler_next call at BLOOM's V ---- */

/* only: -1 = every configuration, else that one */
static void speed(int only)
{
    enum { V = 250880, REPS = 200 };
    float *l = test_xmalloc((size_t)V * 4), *s = test_xmalloc((size_t)V * 4);
    uint64_t st = 77;
    for (int i = 0; i < V; i++) { /* roughly normal, std 2.5 (sum of 4 uniforms) */
        float z = test_frand(&st) + test_frand(&st) + test_frand(&st) + test_frand(&st);
        l[i] = 2.5f * z * 0.866f;
    }
    int32_t prev[100];
    for (int i = 0; i < 100; i++) prev[i] = (int32_t)((uint64_t)i * 2654435761u % V);
    SamplerScratch *ws = sampler_scratch_create(V);
    struct {
        const char *what;
        float T;
        int k;
        float p, mp, rep;
        int nprev;
    } cfg[] = {
        {"greedy", 0.0f, -1, 1.0f, 0.0f, 1.0f, 0},
        {"temperature 0.8 + default top-k 50", 0.8f, -1, 1.0f, 0.0f, 1.0f, 0},
        {"top-p 0.9, top-k 0", 1.0f, 0, 0.9f, 0.0f, 1.0f, 0},
        {"rep 1.2, T 0.7, k 50, p 0.9, min-p 0.05, 100 prev", 0.7f, 50, 0.9f, 0.05f, 1.2f, 100},
        {"temperature 1.0, top-k 0 (plain softmax draw)", 1.0f, 0, 1.0f, 0.0f, 1.0f, 0},
        {"greedy + rep 1.2, 100 prev", 0.0f, -1, 1.0f, 0.0f, 1.2f, 100},
    };
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        if (only >= 0 && (size_t)only != c) continue;
        SampleParams sp;
        sample_params_default(&sp);
        sp.temperature = cfg[c].T, sp.top_k = cfg[c].k, sp.top_p = cfg[c].p, sp.min_p = cfg[c].mp;
        sp.repetition_penalty = cfg[c].rep, sp.seed = 1;
        static double ms[REPS];
        long sum = 0;
        for (int r = 0; r < REPS; r++) {
            memcpy(s, l, (size_t)V * 4);
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            sum += sampler_next(&sp, s, V, prev, cfg[c].nprev, 0, (uint64_t)r, ws);
            clock_gettime(CLOCK_MONOTONIC, &b);
            ms[r] = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6;
        }
        qsort(ms, REPS, sizeof ms[0], cmp_double);
        printf("V=%d %-52s %.3f ms per sampler_next (median of %d; min %.3f; id sum %ld)\n", V, cfg[c].what,
               ms[REPS / 2], REPS, ms[0], sum);
    }
    sampler_scratch_free(ws);
    free(l), free(s);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* FAIL lines (stderr) land next to the case they belong to */
    if (argc >= 2 && strcmp(argv[1], "--speed") == 0) {
        speed(argc > 2 ? atoi(argv[2]) : -1);
        return 0;
    }
    CHECK(argc == 2, "usage: test_sampler GOLDEN_DIR | --speed [CONFIG]");
    test_params_check();
    test_greedy();
    test_rule_edges();
    test_nonfinite();
    test_golden(argv[1]);
    test_warpers_vs_reference();
    test_chi_square();
    test_draw_edges();
    test_determinism();
    printf("%s: %d of %d checks failed\n", test_fail_count ? "FAIL" : "ok", test_fail_count, test_check_count);
    return test_fail_count ? 1 : 0;
}
