/*
 * Tests kprobe-agent --stdout as a real process: it loads the probe, records a child that
 * writes and sleeps in a loop, prints NDJSON that parses (common/json.h) with the documented
 * field names, logs its stats lines, and stops cleanly after --duration.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/ndjson.h"
#include "common/json.h"
#include "common/util.h"
#include "tests/test.h"

/* Runs argv with stdout and stderr captured (each up to cap bytes); returns the exit status. */
static int run_capture(char *const argv[], struct kp_buf *out, struct kp_buf *err, int timeout_s)
{
	int po[2], pe[2];
	CHECK_EQ_INT(pipe(po), 0);
	CHECK_EQ_INT(pipe(pe), 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
	uint64_t end = now_mono_ns() + (uint64_t)timeout_s * NSEC_PER_SEC;
	int open_fds = 2;
	while (open_fds && now_mono_ns() < end) {
		if (poll(fds, 2, 200) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
				continue;
			char buf[65536];
			ssize_t n = read(fds[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
				continue;
			}
			buf_append(i ? err : out, buf, (size_t)n);
		}
	}
	if (open_fds)
		kill(pid, SIGKILL);
	int st = 0;
	waitpid(pid, &st, 0);
	buf_append(out, "", 1);
	buf_append(err, "", 1);
	out->len--;
	err->len--;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void workload(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		_exit(2);
	for (int i = 0; i < 400; i++) {
		if (write(fd, "0123456789", 10) != 10)
			_exit(3);
		if (i % 10 == 0)
			fdatasync(fd);
		usleep(10000);
	}
	_exit(0);
}

static const char *str_field(const struct json *o, const char *k)
{
	const struct json *v = json_get(o, k);
	return v && v->type == JSON_STR ? v->u.str.s : NULL;
}

TEST_BPF_SLOW(agent_stdout_ndjson, 60)
{
	char path[512], agent[512], pidarg[32];
	snprintf(path, sizeof(path), "%s/out", kt_tmpdir());
	snprintf(agent, sizeof(agent), "%s/bin/kprobe-agent", kt_root());
	pid_t w = fork();
	CHECK(w >= 0);
	if (w == 0)
		workload(path);
	snprintf(pidarg, sizeof(pidarg), "%d", w);
	char *argv[] = {agent,	"--stdout", "--duration",	"2", "--pid",
			pidarg, "--set",    "agent.statsSec=1", NULL};
	struct kp_buf out = {0}, err = {0};
	int rc = run_capture(argv, &out, &err, 30);
	kill(w, SIGKILL);
	waitpid(w, NULL, 0);
	CHECKF(rc == 0, "kprobe-agent exited %d: %.900s", rc, err.data);
	CHECK_CONTAINS(err.data, "recording: hooks:");
	CHECK_CONTAINS(err.data, "stats: events=");
	CHECK_CONTAINS(err.data, "final: events=");
	CHECK_CONTAINS(err.data, "stdout_lines=");

	int lines = 0, writes = 0, fsyncs = 0;
	uint64_t prev_write_ts = 0, now = now_real_ns();
	for (char *l = out.data; l && *l;) {
		char *nl = strchr(l, '\n');
		CHECKF(nl, "last line not terminated: %.200s", l);
		*nl = 0;
		struct json *root;
		char perr[256];
		size_t pos;
		struct json_doc *doc = json_parse(l, strlen(l), &root, perr, sizeof(perr), &pos);
		CHECKF(doc, "line %d does not parse (%s at %zu): %.300s", lines + 1, perr, pos, l);
		CHECK_EQ_INT(root->type, JSON_OBJ);
		static const char *const common[] = {"ts", "dur", "pid", "tid", "cpu", "ret"};
		for (size_t i = 0; i < KP_ARRAY_SIZE(common); i++)
			CHECKF(json_get(root, common[i]) &&
				       json_get(root, common[i])->type == JSON_NUM,
			       "line %d lacks number '%s': %.300s", lines + 1, common[i], l);
		const char *type = str_field(root, "type");
		CHECKF(type, "line %d has no type: %.300s", lines + 1, l);
		CHECKF(str_field(root, "comm"), "line %d has no comm: %.300s", lines + 1, l);
		int64_t pid, ts;
		CHECK_EQ_INT(json_int(json_get(root, "pid"), &pid), 0);
		CHECK_EQ_INT(pid, w); /* --pid filtered in the kernel */
		CHECK_EQ_INT(json_int(json_get(root, "ts"), &ts), 0);
		CHECKF((uint64_t)ts < now && (uint64_t)ts > now - 60 * NSEC_PER_SEC,
		       "ts %lld is not epoch ns of the last minute", (long long)ts);
		if (!strcmp(type, "write")) {
			int64_t bytes, ret, fd, inode;
			CHECK_EQ_STR(str_field(root, "syscall"), "write");
			CHECK_EQ_INT(json_int(json_get(root, "bytes"), &bytes), 0);
			CHECK_EQ_INT(json_int(json_get(root, "ret"), &ret), 0);
			CHECK_EQ_INT(json_int(json_get(root, "fd"), &fd), 0);
			CHECK_EQ_INT(json_int(json_get(root, "inode"), &inode), 0);
			CHECK_EQ_INT(bytes, 10);
			CHECK_EQ_INT(ret, 10);
			CHECK_GT_INT(inode, 0);
			CHECK((uint64_t)ts > prev_write_ts);
			prev_write_ts = (uint64_t)ts;
			writes++;
		} else if (!strcmp(type, "fsync")) {
			CHECK_EQ_STR(str_field(root, "syscall"), "fdatasync");
			fsyncs++;
		} else if (!strcmp(type, "offcpu")) {
			CHECKF(str_field(root, "reason") && json_get(root, "waker") &&
				       json_get(root, "runq") && json_get(root, "holder_tid") &&
				       json_get(root, "prev_state"),
			       "offcpu fields: %.300s", l);
		}
		json_free(doc);
		lines++;
		l = nl + 1;
	}
	kt_note("%d lines, %d writes, %d fsyncs", lines, writes, fsyncs);
	/* 2 s of a write every 10 ms */
	CHECK_GE_INT(writes, 100);
	CHECK_GE_INT(fsyncs, 10);
	buf_free(&out);
	buf_free(&err);
}

TEST(agent_bad_arguments)
{
	char agent[512];
	snprintf(agent, sizeof(agent), "%s/bin/kprobe-agent", kt_root());
	struct kp_buf out = {0}, err = {0};
	char *argv2[] = {agent, "--stdout", "--pid", "x1", NULL};
	CHECK_EQ_INT(run_capture(argv2, &out, &err, 10), 2);
	CHECK_CONTAINS(err.data, "--pid 'x1'");
	buf_free(&err);
	err = (struct kp_buf){0};
	char *argv3[] = {agent, "--set", "agent.batchMs=0", NULL};
	CHECK_EQ_INT(run_capture(argv3, &out, &err, 10), 2);
	CHECK_CONTAINS(err.data, "agent.batchMs");
	buf_free(&out);
	buf_free(&err);
}

/* ndjson_format: every type's field names, from hand-made events. */
TEST(ndjson_format_fields)
{
	struct kp_buf b = {0};
	struct wire_proc p = {.pid = 7,
			      .comm = "srv",
			      .service = "payments",
			      .container = "c1",
			      .pod = "p1",
			      .cgroup = "/kubepods/pod-p1"};
	struct kp_event e = {
		.ts_ns = 1, .dur_ns = 2, .pid = 7, .tid = 8, .cpu = 1, .type = KP_WRITE, .ret = -5};
	e.arg[0] = 3;
	e.arg[1] = 100;
	e.arg[2] = SYS_pwrite64;
	e.arg[3] = 99;
	ndjson_format(&b, &e, &p, NULL);
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "{\"type\":\"write\",\"ts\":1,\"dur\":2,\"pid\":7,\"tid\":8,\"cpu\":1,"
			     "\"comm\":\"srv\",\"ret\":-5,\"fd\":3,\"bytes\":100,\"syscall\":"
			     "\"pwrite64\",\"inode\":99,\"service\":\"payments\",\"container\":"
			     "\"c1\",\"pod\":\"p1\",\"cgroup\":\"/kubepods/pod-p1\"}");
	/* tcp_recv on the server side of a connection stored as the client saw it */
	struct wire_conn c = {.conn = 0xab, .family = 2, .sport = 40000, .dport = 80};
	c.saddr[0] = 10, c.saddr[3] = 1;
	c.daddr[0] = 10, c.daddr[3] = 2;
	e = (struct kp_event){.type = KP_TCP_RECV, .pid = 7, .ret = 10};
	e.arg[0] = 0xab;
	e.arg[1] = 10;
	e.arg[2] = 4000000000u;
	e.arg[3] = KP_PORTS(80, 40000);
	b.len = 0;
	ndjson_format(&b, &e, NULL, &c);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data, "\"comm\":\"\"");
	CHECK_CONTAINS(b.data, "\"conn\":\"00000000000000ab\",\"bytes\":10,\"seq\":4000000000,"
			       "\"sport\":80,\"dport\":40000,\"saddr\":\"10.0.0.2\",\"daddr\":"
			       "\"10.0.0.1\"}");
	/* conn, offcpu, reclaim, faults, proc */
	e = (struct kp_event){.type = KP_CONN};
	e.arg[1] = 2;
	e.arg[2] = 1;
	e.arg[3] = KP_PORTS(40000, 80) | (uint64_t)2 << 32;
	b.len = 0;
	ndjson_format(&b, &e, NULL, &c);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data, "\"family\":\"ipv4\",\"sport\":40000,\"dport\":80,\"saddr\":"
			       "\"10.0.0.1\",\"daddr\":\"10.0.0.2\",\"old_state\":\"SYN_SENT\","
			       "\"new_state\":\"ESTABLISHED\"");
	e = (struct kp_event){.type = KP_OFFCPU, .dur_ns = 5};
	e.arg[0] = KP_OFFCPU_PREEMPTED | 0x0 << 8;
	e.arg[1] = 0;
	e.arg[2] = 4;
	e.arg[3] = 42;
	b.len = 0;
	ndjson_format(&b, &e, NULL, NULL);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data, "\"reason\":\"preempted\",\"waker\":0,\"runq\":4,\"holder_tid\":42,"
			       "\"prev_state\":0}");
	e = (struct kp_event){.type = KP_RECLAIM};
	e.arg[0] = 512;
	e.arg[1] = KP_RECLAIM_MEMCG;
	e.arg[2] = 1234;
	e.arg[3] = 0;
	b.len = 0;
	ndjson_format(&b, &e, NULL, NULL);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data, "\"pages\":512,\"kind\":\"memcg\",\"memcg\":1234,\"order\":0}");
	e = (struct kp_event){.type = KP_FAULTS, .flags = KP_F_TRUNCATED};
	e.arg[0] = 3;
	e.arg[1] = 4096;
	e.arg[2] = 8192;
	e.arg[3] = 2;
	b.len = 0;
	ndjson_format(&b, &e, NULL, NULL);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data, "\"count\":3,\"addr\":4096,\"last_addr\":8192,\"write_faults\":2,"
			       "\"truncated\":true}");
	e = (struct kp_event){.type = KP_PROC, .ret = (3 << 8)};
	e.arg[0] = KP_PROC_EXIT;
	e.arg[1] = 1;
	memcpy(&e.arg[2], "sh\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	b.len = 0;
	ndjson_format(&b, &e, NULL, NULL);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data, "\"comm\":\"sh\"");
	CHECK_CONTAINS(b.data, "\"proc_event\":\"exit\",\"ppid\":1,\"exit_code\":3}");
	/* a comm with quotes and invalid UTF-8 still makes valid JSON */
	memcpy(&e.arg[2], "a\"b\\\xff\x01zzzzzzzzzzz", 16);
	b.len = 0;
	ndjson_format(&b, &e, NULL, NULL);
	struct json *root;
	char perr[128];
	size_t pos;
	struct json_doc *d = json_parse(b.data, b.len, &root, perr, sizeof(perr), &pos);
	CHECKF(d, "%s at %zu: %.*s", perr, pos, (int)b.len, b.data);
	json_free(d);
	buf_free(&b);
}

TEST(agent_clock_offset_is_epoch)
{
	int64_t off = agent_clock_offset();
	uint64_t conv = now_mono_ns() + (uint64_t)off, real = now_real_ns();
	CHECK(conv <= real + NSEC_PER_MSEC && conv + NSEC_PER_MSEC >= real);
}
