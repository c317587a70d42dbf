#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "linalg.h"

int model_layer_input(const ModelShape *s, int layer) { return layer == 0 ? s->E : s->H; }

static float *alloc_floats(size_t n, const char *what) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, (n ? n : 1) * sizeof(float)) != 0)
        rt_die(EXIT_RUNTIME, "out of memory allocating %zu floats for %s", n, what);
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

static void model_build(Model *m, ModelShape s, int B, int Tmax, const Params *share);

void model_init(Model *m, ModelShape s, int B, int Tmax) { model_build(m, s, B, Tmax, NULL); }

void model_init_shared(Model *m, const Model *owner, int B, int Tmax) {
    model_build(m, owner->shape, B, Tmax, &owner->params);
}

static void model_build(Model *m, ModelShape s, int B, int Tmax, const Params *share) {
    REQUIRE(s.cell && s.L >= 1 && s.L <= MODEL_MAX_LAYERS && s.H > 0 && s.E > 0 && s.V > 0);
    REQUIRE(B > 0 && Tmax > 0);
    memset(m, 0, sizeof *m);
    m->shape = s;
    m->B = B;
    m->Tmax = Tmax;
    int G = s.cell->gates;
    Params *p = &m->params;
    m->emb = params_add(p, "embedding.weight", s.V, s.E);
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
    m->pack = alloc_floats(layer_pack_floats(s.cell, s.H), "packed recurrent weights");
    for (int k = 0; k < s.L; k++) m->layers[k].pack = m->pack;
    size_t rows = (size_t)Tmax * B;
    int widest = s.E > s.H ? s.E : s.H;
    m->inputs = rt_calloc(rows, sizeof *m->inputs, "chunk inputs");
    m->x0 = alloc_floats(rows * s.E, "embedded inputs");
    m->logits = alloc_floats(rows * s.V, "logits");
    m->dbuf[0] = alloc_floats(rows * widest, "layer gradients");
    m->dbuf[1] = alloc_floats(rows * widest, "layer gradients");
}

void model_free(Model *m) {
    for (int k = 0; k < m->shape.L; k++) layer_free(&m->layers[k]);
    params_free(&m->params);
    free(m->inputs);
    free(m->x0);
    free(m->logits);
    free(m->dbuf[0]);
    free(m->dbuf[1]);
    free(m->pack);
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

void model_init_weights(Model *m, InitKind kind, float a, Rng *rng) {
    Params *p = &m->params;
    const ModelShape *s = &m->shape;
    if (kind == INIT_UNIFORM) {
        fill_uniform(p->value, p->total, a, rng);
        return;
    }
    /* PyTorch: Embedding N(0,1); RNN weights and biases U(+-1/sqrt(H)); Linear weight
     * and bias U(+-1/sqrt(fan_in)). */
    float *emb = params_value(p, m->emb);
    for (size_t i = 0; i < p->tensors[m->emb].size; i++) emb[i] = (float)rng_normal(rng);
    float bound = 1.0f / sqrtf((float)s->H);
    for (int k = 0; k < s->L; k++) {
        Layer *l = &m->layers[k];
        size_t GH = (size_t)s->cell->gates * s->H;
        fill_uniform(l->w_ih, GH * l->D, bound, rng);
        fill_uniform(l->w_hh, GH * s->H, bound, rng);
        fill_uniform(l->b_ih, GH, bound, rng);
        fill_uniform(l->b_hh, GH, bound, rng);
        if (kind == INIT_ORTHOGONAL)
            for (int g = 0; g < s->cell->gates; g++)
                fill_orthogonal(l->w_hh + (size_t)g * s->H * s->H, s->H, s->H, rng);
    }
    fill_uniform(params_value(p, m->head_w), (size_t)s->V * s->H, bound, rng);
    fill_uniform(params_value(p, m->head_b), (size_t)s->V, bound, rng);
}

void model_forward(Model *m, const int32_t *inputs, int T) {
    const ModelShape *s = &m->shape;
    REQUIRE(T >= 1 && T <= m->Tmax);
    size_t rows = (size_t)T * m->B;
    const float *emb = params_value(&m->params, m->emb);
    for (size_t r = 0; r < rows; r++) {
        int32_t tok = inputs[r];
        REQUIRE(tok >= 0 && tok < s->V);
        m->inputs[r] = tok;
        memcpy(m->x0 + r * s->E, emb + (size_t)tok * s->E, (size_t)s->E * sizeof(float));
    }
    const float *x = m->x0;
    for (int k = 0; k < s->L; k++) {
        Layer *l = &m->layers[k];
        l->kind->forward(l, x, T);
        x = l->h + (size_t)m->B * s->H;              /* h[1..T] (T,B,H) */
    }
    /* logits (T*B,V) = y (T*B,H) . W_head^T + b */
    la_matmul_nt(m->logits, x, params_value(&m->params, m->head_w), (int)rows, s->V, s->H,
                 0.0f);
    const float *hb = params_value(&m->params, m->head_b);
    for (size_t r = 0; r < rows; r++)
        for (int v = 0; v < s->V; v++) m->logits[r * s->V + v] += hb[v];
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
        for (int v = 0; v < V; v++) sum += exp((double)(z[v] - zmax));
        double lse = (double)zmax + log(sum);
        total += lse - (double)z[y];
        if (grad) {
            for (int v = 0; v < V; v++) z[v] = (float)exp((double)z[v] - lse) * scale;
            z[y] -= scale;
        }
    }
    return total;
}

