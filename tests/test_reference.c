/* The forward loss, logits, gradients and optimizer updates of every cell against PyTorch
 * 1.13, from fixtures written by scripts/make_reference_fixtures.py (an independent
 * implementation: torch.nn.RNN/LSTM/GRU, autograd, torch.optim). */
#include <string.h>

#include "model.h"
#include "model_io.h"
#include "optim.h"
#include "testutil.h"

typedef struct {
    Model m;
    ModelState st, dst; /* carried state, gradient w.r.t. the initial state */
    hid_t f;
    char path[512];
    int B, T, L, H, V;
    int32_t *tokens;  /* (B, 2T+1) as stored */
    int32_t *in[2], *tgt[2]; /* per chunk, time-major (T,B) */
    float *h0, *c0;   /* (L,B,H) */
} Fixture;

static void fixture_open(Fixture *fx, const char *cell) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->path, sizeof fx->path, "%s/ref_%s.h5", FIXTURE_DIR, cell);
    fx->f = h5_open_read(fx->path, "fixture");
    ModelShape s = {.E = (int)h5_read_attr_int(fx->f, "embed", fx->path),
                    .V = (int)h5_read_attr_int(fx->f, "vocab_size", fx->path)};
    model_shape_uniform(&s, layer_kind_by_name(cell),
                        (int)h5_read_attr_int(fx->f, "layers", fx->path),
                        (int)h5_read_attr_int(fx->f, "hidden", fx->path));
    fx->B = (int)h5_read_attr_int(fx->f, "batch", fx->path);
    fx->T = (int)h5_read_attr_int(fx->f, "bptt", fx->path);
    fx->L = s.L;
    fx->H = s.layer[0].H;
    fx->V = s.V;
    model_init(&fx->m, s, fx->B, fx->T);
    model_state_init(&fx->st, &fx->m, fx->B);
    model_state_init(&fx->dst, &fx->m, fx->B);
    int B = fx->B, T = fx->T;
    fx->tokens = malloc(sizeof(int32_t) * B * (2 * T + 1));
    uint64_t td[2] = {(uint64_t)B, (uint64_t)(2 * T + 1)};
    h5_read_i32(fx->f, "tokens", fx->tokens, 2, td, fx->path);
    for (int k = 0; k < 2; k++) {
        fx->in[k] = malloc(sizeof(int32_t) * T * B);
        fx->tgt[k] = malloc(sizeof(int32_t) * T * B);
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++) {
                fx->in[k][t * B + b] = fx->tokens[b * (2 * T + 1) + k * T + t];
                fx->tgt[k][t * B + b] = fx->tokens[b * (2 * T + 1) + k * T + t + 1];
            }
    }
    size_t n = (size_t)s.L * B * fx->H;
    uint64_t hd[3] = {(uint64_t)s.L, (uint64_t)B, (uint64_t)fx->H};
    fx->h0 = calloc(n, sizeof(float));
    fx->c0 = calloc(n, sizeof(float));
    h5_read_f32(fx->f, "h0", fx->h0, 3, hd, fx->path);
    if (s.layer[0].kind->nstates > 1) h5_read_f32(fx->f, "c0", fx->c0, 3, hd, fx->path);
}

/* Parameters from the fixture, initial state h0/c0, gradients zeroed. */
static void fixture_reset(Fixture *fx, const char *group) {
    model_io_read_params(fx->f, group, &fx->m.params, fx->m.params.value, fx->path);
    params_zero_grad(&fx->m.params);
    test_state_put(&fx->st, 0, fx->h0);
    test_state_put(&fx->st, 1, fx->c0);
}

static void fixture_close(Fixture *fx) {
    H5Fclose(fx->f);
    model_state_free(&fx->st);
    model_state_free(&fx->dst);
    model_free(&fx->m);
    free(fx->tokens);
    for (int k = 0; k < 2; k++) {
        free(fx->in[k]);
        free(fx->tgt[k]);
    }
    free(fx->h0);
    free(fx->c0);
}

/* Forward + loss + backward of chunk 0 from the state in fx->st; returns the mean loss and,
 * if dh0 is given, the gradients w.r.t. the initial h (and c) as (L,B,H). */
