/*
 * kprobe-agent - the per-node recorder: loads the BPF programs, drains the ring buffer, adds
 * process metadata, batches, compresses and ships frames to kprobed (or prints NDJSON with
 * --stdout). Thin: flags and config here, the work in agent/.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/util.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kprobe-agent [--config FILE] [--set key=value ...] [options]\n"
		"\n"
		"Records kernel events on this node and ships them to kprobed (agent.appliance).\n"
		"\n"
		"  --stdout            print events as NDJSON instead of shipping them\n"
		"  --duration S        stop after S seconds (default: run until SIGINT/SIGTERM)\n"
		"  --pid P             record only process P (repeatable; adds to probe.filter.pids)\n"
		"  --comm NAME         record only processes named NAME (repeatable)\n"
		"  --config FILE       configuration file (default: $KPROBE_CONFIG, ./kprobe.conf)\n"
		"  --set key=value     override one configuration key (repeatable)\n"
		"  --print-config      print the effective configuration and exit\n"
		"  --help-config       list every configuration key with its default and exit\n"
		"  -h, --help          this help\n");
}

int main(int argc, char **argv)
{
	log_init("kprobe-agent");
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--help-config")) {
			config_help(stdout);
			return 0;
		}
	}
	struct kp_config cfg;
	char err[512];
	config_init(&cfg);
	if (config_from_args(&cfg, &argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "kprobe-agent: %s\n", err);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--print-config")) {
			config_print(&cfg, stdout);
			config_free(&cfg);
			return 0;
		}
	}
	fprintf(stderr, "kprobe-agent: recorder not built yet\n");
	config_free(&cfg);
	return 1;
}
