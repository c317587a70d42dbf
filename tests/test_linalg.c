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
    /* M covers the 8- and 12-row blocks and their mixes: 12 | 12+8 | 12+8+3 | 12+12+8 |
     * 12*3+8 */
    const int Ms[] = {1, 7, 8, 9, 12, 20, 23, 32, 44}, Ns[] = {6, 32, 33, 70}, Ks[] = {5, 64, 130};
    for (int a = 0; a < 9; a++)
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

/* The core name `rnntrain --version` reports for an environment prefix. */
static void version_core(const char *env, char *core, size_t size) {
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "env %s %s --version", env, RNNTRAIN_BIN);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 0);
    const char *p = strstr(out, "OpenBLAS core: ");
    ck_assert_msg(p != NULL, "%s", out);
    p += strlen("OpenBLAS core: ");
    size_t n = strcspn(p, ";\n");
    ck_assert(n > 0 && n < size);
    memcpy(core, p, n);
    core[n] = 0;
}

/* With OPENBLAS_CORETYPE unset the binary runs kernels of the CPU's vector ISA, even where
 * OpenBLAS falls back to a generic core (Debian's 0.3.21 on Sapphire/Emerald Rapids:
 * Prescott); a core the user sets is kept, and so is OpenBLAS's own choice when asked. */
START_TEST(blas_core_matches_cpu) {
    const char *best = la_best_core_for_cpu();
    char core[128];
    if (best && la_core_level(best) >= 2) {
        /* an OpenBLAS built for one target ignores OPENBLAS_CORETYPE: nothing to choose */
        version_core("OPENBLAS_CORETYPE=Haswell", core, sizeof core);
        if (strcmp(core, "Haswell") != 0) {
            printf("this OpenBLAS has no run-time kernel choice (core %s): not checked\n", core);
            return;
        }
    }
    version_core("-u OPENBLAS_CORETYPE -u RNNTRAIN_KEEP_BLAS_CORE", core, sizeof core);
    printf("CPU's best OpenBLAS core %s; rnntrain runs %s\n", best ? best : "(none)", core);
    if (best)
        ck_assert_msg(la_core_level(core) >= la_core_level(best),
                      "rnntrain runs OpenBLAS core %s on a CPU that supports %s", core, best);
    if (best && la_core_level(best) >= 2) {
        version_core("OPENBLAS_CORETYPE=Haswell", core, sizeof core);
        ck_assert_str_eq(core, "Haswell");
    }
    char out[4096], cmd[1024];
    snprintf(cmd, sizeof cmd, "env -u OPENBLAS_CORETYPE RNNTRAIN_KEEP_BLAS_CORE=1 %s --version",
             RNNTRAIN_BIN);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "rnntrain set") == NULL, "%s", out);
}
END_TEST

static Suite *linalg_suite(void) {
    Suite *s = suite_create("linalg");
    TCase *tc = tcase_create("linalg");
    tcase_add_test(tc, packed_matches_reference);
    tcase_add_test(tc, blas_wrappers_match_reference);
    tcase_add_test(tc, blas_core_matches_cpu);
    suite_add_tcase(s, tc);
    printf("packed AVX-512 recurrent kernel in use: %s\n", la_packed_native() ? "yes" : "no");
    return s;
}

TEST_MAIN(linalg_suite)
