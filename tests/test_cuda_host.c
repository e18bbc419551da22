/* The CUDA backend's and NCCL transport's host-side decisions, on the CPU (no GPU needed): cuBLASLt
 * layouts checked by running a column-major GEMM the way cuBLASLt defines it on the described layouts and
 * comparing with the row-major product, int8 path selection, scratch/workspace sizes, alignment classes,
 * the plan cache, device selection, and NCCL request/issue/group logic. Does not launch anything. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda_host.h"
#include "../parallel/nccl_host.h"
#include "test_util.h"

/* D = op(A) . op(B) with cuBLASLt's definitions: column-major element (r, c) of a matrix with leading
 * dimension ld is p[r + c * ld]; op(A) = A^T when transa. D is m x n with m = C.rows, n = C.cols. */
static void colmajor_gemm(const CudaGemmDesc *g, const double *a, const double *b, double *d)
{
    int m = (int)g->c.rows, n = (int)g->c.cols;
    int k = g->transa ? (int)g->a.rows : (int)g->a.cols;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int l = 0; l < k; l++) {
                double av = g->transa ? a[l + (size_t)i * g->a.ld] : a[i + (size_t)l * g->a.ld];
                double bv = g->transb ? b[j + (size_t)l * g->b.ld] : b[l + (size_t)j * g->b.ld];
                s += av * bv;
            }
            d[i + (size_t)j * g->c.ld] = s;
        }
}

static void test_gemm_layouts(void)
{
    const int shapes[][3] = {{1, 4, 4}, {5, 12, 16}, {9, 8, 36}, {33, 96, 128}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        CudaGemmDesc g;
        CHECK_ON(cuda_gemm_describe(&g, DTYPE_I8, DTYPE_I32, m, n, k) == 0, "int8 %dx%dx%d", m, n, k);
        CHECK_ON(g.compute == CUDA_COMPUTE_32I && g.transa == 1 && g.transb == 0, "int8 must be TN with 32I compute");
        CHECK_ON(g.a.type == CUDA_MAT_I8 && g.b.type == CUDA_MAT_I8 && g.c.type == CUDA_MAT_I32, "int8 types");
        /* bitsandbytes igemmlt: A (K, N_out, ld K), B (K, M, ld K), C (N_out, M, ld N_out) */
        CHECK_ON(g.a.rows == (uint64_t)k && g.a.cols == (uint64_t)n && g.a.ld == k, "A layout");
        CHECK_ON(g.b.rows == (uint64_t)k && g.b.cols == (uint64_t)m && g.b.ld == k, "B layout");
        CHECK_ON(g.c.rows == (uint64_t)n && g.c.cols == (uint64_t)m && g.c.ld == n, "C layout");
        /* the layouts applied to row-major buffers give y = x w^T row-major */
        double *x = malloc(sizeof(double) * m * k), *w = malloc(sizeof(double) * n * k);
        double *y = malloc(sizeof(double) * m * n), *d = malloc(sizeof(double) * m * n);
        for (int i = 0; i < m * k; i++) x[i] = (i * 7 % 13) - 6;
        for (int i = 0; i < n * k; i++) w[i] = (i * 5 % 11) - 5;
        for (int r = 0; r < m; r++)
            for (int o = 0; o < n; o++) {
                double acc = 0;
                for (int j = 0; j < k; j++) acc += x[r * k + j] * w[o * k + j];
                y[r * n + o] = acc;
            }
        colmajor_gemm(&g, w, x, d); /* cuBLASLt A = weights, B = activations */
        CHECK_ON(!memcmp(y, d, sizeof(double) * m * n), "TN layouts do not reproduce x w^T for %dx%dx%d", m, n, k);
        CHECK_ON(cuda_gemm_describe(&g, DTYPE_F16, DTYPE_F32, m, n, k) == 0 && g.compute == CUDA_COMPUTE_32F &&
                  g.a.type == CUDA_MAT_F16 && g.c.type == CUDA_MAT_F32,
              "f16 -> f32 (LM head)");
        colmajor_gemm(&g, w, x, d);
        CHECK_ON(!memcmp(y, d, sizeof(double) * m * n), "f16 layouts do not reproduce x w^T");
        free(x), free(w), free(y), free(d);
    }
    CudaGemmDesc g;
    CHECK_ON(cuda_gemm_describe(&g, DTYPE_BF16, DTYPE_BF16, 3, 5, 7) == 0 && g.a.type == CUDA_MAT_BF16, "bf16");
    CHECK_ON(cuda_gemm_describe(&g, DTYPE_F16, DTYPE_F16, 3, 5, 7) == 0, "f16 any shape");
    CHECK_ON(cuda_gemm_describe(&g, DTYPE_I8, DTYPE_I32, 3, 10, 16) == -1, "int8 N %% 4 refused");
    CHECK_ON(cuda_gemm_describe(&g, DTYPE_I8, DTYPE_I32, 3, 12, 37) == -1, "int8 K %% 4 refused");
    CHECK_ON(cuda_gemm_describe(&g, DTYPE_I8, DTYPE_F16, 3, 12, 16) == -1, "int8 must output int32");
    CHECK_ON(cuda_gemm_describe(&g, DTYPE_F16, DTYPE_BF16, 3, 12, 16) == -1, "f16 -> bf16 is not in the table");
    CHECK_ON(cuda_gemm_describe(&g, DTYPE_F32, DTYPE_F32, 3, 12, 16) == -1, "f32 inputs not used");
    CHECK_ON(cuda_gemm_describe(&g, DTYPE_F16, DTYPE_F16, 0, 12, 16) == -1, "empty refused");
}

