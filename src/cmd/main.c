/* rnntrain: train recurrent language models with truncated BPTT over MPI ranks.
 * main dispatches to a subcommand; MPI is started once here and finished on return. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "dist.h"
#include "h5util.h"
#include "linalg.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: rnntrain COMMAND [options]   (rnntrain COMMAND --help for its options)\n\n"
            "commands:\n"
            "  prepare   text files -> HDF5 token dataset (train/valid/test splits)\n"
            "  train     train an RNN/LSTM/GRU language model (mpirun -np N for N ranks)\n"
            "  eval      nats/token, bits/token and perplexity of a model on a split\n"
            "  sample    generate text from a model\n"
            "  predict   a sequence-task model's predictions for a split, as CSV\n"
            "  info      what a data, model or checkpoint file holds (verifies checkpoints)\n\n"
            "exit status: 0 success, 1 runtime failure, 2 bad command line, 3 bad input file,\n"
            "             75 stopped by a signal after writing a checkpoint (resume to continue)\n");
}

/* Under a launcher, every rank must run the same command with the same arguments: a rank
 * that prints --help and exits, or runs eval beside train, would leave the others waiting
 * in their first collective forever. Compared before anything else (argv[0], the binary's
 * path, may differ between hosts). */
static void agree_on_command(int argc, char **argv) {
    uint64_t h = 1469598103934665603ULL;
    for (int i = 1; i < argc; i++) {
        for (const char *s = argv[i]; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        h = (h ^ 0xffu) * 1099511628211ULL; /* separator: "a b" differs from "ab" */
    }
    if (!dist_all_equal_u64(h))
        rt_die(EXIT_USAGE, "the ranks were started with different command lines (this rank: "
               "'%s%s%s'%s); every rank must run the same command with the same options",
               argc > 1 ? argv[1] : "", argc > 2 ? " " : "", argc > 2 ? argv[2] : "",
               argc > 3 ? " ..." : "");
}

static int run_command(int argc, char **argv);

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    agree_on_command(argc, argv);
    int rc = run_command(argc, argv);
    dist_finalize();
    return rc;
}

static int run_command(int argc, char **argv) {
    /* Large blocks (MPI's non-blocking reduction buffers, HDF5 conversion buffers) would
     * otherwise be mmap'ed and returned to the kernel every step; on VMs that return freed
     * pages to the host, first touch of fresh pages runs at ~330 MB/s, which cost ~50 ms of
     * a 330 ms step over TCP. Keep freed memory in the heap instead (peak RSS is unchanged:
     * the same blocks are reused). */
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
    la_choose_blas_core(argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        char core[256];
        la_core_text(core, sizeof core);
        printf("rnntrain %s\nOpenBLAS core: %s\n", RNNTRAIN_VERSION, core);
        return 0;
    }
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {{"prepare", cmd_prepare}, {"train", cmd_train}, {"eval", cmd_eval},
                    {"sample", cmd_sample}, {"info", cmd_info}, {"predict", cmd_predict}};
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (strcmp(cmd, commands[i].name) != 0) continue;
        h5_quiet();
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "rnntrain: error: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
