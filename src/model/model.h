/* model: input -> a stack of layers (layer.h; kinds and widths may differ) -> linear head,
 * run over one TBPTT chunk; and the carried state of a set of streams.
 *
 * Dimensions: B streams, T chunk length, E input width (embedding or features), H_k the
 * width of layer k, V outputs (vocabulary, classes or regression values), L layers. Tokens
 * and activations are time-major: row t*B + b is stream b at step t.
 *
 * One training step on a chunk:
 *   model_forward(m, st, inputs, T);             logits (T,B,V); st advanced to step T
 *   loss = model_loss(m, targets, T, scale, 1);  logits -> scale * dLoss/dlogits
 *   model_backward(m, T, NULL);                  += gradients
 * The state st is separate from the model, so one model serves any number of stream sets
 * (training micro-batches, validation) without copying states around. */
#ifndef RNNTRAIN_MODEL_H
#define RNNTRAIN_MODEL_H

#include <stdint.h>

#include "attention.h"
#include "dropout.h"
#include "encoder.h"
#include "layer.h"
#include "params.h"
#include "rng.h"

#define MODEL_MAX_LAYERS 16

/* Language models: tokens in (embedding V x E), V logits out. Sequence tasks may instead
 * read E float features per step (float_inputs), put V = classes or regression outputs,
 * and take a conditioning vector of C values per sequence that sets the first state tensor
 * of every layer through a learned projection: h0 = tanh(W_c c + b_c) (PyTorch-style names
 * cond.weight (sum H_k, C), cond.bias (sum H_k)). Zero-initialised fields give a language
 * model. */
typedef struct {
    int L;
    LayerSpec layer[MODEL_MAX_LAYERS];
    int E, V;
    int float_inputs; /* 1: E features per step, no embedding */
    int C;            /* conditioning width, 0 = none */
    int in_vocab;     /* token inputs: embedding rows, 0 = V (language models) */
    int pool_mean;    /* classify: the loss of a sequence is that of the mean of its logits
                         over its steps (= the head of the mean of its top-layer outputs: the
                         head is linear) instead of those of its last step */
    int untied;       /* a Mamba language model's head is its own lm_head.weight instead of
                         the embedding (tied, MambaLMHeadModel's default) */
    /* seq2seq with a token source (encoder.h): enc_L > 0 encoder layers over enc_vocab
     * source tokens (embedding width E), bidirectional or not; its hand-over vector is the
     * conditioning (C = the encoder's output width), and attention (attention.h) runs
     * between the decoder's top layer and the head. enc_steps is a capacity (the longest
     * source the buffers hold), not part of the shape's identity. */
    int enc_L;
    LayerSpec enc_layer[MODEL_MAX_LAYERS];
    int enc_vocab, bidirectional, attention, enc_steps;
    /* bidirectional without an encoder (classify, tag, regress): every layer of the stack
     * runs forward and reversed within each sequence's length (encoder.h's bidir_*), its
     * output the two concatenated (2 H_k wide); whole sequences only (model_set_lengths
     * before each forward), no one-step form. */
} ModelShape;

/* L layers of one kind and width (the --model/--layers/--hidden shorthand). */
void model_shape_uniform(ModelShape *s, const LayerKind *kind, int L, int H);
/* Parses a layer list "lstm:512,gru:256" into s->L and s->layer; 0 if it is not one (with
 * the reason in err). */
int model_shape_parse_layers(ModelShape *s, const char *spec, char *err, size_t size);
/* "lstm:512,gru:256" */
void model_shape_layers_text(const ModelShape *s, char *buf, size_t size);
/* The same for any list of L layers (the encoder's). */
void model_shape_stack_text(const LayerSpec *layer, int L, char *buf, size_t size);
/* 1 if every layer has the same kind and width (one PyTorch nn.RNN/LSTM/GRU module). */
int model_shape_is_uniform(const ModelShape *s);
int model_shape_equal(const ModelShape *a, const ModelShape *b);
/* seq2seq: the encoder's output width (the conditioning width), 0 without an encoder. */
int model_shape_encoder_width(const ModelShape *s);
/* 1 if the stack itself is bidirectional (s->bidirectional without an encoder). */
int model_shape_stack_bidir(const ModelShape *s);
/* Output width of layer k: H_k, or 2 H_k in a bidirectional stack. */
int model_layer_width(const ModelShape *s, int k);
/* Input width of layer k: E for the first, the width of layer k-1 above. */
int model_layer_input(const ModelShape *s, int k);
/* Width of the top layer's output (the head's input). */
int model_top_width(const ModelShape *s);
/* 1 if every layer is a Mamba block: the names are MambaLMHeadModel's (backbone.*). */
int model_shape_is_backbone(const ModelShape *s);
/* 1 if the head is the embedding matrix (a Mamba language model, unless untied). */
int model_shape_head_tied(const ModelShape *s);

