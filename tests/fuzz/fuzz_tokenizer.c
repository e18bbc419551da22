/* libFuzzer target: tokenizer files read by the real tok_load (runtime/text/tok_load.c). An input
 * without the separator "\n--8<--\n" is a tokenizer.json; with it, its parts are the GPT-2 hub layout in
 * the order vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json, added_tokens.json (an
 * empty part: that file is absent). A refused tokenizer must say why; an accepted one must encode a few
 * texts to ids it has and decode them (whole and streamed alike) into valid UTF-8. Round trips of real
 * tokenizers: fuzz_encode.c. */
#include "fuzz.h"
#include "text/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define SEP "\n--8<--\n"
static const char *const HUB_FILES[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                                        "added_tokens.json"};
#define NHUB 5

static const char *const TEXTS[] = {"Hello world! It's 2024.",
                                    " leading  spaces\tand\ttabs\r\n",
                                    "</s><pad><s><unk><|endoftext|>x</s>",
                                    "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80!",
                                    "",
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
#define NTEXTS (int)(sizeof TEXTS / sizeof TEXTS[0])

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_dir();
    return 0;
}

static void exercise(const Tokenizer *t, const char *text, size_t len)
{
    int32_t *ids = NULL;
    int n = 0;
    Err e = {{0}};
    size_t bad;
    int valid = utf8_validate(text, len, &bad) == 0;
    for (int special = 0; special < 2; special++) {
        int rc = tok_encode(t, text, len, special, &ids, &n, &e);
        if (!valid) {
            FUZZ_CHECK(rc != 0, "invalid UTF-8 (byte %zu) encoded", bad);
            return;
        }
        if (rc != 0) { /* a hand-made vocabulary may lack a byte's token: refused, never guessed */
            FUZZ_CHECK(e.msg[0] != 0, "tok_encode failed without a message");
            continue;
        }
        for (int i = 0; i < n; i++)
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < tok_size(t), "id %d outside [0, %d)", (int)ids[i], tok_size(t));
        char *out = NULL;
        size_t olen = 0;
        FUZZ_CHECK(tok_decode(t, ids, n, special, &out, &olen) == 0, "tok_decode failed");
        FUZZ_CHECK(utf8_validate(out, olen, &bad) == 0, "decoded text is not UTF-8 at byte %zu", bad);
        TokStream s;
        tok_stream_init(&s, t, special);
        size_t at = 0;
        for (int i = 0; i <= n; i++) {
            const char *chunk = NULL;
            size_t cl = 0;
            int r = i < n ? tok_stream_push(&s, ids[i], &chunk, &cl) : tok_stream_flush(&s, &chunk, &cl);
            FUZZ_CHECK(r >= 0, "stream out of memory");
            if (r == 0) continue;
            FUZZ_CHECK(at + cl <= olen && (cl == 0 || !memcmp(out + at, chunk, cl)),
                       "stream chunk %d differs from tok_decode", i);
            at += cl;
        }
        FUZZ_CHECK(at == olen, "the stream gave %zu of tok_decode's %zu bytes", at, olen);
        tok_stream_free(&s);
        free(out);
        free(ids);
        ids = NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[NHUB];
    size_t len[NHUB];
    int np = fuzz_split(data, size, SEP, strlen(SEP), part, len, NHUB);
    fuzz_remove("tokenizer.json");
    for (int i = 0; i < NHUB; i++) fuzz_remove(HUB_FILES[i]);
    if (np == 1) {
        fuzz_write("tokenizer.json", data, size);
    } else {
        for (int i = 0; i < np; i++)
            if (len[i]) fuzz_write(HUB_FILES[i], part[i], len[i]);
    }
    Tokenizer *t = NULL;
    Err e = {{0}};
    if (tok_load(&t, fuzz_dir(), &e) != 0) {
        FUZZ_CHECK(e.msg[0] != 0, "tok_load failed without a message");
        FUZZ_CHECK(t == NULL, "tok_load failed but returned a tokenizer");
        return 0;
    }
    FUZZ_CHECK(tok_size(t) > 0, "tok_size %d", tok_size(t));
    FUZZ_CHECK(tok_bos_id(t) >= -1 && tok_bos_id(t) < tok_size(t), "bos %d of %d", tok_bos_id(t), tok_size(t));
    for (int i = 0; i < NTEXTS; i++) exercise(t, TEXTS[i], strlen(TEXTS[i]));
    exercise(t, (const char *)data, size < 256 ? size : 256);
    /* every id once, and ids the tokenizer lacks (dropped) */
    int32_t ids[64];
    for (int start = 0; start < tok_size(t) && start < 4096; start += 64) {
        int n = 0;
        for (int k = 0; k < 64; k++) ids[n++] = start + k;
        ids[0] = -1 - start, ids[63] = tok_size(t) + start;
        char *out = NULL;
        size_t olen = 0, bad;
        FUZZ_CHECK(tok_decode(t, ids, n, false, &out, &olen) == 0, "tok_decode failed");
        FUZZ_CHECK(utf8_validate(out, olen, &bad) == 0, "decoded ids %d.. are not UTF-8 at byte %zu", start, bad);
        free(out);
    }
    tok_free(t);
    return 0;
}
