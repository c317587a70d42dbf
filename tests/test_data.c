/* Data: prepare round trips (bytes and UTF-8 chars, across 1 MiB block boundaries), split
 * sizes, stream reads against direct slicing, and sharding: for N = 1, 2, 3, 4, 8 ranks
 * the union of the ranks' streams is exactly the single-rank batch, without overlap. */
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "testutil.h"

static char dir[256];

static void setup_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/rnntrain-test-data-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Reads all three splits concatenated. */
static int32_t *read_all(const TokenFile *tf, int64_t *n) {
    static const char *const s[3] = {"train", "valid", "test"};
    int64_t total = 0, len[3];
    for (int i = 0; i < 3; i++) total += len[i] = data_split_len(tf, s[i]);
    int32_t *all = malloc(sizeof(int32_t) * (size_t)total);
    int64_t off = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t d[1] = {(uint64_t)len[i]};
        if (len[i] > 0) h5_read_i32(tf->file, s[i], all + off, 1, d, tf->path);
        off += len[i];
    }
    *n = total;
    return all;
}

START_TEST(bytes_round_trip) {
    setup_dir();
    size_t n = 3000017;
    char *text = malloc(n);
    for (size_t i = 0; i < n; i++) text[i] = (char)((i * 7919 + i / 13) % 256);
    char in[512], out[512], cmd[2048];
    snprintf(in, sizeof in, "%s/in.bin", dir);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    write_file(in, text, n);
    snprintf(cmd, sizeof cmd, "%s prepare --input %s --output %s --split 0.8,0.15,0.05 >/dev/null",
             RNNTRAIN_BIN, in, out);
    ck_assert_int_eq(test_status(cmd), 0);
    TokenFile tf;
    data_open(&tf, out);
    ck_assert_int_eq(tf.vocab.V, 256);
    ck_assert_int_eq(data_split_len(&tf, "train"), (int64_t)(n * 0.8));
    ck_assert_int_eq(data_split_len(&tf, "valid"), (int64_t)(n * 0.15));
    int64_t total;
    int32_t *all = read_all(&tf, &total);
    ck_assert_int_eq(total, (int64_t)n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += all[i] != (unsigned char)text[i];
    ck_assert_uint_eq(bad, 0);
    free(all);
    data_close(&tf);
    free(text);
}
END_TEST

START_TEST(chars_round_trip_across_blocks) {
    setup_dir();
    /* multi-byte characters placed so some straddle the 1 MiB read blocks */
    const char *pieces[] = {"a", "é", "€", "𝄞", "\n", "z"};
    size_t cap = 3 << 20, n = 0;
    char *text = malloc(cap);
    for (size_t k = 0; n + 4 < cap - 8; k++) {
        const char *p = pieces[(k * 5 + k / 7) % 6];
        size_t len = strlen(p);
        memcpy(text + n, p, len);
        n += len;
    }
    char in1[512], in2[512], out[512], cmd[2048];
    snprintf(in1, sizeof in1, "%s/a.txt", dir);
    snprintf(in2, sizeof in2, "%s/b.txt", dir);
    snprintf(out, sizeof out, "%s/chars.h5", dir);
    size_t half = n / 2;
    while ((text[half] & 0xC0) == 0x80) half++; /* split files at a character boundary */
    write_file(in1, text, half);
    write_file(in2, text + half, n - half);
    snprintf(cmd, sizeof cmd, "%s prepare --input %s %s --output %s --vocab chars >/dev/null",
             RNNTRAIN_BIN, in1, in2, out);
    ck_assert_int_eq(test_status(cmd), 0);
    TokenFile tf;
    data_open(&tf, out);
    ck_assert_int_eq(tf.vocab.V, 6);
    int64_t total;
    int32_t *all = read_all(&tf, &total);
    char *back = malloc(4 * (size_t)total + 1);
    size_t m = 0;
    for (int64_t i = 0; i < total; i++) m += (size_t)vocab_decode(&tf.vocab, all[i], back + m);
    ck_assert_uint_eq(m, n);
    ck_assert(memcmp(back, text, n) == 0);
    free(back);
    free(all);
    data_close(&tf);
    free(text);
}
END_TEST

/* A small dataset: tokens are i mod 256 so every position is recognisable. */
static void make_counting_dataset(const char *path, size_t n) {
    char in[512], cmd[2048];
    snprintf(in, sizeof in, "%s/count.bin", dir);
    char *text = malloc(n);
    for (size_t i = 0; i < n; i++) text[i] = (char)(i % 251);
    write_file(in, text, n);
    free(text);
    snprintf(cmd, sizeof cmd, "%s prepare --input %s --output %s --split 0.9,0.05,0.05 >/dev/null",
             RNNTRAIN_BIN, in, path);
    ck_assert_int_eq(test_status(cmd), 0);
}

START_TEST(stream_reads_match_slicing) {
    setup_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/count.h5", dir);
    make_counting_dataset(path, 10007);
    TokenFile tf;
    data_open(&tf, path);
    int64_t n = data_split_len(&tf, "train");
    int S = 5, Tm = 16;
    StreamReader sr;
    stream_init(&sr, &tf, "train", S, 0, S, Tm, 0);
    ck_assert_int_eq(sr.L, n / S);
    int64_t scored = 0;
    for (int64_t cursor = 0;; cursor += Tm) {
        int T = stream_read(&sr, cursor);
        if (T == 0) break;
        ck_assert_int_le(T, Tm);
        int bad = 0;
        for (int t = 0; t < T; t++)
            for (int b = 0; b < S; b++) {
                int64_t pos = b * sr.L + cursor + t; /* position within the train split */
                bad += sr.inputs[t * S + b] != pos % 251;
                bad += sr.targets[t * S + b] != (pos + 1) % 251;
            }
        ck_assert_int_eq(bad, 0);
        scored += (int64_t)T * S;
    }
    ck_assert_int_eq(scored, S * (sr.L - 1)); /* every in-stream prediction, short tail too */
    stream_free(&sr);
    data_close(&tf);
}
END_TEST

START_TEST(sharding_union_is_the_batch) {
    setup_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/count.h5", dir);
    make_counting_dataset(path, 20011);
    TokenFile tf;
    data_open(&tf, path);
    const int S = 24, Tm = 8;
    StreamReader all;
    stream_init(&all, &tf, "train", S, 0, S, Tm, 1);
    const int ranks[] = {1, 2, 3, 4, 8};
    for (int64_t cursor = 0; cursor < 3 * Tm; cursor += Tm) {
        ck_assert_int_eq(stream_read(&all, cursor), Tm);
        for (size_t r = 0; r < sizeof ranks / sizeof *ranks; r++) {
            int N = ranks[r], Bl = S / N;
            int covered[S];
            memset(covered, 0, sizeof covered);
            for (int rank = 0; rank < N; rank++) {
                StreamReader part;
                stream_init(&part, &tf, "train", S, rank * Bl, Bl, Tm, 1);
                ck_assert_int_eq(part.L, all.L); /* stream length independent of N */
                ck_assert_int_eq(stream_read(&part, cursor), Tm);
                for (int b = 0; b < Bl; b++) {
                    int g = rank * Bl + b;
                    covered[g]++;
                    for (int t = 0; t < Tm; t++) {
                        ck_assert_int_eq(part.inputs[t * Bl + b], all.inputs[t * S + g]);
                        ck_assert_int_eq(part.targets[t * Bl + b], all.targets[t * S + g]);
                    }
                }
                stream_free(&part);
            }
            for (int g = 0; g < S; g++) ck_assert_int_eq(covered[g], 1); /* exactly once */
        }
    }
    stream_free(&all);
    data_close(&tf);
}
END_TEST

START_TEST(utf8_decoder_rejects_invalid) {
    int used;
    const unsigned char overlong[] = {0xC0, 0xAF}, surrogate[] = {0xED, 0xA0, 0x80},
                        cut[] = {0xE2, 0x82}, ok[] = {0xE2, 0x82, 0xAC};
    ck_assert_int_eq(utf8_next(overlong, 2, &used), -1);
    ck_assert_int_eq(utf8_next(surrogate, 3, &used), -1);
    ck_assert_int_eq(utf8_next(cut, 2, &used), -1);
    ck_assert_int_eq(utf8_next(ok, 3, &used), 0x20AC);
    ck_assert_int_eq(used, 3);
}
END_TEST

static Suite *data_suite(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_add_test(tc, bytes_round_trip);
    tcase_add_test(tc, chars_round_trip_across_blocks);
    tcase_add_test(tc, stream_reads_match_slicing);
    tcase_add_test(tc, sharding_union_is_the_batch);
    tcase_add_test(tc, utf8_decoder_rejects_invalid);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(data_suite)
