/* libFuzzer target: the --tokens list ("1,2,3;7,8") parsed by the real tokens_parse (runtime/util/tokens.c),
 * against a vocabulary of 50,000 and of 1. It must refuse with a message or give sequences that are all
 * non-empty, with every id in the vocabulary and the counts it reports. */
#include "fuzz.h"
#include "util/tokens.h"

#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static void one(const char *s, int vocab)
{
    TokenBatch b;
    Err e = {{0}};
    if (tokens_parse(&b, s, vocab, &e) != 0) {
        FUZZ_CHECK(e.msg[0] != 0, "tokens_parse failed without a message");
        tokens_free(&b);
        return;
    }
    FUZZ_CHECK(b.n >= 1, "%d sequences", b.n);
    int total = 0, max_len = 0;
    for (int q = 0; q < b.n; q++) {
        FUZZ_CHECK(b.len[q] >= 1, "sequence %d is empty", q);
        for (int i = 0; i < b.len[q]; i++)
            FUZZ_CHECK(b.ids[q][i] >= 0 && b.ids[q][i] < vocab, "id %d outside [0, %d)", (int)b.ids[q][i], vocab);
        total += b.len[q];
        if (b.len[q] > max_len) max_len = b.len[q];
    }
    FUZZ_CHECK(total == b.total && max_len == b.max_len, "total %d/%d max_len %d/%d", b.total, total, b.max_len,
               max_len);
    tokens_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size); /* argv strings end at their first NUL */
    one(s, 50000);
    one(s, 1);
    free(s);
    return 0;
}
