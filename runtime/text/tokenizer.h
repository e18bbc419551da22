/* Byte-level BPE tokenizers exactly as Hugging Face `tokenizers` runs them for BLOOM and GPT-2/OPT
 * (../shared/golden/tokenizers/SPEC.md): added/special tokens first (leftmost-longest), no normalizer,
 * the model's pre-tokenizer, the byte-to-unicode map, BPE by merge rank, the post-processor; decoding
 * with U+FFFD for each maximal ill-formed UTF-8 subpart, and HF's streaming rule plus a final flush.
 * Reads tokenizer.json (BLOOM's Split+ByteLevel, GPT-2's ByteLevel + TemplateProcessing) or the GPT-2
 * hub layout (vocab.json + merges.txt + tokenizer_config.json + special_tokens_map.json). Anything
 * else (Unigram, WordPiece, normalizers, byte_fallback, dropout, ignore_merges, other pre-tokenizers or
 * post-processors) is refused naming the file and field. Knows nothing of models, ranks or backends. */
#ifndef PP8_TOKENIZER_H
#define PP8_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"

typedef struct Tokenizer Tokenizer;

/* dir holds tokenizer.json, or vocab.json + merges.txt (+ tokenizer_config.json,
 * special_tokens_map.json); tokenizer.json wins when both are there, as in transformers. Errors name
 * the file and field; with no tokenizer files they list the files looked for. dir may also be the path
 * of a tokenizer.json itself. */
int tok_load(Tokenizer **out, const char *dir, Err *e);
void tok_free(Tokenizer *t);

/* one past the largest id that has a token (vocab and added tokens): the rows of the model's
 * embedding the tokenizer needs (config.json's vocab_size may be larger, never smaller) */
int tok_size(const Tokenizer *t);
/* the id the post-processor puts in front with add_special (OPT's </s> = 2), or -1 (BLOOM) */
int tok_bos_id(const Tokenizer *t);
/* the file the tokenizer came from (tokenizer.json, or vocab.json), for messages */
const char *tok_path(const Tokenizer *t);
/* true for the ids of special added tokens (what skip_special drops) */
bool tok_is_special(const Tokenizer *t, int32_t id);

/* text: len bytes of UTF-8 (NUL is a character; no strlen). add_special runs the post-processor
 * (HF's add_special_tokens). On success *ids is malloc'd (free it) with *n ids, possibly 0. Invalid
 * UTF-8 is refused naming the byte offset. */
int tok_encode(const Tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids, int *n, Err *e);

/* The pieces tok_encode hands to BPE, and the matched added tokens, as end offsets into text (HF's
 * pre-tokenizer pieces after added-token extraction: they concatenate to the text). For tests and
 * debugging. *ends is malloc'd (free it). Invalid UTF-8 is refused as by tok_encode. */
int tok_pieces(const Tokenizer *t, const char *text, size_t len, size_t **ends, int *n, Err *e);

/* For tests and benchmarks: pieces of up to linear_max bytes merge by a linear scan, longer ones with
 * the heap (default 48; both give the same ids); cache false turns the word cache off. */
void tok_tune(Tokenizer *t, int linear_max, bool cache);

/* HF decode: ids without a token are dropped, special ones too with skip_special; bytes are
 * concatenated across tokens, then made valid UTF-8 (U+FFFD per maximal ill-formed subpart).
 * *out is malloc'd and NUL-terminated (free it), *len excludes the NUL. Returns -1 when out of memory. */
int tok_decode(const Tokenizer *t, const int32_t *ids, int n, bool skip_special, char **out, size_t *len);

/* Streaming decode (HF's DecodeStream, then a flush): push ids one at a time; a chunk is emitted
 * when the pending bytes decode to something that does not end in U+FFFD, so a chunk never splits a
 * character. The chunks, and then the flush, concatenate to tok_decode of all the ids. */
typedef struct TokStream {
    const Tokenizer *t;
    bool skip_special;
    char *pend;  /* pending raw bytes not yet emitted */
    size_t plen, pcap;
    char *chunk; /* the last chunk, valid until the next call */
    size_t ccap;
    bool eager;  /* emit all but a trailing incomplete character (see tok_stream_push); false: HF's rule */
} TokStream;
void tok_stream_init(TokStream *s, const Tokenizer *t, bool skip_special);
/* 1 with *chunk and *len set when id completes a chunk, 0 when it is held back, -1 when out of memory.
 * HF's rule holds everything while the text ends in U+FFFD, so a run of byte tokens that never forms a
 * character (random weights do that) shows nothing until it does. With s->eager (set after init), what
 * comes before a trailing incomplete character goes out at once: lossy decoding restarts at that
 * character whatever follows, so the chunks still concatenate to tok_decode of all the ids. */
int tok_stream_push(TokStream *s, int32_t id, const char **chunk, size_t *len);
/* what is still pending, lossy-decoded: 1 with *chunk and *len set, 0 when nothing was pending (*len 0),
 * -1 when out of memory; then the stream is empty again */
int tok_stream_flush(TokStream *s, const char **chunk, size_t *len);
void tok_stream_free(TokStream *s);

/* 0 when s[0, n) is valid UTF-8 (the encoder's rule: no surrogates, no overlongs, <= U+10FFFF), else
 * -1 with *bad the offset of the first byte of the first ill-formed sequence */
int utf8_validate(const char *s, size_t n, size_t *bad);

#endif
