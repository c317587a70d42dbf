#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "common.h"
#include "dist.h"
#include "h5util.h"
#include "model_io.h"


/* Every rank's streams into glob (rank 0, all global streams): rank r holds streams
 * [r*B_local, (r+1)*B_local), so the gathers in rank order are each tensor's rows. */
static void gather_state(const ModelState *mine, ModelState *glob) {
    for (int k = 0; k < mine->L; k++)
        for (int s = 0; s < mine->nstates[k]; s++)
            dist_gather_f32(mine->t[k][s], (size_t)mine->B * mine->width[k][s],
                            glob ? glob->t[k][s] : NULL);
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static void write_f32_checked(hid_t f, const char *name, const float *buf, int nd,
                              const uint64_t *dims, const char *path) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= dims[i];
    h5_write_f32(f, name, buf, nd, dims, path);
    h5_set_checksum(f, name, buf, n * sizeof(float), path);
}

static int is_ckpt_name(const char *name, long long *step) {
    char tail[8];
    return sscanf(name, "ckpt-%lld.%3s", step, tail) == 2 && strcmp(tail, "h5") == 0 &&
           strlen(name) > 8;
}

/* Checkpoints in dir, newest first. */
static int list_ckpts(const char *dir, char ***names_out) {
    DIR *d = opendir(dir);
    *names_out = NULL;
    if (!d) return 0;
    char **names = NULL;
    long long *steps = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long st;
        if (!is_ckpt_name(e->d_name, &st)) continue;
        names = rt_realloc(names, (size_t)(n + 1) * sizeof *names, "checkpoint list");
        steps = rt_realloc(steps, (size_t)(n + 1) * sizeof *steps, "checkpoint list");
        names[n] = rt_strdup(e->d_name);
        steps[n++] = st;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort, newest first */
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            long long ts = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = ts;
            char *tn = names[j];
            names[j] = names[j - 1];
            names[j - 1] = tn;
        }
    free(steps);
    *names_out = names;
    return n;
}

void ckpt_save(const char *dir, int keep, const Model *m, const ModelState *st, const Optim *o,
               const Progress *p, const RunShape *rs, const Vocab *vocab, const char *config) {
    const Params *pa = &m->params;
    ModelState glob;
    REQUIRE(st->B * dist_size() == rs->global_streams);
    int one_rank = dist_size() == 1; /* the local state is the global one: no copy */
    if (one_rank)
        glob = *st;
    else if (dist_rank() == 0)
        model_state_init(&glob, m, rs->global_streams);
    if (!one_rank) gather_state(st, dist_rank() == 0 ? &glob : NULL);
    if (dist_rank() != 0) return;
    /* never write NaN or Inf: the stability logic skips such updates, so this is a bug */
    int state_finite = 1;
    for (int k = 0; k < glob.L; k++)
        for (int t = 0; t < glob.nstates[k]; t++)
            state_finite &= all_finite(glob.t[k][t], (size_t)glob.B * glob.width[k][t]);
    if (!all_finite(pa->value, pa->total) || !state_finite)
        rt_die(EXIT_RUNTIME, "refusing to write a checkpoint at step %lld: parameters or state "
               "hold NaN/Inf", (long long)p->step);
    /* With --keep K >= 2 and K checkpoints present, the oldest goes first: K-1 complete
     * checkpoints stay on disk throughout, and the new file reuses its freed pages (a
     * checkpoint into fresh page-cache pages was 3x slower on the VMs measured). */
    char **names;
    int n = list_ckpts(dir, &names);
    for (int i = 0; i < n; i++) {
        if (keep >= 2 && i >= keep - 1) {
            char old[4400];
            snprintf(old, sizeof old, "%s/%s", dir, names[i]);
            unlink(old);
        }
        free(names[i]);
    }
    free(names);
    /* the temporary file is DIR/.ckpt-STEP.h5.tmp.PID, what ckpt_remove_stale removes */
    char final[4096];
    snprintf(final, sizeof final, "%s/ckpt-%010lld.h5", dir, (long long)p->step);
    AtomicFile a;
    atomic_begin(&a, final, "checkpoint");
    const char *tmp = a.tmp;
    hid_t f = h5_create_checksummed(tmp);
    model_io_write_header(f, "rnntrain-checkpoint", m, vocab, config, 1, tmp);
    h5_write_attr_int(f, "step", p->step, tmp);
    h5_write_attr_int(f, "epoch", p->epoch, tmp);
    h5_write_attr_int(f, "cursor", p->cursor, tmp);
    h5_write_attr_int(f, "skipped", p->skipped, tmp);
    h5_write_attr_double(f, "lr_scale", p->lr_scale, tmp);
    h5_write_attr_int(f, "global_streams", rs->global_streams, tmp);
    h5_write_attr_int(f, "bptt", rs->bptt, tmp);
    if (rs->bptt_step != rs->bptt) h5_write_attr_int(f, "bptt_step", rs->bptt_step, tmp);
    h5_write_attr_int(f, "train_tokens", rs->train_tokens, tmp);
    h5_write_attr_int(f, "ranks", dist_size(), tmp);
    h5_write_attr_str(f, "optim", optim_kind_name(o->kind), tmp);
    h5_write_attr_int(f, "optim_step", o->step, tmp);
    model_io_write_params(f, "params", pa, pa->value, 1, tmp);
    model_io_write_params(f, "optim/state1", pa, pa->state1, 1, tmp);
    model_io_write_params(f, "optim/state2", pa, pa->state2, 1, tmp);
    /* state/l{k}/<name>: (global streams, width) per named state tensor of each layer */
    for (int k = 0; k < glob.L; k++)
        for (int t = 0; t < glob.nstates[k]; t++) {
            char name[96];
            snprintf(name, sizeof name, "state/l%d/%s", k, m->layers[k].kind->state_names[t]);
            uint64_t sd[2] = {(uint64_t)glob.B, (uint64_t)glob.width[k][t]};
            write_f32_checked(f, name, glob.t[k][t], 2, sd, tmp);
        }
    h5_close_file(f, tmp);
    atomic_commit(&a);
    if (!one_rank) model_state_free(&glob);
    n = list_ckpts(dir, &names);
    for (int i = 0; i < n; i++) {
        if (keep > 0 && i >= keep) {
            char old[4400];
            snprintf(old, sizeof old, "%s/%s", dir, names[i]);
            unlink(old);
        }
        free(names[i]);
    }
    free(names);
}

