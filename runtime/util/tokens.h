/* Token-id lists from the command line: "1,2,3" (one sequence) or "1,2,3;7,8" (a batch). */
#ifndef PP8_TOKENS_H
#define PP8_TOKENS_H

#include <stdint.h>

#include "err.h"

typedef struct TokenBatch {
    int n;          /* sequences */
    int *len;       /* (n) */
    int32_t **ids;  /* (n) each (len[i]) */
    int max_len, total;
} TokenBatch;

/* every id must be in [0, vocab) */
int tokens_parse(TokenBatch *b, const char *s, int vocab, Err *e);
void tokens_free(TokenBatch *b);

#endif
