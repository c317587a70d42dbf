/* commands: the subcommands of the rnntrain binary (each parses its own options). */
#ifndef RNNTRAIN_COMMANDS_H
#define RNNTRAIN_COMMANDS_H

int cmd_prepare(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_predict(int argc, char **argv);

#endif