void ckpt_remove_stale(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ".ckpt-", 6) != 0 || !strstr(e->d_name, ".h5.tmp.")) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            fprintf(stderr, "rnntrain: removed '%s', an unfinished checkpoint of an earlier "
                    "run\n", path);
    }
    closedir(d);
}

int ckpt_verify(const char *path, char *why, size_t size) {
    const char *odd = rt_not_regular(path);
    if (odd) {
        snprintf(why, size, "is %s, not a regular file", odd);
        return -1;
    }
    if (access(path, R_OK) != 0) {
        snprintf(why, size, "cannot read it (%s)", strerror(errno));
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        snprintf(why, size, "not an HDF5 file (truncated or overwritten?)");
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        snprintf(why, size, "%s", h5_locked_by_other(path)
                                      ? "another process holds it open for writing (file lock)"
                                      : "HDF5 cannot open it (truncated or corrupted)");
        return -1;
    }
    int rc = -1;
    char fmt[64] = "";
    int64_t version = -1;
    if (H5Aexists(f, "format") > 0) {
        hid_t a = H5Aopen(f, "format", H5P_DEFAULT), t = H5Aget_type(a);
        hid_t sp = H5Aget_space(a);
        hssize_t count = H5Sget_simple_extent_npoints(sp);
        H5Sclose(sp);
        if (count == 1 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) <= 0 &&
            H5Tget_size(t) < sizeof fmt) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5Tget_size(t));
            if (H5Aread(a, mt, fmt) < 0) fmt[0] = 0;
            H5Tclose(mt);
        }
        H5Tclose(t);
        H5Aclose(a);
    }
    if (H5Aexists(f, "version") > 0) {
        hid_t a = H5Aopen(f, "version", H5P_DEFAULT);
        if (!attr_is_one_integer(a) || H5Aread(a, H5T_NATIVE_INT64, &version) < 0) version = -1;
        H5Aclose(a);
    }
    if (strcmp(fmt, "rnntrain-checkpoint") != 0)
        snprintf(why, size, "format is '%s', expected 'rnntrain-checkpoint'", fmt);
    else if (version < 1 || version > MODEL_IO_VERSION)
        snprintf(why, size, "checkpoint format version %lld, this rnntrain reads versions 1 to %d",
                 (long long)version, MODEL_IO_VERSION);
    else
        rc = h5_verify_checksums(f, why, size);
    H5Fclose(f);
    return rc;
}

