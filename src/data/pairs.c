/* pairs: rnntrain prepare --pairs (pairs.h; schema in docs/formats.md).
 *
 * The file is read into memory whole (a pronunciation dictionary is a few MB) and parsed in
 * place: each line is cut into its two fields (CSV quotes undone), each field into symbols
 * or numbers. Symbols get provisional ids in first-seen order from a hash table; once every
 * line is read they are sorted by their bytes and the ids remapped, so the ids do not depend
 * on the order of the lines. The distinct source strings are shuffled with the seed and cut
 * into train/valid/test; rows follow their source. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "common.h"
#include "data.h"
#include "h5util.h"
#include "pairs.h"
#include "rng.h"

#define PAIRS_MAX_LEN 4096 /* symbols per source or target sequence */

static const char *const kind_names[3] = {"chars", "symbols", "features"};
static const char *const split_names[3] = {"train", "valid", "test"};
static const char *const column_names[2] = {"source", "target"};

const char *pairs_kind_name(PairsKind k) { return kind_names[k]; }

int pairs_kind_by_name(const char *name) {
    for (int k = 0; k < 3; k++)
        if (strcmp(kind_names[k], name) == 0) return k;
    return -1;
}

/* ---- distinct strings -> ids ------------------------------------------------------- */

/* A string of the file's text (not copied: the text outlives the table) and its id. */
typedef struct {
    const char *s;
    int32_t len, id;
} Sym;

/* Open addressing on an FNV-1a hash; ids in first-seen order. */
typedef struct {
    Sym *sym;      /* (n) in id order */
    int32_t n, cap;
    int32_t *slot; /* (mask + 1) ids, -1 where empty; at most half full */
    uint64_t mask;
} Symtab;

static uint64_t str_hash(const char *s, int32_t len) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int32_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static void symtab_slots(Symtab *t, uint64_t size) {
    free(t->slot);
    t->mask = size - 1;
    t->slot = rt_malloc(size * sizeof *t->slot, "symbol table");
    memset(t->slot, 0xff, size * sizeof *t->slot);
    for (int32_t k = 0; k < t->n; k++) {
        uint64_t i = str_hash(t->sym[k].s, t->sym[k].len) & t->mask;
        while (t->slot[i] >= 0) i = (i + 1) & t->mask;
        t->slot[i] = k;
    }
}

static void symtab_init(Symtab *t) {
    memset(t, 0, sizeof *t);
    symtab_slots(t, 64);
}

static void symtab_free(Symtab *t) {
    free(t->sym);
    free(t->slot);
}

/* The id of s[0..len), added if new. */
static int32_t symtab_id(Symtab *t, const char *s, int32_t len) {
    uint64_t i = str_hash(s, len) & t->mask;
    for (; t->slot[i] >= 0; i = (i + 1) & t->mask) {
        const Sym *y = &t->sym[t->slot[i]];
        if (y->len == len && memcmp(y->s, s, (size_t)len) == 0) return y->id;
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->sym = rt_realloc(t->sym, (size_t)t->cap * sizeof *t->sym, "symbol table");
    }
    t->sym[t->n] = (Sym){s, len, t->n};
    t->slot[i] = t->n++;
    if ((uint64_t)t->n * 2 > t->mask) symtab_slots(t, 2 * (t->mask + 1));
    return t->n - 1;
}

