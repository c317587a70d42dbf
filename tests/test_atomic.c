/* Atomic writes (atomic.h), the helper behind model files, checkpoints and prepare:
 * - the commit puts the content at the final path and leaves no temporary file;
 * - an existing final file keeps its old content until the commit;
 * - the temporary file is in the final path's directory (also for relative paths and the
 *   root-less "x.h5"), and a checkpoint's is one ckpt_remove_stale removes;
 * - through the binary: prepare (text and --csv), train's model.h5 and its final checkpoint
 *   into a path that is a directory (rename cannot replace it) exit 1 naming the path, and
 *   leave the directory as it was with no temporary file beside it. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "checkpoint.h"
#include "testutil.h"

static char dir[256];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/rnntrain-test-atomic-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create '%s'", path);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole (small) file, or "<missing>". */
static const char *read_text(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    if (!f) return "<missing>";
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int skip_dots(const struct dirent *e) {
    return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

/* The names in path, sorted, separated by spaces (hidden names included). */
static const char *listing(const char *path, char *buf, size_t size) {
    struct dirent **names;
    int n = scandir(path, &names, skip_dots, alphasort);
    ck_assert_msg(n >= 0, "cannot list '%s'", path);
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i) strncat(buf, " ", size - strlen(buf) - 1);
        strncat(buf, names[i]->d_name, size - strlen(buf) - 1);
        free(names[i]);
    }
    free(names);
    return buf;
}

static void expect_listing(const char *path, const char *want) {
    char have[4096];
    listing(path, have, sizeof have);
    ck_assert_msg(strcmp(have, want) == 0, "'%s' holds '%s', expected '%s'", path, have, want);
}

START_TEST(commit_puts_content_at_final_path) {
    char sub[512], final[600], buf[64];
    snprintf(sub, sizeof sub, "%s/commit", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(final, sizeof final, "%s/out.h5", sub);
    AtomicFile a;
    atomic_begin(&a, final, "test file");
    expect_listing(sub, ""); /* begin creates nothing */
    write_text(a.tmp, "new content");
    ck_assert_str_eq(read_text(final, buf, sizeof buf), "<missing>");
    atomic_commit(&a);
    ck_assert_str_eq(read_text(final, buf, sizeof buf), "new content");
    expect_listing(sub, "out.h5");
}
END_TEST

START_TEST(existing_file_untouched_until_commit) {
    char sub[512], final[600], buf[64];
    snprintf(sub, sizeof sub, "%s/replace", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(final, sizeof final, "%s/model.h5", sub);
    write_text(final, "old");
    struct stat before, during;
    ck_assert_int_eq(stat(final, &before), 0);
    AtomicFile a;
    atomic_begin(&a, final, "test file");
    write_text(a.tmp, "new, longer content");
    ck_assert_int_eq(stat(final, &during), 0);
    ck_assert_str_eq(read_text(final, buf, sizeof buf), "old");
    ck_assert(before.st_ino == during.st_ino && during.st_size == 3);
    atomic_commit(&a);
    ck_assert_str_eq(read_text(final, buf, sizeof buf), "new, longer content");
    expect_listing(sub, "model.h5");
}
END_TEST

/* Directory part of a path as rename() sees it ("." for a bare name). */
static void dir_of(const char *path, char *buf, size_t size) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, size, ".");
    else
        snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

START_TEST(temp_in_same_directory) {
    char sub[512], cwd[1024];
    snprintf(sub, sizeof sub, "%s/where", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(sub), 0); /* for the relative paths */
    ck_assert_int_eq(mkdir("d", 0755), 0);
    char abs[600];
    snprintf(abs, sizeof abs, "%s/abs.h5", sub);
    const char *finals[] = {abs, "d/rel.h5", "bare.h5", "d/../d/up.h5"};
    for (int i = 0; i < 4; i++) {
        AtomicFile a;
        atomic_begin(&a, finals[i], "test file");
        char want_dir[700], tmp_dir[700], want_name[700];
        dir_of(finals[i], want_dir, sizeof want_dir);
        dir_of(a.tmp, tmp_dir, sizeof tmp_dir);
        ck_assert_msg(strcmp(tmp_dir, want_dir) == 0 && strcmp(a.dir, want_dir) == 0,
                      "'%s': temporary '%s' (directory '%s'), expected in '%s'", finals[i],
                      a.tmp, a.dir, want_dir);
        const char *base = strrchr(finals[i], '/') ? strrchr(finals[i], '/') + 1 : finals[i];
        snprintf(want_name, sizeof want_name, ".%s.tmp.%ld", base, (long)getpid());
        const char *tmp_base = strrchr(a.tmp, '/') ? strrchr(a.tmp, '/') + 1 : a.tmp;
        ck_assert_msg(strcmp(tmp_base, want_name) == 0, "'%s': temporary '%s', expected '%s'",
                      finals[i], a.tmp, want_name);
        write_text(a.tmp, "x");
        atomic_commit(&a);
        ck_assert_int_eq(access(finals[i], R_OK), 0);
    }
    expect_listing(".", "abs.h5 bare.h5 d");
    expect_listing("d", "rel.h5 up.h5");
    /* a checkpoint's temporary name is one a later run's ckpt_remove_stale recognises */
    AtomicFile a;
    atomic_begin(&a, "d/ckpt-0000000007.h5", "checkpoint");
    write_text(a.tmp, "unfinished");
    char want[256];
    snprintf(want, sizeof want, ".ckpt-0000000007.h5.tmp.%ld rel.h5 up.h5", (long)getpid());
    expect_listing("d", want);
    ckpt_remove_stale("d");
    ck_assert_int_ne(access(a.tmp, F_OK), 0);
    write_text(a.tmp, "finished");
    atomic_commit(&a);
    expect_listing("d", "ckpt-0000000007.h5 rel.h5 up.h5");
    ck_assert_int_eq(chdir(cwd), 0);
}
END_TEST

/* Runs the binary, expecting exit 1 and both needles in its output. */
static void expect_failure(const char *args, const char *needle1, const char *needle2) {
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd, "%s %s", RNNTRAIN_BIN, args);
    int rc = test_capture(cmd, out, sizeof out);
    ck_assert_msg(rc == 1, "'%s': exit %d, expected 1; output:\n%s", args, rc, out);
    ck_assert_msg(strstr(out, needle1) && strstr(out, needle2),
                  "'%s': message lacks '%s' or '%s':\n%s", args, needle1, needle2, out);
}