char *ckpt_find(const char *dir, const char *resume) {
    char chosen[4400] = "";
    int64_t status = 0; /* 0 none, 1 found, -1 error */
    if (dist_rank() == 0) {
        char why[512];
        if (strcmp(resume, "auto") != 0) {
            if (ckpt_verify(resume, why, sizeof why) != 0)
                rt_die(EXIT_INPUT, "--resume: checkpoint '%s' is unusable: %s", resume, why);
            snprintf(chosen, sizeof chosen, "%s", resume);
            status = 1;
        } else {
            char **names;
            int n = list_ckpts(dir, &names);
            for (int i = 0; i < n; i++) {
                char path[4400];
                snprintf(path, sizeof path, "%s/%s", dir, names[i]);
                if (status == 0) {
                    /* a writer's lock is a live process (flock ends with it): another run in
                     * this directory, not damage to fall back from */
                    if (h5_locked_by_other(path))
                        rt_die(EXIT_INPUT, "--resume auto: checkpoint '%s' is held open for "
                               "writing by another process (another run in '%s'?); not "
                               "resuming beside it: stop that process or wait for it", path, dir);
                    if (ckpt_verify(path, why, sizeof why) == 0) {
                        snprintf(chosen, sizeof chosen, "%s", path);
                        status = 1;
                    } else {
                        fprintf(stderr, "rnntrain: warning: checkpoint '%s' is damaged (%s); "
                                "falling back to an older one\n", path, why);
                    }
                }
                free(names[i]);
            }
            free(names);
            if (n > 0 && status == 0)
                rt_die(EXIT_INPUT, "--resume auto: none of the %d checkpoints in '%s' is usable "
                       "(see the warnings above); move them away to start afresh", n, dir);
        }
    }
    dist_bcast_bytes(&status, sizeof status);
    dist_bcast_bytes(chosen, sizeof chosen);
    return status == 1 ? rt_strdup(chosen) : NULL;
}

/* A counter attribute in [0, most]. */
static int64_t attr_count(hid_t f, const char *name, int64_t most, const char *path) {
    int64_t v = h5_read_attr_int(f, name, path);
    if (v < 0 || v > most)
        rt_die(EXIT_INPUT, "checkpoint '%s': %s is %lld, expected 0 to %lld", path, name,
               (long long)v, (long long)most);
    return v;
}

static void expect_int(hid_t f, const char *attr, int64_t want, const char *option,
                       const char *path) {
    int64_t have = h5_read_attr_int(f, attr, path);
    if (have != want)
        rt_die(EXIT_USAGE, "checkpoint '%s' has %s=%lld but this run has %s %lld; resume with "
               "the same value", path, attr, (long long)have, option, (long long)want);
}

/* Version 1: state/h and state/c, (L, global streams, H) for a uniform stack. */
static void read_state_v1(hid_t f, const char *path, ModelState *st, int G, int first) {
    int H = st->width[0][0];
    size_t plane = (size_t)st->L * G * H;
    float *all = rt_malloc(plane * sizeof(float), "state");
    uint64_t sd[3] = {(uint64_t)st->L, (uint64_t)G, (uint64_t)H};
    for (int part = 0; part < st->nstates[0]; part++) {
        h5_read_f32(f, part == 0 ? "state/h" : "state/c", all, 3, sd, path);
        for (int k = 0; k < st->L; k++)
            memcpy(st->t[k][part], all + ((size_t)k * G + first) * H,
                   (size_t)st->B * H * sizeof(float));
    }
    free(all);
}

/* Version 2: state/l{k}/<name>, (global streams, width). */
static void read_state_v2(hid_t f, const char *path, const Model *m, ModelState *st, int G,
                          int first) {
    for (int k = 0; k < st->L; k++)
        for (int t = 0; t < st->nstates[k]; t++) {
            char name[96];
            int w = st->width[k][t];
            snprintf(name, sizeof name, "state/l%d/%s", k, m->layers[k].kind->state_names[t]);
            float *all = rt_malloc((size_t)G * w * sizeof(float), "state");
            uint64_t sd[2] = {(uint64_t)G, (uint64_t)w};
            h5_read_f32(f, name, all, 2, sd, path);
            memcpy(st->t[k][t], all + (size_t)first * w, (size_t)st->B * w * sizeof(float));
            free(all);
        }
}

