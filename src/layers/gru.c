/* GRU, PyTorch gate order r, z, n:
 *   r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz),
 *   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h.
 * Because r multiplies the recurrent part of n, the input and recurrent pre-activation
 * gradients differ in the n block: dA_in = [dr dz dn], dA_rec = [dr dz dn*r]. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "activ.h"
#include "cell.h"
#include "common.h"
#include "linalg.h"

/* One stream's step backward: a (3H) holds the activated gates [r z n] and becomes dA_in,
 * rec (3H) receives dA_rec, dh (H) is the gradient from step t+1 and becomes the one
 * carried to t-1 (before the recurrent product adds to it). Restrict pointers let the
 * compiler vectorise (same arithmetic per element as a scalar loop). */
RT_SIMD_CLONES
static void gru_step_backward_row(float *restrict a, float *restrict rec, float *restrict dh,
                                  const float *restrict dy, const float *restrict hprev,
                                  const float *restrict hn, int H) {
    for (int j = 0; j < H; j++) {
        float r = a[j], z = a[H + j], n = a[2 * H + j];
        float dhj = dy[j] + dh[j];
        float dn = dhj * (1.0f - z) * (1.0f - n * n);
        float dr = dn * hn[j] * r * (1.0f - r);
        float dz = dhj * (hprev[j] - n) * z * (1.0f - z);
        a[j] = rec[j] = dr;
        a[H + j] = rec[H + j] = dz;
        a[2 * H + j] = dn;
        rec[2 * H + j] = dn * r;
        dh[j] = dhj * z;
    }
}

/* state h (B,H) -> y = h[1..T] (T,B,H); x (T,B,D). */
static void gru_forward(Layer *l, float *const *state, const float *x, int T, float *ws) {
    Cell *c = cell_of(l);
    int B = l->B, H = l->H, GH = 3 * H;
    size_t BH = (size_t)B * H;
    LaPacked whh;
    cell_forward_begin(l, state, x, T, ws, 2 * H, &whh); /* b_hn stays out: r multiplies it */
    float *rec = c->rec;                             /* (B,3H) scratch: h W_hh^T */
    for (int t = 0; t < T; t++) {
        float *a = c->gates + (size_t)t * B * GH;    /* (B,3H) */
        const float *hprev = c->h + t * BH;
        la_matmul_packed(rec, hprev, &whh, B, 0.0f);
        float *hn = c->hn + t * BH, *h = c->h + (t + 1) * BH;
        const float *b_hn = c->bhh + 2 * H;
        /* --threads: streams shared out (element-wise: the same bits on any count) */
#pragma omp parallel for schedule(static) if (B > 1 && omp_get_max_threads() > 1)
        for (int b = 0; b < B; b++) {
            float *ab = a + (size_t)b * GH;
            const float *rb = rec + (size_t)b * GH, *hp = hprev + (size_t)b * H;
            float *hnb = hn + (size_t)b * H, *hb = h + (size_t)b * H;
            for (int j = 0; j < 2 * H; j++) ab[j] += rb[j];
            activ_sigmoid(ab, ab, 2 * (size_t)H);          /* r, z */
            for (int j = 0; j < H; j++) {
                hnb[j] = rb[2 * H + j] + b_hn[j];
                ab[2 * H + j] += ab[j] * hnb[j];
            }
            activ_tanh(ab + 2 * H, ab + 2 * H, (size_t)H); /* n */
            for (int j = 0; j < H; j++) {
                float z = ab[H + j], n = ab[2 * H + j];
                hb[j] = (1.0f - z) * n + z * hp[j];
            }
        }
    }
    cell_state_out(l, state, T);
}

/* dy (T,B,H) -> dA_in (in gates), dA_rec (in rec), dh0 (B,H). */
static void gru_backward(Layer *l, const float *dy, float *const *dstate0, int T, float *ws,
                         const LayerHooks *hooks) {
    Cell *c = cell_of(l);
    int B = l->B, H = l->H, GH = 3 * H;
    size_t BH = (size_t)B * H;
    float *dh = c->dh;                               /* (B,H), carried to t-1 */
    LaPacked whh;
    cell_backward_begin(l, ws, &whh);
    for (int t = T - 1; t >= 0; t--) {
        float *a = c->gates + (size_t)t * B * GH;    /* [r z n] in, dA_in out */
        float *ar = c->rec + (size_t)t * B * GH;     /* dA_rec out */
        const float *dyt = dy + t * BH, *hprev = c->h + t * BH, *hn = c->hn + t * BH;
#pragma omp parallel for schedule(static) if (B > 1 && omp_get_max_threads() > 1)
        for (int b = 0; b < B; b++) {
            size_t k = (size_t)b * H;
            gru_step_backward_row(a + (size_t)b * GH, ar + (size_t)b * GH, dh + k, dyt + k,
                                  hprev + k, hn + k, H);
        }
        if (t > 0 || dstate0) la_matmul_packed(dh, ar, &whh, B, 1.0f);
        layer_progress(hooks, t);
    }
    cell_backward_tail(l, c->rec, dstate0, T);
}

const LayerKind layer_gru = {.name = "gru", .nstates = 1, .state_names = {"h"},
                             .forward = gru_forward, .backward = gru_backward,
                             CELL_KIND_COMMON};
