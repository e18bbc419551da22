/* The OpenAI completions API layer (runtime/serve/api.c) without a server: a table of valid bodies and
 * what each parses to (every field that differs from OpenAI's defaults is listed, so a stray one shows),
 * a table of invalid ones and the status and param each gets; 20,000 mutated bodies (byte flips,
 * insertions, cuts, deep nesting, long strings) that must parse or fail with a 4xx, each copied into a
 * buffer of exactly its length so that a read past the body shows under ASan (PP8_ASAN=ON), leaks too;
 * the response, stream-chunk, model-list and error JSON read back with cJSON. Deterministic; no model. */
#define _GNU_SOURCE /* memrchr */
#include "serve/api.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ApiLimits LIM = {
    .model = "opt-125m", .vocab = 50272, .max_prompts = 4, .max_tokens = 2048, .max_stops = 4, .max_stop_len = 32};

/* a body with its length (some hold a NUL byte) */
#define B(s) s, sizeof(s) - 1

/* ---- helpers ---- */

static void put_bytes(Str *s, const char *p, size_t n)
{
    str_puts(s, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') str_printf(s, "\\x%02x", c);
        else str_append(s, p + i, 1);
    }
    str_puts(s, "\"");
}

/* the prompts, then every field that is not OpenAI's default, in a fixed order */
static void summary(Str *s, const CompletionRequest *r, const Str *unknown)
{
    str_puts(s, "prompts=[");
    for (int i = 0; i < r->nprompts; i++) {
        const ApiPrompt *p = &r->prompts[i];
        if (i) str_puts(s, ",");
        if (p->text && !p->ids) {
            put_bytes(s, p->text, p->len);
            if (p->text[p->len]) str_puts(s, "(not NUL-terminated)");
        } else if (p->ids && !p->text) {
            str_puts(s, "[");
            for (int j = 0; j < p->nids; j++) str_printf(s, j ? ",%d" : "%d", p->ids[j]);
            str_puts(s, "]");
        } else {
            str_puts(s, "(text and ids)");
        }
    }
    str_puts(s, "]");
    if (r->model) str_printf(s, " model=%s", r->model);
    if (r->max_tokens != 16) str_printf(s, " max_tokens=%d", r->max_tokens);
    if (r->temperature != 1) str_printf(s, " temperature=%g", r->temperature);
    if (r->top_p != 1) str_printf(s, " top_p=%g", r->top_p);
    if (r->top_k) str_printf(s, " top_k=%d", r->top_k);
    if (r->min_p != 0) str_printf(s, " min_p=%g", r->min_p);
    if (r->repetition_penalty != 1) str_printf(s, " repetition_penalty=%g", r->repetition_penalty);
    if (r->has_seed) str_printf(s, " seed=%llu", (unsigned long long)r->seed);
    else if (r->seed) str_puts(s, " (seed without has_seed)");
    if (r->nstop) {
        str_puts(s, " stop=[");
        for (int i = 0; i < r->nstop; i++) {
            if (i) str_puts(s, ",");
            put_bytes(s, r->stop[i], strlen(r->stop[i]));
        }
        str_puts(s, "]");
    } else if (r->stop) {
        str_puts(s, " (stop array without stops)");
    }
    if (r->stream) str_puts(s, " stream");
    if (r->include_usage) str_puts(s, " include_usage");
    if (r->echo) str_puts(s, " echo");
    if (r->logprobs != -1) str_printf(s, " logprobs=%d", r->logprobs);
    if (r->ignore_eos) str_puts(s, " ignore_eos");
    if (r->user) str_printf(s, " user=%s", r->user);
    if (unknown && unknown->len) str_printf(s, " unknown=%s", unknown->p);
}

/* valid UTF-8 (the JSON output must be) */
static int utf8_ok(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        int k = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c < 0xF5 ? 4 : 0;
        if (!k || i + (size_t)k > n) return 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        for (int j = 1; j < k; j++) {
            unsigned b = u[i + (size_t)j];
            if (b < (j == 1 ? lo : 0x80) || b > (j == 1 ? hi : 0xBF)) return 0;
        }
        i += (size_t)k;
    }
    return 1;
}

static int is_zero_req(const CompletionRequest *r)
{
    static const CompletionRequest zero;
    return memcmp(r, &zero, sizeof zero) == 0;
}

/* parses body[0, len) from a heap copy of exactly len bytes (no NUL after it: ASan sees a read past it) */
static int parse_exact(const char *body, size_t len, CompletionRequest *r, ApiError *e, Str *unknown)
{
    char *copy = malloc(len ? len : 1);
    CHECK(copy, "out of memory");
    if (len) memcpy(copy, body, len);
    int rc = api_parse_completion(copy, len, &LIM, r, e, unknown);
    free(copy);
    return rc;
}

/* the error JSON of e must be an {"error": {...}} object with e's fields */
static int error_json_ok(const ApiError *e)
{
    Str out = {0};
    api_error_json(&out, e);
    int ok = out.p && !out.oom && utf8_ok(out.p, out.len) && strlen(out.p) == out.len;
    cJSON *j = ok ? cJSON_ParseWithLength(out.p, out.len) : NULL;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message"), *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "param"), *c = cJSON_GetObjectItemCaseSensitive(o, "code");
    ok = ok && cJSON_IsObject(o) && cJSON_IsString(m) && cJSON_IsString(t) && strcmp(t->valuestring, e->type) == 0 &&
         (e->param[0] ? cJSON_IsString(p) && strcmp(p->valuestring, e->param) == 0 : cJSON_IsNull(p)) &&
         (e->code ? cJSON_IsString(c) && strcmp(c->valuestring, e->code) == 0 : cJSON_IsNull(c));
    cJSON_Delete(j);
    str_free(&out);
    return ok;
}

/* ---- valid bodies ---- */

typedef struct Valid {
    const char *body;
    size_t len;
    const char *want; /* summary() of the request */
} Valid;

