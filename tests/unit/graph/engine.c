/*
 * Tests graph/engine.c: inference from event streams shaped like the probe's, into a real LMDB
 * graph, then the root-cause walk. (The end-to-end version with the real probe and the demo
 * workload is in tests/integration/demo.c.)
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "common/config.h"
#include "graph/engine.h"
#include "graph/gstore.h"
#include "graph/otlp.h"
#include "tests/test.h"

#define HOST  0x1111
#define MS    1000000ull
#define T0    1700000000000000000ull
#define CONN1 0xc0ffee01ull
#define CONN2 0xc0ffee02ull

enum { CLIENT = 100, SERVER = 200, BATCH = 300, BATCH_HOG = 301 };

struct stream {
	struct kp_event ev[256];
	uint32_t n;
	struct wire_batch meta;
};

static struct kp_event *add(struct stream *s, int type, uint32_t pid, uint32_t tid, uint64_t ts,
			    uint64_t dur)
{
	struct kp_event *e = &s->ev[s->n++];
	memset(e, 0, sizeof(*e));
	e->type = (uint8_t)type;
	e->pid = pid;
	e->tid = tid;
	e->ts_ns = ts;
	e->dur_ns = dur;
	return e;
}

static void tcp(struct stream *s, int send, uint32_t pid, uint64_t ts, uint64_t conn,
		uint64_t seq, uint64_t bytes, uint16_t lport, uint16_t rport)
{
	struct kp_event *e = add(s, send ? KP_TCP_SEND : KP_TCP_RECV, pid, pid, ts, 2000);
	e->ret = (int32_t)bytes;
	e->arg[0] = conn;
	e->arg[1] = bytes;
	e->arg[2] = seq;
	e->arg[3] = KP_PORTS(lport, rport);
}

static void proc_meta(struct stream *s, uint32_t pid, const char *comm, uint64_t memcg)
{
	struct wire_proc p = {.pid = pid, .ppid = 1, .start_ns = T0 - 10 * MS * 1000,
			      .cgroup_id = memcg};
	strcpy(p.comm, comm);
	strcpy(p.service, comm);
	wire_batch_add_proc(&s->meta, &p);
}

static void span(struct otlp_span *sp, uint8_t tag, uint32_t pid, uint64_t start, uint64_t end,
		 int error, const char *txn)
{
	memset(sp, 0, sizeof(*sp));
	for (int i = 0; i < 16; i++)
		sp->trace_id[i] = (uint8_t)(tag + i);
	for (int i = 0; i < 8; i++)
		sp->span_id[i] = (uint8_t)(tag * 3 + i);
	sp->start_ns = start;
	sp->end_ns = end;
	sp->pid = pid;
	sp->tid = pid;
	sp->status = error ? OTLP_STATUS_ERROR : OTLP_STATUS_OK;
	sp->service = "payment-handler";
	sp->host = "";
	sp->scope = "";
	sp->name = "payment";
	sp->status_msg = error ? "TIMEOUT: 750 ms exceeded" : "";
	sp->txn = txn;
}

/*
 * A payment (client CLIENT, conn CONN1) whose server request does a ledger write that stalls
 * 500 ms in memcg reclaim (batch-job dirtying the same memory cgroup) and is preempted 60 ms by
 * batch-job's hog; the client gives up at 750 ms. Then a fast payment on CONN2.
 */
