/* The BLAS wrappers and the packed recurrent kernel against naive double-precision loops,
 * for shapes with remainders in every dimension (rows not a multiple of 8, columns not a
 * multiple of the 32-wide panel, beta 0 and 1). bf16 mode (bf16.h; skipped without
 * AVX512-BF16): bf16_round against the conversion instruction, every product within the
 * stated bound of the exact one and really rounded, the packed product bitwise the unpacked
 * one, results independent of the row and column blocking, RNNTRAIN_CPU_HIDE. */
#include <omp.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bf16.h"
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

/* --- bf16 mode (bf16.h): every case skips, with a note, on a CPU without AVX512-BF16 --- */

/* ck_assert_msg for loops over many elements: a passing ck_assert writes its location to
 * Check's message file (a million of them cost seconds); this calls Check only on failure */
#define EXPECT(cond, ...)                                                                      \
    do {                                                                                       \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                \
    } while (0)

/* 1 (after a note) when this CPU cannot run the bf16 kernels. */
static int bf16_skip(const char *name) {
    const char *missing = NULL;
    if (bf16_supported(&missing)) return 0;
    printf("%s: skipped, this CPU lacks %s (bf16 kernels not available)\n", name,
           missing ? missing : "?");
    return 1;
}

static float f32_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int bf16_is_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x007fu) != 0; }

/* bf16_round (the scalar rule: ties to even, subnormal inputs to signed zero, NaN stays NaN)
 * against VCVTNEPS2BF16 (bf16_convert_rows on x86) on every bf16 value's neighbourhood (each
 * upper half with low halves 0, 1, just below / at / just above the tie, all ones, random),
 * random bit patterns and random floats of every magnitude. */
START_TEST(bf16_round_matches_instruction) {
    if (bf16_skip("bf16_round_matches_instruction")) return;
    static const uint16_t lows[] = {0x0000, 0x0001, 0x4000, 0x7fff, 0x8000, 0x8001, 0xc000, 0xffff};
    const size_t nlow = sizeof lows / sizeof *lows;
    const size_t n = 65536 * (nlow + 1) + (1u << 18) * 2;
    uint32_t *bits = malloc(n * sizeof *bits);
    Rng r;
    rng_seed(&r, 11);
    size_t i = 0;
    for (uint32_t hi = 0; hi < 65536; hi++) {
        for (size_t l = 0; l < nlow; l++) bits[i++] = hi << 16 | lows[l];
        bits[i++] = hi << 16 | (uint32_t)(rng_u64(&r) & 0xffff);
    }
    for (size_t j = 0; j < (1u << 18); j++) bits[i++] = (uint32_t)rng_u64(&r);
    for (size_t j = 0; j < (1u << 18); j++) {
        /* (-1, 1) times 2^e, e in [-140, 127]: normals, subnormals, overflow to inf */
        float f = (float)ldexp(2.0 * rng_uniform(&r) - 1.0, (int)(rng_u64(&r) % 268) - 140);
        memcpy(&bits[i++], &f, 4);
    }
    ck_assert_uint_eq(i, n);
    float *x = malloc(n * sizeof *x);
    for (i = 0; i < n; i++) x[i] = f32_of(bits[i]);
    uint16_t *h = malloc((size_t)bf16_row_stride((int)n) * sizeof *h);
    bf16_convert_rows(h, x, (int)n, 1, (int)n);
    size_t nans = 0, nans_same = 0, ties = 0, subs = 0;
    for (i = 0; i < n; i++) {
        uint16_t s = bf16_round(x[i]);
        if (isnan(x[i])) {
            EXPECT(bf16_is_nan(h[i]) && bf16_is_nan(s),
                          "NaN 0x%08x: instruction 0x%04x, bf16_round 0x%04x", bits[i], h[i], s);
            nans++;
            nans_same += s == h[i];
            continue;
        }
        EXPECT(s == h[i], "0x%08x (%a): instruction 0x%04x, bf16_round 0x%04x", bits[i],
                      (double)x[i], h[i], s);
        ties += (bits[i] & 0xffff) == 0x8000;
        subs += (bits[i] & 0x7f800000u) == 0 && (bits[i] & 0x007fffffu) != 0;
    }
    printf("bf16_round = VCVTNEPS2BF16 on %zu values (%zu ties, %zu subnormals, %zu NaNs, %zu "
           "of them the same bits)\n", n, ties, subs, nans, nans_same);
    /* the rule itself, on values whose answer is known */
    static const struct {
        uint32_t in;
        uint16_t out;
    } known[] = {
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* 1 + 2^-8: a tie, to the even 1 */
        {0x3f818000u, 0x3f82}, /* 1 + 3*2^-8: a tie, to the even 1 + 2^-6 */
        {0x3f808001u, 0x3f81}, /* just above the tie: up */
        {0x3f807fffu, 0x3f80}, /* just below: down */
        {0xbf818000u, 0xbf82}, /* negative tie */
        {0x00000001u, 0x0000}, /* smallest subnormal: +0 */
        {0x807fffffu, 0x8000}, /* largest negative subnormal: -0 (not -min normal) */
        {0x00800000u, 0x0080}, /* smallest normal */
        {0x00000000u, 0x0000}, {0x80000000u, 0x8000},
        {0x7f800000u, 0x7f80}, {0xff800000u, 0xff80},
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds to inf */
        {0x7f7f7fffu, 0x7f7f}, /* ... just below the tie it stays finite */
        {0xff7f8000u, 0xff80}, /* a tie above the largest bf16: to -inf (even) */
    };
    for (size_t k = 0; k < sizeof known / sizeof *known; k++)
        ck_assert_msg(bf16_round(f32_of(known[k].in)) == known[k].out,
                      "bf16_round(0x%08x) = 0x%04x, expected 0x%04x", known[k].in,
                      bf16_round(f32_of(known[k].in)), known[k].out);
    ck_assert(bf16_is_nan(bf16_round(f32_of(0x7f800001u)))); /* a payload only in the low bits */
    ck_assert(bf16_is_nan(bf16_round(f32_of(0xffc00000u))));
    /* every bf16 value converts back to itself (subnormal ones to a signed zero) */
    for (uint32_t v = 0; v < 65536; v++) {
        uint16_t b = (uint16_t)v, back = bf16_round(bf16_to_float(b));
        if (bf16_is_nan(b))
            EXPECT(bf16_is_nan(back), "bf16 NaN 0x%04x -> 0x%04x", b, back);
        else if ((b & 0x7f80u) == 0)
            EXPECT(back == (b & 0x8000u), "bf16 0x%04x -> 0x%04x", b, back);
        else
            EXPECT(back == b, "bf16 0x%04x -> 0x%04x", b, back);
    }
    free(bits);
    free(x);
    free(h);
}
END_TEST

