/*
 * cli.h - the `kprobe record` and `kprobe replay` subcommands. argv[0] is the subcommand name;
 * each returns the process exit status (see --help of each for its meaning).
 */
#ifndef KP_REPLAY_CLI_H
#define KP_REPLAY_CLI_H

int replay_cmd_record(int argc, char **argv);
int replay_cmd_replay(int argc, char **argv);

/* `kprobed --replay-worker ...` (argv[0] = "--replay-worker"): one replay for kprobed's API,
 * its result as JSON on stdout. See replay/worker.c. */
int replay_worker_main(int argc, char **argv);

#endif
