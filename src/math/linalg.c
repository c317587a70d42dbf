#include "linalg.h"

#include "bf16.h"
#include "common.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LA_HAVE_X86 1
#endif

static LaPrecision g_precision = LA_FP32;

void la_set_precision(LaPrecision p) { g_precision = p; }
LaPrecision la_precision(void) { return g_precision; }

/* --deterministic with --threads K > 1: OpenBLAS's threaded sgemm does not give the bits of
 * its one-thread sgemm when K is not a multiple of its block of K (seen on AMD Zen 4 for
 * K = 385, 513, 700, 1025 with 1 vs 2 threads), so its products run on one thread; our own
 * loops and the bf16 kernels still use all K. The OpenMP build of OpenBLAS takes its thread
 * count from omp_get_max_threads() at each call, the pthreads build from
 * openblas_set_num_threads: both are set to 1 around the call. */
static int g_blas_serial;

void la_set_blas_serial(int on) { g_blas_serial = on; }

static int blas_threads_begin(void) {
    int n = omp_get_max_threads();
    if (!g_blas_serial || n == 1) return 0;
    openblas_set_num_threads(1);
    omp_set_num_threads(1);
    return n;
}

static void blas_threads_end(int n) {
    if (n == 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

void la_gemm_nt(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M,
                int N, int K, float beta) {
    if (g_precision == LA_BF16) {
        bf16_gemm(C, ldc, A, lda, 0, B, ldb, 1, M, N, K, beta);
        return;
    }
    int n = blas_threads_begin();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb,
                beta, C, ldc);
    blas_threads_end(n);
}

void la_gemm_nn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M,
                int N, int K, float beta) {
    if (g_precision == LA_BF16) {
        bf16_gemm(C, ldc, A, lda, 0, B, ldb, 0, M, N, K, beta);
        return;
    }
    int n = blas_threads_begin();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B,
                ldb, beta, C, ldc);
    blas_threads_end(n);
}

void la_gemm_tn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M,
                int N, int K, float beta) {
    if (g_precision == LA_BF16) {
        bf16_gemm(C, ldc, A, lda, 1, B, ldb, 0, M, N, K, beta);
        return;
    }
    int n = blas_threads_begin();
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb,
                beta, C, ldc);
    blas_threads_end(n);
}

void la_matmul_nt(float *C, const float *A, const float *B, int M, int N, int K, float beta) {
    la_gemm_nt(C, N, A, K, B, K, M, N, K, beta);
}

void la_matmul_nn(float *C, const float *A, const float *B, int M, int N, int K, float beta) {
    la_gemm_nn(C, N, A, K, B, N, M, N, K, beta);
}

void la_matmul_tn(float *C, const float *A, const float *B, int M, int N, int K, float beta) {
    la_gemm_tn(C, N, A, M, B, N, M, N, K, beta);
}

void la_matmul_tn2(float *C1, const float *B1, int N1, float *C2, const float *B2, int N2,
                   const float *A, int M, int K, float beta) {
    if (g_precision == LA_BF16) {
        bf16_gemm_tn2(C1, N1, B1, N1, N1, C2, N2, B2, N2, N2, A, M, M, K, beta);
        return;
    }
    la_matmul_tn(C1, A, B1, M, N1, K, beta);
    la_matmul_tn(C2, A, B2, M, N2, K, beta);
}

/* --threads: the columns in one contiguous range per thread (a multiple of 16 wide; one
 * range with one thread: rows read whole, in order); each column is summed over the rows in
 * order whatever the ranges (the same bits on any thread count) */
static int colsum_ranges(int N, int *width) {
    int n = omp_get_max_threads();
    if (n < 2 || N < 64) {
        *width = N;
        return 1;
    }
    *width = ((N + n - 1) / n + 15) & ~15;
    return (N + *width - 1) / *width;
}

