#include "seq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "h5util.h"

static const char *const task_names[] = {"classify", "tag", "regress", "generate", "seq2seq"};
static const char *const split_names[] = {"train", "valid", "test"};

const char *task_name(TaskKind t) { return task_names[t]; }
int task_by_name(const char *name) {
    for (int i = 0; i < 5; i++)
        if (strcmp(name, task_names[i]) == 0) return i;
    return -1;
}

int seq_split_index(const char *split) {
    for (int i = 0; i < 3; i++)
        if (strcmp(split, split_names[i]) == 0) return i;
    rt_die(EXIT_USAGE, "--split: expected train, valid or test, found '%s'", split);
}

int seq_is_sequence_file(const char *path) {
    if (rt_not_regular(path) || access(path, R_OK) != 0 || H5Fis_hdf5(path) <= 0) return 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 0;
    int yes = 0;
    if (H5Aexists(f, "format") > 0) {
        char fmt[64];
        h5_read_attr_str(f, "format", fmt, sizeof fmt, path);
        yes = strcmp(fmt, "rnntrain-sequences") == 0;
    }
    H5Fclose(f);
    return yes;
}

int seq_outputs(const SeqFile *sf) { return seq_has_classes(sf) ? sf->K : sf->Y; }

int seq_has_classes(const SeqFile *sf) {
    return sf->task == TASK_CLASSIFY || sf->task == TASK_TAG || sf->task == TASK_SEQ2SEQ;
}

/* labels (N,T): a class per step */
static int per_step_labels(const SeqFile *sf) {
    return sf->task == TASK_TAG || sf->task == TASK_SEQ2SEQ;
}

/* An optional count attribute in [0, hi]; 0 when absent. */
static int attr_int_in_or(hid_t f, const char *name, int hi, const char *path) {
    return h5_attr_exists(f, name) ? h5_read_attr_int_in(f, name, 0, hi, path) : 0;
}

/* Shape check with a clear message: "<file>: /<split>/<name> should have shape ..." */
static void expect_shape(const SeqFile *sf, int s, const char *name, int nd, const uint64_t *want) {
    char ds[64];
    uint64_t have[8];
    snprintf(ds, sizeof ds, "%s/%s", split_names[s], name);
    int hn = h5_dataset_shape(sf->file, ds, have, sf->path);
    int same = hn == nd;
    for (int i = 0; same && i < nd; i++) same = have[i] == want[i];
    if (!same) {
        char a[96] = "(", b[96] = "(";
        for (int i = 0; i < nd; i++)
            snprintf(a + strlen(a), sizeof a - strlen(a), i ? ",%llu" : "%llu", (unsigned long long)want[i]);
        for (int i = 0; i < hn; i++)
            snprintf(b + strlen(b), sizeof b - strlen(b), i ? ",%llu" : "%llu", (unsigned long long)have[i]);
        rt_die(EXIT_INPUT, "data file '%s': /%s should have shape %s), found %s)", sf->path, ds,
               a, b);
    }
}

/* Reads rows index[0..count) of a dataset whose first dimension is the sequence, as one
 * union-of-hyperslabs selection, into buf (count, rest...) in index order (ascending). */
static void read_rows(const SeqFile *sf, int s, const char *name, const int64_t *index,
                      int count, hid_t memtype, void *buf) {
    char ds[64];
    snprintf(ds, sizeof ds, "%s/%s", split_names[s], name);
    hid_t d = H5Dopen2(sf->file, ds, H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[3], start[3] = {0, 0, 0}, cnt[3];
    H5Sget_simple_extent_dims(fs, dims, NULL);
    H5Sselect_none(fs);
    for (int i = 0; i < count; i++) {
        start[0] = (hsize_t)index[i];
        cnt[0] = 1;
        for (int k = 1; k < nd; k++) cnt[k] = dims[k];
        if (H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, cnt, NULL) < 0)
            rt_die(EXIT_INPUT, "data file '%s': selecting sequence %lld of /%s failed", sf->path,
                   (long long)index[i], ds);
    }
    hsize_t total = (hsize_t)H5Sget_select_npoints(fs);
    hid_t ms = H5Screate_simple(1, &total, NULL);
    if (H5Dread(d, memtype, ms, fs, H5P_DEFAULT, buf) < 0)
        rt_die(EXIT_INPUT, "data file '%s': reading /%s failed", sf->path, ds);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
}

