/* The device's fp16 conversions against numerics.h's, exhaustively (issue 15): all 65,536 fp16 values
 * through the hardware fp16 -> fp32 conversion the v2 kernels load with, and all 2^32 fp32 bit patterns
 * through the hardware round to nearest even (__float2half_rn), each against pp8_h2f / pp8_f2h, the
 * CPU's. Bits must match for every input whose result is not NaN on both sides (NaN payloads may
 * differ). Exits 77 (skipped) without a CUDA device. */
#include <inttypes.h>
#include <stdio.h>

#include "../kernels/backend.h"
#include "../kernels/cuda_host.h"

int main(void)
{
    if (backend_cuda_device_count() <= 0) {
        printf("skipped: no CUDA device visible\n");
        return 77;
    }
    char err[256];
    BackendOptions o = {.threads = 0, .first_cpu = -1, .device = 0};
    Backend *b = backend_cuda_create(&o, err, sizeof err);
    if (!b) {
        printf("skipped: %s\n", err);
        return 77;
    }
    uint64_t mis[2] = {~0ull, ~0ull};
    int64_t first[2] = {0, 0};
    if (backend_cuda_conv_check(b, mis, first)) {
        fprintf(stderr, "FAIL backend_cuda_conv_check: not a CUDA backend\n");
        return 1;
    }
    backend_destroy(b);
    int fail = 0;
    const char *what[2] = {"fp16 -> fp32 (65,536 values)", "fp32 -> fp16 (2^32 values)"};
    for (int i = 0; i < 2; i++) {
        printf("%s: %" PRIu64 " mismatches", what[i], mis[i]);
        if (mis[i]) printf(", the first at input bits 0x%" PRIx64, (uint64_t)first[i]);
        printf("\n");
        fail |= mis[i] != 0;
    }
    return fail;
}
