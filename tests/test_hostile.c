/* Hostile inputs (issue 15): files and options built to break the readers. Each case runs
 * the binary (in the ASan/UBSan build too) and asserts a clear error: exit status 3 (bad
 * input) or 2 (bad option), a message naming the file and what was wrong, no crash.
 *   - attributes of the wrong shape or type: an array where one value is expected (integer,
 *     number, string), a string where a number is expected, in token and sequence
 *     datasets, model files and checkpoints;
 *   - integers that do not fit: 2^32 + 8 steps (it used to be read as 8), a class count
 *     beyond int, an unsigned 2^63 version;
 *   - files that are not regular files (a FIFO blocks open() until a writer comes; a
 *     directory): as --data of train and eval, as prepare's --input, --csv and --pairs, as
 *     --model, named like a checkpoint in the checkpoint directory, as --resume PATH.
 *   - prepare --csv: an empty column name in the header (reached strcmp with NULL), a row
 *     size --steps x --features beyond int, values beyond float32 (1e300 became Inf).
 *   - prepare's output naming one of its inputs another way (./x, a symlink, a hard link):
 *     refused, and the input is unchanged.
 *   - weights that would give wrong results silently: a NaN or Inf in a model file (eval,
 *     sample, --init-from), a checkpoint whose checksums fail read as a model (eval, sample,
 *     --init-from verify it as --resume does).
 *   - what used to be found only after training: a validation split too short for
 *     --eval-batch (or empty: prepare --split 1,0,0), a token outside the vocabulary at the
 *     end of a split: refused before the first step.
 *   - ranks that disagree (mpirun ... : ... with other commands or options on one rank):
 *     every rank stops at once naming the disagreement, instead of a deadlock.
 *   - a full disk under prepare (a tmpfs of 1 MiB; needs root to mount, else skipped): the
 *     write that fails at HDF5's final flush used to leave a dataset with zeros and exit 0;
 *     now an error naming ENOSPC, no output, and an existing output file left as it was; the
 *     metrics log on a full disk (it was cut silently): an error naming it, the run resumes.
 *   - another run's checkpoints: a fresh run into a directory holding them is refused (it
 *     overwrote them, and --keep deleted its own); --resume auto refuses a checkpoint of a
 *     run with another seed or another data file; the checkpoints stay as they were.
 *   - a file another process holds open for writing (HDF5's lock): said so, not "damaged?".
 *   - token datasets whose tokens were changed after prepare (its per-split checksum), and a
 *     data file replaced under a running job (found at the next checkpoint).
 * Every command runs under `timeout`: a hang fails the test instead of stalling it. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char dir[256];

static void run_ok(const char *cmd) {
    ck_assert_msg(test_status(cmd) == 0, "setup failed: %s", cmd);
}

/* copy src to dst, then replace attribute name of object obj in dst by one of type/space */
static void put_attr(const char *file, const char *obj, const char *name, hid_t type,
                     int n, const void *values) {
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    ck_assert_int_ge(o, 0);
    if (H5Aexists(o, name) > 0) H5Adelete(o, name);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    hid_t a = H5Acreate2(o, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(a, 0);
    ck_assert_int_ge(H5Awrite(a, type, values), 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
    H5Fclose(f);
}

static void put_str(const char *file, const char *obj, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    put_attr(file, obj, name, t, 0, v);
    H5Tclose(t);
}

/* Runs `rnntrain ARGS` (FILE substituted) and asserts exit status want and that the output
 * names the file and contains every expected piece. */
static void expect(const char *what, const char *file, const char *args, int want,
                   const char *piece1, const char *piece2) {
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "timeout -k 2 30 %s %s", RNNTRAIN_BIN, args);
    int rc = test_capture(cmd, out, sizeof out);
    ck_assert_msg(rc != 124 && rc != 137, "%s: hung (killed by timeout): %s", what, out);
    ck_assert_msg(rc == want, "%s: exit %d, expected %d: %s", what, rc, want, out);
    ck_assert_msg(strstr(out, file), "%s: the message does not name '%s': %s", what, file, out);
    ck_assert_msg(!piece1 || strstr(out, piece1), "%s: no '%s' in: %s", what, piece1, out);
    ck_assert_msg(!piece2 || strstr(out, piece2), "%s: no '%s' in: %s", what, piece2, out);
    ck_assert_msg(!strstr(out, "AddressSanitizer") && !strstr(out, "runtime error"),
                  "%s: sanitizer report: %s", what, out);
    printf("ok: %s\n", what);
}

/* A failed ck_assert ends a (forked) test before its teardown. So each test first notes
 * what it makes (a scratch directory, a mount) in a file named by the runner's PID, and
 * the runner removes it all when the test case ends (an unchecked fixture). */
static pid_t g_runner; /* set in the runner before the tests fork */
static void note_runner(void) { g_runner = getpid(); }
static void leftover_file(char *path, size_t n) {
    snprintf(path, n, "/tmp/rnntrain-hostile-%ld.left", (long)g_runner);
}
static void note_leftover(const char *kind, const char *path) {
    char f[128];
    leftover_file(f, sizeof f);
    FILE *fp = fopen(f, "a");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "%s %s\n", kind, path);
    fclose(fp);
}
static void remove_leftovers(void) {
    char f[128], line[1024], cmd[1100];
    leftover_file(f, sizeof f);
    for (int pass = 0; pass < 2; pass++) { /* mounts first, then directories */
        FILE *fp = fopen(f, "r");
        if (!fp) return;
        while (fgets(line, sizeof line, fp)) {
            line[strcspn(line, "\n")] = 0;
            if (pass == 0 && strncmp(line, "mount ", 6) == 0)
                snprintf(cmd, sizeof cmd, "umount %s 2>/dev/null", line + 6);
            else if (pass == 1 && strncmp(line, "dir ", 4) == 0)
                snprintf(cmd, sizeof cmd, "rm -rf %s", line + 4);
            else
                continue;
            if (system(cmd) == -1) perror("system");
        }
        fclose(fp);
    }
    unlink(f);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/hostile.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    note_leftover("dir", dir);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "head -c 20000 %s/datasets/moby-dick.txt > %s/t.txt && "
             "%s prepare --input %s/t.txt --output %s/lm.h5 >/dev/null && "
             "%s prepare --csv %s/datasets/digits.csv --task classify --steps 8 --features 8 "
             "--output %s/seq.h5 >/dev/null && "
             "%s train --data %s/lm.h5 --out %s/run --hidden 8 --batch 4 --bptt 8 --steps 2 "
             "--ckpt-every 2 >/dev/null 2>&1",
             SOURCE_DIR, dir, RNNTRAIN_BIN, dir, dir, RNNTRAIN_BIN, SOURCE_DIR, dir,
             RNNTRAIN_BIN, dir, dir);
    ck_assert_msg(test_status(cmd) == 0, "setup: %s", cmd);
}

