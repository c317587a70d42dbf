/* The state space kinds (every registered kind that is not a stacked cell module: mamba,
 * s5) over chunks longer than their internal segments:
 *   - finite differences over a chunk of 37 steps for every initial-state entry and a
 *     sample of every parameter tensor (test_gradcheck covers every entry at T = 5);
 *   - T one-token steps equal one chunk forward;
 *   - a sequence run as chunks of 16, 16 and 5 steps with the state carried equals the
 *     whole 37-step sequence in one chunk. */
#include "common.h"
#include "layer.h"
#include "s5.h"
#include "testutil.h"

enum { B = 3, T = 37 };
static int D = 6, H = 6; /* widths of the layer under test (wide_layer_gradients widens them) */
static int s5_state = 4, s5_blocks = 1; /* S5's d_state and HiPPO-N blocks (Mamba's N is 4) */

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
    o.d_state = strcmp(kind->name, "s5") == 0 ? s5_state : 4;
    o.blocks = strcmp(kind->name, "s5") == 0 ? s5_blocks : 0;
    o.dt_rank = 2;
    o.d_conv = 3;
    layer_declare(&c->l, kind, d, H, &o, &c->p, "", "");
    params_alloc(&c->p);
    layer_alloc(&c->l, &c->p, B, Tmax);
    TorchRng g;
    torch_rng_seed(&g, 5);
    Rng rng;
    rng_seed(&rng, 11);
    LayerInit init = {INIT_PYTORCH, &g, &rng, 1, 0.0, 0.0};
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

/* Finite differences of one layer of kind k with input width d (see the file comment). */
static void check_gradients(const LayerKind *k, int d) {
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
        ck_assert_msg(e_ < 2e-2, "%s H=%d D=%d %s[%d]: numeric %.6g analytic %.6g", k->name, H, \
                      d, what, (int)(j), (double)(num), (double)(an));                          \
    } while (0)
    for (int t = 0; t < c.p.count; t++) { /* 7 entries of every tensor, spread out */
        ParamTensor *pt = &c.p.tensors[t];
        for (size_t j = 0; j < pt->size; j += pt->size / 7 + 1)
            CMP(pt->name, j, numeric(&c, c.p.value + pt->offset + j), ana[pt->offset + j]);
    }
    for (int s = 0; s < k->nstates; s++) {
        int n_s = B * k->state_width(&c.l, s), stride = n_s > 400 ? 7 : 1;
        for (int j = 0; j < n_s; j += stride)
            CMP(k->state_names[s], j, numeric(&c, c.state0[s] + j), dstate[s][j]);
    }
    for (int j = 0; j < T * B * d; j += 5 + d / 8) CMP("x", j, numeric(&c, c.x + j), dx[j]);
#undef CMP
    printf("%s H=%d D=%d T=%d: %d entries, worst relative error %.3g\n", k->name, H, d, T, n,
           worst);
    for (int s = 0; s < k->nstates; s++) free(dstate[s]);
    free(dx);
    free(ana);
    case_free(&c);
}

START_TEST(long_chunk_gradients) {
    for (int i = 0; layer_kinds[i]; i++)
        if (is_ssm(layer_kinds[i]))
            for (int d = D - 1; d <= D; d++) /* with and without the input projection */
                check_gradients(layer_kinds[i], d);
}
END_TEST

/* Width 40: Mamba's inner width 80 spans a 64-channel block of the scan and a second one,
 * with full 16-channel vector chunks and a partial one; S5 with 36 modes (d_state 72 in 9
 * HiPPO-N blocks: small imaginary parts, so that steps of log_step by the differences' 1e-2
 * stay in the linear range over 37 steps). */
