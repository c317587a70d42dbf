/* info: what a data, model or checkpoint file holds (rnntrain info FILE). For checkpoints it
 * also verifies every checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "common.h"
#include "h5util.h"
#include "model_io.h"

static void print_attr_int(hid_t f, const char *name, const char *path) {
    if (h5_attr_exists(f, name))
        printf("  %-16s %lld\n", name, (long long)h5_read_attr_int(f, name, path));
}

static void print_attr_str(hid_t f, const char *name, const char *path) {
    char buf[256];
    if (!h5_attr_exists(f, name)) return;
    h5_read_attr_str(f, name, buf, sizeof buf, path);
    printf("  %-16s %s\n", name, buf);
}

/* The model a model file or checkpoint describes: each layer with its settings, carried
 * state and parameter count; the head. */
static void print_layers(hid_t f, const char *path) {
    ModelShape s;
    Vocab vocab;
    model_io_read_header(f, path, &s, &vocab);
    free(vocab.symbols);
    Model m;
    model_init(&m, s, 1, 1);
    /* every tensor present, of its shape (a clear error naming a missing one) */
    model_io_read_params(f, "params", &m.params, m.params.value, path);
    if (m.has_enc) { /* seq2seq: the encoder's layers (each direction), the attention */
        for (int k = 0; k < m.enc.L; k++)
            for (int d = 0; d < 1 + m.enc.bidir; d++) {
                const Layer *l = d ? &m.enc.rev[k] : &m.enc.fwd[k];
                size_t n = 0;
                for (int i = l->param_first; i < l->param_first + l->param_count; i++)
                    n += m.params.tensors[i].size;
                printf("  encoder %-8d %s%s width %d, input %d, %zu parameters\n", k,
                       l->kind->name, d ? " (reverse)" : "", l->H, l->D, n);
            }
        printf("  %-16s %s over %d source symbols (sources up to %d), hand-over width %d\n",
               "attention", attention_name((AttentionKind)s.attention), s.enc_vocab,
               s.enc_steps, s.C);
    }
    for (int k = 0; k < s.L; k++) {
        const Layer *l = &m.layers[k];
        size_t n = 0;
        for (int i = l->param_first; i < l->param_first + l->param_count; i++)
            n += m.params.tensors[i].size;
        if (m.bidir)
            for (int i = m.rev[k].param_first; i < m.rev[k].param_first + m.rev[k].param_count; i++)
                n += m.params.tensors[i].size;
        printf("  layer %-10d %s%s width %d, input %d, %zu parameters |", k, l->kind->name,
               m.bidir ? " bidirectional" : "", l->H, l->D, n);
        LayerOpts o = l->opt;
        for (const LayerOptField *of = layer_opt_fields; of->name; of++)
            if (layer_opt_used(of, l->kind)) printf(" %s %d", of->name, *layer_opt_ptr(&o, of));
        printf(" | state");
        for (int q = 0; q < l->kind->nstates; q++)
            printf(" %s (%d)", l->kind->state_names[q], l->kind->state_width(l, q));
        printf("\n");
    }
    printf("  %-16s %s%s, %zu parameters in all\n", "head",
           m.norm_f >= 0 ? "final RMSNorm, " : "",
           m.head_w < 0 ? "tied to the embedding" : m.head_b < 0 ? "own matrix, no bias" : "linear",
           m.params.total);
    model_free(&m);
}

/* FILE as given, or for a directory (a run's output) DIR/model.h5; caller frees. */
static char *info_path(const char *arg) {
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) return model_io_path(arg);
    return rt_strdup(arg);
}

int cmd_info(int argc, char **argv) {
    CliOption opts[1];
    if (argc == 2 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0) {
        char *resolved = info_path(argv[1]);
        const char *path = resolved;
        hid_t f = h5_open_read(path, "file");
        char fmt[64];
        h5_read_attr_str(f, "format", fmt, sizeof fmt, path);
        printf("%s: %s version %lld\n", path, fmt, (long long)h5_read_attr_int(f, "version", path));
        static const char *const ints[] = {"vocab_size", "layers", "hidden", "embed", "step",
                                           "epoch", "cursor", "skipped", "global_streams", "bptt", "bptt_step",
                                           "train_tokens", "ranks", "optim_step"};
        print_attr_str(f, "vocab_kind", path);
        print_attr_str(f, "stack", path);
        print_attr_str(f, "cell", path);
        print_attr_str(f, "optim", path);
        for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) print_attr_int(f, ints[i], path);
        if (strcmp(fmt, "rnntrain-tokens") == 0) {
            static const char *const splits[] = {"train", "valid", "test"};
            for (int s = 0; s < 3; s++) {
                uint64_t d[8];
                h5_dataset_shape(f, splits[s], d, path);
                printf("  %-16s %llu tokens\n", splits[s], (unsigned long long)d[0]);
            }
        }
        if (strcmp(fmt, "rnntrain-model") == 0 || strcmp(fmt, "rnntrain-checkpoint") == 0)
            print_layers(f, path);
        if (h5_attr_exists(f, "config")) {
            char config[65536];
            h5_read_attr_str(f, "config", config, sizeof config, path);
            printf("  config:\n");
            for (char *line = strtok(config, "\n"); line; line = strtok(NULL, "\n"))
                printf("    %s\n", line);
        }
        H5Fclose(f);
        if (strcmp(fmt, "rnntrain-checkpoint") == 0) {
            char why[512];
            if (ckpt_verify(path, why, sizeof why) != 0) {
                printf("  checksums        FAILED: %s\n", why);
                fflush(stdout);
                fprintf(stderr, "rnntrain: error: checkpoint '%s' fails verification: %s\n",
                        path, why);
                free(resolved);
                return EXIT_INPUT;
            }
            printf("  checksums        all verified\n");
        }
        free(resolved);
        return 0;
    }
    cli_parse("info", "Print what an rnntrain data, model or checkpoint file holds: rnntrain info "
              "FILE", opts, 0, argc > 1 ? 2 : argc, argv);
    rt_die(EXIT_USAGE, "info: expected exactly one FILE (see 'rnntrain info --help')");
}
