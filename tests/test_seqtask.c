/* Sequence tasks end to end:
 * - many-to-one: the classification loss equals cross-entropy taken only at each sequence's
 *   own last valid step (computed here from the logits by hand);
 * - bad input: NaN/Inf features, lengths > T or < 1, labels out of range, shape mismatches,
 *   an empty CSV, a CSV with the wrong number of columns: a clear error and exit status 3;
 * - a tagging dataset trains, and 1 vs 2 ranks give the same losses (within 1e-5);
 * - the digits, generation and forecasting examples train and evaluate from the CLI;
 * - a forecasting model with one output (--horizon 1) loads again: eval, predict and
 *   train --init-from on its model.h5. */
#include <string.h>
#include <sys/wait.h>

#include "model.h"
#include "seq.h"
#include "testutil.h"
#include "test_seqfile.h"

static char dir[256];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/rnntrain-test-seq-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}


START_TEST(many_to_one_is_loss_at_last_valid_step) {
    char path[512];
    snprintf(path, sizeof path, "%s/m2o.h5", dir);
    Spec sp = {.N = 12, .T = 7, .D = 3, .K = 2};
    write_seq_file(path, &sp);
    SeqFile sf;
    seq_open(&sf, path);
    enum { B = 6 };
    ModelShape s = {.E = 3, .V = 2, .float_inputs = 1};
    model_shape_uniform(&s, layer_kind_by_name("gru"), 2, 5);
    Model m;
    model_init(&m, s, B, sf.T);
    ModelState st;
    model_state_init(&st, &m, B);
    model_init_weights(&m, INIT_UNIFORM, 0.5f, 1003);
    SeqBatch b;
    seq_batch_init(&b, &sf, B);
    int64_t idx[B] = {0, 2, 3, 7, 9, 11};
    seq_read(&sf, 0, idx, B, &b);
    model_forward_features(&m, &st, b.x, sf.T);
    double by_hand = 0.0;
    int32_t labels[12];
    uint64_t d[1] = {12};
    int32_t lens[12];
    h5_read_i32(sf.file, "train/labels", labels, 1, d, path);
    h5_read_i32(sf.file, "train/lengths", lens, 1, d, path);
    for (int i = 0; i < B; i++) {
        ck_assert_int_eq(b.len[i], lens[idx[i]]);
        const float *z = m.logits + ((size_t)(lens[idx[i]] - 1) * B + i) * 2;
        double mx = fmax(z[0], z[1]);
        double lse = mx + log(exp(z[0] - mx) + exp(z[1] - mx));
        by_hand += lse - z[labels[idx[i]]];
    }
    double loss = model_loss(&m, b.labels, sf.T, 0.0f, 0);
    ck_assert_msg(fabs(loss - by_hand) < 1e-9 * fabs(by_hand), "%.12g vs %.12g", loss, by_hand);
    ck_assert_int_eq((int)seq_batch_terms(&sf, &b), B);
    seq_batch_free(&b);
    model_state_free(&st);
    model_free(&m);
    seq_close(&sf);
}
END_TEST

static void expect_bad(const Spec *sp, const char *name, const char *needle) {
    char path[512], cmd[2048], out[4096];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    write_seq_file(path, sp);
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s/o-%s --batch 4 --hidden 8 --steps 2",
             RNNTRAIN_BIN, path, dir, name);
    int rc = test_capture(cmd, out, sizeof out);
    ck_assert_msg(rc == 3, "%s: exit %d: %.500s", name, rc, out);
    ck_assert_msg(strstr(out, path) && strstr(out, needle), "%s: %.500s", name, out);
}

START_TEST(bad_sequence_files) {
    Spec base = {.N = 10, .T = 5, .D = 2, .K = 2};
    Spec s = base;
    s.nan_at = NAN;
    expect_bad(&s, "nan", "NaN");
    s = base;
    s.nan_at = INFINITY;
    expect_bad(&s, "inf", "Inf");
    s = base;
    s.bad_length = 6;
    expect_bad(&s, "long", "lengths[1] is 6, expected 1..5");
    s = base;
    s.bad_length = -1;
    expect_bad(&s, "short", "lengths[1] is -1");
    s = base;
    s.bad_label = 2;
    expect_bad(&s, "label", "out of range [0, 2)");
    s = base;
    s.tag = 1;
    s.wrong_shape = 1;
    expect_bad(&s, "shape", "should have shape (10,5)");
}
END_TEST

