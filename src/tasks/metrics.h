/* metrics: one evaluation loop for every task, distributed over ranks, and what it
 * measures (the sums are reduced over ranks).
 *   lm:       mean cross-entropy of every in-stream prediction over S carried-state
 *             streams (rank r evaluates streams [r*S/N, (r+1)*S/N)), a short last chunk
 *             included;
 * and for sequence tasks (rank r scores sequences [r*n/N, (r+1)*n/N) of a split):
 *   classify: accuracy, per-class accuracy, mean cross-entropy
 *   tag:      per-step accuracy, mean cross-entropy
 *   regress:  RMSE and MAE per horizon in the data's units, beside the persistence and
 *             seasonal-naive (period 12) baselines computed on the same windows
 *   generate: MSE, and a nearest-centroid check: each generated sequence is assigned the
 *             class whose mean real (train) sequence is nearest; the accuracy of that
 *             assignment against the conditioning class says whether generation is
 *             class-conditional (chance = 1/classes).
 *   seq2seq:  token cross-entropy and accuracy with teacher forcing, and, decoding each
 *             distinct source once (greedy, or beam search with mt->beam > 1): the sequence
 *             error rate (the output equals none of the source's references: G2P's word
 *             error rate) and the token error rate (the edit distance to the nearest
 *             reference over that reference's length, summed over sources: phoneme error
 *             rate). Decoding happens only when mt->decode is set (eval, not validation).
 * The model runs each batch in chunks of its Tmax steps with the state carried, as in
 * training. */
#ifndef RNNTRAIN_METRICS_H
#define RNNTRAIN_METRICS_H

#include <stdio.h>

#include "model.h"
#include "task.h"

typedef struct {
    int K, Y;
    double loss_sum, terms; /* lm: nats and tokens */
    double correct, scored, sequences;
    double *class_correct, *class_total;          /* (K) */
    double *se, *ae, *se_persist, *se_seasonal;   /* (Y) */
    double *n_seasonal; /* (Y) windows with a seasonal-naive value (one feature, 12 back) */
    double centroid_correct, centroid_total;
    double *centroids;      /* generate: (K, T*Y) class means of the real train sequences */
    int32_t *pred;          /* (T,B) predicted class per step of the current batch */
    float *values;          /* (B, T*Y) predicted values of the current batch */
    /* seq2seq decoding (set decode, beam, alpha before task_evaluate) */
    int decode, beam, max_len, split;
    double alpha;
    double words, word_errors, edits, ref_tokens;
    int32_t *ref_labels, *ref_len, *ref_group; /* the split's references */
    FILE *pred_out;         /* predictions, one line per source (predict), or NULL */
} Metrics;

void metrics_init(Metrics *mt, const Task *t);
void metrics_free(Metrics *mt);
/* Runs m (B streams) over split and adds to mt. lm: the split read as dist_size()*B
 * streams; sequences: batches of B. If csv is non-NULL (sequence tasks, one rank), writes one
 * prediction row per sequence and scores the whole split on this rank. */
void task_evaluate(Model *m, Task *t, int split, Metrics *mt, FILE *csv);
/* Mean loss per term (nats for classes, squared error in normalised units otherwise). */
double metrics_loss(const Metrics *mt);
/* Accuracy of classes tasks, else NaN. */
double metrics_accuracy(const Task *t, const Metrics *mt);
/* rnntrain eval's report (rank 0). */
void metrics_print(const Task *t, const Metrics *mt, const char *split, int json);

#endif
