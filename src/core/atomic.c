#include "atomic.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* Temporary files begun and not yet committed ("" = free slot). Copies, not pointers to the
 * callers' AtomicFile, so rt_die never reads a stack frame that is gone. One writer has one
 * file open at a time; a few slots leave room. */
#define ATOMIC_SLOTS 4
static char g_pending[ATOMIC_SLOTS][ATOMIC_PATH_MAX];

static void copy_path(char *dst, const char *src, size_t n, const AtomicFile *a,
                      const char *path) {
    if (n >= ATOMIC_PATH_MAX)
        rt_die(EXIT_RUNTIME, "%s '%s': path too long (%zu bytes, at most %d)", a->what, path, n,
               ATOMIC_PATH_MAX - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

void atomic_begin(AtomicFile *a, const char *final_path, const char *what) {
    a->what = what;
    a->slot = -1;
    size_t len = strlen(final_path);
    copy_path(a->final, final_path, len, a, final_path);
    /* the name is the last component; "out/" names out, like rename() reads it */
    size_t end = len;
    while (end > 1 && final_path[end - 1] == '/') end--;
    size_t base = end;
    while (base > 0 && final_path[base - 1] != '/') base--;
    if (base == end) /* "", "/" */
        rt_die(EXIT_RUNTIME, "%s '%s': not a file name", what, final_path);
    if (base == 0)
        copy_path(a->dir, ".", 1, a, final_path);
    else /* keep the slash of "/x" (the root), drop it otherwise */
        copy_path(a->dir, final_path, base > 1 ? base - 1 : 1, a, final_path);
    int n = snprintf(a->tmp, sizeof a->tmp, "%.*s.%.*s.tmp.%ld", (int)base, final_path,
                     (int)(end - base), final_path + base, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof a->tmp)
        rt_die(EXIT_RUNTIME, "%s '%s': path too long for its temporary name (at most %d bytes)",
               what, final_path, ATOMIC_PATH_MAX - 1);
    for (int i = 0; i < ATOMIC_SLOTS && a->slot < 0; i++)
        if (!g_pending[i][0]) a->slot = i;
    REQUIRE(a->slot >= 0); /* more files open at once than any writer has */
    memcpy(g_pending[a->slot], a->tmp, (size_t)n + 1);
}

void atomic_commit(AtomicFile *a) {
    REQUIRE(a->slot >= 0 && a->slot < ATOMIC_SLOTS && strcmp(g_pending[a->slot], a->tmp) == 0);
    /* on disk before it gets the final name: a crash after the rename must not leave an
     * empty or partial file under that name */
    rt_fsync_path(a->tmp, a->what);
    if (rename(a->tmp, a->final) != 0)
        rt_die(EXIT_RUNTIME, "%s '%s': cannot rename the finished temporary file '%s' to it: %s "
               "('%s' is as it was; the temporary file is removed)", a->what, a->final, a->tmp,
               strerror(errno), a->final);
    g_pending[a->slot][0] = 0;
    a->slot = -1;
    /* the rename itself is durable only once the directory is */
    char what_dir[256];
    snprintf(what_dir, sizeof what_dir, "directory of the %s", a->what);
    rt_fsync_path(a->dir, what_dir);
}

void atomic_discard_all(void) {
    for (int i = 0; i < ATOMIC_SLOTS; i++)
        if (g_pending[i][0]) {
            unlink(g_pending[i]); /* best effort: we are already dying of another error */
            g_pending[i][0] = 0;
        }
}
