#include "model.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activ.h"
#include "common.h"
#include "linalg.h"
#include "norm.h"

/* ---- shapes ---------------------------------------------------------------------- */

void model_shape_uniform(ModelShape *s, const LayerKind *kind, int L, int H) {
    REQUIRE(L >= 1 && L <= MODEL_MAX_LAYERS);
    s->L = L;
    for (int k = 0; k < L; k++) {
        s->layer[k].kind = kind;
        s->layer[k].H = H;
    }
}

int model_shape_parse_layers(ModelShape *s, const char *spec, char *err, size_t size) {
    int L = 0;
    const char *p = spec;
    while (*p) {
        const char *colon = strchr(p, ':'), *comma = strchr(p, ',');
        if (!comma) comma = p + strlen(p);
        if (!colon || colon > comma) {
            snprintf(err, size, "expected KIND:WIDTH[,KIND:WIDTH...] (kinds %s), found '%s'",
                     layer_kind_names(), spec);
            return 0;
        }
        char kind[32];
        size_t klen = (size_t)(colon - p);
        if (klen == 0 || klen >= sizeof kind) {
            snprintf(err, size, "layer %d of '%s': missing or too long kind", L + 1, spec);
            return 0;
        }
        memcpy(kind, p, klen);
        kind[klen] = 0;
        const LayerKind *k = layer_kind_by_name(kind);
        if (!k) {
            snprintf(err, size, "layer %d of '%s': unknown kind '%s' (expected %s)", L + 1, spec,
                     kind, layer_kind_names());
            return 0;
        }
        char *end;
        long w = strtol(colon + 1, &end, 10);
        if (end != comma || w < 1 || w > 65536) {
            snprintf(err, size, "layer %d of '%s': width must be an integer in [1, 65536]",
                     L + 1, spec);
            return 0;
        }
        if (L == MODEL_MAX_LAYERS) {
            snprintf(err, size, "'%s' has more than %d layers", spec, MODEL_MAX_LAYERS);
            return 0;
        }
        s->layer[L].kind = k;
        s->layer[L].H = (int)w;
        L++;
        p = *comma ? comma + 1 : comma;
        if (*comma && !*p) {
            snprintf(err, size, "'%s' ends with a comma", spec);
            return 0;
        }
    }
    if (L == 0) {
        snprintf(err, size, "expected at least one KIND:WIDTH, found '%s'", spec);
        return 0;
    }
    s->L = L;
    return 1;
}

void model_shape_stack_text(const LayerSpec *layer, int L, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = 0;
    for (int k = 0; k < L && used < size; k++) {
        int n = snprintf(buf + used, size - used, "%s%s:%d", k ? "," : "", layer[k].kind->name,
                         layer[k].H);
        if (n < 0) break;
        used += (size_t)n;
    }
}

void model_shape_layers_text(const ModelShape *s, char *buf, size_t size) {
    model_shape_stack_text(s->layer, s->L, buf, size);
}

int model_shape_is_uniform(const ModelShape *s) {
    for (int k = 1; k < s->L; k++)
        if (s->layer[k].kind != s->layer[0].kind || s->layer[k].H != s->layer[0].H) return 0;
    return 1;
}

static int specs_equal(const LayerSpec *a, const LayerSpec *b, int L) {
    for (int k = 0; k < L; k++) {
        if (a[k].kind != b[k].kind || a[k].H != b[k].H) return 0;
        LayerOpts oa = layer_opts_resolve(a[k].kind, &a[k].opt, a[k].H),
                  ob = layer_opts_resolve(b[k].kind, &b[k].opt, b[k].H);
        if (memcmp(&oa, &ob, sizeof oa) != 0) return 0;
    }
    return 1;
}

int model_shape_encoder_width(const ModelShape *s) {
    return s->enc_L > 0 ? s->enc_layer[s->enc_L - 1].H * (s->bidirectional ? 2 : 1) : 0;
}

int model_shape_equal(const ModelShape *a, const ModelShape *b) {
    if (a->L != b->L || a->E != b->E || a->V != b->V || a->float_inputs != b->float_inputs ||
        a->C != b->C || a->in_vocab != b->in_vocab || a->pool_mean != b->pool_mean ||
        model_shape_head_tied(a) != model_shape_head_tied(b))
        return 0;
    if (a->enc_L != b->enc_L || a->enc_vocab != b->enc_vocab ||
        a->bidirectional != b->bidirectional || a->attention != b->attention)
        return 0;
    return specs_equal(a->layer, b->layer, a->L) && specs_equal(a->enc_layer, b->enc_layer, a->enc_L);
}

int model_shape_stack_bidir(const ModelShape *s) { return s->bidirectional && s->enc_L == 0; }
int model_layer_width(const ModelShape *s, int k) {
    return s->layer[k].H * (model_shape_stack_bidir(s) ? 2 : 1);
}
int model_layer_input(const ModelShape *s, int k) { return k == 0 ? s->E : model_layer_width(s, k - 1); }
int model_top_width(const ModelShape *s) { return model_layer_width(s, s->L - 1); }

