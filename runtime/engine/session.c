/* See session.h. */
#include "session.h"

#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/check.h"
#include "../../kernels/cuda_host.h"
#include "../../parallel/control.h"
#include "../../parallel/nccl_host.h"
#include "../util/args.h"
#include "../util/log.h"
#include "../util/proc.h"
#include "plan.h"

void session_defaults(SessionOpts *o)
{
    memset(o, 0, sizeof *o);
    o->wdt = DTYPE_I8;
    o->threshold = 6.0f;
    o->sched = SCHED_PIPELINED;
    o->weights_seed = 1234;
}

int parse_dtype(const char *s, DType *out, Err *e)
{
    if (!strcmp(s, "int8")) *out = DTYPE_I8;
    else if (!strcmp(s, "fp16")) *out = DTYPE_F16;
    else if (!strcmp(s, "bf16")) *out = DTYPE_BF16;
    else return err_set(e, "--dtype %s: expected int8, fp16 or bf16", s);
    return 0;
}

const char *dtype_label(DType t) { return t == DTYPE_I8 ? "int8" : t == DTYPE_BF16 ? "bf16" : "fp16"; }

const char *session_flags_help(SessionHelp which)
{
    static char buf[3072];
    const char *dtype = "  --dtype D            int8 (LLM.int8(), default) | fp16 | bf16\n";
    const char *sched = "  --schedule S         pipelined (default) | naive (one micro-batch in flight)\n";
    const char *mb =
        which == SESSION_HELP_LOGITS
            ? "  --micro-batches M    cut the prompt into M chunks that cross the stages in turn (default 1)\n"
            : "  --micro-batches M    micro-batches per batch (default: pipelined one per 4 sequences, at most\n"
              "                       one per stage; naive 1)\n";
    const char *head =
        which == SESSION_HELP_BENCH
            ? "  --int8-head          the LM head in LLM.int8() too, quantized per row at load time, in the int8\n"
              "                       runs only (fp16/bf16 runs keep their 16-bit head; default: fp16 head, as\n"
              "                       transformers and bitsandbytes keep it)\n"
            : "  --int8-head          the LM head in LLM.int8() too, quantized per row at load time (also from an\n"
              "                       8-bit checkpoint, which keeps it 16-bit), at --threshold; needs --dtype int8\n"
              "                       (default: fp16 head, as transformers and bitsandbytes keep it)\n";
    snprintf(buf, sizeof buf, "%s%s%s%s%s%s%s",
             "  --config C           model config.json; without --model the weights are seeded random\n"
             "  --model DIR          Hugging Face checkpoint directory (config.json + *.safetensors)\n",
             which == SESSION_HELP_BENCH ? "" : dtype,
             "  --threshold T        LLM.int8() outlier threshold (default 6.0; 0 = plain int8 W8A8)\n",
             which == SESSION_HELP_BENCH ? "" : sched, mb,
             "  --threads N          threads per rank (default: this rank's share of the node's cores)\n"
             "  --backend B          cpu | cuda (default: cuda when built with CUDA and a GPU is present)\n"
             "  --exclusive-gpus     require exactly one rank per GPU of each node (error otherwise)\n"
             "  --share-gpus         let more ranks than GPUs share them (round robin; hidden states then go\n"
             "                       over MPI through host memory, and each rank gets its GPU's memory / the\n"
             "                       ranks on it): for trying a pipeline on fewer GPUs, not for speed\n"
             "  --mem-per-rank GiB   memory budget per rank (default: node memory / ranks on the node)\n"
             "  --weights-seed N     seed of --config's random weights (default 1234)\n"
             "  --max-seq-len N      positions per sequence: prompt + new tokens (default: OPT's\n"
             "                       max_position_embeddings; BLOOM (ALiBi) 2048)\n"
             "  --tokenizer DIR      tokenizer.json, or vocab.json + merges.txt (default: the --model directory)\n"
             "  --check-finite       look for inf/NaN after every layer, to name the layer where fp16 overflows\n"
             "                       (default: once per stage and item, on the CPU backend)\n", head);
    return buf;
}

#define GPU_FLAGS_CLASH "--exclusive-gpus and --share-gpus contradict each other: give one"

