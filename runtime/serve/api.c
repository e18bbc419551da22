/* The OpenAI completions API as pure functions (api.h): a request body checked byte by byte (UTF-8, then
 * strict RFC 8259 JSON by a scanner of this file that also records where each value lies), read into a
 * tree by cJSON, validated field by field into a CompletionRequest; and the response, stream-chunk,
 * model-list and error JSON written into a Str. It does not tokenize, check a prompt's length against the
 * context, or know of sockets and threads: the server does (DESIGN.md "Serving"). */
#include "api.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Why a scanner of our own before cJSON: cJSON takes more than JSON (any byte <= 0x20 as whitespace, a
 * BOM, "\uZZZZ" read as U+0000, "01", "1.", trailing bytes after the value), keeps strings NUL-terminated
 * without their length (a prompt may hold \u0000) and numbers only as doubles (a seed needs 64 bits). The
 * scanner refuses what is not JSON with the byte offset, and gives the raw bytes of every value: strings
 * are decoded from them with their length, integers read exactly. cJSON's tree gives the structure. */

#define INVALID "invalid_request_error"
#define API_MAX_DEPTH 64    /* nesting of a body: pp8's own fields need 3 (cJSON alone would allow 1000) */
#define API_UNKNOWN_MAX 512 /* bytes of unknown field names kept for the log line */
#define API_EXCERPT 40      /* bytes of a value quoted in an error message */

/* ---- UTF-8 ---- */

/* The length of the well-formed UTF-8 sequence at p[0, n) (Unicode 16.0 Table 3-7), or 0 with *why */
static int utf8_len(const unsigned char *p, size_t n, const char **why)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    int len;
    if (c < 0x80) return 1;
    if (c < 0xC2) {
        *why = c < 0xC0 ? "a continuation byte without a lead byte" : "an overlong encoding";
        return 0;
    }
    if (c < 0xE0) {
        len = 2;
    } else if (c < 0xF0) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;      /* below: overlong */
        else if (c == 0xED) hi = 0x9F; /* above: U+D800..U+DFFF, surrogates */
    } else if (c < 0xF5) {
        len = 4;
        if (c == 0xF0) lo = 0x90;      /* below: overlong */
        else if (c == 0xF4) hi = 0x8F; /* above: beyond U+10FFFF */
    } else {
        *why = "a byte that never occurs in UTF-8 (beyond U+10FFFF)";
        return 0;
    }
    for (int k = 1; k < len; k++) {
        unsigned b = (size_t)k < n ? p[k] : 0;
        unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b >= l && b <= h) continue;
        if (k == 1 && b >= 0x80 && b <= 0xBF)
            *why = c == 0xED   ? "a UTF-16 surrogate"
                   : c == 0xF4 ? "a code point beyond U+10FFFF"
                               : "an overlong encoding";
        else
            *why = "a truncated sequence";
        return 0;
    }
    return len;
}

/* 0 when p[0, n) is well-formed UTF-8; else -1 with the offset of the first bad sequence */
static int utf8_check(const char *p, size_t n, size_t *at, const char **why)
{
    const unsigned char *u = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int k = utf8_len(u + i, n - i, why);
        if (!k) {
            *at = i;
            return -1;
        }
        i += (size_t)k;
    }
    return 0;
}

/* s (NUL-terminated) made valid UTF-8 for JSON: when it was cut short, a character cut at the end is
 * dropped; any other malformed byte becomes '?' */
static void utf8_fix(char *s, int cut)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s), i = n;
    const char *why;
    while (cut && i > 0 && n - i < 3 && (p[i - 1] & 0xC0) == 0x80) i--;
    if (cut && i > 0 && p[i - 1] >= 0xC2 && p[i - 1] <= 0xF4 && !utf8_len(p + i - 1, n - i + 1, &why))
        n = i - 1, p[n] = 0;
    for (i = 0; i < n;) {
        int k = utf8_len(p + i, n - i, &why);
        if (k) i += (size_t)k;
        else p[i++] = '?';
    }
}

/* ---- errors ---- */

int api_error(ApiError *err, int status, const char *type, const char *param, const char *fmt, ...)
{
    if (!err) return -1;
    err->status = status;
    err->type = type;
    err->code = NULL;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    if (m < 0) err->message[0] = 0;
    utf8_fix(err->message, m >= (int)sizeof err->message);
    size_t n = param ? strlen(param) : 0, cut = n >= sizeof err->param;
    if (cut) n = sizeof err->param - 1;
    if (n) memcpy(err->param, param, n);
    err->param[n] = 0;
    utf8_fix(err->param, (int)cut);
    return -1;
}

static int api_oom(ApiError *err)
{
    return api_error(err, 500, "server_error", "", "out of memory while reading the request");
}

/* ---- JSON out ---- */

/* p[0, n) as a JSON string (NULL = ""). Malformed UTF-8, which str_json would pass through into invalid
 * JSON, becomes U+FFFD byte by byte: callers hand valid text, this keeps the output JSON when one does not. */
static void put_str(Str *out, const char *p, size_t n)
{
    size_t at;
    const char *why;
    if (!p) p = "", n = 0;
    if (!utf8_check(p, n, &at, &why)) {
        str_json(out, p, n);
        return;
    }
    Str t = {0};
    for (size_t i = 0; i < n;) {
        int k = utf8_len((const unsigned char *)p + i, n - i, &why);
        if (k) str_append(&t, p + i, (size_t)k), i += (size_t)k;
        else str_append(&t, "\xEF\xBF\xBD", 3), i++;
    }
    str_json(out, t.p, t.len);
    if (t.oom) out->oom = 1;
    str_free(&t);
}

