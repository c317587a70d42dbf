/* prepare: text files -> HDF5 token dataset (rnntrain prepare).
 *
 * Two streaming passes over the inputs, so inputs larger than memory work: the first counts
 * tokens (and, for --vocab chars, collects the distinct characters and checks the UTF-8);
 * the second encodes blocks of 1 MiB and writes them into the train/valid/test datasets,
 * which are contiguous pieces of the concatenated inputs. The output is written to a
 * temporary file and renamed, so a failure never leaves a half-written dataset behind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "cli.h"
#include "commands.h"
#include "common.h"
#include "data.h"
#include "dist.h"
#include "h5util.h"
#include "pairs.h"
#include "seq.h"

#define BLOCK (1 << 20)

typedef struct {
    hid_t dset[3];
    uint64_t hash[3]; /* data_hash_tokens of each split, as written */
    int64_t size[3];
    int64_t written; /* tokens written so far, over all splits */
} SplitWriter;

static const char *const split_names[3] = {"train", "valid", "test"};

static FILE *open_input(const char *path) {
    const char *odd = rt_not_regular(path);
    if (odd) /* read twice (count, then encode): a stream cannot be */
        rt_die(EXIT_INPUT, "--input: '%s' is %s, expected a regular file", path, odd);
    FILE *f = fopen(path, "rb");
    if (!f) rt_die(EXIT_INPUT, "--input: cannot open '%s': %s", path, strerror(errno));
    return f;
}

/* Writes n tokens at the current global position, across split boundaries. */
static void write_tokens(SplitWriter *w, const int32_t *tok, int64_t n, const char *out) {
    int64_t start = 0;
    for (int s = 0; s < 3 && n > 0; s++) {
        int64_t split_begin = start, split_end = start + w->size[s];
        start = split_end;
        if (w->written >= split_end) continue;
        int64_t take = split_end - w->written < n ? split_end - w->written : n;
        hsize_t off = (hsize_t)(w->written - split_begin), cnt = (hsize_t)take;
        hid_t fs = H5Dget_space(w->dset[s]);
        hid_t ms = H5Screate_simple(1, &cnt, NULL);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
            H5Dwrite(w->dset[s], H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, tok) < 0)
            rt_die(EXIT_RUNTIME, "--output: writing split '%s' of '%s' failed (disk full?)",
                   split_names[s], out);
        H5Sclose(ms);
        H5Sclose(fs);
        w->hash[s] = data_hash_tokens(w->hash[s], tok, (size_t)take);
        tok += take;
        n -= take;
        w->written += take;
    }
}

/* First pass: token count; for chars, the set of code points (seen[cp] = 1). */
static int64_t count_tokens(const CliList *inputs, VocabKind kind, unsigned char *seen) {
    int64_t total = 0;
    unsigned char *buf = rt_malloc(BLOCK + 4, "read buffer");
    for (int i = 0; i < inputs->count; i++) {
        const char *path = inputs->items[i];
        FILE *f = open_input(path);
        size_t carry = 0;
        int64_t offset = 0;
        for (;;) {
            size_t got = fread(buf + carry, 1, BLOCK, f);
            if (ferror(f)) rt_die(EXIT_INPUT, "--input: reading '%s' failed", path);
            size_t n = carry + got, pos = 0;
            if (kind == VOCAB_BYTES) {
                for (size_t k = 0; k < n; k++) seen[buf[k]] = 1;
                total += (int64_t)n;
                pos = n;
            } else {
                while (pos < n) {
                    /* an incomplete character at the end waits for the next block */
                    if (got > 0 && n - pos < 4 && (buf[pos] & 0x80)) {
                        int need = (buf[pos] & 0xE0) == 0xC0 ? 2 : (buf[pos] & 0xF0) == 0xE0 ? 3 : 4;
                        if ((size_t)need > n - pos) break;
                    }
                    int used;
                    int32_t cp = utf8_next(buf + pos, n - pos, &used);
                    if (cp < 0)
                        rt_die(EXIT_INPUT, "--input: '%s' is not valid UTF-8 at byte %lld (use "
                               "--vocab bytes for binary or non-UTF-8 text)", path,
                               (long long)(offset + (int64_t)pos));
                    seen[cp] = 1;
                    total++;
                    pos += (size_t)used;
                }
            }
            offset += (int64_t)pos;
            carry = n - pos;
            memmove(buf, buf + pos, carry);
            if (got == 0) break;
        }
        fclose(f);
    }
    free(buf);
    return total;
}

