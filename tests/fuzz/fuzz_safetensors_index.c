/* libFuzzer target: model.safetensors.index.json (the whole input) in a directory that holds two small
 * valid shards (written once with st_write), opened by the real ckpt_open. A weight_map that names files
 * outside the directory, missing shards, or tensors not where it says must be refused; an accepted one
 * must give exactly the shards' tensors. Not the shards' own headers (fuzz_safetensors.c). */
#include "fuzz.h"
#include "model/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_ntensors;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    static const uint16_t h16[6] = {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600};
    static const float f32[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const uint16_t bf[3] = {0x3f80, 0x4000, 0x4040};
    static const int8_t i8[4] = {1, -2, 3, -4};
    StWriteTensor a[] = {
        {.name = "word_embeddings.weight", .dtype = DTYPE_F32, .ndim = 2, .shape = {4, 2}, .data = f32},
        {.name = "h.0.self_attention.dense.weight", .dtype = DTYPE_F16, .ndim = 2, .shape = {2, 3}, .data = h16},
    };
    StWriteTensor b[] = {
        {.name = "h.1.input_layernorm.weight", .dtype = DTYPE_BF16, .ndim = 1, .shape = {3}, .data = bf},
        {.name = "h.1.mlp.dense_4h_to_h.weight", .dtype = DTYPE_I8, .ndim = 2, .shape = {2, 2}, .data = i8},
    };
    Err e = {{0}};
    fuzz_dir();
    char p1[1024], p2[1024];
    snprintf(p1, sizeof p1, "%s", fuzz_path("model-00001-of-00002.safetensors"));
    snprintf(p2, sizeof p2, "%s", fuzz_path("model-00002-of-00002.safetensors"));
    if (st_write(p1, a, 2, &e) || st_write(p2, b, 2, &e)) {
        fprintf(stderr, "fuzz_safetensors_index: cannot write the shards: %s\n", e.msg);
        exit(1);
    }
    g_ntensors = 4;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("model.safetensors.index.json", data, size);
    Checkpoint *ck = NULL;
    Err e = {{0}};
    if (ckpt_open(&ck, fuzz_dir(), &e) != 0) {
        FUZZ_CHECK(e.msg[0] != 0, "ckpt_open failed without a message");
        FUZZ_CHECK(ck == NULL, "ckpt_open failed but returned a checkpoint");
        return 0;
    }
    FUZZ_CHECK(ckpt_count(ck) >= 2 && ckpt_count(ck) <= g_ntensors, "an index gave %d tensors from shards of 2 and 2",
               ckpt_count(ck));
    size_t dirlen = strlen(ckpt_dir(ck));
    for (int i = 0; i < ckpt_count(ck); i++) {
        const StTensor *t = ckpt_tensor(ck, i);
        const char *path = ckpt_file_path(ck, t->file);
        FUZZ_CHECK(!strncmp(path, ckpt_dir(ck), dirlen) && path[dirlen] == '/' && !strchr(path + dirlen + 1, '/'),
                   "shard %s is outside the checkpoint's directory %s", path, ckpt_dir(ck));
        FUZZ_CHECK(strstr(path, "-of-00002.safetensors") != NULL, "index opened %s, not one of the shards", path);
        FUZZ_CHECK(ckpt_find(ck, t->name) == t, "ckpt_find('%s') found another tensor", t->name);
        unsigned sum = 0;
        for (size_t k = 0; k < t->bytes; k++) sum += ((const unsigned char *)t->data)[k];
        (void)sum;
    }
    ckpt_close(ck);
    return 0;
}
