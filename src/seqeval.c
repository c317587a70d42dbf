#include "seqeval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"

void seq_metrics_init(SeqMetrics *mt, const SeqFile *sf) {
    memset(mt, 0, sizeof *mt);
    mt->K = sf->task == TASK_CLASSIFY || sf->task == TASK_TAG ? sf->K : sf->C;
    mt->Y = sf->Y > 0 ? sf->Y : 1;
    mt->class_correct = rt_calloc((size_t)(mt->K ? mt->K : 1), sizeof(double), "metrics");
    mt->class_total = rt_calloc((size_t)(mt->K ? mt->K : 1), sizeof(double), "metrics");
    mt->se = rt_calloc((size_t)mt->Y, sizeof(double), "metrics");
    mt->ae = rt_calloc((size_t)mt->Y, sizeof(double), "metrics");
    mt->se_persist = rt_calloc((size_t)mt->Y, sizeof(double), "metrics");
    mt->se_seasonal = rt_calloc((size_t)mt->Y, sizeof(double), "metrics");
}

void seq_metrics_free(SeqMetrics *mt) {
    free(mt->class_correct);
    free(mt->class_total);
    free(mt->se);
    free(mt->ae);
    free(mt->se_persist);
    free(mt->se_seasonal);
    memset(mt, 0, sizeof *mt);
}

void seq_forward(Model *m, ModelState *st, const SeqFile *sf, const SeqBatch *b) {
    if (sf->C > 0)
        model_set_condition(m, st, b->cond);
    else
        model_state_zero(st);
    if (sf->float_inputs)
        model_forward_features(m, st, b->x, sf->T);
    else
        model_forward(m, st, b->tok, sf->T);
}

/* Class centroids of the real train sequences (generate): (K, T*Y). */
static double *train_centroids(Model *m, const SeqFile *sf) {
    int K = sf->C, TY = sf->T * sf->Y;
    double *cent = rt_calloc((size_t)K * TY, sizeof(double), "centroids");
    double *count = rt_calloc((size_t)K, sizeof(double), "centroids");
    SeqBatch b;
    seq_batch_init(&b, sf, m->B);
    int64_t *idx = rt_malloc((size_t)m->B * sizeof *idx, "index");
    for (int64_t start = 0; start < sf->n[0]; start += m->B) {
        int cnt = (int)(sf->n[0] - start < m->B ? sf->n[0] - start : m->B);
        for (int i = 0; i < cnt; i++) idx[i] = start + i;
        seq_read(sf, 0, idx, cnt, &b);
        for (int i = 0; i < cnt; i++) {
            int k = b.label1[i];
            count[k] += 1.0;
            for (int t = 0; t < sf->T; t++)
                for (int y = 0; y < sf->Y; y++)
                    cent[(size_t)k * TY + t * sf->Y + y] +=
                        b.targets[((size_t)t * b.B + i) * sf->Y + y];
        }
    }
    for (int k = 0; k < K; k++)
        for (int j = 0; j < TY; j++) cent[(size_t)k * TY + j] /= count[k] > 0 ? count[k] : 1.0;
    free(idx);
    free(count);
    seq_batch_free(&b);
    return cent;
}

