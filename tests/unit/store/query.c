/*
 * Tests store/query.c: the language's semantics on a small hand-made data set (every operator,
 * NULLs of per-type columns, metadata joins, aggregates, ordering, limits, writers), over 60
 * malformed queries that must each give a clear error with a position, cancellation and
 * timeouts.
 */
#include <errno.h>
#include <time.h>

#include "tests/unit/store/helpers.h"

#define T0 (T0_NS + 123456)

static struct store *hand_store(struct kp_config *cfg)
{
	struct store *st = th_open(kt_tmpdir(), 8192, cfg);
	struct wire_batch mb = {0};
	th_proc_meta(&mb, 100, "nginx", "web");
	th_proc_meta(&mb, 200, "postgres", "db");
	wire_batch_add_node(&mb, "node-a", "6.1");
	struct wire_conn c = {.conn = 0xabc, .family = 2, .sport = 40000, .dport = 5432};
	c.saddr[0] = 10, c.saddr[3] = 1, c.daddr[0] = 10, c.daddr[3] = 2;
	wire_batch_add_conn(&mb, &c);
	struct kp_event ev[6] = {
		{.ts_ns = T0 + 1000,
		 .dur_ns = 500,
		 .pid = 100,
		 .tid = 100,
		 .type = KP_READ,
		 .ret = 4096,
		 .arg = {3, 4096, 0, 11}},
		{.ts_ns = T0 + 2000,
		 .dur_ns = 1500,
		 .pid = 100,
		 .tid = 101,
		 .type = KP_WRITE,
		 .ret = 100,
		 .arg = {4, 100, 1, 12}},
		{.ts_ns = T0 + 3000,
		 .dur_ns = 800,
		 .pid = 200,
		 .tid = 200,
		 .type = KP_TCP_SEND,
		 .ret = 300,
		 .arg = {0xabc, 300, 1000, KP_PORTS(40000, 5432)}},
		{.ts_ns = T0 + 4000,
		 .dur_ns = 60000,
		 .pid = 200,
		 .tid = 201,
		 .type = KP_OFFCPU,
		 .arg = {KP_OFFCPU_PREEMPTED, 0, 5000, 100}},
		{.ts_ns = T0 + 5000,
		 .dur_ns = 2000000,
		 .pid = 200,
		 .tid = 200,
		 .type = KP_FSYNC,
		 .ret = -5,
		 .flags = KP_F_ERROR,
		 .arg = {5, 0, 74, 13}},
		{.ts_ns = T0 + 6000,
		 .dur_ns = 300,
		 .pid = 200,
		 .tid = 201,
		 .type = KP_WRITE,
		 .cpu = 3,
		 .ret = 8192,
		 .arg = {5, 8192, 1, 13}},
	};
	const char *txn[6] = {"req-1", "req-1", "req-2", "", NULL, ""};
	CHECK_EQ_INT(store_append(st, 1, 7, ev, 3, mb.meta.data, mb.meta.len, txn), 0);
	CHECK_EQ_INT(store_append(st, 2, 7, ev + 3, 3, NULL, 0, txn + 3), 0);
	wire_batch_free(&mb);
	return st;
}

/* Runs sql and returns its CSV text (without the header when body_only). */
static char *csv(struct store *st, const char *sql)
{
	struct query_result *r = th_query(st, sql);
	struct kp_buf b = {0};
	query_result_write(r, QUERY_CSV, &b);
	buf_append(&b, "", 1);
	query_result_free(r);
	/* drop the header line, turn \r\n into ; for compact comparisons */
	char *body = strstr(b.data, "\r\n");
	body = body ? body + 2 : b.data;
	char *o = strdup(body), *w = o;
	for (char *p = body; *p; p++) {
		if (*p == '\r')
			continue;
		*w++ = *p == '\n' ? ';' : *p;
	}
	*w = '\0';
	buf_free(&b);
	return o;
}

