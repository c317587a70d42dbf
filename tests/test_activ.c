/* The vectorised sigmoid and tanh against libm (computed in double): relative error below
 * 1e-6 on a dense sweep of [-20, 20] and at extremes (below FLT_MIN: tiny); NaN propagates;
 * saturation is exact. */
#include "activ.h"
#include "testutil.h"

enum { N = 400001 };

START_TEST(matches_libm) {
    float *x = malloc(sizeof(float) * N), *s = malloc(sizeof(float) * N),
          *t = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) x[i] = -20.0f + 40.0f * (float)i / (float)(N - 1);
    x[0] = 1e-30f;
    x[1] = -3e-8f;
    x[2] = 0.0f;
    x[3] = 0.6249999f;
    x[4] = 0.625f;
    x[5] = -100.0f;
    x[6] = 100.0f;
    activ_sigmoid(s, x, N);
    activ_tanh(t, x, N);
    double worst_s = 0.0, worst_t = 0.0;
    for (int i = 0; i < N; i++) {
        double rs = 1.0 / (1.0 + exp(-(double)x[i])), rt = tanh((double)x[i]);
        /* results below FLT_MIN (sigmoid(x < -87)) are only required to be tiny */
        double es = rs < 1.2e-38 ? (s[i] < 2e-38 ? 0.0 : 1.0) : fabs(s[i] - rs) / rs;
        double et = fabs(t[i] - rt) / fmax(fabs(rt), 1e-37);
        worst_s = fmax(worst_s, es);
        worst_t = fmax(worst_t, et);
        ck_assert_msg(es < 1e-6, "sigmoid(%.9g) = %.9g, libm %.9g", x[i], s[i], rs);
        ck_assert_msg(et < 1e-6, "tanh(%.9g) = %.9g, libm %.9g", x[i], t[i], rt);
    }
    printf("activ: worst relative error sigmoid %.3g tanh %.3g\n", worst_s, worst_t);
    free(x);
    free(s);
    free(t);
}
END_TEST

START_TEST(special_values) {
    float x[4] = {NAN, INFINITY, -INFINITY, -0.0f}, y[4];
    activ_sigmoid(y, x, 4);
    ck_assert(isnan(y[0]));
    ck_assert_float_eq(y[1], 1.0f);
    ck_assert(y[2] >= 0.0f && y[2] < 1e-37f);
    activ_tanh(y, x, 4);
    ck_assert(isnan(y[0]));
    ck_assert_float_eq(y[1], 1.0f);
    ck_assert_float_eq(y[2], -1.0f);
    ck_assert_float_eq(y[3], 0.0f);
}
END_TEST

static Suite *activ_suite(void) {
    Suite *s = suite_create("activ");
    TCase *tc = tcase_create("libm");
    tcase_add_test(tc, matches_libm);
    tcase_add_test(tc, special_values);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(activ_suite)