void seq_evaluate(Model *m, const SeqFile *sf, int split, SeqMetrics *mt, FILE *csv) {
    int N = csv ? 1 : dist_size(), r = csv ? 0 : dist_rank(), B = m->B, T = sf->T;
    int64_t n = sf->n[split], lo = n * r / N, hi = n * (r + 1) / N;
    int V = m->shape.V;
    SeqBatch b;
    seq_batch_init(&b, sf, B);
    int64_t *idx = rt_malloc((size_t)B * sizeof *idx, "index");
    double *cent = sf->task == TASK_GENERATE ? train_centroids(m, sf) : NULL;
    ModelState st;
    model_state_init(&st, m, B);
    double mean = sf->norm_mean, sd = sf->norm_std;
    for (int64_t start = lo; start < hi; start += B) {
        int cnt = (int)(hi - start < B ? hi - start : B);
        for (int i = 0; i < cnt; i++) idx[i] = start + i;
        seq_read(sf, split, idx, cnt, &b);
        seq_forward(m, &st, sf, &b);
        /* scores before the loss overwrites nothing (grad = 0) */
        int classes = sf->task == TASK_CLASSIFY || sf->task == TASK_TAG;
        mt->loss_sum += classes ? model_loss(m, b.labels, T, 0.0f, 0)
                                : model_loss_mse(m, b.targets, b.weights, T, 0.0f, 0);
        mt->terms += seq_batch_terms(sf, &b);
        for (int i = 0; i < cnt; i++) {
            mt->sequences += 1.0;
            int len = b.len[i];
            if (csv) fprintf(csv, "%lld", (long long)b.index[i]);
            if (classes) {
                for (int t = 0; t < T; t++) {
                    int32_t y = b.labels[(size_t)t * B + i];
                    if (y < 0) continue;
                    const float *z = m->logits + ((size_t)t * B + i) * V;
                    int best = 0;
                    for (int v = 1; v < V; v++) best = z[v] > z[best] ? v : best;
                    mt->scored += 1.0;
                    mt->correct += best == y;
                    mt->class_total[y] += 1.0;
                    mt->class_correct[y] += best == y;
                    if (csv) fprintf(csv, ",%d,%d", y, best);
                }
            } else if (sf->task == TASK_REGRESS) {
                const float *z = m->logits + ((size_t)(len - 1) * B + i) * V;
                const float *y = b.targets + ((size_t)(len - 1) * B + i) * V;
                float last = b.x[((size_t)(len - 1) * B + i) * b.D];
                for (int h = 0; h < V; h++) {
                    double pred = z[h] * sd + mean, truth = y[h] * sd + mean;
                    double persist = last * sd + mean;
                    mt->se[h] += (pred - truth) * (pred - truth);
                    mt->ae[h] += fabs(pred - truth);
                    mt->se_persist[h] += (persist - truth) * (persist - truth);
                    /* seasonal naive, period 12: the value 12 months before the target */
                    int pos = len - 12 + h; /* input index of y[t+h+1-12] */
                    if (h < 12 && pos >= 0 && b.D == 1) {
                        double seas = b.x[((size_t)pos * B + i)] * sd + mean;
                        mt->se_seasonal[h] += (seas - truth) * (seas - truth);
                    }
                    if (csv) fprintf(csv, ",%.6g,%.6g", pred, truth);
                }
                mt->scored += 1.0;
            } else { /* generate */
                int TY = T * V, best = 0;
                double bestd = INFINITY;
                for (int k = 0; k < sf->C; k++) {
                    double d = 0.0;
                    for (int t = 0; t < T; t++)
                        for (int y = 0; y < V; y++) {
                            double diff = m->logits[((size_t)t * B + i) * V + y] -
                                          cent[(size_t)k * TY + t * V + y];
                            d += diff * diff;
                        }
                    if (d < bestd) {
                        bestd = d;
                        best = k;
                    }
                }
                mt->centroid_total += 1.0;
                mt->centroid_correct += best == b.label1[i];
                mt->scored += 1.0;
                if (csv) {
                    fprintf(csv, ",%d,%d", b.label1[i], best);
                    for (int j = 0; j < TY; j++)
                        fprintf(csv, ",%.4g", m->logits[((size_t)(j / V) * B + i) * V + j % V] * sd + mean);
                }
            }
            if (csv) fputc('\n', csv);
        }
    }
    if (!csv) {
        double sums[7] = {mt->loss_sum, mt->terms, mt->correct, mt->scored, mt->sequences,
                          mt->centroid_correct, mt->centroid_total};
        dist_sum_f64(sums, 7);
        mt->loss_sum = sums[0];
        mt->terms = sums[1];
        mt->correct = sums[2];
        mt->scored = sums[3];
        mt->sequences = sums[4];
        mt->centroid_correct = sums[5];
        mt->centroid_total = sums[6];
        if (mt->K) {
            dist_sum_f64(mt->class_correct, (size_t)mt->K);
            dist_sum_f64(mt->class_total, (size_t)mt->K);
        }
        dist_sum_f64(mt->se, (size_t)mt->Y);
        dist_sum_f64(mt->ae, (size_t)mt->Y);
        dist_sum_f64(mt->se_persist, (size_t)mt->Y);
        dist_sum_f64(mt->se_seasonal, (size_t)mt->Y);
    }
    model_state_free(&st);
    free(cent);
    free(idx);
    seq_batch_free(&b);
}

