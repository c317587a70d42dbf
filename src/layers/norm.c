#include "norm.h"

#include <math.h>
#include <stddef.h>

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

void norm_layer_forward(float *y, float *mean, float *rinv, const float *x, const float *w,
                        const float *b, int M, int N) {
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * N;
        float *yi = y + (size_t)i * N;
        double s = 0.0;
        for (int j = 0; j < N; j++) s += xi[j];
        double mu = s / N, v = 0.0;
        for (int j = 0; j < N; j++) v += ((double)xi[j] - mu) * ((double)xi[j] - mu);
        float r = (float)(1.0 / sqrt(v / N + NORM_EPS)), m = (float)mu;
        mean[i] = m;
        rinv[i] = r;
        for (int j = 0; j < N; j++) yi[j] = (xi[j] - m) * r * w[j] + b[j];
    }
}

/* xhat = (x - mu) r, g = dy * w: dx = r (g - mean(g) - xhat mean(g xhat)). */
void norm_layer_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, const float *mean, const float *rinv, int M, int N,
                         int accumulate) {
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * N, *gi = dy + (size_t)i * N;
        float *di = dx + (size_t)i * N;
        float r = rinv[i], m = mean[i];
        double sg = 0.0, sgx = 0.0;
        for (int j = 0; j < N; j++) {
            float xh = (xi[j] - m) * r, g = gi[j] * w[j];
            sg += g;
            sgx += (double)g * xh;
            dw[j] += gi[j] * xh;
            db[j] += gi[j];
        }
        float mg = (float)(sg / N), mgx = (float)(sgx / N);
        for (int j = 0; j < N; j++) {
            float xh = (xi[j] - m) * r;
            float d = r * (gi[j] * w[j] - mg - xh * mgx);
            di[j] = accumulate ? di[j] + d : d;
        }
    }
}
