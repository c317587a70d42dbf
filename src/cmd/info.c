/* info: what a data, model or checkpoint file holds (rnntrain info FILE). For checkpoints it
 * also verifies every checksum. */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "common.h"
#include "h5util.h"

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

int cmd_info(int argc, char **argv) {
    CliOption opts[1];
    if (argc == 2 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0) {
        const char *path = argv[1];
        hid_t f = h5_open_read(path, "file");
        char fmt[64];
        h5_read_attr_str(f, "format", fmt, sizeof fmt, path);
        printf("%s: %s version %lld\n", path, fmt, (long long)h5_read_attr_int(f, "version", path));
        static const char *const ints[] = {"vocab_size", "layers", "hidden", "embed", "step",
                                           "epoch", "cursor", "skipped", "global_streams", "bptt",
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
                return EXIT_INPUT;
            }
            printf("  checksums        all verified\n");
        }
        return 0;
    }
    cli_parse("info", "Print what an rnntrain data, model or checkpoint file holds: rnntrain info "
              "FILE", opts, 0, argc > 1 ? 2 : argc, argv);
    rt_die(EXIT_USAGE, "info: expected exactly one FILE (see 'rnntrain info --help')");
}
