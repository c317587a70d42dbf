/* layer: the interface every layer kind implements, and the registry of kinds.
 *
 * A model is a stack of layers; each layer maps an input sequence x (T,B,D) to an output
 * sequence y (T,B,H) while carrying a per-stream state across TBPTT chunks. Dimensions used
 * everywhere: B streams (rows of a time step), T chunk length (time-major: row t*B + b is
 * stream b at step t), D input width, H output width.
 *
 * A kind declares, from its settings (Layer.D, Layer.H):
 *   - its parameters: names, shapes and initialisation, added to the model's one parameter
 *     buffer (params.h) as a contiguous range [param_first, param_first + param_count);
 *   - its carried state: nstates named tensors per stream, each (B, state_width(s));
 *   - its activations (allocated once for chunks of up to Tmax steps) and the floats of
 *     workspace it needs during a call (shared by all layers of a model, clobbered by every
 *     call that receives it);
 *   - its matrix-product flops per token.
 * and runs:
 *   forward         y = layer(x) from the state, which it then advances to the state after
 *                   step T (the gradient stops there: the next chunk starts from a constant);
 *   backward        from dy = dLoss/dy, through time: accumulates the gradients that do not
 *                   need x and, if asked, writes dLoss/d(initial state) of every tensor;
 *   backward_input  the gradients that need x, and dx (if asked). Split from backward so
 *                   that the model may rebuild x (the embedded tokens) in the workspace,
 *                   free again once backward has returned (model.c, "buffer lifetimes");
 *   input_grad_grouped (optional) sum over the rows of each group of dx, without forming dx:
 *                   the embedding gradient of token inputs (rows of one token are a group);
 *   step            one time step for decoding (sample, predict): l->y (1,B,H) from x
 *                   (B,D) and the state, which it advances; no backward follows.
 *
 * Gradients ACCUMULATE (+=) into the parameter gradient buffer, zeroed once per step. */
#ifndef RNNTRAIN_LAYER_H
#define RNNTRAIN_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"
#include "rng.h"

#define LAYER_MAX_STATES 4

typedef struct Layer Layer;
typedef struct LayerKind LayerKind;

/* Called by long backward loops now and then (every LAYER_PROGRESS_EVERY steps): the trainer
 * lets the gradient sums of finished layers advance over the network meanwhile. */
typedef struct {
    void (*progress)(void *ctx);
    void *ctx;
} LayerHooks;
#define LAYER_PROGRESS_EVERY 8
static inline void layer_progress(const LayerHooks *h, int t) {
    if (h && h->progress && t % LAYER_PROGRESS_EVERY == 0) h->progress(h->ctx);
}

typedef enum { INIT_PYTORCH, INIT_UNIFORM, INIT_ORTHOGONAL } InitKind;

/* The random sources of an initialisation: PyTorch's generator for the PyTorch-default
 * draw (in module order) and rnntrain's own for the orthogonal blocks. */
typedef struct {
    InitKind kind;
    TorchRng *torch;
    Rng *rng;
} LayerInit;

struct LayerKind {
    const char *name;                        /* "rnn", "lstm", "gru" */
    int nstates;
    const char *state_names[LAYER_MAX_STATES]; /* "h", "c" */
    /* Width of state tensor s, per stream. */
    int (*state_width)(const Layer *l, int s);
    /* Adds the parameters to p (before params_alloc): names are prefix + base + suffix, e.g.
     * "rnn." "weight_ih" "_l0" (PyTorch's nn.LSTM names). */
    void (*declare)(Layer *l, Params *p, const char *prefix, const char *suffix);
    /* Allocates the activations for B streams x Tmax steps; binds the parameter views. */
    void (*alloc)(Layer *l, const Params *p);
    void (*free)(Layer *l);
    size_t (*workspace_floats)(const Layer *l);
    void (*init_weights)(Layer *l, const LayerInit *init);
    /* state[s] (B, state_width(s)) in, advanced in place; x (T,B,D) is only read; the
     * output goes to l->y (T,B,H). (The cells take ws = NULL to mean: W_hh unpacked.) */
    void (*forward)(Layer *l, float *const *state, const float *x, int T, float *ws);
    /* dy (T,B,H) read only; dstate0[s] (B, state_width(s)) written if dstate0 != NULL. */
    void (*backward)(Layer *l, const float *dy, float *const *dstate0, int T, float *ws,
                     const LayerHooks *hooks);
    /* x as given to forward; dx (T,B,D) written if non-NULL (it may be dy's buffer). */
    void (*backward_input)(Layer *l, const float *x, float *dx, int T);
    /* dgroup (ngroups,D) += sum over rows r of group[r] of dx[r]; returns 0 (nothing done) if
     * the kind cannot or if its ws_floats of workspace are too few. May be NULL. */
    int (*input_grad_grouped)(Layer *l, const int32_t *group, int ngroups, float *dgroup,
                              int T, float *ws, size_t ws_floats);
    /* x (B,D) -> l->y (1,B,H), state advanced. */
    void (*step)(Layer *l, float *const *state, const float *x, float *ws);
    double (*flops_per_token)(const Layer *l);
};

struct Layer {
    const LayerKind *kind;
    int D, H, B, Tmax;
    int param_first, param_count; /* its tensors in the model's Params */
    float *y;                     /* (Tmax,B,H) output of the last forward, owned */
    void *impl;                   /* the kind's parameter views and activations */
};

/* The registered kinds, NULL-terminated (tests enumerate them). */
extern const LayerKind *const layer_kinds[];
/* By name, or NULL. */
const LayerKind *layer_kind_by_name(const char *name);
/* "rnn|lstm|gru": the registered names joined by '|'. */
const char *layer_kind_names(void);

/* A layer of kind with input width D and output width H: its parameters go to p. */
void layer_declare(Layer *l, const LayerKind *kind, int D, int H, Params *p, const char *prefix,
                   const char *suffix);
/* After params_alloc (or on a second model sharing the parameter arrays): activations for
 * B streams and chunks of up to Tmax steps. */
void layer_alloc(Layer *l, const Params *p, int B, int Tmax);
void layer_free(Layer *l);

#endif