static void put_cstr(Str *out, const char *z)
{
    if (z) put_str(out, z, strlen(z));
    else str_puts(out, "null");
}

/* A log-probability: %.9g round-trips a float; -inf (a token the warpers removed) and NaN are written as
 * -9999.0, vLLM's convention, since JSON has no Infinity or NaN. (printf's decimal point is the C locale's:
 * pp8 never calls setlocale.) */
static void put_logprob(Str *out, float v)
{
    if (isfinite(v)) str_printf(out, "%.9g", (double)v);
    else str_puts(out, "-9999.0");
}

static void put_usage(Str *out, const ApiUsage *u)
{
    if (!u) {
        str_puts(out, "null");
        return;
    }
    str_printf(out, "{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%lld}", u->prompt_tokens,
               u->completion_tokens, (long long)u->prompt_tokens + u->completion_tokens);
}

/* {alternative: logprob, ...}. Two alternatives may decode to the same text (different ids, or bytes
 * that became U+FFFD): a JSON object must not repeat a key, so the first (the likelier) is kept. keys
 * is scratch for the escaped keys, compared as written (the escaping is a function of the text). */
static void put_top(Str *out, const ApiTokenLogprob *t, Str *keys)
{
    size_t kb[API_MAX_LOGPROBS + 1];
    int m = t->ntop < 0 ? 0 : t->ntop > API_MAX_LOGPROBS ? API_MAX_LOGPROBS : t->ntop, kept = 0;
    keys->len = 0;
    kb[0] = 0;
    str_puts(out, "{");
    for (int j = 0; j < m; j++) {
        put_str(keys, t->top_token[j], t->top_len[j]);
        if (keys->oom) {
            out->oom = 1;
            return;
        }
        size_t b = kb[kept], len = keys->len - b;
        int dup = 0;
        for (int q = 0; q < kept && !dup; q++)
            dup = kb[q + 1] - kb[q] == len && memcmp(keys->p + kb[q], keys->p + b, len) == 0;
        if (dup) {
            keys->len = b;
            keys->p[b] = 0;
            continue;
        }
        if (kept) str_puts(out, ",");
        str_append(out, keys->p + b, len);
        str_puts(out, ":");
        put_logprob(out, t->top_logprob[j]);
        kb[++kept] = keys->len;
    }
    str_puts(out, "}");
}

static void put_logprobs(Str *out, const ApiTokenLogprob *lp, int n, Str *keys)
{
    if (!lp) {
        str_puts(out, "null");
        return;
    }
    str_puts(out, "{\"tokens\":[");
    for (int i = 0; i < n; i++) {
        if (i) str_puts(out, ",");
        put_str(out, lp[i].token, lp[i].token_len);
    }
    str_puts(out, "],\"token_logprobs\":[");
    for (int i = 0; i < n; i++) {
        if (i) str_puts(out, ",");
        if (lp[i].has_logprob) put_logprob(out, lp[i].logprob);
        else str_puts(out, "null");
    }
    str_puts(out, "],\"top_logprobs\":[");
    for (int i = 0; i < n; i++) {
        if (i) str_puts(out, ",");
        if (lp[i].has_logprob) put_top(out, &lp[i], keys);
        else str_puts(out, "null");
    }
    str_puts(out, "],\"text_offset\":[");
    for (int i = 0; i < n; i++) {
        if (i) str_puts(out, ",");
        str_printf(out, "%zu", lp[i].text_offset);
    }
    str_puts(out, "]}");
}

static void put_choice(Str *out, const ApiChoice *c, Str *keys)
{
    str_puts(out, "{\"text\":");
    put_str(out, c->text, c->len);
    str_printf(out, ",\"index\":%d,\"logprobs\":", c->index);
    put_logprobs(out, c->logprobs, c->nlogprobs, keys);
    str_puts(out, ",\"finish_reason\":");
    put_cstr(out, c->finish_reason);
    str_puts(out, "}");
}

/* {"id", "object", "created", "model", "choices": [ -- the part every response shares */
static void put_head(Str *out, const char *id, long created, const char *model)
{
    str_puts(out, "{\"id\":");
    put_str(out, id, id ? strlen(id) : 0);
    str_printf(out, ",\"object\":\"text_completion\",\"created\":%ld,\"model\":", created);
    put_str(out, model, model ? strlen(model) : 0);
    str_puts(out, ",\"choices\":[");
}

void api_completion_json(Str *out, const char *id, long created, const char *model, const ApiChoice *choices, int n,
                         const ApiUsage *usage)
{
    Str keys = {0};
    put_head(out, id, created, model);
    for (int i = 0; i < n; i++) {
        if (i) str_puts(out, ",");
        put_choice(out, &choices[i], &keys);
    }
    str_puts(out, "],\"usage\":");
    put_usage(out, usage);
    str_puts(out, "}");
    str_free(&keys);
}

void api_chunk_sse(Str *out, const char *id, long created, const char *model, const ApiChoice *choice,
                   const ApiUsage *usage)
{
    Str keys = {0};
    str_puts(out, "data: ");
    put_head(out, id, created, model);
    if (choice) put_choice(out, choice, &keys);
    str_puts(out, "],\"usage\":");
    put_usage(out, usage);
    str_puts(out, "}\n\n");
    str_free(&keys);
}

