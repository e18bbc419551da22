/* Loading one rank's slice of a model into one backend arena: size everything first, allocate once,
 * then fill tensor by tensor (converting dtypes, quantizing linear layers per row for LLM.int8(), or
 * taking an 8-bit checkpoint's CB/SCB as they are) and let the backend pack each linear layer.
 * Random weights (no --model) are a pure function of (seed, tensor name, index), so every rank and
 * every rank count builds identical weights. Running the model is forward.c's job. */
#include "model.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../../kernels/cpu/cpu_linear.h"
#include "../../kernels/numerics.h"
#include "../util/log.h"
#include "../util/proc.h"
#include "safetensors.h"

#define ALIGN 64

typedef struct Loader {
    Model *m;
    const Checkpoint *ck; /* NULL: random weights */
    uint64_t seed;
    char *cursor;         /* next free byte of the arena (carving pass) */
    size_t need;          /* bytes counted (sizing pass) */
    bool sizing;
    void *host;           /* staging buffer for one tensor, host memory */
    size_t host_bytes;
    float *host_scb;
    bool int8_head;       /* --int8-head: the LM head is carved and loaded as an int8 linear */
    Err *e;
} Loader;

/* ---- arena: the same walk sizes it and then carves it ---- */
static void *carve(Loader *ld, size_t bytes)
{
    bytes = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (ld->sizing) {
        ld->need += bytes;
        return NULL;
    }
    void *p = ld->cursor;
    ld->cursor += bytes;
    return p;
}

static void carve_linear(Loader *ld, Linear *w, DType wdt, int n, int k, bool bias)
{
    Backend *be = ld->m->be;
    w->wdt = wdt;
    w->n = n;
    w->k = k;
    w->w = carve(ld, be->linear_bytes(be->ctx, wdt, n, k));
    w->scb = wdt == DTYPE_I8 ? carve(ld, sizeof(float) * (size_t)n) : NULL;
    w->bias = bias ? carve(ld, 2 * (size_t)n) : NULL;
}

static void carve_all(Loader *ld)
{
    Model *m = ld->m;
    const Config *c = &m->cfg;
    size_t D = (size_t)c->hidden;
    if (m->first) {
        m->embed = carve(ld, 2 * (size_t)c->vocab * D);
        if (c->arch == ARCH_OPT) m->pos_embed = carve(ld, 2 * (size_t)(c->max_pos + 2) * D);
        if (c->arch == ARCH_BLOOM) {
            m->emb_ln_g = carve(ld, 2 * D);
            m->emb_ln_b = carve(ld, 2 * D);
        }
    }
    for (int l = 0; l < m->layer_end - m->layer_begin; l++) {
        LayerWeights *w = &m->layers[l];
        w->ln1_g = carve(ld, 2 * D);
        w->ln1_b = carve(ld, 2 * D);
        w->ln2_g = carve(ld, 2 * D);
        w->ln2_b = carve(ld, 2 * D);
        carve_linear(ld, &w->qkv, m->wdt, 3 * c->hidden, c->hidden, true);
        carve_linear(ld, &w->out, m->wdt, c->hidden, c->hidden, true);
        carve_linear(ld, &w->fc1, m->wdt, c->ffn, c->hidden, true);
        carve_linear(ld, &w->fc2, m->wdt, c->hidden, c->ffn, true);
    }
    if (m->last) {
        m->lnf_g = carve(ld, 2 * D);
        m->lnf_b = carve(ld, 2 * D);
        carve_linear(ld, &m->lm_head, ld->int8_head ? DTYPE_I8 : m->act, c->vocab, c->hidden, false);
    }
    if (c->arch == ARCH_BLOOM) m->alibi = carve(ld, sizeof(float) * (size_t)c->heads);
}

/* ---- random weights: counter-based, so independent of threads and ranks ---- */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

typedef enum { FILL_WEIGHT, FILL_EMBED, FILL_ONE, FILL_GAIN, FILL_BIAS } Fill;

/* Random weights that behave like a trained model where it matters for speed and testing:
 * - linear weights uniform with std 1/sqrt(K), so every block changes the residual stream (with
 *   transformers' 0.02 the embedding dominates and generation only repeats the prompt);
 * - embeddings std 0.02 (initializer_range); biases small;
 * - the gains of the LayerNorms in front of the linear layers are 1 except two feature dims (D/3 and
 *   2D/3) at 12, which gives LLM.int8() the few large-magnitude outlier features real models have
 *   (Dettmers et al. 2022, section 4) — as the golden tiny models do — so benchmarks pay for the
 *   decomposition. Every block starts from a LayerNorm, so activations stay finite at any depth. */
