/* libFuzzer target: the server's JSON writers (runtime/serve/api.c) fed fuzzed strings and numbers:
 * api_chunk_sse (server-sent events, appended one after another as the server does), api_error_sse,
 * api_completion_json and api_models_json. The input is a flag byte, 8 bytes of numbers, then parts
 * separated by the two bytes NUL '|': id, model, text, error message, error param, and token texts (the
 * top alternatives are token texts again). Each event must be exactly "data: " + strict JSON + "\n\n",
 * each document strict JSON with no key twice in an object (two alternatives may read the same),
 * and a text, id or model that was valid UTF-8 must read back unchanged. */
#include "fuzz.h"
#include "serve/api.h"
#include "text/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEP    "\0|"
#define NFIX   5 /* id, model, text, message, param */
#define MAXTOK 12

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static void check_json(const char *p, size_t n, const char *what)
{
    size_t at = 0;
    FUZZ_CHECK(fuzz_json_valid(p, n, &at), "%s is not strict JSON at byte %zu of %zu: %.*s", what, at, n,
               (int)(n < 400 ? n : 400), p);
}

/* p[0, n) as a JSON document: strict, keys unique (fuzz_json_valid); returns cJSON's tree (delete it) */
static cJSON *read_json(const char *p, size_t n, const char *what)
{
    check_json(p, n, what);
    cJSON *root = cJSON_ParseWithLength(p, n);
    FUZZ_CHECK(root != NULL, "%s: cJSON cannot read what the strict check accepted", what);
    return root;
}

/* the event "data: {json}\n\n" that starts at s->p + from and ends the string */
static cJSON *read_event(const Str *s, size_t from, const char *what)
{
    FUZZ_CHECK(!s->oom && s->len >= from + 8 && !memcmp(s->p + from, "data: ", 6) &&
                   !memcmp(s->p + s->len - 2, "\n\n", 2),
               "%s is not one 'data: ...\\n\\n' event", what);
    const char *j = s->p + from + 6;
    size_t n = s->len - from - 8;
    FUZZ_CHECK(!memchr(j, '\n', n) && !memchr(j, '\r', n), "%s: a line break inside the event's data", what);
    return read_json(j, n, what);
}

/* a string written from p[0, n) reads back as p when p was valid UTF-8 (up to a NUL: cJSON's strings end there) */
static void check_string(const cJSON *v, const char *p, size_t n, const char *what)
{
    FUZZ_CHECK(cJSON_IsString(v), "%s is not a string", what);
    size_t bad;
    if (utf8_validate(p, n, &bad) != 0) return;
    const char *nul = memchr(p, 0, n);
    size_t m = nul ? (size_t)(nul - p) : n;
    FUZZ_CHECK(strlen(v->valuestring) == m && !memcmp(v->valuestring, p, m), "%s does not read back as written", what);
}

