/* Hugging Face config.json -> Config (config.h), for BLOOM and OPT as the hub publishes them, legacy
 * BLOOM key names included. Variants whose forward pass pp8 does not implement (post-LayerNorm, OPT's
 * embedding projection, no biases) are refused here, naming the field, rather than run wrongly later.
 * Does not look at the checkpoint: tensor shapes are checked against this config when weights load. */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../util/file.h"

/* ---- fields ---- */

/* First present key among the aliases (NULL-terminated), or NULL. JSON null counts as absent. */
static const cJSON *cfg_item(const cJSON *root, const char *const *keys, const char **found)
{
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        if (v && !cJSON_IsNull(v)) {
            if (found) *found = keys[i];
            return v;
        }
    }
    return NULL;
}

static void cfg_key_list(char *buf, size_t cap, const char *const *keys)
{
    size_t n = (size_t)snprintf(buf, cap, "\"%s\"", keys[0]);
    for (int i = 1; keys[i] && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, " (or \"%s\")", keys[i]);
}

/* The key each size came from (an alias where the file used one), for messages about their products. */
typedef struct CfgKeys {
    const char *hidden, *heads, *layers, *vocab, *ffn, *max_pos;
} CfgKeys;

/* A required positive integer under any of the aliases; *found (when non-NULL) = the key present. */
static int cfg_pos_int_key(const cJSON *root, const char *path, const char *const *keys, int *out,
                           const char **found, Err *e)
{
    const char *key = keys[0];
    const cJSON *v = cfg_item(root, keys, &key);
    if (found) *found = key;
    char names[160];
    cfg_key_list(names, sizeof names, keys);
    if (!v) return err_set(e, "%s: missing %s, a required field", path, names);
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0.0;
    /* the range first: casting a double outside long long's range is undefined (found by fuzz_config) */
    if (!cJSON_IsNumber(v) || !(d > 0 && d <= INT32_MAX) || d != (double)(long long)d)
        return err_set(e, "%s: \"%s\" must be a positive integer (found %s)", path, key,
                       cJSON_IsNumber(v) ? "a non-positive or non-integral number" : "another JSON type");
    *out = (int)d;
    return 0;
}

static int cfg_pos_int(const cJSON *root, const char *path, const char *const *keys, int *out, Err *e)
{
    return cfg_pos_int_key(root, path, keys, out, NULL, e);
}

