/* cell: what the three gated recurrent kinds (rnn, lstm, gru) share behind the layer
 * interface. G gates per cell (rnn 1, lstm 4, gru 3); their formulations are PyTorch's, so
 * weights map 1:1 onto nn.RNN / nn.LSTM / nn.GRU:
 *   rnn : h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
 *   lstm: [i f g o] = [s s tanh s](W_ih x + b_ih + W_hh h + b_hh)
 *         c' = f*c + i*g,  h' = o*tanh(c')
 *   gru : r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz)
 *         n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),  h' = (1-z)*n + z*h
 * Parameters: weight_ih (G*H,D), weight_hh (G*H,H), bias_ih (G*H), bias_hh (G*H).
 * Carried state: h (B,H), and c (B,H) for lstm.
 *
 * Cost structure: the input projection of all T*B rows is one GEMM before the time loop;
 * only h_{t-1} . W_hh^T runs per step, with W_hh packed once per chunk into the workspace
 * (linalg.h). In backward, the per-step work is the pointwise gate derivatives plus
 * dh_{t-1} = dA_t . W_hh; the weight gradients are one GEMM each over the whole chunk.
 * Backward overwrites the stored gate activations with their gradients. */
#ifndef RNNTRAIN_CELL_H
#define RNNTRAIN_CELL_H

#include "layer.h"
#include "linalg.h"

typedef struct {
    int G;
    int w_ih, w_hh, b_ih, b_hh;           /* parameter indices */
    const float *wih, *whh, *bih, *bhh;   /* views: (G*H,D) (G*H,H) (G*H) (G*H) */
    float *dwih, *dwhh, *dbih, *dbhh;     /* their gradients */
    float *gates; /* (Tmax,B,G*H) activated gates; the gradients dA_in after backward */
    float *h;     /* (Tmax+1,B,H) h[0] the initial state; h[1..T] is the output y */
    float *c;     /* lstm: (Tmax+1,B,H) cell states */
    float *hn;    /* gru: (Tmax,B,H) W_hn h + b_hn */
    float *rec;   /* gru: (Tmax,B,G*H) recurrent pre-activation gradients dA_rec;
                     forward scratch (B,G*H) for h . W_hh^T */
    float *dh, *dc; /* (B,H) gradients carried backwards through time */
    float *tmp;     /* (B,H) scratch: tanh(c_t) */
    int dwhh_with_input; /* backward_tail found dA_rec = dA_in (rnn, lstm): dW_hh is then
                            accumulated in backward_input with dW_ih, from one dA */
    void *dA_kept;       /* bf16 (rnn, lstm): dA's rows as the per-step products rounded them,
                            (Tmax*B) rows of la_kept_row_bytes(G*H), for dx = dA W_ih */
    int dA_kept_valid;   /* set by cell_keep_dA for this backward, used by backward_input */
} Cell;

static inline Cell *cell_of(const Layer *l) { return (Cell *)l->impl; }

/* The LayerKind entries the cells share (G read from the kind's cell_gates). */
int cell_gates(const LayerKind *kind);
int cell_state_width(const Layer *l, int s);
void cell_declare(Layer *l, Params *p, const char *prefix, const char *suffix);
void cell_alloc(Layer *l, const Params *p);
void cell_free(Layer *l);
size_t cell_workspace_floats(const Layer *l);
void cell_init_weights(Layer *l, const LayerInit *init);
double cell_flops_per_token(const Layer *l);
/* Start of every cell forward: the carried state into h[0] (and c[0]); the input
 * projection of the whole chunk, biases included,
 *   gates (T*B,G*H) = x (T*B,D) . W_ih^T + b_ih + b_hh
 * (a cell that keeps part of b_hh out, like gru's n gate, passes bias_hh_cols = the number
 * of leading columns that get it); W_hh packed into ws for h . W_hh^T. */
void cell_forward_begin(Layer *l, float *const *state, const float *x, int T, float *ws,
                        int bias_hh_cols, LaPacked *whh);
/* The step of every cell: its forward over one step with W_hh used unpacked (ws unused). */
void cell_step(Layer *l, float *const *state, const float *x, float *ws);
/* rnn, lstm backward, after cell_backward_begin: keep the bf16 rows of dA_t (the gates'
 * gradients, as the per-step product dA_t . W_hh rounds them) for backward_input's dx
 * product; cell_dA_kept(l, t) is where step t's rows go (NULL in fp32: nothing kept). */
void cell_keep_dA(Layer *l);
void *cell_dA_kept(Layer *l, int t);
/* End of every cell forward: the state after step T out to state. */
void cell_state_out(Layer *l, float *const *state, int T);
/* Start of every cell backward: dh (and dc) zeroed, W_hh packed into ws for dA . W_hh. */
void cell_backward_begin(Layer *l, float *ws, LaPacked *whh);
/* End of every cell backward: dW_hh += dA_rec^T h[0..T-1] (the recurrent path's
 * pre-activation gradients, T*B x G*H) and the initial-state gradients. Where dA_rec is
 * dA_in (c->gates: rnn, lstm) dW_hh is left to backward_input, which forms it beside dW_ih
 * from the same dA (bf16: one conversion of dA for both; the same sums). */
void cell_backward_tail(Layer *l, const float *dA_rec, float *const *dstate0, int T);
/* backward_input of every cell: dW_ih += dA_in^T x (and dW_hh, see cell_backward_tail),
 * dx = dA_in W_ih. */
void cell_backward_input(Layer *l, const float *x, float *dx, int T);
int cell_input_grad_grouped(Layer *l, const int32_t *group, int ngroups, float *dgroup, int T,
                            float *ws, size_t ws_floats);

/* The LayerKind fields every cell shares, in declaration order (name, states first). */
#define CELL_KIND_COMMON                                                                   \
    .state_width = cell_state_width, .declare = cell_declare, .alloc = cell_alloc,         \
    .free = cell_free, .workspace_floats = cell_workspace_floats,                          \
    .init_weights = cell_init_weights, .backward_input = cell_backward_input,             \
    .input_grad_grouped = cell_input_grad_grouped, .flops_per_token = cell_flops_per_token,  \
    .step = cell_step, .stacked_module = 1

extern const LayerKind layer_rnn, layer_lstm, layer_gru;

#endif
