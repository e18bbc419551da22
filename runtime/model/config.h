/* Model configuration read from a Hugging Face config.json (model_type bloom or opt). Only what the
 * forward pass and the planner need; unsupported variants are refused here with a clear error rather
 * than run wrongly later. */
#ifndef PP8_CONFIG_H
#define PP8_CONFIG_H

#include <stdbool.h>

#include "../../kernels/dtype.h"
#include "../util/err.h"

typedef enum { ARCH_BLOOM = 0, ARCH_OPT = 1 } Arch;

typedef struct Config {
    char path[1024];   /* the config.json it came from */
    char name[128];    /* file stem or directory name, for reports ("bloom-560m") */
    Arch arch;
    int hidden;        /* D */
    int layers;        /* L */
    int heads;         /* H */
    int head_dim;      /* E = D / H */
    int ffn;           /* F: BLOOM 4*D, OPT ffn_dim */
    int vocab;         /* V */
    int max_pos;       /* OPT max_position_embeddings (the table has max_pos + 2 rows); BLOOM: 0 (ALiBi) */
    float ln_eps;      /* BLOOM layer_norm_epsilon; OPT 1e-5 */
    bool tie_word_embeddings;
    DType torch_dtype; /* what the checkpoint says it was saved in (F16 / BF16 / F32) */
    int bos_id, eos_id, pad_id;
    /* quantization_config of an 8-bit checkpoint (pp8 quantize or transformers' save of load_in_8bit) */
    bool load_in_8bit;
    float int8_threshold;
} Config;

/* path: a config.json file or a directory holding one. Fails with the file and field named. */
int config_load(Config *c, const char *path, Err *e);
/* Parameter count as the published model counts it (embeddings once, even when tied). */
double config_params(const Config *c);
const char *arch_name(Arch a);


#endif
