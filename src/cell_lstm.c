/* LSTM, PyTorch gate order i, f, g, o:
 *   [i f g o] = [s s tanh s](W_ih x + b_ih + W_hh h + b_hh),  c' = f*c + i*g,
 *   h' = o * tanh(c'). */
#include <math.h>
#include <string.h>

#include "activ.h"
#include "cell.h"
#include "linalg.h"

static void lstm_forward(Layer *l, const float *x, int T) {
    int B = l->B, H = l->H, GH = 4 * H;
    size_t BH = (size_t)B * H;
    cell_input_projection(l, x, T, GH);
    LaPacked whh;
    la_pack_nt(&whh, l->pack, l->w_hh, GH, H);
    for (int t = 0; t < T; t++) {
        float *a = l->gates + (size_t)t * B * GH;    /* (B,4H) */
        const float *hprev = l->h + t * BH;          /* (B,H) */
        la_matmul_packed(a, hprev, &whh, B, 1.0f);
        const float *cprev = l->c + t * BH;
        float *c = l->c + (t + 1) * BH, *h = l->h + (t + 1) * BH;
        for (int b = 0; b < B; b++) {
            float *ab = a + (size_t)b * GH;
            activ_sigmoid(ab, ab, 2 * (size_t)H);          /* i, f */
            activ_tanh(ab + 2 * H, ab + 2 * H, (size_t)H); /* g */
            activ_sigmoid(ab + 3 * H, ab + 3 * H, (size_t)H); /* o */
            const float *cp = cprev + (size_t)b * H;
            float *cb = c + (size_t)b * H;
            for (int j = 0; j < H; j++) cb[j] = ab[H + j] * cp[j] + ab[j] * ab[2 * H + j];
        }
        activ_tanh(l->tmp, c, BH);
        for (int b = 0; b < B; b++) {
            const float *o = a + (size_t)b * GH + 3 * H, *tc = l->tmp + (size_t)b * H;
            float *hb = h + (size_t)b * H;
            for (int j = 0; j < H; j++) hb[j] = o[j] * tc[j];
        }
    }
}

static void lstm_backward(Layer *l, const float *x, const float *dy, float *dx, float *dh0,
                          float *dc0, int T) {
    int B = l->B, H = l->H, GH = 4 * H;
    size_t BH = (size_t)B * H;
    float *dh = l->dh, *dc = l->dc;                  /* (B,H), carried to t-1 */
    memset(dh, 0, BH * sizeof(float));
    memset(dc, 0, BH * sizeof(float));
    LaPacked whh;
    la_pack_nn(&whh, l->pack, l->w_hh, GH, H);
    for (int t = T - 1; t >= 0; t--) {
        float *a = l->gates + (size_t)t * B * GH;    /* gates in, dA_t out (B,4H) */
        const float *dyt = dy + t * BH;
        const float *cprev = l->c + t * BH;
        activ_tanh(l->tmp, l->c + (t + 1) * BH, BH);
        for (int b = 0; b < B; b++) {
            float *ab = a + (size_t)b * GH;
            for (int j = 0; j < H; j++) {
                size_t k = (size_t)b * H + j;
                float i = ab[j], f = ab[H + j], g = ab[2 * H + j], o = ab[3 * H + j];
                float tc = l->tmp[k];
                float dhk = dyt[k] + dh[k];
                float dck = dc[k] + dhk * o * (1.0f - tc * tc);
                ab[j] = dck * g * i * (1.0f - i);
                ab[H + j] = dck * cprev[k] * f * (1.0f - f);
                ab[2 * H + j] = dck * i * (1.0f - g * g);
                ab[3 * H + j] = dhk * tc * o * (1.0f - o);
                dc[k] = dck * f;
            }
        }
        if (t > 0 || dh0) la_matmul_packed(dh, a, &whh, B, 0.0f);
        cell_progress(t);
    }
    if (dh0) memcpy(dh0, dh, BH * sizeof(float));
    if (dc0) memcpy(dc0, dc, BH * sizeof(float));
    cell_weight_gradients(l, x, l->gates, l->gates, dx, T);
}

const CellKind cell_lstm = {"lstm", 4, 1, lstm_forward, lstm_backward};
