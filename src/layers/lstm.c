/* LSTM, PyTorch gate order i, f, g, o:
 *   [i f g o] = [s s tanh s](W_ih x + b_ih + W_hh h + b_hh),  c' = f*c + i*g,
 *   h' = o * tanh(c'). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "activ.h"
#include "cell.h"
#include "common.h"
#include "linalg.h"

/* One stream's cell update c = f*c_prev + i*g from the activated gates a = [i f g o] (4H). */
RT_SIMD_CLONES
static void lstm_cell_row(float *restrict c, const float *restrict a, const float *restrict cprev,
                          int H) {
    for (int j = 0; j < H; j++) c[j] = a[H + j] * cprev[j] + a[j] * a[2 * H + j];
}

/* One stream's output h = o * tanh(c). */
RT_SIMD_CLONES
static void lstm_output_row(float *restrict h, const float *restrict o, const float *restrict tc,
                            int H) {
    for (int j = 0; j < H; j++) h[j] = o[j] * tc[j];
}

/* One stream's step backward, in place: a (4H) holds the activated gates [i f g o] and
 * becomes dA; dc (H) carries dc into the step and out to t-1. tc = tanh(c_t), dy the
 * gradient reaching h_t from above and dh the one from step t+1. Separate restrict
 * pointers let the compiler vectorise (same arithmetic per element as a scalar loop). */
RT_SIMD_CLONES
static void lstm_step_backward_row(float *restrict a, float *restrict dc, const float *restrict tc,
                                   const float *restrict dy, const float *restrict dh,
                                   const float *restrict cprev, int H) {
    for (int j = 0; j < H; j++) {
        float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        float dhj = dy[j] + dh[j];
        float dcj = dc[j] + dhj * o * (1.0f - tc[j] * tc[j]);
        a[j] = dcj * g * i * (1.0f - i);
        a[H + j] = dcj * cprev[j] * f * (1.0f - f);
        a[2 * H + j] = dcj * i * (1.0f - g * g);
        a[3 * H + j] = dhj * tc[j] * o * (1.0f - o);
        dc[j] = dcj * f;
    }
}

/* state h, c (B,H) -> y = h[1..T] (T,B,H); x (T,B,D). */
static void lstm_forward(Layer *l, float *const *state, const float *x, int T, float *ws) {
    Cell *c = cell_of(l);
    int B = l->B, H = l->H, GH = 4 * H;
    size_t BH = (size_t)B * H;
    LaPacked whh;
    cell_forward_begin(l, state, x, T, ws, GH, &whh);
    for (int t = 0; t < T; t++) {
        float *a = c->gates + (size_t)t * B * GH;    /* (B,4H) */
        const float *hprev = c->h + t * BH;          /* (B,H) */
        la_matmul_packed(a, hprev, &whh, B, 1.0f);
        const float *cprev = c->c + t * BH;
        float *ct = c->c + (t + 1) * BH, *h = c->h + (t + 1) * BH;
        /* --threads: streams shared out (element-wise: the same bits on any count) */
#pragma omp parallel for schedule(static) if (B > 1 && omp_get_max_threads() > 1)
        for (int b = 0; b < B; b++) {
            float *ab = a + (size_t)b * GH, *tc = c->tmp + (size_t)b * H;
            activ_sigmoid(ab, ab, 2 * (size_t)H);          /* i, f */
            activ_tanh(ab + 2 * H, ab + 2 * H, (size_t)H); /* g */
            activ_sigmoid(ab + 3 * H, ab + 3 * H, (size_t)H); /* o */
            lstm_cell_row(ct + (size_t)b * H, ab, cprev + (size_t)b * H, H);
            activ_tanh(tc, ct + (size_t)b * H, (size_t)H);
            lstm_output_row(h + (size_t)b * H, ab + 3 * H, tc, H);
        }
    }
    cell_state_out(l, state, T);
}

/* dy (T,B,H) -> dA (in gates), dh0 and dc0 (B,H). */
static void lstm_backward(Layer *l, const float *dy, float *const *dstate0, int T, float *ws,
                          const LayerHooks *hooks) {
    Cell *c = cell_of(l);
    int B = l->B, H = l->H, GH = 4 * H;
    size_t BH = (size_t)B * H;
    float *dh = c->dh, *dc = c->dc;                  /* (B,H), carried to t-1 */
    LaPacked whh;
    cell_backward_begin(l, ws, &whh);
    cell_keep_dA(l);
    for (int t = T - 1; t >= 0; t--) {
        float *a = c->gates + (size_t)t * B * GH;    /* gates in, dA_t out (B,4H) */
        const float *dyt = dy + t * BH;
        const float *cprev = c->c + t * BH;
        const float *ct = c->c + (t + 1) * BH;
#pragma omp parallel for schedule(static) if (B > 1 && omp_get_max_threads() > 1)
        for (int b = 0; b < B; b++) {
            size_t k = (size_t)b * H;
            activ_tanh(c->tmp + k, ct + k, (size_t)H);
            lstm_step_backward_row(a + (size_t)b * GH, dc + k, c->tmp + k, dyt + k, dh + k,
                                   cprev + k, H);
        }
        if (t > 0 || dstate0)
            la_matmul_packed_keep(dh, a, &whh, B, 0.0f, cell_dA_kept(l, t));
        else
            la_keep_rows(cell_dA_kept(l, t), a, B, c->G * H);
        layer_progress(hooks, t);
    }
    cell_backward_tail(l, c->gates, dstate0, T);
}

const LayerKind layer_lstm = {.name = "lstm", .nstates = 2, .state_names = {"h", "c"},
                              .forward = lstm_forward, .backward = lstm_backward,
                              CELL_KIND_COMMON};
