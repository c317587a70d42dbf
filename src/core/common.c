#include "common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "atomic.h"
#include "dist.h"

void rt_die(int status, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (dist_size() > 1)
        fprintf(stderr, "rnntrain[rank %d]: error: %s\n", dist_rank(), msg);
    else
        fprintf(stderr, "rnntrain: error: %s\n", msg);
    fflush(stderr);
    atomic_discard_all();
    dist_abort(status);
}

void rt_fail_check(const char *file, int line, const char *expr) {
    rt_die(EXIT_RUNTIME, "internal check failed at %s:%d: %s (please report this)", file, line,
           expr);
}

void rt_log(const char *fmt, ...) {
    if (dist_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

void *rt_malloc(size_t bytes, const char *what) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) rt_die(EXIT_RUNTIME, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *rt_calloc(size_t count, size_t size, const char *what) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        rt_die(EXIT_RUNTIME, "out of memory allocating %zu x %zu bytes for %s", count, size,
               what);
    return p;
}

void *rt_realloc(void *p, size_t bytes, const char *what) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) rt_die(EXIT_RUNTIME, "out of memory growing %s to %zu bytes", what, bytes);
    return q;
}

float *rt_alloc_floats(size_t n, const char *what) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, (n ? n : 1) * sizeof(float)) != 0)
        rt_die(EXIT_RUNTIME, "out of memory allocating %zu floats for %s", n, what);
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

char *rt_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = rt_malloc(n, "string");
    memcpy(p, s, n);
    return p;
}

void rt_fsync_path(const char *path, const char *what) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) rt_die(EXIT_RUNTIME, "%s '%s': cannot open it to flush it: %s", what, path, strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        rt_die(EXIT_RUNTIME, "%s '%s': fsync failed (%s); it may not be on disk", what, path,
               strerror(e));
    }
    close(fd);
}

double rt_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double rt_peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

const char *rt_not_regular(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return NULL;
    return S_ISFIFO(st.st_mode)  ? "a FIFO"
           : S_ISDIR(st.st_mode) ? "a directory"
           : S_ISCHR(st.st_mode) ? "a character device"
           : S_ISBLK(st.st_mode) ? "a block device"
           : S_ISSOCK(st.st_mode) ? "a socket"
                                  : "not a regular file";
}

int rt_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}
