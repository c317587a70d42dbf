/* rnntrain prepare --pairs: each case runs the real binary on a small TSV/CSV file and
 * reads the dataset back with the plain HDF5 API (not the writer's helpers): exact ids, the
 * </s> = 0 and <s> = 1 conventions, lengths, padding, groups, the split by source string
 * (one source never in two splits; a fixed seed gives the same file twice), CSV quoting and
 * features sources. Bad files exit 3 (bad command lines 2) with a message naming the file
 * and line, and leave no output behind nor damage an existing one. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

static char dir[256];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/rnntrain-test-pairs-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* dir/name with the given contents; returns the path (static buffer per slot). */
static const char *input(int slot, const char *name, const char *text) {
    static char paths[4][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", dir, name);
    write_file(paths[slot], text);
    return paths[slot];
}

/* Runs `rnntrain prepare ARGS`; returns the exit status, the output in out. */
static int prepare(const char *args, char *out, size_t size) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s prepare %s", RNNTRAIN_BIN, args);
    return test_capture(cmd, out, size);
}

static void prepare_ok(const char *args) {
    char out[8192];
    int rc = prepare(args, out, sizeof out);
    ck_assert_msg(rc == 0, "'prepare %s': exit %d:\n%s", args, rc, out);
    ck_assert_msg(strstr(out, "seq2seq dataset | train "), "no summary line:\n%s", out);
}

/* ---- reading with the plain HDF5 API ------------------------------------------------ */

static int64_t attr_int(hid_t f, const char *name) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute '%s' missing", name);
    int64_t v = -1;
    ck_assert(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    return v;
}

static void expect_attr_str(hid_t f, const char *name, const char *want) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute '%s' missing", name);
    hid_t t = H5Aget_type(a);
    ck_assert(H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t));
    char buf[256] = {0};
    size_t size = H5Tget_size(t);
    ck_assert(size < sizeof buf);
    ck_assert(H5Aread(a, t, buf) >= 0);
    H5Tclose(t);
    H5Aclose(a);
    ck_assert_msg(strcmp(buf, want) == 0, "attribute %s = '%s', expected '%s'", name, buf, want);
}

static int has(hid_t f, const char *name) { return H5Lexists(f, name, H5P_DEFAULT) > 0; }

/* A whole dataset in memory type mt; its shape must be (d0) or (d0, d1) (d1 < 0: 1-D). */
static void *read_ds(hid_t f, const char *name, hid_t mt, size_t elem, hsize_t d0,
                     long long d1) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "dataset '%s' missing", name);
    hid_t s = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    int nd = H5Sget_simple_extent_dims(s, dims, NULL);
    ck_assert_msg(nd == (d1 < 0 ? 1 : 2), "'%s' has rank %d", name, nd);
    ck_assert_msg(dims[0] == d0 && (d1 < 0 || dims[1] == (hsize_t)d1),
                  "'%s' is (%llu, %llu), expected (%llu, %lld)", name,
                  (unsigned long long)dims[0], (unsigned long long)dims[1],
                  (unsigned long long)d0, d1);
    size_t n = (size_t)d0 * (size_t)(d1 < 0 ? 1 : d1);
    void *buf = calloc(n ? n : 1, elem);
    ck_assert(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    return buf;
}

static int32_t *read_i32(hid_t f, const char *name, hsize_t d0, long long d1) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "dataset '%s' missing", name);
    hid_t t = H5Dget_type(d);
    ck_assert_msg(H5Tequal(t, H5T_STD_I32LE) > 0, "'%s' is not int32", name);
    H5Tclose(t);
    H5Dclose(d);
    return read_ds(f, name, H5T_NATIVE_INT32, sizeof(int32_t), d0, d1);
}

/* /target_symbols or /source_symbols as a NUL-terminated string (uint8 on disk). */
static char *read_symbols(hid_t f, const char *name) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "dataset '%s' missing", name);
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    ck_assert_msg(H5Tequal(t, H5T_STD_U8LE) > 0, "'%s' is not uint8", name);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    char *buf = calloc((size_t)n + 1, 1);
    ck_assert(H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
    return buf;
}

