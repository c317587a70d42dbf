/* cell: the parts the gated recurrent kinds share (see cell.h). */
#include "cell.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "linalg.h"

int cell_gates(const LayerKind *kind) {
    return kind == &layer_lstm ? 4 : kind == &layer_gru ? 3 : 1;
}

int cell_state_width(const Layer *l, int s) {
    (void)s;
    return l->H;
}

void cell_declare(Layer *l, Params *p, const char *prefix, const char *suffix) {
    Cell *c = rt_calloc(1, sizeof *c, "cell");
    l->impl = c;
    c->G = cell_gates(l->kind);
    int GH = c->G * l->H;
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%sweight_ih%s", prefix, suffix);
    c->w_ih = params_add(p, name, GH, l->D);
    snprintf(name, sizeof name, "%sweight_hh%s", prefix, suffix);
    c->w_hh = params_add(p, name, GH, l->H);
    snprintf(name, sizeof name, "%sbias_ih%s", prefix, suffix);
    c->b_ih = params_add(p, name, GH, 0);
    snprintf(name, sizeof name, "%sbias_hh%s", prefix, suffix);
    c->b_hh = params_add(p, name, GH, 0);
    l->param_first = c->w_ih;
    l->param_count = 4;
}

void cell_alloc(Layer *l, const Params *p) {
    Cell *c = cell_of(l);
    c->wih = params_value(p, c->w_ih);
    c->whh = params_value(p, c->w_hh);
    c->bih = params_value(p, c->b_ih);
    c->bhh = params_value(p, c->b_hh);
    c->dwih = params_grad(p, c->w_ih);
    c->dwhh = params_grad(p, c->w_hh);
    c->dbih = params_grad(p, c->b_ih);
    c->dbhh = params_grad(p, c->b_hh);
    size_t GH = (size_t)c->G * l->H, BH = (size_t)l->B * l->H, Tmax = (size_t)l->Tmax;
    c->gates = rt_alloc_floats(Tmax * l->B * GH, "gate activations");
    c->h = rt_alloc_floats((Tmax + 1) * BH, "hidden states");
    if (l->kind == &layer_lstm) c->c = rt_alloc_floats((Tmax + 1) * BH, "cell states");
    if (l->kind == &layer_gru) {
        c->hn = rt_alloc_floats(Tmax * BH, "gru W_hn h + b_hn");
        c->rec = rt_alloc_floats(Tmax * l->B * GH, "gru recurrent gradients");
    }
    c->dh = rt_alloc_floats(BH, "hidden gradient");
    c->dc = rt_alloc_floats(BH, "cell gradient");
    c->tmp = rt_alloc_floats(BH, "cell scratch");
    l->y = c->h + BH;
}

void cell_free(Layer *l) {
    Cell *c = cell_of(l);
    if (!c) return;
    free(c->gates);
    free(c->h);
    free(c->c);
    free(c->hn);
    free(c->rec);
    free(c->dh);
    free(c->dc);
    free(c->tmp);
    free(c->dA_kept);
    free(c);
    l->impl = NULL;
}

size_t cell_workspace_floats(const Layer *l) {
    int GH = cell_gates(l->kind) * l->H;
    size_t fwd = la_packed_floats(GH, l->H), bwd = la_packed_floats(l->H, GH);
    return fwd > bwd ? fwd : bwd;
}

/* Rows of the (n,n) block at w (row stride ld) become an orthonormal basis: Gram-Schmidt
 * (twice, for stability) on Gaussian rows. */