static void teardown(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    run_ok(cmd);
}

/* a fresh copy of a valid file under a new name */
static void copy(const char *from, const char *to, char *path, size_t n) {
    snprintf(path, n, "%s/%s", dir, to);
    char cmd[1280];
    snprintf(cmd, sizeof cmd, "cp %s/%s %s", dir, from, path);
    run_ok(cmd);
}

START_TEST(attributes_of_the_wrong_shape) {
    setup();
    char p[512], args[2048];
    int64_t two[2] = {300, 301};
    double dd[3] = {0.5, 1.5, 2.5};
    /* token dataset: vocab_size and version as arrays */
    copy("lm.h5", "lm-vocab.h5", p, sizeof p);
    put_attr(p, "/", "vocab_size", H5T_NATIVE_INT64, 2, two);
    snprintf(args, sizeof args, "eval --model %s/run --data %s", dir, p);
    expect("token dataset: vocab_size an array", p, args, 3, "vocab_size", "one integer");
    copy("lm.h5", "lm-version.h5", p, sizeof p);
    put_attr(p, "/", "version", H5T_NATIVE_INT64, 2, two);
    snprintf(args, sizeof args, "eval --model %s/run --data %s", dir, p);
    expect("token dataset: version an array", p, args, 3, "version", NULL);
    /* sequence dataset: norm_mean an array, steps a string, format an array of strings */
    copy("seq.h5", "seq-norm.h5", p, sizeof p);
    put_attr(p, "/", "norm_mean", H5T_NATIVE_DOUBLE, 3, dd);
    snprintf(args, sizeof args, "train --data %s --out %s/o1 --steps 1 --batch 4", p, dir);
    expect("sequence dataset: norm_mean an array", p, args, 3, "norm_mean", "one number");
    copy("seq.h5", "seq-steps.h5", p, sizeof p);
    put_str(p, "/", "steps", "eight");
    snprintf(args, sizeof args, "train --data %s --out %s/o2 --steps 1 --batch 4", p, dir);
    expect("sequence dataset: steps a string", p, args, 3, "steps", "integer");
    /* model file: version an array of 2, embed as a double array */
    char model[512];
    snprintf(model, sizeof model, "%s/run/model.h5", dir);
    copy("run/model.h5", "model-version.h5", p, sizeof p);
    put_attr(p, "/", "version", H5T_NATIVE_INT64, 2, two);
    snprintf(args, sizeof args, "info %s", p);
    expect("model file: version an array", p, args, 3, "version", NULL);
    copy("run/model.h5", "model-embed.h5", p, sizeof p);
    put_attr(p, "/", "embed", H5T_NATIVE_DOUBLE, 3, dd);
    snprintf(args, sizeof args, "eval --model %s --data %s/lm.h5", p, dir);
    expect("model file: embed a float array", p, args, 3, "embed", NULL);
    /* checkpoint: lr_scale a string, step an array */
    copy("run/checkpoints/ckpt-0000000002.h5", "ckpt-lr.h5", p, sizeof p);
    put_str(p, "/", "lr_scale", "x");
    snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/o3 --hidden 8 --batch 4 --bptt 8 "
             "--steps 3 --resume %s", dir, dir, p);
    expect("checkpoint: lr_scale a string", p, args, 3, "lr_scale", NULL);
    copy("run/checkpoints/ckpt-0000000002.h5", "ckpt-step.h5", p, sizeof p);
    put_attr(p, "/", "step", H5T_NATIVE_INT64, 2, two);
    snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/o4 --hidden 8 --batch 4 --bptt 8 "
             "--steps 3 --resume %s", dir, dir, p);
    expect("checkpoint: step an array", p, args, 3, "step", NULL);
    teardown();
}
END_TEST

