/* The completion text of one sequence (runtime/text/completion.c), on the BLOOM and OPT golden
 * tokenizers and the golden test texts: ids pushed one at a time give, chunk by chunk, exactly the
 * decoded text; with a stop string the text ends right before its first occurrence (also when it spans
 * tokens), push says so at the token that completes it, and what completion_ready hands out is always
 * a prefix of the final text (nothing shown is later taken back, a stop string is never shown). The
 * eager stream it uses: on random ids, valid UTF-8 chunks that concatenate (with the flush) to decode. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "text/completion.h"
#include "text/tokenizer.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* runs ids through a Completion with the given stops; checks the shown bytes against want */
static void run(const Tokenizer *t, const int32_t *ids, int n, const char *const *stops, int nstops, const char *want,
                size_t wlen, int want_stop_at, const char *what)
{
    Completion c;
    completion_init(&c, t, stops, nstops);
    char *shown = malloc(wlen + 8 * (size_t)n + 16);
    size_t ns = 0;
    int stopped_at = -1;
    for (int i = 0; i < n && stopped_at < 0; i++) {
        int r = completion_push(&c, ids[i]);
        CHECK(r >= 0, "out of memory");
        if (r) stopped_at = i;
        const char *p;
        size_t k = completion_ready(&c, &p);
        if (k) memcpy(shown + ns, p, k);
        ns += k;
        /* what was shown is never taken back: it is a prefix of the final text */
        CHECK_ON(ns <= wlen && !memcmp(shown, want, ns), "%s: after id %d the shown %zu bytes are not a prefix of the text",
                 what, i, ns);
    }
    CHECK(completion_finish(&c) == 0, "finish failed");
    const char *p;
    size_t k = completion_ready(&c, &p);
    if (k) memcpy(shown + ns, p, k);
    ns += k;
    CHECK_ON(ns == wlen && !memcmp(shown, want, wlen), "%s: shown %zu bytes, want %zu (%.60s)", what, ns, wlen, want);
    CHECK_ON(c.len == wlen && (wlen == 0 || !memcmp(c.text, want, wlen)), "%s: text %zu bytes, want %zu", what, c.len,
             wlen); /* an empty completion may hold no buffer at all */
    CHECK_ON(stopped_at == want_stop_at, "%s: stopped at id %d, want %d", what, stopped_at, want_stop_at);
    free(shown);
    completion_free(&c);
}

