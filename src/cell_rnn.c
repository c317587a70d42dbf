/* tanh RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). */
#include <math.h>
#include <string.h>

#include "activ.h"
#include "cell.h"
#include "linalg.h"

static void rnn_forward(Layer *l, const float *x, int T) {
    int B = l->B, H = l->H;
    size_t BH = (size_t)B * H;
    cell_input_projection(l, x, T, H);
    LaPacked whh;
    la_pack_nt(&whh, l->pack, l->w_hh, H, H);
    for (int t = 0; t < T; t++) {
        float *a = l->gates + t * BH;               /* (B,H) */
        la_matmul_packed(a, l->h + t * BH, &whh, B, 1.0f);
        float *h = l->h + (t + 1) * BH;              /* (B,H) */
        activ_tanh(a, a, BH);
        memcpy(h, a, BH * sizeof(float));
    }
}

static void rnn_backward(Layer *l, const float *x, const float *dy, float *dx, float *dh0,
                         float *dc0, int T) {
    (void)dc0;
    int B = l->B, H = l->H;
    size_t BH = (size_t)B * H;
    float *dh = l->dh;                               /* (B,H) */
    memset(dh, 0, BH * sizeof(float));
    LaPacked whh;
    la_pack_nn(&whh, l->pack, l->w_hh, H, H);
    for (int t = T - 1; t >= 0; t--) {
        float *a = l->gates + t * BH;                /* h_t in, dA_t out */
        const float *dyt = dy + t * BH;
        for (size_t k = 0; k < BH; k++) a[k] = (dyt[k] + dh[k]) * (1.0f - a[k] * a[k]);
        if (t > 0 || dh0) la_matmul_packed(dh, a, &whh, B, 0.0f);
        cell_progress(t);
    }
    if (dh0) memcpy(dh0, dh, BH * sizeof(float));
    cell_weight_gradients(l, x, l->gates, l->gates, dx, T);
}

const CellKind cell_rnn = {"rnn", 1, 0, rnn_forward, rnn_backward};
