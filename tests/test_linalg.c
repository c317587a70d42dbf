/* The BLAS wrappers and the packed recurrent kernel against naive double-precision loops,
 * for shapes with remainders in every dimension (rows not a multiple of 8, columns not a
 * multiple of the 32-wide panel, beta 0 and 1). */
#include <string.h>

#include "linalg.h"
#include "rng.h"
#include "testutil.h"

static void fill(float *x, size_t n, Rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(rng_uniform(r) - 0.5);
}

START_TEST(packed_matches_reference) {
    Rng r;
    rng_seed(&r, 3);
    const int Ms[] = {1, 7, 8, 9, 32}, Ns[] = {6, 32, 33, 70}, Ks[] = {5, 64, 130};
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 3; c++)
                for (int nk = 0; nk < 2; nk++)
                    for (int beta = 0; beta < 2; beta++) {
                        int M = Ms[a], N = Ns[b], K = Ks[c];
                        float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
                        float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
                        float *panels = aligned_alloc(64, sizeof(float) * la_packed_floats(N, K));
                        fill(A, (size_t)M * K, &r);
                        fill(W, (size_t)N * K, &r);
                        fill(C, (size_t)M * N, &r);
                        memcpy(R, C, sizeof(float) * M * N);
                        LaPacked p;
                        if (nk)
                            la_pack_nt(&p, panels, W, N, K); /* W is (N,K), used as W^T */
                        else
                            la_pack_nn(&p, panels, W, K, N); /* W is (K,N) */
                        la_matmul_packed(C, A, &p, M, (float)beta);
                        la_ref_matmul(R, A, W, M, N, K, (float)beta, 0, nk);
                        double e = max_rel_err(C, R, (size_t)M * N, 1.0);
                        ck_assert_msg(e < 1e-5, "M=%d N=%d K=%d nk=%d beta=%d: error %g", M, N,
                                      K, nk, beta, e);
                        free(A);
                        free(W);
                        free(C);
                        free(R);
                        free(panels);
                    }
}
END_TEST

START_TEST(blas_wrappers_match_reference) {
    Rng r;
    rng_seed(&r, 4);
    int M = 13, N = 17, K = 11;
    float A[13 * 11], Bt[17 * 11], Bn[11 * 17], At[11 * 13], C[13 * 17], R[13 * 17];
    fill(A, sizeof A / 4, &r);
    fill(Bt, sizeof Bt / 4, &r);
    fill(Bn, sizeof Bn / 4, &r);
    fill(At, sizeof At / 4, &r);
    la_matmul_nt(C, A, Bt, M, N, K, 0.0f);
    la_ref_matmul(R, A, Bt, M, N, K, 0.0f, 0, 1);
    ck_assert(max_rel_err(C, R, (size_t)M * N, 1.0) < 1e-5);
    la_matmul_nn(C, A, Bn, M, N, K, 0.0f);
    la_ref_matmul(R, A, Bn, M, N, K, 0.0f, 0, 0);
    ck_assert(max_rel_err(C, R, (size_t)M * N, 1.0) < 1e-5);
    memcpy(R, C, sizeof C);
    la_matmul_tn(C, At, Bn, M, N, K, 1.0f);
    la_ref_matmul(R, At, Bn, M, N, K, 1.0f, 1, 0);
    ck_assert(max_rel_err(C, R, (size_t)M * N, 1.0) < 1e-5);
    float db[17] = {0};
    la_colsum_add(db, C, M, N);
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int m = 0; m < M; m++) s += C[m * N + n];
        ck_assert(fabs(db[n] - s) < 1e-5);
    }
}
END_TEST

static Suite *linalg_suite(void) {
    Suite *s = suite_create("linalg");
    TCase *tc = tcase_create("linalg");
    tcase_add_test(tc, packed_matches_reference);
    tcase_add_test(tc, blas_wrappers_match_reference);
    suite_add_tcase(s, tc);
    printf("packed AVX-512 recurrent kernel in use: %s\n", la_packed_native() ? "yes" : "no");
    return s;
}

TEST_MAIN(linalg_suite)
