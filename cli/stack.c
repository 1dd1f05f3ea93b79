/*
 * stack.c - kprobed + kprobe-agent as child processes (see stack.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/stack.h"
#include "common/util.h"

/* The directory of this binary, or the nearest one above it holding kprobed (benchmark
 * drivers live in bin/bench/<name>/). */
const char *stack_bindir(void)
{
	static char dir[PATH_MAX];
	if (!dir[0]) {
		ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 16);
		if (n <= 0)
			return ".";
		dir[n] = '\0';
		char *s = strrchr(dir, '/');
		if (s)
			*s = '\0';
		char probe[PATH_MAX + 16], keep[PATH_MAX];
		snprintf(keep, sizeof(keep), "%s", dir);
		for (int up = 0; up < 3; up++) {
			snprintf(probe, sizeof(probe), "%s/kprobed", dir);
			if (access(probe, X_OK) == 0)
				return dir;
			s = strrchr(dir, '/');
			if (!s || s == dir)
				break;
			*s = '\0';
		}
		snprintf(dir, sizeof(dir), "%s", keep);
	}
	return dir;
}

int stack_read_ports(const char *data_dir, int *api, int *ingest, int *otlp, pid_t *pid)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/kprobed.ports", data_dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int p = 0, a = 0, i = 0, o = 0;
	int n = fscanf(f, "api=%d ingest=%d otlp=%d pid=%d", &a, &i, &o, &p);
	fclose(f);
	if (n != 4)
		return -EINVAL;
	if (api)
		*api = a;
	if (ingest)
		*ingest = i;
	if (otlp)
		*otlp = o;
	if (pid)
		*pid = p;
	return 0;
}

