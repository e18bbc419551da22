/* See fuzz.h. The scratch directory lives in /dev/shm (tmpfs: a loader's file costs no disk I/O), one
 * per process, since libFuzzer's -jobs/-fork runs several processes at once. */
#define _GNU_SOURCE
#include "fuzz.h"
#include "text/tokenizer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PP8_FUZZ_GOLDEN_DEFAULT
#define PP8_FUZZ_GOLDEN_DEFAULT "../shared/golden"
#endif

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "pp8 fuzz: check failed at %s:%d: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ---- scratch files ---- */

static char g_dir[512];
static char g_path[1024];

static void fuzz_dir_remove(void)
{
    if (!g_dir[0]) return;
    DIR *d = opendir(g_dir);
    if (d) {
        struct dirent *de;
        char p[1024];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", g_dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(g_dir);
}

const char *fuzz_dir(void)
{
    if (g_dir[0]) return g_dir;
    const char *base = getenv("PP8_FUZZ_TMP");
    if (!base || !base[0]) base = "/dev/shm";
    mkdir(base, 0700); /* launch/fuzz.sh's parent; already there otherwise */
    snprintf(g_dir, sizeof g_dir, "%s/pp8-fuzz-%ld", base, (long)getpid());
    if (mkdir(g_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "pp8 fuzz: cannot make the scratch directory %s (%s): set PP8_FUZZ_TMP to a writable one\n",
                g_dir, strerror(errno));
        exit(1);
    }
    atexit(fuzz_dir_remove);
    return g_dir;
}

const char *fuzz_path(const char *name)
{
    snprintf(g_path, sizeof g_path, "%s/%s", fuzz_dir(), name);
    return g_path;
}

void fuzz_write(const char *name, const void *p, size_t n)
{
    const char *path = fuzz_path(name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "pp8 fuzz: cannot write %s (%s)\n", path, strerror(errno));
        exit(1);
    }
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w <= 0) {
            fprintf(stderr, "pp8 fuzz: cannot write %s (%s): is the scratch disk full?\n", path, strerror(errno));
            exit(1);
        }
        c += w, n -= (size_t)w;
    }
    close(fd);
}

void fuzz_remove(const char *name) { unlink(fuzz_path(name)); }

/* ---- input ---- */

int fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t seplen, const uint8_t **part, size_t *len,
               int max)
{
    size_t m = seplen, start = 0;
    int k = 0;
    for (size_t i = 0; k < max - 1 && m > 0 && i + m <= size;) {
        if (memcmp(data + i, sep, m) == 0) {
            part[k] = data + start, len[k] = i - start, k++;
            i += m;
            start = i;
        } else {
            i++;
        }
    }
    part[k] = data + start, len[k] = size - start, k++;
    return k;
}

char *fuzz_strndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) {
        fprintf(stderr, "pp8 fuzz: out of memory (%zu bytes)\n", n + 1);
        abort();
    }
    if (n) memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* ---- strict JSON ---- */

typedef struct {
    const unsigned char *p;
    size_t n, i;
} J;

static void j_ws(J *j)
{
    while (j->i < j->n && (j->p[j->i] == ' ' || j->p[j->i] == '\t' || j->p[j->i] == '\n' || j->p[j->i] == '\r')) j->i++;
}

static int j_hex(unsigned c) { return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'f'); }
static int j_digit(const J *j) { return j->i < j->n && j->p[j->i] >= '0' && j->p[j->i] <= '9'; }

static int j_string(J *j)
{
    if (j->i >= j->n || j->p[j->i] != '"') return 0;
    j->i++;
    while (j->i < j->n) {
        unsigned c = j->p[j->i];
        if (c == '"') {
            j->i++;
            return 1;
        }
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (++j->i >= j->n) return 0;
            c = j->p[j->i];
            if (c == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (j->i + k >= j->n || !j_hex(j->p[j->i + k])) return 0;
                j->i += 5;
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)c) || c == 0) return 0;
        }
        j->i++;
    }
    return 0;
}

static int j_number(J *j)
{
    if (j->i < j->n && j->p[j->i] == '-') j->i++;
    if (!j_digit(j)) return 0;
    if (j->p[j->i] == '0')
        j->i++;
    else
        while (j_digit(j)) j->i++;
    if (j->i < j->n && j->p[j->i] == '.') {
        j->i++;
        if (!j_digit(j)) return 0;
        while (j_digit(j)) j->i++;
    }
    if (j->i < j->n && (j->p[j->i] | 32) == 'e') {
        j->i++;
        if (j->i < j->n && (j->p[j->i] == '+' || j->p[j->i] == '-')) j->i++;
        if (!j_digit(j)) return 0;
        while (j_digit(j)) j->i++;
    }
    return 1;
}

static int j_value(J *j, int depth)
{
    if (depth > 512) return 0;
    j_ws(j);
    if (j->i >= j->n) return 0;
    unsigned c = j->p[j->i];
    if (c == '"') return j_string(j);
    if (c == '{' || c == '[') {
        unsigned close = c == '{' ? '}' : ']';
        j->i++;
        j_ws(j);
        if (j->i < j->n && j->p[j->i] == close) {
            j->i++;
            return 1;
        }
        size_t ks[64], kl[64]; /* the first keys as written, to refuse one written twice */
        int nk = 0;
        for (;;) {
            if (c == '{') {
                j_ws(j);
                size_t k0 = j->i;
                if (!j_string(j)) return 0;
                for (int q = 0; q < nk; q++)
                    if (kl[q] == j->i - k0 && !memcmp(j->p + ks[q], j->p + k0, kl[q])) {
                        j->i = k0;
                        return 0;
                    }
                if (nk < 64) ks[nk] = k0, kl[nk++] = j->i - k0;
                j_ws(j);
                if (j->i >= j->n || j->p[j->i] != ':') return 0;
                j->i++;
            }
            if (!j_value(j, depth + 1)) return 0;
            j_ws(j);
            if (j->i >= j->n) return 0;
            if (j->p[j->i] == close) {
                j->i++;
                return 1;
            }
            if (j->p[j->i] != ',') return 0;
            j->i++;
        }
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t m = strlen(lits[k]);
        if (j->n - j->i >= m && !memcmp(j->p + j->i, lits[k], m)) {
            j->i += m;
            return 1;
        }
    }
    return j_number(j);
}

int fuzz_json_valid(const char *p, size_t n, size_t *at)
{
    size_t bad = 0;
    if (utf8_validate(p, n, &bad) != 0) {
        if (at) *at = bad;
        return 0;
    }
    J j = {(const unsigned char *)p, n, 0};
    int ok = j_value(&j, 0);
    if (ok) j_ws(&j);
    if (at) *at = j.i;
    return ok && j.i == n;
}

/* ---- golden ---- */

const char *fuzz_golden(const char *sub)
{
    static char buf[4][1024];
    static int k;
    const char *g = getenv("PP8_GOLDEN");
    if (!g || !g[0]) g = PP8_FUZZ_GOLDEN_DEFAULT;
    char *out = buf[k++ % 4];
    snprintf(out, sizeof buf[0], "%s/%s", g, sub);
    struct stat st;
    if (stat(out, &st) != 0) {
        fprintf(stderr,
                "pp8 fuzz: %s: no such file or directory: set PP8_GOLDEN to the golden data (../shared/golden)\n", out);
        exit(1);
    }
    return out;
}
