/* bf16: matrix products with bf16 inputs and fp32 accumulation (AVX512-BF16, VDPBF16PS).
 *
 * C(M,N) = beta*C + A . B, A and B given in fp32 and rounded to bf16 (round to nearest even,
 * as VCVTNEPS2BF16 does: subnormal inputs become zero) on the way in; every product of two
 * bf16 values is exact in fp32 and the sums are fp32, added over k in order (pairs k, k+1
 * from the first k up, in blocks of 512), whatever the blocking or thread count: the same
 * bits for the same inputs. Bound against the exact product of the fp32 inputs, per element,
 * for normal inputs whose products and partial sums stay in fp32's normal range:
 *   |C' - C| <= (2^-7 + 2^-16 + (K+1) 2^-24) * sum_k |A(m,k)| |B(k,n)|
 * (each input rounded by at most 2^-8 relative, the fp32 sum as any ordered sum). Below
 * that range the instructions flush to zero: a subnormal input, or a product or sum under
 * 2^-126, counts as 0 (an absolute error under 2^-126 per term).
 *
 * B is packed into panels of 32 columns holding pairs of rows, (ceil(N/32), ceil(K/2), 32, 2)
 * bf16, zero-padded; a 12 x 32 or 8 x 32 block of C stays in registers over all of K. */
#ifndef RNNTRAIN_BF16_H
#define RNNTRAIN_BF16_H

#include <stddef.h>
#include <stdint.h>

#define BF16_PANEL 32

/* 1 if this CPU (and OS) can run the bf16 kernels; otherwise 0 and *missing lists every
 * missing CPU feature as /proc/cpuinfo spells it ("avx512f, avx512bw, avx512vl,
 * avx512_bf16" on an AVX2-only CPU, "avx512_bf16" on Ice Lake). RNNTRAIN_CPU_HIDE (a
 * comma-separated list of such names) hides features, so that tests can act as such a CPU. */
int bf16_supported(const char **missing);

/* uint16 elements of the panels for B with N columns and K rows */
size_t bf16_packed_elems(int N, int K);
/* B as stored: b_is_nk: B(N,K) used transposed (row n of B is column n of the product),
 * else B(K,N); ldb in floats. Packs into panels (bf16_packed_elems(N, K) elements). */
void bf16_pack(uint16_t *panels, const float *B, int ldb, int N, int K, int b_is_nk);
/* C(M,N) (ldc) = beta*C + A . packed B, A(M,K) in bf16 rows of stride lda (even, >= K, the
 * element K of an odd K zero). */
void bf16_matmul_packed(float *C, int ldc, const uint16_t *A, int lda, const uint16_t *panels,
                        int M, int N, int K, float beta);
/* A(M,K) (lda) to bf16 rows of stride bf16_row_stride(K), the padding element zero. */
int bf16_row_stride(int K);
void bf16_convert_rows(uint16_t *dst, const float *A, int lda, int M, int K);

/* The whole product, as la_gemm_*: C = beta*C + op(A) . op(B), with scratch of its own
 * (per thread, kept between calls). */
void bf16_gemm(float *C, int ldc, const float *A, int lda, int a_is_km, const float *B, int ldb,
               int b_is_nk, int M, int N, int K, float beta);
/* C1(M,N1) = beta*C1 + A^T . B1 and C2(M,N2) = beta*C2 + A^T . B2, A(K,M) (lda), B1(K,N1),
 * B2(K,N2): A converted once for both; the bits of two bf16_gemm calls. */
void bf16_gemm_tn2(float *C1, int ldc1, const float *B1, int ldb1, int N1, float *C2, int ldc2,
                   const float *B2, int ldb2, int N2, const float *A, int lda, int M, int K,
                   float beta);
/* C = beta*C + A . B with A(M,K) already in bf16 rows (lda, as bf16_convert_rows writes
 * them) and B as in bf16_gemm. */
void bf16_gemm_converted(float *C, int ldc, const uint16_t *A, int lda, const float *B, int ldb,
                         int b_is_nk, int M, int N, int K, float beta);
/* C = beta*C + A . B with A(M,K) in fp32 and B packed by bf16_pack. */
void bf16_gemm_prepacked(float *C, int ldc, const float *A, int lda, const uint16_t *panels,
                         int M, int N, int K, float beta);
/* Frees the calling thread's scratch. */
void bf16_release(void);

/* round to nearest even, subnormals to zero, NaN kept NaN: the instruction's rule */
uint16_t bf16_round(float f);
float bf16_to_float(uint16_t h);

#endif
