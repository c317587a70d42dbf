#include "model_io.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic.h"
#include "common.h"
#include "h5util.h"

static int tensor_dims(const ParamTensor *t, uint64_t *dims) {
    dims[0] = (uint64_t)t->rows;
    dims[1] = (uint64_t)t->cols;
    return t->cols > 0 ? 2 : 1;
}

/* Each tensor of p's layout as group/<name> in f, written from or read into base. */
static void params_io(hid_t f, const char *group, const Params *p, float *base, int write,
                      int checksums, const char *path) {
    for (int i = 0; i < p->count; i++) {
        const ParamTensor *t = &p->tensors[i];
        char name[256];
        uint64_t dims[2];
        snprintf(name, sizeof name, "%s/%s", group, t->name);
        int nd = tensor_dims(t, dims);
        if (!write) {
            h5_read_f32(f, name, base + t->offset, nd, dims, path);
            continue;
        }
        h5_write_f32(f, name, base + t->offset, nd, dims, path);
        if (checksums) h5_set_checksum(f, name, base + t->offset, t->size * sizeof(float), path);
    }
}

void model_io_write_params(hid_t f, const char *group, const Params *p, const float *base,
                           int checksums, const char *path) {
    params_io(f, group, p, (float *)base, 1, checksums, path);
}

void model_io_read_params(hid_t f, const char *group, const Params *p, float *base,
                          const char *path) {
    params_io(f, group, p, base, 0, 0, path);
}

/* group/l{k}: a layer's kind, widths, named state tensors and settings */
static void write_layer_group(hid_t f, const char *group, int k, const Layer *l, const char *path) {
    char name[64], states[256] = "";
    snprintf(name, sizeof name, "%s/l%d", group, k);
    h5_make_parents(f, name, path);
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) rt_die(EXIT_RUNTIME, "cannot create group /%s in '%s'", name, path);
    for (int st = 0; st < l->kind->nstates; st++)
        snprintf(states + strlen(states), sizeof states - strlen(states), st ? ",%s" : "%s",
                 l->kind->state_names[st]);
    h5_write_attr_str(g, "kind", l->kind->name, path);
    h5_write_attr_int(g, "width", l->H, path);
    h5_write_attr_int(g, "input_width", l->D, path);
    h5_write_attr_str(g, "states", states, path);
    LayerOpts o = l->opt;
    for (const LayerOptField *of = layer_opt_fields; of->name; of++)
        if (layer_opt_used(of, l->kind)) h5_write_attr_int(g, of->name, *layer_opt_ptr(&o, of), path);
    H5Gclose(g);
}

void model_io_write_header(hid_t f, const char *format, const Model *m, const Vocab *vocab,
                           const char *config, int checksums, const char *path) {
    const ModelShape *s = &m->shape;
    char stack[MODEL_IO_STACK_MAX];
    model_shape_layers_text(s, stack, sizeof stack);
    h5_write_attr_str(f, "format", format, path);
    h5_write_attr_int(f, "version", MODEL_IO_VERSION, path);
    h5_write_attr_int(f, "layers", s->L, path);
    h5_write_attr_str(f, "stack", stack, path);
    if (model_shape_is_uniform(s) && s->layer[0].kind->stacked_module) {
        /* one nn.RNN/LSTM/GRU: what version-1 readers knew */
        h5_write_attr_str(f, "cell", s->layer[0].kind->name, path);
        h5_write_attr_int(f, "hidden", s->layer[0].H, path);
    }
    for (int k = 0; k < s->L; k++) write_layer_group(f, "layers", k, &m->layers[k], path);
    if (s->enc_L > 0) { /* seq2seq: the encoder, its source vocabulary, the attention */
        model_shape_stack_text(s->enc_layer, s->enc_L, stack, sizeof stack);
        h5_write_attr_str(f, "encoder", stack, path);
        h5_write_attr_int(f, "encoder_vocab", s->enc_vocab, path);
        h5_write_attr_str(f, "attention", attention_name((AttentionKind)s->attention), path);
        h5_write_attr_int(f, "source_steps", s->enc_steps, path);
        for (int k = 0; k < s->enc_L; k++)
            write_layer_group(f, "encoder_layers", k, &m->enc.fwd[k], path);
    }
    if (s->bidirectional) h5_write_attr_int(f, "bidirectional", 1, path);
    h5_write_attr_int(f, "embed", s->E, path);
    h5_write_attr_int(f, "vocab_size", s->V, path);
    h5_write_attr_str(f, "inputs", s->float_inputs ? "features" : "tokens", path);
    h5_write_attr_int(f, "cond", s->C, path);
    h5_write_attr_int(f, "in_vocab", s->in_vocab, path);
    h5_write_attr_int(f, "tied_head", model_shape_head_tied(s), path);
    h5_write_attr_str(f, "pool", s->pool_mean ? "mean" : "last", path);
    h5_write_attr_str(f, "config", config ? config : "", path);
    if (vocab) { /* language models */
        h5_write_attr_str(f, "vocab_kind", vocab_kind_name(vocab->kind), path);
        uint64_t vd[1] = {(uint64_t)vocab->V};
        h5_write_i32(f, "vocab", vocab->symbols, 1, vd, path);
        if (checksums)
            h5_set_checksum(f, "vocab", vocab->symbols, (size_t)vocab->V * sizeof(int32_t), path);
    }
}

