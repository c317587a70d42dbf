/* trainer: one training run (see trainer.h). */
#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "dist.h"
#include "linalg.h"
#include "model_io.h"

#define FIXED_GRAD_SCALE 0x1p40 /* gradient resolution 2^-40 */
#define FIXED_GRAD_MAX 0x1p22   /* |micro-batch gradient entry| allowed */
#define FIXED_LOSS_SCALE 0x1p32

static void make_dir(const char *dir, const char *option) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        rt_die(EXIT_RUNTIME, "--%s: cannot create directory '%s': %s", option, dir,
               strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        rt_die(EXIT_USAGE, "--%s: '%s' exists and is not a directory", option, dir);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void on_grad_ready(void *ctx, size_t offset, size_t count) {
    Trainer *t = ctx;
    dist_isum_f32(t->model.params.grad + offset, count);
}

/* Lets the gradient sums of finished layers advance during a layer's backward loop. */
static void progress_sums(void *ctx) {
    (void)ctx;
    dist_progress();
}

static InitKind init_kind(const char *name) {
    return strcmp(name, "uniform") == 0      ? INIT_UNIFORM
           : strcmp(name, "orthogonal") == 0 ? INIT_ORTHOGONAL
                                             : INIT_PYTORCH;
}

static void banner(const Trainer *t) {
    const TrainConfig *c = t->config;
    const Task *task = &t->task;
    const ModelShape *s = &t->model.shape;
    char layers[MODEL_IO_STACK_MAX], core[256];
    model_shape_layers_text(s, layers, sizeof layers);
    la_core_text(core, sizeof core);
    if (task->lm) {
        rt_log("rnntrain %s | %s embed %d vocab %d (%s) | %zu parameters\n", RNNTRAIN_VERSION,
               layers, s->E, task->tf.vocab.V, vocab_kind_name(task->tf.vocab.kind),
               t->model.params.total);
        rt_log("ranks %d x %d BLAS threads (%s) | %s products | streams %d global, %d per rank, "
               "%lld tokens each | T %d | %lld chunks per epoch%s\n", c->ranks, c->threads, core,
               la_precision() == LA_BF16 ? "bf16 (AVX512-BF16)" : "fp32", c->batch,
               c->B_local, (long long)t->stream_length, t->chunk_T,
               (long long)t->batches_per_epoch, c->deterministic ? " | deterministic" : "");
        if (t->k1 != t->chunk_T)
            rt_log("--bptt-step %d: an update every %d tokens, each through the last %d "
                   "(%lld updates per epoch)\n", t->k1, t->k1, t->chunk_T,
                   (long long)((t->stream_length - 1) / t->k1));
        return;
    }
    const SeqFile *sf = &task->sf;
    char extra[MODEL_IO_STACK_MAX + 128] = "";
    if (s->enc_L > 0) {
        char enc[MODEL_IO_STACK_MAX];
        model_shape_stack_text(s->enc_layer, s->enc_L, enc, sizeof enc);
        snprintf(extra, sizeof extra, " | encoder %s%s over %d source symbols (up to %d) | "
                 "attention %s", enc, s->bidirectional ? " bidirectional" : "", s->enc_vocab,
                 sf->S, attention_name((AttentionKind)s->attention));
    } else if (s->bidirectional) {
        snprintf(extra, sizeof extra, " | bidirectional");
    } else if (sf->C) {
        snprintf(extra, sizeof extra, " | conditioned");
    }
    rt_log("rnntrain %s | %s | task %s: %s %d per step, %d outputs%s | %zu parameters\n",
           RNNTRAIN_VERSION, layers, task_name(sf->task),
           sf->float_inputs ? "features" : "vocabulary", sf->float_inputs ? sf->D : sf->vocab,
           s->V, extra, t->model.params.total);
    rt_log("ranks %d x %d BLAS threads (%s) | %s products | %d sequences per batch, %d per rank "
           "| T %d in chunks of %d | %lld batches per epoch%s\n", c->ranks, c->threads, core,
           la_precision() == LA_BF16 ? "bf16 (AVX512-BF16)" : "fp32", c->batch,
           c->B_local, sf->T, t->chunk_T, (long long)t->batches_per_epoch,
           c->deterministic ? " | deterministic" : "");
}

/* The encoder options against the data: each a clear error where it cannot apply. */
static void check_seq2seq_options(const TrainConfig *c, const Task *task, int chunk_T) {
    int seq2seq = !task->lm && task->kind == TASK_SEQ2SEQ;
    int token_source = seq2seq && task->sf.S > 0;
    if (c->bidirectional && task->lm)
        rt_die(EXIT_USAGE, "--bidirectional: a language model predicts each token from the ones "
               "before it, over streams carried across chunks: the future is not available "
               "(bidirectional layers are for encoders)");
    int reads_whole = !task->lm && (task->kind == TASK_CLASSIFY || task->kind == TASK_TAG ||
                                    task->kind == TASK_REGRESS);
    if (c->bidirectional && !token_source && !reads_whole)
        rt_die(EXIT_USAGE, "--bidirectional: applies to encoders (seq2seq with a token source) "
               "and to classify, tag and regress; the data is a %s task%s, whose outputs are "
               "generated left to right: their future is not available", task_label(task),
               seq2seq ? " with a vector source" : "");
    if (c->bidirectional && reads_whole && chunk_T < task->sf.T)
        rt_die(EXIT_USAGE, "--bidirectional needs each sequence in one chunk (the reverse pass "
               "starts at its end): --bptt %d is shorter than its %d steps (drop --bptt)",
               c->bptt, task->sf.T);
    if (c->bidirectional && reads_whole && task->sf.C > 0)
        rt_die(EXIT_USAGE, "--bidirectional: data file '%s' conditions the initial states (cond), "
               "which a reverse pass does not start from; train without --bidirectional",
               task->path);
    if ((c->encoder_given || c->attention_given) && !token_source)
        rt_die(EXIT_USAGE, "--%s: applies to seq2seq data with a token source (an encoder over "
               "it); the data is a %s task%s", c->encoder_given ? "encoder" : "attention",
               task_label(task), seq2seq ? " with a vector source (captioning)" : "");
    if (!seq2seq) return;
    if (chunk_T < task->sf.T)
        rt_die(EXIT_USAGE, "--bptt %d: seq2seq trains each target whole (the decoder starts from "
               "the encoder's hand-over), and targets here have up to %d steps: drop --bptt",
               c->bptt, task->sf.T);
    if (token_source && c->stack.attention == ATTENTION_DOT) {
        int He = model_shape_encoder_width(&c->stack), Hd = model_top_width(&c->stack);
        if (He != Hd)
            rt_die(EXIT_USAGE, "--attention dot: the encoder's outputs have %d values and the "
                   "decoder's %d; dot scores need equal widths (use --attention general)", He, Hd);
    }
}

Trainer *trainer_init(const TrainConfig *c, const TrainerCallbacks *cb) {
    Trainer *t = rt_calloc(1, sizeof *t, "trainer");
    t->config = c;
    if (cb) t->callbacks = *cb;
    int N = c->ranks, rank = dist_rank();
    if (!dist_all_equal_u64(fnv1a(c->text)))
        rt_die(EXIT_USAGE, "the ranks were started with different options; every rank must get "
               "the same command line");
    la_setup(c->threads);
    la_set_precision(config_precision(c->precision));
    la_set_blas_serial(c->deterministic);
    if (c->flush_denormals) la_flush_denormals();
    if (rank == 0) {
        make_dir(c->out, "out");
        make_dir(c->ckpt_path, c->ckpt_dir ? "ckpt-dir" : "out");
        ckpt_remove_stale(c->ckpt_path);
    }
    dist_barrier();

    Task *task = &t->task;
    task_open(task, c->data, (uint64_t)c->seed);
    int64_t train_size = task_train_size(task);
    if (!task->lm && train_size < c->batch)
        rt_die(EXIT_INPUT, "data file '%s': the train split has %lld sequences, fewer than "
               "--batch %d", c->data, (long long)train_size, c->batch);
    if (!dist_all_equal_u64((uint64_t)train_size ^ fnv1a(c->data)))
        rt_die(EXIT_USAGE, "--data: the ranks opened different data files");
    if (task->lm && !dist_all_equal_u64(task->tf.tokens_hash)) /* same path, other contents */
        rt_die(EXIT_INPUT, "--data: the ranks read different tokens from '%s' (checksum "
               "%016llx on rank %d): each node has its own copy, and they differ", c->data,
               (unsigned long long)task->tf.tokens_hash, rank);
    if (!task->lm && !dist_all_equal_u64(task->sf.content_hash))
        rt_die(EXIT_INPUT, "--data: the ranks read different sequences from '%s' (checksum "
               "%016llx on rank %d): each node has its own copy, and they differ", c->data,
               (unsigned long long)task->sf.content_hash, rank);
    int T_seq = task_sequence_steps(task);
    t->has_valid = task->lm || task->sf.n[1] > 0;
    t->chunk_T = task->lm || (c->bptt_given && c->bptt < T_seq) ? c->bptt : T_seq;
    if (c->stack.pool_mean && (task->lm || task->kind != TASK_CLASSIFY))
        rt_die(EXIT_USAGE, "--pool mean: pools a classified sequence; the data is a %s task",
               task_label(task));
    check_seq2seq_options(c, task, t->chunk_T);
    if (c->stack.pool_mean && t->chunk_T < T_seq)
        rt_die(EXIT_USAGE, "--pool mean needs each sequence in one chunk: --bptt %d is shorter "
               "than its %d steps (drop --bptt)", c->bptt, T_seq);

    /* The data readers before the model: a split too short for the streams and --bptt (or
     * the validation split for --eval-batch streams) is that error, found now, not "out of
     * memory" for a model sized by a huge --bptt, nor at the first validation hours later. */
    t->G = c->B_local / c->B_micro;
    t->readers = rt_calloc((size_t)t->G, sizeof *t->readers, "readers");
    t->batches = rt_calloc((size_t)t->G, sizeof *t->batches, "batches");
    for (int g = 0; g < t->G; g++)
        reader_init(&t->readers[g], task, 0, c->batch, rank * c->B_local + g * c->B_micro,
                    c->B_micro, t->chunk_T, 1);
    if (task->lm) {
        Reader probe;
        int Be = c->eval_batch / N;
        reader_init(&probe, task, 1, c->eval_batch, rank * Be, Be, t->chunk_T, 0);
        reader_free(&probe);
    }
    ModelShape shape = c->stack;
    task_model_shape(task, &shape, c->embed);
    Model *m = &t->model;
    model_init(m, shape, c->B_micro, t->chunk_T);
    model_state_init(&t->state, m, c->B_local);
    t->drop_stream = rt_calloc((size_t)c->B_local, sizeof *t->drop_stream, "dropout streams");
    for (int i = 0; i < c->B_local; i++) t->drop_stream[i] = (int64_t)rank * c->B_local + i;
    t->batches_per_epoch = reader_batches_per_epoch(&t->readers[0]);
    t->stream_length = reader_stream_length(&t->readers[0]);
    t->k1 = c->bptt_step ? c->bptt_step : t->chunk_T;
    if (c->bptt_step && !task->lm)
        rt_die(EXIT_USAGE, "--bptt-step: updates every K tokens of a language model's streams; "
               "the data is a %s task (use --bptt)", task_label(task));
    if (t->k1 != t->chunk_T) {
        model_state_init(&t->window_state, m, c->B_local);
        t->window_labels = rt_calloc((size_t)t->chunk_T * c->B_local, sizeof(int32_t),
                                     "window targets");
    }
    t->tokens_per_step = (int64_t)c->batch * (task->lm ? t->k1 : T_seq);
    if (c->deterministic)
        t->fixed = rt_calloc(m->params.total, sizeof *t->fixed, "fixed-point gradient");
    m->grad_ctx = t;
    if (N > 1 && !c->deterministic) m->hooks.progress = progress_sums;
    if (init_kind(c->init) == INIT_UNIFORM)
        for (int k = 0; k < shape.L; k++)
            if (shape.layer[k].kind == &layer_s5)
                rt_die(EXIT_USAGE, "--init uniform: layer %d is s5, whose Lambda_re would be "
                       "positive for about half the modes (a growing state); S5 has its own "
                       "HiPPO-N initialisation: use --init pytorch", k);
    m->init_dt_min = c->dt_min;
    m->init_dt_max = c->dt_max;
    model_init_weights(m, init_kind(c->init), (float)c->init_scale, (uint64_t)c->seed);
    dist_bcast_f32(m->params.value, m->params.total);
    /* Validation runs on the training model itself (its state is separate) when it has as
     * many streams per rank; otherwise on a second model over the same parameters. */
    t->eval_model = m;
    if (c->eval_batch / N != c->B_micro) {
        model_init_shared(&t->eval_own, m, c->eval_batch / N, t->chunk_T);
        t->eval_model = &t->eval_own;
    }

    optim_defaults(&t->optim, (OptimKind)optim_kind_by_name(c->optim));
    t->optim.momentum = c->momentum;
    t->optim.beta1 = c->beta1;
    t->optim.beta2 = c->beta2;
    t->optim.eps = c->eps;
    t->optim.alpha = c->rms_alpha;
    t->optim.weight_decay = c->weight_decay;
    t->optim.ssm_lr_scale = c->ssm_lr > 0.0 ? c->ssm_lr / c->lr : 0.0;
    Schedule sched = {(SchedKind)sched_kind_by_name(c->schedule), c->lr, c->min_lr, c->warmup,
                      c->steps, c->decay_every, c->gamma};
    t->schedule = sched;
    Progress prog = {0, 0, 0, 0, 1.0};
    t->progress = prog;
    RunShape rs = {c->batch, t->chunk_T, t->k1, train_size};
    t->run_shape = rs;
    if (!c->resume) { /* a fresh run: another run's checkpoints would be overwritten, and
                         --keep or a later --resume auto would mix the two runs */
        char newest[512] = "";
        int64_t n = rank == 0 ? ckpt_count(c->ckpt_path, newest, sizeof newest) : 0;
        dist_bcast_bytes(&n, sizeof n);
        dist_bcast_bytes(newest, sizeof newest);
        if (n > 0)
            rt_die(EXIT_USAGE, "--%s: '%s' already holds %lld checkpoint%s of a run (newest %s); "
                   "continue it with --resume auto, or give this run another --out or "
                   "--ckpt-dir (or remove them)", c->ckpt_dir ? "ckpt-dir" : "out", c->ckpt_path,
                   (long long)n, n == 1 ? "" : "s", newest);
    }
    if (c->resume) {
        t->last_ckpt = ckpt_find(c->ckpt_path, c->resume);
        if (t->last_ckpt && strcmp(c->resume, "auto") == 0) /* the same run's? */
            for (int i = 0; i < 2; i++) {
                const char *key = i ? "seed" : "data";
                char was[4200], now[4200];
                ckpt_config_value(t->last_ckpt, key, was, sizeof was);
                config_value(c->text, key, now, sizeof now);
                /* the data by its file name: a moved file is still the run's */
                const char *wb = i ? was : strrchr(was, '/') ? strrchr(was, '/') + 1 : was;
                const char *nb = i ? now : strrchr(now, '/') ? strrchr(now, '/') + 1 : now;
                if (*was && strcmp(wb, nb) != 0)
                    rt_die(EXIT_USAGE, "--resume auto: '%s' was written by a run with %s=%s, this "
                           "run has %s=%s: it is another run's checkpoint (give this run another "
                           "--out or --ckpt-dir, or --resume PATH to continue from it on "
                           "purpose)", t->last_ckpt, key, was, key, now);
            }
        if (t->last_ckpt) {
            ckpt_load(t->last_ckpt, m, &t->state, &t->optim, &t->progress, &t->run_shape);
            int64_t cur = t->progress.cursor;
            if (task->lm ? cur % t->k1 != 0 || cur + t->k1 + 1 > t->stream_length
                         : cur >= t->batches_per_epoch)
                rt_die(EXIT_INPUT, "checkpoint '%s': cursor %lld is not a position of this run's "
                       "epoch (%s %lld)", t->last_ckpt, (long long)cur,
                       task->lm ? "streams of" : "batches:",
                       (long long)(task->lm ? t->stream_length : t->batches_per_epoch));
            rt_log("resumed from %s: step %lld, epoch %lld\n", t->last_ckpt,
                   (long long)t->progress.step, (long long)t->progress.epoch);
        } else {
            rt_log("no checkpoint in %s: starting afresh\n", c->ckpt_path);
        }
    }
    if (c->init_from && !t->last_ckpt) {
        /* every rank reads the (small) file: an error stops all of them the same way */
        model_io_load_weights(c->init_from, m, task->lm ? &task->tf.vocab : NULL);
        rt_log("initial weights from %s\n", c->init_from);
    }
    stability_init(&t->stability, c->max_bad, c->rollback_factor, t->progress.skipped);
    banner(t);
    return t;
}

/* --bptt-step: the start of the window of the update predicting from cursor on. */
static int64_t window_start(const Trainer *t, int64_t cursor) {
    int64_t ws = cursor + t->k1 - t->chunk_T;
    return ws > 0 ? ws : 0;
}

/* --bptt-step: b (read at the window's start) cut to the window's len tokens, the targets
 * before its last k1 masked (no loss: they were predicted by earlier updates). */
static void window_batch(Trainer *t, int g, Batch *b, int len) {
    REQUIRE(len >= t->k1 && len <= b->T && b->labels);
    size_t masked = (size_t)(len - t->k1) * b->B, rows = (size_t)len * b->B;
    int32_t *labels = t->window_labels + (size_t)g * t->chunk_T * b->B; /* the group's own */
    for (size_t i = 0; i < rows; i++) labels[i] = i < masked ? -1 : b->labels[i];
    b->labels = labels;
    b->T = b->chunk_T = len;
}

/* The dropout of micro-batch g's chunk starting at stream position pos0. Keys: the global
 * stream (lm) or the sequence's number in the split (not its slot: the slots of a batch are
 * sorted per reader, which depends on the rank count). */
static ModelDropout step_dropout(const Trainer *t, int g, const Batch *b, int64_t pos0) {
    const TrainConfig *c = t->config;
    ModelDropout d = {(float)c->dropout, (uint64_t)c->seed, (uint64_t)t->progress.step,
                      t->task.lm ? t->drop_stream + g * c->B_micro : b->seq->index, pos0};
    return d;
}

/* The gradient of one step, summed over ranks into the model's gradient; returns the global
 * mean loss; *bad is set if a gradient is non-finite (or too large for fixed point). */
static double step_gradient(Trainer *t, int *bad, int64_t *tokens) {
    const TrainConfig *c = t->config;
    Model *m = &t->model;
    Params *p = &m->params;
    const Progress *pr = &t->progress;
    double terms = 0.0;
    int windowed = t->k1 != t->chunk_T;
    int64_t ws = windowed ? window_start(t, pr->cursor) : pr->cursor;
    for (int g = 0; g < t->G; g++) {
        reader_read(&t->readers[g], ws, pr->epoch, &t->batches[g]);
        if (windowed) window_batch(t, g, &t->batches[g], (int)(pr->cursor + t->k1 - ws));
        terms += windowed ? (double)t->k1 * t->batches[g].B : batch_terms(&t->task, &t->batches[g]);
    }
    /* lm: every prediction counts, the same number on every rank */
    double sums[2] = {terms, 0.0};
    if (!t->task.lm && t->task.kind == TASK_SEQ2SEQ) /* real tokens, for the throughput */
        for (int g = 0; g < t->G; g++) {
            const SeqBatch *sb = t->batches[g].seq;
            for (int i = 0; i < t->batches[g].count; i++)
                sums[1] += sb->len[i] + (t->task.sf.S > 0 ? sb->src_len[i] : 0);
        }
    if (t->task.lm)
        terms *= c->ranks;
    else
        dist_sum_f64(sums, 2);
    if (!t->task.lm) terms = sums[0];
    *tokens = (int64_t)sums[1];
    /* For counts below 2^24 this equals 1.0f / (float)terms (1/n has no run of 28 equal
     * bits, so rounding to double first never changes the float). */
    float scale = (float)(1.0 / terms);
    int64_t loss_fixed = 0, flag = 0;
    double loss = 0.0;
    if (c->deterministic) memset(t->fixed, 0, p->total * sizeof(int64_t));
    if (!c->deterministic) params_zero_grad(p);
    for (int g = 0; g < t->G; g++) {
        const Batch *b = &t->batches[g];
        ModelState group, kept;
        model_state_view(&group, &t->state, g * c->B_micro, c->B_micro);
        /* the first chunk's dropout (set again below) also covers a seq2seq encoder,
         * which runs here */
        ModelDropout drop = step_dropout(t, g, b, t->task.lm ? ws : 0);
        model_set_dropout(m, &drop);
        task_start_state(m, &group, b);
        if (windowed) {
            model_state_view(&kept, &t->window_state, g * c->B_micro, c->B_micro);
            model_state_copy(&kept, &group);
        }
        if (c->deterministic) params_zero_grad(p);
        double group_loss = 0.0;
        for (int t0 = 0; t0 < b->T; t0 += b->chunk_T) {
            int T = b->T - t0 < b->chunk_T ? b->T - t0 : b->chunk_T;
            Batch chunk = batch_chunk(&t->task, b, t0, T);
            drop = step_dropout(t, g, b, (t->task.lm ? ws : 0) + t0);
            model_set_dropout(m, &drop);
            task_forward(m, &group, &chunk);
            group_loss += task_loss(&t->task, m, &chunk, scale, 1);
            int last = g == t->G - 1 && t0 + T >= b->T;
            m->grad_ready = !c->deterministic && c->ranks > 1 && last ? on_grad_ready : NULL;
            model_backward(m, T, NULL);
        }
        if (windowed) { /* the state at the next window's start, from this one's: the
                           * window's first steps again, with the same dropout masks, so
                           * it is the state the training forward passed through */
            int adv = (int)(window_start(t, pr->cursor + t->k1) - ws);
            model_state_copy(&group, &kept);
            if (adv > 0) {
                Batch lead = batch_chunk(&t->task, b, 0, adv);
                task_forward(m, &group, &lead);
            }
        }
        model_set_dropout(m, NULL); /* training only: validation shares the model */
        if (!c->deterministic) {
            loss += group_loss;
            continue;
        }
        loss_fixed += llround(group_loss * FIXED_LOSS_SCALE);
        for (size_t i = 0; i < p->total; i++) {
            float v = p->grad[i];
            if (!(fabsf(v) <= (float)FIXED_GRAD_MAX)) { /* also catches NaN */
                flag = 1;
                continue;
            }
            t->fixed[i] += llrint((double)v * FIXED_GRAD_SCALE);
        }
    }
    double t0 = rt_seconds();
    if (c->deterministic) {
        dist_sum_i64(t->fixed, p->total);
        dist_sum_i64(&loss_fixed, 1);
        dist_max_i64(&flag, 1);
        for (size_t i = 0; i < p->total; i++)
            p->grad[i] = (float)((double)t->fixed[i] / FIXED_GRAD_SCALE);
        loss = (double)loss_fixed / FIXED_LOSS_SCALE;
    } else {
        dist_sum_f64(&loss, 1);
        dist_wait_all();
    }
    t->comm_wait += rt_seconds() - t0;
    *bad = flag != 0;
    return loss / terms;
}

/* The next batch position; at an epoch's end the streams restart from their beginning (lm:
 * the batch at cursor 0 resets their state). */
static void advance(Trainer *t) {
    Progress *pr = &t->progress;
    if (!t->task.lm) {
        if (++pr->cursor >= t->batches_per_epoch) {
            pr->cursor = 0;
            pr->epoch++;
        }
        return;
    }
    if ((pr->cursor += t->k1) + t->k1 + 1 > t->stream_length) {
        pr->cursor = 0;
        pr->epoch++;
    }
}

StepResult trainer_step(Trainer *t) {
    StepResult r = {0};
    Progress *pr = &t->progress;
    int64_t step = pr->step;
    int bad = 0;
    r.loss = step_gradient(t, &bad, &r.tokens);
    if (t->callbacks.after_gradient) t->callbacks.after_gradient(t->callbacks.ctx, step, &r.loss);
    r.grad_norm = optim_clip(&t->model.params, t->config->clip);
    r.lr = sched_lr(&t->schedule, step) * pr->lr_scale;
    int finite = isfinite(r.loss) && isfinite(r.grad_norm) && !bad;
    switch (stability_judge(&t->stability, finite, step, t->last_ckpt != NULL)) {
    case STEP_UPDATE:
        optim_step(&t->optim, &t->model.params, r.lr);
        r.updated = 1;
        break;
    case STEP_SKIP:
        break;
    case STEP_ROLLBACK: {
        double lr_scale = pr->lr_scale * t->stability.factor;
        ckpt_load(t->last_ckpt, &t->model, &t->state, &t->optim, pr, &t->run_shape);
        pr->lr_scale = lr_scale;
        pr->skipped = t->stability.skipped;
        stability_rolled_back(&t->stability);
        rt_log("rolled back to %s (step %lld); learning rate now x%g\n", t->last_ckpt,
               (long long)pr->step, pr->lr_scale);
        r.rolled_back = 1;
        return r;
    }
    }
    advance(t);
    pr->step = step + 1;
    pr->skipped = t->stability.skipped;
    return r;
}

ValidReport trainer_evaluate(Trainer *t) {
    Metrics mt;
    metrics_init(&mt, &t->task);
    task_evaluate(t->eval_model, &t->task, 1, &mt, NULL);
    ValidReport v = {t->task.lm, metrics_loss(&mt), metrics_accuracy(&t->task, &mt),
                     t->task.lm ? mt.terms : mt.sequences};
    metrics_free(&mt);
    return v;
}

void trainer_checkpoint(Trainer *t) {
    const TrainConfig *c = t->config;
    /* the data the run reads is the data it opened: a file replaced or rewritten under a
     * running job would mix two datasets in one model */
    int64_t changed = t->task.lm && data_changed(&t->task.tf);
    dist_max_i64(&changed, 1);
    if (changed)
        rt_die(EXIT_INPUT, "--data: '%s' changed while the run was reading it (size, time or "
               "inode differ from when it was opened); the last checkpoint is %s", c->data,
               t->last_ckpt ? t->last_ckpt : "none");
    ckpt_save(c->ckpt_path, (int)c->keep, &t->model, &t->state, &t->optim, &t->progress,
              &t->run_shape, t->task.lm ? &t->task.tf.vocab : NULL, c->text);
    free(t->last_ckpt);
    size_t n = strlen(c->ckpt_path) + 32;
    t->last_ckpt = rt_malloc(n, "path");
    snprintf(t->last_ckpt, n, "%s/ckpt-%010lld.h5", c->ckpt_path, (long long)t->progress.step);
}

void trainer_save_model(Trainer *t, const char *path) {
    if (dist_rank() != 0) return;
    model_io_save(path, &t->model, t->task.lm ? &t->task.tf.vocab : NULL,
                  t->task.lm ? NULL : &t->task.sf, t->config->text);
}

double trainer_epoch(const Trainer *t) {
    const Progress *pr = &t->progress;
    return (double)pr->epoch + (t->task.lm ? (double)pr->cursor / (double)(t->stream_length - 1)
                                           : (double)pr->cursor / (double)t->batches_per_epoch);
}

void trainer_free(Trainer *t) {
    for (int g = 0; g < t->G; g++) reader_free(&t->readers[g]);
    free(t->readers);
    free(t->batches);
    if (t->eval_model != &t->model) model_free(&t->eval_own);
    model_state_free(&t->state);
    model_free(&t->model);
    task_close(&t->task);
    free(t->fixed);
    free(t->drop_stream);
    free(t->window_labels);
    if (t->k1 != t->chunk_T) model_state_free(&t->window_state);
    free(t->last_ckpt);
    free(t);
}