START_TEST(integers_that_do_not_fit) {
    setup();
    char p[512], args[2048];
    int64_t big = ((int64_t)1 << 32) + 8, huge = (int64_t)1 << 40;
    uint64_t u63 = (uint64_t)1 << 63;
    copy("seq.h5", "seq-big.h5", p, sizeof p);
    put_attr(p, "/", "steps", H5T_NATIVE_INT64, 0, &big);
    snprintf(args, sizeof args, "train --data %s --out %s/o1 --steps 1 --batch 4", p, dir);
    expect("steps = 2^32 + 8", p, args, 3, "steps", "4294967304");
    copy("seq.h5", "seq-classes.h5", p, sizeof p);
    put_attr(p, "/", "classes", H5T_NATIVE_INT64, 0, &huge);
    snprintf(args, sizeof args, "train --data %s --out %s/o2 --steps 1 --batch 4", p, dir);
    expect("classes = 2^40", p, args, 3, "classes", NULL);
    copy("run/model.h5", "model-u63.h5", p, sizeof p);
    put_attr(p, "/", "version", H5T_NATIVE_UINT64, 0, &u63);
    snprintf(args, sizeof args, "info %s", p);
    expect("model version = 2^63 unsigned", p, args, 3, "version", NULL);
    teardown();
}
END_TEST

START_TEST(files_that_are_not_regular) {
    setup();
    char fifo[512], d[512], args[2048];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(d, sizeof d, "%s/adir", dir);
    ck_assert_int_eq(mkdir(d, 0700), 0);
    const char *odd[2] = {fifo, d};
    const char *kind[2] = {"FIFO", "directory"};
    for (int i = 0; i < 2; i++) {
        const char *p = odd[i];
        char what[128];
        snprintf(args, sizeof args, "train --data %s --out %s/o%d --steps 1", p, dir, i);
        snprintf(what, sizeof what, "train --data a %s", kind[i]);
        expect(what, p, args, 3, kind[i], NULL);
        snprintf(args, sizeof args, "eval --model %s/run --data %s", dir, p);
        snprintf(what, sizeof what, "eval --data a %s", kind[i]);
        expect(what, p, args, 3, kind[i], NULL);
        snprintf(args, sizeof args, "prepare --input %s --output %s/x%d.h5", p, dir, i);
        snprintf(what, sizeof what, "prepare --input a %s", kind[i]);
        expect(what, p, args, 3, kind[i], NULL);
        snprintf(args, sizeof args, "prepare --csv %s --steps 8 --features 8 --output %s/y%d.h5",
                 p, dir, i);
        snprintf(what, sizeof what, "prepare --csv a %s", kind[i]);
        expect(what, p, args, 3, kind[i], NULL);
        snprintf(args, sizeof args, "prepare --pairs %s --output %s/z%d.h5", p, dir, i);
        snprintf(what, sizeof what, "prepare --pairs a %s", kind[i]);
        expect(what, p, args, 3, kind[i], NULL);
    }
    snprintf(args, sizeof args, "eval --model %s --data %s/lm.h5", fifo, dir);
    expect("eval --model a FIFO", fifo, args, 3, "FIFO", NULL);
    snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/o5 --hidden 8 --batch 4 --bptt 8 "
             "--steps 3 --resume %s", dir, dir, fifo);
    expect("--resume a FIFO", fifo, args, 3, "FIFO", NULL);
    /* a FIFO named as the newest checkpoint: --resume auto skips it, naming it, and resumes
     * from the valid one before it */
    char ck[512], cmd[2048], out[8192];
    snprintf(ck, sizeof ck, "%s/run/checkpoints/ckpt-0000000009.h5", dir);
    ck_assert_int_eq(mkfifo(ck, 0600), 0);
    snprintf(cmd, sizeof cmd, "timeout -k 2 30 %s train --data %s/lm.h5 --out %s/run --hidden 8 "
             "--batch 4 --bptt 8 --steps 3 --ckpt-every 2 --resume auto", RNNTRAIN_BIN, dir, dir);
    int rc = test_capture(cmd, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "ckpt-0000000009.h5") && strstr(out, "FIFO") &&
                  strstr(out, "resumed from"), "--resume auto past a FIFO: exit %d: %s", rc, out);
    printf("ok: --resume auto skips a FIFO named like a checkpoint\n");
    teardown();
}
END_TEST

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(csv_inputs) {
    setup();
    char p[512], args[2048];
    const char *headers[2] = {"a,,value\n1,2,3\n4,5,6\n7,8,9\n", ",value\n1,2\n3,4\n5,6\n"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/h%d.csv", dir, i);
        write_file(p, headers[i]);
        snprintf(args, sizeof args, "prepare --csv %s --task regress --column value --window 1 "
                 "--output %s/h%d.h5", p, dir, i);
        expect("prepare --csv: a header column without a name", p, args, 3, "has no name", NULL);
    }
    snprintf(p, sizeof p, "%s/v.csv", dir);
    write_file(p, "1,2,0\n3,4,1\n");
    snprintf(args, sizeof args, "prepare --csv %s --steps 1048576 --features 4096 --output %s/v.h5",
             p, dir);
    expect("prepare --csv: 2^20 x 2^12 values per row", p, args, 3, "4294967297", NULL);
    snprintf(args, sizeof args, "prepare --csv %s --steps 65536 --features 65537 --output %s/v.h5",
             p, dir);
    expect("prepare --csv: 65536 x 65537 values per row", p, args, 3, "4295032833", NULL);
    const char *big[2] = {"1e300,2,0\n3,4,1\n5,6,0\n", "1,-1e39,0\n3,4,1\n5,6,0\n"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/b%d.csv", dir, i);
        write_file(p, big[i]);
        snprintf(args, sizeof args, "prepare --csv %s --steps 1 --features 2 --output %s/b%d.h5", p,
                 dir, i);
        expect("prepare --csv: a value beyond float32", p, args, 3, "float32", NULL);
    }
    teardown();
}
END_TEST