/* strcmp order (bytes as unsigned char; a prefix first). */
static int sym_cmp(const void *a, const void *b) {
    const Sym *x = a, *y = b;
    int c = memcmp(x->s, y->s, (size_t)(x->len < y->len ? x->len : y->len));
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The strings sorted (caller frees); rank[id] = the id's position in that order. */
static Sym *symtab_sorted(const Symtab *t, int32_t *rank) {
    Sym *s = rt_malloc((size_t)(t->n ? t->n : 1) * sizeof *s, "sorted symbols");
    if (t->n) memcpy(s, t->sym, (size_t)t->n * sizeof *s);
    qsort(s, (size_t)t->n, sizeof *s, sym_cmp);
    for (int32_t k = 0; k < t->n; k++) rank[s[k].id] = k;
    return s;
}

/* ---- reading the file --------------------------------------------------------------- */

typedef struct {
    int64_t line;             /* 1-based line of the file */
    int32_t group;            /* id of its source string in Pairs.sources */
    int32_t src_len, tgt_len; /* symbols (features: C values) */
    int64_t src_off, tgt_off; /* into Pairs.ids, or src_off into Pairs.values (features) */
} Row;

typedef struct {
    const PairsPrepare *pp;
    char *text;           /* the whole file, parsed in place */
    Row *rows;
    int64_t n, cap;
    int32_t *ids;         /* provisional symbol ids of every token field, row after row */
    int64_t nids, idcap;
    float *values;        /* features: n * C */
    int64_t nvals, valcap;
    int C;
    int64_t C_line;       /* the line that set C */
    Symtab syms[2];       /* symbols of the source and of the target column */
    Symtab sources;       /* distinct source strings (the groups) */
} Pairs;

static char *read_all(const char *path, size_t *size) {
    const char *odd = rt_not_regular(path);
    if (odd) rt_die(EXIT_INPUT, "--pairs: '%s' is %s, expected a regular file", path, odd);
    FILE *f = fopen(path, "rb");
    if (!f) rt_die(EXIT_INPUT, "--pairs: cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = rt_malloc(cap + 1, "--pairs text");
    for (;;) {
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) rt_die(EXIT_INPUT, "--pairs: reading '%s' failed", path);
        if (n < cap) break;
        cap *= 2;
        buf = rt_realloc(buf, cap + 1, "--pairs text");
    }
    fclose(f);
    buf[n] = 0; /* the last line's terminator when the file does not end in a newline */
    *size = n;
    return buf;
}

/* Cuts line[0..len) into fields in place (NUL-terminated; CSV quotes undone); field[0..2)
 * get the first two. Returns the number of fields. line[len] must be writable. */
static int split_fields(char *line, size_t len, int csv, char *field[2], const char *path,
                        int64_t lineno) {
    char *r = line, *w = line, *end = line + len;
    int cols = 0;
    for (;;) {
        char *start = w;
        char sep = csv ? ',' : '\t';
        if (csv && r < end && *r == '"') {
            for (r++;; ) {
                if (r == end)
                    rt_die(EXIT_INPUT, "--pairs: '%s' line %lld column %d: the quoted field is "
                           "not closed (a field cannot span lines)", path, (long long)lineno,
                           cols + 1);
                if (*r == '"' && r + 1 < end && r[1] == '"') {
                    *w++ = '"';
                    r += 2;
                } else if (*r == '"') {
                    r++;
                    break;
                } else {
                    *w++ = *r++;
                }
            }
            if (r < end && *r != ',')
                rt_die(EXIT_INPUT, "--pairs: '%s' line %lld column %d: expected a comma or the "
                       "end of the line after the closing quote, found '%c'", path,
                       (long long)lineno, cols + 1, *r);
        } else {
            while (r < end && *r != sep) *w++ = *r++;
        }
        if (cols < 2) field[cols] = start;
        cols++;
        int more = r < end; /* r is at a separator */
        *w++ = 0;           /* w <= r: overwrites at most the separator just read */
        if (!more) return cols;
        r++;
    }
}

static void check_length(const Pairs *p, int64_t lineno, int col, int64_t count) {
    if (count > PAIRS_MAX_LEN)
        rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: the %s has %lld symbols, more than the "
               "limit of %d", p->pp->pairs, (long long)lineno, column_names[col],
               (long long)count, PAIRS_MAX_LEN);
}

static void push_id(Pairs *p, int32_t id) {
    if (p->nids == p->idcap) {
        p->idcap = p->idcap ? 2 * p->idcap : 1 << 16;
        p->ids = rt_realloc(p->ids, (size_t)p->idcap * sizeof *p->ids, "symbol ids");
    }
    p->ids[p->nids++] = id;
}

/* Appends the provisional ids of field s (column col, read as kind) to p->ids; returns how
 * many. The field must be valid UTF-8 whatever the kind (the symbols are stored as text). */
