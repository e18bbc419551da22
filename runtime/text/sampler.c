/* Hugging Face generate's choice of the next token on one row of logits (see sampler.h): the repetition
 * penalty, the sampling warpers (temperature, top-k, top-p, min-p) and an inverse-CDF draw from a
 * counter-based stream. Each rule mirrors a class of transformers 5's generation/logits_process.py and is
 * pinned by ../shared/golden/textgen/README.md ("HF semantics observed"). Deliberately not here: torch's
 * random numbers (only the distribution torch.multinomial samples is reproduced), a sort of the
 * vocabulary (selection instead) and allocation per call (SamplerScratch is sized for V once).
 * V vocabulary, k top-k, n listed ids (the finite scores that survive so far) */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GenerationConfig's top_k when do_sample is set and no top_k is given (configuration_utils.py,
 * _get_default_generation_params) */
#define SAMPLER_DEFAULT_TOP_K 50
/* top-p over more candidates than this first sorts their mass into score buckets (one pass) */
#define SAMPLER_BUCKET_MIN 1024
#define SAMPLER_BUCKETS    2048

struct SamplerScratch {
    int V;
    float *e;         /* (V) by id: the top-k heap (first k), then exp(score - emax) of the listed ids */
    int32_t *live;    /* (V) the listed ids, ascending */
    int32_t *part;    /* (2V) top-p: the two candidate buffers of the selection */
    double *mass;     /* (SAMPLER_BUCKETS) top-p: probability per score bucket */
    uint8_t *seen;    /* (V) repetition penalty: 1 while an id is penalized in this call, all 0 between calls */
    bool e_live;      /* e holds exp(s - emax) for every listed id (warpers only remove, and never the max) */
    float emax, emin; /* the largest and smallest listed score when e was made */
};

void sample_params_default(SampleParams *p)
{
    *p = (SampleParams){.temperature = 0.0f, .top_k = -1, .top_p = 1.0, .min_p = 0.0f, .repetition_penalty = 1.0f};
}

/* The ranges of the HF classes' own checks (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
 * MinPLogitsWarper, RepetitionPenaltyLogitsProcessor), with temperature 0 = greedy and top_k -1 = not
 * given. Other negative top_k are refused here (a typo, not a request), though sampler_process treats
 * every negative top_k as not given. */
const char *sample_params_check(const SampleParams *p)
{
    if (!(p->temperature >= 0.0f) || isinf(p->temperature))
        return "temperature: expected a finite number >= 0 (0 = greedy)";
    if (p->top_k < -1) return "top_k: expected an integer >= 0 (0 = off), or -1 = not given (50 when sampling)";
    if (!(p->top_p >= 0.0 && p->top_p <= 1.0)) return "top_p: expected a number in [0, 1] (1 = off)";
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) return "min_p: expected a number in [0, 1] (0 = off)";
    if (!(p->repetition_penalty > 0.0f) || isinf(p->repetition_penalty))
        return "repetition_penalty: expected a finite number > 0 (1 = off)";
    return NULL;
}

SamplerScratch *sampler_scratch_create(int V)
{
    if (V <= 0) return NULL;
    SamplerScratch *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->V = V;
    ws->e = malloc((size_t)V * sizeof *ws->e);
    ws->live = malloc((size_t)V * sizeof *ws->live);
    ws->part = malloc(2 * (size_t)V * sizeof *ws->part);
    ws->mass = malloc(SAMPLER_BUCKETS * sizeof *ws->mass);
    ws->seen = calloc((size_t)V, 1);
    if (!ws->e || !ws->live || !ws->part || !ws->mass || !ws->seen) {
        sampler_scratch_free(ws);
        return NULL;
    }
    return ws;
}

void sampler_scratch_free(SamplerScratch *ws)
{
    if (!ws) return;
    free(ws->e);
    free(ws->live);
    free(ws->part);
    free(ws->mass);
    free(ws->seen);
    free(ws);
}

