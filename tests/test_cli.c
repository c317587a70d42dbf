/* Bad input gets a clear error: each case runs the real binary and checks the exit status
 * (2 bad command line, 3 bad input file), that the message names the file or option and
 * says what was wrong, and that nothing crashed (no signal) or damaged an existing file. */
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "data.h"
#include "testutil.h"

static char dir[256], data_path[512], model_dir[512];

/* Expect exit status `status` and every needle in the output. */
static void expect(const char *args, int status, const char *needle1, const char *needle2) {
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd, "%s %s", RNNTRAIN_BIN, args);
    int rc = test_capture(cmd, out, sizeof out);
    ck_assert_msg(rc == status, "'%s': exit %d, expected %d; output:\n%s", args, rc, status, out);
    ck_assert_msg(strstr(out, "error") != NULL, "'%s': no error message:\n%s", args, out);
    ck_assert_msg(!needle1 || strstr(out, needle1), "'%s': message lacks '%s':\n%s", args,
                  needle1, out);
    ck_assert_msg(!needle2 || strstr(out, needle2), "'%s': message lacks '%s':\n%s", args,
                  needle2, out);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A token file with the given attributes; train split of n tokens 0..n-1 mod mod. */
static void make_token_file(const char *path, const char *format, int vocab, int n, int mod,
                            int float_train) {
    hid_t f = h5_create(path);
    if (format) h5_write_attr_str(f, "format", format, path);
    h5_write_attr_int(f, "version", 1, path);
    h5_write_attr_str(f, "vocab_kind", "bytes", path);
    h5_write_attr_int(f, "vocab_size", vocab, path);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)vocab);
    for (int i = 0; i < vocab; i++) v[i] = i;
    uint64_t vd[1] = {(uint64_t)vocab};
    h5_write_i32(f, "vocab", v, 1, vd, path);
    free(v);
    int32_t *t = malloc(sizeof(int32_t) * (size_t)n);
    float *tf = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) tf[i] = (float)(t[i] = i % mod);
    uint64_t d[1] = {(uint64_t)n};
    if (float_train)
        h5_write_f32(f, "train", tf, 1, d, path);
    else
        h5_write_i32(f, "train", t, 1, d, path);
    h5_write_i32(f, "valid", t, 1, d, path);
    h5_write_i32(f, "test", t, 1, d, path);
    free(t);
    free(tf);
    H5Fclose(f);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/rnntrain-test-cli-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char text[600], in[512], cmd[2048];
    for (int i = 0; i < 599; i++) text[i] = (char)('a' + (i * 7) % 26);
    text[599] = 0;
    snprintf(in, sizeof in, "%s/small.txt", dir);
    write_text(in, text);
    snprintf(data_path, sizeof data_path, "%s/small.h5", dir);
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(cmd, sizeof cmd,
             "%s prepare --input %s --output %s --vocab chars --split 0.8,0.1,0.1 >/dev/null && "
             "%s train --data %s --out %s --hidden 8 --layers 1 --batch 2 --bptt 8 --steps 3 "
             "--eval-batch 2 >/dev/null 2>&1",
             RNNTRAIN_BIN, in, data_path, RNNTRAIN_BIN, data_path, model_dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(bad_options) {
    char a[2048];
    snprintf(a, sizeof a, "train --data %s --out %s/o --lr -1", data_path, dir);
    expect(a, 2, "--lr", "-1");
    snprintf(a, sizeof a, "train --data %s --out %s/o --model lstn", data_path, dir);
    expect(a, 2, "--model", "rnn|lstm|gru");
    snprintf(a, sizeof a, "train --data %s --out %s/o --hidden abc", data_path, dir);
    expect(a, 2, "--hidden", "integer");
    snprintf(a, sizeof a, "train --data %s --out %s/o --batch 0", data_path, dir);
    expect(a, 2, "--batch", "0");
    snprintf(a, sizeof a, "train --data %s --out %s/o --steps", data_path, dir);
    expect(a, 2, "--steps", "missing value");
    snprintf(a, sizeof a, "train --data %s --out %s/o --bogus 1", data_path, dir);
    expect(a, 2, "--bogus", "unknown option");
    expect("train --out x", 2, "--data", "required");
    expect("frobnicate", 2, "unknown command", "frobnicate");
    snprintf(a, sizeof a, "prepare --input %s/small.txt --output %s/x.h5 --split 0.5,0.5,0.5",
             dir, dir);
    expect(a, 2, "--split", "add up to 1");
    snprintf(a, sizeof a, "sample --model %s --temperature 0", model_dir);
    expect(a, 2, "--temperature", "0");
    snprintf(a, sizeof a, "sample --model %s --prime 'Q!'", model_dir);
    expect(a, 2, "--prime", "vocabulary");
    snprintf(a, sizeof a, "eval --model %s --data %s --split nope", model_dir, data_path);
    expect(a, 2, "--split", "valid|test");
    snprintf(a, sizeof a, "train --data %s --out %s/o --batch 6 --deterministic --micro-batch 4",
             data_path, dir);
    expect(a, 2, "--micro-batch", "does not divide");
    /* --layers: a count or a KIND:WIDTH list; each wrong form named */
    static const char *const bad_layers[][2] = {
        {"17", "integer in [1, 16]"},        {"lstm:0", "width must be an integer"},
        {"foo:8", "unknown kind 'foo'"},     {"lstm:8,", "ends with a comma"},
        {"lstm", "expected KIND:WIDTH"},     {"lstm:8x", "width must be an integer"},
        {":8", "missing or too long kind"},
    };
    for (size_t i = 0; i < sizeof bad_layers / sizeof *bad_layers; i++) {
        snprintf(a, sizeof a, "train --data %s --out %s/o --layers '%s' --steps 1", data_path,
                 dir, bad_layers[i][0]);
        expect(a, 2, "--layers", bad_layers[i][1]);
    }
    /* a sequence task's micro-batches must divide its sequences per rank, like streams */
    snprintf(a, sizeof a, "prepare --csv %s/datasets/digits.csv --task classify --steps 8 "
             "--features 8 --output %s/d.h5 > /dev/null && %s train --data %s/d.h5 --out %s/o2 "
             "--batch 6 --deterministic --micro-batch 4", SOURCE_DIR, dir, RNNTRAIN_BIN, dir, dir);
    expect(a, 2, "--micro-batch", "does not divide");
    snprintf(a, sizeof a, "train --data %s --out %s/o3 --hidden 8 --batch 2 --bptt 8 --steps 2",
             data_path, dir);
    char env_cmd[2100];
    snprintf(env_cmd, sizeof env_cmd, "RNNTRAIN_TEST_NAN_AT=abc %s", RNNTRAIN_BIN);
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd, "%s %s", env_cmd, a);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "RNNTRAIN_TEST_NAN_AT") && strstr(out, "STEP:COUNT"), "%.500s", out);
}
END_TEST

