/* A small sequence file for tests (classify or tag, feature inputs, lengths), whose
 * labels depend on the data so that it is learnable; fields can damage it on purpose. */
#ifndef RNNTRAIN_TEST_SEQFILE_H
#define RNNTRAIN_TEST_SEQFILE_H

#include <stdlib.h>

#include "h5util.h"
#include "rng.h"

typedef struct {
    int N, T, D, K, tag;
    float nan_at;    /* inputs[3] = this value when non-zero */
    int bad_length;  /* lengths[1] = this value when non-zero */
    int bad_label;   /* labels[2] = this value when non-zero */
    int wrong_shape; /* labels get N-1 rows */
} Spec;

/* Writes a small sequence file with lengths; labels depend on the data so it is learnable. */
static inline void write_seq_file(const char *path, const Spec *sp) {
    hid_t f = h5_create(path);
    h5_write_attr_str(f, "format", "rnntrain-sequences", path);
    h5_write_attr_int(f, "version", 1, path);
    h5_write_attr_str(f, "task", sp->tag ? "tag" : "classify", path);
    h5_write_attr_str(f, "inputs", "features", path);
    h5_write_attr_int(f, "steps", sp->T, path);
    h5_write_attr_int(f, "features", sp->D, path);
    h5_write_attr_int(f, "classes", sp->K, path);
    Rng r;
    rng_seed(&r, 11);
    static const char *const splits[] = {"train", "valid", "test"};
    for (int s = 0; s < 3; s++) {
        int N = sp->N;
        float *x = malloc(sizeof(float) * N * sp->T * sp->D);
        int32_t *len = malloc(sizeof(int32_t) * N), *lab = malloc(sizeof(int32_t) * N * sp->T);
        for (int i = 0; i < N; i++) {
            len[i] = 1 + (int32_t)(rng_u64(&r) % (uint64_t)sp->T);
            for (int t = 0; t < sp->T; t++) {
                double acc = 0;
                for (int d = 0; d < sp->D; d++) {
                    float v = (float)(rng_uniform(&r) - 0.5);
                    x[((size_t)i * sp->T + t) * sp->D + d] = v;
                    acc += v;
                }
                lab[(size_t)i * sp->T + t] = acc > 0 ? 1 : 0;
            }
            if (!sp->tag) lab[i] = lab[(size_t)i * sp->T + len[i] - 1];
        }
        if (sp->nan_at != 0.0f && s == 1) x[3] = sp->nan_at;
        if (sp->bad_length && s == 0) len[1] = sp->bad_length;
        if (sp->bad_label && s == 2) lab[2] = sp->bad_label;
        char name[64];
        uint64_t xd[3] = {(uint64_t)N, (uint64_t)sp->T, (uint64_t)sp->D};
        uint64_t ld[2] = {(uint64_t)(sp->wrong_shape && s == 0 ? N - 1 : N), (uint64_t)sp->T};
        uint64_t nd[1] = {(uint64_t)N};
        snprintf(name, sizeof name, "%s/inputs", splits[s]);
        h5_write_f32(f, name, x, 3, xd, path);
        snprintf(name, sizeof name, "%s/lengths", splits[s]);
        h5_write_i32(f, name, len, 1, nd, path);
        snprintf(name, sizeof name, "%s/labels", splits[s]);
        h5_write_i32(f, name, lab, sp->tag ? 2 : 1, ld, path);
        free(x);
        free(len);
        free(lab);
    }
    H5Fclose(f);
}

#endif