START_TEST(output_is_an_input) {
    setup();
    char in[512], alias[512], args[2048], cmd[2048];
    snprintf(in, sizeof in, "%s/t.txt", dir);
    struct stat before;
    ck_assert_int_eq(stat(in, &before), 0);
    const char *how[3] = {"./", "symlink", "hard link"};
    for (int i = 0; i < 3; i++) {
        if (i == 0) {
            snprintf(alias, sizeof alias, "%s/./t.txt", dir);
        } else {
            snprintf(alias, sizeof alias, "%s/alias%d.txt", dir, i);
            ck_assert_int_eq(i == 1 ? symlink(in, alias) : link(in, alias), 0);
        }
        char what[128];
        snprintf(what, sizeof what, "prepare --input X --output X by %s", how[i]);
        snprintf(args, sizeof args, "prepare --input %s --output %s", in, alias);
        expect(what, alias, args, 2, "refusing to overwrite", NULL);
        snprintf(what, sizeof what, "prepare --csv X --output X by %s", how[i]);
        snprintf(args, sizeof args, "prepare --csv %s --steps 1 --features 1 --output %s", in, alias);
        expect(what, alias, args, 2, "refusing to overwrite", NULL);
        snprintf(what, sizeof what, "prepare --pairs X --output X by %s", how[i]);
        snprintf(args, sizeof args, "prepare --pairs %s --output %s", in, alias);
        expect(what, alias, args, 2, "refusing to overwrite", NULL);
    }
    struct stat after;
    ck_assert_int_eq(stat(in, &after), 0);
    ck_assert(after.st_size == before.st_size && after.st_mtime == before.st_mtime);
    snprintf(cmd, sizeof cmd, "head -c 20000 %s/datasets/moby-dick.txt | cmp -s - %s", SOURCE_DIR, in);
    ck_assert_msg(test_status(cmd) == 0, "the input changed");
    teardown();
}
END_TEST

/* One entry of dataset name in file set to *v (memtype): the first (last = 0) or, for a 1-D
 * dataset, the last (last = 1). */
static void put_entry(const char *file, const char *name, int last, hid_t memtype,
                      const void *v) {
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    hid_t fs = H5Dget_space(d);
    hsize_t dims[8], start[8] = {0}, cnt[8], one = 1;
    int nd = H5Sget_simple_extent_ndims(fs);
    ck_assert(nd >= 1 && nd <= 8 && (!last || nd == 1));
    H5Sget_simple_extent_dims(fs, dims, NULL);
    for (int k = 0; k < nd; k++) cnt[k] = 1;
    if (last) start[0] = dims[0] - 1;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    ck_assert_int_ge(H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, v), 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
}

static void put_value(const char *file, const char *name, float v) {
    put_entry(file, name, 0, H5T_NATIVE_FLOAT, &v);
}

static void put_last_token(const char *file, const char *name, int32_t v) {
    put_entry(file, name, 1, H5T_NATIVE_INT32, &v);
}

START_TEST(weights_that_mislead) {
    setup();
    char p[512], args[2048];
    const float bad[2] = {NAN, INFINITY};
    const char *tensor[2] = {"params/head.bias", "params/rnn.weight_hh_l0"};
    for (int i = 0; i < 2; i++) {
        copy("run/model.h5", i ? "model-inf.h5" : "model-nan.h5", p, sizeof p);
        put_value(p, tensor[i], bad[i]);
        const char *what = i ? "Inf" : "NaN";
        char w[128];
        snprintf(args, sizeof args, "eval --model %s --data %s/lm.h5", p, dir);
        snprintf(w, sizeof w, "eval: a model with %s", what);
        expect(w, p, args, 3, what, tensor[i] + 7);
        snprintf(args, sizeof args, "sample --model %s --length 10", p);
        snprintf(w, sizeof w, "sample: a model with %s", what);
        expect(w, p, args, 3, what, NULL);
        snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/o%d --hidden 8 --batch 4 "
                 "--bptt 8 --steps 1 --init-from %s", dir, dir, i, p);
        snprintf(w, sizeof w, "--init-from a model with %s", what);
        expect(w, p, args, 3, what, NULL);
    }
    /* a checkpoint with one weight changed: its checksum no longer matches */
    copy("run/checkpoints/ckpt-0000000002.h5", "ckpt-flip.h5", p, sizeof p);
    put_value(p, "params/head.bias", 0.125f);
    snprintf(args, sizeof args, "eval --model %s --data %s/lm.h5", p, dir);
    expect("eval: a checkpoint failing its checksum", p, args, 3, "damaged", "head.bias");
    snprintf(args, sizeof args, "sample --model %s --length 10", p);
    expect("sample: a checkpoint failing its checksum", p, args, 3, "damaged", NULL);
    snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/o9 --hidden 8 --batch 4 --bptt 8 "
             "--steps 1 --init-from %s", dir, dir, p);
    expect("--init-from a checkpoint failing its checksum", p, args, 3, "damaged", NULL);
    teardown();
}
END_TEST

