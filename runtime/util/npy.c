/* See npy.h. Only '<f4', C order, 1-d or 2-d: enough for logits, nothing more. */
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int npy_write_f32(const char *path, const float *data, int rows, int cols, Err *e)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return err_set(e, "%s: cannot open for writing", path);
    unsigned short hlen = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hlen, 2, 1, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    size_t cnt = (size_t)rows * (size_t)cols;
    int ok = fwrite(data, sizeof(float), cnt, f) == cnt;
    if (fclose(f) || !ok) return err_set(e, "%s: write failed (disk full?)", path);
    return 0;
}

int npy_read_f32(const char *path, float **data, int *rows, int *cols, Err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "%s: no such file", path);
    unsigned char pre[10];
    char hdr[4096];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) || pre[6] != 1) {
        fclose(f);
        return err_set(e, "%s: not a version-1 .npy file", path);
    }
    size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    if (hlen >= sizeof hdr || fread(hdr, 1, hlen, f) != hlen) {
        fclose(f);
        return err_set(e, "%s: truncated .npy header", path);
    }
    hdr[hlen] = 0;
    const char *sh = strstr(hdr, "'shape': (");
    if (!strstr(hdr, "'<f4'") || strstr(hdr, "'fortran_order': True") || !sh) {
        fclose(f);
        return err_set(e, "%s: only float32 C-order arrays are read", path);
    }
    *rows = 0;
    *cols = 0;
    sscanf(sh, "'shape': (%d, %d", rows, cols);
    size_t cnt = (size_t)*rows * (size_t)(*cols > 0 ? *cols : 1);
    *data = malloc(cnt * sizeof(float) + 1);
    if (!*data || fread(*data, sizeof(float), cnt, f) != cnt) {
        fclose(f);
        free(*data);
        return err_set(e, "%s: truncated .npy data", path);
    }
    fclose(f);
    return 0;
}