static hsize_t split_rows(hid_t f, const char *split) {
    char name[64];
    snprintf(name, sizeof name, "%s/lengths", split);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "'%s' missing", name);
    hid_t s = H5Dget_space(d);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(s, &n, NULL);
    H5Sclose(s);
    H5Dclose(d);
    return n;
}

/* Every row of a token-target split: decoder inputs start with <s> (1), labels end with </s>
 * (0), labels[t] = inputs[t+1], zeros past the length, groups as documented. */
static void check_conventions(hid_t f, const char *split, int T) {
    hsize_t N = split_rows(f, split);
    char name[64];
    snprintf(name, sizeof name, "%s/inputs", split);
    int32_t *in = read_i32(f, name, N, T);
    snprintf(name, sizeof name, "%s/labels", split);
    int32_t *lab = read_i32(f, name, N, T);
    snprintf(name, sizeof name, "%s/lengths", split);
    int32_t *len = read_i32(f, name, N, -1);
    snprintf(name, sizeof name, "%s/group", split);
    int32_t *grp = read_i32(f, name, N, -1);
    for (hsize_t i = 0; i < N; i++) {
        const int32_t *x = in + i * (hsize_t)T, *y = lab + i * (hsize_t)T;
        ck_assert(len[i] >= 2 && len[i] <= T);
        ck_assert_int_eq(x[0], 1);
        ck_assert_int_eq(y[len[i] - 1], 0);
        for (int t = 0; t + 1 < len[i]; t++) {
            ck_assert_int_ge(y[t], 2);
            ck_assert_int_eq(y[t], x[t + 1]);
        }
        for (int t = len[i]; t < T; t++) ck_assert(x[t] == 0 && y[t] == 0);
        ck_assert(grp[i] == (int32_t)i || (i > 0 && grp[i] == grp[i - 1]));
    }
    free(in);
    free(lab);
    free(len);
    free(grp);
}

/* ---- the output, id by id ----------------------------------------------------------- */

/* Writes dir/NAME with TEXT, runs prepare --pairs on it with OPTIONS into dir/NAME.h5 and
 * opens that. */
