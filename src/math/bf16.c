#include "bf16.h"

#include "../core/common.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BF16_HAVE_X86 1
#endif

/* rows of K per block of the product (even) */
#define BF16_KC 512

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static int hidden(const char *feature) {
    const char *list = getenv("RNNTRAIN_CPU_HIDE");
    if (!list) return 0;
    size_t n = strlen(feature);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, feature, n) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

int bf16_supported(const char **missing) {
    static const char *const need[] = {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"};
    int have[4] = {0, 0, 0, 0};
#ifdef BF16_HAVE_X86
    __builtin_cpu_init();
    /* the builtins report a feature only when the OS also saves its registers (XCR0) */
    have[0] = __builtin_cpu_supports("avx512f");
    have[1] = __builtin_cpu_supports("avx512bw");
    have[2] = __builtin_cpu_supports("avx512vl");
    have[3] = __builtin_cpu_supports("avx512bf16");
#endif
    /* every missing feature, in the order of need[] ("avx512f, avx512bw, ..."); one
     * static buffer: called while the configuration is read, before any thread starts */
    static char list[64];
    size_t len = 0;
    list[0] = '\0';
    for (int i = 0; i < 4; i++)
        if (!have[i] || hidden(need[i]))
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                    need[i]);
    if (len == 0) return 1;
    if (missing) *missing = list;
    return 0;
}

uint16_t bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))
        return (uint16_t)((u >> 16) | 0x0040u); /* NaN: quiet, sign kept */
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u); /* zero, subnormal */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* even; rows a multiple of 2 KB apart are padded by a cache line: 12 rows at a 4 KB stride
 * would all map to one set of the 8-way L1 (a third of the speed at K = 2048) */
int bf16_row_stride(int K) {
    int ld = (K + 1) & ~1;
    return ld >= 1024 && ld % 1024 == 0 ? ld + 32 : ld;
}

size_t bf16_packed_elems(int N, int K) {
    size_t panels = ((size_t)N + BF16_PANEL - 1) / BF16_PANEL;
    return panels * (size_t)((K + 1) / 2) * 2 * BF16_PANEL;
}

#ifdef BF16_HAVE_X86
/* n (<= 16) floats to bf16 by the instruction (so that every conversion rounds alike) */
BF16_TARGET static inline void convert16(uint16_t *dst, const float *src, int n) {
    __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src));
    _mm256_mask_storeu_epi16(dst, m, (__m256i)h);
}
#endif

/* d[2c + 0] = r0[c], d[2c + 1] = r1[c] (0 if r1 is NULL) for c < n, in bf16 */
static void interleave_rows(uint16_t *d, const float *r0, const float *r1, int n);

void bf16_convert_rows(uint16_t *dst, const float *A, int lda, int M, int K) {
    int ld = bf16_row_stride(K);
    /* --threads: rows shared out when there are enough of them to repay it */
#pragma omp parallel for schedule(static) if ((size_t)M * K >= 65536 && omp_get_max_threads() > 1)
    for (int m = 0; m < M; m++) {
        const float *src = A + (size_t)m * lda;
        uint16_t *d = dst + (size_t)m * ld;
#ifdef BF16_HAVE_X86
        for (int k = 0; k < K; k += 16) convert16(d + k, src + k, K - k < 16 ? K - k : 16);
#else
        for (int k = 0; k < K; k++) d[k] = bf16_round(src[k]);
#endif
        if (K & 1) d[K] = 0;
    }
}

/* panels[j][kp][c][e] = B(row 2 kp + e, column 32 j + c) of the logical B (K,N): as 32-bit
 * units, a panel is the (kp, c) transpose of the pairs of its columns' rows of B^T */
