/* encoder: the source stack of a seq2seq model (see encoder.h). */
#include "encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int stacked_module(const LayerSpec *spec, int L) {
    if (!spec[0].kind->stacked_module) return 0;
    for (int k = 1; k < L; k++)
        if (spec[k].kind != spec[0].kind || spec[k].H != spec[0].H) return 0;
    return 1;
}

void encoder_declare(Encoder *enc, const LayerSpec *spec, int L, int bidir, int V, int E,
                     Params *p) {
    REQUIRE(L >= 1 && L <= ENCODER_MAX_LAYERS && V >= 1 && E >= 1);
    memset(enc, 0, sizeof *enc);
    enc->L = L;
    enc->bidir = bidir != 0;
    enc->V = V;
    enc->E = E;
    enc->emb = params_add(p, "encoder.embedding.weight", V, E);
    int stacked = stacked_module(spec, L);
    for (int k = 0, D = E; k < L; k++) {
        const LayerKind *kind = spec[k].kind;
        char prefix[48], suffix[24] = "";
        snprintf(prefix, sizeof prefix, stacked ? "encoder.rnn." : "encoder.layers.%d.", k);
        if (kind->stacked_module) snprintf(suffix, sizeof suffix, "_l%d", stacked ? k : 0);
        layer_declare(&enc->fwd[k], kind, D, spec[k].H, &spec[k].opt, p, prefix, suffix);
        if (enc->bidir) {
            char rprefix[48], rsuffix[32];
            if (kind->stacked_module) {
                snprintf(rprefix, sizeof rprefix, "%s", prefix);
                snprintf(rsuffix, sizeof rsuffix, "%s_reverse", suffix);
            } else {
                snprintf(rprefix, sizeof rprefix, "encoder.layers.%d_reverse.", k);
                rsuffix[0] = 0;
            }
            layer_declare(&enc->rev[k], kind, D, spec[k].H, &spec[k].opt, p, rprefix, rsuffix);
        }
        enc->W[k] = spec[k].H * (enc->bidir ? 2 : 1);
        D = enc->W[k];
    }
}

int encoder_width(const Encoder *enc) { return enc->W[enc->L - 1]; }

void encoder_param_range(const Encoder *enc, int *first, int *count) {
    const Layer *top = enc->bidir ? &enc->rev[enc->L - 1] : &enc->fwd[enc->L - 1];
    *first = enc->emb;
    *count = top->param_first + top->param_count - enc->emb;
}

void encoder_alloc(Encoder *enc, const Params *p, int B, int Smax) {
    enc->B = B;
    enc->Smax = Smax;
    size_t rows = (size_t)Smax * B;
    int widest = enc->E;
    for (int k = 0; k < enc->L; k++) {
        for (int d = 0; d < 1 + enc->bidir; d++) {
            Layer *l = d ? &enc->rev[k] : &enc->fwd[k];
            layer_alloc(l, p, B, Smax);
            for (int s = 0; s < l->kind->nstates; s++) {
                int w = l->kind->state_width(l, s);
                enc->state[k][d][s] = rt_alloc_floats((size_t)B * w, "encoder state");
            }
        }
        if (enc->W[k] > widest) widest = enc->W[k];
        if (enc->bidir) {
            enc->xr[k] = rt_alloc_floats(rows * enc->fwd[k].D, "encoder reversed input");
            enc->cat[k] = rt_alloc_floats(rows * enc->W[k], "encoder output");
        }
        enc->out[k] = enc->bidir ? enc->cat[k] : enc->fwd[k].y;
    }
    enc->tokens = rt_calloc(rows, sizeof *enc->tokens, "encoder tokens");
    enc->len = rt_calloc((size_t)B, sizeof *enc->len, "encoder lengths");
    enc->x0 = rt_alloc_floats(rows * enc->E, "encoder input");
    enc->summary = rt_alloc_floats((size_t)B * encoder_width(enc), "encoder summary");
    enc->dy = rt_alloc_floats(rows * widest, "encoder gradient");
    enc->dyr = rt_alloc_floats(rows * widest, "encoder gradient");
    enc->dx = rt_alloc_floats(rows * widest, "encoder gradient");
    enc->dxr = rt_alloc_floats(rows * widest, "encoder gradient");
}

