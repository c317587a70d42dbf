#include "activ.h"

#include "common.h"

RT_SIMD_CLONES
void activ_sigmoid(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float e = activ_exp_poly(activ_clampf(-x[i], -87.0f, 88.0f));
        float s = 1.0f / (1.0f + e);
        y[i] = x[i] != x[i] ? x[i] : s;
    }
}

RT_SIMD_CLONES
void activ_tanh(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], a = v < 0.0f ? -v : v;
        /* large |x|: 1 - 2/(exp(2|x|)+1); tanh(10) rounds to 1 in float (tanh(9) does not) */
        float e = activ_exp_poly(2.0f * activ_clampf(a, 0.0f, 10.0f));
        float big = 1.0f - 2.0f / (e + 1.0f);
        /* small |x|: odd polynomial (Cephes tanhf) */
        float z = v * v;
        float q = -5.70498872745e-3f;
        q = q * z + 2.06390887954e-2f;
        q = q * z - 5.37397155531e-2f;
        q = q * z + 1.33314422036e-1f;
        q = q * z - 3.33332819422e-1f;
        float small = v + v * z * q;
        float t = v < 0.0f ? -big : big;
        t = a < 0.625f ? small : t;
        y[i] = v != v ? v : t;
    }
}