int model_shape_is_backbone(const ModelShape *s) {
    for (int k = 0; k < s->L; k++)
        if (strcmp(s->layer[k].kind->name, "mamba") != 0) return 0;
    return 1;
}

static int top_is_mamba(const ModelShape *s) {
    return strcmp(s->layer[s->L - 1].kind->name, "mamba") == 0;
}

int model_shape_head_tied(const ModelShape *s) {
    return top_is_mamba(s) && !s->float_inputs && (s->in_vocab == 0 || s->in_vocab == s->V) &&
           s->E == model_top_width(s) && !s->untied;
}

/* ---- carried state ------------------------------------------------------------------- */

void model_state_init(ModelState *st, const Model *m, int B) {
    memset(st, 0, sizeof *st);
    st->B = B;
    st->L = m->shape.L;
    for (int k = 0; k < st->L; k++) {
        const Layer *l = &m->layers[k];
        st->nstates[k] = l->kind->nstates;
        for (int s = 0; s < l->kind->nstates; s++) {
            st->width[k][s] = l->kind->state_width(l, s);
            st->floats += (size_t)B * st->width[k][s];
        }
    }
    st->buf = rt_alloc_floats(st->floats, "carried state");
    float *p = st->buf;
    for (int k = 0; k < st->L; k++)
        for (int s = 0; s < st->nstates[k]; s++) {
            st->t[k][s] = p;
            p += (size_t)B * st->width[k][s];
        }
}

void model_state_view(ModelState *view, const ModelState *all, int first, int count) {
    REQUIRE(first >= 0 && count >= 1 && first + count <= all->B);
    *view = *all;
    view->B = count;
    view->buf = NULL;
    view->floats = 0;
    for (int k = 0; k < all->L; k++)
        for (int s = 0; s < all->nstates[k]; s++) {
            view->t[k][s] = all->t[k][s] + (size_t)first * all->width[k][s];
            view->floats += (size_t)count * all->width[k][s];
        }
}

void model_state_free(ModelState *st) {
    free(st->buf);
    memset(st, 0, sizeof *st);
}

void model_state_zero(ModelState *st) {
    for (int k = 0; k < st->L; k++)
        for (int s = 0; s < st->nstates[k]; s++)
            memset(st->t[k][s], 0, (size_t)st->B * st->width[k][s] * sizeof(float));
}

void model_state_zero_stream(ModelState *st, int b) {
    REQUIRE(b >= 0 && b < st->B);
    for (int k = 0; k < st->L; k++)
        for (int s = 0; s < st->nstates[k]; s++)
            memset(st->t[k][s] + (size_t)b * st->width[k][s], 0,
                   (size_t)st->width[k][s] * sizeof(float));
}

void model_state_copy(ModelState *dst, const ModelState *src) {
    REQUIRE(dst->B == src->B && dst->L == src->L);
    for (int k = 0; k < src->L; k++)
        for (int s = 0; s < src->nstates[k]; s++) {
            REQUIRE(dst->width[k][s] == src->width[k][s]);
            memcpy(dst->t[k][s], src->t[k][s], (size_t)src->B * src->width[k][s] * sizeof(float));
        }
}

/* ---- building ------------------------------------------------------------------------ */

