/*
 * Integration: the real OpenTelemetry JS SDK exports spans to a real HTTP listener on loopback,
 * graph/otlp.c decodes them, and the exporter accepts the responses it produces.
 *
 * tests/otel/export.js (npm packages pinned by tests/otel/package-lock.json, installed here with
 * `npm ci` when missing) creates a trace with known names and attributes, exports it with
 * @opentelemetry/exporter-trace-otlp-http (JSON) or -proto (protobuf), optionally gzip, in
 * batches of two spans on a keep-alive connection, and writes what it created to a file. This
 * test runs the listener (a small poll loop speaking enough HTTP/1.1 for the exporter:
 * Content-Length and chunked bodies, keep-alive), hands each body to otlp_handle, answers with
 * its response, and then compares the decoded spans with the file field by field, with the
 * process.pid the SDK reported checked against the pid this test forked. The script exits 1 on
 * any failed export or any warning the SDK logs (a response it cannot parse, a partial success).
 *
 * Set KPROBE_OTEL_SAVE=DIR to keep the request bodies (tests/unit/graph/data was made so).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "graph/otlp.h"
#include "tests/test.h"

#define MAX_CONNS   8
#define MAX_RESULTS 32

static const char *const TXN_KEYS[] = {"transaction.id", "txn.id", "request.id"};

/* ---------------------------------------------------------------- node + npm */

static const char *otel_dir(void)
{
	static char d[4096];
	snprintf(d, sizeof(d), "%s/tests/otel", KP_SRCDIR);
	return d;
}

static bool have_cmd(const char *cmd)
{
	char c[256];
	snprintf(c, sizeof(c), "command -v %s >/dev/null 2>&1", cmd);
	return system(c) == 0;
}

static time_t mtime(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_mtime : 0;
}

/* Installs the pinned packages once (npm ci), under a lock; SKIPs when that cannot work. */
static void otel_deps(void)
{
	if (!have_cmd("node") || !have_cmd("npm"))
		SKIP("node and npm are needed to run the OpenTelemetry JS SDK (install Node.js "
		     "18+)");
	char lock[4200], stamp[4200], pkglock[4200];
	snprintf(lock, sizeof(lock), "%s/.npm-ci.lock", otel_dir());
	snprintf(stamp, sizeof(stamp), "%s/node_modules/.package-lock.json", otel_dir());
	snprintf(pkglock, sizeof(pkglock), "%s/package-lock.json", otel_dir());
	int lfd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
	CHECKF(lfd >= 0, "open %.300s: %s", lock, strerror(errno));
	CHECK(flock(lfd, LOCK_EX) == 0);
	if (mtime(stamp) < mtime(pkglock)) {
		kt_note("installing the OpenTelemetry JS SDK (npm ci in tests/otel)");
		char cmd[8600];
		snprintf(cmd, sizeof(cmd),
			 "cd '%s' && npm ci --no-audit --no-fund --loglevel=error >'%s/npm.log' "
			 "2>&1",
			 otel_dir(), kt_tmpdir());
		if (system(cmd) != 0) {
			char log[4200];
			snprintf(log, sizeof(log), "%s/npm.log", kt_tmpdir());
			char tail[600] = "";
			FILE *f = fopen(log, "r");
			if (f) {
				size_t n = fread(tail, 1, sizeof(tail) - 1, f);
				tail[n] = '\0';
				fclose(f);
			}
			flock(lfd, LOCK_UN);
			close(lfd);
			SKIP("npm ci in tests/otel failed (registry unreachable?): %.400s", tail);
		}
	}
	flock(lfd, LOCK_UN);
	close(lfd);
}

/* Starts `node export.js args...` with stdout and stderr to files in the scratch dir. */
static pid_t node_start(const char *tag, char *const *args)
{
	char out[4200], err[4200];
	snprintf(out, sizeof(out), "%s/%s.out", kt_tmpdir(), tag);
	snprintf(err, sizeof(err), "%s/%s.err", kt_tmpdir(), tag);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int o = open(out, O_CREAT | O_TRUNC | O_WRONLY, 0644);
		int e = open(err, O_CREAT | O_TRUNC | O_WRONLY, 0644);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 || chdir(otel_dir()) < 0)
			_exit(127);
		char *argv[24] = {"node", "export.js"};
		int n = 2;
		for (int i = 0; args[i] && n < 23; i++)
			argv[n++] = args[i];
		argv[n] = NULL;
		execvp("node", argv);
		_exit(127);
	}
	return pid;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return xstrdup("");
	struct kp_buf b = {0};
	char t[4096];
	size_t n;
	while ((n = fread(t, 1, sizeof(t), f)) > 0)
		buf_append(&b, t, n);
	fclose(f);
	return b.data ? b.data : xstrdup("");
}

