/*
 * kprobe - the command line: `up` (appliance + agent on this host), `demo`, `query`, `record`,
 * `replay`. Thin: each subcommand parses its flags and calls into its module.
 */
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/util.h"
#include "replay/cli.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: kprobe COMMAND [options]\n"
		     "\n"
		     "  up        run kprobed and kprobe-agent on this host, print the URLs\n"
		     "  demo      run a real incident on this host and print its root cause\n"
		     "  query     run a query against kprobed and print the result\n"
		     "  record    run a command with system-call capture and write a recording\n"
		     "  replay    replay a recording under ptrace, with injected delays or failures\n"
		     "\n"
		     "`kprobe COMMAND --help` describes each command.\n");
}

int main(int argc, char **argv)
{
	log_init("kprobe");
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "record"))
		return replay_cmd_record(argc - 1, argv + 1);
	if (!strcmp(argv[1], "replay"))
		return replay_cmd_replay(argc - 1, argv + 1);
	fprintf(stderr, "kprobe: unknown command '%s' (see kprobe --help)\n", argv[1]);
	return 2;
}