double seq_metrics_loss(const SeqMetrics *mt) {
    return mt->terms > 0 ? mt->loss_sum / mt->terms : NAN;
}

static void print_list(const char *key, const double *v, int n, double div, int root, int json) {
    if (json) {
        printf(", \"%s\": [", key);
        for (int i = 0; i < n; i++) printf(i ? ", %.6g" : "%.6g", root ? sqrt(v[i] / div) : v[i] / div);
        printf("]");
    }
}

void seq_metrics_print(const SeqFile *sf, const SeqMetrics *mt, const char *split, int json) {
    if (dist_rank() != 0) return;
    double loss = seq_metrics_loss(mt), acc = mt->scored > 0 ? mt->correct / mt->scored : NAN;
    int K = mt->K;
    if (json) {
        printf("{\"split\": \"%s\", \"task\": \"%s\", \"sequences\": %.0f, \"loss\": %.9g",
               split, task_name(sf->task), mt->sequences, loss);
        if (sf->task == TASK_CLASSIFY || sf->task == TASK_TAG) {
            printf(", \"accuracy\": %.6g, \"per_class_accuracy\": [", acc);
            for (int k = 0; k < K; k++)
                printf(k ? ", %.6g" : "%.6g", mt->class_total[k] > 0 ? mt->class_correct[k] / mt->class_total[k] : NAN);
            printf("]");
        } else if (sf->task == TASK_REGRESS) {
            print_list("rmse", mt->se, mt->Y, mt->scored, 1, 1);
            print_list("mae", mt->ae, mt->Y, mt->scored, 0, 1);
            print_list("rmse_persistence", mt->se_persist, mt->Y, mt->scored, 1, 1);
            print_list("rmse_seasonal_naive", mt->se_seasonal, mt->Y < 12 ? mt->Y : 12, mt->scored, 1, 1);
        } else if (sf->task == TASK_GENERATE) {
            printf(", \"centroid_accuracy\": %.6g, \"chance\": %.6g",
                   mt->centroid_correct / mt->centroid_total, 1.0 / sf->C);
        }
        printf("}\n");
        return;
    }
    switch (sf->task) {
    case TASK_CLASSIFY:
    case TASK_TAG:
        printf("%s: accuracy %.2f%% | loss %.4f nats | %.0f %s\n", split, 100.0 * acc, loss,
               mt->scored, sf->task == TASK_TAG ? "steps" : "sequences");
        printf("  per class:");
        for (int k = 0; k < K; k++)
            printf(" %d:%.1f%%", k, mt->class_total[k] > 0 ? 100.0 * mt->class_correct[k] / mt->class_total[k] : NAN);
        printf("\n");
        break;
    case TASK_REGRESS:
        printf("%s: %.0f windows | MSE %.4f (normalised)\n  %-8s %10s %10s %16s %20s\n", split,
               mt->scored, loss, "horizon", "RMSE", "MAE", "RMSE persistence",
               "RMSE seasonal-naive");
        for (int h = 0; h < mt->Y; h++) {
            printf("  %-8d %10.3f %10.3f %16.3f", h + 1, sqrt(mt->se[h] / mt->scored),
                   mt->ae[h] / mt->scored, sqrt(mt->se_persist[h] / mt->scored));
            if (h < 12)
                printf(" %20.3f\n", sqrt(mt->se_seasonal[h] / mt->scored));
            else
                printf(" %20s\n", "-");
        }
        break;
    case TASK_GENERATE:
        printf("%s: MSE %.4f (normalised) | nearest-centroid accuracy of generated sequences "
               "%.2f%% (chance %.1f%%) | %.0f sequences\n", split, loss,
               100.0 * mt->centroid_correct / mt->centroid_total, 100.0 / sf->C, mt->sequences);
        break;
    }
}
