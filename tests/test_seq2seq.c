/* seq2seq models (encoder, hand-over, attention, decoder) and their decoding:
 *   - finite differences through the whole model (every parameter: encoder embedding and
 *     layers, both directions of a bidirectional encoder, attention, conditioning, decoder,
 *     head) with sources of different lengths, so the reversal within each length and the
 *     attention mask are exercised; every layer kind in the encoder and the decoder;
 *   - padding: source steps past a sequence's length change nothing;
 *   - the one-step form: the log-probability decoding reports for its output equals the
 *     teacher-forced loss of that output (the step and chunk forms of every layer and of
 *     the attention agree);
 *   - beam search with beam 1 is greedy (the tokens; the log-probability to 1e-6), and with beam K and
 *     no length normalisation finds outputs at least as probable as greedy's. */
#include <string.h>

#include "common.h"
#include "decode.h"
#include "model.h"
#include "testutil.h"

enum { B = 3, S = 6, T = 5, V = 6, VS = 5 };

static const int32_t src_len[B] = {6, 3, 1};

static const LayerKind *K_(const char *name) {
    const LayerKind *k = layer_kind_by_name(name);
    ck_assert_ptr_nonnull(k);
    return k;
}

typedef struct {
    Model m;
    ModelState st;
    int32_t src[S * B], in[T * B], tgt[T * B];
} Case;

static void fill_random(float *x, size_t n, double scale, Rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * scale);
}

/* Dropout of the models under check (p = 0: none): encoder and decoder layers. */
static const int64_t drop_streams[B] = {4, 9, 1};
static ModelDropout case_drop = {0.0f, 5, 2, drop_streams, 0};

static void case_init(Case *c, const ModelShape *shape, int Bm, uint64_t seed) {
    ModelShape s = *shape;
    s.V = V;
    s.in_vocab = V;
    s.enc_vocab = VS;
    s.enc_steps = S;
    model_init(&c->m, s, Bm, T);
    model_init_weights(&c->m, INIT_PYTORCH, 0.0f, seed);
    Rng rng;
    rng_seed(&rng, seed);
    /* PyTorch's default draws are small for these widths: spread them to make every
     * path matter */
    for (int i = 0; i < c->m.params.count; i++) { /* (S5's HiPPO-N modes kept: stable) */
        const ParamTensor *t = &c->m.params.tensors[i];
        if (!strstr(t->name, "Lambda") && !strstr(t->name, "log_step"))
            fill_random(c->m.params.value + t->offset, t->size, 0.7, &rng);
    }
    for (int i = 0; i < S * B; i++) c->src[i] = (int32_t)(rng_u64(&rng) % VS);
    for (int i = 0; i < T * B; i++) {
        c->in[i] = (int32_t)(rng_u64(&rng) % V);
        c->tgt[i] = (int32_t)(rng_u64(&rng) % V);
    }
    c->tgt[(T - 1) * B + 1] = -1; /* a masked step */
    model_state_init(&c->st, &c->m, Bm);
    model_set_dropout(&c->m, &case_drop);
}

static void case_free(Case *c) {
    model_state_free(&c->st);
    model_free(&c->m);
}

static double loss_at(Case *c) {
    model_encode(&c->m, &c->st, c->src, src_len, S);
    model_forward(&c->m, &c->st, c->in, T);
    return model_loss(&c->m, c->tgt, T, 1.0f, 0);
}

static double worst;

static void check_gradients(const ModelShape *shape, const char *what) {
    Case c;
    case_init(&c, shape, B, 7);
    Params *p = &c.m.params;
    params_zero_grad(p);
    loss_at(&c);
    model_loss(&c.m, c.tgt, T, 1.0f, 1);
    model_backward(&c.m, T, NULL);
    float *analytic = malloc(p->total * sizeof(float));
    memcpy(analytic, p->grad, p->total * sizeof(float));
    worst = 0.0;
    int compared = 0, nonzero_enc = 0;
    for (int i = 0; i < p->count; i++) {
        ParamTensor *t = &p->tensors[i];
        for (size_t j = 0; j < t->size; j++) {
            float *v = p->value + t->offset + j, saved = *v;
            const float eps = 3e-3f; /* S5 (layer norm, GELU) curves enough that 1e-2 errs by 5% */
            *v = saved + eps;
            double up = loss_at(&c);
            *v = saved - eps;
            double down = loss_at(&c);
            *v = saved;
            double num = (up - down) / (2.0 * eps), ana = analytic[t->offset + j];
            double err = fabs(num - ana) / fmax(fabs(ana), 0.05);
            worst = fmax(worst, err);
            compared++;
            if (strncmp(t->name, "encoder.", 8) == 0 && fabs(ana) > 1e-3) nonzero_enc++;
            ck_assert_msg(err < 2e-2, "%s %s[%zu]: numeric %.6g analytic %.6g (rel err %.3g)",
                          what, t->name, j, num, ana, err);
        }
    }
    printf("gradcheck %s: %d entries, worst relative error %.3g\n", what, compared, worst);
    ck_assert_int_gt(nonzero_enc, 10); /* the gradient reached the encoder */
    free(analytic);
    case_free(&c);
}

