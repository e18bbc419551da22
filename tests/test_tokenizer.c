/* The tokenizer against Hugging Face tokenizers 0.23.3's own output (../shared/golden/tokenizers/A:
 * ids, ids with special tokens, pre-tokenizer pieces, decode, decode with skip_special, hand-built
 * decode cases, DecodeStream chunks plus pp8's flush) for bloom-5k (tokenizer.json in both the 2022
 * and the tokenizers>=0.20 form), opt-3k (hub layout) and opt-3k-fast (tokenizer.json); the Unicode
 * tables against HF's classification of every code point; linear time on long pieces; and bad
 * tokenizer files refused with one line naming the file and field.
 * usage: test_tokenizer GOLDEN_TOKENIZERS_DIR (missing golden files fail the test; nothing is skipped) */
#include "test_util.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *G; /* the golden tokenizers dir */
static char TMP[256]; /* a temp dir for this run */

/* ---- small helpers ---- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f, "cannot open %s (golden data missing?)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
    fclose(f);
    buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(s, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

/* splits line (modified in place) at tabs; empty fields kept */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == '\t') {
            *p = 0;
            f[n++] = p + 1;
        }
    }
    return n;
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

/* hex (up to end or a stop char) -> bytes; returns the byte count */
static size_t unhex(const char *h, size_t hn, char *out)
{
    CHECK(hn % 2 == 0, "odd hex length %zu", hn);
    for (size_t i = 0; i < hn / 2; i++) {
        int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);
        CHECK(a >= 0 && b >= 0, "bad hex '%.20s'", h);
        out[i] = (char)(a << 4 | b);
    }
    return hn / 2;
}

static char *unhex_alloc(const char *h, size_t *n)
{
    size_t hn = strlen(h);
    char *out = malloc(hn / 2 + 1);
    *n = unhex(h, hn, out);
    out[*n] = 0;
    return out;
}

/* "1 2 3" -> ids */
static int parse_ids(const char *s, int32_t *ids, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        CHECK(end != s, "bad id list '%.40s'", s);
        CHECK(n < max, "too many ids");
        ids[n++] = (int32_t)v;
        s = end;
        while (*s == ' ') s++;
    }
    return n;
}

static bool same_ids(const int32_t *a, int na, const int32_t *b, int nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof *a));
}