static float random_value(uint64_t key, size_t i, Fill f, int k)
{
    if (f == FILL_ONE) return 1.0f;
    if (f == FILL_GAIN) return (i == (size_t)k / 3 || i == 2 * (size_t)k / 3) ? 12.0f : 1.0f;
    /* one hash gives two 24-bit uniforms (loading a 1B-parameter model draws ~1e9 of them) */
    uint64_t r = mix64(key + (i >> 1));
    uint32_t bits = i & 1 ? (uint32_t)(r >> 40) : (uint32_t)(r >> 8) & 0xffffffu;
    float u = (float)bits * (1.0f / 16777216.0f) * 2.0f - 1.0f; /* [-1, 1) */
    if (f == FILL_BIAS) return 0.01f * u;
    if (f == FILL_EMBED) return 0.02f * 1.7320508f * u;
    return 1.7320508f / sqrtf((float)k) * u;
}

/* ---- fetching rows of one tensor into host staging, converted to `to` ----
 * A few MiB at a time, never a whole tensor: the loader's own memory stays small next to the arena, and
 * the checkpoint's pages are given back (MADV_DONTNEED: the mapping is private and read-only, so the
 * next touch would read the file again) as soon as their rows are converted, so a rank's resident
 * memory after loading is its plan, not its plan plus the 16-bit checkpoint it read. */
#define STAGE_BYTES ((size_t)16 << 20)

static void release_pages(const void *p, size_t bytes)
{
    static size_t page;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1), b = ((uintptr_t)p + bytes + page - 1) & ~(uintptr_t)(page - 1);
    if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED); /* advice: a refusal only costs memory */
}

static void convert_rows(uint16_t *dst, DType to, const void *src, DType from, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float f = from == DTYPE_F32   ? ((const float *)src)[i]
                  : from == DTYPE_F16 ? pp8_h2f(((const uint16_t *)src)[i])
                                      : pp8_bf2f(((const uint16_t *)src)[i]);
        dst[i] = to == DTYPE_BF16 ? pp8_f2bf(f) : pp8_f2h(f);
    }
}

/* rows [r0, r0 + nr) of tensor `name` ([rows, cols], or [rows] when cols = 0) into host */
static int fetch16(Loader *ld, uint16_t *host, DType to, const char *name, int64_t rows, int64_t cols, Fill fill,
                   int64_t r0, int64_t nr)
{
    size_t w = (size_t)(cols > 0 ? cols : 1), n = (size_t)nr * w, base = (size_t)r0 * w;
    if (!ld->ck) {
        uint64_t key = mix64(ld->seed ^ name_hash(name));
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            float f = random_value(key, base + i, fill, cols > 0 ? (int)cols : (int)rows);
            host[i] = to == DTYPE_BF16 ? pp8_f2bf(f) : pp8_f2h(f);
        }
        return 0;
    }
    const StTensor *t;
    int64_t shape[2] = {rows, cols};
    if (ckpt_get(ld->ck, &t, -1, cols > 0 ? 2 : 1, shape, ld->e, "%s", name)) return -1;
    const char *src = (const char *)t->data + base * dtype_size(t->dtype);
    convert_rows(host, to, src, t->dtype, n);
    release_pages(src, n * dtype_size(t->dtype));
    return 0;
}

static int stage_bytes(Loader *ld, size_t bytes)
{
    if (bytes <= ld->host_bytes) return 0;
    free(ld->host);
    ld->host = malloc(bytes);
    ld->host_bytes = ld->host ? bytes : 0;
    if (!ld->host) return err_set(ld->e, "out of host memory staging %zu bytes of weights", bytes);
    return 0;
}

/* rows per staged chunk for rows of `row_bytes`: a multiple of 16 (a packed block), at least 16 */
static int64_t chunk_rows(size_t row_bytes)
{
    int64_t r = (int64_t)(STAGE_BYTES / (row_bytes ? row_bytes : 1)) & ~(int64_t)15;
    return r < 16 ? 16 : r;
}

