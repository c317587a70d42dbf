#include "cell.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "linalg.h"

void (*cell_progress_hook)(void) = NULL;

const CellKind *cell_by_name(const char *name) {
    if (strcmp(name, "rnn") == 0) return &cell_rnn;
    if (strcmp(name, "lstm") == 0) return &cell_lstm;
    if (strcmp(name, "gru") == 0) return &cell_gru;
    return NULL;
}

void layer_init(Layer *l, const CellKind *kind, int D, int H, int B, int Tmax) {
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->D = D;
    l->H = H;
    l->B = B;
    l->Tmax = Tmax;
    size_t GH = (size_t)kind->gates * H, BH = (size_t)B * H;
    l->gates = rt_alloc_floats((size_t)Tmax * B * GH, "gate activations");
    l->h = rt_alloc_floats((size_t)(Tmax + 1) * BH, "hidden states");
    if (kind == &cell_lstm) l->c = rt_alloc_floats((size_t)(Tmax + 1) * BH, "cell states");
    if (kind == &cell_gru) {
        l->c = rt_alloc_floats((size_t)Tmax * BH, "gru W_hn h + b_hn");
        l->rec = rt_alloc_floats((size_t)Tmax * B * GH, "gru recurrent gradients");
    }
    l->dh = rt_alloc_floats(BH, "hidden gradient");
    l->dc = rt_alloc_floats(BH, "cell gradient");
    l->tmp = rt_alloc_floats(BH, "cell scratch");
}

size_t layer_pack_floats(const CellKind *kind, int H) {
    size_t fwd = la_packed_floats(kind->gates * H, H), bwd = la_packed_floats(H, kind->gates * H);
    return fwd > bwd ? fwd : bwd;
}

void layer_free(Layer *l) {
    free(l->gates);
    free(l->h);
    free(l->c);
    free(l->rec);
    free(l->dh);
    free(l->dc);
    free(l->tmp);
    memset(l, 0, sizeof *l);
}

void layer_carry(Layer *l, int T) {
    size_t BH = (size_t)l->B * l->H;
    memmove(l->h, l->h + (size_t)T * BH, BH * sizeof(float));
    if (l->kind->has_cell) memmove(l->c, l->c + (size_t)T * BH, BH * sizeof(float));
}

void layer_reset(Layer *l) {
    size_t BH = (size_t)l->B * l->H;
    memset(l->h, 0, BH * sizeof(float));
    if (l->kind->has_cell) memset(l->c, 0, BH * sizeof(float));
}

void cell_input_projection(Layer *l, const float *x, int T, int bias_hh_cols) {
    int rows = T * l->B, GH = l->kind->gates * l->H;
    /* Biases first, then the GEMM accumulates onto them (beta = 1): one pass over the
     * (T*B, G*H) output instead of OpenBLAS zeroing it and a second pass adding biases. */
    float *a = l->gates;
    for (int j = 0; j < bias_hh_cols; j++) a[j] = l->b_ih[j] + l->b_hh[j];
    for (int j = bias_hh_cols; j < GH; j++) a[j] = l->b_ih[j];
    for (int r = 1; r < rows; r++) memcpy(a + (size_t)r * GH, a, (size_t)GH * sizeof(float));
    la_matmul_nt(l->gates, x, l->w_ih, rows, GH, l->D, 1.0f);
}

void cell_weight_gradients(Layer *l, const float *x, const float *dA_in, const float *dA_rec,
                           float *dx, int T) {
    int rows = T * l->B, GH = l->kind->gates * l->H;
    if (l->refill_input) l->refill_input(l->refill_ctx);
    la_matmul_tn(l->dw_hh, dA_rec, l->h, GH, l->H, rows, 1.0f); /* h[0..T-1] */
    la_matmul_tn(l->dw_ih, dA_in, x, GH, l->D, rows, 1.0f);
    if (dA_in == dA_rec) { /* rnn, lstm: b_ih and b_hh get the same gradient */
        la_colsum_add2(l->db_ih, l->db_hh, dA_in, rows, GH);
    } else {
        la_colsum_add(l->db_ih, dA_in, rows, GH);
        la_colsum_add(l->db_hh, dA_rec, rows, GH);
    }
    if (dx) la_matmul_nn(dx, dA_in, l->w_ih, rows, l->D, GH, 0.0f);
    if (l->emb_grad) {
        /* dE[v] += sum over rows r with token v of dx[r] = (sum of those dA_in rows) . W_ih:
         * V x G*H x D multiply-adds instead of rows x G*H x D (rows > V) */
        float *acc = l->emb_work;
        memset(acc, 0, (size_t)l->emb_vocab * GH * sizeof(float));
        for (int r = 0; r < rows; r++) {
            float *a = acc + (size_t)l->emb_tokens[r] * GH;
            const float *g = dA_in + (size_t)r * GH;
            for (int j = 0; j < GH; j++) a[j] += g[j];
        }
        la_matmul_nn(l->emb_grad, acc, l->w_ih, l->emb_vocab, l->D, GH, 1.0f);
    }
}

