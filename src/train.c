/* train: the TBPTT training loop (rnntrain train).
 *
 * Prolog: parse and validate options, check every rank has the same configuration, open the
 * data, build the model (rank 0's initial weights broadcast to all).
 * Loop: read the next chunk of this rank's streams; forward, loss, backward; carry the
 * state; sum gradients and loss over ranks; clip the global norm; update. At an epoch's end
 * the streams restart from their beginning with zero state.
 * Checkpoints: every --ckpt-every steps, every --ckpt-minutes, at the end, and when a
 * signal (USR1, TERM, INT) asks the job to stop: all ranks agree on that at a step boundary
 * (one small all-reduce per step), write a checkpoint and exit with status 75.
 * Epilog: final validation, model file written by rank 0. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "common.h"
#include "data.h"
#include "dist.h"
#include "eval.h"
#include "linalg.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"
#include "seq.h"
#include "seqeval.h"

typedef struct {
    char *data, *cell, *optim, *out, *log, *init, *schedule, *ckpt_dir, *resume, *init_from;
    char *layers;
    int hidden, embed, batch, bptt, threads, eval_batch, deterministic, micro_batch;
    int64_t steps, seed, print_every, eval_every, warmup, decay_every, verify_every;
    int64_t ckpt_every, keep, max_bad;
    double ckpt_minutes, rollback_factor;
    double lr, clip, init_scale, min_lr, gamma, weight_decay, momentum, beta1, beta2, eps,
        rms_alpha;
} TrainOptions;

static void make_dir(const char *dir) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        rt_die(EXIT_RUNTIME, "--out: cannot create directory '%s': %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        rt_die(EXIT_USAGE, "--out: '%s' exists and is not a directory", dir);
}

/* Set by USR1/TERM/INT; the loop checkpoints and stops at the next step boundary. A second
 * INT stops at once. */
static volatile sig_atomic_t g_stop_signal = 0;

static void on_signal(int sig) {
    if (sig == SIGINT && g_stop_signal == SIGINT) {
        static const char msg[] = "rnntrain: second interrupt: stopping now, no checkpoint\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(130);
    }
    g_stop_signal = sig;
}

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static FILE *open_metrics(const char *path) {
    FILE *f = fopen(path, "a");
    if (!f) rt_die(EXIT_RUNTIME, "--log: cannot open '%s' for writing: %s", path, strerror(errno));
    return f;
}

/* The training state of one rank: the model (over B_micro streams), and G groups of
 * B_micro streams with their own data readers and carried states. Normally G = 1 and the
 * group is all of this rank's streams. With --deterministic each group is a fixed
 * micro-batch, so every stream's arithmetic is the same whatever the number of ranks, and
 * the gradients are summed in fixed point (integer sums do not depend on order). */
typedef struct {
    Model m;
    int G, B_micro, B_local;
    StreamReader *readers; /* (G) */
    ModelState state;      /* carried state of the B_local streams; group g is streams
                              [g*B_micro, (g+1)*B_micro) */
    int64_t *fixed;        /* (params.total) fixed-point gradient sum, deterministic only */
    int deterministic;
    double comm_wait;      /* seconds waiting for gradient sums */
    /* sequence tasks: batches of whole sequences drawn from a per-epoch permutation */
    SeqFile *sf;
    SeqBatch batch;
    int64_t *perm, perm_epoch, batches_per_epoch;
    int64_t *rank_index;
    uint64_t seed;
} Trainer;

#define FIXED_GRAD_SCALE 0x1p40 /* gradient resolution 2^-40 */
#define FIXED_GRAD_MAX 0x1p22   /* |micro-batch gradient entry| allowed */
#define FIXED_LOSS_SCALE 0x1p32

static void on_grad_ready(void *ctx, size_t offset, size_t count) {
    Trainer *tr = ctx;
    dist_isum_f32(tr->m.params.grad + offset, count);
}

