#include "norm.h"

#include <math.h>
#include <stddef.h>

#include "common.h"

void norm_rms_forward(float *y, float *rinv, const float *x, const float *w, int M, int N) {
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * N;
        float *yi = y + (size_t)i * N;
        double ss = 0.0;
        for (int j = 0; j < N; j++) ss += (double)xi[j] * xi[j];
        float r = (float)(1.0 / sqrt(ss / N + NORM_EPS));
        rinv[i] = r;
        for (int j = 0; j < N; j++) yi[j] = xi[j] * r * w[j];
    }
}

/* y_j = x_j r w_j, r = (mean x^2 + eps)^-1/2, g = dy * w:
 * dx_j = r g_j - x_j r^3 (sum_k g_k x_k) / N. */
void norm_rms_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                       const float *rinv, int M, int N, int accumulate) {
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * N, *gi = dy + (size_t)i * N;
        float *di = dx + (size_t)i * N;
        float r = rinv[i];
        double gx = 0.0;
        for (int j = 0; j < N; j++) {
            gx += (double)gi[j] * w[j] * xi[j];
            dw[j] += gi[j] * xi[j] * r;
        }
        float c = (float)(gx / N) * r * r * r;
        for (int j = 0; j < N; j++) {
            float d = r * gi[j] * w[j] - xi[j] * c;
            di[j] = accumulate ? di[j] + d : d;
        }
    }
}

/* Sums of LayerNorm rows in NORM_LANES double lanes, combined in a fixed order:
 * deterministic, and vectorised without reassociation. */
#define NORM_LANES 8

static double lanes_total(const double *lane) {
    double s = 0.0;
    for (int k = 0; k < NORM_LANES; k++) s += lane[k];
    return s;
}

RT_SIMD_CLONES
void norm_layer_forward(float *y, float *mean, float *rinv, const float *x, const float *w,
                        const float *b, int M, int N) {
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * N;
        float *yi = y + (size_t)i * N;
        double ls[NORM_LANES] = {0}, lv[NORM_LANES] = {0};
        int j = 0;
        for (; j + NORM_LANES <= N; j += NORM_LANES)
            for (int k = 0; k < NORM_LANES; k++) ls[k] += xi[j + k];
        double s = lanes_total(ls);
        for (; j < N; j++) s += xi[j];
        double mu = s / N;
        for (j = 0; j + NORM_LANES <= N; j += NORM_LANES)
            for (int k = 0; k < NORM_LANES; k++) {
                double d = (double)xi[j + k] - mu;
                lv[k] += d * d;
            }
        double v = lanes_total(lv);
        for (; j < N; j++) v += ((double)xi[j] - mu) * ((double)xi[j] - mu);
        float r = (float)(1.0 / sqrt(v / N + NORM_EPS)), m = (float)mu;
        mean[i] = m;
        rinv[i] = r;
        for (j = 0; j < N; j++) yi[j] = (xi[j] - m) * r * w[j] + b[j];
    }
}

/* xhat = (x - mu) r, g = dy * w: dx = r (g - mean(g) - xhat mean(g xhat)). */
RT_SIMD_CLONES
void norm_layer_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, const float *mean, const float *rinv, int M, int N,
                         int accumulate) {
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * N, *gi = dy + (size_t)i * N;
        float *di = dx + (size_t)i * N;
        float r = rinv[i], m = mean[i];
        double lg[NORM_LANES] = {0}, lgx[NORM_LANES] = {0};
        int j = 0;
        for (; j + NORM_LANES <= N; j += NORM_LANES)
            for (int k = 0; k < NORM_LANES; k++) {
                float xh = (xi[j + k] - m) * r, g = gi[j + k] * w[j + k];
                lg[k] += g;
                lgx[k] += (double)g * xh;
                dw[j + k] += gi[j + k] * xh;
                db[j + k] += gi[j + k];
            }
        double sg = lanes_total(lg), sgx = lanes_total(lgx);
        for (; j < N; j++) {
            float xh = (xi[j] - m) * r, g = gi[j] * w[j];
            sg += g;
            sgx += (double)g * xh;
            dw[j] += gi[j] * xh;
            db[j] += gi[j];
        }
        float mg = (float)(sg / N), mgx = (float)(sgx / N);
        for (j = 0; j < N; j++) {
            float xh = (xi[j] - m) * r;
            float d = r * (gi[j] * w[j] - mg - xh * mgx);
            di[j] = accumulate ? di[j] + d : d;
        }
    }
}
