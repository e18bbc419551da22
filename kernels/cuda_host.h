/* Host-side decisions of the CUDA backend as plain C, so they build and are unit-tested on machines
 * without nvcc or a GPU: cuBLASLt matrix layouts of the "TN" call as plain structs, which int8 path a
 * shape takes, scratch/workspace sizes, pointer alignment classes, the GEMM plan cache's bookkeeping and
 * device selection; plus the few plain-C entry points of the CUDA backend the runtime and tests call.
 * Nothing here includes a CUDA header or launches anything; kernels/cuda/ turns these into real calls. */
#ifndef PP8_CUDA_HOST_H
#define PP8_CUDA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cuBLASLt descriptors as plain data (all matrices column-major, CUBLASLT_ORDER_COL) ---- */
typedef enum { CUDA_MAT_I8 = 0, CUDA_MAT_I32, CUDA_MAT_F16, CUDA_MAT_BF16, CUDA_MAT_F32 } CudaMatType;
typedef enum {
    CUDA_COMPUTE_32I = 0, /* CUBLAS_COMPUTE_32I, scale type CUDA_R_32I: alpha/beta are int32_t */
    CUDA_COMPUTE_32F      /* CUBLAS_COMPUTE_32F, scale type CUDA_R_32F: alpha/beta are float */
} CudaCompute;

typedef struct CudaMatLayout {
    CudaMatType type;
    uint64_t rows, cols; /* cublasLtMatrixLayoutCreate's uint64_t rows, cols */
    int64_t ld;          /* and int64_t ld */
} CudaMatLayout;

typedef struct CudaGemmDesc {
    CudaCompute compute;
    int transa, transb;    /* 1 = CUBLAS_OP_T */
    CudaMatLayout a, b, c; /* D uses c's layout (C == D, in place) */
} CudaGemmDesc;

/* y (M, N) row-major = x (M, K) row-major . w (N, K)^T row-major, in the form bitsandbytes >= 0.45 uses
 * (csrc/ops.cu igemmlt; CUDA-NOTES.md §1-2): cuBLASLt A = w as a K x N column-major matrix (ld K) with
 * TRANSA = T, B = x as K x M (ld K), C = D = y as N x M (ld N), which is y row-major. No data transform,
 * no COL32 layouts. in: DTYPE_I8 (out must be DTYPE_I32; int8 IMMA also needs N and K multiples of 4)
 * or DTYPE_F16 / DTYPE_BF16 (out = in or DTYPE_F32). Returns 0, or -1 for a combination cuBLASLt's
 * type table does not list or a shape it cannot take. */
int cuda_gemm_describe(CudaGemmDesc *g, DType in, DType out, int m, int n, int k);

/* int8 IMMA requirement set 1 (cuBLAS doc, cublasLtMatmul, "regular ordering"): cuBLASLt's m and k,
 * i.e. N and K here, multiples of 4. */
int cuda_int8_shape_ok(int n, int k);

/* Rows up to which `linear` takes the int8 GEMV kernel (each weight byte read once per call). */
#define CUDA_GEMV_MAX_ROWS 8
/* 1 when an int8 product of M rows takes the dp4a GEMV kernel (M <= CUDA_GEMV_MAX_ROWS, or a shape
 * IMMA cannot take, which the kernel then runs in blocks of CUDA_GEMV_MAX_ROWS rows); 0 = cuBLASLt. */
int cuda_int8_use_gemv(int m, int n, int k);

/* The GEMV kernel for K % 16 == 0: blocks of CUDA_GEMV4_WARPS warps, CUDA_GEMV4_OUTS outputs a warp.
 * With a K split of CUDA_GEMV_KSPLIT, the warps of a block share the same outputs, each summing a
 * quarter of K (int32 partial sums: exact in any order). */
