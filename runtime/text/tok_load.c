/* Reading a byte-level BPE tokenizer: tokenizer.json (BLOOM's Split + ByteLevel, GPT-2's ByteLevel,
 * ByteLevel or TemplateProcessing post-processor) or the GPT-2 hub layout (vocab.json + merges.txt +
 * tokenizer_config.json + special_tokens_map.json, as transformers' GPT2Converter builds it), into the
 * tables of tok_internal.h. Every option that would change ids or text and that pp8 does not implement
 * is refused naming the file and field (SPEC.md 1.4, pitfall 14); nothing is guessed. Does not encode
 * or decode (tokenizer.c). */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../util/file.h"

#define TOK_MAX_ID (1 << 24) /* ids index per-id tables; real vocabularies stay far below */

/* ---- files ---- */

static bool tok_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- token string -> id, for resolving merges and added tokens while loading ---- */

typedef struct {
    const char *s; /* not owned: into the JSON tree or a file buffer, alive while loading */
    uint32_t len, hash;
    int32_t id; /* -1 = empty slot */
} StrEnt;

typedef struct {
    StrEnt *e;
    size_t mask, n;
} StrMap;

static uint64_t tok_load_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    h ^= h >> 32; /* FNV's low bits mix poorly; fold the high ones in before masking */
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static int strmap_init(StrMap *m, size_t want)
{
    size_t cap = 64;
    while (cap < want * 2) cap *= 2;
    m->e = malloc(cap * sizeof *m->e);
    if (!m->e) return -1;
    for (size_t i = 0; i < cap; i++) m->e[i].id = -1;
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

/* the slot of s: its entry, or the empty slot where it goes (with hash set for the caller) */
static StrEnt *strmap_slot(const StrMap *m, const char *s, size_t len)
{
    uint32_t h = (uint32_t)(tok_load_hash(s, len) >> 32);
    size_t i = h & m->mask;
    while (m->e[i].id >= 0 && !(m->e[i].hash == h && m->e[i].len == len && !memcmp(m->e[i].s, s, len)))
        i = (i + 1) & m->mask;
    m->e[i].hash = h;
    return &m->e[i];
}

static int32_t strmap_get(const StrMap *m, const char *s, size_t len) { return strmap_slot(m, s, len)->id; }

/* ---- the tables being built ---- */

typedef struct {
    const char *s; /* token string (UTF-8 of byte-alphabet characters, for vocab entries) */
    uint32_t len;
    int32_t id;
} VocabEnt;

typedef struct {
    const char *s;
    size_t len;
    int32_t id; /* -1: hub layout, resolve through the vocab or append */
    bool special, normalized;
} AddedIn;

typedef struct {
    Tokenizer *t;
    const char *vocab_file; /* for messages */
    VocabEnt *vocab;
    int nvocab;
    StrMap map;
    AddedIn *added;
    int nadded, cap_added;
} Build;

static void build_free(Build *b)
{
    free(b->vocab);
    free(b->map.e);
    free(b->added);
}

static int build_add_added(Build *b, const char *s, size_t len, int32_t id, bool special, bool normalized)
{
    if (b->nadded == b->cap_added) {
        int cap = b->cap_added ? b->cap_added * 2 : 16;
        AddedIn *g = realloc(b->added, (size_t)cap * sizeof *g);
        if (!g) return -1;
        b->added = g;
        b->cap_added = cap;
    }
    b->added[b->nadded++] = (AddedIn){s, len, id, special, normalized};
    return 0;
}

/* the vocab: keys of a JSON object with integer values (tokenizer.json's model.vocab, vocab.json) */
static int build_vocab(Build *b, const cJSON *obj, const char *file, const char *field, Err *e)
{
    b->vocab_file = file;
    if (!cJSON_IsObject(obj)) return err_set(e, "%s: %s must be an object of token -> id", file, field);
    int n = cJSON_GetArraySize(obj);
    b->vocab = malloc(((size_t)n + 1) * sizeof *b->vocab);
    if (!b->vocab || strmap_init(&b->map, (size_t)n + 1)) return err_set(e, "%s: out of memory", file);
    /* ids index the decode table, so a repeated one would make decoding depend on which came last */
    int32_t maxid = -1;
    for (const cJSON *it = obj->child; it; it = it->next) {
        double d = it->valuedouble;
        /* the range first: casting a double outside long long's range is undefined */
        if (!cJSON_IsNumber(it) || !(d >= 0 && d < TOK_MAX_ID) || d != (double)(long long)d)
            return err_set(e, "%s: %s[\"%.60s\"] must be an integer id in [0, %d)", file, field, it->string,
                           TOK_MAX_ID);
        size_t len = strlen(it->string);
        StrEnt *slot = strmap_slot(&b->map, it->string, len);
        if (slot->id >= 0) return err_set(e, "%s: %s has the token \"%.60s\" twice", file, field, it->string);
        *slot = (StrEnt){it->string, (uint32_t)len, slot->hash, (int32_t)d};
        b->vocab[b->nvocab++] = (VocabEnt){it->string, (uint32_t)len, (int32_t)d};
        if ((int32_t)d > maxid) maxid = (int32_t)d;
    }
    if (b->nvocab == 0) return err_set(e, "%s: %s is empty", file, field);
    char *seen = calloc((size_t)maxid + 1, 1);
    if (!seen) return err_set(e, "%s: out of memory", file);
    for (int i = 0; i < b->nvocab; i++) {
        if (seen[b->vocab[i].id]) {
            const char *other = "";
            for (int j = 0; j < i; j++)
                if (b->vocab[j].id == b->vocab[i].id) other = b->vocab[j].s;
            err_set(e, "%s: %s gives id %d to both \"%.60s\" and \"%.60s\"", file, field, b->vocab[i].id, other,
                    b->vocab[i].s);
            free(seen);
            return -1;
        }
        seen[b->vocab[i].id] = 1;
    }
    free(seen);
    return 0;
}

static int build_merges_init(Build *b, int n, Err *e)
{
    Tokenizer *t = b->t;
    size_t cap = 64;
    while (cap < (size_t)n * 2 + 2) cap *= 2;
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges) return err_set(e, "%s: out of memory", t->path);
    for (size_t i = 0; i < cap; i++) t->merges[i].key = UINT64_MAX;
    t->merge_mask = cap - 1;
    return 0;
}