START_TEST(found_before_the_first_step) {
    setup();
    char p[512], args[2048], cmd[2048], out[8192];
    /* too many validation streams; no validation split at all */
    snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/o1 --hidden 8 --batch 4 --bptt 8 "
             "--steps 50 --eval-batch 2048", dir, dir);
    snprintf(p, sizeof p, "%s/lm.h5", dir);
    expect("--eval-batch longer than the valid split allows", p, args, 3, "valid", "2048 streams");
    snprintf(cmd, sizeof cmd, "%s prepare --input %s/t.txt --split 1,0,0 --output %s/all.h5 "
             ">/dev/null", RNNTRAIN_BIN, dir, dir);
    ck_assert_int_eq(test_status(cmd), 0);
    snprintf(p, sizeof p, "%s/all.h5", dir);
    snprintf(args, sizeof args, "train --data %s --out %s/o2 --hidden 8 --batch 4 --bptt 8 "
             "--steps 50", p, dir);
    expect("an empty valid split (--split 1,0,0)", p, args, 3, "valid", NULL);
    /* a --bptt longer than the streams: that error, before a model sized by it is allocated
     * (it was "out of memory" for 2^20 steps); and a long --bptt with --batch 1 */
    const char *bptt[2] = {"1048576", "300000"}, *batch[2] = {"4", "1"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/lm.h5", dir);
        snprintf(args, sizeof args, "train --data %s --out %s/ob%d --hidden 8 --batch %s "
                 "--bptt %s --steps 50", p, dir, i, batch[i], bptt[i]);
        char what[96];
        snprintf(what, sizeof what, "--bptt %s with --batch %s: longer than the streams", bptt[i],
                 batch[i]);
        expect(what, p, args, 3, "split 'train'", "--bptt");
    }
    /* a chars vocabulary; a bad token as the last of train, and as the last of test */
    snprintf(cmd, sizeof cmd, "%s prepare --input %s/t.txt --vocab chars --output %s/ch.h5 "
             ">/dev/null", RNNTRAIN_BIN, dir, dir);
    ck_assert_int_eq(test_status(cmd), 0);
    const char *split[2] = {"train", "test"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/bad%d.h5", dir, i);
        snprintf(cmd, sizeof cmd, "cp %s/ch.h5 %s", dir, p);
        ck_assert_int_eq(test_status(cmd), 0);
        put_last_token(p, split[i], 250); /* uint8 dataset, V about 70 */
        snprintf(args, sizeof args, "train --data %s --out %s/o%d --hidden 8 --batch 4 --bptt 8 "
                 "--steps 50", p, dir, 3 + i);
        snprintf(cmd, sizeof cmd, "timeout 30 %s %s", RNNTRAIN_BIN, args);
        int rc = test_capture(cmd, out, sizeof out);
        ck_assert_msg(rc == 3 && strstr(out, "is 250") && strstr(out, split[i]) &&
                      !strstr(out, "step 1/"), "a bad token at the end of %s: exit %d: %s",
                      split[i], rc, out);
        printf("ok: a token outside the vocabulary at the end of %s, before the first step\n",
               split[i]);
    }
    teardown();
}
END_TEST

START_TEST(ranks_that_disagree) {
    setup();
    char cmd[4096], out[8192];
    char other[3][1024];
    snprintf(other[0], sizeof other[0], "train --help");
    snprintf(other[1], sizeof other[1], "eval --model %s/run --data %s/lm.h5", dir, dir);
    snprintf(other[2], sizeof other[2], "train --data %s/lm.h5 --out %s/o2 --hidden 8 --batch 4 "
             "--bptt 8 --steps 2 --lr 0.5", dir, dir);
    for (int i = 0; i < 3; i++) {
        const char *second = other[i];
        snprintf(cmd, sizeof cmd, "timeout -k 2 60 %s -np 1 %s train --data %s/lm.h5 --out %s/o1 "
                 "--hidden 8 --batch 4 --bptt 8 --steps 2 : -np 1 %s %s", MPIEXEC, RNNTRAIN_BIN,
                 dir, dir, RNNTRAIN_BIN, second);
        int rc = test_capture(cmd, out, sizeof out);
        ck_assert_msg(rc != 0 && rc != 124 && rc != 137 && strstr(out, "different command lines"),
                      "ranks running 'train' and '%s': exit %d: %s", second, rc, out);
        printf("ok: one rank 'train', the other '%.40s': stopped, exit %d\n", second, rc);
    }
    teardown();
}
END_TEST

/* Each node with its own copy of the data at the same path, and the copies differ (same
 * size, other values): rank 0 sees another file there through a private mount namespace
 * (unshare -m, a bind mount), so both ranks get the same command line. A token dataset
 * (one byte of its text changed) and a sequence dataset (one pixel of its CSV changed). */
START_TEST(ranks_with_other_copies) {
    setup();
    char cmd[8192], out[8192];
    snprintf(cmd, sizeof cmd, "unshare -m --propagation private true 2>/dev/null");
    if (test_status(cmd) != 0) {
        printf("skipped: ranks with other copies (unshare -m not permitted)\n");
        teardown();
        return;
    }
    snprintf(cmd, sizeof cmd,
             "cd %s && { printf X; tail -c +2 t.txt; } > t-alt.txt && "
             "%s prepare --input t-alt.txt --output lm-alt.h5 >/dev/null && "
             "awk -F, 'NR == 2 { $1 = $1 + 1 } 1' OFS=, %s/datasets/digits.csv > digits-alt.csv && "
             "%s prepare --csv digits-alt.csv --task classify --steps 8 --features 8 "
             "--output seq-alt.h5 >/dev/null", dir, RNNTRAIN_BIN, SOURCE_DIR, RNNTRAIN_BIN);
    ck_assert_int_eq(test_status(cmd), 0);
    const char *data[2] = {"lm", "seq"}, *want[2] = {"different tokens", "different sequences"};
    for (int i = 0; i < 2; i++) {
        char args[1024];
        snprintf(args, sizeof args, "train --data %s/%s.h5 --out %s/oc%d --hidden 8 --batch 4 "
                 "--steps 2%s", dir, data[i], dir, i, i ? "" : " --bptt 8");
        snprintf(cmd, sizeof cmd, "timeout -k 2 60 %s -np 1 unshare -m --propagation private sh -c "
                 "'mount --bind %s/%s-alt.h5 %s/%s.h5 && exec %s %s' : -np 1 %s %s",
                 MPIEXEC, dir, data[i], dir, data[i], RNNTRAIN_BIN, args, RNNTRAIN_BIN, args);
        int rc = test_capture(cmd, out, sizeof out);
        ck_assert_msg(rc != 0 && rc != 124 && rc != 137 && strstr(out, want[i]),
                      "ranks with other copies of %s.h5: exit %d: %.600s", data[i], rc, out);
        printf("ok: ranks with other copies of a %s dataset: stopped, exit %d\n",
               i ? "sequence" : "token", rc);
    }
    teardown();
}
END_TEST

