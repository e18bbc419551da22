/* See npy.h. Only '<f4', C order, 1-d or 2-d: enough for logits, nothing more. */
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"

int npy_write_f32(const char *path, const float *data, int rows, int cols, Err *e)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    unsigned short hlen = (unsigned short)(n + pad + 1);
    size_t cnt = (size_t)rows * (size_t)cols;
    char pre[10 + 128 + 64 + 1];
    memcpy(pre, "\x93NUMPY\x01\x00", 8);
    memcpy(pre + 8, &hlen, 2);
    memcpy(pre + 10, hdr, (size_t)n);
    memset(pre + 10 + n, ' ', (size_t)pad);
    pre[10 + n + pad] = '\n';
    FileOut o; /* temp file + fsync + rename: a killed run never leaves half an array under PATH */
    if (file_out_open(&o, path, e)) return -1;
    o.expect = (uint64_t)total + (uint64_t)pad + cnt * sizeof(float);
    file_out_write(&o, pre, (size_t)(total + pad));
    file_out_write(&o, data, cnt * sizeof(float));
    return file_out_commit(&o, e);
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
