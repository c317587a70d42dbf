#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "cli.h"
#include "common.h"
#include "dist.h"
#include "linalg.h"

/* The defaults: written here and nowhere else (help shows them from here). */
static const TrainConfig defaults = {
    .cell = "lstm", .layers = "2", .optim = "adam", .init = "pytorch", .schedule = "constant",
    .hidden = 256, .embed = 0, .batch = 32, .bptt = 64, .threads = 1, .eval_batch = 32,
    .micro_batch = 4, .steps = 1000, .seed = 1234, .print_every = 50, .eval_every = 0,
    .warmup = 0, .decay_every = 1000, .verify_every = 0, .ckpt_every = 0, .keep = 3,
    .max_bad = 10, .ckpt_minutes = 15.0, .rollback_factor = 0.5, .lr = 2e-3, .clip = 5.0,
    .init_scale = 0.08, .min_lr = 0.0, .gamma = 0.5, .weight_decay = 0.0, .momentum = 0.9,
    .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .rms_alpha = 0.99, .pool = "last",
    .encoder = "", .attention = "none", .watchdog = 300, .precision = "fp32"};

void train_config_defaults(TrainConfig *c) { *c = defaults; }

#define INF 1e308
/* The option table over c; help texts name no default (cli appends it from the value). */
static int option_table(TrainConfig *c, CliOption *o) {
    CliOption table[] = {
        {"data", CLI_STR, &c->data, "DATA.h5", "token or sequence dataset (rnntrain prepare)", 1, 0, NULL, 1, 0},
        {"out", CLI_STR, &c->out, "DIR", "output directory: model.h5, metrics.jsonl", 1, 0, NULL, 1, 0},
        {"model", CLI_STR, &c->cell, "KIND", "layer kind of the --layers/--hidden shorthand", 1, 0,
         layer_kind_names(), 0, 0},
        {"layers", CLI_STR, &c->layers, "L|LIST", "stacked layers of --model and --hidden, or a "
         "list of KIND:WIDTH, e.g. lstm:512,gru:256 (then --model and --hidden are not used)", 1,
         0, NULL, 0, 0},
        {"hidden", CLI_INT, &c->hidden, "H", "hidden size", 1, 65536, NULL, 0, 0},
        {"embed", CLI_INT, &c->embed, "E", "embedding width; 0 = the first layer's width", 0, 65536, NULL, 0, 0},
        {"d-state", CLI_INT, &c->d_state, "N", "mamba: states per channel (16); s5: state size P "
         "before conjugate halving (0 = the layer width, made even)", 1, 1 << 16, NULL, 0, 0},
        {"d-conv", CLI_INT, &c->d_conv, "K", "mamba: causal convolution width (0 = 4)", 1, 64, NULL, 0, 0},
        {"expand", CLI_INT, &c->expand, "X", "mamba: inner width = X * layer width (0 = 2)", 1, 64, NULL, 0, 0},
        {"dt-rank", CLI_INT, &c->dt_rank, "R", "mamba: rank of the step projection (0 = "
         "ceil(width/16))", 1, 65536, NULL, 0, 0},
        {"ssm-blocks", CLI_INT, &c->ssm_blocks, "J", "s5: HiPPO-N blocks of the initial state "
         "matrix (0 = 1)", 1, 65536, NULL, 0, 0},
        {"no-conj-sym", CLI_FLAG, &c->no_conj_sym, NULL, "s5: store all P modes, not one of each "
         "conjugate pair", 1, 0, NULL, 0, 0},
        {"bilinear", CLI_FLAG, &c->bilinear, NULL, "s5: bilinear discretisation instead of "
         "zero-order hold", 1, 0, NULL, 0, 0},
        {"clip-eigs", CLI_FLAG, &c->clip_eigs, NULL, "s5: keep Re(Lambda) <= -1e-4", 1, 0, NULL, 0, 0},
        {"s5-glu", CLI_FLAG, &c->s5_glu, NULL, "s5: half-GLU output instead of GELU", 1, 0, NULL, 0, 0},
        {"dt-min", CLI_DOUBLE, &c->dt_min, "X", "mamba, s5: smallest initial step (the steps "
         "are drawn log-uniform in [dt-min, dt-max]; the references' dt_min; 0 = 1e-3)", 0, 1,
         NULL, 0, 0},
        {"dt-max", CLI_DOUBLE, &c->dt_max, "X", "mamba, s5: largest initial step (0 = 0.1)", 0,
         10, NULL, 0, 0},
        {"ssm-lr", CLI_DOUBLE, &c->ssm_lr, "X", "s5: learning rate of Lambda, B and log_step "
         "(no weight decay); 0 = --lr", 0, 1e6, NULL, 0, 0},
        {"untie", CLI_FLAG, &c->untie, NULL, "mamba language model: a head matrix of its own "
         "(lm_head.weight) instead of the embedding", 1, 0, NULL, 0, 0},
        {"pool", CLI_STR, &c->pool, "HOW", "classify: the prediction of a sequence from its "
         "last step or from the mean over its steps (needs the whole sequence in one chunk)", 1,
         0, "last|mean", 0, 0},
        {"batch", CLI_INT, &c->batch, "B", "GLOBAL number of streams (sequences per step); each "
         "of N ranks takes B/N", 1, 1 << 20, NULL, 0, 0},
        {"bptt", CLI_INT, &c->bptt, "T", "truncated-BPTT chunk length; sequence tasks: given, "
         "sequences are cut into chunks of T (state carried within a sequence), else each "
         "sequence is one chunk", 1, 1 << 20, NULL, 0, 0},
        {"bptt-step", CLI_INT, &c->bptt_step, "K", "language models: update every K tokens, each "
         "update backpropagating through the last --bptt >= K tokens (Mikolov's -bptt-block "
         "with -bptt); 0 = --bptt", 0, 1 << 20, NULL, 0, 0},
        {"optim", CLI_STR, &c->optim, "NAME", "optimizer", 1, 0, "sgd|adam|adamw|rmsprop", 0, 0},
        {"lr", CLI_DOUBLE, &c->lr, "X", "learning rate", 1e-300, 1e6, NULL, 0, 0},
        {"dropout", CLI_DOUBLE, &c->dropout, "P", "dropout probability after each layer (before "
         "the next layer and the head), inverted, in training only; [0, 1)", 0, 1, NULL, 0, 0},
        {"encoder", CLI_STR, &c->encoder, "L|LIST", "seq2seq: the encoder's layers, as --layers "
         "(a count of --model layers of --hidden units, or KIND:WIDTH,...); default: the same "
         "layers as the decoder", 1, 0, NULL, 0, 0},
        {"bidirectional", CLI_FLAG, &c->bidirectional, NULL, "seq2seq: encoder layers run "
         "forward and reversed, outputs concatenated (the future of a source is known)", 1, 0,
         NULL, 0, 0},
        {"attention", CLI_STR, &c->attention, "KIND", "seq2seq: Luong attention of the decoder "
         "over the encoder's outputs", 1, 0, "none|dot|general", 0, 0},
        {"clip", CLI_DOUBLE, &c->clip, "C", "clip the global gradient norm to C; 0 = off", 0, INF, NULL, 0, 0},
        {"steps", CLI_I64, &c->steps, "N", "updates to run; 0 writes the model as initialised, "
         "loaded or resumed, and stops", 0, 1e15, NULL, 0, 0},
        {"seed", CLI_I64, &c->seed, "S", "random seed", 0, 9e15, NULL, 0, 0},
        {"log", CLI_STR, &c->log, "FILE", "metrics, JSON lines (default OUT/metrics.jsonl)", 1, 0, NULL, 0, 0},
        {"init", CLI_STR, &c->init, "KIND", "initialisation", 1, 0, "pytorch|uniform|orthogonal", 0, 0},
        {"init-scale", CLI_DOUBLE, &c->init_scale, "A", "uniform init: U(-A, A)", 1e-12, 1e6, NULL, 0, 0},
        {"schedule", CLI_STR, &c->schedule, "KIND", "learning-rate schedule", 1, 0,
         "constant|cosine|step", 0, 0},
        {"warmup", CLI_I64, &c->warmup, "N", "linear warm-up steps", 0, 1e15, NULL, 0, 0},
        {"min-lr", CLI_DOUBLE, &c->min_lr, "X", "cosine: final learning rate", 0, 1e6, NULL, 0, 0},
        {"decay-every", CLI_I64, &c->decay_every, "N", "step: decay every N steps", 1, 1e15, NULL, 0, 0},
        {"decay-gamma", CLI_DOUBLE, &c->gamma, "G", "step: multiply lr by G", 1e-12, 1, NULL, 0, 0},
        {"weight-decay", CLI_DOUBLE, &c->weight_decay, "W", "L2 (sgd/adam/rmsprop) or decoupled "
         "(adamw) weight decay", 0, 1e6, NULL, 0, 0},
        {"momentum", CLI_DOUBLE, &c->momentum, "M", "sgd momentum", 0, 0.999999, NULL, 0, 0},
        {"beta1", CLI_DOUBLE, &c->beta1, "B1", "adam beta1", 0, 0.999999, NULL, 0, 0},
        {"beta2", CLI_DOUBLE, &c->beta2, "B2", "adam beta2", 0, 0.99999999, NULL, 0, 0},
        {"eps", CLI_DOUBLE, &c->eps, "E", "adam/rmsprop epsilon", 1e-300, 1, NULL, 0, 0},
        {"rms-alpha", CLI_DOUBLE, &c->rms_alpha, "A", "rmsprop smoothing", 0, 0.999999, NULL, 0, 0},
        {"threads", CLI_INT, &c->threads, "K", "BLAS threads per rank", 1, 256, NULL, 0, 0},
        {"flush-denormals", CLI_FLAG, &c->flush_denormals, NULL, "treat subnormal floats as "
         "zero (x86 FTZ/DAZ): arithmetic on them can cost 10x on some CPUs (long sequences, "
         "decaying states); changes results where one occurs", 1, 0, NULL, 0, 0},
        {"precision", CLI_STR, &c->precision, "P", "inputs of the matrix products: fp32, or bf16 "
         "(rounded to bfloat16, fp32 sums; weights, gradients, optimizer state, checkpoints "
         "and all element-wise work stay fp32; needs AVX512-BF16)", 1, 0, "fp32|bf16", 0, 0},
        {"print-every", CLI_I64, &c->print_every, "N", "progress line every N steps", 1, 1e15, NULL, 0, 0},
        {"eval-every", CLI_I64, &c->eval_every, "N", "validate every N steps; 0 = only at the end", 0, 1e15, NULL, 0, 0},
        {"verify-every", CLI_I64, &c->verify_every, "N", "check every N steps that all ranks hold "
         "bitwise identical parameters; 0 = never", 0, 1e15, NULL, 0, 0},
        {"eval-batch", CLI_INT, &c->eval_batch, "S", "streams (sequences) per validation pass", 1, 1 << 20, NULL, 0, 0},
        {"deterministic", CLI_FLAG, &c->deterministic, NULL, "bitwise identical results on any "
         "number of ranks (same --batch): fixed micro-batches, fixed-point gradient sums", 1, 0, NULL, 0, 0},
        {"micro-batch", CLI_INT, &c->micro_batch, "M", "--deterministic: streams per micro-batch; "
         "must divide batch/ranks", 1, 1 << 20, NULL, 0, 0},
        {"ckpt-dir", CLI_STR, &c->ckpt_dir, "DIR", "checkpoint directory (default OUT/checkpoints)", 1, 0, NULL, 0, 0},
        {"ckpt-every", CLI_I64, &c->ckpt_every, "N", "checkpoint every N steps; 0 = off", 0, 1e15, NULL, 0, 0},
        {"ckpt-minutes", CLI_DOUBLE, &c->ckpt_minutes, "M", "checkpoint every M minutes; 0 = off", 0, 1e9, NULL, 0, 0},
        {"keep", CLI_I64, &c->keep, "K", "keep the K newest checkpoints; 0 = all", 0, 1e9, NULL, 0, 0},
        {"resume", CLI_STR, &c->resume, "auto|PATH", "continue from the newest valid checkpoint "
         "in the checkpoint directory (auto; starts afresh if there is none) or from PATH", 1, 0, NULL, 0, 0},
        {"init-from", CLI_STR, &c->init_from, "MODEL", "start from the weights of a model file, "
         "training directory or checkpoint of the same shape and vocabulary (warm start, "
         "fine-tuning, or weights exported from PyTorch); optimizer state starts afresh; "
         "ignored when --resume finds a checkpoint", 1, 0, NULL, 0, 0},
        {"watchdog", CLI_DOUBLE, &c->watchdog, "S", "with several ranks: a rank waiting more "
         "than S seconds (or 10x the longest step so far, if more) in a collective (another "
         "rank stalled, was stopped or lost its network) names the ranks that do not answer and "
         "exits with status 76, which the SLURM scripts requeue; 0 = off", 0, 1e9, NULL, 0, 0},
        {"max-bad-steps", CLI_I64, &c->max_bad, "K", "after K non-finite steps in a row, roll back "
         "to the last checkpoint with a lower lr", 1, 1e9, NULL, 0, 0},
        {"rollback-lr-factor", CLI_DOUBLE, &c->rollback_factor, "F", "lr multiplier after a "
         "rollback", 1e-6, 1, NULL, 0, 0},
    };
    int n = (int)(sizeof table / sizeof *table);
    if (o) memcpy(o, table, sizeof table);
    return n;
}

