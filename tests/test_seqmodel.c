/* The sequence-task paths of the model, by finite differences: float feature inputs, the
 * conditioning projection (h0 = tanh(W_c c + b_c)), cross-entropy only at each sequence's
 * last valid step (many-to-one) and masked per-step MSE; and padding: whatever the padded
 * steps hold, the loss and every gradient are bitwise unchanged. */
#include <string.h>

#include "model.h"
#include "testutil.h"

enum { B = 3, T = 6, D = 3, C = 4, K = 5 };
static const int lengths[B] = {6, 2, 4};

typedef struct {
    Model m;
    ModelState st;
    float x[T * B * D], cond[B * C];
    int32_t labels[T * B];     /* many-to-one: label at step len-1, -1 elsewhere */
    float targets[T * B * K];  /* per-step regression targets */
    float weights[T * B];      /* 1 at valid steps, 0 on padding */
    int mse;
} Case;

static void case_init(Case *c, const char *cell, int L, int H, int use_cond, int mse) {
    memset(c, 0, sizeof *c);
    ModelShape s = {.E = D, .V = K, .float_inputs = 1, .C = use_cond ? C : 0};
    model_shape_uniform(&s, layer_kind_by_name(cell), L, H);
    model_init(&c->m, s, B, T);
    model_state_init(&c->st, &c->m, B);
    Rng rng;
    rng_seed(&rng, 5);
    model_init_weights(&c->m, INIT_UNIFORM, 0.5f, 1005);
    for (int i = 0; i < T * B * D; i++) c->x[i] = (float)(rng_uniform(&rng) - 0.5);
    for (int i = 0; i < B * C; i++) c->cond[i] = (float)(rng_uniform(&rng) > 0.5);
    for (int i = 0; i < T * B * K; i++) c->targets[i] = (float)(rng_uniform(&rng) - 0.5);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            c->labels[t * B + b] = t == lengths[b] - 1 ? (int32_t)(rng_u64(&rng) % K) : -1;
            c->weights[t * B + b] = t < lengths[b] ? 1.0f : 0.0f;
        }
    c->mse = mse;
}

static double loss_of(Case *c, int grad) {
    Model *m = &c->m;
    if (m->shape.C > 0)
        model_set_condition(m, &c->st, c->cond);
    else
        model_state_zero(&c->st);
    model_forward_features(m, &c->st, c->x, T);
    double l = c->mse ? model_loss_mse(m, c->targets, c->weights, T, 1.0f, grad)
                      : model_loss(m, c->labels, T, 1.0f, grad);
    if (grad) model_backward(m, T, NULL);
    return l;
}

static void check(const char *cell, int L, int use_cond, int mse) {
    Case c;
    case_init(&c, cell, L, 4, use_cond, mse);
    Params *p = &c.m.params;
    params_zero_grad(p);
    loss_of(&c, 1);
    float *ana = malloc(p->total * sizeof(float));
    memcpy(ana, p->grad, p->total * sizeof(float));
    double worst = 0.0;
    for (int i = 0; i < p->count; i++) {
        ParamTensor *t = &p->tensors[i];
        for (size_t j = 0; j < t->size; j++) {
            float *x = p->value + t->offset + j, saved = *x;
            *x = saved + 1e-2f;
            double up = loss_of(&c, 0);
            *x = saved - 1e-2f;
            double down = loss_of(&c, 0);
            *x = saved;
            double num = (up - down) / 2e-2, a = ana[t->offset + j];
            double err = fabs(num - a) / fmax(fabs(a), 0.05);
            worst = fmax(worst, err);
            ck_assert_msg(err < 2e-2, "%s %s[%zu]: numeric %.6g analytic %.6g", cell, t->name, j,
                          num, a);
        }
    }
    if (use_cond) {
        int ci = c.m.cond_w;
        double n = 0.0;
        for (size_t j = 0; j < p->tensors[ci].size; j++) n += fabs(ana[p->tensors[ci].offset + j]);
        ck_assert_msg(n > 1e-3, "conditioning gets no gradient");
    }
    printf("seq gradcheck %s L=%d cond=%d %s: worst relative error %.3g\n", cell, L, use_cond,
           mse ? "mse" : "ce-last", worst);
    free(ana);
    model_state_free(&c.st);
    model_free(&c.m);
}

START_TEST(lstm_cond_classify) { check("lstm", 2, 1, 0); }
END_TEST
START_TEST(gru_cond_mse) { check("gru", 2, 1, 1); }
END_TEST
START_TEST(rnn_classify) { check("rnn", 1, 0, 0); }
END_TEST
START_TEST(lstm_mse) { check("lstm", 1, 0, 1); }
END_TEST

static void padding_invariance(int mse) {
    Case a, b;
    case_init(&a, "lstm", 2, 5, 1, mse);
    case_init(&b, "lstm", 2, 5, 1, mse);
    Rng rng;
    rng_seed(&rng, 77);
    for (int t = 0; t < T; t++)
        for (int s = 0; s < B; s++)
            if (t >= lengths[s])
                for (int d = 0; d < D; d++) {
                    a.x[(t * B + s) * D + d] = 0.0f;
                    b.x[(t * B + s) * D + d] = (float)(100.0 * (rng_uniform(&rng) - 0.5));
                }
    params_zero_grad(&a.m.params);
    params_zero_grad(&b.m.params);
    double la = loss_of(&a, 1), lb = loss_of(&b, 1);
    ck_assert_msg(la == lb, "padding changed the loss: %.17g vs %.17g", la, lb);
    ck_assert_msg(memcmp(a.m.params.grad, b.m.params.grad, a.m.params.total * sizeof(float)) == 0,
                  "padding changed the gradients");
    model_state_free(&a.st);
    model_state_free(&b.st);
    model_free(&a.m);
    model_free(&b.m);
}

START_TEST(padding_never_matters_classify) { padding_invariance(0); }
END_TEST
START_TEST(padding_never_matters_mse) { padding_invariance(1); }
END_TEST

static Suite *seqmodel_suite(void) {
    Suite *s = suite_create("seqmodel");
    TCase *tc = tcase_create("seqmodel");
    tcase_add_test(tc, lstm_cond_classify);
    tcase_add_test(tc, gru_cond_mse);
    tcase_add_test(tc, rnn_classify);
    tcase_add_test(tc, lstm_mse);
    tcase_add_test(tc, padding_never_matters_classify);
    tcase_add_test(tc, padding_never_matters_mse);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(seqmodel_suite)