/* where a merge is, for messages: "FILE: model.merges[17]" (tokenizer.json) or "FILE line 18" (merges.txt);
 * formatted only when something is wrong */
typedef struct {
    const char *file;
    bool txt;
    int index;
} MergeAt;

static const char *merge_at(const MergeAt *at, char *buf, size_t cap)
{
    if (at->txt) {
        snprintf(buf, cap, "%s line %d", at->file, at->index);
    } else {
        snprintf(buf, cap, "%s: model.merges[%d]", at->file, at->index);
    }
    return buf;
}

/* merge number rank: "a" + "b" */
static int build_merge(Build *b, const char *a, size_t alen, const char *c, size_t clen, int rank, const MergeAt *at,
                       Err *e)
{
    Tokenizer *t = b->t;
    char where[1300];
    int32_t ia = strmap_get(&b->map, a, alen), ic = strmap_get(&b->map, c, clen);
    if (ia < 0 || ic < 0)
        return err_set(e, "%s \"%.*s %.*s\": token \"%.*s\" is not in the vocab (%s)",
                       merge_at(at, where, sizeof where), (int)alen, a, (int)clen, c, ia < 0 ? (int)alen : (int)clen,
                       ia < 0 ? a : c, b->vocab_file);
    char buf[512];
    if (alen + clen > sizeof buf)
        return err_set(e, "%s: merged token longer than %zu bytes", merge_at(at, where, sizeof where), sizeof buf);
    memcpy(buf, a, alen);
    memcpy(buf + alen, c, clen);
    int32_t im = strmap_get(&b->map, buf, alen + clen);
    if (im < 0)
        return err_set(e, "%s \"%.*s %.*s\": the merged token \"%.*s\" is not in the vocab (%s)",
                       merge_at(at, where, sizeof where), (int)alen, a, (int)clen, c, (int)(alen + clen), buf,
                       b->vocab_file);
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ic;
    uint64_t i = (key * 0x9E3779B97F4A7C15ull >> 32) & t->merge_mask;
    while (t->merges[i].key != UINT64_MAX && t->merges[i].key != key) i = (i + 1) & t->merge_mask;
    if (t->merges[i].key == UINT64_MAX) t->nmerges++;
    /* a repeated pair keeps its later rank, as HF's HashMap insert and GPT-2's dict do (SPEC.md 1.1) */
    t->merges[i] = (TokMerge){key, rank, im};
    return 0;
}

/* one "a b" merge line (tokenizer.json's 2022 form, merges.txt) */
static int build_merge_line(Build *b, const char *s, size_t len, int rank, const MergeAt *at, Err *e)
{
    const char *sp = memchr(s, ' ', len);
    char where[1300];
    if (!sp || sp == s || sp + 1 == s + len || memchr(sp + 1, ' ', (size_t)(s + len - sp - 1)))
        return err_set(e, "%s \"%.*s\": a merge is two tokens separated by one space",
                       merge_at(at, where, sizeof where), (int)(len > 60 ? 60 : len), s);
    return build_merge(b, s, (size_t)(sp - s), sp + 1, (size_t)(s + len - sp - 1), rank, at, e);
}

/* ---- the decode, special and matcher tables, from the vocab and the added tokens ---- */

