/* Transport over MPI point-to-point on host buffers: MPI_Isend / MPI_Irecv, completed by wait().
 * Messages between one pair keep their order (MPI's non-overtaking rule), which the pipeline relies on. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "transport.h"

typedef struct {
    MPI_Request req[TRANSPORT_MAX_PENDING];
    int used[TRANSPORT_MAX_PENDING];
} MpiCtx;

static int mpi_slot(MpiCtx *c)
{
    for (int i = 0; i < TRANSPORT_MAX_PENDING; i++)
        if (!c->used[i]) {
            c->used[i] = 1;
            return i;
        }
    return -1;
}

static int mpi_isend(void *ctx, const void *buf, size_t bytes, int peer, int tag, int *req)
{
    MpiCtx *c = ctx;
    int s = mpi_slot(c);
    if (s < 0 || bytes > (size_t)0x7fffffff) return -1;
    *req = s;
    return MPI_Isend(buf, (int)bytes, MPI_BYTE, peer, tag, MPI_COMM_WORLD, &c->req[s]) == MPI_SUCCESS ? 0 : -1;
}

static int mpi_irecv(void *ctx, void *buf, size_t bytes, int peer, int tag, int *req)
{
    MpiCtx *c = ctx;
    int s = mpi_slot(c);
    if (s < 0 || bytes > (size_t)0x7fffffff) return -1;
    *req = s;
    return MPI_Irecv(buf, (int)bytes, MPI_BYTE, peer, tag, MPI_COMM_WORLD, &c->req[s]) == MPI_SUCCESS ? 0 : -1;
}

static int mpi_wait(void *ctx, int req)
{
    MpiCtx *c = ctx;
    if (req < 0 || req >= TRANSPORT_MAX_PENDING || !c->used[req]) return -1;
    int rc = MPI_Wait(&c->req[req], MPI_STATUS_IGNORE);
    c->used[req] = 0;
    return rc == MPI_SUCCESS ? 0 : -1;
}

static void mpi_destroy(void *ctx) { free(ctx); }

Transport *transport_mpi_create(void)
{
    Transport *t = calloc(1, sizeof *t);
    MpiCtx *c = calloc(1, sizeof *c);
    if (!t || !c) {
        free(t);
        free(c);
        return NULL;
    }
    t->name = "mpi";
    t->ctx = c;
    MPI_Comm_rank(MPI_COMM_WORLD, &t->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &t->size);
    t->isend = mpi_isend;
    t->irecv = mpi_irecv;
    t->wait = mpi_wait;
    t->destroy = mpi_destroy;
    return t;
}

