/* Transport over NCCL point-to-point on device buffers, bootstrapped over MPI. Bytes move as ncclUint8
 * on a communication stream of the transport's own: an event recorded on the compute stream when
 * operations are issued orders them after the kernels that wrote (or last read) their buffers, and an
 * event recorded after them orders the compute stream's later work behind them, so compute goes on while
 * a send waits for its receiver (NCCL's send is "blocking for the GPU"). Middle ranks issue a send and
 * the next receive as one group (nccl_host.c decides). The communicator is non-blocking (blocking = 0):
 * set-up, groups and shutdown are polled with MPI progress in the loop, set-up and shutdown against a
 * deadline (PP8_NCCL_TIMEOUT), and wait() polls the async error so a dead peer ends the job instead of
 * hanging it. Shutdown is collective: the ranks agree whether any holds requests nobody waited for, then
 * all abort or all finalize and destroy. It does not select the device (the CUDA backend has set it) and
 * carries no token ids or control messages: those stay on MPI (control.h). */
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "nccl_host.h"
#include "transport.h"

#define BUS_ID_LEN 32 /* cudaDeviceGetPCIBusId: "13 characters" plus NUL fit easily */

typedef struct NcclCtx {
    ncclComm_t comm;
    cudaStream_t stream; /* the compute stream (the CUDA backend's) */
    cudaStream_t comm_stream;
    cudaEvent_t issued; /* recorded on the compute stream when operations are issued */
    int rank, size, middle;
    double timeout_s; /* PP8_NCCL_TIMEOUT: set-up and shutdown */
    NcclReqTable tab;
    cudaEvent_t ev[TRANSPORT_MAX_PENDING]; /* recorded on comm_stream after request i was enqueued */
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

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* NCCL's MPI guide ("MPI Progress"): a rank that waits on NCCL must let MPI progress, or an MPI that
 * needs it can stall the ranks NCCL waits for */
static void mpi_progress(void)
{
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
}

/* set-up: whether another rank said its own set-up failed (CTL_TAG_NCCL_FAILED); the notice is taken */
static int peer_failed(void)
{
    int flag = 0, word = 0;
    MPI_Status stt;
    MPI_Iprobe(MPI_ANY_SOURCE, CTL_TAG_NCCL_FAILED, MPI_COMM_WORLD, &flag, &stt);
    if (flag) MPI_Recv(&word, 1, MPI_INT, stt.MPI_SOURCE, CTL_TAG_NCCL_FAILED, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return flag;
}

#define POLL_PEER_FAILED 100 /* nc_settle(watch): another rank's set-up failed */

/* Polls the communicator until what was started (set-up, a group, finalize) has left ncclInProgress:
 * ncclSuccess, or the error / NCCL_POLL_TIMEOUT (timeout_s <= 0: no deadline). watch: set-up, where a
 * peer's notice of failure also ends the wait (POLL_PEER_FAILED). */
static int nc_settle(ncclComm_t comm, double timeout_s, int watch, ncclResult_t *state)
{
    double t0 = now_s();
    for (;;) {
        ncclResult_t st = ncclSuccess, r = ncclCommGetAsyncError(comm, &st);
        if (r != ncclSuccess) st = r;
        *state = st;
        int v = nccl_poll_verdict(st == ncclSuccess, st == ncclInProgress, now_s() - t0, timeout_s);
        if (v != NCCL_POLL_AGAIN) return v;
        if (watch && peer_failed()) return POLL_PEER_FAILED;
        mpi_progress();
        sched_yield();
    }
}

/* a group or operation of the non-blocking communicator: enqueued once it leaves ncclInProgress */
static void nc_settle_op(NcclCtx *c, ncclResult_t r, const char *stmt)
{
    if (r == ncclInProgress) {
        ncclResult_t st;
        if (nc_settle(c->comm, 0, 0, &st) != NCCL_POLL_DONE) r = st;
        else r = ncclSuccess;
    }
    if (r != ncclSuccess) nccl_fail(c, __FILE__, __LINE__, __func__, ncclGetErrorString(r), stmt);
}

/* Enqueue every posted request, in posting order (the order the peers post theirs), as one group when
 * there are several: "if several must progress concurrently they must be fused" (nccl.h). */
static void nc_issue(NcclCtx *c)
{
    int ids[TRANSPORT_MAX_PENDING];
    int n = nccl_req_take_pending(&c->tab, ids);
    if (n == 0) return;
    /* after everything the compute stream holds so far: the kernels that wrote what is sent, and those
     * that last read a buffer a receive overwrites */
    CUDA_CHECK(c, cudaEventRecord(c->issued, c->stream));
    CUDA_CHECK(c, cudaStreamWaitEvent(c->comm_stream, c->issued, 0));
    int group = nccl_batch_needs_group(n);
    if (group) NCCL_CHECK(c, ncclGroupStart());
    for (int i = 0; i < n; i++) {
        const NcclOp *op = &c->tab.op[ids[i]];
        if (op->bytes == 0) continue; /* both sides know the size: nothing to match */
        ncclResult_t r = op->kind == NCCL_OP_SEND
                             ? ncclSend(op->buf, op->bytes, ncclUint8, op->peer, c->comm, c->comm_stream)
                             : ncclRecv(op->buf, op->bytes, ncclUint8, op->peer, c->comm, c->comm_stream);
        /* inside a group the calls only queue; alone, a non-blocking communicator may answer ncclInProgress */
        if (group && r != ncclSuccess && r != ncclInProgress)
            nccl_fail(c, __FILE__, __LINE__, __func__, ncclGetErrorString(r), "ncclSend / ncclRecv");
        if (!group) nc_settle_op(c, r, op->kind == NCCL_OP_SEND ? "ncclSend" : "ncclRecv");
    }
    /* errors inside a group surface here; only once it has settled is anything enqueued (nccl.h) */
    if (group) nc_settle_op(c, ncclGroupEnd(), "ncclGroupEnd");
    for (int i = 0; i < n; i++) CUDA_CHECK(c, cudaEventRecord(c->ev[ids[i]], c->comm_stream));
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

/* Returns when the transfer (and everything before it on the communication stream) has completed, so
 * the buffer is usable on the host side too, like MPI_Wait, and the compute stream's later work is
 * ordered after it. Network errors only show in ncclCommGetAsyncError and the operation then never
 * completes (NCCL "Error handling"), hence the polling, with MPI progress. */
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
        mpi_progress();
        sched_yield();
    }
    CUDA_CHECK(c, cudaStreamWaitEvent(c->stream, c->ev[req], 0));
    nccl_req_release(&c->tab, req);
    return 0;
}

static void nc_free_ctx(NcclCtx *c)
{
    for (int i = 0; i < TRANSPORT_MAX_PENDING; i++)
        if (c->ev[i]) cudaEventDestroy(c->ev[i]);
    if (c->issued) cudaEventDestroy(c->issued);
    if (c->comm_stream) cudaStreamDestroy(c->comm_stream);
    free(c);
}

/* Collective. Requests never waited for may never be matched, and ncclCommDestroy "is an intra-node
 * collective call" while ncclCommAbort needs "all active ranks" (NCCL docs): so all ranks abort when any
 * holds one, else all finalize (flushing, with the deadline) and destroy. */
static void nc_destroy(void *ctx)
{
    NcclCtx *c = ctx;
    int busy = 0;
    char msg[256] = "";
    for (int i = 0; i < TRANSPORT_MAX_PENDING; i++) busy |= nccl_req_state(&c->tab, i) != NCCL_REQ_FREE;
    if (busy) snprintf(msg, sizeof msg, "rank %d holds NCCL requests nobody waited for", c->rank);
    if (ctl_agree(busy, msg, sizeof msg)) {
        ncclCommAbort(c->comm);
    } else {
        ncclResult_t st = ncclSuccess, r = ncclCommFinalize(c->comm);
        int v = r == ncclSuccess || r == ncclInProgress ? nc_settle(c->comm, c->timeout_s, 0, &st) : NCCL_POLL_FAILED;
        if (v != NCCL_POLL_DONE) {
            fprintf(stderr, "[pp8 %s] warning: NCCL transport: ncclCommFinalize %s (%s); aborting the communicator\n",
                    c->prefix, v == NCCL_POLL_TIMEOUT ? "timed out (PP8_NCCL_TIMEOUT)" : "failed",
                    ncclGetErrorString(v == NCCL_POLL_TIMEOUT ? ncclInProgress : r != ncclSuccess ? r : st));
            ncclCommAbort(c->comm);
        } else {
            CUDA_CHECK(c, cudaStreamSynchronize(c->comm_stream));
            NCCL_CHECK(c, ncclCommDestroy(c->comm));
        }
    }
    c->comm = NULL;
    nc_free_ctx(c);
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
    double timeout_s = nccl_timeout_parse(getenv("PP8_NCCL_TIMEOUT"));
    if (timeout_s < 0 && !failed) {
        failed = 1;
        snprintf(msg, sizeof msg, "rank %d: PP8_NCCL_TIMEOUT=%s: expected seconds, 1 to 86400 (default %.0f)", rank,
                 getenv("PP8_NCCL_TIMEOUT"), NCCL_TIMEOUT_DEFAULT_S);
    }
    double stall = nccl_test_stall(getenv("PP8_NCCL_TEST_STALL"), rank);
    if (stall < 0 && !failed) {
        failed = 1;
        snprintf(msg, sizeof msg, "rank %d: PP8_NCCL_TEST_STALL=%s: expected RANK:SECONDS", rank,
                 getenv("PP8_NCCL_TEST_STALL"));
    }

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
    if (stall > 0) { /* test-only: this rank joins late, and the others' set-up waits for it */
        struct timespec ts = {(time_t)stall, (long)((stall - (double)(time_t)stall) * 1e9)};
        nanosleep(&ts, NULL);
    }
    /* the device "has to be set before calling ncclCommInitRank"; non-blocking, so a rank that never
     * joins (hung, or killed where mpirun does not notice) cannot hold the others past the deadline */
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = c && t ? ncclCommInitRankConfig(&comm, size, id, rank, &config) : ncclSystemError;
    ncclResult_t st = r;
    int v = r == ncclSuccess || r == ncclInProgress ? nc_settle(comm, timeout_s, 1, &st) : NCCL_POLL_FAILED;
    if (v == NCCL_POLL_TIMEOUT) {
        /* a rank that never joins may never reach an agreement either: one line from here, and the job ends */
        fprintf(stderr,
                "[pp8 r%d/%d %s] error: NCCL transport: rank %d: ncclCommInitRankConfig timed out after %.0f s: not "
                "every rank joined the communicator (a rank hung or died before NCCL set-up; PP8_NCCL_TIMEOUT sets "
                "the deadline)\n",
                rank, size, host, rank, timeout_s);
        fflush(stderr);
        ncclCommAbort(comm);
        ctl_abort(1);
    }
    /* agree on the failures of the ranks' own set-up (the message is the lowest such rank's); a rank that
     * stopped because another failed has none of its own */
    failed = v != NCCL_POLL_DONE && v != POLL_PEER_FAILED;
    if (failed) {
        /* our own failure: the ranks still waiting in their set-up stop (peer_failed), then all agree */
        snprintf(msg, sizeof msg, "rank %d: ncclCommInitRankConfig: %s (NCCL_DEBUG=WARN says more)", rank,
                 !c || !t ? "out of memory" : ncclGetErrorString(st));
        for (int p = 0; p < size; p++) {
            if (p == rank) continue;
            MPI_Request rq;
            MPI_Isend(&rank, 1, MPI_INT, p, CTL_TAG_NCCL_FAILED, MPI_COMM_WORLD, &rq);
            MPI_Request_free(&rq); /* a rank whose set-up had finished never takes it: nothing waits on it */
        }
    }
    if (ctl_agree(failed, msg, sizeof msg)) {
        if (comm) ncclCommAbort(comm);
        if (c) nc_free_ctx(c);
        free(t);
        snprintf(err, errlen, "NCCL: %s", msg);
        return NULL;
    }
    failed = 0;
    if (cudaStreamCreateWithFlags(&c->comm_stream, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreateWithFlags(&c->issued, cudaEventDisableTiming) != cudaSuccess) {
        failed = 1;
        snprintf(msg, sizeof msg, "rank %d: the communication stream: %s", rank, cudaGetErrorString(cudaGetLastError()));
    }
    for (int i = 0; !failed && i < TRANSPORT_MAX_PENDING; i++)
        if (cudaEventCreateWithFlags(&c->ev[i], cudaEventDisableTiming) != cudaSuccess) {
            failed = 1;
            snprintf(msg, sizeof msg, "rank %d: cudaEventCreate: %s", rank, cudaGetErrorString(cudaGetLastError()));
        }
    if (ctl_agree(failed, msg, sizeof msg)) {
        ncclCommAbort(comm);
        nc_free_ctx(c);
        free(t);
        snprintf(err, errlen, "NCCL: %s", msg);
        return NULL;
    }
    c->comm = comm;
    c->stream = (cudaStream_t)stream;
    c->rank = rank;
    c->size = size;
    c->timeout_s = timeout_s;
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
