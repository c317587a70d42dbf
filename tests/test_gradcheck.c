/* Finite-difference gradient checks, for every registered layer kind (layer_kinds: a new
 * kind is checked without editing this file):
 *   - a bare layer over a chunk of several steps: every parameter, every initial-state
 *     tensor and the input, for the loss sum(w * y) with fixed random weights w; the
 *     grouped input gradient (the embedding path) against sums of dx;
 *   - whole models (embedding, layers, head, cross-entropy): one layer, a stack of the
 *     kind, and one stack mixing every kind at different widths, including the gradient of
 *     every initial-state tensor of every layer.
 * Central differences computed in float32 like the model, with a tolerance well above the
 * float rounding noise and far below any formula error (a wrong sign or a missing term
 * gives O(1) relative error). */
#include <string.h>

#include "bf16.h"
#include "common.h"
#include "linalg.h"
#include "model.h"
#include "testutil.h"

enum { B = 2, T = 5, V = 7 };

/* max |numeric - analytic| / max(|analytic|, 0.05) over the entries compared */
static double worst = 0.0;
static int compared = 0;
static void compare(const char *kind, const char *what, int index, double num, double ana) {
    double err = fabs(num - ana) / fmax(fabs(ana), 0.05);
    if (err > worst) worst = err;
    compared++;
    ck_assert_msg(err < 2e-2, "%s %s[%d]: numeric %.6g analytic %.6g (rel err %.3g)", kind, what,
                  index, num, ana, err);
}

static void fill_random(float *x, size_t n, double scale, Rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * scale);
}

