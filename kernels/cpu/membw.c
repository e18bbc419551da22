/* Read-bandwidth probe (membw.h): one buffer, each thread sums its contiguous share, wall time from the
 * first thread's start to the last one's end, median of several passes. The AVX-512 loops are compiled
 * with a target attribute and run only when CPUID says so (this file gets no -m flags).
 * Does not pin threads: it measures what the linear kernels get under the same OpenMP settings. */
#include "membw.h"

#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Prefetch distance (membw_pf_bytes): far enough to cover DRAM latency, short enough to stay inside the
 * L1/L2 fill buffers. Intel: 2-4 KiB measured best on Sapphire Rapids (interleaved A/B of the int8 GEMV,
 * 1T GB/s: 2 KiB 14.9, 1 KiB 13.2, 4-8 KiB 14.1-14.3). AMD: 512 bytes. Zen 4 EPYC VM (2026-12-05),
 * bench-linear 1T, weight GB/s over the read probe, built with each distance, two runs each:
 *   int8 K=2048 N=8192 M=1 / M=4:  2048 0.73-0.75 / 0.58-0.61, 1024 0.80 / 0.60-0.72, 512 0.86-0.87 / 0.83-0.85
 *   int8 K=8192 N=2048 M=1 / M=4:  2048 0.84-0.85 / 0.73-0.75, 1024 0.90-0.91 / 0.87-0.88, 512 0.98-0.99 / 0.96
 *   bf16 K=2048 N=8192 M=1: 2048 0.79, 512 0.97-0.98; fp16 K=2048 N=50272 (OPT's head) M=1: 0.80, 0.96
 * (256 and 384 read like 512, 640-768 like 1024). */
#define MEMBW_PF_INTEL 2048
#define MEMBW_PF_AMD 512
#define MEMBW_PASSES 7

static volatile uint64_t g_sink;

static int g_pf_bytes;
static pthread_once_t g_pf_once = PTHREAD_ONCE_INIT;

static void membw_pf_detect(void)
{
    unsigned a, b, c, d;
    int amd = __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;
    g_pf_bytes = amd ? MEMBW_PF_AMD : MEMBW_PF_INTEL;
    const char *env = getenv("PP8_PF_BYTES");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 64 || v > 16384 || v % 64)
            fprintf(stderr, "pp8: warning: PP8_PF_BYTES=%s is not a multiple of 64 in 64..16384; ignored\n", env);
        else
            g_pf_bytes = (int)v;
    }
}

int membw_pf_bytes(void)
{
    pthread_once(&g_pf_once, membw_pf_detect);
    return g_pf_bytes;
}

/* the lanes' sum in unsigned (wrapping) arithmetic: the sums are only a sink, and gcc's
 * _mm512_reduce_add_epi64 adds them as signed long long, which overflows (UBSan) */
__attribute__((target("avx512f"))) static inline uint64_t membw_lanes_sum(__m512i s)
{
    uint64_t l[8], t = 0;
    _mm512_storeu_si512(l, s);
    for (int i = 0; i < 8; i++) t += l[i];
    return t;
}

__attribute__((target("avx512f"))) static uint64_t membw_sum_avx512(const char *p, size_t n, size_t pf)
{
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    if (pf) {
        for (size_t i = 0; i + 256 <= n; i += 256) {
            _mm_prefetch(p + i + pf, _MM_HINT_T0);
            _mm_prefetch(p + i + pf + 64, _MM_HINT_T0);
            _mm_prefetch(p + i + pf + 128, _MM_HINT_T0);
            _mm_prefetch(p + i + pf + 192, _MM_HINT_T0);
            s0 = _mm512_add_epi64(s0, _mm512_load_si512(p + i));
            s1 = _mm512_add_epi64(s1, _mm512_load_si512(p + i + 64));
            s2 = _mm512_add_epi64(s2, _mm512_load_si512(p + i + 128));
            s3 = _mm512_add_epi64(s3, _mm512_load_si512(p + i + 192));
        }
    } else {
        for (size_t i = 0; i + 256 <= n; i += 256) {
            s0 = _mm512_add_epi64(s0, _mm512_load_si512(p + i));
            s1 = _mm512_add_epi64(s1, _mm512_load_si512(p + i + 64));
            s2 = _mm512_add_epi64(s2, _mm512_load_si512(p + i + 128));
            s3 = _mm512_add_epi64(s3, _mm512_load_si512(p + i + 192));
        }
    }
    __m512i s = _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3));
    return membw_lanes_sum(s);
}