static void model_build(Model *m, ModelShape s, int B, int Tmax, const Params *share) {
    REQUIRE(s.L >= 1 && s.L <= MODEL_MAX_LAYERS && s.E > 0 && s.V > 0 && s.C >= 0);
    REQUIRE(B > 0 && Tmax > 0);
    memset(m, 0, sizeof *m);
    m->B = B;
    m->Tmax = Tmax;
    Params *p = &m->params;
    int backbone = model_shape_is_backbone(&s), tied = model_shape_head_tied(&s);
    for (int k = 0; k < s.L; k++)
        s.layer[k].opt = layer_opts_resolve(s.layer[k].kind, &s.layer[k].opt, s.layer[k].H);
    for (int k = 0; k < s.enc_L; k++)
        s.enc_layer[k].opt =
            layer_opts_resolve(s.enc_layer[k].kind, &s.enc_layer[k].opt, s.enc_layer[k].H);
    REQUIRE(s.enc_L >= 0 && s.enc_L <= ENCODER_MAX_LAYERS && (s.enc_L == 0 || s.enc_steps > 0));
    REQUIRE(s.attention == ATTENTION_NONE || s.enc_L > 0);
    if (s.enc_L > 0) s.C = model_shape_encoder_width(&s); /* the hand-over conditions */
    m->shape = s;
    m->emb = s.float_inputs ? -1
                            : params_add(p, backbone ? "backbone.embedding.weight" : "embedding.weight",
                                         s.in_vocab ? s.in_vocab : s.V, s.E);
    int stacked = model_shape_is_uniform(&s) && s.layer[0].kind->stacked_module;
    m->bidir = model_shape_stack_bidir(&s);
    REQUIRE(!m->bidir || s.C == 0);
    for (int k = 0; k < s.L; k++) {
        const LayerKind *kind = s.layer[k].kind;
        char prefix[40], suffix[16] = "";
        snprintf(prefix, sizeof prefix, stacked ? "rnn." : backbone ? "backbone.layers.%d." : "layers.%d.", k);
        if (kind->stacked_module) snprintf(suffix, sizeof suffix, "_l%d", stacked ? k : 0);
        layer_declare(&m->layers[k], kind, model_layer_input(&s, k), s.layer[k].H,
                      &s.layer[k].opt, p, prefix, suffix);
        if (m->bidir) { /* PyTorch's names: weight_ih_l0_reverse; layers.0_reverse.* */
            char rprefix[48], rsuffix[24];
            snprintf(rsuffix, sizeof rsuffix, "%s%s", suffix, kind->stacked_module ? "_reverse" : "");
            if (kind->stacked_module)
                snprintf(rprefix, sizeof rprefix, "%s", prefix);
            else
                snprintf(rprefix, sizeof rprefix, backbone ? "backbone.layers.%d_reverse." : "layers.%d_reverse.", k);
            layer_declare(&m->rev[k], kind, model_layer_input(&s, k), s.layer[k].H,
                          &s.layer[k].opt, p, rprefix, rsuffix);
        }
    }
    int Htop = model_top_width(&s);
    m->cond_width = 0;
    for (int k = 0; k < s.L; k++) m->cond_width += m->layers[k].kind->state_width(&m->layers[k], 0);
    int CW = m->cond_width;
    m->norm_f = !top_is_mamba(&s) ? -1
                : params_add(p, backbone ? "backbone.norm_f.weight" : "norm_f.weight", Htop, 0);
    m->head_w = m->head_b = -1;
    if (!tied && top_is_mamba(&s) && !s.float_inputs && (s.in_vocab == 0 || s.in_vocab == s.V)) {
        m->head_w = params_add(p, "lm_head.weight", s.V, Htop); /* MambaLMHeadModel: no bias */
    } else if (!tied) {
        m->head_w = params_add(p, "head.weight", s.V, Htop);
        m->head_b = params_add(p, "head.bias", s.V, 0);
    }
    m->has_attn = s.attention != ATTENTION_NONE;
    if (m->has_attn)
        attention_declare(&m->attn, (AttentionKind)s.attention, Htop, s.C, p);
    m->cond_w = m->cond_b = -1;
    if (s.C > 0) {
        m->cond_w = params_add(p, "cond.weight", CW, s.C);
        m->cond_b = params_add(p, "cond.bias", CW, 0);
    }
    m->has_enc = s.enc_L > 0;
    if (m->has_enc)
        encoder_declare(&m->enc, s.enc_layer, s.enc_L, s.bidirectional, s.enc_vocab, s.E, p);
    if (share) {
        REQUIRE(share->total == p->total);
        p->value = share->value;
        p->grad = share->grad;
        p->state1 = share->state1;
        p->state2 = share->state2;
    } else {
        params_alloc(p);
    }
    size_t rows = (size_t)Tmax * B, need = 0;
    int widest = s.E;
    for (int k = 0; k < s.L; k++) {
        Layer *l = &m->layers[k];
        layer_alloc(l, p, B, Tmax);
        size_t w = l->kind->workspace_floats(l);
        if (w > need) need = w;
        if (model_layer_width(&s, k) > widest) widest = model_layer_width(&s, k);
        if (m->bidir) {
            Layer *r = &m->rev[k];
            layer_alloc(r, p, B, Tmax);
            for (int st = 0; st < r->kind->nstates; st++)
                m->rev_state[k][st] =
                    rt_alloc_floats((size_t)B * r->kind->state_width(r, st), "reverse state");
            m->bd_xr[k] = rt_alloc_floats(rows * l->D, "reversed input");
            m->bd_cat[k] = rt_alloc_floats(rows * 2 * l->H, "bidirectional output");
        }
    }
    if (m->bidir) {
        m->bd_dyf = rt_alloc_floats(rows * widest, "bidirectional gradient");
        m->bd_dyr = rt_alloc_floats(rows * widest, "bidirectional gradient");
        m->bd_dxr = rt_alloc_floats(rows * widest, "bidirectional gradient");
        m->len = rt_calloc((size_t)B, sizeof *m->len, "lengths");
        for (int b = 0; b < B; b++) m->len[b] = Tmax;
    }
    if (m->has_enc) {
        encoder_alloc(&m->enc, p, B, s.enc_steps);
        size_t w = encoder_workspace_floats(&m->enc);
        if (w > need) need = w;
        m->enc_dout = rt_alloc_floats((size_t)s.enc_steps * B * s.C, "encoder output gradient");
        m->enc_dsummary = rt_alloc_floats((size_t)B * s.C, "encoder hand-over gradient");
    }
    if (m->has_attn) attention_alloc(&m->attn, B, Tmax, s.enc_steps);
    if (!s.float_inputs && rows * s.E > need) need = rows * s.E;
    if (rows * s.V > need) need = rows * s.V;
    m->ws = rt_alloc_floats(need, "workspace");
    m->ws_floats = need;
    m->logits = m->ws;
    m->inputs = rt_calloc(rows, sizeof *m->inputs, "chunk inputs");
    m->row_loss = rt_calloc(rows, sizeof *m->row_loss, "row losses");
    m->rows_max = rows;
    m->pool_last = rt_calloc((size_t)B, sizeof *m->pool_last, "pooling");
    size_t dfloats = rows * widest;
    if (s.C > 0 && (size_t)B * CW > dfloats) dfloats = (size_t)B * CW;
    m->dbuf = rt_alloc_floats(dfloats, "layer gradients");
    if (m->norm_f >= 0) {
        m->normed = rt_alloc_floats(rows * Htop, "final norm output");
        m->norm_rinv = rt_alloc_floats(rows, "final norm roots");
    }
    if (s.C > 0) {
        m->cond_in = rt_alloc_floats((size_t)B * s.C, "conditioning");
        m->cond_h0 = rt_alloc_floats((size_t)B * CW, "conditioned states");
        model_state_init(&m->dstate, m, B);
    }
}

