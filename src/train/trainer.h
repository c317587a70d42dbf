/* trainer: one training run, callable in-process (cmd_train is its command line; tests
 * drive it directly).
 *
 *   Trainer *t = trainer_init(&config, &callbacks);   data, model, optimizer, resume
 *   while (t->progress.step < config.steps) {
 *       StepResult s = trainer_step(t);                 one update (or a skip, a rollback)
 *       ... trainer_checkpoint(t), trainer_evaluate(t) when due ...
 *   }
 *   trainer_save_model(t, path); trainer_free(t);
 *
 * One step, for every task: each of the G micro-batch readers of this rank reads its batch
 * (lm: the chunk at the cursor of its streams; sequences: its slots of the global batch);
 * the loss is normalised by the global number of loss terms; each batch runs as chunks of
 * chunk_T steps from its streams' state (a view of this rank's state), forward, loss,
 * backward, gradients accumulating; the gradients are summed over ranks (overlapped with
 * backward through the model's grad_ready callback, or, with --deterministic, summed per
 * micro-batch in 64-bit fixed point, which makes the result independent of the rank
 * count); then clip, stability verdict, update; the cursor advances. */
#ifndef RNNTRAIN_TRAINER_H
#define RNNTRAIN_TRAINER_H

#include <stdint.h>

#include "checkpoint.h"
#include "config.h"
#include "metrics.h"
#include "model.h"
#include "optim.h"
#include "report.h"
#include "stability.h"
#include "task.h"

typedef struct {
    /* Called after each step's gradient with its loss, which it may change (tests make it
     * non-finite to exercise skips and rollbacks). May be NULL. */
    void (*after_gradient)(void *ctx, int64_t step, double *loss);
    void *ctx;
} TrainerCallbacks;

typedef struct {
    double loss, grad_norm, lr;
    int updated;     /* 0: skipped (non-finite) */
    int rolled_back; /* the run went back to its last checkpoint */
    int64_t tokens;  /* seq2seq: source and target tokens of the step (all ranks), else 0 */
} StepResult;

typedef struct {
    const TrainConfig *config;
    TrainerCallbacks callbacks;
    Task task;
    Model model, eval_own, *eval_model;
    ModelState state;   /* the carried state of this rank's B_local streams */
    int G;              /* micro-batches (readers) per rank */
    Reader *readers;    /* (G) */
    Batch *batches;     /* (G) */
    int chunk_T;        /* steps per chunk */
    int has_valid;      /* the valid split can be evaluated (sequence splits may be empty) */
    int64_t tokens_per_step, batches_per_epoch, stream_length;
    int64_t *fixed;     /* (params.total) fixed-point gradient sum, deterministic only */
    int64_t *drop_stream; /* (B_local) the global stream of each row (lm dropout keys) */
    /* Language models with --bptt-step K1 < --bptt K2: each update predicts the K1 tokens
     * from progress.cursor on, backpropagating through the window of the K2 (fewer at an
     * epoch's start) tokens before them; the carried state is that at the window's start. */
    int k1;                  /* tokens per update (= chunk_T unless --bptt-step) */
    ModelState window_state; /* (B_local) the state at the window's start, kept over a step */
    int32_t *window_labels;  /* (G, chunk_T, B_micro) targets, the window's first part masked */
    double comm_wait;   /* seconds waiting for gradient sums */
    Optim optim;
    Schedule schedule;
    Progress progress;
    RunShape run_shape;
    Stability stability;
    char *last_ckpt;
} Trainer;

Trainer *trainer_init(const TrainConfig *c, const TrainerCallbacks *cb);
StepResult trainer_step(Trainer *t);
/* Validation on the valid split (collective). */
ValidReport trainer_evaluate(Trainer *t);
/* Collective: a checkpoint of the current step. */
void trainer_checkpoint(Trainer *t);
/* Rank 0 writes the model file. */
void trainer_save_model(Trainer *t, const char *path);
/* Fraction of epochs done. */
double trainer_epoch(const Trainer *t);
void trainer_free(Trainer *t);

#endif