static double chunk0_step(Fixture *fx, float *dh0, float *dc0) {
    float scale = 1.0f / (float)(fx->B * fx->T);
    model_forward(&fx->m, &fx->st, fx->in[0], fx->T);
    double loss = model_loss(&fx->m, fx->tgt[0], fx->T, scale, 1) * scale;
    model_backward(&fx->m, fx->T, dh0 ? &fx->dst : NULL);
    if (dh0) {
        test_state_get(&fx->dst, 0, dh0);
        test_state_get(&fx->dst, 1, dc0);
    }
    return loss;
}

static void check_cell_forward_backward(const char *cell) {
    Fixture fx;
    fixture_open(&fx, cell);
    fixture_reset(&fx, "params");
    double ref_loss[2];
    uint64_t ld[1] = {2};
    h5_read_f64(fx.f, "loss", ref_loss, 1, ld, fx.path);

    /* logits of chunk 0 */
    int B = fx.B, T = fx.T, V = fx.V;
    float *ref_logits = malloc(sizeof(float) * T * B * V);
    uint64_t lgd[3] = {(uint64_t)T, (uint64_t)B, (uint64_t)V};
    h5_read_f32(fx.f, "logits0", ref_logits, 3, lgd, fx.path);
    model_forward(&fx.m, &fx.st, fx.in[0], T);
    double e = max_rel_err(fx.m.logits, ref_logits, (size_t)T * B * V, 1e-3);
    ck_assert_msg(e < 1e-5, "%s logits: relative error %g", cell, e);

    /* loss and gradients of chunk 0, including w.r.t. h0 and c0 */
    size_t n = (size_t)fx.L * B * fx.H;
    float *dh0 = calloc(n, sizeof(float)), *dc0 = calloc(n, sizeof(float));
    fixture_reset(&fx, "params");
    double loss0 = chunk0_step(&fx, dh0, dc0);
    ck_assert_msg(fabs(loss0 - ref_loss[0]) <= 1e-5 * ref_loss[0], "%s loss0 %.9f vs %.9f", cell,
                  loss0, ref_loss[0]);
    Params *p = &fx.m.params;
    for (int i = 0; i < p->count; i++) {
        ParamTensor *t = &p->tensors[i];
        float *ref = malloc(sizeof(float) * t->size);
        uint64_t dims[2] = {(uint64_t)t->rows, (uint64_t)t->cols};
        char name[128];
        snprintf(name, sizeof name, "grads/%s", t->name);
        h5_read_f32(fx.f, name, ref, t->cols ? 2 : 1, dims, fx.path);
        e = max_rel_err(params_grad(p, i), ref, t->size, 1e-6);
        ck_assert_msg(e < 1e-4, "%s grad %s: relative error %g", cell, t->name, e);
        free(ref);
    }
    float *ref = calloc(n, sizeof(float));
    uint64_t hd[3] = {(uint64_t)fx.L, (uint64_t)B, (uint64_t)fx.H};
    h5_read_f32(fx.f, "grad_h0", ref, 3, hd, fx.path);
    e = max_rel_err(dh0, ref, n, 1e-6);
    ck_assert_msg(e < 1e-4, "%s grad h0: relative error %g", cell, e);
    if (fx.m.shape.layer[0].kind->nstates > 1) {
        h5_read_f32(fx.f, "grad_c0", ref, 3, hd, fx.path);
        e = max_rel_err(dc0, ref, n, 1e-6);
        ck_assert_msg(e < 1e-4, "%s grad c0: relative error %g", cell, e);
    }

    /* chunk 1 with the state carried from chunk 0 */
    model_forward(&fx.m, &fx.st, fx.in[1], T);
    double loss1 = model_loss(&fx.m, fx.tgt[1], T, 0.0f, 0) / (B * T);
    ck_assert_msg(fabs(loss1 - ref_loss[1]) <= 1e-5 * ref_loss[1], "%s loss1 %.9f vs %.9f", cell,
                  loss1, ref_loss[1]);
    free(ref);
    free(dh0);
    free(dc0);
    free(ref_logits);
    fixture_close(&fx);
}