static void test_paths_and_sizes(void)
{
    CHECK_ON(cuda_int8_shape_ok(96, 128) && !cuda_int8_shape_ok(19, 36) && !cuda_int8_shape_ok(36, 37), "IMMA shapes");
    CHECK_ON(cuda_int8_use_gemv(1, 96, 128) && cuda_int8_use_gemv(8, 96, 128), "M <= 8 takes the GEMV");
    CHECK_ON(!cuda_int8_use_gemv(9, 96, 128) && !cuda_int8_use_gemv(512, 14336, 57344), "M > 8 takes cuBLASLt");
    CHECK_ON(cuda_int8_use_gemv(16, 130, 250) && cuda_int8_use_gemv(33, 19, 37), "odd shapes take the GEMV");
    /* K split: OPT-1.3B on an H100 (132 SMs): fc2 (N 2048, K 8192) and out (2048, 2048) have 128 blocks
     * unsplit; qkv (6144, 2048) 384 and fc1 (8192, 2048) 512 */
    CHECK_ON(cuda_int8_gemv_ksplit(8, 2048, 8192, 132) == CUDA_GEMV_KSPLIT, "fc2 splits K");
    CHECK_ON(cuda_int8_gemv_ksplit(1, 2048, 2048, 132) == CUDA_GEMV_KSPLIT, "out splits K");
    CHECK_ON(cuda_int8_gemv_ksplit(8, 6144, 2048, 132) == 1 && cuda_int8_gemv_ksplit(1, 8192, 2048, 132) == 1,
             "qkv and fc1 fill the GPU unsplit");
    CHECK_ON(cuda_int8_gemv_ksplit(8, 2048, 8192, 60) == 1, "a GPU of 60 SMs is filled by 128 blocks");
    CHECK_ON(cuda_int8_gemv_ksplit(1, 256, 1024, 132) == 1, "K too short for 4 parts of a full lane pass");
    CHECK_ON(cuda_int8_gemv_ksplit(1, 256, 2048, 132) == CUDA_GEMV_KSPLIT, "K of exactly 4 lane passes splits");
    CHECK_ON(cuda_int8_gemv_ksplit(1, 256, 2052, 132) == 1, "K %% 16 != 0 takes the other kernel");
    CHECK_ON(cuda_int8_gemv_ksplit(16, 2048, 8192, 132) == CUDA_GEMV_KSPLIT &&
                 cuda_int8_gemv_ksplit(24, 2048, 8192, 132) == 1,
             "row blocks count: 2 x 128 blocks still split, 3 x 128 do not");
    CHECK_ON(cuda_linear_bytes(DTYPE_I8, 19, 37) == 19 * 37, "int8 bytes = N*K for any shape");
    CHECK_ON(cuda_linear_bytes(DTYPE_F16, 3, 5) == 30 && cuda_linear_bytes(DTYPE_BF16, 3, 5) == 30, "16-bit bytes");
    CHECK_ON(cuda_linear_bytes(DTYPE_F32, 3, 5) == 0 && cuda_linear_bytes(DTYPE_I8, 0, 5) == 0, "refused dtypes");
    CHECK_ON(cuda_workspace_bytes(8) == 4u << 20 && cuda_workspace_bytes(9) == 32u << 20 &&
              cuda_workspace_bytes(10) == 32u << 20,
          "workspace 4 MiB before Hopper, 32 MiB from sm_90");
    CHECK_ON(cuda_ptr_align(0) == 256 && cuda_ptr_align(1) == 1 && cuda_ptr_align(6) == 2 &&
              cuda_ptr_align(0x1010) == 16 && cuda_ptr_align(0x7f0000001000) == 256 && cuda_ptr_align(64 * 3) == 64,
          "alignment classes");
    CHECK_ON(cuda_copy_width(0x1000, 0x2000, 128) == 16 && cuda_copy_width(0x1000, 0x2004, 128) == 4 &&
              cuda_copy_width(0x1000, 0x2000, 6) == 2 && cuda_copy_width(0x1001, 0x2000, 128) == 1,
          "copy widths");
    CHECK_ON(cuda_grid_1d(0, 256) == 1 && cuda_grid_1d(257, 256) == 2 && cuda_grid_1d((size_t)1 << 40, 256) == 65535,
          "grid");
    CHECK_ON(cuda_outlier_chunk(57344) == 256 && cuda_outlier_chunk(250880) == 64 && cuda_outlier_chunk(1 << 30) == 16,
          "outlier chunk: %d %d %d", cuda_outlier_chunk(57344), cuda_outlier_chunk(250880),
          cuda_outlier_chunk(1 << 30));
    int c0, nc;
    CHECK_ON(cuda_outlier_chunk_cols(300, 256, 0, &c0, &nc) == 256 && c0 == 0 && nc == 256, "chunk 0");
    CHECK_ON(cuda_outlier_chunk_cols(300, 256, 1, &c0, &nc) == 48 && c0 == 256 && nc == 44, "chunk 1 padded to 48");
    CHECK_ON(cuda_outlier_chunk_cols(300, 256, 2, &c0, &nc) == 0 && nc == 0, "past the end");
    CHECK_ON(cuda_outlier_chunk_cols(0, 256, 0, &c0, &nc) == 0, "no outliers, no chunk");
    CHECK_ON(cuda_outlier_chunk_cols(3, 16, 0, &c0, &nc) == 16 && nc == 3, "3 columns padded to 16");
    CHECK_ON(cuda_rows_per_block(1000, 50, 10) == 50 && cuda_rows_per_block(1000, 500, 10) == 100 &&
              cuda_rows_per_block(5, 500, 10) == 1,
          "row blocks");
    CudaScratchPlan p;
    cuda_scratch_plan(&p, 8, 1024, 57344, 57344);
    CHECK_ON(p.workspace == 4u << 20 && p.ca == (size_t)1024 * 57344 && p.chunk == 256, "A100 plan");
    CHECK_ON(p.c32_elems == CUDA_C32_MAX_ELEMS && p.c32 == 4 * CUDA_C32_MAX_ELEMS, "c32 capped");
    CHECK_ON(p.wd == (size_t)2 * 57344 * 256 && p.xo == (size_t)2 * 1024 * 256 && p.cols == 4 * (57344 + 1),
          "outlier bufs");
    CHECK_ON(p.total >= p.workspace + p.ca + p.sca + p.flags + p.cols + p.c32 + p.xo + p.wd, "total");
    cuda_scratch_plan(&p, 9, 4, 64, 256);
    CHECK_ON(p.workspace == 32u << 20 && p.c32_elems == 4 * 256, "small H100 plan");
    cuda_scratch_plan(&p, 9, 1, 64, 100000000);
    CHECK_ON(p.c32_elems >= 100000000, "at least one row of the widest product");
    CHECK_ON(cuda_attn_smem_bytes(128, 2048) == 4 * (128 + 2048), "attention smem");
}

