/* The compute-peak probes pp8 bench's compute bound divides by (kernels/cpu/peak.h): every probe this
 * machine can run returns a positive rate below what any core could issue (a loop the compiler emptied
 * would report far more), SIMD and AMX tiers are not reported slower than the scalar probe of their kind
 * nor AMX slower than AVX-512 (loose: these differ by 4x or more on every machine that has them), and
 * every linear path this machine can run maps to an available probe. Not a speed test. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "../kernels/cpu/cpu_linear.h"
#include "../kernels/cpu/peak.h"
#include "test_util.h"

/* most ops per cycle per core any x86 core issues for each probe's instruction, doubled (2 ops per
 * multiply-add): scalar 2 imul / 4 mul+add, 2-3 SIMD multiply ports, one AMX unit at 1024 int8 / 512
 * bf16 MACs per cycle; then doubled again as margin */
static double ceiling_ops_per_cycle(PeakProbe p)
{
    switch (p) {
    case PEAK_SCALAR_INT: return 8;
    case PEAK_SCALAR_FP32: return 16;
    case PEAK_AVX2_INT8: return 3 * 32 * 2 * 2;
    case PEAK_AVX2_FMA: return 3 * 16 * 2;
    case PEAK_AVX512_FMA: return 3 * 32 * 2;
    case PEAK_AVX512_VNNI: return 3 * 128 * 2;
    case PEAK_AVX512_BF16: return 3 * 64 * 2;
    case PEAK_AMX_INT8: return 2048 * 2;
    case PEAK_AMX_BF16: return 1024 * 2;
    default: return 0;
    }
}

#define MAX_GHZ 6.0

static double g[PEAK_COUNT];

/* a >= b, measured again once if not (another process may have taken the core during a's runs) */
static int not_slower(PeakProbe a, PeakProbe b)
{
    if (g[a] >= g[b]) return 1;
    g[a] = cpu_peak_gops(a, 1);
    g[b] = cpu_peak_gops(b, 1);
    return g[a] >= g[b];
}

int main(void)
{
    int fails = 0, nprocs = omp_get_num_procs();
    for (int p = 0; p < PEAK_COUNT; p++) {
        if (!cpu_peak_available(p)) {
            printf("%-12s (%s): not available here\n", cpu_peak_name(p), cpu_peak_what(p));
            CHECK(cpu_peak_gops(p, 1) == 0.0, "%s: an unavailable probe must report 0", cpu_peak_name(p));
            continue;
        }
        g[p] = cpu_peak_gops(p, 1);
        double g2 = nprocs >= 2 ? cpu_peak_gops(p, 2) : 0.0;
        printf("%-12s (%s): %9.1f GOP/s 1T, %9.1f 2T\n", cpu_peak_name(p), cpu_peak_what(p), g[p], g2);
        double ceil1 = ceiling_ops_per_cycle(p) * MAX_GHZ;
        if (!(g[p] > 0 && g[p] <= ceil1)) {
            fprintf(stderr, "FAIL %s: %.1f GOP/s on one thread, want (0, %.0f]\n", cpu_peak_name(p), g[p], ceil1);
            fails++;
        }
        if (nprocs >= 2 && !(g2 > 0 && g2 <= 2 * ceil1)) {
            fprintf(stderr, "FAIL %s: %.1f GOP/s on two threads, want (0, %.0f]\n", cpu_peak_name(p), g2, 2 * ceil1);
            fails++;
        }
    }
    for (int p = 0; p < PEAK_COUNT; p++) {
        if (!cpu_peak_available(p) || cpu_peak_tier(p) == 0) continue;
        PeakProbe s = cpu_peak_is_int(p) ? PEAK_SCALAR_INT : PEAK_SCALAR_FP32;
        if (!not_slower(p, s)) {
            fprintf(stderr, "FAIL %s %.1f GOP/s below %s %.1f\n", cpu_peak_name(p), g[p], cpu_peak_name(s), g[s]);
            fails++;
        }
    }
    const PeakProbe amx_over[][2] = {{PEAK_AMX_INT8, PEAK_AVX512_VNNI}, {PEAK_AMX_BF16, PEAK_AVX512_BF16}};
    for (int i = 0; i < 2; i++) {
        PeakProbe a = amx_over[i][0], b = amx_over[i][1];
        if (cpu_peak_available(a) && cpu_peak_available(b) && !not_slower(a, b)) {
            fprintf(stderr, "FAIL %s %.1f GOP/s below %s %.1f\n", cpu_peak_name(a), g[a], cpu_peak_name(b), g[b]);
            fails++;
        }
    }

    /* every path the dispatch can pick here has a probe that runs here */
    const DType dts[] = {DTYPE_I8, DTYPE_BF16, DTYPE_F16};
    for (int d = 0; d < 3; d++) {
        const char *names[8];
        int n = cpu_linear_path_list(dts[d], names, 8);
        CHECK(n >= 1, "no linear path for dtype %d", (int)dts[d]);
        for (int i = 0; i < n; i++) {
            PeakProbe p;
            double useful = 0;
            int unknown = cpu_peak_for_path(dts[d], names[i], &p, &useful);
            if (unknown || !cpu_peak_available(p) || !(useful > 0 && useful <= 1)) {
                fprintf(stderr, "FAIL path %s (dtype %d): unknown=%d probe %s available=%d useful=%g\n", names[i],
                        (int)dts[d], unknown, cpu_peak_name(p), cpu_peak_available(p), useful);
                fails++;
            }
        }
    }
    PeakProbe p;
    double useful;
    CHECK(cpu_peak_for_path(DTYPE_I8, "scalar", &p, &useful) == 0 && p == PEAK_SCALAR_INT, "int8 scalar");
    CHECK(cpu_peak_for_path(DTYPE_BF16, "scalar", &p, &useful) == 0 && p == PEAK_SCALAR_FP32, "bf16 scalar");
    CHECK(cpu_peak_for_path(DTYPE_F16, "amx-f16split", &p, &useful) == 0 && p == PEAK_AMX_BF16 && useful == 0.25,
          "amx-f16split: four tdpbf16ps per useful product");
    CHECK(cpu_peak_for_path(DTYPE_I8, "amx-bf16", &p, &useful) == 1, "a bf16 path name is not an int8 path");
    CHECK(cpu_peak_for_path(DTYPE_F16, "no-such-path", &p, &useful) == 1 && cpu_peak_available(p) && useful == 1,
          "an unknown path falls back to an available FMA probe");
    if (fails) return 1;
    printf("ok\n");
    return 0;
}
