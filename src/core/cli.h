/* cli: a table-driven option parser shared by every subcommand. Each option has a type,
 * a destination, a range or a list of choices, and help text, so `--help` is generated
 * and every bad value gets the same kind of message:
 *   rnntrain: error: --lr: expected a number > 0, found '-1'
 * Accepts "--name value" and "--name=value". */
#ifndef RNNTRAIN_CLI_H
#define RNNTRAIN_CLI_H

#include <stddef.h>
#include <stdint.h>

typedef enum { CLI_STR, CLI_INT, CLI_I64, CLI_DOUBLE, CLI_FLAG, CLI_LIST } CliType;

typedef struct {
    const char *name;    /* without the leading "--" */
    CliType type;
    void *dest;          /* char** / int* / int64_t* / double* / int* / CliList* */
    const char *metavar; /* shown in help */
    const char *help;
    double min, max;     /* numeric range (inclusive); ignored when min > max */
    const char *choices; /* "a|b|c" for strings, or NULL */
    int required;
    int seen;            /* set by the parser */
} CliOption;

typedef struct {
    char **items;
    int count;
} CliList;

/* Parses argv[0..argc) (argv[0] is the subcommand name). Prints help and exits 0 on
 * --help (each option's value before parsing is shown as its default, unless its help
 * text names one); dies with EXIT_USAGE on anything wrong. */
void cli_parse(const char *command, const char *summary, CliOption *opts, int nopts, int argc,
               char **argv);
/* Appends "name=value\n" for every option to buf (the effective configuration). */
void cli_format_config(const CliOption *opts, int nopts, char *buf, size_t size);
/* Dies with EXIT_USAGE: "--<option>: <message>". */
void cli_bad(const char *option, const char *fmt, ...) __attribute__((format(printf, 2, 3)))
__attribute__((noreturn));

#endif
