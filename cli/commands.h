/* The commands of build/medgemma; argv[0] is the command's name. Each returns
 * the process exit status (0 success, 1 failure, 2 usage error).
 */
#ifndef CLI_COMMANDS_H
#define CLI_COMMANDS_H

int cmd_serve(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_synth_model(int argc, char **argv);
int cmd_gpu_plan(int argc, char **argv);

#endif