static float bits_float(const uint8_t *p, size_t n)
{
    uint8_t b[4] = {0};
    memcpy(b, p, n < 4 ? n : 4);
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9) return 0;
    const unsigned flags = data[0];
    const long created = (long)((uint64_t)data[1] | (uint64_t)data[2] << 8 | (uint64_t)data[3] << 16 |
                                (uint64_t)data[4] << 24 | (uint64_t)(int8_t)data[8] << 32);
    const ApiUsage usage = {.prompt_tokens = (int)((uint32_t)data[5] << 24 | data[6]), .completion_tokens = data[7]};
    const uint8_t *part[NFIX + MAXTOK] = {0};
    size_t len[NFIX + MAXTOK] = {0};
    int np = fuzz_split(data + 9, size - 9, SEP, 2, part, len, NFIX + MAXTOK);
    char *z[NFIX];
    for (int i = 0; i < NFIX; i++) z[i] = fuzz_strndup(i < np ? part[i] : (const uint8_t *)"", i < np ? len[i] : 0);
    const char *id = z[0], *model = flags & 0x80 ? NULL : z[1];
    const char *text = z[2];
    const size_t text_len = np > 2 ? len[2] : 0;
    static const char *const FINISH[4] = {NULL, "stop", "length", "error"};

    /* the logprobs of up to MAXTOK tokens */
    const int ntok = np > NFIX ? np - NFIX : 0;
    ApiTokenLogprob lp[MAXTOK];
    size_t off = 0;
    for (int i = 0; i < ntok; i++) {
        const uint8_t *p = part[NFIX + i];
        size_t n = len[NFIX + i];
        ApiTokenLogprob *t = &lp[i];
        memset(t, 0, sizeof *t);
        t->token = (const char *)p;
        t->token_len = n;
        t->has_logprob = !(i == 0 && (flags & 0x10));
        t->logprob = bits_float(p, n);
        t->ntop = (int)(n % (API_MAX_LOGPROBS + 2)); /* API_MAX_LOGPROBS + 1: more than the writer takes */
        for (int j = 0; j < API_MAX_LOGPROBS; j++) {
            int k = (i + j) % ntok;
            t->top_token[j] = (const char *)part[NFIX + k];
            t->top_len[j] = len[NFIX + k];
            t->top_logprob[j] = -bits_float(part[NFIX + k], len[NFIX + k]); /* NaN and inf too */
        }
        t->text_offset = off;
        off += n;
    }
    ApiChoice ch[2] = {{.index = 0,
                        .text = text,
                        .len = text_len,
                        .finish_reason = FINISH[flags & 3],
                        .logprobs = flags & 8 ? lp : NULL,
                        .nlogprobs = flags & 8 ? ntok : 0},
                       {.index = 1, .text = id, .len = strlen(id), .finish_reason = FINISH[(flags >> 1) & 3]}};

    /* stream: a chunk, the usage chunk, an error, [DONE] -- appended to one string as the server does */
    Str s = {0};
    api_chunk_sse(&s, id, created, model, &ch[0], flags & 4 ? &usage : NULL);
    cJSON *root = read_event(&s, 0, "chunk");
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    FUZZ_CHECK(cJSON_GetArraySize(choices) == 1, "a chunk with %d choices", cJSON_GetArraySize(choices));
    check_string(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0), "text"), text, text_len, "text");
    check_string(cJSON_GetObjectItemCaseSensitive(root, "id"), id, strlen(id), "id");
    if (model) check_string(cJSON_GetObjectItemCaseSensitive(root, "model"), model, strlen(model), "model");
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(root, "created");
    FUZZ_CHECK(cJSON_IsNumber(cr) && cr->valuedouble == (double)created, "created %ld does not read back", created);
    cJSON_Delete(root);
    size_t from = s.len;
    api_chunk_sse(&s, id, created, model, NULL, &usage);
    root = read_event(&s, from, "usage chunk");
    FUZZ_CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "choices")) == 0,
               "the usage chunk has choices");
    cJSON_Delete(root);

    ApiError err = {0};
    if (flags & 0x20) { /* not made by api_error: no NUL anywhere, as api_error_json allows */
        for (size_t i = 0; i < sizeof err.message; i++) err.message[i] = (char)(text_len ? text[i % text_len] : 'x');
        for (size_t i = 0; i < sizeof err.param; i++) err.param[i] = (char)(len[4] ? z[4][i % len[4]] : 'y');
        err.status = 400;
        err.type = z[3];
        err.code = flags & 0x40 ? z[4] : NULL;
    } else {
        api_error(&err, 400 + (int)(flags & 0x1f), z[3], z[4], "%s", z[3]);
        err.code = flags & 0x40 ? "context_length_exceeded" : NULL;
    }
    from = s.len;
    api_error_sse(&s, &err);
    root = read_event(&s, from, "error event");
    FUZZ_CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "error")), "the error event has no error object");
    cJSON_Delete(root);
    from = s.len;
    api_done_sse(&s);
    FUZZ_CHECK(s.len - from == 14 && !memcmp(s.p + from, "data: [DONE]\n\n", 14), "the [DONE] event");
    str_free(&s);

    /* whole documents */
    Str d = {0};
    api_completion_json(&d, id, created, model, ch, flags & 0x40 ? 2 : 1, flags & 4 ? &usage : NULL);
    cJSON_Delete(read_json(d.p, d.len, "completion"));
    d.len = 0;
    api_error_json(&d, &err);
    cJSON_Delete(read_json(d.p, d.len, "error"));
    d.len = 0;
    api_models_json(&d, model, created, (int)usage.prompt_tokens);
    cJSON_Delete(read_json(d.p, d.len, "models"));
    str_free(&d);
    for (int i = 0; i < NFIX; i++) free(z[i]);
    return 0;
}
