/* Transport over NCCL point-to-point on device buffers, bootstrapped over MPI: bytes move as ncclUint8 on
 * the compute stream, so a received hidden state is ordered before the kernels that read it; middle
 * ranks issue a send and the next receive as one group (nccl_host.c decides), and wait() polls the async
 * error so a dead peer aborts the job instead of hanging it. It does not select the device (the CUDA
 * backend has set it) and carries no token ids or control messages: those stay on MPI (control.h). */
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "nccl_host.h"
#include "transport.h"

#define BUS_ID_LEN 32 /* cudaDeviceGetPCIBusId: "13 characters" plus NUL fit easily */

typedef struct NcclCtx {
    ncclComm_t comm;
    cudaStream_t stream;
    int rank, size, middle;
    NcclReqTable tab;
    cudaEvent_t ev[TRANSPORT_MAX_PENDING]; /* recorded after request i was enqueued */
    char prefix[96];                       /* "r1/4 host", as the runtime's log prefix */
} NcclCtx;

/* Internal faults: one line with rank, file:line and the statement, abort the communicator (so nothing
 * waits on it) and then the job. parallel/ may not use kernels/check.h, so this is its own reporter. */
__attribute__((noreturn)) static void nccl_fail(NcclCtx *c, const char *file, int line, const char *func,
                                                const char *what, const char *stmt)
{
    const char *base = strrchr(file, '/');
    const char *last = c && c->comm ? ncclGetLastError(c->comm) : NULL;
    fprintf(stderr, "[pp8 %s] error %s:%d in %s: NCCL transport: %s%s%s (%s)\n", c ? c->prefix : "?",
            base ? base + 1 : file, line, func, what, last && *last ? ": " : "", last ? last : "", stmt);
    fflush(stderr);
    if (c && c->comm) ncclCommAbort(c->comm);
    ctl_abort(1);
}