static const Valid valid[] = {
    {B("{\"prompt\":\"Hello\"}"), "prompts=[\"Hello\"]"},
    {B(" \t\r\n{ \"prompt\" : \"x\" } \n"), "prompts=[\"x\"]"},
    {B("{\"model\":\"opt-125m\",\"prompt\":\"Hi\",\"max_tokens\":5}"), "prompts=[\"Hi\"] model=opt-125m max_tokens=5"},
    {B("{\"prompt\":[\"a\",\"b\",\"\"]}"), "prompts=[\"a\",\"b\",\"\"]"},
    {B("{\"prompt\":[\"a\",\"b\",\"c\",\"d\"]}"), "prompts=[\"a\",\"b\",\"c\",\"d\"]"},
    {B("{\"prompt\":[1,2,50271]}"), "prompts=[[1,2,50271]]"},
    {B("{\"prompt\":[0]}"), "prompts=[[0]]"},
    {B("{\"prompt\":[[1],[2,3],[4,5,6],[7]]}"), "prompts=[[1],[2,3],[4,5,6],[7]]"},
    {B("{\"prompt\":[1.0,2e0,30E-1]}"), "prompts=[[1,2,3]]"},
    {B("{\"prompt\":\"\"}"), "prompts=[\"\"]"},
    {B("{\"prompt\":\"a\\u0000b\"}"), "prompts=[\"a\\x00b\"]"},
    {B("{\"prompt\":\"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\\b\\f\\r\"}"),
     "prompts=[\"\\xc3\\xa9\\xf0\\x9f\\x98\\x80\\x0a\\x09\\x22\\x5c/\\x08\\x0c\\x0d\"]"},
    {B("{\"prompt\":\"h\xc3\xa9llo \xf0\x9f\x98\x80 \xe2\x82\xac \xf4\x8f\xbf\xbf\"}"),
     "prompts=[\"h\\xc3\\xa9llo \\xf0\\x9f\\x98\\x80 \\xe2\\x82\\xac \\xf4\\x8f\\xbf\\xbf\"]"},
    {B("{\"pr\\u006fmpt\":\"x\"}"), "prompts=[\"x\"]"},
    {B("{\"prompt\":\"x\",\"stop\":\"\\n\"}"), "prompts=[\"x\"] stop=[\"\\x0a\"]"},
    {B("{\"prompt\":\"x\",\"stop\":[\"a\",\"bb\",\"c\",\"dd\"]}"), "prompts=[\"x\"] stop=[\"a\",\"bb\",\"c\",\"dd\"]"},
    {B("{\"prompt\":\"x\",\"stop\":[]}"), "prompts=[\"x\"]"},
    {B("{\"prompt\":\"x\",\"stop\":null}"), "prompts=[\"x\"]"},
    {B("{\"prompt\":\"x\",\"stop\":\"0123456789abcdef0123456789abcdef\"}"),
     "prompts=[\"x\"] stop=[\"0123456789abcdef0123456789abcdef\"]"},
    {B("{\"prompt\":\"x\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}"),
     "prompts=[\"x\"] stream include_usage"},
    {B("{\"prompt\":\"x\",\"stream\":true,\"stream_options\":null}"), "prompts=[\"x\"] stream"},
    {B("{\"prompt\":\"x\",\"stream_options\":null}"), "prompts=[\"x\"]"},
    {B("{\"prompt\":\"x\",\"stream\":true,\"stream_options\":{}}"), "prompts=[\"x\"] stream"},
    {B("{\"stream_options\":{\"include_usage\":null},\"stream\":true,\"prompt\":\"x\"}"), "prompts=[\"x\"] stream"},
    {B("{\"prompt\":\"x\",\"stream\":true,"
       "\"stream_options\":{\"include_usage\":false,\"continuous_usage_stats\":true}}"),
     "prompts=[\"x\"] stream unknown=stream_options.continuous_usage_stats"},
    {B("{\"prompt\":\"x\",\"stream\":false}"), "prompts=[\"x\"]"},
    {B("{\"prompt\":\"x\",\"echo\":true,\"max_tokens\":0,\"logprobs\":5}"),
     "prompts=[\"x\"] max_tokens=0 echo logprobs=5"},
    {B("{\"max_tokens\":0,\"prompt\":[[5,6]],\"echo\":true,\"logprobs\":0}"),
     "prompts=[[5,6]] max_tokens=0 echo logprobs=0"},
    {B("{\"prompt\":\"x\",\"logprobs\":0}"), "prompts=[\"x\"] logprobs=0"},
    {B("{\"model\":null,\"prompt\":\"x\",\"max_tokens\":null,\"temperature\":null,\"top_p\":null,\"top_k\":null,"
       "\"min_p\":null,\"repetition_penalty\":null,\"seed\":null,\"stop\":null,\"stream\":null,\"stream_options\":null,"
       "\"echo\":null,\"logprobs\":null,\"ignore_eos\":null,\"user\":null,\"n\":null,\"best_of\":null,\"suffix\":null,"
       "\"logit_bias\":null,\"presence_penalty\":null,\"frequency_penalty\":null}"),
     "prompts=[\"x\"]"},
    {B("{\"prompt\":\"x\",\"n\":1,\"best_of\":1,\"suffix\":\"\",\"logit_bias\":{},\"presence_penalty\":0,"
       "\"frequency_penalty\":0.0}"),
     "prompts=[\"x\"]"},
    {B("{\"prompt\":\"x\",\"presence_penalty\":-0.0,\"n\":1.0}"), "prompts=[\"x\"]"},
    {B("{\"prompt\":\"x\",\"temperature\":0,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"repetition_penalty\":1.2,"
       "\"seed\":42}"),
     "prompts=[\"x\"] temperature=0 top_p=0.9 top_k=40 min_p=0.05 repetition_penalty=1.2 seed=42"},
    {B("{\"prompt\":\"x\",\"temperature\":2,\"top_p\":0,\"min_p\":1,\"top_k\":0}"),
     "prompts=[\"x\"] temperature=2 top_p=0 min_p=1"},
    {B("{\"prompt\":\"x\",\"top_k\":-1}"), "prompts=[\"x\"]"},
    {B("{\"prompt\":\"x\",\"repetition_penalty\":1e-3}"), "prompts=[\"x\"] repetition_penalty=0.001"},
    {B("{\"prompt\":\"x\",\"seed\":0}"), "prompts=[\"x\"] seed=0"},
    {B("{\"prompt\":\"x\",\"seed\":9007199254740993}"), "prompts=[\"x\"] seed=9007199254740993"},
    {B("{\"prompt\":\"x\",\"seed\":-1}"), "prompts=[\"x\"] seed=18446744073709551615"},
    {B("{\"prompt\":\"x\",\"seed\":9223372036854775807}"), "prompts=[\"x\"] seed=9223372036854775807"},
    {B("{\"prompt\":\"x\",\"seed\":-9223372036854775808}"), "prompts=[\"x\"] seed=9223372036854775808"},
    {B("{\"prompt\":\"x\",\"seed\":1e3,\"max_tokens\":32.0}"), "prompts=[\"x\"] max_tokens=32 seed=1000"},
    {B("{\"prompt\":\"x\",\"max_tokens\":2048}"), "prompts=[\"x\"] max_tokens=2048"},
    {B("{\"prompt\":\"x\",\"user\":\"u-1\",\"ignore_eos\":true,\"echo\":false}"),
     "prompts=[\"x\"] ignore_eos user=u-1"},
    /* numbers over 63 characters (older cJSON refused them) */
    {B("{\"prompt\":\"x\",\"z\":1000000000000000000000000000000000000000000000000000000000000000000000,"
       "\"max_tokens\":5.00000000000000000000000000000000000000000000000000000000000000000000000000000}"),
     "prompts=[\"x\"] max_tokens=5 unknown=z"},
    {B("{\"prompt\":\"x\",\"foo\":1,\"bar\":{\"deep\":[1,{\"x\":null}]},\"baz\":null}"),
     "prompts=[\"x\"] unknown=foo,bar,baz"},
    {B("{\"a\\nb\":[],\"prompt\":\"x\",\"\":0}"), "prompts=[\"x\"] unknown=a?b,"},
    /* an unknown field's values are positions too: the seed after it must still be read exactly */
    {B("{\"x\":[[1,2],{\"a\":\"b\"}],\"prompt\":[[1,2],[3]],\"y\":\"z\",\"seed\":9007199254740995,"
       "\"stop\":[\"s\\u00e9\"]}"),
     "prompts=[[1,2],[3]] seed=9007199254740995 stop=[\"s\\xc3\\xa9\"] unknown=x,y"},
};

static void test_valid(void)
{
    int n = (int)(sizeof valid / sizeof valid[0]);
    for (int i = 0; i < n; i++) {
        CompletionRequest r;
        ApiError e = {0};
        Str unknown = {0}, got = {0};
        int rc = parse_exact(valid[i].body, valid[i].len, &r, &e, &unknown);
        CHECK_ON(rc == 0, "valid %d %s: refused: %d %s (param %s)", i, valid[i].body, e.status, e.message, e.param);
        if (rc == 0) {
            summary(&got, &r, &unknown);
            CHECK_ON(strcmp(got.p, valid[i].want) == 0, "valid %d %s:\n  got  %s\n  want %s", i, valid[i].body, got.p,
                     valid[i].want);
            CHECK_ON(unknown.p != NULL, "valid %d: unknown must be \"\" when none, not NULL", i);
        }
        api_request_free(&r);
        CHECK_ON(is_zero_req(&r), "valid %d: api_request_free must leave the request zeroed", i);
        str_free(&unknown);
        str_free(&got);
    }
    printf("valid bodies: %d\n", n);
}