START_TEST(bad_csv) {
    char path[512], cmd[2048], out[4096];
    snprintf(path, sizeof path, "%s/empty.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("a,b,c\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s prepare --csv %s --task classify --steps 1 --features 2 "
             "--output %s/x.h5", RNNTRAIN_BIN, path, dir);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 3);
    ck_assert_msg(strstr(out, path) && strstr(out, "no data rows"), "%.500s", out);
    snprintf(path, sizeof path, "%s/cols.csv", dir);
    f = fopen(path, "w");
    fputs("1,2,0\n3,4,1\n5,6\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s prepare --csv %s --task classify --steps 1 --features 2 "
             "--output %s/x.h5", RNNTRAIN_BIN, path, dir);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 3);
    ck_assert_msg(strstr(out, "line 3 has 2 columns, expected 3"), "%.500s", out);
    snprintf(path, sizeof path, "%s/nan.csv", dir);
    f = fopen(path, "w");
    fputs("1,2,0\nnan,4,1\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s prepare --csv %s --task classify --steps 1 --features 2 "
             "--output %s/x.h5", RNNTRAIN_BIN, path, dir);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 3);
    ck_assert_msg(strstr(out, "line 2 column 1 is NaN"), "%.500s", out);
    snprintf(cmd, sizeof cmd, "%s prepare --csv %s/datasets/digits.csv --task classify --steps 8 "
             "--features 7 --output %s/x.h5", RNNTRAIN_BIN, SOURCE_DIR, dir);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 3);
    ck_assert_msg(strstr(out, "65 columns") && strstr(out, "needs 57"), "%.500s", out);
}
END_TEST

/* Mean train loss per step from a metrics file. */
static int read_losses(const char *path, double *loss, int max) {
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int k = 0;
    while (fgets(line, sizeof line, f) && k < max) {
        char *p = strstr(line, "\"loss\": ");
        if (strstr(line, "\"train\"") && p) loss[k++] = atof(p + 8);
    }
    fclose(f);
    return k;
}

START_TEST(tagging_trains_same_on_1_and_2_ranks) {
    char path[512], cmd[4096];
    snprintf(path, sizeof path, "%s/tag.h5", dir);
    Spec sp = {.N = 64, .T = 6, .D = 3, .K = 2, .tag = 1};
    write_seq_file(path, &sp);
    double l1[20], l2[20];
    for (int n = 1; n <= 2; n++) {
        snprintf(cmd, sizeof cmd,
                 "timeout -k 10 120 %s -np %d %s train --data %s --out %s/tag%d --model lstm "
                 "--hidden 16 --batch 8 --eval-batch 8 --steps 20 --print-every 1 --lr 3e-2 "
                 "--ckpt-minutes 0 > %s/tag%d.log 2>&1",
                 MPIEXEC, n, RNNTRAIN_BIN, path, dir, n, dir, n);
        if (test_status(cmd) != 0) {
            char log[512], out[4096];
            snprintf(log, sizeof log, "tail -c 3000 %s/tag%d.log", dir, n);
            test_capture(log, out, sizeof out);
            ck_abort_msg("tagging on %d ranks failed:\n%s", n, out);
        }
        snprintf(cmd, sizeof cmd, "%s/tag%d/metrics.jsonl", dir, n);
        ck_assert_int_eq(read_losses(cmd, n == 1 ? l1 : l2, 20), 20);
    }
    for (int i = 0; i < 20; i++)
        ck_assert_msg(fabs(l1[i] - l2[i]) <= 1e-5 * l1[i], "step %d: %.9g vs %.9g", i + 1, l1[i],
                      l2[i]);
    ck_assert_msg(l1[19] < l1[0] - 0.2, "tagging did not learn: %.4f -> %.4f", l1[0], l1[19]);
}
END_TEST

