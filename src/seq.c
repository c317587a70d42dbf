#include "seq.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "common.h"
#include "h5util.h"
#include "rng.h"

static const char *const task_names[] = {"classify", "tag", "regress", "generate"};
static const char *const split_names[] = {"train", "valid", "test"};

const char *task_name(TaskKind t) { return task_names[t]; }
int task_by_name(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, task_names[i]) == 0) return i;
    return -1;
}

int seq_split_index(const char *split) {
    for (int i = 0; i < 3; i++)
        if (strcmp(split, split_names[i]) == 0) return i;
    rt_die(EXIT_USAGE, "--split: expected train, valid or test, found '%s'", split);
}

int seq_is_sequence_file(const char *path) {
    if (access(path, R_OK) != 0 || H5Fis_hdf5(path) <= 0) return 0;
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

int seq_outputs(const SeqFile *sf) {
    return sf->task == TASK_CLASSIFY || sf->task == TASK_TAG ? sf->K : sf->Y;
}

static int64_t attr_int_or(hid_t f, const char *name, int64_t dflt, const char *path) {
    return h5_attr_exists(f, name) ? h5_read_attr_int(f, name, path) : dflt;
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

static void check_finite(const SeqFile *sf, int s, const char *name, const float *v, size_t n,
                         size_t per_seq) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            rt_die(EXIT_INPUT, "data file '%s': /%s/%s holds %s at sequence %zu (entry %zu)",
                   sf->path, split_names[s], name, isnan(v[i]) ? "NaN" : "Inf", i / per_seq, i);
}

/* Validates split s completely (shapes and values). */
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
    size_t nin = (size_t)N * sf->T * (sf->float_inputs ? sf->D : 1);
    if (sf->float_inputs) {
        float *x = rt_malloc(nin * sizeof(float), "inputs");
        h5_read_f32(sf->file, ds, x, 3, in3, sf->path);
        check_finite(sf, s, "inputs", x, nin, (size_t)sf->T * sf->D);
        free(x);
    } else {
        int32_t *x = rt_malloc(nin * sizeof(int32_t), "inputs");
        h5_read_i32(sf->file, ds, x, 2, in2, sf->path);
        for (size_t i = 0; i < nin; i++)
            if (x[i] < 0 || x[i] >= sf->vocab)
                rt_die(EXIT_INPUT, "data file '%s': /%s/inputs token %d at sequence %zu is outside "
                       "[0, %d)", sf->path, split_names[s], x[i], i / sf->T, sf->vocab);
        free(x);
    }
    uint64_t n1[1] = {d[0]};
    snprintf(ds, sizeof ds, "%s/lengths", split_names[s]);
    if (h5_exists(sf->file, ds)) {
        expect_shape(sf, s, "lengths", 1, n1);
        int32_t *len = rt_malloc((size_t)N * sizeof(int32_t), "lengths");
        h5_read_i32(sf->file, ds, len, 1, n1, sf->path);
        for (int64_t i = 0; i < N; i++)
            if (len[i] < 1 || len[i] > sf->T)
                rt_die(EXIT_INPUT, "data file '%s': /%s/lengths[%lld] is %d, expected 1..%d",
                       sf->path, split_names[s], (long long)i, len[i], sf->T);
        free(len);
    }
    if (sf->task == TASK_CLASSIFY || sf->task == TASK_TAG || sf->task == TASK_GENERATE) {
        int per_step = sf->task == TASK_TAG;
        uint64_t ld[2] = {d[0], (uint64_t)sf->T};
        snprintf(ds, sizeof ds, "%s/labels", split_names[s]);
        if (sf->task != TASK_GENERATE || h5_exists(sf->file, ds)) {
            expect_shape(sf, s, "labels", per_step ? 2 : 1, ld);
            size_t nl = (size_t)N * (per_step ? sf->T : 1);
            int32_t *lab = rt_malloc(nl * sizeof(int32_t), "labels");
            h5_read_i32(sf->file, ds, lab, per_step ? 2 : 1, ld, sf->path);
            int K = sf->task == TASK_GENERATE ? sf->C : sf->K;
            for (size_t i = 0; i < nl; i++)
                if (lab[i] < 0 || lab[i] >= K)
                    rt_die(EXIT_INPUT, "data file '%s': /%s/labels: label %d of sequence %zu is "
                           "out of range [0, %d)", sf->path, split_names[s], lab[i],
                           i / (per_step ? sf->T : 1), K);
            free(lab);
        }
    }
    if (sf->task == TASK_REGRESS || sf->task == TASK_GENERATE) {
        int per_step = sf->task == TASK_GENERATE;
        uint64_t td[3] = {d[0], per_step ? (uint64_t)sf->T : (uint64_t)sf->Y, (uint64_t)sf->Y};
        expect_shape(sf, s, "targets", per_step ? 3 : 2, td);
        size_t nt = (size_t)N * sf->Y * (per_step ? sf->T : 1);
        float *t = rt_malloc(nt * sizeof(float), "targets");
        snprintf(ds, sizeof ds, "%s/targets", split_names[s]);
        h5_read_f32(sf->file, ds, t, per_step ? 3 : 2, td, sf->path);
        check_finite(sf, s, "targets", t, nt, nt / (size_t)N);
        free(t);
    }
    if (sf->C > 0) {
        uint64_t cd[2] = {d[0], (uint64_t)sf->C};
        expect_shape(sf, s, "cond", 2, cd);
        float *c = rt_malloc((size_t)N * sf->C * sizeof(float), "cond");
        snprintf(ds, sizeof ds, "%s/cond", split_names[s]);
        h5_read_f32(sf->file, ds, c, 2, cd, sf->path);
        check_finite(sf, s, "cond", c, (size_t)N * sf->C, (size_t)sf->C);
        free(c);
    }
}