static int cmp_added(const void *pa, const void *pb)
{
    const TokAdded *a = *(const TokAdded *const *)pa, *b = *(const TokAdded *const *)pb;
    if ((unsigned char)a->s[0] != (unsigned char)b->s[0]) return (unsigned char)a->s[0] - (unsigned char)b->s[0];
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return memcmp(a->s, b->s, a->len);
}

static int build_matcher(TokMatcher *m, const Tokenizer *t, bool normalized)
{
    m->tok = malloc(((size_t)t->nadded + 1) * sizeof *m->tok);
    if (!m->tok) return -1;
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].normalized == normalized && t->added[i].len > 0) m->tok[m->n++] = &t->added[i];
    qsort(m->tok, (size_t)m->n, sizeof *m->tok, cmp_added);
    int k = 0;
    for (int c = 0; c < 256; c++) {
        m->start[c] = k;
        while (k < m->n && (unsigned char)m->tok[k]->s[0] == c) k++;
    }
    m->start[256] = k;
    m->any = m->n > 0;
    return 0;
}

/* the ByteLevel decoder's rule: a token whose characters are all in the byte alphabet becomes those
 * bytes, any other (an added token such as "<pad>" is in the alphabet too) its own UTF-8 bytes
 * [TK pre_tokenizers/byte_level.rs decode_chain] */
static size_t tok_token_bytes(const char *s, size_t len, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t l;
        if (c < 0x80) {
            cp = c, l = 1;
        } else if (c < 0xE0 && i + 1 < len) {
            cp = (uint32_t)(c & 0x1F) << 6 | (s[i + 1] & 0x3F), l = 2;
        } else {
            cp = 0x110000, l = 1; /* 3- and 4-byte characters are never in the alphabet */
        }
        int byte = cp < 0x110000 ? tok_char_byte(cp) : -1;
        if (byte < 0) {
            memcpy(out, s, len);
            return len;
        }
        out[k++] = (char)byte;
        i += l;
    }
    return k;
}

static int build_finish(Build *b, Err *e)
{
    Tokenizer *t = b->t;
    /* added tokens: ids for the hub layout's (vocab id, else appended after the largest id, in the
     * order transformers adds them), then the tables */
    int32_t maxid = -1;
    for (int i = 0; i < b->nvocab; i++)
        if (b->vocab[i].id > maxid) maxid = b->vocab[i].id;
    for (int i = 0; i < b->nadded; i++)
        if (b->added[i].id > maxid) maxid = b->added[i].id;
    size_t pool = 0;
    for (int i = 0; i < b->nadded; i++) {
        AddedIn *a = &b->added[i];
        if (a->id < 0) a->id = strmap_get(&b->map, a->s, a->len);
        if (a->id < 0) a->id = ++maxid;
        if (a->id >= TOK_MAX_ID) return err_set(e, "%s: added token id %d too large", t->path, a->id);
        pool += a->len + 1;
    }
    t->size = maxid + 1;
    t->added = calloc((size_t)b->nadded + 1, sizeof *t->added);
    t->added_pool = malloc(pool + 1);
    if (!t->added || !t->added_pool) return err_set(e, "%s: out of memory", t->path);
    char *p = t->added_pool;
    for (int i = 0; i < b->nadded; i++) {
        const AddedIn *a = &b->added[i];
        memcpy(p, a->s, a->len);
        p[a->len] = 0;
        t->added[t->nadded++] = (TokAdded){p, (uint32_t)a->len, a->id, a->special, a->normalized};
        p += a->len + 1;
    }
    if (build_matcher(&t->match[0], t, false) || build_matcher(&t->match[1], t, true))
        return err_set(e, "%s: out of memory", t->path);

    /* decode table: an id's token is its added token's content first, then the vocab's [TK tokenizer/mod.rs decode] */
    size_t V = (size_t)t->size;
    t->dec_off = calloc(V, sizeof *t->dec_off);
    t->dec_len = calloc(V, sizeof *t->dec_len);
    t->flags = calloc(V, 1);
    const char **content = calloc(V, sizeof *content);
    uint32_t *clen = calloc(V, sizeof *clen);
    if (!t->dec_off || !t->dec_len || !t->flags || !content || !clen) {
        free(content);
        free(clen);
        return err_set(e, "%s: out of memory", t->path);
    }
    for (int i = 0; i < b->nvocab; i++) content[b->vocab[i].id] = b->vocab[i].s, clen[b->vocab[i].id] = b->vocab[i].len;
    for (int i = 0; i < t->nadded; i++) content[t->added[i].id] = t->added[i].s, clen[t->added[i].id] = t->added[i].len;
    size_t total = 0;
    for (size_t id = 0; id < V; id++) total += content[id] ? clen[id] : 0;
    t->dec_pool = malloc(total + 1);
    if (!t->dec_pool) {
        free(content);
        free(clen);
        return err_set(e, "%s: out of memory", t->path);
    }
    size_t off = 0;
    for (size_t id = 0; id < V; id++) {
        if (!content[id]) continue;
        t->flags[id] |= TOK_F_HAS;
        t->dec_off[id] = (uint32_t)off;
        t->dec_len[id] = (uint32_t)tok_token_bytes(content[id], clen[id], t->dec_pool + off);
        off += t->dec_len[id];
    }
    /* skip_special drops every id whose token content is a special added token's [TK is_special_token] */
    for (int i = 0; i < t->nadded; i++) {
        const TokAdded *a = &t->added[i];
        if (!a->special) continue;
        t->flags[a->id] |= TOK_F_SPECIAL;
        int32_t v = strmap_get(&b->map, a->s, a->len);
        if (v >= 0 && clen[v] == a->len && !memcmp(content[v], a->s, a->len)) t->flags[v] |= TOK_F_SPECIAL;
    }
    free(content);
    free(clen);

    /* the initial BPE symbols: one per byte, the vocab's id of that byte's character */
    for (int c = 0; c < 256; c++) {
        char u[3];
        uint32_t cp = tok_byte_char(c);
        size_t l;
        if (cp < 0x80) {
            u[0] = (char)cp, l = 1;
        } else {
            u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), l = 2;
        }
        t->byte_id[c] = strmap_get(&b->map, u, l);
    }
    return 0;
}

