/* Truncated BPTT: chunked forward with carried state equals one long forward; TBPTT with
 * T = the whole sequence equals full BPTT (checked against finite differences of the loss
 * of the whole sequence computed chunk by chunk); with shorter chunks the gradient is the
 * sum of per-chunk gradients with the state held fixed at each boundary, which differs
 * from full BPTT. */
#include <string.h>

#include "model.h"
#include "testutil.h"

enum { B = 3, TOTAL = 12, V = 6, L = 2, H = 5, E = 4 };

static int32_t seq_in[TOTAL * B], seq_tgt[TOTAL * B];

static void make_tokens(void) {
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < TOTAL * B; i++) {
        seq_in[i] = (int32_t)(rng_u64(&rng) % V);
        seq_tgt[i] = (int32_t)(rng_u64(&rng) % V);
    }
}

static void make_model(Model *m, const char *cell, int Tmax) {
    ModelShape s = {.E = E, .V = V};
    model_shape_uniform(&s, layer_kind_by_name(cell), L, H);
    model_init(m, s, B, Tmax);
    model_init_weights(m, INIT_UNIFORM, 0.5f, 99);
}

/* Loss sum over the sequence in chunks of T (no gradient), from zero state. Writes the
 * final top-layer hidden state to hT (B,H) if non-NULL. */
static double chunked_loss(Model *m, int T, float *hT) {
    ModelState st;
    model_state_init(&st, m, B);
    double total = 0.0;
    for (int t0 = 0; t0 < TOTAL; t0 += T) {
        model_forward(m, &st, seq_in + t0 * B, T);
        total += model_loss(m, seq_tgt + t0 * B, T, 0.0f, 0);
    }
    if (hT) memcpy(hT, st.t[L - 1][0], sizeof(float) * B * H);
    model_state_free(&st);
    return total;
}

/* Gradient of the loss sum with chunks of T, state carried, gradient stopped at the
 * boundaries (what training does). */
static void tbptt_grad(Model *m, int T) {
    ModelState st;
    model_state_init(&st, m, B);
    params_zero_grad(&m->params);
    for (int t0 = 0; t0 < TOTAL; t0 += T) {
        model_forward(m, &st, seq_in + t0 * B, T);
        model_loss(m, seq_tgt + t0 * B, T, 1.0f, 1);
        model_backward(m, T, NULL);
    }
    model_state_free(&st);
}

static void check_forward(const char *cell) {
    Model whole, chunk;
    make_model(&whole, cell, TOTAL);
    make_model(&chunk, cell, 4);
    float h_whole[B * H], h_chunk[B * H];
    double a = chunked_loss(&whole, TOTAL, h_whole), b = chunked_loss(&chunk, 4, h_chunk);
    ck_assert_msg(fabs(a - b) <= 1e-6 * fabs(a), "%s: one forward %.9g vs chunks %.9g", cell, a,
                  b);
    double e = max_rel_err(h_chunk, h_whole, B * H, 1e-3);
    ck_assert_msg(e < 1e-6, "%s: final hidden state differs (rel %g)", cell, e);
    model_free(&whole);
    model_free(&chunk);
}

static void check_backward(const char *cell) {
    Model whole, chunk;
    make_model(&whole, cell, TOTAL);
    make_model(&chunk, cell, 4);
    Params *p = &whole.params;
    tbptt_grad(&whole, TOTAL);
    tbptt_grad(&chunk, 4);
    /* Full BPTT = d(total loss)/d(theta); the numeric derivative evaluates the loss in
     * chunks of 4 with carried state (no truncation affects a forward pass). */
    double diff_trunc = 0.0, scale = 0.0;
    for (int i = 0; i < p->count; i++) {
        ParamTensor *t = &p->tensors[i];
        for (size_t j = 0; j < t->size; j += 3) { /* a spread sample of entries */
            float *x = chunk.params.value + t->offset + j;
            float saved = *x;
            *x = saved + 1e-2f;
            double up = chunked_loss(&chunk, 4, NULL);
            *x = saved - 1e-2f;
            double down = chunked_loss(&chunk, 4, NULL);
            *x = saved;
            double num = (up - down) / 2e-2, ana = p->grad[t->offset + j];
            ck_assert_msg(fabs(num - ana) <= 2e-2 * fmax(fabs(ana), 0.05),
                          "%s %s[%zu]: full BPTT %.6g vs numeric %.6g", cell, t->name, j, ana,
                          num);
            diff_trunc += fabs(chunk.params.grad[t->offset + j] - ana);
            scale += fabs(ana);
        }
    }
    /* Truncation must matter: chunks of 4 give a different gradient than full BPTT. */
    ck_assert_msg(diff_trunc > 1e-3 * scale, "%s: truncated gradient equals full BPTT", cell);
    model_free(&whole);
    model_free(&chunk);
}

