/* task: what a run trains and evaluates, behind one pipeline for every task.
 *
 * A Task is a dataset and what to predict from it:
 *   lm                      carried-state streams over a token file (data.h): the next token;
 *   classify, tag, regress, generate   sequences of a sequence file (seq.h).
 * Readers cut it into Batches. A reader covers `count` of the global streams (lm) or
 * sequence slots of a global batch, from `first`; one batch holds one step's data for them,
 * T steps, time-major (row t*B + b). The trainer and the evaluation run a batch as chunks of
 * chunk_T steps (truncated BPTT), carrying the state from chunk to chunk; a stream whose
 * reset flag is set starts afresh at the batch's first step, from zero or (when the batch
 * is conditioned, and then every stream resets) from the conditioning.
 *
 * Language models: a batch is the chunk at a token cursor of every stream; the cursor
 * advances by T, the state is carried across batches; every stream resets at cursor 0 (the
 * start of an epoch).
 * Sequence tasks: training batch `cursor` of an epoch is global batch number `cursor` of a
 * permutation seeded by (seed, epoch); a reader takes its slots of it in ascending sequence
 * order (the HDF5 hyperslab reads want that, and it makes a micro-batch's content
 * independent of the rank count). Evaluation reads a rank's range of the split in order.
 * seq2seq batches are bucketed by length: the permutation is cut into windows of
 * TASK_BUCKET_BATCHES global batches, each window sorted by (target, source) length and its
 * batches put in a random order, so a batch holds sequences of similar lengths (batches run
 * only as many steps as their longest row: less padding) while the epoch stays random. */
#ifndef RNNTRAIN_TASK_H
#define RNNTRAIN_TASK_H

#include <stdint.h>

#include "data.h"
#include "model.h"
#include "seq.h"

#define TASK_BUCKET_BATCHES 64

typedef struct {
    int lm;            /* 1: language model over a token file; else sequences */
    TaskKind kind;     /* sequence tasks */
    int classes;       /* cross-entropy over labels (lm, classify, tag); else squared error */
    TokenFile tf;
    SeqFile sf;
    const char *path;
    uint64_t seed;     /* sequence order */
    int64_t *perm, perm_epoch; /* the permutation of the train sequences of epoch perm_epoch */
    int32_t *bucket_key;       /* seq2seq: (train sequences) length key for bucketing */
} Task;

typedef struct {
    int B, T, chunk_T; /* streams, steps held, steps per chunk */
    int count;         /* rows [0, count) are real; the rest repeat the last with no weight */
    const uint8_t *reset;   /* (B) 1: the stream starts afresh at step 0, or NULL (none) */
    const int32_t *tokens;  /* (T,B) inputs, or NULL */
    const float *x;         /* (T,B,D) feature inputs, or NULL */
    const int32_t *labels;  /* (T,B) target class per step, -1 = no loss (classes) */
    const float *targets;   /* (T,B,Y) (squared error) */
    const float *weights;   /* (T,B) 0 masks a step (squared error) */
    const float *cond;      /* (B,C) conditioning, or NULL */
    const int32_t *src;     /* seq2seq: (S,B) source tokens for the encoder, or NULL */
    const int32_t *src_len; /* (B) their lengths */
    int S;
    const SeqBatch *seq;    /* sequences: the batch as read (lengths, indices, classes) */
    const int32_t *len;     /* sequences: (B) lengths (kept by batch_chunk) */
} Batch;

typedef struct {
    Task *task;
    int split, first, count, global, chunk_T, train;
    StreamReader sr;   /* lm */
    SeqBatch sb;       /* sequences */
    int64_t *index;    /* (count) sequence numbers of the batch */
    uint8_t *reset;    /* (count) reset flags handed out with batches */
    int64_t lo, hi;    /* evaluation: this rank's sequences [lo, hi) */
    int64_t next;      /* evaluation: next token cursor or sequence */
} Reader;

/* Opens path as a token or a sequence dataset (by its format). */
void task_open(Task *t, const char *path, uint64_t seed);
void task_close(Task *t);
const char *task_label(const Task *t); /* "lm", "classify", ... */
/* Sets the data-dependent fields of a model shape: V, and for sequences inputs and
 * conditioning (E = the features when they are float). embed: the token embedding width.
 * The encoder fields (enc_L, ...) are kept for seq2seq data with a token source (which
 * needs one) and cleared for every other task. */
void task_model_shape(const Task *t, ModelShape *s, int embed);
/* Train split: tokens (lm) or sequences. */
int64_t task_train_size(const Task *t);
/* Steps of a sequence (sequences), 0 for lm. */
int task_sequence_steps(const Task *t);

/* A reader for streams/slots [first, first+count) of `global`; chunk_T steps per chunk.
 * train: whole chunks of the train split (lm) or permuted batches; else one pass over split
 * with this rank's share (lm: streams; sequences: [rank*n/N, (rank+1)*n/N) in batches of
 * count). */
void reader_init(Reader *r, Task *t, int split, int global, int first, int count, int chunk_T,
                 int train);
void reader_free(Reader *r);
/* Training: the batch at cursor (token position or batch number) of epoch. */
void reader_read(Reader *r, int64_t cursor, int64_t epoch, Batch *b);
/* Evaluation: the next batch of the pass; 0 when it is done. */
int reader_next(Reader *r, Batch *b);
/* Training batches (lm: chunks) per epoch. */
int64_t reader_batches_per_epoch(const Reader *r);
/* Tokens per stream (lm). */
int64_t reader_stream_length(const Reader *r);

/* Loss terms of a whole batch (not a chunk): predictions (lm, classes) or scored values
 * (squared error). */
double batch_terms(const Task *t, const Batch *b);
/* Chunk [t0, t0+T) of b as a batch of its own (pointers into b). */
Batch batch_chunk(const Task *t, const Batch *b, int t0, int T);
/* The state of the streams the batch resets: from the conditioning (seq2seq: the encoder's
 * hand-over of the batch's sources), or zero. */
void task_start_state(Model *m, ModelState *st, const Batch *b);
/* Forward of a chunk from st. */
void task_forward(Model *m, ModelState *st, const Batch *chunk);
/* The chunk's loss sum; with grad the logits become scale * its gradient. */
double task_loss(const Task *t, Model *m, const Batch *chunk, float scale, int grad);

#endif