void model_io_save(const char *path, const Model *m, const Vocab *vocab, const SeqFile *seq,
                   const char *config) {
    AtomicFile a;
    atomic_begin(&a, path, "model file");
    hid_t f = h5_create(a.tmp);
    model_io_write_header(f, "rnntrain-model", m, vocab, config, 0, a.tmp);
    if (seq && seq->task == TASK_SEQ2SEQ) {
        h5_write_attr_str(f, "target_kind", seq->tgt_chars ? "chars" : "symbols", a.tmp);
        h5_write_attr_int(f, "target_symbol_count", seq->K, a.tmp);
        seq_symbols_write(f, "target_symbols", seq->tgt_symbols, seq->K, a.tmp);
        if (seq->S > 0) {
            h5_write_attr_str(f, "source_kind", seq->src_chars ? "chars" : "symbols", a.tmp);
            h5_write_attr_int(f, "source_symbol_count", seq->src_vocab, a.tmp);
            seq_symbols_write(f, "source_symbols", seq->src_symbols, seq->src_vocab, a.tmp);
        }
    }
    model_io_write_params(f, "params", &m->params, m->params.value, 0, a.tmp);
    h5_close_file(f, a.tmp);
    atomic_commit(&a);
}

char *model_io_path(const char *dir_or_file) {
    struct stat st;
    if (stat(dir_or_file, &st) != 0)
        rt_die(EXIT_INPUT, "model '%s': %s", dir_or_file, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        size_t n = strlen(dir_or_file) + 16;
        char *p = rt_malloc(n, "path");
        snprintf(p, n, "%s/model.h5", dir_or_file);
        return p;
    }
    return rt_strdup(dir_or_file);
}

/* The settings of the state space layers: attributes of group/l{k}. */
static void read_opts(hid_t f, LayerSpec *layer, int L, const char *group, const char *path) {
    for (int k = 0; k < L; k++) {
        LayerSpec *ls = &layer[k];
        if (!ls->kind->resolve_opts) continue;
        char name[64], err[300];
        snprintf(name, sizeof name, "%s/l%d", group, k);
        if (!h5_exists(f, name))
            rt_die(EXIT_INPUT, "model file '%s': group /%s (the settings of a %s layer) is missing",
                   path, name, ls->kind->name);
        hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
        if (g < 0) rt_die(EXIT_INPUT, "model file '%s': cannot open group /%s", path, name);
        for (const LayerOptField *of = layer_opt_fields; of->name; of++) {
            if (!layer_opt_used(of, ls->kind)) continue;
            if (!h5_attr_exists(g, of->name))
                rt_die(EXIT_INPUT, "model file '%s': /%s has no attribute '%s' (a setting of its "
                       "%s layer)", path, name, of->name, ls->kind->name);
            int64_t v = h5_read_attr_int(g, of->name, path);
            if (v < of->min || v > 1 << 20)
                rt_die(EXIT_INPUT, "model file '%s': /%s attribute '%s' is %lld, expected %d to "
                       "%d", path, name, of->name, (long long)v, of->min, 1 << 20);
            *layer_opt_ptr(&ls->opt, of) = (int)v;
        }
        H5Gclose(g);
        int D = k == 0 ? 1 : layer[k - 1].H; /* the input width is checked with embed */
        if (layer_opts_check(ls->kind, &ls->opt, D, ls->H, err, sizeof err))
            rt_die(EXIT_INPUT, "model file '%s': /%s: %s", path, name, err);
    }
}

