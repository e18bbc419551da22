/* Whole files into memory, and JSON files parsed with cJSON: what config.json, the checkpoint index,
 * the tokenizer files and --file inputs are read with. Errors are one line naming the file (and, for
 * malformed JSON, the line and its text). Not for large binary data (safetensors are memory-mapped).
 * Also the crash-safe writer (FileOut) every output a user keeps goes through. */
#ifndef PP8_FILE_H
#define PP8_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* the whole file, NUL-terminated (the NUL not counted in *len; NUL bytes inside are data); free it */
char *file_read_all(const char *path, size_t *len, Err *e);
/* the file parsed as JSON (cJSON_Delete it), or NULL with "PATH: malformed JSON near line N: '...'" */
struct cJSON;
struct cJSON *json_read_file(const char *path, Err *e);

/* Crash-safe output, for every file a user keeps (--json, --out .npy, pp8 quantize's files): bytes go to
 * PATH.tmp.<pid> beside PATH, which is fsynced, renamed onto PATH, and its directory fsynced, so a run
 * killed at any moment leaves the old PATH or the new one, never half of one. A failed write (disk full,
 * ulimit -f with SIGXFSZ ignored, as main() does) is reported by file_out_commit, naming PATH, the bytes
 * written and the reason, and the temporary file is removed. */
typedef struct FileOut {
    int fd; /* unbuffered: written counts what reached the file, for an exact message */
    char *path, *tmp;
    uint64_t written; /* bytes written so far */
    uint64_t expect;  /* total the caller will write, for the message (0 = not known) */
    int err;          /* errno of the first failed write, 0 while none failed */
} FileOut;
int file_out_open(FileOut *o, const char *path, Err *e);
/* false once a write has failed (later writes are dropped); file_out_commit reports it */
bool file_out_write(FileOut *o, const void *p, size_t n);
/* flush, fsync, close, rename onto PATH, fsync PATH's directory; on any failure the temporary is removed */
int file_out_commit(FileOut *o, Err *e);
void file_out_abort(FileOut *o); /* closes and removes the temporary (after a caller's own error) */
/* the whole of data into path through a FileOut */
int file_write_atomic(const char *path, const void *data, size_t len, Err *e);
/* fsync a directory, so the names created or renamed in it survive a crash */
int file_fsync_dir(const char *dir, Err *e);
/* rm -r, never following a symlink; 0, or -1 with errno (what is left stays) */
int file_remove_tree(const char *path);

#endif