START_TEST(full_disk) {
    setup();
    char mnt[512], cmd[4096], out[8192];
    snprintf(mnt, sizeof mnt, "%s/small", dir);
    ck_assert_int_eq(mkdir(mnt, 0700), 0);
    note_leftover("mount", mnt);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=1m tmpfs %s 2>/dev/null", mnt);
    if (test_status(cmd) != 0) {
        printf("skipped: full disk (cannot mount a tmpfs: not root?)\n");
        teardown();
        return;
    }
    /* an existing output, then inputs that do not fit beside it: about 1 MiB of text, and
     * (the write that fails at the last flush) 1,048,500 bytes */
    const long sizes[2] = {900000, 1048500};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "rm -f %s/* && printf 'old contents' > %s/x.h5 && "
                 "head -c %ld %s/datasets/moby-dick.txt > %s/in%d.txt", mnt, mnt,
                 i ? sizes[i] : 200000, SOURCE_DIR, dir, i);
        ck_assert_int_eq(test_status(cmd), 0);
        if (i == 1) { /* the full size on an empty disk: only the final flush fails */
            snprintf(cmd, sizeof cmd, "rm -f %s/x.h5", mnt);
            ck_assert_int_eq(test_status(cmd), 0);
        } else { /* fill most of the disk first */
            snprintf(cmd, sizeof cmd, "head -c %ld /dev/zero > %s/filler", sizes[0], mnt);
            ck_assert_int_eq(test_status(cmd), 0);
        }
        snprintf(cmd, sizeof cmd, "timeout 30 %s prepare --input %s/in%d.txt --output %s/x.h5",
                 RNNTRAIN_BIN, dir, i, mnt);
        int rc = test_capture(cmd, out, sizeof out);
        ck_assert_msg(rc == 1 && (strstr(out, "No space left") || strstr(out, "disk full")),
                      "prepare onto a full disk (%d): exit %d: %s", i, rc, out);
        snprintf(cmd, sizeof cmd, "ls -a %s | grep -q tmp", mnt);
        ck_assert_msg(test_status(cmd) != 0, "a temporary file was left behind");
        if (i == 0) {
            snprintf(cmd, sizeof cmd, "printf 'old contents' | cmp -s - %s/x.h5", mnt);
            ck_assert_msg(test_status(cmd) == 0, "the existing output was changed");
        } else {
            snprintf(cmd, sizeof cmd, "test ! -e %s/x.h5", mnt);
            ck_assert_msg(test_status(cmd) == 0, "a damaged output was left");
        }
        printf("ok: prepare onto a full disk (%s): %.*s\n", i ? "final flush" : "a write", 90, out);
    }
    /* the metrics log on a full disk: an error naming it (it was cut silently); the
     * checkpoints (elsewhere) stay and the run resumes */
    snprintf(cmd, sizeof cmd, "rm -f %s/* && (head -c 2000000 /dev/zero > %s/filler 2>/dev/null; "
             "true) && timeout 60 %s train --data %s/lm.h5 --out %s/full --hidden 8 --batch 4 "
             "--bptt 8 --steps 40 --ckpt-every 10 --print-every 20 --log %s/metrics.jsonl",
             mnt, mnt, RNNTRAIN_BIN, dir, dir, mnt);
    int rc = test_capture(cmd, out, sizeof out);
    ck_assert_msg(rc == 1 && strstr(out, "--log") && strstr(out, "No space left"),
                  "metrics log on a full disk: exit %d: %.500s", rc, out);
    printf("ok: the metrics log on a full disk: %.100s\n", strstr(out, "rnntrain: error"));
    snprintf(cmd, sizeof cmd, "timeout 60 %s train --data %s/lm.h5 --out %s/full --hidden 8 "
             "--batch 4 --bptt 8 --steps 40 --ckpt-every 10 --resume auto", RNNTRAIN_BIN, dir, dir);
    rc = test_capture(cmd, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "resumed from"), "resume after the full log: %d: %.500s",
                  rc, out);
    snprintf(cmd, sizeof cmd, "umount %s", mnt);
    test_status(cmd);
    teardown();
}
END_TEST

