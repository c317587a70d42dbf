#include "eval.h"

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

EvalResult eval_split(Model *m, const TokenFile *tf, const char *split, int S) {
    int N = dist_size();
    REQUIRE(S % N == 0 && m->B == S / N);
    StreamReader sr;
    stream_init(&sr, tf, split, S, dist_rank() * m->B, m->B, m->Tmax, 0);
    model_reset_state(m);
    double sums[2] = {0.0, 0.0};
    for (int64_t cursor = 0;; cursor += m->Tmax) {
        int T = stream_read(&sr, cursor);
        if (T == 0) break;
        model_forward(m, sr.inputs, T);
        sums[0] += model_loss(m, sr.targets, T, 0.0f, 0);
        sums[1] += (double)T * m->B;
        model_carry(m, T);
    }
    stream_free(&sr);
    dist_sum_f64(sums, 2);
    EvalResult r = {sums[0], (int64_t)sums[1]};
    return r;
}

double eval_nats(EvalResult r) { return r.tokens > 0 ? r.nats_sum / (double)r.tokens : NAN; }

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

int cmd_eval(int argc, char **argv) {
    char *model_path = NULL, *data_path = NULL, *split = "valid";
    int batch = 32, bptt = 64, json = 0, threads = 1;
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
    };
    cli_parse("eval", "Mean cross-entropy of a model on a split: nats/token, bits/token, "
              "perplexity.", opts, (int)(sizeof opts / sizeof *opts), argc, argv);
    if (batch % dist_size() != 0)
        cli_bad("batch", "%d streams cannot be shared evenly by %d ranks", batch, dist_size());
    la_setup(threads);
    TokenFile tf;
    data_open(&tf, data_path);
    Model m;
    Vocab vocab;
    model_io_load(model_path, &m, batch / dist_size(), bptt, &vocab);
    check_vocab_match(&vocab, &tf, model_path);
    EvalResult r = eval_split(&m, &tf, split, batch);
    double nats = eval_nats(r), bits = nats / log(2.0);
    if (dist_rank() == 0) {
        if (json)
            printf("{\"split\": \"%s\", \"nats\": %.9g, \"bits\": %.9g, \"perplexity\": %.9g, "
                   "\"tokens\": %lld}\n", split, nats, bits, exp(nats), (long long)r.tokens);
        else
            printf("%s: %.4f nats/token | %.4f bits/token | perplexity %.3f | %lld tokens\n",
                   split, nats, bits, exp(nats), (long long)r.tokens);
    }
    model_free(&m);
    vocab_free(&vocab);
    data_close(&tf);
    return 0;
}
