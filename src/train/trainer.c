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
        rt_log("ranks %d x %d BLAS threads (%s) | streams %d global, %d per rank, %lld tokens "
               "each | T %d | %lld chunks per epoch%s\n", c->ranks, c->threads, core, c->batch,
               c->B_local, (long long)t->stream_length, t->chunk_T,
               (long long)t->batches_per_epoch, c->deterministic ? " | deterministic" : "");
        return;
    }
    const SeqFile *sf = &task->sf;
    rt_log("rnntrain %s | %s | task %s: %s %d per step, %d outputs%s | %zu parameters\n",
           RNNTRAIN_VERSION, layers, task_name(sf->task),
           sf->float_inputs ? "features" : "vocabulary", sf->float_inputs ? sf->D : sf->vocab,
           s->V, sf->C ? " | conditioned" : "", t->model.params.total);
    rt_log("ranks %d x %d BLAS threads (%s) | %d sequences per batch, %d per rank | T %d in "
           "chunks of %d | %lld batches per epoch%s\n", c->ranks, c->threads, core, c->batch,
           c->B_local, sf->T, t->chunk_T, (long long)t->batches_per_epoch,
           c->deterministic ? " | deterministic" : "");
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
    int T_seq = task_sequence_steps(task);
    t->has_valid = task->lm || task->sf.n[1] > 0;
    t->chunk_T = task->lm || (c->bptt_given && c->bptt < T_seq) ? c->bptt : T_seq;
    if (c->stack.pool_mean && (task->lm || task->kind != TASK_CLASSIFY))
        rt_die(EXIT_USAGE, "--pool mean: pools a classified sequence; the data is a %s task",
               task_label(task));
    if (c->stack.pool_mean && t->chunk_T < T_seq)
        rt_die(EXIT_USAGE, "--pool mean needs each sequence in one chunk: --bptt %d is shorter "
               "than its %d steps (drop --bptt)", c->bptt, T_seq);

    ModelShape shape = c->stack;
    task_model_shape(task, &shape, c->embed);
    Model *m = &t->model;
    model_init(m, shape, c->B_micro, t->chunk_T);
    model_state_init(&t->state, m, c->B_local);
    t->G = c->B_local / c->B_micro;
    t->readers = rt_calloc((size_t)t->G, sizeof *t->readers, "readers");
    t->batches = rt_calloc((size_t)t->G, sizeof *t->batches, "batches");
    for (int g = 0; g < t->G; g++)
        reader_init(&t->readers[g], task, 0, c->batch, rank * c->B_local + g * c->B_micro,
                    c->B_micro, t->chunk_T, 1);
    t->drop_stream = rt_calloc((size_t)c->B_local, sizeof *t->drop_stream, "dropout streams");
    for (int i = 0; i < c->B_local; i++) t->drop_stream[i] = (int64_t)rank * c->B_local + i;
    t->batches_per_epoch = reader_batches_per_epoch(&t->readers[0]);
    t->stream_length = reader_stream_length(&t->readers[0]);
    t->tokens_per_step = (int64_t)c->batch * (task->lm ? t->chunk_T : T_seq);
    if (c->deterministic)
        t->fixed = rt_calloc(m->params.total, sizeof *t->fixed, "fixed-point gradient");
    m->grad_ctx = t;
    if (N > 1 && !c->deterministic) m->hooks.progress = progress_sums;
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
    RunShape rs = {c->batch, t->chunk_T, train_size};
    t->run_shape = rs;
    if (c->resume) {
        t->last_ckpt = ckpt_find(c->ckpt_path, c->resume);
        if (t->last_ckpt) {
            ckpt_load(t->last_ckpt, m, &t->state, &t->optim, &t->progress, &t->run_shape);
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

/* The gradient of one step, summed over ranks into the model's gradient; returns the global
 * mean loss; *bad is set if a gradient is non-finite (or too large for fixed point). */
static double step_gradient(Trainer *t, int *bad) {
    const TrainConfig *c = t->config;
    Model *m = &t->model;
    Params *p = &m->params;
    const Progress *pr = &t->progress;
    double terms = 0.0;
    for (int g = 0; g < t->G; g++) {
        reader_read(&t->readers[g], pr->cursor, pr->epoch, &t->batches[g]);
        terms += batch_terms(&t->task, &t->batches[g]);
    }
    /* lm: every prediction counts, the same number on every rank */
    if (t->task.lm)
        terms *= c->ranks;
    else
        dist_sum_f64(&terms, 1);
    /* For counts below 2^24 this equals 1.0f / (float)terms (1/n has no run of 28 equal
     * bits, so rounding to double first never changes the float). */
    float scale = (float)(1.0 / terms);
    int64_t loss_fixed = 0, flag = 0;
    double loss = 0.0;
    if (c->deterministic) memset(t->fixed, 0, p->total * sizeof(int64_t));
    if (!c->deterministic) params_zero_grad(p);
    for (int g = 0; g < t->G; g++) {
        const Batch *b = &t->batches[g];
        ModelState group;
        model_state_view(&group, &t->state, g * c->B_micro, c->B_micro);
        task_start_state(m, &group, b);
        if (c->deterministic) params_zero_grad(p);
        double group_loss = 0.0;
        for (int t0 = 0; t0 < b->T; t0 += b->chunk_T) {
            int T = b->T - t0 < b->chunk_T ? b->T - t0 : b->chunk_T;
            Batch chunk = batch_chunk(&t->task, b, t0, T);
            ModelDropout drop = {(float)c->dropout, (uint64_t)c->seed, (uint64_t)pr->step,
                                 t->drop_stream + g * c->B_micro,
                                 (t->task.lm ? pr->cursor : 0) + t0};
            model_set_dropout(m, &drop);
            task_forward(m, &group, &chunk);
            group_loss += task_loss(&t->task, m, &chunk, scale, 1);
            int last = g == t->G - 1 && t0 + T >= b->T;
            m->grad_ready = !c->deterministic && c->ranks > 1 && last ? on_grad_ready : NULL;
            model_backward(m, T, NULL);
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
    if ((pr->cursor += t->chunk_T) + t->chunk_T + 1 > t->stream_length) {
        pr->cursor = 0;
        pr->epoch++;
    }
}

StepResult trainer_step(Trainer *t) {
    StepResult r = {0};
    Progress *pr = &t->progress;
    int64_t step = pr->step;
    int bad = 0;
    r.loss = step_gradient(t, &bad);
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
    ckpt_save(c->ckpt_path, (int)c->keep, &t->model, &t->state, &t->optim, &t->progress,
              &t->run_shape, t->task.lm ? &t->task.tf.vocab : NULL, c->text);
    free(t->last_ckpt);
    size_t n = strlen(c->ckpt_path) + 32;
    t->last_ckpt = rt_malloc(n, "path");
    snprintf(t->last_ckpt, n, "%s/ckpt-%010lld.h5", c->ckpt_path, (long long)t->progress.step);
}

void trainer_save_model(Trainer *t, const char *path) {
    if (dist_rank() != 0) return;
    model_io_save(path, &t->model, t->task.lm ? &t->task.tf.vocab : NULL, t->config->text);
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
    free(t->last_ckpt);
    free(t);
}
