/* rnntrain eval and rnntrain predict: a trained model over a split, through the one
 * evaluation loop of every task (tasks/metrics.h). */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include "cli.h"
#include "decode.h"
#include "commands.h"
#include "config.h"
#include "common.h"
#include "dist.h"
#include "h5util.h"
#include "linalg.h"
#include "model_io.h"
#include "seq.h"
#include "metrics.h"
#include "task.h"

/* The model must read the same symbols as the data. */
static void check_vocab_match(const Vocab *model_vocab, const TokenFile *tf,
                              const char *model_path) {
    const Vocab *dv = &tf->vocab;
    int same = model_vocab->V == dv->V && model_vocab->kind == dv->kind &&
               memcmp(model_vocab->symbols, dv->symbols, (size_t)dv->V * sizeof(int32_t)) == 0;
    if (!same)
        rt_die(EXIT_INPUT,
               "model '%s' (vocabulary: %d %s) does not match data file '%s' (vocabulary: %d "
               "%s)", model_path, model_vocab->V, vocab_kind_name(model_vocab->kind), tf->path,
               dv->V, vocab_kind_name(dv->kind));
}

/* A sequence-task model must read what the file holds and output what it asks for. */
static void check_seq_model(const Model *m, const SeqFile *sf, const char *model_path) {
    const ModelShape *s = &m->shape;
    int ok = s->float_inputs == sf->float_inputs && s->V == seq_outputs(sf) &&
             (sf->S > 0 ? s->enc_L > 0 : s->C == sf->C) &&
             (sf->float_inputs ? s->E == sf->D : s->in_vocab == sf->vocab);
    if (ok && (sf->S > 0) != (s->enc_L > 0))
        rt_die(EXIT_INPUT, "model '%s' %s an encoder, data file '%s' has %s source",
               model_path, s->enc_L > 0 ? "has" : "has no", sf->path,
               sf->S > 0 ? "a token" : "no token");
    if (ok && sf->S > 0 && s->enc_vocab != sf->src_vocab)
        rt_die(EXIT_INPUT, "model '%s' reads %d source symbols, data file '%s' has %d",
               model_path, s->enc_vocab, sf->path, sf->src_vocab);
    if (!ok)
        rt_die(EXIT_INPUT, "model '%s' (%s inputs of width %d, %d outputs, conditioning %d) does "
               "not fit data file '%s' (%s %d, %d outputs, conditioning %d)", model_path,
               s->float_inputs ? "feature" : "token", s->float_inputs ? s->E : s->in_vocab, s->V,
               s->C, sf->path, sf->float_inputs ? "features" : "vocabulary",
               sf->float_inputs ? sf->D : sf->vocab, seq_outputs(sf), sf->C);
}

/* A seq2seq model must read and write the data's symbols, id for id. */
static void check_symbols(const char *model_path, const SeqFile *sf) {
    ModelSymbols ms;
    if (sf->task != TASK_SEQ2SEQ || !model_io_read_symbols(model_path, &ms)) return;
    for (int side = 0; side < 2; side++) {
        int n = side ? ms.Vs : ms.K, dn = side ? sf->src_vocab : sf->K;
        char **a = side ? ms.src : ms.tgt, **b = side ? sf->src_symbols : sf->tgt_symbols;
        const char *what = side ? "source" : "target";
        if (n != dn)
            rt_die(EXIT_INPUT, "model '%s' has %d %s symbols, data file '%s' has %d", model_path,
                   n, what, sf->path, dn);
        for (int i = 0; i < n; i++)
            if (strcmp(a[i], b[i]) != 0)
                rt_die(EXIT_INPUT, "model '%s' and data file '%s' differ in %s symbol %d ('%s' vs "
                       "'%s'): token ids would mean other symbols", model_path, sf->path, what, i,
                       a[i], b[i]);
    }
    model_symbols_free(&ms);
}

/* Bytes of the UTF-8 character starting with lead byte c (1 for anything else). */
static int utf8_len(unsigned char c) {
    return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

static int find_symbol(char *const *sym, int n, const char *s, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(sym[i]) == len && memcmp(sym[i], s, len) == 0) return i;
    return -1;
}

