/* layer: the registry of layer kinds and the kind-independent part of a layer's life. */
#include "layer.h"

#include <string.h>

#include "cell.h"
#include "common.h"

const LayerKind *const layer_kinds[] = {&layer_rnn, &layer_lstm, &layer_gru, NULL};

const LayerKind *layer_kind_by_name(const char *name) {
    for (int i = 0; layer_kinds[i]; i++)
        if (strcmp(layer_kinds[i]->name, name) == 0) return layer_kinds[i];
    return NULL;
}

const char *layer_kind_names(void) {
    static char names[256];
    if (!names[0])
        for (int i = 0; layer_kinds[i]; i++) {
            if (i) strncat(names, "|", sizeof names - strlen(names) - 1);
            strncat(names, layer_kinds[i]->name, sizeof names - strlen(names) - 1);
        }
    return names;
}

void layer_declare(Layer *l, const LayerKind *kind, int D, int H, Params *p, const char *prefix,
                   const char *suffix) {
    REQUIRE(kind && D > 0 && H > 0);
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->D = D;
    l->H = H;
    REQUIRE(kind->forward && kind->backward && kind->backward_input && kind->step);
    kind->declare(l, p, prefix, suffix);
    REQUIRE(l->param_count > 0 && l->param_first + l->param_count <= p->count);
}

void layer_alloc(Layer *l, const Params *p, int B, int Tmax) {
    REQUIRE(B > 0 && Tmax > 0);
    l->B = B;
    l->Tmax = Tmax;
    l->kind->alloc(l, p);
    REQUIRE(l->y != NULL);
}

void layer_free(Layer *l) {
    if (l->kind) l->kind->free(l);
    memset(l, 0, sizeof *l);
}
