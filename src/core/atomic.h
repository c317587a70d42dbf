/* atomic: output files that appear complete or not at all (model files, checkpoints, the
 * datasets of prepare).
 *
 *   AtomicFile a;
 *   atomic_begin(&a, "out/model.h5", "model file");  // a.tmp = "out/.model.h5.tmp.PID"
 *   ... create and write a.tmp, close it ...
 *   atomic_commit(&a);  // fsync a.tmp, rename it to out/model.h5, fsync out/
 *
 * The temporary file is in the final file's own directory, because rename() replaces a file
 * atomically only within one file system. Its name is hidden and carries the pid, so two
 * writers never share it (ckpt_remove_stale recognises the checkpoints' ".ckpt-*.h5.tmp.*").
 * Until the commit the final path is untouched: a crash leaves the old file or, after the
 * commit, the whole new one. If the process dies through rt_die() between begin and commit
 * (a failed write, a failed rename, any error), the temporary file is unlinked first, so no
 * partial file is left behind. A kill that bypasses rt_die (SIGKILL, MPI_Abort from another
 * rank) can leave one; it is never read under the final name. */
#ifndef RNNTRAIN_ATOMIC_H
#define RNNTRAIN_ATOMIC_H

#define ATOMIC_PATH_MAX 4096

typedef struct {
    char final[ATOMIC_PATH_MAX]; /* the path asked for */
    char tmp[ATOMIC_PATH_MAX];   /* where to write: DIR/.BASENAME.tmp.PID */
    char dir[ATOMIC_PATH_MAX];   /* DIR, fsynced after the rename */
    const char *what;            /* for messages: "model file", "checkpoint", "--output" */
    int slot;                    /* registration, so rt_die can unlink tmp */
} AtomicFile;

/* Fills a (the temporary path) and registers a.tmp for removal should the process die.
 * Creates nothing: the caller creates a.tmp. Every atomic_begin must be followed by
 * atomic_commit (or the process dies). */
void atomic_begin(AtomicFile *a, const char *final_path, const char *what);
/* The writer has closed a.tmp: fsyncs it, renames it over a.final and fsyncs the directory.
 * Dies (status 1) naming `what` and the paths if any of these fails. */
void atomic_commit(AtomicFile *a);
/* Unlinks every registered temporary file. Called by rt_die before it ends the job. */
void atomic_discard_all(void);

#endif
