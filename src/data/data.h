/* data: token datasets in HDF5 (schema in docs/formats.md), vocabularies and the stream
 * reader that feeds TBPTT chunks.
 *
 * A split of N tokens read as S global streams gives stream g the tokens
 * [g*L, (g+1)*L), L = floor(N/S). A rank owning streams [first, first+B) reads, for chunk
 * cursor c, tokens [g*L + c, g*L + c + T] of each of its streams with ONE hyperslab read
 * (stride L, block T+1): only the tokens it needs, never the whole split, so memory does not
 * grow with the corpus. What stream g reads never depends on the number of ranks. */
#ifndef RNNTRAIN_DATA_H
#define RNNTRAIN_DATA_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { VOCAB_BYTES, VOCAB_CHARS } VocabKind;

typedef struct {
    VocabKind kind;
    int V;
    int32_t *symbols; /* (V,) token id -> byte value or Unicode code point */
} Vocab;

const char *vocab_kind_name(VocabKind k);
int vocab_kind_by_name(const char *name); /* -1 if unknown */
void vocab_bytes(Vocab *v);               /* the 256-symbol byte vocabulary */
void vocab_free(Vocab *v);
/* Text -> token ids. Returns the number of tokens, or -1 with *bad_offset set to the byte
 * offset of a character the vocabulary does not have (or of invalid UTF-8). */
int64_t vocab_encode(const Vocab *v, const char *text, size_t len, int32_t *out,
                     size_t *bad_offset);
/* Token id -> its bytes (UTF-8 for chars); returns the byte count (1..4). */
int vocab_decode(const Vocab *v, int32_t tok, char out[4]);
/* Decodes one UTF-8 character at s (n bytes available): code point, or -1 if invalid;
 * *used gets the byte count. */
int32_t utf8_next(const unsigned char *s, size_t n, int *used);

typedef struct {
    char *path;
    hid_t file;
    Vocab vocab;
    /* FNV-1a 64 of the token ids of every split, in order (computed when the file is opened,
     * compared with the "checksum" attribute prepare writes on each split); the file's
     * identity at open (data_changed) */
    uint64_t tokens_hash;
    int64_t st_size, st_mtime_ns, st_ino;
} TokenFile;

/* FNV-1a 64 over token ids (each as 4 little-endian bytes), continued from h (start with
 * DATA_HASH_START): the checksum of a split. */
#define DATA_HASH_START 1469598103934665603ULL
uint64_t data_hash_tokens(uint64_t h, const int32_t *tok, size_t n);
/* 1 if the file at tf->path is no longer the one opened (size, modification time, inode). */
int data_changed(const TokenFile *tf);

/* Opens and validates a token dataset (format, version, vocabulary, the three splits as
 * 1-D integer arrays). Dies with a clear message on anything wrong. */
void data_open(TokenFile *tf, const char *path);
void data_close(TokenFile *tf);
/* Number of tokens in split "train", "valid" or "test". */
int64_t data_split_len(const TokenFile *tf, const char *split);

typedef struct {
    const TokenFile *tf;
    char split[16];
    hid_t dset;
    int64_t n;       /* tokens in the split */
    int S;           /* global streams */
    int first, B;    /* this rank's streams: [first, first+B) */
    int Tmax;
    int64_t L;       /* tokens per stream */
    int32_t *buf;    /* (B, Tmax+1) as read */
    int32_t *inputs;  /* (Tmax,B) time-major */
    int32_t *targets; /* (Tmax,B) */
} StreamReader;

/* Needs L >= Tmax + 1 if whole_chunks (training), L >= 2 otherwise (evaluation). */
void stream_init(StreamReader *sr, const TokenFile *tf, const char *split, int S, int first,
                 int B, int Tmax, int whole_chunks);
void stream_free(StreamReader *sr);
/* Reads the chunk at cursor into inputs/targets; returns its length T' = min(Tmax,
 * L-1-cursor) (0 when the streams are exhausted). Validates every token id. */
int stream_read(StreamReader *sr, int64_t cursor);
/* Whole chunks per epoch: floor((L-1)/Tmax). */
int64_t stream_chunks_per_epoch(const StreamReader *sr);

#endif