START_TEST(wide_layer_gradients) {
    H = D = 40;
    s5_state = 72;
    s5_blocks = 9;
    for (int i = 0; layer_kinds[i]; i++)
        if (is_ssm(layer_kinds[i])) check_gradients(layer_kinds[i], D);
    H = D = 6;
    s5_state = 4;
    s5_blocks = 1;
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

/* ---- the PyTorch reference (scripts/make_ssm_fixtures.py, a plain time loop) ------- */

/* A float32 dataset of any rank into buf (n floats, the product of its dims). */
static void read_flat(hid_t f, const char *name, float *buf, size_t n) {
    uint64_t dims[8];
    int nd = h5_dataset_shape(f, name, dims, "fixture");
    size_t total = 1;
    for (int i = 0; i < nd; i++) total *= dims[i];
    ck_assert_msg(total == n, "%s: %zu values, expected %zu", name, total, n);
    h5_read_f32(f, name, buf, nd, dims, "fixture");
}

static int attr(hid_t f, const char *name) { return (int)h5_read_attr_int(f, name, "fixture"); }

/* Same weights, tokens and initial states as the fixture: the same logits, loss and
 * gradients (parameters and initial states) for each of its chunks, the state carried. */
static void check_fixture(const char *file, const char *kind) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", FIXTURE_DIR, file);
    hid_t f = h5_open_read(path, "fixture");
    int V = attr(f, "vocab_size"), L = attr(f, "layers"), Bf = attr(f, "batch");
    int Tf = attr(f, "bptt"), chunks = attr(f, "chunks");
    int Hf = h5_attr_exists(f, "d_model") ? attr(f, "d_model") : attr(f, "hidden");
    ModelShape s = {.E = Hf, .V = V};
    model_shape_uniform(&s, layer_kind_by_name(kind), L, Hf);
    for (int k = 0; k < L; k++) {
        LayerOpts *o = &s.layer[k].opt;
        if (strcmp(kind, "mamba") == 0) {
            o->d_state = attr(f, "d_state");
            o->d_conv = attr(f, "d_conv");
            o->expand = attr(f, "expand");
            o->dt_rank = attr(f, "dt_rank");
        } else {
            o->d_state = attr(f, "state_size");
            o->blocks = attr(f, "blocks");
            o->conj_sym = attr(f, "conj_sym") ? 1 : 2;
            o->bilinear = attr(f, "bilinear");
            o->clip_eigs = attr(f, "clip_eigs");
            o->glu = attr(f, "glu");
        }
    }
    Model m;
    model_init(&m, s, Bf, Tf);
    ck_assert_int_eq(model_shape_head_tied(&m.shape), attr(f, "tied"));
    char name[256];
    for (int i = 0; i < m.params.count; i++) {
        snprintf(name, sizeof name, "params/%s", m.params.tensors[i].name);
        read_flat(f, name, params_value(&m.params, i), m.params.tensors[i].size);
    }
    ModelState st, dst;
    model_state_init(&st, &m, Bf);
    model_state_init(&dst, &m, Bf);
    for (int k = 0; k < L; k++)
        for (int q = 0; q < m.layers[k].kind->nstates; q++) {
            snprintf(name, sizeof name, "state0/l%d/%s", k, m.layers[k].kind->state_names[q]);
            read_flat(f, name, st.t[k][q], (size_t)Bf * st.width[k][q]);
        }
    int W = chunks * Tf + 1;
    int32_t *tok = malloc((size_t)Bf * W * sizeof *tok);
    uint64_t td[2] = {(uint64_t)Bf, (uint64_t)W};
    h5_read_i32(f, "tokens", tok, 2, td, "fixture");
    int32_t *in = malloc((size_t)Tf * Bf * sizeof *in), *tg = malloc((size_t)Tf * Bf * sizeof *tg);
    float *want = rt_alloc_floats(1 << 16, "fixture values");
    double worst_logit = 0, worst_grad = 0, worst_state = 0, worst_loss = 0;
    for (int c = 0; c < chunks; c++) {
        for (int t = 0; t < Tf; t++)
            for (int b = 0; b < Bf; b++) {
                in[t * Bf + b] = tok[b * W + c * Tf + t];
                tg[t * Bf + b] = tok[b * W + c * Tf + t + 1];
            }
        model_forward(&m, &st, in, Tf);
        snprintf(name, sizeof name, "chunk%d/logits", c);
        read_flat(f, name, want, (size_t)Tf * Bf * V);
        worst_logit = fmax(worst_logit, max_rel_err(m.logits, want, (size_t)Tf * Bf * V, 1e-3));
        params_zero_grad(&m.params);
        double loss = model_loss(&m, tg, Tf, 1.0f / (float)(Tf * Bf), 1) / (Tf * Bf);
        double wl;
        snprintf(name, sizeof name, "chunk%d/loss", c);
        h5_read_f64(f, name, &wl, 0, NULL, "fixture");
        worst_loss = fmax(worst_loss, fabs(loss - wl) / fabs(wl));
        model_backward(&m, Tf, &dst);
        for (int i = 0; i < m.params.count; i++) {
            const ParamTensor *pt = &m.params.tensors[i];
            snprintf(name, sizeof name, "chunk%d/grad/%s", c, pt->name);
            read_flat(f, name, want, pt->size);
            double e = max_rel_err(params_grad(&m.params, i), want, pt->size, 1e-4);
            ck_assert_msg(e < 1e-4, "%s chunk %d: gradient of %s off by %g", file, c, pt->name, e);
            worst_grad = fmax(worst_grad, e);
        }
        for (int k = 0; k < L; k++)
            for (int q = 0; q < m.layers[k].kind->nstates; q++) {
                size_t n = (size_t)Bf * st.width[k][q];
                const char *sn = m.layers[k].kind->state_names[q];
                snprintf(name, sizeof name, "chunk%d/dstate0/l%d/%s", c, k, sn);
                read_flat(f, name, want, n);
                double e = max_rel_err(dst.t[k][q], want, n, 1e-4);
                ck_assert_msg(e < 1e-4, "%s chunk %d: d%s0 of layer %d off by %g", file, c, sn, k, e);
                worst_grad = fmax(worst_grad, e);
                snprintf(name, sizeof name, "chunk%d/state/l%d/%s", c, k, sn);
                read_flat(f, name, want, n);
                worst_state = fmax(worst_state, max_rel_err(st.t[k][q], want, n, 1e-3));
            }
    }
    printf("%s: %d chunks: logits %.3g, loss %.3g, gradients %.3g, states %.3g (relative)\n", file,
           chunks, worst_logit, worst_loss, worst_grad, worst_state);
    ck_assert_msg(worst_logit < 1e-5 && worst_loss < 1e-5 && worst_state < 1e-5,
                  "%s: logits %g loss %g states %g", file, worst_logit, worst_loss, worst_state);
    free(want);
    free(tok);
    free(in);
    free(tg);
    model_state_free(&st);
    model_state_free(&dst);
    model_free(&m);
    H5Fclose(f);
}