/* a 1 MiB prompt with escapes, 100,000 token ids, and the cap on the unknown-field log line */
static void test_long(void)
{
    Str b = {0};
    str_puts(&b, "{\"prompt\":\"");
    size_t want = 0;
    for (int i = 0; i < (1 << 18); i++) str_puts(&b, i % 97 ? "abcd" : "\\n\\u00e9"), want += i % 97 ? 4 : 3;
    str_puts(&b, "\"}");
    CompletionRequest r;
    ApiError e;
    int rc = parse_exact(b.p, b.len, &r, &e, NULL);
    CHECK_ON(rc == 0 && r.nprompts == 1 && r.prompts[0].len == want && r.prompts[0].text[want] == 0,
             "a long prompt: rc %d len %zu, want %zu", rc, rc ? 0 : r.prompts[0].len, want);
    api_request_free(&r);

    /* 10,000 unknown fields: the log line stays short */
    b.len = 0;
    str_puts(&b, "{\"prompt\":\"x\"");
    for (int i = 0; i < 10000; i++) str_printf(&b, ",\"unknown_field_%d\":%d", i, i);
    str_puts(&b, "}");
    Str unknown = {0};
    rc = parse_exact(b.p, b.len, &r, &e, &unknown);
    CHECK_ON(rc == 0 && unknown.len > 400 && unknown.len < 700 && strncmp(unknown.p, "unknown_field_0,", 16) == 0 &&
                 strcmp(unknown.p + unknown.len - 3, "...") == 0,
             "10,000 unknown fields: rc %d, log line %zu bytes: %.80s", rc, unknown.len, unknown.p ? unknown.p : "");
    api_request_free(&r);

    /* a list of 100,000 token ids */
    b.len = 0;
    str_puts(&b, "{\"prompt\":[");
    for (int i = 0; i < 100000; i++) str_printf(&b, i ? ",%d" : "%d", (i * 7919) % LIM.vocab);
    str_puts(&b, "],\"seed\":-2}");
    rc = parse_exact(b.p, b.len, &r, &e, NULL);
    int ok = rc == 0 && r.nprompts == 1 && r.prompts[0].nids == 100000 && r.has_seed && r.seed == UINT64_MAX - 1;
    for (int i = 0; ok && i < 100000; i++) ok = r.prompts[0].ids[i] == (i * 7919) % LIM.vocab;
    CHECK_ON(ok, "100,000 token ids: rc %d", rc);
    api_request_free(&r);
    str_free(&unknown);
    str_free(&b);
}

/* nesting: 64 levels pass (the root is one), 65 are refused */
static void test_depth(void)
{
    for (int d = 1; d <= 100; d++) {
        for (int obj = 0; obj < 2; obj++) {
            Str b = {0};
            str_puts(&b, "{\"prompt\":\"x\",\"deep\":");
            for (int k = 0; k < d; k++) str_puts(&b, obj ? "{\"a\":" : "[");
            str_puts(&b, "1");
            for (int k = 0; k < d; k++) str_puts(&b, obj ? "}" : "]");
            str_puts(&b, "}");
            CompletionRequest r;
            ApiError e;
            int rc = parse_exact(b.p, b.len, &r, &e, NULL);
            CHECK_ON(d <= 63 ? rc == 0 : rc == -1 && e.status == 400 && e.param[0] == 0,
                     "depth %d (%s): rc %d status %d %s", d, obj ? "objects" : "arrays", rc, e.status, e.message);
            api_request_free(&r);
            str_free(&b);
        }
    }
}

/* ---- invalid bodies ---- */

typedef struct Invalid {
    const char *body;
    size_t len;
    int status;
    const char *param;
    const char *msg; /* a part of the message, or NULL */
} Invalid;

#define E400(s, param) {B(s), 400, param, NULL}

