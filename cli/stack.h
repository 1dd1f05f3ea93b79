/*
 * stack.h - runs kprobed and kprobe-agent on this host as child processes (for `kprobe up`,
 * `kprobe demo` and the end-to-end tests): starts them with a data directory, waits until
 * kprobed listens and the agent's probe is attached, and stops them cleanly (agent first, so its
 * last frames are acked).
 */
#ifndef KP_STACK_H
#define KP_STACK_H

#include <sys/types.h>

struct stack {
	pid_t kprobed, agent;
	int api_port, ingest_port, otlp_port;
	char data_dir[512];
	char log_path[600]; /* kprobed + agent output, when redirected */
};

struct stack_opts {
	const char *data_dir;       /* created if missing */
	const char *config;         /* --config for both, or NULL */
	const char *const *sets;    /* extra --set key=value for both, NULL terminated; may be NULL */
	int ephemeral_ports;        /* api/ingest/otlp on port 0 (tests, demo) */
	int quiet;                  /* children's output to <data_dir>/kprobe.log */
	int no_agent;               /* appliance only */
	int timeout_ms;             /* for start-up (default 30000) */
};

/* The directory holding the kprobe binaries (where this one runs from). */
const char *stack_bindir(void);

/* Starts both; returns 0, or -errno with what went wrong (and what to do) in err. */
int stack_start(struct stack *s, const struct stack_opts *o, char *err, size_t errlen);
/* SIGTERM to the agent, wait (it drains), then kprobed; SIGKILL after timeout_ms each. */
void stack_stop(struct stack *s, int timeout_ms);
/* 0 while both run; else which one exited (-1 kprobed, -2 agent) with its status in *status. */
int stack_check(struct stack *s, int *status);

/* Reads <data_dir>/kprobed.ports of a running appliance. 0 or -errno. */
int stack_read_ports(const char *data_dir, int *api, int *ingest, int *otlp, pid_t *pid);

#endif
