/* Shared by the Check suites: an MPI-safe main (no fork: Check's fork mode breaks MPI),
 * failures summed over ranks, and small comparison helpers. */
#ifndef RNNTRAIN_TESTUTIL_H
#define RNNTRAIN_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dist.h"
#include "h5util.h"

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