static hid_t prepare_open(const char *name, const char *text, const char *options) {
    const char *in = input(0, name, text);
    char args[2048];
    snprintf(args, sizeof args, "--pairs %s %s --output %s.h5", in, options, in);
    prepare_ok(args);
    snprintf(args, sizeof args, "%s.h5", in);
    hid_t f = H5Fopen(args, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    return f;
}

START_TEST(tokens_exact) {
    /* sources "ba" twice (lines 1, 3; the second with CRLF) and "a"; blank lines at the end */
    hid_t f = prepare_open("small.tsv", "ba\tx y\na\ty\nba\tz\r\n\n\n",
                           "--source chars --target symbols --split 1,0,0");
    expect_attr_str(f, "format", "rnntrain-sequences");
    ck_assert_int_eq(attr_int(f, "version"), 1);
    expect_attr_str(f, "task", "seq2seq");
    expect_attr_str(f, "inputs", "tokens");
    expect_attr_str(f, "target_kind", "symbols");
    expect_attr_str(f, "source", "tokens");
    expect_attr_str(f, "source_kind", "chars");
    ck_assert_int_eq(attr_int(f, "steps"), 3);      /* "x y": 2 symbols + 1 */
    ck_assert_int_eq(attr_int(f, "vocab_size"), 5); /* </s>, <s>, x, y, z */
    ck_assert_int_eq(attr_int(f, "classes"), 5);
    ck_assert_int_eq(attr_int(f, "source_steps"), 2);
    ck_assert_int_eq(attr_int(f, "source_vocab_size"), 2);
    ck_assert(!has(f, "cond") && !H5Aexists(f, "cond"));
    char *ts = read_symbols(f, "target_symbols"), *ss = read_symbols(f, "source_symbols");
    ck_assert_str_eq(ts, "</s>\n<s>\nx\ny\nz\n");
    ck_assert_str_eq(ss, "a\nb\n");
    free(ts);
    free(ss);

    int32_t *x = read_i32(f, "train/inputs", 3, 3), *y = read_i32(f, "train/labels", 3, 3);
    int32_t *len = read_i32(f, "train/lengths", 3, -1), *grp = read_i32(f, "train/group", 3, -1);
    int32_t *src = read_i32(f, "train/source", 3, 2);
    int32_t *slen = read_i32(f, "train/source_lengths", 3, -1);
    /* the two sources in either order (the shuffle); "ba"'s rows adjacent, in file order */
    int ba = src[0] == 1 ? 0 : 1; /* row of the first "ba" line */
    int a = ba == 0 ? 2 : 0;
    static const int32_t x_xy[3] = {1, 2, 3}, y_xy[3] = {2, 3, 0};
    static const int32_t x_z[3] = {1, 4, 0}, y_z[3] = {4, 0, 0};
    static const int32_t x_y[3] = {1, 3, 0}, y_y[3] = {3, 0, 0};
    ck_assert_mem_eq(x + 3 * ba, x_xy, sizeof x_xy);
    ck_assert_mem_eq(y + 3 * ba, y_xy, sizeof y_xy);
    ck_assert_mem_eq(x + 3 * (ba + 1), x_z, sizeof x_z);
    ck_assert_mem_eq(y + 3 * (ba + 1), y_z, sizeof y_z);
    ck_assert_mem_eq(x + 3 * a, x_y, sizeof x_y);
    ck_assert_mem_eq(y + 3 * a, y_y, sizeof y_y);
    ck_assert(len[ba] == 3 && len[ba + 1] == 2 && len[a] == 2);
    static const int32_t s_ba[2] = {1, 0}, s_a[2] = {0, 0}; /* a = 0, b = 1, 0 padding */
    ck_assert_mem_eq(src + 2 * ba, s_ba, sizeof s_ba);
    ck_assert_mem_eq(src + 2 * (ba + 1), s_ba, sizeof s_ba);
    ck_assert_mem_eq(src + 2 * a, s_a, sizeof s_a);
    ck_assert(slen[ba] == 2 && slen[ba + 1] == 2 && slen[a] == 1);
    ck_assert(grp[ba] == ba && grp[ba + 1] == ba && grp[a] == a);
    free(x);
    free(y);
    free(len);
    free(grp);
    free(src);
    free(slen);
    /* empty splits still have every dataset, 0 rows and the right other dimensions */
    for (int s = 1; s < 3; s++) {
        const char *split = s == 1 ? "valid" : "test";
        char name[64];
        static const char *const one_d[3] = {"lengths", "group", "source_lengths"};
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "%s/%s", split, one_d[k]);
            free(read_i32(f, name, 0, -1));
        }
        snprintf(name, sizeof name, "%s/inputs", split);
        free(read_i32(f, name, 0, 3));
        snprintf(name, sizeof name, "%s/labels", split);
        free(read_i32(f, name, 0, 3));
        snprintf(name, sizeof name, "%s/source", split);
        free(read_i32(f, name, 0, 2));
    }
    check_conventions(f, "train", 3);
    H5Fclose(f);
}
END_TEST