typedef struct Model Model;

/* Dropout (training only, dropout.h): after each layer, so before the next layer and
 * before the head (and after each encoder layer); model_set_dropout. */

/* The carried state of B streams: for each layer k, each of its kind's state tensors s,
 * t[k][s] (B, width). An owning state holds them in one buffer, layer by layer and tensor
 * by tensor ((L, S, B, H) for a uniform stack); a view (model_state_view) points at a
 * contiguous range of streams of another state. */
typedef struct {
    int B, L;
    int nstates[MODEL_MAX_LAYERS];
    int width[MODEL_MAX_LAYERS][LAYER_MAX_STATES];
    float *t[MODEL_MAX_LAYERS][LAYER_MAX_STATES];
    float *buf; /* NULL for a view */
    size_t floats;
} ModelState;

void model_state_init(ModelState *st, const Model *m, int B);
/* Streams [first, first+count) of all. */
void model_state_view(ModelState *view, const ModelState *all, int first, int count);
void model_state_free(ModelState *st);
void model_state_zero(ModelState *st);
/* Stream b's rows of every tensor to zero. */
void model_state_zero_stream(ModelState *st, int b);
void model_state_copy(ModelState *dst, const ModelState *src);

struct Model {
    ModelShape shape;
    int B, Tmax;
    Params params;
    int emb, head_w, head_b; /* parameter indices (emb -1 with float inputs; head_w -1 when
                                the head is the embedding, head_b -1 without a bias) */
    int norm_f;              /* final RMSNorm weight under a Mamba top layer, else -1 */
    float *normed;           /* (Tmax,B,H_top) the head's input under norm_f */
    float *norm_rinv;        /* (Tmax*B) its reciprocal roots */
    int cond_width;          /* sum over layers of the width of their first state tensor */
    double init_dt_min, init_dt_max; /* model_init_weights' step range of mamba and s5 layers
                                        (0: the references' defaults); init only */
    int cond_w, cond_b;      /* -1 without conditioning */
    Layer layers[MODEL_MAX_LAYERS];
    int32_t *inputs;  /* (Tmax,B) tokens of the last forward */
    const float *x0;  /* (T,B,E) layer 0's input in the last forward */
    int T_last;
    /* Buffer lifetimes within one step (nothing is allocated per step):
     *   ws    the workspace: each layer's scratch (packed W_hh) during its own calls; the
     *         logits (Tmax,B,V) from the head's forward to its backward; layer 0's input,
     *         rebuilt from the tokens after layer 0's backward, for its backward_input;
     *         then the per-token sums of input_grad_grouped.
     *   dbuf  (Tmax,B,max(E,H_k)): in forward the embedded tokens x0 (layer 0's input); in
     *         backward the gradient flowing down the stack: dLoss/dy of a layer, then
     *         overwritten in place by dLoss/dx of its input. */
    float *ws;
    size_t ws_floats;
    float *logits;    /* = ws */
    double *row_loss; /* (Tmax*B) model_loss's per-row losses, summed in row order */
    size_t rows_max;  /* Tmax*B */
    float *dbuf;
    float *cond_in;   /* (B,C) conditioning of the current sequences */
    int *pool_last;   /* (B) pool_mean: each stream's labelled step in the last loss */
    float *cond_h0;   /* (B,sum H_k) tanh(W_c c + b_c) */
    ModelState dstate; /* conditioning: gradient w.r.t. the initial states */
    int cond_set, cond_used; /* set: the next forward starts from the conditioning; used: the
                                last one did (only then does backward train cond.*) */
    /* Set by the trainer: progress lets finished gradient sums advance during long backward
     * loops; grad_ready is called during model_backward as soon as a contiguous range of
     * the gradient (in floats, from params.grad) is final: the head, then each layer from
     * the top, then the embedding (then the conditioning). The ranges cover the whole
     * gradient exactly once. */
    LayerHooks hooks;
    void (*grad_ready)(void *ctx, size_t offset, size_t count);
    void *grad_ctx;
    /* Tests: 1 = always take the embedding gradient through layer 0's dx, never through
     * the per-token sums (input_grad_grouped). */
    int emb_grad_direct;
    /* Dropout of the next forward (model_set_dropout), its masks and dropped outputs. */
    ModelDropout drop;
    int drop_on;                          /* the last forward dropped */
    float *drop_y[MODEL_MAX_LAYERS];      /* (Tmax,B,H_k) layer k's output after dropout */
    uint8_t *drop_mask[MODEL_MAX_LAYERS]; /* (Tmax,B,H_k) 1 = kept */
    /* seq2seq: the encoder and attention (shape.enc_L > 0) */
    Encoder enc;
    Attention attn;
    int has_enc, has_attn;
    float *enc_dout;     /* (enc_steps,B,W) the gradient of the encoder's outputs */
    float *enc_dsummary; /* (B,W) of its hand-over */
    /* a bidirectional stack (model_shape_stack_bidir): the reverse layers, their states
     * (zero at each forward), reversed inputs, concatenated outputs, gradient scratch */
    int bidir;
    Layer rev[MODEL_MAX_LAYERS];
    float *rev_state[MODEL_MAX_LAYERS][LAYER_MAX_STATES];
    float *bd_xr[MODEL_MAX_LAYERS], *bd_cat[MODEL_MAX_LAYERS];
    float *bd_dyf, *bd_dyr, *bd_dxr;
    int32_t *len; /* (B) sequence lengths of the next forward */
};