#define CUDA_GEMV4_WARPS 4
#define CUDA_GEMV4_OUTS 4
#define CUDA_GEMV_KSPLIT 4
/* K split of the GEMV for M rows, N outputs, K inputs on a GPU of `sms` multiprocessors: CUDA_GEMV_KSPLIT
 * when the unsplit grid has fewer than two blocks per SM (then too few weight loads are in flight to
 * stream HBM: OPT-1.3B fc2, N 2048 x K 8192, ran at 260 GB/s at M = 8 on an H100) and every warp still
 * gets at least one full pass of its lanes over its part of K; else 1. */
int cuda_int8_gemv_ksplit(int m, int n, int k, int sms);

/* ---- the kernel sets: PP8_CUDA_KERNELS=v1 (default: today's kernels) | v2 (issue 15's decode kernels,
 * kernels/cuda/cuda_v2.cu, selectable side by side until they have won on a GPU) ---- */
typedef enum { CUDA_KERNELS_V1 = 1, CUDA_KERNELS_V2 = 2 } CudaKernels;
/* s NULL or "" gives v1. Returns 0, or -1 with one line in err naming the variable and the choices. */
int cuda_kernels_parse(const char *s, CudaKernels *out, char *err, size_t errlen);
const char *cuda_kernels_name(CudaKernels k);

/* v2 GEMVs (int8 and 16-bit weights) for M <= CUDA_GEMV_MAX_ROWS, K a multiple of 16 bytes' elements:
 * compiled per row tile (1, 2, 4, 8), blocks of CUDA_GEMV4_WARPS warps with CUDA_GEMV4_OUTS outputs each,
 * ksplit warps of a block sharing outputs over parts of K. */
#define CUDA_GEMV2_MAX_KSPLIT 4
/* rows up to which v2 takes a 16-bit linear (its fp32 FMAs per weight byte grow with the rows; cuBLASLt
 * above) */
#define CUDA_GEMV16_MAX_ROWS 4
typedef struct CudaGemv2Plan {
    int rows_tile; /* the compiled row count: the smallest of 1, 2, 4, 8 >= M */
    int ksplit;    /* 1, 2 or 4 */
    long blocks;   /* grid size */
    double waves;  /* blocks / (sms * blocks_per_sm) */
} CudaGemv2Plan;
/* The smallest row tile >= m (1, 2, 4, 8), or 0 when m is out of 1..CUDA_GEMV_MAX_ROWS. */
int cuda_gemv2_rows_tile(int m);
/* Plan for M rows, N outputs, K inputs of elem_bytes (1: int8, 2: fp16/bf16) on `sms` SMs: the K split
 * whose grid spreads most evenly over the SMs (mean blocks per SM over the most any SM gets: v1's
 * 320 blocks for OPT-13B out/fc2 gave 76 SMs 2 blocks and 56 SMs 3), with at least CUDA_GEMV2_FILL
 * blocks per SM to keep enough weight loads in flight, among splits whose part of K still gives each
 * lane two 16-byte loads per output (the pipeline's depth); a larger split only when it wins by > 5%.
 * blocks_per_sm (the compiled kernel's occupancy) only sizes `waves`. Returns 0, or -1 for a shape v2
 * does not take (M out of range, K not a multiple of 16 bytes' elements, non-positive sizes). */
#define CUDA_GEMV2_FILL 3.0
int cuda_gemv2_plan(int m, int n, int k, int elem_bytes, int sms, int blocks_per_sm, CudaGemv2Plan *p);

/* The v2 activation quantizer (two launches, many blocks, no serial compaction): columns per block of
 * its statistics kernel, and its block count for K; the outlier columns as a bitmask of K/8 bytes
 * (bit e of byte c: column 8c + e), compacted into ascending columns by one block in one scan. */
#define CUDA_QUANT2_THREADS 256
#define CUDA_QUANT2_COLS (8 * CUDA_QUANT2_THREADS)
int cuda_quant2_blocks(int k);
/* Thread i of the compacting block (of `threads`) scans bitmask bytes [*b0, *b1) of nbytes: contiguous
 * segments in thread order, so an exclusive scan of their popcounts gives each its first output slot
 * and the columns come out ascending. */