static int32_t encode_tokens(Pairs *p, const char *s, PairsKind kind, int col, int64_t lineno) {
    const char *path = p->pp->pairs;
    Symtab *t = &p->syms[col];
    size_t n = strlen(s);
    int64_t count = 0;
    for (size_t i = 0; i < n;) {
        int used;
        if (utf8_next((const unsigned char *)s + i, n - i, &used) < 0)
            rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: the %s (column %d) is not valid UTF-8 "
                   "at byte %zu of the field", path, (long long)lineno, column_names[col],
                   col + 1, i + 1);
        if (kind == PAIRS_CHARS) {
            push_id(p, symtab_id(t, s + i, used));
            check_length(p, lineno, col, ++count);
        }
        i += (size_t)used;
    }
    for (size_t i = 0; kind == PAIRS_SYMBOLS && i < n;) {
        while (i < n && isspace((unsigned char)s[i])) i++;
        size_t e = i;
        while (e < n && !isspace((unsigned char)s[e])) e++;
        if (e == i) break;
        int32_t len = (int32_t)(e - i);
        if (col == 1 && ((len == 3 && memcmp(s + i, "<s>", 3) == 0) ||
                         (len == 4 && memcmp(s + i, "</s>", 4) == 0)))
            rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: the target symbol '%.*s' is reserved "
                   "(</s> ends and <s> starts every target)", path, (long long)lineno, (int)len,
                   s + i);
        push_id(p, symtab_id(t, s + i, len));
        check_length(p, lineno, col, ++count);
        i = e;
    }
    if (count == 0)
        rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: the %s (column %d) has no symbols (only "
               "whitespace)", path, (long long)lineno, column_names[col], col + 1);
    return (int32_t)count;
}

/* Appends the numbers of source field s (whitespace- or comma-separated) to p->values;
 * every row must have the same count C. */
static void parse_features(Pairs *p, char *s, int64_t lineno) {
    const char *path = p->pp->pairs;
    int64_t count = 0;
    int after_comma = 0;
    for (char *q = s;;) {
        while (isspace((unsigned char)*q)) q++;
        if (*q == ',' || (!*q && after_comma)) {
            if (count == 0 || after_comma)
                rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: source value %lld is empty (two "
                       "commas, or a comma at the start or end)", path, (long long)lineno,
                       (long long)count + 1);
            after_comma = 1;
            q++;
            continue;
        }
        if (!*q) break;
        char *e = q;
        while (*e && *e != ',' && !isspace((unsigned char)*e)) e++;
        char saved = *e, *end;
        *e = 0;
        double x = strtod(q, &end);
        if (end != e || end == q)
            rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: source value %lld: expected a number, "
                   "found '%s'", path, (long long)lineno, (long long)count + 1, q);
        if (isnan(x) || isinf(x) || fabs(x) > FLT_MAX) /* an underflow to 0 is fine */
            rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: source value %lld is %s ('%s'; "
                   "expected a finite float32)", path, (long long)lineno, (long long)count + 1,
                   isnan(x) ? "NaN" : isinf(x) ? "Inf" : "out of range", q);
        *e = saved;
        if (p->nvals == p->valcap) {
            p->valcap = p->valcap ? 2 * p->valcap : 1 << 16;
            p->values = rt_realloc(p->values, (size_t)p->valcap * sizeof *p->values, "features");
        }
        p->values[p->nvals++] = (float)x;
        count++;
        after_comma = 0;
        q = e;
    }
    if (count == 0)
        rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: the source (column 1) has no values (only "
               "whitespace)", path, (long long)lineno);
    if (p->C == 0) {
        if (count > (1 << 20))
            rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: the source has %lld values, more than "
                   "the limit of %d", path, (long long)lineno, (long long)count, 1 << 20);
        p->C = (int)count;
        p->C_line = lineno;
    } else if (count != p->C) {
        rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: the source has %lld values, expected %d "
               "(as on line %lld)", path, (long long)lineno, (long long)count, p->C,
               (long long)p->C_line);
    }
}

static void add_row(Pairs *p, char *field[2], int64_t lineno) {
    const PairsPrepare *pp = p->pp;
    for (int c = 0; c < 2; c++) {
        if (!*field[c])
            rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: the %s (column %d) is empty",
                   pp->pairs, (long long)lineno, column_names[c], c + 1);
        if (strlen(field[c]) > (1u << 30))
            rt_die(EXIT_INPUT, "--pairs: '%s' line %lld: the %s (column %d) is longer than "
                   "1 GiB", pp->pairs, (long long)lineno, column_names[c], c + 1);
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->rows = rt_realloc(p->rows, (size_t)p->cap * sizeof *p->rows, "rows");
    }
    Row *r = &p->rows[p->n++];
    r->line = lineno;
    r->group = symtab_id(&p->sources, field[0], (int32_t)strlen(field[0]));
    if (pp->source == PAIRS_FEATURES) {
        r->src_off = p->nvals;
        parse_features(p, field[0], lineno);
        r->src_len = p->C;
    } else {
        r->src_off = p->nids;
        r->src_len = encode_tokens(p, field[0], pp->source, 0, lineno);
    }
    r->tgt_off = p->nids;
    r->tgt_len = encode_tokens(p, field[1], pp->target, 1, lineno);
}