/* Second pass: encode block by block and write. */
static void encode_inputs(const CliList *inputs, const Vocab *v, SplitWriter *w,
                          const char *out) {
    unsigned char *buf = rt_malloc(BLOCK + 4, "read buffer");
    int32_t *tok = rt_malloc((BLOCK + 4) * sizeof(int32_t), "token buffer");
    for (int i = 0; i < inputs->count; i++) {
        FILE *f = open_input(inputs->items[i]);
        size_t carry = 0;
        for (;;) {
            size_t got = fread(buf + carry, 1, BLOCK, f);
            size_t n = carry + got, end = n;
            if (v->kind == VOCAB_CHARS && got > 0) {
                /* stop before a character cut by the block end */
                size_t k = n;
                while (k > 0 && n - k < 4 && (buf[k - 1] & 0xC0) == 0x80) k--;
                if (k > 0 && (buf[k - 1] & 0x80)) {
                    unsigned c = buf[k - 1];
                    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
                    if (n - (k - 1) < need) end = k - 1;
                }
            }
            size_t bad = 0;
            int64_t count = vocab_encode(v, (const char *)buf, end, tok, &bad);
            if (count < 0)
                rt_die(EXIT_INPUT, "--input: '%s' changed while being read", inputs->items[i]);
            write_tokens(w, tok, count, out);
            carry = n - end;
            memmove(buf, buf + end, carry);
            if (got == 0) break;
        }
        fclose(f);
    }
    free(tok);
    free(buf);
}

static void parse_split(const char *text, double frac[3]) {
    char *end = NULL;
    const char *p = text;
    for (int i = 0; i < 3; i++) {
        frac[i] = strtod(p, &end);
        if (end == p || frac[i] < 0.0 || frac[i] > 1.0 || (i < 2 && *end != ',') ||
            (i == 2 && *end != 0))
            cli_bad("split", "expected three fractions TRAIN,VALID,TEST in [0,1], found '%s'",
                    text);
        p = end + 1;
    }
    double sum = frac[0] + frac[1] + frac[2];
    if (sum < 1.0 - 1e-6 || sum > 1.0 + 1e-6)
        cli_bad("split", "the fractions must add up to 1, found '%s' (sum %g)", text, sum);
}