static void build(struct stream *s, int fast_only)
{
	proc_meta(s, CLIENT, "payment-handler", 7);
	proc_meta(s, SERVER, "settlement-svc", 42);
	proc_meta(s, BATCH, "batch-job", 42);
	/* batch-job is busy writing (memory activity) and its hog thread is known. */
	for (int i = 0; i < 10; i++) {
		struct kp_event *w = add(s, KP_WRITE, BATCH, BATCH, T0 + (uint64_t)i * 80 * MS, 3 * MS);
		w->ret = 1 << 20;
		w->arg[0] = 5;
		w->arg[1] = 1 << 20;
		w->arg[2] = 18;
	}
	add(s, KP_OFFCPU, BATCH, BATCH_HOG, T0, 60 * MS)->arg[3] = SERVER; /* the hog exists */
	if (!fast_only) {
		tcp(s, 1, CLIENT, T0 + 1 * MS, CONN1, 1000, 30, 40000, 9000);
		tcp(s, 0, SERVER, T0 + 1 * MS + 50000, CONN1, 1000, 30, 9000, 40000);
		/* inside the write: reclaim 500 ms, then preempted 60 ms by the hog */
		struct kp_event *r = add(s, KP_RECLAIM, SERVER, SERVER, T0 + 10 * MS, 500 * MS);
		r->arg[0] = 800;
		r->arg[1] = KP_RECLAIM_MEMCG;
		r->arg[2] = 42;
		struct kp_event *o = add(s, KP_OFFCPU, SERVER, SERVER, T0 + 520 * MS, 60 * MS);
		o->arg[0] = KP_OFFCPU_PREEMPTED;
		o->arg[2] = 60 * MS;
		o->arg[3] = BATCH_HOG;
		struct kp_event *w = add(s, KP_WRITE, SERVER, SERVER, T0 + 5 * MS, 600 * MS);
		w->ret = 2 << 20;
		w->arg[0] = 3;
		w->arg[1] = 2 << 20;
		w->arg[2] = 1;
		struct kp_event *f = add(s, KP_FSYNC, SERVER, SERVER, T0 + 606 * MS, 2 * MS);
		f->arg[0] = 3;
		f->arg[2] = 74;
		/* the client gives up at 750 ms: its close */
		struct kp_event *c = add(s, KP_CONN, CLIENT, CLIENT, T0 + 751 * MS, 0);
		c->arg[0] = CONN1;
		c->arg[1] = 1;
		c->arg[2] = 4; /* FIN_WAIT1 */
		c->arg[3] = KP_PORTS(40000, 9000);
		tcp(s, 1, SERVER, T0 + 900 * MS, CONN1, 5000, 10, 9000, 40000);
		struct kp_event *c2 = add(s, KP_CONN, SERVER, SERVER, T0 + 901 * MS, 0);
		c2->arg[0] = CONN1;
		c2->arg[2] = 8; /* CLOSE_WAIT */
		c2->arg[3] = KP_PORTS(9000, 40000);
	}
	/* A fast payment at 1.2 s. */
	uint64_t t = T0 + 1200 * MS;
	tcp(s, 1, CLIENT, t, CONN2, 7000, 30, 40001, 9000);
	tcp(s, 0, SERVER, t + 40000, CONN2, 7000, 30, 9000, 40001);
	struct kp_event *w = add(s, KP_WRITE, SERVER, SERVER, t + 100000, 900000);
	w->ret = 2 << 20;
	w->arg[0] = 3;
	w->arg[2] = 1;
	tcp(s, 1, SERVER, t + 1200000, CONN2, 9000, 10, 9000, 40001);
	tcp(s, 0, CLIENT, t + 1250000, CONN2, 9000, 10, 40001, 9000);
	struct kp_event *c = add(s, KP_CONN, CLIENT, CLIENT, t + 1300000, 0);
	c->arg[0] = CONN2;
	c->arg[2] = 4;
	c->arg[3] = KP_PORTS(40001, 9000);
}

static struct gstore *open_graph(void)
{
	char dir[512], err[256];
	snprintf(dir, sizeof(dir), "%s/graph", kt_tmpdir());
	struct gstore_opts o = {.no_sync = true};
	struct gstore *g;
	CHECKF(gstore_open(dir, &o, &g, err, sizeof(err)) == 0, "%s", err);
	return g;
}

static void rootcause(struct gstore *g, const char *key, struct gstore_chain *c)
{
	struct gstore_rtxn *r;
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	uint64_t id;
	CHECKF(gstore_key_resolve(r, key, &id) == 0, "no node for key %s", key);
	CHECK_EQ_INT(gstore_rootcause(r, id, 8, c), 0);
	struct kp_buf b = {0};
	gstore_json_chain(&b, key, c);
	kt_note("%s", b.data);
	buf_free(&b);
	gstore_rend(r);
}

/* The kernel side of the incident (build()), then nspans of its two payment spans (pay-00001
 * timed out, pay-00002 was fast), analysed. */
