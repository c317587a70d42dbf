#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) { return rng_mix64(*x += 0x9e3779b97f4a7c15ULL); }

void rng_seed(Rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

void rng_shuffle_i64(Rng *r, int64_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_u64(r) % (uint64_t)(i + 1));
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---- PyTorch's CPU generator ------------------------------------------------------- */

void torch_rng_seed(TorchRng *g, uint64_t seed) {
    g->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int i = 1; i < 624; i++)
        g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
    g->next = 624;
}

/* The 624-word twist of the reference mt19937. */
static void torch_rng_twist(TorchRng *g) {
    uint32_t *mt = g->mt;
    for (int i = 0; i < 624; i++) {
        uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % 624] & 0x7fffffffu);
        mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    g->next = 0;
}

uint32_t torch_rng_u32(TorchRng *g) {
    if (g->next >= 624) torch_rng_twist(g);
    uint32_t y = g->mt[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* One float in [from, to): 24 random bits scaled to [0, 1), then x*(to-from)+from with one
 * rounding, as PyTorch's vectorised (AVX2/AVX-512) CPU kernels compute it (their compiler
 * fuses it into a multiply-add). PyTorch's baseline kernel, used on CPUs without AVX2,
 * rounds twice and differs from this in the last bit of about half the values. */
static float torch_uniform_one(TorchRng *g, float from, float to) {
    float x = (float)(torch_rng_u32(g) & 0xffffffu) * (1.0f / 16777216.0f);
    return fmaf(x, to - from, from);
}

/* One double in [0, 1) as PyTorch's uniform_real_distribution<double>: two 32-bit draws
 * make 64 bits (first draw high), 53 of them scaled. */
static double torch_uniform_double(TorchRng *g) {
    uint64_t hi = torch_rng_u32(g), lo = torch_rng_u32(g);
    return (double)(((hi << 32) | lo) & ((1ULL << 53) - 1)) * 0x1.0p-53;
}

void torch_uniform_fill(TorchRng *g, float *w, size_t n, double from, double to) {
    float f = (float)from, t = (float)to;
    for (size_t i = 0; i < n; i++) w[i] = torch_uniform_one(g, f, t);
}

/* Box-Muller over 16 uniforms: d[j] and d[j+8] (j < 8) from the pair (d[j], d[j+8]). */
static void torch_normal_16(float *d, float mean, float std) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j], u2 = d[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = (float)(2.0 * 3.14159265358979323846 * (double)u2);
        d[j] = radius * cosf(theta) * std + mean;
        d[j + 8] = radius * sinf(theta) * std + mean;
    }
}

void torch_normal_fill(TorchRng *g, float *w, size_t n, double mean, double std) {
    float m = (float)mean, s = (float)std;
    if (n < 16) { /* PyTorch 1.13's scalar path: double Box-Muller, second value kept for the
                   * next (later versions take log1p(-u2) instead of log(1 - u2)) */
        int have_next = 0;
        double next = 0.0;
        for (size_t i = 0; i < n; i++) {
            double z;
            if (have_next) {
                z = next;
                have_next = 0;
            } else {
                double u1 = torch_uniform_double(g), u2 = torch_uniform_double(g);
                double r = sqrt(-2.0 * log(1.0 - u2)), theta = 2.0 * 3.14159265358979323846 * u1;
                next = r * sin(theta);
                have_next = 1;
                z = r * cos(theta);
            }
            w[i] = (float)(z * std + mean);
        }
        return;
    }
    /* Every value drawn uniform first, then transformed 16 at a time; a ragged end redraws
     * the last 16 values and transforms them (as PyTorch's normal_fill does). */
    for (size_t i = 0; i < n; i++) w[i] = torch_uniform_one(g, 0.0f, 1.0f);
    for (size_t i = 0; i + 16 <= n; i += 16) torch_normal_16(w + i, m, s);
    if (n % 16 != 0) {
        float *tail = w + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = torch_uniform_one(g, 0.0f, 1.0f);
        torch_normal_16(tail, m, s);
    }
}