static void test_plan_cache(void)
{
    CudaPlanCache c;
    cuda_plan_cache_init(&c);
    CudaGemmKey k;
    memset(&k, 0, sizeof k);
    k.in = DTYPE_I8, k.out = DTYPE_I32, k.n = 96, k.k = 128, k.align_a = k.align_b = k.align_c = 256;
    int fresh, evicted;
    for (int i = 0; i < CUDA_PLAN_SLOTS; i++) {
        k.m = i + 1;
        int s = cuda_plan_cache_find(&c, &k, &fresh, &evicted);
        CHECK_ON(s == i && fresh && !evicted, "fill slot %d", i);
    }
    k.m = 5;
    CHECK_ON(cuda_plan_cache_find(&c, &k, &fresh, &evicted) == 4 && !fresh && !evicted, "hit");
    k.align_b = 16; /* same shape, weaker alignment: a different plan */
    int s = cuda_plan_cache_find(&c, &k, &fresh, &evicted);
    CHECK_ON(fresh && evicted && s == 0, "evicts round-robin when full (slot %d)", s);
    CHECK_ON(cuda_plan_cache_find(&c, &k, &fresh, &evicted) == 0 && !fresh, "the new key is found");
    k.m = 1;
    k.align_b = 256;
    cuda_plan_cache_find(&c, &k, &fresh, &evicted);
    CHECK_ON(fresh, "the evicted key is rebuilt");
}