static void read_layer_opts(hid_t f, ModelShape *s, const char *path) {
    read_opts(f, s->layer, s->L, "layers", path);
}

/* seq2seq models: the encoder's layers, source vocabulary, direction and attention. */
static void read_encoder(hid_t f, ModelShape *s, const char *path) {
    if (!h5_attr_exists(f, "encoder")) return;
    char buf[MODEL_IO_STACK_MAX], err[600];
    h5_read_attr_str(f, "encoder", buf, sizeof buf, path);
    ModelShape e;
    memset(&e, 0, sizeof e);
    if (!model_shape_parse_layers(&e, buf, err, sizeof err))
        rt_die(EXIT_INPUT, "model file '%s': attribute 'encoder': %s", path, err);
    s->enc_L = e.L;
    memcpy(s->enc_layer, e.layer, sizeof e.layer);
    read_opts(f, s->enc_layer, s->enc_L, "encoder_layers", path);
    int64_t V = h5_read_attr_int(f, "encoder_vocab", path),
            S = h5_read_attr_int(f, "source_steps", path),
            bi = s->bidirectional;
    h5_read_attr_str(f, "attention", buf, sizeof buf, path);
    int at = attention_by_name(buf);
    if (V < 1 || V > 0x110000 || S < 1 || S > 1000000 || (bi != 0 && bi != 1) || at < 0)
        rt_die(EXIT_INPUT, "model file '%s': bad encoder attributes (encoder_vocab %lld, "
               "source_steps %lld, bidirectional %lld, attention '%s')", path, (long long)V,
               (long long)S, (long long)bi, buf);
    s->enc_vocab = (int)V;
    s->enc_steps = (int)S;
    s->attention = at;
}

/* The layer stack: version 2 names it ("stack"), version 1 files were one uniform cell. */
static void read_stack(hid_t f, int64_t version, ModelShape *s, const char *path) {
    char buf[MODEL_IO_STACK_MAX], err[600];
    if (version >= 2) {
        h5_read_attr_str(f, "stack", buf, sizeof buf, path);
        if (!model_shape_parse_layers(s, buf, err, sizeof err))
            rt_die(EXIT_INPUT, "model file '%s': attribute 'stack': %s", path, err);
        if (h5_read_attr_int(f, "layers", path) != s->L)
            rt_die(EXIT_INPUT, "model file '%s': 'layers' is %lld but 'stack' lists %d layers",
                   path, (long long)h5_read_attr_int(f, "layers", path), s->L);
        read_layer_opts(f, s, path);
        return;
    }
    h5_read_attr_str(f, "cell", buf, sizeof buf, path);
    const LayerKind *kind = layer_kind_by_name(buf);
    if (!kind)
        rt_die(EXIT_INPUT, "model file '%s': cell '%s', expected %s", path, buf,
               layer_kind_names());
    int64_t L = h5_read_attr_int(f, "layers", path), H = h5_read_attr_int(f, "hidden", path);
    if (L < 1 || L > MODEL_MAX_LAYERS || H < 1 || H > 65536)
        rt_die(EXIT_INPUT, "model file '%s': bad shape layers=%lld hidden=%lld (expected layers "
               "1..%d, hidden 1..65536)", path, (long long)L, (long long)H, MODEL_MAX_LAYERS);
    model_shape_uniform(s, kind, (int)L, (int)H);
}