/* Gradient range [tensors[first].offset, end) is final: tell the trainer. */
static void bucket_ready(Model *m, int first, size_t end) {
    if (!m->grad_ready) return;
    size_t begin = m->params.tensors[first].offset;
    m->grad_ready(m->grad_ctx, begin, end - begin);
}

void model_backward(Model *m, int T, float *dh0, float *dc0) {
    const ModelShape *s = &m->shape;
    Params *p = &m->params;
    int B = m->B, H = s->H;
    size_t rows = (size_t)T * B, BH = (size_t)B * H;
    const float *ytop = m->layers[s->L - 1].h + BH;
    /* head: dW += dlogits^T y, db += colsum(dlogits), dy = dlogits W */
    la_matmul_tn(params_grad(p, m->head_w), m->logits, ytop, s->V, H, (int)rows, 1.0f);
    la_colsum_add(params_grad(p, m->head_b), m->logits, (int)rows, s->V);
    float *dy = m->dbuf[0], *dx = m->dbuf[1];
    la_matmul_nn(dy, m->logits, params_value(p, m->head_w), (int)rows, H, s->V, 0.0f);
    bucket_ready(m, m->head_w, p->total);
    for (int k = s->L - 1; k >= 0; k--) {
        Layer *l = &m->layers[k];
        const float *x = k == 0 ? m->x0 : m->layers[k - 1].h + BH;
        l->kind->backward(l, x, dy, dx, dh0 ? dh0 + k * BH : NULL,
                          dc0 && s->cell->has_cell ? dc0 + k * BH : NULL, T);
        /* layer k's tensors lie between the embedding (or layer k-1) and layer k+1 */
        int first = m->emb + 1 + 4 * k;
        size_t end = k == s->L - 1 ? p->tensors[m->head_w].offset : p->tensors[first + 4].offset;
        bucket_ready(m, first, end);
        float *tmp = dy;
        dy = dx;
        dx = tmp;
    }
    /* embedding: dE[token] += dx0 (rows in a fixed order: deterministic) */
    float *demb = params_grad(p, m->emb);
    for (size_t r = 0; r < rows; r++) {
        float *d = demb + (size_t)m->inputs[r] * s->E;
        const float *g = dy + r * s->E;
        for (int e = 0; e < s->E; e++) d[e] += g[e];
    }
    bucket_ready(m, m->emb, p->tensors[m->emb + 1].offset);
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
    double f = 2.0 * s->H * s->V;
    for (int k = 0; k < s->L; k++)
        f += 2.0 * s->cell->gates * s->H * (double)(model_layer_input(s, k) + s->H);
    return f;
}