#define CHECK_CSV(st, sql, want)                                                                   \
	do {                                                                                       \
		char *got_ = csv(st, sql);                                                         \
		CHECKF(!strcmp(got_, want), "%s\n      got  %s\n      want %s", sql, got_, want);  \
		free(got_);                                                                        \
	} while (0)

TEST(query_semantics)
{
	struct kp_config cfg;
	struct store *st = hand_store(&cfg);
	for (int pass = 0; pass < 2; pass++) { /* memtable, then sealed segments */
		CHECK_CSV(st, "SELECT count() FROM events", "6;");
		CHECK_CSV(st, "select PID, count() from EVENTS group by pid order by pid",
			  "100,2;200,4;");
		CHECK_CSV(st, "SELECT type FROM events WHERE fd = 5 ORDER BY ts", "fsync;write;");
		CHECK_CSV(st, "SELECT count(fd), count(conn), count(*) FROM events", "4,1,6;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE fd IS NULL", "2;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE fd IS NOT NULL AND NOT fd = 3",
			  "3;");
		CHECK_CSV(st,
			  "SELECT comm, service, node, cmdline FROM events WHERE pid = 200 LIMIT 1",
			  "postgres,db,node-a,/usr/bin/postgres --serve;");
		CHECK_CSV(st,
			  "SELECT saddr, daddr, sport, dport, seq, bytes FROM events "
			  "WHERE type = 'tcp_send'",
			  "10.0.0.1,10.0.0.2,40000,5432,1000,300;");
		CHECK_CSV(
			st,
			"SELECT reason, runq, holder_tid, waker FROM events WHERE type = 'offcpu'",
			"preempted,5000,100,0;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE comm LIKE 'post%'", "4;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE comm NOT LIKE 'p_stgres'", "2;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE type LIKE 'tcp%' OR type = 'fsync'",
			  "2;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE dur BETWEEN 500 AND 1500", "3;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE dur NOT BETWEEN 500 AND 1500",
			  "3;");
		CHECK_CSV(st, "SELECT ret, flags FROM events WHERE ret < 0", "-5,1;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE txn = 'req-1'", "2;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE txn IN ('req-1', 'req-2', 'x')",
			  "3;");
		CHECK_CSV(st, "SELECT txn, count() FROM events GROUP BY txn ORDER BY txn",
			  ",3;req-1,2;req-2,1;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE type IN ('read', 'write')", "3;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE type != 'write'", "4;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE comm = 'nobody'", "0;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE fd = 3 OR pid = 200", "5;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE NOT (pid = 100)", "4;");
		CHECK_CSV(st,
			  "SELECT dur / 1000 AS us, dur % 7, dur * 2 + 1, -dur FROM events "
			  "WHERE type = 'write' ORDER BY ts",
			  "1,2,3001,-1500;0,6,601,-300;");
		CHECK_CSV(st,
			  "SELECT 7.0 / 2, 1 / 0, 2 + 3 * 4, (2 + 3) * 4, abs(-4), 10us, 1.5s "
			  "FROM events LIMIT 1",
			  "3.5,,14,20,4,10000,1500000000;");
		CHECK_CSV(st, "SELECT pid, count() AS n FROM events GROUP BY pid HAVING n > 2",
			  "200,4;");
		CHECK_CSV(st, "SELECT type, dur FROM events ORDER BY dur DESC LIMIT 2",
			  "fsync,2000000;offcpu,60000;");
		CHECK_CSV(st, "SELECT pid, max(dur) m FROM events GROUP BY 1 ORDER BY m DESC",
			  "200,2000000;100,1500;");
		CHECK_CSV(st,
			  "SELECT sum(dur), min(dur), max(dur), avg(bytes), p50(dur), "
			  "quantile(1)(dur), p99(dur) FROM events",
			  "2063100,300,2000000,3172,800,2000000,60000;");
		CHECK_CSV(st, "SELECT count() FROM events WHERE pid = 999", "0;");
		CHECK_CSV(st, "SELECT sum(dur), max(dur) FROM events WHERE pid = 999", ",;");
		CHECK_CSV(st,
			  "SELECT bucket(ts, 2us) - 1795000000000124000 AS b, count() FROM events "
			  "GROUP BY b ORDER BY b",
			  "0,2;2000,2;4000,2;");
		char sql[256], want[64];
		time_t t = (time_t)((T0 + 3000) / 1000000000ull);
		struct tm tm;
		gmtime_r(&t, &tm);
		char ts[64];
		strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(sql, sizeof(sql), "SELECT count() FROM events WHERE ts >= '%s.%09llu'", ts,
			 (unsigned long long)((T0 + 3000) % 1000000000ull));
		CHECK_CSV(st, sql, "4;");
		snprintf(sql, sizeof(sql),
			 "SELECT now() - 5m, count() FROM events WHERE ts < now()");
		snprintf(want, sizeof(want), "%llu,6;",
			 (unsigned long long)(T0_NS + 3600ull * 1000000000ull -
					      300ull * 1000000000ull));
		CHECK_CSV(st, sql, want);
		CHECK_CSV(st, "SELECT cpu, tid FROM events WHERE cpu = 3", "3,201;");
		CHECK_CSV(st,
			  "SELECT count() FROM events WHERE bucket(ts, 7us) != ts - ts % 7us OR "
			  "bucket(ts, 1s) != ts - ts % 1s OR bucket(ts, 3) != ts - ts % 3",
			  "0;");
		CHECK_CSV(st,
			  "SELECT bucket(-2500, 1000), bucket(dur - 1000, 1000) FROM events "
			  "ORDER BY ts LIMIT 2",
			  "-3000,-1000;-3000,0;");
		CHECK_CSV(st,
			  "SELECT count() FROM events WHERE type = 'write' AND comm = 'nginx' "
			  "AND dur > 1000",
			  "1;");
		CHECK_EQ_INT(store_flush(st), 0);
	}
	store_close(st);
	config_free(&cfg);
}