START_TEST(csv_quoting) {
    /* a comma inside quotes, "" for a quote, a 2-byte UTF-8 character, a quoted target */
    hid_t f = prepare_open("q.csv", "\"a,b\",x\n\"say \"\"hi\"\"\",\"\xc3\xa9,\"\nplain,\"y\"\n",
                           "--split 1,0,0");
    expect_attr_str(f, "target_kind", "chars");
    expect_attr_str(f, "source_kind", "chars");
    char *ts = read_symbols(f, "target_symbols"), *ss = read_symbols(f, "source_symbols");
    ck_assert_str_eq(ts, "</s>\n<s>\n,\nx\ny\n\xc3\xa9\n"); /* byte order: ',' < x < y < é */
    /*                    0    1    2   3   4    5   6   7   8   9   10  11 */
    ck_assert_str_eq(ss, " \n\"\n,\na\nb\nh\ni\nl\nn\np\ns\ny\n");
    free(ts);
    free(ss);
    ck_assert_int_eq(attr_int(f, "source_steps"), 8);
    ck_assert_int_eq(attr_int(f, "steps"), 3);
    int32_t *src = read_i32(f, "train/source", 3, 8), *slen = read_i32(f, "train/source_lengths", 3, -1);
    int32_t *y = read_i32(f, "train/labels", 3, 3);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        const int32_t *s = src + 8 * i, *l = y + 3 * i;
        if (slen[i] == 3) { /* a,b -> x */
            static const int32_t want[8] = {3, 2, 4, 0, 0, 0, 0, 0}, wl[3] = {3, 0, 0};
            ck_assert_mem_eq(s, want, sizeof want);
            ck_assert_mem_eq(l, wl, sizeof wl);
            seen |= 1;
        } else if (slen[i] == 8) { /* say "hi" -> é, */
            static const int32_t want[8] = {10, 3, 11, 0, 1, 5, 6, 1}, wl[3] = {5, 2, 0};
            ck_assert_mem_eq(s, want, sizeof want);
            ck_assert_mem_eq(l, wl, sizeof wl);
            seen |= 2;
        } else { /* plain -> y */
            static const int32_t want[8] = {9, 7, 3, 6, 8, 0, 0, 0}, wl[3] = {4, 0, 0};
            ck_assert_int_eq(slen[i], 5);
            ck_assert_mem_eq(s, want, sizeof want);
            ck_assert_mem_eq(l, wl, sizeof wl);
            seen |= 4;
        }
    }
    ck_assert_int_eq(seen, 7);
    free(src);
    free(slen);
    free(y);
    check_conventions(f, "train", 3);
    H5Fclose(f);
}
END_TEST

START_TEST(features_source) {
    /* space- and comma-separated values; lines 1 and 3 share a source (one group) */
    hid_t f = prepare_open("f.tsv", "0 0.5 1\tone\n0.25,0.75, 1e-1\ttwo\n0 0.5 1\tuno\n",
                           "--source features --split 1,0,0");
    expect_attr_str(f, "source", "features");
    ck_assert_int_eq(attr_int(f, "cond"), 3);
    ck_assert(!H5Aexists(f, "source_steps") && !H5Aexists(f, "source_vocab_size") &&
              !H5Aexists(f, "source_kind") && !has(f, "source_symbols") &&
              !has(f, "train/source") && !has(f, "train/source_lengths"));
    char *ts = read_symbols(f, "target_symbols");
    ck_assert_str_eq(ts, "</s>\n<s>\ne\nn\no\nt\nu\nw\n");
    free(ts);
    ck_assert_int_eq(attr_int(f, "steps"), 4);
    float *c = read_ds(f, "train/cond", H5T_NATIVE_FLOAT, sizeof(float), 3, 3);
    int32_t *y = read_i32(f, "train/labels", 3, 4), *grp = read_i32(f, "train/group", 3, -1);
    static const float a[3] = {0.0f, 0.5f, 1.0f}, b[3] = {0.25f, 0.75f, 0.1f};
    /* "one" = o n e = 4 3 2, "uno" = u n o = 6 3 4, "two" = t w o = 5 7 4 */
    static const int32_t one[4] = {4, 3, 2, 0}, uno[4] = {6, 3, 4, 0}, two[4] = {5, 7, 4, 0};
    int A = c[0] == 0.0f ? 0 : 1; /* first row of source a */
    int B = A == 0 ? 2 : 0;
    ck_assert_mem_eq(c + 3 * A, a, sizeof a);
    ck_assert_mem_eq(c + 3 * (A + 1), a, sizeof a);
    ck_assert_mem_eq(c + 3 * B, b, sizeof b);
    ck_assert_mem_eq(y + 4 * A, one, sizeof one);
    ck_assert_mem_eq(y + 4 * (A + 1), uno, sizeof uno);
    ck_assert_mem_eq(y + 4 * B, two, sizeof two);
    ck_assert(grp[A] == A && grp[A + 1] == A && grp[B] == B);
    free(c);
    free(y);
    free(grp);
    check_conventions(f, "train", 4);
    H5Fclose(f);
}
END_TEST

