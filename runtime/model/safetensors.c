/* Safetensors checkpoints (safetensors.h): validate every header against its file's size, memory-map the
 * files, look tensors up by name, and write new files. Opening reads headers only; no tensor byte is
 * touched until a caller reads it; a file cut short under its map later ends the process with one line
 * naming it (SIGBUS handler below). Does not convert dtypes and knows no model's tensor names beyond the
 * prefixes Hugging Face checkpoints are saved with or without. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "../../kernels/check.h"
#include "../util/file.h"

/* The safetensors crate refuses headers over 100 MB; BLOOM-176B's largest is ~60 kB. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
/* Largest integer a JSON number (an IEEE double in cJSON) holds exactly. */
#define ST_MAX_JSON_INT 9007199254740992.0

static const char INDEX_NAME[] = "model.safetensors.index.json";
static const char SINGLE_NAME[] = "model.safetensors";
static const char REDOWNLOAD[] = "the file is truncated or corrupt; re-download it";

/* Hugging Face saves the same modules with or without these (BloomForCausalLM under "transformer.",
 * hub BLOOM shards without; OPTForCausalLM under "model.decoder.", some OPT exports without "model."). */
static const char *const PREFIXES[] = {"transformer.", "model.decoder.", "model.", "decoder."};
#define NPREFIXES (int)(sizeof PREFIXES / sizeof PREFIXES[0])

typedef struct StFile {
    char *path; /* full path, for messages */
    void *map;  /* the whole file, read-only */
    size_t size;
    const uint8_t *data; /* map + 8 + header length: data_offsets count from here */
    size_t data_bytes;
    int map_slot; /* in the SIGBUS table, -1 when none */
} StFile;

struct Checkpoint {
    char *dir;
    StFile *files;
    int nfiles;
    StTensor *tensors; /* in file order, files in index order */
    int ntensors;
    const StTensor **by_name; /* sorted by name for bsearch */
};

static char *st_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static char *st_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Full path where it resolves (messages should name the file the user can find), else as given. */
static char *st_fullpath(const char *path)
{
    char *r = realpath(path, NULL);
    return r ? r : st_strdup(path);
}

static void st_format_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++) {
        if (shape[i] < 0)
            n += (size_t)snprintf(buf + n, cap - n, "%s*", i ? ", " : "");
        else
            n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    }
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Non-negative integral JSON number that a double holds exactly. */
static bool st_json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= ST_MAX_JSON_INT)) return false;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return false;
    *out = u;
    return true;
}

/* bytes = dtype size x product(shape), refusing overflow of size_t. The product of the non-zero entries must
 * not overflow either, so that [0, 2^40, 2^40] and [2^40, 2^40, 0] are both refused (a check that stopped at
 * the first 0 would depend on the order). */
static bool st_nbytes(DType dt, int ndim, const int64_t *shape, size_t *out)
{
    uint64_t n = dtype_size(dt);
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return false;
        if (shape[i] == 0) empty = true;
        else if (__builtin_mul_overflow(n, (uint64_t)shape[i], &n)) return false;
    }
    if (n > SIZE_MAX) return false;
    *out = empty ? 0 : (size_t)n;
    return true;
}

/* ---- SIGBUS: a mapped file that shrinks under pp8 ----
 * A shard truncated (or rewritten shorter) after ckpt_open validated it faults with SIGBUS on the first
 * read past its new end, in whichever thread reads it. The handler looks the address up in the mapped
 * ranges below and turns it into one line naming the file and the rank, then _exit(1): under mpirun a
 * rank's non-zero exit makes mpirun end the others. Everything the handler touches is async-signal-safe:
 * atomics on a fixed table, stat(), write(), _exit(). A fault outside these ranges goes to whatever
 * handled SIGBUS before (Open MPI's backtrace, a sanitizer) or to the default action. */

#define ST_MAX_MAPS 4096 /* mapped files at once; more stay usable, they only lose the named message */

typedef struct StMapSlot {
    atomic_int used;            /* claimed by ckpt_open (compare-exchange), released by ckpt_close */
    atomic_uintptr_t begin, end; /* end == 0: no range published */
    char *_Atomic path;         /* owned by the slot while used */
} StMapSlot;

static StMapSlot g_maps[ST_MAX_MAPS];
static atomic_int g_maps_high; /* slots [0, high) were ever used: the handler scans no further */
static atomic_int g_bus_installed;
static struct sigaction g_bus_old;

