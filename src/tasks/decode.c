/* decode: greedy and beam-search decoding of seq2seq models (see decode.h). */
#include "decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Log-sum-exp of one row of logits, in double. */
static double row_lse(const float *z, int V) {
    float mx = z[0];
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double s = 0.0;
    for (int v = 0; v < V; v++) s += exp((double)z[v] - (double)mx);
    return (double)mx + log(s);
}

void decode_greedy(Model *m, ModelState *st, const Batch *b, int max_len, int32_t *out,
                   int32_t *out_len, double *logprob) {
    int B = m->B, V = m->shape.V;
    REQUIRE(b->B == B && max_len >= 1);
    task_start_state(m, st, b);
    int32_t *tok = rt_malloc((size_t)B * sizeof *tok, "decode tokens");
    uint8_t *done = rt_calloc((size_t)B, 1, "decode flags");
    for (int i = 0; i < B; i++) {
        tok[i] = DECODE_BOS;
        out_len[i] = 0;
        logprob[i] = 0.0;
        done[i] = i >= b->count; /* padding rows */
    }
    for (int t = 0; t < max_len; t++) {
        int alive = 0;
        for (int i = 0; i < B; i++) alive += !done[i];
        if (!alive) break;
        model_step(m, st, tok);
        for (int i = 0; i < B; i++) {
            if (done[i]) continue;
            const float *z = m->logits + (size_t)i * V;
            int best = 0;
            for (int v = 1; v < V; v++) best = z[v] > z[best] ? v : best;
            logprob[i] += (double)z[best] - row_lse(z, V);
            if (best == DECODE_EOS) {
                done[i] = 1;
                continue;
            }
            out[(size_t)i * max_len + out_len[i]++] = best;
            tok[i] = best; /* finished rows keep feeding their last token: harmless */
        }
    }
    free(tok);
    free(done);
}

typedef struct {
    double score; /* log-probability so far */
    int parent, token;
} Candidate;

/* Best first; ties by parent then token (so beam 1 picks greedy's argmax: lowest id). */
static int cmp_candidate(const void *pa, const void *pb) {
    const Candidate *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->parent != b->parent) return a->parent < b->parent ? -1 : 1;
    return (a->token > b->token) - (a->token < b->token);
}

static double normalised(double logprob, int symbols, double alpha) {
    return alpha == 0.0 ? logprob : logprob / pow((double)(symbols + 1), alpha);
}