void api_done_sse(Str *out) { str_puts(out, "data: [DONE]\n\n"); }

void api_error_json(Str *out, const ApiError *err)
{
    /* bounded lengths: an ApiError not made by api_error may lack its NUL */
    const char *z = memchr(err->message, 0, sizeof err->message);
    str_puts(out, "{\"error\":{\"message\":");
    put_str(out, err->message, z ? (size_t)(z - err->message) : sizeof err->message);
    str_puts(out, ",\"type\":");
    put_cstr(out, err->type);
    str_puts(out, ",\"param\":");
    z = memchr(err->param, 0, sizeof err->param);
    size_t np = z ? (size_t)(z - err->param) : sizeof err->param;
    if (np) put_str(out, err->param, np);
    else str_puts(out, "null");
    str_puts(out, ",\"code\":");
    put_cstr(out, err->code);
    str_puts(out, "}}");
}

void api_error_sse(Str *out, const ApiError *err)
{
    str_puts(out, "data: ");
    api_error_json(out, err);
    str_puts(out, "\n\n");
}

void api_models_json(Str *out, const char *model, long created, int max_model_len)
{
    str_puts(out, "{\"object\":\"list\",\"data\":[{\"id\":");
    put_str(out, model, model ? strlen(model) : 0);
    str_printf(out, ",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"pp8\",\"max_model_len\":%d}]}", created,
               max_model_len);
}

/* ---- the scanner: strict JSON, and where each value lies ---- */

/* Values in document order, a container before its members (the order of cJSON's tree, walked
 * depth-first): value k is the bytes [vs[k], ve[k]) of the body. */
typedef struct Scan {
    const unsigned char *p;
    size_t n, i;
    uint32_t *vs, *ve; /* (nval) */
    size_t nval, cap;
    const char *why; /* the first error, at byte `at` */
    size_t at;
    int oom;
} Scan;

static int scan_fail(Scan *s, size_t at, const char *why)
{
    s->why = why;
    s->at = at;
    return -1;
}

static void scan_ws(Scan *s)
{
    while (s->i < s->n && (s->p[s->i] == ' ' || s->p[s->i] == '\t' || s->p[s->i] == '\n' || s->p[s->i] == '\r'))
        s->i++;
}

static int hex_digit(unsigned c)
{
    return c - '0' < 10 ? (int)(c - '0') : (c | 32) - 'a' < 6 ? (int)((c | 32) - 'a' + 10) : -1;
}

/* the four hex digits at p[at, at + 4) of n bytes, or -1 */
static long hex4(const unsigned char *p, size_t n, size_t at)
{
    if (at + 4 > n) return -1;
    long u = 0;
    for (int k = 0; k < 4; k++) {
        int d = hex_digit(p[at + (size_t)k]);
        if (d < 0) return -1;
        u = u << 4 | d;
    }
    return u;
}

