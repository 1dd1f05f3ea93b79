/*
 * runner.c - runs every registered test, each forked into its own process group with a timeout,
 * and prints one line per test and a closing "N passed, N failed, N skipped" line.
 *
 *   kprobe-test [-l] [-v] [FILTER...]    FILTER: substring of a test name or file
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/test.h"

struct kt_test {
	const char *name, *file;
	kt_fn fn;
	unsigned flags;
	int timeout_s;
};

static struct kt_test *tests;
static int ntests, captests;
static int result_fd = -1; /* child -> parent: 'S' + reason for skips */
static char tmpdir_path[PATH_MAX];
static char root_path[PATH_MAX];
static unsigned cur_flags;

void kt_register(const char *name, const char *file, kt_fn fn, unsigned flags, int timeout_s)
{
	if (ntests == captests) {
		captests = captests ? captests * 2 : 64;
		tests = realloc(tests, sizeof(*tests) * (size_t)captests);
		if (!tests)
			abort();
	}
	tests[ntests++] = (struct kt_test){name, file, fn, flags, timeout_s};
}

void kt_fail(const char *file, int line, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "    %s:%d: %s\n", file, line, msg);
	fflush(stderr);
	_exit(1);
}

void kt_skip(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg + 1, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	msg[0] = 'S';
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(msg) - 2)
		n = (int)sizeof(msg) - 2;
	if (write(result_fd, msg, (size_t)n + 1) < 0) {
		/* The parent still sees exit code 77. */
	}
	_exit(77);
}

void kt_note(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "    note: %s\n", msg);
}

/* Under KPROBE_REQUIRE_BPF=1 a missing capability fails the test instead of skipping it. */
void kt_require_bpf(void)
{
	const char *rb = getenv("KPROBE_REQUIRE_BPF");
	int strict = rb && *rb && strcmp(rb, "0") != 0;
	const char *why = NULL;
	if (geteuid() != 0)
		why = "needs root to load BPF programs (run as root)";
	else if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		why = "kernel has no BTF (/sys/kernel/btf/vmlinux missing)";
	if (why && strict)
		kt_fail(__FILE__, __LINE__, "KPROBE_REQUIRE_BPF=1: %s", why);
	if (why)
		kt_skip("%s", why);
}

const char *kt_tmpdir(void)
{
	if (!tmpdir_path[0]) {
		snprintf(tmpdir_path, sizeof(tmpdir_path), "/tmp/kprobe-test.%d.XXXXXX", getpid());
		if (!mkdtemp(tmpdir_path))
			kt_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	}
	return tmpdir_path;
}

const char *kt_root(void)
{
	return root_path;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			struct stat st;
			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
				rm_rf(p);
			else
				unlink(p);
		}
		closedir(d);
	}
	rmdir(path);
}

static int verbose;

/* Prints the last 200 lines of a failed test's output, indented. */
static void show_log(int fd)
{
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0)
		return;
	off_t from = size > 65536 ? size - 65536 : 0;
	char *b = malloc((size_t)(size - from) + 1);
	if (!b)
		return;
	ssize_t n = pread(fd, b, (size_t)(size - from), from);
	if (n <= 0) {
		free(b);
		return;
	}
	b[n] = '\0';
	int lines = 0;
	char *start = b + n;
	while (start > b && lines < 200)
		if (*--start == '\n')
			lines++;
	if (start != b)
		start++;
	for (char *l = start; *l;) {
		char *e = strchr(l, '\n');
		if (e)
			*e = '\0';
		if (*l)
			printf("    | %s\n", l);
		if (!e)
			break;
		l = e + 1;
	}
	free(b);
}

static int matches(const struct kt_test *t, int nfilt, char **filt)
{
	if (nfilt == 0)
		return 1;
	for (int i = 0; i < nfilt; i++)
		if (strstr(t->name, filt[i]) || strstr(t->file, filt[i]))
			return 1;
	return 0;
}

