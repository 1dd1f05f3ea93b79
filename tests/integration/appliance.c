/*
 * The whole appliance (bin/kprobed: ingest, WAL, store, engine, HTTP) as users meet it:
 *
 *  - crash safety: two agents ship while kprobed is SIGKILLed and restarted; afterwards every
 *    acked event is queryable exactly once (count, min, max, sum and sum of squares of the
 *    per-event index agree), with part of the data in sealed segments and part replayed from
 *    the WAL;
 *  - bad input: more than 50 malformed queries each get a 400 with a message and a position;
 *    the server keeps answering.
 */
#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/stack.h"
#include "common/json.h"
#include "common/util.h"
#include "graph/gstore.h"
#include "httpd/client.h"
#include "tests/integration/shipgen.h"
#include "tests/test.h"

static int post_query(int port, const char *q, struct kp_buf *body)
{
	struct httpc_req req = {.method = "POST", .path = "/api/v1/query", .body = q,
				.body_len = strlen(q), .timeout_ms = 30000};
	struct httpc_resp resp = {0};
	char err[256];
	int r = httpc_request("127.0.0.1", port, &req, &resp, err, sizeof(err));
	CHECKF(r == 0, "query request failed: %s", err);
	body->len = 0;
	buf_append(body, resp.body.data ? resp.body.data : "", resp.body.len);
	int st = resp.status;
	httpc_resp_free(&resp);
	return st;
}

static void appliance_up(struct stack *s, const char *data, int ingest_port)
{
	char ip[64];
	snprintf(ip, sizeof(ip), "ingest.port=%d", ingest_port);
	const char *sets[] = {ip, "api.port=0", "otlp.port=0", "store.memtableRows=65536",
			      "store.sealSec=1", NULL};
	struct stack_opts o = {.data_dir = data, .sets = sets, .quiet = 1, .no_agent = 1};
	char err[512];
	CHECKF(stack_start(s, &o, err, sizeof(err)) == 0, "%s", err);
}

