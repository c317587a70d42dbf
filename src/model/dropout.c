/* dropout: counter-based inverted dropout (see dropout.h). */
#include "dropout.h"

#include "rng.h"

static uint64_t row_key(const ModelDropout *d, int64_t stream, int k, int64_t pos) {
    uint64_t h = rng_mix64(d->seed ^ 0x6a09e667f3bcc909ull);
    h = rng_mix64(h ^ d->step);
    h = rng_mix64(h ^ (uint64_t)stream);
    return rng_mix64(h ^ ((uint64_t)k << 48) ^ (uint64_t)pos);
}

/* kept: 24 bits of the unit's hash at or above p * 2^24 */
static inline int keep(uint64_t key, int j, uint64_t threshold) {
    return (rng_mix64(key + (uint64_t)j * 0x9e3779b97f4a7c15ull) >> 40) >= threshold;
}

static uint64_t threshold(float p) { return (uint64_t)((double)p * 16777216.0); }

int dropout_keep(const ModelDropout *d, int64_t stream, int k, int64_t pos, int j) {
    return keep(row_key(d, stream, k, pos), j, threshold(d->p));
}

void dropout_forward(const ModelDropout *d, int k, const float *y, float *out, uint8_t *mask,
                     int T, int B, int H) {
    uint64_t thr = threshold(d->p);
    float scale = 1.0f / (1.0f - d->p);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)t * B + b) * H;
            uint64_t key = row_key(d, d->stream[b], k, d->pos0 + t);
            for (int j = 0; j < H; j++) {
                mask[o + j] = (uint8_t)keep(key, j, thr);
                out[o + j] = mask[o + j] ? y[o + j] * scale : 0.0f;
            }
        }
}

void dropout_backward(const ModelDropout *d, const uint8_t *mask, float *dy, size_t n) {
    float scale = 1.0f / (1.0f - d->p);
    for (size_t i = 0; i < n; i++) dy[i] = mask[i] ? dy[i] * scale : 0.0f;
}
