/* The OpenAI completions API as pp8 serve speaks it, as pure functions: a request body in, a validated
 * CompletionRequest or an OpenAI-style error out; the JSON of responses, stream chunks, /v1/models and
 * errors built into a Str. No sockets, no threads, no tokenizer, no engine: what the HTTP front end
 * (server.c) calls, and what a fuzzer can call directly.
 * Defaults are OpenAI's (max_tokens 16, temperature 1, top_p 1, no top-k, a random seed when none is
 * given); unknown fields are ignored and reported for logging (as vLLM does); known fields pp8 does not
 * support are refused naming the field (DESIGN.md "Serving"). */
#ifndef PP8_API_H
#define PP8_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/str.h"

#define API_MAX_LOGPROBS 5 /* OpenAI's completions limit */

/* What a request is checked against (the server fills it from its flags and the model). */
typedef struct ApiLimits {
    const char *model;   /* --served-model-name: the only accepted "model" (an absent "model" is accepted) */
    int vocab;           /* token ids in a prompt must be in [0, vocab) */
    int max_prompts;     /* prompts in one request (a list of strings or of id lists) */
    int max_tokens;      /* the largest max_tokens accepted (the server passes --max-seq-len) */
    int max_stops;       /* stop strings (OpenAI: 4) */
    size_t max_stop_len; /* bytes per stop string */
} ApiLimits;

/* One prompt: text (UTF-8 checked by the caller's tokenizer) or token ids, never both. */
typedef struct ApiPrompt {
    char *text; /* NUL-terminated copy; NULL when ids */
    size_t len;
    int32_t *ids; /* NULL when text */
    int nids;
} ApiPrompt;

typedef struct CompletionRequest {
    char *model;       /* as sent (NULL when absent) */
    ApiPrompt *prompts; /* (nprompts) each becomes one choice, index = its position */
    int nprompts;
    int max_tokens;    /* >= 0; 0 only with echo (scoring a prompt: lm-evaluation-harness) */
    double temperature; /* [0, 2]; 0 = greedy */
    double top_p;      /* [0, 1] */
    int top_k;         /* pp8 extension; 0 = off (OpenAI's default: no top-k), -1 also means off */
    double min_p;      /* pp8 extension; [0, 1] */
    double repetition_penalty; /* pp8 extension; > 0, default 1 */
    bool has_seed;
    uint64_t seed;     /* when has_seed */
    char **stop;       /* (nstop) non-empty strings */
    int nstop;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    bool echo;
    int logprobs;      /* -1 = none (null/absent); 0..API_MAX_LOGPROBS top alternatives per token */
    bool ignore_eos;   /* pp8 extension (vLLM's name) */
    char *user;        /* OpenAI's "user", kept for logs */
} CompletionRequest;

/* An OpenAI-style error: {"error": {"message", "type", "param", "code"}} with an HTTP status. */
typedef struct ApiError {
    int status;          /* 400, 401, 404, 405, 413, 415, 429, 503 ... */
    char message[512];
    const char *type;    /* "invalid_request_error", "authentication_error", "not_found_error", "server_error" ... */
    char param[64];      /* the field, "" when none */
    const char *code;    /* NULL when none */
} ApiError;

/* Fills err and returns -1 (for `return api_error(...)`). */
int api_error(ApiError *err, int status, const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Parses and validates a POST /v1/completions body (len bytes, not NUL-terminated; invalid UTF-8 in the
 * JSON is a 400). On success req is filled (api_request_free it) and *unknown (when not NULL) holds the
 * unknown top-level fields, comma-separated, for a log line ("" when none). On failure nothing is
 * allocated in req, err says why (status 400 for every body problem). */
int api_parse_completion(const char *body, size_t len, const ApiLimits *lim, CompletionRequest *req, ApiError *err,
                         Str *unknown);
void api_request_free(CompletionRequest *req);

/* {"error": {...}} */
void api_error_json(Str *out, const ApiError *err);

/* One token's log-probabilities (raw model distribution): its own, and the top alternatives. */
typedef struct ApiTokenLogprob {
    const char *token; /* the token's text (its bytes made valid UTF-8) */
    size_t token_len;
    bool has_logprob;  /* false for the first prompt token (nothing predicts it): JSON null */
    float logprob;
    int ntop;
    const char *top_token[API_MAX_LOGPROBS];
    size_t top_len[API_MAX_LOGPROBS];
    float top_logprob[API_MAX_LOGPROBS];
    size_t text_offset; /* byte offset of the token in the choice's text (with echo: in prompt + text) */
} ApiTokenLogprob;

typedef struct ApiChoice {
    int index;
    const char *text; /* the whole text of the choice (with echo: prompt + completion), or a chunk */
    size_t len;
    const char *finish_reason; /* "stop", "length", "abort", "error", or NULL (JSON null) */
    const ApiTokenLogprob *logprobs; /* (nlogprobs); NULL = "logprobs": null */
    int nlogprobs;
} ApiChoice;

typedef struct ApiUsage {
    int prompt_tokens, completion_tokens;
} ApiUsage;

/* A whole (non-streamed) response: {"id", "object": "text_completion", "created", "model",
 * "choices": [{"text", "index", "logprobs", "finish_reason"}], "usage": {"prompt_tokens",
 * "completion_tokens", "total_tokens"}}. logprobs, when present: {"tokens": [...], "token_logprobs":
 * [...], "top_logprobs": [{token: logprob, ...} or null, ...], "text_offset": [...]}. */
void api_completion_json(Str *out, const char *id, long created, const char *model, const ApiChoice *choices, int n,
                         const ApiUsage *usage);
/* One server-sent event of a streamed response: "data: {...same shape, one choice...}\n\n", with
 * "usage": null unless usage is given (include_usage's final chunk has "choices": [] and the usage). */
void api_chunk_sse(Str *out, const char *id, long created, const char *model, const ApiChoice *choice,
                   const ApiUsage *usage);
/* "data: [DONE]\n\n" */
void api_done_sse(Str *out);
/* an error in the middle of a stream: "data: {\"error\": {...}}\n\n" */
void api_error_sse(Str *out, const ApiError *err);
/* GET /v1/models: {"object": "list", "data": [{"id", "object": "model", "created", "owned_by": "pp8",
 * "max_model_len"}]} */
void api_models_json(Str *out, const char *model, long created, int max_model_len);

#endif