/* ---- JSON helpers with messages naming the field ---- */

static bool json_absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

static int json_false_or_absent(const cJSON *obj, const char *key, const char *path, const char *field, const char *why,
                                Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (json_absent(v) || cJSON_IsFalse(v)) return 0;
    return err_set(e, "%s: %s.%s is %s: %s", path, field, key, cJSON_IsTrue(v) ? "true" : "not false", why);
}

static const char *json_type_name(const cJSON *obj)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

/* ---- tokenizer.json ---- */

/* SPEC.md 1.2: BLOOM's pattern, byte for byte (the nested class also excludes ( | ) ) */
static const char BLOOM_SPLIT_REGEX[] = " ?[^(\\s|[.,!?\xE2\x80\xA6\xE3\x80\x82\xEF\xBC\x8C\xE3\x80\x81\xE0\xA5\xA4"
                                        "\xDB\x94\xD8\x8C])]+";

static int json_bytelevel_common(const cJSON *o, const char *path, const char *field, Err *e)
{
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space");
    if (cJSON_IsTrue(aps))
        return err_set(e,
                       "%s: %s.add_prefix_space is true: pp8 does not implement the prefix space (BLOOM and "
                       "GPT-2/OPT have false)",
                       path, field);
    return 0;
}

static int json_pre_one(Tokenizer *t, const cJSON *o, bool last, const char *field, Err *e)
{
    const char *path = t->path;
    const char *ty = json_type_name(o);
    if (!ty) return err_set(e, "%s: %s.type is missing", path, field);
    if (!strcmp(ty, "ByteLevel")) {
        if (!last)
            return err_set(e,
                           "%s: %s: ByteLevel must be the last pre-tokenizer (a split after it would see the byte "
                           "alphabet; pp8 does not implement that)",
                           path, field);
        if (json_bytelevel_common(o, path, field, e)) return -1;
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(o, "use_regex");
        if (!json_absent(ur) && !cJSON_IsBool(ur))
            return err_set(e, "%s: %s.use_regex must be true or false", path, field);
        /* HF's default use_regex is true */
        if (!cJSON_IsFalse(ur)) {
            if (t->nsplit == TOK_MAX_SPLITS) return err_set(e, "%s: %s: too many pre-tokenizers", path, field);
            t->split[t->nsplit++] = TOK_SPLIT_GPT2;
        }
        return 1; /* the byte-level mapping is there */
    }
    if (!strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        if (!cJSON_IsString(re))
            return err_set(e, "%s: %s.pattern: only BLOOM's {\"Regex\": \"%s\"} is supported (found %s)", path, field,
                           BLOOM_SPLIT_REGEX,
                           cJSON_GetObjectItemCaseSensitive(pat, "String") ? "a String pattern" : "no Regex");
        if (strcmp(re->valuestring, BLOOM_SPLIT_REGEX))
            return err_set(e,
                           "%s: %s.pattern.Regex \"%.100s\" is not supported: pp8 splits by hand, and knows only "
                           "BLOOM's \"%s\" (no regex engine)",
                           path, field, re->valuestring, BLOOM_SPLIT_REGEX);
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(o, "behavior");
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated"))
            return err_set(e, "%s: %s.behavior must be \"Isolated\" (found %s)", path, field,
                           cJSON_IsString(beh) ? beh->valuestring : "none");
        if (json_false_or_absent(o, "invert", path, field, "pp8 does not implement inverted splits", e)) return -1;
        if (t->nsplit == TOK_MAX_SPLITS) return err_set(e, "%s: %s: too many pre-tokenizers", path, field);
        t->split[t->nsplit++] = TOK_SPLIT_BLOOM;
        return 0;
    }
    return err_set(e, "%s: %s.type \"%s\" is not supported: pp8 implements ByteLevel and BLOOM's Split only", path,
                   field, ty);
}