enum { OP_NT, OP_NN, OP_TN };
static const char *const op_names[] = {"nt", "nn", "tn"};

/* C = beta*C + op(A) . op(B) (A stored (M,K), or (K,M) for tn; B stored (N,K) for nt, else
 * (K,N)) through la_matmul_* (ld 0: compact) or la_gemm_* (rows padded by ld floats) in the
 * current precision. */
static void product(int op, float *C, int ldc, const float *A, int lda, const float *B, int ldb,
                    int M, int N, int K, float beta, int compact) {
    if (compact) {
        if (op == OP_NT) la_matmul_nt(C, A, B, M, N, K, beta);
        if (op == OP_NN) la_matmul_nn(C, A, B, M, N, K, beta);
        if (op == OP_TN) la_matmul_tn(C, A, B, M, N, K, beta);
        return;
    }
    if (op == OP_NT) la_gemm_nt(C, ldc, A, lda, B, ldb, M, N, K, beta);
    if (op == OP_NN) la_gemm_nn(C, ldc, A, lda, B, ldb, M, N, K, beta);
    if (op == OP_TN) la_gemm_tn(C, ldc, A, lda, B, ldb, M, N, K, beta);
}

/* Inputs of moderate size with non-zero low mantissa bits (so not bf16 values), magnitudes
 * spread over 2^-6..2^6 so that the relative rounding is exercised at every scale. */
static void fill_spread(float *x, size_t n, Rng *r) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)ldexp(rng_uniform(r) - 0.5, (int)(rng_u64(r) % 13) - 6);
}

/* rows x cols stored compactly -> rows of ld floats, the padding NaN (a kernel that read it
 * into a result would show) */
static float *padded_copy(const float *x, int rows, int cols, int ld) {
    float *p = malloc(sizeof(float) * (size_t)rows * ld);
    for (size_t i = 0; i < (size_t)rows * ld; i++) p[i] = NAN;
    for (int i = 0; i < rows; i++) memcpy(p + (size_t)i * ld, x + (size_t)i * cols, sizeof(float) * cols);
    return p;
}

