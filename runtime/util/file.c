/* See file.h. */
#include "file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

