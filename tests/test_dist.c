/* Data-parallel training against single-rank training: the same global batch on 1, 2 and
 * 4 ranks (oversubscribed) gives the same loss at every step and the same validation loss
 * (within 1e-5 relative: only the order of the gradient sums differs); parameters stay
 * bitwise identical across ranks (checked by the trainer at every step); with
 * --deterministic the final parameters are bitwise equal on 1, 2 and 4 ranks; a global batch
 * that the ranks cannot share is refused with a clear message. */
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

static char dir[256], data_path[512];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/rnntrain-test-dist-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char cmd[2048];
    snprintf(data_path, sizeof data_path, "%s/moby.h5", dir);
    snprintf(cmd, sizeof cmd,
             "head -c 300000 %s/datasets/moby-dick.txt > %s/moby.txt && %s prepare --input "
             "%s/moby.txt --output %s >/dev/null",
             SOURCE_DIR, dir, RNNTRAIN_BIN, dir, data_path);
    ck_assert_int_eq(test_status(cmd), 0);
}

/* Trains on N ranks; returns per-step losses (steps of them) and the final valid nats.
 * 8 streams x 40 steps = 320 rows per chunk on 1 rank: more than the 256 byte values, so
 * the embedding gradient goes through per-token sums there (model_backward), and through
 * layer 0's dx on 2 and 4 ranks (160 and 80 rows): the comparison covers both paths. */
static double train_on(int N, const char *cell, double *loss, int steps) {
    char cmd[4096], out[600];
    snprintf(out, sizeof out, "%s/%s-np%d", dir, cell, N);
    snprintf(cmd, sizeof cmd,
             "timeout -k 10 240 %s -np %d %s train --data %s --out %s --model %s --layers 2 "
             "--hidden 24 --batch 8 --bptt 40 --steps %d --print-every 1 --eval-batch 8 "
             "--verify-every 1 --lr 3e-3 > %s.log 2>&1",
             MPIEXEC, N, RNNTRAIN_BIN, data_path, out, cell, steps, out);
    ck_assert_msg(test_status(cmd) == 0, "training on %d ranks failed: see %s.log", N, out);
    char path[700], line[1024];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int k = 0;
    double valid = NAN;
    while (fgets(line, sizeof line, f)) {
        char *p;
        if (strstr(line, "\"train\"") && (p = strstr(line, "\"loss\": ")) && k < steps)
            loss[k++] = atof(p + 8);
        if (strstr(line, "\"valid\"") && (p = strstr(line, "\"nats\": "))) valid = atof(p + 8);
    }
    fclose(f);
    ck_assert_int_eq(k, steps);
    return valid;
}

static void compare_ranks(const char *cell) {
    enum { STEPS = 25 };
    double l1[STEPS], l2[STEPS], l4[STEPS];
    double v1 = train_on(1, cell, l1, STEPS);
    double v2 = train_on(2, cell, l2, STEPS);
    double v4 = train_on(4, cell, l4, STEPS);
    for (int s = 0; s < STEPS; s++) {
        ck_assert_msg(fabs(l2[s] - l1[s]) <= 1e-5 * l1[s], "%s step %d: 2 ranks %.9g vs 1 rank %.9g",
                      cell, s + 1, l2[s], l1[s]);
        ck_assert_msg(fabs(l4[s] - l1[s]) <= 1e-5 * l1[s], "%s step %d: 4 ranks %.9g vs 1 rank %.9g",
                      cell, s + 1, l4[s], l1[s]);
    }
    ck_assert_msg(l1[STEPS - 1] < l1[0] - 0.5, "%s: training did not learn (%.4f -> %.4f)", cell,
                  l1[0], l1[STEPS - 1]);
    ck_assert_msg(fabs(v2 - v1) <= 1e-5 * v1 && fabs(v4 - v1) <= 1e-5 * v1,
                  "%s valid: %.9g %.9g %.9g", cell, v1, v2, v4);
}

START_TEST(lstm_1_2_4_ranks) { compare_ranks("lstm"); }
END_TEST
START_TEST(gru_1_2_4_ranks) { compare_ranks("gru"); }
END_TEST

START_TEST(deterministic_is_bitwise_across_ranks) {
    const int ranks[] = {1, 2, 4};
    float *ref = NULL;
    size_t nref = 0;
    for (int i = 0; i < 3; i++) {
        char cmd[4096], name[64];
        snprintf(name, sizeof name, "det-np%d", ranks[i]);
        snprintf(cmd, sizeof cmd,
                 "timeout -k 10 240 %s -np %d %s train --data %s --out %s/%s --model gru "
                 "--layers 2 --hidden 24 --batch 8 --bptt 16 --steps 20 --eval-batch 8 "
                 "--deterministic --micro-batch 2 --ckpt-minutes 0 > %s/%s.log 2>&1",
                 MPIEXEC, ranks[i], RNNTRAIN_BIN, data_path, dir, name, dir, name);
        ck_assert_msg(test_status(cmd) == 0, "deterministic run on %d ranks failed", ranks[i]);
        size_t n;
        char path[700];
        snprintf(path, sizeof path, "%s/%s/model.h5", dir, name);
        float *p = test_model_params(path, &n);
        if (!ref) {
            ref = p;
            nref = n;
            continue;
        }
        ck_assert_uint_eq(n, nref);
        ck_assert_msg(memcmp(p, ref, n * sizeof(float)) == 0,
                      "--deterministic: parameters on %d ranks differ from 1 rank", ranks[i]);
        free(p);
    }
    free(ref);
}
END_TEST

START_TEST(indivisible_batch_is_refused) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "timeout -k 10 60 %s -np 4 %s train --data %s --out %s/bad --batch 6 > %s/bad.log "
             "2>&1; echo $? > %s/bad.rc",
             MPIEXEC, RNNTRAIN_BIN, data_path, dir, dir, dir);
    test_status(cmd);
    char path[600], buf[8192] = {0};
    snprintf(path, sizeof path, "%s/bad.rc", dir);
    FILE *f = fopen(path, "r");
    int rc = -1;
    ck_assert_int_eq(fscanf(f, "%d", &rc), 1);
    fclose(f);
    ck_assert_int_eq(rc, 2);
    snprintf(path, sizeof path, "%s/bad.log", dir);
    f = fopen(path, "r");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    ck_assert_msg(strstr(buf, "--batch") && strstr(buf, "6 streams") && strstr(buf, "4 ranks"),
                  "%s", buf);
}
END_TEST

static Suite *dist_suite(void) {
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("ranks");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, lstm_1_2_4_ranks);
    tcase_add_test(tc, gru_1_2_4_ranks);
    tcase_add_test(tc, deterministic_is_bitwise_across_ranks);
    tcase_add_test(tc, indivisible_batch_is_refused);
    tcase_set_timeout(tc, 600);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(dist_suite)