static double sum_sq(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

/* ---- a bare layer ------------------------------------------------------------------- */

typedef struct {
    Layer l;
    Params p;
    int D, H;
    float *x, *w, *ws;               /* (T,B,D) input, (T,B,H) loss weights, workspace */
    float *state0[LAYER_MAX_STATES]; /* (B, width) initial states, kept */
    float *state[LAYER_MAX_STATES];  /* the working copies forward advances */
} Bare;

static void bare_init(Bare *c, const LayerKind *kind, int D, int H, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->D = D;
    c->H = H;
    layer_declare(&c->l, kind, D, H, NULL, &c->p, "", "");
    params_alloc(&c->p);
    layer_alloc(&c->l, &c->p, B, T);
    Rng rng;
    rng_seed(&rng, seed);
    fill_random(c->p.value, c->p.total, 0.6, &rng);
    c->x = rt_alloc_floats((size_t)T * B * D, "x");
    c->w = rt_alloc_floats((size_t)T * B * H, "w");
    c->ws = rt_alloc_floats(kind->workspace_floats(&c->l), "ws");
    fill_random(c->x, (size_t)T * B * D, 1.0, &rng);
    fill_random(c->w, (size_t)T * B * H, 1.0, &rng);
    for (int s = 0; s < kind->nstates; s++) {
        size_t n = (size_t)B * kind->state_width(&c->l, s);
        c->state0[s] = rt_alloc_floats(n, "state");
        c->state[s] = rt_alloc_floats(n, "state");
        fill_random(c->state0[s], n, 0.5, &rng);
    }
}

static void bare_free(Bare *c) {
    for (int s = 0; s < c->l.kind->nstates; s++) {
        free(c->state0[s]);
        free(c->state[s]);
    }
    free(c->x);
    free(c->w);
    free(c->ws);
    layer_free(&c->l);
    params_free(&c->p);
}

static double bare_loss(Bare *c) {
    for (int s = 0; s < c->l.kind->nstates; s++)
        memcpy(c->state[s], c->state0[s],
               (size_t)B * c->l.kind->state_width(&c->l, s) * sizeof(float));
    c->l.kind->forward(&c->l, c->state, c->x, T, c->ws);
    double loss = 0.0;
    for (size_t i = 0; i < (size_t)T * B * c->H; i++) loss += (double)c->w[i] * c->l.y[i];
    return loss;
}

/* Central difference of loss(ctx) w.r.t. *v. */
static double central_difference(double (*loss)(void *), void *ctx, float *v) {
    const float eps = 1e-2f;
    float saved = *v;
    *v = saved + eps;
    double up = loss(ctx);
    *v = saved - eps;
    double down = loss(ctx);
    *v = saved;
    return (up - down) / (2.0 * (double)eps);
}

static double bare_loss_of(void *c) { return bare_loss(c); }
static double bare_numeric(Bare *c, float *v) { return central_difference(bare_loss_of, c, v); }

static void check_bare(const LayerKind *kind) {
    Bare c;
    bare_init(&c, kind, 3, 4, 17);
    const LayerKind *k = c.l.kind;
    float *dstate[LAYER_MAX_STATES];
    for (int s = 0; s < k->nstates; s++)
        dstate[s] = rt_alloc_floats((size_t)B * k->state_width(&c.l, s), "dstate");
    float *dx = rt_alloc_floats((size_t)T * B * c.D, "dx");
    params_zero_grad(&c.p);
    bare_loss(&c);
    k->backward(&c.l, c.w, dstate, T, c.ws, NULL);
    k->backward_input(&c.l, c.x, dx, T);
    float *analytic = malloc(c.p.total * sizeof(float));
    memcpy(analytic, c.p.grad, c.p.total * sizeof(float));
    worst = 0.0;
    compared = 0;
    for (int i = 0; i < c.p.count; i++) {
        ParamTensor *t = &c.p.tensors[i];
        for (size_t j = 0; j < t->size; j++)
            compare(k->name, t->name, (int)j, bare_numeric(&c, c.p.value + t->offset + j),
                    analytic[t->offset + j]);
    }
    for (int s = 0; s < k->nstates; s++) {
        int n = B * k->state_width(&c.l, s);
        ck_assert_msg(sum_sq(dstate[s], (size_t)n) > 1e-4, "%s: d%s0 is zero", k->name,
                      k->state_names[s]);
        for (int j = 0; j < n; j++)
            compare(k->name, k->state_names[s], j, bare_numeric(&c, c.state0[s] + j),
                    dstate[s][j]);
    }
    for (int j = 0; j < T * B * c.D; j++) compare(k->name, "x", j, bare_numeric(&c, c.x + j), dx[j]);
    ck_assert(sum_sq(analytic, c.p.total) > 1e-2);
    printf("gradcheck bare %s: %d entries, worst relative error %.3g\n", k->name, compared, worst);
    /* the grouped input gradient equals the sums of dx over each group's rows */
    if (k->input_grad_grouped) {
        enum { NG = 3 };
        int32_t group[T * B];
        for (int r = 0; r < T * B; r++) group[r] = (r * 7 + 1) % NG;
        float sums[NG * 3] = {0}, grouped[NG * 3] = {0};
        params_zero_grad(&c.p); /* the finite differences overwrote the activations */
        bare_loss(&c);
        k->backward(&c.l, c.w, NULL, T, c.ws, NULL);
        k->backward_input(&c.l, c.x, dx, T);
        for (int r = 0; r < T * B; r++)
            for (int d = 0; d < c.D; d++) sums[group[r] * c.D + d] += dx[(size_t)r * c.D + d];
        size_t need = 1 << 16;
        float *ws = rt_alloc_floats(need, "ws");
        ck_assert(k->input_grad_grouped(&c.l, group, NG, grouped, T, ws, need));
        ck_assert(!k->input_grad_grouped(&c.l, group, NG, grouped, T, ws, 1)); /* too small */
        ck_assert(max_rel_err(grouped, sums, (size_t)NG * c.D, 1e-3) < 1e-5);
        free(ws);
    }
    for (int s = 0; s < k->nstates; s++) free(dstate[s]);
    free(dx);
    free(analytic);
    bare_free(&c);
}

START_TEST(bare_layers) {
    for (int i = 0; layer_kinds[i]; i++) check_bare(layer_kinds[i]);
}
END_TEST

/* bf16 products (--precision bf16): every layer kind's parameter gradients, initial-state
 * gradients and dx near the fp32 ones (within bf16 rounding: 3% of the largest entry), and
 * not equal to them (rounded); run twice on different inputs, the second compared, so that
 * anything a bf16 backward keeps from one call to the next (the cells' kept dA rows) must be
 * that call's. */
static void bf16_backward(Bare *c, float *const *dstate, float *dx) {
    params_zero_grad(&c->p);
    bare_loss(c);
    c->l.kind->backward(&c->l, c->w, dstate, T, c->ws, NULL);
    c->l.kind->backward_input(&c->l, c->x, dx, T);
}

START_TEST(bf16_gradients_near_fp32) {
    const char *missing = NULL;
    if (!bf16_supported(&missing)) {
        printf("bf16_gradients_near_fp32: skipped, this CPU lacks %s\n", missing);
        return;
    }
    for (int i = 0; layer_kinds[i]; i++) {
        const LayerKind *k = layer_kinds[i];
        Bare c;
        bare_init(&c, k, 40, 24, 71);
        float *dstate[LAYER_MAX_STATES], *dstate32[LAYER_MAX_STATES];
        for (int s = 0; s < k->nstates; s++) {
            dstate[s] = rt_alloc_floats((size_t)B * k->state_width(&c.l, s), "dstate");
            dstate32[s] = rt_alloc_floats((size_t)B * k->state_width(&c.l, s), "dstate");
        }
        size_t nx = (size_t)T * B * c.D;
        float *dx = rt_alloc_floats(nx, "dx"), *dx32 = rt_alloc_floats(nx, "dx");
        float *g32 = rt_alloc_floats(c.p.total, "g32");
        la_set_precision(LA_BF16);
        bf16_backward(&c, dstate, dx); /* a first call on other inputs */
        for (size_t j = 0; j < nx; j++) c.x[j] = -0.7f * c.x[j] + 0.1f;
        la_set_precision(LA_FP32);
        bf16_backward(&c, dstate32, dx32);
        memcpy(g32, c.p.grad, c.p.total * sizeof(float));
        la_set_precision(LA_BF16);
        bf16_backward(&c, dstate, dx);
        la_set_precision(LA_FP32);
        for (int t = 0; t < c.p.count; t++) {
            const ParamTensor *pt = &c.p.tensors[t];
            double e = max_rel_err(c.p.grad + pt->offset, g32 + pt->offset, pt->size, 1e-6);
            ck_assert_msg(e < 3e-2, "%s: bf16 d%s off the fp32 one by %.3g", k->name, pt->name, e);
        }
        for (int s = 0; s < k->nstates; s++) {
            size_t n = (size_t)B * k->state_width(&c.l, s);
            double e = max_rel_err(dstate[s], dstate32[s], n, 1e-6);
            ck_assert_msg(e < 3e-2, "%s: bf16 d%s0 off by %.3g", k->name, k->state_names[s], e);
        }
        double ex = max_rel_err(dx, dx32, nx, 1e-6);
        ck_assert_msg(ex < 3e-2, "%s: bf16 dx off the fp32 one by %.3g", k->name, ex);
        ck_assert_msg(ex > 1e-6, "%s: bf16 dx equals fp32's: not rounded?", k->name);
        printf("bf16 gradients %s: dx within %.3g of fp32\n", k->name, ex);
        for (int s = 0; s < k->nstates; s++) {
            free(dstate[s]);
            free(dstate32[s]);
        }
        free(dx);
        free(dx32);
        free(g32);
        bare_free(&c);
    }
}
END_TEST

/* ---- whole models ------------------------------------------------------------------- */

typedef struct {
    Model m;
    ModelState st0, st, dst; /* initial state (kept), working copy, its gradient */
    int32_t in[T * B], tgt[T * B];
} Case;

/* Dropout of the models under check (dropout_gradients sets it; p = 0: none). */
static const int64_t drop_streams[B] = {5, 2};
static ModelDropout case_drop = {0.0f, 77, 3, drop_streams, 11};
static InitKind case_init_kind = INIT_UNIFORM; /* of the models under check */

static void case_init(Case *c, const ModelShape *shape, uint64_t seed) {
    ModelShape s = *shape;
    s.V = V;
    model_init(&c->m, s, B, T);
    model_set_dropout(&c->m, &case_drop);
    Rng rng;
    rng_seed(&rng, seed);
    model_init_weights(&c->m, case_init_kind, 0.6f, seed ^ 0x5eedULL);
    for (int i = 0; i < T * B; i++) {
        c->in[i] = (int32_t)(rng_u64(&rng) % V);
        c->tgt[i] = (int32_t)(rng_u64(&rng) % V);
    }
    model_state_init(&c->st0, &c->m, B);
    model_state_init(&c->st, &c->m, B);
    model_state_init(&c->dst, &c->m, B);
    fill_random(c->st0.buf, c->st0.floats, 0.5, &rng);
}

static void case_free(Case *c) {
    model_state_free(&c->st0);
    model_state_free(&c->st);
    model_state_free(&c->dst);
    model_free(&c->m);
}

/* A bidirectional stack's sequence lengths (the second shorter than the chunk). */
static const int32_t bidir_len[B] = {T, 3};

static double loss_at(Case *c) {
    model_state_copy(&c->st, &c->st0);
    if (c->m.bidir) model_set_lengths(&c->m, bidir_len);
    model_forward(&c->m, &c->st, c->in, T);
    return model_loss(&c->m, c->tgt, T, 1.0f, 0);
}

static double loss_of(void *c) { return loss_at(c); }
static double numeric(Case *c, float *x) { return central_difference(loss_of, c, x); }

static void check_model(const ModelShape *shape, const char *what) {
    Case c;
    case_init(&c, shape, 42 + (uint64_t)shape->L);
    Params *p = &c.m.params;
    params_zero_grad(p);
    loss_at(&c);
    model_loss(&c.m, c.tgt, T, 1.0f, 1);
    model_backward(&c.m, T, &c.dst);
    float *analytic = malloc(p->total * sizeof(float));
    memcpy(analytic, p->grad, p->total * sizeof(float));
    worst = 0.0;
    compared = 0;
    for (int i = 0; i < p->count; i++) {
        ParamTensor *t = &p->tensors[i];
        for (size_t j = 0; j < t->size; j++)
            compare(what, t->name, (int)j, numeric(&c, p->value + t->offset + j),
                    analytic[t->offset + j]);
    }
    for (int k = 0; k < c.st0.L; k++)
        for (int s = 0; s < c.st0.nstates[k]; s++) {
            char name[64];
            snprintf(name, sizeof name, "layer %d %s0", k,
                     c.m.layers[k].kind->state_names[s]);
            int n = B * c.st0.width[k][s];
            for (int j = 0; j < n; j++)
                compare(what, name, j, numeric(&c, c.st0.t[k][s] + j), c.dst.t[k][s][j]);
        }
    printf("gradcheck %s: %d entries, worst relative error %.3g\n", what, compared, worst);
    /* the check is meaningful only if the gradient is not trivially small */
    ck_assert(sum_sq(analytic, p->total) > 1e-4);
    free(analytic);
    case_free(&c);
}

START_TEST(models_of_each_kind) {
    for (int i = 0; layer_kinds[i]; i++) {
        const LayerKind *k = layer_kinds[i];
        ModelShape s = {.E = 3};
        char what[64];
        model_shape_uniform(&s, k, 1, 4);
        snprintf(what, sizeof what, "%s L=1", k->name);
        check_model(&s, what);
        s.E = 5;
        model_shape_uniform(&s, k, 2, 4);
        snprintf(what, sizeof what, "%s L=2", k->name);
        check_model(&s, what);
    }
}
END_TEST

/* Every registered kind once, bottom to top, at different widths. */
START_TEST(mixed_stack) {
    ModelShape s = {.E = 3};
    for (int i = 0; layer_kinds[i]; i++) {
        s.layer[i].kind = layer_kinds[i];
        s.layer[i].H = 3 + i;
        s.L = i + 1;
    }
    ck_assert_int_ge(s.L, 2);
    char what[256];
    model_shape_layers_text(&s, what, sizeof what);
    check_model(&s, what);
}
END_TEST

/* Dropout between the layers and before the head: with the masks fixed by their keys the
 * loss is a smooth function of the weights, so finite differences check the masked
 * backward (every kind in one stack, and a 2-layer LSTM). */
START_TEST(dropout_gradients) {
    case_drop.p = 0.25f;
    ModelShape s = {.E = 3};
    for (int i = 0; layer_kinds[i]; i++) {
        s.layer[i].kind = layer_kinds[i];
        s.layer[i].H = 3 + i;
        s.L = i + 1;
    }
    check_model(&s, "dropout 0.25 mixed stack");
    ModelShape l2 = {.E = 5};
    model_shape_uniform(&l2, layer_kinds[1], 2, 6);
    check_model(&l2, "dropout 0.25 lstm L=2");
    case_drop.p = 0.0f;
}
END_TEST

/* The masks: kept where model_dropout_keep says (and scaled by 1/(1-p)), about 1-p of the
 * units, different across streams, positions, layers and steps; p = 0 is bitwise the model
 * without dropout. */
START_TEST(dropout_masks) {
    ModelShape s = {.E = 4, .V = V};
    model_shape_uniform(&s, layer_kinds[1], 2, 64);
    Model a, b;
    model_init(&a, s, B, T);
    model_init(&b, s, B, T);
    model_init_weights(&a, INIT_UNIFORM, 0.5f, 9);
    model_init_weights(&b, INIT_UNIFORM, 0.5f, 9);
    int32_t in[T * B], tgt[T * B];
    for (int i = 0; i < T * B; i++) {
        in[i] = i % V;
        tgt[i] = (3 * i + 1) % V;
    }
    ModelState sa, sb;
    model_state_init(&sa, &a, B);
    model_state_init(&sb, &b, B);
    ModelDropout off = case_drop;
    off.p = 0.0f;
    model_set_dropout(&b, &off);
    params_zero_grad(&a.params);
    params_zero_grad(&b.params);
    model_forward(&a, &sa, in, T);
    model_forward(&b, &sb, in, T);
    ck_assert(memcmp(a.logits, b.logits, (size_t)T * B * V * sizeof(float)) == 0);
    model_loss(&a, tgt, T, 1.0f, 1);
    model_loss(&b, tgt, T, 1.0f, 1);
    model_backward(&a, T, NULL);
    model_backward(&b, T, NULL);
    ck_assert(memcmp(a.params.grad, b.params.grad, a.params.total * sizeof(float)) == 0);
    ModelDropout d = case_drop;
    d.p = 0.25f;
    model_set_dropout(&a, &d);
    model_state_zero(&sa);
    model_forward(&a, &sa, in, T);
    long kept = 0, total = 0;
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < T; t++)
            for (int r = 0; r < B; r++)
                for (int j = 0; j < 64; j++) {
                    size_t o = ((size_t)t * B + r) * 64 + j;
                    int keep = model_dropout_keep(&d, drop_streams[r], k, d.pos0 + t, j);
                    float want = keep ? a.layers[k].y[o] * (1.0f / 0.75f) : 0.0f;
                    ck_assert(a.drop_y[k][o] == want);
                    kept += keep;
                    total++;
                }
    ck_assert_msg(fabs((double)kept / total - 0.75) < 0.03, "kept %ld of %ld", kept, total);
    /* over many draws: the kept fraction, and masks that differ by each key */
    long n = 0, same[4] = {0}, k1 = 0;
    for (int j = 0; j < 20000; j++) {
        int base = model_dropout_keep(&d, 7, 1, 100, j);
        ModelDropout d2 = d;
        d2.step = d.step + 1;
        same[0] += base == model_dropout_keep(&d, 8, 1, 100, j);
        same[1] += base == model_dropout_keep(&d, 7, 2, 100, j);
        same[2] += base == model_dropout_keep(&d, 7, 1, 101, j);
        same[3] += base == model_dropout_keep(&d2, 7, 1, 100, j);
        k1 += base;
        n++;
    }
    ck_assert(fabs((double)k1 / n - 0.75) < 0.01);
    for (int q = 0; q < 4; q++) /* independent masks agree on 0.75^2 + 0.25^2 = 62.5% */
        ck_assert_msg(fabs((double)same[q] / n - 0.625) < 0.015, "key %d: %ld of %ld agree", q,
                      same[q], n);
    model_state_free(&sa);
    model_state_free(&sb);
    model_free(&a);
    model_free(&b);
}
END_TEST