void ckpt_load(const char *path, Model *m, ModelState *st, Optim *o, Progress *p,
               const RunShape *rs) {
    hid_t f = h5_open_read(path, "checkpoint");
    const ModelShape *s = &m->shape;
    ModelShape fs;
    Vocab fv;
    int64_t version = model_io_read_header(f, path, &fs, &fv);
    free(fv.symbols);
    if (!model_shape_equal(&fs, s)) {
        char have[700], want[700];
        model_io_shape_text(&fs, have, sizeof have);
        model_io_shape_text(s, want, sizeof want);
        rt_die(EXIT_USAGE, "checkpoint '%s' holds a %s model but this run configures %s; resume "
               "with the same --model, --layers, --hidden and --embed", path, have, want);
    }
    expect_int(f, "global_streams", rs->global_streams, "--batch", path);
    expect_int(f, "bptt", rs->bptt, "--bptt", path);
    int64_t step_tokens = h5_attr_exists(f, "bptt_step") ? h5_read_attr_int(f, "bptt_step", path)
                                                          : rs->bptt;
    if (step_tokens != rs->bptt_step)
        rt_die(EXIT_USAGE, "checkpoint '%s' updated every %lld tokens but this run has "
               "--bptt-step %d; resume with the same value", path, (long long)step_tokens,
               rs->bptt_step);
    expect_int(f, "train_tokens", rs->train_tokens, "a train split (tokens) of", path);
    char buf[64];
    h5_read_attr_str(f, "optim", buf, sizeof buf, path);
    if (strcmp(buf, optim_kind_name(o->kind)) != 0)
        rt_die(EXIT_USAGE, "checkpoint '%s' was trained with --optim %s but this run has --optim "
               "%s", path, buf, optim_kind_name(o->kind));
    Params *pa = &m->params;
    model_io_read_params(f, "params", pa, pa->value, path);
    model_io_read_params(f, "optim/state1", pa, pa->state1, path);
    model_io_read_params(f, "optim/state2", pa, pa->state2, path);
    /* counters far below overflow: a checkpoint's are at most its steps (2^50 is years) */
    const int64_t most = (int64_t)1 << 50;
    o->step = attr_count(f, "optim_step", most, path);
    p->step = attr_count(f, "step", most, path);
    p->epoch = attr_count(f, "epoch", most, path);
    p->skipped = attr_count(f, "skipped", most, path);
    p->lr_scale = h5_read_attr_double(f, "lr_scale", path);
    if (!(p->lr_scale > 0.0 && p->lr_scale <= 1.0))
        rt_die(EXIT_INPUT, "checkpoint '%s': lr_scale is %g, expected a factor in (0, 1]", path,
               p->lr_scale);
    int G = rs->global_streams, first = dist_rank() * st->B;
    REQUIRE(st->B * dist_size() == G);
    if (version >= 2) {
        p->cursor = attr_count(f, "cursor", most, path);
        read_state_v2(f, path, m, st, G, first);
    } else { /* one cursor per stream, all equal */
        int64_t *cursor = rt_malloc((size_t)G * sizeof(int64_t), "cursors");
        uint64_t cd[1] = {(uint64_t)G};
        h5_read_i64(f, "data/cursor", cursor, 1, cd, path);
        for (int g = 1; g < G; g++)
            if (cursor[g] != cursor[0])
                rt_die(EXIT_INPUT, "checkpoint '%s': stream cursors differ (%lld vs %lld)", path,
                       (long long)cursor[g], (long long)cursor[0]);
        p->cursor = cursor[0];
        free(cursor);
        read_state_v1(f, path, st, G, first);
    }
    H5Fclose(f);
}

int ckpt_count(const char *dir, char *newest, size_t size) {
    char **names;
    int n = list_ckpts(dir, &names), files = 0;
    if (newest && size) newest[0] = 0;
    for (int i = 0; i < n; i++) { /* regular files only (a directory so named is not one) */
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!rt_not_regular(path)) {
            if (files++ == 0 && newest && size) snprintf(newest, size, "%s", names[i]);
        }
        free(names[i]);
    }
    free(names);
    return files;
}

void config_value(const char *text, const char *key, char *value, size_t size) {
    size_t kl = strlen(key);
    value[0] = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=') continue;
        const char *v = p + kl + 1, *end = strchr(v, '\n');
        size_t n = end ? (size_t)(end - v) : strlen(v);
        snprintf(value, size, "%.*s", (int)(n < size ? n : size - 1), v);
        return;
    }
}

void ckpt_config_value(const char *path, const char *key, char *value, size_t size) {
    hid_t f = h5_open_read(path, "checkpoint");
    value[0] = 0;
    if (h5_attr_exists(f, "config")) {
        char *text = rt_malloc(65536, "configuration");
        h5_read_attr_str(f, "config", text, 65536, path);
        config_value(text, key, value, size);
        free(text);
    }
    H5Fclose(f);
}
