#include "data.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "h5util.h"

static const char *const splits[] = {"train", "valid", "test"};

const char *vocab_kind_name(VocabKind k) { return k == VOCAB_BYTES ? "bytes" : "chars"; }

int vocab_kind_by_name(const char *name) {
    if (strcmp(name, "bytes") == 0) return VOCAB_BYTES;
    if (strcmp(name, "chars") == 0) return VOCAB_CHARS;
    return -1;
}

void vocab_bytes(Vocab *v) {
    v->kind = VOCAB_BYTES;
    v->V = 256;
    v->symbols = rt_malloc(256 * sizeof *v->symbols, "vocabulary");
    for (int i = 0; i < 256; i++) v->symbols[i] = i;
}

void vocab_free(Vocab *v) {
    free(v->symbols);
    memset(v, 0, sizeof *v);
}

int32_t utf8_next(const unsigned char *s, size_t n, int *used) {
    *used = 1;
    unsigned c = s[0];
    if (c < 0x80) return (int32_t)c;
    int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || (size_t)len > n) return -1;
    int32_t cp = (int32_t)(c & (0x7F >> len));
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const int32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    *used = len;
    return cp;
}

/* Symbols are sorted ascending (prepare writes them so): binary search. */
static int32_t vocab_lookup(const Vocab *v, int32_t sym) {
    int lo = 0, hi = v->V - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v->symbols[mid] == sym) return mid;
        if (v->symbols[mid] < sym)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int64_t vocab_encode(const Vocab *v, const char *text, size_t len, int32_t *out,
                     size_t *bad_offset) {
    const unsigned char *s = (const unsigned char *)text;
    int64_t n = 0;
    for (size_t i = 0; i < len;) {
        int used = 1;
        int32_t sym = v->kind == VOCAB_BYTES ? (int32_t)s[i] : utf8_next(s + i, len - i, &used);
        int32_t id = sym < 0 ? -1 : vocab_lookup(v, sym);
        if (id < 0) {
            *bad_offset = i;
            return -1;
        }
        out[n++] = id;
        i += (size_t)used;
    }
    return n;
}

int vocab_decode(const Vocab *v, int32_t tok, char out[4]) {
    REQUIRE(tok >= 0 && tok < v->V);
    int32_t cp = v->symbols[tok];
    if (v->kind == VOCAB_BYTES || cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Every token of split ds in [0, V), read in blocks of 1 Mi tokens: a bad token is found
 * when the file is opened, not at the step that reaches it. */
uint64_t data_hash_tokens(uint64_t h, const int32_t *tok, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)tok[i];
        for (int b = 0; b < 4; b++) h = (h ^ ((v >> (8 * b)) & 0xffu)) * 1099511628211ULL;
    }
    return h;
}

static void file_identity(const char *path, int64_t *size, int64_t *mtime_ns, int64_t *ino) {
    struct stat st;
    *size = *mtime_ns = *ino = -1;
    if (stat(path, &st) != 0) return;
    *size = (int64_t)st.st_size;
    *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    *ino = (int64_t)st.st_ino;
}

int data_changed(const TokenFile *tf) {
    int64_t size, mtime, ino;
    file_identity(tf->path, &size, &mtime, &ino);
    return size != tf->st_size || mtime != tf->st_mtime_ns || ino != tf->st_ino;
}

/* Every token of split ds in [0, V) and its checksum the stored one (files from before
 * checksums have none), read in blocks of 1 Mi tokens: a bad token or a flipped bit is
 * found when the file is opened, not at the step that reaches it. Returns the checksum. */
