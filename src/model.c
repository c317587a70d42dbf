#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "activ.h"
#include "linalg.h"

int model_layer_input(const ModelShape *s, int layer) { return layer == 0 ? s->E : s->H; }

static void model_build(Model *m, ModelShape s, int B, int Tmax, const Params *share);

/* x0 (T,B,E) = embedding rows of the chunk's tokens, into the scratch buffer. */
static void gather_embedded(Model *m, int T) {
    const ModelShape *s = &m->shape;
    const float *emb = params_value(&m->params, m->emb);
    for (size_t r = 0; r < (size_t)T * m->B; r++)
        memcpy(m->x0 + r * s->E, emb + (size_t)m->inputs[r] * s->E, (size_t)s->E * sizeof(float));
}

static void refill_embedded(void *ctx) {
    Model *m = ctx;
    gather_embedded(m, m->T_last);
}

void model_init(Model *m, ModelShape s, int B, int Tmax) { model_build(m, s, B, Tmax, NULL); }

void model_init_shared(Model *m, const Model *owner, int B, int Tmax) {
    model_build(m, owner->shape, B, Tmax, &owner->params);
}

static void model_build(Model *m, ModelShape s, int B, int Tmax, const Params *share) {
    REQUIRE(s.cell && s.L >= 1 && s.L <= MODEL_MAX_LAYERS && s.H > 0 && s.E > 0 && s.V > 0);
    REQUIRE(s.C >= 0);
    REQUIRE(B > 0 && Tmax > 0);
    memset(m, 0, sizeof *m);
    m->shape = s;
    m->B = B;
    m->Tmax = Tmax;
    int G = s.cell->gates;
    Params *p = &m->params;
    m->emb = s.float_inputs ? -1 : params_add(p, "embedding.weight", s.in_vocab ? s.in_vocab : s.V, s.E);
    int idx[MODEL_MAX_LAYERS][4];
    for (int k = 0; k < s.L; k++) {
        char name[PARAM_NAME_MAX];
        snprintf(name, sizeof name, "rnn.weight_ih_l%d", k);
        idx[k][0] = params_add(p, name, G * s.H, model_layer_input(&s, k));
        snprintf(name, sizeof name, "rnn.weight_hh_l%d", k);
        idx[k][1] = params_add(p, name, G * s.H, s.H);
        snprintf(name, sizeof name, "rnn.bias_ih_l%d", k);
        idx[k][2] = params_add(p, name, G * s.H, 0);
        snprintf(name, sizeof name, "rnn.bias_hh_l%d", k);
        idx[k][3] = params_add(p, name, G * s.H, 0);
    }
    m->head_w = params_add(p, "head.weight", s.V, s.H);
    m->head_b = params_add(p, "head.bias", s.V, 0);
    m->cond_w = m->cond_b = -1;
    if (s.C > 0) {
        m->cond_w = params_add(p, "cond.weight", s.L * s.H, s.C);
        m->cond_b = params_add(p, "cond.bias", s.L * s.H, 0);
    }
    for (int k = 0; k < s.L; k++) m->layer_param[k] = idx[k][0];
    if (share) {
        REQUIRE(share->total == p->total);
        p->value = share->value;
        p->grad = share->grad;
        p->state1 = share->state1;
        p->state2 = share->state2;
    } else {
        params_alloc(p);
    }
    for (int k = 0; k < s.L; k++) {
        Layer *l = &m->layers[k];
        layer_init(l, s.cell, model_layer_input(&s, k), s.H, B, Tmax);
        l->w_ih = params_value(p, idx[k][0]);
        l->w_hh = params_value(p, idx[k][1]);
        l->b_ih = params_value(p, idx[k][2]);
        l->b_hh = params_value(p, idx[k][3]);
        l->dw_ih = params_grad(p, idx[k][0]);
        l->dw_hh = params_grad(p, idx[k][1]);
        l->db_ih = params_grad(p, idx[k][2]);
        l->db_hh = params_grad(p, idx[k][3]);
    }
    size_t rows0 = (size_t)Tmax * B, need = layer_pack_floats(s.cell, s.H);
    if (!s.float_inputs && rows0 * s.E > need) need = rows0 * s.E;
    if (rows0 * s.V > need) need = rows0 * s.V;
    m->scratch = rt_alloc_floats(need, "activation scratch");
    m->scratch_floats = need;
    for (int k = 0; k < s.L; k++) m->layers[k].pack = m->scratch;
    if (!s.float_inputs) {
        m->layers[0].refill_input = refill_embedded;
        m->layers[0].refill_ctx = m;
    }
    size_t rows = (size_t)Tmax * B;
    int widest = s.E > s.H ? s.E : s.H;
    m->inputs = rt_calloc(rows, sizeof *m->inputs, "chunk inputs");
    m->x0 = s.float_inputs ? NULL : m->scratch;
    m->logits = m->scratch;
    m->dbuf = rt_alloc_floats(rows * widest, "layer gradients");
    if (s.C > 0) {
        m->cond_in = rt_alloc_floats((size_t)B * s.C, "conditioning");
        m->cond_h0 = rt_alloc_floats((size_t)B * s.L * s.H, "conditioned states");
        m->dh0 = rt_alloc_floats((size_t)s.L * B * s.H, "initial-state gradients");
    }
}