static int has(const SeqFile *sf, int s, const char *name) {
    char ds[64];
    snprintf(ds, sizeof ds, "%s/%s", split_names[s], name);
    return h5_exists(sf->file, ds);
}

/* Rows [first, first+count) of split s's dataset name, into buf (count, rest...). */
static void read_block(const SeqFile *sf, int s, const char *name, int64_t first, int count,
                       hid_t memtype, void *buf) {
    int64_t *index = rt_malloc((size_t)count * sizeof *index, "row index");
    for (int i = 0; i < count; i++) index[i] = first + i;
    read_rows(sf, s, name, index, count, memtype, buf);
    free(index);
}

/* read_block for the validation at open, mixing the block's bytes into sf->content_hash. */
static void read_hashed(SeqFile *sf, int s, const char *name, int64_t first, int count,
                        hid_t memtype, void *buf) {
    read_block(sf, s, name, first, count, memtype, buf);
    char ds[64];
    uint64_t d[8];
    snprintf(ds, sizeof ds, "%s/%s", split_names[s], name);
    int nd = h5_dataset_shape(sf->file, ds, d, sf->path);
    size_t bytes = (size_t)count * 4; /* every type read here is 4 bytes */
    for (int i = 1; i < nd; i++) bytes *= (size_t)d[i];
    sf->content_hash = (sf->content_hash ^ h5_hash(buf, bytes)) * 0x100000001b3ULL;
}

/* Sequences per validation block: about 4 MB of the widest per-sequence dataset, so opening
 * a file needs memory independent of its size. */
static int block_rows(const SeqFile *sf) {
    size_t per = (size_t)sf->T * (sf->float_inputs ? sf->D : 1);
    if ((size_t)sf->T * sf->Y > per) per = (size_t)sf->T * sf->Y;
    if ((size_t)sf->C > per) per = (size_t)sf->C;
    if ((size_t)sf->S > per) per = (size_t)sf->S;
    size_t rows = ((size_t)1 << 20) / (per ? per : 1);
    return rows < 1 ? 1 : rows > 65536 ? 65536 : (int)rows;
}

/* v holds sequences [first, ...) of per_seq values each. */
static void check_finite(const SeqFile *sf, int s, const char *name, const float *v, size_t n,
                         size_t per_seq, int64_t first) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            rt_die(EXIT_INPUT, "data file '%s': /%s/%s holds %s at sequence %lld (entry %lld)",
                   sf->path, split_names[s], name, isnan(v[i]) ? "NaN" : "Inf",
                   (long long)(first + (int64_t)(i / per_seq)),
                   (long long)((size_t)first * per_seq + i));
}

