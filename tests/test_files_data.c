/* Files are data (issue 17): an index's shard names cannot leave its directory, a Hugging Face cache's
 * symbolic links are followed (and named as the user gave them), header integers that overflow are
 * refused, and a shard truncated while it is mapped ends the process with one line naming the file
 * instead of a bare SIGBUS. Needs nothing but a temporary directory. Does not run a model.
 * Also a helper for tests/test_files_data.sh: `test_files_data write-bloom DIR HIDDEN LAYERS` writes a
 * two-shard BLOOM checkpoint of random fp16 weights, big enough that loading it takes a while. */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "model/config.h"
#include "model/safetensors.h"
#include "test_util.h"

static char g_tmp[1024];

static const char *tmp_path(const char *name) { return test_path(g_tmp, name); }
static void make_dir(const char *name) { test_mkdir(tmp_path(name)); }
#define write_bytes test_write_file

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

#define write_raw test_write_safetensors

static void write_st(const char *path, const char *hdr, size_t data_len)
{
    write_raw(path, strlen(hdr), hdr, data_len);
}

static void expect_open_fail(const char *what, const char *path, const char *n1, const char *n2, const char *n3)
{
    Checkpoint *ck = (Checkpoint *)1;
    Err e = {{0}};
    int rc = ckpt_open(&ck, path, &e);
    CHECK(rc != 0, "%s: ckpt_open(%s) succeeded", what, path);
    CHECK(ck == NULL, "%s: failed open left a checkpoint", what);
    CHECK(e.msg[0] && !strchr(e.msg, '\n') && !strchr(e.msg, '\r'), "%s: message empty or not one line: '%s'", what,
          e.msg);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        CHECK(!needles[i] || strstr(e.msg, needles[i]), "%s: message lacks '%s': %s", what, needles[i], e.msg);
    printf("ok   %-40s %s\n", what, e.msg);
}

static Checkpoint *open_ok(const char *path)
{
    Checkpoint *ck = NULL;
    Err e = {{0}};
    CHECK(ckpt_open(&ck, path, &e) == 0 && ck, "ckpt_open(%s): %s", path, e.msg);
    return ck;
}

/* ---- shard names in an index ---- */

static const char S1[] = "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}      ";

static void index_case(const char *what, const char *shard_json, const char *n1, const char *n2)
{
    char dir[64], idx[1024];
    static int k;
    snprintf(dir, sizeof dir, "ix%d", k++);
    make_dir(dir);
    char rel[128];
    snprintf(rel, sizeof rel, "%s/s-1.safetensors", dir);
    write_st(tmp_path(rel), S1, 4);
    snprintf(idx, sizeof idx, "{\"metadata\":{},\"weight_map\":{\"a\":%s}}", shard_json);
    snprintf(rel, sizeof rel, "%s/model.safetensors.index.json", dir);
    write_text(tmp_path(rel), idx);
    expect_open_fail(what, tmp_path(dir), n1, n2, "'a'");
}

static void test_index_paths(void)
{
    /* a valid shard outside the model directory: a refusal below is the name check, not a missing file */
    make_dir("outside");
    write_st(tmp_path("outside/s-1.safetensors"), S1, 4);
    char json[2048];
    snprintf(json, sizeof json, "\"%s\"", tmp_path("outside/s-1.safetensors"));
    index_case("index: absolute shard path", json, "is an absolute path", "outside/s-1.safetensors");
    index_case("index: '..' up and out", "\"../outside/s-1.safetensors\"", "contains '/'", "../outside");
    index_case("index: '..' alone", "\"..\"", "contains '..'", NULL);
    index_case("index: '..' without a slash", "\"..safetensors\"", "contains '..'", NULL);
    index_case("index: subdirectory", "\"sub/s-1.safetensors\"", "contains '/'", NULL);
    index_case("index: backslash", "\"..\\\\outside\\\\s-1.safetensors\"", "contains '\\'", NULL);
    index_case("index: backslash alone", "\"sub\\\\s-1.safetensors\"", "contains '\\'", NULL);
    index_case("index: empty name", "\"\"", "is empty", NULL);
    index_case("index: not a string", "7", "is not a string", NULL);
    index_case("index: not .safetensors", "\"s-1.bin\"", "does not end in .safetensors", "s-1.bin");
    index_case("index: only the suffix", "\".safetensors\"", "does not end in .safetensors", NULL);
    index_case("index: control character", "\"s-1\\n.safetensors\"", "control character", NULL);

    /* a shard name that is a FIFO is refused, not waited on forever */
    make_dir("fifo");
    write_text(tmp_path("fifo/model.safetensors.index.json"),
               "{\"weight_map\":{\"a\":\"s-1.safetensors\"}}");
    CHECK(mkfifo(tmp_path("fifo/s-1.safetensors"), 0644) == 0, "mkfifo");
    expect_open_fail("index: shard is a FIFO", tmp_path("fifo"), "s-1.safetensors", "not a regular file", NULL);
    printf("ok   index paths\n");
}