TEST(query_writers_and_limits)
{
	struct kp_config cfg;
	struct store *st = hand_store(&cfg);
	struct query_opts o = {.max_rows = 3, .timeout_ms = 1000};
	struct query_result *r;
	struct query_error err;
	const char *sql = "SELECT pid, comm AS \"name, quoted\", dur / 2.0 AS half FROM events "
			  "ORDER BY ts";
	CHECK_EQ_INT(query_exec(st, sql, strlen(sql), &o, &r, &err), 0);
	CHECK_EQ_INT(r->nrows, 3);
	CHECK(r->stats.truncated);
	struct kp_buf b = {0};
	query_result_write(r, QUERY_JSON, &b);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data,
		       "{\"columns\":[{\"name\":\"pid\",\"type\":\"int\"},{\"name\":\"name, "
		       "quoted\",\"type\":\"string\"},{\"name\":\"half\",\"type\":\"float\"}],"
		       "\"rows\":[[100,\"nginx\",250],[100,\"nginx\",750],[200,\"postgres\",400]]");
	CHECK_CONTAINS(b.data, "\"truncated\":true");
	CHECK_CONTAINS(b.data, "\"rows_scanned\":6");
	b.len = 0;
	query_result_write(r, QUERY_NDJSON, &b);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data,
		       "{\"pid\":100,\"name, quoted\":\"nginx\",\"half\":250}\n{\"pid\":100");
	b.len = 0;
	query_result_write(r, QUERY_CSV, &b);
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "pid,\"name, quoted\",half\r\n100,nginx,250\r\n100,nginx,750\r\n"
			     "200,postgres,400\r\n");
	buf_free(&b);
	query_result_free(r);
	enum query_format f;
	CHECK_EQ_INT(query_format_parse("csv", &f), 0);
	CHECK_EQ_INT(f, QUERY_CSV);
	CHECK_NE_INT(query_format_parse("xml", &f), 0);
	/* LIMIT above max_rows is an error; at it, fine */
	sql = "SELECT pid FROM events LIMIT 4";
	CHECK_EQ_INT(query_exec(st, sql, strlen(sql), &o, &r, &err), -EINVAL);
	CHECK_CONTAINS(err.message, "above api.maxRows (3)");
	sql = "SELECT pid FROM events LIMIT 3";
	CHECK_EQ_INT(query_exec(st, sql, strlen(sql), &o, &r, &err), 0);
	CHECK(!r->stats.truncated);
	query_result_free(r);
	/* cancellation */
	volatile int cancel = 1;
	o.cancel = &cancel;
	sql = "SELECT count() FROM events";
	CHECK_EQ_INT(query_exec(st, sql, strlen(sql), &o, &r, &err), -ECANCELED);
	store_close(st);
	config_free(&cfg);
}

