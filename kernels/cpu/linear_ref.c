/* Scalar references for the CPU linear layers: DESIGN.md's LLM.int8() steps written as plainly as
 * possible, on row-major weights, with numerics.h's per-element functions. Every fast path is tested
 * against these. Slow on purpose; allocates its temporaries (never called in the token loop). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "../numerics.h"
#include "cpu_linear.h"

void ref_quantize_weights(int8_t *cb, float *scb, const uint16_t *w, int n, int k)
{
    for (int o = 0; o < n; o++) {
        /* max |w| on the fp16 bits: for finite values the magnitude orders like the integer, and this
         * runs at every model load (one call per weight row) */
        uint16_t mb = 0;
        for (int i = 0; i < k; i++) {
            uint16_t a = w[(size_t)o * k + i] & 0x7fffu;
            mb = a > mb ? a : mb;
        }
        float m = pp8_h2f(mb);
        float s = pp8_i8_scale(m);
        scb[o] = m;
        for (int i = 0; i < k; i++) cb[(size_t)o * k + i] = pp8_i8_quant(pp8_h2f(w[(size_t)o * k + i]), s);
    }
}

/* bitsandbytes int8_vectorwise_quant: a column is an outlier when any row reaches |x| >= t. */
int ref_outlier_cols(int *cols, const uint16_t *x, int m, int k, float t)
{
    int n = 0;
    for (int j = 0; j < k; j++) {
        int out = 0;
        for (int r = 0; r < m; r++) out |= pp8_i8_is_outlier(fabsf(pp8_h2f(x[(size_t)r * k + j])), t);
        if (out) cols[n++] = j;
    }
    return n;
}

/* SCA over the elements below the threshold (other values of an outlier column still count), then
 * CA with the outlier columns zeroed (bitsandbytes kInt8VectorQuant + the column zeroing of
 * int8_vectorwise_quant). */
void ref_quantize_acts(int8_t *ca, float *sca, const uint16_t *x, int m, int k, const int *cols, int ncols,
                       float t)
{
    for (int r = 0; r < m; r++) {
        const uint16_t *xr = x + (size_t)r * k;
        float amax = 0.0f;
        for (int j = 0; j < k; j++) {
            float a = fabsf(pp8_h2f(xr[j]));
            if (!pp8_i8_is_outlier(a, t)) amax = fmaxf(amax, a);
        }
        float s = pp8_i8_scale(amax);
        sca[r] = amax;
        for (int j = 0; j < k; j++) {
            float v = pp8_h2f(xr[j]);
            ca[(size_t)r * k + j] = pp8_i8_is_outlier(fabsf(v), t) ? 0 : pp8_i8_quant(v, s);
        }
        for (int c = 0; c < ncols; c++) ca[(size_t)r * k + cols[c]] = 0;
    }
}

void ref_int8_acc(int32_t *acc, const int8_t *ca, const int8_t *cb, int m, int k, int n)
{
    for (int r = 0; r < m; r++)
        for (int o = 0; o < n; o++) {
            int32_t s = 0;
            for (int j = 0; j < k; j++) s += (int32_t)ca[(size_t)r * k + j] * cb[(size_t)o * k + j];
            acc[(size_t)r * n + o] = s;
        }
}

void ref_int8_linear(uint16_t *y, const uint16_t *x, int m, int k, const int8_t *cb, const float *scb,
                     const uint16_t *bias, int n, float t)
{
    int *cols = malloc(sizeof(int) * (size_t)(k > 0 ? k : 1));
    int8_t *ca = malloc((size_t)m * k + 1);
    float *sca = malloc(sizeof(float) * (size_t)(m > 0 ? m : 1));
    int32_t *acc = malloc(sizeof(int32_t) * ((size_t)m * n + 1));
    PP8_CHECK(cols && ca && sca && acc, "out of memory");
    int nc = ref_outlier_cols(cols, x, m, k, t);
    ref_quantize_acts(ca, sca, x, m, k, cols, nc, t);
    ref_int8_acc(acc, ca, cb, m, k, n); /* step 1 */
    for (int r = 0; r < m; r++)
        for (int o = 0; o < n; o++) {
            float b = bias ? pp8_h2f(bias[o]) : 0.0f;
            uint16_t y1 = pp8_i8_dequant(acc[(size_t)r * n + o], sca[r], scb[o], b); /* step 2 */
            if (nc > 0) {
                float sum = 0.0f;
                for (int c = 0; c < nc; c++) { /* steps 3 and 4, ascending columns */
                    uint16_t wd = pp8_i8_weight_dequant(cb[(size_t)o * k + cols[c]], scb[o]);
                    sum = pp8_i8_outlier_term(sum, x[(size_t)r * k + cols[c]], wd);
                }
                y1 = pp8_i8_outlier_finish(y1, sum);
            }
            y[(size_t)r * n + o] = y1;
        }
    free(cols);
    free(ca);
    free(sca);
    free(acc);
}

static float ref_load16(const uint16_t *p, DType dt) { return dt == DTYPE_BF16 ? pp8_bf2f(*p) : pp8_h2f(*p); }

void ref_linear16(void *y, DType ydt, const uint16_t *x, DType act, int m, int k, const uint16_t *w, DType wdt,
                  const uint16_t *bias, int n)
{
    for (int r = 0; r < m; r++)
        for (int o = 0; o < n; o++) {
            float acc = 0.0f;
            for (int j = 0; j < k; j++)
                acc = pp8_add(acc, pp8_mul(ref_load16(&x[(size_t)r * k + j], act), ref_load16(&w[(size_t)o * k + j], wdt)));
            if (bias) acc = pp8_add(acc, ref_load16(&bias[o], act));
            size_t i = (size_t)r * n + o;
            if (ydt == DTYPE_F32)
                ((float *)y)[i] = acc;
            else
                ((uint16_t *)y)[i] = ydt == DTYPE_BF16 ? pp8_f2bf(acc) : pp8_f2h(acc);
        }
}