static int json_pre_tokenizer(Tokenizer *t, const cJSON *root, Err *e)
{
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (json_absent(pt))
        return err_set(e, "%s: pre_tokenizer is null: pp8 needs the ByteLevel pre-tokenizer (byte-level BPE)", t->path);
    const char *ty = json_type_name(pt);
    int bytelevel = 0;
    if (ty && !strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
        if (!cJSON_IsArray(list)) return err_set(e, "%s: pre_tokenizer.pretokenizers must be a list", t->path);
        int n = cJSON_GetArraySize(list), i = 0;
        for (const cJSON *it = list->child; it; it = it->next, i++) {
            char field[64];
            snprintf(field, sizeof field, "pre_tokenizer.pretokenizers[%d]", i);
            int r = json_pre_one(t, it, i == n - 1, field, e);
            if (r < 0) return -1;
            bytelevel |= r;
        }
    } else {
        int r = json_pre_one(t, pt, true, "pre_tokenizer", e);
        if (r < 0) return -1;
        bytelevel = r;
    }
    if (!bytelevel)
        return err_set(e, "%s: pre_tokenizer has no ByteLevel step: pp8 implements byte-level BPE only", t->path);
    return 0;
}

/* TemplateProcessing's single template: SpecialToken items before and after one Sequence A */
static int json_template(Tokenizer *t, const cJSON *pp, const char *field, Err *e)
{
    const char *path = t->path;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    if (!cJSON_IsArray(single)) return err_set(e, "%s: %s.single must be a list", path, field);
    bool seen_a = false;
    int i = 0;
    for (const cJSON *it = single->child; it; it = it->next, i++) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (seq) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(seq, "id");
            if (!cJSON_IsString(id) || strcmp(id->valuestring, "A") || seen_a)
                return err_set(e, "%s: %s.single[%d]: the single template must hold Sequence A once", path, field, i);
            seen_a = true;
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsString(name))
            return err_set(e, "%s: %s.single[%d] must be a SpecialToken or a Sequence", path, field, i);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
        if (!cJSON_IsArray(ids))
            return err_set(e, "%s: %s.special_tokens has no \"%s\" with a list of ids", path, field, name->valuestring);
        for (const cJSON *v = ids->child; v; v = v->next) {
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= TOK_MAX_ID ||
                v->valuedouble != (double)(long long)v->valuedouble)
                return err_set(e, "%s: %s.special_tokens[\"%s\"].ids must be token ids", path, field,
                               name->valuestring);
            int32_t *dst = seen_a ? t->post : t->pre;
            int *n = seen_a ? &t->npost : &t->npre;
            if (*n == TOK_MAX_TEMPLATE) return err_set(e, "%s: %s: more than %d ids", path, field, TOK_MAX_TEMPLATE);
            dst[(*n)++] = (int32_t)v->valuedouble;
        }
    }
    if (!seen_a) return err_set(e, "%s: %s.single has no Sequence A", path, field);
    return 0;
}

static int json_post_one(Tokenizer *t, const cJSON *pp, const char *field, Err *e)
{
    const char *ty = json_type_name(pp);
    if (!ty) return err_set(e, "%s: %s.type is missing", t->path, field);
    if (!strcmp(ty, "ByteLevel")) return 0; /* only trims offsets: adds no tokens [TK byte_level.rs process] */
    if (!strcmp(ty, "TemplateProcessing")) {
        if (t->npre || t->npost) return err_set(e, "%s: %s: a second TemplateProcessing", t->path, field);
        return json_template(t, pp, field, e);
    }
    return err_set(e, "%s: %s.type \"%s\" is not supported: pp8 implements ByteLevel and TemplateProcessing", t->path,
                   field, ty);
}

static int json_post_processor(Tokenizer *t, const cJSON *root, Err *e)
{
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (json_absent(pp)) return 0;
    const char *ty = json_type_name(pp);
    if (ty && !strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors");
        if (!cJSON_IsArray(list)) return err_set(e, "%s: post_processor.processors must be a list", t->path);
        int i = 0;
        for (const cJSON *it = list->child; it; it = it->next, i++) {
            char field[64];
            snprintf(field, sizeof field, "post_processor.processors[%d]", i);
            if (json_post_one(t, it, field, e)) return -1;
        }
        return 0;
    }
    return json_post_one(t, pp, "post_processor", e);
}