START_TEST(examples_train_and_evaluate) {
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd,
             "cd %s && %s prepare --csv %s/datasets/digits.csv --task classify --steps 8 "
             "--features 8 --split 0.7,0.1,0.2 --output digits.h5 >/dev/null && %s train --data "
             "digits.h5 --out dg --hidden 48 --layers 1 --batch 32 --steps 150 --lr 5e-3 "
             "--ckpt-minutes 0 >/dev/null 2>&1 && %s eval --model dg --data digits.h5 --split "
             "test --json",
             dir, RNNTRAIN_BIN, SOURCE_DIR, RNNTRAIN_BIN, RNNTRAIN_BIN);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 0);
    char *p = strstr(out, "\"accuracy\": ");
    ck_assert_msg(p && atof(p + 12) > 0.8, "digits: %.500s", out);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s prepare --csv %s/datasets/digits.csv --task generate --steps 8 "
             "--features 8 --split 0.7,0.1,0.2 --output gen.h5 >/dev/null && %s train --data "
             "gen.h5 --out gn --model gru --hidden 32 --layers 1 --batch 32 --steps 150 --lr 5e-3 "
             "--ckpt-minutes 0 >/dev/null 2>&1 && %s eval --model gn --data gen.h5 --json && "
             "%s predict --model gn --data gen.h5 --output gen.csv > /dev/null && wc -l < gen.csv",
             dir, RNNTRAIN_BIN, SOURCE_DIR, RNNTRAIN_BIN, RNNTRAIN_BIN, RNNTRAIN_BIN);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 0);
    p = strstr(out, "\"centroid_accuracy\": ");
    ck_assert_msg(p && atof(p + 21) > 0.5, "generation is not class-conditional: %.500s", out);
    ck_assert_msg(strstr(out, "\n361\n") || strstr(out, "361"), "predict rows: %.500s", out);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s prepare --csv %s/datasets/sunspots.csv --task regress --column value "
             "--window 24 --horizon 3 --output sun.h5 >/dev/null && %s train --data sun.h5 --out "
             "sn --hidden 16 --layers 1 --batch 32 --steps 100 --lr 5e-3 --ckpt-minutes 0 "
             ">/dev/null 2>&1 && %s eval --model sn --data sun.h5 --split test --json",
             dir, RNNTRAIN_BIN, SOURCE_DIR, RNNTRAIN_BIN, RNNTRAIN_BIN);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"rmse\": [") && strstr(out, "\"rmse_persistence\": ["), "%.500s", out);
    /* a model that does not fit the data is refused */
    snprintf(cmd, sizeof cmd, "cd %s && %s eval --model dg --data sun.h5", dir, RNNTRAIN_BIN);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 3);
    ck_assert_msg(strstr(out, "does not fit"), "%.500s", out);
}
END_TEST

/* --horizon 1: the model's head has a single output (vocab_size = 1), which a model file of
 * a sequence task may have; eval, predict and --init-from used to refuse it as a bad shape */
START_TEST(one_output_regression_model_loads) {
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd,
             "cd %s && %s prepare --csv %s/datasets/sunspots.csv --task regress --column value "
             "--window 48 --horizon 1 --output sun1.h5 >/dev/null && %s train --data sun1.h5 "
             "--out h1 --hidden 8 --layers 1 --batch 16 --steps 5 --ckpt-minutes 0 >/dev/null "
             "2>&1 && %s eval --model h1/model.h5 --data sun1.h5 --split test",
             dir, RNNTRAIN_BIN, SOURCE_DIR, RNNTRAIN_BIN, RNNTRAIN_BIN);
    ck_assert_msg(test_capture(cmd, out, sizeof out) == 0, "eval: %.1000s", out);
    ck_assert_msg(strstr(out, "RMSE") && strstr(out, "\n  1 "), "eval: no RMSE line for "
                  "horizon 1: %.1000s", out);
    snprintf(cmd, sizeof cmd, "cd %s && %s predict --model h1/model.h5 --data sun1.h5 --split "
             "test --output h1.csv", dir, RNNTRAIN_BIN);
    ck_assert_msg(test_capture(cmd, out, sizeof out) == 0, "predict: %.1000s", out);
    snprintf(cmd, sizeof cmd, "head -n 1 %s/h1.csv", dir);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 0);
    const char *comma = strchr(out, ',');
    ck_assert_msg(strncmp(out, "0,", 2) == 0 && comma && strchr(comma + 1, ',') &&
                  !strchr(strchr(comma + 1, ',') + 1, ','),
                  "predict: first row is not 0,predicted,actual: %.200s", out);
    /* a vanishing lr: the warm-started model equals the file it started from */
    snprintf(cmd, sizeof cmd, "cd %s && %s train --data sun1.h5 --out h1warm --hidden 8 "
             "--layers 1 --batch 16 --steps 1 --lr 1e-300 --ckpt-minutes 0 --init-from "
             "h1/model.h5", dir, RNNTRAIN_BIN);
    ck_assert_msg(test_capture(cmd, out, sizeof out) == 0, "--init-from: %.1000s", out);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/h1/model.h5", dir);
    snprintf(b, sizeof b, "%s/h1warm/model.h5", dir);
    size_t na, nb;
    float *wa = test_model_params(a, &na), *wb = test_model_params(b, &nb);
    ck_assert(na == nb && na > 0);
    ck_assert_msg(memcmp(wa, wb, na * sizeof(float)) == 0,
                  "--init-from did not start from the file's weights");
    free(wa);
    free(wb);
}
END_TEST

static Suite *seqtask_suite(void) {
    Suite *s = suite_create("seqtask");
    TCase *tc = tcase_create("seqtask");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, many_to_one_is_loss_at_last_valid_step);
    tcase_add_test(tc, bad_sequence_files);
    tcase_add_test(tc, bad_csv);
    tcase_add_test(tc, tagging_trains_same_on_1_and_2_ranks);
    tcase_add_test(tc, examples_train_and_evaluate);
    tcase_add_test(tc, one_output_regression_model_loads);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(seqtask_suite)