int session_flag(SessionOpts *o, int argc, char **argv, int *i, Err *e)
{
    const char *f = argv[*i], *v;
    int n;
    double d;
#define VAL()                                                                                                        \
    do {                                                                                                             \
        if (!(v = cli_value(argc, argv, i, e))) return -1;                                                           \
    } while (0)
    if (!strcmp(f, "--config")) {
        VAL();
        o->config = v;
    } else if (!strcmp(f, "--model")) {
        VAL();
        o->model = v;
    } else if (!strcmp(f, "--dtype")) {
        VAL();
        if (parse_dtype(v, &o->wdt, e)) return -1;
    } else if (!strcmp(f, "--threshold")) {
        VAL();
        if (cli_double(v, "--threshold", 0.0, 1e30, &d, e))
            return err_set(e, "--threshold %s: must be a number >= 0 (0 turns outlier decomposition off)", v);
        o->threshold = (float)d;
    } else if (!strcmp(f, "--schedule")) {
        VAL();
        if (!strcmp(v, "pipelined")) o->sched = SCHED_PIPELINED;
        else if (!strcmp(v, "naive")) o->sched = SCHED_NAIVE;
        else return err_set(e, "--schedule %s: expected pipelined or naive", v);
    } else if (!strcmp(f, "--micro-batches")) {
        VAL();
        if (cli_int(v, "--micro-batches", 1, 1 << 20, &o->micro_batches, e)) return -1;
    } else if (!strcmp(f, "--threads")) {
        VAL();
        if (cli_int(v, "--threads", 1, 4096, &o->threads, e)) return -1;
    } else if (!strcmp(f, "--backend")) {
        VAL();
        if (strcmp(v, "cpu") && strcmp(v, "cuda")) return err_set(e, "--backend %s: expected cpu or cuda", v);
        o->backend = v;
    } else if (!strcmp(f, "--exclusive-gpus")) {
        if (o->share_gpus) return err_set(e, "%s", GPU_FLAGS_CLASH);
        o->exclusive_gpus = 1;
    } else if (!strcmp(f, "--share-gpus")) {
        if (o->exclusive_gpus) return err_set(e, "%s", GPU_FLAGS_CLASH);
        o->share_gpus = 1;
    } else if (!strcmp(f, "--mem-per-rank")) {
        VAL();
        if (cli_double(v, "--mem-per-rank", 1e-6, 1e9, &d, e)) return -1;
        o->mem_per_rank = d * 1024.0 * 1024.0 * 1024.0;
    } else if (!strcmp(f, "--weights-seed")) {
        VAL();
        if (cli_int(v, "--weights-seed", 0, 2147483647, &n, e)) return -1;
        o->weights_seed = (uint64_t)n;
    } else if (!strcmp(f, "--max-seq-len")) {
        VAL();
        if (cli_int(v, "--max-seq-len", 1, 1 << 24, &o->max_seq_len, e)) return -1;
    } else if (!strcmp(f, "--tokenizer")) {
        VAL();
        o->tokenizer = v;
    } else if (!strcmp(f, "--check-finite")) {
        o->check_finite = 1;
    } else if (!strcmp(f, "--int8-head")) {
        o->int8_head = 1;
    } else {
        return 0;
    }
#undef VAL
    return 1;
}

int session_agree(int rc, Err *e) { return ctl_agree(rc != 0, e->msg, sizeof e->msg) ? -1 : 0; }

static double node_memory_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    double kb = 0;
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemTotal: %lf kB", &kb) == 1) break;
        fclose(f);
    }
    return kb * 1024.0;
}

CudaNodeView session_node_gpu_view(int local_size)
{
    enum { MAX_DEV = 16, ID = 32 };
    char mine[MAX_DEV * ID];
    memset(mine, 0, sizeof mine);
    int n = backend_cuda_bus_ids(mine, MAX_DEV, ID);
    char *all = calloc((size_t)local_size, sizeof mine);
    int *counts = calloc((size_t)local_size, sizeof(int));
    PP8_CHECK(all && counts, "out of memory gathering the node's GPU ids");
    ctl_node_allgather(mine, (int)sizeof mine, all);
    ctl_node_allgather(&n, (int)sizeof n, counts);
    CudaNodeView v = cuda_node_view(all, counts, local_size, MAX_DEV, ID);
    free(all);
    free(counts);
    return v;
}