TEST(query_timeout)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 65536, &cfg);
	uint64_t rng = 1;
	static struct kp_event ev[8192];
	const char *txn[8192];
	char names[8192][16];
	for (int f = 0; f < 40; f++) {
		for (int i = 0; i < 8192; i++) {
			ev[i] = th_event((uint64_t)f * 8192 + i, &rng, 50);
			snprintf(names[i], 16, "t%d", (f * 8192 + i) % 50000);
			txn[i] = names[i];
		}
		CHECK_EQ_INT(store_append(st, (uint64_t)f + 1, 1, ev, 8192, NULL, 0, txn), 0);
	}
	struct query_opts o = {.max_rows = 100000, .timeout_ms = 1};
	struct query_result *r;
	struct query_error err;
	const char *sql = "SELECT txn, p99(dur), count() FROM events WHERE txn LIKE '%9%' "
			  "GROUP BY txn ORDER BY 2 DESC";
	int rc = query_exec(st, sql, strlen(sql), &o, &r, &err);
	CHECK_EQ_INT(rc, -ETIMEDOUT);
	CHECK_CONTAINS(err.message, "api.queryTimeoutMs (1 ms)");
	store_close(st);
	config_free(&cfg);
}

struct bad {
	const char *sql, *want;
	int pos; /* -1: any position inside the text */
};