/* predict --input: sources as text, one per line, encoded with the model's symbols. */
static void predict_text(const char *model_path, const char *input, const char *out, int batch,
                         int beam, double alpha, int max_len) {
    ModelSymbols ms;
    if (!model_io_read_symbols(model_path, &ms) || ms.Vs == 0)
        cli_bad("input", "model '%s' is not a seq2seq model over source symbols (it has no "
                "source vocabulary); use --data", model_path);
    FILE *in = fopen(input, "rb");
    if (!in) cli_bad("input", "cannot open '%s': %s", input, strerror(errno));
    /* pass 1: every line encoded (errors name the line), kept in memory */
    int32_t *tok = NULL, *len = NULL;
    size_t ntok = 0, cap = 0, nlines = 0, lcap = 0;
    char *line = NULL;
    size_t lsize = 0;
    ssize_t got;
    int S = 1;
    while ((got = getline(&line, &lsize, in)) >= 0) {
        nlines++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        int n = 0;
        for (size_t at = 0; at < (size_t)got;) {
            size_t sl;
            if (ms.src_chars) {
                sl = (size_t)utf8_len((unsigned char)line[at]);
                if (at + sl > (size_t)got) sl = (size_t)got - at;
            } else {
                if (line[at] == ' ' || line[at] == '\t') {
                    at++;
                    continue;
                }
                sl = strcspn(line + at, " \t");
            }
            int id = find_symbol(ms.src, ms.Vs, line + at, sl);
            if (id < 0)
                rt_die(EXIT_INPUT, "--input: '%s' line %zu: symbol '%.*s' is not in the model's "
                       "source vocabulary (%d symbols)", input, nlines, (int)sl, line + at, ms.Vs);
            if (ntok == cap) {
                cap = cap ? 2 * cap : 4096;
                tok = realloc(tok, cap * sizeof *tok);
                if (!tok) rt_die(EXIT_RUNTIME, "out of memory reading '%s'", input);
            }
            tok[ntok++] = id;
            n++;
            at += sl;
        }
        if (n == 0)
            rt_die(EXIT_INPUT, "--input: '%s' line %zu is empty (one source per line)", input,
                   nlines);
        if (nlines > lcap) {
            lcap = lcap ? 2 * lcap : 1024;
            len = realloc(len, lcap * sizeof *len);
            if (!len) rt_die(EXIT_RUNTIME, "out of memory reading '%s'", input);
        }
        len[nlines - 1] = n;
        S = n > S ? n : S;
    }
    free(line);
    if (ferror(in)) rt_die(EXIT_INPUT, "--input: reading '%s' failed", input);
    fclose(in);
    if (nlines == 0) rt_die(EXIT_INPUT, "--input: '%s' holds no lines", input);
    Model m, mk;
    ModelState st, stk;
    Vocab none;
    model_io_load(model_path, &m, batch, 1, S, &none);
    if (beam > 1) {
        model_init_shared(&mk, &m, beam, 1);
        model_state_init(&stk, &mk, beam);
    }
    model_state_init(&st, &m, batch);
    if (max_len == 0) max_len = 2 * S + 10;
    FILE *f = fopen(out, "w");
    if (!f) cli_bad("output", "cannot open '%s' for writing", out);
    fprintf(f, "source\tprediction\tlogprob\n");
    int32_t *src = rt_calloc((size_t)S * batch, sizeof *src, "sources");
    int32_t *slen = rt_calloc((size_t)batch, sizeof *slen, "sources");
    int32_t *o = rt_malloc((size_t)batch * max_len * sizeof *o, "outputs");
    int32_t *olen = rt_malloc((size_t)batch * sizeof *olen, "outputs");
    double *lp = rt_malloc((size_t)batch * sizeof *lp, "outputs");
    uint8_t *reset = rt_malloc((size_t)batch, "reset flags");
    memset(reset, 1, (size_t)batch);
    size_t first_tok = 0;
    for (size_t l0 = 0; l0 < nlines; l0 += (size_t)batch) {
        int cnt = (int)(nlines - l0 < (size_t)batch ? nlines - l0 : (size_t)batch);
        size_t at = first_tok;
        int Sb = 1;
        for (int i = 0; i < batch; i++) {
            int r = i < cnt ? i : cnt - 1; /* padding rows repeat the last source */
            size_t start = first_tok;
            for (int k = 0; k < r; k++) start += (size_t)len[l0 + k];
            slen[i] = len[l0 + r];
            for (int t = 0; t < slen[i]; t++) src[(size_t)t * batch + i] = tok[start + t];
            Sb = slen[i] > Sb ? slen[i] : Sb;
            if (i < cnt) at = start + (size_t)slen[i];
        }
        Batch b;
        memset(&b, 0, sizeof b);
        b.B = batch;
        b.count = cnt;
        b.T = b.chunk_T = 1;
        b.reset = reset;
        b.src = src;
        b.src_len = slen;
        b.S = Sb;
        if (beam > 1) {
            for (int i = 0; i < cnt; i++) {
                double score;
                olen[i] = decode_beam(&mk, &stk, &b, i, alpha, max_len, o + (size_t)i * max_len,
                                      &score, &lp[i]);
            }
        } else {
            decode_greedy(&m, &st, &b, max_len, o, olen, lp);
        }
        for (int i = 0; i < cnt; i++) {
            for (int t = 0; t < slen[i]; t++)
                fprintf(f, "%s%s", !ms.src_chars && t ? " " : "", ms.src[src[(size_t)t * batch + i]]);
            fputc('\t', f);
            for (int t = 0; t < olen[i]; t++)
                fprintf(f, "%s%s", !ms.tgt_chars && t ? " " : "", ms.tgt[o[(size_t)i * max_len + t]]);
            fprintf(f, "\t%.6f\n", lp[i]);
        }
        first_tok = at;
    }
    if (fclose(f) != 0) cli_bad("output", "writing '%s' failed", out);
    printf("%s: %zu sources decoded (%s)\n", out, nlines, beam > 1 ? "beam" : "greedy");
    free(src);
    free(slen);
    free(o);
    free(olen);
    free(lp);
    free(reset);
    free(tok);
    free(len);
    if (beam > 1) {
        model_state_free(&stk);
        model_free(&mk);
    }
    model_state_free(&st);
    model_free(&m);
    vocab_free(&none);
    model_symbols_free(&ms);
}

