/* Moving bytes between pipeline ranks: the hidden-state blocks that cross from stage r to r+1, as a
 * struct of function pointers plus ctx. MPI (host buffers) and NCCL (device buffers, bootstrapped over
 * MPI) implement it. It knows nothing of transformers; token ids and control messages always go over
 * MPI on the host (control.h), even when hidden states use NCCL. */
#ifndef PP8_TRANSPORT_H
#define PP8_TRANSPORT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRANSPORT_MAX_PENDING 64

typedef struct Transport {
    const char *name; /* "mpi" | "nccl" */
    void *ctx;
    int rank, size;
    /* Non-blocking send / receive of `bytes` bytes to / from `peer`; *req identifies it for wait.
     * Messages between the same pair arrive in the order posted (both MPI and NCCL keep that order).
     * NCCL runs them on the stream given at creation. */
    int (*isend)(void *ctx, const void *buf, size_t bytes, int peer, int tag, int *req);
    int (*irecv)(void *ctx, void *buf, size_t bytes, int peer, int tag, int *req);
    /* Completes one request: for MPI the buffer is then usable; for NCCL the transfer is ordered on the
     * stream before any later work on it. */
    int (*wait)(void *ctx, int req);
    void (*destroy)(void *ctx);
} Transport;

/* MPI over MPI_COMM_WORLD (MPI must be initialised). */
Transport *transport_mpi_create(void);
/* NCCL communicator over the world, device already selected; stream is a cudaStream_t. NULL when not
 * built with NCCL (err says so). */
Transport *transport_nccl_create(void *stream, char *err, size_t errlen);
void transport_destroy(Transport *t);

#ifdef __cplusplus
}
#endif
#endif