static const Invalid invalid[] = {
    /* not a JSON object */
    {"", 0, 400, "", "empty"},
    {B("   \n"), 400, "", "byte 4"},
    {B("{"), 400, "", NULL},
    {B("{\"prompt\":\"x\""), 400, "", NULL},
    {B("{\"prompt\":\"x"), 400, "", "never closed"},
    {B("{\"prompt\":\"x\",}"), 400, "", "byte 14"},
    {B("{\"prompt\":\"x\"} x"), 400, "", "more after"},
    {B("{\"prompt\":\"x\"}{}"), 400, "", "more after"},
    {B("{\"prompt\":'x'}"), 400, "", NULL},
    {B("{prompt:\"x\"}"), 400, "", "field name"},
    {B("{\"prompt\" \"x\"}"), 400, "", "':'"},
    {B("{\"prompt\":\"x\" \"max_tokens\":1}"), 400, "", "','"},
    {B("[{\"prompt\":\"x\"}]"), 400, "", "an array"},
    {B("42"), 400, "", "a number"},
    {B("\"{}\""), 400, "", "a string"},
    {B("null"), 400, "", "null"},
    {B("true"), 400, "", "a boolean"},
    {B("\xef\xbb\xbf{\"prompt\":\"x\"}"), 400, "", "byte 0"},
    {B("\x01{\"prompt\":\"x\"}"), 400, "", "byte 0"},
    {B("{\"prompt\":\"x\"}\0"), 400, "", "byte 14"},
    {B("\f{\"prompt\":\"x\"}"), 400, "", NULL},
    {B("{\"prompt\":\"a\x01\"}"), 400, "", "control character"},
    {B("{\"prompt\":\"a\0b\"}"), 400, "", "control character"},
    {B("{\"prompt\":\"a\tb\"}"), 400, "", "control character"},
    {B("{\"prompt\":\"\\x41\"}"), 400, "", "escape"},
    {B("{\"prompt\":\"\\uZZZZ\"}"), 400, "", "hex"},
    {B("{\"prompt\":\"\\u12\"}"), 400, "", "hex"},
    {B("{\"prompt\":\"\\ud800\"}"), 400, "", "surrogate"},
    {B("{\"prompt\":\"\\udc00\\ud800\"}"), 400, "", "surrogate"},
    {B("{\"prompt\":\"\\ud800\\u0041\"}"), 400, "", "surrogate"},
    {B("{\"prompt\":\"\\ud83d\"}"), 400, "", "surrogate"},
    {B("{\"prompt\\u0000\":\"x\"}"), 400, "", "\\u0000"},
    {B("{\"prompt\":\"x\",\"max_tokens\":01}"), 400, "", "number"},
    {B("{\"prompt\":\"x\",\"max_tokens\":+1}"), 400, "", NULL},
    {B("{\"prompt\":\"x\",\"max_tokens\":1.}"), 400, "", "number"},
    {B("{\"prompt\":\"x\",\"max_tokens\":.5}"), 400, "", NULL},
    {B("{\"prompt\":\"x\",\"max_tokens\":1e}"), 400, "", "number"},
    {B("{\"prompt\":\"x\",\"max_tokens\":-}"), 400, "", "number"},
    {B("{\"prompt\":\"x\",\"max_tokens\":0x10}"), 400, "", "number"},
    {B("{\"prompt\":\"x\",\"temperature\":NaN}"), 400, "", NULL},
    {B("{\"prompt\":\"x\",\"temperature\":Infinity}"), 400, "", NULL},
    {B("{\"prompt\":\"x\",\"echo\":True}"), 400, "", NULL},
    {B("{\"prompt\":\"x\",\"echo\":nul}"), 400, "", NULL},
    {B("{\"prompt\":\"x\",\"echo\":truex}"), 400, "", NULL},
    E400("{\"prompt\":\"x\",\"max_tokens\":1000000000000000000000000000000000000000000000000000000000000000000000}",
         "max_tokens"),
    /* invalid UTF-8, in several forms (byte 11 is the first inside the prompt) */
    {B("{\"prompt\":\"\xc0\xaf\"}"), 400, "", "overlong encoding at byte 11"},
    {B("{\"prompt\":\"\xc1\xbf\"}"), 400, "", "overlong"},
    {B("{\"prompt\":\"\xe0\x80\xaf\"}"), 400, "", "overlong encoding at byte 11"},
    {B("{\"prompt\":\"\xf0\x80\x80\xaf\"}"), 400, "", "overlong"},
    {B("{\"prompt\":\"\xed\xa0\x80\"}"), 400, "", "surrogate at byte 11"},
    {B("{\"prompt\":\"ab\xed\xbf\xbf\"}"), 400, "", "surrogate at byte 13"},
    {B("{\"prompt\":\"\xf4\x90\x80\x80\"}"), 400, "", "beyond U+10FFFF at byte 11"},
    {B("{\"prompt\":\"\xf5\x80\x80\x80\"}"), 400, "", "byte 11"},
    {B("{\"prompt\":\"\xff\"}"), 400, "", "byte 11"},
    {B("{\"prompt\":\"\x80\"}"), 400, "", "continuation byte"},
    {B("{\"prompt\":\"\xe2\x82\"}"), 400, "", "truncated sequence at byte 11"},
    {B("{\"prompt\":\"\xf0\x9f\x98\"}"), 400, "", "truncated"},
    {B("{\"prompt\":\"\xe2\x82"), 400, "", "truncated sequence at byte 11"},
    {B("{\"prompt\":\"x\"}\xc3"), 400, "", "truncated sequence at byte 14"},
    {B("{\"prompt\":\"x\",\"user\":\"\xc3\x28\"}"), 400, "", "truncated"},
    /* model */
    {B("{\"model\":\"other\",\"prompt\":\"x\"}"), 404, "model", "The model `other` does not exist"},
    {B("{\"model\":\"opt-125m \",\"prompt\":\"x\"}"), 404, "model", NULL},
    {B("{\"model\":\"opt-125m\\u0000x\",\"prompt\":\"x\"}"), 400, "model", NULL},
    E400("{\"model\":5,\"prompt\":\"x\"}", "model"),
    E400("{\"model\":[\"opt-125m\"],\"prompt\":\"x\"}", "model"),
    /* a body problem before an unknown model */
    E400("{\"model\":\"other\",\"prompt\":\"x\",\"max_tokens\":-1}", "max_tokens"),
    /* prompt */
    {B("{}"), 400, "prompt", "missing"},
    E400("{\"max_tokens\":5}", "prompt"),
    E400("{\"prompt\":null}", "prompt"),
    E400("{\"prompt\":5}", "prompt"),
    E400("{\"prompt\":true}", "prompt"),
    E400("{\"prompt\":{}}", "prompt"),
    E400("{\"prompt\":{\"text\":\"x\"}}", "prompt"),
    E400("{\"prompt\":[]}", "prompt"),
    E400("{\"prompt\":[[]]}", "prompt"),
    E400("{\"prompt\":[[1],[]]}", "prompt"),
    E400("{\"prompt\":[\"a\",1]}", "prompt"),
    E400("{\"prompt\":[\"a\",[1]]}", "prompt"),
    E400("{\"prompt\":[1,\"a\"]}", "prompt"),
    E400("{\"prompt\":[1,[2]]}", "prompt"),
    E400("{\"prompt\":[[1],\"a\"]}", "prompt"),
    E400("{\"prompt\":[[1],[\"a\"]]}", "prompt"),
    E400("{\"prompt\":[[1],[[2]]]}", "prompt"),
    E400("{\"prompt\":[null]}", "prompt"),
    E400("{\"prompt\":[\"a\",null]}", "prompt"),
    E400("{\"prompt\":[{}]}", "prompt"),
    E400("{\"prompt\":[true]}", "prompt"),
    E400("{\"prompt\":[1.5]}", "prompt"),
    E400("{\"prompt\":[-1]}", "prompt"),
    {B("{\"prompt\":[50272]}"), 400, "prompt", "50272"},
    E400("{\"prompt\":[[1,2],[3,50272]]}", "prompt"),
    E400("{\"prompt\":[1e400]}", "prompt"),
    E400("{\"prompt\":[1e20]}", "prompt"),
    E400("{\"prompt\":[99999999999999999999999999]}", "prompt"),
    {B("{\"prompt\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}"), 400, "prompt", "at most 4"},
    E400("{\"prompt\":[[1],[1],[1],[1],[1]]}", "prompt"),
    /* max_tokens */
    E400("{\"prompt\":\"x\",\"max_tokens\":-1}", "max_tokens"),
    E400("{\"prompt\":\"x\",\"max_tokens\":2.5}", "max_tokens"),
    E400("{\"prompt\":\"x\",\"max_tokens\":1e20}", "max_tokens"),
    E400("{\"prompt\":\"x\",\"max_tokens\":1e400}", "max_tokens"),
    E400("{\"prompt\":\"x\",\"max_tokens\":-1e400}", "max_tokens"),
    E400("{\"prompt\":\"x\",\"max_tokens\":2049}", "max_tokens"),
    E400("{\"prompt\":\"x\",\"max_tokens\":4294967312}", "max_tokens"),
    E400("{\"prompt\":\"x\",\"max_tokens\":\"16\"}", "max_tokens"),
    E400("{\"prompt\":\"x\",\"max_tokens\":true}", "max_tokens"),
    {B("{\"prompt\":\"x\",\"max_tokens\":0}"), 400, "max_tokens", "echo"},
    E400("{\"prompt\":\"x\",\"max_tokens\":0,\"echo\":false}", "max_tokens"),
    /* sampling */
    E400("{\"prompt\":\"x\",\"temperature\":3}", "temperature"),
    E400("{\"prompt\":\"x\",\"temperature\":-0.1}", "temperature"),
    E400("{\"prompt\":\"x\",\"temperature\":\"1\"}", "temperature"),
    {B("{\"prompt\":\"x\",\"temperature\":1e400}"), 400, "temperature", "finite"},
    E400("{\"prompt\":\"x\",\"top_p\":1.5}", "top_p"),
    E400("{\"prompt\":\"x\",\"top_p\":-0.1}", "top_p"),
    E400("{\"prompt\":\"x\",\"top_p\":[1]}", "top_p"),
    E400("{\"prompt\":\"x\",\"top_k\":-2}", "top_k"),
    E400("{\"prompt\":\"x\",\"top_k\":1.5}", "top_k"),
    E400("{\"prompt\":\"x\",\"top_k\":1e10}", "top_k"),
    E400("{\"prompt\":\"x\",\"min_p\":1.1}", "min_p"),
    E400("{\"prompt\":\"x\",\"min_p\":-1}", "min_p"),
    E400("{\"prompt\":\"x\",\"repetition_penalty\":0}", "repetition_penalty"),
    E400("{\"prompt\":\"x\",\"repetition_penalty\":-1}", "repetition_penalty"),
    E400("{\"prompt\":\"x\",\"repetition_penalty\":1e39}", "repetition_penalty"),
    E400("{\"prompt\":\"x\",\"repetition_penalty\":1e-50}", "repetition_penalty"),
    E400("{\"prompt\":\"x\",\"repetition_penalty\":1e400}", "repetition_penalty"),
    E400("{\"prompt\":\"x\",\"seed\":9223372036854775808}", "seed"),
    E400("{\"prompt\":\"x\",\"seed\":-9223372036854775809}", "seed"),
    E400("{\"prompt\":\"x\",\"seed\":1e19}", "seed"),
    E400("{\"prompt\":\"x\",\"seed\":9.3e18}", "seed"),
    E400("{\"prompt\":\"x\",\"seed\":1.5}", "seed"),
    E400("{\"prompt\":\"x\",\"seed\":\"1\"}", "seed"),
    /* stop */
    E400("{\"prompt\":\"x\",\"stop\":\"\"}", "stop"),
    E400("{\"prompt\":\"x\",\"stop\":[\"\"]}", "stop"),
    E400("{\"prompt\":\"x\",\"stop\":[\"a\",\"\"]}", "stop"),
    {B("{\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}"), 400, "stop", "at most 4"},
    {B("{\"prompt\":\"x\",\"stop\":\"0123456789abcdef0123456789abcdefX\"}"), 400, "stop", "33 bytes"},
    E400("{\"prompt\":\"x\",\"stop\":[\"a\",\"0123456789abcdef0123456789abcdef\\u00e9\"]}", "stop"),
    E400("{\"prompt\":\"x\",\"stop\":[1]}", "stop"),
    E400("{\"prompt\":\"x\",\"stop\":[\"a\",null]}", "stop"),
    E400("{\"prompt\":\"x\",\"stop\":{}}", "stop"),
    E400("{\"prompt\":\"x\",\"stop\":true}", "stop"),
    E400("{\"prompt\":\"x\",\"stop\":\"a\\u0000\"}", "stop"),
    /* stream, stream_options */
    E400("{\"prompt\":\"x\",\"stream\":\"true\"}", "stream"),
    E400("{\"prompt\":\"x\",\"stream\":1}", "stream"),
    {B("{\"prompt\":\"x\",\"stream_options\":{\"include_usage\":true}}"), 400, "stream_options",
     "only allowed when stream"},
    E400("{\"prompt\":\"x\",\"stream\":false,\"stream_options\":{}}", "stream_options"),
    E400("{\"prompt\":\"x\",\"stream\":true,\"stream_options\":5}", "stream_options"),
    E400("{\"prompt\":\"x\",\"stream\":true,\"stream_options\":[]}", "stream_options"),
    E400("{\"prompt\":\"x\",\"stream\":true,\"stream_options\":{\"include_usage\":\"yes\"}}", "stream_options"),
    E400("{\"prompt\":\"x\",\"stream\":true,\"stream_options\":{\"include_usage\":true,\"include_usage\":false}}",
         "stream_options"),
    /* echo, logprobs, ignore_eos, user */
    E400("{\"prompt\":\"x\",\"echo\":\"true\"}", "echo"),
    E400("{\"prompt\":\"x\",\"echo\":1}", "echo"),
    E400("{\"prompt\":\"x\",\"logprobs\":6}", "logprobs"),
    E400("{\"prompt\":\"x\",\"logprobs\":-1}", "logprobs"),
    E400("{\"prompt\":\"x\",\"logprobs\":true}", "logprobs"),
    E400("{\"prompt\":\"x\",\"logprobs\":2.5}", "logprobs"),
    E400("{\"prompt\":\"x\",\"ignore_eos\":1}", "ignore_eos"),
    E400("{\"prompt\":\"x\",\"user\":5}", "user"),
    E400("{\"prompt\":\"x\",\"user\":\"a\\u0000\"}", "user"),
    /* known fields pp8 does not support */
    E400("{\"prompt\":\"x\",\"n\":2}", "n"),
    E400("{\"prompt\":\"x\",\"n\":0}", "n"),
    E400("{\"prompt\":\"x\",\"n\":1.5}", "n"),
    E400("{\"prompt\":\"x\",\"n\":\"1\"}", "n"),
    E400("{\"prompt\":\"x\",\"best_of\":3}", "best_of"),
    E400("{\"prompt\":\"x\",\"suffix\":\"x\"}", "suffix"),
    E400("{\"prompt\":\"x\",\"suffix\":\"\\u0000\"}", "suffix"),
    E400("{\"prompt\":\"x\",\"suffix\":5}", "suffix"),
    E400("{\"prompt\":\"x\",\"logit_bias\":{\"1\":5}}", "logit_bias"),
    E400("{\"prompt\":\"x\",\"logit_bias\":[]}", "logit_bias"),
    E400("{\"prompt\":\"x\",\"logit_bias\":5}", "logit_bias"),
    E400("{\"prompt\":\"x\",\"presence_penalty\":0.5}", "presence_penalty"),
    E400("{\"prompt\":\"x\",\"presence_penalty\":\"0\"}", "presence_penalty"),
    E400("{\"prompt\":\"x\",\"frequency_penalty\":-1}", "frequency_penalty"),
    E400("{\"prompt\":\"x\",\"frequency_penalty\":1e400}", "frequency_penalty"),
    /* a field twice */
    {B("{\"prompt\":\"x\",\"prompt\":\"y\"}"), 400, "prompt", "twice"},
    E400("{\"max_tokens\":1,\"prompt\":\"x\",\"max_tokens\":2}", "max_tokens"),
    E400("{\"prompt\":\"x\",\"stream\":null,\"stream\":true}", "stream"),
};

