/* dropout: inverted dropout with counter-based masks (training only), used after each
 * layer of a model's stack and of a seq2seq encoder.
 *
 * Each activation is zeroed with probability p and the others scaled by 1/(1-p) (PyTorch's
 * inverted dropout). The mask of unit j of layer k, stream row b, step t of a chunk is a
 * counter-based hash of (seed, step, stream[b], k, pos0 + t, j): the same whatever the
 * streams' spread over ranks and micro-batches, and nothing to carry in checkpoints.
 * Layer keys: k for the model's layer k, DROPOUT_ENCODER_KEY + k for encoder layer k. */
#ifndef RNNTRAIN_DROPOUT_H
#define RNNTRAIN_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

#define DROPOUT_ENCODER_KEY 1024

typedef struct {
    float p;               /* in [0, 1); 0 = off */
    uint64_t seed, step;
    const int64_t *stream; /* (B) the global stream (lm) or sequence number of each row */
    int64_t pos0;          /* position of the chunk's first step within its stream */
} ModelDropout;

/* 1 if unit j of layer key k at (stream, position) is kept under d. */
int dropout_keep(const ModelDropout *d, int64_t stream, int k, int64_t pos, int j);
/* y (T,B,H) of layer key k -> out (dropped and scaled), mask (1 = kept). */
void dropout_forward(const ModelDropout *d, int k, const float *y, float *out, uint8_t *mask,
                     int T, int B, int H);
/* dy (n) of a dropped output -> of the output, in place. */
void dropout_backward(const ModelDropout *d, const uint8_t *mask, float *dy, size_t n);

#endif