/* The bound of bf16.h on |C' - C| per element, C the exact product of the fp32 inputs:
 * (2^-7 + 2^-16 + (K+1) 2^-24) * sum_k |A(m,k)| |B(k,n)|; beta*C0, added in fp32, adds at most
 * (K+1) 2^-24 |C0| (it is one term of the fp32 sums); the reference (la_ref_matmul, double,
 * rounded to fp32) is itself 2^-24 |R| from the exact value. S = sum |A||B| as computed in
 * fp32 from a double sum, raised by 2^-20 for its own rounding. */
static double bf16_bound(int K, double S, double beta_c0, double R) {
    return (ldexp(1, -7) + ldexp(1, -16) + (K + 1) * ldexp(1, -24)) * S * (1 + ldexp(1, -20)) +
           (K + 1) * ldexp(1, -24) * fabs(beta_c0) + ldexp(1, -24) * fabs(R);
}

typedef struct {
    double worst_ratio; /* largest |C' - R| / bound over all elements checked */
    int worst_K, checked, rounded;
} BoundStats;

/* One bf16 product of random inputs against la_ref_matmul within bf16_bound, with compact
 * or padded rows (lda, ldb, ldc longer than a row, the padding NaN in A and B and a sentinel
 * in C that must stay); also that it is not the fp32 product (bf16 mode really rounds). */
static void check_bf16_product(int op, int M, int N, int K, int beta, int compact, Rng *r,
                               BoundStats *st) {
    int arows = op == OP_TN ? K : M, acols = op == OP_TN ? M : K;
    int brows = op == OP_NT ? N : K, bcols = op == OP_NT ? K : N;
    int lda = compact ? acols : acols + 5, ldb = compact ? bcols : bcols + 3,
        ldc = compact ? N : N + 7;
    size_t mn = (size_t)M * N;
    float *A = malloc(sizeof(float) * (size_t)arows * acols);
    float *B = malloc(sizeof(float) * (size_t)brows * bcols);
    float *C0 = malloc(sizeof(float) * mn), *R = malloc(sizeof(float) * mn);
    float *S = malloc(sizeof(float) * mn), *F = malloc(sizeof(float) * mn);
    float *Aabs = malloc(sizeof(float) * (size_t)arows * acols);
    float *Babs = malloc(sizeof(float) * (size_t)brows * bcols);
    fill_spread(A, (size_t)arows * acols, r);
    fill_spread(B, (size_t)brows * bcols, r);
    fill_spread(C0, mn, r);
    for (size_t i = 0; i < (size_t)arows * acols; i++) Aabs[i] = fabsf(A[i]);
    for (size_t i = 0; i < (size_t)brows * bcols; i++) Babs[i] = fabsf(B[i]);
    memcpy(R, C0, sizeof(float) * mn);
    la_ref_matmul(R, A, B, M, N, K, (float)beta, op == OP_TN, op == OP_NT);
    la_ref_matmul(S, Aabs, Babs, M, N, K, 0.0f, op == OP_TN, op == OP_NT);
    float *Ap = padded_copy(A, arows, acols, lda), *Bp = padded_copy(B, brows, bcols, ldb);
    float *C = malloc(sizeof(float) * (size_t)M * ldc);
    const float sentinel = 12345.0f;
    for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = sentinel;
    for (int m = 0; m < M; m++) memcpy(C + (size_t)m * ldc, C0 + (size_t)m * N, sizeof(float) * N);

    la_set_precision(LA_BF16);
    product(op, C, ldc, Ap, lda, Bp, ldb, M, N, K, (float)beta, compact);
    /* the same product in fp32 */
    la_set_precision(LA_FP32);
    memcpy(F, C0, sizeof(float) * mn);
    product(op, F, N, A, acols, B, bcols, M, N, K, (float)beta, 1);
    la_set_precision(LA_BF16);

    double worst_rel = 0; /* largest |C' - R| / sum |A||B| */
    int differs_from_fp32 = 0;
    for (int m = 0; m < M; m++) {
        for (int n = ldc - 1; n >= N; n--)
            EXPECT(C[(size_t)m * ldc + n] == sentinel, "%s M=%d N=%d K=%d: wrote C(%d,%d) "
                          "past N (ldc %d)", op_names[op], M, N, K, m, n, ldc);
        for (int n = 0; n < N; n++) {
            double c = C[(size_t)m * ldc + n], ref = R[(size_t)m * N + n];
            double bound = bf16_bound(K, S[(size_t)m * N + n], beta * (double)C0[(size_t)m * N + n], ref);
            double d = fabs(c - ref);
            EXPECT(d <= bound, "%s M=%d N=%d K=%d beta=%d %s: C(%d,%d) = %.9g, exact %.9g: "
                          "error %.3g above the bound %.3g of bf16.h", op_names[op], M, N, K, beta,
                          compact ? "compact" : "padded", m, n, c, ref, d, bound);
            if (bound > 0 && d / bound > st->worst_ratio) {
                st->worst_ratio = d / bound;
                st->worst_K = K;
            }
            if (S[(size_t)m * N + n] > 0 && d / S[(size_t)m * N + n] > worst_rel)
                worst_rel = d / S[(size_t)m * N + n];
            differs_from_fp32 |= (float)c != F[(size_t)m * N + n];
        }
    }
    st->checked++;
    /* bf16 rounds each input by up to 2^-8: with a few dozen inexact products the largest
     * error (relative to sum |A||B|) is far above fp32's (K 2^-24 at most); fp32 run silently
     * would fail here (with beta 1 a large C0 can hide the product's error, so the size of
     * the error is checked with beta 0 only) */
    if ((size_t)M * N * K >= 31) {
        ck_assert_msg(differs_from_fp32, "%s M=%d N=%d K=%d beta=%d: the bf16 product is "
                      "bitwise the fp32 product: are the inputs rounded at all?", op_names[op], M,
                      N, K, beta);
        if (!beta)
            ck_assert_msg(worst_rel > 1e-5, "%s M=%d N=%d K=%d: the bf16 product is within %.3g "
                          "of the exact one (relative to sum |A||B|): are the inputs rounded at "
                          "all?", op_names[op], M, N, K, worst_rel);
        st->rounded++;
    }
    free(A);
    free(B);
    free(C0);
    free(R);
    free(S);
    free(F);
    free(Aabs);
    free(Babs);
    free(Ap);
    free(Bp);
    free(C);
}

