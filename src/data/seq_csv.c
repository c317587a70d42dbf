/* csv: rnntrain prepare --csv, rows of a CSV file -> a sequence dataset (docs/tasks.md):
 *   classify / generate: each row is steps*features values and an integer label; rows are
 *     shuffled with the seed and split by --split (generate: the values become per-step
 *     targets, normalised with the train split's mean and deviation, and the label a
 *     one-hot conditioning vector);
 *   regress: one column of a time series cut into sliding windows (--window inputs,
 *     --horizon targets), split by time so no target of one split is an input of another.
 * Written atomically (atomic.h). */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "common.h"
#include "h5util.h"
#include "rng.h"
#include "seq.h"

static const char *const split_names[] = {"train", "valid", "test"};

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

/* The next comma-separated field of *p (empty fields kept), *p advanced past its comma;
 * NULL after the last. */
static char *next_field(char **p) {
    if (!*p) return NULL;
    char *f = *p, *comma = strchr(f, ',');
    if (comma) {
        *comma = 0;
        *p = comma + 1;
    } else {
        *p = NULL;
    }
    return f;
}

static void csv_read(const char *path, Csv *c) {
    memset(c, 0, sizeof *c);
    const char *odd = rt_not_regular(path);
    if (odd) rt_die(EXIT_INPUT, "--csv: '%s' is %s, expected a regular file", path, odd);
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
        char *rest = line, *tok = next_field(&rest);
        double first;
        if (c->rows == 0 && !c->header && !parse_number(tok, &first)) {
            c->header = rt_calloc((size_t)cols, sizeof(char *), "csv header");
            c->cols = cols;
            for (int k = 0; k < cols; k++, tok = next_field(&rest)) {
                while (*tok == ' ' || *tok == '"') tok++;
                size_t len = strlen(tok);
                while (len && (tok[len - 1] == '"' || tok[len - 1] == ' ')) tok[--len] = 0;
                if (len == 0)
                    rt_die(EXIT_INPUT, "--csv: '%s' line %lld (the header): column %d has no "
                           "name", path, (long long)lineno, k + 1);
                c->header[k] = rt_strdup(tok);
            }
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
        for (int k = 0; k < cols; k++, tok = next_field(&rest)) {
            double x;
            if (!tok || !parse_number(tok, &x))
                rt_die(EXIT_INPUT, "--csv: '%s' line %lld column %d: expected a number, found "
                       "'%s'", path, (long long)lineno, k + 1, tok ? tok : "");
            if (!isfinite(x))
                rt_die(EXIT_INPUT, "--csv: '%s' line %lld column %d is %s", path,
                       (long long)lineno, k + 1, isnan(x) ? "NaN" : "Inf");
            if (fabs(x) > FLT_MAX) /* stored as float32: it would become Inf */
                rt_die(EXIT_INPUT, "--csv: '%s' line %lld column %d: %g is outside the float32 "
                       "range (|x| <= %g)", path, (long long)lineno, k + 1, x, (double)FLT_MAX);
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
    h5_write_f32_summed(f, name, d->inputs, 3, in, out);
    if (d->labels) {
        uint64_t ld[1] = {(uint64_t)d->n};
        snprintf(name, sizeof name, "%s/labels", split_names[s]);
        h5_write_i32_summed(f, name, d->labels, 1, ld, out);
    }
    if (d->targets) {
        uint64_t td[3] = {(uint64_t)d->n, per_step_targets ? (uint64_t)cp->steps : (uint64_t)Y,
                          (uint64_t)Y};
        snprintf(name, sizeof name, "%s/targets", split_names[s]);
        h5_write_f32_summed(f, name, d->targets, per_step_targets ? 3 : 2, td, out);
    }
    if (d->cond) {
        uint64_t cd[2] = {(uint64_t)d->n, (uint64_t)C};
        snprintf(name, sizeof name, "%s/cond", split_names[s]);
        h5_write_f32_summed(f, name, d->cond, 2, cd, out);
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
        /* rows: steps*features values, then an integer label (in 64 bits: 2^20 x 2^20) */
        int64_t want = (int64_t)cp->steps * cp->features + 1;
        if (c.cols != want)
            rt_die(EXIT_INPUT, "--csv: '%s' has %d columns; --steps %d x --features %d needs %lld "
                   "(values, then the label)", cp->csv, c.cols, cp->steps, cp->features,
                   (long long)want);
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
        rng_shuffle_i64(&rng, perm, c.rows);
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
    h5_write_attr_int(f, "checksums", 1, tmp); /* every dataset has one (seq_open verifies) */
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