void bf16_pack(uint16_t *panels, const float *B, int ldb, int N, int K, int b_is_nk) {
    int np = (N + BF16_PANEL - 1) / BF16_PANEL, kp_n = (K + 1) / 2;
    size_t panel_elems = (size_t)kp_n * BF16_PANEL * 2;
    /* --threads: the panels are shared out */
#pragma omp parallel for schedule(static) if (np > 1 && omp_get_max_threads() > 1)
    for (int j = 0; j < np; j++) {
        uint16_t *dst = panels + (size_t)j * panel_elems;
        int cols = N - j * BF16_PANEL < BF16_PANEL ? N - j * BF16_PANEL : BF16_PANEL;
        if (cols < BF16_PANEL) memset(dst, 0, panel_elems * sizeof(uint16_t));
        if (b_is_nk) {
            uint32_t *d32 = (uint32_t *)dst;
            /* row n of B(N,K) in bf16, a piece of PACK_PIECE at a time (even: the pairs of a
             * piece are pairs of the row; the element K of an odd K is zero), then its
             * pairs into the panel's column c */
            enum { PACK_PIECE = 512 };
            uint32_t piece[PACK_PIECE / 2];
            for (int c = 0; c < cols; c++) {
                const float *row = B + (size_t)(j * BF16_PANEL + c) * ldb;
                for (int k0 = 0; k0 < K; k0 += PACK_PIECE) {
                    int kn = K - k0 < PACK_PIECE ? K - k0 : PACK_PIECE;
                    bf16_convert_rows((uint16_t *)piece, row + k0, ldb, 1, kn);
                    for (int kp = 0; kp < (kn + 1) / 2; kp++)
                        d32[(size_t)(k0 / 2 + kp) * BF16_PANEL + c] = piece[kp];
                }
            }
        } else {
            for (int kp = 0; kp < kp_n; kp++) {
                const float *r0 = B + (size_t)(2 * kp) * ldb + j * BF16_PANEL;
                const float *r1 = 2 * kp + 1 < K ? r0 + ldb : NULL;
                interleave_rows(dst + (size_t)kp * BF16_PANEL * 2, r0, r1, cols);
            }
        }
    }
}

/* A for the kernels: 32-bit units, each the bf16 pair (A(m, 2kp), A(m, 2kp+1)), unit (m, kp)
 * at a[m * rs + kp * ks]: rows (rs = lda / 2, ks = 1), or, for a transposed A, pairs of its
 * rows interleaved (rs = 1, ks = ld) */
typedef struct {
    const uint32_t *a;
    size_t rs, ks;
} PairsA;

#ifdef BF16_HAVE_X86
/* c0[r], c1[r] += the pair at a[r][at] times the two 16-column halves of a panel's pair row */
BF16_TARGET __attribute__((always_inline)) static inline void
pair_step(const int R, __m512 *c0, __m512 *c1, const uint32_t *const *a, size_t at,
          const uint16_t *pair_row) {
    __m512bh b0 = (__m512bh)_mm512_load_si512(pair_row);
    __m512bh b1 = (__m512bh)_mm512_load_si512(pair_row + 32);
    for (int r = 0; r < R; r++) {
        __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r][at]);
        c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
        c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
    }
}

/* C rows [0,mr) x columns [0,nr) (mr <= R, nr <= 32) = beta*C + A . panel over kpb pairs of
 * K: an R x 32 block of C in 2R zmm registers. Rows past mr read row 0 and are not stored. */
BF16_TARGET __attribute__((always_inline)) static inline void
kernel_rx32(const int R, int kpb, const uint32_t *A, size_t rs, size_t ks, const uint16_t *panel,
            float *C, int ldc, int mr, int nr, float beta) {
    __m512 c0[12], c1[12];
    const uint32_t *a[12];
    for (int r = 0; r < R; r++) {
        c0[r] = _mm512_setzero_ps();
        c1[r] = _mm512_setzero_ps();
        a[r] = A + (size_t)(r < mr ? r : 0) * rs;
    }
    /* the pairs two at a time (+5% on the large products), then the odd one */
    int kp = 0;
    for (; kp + 2 <= kpb; kp += 2) {
        pair_step(R, c0, c1, a, kp * ks, panel + (size_t)kp * 64);
        pair_step(R, c0, c1, a, (kp + 1) * ks, panel + (size_t)(kp + 1) * 64);
    }
    if (kp < kpb) pair_step(R, c0, c1, a, kp * ks, panel + (size_t)kp * 64);
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    __m512 vb = _mm512_set1_ps(beta);
    for (int r = 0; r < mr && r < R; r++) {
        float *crow = C + (size_t)r * ldc;
        if (beta != 0.0f) {
            c0[r] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, crow), c0[r]);
            c1[r] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, crow + 16), c1[r]);
        }
        _mm512_mask_storeu_ps(crow, m0, c0[r]);
        _mm512_mask_storeu_ps(crow + 16, m1, c1[r]);
    }
}

/* the four shapes, each compiled on its own: 12 or 8 rows, A in rows (ks = 1) or in
 * interleaved pairs (rs = 1) */
#define BF16_KERNEL(NAME, R, RS, KS)                                                       \
    BF16_TARGET static void NAME(int kpb, const uint32_t *A, size_t rs, size_t ks,        \
                                 const uint16_t *panel, float *C, int ldc, int mr, int nr, \
                                 float beta) {                                             \
        (void)rs, (void)ks;                                                                \
        kernel_rx32(R, kpb, A, RS, KS, panel, C, ldc, mr, nr, beta);                       \
    }