/* A count of --model layers of --hidden units, or a KIND:WIDTH list, into *s (L, layer). */
static void parse_stack(const TrainConfig *c, ModelShape *s, const char *text, const char *opt) {
    char *end;
    long L = strtol(text, &end, 10);
    if (*text && *end == 0) {
        if (L < 1 || L > MODEL_MAX_LAYERS)
            cli_bad(opt, "expected an integer in [1, %d] or a KIND:WIDTH list, found '%s'",
                    MODEL_MAX_LAYERS, text);
        model_shape_uniform(s, layer_kind_by_name(c->cell), (int)L, c->hidden);
        return;
    }
    char err[512];
    if (!model_shape_parse_layers(s, text, err, sizeof err)) cli_bad(opt, "%s", err);
}

/* --layers, and --encoder (default: the same layers) */
static void parse_layers(TrainConfig *c) {
    memset(&c->stack, 0, sizeof c->stack);
    parse_stack(c, &c->stack, c->layers, "layers");
    ModelShape e;
    memset(&e, 0, sizeof e);
    parse_stack(c, &e, *c->encoder ? c->encoder : c->layers, "encoder");
    c->stack.enc_L = e.L;
    memcpy(c->stack.enc_layer, e.layer, sizeof e.layer);
    c->stack.bidirectional = c->bidirectional;
    c->stack.attention = attention_by_name(c->attention);
}

