/* rng: xoshiro256** seeded through splitmix64. The whole state is four 64-bit words, so
 * it can be saved and restored exactly. */
#ifndef RNNTRAIN_RNG_H
#define RNNTRAIN_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, 1). */
double rng_uniform(Rng *r);
/* Standard normal (Box-Muller, one value per call). */
double rng_normal(Rng *r);

#endif