int main(int argc, char **argv)
{
    CHECK(argc == 2, "usage: test_completion GOLDEN_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/A/texts.jsonl", argv[1]);
    FILE *f = fopen(path, "r");
    CHECK(f, "%s missing: the golden data in ../shared/golden is required", path);
    const char *models[] = {"bloom-5k", "opt-3k"};
    char *line = NULL;
    size_t cap = 0;
    int texts = 0, stop_runs = 0, spanning = 0, soup = 0;
    char *lines[512];
    int nl = 0;
    while (getline(&line, &cap, f) > 0 && nl < 512) lines[nl++] = strdup(line);
    fclose(f);
    free(line);
    for (int mi = 0; mi < 2; mi++) {
        Tokenizer *t;
        Err e = {{0}};
        snprintf(path, sizeof path, "%s/tokenizers/models/%s", argv[1], models[mi]);
        CHECK(tok_load(&t, path, &e) == 0, "%s", e.msg);
        for (int li = 0; li < nl; li++) {
            cJSON *j = cJSON_Parse(lines[li]);
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "text");
            CHECK(cJSON_IsString(tx), "texts.jsonl line %d", li + 1);
            const char *text = tx->valuestring;
            size_t len = strlen(text);
            int32_t *ids;
            int n;
            if (len == 0 || memchr(text, 0, len) || tok_encode(t, text, len, false, &ids, &n, &e)) {
                cJSON_Delete(j);
                continue;
            }
            texts++;
            /* the completion is the text without special tokens (a "</s>" literal in it is id 2) */
            char *full;
            size_t flen;
            CHECK(tok_decode(t, ids, n, true, &full, &flen) == 0, "decode");
            text = full, len = flen;
            /* 1. no stop strings: the chunks are the text */
            run(t, ids, n, NULL, 0, text, len, -1, "no stops");
            /* 2. a stop string taken from the text (its first occurrence cuts), plus one that never occurs */
            for (int rep = 0; rep < 3 && len >= 2; rep++) {
                size_t a = next() % (len - 1), sl = 1 + next() % (len - a < 12 ? len - a : 12);
                while (a > 0 && ((unsigned char)text[a] & 0xC0) == 0x80) a--;     /* a character boundary */
                while (a + sl < len && ((unsigned char)text[a + sl] & 0xC0) == 0x80) sl++;
                char stop[64];
                if (sl >= sizeof stop) continue;
                memcpy(stop, text + a, sl);
                stop[sl] = 0;
                if (strlen(stop) != sl) continue; /* a NUL inside */
                const char *first = strstr(text, stop);
                size_t cut = (size_t)(first - text);
                /* the id that completes the stop string: the first whose streamed chunks (the eager stream
                 * Completion uses, checked against decode below) reach cut + sl bytes */
                int at = -1;
                TokStream ts;
                tok_stream_init(&ts, t, true);
                ts.eager = true;
                size_t got = 0;
                for (int i = 0; i < n && at < 0; i++) {
                    const char *ch;
                    size_t cl;
                    int r = tok_stream_push(&ts, ids[i], &ch, &cl);
                    CHECK(r >= 0, "stream");
                    got += r ? cl : 0;
                    if (got >= cut + sl) at = i;
                }
                tok_stream_free(&ts);
                const char *stops[2] = {"\x01never-in-any-text\x02", stop};
                run(t, ids, n, stops, 2, text, cut, at, "stop from the text");
                stop_runs++;
                if (at > 0) {
                    char *d;
                    size_t dl;
                    CHECK(tok_decode(t, ids, at, true, &d, &dl) == 0, "decode");
                    spanning += dl > cut; /* the stop string began before the token that completed it */
                    free(d);
                }
            }
            free(ids);
            free(full);
            cJSON_Delete(j);
        }
        /* 3. the eager stream on byte soup: random ids, pushed one at a time, give chunks that are valid
         * UTF-8 and that, with the flush, concatenate to decode of all the ids */
        for (int rep = 0; rep < 200; rep++) {
            int n = 1 + (int)(next() % 64);
            int32_t ids[64];
            for (int i = 0; i < n; i++) ids[i] = (int32_t)(next() % (uint64_t)tok_size(t));
            TokStream ts;
            tok_stream_init(&ts, t, true);
            ts.eager = true;
            char buf[64 * 64 * 4];
            size_t got = 0;
            int chunks = 0;
            for (int i = 0; i < n; i++) {
                const char *ch;
                size_t cl;
                CHECK(tok_stream_push(&ts, ids[i], &ch, &cl) >= 0, "stream");
                if (cl) {
                    size_t bad;
                    CHECK_ON(utf8_validate(ch, cl, &bad) == 0, "eager chunk %d is not valid UTF-8 at %zu", chunks, bad);
                    memcpy(buf + got, ch, cl), got += cl, chunks++;
                }
            }
            const char *ch;
            size_t cl;
            tok_stream_flush(&ts, &ch, &cl);
            memcpy(buf + got, ch, cl), got += cl;
            char *d;
            size_t dl;
            CHECK(tok_decode(t, ids, n, true, &d, &dl) == 0, "decode");
            CHECK_ON(dl == got && !memcmp(d, buf, dl), "eager chunks of %d random ids differ from decode", n);
            free(d);
            tok_stream_free(&ts);
            soup++;
        }
        /* 4. a trailing incomplete character is flushed as U+FFFD: the first byte of "é" alone */
        int32_t lone[1];
        int32_t *ids;
        int n;
        CHECK(tok_encode(t, "\xc3\xa9", 2, false, &ids, &n, &e) == 0, "%s", e.msg);
        if (n == 2) { /* the byte-level tokens of 0xC3 then 0xA9 */
            lone[0] = ids[0];
            run(t, lone, 1, NULL, 0, "\xef\xbf\xbd", 3, -1, "lone lead byte");
        }
        free(ids);
        tok_free(t);
    }
    for (int li = 0; li < nl; li++) free(lines[li]);
    printf("completion: %d texts x 2 tokenizers, %d stop-string runs (%d spanning tokens), %d eager streams of random "
           "ids; %d of %d checks failed\n", texts / 2, stop_runs, spanning, soup, test_fail_count, test_check_count);
    CHECK(texts > 300 && stop_runs > 500 && spanning > 50 && soup == 400, "too few cases ran");
    return test_fail_count ? 1 : 0;
}
