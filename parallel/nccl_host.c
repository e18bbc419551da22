/* Request bookkeeping and issue/group decisions of the NCCL transport (see nccl_host.h). Plain C with no
 * NCCL, CUDA or MPI calls, so the CPU-only build compiles it and tests/test_cuda_host.c covers it. */
#include "nccl_host.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nccl_req_init(NcclReqTable *t) { memset(t, 0, sizeof *t); }

int nccl_req_post(NcclReqTable *t, int kind, const void *buf, size_t bytes, int peer, int rank, int size)
{
    if (kind != NCCL_OP_SEND && kind != NCCL_OP_RECV) return -1;
    if (peer < 0 || peer >= size || peer == rank) return -1;
    for (int i = 0; i < TRANSPORT_MAX_PENDING; i++)
        if (t->state[i] == NCCL_REQ_FREE) {
            t->op[i].kind = kind;
            t->op[i].peer = peer;
            t->op[i].buf = (void *)(uintptr_t)buf; /* sends never write through it */
            t->op[i].bytes = bytes;
            t->state[i] = NCCL_REQ_POSTED;
            t->pending[t->npending++] = i;
            return i;
        }
    return -1;
}

int nccl_req_take_pending(NcclReqTable *t, int *ids)
{
    int n = t->npending;
    for (int i = 0; i < n; i++) {
        ids[i] = t->pending[i];
        t->state[ids[i]] = NCCL_REQ_ISSUED;
    }
    t->npending = 0;
    return n;
}

int nccl_req_state(const NcclReqTable *t, int req)
{
    return req >= 0 && req < TRANSPORT_MAX_PENDING ? t->state[req] : NCCL_REQ_FREE;
}

int nccl_req_release(NcclReqTable *t, int req)
{
    if (nccl_req_state(t, req) != NCCL_REQ_ISSUED) return -1;
    t->state[req] = NCCL_REQ_FREE;
    return 0;
}

int nccl_step_needs_group(int rank, int size) { return size > 2 && rank > 0 && rank < size - 1; }

int nccl_should_issue(const NcclReqTable *t, int middle)
{
    if (t->npending == 0) return 0;
    if (!middle) return 1;
    int sends = 0, recvs = 0;
    for (int i = 0; i < t->npending; i++) {
        if (t->op[t->pending[i]].kind == NCCL_OP_SEND)
            sends++;
        else
            recvs++;
    }
    return sends > 0 && recvs > 0;
}

int nccl_batch_needs_group(int n) { return n > 1; }

int nccl_devices_unique(const char *ids, int n, size_t stride)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (!strncmp(ids + (size_t)i * stride, ids + (size_t)j * stride, stride)) return 0;
    return 1;
}

int nccl_shared_gpu_route(const char *v)
{
    if (!v || !v[0]) return NCCL_SHARED_OFF;
    if (!strcmp(v, "hostid")) return NCCL_SHARED_HOSTID;
    if (!strcmp(v, "multi")) return NCCL_SHARED_MULTI;
    return -1;
}

void nccl_shared_gpu_setenv(int route, int rank)
{
    if (route == NCCL_SHARED_HOSTID) {
        char id[64];
        snprintf(id, sizeof id, "pp8-test-rank-%d", rank);
        setenv("NCCL_HOSTID", id, 0);
        setenv("NCCL_SOCKET_IFNAME", "lo", 0);
        setenv("NCCL_IB_DISABLE", "1", 0);
    } else if (route == NCCL_SHARED_MULTI) {
        setenv("NCCL_MULTI_RANK_GPU_ENABLE", "1", 0);
    }
}

double nccl_timeout_parse(const char *v)
{
    if (!v || !v[0]) return NCCL_TIMEOUT_DEFAULT_S;
    char *end = NULL;
    double t = strtod(v, &end);
    if (end == v || *end || !(t >= 1 && t <= 86400)) return -1;
    return t;
}

int nccl_poll_verdict(int success, int in_progress, double elapsed_s, double timeout_s)
{
    if (success) return NCCL_POLL_DONE;
    if (!in_progress) return NCCL_POLL_FAILED;
    if (timeout_s > 0 && elapsed_s > timeout_s) return NCCL_POLL_TIMEOUT;
    return NCCL_POLL_AGAIN;
}

double nccl_test_stall(const char *v, int rank)
{
    if (!v || !v[0]) return 0;
    char *end = NULL;
    long r = strtol(v, &end, 10);
    if (end == v || *end != ':') return -1;
    const char *sv = end + 1;
    double sec = strtod(sv, &end);
    if (end == sv || *end || !(sec >= 0 && sec <= 3600) || r < 0) return -1;
    return r == rank ? sec : 0;
}
