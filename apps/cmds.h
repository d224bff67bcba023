/* The subcommands of `kiln`. Each lives in its own file in apps/ and is listed in kiln.c's table. */
#ifndef KN_CMDS_H
#define KN_CMDS_H

/* Each takes the arguments after the subcommand name (argv[0] is the subcommand) and returns the exit code. */
int kn_cmd_demo(int argc, char **argv);
int kn_cmd_run(int argc, char **argv);
int kn_cmd_serve(int argc, char **argv);
int kn_cmd_bench(int argc, char **argv);
int kn_cmd_quantize(int argc, char **argv);
int kn_cmd_cache(int argc, char **argv);
int kn_cmd_gguf(int argc, char **argv);

#endif
