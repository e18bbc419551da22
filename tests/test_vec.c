/* The CPU backend's row primitives (kernels/cpu/vec.h): the AVX-512 versions give bitwise the scalar
 * versions' results, and the attention chunk (attn_chunk) gives bitwise what its definition in vec.h
 * gives with the one-key ops (dot, scale_axpy, vec_exp_ref), for fp16 and bf16, with and without
 * ALiBi, head sizes with and without a register-resident kernel, 1..16 keys, and running maxima that
 * do and do not rescale. Without AVX-512 on this CPU only the scalar half runs (said on
 * stdout; the scalar checks still have to pass). */
#include <math.h>
#include <string.h>

#include "../kernels/cpu/vec.h"
#include "../kernels/numerics.h"
#include "test_util.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float frand(void) { return test_frand(&g_rng); }

static int same(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* vec.h's chunk written out with the one-key ops: the specification attn_chunk must match bitwise */
static void chunk_spec(const VecOps *v, const VecAttnChunk *c)
{
    for (int h = 0; h < c->nh; h++) {
        const uint16_t *k = c->k + (size_t)h * c->hs, *vv = c->v + (size_t)h * c->hs;
        float s[VEC_ATTN_CHUNK], bm = -INFINITY, lane[16] = {0};
        for (int j = 0; j < c->nb; j++) {
            s[j] = c->scale * v->dot(c->q + (size_t)h * c->E, k + (size_t)j * c->E, c->E, c->t);
            if (c->slope) s[j] += c->slope[h] * (float)(c->j0 + j);
            bm = s[j] > bm ? s[j] : bm;
        }
        float corr = 1.0f;
        if (bm > c->m[h]) corr = vec_exp_ref(c->m[h] - bm), c->m[h] = bm;
        for (int j = 0; j < c->nb; j++) lane[j] = s[j] = vec_exp_ref(s[j] - c->m[h]);
        for (int w = 8; w >= 1; w /= 2)
            for (int i = 0; i < w; i++) lane[i] = lane[i] + lane[i + w];
        c->l[h] = c->l[h] * corr + lane[0];
        for (int j = 0; j < c->nb; j++)
            v->scale_axpy(c->acc + (size_t)h * c->E, j == 0 ? corr : 1.0f, s[j], vv + (size_t)j * c->E, c->E, c->t);
    }
}

/* attn_chunk of `v` against the spec (with `v`'s and the scalar one-key ops) and against the scalar
 * attn_chunk, with and without prefetch, from a fresh state (m = -inf) and from one whose running max
 * is above, near and below the chunk's scores (corr = 1 and corr < 1); returns the checks made */
static long check_chunk(const VecOps *v, const VecOps *ref, DType t, int E, int nb, int alibi)
{
    enum { NH = 3 };
    const size_t hs = (size_t)VEC_ATTN_CHUNK * E + 8; /* heads apart by more than a chunk's keys */
    float *q = test_xmalloc(sizeof(float) * NH * E), slope[NH] = {0.5f, 0.25f, 0.125f};
    uint16_t *k = test_xmalloc(2 * NH * hs), *vv = test_xmalloc(2 * NH * hs);
    for (int i = 0; i < NH * E; i++) q[i] = 4 * frand() / sqrtf((float)E);
    for (size_t i = 0; i < NH * hs; i++) {
        k[i] = t == DTYPE_BF16 ? pp8_f2bf(3 * frand()) : pp8_f2h(3 * frand());
        vv[i] = t == DTYPE_BF16 ? pp8_f2bf(frand()) : pp8_f2h(frand());
    }
    long checks = 0;
    for (int start = 0; start < 4; start++) {
        /* 0: fresh; 1..3: running max 30 (above every score), 0 (among them), -30 (below) */
        float m[4][NH], l[4][NH], *acc[4];
        for (int x = 0; x < 4; x++) {
            acc[x] = test_xmalloc(sizeof(float) * NH * E);
            for (int h = 0; h < NH; h++) m[x][h] = start ? 60.0f - 30.0f * start : -INFINITY, l[x][h] = start ? 2.5f : 0;
        }
        for (int i = 0; i < NH * E; i++) acc[0][i] = start ? frand() : 0.0f;
        for (int x = 1; x < 4; x++) memcpy(acc[x], acc[0], sizeof(float) * NH * E);
        VecAttnChunk c[4];
        for (int x = 0; x < 4; x++)
            c[x] = (VecAttnChunk){.q = q, .k = k, .v = vv, .hs = hs, .nh = NH, .nb = nb, .E = E, .j0 = 37,
                                  .scale = 1.0f / sqrtf((float)E), .slope = alibi ? slope : NULL, .m = m[x],
                                  .l = l[x], .acc = acc[x], .pf = 0, .t = t};
        c[1].pf = 2048; /* prefetching must change nothing */
        v->attn_chunk(&c[0]);
        v->attn_chunk(&c[1]);
        ref->attn_chunk(&c[2]);
        chunk_spec(v, &c[3]);
        static const char *what[4] = {"itself", "itself with prefetch", "scalar attn_chunk", "the one-key spec"};
        for (int x = 1; x < 4; x++) {
            int bad = 0;
            for (int h = 0; h < NH; h++) bad += !same(m[0][h], m[x][h]) + !same(l[0][h], l[x][h]);
            for (int i = 0; i < NH * E; i++) bad += !same(acc[0][i], acc[x][i]);
            CHECK(!bad, "%s attn_chunk %s E=%d nb=%d alibi=%d start %d: %d values differ from %s (l %.9g vs %.9g)",
                  vec_ops_name(v), dtype_name(t), E, nb, alibi, start, bad, what[x], l[0][0], l[x][0]);
            checks++;
        }
        for (int x = 0; x < 4; x++) free(acc[x]);
    }
    free(q), free(k), free(vv);
    return checks;
}

/* every op of `v` against the scalar ops and against itself key by key; returns the checks made */
static long check_ops(const VecOps *v, const VecOps *ref)
{
    static const int heads[] = {8, 16, 24, 32, 64, 80, 100, 128};
    static const int counts[] = {1, 2, 7, 9, 15, 16, 17, 31, 32, 33, 48, 49, 64};
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
                for (int j = 0; j < n; j++) {
                    float one = v->dot(q, k + (size_t)j * E, E, t), r = ref->dot(q, k + (size_t)j * E, E, t);
                    CHECK(same(one, r), "%s dot E=%d key %d: %.9g vs scalar %.9g", vec_ops_name(v), E, j, one, r);
                    s[j] = one;
                    checks++;
                }
                for (int i = 0; i < E; i++) acc[i] = acc1[i] = accr[i] = frand();
                /* scale_axpy: n keys' values, c = 0.75 for the first, both versions, bitwise */
                for (int j = 0; j < n; j++) {
                    v->scale_axpy(acc1, j == 0 ? 0.75f : 1.0f, p[j], vv + (size_t)j * E, E, t);
                    ref->scale_axpy(accr, j == 0 ? 0.75f : 1.0f, p[j], vv + (size_t)j * E, E, t);
                }
                for (int i = 0; i < E; i++) {
                    CHECK(same(acc1[i], accr[i]), "%s scale_axpy E=%d n=%d lane %d: %.9g vs scalar %.9g",
                          vec_ops_name(v), E, n, i, acc1[i], accr[i]);
                    checks++;
                }
                if (n <= VEC_ATTN_CHUNK)
                    for (int al = 0; al < 2; al++) checks += check_chunk(v, ref, t, E, n, al);
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

/* load and store of `v` bitwise as the scalar ones (and pp8_f2h / pp8_f2bf): every n from 1 to 40 (the
 * masked tails; the AVX-512 fp16 store once kept NaN payloads that pp8_f2h drops), values around fp16's and bf16's rounding halfway points, subnormals of both, +-0,
 * +-inf, NaNs with payloads in the bits bf16 drops, and fp16 overflow */
static long check_load_store(const VecOps *v, const VecOps *ref)
{
    enum { N = 40 };
    long checks = 0;
    for (int ti = 0; ti < 2; ti++) {
        const DType t = ti ? DTYPE_BF16 : DTYPE_F16;
        for (int n = 1; n <= N; n++)
            for (int rep = 0; rep < 8; rep++) {
                float f[N], g[N];
                uint16_t a[N + 1], b[N + 1];
                for (int i = 0; i < n; i++) {
                    uint32_t u;
                    float x = 1000 * frand();
                    memcpy(&u, &x, 4);
                    switch ((rep * 7 + i) % 9) {
                    case 0: u = (u & 0xffff0000u) | 0x8000u; break; /* bf16 halfway */
                    case 1: u = (u & 0xffffe000u) | 0x1000u; break; /* fp16 halfway (normal range) */
                    case 2: u = 0x7fc00000u | (u & 0x003fffffu); break; /* NaN, payload in the low bits */
                    case 3: u = 0x7f800001u | (u & 0x0000ffffu); break; /* signalling NaN, low payload only */
                    case 4: u = (u & 0x80000000u) | 0x7f800000u; break; /* +-inf */
                    case 5: u = (u & 0x807fffffu); break; /* fp32 subnormal, +-0 */
                    case 6: u = (u & 0x80000000u) | 0x33800000u | (u & 0x7fffffu); break; /* fp16 subnormal range */
                    case 7: u = (u & 0x80000000u) | 0x477ff000u | (u & 0xfffu); break; /* near 65504, overflow */
                    default: break;
                    }
                    memcpy(&f[i], &u, 4);
                }
                a[n] = b[n] = 0xabcd; /* the tail's mask must not write past n */
                v->store(a, f, n, t);
                ref->store(b, f, n, t);
                for (int i = 0; i <= n; i++)
                    if (a[i] != b[i]) {
                        uint32_t u;
                        memcpy(&u, &f[i < n ? i : 0], 4);
                        fprintf(stderr, "  %s store %s n=%d [%d]: %04x vs scalar %04x (input %08x)\n", vec_ops_name(v),
                                dtype_name(t), n, i, a[i], b[i], u);
                    }
                CHECK(!memcmp(a, b, sizeof(uint16_t) * (n + 1)), "store %s n=%d: differs from scalar",
                      dtype_name(t), n);
                for (int i = 0; i < n; i++)
                    CHECK(a[i] == (t == DTYPE_BF16 ? pp8_f2bf(f[i]) : pp8_f2h(f[i])), "store %s: %a", dtype_name(t),
                          f[i]);
                v->load(f, a, n, t);
                ref->load(g, a, n, t);
                CHECK(!memcmp(f, g, sizeof(float) * n), "load %s n=%d: differs from scalar", dtype_name(t), n);
                checks += 3;
            }
    }
    return checks;
}

int main(void)
{
    printf("exp: %ld checks\n", check_exp());
    printf("tanh: %ld checks\n", check_tanh());
    const VecOps *scalar = vec_ops_scalar(), *best = vec_ops_best();
    long n = check_ops(scalar, scalar) + check_load_store(scalar, scalar);
    printf("scalar: %ld checks\n", n);
    /* every variant this CPU runs: AVX-512 (when present) and the AVX2 + FMA build of the scalar ops */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        long m = check_ops(vec_ops_avx2(), scalar) + check_load_store(vec_ops_avx2(), scalar);
        printf("avx2: %ld checks against scalar\n", m);
    } else {
        printf("no AVX2 + FMA on this CPU: the avx2 ops were not checked\n");
    }
    if (best != scalar && best != vec_ops_avx2()) {
        long m = check_ops(best, scalar) + check_load_store(best, scalar);
        printf("%s: %ld checks against scalar\n", vec_ops_name(best), m);
    } else {
        printf("no AVX-512 on this CPU: its ops were not checked\n");
    }
    printf("ok\n");
    return 0;
}