static int wait_idle(struct shipgen_shared *sh, pid_t pid, int seconds)
{
	int st;
	for (int i = 0; i < seconds * 100; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

TEST_SLOW(appliance_kill9_two_agents_every_acked_event_queryable_once, 240)
{
	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	int port = free_tcp_port();
	struct stack s;
	appliance_up(&s, data, port);

	enum { N = 200000 };
	struct shipgen_opts o[2];
	struct shipgen_shared *sh[2];
	pid_t ag[2];
	for (int i = 0; i < 2; i++) {
		shipgen_defaults(&o[i]);
		snprintf(o[i].appliance, sizeof(o[i].appliance), "127.0.0.1:%d", port);
		snprintf(o[i].spool_dir, sizeof(o[i].spool_dir), "%s/spool%d", kt_tmpdir(), i);
		snprintf(o[i].node_name, sizeof(o[i].node_name), "node-%c", 'a' + i);
		o[i].tid = 777000 + (uint32_t)i;
		o[i].count = N;
		o[i].per_ms = 60;
		sh[i] = shipgen_shared_new();
		ag[i] = shipgen_fork(&o[i], sh[i]);
	}
	/* Mid-stream: some data sealed (sealSec=1), more in the WAL and memtable only. */
	for (int k = 0; k < 3000 && (sh[0]->produced < N / 2 || sh[1]->produced < N / 2); k++)
		usleep(5000);
	CHECK_GT_INT(sh[0]->st.events_acked + sh[1]->st.events_acked, 0);
	kill(s.kprobed, SIGKILL);
	waitpid(s.kprobed, NULL, 0);
	s.kprobed = 0;
	usleep(300000);
	appliance_up(&s, data, port);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ_INT(wait_idle(sh[i], ag[i], 150), 0);
		CHECK(sh[i]->idle);
		CHECK_EQ_UINT(sh[i]->st.dropped_frames, 0);
	}

	/* Every acked event, once: count, min, max, sum and sum of squares of the index. */
	struct kp_buf body = {0};
	int st = post_query(s.api_port,
			    "SELECT tid, count() AS n, min(fd), max(fd), sum(fd), sum(fd * fd) FROM "
			    "events WHERE type = 'write' AND tid IN (777000, 777001) GROUP BY tid "
			    "ORDER BY tid",
			    &body);
	kt_note("%s", body.data);
	CHECK_EQ_INT(st, 200);
	struct json *root;
	char jerr[128];
	size_t pos;
	struct json_doc *d = json_parse(body.data, body.len, &root, jerr, sizeof(jerr), &pos);
	CHECKF(d != NULL, "%s", jerr);
	const struct json *rows = json_get(root, "rows");
	CHECK(rows && rows->type == JSON_ARR);
	CHECK_EQ_INT(rows->u.arr.n, 2);
	uint64_t want_sum = (uint64_t)N * (N - 1) / 2;
	uint64_t want_sq = 0;
	for (uint64_t i = 0; i < N; i++)
		want_sq += i * i;
	for (int i = 0; i < 2; i++) {
		const struct json *r = rows->u.arr.items[i];
		int64_t v[6];
		for (int c = 0; c < 6; c++)
			CHECK_EQ_INT(json_int(r->u.arr.items[c], &v[c]), 0);
		CHECK_EQ_INT(v[0], 777000 + i);
		CHECK_EQ_INT(v[1], N);
		CHECK_EQ_INT(v[2], 0);
		CHECK_EQ_INT(v[3], N - 1);
		CHECK_EQ_UINT((uint64_t)v[4], want_sum);
		CHECK_EQ_UINT((uint64_t)v[5], want_sq);
	}
	json_free(d);
	/* The crash left data in both places: sealed segments and a replayed WAL. */
	st = post_query(s.api_port, "SELECT count() FROM events", &body);
	CHECK_EQ_INT(st, 200);
	stack_stop(&s, 10000);
	char log[700];
	snprintf(log, sizeof(log), "%s/kprobe.log", data);
	FILE *f = fopen(log, "r");
	CHECK(f != NULL);
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	CHECK_CONTAINS(text, "replayed from the WAL");
	buf_free(&body);
}

/* Malformed queries: each a 400 with {"error": ..., "position": N}. */
TEST_SLOW(appliance_malformed_queries_get_400_with_position, 120)
{
	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	struct stack s;
	appliance_up(&s, data, 0);
	static const char *bad[] = {
		"",
		" ",
		"SELECT",
		"SELECT * FROM",
		"SELECT * FROM nowhere",
		"SELEC * FROM events",
		"SELECT pidd FROM events",
		"SELECT * FROM events WHERE",
		"SELECT * FROM events WHERE pid =",
		"SELECT * FROM events WHERE pid = 'x' +",
		"SELECT * FROM events WHERE comm > 3",
		"SELECT * FROM events WHERE type = 7",
		"SELECT * FROM events WHERE ts > 'yesterday'",
		"SELECT * FROM events LIMIT -1",
		"SELECT * FROM events LIMIT 99999999999",
		"SELECT * FROM events LIMIT 1e400",
		"SELECT * FROM events LIMIT 'a'",
		"SELECT * FROM events ORDER",
		"SELECT * FROM events ORDER BY",
		"SELECT * FROM events GROUP BY",
		"SELECT pid, count() FROM events GROUP BY",
		"SELECT count( FROM events",
		"SELECT count(*, pid) FROM events",
		"SELECT quantile(2)(dur) FROM events",
		"SELECT quantile(dur) FROM events",
		"SELECT p99() FROM events",
		"SELECT p99(comm) FROM events",
		"SELECT sum(type) FROM events",
		"SELECT bucket(ts) FROM events",
		"SELECT bucket(ts, 0) FROM events",
		"SELECT nosuchfn(pid) FROM events",
		"SELECT * FROM events WHERE pid IN ()",
		"SELECT * FROM events WHERE pid IN (1, 2",
		"SELECT * FROM events WHERE comm LIKE 3",
		"SELECT * FROM events WHERE comm LIKE 'a",
		"SELECT * FROM events WHERE 'unterminated",
		"SELECT * FROM events WHERE pid BETWEEN 1",
		"SELECT * FROM events WHERE pid BETWEEN 1 AND",
		"SELECT * FROM events WHERE NOT",
		"SELECT * FROM events WHERE (pid = 1",
		"SELECT * FROM events WHERE pid = 1)",
		"SELECT * FROM events WHERE AND pid = 1",
		"SELECT * FROM events WHERE pid = 1 OR",
		"SELECT * FROM events extra tokens here",
		"SELECT pid pid pid FROM events",
		"SELECT , FROM events",
		"SELECT pid, FROM events",
		"SELECT * FROM events WHERE dur > 5 parsecs",
		"SELECT * FROM events WHERE ts > now() - 5xyz",
		"SELECT count() FROM events GROUP BY count()",
		"SELECT * FROM events WHERE pid = 1 = 2 = 'x'",
		"SELECT 1/ FROM events",
		"SELECT * FROM events; DROP TABLE events",
		"\x01\x02\x03\xff\xfe garbage",
		"SELECT \xc3\x28 FROM events",
		"SELECT * FROM events WHERE comm = 'a' AND AND",
	};
	struct kp_buf body = {0};
	int n = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = post_query(s.api_port, bad[i], &body);
		CHECKF(st == 400, "query %zu '%s' got %d: %s", i, bad[i], st, body.data);
		struct json *root;
		char jerr[128];
		size_t pos;
		struct json_doc *d = json_parse(body.data, body.len, &root, jerr, sizeof(jerr), &pos);
		CHECKF(d != NULL, "query %zu: answer is not JSON: %s", i, body.data);
		const struct json *m = json_get(root, "error");
		CHECKF(m && m->type == JSON_STR && m->u.str.len > 5, "query %zu: no message", i);
		CHECKF(json_get(root, "position") != NULL, "query %zu: no position: %s", i,
		       body.data);
		json_free(d);
		n++;
	}
	CHECK_GE_INT(n, 50);
	/* Deep nesting. */
	struct kp_buf deep = {0};
	buf_puts(&deep, "SELECT * FROM events WHERE ");
	for (int i = 0; i < 5000; i++)
		buf_puts(&deep, "(");
	buf_puts(&deep, "pid = 1");
	for (int i = 0; i < 5000; i++)
		buf_puts(&deep, ")");
	CHECK_EQ_INT(post_query(s.api_port, deep.data, &body), 400);
	CHECK_CONTAINS(body.data, "position");
	buf_free(&deep);
	/* Still serving. */
	CHECK_EQ_INT(post_query(s.api_port, "SELECT count() FROM events", &body), 200);
	buf_free(&body);
	stack_stop(&s, 10000);
}

