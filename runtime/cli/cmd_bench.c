/* pp8 bench: pipeline throughput on a real model shape (random weights from --config, or --model),
 * prefill and decode at several batch sizes, for several dtypes and schedules side by side in one run,
 * so the ratios (int8 vs bf16, pipelined vs naive) come from the same machine state. Prints a table on
 * stdout and, with --json, the same numbers with provenance. It measures; it asserts nothing. */
#include <cjson/cJSON.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../kernels/cpu/cpu_linear.h"
#include "../../kernels/cpu/membw.h"
#include "../../kernels/cpu/peak.h"
#include "../../kernels/check.h"
#include "../../kernels/cuda_host.h"
#include "../../parallel/control.h"
#include "commands.h"
#include "../util/log.h"
#include "../util/proc.h"
#include "../engine/session.h"
#include "version.h"

#define MAXL 16

typedef struct BenchArgs {
    SessionOpts o;
    DType dtypes[4];
    int ndtypes;
    int batch[MAXL], nbatch;
    Schedule sched[2];
    int nsched;
    int prompt_len, gen;
    const char *json;
    int profile;
    int stream_bound;
} BenchArgs;

/* one linear path a run's decode uses, and the compute peak that bounds it (rank 0's path chooser;
 * gops: useful GOP/s, the mean over the ranks that use the path) */
typedef struct BenchPath {
    DType wdt;
    const char *path;
    PeakProbe probe;
    double useful; /* useful ops per probe op: 0.25 for amx-f16split */
    int unknown;   /* the path has no probe of its own: bounded by the widest FMA probe */
    double gops;
} BenchPath;

#define MAXPATHS 8

typedef struct BenchRun {
    DType dtype;
    Schedule sched;
    int M, batch;
    double prefill_s, decode_s, roofline_tps;
    /* the decode bound (run_bounds): bytes / bandwidth and ops / the paths' compute peaks per linear,
     * chained over the stages as the schedule runs them; comp_tps 0 where there are no peaks (GPU) */
    double bound_tps, bw_tps, comp_tps;
    int compute_bound; /* comp_tps < bw_tps */
    double step_bytes[64], step_ops[64]; /* per rank, one decode step (all micro-batches) */
    BenchPath paths[MAXPATHS];
    int npaths;
    double stream_tps; /* --stream-bound: tokens/s if every stage only streamed its step's bytes; 0: not measured */
    double busy[64]; /* per rank, decode phase */
    double bw[64];   /* per rank, GB/s: read bandwidth measured alone just before this run (the roofline's) */
    double bw_node[64]; /* per rank, GB/s: its share while every rank of its node reads at once (CPU); 0 on GPUs */
    int node[64];       /* per rank: ctl_node_id */
    double node_tps;    /* batch / (the busiest node's step bytes / its ranks' read bandwidth together); 0: none */
    double prof[64][PROF_COUNT]; /* --profile: per rank, seconds per op over the decode phase */
    double *kern; /* --profile, rank 0: (ranks, PROF_DOUBLES) every rank's Prof doubles; NULL otherwise */
    double rss[64];  /* per rank, bytes: peak resident memory (VmHWM) since this dtype's load began */
    double plan[64]; /* per rank, bytes: the plan's weights + KV cache + workspace */
    /* --backend cuda, per rank, bytes (CudaMemStats): peak_device_bytes (what the rank added to its GPU
     * since its CUDA context existed, by cudaMemGetInfo), the allocator's own peak, the context's */
    int on_gpu;
    double dev_peak[64], dev_alloc[64], dev_ctx[64];
    const char *path_decode, *path_prefill, *path_head;
} BenchRun;

static void usage(void)
{
    printf("usage: [mpirun -np N] pp8 bench (--config C | --model DIR) [options]\n\n"
           "Prefill (batch x prompt tokens) then decode (--gen steps, one token per sequence each) through the\n"
           "pipeline; reports tokens/s, ms per generated token (= decode wall time / (batch x gen)), each\n"
           "stage's busy fraction (compute time / decode wall time), and two bounds on decode tokens/s:\n"
           "  roofline_t/s  weight-read roofline: batch / sum over stages of (weight bytes read per decode step /\n"
           "                that rank's read bandwidth, measured alone just before each run over as many\n"
           "                bytes as its step reads (64 MiB to twice the L3 cache); bw_GB/s is its mean over\n"
           "                the ranks); frac = decode_t/s / roofline_t/s. Counts bytes only.\n"
           "  bound_t/s     the honest bound: per stage and micro-batch, every linear takes at least max(its\n"
           "                bytes / bandwidth, 2*rows*N*K / the compute peak of the kernel path it runs), plus\n"
           "                the KV cache its rows attend to (prompt + (gen+1)/2 positions on average) and the\n"
           "                norms' bytes / bandwidth; stages chained as the schedule runs them (naive: one after\n"
           "                another; pipelined: the larger of one micro-batch crossing every stage and the\n"
           "                busiest stage serving all micro-batches). `by` names the bound that is smaller on\n"
           "                its own: bw (bytes alone) or comp (ops alone); of_bound = decode_t/s / bound_t/s.\n"
           "                Ranks that share a node's memory also share its bandwidth: on the CPU a step takes\n"
           "                at least each node's step bytes (all its ranks) / the bandwidth its ranks read\n"
           "                at together (measured so just before each run), which bounds pipelined runs\n"
           "                whose stages stream at once.\n"
           "                Peaks: per kernel path a register/tile-resident probe of the instruction it is\n"
           "                built on (tdpbssd, tdpbf16ps (amx-f16split: a quarter, four per product),\n"
           "                vpdpbusd, vdpbf16ps, vfmadd zmm/ymm, avx2-int8's vpmaddubsw chain, scalar\n"
           "                mul+add), with the run's threads, each rank alone, once per bench. The CPU\n"
           "                backend only: with --backend cuda the bound is the bandwidth one.\n"
           "  JSON per run: roofline_tokens_per_s (weight-read), bound_tokens_per_s, bound (\"bandwidth\" |\n"
           "  \"compute\"), bandwidth_bound_tokens_per_s, compute_bound_tokens_per_s (null without peaks),\n"
           "  peaks_gops {path: GOP/s}, peak_probes {path: instruction}, bound_step_bytes and bound_step_ops\n"
           "  [per rank, one decode step].\n\n"
           "  --dtype D[,D..]      int8 | fp16 | bf16, compared side by side (default int8,bf16)\n"
           "  --batch B[,B..]      batch sizes (default 1,8,32)\n"
           "  --prompt-len N       prompt tokens per sequence (default 32)\n"
           "  --gen N              decode steps (default 16)\n"
           "  --schedule S[,S..]   pipelined | naive, or both to compare (default pipelined)\n"
           "  --json FILE          write the results (and provenance) as JSON\n"
           "  --profile            after each run, each stage's decode time per op in ms per step; with --json\n"
           "                       also per op and layer (runs[].kernels: rank, op, layer, us per step, GB/s of\n"
           "                       weights and KV cache read). CPU: the wall clock between syncs around each op;\n"
           "                       CUDA: event pairs around each op, read after the step (no host waits, no\n"
           "                       CUDA graph)\n"
           "  --stream-bound       after each run, time reading the bytes a decode step of that run reads (each\n"
           "                       stage's weights once per micro-batch, the KV cache it attends to, the LM\n"
           "                       head) with the probe's prefetching loop and no compute, the stages at once\n"
           "                       as the schedule overlaps them: the best any kernels could do on this memory\n"
           "                       (stream_t/s, and decode_t/s as a fraction of it). CPU backend only\n%s",
           session_flags_help(SESSION_HELP_BENCH));
}