TEST(query_malformed_queries_answer_with_position)
{
	struct kp_config cfg;
	struct store *st = hand_store(&cfg);
	static char deep[600], longq[70000], biglist[20000];
	strcpy(deep, "SELECT ");
	for (int i = 0; i < 100; i++)
		strcat(deep, "(");
	strcat(deep, "1");
	for (int i = 0; i < 100; i++)
		strcat(deep, ")");
	strcat(deep, " FROM events");
	memset(longq, ' ', sizeof(longq) - 1);
	memcpy(longq, "SELECT 1", 8);
	strcpy(biglist, "SELECT count() FROM events WHERE pid IN (");
	for (int i = 0; i < 4200; i++)
		strcat(biglist, "1,");
	strcat(biglist, "1)");
	const struct bad bad[] = {
		{"", "empty query", 0},
		{"   ", "empty query", 0},
		{"SELEC count() FROM events", "expected SELECT", 0},
		{"SELECT pidd FROM events", "unknown column 'pidd' at 7; did you mean 'pid'?", 7},
		{"SELECT count() FROM evnts", "unknown table 'evnts' at 20; tables: events", 20},
		{"SELECT count( FROM events", "expected a value", 14},
		{"SELECT count() FROM events WHERE", "found the end of the query", 32},
		{"SELECT count() FROM events WHERE pid =", "end of the query", 38},
		{"SELECT count() FROM events WHERE pid = 'abc'",
		 "cannot compare integer with string", 37},
		{"SELECT count() FROM events WHERE comm > 5", "cannot compare string with integer",
		 38},
		{"SELECT count() FROM events LIMIT 1000000", "above api.maxRows", 33},
		{"SELECT count() FROM events LIMIT -1", "whole number after LIMIT", 33},
		{"SELECT count() FROM events LIMIT 'x'", "whole number", 33},
		{"SELECT 'abc FROM events", "unterminated string starting at 7", 7},
		{deep, "nested too deeply", -1},
		{"SELECT \x01\x02 FROM events", "unexpected byte 0x01 at 7", 7},
		{"SELECT \xff\xfe", "unexpected byte 0xff", 7},
		{"SELECT count() FROM events WHERE type = 'wrte'",
		 "unknown event type 'wrte' at 40; types: read, write", 40},
		{"SELECT cnt() FROM events", "unknown function 'cnt' at 7; did you mean 'count'?",
		 7},
		{"SELECT frobnicate(1) FROM events", "unknown function 'frobnicate'", 7},
		{"SELECT sum(comm) FROM events", "sum() needs a number", 11},
		{"SELECT pid, count() FROM events", "column 'pid' at 7 must be in GROUP BY", 7},
		{"SELECT count() FROM events WHERE count() > 1",
		 "aggregate count() is not allowed here", 33},
		{"SELECT count() FROM events GROUP BY count()", "GROUP BY cannot hold an aggregate",
		 36},
		{"SELECT quantile(2)(dur) FROM events",
		 "quantile level must be a constant between 0 and 1", 16},
		{"SELECT quantile(dur) FROM events", "quantile is written quantile(0.99)(x)", 7},
		{"SELECT p99(dur, 1) FROM events", "p99(x) takes one argument", 7},
		{"SELECT p99(0.5)(dur) FROM events", "p99 is not parametric", 7},
		{"SELECT bucket(ts) FROM events", "bucket(x, step) takes 2 arguments", 7},
		{"SELECT bucket(ts, 0) FROM events", "positive constant step", 18},
		{"SELECT bucket(comm, 1s) FROM events", "needs an integer", 14},
		{"SELECT count() FROM events WHERE ts > '2026-13-45'",
		 "cannot read '2026-13-45' at 38 as a time", 38},
		{"SELECT count() FROM events WHERE ts > 5x", "bad number or duration '5x' at 38",
		 38},
		{"SELECT 99999999999999999999 FROM events", "number too large at 7", 7},
		{"SELECT count() FROM events WHERE pid = 0x", "bad hexadecimal number", 39},
		{"SELECT count() FROM events WHERE pid IN ()", "IN () needs at least one value",
		 41},
		{"SELECT count() FROM events WHERE pid IN (pid)", "IN (...) takes constant values",
		 41},
		{biglist, "IN list longer than 4096 values", -1},
		{"SELECT count() FROM events WHERE comm LIKE pid", "LIKE needs a 'pattern' string",
		 43},
		{"SELECT count() FROM events WHERE pid LIKE 'x'", "LIKE needs a string on its left",
		 37},
		{"SELECT count() FROM events WHERE pid", "WHERE needs a condition", 33},
		{"SELECT count() FROM events WHERE pid = 1 AND 5",
		 "AND needs conditions on both sides", 41},
		{"SELECT count() FROM events WHERE NOT pid", "NOT needs a condition", 33},
		{"SELECT -comm FROM events", "cannot negate a string", 7},
		{"SELECT comm + 1 FROM events", "arithmetic needs numbers", 12},
		{"SELECT DISTINCT pid FROM events", "DISTINCT is not supported", 7},
		{"SELECT count() FROM events, spans", "joins are not supported", 26},
		{"SELECT count() FROM events JOIN x", "joins are not supported", 27},
		{"SELECT count() FROM events LIMIT 5 OFFSET 2", "OFFSET is not supported", 35},
		{"SELECT count() FROM events ORDER BY 5",
		 "ORDER BY 5 at 36: there are 1 output columns", 36},
		{"SELECT pid FROM events GROUP BY 3", "GROUP BY 3 at 32", 32},
		{"SELECT count() FROM events WHERE (pid = 1", "expected ')' to close the '('", 41},
		{"SELECT count() FROM events extra", "expected the end of the query", 27},
		{"SELECT count() FROM", "a table name after FROM", 19},
		{"SELECT FROM events", "expected a value, a column or '(', found 'FROM' at 7", 7},
		{"SELECT count() FROM events WHERE pid = 1 ORDER", "expected by after ORDER", 46},
		{"SELECT count() FROM events GROUP pid", "expected by after GROUP, found 'pid'",
		 33},
		{"SELECT * + 1 FROM events", "FROM or ','", 9},
		{"SELECT count(*) FROM events WHERE \"pid = 1", "unterminated quoted name", 34},
		{"SELECT count() FROM events WHERE pid = 1 ;;", "expected the end of the query",
		 42},
		{"SELECT now(1) FROM events", "now() takes no arguments", 7},
		{"SELECT abs('x') FROM events", "abs() needs a number", 7},
		{"SELECT count() FROM events WHERE pid BETWEEN 1",
		 "expected and between the BETWEEN bounds", 46},
		{"SELECT count() FROM events WHERE comm BETWEEN 'a' AND 'b'",
		 "BETWEEN needs numbers", 38},
		{"SELECT max(max(dur)) FROM events", "aggregate max() is not allowed here", 11},
		{"SELECT count() FROM events WHERE pid IS 5", "expected null after IS", 40},
		{"SELECT (SELECT 1) FROM events", "subqueries are not supported", 8},
		{"SELECT pid AS FROM events", "a name after AS", 14},
		{"SELECT count(a, b) FROM events", "count takes at most one argument", 7},
		{"SELECT sum(dur) FROM events HAVING pid > 1",
		 "column 'pid' at 35 must be in GROUP BY", 35},
		{longq, "query longer than 65536 bytes", 65536},
		{"SELECT count() FROM events WHERE ts > now() - 5 minutes",
		 "expected the end of the query", 48},
		{"SELECT count() FROM events WHERE pid = 1 GROUP BY", "end of the query", 49},
		{"SELECT count() FROM events WHERE type < 3", "cannot compare string with integer",
		 38},
		{"SELECT count() FROM events WHERE txn = 5", "cannot compare string with integer",
		 37},
		{"SELECT count() FROM events WHERE pid = 1 = 1", "expected the end of the query",
		 41},
		{"SELECT count() FROM events WHERE comm IN ('a', 1)", "cannot compare", 38},
		{"SELECT 1 FROM events ORDER BY nosuch", "unknown column 'nosuch' at 30", 30},
		{"SELECT count() FROM events WHERE ts > '2026-01-01 25:00:00'", "as a time", 38},
		{"SELECT \"\" FROM events", "empty quoted name", 7},
		{"SELECT count() FROM events WHERE pid = 1 AND", "end of the query", 44},
		{"SELECT count() FROM events WHERE dur > 1e400", "number too large", 39},
	};
	int n = 0, wrong = 0;
	for (size_t i = 0; i < KP_ARRAY_SIZE(bad); i++) {
		const char *sql = bad[i].sql;
		size_t len = strlen(sql);
		struct query_opts o = {.max_rows = 100000, .timeout_ms = 5000};
		struct query_result *r = NULL;
		struct query_error err;
		int rc = query_exec(st, sql, len, &o, &r, &err);
		CHECKF(rc == -EINVAL, "query %zu '%.60s' returned %d (%s)", i, sql, rc,
		       r ? "rows" : err.message);
		CHECKF(strstr(err.message, bad[i].want),
		       "query %zu '%.60s': message '%s' lacks '%s'", i, sql, err.message,
		       bad[i].want);
		CHECKF(err.position >= 0 && (size_t)err.position <= len,
		       "query %zu: position %d outside 0..%zu", i, err.position, len);
		if (bad[i].pos >= 0 && err.position != bad[i].pos) {
			kt_note("query %zu '%.60s': position %d, want %d (%s)", i, sql,
				err.position, bad[i].pos, err.message);
			wrong++;
		}
		n++;
	}
	CHECK_EQ_INT(wrong, 0);
	CHECK_GE_INT(n, 60);
	kt_note("%d malformed queries answered with a message and a position", n);
	store_close(st);
	config_free(&cfg);
}

