#include "linalg.h"

#include <cblas.h>

void la_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, beta, C,
                N);
}

void la_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, beta, C,
                N);
}

void la_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, float beta) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, M, B, N, beta, C,
                N);
}

void la_colsum_add(float *db, const float *A, int M, int N) {
    for (int m = 0; m < M; m++) {
        const float *row = A + (long)m * N;
        for (int n = 0; n < N; n++) db[n] += row[n];
    }
}

void la_ref_matmul(float *C, const float *A, const float *B, int M, int N, int K, float beta,
                   int transA, int transB) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                double a = transA ? A[(long)k * M + m] : A[(long)m * K + k];
                double b = transB ? B[(long)n * K + k] : B[(long)k * N + n];
                s += a * b;
            }
            float *c = &C[(long)m * N + n];
            *c = (float)(s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

const char *la_setup(int threads) {
    if (threads > 0) openblas_set_num_threads(threads);
    return openblas_get_corename();
}

int la_threads(void) { return openblas_get_num_threads(); }