int cmd_predict(int argc, char **argv) {
    char *model_path = NULL, *data_path = NULL, *split = "test", *out = NULL, *input = NULL;
    int batch = 32, beam = 1, max_len = 0;
    double alpha = 1.0;
    CliOption opts[] = {
        {"model", CLI_STR, &model_path, "DIR_OR_FILE", "trained sequence-task model", 1, 0, NULL, 1, 0},
        {"data", CLI_STR, &data_path, "DATA.h5", "sequence dataset (rnntrain prepare --csv or "
         "--pairs)", 1, 0, NULL, 0, 0},
        {"input", CLI_STR, &input, "FILE", "seq2seq instead of --data: sources as text, one per "
         "line (characters or space-separated symbols, as the model was trained)", 1, 0, NULL, 0, 0},
        {"split", CLI_STR, &split, "SPLIT", "train|valid|test (default test)", 1, 0,
         "valid|test|train", 0, 0},
        {"output", CLI_STR, &out, "FILE.csv", "where to write one row per sequence", 1, 0, NULL, 1, 0},
        {"batch", CLI_INT, &batch, "B", "sequences per forward pass (default 32)", 1, 1 << 20, NULL, 0, 0},
        {"beam", CLI_INT, &beam, "K", "seq2seq: beam width (1 = greedy)", 1, 4096, NULL, 0, 0},
        {"alpha", CLI_DOUBLE, &alpha, "A", "seq2seq beam: length normalisation, score = "
         "logp / (tokens)^A (0 = none, default 1)", 0, 10, NULL, 0, 0},
        {"max-len", CLI_INT, &max_len, "N", "seq2seq: longest output in symbols (0 = the data's "
         "longest target + 1)", 0, 1 << 20, NULL, 0, 0},
    };
    cli_parse("predict", "Write a sequence-task model's predictions for a split as CSV: classify "
              "index,label,predicted; regress index then predicted,actual per horizon; generate "
              "index,class,nearest-centroid class, then the generated values; seq2seq TSV "
              "source, prediction, its log-probability, its edit distance to the nearest "
              "reference.", opts,
              (int)(sizeof opts / sizeof *opts), argc, argv);
    if (!data_path == !input)
        rt_die(EXIT_USAGE, "predict: give either --data (a split of a dataset) or --input (text "
               "sources for a seq2seq model), not %s", input ? "both" : "neither");
    if (input) {
        if (dist_rank() == 0) predict_text(model_path, input, out, batch, beam, alpha, max_len);
        return 0;
    }
    if (!seq_is_sequence_file(data_path))
        cli_bad("data", "'%s' is not a sequence dataset (format rnntrain-sequences); for language "
                "models use 'rnntrain eval' and 'rnntrain sample'", data_path);
    Task task;
    task_open(&task, data_path, 0);
    Model m;
    Vocab none;
    model_io_load(model_path, &m, batch, task.sf.T, task.sf.S, &none);
    check_seq_model(&m, &task.sf, model_path);
    check_symbols(model_path, &task.sf);
    int s = seq_split_index(split);
    if (dist_rank() == 0) {
        FILE *f = fopen(out, "w");
        if (!f) cli_bad("output", "cannot open '%s' for writing", out);
        Metrics mt;
        metrics_init(&mt, &task);
        if (task.kind == TASK_SEQ2SEQ) { /* one TSV line per distinct source */
            fprintf(f, "source\tprediction\tlogprob\tedits\n");
            mt.decode = 1;
            mt.beam = beam;
            mt.alpha = alpha;
            mt.max_len = max_len;
            mt.pred_out = f;
        }
        task_evaluate(&m, &task, s, &mt, task.kind == TASK_SEQ2SEQ ? NULL : f);
        if (fclose(f) != 0) cli_bad("output", "writing '%s' failed", out);
        metrics_print(&task, &mt, split, 0);
        metrics_free(&mt);
    }
    model_free(&m);
    vocab_free(&none);
    task_close(&task);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    char *model_path = NULL, *data_path = NULL, *split = "valid", *precision = "fp32";
    int batch = 32, bptt = 64, json = 0, threads = 1, beam = 1;
    double alpha = 1.0;
    CliOption opts[] = {
        {"model", CLI_STR, &model_path, "DIR_OR_FILE", "trained model (directory or .h5)", 1, 0,
         NULL, 1, 0},
        {"data", CLI_STR, &data_path, "DATA.h5", "token dataset (rnntrain prepare)", 1, 0, NULL,
         1, 0},
        {"split", CLI_STR, &split, "SPLIT", "split to score: valid|test|train", 1, 0,
         "valid|test|train", 0, 0},
        {"batch", CLI_INT, &batch, "S", "carried-state streams the split is read as (default 32;"
         " a multiple of the rank count)", 1, 1 << 20, NULL, 0, 0},
        {"bptt", CLI_INT, &bptt, "T", "chunk length (default 64; state is carried, so it only "
         "changes speed)", 1, 1 << 20, NULL, 0, 0},
        {"threads", CLI_INT, &threads, "K", "threads per rank (default 1)", 1, 256, NULL, 0, 0},
        {"precision", CLI_STR, &precision, "P", "inputs of the matrix products: fp32 (default) "
         "or bf16 (AVX512-BF16; as rnntrain train)", 1, 0, "fp32|bf16", 0, 0},
        {"json", CLI_FLAG, &json, NULL, "print one JSON object: split, nats, bits, perplexity, "
         "tokens", 1, 0, NULL, 0, 0},
        {"beam", CLI_INT, &beam, "K", "seq2seq: decode with beam search of width K (1 = "
         "greedy) for the sequence and token error rates", 1, 4096, NULL, 0, 0},
        {"alpha", CLI_DOUBLE, &alpha, "A", "seq2seq beam: length normalisation, score = "
         "logp / (tokens)^A (0 = none, default 1)", 0, 10, NULL, 0, 0},
    };
    cli_parse("eval", "Mean cross-entropy of a model on a split: nats/token, bits/token, "
              "perplexity.", opts, (int)(sizeof opts / sizeof *opts), argc, argv);
    if (batch % dist_size() != 0)
        cli_bad("batch", "%d streams cannot be shared evenly by %d ranks", batch, dist_size());
    la_setup(threads);
    la_set_precision(config_precision(precision));
    Task task;
    task_open(&task, data_path, 0);
    Model m;
    Vocab vocab;
    int s = seq_split_index(split);
    model_io_load(model_path, &m, batch / dist_size(), task.lm ? bptt : task.sf.T,
                  task.lm ? 0 : task.sf.S, &vocab);
    if (task.lm) {
        check_vocab_match(&vocab, &task.tf, model_path);
    } else {
        check_seq_model(&m, &task.sf, model_path);
        check_symbols(model_path, &task.sf);
        if (task.sf.n[s] == 0)
            rt_die(EXIT_INPUT, "data file '%s': split '%s' has no sequences", data_path, split);
    }
    Metrics mt;
    metrics_init(&mt, &task);
    if (!task.lm && task.kind == TASK_SEQ2SEQ) {
        mt.decode = 1;
        mt.beam = beam;
        mt.alpha = alpha;
    }
    task_evaluate(&m, &task, s, &mt, NULL);
    metrics_print(&task, &mt, split, json);
    metrics_free(&mt);
    model_free(&m);
    vocab_free(&vocab);
    task_close(&task);
    return 0;
}