static uint64_t check_tokens(const TokenFile *tf, hid_t ds, const char *split) {
    uint64_t d[8];
    h5_dataset_shape(tf->file, split, d, tf->path);
    const hsize_t block = (hsize_t)1 << 20;
    uint64_t h = DATA_HASH_START;
    int32_t *buf = rt_malloc(block * sizeof *buf, "token check");
    hid_t fs = H5Dget_space(ds);
    for (hsize_t off = 0; off < d[0]; off += block) {
        hsize_t cnt = d[0] - off < block ? d[0] - off : block;
        hid_t ms = H5Screate_simple(1, &cnt, NULL);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
            H5Dread(ds, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, buf) < 0)
            rt_die(EXIT_INPUT, "data file '%s': reading '/%s' failed (damaged?)", tf->path, split);
        H5Sclose(ms);
        for (hsize_t i = 0; i < cnt; i++)
            if (buf[i] < 0 || buf[i] >= tf->vocab.V)
                rt_die(EXIT_INPUT, "data file '%s': split '%s' token %llu is %d, outside the "
                       "vocabulary [0, %d)", tf->path, split, (unsigned long long)(off + i),
                       buf[i], tf->vocab.V);
        h = data_hash_tokens(h, buf, (size_t)cnt);
    }
    H5Sclose(fs);
    free(buf);
    if (H5Aexists(ds, "checksum") > 0) {
        hid_t a = H5Aopen(ds, "checksum", H5P_DEFAULT);
        uint64_t want = 0;
        if (!attr_is_one_integer(a) || H5Aread(a, H5T_NATIVE_UINT64, &want) < 0)
            rt_die(EXIT_INPUT, "data file '%s': the checksum of '/%s' cannot be read", tf->path,
                   split);
        H5Aclose(a);
        if (want != h)
            rt_die(EXIT_INPUT, "data file '%s': split '%s' fails its checksum (stored %016llx, "
                   "computed %016llx): the tokens were changed or damaged", tf->path, split,
                   (unsigned long long)want, (unsigned long long)h);
    }
    return h;
}

void data_open(TokenFile *tf, const char *path) {
    memset(tf, 0, sizeof *tf);
    tf->path = rt_strdup(path);
    file_identity(path, &tf->st_size, &tf->st_mtime_ns, &tf->st_ino);
    tf->file = h5_open_dataset_file(path, "rnntrain-tokens", "make one with 'rnntrain prepare'");
    char kind[32];
    h5_read_attr_str(tf->file, "vocab_kind", kind, sizeof kind, path);
    int k = vocab_kind_by_name(kind);
    if (k < 0)
        rt_die(EXIT_INPUT, "data file '%s': vocab_kind '%s', expected 'bytes' or 'chars'", path,
               kind);
    int64_t V = h5_read_attr_int(tf->file, "vocab_size", path);
    if (V < 2 || V > 0x110000)
        rt_die(EXIT_INPUT, "data file '%s': vocab_size %lld out of range [2, 1114112]", path,
               (long long)V);
    tf->vocab.kind = (VocabKind)k;
    tf->vocab.V = (int)V;
    tf->vocab.symbols = rt_malloc((size_t)V * sizeof(int32_t), "vocabulary");
    uint64_t dims[1] = {(uint64_t)V};
    h5_read_i32(tf->file, "vocab", tf->vocab.symbols, 1, dims, path);
    for (int i = 1; i < V; i++)
        if (tf->vocab.symbols[i] <= tf->vocab.symbols[i - 1])
            rt_die(EXIT_INPUT, "data file '%s': /vocab must be strictly increasing (entry %d)",
                   path, i);
    for (int s = 0; s < 3; s++) {
        uint64_t d[8];
        int nd = h5_dataset_shape(tf->file, splits[s], d, path);
        if (nd != 1)
            rt_die(EXIT_INPUT, "data file '%s': dataset '/%s' should be 1-D, found %d-D", path,
                   splits[s], nd);
        hid_t ds = H5Dopen2(tf->file, splits[s], H5P_DEFAULT);
        hid_t t = H5Dget_type(ds);
        if (H5Tget_class(t) != H5T_INTEGER)
            rt_die(EXIT_INPUT, "data file '%s': dataset '/%s' should hold integer token ids",
                   path, splits[s]);
        H5Tclose(t);
        tf->tokens_hash = tf->tokens_hash * 31 + check_tokens(tf, ds, splits[s]);
        H5Dclose(ds);
    }
}

void data_close(TokenFile *tf) {
    if (tf->file > 0) H5Fclose(tf->file);
    vocab_free(&tf->vocab);
    free(tf->path);
    memset(tf, 0, sizeof *tf);
}

