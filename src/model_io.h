/* model_io: the model file (DIR/model.h5, schema in docs/formats.md): PyTorch state_dict
 * names and shapes under /params, the shape and vocabulary as attributes. Written to a
 * temporary file and renamed, so an existing model is never half-overwritten. */
#ifndef RNNTRAIN_MODEL_IO_H
#define RNNTRAIN_MODEL_IO_H

#include <hdf5.h>

#include "data.h"
#include "model.h"

/* Writes every tensor of the array `base` (p's layout: values, or optimizer state) as
 * group/<name> (float32, PyTorch shape), with a checksum attribute if `checksums`. */
void model_io_write_params(hid_t f, const char *group, const Params *p, const float *base,
                           int checksums, const char *path);
/* Reads every tensor of p's layout from group/<name> into base; shapes must match. */
void model_io_read_params(hid_t f, const char *group, const Params *p, float *base,
                          const char *path);
/* vocab is NULL for sequence-task models (no text vocabulary). */
void model_io_save(const char *path, const Model *m, const Vocab *vocab, const char *config);
/* path may be a directory holding model.h5. Builds m for B streams x Tmax steps and fills
 * vocab (V = 0 for sequence-task models). */
void model_io_load(const char *path, Model *m, int B, int Tmax, Vocab *vocab);
/* --init-from: replaces m's parameter values by those of a model file or checkpoint (path may
 * be a directory holding model.h5). The file's model must have m's shape and, when vocab is
 * given (language models), the same vocabulary; any mismatch is a clear error naming it. */
void model_io_load_weights(const char *path, Model *m, const Vocab *vocab);
/* Resolves DIR_OR_FILE to the model file path (caller frees). */
char *model_io_path(const char *dir_or_file);

#endif