/* a row wider than the scratch is a caller's bug with no sensible answer */
static void sampler_check_width(const SamplerScratch *ws, int V)
{
    if (ws && V <= ws->V) return;
    fprintf(stderr, "[pp8] error %s:%d: sampler scratch for %d logits used on a row of %d\n", __FILE__, __LINE__,
            ws ? ws->V : 0, V);
    abort();
}

/* ---- passes over V. Blocks of 16 with fixed-count inner loops are what gcc -O2 vectorizes (its
 * very-cheap cost model leaves loops that need an epilogue scalar), as in sampler_argmax. ---- */

static int sampler_block_any_gt(const float *v, float lo)
{
    int any = 0;
    for (int l = 0; l < 16; l++) any |= v[l] > lo;
    return any;
}

static int sampler_block_any_ge(const float *v, float lo)
{
    int any = 0;
    for (int l = 0; l < 16; l++) any |= v[l] >= lo;
    return any;
}

static int sampler_block_all_finite(const float *v)
{
    int all = 1;
    for (int l = 0; l < 16; l++) all &= v[l] > -INFINITY;
    return all;
}

/* ---- the processors, in _get_logits_processor's order ---- */

/* RepetitionPenaltyLogitsProcessor: gather the scores of input_ids, s < 0 ? s * p : s / p in float32,
 * scatter back; gather-then-scatter penalizes an id once however often it occurs, which seen[] gives in
 * O(nprev). Ids outside [0, V) are skipped (torch's gather would raise). */
static void sampler_penalize(float penalty, float *s, int V, const int32_t *prev, int nprev, uint8_t *seen)
{
    for (int j = 0; j < nprev; j++) {
        int32_t id = prev[j];
        if ((uint32_t)id >= (uint32_t)V || seen[id]) continue;
        seen[id] = 1;
        float x = s[id];
        s[id] = x < 0.0f ? x * penalty : x / penalty;
    }
    for (int j = 0; j < nprev; j++)
        if ((uint32_t)prev[j] < (uint32_t)V) seen[prev[j]] = 0;
}

/* TemperatureLogitsWarper: scores / float32(T), a true division (times 1/T is not bit-identical) */
static void sampler_temperature(float t, float *s, int V)
{
    int i = 0;
    for (; i + 16 <= V; i += 16)
        for (int l = 0; l < 16; l++) s[i + l] = s[i + l] / t;
    for (; i < V; i++) s[i] = s[i] / t;
}

/* ids of the finite scores, ascending; a NaN score becomes -inf (removed) */
static int sampler_list_finite(float *s, int V, int32_t *live)
{
    int n = 0, i = 0;
    for (; i + 16 <= V; i += 16) {
        if (sampler_block_all_finite(s + i)) {
            for (int l = 0; l < 16; l++) live[n + l] = i + l;
            n += 16;
            continue;
        }
        for (int l = 0; l < 16; l++) {
            float x = s[i + l];
            live[n] = i + l;
            n += x > -INFINITY;
            s[i + l] = x > -INFINITY ? x : -INFINITY;
        }
    }
    for (; i < V; i++) {
        float x = s[i];
        live[n] = i;
        n += x > -INFINITY;
        s[i] = x > -INFINITY ? x : -INFINITY;
    }
    return n;
}

