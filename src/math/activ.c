#include "activ.h"

#include <stdint.h>
#include <string.h>

#include "common.h"

/* exp for x in [-87.3, 88.3] (callers clamp). */
static inline float exp_poly(float x) {
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

/* NaN maps to lo here (keeping the float->int conversion defined); callers put the NaN
 * back into the result, so a NaN is never hidden. */
static inline float clampf(float x, float lo, float hi) {
    x = x > lo ? x : lo;
    return x < hi ? x : hi;
}

RT_SIMD_CLONES
void activ_sigmoid(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float e = exp_poly(clampf(-x[i], -87.0f, 88.0f));
        float s = 1.0f / (1.0f + e);
        y[i] = x[i] != x[i] ? x[i] : s;
    }
}

RT_SIMD_CLONES
void activ_tanh(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], a = v < 0.0f ? -v : v;
        /* large |x|: 1 - 2/(exp(2|x|)+1); tanh(10) rounds to 1 in float (tanh(9) does not) */
        float e = exp_poly(2.0f * clampf(a, 0.0f, 10.0f));
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