static void show_ids(const char *what, const int32_t *a, int n)
{
    fprintf(stderr, "    %s (%d):", what, n);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", a[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

static Tokenizer *load_ok(const char *dir)
{
    Tokenizer *t = NULL;
    Err e = {{0}};
    CHECK(tok_load(&t, dir, &e) == 0, "tok_load %s: %s", dir, e.msg);
    return t;
}

/* the data lines of a TSV file (not empty, not starting with '#') */
typedef struct {
    char *buf;
    char **line;
    int n;
} Lines;

static Lines read_lines(const char *path)
{
    Lines l = {slurp(path, NULL), NULL, 0};
    int cap = 16;
    l.line = malloc((size_t)cap * sizeof *l.line);
    for (char *p = l.buf; *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        if (*p && *p != '#') {
            if (l.n == cap) l.line = realloc(l.line, (size_t)(cap *= 2) * sizeof *l.line);
            l.line[l.n++] = p;
        }
        if (!nl) break;
        p = nl + 1;
    }
    return l;
}

static void lines_free(Lines *l)
{
    free(l->buf);
    free(l->line);
}

/* ---- the Unicode tables against HF's classification ---- */

static void test_unicode(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/unicode_classes.tsv", G);
    Lines L = read_lines(path);
    int n = L.n;
    char **lines = L.line;
    unsigned char *want = calloc(0x110000, 1); /* bit 0 L, bit 1 N, bit 2 \s */
    int ranges[3] = {0};
    for (int i = 0; i < n; i++) {
        char *f[4];
        CHECK(split_tabs(lines[i], f, 4) == 3, "%s: bad line %d", path, i);
        int bit = !strcmp(f[0], "L") ? 0 : !strcmp(f[0], "N") ? 1 : !strcmp(f[0], "WS") ? 2 : -1;
        CHECK(bit >= 0, "%s: unknown class '%s'", path, f[0]);
        unsigned long lo = strtoul(f[1], NULL, 16), hi = strtoul(f[2], NULL, 16);
        CHECK(lo <= hi && hi < 0x110000, "%s: bad range", path);
        for (unsigned long c = lo; c <= hi; c++) want[c] |= (unsigned char)(1 << bit);
        ranges[bit]++;
    }
    CHECK(ranges[0] > 600 && ranges[1] > 100 && ranges[2] == 10, "%s: %d/%d/%d ranges: not the oracle file", path,
          ranges[0], ranges[1], ranges[2]);
    int diff[3] = {0}, points = 0;
    for (uint32_t c = 0; c < 0x110000; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue; /* surrogates: not in the oracle, never in UTF-8 */
        points++;
        bool got[3] = {uni_is_letter(c), uni_is_number(c), uni_is_space(c)};
        UniClass cls = uni_class(c);
        for (int b = 0; b < 3; b++) {
            bool w = want[c] >> b & 1;
            if (got[b] != w) {
                if (diff[b] < 5) fprintf(stderr, "FAIL U+%04X: class %d is %d, HF says %d\n", c, b, got[b], w);
                diff[b]++;
            }
        }
        UniClass wc = want[c] & 1   ? UNI_CLASS_LETTER
                      : want[c] & 2 ? UNI_CLASS_NUMBER
                      : want[c] & 4 ? UNI_CLASS_SPACE
                                    : UNI_CLASS_OTHER;
        CHECK_ON(cls == wc, "U+%04X: uni_class %d, want %d", c, cls, wc);
    }
    printf("unicode: %d code points compared with HF's table: %d L, %d N, %d \\s differences\n", points, diff[0],
           diff[1], diff[2]);
    CHECK_ON(diff[0] == 0 && diff[1] == 0 && diff[2] == 0, "the Unicode tables differ from HF's");
    free(want);
    lines_free(&L);
}

/* ---- the golden references ---- */

typedef struct {
    int texts, pieces, decodes, streams, chunks;
} Counts;

#define MAXIDS 200000

/* refs.tsv: #id kind text_hex ids ids_special decoded_hex decoded_special_skip_hex pieces_hex */
static void check_refs(Tokenizer *t, const char *name, const char *refs, Counts *c)
{
    char path[512];
    snprintf(path, sizeof path, "%s/A/%s.refs.tsv", G, refs);
    Lines L = read_lines(path);
    int n = L.n;
    char **lines = L.line;
    CHECK(n >= 200, "%s: only %d references", path, n);
    int32_t *want = malloc(MAXIDS * sizeof *want), *want_sp = malloc(MAXIDS * sizeof *want_sp);
    for (int i = 0; i < n; i++) {
        char *f[9];
        CHECK(split_tabs(lines[i], f, 9) == 8, "%s: line %d has the wrong field count", path, i);
        size_t tlen, dlen, slen;
        char *text = unhex_alloc(f[2], &tlen), *dec = unhex_alloc(f[5], &dlen), *dskip = unhex_alloc(f[6], &slen);
        int nw = parse_ids(f[3], want, MAXIDS), nws = parse_ids(f[4], want_sp, MAXIDS);
        Err e = {{0}};
        int32_t *ids = NULL, *ids_sp = NULL;
        int ng = 0, ngs = 0;
        /* the default path, then the heap merge loop for every piece, then the linear one, both without
         * the cache: all three must give HF's ids */
        tok_tune(t, 48, true);
        CHECK_ON(tok_encode(t, text, tlen, false, &ids, &ng, &e) == 0, "%s %s: %s", name, f[0], e.msg);
        CHECK_ON(tok_encode(t, text, tlen, true, &ids_sp, &ngs, &e) == 0, "%s %s: %s", name, f[0], e.msg);
        bool ok = same_ids(ids, ng, want, nw);
        CHECK_ON(ok, "%s %s (%s): ids differ", name, f[0], f[1]);
        if (!ok) show_ids("got", ids, ng), show_ids("want", want, nw);
        CHECK_ON(same_ids(ids_sp, ngs, want_sp, nws), "%s %s (%s): ids_special differ", name, f[0], f[1]);
        for (int mode = 0; mode < 2; mode++) {
            int32_t *alt = NULL;
            int na = 0;
            tok_tune(t, mode ? INT_MAX : 0, false);
            CHECK_ON(tok_encode(t, text, tlen, false, &alt, &na, &e) == 0, "%s: %s", name, e.msg);
            CHECK_ON(same_ids(alt, na, want, nw), "%s %s: ids differ with the %s merge loop", name, f[0],
                     mode ? "linear" : "heap");
            free(alt);
        }
        tok_tune(t, 48, true);
        /* pieces: comma-separated hex, concatenating to the text */
        size_t *ends = NULL;
        int np = 0;
        CHECK_ON(tok_pieces(t, text, tlen, &ends, &np, &e) == 0, "%s: %s", name, e.msg);
        int wp = 0;
        size_t off = 0;
        bool pieces_ok = true;
        for (char *p = f[7]; *p;) {
            char *comma = strchr(p, ',');
            size_t hn = comma ? (size_t)(comma - p) : strlen(p);
            off += hn / 2;
            if (wp >= np || ends[wp] != off) pieces_ok = false;
            wp++;
            p = comma ? comma + 1 : p + hn;
        }
        CHECK_ON(pieces_ok && wp == np, "%s %s (%s): pre-tokenizer pieces differ (%d pieces, want %d)", name, f[0],
                 f[1], np, wp);
        c->pieces += wp;
        /* decode: of ids (== the text for every case) and of ids_special with skip */
        char *out;
        size_t olen;
        CHECK(tok_decode(t, ids, ng, false, &out, &olen) == 0, "decode: out of memory");
        CHECK_ON(olen == dlen && !memcmp(out, dec, dlen), "%s %s: decode differs", name, f[0]);
        free(out);
        CHECK(tok_decode(t, ids_sp, ngs, true, &out, &olen) == 0, "decode: out of memory");
        CHECK_ON(olen == slen && !memcmp(out, dskip, slen), "%s %s: decode(ids_special, skip) differs", name, f[0]);
        free(out);
        c->texts++;
        free(ids);
        free(ids_sp);
        free(ends);
        free(text);
        free(dec);
        free(dskip);
    }
    free(want);
    free(want_sp);
    lines_free(&L);
}

/* decode.tsv: id kind skip ids decoded_hex */
static void check_decode(Tokenizer *t, const char *name, const char *refs, Counts *c)
{
    char path[512];
    snprintf(path, sizeof path, "%s/A/%s.decode.tsv", G, refs);
    Lines L = read_lines(path);
    int n = L.n;
    char **lines = L.line;
    CHECK(n >= 100, "%s: only %d cases", path, n);
    int32_t *ids = malloc(MAXIDS * sizeof *ids);
    for (int i = 0; i < n; i++) {
        char *f[6];
        CHECK(split_tabs(lines[i], f, 6) == 5, "%s: line %d has the wrong field count", path, i);
        int ni = parse_ids(f[3], ids, MAXIDS);
        size_t wlen;
        char *want = unhex_alloc(f[4], &wlen), *out;
        size_t olen;
        CHECK(tok_decode(t, ids, ni, f[2][0] == '1', &out, &olen) == 0, "decode: out of memory");
        CHECK_ON(olen == wlen && !memcmp(out, want, wlen), "%s decode %s (%s, skip %s): got %zu bytes, want %zu", name,
                 f[0], f[1], f[2], olen, wlen);
        c->decodes++;
        free(out);
        free(want);
    }
    free(ids);
    lines_free(&L);
}

/* stream.tsv: id kind skip ids chunks(hex or ~, comma-separated) decoded_hex */
static void check_stream(Tokenizer *t, const char *name, const char *refs, Counts *c)
{
    char path[512];
    snprintf(path, sizeof path, "%s/A/%s.stream.tsv", G, refs);
    Lines L = read_lines(path);
    int n = L.n;
    char **lines = L.line;
    CHECK(n >= 100, "%s: only %d cases", path, n);
    int32_t *ids = malloc(MAXIDS * sizeof *ids);
    for (int i = 0; i < n; i++) {
        char *f[7];
        CHECK(split_tabs(lines[i], f, 7) == 6, "%s: line %d has the wrong field count", path, i);
        int ni = parse_ids(f[3], ids, MAXIDS);
        bool skip = f[2][0] == '1';
        size_t wlen;
        char *want_all = unhex_alloc(f[5], &wlen);
        char *all = malloc(3 * wlen + 64 + 4 * (size_t)ni * 4);
        size_t alen = 0;
        TokStream s;
        tok_stream_init(&s, t, skip);
        char *p = f[4];
        bool ok = true;
        for (int k = 0; k < ni; k++) {
            char *comma = strchr(p, ',');
            size_t hn = comma ? (size_t)(comma - p) : strlen(p);
            const char *chunk;
            size_t clen;
            int r = tok_stream_push(&s, ids[k], &chunk, &clen);
            CHECK(r >= 0, "stream: out of memory");
            if (hn == 1 && p[0] == '~') {
                if (r != 0) ok = false;
            } else {
                char *w = malloc(hn / 2 + 1);
                size_t wl = unhex(p, hn, w);
                if (r != 1 || clen != wl || memcmp(chunk, w, wl)) ok = false;
                free(w);
            }
            if (r == 1) memcpy(all + alen, chunk, clen), alen += clen;
            c->chunks++;
            p = comma ? comma + 1 : p + hn;
        }
        CHECK_ON(ok, "%s stream %s (%s, skip %d): chunks differ from HF's DecodeStream", name, f[0], f[1], skip);
        const char *chunk;
        size_t clen;
        CHECK(tok_stream_flush(&s, &chunk, &clen) >= 0, "flush: out of memory");
        memcpy(all + alen, chunk, clen);
        alen += clen;
        CHECK_ON(alen == wlen && !memcmp(all, want_all, wlen), "%s stream %s: chunks + flush != decode of all", name,
                 f[0]);
        char *dec;
        size_t dlen;
        CHECK(tok_decode(t, ids, ni, skip, &dec, &dlen) == 0, "decode: out of memory");
        CHECK_ON(dlen == alen && !memcmp(dec, all, dlen), "%s stream %s: chunks + flush != tok_decode", name, f[0]);
        free(dec);
        tok_stream_free(&s);
        free(all);
        free(want_all);
        c->streams++;
    }
    free(ids);
    lines_free(&L);
}

static void check_tokenizer(const char *name, const char *dir, const char *refs, int size, int bos)
{
    Tokenizer *t = load_ok(dir);
    CHECK_ON(tok_size(t) == size, "%s: tok_size %d, want %d", name, tok_size(t), size);
    CHECK_ON(tok_bos_id(t) == bos, "%s: tok_bos_id %d, want %d", name, tok_bos_id(t), bos);
    Counts c = {0};
    int fails = test_fail_count;
    check_refs(t, name, refs, &c);
    check_decode(t, name, refs, &c);
    check_stream(t, name, refs, &c);
    printf("%-20s %3d texts (ids, ids_special, %d pieces, decode, decode skip_special), %d decode cases, %d streams "
           "(%d ids), %s: %s\n",
           name, c.texts, c.pieces, c.decodes, c.streams, c.chunks, tok_path(t),
           test_fail_count == fails ? "ok" : "FAILED");
    tok_free(t);
}

/* ---- linear time on one long piece ---- */

/* CPU time of this thread: time the machine's other work takes from us does not count */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double time_encode(Tokenizer *t, const char *s, size_t n, int *ntok)
{
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        int32_t *ids;
        Err e;
        double t0 = now_s();
        CHECK(tok_encode(t, s, n, false, &ids, ntok, &e) == 0, "%s", e.msg);
        double dt = now_s() - t0;
        free(ids);
        if (dt < best) best = dt;
    }
    return best;
}