static void fill_orthogonal(float *w, int n, int ld, Rng *rng) {
    double *q = rt_malloc((size_t)n * n * sizeof *q, "orthogonal init");
    for (size_t i = 0; i < (size_t)n * n; i++) q[i] = rng_normal(rng);
    for (int i = 0; i < n; i++) {
        double *qi = q + (size_t)i * n;
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                double *qj = q + (size_t)j * n, d = 0.0;
                for (int k = 0; k < n; k++) d += qi[k] * qj[k];
                for (int k = 0; k < n; k++) qi[k] -= d * qj[k];
            }
        double norm = 0.0;
        for (int k = 0; k < n; k++) norm += qi[k] * qi[k];
        norm = sqrt(norm);
        REQUIRE(norm > 1e-12);
        /* normalised in place: the later rows are projected on unit vectors */
        for (int k = 0; k < n; k++) {
            qi[k] /= norm;
            w[(size_t)i * ld + k] = (float)qi[k];
        }
    }
    free(q);
}

/* PyTorch's nn.RNN/LSTM/GRU: every tensor U(+-1/sqrt(H)) in declaration order; orthogonal
 * then replaces each gate block of W_hh. (INIT_UNIFORM is done by the model over the whole
 * buffer.) */
void cell_init_weights(Layer *l, const LayerInit *init) {
    Cell *c = cell_of(l);
    double bound = 1.0 / sqrt((double)l->H);
    size_t GH = (size_t)c->G * l->H;
    torch_uniform_fill(init->torch, (float *)c->wih, GH * l->D, -bound, bound);
    torch_uniform_fill(init->torch, (float *)c->whh, GH * l->H, -bound, bound);
    torch_uniform_fill(init->torch, (float *)c->bih, GH, -bound, bound);
    torch_uniform_fill(init->torch, (float *)c->bhh, GH, -bound, bound);
    if (init->kind == INIT_ORTHOGONAL)
        for (int gate = 0; gate < c->G; gate++)
            fill_orthogonal((float *)c->whh + (size_t)gate * l->H * l->H, l->H, l->H, init->rng);
}

double cell_flops_per_token(const Layer *l) {
    return 2.0 * cell_gates(l->kind) * l->H * (double)(l->D + l->H);
}

static void input_projection(Layer *l, const float *x, int T, int bias_hh_cols) {
    Cell *c = cell_of(l);
    int rows = T * l->B, GH = c->G * l->H;
    /* Biases first, then the GEMM accumulates onto them (beta = 1): one pass over the
     * (T*B, G*H) output instead of OpenBLAS zeroing it and a second pass adding biases. */
    float *a = c->gates;
    for (int j = 0; j < bias_hh_cols; j++) a[j] = c->bih[j] + c->bhh[j];
    for (int j = bias_hh_cols; j < GH; j++) a[j] = c->bih[j];
#pragma omp parallel for schedule(static) if (rows > 64 && omp_get_max_threads() > 1)
    for (int r = 1; r < rows; r++) memcpy(a + (size_t)r * GH, a, (size_t)GH * sizeof(float));
    la_matmul_nt(c->gates, x, c->wih, rows, GH, l->D, 1.0f);
}

void cell_forward_begin(Layer *l, float *const *state, const float *x, int T, float *ws,
                        int bias_hh_cols, LaPacked *whh) {
    Cell *c = cell_of(l);
    size_t BH = (size_t)l->B * l->H;
    memcpy(c->h, state[0], BH * sizeof(float));
    if (c->c) memcpy(c->c, state[1], BH * sizeof(float));
    input_projection(l, x, T, bias_hh_cols);
    if (ws)
        la_pack_nt(whh, ws, c->whh, c->G * l->H, l->H);
    else
        la_unpacked_nt(whh, c->whh, c->G * l->H, l->H);
}

void cell_step(Layer *l, float *const *state, const float *x, float *ws) {
    (void)ws;
    l->kind->forward(l, state, x, 1, NULL);
}

void cell_backward_begin(Layer *l, float *ws, LaPacked *whh) {
    Cell *c = cell_of(l);
    size_t BH = (size_t)l->B * l->H;
    memset(c->dh, 0, BH * sizeof(float));
    memset(c->dc, 0, BH * sizeof(float));
    la_pack_nn(whh, ws, c->whh, c->G * l->H, l->H);
}

