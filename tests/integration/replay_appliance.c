/*
 * Replay through the appliance, end to end with the real parts: kprobed and kprobe-agent run as
 * `kprobe up` starts them, with replay.capture.comms selecting a client and its server (copies
 * of tests/progs/replay_client and replay_server under names no other process has). The agent's
 * capture probe records them, ships the records in its frames, kprobed stores them:
 *
 *   - FROM syscalls finds the client's calls, with the payload sizes it moved;
 *   - `kprobe replay --pid P --from T --to T --appliance ...` fetches a recording and replays the
 *     client byte for byte with the server gone (and its config file too);
 *   - a longer timeout turns "failed (timeout)" into "succeeded" with the answer the server sent
 *     after the recorded client gave up (the server is in the recording as a peer);
 *   - POST /api/v1/replay does the same on the appliance and answers JSON; malformed requests
 *     get 400s; an incident key (an OTLP span naming the client's pid) finds the recording.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/loop.h"
#include "agent/ship.h"
#include "cli/stack.h"
#include "common/config.h"
#include "common/json.h"
#include "common/util.h"
#include "httpd/client.h"
#include "tests/integration/procs.h"
#include "tests/test.h"

static int http(int port, const char *method, const char *path, const char *body,
		struct kp_buf *out)
{
	struct httpc_req req = {.method = method,
				.path = path,
				.body = body,
				.body_len = body ? strlen(body) : 0,
				.timeout_ms = 60000};
	struct httpc_resp resp = {0};
	char err[256];
	CHECKF(httpc_request("127.0.0.1", port, &req, &resp, err, sizeof(err)) == 0, "%s", err);
	out->len = 0;
	buf_append(out, resp.body.data ? resp.body.data : "", resp.body.len);
	buf_append(out, "", 1);
	out->len--;
	int st = resp.status;
	httpc_resp_free(&resp);
	return st;
}

static int query(int port, const char *q, struct kp_buf *out)
{
	return http(port, "POST", "/api/v1/query", q, out);
}

/* The first row's first value of a query answer, as an integer (-1 when none). */
static int64_t query_int(int port, const char *q)
{
	struct kp_buf b = {0};
	int64_t v = -1;
	if (query(port, q, &b) == 200) {
		struct json *root;
		char err[64];
		size_t pos;
		struct json_doc *d = json_parse(b.data, b.len, &root, err, sizeof(err), &pos);
		const struct json *rows = d ? json_get(root, "rows") : NULL;
		if (rows && rows->u.arr.n && rows->u.arr.items[0]->u.arr.n)
			json_int(rows->u.arr.items[0]->u.arr.items[0], &v);
		json_free(d);
	}
	buf_free(&b);
	return v;
}

static const char *jstr(const struct json *o, const char *k)
{
	const struct json *v = json_get(o, k);
	return v && v->type == JSON_STR ? v->u.str.s : "";
}