/* one piece of 1.2k, 12k and 120k characters: time(120k)/time(12k) must stay far below the 100 of
 * quadratic work */
static void check_linear(const char *name, const char *dir, bool cjk)
{
    Tokenizer *t = load_ok(dir);
    /* CJK: common characters with no space (one BLOOM piece); GPT-2: lowercase letters (one \p{L}+ piece) */
    static const char *han[] = {"的", "一", "是", "不", "了", "人", "我", "在", "有", "他", "这", "中",
                                "大", "来", "上", "国", "个", "到", "说", "们", "为", "子", "和", "你"};
    size_t counts[3] = {1200, 12000, 120000};
    double secs[3];
    uint64_t rng = 12345;
    for (int k = 0; k < 3; k++) {
        size_t cap = counts[k] * 3 + 1, n = 0;
        char *s = malloc(cap);
        for (size_t i = 0; i < counts[k]; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            if (cjk) {
                memcpy(s + n, han[rng % 24], 3);
                n += 3;
            } else {
                s[n++] = (char)('a' + rng % 26);
            }
        }
        size_t *ends;
        int np;
        Err e;
        CHECK(tok_pieces(t, s, n, &ends, &np, &e) == 0 && np == 1, "%s: the long text is %d pieces, want 1", name, np);
        free(ends);
        int ntok;
        secs[k] = time_encode(t, s, n, &ntok);
        printf("%-20s one piece of %6zu characters (%6zu bytes): %5d tokens in %8.3f ms\n", name, counts[k], n, ntok,
               secs[k] * 1e3);
        free(s);
    }
    double r1 = secs[1] / secs[0], r2 = secs[2] / secs[1];
    printf("%-20s time ratios 12k/1.2k %.1f, 120k/12k %.1f (linear ~10, quadratic ~100; bound 30)\n", name, r1, r2);
    CHECK_ON(r2 < 30, "%s: encoding a 120k-character piece took %.1fx the 12k one: superlinear BPE", name, r2);
    tok_free(t);
}

