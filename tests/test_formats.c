/* Model files and checkpoints, format version 2 (layer stack and named state tensors) and
 * version 1 (every file written before it):
 *   - a version-1 model file (tests/fixtures/v1, written by rnntrain at bc1f3ff) evaluates
 *     to the nats that binary printed for it;
 *   - a version-1 checkpoint resumes to bitwise the parameters that binary reached without
 *     the interruption (on an AVX-512 CPU as the fixture's; within 1e-6 on others);
 *   - a stack of different kinds and widths trains, checkpoints, resumes on another rank
 *     count (bitwise, --deterministic), evaluates, samples and is described by info;
 *   - a sequence-task checkpoint serves as --init-from (it has the whole model header);
 *   - a version from the future is refused with a message naming the version.
 * The fixtures were made with the bc1f3ff binary (scripts/compare-bitwise.sh builds one):
 *   head -c 3000 datasets/moby-dick.txt > t.txt
 *   rnntrain prepare --input t.txt --output data.h5 --split 0.8,0.1,0.1
 *   rnntrain train --data data.h5 --out run --model lstm --layers 2 --hidden 8 --embed 6 \
 *       --batch 4 --bptt 8 --steps 6 --ckpt-every 3 --keep 0 --ckpt-minutes 0
 *   rnntrain eval --model run --data data.h5 --split valid --batch 2 --json  (5.50530541)
 * keeping run/model.h5 and run/checkpoints/ckpt-0000000003.h5. */
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

static char dir[256];

static void run_ok(const char *cmd, char *out, size_t size) {
    int rc = test_capture(cmd, out, size);
    ck_assert_msg(rc == 0, "'%s': exit %d:\n%s", cmd, rc, out);
}

static void same_params(const char *a, const char *b) {
    size_t na, nb;
    float *pa = test_model_params(a, &na), *pb = test_model_params(b, &nb);
    ck_assert_msg(na == nb && na > 0, "%s and %s hold %zu and %zu parameters", a, b, na, nb);
    ck_assert_msg(memcmp(pa, pb, na * sizeof(float)) == 0, "%s and %s differ", a, b);
    free(pa);
    free(pb);
}

/* The fixture's parameters against a resume of its checkpoint on this machine: bitwise on
 * a CPU like the fixture's (test_cpu_as_fixtures); elsewhere within 1e-6 of the largest
 * parameter, float rounding of the same 3 updates (measured on Zen 3: 3e-8), while a
 * checkpoint read wrongly (moments, data position, states) moves the parameters by ~lr =
 * 2e-3. A NaN fails either way. */
static void fixture_params(const char *a, const char *b) {
    if (test_cpu_as_fixtures()) {
        same_params(a, b);
        return;
    }
    size_t na, nb;
    float *pa = test_model_params(a, &na), *pb = test_model_params(b, &nb);
    ck_assert_msg(na == nb && na > 0, "%s and %s hold %zu and %zu parameters", a, b, na, nb);
    double worst = max_rel_err(pa, pb, na, 1.0);
    printf("version-1 resume on a CPU without AVX-512: %s within %.3g of the fixture\n", a,
           worst);
    ck_assert_msg(worst <= 1e-6, "%s and %s differ by up to %g (> 1e-6)", a, b, worst);
    free(pa);
    free(pb);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/rnntrain-test-formats-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(test_status(cmd), 0);
}

START_TEST(version1_model_evaluates) {
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "%s eval --model %s/v1/model.h5 --data %s/v1/data.h5 --split valid "
             "--batch 2 --json", RNNTRAIN_BIN, FIXTURE_DIR, FIXTURE_DIR);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "\"nats\": 5.50530541") && strstr(out, "\"tokens\": 298"),
                  "eval of the version-1 model changed:\n%s", out);
}
END_TEST