void la_colsum_add(float *db, const float *A, int M, int N) {
    int w, nr = colsum_ranges(N, &w);
#pragma omp parallel for schedule(static) if (nr > 1)
    for (int j = 0; j < nr; j++) {
        int n0 = j * w, n1 = n0 + w < N ? n0 + w : N;
        for (int m = 0; m < M; m++) {
            const float *row = A + (long)m * N;
            for (int n = n0; n < n1; n++) db[n] += row[n];
        }
    }
}

void la_colsum_add2(float *restrict db1, float *restrict db2, const float *restrict A, int M,
                    int N) {
    int w, nr = colsum_ranges(N, &w);
#pragma omp parallel for schedule(static) if (nr > 1)
    for (int j = 0; j < nr; j++) {
        int n0 = j * w, n1 = n0 + w < N ? n0 + w : N;
        for (int m = 0; m < M; m++) {
            const float *row = A + (long)m * N;
            for (int n = n0; n < n1; n++) {
                db1[n] += row[n];
                db2[n] += row[n];
            }
        }
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
    if (threads > 0) {
        openblas_set_num_threads(threads);
        omp_set_num_threads(threads);
    }
    if (threads > 1 && openblas_get_parallel() == 1)
        rt_log("warning: --threads %d: this OpenBLAS is the pthreads build, whose threads "
               "compete with OpenMP's for the cores (several times slower); install "
               "libopenblas-openmp-dev and rebuild\n", threads);
    return openblas_get_corename();
}

void la_flush_denormals(void) {
#ifdef LA_HAVE_X86
    /* MXCSR is per thread: this one, and every thread of the OpenMP pool (OpenBLAS's too,
     * in its OpenMP build); threads created later inherit it from their creator */
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ (bit 15) and DAZ (bit 6) */
#pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

/* Vector ISA level of the x86 OpenBLAS core names: 0 SSE (the generic fallbacks OpenBLAS
 * picks for CPUs it does not know), 1 AVX, 2 AVX2+FMA, 3 AVX-512; -1 for a name not in the
 * table (an OpenBLAS newer than it, or another architecture: left alone). */
static int core_level_or_unknown(const char *name) {
    static const struct {
        const char *name;
        int level;
    } cores[] = {{"Prescott", 0},    {"Core2", 0},       {"Penryn", 0},      {"Dunnington", 0},
                 {"Nehalem", 0},     {"Atom", 0},        {"Northwood", 0},   {"Katmai", 0},
                 {"Coppermine", 0},  {"Banias", 0},      {"Unknown", 0},     {"Sandybridge", 1},
                 {"Bulldozer", 1},   {"Piledriver", 1},  {"Steamroller", 1}, {"Haswell", 2},
                 {"Zen", 2},         {"Excavator", 2},   {"SkylakeX", 3},    {"Cooperlake", 3},
                 {"SapphireRapids", 3}};
    for (size_t i = 0; i < sizeof cores / sizeof *cores; i++)
        if (strcasecmp(name, cores[i].name) == 0) return cores[i].level;
    return -1;
}

int la_core_level(const char *name) {
    int level = core_level_or_unknown(name);
    return level < 0 ? 0 : level;
}

const char *la_best_core_for_cpu(void) {
#if defined(LA_HAVE_X86)
    __builtin_cpu_init();
    /* the builtins report a feature only when the OS also saves its registers (XCR0) */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512cd"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "Sandybridge";
#endif
    return NULL;
}

void la_choose_blas_core(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("RNNTRAIN_KEEP_BLAS_CORE")) return;
    const char *have = openblas_get_corename();
    const char *want = la_best_core_for_cpu();
    if (!have || !want) return;
    /* a core below the CPU's ISA is replaced; names the table does not know are left alone */
    int level = core_level_or_unknown(have);
    if (level < 0 || level >= la_core_level(want)) return;
    /* exec the file /proc/self/exe resolves to, not the /proc link itself: the process keeps
     * the binary's name (ps, pgrep, killall and batch systems' process tracking see
     * "rnntrain", or the target's name for a symlinked install). Not when the program was
     * started through the dynamic loader (ld-linux*.so ./rnntrain ...): /proc/self/exe is
     * then the loader, and exec'ing it with our argv would run the wrong program. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t)n >= sizeof self - 1) return;
    self[n] = 0;
    const char *base = strrchr(self, '/');
    base = base ? base + 1 : self;
    if (strncmp(base, "ld-", 3) == 0 || strncmp(base, "ld.so", 5) == 0) return;
    /* OpenBLAS reads OPENBLAS_CORETYPE once, when the library is loaded: run this program
     * again with it set. The variable is set from now on, so this happens at most once. */
    if (setenv("OPENBLAS_CORETYPE", want, 1) != 0 ||
        setenv("RNNTRAIN_BLAS_DETECTED", have, 1) != 0)
        return;
    execv(self, argv);
    /* exec failed (binary deleted or replaced?): carry on with the kernels OpenBLAS chose */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("RNNTRAIN_BLAS_DETECTED");
}

void la_core_text(char *buf, size_t size) {
    const char *core = openblas_get_corename();
    const char *detected = getenv("RNNTRAIN_BLAS_DETECTED");
    const char *set = getenv("OPENBLAS_CORETYPE");
    if (detected && set && strcasecmp(core, set) != 0)
        snprintf(buf, size, "%s; OpenBLAS detected %s on this CPU and ignored "
                 "OPENBLAS_CORETYPE=%s (built without run-time kernel choice?)", core, detected,
                 set);
    else if (detected && set)
        snprintf(buf, size, "%s; OpenBLAS detected %s on this CPU, rnntrain set "
                 "OPENBLAS_CORETYPE=%s", core, detected, set);
    else if (set)
        snprintf(buf, size, "%s; OPENBLAS_CORETYPE=%s", core, set);
    else
        snprintf(buf, size, "%s", core);
}

size_t la_packed_floats(int N, int K) {
    size_t panels = ((size_t)N + LA_PANEL - 1) / LA_PANEL;
    return panels * (size_t)K * LA_PANEL;
}

/* panels[j][k][c] = element (row k, column j*LA_PANEL + c) of the logical B (K,N). */
static void pack(LaPacked *p, float *panels, const float *W, int N, int K, int w_is_nk) {
    p->panels = panels;
    p->w = W;
    p->N = N;
    p->K = K;
    p->w_is_nk = w_is_nk;
    p->unpacked = 0;
    p->bf16 = g_precision == LA_BF16;
    if (p->bf16) { /* bf16 panels fit in the fp32 ones: (K+1)*64 bytes each, not 128*K */
        REQUIRE(bf16_packed_elems(N, K) * sizeof(uint16_t) <=
                la_packed_floats(N, K) * sizeof(float));
        bf16_pack((uint16_t *)panels, W, w_is_nk ? K : N, N, K, w_is_nk);
        return;
    }
    if (!la_packed_native()) return;
    int np = (N + LA_PANEL - 1) / LA_PANEL;
#pragma omp parallel for schedule(static) if (np > 1 && omp_get_max_threads() > 1)
    for (int j = 0; j < np; j++) {
        float *dst = panels + (size_t)j * K * LA_PANEL;
        int cols = N - j * LA_PANEL < LA_PANEL ? N - j * LA_PANEL : LA_PANEL;
        if (w_is_nk) {
            memset(dst, 0, (size_t)K * LA_PANEL * sizeof(float));
            for (int c = 0; c < cols; c++) {
                const float *row = W + (size_t)(j * LA_PANEL + c) * K;
                for (int k = 0; k < K; k++) dst[(size_t)k * LA_PANEL + c] = row[k];
            }
        } else {
            for (int k = 0; k < K; k++) {
                float *d = dst + (size_t)k * LA_PANEL;
                memcpy(d, W + (size_t)k * N + j * LA_PANEL, (size_t)cols * sizeof(float));
                memset(d + cols, 0, (size_t)(LA_PANEL - cols) * sizeof(float));
            }
        }
    }
}

void la_pack_nt(LaPacked *p, float *panels, const float *W, int N, int K) {
    pack(p, panels, W, N, K, 1);
}

void la_pack_nn(LaPacked *p, float *panels, const float *W, int K, int N) {
    pack(p, panels, W, N, K, 0);
}

void la_unpacked_nt(LaPacked *p, const float *W, int N, int K) {
    LaPacked u = {NULL, W, N, K, 1, 1, 0};
    *p = u;
}

#ifdef LA_HAVE_X86
/* C rows [0,mr) x columns [0,nr) (mr <= R, nr <= 32) = beta*C + A . panel, with an R x 32
 * block of C in 2R zmm registers over the whole of K (R = 8 or 12: 16 or 24 accumulators,
 * plus the two panel vectors and one broadcast). Rows past mr read row 0 (valid memory)
 * and are not stored. Every element is summed over k in order, whatever R is, so the
 * results do not depend on the blocking. Iteration k also asks for cache lines k and K+k
 * of pf (those below pf_lines <= 2K) to be brought into L2: the caller points pf at (a part
 * of) the next panel. */
__attribute__((target("avx512f"), always_inline)) static inline void
kernel_rx32(const int R, int K, const float *A, int lda, const float *panel, float *C, int ldc,
            int mr, int nr, float beta, const char *pf, int pf_lines) {
    __m512 c0[12], c1[12];
    const float *a[12];
    for (int r = 0; r < R; r++) {
        c0[r] = _mm512_setzero_ps();
        c1[r] = _mm512_setzero_ps();
        a[r] = A + (size_t)(r < mr ? r : 0) * lda;
    }
    for (int k = 0; k < K; k++) {
        if (k < pf_lines) _mm_prefetch(pf + (size_t)k * 64, _MM_HINT_T1);
        if (K + k < pf_lines) _mm_prefetch(pf + ((size_t)K + k) * 64, _MM_HINT_T1);
        __m512 b0 = _mm512_load_ps(panel + (size_t)k * LA_PANEL);
        __m512 b1 = _mm512_load_ps(panel + (size_t)k * LA_PANEL + 16);
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[r][k]);
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
    }
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    __m512 vb = _mm512_set1_ps(beta);
    for (int r = 0; r < mr; r++) {
        float *crow = C + (size_t)r * ldc;
        if (beta != 0.0f) {
            c0[r] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, crow), c0[r]);
            c1[r] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, crow + 16), c1[r]);
        }
        _mm512_mask_storeu_ps(crow, m0, c0[r]);
        _mm512_mask_storeu_ps(crow + 16, m1, c1[r]);
    }
}