static char *node_output(const char *tag, const char *ext)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/%s.%s", kt_tmpdir(), tag, ext);
	return slurp(p);
}

/* ---------------------------------------------------------------- a small HTTP/1.1 listener */

struct conn {
	int fd;
	struct kp_buf in;
};

struct http_req {
	char method[16], path[256], ctype[128], cenc[64];
	struct kp_buf body;
};

struct capture {
	const char *protocol;
	struct otlp_opts opts;
	struct otlp_result results[MAX_RESULTS];
	int n_results, n_conns, n_gzip, statuses_not_200;
	char ctype_seen[128];
	int saved;
};

static int hdr_eq(const char *line, size_t len, const char *name, char *val, size_t vlen)
{
	size_t n = strlen(name);
	if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
		return 0;
	const char *v = line + n + 1;
	size_t l = len - n - 1;
	while (l && (*v == ' ' || *v == '\t'))
		v++, l--;
	while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
		l--;
	snprintf(val, vlen, "%.*s", (int)l, v);
	return 1;
}

/*
 * Parses one request from in. Returns the bytes it took (> 0), 0 when more input is needed, -1 on
 * a request this listener cannot read.
 */
static long http_parse(const struct kp_buf *in, struct http_req *r)
{
	const char *s = in->data;
	const char *eoh = s ? memmem(s, in->len, "\r\n\r\n", 4) : NULL;
	if (!eoh)
		return in->len > 65536 ? -1 : 0;
	size_t hlen = (size_t)(eoh - s) + 4;
	memset(r, 0, sizeof(*r));
	const char *le = memmem(s, hlen, "\r\n", 2);
	if (sscanf(s, "%15s %255s", r->method, r->path) != 2)
		return -1;
	long clen = -1;
	bool chunked = false;
	for (const char *l = le + 2; l < eoh;) {
		const char *e = memmem(l, (size_t)(eoh + 2 - l), "\r\n", 2);
		size_t n = (size_t)(e - l);
		char v[128];
		if (hdr_eq(l, n, "content-length", v, sizeof(v)))
			clen = atol(v);
		else if (hdr_eq(l, n, "transfer-encoding", v, sizeof(v)))
			chunked = strcasestr(v, "chunked") != NULL;
		else if (hdr_eq(l, n, "content-type", v, sizeof(v)))
			snprintf(r->ctype, sizeof(r->ctype), "%s", v);
		else if (hdr_eq(l, n, "content-encoding", v, sizeof(v)))
			snprintf(r->cenc, sizeof(r->cenc), "%.60s", v);
		l = e + 2;
	}
	size_t p = hlen;
	if (!chunked) {
		if (clen < 0)
			clen = 0;
		if (in->len < hlen + (size_t)clen)
			return 0;
		buf_append(&r->body, s + hlen, (size_t)clen);
		return (long)(hlen + (size_t)clen);
	}
	for (;;) {
		const char *e = memmem(s + p, in->len - p, "\r\n", 2);
		if (!e) {
			buf_free(&r->body);
			return 0;
		}
		size_t n = strtoul(s + p, NULL, 16);
		p = (size_t)(e - s) + 2;
		if (n == 0) { /* no trailers from the exporter: just the final CRLF */
			if (in->len < p + 2) {
				buf_free(&r->body);
				return 0;
			}
			return (long)(p + 2);
		}
		if (in->len < p + n + 2) {
			buf_free(&r->body);
			return 0;
		}
		buf_append(&r->body, s + p, n);
		p += n + 2;
	}
}

