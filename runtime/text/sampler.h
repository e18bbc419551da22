/* Choosing the next token from a row of logits as Hugging Face `generate` does (transformers 5
 * GenerationMixin._get_logits_processor; ../shared/golden/textgen/README.md lists the rules):
 * repetition penalty, then, only when sampling, temperature, top-k, top-p and min-p, then a draw from
 * a counter-based random stream keyed by (seed, sequence index, step), so a sequence's draws do not
 * depend on the batch it shares, the rank count or the schedule. Greedy = argmax, lowest id on ties.
 * Knows nothing of tokenizers, ranks or backends: logits in, an id out.
 * V vocabulary (the model's logit rows, config.json's vocab_size) */
#ifndef PP8_SAMPLER_H
#define PP8_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct SampleParams {
    float temperature;        /* 0 = greedy; > 0 samples (HF do_sample=True with this temperature) */
    int top_k;                /* 0 = off; < 0 = not given: 50 when sampling (HF's GenerationConfig default) */
    double top_p;             /* in [0, 1]; 1 = off. A double, as HF's: it compares with float32(1 - top_p)
                                 taken in double (1 - 0.9 -> 0.1f; from the float 0.9f it would be 3 ulp more) */
    float min_p;              /* in [0, 1]; 0 = off */
    float repetition_penalty; /* > 0; 1 = off. Applies when greedy too, as in HF */
    uint64_t seed;            /* the sampling seed */
} SampleParams;

/* greedy, top-k not given, top-p 1, min-p 0, repetition penalty 1, seed 0 */
void sample_params_default(SampleParams *p);
/* NULL when p is valid, else a static message naming the flag ("--top-p 1.5: expected a number in [0, 1]"
 * style is the caller's; this names the field and the rule) */
const char *sample_params_check(const SampleParams *p);

typedef struct SamplerScratch SamplerScratch; /* per-thread work space for V logits */
SamplerScratch *sampler_scratch_create(int V);
void sampler_scratch_free(SamplerScratch *ws);

/* HF's processor list, in place on scores[0, V): repetition penalty over the distinct ids of
 * prev[0, nprev) (prompt + generated so far), then when p->temperature > 0 the warpers. Removed
 * entries become -inf. */
void sampler_process(const SampleParams *p, float *scores, int V, const int32_t *prev, int nprev, SamplerScratch *ws);

/* the uniform in [0, 1) of draw (seed, seq, step): a counter-based stream, the same whatever else is drawn */
double sampler_uniform(uint64_t seed, uint64_t seq, uint64_t step);

/* The next id: sampler_process, then argmax (greedy) or a draw from softmax(scores) with u. scores is
 * overwritten. */
int32_t sampler_next(const SampleParams *p, float *scores, int V, const int32_t *prev, int nprev, uint64_t seq,
                     uint64_t step, SamplerScratch *ws);

/* argmax with the lowest id on ties; NaN never wins */
int32_t sampler_argmax(const float *v, int V);

#endif