static void test_invalid(void)
{
    int n = (int)(sizeof invalid / sizeof invalid[0]);
    for (int i = 0; i < n; i++) {
        const Invalid *t = &invalid[i];
        CompletionRequest r;
        ApiError e = {0};
        int rc = parse_exact(t->body, t->len, &r, &e, NULL);
        CHECK_ON(rc == -1 && e.status == t->status && strcmp(e.param, t->param) == 0,
                 "invalid %d %.*s: rc %d status %d param \"%s\" (%s); want %d \"%s\"", i, (int)t->len, t->body, rc,
                 e.status, e.param, e.message, t->status, t->param);
        CHECK_ON(!t->msg || strstr(e.message, t->msg), "invalid %d %.*s: message \"%s\" lacks \"%s\"", i, (int)t->len,
                 t->body, e.message, t->msg);
        CHECK_ON(e.type && strcmp(e.type, "invalid_request_error") == 0, "invalid %d: type %s", i, e.type);
        CHECK_ON(e.status != 404 || (e.code && strcmp(e.code, "model_not_found") == 0), "invalid %d: code %s", i,
                 e.code ? e.code : "(null)");
        CHECK_ON(e.status == 404 || !e.code, "invalid %d: code %s on a 400", i, e.code);
        CHECK_ON(is_zero_req(&r), "invalid %d: the request is not left empty", i);
        CHECK_ON(error_json_ok(&e), "invalid %d: the error JSON is not what the error says", i);
        if (rc == 0) api_request_free(&r);
    }
    printf("invalid bodies: %d\n", n);
}

/* ---- robustness ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}
static size_t rndn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

/* what a mutation inserts: JSON's own characters, escapes, numbers at the edges, bytes of every kind */
static const char *const pieces[] = {
    "{", "}", "[", "]", "\"", ",", ":", "\\", "\\u0000", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\u00e9", "null",
    "true", "false", "0", "-", "1e400", "-1e400", "1e20", "9223372036854775808", "-0", "0.5", "2.5", "50272", "1",
    "\"prompt\":", "\"stop\":", "\"seed\":", "\"max_tokens\":", "\"echo\":true", "\"stream\":true",
    "\"stream_options\":{\"include_usage\":true}", "\"model\":\"other\"", "[[1,2],[3]]", "[\"a\",\"b\"]", "\xc0\xaf",
    "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xff", "\x80", "\xc3\xa9", "\xf0\x9f\x98\x80", " ", "\n", "\t",
    "\x01", "\0"};

