/* Encoding speed of the tokenizer, single-threaded, for launch/bench-tokenizer.sh (a benchmark, not a
 * test): reads documents, encodes each one (one tok_encode per document, add_special_tokens=False,
 * as the script's HF side does), best of N passes, prints MB/s, and writes the ids so the script can
 * compare them with Hugging Face's.
 * usage: bench_tokenizer TOKENIZER_DIR DOCS [--reps N] [--ids OUT]
 *   DOCS: for each document "<byte length>\n<bytes>" (binary-safe). OUT: one line of ids per document. */
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER_DIR DOCS [--reps N] [--ids OUT]\n");
        return 2;
    }
    int reps = 5;
    const char *ids_out = NULL;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ids"))
            ids_out = argv[i + 1];
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "bench_tokenizer: cannot open %s\n", argv[2]);
        return 1;
    }
    int ndocs = 0, cap = 0;
    char **doc = NULL;
    size_t *len = NULL, total = 0, n;
    while (fscanf(f, "%zu", &n) == 1 && fgetc(f) == '\n') {
        if (ndocs == cap) {
            cap = cap ? cap * 2 : 256;
            doc = realloc(doc, (size_t)cap * sizeof *doc);
            len = realloc(len, (size_t)cap * sizeof *len);
        }
        doc[ndocs] = malloc(n + 1);
        if (fread(doc[ndocs], 1, n, f) != n) {
            fprintf(stderr, "bench_tokenizer: %s is cut short\n", argv[2]);
            return 1;
        }
        len[ndocs++] = n;
        total += n;
    }
    fclose(f);

    Tokenizer *t;
    Err e;
    double t0 = now_s();
    if (tok_load(&t, argv[1], &e)) {
        fprintf(stderr, "bench_tokenizer: %s\n", e.msg);
        return 1;
    }
    double load_s = now_s() - t0;

    double best = 1e30;
    long tokens = 0;
    for (int r = 0; r < reps; r++) {
        tokens = 0;
        double s0 = now_s();
        for (int d = 0; d < ndocs; d++) {
            int32_t *ids;
            int k;
            if (tok_encode(t, doc[d], len[d], false, &ids, &k, &e)) {
                fprintf(stderr, "bench_tokenizer: document %d: %s\n", d, e.msg);
                return 1;
            }
            tokens += k;
            free(ids);
        }
        double dt = now_s() - s0;
        if (dt < best) best = dt;
    }
    printf("pp8 %s: %d documents, %.3f MB, %ld tokens, best of %d: %.1f ms = %.2f MB/s (load %.0f ms)\n", argv[1],
           ndocs, total / 1e6, tokens, reps, best * 1e3, total / 1e6 / best, load_s * 1e3);

    if (ids_out) {
        FILE *o = fopen(ids_out, "w");
        for (int d = 0; d < ndocs && o; d++) {
            int32_t *ids;
            int k;
            tok_encode(t, doc[d], len[d], false, &ids, &k, &e);
            for (int i = 0; i < k; i++) fprintf(o, i ? " %d" : "%d", ids[i]);
            fputc('\n', o);
            free(ids);
        }
        if (o) fclose(o);
    }
    for (int d = 0; d < ndocs; d++) free(doc[d]);
    free(doc);
    free(len);
    tok_free(t);
    return 0;
}
