/* Safetensors reader and writer: the three golden checkpoints open (single file, and sharded bf16 with
 * hub-style unprefixed names found through prefixed lookups), st_write round-trips, and every damaged
 * file, index or lookup is refused with one line naming the file and the tensor. Needs the golden
 * directory (argv[1]); fails, never skips, without it. Does not test data conversion. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "test_util.h"


static char g_tmp[1024];

static const char *tmp_path(const char *name) { return test_path(g_tmp, name); }
static void make_dir(const char *name) { test_mkdir(tmp_path(name)); }
#define write_bytes test_write_file

#define write_raw test_write_safetensors

static void write_st(const char *path, const char *hdr, size_t data_len)
{
    write_raw(path, strlen(hdr), hdr, data_len);
}

/* ckpt_open must fail with one line containing every needle. */
static void expect_open_fail(const char *what, const char *path, const char *n1, const char *n2, const char *n3)
{
    Checkpoint *ck = (Checkpoint *)1;
    Err e = {{0}};
    int rc = ckpt_open(&ck, path, &e);
    CHECK(rc != 0, "%s: ckpt_open(%s) succeeded", what, path);
    CHECK(ck == NULL, "%s: failed open left a checkpoint", what);
    CHECK(e.msg[0] && !strchr(e.msg, '\n'), "%s: message empty or not one line: '%s'", what, e.msg);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        CHECK(!needles[i] || strstr(e.msg, needles[i]), "%s: message lacks '%s': %s", what, needles[i], e.msg);
    printf("ok   %-34s %s\n", what, e.msg);
}

static Checkpoint *open_ok(const char *path)
{
    Checkpoint *ck = NULL;
    Err e = {{0}};
    CHECK(ckpt_open(&ck, path, &e) == 0 && ck, "ckpt_open(%s): %s", path, e.msg);
    return ck;
}

static void check_tensor(const Checkpoint *ck, const char *name, DType dt, int ndim, int64_t d0, int64_t d1)
{
    const StTensor *t;
    Err e = {{0}};
    int64_t shape[2] = {d0, d1};
    CHECK(ckpt_get(ck, &t, (int)dt, ndim, shape, &e, "%s", name) == 0, "%s", e.msg);
    CHECK(t->bytes == dtype_size(dt) * (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1), "%s bytes %zu", name, t->bytes);
    CHECK(t->data != NULL, "%s has no data", name);
}

/* data pointers: the file's bytes at the header's offsets (compared against a plain read of the file) */
static void check_bytes_at_end(const Checkpoint *ck, const char *name)
{
    const StTensor *t = ckpt_find(ck, name);
    CHECK(t, "no %s", name);
    const char *path = ckpt_file_path(ck, t->file);
    FILE *f = fopen(path, "rb");
    CHECK(f, "open %s", path);
    fseek(f, -(long)t->bytes, SEEK_END);
    unsigned char *buf = malloc(t->bytes);
    CHECK(fread(buf, 1, t->bytes, f) == t->bytes, "read %s", path);
    fclose(f);
    CHECK(memcmp(buf, t->data, t->bytes) == 0, "%s: data differs from the last %zu bytes of %s", name, t->bytes, path);
    free(buf);
}

