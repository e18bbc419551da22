/* config.json loading: every model config in configs/ (argv[1]) loads with its published dimensions and
 * parameter count, legacy BLOOM keys work, and unsupported or broken configs (fixtures written to a
 * temporary directory) are refused naming the file and the field. Does not look at checkpoints. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/config.h"
#include "test_util.h"


static char g_tmp[1024];

typedef struct Expect {
    const char *file;
    Arch arch;
    int hidden, layers, heads, ffn, vocab, max_pos;
    double params, rel_tol; /* published parameter count and how close config_params must be */
} Expect;

/* Published sizes: BLOOM paper table 3 / model cards, OPT paper table 1 (parameter counts as printed there). */
static const Expect EXPECT[] = {
    {"bloom-560m", ARCH_BLOOM, 1024, 24, 16, 4096, 250880, 0, 559214592, 1e-9},
    {"bloom-1b7", ARCH_BLOOM, 2048, 24, 16, 8192, 250880, 0, 1.722e9, 0.005},
    {"bloom-3b", ARCH_BLOOM, 2560, 30, 32, 10240, 250880, 0, 3.003e9, 0.005},
    {"bloom-7b1", ARCH_BLOOM, 4096, 30, 32, 16384, 250880, 0, 7.069e9, 0.005},
    {"bloom-176b", ARCH_BLOOM, 14336, 70, 112, 57344, 250880, 0, 176.2e9, 0.01},
    {"opt-125m", ARCH_OPT, 768, 12, 12, 3072, 50272, 2048, 125239296, 1e-9},
    {"opt-1.3b", ARCH_OPT, 2048, 24, 32, 8192, 50272, 2048, 1.3e9, 0.02},
    {"opt-6.7b", ARCH_OPT, 4096, 32, 32, 16384, 50272, 2048, 6.7e9, 0.02},
    {"opt-13b", ARCH_OPT, 5120, 40, 40, 20480, 50272, 2048, 13e9, 0.02},
    {"opt-30b", ARCH_OPT, 7168, 48, 56, 28672, 50272, 2048, 30e9, 0.02},
    {"opt-66b", ARCH_OPT, 9216, 64, 72, 36864, 50272, 2048, 66e9, 0.02},
    {"opt-175b", ARCH_OPT, 12288, 96, 96, 49152, 50272, 2048, 175e9, 0.02},
    {"bloom-tiny-test", ARCH_BLOOM, 64, 5, 4, 256, 256, 0, 0, 0},
    {"bloom-tiny-6h", ARCH_BLOOM, 96, 4, 6, 384, 256, 0, 0, 0},
    {"opt-tiny-test", ARCH_OPT, 64, 5, 4, 256, 256, 128, 0, 0},
};

static void test_shipped(const char *dir)
{
    for (size_t i = 0; i < sizeof EXPECT / sizeof *EXPECT; i++) {
        const Expect *x = &EXPECT[i];
        char path[2048];
        snprintf(path, sizeof path, "%s/%s.json", dir, x->file);
        Config c;
        Err e = {{0}};
        CHECK(config_load(&c, path, &e) == 0, "%s", e.msg);
        CHECK(strcmp(c.name, x->file) == 0, "name '%s', expected '%s'", c.name, x->file);
        CHECK(c.arch == x->arch && c.hidden == x->hidden && c.layers == x->layers && c.heads == x->heads &&
                  c.ffn == x->ffn && c.vocab == x->vocab && c.max_pos == x->max_pos,
              "%s: %s D=%d L=%d H=%d F=%d V=%d P=%d", x->file, arch_name(c.arch), c.hidden, c.layers, c.heads, c.ffn,
              c.vocab, c.max_pos);
        CHECK(c.head_dim * c.heads == c.hidden, "%s head_dim %d", x->file, c.head_dim);
        CHECK(c.tie_word_embeddings && !c.load_in_8bit && c.int8_threshold == 6.0f, "%s defaults", x->file);
        CHECK(c.ln_eps == 1e-5f, "%s ln_eps %g", x->file, c.ln_eps);
        CHECK(c.eos_id == 2 && c.bos_id == (x->arch == ARCH_BLOOM ? 1 : 2) &&
                  c.pad_id == (x->arch == ARCH_BLOOM ? 3 : 1),
              "%s token ids %d %d %d", x->file, c.bos_id, c.eos_id, c.pad_id);
        double p = config_params(&c);
        if (x->params > 0)
            CHECK(fabs(p - x->params) <= x->rel_tol * x->params, "%s: %.6g parameters, published %.6g", x->file, p,
                  x->params);
        printf("ok   %-16s %-5s D=%-5d L=%-2d H=%-3d F=%-5d V=%-6d %.4g params\n", x->file, arch_name(c.arch), c.hidden,
               c.layers, c.heads, c.ffn, c.vocab, p);
    }
    Config c;
    Err e;
    char path[2048];
    snprintf(path, sizeof path, "%s/bloom-176b.json", dir);
    CHECK(config_load(&c, path, &e) == 0 && c.torch_dtype == DTYPE_BF16, "bloom-176b is bf16");

    /* every model config shipped (any *.json with a model_type) loads */
    DIR *d = opendir(dir);
    CHECK(d, "cannot open %s", dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 5, ".json")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        char buf[8192] = {0};
        size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        if (!got || !strstr(buf, "\"model_type\"")) continue; /* accelerator presets live here too */
        CHECK(config_load(&c, path, &e) == 0, "%s", e.msg);
        n++;
    }
    closedir(d);
    CHECK(n >= 15, "only %d model configs in %s", n, dir);
    printf("ok   %d model configs in configs/ load\n", n);
}