void cuda_quant2_segment(int nbytes, int threads, int i, int *b0, int *b1);

/* Bytes of Linear.w in the CUDA backend: the row-major [N, K] matrix as given (int8 CB or 16-bit W);
 * 0 for a weight dtype the backend does not take. Every N and K is accepted. */
size_t cuda_linear_bytes(DType wdt, int n, int k);

/* cuBLASLt workspace: 32 MiB from Hopper (sm_90) on, 4 MiB before (cuBLAS doc, cublasSetWorkspace()). */
size_t cuda_workspace_bytes(int cc_major);

/* Largest power of two <= 256 that divides the address (256 for NULL): what a pointer guarantees to
 * CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES (default 256; CUDA-NOTES.md §3). */
uint32_t cuda_ptr_align(uintptr_t p);

/* Widest copy unit (16, 8, 4, 2 or 1 bytes) that divides both addresses and the row size. */
int cuda_copy_width(uintptr_t dst, uintptr_t src, size_t row_bytes);

/* Blocks of `block` threads for a grid-stride loop over n items: ceil(n / block), at least 1, capped
 * at 65535 (the loop covers the rest). */
unsigned cuda_grid_1d(size_t n, unsigned block);

/* ---- device memory the backend holds: its own count of every cudaMalloc it makes ---- */
/* Live and peak bytes of the blocks the backend allocated (weights, KV cache, activations, scratch,
 * the cuBLASLt workspace), by pointer, so a free subtracts what its block took. Host code, so tests
 * run it without a GPU; the backend calls it beside each cudaMalloc / cudaFree (no lock: one thread
 * per rank allocates). */
typedef struct CudaMemBlock {
    const void *p;
    size_t bytes;
} CudaMemBlock;
typedef struct CudaMemMeter {
    size_t live, peak; /* bytes */
    size_t n, cap;     /* blocks held */
    CudaMemBlock *blk;
} CudaMemMeter;
/* 0, or -1 when the table cannot grow (the block is then not counted) */
int cuda_mem_meter_add(CudaMemMeter *m, const void *p, size_t bytes);
/* the bytes block p was added with (0 for a pointer it does not hold: NULL, or never added) */
size_t cuda_mem_meter_remove(CudaMemMeter *m, const void *p);
void cuda_mem_meter_free(CudaMemMeter *m);

/* What a rank holds on its GPU, for `pp8 bench` beside the plan (issue 15's peak_device_bytes). */
typedef struct CudaMemStats {
    size_t alloc_live, alloc_peak; /* the backend's own cudaMallocs (CudaMemMeter) */
    size_t scratch;                /* of alloc_live: reserve()'s scratch and the cuBLASLt workspace */
    size_t context;                /* in use on the GPU when the backend was created (its CUDA context,
                                      and whatever other processes, e.g. ranks sharing the GPU, held) */
    size_t used_peak;              /* the largest (in use now - context) cudaMemGetInfo showed at a call
                                      of backend_cuda_mem_stats or of reserve(): what this rank added,
                                      cuBLASLt's, NCCL's and the graphs' own memory included */
    size_t total;                  /* the GPU's memory */
} CudaMemStats;

/* ---- scratch, sized once by reserve() (no cudaMalloc in the token loop) ---- */
/* The int32 product buffer (also the fp32 outlier sums) holds at most this many elements; larger
 * products run in blocks of rows. */
#define CUDA_C32_MAX_ELEMS ((size_t)32 << 20)
/* Outlier columns go through cuBLASLt in chunks padded to a multiple of this (zero columns add +0). */
#define CUDA_OUTLIER_PAD 16
#define CUDA_OUTLIER_CHUNK_MAX 256
#define CUDA_WD_MAX_BYTES ((size_t)32 << 20)