int64_t data_split_len(const TokenFile *tf, const char *split) {
    uint64_t d[8];
    h5_dataset_shape(tf->file, split, d, tf->path);
    return (int64_t)d[0];
}

void stream_init(StreamReader *sr, const TokenFile *tf, const char *split, int S, int first,
                 int B, int Tmax, int whole_chunks) {
    memset(sr, 0, sizeof *sr);
    REQUIRE(S >= 1 && B >= 1 && first >= 0 && first + B <= S && Tmax >= 1);
    sr->tf = tf;
    snprintf(sr->split, sizeof sr->split, "%s", split);
    sr->n = data_split_len(tf, split);
    sr->S = S;
    sr->first = first;
    sr->B = B;
    sr->Tmax = Tmax;
    sr->L = sr->n / S;
    int64_t need = whole_chunks ? (int64_t)Tmax + 1 : 2;
    if (sr->L < need)
        rt_die(EXIT_INPUT,
               "data file '%s': split '%s' has %lld tokens; cut into %d streams that is %lld "
               "per stream, fewer than the %lld needed%s (use fewer streams, a shorter "
               "--bptt, or more data)",
               tf->path, split, (long long)sr->n, S, (long long)sr->L, (long long)need,
               whole_chunks ? " for one chunk of --bptt steps" : "");
    sr->dset = H5Dopen2(tf->file, split, H5P_DEFAULT);
    if (sr->dset < 0) rt_die(EXIT_INPUT, "data file '%s': cannot open '/%s'", tf->path, split);
    size_t rows = (size_t)Tmax * B;
    sr->buf = rt_malloc((size_t)B * (Tmax + 1) * sizeof(int32_t), "token chunk");
    sr->inputs = rt_malloc(rows * sizeof(int32_t), "chunk inputs");
    sr->targets = rt_malloc(rows * sizeof(int32_t), "chunk targets");
}

void stream_free(StreamReader *sr) {
    if (sr->dset > 0) H5Dclose(sr->dset);
    free(sr->buf);
    free(sr->inputs);
    free(sr->targets);
    memset(sr, 0, sizeof *sr);
}

int64_t stream_chunks_per_epoch(const StreamReader *sr) { return (sr->L - 1) / sr->Tmax; }

int stream_read(StreamReader *sr, int64_t cursor) {
    int64_t left = sr->L - 1 - cursor;
    if (left <= 0) return 0;
    int T = left < sr->Tmax ? (int)left : sr->Tmax;
    hsize_t start = (hsize_t)((int64_t)sr->first * sr->L + cursor);
    hsize_t stride = (hsize_t)sr->L, count = (hsize_t)sr->B, block = (hsize_t)T + 1;
    hid_t fs = H5Dget_space(sr->dset);
    hsize_t nmem = count * block;
    hid_t ms = H5Screate_simple(1, &nmem, NULL);
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, &stride, &count, &block) < 0 ||
        H5Dread(sr->dset, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, sr->buf) < 0)
        rt_die(EXIT_INPUT, "data file '%s': reading split '%s' at offset %llu failed",
               sr->tf->path, sr->split, (unsigned long long)start);
    H5Sclose(ms);
    H5Sclose(fs);
    int V = sr->tf->vocab.V;
    for (int b = 0; b < sr->B; b++) {
        const int32_t *row = sr->buf + (size_t)b * (T + 1);
        for (int t = 0; t <= T; t++)
            if (row[t] < 0 || row[t] >= V)
                rt_die(EXIT_INPUT,
                       "data file '%s': split '%s' token %lld is %d, outside the vocabulary "
                       "[0, %d)",
                       sr->tf->path, sr->split,
                       (long long)((int64_t)(sr->first + b) * sr->L + cursor + t), row[t], V);
        for (int t = 0; t < T; t++) {
            sr->inputs[(size_t)t * sr->B + b] = row[t];
            sr->targets[(size_t)t * sr->B + b] = row[t + 1];
        }
    }
    return T;
}
