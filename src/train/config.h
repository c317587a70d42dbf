/* config: every option of rnntrain train in one object, each default written once (in
 * config.c), the option table and --help generated from it, validated against the rank
 * count, and the effective configuration as text (stored in model files and checkpoints,
 * compared across ranks). Tests fill one with train_config_defaults and train_config_finish
 * and drive the trainer in-process. */
#ifndef RNNTRAIN_CONFIG_H
#define RNNTRAIN_CONFIG_H

#include <stdint.h>

#include "linalg.h"
#include "model.h"

typedef struct {
    char *data, *out, *cell, *layers, *optim, *log, *init, *schedule, *ckpt_dir, *resume,
        *init_from, *precision;
    int hidden, embed, batch, bptt, threads, eval_batch, deterministic, micro_batch;
    int flush_denormals;   /* FTZ/DAZ: subnormal floats as zero */
    int64_t steps, seed, print_every, eval_every, warmup, decay_every, verify_every;
    int64_t ckpt_every, keep, max_bad;
    double ckpt_minutes, rollback_factor;
    double watchdog;       /* seconds a blocking collective may wait before the rank exits
                              EXIT_STALLED (another rank has stopped); 0 = off */
    double lr, clip, init_scale, min_lr, gamma, weight_decay, momentum, beta1, beta2, eps,
        rms_alpha;
    /* state space layers (0: the kind's default) */
    int d_state, d_conv, expand, dt_rank, ssm_blocks, no_conj_sym, bilinear, clip_eigs, s5_glu;
    int untie;
    char *pool;            /* classify: "last" step or "mean" over the steps */
    double dt_min, dt_max; /* mamba, s5: initial step range (0: 1e-3, 1e-1) */
    double ssm_lr;         /* S5's Lambda, B, log_step: this rate, no weight decay; 0 = --lr */
    double dropout;        /* after each layer (before the next and the head), training only */
    int bptt_step;         /* lm: update every bptt_step tokens, backpropagating bptt; 0 = bptt */
    char *encoder;         /* seq2seq: the encoder's layers (as --layers); "" = the decoder's */
    int bidirectional;     /* encoder layers run both ways */
    char *attention;       /* seq2seq: none, dot or general */
    int encoder_given, attention_given;
    /* set by train_config_finish */
    int bptt_given;        /* --bptt was given: sequence tasks cut sequences into chunks */
    ModelShape stack;      /* the layers (kinds and widths) of --model/--layers/--hidden, and
                              of the encoder (enc_L, enc_layer, bidirectional, attention): the
                              task keeps them for seq2seq data with a token source */
    int ranks, B_local, B_micro;
    char ckpt_path[4096], metrics_path[4096];
    char *text;            /* key=value lines */
} TrainConfig;

void train_config_defaults(TrainConfig *c);
/* Parses argv into c (defaults first); prints help and exits on --help; dies with status 2
 * naming the option on anything wrong; then train_config_finish. */
void train_config_parse(TrainConfig *c, int argc, char **argv);
/* Validates c against the rank count and fills the derived fields and the text. */
void train_config_finish(TrainConfig *c);
void train_config_free(TrainConfig *c);

/* --precision NAME ("fp32" or "bf16", as the option table allows) as a LaPrecision; bf16 on
 * a CPU without AVX512-BF16 stops with a usage error naming the option and the missing
 * feature (train and eval share it). */
LaPrecision config_precision(const char *name);

#endif
