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

/* A required positive integer under any of the aliases. */
static int cfg_pos_int(const cJSON *root, const char *path, const char *const *keys, int *out, Err *e)
{
    const char *key = keys[0];
    const cJSON *v = cfg_item(root, keys, &key);
    char names[160];
    cfg_key_list(names, sizeof names, keys);
    if (!v) return err_set(e, "%s: missing %s, a required field", path, names);
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0.0;
    if (!cJSON_IsNumber(v) || d != (double)(long long)d || d <= 0 || d > INT32_MAX)
        return err_set(e, "%s: \"%s\" must be a positive integer (found %s)", path, key,
                       cJSON_IsNumber(v) ? "a non-positive or non-integral number" : "another JSON type");
    *out = (int)d;
    return 0;
}

/* Optional integer token id: absent or null -> -1; a list (newer configs allow several EOS ids) -> first. */
static int cfg_token_id(const cJSON *root, const char *path, const char *key, int *out, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble || v->valuedouble < 0 ||
        v->valuedouble > INT32_MAX)
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

static int cfg_load_bloom(Config *c, const cJSON *root, Err *e)
{
    const char *p = c->path;
    /* transformers' BloomConfig: n_embed is the legacy name of hidden_size (bloom-7b1 and others still use it);
     * attribute_map maps num_attention_heads / num_hidden_layers onto n_head / n_layer */
    if (cfg_pos_int(root, p, (const char *const[]){"hidden_size", "n_embed", NULL}, &c->hidden, e) ||
        cfg_pos_int(root, p, (const char *const[]){"n_head", "num_attention_heads", NULL}, &c->heads, e) ||
        cfg_pos_int(root, p, (const char *const[]){"n_layer", "num_hidden_layers", NULL}, &c->layers, e) ||
        cfg_pos_int(root, p, (const char *const[]){"vocab_size", NULL}, &c->vocab, e))
        return -1;
    bool post_ln;
    if (cfg_bool(root, p, "apply_residual_connection_post_layernorm", false, &post_ln, e)) return -1;
    if (post_ln)
        return err_set(e,
                       "%s: \"apply_residual_connection_post_layernorm\": true is not supported yet (pp8 runs the "
                       "residual from before the LayerNorm, as every published BLOOM does)",
                       p);
    if (cfg_float(root, p, "layer_norm_epsilon", 1e-5f, &c->ln_eps, e)) return -1;
    if ((int64_t)c->hidden * 4 > INT32_MAX) return err_set(e, "%s: hidden_size %d is too large", p, c->hidden);
    c->ffn = 4 * c->hidden;
    c->max_pos = 0; /* ALiBi: no position table */
    /* pretraining_tp > 1 only changes results under slow_but_exact, which transformers' inference leaves off */
    return 0;
}

static int cfg_load_opt(Config *c, const cJSON *root, Err *e)
{
    const char *p = c->path;
    if (cfg_pos_int(root, p, (const char *const[]){"hidden_size", NULL}, &c->hidden, e) ||
        cfg_pos_int(root, p, (const char *const[]){"num_attention_heads", NULL}, &c->heads, e) ||
        cfg_pos_int(root, p, (const char *const[]){"num_hidden_layers", NULL}, &c->layers, e) ||
        cfg_pos_int(root, p, (const char *const[]){"ffn_dim", NULL}, &c->ffn, e) ||
        cfg_pos_int(root, p, (const char *const[]){"vocab_size", NULL}, &c->vocab, e) ||
        cfg_pos_int(root, p, (const char *const[]){"max_position_embeddings", NULL}, &c->max_pos, e))
        return -1;
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

static int cfg_load_common(Config *c, const cJSON *root, Err *e)
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
    return 0;
}

/* Report name: "configs/bloom-560m.json" -> "bloom-560m"; ".../bloom-560m/config.json" -> "bloom-560m". */
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
        } else {
            base = "model";
        }
    } else {
        char *dot = strrchr(base, '.');
        if (dot && dot != base) *dot = 0;
    }
    snprintf(c->name, sizeof c->name, "%.*s", (int)sizeof c->name - 1, base);
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
    char *full = realpath(file, NULL);
    if (!full && S_ISDIR(st.st_mode))
        return err_set(e, "%s: no such file (a model directory needs a Hugging Face config.json)", file);
    snprintf(c->path, sizeof c->path, "%.*s", (int)sizeof c->path - 1, full ? full : file);
    free(full);
    cfg_set_name(c);

    cJSON *root = json_read_file(c->path, e);
    if (!root) return -1;
    int rc = 0;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsObject(root)) {
        rc = err_set(e, "%s: not a JSON object: not a Hugging Face config.json", c->path);
    } else if (!cJSON_IsString(mt)) {
        rc = err_set(e, "%s: no \"model_type\" string: pp8 supports model_type \"bloom\" and \"opt\"", c->path);
    } else if (!strcmp(mt->valuestring, "bloom")) {
        c->arch = ARCH_BLOOM;
        rc = cfg_load_bloom(c, root, e);
    } else if (!strcmp(mt->valuestring, "opt")) {
        c->arch = ARCH_OPT;
        rc = cfg_load_opt(c, root, e);
    } else {
        rc = err_set(e, "%s: model_type \"%s\" is not supported: pp8 supports \"bloom\" and \"opt\"", c->path,
                     mt->valuestring);
    }
    if (!rc) rc = cfg_load_common(c, root, e);
    cJSON_Delete(root);
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
