/* Control messages between ranks over MPI on the host, whatever carries the hidden states: agreement
 * on a failure (so every rank exits together), and small integer payloads such as token ids from the
 * last stage back to the first. Knows nothing of transformers. */
#ifndef PP8_CONTROL_H
#define PP8_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Collective: returns 1 when any rank passed failed != 0. Then msg (on every rank) holds the message of
 * the lowest failing rank, so rank 0 can print it. */
int ctl_agree(int failed, char *msg, size_t len);
/* Abort the whole job after an internal fault (never exit() from one rank alone). */
__attribute__((noreturn)) void ctl_abort(int code);
/* Blocking int32 transfers on the control tag. */
void ctl_send_i32(const int32_t *v, int n, int peer);
void ctl_recv_i32(int32_t *v, int n, int peer);
void ctl_bcast_i32(int32_t *v, int n, int root);
/* Variable-length int32 messages on a tag of their own (MPI keeps them in order per peer and tag):
 * the receive takes up to max values and returns how many came. */
void ctl_send_tag_i32(const int32_t *v, int n, int peer, int tag);
int ctl_recv_tag_i32(int32_t *v, int max, int peer, int tag);
/* The same receive for a rank that may wait long (a server's ranks between requests): it polls for
 * ~2 ms, then sleeps between polls (up to 1 ms), where MPI_Recv would keep a core spinning. */
int ctl_recv_tag_i32_idle(int32_t *v, int max, int peer, int tag);
/* The same send without blocking (v untouched until ctl_wait): a large message would otherwise wait
 * for its receiver, and three ranks each sending to the next could wait in a circle. Returns a handle;
 * at most CTL_MAX_PENDING sends are pending at once (PP8_CHECK otherwise). */
#define CTL_MAX_PENDING 256
int ctl_isend_tag_i32(const int32_t *v, int n, int peer, int tag);
void ctl_wait(int handle);
void ctl_bcast_double(double *v, int n, int root);
void ctl_barrier(void);
double ctl_max_double(double v);
void ctl_gather_double(const double *v, int n, double *all /* (size, n) on root */, int root);
int ctl_rank(void);
int ctl_size(void);
/* ranks on this node and this rank's index among them (MPI_COMM_TYPE_SHARED) */
void ctl_node_info(int *local_rank, int *local_size);
/* the lowest world rank on this node: equal for the ranks that share its memory */
int ctl_node_id(void);
/* every node-local rank's `bytes` bytes, in node-local rank order, into all (local_size * bytes);
 * collective over the world (each node gathers its own) */
void ctl_node_allgather(const void *mine, int bytes, void *all);

#define CTL_TAG_TOKENS 7001
#define CTL_TAG_ROWS 7002   /* a pipeline item's row descriptors, rank r to r + 1 */
#define CTL_TAG_SAMPLED 7003 /* the ids the last rank sampled for an item, back to rank 0 */
#define CTL_TAG_NCCL_FAILED 7004 /* a rank's NCCL set-up failed: the others stop waiting for it */
#define CTL_TAG_HIDDEN 7100 /* + micro-batch index */

#ifdef __cplusplus
}
#endif
#endif