/* what a member insertion adds: every field, with values of every type and at every edge */
static const char *const fields[] = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed", "stop",
    "stream", "stream_options", "echo", "logprobs", "ignore_eos", "user", "n", "best_of", "suffix", "logit_bias",
    "presence_penalty", "frequency_penalty", "extra"};
static const char *const values[] = {
    "null", "true", "false", "0", "1", "-1", "-2", "3", "5", "6", "16", "0.5", "2.5", "-0", "1e400", "1e20",
    "9223372036854775808", "50272", "\"x\"", "\"\"", "\"other\"", "\"opt-125m\"", "\"\\u0000\"",
    "\"\\ud83d\\ude00\"", "[]", "{}", "[1,2]", "[[1],[2]]", "[[]]", "[\"a\",\"b\"]", "[\"a\",1]",
    "[\"a\",\"b\",\"c\",\"d\",\"e\"]", "{\"include_usage\":true}", "{\"1\":5}", "[1.5]", "[-1]"};

static void mutate(Str *b)
{
    int ops = rndn(3) ? 1 : 2 + (int)rndn(3);
    for (int o = 0; o < ops; o++) {
        size_t at = rndn(b->len + 1);
        Str t = {0};
        int kind = (int)rndn(12);
        if (kind >= 8) { /* a member before the last '}': still JSON, most of the time */
            at = b->len;
            while (at > 0 && b->p[at - 1] != '}') at--;
            at = at ? at - 1 : b->len;
        }
        str_append(&t, b->p, at);
        switch (kind) {
        case 0: /* flip a byte */
            if (at < b->len) {
                char c = (char)rnd();
                str_append(&t, &c, 1);
                at++;
            }
            break;
        case 1: { /* insert random bytes */
            int k = 1 + (int)rndn(4);
            for (int j = 0; j < k; j++) {
                char c = (char)rnd();
                str_append(&t, &c, 1);
            }
            break;
        }
        case 2: { /* insert a piece */
            const char *p = pieces[rndn(sizeof pieces / sizeof pieces[0])];
            str_append(&t, p, *p ? strlen(p) : 1);
            break;
        }
        case 3: /* delete a range */
            at += rndn(8);
            break;
        case 4: /* truncate */
            at = b->len;
            break;
        case 5: { /* copy a slice of itself here */
            size_t s = rndn(b->len + 1), n = rndn(b->len - s + 1);
            str_append(&t, b->p + s, n);
            break;
        }
        case 6: { /* nest: brackets, maybe closed */
            int d = (int)rndn(100), obj = (int)rndn(2), close = (int)rndn(2);
            for (int k = 0; k < d; k++) str_puts(&t, obj ? "{\"k\":" : "[");
            str_puts(&t, "0");
            for (int k = 0; close && k < d; k++) str_puts(&t, obj ? "}" : "]");
            break;
        }
        case 7: { /* a long string */
            size_t n = rndn(20000);
            str_puts(&t, "\"");
            for (size_t k = 0; k < n; k++) str_append(&t, rndn(50) ? "a" : "\\n", rndn(50) ? 1 : 2);
            str_puts(&t, "\"");
            break;
        }
        default:
            str_printf(&t, ",\"%s\":%s", rndn(3) ? fields[rndn(sizeof fields / sizeof fields[0])] : "extra",
                       values[rndn(sizeof values / sizeof values[0])]);
        }
        if (at < b->len) str_append(&t, b->p + at, b->len - at);
        if (t.oom || !t.p) str_append(&t, "", 0);
        str_free(b);
        *b = t;
    }
}

/* every field of an accepted request within its rules */
static int req_sane(const CompletionRequest *r)
{
    if (r->nprompts < 1 || r->nprompts > LIM.max_prompts || !r->prompts) return 0;
    for (int i = 0; i < r->nprompts; i++) {
        const ApiPrompt *p = &r->prompts[i];
        if (!p->text == !p->ids) return 0;
        if (p->text && p->text[p->len]) return 0;
        if (p->ids && p->nids < 1) return 0;
        for (int j = 0; p->ids && j < p->nids; j++)
            if (p->ids[j] < 0 || p->ids[j] >= LIM.vocab) return 0;
    }
    if (r->max_tokens < 0 || r->max_tokens > LIM.max_tokens || (r->max_tokens == 0 && !r->echo)) return 0;
    if (!(r->temperature >= 0 && r->temperature <= 2) || !(r->top_p >= 0 && r->top_p <= 1)) return 0;
    if (r->top_k < 0 || !(r->min_p >= 0 && r->min_p <= 1) || !(r->repetition_penalty > 0)) return 0;
    if (r->nstop < 0 || r->nstop > LIM.max_stops || r->logprobs < -1 || r->logprobs > API_MAX_LOGPROBS) return 0;
    for (int i = 0; i < r->nstop; i++)
        if (!r->stop[i] || !r->stop[i][0] || strlen(r->stop[i]) > LIM.max_stop_len) return 0;
    if (r->model && strcmp(r->model, LIM.model) != 0) return 0;
    if (r->include_usage && !r->stream) return 0;
    return 1;
}

static void test_fuzz(void)
{
    int nv = (int)(sizeof valid / sizeof valid[0]), parsed = 0, refused = 0, by_status[600] = {0};
    for (int it = 0; it < 20000; it++) {
        Str b = {0};
        const Valid *seed = &valid[rndn((size_t)nv)];
        str_append(&b, seed->body, seed->len);
        if (!b.p) str_append(&b, "", 0);
        mutate(&b);
        CompletionRequest r;
        ApiError e = {0};
        Str unknown = {0};
        int rc = parse_exact(b.p, b.len, &r, &e, &unknown);
        if (rc == 0) {
            parsed++;
            CHECK_ON(req_sane(&r), "fuzz %d: an accepted request breaks a rule: %.200s", it, b.p);
            CHECK_ON(unknown.p && utf8_ok(unknown.p, unknown.len), "fuzz %d: the unknown-field line", it);
            api_request_free(&r);
        } else {
            refused++;
            CHECK_ON(rc == -1 && e.status >= 400 && e.status < 500, "fuzz %d: rc %d status %d", it, rc, e.status);
            CHECK_ON(e.message[0] && utf8_ok(e.message, strlen(e.message)) && utf8_ok(e.param, strlen(e.param)),
                     "fuzz %d: message not valid UTF-8", it);
            CHECK_ON(is_zero_req(&r), "fuzz %d: the request is not left empty", it);
            CHECK_ON(error_json_ok(&e), "fuzz %d: error JSON", it);
            if (e.status >= 0 && e.status < 600) by_status[e.status]++;
        }
        str_free(&unknown);
        str_free(&b);
    }
    /* a fuzzer that only ever fails (or only passes) tests nothing */
    CHECK_ON(parsed > 2000 && refused > 2000, "fuzz: %d parsed, %d refused", parsed, refused);
    printf("fuzz: 20000 mutated bodies, %d parsed, %d refused (%d with 400, %d with 404)\n", parsed, refused,
           by_status[400], by_status[404]);
}

/* ---- responses ---- */

static cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static int is_str(const cJSON *v, const char *s) { return cJSON_IsString(v) && strcmp(v->valuestring, s) == 0; }
static int is_num(const cJSON *v, double d) { return cJSON_IsNumber(v) && v->valuedouble == d; }

