/* The CPU backend's row primitives (kernels/cpu/vec.h): the AVX-512 versions give bitwise the scalar
 * versions' results, and the batched attention ops (dots, axpys) give bitwise what the one-key ops give
 * key by key, for fp16 and bf16, head sizes with and without a register-resident kernel, and key
 * counts around the 16-key groups. Without AVX-512 on this CPU only the scalar half runs (said on
 * stdout; the scalar checks still have to pass). */
#include <math.h>
#include <string.h>

#include "../kernels/cpu/vec.h"
#include "../kernels/numerics.h"
#include "test_util.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float frand(void) { return test_frand(&g_rng); }

static int same(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* every op of `v` against the scalar ops and against itself key by key; returns the checks made */
static long check_ops(const VecOps *v, const VecOps *ref)
{
    static const int heads[] = {8, 16, 24, 32, 64, 80, 100, 128};
    static const int counts[] = {1, 2, 15, 16, 17, 31, 32, 33, 48, 49, 64};
    static const DType types[] = {DTYPE_F16, DTYPE_BF16};
    long checks = 0;
    for (int ti = 0; ti < 2; ti++)
        for (size_t ei = 0; ei < sizeof heads / sizeof *heads; ei++)
            for (size_t ci = 0; ci < sizeof counts / sizeof *counts; ci++) {
                DType t = types[ti];
                int E = heads[ei], n = counts[ci];
                float *q = test_xmalloc(sizeof(float) * E), *s = test_xmalloc(sizeof(float) * n);
                float *p = test_xmalloc(sizeof(float) * n);
                float *acc = test_xmalloc(sizeof(float) * E), *acc1 = test_xmalloc(sizeof(float) * E);
                float *accr = test_xmalloc(sizeof(float) * E);
                uint16_t *k = test_xmalloc(2 * (size_t)n * E), *vv = test_xmalloc(2 * (size_t)n * E);
                for (int i = 0; i < E; i++) q[i] = 4 * frand();
                for (size_t i = 0; i < (size_t)n * E; i++) {
                    k[i] = t == DTYPE_BF16 ? pp8_f2bf(3 * frand()) : pp8_f2h(3 * frand());
                    vv[i] = t == DTYPE_BF16 ? pp8_f2bf(frand()) : pp8_f2h(frand());
                }
                for (int j = 0; j < n; j++) p[j] = fabsf(frand());
                v->dots(q, k, n, E, s, t, vv); /* prefetching the values must change nothing */
                for (int j = 0; j < n; j++) {
                    float one = v->dot(q, k + (size_t)j * E, E, t), r = ref->dot(q, k + (size_t)j * E, E, t);
                    CHECK(same(s[j], one), "%s dots E=%d n=%d key %d: %.9g vs dot %.9g", vec_ops_name(v), E, n, j,
                          s[j], one);
                    CHECK(same(one, r), "%s dot E=%d key %d: %.9g vs scalar %.9g", vec_ops_name(v), E, j, one, r);
                    checks += 2;
                }
                for (int i = 0; i < E; i++) acc[i] = acc1[i] = accr[i] = frand();
                float c = 0.75f;
                v->axpys(acc, c, p, vv, n, E, t, k);
                ref->axpys(accr, c, p, vv, n, E, t, NULL);
                for (int j = 0; j < n; j++) v->scale_axpy(acc1, j == 0 ? c : 1.0f, p[j], vv + (size_t)j * E, E, t);
                for (int i = 0; i < E; i++) {
                    CHECK(same(acc[i], acc1[i]), "%s axpys E=%d n=%d lane %d: %.9g vs scale_axpy %.9g", vec_ops_name(v),
                          E, n, i, acc[i], acc1[i]);
                    CHECK(same(acc[i], accr[i]), "%s axpys E=%d n=%d lane %d: %.9g vs scalar %.9g", vec_ops_name(v), E,
                          n, i, acc[i], accr[i]);
                    checks += 2;
                }
                /* exp_sum: softmax numerators of the scores, both versions, bitwise; near exp */
                float *e1 = test_xmalloc(sizeof(float) * n), *e2 = test_xmalloc(sizeof(float) * n), mx = -INFINITY;
                for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
                memcpy(e1, s, sizeof(float) * n);
                memcpy(e2, s, sizeof(float) * n);
                float sum1 = v->exp_sum(e1, n, mx), sum2 = ref->exp_sum(e2, n, mx);
                CHECK(same(sum1, sum2), "%s exp_sum n=%d: %.9g vs scalar %.9g", vec_ops_name(v), n, sum1, sum2);
                for (int j = 0; j < n; j++) {
                    CHECK(same(e1[j], e2[j]), "%s exp_sum n=%d [%d]: %.9g vs scalar %.9g", vec_ops_name(v), n, j, e1[j],
                          e2[j]);
                    double want = exp((double)(s[j] - mx)); /* the float argument both versions see */
                    CHECK(fabs(e1[j] - want) <= 3e-7 * want + 1e-37, "exp(%.9g) = %.9g, want %.9g", s[j] - mx, e1[j], want);
                    checks += 3;
                }
                free(e1), free(e2);
                free(q), free(s), free(p), free(acc), free(acc1), free(accr), free(k), free(vv);
            }
    /* gelu: both versions, bitwise, over lengths around the 16 lanes, activations up to +-12 and the
     * special values; near transformers' formula with tanh in double */
    static const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-4f, -1e-4f, 20.0f, -20.0f, 100.0f, -100.0f,
                                    INFINITY, -INFINITY};
    for (int n = 1; n <= 67; n += 11) {
        float *a = test_xmalloc(sizeof(float) * n), *b = test_xmalloc(sizeof(float) * n);
        float *x = test_xmalloc(sizeof(float) * n);
        for (int i = 0; i < n; i++) x[i] = i < 12 && n > 12 ? special[i] : 12 * frand();
        memcpy(a, x, sizeof(float) * n);
        memcpy(b, x, sizeof(float) * n);
        v->gelu(a, n);
        ref->gelu(b, n);
        for (int i = 0; i < n; i++) {
            CHECK(same(a[i], b[i]), "%s gelu(%.9g) = %.9g vs scalar %.9g", vec_ops_name(v), x[i], a[i], b[i]);
            double xd = x[i], want = xd * 0.5 * (1.0 + tanh(0.79788456 * xd * (1.0 + 0.044715 * xd * xd)));
            if (isfinite(x[i]))
                CHECK(fabs(a[i] - want) <= 4e-7 * fabs(xd) + 1e-37, "gelu(%.9g) = %.9g, want %.9g", x[i], a[i], want);
            else
                CHECK(a[i] == (x[i] > 0 ? INFINITY : 0.0f) || isnan(a[i]), "gelu(%g) = %g", x[i], a[i]);
            checks += 2;
        }
        free(a), free(b), free(x);
    }
    float nan_in = NAN;
    v->gelu(&nan_in, 1);
    CHECK(isnan(nan_in), "%s gelu(NaN) = %g", vec_ops_name(v), nan_in);
    return checks + 1;
}