void model_free(Model *m) {
    for (int k = 0; k < m->shape.L; k++) layer_free(&m->layers[k]);
    params_free(&m->params);
    free(m->inputs);

    free(m->dbuf);
    free(m->scratch);
    free(m->cond_in);
    free(m->cond_h0);
    free(m->dh0);
    memset(m, 0, sizeof *m);
}

static void fill_uniform(float *w, size_t n, float a, Rng *rng) {
    for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * a);
}

/* Rows of the (n,n) block at w (row stride ld) become an orthonormal basis: Gram-Schmidt
 * (twice, for stability) on Gaussian rows. */
static void fill_orthogonal(float *w, int n, int ld, Rng *rng) {
    double *q = rt_malloc((size_t)n * n * sizeof *q, "orthogonal init");
    for (size_t i = 0; i < (size_t)n * n; i++) q[i] = rng_normal(rng);
    for (int i = 0; i < n; i++) {
        double *qi = q + (size_t)i * n;
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                double *qj = q + (size_t)j * n, d = 0.0;
                for (int k = 0; k < n; k++) d += qi[k] * qj[k];
                for (int k = 0; k < n; k++) qi[k] -= d * qj[k];
            }
        double norm = 0.0;
        for (int k = 0; k < n; k++) norm += qi[k] * qi[k];
        norm = sqrt(norm);
        REQUIRE(norm > 1e-12);
        for (int k = 0; k < n; k++) w[(size_t)i * ld + k] = (float)(qi[k] / norm);
    }
    free(q);
}

/* nn.Linear's weight bound, kaiming_uniform_(a=sqrt(5)) in double as PyTorch computes it:
 * gain sqrt(2/(1+a^2)), bound sqrt(3)*gain/sqrt(fan_in) (= 1/sqrt(fan_in) up to rounding). */
static double torch_linear_weight_bound(int fan_in) {
    double a = sqrt(5.0), gain = sqrt(2.0 / (1.0 + a * a));
    return sqrt(3.0) * (gain / sqrt((double)fan_in));
}