static void test_pick_device(void)
{
    char err[256];
    int dev, sh;
    CHECK_ON(cuda_pick_device(0, 1, 0, CUDA_VIEW_SAME, CUDA_RANKS_ONE, &dev, &sh, err, sizeof err) == -1 && strstr(err, "no CUDA device"),
             "no device");
    CHECK_ON(cuda_pick_device(0, 2, 0, CUDA_VIEW_SAME, CUDA_RANKS_SHARED, &dev, &sh, err, sizeof err) == -1 &&
                 strstr(err, "no CUDA device"),
             "sharing needs a device too");
    CHECK_ON(cuda_pick_device(1, 2, 2, CUDA_VIEW_SAME, CUDA_RANKS_EXCLUSIVE, &dev, &sh, err, sizeof err) == 0 && dev == 1 && sh == 1,
             "rank 1 of 2 on 2 GPUs");
    CHECK_ON(cuda_pick_device(0, 1, 4, CUDA_VIEW_SAME, CUDA_RANKS_ONE, &dev, &sh, err, sizeof err) == 0 && dev == 0 && sh == 1,
             "fewer ranks than GPUs is fine");
    CHECK_ON(cuda_pick_device(0, 1, 4, CUDA_VIEW_SAME, CUDA_RANKS_EXCLUSIVE, &dev, &sh, err, sizeof err) == -1 &&
                 strstr(err, "1 ranks on this node but 4 GPUs"),
             "exclusive wants one rank per GPU: %s", err);
    CHECK_ON(!strstr(err, "--share-gpus"), "fewer ranks than GPUs: sharing is no fix: %s", err);
    CHECK_ON(cuda_pick_device(2, 3, 2, CUDA_VIEW_SAME, CUDA_RANKS_ONE, &dev, &sh, err, sizeof err) == -1 &&
                 strstr(err, "3 ranks on this node but 2 GPUs: one rank per GPU; use -np 2") && strstr(err, "--share-gpus"),
             "more ranks than GPUs: %s", err);
    CHECK_ON(dev == -1 && sh == 0, "dev is -1 on error");
    /* round robin: 5 ranks on 2 GPUs -> GPU 0 has ranks 0, 2, 4 and GPU 1 ranks 1, 3 */
    static const int want_dev[5] = {0, 1, 0, 1, 0}, want_sh[5] = {3, 2, 3, 2, 3};
    for (int r = 0; r < 5; r++)
        CHECK_ON(cuda_pick_device(r, 5, 2, CUDA_VIEW_SAME, CUDA_RANKS_SHARED, &dev, &sh, err, sizeof err) == 0 && dev == want_dev[r] &&
                     sh == want_sh[r],
                 "shared: rank %d of 5 on 2 GPUs -> GPU %d with %d ranks, got %d with %d", r, want_dev[r], want_sh[r],
                 dev, sh);
    CHECK_ON(cuda_pick_device(1, 2, 4, CUDA_VIEW_SAME, CUDA_RANKS_SHARED, &dev, &sh, err, sizeof err) == 0 && dev == 1 && sh == 1,
             "shared with spare GPUs: one rank each");
    CHECK_ON(backend_cuda_device_count() >= 0, "device count");
#ifdef PP8_HAVE_CUDA
    /* the CUDA module (libpp8_cuda.so) loads and answers, GPU or not: its entry points resolve, CUDA's
     * runtime starts (and finds no device under CUDA_VISIBLE_DEVICES=-1, the CPU tests' setting) */
    setenv("PP8_CUDA_LOAD", "1", 1);
    int nd = backend_cuda_device_count();
    const char *why = backend_cuda_load_error();
    CHECK_ON(why == NULL && nd >= 0, "the CUDA module loads (%s), %d device(s)", why ? why : "ok", nd);
    char why_not[512] = "";
    Backend *b = nd == 0 ? backend_cuda_create(&(BackendOptions){.threads = 1, .first_cpu = -1}, why_not, sizeof why_not)
                         : NULL;
    CHECK_ON(nd > 0 || (b == NULL && why_not[0]), "no device: backend_cuda_create refuses in one line: %s", why_not);
    backend_destroy(b);
    unsetenv("PP8_CUDA_LOAD");
#endif
}

