/* The trainer driven in-process (train/trainer.h), and the task pipeline's promises:
 *   - sequences cut into TBPTT chunks: --bptt covering the sequence is full BPTT (bitwise
 *     the run without --bptt); shorter chunks carry the state within a sequence and reset
 *     it between sequences, so the forward (the first step's loss, a validation) is the
 *     same as unchunked, while the gradient is truncated (the parameters after a few steps
 *     differ) and training still learns;
 *   - --deterministic for sequence tasks: 1, 2 and 4 ranks give bitwise the same parameters
 *     (classify; and generate, whose conditioning only trains from a sequence's first
 *     chunk, cut into chunks of 4);
 *   - the skip and rollback of non-finite steps through the callbacks (no environment).
 */
#include <math.h>
#include <string.h>

#include "testutil.h"
#include "test_seqfile.h"
#include "cell.h"
#include "data.h"
#include "trainer.h"

static char dir[256], tag_path[512], classify_path[512];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/rnntrain-test-trainer-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(tag_path, sizeof tag_path, "%s/tag.h5", dir);
    Spec sp = {.N = 48, .T = 12, .D = 3, .K = 2, .tag = 1};
    write_seq_file(tag_path, &sp);
    snprintf(classify_path, sizeof classify_path, "%s/classify.h5", dir);
    sp.tag = 0;
    write_seq_file(classify_path, &sp);
}

static void teardown(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(test_status(cmd), 0);
}

static void config(TrainConfig *c, const char *data, const char *out, int bptt) {
    train_config_defaults(c);
    c->data = (char *)data;
    c->out = (char *)out;
    c->cell = "gru";
    c->layers = "2";
    c->hidden = 8;
    c->batch = 8;
    c->eval_batch = 8;
    c->lr = 1e-2;
    c->steps = 6;
    c->ckpt_minutes = 0;
    c->bptt = bptt;
    c->bptt_given = bptt > 0;
    train_config_finish(c);
}

typedef struct {
    double first_loss, valid0, last_loss;
    float *params;
    size_t n;
} Run;

static Run run(const char *data, const char *name, int bptt) {
    char out[600];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    TrainConfig c;
    config(&c, data, out, bptt);
    Trainer *t = trainer_init(&c, NULL);
    Run r;
    r.valid0 = trainer_evaluate(t).loss;
    for (int i = 0; i < 6; i++) {
        StepResult s = trainer_step(t);
        ck_assert(s.updated);
        if (i == 0) r.first_loss = s.loss;
        r.last_loss = s.loss;
    }
    Params *p = &t->model.params;
    r.n = p->total;
    r.params = malloc(r.n * sizeof(float));
    memcpy(r.params, p->value, r.n * sizeof(float));
    trainer_free(t);
    train_config_free(&c);
    return r;
}

/* data: every step labelled (tag) or one label at the last valid step (classify) */
static void tbptt_case(const char *data, const char *what) {
    char n1[64], n2[64], n3[64];
    snprintf(n1, sizeof n1, "%s-full", what);
    snprintf(n2, sizeof n2, "%s-covering", what);
    snprintf(n3, sizeof n3, "%s-chunked", what);
    Run full = run(data, n1, 0), covering = run(data, n2, 12), chunked = run(data, n3, 4);
    ck_assert(full.n == covering.n && full.n == chunked.n);
    ck_assert_msg(memcmp(full.params, covering.params, full.n * sizeof(float)) == 0,
                  "%s: --bptt 12 over 12-step sequences differs from full BPTT", what);
    /* chunked and whole forward differ only in the rows of each product (4 vs 12 steps):
     * within 1e-9 on a CPU like the fixtures' (test_cpu_as_fixtures), float rounding apart
     * elsewhere (AVX2 sgemm on Zen 3: 3.4e-9 relative); a state not carried or reset at a
     * chunk boundary moves the loss by far more */
    double tol = test_cpu_as_fixtures() ? 1e-9 : 1e-7;
    ck_assert_msg(fabs(chunked.first_loss - full.first_loss) <= tol * full.first_loss,
                  "%s: chunked forward loss %.12g vs %.12g: the state is not carried within a "
                  "sequence", what, chunked.first_loss, full.first_loss);
    ck_assert_msg(fabs(chunked.valid0 - full.valid0) <= tol * full.valid0,
                  "%s: chunked validation %.12g vs %.12g: state carried or reset wrongly", what,
                  chunked.valid0, full.valid0);
    ck_assert_msg(memcmp(full.params, chunked.params, full.n * sizeof(float)) != 0,
                  "%s: chunks of 4 should truncate the gradient", what);
    ck_assert_msg(chunked.last_loss < chunked.first_loss, "%s: chunked TBPTT did not learn: "
                  "%g -> %g", what, chunked.first_loss, chunked.last_loss);
    printf("tbptt over %s sequences: loss %.6f -> %.6f (chunks of 4), %.6f -> %.6f (full)\n",
           what, chunked.first_loss, chunked.last_loss, full.first_loss, full.last_loss);
    free(full.params);
    free(covering.params);
    free(chunked.params);
}

