/* model_io: the model file (DIR/model.h5, schema in docs/formats.md): PyTorch state_dict
 * names and shapes under /params, the shape and vocabulary as attributes. Written to a
 * temporary file and renamed, so an existing model is never half-overwritten. */
#ifndef RNNTRAIN_MODEL_IO_H
#define RNNTRAIN_MODEL_IO_H

#include <hdf5.h>

#include "data.h"
#include "model.h"
#include "seq.h"

/* Writes every tensor of the array `base` (p's layout: values, or optimizer state) as
 * group/<name> (float32, PyTorch shape), with a checksum attribute if `checksums`. */
void model_io_write_params(hid_t f, const char *group, const Params *p, const float *base,
                           int checksums, const char *path);
/* Reads every tensor of p's layout from group/<name> into base; shapes must match. */
void model_io_read_params(hid_t f, const char *group, const Params *p, float *base,
                          const char *path);
#define MODEL_IO_VERSION 2
#define MODEL_IO_STACK_MAX 1024

/* The header shared by model files and checkpoints (format names which): version, the
 * layer stack ("stack" = "lstm:512,gru:256", and per layer a group layers/l{k} with its
 * kind, widths and state tensor names; "cell" and "hidden" too when all layers are one
 * kind and width), embed, vocab_size, inputs, cond, in_vocab, config, and for language
 * models the vocabulary (checksummed if checksums). */
void model_io_write_header(hid_t f, const char *format, const Model *m, const Vocab *vocab,
                           const char *config, int checksums, const char *path);
/* Reads and validates that header (versions 1 and 2) into s and vocab (V = 0 for
 * sequence-task models); returns the version. */
int64_t model_io_read_header(hid_t f, const char *path, ModelShape *s, Vocab *vocab);
/* "lstm:512,gru:256, embed 64, 256 outputs" for messages. */
void model_io_shape_text(const ModelShape *s, char *buf, size_t n);
/* vocab is NULL for sequence-task models (no text vocabulary); seq (or NULL) the sequence
 * file a seq2seq model was trained on: its target and source symbols are stored too. */
void model_io_save(const char *path, const Model *m, const Vocab *vocab, const SeqFile *seq,
                   const char *config);
/* A seq2seq model's symbols (as the data file's: id 0 </s>, id 1 <s>, then its symbols). */
typedef struct {
    int K, Vs;               /* target symbols; source symbols (0: a vector source) */
    int tgt_chars, src_chars;
    char **tgt, **src;
} ModelSymbols;
/* 1 and sym filled if the model file at path (or DIR/model.h5) holds them, else 0. */
int model_io_read_symbols(const char *path, ModelSymbols *sym);
void model_symbols_free(ModelSymbols *sym);
/* path may be a directory holding model.h5. Builds m for B streams x Tmax steps (and sources
 * of up to max(Smax, the file's source_steps) steps) and fills vocab (V = 0 for
 * sequence-task models). */
void model_io_load(const char *path, Model *m, int B, int Tmax, int Smax, Vocab *vocab);
/* --init-from: replaces m's parameter values by those of a model file or checkpoint (path may
 * be a directory holding model.h5). The file's model must have m's shape and, when vocab is
 * given (language models), the same vocabulary; any mismatch is a clear error naming it. */
void model_io_load_weights(const char *path, Model *m, const Vocab *vocab);
/* Resolves DIR_OR_FILE to the model file path (caller frees). */
char *model_io_path(const char *dir_or_file);

#endif
