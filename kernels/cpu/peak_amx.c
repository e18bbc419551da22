/* AMX peak probes (peak.h): tdpbssd and tdpbf16ps with every tile resident, four independent C tiles
 * (2 A x 2 B, the same 2x2 shape as linear_amx.c's hot loop), nothing loaded in the loop. Tiles are
 * configured once per call, with linear_amx.c's configuration. Runs only after peak.c's
 * cpu_peak_available, which goes through the linear dispatch's CPUID/XCR0 checks and its arch_prctl
 * tile-data request. The AMX roof of `pp8 bench-linear` is this probe too. */
#include <immintrin.h>
#include <stdint.h>

#include "cpu_linear.h"
#include "peak.h"

/* A and B operands: small int8 values; as bf16 pairs 0x3c01 ~ 0.0079, so the fp32 sums stay finite */
static const uint8_t g_peak_ops[1024] __attribute__((aligned(64))) = {[0 ... 1023] = 1};
static const uint16_t g_peak_ops16[512] __attribute__((aligned(64))) = {[0 ... 511] = 0x3c01};

static double peak_amx_sum(void)
{
    int32_t c[256] __attribute__((aligned(64)));
    double t = 0;
    _tile_stored(0, c, 64);
    for (int i = 0; i < 256; i++) t += c[i];
    return t;
}

double peak_loop_amx_int8(long iters)
{
    lin_amx_config();
    _tile_loadd(4, g_peak_ops, 64);
    _tile_loadd(5, g_peak_ops, 64);
    _tile_loadd(6, g_peak_ops, 64);
    _tile_loadd(7, g_peak_ops, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long i = 0; i < iters; i++) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
    double t = peak_amx_sum();
    _tile_release();
    return t;
}

double peak_loop_amx_bf16(long iters)
{
    lin_amx_config();
    _tile_loadd(4, g_peak_ops16, 64);
    _tile_loadd(5, g_peak_ops16, 64);
    _tile_loadd(6, g_peak_ops16, 64);
    _tile_loadd(7, g_peak_ops16, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    double t = peak_amx_sum(); /* fp32 bits read as int32: only a sink */
    _tile_release();
    return t;
}