static void test_golden(const char *golden)
{
    char dir[2048];
    struct stat st;
    CHECK(stat(golden, &st) == 0, "golden directory %s is missing (set PP8_GOLDEN_DIR)", golden);

    snprintf(dir, sizeof dir, "%s/bloom-tiny", golden);
    Checkpoint *ck = open_ok(dir);
    CHECK(ckpt_count(ck) == 29, "bloom-tiny: %d tensors, expected 29", ckpt_count(ck));
    check_tensor(ck, "transformer.word_embeddings.weight", DTYPE_F16, 2, 256, 64);
    check_tensor(ck, "transformer.h.0.self_attention.query_key_value.weight", DTYPE_F16, 2, 192, 64);
    check_tensor(ck, "transformer.h.1.mlp.dense_4h_to_h.weight", DTYPE_F16, 2, 64, 256);
    check_tensor(ck, "h.1.mlp.dense_h_to_4h.bias", DTYPE_F16, 1, 256, 0); /* prefix added */
    check_bytes_at_end(ck, "transformer.ln_f.bias");
    CHECK(strstr(ckpt_file_path(ck, 0), "/bloom-tiny/model.safetensors"), "path %s", ckpt_file_path(ck, 0));
    /* mismatches name the tensor, the file, and both dtypes/shapes */
    const StTensor *t;
    Err e = {{0}};
    int64_t sh[2] = {64, 64};
    CHECK(ckpt_get(ck, &t, DTYPE_F16, 2, sh, &e, "transformer.h.%d.mlp.dense_4h_to_h.weight", 1) != 0 && !t,
          "shape mismatch accepted");
    CHECK(strstr(e.msg, "transformer.h.1.mlp.dense_4h_to_h.weight") && strstr(e.msg, "[64, 256]") &&
              strstr(e.msg, "[64, 64]") && strstr(e.msg, "model.safetensors"),
          "shape message: %s", e.msg);
    printf("ok   %-34s %s\n", "ckpt_get shape mismatch", e.msg);
    CHECK(ckpt_get(ck, &t, DTYPE_F32, 2, sh, &e, "transformer.h.1.self_attention.dense.weight") != 0,
          "dtype mismatch accepted");
    CHECK(strstr(e.msg, "self_attention.dense.weight") && strstr(e.msg, "F16") && strstr(e.msg, "F32") &&
              strstr(e.msg, "model.safetensors"),
          "dtype message: %s", e.msg);
    printf("ok   %-34s %s\n", "ckpt_get dtype mismatch", e.msg);
    CHECK(ckpt_get(ck, &t, -1, 1, (int64_t[]){64}, &e, "transformer.h.%d.input_layernorm.weight", 3) != 0,
          "missing tensor accepted");
    CHECK(strstr(e.msg, "transformer.h.3.input_layernorm.weight") && strstr(e.msg, "bloom-tiny"), "missing: %s", e.msg);
    printf("ok   %-34s %s\n", "ckpt_get missing tensor", e.msg);
    CHECK(ckpt_get(ck, &t, -1, -1, NULL, &e, "transformer.ln_f.weight") == 0, "any shape: %s", e.msg);
    CHECK(ckpt_get(ck, &t, -1, 1, (int64_t[]){-1}, &e, "transformer.ln_f.weight") == 0, "wildcard: %s", e.msg);
    ckpt_close(ck);

    snprintf(dir, sizeof dir, "%s/opt-tiny", golden);
    ck = open_ok(dir);
    CHECK(ckpt_count(ck) == 36, "opt-tiny: %d tensors, expected 36", ckpt_count(ck));
    check_tensor(ck, "model.decoder.embed_positions.weight", DTYPE_F16, 2, 66, 64);
    check_tensor(ck, "model.decoder.layers.1.fc1.weight", DTYPE_F16, 2, 256, 64);
    check_tensor(ck, "decoder.layers.0.self_attn.q_proj.weight", DTYPE_F16, 2, 64, 64); /* "model." added */
    check_tensor(ck, "layers.0.fc2.weight", DTYPE_F16, 2, 64, 256);                     /* "model.decoder." added */
    check_bytes_at_end(ck, "model.decoder.final_layer_norm.bias");
    ckpt_close(ck);

    snprintf(dir, sizeof dir, "%s/bloom-bf16-sharded", golden);
    ck = open_ok(dir);
    CHECK(ckpt_count(ck) == 41, "bloom-bf16-sharded: %d tensors, expected 41", ckpt_count(ck));
    check_tensor(ck, "transformer.word_embeddings.weight", DTYPE_BF16, 2, 256, 64);
    check_tensor(ck, "transformer.h.0.self_attention.query_key_value.weight", DTYPE_BF16, 2, 192, 64);
    check_tensor(ck, "transformer.h.2.mlp.dense_4h_to_h.weight", DTYPE_BF16, 2, 64, 256);
    CHECK(ckpt_get(ck, &t, -1, 2, (int64_t[]){64, 64}, &e, "transformer.h.1.self_attention.dense.weight") == 0, "%s",
          e.msg);
    CHECK(strstr(ckpt_file_path(ck, t->file), "model-00001-of-00002.safetensors"), "h.1 dense.weight in %s",
          ckpt_file_path(ck, t->file));
    t = ckpt_find(ck, "transformer.h.1.self_attention.dense.bias");
    CHECK(t && strstr(ckpt_file_path(ck, t->file), "model-00002-of-00002.safetensors"), "h.1 dense.bias shard");
    check_bytes_at_end(ck, "ln_f.bias");
    CHECK(ckpt_find(ck, "transformer.h.3.input_layernorm.weight") == NULL, "found a fourth layer");
    ckpt_close(ck);
    printf("ok   golden checkpoints\n");
}