static int open_backend(Session *s, Err *e)
{
    char msg[512] = "";
    BackendOptions bo = {.threads = s->o.threads, .first_cpu = -1, .device = s->local_rank};
    bool want_cuda = s->o.backend && !strcmp(s->o.backend, "cuda");
    bool want_cpu = s->o.backend && !strcmp(s->o.backend, "cpu");
    if (!want_cpu) {
        /* one rank per GPU (or round robin with --share-gpus): the node-local rank picks the device */
        CudaNodeView view = session_node_gpu_view(s->local_size);
        int ndev = backend_cuda_device_count(), dev = 0, sharing = 0;
        if (view == CUDA_VIEW_OWN && ndev > 0 && s->local_rank == 0)
            log_info("the ranks on this node each see GPUs of their own (CUDA_VISIBLE_DEVICES per rank): each uses "
                     "its first");
        CudaRankMode mode = s->o.share_gpus       ? CUDA_RANKS_SHARED
                            : s->o.exclusive_gpus ? CUDA_RANKS_EXCLUSIVE
                                                  : CUDA_RANKS_ONE;
        if (ndev == 0 && !want_cuda) {
            s->be = NULL;
            snprintf(msg, sizeof msg, "no CUDA device");
        } else if (cuda_pick_device(s->local_rank, s->local_size, ndev, view, mode, &dev, &sharing, msg, sizeof msg)) {
            if (want_cuda) return err_set(e, "--backend cuda on rank %d: %s", s->rank, msg);
        } else {
            bo.device = dev;
            s->be = backend_cuda_create(&bo, msg, sizeof msg);
            s->gpu_sharing = s->be ? sharing : 0;
        }
        if (!s->be && want_cuda) return err_set(e, "--backend cuda on rank %d: %s", s->rank, msg);
        if (!s->be) log_info("running on the CPU backend (CUDA: %s)", msg);
    }
    if (!s->be) {
        /* this rank's share of the cores it may run on; ranks sharing a node without binding get
         * disjoint cores (pinned), so nothing is oversubscribed */
        int cores = backend_cpu_cores();
        int share = cores / s->local_size;
        if (bo.threads <= 0) bo.threads = share > 0 ? share : 1;
        bo.first_cpu = cores >= s->local_size * bo.threads ? s->local_rank * bo.threads : -1;
        s->be = backend_cpu_create(&bo, msg, sizeof msg);
        if (!s->be) return err_set(e, "rank %d: %s", s->rank, msg);
        omp_set_num_threads(bo.threads);
        s->o.threads = bo.threads;
    }
    return 0;
}

int session_on_gpu(const Session *s) { return !strcmp(s->be->name, "cuda"); }

const char *session_rank_desc(const Session *s, char *buf, size_t n)
{
    if (session_on_gpu(s) && s->gpu_sharing > 1)
        snprintf(buf, n, "1/%d of a GPU", s->gpu_sharing); /* --share-gpus (rank 0's GPU) */
    else if (session_on_gpu(s))
        snprintf(buf, n, "one GPU");
    else
        snprintf(buf, n, "%d thread(s)", s->o.threads);
    return buf;
}

/* Hidden states over NCCL when every rank has a GPU of its own (collective), else over MPI: CPU ranks,
 * and GPUs shared by several ranks, which NCCL refuses (cuda_host.h, CudaRankMode). */