void cell_keep_dA(Layer *l) {
    Cell *c = cell_of(l);
    size_t row = la_kept_row_bytes(c->G * l->H);
    c->dA_kept_valid = row > 0;
    if (row > 0 && !c->dA_kept) /* bf16 only: allocated at the first bf16 backward */
        c->dA_kept = rt_alloc_floats((size_t)l->Tmax * l->B * row / sizeof(float) + 16, "kept dA");
}

void *cell_dA_kept(Layer *l, int t) {
    Cell *c = cell_of(l);
    if (!c->dA_kept_valid) return NULL;
    REQUIRE(t >= 0 && t < l->Tmax);
    return (char *)c->dA_kept + (size_t)t * l->B * la_kept_row_bytes(c->G * l->H);
}

void cell_state_out(Layer *l, float *const *state, int T) {
    Cell *c = cell_of(l);
    size_t BH = (size_t)l->B * l->H;
    memcpy(state[0], c->h + (size_t)T * BH, BH * sizeof(float));
    if (c->c) memcpy(state[1], c->c + (size_t)T * BH, BH * sizeof(float));
}

void cell_backward_tail(Layer *l, const float *dA_rec, float *const *dstate0, int T) {
    Cell *c = cell_of(l);
    int rows = T * l->B, GH = c->G * l->H;
    size_t BH = (size_t)l->B * l->H;
    const float *dA_in = c->gates;
    c->dwhh_with_input = dA_in == dA_rec;
    if (!c->dwhh_with_input) la_matmul_tn(c->dwhh, dA_rec, c->h, GH, l->H, rows, 1.0f);
    if (dA_in == dA_rec) { /* rnn, lstm: b_ih and b_hh get the same gradient */
        la_colsum_add2(c->dbih, c->dbhh, dA_in, rows, GH);
    } else {
        la_colsum_add(c->dbih, dA_in, rows, GH);
        la_colsum_add(c->dbhh, dA_rec, rows, GH);
    }
    if (dstate0) {
        memcpy(dstate0[0], c->dh, BH * sizeof(float));
        if (c->c) memcpy(dstate0[1], c->dc, BH * sizeof(float));
    }
}

void cell_backward_input(Layer *l, const float *x, float *dx, int T) {
    Cell *c = cell_of(l);
    int rows = T * l->B, GH = c->G * l->H;
    if (c->dwhh_with_input) /* h[0..T-1] */
        la_matmul_tn2(c->dwih, x, l->D, c->dwhh, c->h, l->H, c->gates, GH, rows, 1.0f);
    else
        la_matmul_tn(c->dwih, c->gates, x, GH, l->D, rows, 1.0f);
    c->dwhh_with_input = 0;
    if (dx)
        la_matmul_nn_kept(dx, c->gates, c->dA_kept_valid ? c->dA_kept : NULL, c->wih, rows,
                          l->D, GH, 0.0f);
    c->dA_kept_valid = 0;
}

/* dgroup[v] += sum over rows r of group v of dx[r] = (sum of those dA_in rows) . W_ih:
 * ngroups x G*H x D multiply-adds instead of rows x G*H x D. */
int cell_input_grad_grouped(Layer *l, const int32_t *group, int ngroups, float *dgroup, int T,
                            float *ws, size_t ws_floats) {
    Cell *c = cell_of(l);
    int rows = T * l->B, GH = c->G * l->H;
    if ((size_t)ngroups * GH > ws_floats) return 0;
    float *acc = ws; /* (ngroups, G*H) */
    memset(acc, 0, (size_t)ngroups * GH * sizeof(float));
    for (int r = 0; r < rows; r++) {
        float *a = acc + (size_t)group[r] * GH;
        const float *g = c->gates + (size_t)r * GH;
        for (int j = 0; j < GH; j++) a[j] += g[j];
    }
    la_matmul_nn(dgroup, acc, c->wih, ngroups, l->D, GH, 1.0f);
    return 1;
}