static int parse(BenchArgs *a, int argc, char **argv, Err *e)
{
    memset(a, 0, sizeof *a);
    session_defaults(&a->o);
    a->dtypes[0] = DTYPE_I8;
    a->dtypes[1] = DTYPE_BF16;
    a->ndtypes = 2;
    a->batch[0] = 1, a->batch[1] = 8, a->batch[2] = 32;
    a->nbatch = 3;
    a->sched[0] = SCHED_PIPELINED;
    a->nsched = 1;
    a->prompt_len = 32;
    a->gen = 16;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--dtype")) {
            if (!(v = cli_value(argc, argv, &i, e))) return -1;
            a->ndtypes = 0;
            char buf[64];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                if (a->ndtypes == 4) return err_set(e, "--dtype: at most 4 values");
                if (parse_dtype(t, &a->dtypes[a->ndtypes++], e)) return -1;
            }
            continue;
        }
        if (!strcmp(argv[i], "--schedule")) {
            if (!(v = cli_value(argc, argv, &i, e))) return -1;
            a->nsched = 0;
            char buf[64];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                if (a->nsched == 2) return err_set(e, "--schedule: at most pipelined,naive");
                if (!strcmp(t, "pipelined")) a->sched[a->nsched++] = SCHED_PIPELINED;
                else if (!strcmp(t, "naive")) a->sched[a->nsched++] = SCHED_NAIVE;
                else return err_set(e, "--schedule %s: expected pipelined, naive or pipelined,naive", t);
            }
            continue;
        }
        int r = session_flag(&a->o, argc, argv, &i, e);
        if (r < 0) return -1;
        if (r) continue;
        if (!strcmp(argv[i], "--batch")) {
            if (!(v = cli_value(argc, argv, &i, e)) || (a->nbatch = cli_int_list(v, "--batch", 1, 65536, a->batch, MAXL, e)) < 0)
                return -1;
        } else if (!strcmp(argv[i], "--prompt-len")) {
            if (!(v = cli_value(argc, argv, &i, e)) || cli_int(v, "--prompt-len", 1, 1 << 20, &a->prompt_len, e)) return -1;
        } else if (!strcmp(argv[i], "--gen")) {
            if (!(v = cli_value(argc, argv, &i, e)) || cli_int(v, "--gen", 1, 1 << 20, &a->gen, e)) return -1;
        } else if (!strcmp(argv[i], "--profile")) {
            a->profile = 1;
        } else if (!strcmp(argv[i], "--stream-bound")) {
            a->stream_bound = 1;
        } else if (!strcmp(argv[i], "--json")) {
            if (!(a->json = cli_value(argc, argv, &i, e))) return -1;
        } else if (!strcmp(argv[i], "--seed")) {
            return err_set(e, "--seed is pp8 generate's sampling seed; the seed of --config's random weights is "
                              "--weights-seed");
        } else {
            return err_set(e, "unknown option '%s' (pp8 bench --help)", argv[i]);
        }
    }
    if (!a->o.config && !a->o.model) return err_set(e, "give --config C (random weights) or --model DIR");
    /* --int8-head: for the int8 runs of the list (session.h), so one run compares heads per dtype */
    a->o.int8_head_int8_only = 1;
    int any_int8 = 0;
    for (int d = 0; d < a->ndtypes; d++) any_int8 |= a->dtypes[d] == DTYPE_I8;
    if (a->o.int8_head && !any_int8)
        return err_set(e, "--int8-head applies to the int8 runs, and --dtype lists none: add int8 to --dtype or drop "
                          "--int8-head");
    if (a->stream_bound && a->o.backend && strcmp(a->o.backend, "cpu"))
        return err_set(e, "--stream-bound times host memory reads: CPU backend only (add --backend cpu, or drop it)");
    return 0;
}

/* --micro-batches applies to both schedules (so they compare like for like); without it, naive takes
 * 1 (accelerate's device_map) and pipelined the planner's choice for this batch */
static int micro_batches_for(const BenchArgs *a, const Session *s, Schedule sched, int batch)
{
    int M = a->o.micro_batches > 0 ? a->o.micro_batches
            : sched == SCHED_NAIVE  ? 1
            : s                     ? session_default_micro_batches(s, batch)
                                    : 1;
    return M < batch ? M : batch;
}

/* Bytes the CPU bandwidth probe reads, as many as this rank's decode step reads (its weights), from 64
 * MiB to twice the last-level cache: a buffer smaller than the cache measures the cache. This VM's L3
 * is 480 MiB: a 256 MiB buffer read at 26 GB/s while OPT-1.3B's 0.7 GB per rank streamed at 18. */
static size_t probe_bytes(const Session *s)
{
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    size_t lo = (size_t)64 << 20, hi = (size_t)256 << 20, b = (size_t)s->m.weight_bytes_read;
    if (llc > 0 && 2 * (size_t)llc > hi) hi = 2 * (size_t)llc;
    if (hi > ((size_t)2 << 30)) hi = (size_t)2 << 30;
    return b < lo ? lo : b > hi ? hi : b;
}

/* Per-rank read bandwidth, each rank alone (the others wait): the ceiling one stage can read its
 * weights at. CPU: memory through this rank's threads over probe_bytes, with (plain != NULL) the
 * plain-loop figure for comparison with ANCHORS.md. GPU: device memory through a read kernel (both
 * figures are that one). */
static void measure_bandwidth(Session *s, double *prefetch, double *plain)
{
    size_t bytes = probe_bytes(s);
    int gpu = session_on_gpu(s);
    for (int r = 0; r < ctl_size(); r++) {
        ctl_barrier();
        if (r != ctl_rank()) continue;
        if (gpu) {
            *prefetch = backend_cuda_read_gbs(s->be, (size_t)2 << 30);
            if (plain) *plain = *prefetch;
        } else {
            *prefetch = membw_read_gbs(s->o.threads, 1, bytes);
            if (plain) *plain = membw_read_gbs(s->o.threads, 0, bytes);
        }
    }
    ctl_barrier();
}

/* This rank's read bandwidth while every rank reads at once (CPU): on one node the ranks' shares of its
 * memory bandwidth, the rate pipelined stages that run at the same time can stream at. */
static double measure_bandwidth_together(Session *s)
{
    ctl_barrier();
    double gbs = membw_read_gbs(s->o.threads, 1, probe_bytes(s));
    ctl_barrier();
    return gbs;
}

/* seconds to read [p, p + bytes) once with the bandwidth probe's prefetching loop (whose loads need 64-byte
 * alignment: the few bytes before the first boundary are left out) */
static double read_s(const void *p, size_t bytes, int threads)
{
    size_t skip = (64 - (uintptr_t)p % 64) % 64;
    if (!p || bytes <= skip) return 0;
    return membw_read_once((const char *)p + skip, bytes - skip, threads, 1, 1);
}

static double read_linear_s(const Linear *w, int threads)
{
    if (!w->w) return 0;
    return read_s(w->w, (size_t)w->n * (size_t)w->k * dtype_size(w->wdt), threads) +
           read_s(w->scb, w->scb ? 4 * (size_t)w->n : 0, threads) + read_s(w->bias, w->bias ? 2 * (size_t)w->n : 0, threads);
}