int64_t model_io_read_header(hid_t f, const char *path, ModelShape *sp, Vocab *vocab) {
    char buf[64];
    h5_read_attr_str(f, "format", buf, sizeof buf, path);
    if (strcmp(buf, "rnntrain-model") != 0 && strcmp(buf, "rnntrain-checkpoint") != 0)
        rt_die(EXIT_INPUT, "model file '%s': format is '%s', expected 'rnntrain-model' or "
               "'rnntrain-checkpoint'", path, buf);
    int64_t version = h5_read_attr_int(f, "version", path);
    if (version < 1 || version > MODEL_IO_VERSION)
        rt_die(EXIT_INPUT, "model file '%s': format version %lld, this rnntrain reads versions "
               "1 to %d (a newer rnntrain wrote it: use that one)", path, (long long)version,
               MODEL_IO_VERSION);
    ModelShape s;
    memset(&s, 0, sizeof s);
    read_stack(f, version, &s, path);
    int64_t E = h5_read_attr_int(f, "embed", path), V = h5_read_attr_int(f, "vocab_size", path);
    /* vocab_size is the head's width: a language model (it has a text vocabulary) needs at
     * least 2 symbols, a sequence-task head may have 1 output (regress --horizon 1) */
    int language_model = h5_attr_exists(f, "vocab_kind");
    int V_min = language_model ? 2 : 1;
    if (E < 1 || E > 65536 || V < V_min || V > 0x110000)
        rt_die(EXIT_INPUT, "model file '%s': bad shape embed=%lld vocab_size=%lld (expected "
               "embed 1..65536, vocab_size %d..1114112 for a %s model)", path, (long long)E,
               (long long)V, V_min, language_model ? "language" : "sequence-task");
    s.E = (int)E;
    s.V = (int)V;
    if (h5_attr_exists(f, "inputs")) {
        h5_read_attr_str(f, "inputs", buf, sizeof buf, path);
        s.float_inputs = strcmp(buf, "features") == 0;
    }
    if (h5_attr_exists(f, "cond")) s.C = h5_read_attr_int_in(f, "cond", 0, 1 << 20, path);
    if (h5_attr_exists(f, "in_vocab"))
        s.in_vocab = h5_read_attr_int_in(f, "in_vocab", 0, 0x110000, path);
    if (h5_attr_exists(f, "pool")) {
        h5_read_attr_str(f, "pool", buf, sizeof buf, path);
        if (strcmp(buf, "mean") != 0 && strcmp(buf, "last") != 0)
            rt_die(EXIT_INPUT, "model file '%s': attribute 'pool' is '%s', expected 'last' or "
                   "'mean'", path, buf);
        s.pool_mean = strcmp(buf, "mean") == 0;
    }
    s.untied = h5_attr_exists(f, "tied_head") && h5_read_attr_int(f, "tied_head", path) == 0;
    if (h5_attr_exists(f, "bidirectional")) {
        int64_t bi = h5_read_attr_int(f, "bidirectional", path);
        if (bi != 0 && bi != 1)
            rt_die(EXIT_INPUT, "model file '%s': attribute 'bidirectional' is %lld, expected 0 "
                   "or 1", path, (long long)bi);
        s.bidirectional = (int)bi;
    }
    read_encoder(f, &s, path);
    if (model_shape_stack_bidir(&s) && (s.C > 0 || language_model))
        rt_die(EXIT_INPUT, "model file '%s': a bidirectional stack cannot be %s", path,
               language_model ? "a language model" : "conditioned (cond > 0)");
    if (s.enc_L > 0 && s.C != model_shape_encoder_width(&s))
        rt_die(EXIT_INPUT, "model file '%s': cond is %d but the encoder's outputs have %d values",
               path, s.C, model_shape_encoder_width(&s));
    if (s.C < 0 || s.C > 1 << 20 || s.in_vocab < 0 || s.in_vocab > 0x110000)
        rt_die(EXIT_INPUT, "model file '%s': bad cond/in_vocab attributes", path);
    memset(vocab, 0, sizeof *vocab);
    if (language_model) {
        h5_read_attr_str(f, "vocab_kind", buf, sizeof buf, path);
        int k = vocab_kind_by_name(buf);
        if (k < 0) rt_die(EXIT_INPUT, "model file '%s': vocab_kind '%s' unknown", path, buf);
        vocab->kind = (VocabKind)k;
        vocab->V = s.V;
        vocab->symbols = rt_malloc((size_t)V * sizeof(int32_t), "vocabulary");
        uint64_t vd[1] = {(uint64_t)V};
        h5_read_i32(f, "vocab", vocab->symbols, 1, vd, path);
    }
    *sp = s;
    return version;
}

/* A checkpoint read as a model (eval, sample, --init-from) is verified as --resume does. */
static hid_t open_model(const char *path, ModelShape *sp, Vocab *vocab) {
    hid_t f = h5_open_read(path, "model file");
    model_io_read_header(f, path, sp, vocab);
    char fmt[64], why[512];
    h5_read_attr_str(f, "format", fmt, sizeof fmt, path);
    if (strcmp(fmt, "rnntrain-checkpoint") == 0 && h5_verify_checksums(f, why, sizeof why) != 0)
        rt_die(EXIT_INPUT, "checkpoint '%s' is damaged: %s", path, why);
    return f;
}

