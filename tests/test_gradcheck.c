/* Finite-difference gradient checks: every parameter of every cell, single and stacked,
 * over a chunk of several steps, and the gradient w.r.t. the initial hidden (and cell)
 * state. Central differences of the summed loss, computed in float32 like the model, with a
 * per-check tolerance well above the float rounding noise and far below any formula
 * error (a wrong sign or a missing term gives O(1) relative error). */
#include <string.h>

#include "model.h"
#include "testutil.h"

enum { B = 2, T = 5, V = 7 };

typedef struct {
    Model m;
    int32_t in[T * B], tgt[T * B];
    float *h0, *c0; /* (L,B,H) */
} Case;

static void case_init(Case *c, const char *cell, int L, int H, int E, uint64_t seed) {
    ModelShape s = {.cell = cell_by_name(cell), .L = L, .H = H, .E = E, .V = V};
    model_init(&c->m, s, B, T);
    Rng rng;
    rng_seed(&rng, seed);
    model_init_weights(&c->m, INIT_UNIFORM, 0.6f, seed ^ 0x5eedULL);
    for (int i = 0; i < T * B; i++) {
        c->in[i] = (int32_t)(rng_u64(&rng) % V);
        c->tgt[i] = (int32_t)(rng_u64(&rng) % V);
    }
    size_t n = (size_t)L * B * H;
    c->h0 = malloc(n * sizeof(float));
    c->c0 = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        c->h0[i] = (float)(rng_uniform(&rng) - 0.5);
        c->c0[i] = (float)(rng_uniform(&rng) - 0.5);
    }
}

static void set_state(Case *c) {
    const ModelShape *s = &c->m.shape;
    size_t BH = (size_t)B * s->H;
    for (int k = 0; k < s->L; k++) {
        memcpy(c->m.layers[k].h, c->h0 + k * BH, BH * sizeof(float));
        if (s->cell->has_cell) memcpy(c->m.layers[k].c, c->c0 + k * BH, BH * sizeof(float));
    }
}

static double loss_at(Case *c) {
    set_state(c);
    model_forward(&c->m, c->in, T);
    return model_loss(&c->m, c->tgt, T, 1.0f, 0);
}

/* Central difference of the loss w.r.t. *x. */
static double numeric(Case *c, float *x) {
    const float eps = 1e-2f;
    float saved = *x;
    *x = saved + eps;
    double up = loss_at(c);
    *x = saved - eps;
    double down = loss_at(c);
    *x = saved;
    return (up - down) / (2.0 * (double)eps);
}

static double optim_like_norm(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

/* max |numeric - analytic| / max(|analytic|, 0.05) over a set of entries */
static double worst = 0.0;
static void compare(const char *what, int index, double num, double ana) {
    double err = fabs(num - ana) / fmax(fabs(ana), 0.05);
    if (err > worst) worst = err;
    ck_assert_msg(err < 2e-2, "%s[%d]: numeric %.6g analytic %.6g (rel err %.3g)", what, index,
                  num, ana, err);
}

static void check(const char *cell, int L, int H, int E) {
    Case c;
    case_init(&c, cell, L, H, E, 42 + (uint64_t)L);
    Params *p = &c.m.params;
    size_t n = (size_t)L * B * H;
    float *dh0 = calloc(n, sizeof(float)), *dc0 = calloc(n, sizeof(float));
    params_zero_grad(p);
    set_state(&c);
    model_forward(&c.m, c.in, T);
    model_loss(&c.m, c.tgt, T, 1.0f, 1);
    model_backward(&c.m, T, dh0, dc0);
    float *analytic = malloc(p->total * sizeof(float));
    memcpy(analytic, p->grad, p->total * sizeof(float));
    worst = 0.0;
    for (int i = 0; i < p->count; i++) {
        ParamTensor *t = &p->tensors[i];
        for (size_t j = 0; j < t->size; j++)
            compare(t->name, (int)j, numeric(&c, p->value + t->offset + j),
                    analytic[t->offset + j]);
    }
    for (size_t j = 0; j < n; j++) compare("h0", (int)j, numeric(&c, c.h0 + j), dh0[j]);
    if (c.m.shape.cell->has_cell)
        for (size_t j = 0; j < n; j++) compare("c0", (int)j, numeric(&c, c.c0 + j), dc0[j]);
    printf("gradcheck %s L=%d: worst relative error %.3g\n", cell, L, worst);
    /* the check is meaningful only if the gradient is not trivially small */
    ck_assert(optim_like_norm(analytic, p->total) > 1e-2);
    free(analytic);
    free(dh0);
    free(dc0);
    free(c.h0);
    free(c.c0);
    model_free(&c.m);
}

/* The embedding gradient through per-token sums of layer 0's dA (rows > V here: 10 rows,
 * 7 tokens) equals the one through dx0, and every other gradient is unchanged. The
 * finite-difference checks above already run the per-token path. */
static void embedding_paths_agree(const char *cell) {
    float *grad[2];
    size_t total = 0;
    for (int direct = 0; direct < 2; direct++) {
        Case c;
        case_init(&c, cell, 2, 4, 5, 7);
        c.m.emb_grad_direct = direct;
        Params *p = &c.m.params;
        params_zero_grad(p);
        set_state(&c);
        model_forward(&c.m, c.in, T);
        model_loss(&c.m, c.tgt, T, 1.0f, 1);
        model_backward(&c.m, T, NULL, NULL);
        total = p->total;
        grad[direct] = malloc(total * sizeof(float));
        memcpy(grad[direct], p->grad, total * sizeof(float));
        free(c.h0);
        free(c.c0);
        model_free(&c.m);
    }
    double worst_rel = 0.0, norm = 0.0;
    for (size_t i = 0; i < total; i++) {
        double a = grad[0][i], b = grad[1][i];
        norm += b * b;
        double rel = fabs(a - b) / fmax(fabs(b), 1e-3);
        if (rel > worst_rel) worst_rel = rel;
    }
    printf("embedding gradient paths, %s: worst relative difference %.3g\n", cell, worst_rel);
    ck_assert_msg(norm > 1e-4, "gradient too small to compare");
    ck_assert_msg(worst_rel < 1e-5, "%s: per-token and dx0 paths differ by %.3g", cell,
                  worst_rel);
    free(grad[0]);
    free(grad[1]);
}

START_TEST(embedding_gradient_paths) {
    embedding_paths_agree("lstm");
    embedding_paths_agree("gru");
    embedding_paths_agree("rnn");
}
END_TEST

START_TEST(rnn_one_layer) { check("rnn", 1, 4, 3); }
END_TEST
START_TEST(lstm_one_layer) { check("lstm", 1, 4, 3); }
END_TEST
START_TEST(gru_one_layer) { check("gru", 1, 4, 3); }
END_TEST
START_TEST(rnn_stacked) { check("rnn", 3, 4, 5); }
END_TEST
START_TEST(lstm_stacked) { check("lstm", 2, 4, 5); }
END_TEST
START_TEST(gru_stacked) { check("gru", 2, 4, 5); }
END_TEST

static Suite *gradcheck_suite(void) {
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("finite-differences");
    tcase_add_test(tc, rnn_one_layer);
    tcase_add_test(tc, lstm_one_layer);
    tcase_add_test(tc, gru_one_layer);
    tcase_add_test(tc, rnn_stacked);
    tcase_add_test(tc, lstm_stacked);
    tcase_add_test(tc, gru_stacked);
    tcase_add_test(tc, embedding_gradient_paths);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(gradcheck_suite)