static int load16(Loader *ld, uint16_t *dst, const char *name, int64_t rows, int64_t cols, Fill fill)
{
    size_t w = (size_t)(cols > 0 ? cols : 1);
    int64_t step = cols > 0 ? chunk_rows(2 * w) : rows;
    if (stage_bytes(ld, 2 * w * (size_t)(step < rows ? step : rows))) return -1;
    for (int64_t r0 = 0; r0 < rows; r0 += step) {
        int64_t nr = rows - r0 < step ? rows - r0 : step;
        if (fetch16(ld, ld->host, ld->m->act, name, rows, cols, fill, r0, nr)) return -1;
        ld->m->be->to_device(ld->m->be->ctx, dst + (size_t)r0 * w, ld->host, 2 * w * (size_t)nr);
    }
    return 0;
}

/* Packs a 16-bit [n, k] matrix (or an int8 CB with its SCB) whose rows `get` produces chunk by chunk:
 * with the backend's linear_pack_rows a chunk at a time, else (a backend that packs whole matrices) all
 * rows staged at once. get(ld, ctx, buf, r0, nr) writes rows [r0, r0 + nr) (row-major, elem bytes each
 * element) and their SCB at ld->host_scb + r0 when int8. */
typedef int (*RowsFn)(Loader *ld, void *ctx, void *buf, int64_t r0, int64_t nr);

static int pack_by_rows(Loader *ld, Linear *w, size_t elem, RowsFn get, void *ctx)
{
    Backend *be = ld->m->be;
    size_t row = elem * (size_t)w->k;
    int64_t step = be->linear_pack_rows ? chunk_rows(row) : w->n;
    if (step > w->n) step = w->n;
    if (stage_bytes(ld, row * (size_t)step)) return -1;
    for (int64_t r0 = 0; r0 < w->n; r0 += step) {
        int64_t nr = w->n - r0 < step ? w->n - r0 : step;
        if (get(ld, ctx, ld->host, r0, nr)) return -1;
        const float *scb = w->wdt == DTYPE_I8 ? ld->host_scb + r0 : NULL;
        if (be->linear_pack_rows) be->linear_pack_rows(be->ctx, w, ld->host, scb, (int)r0, (int)nr);
        else be->linear_pack(be->ctx, w, ld->host, ld->host_scb);
    }
    return 0;
}

/* One Linear from nparts checkpoint linears stacked along the output rows (OPT's q_proj, k_proj and
 * v_proj as one (3D, D) layer: one activation quantization and one weight stream instead of three; per
 * output row the result is the same bits as three separate layers, since LLM.int8() scales weights per
 * row and activations per token over the shared input). Each part is checked and read under its own
 * name, so errors and random weights are exactly those of the separate tensors. */
typedef struct PartRows {
    const char *const *bases;
    int pn, k;
    bool eight;  /* the checkpoint holds CB + SCB: taken as they are */
    bool quant;  /* 16-bit weights quantized per row here (LLM.int8()) */
    DType stage; /* the 16-bit dtype the weights are read as */
    Fill fill;   /* random weights: FILL_WEIGHT, or FILL_EMBED for an int8 LM head (the embedding's values) */
    uint16_t *w16; /* quant: the 16-bit rows of a chunk, before quantization */
} PartRows;