START_TEST(version1_checkpoint_resumes_exactly) {
    char cmd[4096], out[8192], path[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/run/checkpoints && cp %s/v1/ckpt-0000000003.h5 "
             "%s/run/checkpoints/", dir, FIXTURE_DIR, dir);
    ck_assert_int_eq(test_status(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s info %s/run/checkpoints/ckpt-0000000003.h5", RNNTRAIN_BIN, dir);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "version 1") && strstr(out, "all verified"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s train --data %s/v1/data.h5 --out %s/run --model lstm --layers 2 "
             "--hidden 8 --embed 6 --batch 4 --bptt 8 --steps 6 --ckpt-every 3 --keep 0 "
             "--ckpt-minutes 0 --resume auto", RNNTRAIN_BIN, FIXTURE_DIR, dir);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "resumed from"), "%s", out);
    snprintf(path, sizeof path, "%s/run/model.h5", dir);
    char ref[512];
    snprintf(ref, sizeof ref, "%s/v1/model.h5", FIXTURE_DIR);
    fixture_params(path, ref);
    /* the checkpoint it wrote is version 2 */
    snprintf(cmd, sizeof cmd, "%s info %s/run/checkpoints/ckpt-0000000006.h5", RNNTRAIN_BIN, dir);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "version 2") && strstr(out, "lstm:8,lstm:8") &&
                  strstr(out, "all verified"), "%s", out);
}
END_TEST

START_TEST(mixed_stack_round_trip) {
    char cmd[4096], out[8192], a[512], b[512];
    const char *common = "--layers lstm:8,gru:6,rnn:5 --embed 6 --batch 4 --bptt 8 --steps 6 "
                         "--ckpt-every 3 --keep 0 --ckpt-minutes 0 --deterministic --micro-batch 2";
    snprintf(cmd, sizeof cmd, "%s train --data %s/v1/data.h5 --out %s/whole %s", RNNTRAIN_BIN,
             FIXTURE_DIR, dir, common);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "lstm:8,gru:6,rnn:5 embed 6"), "banner:\n%s", out);
    /* interrupted at step 3, resumed on 2 ranks */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/resumed/checkpoints && cp %s/whole/checkpoints/"
             "ckpt-0000000003.h5 %s/resumed/checkpoints/", dir, dir, dir);
    ck_assert_int_eq(test_status(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s -np 2 %s train --data %s/v1/data.h5 --out %s/resumed %s "
             "--resume auto", MPIEXEC, RNNTRAIN_BIN, FIXTURE_DIR, dir, common);
    run_ok(cmd, out, sizeof out);
    snprintf(a, sizeof a, "%s/whole/model.h5", dir);
    snprintf(b, sizeof b, "%s/resumed/model.h5", dir);
    same_params(a, b);
    snprintf(cmd, sizeof cmd, "%s info %s", RNNTRAIN_BIN, a);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "lstm:8,gru:6,rnn:5") && strstr(out, "version 2"), "%s", out);
    /* every layer's own state tensors in the checkpoint */
    snprintf(cmd, sizeof cmd, "h5ls -r %s/whole/checkpoints/ckpt-0000000006.h5 | grep state/",
             dir);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "/state/l0/c") && strstr(out, "/state/l1/h") &&
                  strstr(out, "/state/l2/h") && !strstr(out, "/state/l1/c"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s/whole --data %s/v1/data.h5 --batch 2",
             RNNTRAIN_BIN, dir, FIXTURE_DIR);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "nats/token"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s sample --model %s/whole --prime Call --length 20",
             RNNTRAIN_BIN, dir);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strncmp(out, "Call", 4) == 0 && strlen(out) >= 24, "%s", out);
    /* the mixed stack's parameter names: one PyTorch module per layer */
    snprintf(cmd, sizeof cmd, "h5ls %s/params | grep -c 'layers\\.[012]\\.weight_hh_l0'", a);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(atoi(out) == 3, "%s", out);
    /* a stack that does not fit the checkpoint is refused with both stacks named */
    snprintf(cmd, sizeof cmd, "%s train --data %s/v1/data.h5 --out %s/resumed --layers "
             "lstm:8,gru:6 --embed 6 --batch 4 --bptt 8 --steps 9 --resume auto", RNNTRAIN_BIN,
             FIXTURE_DIR, dir);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "lstm:8,gru:6,rnn:5") && strstr(out, "configures lstm:8,gru:6,"),
                  "%s", out);
}
END_TEST