__attribute__((target("avx512f"))) static void kernel_8x32(int K, const float *A, int lda,
                                                           const float *panel, float *C,
                                                           int ldc, int mr, int nr, float beta,
                                                           const char *pf, int pf_lines) {
    kernel_rx32(8, K, A, lda, panel, C, ldc, mr, nr, beta, pf, pf_lines);
}

/* 12 rows load each panel vector for 24 FMAs instead of 16: +7-15% on this generation of
 * Xeon for the 32-stream LSTM step, where the panel comes from L2 (scripts/bench_packed.c) */
__attribute__((target("avx512f"))) static void kernel_12x32(int K, const float *A, int lda,
                                                            const float *panel, float *C,
                                                            int ldc, int mr, int nr, float beta,
                                                            const char *pf, int pf_lines) {
    kernel_rx32(12, K, A, lda, panel, C, ldc, mr, nr, beta, pf, pf_lines);
}
#endif

size_t la_kept_row_bytes(int K) {
    return g_precision == LA_BF16 ? (size_t)bf16_row_stride(K) * sizeof(uint16_t) : 0;
}

void la_keep_rows(void *keep, const float *A, int M, int K) {
    if (g_precision == LA_BF16 && keep) bf16_convert_rows((uint16_t *)keep, A, K, M, K);
}