static ModelShape shape_of(const LayerKind *dec, int Hd, const LayerKind *enc, int He, int Le,
                           int bidir, AttentionKind at) {
    ModelShape s = {.E = 3};
    model_shape_uniform(&s, dec, 1, Hd);
    s.enc_L = Le;
    for (int k = 0; k < Le; k++) {
        s.enc_layer[k].kind = enc;
        s.enc_layer[k].H = He;
    }
    s.bidirectional = bidir;
    s.attention = at;
    return s;
}

START_TEST(gradients_lstm_bidirectional_general) {
    ModelShape s = shape_of(K_("lstm"), 4, K_("lstm"), 3, 2, 1, ATTENTION_GENERAL);
    check_gradients(&s, "lstm 2x3 bidirectional -> lstm 4, general");
}
END_TEST

START_TEST(gradients_gru_dot) {
    ModelShape s = shape_of(K_("gru"), 4, K_("gru"), 4, 1, 0, ATTENTION_DOT);
    check_gradients(&s, "gru 4 -> gru 4, dot");
}
END_TEST

START_TEST(gradients_no_attention) {
    ModelShape s = shape_of(K_("rnn"), 3, K_("rnn"), 4, 2, 1, ATTENTION_NONE);
    check_gradients(&s, "rnn 2x4 bidirectional -> rnn 3, hand-over only");
}
END_TEST

/* every kind in a bidirectional encoder and in the decoder */
START_TEST(gradients_every_kind) {
    for (int i = 0; layer_kinds[i]; i++) {
        ModelShape s = shape_of(layer_kinds[i], 4, layer_kinds[i], 3, 1, 1, ATTENTION_GENERAL);
        char what[96];
        snprintf(what, sizeof what, "%s bidirectional -> %s, general", layer_kinds[i]->name,
                 layer_kinds[i]->name);
        check_gradients(&s, what);
    }
}
END_TEST

/* Dropout after every encoder and decoder layer: with the masks fixed by their keys the
 * loss is smooth in the weights; and it does change the loss. */
START_TEST(gradients_with_dropout) {
    ModelShape s = shape_of(K_("lstm"), 4, K_("gru"), 3, 2, 1, ATTENTION_GENERAL);
    Case c;
    case_init(&c, &s, B, 3);
    double plain = loss_at(&c);
    case_free(&c);
    case_drop.p = 0.3f;
    case_init(&c, &s, B, 3);
    double dropped = loss_at(&c);
    ck_assert_msg(dropped != plain, "dropout changed nothing");
    case_free(&c);
    check_gradients(&s, "dropout 0.3: gru 2x3 bidirectional -> lstm 4, general");
    case_drop.p = 0.0f;
}
END_TEST

/* Source tokens past a sequence's length are padding: changing them changes nothing. */
START_TEST(padding_is_ignored) {
    ModelShape s = shape_of(K_("lstm"), 4, K_("gru"), 3, 2, 1, ATTENTION_GENERAL);
    Case c;
    case_init(&c, &s, B, 11);
    double a = loss_at(&c);
    for (int t = 0; t < S; t++)
        for (int b = 0; b < B; b++)
            if (t >= src_len[b]) c.src[t * B + b] = (c.src[t * B + b] + 1) % VS;
    double b2 = loss_at(&c);
    ck_assert_msg(a == b2, "padding changed the loss: %.17g vs %.17g", a, b2);
    c.src[0 * B + 2] = (c.src[0 * B + 2] + 1) % VS; /* a real step does */
    ck_assert(loss_at(&c) != a);
    case_free(&c);
}
END_TEST

/* A batch of the case's sources for the decoders. */
static Batch source_batch(Case *c, uint8_t *reset) {
    Batch b;
    memset(&b, 0, sizeof b);
    b.B = b.count = B;
    b.T = b.chunk_T = T;
    b.reset = reset;
    b.src = c->src;
    b.src_len = src_len;
    b.S = S;
    return b;
}