int cmd_prepare(int argc, char **argv) {
    CliList inputs = {0};
    char *output = NULL, *vocab_kind = "bytes", *split = "0.9,0.05,0.05";
    char *csv = NULL, *task = "classify", *column = "value";
    char *pairs = NULL, *source = "chars", *target = "chars";
    int steps = 0, features = 0, window = 0, horizon = 1;
    int64_t seed = 1234;
    CliOption opts[] = {
        {"input", CLI_LIST, &inputs, "FILE", "text files, concatenated in the order given (language "
         "models)", 1, 0, NULL, 0, 0},
        {"csv", CLI_STR, &csv, "FILE", "a CSV file -> a sequence dataset (instead of --input)", 1, 0,
         NULL, 0, 0},
        {"pairs", CLI_STR, &pairs, "FILE", "lines SOURCE<TAB>TARGET (CSV if FILE ends in .csv) -> a "
         "sequence-to-sequence dataset (instead of --input)", 1, 0, NULL, 0, 0},
        {"source", CLI_STR, &source, "KIND", "with --pairs: the source as chars (default: each "
         "UTF-8 character a symbol), symbols (whitespace-separated) or features (numbers, the "
         "same count on every line)", 1, 0, "chars|symbols|features", 0, 0},
        {"target", CLI_STR, &target, "KIND", "with --pairs: the target as chars (default) or "
         "symbols", 1, 0, "chars|symbols", 0, 0},
        {"task", CLI_STR, &task, "TASK", "with --csv: classify (rows of steps x features values and "
         "a label), generate (the same rows generated from their label), regress (a time-series "
         "column cut into windows)", 1, 0, "classify|regress|generate", 0, 0},
        {"steps", CLI_INT, &steps, "T", "classify/generate: steps per row", 1, 1 << 20, NULL, 0, 0},
        {"features", CLI_INT, &features, "D", "classify/generate: values per step", 1, 1 << 20, NULL, 0, 0},
        {"column", CLI_STR, &column, "NAME", "regress: the series column (name or 1-based "
         "number; default value)", 1, 0, NULL, 0, 0},
        {"window", CLI_INT, &window, "W", "regress: input length in steps", 1, 1 << 20, NULL, 0, 0},
        {"horizon", CLI_INT, &horizon, "H", "regress: values to forecast after each window "
         "(default 1)", 1, 1 << 20, NULL, 0, 0},
        {"seed", CLI_I64, &seed, "S", "classify/generate, --pairs: shuffle seed before the split "
         "(default 1234)", 0, 9e15, NULL, 0, 0},
        {"output", CLI_STR, &output, "DATA.h5", "HDF5 token dataset to write", 1, 0, NULL, 1, 0},
        {"vocab", CLI_STR, &vocab_kind, "KIND", "bytes (0-255, default) or chars (the distinct "
         "UTF-8 characters of the inputs)", 1, 0, "bytes|chars", 0, 0},
        {"split", CLI_STR, &split, "A,B,C", "train,valid,test fractions, contiguous; --pairs: of "
         "the distinct sources, shuffled (default 0.9,0.05,0.05)", 1, 0, NULL, 0, 0},
    };
    cli_parse("prepare", "Turn text files into an HDF5 token dataset (schema: docs/formats.md).",
              opts, (int)(sizeof opts / sizeof *opts), argc, argv);
    double frac[3];
    parse_split(split, frac);
    if (dist_rank() != 0) return 0; /* one writer */
    int modes = (inputs.count > 0) + (csv != NULL) + (pairs != NULL);
    if (modes != 1)
        rt_die(EXIT_USAGE, "prepare: give exactly one of --input (text), --csv (sequences) or "
               "--pairs (source/target pairs), found%s%s%s%s", modes ? "" : " none",
               inputs.count ? " --input" : "", csv ? " --csv" : "", pairs ? " --pairs" : "");
    for (int k = 0; k < (int)(sizeof opts / sizeof *opts); k++)
        if (!pairs && opts[k].seen && (!strcmp(opts[k].name, "source") ||
                                       !strcmp(opts[k].name, "target")))
            cli_bad(opts[k].name, "goes with --pairs only");
    if (pairs) {
        if (strcmp(pairs, output) == 0 || rt_same_file(pairs, output))
            cli_bad("output", "'%s' is also the input ('%s'); refusing to overwrite it", output,
                    pairs);
        PairsPrepare pp = {pairs, output, (PairsKind)pairs_kind_by_name(source),
                           (PairsKind)pairs_kind_by_name(target), seed,
                           {frac[0], frac[1], frac[2]}};
        seq_prepare_pairs(&pp);
        return 0;
    }
    if (csv) {
        CsvPrepare cp = {csv, output, column, (TaskKind)task_by_name(task), steps, features,
                         window, horizon, seed, {frac[0], frac[1], frac[2]}};
        if (cp.task != TASK_REGRESS && (!steps || !features))
            rt_die(EXIT_USAGE, "prepare --csv --task %s needs --steps and --features", task);
        if (cp.task == TASK_REGRESS && !window)
            rt_die(EXIT_USAGE, "prepare --csv --task regress needs --window");
        if (strcmp(csv, output) == 0 || rt_same_file(csv, output))
            cli_bad("output", "'%s' is also the input ('%s'); refusing to overwrite it", output,
                    csv);
        seq_prepare_csv(&cp);
        return 0;
    }
    for (int i = 0; i < inputs.count; i++)
        if (strcmp(inputs.items[i], output) == 0 || rt_same_file(inputs.items[i], output))
            cli_bad("output", "'%s' is also an input ('%s'); refusing to overwrite it", output,
                    inputs.items[i]);

    VocabKind kind = (VocabKind)vocab_kind_by_name(vocab_kind);
    unsigned char *seen = rt_calloc(0x110000, 1, "character set");
    int64_t total = count_tokens(&inputs, kind, seen);
    if (total == 0) rt_die(EXIT_INPUT, "--input: the inputs hold no text (0 bytes)");
    Vocab v;
    if (kind == VOCAB_BYTES) {
        vocab_bytes(&v);
    } else {
        v.kind = VOCAB_CHARS;
        v.V = 0;
        for (int cp = 0; cp < 0x110000; cp++) v.V += seen[cp];
        if (v.V < 2) rt_die(EXIT_INPUT, "--input: only one distinct character; nothing to learn");
        v.symbols = rt_malloc((size_t)v.V * sizeof(int32_t), "vocabulary");
        for (int cp = 0, k = 0; cp < 0x110000; cp++)
            if (seen[cp]) v.symbols[k++] = cp;
    }
    free(seen);

    SplitWriter w = {{0}, {DATA_HASH_START, DATA_HASH_START, DATA_HASH_START}, {0}, 0};
    w.size[0] = (int64_t)((double)total * frac[0]);
    w.size[1] = (int64_t)((double)total * frac[1]);
    w.size[2] = total - w.size[0] - w.size[1];
    AtomicFile a;
    atomic_begin(&a, output, "--output dataset");
    const char *tmp = a.tmp;
    hid_t f = h5_create(tmp);
    h5_write_attr_str(f, "format", "rnntrain-tokens", tmp);
    h5_write_attr_int(f, "version", 1, tmp);
    h5_write_attr_str(f, "vocab_kind", vocab_kind_name(kind), tmp);
    h5_write_attr_int(f, "vocab_size", v.V, tmp);
    uint64_t vd[1] = {(uint64_t)v.V};
    h5_write_i32(f, "vocab", v.symbols, 1, vd, tmp);
    hid_t ftype = v.V <= 256 ? H5T_STD_U8LE : H5T_STD_I32LE;
    for (int s = 0; s < 3; s++) {
        hsize_t n = (hsize_t)w.size[s];
        hid_t space = H5Screate_simple(1, &n, NULL);
        w.dset[s] = H5Dcreate2(f, split_names[s], ftype, space, H5P_DEFAULT, H5P_DEFAULT,
                               H5P_DEFAULT);
        if (w.dset[s] < 0) rt_die(EXIT_RUNTIME, "--output: cannot create '/%s' in '%s'",
                                  split_names[s], tmp);
        H5Sclose(space);
    }
    encode_inputs(&inputs, &v, &w, tmp);
    if (w.written != total)
        rt_die(EXIT_INPUT, "--input: the inputs changed while being read (%lld tokens, then "
               "%lld)", (long long)total, (long long)w.written);
    for (int s = 0; s < 3; s++) { /* each split's checksum (data_open verifies it) */
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t at = H5Acreate2(w.dset[s], "checksum", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (at < 0 || H5Awrite(at, H5T_NATIVE_UINT64, &w.hash[s]) < 0)
            rt_die(EXIT_RUNTIME, "--output: cannot write the checksum of '/%s' in '%s'",
                   split_names[s], tmp);
        H5Aclose(at);
        H5Sclose(sp);
        h5_close_dataset(w.dset[s], split_names[s], tmp);
    }
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) rt_die(EXIT_RUNTIME, "flushing '%s' failed", tmp);
    h5_close_file(f, tmp);
    atomic_commit(&a);
    printf("%s: %lld tokens (%s vocabulary of %d) | train %lld | valid %lld | test %lld\n",
           output, (long long)total, vocab_kind_name(kind), v.V, (long long)w.size[0],
           (long long)w.size[1], (long long)w.size[2]);
    vocab_free(&v);
    free(inputs.items);
    return 0;
}