void model_init(Model *m, ModelShape s, int B, int Tmax) { model_build(m, s, B, Tmax, NULL); }

void model_init_shared(Model *m, const Model *owner, int B, int Tmax) {
    model_build(m, owner->shape, B, Tmax, &owner->params);
}

void model_free(Model *m) {
    for (int k = 0; k < m->shape.L; k++) layer_free(&m->layers[k]);
    params_free(&m->params);
    free(m->inputs);
    free(m->row_loss);
    free(m->dbuf);
    free(m->ws);
    free(m->cond_in);
    free(m->cond_h0);
    free(m->normed);
    free(m->pool_last);
    free(m->norm_rinv);
    model_state_free(&m->dstate);
    if (m->has_enc) encoder_free(&m->enc);
    if (m->bidir)
        for (int k = 0; k < m->shape.L; k++) {
            layer_free(&m->rev[k]);
            for (int st = 0; st < LAYER_MAX_STATES; st++) free(m->rev_state[k][st]);
            free(m->bd_xr[k]);
            free(m->bd_cat[k]);
        }
    free(m->bd_dyf);
    free(m->bd_dyr);
    free(m->bd_dxr);
    free(m->len);
    if (m->has_attn) attention_free(&m->attn);
    free(m->enc_dout);
    free(m->enc_dsummary);
    for (int k = 0; k < MODEL_MAX_LAYERS; k++) {
        free(m->drop_y[k]);
        free(m->drop_mask[k]);
    }
    memset(m, 0, sizeof *m);
}

/* ---- dropout ----------------------------------------------------------------------- */

int model_dropout_keep(const ModelDropout *d, int64_t stream, int k, int64_t pos, int j) {
    return dropout_keep(d, stream, k, pos, j);
}

void model_set_dropout(Model *m, const ModelDropout *d) {
    if (!d || d->p == 0.0f) {
        m->drop.p = 0.0f;
        return;
    }
    REQUIRE(d->p > 0.0f && d->p < 1.0f && d->stream);
    m->drop = *d;
    size_t rows = (size_t)m->Tmax * m->B;
    for (int k = 0; k < m->shape.L; k++)
        if (!m->drop_y[k]) {
            m->drop_y[k] = rt_alloc_floats(rows * model_layer_width(&m->shape, k), "dropout outputs");
            m->drop_mask[k] = rt_calloc(rows * model_layer_width(&m->shape, k), 1, "dropout masks");
        }
}

/* y (T,B,W_k) of layer k -> drop_y[k], its mask -> drop_mask[k] */
static void dropout_layer(Model *m, int k, const float *y, int T) {
    dropout_forward(&m->drop, k, y, m->drop_y[k], m->drop_mask[k], T, m->B,
                    model_layer_width(&m->shape, k));
}