/* la_matmul_nt/nn/tn and la_gemm_nt/nn/tn (leading dimensions past the row) in bf16 mode
 * within the bound of bf16.h of the exact product, for shapes with edges in every dimension:
 * rows around the 8- and 12-row blocks, columns around the 32-column panel, K odd/even,
 * around the 512-row K block and past two of them; beta 0 and 1. */
START_TEST(bf16_products_within_bound) {
    if (bf16_skip("bf16_products_within_bound")) return;
    Rng r;
    rng_seed(&r, 21);
    const int Ms[] = {1, 7, 12, 20, 33}, Ns[] = {1, 31, 32, 33, 70},
              Ks[] = {1, 2, 3, 511, 512, 513, 1030};
    BoundStats st = {0, 0, 0, 0};
    for (int op = 0; op < 3; op++)
        for (int a = 0; a < 5; a++)
            for (int b = 0; b < 5; b++)
                for (int c = 0; c < 7; c++)
                    for (int v = 0; v < 4; v++) /* beta 0/1 x compact/padded */
                        check_bf16_product(op, Ms[a], Ns[b], Ks[c], v & 1, v >> 1, &r, &st);
    printf("bf16 products: %d checked against the bound of bf16.h (largest error %.3f of the "
           "bound, at K = %d), %d of them shown to round\n", st.checked, st.worst_ratio, st.worst_K,
           st.rounded);

    /* inputs 1 + 2^-10 (below bf16's resolution at 1: rounded to 1) times 1: bf16 sums K
     * ones exactly, fp32 gives K (1 + 2^-10) */
    enum { M = 5, N = 40, K = 64 };
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N),
          *C = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++) A[i] = 1.0f + 0x1p-10f;
    for (int i = 0; i < K * N; i++) B[i] = 1.0f;
    la_set_precision(LA_BF16);
    for (int op = 0; op < 3; op++) {
        product(op, C, N, A, op == OP_TN ? M : K, B, op == OP_NT ? K : N, M, N, K, 0.0f, 1);
        for (int i = 0; i < M * N; i++)
            EXPECT(C[i] == (float)K, "%s in bf16 mode: (1 + 2^-10) . 1 summed over %d "
                          "gives %.9g, not %d: the inputs are not rounded to bf16", op_names[op],
                          K, C[i], K);
    }
    la_set_precision(LA_FP32);
    la_matmul_nt(C, A, B, M, N, K, 0.0f);
    ck_assert_float_eq_tol(C[0], K * (1.0f + 0x1p-10f), 1e-4);
    free(A);
    free(B);
    free(C);
}
END_TEST

