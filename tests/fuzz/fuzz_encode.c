/* libFuzzer target: the encoder and decoder of three real tokenizers, loaded once from the golden data
 * ($PP8_GOLDEN/tokenizers/models: bloom-5k's tokenizer.json, opt-3k's hub layout, opt-3k-fast's
 * tokenizer.json). Arbitrary bytes: invalid UTF-8 must be refused; valid UTF-8 must round-trip
 * (byte-level BPE with no normalizer: decode(encode(x)) == x, SPEC.md), with add_special putting exactly
 * the BOS in front (OPT's </s>, none for BLOOM), pieces that concatenate to x, opt-3k and opt-3k-fast
 * agreeing id for id. The same bytes read as ids must decode, whole and streamed alike, to valid UTF-8. */
#include "fuzz.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTOK 3
static const char *const NAMES[NTOK] = {"tokenizers/models/bloom-5k", "tokenizers/models/opt-3k",
                                        "tokenizers/models/opt-3k-fast/tokenizer.json"};
static Tokenizer *g_tok[NTOK];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    for (int i = 0; i < NTOK; i++) {
        Err e = {{0}};
        if (tok_load(&g_tok[i], fuzz_golden(NAMES[i]), &e) != 0) {
            fprintf(stderr, "fuzz_encode: %s\n", e.msg);
            exit(1);
        }
    }
    return 0;
}

/* ids -> text, whole and streamed; returns the text (free it) */
static char *decode_both(const Tokenizer *t, const int32_t *ids, int n, bool skip, size_t *olen)
{
    char *out = NULL;
    size_t bad;
    FUZZ_CHECK(tok_decode(t, ids, n, skip, &out, olen) == 0, "tok_decode failed");
    FUZZ_CHECK(utf8_validate(out, *olen, &bad) == 0, "%s: decoded text is not UTF-8 at byte %zu", tok_path(t), bad);
    for (int eager = 0; eager < 2; eager++) {
        TokStream s;
        tok_stream_init(&s, t, skip);
        s.eager = eager;
        size_t at = 0;
        for (int i = 0; i <= n; i++) {
            const char *chunk = NULL;
            size_t cl = 0;
            int r = i < n ? tok_stream_push(&s, ids[i], &chunk, &cl) : tok_stream_flush(&s, &chunk, &cl);
            FUZZ_CHECK(r >= 0, "stream out of memory");
            if (r == 0) continue;
            FUZZ_CHECK(at + cl <= *olen && (cl == 0 || !memcmp(out + at, chunk, cl)),
                       "%s: %s stream chunk %d differs from tok_decode", tok_path(t), eager ? "eager" : "HF", i);
            at += cl;
        }
        FUZZ_CHECK(at == *olen, "%s: the stream gave %zu of tok_decode's %zu bytes", tok_path(t), at, *olen);
        tok_stream_free(&s);
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t bad = 0;
    const int valid = utf8_validate(text, size, &bad) == 0;
    int32_t *opt_ids = NULL;
    int opt_n = -1;
    for (int k = 0; k < NTOK; k++) {
        const Tokenizer *t = g_tok[k];
        int32_t *ids = NULL, *sids = NULL;
        int n = 0, sn = 0;
        Err e = {{0}};
        int rc = tok_encode(t, text, size, false, &ids, &n, &e);
        if (!valid) {
            FUZZ_CHECK(rc != 0, "%s: invalid UTF-8 (byte %zu) was encoded", NAMES[k], bad);
            char at[48];
            snprintf(at, sizeof at, "byte offset %zu ", bad);
            FUZZ_CHECK(strstr(e.msg, "UTF-8") && strstr(e.msg, at), "%s: the refusal does not name UTF-8 and %s: %s",
                       NAMES[k], at, e.msg);
            size_t *ends = NULL;
            int np = 0;
            FUZZ_CHECK(tok_pieces(t, text, size, &ends, &np, &e) != 0, "%s: tok_pieces took invalid UTF-8", NAMES[k]);
            free(ends);
            continue;
        }
        FUZZ_CHECK(rc == 0, "%s: valid UTF-8 refused: %s", NAMES[k], e.msg);
        for (int i = 0; i < n; i++)
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < tok_size(t), "%s: id %d outside [0, %d)", NAMES[k], (int)ids[i],
                       tok_size(t));
        size_t olen = 0;
        char *out = decode_both(t, ids, n, false, &olen);
        FUZZ_CHECK(olen == size && (size == 0 || !memcmp(out, text, size)),
                   "%s: decode(encode(x)) != x (%zu bytes, got %zu)", NAMES[k], size, olen);
        free(out);
        /* add_special: the BOS in front (OPT), nothing else */
        FUZZ_CHECK(tok_encode(t, text, size, true, &sids, &sn, &e) == 0, "%s: add_special refused: %s", NAMES[k],
                   e.msg);
        int bos = tok_bos_id(t), off = bos >= 0;
        FUZZ_CHECK(sn == n + off && (!off || sids[0] == bos) &&
                       (n == 0 || !memcmp(sids + off, ids, sizeof *ids * (size_t)n)),
                   "%s: add_special gave %d ids for %d (bos %d)", NAMES[k], sn, n, bos);
        free(sids);
        /* pieces concatenate to the text */
        size_t *ends = NULL;
        int np = 0;
        FUZZ_CHECK(tok_pieces(t, text, size, &ends, &np, &e) == 0, "%s: tok_pieces: %s", NAMES[k], e.msg);
        size_t prev = 0;
        for (int i = 0; i < np; i++) {
            FUZZ_CHECK(ends[i] > prev && ends[i] <= size, "%s: piece %d ends at %zu after %zu", NAMES[k], i, ends[i],
                       prev);
            prev = ends[i];
        }
        FUZZ_CHECK(prev == size, "%s: pieces end at %zu of %zu", NAMES[k], prev, size);
        free(ends);
        if (k == 1) {
            opt_ids = ids, opt_n = n;
            ids = NULL;
        } else if (k == 2) {
            FUZZ_CHECK(n == opt_n && (n == 0 || !memcmp(ids, opt_ids, sizeof *ids * (size_t)n)),
                       "opt-3k (hub) and opt-3k-fast (tokenizer.json) disagree: %d and %d ids", opt_n, n);
        }
        free(ids);
    }
    free(opt_ids);
    /* the bytes as ids (two bytes each, some past the vocabulary): decoding never fails, always UTF-8 */
    int nid = (int)(size / 2 < 4096 ? size / 2 : 4096);
    int32_t *ids = malloc(sizeof *ids * (size_t)(nid ? nid : 1));
    FUZZ_CHECK(ids != NULL, "out of memory");
    for (int i = 0; i < nid; i++) ids[i] = (int32_t)(data[2 * i] | data[2 * i + 1] << 8) - 256;
    for (int k = 0; k < NTOK; k++)
        for (int skip = 0; skip < 2; skip++) {
            size_t olen;
            free(decode_both(g_tok[k], ids, nid, skip, &olen));
        }
    free(ids);
    return 0;
}