/* The source id sequences of a split's rows (one key per row). */
static char **split_keys(hid_t f, const char *split, hsize_t *n, int S) {
    char name[64];
    *n = split_rows(f, split);
    snprintf(name, sizeof name, "%s/source", split);
    int32_t *src = read_i32(f, name, *n, S);
    char **keys = calloc(*n ? *n : 1, sizeof *keys);
    for (hsize_t i = 0; i < *n; i++) {
        keys[i] = calloc((size_t)S * 12 + 1, 1);
        for (int t = 0; t < S; t++)
            sprintf(keys[i] + strlen(keys[i]), "%d,", src[i * (hsize_t)S + t]);
    }
    free(src);
    return keys;
}

START_TEST(split_by_source) {
    /* 200 sources (two symbols each, --source symbols), each on 1..3 lines spread over the
     * file; the target says which occurrence it is (a, b, c) */
    enum { NSRC = 200 };
    size_t cap = 64 * 1024, len = 0;
    char *text = calloc(cap, 1);
    int rows = 0;
    for (int rep = 0; rep < 3; rep++)
        for (int k = 0; k < NSRC; k++)
            if (rep <= k % 3) {
                len += (size_t)snprintf(text + len, cap - len, "w%d  x\t%c\n", k, 'a' + rep);
                rows++;
            }
    const char *in = input(0, "many.tsv", text);
    free(text);
    char args[2048], out[3][600];
    for (int run = 0; run < 3; run++) {
        snprintf(out[run], sizeof out[run], "%s/many%d.h5", dir, run);
        snprintf(args, sizeof args, "--pairs %s --source symbols --split 0.5,0.25,0.25 --seed %d "
                 "--output %s", in, run < 2 ? 7 : 8, out[run]);
        prepare_ok(args);
    }
    hid_t f = H5Fopen(out[0], H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert_int_eq(attr_int(f, "source_vocab_size"), NSRC + 1);
    ck_assert_int_eq(attr_int(f, "source_steps"), 2);
    ck_assert_int_eq(attr_int(f, "steps"), 2);
    static const char *const splits[3] = {"train", "valid", "test"};
    static const int want_sources[3] = {100, 50, 50};
    char **keys[3];
    hsize_t n[3], total = 0;
    for (int s = 0; s < 3; s++) {
        keys[s] = split_keys(f, splits[s], &n[s], 2);
        total += n[s];
        check_conventions(f, splits[s], 2);
        char name[64];
        snprintf(name, sizeof name, "%s/labels", splits[s]);
        int32_t *y = read_i32(f, name, n[s], 2);
        int sources = 0;
        for (hsize_t i = 0; i < n[s]; i++) {
            int same = i > 0 && strcmp(keys[s][i], keys[s][i - 1]) == 0;
            /* a new source starts with its first line (a = id 2), then b, c in file order */
            ck_assert_int_eq(y[2 * i], same ? y[2 * (i - 1)] + 1 : 2);
            sources += !same;
            /* adjacent: a source seen before in this split is the previous row's */
            for (hsize_t j = 0; !same && j < i; j++) ck_assert_str_ne(keys[s][i], keys[s][j]);
        }
        ck_assert_int_eq(sources, want_sources[s]);
        free(y);
    }
    ck_assert_int_eq((int)total, rows);
    for (int s = 0; s < 3; s++)
        for (int r = s + 1; r < 3; r++)
            for (hsize_t i = 0; i < n[s]; i++)
                for (hsize_t j = 0; j < n[r]; j++) ck_assert_str_ne(keys[s][i], keys[r][j]);
    /* the same seed gives the same dataset; another seed another order */
    hid_t f1 = H5Fopen(out[1], H5F_ACC_RDONLY, H5P_DEFAULT), f2 = H5Fopen(out[2], H5F_ACC_RDONLY,
                                                                         H5P_DEFAULT);
    ck_assert(f1 >= 0 && f2 >= 0);
    int differs = 0;
    static const char *const names[5] = {"inputs", "labels", "source", "lengths", "group"};
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < 5; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s/%s", splits[s], names[k]);
            long long d1 = k < 3 ? 2 : -1;
            int32_t *a = read_i32(f, name, n[s], d1), *b = read_i32(f1, name, n[s], d1);
            ck_assert_msg(memcmp(a, b, n[s] * (d1 < 0 ? 1 : 2) * sizeof *a) == 0,
                          "%s differs between two runs with --seed 7", name);
            if (k == 2 && split_rows(f2, splits[s]) == n[s]) {
                int32_t *c = read_i32(f2, name, n[s], d1);
                differs |= memcmp(a, c, n[s] * 2 * sizeof *a) != 0;
                free(c);
            } else if (k == 2) {
                differs = 1;
            }
            free(a);
            free(b);
        }
    ck_assert_msg(differs, "--seed 8 gave the order of --seed 7");
    for (int s = 0; s < 3; s++) {
        for (hsize_t i = 0; i < n[s]; i++) free(keys[s][i]);
        free(keys[s]);
    }
    H5Fclose(f);
    H5Fclose(f1);
    H5Fclose(f2);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    *n = fread(buf, 1, (size_t)size, f);
    fclose(f);
    return buf;
}