/* the output is valid UTF-8, holds no raw NUL, no NaN or Infinity */
static int output_clean(const Str *s)
{
    return s->p && !s->oom && strlen(s->p) == s->len && utf8_ok(s->p, s->len) && !strstr(s->p, "nan") &&
           !strstr(s->p, "inf") && !strstr(s->p, "NaN") && !strstr(s->p, "Inf");
}

static void test_completion_json(void)
{
    static const char text[] = "a\0b\x01\n\"\\\xc3\xa9\x7f";
    ApiTokenLogprob lp[3] = {
        {.token = "a", .token_len = 1, .has_logprob = false, .text_offset = 0},
        {.token = "\0b",
         .token_len = 2,
         .has_logprob = true,
         .logprob = -0.123456789f,
         .ntop = 4,
         .top_token = {"x", "x", "y", "\0b"},
         .top_len = {1, 1, 1, 2},
         .top_logprob = {-0.5f, -0.7f, -INFINITY, -1e-30f},
         .text_offset = 1},
        {.token = "\xff",
         .token_len = 1,
         .has_logprob = true,
         .logprob = NAN,
         .ntop = 2,
         .top_token = {"\xfe", "\xef\xbf\xbd"}, /* the same key once made valid */
         .top_len = {1, 3},
         .top_logprob = {-2.0f, -3.0f},
         .text_offset = 3},
    };
    ApiChoice ch[2] = {
        {.index = 0, .text = text, .len = sizeof text - 1, .finish_reason = "length", .logprobs = lp, .nlogprobs = 3},
        {.index = 1, .text = "", .len = 0, .finish_reason = NULL, .logprobs = NULL},
    };
    ApiUsage u = {5, 7};
    Str out = {0};
    api_completion_json(&out, "cmpl-1", 1700000000L, "opt-125m", ch, 2, &u);
    CHECK_ON(output_clean(&out), "completion JSON not clean: %s", out.p);
    CHECK_ON(strstr(out.p, "\"text\":\"a\\u0000b\\u0001\\n\\\"\\\\\xc3\xa9\x7f\""), "text escaping: %s", out.p);
    CHECK_ON(strstr(out.p, "\"tokens\":[\"a\",\"\\u0000b\",\"\xef\xbf\xbd\"]"), "tokens: %s", out.p);
    cJSON *j = cJSON_ParseWithLength(out.p, out.len);
    CHECK_ON(j, "completion JSON does not parse: %s", out.p);
    const cJSON *c = get(j, "choices"), *c0 = cJSON_GetArrayItem(c, 0), *c1 = cJSON_GetArrayItem(c, 1);
    CHECK_ON(is_str(get(j, "id"), "cmpl-1") && is_str(get(j, "object"), "text_completion") &&
                 is_num(get(j, "created"), 1700000000) && is_str(get(j, "model"), "opt-125m"),
             "head: %s", out.p);
    CHECK_ON(cJSON_GetArraySize(c) == 2 && is_num(get(c0, "index"), 0) && is_num(get(c1, "index"), 1) &&
                 is_str(get(c0, "finish_reason"), "length") && cJSON_IsNull(get(c1, "finish_reason")) &&
                 cJSON_IsNull(get(c1, "logprobs")) && is_str(get(c1, "text"), ""),
             "choices: %s", out.p);
    const cJSON *us = get(j, "usage");
    CHECK_ON(is_num(get(us, "prompt_tokens"), 5) && is_num(get(us, "completion_tokens"), 7) &&
                 is_num(get(us, "total_tokens"), 12) && cJSON_GetArraySize(us) == 3,
             "usage: %s", out.p);
    const cJSON *l = get(c0, "logprobs"), *tl = get(l, "token_logprobs"), *top = get(l, "top_logprobs");
    const cJSON *off = get(l, "text_offset");
    CHECK_ON(cJSON_GetArraySize(l) == 4 && cJSON_GetArraySize(get(l, "tokens")) == 3, "logprobs: %s", out.p);
    CHECK_ON(cJSON_IsNull(cJSON_GetArrayItem(tl, 0)) && cJSON_IsNumber(cJSON_GetArrayItem(tl, 1)) &&
                 (float)cJSON_GetArrayItem(tl, 1)->valuedouble == -0.123456789f &&
                 is_num(cJSON_GetArrayItem(tl, 2), -9999.0),
             "token_logprobs: %s", out.p);
    const cJSON *t1 = cJSON_GetArrayItem(top, 1), *t2 = cJSON_GetArrayItem(top, 2);
    CHECK_ON(cJSON_IsNull(cJSON_GetArrayItem(top, 0)) && cJSON_GetArraySize(top) == 3, "top_logprobs[0]: %s", out.p);
    /* "x" twice: the first kept; "\0b" is a key of its own (cJSON reads it as "", which no other key is) */
    CHECK_ON(cJSON_GetArraySize(t1) == 3 && is_num(get(t1, "x"), -0.5) && is_num(get(t1, "y"), -9999.0) &&
                 cJSON_IsNumber(get(t1, "")) && (float)get(t1, "")->valuedouble == -1e-30f,
             "top_logprobs[1]: %s", out.p);
    CHECK_ON(strstr(out.p, "{\"x\":-0.5,\"y\":-9999.0,\"\\u0000b\":"), "top_logprobs[1] as written: %s", out.p);
    CHECK_ON(cJSON_GetArraySize(t2) == 1 && is_num(get(t2, "\xef\xbf\xbd"), -2.0), "top_logprobs[2]: %s", out.p);
    CHECK_ON(cJSON_GetArraySize(off) == 3 && is_num(cJSON_GetArrayItem(off, 0), 0) &&
                 is_num(cJSON_GetArrayItem(off, 1), 1) && is_num(cJSON_GetArrayItem(off, 2), 3),
             "text_offset: %s", out.p);
    cJSON_Delete(j);
    str_free(&out);

    /* every float round-trips through the JSON (%.9g), across the exponent range, with -inf as -9999.0 */
    enum { N = 2000 };
    ApiTokenLogprob *many = calloc(N, sizeof *many);
    float *want = calloc(N, sizeof *want);
    CHECK(many && want, "out of memory");
    for (int i = 0; i < N; i++) {
        uint32_t bits = (uint32_t)(rnd() >> 32);
        float f;
        memcpy(&f, &bits, 4);
        if (!isfinite(f)) f = -INFINITY;
        want[i] = isfinite(f) ? f : -9999.0f;
        many[i] = (ApiTokenLogprob){
            .token = "t", .token_len = 1, .has_logprob = true, .logprob = f, .text_offset = (size_t)i};
    }
    ApiChoice one = {.index = 0, .text = "t", .len = 1, .finish_reason = "stop", .logprobs = many, .nlogprobs = N};
    api_completion_json(&out, "id", 0, "m", &one, 1, NULL);
    CHECK_ON(output_clean(&out), "many logprobs: not clean");
    j = cJSON_ParseWithLength(out.p, out.len);
    tl = get(get(cJSON_GetArrayItem(get(j, "choices"), 0), "logprobs"), "token_logprobs");
    int bad = cJSON_GetArraySize(tl) != N;
    for (int i = 0; !bad && i < N; i++) {
        const cJSON *v = cJSON_GetArrayItem(tl, i);
        bad = !cJSON_IsNumber(v) || (float)v->valuedouble != want[i];
        if (bad) fprintf(stderr, "logprob %d: %.9g came back as %.17g\n", i, (double)want[i], v ? v->valuedouble : 0);
    }
    CHECK_ON(!bad && cJSON_IsNull(get(j, "usage")), "floats do not round-trip");
    cJSON_Delete(j);
    str_free(&out);
    free(many);
    free(want);

    /* a text of invalid UTF-8 still gives valid JSON (U+FFFD per bad byte) */
    ApiChoice badtext = {.index = 0, .text = "\xff\xfe" "ok\xc3", .len = 5};
    api_completion_json(&out, "id", 0, "m", &badtext, 1, &u);
    j = cJSON_ParseWithLength(out.p, out.len);
    c0 = cJSON_GetArrayItem(get(j, "choices"), 0);
    CHECK_ON(output_clean(&out) && is_str(get(c0, "text"), "\xef\xbf\xbd\xef\xbf\xbdok\xef\xbf\xbd"),
             "invalid UTF-8 text: %s", out.p);
    cJSON_Delete(j);
    str_free(&out);
}