static void read_pairs(Pairs *p) {
    const char *path = p->pp->pairs;
    size_t n = strlen(path), size;
    int csv = n >= 4 && strcmp(path + n - 4, ".csv") == 0;
    p->text = read_all(path, &size);
    int64_t lineno = 0, blank = 0;
    for (char *s = p->text, *end = p->text + size; s < end;) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        char *eol = nl ? nl : end, *next = nl ? nl + 1 : end;
        size_t len = (size_t)(eol - s);
        lineno++;
        if (memchr(s, 0, len))
            rt_die(EXIT_INPUT, "--pairs: '%s' line %lld holds a NUL byte (not a text file?)",
                   path, (long long)lineno);
        if (len && s[len - 1] == '\r') len--;
        if (len == 0) {
            if (!blank) blank = lineno;
        } else {
            if (blank)
                rt_die(EXIT_INPUT, "--pairs: '%s' line %lld is blank; blank lines may only end "
                       "the file", path, (long long)blank);
            char *field[2];
            int cols = split_fields(s, len, csv, field, path, lineno);
            if (cols != 2)
                rt_die(EXIT_INPUT, "--pairs: '%s' line %lld has %d column%s, expected 2 (SOURCE, "
                       "TARGET; %s)", path, (long long)lineno, cols, cols == 1 ? "" : "s",
                       csv ? "comma-separated, as the name ends in .csv" : "tab-separated; a "
                       "name ending in .csv is read as CSV");
            add_row(p, field, lineno);
        }
        s = next;
    }
    if (p->n == 0)
        rt_die(EXIT_INPUT, "--pairs: '%s' holds no rows (expected lines SOURCE%sTARGET)", path,
               csv ? "," : "<TAB>");
}

/* ---- writing ------------------------------------------------------------------------ */

/* The symbols as UTF-8 text, each followed by '\n', after the given prefix. */
static void write_symbols(hid_t f, const char *name, const char *prefix, const Sym *s,
                          int32_t n, const char *path) {
    size_t bytes = strlen(prefix);
    for (int32_t k = 0; k < n; k++) bytes += (size_t)s[k].len + 1;
    uint8_t *buf = rt_malloc(bytes, "symbol text");
    size_t at = strlen(prefix);
    memcpy(buf, prefix, at);
    for (int32_t k = 0; k < n; k++) {
        memcpy(buf + at, s[k].s, (size_t)s[k].len);
        at += (size_t)s[k].len;
        buf[at++] = '\n';
    }
    uint64_t d[1] = {bytes};
    h5_write_u8_summed(f, name, buf, 1, d, path);
    free(buf);
}

typedef struct {
    int T, S, C;                /* decoder steps, source steps (tokens), features (features) */
    const int32_t *src_rank;    /* provisional source symbol id -> final id */
    const int32_t *tgt_rank;    /* provisional target symbol id -> final id - 2 */
} Geometry;

/* One split: rows order[0..N) (rows of a source adjacent), starts[i] = 1 where row i is the
 * first of its source. */
