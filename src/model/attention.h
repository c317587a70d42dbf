/* attention: Luong-style global attention of a decoder over its encoder's outputs, between
 * the decoder's top layer and the head (Luong, Pham and Manning 2015, without input
 * feeding, so the decoder layers still run a whole sequence at once).
 *
 * Dimensions: T decoder steps, S source steps, B sequences (time-major rows t*B + b),
 * Hd the decoder's top width, He the encoder's output width, len_b the source lengths.
 *   keys    k[s,b] = W_a e[s,b] (general, W_a (Hd,He)), or e[s,b] (dot: He = Hd)
 *   scores  a[b,t,:] = softmax over s < len_b of h[t,b] . k[s,b]   (0 for s >= len_b)
 *   context c[t,b] = sum_s a[b,t,s] e[s,b]                           (He)
 *   output  o[t,b] = tanh(W_c [c[t,b]; h[t,b]])                      (Hd), to the head
 * Parameter names: attention.weight (W_a, general only), attention.combine.weight (W_c,
 * (Hd, He+Hd)); no biases, as in the paper.
 *
 *   attention_keys(at, p, e, len, S);   once per batch of sources (keys kept for decoding)
 *   attention_forward(at, p, h, T);     at->out (T,B,Hd)
 *   attention_backward(at, p, dout, dh, de, T);  dh (T,B,Hd) written, de (S,B,He) += */
#ifndef RNNTRAIN_ATTENTION_H
#define RNNTRAIN_ATTENTION_H

#include <stdint.h>

#include "params.h"
#include "rng.h"

typedef enum { ATTENTION_NONE, ATTENTION_DOT, ATTENTION_GENERAL } AttentionKind;

const char *attention_name(AttentionKind k); /* "none", "dot", "general" */
int attention_by_name(const char *name);     /* -1 if unknown */

typedef struct {
    AttentionKind kind;
    int Hd, He, B, Tmax, Smax;
    int w_a, w_c;           /* parameter indices (w_a -1 for dot) */
    const float *e;         /* (S,B,He) the encoder's outputs (borrowed) */
    const int32_t *len;     /* (B) source lengths (borrowed) */
    int S;
    float *keys;            /* (Smax,B,Hd) general; dot uses e */
    float *a;               /* (B,Tmax,Smax) weights */
    float *u;               /* (Tmax,B,He+Hd) [context; h] */
    float *out;             /* (Tmax,B,Hd) */
    float *dpre, *du;       /* (Tmax,B,Hd), (Tmax,B,He+Hd) */
    float *da;              /* (Tmax,Smax) one sequence's score gradient */
    float *dkeys;           /* (Smax,B,Hd) */
} Attention;

void attention_declare(Attention *at, AttentionKind kind, int Hd, int He, Params *p);
void attention_alloc(Attention *at, int B, int Tmax, int Smax);
void attention_free(Attention *at);
/* nn.Linear's default draw (bound 1/sqrt(fan_in)) of W_a then W_c from g. */
void attention_init_weights(Attention *at, TorchRng *g, const Params *p);
void attention_keys(Attention *at, const Params *p, const float *e, const int32_t *len, int S);
void attention_forward(Attention *at, const Params *p, const float *h, int T);
/* dout (T,B,Hd) read; dh (T,B,Hd) written (may be dout's buffer); de (S,B,He) +=. */
void attention_backward(Attention *at, Params *p, const float *dout, float *dh, float *de, int T);
/* Multiply-adds x2 per decoder token for sources of S steps. */
double attention_flops_per_token(const Attention *at, int S);

#endif
