/* pairs: rnntrain prepare --pairs, lines SOURCE<sep>TARGET -> a sequence-to-sequence dataset
 * (schema in docs/formats.md, "Sequence-to-sequence dataset").
 *
 * The target is a symbol sequence (UTF-8 characters, or whitespace-separated symbols); the
 * source is one too, or a fixed-length vector of numbers (features). The split is by source
 * string: every row with the same source goes to the same split, so no source seen in
 * training is scored in valid or test. Written atomically (atomic.h). */
#ifndef RNNTRAIN_PAIRS_H
#define RNNTRAIN_PAIRS_H

#include <stdint.h>

/* How a column is read: each UTF-8 character a symbol, whitespace-separated symbols, or
 * (source only) whitespace- or comma-separated numbers. */
typedef enum { PAIRS_CHARS, PAIRS_SYMBOLS, PAIRS_FEATURES } PairsKind;

const char *pairs_kind_name(PairsKind k);
int pairs_kind_by_name(const char *name); /* -1 if unknown */

typedef struct {
    const char *pairs, *output; /* input TSV (CSV if the name ends in .csv), HDF5 to write */
    PairsKind source, target;   /* target: PAIRS_CHARS or PAIRS_SYMBOLS */
    int64_t seed;               /* shuffles the distinct sources before the split */
    double frac[3];             /* train, valid, test fractions of the distinct sources */
} PairsPrepare;

void seq_prepare_pairs(const PairsPrepare *pp);

#endif
