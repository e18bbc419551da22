/* Encoding, decoding and streaming for the byte-level BPE tokenizers tok_load.c reads, step by step
 * as Hugging Face tokenizers 0.23.3 runs them (../shared/golden/tokenizers/SPEC.md): added tokens
 * (two passes, leftmost-longest), the hand-written BLOOM and GPT-2 splitters (no regex engine), the
 * byte alphabet, BPE by merge rank, the post-processor. Decoding is HF's: bytes concatenated across
 * tokens, then U+FFFD per maximal ill-formed subpart. Does not read files or validate options
 * (tok_load.c does), and keeps no state between calls except the word cache. */
#include "tok_internal.h"
#include "unicode.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the byte alphabet (GPT-2's bytes_to_unicode, SPEC.md 1.1 step 4) ---- */

uint32_t tok_byte_char(int b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    /* the other 68 bytes, in increasing order, become U+0100.. */
    if (b <= 0x20) return 0x100 + (uint32_t)b;
    if (b <= 0xA0) return 0x100 + 33 + (uint32_t)(b - 0x7F);
    return 0x143; /* 0xAD */
}

int tok_char_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp >= 0x100 && cp <= 0x120) return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142) return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143) return 0xAD;
    return -1;
}

/* ---- UTF-8 ---- */

/* the length (1-4) of the well-formed sequence at s[0, n), or 0 with *sub the length of the maximal
 * ill-formed subpart there (Unicode 16.0 section 3.9, what Rust's from_utf8_lossy replaces) */
static int u8_check(const unsigned char *s, size_t n, int *sub)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c == 0xE0) {
        need = 2, lo = 0xA0; /* no overlongs */
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        need = 2;
    } else if (c == 0xED) {
        need = 2, hi = 0x9F; /* no surrogates */
    } else if (c == 0xF0) {
        need = 3, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
        need = 3;
    } else if (c == 0xF4) {
        need = 3, hi = 0x8F; /* <= U+10FFFF */
    } else {
        *sub = 1;
        return 0;
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n || s[k] < lo || s[k] > hi) {
            *sub = k;
            return 0;
        }
        lo = 0x80, hi = 0xBF;
    }
    return need + 1;
}

int utf8_validate(const char *s, size_t n, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs eight bytes at a time: most text is mostly ASCII */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int sub, l = u8_check(u + i, n - i, &sub);
        if (!l) {
            if (bad) *bad = i;
            return -1;
        }
        i += (size_t)l;
    }
    return 0;
}

/* s[0, n) made valid: U+FFFD (EF BF BD) for each maximal ill-formed subpart. out holds >= 3n bytes. */
static size_t u8_lossy(const char *s, size_t n, char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        int sub, l = u8_check(u + i, n - i, &sub);
        if (l) {
            memcpy(out + k, u + i, (size_t)l);
            k += (size_t)l, i += (size_t)l;
        } else {
            memcpy(out + k, "\xEF\xBF\xBD", 3);
            k += 3, i += (size_t)sub;
        }
    }
    return k;
}

/* the code point at s (well-formed: the text was validated) and its length */
static inline uint32_t u8_decode(const unsigned char *s, size_t *len)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c < 0xE0) {
        *len = 2;
        return (c & 0x1Fu) << 6 | (s[1] & 0x3Fu);
    }
    if (c < 0xF0) {
        *len = 3;
        return (c & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
    }
    *len = 4;
    return (c & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
}

/* ---- loading, the accessors ---- */

/* the BMP's classes, looked up once from unicode.h's tables so that the splitters index a byte per
 * character; bit 2: in BLOOM's excluded set E = \s plus ( | ) . , ! ? … 。 ， 、 । ۔ ، (SPEC.md 1.2) */
#define TOK_CLS_MASK    3
#define TOK_CLS_BLOOM_E 4
static uint8_t *tok_bmp_classes(void)
{
    uint8_t *c = malloc(0x10000);
    if (!c) return NULL;
    for (uint32_t cp = 0; cp < 0x10000; cp++) c[cp] = (uint8_t)uni_class(cp);
    static const uint32_t extra[] = {'(',    '|',    ')',    '.',    ',',    '!',    '?',
                                     0x2026, 0x3002, 0xFF0C, 0x3001, 0x0964, 0x06D4, 0x060C};
    for (uint32_t cp = 0; cp < 0x10000; cp++)
        if ((c[cp] & TOK_CLS_MASK) == UNI_CLASS_SPACE) c[cp] |= TOK_CLS_BLOOM_E;
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) c[extra[i]] |= TOK_CLS_BLOOM_E;
    return c;
}