void encoder_free(Encoder *enc) {
    for (int k = 0; k < enc->L; k++) {
        for (int d = 0; d < 1 + enc->bidir; d++) {
            layer_free(d ? &enc->rev[k] : &enc->fwd[k]);
            for (int s = 0; s < LAYER_MAX_STATES; s++) free(enc->state[k][d][s]);
        }
        free(enc->xr[k]);
        free(enc->cat[k]);
        free(enc->drop_out[k]);
        free(enc->drop_mask[k]);
    }
    free(enc->tokens);
    free(enc->len);
    free(enc->x0);
    free(enc->summary);
    free(enc->dy);
    free(enc->dyr);
    free(enc->dx);
    free(enc->dxr);
    memset(enc, 0, sizeof *enc);
}

size_t encoder_workspace_floats(const Encoder *enc) {
    size_t need = 0;
    for (int k = 0; k < enc->L; k++)
        for (int d = 0; d < 1 + enc->bidir; d++) {
            const Layer *l = d ? &enc->rev[k] : &enc->fwd[k];
            size_t w = l->kind->workspace_floats(l);
            if (w > need) need = w;
        }
    return need;
}

void encoder_init_weights(Encoder *enc, const LayerInit *init, const Params *p) {
    torch_normal_fill(init->torch, params_value(p, enc->emb), p->tensors[enc->emb].size, 0.0, 1.0);
    for (int k = 0; k < enc->L; k++) {
        enc->fwd[k].kind->init_weights(&enc->fwd[k], init);
        if (enc->bidir) enc->rev[k].kind->init_weights(&enc->rev[k], init);
    }
}

void bidir_reverse(float *dst, const float *src, const int32_t *len, int S, int B, int W) {
    for (int s = 0; s < S; s++)
        for (int b = 0; b < B; b++) {
            float *d = dst + ((size_t)s * B + b) * W;
            if (s < len[b])
                memcpy(d, src + ((size_t)(len[b] - 1 - s) * B + b) * W, (size_t)W * sizeof(float));
            else
                memset(d, 0, (size_t)W * sizeof(float));
        }
}

void bidir_concat(float *cat, const float *yf, const float *yr, const int32_t *len, int S, int B,
                  int H) {
    for (int s = 0; s < S; s++)
        for (int b = 0; b < B; b++) {
            float *o = cat + ((size_t)s * B + b) * 2 * H;
            memcpy(o, yf + ((size_t)s * B + b) * H, (size_t)H * sizeof(float));
            if (s < len[b])
                memcpy(o + H, yr + ((size_t)(len[b] - 1 - s) * B + b) * H, (size_t)H * sizeof(float));
            else
                memset(o + H, 0, (size_t)H * sizeof(float));
        }
}

void bidir_split(float *dyf, float *dyr, const float *dcat, const int32_t *len, int S, int B,
                 int H) {
    for (size_t row = 0; row < (size_t)S * B; row++)
        memcpy(dyf + row * H, dcat + row * 2 * H, (size_t)H * sizeof(float));
    for (int s = 0; s < S; s++)
        for (int b = 0; b < B; b++) {
            float *o = dyr + ((size_t)s * B + b) * H;
            if (s < len[b])
                memcpy(o, dcat + ((size_t)(len[b] - 1 - s) * B + b) * 2 * H + H,
                       (size_t)H * sizeof(float));
            else
                memset(o, 0, (size_t)H * sizeof(float));
        }
}

void bidir_add_reversed(float *dx, const float *dxr, const int32_t *len, int S, int B, int D) {
    for (int s = 0; s < S; s++)
        for (int b = 0; b < B; b++) {
            if (s >= len[b]) continue;
            float *o = dx + ((size_t)s * B + b) * D;
            const float *g = dxr + ((size_t)(len[b] - 1 - s) * B + b) * D;
            for (int j = 0; j < D; j++) o[j] += g[j];
        }
}

static void zero_states(Encoder *enc, int k, int d) {
    const Layer *l = d ? &enc->rev[k] : &enc->fwd[k];
    for (int s = 0; s < l->kind->nstates; s++)
        memset(enc->state[k][d][s], 0, (size_t)enc->B * l->kind->state_width(l, s) * sizeof(float));
}