BF16_KERNEL(kernel_12_rows, 12, rs, 1)
BF16_KERNEL(kernel_8_rows, 8, rs, 1)
BF16_KERNEL(kernel_12_pairs, 12, 1, ks)
BF16_KERNEL(kernel_8_pairs, 8, 1, ks)
#undef BF16_KERNEL

typedef void (*KernelFn)(int, const uint32_t *, size_t, size_t, const uint16_t *, float *, int,
                         int, int, float);
#endif

#ifdef BF16_HAVE_X86
BF16_TARGET static void interleave16(uint16_t *d, const float *r0, const float *r1, int n) {
    static const uint16_t idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                     8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    __m512 v0 = _mm512_maskz_loadu_ps(m, r0);
    __m512 v1 = r1 ? _mm512_maskz_loadu_ps(m, r1) : _mm512_setzero_ps();
    /* r0's 16 values in the low half, r1's in the high half, then interleaved */
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
    __m512i out = _mm512_permutexvar_epi16(_mm512_loadu_si512(idx), both);
    _mm512_mask_storeu_epi32(d, m, out);
}
#endif

static void interleave_rows(uint16_t *d, const float *r0, const float *r1, int n) {
#ifdef BF16_HAVE_X86
    for (int c = 0; c < n; c += 16)
        interleave16(d + 2 * c, r0 + c, r1 ? r1 + c : NULL, n - c < 16 ? n - c : 16);
#else
    for (int c = 0; c < n; c++) {
        d[2 * c] = bf16_round(r0[c]);
        d[2 * c + 1] = r1 ? bf16_round(r1[c]) : 0;
    }
#endif
}

static void matmul_pairs(float *C, int ldc, PairsA A, const uint16_t *panels, int M, int N,
                         int K, float beta) {
#ifdef BF16_HAVE_X86
    int np = (N + BF16_PANEL - 1) / BF16_PANEL, kp_n = (K + 1) / 2;
    size_t panel_elems = (size_t)kp_n * BF16_PANEL * 2;
    KernelFn k12 = A.ks == 1 ? kernel_12_rows : kernel_12_pairs;
    KernelFn k8 = A.ks == 1 ? kernel_8_rows : kernel_8_pairs;
    /* K in blocks of BF16_KC rows: a block of a panel (32 KB) stays in L1 and a 12-row block
     * of A in L1/L2 while it is used; each block after the first adds to C (a fixed order:
     * the bits do not depend on M, N or on how the work is split) */
    for (int kp0 = 0; kp0 < kp_n; kp0 += BF16_KC / 2) {
        int kpb = kp_n - kp0 < BF16_KC / 2 ? kp_n - kp0 : BF16_KC / 2;
        float b = kp0 == 0 ? beta : 1.0f;
        const uint32_t *a = A.a + (size_t)kp0 * A.ks;
        /* --threads: the panels (column blocks) are shared out */
#pragma omp parallel for schedule(static) if (np > 1 && omp_get_max_threads() > 1)
        for (int j = 0; j < np; j++) {
            const uint16_t *panel = panels + (size_t)j * panel_elems + (size_t)kp0 * 64;
            float *c = C + j * BF16_PANEL;
            int nr = N - j * BF16_PANEL < BF16_PANEL ? N - j * BF16_PANEL : BF16_PANEL, i = 0;
            /* 12-row blocks while the rest is not left with a thin remainder, then 8 rows */
            for (; M - i >= 20 || M - i == 12; i += 12)
                k12(kpb, a + (size_t)i * A.rs, A.rs, A.ks, panel, c + (size_t)i * ldc, ldc, 12,
                    nr, b);
            for (; i < M; i += 8)
                k8(kpb, a + (size_t)i * A.rs, A.rs, A.ks, panel, c + (size_t)i * ldc, ldc,
                   M - i < 8 ? M - i : 8, nr, b);
        }
    }
#else
    (void)C, (void)ldc, (void)A, (void)panels, (void)M, (void)N, (void)K, (void)beta;
    rt_die(1, "bf16 matrix products need an x86-64 CPU with AVX512-BF16");
#endif
}

void bf16_matmul_packed(float *C, int ldc, const uint16_t *A, int lda, const uint16_t *panels,
                        int M, int N, int K, float beta) {
    PairsA a = {(const uint32_t *)A, (size_t)lda / 2, 1};
    matmul_pairs(C, ldc, a, panels, M, N, K, beta);
}

/* A (K,M) (lda) as interleaved pairs of its rows: unit (m, kp) at dst[kp * ld + m], ld from
 * pairs_stride(M) */