/* Validates split s completely (shapes and values), block by block. */
static void validate_split(SeqFile *sf, int s) {
    char ds[64];
    uint64_t d[8];
    snprintf(ds, sizeof ds, "%s/inputs", split_names[s]);
    h5_dataset_shape(sf->file, ds, d, sf->path);
    int64_t N = (int64_t)d[0];
    sf->n[s] = N;
    if (N == 0) return;
    uint64_t in3[3] = {d[0], (uint64_t)sf->T, (uint64_t)sf->D}, in2[2] = {d[0], (uint64_t)sf->T};
    expect_shape(sf, s, "inputs", sf->float_inputs ? 3 : 2, sf->float_inputs ? in3 : in2);
    uint64_t n1[1] = {d[0]};
    int has_len = has(sf, s, "lengths");
    if (has_len) expect_shape(sf, s, "lengths", 1, n1);
    int per_step = per_step_labels(sf);
    int has_labels = seq_has_classes(sf) || (sf->task == TASK_GENERATE && has(sf, s, "labels"));
    uint64_t ld[2] = {d[0], (uint64_t)sf->T};
    if (has_labels) expect_shape(sf, s, "labels", per_step ? 2 : 1, ld);
    int has_targets = sf->task == TASK_REGRESS || sf->task == TASK_GENERATE;
    int per_step_targets = sf->task == TASK_GENERATE;
    uint64_t td[3] = {d[0], per_step_targets ? (uint64_t)sf->T : (uint64_t)sf->Y, (uint64_t)sf->Y};
    if (has_targets) expect_shape(sf, s, "targets", per_step_targets ? 3 : 2, td);
    uint64_t cd[2] = {d[0], (uint64_t)sf->C};
    if (sf->C > 0) expect_shape(sf, s, "cond", 2, cd);
    uint64_t sd[2] = {d[0], (uint64_t)sf->S};
    if (sf->S > 0) {
        expect_shape(sf, s, "source", 2, sd);
        expect_shape(sf, s, "source_lengths", 1, n1);
    }
    if (sf->task == TASK_SEQ2SEQ) expect_shape(sf, s, "group", 1, n1);
    int R = block_rows(sf);
    size_t per = (size_t)sf->T * (sf->float_inputs ? sf->D : 1);
    if ((size_t)sf->T * sf->Y > per) per = (size_t)sf->T * sf->Y;
    if ((size_t)sf->C > per) per = (size_t)sf->C;
    if ((size_t)sf->S > per) per = (size_t)sf->S;
    int32_t prev_group = -1;
    void *buf = rt_malloc((size_t)R * per * 4, "validation block");
    for (int64_t first = 0; first < N; first += R) {
        int cnt = (int)(N - first < R ? N - first : R);
        size_t nin = (size_t)cnt * sf->T * (sf->float_inputs ? sf->D : 1);
        if (sf->float_inputs) {
            read_hashed(sf, s, "inputs", first, cnt, H5T_NATIVE_FLOAT, buf);
            check_finite(sf, s, "inputs", buf, nin, (size_t)sf->T * sf->D, first);
        } else {
            int32_t *x = buf;
            read_hashed(sf, s, "inputs", first, cnt, H5T_NATIVE_INT32, buf);
            for (size_t i = 0; i < nin; i++)
                if (x[i] < 0 || x[i] >= sf->vocab)
                    rt_die(EXIT_INPUT, "data file '%s': /%s/inputs token %d at sequence %lld is "
                           "outside [0, %d)", sf->path, split_names[s], x[i],
                           (long long)(first + (int64_t)(i / sf->T)), sf->vocab);
        }
        if (has_len) {
            int32_t *len = buf;
            read_hashed(sf, s, "lengths", first, cnt, H5T_NATIVE_INT32, buf);
            for (int i = 0; i < cnt; i++)
                if (len[i] < 1 || len[i] > sf->T)
                    rt_die(EXIT_INPUT, "data file '%s': /%s/lengths[%lld] is %d, expected 1..%d",
                           sf->path, split_names[s], (long long)(first + i), len[i], sf->T);
        }
        if (has_labels) {
            int32_t *lab = buf;
            size_t nl = (size_t)cnt * (per_step ? sf->T : 1);
            read_hashed(sf, s, "labels", first, cnt, H5T_NATIVE_INT32, buf);
            int K = sf->task == TASK_GENERATE ? sf->C : sf->K;
            for (size_t i = 0; i < nl; i++)
                if (lab[i] < 0 || lab[i] >= K)
                    rt_die(EXIT_INPUT, "data file '%s': /%s/labels: label %d of sequence %lld is "
                           "out of range [0, %d)", sf->path, split_names[s], lab[i],
                           (long long)(first + (int64_t)(i / (per_step ? sf->T : 1))), K);
        }
        if (sf->S > 0) {
            int32_t *x = buf;
            read_hashed(sf, s, "source", first, cnt, H5T_NATIVE_INT32, buf);
            for (size_t i = 0; i < (size_t)cnt * sf->S; i++)
                if (x[i] < 0 || x[i] >= sf->src_vocab)
                    rt_die(EXIT_INPUT, "data file '%s': /%s/source token %d at sequence %lld is "
                           "outside [0, %d)", sf->path, split_names[s], x[i],
                           (long long)(first + (int64_t)(i / sf->S)), sf->src_vocab);
            read_hashed(sf, s, "source_lengths", first, cnt, H5T_NATIVE_INT32, buf);
            for (int i = 0; i < cnt; i++)
                if (x[i] < 1 || x[i] > sf->S)
                    rt_die(EXIT_INPUT, "data file '%s': /%s/source_lengths[%lld] is %d, expected "
                           "1..%d", sf->path, split_names[s], (long long)(first + i), x[i], sf->S);
        }
        if (sf->task == TASK_SEQ2SEQ) { /* row i's group is i or row i-1's */
            int32_t *g = buf;
            read_hashed(sf, s, "group", first, cnt, H5T_NATIVE_INT32, buf);
            for (int i = 0; i < cnt; i++) {
                int64_t row = first + i;
                if (g[i] != row && (row == 0 || g[i] != prev_group))
                    rt_die(EXIT_INPUT, "data file '%s': /%s/group[%lld] is %d, expected %lld or "
                           "the group of the row before (%d)", sf->path, split_names[s],
                           (long long)row, g[i], (long long)row, prev_group);
                prev_group = g[i];
            }
        }
        if (has_targets) {
            size_t row = (size_t)sf->Y * (per_step_targets ? sf->T : 1);
            read_hashed(sf, s, "targets", first, cnt, H5T_NATIVE_FLOAT, buf);
            check_finite(sf, s, "targets", buf, (size_t)cnt * row, row, first);
        }
        if (sf->C > 0) {
            read_hashed(sf, s, "cond", first, cnt, H5T_NATIVE_FLOAT, buf);
            check_finite(sf, s, "cond", buf, (size_t)cnt * sf->C, (size_t)sf->C, first);
        }
    }
    free(buf);
}