void la_matmul_packed_keep(float *C, const float *A, const LaPacked *p, int M, float beta,
                           void *keep) {
    if (g_precision == LA_BF16 && keep) {
        la_keep_rows(keep, A, M, p->K);
        if (p->bf16) {
            bf16_matmul_packed(C, p->N, (const uint16_t *)keep, bf16_row_stride(p->K),
                               (const uint16_t *)p->panels, M, p->N, p->K, beta);
            return;
        }
    }
    la_matmul_packed(C, A, p, M, beta);
}

void la_matmul_nn_kept(float *C, const float *A, const void *keep, const float *B, int M, int N,
                       int K, float beta) {
    if (g_precision == LA_BF16 && keep) {
        bf16_gemm_converted(C, N, (const uint16_t *)keep, bf16_row_stride(K), B, N, 0, M, N, K,
                            beta);
        return;
    }
    la_matmul_nn(C, A, B, M, N, K, beta);
}

int la_packed_native(void) {
#ifdef LA_HAVE_X86
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return cached;
#else
    return 0;
#endif
}

void la_matmul_packed(float *C, const float *A, const LaPacked *p, int M, float beta) {
    int N = p->N, K = p->K;
    if (p->bf16) {
        bf16_gemm_prepacked(C, N, A, K, (const uint16_t *)p->panels, M, N, K, beta);
        return;
    }
#ifdef LA_HAVE_X86
    if (la_packed_native() && !p->unpacked) {
        int np = (N + LA_PANEL - 1) / LA_PANEL;
        /* A panel is K rows of 128 bytes (2K cache lines). The row-block passes over panel
         * j prefetch panel j+1 into L2: a single pass all of it, otherwise the first pass
         * the first half and the second the rest, so that panel j+1 arrives from L3 while
         * panel j is computed from L1/L2 (W_hh of an H=512 LSTM is 4 MB: it does not stay
         * in L2 from one step to the next) */
        size_t panel_floats = (size_t)K * LA_PANEL;
        int passes = 0, i0 = 0;
        for (; M - i0 >= 20 || M - i0 == 12; i0 += 12) passes++;
        for (; i0 < M; i0 += 8) passes++;
        /* --threads: the panels (column blocks) are shared out; each element is computed
         * as with one thread */
#pragma omp parallel for schedule(static) if (np > 1 && omp_get_max_threads() > 1)
        for (int j = 0; j < np; j++) {
            const float *panel = p->panels + (size_t)j * panel_floats;
            const char *next = (const char *)(panel + panel_floats);
            int nr = N - j * LA_PANEL < LA_PANEL ? N - j * LA_PANEL : LA_PANEL, pass = 0, i;
            /* 12-row blocks while the rest is not left with a thin remainder (M = 32: 12, 12,
             * 8; M = 16: 8, 8), then 8-row blocks */
            for (i = 0; M - i >= 20 || M - i == 12; i += 12, pass++) {
                int pf_lines = j + 1 == np ? 0 : passes == 1 ? 2 * K : pass < 2 ? K : 0;
                kernel_12x32(K, A + (size_t)i * K, K, panel, C + (size_t)i * N + j * LA_PANEL, N,
                             12, nr, beta, pf_lines && pass == 1 ? next + (size_t)K * 64 : next,
                             pf_lines);
            }
            for (; i < M; i += 8, pass++) {
                int pf_lines = j + 1 == np ? 0 : passes == 1 ? 2 * K : pass < 2 ? K : 0;
                kernel_8x32(K, A + (size_t)i * K, K, panel, C + (size_t)i * N + j * LA_PANEL, N,
                            M - i < 8 ? M - i : 8, nr, beta,
                            pf_lines && pass == 1 ? next + (size_t)K * 64 : next, pf_lines);
            }
        }
        return;
    }
#endif
    if (p->w_is_nk)
        la_matmul_nt(C, A, p->w, M, N, K, beta);
    else
        la_matmul_nn(C, A, p->w, M, N, K, beta);
}