/* ---- header integers ---- */

static void test_header_integers(void)
{
    const char *p = tmp_path("h.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,18446744073709551617]}}", 1);
    expect_open_fail("offset beyond 2^64", p, "'w'", "data_offsets", "2^53");
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9007199254740993,9007199254740994]}}", 1);
    expect_open_fail("offset beyond 2^53 (not exact)", p, "'w'", "data_offsets", NULL);
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9007199254740992,9007199254740992]}}", 1);
    expect_open_fail("offset 2^53, past the data", p, "'w'", "past the end of the data (1 bytes)", NULL);
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1);
    expect_open_fail("negative offset", p, "'w'", "data_offsets", NULL);
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e400]}}", 1);
    expect_open_fail("offset infinite", p, "'w'", "data_offsets", NULL);
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808],\"data_offsets\":[0,1]}}", 1);
    expect_open_fail("shape entry 2^63", p, "'w'", "shape entry 0", NULL);
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 1);
    expect_open_fail("shape x dtype overflows int64", p, "'w'", "overflows", "[4294967296, 4294967296]");
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[0,4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", 1);
    expect_open_fail("overflow behind a zero entry", p, "'w'", "overflows", NULL);
    write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 1);
    expect_open_fail("overflow before a zero entry", p, "'w'", "overflows", NULL);
    write_st(p, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3037000500,3037000500],\"data_offsets\":[0,2]}}", 2);
    expect_open_fail("shape x 2 bytes just past 2^64", p, "'w'", "[3037000500, 3037000500]", "overflows");
    /* the length field: one byte more than the file holds, and every high bit set */
    const char *h = "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    write_raw(p, strlen(h) + 2, h, 1);
    expect_open_fail("header length one past the file", p, "header length", "past the end of the file", NULL);
    write_raw(p, UINT64_MAX, h, 1);
    expect_open_fail("header length 2^64 - 1", p, "header length 18446744073709551615", NULL, NULL);
    /* names are data too: a newline in a tensor name must not split the message */
    write_st(p, "{\"bad\\nname\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail("tensor name with a newline", p, "'bad?name'", "F64", NULL);
    printf("ok   header integers\n");
}

/* ---- Hugging Face cache: every file a relative symbolic link to ../../blobs/<hash> ---- */

static void link_rel(const char *target, const char *link)
{
    CHECK(symlink(target, tmp_path(link)) == 0, "symlink %s -> %s: %s", link, target, strerror(errno));
}