char **seq_symbols_read(hid_t file, const char *name, int count, const char *path) {
    uint64_t d[8];
    if (!h5_exists(file, name))
        rt_die(EXIT_INPUT, "data file '%s': /%s (the symbols of the vocabulary) is missing",
               path, name);
    if (h5_dataset_shape(file, name, d, path) != 1 || d[0] > (1u << 26))
        rt_die(EXIT_INPUT, "data file '%s': /%s should be one-dimensional text", path, name);
    size_t n = (size_t)d[0];
    int32_t *bytes = rt_malloc((n ? n : 1) * sizeof *bytes, "symbols");
    if (n) h5_read_i32(file, name, bytes, 1, d, path);
    char **sym = rt_calloc((size_t)count, sizeof *sym, "symbols");
    size_t start = 0;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (bytes[i] < 0 || bytes[i] > 255 || (bytes[i] == 0))
            rt_die(EXIT_INPUT, "data file '%s': /%s byte %zu is %d, expected text", path,
                   name, i, bytes[i]);
        if (bytes[i] != '\n') continue;
        if (k == count || i == start)
            rt_die(EXIT_INPUT, "data file '%s': /%s holds %s symbols, expected %d", path,
                   name, k == count ? "more" : "empty", count);
        sym[k] = rt_malloc(i - start + 1, "symbol");
        for (size_t j = start; j < i; j++) sym[k][j - start] = (char)bytes[j];
        sym[k][i - start] = 0;
        k++;
        start = i + 1;
    }
    if (k != count || start != n)
        rt_die(EXIT_INPUT, "data file '%s': /%s holds %d complete symbols, expected %d",
               path, name, k, count);
    free(bytes);
    return sym;
}

void seq_symbols_free(char **sym, int count) {
    if (!sym) return;
    for (int i = 0; i < count; i++) free(sym[i]);
    free(sym);
}

/* kind attribute name: "chars" (1) or "symbols" (0) */
static int read_chars_kind(const SeqFile *sf, const char *attr) {
    char buf[64];
    h5_read_attr_str(sf->file, attr, buf, sizeof buf, sf->path);
    if (strcmp(buf, "chars") != 0 && strcmp(buf, "symbols") != 0)
        rt_die(EXIT_INPUT, "data file '%s': %s '%s', expected 'chars' or 'symbols'", sf->path,
               attr, buf);
    return strcmp(buf, "chars") == 0;
}

