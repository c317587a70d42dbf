/* cell: one recurrent layer run over a TBPTT chunk, behind a table of function pointers.
 *
 * Dimensions (used everywhere): B streams on this rank, T chunk length (time-major), D
 * layer input width, H hidden size, G gates per cell (rnn 1, lstm 4, gru 3).
 *
 * Formulations are PyTorch's, so weights map 1:1 onto nn.RNN / nn.LSTM / nn.GRU:
 *   rnn : h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
 *   lstm: [i f g o] = [s s tanh s](W_ih x + b_ih + W_hh h + b_hh)
 *         c' = f*c + i*g,  h' = o*tanh(c')
 *   gru : r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz)
 *         n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),  h' = (1-z)*n + z*h
 *
 * Cost structure: the input projection of all T*B rows is one GEMM before the time loop;
 * only h_{t-1} . W_hh^T runs per step. In backward, the per-step work is the pointwise
 * gate derivatives plus dh_{t-1} = dA_t . W_hh; the weight gradients are one GEMM each over
 * the whole chunk. Backward overwrites the stored gate activations with their gradients. */
#ifndef RNNTRAIN_CELL_H
#define RNNTRAIN_CELL_H

#include <stddef.h>
#include <stdint.h>

typedef struct Layer Layer;

typedef struct {
    const char *name; /* "rnn", "lstm", "gru" */
    int gates;        /* G */
    int has_cell;     /* 1 for lstm: a second carried state c */
    /* h[1..T] = cell(x, h[0]): x (T,B,D) */
    void (*forward)(Layer *l, const float *x, int T);
    /* Given dy (T,B,H) = dLoss/dh[1..T] (from above and the head), accumulates weight
     * gradients and writes dx (T,B,D) if non-NULL, dh0 (B,H) and dc0 (B,H) if non-NULL;
     * with l->emb_grad set it adds to the embedding gradient instead of writing dx.
     * dy is read only in the time loop and dx written last, so dx may alias dy. */
    void (*backward)(Layer *l, const float *x, const float *dy, float *dx, float *dh0,
                     float *dc0, int T);
} CellKind;

struct Layer {
    const CellKind *kind;
    int D, H, B, Tmax;
    /* parameter views (PyTorch shapes) and their gradients */
    float *w_ih, *w_hh, *b_ih, *b_hh;     /* (G*H,D) (G*H,H) (G*H) (G*H) */
    float *dw_ih, *dw_hh, *db_ih, *db_hh; /* same shapes */
    /* activations of one chunk, allocated once */
    float *gates;    /* (Tmax,B,G*H) activated gates; gradients after backward */
    float *h;        /* (Tmax+1,B,H) h[0] is the carried initial state */
    float *c;        /* lstm: (Tmax+1,B,H) cell states; gru: (Tmax,B,H) W_hn h + b_hn */
    float *rec;      /* gru: (Tmax,B,G*H) recurrent pre-activation gradients;
                        forward scratch (B,G*H) for h . W_hh^T */
    float *dh, *dc;  /* (B,H) gradients carried backwards through time */
    float *tmp;      /* (B,H) scratch: tanh(c_t) */
    float *pack;     /* W_hh packed for the per-step product; scratch shared by all layers of
                        a model (layers run one after another), set by the model */
    /* If set, called just before the weight gradients read x: the model re-creates layer
     * 0's input there (it shares memory with the packing scratch). */
    void (*refill_input)(void *ctx);
    void *refill_ctx;
    /* If emb_grad is set (layer 0 of a token model, see model_backward), the backward
     * accumulates the embedding gradient (V,D) instead of writing dx: the rows of dA_in are
     * summed per input token into emb_work (V,G*H), then emb_grad += emb_work . W_ih. */
    float *emb_grad, *emb_work;
    const int32_t *emb_tokens; /* (T*B) the chunk's input tokens */
    int emb_vocab;
};

extern const CellKind cell_rnn, cell_lstm, cell_gru;
/* If set, the backward time loops call it every CELL_PROGRESS_EVERY steps: the trainer
 * lets the gradient sums of finished layers advance while this layer computes. */
extern void (*cell_progress_hook)(void);
#define CELL_PROGRESS_EVERY 8
static inline void cell_progress(int t) {
    if (cell_progress_hook && t % CELL_PROGRESS_EVERY == 0) cell_progress_hook();
}
/* By name ("rnn", "lstm", "gru"), or NULL. */
const CellKind *cell_by_name(const char *name);

/* Allocates the activations of a layer for chunks of up to Tmax steps (views into
 * parameters are set by the model). */
void layer_init(Layer *l, const CellKind *kind, int D, int H, int B, int Tmax);
void layer_free(Layer *l);
/* Carried state: copy the state after step T to the start (c too for lstm). */
void layer_carry(Layer *l, int T);
void layer_reset(Layer *l);

/* Floats of packing scratch a layer of this kind needs (forward and backward). */
size_t layer_pack_floats(const CellKind *kind, int H);

/* Shared by the cells. Input projection of the whole chunk, biases included:
 * gates (T*B,G*H) = x (T*B,D) . W_ih^T + b_ih + b_hh (a cell that keeps part of b_hh out,
 * like gru's n gate, passes bias_hh_cols = the number of leading columns that get it). */
void cell_input_projection(Layer *l, const float *x, int T, int bias_hh_cols);
/* Tail of every backward, over the whole chunk: from the pre-activation gradients of the
 * input path dA_in and of the recurrent path dA_rec (T*B,G*H; the same array except in
 * gru): dW_ih += dA_in^T x, dW_hh += dA_rec^T h[0..T-1], bias sums, dx = dA_in W_ih
 * (if dx), and the embedding gradient through per-token sums of dA_in (if l->emb_grad). */
void cell_weight_gradients(Layer *l, const float *x, const float *dA_in, const float *dA_rec,
                           float *dx, int T);


#endif