/* four streams q bytes apart, one line of each per step, each prefetched ahead */
__attribute__((target("avx512f"))) static uint64_t membw_sum4_avx512(const char *p, size_t q, size_t pf)
{
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    const char *p1 = p + q, *p2 = p1 + q, *p3 = p2 + q;
    for (size_t i = 0; i + 64 <= q; i += 64) {
        if (pf) {
            _mm_prefetch(p + i + pf, _MM_HINT_T0);
            _mm_prefetch(p1 + i + pf, _MM_HINT_T0);
            _mm_prefetch(p2 + i + pf, _MM_HINT_T0);
            _mm_prefetch(p3 + i + pf, _MM_HINT_T0);
        }
        s0 = _mm512_add_epi64(s0, _mm512_load_si512(p + i));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512(p1 + i));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512(p2 + i));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512(p3 + i));
    }
    __m512i s = _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3));
    return membw_lanes_sum(s);
}

static uint64_t membw_sum_portable(const char *p, size_t n, size_t pf)
{
    const uint64_t *q = (const uint64_t *)p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 32 <= n / 8; i += 32) {
        if (pf) __builtin_prefetch(p + i * 8 + pf);
        for (int k = 0; k < 32; k += 4) {
            s0 += q[i + k];
            s1 += q[i + k + 1];
            s2 += q[i + k + 2];
            s3 += q[i + k + 3];
        }
    }
    return s0 + s1 + s2 + s3;
}

static int membw_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* membw_read_once with the prefetch distance explicit: pf bytes ahead, 0 none */
static double membw_read_pf(const void *buf, size_t bytes, int threads, size_t pf, int streams)
{
    static int avx512 = -1;
    if (avx512 < 0) avx512 = __builtin_cpu_supports("avx512f");
    double t0 = 0.0, t1 = 0.0;
    uint64_t total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        size_t share = bytes / (size_t)nt / 256 * 256;
        const char *p = (const char *)buf + share * (size_t)tid;
#pragma omp barrier
#pragma omp master
        t0 = omp_get_wtime();
        if (avx512 && streams == 4)
            total += membw_sum4_avx512(p, share / 4 / 64 * 64, pf);
        else
            total += avx512 ? membw_sum_avx512(p, share, pf) : membw_sum_portable(p, share, pf);
#pragma omp barrier
#pragma omp master
        t1 = omp_get_wtime();
    }
    g_sink += total;
    return t1 - t0;
}

double membw_read_once(const void *buf, size_t bytes, int threads, int prefetch, int streams)
{
    return membw_read_pf(buf, bytes, threads, prefetch ? (size_t)membw_pf_bytes() : 0, streams);
}

double membw_read_gbs(int threads, int prefetch, size_t bytes)
{
    bytes = bytes / (256 * (size_t)threads) * 256 * (size_t)threads;
    if (threads < 1 || bytes == 0) return 0.0;
    size_t huge = (size_t)2 << 20, al = (bytes + huge - 1) / huge * huge;
    char *buf = aligned_alloc(huge, al);
    if (!buf) return 0.0;
    madvise(buf, al, MADV_HUGEPAGE); /* the higher ceiling (fewer page walks): ratios err low, not high */
    memset(buf, 1, bytes);           /* real pages, not the shared zero page */
    /* the ceiling: the kernels' distance and Intel's 2048 (where they differ), so that choosing a distance
     * for the kernels cannot lower the bound they are measured against */
    size_t dist[2] = {prefetch ? (size_t)membw_pf_bytes() : 0, MEMBW_PF_INTEL};
    int ndist = prefetch && dist[0] != MEMBW_PF_INTEL ? 2 : 1;
    double best = 0.0;
    for (int di = 0; di < ndist; di++)
        for (int streams = 1; streams <= (prefetch ? 4 : 1); streams += 3) {
            double gbs[MEMBW_PASSES];
            for (int pass = 0; pass < MEMBW_PASSES; pass++)
                gbs[pass] = (double)bytes / membw_read_pf(buf, bytes, threads, dist[di], streams) * 1e-9;
            qsort(gbs, MEMBW_PASSES, sizeof gbs[0], membw_cmp);
            if (gbs[MEMBW_PASSES / 2] > best) best = gbs[MEMBW_PASSES / 2];
        }
    free(buf);
    return best;
}