/* The source and the vocabularies of a seq2seq file. */
static void open_seq2seq(SeqFile *sf) {
    const char *path = sf->path;
    char buf[64];
    if (sf->float_inputs)
        rt_die(EXIT_INPUT, "data file '%s': task seq2seq needs inputs 'tokens' (the decoder's)",
               path);
    h5_read_attr_str(sf->file, "source", buf, sizeof buf, path);
    if (strcmp(buf, "tokens") == 0) {
        sf->S = h5_read_attr_int_in(sf->file, "source_steps", 1, 1000000, path);
        sf->src_vocab = h5_read_attr_int_in(sf->file, "source_vocab_size", 1, 0x110000, path);
        if (sf->S < 1 || sf->S > 1000000 || sf->src_vocab < 1 || sf->src_vocab > 0x110000)
            rt_die(EXIT_INPUT, "data file '%s': source_steps %d / source_vocab_size %d out of "
                   "range", path, sf->S, sf->src_vocab);
        if (sf->C > 0)
            rt_die(EXIT_INPUT, "data file '%s': a token source and a cond vector: give one",
                   path);
        sf->src_chars = read_chars_kind(sf, "source_kind");
        sf->src_symbols = seq_symbols_read(sf->file, "source_symbols", sf->src_vocab, sf->path);
    } else if (strcmp(buf, "features") == 0) {
        if (sf->C < 1)
            rt_die(EXIT_INPUT, "data file '%s': source 'features' needs cond >= 1", path);
    } else {
        rt_die(EXIT_INPUT, "data file '%s': source '%s', expected 'tokens' or 'features'", path,
               buf);
    }
    if (sf->K != sf->vocab || sf->K < 3)
        rt_die(EXIT_INPUT, "data file '%s': seq2seq needs classes = vocab_size >= 3 (</s>, <s> "
               "and a symbol), found %d and %d", path, sf->K, sf->vocab);
    sf->tgt_chars = read_chars_kind(sf, "target_kind");
    sf->tgt_symbols = seq_symbols_read(sf->file, "target_symbols", sf->K, sf->path);
}

void seq_symbols_write(hid_t file, const char *name, char *const *sym, int count,
                       const char *path) {
    size_t n = 0;
    for (int i = 0; i < count; i++) n += strlen(sym[i]) + 1;
    uint8_t *buf = rt_malloc(n ? n : 1, "symbols");
    size_t at = 0;
    for (int i = 0; i < count; i++) {
        size_t len = strlen(sym[i]);
        memcpy(buf + at, sym[i], len);
        buf[at + len] = '\n';
        at += len + 1;
    }
    uint64_t d[1] = {n};
    h5_write_u8(file, name, buf, 1, d, path);
    free(buf);
}