/* dy (T,B,W_k) of layer k's dropped output -> of its output, in place */
static void dropout_layer_backward(const Model *m, int k, float *dy, int T) {
    dropout_backward(&m->drop, m->drop_mask[k], dy,
                     (size_t)T * m->B * model_layer_width(&m->shape, k));
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
    if (kind == INIT_UNIFORM) { /* the whole buffer, padding included */
        for (size_t i = 0; i < p->total; i++)
            p->value[i] = (float)((2.0 * rng_uniform(&rng) - 1.0) * a);
        return;
    }
    /* PyTorch: Embedding N(0,1); each layer as its module does; Linear weight
     * kaiming_uniform_(a=sqrt(5)) and bias U(+-1/sqrt(fan_in)). */
    TorchRng g;
    torch_rng_seed(&g, seed);
    if (m->emb >= 0) /* MambaLMHeadModel: N(0, 0.02) */
        torch_normal_fill(&g, params_value(p, m->emb), p->tensors[m->emb].size, 0.0,
                          top_is_mamba(s) ? 0.02 : 1.0);
    LayerInit init = {kind, &g, &rng, s->L, m->init_dt_min, m->init_dt_max};
    for (int k = 0; k < s->L; k++) {
        m->layers[k].kind->init_weights(&m->layers[k], &init);
        if (m->bidir) m->rev[k].kind->init_weights(&m->rev[k], &init);
    }
    int Htop = model_top_width(s), CW = m->cond_width;
    if (m->norm_f >= 0)
        for (int j = 0; j < Htop; j++) params_value(p, m->norm_f)[j] = 1.0f;
    double wb = torch_linear_weight_bound(Htop), bound = 1.0 / sqrt((double)Htop);
    if (m->head_w >= 0)
        torch_uniform_fill(&g, params_value(p, m->head_w), (size_t)s->V * Htop, -wb, wb);
    if (m->head_b >= 0)
        torch_uniform_fill(&g, params_value(p, m->head_b), (size_t)s->V, -bound, bound);
    if (s->C > 0) { /* Linear(C, sum of first state widths) */
        double cw = torch_linear_weight_bound(s->C), cb = 1.0 / sqrt((double)s->C);
        torch_uniform_fill(&g, params_value(p, m->cond_w), (size_t)CW * s->C, -cw, cw);
        torch_uniform_fill(&g, params_value(p, m->cond_b), (size_t)CW, -cb, cb);
    }
    if (m->has_attn) attention_init_weights(&m->attn, &g, p);
    if (m->has_enc) encoder_init_weights(&m->enc, &init, p);
}

/* ---- forward --------------------------------------------------------------------- */

/* x (T,B,E) = embedding rows of the chunk's tokens. */
static void gather_embedded(const Model *m, float *x, int T) {
    const ModelShape *s = &m->shape;
    const float *emb = params_value(&m->params, m->emb);
    for (size_t r = 0; r < (size_t)T * m->B; r++)
        memcpy(x + r * s->E, emb + (size_t)m->inputs[r] * s->E, (size_t)s->E * sizeof(float));
}

/* The head's weight: its own, or the embedding. */
static const float *head_weight(const Model *m) {
    return params_value(&m->params, m->head_w >= 0 ? m->head_w : m->emb);
}

/* logits (rows,V) = [norm_f](y) (rows,H) . W_head^T + b: bias rows first, GEMM accumulates */
static void head_forward(Model *m, const float *y, int rows) {
    const ModelShape *s = &m->shape;
    int Htop = model_top_width(s);
    if (m->norm_f >= 0) {
        norm_rms_forward(m->normed, m->norm_rinv, y, params_value(&m->params, m->norm_f), rows,
                         Htop);
        y = m->normed;
    }
    float beta = 0.0f;
    if (m->head_b >= 0) {
        const float *hb = params_value(&m->params, m->head_b);
#pragma omp parallel for schedule(static) if (rows > 64 && omp_get_max_threads() > 1)
        for (int r = 0; r < rows; r++)
            memcpy(m->logits + (size_t)r * s->V, hb, (size_t)s->V * sizeof(float));
        beta = 1.0f;
    }
    la_matmul_nt(m->logits, y, head_weight(m), rows, s->V, Htop, beta);
}

/* Layers and head over m->x0 (T,B,E). */
static void forward_stack(Model *m, ModelState *st, int T) {
    const ModelShape *s = &m->shape;
    REQUIRE(st->B == m->B && st->L == s->L);
    size_t rows = (size_t)T * m->B;
    m->cond_used = m->cond_set;
    m->cond_set = 0;
    const float *x = m->x0;
    m->drop_on = m->drop.p > 0.0f;
    for (int k = 0; k < s->L; k++) {
        Layer *l = &m->layers[k];
        l->kind->forward(l, st->t[k], x, T, m->ws);
        if (m->bidir) { /* the reverse pass from zero, within each length */
            Layer *r = &m->rev[k];
            bidir_reverse(m->bd_xr[k], x, m->len, T, m->B, l->D);
            for (int q = 0; q < r->kind->nstates; q++)
                memset(m->rev_state[k][q], 0,
                       (size_t)m->B * r->kind->state_width(r, q) * sizeof(float));
            r->kind->forward(r, m->rev_state[k], m->bd_xr[k], T, m->ws);
            bidir_concat(m->bd_cat[k], l->y, r->y, m->len, T, m->B, l->H);
            x = m->bd_cat[k];                        /* (T,B,2H_k) */
        } else {
            x = l->y;                                /* (T,B,H_k) */
        }
        if (m->drop_on) {
            dropout_layer(m, k, x, T);
            x = m->drop_y[k];
        }
    }
    if (m->has_attn) {
        attention_forward(&m->attn, &m->params, x, T);
        x = m->attn.out;
    }
    head_forward(m, x, (int)rows);
}