/* Posts one OTLP/JSON span (a failed payment) naming pid, with transaction id txn. */
static void post_span(int otlp_port, int pid, const char *txn, uint64_t start, uint64_t end)
{
	uint8_t rnd[24];
	CHECK(getrandom(rnd, sizeof(rnd), 0) == sizeof(rnd));
	char trace[33], span[17];
	for (int i = 0; i < 16; i++)
		snprintf(trace + 2 * i, 3, "%02x", rnd[i]);
	for (int i = 0; i < 8; i++)
		snprintf(span + 2 * i, 3, "%02x", rnd[16 + i]);
	char body[2048];
	snprintf(body, sizeof(body),
		 "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
		 "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"replay-client\"}},"
		 "{\"key\":\"process.pid\",\"value\":{\"intValue\":\"%d\"}}]},"
		 "\"scopeSpans\":[{\"scope\":{\"name\":\"kprobe-test\"},\"spans\":[{"
		 "\"traceId\":\"%s\",\"spanId\":\"%s\",\"name\":\"balance\",\"kind\":3,"
		 "\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\",\"attributes\":["
		 "{\"key\":\"payment.id\",\"value\":{\"stringValue\":\"%s\"}}],"
		 "\"status\":{\"code\":2,\"message\":\"TIMEOUT: 750 ms exceeded\"}}]}]}]}",
		 pid, trace, span, (unsigned long long)start, (unsigned long long)end, txn);
	struct httpc_req req = {.method = "POST",
				.path = "/v1/traces",
				.headers = (const char *[]){"Content-Type: application/json", NULL},
				.body = body,
				.body_len = strlen(body),
				.timeout_ms = 10000};
	struct httpc_resp resp = {0};
	char err[256];
	CHECKF(httpc_request("127.0.0.1", otlp_port, &req, &resp, err, sizeof(err)) == 0, "%s",
	       err);
	CHECKF(resp.status == 200, "OTLP answered %d: %s", resp.status, resp.body.data);
	httpc_resp_free(&resp);
}