static void test_write_roundtrip(void)
{
    float a[6] = {1, 2, 3, 4, 5, 6};
    int8_t b[4] = {-128, -1, 0, 127};
    uint8_t fmt = 0;
    StWriteTensor w[] = {
        {.name = "layer.a.weight", .dtype = DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "layer.b \"q\"", .dtype = DTYPE_I8, .ndim = 1, .shape = {4}, .data = b},
        {.name = "layer.weight_format", .dtype = DTYPE_U8, .ndim = 0, .data = &fmt},
        {.name = "empty", .dtype = DTYPE_F16, .ndim = 2, .shape = {0, 5}, .data = NULL},
    };
    const char *path = tmp_path("rt.safetensors");
    Err e = {{0}};
    CHECK(st_write(path, w, 4, &e) == 0, "st_write: %s", e.msg);
    char tmp_name[64]; /* st_write writes PATH.tmp.<pid> and renames it (util/file.h) */
    snprintf(tmp_name, sizeof tmp_name, "rt.safetensors.tmp.%ld", (long)getpid());
    CHECK(access(tmp_path(tmp_name), F_OK) != 0, "temporary file left behind");
    FILE *f = fopen(path, "rb");
    unsigned char len8[8];
    CHECK(fread(len8, 1, 8, f) == 8, "read");
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | len8[i];
    char *hdr = calloc(n + 1, 1);
    CHECK(fread(hdr, 1, n, f) == n, "read header");
    fclose(f);
    CHECK(n % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)n);
    CHECK(strstr(hdr, "\"__metadata__\":{\"format\":\"pt\"}"), "no metadata: %s", hdr);
    free(hdr);

    Checkpoint *ck = open_ok(path);
    CHECK(ckpt_count(ck) == 4, "count %d", ckpt_count(ck));
    const StTensor *t;
    CHECK(ckpt_get(ck, &t, DTYPE_F32, 2, (int64_t[]){2, 3}, &e, "layer.a.weight") == 0, "%s", e.msg);
    CHECK(memcmp(t->data, a, sizeof a) == 0, "F32 data differs");
    CHECK(ckpt_get(ck, &t, DTYPE_I8, 1, (int64_t[]){4}, &e, "layer.b \"q\"") == 0, "%s", e.msg);
    CHECK(memcmp(t->data, b, sizeof b) == 0, "I8 data differs");
    CHECK(ckpt_get(ck, &t, DTYPE_U8, 0, NULL, &e, "layer.weight_format") == 0, "%s", e.msg);
    CHECK(t->bytes == 1 && *(const uint8_t *)t->data == 0, "scalar");
    CHECK(ckpt_get(ck, &t, DTYPE_F16, 2, (int64_t[]){0, 5}, &e, "empty") == 0 && t->bytes == 0, "%s", e.msg);
    CHECK(ckpt_tensor(ck, 0) && strcmp(ckpt_tensor(ck, 0)->name, "layer.a.weight") == 0, "file order");
    ckpt_close(ck);

    /* the writer refuses what it could not write correctly */
    StWriteTensor dup[] = {w[0], w[0]};
    CHECK(st_write(tmp_path("dup.safetensors"), dup, 2, &e) != 0 && strstr(e.msg, "layer.a.weight"), "duplicate");
    StWriteTensor nodata = {.name = "x", .dtype = DTYPE_F32, .ndim = 1, .shape = {3}};
    CHECK(st_write(tmp_path("nodata.safetensors"), &nodata, 1, &e) != 0, "tensor without data");
    printf("ok   st_write round trip\n");
}

