/* linalg: every BLAS call of the trainer, row-major, plus naive references for tests.
 *
 * Naming: C(M,N) (op)= A . B with A and B given as stored. The letters after matmul say
 * whether A and B are used as stored (n) or transposed (t):
 *   la_matmul_nt: C(M,N) = beta*C + A(M,K) . B(N,K)^T   (input projections, forward)
 *   la_matmul_nn: C(M,N) = beta*C + A(M,K) . B(K,N)     (input gradients)
 *   la_matmul_tn: C(M,N) = beta*C + A(K,M)^T . B(K,N)   (weight gradients over a chunk) */
#ifndef RNNTRAIN_LINALG_H
#define RNNTRAIN_LINALG_H

void la_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, float beta);
void la_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, float beta);
void la_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, float beta);
/* db(N) += sum over the M rows of A(M,N). */
void la_colsum_add(float *db, const float *A, int M, int N);
/* Naive triple loops in double, for tests. */
void la_ref_matmul(float *C, const float *A, const float *B, int M, int N, int K, float beta,
                   int transA, int transB);
/* Sets the number of BLAS threads (0 leaves OpenBLAS's default); returns the core name. */
const char *la_setup(int threads);
int la_threads(void);

#endif