static void save_body(struct capture *cap, const struct http_req *r)
{
	const char *dir = getenv("KPROBE_OTEL_SAVE");
	if (!dir)
		return;
	char p[4200];
	snprintf(p, sizeof(p), "%s/%s%s-%d.bin", dir, cap->protocol, r->cenc[0] ? "-gz" : "",
		 cap->saved++);
	FILE *f = fopen(p, "w");
	if (f) {
		fwrite(r->body.data ? r->body.data : "", 1, r->body.len, f);
		fclose(f);
	}
}

static void respond(int fd, int status, const char *ctype, const void *body, size_t len)
{
	char h[512];
	const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : "Error";
	int n = snprintf(h, sizeof(h),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: keep-alive\r\n\r\n",
			 status, reason, ctype, len);
	CHECK(write_full(fd, h, (size_t)n) == 0);
	if (len)
		CHECK(write_full(fd, body, len) == 0);
}

static void handle_req(struct capture *cap, int fd, struct http_req *r)
{
	if (strcmp(r->method, "POST") || strcmp(r->path, "/v1/traces")) {
		respond(fd, 404, "text/plain", "not found\n", 10);
		cap->statuses_not_200++;
		return;
	}
	CHECK(cap->n_results < MAX_RESULTS);
	save_body(cap, r);
	snprintf(cap->ctype_seen, sizeof(cap->ctype_seen), "%s", r->ctype);
	cap->n_gzip += strcasecmp(r->cenc, "gzip") == 0;
	struct otlp_result *res = &cap->results[cap->n_results++];
	memset(res, 0, sizeof(*res));
	int st = otlp_handle(r->ctype, r->cenc, r->body.data ? r->body.data : "", r->body.len,
			     &cap->opts, res);
	if (st != 200) {
		kt_note("request %d: %d %s", cap->n_results, st, res->message);
		cap->statuses_not_200++;
	}
	respond(fd, st, res->resp_type, res->resp.data, res->resp.len);
}