void model_init_weights(Model *m, InitKind kind, float a, uint64_t seed) {
    Params *p = &m->params;
    const ModelShape *s = &m->shape;
    Rng rng;
    rng_seed(&rng, seed);
    if (kind == INIT_UNIFORM) {
        fill_uniform(p->value, p->total, a, &rng);
        return;
    }
    /* PyTorch: Embedding N(0,1); RNN weights and biases U(+-1/sqrt(H)); Linear weight
     * kaiming_uniform_(a=sqrt(5)) and bias U(+-1/sqrt(fan_in)). */
    TorchRng g;
    torch_rng_seed(&g, seed);
    if (m->emb >= 0)
        torch_normal_fill(&g, params_value(p, m->emb), p->tensors[m->emb].size, 0.0, 1.0);
    double bound = 1.0 / sqrt((double)s->H);
    for (int k = 0; k < s->L; k++) {
        Layer *l = &m->layers[k];
        size_t GH = (size_t)s->cell->gates * s->H;
        torch_uniform_fill(&g, l->w_ih, GH * l->D, -bound, bound);
        torch_uniform_fill(&g, l->w_hh, GH * s->H, -bound, bound);
        torch_uniform_fill(&g, l->b_ih, GH, -bound, bound);
        torch_uniform_fill(&g, l->b_hh, GH, -bound, bound);
        if (kind == INIT_ORTHOGONAL)
            for (int gate = 0; gate < s->cell->gates; gate++)
                fill_orthogonal(l->w_hh + (size_t)gate * s->H * s->H, s->H, s->H, &rng);
    }
    double wb = torch_linear_weight_bound(s->H);
    torch_uniform_fill(&g, params_value(p, m->head_w), (size_t)s->V * s->H, -wb, wb);
    torch_uniform_fill(&g, params_value(p, m->head_b), (size_t)s->V, -bound, bound);
    if (s->C > 0) { /* Linear(C, L*H) */
        double cw = torch_linear_weight_bound(s->C), cb = 1.0 / sqrt((double)s->C);
        torch_uniform_fill(&g, params_value(p, m->cond_w), (size_t)s->L * s->H * s->C, -cw, cw);
        torch_uniform_fill(&g, params_value(p, m->cond_b), (size_t)s->L * s->H, -cb, cb);
    }
}

/* Layers and head over x0 (T,B,E). */
static void forward_stack(Model *m, int T) {
    const ModelShape *s = &m->shape;
    size_t rows = (size_t)T * m->B;
    const float *x = m->x0;
    for (int k = 0; k < s->L; k++) {
        Layer *l = &m->layers[k];
        l->kind->forward(l, x, T);
        x = l->h + (size_t)m->B * s->H;              /* h[1..T] (T,B,H) */
    }
    /* logits (T*B,V) = y (T*B,H) . W_head^T + b: bias rows first, GEMM accumulates */
    const float *hb = params_value(&m->params, m->head_b);
    for (size_t r = 0; r < rows; r++) memcpy(m->logits + r * s->V, hb, (size_t)s->V * sizeof(float));
    la_matmul_nt(m->logits, x, params_value(&m->params, m->head_w), (int)rows, s->V, s->H,
                 1.0f);
}

void model_forward(Model *m, const int32_t *inputs, int T) {
    const ModelShape *s = &m->shape;
    REQUIRE(T >= 1 && T <= m->Tmax && m->emb >= 0);
    size_t rows = (size_t)T * m->B;
    for (size_t r = 0; r < rows; r++) {
        int32_t tok = inputs[r];
        REQUIRE(tok >= 0 && tok < (s->in_vocab ? s->in_vocab : s->V));
        m->inputs[r] = tok;
    }
    m->T_last = T;
    gather_embedded(m, T);
    forward_stack(m, T);
}

void model_forward_features(Model *m, const float *x, int T) {
    REQUIRE(T >= 1 && T <= m->Tmax && m->emb < 0);
    m->x0 = (float *)x; /* read in place: the caller keeps x until backward */
    m->T_last = T;
    forward_stack(m, T);
}

void model_set_condition(Model *m, const float *c) {
    const ModelShape *s = &m->shape;
    REQUIRE(s->C > 0);
    int B = m->B, LH = s->L * s->H;
    memcpy(m->cond_in, c, (size_t)B * s->C * sizeof(float));
    /* h0 (B, L*H) = tanh(c W_c^T + b_c) */
    la_matmul_nt(m->cond_h0, c, params_value(&m->params, m->cond_w), B, LH, s->C, 0.0f);
    const float *bc = params_value(&m->params, m->cond_b);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < LH; j++) m->cond_h0[(size_t)b * LH + j] += bc[j];
    activ_tanh(m->cond_h0, m->cond_h0, (size_t)B * LH);
    model_reset_state(m);
    for (int k = 0; k < s->L; k++)
        for (int b = 0; b < B; b++)
            memcpy(m->layers[k].h + (size_t)b * s->H, m->cond_h0 + (size_t)b * LH + k * s->H,
                   (size_t)s->H * sizeof(float));
}