/* The state space settings onto every layer of a stack (D0 its input width), checked. */
static void apply_opts(const TrainConfig *c, LayerSpec *layer, int L, int D0, const char *what) {
    for (int k = 0; k < L; k++) {
        LayerOpts *o = &layer[k].opt;
        o->d_state = c->d_state;
        o->d_conv = c->d_conv;
        o->expand = c->expand;
        o->dt_rank = c->dt_rank;
        o->blocks = c->ssm_blocks;
        o->conj_sym = c->no_conj_sym ? 2 : 0;
        o->bilinear = c->bilinear;
        o->clip_eigs = c->clip_eigs;
        o->glu = c->s5_glu;
        char err[512];
        int D = k == 0 ? D0 : layer[k - 1].H * (what[0] == 'e' && c->bidirectional ? 2 : 1);
        if (layer_opts_check(layer[k].kind, o, D, layer[k].H, err, sizeof err))
            rt_die(EXIT_USAGE, "%s %d (%s:%d): %s", what, k, layer[k].kind->name, layer[k].H,
                   err);
    }
}

static void apply_layer_opts(TrainConfig *c) {
    ModelShape *s = &c->stack;
    int E = c->embed ? c->embed : s->layer[0].H;
    apply_opts(c, s->layer, s->L, E, "layer");
    apply_opts(c, s->enc_layer, s->enc_L, E, "encoder layer");
    s->untied = c->untie;
    s->pool_mean = strcmp(c->pool, "mean") == 0;
}