static int json_model(Tokenizer *t, Build *b, const cJSON *root, Err *e)
{
    const char *path = t->path;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(m)) return err_set(e, "%s: model is missing", path);
    const char *ty = json_type_name(m);
    if (ty && strcmp(ty, "BPE"))
        return err_set(e,
                       "%s: model.type \"%s\" is not supported: pp8 implements byte-level BPE only (BLOOM, GPT-2/OPT)",
                       path, ty);
    if (!ty && !cJSON_GetObjectItemCaseSensitive(m, "merges"))
        return err_set(e, "%s: model.type is missing and there are no model.merges: pp8 implements BPE only", path);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (!json_absent(dropout))
        return err_set(e,
                       "%s: model.dropout is not null: BPE dropout skips merges at random even at inference; pp8 "
                       "does not implement it (set it to null)",
                       path);
    if (json_false_or_absent(m, "byte_fallback", path, "model", "pp8 does not implement <0xXX> byte fallback", e) ||
        json_false_or_absent(m, "ignore_merges", path, "model", "pp8 does not implement ignore_merges", e))
        return -1;
    const char *affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, affix[i]);
        if (!json_absent(v) && !(cJSON_IsString(v) && !v->valuestring[0]))
            return err_set(e, "%s: model.%s must be null or \"\": pp8 does not implement subword affixes", path,
                           affix[i]);
    }
    const cJSON *fuse = cJSON_GetObjectItemCaseSensitive(m, "fuse_unk");
    t->fuse_unk = cJSON_IsTrue(fuse);

    if (build_vocab(b, cJSON_GetObjectItemCaseSensitive(m, "vocab"), path, "model.vocab", e)) return -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(m, "unk_token");
    t->unk_id = -1;
    if (!json_absent(unk)) {
        if (!cJSON_IsString(unk)) return err_set(e, "%s: model.unk_token must be a string or null", path);
        t->unk_id = strmap_get(&b->map, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            return err_set(e, "%s: model.unk_token \"%s\" is not in model.vocab", path, unk->valuestring);
    }

    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!cJSON_IsArray(merges)) return err_set(e, "%s: model.merges must be a list", path);
    if (build_merges_init(b, cJSON_GetArraySize(merges), e)) return -1;
    int rank = 0;
    for (const cJSON *it = merges->child; it; it = it->next, rank++) {
        MergeAt at = {path, false, rank};
        if (cJSON_IsString(it)) {
            if (build_merge_line(b, it->valuestring, strlen(it->valuestring), rank, &at, e)) return -1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            const char *a = it->child->valuestring, *c = it->child->next->valuestring;
            if (build_merge(b, a, strlen(a), c, strlen(c), rank, &at, e)) return -1;
        } else {
            char where[1300];
            return err_set(e, "%s must be \"a b\" or [\"a\", \"b\"]", merge_at(&at, where, sizeof where));
        }
    }
    return 0;
}

static int json_added(Build *b, const cJSON *root, Err *e)
{
    const char *path = b->t->path;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (json_absent(list)) return 0;
    if (!cJSON_IsArray(list)) return err_set(e, "%s: added_tokens must be a list", path);
    int i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        char field[64];
        snprintf(field, sizeof field, "added_tokens[%d]", i);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= TOK_MAX_ID ||
            id->valuedouble != (double)(long long)id->valuedouble || !cJSON_IsString(content))
            return err_set(e, "%s: %s needs an integer \"id\" and a string \"content\"", path, field);
        const char *flags[] = {"lstrip", "rstrip", "single_word"};
        for (int k = 0; k < 3; k++)
            if (json_false_or_absent(it, flags[k], path, field, "pp8 matches added tokens exactly, anywhere", e))
                return -1;
        for (int k = 0; k < b->nadded; k++)
            if (!strcmp(b->added[k].s, content->valuestring))
                return err_set(e, "%s: %s: \"%s\" is an added token twice", path, field, content->valuestring);
        const cJSON *norm = cJSON_GetObjectItemCaseSensitive(it, "normalized");
        if (build_add_added(b, content->valuestring, strlen(content->valuestring), (int32_t)id->valuedouble,
                            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")),
                            json_absent(norm) ? true : cJSON_IsTrue(norm)))
            return err_set(e, "%s: out of memory", path);
    }
    return 0;
}

int tok_load_json(Tokenizer *t, const char *path, Err *e)
{
    snprintf(t->path, sizeof t->path, "%s", path);
    cJSON *root = json_read_file(path, e);
    if (!root) return -1;
    Build b = {.t = t};
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        err_set(e, "%s: not a tokenizer.json (the top level is not an object)", path);
        goto done;
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!json_absent(norm)) {
        const char *ty = json_type_name(norm);
        err_set(e, "%s: normalizer %s%s%sis not supported: pp8 runs no normalizer (BLOOM and GPT-2/OPT have null)",
                path, ty ? "\"" : "", ty ? ty : "", ty ? "\" " : "");
        goto done;
    }
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char *dty = json_type_name(dec);
    if (!dty || strcmp(dty, "ByteLevel")) {
        err_set(e, "%s: decoder %s%s%s is not supported: pp8 decodes byte-level BPE (decoder ByteLevel)", path,
                dty ? "\"" : "", dty ? dty : (json_absent(dec) ? "null" : "without a type"), dty ? "\"" : "");
        goto done;
    }
    /* truncation and padding are left off, as transformers' tokenizer(text) does by default */
    if (json_model(t, &b, root, e) || json_pre_tokenizer(t, root, e) || json_post_processor(t, root, e) ||
        json_added(&b, root, e) || build_finish(&b, e))
        goto done;
    rc = 0;