START_TEST(another_runs_checkpoints) {
    setup();
    char args[2048], ck[512], cmd[2048];
    snprintf(ck, sizeof ck, "%s/run/checkpoints/ckpt-0000000002.h5", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s/saved.h5", ck, dir);
    ck_assert_int_eq(test_status(cmd), 0);
    const char *variant[2] = {"", "--keep 1 --ckpt-every 1"};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/run --hidden 8 --batch 4 "
                 "--bptt 8 --steps 3 %s", dir, dir, variant[i]);
        char ckdir[512];
        snprintf(ckdir, sizeof ckdir, "%s/run/checkpoints", dir);
        expect("a fresh run over another run's checkpoints", ckdir, args, 2, "already holds",
               "ckpt-0000000002.h5");
    }
    snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/run --hidden 8 --batch 4 --bptt 8 "
             "--steps 3 --resume auto --seed 99", dir, dir);
    expect("--resume auto: a run with another seed", ck, args, 2, "seed=", "another run");
    snprintf(cmd, sizeof cmd, "cp %s/lm.h5 %s/other.h5", dir, dir);
    ck_assert_int_eq(test_status(cmd), 0);
    snprintf(args, sizeof args, "train --data %s/other.h5 --out %s/run --hidden 8 --batch 4 "
             "--bptt 8 --steps 3 --resume auto", dir, dir);
    expect("--resume auto: a run over another data file", ck, args, 2, "data=", "another run");
    snprintf(cmd, sizeof cmd, "cmp -s %s %s/saved.h5", ck, dir);
    ck_assert_msg(test_status(cmd) == 0, "the other run's checkpoint changed");
    teardown();
}
END_TEST

START_TEST(locked_files) {
    setup();
    char data[512], model[512], args[2048];
    snprintf(data, sizeof data, "%s/lm.h5", dir);
    snprintf(model, sizeof model, "%s/run/model.h5", dir);
    const char *file[2] = {data, model};
    for (int i = 0; i < 2; i++) {
        hid_t f = H5Fopen(file[i], H5F_ACC_RDWR, H5P_DEFAULT); /* this process holds the lock */
        ck_assert_int_ge(f, 0);
        snprintf(args, sizeof args, "eval --model %s --data %s", model, data);
        expect(i ? "a model file locked by a writer" : "a dataset locked by a writer", file[i],
               args, 3, "holds it open for writing", NULL);
        H5Fclose(f);
    }
    /* --resume auto beside a writer of the newest checkpoint (another run in the directory):
     * refused, not a silent fallback to an older checkpoint */
    char ck[512];
    snprintf(ck, sizeof ck, "%s/run/checkpoints/ckpt-0000000002.h5", dir);
    hid_t f = H5Fopen(ck, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    snprintf(args, sizeof args, "train --data %s --out %s/run --hidden 8 --batch 4 --bptt 8 "
             "--steps 4 --ckpt-every 2 --resume auto", data, dir);
    expect("--resume auto with the newest checkpoint locked by a writer", ck, args, 3,
           "held open for writing", "another run");
    H5Fclose(f);
    teardown();
}
END_TEST

/* Paths longer than the buffers they are built in: refused naming the option, not cut
 * (the 4200-byte path is made by the shell: the test's own command buffers are shorter). */
START_TEST(long_paths) {
    setup();
    const char *opt[3] = {"--out", "--ckpt-dir", "--log"};
    for (int i = 0; i < 3; i++) {
        char cmd[2048], out[8192];
        if (i == 0)
            snprintf(cmd, sizeof cmd, "L=$(head -c 4200 /dev/zero | tr '\\0' a); timeout 30 %s "
                     "train --data %s/lm.h5 --out $L --steps 1", RNNTRAIN_BIN, dir);
        else
            snprintf(cmd, sizeof cmd, "L=$(head -c 4200 /dev/zero | tr '\\0' a); timeout 30 %s "
                     "train --data %s/lm.h5 --out %s/o %s %s/$L --steps 1", RNNTRAIN_BIN, dir, dir,
                     opt[i], dir);
        int rc = test_capture(cmd, out, sizeof out);
        ck_assert_msg(rc == 2 && strstr(out, opt[i]) && strstr(out, "bytes long"),
                      "a 4200-byte %s: exit %d: %.300s", opt[i], rc, out);
        printf("ok: a 4200-byte %s refused\n", opt[i]);
    }
    teardown();
}
END_TEST

/* A checkpoint's counters out of range: refused (they overflowed, read outside the epoch's
 * permutation, or ran toward a negative step for ever). */
START_TEST(checkpoint_counters) {
    setup();
    char p[512], args[2048];
    const char *attr[5] = {"cursor", "cursor", "step", "epoch", "optim_step"};
    const int64_t value[5] = {-1, 3, INT64_MIN, INT64_MAX, INT64_MAX};
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "ckpt-%d.h5", i);
        copy("run/checkpoints/ckpt-0000000002.h5", name, p, sizeof p);
        put_attr(p, "/", attr[i], H5T_NATIVE_INT64, 0, &value[i]);
        snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/c%d --hidden 8 --batch 4 "
                 "--bptt 8 --steps 3 --resume %s", dir, dir, i, p);
        char what[96];
        snprintf(what, sizeof what, "checkpoint %s = %lld", attr[i], (long long)value[i]);
        /* the attributes are not checksummed; cursor 3 is not a chunk start (bptt 8) */
        expect(what, p, args, 3, attr[i], NULL);
    }
    /* lr_scale (what rollbacks multiplied the learning rate by) outside (0, 1] */
    const double scale[3] = {0.0, 2.0, NAN};
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "ckpt-scale%d.h5", i);
        copy("run/checkpoints/ckpt-0000000002.h5", name, p, sizeof p);
        put_attr(p, "/", "lr_scale", H5T_NATIVE_DOUBLE, 0, &scale[i]);
        snprintf(args, sizeof args, "train --data %s/lm.h5 --out %s/s%d --hidden 8 --batch 4 "
                 "--bptt 8 --steps 3 --resume %s", dir, dir, i, p);
        char what[96];
        snprintf(what, sizeof what, "checkpoint lr_scale = %g", scale[i]);
        expect(what, p, args, 3, "lr_scale", "expected a factor in (0, 1]");
    }
    teardown();
}
END_TEST