static void sig_append(char *buf, size_t cap, size_t *n, const char *s)
{
    while (*s && *n + 1 < cap) buf[(*n)++] = *s++;
}

static void sig_append_u64(char *buf, size_t cap, size_t *n, uint64_t v)
{
    char d[24];
    int k = 0;
    do d[k++] = (char)('0' + v % 10); while ((v /= 10) && k < (int)sizeof d);
    while (k > 0 && *n + 1 < cap) buf[(*n)++] = d[--k];
}

static void st_on_sigbus(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    int high = atomic_load(&g_maps_high);
    for (int i = 0; si->si_code > 0 && i < high; i++) { /* si_code > 0: raised by a fault, not by kill */
        uintptr_t end = atomic_load(&g_maps[i].end), begin = atomic_load(&g_maps[i].begin);
        const char *path = atomic_load(&g_maps[i].path);
        if (!end || a < begin || a >= end || !path) continue;
        char msg[2048];
        size_t n = 0;
        struct stat st;
        sig_append(msg, sizeof msg, &n, "[pp8 ");
        sig_append(msg, sizeof msg, &n, pp8_log_prefix());
        sig_append(msg, sizeof msg, &n, "] error: ");
        sig_append(msg, sizeof msg, &n, path);
        sig_append(msg, sizeof msg, &n, ": the file changed while pp8 was reading it (SIGBUS reading byte ");
        sig_append_u64(msg, sizeof msg, &n, (uint64_t)(a - begin));
        sig_append(msg, sizeof msg, &n, " of the ");
        sig_append_u64(msg, sizeof msg, &n, (uint64_t)(end - begin));
        if (stat(path, &st) == 0) {
            sig_append(msg, sizeof msg, &n, " bytes it had when opened; it now has ");
            sig_append_u64(msg, sizeof msg, &n, (uint64_t)st.st_size);
        } else {
            sig_append(msg, sizeof msg, &n, " bytes it had when opened; it is now gone");
        }
        sig_append(msg, sizeof msg, &n, "): something truncated or rewrote it; restore the file (re-download it) "
                                        "and leave checkpoints unchanged while pp8 runs\n");
        if (n > 0 && msg[n - 1] != '\n') msg[n - 1] = '\n'; /* cut short: still one whole line */
        for (size_t off = 0; off < n;) {
            ssize_t w = write(STDERR_FILENO, msg + off, n - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
        _exit(1);
    }
    if (g_bus_old.sa_flags & SA_SIGINFO) {
        if (g_bus_old.sa_sigaction) {
            g_bus_old.sa_sigaction(sig, si, uc);
            return;
        }
    } else if (g_bus_old.sa_handler != SIG_DFL && g_bus_old.sa_handler != SIG_IGN) {
        g_bus_old.sa_handler(sig);
        return;
    }
    /* the default action: blocked while we run, delivered (and fatal) as soon as the handler returns */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void st_bus_install(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&g_bus_installed, &expected, 1)) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = st_on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &g_bus_old) != 0) atomic_store(&g_bus_installed, 0);
}

/* Publishes [map, map + size) for the handler; returns the slot, or -1 when the table is full (the file
 * still works; a SIGBUS on it then takes the default path). */
static int st_map_register(const void *map, size_t size, const char *path)
{
    st_bus_install();
    char *copy = st_strdup(path);
    if (!copy) return -1;
    for (int i = 0; i < ST_MAX_MAPS; i++) {
        int expected = 0;
        if (!atomic_compare_exchange_strong(&g_maps[i].used, &expected, 1)) continue;
        atomic_store(&g_maps[i].path, copy);
        atomic_store(&g_maps[i].begin, (uintptr_t)map);
        atomic_store(&g_maps[i].end, (uintptr_t)map + size);
        int high = atomic_load(&g_maps_high);
        while (high < i + 1 && !atomic_compare_exchange_weak(&g_maps_high, &high, i + 1)) {
        }
        return i;
    }
    free(copy);
    return -1;
}

static void st_map_unregister(int slot)
{
    if (slot < 0 || slot >= ST_MAX_MAPS) return;
    atomic_store(&g_maps[slot].end, 0);
    atomic_store(&g_maps[slot].begin, 0);
    char *path = atomic_exchange(&g_maps[slot].path, NULL);
    free(path);
    atomic_store(&g_maps[slot].used, 0);
}

/* ---- one file ---- */

