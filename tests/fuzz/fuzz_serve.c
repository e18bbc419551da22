/* libFuzzer target: pp8 serve's request handler without a socket (serve_handle_immediate in
 * runtime/serve/server.c; libmicrohttpd parses HTTP itself). The input is a flag byte, then method, URL,
 * Authorization, Content-Type and body, NUL-separated (the body takes the rest, NULs included). Flag bits:
 * 1 the server has --api-key sk-fuzz, 2 opt-3k's tokenizer (else bloom-5k's), 4 no Authorization header,
 * 8 no Content-Type header. The answer must be one of the statuses the API documents, with a body that
 * is strict JSON (an OpenAI error object for every 4xx), or Prometheus text for /metrics; a valid
 * completion request is recognised and never queued here (the handler's queue=false path), so nothing
 * grows from one input to the next. */
#include "fuzz.h"
#include "serve/server.h"
#include "util/log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY 16384
static Server *g_srv[4];
static Tokenizer *g_tok[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    log_init(1, 2, "fuzz"); /* log_info is rank 0's: no line per request with unknown fields */
    const char *names[2] = {"tokenizers/models/bloom-5k", "tokenizers/models/opt-3k"};
    for (int i = 0; i < 2; i++) {
        Err e = {{0}};
        if (tok_load(&g_tok[i], fuzz_golden(names[i]), &e) != 0) {
            fprintf(stderr, "fuzz_serve: %s\n", e.msg);
            exit(1);
        }
    }
    for (int s = 0; s < 4; s++) {
        ServeOpts o = {.host = "127.0.0.1",
                       .port = 0,
                       .max_queue = 4,
                       .api_key = s & 1 ? "sk-fuzz" : NULL,
                       .model_name = "pp8-fuzz",
                       .drain_timeout = 1,
                       .max_seq_len = 256,
                       .vocab = tok_size(g_tok[s >> 1]) + 7,
                       .slots = 4,
                       .ranks = 2,
                       .max_body = MAX_BODY,
                       .max_prompts = 8};
        Err e = {{0}};
        if (serve_create(&g_srv[s], &o, g_tok[s >> 1], &e) != 0) {
            fprintf(stderr, "fuzz_serve: %s\n", e.msg);
            exit(1);
        }
    }
    return 0;
}

static void check_error_body(const char *p, size_t n, int status)
{
    cJSON *root = cJSON_ParseWithLength(p, n);
    FUZZ_CHECK(root != NULL, "status %d: cJSON cannot read the body", status);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(err, "type");
    FUZZ_CHECK(cJSON_IsString(msg) && msg->valuestring[0] && cJSON_IsString(type),
               "status %d: not an OpenAI error object: %.*s", status, (int)(n < 300 ? n : 300), p);
    cJSON_Delete(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const unsigned flags = data[0];
    const uint8_t *part[5] = {0};
    size_t len[5] = {0};
    int np = fuzz_split(data + 1, size - 1, "", 1, part, len, 5);
    char *f[4];
    for (int i = 0; i < 4; i++) f[i] = fuzz_strndup(i < np ? part[i] : (const uint8_t *)"", i < np ? len[i] : 0);
    const char *method = f[0], *url = f[1], *auth = flags & 4 ? NULL : f[2], *ctype = flags & 8 ? NULL : f[3];
    const char *body = np == 5 ? (const char *)part[4] : "";
    size_t blen = np == 5 ? len[4] : 0;
    const bool keyed = flags & 1;
    Server *srv = g_srv[flags & 3];

    int status = -1;
    Str out = {0};
    int rc = serve_handle_immediate(srv, method, url, auth, ctype, body, blen, &status, &out);
    const bool completions = !strcmp(url, "/v1/completions"), post = !strcmp(method, "POST");
    if (rc == 0) {
        FUZZ_CHECK(status == 0 && out.len == 0, "a queued answer with status %d and %zu bytes", status, out.len);
        FUZZ_CHECK(completions && post, "%s %s was taken as a completion request", method, url);
        FUZZ_CHECK(blen <= MAX_BODY, "a %zu-byte body over the %d-byte limit was taken", blen, MAX_BODY);
    } else {
        FUZZ_CHECK(status == 200 || status == 400 || status == 401 || status == 404 || status == 405 || status == 413 ||
                       status == 415,
                   "status %d for %s %s", status, method, url);
        FUZZ_CHECK(out.p && out.len > 0 && !out.oom, "status %d with an empty body", status);
        FUZZ_CHECK(status != 401 || keyed, "401 from a server without --api-key");
        FUZZ_CHECK(status != 413 || blen > MAX_BODY, "413 for a %zu-byte body", blen);
        if (blen > MAX_BODY && post && completions && !(keyed && (!auth || strcmp(auth, "Bearer sk-fuzz"))))
            FUZZ_CHECK(status == 413, "status %d for a %zu-byte body", status, blen);
        if (status == 200) {
            FUZZ_CHECK(!strcmp(method, "GET") &&
                           (!strcmp(url, "/health") || !strcmp(url, "/metrics") || !strcmp(url, "/v1/models")),
                       "200 for %s %s", method, url);
        }
        if (status == 200 && !strcmp(url, "/metrics")) {
            FUZZ_CHECK(out.p[out.len - 1] == '\n', "metrics do not end a line");
            for (const char *l = out.p; l < out.p + out.len; l = strchr(l, '\n') + 1)
                FUZZ_CHECK(!strncmp(l, "# HELP ", 7) || !strncmp(l, "# TYPE ", 7) || !strncmp(l, "pp8_", 4),
                           "metrics line '%.60s'", l);
        } else {
            size_t at = 0;
            FUZZ_CHECK(fuzz_json_valid(out.p, out.len, &at), "status %d: the body is not JSON at byte %zu: %.*s",
                       status, at, (int)(out.len < 300 ? out.len : 300), out.p);
            if (status != 200) check_error_body(out.p, out.len, status);
        }
        /* a well-formed request to a keyed server without the key never gets past the key */
        if (keyed && (!auth || strcmp(auth, "Bearer sk-fuzz")) && !strncmp(url, "/v1/", 4))
            FUZZ_CHECK(status == 401, "status %d for %s without the key", status, url);
    }
    str_free(&out);
    for (int i = 0; i < 4; i++) free(f[i]);
    return 0;
}
