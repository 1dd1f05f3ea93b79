/*
 * kprobe - the command line: `up` (appliance + agent on this host), `demo`, `query`, `record`,
 * `replay`. Thin: each subcommand parses its flags and calls into its module.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/demo.h"
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
	/* The demo's roles are this binary under another name (see cli/demo.h). */
	int role = demo_role_main(argc, argv);
	if (role >= 0)
		return role;
	log_init("kprobe");
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {{"up", cli_up},
		    {"query", cli_query},
		    {"demo", cli_demo},
		    {"record", replay_cmd_record},
		    {"replay", replay_cmd_replay}};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "kprobe: unknown command '%s' (see kprobe --help)\n", argv[1]);
	return 2;
}