#define NCCL_CHECK(c, stmt)                                                                                            \
    do {                                                                                                               \
        ncclResult_t r_ = (stmt);                                                                                      \
        if (r_ != ncclSuccess) nccl_fail((c), __FILE__, __LINE__, __func__, ncclGetErrorString(r_), #stmt);            \
    } while (0)

#define CUDA_CHECK(c, stmt)                                                                                            \
    do {                                                                                                               \
        cudaError_t e_ = (stmt);                                                                                       \
        if (e_ != cudaSuccess) nccl_fail((c), __FILE__, __LINE__, __func__, cudaGetErrorString(e_), #stmt);            \
    } while (0)

/* Enqueue every posted request, in posting order (the order the peers post theirs), as one group when
 * there are several: "if several must progress concurrently they must be fused" (nccl.h). */
static void nc_issue(NcclCtx *c)
{
    int ids[TRANSPORT_MAX_PENDING];
    int n = nccl_req_take_pending(&c->tab, ids);
    if (n == 0) return;
    int group = nccl_batch_needs_group(n);
    if (group) NCCL_CHECK(c, ncclGroupStart());
    for (int i = 0; i < n; i++) {
        const NcclOp *op = &c->tab.op[ids[i]];
        if (op->bytes == 0) continue; /* both sides know the size: nothing to match */
        if (op->kind == NCCL_OP_SEND)
            NCCL_CHECK(c, ncclSend(op->buf, op->bytes, ncclUint8, op->peer, c->comm, c->stream));
        else
            NCCL_CHECK(c, ncclRecv(op->buf, op->bytes, ncclUint8, op->peer, c->comm, c->stream));
    }
    /* errors inside a group surface here; only after it returns is anything enqueued (nccl.h) */
    if (group) NCCL_CHECK(c, ncclGroupEnd());
    for (int i = 0; i < n; i++) CUDA_CHECK(c, cudaEventRecord(c->ev[ids[i]], c->stream));
}

static int nc_post(NcclCtx *c, int kind, const void *buf, size_t bytes, int peer, int *req)
{
    int r = nccl_req_post(&c->tab, kind, buf, bytes, peer, c->rank, c->size);
    if (r < 0) return -1;
    *req = r;
    if (nccl_should_issue(&c->tab, c->middle)) nc_issue(c);
    return 0;
}

/* tag is unused: NCCL has no tags, and messages between one pair arrive in posting order */
static int nc_isend(void *ctx, const void *buf, size_t bytes, int peer, int tag, int *req)
{
    (void)tag;
    return nc_post((NcclCtx *)ctx, NCCL_OP_SEND, buf, bytes, peer, req);
}

static int nc_irecv(void *ctx, void *buf, size_t bytes, int peer, int tag, int *req)
{
    (void)tag;
    return nc_post((NcclCtx *)ctx, NCCL_OP_RECV, buf, bytes, peer, req);
}

/* Returns when the transfer (and everything before it on the stream) has completed, so the buffer is
 * usable on the host side too, like MPI_Wait. Network errors only show in ncclCommGetAsyncError and the
 * operation then never completes (NCCL "Error handling"), hence the polling. */
static int nc_wait(void *ctx, int req)
{
    NcclCtx *c = ctx;
    int s = nccl_req_state(&c->tab, req);
    if (s == NCCL_REQ_FREE) return -1;
    if (s == NCCL_REQ_POSTED) nc_issue(c);
    for (;;) {
        cudaError_t e = cudaEventQuery(c->ev[req]);
        if (e == cudaSuccess) break;
        if (e != cudaErrorNotReady) nccl_fail(c, __FILE__, __LINE__, __func__, cudaGetErrorString(e), "cudaEventQuery");
        ncclResult_t ar = ncclSuccess;
        NCCL_CHECK(c, ncclCommGetAsyncError(c->comm, &ar));
        if (ar != ncclSuccess && ar != ncclInProgress)
            nccl_fail(c, __FILE__, __LINE__, __func__, ncclGetErrorString(ar), "ncclCommGetAsyncError");
        sched_yield();
    }
    nccl_req_release(&c->tab, req);
    return 0;
}

static void nc_destroy(void *ctx)
{
    NcclCtx *c = ctx;
    int busy = 0;
    for (int i = 0; i < TRANSPORT_MAX_PENDING; i++) busy |= nccl_req_state(&c->tab, i) != NCCL_REQ_FREE;
    if (busy) {
        /* requests never waited for may never be matched: ncclCommDestroy could block forever */
        ncclCommAbort(c->comm);
    } else {
        CUDA_CHECK(c, cudaStreamSynchronize(c->stream));
        NCCL_CHECK(c, ncclCommDestroy(c->comm));
    }
    c->comm = NULL;
    for (int i = 0; i < TRANSPORT_MAX_PENDING; i++)
        if (c->ev[i]) cudaEventDestroy(c->ev[i]);
    free(c);
}

/* Collective over MPI_COMM_WORLD: every rank must call it, after the CUDA backend has set its device. */
Transport *transport_nccl_create(void *stream, char *err, size_t errlen)
{
    int rank = 0, size = 1, failed = 0, dev = -1;
    char msg[1024] = "", bus[BUS_ID_LEN] = "";
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (!stream) {
        failed = 1;
        snprintf(msg, sizeof msg,
                 "rank %d: transport_nccl_create needs the CUDA backend's stream "
                 "(backend_cuda_stream)",
                 rank);
    } else if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetPCIBusId(bus, sizeof bus, dev) != cudaSuccess) {
        failed = 1;
        snprintf(msg, sizeof msg, "rank %d: no usable CUDA device for NCCL (%s)", rank,
                 cudaGetErrorString(cudaGetLastError()));
    }

    /* test-only: ranks sharing one GPU (nccl_host.h); its NCCL variables go in before the first NCCL call */
    int shared = nccl_shared_gpu_route(getenv("PP8_NCCL_SHARED_GPU"));
    if (shared < 0 && !failed) {
        failed = 1;
        snprintf(msg, sizeof msg, "rank %d: PP8_NCCL_SHARED_GPU=%s: expected hostid or multi (or unset)", rank,
                 getenv("PP8_NCCL_SHARED_GPU"));
    }
    if (shared > 0) nccl_shared_gpu_setenv(shared, rank);

    /* one GPU per rank on each node: a device used twice in one communicator "may lead to hangs" */
    MPI_Comm node;
    int lrank = 0, lsize = 1;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &lrank);
    MPI_Comm_size(node, &lsize);
    char *all = calloc((size_t)lsize, BUS_ID_LEN);
    if (all) {
        if (failed) snprintf(bus, sizeof bus, "none-%d", lrank); /* keep the exchange collective */
        MPI_Allgather(bus, BUS_ID_LEN, MPI_CHAR, all, BUS_ID_LEN, MPI_CHAR, node);
        if (!failed && shared == NCCL_SHARED_OFF && !nccl_devices_unique(all, lsize, BUS_ID_LEN)) {
            failed = 1;
            snprintf(msg, sizeof msg,
                     "%d ranks on one node share GPUs (rank %d, node-local %d, device %s): one rank "
                     "per GPU; select the device by node-local rank (cuda_pick_device)",
                     lsize, rank, lrank, bus);
        }
    } else {
        failed = 1;
        snprintf(msg, sizeof msg, "rank %d: out of memory", rank);
    }
    free(all);
    MPI_Comm_free(&node);
    if (ctl_agree(failed, msg, sizeof msg)) {
        snprintf(err, errlen, "NCCL: %s", msg);
        return NULL;
    }

    /* rank 0 makes the id; agree on success before anyone waits for it in MPI_Bcast / ncclCommInitRank */
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        failed = r != ncclSuccess;
        if (failed)
            snprintf(msg, sizeof msg, "rank 0: ncclGetUniqueId: %s (NCCL_DEBUG=WARN says more)", ncclGetErrorString(r));
    }
    if (ctl_agree(failed, msg, sizeof msg)) {
        snprintf(err, errlen, "NCCL: %s", msg);
        return NULL;
    }
    MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);

    NcclCtx *c = calloc(1, sizeof *c);
    Transport *t = calloc(1, sizeof *t);
    char host[64] = "host";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    ncclComm_t comm = NULL;
    /* the device "has to be set before calling ncclCommInitRank", which synchronizes with the others */
    ncclResult_t r = ncclCommInitRank(&comm, size, id, rank);
    failed = r != ncclSuccess || !c || !t;
    if (failed)
        snprintf(msg, sizeof msg, "rank %d: ncclCommInitRank: %s (NCCL_DEBUG=WARN says more)", rank,
                 r != ncclSuccess ? ncclGetErrorString(r) : "out of memory");
    for (int i = 0; !failed && i < TRANSPORT_MAX_PENDING; i++)
        if (cudaEventCreateWithFlags(&c->ev[i], cudaEventDisableTiming) != cudaSuccess) {
            failed = 1;
            snprintf(msg, sizeof msg, "rank %d: cudaEventCreate: %s", rank, cudaGetErrorString(cudaGetLastError()));
        }
    if (ctl_agree(failed, msg, sizeof msg)) {
        if (comm) ncclCommAbort(comm);
        if (c)
            for (int i = 0; i < TRANSPORT_MAX_PENDING; i++)
                if (c->ev[i]) cudaEventDestroy(c->ev[i]);
        free(c);
        free(t);
        snprintf(err, errlen, "NCCL: %s", msg);
        return NULL;
    }
    c->comm = comm;
    c->stream = (cudaStream_t)stream;
    c->rank = rank;
    c->size = size;
    c->middle = nccl_step_needs_group(rank, size);
    nccl_req_init(&c->tab);
    snprintf(c->prefix, sizeof c->prefix, "r%d/%d %s", rank, size, host);

    t->name = "nccl";
    t->ctx = c;
    t->rank = rank;
    t->size = size;
    t->isend = nc_isend;
    t->irecv = nc_irecv;
    t->wait = nc_wait;
    t->destroy = nc_destroy;
    return t;
}