/* Runs one test; returns 0 pass, 1 fail, 2 skip. */
static int run_one(const struct kt_test *t, int require_bpf)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("pipe");
		return 1;
	}
	char tdir[PATH_MAX];
	snprintf(tdir, sizeof(tdir), "/tmp/kprobe-test.%s.XXXXXX", t->name);
	if (!mkdtemp(tdir)) {
		perror("mkdtemp");
		return 1;
	}
	char logpath[PATH_MAX + 8];
	snprintf(logpath, sizeof(logpath), "%s.log", tdir);
	int logfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	double t0 = mono_s();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		close(pfd[0]);
		/* The test's own output (and its children's) goes to a log shown on failure. */
		if (logfd >= 0 && !verbose) {
			dup2(logfd, STDOUT_FILENO);
			dup2(logfd, STDERR_FILENO);
		}
		result_fd = pfd[1];
		snprintf(tmpdir_path, sizeof(tmpdir_path), "%s", tdir);
		cur_flags = t->flags;
		if (t->flags & KT_BPF)
			kt_require_bpf();
		t->fn();
		_exit(0);
	}
	setpgid(pid, pid);
	close(pfd[1]);
	int status = 0, timed_out = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (mono_s() - t0 > t->timeout_s) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		usleep(5000);
	}
	/* Whatever the test left running in its group goes now. */
	kill(-pid, SIGKILL);
	char reason[1024] = "";
	ssize_t n = read(pfd[0], reason, sizeof(reason) - 1);
	reason[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	if (!getenv("KPROBE_KEEP_TMP"))
		rm_rf(tdir);
	double dt = mono_s() - t0;
	int failed = timed_out || !WIFEXITED(status) ||
		     (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 77) ||
		     (WEXITSTATUS(status) == 77 && require_bpf && (t->flags & KT_BPF));
	if (failed && logfd >= 0)
		show_log(logfd);
	if (logfd >= 0)
		close(logfd);
	unlink(logpath);

	if (timed_out) {
		printf("FAIL %s (timed out after %d s)\n", t->name, t->timeout_s);
		return 1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		const char *why = reason[0] == 'S' ? reason + 1 : "skipped";
		if (require_bpf && (t->flags & KT_BPF)) {
			printf("FAIL %s (skipped under KPROBE_REQUIRE_BPF=1: %s)\n", t->name, why);
			return 1;
		}
		printf("SKIP %s: %s\n", t->name, why);
		return 2;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("ok   %s (%.2f s)\n", t->name, dt);
		return 0;
	}
	if (WIFSIGNALED(status))
		printf("FAIL %s (killed by signal %d)\n", t->name, WTERMSIG(status));
	else
		printf("FAIL %s (%.2f s)\n", t->name, dt);
	return 1;
}

int main(int argc, char **argv)
{
	int list = 0;
	char **filt = argv + 1;
	int nfilt = argc - 1;
	if (nfilt > 0 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: kprobe-test [-l] [-v] [FILTER...]\n"
		       "  Runs kprobe's C tests (unit and integration). FILTER selects tests whose\n"
		       "  name or file contains it. -l lists the tests; -v shows every test's output\n"
		       "  (by default only a failed test's output is shown).\n"
		       "  KPROBE_REQUIRE_BPF=1 turns skips of BPF tests into failures.\n"
		       "  KPROBE_KEEP_TMP=1 keeps each test's scratch directory.\n");
		return 0;
	}
	while (nfilt > 0 && (!strcmp(filt[0], "-l") || !strcmp(filt[0], "-v"))) {
		if (!strcmp(filt[0], "-l"))
			list = 1;
		else
			verbose = 1;
		filt++;
		nfilt--;
	}
	/* The binary lives in ROOT/bin/. */
	char exe[PATH_MAX];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (el > 0) {
		exe[el] = '\0';
		char *s = strrchr(exe, '/');
		if (s)
			*s = '\0';
		s = strrchr(exe, '/');
		if (s)
			*s = '\0';
		snprintf(root_path, sizeof(root_path), "%s", exe);
	}
	const char *rb = getenv("KPROBE_REQUIRE_BPF");
	int require_bpf = rb && strcmp(rb, "0") != 0 && *rb;
	setvbuf(stdout, NULL, _IOLBF, 0);
	int pass = 0, fail = 0, skip = 0;
	double t0 = mono_s();
	for (int i = 0; i < ntests; i++) {
		if (!matches(&tests[i], nfilt, filt))
			continue;
		if (list) {
			printf("%s (%s)\n", tests[i].name, tests[i].file);
			continue;
		}
		int r = run_one(&tests[i], require_bpf);
		if (r == 0)
			pass++;
		else if (r == 1)
			fail++;
		else
			skip++;
	}
	if (list)
		return 0;
	printf("%d passed, %d failed, %d skipped (%.1f s)\n", pass, fail, skip, mono_s() - t0);
	return fail ? 1 : 0;
}
