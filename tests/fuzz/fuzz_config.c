/* libFuzzer target: a config.json (the whole input) read by the real config_load (runtime/model/config.c).
 * It must refuse with a message or give a Config the forward pass can trust: positive sizes, heads that
 * divide hidden, a known architecture and dtype. Not the sizes' products against memory (the planner). */
#include "fuzz.h"
#include "model/config.h"

#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_dir();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("config.json", data, size);
    Config c;
    Err e = {{0}};
    if (config_load(&c, fuzz_path("config.json"), &e) != 0) {
        FUZZ_CHECK(e.msg[0] != 0, "config_load failed without a message");
        return 0;
    }
    FUZZ_CHECK(c.arch == ARCH_BLOOM || c.arch == ARCH_OPT, "arch %d", (int)c.arch);
    FUZZ_CHECK(c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.vocab > 0 && c.ffn > 0,
               "hidden %d layers %d heads %d vocab %d ffn %d", c.hidden, c.layers, c.heads, c.vocab, c.ffn);
    FUZZ_CHECK(c.head_dim > 0 && c.head_dim * c.heads == c.hidden, "head_dim %d x heads %d != hidden %d", c.head_dim,
               c.heads, c.hidden);
    FUZZ_CHECK(c.arch == ARCH_BLOOM ? c.max_pos == 0 : c.max_pos > 0, "max_pos %d", c.max_pos);
    FUZZ_CHECK(c.torch_dtype == DTYPE_F16 || c.torch_dtype == DTYPE_BF16 || c.torch_dtype == DTYPE_F32,
               "torch_dtype %d", (int)c.torch_dtype);
    FUZZ_CHECK(c.bos_id >= -1 && c.eos_id >= -1 && c.pad_id >= -1, "token ids %d %d %d", c.bos_id, c.eos_id, c.pad_id);
    FUZZ_CHECK(c.ln_eps >= 0 && c.int8_threshold >= 0, "ln_eps %g threshold %g", (double)c.ln_eps,
               (double)c.int8_threshold);
    FUZZ_CHECK(c.name[0] != 0, "no report name");
    double p = config_params(&c);
    FUZZ_CHECK(p > 0 && !isnan(p), "config_params %g", p);
    return 0;
}