static void test_symlinks(void)
{
    const char *repo = "models--acme--tiny-bloom";
    char rel[1024];
    make_dir(repo);
    snprintf(rel, sizeof rel, "%s/blobs", repo), make_dir(rel);
    snprintf(rel, sizeof rel, "%s/snapshots", repo), make_dir(rel);
    snprintf(rel, sizeof rel, "%s/snapshots/0123abcd", repo), make_dir(rel);
    snprintf(rel, sizeof rel, "%s/blobs/aa11", repo), write_st(tmp_path(rel), S1, 4);
    snprintf(rel, sizeof rel, "%s/blobs/bb22", repo);
    write_st(tmp_path(rel), "{\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}      ", 6);
    snprintf(rel, sizeof rel, "%s/blobs/cc33", repo);
    write_text(tmp_path(rel), "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                              "\"b\":\"model-00002-of-00002.safetensors\"}}");
    snprintf(rel, sizeof rel, "%s/blobs/dd44", repo);
    write_text(tmp_path(rel), "{\"model_type\": \"bloom\", \"hidden_size\": 64, \"n_head\": 4, \"n_layer\": 2, "
                              "\"vocab_size\": 256}");
    const char *names[4] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                            "model.safetensors.index.json", "config.json"};
    const char *blobs[4] = {"aa11", "bb22", "cc33", "dd44"};
    char snap[256];
    snprintf(snap, sizeof snap, "%s/snapshots/0123abcd", repo);
    for (int i = 0; i < 4; i++) {
        char target[64], link[700];
        snprintf(target, sizeof target, "../../blobs/%s", blobs[i]);
        snprintf(link, sizeof link, "%s/%s", snap, names[i]);
        link_rel(target, link);
    }
    /* the snapshot directory, the index given as a file, and a symbolic link to the snapshot */
    Checkpoint *ck = open_ok(tmp_path(snap));
    CHECK(ckpt_count(ck) == 2, "count %d", ckpt_count(ck));
    const StTensor *t = ckpt_find(ck, "b");
    CHECK(t && t->bytes == 6, "tensor b");
    char want[2048];
    snprintf(want, sizeof want, "%s/model-00002-of-00002.safetensors", tmp_path(snap));
    CHECK(!strcmp(ckpt_file_path(ck, t->file), want), "shard named %s, expected %s", ckpt_file_path(ck, t->file),
          want);
    ckpt_close(ck);
    snprintf(rel, sizeof rel, "%s/model.safetensors.index.json", snap);
    ck = open_ok(tmp_path(rel)); /* a link to a blob whose name does not end in .index.json */
    CHECK(ckpt_count(ck) == 2 && !strcmp(ckpt_dir(ck), tmp_path(snap)), "index via its link: dir %s", ckpt_dir(ck));
    ckpt_close(ck);
    snprintf(rel, sizeof rel, "%s/model-00001-of-00002.safetensors", snap);
    ck = open_ok(tmp_path(rel)); /* one shard given as a file: named as given, not as its blob */
    CHECK(ckpt_count(ck) == 1 && !strcmp(ckpt_file_path(ck, 0), tmp_path(rel)), "shard via its link: %s",
          ckpt_file_path(ck, 0));
    ckpt_close(ck);
    link_rel(snap, "linked-model"); /* relative to the link's own directory */
    ck = open_ok(tmp_path("linked-model"));
    CHECK(ckpt_count(ck) == 2, "linked dir count %d", ckpt_count(ck));
    ckpt_close(ck);

    /* config.json through its link: named as the snapshot's file, the model named after the repo */
    Config c;
    Err e = {{0}};
    CHECK(config_load(&c, tmp_path(snap), &e) == 0, "%s", e.msg);
    snprintf(want, sizeof want, "%s/config.json", tmp_path(snap));
    CHECK(!strcmp(c.path, want), "config path %s, expected %s", c.path, want);
    CHECK(!strcmp(c.name, "tiny-bloom"), "model name '%s', expected 'tiny-bloom'", c.name);
    CHECK(config_load(&c, tmp_path("linked-model"), &e) == 0 && c.hidden == 64, "%s", e.msg);
    printf("ok   HF cache layout (dir, index link, shard link, dir link, config) name %s\n", c.name);

    /* a blob missing: the link dangles, and the message says so */
    snprintf(rel, sizeof rel, "%s/blobs/bb22", repo);
    CHECK(unlink(tmp_path(rel)) == 0, "unlink");
    expect_open_fail("dangling shard link", tmp_path(snap), "model-00002-of-00002.safetensors", "symbolic link",
                     "../../blobs/bb22");
    snprintf(rel, sizeof rel, "%s/blobs/dd44", repo);
    CHECK(unlink(tmp_path(rel)) == 0, "unlink");
    CHECK(config_load(&c, tmp_path(snap), &e) != 0 && strstr(e.msg, "config.json") && strstr(e.msg, "symbolic link"),
          "dangling config link: %s", e.msg);
    printf("ok   dangling config link                 %s\n", e.msg);
    /* config.json that is not a regular file (a FIFO would block the reader) */
    make_dir("cfgfifo");
    CHECK(mkfifo(tmp_path("cfgfifo/config.json"), 0644) == 0, "mkfifo");
    CHECK(config_load(&c, tmp_path("cfgfifo"), &e) != 0 && strstr(e.msg, "not a regular file"), "fifo: %s", e.msg);
    printf("ok   config.json a FIFO                   %s\n", e.msg);
}

/* ---- SIGBUS: a shard truncated under its mapping ---- */

typedef struct {
    const volatile uint8_t *p;
    size_t n;
} Touch;

static void *touch_all(void *arg)
{
    const Touch *t = arg;
    unsigned s = 0;
    for (size_t i = 0; i < t->n; i += 512) s += t->p[i];
    return (void *)(uintptr_t)s;
}

