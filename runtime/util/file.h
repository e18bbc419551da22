/* Whole files into memory, and JSON files parsed with cJSON: what config.json, the checkpoint index,
 * the tokenizer files and --file inputs are read with. Errors are one line naming the file (and, for
 * malformed JSON, the line and its text). Not for large binary data (safetensors are memory-mapped). */
#ifndef PP8_FILE_H
#define PP8_FILE_H

#include <stddef.h>

#include "err.h"

/* the whole file, NUL-terminated (the NUL not counted in *len; NUL bytes inside are data); free it */
char *file_read_all(const char *path, size_t *len, Err *e);
/* the file parsed as JSON (cJSON_Delete it), or NULL with "PATH: malformed JSON near line N: '...'" */
struct cJSON;
struct cJSON *json_read_file(const char *path, Err *e);

#endif
