/* checkpoint: everything needed to continue a run exactly, in one HDF5 file per checkpoint
 * (schema in docs/formats.md): the model header of model files (model_io.h), parameters
 * under PyTorch state_dict names, optimizer state, step/epoch/cursor, the carried state of
 * every GLOBAL stream (each named state tensor of each layer)
 * (so a run can resume on another number of ranks), the effective configuration, a format
 * version, and a checksum on every dataset.
 *
 * Writing is atomic: rank 0 writes DIR/.ckpt-STEP.h5.tmp.PID, flushes, fsyncs and renames it
 * to DIR/ckpt-STEP.h5 (then fsyncs DIR), so a kill at any moment leaves every earlier
 * checkpoint intact; older checkpoints beyond --keep are removed only after that. */
#ifndef RNNTRAIN_CHECKPOINT_H
#define RNNTRAIN_CHECKPOINT_H

#include <stdint.h>

#include "data.h"
#include "model.h"
#include "optim.h"

typedef struct {
    int64_t step;    /* updates done */
    int64_t epoch;   /* completed epochs */
    int64_t cursor;  /* position of every stream in the train split */
    int64_t skipped; /* non-finite updates skipped so far */
    double lr_scale; /* multiplies the schedule (reduced after a rollback) */
} Progress;

/* What must match between a checkpoint and the run that resumes it. */
typedef struct {
    int global_streams, bptt;
    int bptt_step; /* language models: tokens per update (--bptt-step); = bptt by default */
    int64_t train_tokens;
} RunShape;

/* Collective: every rank passes the model (parameters, optimizer state) and the carried
 * state of its streams; rank 0 writes. Dies on failure, never leaving a partial file under
 * the final name. */
void ckpt_save(const char *dir, int keep, const Model *m, const ModelState *st, const Optim *o,
               const Progress *p, const RunShape *rs, const Vocab *vocab,
               const char *config); /* vocab NULL for sequence tasks */
/* Resolves --resume: "auto" picks the newest checkpoint in dir that verifies (saying why it
 * skips damaged ones); returns NULL if there is none. A path must verify or the job stops.
 * Caller frees. Runs on rank 0 and broadcasts the choice. */
char *ckpt_find(const char *dir, const char *resume);
/* Collective: loads the checkpoint into m's parameters and optimizer state (m built with the
 * run's shape), o, p, and this rank's streams' carried state into st. Dies with a clear
 * message if the checkpoint does not fit the run. */
void ckpt_load(const char *path, Model *m, ModelState *st, Optim *o, Progress *p,
               const RunShape *rs);
/* Removes temporary checkpoint files (.ckpt-*.h5.tmp.*) left in dir by a killed job.
 * Called by rank 0 when a run starts: the directory belongs to that run. */
void ckpt_remove_stale(const char *dir);
/* Checkpoints (by name) in dir; the newest one's name into newest (may be NULL). */
int ckpt_count(const char *dir, char *newest, size_t size);
/* The value of `key` in the configuration text a checkpoint was written with ("" if it has
 * no such line). */
void ckpt_config_value(const char *path, const char *key, char *value, size_t size);
/* The same from a configuration text ("key=value" lines). */
void config_value(const char *text, const char *key, char *value, size_t size);
/* Non-dying verification (format, version, checksums); 0 if good, else -1 and why. */
int ckpt_verify(const char *path, char *why, size_t size);

#endif