/* Compares every parameter with group/<name>. */
static void check_params_equal(Fixture *fx, const char *group, double tol, const char *what) {
    Params *p = &fx->m.params;
    for (int i = 0; i < p->count; i++) {
        ParamTensor *t = &p->tensors[i];
        float *ref = malloc(sizeof(float) * t->size);
        uint64_t dims[2] = {(uint64_t)t->rows, (uint64_t)t->cols};
        char name[128];
        snprintf(name, sizeof name, "%s/%s", group, t->name);
        h5_read_f32(fx->f, name, ref, t->cols ? 2 : 1, dims, fx->path);
        double e = max_rel_err(params_value(p, i), ref, t->size, 1.0);
        ck_assert_msg(e < tol, "%s %s: error %g", what, t->name, e);
        free(ref);
    }
}

static void check_cell_optimizers(const char *cell) {
    static const char *const names[] = {"sgd", "adam", "adamw", "rmsprop"};
    Fixture fx;
    fixture_open(&fx, cell);
    for (int o = 0; o < 4; o++) {
        char group[64];
        snprintf(group, sizeof group, "optim/%s", names[o]);
        hid_t g = H5Gopen2(fx.f, group, H5P_DEFAULT);
        Optim opt;
        optim_defaults(&opt, (OptimKind)optim_kind_by_name(names[o]));
        double lr = h5_read_attr_double(g, "lr", fx.path);
        opt.momentum = h5_read_attr_double(g, "momentum", fx.path);
        opt.weight_decay = h5_read_attr_double(g, "weight_decay", fx.path);
        if (opt.kind == OPT_RMSPROP) opt.alpha = h5_read_attr_double(g, "alpha", fx.path);
        H5Gclose(g);
        model_io_read_params(fx.f, "params", &fx.m.params, fx.m.params.value, fx.path);
        memset(fx.m.params.state1, 0, 2 * fx.m.params.total * sizeof(float));
        for (int step = 0; step < 3; step++) {
            params_zero_grad(&fx.m.params);
            test_state_put(&fx.st, 0, fx.h0);
            test_state_put(&fx.st, 1, fx.c0);
            chunk0_step(&fx, NULL, NULL);
            optim_step(&opt, &fx.m.params, lr);
        }
        /* RMSprop's first steps divide by sqrt of tiny averages: float32 rounding in
         * either implementation moves parameters by ~1e-6. */
        check_params_equal(&fx, group, opt.kind == OPT_RMSPROP ? 2e-5 : 2e-6, group);
    }
    /* clipping: one plain SGD step after clip_grad_norm_(0.05) */
    fixture_reset(&fx, "params");
    chunk0_step(&fx, NULL, NULL);
    double norm = optim_clip(&fx.m.params, 0.05);
    double ref_norm = h5_read_attr_double(fx.f, "clip_total_norm", fx.path);
    ck_assert_msg(fabs(norm - ref_norm) < 1e-5 * ref_norm, "%s clip norm %g vs %g", cell, norm,
                  ref_norm);
    ck_assert_msg(optim_grad_norm(&fx.m.params) < 0.05 + 1e-6, "clipped norm too large");
    Optim sgd;
    optim_defaults(&sgd, OPT_SGD);
    sgd.momentum = 0.0;
    optim_step(&sgd, &fx.m.params, 0.1);
    check_params_equal(&fx, "clip/params", 2e-6, "clip");
    fixture_close(&fx);
}

START_TEST(forward_backward_rnn) { check_cell_forward_backward("rnn"); }
END_TEST
START_TEST(forward_backward_lstm) { check_cell_forward_backward("lstm"); }
END_TEST
START_TEST(forward_backward_gru) { check_cell_forward_backward("gru"); }
END_TEST
START_TEST(optimizers_rnn) { check_cell_optimizers("rnn"); }
END_TEST
START_TEST(optimizers_lstm) { check_cell_optimizers("lstm"); }
END_TEST
START_TEST(optimizers_gru) { check_cell_optimizers("gru"); }
END_TEST

static Suite *reference_suite(void) {
    Suite *s = suite_create("reference");
    TCase *tc = tcase_create("pytorch");
    tcase_add_test(tc, forward_backward_rnn);
    tcase_add_test(tc, forward_backward_lstm);
    tcase_add_test(tc, forward_backward_gru);
    tcase_add_test(tc, optimizers_rnn);
    tcase_add_test(tc, optimizers_lstm);
    tcase_add_test(tc, optimizers_gru);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(reference_suite)
