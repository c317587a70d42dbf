#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"

void metrics_init(Metrics *mt, const Task *t) {
    memset(mt, 0, sizeof *mt);
    if (t->lm) return;
    const SeqFile *sf = &t->sf;
    mt->K = sf->task == TASK_CLASSIFY || sf->task == TASK_TAG ? sf->K : sf->C;
    mt->Y = sf->Y > 0 ? sf->Y : 1;
    mt->class_correct = rt_calloc((size_t)(mt->K ? mt->K : 1), sizeof(double), "metrics");
    mt->class_total = rt_calloc((size_t)(mt->K ? mt->K : 1), sizeof(double), "metrics");
    mt->se = rt_calloc((size_t)mt->Y, sizeof(double), "metrics");
    mt->ae = rt_calloc((size_t)mt->Y, sizeof(double), "metrics");
    mt->se_persist = rt_calloc((size_t)mt->Y, sizeof(double), "metrics");
    mt->se_seasonal = rt_calloc((size_t)mt->Y, sizeof(double), "metrics");
    mt->n_seasonal = rt_calloc((size_t)mt->Y, sizeof(double), "metrics");
}

void metrics_free(Metrics *mt) {
    free(mt->class_correct);
    free(mt->class_total);
    free(mt->se);
    free(mt->ae);
    free(mt->se_persist);
    free(mt->se_seasonal);
    free(mt->n_seasonal);
    free(mt->centroids);
    free(mt->pred);
    free(mt->values);
    memset(mt, 0, sizeof *mt);
}

double metrics_loss(const Metrics *mt) { return mt->terms > 0 ? mt->loss_sum / mt->terms : NAN; }

double metrics_accuracy(const Task *t, const Metrics *mt) {
    return !t->lm && t->classes && mt->scored > 0 ? mt->correct / mt->scored : NAN;
}

/* Class centroids of the real train sequences (generate): (K, T*Y). */
static double *train_centroids(Task *t, int B) {
    const SeqFile *sf = &t->sf;
    int K = sf->C, TY = sf->T * sf->Y;
    double *cent = rt_calloc((size_t)K * TY, sizeof(double), "centroids");
    double *count = rt_calloc((size_t)K, sizeof(double), "centroids");
    Reader r;
    reader_init(&r, t, 0, 1, 0, B, sf->T, 0);
    Batch b;
    while (reader_next(&r, &b)) {
        for (int i = 0; i < b.count; i++) {
            int k = b.seq->label1[i];
            count[k] += 1.0;
            for (int s = 0; s < sf->T; s++)
                for (int y = 0; y < sf->Y; y++)
                    cent[(size_t)k * TY + s * sf->Y + y] += b.targets[((size_t)s * B + i) * sf->Y + y];
        }
    }
    reader_free(&r);
    for (int k = 0; k < K; k++)
        for (int j = 0; j < TY; j++) cent[(size_t)k * TY + j] /= count[k] > 0 ? count[k] : 1.0;
    free(count);
    return cent;
}

/* Scores of one chunk [t0, t0+T) of the batch from the model's logits: the loss, and the
 * predictions kept for the end of the batch. */
static void score_chunk(const Task *t, Model *m, const Batch *c, int t0, Metrics *mt) {
    mt->loss_sum += task_loss(t, m, c, 0.0f, 0); /* grad 0: the logits stay */
    if (t->lm) {
        mt->terms += (double)c->T * c->B;
        return;
    }
    int B = c->B, V = m->shape.V, T = t->sf.T;
    for (int s = 0; s < c->T; s++)
        for (int i = 0; i < B; i++) {
            const float *z = m->logits + ((size_t)s * B + i) * V;
            if (t->classes) {
                int best = 0;
                for (int v = 1; v < V; v++) best = z[v] > z[best] ? v : best;
                mt->pred[(size_t)(t0 + s) * B + i] = best;
            } else {
                memcpy(mt->values + ((size_t)i * T + t0 + s) * V, z, (size_t)V * sizeof(float));
            }
        }
}