/* No temporary file of an atomic write is left in dir. */
static void expect_no_tmp(void) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d));)
        ck_assert_msg(!strstr(e->d_name, ".tmp."), "left behind: %s", e->d_name);
    closedir(d);
}

/* prepare --pairs FILE (with TEXT) ARGS fails with status and the needles in its message,
 * once into a fresh --output (not created) and once over an existing dataset (unchanged). */
static void expect_fail(const char *name, const char *text, const char *args, int status,
                        const char *needle1, const char *needle2) {
    const char *in = input(1, name, text);
    char a[4096], out[8192], fresh[600], existing[600];
    snprintf(fresh, sizeof fresh, "%s/fresh.h5", dir);
    snprintf(existing, sizeof existing, "%s/existing.h5", dir);
    size_t n0, n1;
    char *before = slurp(existing, &n0);
    ck_assert_ptr_nonnull(before);
    for (int k = 0; k < 2; k++) {
        snprintf(a, sizeof a, "--pairs %s %s --output %s", in, args, k ? existing : fresh);
        int rc = prepare(a, out, sizeof out);
        ck_assert_msg(rc == status, "'%s': exit %d, expected %d:\n%s", a, rc, status, out);
        ck_assert_msg(strstr(out, "error"), "'%s': no error message:\n%s", a, out);
        ck_assert_msg(strstr(out, in), "'%s': the message does not name '%s':\n%s", a, in, out);
        ck_assert_msg(strstr(out, needle1), "'%s': message lacks '%s':\n%s", a, needle1, out);
        ck_assert_msg(!needle2 || strstr(out, needle2), "'%s': message lacks '%s':\n%s", a,
                      needle2, out);
    }
    struct stat st;
    ck_assert_msg(stat(fresh, &st) != 0, "a failed run created %s", fresh);
    char *after = slurp(existing, &n1);
    ck_assert_msg(after && n0 == n1 && memcmp(before, after, n0) == 0,
                  "a failed run changed %s", existing);
    free(before);
    free(after);
    expect_no_tmp();
}