static void sampler_heap_down(float *h, int k, int i)
{
    float x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= k) break;
        if (c + 1 < k && h[c + 1] < h[c]) c++;
        if (!(h[c] < x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* the k-th largest of s[0, V) (torch.topk(scores, k).values[-1]; -inf when fewer than k are finite), from a
 * min-heap of the k largest so far in one pass; on real rows few values ever enter the heap, and blocks
 * of 16 with none above its least are skipped by a vectorized test. NaN counts as -inf. */
static float sampler_kth_largest(const float *s, int V, int k, float *h)
{
    for (int i = 0; i < k; i++) h[i] = s[i] == s[i] ? s[i] : -INFINITY;
    for (int i = k / 2 - 1; i >= 0; i--) sampler_heap_down(h, k, i);
    float lo = h[0];
    int i = k;
    for (; i < V && i % 16; i++)
        if (s[i] > lo) h[0] = s[i], sampler_heap_down(h, k, 0), lo = h[0];
    for (; i + 16 <= V; i += 16) {
        if (!sampler_block_any_gt(s + i, lo)) continue;
        for (int l = 0; l < 16; l++)
            if (s[i + l] > lo) h[0] = s[i + l], sampler_heap_down(h, k, 0), lo = h[0];
    }
    for (; i < V; i++)
        if (s[i] > lo) h[0] = s[i], sampler_heap_down(h, k, 0), lo = h[0];
    return lo;
}

/* TopKLogitsWarper: k = min(max(top_k, min_tokens_to_keep = 1), V) (the caller has 0 < k < V), remove =
 * scores < the k-th largest, so every token tied with the k-th survives and a -inf k-th removes nothing.
 * Lists the survivors. */
static int sampler_top_k(float *s, int V, int k, SamplerScratch *ws)
{
    float kth = sampler_kth_largest(s, V, k, ws->e);
    int32_t *live = ws->live;
    int n = 0, i = 0;
    for (; i + 16 <= V; i += 16) {
        if (!sampler_block_any_ge(s + i, kth)) {
            for (int l = 0; l < 16; l++) s[i + l] = -INFINITY;
            continue;
        }
        for (int l = 0; l < 16; l++) {
            float x = s[i + l];
            if (!(x >= kth))
                s[i + l] = -INFINITY;
            else if (x > -INFINITY)
                live[n++] = i + l;
        }
    }
    for (; i < V; i++) {
        float x = s[i];
        if (!(x >= kth))
            s[i] = -INFINITY;
        else if (x > -INFINITY)
            live[n++] = i;
    }
    return n;
}

/* The softmax's terms over the listed ids, as torch.softmax forms them: e = exp(x - max); the
 * probability is then e * float32(1 / sum). Computed once per call: the warpers after the first only
 * remove ids, never the max, so e stays valid and only the sum is redone. Returns the sum (in double,
 * where torch's vectorized float sum differs in the last bits). */
static double sampler_exp_live(const float *s, const int32_t *live, int n, SamplerScratch *ws)
{
    float *e = ws->e;
    double sum = 0.0;
    if (ws->e_live) {
        for (int j = 0; j < n; j++) sum += e[live[j]];
        return sum;
    }
    float hi[16], lo[16];
    for (int l = 0; l < 16; l++) hi[l] = -INFINITY, lo[l] = INFINITY;
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) {
            float x = s[live[j + l]];
            hi[l] = x > hi[l] ? x : hi[l];
            lo[l] = x < lo[l] ? x : lo[l];
        }
    float mx = -INFINITY, mn = INFINITY;
    for (int l = 0; l < 16; l++) mx = hi[l] > mx ? hi[l] : mx, mn = lo[l] < mn ? lo[l] : mn;
    for (; j < n; j++) {
        float x = s[live[j]];
        mx = x > mx ? x : mx, mn = x < mn ? x : mn;
    }
    for (j = 0; j < n; j++) {
        float v = expf(s[live[j]] - mx);
        e[live[j]] = v;
        sum += v;
    }
    ws->emax = mx, ws->emin = mn;
    ws->e_live = true;
    return sum;
}

/* drops the ids whose score is now -inf from live, keeping the order */
static int sampler_compact(const float *s, int32_t *live, int n)
{
    int m = 0;
    for (int j = 0; j < n; j++) {
        live[m] = live[j];
        m += s[live[j]] > -INFINITY;
    }
    return m;
}

/* TopPLogitsWarper compares with float32(1 - top_p), 1 - top_p taken in Python's double */
static float sampler_top_p_threshold(double top_p) { return (float)(1.0 - top_p); }

static float sampler_median3(float a, float b, float c)
{
    if (a > b) {
        float t = a;
        a = b, b = t;
    }
    return c < a ? a : c > b ? b : c;
}

/* Top-p's first cut over many candidates: the listed ids' mass by score bucket in one pass, every bucket
 * below the one where the running sum passes thr removed, every bucket above kept; a gets the ids of that
 * bucket (ascending, less the first max, which always stays), *base the mass removed, and live keeps
 * only the ids of that bucket and above (*nlive). The bucket (x - lo) * scale is monotone in the score
 * (float rounding never reverses an order), so ties share one and the buckets follow the sort. Returns
 * how many are in a, or -1 when the scores span too little for buckets (nothing done). */
static int sampler_top_p_buckets(float *s, int32_t *live, int n, float inv, float thr, int32_t *a, int32_t *key,
                                 double *base, int *nlive, SamplerScratch *ws)
{
    const float lo = ws->emin, mx = ws->emax, *e = ws->e;
    const float scale = (float)SAMPLER_BUCKETS / (mx - lo);
    /* +inf logits, or a span of scores that is 0, subnormal or past FLT_MAX: no bucket math */
    if (!(mx > lo) || !(scale > 0.0f && scale < INFINITY)) return -1;
    double *mass = ws->mass;
    memset(mass, 0, SAMPLER_BUCKETS * sizeof *mass);
    int top_seen = 0;
    for (int j = 0; j < n; j++) {
        int32_t id = live[j];
        float x = s[id], t = (x - lo) * scale;
        int k = t < (float)(SAMPLER_BUCKETS - 1) ? (int)t : SAMPLER_BUCKETS - 1;
        int is_top = !top_seen && x == mx;
        top_seen |= is_top;
        key[j] = is_top ? INT32_MAX : k; /* the first max: above every bucket (bb may be all of them), kept */
        mass[k] += is_top ? 0.0 : (double)(e[id] * inv);
    }
    int bb = 0;
    double c = 0.0;
    for (; bb < SAMPLER_BUCKETS; bb++) {
        if ((float)(c + mass[bb]) > thr) break;
        c += mass[bb];
    }
    int m = 0, nk = 0;
    for (int j = 0; j < n; j++) {
        int32_t id = live[j];
        int k = key[j];
        if (k < bb) s[id] = -INFINITY;
        a[m] = id, live[nk] = id;
        m += k == bb, nk += k >= bb;
    }
    *base = c;
    *nlive = nk;
    return m;
}

/* TopPLogitsWarper: sort ascending, cum = cumsum(softmax(sorted)) (torch sums in double and rounds each
 * prefix to float32), remove where cum <= thr, the last min_tokens_to_keep = 1 (the max) always kept.
 * cum grows along the sort, so the removed tokens are the smallest ones up to the last prefix whose
 * rounded sum is <= thr. A quickselect finds that prefix in O(n) without sorting: partition around a
 * pivot score; if everything below it fits, remove it and go on above, else go down (many candidates
 * are first cut to one bucket's worth, sampler_top_p_buckets). Only the summation order differs from
 * torch's (in double, far below float32's rounding). Ties: torch.sort's order is arbitrary; here the
 * higher id of a tie goes first, so lower ids survive, as argmax prefers them. */
static int sampler_top_p(double top_p, float *s, int V, int n, SamplerScratch *ws)
{
    if (n <= 1) return n;
    const float thr = sampler_top_p_threshold(top_p);
    int32_t *live = ws->live;
    const float inv = (float)(1.0 / sampler_exp_live(s, live, n, ws)), mx = ws->emax;
    const float *e = ws->e;
    int32_t *a = ws->part, *b = ws->part + V; /* candidates, and where a partition writes */
    double base = 0.0;                        /* the mass removed so far: every score below the candidates' */
    int m = n > SAMPLER_BUCKET_MIN ? sampler_top_p_buckets(s, live, n, inv, thr, a, b, &base, &n, ws) : -1;
    if (m < 0) {
        m = 0;
        int top_seen = 0;
        for (int j = 0; j < n; j++) { /* every listed id but the first max */
            int is_top = !top_seen && s[live[j]] == mx;
            top_seen |= is_top;
            a[m] = live[j];
            m += !is_top;
        }
    }
    while (m > 0) {
        float piv = sampler_median3(s[a[0]], s[a[m / 2]], s[a[m - 1]]);
        /* below the pivot -> b from the front, equal -> b from the back (so b[m - neq ...] runs from the
         * highest id down), above -> a, in place. Branch-free: every slot is written and only the counter
         * that owns it moves (the unwritten slots lie outside what has been kept), since on real rows the
         * three-way branch mispredicts about half the time. */
        int nlt = 0, neq = 0, ngt = 0;
        double mlt = 0.0;
        for (int j = 0; j < m; j++) {
            int32_t id = a[j];
            float x = s[id];
            int lt = x<piv, gt = x> piv;
            b[nlt] = id, b[m - 1 - neq] = id, a[ngt] = id;
            mlt += lt ? (double)(e[id] * inv) : 0.0;
            nlt += lt, ngt += gt, neq += 1 - lt - gt;
        }
        if ((float)(base + mlt) > thr) { /* the boundary lies below the pivot: go down */
            int32_t *t = a;
            a = b, b = t, m = nlt;
            continue;
        }
        base += mlt;
        for (int j = 0; j < nlt; j++) s[b[j]] = -INFINITY;
        int j = m - neq;
        for (; j < m; j++) { /* the tie at the pivot, one at a time, as the sorted cumsum meets them */
            double c = base + (double)(e[b[j]] * inv);
            if ((float)c > thr) break;
            base = c;
            s[b[j]] = -INFINITY;
        }
        if (j < m) break; /* part of the tie survives, and so does everything above */
        m = ngt;
    }
    return sampler_compact(s, live, n);
}

/* MinPLogitsWarper: p = softmax(scores), remove p < float32(min_p) * max(p) (strict, float32), the
 * argmax kept (min_tokens_to_keep = 1; the ids tied at the max have p = max(p) and stay anyway, so
 * min_p = 1 keeps exactly them). */
static int sampler_min_p(float min_p, float *s, int n, SamplerScratch *ws)
{
    if (n <= 1) return n;
    int32_t *live = ws->live;
    const float inv = (float)(1.0 / sampler_exp_live(s, live, n, ws)), mx = ws->emax;
    const float cut = min_p * inv; /* max(p) = exp(0) * inv */
    int m = 0;
    for (int j = 0; j < n; j++) {
        int32_t id = live[j];
        if (ws->e[id] * inv < cut && s[id] != mx)
            s[id] = -INFINITY;
        else
            live[m++] = id;
    }
    return m;
}

/* The warpers generate adds only when do_sample (temperature > 0). Returns how many ids ws->live lists,
 * or -1 when no warper needed the list (temperature alone, or nothing). */
static int sampler_warp(const SampleParams *p, float *s, int V, SamplerScratch *ws)
{
    ws->e_live = false;
    if (p->temperature != 1.0f) sampler_temperature(p->temperature, s, V);
    int n = -1;
    int k = p->top_k < 0 ? SAMPLER_DEFAULT_TOP_K : p->top_k;
    if (k > 0 && k < V) n = sampler_top_k(s, V, k, ws); /* k >= V removes nothing */
    if (p->top_p < 1.0) {
        if (n < 0) n = sampler_list_finite(s, V, ws->live);
        n = sampler_top_p(p->top_p, s, V, n, ws);
    }
    if (p->min_p > 0.0f) {
        if (n < 0) n = sampler_list_finite(s, V, ws->live);
        n = sampler_min_p(p->min_p, s, n, ws);
    }
    return n;
}

void sampler_process(const SampleParams *p, float *scores, int V, const int32_t *prev, int nprev, SamplerScratch *ws)
{
    sampler_check_width(ws, V);
    if (p->repetition_penalty != 1.0f) sampler_penalize(p->repetition_penalty, scores, V, prev, nprev, ws->seen);
    if (p->temperature > 0.0f) sampler_warp(p, scores, V, ws);
}

/* ---- the draw ---- */

/* SplitMix64's output function (Steele, Lea, Flood 2014, "Fast splittable pseudorandom number
 * generators"): a bijection of 64 bits with full avalanche */
static uint64_t sampler_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* (seed, seq) picks a starting point of SplitMix64's Weyl sequence and step walks along it, so a draw
 * depends on nothing but its three numbers, and two sequences' streams overlap only if their starts land
 * within a generation's length of each other in a cycle of 2^64. Not torch's generator, and not
 * cryptographic. 53 bits: u = k / 2^53 < 1. */
double sampler_uniform(uint64_t seed, uint64_t seq, uint64_t step)
{
    const uint64_t golden = 0x9e3779b97f4a7c15ull;
    /* seq enters through its own Weyl step: the mixer alone on consecutive inputs (h ^ 0, h ^ 1, ...)
     * is a known weak spot of SplitMix-style finalizers */
    uint64_t start = sampler_mix64(sampler_mix64(seed ^ 0x243f6a8885a308d3ull) + (seq + 1) * 0xd1b54a32d192ed03ull);
    return (double)(sampler_mix64(start + (step + 1) * golden) >> 11) * 0x1.0p-53;
}

/* torch.multinomial(softmax(scores)) with our u: the inverse CDF over the listed ids, ascending. The
 * first id whose running sum passes u * total; an id of probability 0 never is (its term adds nothing),
 * and when rounding leaves u * total at or above the final sum, the last id of nonzero probability. */
static int32_t sampler_draw(const float *s, int V, int n, SamplerScratch *ws, double u)
{
    const int32_t *live = ws->live;
    double sum = n > 0 ? sampler_exp_live(s, live, n, ws) : 0.0;
    if (!(sum > 0.0) || isinf(sum)) return sampler_argmax(s, V); /* nothing finite, or +inf / NaN logits */
    const float *e = ws->e;
    double target = u * sum, c = 0.0;
    int32_t last = -1;
    for (int j = 0; j < n; j++) {
        float v = e[live[j]];
        if (!(v > 0.0f)) continue;
        c += v;
        last = live[j];
        if (c > target) return last;
    }
    return last >= 0 ? last : sampler_argmax(s, V);
}

int32_t sampler_next(const SampleParams *p, float *scores, int V, const int32_t *prev, int nprev, uint64_t seq,
                     uint64_t step, SamplerScratch *ws)
{
    sampler_check_width(ws, V);
    if (p->repetition_penalty != 1.0f) sampler_penalize(p->repetition_penalty, scores, V, prev, nprev, ws->seen);
    /* greedy: torch.argmax of the processed scores, the warpers not applied (_get_logits_processor) */
    if (!(p->temperature > 0.0f)) return sampler_argmax(scores, V);
    int n = sampler_warp(p, scores, V, ws);
    if (n < 0) n = sampler_list_finite(scores, V, ws->live);
    return sampler_draw(scores, V, n, ws, sampler_uniform(p->seed, seq, step));
}

/* greedy choice (torch.argmax): the first index of the largest value; NaNs never win (a row of NaNs
 * gives 0). Two passes so the compiler can vectorize the first (16 independent maxima; a > b ? a : b is
 * maxps): the dependent compare-and-index loop took ~1.5 ms per step over 8 x 50272 logits. Lanes start
 * at -inf, not v[0], so a NaN at 0 cannot stick. */
int32_t sampler_argmax(const float *v, int n)
{
    float lane[16];
    for (int l = 0; l < 16; l++) lane[l] = -INFINITY;
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) lane[l] = v[i + l] > lane[l] ? v[i + l] : lane[l];
    float best = -INFINITY;
    for (int l = 0; l < 16; l++) best = lane[l] > best ? lane[l] : best;
    for (; i < n; i++) best = v[i] > best ? v[i] : best;
    for (int j = 0; j < n; j++)
        if (v[j] == best) return j;
    return 0;
}
