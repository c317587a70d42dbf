/* The state space kinds (every registered kind that is not a stacked cell module: mamba,
 * s5) over chunks longer than their internal segments:
 *   - finite differences over a chunk of 37 steps for every initial-state entry and a
 *     sample of every parameter tensor (test_gradcheck covers every entry at T = 5);
 *   - T one-token steps equal one chunk forward;
 *   - a sequence run as chunks of 16, 16 and 5 steps with the state carried equals the
 *     whole 37-step sequence in one chunk. */
#include "common.h"
#include "layer.h"
#include "testutil.h"

enum { B = 3, T = 37, D = 6, H = 6 };

static void fill_random(float *x, size_t n, double scale, Rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * scale);
}

typedef struct {
    Layer l;
    Params p;
    float *x, *w;
    float *state0[LAYER_MAX_STATES], *state[LAYER_MAX_STATES];
} Case;

static void case_init(Case *c, const LayerKind *kind, int d, int Tmax) {
    memset(c, 0, sizeof *c);
    LayerOpts o = {0};
    o.d_state = 4;
    o.dt_rank = 2;
    o.d_conv = 3;
    layer_declare(&c->l, kind, d, H, &o, &c->p, "", "");
    params_alloc(&c->p);
    layer_alloc(&c->l, &c->p, B, Tmax);
    TorchRng g;
    torch_rng_seed(&g, 5);
    Rng rng;
    rng_seed(&rng, 11);
    LayerInit init = {INIT_PYTORCH, &g, &rng, 1};
    kind->init_weights(&c->l, &init);
    /* larger steps than the initialisation's so that the recurrence matters over 37 steps */
    for (int i = 0; i < c->p.count; i++) {
        float *v = params_value(&c->p, i);
        for (size_t j = 0; j < c->p.tensors[i].size; j++) v[j] += (float)(0.2 * (rng_uniform(&rng) - 0.5));
    }
    c->x = rt_alloc_floats((size_t)T * B * d, "x");
    c->w = rt_alloc_floats((size_t)T * B * H, "w");
    fill_random(c->x, (size_t)T * B * d, 1.0, &rng);
    fill_random(c->w, (size_t)T * B * H, 1.0, &rng);
    for (int s = 0; s < kind->nstates; s++) {
        size_t n = (size_t)B * kind->state_width(&c->l, s);
        c->state0[s] = rt_alloc_floats(n, "state");
        c->state[s] = rt_alloc_floats(n, "state");
        fill_random(c->state0[s], n, 0.5, &rng);
    }
}

static void case_free(Case *c) {
    for (int s = 0; s < c->l.kind->nstates; s++) {
        free(c->state0[s]);
        free(c->state[s]);
    }
    free(c->x);
    free(c->w);
    layer_free(&c->l);
    params_free(&c->p);
}

static void reset_state(Case *c) {
    for (int s = 0; s < c->l.kind->nstates; s++)
        memcpy(c->state[s], c->state0[s], (size_t)B * c->l.kind->state_width(&c->l, s) * sizeof(float));
}

static double loss(Case *c) {
    reset_state(c);
    c->l.kind->forward(&c->l, c->state, c->x, T, NULL);
    double s = 0.0;
    for (size_t i = 0; i < (size_t)T * B * H; i++) s += (double)c->w[i] * c->l.y[i];
    return s;
}

static double numeric(Case *c, float *v) {
    const float eps = 1e-2f;
    float saved = *v;
    *v = saved + eps;
    double up = loss(c);
    *v = saved - eps;
    double down = loss(c);
    *v = saved;
    return (up - down) / (2.0 * (double)eps);
}

static int is_ssm(const LayerKind *k) { return !k->stacked_module; }