TEST_BPF_SLOW(replay_appliance_capture_query_replay_incident, 300)
{
	char cname[16], sname[16], cpath[512], spath[512], cfg[512], sets_comm[80];
	int id = getpid() % 100000;
	snprintf(cname, sizeof(cname), "kpc%d", id);
	snprintf(sname, sizeof(sname), "kps%d", id);
	snprintf(cpath, sizeof(cpath), "%s", tmp(cname));
	snprintf(spath, sizeof(spath), "%s", tmp(sname));
	copy_exe(bin("tests/replay_client"), cpath);
	copy_exe(bin("tests/replay_server"), spath);
	snprintf(sets_comm, sizeof(sets_comm), "replay.capture.comms=%s,%s", cname, sname);

	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	const char *sets[] = {"agent.batchMs=20", "engine.lateMs=50", sets_comm, NULL};
	struct stack s;
	struct stack_opts o = {.data_dir = data, .sets = sets, .ephemeral_ports = 1, .quiet = 1};
	char err[512];
	CHECKF(stack_start(&s, &o, err, sizeof(err)) == 0, "%s", err);

	/* the incident: the client gives up after 750 ms, the server answers after 800 */
	int port;
	const char *sargv[] = {spath, "800", "0", NULL};
	pid_t srv = start_server(sargv, &port);
	snprintf(cfg, sizeof(cfg), "%s", tmp("client.cfg"));
	char text[128];
	snprintf(text, sizeof(text), "host=127.0.0.1\nport=%d\nrequest=GET balance\n", port);
	write_file(cfg, text);
	uint64_t t0 = now_real_ns();
	struct run r;
	const char *cli[] = {cpath, cfg, "750", NULL};
	pid_t client = run_cmd(&r, cli);
	uint64_t t_end = now_real_ns();
	CHECK_EQ_INT(r.code, 1);
	CHECK_EQ_STR(r.out, "request failed: no answer within 750 ms\n");
	char recorded_out[256];
	snprintf(recorded_out, sizeof(recorded_out), "%s", r.out);

	/* stored: the client's calls (its request, 12 bytes), and the server's late answer */
	char q[512];
	int64_t n = -1, late = -1;
	for (int i = 0; i < 150; i++) {
		snprintf(q, sizeof(q),
			 "SELECT count() FROM syscalls WHERE pid = %d AND kind = 'exit'", client);
		n = query_int(s.api_port, q);
		snprintf(q, sizeof(q),
			 "SELECT count() FROM syscalls WHERE pid = %d AND name = 'write' AND bytes "
			 "> "
			 "10",
			 srv);
		late = query_int(s.api_port, q);
		if (n >= 1 && late >= 1)
			break;
		usleep(100000);
	}
	CHECKF(n == 1 && late >= 1, "client exit records %lld, server answers %lld", (long long)n,
	       (long long)late);
	uint64_t t1 = now_real_ns();
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	struct kp_buf b = {0};
	snprintf(q, sizeof(q),
		 "SELECT name, bytes, truncated, payload FROM syscalls WHERE pid = %d AND kind = "
		 "'call' AND name IN ('sendto', 'connect', 'openat') ORDER BY ts",
		 client);
	CHECK_EQ_INT(query(s.api_port, q, &b), 200);
	kt_note("%.600s", b.data);
	CHECK_CONTAINS(b.data, "[\"sendto\",12,0,\"GET balance\\\\x0a\"]");
	CHECK_CONTAINS(b.data, "[\"connect\",16,0,");
	CHECK_CONTAINS(b.data, "client.cfg");
	snprintf(q, sizeof(q), "SELECT count() FROM syscalls WHERE pid = %d", client);
	int64_t calls = query_int(s.api_port, q);
	CHECK_GE_INT(calls, 10);

	/* replayed from the appliance, with the server and the config file gone */
	CHECK(unlink(cfg) == 0);
	char api[64], from[32], to[32], pid[16];
	snprintf(api, sizeof(api), "127.0.0.1:%d", s.api_port);
	snprintf(from, sizeof(from), "%llu", (unsigned long long)t0);
	snprintf(to, sizeof(to), "%llu", (unsigned long long)t1);
	snprintf(pid, sizeof(pid), "%d", client);
	const char *rep[] = {
		bin("kprobe"), "replay", "--pid",	pid,   "--from", from,
		"--to",	       to,	 "--appliance", api,   "--save", tmp("fetched.kprc"),
		"--",	       cpath,	 cfg,		"750", NULL};
	run_cmd(&r, rep);
	CHECKF(r.code == 1, "exit %d, stderr: %.1500s", r.code, r.err);
	CHECK_EQ_STR(r.out, recorded_out);
	CHECK_CONTAINS(r.err, "outcome: failed (timeout), as recorded");
	CHECK_CONTAINS(r.err, "stdout: identical to the recording");
	CHECK(access(tmp("fetched.kprc"), F_OK) == 0);
	/* the agent's capture carried the client's command line and working directory */
	char cwd[4096];
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	const char *ls[] = {bin("kprobe"), "replay", "--list", tmp("fetched.kprc"), NULL};
	run_cmd(&r, ls);
	CHECK_EQ_INT(r.code, 0);
	char want[4200];
	snprintf(want, sizeof(want), "recording of: %s %s 750\n", cpath, cfg);
	CHECK_CONTAINS(r.out, want);
	snprintf(want, sizeof(want), " in %s;", cwd);
	CHECK_CONTAINS(r.out, want);
	CHECK_CONTAINS(r.out, "(process");
	CHECK_CONTAINS(r.out, ", peer)");

	/* the fix: a longer timeout gets the answer the server sent at 800 ms */
	const char *fix[] = {bin("kprobe"), "replay", "--pid", pid,   "--from", from,	"--to", to,
			     "--appliance", api,      "--",    cpath, cfg,	"1500", NULL};
	run_cmd(&r, fix);
	CHECKF(r.code == 0, "exit %d, stderr: %.1500s", r.code, r.err);
	CHECK_CONTAINS(r.out, "answer: answer to 'GET balance': ");
	CHECK_CONTAINS(r.err, "outcome: failed (timeout) → succeeded");

	/* the same on the appliance: POST /api/v1/replay */
	char body[1200];
	snprintf(body, sizeof(body),
		 "{\"pid\":%d,\"from\":\"%llu\",\"to\":%llu,\"command\":[\"%s\",\"%s\",\"1500\"]}",
		 client, (unsigned long long)t0, (unsigned long long)t1, cpath, cfg);
	int st = http(s.api_port, "POST", "/api/v1/replay", body, &b);
	CHECKF(st == 200, "%d %.1500s", st, b.data);
	kt_note("POST /api/v1/replay: %.4000s", b.data);
	struct json *root;
	char jerr[64];
	size_t pos;
	struct json_doc *d = json_parse(b.data, b.len, &root, jerr, sizeof(jerr), &pos);
	CHECKF(d != NULL, "%s: %.500s", jerr, b.data);
	CHECK_EQ_STR(jstr(root, "state"), "done");
	CHECK_EQ_STR(jstr(root, "outcome"), "succeeded");
	CHECK_EQ_STR(jstr(root, "recorded_outcome"), "failed (timeout)");
	CHECK_EQ_STR(jstr(root, "outcome_change"), "failed (timeout) → succeeded");
	CHECK_CONTAINS(jstr(root, "stdout"), "answer: answer to 'GET balance': ");
	CHECK_EQ_STR(jstr(root, "recorded_stdout"), recorded_out);
	const struct json *rec = json_get(root, "recording");
	CHECK(rec && rec->type == JSON_OBJ);
	int64_t v;
	CHECK(json_int(json_get(rec, "pid"), &v) == 0 && v == client);
	CHECK(json_int(json_get(root, "exit_status"), &v) == 0 && v == 0);
	char rid[32];
	snprintf(rid, sizeof(rid), "%s", jstr(root, "id"));
	json_free(d);
	/* kept for the dashboard to fetch again */
	char path[128];
	snprintf(path, sizeof(path), "/api/v1/replay/%s", rid);
	CHECK_EQ_INT(http(s.api_port, "GET", path, NULL, &b), 200);
	CHECK_CONTAINS(b.data, "\"outcome_change\":\"failed (timeout) → succeeded\"");

	/* the recorded timeout replays as recorded; a changed request is a divergence */
	snprintf(body, sizeof(body),
		 "{\"pid\":%d,\"from\":%llu,\"to\":%llu,\"command\":[\"%s\",\"%s\",\"750\","
		 "\"GET balanze\"]}",
		 client, (unsigned long long)t0, (unsigned long long)t1, cpath, cfg);
	CHECK_EQ_INT(http(s.api_port, "POST", "/api/v1/replay", body, &b), 200);
	d = json_parse(b.data, b.len, &root, jerr, sizeof(jerr), &pos);
	CHECK(d != NULL);
	CHECK_EQ_STR(jstr(root, "state"), "diverged");
	const struct json *div = json_get(root, "divergence");
	CHECKF(div && div->type == JSON_OBJ, "%.800s", b.data);
	CHECK_CONTAINS(jstr(div, "call"), "sendto");
	CHECK_CONTAINS(jstr(div, "expected"), "\"GET balance\\n\"");
	CHECK_CONTAINS(jstr(div, "actual"), "\"GET balanze\\n\"");
	json_free(d);

	/* malformed requests: 400 with what is wrong */
	static const struct {
		const char *body, *says;
	} bad[] = {
		{"not json", "not JSON"},
		{"[1,2]", "JSON object"},
		{"{\"pid\":\"x\"}", "pid"},
		{"{\"pid\":1,\"form\":1}", "unknown field 'form'"},
		{"{\"pid\":1,\"from\":1}", "to=T"},
		{"{\"incident\":\"a\",\"pid\":3}", "not both"},
		{"{\"pid\":1,\"from\":1,\"to\":2,\"delays\":[\"poll:+soon\"]}", "delays[0]"},
		{"{\"pid\":1,\"from\":1,\"to\":2,\"fails\":[\"fsync:ENOPE\"]}", "fails[0]"},
		{"{\"pid\":1,\"from\":1,\"to\":2,\"command\":[]}", "command"},
		{"{\"pid\":1,\"from\":1,\"to\":2,\"time_scale\":-1}", "time_scale"},
		{"{\"pid\":1,\"from\":\"yesterday\",\"to\":2}", "from"},
	};
	for (size_t i = 0; i < KP_ARRAY_SIZE(bad); i++) {
		st = http(s.api_port, "POST", "/api/v1/replay", bad[i].body, &b);
		CHECKF(st == 400, "%s -> %d %s", bad[i].body, st, b.data);
		CHECKF(strstr(b.data, bad[i].says), "%s -> %s", bad[i].body, b.data);
	}
	/* a replay that does not end is killed at its timeout; while it runs, a second one is
	 * refused (replay.api.maxConcurrent = 1) */
	snprintf(body, sizeof(body),
		 "{\"pid\":%d,\"from\":%llu,\"to\":%llu,\"timeout_ms\":2500,\"command\":"
		 "[\"/bin/sh\",\"-c\",\"while :; do :; done\"]}",
		 client, (unsigned long long)t0, (unsigned long long)t1);
	int pp[2];
	CHECK(pipe(pp) == 0);
	pid_t spin = fork();
	if (spin == 0) {
		struct kp_buf sb = {0};
		int sst = http(s.api_port, "POST", "/api/v1/replay", body, &sb);
		dprintf(pp[1], "%d %s", sst, sb.data);
		_exit(0);
	}
	close(pp[1]);
	int busy = 0;
	for (int i = 0; i < 40 && busy != 429; i++) {
		usleep(50000);
		busy = http(s.api_port, "POST", "/api/v1/replay", body, &b);
	}
	CHECKF(busy == 429, "second replay: %d %.300s", busy, b.data);
	CHECK_CONTAINS(b.data, "replay.api.maxConcurrent");
	char spun[4096] = "";
	size_t got = 0;
	ssize_t k;
	while (got < sizeof(spun) - 1 && (k = read(pp[0], spun + got, sizeof(spun) - 1 - got)) > 0)
		got += (size_t)k;
	close(pp[0]);
	waitpid(spin, NULL, 0);
	CHECKF(!strncmp(spun, "200 ", 4), "%.500s", spun);
	CHECK_CONTAINS(spun, "\"state\":\"timed out\"");
	CHECK_CONTAINS(spun, "replay.api.timeoutMs");

	/* a command that is not an absolute executable path */
	snprintf(body, sizeof(body),
		 "{\"pid\":%d,\"from\":%llu,\"to\":%llu,\"command\":[\"replay_client\"]}", client,
		 (unsigned long long)t0, (unsigned long long)t1);
	CHECK_EQ_INT(http(s.api_port, "POST", "/api/v1/replay", body, &b), 400);
	CHECK_CONTAINS(b.data, "absolute path");
	CHECK_EQ_INT(http(s.api_port, "GET", "/api/v1/replay/recording?pid=abc", NULL, &b), 400);
	CHECK_EQ_INT(http(s.api_port, "GET", "/api/v1/replay/recording", NULL, &b), 400);
	CHECK_EQ_INT(http(s.api_port, "GET", "/api/v1/replay/r-999999", NULL, &b), 404);
	/* a process nobody captured: 404 that says how to capture it */
	snprintf(path, sizeof(path), "/api/v1/replay/recording?pid=%d&from=%llu&to=%llu", getpid(),
		 (unsigned long long)t0, (unsigned long long)t1);
	CHECK_EQ_INT(http(s.api_port, "GET", path, NULL, &b), 404);
	CHECK_CONTAINS(b.data, "replay.capture.comms");

	/* an incident: a failed span naming the client's pid and its transaction id */
	char txn[64];
	snprintf(txn, sizeof(txn), "txn-replay-%d", id);
	/* the span begins once the client runs, as an instrumented client's would: after its
	 * first captured call (under load, exec can come milliseconds after the fork) */
	snprintf(q, sizeof(q), "SELECT min(ts) FROM syscalls WHERE pid = %d", client);
	int64_t first = query_int(s.api_port, q);
	CHECKF(first >= (int64_t)t0 && first < (int64_t)t_end, "first call at %lld", (long long)first);
	post_span(s.otlp_port, client, txn, (uint64_t)first + 1000000, t_end - 1000000);
	snprintf(path, sizeof(path), "/api/v1/replay/recording?incident=%s", txn);
	for (int i = 0; i < 200; i++) {
		st = http(s.api_port, "GET", path, NULL, &b);
		if (st == 200)
			break;
		usleep(100000);
	}
	CHECKF(st == 200, "incident recording: %d %.600s", st, b.data);
	const char *inc[] = {bin("kprobe"), "replay", "--incident", txn,   "--appliance", api,
			     "--",	    cpath,    cfg,	    "750", NULL};
	run_cmd(&r, inc);
	CHECKF(r.code == 1, "exit %d, stderr: %.1500s", r.code, r.err);
	CHECK_EQ_STR(r.out, recorded_out);
	CHECK_CONTAINS(r.err, "stdout: identical to the recording");
	snprintf(body, sizeof(body), "{\"incident\":\"%s\",\"command\":[\"%s\",\"%s\",\"1500\"]}",
		 txn, cpath, cfg);
	CHECK_EQ_INT(http(s.api_port, "POST", "/api/v1/replay", body, &b), 200);
	CHECK_CONTAINS(b.data, "\"outcome_change\":\"failed (timeout) → succeeded\"");
	/* the replay panel's choices: the client, captured, with its range and command line */
	snprintf(path, sizeof(path), "/api/v1/replay/processes?incident=%s", txn);
	CHECK_EQ_INT(http(s.api_port, "GET", path, NULL, &b), 200);
	kt_note("processes: %.1500s", b.data);
	d = json_parse(b.data, b.len, &root, jerr, sizeof(jerr), &pos);
	CHECKF(d != NULL, "%s: %.500s", jerr, b.data);
	const struct json *procs = json_get(root, "processes");
	CHECK(procs && procs->type == JSON_ARR && procs->u.arr.n >= 1);
	const struct json *p0 = procs->u.arr.items[0];
	CHECK(json_int(json_get(p0, "pid"), &v) == 0 && v == client);
	CHECK_EQ_STR(jstr(p0, "role"), "transaction");
	CHECK(json_get(p0, "captured") && json_get(p0, "captured")->type == JSON_BOOL &&
	      json_get(p0, "captured")->u.b);
	CHECK(json_int(json_get(p0, "from_ns"), &v) == 0 && (uint64_t)v >= t0 &&
	      (uint64_t)v <= t_end);
	CHECK(json_get(p0, "exec_seen")->u.b && json_get(p0, "exit_seen")->u.b);
	const struct json *cmd = json_get(p0, "command");
	CHECK(cmd && cmd->type == JSON_ARR && cmd->u.arr.n == 3);
	CHECK_EQ_STR(cmd->u.arr.items[0]->u.str.s, cpath);
	CHECK_EQ_STR(cmd->u.arr.items[2]->u.str.s, "750");
	CHECK(json_get(root, "hint")->type == JSON_NULL);
	json_free(d);
	CHECK_EQ_INT(http(s.api_port, "GET", "/api/v1/replay/processes", NULL, &b), 400);
	CHECK_CONTAINS(b.data, "incident");
	CHECK_EQ_INT(http(s.api_port, "GET", "/api/v1/replay/processes?incident=no-such-txn-x",
			  NULL, &b),
		     404);
	/* an unknown incident: 404 */
	CHECK_EQ_INT(http(s.api_port, "GET", "/api/v1/replay/recording?incident=no-such-txn-x",
			  NULL, &b),
		     404);
	buf_free(&b);
	stack_stop(&s, 10000);
}