/* Strings as h5py writes them (UTF-8, variable length by default, or fixed length): read,
 * not "cannot read attribute" (HDF5 converts no UTF-8 string to an ASCII one). */
START_TEST(strings_from_other_writers) {
    setup();
    char p[512], cmd[2048], out[8192];
    for (int vlen = 0; vlen < 2; vlen++) {
        copy("lm.h5", vlen ? "utf8-vlen.h5" : "utf8-fixed.h5", p, sizeof p);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_cset(t, H5T_CSET_UTF8);
        const char *v = "bytes";
        if (vlen) {
            H5Tset_size(t, H5T_VARIABLE);
            put_attr(p, "/", "vocab_kind", t, 0, &v);
        } else {
            H5Tset_size(t, strlen(v));
            H5Tset_strpad(t, H5T_STR_NULLPAD);
            put_attr(p, "/", "vocab_kind", t, 0, v);
        }
        H5Tclose(t);
        snprintf(cmd, sizeof cmd, "timeout 30 %s train --data %s --out %s/s%d --hidden 8 "
                 "--batch 4 --bptt 8 --steps 1", RNNTRAIN_BIN, p, dir, vlen);
        int rc = test_capture(cmd, out, sizeof out);
        ck_assert_msg(rc == 0, "a %s UTF-8 vocab_kind: exit %d: %.400s",
                      vlen ? "variable-length" : "fixed-length", rc, out);
        printf("ok: a %s UTF-8 string attribute is read\n", vlen ? "variable-length" : "fixed-length");
    }
    teardown();
}
END_TEST

START_TEST(tokens_changed) {
    setup();
    char p[512], args[2048], cmd[4096], out[8192];
    const char *split[2] = {"train", "valid"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/flip%d.h5", dir, i);
        snprintf(cmd, sizeof cmd, "cp %s/lm.h5 %s", dir, p);
        ck_assert_int_eq(test_status(cmd), 0);
        put_last_token(p, split[i], 'Q');
        snprintf(args, sizeof args, "train --data %s --out %s/f%d --hidden 8 --batch 4 --bptt 8 "
                 "--steps 1", p, dir, i);
        char what[64];
        snprintf(what, sizeof what, "a changed token in %s", split[i]);
        expect(what, p, args, 3, "fails its checksum", split[i]);
    }
    /* sequence datasets (prepare --csv) carry a checksum per dataset: a changed feature and
     * a changed label are found at open */
    const char *seqds[2] = {"valid/inputs", "test/labels"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/seqflip%d.h5", dir, i);
        snprintf(cmd, sizeof cmd, "cp %s/seq.h5 %s", dir, p);
        ck_assert_int_eq(test_status(cmd), 0);
        if (i == 0)
            put_value(p, seqds[i], 0.25f); /* a pixel, 0 there */
        else
            put_last_token(p, seqds[i], 7); /* a digit's class, 2 there */
        snprintf(args, sizeof args, "train --data %s --out %s/sf%d --hidden 8 --batch 4 --steps 1",
                 p, dir, i);
        char what[64];
        snprintf(what, sizeof what, "a changed value in sequence dataset %s", seqds[i]);
        expect(what, p, args, 3, "fails its checksum", seqds[i]);
    }
    /* replaced under a running job: prepare writes a new file (new inode) at the same path */
    snprintf(cmd, sizeof cmd, "cp %s/lm.h5 %s/live.h5 && (timeout 60 %s train --data %s/live.h5 "
             "--out %s/live --hidden 8 --batch 4 --bptt 8 --steps 1000000 --ckpt-every 20 "
             "> %s/live.log 2>&1; echo $? > %s/live.rc) & "
             "for i in $(seq 1 100); do [ -e %s/live/checkpoints/ckpt-0000000020.h5 ] && break; "
             "sleep 0.1; done; %s prepare --input %s/t.txt --output %s/live.h5 > /dev/null; "
             "for i in $(seq 1 300); do [ -e %s/live.rc ] && break; sleep 0.1; done; "
             "cat %s/live.rc; grep -m1 error %s/live.log", dir, dir, RNNTRAIN_BIN, dir, dir, dir, dir, dir,
             RNNTRAIN_BIN, dir, dir, dir, dir, dir);
    test_capture(cmd, out, sizeof out);
    ck_assert_msg(strncmp(out, "3\n", 2) == 0 && strstr(out, "changed while the run"),
                  "a data file replaced under a running job: %.600s", out);
    printf("ok: a data file replaced under a running job stops it at the next checkpoint\n");
    teardown();
}
END_TEST

static Suite *hostile_suite(void) {
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("inputs");
    tcase_add_test(tc, attributes_of_the_wrong_shape);
    tcase_add_test(tc, integers_that_do_not_fit);
    tcase_add_test(tc, files_that_are_not_regular);
    tcase_add_test(tc, csv_inputs);
    tcase_add_test(tc, output_is_an_input);
    tcase_add_test(tc, weights_that_mislead);
    tcase_add_test(tc, found_before_the_first_step);
    tcase_add_test(tc, ranks_that_disagree);
    tcase_add_test(tc, ranks_with_other_copies);
    tcase_add_test(tc, full_disk);
    tcase_add_test(tc, another_runs_checkpoints);
    tcase_add_test(tc, locked_files);
    tcase_add_test(tc, long_paths);
    tcase_add_test(tc, checkpoint_counters);
    tcase_add_test(tc, tokens_changed);
    tcase_add_test(tc, strings_from_other_writers);
    tcase_add_unchecked_fixture(tc, note_runner, remove_leftovers);
    tcase_set_timeout(tc, 240);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(hostile_suite)
