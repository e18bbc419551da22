/* main() for a fuzz target built without libFuzzer (CTest, every build): feeds it each file named, and
 * each file inside each directory named (sorted), once. Fails when a path is missing or when nothing
 * was fed: a replay test that checked no input must not pass. A failing input aborts inside the target
 * with its check's line; the name of the file being fed is printed first. */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: cannot open\n", path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            unsigned char *g = realloc(buf, cap * 2);
            if (!g) free(buf);
            buf = g, cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        return -1;
    }
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    /* an exact-size copy, so ASan sees a read past the input's end */
    unsigned char *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    int fed = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
            bad = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[i]))
                bad = 1;
            else
                fed++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            fprintf(stderr, "replay: %s: cannot read the directory\n", argv[i]);
            bad = 1;
            continue;
        }
        char **names = NULL;
        int n = 0;
        for (struct dirent *de; (de = readdir(d));) {
            if (de->d_name[0] == '.') continue;
            char **g = realloc(names, sizeof *names * (size_t)(n + 1));
            if (!g) break;
            names = g;
            names[n] = malloc(strlen(argv[i]) + strlen(de->d_name) + 2);
            if (!names[n]) break;
            sprintf(names[n], "%s/%s", argv[i], de->d_name);
            n++;
        }
        closedir(d);
        if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str);
        for (int k = 0; k < n; k++) {
            struct stat fs;
            if (stat(names[k], &fs) == 0 && S_ISREG(fs.st_mode)) {
                if (replay_file(names[k]))
                    bad = 1;
                else
                    fed++;
            }
            free(names[k]);
        }
        free(names);
    }
    if (fed == 0) {
        fprintf(stderr, "replay: no input was fed (give files or directories holding them)\n");
        return 1;
    }
    fprintf(stderr, "replay: %d inputs, %s\n", fed, bad ? "some paths were missing" : "no failure");
    return bad;
}