static const char *fixture(const char *name, const char *json)
{
    static char path[2048];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    char *slash = strrchr(path, '/');
    *slash = 0;
    mkdir(path, 0755);
    *slash = '/';
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot create %s", path);
    fputs(json, f);
    fclose(f);
    return path;
}

static void expect_fail(const char *what, const char *path, const char *n1, const char *n2)
{
    Config c;
    Err e = {{0}};
    CHECK(config_load(&c, path, &e) != 0, "%s: %s loaded", what, path);
    CHECK(e.msg[0] && !strchr(e.msg, '\n'), "%s: message empty or not one line: '%s'", what, e.msg);
    CHECK(!n1 || strstr(e.msg, n1), "%s: message lacks '%s': %s", what, n1, e.msg);
    CHECK(!n2 || strstr(e.msg, n2), "%s: message lacks '%s': %s", what, n2, e.msg);
    printf("ok   %-34s %s\n", what, e.msg);
}

#define OPT_BASE                                                                                                       \
    "\"model_type\": \"opt\", \"hidden_size\": 1024, \"num_attention_heads\": 16, \"num_hidden_layers\": 24, "         \
    "\"ffn_dim\": 4096, \"vocab_size\": 50272, \"max_position_embeddings\": 2048"
#define BLOOM_BASE "\"model_type\": \"bloom\", \"hidden_size\": 64, \"n_head\": 4, \"n_layer\": 2, \"vocab_size\": 256"