/* rows [r0, r0 + nr) of the stacked parts, each piece from the part it lies in */
static int part_rows(Loader *ld, void *ctx, void *buf, int64_t r0, int64_t nr)
{
    const PartRows *pr = ctx;
    const size_t k = (size_t)pr->k;
    char name[256];
    for (int64_t r = r0; r < r0 + nr;) {
        int p = (int)(r / pr->pn);
        int64_t in = r - (int64_t)p * pr->pn, take = pr->pn - in;
        if (take > r0 + nr - r) take = r0 + nr - r;
        size_t at = (size_t)(r - r0) * k;
        if (pr->eight) {
            const StTensor *cb, *scb, *fmt;
            int64_t shape[2] = {pr->pn, pr->k}, nshape[1] = {pr->pn};
            if (ckpt_get(ld->ck, &cb, DTYPE_I8, 2, shape, ld->e, "%s.weight", pr->bases[p])) return -1;
            if (ckpt_get(ld->ck, &scb, DTYPE_F32, 1, nshape, ld->e, "%s.SCB", pr->bases[p])) return -1;
            snprintf(name, sizeof name, "%s.weight_format", pr->bases[p]);
            if ((fmt = ckpt_find(ld->ck, name))) {
                if (fmt->bytes < 1 || fmt->dtype != DTYPE_U8 || ((const uint8_t *)fmt->data)[0] != 0)
                    return err_set(ld->e, "%s: tensor '%s' is not 0 (row-wise int8): pp8 loads only row-format 8-bit "
                                          "checkpoints; re-save it with bitsandbytes >= 0.45 or use pp8 quantize",
                                   ckpt_dir(ld->ck), name);
            }
            const int8_t *src = (const int8_t *)cb->data + (size_t)in * k;
            memcpy((int8_t *)buf + at, src, (size_t)take * k);
            release_pages(src, (size_t)take * k);
            memcpy(ld->host_scb + r, (const float *)scb->data + in, sizeof(float) * (size_t)take);
        } else {
            snprintf(name, sizeof name, "%s.weight", pr->bases[p]);
            uint16_t *dst = pr->quant ? pr->w16 + at : (uint16_t *)buf + at;
            if (fetch16(ld, dst, pr->stage, name, pr->pn, pr->k, pr->fill, in, take)) return -1;
        }
        r += take;
    }
    if (pr->quant) {
        int8_t *cb = buf;
#pragma omp parallel for schedule(static)
        for (int64_t o = 0; o < nr; o++)
            ref_quantize_weights(cb + (size_t)o * k, ld->host_scb + r0 + o, pr->w16 + (size_t)o * k, 1, pr->k);
    }
    return 0;
}

static int load_linear_fill(Loader *ld, Linear *w, const char *const *bases, int nparts, Fill fill)
{
    char name[256];
    const int pn = w->n / nparts;
    /* which parts are 8-bit (CB + SCB); an int8 weight without its SCB, or a mix, is refused here */
    int n8 = 0, plain = -1, eight = -1;
    for (int p = 0; ld->ck && p < nparts; p++) {
        snprintf(name, sizeof name, "%s.SCB", bases[p]);
        if (ckpt_find(ld->ck, name)) {
            n8++, eight = p;
            continue;
        }
        plain = p;
        snprintf(name, sizeof name, "%s.weight", bases[p]);
        const StTensor *t = ckpt_find(ld->ck, name);
        if (t && t->dtype == DTYPE_I8)
            return err_set(ld->e, "%s: tensor '%s' is I8 but '%s.SCB' is missing: an 8-bit checkpoint needs the "
                                  "per-row scales SCB (F32 [%d]) next to every int8 weight",
                           ckpt_dir(ld->ck), name, bases[p], pn);
    }
    if (n8 && plain >= 0)
        return err_set(ld->e, "%s: '%s' is 16-bit but '%s' is 8-bit (int8 + SCB): they are loaded as one layer; "
                              "quantize the whole checkpoint (pp8 quantize)",
                       ckpt_dir(ld->ck), bases[plain], bases[eight]);
    /* an 8-bit checkpoint (pp8 quantize or transformers' save of load_in_8bit): CB and SCB as they are */
    if (n8 && w->wdt != DTYPE_I8)
        return err_set(ld->e, "%s: tensor '%s.SCB' is int8 (an 8-bit checkpoint); run it with --dtype int8",
                       ckpt_dir(ld->ck), bases[0]);
    PartRows pr = {.bases = bases, .pn = pn, .k = w->k, .eight = n8 > 0, .quant = !n8 && w->wdt == DTYPE_I8,
                   .stage = w->wdt == DTYPE_BF16 ? DTYPE_BF16 : DTYPE_F16, /* LLM.int8() quantizes fp16 */
                   .fill = fill};
    int rc;
    if (pr.quant) {
        /* the 16-bit rows of a chunk beside it: the same rows as the int8 chunk, twice the bytes */
        Backend *be = ld->m->be;
        int64_t step = be->linear_pack_rows ? chunk_rows((size_t)w->k) : w->n;
        if (step > w->n) step = w->n;
        pr.w16 = malloc(2 * (size_t)step * (size_t)w->k);
        if (!pr.w16) return err_set(ld->e, "out of host memory staging %zu bytes of weights", 2 * (size_t)step * w->k);
        rc = pack_by_rows(ld, w, 1, part_rows, &pr);
        free(pr.w16);
    } else {
        rc = pack_by_rows(ld, w, w->wdt == DTYPE_I8 ? 1 : 2, part_rows, &pr);
    }
    if (rc) return -1;
    if (w->bias)
        for (int p = 0; p < nparts; p++) {
            snprintf(name, sizeof name, "%s.bias", bases[p]);
            if (load16(ld, w->bias + (size_t)p * pn, name, pn, 0, FILL_BIAS)) return -1;
        }
    return 0;
}