static size_t pairs_stride(int M) {
    size_t ld = ((size_t)M + 15) & ~(size_t)15;
    return ld % 256 == 0 ? ld + 16 : ld; /* 1 KB multiples alias in L1: see bf16_row_stride */
}

static void convert_pairs(uint32_t *dst, const float *A, int lda, int M, int K) {
    size_t ld = pairs_stride(M);
#pragma omp parallel for schedule(static) if ((size_t)M * K >= 65536 && omp_get_max_threads() > 1)
    for (int kp = 0; kp < (K + 1) / 2; kp++) {
        const float *r0 = A + (size_t)(2 * kp) * lda;
        interleave_rows((uint16_t *)(dst + (size_t)kp * ld), r0, 2 * kp + 1 < K ? r0 + lda : NULL,
                        M);
    }
}

/* per-thread scratch, grown as needed */
static _Thread_local uint16_t *g_a, *g_b;
static _Thread_local size_t g_a_cap, g_b_cap;

static uint16_t *scratch(uint16_t **buf, size_t *cap, size_t elems) {
    if (elems > *cap) {
        free(*buf);
        size_t bytes = (elems * sizeof(uint16_t) + 63) & ~(size_t)63;
        *buf = (uint16_t *)rt_alloc_floats(bytes / sizeof(float), "bf16 scratch");
        *cap = elems;
    }
    return *buf;
}

/* A (K,M) (lda) converted into the calling thread's scratch as interleaved pairs */
static PairsA pairs_of_km(const float *A, int lda, int M, int K) {
    size_t ld = pairs_stride(M);
    uint16_t *a = scratch(&g_a, &g_a_cap, (size_t)(K + 1) / 2 * ld * 2);
    convert_pairs((uint32_t *)a, A, lda, M, K);
    PairsA pa = {(const uint32_t *)a, 1, ld};
    return pa;
}

void bf16_gemm(float *C, int ldc, const float *A, int lda, int a_is_km, const float *B, int ldb,
               int b_is_nk, int M, int N, int K, float beta) {
    if (M <= 0 || N <= 0) return;
    uint16_t *b = scratch(&g_b, &g_b_cap, bf16_packed_elems(N, K));
    bf16_pack(b, B, ldb, N, K, b_is_nk);
    if (a_is_km) {
        matmul_pairs(C, ldc, pairs_of_km(A, lda, M, K), b, M, N, K, beta);
        return;
    }
    int ld = bf16_row_stride(K);
    uint16_t *a = scratch(&g_a, &g_a_cap, (size_t)M * ld);
    bf16_convert_rows(a, A, lda, M, K);
    bf16_matmul_packed(C, ldc, a, ld, b, M, N, K, beta);
}

void bf16_gemm_converted(float *C, int ldc, const uint16_t *A, int lda, const float *B, int ldb,
                         int b_is_nk, int M, int N, int K, float beta) {
    if (M <= 0 || N <= 0) return;
    uint16_t *b = scratch(&g_b, &g_b_cap, bf16_packed_elems(N, K));
    bf16_pack(b, B, ldb, N, K, b_is_nk);
    bf16_matmul_packed(C, ldc, A, lda, b, M, N, K, beta);
}

void bf16_gemm_tn2(float *C1, int ldc1, const float *B1, int ldb1, int N1, float *C2, int ldc2,
                   const float *B2, int ldb2, int N2, const float *A, int lda, int M, int K,
                   float beta) {
    if (M <= 0) return;
    PairsA pa = pairs_of_km(A, lda, M, K);
    if (N1 > 0) {
        uint16_t *b = scratch(&g_b, &g_b_cap, bf16_packed_elems(N1, K));
        bf16_pack(b, B1, ldb1, N1, K, 0);
        matmul_pairs(C1, ldc1, pa, b, M, N1, K, beta);
    }
    if (N2 > 0) {
        uint16_t *b = scratch(&g_b, &g_b_cap, bf16_packed_elems(N2, K));
        bf16_pack(b, B2, ldb2, N2, K, 0);
        matmul_pairs(C2, ldc2, pa, b, M, N2, K, beta);
    }
}

void bf16_gemm_prepacked(float *C, int ldc, const float *A, int lda, const uint16_t *panels,
                         int M, int N, int K, float beta) {
    if (M <= 0 || N <= 0) return;
    int ld = bf16_row_stride(K);
    uint16_t *a = scratch(&g_a, &g_a_cap, (size_t)M * ld);
    bf16_convert_rows(a, A, lda, M, K);
    bf16_matmul_packed(C, ldc, a, ld, panels, M, N, K, beta);
}

void bf16_release(void) {
    free(g_a);
    free(g_b);
    g_a = g_b = NULL;
    g_a_cap = g_b_cap = 0;
}