/* Every parameter value must be finite: a NaN or Inf weight would print nan losses or
 * sample garbage. */
static void check_finite_params(const Params *p, const char *path) {
    for (int i = 0; i < p->count; i++) {
        const ParamTensor *t = &p->tensors[i];
        for (size_t j = 0; j < t->size; j++) {
            float v = p->value[t->offset + j];
            if (!isfinite(v))
                rt_die(EXIT_INPUT, "model file '%s': /params/%s holds %s at entry %zu", path,
                       t->name, isnan(v) ? "NaN" : "Inf", j);
        }
    }
}

void model_io_load(const char *path_in, Model *m, int B, int Tmax, int Smax, Vocab *vocab) {
    char *path = model_io_path(path_in);
    ModelShape s;
    hid_t f = open_model(path, &s, vocab);
    if (s.enc_L > 0 && Smax > s.enc_steps) s.enc_steps = Smax;
    model_init(m, s, B, Tmax);
    model_io_read_params(f, "params", &m->params, m->params.value, path);
    check_finite_params(&m->params, path);
    H5Fclose(f);
    free(path);
}

void model_io_shape_text(const ModelShape *s, char *buf, size_t n) {
    char layers[512];
    model_shape_layers_text(s, layers, sizeof layers);
    snprintf(buf, n, "%s, %s %d, %d outputs%s", layers,
             s->float_inputs ? "features" : "embed", s->E, s->V,
             s->C > 0 ? ", conditioned" : "");
}

void model_io_load_weights(const char *path_in, Model *m, const Vocab *vocab) {
    char *path = model_io_path(path_in);
    ModelShape s;
    Vocab fv;
    hid_t f = open_model(path, &s, &fv);
    const ModelShape *want = &m->shape;
    if (!model_shape_equal(&s, want)) {
        char have[700], need[700];
        model_io_shape_text(&s, have, sizeof have);
        model_io_shape_text(want, need, sizeof need);
        rt_die(EXIT_INPUT, "--init-from '%s': the file holds a %s model, the run configures %s",
               path, have, need);
    }
    if (vocab && vocab->V > 0) {
        if (fv.V == 0)
            rt_die(EXIT_INPUT, "--init-from '%s': the file has no text vocabulary, the data has "
                   "one of %d symbols", path, vocab->V);
        if (fv.kind != vocab->kind ||
            memcmp(fv.symbols, vocab->symbols, (size_t)vocab->V * sizeof(int32_t)) != 0)
            rt_die(EXIT_INPUT, "--init-from '%s': its vocabulary (%s, %d symbols) differs from "
                   "the training data's (%s, %d symbols): token ids would mean other symbols",
                   path, vocab_kind_name(fv.kind), fv.V, vocab_kind_name(vocab->kind), vocab->V);
    }
    free(fv.symbols);
    model_io_read_params(f, "params", &m->params, m->params.value, path);
    check_finite_params(&m->params, path);
    H5Fclose(f);
    free(path);
}

static int attr_is(hid_t f, const char *name, const char *value, const char *path) {
    char buf[64];
    h5_read_attr_str(f, name, buf, sizeof buf, path);
    return strcmp(buf, value) == 0;
}

int model_io_read_symbols(const char *path_in, ModelSymbols *sym) {
    memset(sym, 0, sizeof *sym);
    char *path = model_io_path(path_in);
    hid_t f = h5_open_read(path, "model file");
    int have = h5_attr_exists(f, "target_symbol_count");
    if (have) {
        sym->K = h5_read_attr_int_in(f, "target_symbol_count", 3, 0x110000, path);
        sym->tgt_chars = attr_is(f, "target_kind", "chars", path);
        sym->tgt = seq_symbols_read(f, "target_symbols", sym->K, path);
        if (h5_attr_exists(f, "source_symbol_count")) {
            sym->Vs = h5_read_attr_int_in(f, "source_symbol_count", 1, 0x110000, path);
            sym->src_chars = attr_is(f, "source_kind", "chars", path);
            sym->src = seq_symbols_read(f, "source_symbols", sym->Vs, path);
        }
    }
    H5Fclose(f);
    free(path);
    return have;
}

void model_symbols_free(ModelSymbols *sym) {
    seq_symbols_free(sym->tgt, sym->K);
    seq_symbols_free(sym->src, sym->Vs);
    memset(sym, 0, sizeof *sym);
}
