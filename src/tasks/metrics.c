#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "decode.h"
#include "dist.h"

void metrics_init(Metrics *mt, const Task *t) {
    memset(mt, 0, sizeof *mt);
    if (t->lm) return;
    const SeqFile *sf = &t->sf;
    mt->K = seq_has_classes(sf) ? sf->K : sf->C;
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
    free(mt->ref_labels);
    free(mt->ref_len);
    free(mt->ref_group);
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

/* The symbols of ids tok[0..n) as text: characters joined, or symbols with spaces. */
static void write_symbols(FILE *f, char *const *sym, int chars, const int32_t *tok, int n) {
    for (int j = 0; j < n; j++) fprintf(f, "%s%s", !chars && j ? " " : "", sym[tok[j]]);
}

/* seq2seq: decodes the sources of batch b whose first row is in it (each distinct source
 * once) and scores them against all their references. */
static void score_decoded(Model *m, Model *mk, ModelState *st, ModelState *stk, Task *t,
                          const Batch *b, Metrics *mt) {
    const SeqFile *sf = &t->sf;
    const SeqBatch *sb = b->seq;
    int B = b->B, L = mt->max_len, T = sf->T;
    int32_t *out = rt_malloc((size_t)B * L * sizeof *out, "decoded");
    int32_t *len = rt_malloc((size_t)B * sizeof *len, "decoded");
    double *lp = rt_malloc((size_t)B * sizeof *lp, "decoded");
    if (mt->beam <= 1) {
        decode_greedy(m, st, b, L, out, len, lp);
    } else {
        for (int i = 0; i < b->count; i++) {
            if (sb->group[i] != sb->index[i]) continue;
            double score;
            len[i] = decode_beam(mk, stk, b, i, mt->alpha, L, out + (size_t)i * L, &score, &lp[i]);
        }
    }
    int64_t n = sf->n[mt->split];
    for (int i = 0; i < b->count; i++) {
        int64_t row = sb->index[i];
        if (sb->group[i] != row) continue; /* an alternative reference of an earlier row */
        const int32_t *pred = out + (size_t)i * L;
        int best_d = -1, best_n = 0;
        for (int64_t r = row; r < n && mt->ref_group[r] == row; r++) {
            int rn = mt->ref_len[r] - 1; /* symbols before </s> */
            int d = decode_edit_distance(pred, len[i], mt->ref_labels + (size_t)r * T, rn);
            if (best_d < 0 || d < best_d || (d == best_d && rn > best_n)) {
                best_d = d;
                best_n = rn;
            }
        }
        mt->words += 1.0;
        mt->word_errors += best_d != 0;
        mt->edits += best_d;
        mt->ref_tokens += best_n;
        if (mt->pred_out) {
            FILE *f = mt->pred_out;
            if (sf->S > 0) {
                for (int s = 0; s < sb->src_len[i]; s++)
                    fprintf(f, "%s%s", !sf->src_chars && s ? " " : "",
                            sf->src_symbols[b->src[(size_t)s * B + i]]);
            } else {
                fprintf(f, "%lld", (long long)row);
            }
            fputc('\t', f);
            write_symbols(f, sf->tgt_symbols, sf->tgt_chars, pred, len[i]);
            fprintf(f, "\t%.6f\t%d\n", lp[i], best_d);
        }
    }
    free(out);
    free(len);
    free(lp);
}

void task_evaluate(Model *m, Task *t, int split, Metrics *mt, FILE *csv) {
    int local = csv || mt->pred_out; /* one rank writes every row */
    int N = local ? 1 : dist_size(), rank = local ? 0 : dist_rank(), B = m->B;
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
    int decoding = !t->lm && t->kind == TASK_SEQ2SEQ && mt->decode;
    Model mk; /* beam search: K streams over the same parameters */
    ModelState stk;
    if (decoding) {
        mt->split = split;
        if (!mt->ref_labels)
            seq_read_references(&t->sf, split, &mt->ref_labels, &mt->ref_len, &mt->ref_group);
        if (mt->max_len < 1) mt->max_len = t->sf.T;
        if (mt->beam > 1) {
            model_init_shared(&mk, m, mt->beam, m->Tmax);
            model_state_init(&stk, &mk, mt->beam);
        }
    }
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
        if (decoding) score_decoded(m, mt->beam > 1 ? &mk : NULL, &st, mt->beam > 1 ? &stk : NULL,
                                    t, &b, mt);
    }
    if (decoding && mt->beam > 1) {
        model_state_free(&stk);
        model_free(&mk);
    }
    model_state_free(&st);
    reader_free(&r);
    if (local) return;
    double sums[11] = {mt->loss_sum, mt->terms, mt->correct, mt->scored, mt->sequences,
                       mt->centroid_correct, mt->centroid_total, mt->words, mt->word_errors,
                       mt->edits, mt->ref_tokens};
    dist_sum_f64(sums, 11);
    mt->words = sums[7];
    mt->word_errors = sums[8];
    mt->edits = sums[9];
    mt->ref_tokens = sums[10];
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
        if (sf->task == TASK_SEQ2SEQ) {
            printf(", \"token_accuracy\": %.6g", acc);
            if (mt->words > 0)
                printf(", \"sources\": %.0f, \"sequence_error_rate\": %.6g, "
                       "\"token_error_rate\": %.6g, \"beam\": %d, \"alpha\": %g", mt->words,
                       mt->word_errors / mt->words, mt->edits / mt->ref_tokens,
                       mt->beam > 1 ? mt->beam : 1, mt->alpha);
        } else if (sf->task == TASK_CLASSIFY || sf->task == TASK_TAG) {
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
    case TASK_SEQ2SEQ:
        printf("%s: %.4f nats/token | token accuracy %.2f%% (teacher forcing) | %.0f "
               "sequences\n", split, loss, 100.0 * acc, mt->sequences);
        if (mt->words > 0)
            printf("  decoded (%s): sequence error rate %.2f%% | token error rate %.2f%% | %.0f "
                   "distinct sources\n", mt->beam > 1 ? "beam" : "greedy",
                   100.0 * mt->word_errors / mt->words, 100.0 * mt->edits / mt->ref_tokens,
                   mt->words);
        break;
    case TASK_GENERATE:
        printf("%s: MSE %.4f (normalised) | nearest-centroid accuracy of generated sequences "
               "%.2f%% (chance %.1f%%) | %.0f sequences\n", split, loss,
               100.0 * mt->centroid_correct / mt->centroid_total, 100.0 / sf->C, mt->sequences);
        break;
    }
}