done:
    build_free(&b);
    cJSON_Delete(root);
    return rc;
}

/* ---- the GPT-2 hub layout ---- */

/* a special-token value of tokenizer_config.json / special_tokens_map.json: "</s>" or {"content": "</s>", …} */
static int hub_token_value(const cJSON *v, const char *path, const char *key, const char **s, bool *normalized, Err *e)
{
    *s = NULL;
    if (json_absent(v)) return 0;
    if (cJSON_IsString(v)) {
        *s = v->valuestring;
        *normalized = false; /* transformers makes a plain-string special token AddedToken(normalized=False) */
        return 0;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(c)) return err_set(e, "%s: \"%s\" must be a string or an object with \"content\"", path, key);
    const char *flags[] = {"lstrip", "rstrip", "single_word"};
    char field[64];
    snprintf(field, sizeof field, "\"%s\"", key);
    for (int k = 0; k < 3; k++)
        if (json_false_or_absent(v, flags[k], path, field, "pp8 matches added tokens exactly, anywhere", e)) return -1;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "normalized");
    *normalized = json_absent(n) ? false : cJSON_IsTrue(n);
    *s = c->valuestring;
    return 0;
}

#define HUB_NSPECIAL 7
static const char *const HUB_SPECIAL_KEYS[HUB_NSPECIAL] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                           "pad_token", "cls_token", "mask_token"};

static int hub_add(Build *b, const char *s, int32_t id, bool special, bool normalized)
{
    for (int k = 0; k < b->nadded; k++) {
        if (!strcmp(b->added[k].s, s)) {
            b->added[k].special |= special;
            return 0;
        }
    }
    return build_add_added(b, s, strlen(s), id, special, normalized) ? -1 : 0;
}

