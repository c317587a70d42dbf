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
 * Everything is validated when the file is opened: one clear error per problem. */
#ifndef RNNTRAIN_SEQ_H
#define RNNTRAIN_SEQ_H

#include <hdf5.h>
#include <stdint.h>

typedef enum { TASK_CLASSIFY, TASK_TAG, TASK_REGRESS, TASK_GENERATE } TaskKind;

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
void seq_batch_init(SeqBatch *b, const SeqFile *sf, int B);
void seq_batch_free(SeqBatch *b);
/* Reads sequences index[0..count) (ascending) of split into b; rows past count (a short
 * last batch) repeat the last sequence with zero weight. */
void seq_read(const SeqFile *sf, int split, const int64_t *index, int count, SeqBatch *b);
/* Number of loss terms in a batch (scored steps, times Y for regression). */
double seq_batch_terms(const SeqFile *sf, const SeqBatch *b);

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
