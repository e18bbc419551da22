/* The insides of a Tokenizer, shared by tok_load.c (reading and validating the files) and
 * tokenizer.c (encode, decode, streaming). Private to runtime/text/: everything else goes through
 * tokenizer.h. */
#ifndef PP8_TOK_INTERNAL_H
#define PP8_TOK_INTERNAL_H

#include "tokenizer.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the pre-tokenizer steps pp8 implements by hand (SPEC.md 1.2, 1.3); no regex engine */
typedef enum {
    TOK_SPLIT_BLOOM, /* Split{Regex " ?[^(\s|[.,!?…。，、।۔،])]+", Isolated}: matches and the gaps between them */
    TOK_SPLIT_GPT2, /* ByteLevel{use_regex: true}: GPT-2's 's|'t|…| ?\p{L}+| ?\p{N}+|…|\s+(?!\S)|\s+ */
} TokSplit;
#define TOK_MAX_SPLITS   4
#define TOK_MAX_TEMPLATE 16 /* ids a post-processor may put around a sequence */

/* (left id, right id) -> (rank, merged id); open addressing, key UINT64_MAX = empty */
typedef struct {
    uint64_t key; /* (uint64_t)left << 32 | right */
    int32_t rank, id;
} TokMerge;

typedef struct {
    const char *s; /* content (UTF-8; into Tokenizer.added_pool) */
    uint32_t len;
    int32_t id;
    bool special;    /* skip_special drops it; pp8 tokenize --no-special still matches it */
    bool normalized; /* HF matches normalized:false tokens first, then normalized:true ones in the gaps */
} TokAdded;

/* one of HF's two added-token passes: tokens by first byte, longest first (leftmost-longest) */
typedef struct {
    const TokAdded **tok; /* (n) sorted by (first byte, length descending) */
    int n;
    int start[257]; /* tok[start[b] .. start[b+1]) begin with byte b */
    bool any;
} TokMatcher;

/* the word cache: a piece's ids by its bytes (HF's BPE cache does the same). Direct-mapped; a slot
 * is one cache line. Pieces longer than the key or with more ids than fit are not cached. */
#define TOK_CACHE_SLOTS 16384
#define TOK_CACHE_KEY   26
#define TOK_CACHE_IDS   8
typedef struct {
    uint32_t hash;
    uint8_t klen; /* 0 = empty */
    uint8_t nids;
    char key[TOK_CACHE_KEY];
    int32_t ids[TOK_CACHE_IDS];
} TokCacheSlot;

#define TOK_F_HAS     1 /* the id has a token */
#define TOK_F_SPECIAL 2 /* its content is a special added token */

struct Tokenizer {
    char path[1200]; /* the file it came from */
    int size;        /* one past the largest id with a token */

    /* decoding: the bytes of each id (ByteLevel decoder rule applied), V = size */
    uint32_t *dec_off; /* (V) into dec_pool */
    uint32_t *dec_len; /* (V) */
    uint8_t *flags;    /* (V) TOK_F_* */
    char *dec_pool;

    /* BPE */
    int32_t byte_id[256]; /* id of the one-character token of each byte, -1 when the vocab lacks it */
    int32_t unk_id;       /* model.unk_token's id, or -1: a byte without a token is then dropped */
    bool fuse_unk;
    TokMerge *merges; /* (merge_mask + 1) */
    uint64_t merge_mask;
    int nmerges;

    /* added tokens, matched before the pre-tokenizer */
    TokAdded *added; /* (nadded) */
    int nadded;
    char *added_pool;
    TokMatcher match[2]; /* [0] normalized:false (on the raw text), [1] normalized:true (in the gaps) */

    TokSplit split[TOK_MAX_SPLITS]; /* applied in order, each to the pieces of the one before */
    int nsplit;

    /* post-processor (add_special): ids before and after the sequence */
    int32_t pre[TOK_MAX_TEMPLATE], post[TOK_MAX_TEMPLATE];
    int npre, npost;

    uint8_t *bmp; /* (0x10000) class of each BMP code point (UniClass | TOK_CLS_BLOOM_E), from unicode.h */

    int linear_max; /* pieces up to this many bytes merge by linear scan, longer ones with the heap */
    bool use_cache;
    TokCacheSlot *cache;    /* (TOK_CACHE_SLOTS) */
    atomic_flag cache_busy; /* an encode holding the cache; a concurrent one runs without it */
};

/* GPT-2's bytes_to_unicode: byte -> code point of its character in the vocab alphabet */
uint32_t tok_byte_char(int byte);
/* the inverse: code point -> byte, or -1 for a character outside the 256-character alphabet */
int tok_char_byte(uint32_t cp);

/* fills merge/match/decode tables from what tok_load.c gathered; in tok_load.c */
int tok_load_json(Tokenizer *t, const char *path, Err *e);
int tok_load_hub(Tokenizer *t, const char *dir, Err *e);

#endif
