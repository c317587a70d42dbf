/* task: datasets read as batches, and the losses (see task.h). */
#include "task.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "rng.h"

void task_open(Task *t, const char *path, uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->path = path;
    t->seed = seed;
    t->perm_epoch = -1;
    t->lm = !seq_is_sequence_file(path);
    if (t->lm) {
        data_open(&t->tf, path);
        t->classes = 1;
        return;
    }
    seq_open(&t->sf, path);
    t->kind = t->sf.task;
    t->classes = seq_has_classes(&t->sf);
}

void task_close(Task *t) {
    if (t->lm)
        data_close(&t->tf);
    else
        seq_close(&t->sf);
    free(t->perm);
    free(t->bucket_key);
    memset(t, 0, sizeof *t);
}

const char *task_label(const Task *t) { return t->lm ? "lm" : task_name(t->kind); }

void task_model_shape(const Task *t, ModelShape *s, int embed) {
    s->E = embed;
    if (t->lm) {
        s->V = t->tf.vocab.V;
        s->enc_L = s->bidirectional = s->attention = 0;
        return;
    }
    const SeqFile *sf = &t->sf;
    if (sf->S > 0) {
        s->enc_vocab = sf->src_vocab;
        s->enc_steps = sf->S;
    } else { /* a bidirectional stack reads whole sequences that it does not generate */
        s->enc_L = s->attention = 0;
        if (sf->task == TASK_GENERATE || sf->task == TASK_SEQ2SEQ) s->bidirectional = 0;
    }
    s->V = seq_outputs(sf);
    s->float_inputs = sf->float_inputs;
    s->E = sf->float_inputs ? sf->D : embed;
    s->C = sf->C;
    s->in_vocab = sf->float_inputs ? 0 : sf->vocab;
}

int64_t task_train_size(const Task *t) {
    return t->lm ? data_split_len(&t->tf, "train") : t->sf.n[0];
}

int task_sequence_steps(const Task *t) { return t->lm ? 0 : t->sf.T; }

static const int32_t *sort_key;
static int cmp_by_key(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    int32_t kx = sort_key[x], ky = sort_key[y];
    return kx != ky ? (kx > ky) - (kx < ky) : (x > y) - (x < y);
}

/* seq2seq: perm cut into windows of TASK_BUCKET_BATCHES batches of `global`, each sorted by
 * length and its batches shuffled with r (see task.h). */
static void bucket_order(Task *t, int64_t *perm, int64_t n, int global, Rng *r) {
    if (!t->bucket_key) {
        int32_t *tgt = rt_malloc((size_t)n * sizeof *tgt, "lengths");
        int32_t *src = rt_calloc((size_t)n, sizeof *src, "lengths");
        seq_read_lengths(&t->sf, 0, tgt, src);
        t->bucket_key = tgt;
        for (int64_t i = 0; i < n; i++) t->bucket_key[i] = tgt[i] * 65536 + src[i];
        free(src);
    }
    int64_t per = (int64_t)TASK_BUCKET_BATCHES * global, batches = n / global;
    int64_t *tmp = rt_malloc((size_t)per * sizeof *tmp, "bucket");
    int64_t *order = rt_malloc(TASK_BUCKET_BATCHES * sizeof *order, "bucket");
    for (int64_t w = 0; w < batches * global; w += per) {
        int64_t len = batches * global - w < per ? batches * global - w : per, nb = len / global;
        sort_key = t->bucket_key;
        qsort(perm + w, (size_t)len, sizeof *perm, cmp_by_key);
        for (int64_t i = 0; i < nb; i++) order[i] = i;
        for (int64_t i = nb - 1; i > 0; i--) {
            int64_t j = (int64_t)(rng_u64(r) % (uint64_t)(i + 1)), x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
        for (int64_t i = 0; i < nb; i++)
            memcpy(tmp + i * global, perm + w + order[i] * global, (size_t)global * sizeof *tmp);
        memcpy(perm + w, tmp, (size_t)len * sizeof *tmp);
    }
    free(tmp);
    free(order);
}

/* The permutation of the train sequences for an epoch: the same on every rank. */
static const int64_t *epoch_order(Task *t, int64_t epoch, int global) {
    int64_t n = t->sf.n[0];
    if (!t->perm) t->perm = rt_malloc((size_t)n * sizeof *t->perm, "permutation");
    if (t->perm_epoch != epoch) {
        Rng r;
        rng_seed(&r, t->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(epoch + 1)));
        for (int64_t i = 0; i < n; i++) t->perm[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(rng_u64(&r) % (uint64_t)(i + 1)), tmp = t->perm[i];
            t->perm[i] = t->perm[j];
            t->perm[j] = tmp;
        }
        if (t->kind == TASK_SEQ2SEQ) bucket_order(t, t->perm, n, global, &r);
        t->perm_epoch = epoch;
    }
    return t->perm;
}

