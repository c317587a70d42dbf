/* rnntrain eval and rnntrain predict: a trained model over a split, through the one
 * evaluation loop of every task (tasks/metrics.h). */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
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

int cmd_predict(int argc, char **argv) {
    char *model_path = NULL, *data_path = NULL, *split = "test", *out = NULL;
    int batch = 32, beam = 1, max_len = 0;
    double alpha = 1.0;
    CliOption opts[] = {
        {"model", CLI_STR, &model_path, "DIR_OR_FILE", "trained sequence-task model", 1, 0, NULL, 1, 0},
        {"data", CLI_STR, &data_path, "DATA.h5", "sequence dataset (rnntrain prepare --csv)", 1, 0,
         NULL, 1, 0},
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
    if (!seq_is_sequence_file(data_path))
        cli_bad("data", "'%s' is not a sequence dataset (format rnntrain-sequences); for language "
                "models use 'rnntrain eval' and 'rnntrain sample'", data_path);
    Task task;
    task_open(&task, data_path, 0);
    Model m;
    Vocab none;
    model_io_load(model_path, &m, batch, task.sf.T, task.sf.S, &none);
    check_seq_model(&m, &task.sf, model_path);
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
    char *model_path = NULL, *data_path = NULL, *split = "valid";
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
        {"threads", CLI_INT, &threads, "K", "BLAS threads per rank (default 1)", 1, 256, NULL, 0,
         0},
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
