/* Control over MPI: failure agreement, token ids, small collectives. See control.h. */
#include "control.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ctl_agree(int failed, char *msg, size_t len)
{
    int size, rank;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int mine = failed ? rank : size, first = size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == size) return 0;
    if (size > 1 && msg && len > 0) {
        char buf[1024] = {0};
        /* a failure of one rank (not one every rank shares, which rank 0 meets first) says which */
        if (rank == first && first > 0 && strncmp(msg, "rank ", 5)) snprintf(buf, sizeof buf, "rank %d: %s", first, msg);
        else if (rank == first) snprintf(buf, sizeof buf, "%s", msg);
        MPI_Bcast(buf, (int)sizeof buf, MPI_CHAR, first, MPI_COMM_WORLD);
        if (rank != first) snprintf(msg, len, "%s", buf);
    }
    return 1;
}

void ctl_abort(int code)
{
    int init = 0;
    MPI_Initialized(&init);
    if (init) MPI_Abort(MPI_COMM_WORLD, code);
    _Exit(code);
}

void ctl_send_i32(const int32_t *v, int n, int peer)
{
    MPI_Send(v, n, MPI_INT32_T, peer, CTL_TAG_TOKENS, MPI_COMM_WORLD);
}

void ctl_recv_i32(int32_t *v, int n, int peer)
{
    MPI_Recv(v, n, MPI_INT32_T, peer, CTL_TAG_TOKENS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

void ctl_bcast_i32(int32_t *v, int n, int root) { MPI_Bcast(v, n, MPI_INT32_T, root, MPI_COMM_WORLD); }

void ctl_send_tag_i32(const int32_t *v, int n, int peer, int tag)
{
    MPI_Send(v, n, MPI_INT32_T, peer, tag, MPI_COMM_WORLD);
}

int ctl_recv_tag_i32(int32_t *v, int max, int peer, int tag)
{
    MPI_Status st;
    int n = 0;
    MPI_Recv(v, max, MPI_INT32_T, peer, tag, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_INT32_T, &n);
    return n;
}

int ctl_recv_tag_i32_idle(int32_t *v, int max, int peer, int tag)
{
    MPI_Request rq;
    MPI_Status st;
    int done = 0, n = 0;
    MPI_Irecv(v, max, MPI_INT32_T, peer, tag, MPI_COMM_WORLD, &rq);
    double t0 = MPI_Wtime();
    long sleep_ns = 20000;
    while (MPI_Test(&rq, &done, &st), !done) {
        if (MPI_Wtime() - t0 < 2e-3) continue; /* items of a busy pipeline arrive within this */
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 1000000) sleep_ns *= 2;
    }
    MPI_Get_count(&st, MPI_INT32_T, &n);
    return n;
}

static MPI_Request pending[CTL_MAX_PENDING];
static int pending_used[CTL_MAX_PENDING];

int ctl_isend_tag_i32(const int32_t *v, int n, int peer, int tag)
{
    for (int h = 0; h < CTL_MAX_PENDING; h++)
        if (!pending_used[h]) {
            pending_used[h] = 1;
            MPI_Isend(v, n, MPI_INT32_T, peer, tag, MPI_COMM_WORLD, &pending[h]);
            return h;
        }
    fprintf(stderr, "[pp8 r%d] error %s:%d: more than %d control sends pending\n", ctl_rank(), __FILE__, __LINE__,
            CTL_MAX_PENDING);
    ctl_abort(1);
}

void ctl_wait(int handle)
{
    if (handle < 0 || handle >= CTL_MAX_PENDING || !pending_used[handle]) return;
    MPI_Wait(&pending[handle], MPI_STATUS_IGNORE);
    pending_used[handle] = 0;
}

void ctl_bcast_double(double *v, int n, int root) { MPI_Bcast(v, n, MPI_DOUBLE, root, MPI_COMM_WORLD); }

void ctl_barrier(void) { MPI_Barrier(MPI_COMM_WORLD); }

double ctl_max_double(double v)
{
    double r = v;
    MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return r;
}

void ctl_gather_double(const double *v, int n, double *all, int root)
{
    MPI_Gather(v, n, MPI_DOUBLE, all, n, MPI_DOUBLE, root, MPI_COMM_WORLD);
}

/* before MPI_Init (pp8 COMMAND --help, main.c): rank 0 of 1 */
int ctl_rank(void)
{
    int r = 0, up = 0;
    MPI_Initialized(&up);
    if (up) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int ctl_size(void)
{
    int s = 1, up = 0;
    MPI_Initialized(&up);
    if (up) MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

void ctl_node_info(int *local_rank, int *local_size)
{
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, ctl_rank(), MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, local_rank);
    MPI_Comm_size(node, local_size);
    MPI_Comm_free(&node);
}

int ctl_node_id(void)
{
    MPI_Comm node;
    int me = ctl_rank(), id = me;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, me, MPI_INFO_NULL, &node);
    MPI_Allreduce(&me, &id, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    return id;
}

void ctl_node_allgather(const void *mine, int bytes, void *all)
{
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, ctl_rank(), MPI_INFO_NULL, &node);
    MPI_Allgather(mine, bytes, MPI_BYTE, all, bytes, MPI_BYTE, node);
    MPI_Comm_free(&node);
}