/* la_matmul_packed on panels packed in bf16 mode: bitwise the la_matmul_nt/nn product in
 * bf16 mode of the same inputs (the same conversion, kernel and summation order), and within
 * the bound of the exact product; panels packed in fp32 mode stay fp32 products. */
START_TEST(bf16_packed_matches_unpacked) {
    if (bf16_skip("bf16_packed_matches_unpacked")) return;
    Rng r;
    rng_seed(&r, 31);
    const int Ms[] = {1, 8, 12, 32, 33}, Ns[] = {6, 32, 33, 70}, Ks[] = {5, 64, 130, 513, 1030};
    int cases = 0;
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 5; c++)
                for (int nk = 0; nk < 2; nk++)
                    for (int beta = 0; beta < 2; beta++) {
                        int M = Ms[a], N = Ns[b], K = Ks[c];
                        size_t mn = (size_t)M * N;
                        float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
                        float *C0 = malloc(sizeof(float) * mn), *P = malloc(sizeof(float) * mn);
                        float *U = malloc(sizeof(float) * mn), *R = malloc(sizeof(float) * mn);
                        float *S = malloc(sizeof(float) * mn);
                        float *Aabs = malloc(sizeof(float) * M * K), *Wabs = malloc(sizeof(float) * N * K);
                        float *panels = aligned_alloc(64, sizeof(float) * la_packed_floats(N, K));
                        fill_spread(A, (size_t)M * K, &r);
                        fill_spread(W, (size_t)N * K, &r);
                        fill_spread(C0, mn, &r);
                        for (int i = 0; i < M * K; i++) Aabs[i] = fabsf(A[i]);
                        for (int i = 0; i < N * K; i++) Wabs[i] = fabsf(W[i]);
                        la_set_precision(LA_BF16);
                        LaPacked p;
                        if (nk)
                            la_pack_nt(&p, panels, W, N, K);
                        else
                            la_pack_nn(&p, panels, W, K, N);
                        ck_assert(p.bf16);
                        memcpy(P, C0, sizeof(float) * mn);
                        memcpy(U, C0, sizeof(float) * mn);
                        memcpy(R, C0, sizeof(float) * mn);
                        la_matmul_packed(P, A, &p, M, (float)beta);
                        if (nk)
                            la_matmul_nt(U, A, W, M, N, K, (float)beta);
                        else
                            la_matmul_nn(U, A, W, M, N, K, (float)beta);
                        for (size_t i = 0; i < mn; i++)
                            EXPECT(memcmp(&P[i], &U[i], 4) == 0, "M=%d N=%d K=%d nk=%d "
                                          "beta=%d: packed C[%zu] = %a, la_matmul_%s %a", M, N, K,
                                          nk, beta, i, (double)P[i], nk ? "nt" : "nn", (double)U[i]);
                        la_ref_matmul(R, A, W, M, N, K, (float)beta, 0, nk);
                        la_ref_matmul(S, Aabs, Wabs, M, N, K, 0.0f, 0, nk);
                        double maxdiff = 0, scale = 1e-30;
                        for (size_t i = 0; i < mn; i++) {
                            double d = fabs((double)P[i] - R[i]);
                            double bound = bf16_bound(K, S[i], beta * (double)C0[i], R[i]);
                            EXPECT(d <= bound, "M=%d N=%d K=%d nk=%d beta=%d: packed "
                                          "C[%zu] error %.3g above the bound %.3g", M, N, K, nk,
                                          beta, i, d, bound);
                            if (d > maxdiff) maxdiff = d;
                            if (fabs(R[i]) > scale) scale = fabs(R[i]);
                        }
                        ck_assert_msg(maxdiff / scale > 1e-5, "M=%d N=%d K=%d: packed bf16 "
                                      "product within %.3g of exact: not rounded?", M, N, K,
                                      maxdiff / scale);
                        /* packed in fp32 mode: read as fp32 panels whatever the mode now */
                        if (a == 4 && c == 2) {
                            la_set_precision(LA_FP32);
                            if (nk)
                                la_pack_nt(&p, panels, W, N, K);
                            else
                                la_pack_nn(&p, panels, W, K, N);
                            ck_assert(!p.bf16);
                            la_set_precision(LA_BF16);
                            memcpy(P, C0, sizeof(float) * mn);
                            la_matmul_packed(P, A, &p, M, (float)beta);
                            ck_assert_msg(max_rel_err(P, R, mn, 1.0) < 1e-5, "fp32 panels used "
                                          "in bf16 mode: error %g", max_rel_err(P, R, mn, 1.0));
                        }
                        la_set_precision(LA_FP32);
                        cases++;
                        free(A);
                        free(W);
                        free(C0);
                        free(P);
                        free(U);
                        free(R);
                        free(S);
                        free(Aabs);
                        free(Wabs);
                        free(panels);
                    }
    printf("bf16 packed products: %d cases bitwise equal to la_matmul_nt/nn\n", cases);
    la_set_precision(LA_FP32);
}
END_TEST