static void test_nccl_logic(void)
{
    CHECK_ON(!nccl_step_needs_group(0, 1) && !nccl_step_needs_group(0, 2) && !nccl_step_needs_group(1, 2), "chains of 2");
    CHECK_ON(!nccl_step_needs_group(0, 4) && nccl_step_needs_group(1, 4) && nccl_step_needs_group(2, 4) &&
              !nccl_step_needs_group(3, 4),
          "middle ranks of 4");
    CHECK_ON(!nccl_batch_needs_group(1) && nccl_batch_needs_group(2), "group only several ops");

    NcclReqTable t;
    nccl_req_init(&t);
    char buf[16];
    CHECK_ON(nccl_req_post(&t, NCCL_OP_SEND, buf, 16, 1, 1, 3) == -1, "send to self refused");
    CHECK_ON(nccl_req_post(&t, NCCL_OP_SEND, buf, 16, 3, 1, 3) == -1, "peer out of range refused");
    CHECK_ON(nccl_req_post(&t, 7, buf, 16, 2, 1, 3) == -1, "unknown kind refused");
    /* a middle rank: recv(i) alone waits; send(i) + recv(i+1) go out together */
    int r0 = nccl_req_post(&t, NCCL_OP_RECV, buf, 16, 0, 1, 3);
    CHECK_ON(r0 >= 0 && nccl_req_state(&t, r0) == NCCL_REQ_POSTED, "posted");
    CHECK_ON(!nccl_should_issue(&t, 1), "a lone receive of a middle rank waits for its wait()");
    int ids[TRANSPORT_MAX_PENDING];
    CHECK_ON(nccl_req_take_pending(&t, ids) == 1 && ids[0] == r0 && nccl_req_state(&t, r0) == NCCL_REQ_ISSUED,
          "wait issues it");
    CHECK_ON(nccl_req_release(&t, r0) == 0 && nccl_req_state(&t, r0) == NCCL_REQ_FREE, "released");
    CHECK_ON(nccl_req_release(&t, r0) == -1, "double release refused");
    int s1 = nccl_req_post(&t, NCCL_OP_SEND, buf, 16, 2, 1, 3);
    CHECK_ON(!nccl_should_issue(&t, 1), "a lone send of a middle rank is held");
    int r1 = nccl_req_post(&t, NCCL_OP_RECV, buf, 16, 0, 1, 3);
    CHECK_ON(nccl_should_issue(&t, 1), "send + receive pending: issue them");
    int n = nccl_req_take_pending(&t, ids);
    CHECK_ON(n == 2 && ids[0] == s1 && ids[1] == r1 && nccl_batch_needs_group(n), "both, in posting order, grouped");
    CHECK_ON(t.op[s1].kind == NCCL_OP_SEND && t.op[s1].peer == 2 && t.op[r1].peer == 0 && t.op[r1].bytes == 16, "ops");
    nccl_req_release(&t, s1);
    nccl_req_release(&t, r1);
    /* first / last ranks issue at once */
    int f = nccl_req_post(&t, NCCL_OP_SEND, buf, 16, 1, 0, 3);
    CHECK_ON(f >= 0 && nccl_should_issue(&t, 0), "an end rank issues at once");
    nccl_req_take_pending(&t, ids);
    nccl_req_release(&t, f);
    /* capacity */
    int last = 0;
    for (int i = 0; i < TRANSPORT_MAX_PENDING; i++) last = nccl_req_post(&t, NCCL_OP_SEND, buf, 1, 1, 0, 2);
    CHECK_ON(last >= 0 && nccl_req_post(&t, NCCL_OP_SEND, buf, 1, 1, 0, 2) == -1, "full table refuses");

    char idsbuf[3][32] = {"0000:07:00.0", "0000:0B:00.0", "0000:07:00.0"};
    CHECK_ON(nccl_devices_unique(&idsbuf[0][0], 2, 32) && !nccl_devices_unique(&idsbuf[0][0], 3, 32), "unique devices");

    /* the test-only shared-GPU routes (PP8_NCCL_SHARED_GPU) and the NCCL variables each one sets */
    CHECK_ON(nccl_shared_gpu_route(NULL) == NCCL_SHARED_OFF && nccl_shared_gpu_route("") == NCCL_SHARED_OFF &&
                 nccl_shared_gpu_route("hostid") == NCCL_SHARED_HOSTID &&
                 nccl_shared_gpu_route("multi") == NCCL_SHARED_MULTI && nccl_shared_gpu_route("yes") == -1,
             "shared-GPU routes");
    static const char *const nccl_vars[] = {"NCCL_HOSTID", "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE",
                                            "NCCL_MULTI_RANK_GPU_ENABLE"};
    for (int i = 0; i < 4; i++) unsetenv(nccl_vars[i]);
    nccl_shared_gpu_setenv(NCCL_SHARED_OFF, 0);
    int none = 1;
    for (int i = 0; i < 4; i++) none &= getenv(nccl_vars[i]) == NULL;
    CHECK_ON(none, "no route: nothing set");
    nccl_shared_gpu_setenv(NCCL_SHARED_HOSTID, 2);
    const char *hid = getenv("NCCL_HOSTID"), *ifn = getenv("NCCL_SOCKET_IFNAME"), *ib = getenv("NCCL_IB_DISABLE");
    CHECK_ON(hid && !strcmp(hid, "pp8-test-rank-2") && ifn && !strcmp(ifn, "lo") && ib && !strcmp(ib, "1") &&
                 !getenv("NCCL_MULTI_RANK_GPU_ENABLE"),
             "hostid route: one host id per rank, sockets on loopback");
    unsetenv("NCCL_HOSTID");
    nccl_shared_gpu_setenv(NCCL_SHARED_HOSTID, 3);
    hid = getenv("NCCL_HOSTID");
    CHECK_ON(hid && strcmp(hid, "pp8-test-rank-2") != 0, "hostid route: ranks get different host ids");
    setenv("NCCL_SOCKET_IFNAME", "eth9", 1);
    nccl_shared_gpu_setenv(NCCL_SHARED_HOSTID, 3);
    CHECK_ON(!strcmp(getenv("NCCL_SOCKET_IFNAME"), "eth9"), "hostid route: a variable the user set is kept");
    nccl_shared_gpu_setenv(NCCL_SHARED_MULTI, 0);
    const char *mr = getenv("NCCL_MULTI_RANK_GPU_ENABLE");
    CHECK_ON(mr && !strcmp(mr, "1"), "multi route: NCCL_MULTI_RANK_GPU_ENABLE=1");
    for (int i = 0; i < 4; i++) unsetenv(nccl_vars[i]);
}

/* The v2 kernel set's host-side choices: the switch, the row tiles, the K split that spreads a GEMV's
 * grid over the SMs, the quantizer's slices and the compaction's segments. */
