/* tanh RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). */
#include <string.h>

#include "activ.h"
#include "cell.h"
#include "linalg.h"

/* state h (B,H) -> y = h[1..T] (T,B,H); x (T,B,D). */
static void rnn_forward(Layer *l, float *const *state, const float *x, int T, float *ws) {
    Cell *c = cell_of(l);
    int B = l->B, H = l->H;
    size_t BH = (size_t)B * H;
    LaPacked whh;
    cell_forward_begin(l, state, x, T, ws, H, &whh);
    for (int t = 0; t < T; t++) {
        float *a = c->gates + t * BH;               /* (B,H) */
        la_matmul_packed(a, c->h + t * BH, &whh, B, 1.0f);
        float *h = c->h + (t + 1) * BH;              /* (B,H) */
        activ_tanh(a, a, BH);
        memcpy(h, a, BH * sizeof(float));
    }
    cell_state_out(l, state, T);
}

/* dy (T,B,H) -> dA (in gates), dh0 (B,H). */
static void rnn_backward(Layer *l, const float *dy, float *const *dstate0, int T, float *ws,
                         const LayerHooks *hooks) {
    Cell *c = cell_of(l);
    int B = l->B, H = l->H;
    size_t BH = (size_t)B * H;
    float *dh = c->dh;                               /* (B,H) */
    LaPacked whh;
    cell_backward_begin(l, ws, &whh);
    cell_keep_dA(l);
    for (int t = T - 1; t >= 0; t--) {
        float *a = c->gates + t * BH;                /* h_t in, dA_t out */
        const float *dyt = dy + t * BH;
        for (size_t k = 0; k < BH; k++) a[k] = (dyt[k] + dh[k]) * (1.0f - a[k] * a[k]);
        if (t > 0 || dstate0)
            la_matmul_packed_keep(dh, a, &whh, B, 0.0f, cell_dA_kept(l, t));
        else
            la_keep_rows(cell_dA_kept(l, t), a, B, c->G * H);
        layer_progress(hooks, t);
    }
    cell_backward_tail(l, c->gates, dstate0, T);
}

const LayerKind layer_rnn = {.name = "rnn", .nstates = 1, .state_names = {"h"},
                             .forward = rnn_forward, .backward = rnn_backward,
                             CELL_KIND_COMMON};