void seq_open(SeqFile *sf, const char *path) {
    memset(sf, 0, sizeof *sf);
    sf->path = rt_strdup(path);
    sf->file = h5_open_read(path, "data file");
    char buf[64];
    h5_read_attr_str(sf->file, "format", buf, sizeof buf, path);
    if (strcmp(buf, "rnntrain-sequences") != 0)
        rt_die(EXIT_INPUT, "data file '%s': format '%s', expected 'rnntrain-sequences'", path, buf);
    if (h5_read_attr_int(sf->file, "version", path) != 1)
        rt_die(EXIT_INPUT, "data file '%s': sequence format version %lld, this rnntrain reads 1",
               path, (long long)h5_read_attr_int(sf->file, "version", path));
    h5_read_attr_str(sf->file, "task", buf, sizeof buf, path);
    int t = task_by_name(buf);
    if (t < 0)
        rt_die(EXIT_INPUT, "data file '%s': task '%s', expected classify, tag, regress or generate",
               path, buf);
    sf->task = (TaskKind)t;
    h5_read_attr_str(sf->file, "inputs", buf, sizeof buf, path);
    if (strcmp(buf, "features") != 0 && strcmp(buf, "tokens") != 0)
        rt_die(EXIT_INPUT, "data file '%s': inputs '%s', expected 'features' or 'tokens'", path,
               buf);
    sf->float_inputs = strcmp(buf, "features") == 0;
    sf->T = (int)h5_read_attr_int(sf->file, "steps", path);
    sf->D = (int)attr_int_or(sf->file, "features", 0, path);
    sf->vocab = (int)attr_int_or(sf->file, "vocab_size", 0, path);
    sf->K = (int)attr_int_or(sf->file, "classes", 0, path);
    sf->Y = (int)attr_int_or(sf->file, "outputs", 0, path);
    sf->C = (int)attr_int_or(sf->file, "cond", 0, path);
    sf->norm_mean = h5_attr_exists(sf->file, "norm_mean") ? h5_read_attr_double(sf->file, "norm_mean", path) : 0.0;
    sf->norm_std = h5_attr_exists(sf->file, "norm_std") ? h5_read_attr_double(sf->file, "norm_std", path) : 1.0;
    if (sf->T < 1 || sf->T > 1000000)
        rt_die(EXIT_INPUT, "data file '%s': steps %d out of range", path, sf->T);
    if (sf->float_inputs ? sf->D < 1 : sf->vocab < 2)
        rt_die(EXIT_INPUT, "data file '%s': needs %s", path,
               sf->float_inputs ? "features >= 1" : "vocab_size >= 2");
    if ((sf->task == TASK_CLASSIFY || sf->task == TASK_TAG) && sf->K < 2)
        rt_die(EXIT_INPUT, "data file '%s': task %s needs classes >= 2", path, task_name(sf->task));
    if ((sf->task == TASK_REGRESS || sf->task == TASK_GENERATE) && sf->Y < 1)
        rt_die(EXIT_INPUT, "data file '%s': task %s needs outputs >= 1", path, task_name(sf->task));
    if (sf->task == TASK_GENERATE && sf->C < 1)
        rt_die(EXIT_INPUT, "data file '%s': task generate needs a conditioning vector (cond >= 1)",
               path);
    if (!(sf->norm_std > 0.0) || !isfinite(sf->norm_mean))
        rt_die(EXIT_INPUT, "data file '%s': bad normalisation (norm_std must be > 0)", path);
    for (int s = 0; s < 3; s++) validate_split(sf, s);
    if (sf->n[0] < 1) rt_die(EXIT_INPUT, "data file '%s': the train split has no sequences", path);
}