typedef struct StEntry { /* a validated header entry, before it joins the checkpoint */
    StTensor t;
    uint64_t begin, end;
} StEntry;

static int st_cmp_begin(const void *a, const void *b)
{
    const StEntry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static void st_free_entries(StEntry *en, int n)
{
    for (int i = 0; i < n; i++) free(en[i].t.name);
    free(en);
}

/* One header entry: dtype, shape, data_offsets, all checked against the data section's size. */
static int st_parse_entry(StEntry *out, const cJSON *item, const StFile *f, Err *e)
{
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return err_set(e, "%s: header entry '%s' is not an object with dtype, shape and data_offsets: %s", f->path,
                       name, REDOWNLOAD);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(jd))
        return err_set(e, "%s: tensor '%s' has no \"dtype\" string: %s", f->path, name, REDOWNLOAD);
    int dt = dtype_parse(jd->valuestring);
    if (dt < 0)
        return err_set(e,
                       "%s: tensor '%s' has dtype %s, which pp8 does not read (F32, F16, BF16, I8, U8, I32, I64); "
                       "convert the checkpoint to float16 or bfloat16",
                       f->path, name, jd->valuestring);
    if (!cJSON_IsArray(js)) return err_set(e, "%s: tensor '%s' has no \"shape\" list: %s", f->path, name, REDOWNLOAD);
    int ndim = cJSON_GetArraySize(js);
    if (ndim > ST_MAX_DIMS)
        return err_set(e, "%s: tensor '%s' has %d dimensions; pp8 reads at most %d", f->path, name, ndim, ST_MAX_DIMS);
    StEntry en = {.t = {.dtype = (DType)dt, .ndim = ndim}};
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, js)
    {
        uint64_t d;
        if (!st_json_u64(v, &d) || d > INT64_MAX)
            return err_set(e, "%s: tensor '%s' shape entry %d is not an integer in [0, 2^53]: %s", f->path, name, i,
                           REDOWNLOAD);
        en.t.shape[i++] = (int64_t)d;
    }
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !st_json_u64(cJSON_GetArrayItem(jo, 0), &en.begin) ||
        !st_json_u64(cJSON_GetArrayItem(jo, 1), &en.end))
        return err_set(e,
                       "%s: tensor '%s' data_offsets is not a pair [begin, end] of integers in [0, 2^53]: %s",
                       f->path, name, REDOWNLOAD);
    if (en.begin > en.end)
        return err_set(e, "%s: tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin: %s", f->path,
                       name, en.begin, en.end, REDOWNLOAD);
    if (en.end > f->data_bytes)
        return err_set(e,
                       "%s: tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data (%zu "
                       "bytes): %s",
                       f->path, name, en.begin, en.end, f->data_bytes, REDOWNLOAD);
    char sh[160];
    st_format_shape(sh, sizeof sh, ndim, en.t.shape);
    size_t bytes;
    if (!st_nbytes(en.t.dtype, ndim, en.t.shape, &bytes))
        return err_set(e, "%s: tensor '%s' is %s %s, whose size in bytes overflows 64-bit integers: %s", f->path, name,
                       dtype_name(en.t.dtype), sh, REDOWNLOAD);
    if (bytes != en.end - en.begin)
        return err_set(
            e, "%s: tensor '%s' is %s %s but data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64 " bytes: %s",
            f->path, name, dtype_name(en.t.dtype), sh, en.begin, en.end, en.end - en.begin, REDOWNLOAD);
    en.t.bytes = bytes;
    en.t.name = st_strdup(name);
    if (!en.t.name) return err_set(e, "%s: out of memory reading the header", f->path);
    *out = en;
    return 0;
}