/* Serves until the child exits (or the deadline). Returns the child's exit status. */
static int serve(int lfd, pid_t child, struct capture *cap, int timeout_s)
{
	struct conn conns[MAX_CONNS];
	int nc = 0, status = -1;
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_s * NSEC_PER_SEC;
	for (;;) {
		pid_t w = waitpid(child, &status, WNOHANG);
		if (w == child)
			break;
		CHECKF(now_mono_ns() < deadline, "node did not finish within %d s", timeout_s);
		struct pollfd pf[MAX_CONNS + 1];
		pf[0] = (struct pollfd){lfd, POLLIN, 0};
		for (int i = 0; i < nc; i++)
			pf[i + 1] = (struct pollfd){conns[i].fd, POLLIN, 0};
		if (poll(pf, (nfds_t)nc + 1, 50) <= 0)
			continue;
		if (pf[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				CHECK(nc < MAX_CONNS);
				conns[nc++] = (struct conn){fd, {0}};
				cap->n_conns++;
			}
		}
		for (int i = nc - 1; i >= 0; i--) {
			if (!(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			struct conn *c = &conns[i];
			char t[65536];
			ssize_t n = read(c->fd, t, sizeof(t));
			if (n > 0) {
				buf_append(&c->in, t, (size_t)n);
				struct http_req r;
				long used;
				while ((used = http_parse(&c->in, &r)) > 0) {
					handle_req(cap, c->fd, &r);
					buf_free(&r.body);
					memmove(c->in.data, c->in.data + used,
						c->in.len - (size_t)used);
					c->in.len -= (size_t)used;
				}
				CHECKF(used == 0, "a request this listener cannot parse");
				continue;
			}
			close(c->fd);
			buf_free(&c->in);
			conns[i] = conns[--nc];
		}
	}
	for (int i = 0; i < nc; i++) {
		close(conns[i].fd);
		buf_free(&conns[i].in);
	}
	return status;
}

static int listen_ephemeral(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(fd, 16) == 0);
	socklen_t l = sizeof(a);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* ---------------------------------------------------------------- comparing */

static const struct otlp_span *find_span(struct capture *cap, const char *span_hex, int *count)
{
	const struct otlp_span *hit = NULL;
	*count = 0;
	for (int i = 0; i < cap->n_results; i++)
		for (size_t k = 0; k < cap->results[i].n_spans; k++) {
			char h[17];
			otlp_hex(cap->results[i].spans[k].span_id, 8, h);
			if (!strcmp(h, span_hex)) {
				hit = &cap->results[i].spans[k];
				++*count;
			}
		}
	return hit;
}

static const char *span_attr(const struct otlp_span *s, const char *key)
{
	for (int i = 0; i < s->n_attrs; i++)
		if (!strcmp(s->attrs[i].key, key))
			return s->attrs[i].value;
	return NULL;
}

static const char *jstr(const struct json *o, const char *k)
{
	const struct json *v = json_get(o, k);
	return v && v->type == JSON_STR ? v->u.str.s : "";
}

static int64_t jint(const struct json *o, const char *k)
{
	int64_t v = -1;
	json_int(json_get(o, k), &v);
	return v;
}

static void run_export(const char *protocol, bool gzip)
{
	otel_deps();
	int port;
	int lfd = listen_ephemeral(&port);
	char url[128], expect[4200];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/traces", port);
	snprintf(expect, sizeof(expect), "%s/expect-%s.json", kt_tmpdir(), protocol);
	char *args[] = {"export",
			"--url",
			url,
			"--protocol",
			(char *)protocol,
			"--expect",
			expect,
			gzip ? "--gzip" : NULL,
			NULL};
	struct capture *cap = xcalloc(1, sizeof(*cap));
	cap->protocol = protocol;
	cap->opts = (struct otlp_opts){.max_body = 16 << 20, .txn_keys = TXN_KEYS, .n_txn_keys = 3};
	uint64_t t0 = now_real_ns();
	pid_t child = node_start(protocol, args);
	int st = serve(lfd, child, cap, 60);
	uint64_t t1 = now_real_ns();
	close(lfd);
	char *err = node_output(protocol, "err");
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "export.js failed (status %d): %.900s", st,
	       err);
	kt_note("%s", err);
	CHECK_EQ_INT(cap->statuses_not_200, 0);
	CHECK_CONTAINS(cap->ctype_seen,
		       !strcmp(protocol, "proto") ? "application/x-protobuf" : "application/json");
	CHECK_GE_INT(cap->n_results, 3); /* 5 spans in batches of 2 */
	CHECK_LT_INT(cap->n_conns, cap->n_results + 1);
	if (gzip)
		CHECK_EQ_INT(cap->n_gzip, cap->n_results);

	char *exp = slurp(expect);
	struct json *root;
	char jerr[128];
	struct json_doc *doc = json_parse(exp, strlen(exp), &root, jerr, sizeof(jerr), NULL);
	CHECKF(doc, "expect file: %s", jerr);
	CHECK_EQ_INT(jint(root, "pid"), child); /* the SDK's process.pid is the pid we forked */
	const struct json *spans = json_get(root, "spans");
	CHECK(spans && spans->type == JSON_ARR);
	CHECK_EQ_INT(spans->u.arr.n, 5);
	size_t decoded = 0;
	for (int i = 0; i < cap->n_results; i++)
		decoded += cap->results[i].n_spans;
	CHECK_EQ_INT(decoded, 5);
	for (size_t i = 0; i < spans->u.arr.n; i++) {
		const struct json *e = spans->u.arr.items[i];
		int cnt;
		const struct otlp_span *s = find_span(cap, jstr(e, "spanId"), &cnt);
		CHECKF(s && cnt == 1, "span %s ('%s') decoded %d times", jstr(e, "spanId"),
		       jstr(e, "name"), cnt);
		char h[33];
		CHECK_EQ_STR(otlp_hex(s->trace_id, 16, h), jstr(e, "traceId"));
		static const uint8_t z[8];
		CHECK_EQ_STR(memcmp(s->parent_id, z, 8) ? otlp_hex(s->parent_id, 8, h) : "",
			     jstr(e, "parentSpanId"));
		CHECK_EQ_STR(s->name, jstr(e, "name"));
		CHECK_EQ_INT(s->kind, jint(e, "kind"));
		CHECK_EQ_UINT(s->start_ns, strtoull(jstr(e, "start"), NULL, 10));
		CHECK_EQ_UINT(s->end_ns, strtoull(jstr(e, "end"), NULL, 10));
		CHECK(s->start_ns >= t0 - NSEC_PER_SEC && s->end_ns <= t1 + NSEC_PER_SEC);
		CHECK_EQ_INT(s->status, jint(e, "status"));
		CHECK_EQ_STR(s->status_msg, jstr(e, "statusMessage"));
		CHECK_EQ_INT(s->n_events, jint(e, "events"));
		CHECK_EQ_STR(s->service, "checkout");
		CHECK_EQ_STR(s->host, jstr(root, "host"));
		CHECK_EQ_INT(s->pid, child);
		CHECK_EQ_STR(s->scope, "kprobe-otel-test");
		const struct json *attrs = json_get(e, "attributes");
		CHECK_EQ_INT(s->n_attrs, attrs->u.arr.n);
		for (size_t k = 0; k < attrs->u.arr.n; k++) {
			const char *key = attrs->u.arr.keys[k];
			const char *want = attrs->u.arr.items[k]->u.str.s;
			const char *got = span_attr(s, key);
			CHECKF(got && !strcmp(got, want), "span '%s' attribute %s: '%s' vs '%s'",
			       s->name, key, got ? got : "(absent)", want);
		}
		if (!strcmp(s->name, "checkout"))
			CHECK_EQ_STR(s->txn, "req-9f21");
		else
			CHECK_EQ_STR(s->txn, "");
		CHECK_EQ_INT(s->tid, !strcmp(s->name, "database write") ? 4242 : 0);
	}
	json_free(doc);
	free(exp);
	free(err);
	for (int i = 0; i < cap->n_results; i++)
		otlp_result_free(&cap->results[i]);
	free(cap);
}

TEST_SLOW(otel_sdk_json, 120)
{
	run_export("json", false);
}

TEST_SLOW(otel_sdk_proto, 120)
{
	run_export("proto", false);
}

TEST_SLOW(otel_sdk_proto_gzip, 120)
{
	run_export("proto", true);
}

TEST_SLOW(otel_sdk_json_gzip, 120)
{
	run_export("json", true);
}

/* The exporter's own response parsers read the partial successes this side encodes. */
TEST_SLOW(otel_sdk_parses_partial_success, 120)
{
	otel_deps();
	const char *msg = "resource_spans[0].scope_spans[0].spans[1]: trace_id must be 16 bytes, "
			  "got 12 \xe2\x98\x83 \"quoted\"";
	static const char *const protos[] = {"proto", "json"};
	for (int i = 0; i < 2; i++) {
		for (int partial = 0; partial < 2; partial++) {
			struct kp_buf b = {0};
			otlp_response_encode(i == 0 ? OTLP_FMT_PROTOBUF : OTLP_FMT_JSON,
					     partial ? 300 : 0, partial ? msg : "", &b);
			char file[4200], tag[32];
			snprintf(tag, sizeof(tag), "resp-%s-%d", protos[i], partial);
			snprintf(file, sizeof(file), "%s/%s.bin", kt_tmpdir(), tag);
			FILE *f = fopen(file, "w");
			CHECK(f);
			fwrite(b.data ? b.data : "", 1, b.len, f);
			fclose(f);
			char *args[] = {"check-response", "--protocol", (char *)protos[i],
					"--file",	  file,		NULL};
			pid_t c = node_start(tag, args);
			int st;
			CHECK(waitpid(c, &st, 0) == c);
			char *out = node_output(tag, "out"), *err = node_output(tag, "err");
			CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !err[0], "%s: %.800s", tag,
			       err);
			struct json *root;
			char jerr[128];
			struct json_doc *doc =
				json_parse(out, strlen(out), &root, jerr, sizeof(jerr), NULL);
			CHECKF(doc, "%s: '%s': %s", tag, out, jerr);
			const struct json *ps = json_get(root, "partialSuccess");
			if (!partial) {
				CHECKF(ps == NULL, "%s: %s", tag, out);
			} else {
				int64_t n = -1;
				CHECKF(ps && json_int(json_get(ps, "rejectedSpans"), &n) == 0,
				       "%s: %s", tag, out);
				CHECK_EQ_INT(n, 300);
				CHECK_EQ_STR(jstr(ps, "errorMessage"), msg);
			}
			json_free(doc);
			free(out);
			free(err);
			buf_free(&b);
		}
	}
}