/* --stream-bound: seconds for this rank to read, without computing, what one decode step of a run reads
 * here: per micro-batch, each layer's weights with the keys and values its rows attend to (on average
 * over the run's decode steps: prompt_len + (gen + 1) / 2 positions), then the LM head. It reads the
 * model's own weight arrays and this run's cache region, in the order the step does. */
static double stream_step_s(const Session *s, int M, int batch, int prompt_len, int gen)
{
    const Model *m = &s->m;
    const RunState *rs = &s->rs;
    const int H = s->cfg.heads, E = s->cfg.hidden / s->cfg.heads, th = s->o.threads;
    const size_t layer_kv = (size_t)rs->slots * H * rs->max_seq * E; /* values per layer, keys or values */
    const double keys = prompt_len + (gen + 1) / 2.0;
    double t = 0;
    for (int mb = 0; mb < M; mb++) {
        int rows = batch / M + (mb < batch % M);
        size_t kv = (size_t)(rows * keys) * (size_t)H * (size_t)E * 2;
        if (kv > 2 * layer_kv) kv = 2 * layer_kv;
        for (int l = 0; l < m->layer_end - m->layer_begin; l++) {
            const LayerWeights *w = &m->layers[l];
            t += read_linear_s(&w->qkv, th);
            t += read_s(rs->k_cache + l * layer_kv, kv, th) + read_s(rs->v_cache + l * layer_kv, kv, th);
            t += read_linear_s(&w->out, th) + read_linear_s(&w->fc1, th) + read_linear_s(&w->fc2, th);
        }
        if (m->last) t += read_linear_s(&m->lm_head, th);
    }
    return t;
}

/* tokens/s if every stage did nothing but stream its step's bytes (stream_step_s): the naive schedule runs
 * the stages one after another, each alone; the pipelined one at once, each stage serving all M
 * micro-batches (max over stages, all reading together) and each micro-batch crossing all stages (sum
 * of the stages alone / M). Best of 3 (a bound). Collective. */
