/* The weights one rank owns: its slice of layers [layer_begin, layer_end), plus the embedding on the
 * first rank and the final LayerNorm and LM head on the last. Loaded from a Hugging Face checkpoint
 * (16-bit or 8-bit) or made from a config with seeded random weights. Does not run anything.
 *
 * D hidden, H heads, E head_dim, F ffn, V vocab, P position rows (OPT max_pos + 2), L local layers */
#ifndef PP8_MODEL_H
#define PP8_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "../../kernels/backend.h"
#include "config.h"
#include "../util/err.h"

typedef struct LayerWeights {
    uint16_t *ln1_g, *ln1_b; /* (D) BLOOM input_layernorm / OPT self_attn_layer_norm */
    Linear qkv;              /* (3D, D): BLOOM's query_key_value, rows [head][q|k|v][E]; OPT's q_proj,
                              * k_proj, v_proj stacked, rows [q|k|v][D] */
    Linear out;              /* (D, D) BLOOM self_attention.dense / OPT out_proj */
    uint16_t *ln2_g, *ln2_b; /* (D) BLOOM post_attention_layernorm / OPT final_layer_norm */
    Linear fc1;              /* (F, D) BLOOM dense_h_to_4h / OPT fc1 */
    Linear fc2;              /* (D, F) BLOOM dense_4h_to_h / OPT fc2 */
} LayerWeights;

typedef struct Model {
    Config cfg;
    DType wdt;       /* linear weights: DTYPE_I8 (LLM.int8()), DTYPE_F16 or DTYPE_BF16 */
    DType act;       /* activations, 16-bit tensors, KV cache: F16 (int8, fp16) or BF16 */
    float threshold; /* LLM.int8() outlier threshold */
    int layer_begin, layer_end;
    bool first, last;
    Backend *be;

    uint16_t *embed;            /* (V, D) first rank */
    uint16_t *pos_embed;        /* (P, D) OPT, first rank */
    uint16_t *emb_ln_g, *emb_ln_b; /* (D) BLOOM word_embeddings_layernorm, first rank */
    LayerWeights *layers;       /* (L) */
    uint16_t *lnf_g, *lnf_b;    /* (D) last rank */
    Linear lm_head;             /* (V, D) last rank: 16-bit (act), or int8 CB + SCB with --int8-head */
    float *alibi;               /* (H) BLOOM slopes, backend memory */

    void *arena;                /* every tensor above points into this one allocation */
    size_t arena_bytes;
    size_t weight_bytes_read;   /* bytes one decode step reads from this rank's weights */
} Model;

typedef struct ModelOptions {
    const char *model_dir;  /* NULL: random weights from cfg */
    DType wdt;
    float threshold;
    int layer_begin, layer_end;
    uint64_t seed;
    bool int8_head; /* --int8-head (wdt DTYPE_I8 only): the LM head quantized per row at load time, as the
                     * other linears are, and multiplied with LLM.int8() at `threshold` */
} ModelOptions;

/* cfg must already be loaded (config_load). Fails with the file/tensor named. */
int model_load(Model *m, const Config *cfg, const ModelOptions *o, Backend *be, Err *e);
void model_free(Model *m);
/* ALiBi slopes as transformers' build_alibi_tensor computes them, including non-power-of-two H */
void model_alibi_slopes(float *slopes, int heads);
/* bytes one call reads from a linear layer's weights (weights, SCB, bias), as weight_bytes_read counts them */
size_t linear_read_bytes(const Linear *w);

#endif