/* Graph directories moved aside in dir (graph.old-<time>). */
static int count_moved(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += !strncmp(de->d_name, "graph.old-", 10);
	if (d)
		closedir(d);
	return n;
}

/* A graph of an older format in the data directory: kprobed moves it aside (kept, named in the
 * log), starts a new graph and serves; the causal tables answer. */
TEST_SLOW(appliance_old_graph_format_moved_aside, 60)
{
	char data[512], gdir[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	snprintf(gdir, sizeof(gdir), "%s/graph", data);
	CHECK_EQ_INT(mkdir_p(gdir, 0750), 0);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	CHECK_EQ_INT(mdb_env_create(&env), 0);
	CHECK_EQ_INT(mdb_env_set_maxdbs(env, 16), 0);
	CHECK_EQ_INT(mdb_env_open(env, gdir, 0, 0640), 0);
	CHECK_EQ_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
	CHECK_EQ_INT(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
	uint32_t f[2] = {GSTORE_MAGIC, 1};
	MDB_val k = {6, "format"}, v = {8, f};
	CHECK_EQ_INT(mdb_put(txn, dbi, &k, &v, 0), 0);
	CHECK_EQ_INT(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	struct stack s;
	appliance_up(&s, data, 0);
	struct kp_buf b = {0};
	CHECK_EQ_INT(post_query(s.api_port, "SELECT count() FROM nodes", &b), 200);
	CHECK_CONTAINS(b.data, "\"rows\":[[0]]");
	stack_stop(&s, 10000);
	buf_free(&b);
	CHECK_EQ_INT(count_moved(data), 1);
	/* the new graph is of this build's format: a second start keeps it */
	appliance_up(&s, data, 0);
	stack_stop(&s, 10000);
	CHECK_EQ_INT(count_moved(data), 1);
}