START_TEST(bad_files) {
    char a[2048], p[512];
    expect("train --data /nonexistent/d.h5 --out /tmp/x", 3, "/nonexistent/d.h5", "cannot read");
    snprintf(p, sizeof p, "%s/small.txt", dir);
    snprintf(a, sizeof a, "train --data %s --out %s/o", p, dir);
    expect(a, 3, p, "not an HDF5 file");
    snprintf(p, sizeof p, "%s/noformat.h5", dir);
    make_token_file(p, NULL, 10, 1000, 10, 0);
    snprintf(a, sizeof a, "train --data %s --out %s/o", p, dir);
    expect(a, 3, p, "'format'");
    snprintf(p, sizeof p, "%s/wrongformat.h5", dir);
    make_token_file(p, "something-else", 10, 1000, 10, 0);
    snprintf(a, sizeof a, "train --data %s --out %s/o", p, dir);
    expect(a, 3, p, "rnntrain-tokens");
    /* 'format' an array of two fixed-length strings: one string expected, never a
     * read past the buffer */
    snprintf(p, sizeof p, "%s/twoformats.h5", dir);
    make_token_file(p, NULL, 10, 1000, 10, 0);
    {
        hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, 15);
        hsize_t two = 2;
        hid_t sp = H5Screate_simple(1, &two, NULL);
        hid_t at = H5Acreate2(f, "format", st, sp, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert(at >= 0 && H5Awrite(at, st, "rnntrain-tokensrnntrain-tokens") >= 0);
        H5Aclose(at);
        H5Sclose(sp);
        H5Tclose(st);
        H5Fclose(f);
    }
    snprintf(a, sizeof a, "train --data %s --out %s/o", p, dir);
    expect(a, 3, p, "should be one string, found 2");
    snprintf(p, sizeof p, "%s/float.h5", dir);
    make_token_file(p, "rnntrain-tokens", 10, 1000, 10, 1);
    snprintf(a, sizeof a, "train --data %s --out %s/o", p, dir);
    expect(a, 3, p, "integer");
    snprintf(p, sizeof p, "%s/oov.h5", dir);
    make_token_file(p, "rnntrain-tokens", 10, 1000, 12, 0);
    snprintf(a, sizeof a, "train --data %s --out %s/o --batch 2 --bptt 8 --hidden 8 --steps 5", p,
             dir);
    expect(a, 3, p, "outside the vocabulary");
    snprintf(p, sizeof p, "%s/short.h5", dir);
    make_token_file(p, "rnntrain-tokens", 10, 100, 10, 0);
    snprintf(a, sizeof a, "train --data %s --out %s/o --batch 4 --bptt 64", p, dir);
    expect(a, 3, p, "fewer than");
    expect("prepare --input /nonexistent.txt --output /tmp/x.h5", 3, "/nonexistent.txt", "--input");
    snprintf(p, sizeof p, "%s/empty.txt", dir);
    write_text(p, "");
    snprintf(a, sizeof a, "prepare --input %s --output %s/e.h5", p, dir);
    expect(a, 3, "--input", "no text");
    snprintf(p, sizeof p, "%s/latin1.txt", dir);
    write_text(p, "caf\xe9 au lait");
    snprintf(a, sizeof a, "prepare --input %s --output %s/l.h5 --vocab chars", p, dir);
    expect(a, 3, p, "UTF-8 at byte 3");
    snprintf(a, sizeof a, "eval --model %s --data %s", data_path, data_path);
    expect(a, 3, data_path, "rnntrain-model");
    /* a model whose vocabulary is not the data's */
    snprintf(p, sizeof p, "%s/bytes.h5", dir);
    make_token_file(p, "rnntrain-tokens", 256, 4000, 256, 0);
    snprintf(a, sizeof a, "eval --model %s --data %s", model_dir, p);
    expect(a, 3, "does not match", p);
}
END_TEST

