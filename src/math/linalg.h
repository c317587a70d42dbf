/* linalg: every BLAS call of the trainer, row-major, plus naive references for tests.
 *
 * Naming: C(M,N) (op)= A . B with A and B given as stored. The letters after matmul say
 * whether A and B are used as stored (n) or transposed (t):
 *   la_matmul_nt: C(M,N) = beta*C + A(M,K) . B(N,K)^T   (input projections, forward)
 *   la_matmul_nn: C(M,N) = beta*C + A(M,K) . B(K,N)     (input gradients)
 *   la_matmul_tn: C(M,N) = beta*C + A(K,M)^T . B(K,N)   (weight gradients over a chunk) */
#ifndef RNNTRAIN_LINALG_H
#define RNNTRAIN_LINALG_H

#include <stddef.h>

/* The inputs of every product below: fp32 (cblas_sgemm and the packed fp32 kernel) or bf16
 * (rounded on the way in, fp32 accumulation and output: bf16.h). LA_BF16 needs
 * bf16_supported(); the caller checks. Set once, before any packing. */
typedef enum { LA_FP32, LA_BF16 } LaPrecision;
void la_set_precision(LaPrecision p);
LaPrecision la_precision(void);
/* 1: fp32 BLAS products on one thread whatever --threads is (--deterministic: linalg.c) */
void la_set_blas_serial(int on);

void la_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, float beta);
void la_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, float beta);
void la_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, float beta);
/* Two products of one A(K,M): C1(M,N1) = beta*C1 + A^T B1(K,N1), C2(M,N2) = beta*C2 + A^T
 * B2(K,N2), the bits of two la_matmul_tn calls (bf16: A converted once for both). */
void la_matmul_tn2(float *C1, const float *B1, int N1, float *C2, const float *B2, int N2,
                   const float *A, int M, int K, float beta);
/* The same three with leading dimensions (strided rows: one stream of a time-major
 * (T,B,W) array is rows of stride B*W): lda, ldb, ldc in floats. */
void la_gemm_nt(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M,
                int N, int K, float beta);
void la_gemm_nn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M,
                int N, int K, float beta);
void la_gemm_tn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M,
                int N, int K, float beta);
/* db(N) += sum over the M rows of A(M,N). */
void la_colsum_add(float *db, const float *A, int M, int N);
/* db1(N) += and db2(N) += the same column sums, in one pass over A (each sum is added in
 * the same order as by la_colsum_add: the same bits). */
void la_colsum_add2(float *restrict db1, float *restrict db2, const float *restrict A, int M,
                    int N);
/* The per-step recurrent product C(M,N) = beta*C + A(M,K) . W^T with small M (the streams
 * of one rank) and the same W for all T steps of a chunk. OpenBLAS would repack W on every
 * call (for W_hh that was ~1 GB of copying per LSTM 2x512 step); instead W is packed once
 * per chunk into panels of LA_PANEL columns, (ceil(N/LA_PANEL), K, LA_PANEL), zero-padded,
 * and an AVX-512 kernel keeps a 12 x 32 (or 8 x 32) block of C in registers over all of K. On
 * CPUs without AVX-512 the product falls back to cblas_sgemm on the unpacked W. */
#define LA_PANEL 32
typedef struct {
    float *panels; /* caller-provided, la_packed_floats(N, K) floats, 64-byte aligned */
    const float *w; /* the unpacked matrix, for the fallback */
    int N, K, w_is_nk; /* w_is_nk: w is (N,K) (used transposed); else (K,N) */
    int unpacked;      /* use w as it is (la_unpacked_nt) */
    int bf16;          /* panels hold bf16 pairs (bf16.h), packed in LA_BF16 mode */
} LaPacked;

size_t la_packed_floats(int N, int K);
/* Packs W (N,K) for C = A . W^T. */
void la_pack_nt(LaPacked *p, float *panels, const float *W, int N, int K);
/* Packs W (K,N) for C = A . W. */
void la_pack_nn(LaPacked *p, float *panels, const float *W, int K, int N);
/* W (N,K) for C = A . W^T, not packed (one product does not repay packing: decoding). */
void la_unpacked_nt(LaPacked *p, const float *W, int N, int K);
void la_matmul_packed(float *C, const float *A, const LaPacked *p, int M, float beta);
/* bf16 mode: the rows of A as a product rounds them, kept for another product of the same A
 * (the per-step dA_t . W_hh, then dA W_ih over the chunk). la_kept_row_bytes(K): bytes per
 * row of K (0 in fp32: nothing is kept); la_matmul_packed_keep: la_matmul_packed that also
 * leaves A's rows in keep (M rows; keep may be NULL); la_keep_rows: only the rows;
 * la_matmul_nn_kept: la_matmul_nn(C, A, B, ...) reading A from keep if it is not NULL (the
 * same bits as from A). */
size_t la_kept_row_bytes(int K);
void la_matmul_packed_keep(float *C, const float *A, const LaPacked *p, int M, float beta,
                           void *keep);
void la_keep_rows(void *keep, const float *A, int M, int K);
void la_matmul_nn_kept(float *C, const float *A, const void *keep, const float *B, int M, int N,
                       int K, float beta);
/* 1 if the packed AVX-512 kernel is in use on this CPU. */
int la_packed_native(void);

/* Naive triple loops in double, for tests. */
void la_ref_matmul(float *C, const float *A, const float *B, int M, int N, int K, float beta,
                   int transA, int transB);
/* OpenBLAS chooses its kernels from CPUID when the library is loaded. An OpenBLAS older than
 * the CPU falls back to a generic SSE core: Debian 12's 0.3.21 runs Sapphire/Emerald Rapids
 * Xeons as "Prescott", at 24 instead of 155 GFLOP/s sgemm on one core. Called first thing in
 * main(): when OpenBLAS chose a generic core (or one below the CPU's vector ISA), and neither
 * OPENBLAS_CORETYPE nor RNNTRAIN_KEEP_BLAS_CORE is set, it sets OPENBLAS_CORETYPE to the best
 * core the CPU (and OS) supports and execs this program again with the same arguments
 * (before MPI is started; same process, so launchers do not notice). Returns otherwise. */
void la_choose_blas_core(char **argv);
/* The OpenBLAS core name for this CPU's vector ISA (SkylakeX, Haswell, Sandybridge), or NULL. */
const char *la_best_core_for_cpu(void);
/* 1 AVX, 2 AVX2+FMA, 3 AVX-512 for the x86 OpenBLAS core names; 0 for SSE-era and unknown
 * names. */
int la_core_level(const char *name);
/* "Core" or "Core; OpenBLAS detected X on this CPU, rnntrain set OPENBLAS_CORETYPE=Core". */
void la_core_text(char *buf, size_t size);
/* Subnormal floats as zero, in and out (x86 FTZ and DAZ, in this thread and the OpenMP
 * pool): arithmetic on them costs up to 10x on some CPUs (an LSTM at T = 1000 on Intel
 * Emerald Rapids: docs/long-range.md). Changes results wherever one occurs. */
void la_flush_denormals(void);
/* Sets the number of BLAS threads (0 leaves OpenBLAS's default); returns the core name. */
const char *la_setup(int threads);

#endif
