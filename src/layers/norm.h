/* norm: the row normalisations of the residual blocks (Mamba's RMSNorm, S5's LayerNorm).
 *
 * Rows are independent: x (M,N) -> y (M,N), with the reciprocal root of each row saved for
 * the backward pass (and LayerNorm's mean). Backward functions take x as given to forward.
 * Sums are in double, in a fixed order: deterministic. */
#ifndef RNNTRAIN_NORM_H
#define RNNTRAIN_NORM_H

#define NORM_EPS 1e-5

/* RMSNorm: y = x / sqrt(mean(x^2) + eps) * w; rinv (M) saved. y may be x. */
void norm_rms_forward(float *y, float *rinv, const float *x, const float *w, int M, int N);
/* From dy (M,N): dw (N) += sum_rows dy * x * rinv; dx (M,N) = the input gradient, or +=
 * it with accumulate. dx may be dy. */
void norm_rms_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                       const float *rinv, int M, int N, int accumulate);
/* LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b; mean, rinv (M) saved. y may be x. */
void norm_layer_forward(float *y, float *mean, float *rinv, const float *x, const float *w,
                        const float *b, int M, int N);
/* dw, db (N) +=; dx = or += the input gradient; dx may be dy. */
void norm_layer_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, const float *mean, const float *rinv, int M, int N,
                         int accumulate);

#endif