START_TEST(failures_leave_files_alone) {
    char model_file[600], a[2048];
    snprintf(model_file, sizeof model_file, "%s/model.h5", model_dir);
    struct stat before, after;
    ck_assert_int_eq(stat(model_file, &before), 0);
    /* a failing run into the same output directory does not touch the model */
    snprintf(a, sizeof a, "train --data %s --out %s --lr 0", data_path, model_dir);
    expect(a, 2, "--lr", NULL);
    snprintf(a, sizeof a, "train --data %s/noformat.h5 --out %s", dir, model_dir);
    expect(a, 3, NULL, NULL);
    ck_assert_int_eq(stat(model_file, &after), 0);
    ck_assert(before.st_mtime == after.st_mtime && before.st_size == after.st_size);
    /* prepare refuses to write over its own input */
    snprintf(a, sizeof a, "prepare --input %s --output %s", data_path, data_path);
    expect(a, 2, "--output", "also an input");
    TokenFile tf;
    data_open(&tf, data_path); /* still a valid dataset */
    data_close(&tf);
}
END_TEST

/* --init-from: the run starts from the file's weights (with a vanishing lr the saved model
 * equals the input bitwise, and differs without --init-from); a model of another shape or
 * vocabulary, or a file that is not a model, is refused with a message naming both sides. */