/* Runs fn in a child with its stderr captured; returns the wait status, fills err. */
static int in_child(void (*fn)(void *), void *arg, char *err, size_t cap)
{
    int fd[2];
    CHECK(pipe(fd) == 0, "pipe");
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], STDERR_FILENO);
        fn(arg);
        _exit(0);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(fd[0], err + n, cap - 1 - n)) > 0) n += (size_t)k;
    err[n] = 0;
    close(fd[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    return st;
}

static const char *g_bus_file;

static void child_truncate_then_read(void *threaded)
{
    Checkpoint *ck = open_ok(g_bus_file);
    const StTensor *t = ckpt_find(ck, "big");
    CHECK(t && t->bytes == 1 << 20, "big tensor");
    CHECK(truncate(g_bus_file, 4096) == 0, "truncate");
    Touch tc = {t->data, t->bytes};
    if (threaded) { /* the fault in a thread other than the one that opened the checkpoint */
        pthread_t th;
        CHECK(pthread_create(&th, NULL, touch_all, &tc) == 0, "pthread_create");
        pthread_join(th, NULL);
    } else {
        touch_all(&tc);
    }
    fprintf(stderr, "read a truncated mapping without a fault\n");
    _exit(3);
}

static void child_kill_self(void *arg)
{
    (void)arg;
    Checkpoint *ck = open_ok(g_bus_file); /* the handler is installed: a SIGBUS from kill is not ours */
    kill(getpid(), SIGBUS);
    ckpt_close(ck);
    _exit(4);
}

static void child_foreign_mapping(void *arg)
{
    (void)arg;
    Checkpoint *ck = open_ok(g_bus_file);
    ckpt_close(ck); /* its range leaves the table */
    ck = open_ok(g_bus_file);
    /* a mapping pp8's checkpoint code did not make: its SIGBUS takes the default action */
    const char *other = tmp_path("other.bin");
    int fd = open(other, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 1 << 16) == 0, "other file");
    volatile uint8_t *m = mmap(NULL, 1 << 16, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(m != MAP_FAILED, "mmap");
    CHECK(ftruncate(fd, 0) == 0, "truncate other");
    unsigned s = m[8192];
    (void)s;
    ckpt_close(ck);
    _exit(5);
}

static void test_sigbus(void)
{
    static uint8_t big[1 << 20];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)i;
    StWriteTensor w = {.name = "big", .dtype = DTYPE_U8, .ndim = 1, .shape = {1 << 20}, .data = big};
    char err[4096];
    Err e = {{0}};
    for (int threaded = 0; threaded < 2; threaded++) {
        g_bus_file = tmp_path(threaded ? "bus-t.safetensors" : "bus.safetensors");
        CHECK(st_write(g_bus_file, &w, 1, &e) == 0, "%s", e.msg);
        int st = in_child(child_truncate_then_read, threaded ? (void *)1 : NULL, err, sizeof err);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "truncated read%s: status %#x (signal %d), stderr: %s",
              threaded ? " in a thread" : "", st, WIFSIGNALED(st) ? WTERMSIG(st) : 0, err);
        char *nl = strchr(err, '\n');
        CHECK(nl && !nl[1], "not exactly one line: '%s'", err);
        CHECK(strstr(err, g_bus_file) && strstr(err, "changed while pp8 was reading it") &&
                  strstr(err, "it now has 4096") && strstr(err, "] error: ") && strstr(err, "re-download"),
              "message: %s", err);
        printf("ok   truncated while mapped%-13s %s", threaded ? " (thread)" : "", err);
    }
    g_bus_file = tmp_path("bus2.safetensors");
    CHECK(st_write(g_bus_file, &w, 1, &e) == 0, "%s", e.msg);
    for (int k = 0; k < 2; k++) {
        const char *what = k ? "SIGBUS on another mapping" : "SIGBUS from kill";
        int st = in_child(k ? child_foreign_mapping : child_kill_self, NULL, err, sizeof err);
        /* the handler that was there before: none (the default action kills with SIGBUS) or, in an ASan build,
         * the sanitizer's (it reports and exits 1) */
        bool dflt = WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS && !err[0];
        bool asan = WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(err, "Sanitizer");
        CHECK((dflt || asan) && !strstr(err, "changed while"), "%s: status %#x, stderr '%s'", what, st, err);
        printf("ok   %-40s passed on (%s)\n", what, dflt ? "default action: signal 7" : "the sanitizer's handler");
    }
}

/* ---- helper: a two-shard BLOOM checkpoint of random fp16 weights ---- */

