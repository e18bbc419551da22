/* See file.h. */
#include "file.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *file_read_all(const char *path, size_t *len, Err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) {
            err_set(e, "%s: no such file", path);
        } else {
            err_set(e, "%s: cannot open (%s)", path, strerror(errno));
        }
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16384;
            char *g = realloc(buf, cap + 1);
            if (!g) {
                free(buf);
                fclose(f);
                err_set(e, "%s: out of memory", path);
                return NULL;
            }
            buf = g;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        err_set(e, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

cJSON *json_read_file(const char *path, Err *e)
{
    size_t n;
    char *buf = file_read_all(path, &n, e);
    if (!buf) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
    if (!root) {
        /* a line number and the text of that line is what lets someone fix a hand-edited config */
        const char *at = end && end >= buf && end <= buf + n ? end : buf;
        int line = 1;
        const char *start = buf;
        for (const char *q = buf; q < at; q++) {
            if (*q == '\n') {
                line++;
                start = q + 1;
            }
        }
        while (start < at && (*start == ' ' || *start == '\t')) start++;
        char near[64];
        size_t k = 0;
        for (const char *q = start; q < buf + n && *q != '\n' && k < sizeof near - 1; q++)
            near[k++] = (unsigned char)*q < 0x20 ? ' ' : *q;
        near[k] = 0;
        bool at_eof = true;
        for (const char *q = at; q < buf + n && at_eof; q++)
            at_eof = *q == ' ' || *q == '\t' || *q == '\n' || *q == '\r';
        err_set(e, "%s: malformed JSON near line %d: '%s'%s", path, line, near,
                at_eof ? " (unexpected end of file: the file is cut short)" : "");
        free(buf);
        return NULL;
    }
    free(buf);
    return root;
}

/* ---- crash-safe output ---- */

/* what to do about a failed write, for the one-line message */
static const char *file_write_hint(int err)
{
    switch (err) {
    case ENOSPC:
        return " (the filesystem is full: free space there or write elsewhere)";
    case EDQUOT:
        return " (the disk quota is used up)";
    case EFBIG:
        return " (past the file size limit, ulimit -f: raise it)";
    default:
        return "";
    }
}

int file_out_open(FileOut *o, const char *path, Err *e)
{
    *o = (FileOut){.fd = -1};
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return err_set(e, "%s: is a directory; give a file name", path);
    size_t n = strlen(path);
    o->path = malloc(n + 1);
    o->tmp = malloc(n + 32);
    if (!o->path || !o->tmp) {
        file_out_abort(o);
        return err_set(e, "%s: out of memory", path);
    }
    memcpy(o->path, path, n + 1);
    snprintf(o->tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (o->fd < 0) {
        err_set(e, "%s: cannot create %s (%s)", path, o->tmp, strerror(errno));
        file_out_abort(o);
        return -1;
    }
    return 0;
}

bool file_out_write(FileOut *o, const void *p, size_t n)
{
    const char *c = p;
    while (n && !o->err) {
        ssize_t k = write(o->fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            o->err = k < 0 ? errno : EIO;
            break;
        }
        c += k;
        n -= (size_t)k;
        o->written += (uint64_t)k;
    }
    return !o->err;
}

void file_out_abort(FileOut *o)
{
    if (o->fd >= 0) {
        close(o->fd);
        unlink(o->tmp);
    }
    free(o->path);
    free(o->tmp);
    *o = (FileOut){.fd = -1};
}

/* "dir/name" -> "dir", "name" -> ".", "/name" -> "/" */
static void file_dirname(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *s = strrchr(out, '/');
    if (!s)
        snprintf(out, cap, ".");
    else if (s == out)
        out[1] = 0;
    else
        *s = 0;
}

int file_out_commit(FileOut *o, Err *e)
{
    int err = o->err;
    if (!err && fsync(o->fd) != 0) err = errno;
    if (close(o->fd) != 0 && !err) err = errno;
    o->fd = -1;
    int rc = 0;
    if (err) {
        char of[40] = "";
        if (o->expect) snprintf(of, sizeof of, " of %llu", (unsigned long long)o->expect);
        rc = err_set(e, "%s: write failed after %llu%s bytes: %s%s", o->path, (unsigned long long)o->written, of,
                     strerror(err), file_write_hint(err));
    } else if (rename(o->tmp, o->path) != 0) {
        rc = err_set(e, "%s: cannot rename %s onto it (%s)", o->path, o->tmp, strerror(errno));
    }
    if (rc) {
        unlink(o->tmp);
    } else {
        char dir[4096];
        file_dirname(o->path, dir, sizeof dir);
        rc = file_fsync_dir(dir, e);
    }
    free(o->path);
    free(o->tmp);
    *o = (FileOut){.fd = -1};
    return rc;
}

int file_write_atomic(const char *path, const void *data, size_t len, Err *e)
{
    FileOut o;
    if (file_out_open(&o, path, e)) return -1;
    o.expect = len;
    file_out_write(&o, data, len);
    return file_out_commit(&o, e);
}

int file_fsync_dir(const char *dir, Err *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return err_set(e, "%s: cannot open the directory to sync it (%s)", dir, strerror(errno));
    /* EINVAL: a filesystem that cannot sync directories (nothing more to be had there) */
    int rc = fsync(fd) != 0 && errno != EINVAL ? err_set(e, "%s: fsync failed (%s)", dir, strerror(errno)) : 0;
    close(fd);
    return rc;
}

static int file_remove_at(int at, const char *name, int depth)
{
    if (unlinkat(at, name, 0) == 0 || errno == ENOENT) return 0;
    if (errno != EISDIR && errno != EPERM) return -1;
    if (depth > 64) {
        errno = ELOOP;
        return -1;
    }
    /* O_NOFOLLOW: a symlink inside is removed as a link (unlinkat above), never walked into */
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int rc = 0, err = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (file_remove_at(dirfd(d), de->d_name, depth + 1) != 0 && !err) err = errno;
    }
    closedir(d);
    if (err) {
        errno = err;
        rc = -1;
    } else if (unlinkat(at, name, AT_REMOVEDIR) != 0) {
        rc = -1;
    }
    return rc;
}

int file_remove_tree(const char *path) { return file_remove_at(AT_FDCWD, path, 0); }