static int load_linear_parts(Loader *ld, Linear *w, const char *const *bases, int nparts)
{
    return load_linear_fill(ld, w, bases, nparts, FILL_WEIGHT);
}

static int load_linear(Loader *ld, Linear *w, const char *base) { return load_linear_parts(ld, w, &base, 1); }

static int load_layer(Loader *ld, LayerWeights *w, int l)
{
    const Config *c = &ld->m->cfg;
    char b[160], n[200];
    if (c->arch == ARCH_BLOOM) {
        snprintf(b, sizeof b, "transformer.h.%d", l);
        snprintf(n, sizeof n, "%s.input_layernorm.weight", b);
        if (load16(ld, w->ln1_g, n, c->hidden, 0, FILL_GAIN)) return -1;
        snprintf(n, sizeof n, "%s.input_layernorm.bias", b);
        if (load16(ld, w->ln1_b, n, c->hidden, 0, FILL_BIAS)) return -1;
        snprintf(n, sizeof n, "%s.self_attention.query_key_value", b);
        if (load_linear(ld, &w->qkv, n)) return -1;
        snprintf(n, sizeof n, "%s.self_attention.dense", b);
        if (load_linear(ld, &w->out, n)) return -1;
        snprintf(n, sizeof n, "%s.post_attention_layernorm.weight", b);
        if (load16(ld, w->ln2_g, n, c->hidden, 0, FILL_GAIN)) return -1;
        snprintf(n, sizeof n, "%s.post_attention_layernorm.bias", b);
        if (load16(ld, w->ln2_b, n, c->hidden, 0, FILL_BIAS)) return -1;
        snprintf(n, sizeof n, "%s.mlp.dense_h_to_4h", b);
        if (load_linear(ld, &w->fc1, n)) return -1;
        snprintf(n, sizeof n, "%s.mlp.dense_4h_to_h", b);
        return load_linear(ld, &w->fc2, n);
    }
    snprintf(b, sizeof b, "model.decoder.layers.%d", l);
    snprintf(n, sizeof n, "%s.self_attn_layer_norm.weight", b);
    if (load16(ld, w->ln1_g, n, c->hidden, 0, FILL_GAIN)) return -1;
    snprintf(n, sizeof n, "%s.self_attn_layer_norm.bias", b);
    if (load16(ld, w->ln1_b, n, c->hidden, 0, FILL_BIAS)) return -1;
    char q[200], k[200], v[200];
    snprintf(q, sizeof q, "%s.self_attn.q_proj", b);
    snprintf(k, sizeof k, "%s.self_attn.k_proj", b);
    snprintf(v, sizeof v, "%s.self_attn.v_proj", b);
    const char *qkv[3] = {q, k, v};
    if (load_linear_parts(ld, &w->qkv, qkv, 3)) return -1;
    snprintf(n, sizeof n, "%s.self_attn.out_proj", b);
    if (load_linear(ld, &w->out, n)) return -1;
    snprintf(n, sizeof n, "%s.final_layer_norm.weight", b);
    if (load16(ld, w->ln2_g, n, c->hidden, 0, FILL_GAIN)) return -1;
    snprintf(n, sizeof n, "%s.final_layer_norm.bias", b);
    if (load16(ld, w->ln2_b, n, c->hidden, 0, FILL_BIAS)) return -1;
    snprintf(n, sizeof n, "%s.fc1", b);
    if (load_linear(ld, &w->fc1, n)) return -1;
    snprintf(n, sizeof n, "%s.fc2", b);
    return load_linear(ld, &w->fc2, n);
}

/* rows of the LM head (ctx: the tensor's name) in the activation dtype */
static int head_rows(Loader *ld, void *ctx, void *buf, int64_t r0, int64_t nr)
{
    const Config *c = &ld->m->cfg;
    return fetch16(ld, buf, ld->m->act, ctx, c->vocab, c->hidden, FILL_EMBED, r0, nr);
}