void model_forward(Model *m, ModelState *st, const int32_t *inputs, int T) {
    const ModelShape *s = &m->shape;
    REQUIRE(T >= 1 && T <= m->Tmax && m->emb >= 0);
    size_t rows = (size_t)T * m->B;
    for (size_t r = 0; r < rows; r++) {
        int32_t tok = inputs[r];
        REQUIRE(tok >= 0 && tok < (s->in_vocab ? s->in_vocab : s->V));
        m->inputs[r] = tok;
    }
    m->T_last = T;
    gather_embedded(m, m->dbuf, T); /* dbuf is free until backward */
    m->x0 = m->dbuf;
    forward_stack(m, st, T);
}

void model_set_lengths(Model *m, const int32_t *len) {
    REQUIRE(m->bidir);
    for (int b = 0; b < m->B; b++) {
        REQUIRE(len[b] >= 1 && len[b] <= m->Tmax);
        m->len[b] = len[b];
    }
}

void model_step(Model *m, ModelState *st, const int32_t *tokens) {
    const ModelShape *s = &m->shape;
    REQUIRE(m->emb >= 0 && st->B == m->B && !m->bidir); /* no future one step at a time */
    for (int b = 0; b < m->B; b++) {
        REQUIRE(tokens[b] >= 0 && tokens[b] < (s->in_vocab ? s->in_vocab : s->V));
        m->inputs[b] = tokens[b];
    }
    gather_embedded(m, m->dbuf, 1);
    const float *x = m->dbuf;
    for (int k = 0; k < s->L; k++) {
        Layer *l = &m->layers[k];
        l->kind->step(l, st->t[k], x, m->ws);
        x = l->y;
    }
    if (m->has_attn) {
        attention_forward(&m->attn, &m->params, x, 1);
        x = m->attn.out;
    }
    head_forward(m, x, m->B);
}

void model_forward_features(Model *m, ModelState *st, const float *x, int T) {
    REQUIRE(T >= 1 && T <= m->Tmax && m->emb < 0);
    m->x0 = x;
    m->T_last = T;
    forward_stack(m, st, T);
}

void model_set_condition(Model *m, ModelState *st, const float *c) {
    const ModelShape *s = &m->shape;
    REQUIRE(s->C > 0 && st->B == m->B);
    int B = m->B, CW = m->cond_width;
    memcpy(m->cond_in, c, (size_t)B * s->C * sizeof(float));
    /* h0 (B, sum H_k) = tanh(c W_c^T + b_c) */
    la_matmul_nt(m->cond_h0, c, params_value(&m->params, m->cond_w), B, CW, s->C, 0.0f);
    const float *bc = params_value(&m->params, m->cond_b);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < CW; j++) m->cond_h0[(size_t)b * CW + j] += bc[j];
    activ_tanh(m->cond_h0, m->cond_h0, (size_t)B * CW);
    model_state_zero(st);
    m->cond_set = 1;
    for (int k = 0, off = 0; k < s->L; off += st->width[k][0], k++) {
        int H = st->width[k][0];
        for (int b = 0; b < B; b++)
            memcpy(st->t[k][0] + (size_t)b * H, m->cond_h0 + (size_t)b * CW + off,
                   (size_t)H * sizeof(float));
    }
}

void model_encode(Model *m, ModelState *st, const int32_t *src, const int32_t *len, int S) {
    REQUIRE(m->has_enc && st->B == m->B);
    encoder_forward(&m->enc, &m->params, src, len, S, &m->drop, m->ws);
    if (m->has_attn) attention_keys(&m->attn, &m->params, m->enc.top, m->enc.len, S);
    model_set_condition(m, st, m->enc.summary);
}

/* ---- losses ------------------------------------------------------------------------ */

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

/* Mean pooling: the logits of each stream's labelled step (at most one per stream: its last
 * valid step, the steps before it the sequence) become the mean over the steps up to it. */
static void pool_logits(Model *m, const int32_t *targets, int T) {
    int V = m->shape.V, B = m->B;
    for (int b = 0; b < B; b++) {
        int last = -1;
        for (int t = 0; t < T; t++)
            if (targets[(size_t)t * B + b] >= 0) {
                REQUIRE(last < 0); /* one label per sequence (classify) */
                last = t;
            }
        m->pool_last[b] = last;
        if (last <= 0) continue;
        float *z = m->logits + ((size_t)last * B + b) * V;
        for (int v = 0; v < V; v++) {
            double s = 0.0;
            for (int t = 0; t <= last; t++) s += m->logits[((size_t)t * B + b) * V + v];
            z[v] = (float)(s / (last + 1));
        }
    }
}