/* kprobe record --appliance: the recording joins the capture store; replayed from there
 * (kprobed alone, no agent), with --json. */
TEST_BPF_SLOW(replay_appliance_record_upload_json, 180)
{
	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	struct stack s;
	/* replays on the appliance switched off: recordings still come and go */
	const char *sets[] = {"replay.api.enabled=false", NULL};
	struct stack_opts o = {.data_dir = data,
			       .sets = sets,
			       .ephemeral_ports = 1,
			       .quiet = 1,
			       .no_agent = 1};
	char err[512];
	CHECKF(stack_start(&s, &o, err, sizeof(err)) == 0, "%s", err);
	char api[64];
	snprintf(api, sizeof(api), "http://127.0.0.1:%d", s.api_port);
	struct run r;
	uint64_t t0 = now_real_ns();
	const char *rec[] = {bin("kprobe"), "record", "--out", tmp("u.kprc"),
			     "--appliance", api,      "--",    bin("tests/replay_threads"),
			     tmp("slices"), "4",      NULL};
	char slices[512] = "";
	for (int i = 0; i < 30; i++)
		snprintf(slices + strlen(slices), sizeof(slices) - strlen(slices), "%03d-", i);
	write_file(tmp("slices"), slices);
	run_cmd(&r, rec);
	CHECKF(r.code == 0, "exit %d: %.1500s", r.code, r.err);
	CHECK_CONTAINS(r.err, "shipped to kprobed");
	char recorded[4096];
	snprintf(recorded, sizeof(recorded), "%s", r.out);
	const char *p = strstr(r.err, "\"pid\":");
	CHECK(p != NULL);
	int pid = atoi(p + 6);
	CHECK_GT_INT(pid, 0);
	char q[256];
	snprintf(q, sizeof(q), "SELECT count() FROM syscalls WHERE pid = %d AND name = 'getrandom'",
		 pid);
	CHECK_GE_INT(query_int(s.api_port, q), 1);
	uint64_t t1 = now_real_ns();
	char from[32], to[32], spid[16];
	snprintf(from, sizeof(from), "%llu", (unsigned long long)t0);
	snprintf(to, sizeof(to), "%llu", (unsigned long long)t1);
	snprintf(spid, sizeof(spid), "%d", pid);
	CHECK(unlink(tmp("slices")) == 0);
	const char *rep[] = {bin("kprobe"), "replay", "--json", "--pid",       spid, "--from",
			     from,	    "--to",   to,	"--appliance", api,  NULL};
	run_cmd(&r, rep);
	CHECKF(r.code == 0, "exit %d: %.1500s", r.code, r.err);
	struct json *root;
	char jerr[64];
	size_t pos;
	struct json_doc *d = json_parse(r.out, strlen(r.out), &root, jerr, sizeof(jerr), &pos);
	CHECKF(d != NULL, "%s: %.500s", jerr, r.out);
	CHECK_EQ_STR(jstr(root, "outcome_change"), "succeeded, as recorded");
	CHECK_EQ_STR(jstr(root, "stdout"), recorded);
	CHECK(json_get(root, "stdout_identical")->type == JSON_BOOL &&
	      json_get(root, "stdout_identical")->u.b);
	json_free(d);
	struct kp_buf b = {0};
	char body[256];
	snprintf(body, sizeof(body), "{\"pid\":%d,\"from\":%s,\"to\":%s}", pid, from, to);
	CHECK_EQ_INT(http(s.api_port, "POST", "/api/v1/replay", body, &b), 403);
	CHECK_CONTAINS(b.data, "replay.api.enabled");
	/* not a recording: 400 */
	CHECK_EQ_INT(http(s.api_port, "POST", "/api/v1/replay/recordings", "garbage", &b), 400);
	CHECK_CONTAINS(b.data, "not a recording");
	buf_free(&b);
	stack_stop(&s, 10000);
}