static double stream_bound_tps(const Session *s, const BenchArgs *a, Schedule sched, int M, int batch)
{
    double alone_me = 1e30, conc_me = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        for (int r = 0; r < s->size; r++) {
            ctl_barrier();
            if (r != s->rank) continue;
            double t = stream_step_s(s, M, batch, a->prompt_len, a->gen);
            if (t < alone_me) alone_me = t;
        }
        ctl_barrier();
        double t = stream_step_s(s, M, batch, a->prompt_len, a->gen);
        if (t < conc_me) conc_me = t;
    }
    double alone[64] = {0}, conc[64] = {0}, chain = 0, slowest = 0;
    MPI_Allgather(&alone_me, 1, MPI_DOUBLE, alone, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    MPI_Allgather(&conc_me, 1, MPI_DOUBLE, conc, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    for (int r = 0; r < s->size; r++) {
        chain += alone[r];
        if (conc[r] > slowest) slowest = conc[r];
    }
    double step = sched == SCHED_NAIVE ? chain : (chain / M > slowest ? chain / M : slowest);
    return step > 0 ? batch / step : 0;
}

/* ---- the decode bound: bytes / bandwidth and ops / compute peak, per linear, chained over stages ---- */

/* Compute peaks: this rank's GOP/s per probe (0 = not measured yet), measured the first time a run needs
 * one and kept for the bench (a register-resident rate does not drift with memory state as bandwidth
 * does); every rank's, for the report. on = 0: no CPU peaks (the GPU backend). */
typedef struct BenchPeaks {
    int on;
    DType head_wdt; /* the LM head's weights (the last rank's; --int8-head makes them int8) */
    double me[PEAK_COUNT];
    double all[64][PEAK_COUNT];
} BenchPeaks;

/* adds (wdt, path) to the list l[0..n) unless there; returns the new count */
static int path_add(BenchPath *l, int n, DType wdt, const char *path)
{
    for (int i = 0; i < n; i++)
        if (l[i].wdt == wdt && !strcmp(l[i].path, path)) return n;
    if (n == MAXPATHS) return n;
    l[n] = (BenchPath){.wdt = wdt, .path = path};
    l[n].unknown = cpu_peak_for_path(wdt, path, &l[n].probe, &l[n].useful);
    return n + 1;
}

/* the linear paths a decode step of (batch, M) runs on any rank: the layers' and the LM head's, at each
 * micro-batch's row count (the decode step wants every row's logits). From this rank's path chooser:
 * every rank runs the same binary on the same kind of machine. */
static int run_paths(const Session *s, const BenchPeaks *pk, int batch, int M, BenchPath *l)
{
    int bounds[batch + 1], n = 0;
    pipeline_split(bounds, batch, M);
    DType lw = s->m.layers[0].qkv.wdt; /* every rank holds at least one layer */
    for (int mb = 0; mb < M; mb++) {
        int rows = bounds[mb + 1] - bounds[mb];
        n = path_add(l, n, lw, s->be->linear_path(s->be->ctx, lw, rows));
        n = path_add(l, n, pk->head_wdt, s->be->linear_path(s->be->ctx, pk->head_wdt, rows));
    }
    return n;
}

/* Measures the probes of l[0..n) this rank has not measured yet, each rank alone (the others wait, as
 * for the bandwidth), with the run's thread count; then gathers every rank's peaks. Collective. */
static void peaks_ensure(const Session *s, BenchPeaks *pk, const BenchPath *l, int n)
{
    if (!pk->on) return;
    for (int r = 0; r < s->size; r++) {
        ctl_barrier();
        if (r != s->rank) continue;
        for (int i = 0; i < n; i++)
            if (!(pk->me[l[i].probe] > 0)) pk->me[l[i].probe] = cpu_peak_gops(l[i].probe, s->o.threads);
    }
    ctl_barrier();
    MPI_Allgather(pk->me, PEAK_COUNT, MPI_DOUBLE, &pk->all[0][0], PEAK_COUNT, MPI_DOUBLE, MPI_COMM_WORLD);
}

/* useful GOP/s of path l: the probe's rate times l->useful, averaged over the ranks that measured it */
static double path_gops(const Session *s, const BenchPeaks *pk, const BenchPath *l)
{
    double sum = 0;
    int n = 0;
    for (int r = 0; r < s->size; r++)
        if (pk->all[r][l->probe] > 0) sum += pk->all[r][l->probe], n++;
    return n ? l->useful * sum / n : 0;
}

/* one stage's share of one micro-batch: bytes and ops, and seconds for bytes alone, ops alone, and both
 * (sum over its pieces of the larger of the two) */
enum { COST_BYTES, COST_OPS, COST_BW_S, COST_COMP_S, COST_BOTH_S, COST_N };

static void cost_add(double *c, double bytes, double ops, double bw, double peak)
{
    double tb = bytes / bw, tc = ops > 0 ? ops / peak : 0;
    c[COST_BYTES] += bytes;
    c[COST_OPS] += ops;
    c[COST_BW_S] += tb;
    c[COST_COMP_S] += tc;
    c[COST_BOTH_S] += tb > tc ? tb : tc;
}

static void cost_linear(const Session *s, const BenchPeaks *pk, const Linear *w, int rows, double bw, double *c)
{
    if (!w->w) return;
    double ops = pk->on ? 2.0 * rows * w->n * w->k : 0, peak = 0;
    if (pk->on) {
        PeakProbe p;
        double useful;
        cpu_peak_for_path(w->wdt, s->be->linear_path(s->be->ctx, w->wdt, rows), &p, &useful);
        peak = pk->me[p] * useful * 1e9;
        PP8_CHECK(peak > 0, "no compute peak measured for a kernel path this run uses");
    }
    cost_add(c, (double)linear_read_bytes(w), ops, bw, peak);
}

/* This rank's cost of one micro-batch of `rows` decode rows at bw_gbs: each linear bounded by
 * max(bytes / bw, 2 rows N K / its path's peak), each op on its own (ops run one after another, each an
 * OpenMP region ending in a barrier, so one op's reads do not overlap another's compute); the KV cache
 * the rows attend to (prompt_len + (gen + 1) / 2 positions on average over the run, keys and values,
 * 16-bit) and the norms' parameters by bytes alone. Left out, so the bound is a little optimistic:
 * attention's arithmetic (4 rows positions D ops per layer, < 1% of the linears' here), embedding rows,
 * activations written and read back between ops (L2-resident at these sizes), and amx-f16split's weight
 * split (port-5 work per weight, flat in rows, linear_amx.c). */
static void stage_cost(const Session *s, const BenchArgs *a, const BenchPeaks *pk, int rows, double bw_gbs, double *c)
{
    const Model *m = &s->m;
    const double bw = bw_gbs * 1e9, keys = a->prompt_len + (a->gen + 1) / 2.0;
    double lin = 0;
    memset(c, 0, sizeof(double) * COST_N);
    for (int l = 0; l < m->layer_end - m->layer_begin; l++) {
        const LayerWeights *w = &m->layers[l];
        const Linear *ls[4] = {&w->qkv, &w->out, &w->fc1, &w->fc2};
        for (int i = 0; i < 4; i++) {
            cost_linear(s, pk, ls[i], rows, bw, c);
            lin += (double)linear_read_bytes(ls[i]);
        }
        cost_add(c, rows * keys * s->cfg.hidden * 2.0 * 2.0, 0, bw, 0);
    }
    if (m->last) {
        cost_linear(s, pk, &m->lm_head, rows, bw, c);
        lin += (double)linear_read_bytes(&m->lm_head);
    }
    if ((double)m->weight_bytes_read > lin) cost_add(c, (double)m->weight_bytes_read - lin, 0, bw, 0);
}

/* seconds per decode step from every rank's per-micro-batch costs all[(r * M + mb) * COST_N + k]: naive,
 * the micro-batches one at a time through the stages one at a time (the sum); pipelined, at least one
 * micro-batch crossing every stage (its next token needs this one) and at least the busiest stage
 * serving every micro-batch (as stream_bound_tps) */
static double chain_step_s(const double *all, int ranks, int M, int k, Schedule sched)
{
    double total = 0, crossing = 0, busiest = 0;
    for (int mb = 0; mb < M; mb++) {
        double t = 0;
        for (int r = 0; r < ranks; r++) t += all[((size_t)r * M + mb) * COST_N + k];
        total += t;
        crossing = fmax(crossing, t);
    }
    for (int r = 0; r < ranks; r++) {
        double t = 0;
        for (int mb = 0; mb < M; mb++) t += all[((size_t)r * M + mb) * COST_N + k];
        busiest = fmax(busiest, t);
    }
    return sched == SCHED_NAIVE ? total : fmax(crossing, busiest);
}

/* the bounds of out's run (bound_tps, bw_tps, comp_tps, the per-rank bytes and ops) from this rank's
 * bandwidth bw_me and peaks. Collective. */
static void run_bounds(const Session *s, const BenchArgs *a, const BenchPeaks *pk, const int *bounds, double bw_me,
                       BenchRun *out)
{
    const int M = out->M, ranks = s->size;
    double *me = calloc((size_t)M * COST_N, sizeof(double)), *all = calloc((size_t)M * COST_N * ranks, sizeof(double));
    PP8_CHECK(me && all, "out of memory");
    for (int mb = 0; mb < M; mb++) stage_cost(s, a, pk, bounds[mb + 1] - bounds[mb], bw_me, me + (size_t)mb * COST_N);
    MPI_Allgather(me, M * COST_N, MPI_DOUBLE, all, M * COST_N, MPI_DOUBLE, MPI_COMM_WORLD);
    for (int r = 0; r < ranks; r++)
        for (int mb = 0; mb < M; mb++) {
            out->step_bytes[r] += all[((size_t)r * M + mb) * COST_N + COST_BYTES];
            out->step_ops[r] += all[((size_t)r * M + mb) * COST_N + COST_OPS];
        }
    /* a node's memory serves all its ranks: the busiest node's step bytes at its ranks' bandwidth together */
    double node_s = 0;
    for (int r = 0; r < ranks; r++) {
        double bytes = 0, gbs = 0;
        for (int q = 0; q < ranks; q++)
            if (out->node[q] == out->node[r]) bytes += out->step_bytes[q], gbs += out->bw_node[q];
        if (gbs > 0) node_s = fmax(node_s, bytes / (gbs * 1e9));
    }
    out->node_tps = node_s > 0 ? out->batch / node_s : 0;
    out->bound_tps = out->batch / fmax(chain_step_s(all, ranks, M, COST_BOTH_S, out->sched), node_s);
    out->bw_tps = out->batch / fmax(chain_step_s(all, ranks, M, COST_BW_S, out->sched), node_s);
    out->comp_tps = pk->on ? out->batch / chain_step_s(all, ranks, M, COST_COMP_S, out->sched) : 0;
    out->compute_bound = pk->on && out->comp_tps < out->bw_tps;
    out->npaths = run_paths(s, pk, out->batch, M, out->paths);
    for (int i = 0; i < out->npaths; i++) out->paths[i].gops = pk->on ? path_gops(s, pk, &out->paths[i]) : 0;
    free(me);
    free(all);
}

/* load_peak: VmHWM right after this dtype's load, before any bandwidth probe (whose buffer is
 * the benchmark's, not the model's: the peak is reset after each probe and the larger of the two kept) */
static void run_one(Session *s, const BenchArgs *a, DType dt, Schedule sched, int batch, int32_t **prompts, int *lens,
                    const double *wbytes_all, double load_peak, const BenchPeaks *pk, BenchRun *out)
{
    Engine en;
    Err e = {{0}};
    /* the roofline's bandwidth, per rank, just before this run: one probe at the start of a bench
     * missed the VM's drift by up to 10% (bf16 batch 1, pure streaming, then read 91% of it) */
    double bw_me = 0, bw_run[64] = {0}, bw_node[64] = {0};
    measure_bandwidth(s, &bw_me, NULL);
    double bw_co = session_on_gpu(s) ? 0 : measure_bandwidth_together(s);
    (void)proc_reset_peak_rss();
    MPI_Allgather(&bw_me, 1, MPI_DOUBLE, bw_run, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    MPI_Allgather(&bw_co, 1, MPI_DOUBLE, bw_node, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    int node_me = ctl_node_id(), nodes[64] = {0};
    MPI_Allgather(&node_me, 1, MPI_INT, nodes, 1, MPI_INT, MPI_COMM_WORLD);
    int M = micro_batches_for(a, s, sched, batch);
    PP8_CHECK(engine_init(&en, &s->m, &s->rs, s->tr, sched, M, &e) == 0, "out of memory for the pipeline buffers");
    /* greedy, no EOS: every sequence runs its gen tokens; micro-batch i holds sequences
     * [bounds[i], bounds[i+1]), as pipeline_split cuts them */
    EngineSeq *seqs = calloc((size_t)batch, sizeof *seqs);
    int bounds[batch + 1];
    pipeline_split(bounds, batch, M);
    PP8_CHECK(seqs != NULL, "out of memory");
    for (int g = 0; g < M; g++)
        for (int q = bounds[g]; q < bounds[g + 1]; q++) {
            seqs[q] = (EngineSeq){.prompt = prompts[q], .nprompt = lens[q], .max_new = a->gen + 1, .stream = (uint64_t)q,
                                  .logprobs = -1, .logits_from = -1, .group = g};
            sample_params_default(&seqs[q].sp);
            if (s->rank == 0) engine_admit(&en, &seqs[q]);
        }
    ctl_barrier();
    double t0 = wall_s();
    engine_run(&en, NULL, 1);
    ctl_barrier();
    double t1 = wall_s();
    en.busy_s = 0;
    Prof *prof = a->profile ? calloc(1, sizeof *prof) : NULL;
    PP8_CHECK(prof || !a->profile, "out of memory for --profile");
    s->rs.prof = prof;
    engine_run(&en, NULL, a->gen + 1);
    ctl_barrier();
    double t2 = wall_s();
    s->rs.prof = NULL;
    free(seqs);
    double busy = en.busy_s / (t2 - t1);
    memset(out, 0, sizeof *out);
    memcpy(out->bw, bw_run, sizeof(double) * (size_t)s->size);
    memcpy(out->bw_node, bw_node, sizeof(double) * (size_t)s->size);
    memcpy(out->node, nodes, sizeof(int) * (size_t)s->size);
    ctl_gather_double(&busy, 1, out->busy, 0);
    if (prof) {
        for (int q = 0; q < s->size; q++) memset(out->prof[q], 0, sizeof out->prof[q]);
        double *all = s->rank == 0 ? calloc((size_t)s->size, sizeof(double) * PROF_DOUBLES) : NULL;
        PP8_CHECK(all || s->rank != 0, "out of memory for --profile");
        ctl_gather_double(prof->s, PROF_DOUBLES, all, 0); /* s, layer_s, layer_bytes: the struct's first doubles */
        if (all)
            for (int q = 0; q < s->size; q++) memcpy(out->prof[q], all + (size_t)q * PROF_DOUBLES, sizeof out->prof[q]);
        free(prof);
        prof = NULL;
        out->kern = all;
    }
    out->dtype = dt;
    out->sched = sched;
    out->M = M;
    out->batch = batch;
    out->prefill_s = t1 - t0;
    out->decode_s = t2 - t1;
    /* weight-read roofline of one decode step: a token crosses every stage in turn and each stage
     * reads its weights at least once per step, so the step takes at least sum_r bytes_r / bw_r
     * (DESIGN.md, "when pipelining pays"); tokens/s <= batch / that */
    double chain = 0;
    for (int r = 0; r < s->size; r++) chain += wbytes_all[r] / (bw_run[r] * 1e9);
    out->roofline_tps = batch / chain;
    run_bounds(s, a, pk, bounds, bw_me, out);
    out->path_decode = s->be->linear_path(s->be->ctx, dt, (batch + M - 1) / M);
    out->path_prefill = s->be->linear_path(s->be->ctx, dt, ((batch + M - 1) / M) * a->prompt_len);
    out->path_head = s->be->linear_path(s->be->ctx, pk->head_wdt, (batch + M - 1) / M);
    /* device memory with the pipeline buffers still held (the token loop allocates nothing) */
    CudaMemStats ms = {0};
    out->on_gpu = session_on_gpu(s) && backend_cuda_mem_stats(s->be, &ms) == 0;
    double dm[3] = {(double)(ms.used_peak > ms.alloc_peak ? ms.used_peak : ms.alloc_peak), (double)ms.alloc_peak,
                    (double)ms.context},
           dall[3 * 64];
    MPI_Allgather(dm, 3, MPI_DOUBLE, dall, 3, MPI_DOUBLE, MPI_COMM_WORLD);
    for (int q = 0; q < s->size; q++)
        out->dev_peak[q] = dall[3 * q], out->dev_alloc[q] = dall[3 * q + 1], out->dev_ctx[q] = dall[3 * q + 2];
    engine_free(&en);
    /* the peak after the run: the load (session_reload reset it before), the pipeline buffers, this run */
    double rss = fmax(load_peak, (double)proc_peak_rss_bytes()), plan = (double)(s->m.arena_bytes + s->rs.arena_bytes);
    MPI_Allgather(&rss, 1, MPI_DOUBLE, out->rss, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    MPI_Allgather(&plan, 1, MPI_DOUBLE, out->plan, 1, MPI_DOUBLE, MPI_COMM_WORLD);
}

/* the report's name for path q of l[0..n): the path, with "/dtype" where another dtype's path has the
 * same name ("scalar" for int8 and for 16-bit weights) */
static void path_key(const BenchPath *l, int n, int q, char *key, size_t cap)
{
    int clash = 0;
    for (int i = 0; i < n; i++) clash |= i != q && !strcmp(l[i].path, l[q].path);
    snprintf(key, cap, clash ? "%s/%s" : "%s", l[q].path, dtype_label(l[q].wdt));
}

/* the instruction that bounds path l, e.g. "tdpbf16ps / 4" */
static void path_what(const BenchPath *l, char *what, size_t cap)
{
    snprintf(what, cap, "%s%s%s", cpu_peak_what(l->probe), l->useful < 1 ? " / 4" : "",
             l->unknown ? " (fallback: no probe for this path)" : "");
}

/* one line per dtype after its runs r[0..n): each rank's peak resident memory next to its plan */
static void print_rss(const BenchRun *r, int n, int ranks)
{
    printf("peak resident memory (VmHWM, load included) vs plan:");
    for (int q = 0; q < ranks; q++) {
        double peak = 0;
        for (int i = 0; i < n; i++) peak = fmax(peak, r[i].rss[q]);
        printf("%s rank %d %.3f GB of %.3f GB (%+.1f%%)", q ? "," : "", q, peak / 1e9, r[0].plan[q] / 1e9,
               r[0].plan[q] > 0 ? 100.0 * (peak - r[0].plan[q]) / r[0].plan[q] : 0.0);
    }
    printf("\n");
    if (!r[0].on_gpu) return;
    /* the GPU's own view: the plan's weights + KV cache + workspace against what the rank added since its
     * CUDA context existed (cuBLASLt, NCCL and graphs included); the context is the planner's reserve */
    printf("peak device memory (cudaMemGetInfo since the CUDA context; allocator peak; context) vs plan:");
    for (int q = 0; q < ranks; q++) {
        double peak = 0, alloc = 0;
        for (int i = 0; i < n; i++) peak = fmax(peak, r[i].dev_peak[q]), alloc = fmax(alloc, r[i].dev_alloc[q]);
        printf("%s rank %d %.3f GB (%.3f; %.3f) of %.3f GB (%+.1f%%)", q ? "," : "", q, peak / 1e9, alloc / 1e9,
               r[0].dev_ctx[q] / 1e9, r[0].plan[q] / 1e9,
               r[0].plan[q] > 0 ? 100.0 * (peak - r[0].plan[q]) / r[0].plan[q] : 0.0);
    }
    printf("\n");
}

static const char *sched_name(Schedule s) { return s == SCHED_NAIVE ? "naive" : "pipelined"; }

static void print_run(const BenchRun *r, const BenchArgs *a, int ranks)
{
    double tokens = (double)r->batch * a->gen;
    double bw = 0;
    for (int i = 0; i < ranks; i++) bw += r->bw[i] / ranks;
    printf("%-5s %-9s %3d %6d %10.1f %10.1f %11.2f %10.1f %10.1f %7.1f %5.0f%% %10.1f %-4s %5.0f%%  ",
           dtype_label(r->dtype), sched_name(r->sched), r->M, r->batch, r->prefill_s,
           r->batch * (double)a->prompt_len / r->prefill_s, 1e3 * r->decode_s / tokens, tokens / r->decode_s,
           r->roofline_tps, bw, 100.0 * (tokens / r->decode_s) / r->roofline_tps, r->bound_tps,
           r->compute_bound ? "comp" : "bw", 100.0 * (tokens / r->decode_s) / r->bound_tps);
    for (int i = 0; i < ranks; i++) printf("%s%.0f%%", i ? "/" : "", 100 * r->busy[i]);
    if (a->stream_bound) printf("  %10.1f %5.0f%%", r->stream_tps, 100.0 * (tokens / r->decode_s) / r->stream_tps);
    printf("\n");
    if (!a->profile) return;
    /* ms per decode step by op and rank; "other" = wall - the ops (waiting for messages, scheduling) */
    double step_ms = 1e3 * r->decode_s / a->gen;
    for (int q = 0; q < ranks; q++) {
        double sum = 0;
        printf("    rank %d ms/step:", q);
        for (int op = 0; op < PROF_COUNT; op++) {
            double ms = 1e3 * r->prof[q][op] / a->gen;
            sum += ms;
            if (ms >= 0.005) printf(" %s %.2f", prof_op_name[op], ms);
        }
        printf(" | ops %.2f of %.2f (rest %.2f)\n", sum, step_ms, step_ms - sum);
    }
}

static cJSON *json_report(const BenchArgs *a, Session *s, const BenchRun *runs, int nruns, double bw_pf, double bw_plain,
                          int *lb, int *le, double *wb_all, double *wm_all, double *kv_all, double *ws_all)
{
    cJSON *root = cJSON_CreateObject(), *o;
    o = cJSON_AddObjectToObject(root, "pp8");
    cJSON_AddStringToObject(o, "version", version_string());
    cJSON_AddStringToObject(o, "git", version_git());
    o = cJSON_AddObjectToObject(root, "host");
    cJSON_AddStringToObject(o, "cpu", host_cpu_model());
    cJSON_AddStringToObject(o, "flags", cpu_isa_string());
    cJSON_AddNumberToObject(o, "cores", sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_AddNumberToObject(root, "ranks", s->size);
    cJSON_AddNumberToObject(root, "threads_per_rank", s->o.threads);
    cJSON_AddStringToObject(root, "backend", s->be->name);
    o = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(o, "config", s->cfg.path);
    cJSON_AddStringToObject(o, "arch", arch_name(s->cfg.arch));
    cJSON_AddNumberToObject(o, "hidden", s->cfg.hidden);
    cJSON_AddNumberToObject(o, "layers", s->cfg.layers);
    cJSON_AddNumberToObject(o, "vocab", s->cfg.vocab);
    cJSON_AddNumberToObject(o, "params", config_params(&s->cfg));
    cJSON_AddStringToObject(o, "weights", s->o.model ? "checkpoint" : "random (seeded)");
    cJSON *plan = cJSON_AddArrayToObject(root, "plan");
    for (int r = 0; r < s->size; r++) {
        cJSON *st = cJSON_CreateObject();
        cJSON_AddNumberToObject(st, "rank", r);
        cJSON_AddNumberToObject(st, "layer_begin", lb[r]);
        cJSON_AddNumberToObject(st, "layer_end", le[r]);
        cJSON *b = cJSON_AddObjectToObject(st, "bytes");
        cJSON_AddNumberToObject(b, "weights", wm_all[r]);
        cJSON_AddNumberToObject(b, "kv_cache", kv_all[r]);
        cJSON_AddNumberToObject(b, "workspace", ws_all[r]);
        cJSON_AddNumberToObject(b, "reserve", 0);
        cJSON_AddNumberToObject(b, "total", wm_all[r] + kv_all[r] + ws_all[r]);
        cJSON_AddNumberToObject(st, "weight_bytes_read_per_step", wb_all[r]);
        cJSON_AddItemToArray(plan, st);
    }
    o = cJSON_AddObjectToObject(root, "read_bandwidth_gbs");
    cJSON_AddNumberToObject(o, "prefetch", bw_pf);
    cJSON_AddNumberToObject(o, "plain", bw_plain);
    cJSON *arr = cJSON_AddArrayToObject(root, "runs");
    for (int i = 0; i < nruns; i++) {
        const BenchRun *r = &runs[i];
        double tokens = (double)r->batch * a->gen;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "dtype", dtype_label(r->dtype));
        cJSON_AddNumberToObject(j, "threshold", r->dtype == DTYPE_I8 ? a->o.threshold : 0);
        cJSON_AddBoolToObject(j, "int8_head", r->dtype == DTYPE_I8 && a->o.int8_head);
        cJSON_AddStringToObject(j, "schedule", sched_name(r->sched));
        cJSON_AddNumberToObject(j, "micro_batches", r->M);
        cJSON_AddNumberToObject(j, "batch", r->batch);
        cJSON_AddNumberToObject(j, "prompt_len", a->prompt_len);
        cJSON_AddNumberToObject(j, "gen", a->gen);
        cJSON_AddNumberToObject(j, "prefill_s", r->prefill_s);
        cJSON_AddNumberToObject(j, "prefill_tokens_per_s", r->batch * (double)a->prompt_len / r->prefill_s);
        cJSON_AddNumberToObject(j, "decode_s", r->decode_s);
        cJSON_AddNumberToObject(j, "decode_ms_per_token", 1e3 * r->decode_s / tokens);
        cJSON_AddNumberToObject(j, "decode_tokens_per_s", tokens / r->decode_s);
        cJSON_AddNumberToObject(j, "roofline_tokens_per_s", r->roofline_tps);
        cJSON_AddNumberToObject(j, "bound_tokens_per_s", r->bound_tps);
        cJSON_AddStringToObject(j, "bound", r->compute_bound ? "compute" : "bandwidth");
        cJSON_AddNumberToObject(j, "bandwidth_bound_tokens_per_s", r->bw_tps);
        if (r->comp_tps > 0)
            cJSON_AddNumberToObject(j, "compute_bound_tokens_per_s", r->comp_tps);
        else
            cJSON_AddNullToObject(j, "compute_bound_tokens_per_s");
        cJSON_AddItemToObject(j, "bound_step_bytes", cJSON_CreateDoubleArray(r->step_bytes, s->size));
        cJSON_AddItemToObject(j, "bound_step_ops", cJSON_CreateDoubleArray(r->step_ops, s->size));
        if (r->comp_tps > 0) {
            cJSON *pg = cJSON_AddObjectToObject(j, "peaks_gops"), *pw = cJSON_AddObjectToObject(j, "peak_probes");
            for (int q = 0; q < r->npaths; q++) {
                char key[64], what[96];
                path_key(r->paths, r->npaths, q, key, sizeof key);
                path_what(&r->paths[q], what, sizeof what);
                cJSON_AddNumberToObject(pg, key, r->paths[q].gops);
                cJSON_AddStringToObject(pw, key, what);
            }
        } else {
            cJSON_AddNullToObject(j, "peaks_gops");
        }
        if (a->stream_bound) cJSON_AddNumberToObject(j, "stream_bound_tokens_per_s", r->stream_tps);
        cJSON_AddItemToObject(j, "read_bandwidth_gbs", cJSON_CreateDoubleArray(r->bw, s->size));
        if (r->node_tps > 0) {
            cJSON_AddItemToObject(j, "read_bandwidth_together_gbs", cJSON_CreateDoubleArray(r->bw_node, s->size));
            cJSON_AddNumberToObject(j, "node_bandwidth_bound_tokens_per_s", r->node_tps);
        }
        cJSON_AddItemToObject(j, "peak_rss_bytes", cJSON_CreateDoubleArray(r->rss, s->size));
        cJSON_AddItemToObject(j, "plan_bytes", cJSON_CreateDoubleArray(r->plan, s->size));
        if (r->on_gpu) {
            cJSON_AddItemToObject(j, "peak_device_bytes", cJSON_CreateDoubleArray(r->dev_peak, s->size));
            cJSON_AddItemToObject(j, "device_alloc_peak_bytes", cJSON_CreateDoubleArray(r->dev_alloc, s->size));
            cJSON_AddItemToObject(j, "device_context_bytes", cJSON_CreateDoubleArray(r->dev_ctx, s->size));
        } else {
            cJSON_AddNullToObject(j, "peak_device_bytes");
        }
        cJSON *busy = cJSON_AddArrayToObject(j, "stage_busy");
        for (int q = 0; q < s->size; q++) cJSON_AddItemToArray(busy, cJSON_CreateNumber(r->busy[q]));
        cJSON *kp = cJSON_AddObjectToObject(j, "kernel_paths");
        cJSON_AddStringToObject(kp, "linear_decode", r->path_decode);
        cJSON_AddStringToObject(kp, "linear_prefill", r->path_prefill);
        if (r->path_head) cJSON_AddStringToObject(kp, "lm_head_decode", r->path_head);
        if (r->kern) { /* --profile: per rank, op and layer, microseconds per decode step and GB/s read */
            cJSON *ks = cJSON_AddArrayToObject(j, "kernels");
            for (int q = 0; q < s->size; q++) {
                const double *pd = r->kern + (size_t)q * PROF_DOUBLES;
                const double *ls = pd + PROF_COUNT, *lbytes = ls + (PROF_LAYERS + 1) * PROF_COUNT;
                for (int li = 0; li <= PROF_LAYERS; li++)
                    for (int op = 0; op < PROF_COUNT; op++) {
                        const double t = ls[li * PROF_COUNT + op], bytes = lbytes[li * PROF_COUNT + op];
                        if (t <= 0) continue;
                        cJSON *k = cJSON_CreateObject();
                        cJSON_AddNumberToObject(k, "rank", q);
                        cJSON_AddStringToObject(k, "op", prof_op_name[op]);
                        if (li < PROF_LAYERS)
                            cJSON_AddNumberToObject(k, "layer", lb[q] + li);
                        else
                            cJSON_AddNullToObject(k, "layer");
                        cJSON_AddNumberToObject(k, "us", 1e6 * t / a->gen);
                        if (bytes > 0)
                            cJSON_AddNumberToObject(k, "gbs", bytes / t * 1e-9);
                        else
                            cJSON_AddNullToObject(k, "gbs");
                        cJSON_AddItemToArray(ks, k);
                    }
            }
        }
        cJSON_AddItemToArray(arr, j);
    }
    return root;
}

int cmd_bench(int argc, char **argv, Err *e)
{
    BenchArgs a;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (ctl_rank() == 0) usage();
            return 0;
        }
    if (parse(&a, argc, argv, e)) return -1;
    if (ctl_size() > 64) return err_set(e, "pp8 bench reports at most 64 ranks");

    int maxb = 0;
    for (int i = 0; i < a.nbatch; i++) maxb = a.batch[i] > maxb ? a.batch[i] : maxb;
    /* the RunState must hold the largest micro-batch any run uses (M = 1 unless given) */
    int max_rows = 0, max_out = 0;
    for (int i = 0; i < a.nbatch; i++)
        for (int q = 0; q < a.nsched; q++) {
            int M = micro_batches_for(&a, NULL, a.sched[q], a.batch[i]);
            int per = (a.batch[i] + M - 1) / M;
            if ((int64_t)per * a.prompt_len > (1 << 24))
                return err_set(e, "--batch %d x --prompt-len %d = %lld prefill rows per micro-batch: more than pp8 "
                                  "sizes a workspace for (16M); lower one of them or add --micro-batches",
                               a.batch[i], a.prompt_len, (long long)per * a.prompt_len);
            if (per * a.prompt_len > max_rows) max_rows = per * a.prompt_len;
            if (per > max_out) max_out = per;
        }
    int max_seq = a.prompt_len + a.gen + 1;
    Session s;
    SessionOpts o = a.o;
    o.wdt = a.dtypes[0];
    if (session_open(&s, &o, max_rows, maxb, max_seq, max_out, e)) {
        session_close(&s);
        return -1;
    }
    const int gpu = session_on_gpu(&s);
    if (gpu && a.stream_bound) {
        session_close(&s);
        return err_set(e, "--stream-bound times host memory reads: CPU backend only (add --backend cpu, or drop it)");
    }
    /* deterministic prompts: the same on every rank and every run */
    int32_t **prompts = calloc((size_t)maxb, sizeof *prompts);
    int *lens = calloc((size_t)maxb, sizeof *lens);
    uint64_t st = 88172645463325252ull;
    for (int b = 0; b < maxb; b++) {
        lens[b] = a.prompt_len;
        prompts[b] = calloc((size_t)a.prompt_len, sizeof(int32_t));
        for (int t = 0; t < a.prompt_len; t++) {
            st ^= st << 13, st ^= st >> 7, st ^= st << 17;
            prompts[b][t] = (int32_t)(st % (uint64_t)s.cfg.vocab);
        }
    }
    double bw_pf = 0, bw_plain = 0, load_peak = (double)proc_peak_rss_bytes();
    measure_bandwidth(&s, &bw_pf, &bw_plain);
    double *wb_all = calloc((size_t)s.size, sizeof(double)), *wm_all = calloc((size_t)s.size, sizeof(double));
    double *kv_all = calloc((size_t)s.size, sizeof(double)), *ws_all = calloc((size_t)s.size, sizeof(double));
    if (gpu)
        log_info("read bandwidth per rank (GPU read kernel over 2 GiB): %.1f GB/s", bw_pf);
    else
        log_info("read bandwidth per rank (%d thread(s), prefetching stream over %.0f MiB): %.1f GB/s (plain loop %.1f)",
                 s.o.threads, probe_bytes(&s) / 1048576.0, bw_pf, bw_plain);

    BenchPeaks pk;
    memset(&pk, 0, sizeof pk);
    pk.on = !gpu;
    int nruns = 0, cap = a.ndtypes * a.nbatch * a.nsched;
    BenchRun *runs = calloc((size_t)cap, sizeof *runs);
    int rc = 0;
    if (s.rank == 0) {
        char per_rank[32];
        session_rank_desc(&s, per_rank, sizeof per_rank);
        printf("pp8 bench: %s (%s, %d layers, hidden %d, vocab %d), %d rank(s) x %s, prompt %d, gen %d, %s\n",
               s.cfg.name, arch_name(s.cfg.arch), s.cfg.layers, s.cfg.hidden, s.cfg.vocab, s.size, per_rank,
               a.prompt_len, a.gen, s.o.model ? "checkpoint weights" : "random weights");
        if (gpu)
            printf("read bandwidth per rank: %.1f GB/s (GPU device memory, read kernel)\n", bw_pf);
        else
            printf("read bandwidth per rank: %.1f GB/s (prefetching stream), %.1f GB/s (plain loop)\n", bw_pf, bw_plain);
    }
    for (int d = 0; d < a.ndtypes && !rc; d++) {
        if (d > 0 && (rc = session_reload(&s, a.dtypes[d], max_rows, maxb, max_seq, max_out, e))) break;
        if (d > 0) load_peak = (double)proc_peak_rss_bytes();
        int first = nruns;
        double wb = (double)s.m.weight_bytes_read, wm = (double)s.m.arena_bytes, kv = (double)s.rs.kv_bytes,
               ws = (double)(s.rs.arena_bytes - s.rs.kv_bytes);
        MPI_Allgather(&wb, 1, MPI_DOUBLE, wb_all, 1, MPI_DOUBLE, MPI_COMM_WORLD);
        MPI_Allgather(&wm, 1, MPI_DOUBLE, wm_all, 1, MPI_DOUBLE, MPI_COMM_WORLD);
        MPI_Allgather(&kv, 1, MPI_DOUBLE, kv_all, 1, MPI_DOUBLE, MPI_COMM_WORLD);
        MPI_Allgather(&ws, 1, MPI_DOUBLE, ws_all, 1, MPI_DOUBLE, MPI_COMM_WORLD);
        /* the compute peaks this dtype's runs use, before its runs (so that no probe runs between a run's
         * bandwidth probe and the run) */
        int32_t hw = s.m.last ? (int32_t)s.m.lm_head.wdt : 0;
        ctl_bcast_i32(&hw, 1, s.size - 1);
        pk.head_wdt = (DType)hw;
        BenchPath used[MAXPATHS];
        int nused = 0;
        for (int b = 0; b < a.nbatch; b++)
            for (int q = 0; q < a.nsched; q++) {
                BenchPath l[MAXPATHS];
                int n = run_paths(&s, &pk, a.batch[b], micro_batches_for(&a, &s, a.sched[q], a.batch[b]), l);
                for (int i = 0; i < n; i++) nused = path_add(used, nused, l[i].wdt, l[i].path);
            }
        peaks_ensure(&s, &pk, used, nused);
        if (s.rank == 0) {
            printf("\n%s%s stages (memory = weights + KV cache + activations; reads = weight bytes one decode step "
                   "reads):\n", dtype_label(a.dtypes[d]),
                   a.dtypes[d] == DTYPE_I8 && a.o.int8_head ? " (int8 LM head)" : "");
            for (int r = 0; r < s.size; r++) {
                char range[32];
                snprintf(range, sizeof range, "[%d,%d)", s.layer_begin[r], s.layer_end[r]);
                printf("  rank %d: layers %-9s memory %.3f GB = %.3f + %.3f + %.3f   reads %.3f GB/step\n", r, range,
                       (wm_all[r] + kv_all[r] + ws_all[r]) / 1e9, wm_all[r] / 1e9, kv_all[r] / 1e9, ws_all[r] / 1e9,
                       wb_all[r] / 1e9);
            }
            if (pk.on) {
                printf("compute peaks per rank (%d thread(s), register/tile-resident probes, each rank alone), GOP/s:",
                       s.o.threads);
                for (int i = 0; i < nused; i++) {
                    char key[64], what[96];
                    path_key(used, nused, i, key, sizeof key);
                    path_what(&used[i], what, sizeof what);
                    printf("%s %s %.0f (%s)", i ? "," : "", key, path_gops(&s, &pk, &used[i]), what);
                }
                printf("\n");
            } else {
                printf("compute peaks: none on the %s backend; bound_t/s is the bandwidth bound\n", s.be->name);
            }
            printf("dtype sched       M  batch  prefill_s prefill_t/s  ms/token  decode_t/s roofline_t/s   bw_GB/s  frac  "
                   "bound_t/s by   of_bound  busy/stage%s\n", a.stream_bound ? "  stream_t/s  of_stream" : "");
            fflush(stdout);
        }
        /* one untimed run first: thread start-up, AMX permission and tile setup, first touches */
        BenchRun warm;
        run_one(&s, &a, a.dtypes[d], a.sched[0], a.batch[0], prompts, lens, wb_all, load_peak, &pk, &warm);
        free(warm.kern);
        for (int b = 0; b < a.nbatch; b++)
            for (int q = 0; q < a.nsched; q++) {
                /* the CUDA backend captures a graph and asks cuBLASLt for plans per row count: an untimed
                 * run of every batch size there, so none of that lands in a timed decode window */
                if ((b > 0 || q > 0) && !strcmp(s.be->name, "cuda")) {
                    run_one(&s, &a, a.dtypes[d], a.sched[q], a.batch[b], prompts, lens, wb_all, load_peak, &pk, &warm);
                    free(warm.kern);
                }
                BenchRun *r = &runs[nruns++];
                run_one(&s, &a, a.dtypes[d], a.sched[q], a.batch[b], prompts, lens, wb_all, load_peak, &pk, r);
                if (a.stream_bound) r->stream_tps = stream_bound_tps(&s, &a, r->sched, r->M, r->batch);
                if (s.rank == 0) {
                    print_run(r, &a, s.size);
                    fflush(stdout);
                }
            }
        if (s.rank == 0 && nruns > first) print_rss(&runs[first], nruns - first, s.size);
    }
    if (!rc && s.rank == 0) {
        /* ratios measured side by side in this run */
        printf("\n");
        for (int i = 0; i < nruns; i++)
            for (int j = 0; j < nruns; j++) {
                const BenchRun *x = &runs[i], *y = &runs[j];
                double tx = x->batch * (double)a.gen / x->decode_s, ty = y->batch * (double)a.gen / y->decode_s;
                if (x->batch == y->batch && x->sched == y->sched && x->dtype == DTYPE_I8 && y->dtype == DTYPE_BF16)
                    printf("ratio int8/bf16 %-9s batch %4d: decode %.2fx, prefill %.2fx\n", sched_name(x->sched),
                           x->batch, tx / ty, y->prefill_s / x->prefill_s);
                if (x->batch == y->batch && x->dtype == y->dtype && x->sched == SCHED_PIPELINED &&
                    y->sched == SCHED_NAIVE)
                    printf("ratio pipelined/naive %s batch %4d (M %d vs %d): decode %.2fx, prefill %.2fx\n",
                           dtype_label(x->dtype), x->batch, x->M, y->M, tx / ty, y->prefill_s / x->prefill_s);
            }
        if (a.json) {
            cJSON *root = json_report(&a, &s, runs, nruns, bw_pf, bw_plain, s.layer_begin, s.layer_end, wb_all, wm_all,
                                      kv_all, ws_all);
            if (!(rc = cli_write_json(a.json, root, e))) log_info("wrote %s", a.json);
        }
    }
    rc = session_agree(rc, e);
    for (int b = 0; b < maxb; b++) free(prompts[b]);
    free(prompts);
    free(lens);
    for (int i = 0; i < nruns; i++) free(runs[i].kern);
    free(runs);
    free(wb_all);
    free(wm_all);
    free(kv_all);
    free(ws_all);
    session_close(&s);
    return rc;
}
