/* decode: seq2seq output sequences, one token at a time through the layers' step form,
 * and how they are scored.
 *
 * Target ids: 0 is </s> (end), 1 is <s> (start, the first input); a decoded sequence is
 * the ids before the first </s>, at most max_len of them.
 *
 *   greedy   every sequence of a batch at once: the most probable next token each step;
 *   beam     one source at a time on a model of K streams (the source repeated K times):
 *            the K best prefixes by log-probability; a prefix that emits </s> is finished
 *            with the score logp / (symbols + 1)^alpha (alpha 0: plain log-probability;
 *            1: per token, the length normalisation of Wu et al. 2016 without its
 *            constant); the search ends when no prefix is alive or when K are finished and
 *            none alive scores higher than the best finished. Beam 1 is greedy. */
#ifndef RNNTRAIN_DECODE_H
#define RNNTRAIN_DECODE_H

#include <stdint.h>

#include "model.h"
#include "task.h"

#define DECODE_EOS 0
#define DECODE_BOS 1

/* Greedy decoding of rows [0, b->count) of batch b (B = m->B): out (B, max_len) ids,
 * out_len (B), logprob (B) the sum of the chosen tokens' log-probabilities (</s> included
 * when it was emitted). st: scratch state of m->B streams. */
void decode_greedy(Model *m, ModelState *st, const Batch *b, int max_len, int32_t *out,
                   int32_t *out_len, double *logprob);
/* Beam search for row i of batch b on model mk (mk->B = K streams; stk its state): out
 * (max_len), returns its length; *score its normalised score, *logprob its log-probability. */
int decode_beam(Model *mk, ModelState *stk, const Batch *b, int i, double alpha, int max_len,
                int32_t *out, double *score, double *logprob);
/* Levenshtein distance between token sequences. */
int decode_edit_distance(const int32_t *a, int na, const int32_t *b, int nb);

#endif