static void write_split(hid_t f, const char *path, int s, const Pairs *p, const Geometry *g,
                        const int64_t *order, const uint8_t *starts, int64_t N) {
    size_t n = (size_t)(N ? N : 1), T = (size_t)g->T;
    int32_t *inputs = rt_calloc(n * T, sizeof *inputs, "decoder inputs");
    int32_t *labels = rt_calloc(n * T, sizeof *labels, "labels");
    int32_t *lengths = rt_calloc(n, sizeof *lengths, "lengths");
    int32_t *group = rt_calloc(n, sizeof *group, "groups");
    int features = p->pp->source == PAIRS_FEATURES;
    size_t width = features ? (size_t)g->C : (size_t)g->S;
    int32_t *source = features ? NULL : rt_calloc(n * width, sizeof *source, "source");
    int32_t *source_lengths = features ? NULL : rt_calloc(n, sizeof *source_lengths, "lengths");
    float *cond = features ? rt_calloc(n * width, sizeof *cond, "cond") : NULL;
    for (int64_t i = 0; i < N; i++) {
        const Row *r = &p->rows[order[i]];
        group[i] = starts[i] ? (int32_t)i : group[i - 1];
        int32_t *in = inputs + (size_t)i * T, *lab = labels + (size_t)i * T;
        in[0] = 1; /* <s> */
        for (int32_t j = 0; j < r->tgt_len; j++)
            in[j + 1] = lab[j] = 2 + g->tgt_rank[p->ids[r->tgt_off + j]];
        lengths[i] = r->tgt_len + 1; /* lab[tgt_len] = 0: </s> */
        if (features) {
            memcpy(cond + (size_t)i * width, p->values + r->src_off, width * sizeof *cond);
        } else {
            for (int32_t j = 0; j < r->src_len; j++)
                source[(size_t)i * width + j] = g->src_rank[p->ids[r->src_off + j]];
            source_lengths[i] = r->src_len;
        }
    }
    char name[64];
    uint64_t d1[1] = {(uint64_t)N}, d2[2] = {(uint64_t)N, T}, dw[2] = {(uint64_t)N, width};
    snprintf(name, sizeof name, "%s/inputs", split_names[s]);
    h5_write_i32_summed(f, name, inputs, 2, d2, path);
    snprintf(name, sizeof name, "%s/labels", split_names[s]);
    h5_write_i32_summed(f, name, labels, 2, d2, path);
    snprintf(name, sizeof name, "%s/lengths", split_names[s]);
    h5_write_i32_summed(f, name, lengths, 1, d1, path);
    snprintf(name, sizeof name, "%s/group", split_names[s]);
    h5_write_i32_summed(f, name, group, 1, d1, path);
    if (features) {
        snprintf(name, sizeof name, "%s/cond", split_names[s]);
        h5_write_f32_summed(f, name, cond, 2, dw, path);
    } else {
        snprintf(name, sizeof name, "%s/source", split_names[s]);
        h5_write_i32_summed(f, name, source, 2, dw, path);
        snprintf(name, sizeof name, "%s/source_lengths", split_names[s]);
        h5_write_i32_summed(f, name, source_lengths, 1, d1, path);
    }
    free(inputs);
    free(labels);
    free(lengths);
    free(group);
    free(source);
    free(source_lengths);
    free(cond);
}