/* Builds the parameter layout and allocates activations for B x Tmax. Parameter names are
 * PyTorch's: embedding.weight, then for a uniform stack of cells rnn.weight_ih_l{k} ... (one
 * nn.RNN/LSTM/GRU), else layers.{k}.weight_ih_l0 ... (one module per layer), head.weight,
 * head.bias, cond.weight, cond.bias. A stack of Mamba blocks takes MambaLMHeadModel's
 * names: backbone.embedding.weight, backbone.layers.{k}.norm.weight,
 * backbone.layers.{k}.mixer.*, backbone.norm_f.weight (and lm_head.weight if untied); any
 * Mamba top layer is followed by a final RMSNorm (norm_f.weight). */
void model_init(Model *m, ModelShape shape, int B, int Tmax);
/* A second model over the SAME parameter arrays as owner (e.g. for evaluation with another
 * number of streams): own activations, borrowed values and gradients. */
void model_init_shared(Model *m, const Model *owner, int B, int Tmax);
void model_free(Model *m);
/* INIT_PYTORCH: PyTorch's default init drawn from PyTorch's generator seeded with seed, in
 * the order of its modules (Embedding, the layers, Linear head, conditioning Linear), so
 * the weights are those of torch.manual_seed(seed) and the reference model's constructor;
 * INIT_UNIFORM: every parameter U(-a, a) (char-rnn), from Rng seeded with seed;
 * INIT_ORTHOGONAL: PyTorch default, then each gate block of W_hh orthogonal (Rng). */
void model_init_weights(Model *m, InitKind kind, float a, uint64_t seed);
/* Forward over T <= Tmax steps from state st (m->B streams), which is advanced; inputs
 * (T,B) time-major token ids. */
void model_forward(Model *m, ModelState *st, const int32_t *inputs, int T);
/* Decoding: one step of every stream from st (advanced), token inputs (B,); the logits
 * (B,V) in m->logits, through each layer's step form. */
void model_step(Model *m, ModelState *st, const int32_t *tokens);
/* Float inputs: x (T,B,E) features, read in place (the caller keeps x until backward). */
void model_forward_features(Model *m, ModelState *st, const float *x, int T);
/* A bidirectional stack: the lengths (B) of the sequences of the next forward, 1..T. */
void model_set_lengths(Model *m, const int32_t *len);
/* Conditioning: sets st's first state tensor of every layer from c (B,C) (the others to 0);
 * the backward pass then also trains cond.weight/cond.bias. */
void model_set_condition(Model *m, ModelState *st, const float *c);
/* seq2seq: runs the encoder over source tokens src (S,B) of lengths len (B), prepares the
 * attention keys, and conditions st on the encoder's hand-over; the next forward's backward
 * trains the encoder too. */
void model_encode(Model *m, ModelState *st, const int32_t *src, const int32_t *len, int S);
/* Sum over the T*B rows of weight * ||logits - target||^2 (targets (T,B,V), weights (T,B),
 * 0 masks a row). With grad, logits become scale * d/dlogits. */
double model_loss_mse(Model *m, const float *targets, const float *weights, int T, float scale,
                      int grad);
/* Sum over the T*B predictions of -log softmax(logits)[target]. With grad, replaces the
 * logits by scale * dLoss_sum/dlogits (scale = 1 / global number of predictions). A
 * negative target is masked: no loss, no gradient. Returns the loss sum in double. */
double model_loss(Model *m, const int32_t *targets, int T, float scale, int grad);
/* Backward through head, layers and embedding (and conditioning); accumulates into
 * m->params.grad. If dstate0 is non-NULL (m->B streams) it receives the gradients w.r.t.
 * the initial states of the last forward. */
void model_backward(Model *m, int T, ModelState *dstate0);
/* Dropout for the next forwards until changed (d NULL or d->p == 0: none; the default).
 * Buffers are allocated on the first use. */
void model_set_dropout(Model *m, const ModelDropout *d);
/* 1 if unit j of layer k at (stream, position) is kept under d (tests). */
int model_dropout_keep(const ModelDropout *d, int64_t stream, int k, int64_t pos, int j);
/* Per-token multiply-adds x2 of one forward pass (matmul FLOPs only). */
double model_forward_flops_per_token(const Model *m);

#endif
