/* Host-side decisions of the NCCL transport as plain C (no NCCL, CUDA or MPI types), built on every
 * machine and unit-tested on the CPU: the table of posted requests, when posted operations are issued
 * and whether they go into one ncclGroupStart/End, and the one-GPU-per-rank check. Issuing them is
 * transport_nccl.c's job; nothing here talks to a device or a peer. */
#ifndef PP8_NCCL_HOST_H
#define PP8_NCCL_HOST_H

#include <stddef.h>

#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { NCCL_OP_SEND = 0, NCCL_OP_RECV = 1 };
enum { NCCL_REQ_FREE = 0, NCCL_REQ_POSTED, NCCL_REQ_ISSUED };

typedef struct NcclOp {
    int kind; /* NCCL_OP_SEND | NCCL_OP_RECV */
    int peer;
    void *buf; /* device memory; const for sends */
    size_t bytes;
} NcclOp;

typedef struct NcclReqTable {
    NcclOp op[TRANSPORT_MAX_PENDING];
    unsigned char state[TRANSPORT_MAX_PENDING];
    int pending[TRANSPORT_MAX_PENDING]; /* POSTED requests in posting order (the order NCCL must see) */
    int npending;
} NcclReqTable;

void nccl_req_init(NcclReqTable *t);
/* Records a send/recv of `bytes` to/from `peer`; returns the request id, or -1 when the table is full,
 * the peer is not another rank of 0..size-1, or kind is unknown. */
int nccl_req_post(NcclReqTable *t, int kind, const void *buf, size_t bytes, int peer, int rank, int size);
/* Moves every POSTED request to ISSUED and writes their ids in posting order; returns the count. */
int nccl_req_take_pending(NcclReqTable *t, int *ids);
/* State of a request id (NCCL_REQ_FREE for an id out of range). */
int nccl_req_state(const NcclReqTable *t, int req);
/* Frees an ISSUED request; -1 when req is not an issued request. */
int nccl_req_release(NcclReqTable *t, int req);

/* Stage position: 1 when this rank of a pipeline chain both receives (from rank-1) and sends (to
 * rank+1) hidden states, so its send of micro-batch i and receive of i+1 must progress together
 * (one group, as NCCL's ring example). First and last ranks only send or only receive. */
int nccl_step_needs_group(int rank, int size);
/* After a post: issue the pending operations now? Ranks that only send or only receive issue at once
 * (nothing to pair with: stream order is all they need). A middle rank holds its operations until it
 * has both a send and a receive pending (then they go out as one group) or until it waits on one. */
int nccl_should_issue(const NcclReqTable *t, int middle);
/* Whether a batch of n operations issued together needs ncclGroupStart/End (more than one). */
int nccl_batch_needs_group(int n);

/* 1 when the n device ids (e.g. PCI bus ids, `stride` bytes each, NUL-terminated) are pairwise
 * different: NCCL hangs when one device serves two ranks of a communicator. */
int nccl_devices_unique(const char *ids, int n, size_t stride);

/* Test-only: PP8_NCCL_SHARED_GPU lets ranks that share one GPU talk over NCCL anyway, to exercise the
 * transport on a one-GPU machine (GPU-PLAN.md section 6). "multi": NCCL >= 2.30's experimental
 * NCCL_MULTI_RANK_GPU_ENABLE=1; "hostid": a different NCCL_HOSTID per rank, so NCCL sees one host per
 * rank and goes over sockets on loopback (unsupported by NVIDIA; exercises pp8's init, grouping, stream
 * and event code, not NCCL's P2P path). Returns NCCL_SHARED_OFF when unset or empty, -1 for another value. */
enum { NCCL_SHARED_OFF = 0, NCCL_SHARED_HOSTID = 1, NCCL_SHARED_MULTI = 2 };
int nccl_shared_gpu_route(const char *value);
/* sets that route's NCCL variables for this rank (call before the first NCCL call); variables the user
 * set already are kept */
void nccl_shared_gpu_setenv(int route, int rank);

/* ---- deadlines: the transport's communicator is non-blocking (ncclConfig_t.blocking = 0), so set-up,
 * grouped operations and shutdown return ncclInProgress and are polled (ncclCommGetAsyncError) ---- */
/* PP8_NCCL_TIMEOUT: the seconds a rank waits for the communicator's set-up or shutdown (the other ranks
 * joining it) before it ends the job with one line; unset or empty: NCCL_TIMEOUT_DEFAULT_S. Returns the
 * seconds, or -1 for anything but a number in [1, 86400]. */
#define NCCL_TIMEOUT_DEFAULT_S 120.0
double nccl_timeout_parse(const char *value);
/* One look at a polled state: NCCL_POLL_DONE when it succeeded, NCCL_POLL_FAILED on an error,
 * NCCL_POLL_TIMEOUT when it is still in progress after timeout_s (<= 0: no deadline), else
 * NCCL_POLL_AGAIN (poll again, after some MPI progress: NCCL's "MPI progress" advice). */
enum { NCCL_POLL_AGAIN = 0, NCCL_POLL_DONE, NCCL_POLL_FAILED, NCCL_POLL_TIMEOUT };
int nccl_poll_verdict(int success, int in_progress, double elapsed_s, double timeout_s);
/* Test-only: PP8_NCCL_TEST_STALL="R:S" makes world rank R sleep S seconds right before it joins the
 * communicator (the other ranks' set-up then waits for it: the deadline test). Returns S for this rank,
 * 0 when unset or another rank's, -1 when malformed. */
double nccl_test_stall(const char *value, int rank);

#ifdef __cplusplus
}
#endif
#endif