double model_loss_mse(Model *m, const float *targets, const float *weights, int T, float scale,
                      int grad) {
    int V = m->shape.V;
    size_t rows = (size_t)T * m->B;
    double total = 0.0;
    for (size_t r = 0; r < rows; r++) {
        float *z = m->logits + r * V;
        const float *y = targets + r * V;
        float w = weights[r];
        double row = 0.0;
        for (int v = 0; v < V; v++) {
            double d = (double)z[v] - (double)y[v];
            row += d * d;
            if (grad) z[v] = w == 0.0f ? 0.0f : 2.0f * scale * w * (z[v] - y[v]);
        }
        total += w * row;
    }
    return total;
}

double model_loss(Model *m, const int32_t *targets, int T, float scale, int grad) {
    int V = m->shape.V;
    size_t rows = (size_t)T * m->B;
    double total = 0.0;
    for (size_t r = 0; r < rows; r++) {
        float *z = m->logits + r * V;
        int32_t y = targets[r];
        if (y < 0) {
            if (grad) memset(z, 0, (size_t)V * sizeof(float));
            continue;
        }
        REQUIRE(y < V);
        float zmax = z[0];
        for (int v = 1; v < V; v++) zmax = z[v] > zmax ? z[v] : zmax;
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += exp((double)z[v] - (double)zmax);
        double lse = (double)zmax + log(sum);
        total += lse - (double)z[y];
        if (grad) {
            for (int v = 0; v < V; v++) z[v] = (float)exp((double)z[v] - lse) * scale;
            z[y] -= scale;
        }
    }
    return total;
}

/* Gradient range [begin, end) (floats) is final: tell the trainer. */
static void bucket_ready(Model *m, size_t begin, size_t end) {
    if (m->grad_ready && end > begin) m->grad_ready(m->grad_ctx, begin, end - begin);
}

/* Start of tensor i, or the end of the buffer past the last one. */
static size_t tensor_start(const Params *p, int i) {
    return i < p->count ? p->tensors[i].offset : p->total;
}

