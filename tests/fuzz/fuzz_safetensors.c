/* libFuzzer target: a safetensors file (the whole input) as the model.safetensors of a directory, opened
 * by the real ckpt_open (runtime/model/safetensors.c). Opening must refuse or give tensors whose every
 * byte lies inside the file: each accepted tensor is read end to end, its size checked against dtype and
 * shape, and found again by name; the file named directly must open alike. Not the index
 * (fuzz_safetensors_index.c). */
#include "fuzz.h"
#include "model/safetensors.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_dir();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("model.safetensors", data, size);
    Checkpoint *ck = NULL;
    Err e = {{0}};
    if (ckpt_open(&ck, fuzz_dir(), &e) != 0) {
        FUZZ_CHECK(e.msg[0] != 0, "ckpt_open failed without a message");
        FUZZ_CHECK(ck == NULL, "ckpt_open failed but returned a checkpoint");
        return 0;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    FUZZ_CHECK(size >= 8 && hlen <= size - 8, "accepted a header of %llu bytes in a %zu-byte file",
               (unsigned long long)hlen, size);
    size_t total = 0;
    unsigned sum = 0;
    for (int i = 0; i < ckpt_count(ck); i++) {
        const StTensor *t = ckpt_tensor(ck, i);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "tensor %d has %d dims", i, t->ndim);
        uint64_t n = dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0, "tensor '%s' dim %d is %lld", t->name, d, (long long)t->shape[d]);
            FUZZ_CHECK(!__builtin_mul_overflow(n, (uint64_t)t->shape[d], &n), "tensor '%s': size overflows", t->name);
        }
        FUZZ_CHECK(n == t->bytes, "tensor '%s': %zu bytes for %llu by dtype and shape", t->name, t->bytes,
                   (unsigned long long)n);
        total += t->bytes;
        FUZZ_CHECK(total <= size - 8 - hlen, "tensors hold %zu bytes, the data section %llu", total,
                   (unsigned long long)(size - 8 - hlen));
        const unsigned char *p = t->data;
        for (size_t b = 0; b < t->bytes; b++) sum += p[b]; /* a tensor outside the map faults here */
        const StTensor *f = ckpt_find(ck, t->name);
        FUZZ_CHECK(f == t, "ckpt_find('%s') found another tensor", t->name);
        const StTensor *g = NULL;
        FUZZ_CHECK(ckpt_get(ck, &g, (int)t->dtype, t->ndim, t->shape, &e, "%s", t->name) == 0 || strlen(t->name) >= 511,
                   "ckpt_get('%s') with its own dtype and shape: %s", t->name, e.msg);
    }
    const StTensor *none = NULL;
    FUZZ_CHECK(ckpt_get(ck, &none, -1, -1, NULL, &e, "%s", "pp8.fuzz.no.such.tensor") != 0 || none,
               "ckpt_get of a missing tensor");
    /* the same file named directly (ckpt_open's other branch) gives the same tensors */
    Checkpoint *ck2 = NULL;
    FUZZ_CHECK(ckpt_open(&ck2, fuzz_path("model.safetensors"), &e) == 0 && ckpt_count(ck2) == ckpt_count(ck),
               "opened as a directory but not as a file: %s", e.msg);
    ckpt_close(ck2);
    ckpt_close(ck);
    return (int)(sum & 0); /* keep the reads */
}
