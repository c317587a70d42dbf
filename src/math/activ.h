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

#include <stddef.h>

void activ_sigmoid(float *y, const float *x, size_t n);
void activ_tanh(float *y, const float *x, size_t n);

#endif
