#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"

void cli_bad(const char *option, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt_die(EXIT_USAGE, "--%s: %s", option, msg);
}

static int in_choices(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static void range_text(const CliOption *o, char *buf, size_t size) {
    if (o->min > o->max)
        snprintf(buf, size, "a number");
    else if (o->max >= 1e300)
        snprintf(buf, size, "a number >= %g", o->min);
    else
        snprintf(buf, size, "a number in [%g, %g]", o->min, o->max);
}

static void set_value(CliOption *o, const char *v) {
    char range[128], *end = NULL;
    switch (o->type) {
    case CLI_STR:
        if (o->choices && !in_choices(o->choices, v))
            cli_bad(o->name, "expected one of %s, found '%s'", o->choices, v);
        *(char **)o->dest = (char *)v;
        break;
    case CLI_INT:
    case CLI_I64: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            cli_bad(o->name, "expected an integer, found '%s'", v);
        if (o->min <= o->max && ((double)x < o->min || (double)x > o->max)) {
            range_text(o, range, sizeof range);
            cli_bad(o->name, "expected an integer %s, found '%s'", range + 9, v);
        }
        if (o->type == CLI_INT) {
            if (x < -2147483647LL || x > 2147483647LL)
                cli_bad(o->name, "value '%s' is too large", v);
            *(int *)o->dest = (int)x;
        } else {
            *(int64_t *)o->dest = (int64_t)x;
        }
        break;
    }
    case CLI_DOUBLE: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            cli_bad(o->name, "expected a finite number, found '%s'", v);
        if (o->min <= o->max && (x < o->min || x > o->max)) {
            range_text(o, range, sizeof range);
            cli_bad(o->name, "expected %s, found '%s'", range, v);
        }
        *(double *)o->dest = x;
        break;
    }
    default:
        REQUIRE(0);
    }
}

/* The value of o as text ("" for an unset string or a flag). */
static void value_text(const CliOption *o, char *buf, size_t size) {
    buf[0] = 0;
    switch (o->type) {
    case CLI_STR:
        if (*(char **)o->dest) snprintf(buf, size, "%s", *(char **)o->dest);
        break;
    case CLI_INT:
        snprintf(buf, size, "%d", *(int *)o->dest);
        break;
    case CLI_I64:
        snprintf(buf, size, "%lld", (long long)*(int64_t *)o->dest);
        break;
    case CLI_DOUBLE:
        snprintf(buf, size, "%g", *(double *)o->dest);
        break;
    default:
        break;
    }
}

/* defaults[i]: option i's value before parsing, shown as its default unless the help text
 * says it itself. */
static void print_help(const char *command, const char *summary, const CliOption *opts,
                       int nopts, char (*defaults)[64]) {
    printf("usage: rnntrain %s [options]\n\n%s\n\noptions:\n", command, summary);
    for (int i = 0; i < nopts; i++) {
        const CliOption *o = &opts[i];
        char left[96], dflt[96] = "";
        if (o->type == CLI_FLAG)
            snprintf(left, sizeof left, "--%s", o->name);
        else
            snprintf(left, sizeof left, "--%s %s%s", o->name, o->metavar ? o->metavar : "X",
                     o->type == CLI_LIST ? "..." : "");
        if (defaults[i][0] && !strstr(o->help, "(default") && !o->required)
            snprintf(dflt, sizeof dflt, " (default %s)", defaults[i]);
        printf("  %-30s %s%s%s\n", left, o->help, dflt, o->required ? " (required)" : "");
    }
    printf("  %-30s %s\n", "--help", "show this help and exit");
}

void cli_parse(const char *command, const char *summary, CliOption *opts, int nopts, int argc,
               char **argv) {
    char (*defaults)[64] = rt_calloc((size_t)(nopts ? nopts : 1), sizeof *defaults, "defaults");
    for (int i = 0; i < nopts; i++) value_text(&opts[i], defaults[i], sizeof defaults[i]);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            if (dist_rank() == 0) print_help(command, summary, opts, nopts, defaults);
            fflush(stdout);
            dist_finalize();
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0)
            rt_die(EXIT_USAGE, "%s: unexpected argument '%s' (options start with --; see "
                   "'rnntrain %s --help')", command, arg, command);
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        CliOption *o = NULL;
        for (int k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, name, nlen) == 0)
                o = &opts[k];
        if (!o)
            rt_die(EXIT_USAGE, "%s: unknown option '--%.*s' (see 'rnntrain %s --help')",
                   command, (int)nlen, name, command);
        if (o->seen && o->type != CLI_LIST)
            rt_die(EXIT_USAGE, "%s: option --%s given twice", command, o->name);
        o->seen = 1;
        if (o->type == CLI_FLAG) {
            if (eq) cli_bad(o->name, "takes no value");
            *(int *)o->dest = 1;
            continue;
        }
        if (o->type == CLI_LIST) {
            CliList *l = o->dest;
            if (!l->items) l->items = rt_calloc((size_t)argc, sizeof(char *), "option list");
            if (eq) l->items[l->count++] = (char *)eq + 1;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                l->items[l->count++] = argv[++i];
            if (l->count == 0) cli_bad(o->name, "expected at least one %s", o->metavar);
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) cli_bad(o->name, "missing value (expected %s)", o->metavar);
            v = argv[++i];
        }
        set_value(o, v);
    }
    free(defaults);
    for (int k = 0; k < nopts; k++)
        if (opts[k].required && !opts[k].seen)
            rt_die(EXIT_USAGE, "%s: option --%s is required (see 'rnntrain %s --help')",
                   command, opts[k].name, command);
}

void cli_format_config(const CliOption *opts, int nopts, char *buf, size_t size) {
    size_t used = strlen(buf);
    for (int k = 0; k < nopts && used < size; k++) {
        const CliOption *o = &opts[k];
        int n = 0;
        switch (o->type) {
        case CLI_STR:
            n = snprintf(buf + used, size - used, "%s=%s\n", o->name,
                         *(char **)o->dest ? *(char **)o->dest : "");
            break;
        case CLI_INT:
        case CLI_FLAG:
            n = snprintf(buf + used, size - used, "%s=%d\n", o->name, *(int *)o->dest);
            break;
        case CLI_I64:
            n = snprintf(buf + used, size - used, "%s=%lld\n", o->name,
                         (long long)*(int64_t *)o->dest);
            break;
        case CLI_DOUBLE:
            n = snprintf(buf + used, size - used, "%s=%.17g\n", o->name, *(double *)o->dest);
            break;
        case CLI_LIST: {
            const CliList *l = o->dest;
            n = snprintf(buf + used, size - used, "%s=", o->name);
            for (int i = 0; i < l->count && used + (size_t)n < size; i++)
                n += snprintf(buf + used + n, size - used - (size_t)n, i ? ",%s" : "%s",
                              l->items[i]);
            if (used + (size_t)n < size) n += snprintf(buf + used + n, size - used - (size_t)n, "\n");
            break;
        }
        }
        if (n < 0) break;
        used += (size_t)n;
    }
}