/* The embedding gradient through per-token sums (rows > V here: 10 rows, 7 tokens) equals
 * the one through dx0, and every other gradient is unchanged. The finite-difference checks
 * above already run the per-token path. */
static void embedding_paths_agree(const LayerKind *kind) {
    float *grad[2];
    size_t total = 0;
    for (int direct = 0; direct < 2; direct++) {
        Case c;
        ModelShape s = {.E = 5};
        model_shape_uniform(&s, kind, 2, 4);
        case_init(&c, &s, 7);
        c.m.emb_grad_direct = direct;
        Params *p = &c.m.params;
        params_zero_grad(p);
        loss_at(&c);
        model_loss(&c.m, c.tgt, T, 1.0f, 1);
        model_backward(&c.m, T, NULL);
        total = p->total;
        grad[direct] = malloc(total * sizeof(float));
        memcpy(grad[direct], p->grad, total * sizeof(float));
        case_free(&c);
    }
    double worst_rel = 0.0, norm = 0.0;
    for (size_t i = 0; i < total; i++) {
        double a = grad[0][i], b = grad[1][i];
        norm += b * b;
        double rel = fabs(a - b) / fmax(fabs(b), 1e-3);
        if (rel > worst_rel) worst_rel = rel;
    }
    printf("embedding gradient paths, %s: worst relative difference %.3g\n", kind->name,
           worst_rel);
    ck_assert_msg(norm > 1e-4, "gradient too small to compare");
    ck_assert_msg(worst_rel < 1e-5, "%s: per-token and dx0 paths differ by %.3g", kind->name,
                  worst_rel);
    free(grad[0]);
    free(grad[1]);
}