static const char *const split_names[] = {"train", "valid", "test"};

void reader_init(Reader *r, Task *t, int split, int global, int first, int count, int chunk_T,
                 int train) {
    memset(r, 0, sizeof *r);
    REQUIRE(split >= 0 && split < 3 && count >= 1 && chunk_T >= 1);
    r->task = t;
    r->split = split;
    r->global = global;
    r->first = first;
    r->count = count;
    r->chunk_T = chunk_T;
    r->train = train;
    r->reset = rt_malloc((size_t)count, "reset flags");
    memset(r->reset, 1, (size_t)count);
    if (t->lm) {
        stream_init(&r->sr, &t->tf, split_names[split], global, first, count, chunk_T, train);
        return;
    }
    seq_batch_init(&r->sb, &t->sf, count);
    r->index = rt_malloc((size_t)count * sizeof *r->index, "batch index");
    if (!train) { /* part `first` of `global` */
        int64_t n = t->sf.n[split];
        r->lo = n * first / global;
        r->hi = n * (first + 1) / global;
        r->next = r->lo;
    }
}

void reader_free(Reader *r) {
    if (r->task && r->task->lm) stream_free(&r->sr);
    if (r->task && !r->task->lm) seq_batch_free(&r->sb);
    free(r->index);
    free(r->reset);
    memset(r, 0, sizeof *r);
}

