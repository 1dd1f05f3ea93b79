/*
 * End to end with the real probe: kprobed and kprobe-agent run as on a user's host (the stack
 * `kprobe up` starts), a workload the test starts does known I/O, and queries over HTTP find
 * exactly what it did.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/types.h>

#include "bpf/event.h"
#include "cli/stack.h"
#include "common/json.h"
#include "common/util.h"
#include "httpd/client.h"
#include "tests/test.h"

static int post_query(int port, const char *q, struct kp_buf *body)
{
	struct httpc_req req = {.method = "POST", .path = "/api/v1/query", .body = q,
				.body_len = strlen(q), .timeout_ms = 30000};
	struct httpc_resp resp = {0};
	char err[256];
	CHECKF(httpc_request("127.0.0.1", port, &req, &resp, err, sizeof(err)) == 0, "%s", err);
	body->len = 0;
	buf_append(body, resp.body.data ? resp.body.data : "", resp.body.len);
	int st = resp.status;
	httpc_resp_free(&resp);
	return st;
}

/* count per type for pid, from "SELECT type, count() ... GROUP BY type". */
static void counts_for(int port, int pid, int64_t out[KP_TYPE_MAX])
{
	static const char *names[] = {"", "read", "write", "fsync", "tcp_send", "tcp_recv",
				      "conn", "retransmit", "offcpu", "reclaim", "faults", "proc"};
	memset(out, 0, sizeof(int64_t) * KP_TYPE_MAX);
	char q[160];
	snprintf(q, sizeof(q), "SELECT type, count() FROM events WHERE pid = %d GROUP BY type", pid);
	struct kp_buf b = {0};
	CHECK_EQ_INT(post_query(port, q, &b), 200);
	struct json *root;
	char err[128];
	size_t pos;
	struct json_doc *d = json_parse(b.data, b.len, &root, err, sizeof(err), &pos);
	CHECKF(d != NULL, "%s", err);
	const struct json *rows = json_get(root, "rows");
	for (size_t i = 0; rows && i < rows->u.arr.n; i++) {
		const struct json *r = rows->u.arr.items[i];
		int64_t n = 0;
		json_int(r->u.arr.items[1], &n);
		for (int t = 1; t < KP_TYPE_MAX; t++)
			if (!strcmp(r->u.arr.items[0]->u.str.s, names[t]))
				out[t] = n;
	}
	json_free(d);
	buf_free(&b);
}

/* The workload: 3 file writes of 4321 bytes, 2 fsyncs, one request/response over TCP. */
static void workload(const char *dir, int port)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/workload.dat", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	static char buf[4321];
	memset(buf, 'k', sizeof(buf));
	for (int i = 0; i < 3; i++)
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			_exit(10);
	if (fsync(fd) < 0 || fdatasync(fd) < 0)
		_exit(11);
	close(fd);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		_exit(12);
	static char req[1000], resp[2000];
	if (send(s, req, sizeof(req), 0) != (ssize_t)sizeof(req))
		_exit(13);
	if (recv(s, resp, sizeof(resp), MSG_WAITALL) != (ssize_t)sizeof(resp))
		_exit(14);
	close(s);
	_exit(0);
}