START_TEST(tbptt_over_sequences) {
    tbptt_case(tag_path, "tag");
    tbptt_case(classify_path, "classify");
}
END_TEST

/* Through the binary: --deterministic on 1, 2 and 4 ranks, bitwise. */
static void deterministic_on_ranks(const char *prepare, const char *train, const char *what) {
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd, "%s prepare --csv %s/datasets/digits.csv %s --output %s/%s.h5",
             RNNTRAIN_BIN, SOURCE_DIR, prepare, dir, what);
    ck_assert_msg(test_capture(cmd, out, sizeof out) == 0, "%s", out);
    float *ref = NULL;
    size_t nref = 0;
    for (int np = 1; np <= 4; np *= 2) {
        snprintf(cmd, sizeof cmd, "%s -np %d %s train --data %s/%s.h5 --out %s/%s%d %s "
                 "--deterministic --micro-batch 2 --batch 8 --steps 8 --ckpt-minutes 0", MPIEXEC,
                 np, RNNTRAIN_BIN, dir, what, dir, what, np, train);
        ck_assert_msg(test_capture(cmd, out, sizeof out) == 0, "%d ranks: %s", np, out);
        char path[700];
        snprintf(path, sizeof path, "%s/%s%d/model.h5", dir, what, np);
        size_t n;
        float *p = test_model_params(path, &n);
        if (!ref) {
            ref = p;
            nref = n;
            continue;
        }
        ck_assert_msg(n == nref && memcmp(p, ref, n * sizeof(float)) == 0,
                      "%s: %d ranks differ from 1 rank", what, np);
        free(p);
    }
    free(ref);
}

START_TEST(deterministic_sequence_tasks) {
    deterministic_on_ranks("--task classify --steps 8 --features 8", "--model lstm --layers 1 "
                           "--hidden 16", "classify");
    deterministic_on_ranks("--task generate --steps 8 --features 8", "--model gru --layers 2 "
                           "--hidden 8 --bptt 4", "generate");
}
END_TEST

/* Non-finite losses from the callback: skipped, then a rollback to the last checkpoint. */
typedef struct {
    int64_t from, count;
} Poison;

static void poison(void *ctx, int64_t step, double *loss) {
    Poison *p = ctx;
    if (step >= p->from && p->count > 0) {
        *loss = NAN;
        p->count--;
    }
}

START_TEST(skip_and_rollback_by_callback) {
    char out[600];
    snprintf(out, sizeof out, "%s/poison", dir);
    TrainConfig c;
    config(&c, tag_path, out, 0);
    c.max_bad = 2;
    Poison p = {3, 2};
    TrainerCallbacks cb = {poison, &p};
    Trainer *t = trainer_init(&c, &cb);
    for (int i = 0; i < 2; i++) ck_assert(trainer_step(t).updated);
    trainer_checkpoint(t); /* at step 2 */
    ck_assert(trainer_step(t).updated); /* step 3 */
    StepResult s = trainer_step(t);     /* step 4: poisoned, skipped */
    ck_assert(!s.updated && !s.rolled_back && t->progress.skipped == 1);
    s = trainer_step(t); /* poisoned again: the second in a row rolls back */
    ck_assert(s.rolled_back && t->progress.step == 2 && t->progress.lr_scale == 0.5);
    ck_assert(trainer_step(t).updated);
    trainer_free(t);
    train_config_free(&c);
}
END_TEST

/* Per-stream reset flags: only the flagged streams' state (every tensor) starts afresh. */
START_TEST(per_stream_reset) {
    ModelShape s = {.E = 3, .V = 5};
    model_shape_uniform(&s, &layer_lstm, 2, 4);
    Model m;
    model_init(&m, s, 3, 2);
    ModelState st;
    model_state_init(&st, &m, 3);
    for (size_t i = 0; i < st.floats; i++) st.buf[i] = 1.0f + (float)i;
    uint8_t flags[3] = {1, 0, 1};
    Batch b = {.B = 3, .count = 3, .T = 2, .chunk_T = 2, .reset = flags};
    task_start_state(&m, &st, &b);
    for (int k = 0; k < st.L; k++)
        for (int t = 0; t < st.nstates[k]; t++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < st.width[k][t]; j++) {
                    float v = st.t[k][t][i * st.width[k][t] + j];
                    ck_assert_msg(flags[i] ? v == 0.0f : v != 0.0f, "layer %d tensor %d stream %d",
                                  k, t, i);
                }
    model_state_free(&st);
    model_free(&m);
}
END_TEST