/* cursor 0 starts every stream of an epoch afresh */
static void lm_batch(Reader *r, int64_t cursor, int T, Batch *b) {
    memset(b, 0, sizeof *b);
    b->B = b->count = r->count;
    b->T = b->chunk_T = T;
    b->reset = cursor == 0 ? r->reset : NULL;
    b->tokens = r->sr.inputs;
    b->labels = r->sr.targets;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sequences index[0..cnt) (ascending) of the split into b. */
static void seq_batch(Reader *r, int cnt, Batch *b) {
    const SeqFile *sf = &r->task->sf;
    seq_read(sf, r->split, r->index, cnt, &r->sb);
    memset(b, 0, sizeof *b);
    b->B = r->count;
    b->count = cnt;
    b->T = sf->T;
    b->chunk_T = r->chunk_T < sf->T ? r->chunk_T : sf->T;
    b->reset = r->reset; /* every sequence starts afresh */
    b->tokens = sf->float_inputs ? NULL : r->sb.tok;
    b->x = sf->float_inputs ? r->sb.x : NULL;
    b->labels = r->sb.labels;
    b->targets = r->sb.targets;
    b->weights = r->sb.weights;
    b->cond = sf->C > 0 ? r->sb.cond : NULL;
    if (sf->S > 0) {
        b->src = r->sb.src;
        b->src_len = r->sb.src_len;
        b->S = sf->S;
    }
    if (sf->task == TASK_SEQ2SEQ) { /* run only the steps the batch's longest rows need: the
                                        rows are time-major, so these are a prefix */
        int T = 1, S = 1;
        for (int i = 0; i < r->count; i++) {
            T = r->sb.len[i] > T ? r->sb.len[i] : T;
            if (sf->S > 0) S = r->sb.src_len[i] > S ? r->sb.src_len[i] : S;
        }
        b->T = b->chunk_T = T;
        if (sf->S > 0) b->S = S;
    }
    b->seq = &r->sb;
    b->len = r->sb.len;
}

void reader_read(Reader *r, int64_t cursor, int64_t epoch, Batch *b) {
    REQUIRE(r->train);
    if (r->task->lm) {
        REQUIRE(stream_read(&r->sr, cursor) == r->chunk_T);
        lm_batch(r, cursor, r->chunk_T, b);
        return;
    }
    const int64_t *perm = epoch_order(r->task, epoch, r->global);
    memcpy(r->index, perm + cursor * r->global + r->first, (size_t)r->count * sizeof(int64_t));
    qsort(r->index, (size_t)r->count, sizeof(int64_t), cmp_i64);
    seq_batch(r, r->count, b);
}

int reader_next(Reader *r, Batch *b) {
    REQUIRE(!r->train);
    if (r->task->lm) {
        int T = stream_read(&r->sr, r->next);
        if (T == 0) return 0;
        lm_batch(r, r->next, T, b);
        r->next += T;
        return 1;
    }
    if (r->next >= r->hi) return 0;
    int cnt = (int)(r->hi - r->next < r->count ? r->hi - r->next : r->count);
    for (int i = 0; i < cnt; i++) r->index[i] = r->next + i;
    r->next += cnt;
    seq_batch(r, cnt, b);
    return 1;
}

int64_t reader_batches_per_epoch(const Reader *r) {
    return r->task->lm ? stream_chunks_per_epoch(&r->sr) : r->task->sf.n[0] / r->global;
}

int64_t reader_stream_length(const Reader *r) { return r->task->lm ? r->sr.L : 0; }

double batch_terms(const Task *t, const Batch *b) {
    if (t->lm) return (double)b->T * b->B;
    REQUIRE(b->seq); /* a whole batch as read, not a chunk of one */
    return seq_batch_terms(&t->sf, b->seq);
}

Batch batch_chunk(const Task *t, const Batch *b, int t0, int T) {
    REQUIRE(t0 >= 0 && T >= 1 && t0 + T <= b->T);
    Batch c = *b;
    size_t rows = (size_t)t0 * b->B;
    int D = t->lm || !t->sf.float_inputs ? 1 : t->sf.D, Y = t->lm ? 1 : seq_outputs(&t->sf);
    c.T = c.chunk_T = T;
    c.reset = t0 == 0 ? b->reset : NULL;
    if (b->tokens) c.tokens = b->tokens + rows;
    if (b->x) c.x = b->x + rows * D;
    if (b->labels) c.labels = b->labels + rows;
    if (b->targets) c.targets = b->targets + rows * Y;
    if (b->weights) c.weights = b->weights + rows;
    c.seq = NULL; /* per-sequence data is the whole batch's */
    return c;
}

void task_start_state(Model *m, ModelState *st, const Batch *b) {
    if (!b->reset) return;
    REQUIRE(st->B == b->B);
    int all = 1;
    for (int i = 0; i < b->B; i++) all &= b->reset[i];
    if (b->src) { /* seq2seq: from the encoder's hand-over */
        REQUIRE(all);
        model_encode(m, st, b->src, b->src_len, b->S);
    } else if (b->cond) { /* conditioned batches start every stream from its vector */
        REQUIRE(all);
        model_set_condition(m, st, b->cond);
    } else if (all) {
        model_state_zero(st);
    } else {
        for (int i = 0; i < b->B; i++)
            if (b->reset[i]) model_state_zero_stream(st, i);
    }
}

void task_forward(Model *m, ModelState *st, const Batch *c) {
    if (m->bidir) {
        REQUIRE(c->len && c->reset); /* whole sequences */
        model_set_lengths(m, c->len);
    }
    if (c->x)
        model_forward_features(m, st, c->x, c->T);
    else
        model_forward(m, st, c->tokens, c->T);
}

double task_loss(const Task *t, Model *m, const Batch *c, float scale, int grad) {
    return t->classes ? model_loss(m, c->labels, c->T, scale, grad)
                      : model_loss_mse(m, c->targets, c->weights, c->T, scale, grad);
}