/* A server answering one 1000-byte request with 2000 bytes. */
static pid_t server(int *port)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	CHECK_EQ_INT(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ_INT(listen(ls, 4), 0);
	CHECK_EQ_INT(getsockname(ls, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	pid_t p = fork();
	if (p == 0) {
		int c = accept(ls, NULL, NULL);
		static char b[2000];
		if (recv(c, b, 1000, MSG_WAITALL) != 1000 || send(c, b, 2000, 0) != 2000)
			_exit(1);
		close(c);
		_exit(0);
	}
	close(ls);
	return p;
}

TEST_BPF_SLOW(e2e_workload_counts_per_type, 180)
{
	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	const char *sets[] = {"agent.batchMs=20", NULL};
	struct stack s;
	struct stack_opts o = {.data_dir = data, .sets = sets, .ephemeral_ports = 1, .quiet = 1};
	char err[512];
	CHECKF(stack_start(&s, &o, err, sizeof(err)) == 0, "%s", err);

	int port;
	pid_t srv = server(&port);
	pid_t w = fork();
	if (w == 0)
		workload(kt_tmpdir(), port);
	int st;
	CHECK_EQ_INT(waitpid(w, &st, 0), w);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "workload failed: %d", st);
	CHECK_EQ_INT(waitpid(srv, &st, 0), srv);

	/* Everything arrives within a few batches; wait until the counts stop changing. */
	int64_t c[KP_TYPE_MAX], prev[KP_TYPE_MAX];
	memset(prev, 0xff, sizeof(prev));
	for (int i = 0; i < 100; i++) {
		counts_for(s.api_port, w, c);
		if (c[KP_TCP_RECV] >= 1 && c[KP_PROC] >= 1 && !memcmp(c, prev, sizeof(c)))
			break;
		memcpy(prev, c, sizeof(c));
		usleep(200000);
	}
	kt_note("pid %d: read %lld write %lld fsync %lld tcp_send %lld tcp_recv %lld conn %lld proc "
		"%lld",
		w, (long long)c[KP_READ], (long long)c[KP_WRITE], (long long)c[KP_FSYNC],
		(long long)c[KP_TCP_SEND], (long long)c[KP_TCP_RECV], (long long)c[KP_CONN],
		(long long)c[KP_PROC]);
	CHECK_EQ_INT(c[KP_WRITE], 4); /* 3 file writes + the send (sendto) */
	CHECK_EQ_INT(c[KP_FSYNC], 2); /* fsync + fdatasync */
	CHECK_EQ_INT(c[KP_READ], 1);  /* the recv (recvfrom) */
	CHECK_EQ_INT(c[KP_TCP_SEND], 1);
	CHECK_EQ_INT(c[KP_TCP_RECV], 1);

	/* The same through field queries: the exact bytes, and the TCP pair matching. */
	struct kp_buf b = {0};
	char q[300];
	snprintf(q, sizeof(q),
		 "SELECT count(), sum(bytes), min(ret), max(ret) FROM events WHERE pid = %d AND "
		 "type = 'write' AND bytes = 4321",
		 w);
	CHECK_EQ_INT(post_query(s.api_port, q, &b), 200);
	CHECK_CONTAINS(b.data, "[[3,12963,4321,4321]]");
	snprintf(q, sizeof(q),
		 "SELECT type, bytes, dport FROM events WHERE pid IN (%d, %d) AND type IN "
		 "('tcp_send', 'tcp_recv') ORDER BY ts",
		 w, srv);
	CHECK_EQ_INT(post_query(s.api_port, q, &b), 200);
	kt_note("%s", b.data);
	CHECK_CONTAINS(b.data, "[\"tcp_send\",1000,");
	CHECK_CONTAINS(b.data, "[\"tcp_recv\",2000,");
	/* The comm travels as metadata. */
	snprintf(q, sizeof(q), "SELECT comm FROM events WHERE pid = %d LIMIT 1", w);
	CHECK_EQ_INT(post_query(s.api_port, q, &b), 200);
	CHECK_CONTAINS(b.data, "kprobe-test");
	buf_free(&b);
	stack_stop(&s, 10000);
}

/* ------------------------------------------------------------------ causality across processes */

static int64_t csv_int(int port, const char *q)
{
	struct kp_buf b = {0};
	char path_q[64];
	snprintf(path_q, sizeof(path_q), "/api/v1/query?format=csv");
	struct httpc_req req = {.method = "POST", .path = path_q, .body = q,
				.body_len = strlen(q), .timeout_ms = 30000};
	struct httpc_resp resp = {0};
	char err[256];
	CHECKF(httpc_request("127.0.0.1", port, &req, &resp, err, sizeof(err)) == 0, "%s", err);
	CHECKF(resp.status == 200, "%s -> %d %s", q, resp.status, resp.body.data);
	const char *nl = strchr(resp.body.data, '\n');
	int64_t v = nl && nl[1] ? strtoll(nl + 1, NULL, 10) : -1;
	httpc_resp_free(&resp);
	buf_free(&b);
	return v;
}

/*
 * Client and server as separate processes on loopback, no OpenTelemetry: the server's answer
 * waits on a large write + fsync; the client's request is slow. The engine infers both requests
 * from the TCP exchange, links the client's send to the server's receive (sent-to), and the
 * client's slow request has a causal path to the server's fsync.
 */
TEST_BPF_SLOW(e2e_cross_process_no_otel_path_to_fsync, 180)
{
	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	const char *sets[] = {"agent.batchMs=20", "engine.slowRequestMs=20", NULL};
	struct stack s;
	struct stack_opts o = {.data_dir = data, .sets = sets, .ephemeral_ports = 1, .quiet = 1};
	char err[512];
	CHECKF(stack_start(&s, &o, err, sizeof(err)) == 0, "%s", err);

	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	CHECK_EQ_INT(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ_INT(listen(ls, 4), 0);
	CHECK_EQ_INT(getsockname(ls, (struct sockaddr *)&a, &al), 0);
	pid_t srv = fork();
	if (srv == 0) {
		/* The server: read the request, write 64 MiB and fsync it, answer. */
		int c = accept(ls, NULL, NULL);
		static char b[1 << 20];
		if (recv(c, b, 100, MSG_WAITALL) != 100)
			_exit(1);
		char path[600];
		snprintf(path, sizeof(path), "%s/server.dat", kt_tmpdir());
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		memset(b, 's', sizeof(b));
		for (int i = 0; i < 64; i++)
			if (write(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
				_exit(2);
		if (fsync(fd) < 0)
			_exit(3);
		if (send(c, b, 200, 0) != 200)
			_exit(4);
		close(c);
		_exit(0);
	}
	close(ls);
	pid_t cli = fork();
	if (cli == 0) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
			_exit(1);
		static char b[200];
		memset(b, 'c', sizeof(b));
		if (send(c, b, 100, 0) != 100 || recv(c, b, 200, MSG_WAITALL) != 200)
			_exit(2);
		close(c);
		_exit(0);
	}
	int st;
	CHECK_EQ_INT(waitpid(cli, &st, 0), cli);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ_INT(waitpid(srv, &st, 0), srv);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* The client's slow request, analyzed once events arrived (engine.lateMs). */
	char q[600];
	int64_t creq = -1, fsync_node = -1;
	for (int i = 0; i < 100 && (creq <= 0 || fsync_node <= 0); i++) {
		usleep(200000);
		snprintf(q, sizeof(q),
			 "SELECT id FROM nodes WHERE kind = 'request' AND pid = %d LIMIT 1", cli);
		creq = csv_int(s.api_port, q);
		snprintf(q, sizeof(q),
			 "SELECT id FROM nodes WHERE kind = 'syscall' AND pid = %d AND labels LIKE "
			 "'%%\"syscall\":\"fsync\"%%' LIMIT 1",
			 srv);
		fsync_node = csv_int(s.api_port, q);
	}
	CHECKF(creq > 0, "no request node for the client (pid %d)", cli);
	CHECKF(fsync_node > 0, "no fsync node for the server (pid %d)", srv);
	/* sent-to: the client's send to the server's receive. */
	snprintf(q, sizeof(q),
		 "SELECT count() FROM edges WHERE kind = 'sent-to' AND src_kind = 'tcp' AND "
		 "dst_kind = 'tcp'");
	CHECK_GE_INT(csv_int(s.api_port, q), 1);
	struct kp_buf b = {0};
	snprintf(q, sizeof(q), "PATH FROM '#%lld' TO '#%lld'", (long long)creq,
		 (long long)fsync_node);
	CHECK_EQ_INT(post_query(s.api_port, q, &b), 200);
	kt_note("%s", b.data);
	CHECK_CONTAINS(b.data, "waited-on");
	CHECK_CONTAINS(b.data, "\"fsync\"");
	/* and the slow request is an incident whose root cause walks to the server side */
	snprintf(q, sizeof(q), "ROOTCAUSE OF '#%lld'", (long long)creq);
	CHECK_EQ_INT(post_query(s.api_port, q, &b), 200);
	kt_note("%s", b.data);
	CHECK_CONTAINS(b.data, "request received");
	buf_free(&b);
	stack_stop(&s, 10000);
}