static void feed_incident(struct engine *e, int nspans)
{
	static struct stream s;
	memset(&s, 0, sizeof(s));
	build(&s, 0);
	engine_submit_frame(e, HOST, s.ev, s.n, s.meta.meta.data, s.meta.meta.len);
	struct otlp_span sp[2];
	span(&sp[0], 1, CLIENT, T0 + 1 * MS - 20000, T0 + 751 * MS, 1, "pay-00001");
	span(&sp[1], 2, CLIENT, T0 + 1200 * MS - 20000, T0 + 1200 * MS + 1300000, 0, "pay-00002");
	if (nspans)
		engine_submit_spans(e, sp, (size_t)nspans);
	CHECK_EQ_INT(engine_sync(e, 5000), 0);
	wire_batch_free(&s.meta); /* engine_submit_frame copied it */
}

TEST(engine_payment_timeout_root_cause_is_batch_job_reclaim)
{
	struct kp_config cfg;
	config_init(&cfg);
	struct gstore *g = open_graph();
	struct engine *e;
	CHECK_EQ_INT(engine_open(&cfg, g, &e), 0);
	feed_incident(e, 2);
	struct engine_stats st;
	engine_stats(e, &st);
	CHECK_GE_INT(st.matched, 2);
	CHECK_GE_INT(st.symptoms, 1);

	struct gstore_chain c;
	rootcause(g, "pay-00001", &c);
	CHECK_EQ_INT(c.steps[0].kind, GN_SYMPTOM);
	CHECK_EQ_INT(c.stop, GSTORE_STOP_LEAF);
	/* symptom <- span <- client request <- server request <- write <- reclaim <- batch-job */
	int kinds[] = {GN_SYMPTOM, GN_SPAN, GN_REQUEST, GN_REQUEST, GN_SYSCALL, GN_RECLAIM,
		       GN_PROCESS};
	CHECK_EQ_INT(c.n, 7);
	for (int i = 0; i < 7; i++)
		CHECKF(c.steps[i].kind == kinds[i], "step %d is %s", i,
		       gstore_node_kind_name(c.steps[i].kind));
	CHECK_EQ_INT(c.steps[6].pid, BATCH);
	CHECK_EQ_STR(c.steps[6].comm, "batch-job");
	CHECK_EQ_INT(c.steps[6].edge_kind, GE_MEMORY_PRESSURE_FROM);
	CHECK_EQ_INT(c.steps[5].latency_ns, 500 * MS);
	CHECK_EQ_INT(c.steps[3].edge_kind, GE_WAITED_ON);
	CHECK_EQ_INT(c.steps[3].pid, SERVER);

	/* The fast payment: no kernel cause above the threshold. */
	rootcause(g, "pay-00002", &c);
	for (int i = 0; i < c.n; i++)
		CHECKF(c.steps[i].kind != GN_RECLAIM && c.steps[i].kind != GN_OFFCPU &&
			       c.steps[i].kind != GN_PROCESS,
		       "fast payment has a kernel cause at step %d", i);
	engine_close(e);
	gstore_close(g);
	config_free(&cfg);
}

TEST(engine_no_otel_abandoned_request_reaches_server_fsync)
{
	struct kp_config cfg;
	config_init(&cfg);
	struct gstore *g = open_graph();
	struct engine *e;
	CHECK_EQ_INT(engine_open(&cfg, g, &e), 0);
	feed_incident(e, 0);

	struct gstore_rtxn *r;
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	char key[64];
	snprintf(key, sizeof(key), "conn:%016llx", (unsigned long long)CONN1);
	uint64_t sym;
	CHECK_EQ_INT(gstore_key_resolve(r, key, &sym), 0);
	struct gstore_node n;
	CHECK_EQ_INT(gstore_node_get(r, sym, &n), 0);
	CHECK_EQ_INT(n.kind, GN_SYMPTOM);
	CHECK_CONTAINS(gstore_node_label(&n, "text"), "abandoned after 750 ms");
	/* The symptom's cause is the client request; from it, a causal path to the server's
	 * ledger write, and a sent-to edge from the client's send to the server's receive. */
	struct gstore_iter it;
	struct gstore_edge ed;
	CHECK_EQ_INT(gstore_edges_first(r, sym, GSTORE_IN, &it), 0);
	CHECK_EQ_INT(gstore_edges_next(&it, &ed), 1);
	uint64_t creq = ed.src;
	struct gstore_subgraph sg = {0};
	CHECK_EQ_INT(gstore_traverse(r, creq, GSTORE_IN, 6, 0, GSTORE_SG_EDGES, &sg), 0);
	uint64_t write_node = 0;
	int sent_to = 0;
	for (size_t i = 0; i < sg.n_nodes; i++) {
		struct gstore_node x;
		CHECK_EQ_INT(gstore_node_get(r, sg.nodes[i], &x), 0);
		if (x.kind == GN_SYSCALL && x.pid == SERVER &&
		    !strcmp(gstore_node_label(&x, "syscall"), "write"))
			write_node = x.id;
	}
	CHECK(write_node != 0);
	struct gstore_path p;
	CHECK_EQ_INT(gstore_path(r, write_node, creq, 8, 0, &p), 0);
	CHECK_GE_INT(p.n_nodes, 3);
	struct gstore_scan scan;
	CHECK_EQ_INT(gstore_scan_edges(r, 0, &scan), 0);
	while (gstore_scan_edge_next(&scan, &ed) == 1) {
		if (ed.kind != GE_SENT_TO)
			continue;
		struct gstore_node a, b;
		CHECK_EQ_INT(gstore_node_get(r, ed.src, &a), 0);
		CHECK_EQ_INT(gstore_node_get(r, ed.dst, &b), 0);
		if (a.pid == CLIENT && b.pid == SERVER && a.kind == GN_TCP && b.kind == GN_TCP)
			sent_to++;
	}
	CHECK_GE_INT(sent_to, 1);
	gstore_subgraph_free(&sg);
	gstore_rend(r);
	engine_close(e);
	gstore_close(g);
	config_free(&cfg);
}