/* a string at s->i (its opening quote); a field name must not hold \u0000: cJSON would cut it there */
static int scan_string(Scan *s, int key)
{
    size_t q = s->i++;
    for (;;) {
        if (s->i >= s->n) return scan_fail(s, q, "a string that is never closed");
        unsigned c = s->p[s->i];
        if (c == '"') {
            s->i++;
            return 0;
        }
        if (c < 0x20) return scan_fail(s, s->i, "a control character in a string (it must be escaped)");
        if (c != '\\') {
            s->i++;
            continue;
        }
        size_t e = s->i;
        unsigned x = e + 1 < s->n ? s->p[e + 1] : 0;
        if (x && strchr("\"\\/bfnrt", (int)x)) {
            s->i += 2;
            continue;
        }
        if (x != 'u') return scan_fail(s, e, "an invalid escape (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        long u = hex4(s->p, s->n, e + 2);
        if (u < 0) return scan_fail(s, e, "\\u without four hex digits");
        s->i = e + 6;
        if (u >= 0xDC00 && u <= 0xDFFF) return scan_fail(s, e, "a lone UTF-16 low surrogate");
        if (u >= 0xD800 && u <= 0xDBFF) {
            long v = s->i + 1 < s->n && s->p[s->i] == '\\' && s->p[s->i + 1] == 'u' ? hex4(s->p, s->n, s->i + 2) : -1;
            if (v < 0xDC00 || v > 0xDFFF) return scan_fail(s, e, "a lone UTF-16 high surrogate");
            s->i += 6;
        }
        if (u == 0 && key) return scan_fail(s, e, "\\u0000 in a field name");
    }
}

static int is_digit(const Scan *s) { return s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9'; }
static int is_letter(unsigned c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }

/* RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(Scan *s)
{
    size_t b = s->i;
    if (s->p[s->i] == '-') s->i++;
    if (!is_digit(s)) return scan_fail(s, b, "an invalid number");
    if (s->p[s->i++] != '0')
        while (is_digit(s)) s->i++;
    if (s->i < s->n && s->p[s->i] == '.') {
        s->i++;
        if (!is_digit(s)) return scan_fail(s, b, "an invalid number");
        while (is_digit(s)) s->i++;
    }
    if (s->i < s->n && (s->p[s->i] | 32) == 'e') {
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-')) s->i++;
        if (!is_digit(s)) return scan_fail(s, b, "an invalid number");
        while (is_digit(s)) s->i++;
    }
    /* "01", "1.2.3", "1x": one token that is not a number (else the error would say "expected ','") */
    if (s->i < s->n && s->p[s->i] && (strchr(".+-", s->p[s->i]) || is_letter(s->p[s->i]) || is_digit(s)))
        return scan_fail(s, b, "an invalid number");
    return 0;
}

static int scan_literal(Scan *s)
{
    static const char *const words[] = {"true", "false", "null"};
    size_t b = s->i, e = b;
    while (e < s->n && is_letter(s->p[e])) e++;
    for (int k = 0; k < 3; k++)
        if (e - b == strlen(words[k]) && memcmp(s->p + b, words[k], e - b) == 0) {
            s->i = e;
            return 0;
        }
    return scan_fail(s, b, "expected a value (a string, number, object, array, true, false or null)");
}

static int scan_value(Scan *s, int depth)
{
    scan_ws(s);
    if (s->i >= s->n) return scan_fail(s, s->i, "the body ends where a value should be");
    if (s->nval == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        uint32_t *vs = realloc(s->vs, cap * sizeof *vs);
        if (vs) s->vs = vs;
        uint32_t *ve = vs ? realloc(s->ve, cap * sizeof *ve) : NULL;
        if (!ve) {
            s->oom = 1;
            return scan_fail(s, s->i, "out of memory");
        }
        s->ve = ve;
        s->cap = cap;
    }
    size_t k = s->nval++;
    s->vs[k] = (uint32_t)s->i;
    unsigned c = s->p[s->i];
    if (c == '{' || c == '[') {
        if (depth >= API_MAX_DEPTH) return scan_fail(s, s->i, "objects and arrays nested more than 64 deep");
        unsigned close = c == '{' ? '}' : ']';
        s->i++;
        scan_ws(s);
        if (s->i < s->n && s->p[s->i] == close) {
            s->i++;
        } else {
            for (;;) {
                if (c == '{') {
                    scan_ws(s);
                    if (s->i >= s->n || s->p[s->i] != '"')
                        return scan_fail(s, s->i, "expected a field name in double quotes");
                    if (scan_string(s, 1)) return -1;
                    scan_ws(s);
                    if (s->i >= s->n || s->p[s->i] != ':') return scan_fail(s, s->i, "expected ':' after a field name");
                    s->i++;
                }
                if (scan_value(s, depth + 1)) return -1;
                scan_ws(s);
                if (s->i < s->n && s->p[s->i] == ',') {
                    s->i++;
                    continue;
                }
                if (s->i < s->n && s->p[s->i] == close) {
                    s->i++;
                    break;
                }
                return scan_fail(s, s->i, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
            }
        }
    } else if (c == '"') {
        if (scan_string(s, 0)) return -1;
    } else if (c == '-' || c - '0' < 10u) {
        if (scan_number(s)) return -1;
    } else if (scan_literal(s)) {
        return -1;
    }
    s->ve[k] = (uint32_t)s->i;
    return 0;
}

/* ---- the request ---- */

typedef struct Parse {
    const char *body;
    const uint32_t *vs, *ve; /* the scanner's value spans, by position in document order */
    const ApiLimits *lim;
    ApiError *err;
    Str *unknown;
    int unknown_full;
} Parse;

/* the values in v's subtree, v included: how far the document-order position moves past v */
static size_t json_count(const cJSON *v)
{
    size_t k = 1;
    if (cJSON_IsArray(v) || cJSON_IsObject(v))
        for (const cJSON *c = v->child; c; c = c->next) k += json_count(c);
    return k;
}

static size_t json_size(const cJSON *v)
{
    size_t k = 0;
    for (const cJSON *c = v->child; c; c = c->next) k++;
    return k;
}

static const char *json_kind(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

/* value ord as the body has it, cut to API_EXCERPT bytes (at a character boundary) for a message */
static const char *excerpt(const Parse *P, size_t ord, char buf[API_EXCERPT + 4])
{
    size_t b = P->vs[ord], n = P->ve[ord] - b;
    if (n > API_EXCERPT) {
        n = API_EXCERPT;
        while (n > 0 && ((unsigned char)P->body[b + n] & 0xC0) == 0x80) n--;
        memcpy(buf + n, "...", 4);
    } else {
        buf[n] = 0;
    }
    memcpy(buf, P->body + b, n);
    return buf;
}

static void utf8_put(char *o, size_t *n, unsigned long u)
{
    if (u < 0x80) {
        o[(*n)++] = (char)u;
    } else if (u < 0x800) {
        o[(*n)++] = (char)(0xC0 | u >> 6);
        o[(*n)++] = (char)(0x80 | (u & 63));
    } else if (u < 0x10000) {
        o[(*n)++] = (char)(0xE0 | u >> 12);
        o[(*n)++] = (char)(0x80 | (u >> 6 & 63));
        o[(*n)++] = (char)(0x80 | (u & 63));
    } else {
        o[(*n)++] = (char)(0xF0 | u >> 18);
        o[(*n)++] = (char)(0x80 | (u >> 12 & 63));
        o[(*n)++] = (char)(0x80 | (u >> 6 & 63));
        o[(*n)++] = (char)(0x80 | (u & 63));
    }
}

/* String value ord decoded from the body (the scanner checked it): a NUL-terminated copy and its length,
 * \u0000 included. Every escape is no shorter than what it stands for, so the raw size bounds the copy. */
static int get_string(const Parse *P, size_t ord, char **out, size_t *len)
{
    const unsigned char *p = (const unsigned char *)P->body;
    size_t b = P->vs[ord] + 1, e = P->ve[ord] - 1, n = 0;
    char *o = malloc(e - b + 1);
    if (!o) return api_oom(P->err);
    for (size_t i = b; i < e;) {
        if (p[i] != '\\') {
            o[n++] = (char)p[i++];
            continue;
        }
        unsigned x = p[i + 1];
        i += 2;
        switch (x) {
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned long u = (unsigned long)hex4(p, e, i);
            i += 4;
            if (u >= 0xD800 && u <= 0xDBFF) {
                u = 0x10000 + ((u - 0xD800) << 10) + ((unsigned long)hex4(p, e, i + 2) - 0xDC00);
                i += 6;
            }
            utf8_put(o, &n, u);
            break;
        }
        default: o[n++] = (char)x; /* " \ / */
        }
    }
    o[n] = 0;
    *out = o;
    *len = n;
    return 0;
}

/* a string pp8 keeps as a C string (model, user, stop): a \u0000 in it would cut it short */
static int get_cstring(const Parse *P, const cJSON *v, size_t ord, const char *name, char **out, size_t *len)
{
    if (!cJSON_IsString(v))
        return api_error(P->err, 400, INVALID, name, "%s: expected a string, got %s", name, json_kind(v));
    size_t n;
    if (get_string(P, ord, out, &n)) return -1;
    if (len) *len = n;
    if (strlen(*out) != n) return api_error(P->err, 400, INVALID, name, "%s: must not contain \\u0000", name);
    return 0;
}

enum { INT_OK, INT_NOT_NUMBER, INT_NOT_INTEGER, INT_RANGE };

/* Number value ord as an integer in [lo, hi]: exactly from its digits when it is written as an integer
 * (a seed may need all 64 bits, past a double's 53), else from cJSON's double when that is integral
 * (16.0 and 1e3 are integers to pydantic, behind vLLM's API, too). */
static int read_int(const Parse *P, const cJSON *v, size_t ord, long long lo, long long hi, long long *out)
{
    if (!cJSON_IsNumber(v)) return INT_NOT_NUMBER;
    const char *t = P->body + P->vs[ord];
    size_t n = P->ve[ord] - P->vs[ord], d = t[0] == '-';
    int plain = 1;
    for (size_t i = d; i < n && plain; i++) plain = t[i] >= '0' && t[i] <= '9';
    long long x;
    if (plain) {
        char buf[24];
        if (n >= sizeof buf) return INT_RANGE; /* JSON has no leading zeros: over 22 digits is past 2^63 */
        memcpy(buf, t, n);
        buf[n] = 0;
        errno = 0;
        x = strtoll(buf, NULL, 10);
        if (errno == ERANGE) return INT_RANGE;
    } else {
        double f = v->valuedouble;
        if (!isfinite(f)) return INT_RANGE;
        if (f != floor(f)) return INT_NOT_INTEGER;
        if (f < -9223372036854775808.0 || f >= 9223372036854775808.0) return INT_RANGE;
        x = (long long)f;
    }
    if (x < lo || x > hi) return INT_RANGE;
    *out = x;
    return INT_OK;
}

static int get_int(const Parse *P, const cJSON *v, size_t ord, const char *name, long long lo, long long hi,
                   long long *out)
{
    char ex[API_EXCERPT + 4];
    switch (read_int(P, v, ord, lo, hi, out)) {
    case INT_OK: return 0;
    case INT_NOT_NUMBER:
        return api_error(P->err, 400, INVALID, name, "%s: expected an integer, got %s", name, json_kind(v));
    case INT_NOT_INTEGER:
        return api_error(P->err, 400, INVALID, name, "%s: expected an integer, got %s", name, excerpt(P, ord, ex));
    default:
        return api_error(P->err, 400, INVALID, name, "%s: expected an integer in [%lld, %lld], got %s", name, lo, hi,
                         excerpt(P, ord, ex));
    }
}

/* number value ord, finite (1e400 is inf to cJSON), in [lo, hi] */
static int get_num(const Parse *P, const cJSON *v, size_t ord, const char *name, double lo, double hi, double *out)
{
    char ex[API_EXCERPT + 4];
    if (!cJSON_IsNumber(v))
        return api_error(P->err, 400, INVALID, name, "%s: expected a number, got %s", name, json_kind(v));
    double d = v->valuedouble;
    if (!isfinite(d))
        return api_error(P->err, 400, INVALID, name, "%s: expected a finite number, got %s", name, excerpt(P, ord, ex));
    if (d < lo || d > hi)
        return api_error(P->err, 400, INVALID, name, "%s: expected a number in [%g, %g], got %s", name, lo, hi,
                         excerpt(P, ord, ex));
    *out = d;
    return 0;
}

static int get_bool(const Parse *P, const cJSON *v, const char *name, bool *out)
{
    if (!cJSON_IsBool(v))
        return api_error(P->err, 400, INVALID, name, "%s: expected true or false, got %s", name, json_kind(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

/* One list of token ids (value ord). Element j is at ord + 1 + j: every element before it was a number. */
static int get_ids(const Parse *P, const cJSON *v, size_t ord, int which, ApiPrompt *pr)
{
    char ex[API_EXCERPT + 4], at[32] = "";
    size_t n = json_size(v);
    if (which >= 0) snprintf(at, sizeof at, " (prompt %d)", which);
    if (n == 0) return api_error(P->err, 400, INVALID, "prompt", "prompt: an empty list of token ids%s", at);
    if (n > INT32_MAX) return api_error(P->err, 400, INVALID, "prompt", "prompt: %zu token ids%s", n, at);
    pr->ids = malloc(n * sizeof *pr->ids);
    if (!pr->ids) return api_oom(P->err);
    pr->nids = (int)n;
    int j = 0;
    for (const cJSON *c = v->child; c; c = c->next, j++) {
        long long x;
        int rc = read_int(P, c, ord + 1 + (size_t)j, 0, (long long)P->lim->vocab - 1, &x);
        if (rc == INT_NOT_NUMBER)
            return api_error(P->err, 400, INVALID, "prompt", "prompt: %s at position %d%s of a list of token ids",
                             json_kind(c), j, at);
        if (rc != INT_OK)
            return api_error(P->err, 400, INVALID, "prompt",
                             "prompt: token id %s at position %d%s is not an integer in [0, %d) (the vocabulary)",
                             excerpt(P, ord + 1 + (size_t)j, ex), j, at, P->lim->vocab);
        pr->ids[j] = (int32_t)x;
    }
    return 0;
}

static int get_text(const Parse *P, size_t ord, ApiPrompt *pr) { return get_string(P, ord, &pr->text, &pr->len); }

/* "prompt": a string, a list of strings, a list of ids, or a list of lists of ids */
static int parse_prompt(const Parse *P, const cJSON *v, size_t ord, CompletionRequest *r)
{
    static const char forms[] = "a string, a list of strings, a list of token ids or a list of lists of token ids";
    if (!cJSON_IsString(v) && !cJSON_IsArray(v))
        return api_error(P->err, 400, INVALID, "prompt", "prompt: expected %s; got %s", forms, json_kind(v));
    const cJSON *first = v->child;
    if (cJSON_IsArray(v) && !first) return api_error(P->err, 400, INVALID, "prompt", "prompt: an empty list");
    if (cJSON_IsString(v) || cJSON_IsNumber(first)) { /* one prompt */
        if (!(r->prompts = calloc(1, sizeof *r->prompts))) return api_oom(P->err);
        r->nprompts = 1;
        return cJSON_IsString(v) ? get_text(P, ord, &r->prompts[0]) : get_ids(P, v, ord, -1, &r->prompts[0]);
    }
    if (!cJSON_IsString(first) && !cJSON_IsArray(first))
        return api_error(P->err, 400, INVALID, "prompt", "prompt: a list of %s; expected %s", json_kind(first), forms);
    size_t n = json_size(v);
    if (n > (size_t)P->lim->max_prompts)
        return api_error(P->err, 400, INVALID, "prompt", "prompt: %zu prompts; at most %d in one request", n,
                         P->lim->max_prompts);
    if (!(r->prompts = calloc(n, sizeof *r->prompts))) return api_oom(P->err);
    r->nprompts = (int)n;
    size_t k = ord + 1;
    int i = 0;
    for (const cJSON *c = first; c; k += json_count(c), c = c->next, i++) {
        if (cJSON_IsString(first) != cJSON_IsString(c) || cJSON_IsArray(first) != cJSON_IsArray(c))
            return api_error(P->err, 400, INVALID, "prompt", "prompt: element %d is %s in a list of %s", i,
                             json_kind(c), cJSON_IsString(first) ? "strings" : "lists of token ids");
        if (cJSON_IsString(c) ? get_text(P, k, &r->prompts[i]) : get_ids(P, c, k, i, &r->prompts[i])) return -1;
    }
    return 0;
}

static int get_stop(const Parse *P, const cJSON *v, size_t ord, int which, char **out)
{
    char at[32] = "";
    size_t n;
    if (which >= 0) snprintf(at, sizeof at, " %d", which);
    if (get_cstring(P, v, ord, "stop", out, &n)) return -1;
    if (n == 0) return api_error(P->err, 400, INVALID, "stop", "stop: stop string%s is empty", at);
    if (n > P->lim->max_stop_len)
        return api_error(P->err, 400, INVALID, "stop", "stop: stop string%s has %zu bytes; at most %zu", at, n,
                         P->lim->max_stop_len);
    return 0;
}

/* "stop": a string or a list of strings ([] = none, as vLLM's default) */
static int parse_stop(const Parse *P, const cJSON *v, size_t ord, CompletionRequest *r)
{
    if (cJSON_IsString(v)) {
        if (!(r->stop = calloc(1, sizeof *r->stop))) return api_oom(P->err);
        r->nstop = 1;
        return get_stop(P, v, ord, -1, &r->stop[0]);
    }
    if (!cJSON_IsArray(v))
        return api_error(P->err, 400, INVALID, "stop", "stop: expected a string or a list of strings, got %s",
                         json_kind(v));
    size_t n = json_size(v);
    if (n > (size_t)P->lim->max_stops)
        return api_error(P->err, 400, INVALID, "stop", "stop: %zu stop strings; at most %d", n, P->lim->max_stops);
    if (n == 0) return 0;
    if (!(r->stop = calloc(n, sizeof *r->stop))) return api_oom(P->err);
    r->nstop = (int)n;
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) /* all strings so far: element i is at ord + 1 + i */
        if (get_stop(P, c, ord + 1 + (size_t)i, i, &r->stop[i])) return -1;
    return 0;
}

/* an unknown field's name onto the log line, control characters as '?', the line kept short */
static void note_unknown(Parse *P, const char *prefix, const char *name)
{
    Str *u = P->unknown;
    if (!u || P->unknown_full) return;
    if (u->len) str_puts(u, ",");
    str_puts(u, prefix);
    size_t n = strlen(name), room = u->len < API_UNKNOWN_MAX ? API_UNKNOWN_MAX - u->len : 0;
    if (n > room) {
        n = room;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80) n--;
        P->unknown_full = 1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        str_append(u, c < 0x20 || c == 0x7F ? "?" : name + i, 1);
    }
    if (P->unknown_full) str_puts(u, "...");
}

enum {
    F_MODEL, F_PROMPT, F_MAX_TOKENS, F_TEMPERATURE, F_TOP_P, F_TOP_K, F_MIN_P, F_REPETITION_PENALTY, F_SEED, F_STOP,
    F_STREAM, F_STREAM_OPTIONS, F_ECHO, F_LOGPROBS, F_IGNORE_EOS, F_USER, F_N, F_BEST_OF, F_SUFFIX, F_LOGIT_BIAS,
    F_PRESENCE_PENALTY, F_FREQUENCY_PENALTY, F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed", "stop",
    "stream", "stream_options", "echo", "logprobs", "ignore_eos", "user", "n", "best_of", "suffix", "logit_bias",
    "presence_penalty", "frequency_penalty"};

/* "stream_options": {"include_usage": bool}; other members are logged as unknown */
static int parse_stream_options(Parse *P, const cJSON *v, CompletionRequest *r)
{
    if (!cJSON_IsObject(v))
        return api_error(P->err, 400, INVALID, "stream_options", "stream_options: expected an object, got %s",
                         json_kind(v));
    int seen = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (strcmp(c->string, "include_usage") != 0) {
            note_unknown(P, "stream_options.", c->string);
            continue;
        }
        if (seen++)
            return api_error(P->err, 400, INVALID, "stream_options", "stream_options: include_usage given twice");
        if (!cJSON_IsNull(c) && get_bool(P, c, "stream_options", &r->include_usage)) return -1;
    }
    return 0;
}

/* One member of the body (value ord), not null (null is the default for every field). */
static int parse_field(Parse *P, int f, const cJSON *v, size_t ord, CompletionRequest *r)
{
    const char *name = field_names[f];
    long long x = 0;
    double d = 0;
    switch (f) {
    case F_MODEL: return get_cstring(P, v, ord, name, &r->model, NULL);
    case F_PROMPT: return parse_prompt(P, v, ord, r);
    case F_MAX_TOKENS:
        if (get_int(P, v, ord, name, 0, P->lim->max_tokens, &x)) return -1;
        r->max_tokens = (int)x;
        return 0;
    case F_TEMPERATURE: return get_num(P, v, ord, name, 0, 2, &r->temperature);
    case F_TOP_P: return get_num(P, v, ord, name, 0, 1, &r->top_p);
    case F_TOP_K:
        if (get_int(P, v, ord, name, -1, INT32_MAX, &x)) return -1;
        r->top_k = x < 0 ? 0 : (int)x; /* -1 = off as 0 is: to the sampler -1 means HF's default of 50 */
        return 0;
    case F_MIN_P: return get_num(P, v, ord, name, 0, 1, &r->min_p);
    case F_REPETITION_PENALTY:
        if (get_num(P, v, ord, name, -INFINITY, INFINITY, &d)) return -1;
        /* the sampler holds it as a float: > 0 and finite there too */
        if (!(d > 0) || !((float)d > 0) || !isfinite((float)d))
            return api_error(P->err, 400, INVALID, name, "%s: expected a finite number > 0 (1 = off), got %g", name, d);
        r->repetition_penalty = d;
        return 0;
    case F_SEED:
        if (get_int(P, v, ord, name, INT64_MIN, INT64_MAX, &x)) return -1;
        r->has_seed = true;
        r->seed = (uint64_t)x;
        return 0;
    case F_STOP: return parse_stop(P, v, ord, r);
    case F_STREAM: return get_bool(P, v, name, &r->stream);
    case F_STREAM_OPTIONS: return parse_stream_options(P, v, r);
    case F_ECHO: return get_bool(P, v, name, &r->echo);
    case F_LOGPROBS:
        if (get_int(P, v, ord, name, 0, API_MAX_LOGPROBS, &x)) return -1;
        r->logprobs = (int)x;
        return 0;
    case F_IGNORE_EOS: return get_bool(P, v, name, &r->ignore_eos);
    case F_USER: return get_cstring(P, v, ord, name, &r->user, NULL);
    case F_N:
    case F_BEST_OF:
        if (get_int(P, v, ord, name, INT64_MIN, INT64_MAX, &x)) return -1;
        if (x != 1)
            return api_error(P->err, 400, INVALID, name,
                             "%s: pp8 returns one completion per prompt (%s must be 1), got %lld", name, name, x);
        return 0;
    case F_SUFFIX:
        if (!cJSON_IsString(v))
            return api_error(P->err, 400, INVALID, name, "%s: expected a string, got %s", name, json_kind(v));
        if (P->ve[ord] - P->vs[ord] != 2) /* not "" (raw: cJSON's copy of "\u0000x" would read as "") */
            return api_error(P->err, 400, INVALID, name, "%s: not supported (pp8 does not complete before a suffix)",
                             name);
        return 0;
    case F_LOGIT_BIAS:
        if (!cJSON_IsObject(v))
            return api_error(P->err, 400, INVALID, name, "%s: expected an object, got %s", name, json_kind(v));
        if (v->child) return api_error(P->err, 400, INVALID, name, "%s: not supported (only {} or null)", name);
        return 0;
    default: /* F_PRESENCE_PENALTY, F_FREQUENCY_PENALTY */
        if (get_num(P, v, ord, name, -INFINITY, INFINITY, &d)) return -1;
        if (d != 0) return api_error(P->err, 400, INVALID, name, "%s: not supported (only 0 or null), got %g", name, d);
        return 0;
    }
}

static int parse_fields(Parse *P, const cJSON *root, CompletionRequest *r)
{
    r->max_tokens = 16; /* OpenAI's defaults */
    r->temperature = 1;
    r->top_p = 1;
    r->repetition_penalty = 1;
    r->logprobs = -1;
    unsigned seen = 0;
    bool stream_options = false;
    size_t ord = 1; /* the root is value 0 */
    for (const cJSON *v = root->child; v; ord += json_count(v), v = v->next) {
        int f = 0;
        while (f < F_COUNT && strcmp(v->string, field_names[f]) != 0) f++;
        if (f == F_COUNT) {
            note_unknown(P, "", v->string);
            continue;
        }
        /* Python's json keeps the last of two equal keys, cJSON's lookup the first: neither is a guess to make */
        if (seen >> f & 1)
            return api_error(P->err, 400, INVALID, field_names[f], "%s: given twice", field_names[f]);
        seen |= 1u << f;
        if (cJSON_IsNull(v)) continue;
        if (f == F_STREAM_OPTIONS) stream_options = true;
        if (parse_field(P, f, v, ord, r)) return -1;
    }
    if (!r->nprompts)
        return api_error(P->err, 400, INVALID, "prompt", "prompt: missing (a string, a list of strings, a list of "
                                                         "token ids or a list of lists of token ids)");
    if (r->max_tokens == 0 && !r->echo)
        return api_error(P->err, 400, INVALID, "max_tokens",
                         "max_tokens: 0 is allowed only with \"echo\": true (scoring the prompt)");
    if (stream_options && !r->stream)
        return api_error(P->err, 400, INVALID, "stream_options", "stream_options is only allowed when stream is true");
    /* a body problem is a 400 before an unknown model is a 404, as in vLLM (validation, then the model) */
    if (r->model && P->lim->model && strcmp(r->model, P->lim->model) != 0) {
        api_error(P->err, 404, INVALID, "model", "The model `%s` does not exist", r->model);
        P->err->code = "model_not_found";
        return -1;
    }
    return 0;
}

static const char *body_kind(unsigned c)
{
    switch (c) {
    case '[': return "an array";
    case '"': return "a string";
    case 't':
    case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

int api_parse_completion(const char *body, size_t len, const ApiLimits *lim, CompletionRequest *req, ApiError *err,
                         Str *unknown)
{
    static const char nojson[] = "We could not parse the JSON body of your request";
    memset(req, 0, sizeof *req);
    if (unknown) {
        unknown->len = 0;
        str_append(unknown, "", 0); /* "" rather than NULL when none */
    }
    if (!body || len == 0)
        return api_error(err, 400, INVALID, "", "%s: the body is empty (expected a JSON object)", nojson);
    if (len >= UINT32_MAX) /* value offsets are 32-bit; the server's body limit is far below */
        return api_error(err, 413, INVALID, "", "the request body has %zu bytes", len);
    size_t at = 0;
    const char *why = "";
    if (utf8_check(body, len, &at, &why))
        return api_error(err, 400, INVALID, "", "%s: it is not valid UTF-8 (%s at byte %zu)", nojson, why, at);

    Scan s = {.p = (const unsigned char *)body, .n = len};
    int rc = scan_value(&s, 0);
    if (!rc) {
        scan_ws(&s);
        if (s.i < s.n) rc = scan_fail(&s, s.i, "more after the JSON value");
    }
    if (rc) {
        if (s.oom) rc = api_oom(err);
        else api_error(err, 400, INVALID, "", "%s: %s at byte %zu", nojson, s.why, s.at);
    } else if (body[s.vs[0]] != '{') {
        rc = api_error(err, 400, INVALID, "", "%s: it is %s; expected a JSON object", nojson,
                       body_kind((unsigned char)body[s.vs[0]]));
    } else {
        /* cJSON reads what the scanner passed the same way (but for a number over 63 characters, which
         * cJSON before Debian's fix of CVE-2023-26819 refused); the count check makes sure the value
         * positions line up with its tree before they are used */
        cJSON *root = cJSON_ParseWithLength(body, len);
        if (!root || !cJSON_IsObject(root) || json_count(root) != s.nval) {
            rc = api_error(err, 400, INVALID, "", "%s (cJSON refused it)", nojson);
        } else {
            Parse P = {.body = body, .vs = s.vs, .ve = s.ve, .lim = lim, .err = err, .unknown = unknown};
            rc = parse_fields(&P, root, req);
        }
        cJSON_Delete(root);
    }
    free(s.vs);
    free(s.ve);
    if (rc) api_request_free(req);
    return rc;
}

void api_request_free(CompletionRequest *req)
{
    if (!req) return;
    for (int i = 0; i < req->nprompts; i++) {
        free(req->prompts[i].text);
        free(req->prompts[i].ids);
    }
    free(req->prompts);
    for (int i = 0; i < req->nstop; i++) free(req->stop[i]);
    free(req->stop);
    free(req->model);
    free(req->user);
    memset(req, 0, sizeof *req);
}
