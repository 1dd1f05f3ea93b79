/*
 * up.c - `kprobe up`: the appliance and the agent on this host, until Ctrl-C.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/stack.h"
#include "common/util.h"

static volatile sig_atomic_t up_stop;
static void on_sig(int sig)
{
	up_stop = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kprobe up [--data DIR] [--config FILE] [--set key=value ...] [--demo]\n"
		"\n"
		"Runs kprobed (the appliance) and kprobe-agent (the recorder) on this host, prints\n"
		"the dashboard URL, and stops both cleanly on Ctrl-C. Needs root (BPF).\n"
		"\n"
		"  --data DIR        where events, WAL, graph and spool live (default ./kprobe-data)\n"
		"  --config FILE     configuration for both (default ./kprobe.conf if present)\n"
		"  --set key=value   override a configuration key (repeatable)\n"
		"  --demo            once up, run the demo incident so the dashboard has a real one\n"
		"  -h, --help        this help\n");
}

int cli_up(int argc, char **argv)
{
	const char *data = "./kprobe-data", *config = NULL;
	const char *sets[64];
	int nsets = 0, demo = 0;
	static const struct option opts[] = {{"data", required_argument, 0, 'd'},
					     {"config", required_argument, 0, 'c'},
					     {"set", required_argument, 0, 's'},
					     {"demo", no_argument, 0, 'D'},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			data = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 's':
			if (nsets < 63)
				sets[nsets++] = optarg;
			break;
		case 'D':
			demo = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	sets[nsets] = NULL;
	if (!config && access("kprobe.conf", R_OK) == 0)
		config = "kprobe.conf";
	if (geteuid() != 0)
		fprintf(stderr, "kprobe up: warning: not root; the agent needs root to load its BPF "
				"programs\n");

	struct sigaction sa = {.sa_handler = on_sig};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	fprintf(stderr, "kprobe up: starting kprobed and kprobe-agent (data in %s)...\n", data);
	struct stack s;
	struct stack_opts so = {.data_dir = data, .config = config, .sets = sets};
	char err[512];
	int r = stack_start(&s, &so, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "kprobe up: %s\n", err);
		return 1;
	}
	printf("\nkprobe is up — data in %s\n", data);
	printf("  dashboard  http://127.0.0.1:%d/\n", s.api_port);
	printf("  query      kprobe query \"SELECT type, count() FROM events GROUP BY type\"\n");
	printf("  OTLP       http://127.0.0.1:%d/v1/traces  (point your OpenTelemetry exporter "
	       "here)\n",
	       s.otlp_port);
	printf("  agent      recording this host, shipping to 127.0.0.1:%d\n", s.ingest_port);
	printf("Ctrl-C stops both.\n\n");
	fflush(stdout);

	if (demo && !up_stop) {
		struct cli_demo_opts d = {.quick = 1, .api_port = s.api_port, .otlp_port = s.otlp_port,
					  .stop = &up_stop};
		if (cli_demo_run(&d) != 0)
			fprintf(stderr, "kprobe up: the demo incident did not complete; kprobe keeps "
					"running\n");
		else
			printf("\nOpen http://127.0.0.1:%d/ to explore it.\n", s.api_port);
		fflush(stdout);
	}

	int status = 0, which = 0;
	while (!up_stop && !(which = stack_check(&s, &status)))
		usleep(100000);
	if (which)
		fprintf(stderr, "kprobe up: %s exited (status %d); stopping\n",
			which == -1 ? "kprobed" : "kprobe-agent",
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	fprintf(stderr, "kprobe up: stopping the agent (draining its last frames), then kprobed\n");
	stack_stop(&s, 10000);
	fprintf(stderr, "kprobe up: stopped\n");
	return which ? 1 : 0;
}
