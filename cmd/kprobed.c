/*
 * kprobed - the appliance: receives agent frames and OTLP spans, stores events, runs the causal
 * engine, serves queries, the live stream and the dashboard. Thin: flags and config here.
 */
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/util.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: kprobed [--config FILE] [--set key=value ...]\n"
		     "\n"
		     "The kprobe appliance. Listens on ingest.port (agent frames), api.port (HTTP API,\n"
		     "dashboard, /metrics) and otlp.port (OTLP/HTTP spans); data in store.dataDir.\n"
		     "\n"
		     "  --config FILE       configuration file (default: $KPROBE_CONFIG, ./kprobe.conf)\n"
		     "  --set key=value     override one configuration key (repeatable)\n"
		     "  --print-config      print the effective configuration and exit\n"
		     "  --help-config       list every configuration key with its default and exit\n"
		     "  -h, --help          this help\n");
}

int main(int argc, char **argv)
{
	log_init("kprobed");
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
		fprintf(stderr, "kprobed: %s\n", err);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--print-config")) {
			config_print(&cfg, stdout);
			config_free(&cfg);
			return 0;
		}
	}
	fprintf(stderr, "kprobed: appliance not built yet\n");
	config_free(&cfg);
	return 1;
}