int tok_load_hub(Tokenizer *t, const char *dir, Err *e)
{
    char vpath[1100], mpath[1100], cpath[1100], spath[1100], apath[1100];
    snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
    snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    snprintf(spath, sizeof spath, "%s/special_tokens_map.json", dir);
    snprintf(apath, sizeof apath, "%s/added_tokens.json", dir);
    snprintf(t->path, sizeof t->path, "%s", vpath);
    if (!tok_file_exists(mpath)) return err_set(e, "%s: no such file (vocab.json needs merges.txt beside it)", mpath);
    cJSON *vocab = NULL, *cfg = NULL, *smap = NULL, *atok = NULL;
    char *merges = NULL;
    Build b = {.t = t};
    int rc = -1;
    t->unk_id = -1; /* GPT2Converter builds BPE without an unk token */
    if (!(vocab = json_read_file(vpath, e)) || build_vocab(&b, vocab, vpath, "the vocab", e)) goto done;
    if (tok_file_exists(cpath) && !(cfg = json_read_file(cpath, e))) goto done;
    if (tok_file_exists(spath) && !(smap = json_read_file(spath, e))) goto done;
    if (tok_file_exists(apath) && !(atok = json_read_file(apath, e))) goto done;

    /* merges.txt: "#version" first line skipped, one "a b" per line, rank = line order */
    size_t mlen;
    if (!(merges = file_read_all(mpath, &mlen, e))) goto done;
    int nlines = 1;
    for (size_t i = 0; i < mlen; i++) nlines += merges[i] == '\n';
    if (build_merges_init(&b, nlines, e)) goto done;
    int rank = 0, line = 0;
    for (char *p = merges, *end = merges + mlen; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        size_t len = (size_t)(le - p);
        if (len && p[len - 1] == '\r') len--;
        bool skip = len == 0 || (line == 0 && len >= 8 && !memcmp(p, "#version", 8));
        if (!skip) {
            MergeAt at = {mpath, true, line + 1};
            if (build_merge_line(&b, p, len, rank++, &at, e)) goto done;
        }
        p = nl ? nl + 1 : end;
    }

    /* tokenizer_config.json: the GPT2Tokenizer options; special_tokens_map.json overrides the token
     * values, as transformers' from_pretrained does */
    if (cfg) {
        if (!cJSON_IsObject(cfg)) {
            err_set(e, "%s: the top level is not an object", cpath);
            goto done;
        }
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer_class");
        if (cJSON_IsString(cls) && strcmp(cls->valuestring, "GPT2Tokenizer") &&
            strcmp(cls->valuestring, "GPT2TokenizerFast")) {
            err_set(e,
                    "%s: tokenizer_class \"%s\" is not supported with vocab.json + merges.txt: pp8 reads the "
                    "GPT2Tokenizer layout (give a tokenizer.json)",
                    cpath, cls->valuestring);
            goto done;
        }
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "add_prefix_space"))) {
            err_set(e, "%s: add_prefix_space is true: pp8 does not implement the prefix space (OPT has false)", cpath);
            goto done;
        }
    }
    /* the named special tokens, in transformers' SPECIAL_TOKENS_ATTRIBUTES order; GPT2Tokenizer's
     * defaults (<|endoftext|> for bos, eos, unk) when neither file is there */
    const char *special[HUB_NSPECIAL] = {0};
    bool special_norm[HUB_NSPECIAL] = {0};
    if (!cfg && !smap) special[0] = special[1] = special[2] = "<|endoftext|>";
    for (int k = 0; k < HUB_NSPECIAL; k++) {
        const cJSON *src[2] = {cfg, smap};
        const char *files[2] = {cpath, spath};
        for (int f = 0; f < 2; f++) {
            if (!src[f]) continue;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(src[f], HUB_SPECIAL_KEYS[k]);
            if (!v) continue;
            const char *s;
            bool norm = false;
            if (hub_token_value(v, files[f], HUB_SPECIAL_KEYS[k], &s, &norm, e)) goto done;
            special[k] = s, special_norm[k] = norm;
        }
    }
    /* tokens with known ids first (added_tokens.json, added_tokens_decoder), then the specials */
    if (atok) {
        for (const cJSON *it = atok->child; it; it = it->next) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= TOK_MAX_ID) {
                err_set(e, "%s: \"%s\" must be a token id", apath, it->string);
                goto done;
            }
            if (hub_add(&b, it->string, (int32_t)it->valuedouble, false, true)) goto oom;
        }
    }
    const cJSON *dec = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder") : NULL;
    for (const cJSON *it = cJSON_IsObject(dec) ? dec->child : NULL; it; it = it->next) {
        char *endp;
        long id = strtol(it->string, &endp, 10);
        char key[96];
        snprintf(key, sizeof key, "added_tokens_decoder[\"%.40s\"]", it->string);
        const char *s;
        bool norm = false;
        if (*endp || id < 0 || id >= TOK_MAX_ID) {
            err_set(e, "%s: %s: the key must be a token id", cpath, key);
            goto done;
        }
        if (hub_token_value(it, cpath, key, &s, &norm, e)) goto done;
        if (!s) continue;
        if (hub_add(&b, s, (int32_t)id, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")), norm)) goto oom;
    }
    for (int k = 0; k < HUB_NSPECIAL; k++)
        if (special[k] && hub_add(&b, special[k], -1, true, special_norm[k])) goto oom;
    const cJSON *extra[2] = {cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens") : NULL,
                             smap ? cJSON_GetObjectItemCaseSensitive(smap, "additional_special_tokens") : NULL};
    for (int f = 0; f < 2; f++) {
        int i = 0;
        for (const cJSON *it = cJSON_IsArray(extra[f]) ? extra[f]->child : NULL; it; it = it->next, i++) {
            char key[64];
            snprintf(key, sizeof key, "additional_special_tokens[%d]", i);
            const char *s;
            bool norm = false;
            if (hub_token_value(it, f ? spath : cpath, key, &s, &norm, e)) goto done;
            if (s && hub_add(&b, s, -1, true, norm)) goto oom;
        }
    }
    t->nsplit = 1;
    t->split[0] = TOK_SPLIT_GPT2;
    if (build_finish(&b, e)) goto done;
    /* the post-processor GPT2Converter / transformers 5 install from add_bos_token / add_eos_token */
    const char *flags[2] = {"add_bos_token", "add_eos_token"};
    for (int k = 0; k < 2; k++) {
        if (!cfg || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, flags[k]))) continue;
        const char *s = special[k];
        int32_t id = -1;
        for (int i = 0; s && i < t->nadded; i++)
            if (!strcmp(t->added[i].s, s)) id = t->added[i].id;
        if (id < 0) {
            err_set(e, "%s: %s is true but there is no %s", cpath, flags[k], HUB_SPECIAL_KEYS[k]);
            goto done;
        }
        if (k == 0)
            t->pre[t->npre++] = id;
        else
            t->post[t->npost++] = id;
    }
    rc = 0;
    goto done;
oom:
    err_set(e, "%s: out of memory", t->path);
done:
    build_free(&b);
    free(merges);
    cJSON_Delete(vocab);
    cJSON_Delete(cfg);
    cJSON_Delete(smap);
    cJSON_Delete(atok);
    return rc;
}