/* la_matmul_tn2 (two products sharing A, A converted once in bf16) gives the bits of two
 * la_matmul_tn calls, in fp32 and in bf16 (when the CPU has it), beta 0 and 1, K odd and past
 * the 512-row block, N1 and N2 not multiples of a panel; and in bf16 the second product is
 * really rounded (not the fp32 product). */
START_TEST(matmul_tn2_matches_two_calls) {
    Rng r;
    rng_seed(&r, 53);
    const int M = 45, N1 = 70, N2 = 33, Ks[] = {7, 600};
    int cases = 0;
    for (int prec = 0; prec < 2; prec++) {
        if (prec == 1 && bf16_skip("matmul_tn2_matches_two_calls (bf16)")) break;
        for (int kc = 0; kc < 2; kc++)
            for (int beta = 0; beta < 2; beta++) {
                int K = Ks[kc];
                float *A = malloc(sizeof(float) * K * M), *B1 = malloc(sizeof(float) * K * N1);
                float *B2 = malloc(sizeof(float) * K * N2);
                float *C1 = malloc(sizeof(float) * M * N1), *C2 = malloc(sizeof(float) * M * N2);
                float *D1 = malloc(sizeof(float) * M * N1), *D2 = malloc(sizeof(float) * M * N2);
                float *R2 = malloc(sizeof(float) * M * N2);
                fill_spread(A, (size_t)K * M, &r);
                fill_spread(B1, (size_t)K * N1, &r);
                fill_spread(B2, (size_t)K * N2, &r);
                fill_spread(C1, (size_t)M * N1, &r);
                fill_spread(C2, (size_t)M * N2, &r);
                memcpy(D1, C1, sizeof(float) * M * N1);
                memcpy(D2, C2, sizeof(float) * M * N2);
                memcpy(R2, C2, sizeof(float) * M * N2);
                la_set_precision(prec ? LA_BF16 : LA_FP32);
                la_matmul_tn2(C1, B1, N1, C2, B2, N2, A, M, K, (float)beta);
                la_matmul_tn(D1, A, B1, M, N1, K, (float)beta);
                la_matmul_tn(D2, A, B2, M, N2, K, (float)beta);
                la_set_precision(LA_FP32);
                ck_assert_msg(memcmp(C1, D1, sizeof(float) * M * N1) == 0,
                              "prec %d K=%d beta=%d: first product differs from la_matmul_tn",
                              prec, K, beta);
                ck_assert_msg(memcmp(C2, D2, sizeof(float) * M * N2) == 0,
                              "prec %d K=%d beta=%d: second product differs from la_matmul_tn",
                              prec, K, beta);
                if (prec == 1) { /* bf16: not the fp32 product */
                    la_matmul_tn(R2, A, B2, M, N2, K, (float)beta);
                    ck_assert_msg(max_rel_err(C2, R2, (size_t)M * N2, 1.0) > 1e-5,
                                  "K=%d: bf16 second product equals fp32's", K);
                }
                cases++;
                free(A);
                free(B1);
                free(B2);
                free(C1);
                free(C2);
                free(D1);
                free(D2);
                free(R2);
            }
    }
    printf("la_matmul_tn2: %d cases bitwise equal to two la_matmul_tn\n", cases);
}
END_TEST

/* How the work is split does not change a bit: the rows of a 33-row product equal the same
 * rows computed one at a time (and in chunks of 7, 12 and 20 + 13), and its columns the same
 * columns computed one at a time, for nt, nn, tn and the packed product, beta 0 and 1, K past
 * the 512-row block; and 1 thread (la_setup) gives the bits of 2. */