/* Optional integer token id: absent or null -> -1; a list (newer configs allow several EOS ids) -> first. */
static int cfg_token_id(const cJSON *root, const char *path, const char *key, int *out, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= INT32_MAX) ||
        v->valuedouble != (double)(long long)v->valuedouble)
        return err_set(e, "%s: \"%s\" must be a non-negative integer token id", path, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int cfg_bool(const cJSON *root, const char *path, const char *key, bool dflt, bool *out, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = dflt;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return err_set(e, "%s: \"%s\" must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int cfg_float(const cJSON *root, const char *path, const char *key, float dflt, float *out, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = dflt;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0.0))
        return err_set(e, "%s: \"%s\" must be a non-negative number", path, key);
    *out = (float)v->valuedouble;
    return 0;
}

/* ---- per architecture ---- */

static int cfg_load_bloom(Config *c, const cJSON *root, CfgKeys *k, Err *e)
{
    const char *p = c->path;
    /* transformers' BloomConfig: n_embed is the legacy name of hidden_size (bloom-7b1 and others still use it);
     * attribute_map maps num_attention_heads / num_hidden_layers onto n_head / n_layer */
    if (cfg_pos_int_key(root, p, (const char *const[]){"hidden_size", "n_embed", NULL}, &c->hidden, &k->hidden, e) ||
        cfg_pos_int_key(root, p, (const char *const[]){"n_head", "num_attention_heads", NULL}, &c->heads, &k->heads,
                        e) ||
        cfg_pos_int_key(root, p, (const char *const[]){"n_layer", "num_hidden_layers", NULL}, &c->layers, &k->layers,
                        e) ||
        cfg_pos_int_key(root, p, (const char *const[]){"vocab_size", NULL}, &c->vocab, &k->vocab, e))
        return -1;
    k->ffn = "4 x hidden_size";
    k->max_pos = NULL;
    bool post_ln;
    if (cfg_bool(root, p, "apply_residual_connection_post_layernorm", false, &post_ln, e)) return -1;
    if (post_ln)
        return err_set(e,
                       "%s: \"apply_residual_connection_post_layernorm\": true is not supported yet (pp8 runs the "
                       "residual from before the LayerNorm, as every published BLOOM does)",
                       p);
    if (cfg_float(root, p, "layer_norm_epsilon", 1e-5f, &c->ln_eps, e)) return -1;
    if ((int64_t)c->hidden * 4 > INT32_MAX)
        return err_set(e, "%s: \"%s\" %d is too large: pp8 counts a layer's rows (4 x %s for the MLP) in 32-bit "
                          "integers; the config is corrupt",
                       p, k->hidden, c->hidden, k->hidden);
    c->ffn = 4 * c->hidden;
    c->max_pos = 0; /* ALiBi: no position table */
    /* pretraining_tp > 1 only changes results under slow_but_exact, which transformers' inference leaves off */
    return 0;
}

static int cfg_load_opt(Config *c, const cJSON *root, CfgKeys *k, Err *e)
{
    const char *p = c->path;
    *k = (CfgKeys){"hidden_size",  "num_attention_heads", "num_hidden_layers",
                   "vocab_size",   "ffn_dim",             "max_position_embeddings"};
    if (cfg_pos_int(root, p, (const char *const[]){"hidden_size", NULL}, &c->hidden, e) ||
        cfg_pos_int(root, p, (const char *const[]){"num_attention_heads", NULL}, &c->heads, e) ||
        cfg_pos_int(root, p, (const char *const[]){"num_hidden_layers", NULL}, &c->layers, e) ||
        cfg_pos_int(root, p, (const char *const[]){"ffn_dim", NULL}, &c->ffn, e) ||
        cfg_pos_int(root, p, (const char *const[]){"vocab_size", NULL}, &c->vocab, e) ||
        cfg_pos_int(root, p, (const char *const[]){"max_position_embeddings", NULL}, &c->max_pos, e))
        return -1;
    if ((int64_t)c->hidden * 3 > INT32_MAX)
        return err_set(e, "%s: \"hidden_size\" %d is too large: pp8 counts a layer's rows (3 x hidden_size for "
                          "q, k, v) in 32-bit integers; the config is corrupt",
                       p, c->hidden);
    if ((int64_t)c->max_pos + 2 > INT32_MAX)
        return err_set(e, "%s: \"max_position_embeddings\" %d is too large: the position table has "
                          "max_position_embeddings + 2 rows, counted in 32-bit integers; the config is corrupt",
                       p, c->max_pos);
    /* OPTConfig: word_embed_proj_dim defaults to hidden_size; only opt-350m differs (512 vs 1024) */
    const cJSON *wp = cJSON_GetObjectItemCaseSensitive(root, "word_embed_proj_dim");
    if (wp && !cJSON_IsNull(wp)) {
        int proj;
        if (cfg_pos_int(root, p, (const char *const[]){"word_embed_proj_dim", NULL}, &proj, e)) return -1;
        if (proj != c->hidden)
            return err_set(e,
                           "%s: \"word_embed_proj_dim\" %d differs from hidden_size %d: OPT with an embedding "
                           "projection (opt-350m style project_in/project_out) is not supported",
                           p, proj, c->hidden);
    }
    bool pre_ln, bias, affine, remove_final;
    if (cfg_bool(root, p, "do_layer_norm_before", true, &pre_ln, e) ||
        cfg_bool(root, p, "enable_bias", true, &bias, e) ||
        cfg_bool(root, p, "layer_norm_elementwise_affine", true, &affine, e) ||
        cfg_bool(root, p, "_remove_final_layer_norm", false, &remove_final, e))
        return -1;
    if (!pre_ln)
        return err_set(e, "%s: \"do_layer_norm_before\": false: post-LayerNorm OPT (opt-350m) is not supported", p);
    if (!bias) return err_set(e, "%s: \"enable_bias\": false: OPT without linear biases is not supported", p);
    if (!affine)
        return err_set(e,
                       "%s: \"layer_norm_elementwise_affine\": false: LayerNorm without weight and bias is not "
                       "supported",
                       p);
    if (remove_final)
        return err_set(e, "%s: \"_remove_final_layer_norm\": true: OPT without the final LayerNorm is not supported",
                       p);
    c->ln_eps = 1e-5f; /* OPTDecoder uses nn.LayerNorm's default */
    return 0;
}

/* ---- sizes ----
 * Integers from a file are data. Each field fits an int (checked as it is read), but their products do
 * not have to: the planner counts bytes in doubles (exact up to 2^53) and the loader and the KV cache
 * size arenas in 64-bit integers. A product beyond 2^53 bytes (8 PiB; BLOOM-176B in 16 bits is 3.5e11)
 * is a corrupt config, refused here with the fields named before anything is sized or allocated. */
#define CFG_MAX_BYTES ((uint64_t)1 << 53)
/* The planner's layer split is a DP over (stage, layers) with an inner loop over layers, O(S·L²): at
 * 1024 layers it takes about a second; the largest published models have under 200 layers. */
#define CFG_MAX_LAYERS 1024

static uint64_t cfg_mul(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t cfg_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

/* what: "the token embedding (vocab_size 250880 x hidden_size 14336 x 2 bytes)" */
static int cfg_too_big(const Config *c, uint64_t bytes, const char *what, const char *fix, Err *e)
{
    char n[64];
    if (bytes == UINT64_MAX) snprintf(n, sizeof n, "overflows 64-bit integers");
    else snprintf(n, sizeof n, "is %.3g bytes", (double)bytes);
    return err_set(e, "%s: %s %s, more than pp8 sizes (2^53 bytes = 8 PiB): %s; the config is corrupt", c->path, what,
                   n, fix);
}

static int cfg_check_sizes(const Config *c, const CfgKeys *k, Err *e)
{
    const uint64_t D = (uint64_t)c->hidden, F = (uint64_t)c->ffn, V = (uint64_t)c->vocab, L = (uint64_t)c->layers;
    char what[384];
    if (c->layers > CFG_MAX_LAYERS)
        return err_set(e, "%s: \"%s\" %d is more layers than pp8 plans (at most %d; the largest published models "
                          "have under 200): the config is corrupt",
                       c->path, k->layers, c->layers, CFG_MAX_LAYERS);
    /* 16-bit parameters, as the planner counts them (int8 is smaller, float32 files are checked against
     * their own size when they are opened) */
    uint64_t embed = cfg_mul(cfg_mul(V, D), 2);
    snprintf(what, sizeof what, "the token embedding (%s %d x %s %d x 2 bytes)", k->vocab, c->vocab, k->hidden,
             c->hidden);
    if (embed > CFG_MAX_BYTES) return cfg_too_big(c, embed, what, "vocab_size or the hidden size is wrong", e);
    uint64_t pos = 0;
    if (c->arch == ARCH_OPT) {
        pos = cfg_mul(cfg_mul((uint64_t)c->max_pos + 2, D), 2);
        snprintf(what, sizeof what, "the position table ((%s %d + 2) x %s %d x 2 bytes)", k->max_pos, c->max_pos,
                 k->hidden, c->hidden);
        if (pos > CFG_MAX_BYTES) return cfg_too_big(c, pos, what, "max_position_embeddings is wrong", e);
    }
    /* one layer: 4 D² (q, k, v, out) + 2 D F (the MLP), biases and LayerNorms beside them */
    uint64_t layer = cfg_mul(cfg_add(cfg_add(cfg_mul(cfg_mul(D, D), 4), cfg_mul(cfg_mul(D, F), 2)),
                                     cfg_add(cfg_mul(D, 10), F)),
                             2);
    snprintf(what, sizeof what, "one layer ((4 x %s² + 2 x %s x %s) x 2 bytes, %s %d, %s %d)", k->hidden,
             k->hidden, k->ffn, k->hidden, c->hidden, k->ffn, c->ffn);
    if (layer > CFG_MAX_BYTES) return cfg_too_big(c, layer, what, "the hidden or the ffn size is wrong", e);
    uint64_t layers = cfg_mul(layer, L);
    char fix[160];
    snprintf(what, sizeof what, "the weights of all layers (%s %d x %.3g bytes each, %s %d)", k->layers, c->layers,
             (double)layer, k->hidden, c->hidden);
    snprintf(fix, sizeof fix, "%s or %s is wrong", k->layers, k->hidden);
    if (layers > CFG_MAX_BYTES) return cfg_too_big(c, layers, what, fix, e);
    uint64_t total = cfg_add(cfg_add(layers, pos), cfg_mul(embed, c->tie_word_embeddings ? 1 : 2));
    snprintf(what, sizeof what, "the model's weights (%s %d, %s %d, %s %d)", k->layers, c->layers, k->hidden,
             c->hidden, k->vocab, c->vocab);
    if (total > CFG_MAX_BYTES) return cfg_too_big(c, total, what, "a size field is wrong", e);
    /* KV cache of one sequence at the model's full length (k and v, 16-bit): OPT's position table sets the
     * length pp8 plans for by default; BLOOM (ALiBi) plans 2048 unless --max-seq-len says otherwise */
    if (c->arch == ARCH_OPT) {
        uint64_t kv = cfg_mul(cfg_mul(cfg_mul(cfg_mul(L, (uint64_t)c->max_pos), D), 2), 2);
        snprintf(what, sizeof what, "the KV cache of one sequence (%s %d x %s %d x %s %d x 2 (k, v) x 2 bytes)",
                 k->layers, c->layers, k->max_pos, c->max_pos, k->hidden, c->hidden);
        if (kv > CFG_MAX_BYTES) return cfg_too_big(c, kv, what, "max_position_embeddings is wrong", e);
    }
    return 0;
}

static int cfg_load_common(Config *c, const cJSON *root, const CfgKeys *k, Err *e)
{
    const char *p = c->path;
    if (cfg_bool(root, p, "tie_word_embeddings", true, &c->tie_word_embeddings, e)) return -1;
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    c->torch_dtype = DTYPE_F16; /* what transformers assumes for these hub models when unstated */
    if (td && !cJSON_IsNull(td)) {
        const char *s = cJSON_IsString(td) ? td->valuestring : "";
        if (!strcmp(s, "float16"))
            c->torch_dtype = DTYPE_F16;
        else if (!strcmp(s, "bfloat16"))
            c->torch_dtype = DTYPE_BF16;
        else if (!strcmp(s, "float32"))
            c->torch_dtype = DTYPE_F32;
        else
            return err_set(e, "%s: \"torch_dtype\" \"%s\" is not supported (float16, bfloat16 or float32)", p, s);
    }
    if (cfg_token_id(root, p, "bos_token_id", &c->bos_id, e) || cfg_token_id(root, p, "eos_token_id", &c->eos_id, e) ||
        cfg_token_id(root, p, "pad_token_id", &c->pad_id, e))
        return -1;

    c->load_in_8bit = false;
    c->int8_threshold = 6.0f; /* bitsandbytes' llm_int8_threshold default */
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (q && !cJSON_IsNull(q)) {
        if (!cJSON_IsObject(q)) return err_set(e, "%s: \"quantization_config\" must be an object", p);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(q, "quant_method");
        if (m && !cJSON_IsNull(m) && !(cJSON_IsString(m) && !strcmp(m->valuestring, "bitsandbytes")))
            return err_set(e,
                           "%s: quantization_config.quant_method \"%s\" is not supported (pp8 reads bitsandbytes "
                           "8-bit checkpoints; give it the 16-bit model instead)",
                           p, cJSON_IsString(m) ? m->valuestring : "?");
        bool in4 = false;
        if (cfg_bool(q, p, "load_in_4bit", false, &in4, e) ||
            cfg_bool(q, p, "load_in_8bit", false, &c->load_in_8bit, e) ||
            cfg_float(q, p, "llm_int8_threshold", 6.0f, &c->int8_threshold, e))
            return -1;
        if (in4)
            return err_set(e,
                           "%s: quantization_config.load_in_4bit: 4-bit checkpoints are not supported (pp8 runs "
                           "LLM.int8(); give it the 16-bit model)",
                           p);
    }
    if (c->hidden % c->heads)
        return err_set(e, "%s: hidden_size %d is not divisible by the number of attention heads %d", p, c->hidden,
                       c->heads);
    c->head_dim = c->hidden / c->heads;
    return cfg_check_sizes(c, k, e);
}

/* Report name: "configs/bloom-560m.json" -> "bloom-560m"; ".../bloom-560m/config.json" -> "bloom-560m";
 * a Hugging Face cache snapshot ".../models--bigscience--bloom-560m/snapshots/<commit>/config.json" ->
 * "bloom-560m" (huggingface_hub names the folder models--{org}--{name}). */
static void cfg_set_name(Config *c)
{
    char tmp[sizeof c->path];
    snprintf(tmp, sizeof tmp, "%s", c->path);
    char *slash = strrchr(tmp, '/');
    char *base = slash ? slash + 1 : tmp;
    if (strcmp(base, "config.json") == 0) {
        if (slash && slash > tmp) {
            *slash = 0;
            char *up = strrchr(tmp, '/');
            base = up ? up + 1 : tmp;
            if (up && up > tmp) {
                *up = 0;
                char *up2 = strrchr(tmp, '/');
                const char *snaps = up2 ? up2 + 1 : tmp;
                if (!strcmp(snaps, "snapshots") && up2 && up2 > tmp) {
                    *up2 = 0;
                    char *up3 = strrchr(tmp, '/');
                    const char *repo = up3 ? up3 + 1 : tmp;
                    const char *name = NULL; /* after the last "--" */
                    for (const char *q = strstr(repo, "--"); q; q = strstr(q + 1, "--")) name = q + 2;
                    if (!strncmp(repo, "models--", 8) && name && name[0]) base = (char *)name;
                }
            }
        } else {
            base = "model";
        }
    } else {
        char *dot = strrchr(base, '.');
        if (dot && dot != base) *dot = 0;
    }
    snprintf(c->name, sizeof c->name, "%.*s", (int)sizeof c->name - 1, base);
}

/* c->path = file with its directory resolved and its own name kept: a config.json that is a symbolic link
 * (a Hugging Face cache links it to ../../blobs/<hash>) is named as the user gave it, not as its blob. */
static void cfg_resolve(Config *c, const char *file)
{
    char dir[sizeof c->path];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? file + (slash - dir) + 1 : file;
    if (slash == dir) dir[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    char *full = realpath(dir, NULL);
    const char *d = full && strcmp(full, "/") ? full : "";
    size_t a = strlen(d), b = strlen(base);
    if (full && a + 1 + b < sizeof c->path) {
        memcpy(c->path, d, a);
        c->path[a] = '/';
        memcpy(c->path + a + 1, base, b + 1);
    } else {
        snprintf(c->path, sizeof c->path, "%.*s", (int)sizeof c->path - 1, file);
    }
    free(full);
}

int config_load(Config *c, const char *path, Err *e)
{
    memset(c, 0, sizeof *c);
    struct stat st;
    if (strlen(path) > sizeof c->path - 16) return err_set(e, "%.200s...: path too long", path);
    if (stat(path, &st) != 0)
        return err_set(e, "%s: no such file or directory (expected a config.json or a directory holding one)", path);
    char file[sizeof c->path];
    if (S_ISDIR(st.st_mode))
        snprintf(file, sizeof file, "%s/config.json", path);
    else
        snprintf(file, sizeof file, "%s", path);
    struct stat fst, lst;
    if (stat(file, &fst) != 0) {
        if (lstat(file, &lst) == 0 && S_ISLNK(lst.st_mode))
            return err_set(e, "%s: a symbolic link to a file that does not exist (a Hugging Face cache whose blob "
                              "is missing?): the download is incomplete; re-download it",
                           file);
        return err_set(e, "%s: no such file (a model directory needs a Hugging Face config.json)", file);
    }
    if (!S_ISREG(fst.st_mode)) return err_set(e, "%s: not a regular file (expected a config.json)", file);
    cfg_resolve(c, file);
    cfg_set_name(c);

    cJSON *root = json_read_file(c->path, e);
    if (!root) return -1;
    CfgKeys keys = {0};
    int rc = 0;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsObject(root)) {
        rc = err_set(e, "%s: not a JSON object: not a Hugging Face config.json", c->path);
    } else if (!cJSON_IsString(mt)) {
        rc = err_set(e, "%s: no \"model_type\" string: pp8 supports model_type \"bloom\" and \"opt\"", c->path);
    } else if (!strcmp(mt->valuestring, "bloom")) {
        c->arch = ARCH_BLOOM;
        rc = cfg_load_bloom(c, root, &keys, e);
    } else if (!strcmp(mt->valuestring, "opt")) {
        c->arch = ARCH_OPT;
        rc = cfg_load_opt(c, root, &keys, e);
    } else {
        rc = err_set(e, "%s: model_type \"%s\" is not supported: pp8 supports \"bloom\" and \"opt\"", c->path,
                     mt->valuestring);
    }
    if (!rc) rc = cfg_load_common(c, root, &keys, e);
    cJSON_Delete(root);
    for (char *q = rc && e ? e->msg : NULL; q && *q; q++) /* strings from the file: keep the message one line */
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
    return rc;
}

double config_params(const Config *c)
{
    double D = c->hidden, F = c->ffn, V = c->vocab, L = c->layers;
    double p = V * D; /* token embedding (counted once when tied) */
    if (c->arch == ARCH_OPT)
        p += (c->max_pos + 2) * D;           /* learned positions, offset 2 (OPTLearnedPositionalEmbedding) */
    if (c->arch == ARCH_BLOOM) p += 2 * D;   /* word_embeddings_layernorm */
    double layer = (4 * D * D + 4 * D)       /* q, k, v, out (BLOOM's fused qkv is the same size) */
                   + (2 * D * F + F + D)     /* two MLP linears with biases */
                   + 4 * D;                  /* two LayerNorms */
    p += L * layer + 2 * D;                  /* + final LayerNorm */
    if (!c->tie_word_embeddings) p += V * D; /* separate LM head, no bias */
    return p;
}

const char *arch_name(Arch a)
{
    switch (a) {
    case ARCH_BLOOM: return "bloom";
    case ARCH_OPT: return "opt";
    }
    return "?";
}