/* ------------------------------------------------------------------ joined to kernel events */

#include "cli/stack.h"
#include "httpd/client.h"

static int64_t query_int(int port, const char *q)
{
	struct httpc_req req = {.method = "POST", .path = "/api/v1/query?format=csv", .body = q,
				.body_len = strlen(q), .timeout_ms = 30000};
	struct httpc_resp resp = {0};
	char err[256];
	CHECKF(httpc_request("127.0.0.1", port, &req, &resp, err, sizeof(err)) == 0, "%s", err);
	CHECKF(resp.status == 200, "%s -> %d %s", q, resp.status, resp.body.data);
	/* "count()\nN\n" */
	const char *nl = strchr(resp.body.data, '\n');
	int64_t v = nl ? strtoll(nl + 1, NULL, 10) : -1;
	httpc_resp_free(&resp);
	return v;
}

/*
 * The real JS SDK's spans, arriving 3 s after the events they contain (the events are already
 * stored, sealed into segments): the events become findable by the span's transaction id (a
 * child span inherits its root's) and trace id; a write after the spans belongs to neither.
 */
TEST_BPF_SLOW(otel_sdk_spans_join_kernel_events, 180)
{
	otel_deps();
	char data[4200];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	const char *sets[] = {"store.sealSec=1", NULL};
	struct stack s;
	struct stack_opts so = {.data_dir = data, .sets = sets, .ephemeral_ports = 1, .quiet = 1};
	char err[512];
	CHECKF(stack_start(&s, &so, err, sizeof(err)) == 0, "%s", err);

	char url[128], out[4200], txn[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/traces", s.otlp_port);
	snprintf(out, sizeof(out), "%s/join.json", kt_tmpdir());
	snprintf(txn, sizeof(txn), "req-%d", getpid());
	char *args[] = {"join", "--url", url, "--dir", (char *)kt_tmpdir(), "--txn", txn,
			"--delay-ms", "3000", "--out", out, NULL};
	pid_t n = node_start("join", args);
	int st;
	CHECK_EQ_INT(waitpid(n, &st, 0), n);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "export.js join failed: see %s/join.err",
	       kt_tmpdir());
	FILE *f = fopen(out, "r");
	CHECK(f != NULL);
	char js[512] = "";
	size_t r = fread(js, 1, sizeof(js) - 1, f);
	js[r] = '\0';
	fclose(f);
	int pid = 0;
	char trace[40] = "";
	CHECK_EQ_INT(sscanf(js, "{\"pid\":%d,\"traceId\":\"%32[0-9a-f]\"", &pid, trace), 2);

	char q[400];
	int64_t by_txn = -1, by_trace = -1, all = -1;
	for (int i = 0; i < 100; i++) {
		snprintf(q, sizeof(q),
			 "SELECT count() FROM events WHERE txn = '%s' AND type = 'write' AND pid = %d "
			 "AND bytes = 4321",
			 txn, pid);
		by_txn = query_int(s.api_port, q);
		if (by_txn == 3)
			break;
		usleep(200000);
	}
	snprintf(q, sizeof(q),
		 "SELECT count() FROM events WHERE trace_id = '%s' AND type = 'write' AND pid = %d",
		 trace, pid);
	by_trace = query_int(s.api_port, q);
	snprintf(q, sizeof(q), "SELECT count() FROM events WHERE type = 'write' AND pid = %d AND "
			       "bytes IN (4321, 1234)",
		 pid);
	all = query_int(s.api_port, q);
	snprintf(q, sizeof(q), "SELECT count() FROM events WHERE txn = '%s' AND bytes = 1234", txn);
	int64_t outside = query_int(s.api_port, q);
	snprintf(q, sizeof(q), "SELECT count() FROM spans WHERE txn = '%s'", txn);
	int64_t spans = query_int(s.api_port, q);
	kt_note("pid %d: writes by txn %lld, by trace %lld, all %lld, outside %lld, spans %lld", pid,
		(long long)by_txn, (long long)by_trace, (long long)all, (long long)outside,
		(long long)spans);
	CHECK_EQ_INT(all, 4);
	CHECK_EQ_INT(by_txn, 3);
	CHECK_EQ_INT(by_trace, 3);
	CHECK_EQ_INT(outside, 0);
	CHECK_GE_INT(spans, 1);
	stack_stop(&s, 10000);
}