typedef struct {
    uint64_t seed;
} Fill;

static int fill_random(void *ctx, int i, void *buf, size_t bytes, Err *e)
{
    (void)e;
    Fill *f = ctx;
    uint64_t s = f->seed + (uint64_t)i * 0x9E3779B97F4A7C15ull + 1;
    uint16_t *h = buf;
    for (size_t j = 0; j < bytes / 2; j += 4) { /* fp16 of random sign and mantissa, |x| in [2^-8, 2^-7) */
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        for (size_t q = 0; q < 4 && j + q < bytes / 2; q++) h[j + q] = (uint16_t)(0x1c00 | ((s >> (16 * q)) & 0x83ff));
    }
    return 0;
}

static int write_bloom(const char *dir, int D, int L)
{
    const int V = 256, F = 4 * D;
    char path[2048];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return fprintf(stderr, "mkdir %s: %s\n", dir, strerror(errno)), 1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f, "{\"model_type\": \"bloom\", \"hidden_size\": %d, \"n_head\": %d, \"n_layer\": %d, \"vocab_size\": %d, "
               "\"torch_dtype\": \"float16\", \"bos_token_id\": 1, \"eos_token_id\": 2, \"pad_token_id\": 3}\n",
            D, D / 64 > 0 ? D / 64 : 1, L, V);
    fclose(f);
    enum { MAXT = 4 + 12 * 256 };
    static StWriteTensor t[MAXT];
    static char names[MAXT][96];
    static int shard_of[MAXT];
    int n = 0;
#define T2(sh, nm, r, c)                                                                                            \
    (snprintf(names[n], 96, "%s", nm), shard_of[n] = sh,                                                            \
     t[n] = (StWriteTensor){.name = names[n], .dtype = DTYPE_F16, .ndim = (c) ? 2 : 1, .shape = {r, c}}, n++)
    T2(1, "word_embeddings.weight", V, D);
    T2(1, "word_embeddings_layernorm.weight", D, 0);
    T2(1, "word_embeddings_layernorm.bias", D, 0);
    for (int l = 0; l < L && l < 256; l++) {
        int sh = l < L / 2 ? 1 : 2;
        char b[96];
#define LT(suffix, r, c) (snprintf(b, sizeof b, "h.%d.%s", l, suffix), T2(sh, b, r, c))
        LT("input_layernorm.weight", D, 0), LT("input_layernorm.bias", D, 0);
        LT("self_attention.query_key_value.weight", 3 * D, D), LT("self_attention.query_key_value.bias", 3 * D, 0);
        LT("self_attention.dense.weight", D, D), LT("self_attention.dense.bias", D, 0);
        LT("post_attention_layernorm.weight", D, 0), LT("post_attention_layernorm.bias", D, 0);
        LT("mlp.dense_h_to_4h.weight", F, D), LT("mlp.dense_h_to_4h.bias", F, 0);
        LT("mlp.dense_4h_to_h.weight", D, F), LT("mlp.dense_4h_to_h.bias", D, 0);
#undef LT
    }
    T2(2, "ln_f.weight", D, 0);
    T2(2, "ln_f.bias", D, 0);
#undef T2
    StWriteTensor part[MAXT];
    Err e = {{0}};
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *ix = fopen(path, "w");
    if (!ix) return 1;
    fprintf(ix, "{\"metadata\": {}, \"weight_map\": {");
    for (int i = 0; i < n; i++)
        fprintf(ix, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "", t[i].name, shard_of[i]);
    fprintf(ix, "}}\n");
    fclose(ix);
    for (int sh = 1; sh <= 2; sh++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (shard_of[i] == sh) part[k++] = t[i];
        Fill fl = {.seed = 1234 + (uint64_t)sh};
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, sh);
        if (st_write_stream(path, part, k, fill_random, &fl, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "write-bloom")) return write_bloom(argv[2], atoi(argv[3]), atoi(argv[4]));
    setvbuf(stdout, NULL, _IOLBF, 0); /* in order with the children's stderr */
    char tmpl[] = "/tmp/pp8_fd_XXXXXX";
    CHECK(mkdtemp(tmpl), "mkdtemp");
    char *full = realpath(tmpl, NULL);
    snprintf(g_tmp, sizeof g_tmp, "%s", full);
    free(full);

    test_index_paths();
    test_header_integers();
    test_symlinks();
    test_sigbus();

    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    printf("test_files_data: all passed\n");
    return 0;
}
