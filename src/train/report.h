/* report: what a training run tells its user, on rank 0: the progress line on stderr and
 * the metrics file (JSON lines, README "Metrics and plots"), both for training spans and
 * validations. Time spent validating is kept out of the training throughput. */
#ifndef RNNTRAIN_REPORT_H
#define RNNTRAIN_REPORT_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *metrics;           /* NULL on ranks other than 0 */
    const char *metrics_path;
    int64_t total_steps, tokens_per_step, first_step, step_mark;
    /* counted tokens (report_tokens; seq2seq: real source and target tokens, not padding):
     * when set, throughput uses them instead of tokens_per_step */
    int64_t tokens, tokens_mark;
    int counted;
    double flops_per_token;  /* executed per token: forward and backward */
    double t_start, t_mark, t_eval, eval_mark, comm_mark;
    double loss_acc;
    int64_t loss_n;
} Report;

/* What one validation measured: nats per token (lm), or the task's loss and accuracy
 * (NaN where it has none) over `count` sequences. */
typedef struct {
    int lm;
    double loss, accuracy, count;
} ValidReport;

/* Opens (appends to) the metrics file on rank 0; dies naming it if it cannot. */
void report_open(Report *r, const char *metrics_path, int64_t first_step, int64_t total_steps,
                 int64_t tokens_per_step, double flops_per_token);
void report_close(Report *r);
/* n tokens processed by the last step (all ranks). */
void report_tokens(Report *r, int64_t n);
/* The loss of an update that was applied (skipped ones are not averaged). */
void report_loss(Report *r, double loss);
/* The progress line and a "train" record for the steps since the last one. */
void report_progress(Report *r, int64_t done, double epoch, double lr, double grad_norm,
                     int64_t skipped, double comm_wait_total);
/* A validation at step done that took `seconds`. */
void report_valid(Report *r, int64_t done, const ValidReport *v, double seconds);

#endif