START_TEST(pytorch_reference_mamba) { check_fixture("ref_mamba.h5", "mamba"); }
END_TEST

/* conjugate symmetry, ZOH, GELU */
START_TEST(pytorch_reference_s5) { check_fixture("ref_s5.h5", "s5"); }
END_TEST

/* all modes, bilinear, clip_eigs (two eigenvalues clipped), half-GLU */
START_TEST(pytorch_reference_s5_glu) { check_fixture("ref_s5_glu.h5", "s5"); }
END_TEST

/* The HiPPO-N eigenvalues from LAPACK (zheev of the Hermitian -iK) against numpy's dense
 * eig of the real S (ref_hippo.h5); the eigenvectors orthonormal and V diag(-1/2 + i w) V^H
 * rebuilding S; and an S5 layer's initial Lambda: the block's values tiled per block. */
START_TEST(hippo_n_eigenvalues) {
    char path[512];
    snprintf(path, sizeof path, "%s/ref_hippo.h5", FIXTURE_DIR);
    hid_t f = h5_open_read(path, "fixture");
    const int cases[][2] = {{8, 0}, {8, 1}, {16, 1}, {64, 1}};
    for (size_t q = 0; q < sizeof cases / sizeof *cases; q++) {
        int Pb = cases[q][0], half = cases[q][1], n = half ? Pb / 2 : Pb;
        double *w = malloc((size_t)Pb * sizeof *w), *S = malloc((size_t)Pb * Pb * sizeof *S);
        double complex *V = malloc((size_t)Pb * Pb * sizeof *V);
        ck_assert_int_eq(s5_hippo_n(Pb, w, V), 0);
        double want_re[64], want_im[64];
        char name[64];
        uint64_t dims[1] = {(uint64_t)n};
        snprintf(name, sizeof name, "lambda_re_%d_%d", Pb, half);
        h5_read_f64(f, name, want_re, 1, dims, "fixture");
        snprintf(name, sizeof name, "lambda_im_%d_%d", Pb, half);
        h5_read_f64(f, name, want_im, 1, dims, "fixture");
        double worst = 0.0, scale = fabs(w[Pb - 1]);
        for (int i = 0; i < n; i++) {
            ck_assert_msg(fabs(want_re[i] + 0.5) < 1e-12, "Pb %d: Re %.17g", Pb, want_re[i]);
            worst = fmax(worst, fabs(w[i] - want_im[i]) / scale);
        }
        ck_assert_msg(worst < 1e-12, "Pb %d: eigenvalues off by %g", Pb, worst);
        s5_hippo_normal_part(Pb, S);
        double rebuild = 0.0, ortho = 0.0;
        for (int a = 0; a < Pb; a++)
            for (int b = 0; b < Pb; b++) {
                double complex s = 0.0, o = 0.0;
                for (int i = 0; i < Pb; i++) {
                    s += V[a + (size_t)i * Pb] * (-0.5 + I * w[i]) * conj(V[b + (size_t)i * Pb]);
                    o += conj(V[i + (size_t)a * Pb]) * V[i + (size_t)b * Pb];
                }
                rebuild = fmax(rebuild, cabs(s - S[(size_t)a * Pb + b]));
                ortho = fmax(ortho, cabs(o - (a == b ? 1.0 : 0.0)));
            }
        ck_assert_msg(rebuild < 1e-10 * Pb && ortho < 1e-12 * Pb, "Pb %d: V diag V^H - S %g, V^H V - I %g",
                      Pb, rebuild, ortho);
        printf("hippo Pb=%d conj_sym=%d: eigenvalues %.2g (relative), rebuild %.2g, V^H V - I %.2g\n",
               Pb, half, worst, rebuild, ortho);
        free(w);
        free(S);
        free(V);
    }
    /* an S5 layer of state size 16 in 2 blocks of 8 (conjugate symmetry: 4 modes each) */
    Layer l;
    Params p = {0};
    LayerOpts o = {.d_state = 16, .blocks = 2};
    layer_declare(&l, &layer_s5, 6, 6, &o, &p, "", "");
    params_alloc(&p);
    layer_alloc(&l, &p, 1, 1);
    TorchRng g;
    torch_rng_seed(&g, 1);
    Rng rng;
    rng_seed(&rng, 2);
    LayerInit init = {INIT_PYTORCH, &g, &rng, 1, 0.0, 0.0};
    layer_s5.init_weights(&l, &init);
    double want_im[4];
    uint64_t dims[1] = {4};
    h5_read_f64(f, "lambda_im_8_1", want_im, 1, dims, "fixture");
    const float *lre = NULL, *lim = NULL;
    for (int i = 0; i < p.count; i++) {
        if (strcmp(p.tensors[i].name, "seq.Lambda_re") == 0) lre = params_value(&p, i);
        if (strcmp(p.tensors[i].name, "seq.Lambda_im") == 0) lim = params_value(&p, i);
    }
    ck_assert(lre && lim);
    for (int i = 0; i < 8; i++) {
        ck_assert(lre[i] == -0.5f);
        ck_assert(lim[i] == (float)want_im[i % 4]);
    }
    layer_free(&l);
    params_free(&p);
    H5Fclose(f);
}
END_TEST