/* With chunks of 4, each chunk's gradient is that of its own loss with the incoming state
 * held fixed: check the summed gradient against finite differences done chunk by chunk. */
static void check_truncated(const char *cell) {
    Model m;
    make_model(&m, cell, 4);
    tbptt_grad(&m, 4);
    float *g = malloc(m.params.total * sizeof(float));
    memcpy(g, m.params.grad, m.params.total * sizeof(float));
    Params *p = &m.params;
    /* states at each chunk start, from an unperturbed pass */
    ModelState states[TOTAL / 4], st;
    model_state_init(&st, &m, B);
    for (int c = 0; c < TOTAL / 4; c++) {
        model_state_init(&states[c], &m, B);
        model_state_copy(&states[c], &st);
        model_forward(&m, &st, seq_in + c * 4 * B, 4);
    }
    for (int i = 0; i < p->count; i++) {
        ParamTensor *t = &p->tensors[i];
        for (size_t j = 1; j < t->size; j += 4) {
            float *x = p->value + t->offset + j, saved = *x;
            double num = 0.0;
            for (int c = 0; c < TOTAL / 4; c++) {
                double f[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    *x = saved + (sgn ? -1e-2f : 1e-2f);
                    model_state_copy(&st, &states[c]);
                    model_forward(&m, &st, seq_in + c * 4 * B, 4);
                    f[sgn] = model_loss(&m, seq_tgt + c * 4 * B, 4, 0.0f, 0);
                }
                num += (f[0] - f[1]) / 2e-2;
            }
            *x = saved;
            double ana = g[t->offset + j];
            ck_assert_msg(fabs(num - ana) <= 2e-2 * fmax(fabs(ana), 0.05),
                          "%s %s[%zu]: TBPTT %.6g vs numeric %.6g", cell, t->name, j, ana, num);
        }
    }
    for (int c = 0; c < TOTAL / 4; c++) model_state_free(&states[c]);
    model_state_free(&st);
    free(g);
    model_free(&m);
}

/* Decoding: one-token steps (each kind's step form) give the logits of the chunk forward at
 * every step and the same final state, for every registered kind. */
START_TEST(steps_equal_chunk_forward) {
    for (int i = 0; layer_kinds[i]; i++) {
        const LayerKind *kind = layer_kinds[i];
        Model chunk, one;
        ModelShape s = {.E = E, .V = V};
        model_shape_uniform(&s, kind, L, H);
        model_init(&chunk, s, B, TOTAL);
        model_init_weights(&chunk, INIT_UNIFORM, 0.5f, 99);
        model_init_shared(&one, &chunk, B, 1);
        ModelState a, b;
        model_state_init(&a, &chunk, B);
        model_state_init(&b, &chunk, B);
        model_forward(&chunk, &a, seq_in, TOTAL);
        for (int t = 0; t < TOTAL; t++) {
            model_step(&one, &b, seq_in + t * B);
            double e = max_rel_err(one.logits, chunk.logits + (size_t)t * B * V, (size_t)B * V,
                                   1e-3);
            ck_assert_msg(e < 1e-5, "%s step %d: logits differ from the chunk's (rel %g)",
                          kind->name, t, e);
        }
        ck_assert_msg(max_rel_err(b.buf, a.buf, a.floats, 1e-3) < 1e-5, "%s: final state differs",
                      kind->name);
        model_state_free(&a);
        model_state_free(&b);
        model_free(&one);
        model_free(&chunk);
    }
}
END_TEST

START_TEST(forward_rnn) { check_forward("rnn"); }
END_TEST
START_TEST(forward_lstm) { check_forward("lstm"); }
END_TEST
START_TEST(forward_gru) { check_forward("gru"); }
END_TEST
START_TEST(full_bptt_rnn) { check_backward("rnn"); }
END_TEST
START_TEST(full_bptt_lstm) { check_backward("lstm"); }
END_TEST
START_TEST(full_bptt_gru) { check_backward("gru"); }
END_TEST
START_TEST(truncated_rnn) { check_truncated("rnn"); }
END_TEST
START_TEST(truncated_lstm) { check_truncated("lstm"); }
END_TEST
START_TEST(truncated_gru) { check_truncated("gru"); }
END_TEST

static Suite *tbptt_suite(void) {
    make_tokens();
    Suite *s = suite_create("tbptt");
    TCase *tc = tcase_create("tbptt");
    tcase_add_test(tc, steps_equal_chunk_forward);
    tcase_add_test(tc, forward_rnn);
    tcase_add_test(tc, forward_lstm);
    tcase_add_test(tc, forward_gru);
    tcase_add_test(tc, full_bptt_rnn);
    tcase_add_test(tc, full_bptt_lstm);
    tcase_add_test(tc, full_bptt_gru);
    tcase_add_test(tc, truncated_rnn);
    tcase_add_test(tc, truncated_lstm);
    tcase_add_test(tc, truncated_gru);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(tbptt_suite)
