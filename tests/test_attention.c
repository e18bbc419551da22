/* The CPU backend's attention op against a float64 reference that knows nothing of the KV-cache layout:
 * a prompt, single decode rows and a run up to the last position S - 1, called one after another on
 * the same cache, so every key and value must be read back from where an earlier call stored it.
 * S = 45 is not a multiple of the cache's position chunks, positions cross chunk ends, slot 0 is filled
 * before its neighbour is read again, and one call has fewer rows than threads (head groups). fp16 and
 * bf16, with and without ALiBi, head sizes with (64, 80) and without (100) a register-resident kernel.
 * Outputs of 1 and 2 threads must be bitwise equal, and each row's equal to the row computed alone. */
#include "../kernels/backend.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

enum { H = 3, S = 45, SLOTS = 3, MAXR = 40 };

static uint64_t g_rng = 0x2545f4914f6cdd1dull;


/* the calls: rows of (slot, pos); each call's rows are new positions of their slots */
typedef struct {
    int n;
    int slot[MAXR], pos[MAXR];
} Call;

static void add_rows(Call *c, int slot, int p0, int p1)
{
    for (int p = p0; p < p1; p++) c->slot[c->n] = slot, c->pos[c->n++] = p;
}

static void run_case(Backend *b1, Backend *b2, DType t, int E, int alibi)
{
    Call calls[4] = {{0}};
    add_rows(&calls[0], 0, 0, 20); /* prompts: 20 positions (one chunk end crossed) and exactly 16 */
    add_rows(&calls[0], 1, 0, 16);
    add_rows(&calls[1], 0, 20, 21); /* one decode row: fewer rows than threads */
    add_rows(&calls[2], 0, 21, S);  /* up to S - 1, in the last, shorter chunk */
    add_rows(&calls[3], 1, 16, 17); /* then slot 1's first key of a new chunk, and slot 2's first */
    add_rows(&calls[3], 2, 0, 1);
    const int HE = H * E, row_stride = 3 * HE;
    const size_t cache_n = (size_t)SLOTS * S * H * E;
    /* reference: every (slot, pos)'s keys and values as the rows gave them */
    double *kref = test_xmalloc(sizeof(double) * SLOTS * S * HE), *vref = test_xmalloc(sizeof(double) * SLOTS * S * HE);
    Backend *bs[2] = {b1, b2};
    uint16_t *kc[2], *vc[2];
    for (int i = 0; i < 2; i++) {
        kc[i] = bs[i]->alloc(bs[i]->ctx, 2 * cache_n);
        vc[i] = bs[i]->alloc(bs[i]->ctx, 2 * cache_n);
    }
    float slopes[H] = {0.5f, 0.25f, 0.125f};
    for (int ci = 0; ci < 4; ci++) {
        const Call *c = &calls[ci];
        uint16_t *qkv = test_xmalloc(2 * (size_t)c->n * row_stride);
        uint16_t *out[2] = {test_xmalloc(2 * (size_t)c->n * HE), test_xmalloc(2 * (size_t)c->n * HE)};
        for (size_t i = 0; i < (size_t)c->n * row_stride; i++) qkv[i] = test_to16(2.0f * test_frand(&g_rng), t);
        for (int r = 0; r < c->n; r++)
            for (int e = 0; e < HE; e++) {
                size_t at = ((size_t)c->slot[r] * S + c->pos[r]) * HE + e;
                kref[at] = test_from16(qkv[(size_t)r * row_stride + HE + e], t);
                vref[at] = test_from16(qkv[(size_t)r * row_stride + 2 * HE + e], t);
            }
        for (int i = 0; i < 2; i++) {
            AttnArgs a = {
                .rows = c->n,
                .heads = H,
                .head_dim = E,
                .q = qkv,
                .k = qkv + HE,
                .v = qkv + 2 * HE,
                .row_stride = row_stride,
                .head_stride = E,
                .slot = c->slot,
                .pos = c->pos,
                .k_cache = kc[i],
                .v_cache = vc[i],
                .max_seq = S,
                .alibi = alibi ? slopes : NULL,
                .score_scale = 1.0f / sqrtf((float)E),
                .out = out[i],
                .act = t,
            };
            bs[i]->attention(bs[i]->ctx, &a);
        }
        /* each row alone (one row: the decode path, row by row from the 16-bit cache) gives its bits in the
         * whole call (a prompt's rows: head pair by head pair, from fp32 copies where the kernels take them) */
        int alone = 0;
        uint16_t *one = test_xmalloc(2 * (size_t)HE);
        for (int r = 0; r < c->n; r++) {
            AttnArgs a = {
                .rows = 1,
                .heads = H,
                .head_dim = E,
                .q = qkv + (size_t)r * row_stride,
                .k = qkv + (size_t)r * row_stride + HE,
                .v = qkv + (size_t)r * row_stride + 2 * HE,
                .row_stride = row_stride,
                .head_stride = E,
                .slot = c->slot + r,
                .pos = c->pos + r,
                .k_cache = kc[0],
                .v_cache = vc[0],
                .max_seq = S,
                .alibi = alibi ? slopes : NULL,
                .score_scale = 1.0f / sqrtf((float)E),
                .out = one,
                .act = t,
            };
            b1->attention(b1->ctx, &a);
            alone += memcmp(one, out[0] + (size_t)r * HE, 2 * (size_t)HE) != 0;
        }
        free(one);
        CHECK_ON(!alone, "%s E=%d alibi=%d call %d: %d rows differ computed alone", dtype_name(t), E, alibi, ci, alone);
        int bad = 0, diff = 0;
        for (int r = 0; r < c->n; r++)
            for (int h = 0; h < H; h++) {
                double sc[S], m = -INFINITY, l = 0.0;
                const uint16_t *q = qkv + (size_t)r * row_stride + (size_t)h * E;
                for (int j = 0; j <= c->pos[r]; j++) {
                    const double *k = kref + ((size_t)c->slot[r] * S + j) * HE + (size_t)h * E;
                    double d = 0.0;
                    for (int e = 0; e < E; e++) d += test_from16(q[e], t) * k[e];
                    sc[j] = (double)(1.0f / sqrtf((float)E)) * d + (alibi ? (double)slopes[h] * j : 0.0);
                    m = sc[j] > m ? sc[j] : m;
                }
                for (int j = 0; j <= c->pos[r]; j++) l += (sc[j] = exp(sc[j] - m));
                for (int e = 0; e < E; e++) {
                    double want = 0.0;
                    for (int j = 0; j <= c->pos[r]; j++)
                        want += sc[j] * vref[((size_t)c->slot[r] * S + j) * HE + (size_t)h * E + e];
                    want /= l;
                    size_t o = (size_t)r * HE + (size_t)h * E + e;
                    double got = test_from16(out[0][o], t);
                    /* one rounding to 16 bits plus the fp32 sums: 2 ulps of |want| (values are O(1)) */
                    double tol = (t == DTYPE_BF16 ? 0x1p-7 : 0x1p-10) * fmax(fabs(want), 0.25);
                    if (fabs(got - want) > tol && bad++ < 3)
                        fprintf(stderr, "  call %d row %d (slot %d pos %d) head %d e %d: %.6g, want %.6g\n", ci, r,
                                c->slot[r], c->pos[r], h, e, got, want);
                    diff += out[0][o] != out[1][o];
                }
            }
        CHECK_ON(!bad, "%s E=%d alibi=%d call %d: %d outputs off the reference", dtype_name(t), E, alibi, ci, bad);
        CHECK_ON(!diff, "%s E=%d alibi=%d call %d: 1 and 2 threads differ in %d outputs", dtype_name(t), E, alibi, ci,
                 diff);
        free(qkv), free(out[0]), free(out[1]);
    }
    for (int i = 0; i < 2; i++) bs[i]->free(bs[i]->ctx, kc[i]), bs[i]->free(bs[i]->ctx, vc[i]);
    free(kref), free(vref);
}

int main(void)
{
    char err[256];
    BackendOptions o1 = {.threads = 1, .first_cpu = -1}, o2 = {.threads = 2, .first_cpu = -1};
    Backend *b1 = backend_cpu_create(&o1, err, sizeof err), *b2 = backend_cpu_create(&o2, err, sizeof err);
    CHECK(b1 && b2, "CPU backend: %s", err);
    static const int heads[] = {64, 80, 100};
    for (int ti = 0; ti < 2; ti++)
        for (int ei = 0; ei < 3; ei++)
            for (int al = 0; al < 2; al++) {
                Backend *bs[2] = {b1, b2};
                for (int i = 0; i < 2; i++) bs[i]->reserve(bs[i]->ctx, MAXR, 3 * H * heads[ei], 3 * H * heads[ei]);
                run_case(b1, b2, ti ? DTYPE_BF16 : DTYPE_F16, heads[ei], al);
            }
    backend_destroy(b1);
    backend_destroy(b2);
    printf("%d checks, %d failed\n", test_check_count, test_fail_count);
    return test_fail_count ? 1 : 0;
}