/* --dt-min/--dt-max: the initial steps lie in the range given, log-uniform (their logs
 * spread over it), and the defaults are the references' [1e-3, 1e-1]. */
static void step_logs(const LayerKind *kind, double lo, double hi, double *mn, double *mx) {
    Layer l;
    Params p = {0};
    LayerOpts o = {0};
    layer_declare(&l, kind, 8, 32, &o, &p, "", "");
    params_alloc(&p);
    layer_alloc(&l, &p, 1, 1);
    TorchRng g;
    torch_rng_seed(&g, 3);
    Rng rng;
    rng_seed(&rng, 4);
    LayerInit init = {INIT_PYTORCH, &g, &rng, 1, lo, hi};
    kind->init_weights(&l, &init);
    const char *name = kind == &layer_s5 ? "seq.log_step" : "mixer.dt_proj.bias";
    int t = -1;
    for (int i = 0; i < p.count; i++)
        if (strcmp(p.tensors[i].name, name) == 0) t = i;
    ck_assert_int_ge(t, 0);
    const float *v = params_value(&p, t);
    *mn = INFINITY;
    *mx = -INFINITY;
    for (size_t i = 0; i < p.tensors[t].size; i++) {
        /* S5 stores log(step); Mamba the inverse softplus of the step */
        double step = kind == &layer_s5 ? exp(v[i]) : log1p(exp((double)v[i]));
        double ls = log(step);
        *mn = ls < *mn ? ls : *mn;
        *mx = ls > *mx ? ls : *mx;
    }
    layer_free(&l);
    params_free(&p);
}