void seq_open(SeqFile *sf, const char *path) {
    memset(sf, 0, sizeof *sf);
    sf->path = rt_strdup(path);
    sf->file = h5_open_dataset_file(path, "rnntrain-sequences",
                                    "make one with 'rnntrain prepare --csv', docs/tasks.md");
    char buf[64];
    h5_read_attr_str(sf->file, "task", buf, sizeof buf, path);
    int t = task_by_name(buf);
    if (t < 0)
        rt_die(EXIT_INPUT, "data file '%s': task '%s', expected classify, tag, regress, generate "
               "or seq2seq", path, buf);
    sf->task = (TaskKind)t;
    h5_read_attr_str(sf->file, "inputs", buf, sizeof buf, path);
    if (strcmp(buf, "features") != 0 && strcmp(buf, "tokens") != 0)
        rt_die(EXIT_INPUT, "data file '%s': inputs '%s', expected 'features' or 'tokens'", path,
               buf);
    sf->float_inputs = strcmp(buf, "features") == 0;
    sf->T = h5_read_attr_int_in(sf->file, "steps", 1, 1000000, path);
    sf->D = attr_int_in_or(sf->file, "features", 1 << 20, path);
    sf->vocab = attr_int_in_or(sf->file, "vocab_size", 0x110000, path);
    sf->K = attr_int_in_or(sf->file, "classes", 1 << 24, path);
    sf->Y = attr_int_in_or(sf->file, "outputs", 1 << 20, path);
    sf->C = attr_int_in_or(sf->file, "cond", 1 << 20, path);
    sf->norm_mean = h5_attr_exists(sf->file, "norm_mean") ? h5_read_attr_double(sf->file, "norm_mean", path) : 0.0;
    sf->norm_std = h5_attr_exists(sf->file, "norm_std") ? h5_read_attr_double(sf->file, "norm_std", path) : 1.0;
    if (sf->T < 1 || sf->T > 1000000)
        rt_die(EXIT_INPUT, "data file '%s': steps %d out of range", path, sf->T);
    if (sf->float_inputs ? sf->D < 1 : sf->vocab < 2)
        rt_die(EXIT_INPUT, "data file '%s': needs %s", path,
               sf->float_inputs ? "features >= 1" : "vocab_size >= 2");
    if (seq_has_classes(sf) && sf->K < 2)
        rt_die(EXIT_INPUT, "data file '%s': task %s needs classes >= 2", path, task_name(sf->task));
    if ((sf->task == TASK_REGRESS || sf->task == TASK_GENERATE) && sf->Y < 1)
        rt_die(EXIT_INPUT, "data file '%s': task %s needs outputs >= 1", path, task_name(sf->task));
    if (sf->task == TASK_GENERATE && sf->C < 1)
        rt_die(EXIT_INPUT, "data file '%s': task generate needs a conditioning vector (cond >= 1)",
               path);
    if (!(sf->norm_std > 0.0) || !isfinite(sf->norm_mean))
        rt_die(EXIT_INPUT, "data file '%s': bad normalisation (norm_std must be > 0)", path);
    if (sf->task == TASK_SEQ2SEQ) open_seq2seq(sf);
    /* files from prepare (--csv, --pairs) carry a checksum per dataset: a changed or damaged
     * value is found here, not in training; files written by other tools may have none */
    char why[512];
    if (h5_attr_exists(sf->file, "checksums") && h5_read_attr_int_in(sf->file, "checksums", 0, 1, path) &&
        h5_verify_checksums(sf->file, why, sizeof why) != 0)
        rt_die(EXIT_INPUT, "data file '%s': %s", path, why);
    for (int s = 0; s < 3; s++) validate_split(sf, s);
    if (sf->n[0] < 1) rt_die(EXIT_INPUT, "data file '%s': the train split has no sequences", path);
}

void seq_close(SeqFile *sf) {
    if (sf->file > 0) H5Fclose(sf->file);
    seq_symbols_free(sf->tgt_symbols, sf->K);
    seq_symbols_free(sf->src_symbols, sf->src_vocab);
    free(sf->path);
    memset(sf, 0, sizeof *sf);
}

void seq_batch_init(SeqBatch *b, const SeqFile *sf, int B) {
    memset(b, 0, sizeof *b);
    b->B = B;
    b->T = sf->T;
    b->D = sf->float_inputs ? sf->D : 1;
    b->Y = seq_outputs(sf);
    b->C = sf->C;
    size_t TB = (size_t)sf->T * B;
    b->index = rt_calloc((size_t)B, sizeof *b->index, "batch");
    b->x = rt_calloc(TB * b->D, sizeof(float), "batch");
    b->tok = rt_calloc(TB, sizeof(int32_t), "batch");
    b->labels = rt_calloc(TB, sizeof(int32_t), "batch");
    b->targets = rt_calloc(TB * b->Y, sizeof(float), "batch");
    b->weights = rt_calloc(TB, sizeof(float), "batch");
    b->cond = rt_calloc((size_t)B * (b->C ? b->C : 1), sizeof(float), "batch");
    b->len = rt_calloc((size_t)B, sizeof(int32_t), "batch");
    b->label1 = rt_calloc((size_t)B, sizeof(int32_t), "batch");
    b->S = sf->S;
    b->src = rt_calloc((size_t)B * (sf->S ? sf->S : 1), sizeof(int32_t), "batch");
    b->src_len = rt_calloc((size_t)B, sizeof(int32_t), "batch");
    b->group = rt_calloc((size_t)B, sizeof(int32_t), "batch");
    size_t per_row = (size_t)sf->T * b->D;
    if ((size_t)sf->S > per_row) per_row = (size_t)sf->S;
    if ((size_t)sf->T * b->Y > per_row) per_row = (size_t)sf->T * b->Y;
    if ((size_t)sf->C > per_row) per_row = (size_t)sf->C;
    b->rows = rt_calloc((size_t)B * per_row, 4, "batch");
}

