/* See args.h. Each command owns its own flag loop; these only parse one value. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "file.h"

const char *cli_value(int argc, char **argv, int *i, Err *e)
{
    if (*i + 1 >= argc) {
        err_set(e, "%s needs a value (see --help)", argv[*i]);
        return NULL;
    }
    *i += 1;
    return argv[*i];
}

int cli_int(const char *s, const char *flag, int lo, int hi, int *out, Err *e)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return err_set(e, "%s %s: expected an integer in [%d, %d]", flag, s, lo, hi);
    *out = (int)v;
    return 0;
}

int cli_double(const char *s, const char *flag, double lo, double hi, double *out, Err *e)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return err_set(e, "%s %s: expected a number in [%g, %g]", flag, s, lo, hi);
    *out = v;
    return 0;
}

int cli_int_list(const char *s, const char *flag, int lo, int hi, int *out, int max, Err *e)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char buf[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof buf) return err_set(e, "%s %s: expected a comma-separated list", flag, s);
        memcpy(buf, p, len);
        buf[len] = 0;
        if (n >= max) return err_set(e, "%s %s: at most %d values", flag, s, max);
        if (cli_int(buf, flag, lo, hi, &out[n], e)) return -1;
        n++;
        p += len;
        if (*p == ',') p++;
    }
    if (n == 0) return err_set(e, "%s: empty list", flag);
    return n;
}

int cli_write_json(const char *path, cJSON *root, Err *e)
{
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return err_set(e, "--json %s: out of memory formatting the results", path);
    size_t n = strlen(text);
    text[n] = '\n'; /* cJSON_Print's NUL becomes the final newline: the file gets n + 1 bytes */
    int rc = file_write_atomic(path, text, n + 1, e);
    if (rc && e) { /* the flag first, as every other --json message */
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        err_set(e, "--json %s", msg);
    }
    free(text);
    return rc;
}