/* ---- one tokenizer, several threads (serve's request threads): the word cache is taken by one
 * encode at a time, the others run without it; every thread must get the sequential ids ---- */

typedef struct {
    const Tokenizer *t;
    const char *text;
    size_t len;
    const int32_t *want;
    int nwant, bad;
} ThreadJob;

static void *thread_encode(void *arg)
{
    ThreadJob *j = arg;
    for (int r = 0; r < 20; r++) {
        int32_t *ids;
        int n;
        Err e;
        if (tok_encode(j->t, j->text, j->len, true, &ids, &n, &e) || !same_ids(ids, n, j->want, j->nwant))
            j->bad++;
        else
            free(ids);
    }
    return NULL;
}

static void check_threads(const char *dir)
{
    Tokenizer *t = load_ok(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/A/texts.jsonl", G);
    size_t len;
    char *text = slurp(path, &len); /* the whole file is one varied text */
    int32_t *want;
    int nwant;
    Err e;
    CHECK(tok_encode(t, text, len, true, &want, &nwant, &e) == 0, "%s", e.msg);
    ThreadJob job[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        job[i] = (ThreadJob){t, text, len, want, nwant, 0};
        CHECK(pthread_create(&th[i], NULL, thread_encode, &job[i]) == 0, "pthread_create");
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += job[i].bad;
    }
    printf("threads: 4 x 20 concurrent encodes of %zu bytes (%d ids) with one tokenizer: %d differ\n", len, nwant, bad);
    CHECK_ON(bad == 0, "concurrent encodes differ from the sequential one");
    free(want);
    free(text);
    tok_free(t);
}

/* ---- bad tokenizer files ---- */

/* a minimal valid tokenizer.json with parts replaced: NULL keeps the default */
typedef struct {
    const char *normalizer, *pre, *post, *decoder, *model_type, *model_extra, *merges, *added;
} Parts;

static void write_json(const char *dir, const Parts *p)
{
    char buf[8192], path[512];
    snprintf(buf, sizeof buf,
             "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,\n"
             " \"added_tokens\": %s,\n"
             " \"normalizer\": %s,\n"
             " \"pre_tokenizer\": %s,\n"
             " \"post_processor\": %s,\n"
             " \"decoder\": %s,\n"
             " \"model\": {\"type\": %s, \"unk_token\": null, \"fuse_unk\": false%s,\n"
             "   \"vocab\": {\"<s>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3, \"\\u0120\": 4, \"\\u0120ab\": 5},\n"
             "   \"merges\": %s}}\n",
             p->added ? p->added : "[{\"id\": 0, \"content\": \"<s>\", \"special\": true, \"normalized\": false}]",
             p->normalizer ? p->normalizer : "null",
             p->pre ? p->pre : "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}",
             p->post ? p->post : "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false}",
             p->decoder ? p->decoder : "{\"type\": \"ByteLevel\"}", p->model_type ? p->model_type : "\"BPE\"",
             p->model_extra ? p->model_extra : ", \"dropout\": null",
             p->merges ? p->merges : "[\"a b\", \"\\u0120 ab\"]");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    spit(path, buf, strlen(buf));
}

static int nbad;

/* tok_load on dir must fail with one line holding every one of the (NULL-terminated) substrings */
static void expect_refused(const char *what, const char *dir, const char *const *want)
{
    Tokenizer *t = NULL;
    Err e = {{0}};
    int rc = tok_load(&t, dir, &e);
    CHECK_ON(rc != 0 && !t, "%s: loaded, want refused", what);
    if (rc == 0) {
        tok_free(t);
        return;
    }
    CHECK_ON(!strchr(e.msg, '\n') && e.msg[0], "%s: the message is not one line: '%s'", what, e.msg);
    for (int i = 0; want[i]; i++) CHECK_ON(strstr(e.msg, want[i]), "%s: '%s' lacks '%s'", what, e.msg, want[i]);
    printf("  refused: %-34s %s\n", what, e.msg);
    nbad++;
}

#define REFUSED(what, dir, ...) expect_refused(what, dir, (const char *const[]){__VA_ARGS__, NULL})

static void check_bad_json(const char *what, Parts p, const char *field)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bad%d", TMP, nbad);
    write_json(dir, &p);
    REFUSED(what, dir, "tokenizer.json", field);
}