static char *csv_threads(struct store *st, const char *sql, int threads)
{
	struct query_opts o = {.max_rows = 100000, .timeout_ms = 30000, .threads = threads};
	struct query_result *r = NULL;
	struct query_error err;
	int rc = query_exec(st, sql, strlen(sql), &o, &r, &err);
	CHECKF(rc == 0, "%s: %s", sql, err.message);
	struct kp_buf b = {0};
	query_result_write(r, QUERY_CSV, &b);
	buf_append(&b, "", 1);
	char *out = strdup(b.data);
	buf_free(&b);
	query_result_free(r);
	return out;
}

TEST_SLOW(query_parallel_scans_match_one_thread, 120)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 131072, &cfg);
	struct wire_batch mb = {0};
	th_proc_meta(&mb, 100, "nginx", "web");
	th_proc_meta(&mb, 101, "postgres", "db");
	uint64_t rng = 77;
	static struct kp_event ev[8192];
	const char *txn[8192];
	static char names[8192][16];
	for (int f = 0; f < 100; f++) { /* 800k rows: segments and a memtable */
		for (int i = 0; i < 8192; i++) {
			ev[i] = th_event((uint64_t)f * 8192 + i, &rng, 12);
			snprintf(names[i], 16, "t%d", (int)(th_rand(&rng) % 3000));
			txn[i] = names[i];
			if (i % 5 == 0)
				ev[i].ret = -(int32_t)(th_rand(&rng) % 100);
		}
		CHECK_EQ_INT(store_append(st, (uint64_t)f + 1, 1 + (uint64_t)(f % 2), ev, 8192,
					  f ? NULL : mb.meta.data, f ? 0 : mb.meta.len, txn),
			     0);
	}
	static const char *qs[] = {
		"SELECT count(), sum(dur), min(ts), max(ts), avg(dur) FROM events",
		"SELECT pid, count(), p50(dur), p99(dur), quantile(0.1)(ret), max(ret) FROM events "
		"GROUP BY pid ORDER BY pid",
		"SELECT txn, count() AS n, sum(dur) FROM events WHERE pid < 105 GROUP BY txn "
		"ORDER BY n DESC, txn LIMIT 50",
		"SELECT comm, service, node_id, count() FROM events GROUP BY comm, service, "
		"node_id "
		"ORDER BY 1, 2, 3",
		"SELECT bucket(ts, 1ms) AS b, type, count() FROM events WHERE dur > 50000 "
		"GROUP BY b, type ORDER BY b, type LIMIT 500",
		"SELECT ts, pid, dur, txn FROM events WHERE dur > 99000 ORDER BY dur DESC, ts "
		"LIMIT 300",
		"SELECT ts, txn FROM events WHERE txn = 't7' ORDER BY ts",
		"SELECT type, count() FROM events WHERE fd IS NOT NULL GROUP BY type ORDER BY type",
	};
	for (size_t i = 0; i < KP_ARRAY_SIZE(qs); i++) {
		char *one = csv_threads(st, qs[i], 1), *four = csv_threads(st, qs[i], 4);
		CHECKF(!strcmp(one, four),
		       "%s: 1 thread and 4 threads differ:\n%.300s\n---\n%.300s", qs[i], one, four);
		free(one);
		free(four);
	}
	/* LIMIT without ORDER BY: any rows, but exactly LIMIT of them */
	struct query_opts o = {.max_rows = 100000, .timeout_ms = 30000, .threads = 4};
	struct query_result *r;
	struct query_error err;
	const char *sql = "SELECT ts FROM events WHERE dur > 1000 LIMIT 777";
	CHECK_EQ_INT(query_exec(st, sql, strlen(sql), &o, &r, &err), 0);
	CHECK_EQ_INT(r->nrows, 777);
	CHECK(!r->stats.truncated);
	query_result_free(r);
	o.max_rows = 1000;
	sql = "SELECT ts FROM events";
	CHECK_EQ_INT(query_exec(st, sql, strlen(sql), &o, &r, &err), 0);
	CHECK_EQ_INT(r->nrows, 1000);
	CHECK(r->stats.truncated);
	query_result_free(r);
	store_close(st);
	wire_batch_free(&mb);
	config_free(&cfg);
}