START_TEST(embedding_gradient_paths) {
    for (int i = 0; layer_kinds[i]; i++)
        if (layer_kinds[i]->input_grad_grouped) embedding_paths_agree(layer_kinds[i]);
}
END_TEST

/* --init orthogonal: every gate block of every W_hh is orthogonal, W W^T = I. */
START_TEST(orthogonal_init) {
    for (int i = 0; layer_kinds[i]; i++) {
        if (!layer_kinds[i]->stacked_module) continue; /* no W_hh: the state space kinds */
        ModelShape s = {.E = 5, .V = V};
        model_shape_uniform(&s, layer_kinds[i], 2, 16);
        Model m;
        model_init(&m, s, B, T);
        model_init_weights(&m, INIT_ORTHOGONAL, 0.0f, 3);
        int blocks = 0;
        for (int t = 0; t < m.params.count; t++) {
            const ParamTensor *pt = &m.params.tensors[t];
            if (!strstr(pt->name, "weight_hh")) continue;
            const float *w = params_value(&m.params, t);
            int n = pt->cols;
            for (int g = 0; g < pt->rows / n; g++, blocks++)
                for (int r = 0; r < n; r++)
                    for (int q = 0; q < n; q++) {
                        double d = 0.0;
                        for (int k = 0; k < n; k++)
                            d += (double)w[((size_t)g * n + r) * n + k] * w[((size_t)g * n + q) * n + k];
                        ck_assert_msg(fabs(d - (r == q)) < 1e-5, "%s %s block %d: (W W^T)[%d][%d] = %g",
                                      layer_kinds[i]->name, pt->name, g, r, q, d);
                    }
        }
        ck_assert_int_ge(blocks, 2);
        model_free(&m);
    }
}
END_TEST