void encoder_forward(Encoder *enc, const Params *p, const int32_t *tokens, const int32_t *len,
                     int S, const ModelDropout *drop, float *ws) {
    REQUIRE(S >= 1 && S <= enc->Smax);
    int B = enc->B, E = enc->E;
    const float *emb = params_value(p, enc->emb);
    enc->S = S;
    enc->drop = drop && drop->p > 0.0f ? drop : NULL;
    for (int b = 0; b < B; b++) {
        REQUIRE(len[b] >= 1 && len[b] <= S);
        enc->len[b] = len[b];
    }
    for (size_t r = 0; r < (size_t)S * B; r++) {
        REQUIRE(tokens[r] >= 0 && tokens[r] < enc->V);
        enc->tokens[r] = tokens[r];
        memcpy(enc->x0 + r * E, emb + (size_t)tokens[r] * E, (size_t)E * sizeof(float));
    }
    const float *x = enc->x0;
    for (int k = 0; k < enc->L; k++) {
        Layer *f = &enc->fwd[k];
        zero_states(enc, k, 0);
        f->kind->forward(f, enc->state[k][0], x, S, ws);
        if (enc->bidir) {
            Layer *r = &enc->rev[k];
            bidir_reverse(enc->xr[k], x, enc->len, S, B, f->D);
            zero_states(enc, k, 1);
            r->kind->forward(r, enc->state[k][1], enc->xr[k], S, ws);
            bidir_concat(enc->cat[k], f->y, r->y, enc->len, S, B, f->H);
        }
        enc->used[k] = enc->out[k];
        if (enc->drop) {
            size_t n = (size_t)enc->Smax * B * enc->W[k];
            if (!enc->drop_out[k]) {
                enc->drop_out[k] = rt_alloc_floats(n, "encoder dropout");
                enc->drop_mask[k] = rt_calloc(n, 1, "encoder dropout masks");
            }
            dropout_forward(enc->drop, DROPOUT_ENCODER_KEY + k, enc->out[k], enc->drop_out[k],
                            enc->drop_mask[k], S, B, enc->W[k]);
            enc->used[k] = enc->drop_out[k];
        }
        x = enc->used[k];
    }
    int top = enc->L - 1, W = enc->W[top], H = enc->fwd[top].H;
    enc->top = enc->used[top];
    for (int b = 0; b < B; b++) {
        float *sm = enc->summary + (size_t)b * W;
        memcpy(sm, enc->top + ((size_t)(enc->len[b] - 1) * B + b) * W, (size_t)H * sizeof(float));
        if (enc->bidir) /* the reverse pass ends at step 0 */
            memcpy(sm + H, enc->top + (size_t)b * W + H, (size_t)H * sizeof(float));
    }
}

void encoder_backward(Encoder *enc, Params *p, float *dout, const float *dsummary, float *ws,
                      const LayerHooks *hooks) {
    int B = enc->B, S = enc->S, top = enc->L - 1;
    size_t rows = (size_t)S * B;
    int W = enc->W[top], Ht = enc->fwd[top].H;
    /* the gradient of the top output: dout, plus the hand-over's at its two positions */
    float *d = enc->dx; /* the gradient of the current layer's output, (S,B,W_k) */
    if (dout)
        memcpy(d, dout, rows * W * sizeof(float));
    else
        memset(d, 0, rows * W * sizeof(float));
    for (int b = 0; b < B; b++) {
        float *at = d + ((size_t)(enc->len[b] - 1) * B + b) * W;
        for (int j = 0; j < Ht; j++) at[j] += dsummary[(size_t)b * W + j];
        if (enc->bidir) {
            float *first = d + (size_t)b * W + Ht;
            for (int j = 0; j < Ht; j++) first[j] += dsummary[(size_t)b * W + Ht + j];
        }
    }
    for (int k = top; k >= 0; k--) {
        Layer *f = &enc->fwd[k];
        int D = f->D;
        const float *x = k == 0 ? enc->x0 : enc->used[k - 1];
        if (enc->drop) /* d: of the dropped output, to that of the output */
            dropout_backward(enc->drop, enc->drop_mask[k], d, rows * enc->W[k]);
        if (!enc->bidir) {
            /* d is fwd.y's gradient; dx written over it (the layer contract allows it) */
            f->kind->backward(f, d, NULL, S, ws, hooks);
            f->kind->backward_input(f, x, d, S);
        } else {
            Layer *r = &enc->rev[k];
            bidir_split(enc->dy, enc->dyr, d, enc->len, S, B, f->H);
            f->kind->backward(f, enc->dy, NULL, S, ws, hooks);
            f->kind->backward_input(f, x, d, S);          /* d (S,B,D) = dx, forward pass */
            r->kind->backward(r, enc->dyr, NULL, S, ws, hooks);
            r->kind->backward_input(r, enc->xr[k], enc->dxr, S); /* reversed positions */
            bidir_add_reversed(d, enc->dxr, enc->len, S, B, D);
        }
    }
    /* d (S,B,E): the embedded source's gradient, rows in a fixed order */
    float *demb = params_grad(p, enc->emb);
    for (size_t r = 0; r < rows; r++) {
        float *de = demb + (size_t)enc->tokens[r] * enc->E;
        const float *g = d + r * enc->E;
        for (int e = 0; e < enc->E; e++) de[e] += g[e];
    }
}