/* "data: " + JSON + "\n\n", and no blank line inside (JSON escapes every newline) */
static cJSON *sse_json(const Str *s)
{
    if (!s->p || s->len < 8 || memcmp(s->p, "data: ", 6) != 0 || memcmp(s->p + s->len - 2, "\n\n", 2) != 0) return NULL;
    if (memchr(s->p, '\n', s->len) != s->p + s->len - 2) return NULL;
    return cJSON_ParseWithLength(s->p + 6, s->len - 8);
}

static void test_stream(void)
{
    ApiTokenLogprob lp = {.token = " hi\n", .token_len = 4, .has_logprob = true, .logprob = -1.5f, .ntop = 1,
                          .top_token = {" hi\n"}, .top_len = {4}, .top_logprob = {-1.5f}, .text_offset = 7};
    ApiChoice ch = {.index = 2, .text = " hi\n\n", .len = 5, .finish_reason = NULL, .logprobs = &lp, .nlogprobs = 1};
    Str out = {0};
    api_chunk_sse(&out, "cmpl-9", 42, "opt-125m", &ch, NULL);
    cJSON *j = sse_json(&out);
    CHECK_ON(j && output_clean(&out), "chunk framing: [%s]", out.p);
    const cJSON *c = get(j, "choices"), *c0 = cJSON_GetArrayItem(c, 0);
    CHECK_ON(is_str(get(j, "object"), "text_completion") && is_str(get(j, "id"), "cmpl-9") &&
                 is_num(get(j, "created"), 42) && is_str(get(j, "model"), "opt-125m") && cJSON_GetArraySize(c) == 1 &&
                 is_str(get(c0, "text"), " hi\n\n") && is_num(get(c0, "index"), 2) &&
                 cJSON_IsNull(get(c0, "finish_reason")) && cJSON_IsNull(get(j, "usage")) &&
                 is_num(cJSON_GetArrayItem(get(get(c0, "logprobs"), "token_logprobs"), 0), -1.5) &&
                 is_num(cJSON_GetArrayItem(get(get(c0, "logprobs"), "text_offset"), 0), 7),
             "chunk: %s", out.p);
    cJSON_Delete(j);

    /* the last chunk: finish_reason */
    out.len = 0;
    ApiChoice last = {.index = 0, .text = "", .len = 0, .finish_reason = "stop"};
    api_chunk_sse(&out, "cmpl-9", 42, "opt-125m", &last, NULL);
    j = sse_json(&out);
    c0 = cJSON_GetArrayItem(get(j, "choices"), 0);
    CHECK_ON(j && is_str(get(c0, "finish_reason"), "stop") && cJSON_IsNull(get(c0, "logprobs")), "last chunk: %s",
             out.p);
    cJSON_Delete(j);

    /* include_usage's final chunk: "choices": [] and the usage */
    out.len = 0;
    ApiUsage u = {3, 4};
    api_chunk_sse(&out, "cmpl-9", 42, "opt-125m", NULL, &u);
    j = sse_json(&out);
    c = get(j, "choices");
    CHECK_ON(j && cJSON_IsArray(c) && cJSON_GetArraySize(c) == 0 && is_num(get(get(j, "usage"), "total_tokens"), 7) &&
                 is_num(get(get(j, "usage"), "prompt_tokens"), 3) && strstr(out.p, "\"choices\":[]"),
             "usage chunk: %s", out.p);
    cJSON_Delete(j);

    out.len = 0;
    api_done_sse(&out);
    CHECK_ON(strcmp(out.p, "data: [DONE]\n\n") == 0, "done: %s", out.p);

    out.len = 0;
    ApiError e;
    api_error(&e, 503, "server_error", NULL, "a rank died: \"%s\"\n", "r2");
    api_error_sse(&out, &e);
    j = sse_json(&out);
    const cJSON *o = get(j, "error");
    CHECK_ON(j && is_str(get(o, "message"), "a rank died: \"r2\"\n") && is_str(get(o, "type"), "server_error") &&
                 cJSON_IsNull(get(o, "param")) && cJSON_IsNull(get(o, "code")),
             "error event: %s", out.p);
    cJSON_Delete(j);
    str_free(&out);
}

static void test_error_and_models(void)
{
    ApiError e;
    Str out = {0};
    CHECK_ON(api_error(&e, 404, "invalid_request_error", "model", "The model `%s` does not exist", "x") == -1,
             "api_error returns -1");
    e.code = "model_not_found";
    api_error_json(&out, &e);
    static const char want404[] = "{\"error\":{\"message\":\"The model `x` does not exist\","
                                  "\"type\":\"invalid_request_error\",\"param\":\"model\","
                                  "\"code\":\"model_not_found\"}}";
    CHECK_ON(strcmp(out.p, want404) == 0, "error JSON: %s", out.p);
    out.len = 0;
    api_error(&e, 400, "invalid_request_error", "", "bad");
    api_error_json(&out, &e);
    CHECK_ON(strcmp(out.p, "{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\",\"param\":null,"
                           "\"code\":null}}") == 0,
             "error JSON without param: %s", out.p);

    /* a long message is cut at a character boundary; a bad byte becomes '?' */
    char big[2000] = "";
    for (int i = 0; i < 600; i++) strcat(big, "\xc3\xa9");
    api_error(&e, 400, "invalid_request_error", big, "x%s", big);
    size_t n = strlen(e.message), np = strlen(e.param);
    CHECK_ON(n >= 500 && n < sizeof e.message && n % 2 == 1 && utf8_ok(e.message, n), "cut message: %zu bytes", n);
    CHECK_ON(np >= 60 && np < sizeof e.param && np % 2 == 0 && utf8_ok(e.param, np), "cut param: %zu bytes", np);
    api_error(&e, 400, "invalid_request_error", "p\xff", "a\xffz\xe2\x82");
    CHECK_ON(strcmp(e.message, "a?z??") == 0 && strcmp(e.param, "p?") == 0, "repaired: %s %s", e.message, e.param);

    out.len = 0;
    api_models_json(&out, "opt-125m", 1700000000L, 2048);
    cJSON *j = cJSON_ParseWithLength(out.p, out.len);
    const cJSON *d = cJSON_GetArrayItem(get(j, "data"), 0);
    CHECK_ON(is_str(get(j, "object"), "list") && cJSON_GetArraySize(get(j, "data")) == 1 &&
                 is_str(get(d, "id"), "opt-125m") && is_str(get(d, "object"), "model") &&
                 is_num(get(d, "created"), 1700000000) && is_str(get(d, "owned_by"), "pp8") &&
                 is_num(get(d, "max_model_len"), 2048),
             "models: %s", out.p);
    cJSON_Delete(j);
    str_free(&out);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_valid();
    test_long();
    test_depth();
    test_invalid();
    test_fuzz();
    test_completion_json();
    test_stream();
    test_error_and_models();
    printf("%s: %d of %d checks failed\n", test_fail_count ? "FAIL" : "ok", test_fail_count, test_check_count);
    return test_fail_count ? 1 : 0;
}