void seq_close(SeqFile *sf) {
    if (sf->file > 0) H5Fclose(sf->file);
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
    size_t per_row = (size_t)sf->T * b->D;
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
    free(b->rows);
    memset(b, 0, sizeof *b);
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
    if (sf->task == TASK_CLASSIFY || sf->task == TASK_TAG ||
        (sf->task == TASK_GENERATE && has(sf, s, "labels"))) {
        int per_step = sf->task == TASK_TAG;
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

double seq_batch_terms(const SeqFile *sf, const SeqBatch *b) {
    double n = 0.0;
    for (size_t k = 0; k < (size_t)b->T * b->B; k++) n += b->weights[k];
    return sf->task == TASK_REGRESS || sf->task == TASK_GENERATE ? n * b->Y : n;
}

/* ---- rnntrain prepare --csv ---------------------------------------------------------- */

typedef struct {
    double *v;       /* rows * cols values */
    int64_t rows;
    int cols;
    char **header;   /* column names if the first line was a header */
} Csv;

static int parse_number(const char *s, double *out) {
    char *end;
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return 0;
    errno = 0;
    *out = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    return errno == 0 && *end == 0;
}

static void csv_read(const char *path, Csv *c) {
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "r");
    if (!f) rt_die(EXIT_INPUT, "--csv: cannot open '%s': %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, vcap = 0;
    ssize_t n;
    int64_t lineno = 0;
    while ((n = getline(&line, &cap, f)) != -1) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        int cols = 1;
        for (char *p = line; *p; p++) cols += *p == ',';
        char *save = NULL, *tok = strtok_r(line, ",", &save);
        double first;
        if (c->rows == 0 && !c->header && tok && !parse_number(tok, &first)) {
            c->header = rt_calloc((size_t)cols, sizeof(char *), "csv header");
            for (int k = 0; k < cols && tok; k++, tok = strtok_r(NULL, ",", &save)) {
                while (*tok == ' ' || *tok == '"') tok++;
                size_t len = strlen(tok);
                while (len && (tok[len - 1] == '"' || tok[len - 1] == ' ')) tok[--len] = 0;
                c->header[k] = rt_strdup(tok);
            }
            c->cols = cols;
            continue;
        }
        if (c->cols == 0) c->cols = cols;
        if (cols != c->cols)
            rt_die(EXIT_INPUT, "--csv: '%s' line %lld has %d columns, expected %d", path,
                   (long long)lineno, cols, c->cols);
        if ((size_t)(c->rows + 1) * c->cols > vcap) {
            vcap = vcap ? 2 * vcap : (size_t)c->cols * 1024;
            c->v = rt_realloc(c->v, vcap * sizeof(double), "csv");
        }
        for (int k = 0; k < cols; k++, tok = strtok_r(NULL, ",", &save)) {
            double x;
            if (!tok || !parse_number(tok, &x))
                rt_die(EXIT_INPUT, "--csv: '%s' line %lld column %d: expected a number, found "
                       "'%s'", path, (long long)lineno, k + 1, tok ? tok : "");
            if (!isfinite(x))
                rt_die(EXIT_INPUT, "--csv: '%s' line %lld column %d is %s", path,
                       (long long)lineno, k + 1, isnan(x) ? "NaN" : "Inf");
            c->v[(size_t)c->rows * c->cols + k] = x;
        }
        c->rows++;
    }
    free(line);
    fclose(f);
    if (c->rows == 0) rt_die(EXIT_INPUT, "--csv: '%s' holds no data rows", path);
}

static void csv_free(Csv *c) {
    if (c->header)
        for (int k = 0; k < c->cols; k++) free(c->header[k]);
    free(c->header);
    free(c->v);
}

typedef struct {
    int64_t n;
    float *inputs, *targets, *cond;
    int32_t *labels;
} SplitData;

static void write_split(hid_t f, const char *out, int s, const SplitData *d, const CsvPrepare *cp,
                        int D_in, int Y, int C, int per_step_targets) {
    char name[64];
    snprintf(name, sizeof name, "%s", split_names[s]);
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) rt_die(EXIT_RUNTIME, "--output: cannot create group /%s in '%s'", name, out);
    H5Gclose(g);
    uint64_t in[3] = {(uint64_t)d->n, (uint64_t)cp->steps, (uint64_t)D_in};
    snprintf(name, sizeof name, "%s/inputs", split_names[s]);
    h5_write_f32(f, name, d->inputs, 3, in, out);
    if (d->labels) {
        uint64_t ld[1] = {(uint64_t)d->n};
        snprintf(name, sizeof name, "%s/labels", split_names[s]);
        h5_write_i32(f, name, d->labels, 1, ld, out);
    }
    if (d->targets) {
        uint64_t td[3] = {(uint64_t)d->n, per_step_targets ? (uint64_t)cp->steps : (uint64_t)Y,
                          (uint64_t)Y};
        snprintf(name, sizeof name, "%s/targets", split_names[s]);
        h5_write_f32(f, name, d->targets, per_step_targets ? 3 : 2, td, out);
    }
    if (d->cond) {
        uint64_t cd[2] = {(uint64_t)d->n, (uint64_t)C};
        snprintf(name, sizeof name, "%s/cond", split_names[s]);
        h5_write_f32(f, name, d->cond, 2, cd, out);
    }
}