START_TEST(initial_step_range) {
    const LayerKind *kinds[2] = {&layer_mamba, &layer_s5};
    const double ranges[3][2] = {{0.0, 0.0}, {1e-4, 1e-2}, {2e-3, 2e-3}};
    for (int k = 0; k < 2; k++)
        for (int r = 0; r < 3; r++) {
            double lo = ranges[r][0] > 0 ? ranges[r][0] : 1e-3, hi = ranges[r][1] > 0 ? ranges[r][1] : 0.1;
            double mn, mx;
            step_logs(kinds[k], ranges[r][0], ranges[r][1], &mn, &mx);
            double tol = 1e-5, span = log(hi) - log(lo);
            ck_assert_msg(mn >= log(lo) - tol && mx <= log(hi) + tol,
                          "%s [%g, %g]: steps from %g to %g", kinds[k]->name, lo, hi, exp(mn),
                          exp(mx));
            /* 32 (s5) or 64 (mamba) log-uniform draws cover most of the range */
            ck_assert_msg(span == 0.0 || (mx - mn) > 0.7 * span, "%s [%g, %g]: steps only from "
                          "%g to %g", kinds[k]->name, lo, hi, exp(mn), exp(mx));
            printf("initial steps %s [%g, %g]: %.3g to %.3g\n", kinds[k]->name, lo, hi, exp(mn),
                   exp(mx));
        }
}
END_TEST

/* --pool mean: the loss of a sequence is that of the mean of its logits over its steps;
 * finite differences of that loss for every parameter of a small model, with sequences of
 * different lengths (labels at their last steps), and the pooled logits are the mean. */
static double pooled_loss(Model *m, const float *x, const int32_t *labels, int grad) {
    ModelState st;
    model_state_init(&st, m, m->B);
    model_forward_features(m, &st, x, m->Tmax);
    double l = model_loss(m, labels, m->Tmax, 1.0f, grad);
    model_state_free(&st);
    return l;
}

