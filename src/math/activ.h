/* activ: sigmoid and tanh over arrays, vectorised. glibc's scalar tanhf/expf were a quarter
 * of the training time; these are branch-free (selects instead of branches), so the
 * compiler vectorises them, and each is built for AVX-512, AVX2 and baseline x86-64 with
 * the best chosen at load time (target_clones), so the binary stays portable.
 *
 * Accuracy (checked against libm in tests/test_activ.c): relative error below 1e-6
 * wherever the result is a normal float; sigmoid(x < -87) returns ~1e-38 instead of a
 * denormal (absolute error < 2e-38). NaN in gives NaN out. No -ffast-math involved.
 *   exp(x)    = 2^n * p(r), x = n ln2 + r, |r| <= ln2/2, p a degree-7 polynomial (Cephes)
 *   sigmoid(x) = 1 / (1 + exp(-x))
 *   tanh(x)   = x + x^3 q(x^2) for |x| < 0.625, else sign(x) (1 - 2 / (exp(2|x|) + 1)) */
#ifndef RNNTRAIN_ACTIV_H
#define RNNTRAIN_ACTIV_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* exp for x in [-87.3, 88.3] (callers clamp); inline so that fused loops elsewhere (the
 * state space scans) vectorise with it. */
static inline float activ_exp_poly(float x) {
    const float log2e = 1.44269504088896341f, c1 = 0.693359375f, c2 = -2.12194440e-4f;
    float fx = x * log2e;
    /* round to nearest without libm: add and subtract 1.5*2^23 */
    const float shifter = 12582912.0f;
    float n = (fx + shifter) - shifter;
    float r = x - n * c1 - n * c2;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* activ_exp_poly's polynomial evaluated with fmaf (range reduction and Horner steps fused):
 * for loops built with RT_FMA_CLONES, same accuracy. Needs <math.h>. */
static inline float activ_exp_fma(float x) {
    const float log2e = 1.44269504088896341f, c1 = 0.693359375f, c2 = -2.12194440e-4f;
    const float shifter = 12582912.0f;
    float n = (x * log2e + shifter) - shifter;
    float r = fmaf(-n, c2, fmaf(-n, c1, x));
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* NaN maps to lo here (keeping the float->int conversion defined); callers put the NaN
 * back into the result, so a NaN is never hidden. */
static inline float activ_clampf(float x, float lo, float hi) {
    x = x > lo ? x : lo;
    return x < hi ? x : hi;
}

/* exp(x) for any x: 0 below -87, +large above 88 (not inf), NaN kept. */
static inline float activ_expf(float x) {
    float e = activ_exp_poly(activ_clampf(x, -87.0f, 88.0f));
    return x != x ? x : e;
}

static inline float activ_sigmoidf(float x) { return 1.0f / (1.0f + activ_expf(-x)); }

void activ_sigmoid(float *y, const float *x, size_t n);
void activ_tanh(float *y, const float *x, size_t n);

#endif