static void test_kernels_v2(void)
{
    char err[160] = "";
    CudaKernels k = CUDA_KERNELS_V2;
    CHECK_ON(cuda_kernels_parse(NULL, &k, err, sizeof err) == 0 && k == CUDA_KERNELS_V1, "unset: v1");
    CHECK_ON(cuda_kernels_parse("", &k, err, sizeof err) == 0 && k == CUDA_KERNELS_V1, "empty: v1");
    CHECK_ON(cuda_kernels_parse("v2", &k, err, sizeof err) == 0 && k == CUDA_KERNELS_V2, "v2");
    CHECK_ON(cuda_kernels_parse("v1", &k, err, sizeof err) == 0 && k == CUDA_KERNELS_V1, "v1");
    CHECK_ON(cuda_kernels_parse("V2", &k, err, sizeof err) == -1 && strstr(err, "PP8_CUDA_KERNELS='V2'") &&
                 strstr(err, "v1 (default) or v2"),
             "a bad value is refused naming the variable and the choices: %s", err);
    CHECK_ON(!strcmp(cuda_kernels_name(CUDA_KERNELS_V2), "v2") && !strcmp(cuda_kernels_name(CUDA_KERNELS_V1), "v1"),
             "names");

    const int tiles[] = {0, 1, 2, 4, 4, 8, 8, 8, 8, 0};
    for (int m = 0; m <= 9; m++) CHECK_ON(cuda_gemv2_rows_tile(m) == tiles[m], "row tile of %d", m);

    CudaGemv2Plan p;
    /* OPT-13B on an H200 (132 SMs): v1 gave out/fc2 (N 5120) 320 blocks, 2.4 per SM, unsplit */
    CHECK_ON(cuda_gemv2_plan(1, 5120, 5120, 1, 132, 4, &p) == 0 && p.ksplit == 2 && p.blocks == 640 &&
                 p.rows_tile == 1,
             "OPT-13B out splits K in 2 (640 blocks): ks %d blocks %ld", p.ksplit, p.blocks);
    CHECK_ON(cuda_gemv2_plan(8, 5120, 20480, 1, 132, 4, &p) == 0 && p.ksplit == 2 && p.rows_tile == 8,
             "OPT-13B fc2 at 8 rows: ks %d", p.ksplit);
    CHECK_ON(cuda_gemv2_plan(1, 20480, 5120, 1, 132, 4, &p) == 0 && p.ksplit == 1 && p.blocks == 1280,
             "OPT-13B fc1 (9.7 blocks per SM) stays unsplit: ks %d", p.ksplit);
    CHECK_ON(cuda_gemv2_plan(1, 15360, 5120, 1, 132, 4, &p) == 0 && p.ksplit == 2,
             "OPT-13B qkv (960 blocks: 7.3 per SM, the busiest 8) splits in 2: ks %d", p.ksplit);
    CHECK_ON(cuda_gemv2_plan(1, 2048, 8192, 1, 132, 4, &p) == 0 && p.ksplit == 4,
             "OPT-1.3B fc2 (128 blocks) splits in 4: ks %d", p.ksplit);
    /* the split never leaves a lane fewer than 2 loads per output: 64 loads a row allow no split */
    CHECK_ON(cuda_gemv2_plan(1, 16, 1024, 1, 132, 4, &p) == 0 && p.ksplit == 1, "K 1024 int8: no split");
    CHECK_ON(cuda_gemv2_plan(1, 16, 2048, 1, 132, 4, &p) == 0 && p.ksplit == 2, "K 2048 int8: split in 2");
    CHECK_ON(cuda_gemv2_plan(1, 16, 1024, 2, 132, 4, &p) == 0 && p.ksplit == 2, "K 1024 bf16 (128 loads): 2");
    for (int m = 1; m <= 8; m++)
        for (int n = 1; n <= 6000; n += 997)
            for (int kk = 16; kk <= 40000; kk += 4096) {
                CHECK_ON(cuda_gemv2_plan(m, n, kk, 1, 132, 4, &p) == 0, "plan %d %d %d", m, n, kk);
                const long per_block = (long)(CUDA_GEMV4_WARPS / p.ksplit) * CUDA_GEMV4_OUTS;
                CHECK_ON((p.ksplit == 1 || p.ksplit == 2 || p.ksplit == 4) && p.blocks * per_block >= n &&
                             (p.blocks - 1) * per_block < n && p.rows_tile >= m &&
                             (p.ksplit == 1 || kk / 16 / p.ksplit >= 64),
                         "plan %d x %d x %d: ks %d blocks %ld tile %d", m, n, kk, p.ksplit, p.blocks, p.rows_tile);
            }
    CHECK_ON(cuda_gemv2_plan(9, 64, 64, 1, 132, 4, &p) == -1 && cuda_gemv2_plan(0, 64, 64, 1, 132, 4, &p) == -1,
             "rows out of 1..8 are not v2's");
    CHECK_ON(cuda_gemv2_plan(1, 64, 72, 1, 132, 4, &p) == -1 && cuda_gemv2_plan(1, 64, 72, 2, 132, 4, &p) == 0,
             "K of 16 bytes: 72 int8 no, 72 bf16 (144 bytes) yes");
    CHECK_ON(cuda_gemv2_plan(1, 64, 64, 3, 132, 4, &p) == -1 && cuda_gemv2_plan(1, 0, 64, 1, 132, 4, &p) == -1,
             "bad element size or N");

    CHECK_ON(cuda_quant2_blocks(2048) == 1 && cuda_quant2_blocks(2056) == 2 && cuda_quant2_blocks(20480) == 10 &&
                 cuda_quant2_blocks(0) == 0,
             "quantizer slices of %d columns", CUDA_QUANT2_COLS);
    /* the segments tile [0, nbytes) in thread order, contiguous and disjoint */
    const int nbytes_list[] = {1, 33, 255, 256, 257, 2560, 16384};
    for (size_t t = 0; t < sizeof nbytes_list / sizeof nbytes_list[0]; t++) {
        int nbytes = nbytes_list[t], next = 0, ok = 1;
        for (int i = 0; i < CUDA_QUANT2_THREADS; i++) {
            int b0, b1;
            cuda_quant2_segment(nbytes, CUDA_QUANT2_THREADS, i, &b0, &b1);
            ok &= b0 == next && b1 >= b0 && b1 <= nbytes;
            next = b1;
        }
        CHECK_ON(ok && next == nbytes, "segments of %d bytes", nbytes);
    }
}