START_TEST(init_from) {
    char a[4096], in_file[600], out_file[600], p[512];
    const char *cfg = "--hidden 8 --layers 1 --batch 2 --bptt 8 --steps 1 --eval-batch 2 "
                      "--lr 1e-300 --seed 99";
    snprintf(in_file, sizeof in_file, "%s/model.h5", model_dir);
    size_t n_in, n_out, n_fresh;
    float *w_in = test_model_params(in_file, &n_in);
    for (int from = 0; from < 2; from++) {
        snprintf(a, sizeof a, "%s train --data %s --out %s/warm%d %s %s%s >/dev/null 2>&1",
                 RNNTRAIN_BIN, data_path, dir, from, cfg, from ? "--init-from " : "",
                 from ? model_dir : "");
        ck_assert_int_eq(system(a), 0);
    }
    snprintf(out_file, sizeof out_file, "%s/warm1/model.h5", dir);
    float *w_out = test_model_params(out_file, &n_out);
    snprintf(out_file, sizeof out_file, "%s/warm0/model.h5", dir);
    float *w_fresh = test_model_params(out_file, &n_fresh);
    ck_assert(n_in == n_out && n_in == n_fresh && n_in > 0);
    ck_assert_msg(memcmp(w_in, w_out, n_in * sizeof(float)) == 0,
                  "--init-from did not start from the file's weights");
    ck_assert_msg(memcmp(w_in, w_fresh, n_in * sizeof(float)) != 0,
                  "without --init-from the weights should be a fresh draw");
    free(w_in);
    free(w_out);
    free(w_fresh);

    snprintf(a, sizeof a, "train --data %s --out %s/o --hidden 16 --layers 1 --batch 2 --bptt 8 "
             "--eval-batch 2 --steps 1 --init-from %s", data_path, dir, model_dir);
    expect(a, 3, "--init-from", "holds a lstm:8,");
    snprintf(a, sizeof a, "train --data %s --out %s/o --hidden 8 --layers 1 --model gru "
             "--batch 2 --bptt 8 --eval-batch 2 --steps 1 --init-from %s", data_path, dir, in_file);
    expect(a, 3, in_file, "configures gru:8,");
    /* same number of symbols, other symbols: the token ids would mean other characters */
    char text[600], in[512], other[512];
    for (int i = 0; i < 599; i++) text[i] = (char)('A' + (i * 7) % 26);
    text[599] = 0;
    snprintf(in, sizeof in, "%s/upper.txt", dir);
    write_text(in, text);
    snprintf(other, sizeof other, "%s/upper.h5", dir);
    snprintf(a, sizeof a, "%s prepare --input %s --output %s --vocab chars --split 0.8,0.1,0.1 "
             ">/dev/null", RNNTRAIN_BIN, in, other);
    ck_assert_int_eq(system(a), 0);
    snprintf(a, sizeof a, "train --data %s --out %s/o %s --init-from %s", other, dir, cfg,
             model_dir);
    expect(a, 3, "--init-from", "vocabulary");
    snprintf(a, sizeof a, "train --data %s --out %s/o %s --init-from %s", data_path, dir, cfg,
             data_path);
    expect(a, 3, data_path, "rnntrain-model");
    snprintf(p, sizeof p, "%s/none.h5", dir);
    snprintf(a, sizeof a, "train --data %s --out %s/o %s --init-from %s", data_path, dir, cfg, p);
    expect(a, 3, p, NULL);
}
END_TEST

START_TEST(help_and_version) {
    static const char *const cmds[] = {"prepare", "train", "eval", "sample"};
    char cmd[1024], out[8192];
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "%s %s --help", RNNTRAIN_BIN, cmds[i]);
        ck_assert_int_eq(test_capture(cmd, out, sizeof out), 0);
        ck_assert_msg(strstr(out, "usage: rnntrain") && strstr(out, "--"), "%s", out);
    }
    snprintf(cmd, sizeof cmd, "%s --version", RNNTRAIN_BIN);
    ck_assert_int_eq(test_capture(cmd, out, sizeof out), 0);
    ck_assert(strstr(out, "rnntrain ") != NULL);
}
END_TEST

static Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("errors");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, bad_options);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, failures_leave_files_alone);
    tcase_add_test(tc, init_from);
    tcase_add_test(tc, help_and_version);
    tcase_set_timeout(tc, 200);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(cli_suite)
