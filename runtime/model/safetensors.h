/* Hugging Face safetensors checkpoints: one model.safetensors or shards listed in
 * model.safetensors.index.json, memory-mapped. Every header entry is validated against the file size
 * before any data is touched. Also writes safetensors files (pp8 quantize, test fixtures).
 * Does not convert dtypes or know about models. */
#ifndef PP8_SAFETENSORS_H
#define PP8_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../../kernels/dtype.h"
#include "../util/err.h"

#define ST_MAX_DIMS 8

typedef struct StTensor {
    char *name;                /* as stored in the file */
    DType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;          /* inside the mmap; read-only */
    size_t bytes;
    int file;                  /* index into Checkpoint files (for messages) */
} StTensor;

typedef struct Checkpoint Checkpoint;

/* dir: a directory with model.safetensors or model.safetensors.index.json (+ shards), or one
 * .safetensors file. Opens and validates every header; maps files lazily is not required. Symbolic links
 * are followed (a Hugging Face cache snapshot) and files are named as given; an index's shard names must
 * be plain *.safetensors names in its directory. The first open installs a SIGBUS handler: a mapped file
 * truncated while pp8 reads it ends the process (_exit(1)) with one line naming the file and the rank. */
int ckpt_open(Checkpoint **out, const char *path, Err *e);
void ckpt_close(Checkpoint *ck);

/* Lookup by name: exact, then with the "transformer." / "model." / "model.decoder." prefix
 * removed or added (BLOOM hub checkpoints have no prefix; OPT ones may lack "model."). NULL if absent. */
const StTensor *ckpt_find(const Checkpoint *ck, const char *name);

/* Fetch by printf-style name with validation: fails naming the tensor and the file, the expected and the
 * found dtype/shape. want_dtype < 0 accepts any float dtype (F32/F16/BF16). shape entries < 0 match any;
 * ndim < 0 accepts any shape (shape may then be NULL). */
int ckpt_get(const Checkpoint *ck, const StTensor **out, int want_dtype, int ndim, const int64_t *shape, Err *e,
             const char *fmt, ...) __attribute__((format(printf, 7, 8)));

int ckpt_count(const Checkpoint *ck);
const StTensor *ckpt_tensor(const Checkpoint *ck, int i);
const char *ckpt_file_path(const Checkpoint *ck, int file);
const char *ckpt_dir(const Checkpoint *ck);

/* Writing: tensors are written in the order given, 8-byte aligned header, __metadata__ {"format":"pt"}.
 * The format has no padding between tensors: give the widest elements first (F32, then 16-bit, then
 * 8-bit) so every tensor's data stays aligned in a reader's mmap. Writes path.tmp.<pid>, fsyncs it,
 * renames it onto path and fsyncs the directory (file_out_open), so a killed writer leaves no half file. */
typedef struct StWriteTensor {
    const char *name;
    DType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StWriteTensor;
int st_write(const char *path, const StWriteTensor *t, int n, Err *e);
/* The exact size of the file st_write would write (8 + header + data), for a free-space check first. */
int st_write_size(const StWriteTensor *t, int n, uint64_t *size, Err *e);

/* Produces the bytes of tensor i (buf holds exactly its size) for st_write_stream; returns 0 or -1 with e
 * set. Lets a writer hold one tensor at a time instead of the whole model (pp8 quantize). */
typedef int (*StFillFn)(void *ctx, int i, void *buf, size_t bytes, Err *e);
/* As st_write, but tensors whose data is NULL are produced by fill (called once each, in order). */
int st_write_stream(const char *path, const StWriteTensor *t, int n, StFillFn fill, void *ctx, Err *e);

#endif