TEST(query_quantiles_exact_then_histogram)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 65536, &cfg);
	static struct kp_event ev[10000];
	for (int i = 0; i < 10000; i++) {
		/* shuffled so the histogram switch happens mid-way through negatives */
		int v = (int)((i * 7919) % 10000) - 5000;
		ev[i] = (struct kp_event){.ts_ns = T0_NS + (uint64_t)i,
					  .pid = 1,
					  .tid = 1,
					  .type = KP_READ,
					  .ret = v,
					  .dur_ns = (uint64_t)(v + 5000)};
	}
	CHECK_EQ_INT(store_append(st, 1, 1, ev, 10000, NULL, 0, NULL), 0);
	for (int pass = 0; pass < 2; pass++) {
		struct query_result *r =
			th_query(st, "SELECT quantile(0.1)(ret), quantile(0.9)(ret), "
				     "p50(dur), quantile(0)(ret), quantile(1)(dur), "
				     "count() FROM events");
		CHECK_EQ_INT(r->cells[0].u.i, -4001); /* negatives stay exact */
		int64_t p90 = r->cells[1].u.i, p50 = r->cells[2].u.i;
		CHECKF(p90 >= 3999 * 0.99 && p90 <= 3999 * 1.01, "p90 %lld", (long long)p90);
		CHECKF(p50 >= 4999 * 0.99 && p50 <= 4999 * 1.01, "p50 %lld", (long long)p50);
		CHECK_EQ_INT(r->cells[3].u.i, -5000);
		CHECKF(r->cells[4].u.i >= 9999 * 0.99 && r->cells[4].u.i <= 9999 * 1.01, "max %lld",
		       (long long)r->cells[4].u.i);
		CHECK_EQ_INT(r->cells[5].u.i, 10000);
		query_result_free(r);
		CHECK_EQ_INT(store_flush(st), 0);
	}
	store_close(st);
	config_free(&cfg);
}