typedef struct CudaScratchPlan {
    size_t workspace; /* cuBLASLt workspace */
    size_t ca;        /* (max_rows, max_k) int8 CA */
    size_t sca;       /* (max_rows) float */
    size_t flags;     /* (max_k) uint8 outlier-column flags */
    size_t cols;      /* (max_k) int32 outlier columns, ascending, + 1 for the count */
    size_t c32;       /* int32 products / fp32 outlier sums, c32_elems elements */
    size_t xo;        /* (max_rows, chunk) fp16 gathered outlier columns of x */
    size_t wd;        /* (max_n, chunk) fp16 dequantized outlier weight columns */
    size_t c32_elems;
    int chunk;    /* outlier columns per cuBLASLt call, a multiple of CUDA_OUTLIER_PAD */
    size_t total; /* sum of the above, each rounded up to 256 bytes */
} CudaScratchPlan;
void cuda_scratch_plan(CudaScratchPlan *p, int cc_major, int max_rows, int max_k, int max_n);

/* Outlier columns per cuBLASLt call for outputs up to max_n: Wd chunk within CUDA_WD_MAX_BYTES,
 * a multiple of CUDA_OUTLIER_PAD in [CUDA_OUTLIER_PAD, CUDA_OUTLIER_CHUNK_MAX]. */
int cuda_outlier_chunk(int max_n);
/* Chunk i of ncols outlier columns: first column c0 and count nc (return value: the padded width,
 * nc rounded up to CUDA_OUTLIER_PAD; 0 when i is past the end). */
int cuda_outlier_chunk_cols(int ncols, int chunk, int i, int *c0, int *nc);
/* Rows per block so that rows x n fits in cap elements (at least 1, at most rows). */
int cuda_rows_per_block(size_t cap, int rows, int n);

/* Dynamic shared memory of the attention kernel: q (E floats) and the scores of S positions. */
size_t cuda_attn_smem_bytes(int head_dim, int max_seq);

/* ---- GEMM plan cache: heuristics are queried once per key and reused (cuBLAS doc 3.1.2) ---- */
#define CUDA_PLAN_SLOTS 128
typedef struct CudaGemmKey {
    int in, out; /* DType of x/w and of y */
    int m, n, k;
    int align_a, align_b, align_c; /* cuda_ptr_align of w, x, y: the MIN_ALIGNMENT preferences */
} CudaGemmKey;
typedef struct CudaPlanCache {
    CudaGemmKey key[CUDA_PLAN_SLOTS];
    unsigned char used[CUDA_PLAN_SLOTS];
    int next; /* round-robin victim when full */
} CudaPlanCache;
void cuda_plan_cache_init(CudaPlanCache *c);
/* Slot holding key. *fresh = 1 when the caller must build the plan there; *evicted = 1 when the slot
 * held another plan that must be destroyed first. */
int cuda_plan_cache_find(CudaPlanCache *c, const CudaGemmKey *key, int *fresh, int *evicted);

/* ---- device selection (node-local rank -> device), called before backend_cuda_create ---- */
/* How node-local ranks map to the node's GPUs. ONE: dev = local_rank, at most one rank per GPU (spare
 * GPUs allowed). EXCLUSIVE: as ONE, and every GPU gets a rank (local_size == ndev). SHARED: round robin,
 * dev = local_rank % ndev, any rank count; NCCL cannot put two ranks of one communicator on one GPU
 * (it refuses with "Duplicate GPU detected"), so shared GPUs pass hidden states over MPI through host
 * memory, and each rank's memory budget is its GPU's memory divided by the ranks on it. */
typedef enum { CUDA_RANKS_ONE, CUDA_RANKS_EXCLUSIVE, CUDA_RANKS_SHARED } CudaRankMode;

/* What the node-local ranks see of the node's GPUs, from each rank's visible devices (PCI bus ids):
 * SAME, every rank the same list (the usual case: the node-local rank picks the device); OWN, pairwise
 * disjoint lists (each rank was given its own GPUs: CUDA_VISIBLE_DEVICES per rank, Slurm's
 * --gpus-per-task=1; every rank then uses its first visible device); MIXED, neither (refused: two ranks
 * could pick one GPU). ids: local_size rows of max_dev ids of `stride` bytes (NUL-terminated); counts:
 * each rank's visible devices (at most max_dev are compared). */