/* The end of a batch: per-sequence metrics and the CSV rows. */
static void score_batch(const Task *t, const Batch *b, Metrics *mt, FILE *csv) {
    const SeqFile *sf = &t->sf;
    const SeqBatch *sb = b->seq;
    int B = b->B, T = sf->T, V = seq_outputs(sf);
    double mean = sf->norm_mean, sd = sf->norm_std;
    mt->terms += seq_batch_terms(sf, sb);
    for (int i = 0; i < b->count; i++) {
        mt->sequences += 1.0;
        int len = sb->len[i];
        if (csv) fprintf(csv, "%lld", (long long)sb->index[i]);
        if (t->classes) {
            for (int s = 0; s < T; s++) {
                int32_t y = b->labels[(size_t)s * B + i];
                if (y < 0) continue;
                int best = mt->pred[(size_t)s * B + i];
                mt->scored += 1.0;
                mt->correct += best == y;
                mt->class_total[y] += 1.0;
                mt->class_correct[y] += best == y;
                if (csv) fprintf(csv, ",%d,%d", y, best);
            }
        } else if (sf->task == TASK_REGRESS) {
            const float *z = mt->values + ((size_t)i * T + len - 1) * V;
            const float *y = b->targets + ((size_t)(len - 1) * B + i) * V;
            float last = b->x[((size_t)(len - 1) * B + i) * sf->D];
            for (int h = 0; h < V; h++) {
                double pred = z[h] * sd + mean, truth = y[h] * sd + mean;
                double persist = last * sd + mean;
                mt->se[h] += (pred - truth) * (pred - truth);
                mt->ae[h] += fabs(pred - truth);
                mt->se_persist[h] += (persist - truth) * (persist - truth);
                /* seasonal naive, period 12: the value 12 months before the target */
                int pos = len - 12 + h; /* input index of y[t+h+1-12] */
                if (h < 12 && pos >= 0 && sf->D == 1) {
                    double seas = b->x[((size_t)pos * B + i)] * sd + mean;
                    mt->se_seasonal[h] += (seas - truth) * (seas - truth);
                    mt->n_seasonal[h] += 1.0;
                }
                if (csv) fprintf(csv, ",%.6g,%.6g", pred, truth);
            }
            mt->scored += 1.0;
        } else { /* generate */
            int TY = T * V, best = 0;
            const float *g = mt->values + (size_t)i * TY;
            double bestd = INFINITY;
            for (int k = 0; k < sf->C; k++) {
                double d = 0.0;
                for (int j = 0; j < TY; j++) {
                    double diff = g[j] - mt->centroids[(size_t)k * TY + j];
                    d += diff * diff;
                }
                if (d < bestd) {
                    bestd = d;
                    best = k;
                }
            }
            mt->centroid_total += 1.0;
            mt->centroid_correct += best == sb->label1[i];
            mt->scored += 1.0;
            if (csv) {
                fprintf(csv, ",%d,%d", sb->label1[i], best);
                for (int j = 0; j < TY; j++) fprintf(csv, ",%.4g", g[j] * sd + mean);
            }
        }
        if (csv) fputc('\n', csv);
    }
}

void task_evaluate(Model *m, Task *t, int split, Metrics *mt, FILE *csv) {
    int N = csv ? 1 : dist_size(), rank = csv ? 0 : dist_rank(), B = m->B;
    Reader r;
    if (t->lm)
        reader_init(&r, t, split, N * B, rank * B, B, m->Tmax, 0);
    else
        reader_init(&r, t, split, N, rank, B, m->Tmax, 0);
    if (!t->lm) {
        size_t TB = (size_t)t->sf.T * B;
        if (!mt->pred) mt->pred = rt_calloc(TB, sizeof *mt->pred, "predictions");
        if (!mt->values)
            mt->values = rt_calloc(TB * seq_outputs(&t->sf), sizeof *mt->values, "predictions");
        if (t->kind == TASK_GENERATE && !mt->centroids) mt->centroids = train_centroids(t, B);
    }
    ModelState st; /* from zero, whatever state the model's owner carries elsewhere */
    model_state_init(&st, m, B);
    Batch b;
    while (reader_next(&r, &b)) {
        task_start_state(m, &st, &b);
        for (int t0 = 0; t0 < b.T; t0 += b.chunk_T) {
            int T = b.T - t0 < b.chunk_T ? b.T - t0 : b.chunk_T;
            Batch c = batch_chunk(t, &b, t0, T);
            task_forward(m, &st, &c);
            score_chunk(t, m, &c, t0, mt);
        }
        if (!t->lm) score_batch(t, &b, mt, csv);
    }
    model_state_free(&st);
    reader_free(&r);
    if (csv) return;
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
    if (mt->Y) {
        dist_sum_f64(mt->se, (size_t)mt->Y);
        dist_sum_f64(mt->ae, (size_t)mt->Y);
        dist_sum_f64(mt->se_persist, (size_t)mt->Y);
        dist_sum_f64(mt->se_seasonal, (size_t)mt->Y);
        dist_sum_f64(mt->n_seasonal, (size_t)mt->Y);
    }
}

static void print_list(const char *key, const double *v, int n, double div, int root, int json) {
    if (json) {
        printf(", \"%s\": [", key);
        for (int i = 0; i < n; i++) printf(i ? ", %.6g" : "%.6g", root ? sqrt(v[i] / div) : v[i] / div);
        printf("]");
    }
}

void metrics_print(const Task *t, const Metrics *mt, const char *split, int json) {
    if (dist_rank() != 0) return;
    if (t->lm) {
        double nats = metrics_loss(mt), bits = nats / log(2.0);
        if (json)
            printf("{\"split\": \"%s\", \"nats\": %.9g, \"bits\": %.9g, \"perplexity\": %.9g, "
                   "\"tokens\": %lld}\n", split, nats, bits, exp(nats), (long long)mt->terms);
        else
            printf("%s: %.4f nats/token | %.4f bits/token | perplexity %.3f | %lld tokens\n",
                   split, nats, bits, exp(nats), (long long)mt->terms);
        return;
    }
    const SeqFile *sf = &t->sf;
    double loss = metrics_loss(mt), acc = mt->scored > 0 ? mt->correct / mt->scored : NAN;
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
            /* null where there is no such baseline (several features, or under 12 steps) */
            printf(", \"rmse_seasonal_naive\": [");
            for (int h = 0; h < mt->Y && h < 12; h++) {
                if (h) printf(", ");
                if (mt->n_seasonal[h] > 0) printf("%.6g", sqrt(mt->se_seasonal[h] / mt->n_seasonal[h]));
                else printf("null");
            }
            printf("]");
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
            if (h < 12 && mt->n_seasonal[h] > 0)
                printf(" %20.3f\n", sqrt(mt->se_seasonal[h] / mt->n_seasonal[h]));
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