/* Bidirectional stacks (classify, tag): every kind, 2 layers (the second reads both
 * directions), sequences of two lengths; and a mixed stack with dropout. */
START_TEST(bidirectional_stacks) {
    for (int i = 0; layer_kinds[i]; i++) {
        /* S5 with its HiPPO-N modes: a uniform draw makes half of them grow, and float32
         * differences then drown in rounding (the trainer refuses --init uniform for S5) */
        case_init_kind = layer_kinds[i] == &layer_s5 ? INIT_PYTORCH : INIT_UNIFORM;
        ModelShape s = {.E = 3, .bidirectional = 1};
        model_shape_uniform(&s, layer_kinds[i], 2, 3);
        char what[64];
        snprintf(what, sizeof what, "%s L=2 bidirectional", layer_kinds[i]->name);
        check_model(&s, what);
    }
    case_init_kind = INIT_UNIFORM;
    case_drop.p = 0.25f;
    ModelShape s = {.E = 3, .bidirectional = 1};
    for (int i = 0; layer_kinds[i]; i++) {
        s.layer[i].kind = layer_kinds[i];
        s.layer[i].H = 2 + i;
        s.L = i + 1;
    }
    check_model(&s, "dropout 0.25 mixed stack bidirectional");
    case_drop.p = 0.0f;
    case_init_kind = INIT_UNIFORM;
}
END_TEST

static Suite *gradcheck_suite(void) {
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("finite-differences");
    tcase_add_test(tc, bare_layers);
    tcase_add_test(tc, bf16_gradients_near_fp32);
    tcase_add_test(tc, models_of_each_kind);
    tcase_add_test(tc, mixed_stack);
    tcase_add_test(tc, dropout_gradients);
    tcase_add_test(tc, dropout_masks);
    tcase_add_test(tc, embedding_gradient_paths);
    tcase_add_test(tc, orthogonal_init);
    tcase_add_test(tc, bidirectional_stacks);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(gradcheck_suite)
