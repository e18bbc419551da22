/* pp8 tokenize / pp8 detokenize: text to token ids and back with a tokenizer directory, as Hugging
 * Face's tokenizer(text) (add_special_tokens=True by default) and tokenizer.decode(ids) do. No model
 * and no weights: every rank loads the tokenizer and does the same work, so the ranks fail alike
 * without talking; only rank 0 prints. */
#include "../../parallel/control.h"
#include "../text/tokenizer.h"
#include "../util/file.h"
#include "commands.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage_tokenize(void)
{
    printf("usage: [mpirun -np N] pp8 tokenize --tokenizer DIR (--text TEXT | --file F) [--no-special]\n\n"
           "Prints the token ids of a text, comma-separated on one line, as Hugging Face's tokenizer(text)\n"
           "gives them: special tokens written in the text (e.g. </s>) become their ids, and the\n"
           "post-processor adds its tokens (OPT: </s> = 2 in front; BLOOM: none).\n\n"
           "  --tokenizer DIR   directory with tokenizer.json, or vocab.json + merges.txt\n"
           "                    (+ tokenizer_config.json, special_tokens_map.json)\n"
           "  --text TEXT       the text (UTF-8), exactly as given: no trimming, no newline added\n"
           "  --file F          the text is the whole file F (UTF-8, byte for byte)\n"
           "  --no-special      do not add the post-processor's tokens (add_special_tokens=False)\n");
}

static void usage_detokenize(void)
{
    printf("usage: [mpirun -np N] pp8 detokenize --tokenizer DIR --ids 1,2,3 [--skip-special] [--raw]\n\n"
           "Prints the text of token ids and a newline, as Hugging Face's tokenizer.decode(ids) gives it:\n"
           "ids without a token are dropped, bytes are joined across tokens and each ill-formed UTF-8\n"
           "sequence becomes U+FFFD. No space clean-up.\n\n"
           "  --tokenizer DIR   directory with tokenizer.json, or vocab.json + merges.txt\n"
           "  --ids IDS         comma-separated token ids (\"\" for none)\n"
           "  --skip-special    drop special tokens (skip_special_tokens=True)\n"
           "  --raw             print exactly the decoded bytes, without the newline\n");
}

int cmd_tokenize(int argc, char **argv, Err *e)
{
    const char *dir = NULL, *text = NULL, *file = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (ctl_rank() == 0) usage_tokenize();
            return 0;
        }
        if (!strcmp(argv[i], "--tokenizer")) {
            if (!(dir = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(argv[i], "--text")) {
            if (!(text = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(argv[i], "--file")) {
            if (!(file = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(argv[i], "--no-special")) {
            special = false;
        } else {
            return err_set(e, "unknown option '%s' (pp8 tokenize --help)", argv[i]);
        }
    }
    if (!dir)
        return err_set(e,
                       "--tokenizer DIR is required (the directory with tokenizer.json, or vocab.json + merges.txt)");
    if (!text == !file) return err_set(e, "give the text with exactly one of --text TEXT or --file F");

    size_t len = 0;
    char *owned = NULL;
    if (file) {
        Err fe = {{0}};
        if (!(owned = file_read_all(file, &len, &fe))) return err_set(e, "--file %s", fe.msg);
        text = owned;
    } else {
        len = strlen(text);
    }
    Tokenizer *t = NULL;
    int32_t *ids = NULL;
    int n = 0, rc = tok_load(&t, dir, e);
    if (!rc) {
        Err ee = {{0}};
        rc = tok_encode(t, text, len, special, &ids, &n, &ee);
        if (rc) err_set(e, "%s%s: %s", file ? "--file " : "--text", file ? file : "", ee.msg);
    }
    if (!rc && ctl_rank() == 0) {
        char num[16];
        for (int i = 0; i < n; i++) {
            int k = snprintf(num, sizeof num, i ? ",%d" : "%d", ids[i]);
            fwrite(num, 1, (size_t)k, stdout);
        }
        fputc('\n', stdout);
    }
    free(ids);
    free(owned);
    tok_free(t);
    return rc;
}

/* "1,2,3" (or "") -> ids; any id in [0, 2^31) is accepted: HF drops the ones without a token */
static int parse_ids(const char *s, int32_t **out, int *n, Err *e)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return err_set(e, "--ids: out of memory");
    int k = 0;
    const char *p = s;
    while (*p == ' ') p++;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',' && *end != ' ')) {
            free(ids);
            return err_set(e, "--ids %.80s: expected comma-separated token ids in [0, %d]", s, INT32_MAX);
        }
        ids[k++] = (int32_t)v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') {
            p++;
            while (*p == ' ') p++;
            if (!*p) {
                free(ids);
                return err_set(e, "--ids %.80s: a comma with no id after it", s);
            }
        }
    }
    *out = ids;
    *n = k;
    return 0;
}

int cmd_detokenize(int argc, char **argv, Err *e)
{
    const char *dir = NULL, *list = NULL;
    bool skip = false, raw = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (ctl_rank() == 0) usage_detokenize();
            return 0;
        }
        if (!strcmp(argv[i], "--tokenizer")) {
            if (!(dir = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(argv[i], "--ids")) {
            if (!(list = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(argv[i], "--skip-special")) {
            skip = true;
        } else if (!strcmp(argv[i], "--raw")) {
            raw = true;
        } else {
            return err_set(e, "unknown option '%s' (pp8 detokenize --help)", argv[i]);
        }
    }
    if (!dir)
        return err_set(e,
                       "--tokenizer DIR is required (the directory with tokenizer.json, or vocab.json + merges.txt)");
    if (!list) return err_set(e, "--ids is required, e.g. --ids 1,2,3");
    int32_t *ids = NULL;
    int n = 0;
    if (parse_ids(list, &ids, &n, e)) return -1;
    Tokenizer *t = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = tok_load(&t, dir, e);
    if (!rc && tok_decode(t, ids, n, skip, &text, &len)) rc = err_set(e, "--ids: out of memory decoding %d ids", n);
    if (!rc && ctl_rank() == 0) {
        fwrite(text, 1, len, stdout);
        if (!raw) fputc('\n', stdout);
    }
    free(text);
    free(ids);
    tok_free(t);
    return rc;
}