static int load_ends(Loader *ld)
{
    Model *m = ld->m;
    const Config *c = &m->cfg;
    bool bloom = c->arch == ARCH_BLOOM;
    const char *emb = bloom ? "transformer.word_embeddings.weight" : "model.decoder.embed_tokens.weight";
    if (m->first) {
        if (load16(ld, m->embed, emb, c->vocab, c->hidden, FILL_EMBED)) return -1;
        if (bloom) {
            if (load16(ld, m->emb_ln_g, "transformer.word_embeddings_layernorm.weight", c->hidden, 0, FILL_ONE) ||
                load16(ld, m->emb_ln_b, "transformer.word_embeddings_layernorm.bias", c->hidden, 0, FILL_BIAS))
                return -1;
        } else if (load16(ld, m->pos_embed, "model.decoder.embed_positions.weight", c->max_pos + 2, c->hidden,
                          FILL_EMBED)) {
            return -1;
        }
    }
    if (m->last) {
        const char *g = bloom ? "transformer.ln_f.weight" : "model.decoder.final_layer_norm.weight";
        const char *b = bloom ? "transformer.ln_f.bias" : "model.decoder.final_layer_norm.bias";
        if (load16(ld, m->lnf_g, g, c->hidden, 0, FILL_ONE) || load16(ld, m->lnf_b, b, c->hidden, 0, FILL_BIAS))
            return -1;
        /* the LM head: lm_head.weight when saved (transformers saves it even when tied), else the
         * tied embedding; 16-bit by default (as transformers and bitsandbytes keep it: lm_head is in
         * llm_int8_skip_modules), int8 with --int8-head */
        const char *head = emb;
        const StTensor *ht = ld->ck ? ckpt_find(ld->ck, "lm_head.weight") : NULL;
        if (ht) head = "lm_head.weight";
        else if (ld->ck && !c->tie_word_embeddings)
            return err_set(ld->e, "%s: no tensor 'lm_head.weight' and tie_word_embeddings is false in config.json",
                           ckpt_dir(ld->ck));
        if (m->lm_head.wdt == DTYPE_I8) {
            /* --int8-head: quantized per row here like every other linear (SCB = row absmax of the fp16
             * rows, bitsandbytes' Int8Params), a chunk of rows at a time, since BLOOM-176B's head is
             * 250880 x 14336; from a 16-bit head, which is also what pp8 quantize and transformers'
             * 8-bit saves keep, or taken as it is when the checkpoint holds lm_head.SCB */
            const char *base = ht ? "lm_head" : bloom ? "transformer.word_embeddings" : "model.decoder.embed_tokens";
            if (load_linear_fill(ld, &m->lm_head, &base, 1, FILL_EMBED)) return -1;
        } else {
            if (ht && ht->dtype == DTYPE_I8)
                return err_set(ld->e, "%s: tensor 'lm_head.weight' is int8 (an 8-bit LM head): run it with --dtype "
                                      "int8 --int8-head", ckpt_dir(ld->ck));
            if (pack_by_rows(ld, &m->lm_head, 2, head_rows, (void *)head)) return -1;
        }
    }
    if (bloom) {
        float slopes[4096];
        if (c->heads > 4096) return err_set(ld->e, "%s: n_head %d is too large", c->path, c->heads);
        model_alibi_slopes(slopes, c->heads);
        m->be->to_device(m->be->ctx, m->alibi, slopes, sizeof(float) * (size_t)c->heads);
    }
    return 0;
}

void model_alibi_slopes(float *slopes, int heads)
{
    /* transformers build_alibi_tensor: base = 2^(-(2^-(log2(p) - 3))) for p the largest power of two
     * <= heads, slopes base^1..base^p, then for the remaining heads every other power of the base of 2p */
    int p = 1;
    while (p * 2 <= heads) p *= 2;
    float base = (float)pow(2.0, -pow(2.0, -(log2((double)p) - 3.0)));
    for (int i = 0; i < p; i++) slopes[i] = powf(base, (float)(i + 1));
    if (p != heads) {
        float extra = (float)pow(2.0, -pow(2.0, -(log2((double)(2 * p)) - 3.0)));
        int rest = heads - p < p ? heads - p : p;
        for (int i = 0; i < rest; i++) slopes[p + i] = powf(extra, (float)(1 + 2 * i));
    }
}