/* --bptt-step K1 < --bptt K2 (language models): the gradient of the update predicting
 * tokens [p, p+K1) is that of their loss after a forward over the K2 tokens before p+K1
 * from the carried state at the window's start, computed here independently: a separate
 * model (the same parameters) runs the stream from its beginning, forward only up to the
 * window's start, then forward and backward over the window. While p+K1 <= K2 the window
 * starts at 0: full BPTT from the stream's start. Checked at several updates, each
 * against the trainer's gradient (after_gradient). */
enum { W_K1 = 8, W_K2 = 40, W_B = 4 };
typedef struct {
    Trainer *t;
    StreamReader sr;
    int checked;
    double worst;
} WindowCheck;

static void check_window(void *ctx, int64_t step, double *loss) {
    (void)loss;
    WindowCheck *w = ctx;
    Trainer *t = w->t;
    Params *p = &t->model.params;
    int64_t pos = step * W_K1, ws = pos + W_K1 - W_K2 > 0 ? pos + W_K1 - W_K2 : 0;
    int len = (int)(pos + W_K1 - ws);
    float *got = malloc(p->total * sizeof(float));
    memcpy(got, p->grad, p->total * sizeof(float));
    /* the stream from its start: ws tokens forward only, then the window */
    Model e;
    model_init_shared(&e, &t->model, W_B, (int)(pos + W_K1));
    ModelState st;
    model_state_init(&st, &e, W_B);
    ck_assert_int_ge(stream_read(&w->sr, 0), (int)(pos + W_K1)); /* (T,B): a prefix of rows */
    if (ws > 0) model_forward(&e, &st, w->sr.inputs, (int)ws);
    int32_t *in = w->sr.inputs + ws * W_B, tg[W_K2 * W_B];
    for (int i = 0; i < len * W_B; i++)
        tg[i] = i < (len - W_K1) * W_B ? -1 : w->sr.targets[ws * W_B + i];
    params_zero_grad(p);
    model_forward(&e, &st, in, len);
    model_loss(&e, tg, len, 1.0f / (W_K1 * W_B), 1);
    model_backward(&e, len, NULL);
    double err = max_rel_err(p->grad, got, p->total, 1e-4);
    printf("--bptt-step %d --bptt %d: update %lld (window [%lld, %lld)): gradient vs the "
           "independent window %.3g\n", W_K1, W_K2, (long long)step, (long long)ws,
           (long long)(pos + W_K1), err);
    ck_assert_msg(err < 1e-5, "update %lld: gradient differs by %g", (long long)step, err);
    w->worst = fmax(w->worst, err);
    w->checked++;
    memcpy(p->grad, got, p->total * sizeof(float));
    free(got);
    model_state_free(&st);
    model_free(&e);
}

START_TEST(windowed_tbptt) {
    char lm[600], out[600], cmd[2048];
    snprintf(lm, sizeof lm, "%s/lm.h5", dir);
    snprintf(cmd, sizeof cmd, "head -c 30000 %s/datasets/moby-dick.txt > %s/lm.txt && %s "
             "prepare --input %s/lm.txt --output %s >/dev/null", SOURCE_DIR, dir, RNNTRAIN_BIN,
             dir, lm);
    ck_assert_int_eq(test_status(cmd), 0);
    snprintf(out, sizeof out, "%s/windowed", dir);
    TrainConfig c;
    train_config_defaults(&c);
    c.data = lm;
    c.out = out;
    c.cell = "lstm";
    c.layers = "2";
    c.hidden = 8;
    c.batch = c.eval_batch = W_B;
    c.optim = "sgd";
    c.lr = 0.5;
    c.ckpt_minutes = 0;
    c.bptt = W_K2;
    c.bptt_step = W_K1;
    train_config_finish(&c);
    WindowCheck w = {0};
    TrainerCallbacks cb = {.after_gradient = check_window, .ctx = &w};
    Trainer *t = trainer_init(&c, &cb);
    w.t = t;
    stream_init(&w.sr, &t->task.tf, "train", W_B, 0, W_B, 16 * W_K1, 1);
    for (int i = 0; i < 12; i++) ck_assert(trainer_step(t).updated);
    ck_assert_int_eq(w.checked, 12);
    ck_assert_int_eq(t->progress.cursor, 12 * W_K1);
    stream_free(&w.sr);
    trainer_free(t);
    train_config_free(&c);
}
END_TEST

static Suite *trainer_suite(void) {
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("trainer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, tbptt_over_sequences);
    tcase_add_test(tc, deterministic_sequence_tasks);
    tcase_add_test(tc, skip_and_rollback_by_callback);
    tcase_add_test(tc, per_stream_reset);
    tcase_add_test(tc, windowed_tbptt);
    tcase_set_timeout(tc, 200);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(trainer_suite)
