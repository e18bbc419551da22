/* See completion.h. Stop strings: after each chunk, each stop string is searched from the first
 * position where it could end inside the new bytes; the earliest match wins (OpenAI and vLLM cut at
 * the first stop string in the text). What is held back is the longest tail of the text that is a
 * proper prefix of some stop string: a stop string is valid UTF-8, so that tail starts on a character
 * boundary and what is handed out is whole characters (the decoder emits whole characters only). */
#include "completion.h"

#include <stdlib.h>
#include <string.h>

void completion_init(Completion *c, const Tokenizer *t, const char *const *stops, int nstops)
{
    memset(c, 0, sizeof *c);
    tok_stream_init(&c->ts, t, true);
    c->ts.eager = true; /* show text as soon as it cannot change: a client sees progress even on byte soup */
    c->stops = stops;
    c->nstops = nstops;
}

static int append(Completion *c, const char *p, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->len + n + 1) cap *= 2;
        char *t = realloc(c->text, cap);
        if (!t) return -1;
        c->text = t;
        c->cap = cap;
    }
    memcpy(c->text + c->len, p, n);
    c->len += n;
    c->text[c->len] = 0;
    return 0;
}

/* the earliest stop string ending at or after byte `from` of the text; cuts the text there */
static int find_stop(Completion *c, size_t from)
{
    size_t best = (size_t)-1;
    for (int k = 0; k < c->nstops; k++) {
        size_t sl = strlen(c->stops[k]);
        size_t start = from + 1 > sl ? from + 1 - sl : 0;
        if (c->len < sl || start > c->len - sl) continue;
        for (size_t i = start; i + sl <= c->len && i < best; i++)
            if (c->text[i] == c->stops[k][0] && !memcmp(c->text + i, c->stops[k], sl)) {
                best = i;
                break;
            }
    }
    if (best == (size_t)-1) return 0;
    c->len = best;
    c->text[best] = 0;
    c->stopped = true;
    return 1;
}

static int add_chunk(Completion *c, const char *p, size_t n)
{
    if (n == 0) return 0;
    size_t from = c->len;
    if (append(c, p, n)) return -1;
    return find_stop(c, from);
}

int completion_push(Completion *c, int32_t id)
{
    if (c->stopped || c->finished) return c->stopped;
    const char *p;
    size_t n;
    int r = tok_stream_push(&c->ts, id, &p, &n);
    if (r < 0) return -1;
    return r ? add_chunk(c, p, n) : 0;
}

int completion_finish(Completion *c)
{
    if (c->finished) return 0;
    c->finished = true;
    if (c->stopped) return 0;
    const char *p;
    size_t n;
    int r = tok_stream_flush(&c->ts, &p, &n);
    if (r < 0) return -1;
    return r ? (add_chunk(c, p, n) < 0 ? -1 : 0) : 0;
}

/* bytes at the end of the text that could still begin a stop string */
static size_t held_back(const Completion *c)
{
    size_t hold = 0;
    for (int k = 0; k < c->nstops; k++) {
        size_t sl = strlen(c->stops[k]);
        for (size_t h = sl - 1 < c->len ? sl - 1 : c->len; h > hold; h--)
            if (!memcmp(c->text + c->len - h, c->stops[k], h)) {
                hold = h;
                break;
            }
    }
    return hold;
}

size_t completion_ready(Completion *c, const char **p)
{
    size_t end = c->stopped || c->finished ? c->len : c->len - held_back(c);
    *p = "";
    if (end <= c->shown) return 0;
    *p = c->text + c->shown;
    size_t n = end - c->shown;
    c->shown = end;
    return n;
}

void completion_free(Completion *c)
{
    tok_stream_free(&c->ts);
    free(c->text);
    memset(c, 0, sizeof *c);
}