static int open_transport(Session *s, Err *e)
{
    int all_cuda = session_on_gpu(s), shared = s->gpu_sharing > 1;
    char msg[512] = "";
    MPI_Allreduce(MPI_IN_PLACE, &all_cuda, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &shared, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    /* test-only: PP8_NCCL_SHARED_GPU sends them over NCCL anyway (parallel/nccl_host.h) */
    int nccl_shared = shared && nccl_shared_gpu_route(getenv("PP8_NCCL_SHARED_GPU")) != NCCL_SHARED_OFF;
    if (all_cuda && shared && s->rank == 0 && nccl_shared)
        log_info("--share-gpus with PP8_NCCL_SHARED_GPU=%s: hidden states go over NCCL between ranks that share "
                 "a GPU (a test route, not for speed)", getenv("PP8_NCCL_SHARED_GPU"));
    else if (all_cuda && shared && s->rank == 0)
        log_info("--share-gpus: ranks share GPUs, so hidden states go over MPI through host memory (NCCL needs "
                 "one GPU per rank)");
    if (all_cuda && (!shared || nccl_shared) && s->size > 1) {
        s->tr = transport_nccl_create(backend_cuda_stream(s->be), msg, sizeof msg);
        if (!s->tr) return err_set(e, "NCCL transport: %s", msg);
        return 0;
    }
    s->tr = transport_mpi_create();
    return s->tr ? 0 : err_set(e, "rank %d: cannot create the MPI transport", s->rank);
}

/* the planner's request for this session's ranks and memory: a CPU device of this rank's threads
 * (the planner's CPU bandwidth and peaks), or on GPU ranks the h100-80g preset's rates and reserve
 * (their ratios shape the split; the CUDA context, cuBLASLt and NCCL reserve is the point) with this
 * GPU's own memory; --mem-per-rank overrides the memory of either */
static PlanRequest session_request(const Session *s, int batch, int prompt_len, int gen)
{
    PlanRequest r = {0};
    r.dtype = s->o.wdt;
    r.int8_head = s->o.int8_head && s->o.wdt == DTYPE_I8;
    r.batch = batch;
    r.prompt_len = prompt_len;
    r.gen = gen;
    r.ranks = s->size;
    r.micro_batches = s->o.micro_batches < batch ? s->o.micro_batches : batch;
    size_t gpu_mem = s->be && session_on_gpu(s) ? backend_cuda_mem_bytes(s->be) : 0;
    if (s->gpu_sharing > 1) gpu_mem /= (size_t)s->gpu_sharing; /* --share-gpus: an equal part each */
    Err pe = {{0}};
    if (gpu_mem && device_preset(&r.dev, "h100-80g", &pe) == 0) {
        r.dev.mem_bytes = s->o.mem_per_rank > 0 ? s->o.mem_per_rank : (double)gpu_mem;
        char part[32] = "";
        if (s->gpu_sharing > 1) snprintf(part, sizeof part, "1/%d of ", s->gpu_sharing);
        snprintf(r.dev.description, sizeof r.dev.description, "%sthis GPU, %.1f GiB (rates of the h100-80g preset)",
                 part, r.dev.mem_bytes / (1024.0 * 1024 * 1024));
        return r;
    }
    double mem = s->o.mem_per_rank > 0 ? s->o.mem_per_rank : gpu_mem ? (double)gpu_mem
                                                                     : node_memory_bytes() / s->local_size;
    int threads = s->o.threads > 0 ? s->o.threads : 1;
    device_cpu(&r.dev, mem, 10.0 * threads, threads);
    return r;
}

int session_default_micro_batches(const Session *s, int batch)
{
    /* the rule needs only the batch and the stage count, which is this session's rank count */
    PlanRequest r = {.batch = batch};
    Plan p = {.nstages = s->size};
    int M = plan_default_micro_batches(&s->cfg, &r, &p);
    return M < 1 ? 1 : M > batch ? batch : M;
}

/* the most KV slots of max_seq positions (1 .. o.max_slots) whose plan fits this session's ranks (1 when
 * none does: split_layers then says why) */
static int fit_slots(Session *s, int max_seq)
{
    int lo = 1, hi = s->o.max_slots > 0 ? s->o.max_slots : 256;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        PlanRequest r = session_request(s, mid, max_seq, 0);
        r.rows = s->o.plan_rows;
        Plan p = {0};
        Err pe = {{0}};
        int fits = plan_compute(&s->cfg, &r, &p, &pe) == 0 && p.fits;
        if (p.stages) plan_free(&p);
        if (fits) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static int split_layers(Session *s, int batch, int max_seq, Err *e)
{
    PlanRequest r = session_request(s, batch, max_seq, 0);
    r.rows = s->o.plan_rows;
    r.balance_ctx = (max_seq + 1) / 2;
    Plan p = {0};
    if (plan_compute(&s->cfg, &r, &p, e)) return -1;
    if (!p.fits) {
        if (s->rank == 0) plan_print(stderr, &s->cfg, &r, &p);
        int rc = err_set(e, "%s does not fit %d rank(s) of %.1f GiB each (%s): add ranks or memory%s (the plan above "
                            "shows each rank's share; pp8 plan --ranks auto finds the minimum)",
                         s->cfg.name, s->size, r.dev.mem_bytes / (1024.0 * 1024 * 1024), p.why,
                         s->o.wdt == DTYPE_I8 ? "" : ", or use --dtype int8");
        plan_free(&p);
        return rc;
    }
    for (int i = 0; i < s->size; i++) {
        s->layer_begin[i] = p.stages[i].layer_begin;
        s->layer_end[i] = p.stages[i].layer_end;
    }
    plan_free(&p);
    return 0;
}

static int load_model(Session *s, int max_rows, int slots, int max_seq, int max_out, Err *e)
{
    ModelOptions mo = {.model_dir = s->o.model, .wdt = s->o.wdt, .threshold = s->o.threshold,
                       .layer_begin = s->layer_begin[s->rank], .layer_end = s->layer_end[s->rank],
                       .seed = s->o.weights_seed, .int8_head = s->o.int8_head && s->o.wdt == DTYPE_I8};
    int rc = model_load(&s->m, &s->cfg, &mo, s->be, e);
    s->model_loaded = rc == 0;
    if (session_agree(rc, e)) return -1;
    rc = runstate_alloc(&s->rs, &s->m, max_rows, slots, max_seq, max_out, e);
    s->rs_ready = rc == 0;
    s->rs.check_layers = s->o.check_finite != 0;
    return session_agree(rc, e);
}

const char *session_config_path(const SessionOpts *o) { return o->config ? o->config : o->model; }

const char *session_tokenizer_dir(const SessionOpts *o, Err *e)
{
    if (o->tokenizer) return o->tokenizer;
    if (o->model) return o->model;
    err_set(e, "text needs a tokenizer: --config gives random weights but no tokenizer files; add --tokenizer DIR "
               "(a directory with tokenizer.json, or vocab.json + merges.txt)");
    return NULL;
}

int session_max_seq_len(const SessionOpts *o, const Config *c, int *out, Err *e)
{
    int model = c->arch == ARCH_OPT ? c->max_pos : 2048;
    if (o->max_seq_len > 0 && c->arch == ARCH_OPT && o->max_seq_len > c->max_pos)
        return err_set(e, "--max-seq-len %d: %s has position embeddings for %d positions (max_position_embeddings); "
                          "give at most %d", o->max_seq_len, c->path, c->max_pos, c->max_pos);
    *out = o->max_seq_len > 0 ? o->max_seq_len : model;
    return 0;
}

int session_bcast_tokens(TokenBatch *tb, Err *e)
{
    int32_t n = tb->n;
    ctl_bcast_i32(&n, 1, 0);
    int rc = 0;
    if (ctl_rank() != 0) {
        memset(tb, 0, sizeof *tb);
        tb->len = calloc((size_t)n, sizeof(int));
        tb->ids = calloc((size_t)n, sizeof(int32_t *));
        tb->n = tb->len && tb->ids ? n : 0;
        if (!tb->n) rc = err_set(e, "rank %d: out of memory for the prompts", ctl_rank());
    }
    if (session_agree(rc, e)) return -1;
    ctl_bcast_i32(tb->len, n, 0);
    for (int q = 0; q < n; q++) {
        if (ctl_rank() != 0) {
            tb->ids[q] = calloc((size_t)(tb->len[q] > 0 ? tb->len[q] : 1), sizeof(int32_t));
            if (!tb->ids[q]) rc = err_set(e, "rank %d: out of memory for the prompts", ctl_rank());
        }
        if (tb->len[q] > tb->max_len) tb->max_len = tb->len[q];
        tb->total += ctl_rank() != 0 ? tb->len[q] : 0;
    }
    if (session_agree(rc, e)) return -1;
    for (int q = 0; q < n; q++) ctl_bcast_i32(tb->ids[q], tb->len[q], 0);
    return 0;
}

int session_read_tokens(const SessionOpts *o, const char *tokens, int max_seqs, Config *cfg, TokenBatch *tb, Err *e)
{
    memset(tb, 0, sizeof *tb);
    int rc = config_load(cfg, session_config_path(o), e);
    if (!rc) rc = tokens_parse(tb, tokens, cfg->vocab, e);
    if (!rc && max_seqs > 0 && tb->n > max_seqs)
        rc = err_set(e, "--tokens: %d sequences given, this command takes %d (';' separates sequences)", tb->n,
                     max_seqs);
    if (session_agree(rc, e)) {
        tokens_free(tb);
        return -1;
    }
    return 0;
}

int session_open(Session *s, const SessionOpts *o, int max_rows, int slots, int max_seq, int max_out, Err *e)
{
    memset(s, 0, sizeof *s);
    s->o = *o;
    s->rank = ctl_rank();
    s->size = ctl_size();
    ctl_node_info(&s->local_rank, &s->local_size);
    int rc = 0;
    if (!o->config && !o->model) rc = err_set(e, "give --config C (random weights) or --model DIR (see --help)");
    if (!rc) rc = config_load(&s->cfg, session_config_path(o), e);
    if (!rc && o->wdt != DTYPE_I8 && o->threshold != 6.0f) {
        /* the threshold only means something for int8; accept it silently otherwise */
    }
    /* refused rather than ignored: LLM.int8() takes fp16 activations, which bf16 mode does not have, and
     * an int8 head beside 16-bit layers is no configuration anyone runs (bench's dtype list is the
     * exception: there the flag means "for the int8 runs") */
    if (!rc && o->int8_head && o->wdt != DTYPE_I8 && !o->int8_head_int8_only)
        rc = err_set(e, "--int8-head quantizes the LM head with LLM.int8(), which needs --dtype int8 (got --dtype %s): "
                        "drop --int8-head or use --dtype int8", dtype_label(o->wdt));
    int limit = 0;
    if (!rc) rc = session_max_seq_len(o, &s->cfg, &limit, e);
    if (!rc && max_seq > limit)
        rc = err_set(e, "%s: a sequence needs %d positions but --max-seq-len is %d%s: shorten the prompt or the "
                        "generation%s", s->cfg.path, max_seq, limit,
                     o->max_seq_len ? "" : s->cfg.arch == ARCH_OPT ? " (max_position_embeddings)" : " (BLOOM's default)",
                     s->cfg.arch == ARCH_OPT ? "" : ", or raise --max-seq-len");
    if (!rc && s->size > s->cfg.layers)
        rc = err_set(e, "%d ranks but %s has only %d layers: every rank needs at least one layer; run with "
                        "mpirun -np %d or fewer", s->size, s->cfg.name, s->cfg.layers, s->cfg.layers);
    if (session_agree(rc, e)) return -1;
    rc = open_backend(s, e);
    if (session_agree(rc, e)) return -1;
    s->layer_begin = calloc((size_t)s->size, sizeof(int));
    s->layer_end = calloc((size_t)s->size, sizeof(int));
    if (slots <= 0) {
        slots = fit_slots(s, max_seq);
        MPI_Allreduce(MPI_IN_PLACE, &slots, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD); /* one answer for every rank */
    }
    s->slots = slots;
    rc = s->layer_begin && s->layer_end ? split_layers(s, slots, max_seq, e) : err_set(e, "out of memory");
    if (session_agree(rc, e)) return -1;
    if (session_agree(open_transport(s, e), e)) return -1;
    char desc[32];
    log_info("%s (%s, %d layers) on %d rank(s), %s weights, %s backend, %s per rank", s->cfg.name,
             arch_name(s->cfg.arch), s->cfg.layers, s->size, dtype_label(o->wdt), s->be->name,
             session_rank_desc(s, desc, sizeof desc));
    return load_model(s, max_rows, slots, max_seq, max_out, e);
}

int session_reload(Session *s, DType wdt, int max_rows, int slots, int max_seq, int max_out, Err *e)
{
    if (s->rs_ready) runstate_free(&s->rs, &s->m);
    if (s->model_loaded) model_free(&s->m);
    s->rs_ready = s->model_loaded = false;
    (void)proc_reset_peak_rss(); /* bench reports each dtype's peak from its own load on */
    s->o.wdt = wdt;
    int rc = split_layers(s, slots, max_seq, e);
    if (session_agree(rc, e)) return -1;
    return load_model(s, max_rows, slots, max_seq, max_out, e);
}

void session_close(Session *s)
{
    if (s->rs_ready) runstate_free(&s->rs, &s->m);
    if (s->model_loaded) model_free(&s->m);
    transport_destroy(s->tr);
    backend_destroy(s->be);
    free(s->layer_begin);
    free(s->layer_end);
    memset(s, 0, sizeof *s);
}