START_TEST(sequence_checkpoint_as_init_from) {
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd, "%s prepare --csv %s/datasets/digits.csv --task classify --steps 8 "
             "--features 8 --output %s/digits.h5 && %s train --data %s/digits.h5 --out %s/d "
             "--model gru --layers 1 --hidden 8 --batch 8 --steps 2 --ckpt-minutes 0",
             RNNTRAIN_BIN, SOURCE_DIR, dir, RNNTRAIN_BIN, dir, dir);
    run_ok(cmd, out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s train --data %s/digits.h5 --out %s/d2 --model gru --layers 1 "
             "--hidden 8 --batch 8 --steps 1 --ckpt-minutes 0 --init-from "
             "%s/d/checkpoints/ckpt-0000000002.h5", RNNTRAIN_BIN, dir, dir, dir);
    run_ok(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "initial weights from"), "%s", out);
}
END_TEST

START_TEST(future_version_refused) {
    char path[512], cmd[2048], out[8192];
    snprintf(path, sizeof path, "%s/future.h5", dir);
    snprintf(cmd, sizeof cmd, "cp %s/v1/model.h5 %s", FIXTURE_DIR, path);
    ck_assert_int_eq(test_status(cmd), 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    H5Adelete(f, "version");
    h5_write_attr_int(f, "version", 3, path);
    H5Fclose(f);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s/v1/data.h5", RNNTRAIN_BIN, path,
             FIXTURE_DIR);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 3);
    ck_assert_msg(strstr(out, path) && strstr(out, "format version 3") &&
                  strstr(out, "versions 1 to 2"), "%s", out);
}
END_TEST

/* A damaged layer stack in a model file: a clear error naming the file and the attribute. */
START_TEST(bad_stack_refused) {
    static const char *const stacks[][2] = {{"lstm:8,conv:4", "unknown kind 'conv'"},
                                            {"lstm:8", "'layers' is 2 but 'stack' lists 1"}};
    for (int i = 0; i < 2; i++) {
        char path[512], cmd[2048], out[8192];
        snprintf(path, sizeof path, "%s/stack%d", dir, i);
        snprintf(cmd, sizeof cmd, "mkdir -p %s && %s train --data %s/v1/data.h5 --out %s "
                 "--layers lstm:8,gru:6 --embed 6 --batch 4 --bptt 8 --steps 1 --ckpt-minutes 0",
                 path, RNNTRAIN_BIN, FIXTURE_DIR, path);
        run_ok(cmd, out, sizeof out);
        strncat(path, "/model.h5", sizeof path - strlen(path) - 1);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        ck_assert(f >= 0);
        H5Adelete(f, "stack");
        h5_write_attr_str(f, "stack", stacks[i][0], path);
        H5Fclose(f);
        snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s/v1/data.h5", RNNTRAIN_BIN, path,
                 FIXTURE_DIR);
        ck_assert_int_eq(test_capture(cmd, out, sizeof out), 3);
        ck_assert_msg(strstr(out, path) && strstr(out, "'stack'") && strstr(out, stacks[i][1]),
                      "%s", out);
    }
}
END_TEST

static Suite *formats_suite(void) {
    Suite *s = suite_create("formats");
    TCase *tc = tcase_create("formats");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, version1_model_evaluates);
    tcase_add_test(tc, version1_checkpoint_resumes_exactly);
    tcase_add_test(tc, mixed_stack_round_trip);
    tcase_add_test(tc, sequence_checkpoint_as_init_from);
    tcase_add_test(tc, future_version_refused);
    tcase_add_test(tc, bad_stack_refused);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(formats_suite)
