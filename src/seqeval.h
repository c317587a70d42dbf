/* seqeval: evaluation and prediction for sequence tasks, distributed over ranks (rank r
 * scores sequences [r*n/N, (r+1)*n/N) of a split; the sums are reduced).
 *   classify: accuracy, per-class accuracy, mean cross-entropy
 *   tag:      per-step accuracy, mean cross-entropy
 *   regress:  RMSE and MAE per horizon in the data's units, beside the persistence and
 *             seasonal-naive (period 12) baselines computed on the same windows
 *   generate: MSE, and a nearest-centroid check: each generated sequence is assigned the
 *             class whose mean real (train) sequence is nearest; the accuracy of that
 *             assignment against the conditioning class says whether generation is
 *             class-conditional (chance = 1/classes). */
#ifndef RNNTRAIN_SEQEVAL_H
#define RNNTRAIN_SEQEVAL_H

#include <stdio.h>

#include "model.h"
#include "seq.h"

typedef struct {
    int K, Y;
    double loss_sum, terms, correct, scored, sequences;
    double *class_correct, *class_total;          /* (K) */
    double *se, *ae, *se_persist, *se_seasonal;   /* (Y) */
    double centroid_correct, centroid_total;
} SeqMetrics;

void seq_metrics_init(SeqMetrics *mt, const SeqFile *sf);
void seq_metrics_free(SeqMetrics *mt);
/* Runs the model (B streams, Tmax >= sf->T) over the split. If csv is non-NULL (one rank
 * only), writes one prediction row per sequence. */
void seq_evaluate(Model *m, const SeqFile *sf, int split, SeqMetrics *mt, FILE *csv);
/* Mean loss per term (nats for classes, squared error in normalised units otherwise). */
double seq_metrics_loss(const SeqMetrics *mt);
void seq_metrics_print(const SeqFile *sf, const SeqMetrics *mt, const char *split, int json);
/* Forward pass of a batch from state st (set from the conditioning, or zero; features or
 * tokens). */
void seq_forward(Model *m, ModelState *st, const SeqFile *sf, const SeqBatch *b);

#endif