/* Ships n capture records of pid 4343 to ingest_port through the real ship sink. */
static void ship_caps(int ingest_port, int n)
{
	struct kp_config cfg;
	config_init(&cfg);
	char set[700], err[256];
	snprintf(set, sizeof(set), "agent.appliance=127.0.0.1:%d", ingest_port);
	CHECK_EQ_INT(config_set(&cfg, set, err, sizeof(err)), 0);
	snprintf(set, sizeof(set), "agent.spoolDir=%s/spool", kt_tmpdir());
	CHECK_EQ_INT(config_set(&cfg, set, err, sizeof(err)), 0);
	CHECK_EQ_INT(config_set(&cfg, "agent.batchMs=10", err, sizeof(err)), 0);
	struct loop *l;
	CHECK_EQ_INT(loop_init(&l, 256), 0);
	struct sink sk;
	CHECK_EQ_INT(ship_sink_open(&cfg, l, &sk), 0);
	static uint8_t buf[KP_CAP_HDR_LEN + 3000];
	uint64_t mono = now_mono_ns();
	for (int i = 0; i < n; i++) {
		struct kp_cap_rec *c = (void *)buf;
		memset(buf, 0, sizeof(buf));
		c->kind = KP_CAP_CALL;
		c->nr = 0;
		c->pid = c->tid = 4343;
		c->ts_enter = mono + (uint64_t)i * 1000;
		c->ts_exit = c->ts_enter + 500;
		c->ret = 3000;
		c->payload_len = 3000;
		memset(buf + KP_CAP_HDR_LEN, 'a' + i % 26, 3000);
		c->len = KP_CAP_HDR_LEN + 3000;
		CHECK_EQ_INT(sk.ops->capture(sk.ctx, c, c->len, agent_clock_offset(), NULL, 0), 0);
		if (i % 50 == 0) {
			sk.ops->tick(sk.ctx, now_mono_ns());
			loop_run_once(l, 0);
		}
	}
	uint64_t deadline = now_mono_ns() + 30 * NSEC_PER_SEC;
	while (!ship_sink_idle(&sk) && now_mono_ns() < deadline) {
		sk.ops->tick(sk.ctx, now_mono_ns());
		loop_run_once(l, 10);
	}
	CHECK(ship_sink_idle(&sk)); /* every frame acked: durable in kprobed's WAL */
	sk.ops->close(sk.ctx, 1000);
	loop_free(l);
	config_free(&cfg);
}