static void test_bad_files(void)
{
    const char *p;
    /* missing things */
    make_dir("empty");
    expect_open_fail("missing model.safetensors", tmp_path("empty"), "model.safetensors: no such file",
                     "model.safetensors.index.json", g_tmp);
    expect_open_fail("missing path", tmp_path("nope"), "nope", "no such file", NULL);

    /* truncated: a valid file cut short */
    float x[64] = {0};
    StWriteTensor w[] = {
        {.name = "h.0.mlp.dense_4h_to_h.weight", .dtype = DTYPE_F32, .ndim = 2, .shape = {8, 8}, .data = x}};
    Err e;
    p = tmp_path("trunc.safetensors");
    CHECK(st_write(p, w, 1, &e) == 0, "%s", e.msg);
    struct stat st;
    stat(p, &st);
    CHECK(truncate(p, st.st_size - 12) == 0, "truncate");
    expect_open_fail("truncated data", p, p, "'h.0.mlp.dense_4h_to_h.weight'", "past the end of the data (244 bytes)");

    p = tmp_path("short.safetensors");
    write_bytes(p, "\x10\0\0", 3);
    expect_open_fail("shorter than 8 bytes", p, p, "too short", NULL);

    p = tmp_path("hlen_big.safetensors");
    write_raw(p, 1000, "{}", 16);
    expect_open_fail("header length > file", p, p, "header length 1000", "past the end of the file");
    p = tmp_path("hlen0.safetensors");
    write_raw(p, 0, "{}", 16);
    expect_open_fail("header length 0", p, p, "header length 0", NULL);
    p = tmp_path("hlen_huge.safetensors");
    write_raw(p, (uint64_t)1 << 40, "{}", 16);
    expect_open_fail("header length huge", p, p, "over 100 MB", NULL);

    p = tmp_path("badjson.safetensors");
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}", 8);
    expect_open_fail("malformed header JSON", p, p, "not valid JSON", NULL);
    p = tmp_path("notobj.safetensors");
    write_st(p, "[1, 2, 3]       ", 0);
    expect_open_fail("header not an object", p, p, "not a JSON object", NULL);
    p = tmp_path("trailing.safetensors");
    write_st(p, "{} xyz  ", 0);
    expect_open_fail("bytes after the header JSON", p, p, "after its JSON", NULL);

    p = tmp_path("overlap.safetensors");
    write_st(p,
             "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
             24);
    expect_open_fail("overlapping offsets", p, p, "'a' [0, 16] and 'b' [8, 24] overlap", NULL);

    p = tmp_path("oob.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_open_fail("out-of-bounds offsets", p, p, "'w' data_offsets [0, 16] run past the end of the data (8 bytes)",
                     "re-download");
    p = tmp_path("reversed.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8);
    expect_open_fail("begin > end", p, p, "'w'", "end before they begin");

    p = tmp_path("bytes.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16);
    expect_open_fail("bytes != dtype x shape", p, p, "'w' is F32 [3]", "hold 16 bytes");
    p = tmp_path("overflow.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,16]}}", 16);
    expect_open_fail("shape product overflows", p, p, "'w'", NULL);

    p = tmp_path("dtype.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
    expect_open_fail("unknown dtype", p, p, "'w'", "F64");
    p = tmp_path("nodtype.safetensors");
    write_st(p, "{\"w\":{\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
    expect_open_fail("missing dtype", p, p, "'w'", "dtype");
    p = tmp_path("negshape.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[-2],\"data_offsets\":[0,2]}}", 2);
    expect_open_fail("negative shape", p, p, "'w'", "shape");
    p = tmp_path("fracshape.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,2]}}", 2);
    expect_open_fail("non-integer shape", p, p, "'w'", "shape");
    p = tmp_path("dims.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1);
    expect_open_fail("too many dims", p, p, "'w'", "9 dimensions");
    p = tmp_path("nooffsets.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1);
    expect_open_fail("missing data_offsets", p, p, "'w'", "data_offsets");
    p = tmp_path("dupname.safetensors");
    write_st(p,
             "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
             "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
             2);
    expect_open_fail("tensor stored twice", p, p, "'w'", "twice");

    /* a directory holding a single model.safetensors opens; the message names it with its full path */
    make_dir("single");
    p = tmp_path("single/model.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}    ", 4);
    Checkpoint *ck = open_ok(tmp_path("single"));
    CHECK(strcmp(ckpt_file_path(ck, 0), p) == 0, "path %s, expected %s", ckpt_file_path(ck, 0), p);
    ckpt_close(ck);
    printf("ok   bad files\n");
}

static void test_shards(void)
{
    const char *s1 = "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}      ";
    const char *s2 = "{\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}      ";
    const char *index = "{\"metadata\":{\"total_size\":10},\"weight_map\":{\"a\":\"s-1.safetensors\","
                        "\"b\":\"s-2.safetensors\"}}";
    make_dir("sh_ok");
    write_st(tmp_path("sh_ok/s-1.safetensors"), s1, 4);
    write_st(tmp_path("sh_ok/s-2.safetensors"), s2, 6);
    write_bytes(tmp_path("sh_ok/model.safetensors.index.json"), index, strlen(index));
    Checkpoint *ck = open_ok(tmp_path("sh_ok"));
    CHECK(ckpt_count(ck) == 2, "count %d", ckpt_count(ck));
    const StTensor *t = ckpt_find(ck, "transformer.b");
    CHECK(t && strstr(ckpt_file_path(ck, t->file), "s-2.safetensors") && t->bytes == 6, "shard lookup");
    ckpt_close(ck);
    ck = open_ok(tmp_path("sh_ok/model.safetensors.index.json")); /* the index file itself works too */
    ckpt_close(ck);

    make_dir("sh_missing");
    write_st(tmp_path("sh_missing/s-1.safetensors"), s1, 4);
    write_bytes(tmp_path("sh_missing/model.safetensors.index.json"), index, strlen(index));
    expect_open_fail("missing shard", tmp_path("sh_missing"), tmp_path("sh_missing/s-2.safetensors"), "no such file",
                     "'b'");

    make_dir("sh_absent");
    write_st(tmp_path("sh_absent/s-1.safetensors"), s1, 4);
    write_st(tmp_path("sh_absent/s-2.safetensors"), "{\"c\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}",
             6);
    write_bytes(tmp_path("sh_absent/model.safetensors.index.json"), index, strlen(index));
    expect_open_fail("index names a tensor absent in its shard", tmp_path("sh_absent"),
                     tmp_path("sh_absent/s-2.safetensors"), "'b'", "model.safetensors.index.json");

    make_dir("sh_badjson");
    write_bytes(tmp_path("sh_badjson/model.safetensors.index.json"), "{\n\"weight_map\": {\n\"a\": }", 24);
    expect_open_fail("malformed index JSON", tmp_path("sh_badjson"), "model.safetensors.index.json", "line 3", NULL);

    make_dir("sh_nomap");
    write_bytes(tmp_path("sh_nomap/model.safetensors.index.json"), "{\"metadata\":{}}", 15);
    expect_open_fail("index without weight_map", tmp_path("sh_nomap"), "model.safetensors.index.json", "weight_map",
                     NULL);

    make_dir("sh_badshard");
    write_st(tmp_path("sh_badshard/s-1.safetensors"), s1, 4);
    write_raw(tmp_path("sh_badshard/s-2.safetensors"), 5000, "{}", 0);
    write_bytes(tmp_path("sh_badshard/model.safetensors.index.json"), index, strlen(index));
    expect_open_fail("damaged shard", tmp_path("sh_badshard"), tmp_path("sh_badshard/s-2.safetensors"),
                     "header length 5000", NULL);
    printf("ok   shards\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_safetensors GOLDEN_DIR\n");
        return 1;
    }
    char tmpl[] = "/tmp/pp8_st_XXXXXX";
    CHECK(mkdtemp(tmpl), "mkdtemp");
    char *full = realpath(tmpl, NULL); /* messages carry full paths; compare against the same spelling */
    snprintf(g_tmp, sizeof g_tmp, "%s", full);
    free(full);

    test_golden(argv[1]);
    test_write_roundtrip();
    test_bad_files();
    test_shards();

    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    printf("test_safetensors: all passed\n");
    return 0;
}