/* Maps f->path and validates its header; appends its tensors to ck (data pointers set). */
static int st_open_file(Checkpoint *ck, int fi, Err *e)
{
    StFile *f = &ck->files[fi];
    /* O_NONBLOCK: a FIFO named like a shard must be refused below, not wait for a writer forever */
    int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        struct stat lst;
        if (errno == ENOENT && lstat(f->path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
            char to[1024];
            ssize_t k = readlink(f->path, to, sizeof to - 1);
            to[k > 0 ? k : 0] = 0;
            return err_set(e,
                           "%s: a symbolic link to %s, which does not exist (a Hugging Face cache whose blob is "
                           "missing?): the download is incomplete; re-download it",
                           f->path, to);
        }
        if (errno == ENOENT) return err_set(e, "%s: no such file", f->path);
        return err_set(e, "%s: cannot open (%s)", f->path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, "%s: not a regular file", f->path);
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        return err_set(e,
                       "%s: only %zu bytes, too short for a safetensors file (8-byte header length, then the "
                       "header): %s",
                       f->path, f->size, REDOWNLOAD);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return err_set(e, "%s: mmap failed (%s)", f->path, strerror(errno));
    }
    f->map_slot = st_map_register(f->map, f->size, f->path); /* before the header is read: it may shrink too */
    const uint8_t *p = f->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i]; /* little-endian on every host */
    if (n < 2 || n > ST_MAX_HEADER)
        return err_set(e, "%s: header length %" PRIu64 " is %s: not a safetensors file, or %s", f->path, n,
                       n < 2 ? "too small for a JSON object" : "over 100 MB", REDOWNLOAD);
    if (n > f->size - 8)
        return err_set(e, "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes): %s", f->path, n,
                       f->size, REDOWNLOAD);
    f->data = p + 8 + n;
    f->data_bytes = f->size - 8 - (size_t)n;

    const char *hdr = (const char *)p + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        return err_set(e, "%s: header is not valid JSON (error near byte %zu of %" PRIu64 "): %s", f->path, at, n,
                       REDOWNLOAD);
    }
    /* writers pad with spaces to 8 bytes; anything else after the object means a damaged header */
    for (const char *q = end; q < hdr + n; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != 0) {
            cJSON_Delete(root);
            return err_set(e, "%s: header has bytes after its JSON object (at byte %zu): %s", f->path,
                           (size_t)(q - hdr), REDOWNLOAD);
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return err_set(e, "%s: header is not a JSON object: not a safetensors file, or %s", f->path, REDOWNLOAD);
    }

    int cap = cJSON_GetArraySize(root), ne = 0, rc = 0;
    StEntry *en = calloc(cap > 0 ? (size_t)cap : 1, sizeof *en);
    if (!en) {
        cJSON_Delete(root);
        return err_set(e, "%s: out of memory reading the header", f->path);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (strcmp(item->string, "__metadata__") == 0) continue;
        if ((rc = st_parse_entry(&en[ne], item, f, e)) != 0) break;
        ne++;
    }
    cJSON_Delete(root);
    if (rc) {
        st_free_entries(en, ne);
        return rc;
    }
    /* Overlapping tensors would alias each other's data; sorting by begin makes it one pass. */
    qsort(en, (size_t)ne, sizeof *en, st_cmp_begin);
    for (int i = 1; i < ne; i++) {
        if (en[i].begin < en[i - 1].end) {
            rc = err_set(e,
                         "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64
                         "] overlap in data_offsets: %s",
                         f->path, en[i - 1].t.name, en[i - 1].begin, en[i - 1].end, en[i].t.name, en[i].begin,
                         en[i].end, REDOWNLOAD);
            st_free_entries(en, ne);
            return rc;
        }
    }
    StTensor *grown = realloc(ck->tensors, (size_t)(ck->ntensors + ne + 1) * sizeof *grown);
    if (!grown) {
        st_free_entries(en, ne);
        return err_set(e, "%s: out of memory", f->path);
    }
    ck->tensors = grown;
    for (int i = 0; i < ne; i++) {
        StTensor *t = &ck->tensors[ck->ntensors++];
        *t = en[i].t;
        t->data = f->data + en[i].begin;
        t->file = fi;
    }
    free(en); /* names now belong to ck */
    return 0;
}

/* ---- the checkpoint ---- */