void model_backward(Model *m, int T, float *dh0, float *dc0) {
    const ModelShape *s = &m->shape;
    Params *p = &m->params;
    int B = m->B, H = s->H;
    size_t rows = (size_t)T * B, BH = (size_t)B * H;
    if (s->C > 0 && !dh0) dh0 = m->dh0; /* conditioning needs dLoss/dh0 */
    const float *ytop = m->layers[s->L - 1].h + BH;
    /* head: dW += dlogits^T y, db += colsum(dlogits), dy = dlogits W */
    la_matmul_tn(params_grad(p, m->head_w), m->logits, ytop, s->V, H, (int)rows, 1.0f);
    la_colsum_add(params_grad(p, m->head_b), m->logits, (int)rows, s->V);
    /* A layer's backward reads dy only in its time loop and writes dx at the very end, so
     * dx may overwrite dy: one buffer carries the gradient down the whole stack. */
    float *dy = m->dbuf;
    la_matmul_nn(dy, m->logits, params_value(p, m->head_w), (int)rows, H, s->V, 0.0f);
    bucket_ready(m, tensor_start(p, m->head_w), tensor_start(p, m->head_b + 1));
    /* Embedding gradient: dE[token] += dx0 row. With fewer token values than rows, layer
     * 0 sums its dA rows per token and multiplies V rows by W_ih instead of computing dx0
     * (rows x G*H x E): for bytes and 32 x 64 chunks that is 8x fewer multiply-adds. The
     * per-token sums live in the scratch buffer, free by then (x0 was read for dW_ih). */
    int V_in = s->in_vocab ? s->in_vocab : s->V;
    size_t GH0 = (size_t)s->cell->gates * H;
    int by_token = m->emb >= 0 && !m->emb_grad_direct && (size_t)V_in < rows &&
                   (size_t)V_in * GH0 <= m->scratch_floats;
    Layer *l0 = &m->layers[0];
    l0->emb_grad = by_token ? params_grad(p, m->emb) : NULL;
    l0->emb_work = m->scratch;
    l0->emb_tokens = m->inputs;
    l0->emb_vocab = V_in;
    for (int k = s->L - 1; k >= 0; k--) {
        Layer *l = &m->layers[k];
        const float *x = k == 0 ? m->x0 : m->layers[k - 1].h + BH;
        l->kind->backward(l, x, dy, k == 0 && (m->emb < 0 || by_token) ? NULL : dy,
                          dh0 ? dh0 + k * BH : NULL,
                          dc0 && s->cell->has_cell ? dc0 + k * BH : NULL, T);
        bucket_ready(m, tensor_start(p, m->layer_param[k]),
                     tensor_start(p, m->layer_param[k] + 4));
    }
    l0->emb_grad = NULL;
    if (m->emb >= 0) {
        if (!by_token) { /* rows in a fixed order: deterministic */
            float *demb = params_grad(p, m->emb);
            for (size_t r = 0; r < rows; r++) {
                float *d = demb + (size_t)m->inputs[r] * s->E;
                const float *g = dy + r * s->E;
                for (int e = 0; e < s->E; e++) d[e] += g[e];
            }
        }
        bucket_ready(m, 0, tensor_start(p, m->emb + 1));
    }
    if (s->C > 0) {
        /* h0 = tanh(c W^T + b): dpre (B, L*H) = dh0 * (1 - h0^2), dW += dpre^T c */
        int LH = s->L * H;
        float *dpre = m->dbuf; /* free now: (B, L*H) fits in (Tmax*B, max(E,H)) */
        REQUIRE((size_t)B * LH <= (size_t)m->Tmax * B * (s->E > H ? s->E : H));
        for (int b = 0; b < B; b++)
            for (int k = 0; k < s->L; k++)
                for (int j = 0; j < H; j++) {
                    float h = m->cond_h0[(size_t)b * LH + k * H + j];
                    dpre[(size_t)b * LH + k * H + j] = dh0[k * BH + (size_t)b * H + j] * (1.0f - h * h);
                }
        la_matmul_tn(params_grad(p, m->cond_w), dpre, m->cond_in, LH, s->C, B, 1.0f);
        la_colsum_add(params_grad(p, m->cond_b), dpre, B, LH);
        bucket_ready(m, tensor_start(p, m->cond_w), p->total);
    }
}

void model_carry(Model *m, int T) {
    for (int k = 0; k < m->shape.L; k++) layer_carry(&m->layers[k], T);
}

size_t model_state_size(const Model *m) {
    return (size_t)m->shape.L * (m->shape.cell->has_cell ? 2 : 1) * m->B * m->shape.H;
}

/* Copies the state between the layers and a flat (L,S,B,H) buffer. */
static void state_copy(Model *m, float *flat, int to_flat) {
    size_t BH = (size_t)m->B * m->shape.H;
    for (int k = 0; k < m->shape.L; k++) {
        Layer *l = &m->layers[k];
        float *parts[2] = {l->h, l->c};
        for (int s = 0; s < (m->shape.cell->has_cell ? 2 : 1); s++) {
            if (to_flat)
                memcpy(flat, parts[s], BH * sizeof(float));
            else
                memcpy(parts[s], flat, BH * sizeof(float));
            flat += BH;
        }
    }
}

void model_get_state(const Model *m, float *out) { state_copy((Model *)m, out, 1); }
void model_set_state(Model *m, const float *in) { state_copy(m, (float *)in, 0); }

void model_reset_state(Model *m) {
    for (int k = 0; k < m->shape.L; k++) layer_reset(&m->layers[k]);
}

double model_forward_flops_per_token(const ModelShape *s) {
    double f = 2.0 * s->H * s->V; /* head; conditioning is per sequence, not counted */
    for (int k = 0; k < s->L; k++)
        f += 2.0 * s->cell->gates * s->H * (double)(model_layer_input(s, k) + s->H);
    return f;
}