void train_config_parse(TrainConfig *c, int argc, char **argv) {
    train_config_defaults(c);
    CliOption opts[96];
    int n = option_table(c, opts);
    cli_parse("train", "Train a model (language model or sequence task) with truncated BPTT; "
              "data-parallel over MPI ranks.", opts, n, argc, argv);
    for (int i = 0; i < n; i++)
        if (strcmp(opts[i].name, "bptt") == 0) c->bptt_given = opts[i].seen;
    for (int i = 0; i < n; i++) {
        if (strcmp(opts[i].name, "encoder") == 0) c->encoder_given = opts[i].seen;
        if (strcmp(opts[i].name, "attention") == 0) c->attention_given = opts[i].seen;
    }
    train_config_finish(c);
}

LaPrecision config_precision(const char *name) {
    if (strcmp(name, "bf16") != 0) return LA_FP32;
    const char *missing = NULL;
    if (!bf16_supported(&missing))
        cli_bad("precision", "bf16 needs the CPU features avx512f, avx512bw, avx512vl and "
                "avx512_bf16 (AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids and later); "
                "this CPU does not offer %s%s; use --precision fp32", missing,
                getenv("RNNTRAIN_CPU_HIDE") ? " (hidden by RNNTRAIN_CPU_HIDE)" : "");
    return LA_BF16;
}