static int st_cmp_name(const void *a, const void *b)
{
    const StTensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static const StTensor *st_find_exact(const Checkpoint *ck, const char *name)
{
    StTensor key = {.name = (char *)name};
    const StTensor *kp = &key;
    const StTensor **hit = bsearch(&kp, ck->by_name, (size_t)ck->ntensors, sizeof *ck->by_name, st_cmp_name);
    return hit ? *hit : NULL;
}

static int st_add_file(Checkpoint *ck, const char *path, Err *e)
{
    StFile *g = realloc(ck->files, (size_t)(ck->nfiles + 1) * sizeof *g);
    if (!g) return err_set(e, "%s: out of memory", path);
    ck->files = g;
    memset(&g[ck->nfiles], 0, sizeof *g);
    g[ck->nfiles].map_slot = -1;
    g[ck->nfiles].path = st_strdup(path);
    if (!g[ck->nfiles].path) return err_set(e, "%s: out of memory", path);
    ck->nfiles++;
    return 0;
}

/* Sorts the names once every file is in, and refuses a name stored twice (which copy is meant?). */
static int st_index_names(Checkpoint *ck, Err *e)
{
    ck->by_name = malloc((size_t)(ck->ntensors + 1) * sizeof *ck->by_name);
    if (!ck->by_name) return err_set(e, "%s: out of memory", ck->dir);
    for (int i = 0; i < ck->ntensors; i++) ck->by_name[i] = &ck->tensors[i];
    qsort(ck->by_name, (size_t)ck->ntensors, sizeof *ck->by_name, st_cmp_name);
    for (int i = 1; i < ck->ntensors; i++) {
        const StTensor *a = ck->by_name[i - 1], *b = ck->by_name[i];
        if (strcmp(a->name, b->name) == 0)
            return err_set(e, "%s: tensor '%s' is stored twice (also in %s): the checkpoint is corrupt; re-download it",
                           ck->files[b->file].path, b->name, ck->files[a->file].path);
    }
    return 0;
}

static bool st_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Why an index's shard name is refused, or NULL when it is a plain *.safetensors name in the index's own
 * directory. Paths in a file are data: "/", "\\" (a Windows separator some tools write), ".." and absolute
 * paths would let an index reach any file the user can read. Symbolic links are followed when the shard
 * is opened: a Hugging Face cache links every file to ../../blobs/<hash>, and the link was made by the
 * user's own download, not named by the index. */
static const char *st_shard_name_bad(const cJSON *it)
{
    if (!cJSON_IsString(it)) return "is not a string";
    const char *n = it->valuestring;
    if (!n[0]) return "is empty";
    if (n[0] == '/') return "is an absolute path";
    if (strchr(n, '/')) return "contains '/'";
    if (strchr(n, '\\')) return "contains '\\'";
    if (strstr(n, "..")) return "contains '..'";
    for (const char *q = n; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) return "contains a control character";
    if (!st_ends_with(n, ".safetensors") || !strcmp(n, ".safetensors")) return "does not end in .safetensors";
    return NULL;
}

/* model.safetensors.index.json: the shards it names, and a check that each tensor is where it says. */
static int st_open_index(Checkpoint *ck, const char *index_path, Err *e)
{
    cJSON *root = json_read_file(index_path, e);
    if (!root) return -1;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int rc = 0;
    if (!cJSON_IsObject(wm) || cJSON_GetArraySize(wm) == 0) {
        rc = err_set(e, "%s: no \"weight_map\" object naming the shards: not a safetensors index; re-download it",
                     index_path);
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, wm)
    {
        const char *bad = st_shard_name_bad(it);
        if (bad) {
            rc = err_set(e,
                         "%s: weight_map entry for tensor '%s' names the shard %s%s%s, which %s: a shard must be a "
                         "plain file name in the index's directory ending in .safetensors (like "
                         "model-00001-of-00002.safetensors); the index is corrupt or points outside its "
                         "directory; re-download it",
                         index_path, it->string, cJSON_IsString(it) ? "\"" : "(a JSON ",
                         cJSON_IsString(it) ? it->valuestring : cJSON_IsNumber(it) ? "number" : "non-string",
                         cJSON_IsString(it) ? "\"" : ")", bad);
            goto done;
        }
        char *shard = st_join(ck->dir, it->valuestring);
        if (!shard) {
            rc = err_set(e, "%s: out of memory", index_path);
            goto done;
        }
        bool seen = false;
        for (int i = 0; i < ck->nfiles && !seen; i++) seen = strcmp(ck->files[i].path, shard) == 0;
        if (!seen) {
            struct stat st;
            if (lstat(shard, &st) != 0) { /* a dangling link is reported when it is opened */
                rc = err_set(e,
                             "%s: no such file (a shard %s lists, for tensor '%s'): the download is incomplete; "
                             "re-download it",
                             shard, INDEX_NAME, it->string);
            } else {
                rc = st_add_file(ck, shard, e);
            }
        }
        free(shard);
        if (rc) goto done;
    }
    for (int i = 0; i < ck->nfiles && !rc; i++) rc = st_open_file(ck, i, e);
    if (!rc) rc = st_index_names(ck, e);
    cJSON_ArrayForEach(it, wm)
    {
        if (rc) break;
        const StTensor *t = st_find_exact(ck, it->string);
        char *shard = st_join(ck->dir, it->valuestring);
        if (!shard) {
            rc = err_set(e, "%s: out of memory", index_path);
        } else if (!t) {
            rc = err_set(e,
                         "%s: tensor '%s' is listed in %s but not stored in this shard: index and shards do not "
                         "match; re-download them",
                         shard, it->string, INDEX_NAME);
        } else if (strcmp(ck->files[t->file].path, shard) != 0) {
            rc = err_set(e,
                         "%s: tensor '%s' is listed in %s for this shard but is stored in %s: index and shards do "
                         "not match; re-download them",
                         shard, it->string, INDEX_NAME, ck->files[t->file].path);
        }
        free(shard);
    }
done:
    cJSON_Delete(root);
    return rc;
}

static char *st_dirname(const char *path)
{
    char *d = st_strdup(path);
    if (!d) return NULL;
    char *slash = strrchr(d, '/');
    if (!slash)
        strcpy(d, ".");
    else if (slash == d)
        d[1] = 0;
    else
        *slash = 0;
    return d;
}

/* lstat: a dangling link counts, so opening it says what is missing rather than "no such file" */
static bool st_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A file path with its directory resolved and its own name kept. A file that is a symbolic link (a Hugging
 * Face cache links every file to ../../blobs/<hash>) must not be resolved itself: the index is recognised by
 * its name, its shards lie beside the link, not beside the blob, and messages name what the user gave. */
static char *st_resolve_file(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *dir = st_dirname(path);
    char *rdir = dir ? realpath(dir, NULL) : NULL;
    char *out = rdir ? st_join(strcmp(rdir, "/") ? rdir : "", base) : st_strdup(path);
    free(dir);
    free(rdir);
    return out;
}

/* A name from a file may hold any byte; a message must stay one line. */
static void st_one_line(Err *e)
{
    for (char *q = e ? e->msg : NULL; q && *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
}

int ckpt_open(Checkpoint **out, const char *path, Err *e)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(e,
                       "%s: no such file or directory (expected a checkpoint directory with %s or %s, or a "
                       ".safetensors file)",
                       path, SINGLE_NAME, INDEX_NAME);
    Checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return err_set(e, "%s: out of memory", path);
    char *full = S_ISDIR(st.st_mode) ? st_fullpath(path) : st_resolve_file(path), *single = NULL, *index = NULL;
    int rc = 0;
    if (!full) {
        rc = err_set(e, "%s: out of memory", path);
    } else if (S_ISDIR(st.st_mode)) {
        ck->dir = full;
        full = NULL;
        single = st_join(ck->dir, SINGLE_NAME);
        index = st_join(ck->dir, INDEX_NAME);
        if (!single || !index) {
            rc = err_set(e, "%s: out of memory", path);
        } else if (st_exists(single)) { /* transformers looks for the single file first, too */
            rc = st_add_file(ck, single, e);
            if (!rc) rc = st_open_file(ck, 0, e);
            if (!rc) rc = st_index_names(ck, e);
        } else if (st_exists(index)) {
            rc = st_open_index(ck, index, e);
        } else {
            rc = err_set(e, "%s: no such file (expected %s or %s in %s)", single, SINGLE_NAME, INDEX_NAME, ck->dir);
        }
    } else {
        ck->dir = st_dirname(full);
        if (!ck->dir) {
            rc = err_set(e, "%s: out of memory", path);
        } else if (st_ends_with(full, ".index.json")) {
            rc = st_open_index(ck, full, e);
        } else {
            rc = st_add_file(ck, full, e);
            if (!rc) rc = st_open_file(ck, 0, e);
            if (!rc) rc = st_index_names(ck, e);
        }
    }
    free(full);
    free(single);
    free(index);
    if (rc) {
        ckpt_close(ck);
        st_one_line(e);
        return rc;
    }
    *out = ck;
    return 0;
}

void ckpt_close(Checkpoint *ck)
{
    if (!ck) return;
    for (int i = 0; i < ck->nfiles; i++) {
        st_map_unregister(ck->files[i].map_slot); /* before munmap: the range may be mapped again */
        if (ck->files[i].map) munmap(ck->files[i].map, ck->files[i].size);
        free(ck->files[i].path);
    }
    for (int i = 0; i < ck->ntensors; i++) free(ck->tensors[i].name);
    free(ck->files);
    free(ck->tensors);
    free(ck->by_name);
    free(ck->dir);
    free(ck);
}

const StTensor *ckpt_find(const Checkpoint *ck, const char *name)
{
    const StTensor *t = st_find_exact(ck, name);
    if (t) return t;
    char buf[1024];
    for (int i = 0; i < NPREFIXES; i++) { /* stored without the prefix the caller used */
        size_t n = strlen(PREFIXES[i]);
        if (strncmp(name, PREFIXES[i], n) == 0 && (t = st_find_exact(ck, name + n))) return t;
    }
    for (int i = 0; i < NPREFIXES; i++) { /* stored with a prefix the caller left out */
        if ((size_t)snprintf(buf, sizeof buf, "%s%s", PREFIXES[i], name) < sizeof buf && (t = st_find_exact(ck, buf)))
            return t;
    }
    return NULL;
}

static int ckpt_get_checked(const Checkpoint *ck, const StTensor **out, int want_dtype, int ndim,
                            const int64_t *shape, Err *e, const char *name)
{
    const StTensor *t = ckpt_find(ck, name);
    if (!t)
        return err_set(e,
                       "checkpoint %s has no tensor '%s' (with or without a transformer./model./model.decoder. "
                       "prefix): checkpoint and config.json do not match, or the checkpoint is incomplete",
                       ck->dir, name);
    const char *file = ck->files[t->file].path;
    if (want_dtype >= 0 ? t->dtype != (DType)want_dtype
                        : !(t->dtype == DTYPE_F32 || t->dtype == DTYPE_F16 || t->dtype == DTYPE_BF16))
        return err_set(e, "%s: tensor '%s' has dtype %s, expected %s", file, t->name, dtype_name(t->dtype),
                       want_dtype >= 0 ? dtype_name((DType)want_dtype) : "a float dtype (F32, F16 or BF16)");
    if (ndim >= 0) {
        bool ok = t->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || shape[i] == t->shape[i];
        if (!ok) {
            char got[160], want[160];
            st_format_shape(got, sizeof got, t->ndim, t->shape);
            st_format_shape(want, sizeof want, ndim, shape);
            return err_set(e, "%s: tensor '%s' has shape %s, expected %s: checkpoint and config.json do not match",
                           file, t->name, got, want);
        }
    }
    *out = t;
    return 0;
}

int ckpt_get(const Checkpoint *ck, const StTensor **out, int want_dtype, int ndim, const int64_t *shape, Err *e,
             const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    *out = NULL;
    int rc = ckpt_get_checked(ck, out, want_dtype, ndim, shape, e, name);
    if (rc) st_one_line(e);
    return rc;
}

int ckpt_count(const Checkpoint *ck) { return ck->ntensors; }
const StTensor *ckpt_tensor(const Checkpoint *ck, int i) { return i >= 0 && i < ck->ntensors ? &ck->tensors[i] : NULL; }
const char *ckpt_file_path(const Checkpoint *ck, int file)
{
    return file >= 0 && file < ck->nfiles ? ck->files[file].path : "?";
}
const char *ckpt_dir(const Checkpoint *ck) { return ck->dir; }

/* ---- writing ---- */

typedef struct StBuf {
    char *p;
    size_t n, cap;
} StBuf;

static bool st_buf_printf(StBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool st_buf_printf(StBuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return false;
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return true;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + (size_t)k + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return false;
        b->p = q;
        b->cap = cap;
    }
}

/* JSON string body: names are ASCII in practice, but a quote or control byte must not break the header. */
static bool st_buf_json_string(StBuf *b, const char *s)
{
    bool ok = st_buf_printf(b, "\"");
    for (; ok && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            ok = st_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            ok = st_buf_printf(b, "\\u%04x", c);
        else
            ok = st_buf_printf(b, "%c", c);
    }
    return ok && st_buf_printf(b, "\"");
}

static int st_cmp_wname(const void *a, const void *b)
{
    return strcmp((*(const StWriteTensor *const *)a)->name, (*(const StWriteTensor *const *)b)->name);
}

/* Validates the tensors and builds the header (8-byte padded) into h; bytes[i] = tensor i's data size. */
static int st_write_header(const char *path, const StWriteTensor *t, int n, size_t *bytes, StBuf *h, Err *e)
{
    if (n < 0) return err_set(e, "%s: negative tensor count", path);
    const StWriteTensor **sorted = calloc((size_t)n + 1, sizeof *sorted);
    if (!sorted) return err_set(e, "%s: out of memory", path);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (!t[i].name || !t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0 ||
            (unsigned)t[i].dtype >= DTYPE_COUNT || t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS ||
            !st_nbytes(t[i].dtype, t[i].ndim, t[i].shape, &bytes[i]))
            rc = err_set(e, "%s: tensor %d ('%s') has no name, an unknown dtype or an invalid shape", path, i,
                         t[i].name ? t[i].name : "");
        sorted[i] = &t[i];
    }
    if (!rc) qsort(sorted, (size_t)n, sizeof *sorted, st_cmp_wname);
    for (int i = 1; i < n && !rc; i++) {
        if (strcmp(sorted[i]->name, sorted[i - 1]->name) == 0)
            rc = err_set(e, "%s: tensor '%s' given twice", path, sorted[i]->name);
    }
    free(sorted);
    if (rc) return rc;

    /* header: offsets follow the order given; integers printed exactly, never in exponent form */
    bool ok = st_buf_printf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        ok = st_buf_printf(h, ",") && st_buf_json_string(h, t[i].name) &&
             st_buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(t[i].dtype));
        for (int d = 0; ok && d < t[i].ndim; d++) ok = st_buf_printf(h, "%s%" PRId64, d ? "," : "", t[i].shape[d]);
        ok = ok && st_buf_printf(h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + bytes[i]);
        off += bytes[i];
    }
    ok = ok && st_buf_printf(h, "}");
    while (ok && h->n % 8) ok = st_buf_printf(h, " "); /* so the data section starts 8-byte aligned */
    return ok ? 0 : err_set(e, "%s: out of memory building the header", path);
}

