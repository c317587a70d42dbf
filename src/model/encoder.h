/* encoder: the source side of a seq2seq model, a stack of layers over the source tokens,
 * optionally bidirectional, run over whole sequences (no state is carried in or out).
 *
 * Dimensions: B sequences, S source steps (time-major: row s*B + b), E embedding width,
 * H_k the width of layer k, W_k = H_k (one direction) or 2 H_k (bidirectional), W = W_top.
 *
 * A bidirectional layer k runs a forward layer over x (S,B,D) and a reverse layer over each
 * sequence reversed within its own length: xr[s,b] = x[len_b-1-s, b] for s < len_b (zero
 * past it). Its output out_k[s,b] = [yf[s,b], yr[len_b-1-s, b]] (zero past len_b), the
 * input of layer k+1; PyTorch's nn.LSTM(bidirectional=True) does the same on a packed
 * sequence. Parameter names: a uniform stack of cells is one module, encoder.rnn.*_l{k}
 * and *_l{k}_reverse; otherwise encoder.layers.{k}.*_l0[_reverse] for cells and
 * encoder.layers.{k}.* / encoder.layers.{k}_reverse.* for the state space kinds.
 *
 * The hand-over: summary[b] (W) = out_top[len_b-1, b] (one direction), or the forward
 * half there and the reverse half at step 0 (each direction's last step: PyTorch's h_n).
 *
 *   encoder_forward(enc, p, tokens, len, S, drop, ws);    enc->top (S,B,W), summary
 *   encoder_backward(enc, p, dout, dsummary, S, ws, ...);  += gradients; dout is clobbered */
#ifndef RNNTRAIN_ENCODER_H
#define RNNTRAIN_ENCODER_H

#include <stdint.h>

#include "dropout.h"
#include "layer.h"
#include "params.h"

#define ENCODER_MAX_LAYERS 16

typedef struct {
    int L, bidir, B, Smax, E, V;
    int emb;                                  /* encoder.embedding.weight (V,E) */
    Layer fwd[ENCODER_MAX_LAYERS], rev[ENCODER_MAX_LAYERS];
    int W[ENCODER_MAX_LAYERS];                /* output width of layer k */
    int32_t *tokens;                          /* (Smax,B) of the last forward */
    int32_t *len;                             /* (B) */
    int S;                                    /* steps of the last forward */
    float *x0;                                /* (Smax,B,E) embedded source */
    float *xr[ENCODER_MAX_LAYERS];            /* (Smax,B,D_k) reversed input (bidirectional) */
    float *cat[ENCODER_MAX_LAYERS];           /* (Smax,B,W_k) concatenated output (bidir) */
    float *out[ENCODER_MAX_LAYERS];           /* = cat[k], or fwd[k].y (one direction) */
    /* dropout (DROPOUT_ENCODER_KEY + k, source positions from 0) after each layer */
    const ModelDropout *drop;                 /* of the last forward, NULL: none */
    float *drop_out[ENCODER_MAX_LAYERS];      /* (Smax,B,W_k) allocated on first use */
    uint8_t *drop_mask[ENCODER_MAX_LAYERS];
    const float *used[ENCODER_MAX_LAYERS];    /* the output as the next layer reads it */
    const float *top;                         /* (S,B,W) = used[L-1]: to attention */
    float *summary;                           /* (B,W) the hand-over */
    float *state[ENCODER_MAX_LAYERS][2][LAYER_MAX_STATES]; /* (B,width) zeroed per forward */
    float *dy, *dyr, *dx, *dxr;               /* gradient scratch (Smax,B,max width) */
} Encoder;

/* Bidirectional layers, shared by the encoder and the model's own stack (classify, tag,
 * regress): rows time-major (S,B), each sequence b reversed within its length len[b].
 *   bidir_reverse       dst[s,b] (W) = src[len_b-1-s, b], zero for s >= len_b
 *   bidir_concat        cat[s,b] (2H) = [yf[s,b], yr[len_b-1-s, b]] (second half zero past len_b)
 *   bidir_split         the gradient of cat into dyf (forward order) and dyr (reversed order)
 *   bidir_add_reversed  dx[s,b] += dxr[len_b-1-s, b] for s < len_b (D wide) */
void bidir_reverse(float *dst, const float *src, const int32_t *len, int S, int B, int W);
void bidir_concat(float *cat, const float *yf, const float *yr, const int32_t *len, int S, int B,
                  int H);
void bidir_split(float *dyf, float *dyr, const float *dcat, const int32_t *len, int S, int B,
                 int H);
void bidir_add_reversed(float *dx, const float *dxr, const int32_t *len, int S, int B, int D);

/* Declares the parameters (after the model's own) for source vocabulary V and width E. */
void encoder_declare(Encoder *enc, const LayerSpec *spec, int L, int bidir, int V, int E,
                     Params *p);
/* After params_alloc: activations for B sequences of up to Smax steps. */
void encoder_alloc(Encoder *enc, const Params *p, int B, int Smax);
void encoder_free(Encoder *enc);
/* The model's workspace must hold this many floats for the encoder's layers. */
size_t encoder_workspace_floats(const Encoder *enc);
/* Output width of the top layer (the hand-over width). */
int encoder_width(const Encoder *enc);
/* First parameter tensor and count (initialisation, gradient ranges). */
void encoder_param_range(const Encoder *enc, int *first, int *count);
/* PyTorch-style initialisation from g: the embedding N(0,1), each layer as its kind does. */
void encoder_init_weights(Encoder *enc, const LayerInit *init, const Params *p);
/* tokens (S,B) with lengths len (B) in 1..S -> top (S,B,W) and summary (B,W); drop: the
 * dropout of a training step, or NULL. */
void encoder_forward(Encoder *enc, const Params *p, const int32_t *tokens, const int32_t *len,
                     int S, const ModelDropout *drop, float *ws);
/* dout (S,B,W) gradient of the top output (NULL: none), dsummary (B,W) of the hand-over;
 * accumulates the parameter gradients. dout may be modified. */
void encoder_backward(Encoder *enc, Params *p, float *dout, const float *dsummary, float *ws,
                      const LayerHooks *hooks);

#endif