/*
 * Acked capture records survive kprobed being killed: after kill -9 they are all there, once;
 * and with the capture store's directory gone while kprobed is down, they come back from the
 * WAL (which kprobed keeps until the capture store has synced them).
 */
TEST_SLOW(replay_appliance_capture_records_survive_kill, 120)
{
	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	struct stack s;
	struct stack_opts o = {.data_dir = data, .ephemeral_ports = 1, .quiet = 1, .no_agent = 1};
	char err[512];
	CHECKF(stack_start(&s, &o, err, sizeof(err)) == 0, "%s", err);
	ship_caps(s.ingest_port, 1000);
	kill(s.kprobed, SIGKILL);
	waitpid(s.kprobed, NULL, 0);
	const char *q = "SELECT count(), sum(bytes) FROM syscalls WHERE pid = 4343";
	struct kp_buf b = {0};
	for (int round = 0; round < 2; round++) {
		if (round == 1) {
			/* as if the disk lost the capture logs: only the WAL has them now */
			char cmd[800];
			snprintf(cmd, sizeof(cmd), "rm -rf '%s/syscalls'", data);
			CHECK_EQ_INT(system(cmd), 0);
		}
		CHECKF(stack_start(&s, &o, err, sizeof(err)) == 0, "%s", err);
		CHECK_EQ_INT(query(s.api_port, q, &b), 200);
		CHECKF(strstr(b.data, "[[1000,3000000]]"), "round %d: %.400s", round, b.data);
		if (round == 0) {
			kill(s.kprobed, SIGKILL);
			waitpid(s.kprobed, NULL, 0);
		}
	}
	buf_free(&b);
	stack_stop(&s, 10000);
}