int decode_beam(Model *mk, ModelState *stk, const Batch *b, int i, double alpha, int max_len,
                int32_t *out, double *score_out, double *logprob_out) {
    int K = mk->B, V = mk->shape.V, B = b->B;
    REQUIRE(i >= 0 && i < b->count && max_len >= 1 && stk->B == K);
    /* the source (or conditioning vector) of row i, repeated on the K streams */
    if (b->src) {
        int32_t *src = rt_malloc((size_t)b->S * K * sizeof *src, "beam source");
        int32_t *len = rt_malloc((size_t)K * sizeof *len, "beam source");
        for (int k = 0; k < K; k++) {
            len[k] = b->src_len[i];
            for (int s = 0; s < b->S; s++) src[(size_t)s * K + k] = b->src[(size_t)s * B + i];
        }
        model_encode(mk, stk, src, len, b->S);
        free(src);
        free(len);
    } else {
        REQUIRE(b->cond);
        int C = mk->shape.C;
        float *c = rt_malloc((size_t)K * C * sizeof *c, "beam condition");
        for (int k = 0; k < K; k++)
            memcpy(c + (size_t)k * C, b->cond + (size_t)i * C, (size_t)C * sizeof(float));
        model_set_condition(mk, stk, c);
        free(c);
    }
    ModelState scratch;
    model_state_init(&scratch, mk, K);
    int32_t *hyp = rt_calloc((size_t)K * max_len, sizeof *hyp, "beam prefixes");
    int32_t *next_hyp = rt_calloc((size_t)K * max_len, sizeof *next_hyp, "beam prefixes");
    double *lp = rt_calloc((size_t)K, sizeof *lp, "beam scores");
    int32_t *tok = rt_malloc((size_t)K * sizeof *tok, "beam tokens");
    Candidate *cand = rt_malloc((size_t)K * V * sizeof *cand, "beam candidates");
    int32_t *best = rt_calloc((size_t)max_len, sizeof *best, "beam result");
    int best_len = -1, finished = 0;
    double best_score = -INFINITY, best_lp = -INFINITY;
    int alive = 1; /* prefixes [0, alive) are alive; all start as <s> */
    for (int k = 0; k < K; k++) tok[k] = DECODE_BOS;
    for (int t = 0; t < max_len && alive > 0; t++) {
        model_step(mk, stk, tok);
        int nc = 0;
        for (int k = 0; k < alive; k++) {
            const float *z = mk->logits + (size_t)k * V;
            double lse = row_lse(z, V);
            for (int v = 0; v < V; v++) {
                Candidate c = {lp[k] + ((double)z[v] - lse), k, v};
                cand[nc++] = c;
            }
        }
        qsort(cand, (size_t)nc, sizeof *cand, cmp_candidate);
        /* the K best: those ending in </s> finish; the rest form the next beam */
        int next = 0;
        for (int c = 0; c < nc && c < K; c++) {
            const Candidate *cd = &cand[c];
            if (cd->token == DECODE_EOS || t == max_len - 1) {
                int n = t + (cd->token != DECODE_EOS); /* symbols (a cut prefix keeps its last) */
                double sc = normalised(cd->score, n, alpha);
                finished++;
                if (sc > best_score) {
                    best_score = sc;
                    best_lp = cd->score;
                    best_len = n;
                    memcpy(best, hyp + (size_t)cd->parent * max_len, (size_t)t * sizeof *best);
                    if (cd->token != DECODE_EOS) best[t] = cd->token;
                }
                continue;
            }
            memcpy(next_hyp + (size_t)next * max_len, hyp + (size_t)cd->parent * max_len,
                   (size_t)t * sizeof *hyp);
            next_hyp[(size_t)next * max_len + t] = cd->token;
            lp[next] = cd->score;
            tok[next] = cd->token;
            /* the state of prefix `next` is its parent's: gather through the scratch copy */
            for (int l = 0; l < stk->L; l++)
                for (int s = 0; s < stk->nstates[l]; s++) {
                    size_t w = (size_t)stk->width[l][s];
                    memcpy(scratch.t[l][s] + (size_t)next * w,
                           stk->t[l][s] + (size_t)cd->parent * w, w * sizeof(float));
                }
            next++;
        }
        for (int l = 0; l < stk->L; l++)
            for (int s = 0; s < stk->nstates[l]; s++)
                memcpy(stk->t[l][s], scratch.t[l][s],
                       (size_t)next * stk->width[l][s] * sizeof(float));
        int32_t *swap = hyp;
        hyp = next_hyp;
        next_hyp = swap;
        alive = next;
        for (int k = alive; k < K; k++) tok[k] = DECODE_BOS; /* idle streams */
        /* done when K have finished and no live prefix scores higher than the best */
        if (finished >= K) {
            double top = -INFINITY;
            for (int k = 0; k < alive; k++) {
                double sc = normalised(lp[k], t + 1, alpha);
                top = sc > top ? sc : top;
            }
            if (top <= best_score) break;
        }
    }
    REQUIRE(best_len >= 0);
    memcpy(out, best, (size_t)best_len * sizeof *out);
    *score_out = best_score;
    *logprob_out = best_lp;
    free(hyp);
    free(next_hyp);
    free(lp);
    free(tok);
    free(cand);
    free(best);
    model_state_free(&scratch);
    return best_len;
}

int decode_edit_distance(const int32_t *a, int na, const int32_t *b, int nb) {
    int *row = rt_malloc((size_t)(nb + 1) * sizeof *row, "edit distance");
    for (int j = 0; j <= nb; j++) row[j] = j;
    for (int i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= nb; j++) {
            int up = row[j];
            int sub = diag + (a[i - 1] != b[j - 1]);
            int del = up + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            diag = up;
        }
    }
    int d = row[nb];
    free(row);
    return d;
}
