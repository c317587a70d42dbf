/* seq: sequence datasets for classification, tagging, regression/forecasting and
 * one-to-many generation (schema in docs/formats.md, "Sequence dataset").
 *
 * A file holds /train, /valid, /test groups of N sequences of T steps each:
 *   inputs   float32 (N,T,D) features, or int32 (N,T) tokens
 *   lengths  int32 (N)        optional, 1..T; steps past a length are padding
 *   labels   int32 (N)        classify: one class per sequence, at its last valid step
 *            int32 (N,T)      tag: a class per step
 *   targets  float32 (N,Y)    regress: Y values per sequence, at its last valid step
 *            float32 (N,T,Y)  generate: Y values per step
 *   cond     float32 (N,C)    optional conditioning vector (sets the initial states)
 * and for seq2seq (docs/formats.md, "Sequence-to-sequence dataset"): inputs are the decoder's
 * (<s> then the target), labels (N,T) the target then </s>, and the source is either
 *   source, source_lengths  int32 (N,S), (N)  tokens for an encoder, or
 *   cond                    float32 (N,C)     a vector (captioning);
 *   group    int32 (N)        the first row of the rows that share this row's source
 * Everything is validated when the file is opened: one clear error per problem. */
#ifndef RNNTRAIN_SEQ_H
#define RNNTRAIN_SEQ_H

#include <hdf5.h>
#include <stdint.h>

typedef enum { TASK_CLASSIFY, TASK_TAG, TASK_REGRESS, TASK_GENERATE, TASK_SEQ2SEQ } TaskKind;

const char *task_name(TaskKind t);
int task_by_name(const char *name); /* -1 if unknown */

typedef struct {
    char *path;
    hid_t file;
    TaskKind task;
    int float_inputs, T, D, vocab; /* D features (float) or vocab (tokens) */
    int K;                         /* classes (classify, tag) */
    int Y;                         /* outputs per sequence / step (regress, generate) */
    int C;                         /* conditioning width, 0 = none */
    double norm_mean, norm_std;    /* targets were (y - mean) / std; 0/1 if not */
    int64_t n[3];                  /* sequences per split: train, valid, test */
    int S, src_vocab;              /* seq2seq with a token source: its steps and vocabulary */
    char **tgt_symbols, **src_symbols; /* seq2seq: the symbols of each id (K, src_vocab) */
    int tgt_chars, src_chars;      /* 1: the symbols are characters (else space-separated) */
    uint64_t content_hash;         /* of every value read when the file was opened: the ranks
                                      compare it (each node may have its own copy) */
} SeqFile;

typedef struct {
    int B, T, D, Y, C;
    int64_t *index; /* (B) sequence numbers in the split */
    float *x;       /* (T,B,D) time-major features */
    int32_t *tok;   /* (T,B) tokens */
    int32_t *labels;/* (T,B) class at each scored step, -1 elsewhere */
    float *targets; /* (T,B,Y) values at each scored step */
    float *weights; /* (T,B) 1 where a step is scored, else 0 */
    float *cond;    /* (B,C) */
    int32_t *len;   /* (B) */
    int32_t *label1;/* (B) the sequence's class (classify) or argmax of cond */
    int S;          /* seq2seq token source: steps */
    int32_t *src;   /* (S,B) source tokens, time-major */
    int32_t *src_len; /* (B) */
    int32_t *group; /* (B) seq2seq: first row of the rows with the same source */
    void *rows;     /* scratch for the rows as read, one dataset at a time: B * max(T*D,
                     * T*Y, C, T) 4-byte values, allocated once (nothing per batch) */
} SeqBatch;

/* 1 if the HDF5 file at path says format "rnntrain-sequences" (0 for anything else,
 * including unreadable files: the token reader then reports those). */
int seq_is_sequence_file(const char *path);
void seq_open(SeqFile *sf, const char *path);
void seq_close(SeqFile *sf);
int seq_split_index(const char *split); /* 0,1,2 or dies */
/* Output width of the model: classes or Y. */
int seq_outputs(const SeqFile *sf);
/* 1 if the targets are classes (classify, tag, seq2seq). */
int seq_has_classes(const SeqFile *sf);
void seq_batch_init(SeqBatch *b, const SeqFile *sf, int B);
void seq_batch_free(SeqBatch *b);
/* Reads sequences index[0..count) (ascending) of split into b; rows past count (a short
 * last batch) repeat the last sequence with zero weight. */
void seq_read(const SeqFile *sf, int split, const int64_t *index, int count, SeqBatch *b);
/* seq2seq: the whole split's labels (N,T), lengths (N) and group (N), newly allocated
 * (references for the sequence metrics: a row's group may span batches and ranks). */
void seq_read_references(const SeqFile *sf, int split, int32_t **labels, int32_t **lengths,
                         int32_t **group);
/* The target lengths (lengths) and, with a token source, the source lengths of every
 * sequence of a split into tgt, src (n[split] each; src may be NULL). */
void seq_read_lengths(const SeqFile *sf, int split, int32_t *tgt, int32_t *src);
/* Number of loss terms in a batch (scored steps, times Y for regression). */
double seq_batch_terms(const SeqFile *sf, const SeqBatch *b);

/* A symbol list (seq2seq vocabularies, docs/formats.md): dataset name of file, the count
 * symbols as UTF-8 text each followed by '\n'. Reading validates it (one clear error). */
char **seq_symbols_read(hid_t file, const char *name, int count, const char *path);
void seq_symbols_write(hid_t file, const char *name, char *const *sym, int count,
                       const char *path);
void seq_symbols_free(char **sym, int count);

/* rnntrain prepare --csv ...: see prepare.c for the options. */
typedef struct {
    const char *csv, *output, *column;
    TaskKind task;
    int steps, features, window, horizon;
    int64_t seed;
    double frac[3];
} CsvPrepare;
void seq_prepare_csv(const CsvPrepare *cp);

#endif
