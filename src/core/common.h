/* common: errors that stop the job, checked allocation, checks that stay on, logging.
 *
 * Every failure goes through rt_die(): it prints "rnntrain: <where>: <message>" tagged with
 * the MPI rank when there are several, unlinks the temporary files of unfinished atomic
 * writes (atomic.h), then ends the whole job (dist_abort) with the given exit status.
 * Exit statuses are documented in README.md:
 *   0 success, 1 runtime failure, 2 bad command line, 3 bad input file,
 *   75 stopped by a signal after writing a checkpoint (resume to continue; EX_TEMPFAIL). */
#ifndef RNNTRAIN_COMMON_H
#define RNNTRAIN_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RNNTRAIN_VERSION "0.1.0"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_INPUT = 3, EXIT_CHECKPOINTED = 75, EXIT_STALLED = 76 };

#if defined(__GNUC__)
#define RT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define RT_NORETURN __attribute__((noreturn))
/* Bodies of cloned loops: inlined into each clone, so each gets that clone's instructions. */
#define RT_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define RT_PRINTF(a, b)
#define RT_NORETURN
#define RT_ALWAYS_INLINE inline
#endif

/* Element-wise loops over whole buffers: AVX-512, AVX2 and baseline clones chosen at load
 * time (same IEEE results: ISO C mode, so no FMA contraction). Off under ASan. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define RT_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
/* Loops written with explicit fmaf(): x86-64-v4 (AVX-512) and v3 (AVX2 + FMA) clones use the
 * FMA instructions, the baseline clone libm's fmaf; all give the same, correctly rounded,
 * results. */
#define RT_FMA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RT_SIMD_CLONES
#define RT_FMA_CLONES
#endif

void rt_die(int status, const char *fmt, ...) RT_PRINTF(2, 3) RT_NORETURN;
/* Like rt_die but for internal invariants: names the source location. */
void rt_fail_check(const char *file, int line, const char *expr) RT_NORETURN;
/* Informational message on rank 0 only (stderr). */
void rt_log(const char *fmt, ...) RT_PRINTF(1, 2);

/* REQUIRE stays on in release builds (no assert). */
#define REQUIRE(cond)                                                                      \
    do {                                                                                   \
        if (!(cond)) rt_fail_check(__FILE__, __LINE__, #cond);                             \
    } while (0)

void *rt_malloc(size_t bytes, const char *what);
void *rt_calloc(size_t count, size_t size, const char *what);
void *rt_realloc(void *p, size_t bytes, const char *what);
char *rt_strdup(const char *s);
/* n floats, zeroed, 64-byte aligned (for vector loads); free with free(). */
float *rt_alloc_floats(size_t n, const char *what);
/* fsync a file or directory by path; dies (naming what) if that fails, so nothing is
 * renamed into place that is not on disk. */
void rt_fsync_path(const char *path, const char *what);
/* Monotonic wall clock in seconds. */
double rt_seconds(void);
/* NULL if path is a regular file (symlinks followed) or does not exist; else what it is
 * ("a FIFO", "a directory", ...): opening a FIFO blocks until a writer comes, so every
 * reader that needs a file refuses the others first. */
const char *rt_not_regular(const char *path);
/* 1 if a and b name the same existing file (device and inode: ./x, links and symlinks
 * included); 0 otherwise, or if either does not exist. */
int rt_same_file(const char *a, const char *b);
/* Peak resident set size of this process in MiB (from getrusage). */
double rt_peak_rss_mb(void);

#endif