void seq_batch_free(SeqBatch *b) {
    free(b->index);
    free(b->x);
    free(b->tok);
    free(b->labels);
    free(b->targets);
    free(b->weights);
    free(b->cond);
    free(b->len);
    free(b->label1);
    free(b->src);
    free(b->src_len);
    free(b->group);
    free(b->rows);
    memset(b, 0, sizeof *b);
}


void seq_read(const SeqFile *sf, int s, const int64_t *index, int count, SeqBatch *b) {
    REQUIRE(count >= 1 && count <= b->B);
    for (int i = 1; i < count; i++) REQUIRE(index[i] > index[i - 1]);
    int B = b->B, T = sf->T, D = b->D, Y = b->Y;
    for (int i = 0; i < B; i++) b->index[i] = index[i < count ? i : count - 1];
    size_t per = (size_t)T * D;
    /* one scratch buffer (sized in seq_batch_init) takes each dataset's rows in turn */
    _Static_assert(sizeof(float) == 4 && sizeof(int32_t) == 4, "4-byte rows");
    float *x = b->rows;
    int32_t *i32 = b->rows;
    if (sf->float_inputs) {
        read_rows(sf, s, "inputs", index, count, H5T_NATIVE_FLOAT, x);
    } else {
        read_rows(sf, s, "inputs", index, count, H5T_NATIVE_INT32, i32);
    }
    for (int i = 0; i < B; i++) {
        int r = i < count ? i : count - 1;
        for (int t = 0; t < T; t++) {
            if (sf->float_inputs)
                memcpy(b->x + ((size_t)t * B + i) * D, x + (size_t)r * per + (size_t)t * D,
                       (size_t)D * sizeof(float));
            else
                b->tok[(size_t)t * B + i] = i32[(size_t)r * T + t];
        }
    }
    if (has(sf, s, "lengths")) {
        read_rows(sf, s, "lengths", index, count, H5T_NATIVE_INT32, i32);
        for (int i = 0; i < B; i++) b->len[i] = i32[i < count ? i : count - 1];
    } else {
        for (int i = 0; i < B; i++) b->len[i] = T;
    }
    size_t TB = (size_t)T * B;
    for (size_t k = 0; k < TB; k++) {
        b->labels[k] = -1;
        b->weights[k] = 0.0f;
    }
    memset(b->targets, 0, TB * Y * sizeof(float));
    if (sf->C > 0) {
        float *c = b->rows;
        read_rows(sf, s, "cond", index, count, H5T_NATIVE_FLOAT, c);
        for (int i = 0; i < B; i++) {
            const float *src = c + (size_t)(i < count ? i : count - 1) * sf->C;
            memcpy(b->cond + (size_t)i * sf->C, src, (size_t)sf->C * sizeof(float));
            int best = 0;
            for (int k = 1; k < sf->C; k++) best = src[k] > src[best] ? k : best;
            b->label1[i] = best;
        }
    }
    if (sf->S > 0) {
        read_rows(sf, s, "source", index, count, H5T_NATIVE_INT32, i32);
        for (int i = 0; i < B; i++)
            for (int t = 0; t < sf->S; t++)
                b->src[(size_t)t * B + i] = i32[(size_t)(i < count ? i : count - 1) * sf->S + t];
        read_rows(sf, s, "source_lengths", index, count, H5T_NATIVE_INT32, i32);
        for (int i = 0; i < B; i++) b->src_len[i] = i32[i < count ? i : count - 1];
    }
    if (sf->task == TASK_SEQ2SEQ) {
        read_rows(sf, s, "group", index, count, H5T_NATIVE_INT32, i32);
        for (int i = 0; i < B; i++) b->group[i] = i32[i < count ? i : count - 1];
    }
    if (seq_has_classes(sf) || (sf->task == TASK_GENERATE && has(sf, s, "labels"))) {
        int per_step = per_step_labels(sf);
        int32_t *lab = b->rows;
        read_rows(sf, s, "labels", index, count, H5T_NATIVE_INT32, lab);
        for (int i = 0; i < B; i++) {
            int r = i < count ? i : count - 1;
            float w = i < count ? 1.0f : 0.0f;
            if (per_step) {
                for (int t = 0; t < b->len[i]; t++) {
                    b->labels[(size_t)t * B + i] = w > 0 ? lab[(size_t)r * T + t] : -1;
                    b->weights[(size_t)t * B + i] = w;
                }
            } else {
                b->label1[i] = lab[r];
                if (sf->task == TASK_CLASSIFY) {
                    size_t k = (size_t)(b->len[i] - 1) * B + i;
                    b->labels[k] = w > 0 ? lab[r] : -1;
                    b->weights[k] = w;
                }
            }
        }
    }
    if (sf->task == TASK_REGRESS || sf->task == TASK_GENERATE) {
        int per_step = sf->task == TASK_GENERATE;
        size_t row = (size_t)Y * (per_step ? T : 1);
        float *tg = b->rows;
        read_rows(sf, s, "targets", index, count, H5T_NATIVE_FLOAT, tg);
        for (int i = 0; i < B; i++) {
            int r = i < count ? i : count - 1;
            float w = i < count ? 1.0f : 0.0f;
            for (int t = per_step ? 0 : b->len[i] - 1; t < b->len[i]; t++) {
                const float *src = tg + (size_t)r * row + (per_step ? (size_t)t * Y : 0);
                memcpy(b->targets + ((size_t)t * B + i) * Y, src, (size_t)Y * sizeof(float));
                b->weights[(size_t)t * B + i] = w;
            }
        }
    }
}