/* Teacher-forced log-probability of out (n ids, then </s> unless n == max_len) for row i. */
static double score_output(Case *c, int i, const int32_t *out, int n, int max_len) {
    ModelState st;
    Model *m = &c->m;
    model_state_init(&st, m, B);
    int32_t in[T * B], tgt[T * B];
    for (int k = 0; k < T * B; k++) {
        in[k] = DECODE_BOS;
        tgt[k] = -1;
    }
    for (int t = 0; t <= n && t < max_len; t++) {
        in[t * B + i] = t == 0 ? DECODE_BOS : out[t - 1];
        tgt[t * B + i] = t < n ? out[t] : DECODE_EOS;
    }
    model_encode(m, &st, c->src, src_len, S);
    model_forward(m, &st, in, T);
    double nll = model_loss(m, tgt, T, 1.0f, 0);
    model_state_free(&st);
    return -nll;
}

START_TEST(beam_and_greedy) {
    for (int i = 0; layer_kinds[i]; i++) {
        ModelShape s = shape_of(layer_kinds[i], 4, K_("lstm"), 3, 1, 1, ATTENTION_GENERAL);
        Case c;
        case_init(&c, &s, B, 21 + (uint64_t)i);
        /* a likelier </s> so that outputs end before max_len */
        params_value(&c.m.params, c.m.head_w >= 0 && c.m.head_b >= 0 ? c.m.head_b : 0)[0] += 2.5f;
        uint8_t reset[B] = {1, 1, 1};
        Batch b = source_batch(&c, reset);
        const int L = T;
        int32_t g_out[B * T], g_len[B];
        double g_lp[B];
        decode_greedy(&c.m, &c.st, &b, L, g_out, g_len, g_lp);
        Model mk;
        ModelState stk;
        int ended = 0, better = 0;
        for (int K = 1; K <= 4; K += 3) {
            model_init_shared(&mk, &c.m, K, T);
            model_state_init(&stk, &mk, K);
            for (int r = 0; r < B; r++) {
                int32_t out[T];
                double score, lp;
                int n = decode_beam(&mk, &stk, &b, r, 0.0, L, out, &score, &lp);
                double forced = score_output(&c, r, out, n, L);
                ck_assert_msg(fabs(forced - lp) < 1e-4 * (1 + fabs(lp)),
                              "%s beam %d row %d: decoding says logp %.7g, teacher forcing %.7g",
                              layer_kinds[i]->name, K, r, lp, forced);
                if (K == 1) {
                    ck_assert_int_eq(n, g_len[r]);
                    ck_assert(memcmp(out, g_out + r * L, (size_t)n * sizeof *out) == 0);
                    /* the same tokens; the log-probability to float rounding only: greedy
                     * runs the B rows as one batch, beam 1 one row, and OpenBLAS may pick
                     * another kernel (another summation order) for another row count (it
                     * did on Intel Emerald Rapids, not on AMD Zen 4) */
                    ck_assert_msg(fabs(lp - g_lp[r]) <= 1e-6 * fabs(g_lp[r]),
                                  "beam 1 logp %.17g, greedy %.17g", lp, g_lp[r]);
                    ended += n < L;
                } else {
                    ck_assert_msg(lp >= g_lp[r] - 1e-6, "%s beam %d row %d: logp %.7g < greedy "
                                  "%.7g", layer_kinds[i]->name, K, r, lp, g_lp[r]);
                    better += lp > g_lp[r] + 1e-6;
                }
            }
            model_state_free(&stk);
            model_free(&mk);
        }
        printf("decode %s: %d of %d greedy outputs ended with </s>, beam 4 more probable on "
               "%d\n", layer_kinds[i]->name, ended, B, better);
        case_free(&c);
    }
}
END_TEST

static Suite *seq2seq_suite(void) {
    Suite *s = suite_create("seq2seq");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, gradients_lstm_bidirectional_general);
    tcase_add_test(tc, gradients_gru_dot);
    tcase_add_test(tc, gradients_no_attention);
    tcase_add_test(tc, gradients_every_kind);
    tcase_add_test(tc, gradients_with_dropout);
    tcase_add_test(tc, padding_is_ignored);
    tcase_add_test(tc, beam_and_greedy);
    tcase_set_timeout(tc, 240);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(seq2seq_suite)