#include "graph/tables.h"
#include "store/query.h"
#include "store/store.h"

/* The same incident, read back through the query language: FROM spans / nodes / edges. */
TEST(engine_graph_as_tables)
{
	struct kp_config cfg;
	config_init(&cfg);
	char dir[512], err[256];
	snprintf(dir, sizeof(dir), "store.dataDir=%s/store", kt_tmpdir());
	CHECK_EQ_INT(config_set(&cfg, dir, err, sizeof(err)), 0);
	struct store *st;
	CHECK_EQ_INT(store_open(&cfg, &st), 0);
	struct gstore *g = open_graph();
	CHECK_EQ_INT(graph_tables_register(st, g), 0);
	struct engine *e;
	CHECK_EQ_INT(engine_open(&cfg, g, &e), 0);
	feed_incident(e, 2);

	struct query_opts o;
	query_opts_from_config(&o, &cfg);
	struct query_result *res;
	struct query_error qe;
	const char *q1 = "SELECT txn, name, status, dur FROM spans ORDER BY txn";
	CHECKF(query_exec(st, q1, strlen(q1), &o, &res, &qe) == 0, "%s at %d", qe.message,
	       qe.position);
	CHECK_EQ_INT(res->nrows, 2);
	CHECK_EQ_STR(res->cells[0].u.s.p, "pay-00001");
	CHECK_EQ_STR(res->cells[2].u.s.p, "error");
	CHECK_EQ_STR(res->cells[4].u.s.p, "pay-00002");
	query_result_free(res);

	const char *q2 = "SELECT kind, count() AS n FROM nodes GROUP BY kind ORDER BY kind";
	CHECKF(query_exec(st, q2, strlen(q2), &o, &res, &qe) == 0, "%s", qe.message);
	int saw_reclaim = 0, saw_symptom = 0;
	for (size_t i = 0; i < res->nrows; i++) {
		const struct query_value *k = &res->cells[i * 2];
		saw_reclaim |= k->u.s.len == 7 && !memcmp(k->u.s.p, "reclaim", 7);
		saw_symptom |= k->u.s.len == 7 && !memcmp(k->u.s.p, "symptom", 7);
	}
	CHECK(saw_reclaim && saw_symptom);
	query_result_free(res);

	const char *q3 = "SELECT src_kind, dst_kind, weight FROM edges WHERE kind = "
			 "'memory-pressure-from'";
	CHECKF(query_exec(st, q3, strlen(q3), &o, &res, &qe) == 0, "%s", qe.message);
	CHECK_EQ_INT(res->nrows, 1);
	CHECK_EQ_STR(res->cells[0].u.s.p, "process");
	CHECK_EQ_STR(res->cells[1].u.s.p, "reclaim");
	CHECK_EQ_INT(res->cells[2].u.i, 500 * MS);
	query_result_free(res);

	const char *q4 = "SELECT text FROM nodes WHERE kind = 'symptom' AND key = 'pay-00001'";
	CHECKF(query_exec(st, q4, strlen(q4), &o, &res, &qe) == 0, "%s", qe.message);
	CHECK_EQ_INT(res->nrows, 1);
	CHECK_EQ_STR(res->cells[0].u.s.p, "TIMEOUT: 750 ms exceeded");
	query_result_free(res);

	engine_close(e);
	store_close(st);
	gstore_close(g);
	config_free(&cfg);
}