/* The JSON writer's fast path (plain values written in place) and its escaping fallback agree
 * with the JSON rules: quotes, backslashes, control bytes, UTF-8 kept, invalid UTF-8 replaced,
 * the extremes of integers, NULLs (cells never set). */
TEST(query_json_rows_escape_and_extremes)
{
	static const char *names[] = {"i", "u", "s", "f"};
	static const uint8_t types[] = {QV_INT, QV_UINT, QV_STR, QV_FLOAT};
	struct query_result *r = query_result_new(4, names, types);
	size_t k = query_result_add_row(r);
	query_result_set_int(r, k, 0, INT64_MIN);
	query_result_set_uint(r, k, 1, UINT64_MAX);
	query_result_set_str(r, k, 2, "a\"b\\c\nd\x01 caf\xc3\xa9 \xff!");
	query_result_set_float(r, k, 3, 0.5);
	k = query_result_add_row(r);
	query_result_set_int(r, k, 0, -7);
	query_result_set_uint(r, k, 1, 0);
	query_result_set_str(r, k, 2, "");
	k = query_result_add_row(r); /* all NULL */
	struct kp_buf b = {0};
	query_result_write(r, QUERY_JSON, &b);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data, "\"rows\":[[-9223372036854775808,18446744073709551615,"
			       "\"a\\\"b\\\\c\\nd\\u0001 caf\xc3\xa9 \xef\xbf\xbd!\",0.5],"
			       "[-7,0,\"\",null],[null,null,null,null]],\"stats\"");
	buf_free(&b);
	query_result_free(r);
}