/* per-rank GPU isolation (CUDA_VISIBLE_DEVICES per rank, Slurm --gpus-per-task=1): every rank sees one
 * device 0, which is a different GPU on each (GPU-PLAN.md section 5, risk 5) */
static void test_node_view(void)
{
    enum { MAXD = 4, ID = 32 };
    char ids[3][MAXD][ID];
    int counts[3];
    memset(ids, 0, sizeof ids);
    /* 3 ranks see all 2 GPUs, in the same order */
    for (int r = 0; r < 3; r++) {
        snprintf(ids[r][0], ID, "0000:19:00.0");
        snprintf(ids[r][1], ID, "0000:3b:00.0");
        counts[r] = 2;
    }
    CHECK_ON(cuda_node_view(&ids[0][0][0], counts, 3, MAXD, ID) == CUDA_VIEW_SAME, "same lists: SAME");
    CHECK_ON(cuda_node_view(&ids[0][0][0], counts, 1, MAXD, ID) == CUDA_VIEW_SAME, "one rank: SAME");
    /* each rank its own GPU */
    for (int r = 0; r < 3; r++) {
        memset(ids[r], 0, sizeof ids[r]);
        snprintf(ids[r][0], ID, "0000:%02x:00.0", 0x19 + r);
        counts[r] = 1;
    }
    CHECK_ON(cuda_node_view(&ids[0][0][0], counts, 3, MAXD, ID) == CUDA_VIEW_OWN, "disjoint single GPUs: OWN");
    /* Slurm --gpus-per-task=2: disjoint pairs */
    snprintf(ids[0][1], ID, "0000:a0:00.0");
    snprintf(ids[1][1], ID, "0000:a1:00.0");
    snprintf(ids[2][1], ID, "0000:a2:00.0");
    counts[0] = counts[1] = counts[2] = 2;
    CHECK_ON(cuda_node_view(&ids[0][0][0], counts, 3, MAXD, ID) == CUDA_VIEW_OWN, "disjoint pairs: OWN");
    /* rank 2 also sees rank 0's GPU: overlap */
    snprintf(ids[2][1], ID, "0000:19:00.0");
    CHECK_ON(cuda_node_view(&ids[0][0][0], counts, 3, MAXD, ID) == CUDA_VIEW_MIXED, "overlap: MIXED");
    /* the same GPUs in another order are not the same list: two ranks could pick one GPU */
    memset(ids, 0, sizeof ids);
    snprintf(ids[0][0], ID, "A"), snprintf(ids[0][1], ID, "B");
    snprintf(ids[1][0], ID, "B"), snprintf(ids[1][1], ID, "A");
    counts[0] = counts[1] = 2;
    CHECK_ON(cuda_node_view(&ids[0][0][0], counts, 2, MAXD, ID) == CUDA_VIEW_MIXED, "reordered lists: MIXED");
    /* all ranks see one and the same GPU: SAME (cuda_pick_device then refuses a second rank on it) */
    counts[0] = counts[1] = 1;
    snprintf(ids[1][0], ID, "A");
    CHECK_ON(cuda_node_view(&ids[0][0][0], counts, 2, MAXD, ID) == CUDA_VIEW_SAME, "one shared GPU: SAME");

    char err[256];
    int dev, sh;
    CHECK_ON(cuda_pick_device(1, 2, 1, CUDA_VIEW_SAME, CUDA_RANKS_ONE, &dev, &sh, err, sizeof err) == -1 &&
                 strstr(err, "2 ranks on this node but 1 GPUs"),
             "one GPU seen by both ranks: refused as before: %s", err);
    for (int r = 0; r < 4; r++)
        CHECK_ON(cuda_pick_device(r, 4, 1, CUDA_VIEW_OWN, CUDA_RANKS_ONE, &dev, &sh, err, sizeof err) == 0 && dev == 0 &&
                     sh == 1,
                 "isolated: rank %d of 4 uses its own device 0 (%s)", r, err);
    CHECK_ON(cuda_pick_device(3, 4, 1, CUDA_VIEW_OWN, CUDA_RANKS_EXCLUSIVE, &dev, &sh, err, sizeof err) == 0 && dev == 0,
             "isolated satisfies --exclusive-gpus: %s", err);
    CHECK_ON(cuda_pick_device(1, 2, 2, CUDA_VIEW_OWN, CUDA_RANKS_SHARED, &dev, &sh, err, sizeof err) == 0 && dev == 0 &&
                 sh == 1,
             "isolated with --share-gpus: nothing to share");
    CHECK_ON(cuda_pick_device(1, 2, 0, CUDA_VIEW_OWN, CUDA_RANKS_ONE, &dev, &sh, err, sizeof err) == -1 &&
                 strstr(err, "no CUDA device"),
             "isolated but this rank sees none");
    CHECK_ON(cuda_pick_device(0, 2, 2, CUDA_VIEW_MIXED, CUDA_RANKS_ONE, &dev, &sh, err, sizeof err) == -1 &&
                 strstr(err, "overlapping") && strstr(err, "CUDA_VISIBLE_DEVICES") && dev == -1,
             "overlapping views refused: %s", err);
    char bus[4][32];
    CHECK_ON(backend_cuda_bus_ids(&bus[0][0], 4, 32) == backend_cuda_device_count() || backend_cuda_device_count() > 4,
             "bus ids: one per visible device");
}

