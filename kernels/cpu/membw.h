/* Read-bandwidth probe: how fast this machine streams memory it has not cached, with `threads` OpenMP
 * threads, the practical ceiling the linear kernels are measured against (shared/ANCHORS.md). Used by
 * `pp8 bench-linear` and `pp8 bench`. Measures reads only; no copy/write/latency figures. */
#ifndef PP8_MEMBW_H
#define PP8_MEMBW_H

#include <stddef.h>

/* GB/s (1e9 bytes/s) reading `bytes` (>= 256 MiB recommended, so nothing is cached), median of several
 * passes. prefetch = 1: AVX-512 loads with software prefetch ahead, the best of one stream per thread
 * and four, each at membw_pf_bytes() and at 2048 bytes ahead (one wins on 2 MiB pages, the other on 4 KiB pages on this VM): the practical
 * ceiling; 0: a plain one-stream AVX-512 sum loop. Falls back to portable loops without AVX-512.
 * Allocates (2 MiB pages where the kernel allows) and frees its buffer; returns 0 when it cannot. */
double membw_read_gbs(int threads, int prefetch, size_t bytes);

/* The software prefetch distance, in bytes, of this probe's prefetching loops and of the CPU linear
 * kernels' weight streams: 512 on AMD (AuthenticAMD), 2048 elsewhere (membw.c says why), unless
 * PP8_PF_BYTES=N (a multiple of 64, 64..16384) says. Decided once per process. */
int membw_pf_bytes(void);

/* Seconds for `threads` threads to read buf[0, bytes) once, each its contiguous share split into
 * `streams` (1..4) concurrent streams (prefetch = 1: membw_pf_bytes() ahead). For benchmarks that interleave a read probe with the kernels
 * they time. */
double membw_read_once(const void *buf, size_t bytes, int threads, int prefetch, int streams);

#endif