static bool tok_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tok_load(Tokenizer **out, const char *dir, Err *e)
{
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0) return err_set(e, "%s: no such directory (--tokenizer DIR)", dir);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return err_set(e, "%s: not a directory: --tokenizer takes the directory that holds tokenizer.json", dir);
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return err_set(e, "%s: out of memory", dir);
    atomic_flag_clear(&t->cache_busy);
    t->linear_max = 48;
    t->use_cache = true;
    char json[1100], vocab[1100];
    snprintf(json, sizeof json, "%s/tokenizer.json", dir);
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    int rc;
    /* a file is taken as a tokenizer.json (what HF's Tokenizer.from_file reads); in a directory,
     * tokenizer.json wins when both layouts are there, as in transformers */
    if (S_ISREG(st.st_mode)) {
        rc = tok_load_json(t, dir, e);
    } else if (tok_is_file(json)) {
        rc = tok_load_json(t, json, e);
    } else if (tok_is_file(vocab)) {
        rc = tok_load_hub(t, dir, e);
    } else {
        rc = err_set(e,
                     "%s: no tokenizer files (looked for tokenizer.json, and vocab.json + merges.txt); point "
                     "--tokenizer DIR at the directory that holds them",
                     dir);
    }
    if (!rc) {
        t->cache = calloc(TOK_CACHE_SLOTS, sizeof *t->cache);
        t->bmp = tok_bmp_classes();
        if (!t->cache || !t->bmp) rc = err_set(e, "%s: out of memory", dir);
    }
    if (rc) {
        tok_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void tok_free(Tokenizer *t)
{
    if (!t) return;
    free(t->dec_off);
    free(t->dec_len);
    free(t->flags);
    free(t->dec_pool);
    free(t->merges);
    free(t->added);
    free(t->added_pool);
    free(t->match[0].tok);
    free(t->match[1].tok);
    free(t->cache);
    free(t->bmp);
    free(t);
}

int tok_size(const Tokenizer *t) { return t->size; }
int tok_bos_id(const Tokenizer *t) { return t->npre ? t->pre[0] : -1; }
const char *tok_path(const Tokenizer *t) { return t->path; }
bool tok_is_special(const Tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->size && (t->flags[id] & TOK_F_SPECIAL);
}

void tok_tune(Tokenizer *t, int linear_max, bool cache)
{
    t->linear_max = linear_max;
    t->use_cache = cache;
}

/* ---- encoding ---- */

/* a queued merge: rank << 32 | position, so the lowest rank comes first, then the leftmost [TK
 * models/bpe/word.rs Merge::cmp]. A rank names one pair, which is how a stale entry is told apart. */
typedef uint64_t HeapEnt;

/* a symbol of a long piece: its id (-1 once merged into its left neighbour) and its neighbours, in
 * one 12-byte record so that a popped merge touches one cache line per symbol */
typedef struct {
    int32_t id, prv, nxt;
} Sym;

typedef struct {
    const Tokenizer *t;
    const char *text; /* the whole input, for piece offsets */
    int32_t *out;     /* (capacity: one id per byte, plus the template) */
    int n;
    TokCacheSlot *cache; /* NULL: another encode holds it, or it is off */
    /* tok_pieces: piece ends instead of ids */
    size_t *ends;
    int nends;
    /* BPE scratch, grown to the longest piece */
    int32_t *sym, *rank, *nid;
    Sym *list;
    HeapEnt *heap;
    size_t cap;
    bool oom;
} Enc;

static inline const TokMerge *merge_find(const Tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint64_t i = (key * 0x9E3779B97F4A7C15ull >> 32) & t->merge_mask;
    for (;;) {
        const TokMerge *m = &t->merges[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
        i = (i + 1) & t->merge_mask;
    }
}

static bool enc_reserve(Enc *x, size_t n)
{
    if (n <= x->cap) return true;
    size_t cap = x->cap ? x->cap : 64;
    while (cap < n) cap *= 2;
    int32_t **arr[3] = {&x->sym, &x->rank, &x->nid};
    for (int i = 0; i < 3; i++) {
        int32_t *g = realloc(*arr[i], cap * sizeof **arr[i]);
        if (!g) return false;
        *arr[i] = g;
    }
    Sym *l = realloc(x->list, cap * sizeof *l);
    if (!l) return false;
    x->list = l;
    /* each merge pops one entry and pushes at most two: at most 2m entries are queued */
    HeapEnt *h = realloc(x->heap, 2 * cap * sizeof *h);
    if (!h) return false;
    x->heap = h;
    x->cap = cap;
    return true;
}

/* a 4-ary min-heap: half the levels of a binary one, and the four children of a node share a cache
 * line, which is what a long piece's heap (hundreds of thousands of entries) waits on */
static inline void heap_down(HeapEnt *h, int n, int i, HeapEnt v)
{
    for (;;) {
        int c = 4 * i + 1;
        if (c >= n) break;
        int best = c, end = c + 4 < n ? c + 4 : n;
        for (int k = c + 1; k < end; k++)
            if (h[k] < h[best]) best = k;
        if (v <= h[best]) break;
        h[i] = h[best];
        i = best;
    }
    h[i] = v;
}

static inline void heap_push(HeapEnt *h, int *n, HeapEnt v)
{
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 4;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static inline HeapEnt heap_pop(HeapEnt *h, int *n)
{
    HeapEnt top = h[0];
    (*n)--;
    if (*n > 0) heap_down(h, *n, 0, h[*n]);
    return top;
}

/* BPE of m symbols by a linear scan per merge: for short pieces, where it beats a heap. The same
 * order as HF's queue: the lowest rank, the leftmost on ties. */
static int bpe_linear(const Tokenizer *t, int32_t *a, int32_t *r, int32_t *nw, int m)
{
    for (int i = 0; i + 1 < m; i++) {
        const TokMerge *g = merge_find(t, a[i], a[i + 1]);
        r[i] = g ? g->rank : INT32_MAX;
        nw[i] = g ? g->id : -1;
    }
    while (m > 1) {
        int best = -1;
        int32_t br = INT32_MAX;
        for (int i = 0; i + 1 < m; i++)
            if (r[i] < br) br = r[i], best = i;
        if (best < 0) break;
        a[best] = nw[best];
        memmove(a + best + 1, a + best + 2, (size_t)(m - best - 2) * sizeof *a);
        memmove(r + best + 1, r + best + 2, (size_t)(m - best - 3 > 0 ? m - best - 3 : 0) * sizeof *r);
        memmove(nw + best + 1, nw + best + 2, (size_t)(m - best - 3 > 0 ? m - best - 3 : 0) * sizeof *nw);
        m--;
        for (int i = best - 1; i <= best; i++) {
            if (i < 0 || i + 1 >= m) continue;
            const TokMerge *g = merge_find(t, a[i], a[i + 1]);
            r[i] = g ? g->rank : INT32_MAX;
            nw[i] = g ? g->id : -1;
        }
    }
    return m;
}

/* BPE of m symbols with a priority queue over a linked list, as HF's Word::merge_all does it
 * [TK models/bpe/word.rs]: O(m log m) however long the piece (a CJK run can be one BLOOM piece). */
static int bpe_heap(Enc *x, int m)
{
    const Tokenizer *t = x->t;
    int32_t *a = x->sym;
    Sym *y = x->list;
    HeapEnt *h = x->heap;
    int nh = 0;
    for (int i = 0; i < m; i++) y[i] = (Sym){a[i], i - 1, i + 1 < m ? i + 1 : -1};
    for (int i = 0; i + 1 < m; i++) {
        const TokMerge *g = merge_find(t, a[i], a[i + 1]);
        if (g) h[nh++] = (uint64_t)(uint32_t)g->rank << 32 | (uint32_t)i;
    }
    for (int i = (nh - 2) / 4; i >= 0 && nh > 1; i--) heap_down(h, nh, i, h[i]); /* heapify: O(m) */
    while (nh > 0) {
        HeapEnt top = heap_pop(h, &nh);
        /* the next merge's symbol is a random place in a long piece: start loading it now */
        if (nh) __builtin_prefetch(&y[(uint32_t)h[0]]);
        int pos = (int)(uint32_t)top, nx = y[pos].nxt;
        /* stale when the pair at pos has changed since it was queued: merged away, or now a pair of
         * another rank (HF compares the merged id, the same test) */
        if (y[pos].id < 0 || nx < 0) continue;
        const TokMerge *cur = merge_find(t, y[pos].id, y[nx].id);
        if (!cur || (uint64_t)(uint32_t)cur->rank != top >> 32) continue;
        int32_t id = cur->id;
        y[pos].id = id;
        y[nx].id = -1;
        int nn = y[nx].nxt, pp = y[pos].prv;
        y[pos].nxt = nn;
        if (nn >= 0) y[nn].prv = pos;
        if (pp >= 0) {
            const TokMerge *g = merge_find(t, y[pp].id, id);
            if (g) heap_push(h, &nh, (uint64_t)(uint32_t)g->rank << 32 | (uint32_t)pp);
        }
        if (nn >= 0) {
            const TokMerge *g = merge_find(t, id, y[nn].id);
            if (g) heap_push(h, &nh, (uint64_t)(uint32_t)g->rank << 32 | (uint32_t)pos);
        }
    }
    int k = 0;
    for (int i = 0; i >= 0; i = y[i].nxt) a[k++] = y[i].id;
    return k;
}

static inline uint32_t cache_hash(const unsigned char *s, size_t n)
{
    uint32_t h = 2166136261u ^ (uint32_t)n;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h ^ (h >> 15);
}

/* one pre-tokenizer piece: bytes -> byte-alphabet symbols -> BPE -> ids appended */
static void enc_bpe(Enc *x, const char *p, size_t n)
{
    const Tokenizer *t = x->t;
    const unsigned char *s = (const unsigned char *)p;
    TokCacheSlot *slot = NULL;
    uint32_t hash = 0;
    if (x->cache && n <= TOK_CACHE_KEY) {
        hash = cache_hash(s, n);
        slot = &x->cache[hash & (TOK_CACHE_SLOTS - 1)];
        if (slot->klen == n && slot->hash == hash && !memcmp(slot->key, s, n)) {
            memcpy(x->out + x->n, slot->ids, slot->nids * sizeof *slot->ids);
            x->n += slot->nids;
            return;
        }
    }
    if (!enc_reserve(x, n)) {
        x->oom = true;
        return;
    }
    int32_t *a = x->sym;
    int m = 0;
    bool last_unk = false;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[s[i]];
        if (id < 0) {
            /* no token for this byte: unk_token when there is one (fused if fuse_unk), else dropped,
             * as HF's BPE does [TK models/bpe/model.rs merge_word] */
            if (t->unk_id < 0 || (t->fuse_unk && last_unk)) continue;
            a[m++] = t->unk_id;
            last_unk = true;
            continue;
        }
        a[m++] = id;
        last_unk = false;
    }
    if (m > 1) m = m <= t->linear_max ? bpe_linear(t, a, x->rank, x->nid, m) : bpe_heap(x, m);
    memcpy(x->out + x->n, a, (size_t)m * sizeof *a);
    x->n += m;
    if (slot && m <= TOK_CACHE_IDS && n > 0) {
        slot->hash = hash;
        slot->klen = (uint8_t)n;
        slot->nids = (uint8_t)m;
        memcpy(slot->key, s, n);
        memcpy(slot->ids, a, (size_t)m * sizeof *a);
    }
}

static void enc_piece(Enc *x, const char *p, size_t n)
{
    if (x->ends) {
        x->ends[x->nends++] = (size_t)(p + n - x->text);
        return;
    }
    enc_bpe(x, p, n);
}

static void enc_split(Enc *x, int stage, const char *p, size_t n);

static inline int cls_of(const Tokenizer *t, uint32_t cp)
{
    return cp < 0x10000 ? t->bmp[cp] & TOK_CLS_MASK : (int)uni_class(cp);
}

static inline bool bloom_e(const Tokenizer *t, uint32_t cp)
{
    /* every member of E is in the BMP (White_Space has none above it) */
    return cp < 0x10000 && (t->bmp[cp] & TOK_CLS_BLOOM_E);
}

/* BLOOM's Split, Isolated: the matches of " ?[^E]+" and the gaps between them, each a piece
 * (SPEC.md 1.2: a space is glued to the word after it only; punctuation and whitespace runs are gaps) */
static void split_bloom(Enc *x, int stage, const char *p, size_t n)
{
    const Tokenizer *t = x->t;
    const unsigned char *s = (const unsigned char *)p;
    size_t gap = 0, i = 0, l, l2;
    while (i < n) {
        uint32_t cp = u8_decode(s + i, &l);
        size_t j;
        if (!bloom_e(t, cp)) {
            j = i + l;
        } else if (cp == ' ' && i + 1 < n && !bloom_e(t, u8_decode(s + i + 1, &l2))) {
            j = i + 1 + l2;
        } else {
            i += l;
            continue;
        }
        while (j < n && !bloom_e(t, u8_decode(s + j, &l))) j += l;
        if (gap < i) enc_split(x, stage + 1, p + gap, i - gap);
        enc_split(x, stage + 1, p + i, j - i);
        gap = i = j;
    }
    if (gap < n) enc_split(x, stage + 1, p + gap, n - gap);
}

/* GPT-2's ByteLevel regex 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+,
 * first matching alternative at each position (SPEC.md 1.3); every character matches one, so no gaps */
static void split_gpt2(Enc *x, int stage, const char *p, size_t n)
{
    const Tokenizer *t = x->t;
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, l;
    while (i < n) {
        size_t start = i;
        uint32_t cp = u8_decode(s + i, &l);
        if (cp == '\'' && i + 1 < n) { /* ASCII apostrophe, case-sensitive suffixes */
            unsigned char c1 = s[i + 1], c2 = i + 2 < n ? s[i + 2] : 0;
            size_t k = (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')                    ? 2
                       : ((c1 == 'r' || c1 == 'v') && c2 == 'e') || (c1 == 'l' && c2 == 'l') ? 3
                                                                                             : 0;
            if (k) {
                enc_split(x, stage + 1, p + i, k);
                i += k;
                continue;
            }
        }
        int cls = cls_of(t, cp);
        size_t j = i + l;
        if (cp == ' ' && j < n) { /* " ?" takes only U+0020, and only before a letter, number or other run */
            size_t l2;
            int c2 = cls_of(t, u8_decode(s + j, &l2));
            if (c2 != UNI_CLASS_SPACE) {
                cls = c2;
                j += l2;
            }
        }
        if (cls != UNI_CLASS_SPACE) {
            while (j < n && cls_of(t, u8_decode(s + j, &l)) == cls) j += l;
            enc_split(x, stage + 1, p + start, j - start);
            i = j;
            continue;
        }
        /* whitespace: the whole run at the end of the text; before a non-space, all but its last
         * character when it has two or more (\s+(?!\S) backtracks), else the one character */
        size_t last = start;
        while (j < n) {
            uint32_t c = u8_decode(s + j, &l);
            if (cls_of(t, c) != UNI_CLASS_SPACE) break;
            last = j;
            j += l;
        }
        size_t end = (j == n || last == start) ? j : last;
        enc_split(x, stage + 1, p + start, end - start);
        i = end;
    }
}

static void enc_split(Enc *x, int stage, const char *p, size_t n)
{
    const Tokenizer *t = x->t;
    if (stage == t->nsplit) {
        enc_piece(x, p, n);
    } else if (t->split[stage] == TOK_SPLIT_BLOOM) {
        split_bloom(x, stage, p, n);
    } else {
        split_gpt2(x, stage, p, n);
    }
}

/* added tokens, pass 0 (normalized:false) on the text, then pass 1 (normalized:true) in its gaps;
 * leftmost-longest, anywhere (no word boundaries) [TK tokenizer/added_vocabulary.rs] */
static void enc_added(Enc *x, int pass, const char *p, size_t n)
{
    const Tokenizer *t = x->t;
    const TokMatcher *m = &t->match[pass];
    if (!m->any) {
        if (pass == 0) {
            enc_added(x, 1, p, n);
        } else {
            enc_split(x, 0, p, n);
        }
        return;
    }
    const unsigned char *s = (const unsigned char *)p;
    size_t gap = 0, i = 0;
    while (i < n) {
        int k0 = m->start[s[i]], k1 = m->start[s[i] + 1];
        const TokAdded *hit = NULL;
        for (int k = k0; k < k1 && !hit; k++)
            if (m->tok[k]->len <= n - i && !memcmp(s + i, m->tok[k]->s, m->tok[k]->len)) hit = m->tok[k];
        if (!hit) {
            i++;
            continue;
        }
        if (gap < i) {
            if (pass == 0) {
                enc_added(x, 1, p + gap, i - gap);
            } else {
                enc_split(x, 0, p + gap, i - gap);
            }
        }
        if (x->ends) {
            x->ends[x->nends++] = (size_t)(p + i + hit->len - x->text);
        } else {
            x->out[x->n++] = hit->id;
        }
        i += hit->len;
        gap = i;
    }
    if (gap < n) {
        if (pass == 0) {
            enc_added(x, 1, p + gap, n - gap);
        } else {
            enc_split(x, 0, p + gap, n - gap);
        }
    }
}

static void enc_free(Enc *x)
{
    free(x->sym);
    free(x->rank);
    free(x->nid);
    free(x->list);
    free(x->heap);
}

static int enc_check_text(const char *text, size_t len, Err *e)
{
    size_t bad;
    if (utf8_validate(text, len, &bad))
        return err_set(e, "the text is not valid UTF-8: byte offset %zu (0x%02x); the tokenizer takes UTF-8 only", bad,
                       (unsigned char)text[bad]);
    if (len >= (size_t)INT_MAX - 2 * TOK_MAX_TEMPLATE)
        return err_set(e, "the text is too long (%zu bytes; at most %d)", len, INT_MAX - 2 * TOK_MAX_TEMPLATE - 1);
    return 0;
}

int tok_encode(const Tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids, int *n, Err *e)
{
    *ids = NULL;
    *n = 0;
    if (enc_check_text(text, len, e)) return -1;
    Enc x = {.t = t, .text = text};
    /* each byte gives at most one id, so the output never grows */
    x.out = malloc((len + 2 * TOK_MAX_TEMPLATE + 1) * sizeof *x.out);
    if (!x.out) return err_set(e, "out of memory encoding %zu bytes", len);
    if (add_special) {
        memcpy(x.out, t->pre, (size_t)t->npre * sizeof *t->pre);
        x.n = t->npre;
    }
    /* the cache is shared by the tokenizer's users; an encode that finds it taken runs without it */
    Tokenizer *mt = (Tokenizer *)t;
    bool held = t->use_cache && !atomic_flag_test_and_set(&mt->cache_busy);
    x.cache = held ? t->cache : NULL;
    enc_added(&x, 0, text, len);
    if (held) atomic_flag_clear(&mt->cache_busy);
    enc_free(&x);
    if (x.oom) {
        free(x.out);
        return err_set(e, "out of memory encoding %zu bytes", len);
    }
    if (add_special) {
        memcpy(x.out + x.n, t->post, (size_t)t->npost * sizeof *t->post);
        x.n += t->npost;
    }
    int32_t *shrunk = realloc(x.out, ((size_t)x.n + 1) * sizeof *x.out);
    *ids = shrunk ? shrunk : x.out;
    *n = x.n;
    return 0;
}

int tok_pieces(const Tokenizer *t, const char *text, size_t len, size_t **ends, int *n, Err *e)
{
    *ends = NULL;
    *n = 0;
    if (enc_check_text(text, len, e)) return -1;
    Enc x = {.t = t, .text = text};
    x.ends = malloc((len + 1) * sizeof *x.ends);
    if (!x.ends) return err_set(e, "out of memory");
    enc_added(&x, 0, text, len);
    *ends = x.ends;
    *n = x.nends;
    return 0;
}

/* ---- decoding ---- */

static inline bool dec_keep(const Tokenizer *t, int32_t id, bool skip_special)
{
    return id >= 0 && id < t->size && (t->flags[id] & TOK_F_HAS) && !(skip_special && (t->flags[id] & TOK_F_SPECIAL));
}

int tok_decode(const Tokenizer *t, const int32_t *ids, int n, bool skip_special, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    size_t raw = 0;
    for (int i = 0; i < n; i++)
        if (dec_keep(t, ids[i], skip_special)) raw += t->dec_len[ids[i]];
    char *bytes = malloc(raw + 1), *text = malloc(3 * raw + 1);
    if (!bytes || !text) {
        free(bytes);
        free(text);
        return -1;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (!dec_keep(t, ids[i], skip_special)) continue;
        memcpy(bytes + k, t->dec_pool + t->dec_off[ids[i]], t->dec_len[ids[i]]);
        k += t->dec_len[ids[i]];
    }
    /* concatenated first, then made valid: an emoji split over three tokens is one character */
    k = u8_lossy(bytes, raw, text);
    free(bytes);
    text[k] = 0;
    char *shrunk = realloc(text, k + 1);
    *out = shrunk ? shrunk : text;
    *len = k;
    return 0;
}

/* ---- streaming ---- */

void tok_stream_init(TokStream *s, const Tokenizer *t, bool skip_special)
{
    memset(s, 0, sizeof *s);
    s->t = t;
    s->skip_special = skip_special;
}

/* s->chunk = the pending bytes made valid; *len its length */
static int stream_lossy(TokStream *s, size_t *len)
{
    size_t need = 3 * s->plen + 1;
    if (need > s->ccap) {
        char *g = realloc(s->chunk, need);
        if (!g) return -1;
        s->chunk = g;
        s->ccap = need;
    }
    *len = u8_lossy(s->pend, s->plen, s->chunk);
    s->chunk[*len] = 0;
    return 0;
}

/* the length of the trailing bytes of p[0, n) that are a valid but incomplete UTF-8 sequence (0: none):
 * what a later token may still complete. Second bytes as Unicode's table 3-7 allows them. */
static size_t stream_tail(const char *p, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const unsigned char *c = (const unsigned char *)p + n - back;
        if ((c[0] & 0xC0) == 0x80) continue; /* a continuation byte: look further back for the lead */
        size_t need = c[0] >= 0xC2 && c[0] <= 0xDF ? 2 : c[0] >= 0xE0 && c[0] <= 0xEF ? 3
                      : c[0] >= 0xF0 && c[0] <= 0xF4 ? 4 : 0;
        if (need <= back) return 0; /* ASCII, an invalid lead, or already complete */
        if (back >= 2) {
            unsigned lo = c[0] == 0xE0 ? 0xA0 : c[0] == 0xF0 ? 0x90 : 0x80;
            unsigned hi = c[0] == 0xED ? 0x9F : c[0] == 0xF4 ? 0x8F : 0xBF;
            if (c[1] < lo || c[1] > hi) return 0; /* ill-formed already: lossy decoding settles it now */
        }
        return back;
    }
    return 0;
}

int tok_stream_push(TokStream *s, int32_t id, const char **chunk, size_t *len)
{
    *chunk = NULL;
    *len = 0;
    const Tokenizer *t = s->t;
    if (!dec_keep(t, id, s->skip_special)) return 0;
    uint32_t l = t->dec_len[id];
    if (l == 0) return 0; /* a token of no bytes (an empty added token) changes nothing the last push left */
    if (s->plen + l > s->pcap) {
        size_t cap = s->pcap ? s->pcap * 2 : 64;
        while (cap < s->plen + l) cap *= 2;
        char *g = realloc(s->pend, cap);
        if (!g) return -1;
        s->pend = g;
        s->pcap = cap;
    }
    memcpy(s->pend + s->plen, t->dec_pool + t->dec_off[id], l);
    s->plen += l;
    size_t k;
    if (s->eager) {
        size_t keep = stream_tail(s->pend, s->plen), ready = s->plen - keep;
        if (ready == 0) return 0;
        s->plen = ready;
        int rc = stream_lossy(s, &k);
        memmove(s->pend, s->pend + ready, keep);
        s->plen = keep;
        if (rc) return -1;
        *chunk = s->chunk;
        *len = k;
        return 1;
    }
    /* HF's DecodeStream emits only when the text does not end in U+FFFD: an incomplete character may
     * still be completed by the next token (a genuine U+FFFD at the end waits too) */
    if (!s->plen || stream_lossy(s, &k)) return s->plen ? -1 : 0;
    if (k >= 3 && !memcmp(s->chunk + k - 3, "\xEF\xBF\xBD", 3)) return 0;
    s->plen = 0;
    *chunk = s->chunk;
    *len = k;
    return 1;
}

int tok_stream_flush(TokStream *s, const char **chunk, size_t *len)
{
    *chunk = "";
    *len = 0;
    if (!s->plen) return 0;
    size_t k;
    if (stream_lossy(s, &k)) return -1;
    s->plen = 0;
    *chunk = s->chunk;
    *len = k;
    return 1;
}

void tok_stream_free(TokStream *s)
{
    free(s->pend);
    free(s->chunk);
    memset(s, 0, sizeof *s);
}