size_t linear_read_bytes(const Linear *w)
{
    if (!w->w) return 0;
    return (size_t)w->n * (size_t)w->k * dtype_size(w->wdt) + (w->scb ? 4 * (size_t)w->n : 0) +
           (w->bias ? 2 * (size_t)w->n : 0);
}

static int model_load_slice(Model *m, const Config *cfg, const ModelOptions *o, Backend *be, Err *e)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->wdt = o->wdt;
    m->act = o->wdt == DTYPE_BF16 ? DTYPE_BF16 : DTYPE_F16;
    m->threshold = o->threshold;
    m->layer_begin = o->layer_begin;
    m->layer_end = o->layer_end;
    m->first = o->layer_begin == 0;
    m->last = o->layer_end == cfg->layers;
    m->be = be;
    int L = o->layer_end - o->layer_begin;
    m->layers = calloc((size_t)(L > 0 ? L : 1), sizeof *m->layers);
    if (!m->layers) return err_set(e, "out of memory");

    Checkpoint *ck = NULL;
    if (o->model_dir && ckpt_open(&ck, o->model_dir, e)) return -1;
    if (ck && cfg->load_in_8bit && o->wdt != DTYPE_I8) {
        ckpt_close(ck);
        return err_set(e, "%s is an 8-bit checkpoint (config.json quantization_config.load_in_8bit); run it with "
                          "--dtype int8", o->model_dir);
    }
    Loader ld = {.m = m, .ck = ck, .seed = o->seed, .sizing = true, .int8_head = o->int8_head && o->wdt == DTYPE_I8,
                 .e = e};
    carve_all(&ld);
    m->arena_bytes = ld.need;
    m->arena = be->alloc(be->ctx, ld.need);
    if (!m->arena) {
        char hint[160];
        ckpt_close(ck);
        proc_limit_hint(hint, sizeof hint);
        return err_set(e, "cannot allocate %.2f GB for this rank's weights (layers %d..%d%s)%s%s use more ranks "
                          "(pp8 plan shows how many)", ld.need / 1e9, o->layer_begin, o->layer_end - 1,
                       m->last ? " and the LM head" : "", hint, hint[0] ? ", or" : ":");
    }
    ld.sizing = false;
    ld.cursor = m->arena;
    carve_all(&ld);
    size_t max_n = (size_t)(cfg->ffn > 3 * cfg->hidden ? cfg->ffn : 3 * cfg->hidden);
    if (m->last && (size_t)cfg->vocab > max_n) max_n = (size_t)cfg->vocab;
    ld.host_scb = malloc(sizeof(float) * max_n);
    int rc = ld.host_scb ? 0 : err_set(e, "out of memory");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double last_note = 0.0;
    if (!rc) rc = load_ends(&ld);
    for (int l = 0; !rc && l < L; l++) {
        rc = load_layer(&ld, &m->layers[l], o->layer_begin + l);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (!rc && s - last_note > 2.0) {
            log_info("loading: layer %d/%d of this rank's slice, %.1f s", l + 1, L, s);
            last_note = s;
        }
    }
    free(ld.host);
    free(ld.host_scb);
    ckpt_close(ck);
    if (rc) return -1;

    for (int l = 0; l < L; l++) {
        LayerWeights *w = &m->layers[l];
        m->weight_bytes_read += linear_read_bytes(&w->qkv) + linear_read_bytes(&w->out) + linear_read_bytes(&w->fc1) +
                                linear_read_bytes(&w->fc2) + 8 * (size_t)cfg->hidden;
    }
    if (m->last) m->weight_bytes_read += linear_read_bytes(&m->lm_head) + 4 * (size_t)cfg->hidden;
    return 0;
}

int model_load(Model *m, const Config *cfg, const ModelOptions *o, Backend *be, Err *e)
{
    int rc = model_load_slice(m, cfg, o, be, e);
    if (rc) model_free(m); /* nothing half-loaded survives a refusal */
    return rc;
}

void model_free(Model *m)
{
    if (m->arena) m->be->free(m->be->ctx, m->arena);
    free(m->layers);
    memset(m, 0, sizeof *m);
}
