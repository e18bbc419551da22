/* One sequence's completion as text, as it is generated: ids go through the streaming decoder
 * (tokenizer.h, skip_special as HF's pipelines print), stop strings are looked for across chunk
 * boundaries and cut with everything after them, and completion_ready hands out only what can no
 * longer turn into a stop string (and never part of a character). What `pp8 generate` streams and what
 * a server's stream will send. Knows nothing of ranks or of where the bytes go. */
#ifndef PP8_COMPLETION_H
#define PP8_COMPLETION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct Completion {
    TokStream ts;
    char *text; /* the completion so far, NUL-terminated; a matched stop string and what follows are cut */
    size_t len, cap;
    size_t shown; /* bytes of text already handed out by completion_ready */
    const char *const *stops;
    int nstops;
    bool stopped;  /* a stop string matched: nothing more is added */
    bool finished; /* completion_finish was called */
} Completion;

/* stops: nstops non-empty UTF-8 strings (the caller keeps them alive) */
void completion_init(Completion *c, const Tokenizer *t, const char *const *stops, int nstops);
/* one generated id; returns 1 when a stop string now matches (the text ends before it), 0 otherwise,
 * -1 when out of memory */
int completion_push(Completion *c, int32_t id);
/* the end of the sequence: the decoder's pending bytes are flushed (as U+FFFD where they are not a
 * character), unless a stop string ended it */
int completion_finish(Completion *c);
/* the bytes that may be shown now and were not shown before: *p, returns their count (0: none) */
size_t completion_ready(Completion *c, const char **p);
void completion_free(Completion *c);

#endif