START_TEST(bf16_blocking_independent) {
    if (bf16_skip("bf16_blocking_independent")) return;
    Rng r;
    rng_seed(&r, 41);
    enum { M = 33, N = 70, K = 1029 };
    float *A = malloc(sizeof(float) * M * K); /* (M,K), or (K,M) for tn */
    float *Bnk = malloc(sizeof(float) * N * K), *Bkn = malloc(sizeof(float) * K * N);
    float *C0 = malloc(sizeof(float) * M * N), *whole = malloc(sizeof(float) * M * N),
          *part = malloc(sizeof(float) * M * N);
    float *panels = aligned_alloc(64, sizeof(float) * la_packed_floats(N, K));
    fill_spread(A, (size_t)M * K, &r);
    fill_spread(Bnk, (size_t)N * K, &r);
    fill_spread(Bkn, (size_t)K * N, &r);
    fill_spread(C0, (size_t)M * N, &r);
    la_set_precision(LA_BF16);
    la_setup(2);
    static const int chunkings[][3] = {{1, 1, 1}, {7, 7, 7}, {12, 12, 12}, {20, 13, 0}};
    static const char *const names[] = {"nt", "nn", "tn", "packed nt", "packed nn"};
    for (int op = 0; op < 5; op++)
        for (int beta = 0; beta < 2; beta++) {
            const float *B = op == 0 || op == 3 ? Bnk : Bkn;
            LaPacked p;
            if (op == 3) la_pack_nt(&p, panels, Bnk, N, K);
            if (op == 4) la_pack_nn(&p, panels, Bkn, K, N);
            memcpy(whole, C0, sizeof(float) * M * N);
            if (op < 3)
                product(op, whole, N, A, op == OP_TN ? M : K, B, op == OP_NT ? K : N, M, N, K,
                        (float)beta, 1);
            else
                la_matmul_packed(whole, A, &p, M, (float)beta);
            /* one thread */
            la_setup(1);
            memcpy(part, C0, sizeof(float) * M * N);
            if (op < 3)
                product(op, part, N, A, op == OP_TN ? M : K, B, op == OP_NT ? K : N, M, N, K,
                        (float)beta, 1);
            else
                la_matmul_packed(part, A, &p, M, (float)beta);
            la_setup(2);
            ck_assert_msg(memcmp(part, whole, sizeof(float) * M * N) == 0, "%s beta=%d: 1 thread "
                          "differs from 2", names[op], beta);
            /* rows in chunks */
            for (int ch = 0; ch < 4; ch++) {
                memcpy(part, C0, sizeof(float) * M * N);
                for (int m = 0, i = 0; m < M; i++) {
                    int rows = chunkings[ch][i % 3] ? chunkings[ch][i % 3] : M - m;
                    if (rows > M - m) rows = M - m;
                    float *c = part + (size_t)m * N;
                    if (op == OP_TN) /* rows m.. of A^T: columns m.. of A (K,M) */
                        la_gemm_tn(c, N, A + m, M, B, N, rows, N, K, (float)beta);
                    else if (op < 3)
                        product(op, c, N, A + (size_t)m * K, K, B, op == OP_NT ? K : N, rows, N,
                                K, (float)beta, 0);
                    else
                        la_matmul_packed(c, A + (size_t)m * K, &p, rows, (float)beta);
                    m += rows;
                }
                ck_assert_msg(memcmp(part, whole, sizeof(float) * M * N) == 0, "%s beta=%d: rows "
                              "in chunks of %d differ from the %d-row product", names[op], beta,
                              chunkings[ch][0], M);
            }
            if (op >= 3) continue;
            /* one column at a time (la_gemm_*: column n of B, C with ldc N) */
            memcpy(part, C0, sizeof(float) * M * N);
            for (int n = 0; n < N; n++) {
                if (op == OP_NT)
                    la_gemm_nt(part + n, N, A, K, Bnk + (size_t)n * K, K, M, 1, K, (float)beta);
                else if (op == OP_NN)
                    la_gemm_nn(part + n, N, A, K, Bkn + n, N, M, 1, K, (float)beta);
                else
                    la_gemm_tn(part + n, N, A, M, Bkn + n, N, M, 1, K, (float)beta);
            }
            ck_assert_msg(memcmp(part, whole, sizeof(float) * M * N) == 0, "%s beta=%d: columns "
                          "one at a time differ from the %d-column product", names[op], beta, N);
        }
    la_setup(1);
    la_set_precision(LA_FP32);
    free(A);
    free(Bnk);
    free(Bkn);
    free(C0);
    free(whole);
    free(part);
    free(panels);
}
END_TEST