START_TEST(bad_files) {
    char args[2048], existing[600], out[8192];
    snprintf(existing, sizeof existing, "%s/existing.h5", dir);
    snprintf(args, sizeof args, "--pairs %s --output %s", input(0, "ok.tsv", "ab\tcd\n"),
             existing);
    prepare_ok(args);
    expect_fail("cols3.tsv", "a\tb\nc\td\te\n", "", 3,
                "line 2 has 3 columns, expected 2 (SOURCE, TARGET", NULL);
    expect_fail("cols1.tsv", "a\tb\nc d\n", "", 3, "line 2 has 1 column, expected 2", NULL);
    expect_fail("cols3.csv", "a,b\n\"c,d\",e,f\n", "", 3, "line 2 has 3 columns", "comma");
    expect_fail("nosource.tsv", "a\tb\n\tc\n", "", 3, "line 2: the source (column 1) is empty",
                NULL);
    expect_fail("notarget.tsv", "a\t\n", "", 3, "line 1: the target (column 2) is empty", NULL);
    expect_fail("count.tsv", "1 2\ta\n0.5,0.5\tb\n1 2 3\tc\n", "--source features", 3,
                "line 3: the source has 3 values, expected 2", NULL);
    expect_fail("nan.tsv", "1 2\ta\nx 2\tb\n", "--source features", 3,
                "line 2: source value 1: expected a number, found 'x'", NULL);
    expect_fail("nan2.tsv", "1 nan\ta\n", "--source features", 3, "line 1: source value 2 is NaN",
                NULL);
    expect_fail("inf.tsv", "1 2\ta\n1 -inf\ta\n", "--source features", 3,
                "line 2: source value 2 is Inf", NULL);
    expect_fail("latin1.tsv", "ab\tc\ncaf\xe9\td\n", "", 3,
                "line 2: the source (column 1) is not valid UTF-8", NULL);
    expect_fail("latin1t.tsv", "ab\tc\nd\tcaf\xe9\n", "--target symbols", 3,
                "line 2: the target (column 2) is not valid UTF-8", NULL);
    expect_fail("empty.tsv", "", "", 3, "holds no rows", NULL);
    expect_fail("blank.tsv", "\n\r\n\n", "", 3, "holds no rows", NULL);
    expect_fail("gap.tsv", "a\tb\n\nc\td\n", "", 3, "line 2 is blank", NULL);
    expect_fail("quote.csv", "\"a,b\n", "", 3, "line 1 column 1: the quoted field is not closed",
                NULL);
    expect_fail("reserved.tsv", "a\tb <s>\n", "--target symbols", 3,
                "line 1: the target symbol '<s>' is reserved", NULL);
    static char longline[4200];
    memset(longline, 'q', 4097);
    strcpy(longline + 4097, "\tx\n");
    expect_fail("long.tsv", longline, "", 3, "line 1: the source has 4097 symbols", "4096");
    /* --output equal to --pairs: refused, the input untouched */
    const char *in = input(0, "self.tsv", "ab\tcd\n");
    snprintf(args, sizeof args, "--pairs %s --output %s", in, in);
    ck_assert_int_eq(prepare(args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--output") && strstr(out, "also the input") && strstr(out, in),
                  "%s", out);
    size_t n;
    char *text = slurp(in, &n);
    ck_assert(n == 6 && memcmp(text, "ab\tcd\n", 6) == 0);
    free(text);
    expect_no_tmp();
}
END_TEST

START_TEST(bad_options) {
    char args[2048], out[8192];
    const char *in = input(0, "ok.tsv", "ab\tcd\n");
    snprintf(args, sizeof args, "--pairs %s --input %s --output %s/x.h5", in, in, dir);
    ck_assert_int_eq(prepare(args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "exactly one of --input") && strstr(out, "--input --pairs"), "%s",
                  out);
    snprintf(args, sizeof args, "--input %s --source features --output %s/x.h5", in, dir);
    ck_assert_int_eq(prepare(args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--source") && strstr(out, "--pairs"), "%s", out);
    snprintf(args, sizeof args, "--pairs %s --target features --output %s/x.h5", in, dir);
    ck_assert_int_eq(prepare(args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--target") && strstr(out, "chars|symbols"), "%s", out);
    snprintf(args, sizeof args, "--pairs %s/none.tsv --output %s/x.h5", dir, dir);
    ck_assert_int_eq(prepare(args, out, sizeof out), 3);
    ck_assert_msg(strstr(out, "none.tsv") && strstr(out, "cannot open"), "%s", out);
}
END_TEST

static Suite *pairs_suite(void) {
    Suite *s = suite_create("pairs");
    TCase *tc = tcase_create("prepare");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, tokens_exact);
    tcase_add_test(tc, csv_quoting);
    tcase_add_test(tc, features_source);
    tcase_add_test(tc, split_by_source);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, bad_options);
    tcase_set_timeout(tc, 200);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(pairs_suite)
