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

/* Settings of the state space kinds (the cells ignore them). 0 means "the default", which
 * layer_declare resolves (layer_opts_resolve) before the kind sees them; the command line
 * refuses an explicit 0 where 0 is impossible. */
typedef struct {
    int d_state;   /* mamba: N, states per channel (16); s5: P, the state size before
                      conjugate halving (= H) */
    int d_conv;    /* mamba: K, causal convolution width (4) */
    int expand;    /* mamba: E = d_inner = expand * H (2) */
    int dt_rank;   /* mamba: R (ceil(H/16)) */
    int blocks;    /* s5: J, HiPPO-N blocks of the initial state matrix (1) */
    int conj_sym;  /* s5: 1 store one of each conjugate pair (default), 2 store all P */
    int bilinear;  /* s5: 1 bilinear discretisation, 0 (default) zero-order hold */
    int clip_eigs; /* s5: 1 keep Re(Lambda) <= -1e-4 */
    int glu;       /* s5: 1 half-GLU output (g = gelu(y), y = g * sigmoid(W g + b)), 0 GELU */
} LayerOpts;

typedef enum { INIT_PYTORCH, INIT_UNIFORM, INIT_ORTHOGONAL } InitKind;

/* The random sources of an initialisation: PyTorch's generator for the PyTorch-default
 * draw (in module order) and rnntrain's own for the orthogonal blocks. */
typedef struct {
    InitKind kind;
    TorchRng *torch;
    Rng *rng;
    int n_layer; /* layers in the model (Mamba scales out_proj by 1/sqrt(n_layer)) */
    double dt_min, dt_max; /* mamba, s5: the initial steps, log-uniform in [dt_min, dt_max]
                              (0: the references' 1e-3 and 1e-1) */
} LayerInit;

struct LayerKind {
    const char *name;                        /* "rnn", "lstm", "gru", "mamba", "s5" */
    /* 1: a uniform stack of this kind is one PyTorch module (nn.LSTM: weight_ih_l{k}). */
    int stacked_module;
    /* Fills the defaults of o (0 fields) for width H; NULL for kinds without settings. */
    void (*resolve_opts)(LayerOpts *o, int H);
    /* 0 if o is usable for input width D and width H, else 1 with the reason (naming the
     * option) in err. NULL: always usable. */
    int (*check_opts)(const LayerOpts *o, int D, int H, char *err, size_t size);
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

/* A layer of a stack as configured: kind, width, settings. */
typedef struct {
    const LayerKind *kind;
    int H;         /* output width */
    LayerOpts opt; /* the state space kinds' settings (0 fields: defaults) */
} LayerSpec;

struct Layer {
    const LayerKind *kind;
    int D, H, B, Tmax;
    LayerOpts opt;                /* resolved settings */
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

/* The settings by name, for files and the command line: o's field i is
 * *(int *)((char *)o + layer_opt_fields[i].offset); kinds lists the kinds that use it. */
typedef struct {
    const char *name; /* "d_state", ... */
    size_t offset;
    const char *kinds; /* "mamba,s5" */
    int min;           /* the smallest stored value (0 means "default" only before resolving) */
} LayerOptField;
extern const LayerOptField layer_opt_fields[]; /* ends with a NULL name */
/* 1 if the field is a setting of kind. */
int layer_opt_used(const LayerOptField *f, const LayerKind *kind);
static inline int *layer_opt_ptr(LayerOpts *o, const LayerOptField *f) {
    return (int *)(void *)((char *)o + f->offset);
}

extern const LayerKind layer_mamba, layer_s5;

/* o with its defaults filled in for kind and width H (o NULL: all defaults). */
LayerOpts layer_opts_resolve(const LayerKind *kind, const LayerOpts *o, int H);
/* 0 if the (resolved) settings are usable, else 1 with the reason in err. */
int layer_opts_check(const LayerKind *kind, const LayerOpts *o, int D, int H, char *err,
                     size_t size);
/* A layer of kind with input width D and output width H and settings o (NULL: defaults):
 * its parameters go to p. Unusable settings are a fatal error (check them first). */
void layer_declare(Layer *l, const LayerKind *kind, int D, int H, const LayerOpts *o, Params *p,
                   const char *prefix, const char *suffix);
/* After params_alloc (or on a second model sharing the parameter arrays): activations for
 * B streams and chunks of up to Tmax steps. */
void layer_alloc(Layer *l, const Params *p, int B, int Tmax);
void layer_free(Layer *l);

/* Helpers shared by the kinds that are not stacked cells (mamba, s5). */
/* params_add of prefix + name (PyTorch's names under the layer's prefix). */
int layer_param_add(Params *p, const char *prefix, const char *name, int rows, int cols);
/* nn.Linear's kaiming_uniform_(a=sqrt(5)) weight bound for fan_in. */
double layer_linear_bound(int fan_in);
/* nn.Linear's default draw of w (out,in) then b (out), from PyTorch's generator. */
void layer_init_linear(TorchRng *g, float *w, float *b, int out, int in);
/* The input projection of a layer whose input width D differs from its width H:
 * r (rows,H) = x (rows,D) w^T + b. */
void layer_encoder_forward(float *r, const float *x, const float *w, const float *b, int rows,
                           int H, int D);
/* Its backward from dr (rows,H): gw (H,D), gb (H) +=; dx (rows,D) = dr w if dx != NULL. */
void layer_encoder_backward(float *gw, float *gb, float *dx, const float *dr, const float *x,
                            const float *w, int rows, int H, int D);
/* A kind's workspace_floats when it needs none. */
size_t layer_no_workspace(const Layer *l);

#endif