/* RNNTRAIN_CPU_HIDE hides the named features (a comma-separated list, whole names only). */
START_TEST(bf16_cpu_hide) {
    if (bf16_skip("bf16_cpu_hide")) return;
    const char *old = getenv("RNNTRAIN_CPU_HIDE");
    char *saved = old ? strdup(old) : NULL;
    static const struct {
        const char *list, *missing; /* NULL: supported */
    } cases[] = {
        {"avx512_bf16", "avx512_bf16"},         {"sse2,avx512_bf16,foo", "avx512_bf16"},
        {"avx512_bf16,", "avx512_bf16"},        {"avx512bw", "avx512bw"},
        {"avx512f,avx512_bf16", "avx512f, avx512_bf16"},     {"avx512_bf1", NULL},
        {"avx512_bf16x", NULL},                 {"", NULL},
        {"avx2,sse4_2", NULL},                  {"AVX512_BF16", NULL},
        {"avx512vl,avx512bw", "avx512bw, avx512vl"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        setenv("RNNTRAIN_CPU_HIDE", cases[i].list, 1);
        const char *missing = NULL;
        int ok = bf16_supported(&missing);
        if (cases[i].missing) {
            ck_assert_msg(!ok, "RNNTRAIN_CPU_HIDE=%s: still supported", cases[i].list);
            ck_assert_msg(missing && strcmp(missing, cases[i].missing) == 0, "RNNTRAIN_CPU_HIDE="
                          "%s: missing %s, expected %s", cases[i].list, missing ? missing : "NULL",
                          cases[i].missing);
        } else {
            ck_assert_msg(ok, "RNNTRAIN_CPU_HIDE=%s hides bf16 (missing %s)", cases[i].list,
                          missing ? missing : "NULL");
        }
    }
    if (saved) {
        setenv("RNNTRAIN_CPU_HIDE", saved, 1);
        free(saved);
    } else {
        unsetenv("RNNTRAIN_CPU_HIDE");
    }
    ck_assert(bf16_supported(NULL));
}
END_TEST

/* la_flush_denormals: subnormal inputs read as zero and subnormal results flushed, in this
 * thread and in every thread of the OpenMP pool (MXCSR is per thread); restored after. */
START_TEST(flush_denormals_all_threads) {
#if defined(__x86_64__)
    unsigned saved = _mm_getcsr();
    volatile float tiny = 1e-39f, one = 1.0f, small = 0x1p-126f;
    ck_assert(tiny * one != 0.0f); /* the default: subnormals kept */
    la_flush_denormals();
    ck_assert(tiny * one == 0.0f);  /* DAZ: the subnormal input is zero */
    ck_assert(small * 0.5f == 0.0f); /* FTZ: a subnormal result is zero */
    int threads = omp_get_max_threads() < 2 ? 2 : omp_get_max_threads(), flushed = 0;
#pragma omp parallel num_threads(threads) reduction(+ : flushed)
    flushed += (tiny * one == 0.0f) && (_mm_getcsr() & 0x8040) == 0x8040;
    ck_assert_int_eq(flushed, threads);
    _mm_setcsr(saved);
#pragma omp parallel num_threads(threads)
    _mm_setcsr(saved);
    ck_assert(tiny * one != 0.0f);
#endif
}
END_TEST

/* after every bf16 case, failed or not: back to fp32 for the cases that follow */
static void bf16_teardown(void) {
    la_set_precision(LA_FP32);
    bf16_release();
}

static Suite *linalg_suite(void) {
    Suite *s = suite_create("linalg");
    TCase *tc = tcase_create("linalg");
    tcase_add_test(tc, packed_matches_reference);
    tcase_add_test(tc, blas_wrappers_match_reference);
    tcase_add_test(tc, blas_core_matches_cpu);
    tcase_add_test(tc, flush_denormals_all_threads);
    tcase_add_test(tc, matmul_tn2_matches_two_calls);
    suite_add_tcase(s, tc);
    TCase *tb = tcase_create("bf16");
    tcase_add_checked_fixture(tb, NULL, bf16_teardown);
    tcase_add_test(tb, bf16_round_matches_instruction);
    tcase_add_test(tb, bf16_products_within_bound);
    tcase_add_test(tb, bf16_packed_matches_unpacked);
    tcase_add_test(tb, bf16_blocking_independent);
    tcase_add_test(tb, bf16_cpu_hide);
    tcase_set_timeout(tb, 120);
    suite_add_tcase(s, tb);
    printf("packed AVX-512 recurrent kernel in use: %s\n", la_packed_native() ? "yes" : "no");
    return s;
}

TEST_MAIN(linalg_suite)
