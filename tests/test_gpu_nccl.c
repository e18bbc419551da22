/* The NCCL transport over 2 or 3 ranks, set up the way the runtime must do it (cuda_pick_device by
 * node-local rank -> backend_cuda_create -> transport_nccl_create with backend_cuda_stream). 2 ranks: a
 * chain of several posted sends of different sizes (incl. an odd byte count and an empty message)
 * received in order, a message back from the last rank to the first, and both directions in flight at
 * once. 3 ranks: the same chain forwarded through the middle rank, whose send of message i and receive of
 * i + 1 go out as one group (as the pipeline posts them). Contents are checked byte for byte on the host.
 * Every rank exits 77 (skipped) unless each rank has its own GPU, or PP8_NCCL_SHARED_GPU=hostid|multi
 * (parallel/nccl_host.h) lets ranks share one: then a refusal by NCCL also skips (77), never passes. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/backend.h"
#include "../kernels/check.h"
#include "../kernels/cuda_host.h"
#include "../parallel/control.h"
#include "../parallel/nccl_host.h"
#include "../parallel/transport.h"
#include "../runtime/engine/session.h"

static Backend *g_b;
static int g_fail;

static void abort_hook(int code) { ctl_abort(code); }

static unsigned char pattern(int msg, size_t i) { return (unsigned char)(msg * 37 + i * 11 + 3); }

static void *dev_pattern(int msg, size_t bytes)
{
    unsigned char *h = malloc(bytes ? bytes : 1);
    for (size_t i = 0; i < bytes; i++) h[i] = pattern(msg, i);
    void *d = g_b->alloc(g_b->ctx, bytes ? bytes : 1);
    PP8_CHECK(d, "device alloc");
    if (bytes) g_b->to_device(g_b->ctx, d, h, bytes);
    free(h);
    return d;
}

static void check_pattern(const char *what, int msg, const void *d, size_t bytes)
{
    unsigned char *h = malloc(bytes ? bytes : 1);
    if (bytes) g_b->to_host(g_b->ctx, h, d, bytes);
    size_t bad = 0;
    for (size_t i = 0; i < bytes; i++) bad += h[i] != pattern(msg, i);
    if (bad) {
        fprintf(stderr, "FAIL rank %d %s (message %d, %zu bytes): %zu bytes differ\n", ctl_rank(), what, msg, bytes,
                bad);
        g_fail++;
    }
    free(h);
}

#define T_CHECK(call)                                                                                                  \
    do {                                                                                                               \
        if ((call) != 0) {                                                                                             \
            fprintf(stderr, "FAIL rank %d: %s\n", ctl_rank(), #call);                                                  \
            g_fail++;                                                                                                  \
        }                                                                                                              \
    } while (0)

static int finish(Transport *t, int size)
{
    transport_destroy(t);
    backend_destroy(g_b);
    int total = 0;
    MPI_Allreduce(&g_fail, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (ctl_rank() == 0) printf("%s (%d failures over %d ranks)\n", total ? "FAILED" : "all checked", total, size);
    MPI_Finalize();
    return total ? 1 : 0;
}

/* 0 -> 1 -> 2: rank 1 forwards each message once it has it, its send of i grouped with its receive of i + 1 */
static int chain3(Transport *t, int rank)
{
    enum { NMSG = 4 };
    const size_t sizes[NMSG] = {2 * 64, 2 * 1000 + 1, 0, 2 * 4096 * 3};
    void *buf[NMSG];
    int req[NMSG], sreq[NMSG];
    for (int i = 0; i < NMSG; i++) buf[i] = rank == 0 ? dev_pattern(i, sizes[i]) : dev_pattern(99, sizes[i]);
    if (rank == 0) {
        for (int i = 0; i < NMSG; i++) T_CHECK(t->isend(t->ctx, buf[i], sizes[i], 1, 7200 + i, &req[i]));
        for (int i = 0; i < NMSG; i++) T_CHECK(t->wait(t->ctx, req[i]));
    } else if (rank == 2) {
        for (int i = 0; i < NMSG; i++) T_CHECK(t->irecv(t->ctx, buf[i], sizes[i], 1, 7200 + i, &req[i]));
        for (int i = NMSG - 1; i >= 0; i--) T_CHECK(t->wait(t->ctx, req[i]));
        for (int i = 0; i < NMSG; i++) check_pattern("chain through the middle rank", i, buf[i], sizes[i]);
    } else {
        T_CHECK(t->irecv(t->ctx, buf[0], sizes[0], 0, 7200, &req[0]));
        T_CHECK(t->wait(t->ctx, req[0]));
        for (int i = 0; i < NMSG; i++) {
            T_CHECK(t->isend(t->ctx, buf[i], sizes[i], 2, 7200 + i, &sreq[i]));
            if (i + 1 < NMSG) T_CHECK(t->irecv(t->ctx, buf[i + 1], sizes[i + 1], 0, 7201 + i, &req[i + 1]));
            if (i + 1 < NMSG) T_CHECK(t->wait(t->ctx, req[i + 1]));
            T_CHECK(t->wait(t->ctx, sreq[i]));
        }
        for (int i = 0; i < NMSG; i++) check_pattern("middle rank's copy", i, buf[i], sizes[i]);
    }
    for (int i = 0; i < NMSG; i++) g_b->free(g_b->ctx, buf[i]);
    return finish(t, 3);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    pp8_set_abort_hook(abort_hook);
    int rank = ctl_rank(), size = ctl_size();
    int lrank, lsize, dev = -1, sharing = 0;
    ctl_node_info(&lrank, &lsize);
    char err[512] = "";
    int ndev = backend_cuda_device_count();
    int route = nccl_shared_gpu_route(getenv("PP8_NCCL_SHARED_GPU"));
    CudaRankMode mode = route > 0 ? CUDA_RANKS_SHARED : CUDA_RANKS_ONE;
    int ok = (size == 2 || size == 3) && route >= 0 &&
             cuda_pick_device(lrank, lsize, ndev, session_node_gpu_view(lsize), mode, &dev, &sharing, err, sizeof err) == 0;
    if (ok) {
        BackendOptions o = {.threads = 0, .first_cpu = -1, .device = dev};
        g_b = backend_cuda_create(&o, err, sizeof err);
        ok = g_b != NULL;
    }
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all) { /* every rank skips together */
        if (!ok)
            printf("rank %d skipped: %s\n", rank,
                   size != 2 && size != 3 ? "needs 2 or 3 ranks"
                   : route < 0            ? "PP8_NCCL_SHARED_GPU: expected hostid or multi"
                                          : err);
        if (g_b) backend_destroy(g_b);
        MPI_Finalize();
        return 77;
    }

    fprintf(stderr, "rank %d: joining the NCCL communicator\n", rank); /* test_gpu_nccl_faults.sh waits for it */
    Transport *t = transport_nccl_create(backend_cuda_stream(g_b), err, sizeof err);
    if (!t) {
        /* on a shared GPU NCCL may refuse (NCCL <= 2.29 without a distinct host id): skipped, not passed */
        fprintf(stderr, "%s rank %d: transport_nccl_create: %s\n", route > 0 ? "SKIP" : "FAIL", rank, err);
        backend_destroy(g_b);
        MPI_Finalize();
        return route > 0 ? 77 : 1;
    }
    if (t->rank != rank || t->size != size || strcmp(t->name, "nccl")) fprintf(stderr, "FAIL rank/size/name\n"), g_fail++;
    if (rank == 0 && route > 0)
        printf("ranks share a GPU over NCCL: PP8_NCCL_SHARED_GPU=%s\n", getenv("PP8_NCCL_SHARED_GPU"));
    if (size == 3) return chain3(t, rank);

    /* 1. chain 0 -> 1: four messages posted before any wait, received in posting order */
    const size_t sizes[4] = {2 * 64, 2 * 1000 + 1, 0, 2 * 4096 * 3};
    void *buf[4];
    int req[4];
    for (int i = 0; i < 4; i++) buf[i] = rank == 0 ? dev_pattern(i, sizes[i]) : dev_pattern(99, sizes[i]);
    for (int i = 0; i < 4; i++) {
        if (rank == 0)
            T_CHECK(t->isend(t->ctx, buf[i], sizes[i], 1, 7100 + i, &req[i]));
        else
            T_CHECK(t->irecv(t->ctx, buf[i], sizes[i], 0, 7100 + i, &req[i]));
    }
    for (int i = 3; i >= 0; i--) T_CHECK(t->wait(t->ctx, req[i])); /* any wait order */
    if (rank == 1)
        for (int i = 0; i < 4; i++) check_pattern("chain", i, buf[i], sizes[i]);

    /* 2. back edge 1 -> 0 */
    void *back = rank == 1 ? dev_pattern(5, 3000) : dev_pattern(98, 3000);
    int r;
    if (rank == 1)
        T_CHECK(t->isend(t->ctx, back, 3000, 0, 7, &r));
    else
        T_CHECK(t->irecv(t->ctx, back, 3000, 1, 7, &r));
    T_CHECK(t->wait(t->ctx, r));
    if (rank == 0) check_pattern("back edge", 5, back, 3000);

    /* 3. both directions in flight: each rank's first operation is the one the other rank's first matches */
    const size_t big = (size_t)1 << 20;
    void *out = dev_pattern(10 + rank, big), *in = dev_pattern(97, big);
    int rs, rr;
    if (rank == 0) {
        T_CHECK(t->isend(t->ctx, out, big, 1, 1, &rs));
        T_CHECK(t->irecv(t->ctx, in, big, 1, 2, &rr));
    } else {
        T_CHECK(t->irecv(t->ctx, in, big, 0, 1, &rr));
        T_CHECK(t->isend(t->ctx, out, big, 0, 2, &rs));
    }
    T_CHECK(t->wait(t->ctx, rr));
    T_CHECK(t->wait(t->ctx, rs));
    check_pattern("exchange", 10 + (1 - rank), in, big);

    /* 4. refused: a peer that is not another rank, and waiting on a request twice */
    int bogus;
    if (t->isend(t->ctx, out, 16, rank, 0, &bogus) == 0) fprintf(stderr, "FAIL send to self accepted\n"), g_fail++;
    if (t->wait(t->ctx, rr) == 0) fprintf(stderr, "FAIL second wait accepted\n"), g_fail++;

    /* 5. the transport's own stream (GPU-PLAN.md section 5, risk 2), ordered by events both ways. A send
     * carries what the compute stream wrote just before it (behind a 256 MiB copy that keeps that stream
     * busy); a receive waits for the compute stream's earlier reads of its buffer; and a send whose
     * receiver is late (500 ms) does not hold the compute stream: its sync returns at once. */
    const size_t slow = (size_t)256 << 20;
    void *s_a = g_b->alloc(g_b->ctx, slow), *s_b = g_b->alloc(g_b->ctx, slow);
    PP8_CHECK(s_a && s_b, "device alloc");
    void *x = dev_pattern(rank == 0 ? 20 : 30, big), *fresh = dev_pattern(21, big), *snap = dev_pattern(96, big);
    int rq;
    if (rank == 0) {
        g_b->to_device(g_b->ctx, s_a, s_b, slow); /* device -> device: enqueued, not waited for */
        g_b->to_device(g_b->ctx, x, fresh, big);
        T_CHECK(t->isend(t->ctx, x, big, 1, 3, &rq));
        T_CHECK(t->wait(t->ctx, rq));
    } else {
        g_b->to_device(g_b->ctx, s_a, s_b, slow);
        g_b->to_device(g_b->ctx, snap, x, big); /* reads x before the receive may overwrite it */
        T_CHECK(t->irecv(t->ctx, x, big, 0, 3, &rq));
        T_CHECK(t->wait(t->ctx, rq));
        check_pattern("a send after the compute stream's write", 21, x, big);
        check_pattern("the compute stream's read before a receive", 30, snap, big);
    }
    if (rank == 0) {
        T_CHECK(t->isend(t->ctx, out, big, 1, 4, &rq));
        double t0 = MPI_Wtime();
        g_b->sync(g_b->ctx);
        double held = MPI_Wtime() - t0;
        if (held > 0.25) {
            fprintf(stderr, "FAIL rank 0: the compute stream waited %.3f s for a send's late receiver\n", held);
            g_fail++;
        }
        T_CHECK(t->wait(t->ctx, rq));
    } else {
        struct timespec late = {0, 500 * 1000 * 1000};
        nanosleep(&late, NULL);
        T_CHECK(t->irecv(t->ctx, in, big, 0, 4, &rq));
        T_CHECK(t->wait(t->ctx, rq));
        check_pattern("a late receive", 10, in, big);
    }
    g_b->free(g_b->ctx, s_a);
    g_b->free(g_b->ctx, s_b);
    g_b->free(g_b->ctx, x);
    g_b->free(g_b->ctx, fresh);
    g_b->free(g_b->ctx, snap);

    /* 6. shutdown with a request nobody waited for (risk 3): rank 0 posts a send rank 1 never receives;
     * the ranks agree to abort instead of one destroying while the other aborts (finish must return) */
    int leftover = -1;
    if (rank == 0) T_CHECK(t->isend(t->ctx, out, 4096, 1, 5, &leftover));

    for (int i = 0; i < 4; i++) g_b->free(g_b->ctx, buf[i]);
    g_b->free(g_b->ctx, back);
    g_b->free(g_b->ctx, in);
    int rc = finish(t, 2); /* the leftover send's buffer (out) stays allocated: the aborted send may read it */
    return rc;
}
