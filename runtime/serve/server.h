/* pp8 serve's front end on rank 0: an HTTP/1.1 server (GNU libmicrohttpd, a thread per connection)
 * speaking OpenAI's completions API (api.h), a queue of requests, and the hooks through which the
 * engine (engine/pipeline.h, run by rank 0's main thread) admits them, streams their tokens back and
 * cancels the ones whose client went away. Also /v1/models, /health and /metrics (Prometheus text).
 * Threads: HTTP threads parse, tokenize and queue, then wait on their request; the engine thread owns
 * sequences and detokenizes; the two meet under each request's mutex. Does not compute or talk to
 * other ranks. */
#ifndef PP8_SERVER_H
#define PP8_SERVER_H

#include <stddef.h>

#include "../engine/pipeline.h"
#include "../text/tokenizer.h"
#include "../util/err.h"
#include "../util/str.h"

typedef struct ServeOpts {
    const char *host;       /* --host (default 127.0.0.1) */
    int port;               /* --port (default 8000; 0: any free port, serve_port says which) */
    int max_queue;          /* --max-queue: prompts waiting for a KV slot before new requests get 429 */
    const char *api_key;    /* --api-key: /v1/ needs "Authorization: Bearer K"; NULL: open */
    const char *model_name; /* --served-model-name */
    double drain_timeout;   /* --drain-timeout: seconds running requests get after SIGTERM */
    int max_seq_len;        /* positions per sequence: prompt + max_tokens */
    int vocab;              /* the model's logit rows (token ids in prompts must be below) */
    int slots;              /* KV slots (the most sequences running at once) */
    int ranks;
    size_t max_body;        /* bytes of a request body (413 above); 1 MiB */
    int max_prompts;        /* prompts in one request */
} ServeOpts;

typedef struct Server Server;

/* The server without its socket (serve_listen opens it). tok must outlive the server. */
int serve_create(Server **out, const ServeOpts *o, const Tokenizer *tok, Err *e);
/* Binds host:port and starts answering; errors name the address. */
int serve_listen(Server *srv, Err *e);
int serve_port(const Server *srv);
/* the engine's hooks: rank 0 passes them to engine_run(en, &hooks, INT_MAX) */
EngineHooks serve_hooks(Server *srv);
/* SIGTERM: stop taking requests (503), let running ones finish for drain_timeout seconds, then cancel
 * what is left; the engine's poll then says no more will come. Safe to call from a signal handler. */
void serve_request_stop(Server *srv);
/* Closes the socket and frees everything; call after engine_run returned. */
void serve_destroy(Server *srv);

/* The request handler without a socket (tests, fuzzing): method, url, the Authorization and
 * Content-Type headers (NULL when absent) and the body. Returns 1 with *status and out filled when the
 * answer is immediate (every error, /v1/models, /health, /metrics), 0 when it is a valid completion
 * request that a live server would queue (then nothing is queued here and out is empty). */
int serve_handle_immediate(Server *srv, const char *method, const char *url, const char *auth, const char *ctype,
                           const char *body, size_t len, int *status, Str *out);

#endif