void seq_prepare_csv(const CsvPrepare *cp) {
    Csv c;
    csv_read(cp->csv, &c);
    SplitData sd[3];
    memset(sd, 0, sizeof sd);
    int D_in = 1, Y = 0, K = 0, C = 0, per_step_targets = 0;
    double mean = 0.0, std = 1.0;
    if (cp->task == TASK_CLASSIFY || cp->task == TASK_GENERATE) {
        /* rows: steps*features values, then an integer label */
        int want = cp->steps * cp->features + 1;
        if (c.cols != want)
            rt_die(EXIT_INPUT, "--csv: '%s' has %d columns; --steps %d x --features %d needs %d "
                   "(values, then the label)", cp->csv, c.cols, cp->steps, cp->features, want);
        for (int64_t r = 0; r < c.rows; r++) {
            double l = c.v[(size_t)r * c.cols + c.cols - 1];
            if (l < 0 || l != floor(l) || l > 1e6)
                rt_die(EXIT_INPUT, "--csv: '%s' data row %lld: the label %g is not a class number "
                       "(0, 1, 2, ...)", cp->csv, (long long)r + 1, l);
            if ((int)l + 1 > K) K = (int)l + 1;
        }
        if (K < 2) rt_die(EXIT_INPUT, "--csv: '%s' has a single class; nothing to learn", cp->csv);
        /* shuffle with the seed, then split */
        int64_t *perm = rt_malloc((size_t)c.rows * sizeof *perm, "permutation");
        for (int64_t i = 0; i < c.rows; i++) perm[i] = i;
        Rng rng;
        rng_seed(&rng, (uint64_t)cp->seed);
        for (int64_t i = c.rows - 1; i > 0; i--) {
            int64_t j = (int64_t)(rng_u64(&rng) % (uint64_t)(i + 1));
            int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        int64_t n0 = (int64_t)(c.rows * cp->frac[0]), n1 = (int64_t)(c.rows * cp->frac[1]);
        int64_t bounds[4] = {0, n0, n0 + n1, c.rows};
        int nf = cp->steps * cp->features;
        if (cp->task == TASK_GENERATE) { /* normalise targets with the train split's stats */
            double s1 = 0, s2 = 0;
            for (int64_t i = 0; i < n0; i++)
                for (int k = 0; k < nf; k++) {
                    double v = c.v[(size_t)perm[i] * c.cols + k];
                    s1 += v;
                    s2 += v * v;
                }
            double cnt = (double)n0 * nf;
            mean = cnt > 0 ? s1 / cnt : 0.0;
            std = cnt > 0 ? sqrt(fmax(s2 / cnt - mean * mean, 1e-12)) : 1.0;
            Y = cp->features;
            C = K;
            per_step_targets = 1;
        } else {
            D_in = cp->features;
        }
        for (int s = 0; s < 3; s++) {
            SplitData *d = &sd[s];
            d->n = bounds[s + 1] - bounds[s];
            size_t n = (size_t)(d->n > 0 ? d->n : 1);
            d->inputs = rt_calloc(n * cp->steps * D_in, sizeof(float), "inputs");
            d->labels = rt_calloc(n, sizeof(int32_t), "labels");
            if (cp->task == TASK_GENERATE) {
                d->targets = rt_calloc(n * nf, sizeof(float), "targets");
                d->cond = rt_calloc(n * K, sizeof(float), "cond");
            }
            for (int64_t i = 0; i < d->n; i++) {
                const double *row = c.v + (size_t)perm[bounds[s] + i] * c.cols;
                d->labels[i] = (int32_t)row[c.cols - 1];
                for (int k = 0; k < nf; k++) {
                    if (cp->task == TASK_GENERATE)
                        d->targets[(size_t)i * nf + k] = (float)((row[k] - mean) / std);
                    else
                        d->inputs[(size_t)i * nf + k] = (float)row[k];
                }
                if (d->cond) d->cond[(size_t)i * K + d->labels[i]] = 1.0f;
            }
        }
        free(perm);
    } else if (cp->task == TASK_REGRESS) {
        /* a time series column -> sliding windows (window in, horizon out), split by time */
        int col = -1;
        if (c.header)
            for (int k = 0; k < c.cols; k++)
                if (strcmp(c.header[k], cp->column) == 0) col = k;
        if (col < 0 && !c.header) col = atoi(cp->column) - 1;
        if (col < 0 || col >= c.cols)
            rt_die(EXIT_USAGE, "--column: '%s' is not a column of '%s'", cp->column, cp->csv);
        int64_t n = c.rows, W = cp->window, Hh = cp->horizon;
        int64_t end0 = (int64_t)(n * cp->frac[0]), end1 = end0 + (int64_t)(n * cp->frac[1]);
        int64_t ends[3] = {end0, end1, n};
        if (end0 < W + Hh)
            rt_die(EXIT_INPUT, "--csv: '%s': the train part has %lld values, fewer than --window "
                   "%lld + --horizon %lld", cp->csv, (long long)end0, (long long)W, (long long)Hh);
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < end0; i++) {
            double v = c.v[(size_t)i * c.cols + col];
            s1 += v;
            s2 += v * v;
        }
        mean = s1 / (double)end0;
        std = sqrt(fmax(s2 / (double)end0 - mean * mean, 1e-12));
        Y = (int)Hh;
        /* window starting at i: inputs [i, i+W), targets [i+W, i+W+H); it belongs to the
         * split that contains its last target and all of its inputs' split or earlier */
        for (int s = 0; s < 3; s++) {
            int64_t lo = s == 0 ? 0 : ends[s - 1] - W; /* inputs may reach into the past */
            int64_t first_target_min = s == 0 ? 0 : ends[s - 1];
            SplitData *d = &sd[s];
            int64_t count = 0;
            for (int64_t i = lo < 0 ? 0 : lo; i + W + Hh <= ends[s]; i++)
                if (i + W >= first_target_min) count++;
            d->n = count;
            d->inputs = rt_calloc((size_t)(count ? count : 1) * W, sizeof(float), "inputs");
            d->targets = rt_calloc((size_t)(count ? count : 1) * Hh, sizeof(float), "targets");
            int64_t k = 0;
            for (int64_t i = lo < 0 ? 0 : lo; i + W + Hh <= ends[s]; i++) {
                if (i + W < first_target_min) continue;
                for (int64_t t = 0; t < W; t++)
                    d->inputs[k * W + t] = (float)((c.v[(size_t)(i + t) * c.cols + col] - mean) / std);
                for (int64_t h = 0; h < Hh; h++)
                    d->targets[k * Hh + h] =
                        (float)((c.v[(size_t)(i + W + h) * c.cols + col] - mean) / std);
                k++;
            }
        }
    } else {
        rt_die(EXIT_USAGE, "--task: prepare --csv makes classify, regress or generate datasets "
               "(tag datasets are written directly in the HDF5 schema of docs/formats.md)");
    }
    AtomicFile a;
    atomic_begin(&a, cp->output, "--output dataset");
    const char *tmp = a.tmp;
    hid_t f = h5_create(tmp);
    h5_write_attr_str(f, "format", "rnntrain-sequences", tmp);
    h5_write_attr_int(f, "version", 1, tmp);
    h5_write_attr_str(f, "task", task_name(cp->task), tmp);
    h5_write_attr_str(f, "inputs", "features", tmp);
    h5_write_attr_int(f, "steps", cp->task == TASK_REGRESS ? cp->window : cp->steps, tmp);
    h5_write_attr_int(f, "features", D_in, tmp);
    if (K && cp->task == TASK_CLASSIFY) h5_write_attr_int(f, "classes", K, tmp);
    if (Y) h5_write_attr_int(f, "outputs", Y, tmp);
    if (C) h5_write_attr_int(f, "cond", C, tmp);
    h5_write_attr_double(f, "norm_mean", mean, tmp);
    h5_write_attr_double(f, "norm_std", std, tmp);
    CsvPrepare geom = *cp;
    if (cp->task == TASK_REGRESS) geom.steps = cp->window;
    for (int s = 0; s < 3; s++) {
        write_split(f, tmp, s, &sd[s], &geom, D_in, Y, C, per_step_targets);
        free(sd[s].inputs);
        free(sd[s].targets);
        free(sd[s].cond);
        free(sd[s].labels);
    }
    h5_close_file(f, tmp);
    atomic_commit(&a);
    printf("%s: %s dataset | %lld train, %lld valid, %lld test sequences of %d steps\n",
           cp->output, task_name(cp->task), (long long)sd[0].n, (long long)sd[1].n,
           (long long)sd[2].n, geom.steps);
    csv_free(&c);
}