/* A directory standing where a file is to be written, holding keep.txt. */
static void make_blocker(const char *path) {
    char keep[700];
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(keep, sizeof keep, "%s/keep.txt", path);
    write_text(keep, "keep");
}

static void expect_blocker_intact(const char *path) {
    char keep[700], buf[64];
    expect_listing(path, "keep.txt");
    snprintf(keep, sizeof keep, "%s/keep.txt", path);
    ck_assert_str_eq(read_text(keep, buf, sizeof buf), "keep");
}

START_TEST(failed_rename_leaves_nothing_behind) {
    char sub[512], in[600], target[600], data[600], a[4096], p[700];
    snprintf(sub, sizeof sub, "%s/fail", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    char text[3000];
    for (int i = 0; i < 2999; i++) text[i] = (char)('a' + (i * 7) % 26);
    text[2999] = 0;
    snprintf(in, sizeof in, "%s/in.txt", sub);
    write_text(in, text);
    snprintf(data, sizeof data, "%s/data.h5", sub);
    snprintf(a, sizeof a, "%s prepare --input %s --output %s --split 0.8,0.1,0.1 >/dev/null",
             RNNTRAIN_BIN, in, data);
    ck_assert_int_eq(system(a), 0);

    /* prepare (text, then CSV) writes the whole dataset, then cannot rename it over a
     * directory: exit 1, the directory as it was, no temporary file beside it */
    snprintf(target, sizeof target, "%s/target", sub);
    make_blocker(target);
    snprintf(a, sizeof a, "prepare --input %s --output %s", in, target);
    expect_failure(a, "cannot rename", target);
    expect_blocker_intact(target);
    expect_listing(sub, "data.h5 in.txt target");
    snprintf(a, sizeof a, "prepare --csv %s/datasets/digits.csv --task classify --steps 8 "
             "--features 8 --output %s", SOURCE_DIR, target);
    expect_failure(a, "cannot rename", target);
    expect_blocker_intact(target);
    expect_listing(sub, "data.h5 in.txt target");

    /* train: its model.h5 is a directory */
    const char *cfg = "--hidden 8 --layers 1 --batch 2 --bptt 8 --steps 2 --eval-batch 2";
    snprintf(p, sizeof p, "%s/run", sub);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/run/model.h5", sub);
    make_blocker(p);
    snprintf(a, sizeof a, "train --data %s --out %s/run %s", data, sub, cfg);
    expect_failure(a, "cannot rename", p);
    expect_blocker_intact(p);
    snprintf(p, sizeof p, "%s/run", sub);
    expect_listing(p, "checkpoints metrics.jsonl model.h5");

    /* train: the name of its final checkpoint is a directory */
    snprintf(p, sizeof p, "%s/run2", sub);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/run2/checkpoints", sub);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/run2/checkpoints/ckpt-0000000002.h5", sub);
    make_blocker(p);
    snprintf(a, sizeof a, "train --data %s --out %s/run2 %s", data, sub, cfg);
    expect_failure(a, "cannot rename", p);
    expect_blocker_intact(p);
    snprintf(p, sizeof p, "%s/run2/checkpoints", sub);
    expect_listing(p, "ckpt-0000000002.h5");
}
END_TEST

static Suite *atomic_suite(void) {
    Suite *s = suite_create("atomic");
    TCase *tc = tcase_create("atomic");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, commit_puts_content_at_final_path);
    tcase_add_test(tc, existing_file_untouched_until_commit);
    tcase_add_test(tc, temp_in_same_directory);
    tcase_add_test(tc, failed_rename_leaves_nothing_behind);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(atomic_suite)