START_TEST(long_chunk_gradients) {
    for (int i = 0; layer_kinds[i]; i++) {
        const LayerKind *k = layer_kinds[i];
        if (!is_ssm(k)) continue;
        for (int d = D - 1; d <= D; d++) { /* with and without the input projection */
            Case c;
            case_init(&c, k, d, T);
            float *dstate[LAYER_MAX_STATES];
            for (int s = 0; s < k->nstates; s++)
                dstate[s] = rt_alloc_floats((size_t)B * k->state_width(&c.l, s), "dstate");
            float *dx = rt_alloc_floats((size_t)T * B * d, "dx");
            params_zero_grad(&c.p);
            loss(&c);
            k->backward(&c.l, c.w, dstate, T, NULL, NULL);
            k->backward_input(&c.l, c.x, dx, T);
            float *ana = malloc(c.p.total * sizeof(float));
            memcpy(ana, c.p.grad, c.p.total * sizeof(float));
            double worst = 0.0;
            int n = 0;
#define CMP(what, j, num, an)                                                                  \
    do {                                                                                       \
        double e_ = fabs((num) - (an)) / fmax(fabs(an), 0.05);                                  \
        worst = fmax(worst, e_);                                                               \
        n++;                                                                                   \
        ck_assert_msg(e_ < 2e-2, "%s D=%d %s[%d]: numeric %.6g analytic %.6g", k->name, d,      \
                      what, (int)(j), (double)(num), (double)(an));                             \
    } while (0)
            for (int t = 0; t < c.p.count; t++) { /* 7 entries of every tensor, spread out */
                ParamTensor *pt = &c.p.tensors[t];
                for (size_t j = 0; j < pt->size; j += pt->size / 7 + 1)
                    CMP(pt->name, j, numeric(&c, c.p.value + pt->offset + j), ana[pt->offset + j]);
            }
            for (int s = 0; s < k->nstates; s++)
                for (int j = 0; j < B * k->state_width(&c.l, s); j++)
                    CMP(k->state_names[s], j, numeric(&c, c.state0[s] + j), dstate[s][j]);
            for (int j = 0; j < T * B * d; j += 5) CMP("x", j, numeric(&c, c.x + j), dx[j]);
#undef CMP
            printf("%s D=%d T=%d: %d entries, worst relative error %.3g\n", k->name, d, T, n, worst);
            for (int s = 0; s < k->nstates; s++) free(dstate[s]);
            free(dx);
            free(ana);
            case_free(&c);
        }
    }
}
END_TEST

START_TEST(steps_equal_chunk) {
    for (int i = 0; layer_kinds[i]; i++) {
        const LayerKind *k = layer_kinds[i];
        if (!is_ssm(k)) continue;
        Case c, one;
        case_init(&c, k, D, T);
        case_init(&one, k, D, 1); /* same seeds: same weights, inputs, states */
        ck_assert(c.p.total == one.p.total && memcmp(c.p.value, one.p.value, c.p.total * 4) == 0);
        loss(&c);
        reset_state(&one);
        float *ys = rt_alloc_floats((size_t)T * B * H, "steps");
        for (int t = 0; t < T; t++) {
            k->step(&one.l, one.state, c.x + (size_t)t * B * D, NULL);
            memcpy(ys + (size_t)t * B * H, one.l.y, (size_t)B * H * sizeof(float));
        }
        double e = max_rel_err(ys, c.l.y, (size_t)T * B * H, 1e-3);
        printf("%s: %d steps vs one chunk: relative difference %.3g\n", k->name, T, e);
        ck_assert_msg(e < 2e-6, "%s steps differ from the chunk: %g", k->name, e);
        for (int s = 0; s < k->nstates; s++)
            ck_assert(max_rel_err(one.state[s], c.state[s], (size_t)B * k->state_width(&c.l, s),
                                  1e-3) < 2e-6);
        free(ys);
        case_free(&c);
        case_free(&one);
    }
}
END_TEST

START_TEST(chunks_equal_whole) {
    for (int i = 0; layer_kinds[i]; i++) {
        const LayerKind *k = layer_kinds[i];
        if (!is_ssm(k)) continue;
        Case c;
        case_init(&c, k, D, T);
        loss(&c);
        float *whole = rt_alloc_floats((size_t)T * B * H, "whole");
        memcpy(whole, c.l.y, (size_t)T * B * H * sizeof(float));
        float *end[LAYER_MAX_STATES];
        for (int s = 0; s < k->nstates; s++) {
            size_t n = (size_t)B * k->state_width(&c.l, s);
            end[s] = rt_alloc_floats(n, "end");
            memcpy(end[s], c.state[s], n * sizeof(float));
        }
        reset_state(&c);
        const int cuts[] = {0, 16, 32, T};
        double e = 0.0;
        for (int q = 0; q < 3; q++) {
            int t0 = cuts[q], len = cuts[q + 1] - t0;
            k->forward(&c.l, c.state, c.x + (size_t)t0 * B * D, len, NULL);
            e = fmax(e, max_rel_err(c.l.y, whole + (size_t)t0 * B * H, (size_t)len * B * H, 1e-3));
        }
        for (int s = 0; s < k->nstates; s++)
            e = fmax(e, max_rel_err(c.state[s], end[s], (size_t)B * k->state_width(&c.l, s), 1e-3));
        printf("%s: chunks 16+16+5 vs one chunk of 37: relative difference %.3g\n", k->name, e);
        ck_assert_msg(e < 2e-6, "%s: %g", k->name, e);
        for (int s = 0; s < k->nstates; s++) free(end[s]);
        free(whole);
        case_free(&c);
    }
}
END_TEST

static Suite *ssm_suite(void) {
    Suite *s = suite_create("ssm");
    TCase *tc = tcase_create("ssm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, long_chunk_gradients);
    tcase_add_test(tc, steps_equal_chunk);
    tcase_add_test(tc, chunks_equal_whole);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ssm_suite)