/* the non-blocking communicator's deadlines (GPU-PLAN.md section 5, risk 4) */
static void test_nccl_deadlines(void)
{
    CHECK_ON(nccl_timeout_parse(NULL) == NCCL_TIMEOUT_DEFAULT_S && nccl_timeout_parse("") == NCCL_TIMEOUT_DEFAULT_S,
             "default timeout");
    CHECK_ON(nccl_timeout_parse("5") == 5 && nccl_timeout_parse("2.5") == 2.5, "timeouts");
    CHECK_ON(nccl_timeout_parse("0") == -1 && nccl_timeout_parse("-3") == -1 && nccl_timeout_parse("10s") == -1 &&
                 nccl_timeout_parse("1e9") == -1 && nccl_timeout_parse("nan") == -1,
             "bad timeouts refused");
    CHECK_ON(nccl_poll_verdict(1, 0, 1e9, 1) == NCCL_POLL_DONE, "success wins over the clock");
    CHECK_ON(nccl_poll_verdict(0, 0, 0, 10) == NCCL_POLL_FAILED, "an error fails at once");
    CHECK_ON(nccl_poll_verdict(0, 1, 9.9, 10) == NCCL_POLL_AGAIN && nccl_poll_verdict(0, 1, 10.1, 10) == NCCL_POLL_TIMEOUT,
             "in progress: again until the deadline");
    CHECK_ON(nccl_poll_verdict(0, 1, 1e9, 0) == NCCL_POLL_AGAIN, "no deadline");
    CHECK_ON(nccl_test_stall(NULL, 0) == 0 && nccl_test_stall("1:8", 1) == 8 && nccl_test_stall("1:8", 0) == 0,
             "stall hook");
    CHECK_ON(nccl_test_stall("x", 0) == -1 && nccl_test_stall("1", 1) == -1 && nccl_test_stall("1:", 1) == -1 &&
                 nccl_test_stall("-1:2", 1) == -1,
             "malformed stall hook");
}

/* the backend's count of its device memory: live and peak by pointer, frees subtracting what their
 * block took, in any order, through table growth */
static void test_mem_meter(void)
{
    CudaMemMeter m = {0};
    static char blocks[300];
    size_t want_peak = 0, live = 0;
    for (int i = 0; i < 300; i++) { /* past the first growths of the table (64, 128, 256) */
        CHECK(cuda_mem_meter_add(&m, blocks + i, (size_t)(i + 1) * 1000) == 0, "add %d", i);
        live += (size_t)(i + 1) * 1000;
    }
    want_peak = live;
    CHECK(m.live == live && m.peak == want_peak, "after 300 adds live %zu peak %zu, want %zu", m.live, m.peak, live);
    /* free the odd ones first, from the front (the search runs from the end) */
    for (int i = 1; i < 300; i += 2) {
        size_t b = cuda_mem_meter_remove(&m, blocks + i);
        CHECK(b == (size_t)(i + 1) * 1000, "remove %d gave %zu", i, b);
        live -= b;
    }
    CHECK(m.live == live && m.peak == want_peak, "after the odd frees live %zu (want %zu) peak %zu", m.live, live,
          m.peak);
    CHECK(cuda_mem_meter_remove(&m, blocks + 1) == 0, "a second free of one block takes nothing");
    CHECK(cuda_mem_meter_remove(&m, NULL) == 0, "NULL takes nothing");
    CHECK(cuda_mem_meter_add(&m, NULL, 5) == 0 && m.live == live, "NULL adds nothing");
    CHECK(m.live == live, "live unchanged by unknown frees: %zu", m.live);
    /* re-growing below the old peak leaves it; above it moves it */
    CHECK(cuda_mem_meter_add(&m, blocks + 1, 1000) == 0 && m.peak == want_peak, "peak kept below the old one");
    CHECK(cuda_mem_meter_add(&m, blocks + 3, want_peak) == 0 && m.peak == live + 1000 + want_peak,
          "peak follows a larger live: %zu", m.peak);
    for (int i = 299; i >= 0; i--) (void)cuda_mem_meter_remove(&m, blocks + i);
    CHECK(m.live == 0 && m.n == 0, "all freed: live %zu, %zu blocks", m.live, m.n);
    cuda_mem_meter_free(&m);
    CHECK(m.blk == NULL && m.peak == 0, "freed meter is empty");
}

int main(void)
{
    test_kernels_v2();
    test_gemm_layouts();
    test_paths_and_sizes();
    test_plan_cache();
    test_pick_device();
    test_nccl_logic();
    test_node_view();
    test_nccl_deadlines();
    test_mem_meter();
    printf("%d checks, %d failed\n", test_check_count, test_fail_count);
    return test_fail_count ? 1 : 0;
}