/* Lets the gradient sums of finished layers advance during a layer's backward loop. */
static void progress_sums(void *ctx) {
    (void)ctx;
    dist_progress();
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sequence tasks: the gradient of global batch `cursor` of `epoch`. Every rank draws the
 * same permutation (seeded by seed and epoch) and takes its B_local sequences of the
 * batch; the loss is normalised by the global number of loss terms. */
static double trainer_gradient_seq(Trainer *tr, int64_t cursor, int64_t epoch, int *bad) {
    Model *m = &tr->m;
    const SeqFile *sf = tr->sf;
    int64_t n = sf->n[0], Bg = (int64_t)tr->B_local * dist_size();
    if (tr->perm_epoch != epoch) {
        Rng r;
        rng_seed(&r, tr->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(epoch + 1)));
        for (int64_t i = 0; i < n; i++) tr->perm[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(rng_u64(&r) % (uint64_t)(i + 1)), t = tr->perm[i];
            tr->perm[i] = tr->perm[j];
            tr->perm[j] = t;
        }
        tr->perm_epoch = epoch;
    }
    memcpy(tr->rank_index, tr->perm + cursor * Bg + (int64_t)dist_rank() * tr->B_local,
           (size_t)tr->B_local * sizeof(int64_t));
    qsort(tr->rank_index, (size_t)tr->B_local, sizeof(int64_t), cmp_i64);
    seq_read(sf, 0, tr->rank_index, tr->B_local, &tr->batch);
    double terms = seq_batch_terms(sf, &tr->batch);
    dist_sum_f64(&terms, 1);
    float scale = (float)(1.0 / terms);
    params_zero_grad(&m->params);
    seq_forward(m, &tr->state, sf, &tr->batch);
    int classes = sf->task == TASK_CLASSIFY || sf->task == TASK_TAG;
    double loss = classes ? model_loss(m, tr->batch.labels, sf->T, scale, 1)
                          : model_loss_mse(m, tr->batch.targets, tr->batch.weights, sf->T, scale, 1);
    m->grad_ready = dist_size() > 1 ? on_grad_ready : NULL;
    model_backward(m, sf->T, NULL);
    double t0 = rt_seconds();
    dist_sum_f64(&loss, 1);
    dist_wait_all();
    tr->comm_wait += rt_seconds() - t0;
    *bad = 0;
    return loss / terms;
}

/* One update's forward and backward over all of this rank's streams at cursor, gradients
 * summed over ranks into m.params.grad. Returns the global mean loss; *bad is set if a
 * gradient is non-finite (or too large for fixed point). */
static double trainer_gradient(Trainer *tr, int64_t cursor, int T, float scale, int *bad) {
    Model *m = &tr->m;
    Params *p = &m->params;
    int64_t loss_fixed = 0;
    double loss = 0.0;
    int64_t flag = 0;
    if (tr->deterministic) memset(tr->fixed, 0, p->total * sizeof(int64_t));
    for (int g = 0; g < tr->G; g++) {
        StreamReader *sr = &tr->readers[g];
        REQUIRE(stream_read(sr, cursor) == T);
        ModelState group;
        model_state_view(&group, &tr->state, g * tr->B_micro, tr->B_micro);
        params_zero_grad(p);
        model_forward(m, &group, sr->inputs, T);
        double group_loss = model_loss(m, sr->targets, T, scale, 1);
        m->grad_ready = !tr->deterministic && dist_size() > 1 ? on_grad_ready : NULL;
        model_backward(m, T, NULL);
        if (!tr->deterministic) {
            loss = group_loss;
            continue;
        }
        loss_fixed += llround(group_loss * FIXED_LOSS_SCALE);
        for (size_t i = 0; i < p->total; i++) {
            float v = p->grad[i];
            if (!(fabsf(v) <= (float)FIXED_GRAD_MAX)) { /* also catches NaN */
                flag = 1;
                continue;
            }
            tr->fixed[i] += llrint((double)v * FIXED_GRAD_SCALE);
        }
    }
    double t0 = rt_seconds();
    if (tr->deterministic) {
        dist_sum_i64(tr->fixed, p->total);
        dist_sum_i64(&loss_fixed, 1);
        dist_max_i64(&flag, 1);
        for (size_t i = 0; i < p->total; i++)
            p->grad[i] = (float)((double)tr->fixed[i] / FIXED_GRAD_SCALE);
        loss = (double)loss_fixed / FIXED_LOSS_SCALE;
    } else {
        dist_sum_f64(&loss, 1);
        dist_wait_all();
    }
    tr->comm_wait += rt_seconds() - t0;
    *bad = flag != 0;
    return loss;
}

/* --layers: a count of --model layers of --hidden units, or a KIND:WIDTH list. */
static void parse_layers(ModelShape *shape, const TrainOptions *o) {
    char *end;
    long L = strtol(o->layers, &end, 10);
    if (*o->layers && *end == 0) {
        if (L < 1 || L > MODEL_MAX_LAYERS)
            cli_bad("layers", "expected an integer in [1, %d] or a KIND:WIDTH list, found '%s'",
                    MODEL_MAX_LAYERS, o->layers);
        model_shape_uniform(shape, layer_kind_by_name(o->cell), (int)L, o->hidden);
        return;
    }
    char err[512];
    if (!model_shape_parse_layers(shape, o->layers, err, sizeof err)) cli_bad("layers", "%s", err);
}