void seq_prepare_pairs(const PairsPrepare *pp) {
    REQUIRE(pp->target != PAIRS_FEATURES);
    Pairs p;
    memset(&p, 0, sizeof p);
    p.pp = pp;
    for (int c = 0; c < 2; c++) symtab_init(&p.syms[c]);
    symtab_init(&p.sources);
    read_pairs(&p);

    /* final symbol ids: sorted by their bytes */
    int32_t *rank[2];
    Sym *sorted[2];
    for (int c = 0; c < 2; c++) {
        rank[c] = rt_malloc((size_t)(p.syms[c].n ? p.syms[c].n : 1) * sizeof(int32_t), "ranks");
        sorted[c] = symtab_sorted(&p.syms[c], rank[c]);
    }
    Geometry g = {1, 0, p.C, rank[0], rank[1]};
    for (int64_t i = 0; i < p.n; i++) {
        if (p.rows[i].tgt_len + 1 > g.T) g.T = p.rows[i].tgt_len + 1;
        if (pp->source != PAIRS_FEATURES && p.rows[i].src_len > g.S) g.S = p.rows[i].src_len;
    }
    int K = p.syms[1].n + 2, Vs = p.syms[0].n;

    /* rows by source (file order within one), the sources shuffled and cut into splits */
    int64_t G = p.sources.n;
    int64_t *first = rt_calloc((size_t)G + 1, sizeof *first, "groups");
    for (int64_t i = 0; i < p.n; i++) first[p.rows[i].group + 1]++;
    for (int64_t k = 0; k < G; k++) first[k + 1] += first[k];
    int64_t *by_group = rt_malloc((size_t)p.n * sizeof *by_group, "rows by source");
    int64_t *fill = rt_malloc((size_t)G * sizeof *fill, "groups");
    memcpy(fill, first, (size_t)G * sizeof *fill);
    for (int64_t i = 0; i < p.n; i++) by_group[fill[p.rows[i].group]++] = i;
    free(fill);
    int64_t *perm = rt_malloc((size_t)G * sizeof *perm, "source permutation");
    for (int64_t k = 0; k < G; k++) perm[k] = k;
    Rng rng;
    rng_seed(&rng, (uint64_t)pp->seed);
    rng_shuffle_i64(&rng, perm, G);
    int64_t g0 = llround(pp->frac[0] * (double)G), g1 = llround(pp->frac[1] * (double)G);
    if (g0 > G) g0 = G;
    if (g1 > G - g0) g1 = G - g0;
    int64_t bounds[4] = {0, g0, g0 + g1, G}, rows[3], sources[3];

    AtomicFile a;
    atomic_begin(&a, pp->output, "--output dataset");
    const char *tmp = a.tmp;
    hid_t f = h5_create(tmp);
    h5_write_attr_str(f, "format", "rnntrain-sequences", tmp);
    h5_write_attr_int(f, "version", 1, tmp);
    h5_write_attr_int(f, "checksums", 1, tmp); /* every dataset has one (seq_open verifies) */
    h5_write_attr_str(f, "task", "seq2seq", tmp);
    h5_write_attr_str(f, "inputs", "tokens", tmp);
    h5_write_attr_int(f, "steps", g.T, tmp);
    h5_write_attr_int(f, "vocab_size", K, tmp);
    h5_write_attr_int(f, "classes", K, tmp);
    h5_write_attr_str(f, "target_kind", pairs_kind_name(pp->target), tmp);
    write_symbols(f, "target_symbols", "</s>\n<s>\n", sorted[1], p.syms[1].n, tmp);
    if (pp->source == PAIRS_FEATURES) {
        h5_write_attr_str(f, "source", "features", tmp);
        h5_write_attr_int(f, "cond", p.C, tmp);
    } else {
        h5_write_attr_str(f, "source", "tokens", tmp);
        h5_write_attr_int(f, "source_steps", g.S, tmp);
        h5_write_attr_int(f, "source_vocab_size", Vs, tmp);
        h5_write_attr_str(f, "source_kind", pairs_kind_name(pp->source), tmp);
        write_symbols(f, "source_symbols", "", sorted[0], Vs, tmp);
    }
    int64_t *order = rt_malloc((size_t)p.n * sizeof *order, "split rows");
    uint8_t *starts = rt_malloc((size_t)p.n, "split groups");
    for (int s = 0; s < 3; s++) {
        int64_t N = 0;
        for (int64_t k = bounds[s]; k < bounds[s + 1]; k++)
            for (int64_t j = first[perm[k]]; j < first[perm[k] + 1]; j++) {
                starts[N] = j == first[perm[k]];
                order[N++] = by_group[j];
            }
        rows[s] = N;
        sources[s] = bounds[s + 1] - bounds[s];
        write_split(f, tmp, s, &p, &g, order, starts, N);
    }
    h5_close_file(f, tmp);
    atomic_commit(&a);
    char src_desc[96];
    if (pp->source == PAIRS_FEATURES)
        snprintf(src_desc, sizeof src_desc, "features, C %d", p.C);
    else
        snprintf(src_desc, sizeof src_desc, "%s, %d symbols, S %d", pairs_kind_name(pp->source),
                 Vs, g.S);
    printf("%s: seq2seq dataset | train %lld rows (%lld sources), valid %lld (%lld), test %lld "
           "(%lld) | source %s | target %s, K %d (%d symbols + </s>, <s>), T %d\n", pp->output,
           (long long)rows[0], (long long)sources[0], (long long)rows[1], (long long)sources[1],
           (long long)rows[2], (long long)sources[2], src_desc, pairs_kind_name(pp->target), K,
           K - 2, g.T);

    free(order);
    free(starts);
    free(perm);
    free(by_group);
    free(first);
    for (int c = 0; c < 2; c++) {
        free(rank[c]);
        free(sorted[c]);
        symtab_free(&p.syms[c]);
    }
    symtab_free(&p.sources);
    free(p.rows);
    free(p.ids);
    free(p.values);
    free(p.text);
}