void train_config_finish(TrainConfig *c) {
    int N = c->ranks = dist_size();
    if (c->batch % N != 0)
        cli_bad("batch", "%d streams cannot be shared evenly by %d ranks (use a multiple of %d)",
                c->batch, N, N);
    if (c->eval_batch % N != 0)
        cli_bad("eval-batch", "%d streams cannot be shared evenly by %d ranks", c->eval_batch, N);
    if (c->bptt_step > c->bptt)
        cli_bad("bptt-step", "%d: an update backpropagates --bptt %d tokens, so it can cover at "
                "most that many new ones (K <= --bptt)", c->bptt_step, c->bptt);
    if (!((float)c->dropout < 1.0f)) /* as the model stores it */
        cli_bad("dropout", "%g: expected a probability in [0, 1) (1 would drop every unit)",
                c->dropout);
    c->B_local = c->batch / N;
    if (c->deterministic && c->B_local % c->micro_batch != 0)
        cli_bad("micro-batch", "%d does not divide the %d streams of each rank (--batch %d over "
                "%d ranks)", c->micro_batch, c->B_local, c->batch, N);
    c->B_micro = c->deterministic ? c->micro_batch : c->B_local;
    config_precision(c->precision);
    parse_layers(c);
    apply_layer_opts(c);
    if (c->embed == 0) c->embed = c->stack.layer[0].H;
    /* paths are built in fixed buffers: refuse what would be cut, instead of cutting it */
    const size_t room = sizeof c->ckpt_path - 40; /* "/checkpoints/ckpt-NNNNNNNNNN.h5" */
    if (strlen(c->out) > room) cli_bad("out", "the path is %zu bytes long, at most %zu", strlen(c->out), room);
    if (c->ckpt_dir && strlen(c->ckpt_dir) > room)
        cli_bad("ckpt-dir", "the path is %zu bytes long, at most %zu", strlen(c->ckpt_dir), room);
    double dt_lo = c->dt_min > 0.0 ? c->dt_min : 1e-3, dt_hi = c->dt_max > 0.0 ? c->dt_max : 0.1;
    if (dt_lo > dt_hi)
        cli_bad(c->dt_min > 0.0 ? "dt-min" : "dt-max", "the initial step range [%g, %g] is empty "
                "(--dt-min must not exceed --dt-max; their defaults are 1e-3 and 0.1)", dt_lo,
                dt_hi);
    if (c->log && strlen(c->log) >= sizeof c->metrics_path)
        cli_bad("log", "the path is %zu bytes long, at most %zu", strlen(c->log),
                sizeof c->metrics_path - 1);
    snprintf(c->ckpt_path, sizeof c->ckpt_path, "%s", c->ckpt_dir ? c->ckpt_dir : "");
    if (!c->ckpt_dir) snprintf(c->ckpt_path, sizeof c->ckpt_path, "%s/checkpoints", c->out);
    snprintf(c->metrics_path, sizeof c->metrics_path, "%s", c->log ? c->log : "");
    if (!c->log) snprintf(c->metrics_path, sizeof c->metrics_path, "%s/metrics.jsonl", c->out);
    CliOption opts[96];
    int n = option_table(c, opts);
    free(c->text);
    c->text = rt_calloc(1, 65536, "configuration");
    cli_format_config(opts, n, c->text, 65536);
}

void train_config_free(TrainConfig *c) {
    free(c->text);
    c->text = NULL;
}