int cmd_train(int argc, char **argv) {
    TrainOptions o = {.cell = "lstm", .optim = "adam", .init = "pytorch",
                      .schedule = "constant", .layers = "2", .hidden = 256, .embed = 0,
                      .batch = 32, .bptt = 64, .threads = 1, .eval_batch = 32, .micro_batch = 4, .steps = 1000,
                      .seed = 1234, .print_every = 50, .eval_every = 0, .warmup = 0,
                      .decay_every = 1000, .ckpt_every = 0, .keep = 3, .max_bad = 10,
                      .ckpt_minutes = 15.0, .rollback_factor = 0.5, .lr = 2e-3, .clip = 5.0, .init_scale = 0.08,
                      .min_lr = 0.0, .gamma = 0.5, .weight_decay = 0.0, .momentum = 0.9,
                      .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .rms_alpha = 0.99};
    const double INF = 1e308;
    CliOption opts[] = {
        {"data", CLI_STR, &o.data, "DATA.h5", "token dataset (rnntrain prepare)", 1, 0, NULL, 1, 0},
        {"out", CLI_STR, &o.out, "DIR", "output directory: model.h5, metrics.jsonl", 1, 0, NULL, 1, 0},
        {"model", CLI_STR, &o.cell, "CELL", "rnn|lstm|gru (default lstm)", 1, 0, "rnn|lstm|gru", 0, 0},
        {"layers", CLI_STR, &o.layers, "L|LIST", "stacked layers of --model and --hidden (default "
         "2), or a list of KIND:WIDTH, e.g. lstm:512,gru:256 (then --model and --hidden are not "
         "used)", 1, 0, NULL, 0, 0},
        {"hidden", CLI_INT, &o.hidden, "H", "hidden size (default 256)", 1, 65536, NULL, 0, 0},
        {"embed", CLI_INT, &o.embed, "E", "embedding width (default: = hidden)", 0, 65536, NULL, 0, 0},
        {"batch", CLI_INT, &o.batch, "B", "GLOBAL number of streams; each of N ranks takes B/N "
         "(default 32)", 1, 1 << 20, NULL, 0, 0},
        {"bptt", CLI_INT, &o.bptt, "T", "truncated-BPTT chunk length (default 64)", 1, 1 << 20, NULL, 0, 0},
        {"optim", CLI_STR, &o.optim, "NAME", "sgd|adam|adamw|rmsprop (default adam)", 1, 0,
         "sgd|adam|adamw|rmsprop", 0, 0},
        {"lr", CLI_DOUBLE, &o.lr, "X", "learning rate (default 2e-3)", 1e-300, 1e6, NULL, 0, 0},
        {"clip", CLI_DOUBLE, &o.clip, "C", "clip the global gradient norm to C; 0 = off "
         "(default 5)", 0, INF, NULL, 0, 0},
        {"steps", CLI_I64, &o.steps, "N", "updates to run (default 1000); 0 writes the model as "
         "initialised, loaded or resumed, and stops", 0, 1e15, NULL, 0, 0},
        {"seed", CLI_I64, &o.seed, "S", "random seed (default 1234)", 0, 9e15, NULL, 0, 0},
        {"log", CLI_STR, &o.log, "FILE", "metrics, JSON lines (default OUT/metrics.jsonl)", 1, 0, NULL, 0, 0},
        {"init", CLI_STR, &o.init, "KIND", "pytorch|uniform|orthogonal (default pytorch)", 1, 0,
         "pytorch|uniform|orthogonal", 0, 0},
        {"init-scale", CLI_DOUBLE, &o.init_scale, "A", "uniform init: U(-A, A) (default 0.08)", 1e-12, 1e6, NULL, 0, 0},
        {"schedule", CLI_STR, &o.schedule, "KIND", "constant|cosine|step (default constant)", 1, 0,
         "constant|cosine|step", 0, 0},
        {"warmup", CLI_I64, &o.warmup, "N", "linear warm-up steps (default 0)", 0, 1e15, NULL, 0, 0},
        {"min-lr", CLI_DOUBLE, &o.min_lr, "X", "cosine: final learning rate (default 0)", 0, 1e6, NULL, 0, 0},
        {"decay-every", CLI_I64, &o.decay_every, "N", "step: decay every N steps (default 1000)", 1, 1e15, NULL, 0, 0},
        {"decay-gamma", CLI_DOUBLE, &o.gamma, "G", "step: multiply lr by G (default 0.5)", 1e-12, 1, NULL, 0, 0},
        {"weight-decay", CLI_DOUBLE, &o.weight_decay, "W", "L2 (sgd/adam/rmsprop) or decoupled "
         "(adamw) weight decay (default 0)", 0, 1e6, NULL, 0, 0},
        {"momentum", CLI_DOUBLE, &o.momentum, "M", "sgd momentum (default 0.9)", 0, 0.999999, NULL, 0, 0},
        {"beta1", CLI_DOUBLE, &o.beta1, "B1", "adam beta1 (default 0.9)", 0, 0.999999, NULL, 0, 0},
        {"beta2", CLI_DOUBLE, &o.beta2, "B2", "adam beta2 (default 0.999)", 0, 0.99999999, NULL, 0, 0},
        {"eps", CLI_DOUBLE, &o.eps, "E", "adam/rmsprop epsilon (default 1e-8)", 1e-300, 1, NULL, 0, 0},
        {"rms-alpha", CLI_DOUBLE, &o.rms_alpha, "A", "rmsprop smoothing (default 0.99)", 0, 0.999999, NULL, 0, 0},
        {"threads", CLI_INT, &o.threads, "K", "BLAS threads per rank (default 1)", 1, 256, NULL, 0, 0},
        {"print-every", CLI_I64, &o.print_every, "N", "progress line every N steps (default 50)", 1, 1e15, NULL, 0, 0},
        {"eval-every", CLI_I64, &o.eval_every, "N", "validate every N steps; 0 = only at the end "
         "(default 0)", 0, 1e15, NULL, 0, 0},
        {"verify-every", CLI_I64, &o.verify_every, "N", "check every N steps that all ranks hold "
         "bitwise identical parameters; 0 = never (default 0)", 0, 1e15, NULL, 0, 0},
        {"eval-batch", CLI_INT, &o.eval_batch, "S", "streams for validation (default 32)", 1, 1 << 20, NULL, 0, 0},
        {"deterministic", CLI_FLAG, &o.deterministic, NULL, "bitwise identical results on any "
         "number of ranks (same --batch): fixed micro-batches, fixed-point gradient sums", 1, 0, NULL, 0, 0},
        {"micro-batch", CLI_INT, &o.micro_batch, "M", "--deterministic: streams per micro-batch; "
         "must divide batch/ranks (default 4)", 1, 1 << 20, NULL, 0, 0},
        {"ckpt-dir", CLI_STR, &o.ckpt_dir, "DIR", "checkpoint directory (default OUT/checkpoints)", 1, 0, NULL, 0, 0},
        {"ckpt-every", CLI_I64, &o.ckpt_every, "N", "checkpoint every N steps; 0 = off (default 0)", 0, 1e15, NULL, 0, 0},
        {"ckpt-minutes", CLI_DOUBLE, &o.ckpt_minutes, "M", "checkpoint every M minutes; 0 = off "
         "(default 15)", 0, 1e9, NULL, 0, 0},
        {"keep", CLI_I64, &o.keep, "K", "keep the K newest checkpoints; 0 = all (default 3)", 0, 1e9, NULL, 0, 0},
        {"resume", CLI_STR, &o.resume, "auto|PATH", "continue from the newest valid checkpoint "
         "in the checkpoint directory (auto; starts afresh if there is none) or from PATH", 1, 0, NULL, 0, 0},
        {"init-from", CLI_STR, &o.init_from, "MODEL", "start from the weights of a model file, "
         "training directory or checkpoint of the same shape and vocabulary (warm start, "
         "fine-tuning, or weights exported from PyTorch); optimizer state starts afresh; "
         "ignored when --resume finds a checkpoint", 1, 0, NULL, 0, 0},
        {"max-bad-steps", CLI_I64, &o.max_bad, "K", "after K non-finite steps in a row, roll back "
         "to the last checkpoint with a lower lr (default 10)", 1, 1e9, NULL, 0, 0},
        {"rollback-lr-factor", CLI_DOUBLE, &o.rollback_factor, "F", "lr multiplier after a "
         "rollback (default 0.5)", 1e-6, 1, NULL, 0, 0},
    };
    int nopts = (int)(sizeof opts / sizeof *opts);
    cli_parse("train", "Train an RNN/LSTM/GRU language model with truncated BPTT; data-parallel "
              "over MPI ranks.", opts, nopts, argc, argv);

    int N = dist_size(), rank = dist_rank();
    if (o.batch % N != 0)
        cli_bad("batch", "%d streams cannot be shared evenly by %d ranks (use a multiple of %d)",
                o.batch, N, N);
    if (o.eval_batch % N != 0)
        cli_bad("eval-batch", "%d streams cannot be shared evenly by %d ranks", o.eval_batch, N);
    int B = o.batch / N;
    if (o.deterministic && B % o.micro_batch != 0)
        cli_bad("micro-batch", "%d does not divide the %d streams of each rank (--batch %d over "
                "%d ranks)", o.micro_batch, B, o.batch, N);
    ModelShape shape;
    memset(&shape, 0, sizeof shape);
    parse_layers(&shape, &o);
    if (o.embed == 0) o.embed = shape.layer[0].H;
    char *config = rt_calloc(1, 65536, "configuration");
    cli_format_config(opts, nopts, config, 65536);
    if (!dist_all_equal_u64(fnv1a(config)))
        rt_die(EXIT_USAGE, "the ranks were started with different options; every rank must get "
               "the same command line");

    la_setup(o.threads);
    char core[256];
    la_core_text(core, sizeof core);
    char ckpt_dir[4096];
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s", o.ckpt_dir ? o.ckpt_dir : "");
    if (!o.ckpt_dir) snprintf(ckpt_dir, sizeof ckpt_dir, "%s/checkpoints", o.out);
    if (rank == 0) {
        make_dir(o.out);
        make_dir(ckpt_dir);
        ckpt_remove_stale(ckpt_dir);
    }
    dist_barrier();
    install_signal_handlers();
    char metrics_path[4096];
    snprintf(metrics_path, sizeof metrics_path, "%s", o.log ? o.log : "");
    if (!o.log) snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", o.out);
    FILE *metrics = rank == 0 ? open_metrics(metrics_path) : NULL;

    /* a token dataset (language model) or a sequence dataset (other tasks) */
    int is_seq = seq_is_sequence_file(o.data);
    TokenFile tf;
    SeqFile sf;
    memset(&tf, 0, sizeof tf);
    memset(&sf, 0, sizeof sf);
    if (is_seq) {
        seq_open(&sf, o.data);
        if (o.deterministic)
            cli_bad("deterministic", "is implemented for language models (token streams) only");
        if (sf.n[0] < o.batch)
            rt_die(EXIT_INPUT, "data file '%s': the train split has %lld sequences, fewer than "
                   "--batch %d", o.data, (long long)sf.n[0], o.batch);
    } else {
        data_open(&tf, o.data);
    }
    int64_t train_len = is_seq ? sf.n[0] : data_split_len(&tf, "train");
    if (!dist_all_equal_u64((uint64_t)train_len ^ fnv1a(o.data)))
        rt_die(EXIT_USAGE, "--data: the ranks opened different data files");
    int T_model = is_seq ? sf.T : o.bptt;

    Trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.deterministic = o.deterministic;
    tr.B_local = B;
    tr.B_micro = o.deterministic ? o.micro_batch : B;
    tr.G = B / tr.B_micro;
    shape.E = o.embed;
    shape.V = is_seq ? seq_outputs(&sf) : tf.vocab.V;
    if (is_seq) {
        shape.float_inputs = sf.float_inputs;
        shape.E = sf.float_inputs ? sf.D : o.embed;
        shape.C = sf.C;
        shape.in_vocab = sf.float_inputs ? 0 : sf.vocab;
    }
    Model *m = &tr.m;
    model_init(m, shape, tr.B_micro, T_model);
    int64_t L_stream = 0, chunks;
    if (is_seq) {
        tr.sf = &sf;
        seq_batch_init(&tr.batch, &sf, B);
        tr.perm = rt_malloc((size_t)sf.n[0] * sizeof *tr.perm, "permutation");
        tr.rank_index = rt_malloc((size_t)B * sizeof *tr.rank_index, "batch index");
        tr.perm_epoch = -1;
        tr.seed = (uint64_t)o.seed;
        tr.batches_per_epoch = chunks = sf.n[0] / o.batch;
        tr.G = 0; /* no token streams */
    } else {
        tr.readers = rt_calloc((size_t)tr.G, sizeof *tr.readers, "stream readers");
        for (int g = 0; g < tr.G; g++)
            stream_init(&tr.readers[g], &tf, "train", o.batch, rank * B + g * tr.B_micro,
                        tr.B_micro, o.bptt, 1);
        L_stream = tr.readers[0].L;
        chunks = stream_chunks_per_epoch(&tr.readers[0]);
    }
    model_state_init(&tr.state, m, B);
    if (tr.deterministic)
        tr.fixed = rt_calloc(m->params.total, sizeof *tr.fixed, "fixed-point gradient");
    m->grad_ctx = &tr;
    if (N > 1 && !tr.deterministic) m->hooks.progress = progress_sums;

    InitKind ik = strcmp(o.init, "uniform") == 0      ? INIT_UNIFORM
                  : strcmp(o.init, "orthogonal") == 0 ? INIT_ORTHOGONAL
                                                      : INIT_PYTORCH;
    model_init_weights(m, ik, (float)o.init_scale, (uint64_t)o.seed);
    dist_bcast_f32(m->params.value, m->params.total);

    /* Validation runs on the training model itself (its state set aside) when it has as
     * many streams per rank; otherwise on a second model over the same parameters. */
    Model eval_own, *eval_model = m;
    if (o.eval_batch / N != tr.B_micro || tr.G != 1) {
        model_init_shared(&eval_own, m, o.eval_batch / N, T_model);
        eval_model = &eval_own;
    }

    Optim opt;
    optim_defaults(&opt, (OptimKind)optim_kind_by_name(o.optim));
    opt.momentum = o.momentum;
    opt.beta1 = o.beta1;
    opt.beta2 = o.beta2;
    opt.eps = o.eps;
    opt.alpha = o.rms_alpha;
    opt.weight_decay = o.weight_decay;
    Schedule sched = {(SchedKind)sched_kind_by_name(o.schedule), o.lr, o.min_lr, o.warmup,
                      o.steps, o.decay_every, o.gamma};

    Progress prog = {0, 0, 0, 0, 1.0};
    RunShape rs = {o.batch, T_model, train_len};
    char *last_ckpt = NULL;
    if (o.resume) {
        last_ckpt = ckpt_find(ckpt_dir, o.resume);
        if (last_ckpt) {
            ckpt_load(last_ckpt, m, &tr.state, &opt, &prog, &rs);
            rt_log("resumed from %s: step %lld, epoch %lld\n", last_ckpt, (long long)prog.step,
                   (long long)prog.epoch);
        } else {
            rt_log("no checkpoint in %s: starting afresh\n", ckpt_dir);
        }
    }
    if (o.init_from && !last_ckpt) {
        /* every rank reads the (small) file: an error stops all of them the same way */
        model_io_load_weights(o.init_from, m, is_seq ? NULL : &tf.vocab);
        rt_log("initial weights from %s\n", o.init_from);
    }
    double flops_tok = 3.0 * model_forward_flops_per_token(m);
    char layers_text[512];
    model_shape_layers_text(&shape, layers_text, sizeof layers_text);
    int64_t tokens_per_step = (int64_t)o.batch * T_model;
    if (is_seq) {
        rt_log("rnntrain %s | %s | task %s: %s %d per step, %d outputs%s | %zu parameters\n",
               RNNTRAIN_VERSION, layers_text, task_name(sf.task),
               sf.float_inputs ? "features" : "vocabulary", sf.float_inputs ? sf.D : sf.vocab,
               shape.V, sf.C ? " | conditioned" : "", m->params.total);
        rt_log("ranks %d x %d BLAS threads (%s) | %d sequences per batch, %d per rank | T %d | "
               "%lld batches per epoch\n", N, o.threads, core, o.batch, B, sf.T, (long long)chunks);
    } else {
        rt_log("rnntrain %s | %s embed %d vocab %d (%s) | %zu parameters\n",
               RNNTRAIN_VERSION, layers_text, o.embed, tf.vocab.V,
               vocab_kind_name(tf.vocab.kind), m->params.total);
        rt_log("ranks %d x %d BLAS threads (%s) | streams %d global, %d per rank, %lld tokens "
               "each | T %d | %lld chunks per epoch%s\n", N, o.threads, core, o.batch, B,
               (long long)L_stream, o.bptt, (long long)chunks,
               o.deterministic ? " | deterministic" : "");
    }

    float scale = 1.0f / (float)tokens_per_step;
    int64_t cursor = prog.cursor, epoch = prog.epoch, skipped = prog.skipped, bad_run = 0;
    int64_t rollbacks = 0;
    double t_start = rt_seconds(), t_eval = 0.0, t_mark = t_start, eval_mark = 0.0;
    double t_ckpt = t_start, comm_mark = 0.0;
    int64_t step_mark = prog.step, first_step = prog.step;
    int stopped = 0;
    /* Test hook (docs/checkpoints.md): RNNTRAIN_TEST_NAN_AT=STEP:COUNT makes the loss of
     * COUNT updates from STEP on non-finite, once, to exercise skip/rollback/stop. */
    long long nan_at = 0, nan_left = 0;
    const char *nan_env = getenv("RNNTRAIN_TEST_NAN_AT");
    if (nan_env && sscanf(nan_env, "%lld:%lld", &nan_at, &nan_left) != 2)
        rt_die(EXIT_USAGE, "RNNTRAIN_TEST_NAN_AT: expected STEP:COUNT, found '%s'", nan_env);
    double loss_acc = 0.0;
    int64_t loss_n = 0;
    for (int64_t step = prog.step; step < o.steps; step++) {
        int T = o.bptt, bad = 0;
        double loss = is_seq ? trainer_gradient_seq(&tr, cursor, epoch, &bad)
                             : trainer_gradient(&tr, cursor, T, scale, &bad) / (double)tokens_per_step;
        if (nan_left > 0 && step + 1 >= nan_at) {
            loss = NAN;
            nan_left--;
        }
        double gnorm = optim_clip(&m->params, o.clip);
        double lr = sched_lr(&sched, step) * prog.lr_scale;
        if (isfinite(loss) && isfinite(gnorm) && !bad) {
            optim_step(&opt, &m->params, lr);
            loss_acc += loss;
            loss_n++;
            bad_run = 0;
        } else {
            skipped++;
            bad_run++;
            rt_log("step %lld: non-finite loss or gradient norm; update skipped (%lld in a row, "
                   "%lld in all)\n", (long long)step + 1, (long long)bad_run, (long long)skipped);
            if (bad_run >= o.max_bad) {
                if (!last_ckpt || rollbacks >= 3)
                    rt_die(EXIT_RUNTIME, "%lld non-finite steps in a row at step %lld and %s; "
                           "lower --lr or --clip", (long long)bad_run, (long long)step + 1,
                           last_ckpt ? "3 rollbacks already" : "no checkpoint to roll back to");
                double lr_scale = prog.lr_scale * o.rollback_factor;
                ckpt_load(last_ckpt, m, &tr.state, &opt, &prog, &rs);
                prog.lr_scale = lr_scale;
                prog.skipped = skipped;
                rollbacks++;
                rt_log("rolled back to %s (step %lld); learning rate now x%g\n", last_ckpt,
                       (long long)prog.step, prog.lr_scale);
                cursor = prog.cursor;
                epoch = prog.epoch;
                bad_run = 0;
                step = prog.step - 1;
                continue;
            }
        }
        if (is_seq) {
            if (++cursor >= tr.batches_per_epoch) {
                cursor = 0;
                epoch++;
            }
        } else if ((cursor += T) + o.bptt + 1 > L_stream) {
            cursor = 0;
            epoch++;
            model_state_zero(&tr.state);
        }
        int64_t done = step + 1;
        prog.step = done;
        prog.cursor = cursor;
        prog.epoch = epoch;
        prog.skipped = skipped;
        if (o.verify_every > 0 && done % o.verify_every == 0 &&
            !dist_all_equal_u64(params_checksum(&m->params)))
            rt_die(EXIT_RUNTIME, "after step %lld the ranks hold different parameters (checksum "
                   "%016llx on rank %d)", (long long)done, params_checksum(&m->params), rank);
        /* stop request and checkpoint clock, agreed by all ranks */
        int64_t flags[2] = {g_stop_signal != 0,
                            rank == 0 && o.ckpt_minutes > 0 &&
                                rt_seconds() - t_ckpt >= 60.0 * o.ckpt_minutes};
        dist_max_i64(flags, 2);
        if ((o.ckpt_every > 0 && done % o.ckpt_every == 0) || flags[0] || flags[1] ||
            done == o.steps) {
            ckpt_save(ckpt_dir, (int)o.keep, m, &tr.state, &opt, &prog, &rs,
                      is_seq ? NULL : &tf.vocab, config);
            free(last_ckpt);
            size_t n = strlen(ckpt_dir) + 32;
            last_ckpt = rt_malloc(n, "path");
            snprintf(last_ckpt, n, "%s/ckpt-%010lld.h5", ckpt_dir, (long long)done);
            t_ckpt = rt_seconds();
        }
        if (flags[0]) {
            rt_log("stop requested by a signal: checkpoint %s written at step %lld; exiting with "
                   "status %d (resume with --resume auto)\n", last_ckpt, (long long)done,
                   EXIT_CHECKPOINTED);
            stopped = 1;
            break;
        }
        if (done % o.print_every == 0 || done == o.steps) {
            double now = rt_seconds();
            double span = now - t_mark - (t_eval - eval_mark);
            double tps = (double)(done - step_mark) * tokens_per_step / (span > 0 ? span : 1e-9);
            double elapsed = now - t_start;
            double per_step = (elapsed - t_eval) / (double)(done - first_step);
            double mean = loss_n ? loss_acc / (double)loss_n : NAN;
            double ep = (double)epoch + (is_seq ? (double)cursor / (double)chunks
                                                : (double)cursor / (double)(L_stream - 1));
            double comm = span > 0 ? (tr.comm_wait - comm_mark) / span : 0.0;
            rt_log("step %lld/%lld | epoch %.3f | loss %.4f | %.3f bits | lr %.3e | gnorm %.3f | "
                   "%.0f tok/s | %.1f GFLOP/s | comm wait %.1f%% | %.1f s | ETA %.0f s\n",
                   (long long)done, (long long)o.steps, ep, mean, mean / log(2.0), lr, gnorm, tps,
                   tps * flops_tok * 1e-9, 100.0 * comm, elapsed,
                   per_step * (double)(o.steps - done));
            if (metrics) {
                fprintf(metrics, "{\"kind\": \"train\", \"step\": %lld, \"epoch\": %.6f, "
                        "\"tokens\": %lld, \"loss\": %.9g, \"bits\": %.9g, \"lr\": %.9g, "
                        "\"grad_norm\": %.9g, \"tokens_per_s\": %.6g, \"comm_wait\": %.6g, "
                        "\"elapsed\": %.6g, \"skipped\": %lld}\n", (long long)done, ep,
                        (long long)(done * tokens_per_step), mean, mean / log(2.0), lr, gnorm,
                        tps, comm, elapsed, (long long)skipped);
                fflush(metrics);
            }
            loss_acc = 0.0;
            loss_n = 0;
            t_mark = now;
            eval_mark = t_eval;
            comm_mark = tr.comm_wait;
            step_mark = done;
        }
        if (is_seq && sf.n[1] > 0 && ((o.eval_every > 0 && done % o.eval_every == 0) ||
                                      done == o.steps)) {
            double t0 = rt_seconds();
            SeqMetrics mt;
            seq_metrics_init(&mt, &sf);
            seq_evaluate(eval_model, &sf, 1, &mt, NULL);
            t_eval += rt_seconds() - t0;
            double vloss = seq_metrics_loss(&mt);
            double acc = mt.scored > 0 ? mt.correct / mt.scored : NAN;
            if (mt.scored > 0 && (sf.task == TASK_CLASSIFY || sf.task == TASK_TAG))
                rt_log("valid step %lld | loss %.4f | accuracy %.2f%% | %.0f sequences\n",
                       (long long)done, vloss, 100.0 * acc, mt.sequences);
            else
                rt_log("valid step %lld | loss %.4f (%s) | %.0f sequences\n", (long long)done,
                       vloss, "MSE, normalised", mt.sequences);
            if (!(sf.task == TASK_CLASSIFY || sf.task == TASK_TAG)) acc = NAN;
            if (metrics) {
                fprintf(metrics, "{\"kind\": \"valid\", \"step\": %lld, \"tokens\": %lld, "
                        "\"nats\": %.9g, \"accuracy\": %.9g}\n", (long long)done,
                        (long long)(done * tokens_per_step), vloss, isnan(acc) ? -1.0 : acc);
                fflush(metrics);
            }
            seq_metrics_free(&mt);
        } else if (!is_seq && ((o.eval_every > 0 && done % o.eval_every == 0) || done == o.steps)) {
            double t0 = rt_seconds();
            EvalResult r = eval_split(eval_model, &tf, "valid", o.eval_batch);
            double nats = eval_nats(r);
            t_eval += rt_seconds() - t0;
            rt_log("valid step %lld | %.4f nats | %.4f bits | perplexity %.3f | %lld tokens\n",
                   (long long)done, nats, nats / log(2.0), exp(nats), (long long)r.tokens);
            if (metrics) {
                fprintf(metrics, "{\"kind\": \"valid\", \"step\": %lld, \"tokens\": %lld, "
                        "\"nats\": %.9g, \"bits\": %.9g, \"perplexity\": %.9g}\n",
                        (long long)done, (long long)(done * tokens_per_step), nats,
                        nats / log(2.0), exp(nats));
                fflush(metrics);
            }
        }
    }
    if (rank == 0 && !stopped) {
        char path[4096];
        snprintf(path, sizeof path, "%s/model.h5", o.out);
        model_io_save(path, m, is_seq ? NULL : &tf.vocab, config);
        rt_log("model written to %s | peak RSS %.1f MB (rank 0)\n", path, rt_peak_rss_mb());
    }
    if (metrics) fclose(metrics);
    free(last_ckpt);
    if (eval_model != m) model_free(&eval_own);
    model_state_free(&tr.state);
    for (int g = 0; g < tr.G; g++) {
        stream_free(&tr.readers[g]);
    }
    free(tr.readers);
    free(tr.fixed);
    free(tr.perm);
    free(tr.rank_index);
    if (is_seq) {
        seq_batch_free(&tr.batch);
        seq_close(&sf);
    } else {
        data_close(&tf);
    }
    model_free(m);
    free(config);
    return stopped ? EXIT_CHECKPOINTED : 0;
}
