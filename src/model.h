/* model: embedding -> L recurrent layers -> linear head, run over one TBPTT chunk.
 *
 * Dimensions: B streams on this rank, T chunk length, E embedding width, H hidden size,
 * V vocabulary, L layers. Tokens and activations are time-major: row t*B + b is stream b
 * at step t. The carried state lives in each layer's h[0] (and c[0]).
 *
 * One training step on a chunk:
 *   model_forward(m, inputs, T);                 logits (T,B,V)
 *   loss = model_loss(m, targets, T, scale, 1);  logits -> scale * dLoss/dlogits
 *   model_backward(m, T, NULL, NULL);            += gradients
 *   model_carry(m, T);                           state for the next chunk */
#ifndef RNNTRAIN_MODEL_H
#define RNNTRAIN_MODEL_H

#include <stdint.h>

#include "cell.h"
#include "params.h"
#include "rng.h"

#define MODEL_MAX_LAYERS 16

/* Language models: tokens in (embedding V x E), V logits out. Sequence tasks may instead
 * read E float features per step (float_inputs), put V = classes or regression outputs,
 * and take a conditioning vector of C values per sequence that sets every layer's initial
 * hidden state through a learned projection: h0 = tanh(W_c c + b_c) (PyTorch-style names
 * cond.weight (L*H, C), cond.bias (L*H)). Zero-initialised fields give a language model. */
typedef struct {
    const CellKind *cell;
    int L, H, E, V;
    int float_inputs; /* 1: E features per step, no embedding */
    int C;            /* conditioning width, 0 = none */
    int in_vocab;     /* token inputs: embedding rows, 0 = V (language models) */
} ModelShape;

typedef struct {
    ModelShape shape;
    int B, Tmax;
    Params params;
    int emb, head_w, head_b; /* parameter indices (emb -1 with float inputs) */
    int cond_w, cond_b;      /* -1 without conditioning */
    int layer_param[MODEL_MAX_LAYERS]; /* index of rnn.weight_ih_l{k} */
    Layer layers[MODEL_MAX_LAYERS];
    int32_t *inputs;  /* (Tmax,B) */
    /* One scratch buffer holds, at different moments of a step, the embedded inputs x0
     * (Tmax,B,E) until layer 0's input projection, the packed W_hh of the layer in its time
     * loop, and the logits (Tmax,B,V) from the head until its backward; x0 is gathered again
     * for layer 0's weight gradients. (Saves two activation-sized buffers.) */
    float *scratch;
    size_t scratch_floats;
    float *x0;        /* = scratch (token inputs), or the caller's features */
    float *logits;    /* = scratch: logits, then their gradients */
    int T_last;       /* steps of the last forward (for the refill) */
    float *dbuf;      /* (Tmax,B,max(E,H)) gradient flowing down the stack: dLoss/dh of a
                         layer's outputs, overwritten in place by dLoss/dx of its inputs */
    float *pack;      /* packed W_hh scratch shared by the layers */
    float *cond_in;   /* (B,C) conditioning of the current sequences */
    float *cond_h0;   /* (B,L*H) tanh(W_c c + b_c) */
    float *dh0;       /* (L,B,H) gradient w.r.t. the initial states (conditioning) */
    /* If set, called during model_backward as soon as a contiguous range of the gradient
     * (in floats, from params.grad) is final: the head, then each layer from the top, then
     * the embedding. The ranges cover the whole gradient exactly once. */
    void (*grad_ready)(void *ctx, size_t offset, size_t count);
    void *grad_ctx;
    /* Tests: 1 = always take the embedding gradient through layer 0's dx (see
     * model_backward), never through the per-token sums. */
    int emb_grad_direct;
} Model;

typedef enum { INIT_PYTORCH, INIT_UNIFORM, INIT_ORTHOGONAL } InitKind;

/* Builds the parameter layout (PyTorch names) and allocates activations for B x Tmax. */
void model_init(Model *m, ModelShape shape, int B, int Tmax);
/* A second model over the SAME parameter arrays as owner (e.g. for evaluation with another
 * number of streams): own activations, borrowed values and gradients. */
void model_init_shared(Model *m, const Model *owner, int B, int Tmax);
void model_free(Model *m);
/* INIT_PYTORCH: PyTorch's default init drawn from PyTorch's generator seeded with seed, in
 * the order of its modules (Embedding, RNN/LSTM/GRU, Linear head, conditioning Linear), so
 * the weights are those of torch.manual_seed(seed) and the reference model's constructor;
 * INIT_UNIFORM: every parameter U(-a, a) (char-rnn), from Rng seeded with seed;
 * INIT_ORTHOGONAL: PyTorch default, then each gate block of W_hh orthogonal (Rng). */
void model_init_weights(Model *m, InitKind kind, float a, uint64_t seed);
/* Forward over T <= Tmax steps; inputs (T,B) time-major token ids in [0,V). */
void model_forward(Model *m, const int32_t *inputs, int T);
/* Float inputs: x (T,B,E) features. */
void model_forward_features(Model *m, const float *x, int T);
/* Conditioning: sets every layer's initial state from c (B,C) (c0 = 0 for lstm); the
 * backward pass then also trains cond.weight/cond.bias. */
void model_set_condition(Model *m, const float *c);
/* Sum over the T*B rows of weight * ||logits - target||^2 (targets (T,B,V), weights (T,B),
 * 0 masks a row). With grad, logits become scale * d/dlogits. */
double model_loss_mse(Model *m, const float *targets, const float *weights, int T, float scale,
                      int grad);
/* Sum over the T*B predictions of -log softmax(logits)[target]. With grad, replaces the
 * logits by scale * dLoss_sum/dlogits (scale = 1 / global number of predictions). A
 * negative target is masked: no loss, no gradient. Returns the loss sum in double. */
double model_loss(Model *m, const int32_t *targets, int T, float scale, int grad);
/* Backward through head, layers and embedding; accumulates into m->params.grad. If dh0 /
 * dc0 are non-NULL they receive (L,B,H) gradients w.r.t. the initial states. */
void model_backward(Model *m, int T, float *dh0, float *dc0);
void model_carry(Model *m, int T);
/* The carried state of every layer (h, and c for lstm): (L, S, B, H) with S = 2 for lstm,
 * else 1. Used to set evaluation aside and to checkpoint. */
size_t model_state_size(const Model *m);
void model_get_state(const Model *m, float *out);
void model_set_state(Model *m, const float *in);
void model_reset_state(Model *m);
/* Per-token multiply-adds x2 of one forward pass (matmul FLOPs only). */
double model_forward_flops_per_token(const ModelShape *s);
int model_layer_input(const ModelShape *s, int layer);

#endif
