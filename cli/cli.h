/*
 * cli.h - the `kprobe` subcommands (cmd/kprobe.c dispatches to these).
 */
#ifndef KP_CLI_H
#define KP_CLI_H

#include <signal.h>
#include <stddef.h>

int cli_up(int argc, char **argv);
int cli_query(int argc, char **argv);
int cli_demo(int argc, char **argv);

/* HOST:PORT of kprobed's API from --api, else `kprobe up`'s data dir, else the config. */
int cli_resolve_api(const char *api, const char *data, char *host, size_t hostcap, int *port);

struct cli_demo_opts {
	int quick;                         /* the short form (~25 s) */
	int json;                          /* print the chain as JSON */
	int api_port, otlp_port;           /* a running kprobed on 127.0.0.1 */
	const char *report;                /* if set: every payment's outcome and root cause, NDJSON */
	volatile sig_atomic_t *stop;       /* set by a signal handler to abort */
};

/*
 * Runs the demo incident against a running appliance and prints the root-cause chain of the
 * first failed payment. Returns 0, or 1 with the reason on stderr.
 */
int cli_demo_run(const struct cli_demo_opts *o);

#endif