int st_write_size(const StWriteTensor *t, int n, uint64_t *size, Err *e)
{
    size_t *bytes = calloc((size_t)(n > 0 ? n : 0) + 1, sizeof *bytes);
    StBuf h = {0};
    int rc = bytes ? st_write_header("safetensors output", t, n, bytes, &h, e) : err_set(e, "out of memory");
    if (!rc) {
        *size = 8 + (uint64_t)h.n;
        for (int i = 0; i < n; i++) *size += bytes[i];
    }
    free(h.p);
    free(bytes);
    return rc;
}

int st_write_stream(const char *path, const StWriteTensor *t, int n, StFillFn fill, void *ctx, Err *e)
{
    size_t *bytes = calloc((size_t)(n > 0 ? n : 0) + 1, sizeof *bytes);
    StBuf h = {0};
    FileOut o = {.fd = -1};
    void *scratch = NULL;
    size_t scratch_cap = 0;
    int rc = 0;
    if (!bytes) return err_set(e, "%s: out of memory", path);
    if ((rc = st_write_header(path, t, n, bytes, &h, e))) goto done;
    for (int i = 0; i < n; i++) {
        if (!t[i].data && bytes[i] && !fill) {
            rc = err_set(e, "%s: tensor '%s' has no data", path, t[i].name);
            goto done;
        }
    }

    /* PATH.tmp.<pid>, fsynced and renamed into place (file.h): a killed writer leaves no half file */
    if ((rc = file_out_open(&o, path, e))) goto done;
    o.expect = 8 + (uint64_t)h.n;
    for (int i = 0; i < n; i++) o.expect += bytes[i];
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    bool ok = file_out_write(&o, len8, 8) && file_out_write(&o, h.p, h.n);
    for (int i = 0; ok && i < n; i++) {
        const void *src = t[i].data;
        if (!src && bytes[i]) {
            if (bytes[i] > scratch_cap) {
                free(scratch);
                scratch = malloc(bytes[i]);
                scratch_cap = scratch ? bytes[i] : 0;
                if (!scratch) {
                    rc = err_set(e, "%s: out of memory for tensor '%s' (%zu bytes)", path, t[i].name, bytes[i]);
                    break;
                }
            }
            if ((rc = fill(ctx, i, scratch, bytes[i], e)) != 0) break;
            src = scratch;
        }
        ok = file_out_write(&o, src, bytes[i]);
    }
    if (rc)
        file_out_abort(&o);
    else
        rc = file_out_commit(&o, e); /* reports a failed write: the file, the bytes, the reason */
done:
    free(scratch);
    free(h.p);
    free(bytes);
    return rc;
}

int st_write(const char *path, const StWriteTensor *t, int n, Err *e)
{
    return st_write_stream(path, t, n, NULL, NULL, e);
}