static void test_errors(void)
{
    char dir[512], path[600];
    printf("bad input:\n");
    /* the minimal file itself loads and works */
    snprintf(dir, sizeof dir, "%s/good", TMP);
    write_json(dir, &(Parts){0});
    Tokenizer *t = load_ok(dir);
    int32_t *ids;
    int n;
    Err e = {{0}};
    CHECK_ON(tok_encode(t, "ab ab<s>", 8, true, &ids, &n, &e) == 0 && n == 3 && ids[0] == 3 && ids[1] == 5 &&
                 ids[2] == 0,
             "the minimal tokenizer.json encodes wrongly (n %d)", n);
    free(ids);
    /* invalid UTF-8 in the text: refused naming the byte offset */
    CHECK_ON(tok_encode(t,
                        "ab\xff"
                        "a",
                        4, false, &ids, &n, &e) != 0 &&
                 strstr(e.msg, "byte offset 2"),
             "invalid UTF-8: '%s'", e.msg);
    printf("  refused: %-34s %s\n", "invalid UTF-8 in the text", e.msg);
    CHECK_ON(tok_encode(t, "a\xed\xa0\x80", 4, false, &ids, &n, &e) != 0 && strstr(e.msg, "byte offset 1"),
             "a surrogate in UTF-8: '%s'", e.msg);
    CHECK_ON(tok_encode(t, "\xc0\x80", 2, false, &ids, &n, &e) != 0 && strstr(e.msg, "byte offset 0"),
             "an overlong NUL: '%s'", e.msg);
    CHECK_ON(tok_encode(t, "a\xe4\xb8", 3, false, &ids, &n, &e) != 0 && strstr(e.msg, "byte offset 1"),
             "a truncated character: '%s'", e.msg);
    CHECK_ON(tok_encode(t, "a\xf4\x90\x80\x80", 5, false, &ids, &n, &e) != 0, "above U+10FFFF accepted");
    /* NUL is a character like any other (its own piece here); the minimal vocab has no token for its
     * byte, and with no unk_token HF drops it */
    CHECK_ON(tok_encode(t, "\0a\0", 3, false, &ids, &n, &e) == 0 && n == 1 && ids[0] == 1, "NUL: %d ids", n);
    free(ids);
    tok_free(t);

    snprintf(dir, sizeof dir, "%s/empty", TMP);
    mkdir(dir, 0755);
    REFUSED("no tokenizer files", dir, dir, "tokenizer.json", "vocab.json", "merges.txt", "--tokenizer DIR");
    REFUSED("no such directory", "/nonexistent/tok", "/nonexistent/tok");

    snprintf(dir, sizeof dir, "%s/malformed", TMP);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    spit(path, "{\"model\": {\"type\": \"BPE\",\n  \"vocab\": {\"a\": 1,, }}}\n", 46);
    REFUSED("malformed JSON", dir, "tokenizer.json", "malformed JSON", "line 2");

    check_bad_json("model Unigram", (Parts){.model_type = "\"Unigram\""}, "model.type \"Unigram\"");
    check_bad_json("model WordPiece", (Parts){.model_type = "\"WordPiece\""}, "model.type \"WordPiece\"");
    check_bad_json("model WordLevel", (Parts){.model_type = "\"WordLevel\""}, "model.type \"WordLevel\"");
    check_bad_json("normalizer NFC", (Parts){.normalizer = "{\"type\": \"NFC\"}"}, "normalizer \"NFC\"");
    check_bad_json("byte_fallback", (Parts){.model_extra = ", \"byte_fallback\": true"}, "model.byte_fallback");
    check_bad_json("dropout", (Parts){.model_extra = ", \"dropout\": 0.1"}, "model.dropout");
    check_bad_json("ignore_merges", (Parts){.model_extra = ", \"ignore_merges\": true"}, "model.ignore_merges");
    check_bad_json("continuing_subword_prefix", (Parts){.model_extra = ", \"continuing_subword_prefix\": \"##\""},
                   "model.continuing_subword_prefix");
    check_bad_json("end_of_word_suffix", (Parts){.model_extra = ", \"end_of_word_suffix\": \"</w>\""},
                   "model.end_of_word_suffix");
    check_bad_json("pre-tokenizer Whitespace", (Parts){.pre = "{\"type\": \"Whitespace\"}"},
                   "pre_tokenizer.type \"Whitespace\"");
    check_bad_json("pre-tokenizer Metaspace in a Sequence",
                   (Parts){.pre = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Metaspace\"}, "
                                  "{\"type\": \"ByteLevel\", \"use_regex\": false}]}"},
                   "pre_tokenizer.pretokenizers[0].type \"Metaspace\"");
    check_bad_json("Split with another regex",
                   (Parts){.pre = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                                  "{\"Regex\": \"\\\\p{L}+\"}, \"behavior\": \"Isolated\", \"invert\": false}, "
                                  "{\"type\": \"ByteLevel\", \"use_regex\": false}]}"},
                   "pre_tokenizer.pretokenizers[0].pattern.Regex");
    check_bad_json("Split with behavior Removed",
                   (Parts){.pre = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                                  "{\"Regex\": \" ?[^(\\\\s|[.,!?…。，、।۔،])]+\"}, \"behavior\": \"Removed\"}, "
                                  "{\"type\": \"ByteLevel\", \"use_regex\": false}]}"},
                   "pre_tokenizer.pretokenizers[0].behavior");
    check_bad_json("no pre-tokenizer", (Parts){.pre = "null"}, "pre_tokenizer");
    check_bad_json("ByteLevel add_prefix_space",
                   (Parts){.pre = "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}"},
                   "pre_tokenizer.add_prefix_space");
    check_bad_json("post-processor RobertaProcessing", (Parts){.post = "{\"type\": \"RobertaProcessing\"}"},
                   "post_processor.type \"RobertaProcessing\"");
    check_bad_json("post-processor BertProcessing in a Sequence",
                   (Parts){.post = "{\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"}, "
                                   "{\"type\": \"BertProcessing\"}]}"},
                   "post_processor.processors[1].type \"BertProcessing\"");
    check_bad_json("decoder Metaspace", (Parts){.decoder = "{\"type\": \"Metaspace\"}"}, "decoder \"Metaspace\"");
    check_bad_json("merge result not in the vocab", (Parts){.merges = "[\"a b\", \"b a\"]"}, "model.merges[1]");
    check_bad_json("merge part not in the vocab", (Parts){.merges = "[[\"a\", \"b\"], [\"x\", \"b\"]]"},
                   "model.merges[1]");
    check_bad_json("added token with lstrip",
                   (Parts){.added = "[{\"id\": 0, \"content\": \"<s>\", \"special\": true, \"lstrip\": true}]"},
                   "added_tokens[0].lstrip");

    /* the hub layout */
    snprintf(dir, sizeof dir, "%s/hub", TMP);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    spit(path, "{\"a\": 0, \"b\": 1, \"ab\": 2}", 26);
    REFUSED("vocab.json without merges.txt", dir, "merges.txt");
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    spit(path, "#version: 0.2\na b\nb a\n", 22);
    REFUSED("merges.txt: result not in vocab", dir, "merges.txt line 3", "\"ba\"");
    spit(path, "#version: 0.2\na b\n", 18);
    t = load_ok(dir);
    tok_free(t);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    spit(path, "{\"tokenizer_class\": \"RobertaTokenizer\"}", 39);
    REFUSED("tokenizer_class RobertaTokenizer", dir, "tokenizer_config.json", "tokenizer_class");
    spit(path, "{\"add_prefix_space\": true", 25);
    REFUSED("malformed tokenizer_config.json", dir, "tokenizer_config.json", "malformed JSON", "line 1");
    printf("  %d bad inputs refused\n", nbad);
}