/* The gradient of the pooled logits, spread evenly over the steps they averaged. */
static void unpool_grad(Model *m) {
    int V = m->shape.V, B = m->B;
    for (int b = 0; b < B; b++) {
        int last = m->pool_last[b];
        if (last <= 0) continue;
        float *g = m->logits + ((size_t)last * B + b) * V;
        float inv = 1.0f / (float)(last + 1);
        for (int v = 0; v < V; v++) g[v] *= inv;
        for (int t = 0; t < last; t++)
            memcpy(m->logits + ((size_t)t * B + b) * V, g, (size_t)V * sizeof(float));
    }
}

double model_loss(Model *m, const int32_t *targets, int T, float scale, int grad) {
    int V = m->shape.V;
    size_t rows = (size_t)T * m->B;
    if (m->shape.pool_mean) pool_logits(m, targets, T);
    /* --threads: rows shared out; the row losses are then added in row order (the same
     * bits on any thread count) */
    REQUIRE(rows <= m->rows_max);
    double *row_loss = m->row_loss;
#pragma omp parallel for schedule(static) if (rows > 1 && omp_get_max_threads() > 1)
    for (size_t r = 0; r < rows; r++) {
        float *z = m->logits + r * V;
        int32_t y = targets[r];
        row_loss[r] = 0.0;
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
        row_loss[r] = lse - (double)z[y];
        if (grad) {
            for (int v = 0; v < V; v++) z[v] = (float)exp((double)z[v] - lse) * scale;
            z[y] -= scale;
        }
    }
    double total = 0.0;
    for (size_t r = 0; r < rows; r++)
        if (targets[r] >= 0) total += row_loss[r];
    if (m->shape.pool_mean && grad) unpool_grad(m);
    return total;
}

/* ---- backward -------------------------------------------------------------------- */

/* Start of tensor i, or the end of the buffer past the last one. */
static size_t tensor_start(const Params *p, int i) {
    return i < p->count ? p->tensors[i].offset : p->total;
}

/* Tensors [first, first+count) have their final gradient: tell the trainer. */
static void tensors_ready(Model *m, int first, int count) {
    size_t begin = tensor_start(&m->params, first), end = tensor_start(&m->params, first + count);
    if (m->grad_ready && end > begin) m->grad_ready(m->grad_ctx, begin, end - begin);
}

