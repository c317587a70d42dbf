/* sample: generate text from a trained model (rnntrain sample). The prime text is fed one
 * token at a time with the state carried; then each next token is drawn from
 * softmax(logits / temperature), restricted to the top-k tokens when k > 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "dist.h"
#include "model_io.h"

/* Draws a token from the logits (V,) with temperature and top-k. */
static int32_t draw(const float *logits, int V, double temperature, int top_k, double *prob,
                    Rng *rng) {
    double zmax = -INFINITY;
    for (int v = 0; v < V; v++) zmax = logits[v] > zmax ? logits[v] : zmax;
    for (int v = 0; v < V; v++) prob[v] = exp(((double)logits[v] - zmax) / temperature);
    if (top_k > 0 && top_k < V) {
        /* keep the k largest: find the k-th largest weight by partial selection */
        double *sorted = rt_malloc((size_t)V * sizeof *sorted, "top-k");
        memcpy(sorted, prob, (size_t)V * sizeof *sorted);
        for (int i = 0; i < top_k; i++) {
            int best = i;
            for (int j = i + 1; j < V; j++)
                if (sorted[j] > sorted[best]) best = j;
            double t = sorted[i];
            sorted[i] = sorted[best];
            sorted[best] = t;
        }
        double kth = sorted[top_k - 1];
        int kept = 0;
        for (int v = 0; v < V; v++) {
            if (prob[v] < kth || kept == top_k)
                prob[v] = 0.0;
            else
                kept++;
        }
        free(sorted);
    }
    double total = 0.0;
    for (int v = 0; v < V; v++) total += prob[v];
    double u = rng_uniform(rng) * total, acc = 0.0;
    int32_t last = 0;
    for (int v = 0; v < V; v++) {
        if (prob[v] <= 0.0) continue;
        acc += prob[v];
        last = v;
        if (u < acc) return v;
    }
    return last;
}

int cmd_sample(int argc, char **argv) {
    char *model_path = NULL, *prime = "\n";
    int64_t length = 500, seed = 1;
    double temperature = 1.0;
    int top_k = 0;
    CliOption opts[] = {
        {"model", CLI_STR, &model_path, "DIR_OR_FILE", "trained model (directory or .h5)", 1, 0,
         NULL, 1, 0},
        {"prime", CLI_STR, &prime, "TEXT", "text to start from (default a newline)", 1, 0, NULL,
         0, 0},
        {"length", CLI_I64, &length, "N", "tokens to generate (default 500)", 0, 1e12, NULL, 0, 0},
        {"temperature", CLI_DOUBLE, &temperature, "X", "softmax temperature > 0 (default 1)",
         1e-6, 1e6, NULL, 0, 0},
        {"top-k", CLI_INT, &top_k, "K", "sample among the K most likely tokens; 0 = all "
         "(default 0)", 0, 1 << 30, NULL, 0, 0},
        {"seed", CLI_I64, &seed, "S", "random seed (default 1)", 0, 9e15, NULL, 0, 0},
    };
    cli_parse("sample", "Generate text from a trained model, starting from --prime.", opts,
              (int)(sizeof opts / sizeof *opts), argc, argv);
    if (strlen(prime) == 0) cli_bad("prime", "expected at least one character, found ''");
    Model m;
    Vocab vocab;
    model_io_load(model_path, &m, 1, 1, 0, &vocab);
    if (vocab.V == 0)
        cli_bad("model", "'%s' is a sequence-task model, not a language model; use 'rnntrain "
                "predict' for its outputs", model_path);
    size_t n = strlen(prime), bad = 0;
    int32_t *tokens = rt_malloc(n * sizeof(int32_t), "prime tokens");
    int64_t count = vocab_encode(&vocab, prime, n, tokens, &bad);
    if (count < 0)
        cli_bad("prime", "the character at byte %zu of the prime text is not in the model's "
                "vocabulary (%d %s)", bad, vocab.V, vocab_kind_name(vocab.kind));
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    double *prob = rt_malloc((size_t)vocab.V * sizeof *prob, "probabilities");
    if (dist_rank() == 0) fwrite(prime, 1, n, stdout);
    ModelState st;
    model_state_init(&st, &m, 1);
    for (int64_t i = 0; i < count; i++) model_step(&m, &st, &tokens[i]);
    for (int64_t i = 0; i < length; i++) {
        int32_t tok = draw(m.logits, vocab.V, temperature, top_k, prob, &rng);
        char buf[4];
        int len = vocab_decode(&vocab, tok, buf);
        if (dist_rank() == 0) fwrite(buf, 1, (size_t)len, stdout);
        model_step(&m, &st, &tok);
    }
    if (dist_rank() == 0) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    model_state_free(&st);
    free(prob);
    free(tokens);
    vocab_free(&vocab);
    model_free(&m);
    return 0;
}
