/*
 * procs.h - running the project's binaries from integration tests: a command with its stdout
 * and stderr captured, a test server and its port, paths under bin/ and under the test's
 * scratch directory, files and executable copies.
 */
#ifndef KP_TESTS_PROCS_H
#define KP_TESTS_PROCS_H

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test.h"

struct run {
	int code;
	char out[65536];
	char err[65536];
};

static inline void slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : 0;
	buf[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
}

/* Runs argv (argv[0] a path) with stdout/stderr captured; exit code, 128+sig when killed.
 * Returns the pid it ran as. */
static inline pid_t run_cmd(struct run *r, const char *const *argv)
{
	char o[512], e[512];
	snprintf(o, sizeof(o), "%s/run.out", kt_tmpdir());
	snprintf(e, sizeof(e), "%s/run.err", kt_tmpdir());
	pid_t p = fork();
	if (p == 0) {
		int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fo, 1);
		dup2(fe, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st = 0;
	waitpid(p, &st, 0);
	r->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	slurp(o, r->out, sizeof(r->out));
	slurp(e, r->err, sizeof(r->err));
	return p;
}

/* bin/NAME under the tree being tested (8 results may be alive at once). */
static inline const char *bin(const char *name)
{
	static char b[8][512];
	static int i;
	char *p = b[i++ % 8];
	snprintf(p, 512, "%s/bin/%s", kt_root(), name);
	return p;
}

/* NAME in the test's scratch directory (8 results may be alive at once). */
static inline const char *tmp(const char *name)
{
	static char b[8][512];
	static int i;
	char *p = b[i++ % 8];
	snprintf(p, 512, "%s/%s", kt_tmpdir(), name);
	return p;
}

static inline void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

/* Starts a test server that prints "port N"; returns its pid and port. */
static inline pid_t start_server(const char *const *argv, int *port)
{
	int pp[2];
	CHECK(pipe(pp) == 0);
	pid_t p = fork();
	if (p == 0) {
		dup2(pp[1], 1);
		close(pp[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pp[1]);
	char line[64] = {0};
	size_t got = 0;
	while (got < sizeof(line) - 1 && !strchr(line, '\n')) {
		ssize_t k = read(pp[0], line + got, sizeof(line) - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(pp[0]);
	CHECKF(sscanf(line, "port %d", port) == 1, "server said '%s'", line);
	return p;
}

/* Copies an executable (mode 0755): the same program under another name. */
static inline void copy_exe(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	CHECK(in >= 0 && out >= 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CHECK(write(out, buf, (size_t)n) == n);
	close(in);
	close(out);
}

#endif