static pid_t spawn(const char *bin, char **argv, const char *log)
{
	pid_t p = fork();
	if (p < 0)
		return -errno;
	if (p == 0) {
		if (log) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		/* The children die with us if we are killed (kprobe up killed with -9). */
		signal(SIGINT, SIG_IGN); /* Ctrl-C goes to `kprobe up`, which stops them in order */
		execv(bin, argv);
		fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	return p;
}

static int add_arg(char **argv, int n, int max, const char *a)
{
	if (n < max - 1)
		argv[n++] = (char *)a;
	argv[n] = NULL;
	return n;
}

int stack_start(struct stack *s, const struct stack_opts *o, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->data_dir, sizeof(s->data_dir), "%s", o->data_dir);
	int r = mkdir_p(s->data_dir, 0750);
	if (r < 0) {
		snprintf(err, errlen, "cannot create %s: %s", s->data_dir, strerror(-r));
		return r;
	}
	char ports[600];
	snprintf(ports, sizeof(ports), "%s/kprobed.ports", s->data_dir);
	unlink(ports);
	if (o->quiet)
		snprintf(s->log_path, sizeof(s->log_path), "%s/kprobe.log", s->data_dir);
	char kprobed[PATH_MAX], agent[PATH_MAX];
	snprintf(kprobed, sizeof(kprobed), "%s/kprobed", stack_bindir());
	snprintf(agent, sizeof(agent), "%s/kprobe-agent", stack_bindir());
	if (access(kprobed, X_OK) < 0 || (!o->no_agent && access(agent, X_OK) < 0)) {
		snprintf(err, errlen, "kprobed / kprobe-agent not found next to %s (run make)",
			 stack_bindir());
		return -ENOENT;
	}

	char set_data[600], set_spool[640];
	snprintf(set_data, sizeof(set_data), "store.dataDir=%s", s->data_dir);
	snprintf(set_spool, sizeof(set_spool), "agent.spoolDir=%s/spool", s->data_dir);
	char *argv[96];
	int n = add_arg(argv, 0, 96, kprobed);
	if (o->config) {
		n = add_arg(argv, n, 96, "--config");
		n = add_arg(argv, n, 96, o->config);
	}
	for (int i = 0; o->sets && o->sets[i]; i++) {
		n = add_arg(argv, n, 96, "--set");
		n = add_arg(argv, n, 96, o->sets[i]);
	}
	n = add_arg(argv, n, 96, "--set");
	n = add_arg(argv, n, 96, set_data);
	if (o->ephemeral_ports) {
		static const char *eph[] = {"api.port=0", "ingest.port=0", "otlp.port=0"};
		for (int i = 0; i < 3; i++) {
			n = add_arg(argv, n, 96, "--set");
			n = add_arg(argv, n, 96, eph[i]);
		}
	}
	s->kprobed = spawn(kprobed, argv, o->quiet ? s->log_path : NULL);
	if (s->kprobed < 0) {
		snprintf(err, errlen, "cannot start kprobed: %s", strerror(-s->kprobed));
		return s->kprobed;
	}
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout * NSEC_PER_MSEC;
	pid_t ppid;
	while (stack_read_ports(s->data_dir, &s->api_port, &s->ingest_port, &s->otlp_port, &ppid) <
	       0) {
		int st;
		if (waitpid(s->kprobed, &st, WNOHANG) == s->kprobed) {
			s->kprobed = 0;
			snprintf(err, errlen, "kprobed exited during start-up (status %d)%s%s",
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st),
				 o->quiet ? "; see " : "", o->quiet ? s->log_path : "");
			return -ECHILD;
		}
		if (now_mono_ns() > deadline) {
			stack_stop(s, 2000);
			snprintf(err, errlen, "kprobed did not come up within %d ms", timeout);
			return -ETIMEDOUT;
		}
		usleep(20000);
	}
	if (o->no_agent)
		return 0;

	char set_app[64];
	snprintf(set_app, sizeof(set_app), "agent.appliance=127.0.0.1:%d", s->ingest_port);
	n = add_arg(argv, 0, 96, agent);
	if (o->config) {
		n = add_arg(argv, n, 96, "--config");
		n = add_arg(argv, n, 96, o->config);
	}
	for (int i = 0; o->sets && o->sets[i]; i++) {
		n = add_arg(argv, n, 96, "--set");
		n = add_arg(argv, n, 96, o->sets[i]);
	}
	n = add_arg(argv, n, 96, "--set");
	n = add_arg(argv, n, 96, set_app);
	n = add_arg(argv, n, 96, "--set");
	n = add_arg(argv, n, 96, set_spool);
	/* The agent says when its programs are attached: a ready file. */
	char ready[600];
	snprintf(ready, sizeof(ready), "%s/agent.ready", s->data_dir);
	unlink(ready);
	n = add_arg(argv, n, 96, "--ready-file");
	n = add_arg(argv, n, 96, ready);
	s->agent = spawn(agent, argv, o->quiet ? s->log_path : NULL);
	if (s->agent < 0) {
		int e = s->agent;
		s->agent = 0;
		stack_stop(s, 2000);
		snprintf(err, errlen, "cannot start kprobe-agent: %s", strerror(-e));
		return e;
	}
	while (access(ready, F_OK) < 0) {
		int st;
		if (waitpid(s->agent, &st, WNOHANG) == s->agent) {
			s->agent = 0;
			stack_stop(s, 2000);
			snprintf(err, errlen,
				 "kprobe-agent exited during start-up (status %d): loading BPF needs "
				 "root and a kernel with BTF%s%s",
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st),
				 o->quiet ? "; see " : "", o->quiet ? s->log_path : "");
			return -ECHILD;
		}
		if (now_mono_ns() > deadline) {
			stack_stop(s, 2000);
			snprintf(err, errlen, "kprobe-agent did not attach within %d ms", timeout);
			return -ETIMEDOUT;
		}
		usleep(20000);
	}
	return 0;
}

static void stop_one(pid_t *p, int timeout_ms)
{
	if (*p <= 0)
		return;
	kill(*p, SIGTERM);
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
	for (;;) {
		pid_t w = waitpid(*p, NULL, WNOHANG);
		if (w == *p || (w < 0 && errno == ECHILD))
			break;
		if (now_mono_ns() > deadline) {
			kill(*p, SIGKILL);
			waitpid(*p, NULL, 0);
			break;
		}
		usleep(10000);
	}
	*p = 0;
}

void stack_stop(struct stack *s, int timeout_ms)
{
	stop_one(&s->agent, timeout_ms);
	stop_one(&s->kprobed, timeout_ms);
}

int stack_check(struct stack *s, int *status)
{
	if (s->kprobed > 0 && waitpid(s->kprobed, status, WNOHANG) == s->kprobed) {
		s->kprobed = 0;
		return -1;
	}
	if (s->agent > 0 && waitpid(s->agent, status, WNOHANG) == s->agent) {
		s->agent = 0;
		return -2;
	}
	return 0;
}
