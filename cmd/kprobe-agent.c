/*
 * kprobe-agent - the per-node recorder: loads the BPF programs, drains the ring buffer, adds
 * process metadata, batches, compresses and ships frames to kprobed (or prints NDJSON with
 * --stdout). Thin: flags and config here, the work in agent/.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/loop.h"
#include "agent/ship.h"
#include "agent/ndjson.h"
#include "common/config.h"
#include "common/util.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kprobe-agent [--config FILE] [--set key=value ...] [options]\n"
		"\n"
		"Records kernel events on this node and ships them to kprobed (agent.appliance).\n"
		"With replay.capture.comms / .pids / .cgroups set (off by default) it also records\n"
		"the system-call stream of those processes, with the bytes they read (up to\n"
		"replay.capture.maxBytes per call), so kprobed can build recordings for\n"
		"`kprobe replay --pid P --from T --to T` and `kprobe replay --incident KEY`.\n"
		"\n"
		"  --stdout            print events as NDJSON instead of shipping them\n"
		"  --duration S        stop after S seconds (default: run until SIGINT/SIGTERM)\n"
		"  --pid P             record only process P (repeatable; adds to "
		"probe.filter.pids)\n"
		"  --comm NAME         record only processes named NAME (repeatable)\n"
		"  --ready-file FILE   create FILE once the probe is attached (for supervisors)\n"
		"  --config FILE       configuration file (default: $KPROBE_CONFIG, "
		"./kprobe.conf)\n"
		"  --set key=value     override one configuration key (repeatable)\n"
		"  --print-config      print the effective configuration and exit\n"
		"  --help-config       list every configuration key with its default and exit\n"
		"  -h, --help          this help\n");
}

/* "2", "2.5" (seconds) or "250ms", "1m" (parse_duration_ns units). */
static int parse_seconds(const char *s, uint64_t *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end != s && !*end && v > 0 && v < 1e9) {
		*out = (uint64_t)(v * 1e9);
		return 0;
	}
	return parse_duration_ns(s, out);
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
	struct agent_opts opts = {0};
	uint32_t *pids = xcalloc((size_t)argc, sizeof(*pids));
	const char **comms = xcalloc((size_t)argc, sizeof(*comms));
	bool to_stdout = false;
	const char *ready_file = NULL;
	int rc = 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--print-config")) {
			config_print(&cfg, stdout);
			rc = 0;
			goto out;
		} else if (!strcmp(a, "--stdout")) {
			to_stdout = true;
		} else if (!strcmp(a, "--duration") && val) {
			if (parse_seconds(val, &opts.duration_ns) < 0) {
				fprintf(stderr,
					"kprobe-agent: --duration '%s': give seconds (2, 0.5) or "
					"a duration (250ms, 1m)\n",
					val);
				goto out;
			}
			i++;
		} else if (!strcmp(a, "--pid") && val) {
			char *end;
			unsigned long p = strtoul(val, &end, 10);
			if (*end || !p || p > UINT32_MAX) {
				fprintf(stderr, "kprobe-agent: --pid '%s' is not a process id\n",
					val);
				goto out;
			}
			pids[opts.npids++] = (uint32_t)p;
			i++;
		} else if (!strcmp(a, "--ready-file") && val) {
			ready_file = val;
			i++;
		} else if (!strcmp(a, "--comm") && val) {
			comms[opts.ncomms++] = val;
			i++;
		} else {
			fprintf(stderr, "kprobe-agent: unknown or incomplete option '%s'\n", a);
			usage(stderr);
			goto out;
		}
	}
	opts.pids = pids;
	opts.comms = comms;
	struct sink sink;
	struct loop *loop = NULL;
	if (to_stdout) {
		ndjson_sink_open(&sink, STDOUT_FILENO);
	} else {
		/* Shipping: the sink runs on the agent's io_uring loop (sockets, timers, acks). */
		signal(SIGPIPE, SIG_IGN);
		int r = loop_init(&loop, 256);
		if (r < 0) {
			fprintf(stderr, "kprobe-agent: io_uring is not available (%s): Linux 5.19+ "
					"with io_uring enabled is needed\n",
				strerror(-r));
			rc = 1;
			goto out;
		}
		r = ship_sink_open(&cfg, loop, &sink);
		if (r < 0) {
			fprintf(stderr, "kprobe-agent: cannot start shipping to %s: %s (check "
					"agent.appliance and agent.spoolDir)\n",
				cfg.agent_appliance, strerror(-r));
			loop_free(loop);
			rc = 1;
			goto out;
		}
		opts.loop = loop;
	}
	opts.ready_file = ready_file;
	rc = agent_run(&cfg, &opts, &sink) < 0 ? 1 : 0;
	loop_free(loop);
out:
	free(pids);
	free(comms);
	config_free(&cfg);
	return rc;
}
