/* Shared by the Check suites: an MPI-safe main (no fork: Check's fork mode breaks MPI),
 * failures summed over ranks, and small comparison helpers. */
#ifndef RNNTRAIN_TESTUTIL_H
#define RNNTRAIN_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "dist.h"
#include "h5util.h"
#include "model.h"

/* Tensors of a state of a uniform stack <-> (L,B,H) arrays: s = 0 is h, s = 1 is c. */
static inline void test_state_put(ModelState *st, int s, const float *lbh) {
    for (int k = 0; k < st->L; k++)
        if (s < st->nstates[k])
            memcpy(st->t[k][s], lbh + (size_t)k * st->B * st->width[k][s],
                   (size_t)st->B * st->width[k][s] * sizeof(float));
}
static inline void test_state_get(const ModelState *st, int s, float *lbh) {
    for (int k = 0; k < st->L; k++)
        if (s < st->nstates[k])
            memcpy(lbh + (size_t)k * st->B * st->width[k][s], st->t[k][s],
                   (size_t)st->B * st->width[k][s] * sizeof(float));
}

/* Largest |a-b| / (|b|_max + floor) over n entries: a relative error on the scale of b. */
static inline double max_rel_err(const float *a, const float *b, size_t n, double floor_) {
    double maxdiff = 0.0, scale = floor_;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > maxdiff || isnan(d)) maxdiff = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
    }
    return maxdiff / scale;
}

/* Exit status of a shell command (-1 if it died of a signal). */
/* 1 on an AVX-512 CPU, where every fixture and exact bound of the suite was made: there
 * OpenBLAS runs its SkylakeX/Cooperlake sgemm and rnntrain its AVX-512 clones. On AVX2
 * CPUs (OpenBLAS's Haswell/Zen sgemm) the sums of a product are ordered otherwise, so a
 * result that depends on the rows of a product (a fixture, chunked vs whole) matches to
 * float rounding only. */
static inline int test_cpu_as_fixtures(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

static inline int test_status(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Exit status of a shell command and the start of its stdout+stderr in out. */
static inline int test_capture(const char *cmd, char *out, size_t size) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = 0;
    while (fgetc(p) != EOF) {
    }
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

typedef struct {
    float *values;
    size_t n;
} TestParams;

static inline herr_t test_params_one(hid_t g, const char *name, const H5L_info_t *info,
                                     void *data) {
    (void)info;
    TestParams *tp = data;
    uint64_t d[8];
    int nd = h5_dataset_shape(g, name, d, "model");
    size_t count = 1;
    for (int i = 0; i < nd; i++) count *= d[i];
    tp->values = realloc(tp->values, (tp->n + count) * sizeof(float));
    h5_read_f32(g, name, tp->values + tp->n, nd, d, "model");
    tp->n += count;
    return 0;
}

/* Every dataset of /params of a model or checkpoint file, in name order, concatenated. */
static inline float *test_model_params(const char *path, size_t *n) {
    hid_t f = h5_open_read(path, "model");
    hid_t g = H5Gopen2(f, "params", H5P_DEFAULT);
    TestParams tp = {NULL, 0};
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, test_params_one, &tp);
    H5Gclose(g);
    H5Fclose(f);
    *n = tp.n;
    return tp.values;
}

static inline int test_run(int argc, char **argv, Suite *s) {
    dist_init(&argc, &argv);
    h5_quiet();
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, dist_rank() == 0 ? CK_NORMAL : CK_SILENT);
    int64_t failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    dist_sum_i64(&failed, 1);
    dist_finalize();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#define TEST_MAIN(make_suite)                                                                 \
    int main(int argc, char **argv) { return test_run(argc, argv, make_suite()); }

#endif