int main(int argc, char **argv)
{
    CHECK(argc == 2, "usage: test_tokenizer GOLDEN_TOKENIZERS_DIR");
    G = argv[1];
    struct stat st;
    CHECK(stat(G, &st) == 0 && S_ISDIR(st.st_mode), "golden tokenizer data missing: %s (never skipped)", G);
    snprintf(TMP, sizeof TMP, "/tmp/pp8_tok_XXXXXX");
    CHECK(mkdtemp(TMP), "mkdtemp");

    test_unicode();

    char dir[512], modern[512], src[512];
    snprintf(dir, sizeof dir, "%s/models/bloom-5k", G);
    check_tokenizer("bloom-5k", dir, "bloom-5k", 5000, -1);
    /* tokenizer.modern.json, the same tokenizer as tokenizers >= 0.20 writes it, as a tokenizer.json */
    snprintf(modern, sizeof modern, "%s/bloom-modern", TMP);
    mkdir(modern, 0755);
    snprintf(src, sizeof src, "%s/models/bloom-5k/tokenizer.modern.json", G);
    size_t n;
    char *buf = slurp(src, &n), path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", modern);
    spit(path, buf, n);
    free(buf);
    check_tokenizer("bloom-5k (modern)", modern, "bloom-5k", 5000, -1);
    snprintf(dir, sizeof dir, "%s/models/opt-3k", G);
    check_tokenizer("opt-3k (hub files)", dir, "opt-3k", 3000, 2);
    snprintf(dir, sizeof dir, "%s/models/opt-3k-fast", G);
    check_tokenizer("opt-3k-fast", dir, "opt-3k", 3000, 2);

    snprintf(dir, sizeof dir, "%s/models/bloom-5k", G);
    check_linear("bloom-5k (CJK run)", dir, true);
    snprintf(dir, sizeof dir, "%s/models/opt-3k-fast", G);
    check_linear("opt-3k-fast (letters)", dir, false);

    snprintf(dir, sizeof dir, "%s/models/opt-3k", G);
    check_threads(dir);

    /* --tokenizer may name a tokenizer.json itself, as HF's Tokenizer.from_file takes one */
    snprintf(path, sizeof path, "%s/models/bloom-5k/tokenizer.json", G);
    Tokenizer *t = load_ok(path);
    int32_t *ids;
    int nids;
    Err e;
    CHECK_ON(tok_encode(t, "Hello world", 11, true, &ids, &nids, &e) == 0 && nids == 6 && ids[0] == 43 &&
                 ids[5] == 1561,
             "tokenizer.json given as a file: wrong ids");
    free(ids);
    tok_free(t);

    test_errors();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", TMP);
    printf("%d passed, %d failed\n", test_check_count - test_fail_count, test_fail_count);
    return test_fail_count ? 1 : 0;
}