#include "graph/pathq.h"

static struct query_result *pq(struct gstore *g, const char *text)
{
	struct query_result *res = NULL;
	struct query_error qe;
	int r = pathq_exec(g, text, strlen(text), 8, &res, &qe);
	CHECKF(r == 0, "%s: %s at %d", text, qe.message, qe.position);
	struct kp_buf b = {0};
	query_result_write(res, QUERY_CSV, &b);
	kt_note("%s ->\n%s", text, b.data);
	buf_free(&b);
	return res;
}

static const char *cell(const struct query_result *r, size_t row, int col)
{
	static char b[256];
	const struct query_value *v = &r->cells[row * (size_t)r->ncols + (size_t)col];
	snprintf(b, sizeof(b), "%.*s", v->type == QV_STR ? (int)v->u.s.len : 0,
		 v->type == QV_STR ? v->u.s.p : "");
	return b;
}

TEST(engine_path_statements)
{
	struct kp_config cfg;
	config_init(&cfg);
	struct gstore *g = open_graph();
	struct engine *e;
	CHECK_EQ_INT(engine_open(&cfg, g, &e), 0);
	feed_incident(e, 1);

	CHECK(pathq_is("  rootcause of 'x'", 17));
	CHECK(!pathq_is("SELECT 1", 8));
	struct query_result *r = pq(g, "ROOTCAUSE OF 'pay-00001'");
	CHECK_EQ_INT(r->nrows, 7);
	CHECK_EQ_STR(cell(r, 6, 1), "process");
	CHECK_EQ_STR(cell(r, 6, 2), "memory-pressure-from");
	CHECK_EQ_STR(cell(r, 6, 5), "batch-job");
	query_result_free(r);

	r = pq(g, "rootcause of 'pay-00001' steps 2;");
	CHECK_EQ_INT(r->nrows, 3);
	query_result_free(r);

	r = pq(g, "ANCESTORS OF 'pay-00001' DEPTH 8");
	int procs = 0;
	for (size_t i = 0; i < r->nrows; i++)
		procs += !strcmp(cell(r, i, 2), "process");
	CHECK_EQ_INT(procs, 1);
	query_result_free(r);

	r = pq(g, "DESCENDANTS OF 'pid:300' DEPTH 8");
	int symptoms = 0;
	for (size_t i = 0; i < r->nrows; i++)
		symptoms += !strcmp(cell(r, i, 2), "symptom");
	CHECK_EQ_INT(symptoms, 1); /* batch-job's effects reach the timeout */
	query_result_free(r);

	/* From the symptom to the culprit: runs against the edges, reported FROM -> TO. */
	r = pq(g, "PATH FROM 'pay-00001' TO 'pid:300'");
	CHECK_GE_INT(r->nrows, 3);
	CHECK_EQ_STR(cell(r, 0, 4), "symptom");
	CHECK_EQ_STR(cell(r, r->nrows - 1, 4), "process");
	query_result_free(r);

	struct query_error qe;
	struct query_result *res;
	const char *bad[] = {"ROOTCAUSE 'x'", "ROOTCAUSE OF x", "ROOTCAUSE OF 'unterminated",
			     "ANCESTORS OF 'pay-00001' DEPTH 999", "PATH FROM 'a'",
			     "ROOTCAUSE OF 'pay-00001' extra"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECKF(pathq_exec(g, bad[i], strlen(bad[i]), 8, &res, &qe) == -EINVAL, "%s",
		       bad[i]);
		CHECK_GE_INT(qe.position, 0);
	}
	CHECK_EQ_INT(pathq_exec(g, "ROOTCAUSE OF 'nope'", 19, 8, &res, &qe), -ENOENT);
	CHECK_CONTAINS(qe.message, "nothing in the causal graph");
	engine_close(e);
	gstore_close(g);
	config_free(&cfg);
}