void model_backward(Model *m, int T, ModelState *dstate0) {
    const ModelShape *s = &m->shape;
    Params *p = &m->params;
    int B = m->B, Htop = model_top_width(s);
    size_t rows = (size_t)T * B;
    REQUIRE(T == m->T_last);
    int cond = s->C > 0 && m->cond_used; /* a chunk that started from the conditioning */
    if (cond && !dstate0) dstate0 = &m->dstate; /* which needs dLoss/dh0 */
    /* the head's input: the top layer's output, after dropout if the forward dropped, and
     * after attention */
    const float *ytop = m->has_attn ? m->attn.out
                        : m->drop_on ? m->drop_y[s->L - 1]
                        : m->bidir   ? m->bd_cat[s->L - 1]
                                     : m->layers[s->L - 1].y;
    const float *hin = m->norm_f >= 0 ? m->normed : ytop;
    /* head: dW += dlogits^T y (into the embedding's gradient when tied), db +=
     * colsum(dlogits), dy = dlogits W */
    la_matmul_tn(params_grad(p, m->head_w >= 0 ? m->head_w : m->emb), m->logits, hin, s->V, Htop,
                 (int)rows, 1.0f);
    if (m->head_b >= 0) la_colsum_add(params_grad(p, m->head_b), m->logits, (int)rows, s->V);
    /* A layer's backward reads dy, and its backward_input writes dx afterwards, so dx may
     * overwrite dy: one buffer carries the gradient down the whole stack. */
    float *dy = m->dbuf;
    la_matmul_nn(dy, m->logits, head_weight(m), (int)rows, Htop, s->V, 0.0f);
    if (m->norm_f >= 0) /* in place: dy of the top layer */
        norm_rms_backward(dy, params_grad(p, m->norm_f), dy, ytop, params_value(p, m->norm_f),
                          m->norm_rinv, (int)rows, Htop, 0);
    if (m->norm_f >= 0 || m->head_w >= 0) { /* the tensors after the layers, before cond */
        int first = m->norm_f >= 0 ? m->norm_f : m->head_w;
        int last = m->head_b >= 0 ? m->head_b : m->head_w >= 0 ? m->head_w : m->norm_f;
        tensors_ready(m, first, last - first + 1);
    }
    if (m->has_attn) { /* dy: of the attention's output, then in place of the top layer's */
        REQUIRE(cond);
        memset(m->enc_dout, 0, (size_t)m->enc.S * B * s->C * sizeof(float));
        attention_backward(&m->attn, p, dy, dy, m->enc_dout, T);
        int first = m->attn.w_a >= 0 ? m->attn.w_a : m->attn.w_c;
        tensors_ready(m, first, m->attn.w_c - first + 1);
    }
    /* Embedding gradient: dE[token] += dx0 row. With fewer token values than rows, layer
     * 0 sums its input gradient per token (input_grad_grouped) instead of computing dx0:
     * for bytes and 32 x 64 chunks that is 8x fewer multiply-adds. */
    int V_in = s->in_vocab ? s->in_vocab : s->V;
    int by_token = m->emb >= 0 && !m->emb_grad_direct && (size_t)V_in < rows &&
                   m->layers[0].kind->input_grad_grouped && !m->bidir;
    int grouped = 0;
    for (int k = s->L - 1; k >= 0; k--) {
        Layer *l = &m->layers[k];
        if (m->drop_on) dropout_layer_backward(m, k, dy, T);
        const float *dy_fwd = dy;
        if (m->bidir) { /* dy (T,B,2H): the reverse half to its own (reversed) order */
            Layer *r = &m->rev[k];
            bidir_split(m->bd_dyf, m->bd_dyr, dy, m->len, T, B, l->H);
            r->kind->backward(r, m->bd_dyr, NULL, T, m->ws, &m->hooks);
            dy_fwd = m->bd_dyf;
        }
        l->kind->backward(l, dy_fwd, dstate0 ? dstate0->t[k] : NULL, T, m->ws, &m->hooks);
        /* ws is free again: first the per-token sums, then layer 0's input rebuilt there
         * (x0 was in dbuf, which now holds dy) */
        if (k == 0 && by_token)
            grouped = l->kind->input_grad_grouped(l, m->inputs, V_in, params_grad(p, m->emb), T,
                                                  m->ws, m->ws_floats);
        const float *x = k == 0       ? m->x0
                         : m->drop_on ? m->drop_y[k - 1]
                         : m->bidir   ? m->bd_cat[k - 1]
                                      : m->layers[k - 1].y;
        if (k == 0 && m->emb >= 0) {
            gather_embedded(m, m->ws, T);
            x = m->ws;
        }
        int want_dx = k > 0 || (m->emb >= 0 && !grouped);
        l->kind->backward_input(l, x, want_dx ? dy : NULL, T);
        if (m->bidir) { /* the reverse pass read x reversed: its dx added back in order */
            Layer *r = &m->rev[k];
            r->kind->backward_input(r, m->bd_xr[k], want_dx ? m->bd_dxr : NULL, T);
            if (want_dx) bidir_add_reversed(dy, m->bd_dxr, m->len, T, B, l->D);
            tensors_ready(m, l->param_first, r->param_first + r->param_count - l->param_first);
        } else {
            tensors_ready(m, l->param_first, l->param_count);
        }
    }
    if (m->emb >= 0) {
        if (!grouped) { /* rows in a fixed order: deterministic */
            float *demb = params_grad(p, m->emb);
            for (size_t r = 0; r < rows; r++) {
                float *d = demb + (size_t)m->inputs[r] * s->E;
                const float *g = dy + r * s->E;
                for (int e = 0; e < s->E; e++) d[e] += g[e];
            }
        }
        tensors_ready(m, m->emb, 1);
    }
    if (s->C > 0 && cond) {
        /* h0 = tanh(c W^T + b): dpre (B, sum H_k) = dh0 * (1 - h0^2), dW += dpre^T c */
        int CW = m->cond_width;
        float *dpre = m->dbuf; /* free now; sized for (B, CW) too */
        for (int b = 0; b < B; b++)
            for (int k = 0, off = 0; k < s->L; off += dstate0->width[k][0], k++) {
                int H = dstate0->width[k][0];
                for (int j = 0; j < H; j++) {
                    float h = m->cond_h0[(size_t)b * CW + off + j];
                    dpre[(size_t)b * CW + off + j] =
                        dstate0->t[k][0][(size_t)b * H + j] * (1.0f - h * h);
                }
            }
        la_matmul_tn(params_grad(p, m->cond_w), dpre, m->cond_in, CW, s->C, B, 1.0f);
        la_colsum_add(params_grad(p, m->cond_b), dpre, B, CW);
        if (m->has_enc) /* dsummary (B,C) = dpre W_c */
            la_matmul_nn(m->enc_dsummary, dpre, params_value(p, m->cond_w), B, s->C, CW, 0.0f);
    }
    if (s->C > 0) tensors_ready(m, m->cond_w, 2); /* final, also when this chunk added nothing */
    if (m->has_enc) {
        REQUIRE(cond); /* a seq2seq chunk is a whole target, started from the hand-over */
        encoder_backward(&m->enc, p, m->has_attn ? m->enc_dout : NULL, m->enc_dsummary, m->ws,
                         &m->hooks);
        int first, count;
        encoder_param_range(&m->enc, &first, &count);
        tensors_ready(m, first, count);
    }
}

double model_forward_flops_per_token(const Model *m) {
    const ModelShape *s = &m->shape;
    double f = 2.0 * model_top_width(s) * s->V; /* head; conditioning is per sequence */
    for (int k = 0; k < s->L; k++) f += m->layers[k].kind->flops_per_token(&m->layers[k]);
    return f;
}