START_TEST(mean_pooling_gradients) {
    const char *kinds[] = {"lstm", "mamba", "s5"};
    for (int q = 0; q < 3; q++) {
        enum { PT = 7, PB = 3, PE = 3, PV = 4 };
        ModelShape s = {.E = PE, .V = PV, .float_inputs = 1, .pool_mean = 1};
        model_shape_uniform(&s, layer_kind_by_name(kinds[q]), 1, 6);
        s.layer[0].opt.d_state = 4;
        Model m;
        model_init(&m, s, PB, PT);
        model_init_weights(&m, INIT_PYTORCH, 0.0f, 9);
        Rng rng;
        rng_seed(&rng, 4);
        float x[PT * PB * PE];
        fill_random(x, sizeof x / sizeof *x, 1.0, &rng);
        int32_t labels[PT * PB];
        for (int i = 0; i < PT * PB; i++) labels[i] = -1;
        for (int b = 0; b < PB; b++) labels[(PT - 1 - 2 * b) * PB + b] = b + 1; /* lengths 7, 5, 3 */
        /* the pooled logits are the mean of the per-step logits */
        ModelState st;
        model_state_init(&st, &m, PB);
        model_forward_features(&m, &st, x, PT);
        float mean[PV] = {0};
        int b = 1, last = PT - 3;
        for (int t = 0; t <= last; t++)
            for (int v = 0; v < PV; v++) mean[v] += m.logits[((size_t)t * PB + b) * PV + v] / (last + 1);
        model_loss(&m, labels, PT, 1.0f, 0);
        ck_assert(max_rel_err(m.logits + ((size_t)last * PB + b) * PV, mean, PV, 1e-3) < 1e-6);
        model_state_free(&st);
        params_zero_grad(&m.params);
        pooled_loss(&m, x, labels, 1);
        model_backward(&m, PT, NULL);
        float *ana = malloc(m.params.total * sizeof(float));
        memcpy(ana, m.params.grad, m.params.total * sizeof(float));
        double worst = 0.0;
        for (int i = 0; i < m.params.count; i++) {
            ParamTensor *pt = &m.params.tensors[i];
            for (size_t j = 0; j < pt->size; j += pt->size / 5 + 1) {
                float *v = m.params.value + pt->offset + j, saved = *v;
                *v = saved + 1e-2f;
                double up = pooled_loss(&m, x, labels, 0);
                *v = saved - 1e-2f;
                double down = pooled_loss(&m, x, labels, 0);
                *v = saved;
                double num = (up - down) / 2e-2, an = ana[pt->offset + j];
                double e = fabs(num - an) / fmax(fabs(an), 0.05);
                worst = fmax(worst, e);
                ck_assert_msg(e < 2e-2, "%s pooled %s[%zu]: numeric %g analytic %g", kinds[q],
                              pt->name, j, num, an);
            }
        }
        printf("%s: mean pooling gradients, worst relative error %.3g\n", kinds[q], worst);
        free(ana);
        model_free(&m);
    }
}
END_TEST

static Suite *ssm_suite(void) {
    Suite *s = suite_create("ssm");
    TCase *tc = tcase_create("ssm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, long_chunk_gradients);
    tcase_add_test(tc, wide_layer_gradients);
    tcase_add_test(tc, steps_equal_chunk);
    tcase_add_test(tc, chunks_equal_whole);
    tcase_add_test(tc, pytorch_reference_mamba);
    tcase_add_test(tc, pytorch_reference_s5);
    tcase_add_test(tc, pytorch_reference_s5_glu);
    tcase_add_test(tc, hippo_n_eigenvalues);
    tcase_add_test(tc, mean_pooling_gradients);
    tcase_add_test(tc, initial_step_range);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ssm_suite)