typedef enum { CUDA_VIEW_SAME, CUDA_VIEW_OWN, CUDA_VIEW_MIXED } CudaNodeView;
CudaNodeView cuda_node_view(const char *ids, const int *counts, int local_size, int max_dev, size_t stride);

/* Returns 0 with *dev and *sharing (the node-local ranks on *dev, this one included), or -1 with one
 * line in err (no device; more ranks than GPUs without SHARED; EXCLUSIVE mismatch; a MIXED view). With
 * view OWN each rank has a GPU of its own: device 0 of what it sees, in every mode. */
int cuda_pick_device(int local_rank, int local_size, int ndev, CudaNodeView view, CudaRankMode mode, int *dev,
                     int *sharing, char *err, size_t errlen);

/* ---- plain-C entry points of the CUDA backend (stubs answering "not built" without CUDA) ---- */
/* Visible CUDA devices; 0 when there is none, the driver fails, or pp8 was built without CUDA. */
int backend_cuda_device_count(void);
/* The PCI bus ids ("0000:19:00.0") of the first max visible devices, `stride` bytes each, without
 * creating a CUDA context; returns how many were written (0 without CUDA or a device). */
int backend_cuda_bus_ids(char *ids, int max, size_t stride);
/* The backend's cudaStream_t (non-blocking, created by backend_cuda_create on o->device): pass it to
 * transport_nccl_create so hidden states move in order with the compute. NULL for other backends. */
void *backend_cuda_stream(Backend *b);
/* The activation quantization of the int8 `linear` alone, for tests and tools, on device buffers:
 * x (rows, k) fp16 -> q (rows, k) int8 (outlier columns zeroed), absmax (rows) float, cols (k) int32
 * ascending outlier columns; returns their count. t = 0 gives the per-row weight quantization (CB, SCB)
 * of bitsandbytes. Synchronizes the stream. */
int backend_cuda_int8_quantize(Backend *b, const uint16_t *x, int rows, int k, float t, int8_t *q, float *absmax,
                               int32_t *cols);
/* Read bandwidth of the backend's GPU in GB/s: a kernel that reads `bytes` of device memory (well past
 * the L2), timed with events, median of 5 after a warm-up. The weight-read roofline of `pp8 bench`.
 * 0 for other backends or when the buffer cannot be allocated. */
double backend_cuda_read_gbs(Backend *b, size_t bytes);
/* Total memory of the backend's GPU in bytes (cudaMemGetInfo), the planner's budget for a GPU rank;
 * 0 for other backends. */
size_t backend_cuda_mem_bytes(Backend *b);
/* Fills *s (CudaMemStats; samples cudaMemGetInfo now, after a sync of the backend's stream); returns 0,
 * or -1 when this is not a CUDA backend (or pp8 was built without CUDA). */
int backend_cuda_mem_stats(Backend *b, CudaMemStats *s);
/* The device's fp16 conversions against numerics.h's, exhaustively, on the backend's GPU: every one of
 * the 65,536 fp16 values through the hardware fp16 -> fp32 conversion (the v2 kernels') and every one of
 * the 2^32 fp32 bit patterns through the hardware fp32 -> fp16 round to nearest even, each compared with
 * pp8_h2f / pp8_f2h. mismatch[0], [1]: values whose bits differ (NaN in and NaN out on both sides is no
 * mismatch: payloads may differ); first[0], [1]: the first such input (or -1). Returns 0, or -1 when
 * this is not a CUDA backend. */
int backend_cuda_conv_check(Backend *b, uint64_t mismatch[2], int64_t first[2]);
/* Why the CUDA module (libpp8_cuda.so, cuda_loader.c) could not be loaded, or NULL (loaded, or not
 * tried: no GPU can be visible) */
const char *backend_cuda_load_error(void);

#ifdef __cplusplus
}
#endif
#endif