static void test_fixtures(void)
{
    Config c;
    Err e = {{0}};
    const char *p;

    /* legacy BLOOM keys (bloom-7b1 style), name from the directory, bf16, eos as a list */
    p = fixture("legacy-bloom/config.json",
                "{\"model_type\": \"bloom\", \"n_embed\": 128, \"num_attention_heads\": 8, \"num_hidden_layers\": 3, "
                "\"vocab_size\": 300, \"torch_dtype\": \"bfloat16\", \"eos_token_id\": [7, 8], \"n_inner\": null, "
                "\"layer_norm_epsilon\": 1e-6, \"tie_word_embeddings\": false}");
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/legacy-bloom", g_tmp);
    CHECK(config_load(&c, dir, &e) == 0, "%s", e.msg);
    CHECK(c.hidden == 128 && c.heads == 8 && c.layers == 3 && c.vocab == 300 && c.ffn == 512 && c.head_dim == 16,
          "legacy dims %d %d %d", c.hidden, c.heads, c.layers);
    CHECK(strcmp(c.name, "legacy-bloom") == 0, "name %s", c.name);
    CHECK(strstr(c.path, "legacy-bloom/config.json"), "path %s", c.path);
    CHECK(c.torch_dtype == DTYPE_BF16 && c.eos_id == 7 && c.bos_id == -1 && c.pad_id == -1, "dtype/ids");
    CHECK(fabsf(c.ln_eps - 1e-6f) < 1e-12f && !c.tie_word_embeddings, "eps / tie");
    double tied_delta = config_params(&c);
    c.tie_word_embeddings = true;
    CHECK(tied_delta - config_params(&c) == 300.0 * 128, "untied LM head counted once more");
    printf("ok   legacy BLOOM keys\n");

    /* quantization_config of a saved 8-bit model; stem name */
    p = fixture("q8.json", "{" BLOOM_BASE ", \"quantization_config\": {\"load_in_8bit\": true, "
                           "\"llm_int8_threshold\": 5.0, \"quant_method\": \"bitsandbytes\"}}");
    CHECK(config_load(&c, p, &e) == 0, "%s", e.msg);
    CHECK(c.load_in_8bit && c.int8_threshold == 5.0f && strcmp(c.name, "q8") == 0, "q8 %d %g %s", c.load_in_8bit,
          c.int8_threshold, c.name);
    p = fixture("q8d.json", "{" BLOOM_BASE ", \"quantization_config\": {\"load_in_8bit\": true}}");
    CHECK(config_load(&c, p, &e) == 0 && c.load_in_8bit && c.int8_threshold == 6.0f, "default threshold");
    p = fixture("opt-ok.json", "{" OPT_BASE ", \"word_embed_proj_dim\": 1024, \"torch_dtype\": \"float32\"}");
    CHECK(config_load(&c, p, &e) == 0 && c.torch_dtype == DTYPE_F32 && c.ffn == 4096 && c.max_pos == 2048, "%s", e.msg);
    printf("ok   quantization_config, torch_dtype\n");

    expect_fail("OPT do_layer_norm_before false",
                fixture("opt350.json", "{" OPT_BASE ", \"do_layer_norm_before\": false}"), "do_layer_norm_before",
                "opt-350m");
    expect_fail("OPT word_embed_proj_dim != hidden",
                fixture("optproj.json", "{" OPT_BASE ", \"word_embed_proj_dim\": 512}"), "word_embed_proj_dim",
                "opt-350m");
    expect_fail("OPT enable_bias false", fixture("optnobias.json", "{" OPT_BASE ", \"enable_bias\": false}"),
                "enable_bias", NULL);
    expect_fail("OPT LayerNorm without affine",
                fixture("optaffine.json", "{" OPT_BASE ", \"layer_norm_elementwise_affine\": false}"),
                "layer_norm_elementwise_affine", NULL);
    expect_fail("OPT _remove_final_layer_norm",
                fixture("optrmfinal.json", "{" OPT_BASE ", \"_remove_final_layer_norm\": true}"),
                "_remove_final_layer_norm", NULL);
    expect_fail("OPT missing ffn_dim",
                fixture("optnoffn.json",
                        "{\"model_type\": \"opt\", \"hidden_size\": 64, \"num_attention_heads\": 4, "
                        "\"num_hidden_layers\": 2, \"vocab_size\": 256, \"max_position_embeddings\": 64}"),
                "optnoffn.json", "\"ffn_dim\"");
    expect_fail("BLOOM post-LayerNorm residual",
                fixture("postln.json", "{" BLOOM_BASE ", \"apply_residual_connection_post_layernorm\": true}"),
                "apply_residual_connection_post_layernorm", "not supported");
    expect_fail("unknown model_type", fixture("llama.json", "{\"model_type\": \"llama\", \"hidden_size\": 64}"),
                "\"llama\"", "llama.json");
    expect_fail("missing model_type", fixture("nomt.json", "{\"hidden_size\": 64}"), "model_type", "nomt.json");
    expect_fail("malformed JSON", fixture("bad.json", "{\n  \"model_type\": \"bloom\",\n  \"n_head\": 4,,\n}"),
                "bad.json: malformed JSON near line 3: '\"n_head\": 4,,'", NULL);
    expect_fail("truncated JSON", fixture("trunc.json", "{\n  \"model_type\": \"bloom\",\n"), "trunc.json",
                "unexpected end of file");
    expect_fail(
        "missing hidden_size",
        fixture("nohidden.json", "{\"model_type\": \"bloom\", \"n_head\": 4, \"n_layer\": 2, \"vocab_size\": 9}"),
        "\"hidden_size\"", "nohidden.json");
    expect_fail("zero layers",
                fixture("zerol.json", "{\"model_type\": \"bloom\", \"hidden_size\": 64, \"n_head\": 4, \"n_layer\": 0, "
                                      "\"vocab_size\": 9}"),
                "\"n_layer\"", "positive");
    expect_fail("hidden not divisible by heads",
                fixture("div.json", "{\"model_type\": \"bloom\", \"hidden_size\": 64, \"n_head\": 5, \"n_layer\": 2, "
                                    "\"vocab_size\": 9}"),
                "64", "divisible");
    expect_fail("unknown torch_dtype", fixture("f64.json", "{" BLOOM_BASE ", \"torch_dtype\": \"float64\"}"),
                "torch_dtype", "float64");
    expect_fail("4-bit quantization_config",
                fixture("q4.json", "{" BLOOM_BASE ", \"quantization_config\": {\"load_in_4bit\": true}}"),
                "load_in_4bit", NULL);
    expect_fail("GPTQ quantization_config",
                fixture("gptq.json", "{" BLOOM_BASE ", \"quantization_config\": {\"quant_method\": \"gptq\"}}"), "gptq",
                NULL);
    expect_fail("directory without config.json", g_tmp, "config.json", "no such file");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_config CONFIGS_DIR\n");
        return 1;
    }
    char tmpl[] = "/tmp/pp8_cfg_XXXXXX";
    CHECK(mkdtemp(tmpl), "mkdtemp");
    snprintf(g_tmp, sizeof g_tmp, "%s", tmpl);
    test_shipped(argv[1]);
    test_fixtures();
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    printf("test_config: all passed\n");
    return 0;
}