/* vec_tanh_ref: within 4e-7 of tanh, odd, +-1 at +-inf, NaN kept */
static long check_tanh(void)
{
    long checks = 0;
    for (float y = -12.0f; y < 12.0f; y += 0.00173f) {
        float got = vec_tanh_ref(y);
        CHECK(fabs(got - tanh((double)y)) <= 4e-7, "tanh(%.9g) = %.9g, want %.9g", y, got, tanh((double)y));
        CHECK(same(vec_tanh_ref(-y), -got), "tanh(-%.9g) = %.9g, not -%.9g", y, vec_tanh_ref(-y), got);
        checks += 2;
    }
    CHECK(vec_tanh_ref(INFINITY) == 1.0f && vec_tanh_ref(-INFINITY) == -1.0f && isnan(vec_tanh_ref(NAN)) &&
              same(vec_tanh_ref(-0.0f), -0.0f),
          "tanh special values");
    return checks + 1;
}

/* vec_exp_ref over its whole domain: within 2 ulp of exp, 0 below -87, NaN kept, -inf -> 0 */
static long check_exp(void)
{
    long checks = 0;
    for (float x = 0.0f; x > -90.0f; x -= 0.0037f) {
        float got = vec_exp_ref(x);
        double want = exp((double)x);
        if (x < -87.0f)
            CHECK(got == 0.0f, "exp(%.9g) = %.9g below -87", x, got);
        else
            CHECK(fabs(got - want) <= 2.4e-7 * want, "exp(%.9g) = %.9g, want %.9g (rel %.3g)", x, got, want,
                  fabs(got - want) / want);
        checks++;
    }
    CHECK(vec_exp_ref(-INFINITY) == 0.0f && isnan(vec_exp_ref(NAN)) && vec_exp_ref(0.0f) == 1.0f, "special values");
    return checks + 3;
}

int main(void)
{
    printf("exp: %ld checks\n", check_exp());
    printf("tanh: %ld checks\n", check_tanh());
    const VecOps *scalar = vec_ops_scalar(), *best = vec_ops_best();
    long n = check_ops(scalar, scalar);
    printf("scalar: %ld checks\n", n);
    if (best != scalar) {
        long m = check_ops(best, scalar);
        printf("%s: %ld checks against scalar\n", vec_ops_name(best), m);
    } else {
        printf("no AVX-512 on this CPU: only the scalar ops were checked\n");
    }
    printf("ok\n");
    return 0;
}
