/* rng: xoshiro256** seeded through splitmix64. The whole state is four 64-bit words, so
 * it can be saved and restored exactly. */
#ifndef RNNTRAIN_RNG_H
#define RNNTRAIN_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

/* splitmix64's finaliser: a stateless 64-bit mix, for counter-based draws (a hash of a key). */
static inline uint64_t rng_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, 1). */
double rng_uniform(Rng *r);
/* Standard normal (Box-Muller, one value per call). */
double rng_normal(Rng *r);
/* Fisher-Yates: a[0..n) in a random order (from the end, swapping a[i] with a[u64 % (i+1)]). */
void rng_shuffle_i64(Rng *r, int64_t *a, int64_t n);

/* PyTorch's CPU generator: mt19937 seeded with the low 32 bits of the seed, as
 * torch.manual_seed(seed) does, and the float transforms of Tensor.uniform_ and
 * Tensor.normal_ on a contiguous float tensor (PyTorch 1.13). The PyTorch-default init
 * draws from it, so `--init pytorch --seed S` gives the initial weights of
 * torch.manual_seed(S) followed by the nn modules' constructors: uniform_ bit for bit
 * against PyTorch's AVX2/AVX-512 kernels (1 ulp apart in about half the values against its
 * baseline kernel); normal_ within about 2.5e-6 absolute on N(0,1) values (PyTorch's AVX2
 * kernel evaluates log/sin/cos with its own approximations; tensors of fewer than 16 values
 * take PyTorch's scalar path, bit for bit). */
typedef struct {
    uint32_t mt[624];
    int next;
} TorchRng;

void torch_rng_seed(TorchRng *g, uint64_t seed);
uint32_t torch_rng_u32(TorchRng *g);
/* w[0..n) = U[from, to) as Tensor.uniform_(from, to) on float32. */
void torch_uniform_fill(TorchRng *g, float *w, size_t n, double from, double to);
/* w[0..n) = N(mean, std^2) as Tensor.normal_(mean, std) on float32. */
void torch_normal_fill(TorchRng *g, float *w, size_t n, double mean, double std);

#endif
