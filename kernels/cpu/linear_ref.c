/* Scalar references for the CPU linear layers: DESIGN.md's LLM.int8() steps written as plainly as
 * possible, on row-major weights. Every fast path is tested against these. Slow on purpose. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../numerics.h"
#include "cpu_linear.h"

void ref_quantize_weights(int8_t *cb, float *scb, const uint16_t *w, int n, int k)
{
    for (int o = 0; o < n; o++) {
        float m = 0.0f;
        for (int i = 0; i < k; i++) m = fmaxf(m, fabsf(pp8_h2f(w[(size_t)o * k + i])));
        float s = pp8_i8_scale(m);
        scb[o] = m;
        for (int i = 0; i < k; i++) cb[(size_t)o * k + i] = pp8_i8_quant(pp8_h2f(w[(size_t)o * k + i]), s);
    }
}