void seq_read_lengths(const SeqFile *sf, int split, int32_t *tgt, int32_t *src) {
    int64_t N = sf->n[split];
    for (int64_t first = 0; first < N; first += 65536) {
        int cnt = (int)(N - first < 65536 ? N - first : 65536);
        read_block(sf, split, "lengths", first, cnt, H5T_NATIVE_INT32, tgt + first);
        if (src && sf->S > 0)
            read_block(sf, split, "source_lengths", first, cnt, H5T_NATIVE_INT32, src + first);
    }
}

void seq_read_references(const SeqFile *sf, int split, int32_t **labels, int32_t **lengths,
                         int32_t **group) {
    REQUIRE(sf->task == TASK_SEQ2SEQ);
    int64_t N = sf->n[split];
    size_t n = (size_t)(N ? N : 1);
    *labels = rt_calloc(n * sf->T, sizeof(int32_t), "references");
    *lengths = rt_calloc(n, sizeof(int32_t), "references");
    *group = rt_calloc(n, sizeof(int32_t), "references");
    for (int64_t first = 0; first < N; first += 65536) {
        int cnt = (int)(N - first < 65536 ? N - first : 65536);
        read_block(sf, split, "labels", first, cnt, H5T_NATIVE_INT32, *labels + first * sf->T);
        read_block(sf, split, "lengths", first, cnt, H5T_NATIVE_INT32, *lengths + first);
        read_block(sf, split, "group", first, cnt, H5T_NATIVE_INT32, *group + first);
    }
}

double seq_batch_terms(const SeqFile *sf, const SeqBatch *b) {
    double n = 0.0;
    for (size_t k = 0; k < (size_t)b->T * b->B; k++) n += b->weights[k];
    return sf->task == TASK_REGRESS || sf->task == TASK_GENERATE ? n * b->Y : n;
}

