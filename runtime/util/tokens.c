/* See tokens.h. */
#include "tokens.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int tokens_parse(TokenBatch *b, const char *s, int vocab, Err *e)
{
    memset(b, 0, sizeof *b);
    int nseq = 1;
    for (const char *p = s; *p; p++) nseq += *p == ';';
    b->len = calloc((size_t)nseq, sizeof(int));
    b->ids = calloc((size_t)nseq, sizeof(int32_t *));
    if (!b->len || !b->ids) return err_set(e, "out of memory");
    const char *p = s;
    for (int q = 0; q < nseq; q++) {
        size_t seglen = strcspn(p, ";");
        int cap = 1;
        for (size_t i = 0; i < seglen; i++) cap += p[i] == ',';
        b->ids[q] = calloc((size_t)cap, sizeof(int32_t));
        if (!b->ids[q]) return err_set(e, "out of memory");
        b->n = q + 1;
        const char *t = p, *end = p + seglen;
        while (t < end) {
            char *stop;
            errno = 0;
            long v = strtol(t, &stop, 10);
            if (stop == t || errno || (stop < end && *stop != ','))
                return err_set(e, "--tokens: sequence %d: '%.*s' is not a comma-separated list of token ids", q + 1,
                               (int)seglen, p);
            if (v < 0 || v >= vocab)
                return err_set(e, "--tokens: token id %ld in sequence %d is outside the vocabulary [0, %d)", v, q + 1,
                               vocab);
            b->ids[q][b->len[q]++] = (int32_t)v;
            t = stop + (stop < end);
        }
        if (b->len[q] == 0) return err_set(e, "--tokens: sequence %d is empty", q + 1);
        if (b->len[q] > b->max_len) b->max_len = b->len[q];
        b->total += b->len[q];
        p += seglen + (p[seglen] == ';');
    }
    return 0;
}

void tokens_free(TokenBatch *b)
{
    for (int i = 0; i < b->n; i++) free(b->ids[i]);
    free(b->ids);
    free(b->len);
    memset(b, 0, sizeof *b);
}
