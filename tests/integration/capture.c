/*
 * Tests agent/probe.c and bpf/probe.bpf.c in this kernel: each test loads the probe with a pid
 * filter, forks children that do something known (write a file, talk TCP on loopback, spin on
 * one CPU, touch pages, read through a small memory cgroup), adds their pids to the filter
 * before releasing them, and checks what the kernel side recorded for exactly those pids.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/probe.h"
#include "common/config.h"
#include "common/util.h"
#include "tests/test.h"

/* ------------------------------------------------------------------ capture harness */

struct cap {
	struct probe *p;
	struct kp_event *ev;
	size_t n, capn;
	struct kp_conn_record *conn;
	size_t nconn, capconn;
	struct kp_config cfg;
};

static void cap_record(void *ctx, const void *rec, size_t len)
{
	struct cap *c = ctx;
	if (len < sizeof(struct kp_event))
		kt_fail(__FILE__, __LINE__, "short record: %zu bytes", len);
	const struct kp_event *e = rec;
	if (c->n == c->capn) {
		c->capn = c->capn ? c->capn * 2 : 1024;
		c->ev = xrealloc(c->ev, c->capn * sizeof(*c->ev));
	}
	c->ev[c->n++] = *e;
	if (e->type == KP_CONN) {
		if (len < sizeof(struct kp_conn_record))
			kt_fail(__FILE__, __LINE__, "short conn record: %zu bytes", len);
		if (c->nconn == c->capconn) {
			c->capconn = c->capconn ? c->capconn * 2 : 64;
			c->conn = xrealloc(c->conn, c->capconn * sizeof(*c->conn));
		}
		c->conn[c->nconn++] = *(const struct kp_conn_record *)rec;
	}
}

/* Loads the probe with a pid filter (plus `sets`, NULL terminated "key=value"). */
static void cap_open_ex(struct cap *c, int pid_filter, const char *const *sets)
{
	memset(c, 0, sizeof(*c));
	config_init(&c->cfg);
	char err[1024];
	for (int i = 0; sets && sets[i]; i++)
		if (config_set(&c->cfg, sets[i], err, sizeof(err)) < 0)
			kt_fail(__FILE__, __LINE__, "config_set %s: %s", sets[i], err);
	struct probe_opts o = {.pid_filter = pid_filter};
	int r = probe_open(&c->p, &c->cfg, &o, err, sizeof(err));
	if (r < 0)
		kt_fail(__FILE__, __LINE__, "probe_open: %s", err);
	kt_note("%s", probe_describe(c->p));
}

static void cap_open(struct cap *c, const char *const *sets)
{
	cap_open_ex(c, 1, sets);
}

/* Drains until nothing arrived for 100 ms. */
static void cap_drain(struct cap *c)
{
	uint64_t quiet_since = now_mono_ns();
	while (now_mono_ns() - quiet_since < 100 * NSEC_PER_MSEC) {
		long r = probe_consume(c->p, cap_record, c, 0);
		if (r < 0)
			kt_fail(__FILE__, __LINE__, "probe_consume: %ld", r);
		if (r > 0)
			quiet_since = now_mono_ns();
		usleep(5000);
	}
}

static void cap_close(struct cap *c)
{
	probe_close(c->p);
	config_free(&c->cfg);
	free(c->ev);
	free(c->conn);
}

/* A forked child that waits for the go (after its pid is in the filter), then runs fn. */
struct child {
	pid_t pid;
	int go; /* write end */
};

static struct child spawn(void (*fn)(void *), void *arg)
{
	int p[2];
	if (pipe(p) < 0)
		kt_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		kt_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[1]);
		char b;
		if (read(p[0], &b, 1) != 1)
			_exit(3);
		close(p[0]);
		fn(arg);
		_exit(0);
	}
	close(p[0]);
	return (struct child){pid, p[1]};
}

static void child_go(struct cap *c, struct child *ch, int filtered)
{
	if (filtered && c)
		CHECK_EQ_INT(probe_filter_pid_add(c->p, (uint32_t)ch->pid), 0);
	CHECK_EQ_INT(write(ch->go, "g", 1), 1);
	close(ch->go);
}

static int child_wait(struct child *ch)
{
	int st = 0;
	if (waitpid(ch->pid, &st, 0) != ch->pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static size_t count_type(const struct cap *c, int type, uint32_t pid)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->ev[i].type == type && c->ev[i].pid == pid)
			n++;
	return n;
}

static __attribute__((unused)) size_t count_pid(const struct cap *c, uint32_t pid)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->ev[i].pid == pid)
			n++;
	return n;
}

/* ------------------------------------------------------------------ write + fsync */

static char write_path[512];

static void do_write_fsync(void *arg)
{
	static char buf[4321];
	memset(buf, 'k', sizeof(buf));
	int fd = open(write_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		_exit(4);
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		_exit(5);
	if (fsync(fd) < 0)
		_exit(6);
	close(fd);
}

TEST_BPF(capture_write_fsync)
{
	struct cap c;
	cap_open(&c, NULL);
	snprintf(write_path, sizeof(write_path), "%s/written", kt_tmpdir());
	struct child ch = spawn(do_write_fsync, NULL);
	child_go(&c, &ch, 1);
	CHECK_EQ_INT(child_wait(&ch), 0);
	cap_drain(&c);
	struct stat st;
	CHECK_EQ_INT(stat(write_path, &st), 0);

	const struct kp_event *w = NULL, *f = NULL;
	for (size_t i = 0; i < c.n; i++) {
		const struct kp_event *e = &c.ev[i];
		if (e->pid != (uint32_t)ch.pid)
			continue;
		if (e->type == KP_WRITE && e->arg[1] == 4321)
			w = e;
		if (e->type == KP_FSYNC)
			f = e;
	}
	CHECKF(w, "no write event of 4321 bytes from pid %d among %zu events", ch.pid, c.n);
	CHECK_EQ_INT(w->tid, ch.pid);
	CHECK_EQ_INT(w->ret, 4321);
	CHECK_GT_INT(w->dur_ns, 0);
	CHECK_EQ_INT(w->arg[2], SYS_write);
	CHECK_EQ_UINT(w->arg[3], st.st_ino);
	CHECK(w->arg[0] > 2 && w->arg[0] < 1024);
	CHECKF(f, "no fsync event from pid %d", ch.pid);
	CHECK_EQ_INT(f->tid, ch.pid);
	CHECK_EQ_INT(f->ret, 0);
	CHECK_EQ_INT(f->arg[2], SYS_fsync);
	CHECK_EQ_UINT(f->arg[0], w->arg[0]);
	CHECK_EQ_UINT(f->arg[3], st.st_ino);
	CHECK_GT_INT(f->dur_ns, 0);
	CHECK(f->ts_ns >= w->ts_ns + w->dur_ns);
	/* the process hook saw the child fork from us and exit */
	CHECK_GE_INT(count_type(&c, KP_PROC, (uint32_t)ch.pid), 1);
	uint64_t cnt[KP_CNT_MAX];
	CHECK_EQ_INT(probe_counters(c.p, cnt), 0);
	CHECK_GE_UINT(cnt[KP_CNT_EMITTED], c.n);
	cap_close(&c);
}
