/*
 * Tests graph/gstore.c API by API: open and format checks, nodes, labels, edges and their order,
 * keys, incidents, scans, root cause (on the README's example incident), traversals, paths,
 * retention, the checker, JSON, and an injected map-full fault.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "graph/gstore.h"
#include "tests/test.h"

#define T0 1700000000000000000ull
#define MS 1000000ull

static struct gstore *open_store(const char *name, uint64_t map_size)
{
	char dir[512], err[256];
	struct gstore *g = NULL;
	snprintf(dir, sizeof(dir), "%s/%s", kt_tmpdir(), name);
	struct gstore_opts o = {.map_size = map_size ? map_size : 256ull << 20, .no_sync = true};
	int rc = gstore_open(dir, &o, &g, err, sizeof(err));
	CHECKF(rc == 0, "gstore_open: %d %s", rc, err);
	return g;
}

static uint64_t add_node(struct gstore_wtxn *w, int kind, uint32_t pid, uint64_t start,
			 uint64_t end, uint64_t weight, const char *comm, const char *text)
{
	struct gstore_labels l = {0};
	if (comm)
		CHECK_EQ_INT(gstore_labels_add(&l, "comm", comm), 0);
	if (text)
		CHECK_EQ_INT(gstore_labels_add(&l, "text", text), 0);
	struct gstore_node n = {.kind = (uint8_t)kind,
				.pid = pid,
				.tid = pid,
				.host = 7,
				.start_ns = start,
				.end_ns = end,
				.weight_ns = weight,
				.service = "checkout",
				.labels = l.len ? l.buf : NULL,
				.labels_len = l.len};
	uint64_t id = 0;
	CHECK_EQ_INT(gstore_node_add(w, &n, &id), 0);
	CHECK(id > 0);
	return id;
}

static void edge(struct gstore_wtxn *w, uint64_t src, uint64_t dst, int kind, uint64_t weight)
{
	struct gstore_edge e = {src, dst, weight, (uint8_t)kind};
	CHECK_EQ_INT(gstore_edge_add(w, &e), 0);
}

static void check_ok(struct gstore *g)
{
	char msg[512];
	int rc = gstore_check(g, msg, sizeof(msg));
	CHECKF(rc == 0, "gstore_check: %s", msg);
}

TEST(gstore_open_formats)
{
	char dir[512], err[256];
	struct gstore *g = open_store("g", 0);
	struct gstore_stats st;
	CHECK_EQ_INT(gstore_stats(g, &st), 0);
	CHECK_EQ_UINT(st.nodes, 0);
	CHECK_EQ_UINT(st.next_id, 1);
	gstore_close(g);
	g = open_store("g", 0); /* reopen */
	gstore_close(g);

	/* An LMDB environment that is someone else's. */
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	snprintf(dir, sizeof(dir), "%s/other", kt_tmpdir());
	CHECK_EQ_INT(mkdir_p(dir, 0750), 0);
	CHECK_EQ_INT(mdb_env_create(&env), 0);
	CHECK_EQ_INT(mdb_env_open(env, dir, 0, 0640), 0);
	CHECK_EQ_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
	CHECK_EQ_INT(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	MDB_val k = {3, "foo"}, v = {3, "bar"};
	CHECK_EQ_INT(mdb_put(txn, dbi, &k, &v, 0), 0);
	CHECK_EQ_INT(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	CHECK_EQ_INT(gstore_open(dir, NULL, &g, err, sizeof(err)), GSTORE_EMAGIC);
	CHECK_CONTAINS(err, "not a graph");

	/* A graph of a future format version. */
	snprintf(dir, sizeof(dir), "%s/g", kt_tmpdir());
	CHECK_EQ_INT(mdb_env_create(&env), 0);
	CHECK_EQ_INT(mdb_env_set_maxdbs(env, 16), 0);
	CHECK_EQ_INT(mdb_env_open(env, dir, 0, 0640), 0);
	CHECK_EQ_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
	CHECK_EQ_INT(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	uint32_t f[2] = {GSTORE_MAGIC, 99};
	k = (MDB_val){6, "format"};
	v = (MDB_val){8, f};
	CHECK_EQ_INT(mdb_put(txn, dbi, &k, &v, 0), 0);
	CHECK_EQ_INT(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	CHECK_EQ_INT(gstore_open(dir, NULL, &g, err, sizeof(err)), GSTORE_EVERSION);
	CHECK_CONTAINS(err, "version 99");
	CHECK_CONTAINS(gstore_strerror(GSTORE_EVERSION), "version");

	/* Read-only open of a graph (tools): reads work, writes are refused. */
	snprintf(dir, sizeof(dir), "%s/ro", kt_tmpdir());
	g = open_store("ro", 0);
	struct gstore_wtxn *w;
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	struct gstore_node nd = {.kind = GN_SPAN, .start_ns = 1, .end_ns = 2, .service = "s"};
	uint64_t id;
	CHECK_EQ_INT(gstore_node_add(w, &nd, &id), 0);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	gstore_close(g);
	struct gstore_opts ro = {.read_only = true};
	CHECK_EQ_INT(gstore_open(dir, &ro, &g, err, sizeof(err)), 0);
	struct gstore_rtxn *r;
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_node_get(r, id, &nd), 0);
	CHECK_EQ_STR(nd.service, "s");
	gstore_rend(r);
	CHECK_EQ_INT(gstore_wbegin(g, &w), -EROFS);
	gstore_close(g);

	/* Read-only open of a directory without a graph. */
	snprintf(dir, sizeof(dir), "%s/nothing", kt_tmpdir());
	CHECK(gstore_open(dir, &ro, &g, err, sizeof(err)) < 0);
}

TEST(gstore_nodes_and_labels)
{
	struct gstore *g = open_store("g", 0);
	struct gstore_wtxn *w;
	struct gstore_rtxn *r;
	struct gstore_node n;
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	uint64_t a = add_node(w, GN_SYSCALL, 2847, T0, T0 + 800 * MS, 800 * MS, "postgres", NULL);
	uint64_t b =
		add_node(w, GN_SYMPTOM, 2847, T0, T0 + 750 * MS, 750 * MS, "api-worker", "timeout");
	CHECK_EQ_UINT(b, a + 1);
	/* Validation happens before anything is written. */
	struct gstore_node bad = {.kind = 0};
	uint64_t id;
	CHECK_EQ_INT(gstore_node_add(w, &bad, &id), -EINVAL);
	bad = (struct gstore_node){.kind = GN_SPAN, .start_ns = 5, .end_ns = 4};
	CHECK_EQ_INT(gstore_node_add(w, &bad, &id), -EINVAL);
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	bad = (struct gstore_node){.kind = GN_SPAN, .service = big};
	CHECK_EQ_INT(gstore_node_add(w, &bad, &id), -E2BIG);
	struct gstore_labels l = {0};
	char val[1000];
	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = 0;
	CHECK_EQ_INT(gstore_labels_add(&l, "a", val), 0);
	CHECK_EQ_INT(gstore_labels_add(&l, "b", val), -E2BIG);
	CHECK_EQ_INT(gstore_labels_add(&l, "", "x"), -EINVAL);
	/* The writer sees its own writes. */
	CHECK_EQ_INT(gstore_node_get(gstore_wtxn_reader(w), a, &n), 0);
	CHECK_EQ_INT(gstore_wcommit(w), 0);

	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_node_get(r, a, &n), 0);
	CHECK_EQ_INT(n.kind, GN_SYSCALL);
	CHECK_EQ_INT(n.pid, 2847);
	CHECK_EQ_UINT(n.host, 7);
	CHECK_EQ_UINT(n.end_ns, T0 + 800 * MS);
	CHECK_EQ_UINT(n.weight_ns, 800 * MS);
	CHECK_EQ_STR(n.service, "checkout");
	CHECK_EQ_STR(gstore_node_label(&n, "comm"), "postgres");
	CHECK(gstore_node_label(&n, "text") == NULL);
	CHECK_EQ_INT(gstore_node_get(r, b, &n), 0);
	CHECK_EQ_STR(gstore_node_label(&n, "text"), "timeout");
	CHECK_EQ_INT(gstore_node_get(r, 999, &n), -ENOENT);
	CHECK_EQ_INT(gstore_node_get(r, 0, &n), -ENOENT);
	gstore_rend(r);

	/* Update moves the time index; delete frees nothing for reuse. */
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	CHECK_EQ_INT(gstore_node_get(gstore_wtxn_reader(w), a, &n), 0);
	struct gstore_node u = n;
	u.end_ns = T0 + 900 * MS;
	u.kind = GN_SYMPTOM;
	u.labels = NULL;
	u.labels_len = 0;
	CHECK_EQ_INT(gstore_node_update(w, &u), 0);
	u.id = 12345;
	CHECK_EQ_INT(gstore_node_update(w, &u), -ENOENT);
	CHECK_EQ_INT(gstore_node_del(w, b), 0);
	CHECK_EQ_INT(gstore_node_del(w, b), -ENOENT);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	check_ok(g);
	gstore_close(g);

	g = open_store("g", 0);
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	uint64_t c = add_node(w, GN_SPAN, 1, T0, T0, 0, NULL, NULL);
	CHECK_EQ_UINT(c, b + 1); /* ids survive a reopen and are never reused */
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_node_get(r, a, &n), 0);
	CHECK_EQ_INT(n.kind, GN_SYMPTOM);
	CHECK_EQ_INT(n.labels_len, 0);
	CHECK(gstore_node_label(&n, "comm") == NULL);
	CHECK_EQ_INT(gstore_node_get(r, c, &n), 0);
	CHECK_EQ_STR(n.service, "checkout");
	gstore_rend(r);
	struct gstore_stats st;
	CHECK_EQ_INT(gstore_stats(g, &st), 0);
	CHECK_EQ_UINT(st.nodes, 2);
	CHECK_EQ_UINT(st.symptoms, 1);
	CHECK_EQ_UINT(st.next_id, c + 1);
	check_ok(g);
	gstore_close(g);
}

TEST(gstore_edge_order_and_pages)
{
	struct gstore *g = open_store("g", 0);
	struct gstore_wtxn *w;
	struct gstore_rtxn *r;
	struct gstore_iter it;
	struct gstore_edge e;
	enum { N = 1000 };
	uint64_t ids[N + 1];
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	uint64_t hub = add_node(w, GN_PROCESS, 4721, T0, T0, 0, "batch-job", NULL);
	for (int i = 0; i < N; i++)
		ids[i] = add_node(w, GN_SYSCALL, 1, T0 + (uint64_t)i, T0 + (uint64_t)i, 0, NULL,
				  NULL);
	/* weights with many ties: i % 97; kinds vary */
	for (int i = 0; i < N; i++)
		edge(w, hub, ids[i], 1 + i % 7, (uint64_t)(i % 97) * 1000);
	struct gstore_edge dup = {hub, ids[5], 5 % 97 * 1000, 1 + 5 % 7};
	CHECK_EQ_INT(gstore_edge_add(w, &dup), 1); /* the same tuple: no-op */
	struct gstore_edge other = dup;
	other.weight_ns = 1;
	CHECK_EQ_INT(gstore_edge_add(w, &other), 0); /* another weight: another edge */
	CHECK_EQ_INT(gstore_edge_del(w, &other), 0);
	CHECK_EQ_INT(gstore_edge_del(w, &other), -ENOENT);
	struct gstore_edge bad = {hub, hub, 1, GE_CONTAINS};
	CHECK_EQ_INT(gstore_edge_add(w, &bad), -EINVAL);
	bad = (struct gstore_edge){hub, 99999, 1, GE_CONTAINS};
	CHECK_EQ_INT(gstore_edge_add(w, &bad), -ENOENT);
	bad = (struct gstore_edge){hub, ids[0], 1, 0};
	CHECK_EQ_INT(gstore_edge_add(w, &bad), -EINVAL);
	/* Saturating weight. */
	struct gstore_edge huge = {ids[1], ids[2], UINT64_MAX, GE_DELAYED_BY};
	CHECK_EQ_INT(gstore_edge_add(w, &huge), 0);
	CHECK_EQ_INT(gstore_wcommit(w), 0);

	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	uint64_t deg;
	CHECK_EQ_INT(gstore_degree(r, hub, GSTORE_OUT, &deg), 0);
	CHECK_EQ_UINT(deg, N);
	CHECK_EQ_INT(gstore_degree(r, hub, GSTORE_IN, &deg), 0);
	CHECK_EQ_UINT(deg, 0);
	/* Out edges of the hub span several LMDB pages (GET_MULTIPLE/NEXT_MULTIPLE). */
	CHECK_EQ_INT(gstore_edges_first(r, hub, GSTORE_OUT, &it), 0);
	int n = 0;
	uint64_t pw = UINT64_MAX, pp = UINT64_MAX;
	while (gstore_edges_next(&it, &e) == 1) {
		CHECK_EQ_UINT(e.src, hub);
		int i = (int)(e.dst - ids[0]);
		CHECK(i >= 0 && i < N);
		CHECK_EQ_UINT(e.weight_ns, (uint64_t)(i % 97) * 1000);
		CHECK_EQ_INT(e.kind, 1 + i % 7);
		/* heaviest first; equal weights: highest peer id first */
		CHECK(e.weight_ns < pw || (e.weight_ns == pw && e.dst < pp));
		pw = e.weight_ns;
		pp = e.dst;
		n++;
	}
	CHECK_EQ_INT(n, N);
	CHECK_EQ_INT(gstore_edges_first(r, ids[7], GSTORE_IN, &it), 0);
	CHECK_EQ_INT(gstore_edges_next(&it, &e), 1);
	CHECK_EQ_UINT(e.src, hub);
	CHECK_EQ_UINT(e.dst, ids[7]);
	CHECK_EQ_INT(gstore_edges_next(&it, &e), 0);
	CHECK_EQ_INT(gstore_edges_first(r, ids[2], GSTORE_IN, &it), 0);
	CHECK_EQ_INT(gstore_edges_next(&it, &e), 1);
	CHECK_EQ_UINT(e.weight_ns, GSTORE_WEIGHT_MAX);
	CHECK_EQ_INT(gstore_edges_first(r, 424242, GSTORE_IN, &it), 0);
	CHECK_EQ_INT(gstore_edges_next(&it, &e), 0);
	/* Scan of all edges: by src, N + 1 in all. */
	struct gstore_scan s;
	CHECK_EQ_INT(gstore_scan_edges(r, 0, &s), 0);
	n = 0;
	uint64_t psrc = 0;
	while (gstore_scan_edge_next(&s, &e) == 1) {
		CHECK_GE_UINT(e.src, psrc);
		psrc = e.src;
		n++;
	}
	CHECK_EQ_INT(n, N + 1);
	gstore_rend(r);
	struct gstore_stats st;
	CHECK_EQ_INT(gstore_stats(g, &st), 0);
	CHECK_EQ_UINT(st.edges, N + 1);

	/* Deleting the hub removes every mirror. */
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	CHECK_EQ_INT(gstore_node_del(w, hub), 0);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	CHECK_EQ_INT(gstore_stats(g, &st), 0);
	CHECK_EQ_UINT(st.edges, 1);
	check_ok(g);
	gstore_close(g);
}

TEST(gstore_keys_incidents_scans)
{
	struct gstore *g = open_store("g", 0);
	struct gstore_wtxn *w;
	struct gstore_rtxn *r;
	uint64_t ids[10], got[16], id;
	size_t n;
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	for (int i = 0; i < 10; i++)
		ids[i] = add_node(w, i % 3 == 0 ? GN_SYMPTOM : GN_SPAN, 1, T0,
				  T0 + (uint64_t)(10 - i) * MS, (uint64_t)(i % 4) * MS, NULL, NULL);
	/* symptoms: ids[0] (end 10ms), ids[3] (7ms), ids[6] (4ms), ids[9] (1ms) */
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(gstore_key_add(w, "trace-1", 7, ids[i]), 0);
	CHECK_EQ_INT(gstore_key_add(w, "trace-1", 7, ids[0]), 1);
	CHECK_EQ_INT(gstore_key_add(w, "req-2", 5, ids[1]), 0);
	CHECK_EQ_INT(gstore_key_add(w, "req-2", 5, ids[2]), 0);
	CHECK_EQ_INT(gstore_key_add(w, "req-3", 5, 9999), -ENOENT);
	CHECK_EQ_INT(gstore_key_add(w, "", 0, ids[0]), -EINVAL);
	CHECK_EQ_INT(gstore_wcommit(w), 0);

	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_key_lookup(r, "trace-1", 7, got, 4, &n), 0);
	CHECK_EQ_INT(n, 10); /* total, though only 4 fit */
	CHECK_EQ_UINT(got[0], ids[0]);
	CHECK_EQ_UINT(got[3], ids[3]);
	CHECK_EQ_INT(gstore_key_lookup(r, "nope", 4, got, 4, &n), 0);
	CHECK_EQ_INT(n, 0);
	/* resolve: the latest symptom wins over heavier spans */
	CHECK_EQ_INT(gstore_key_resolve(r, "trace-1", &id), 0);
	CHECK_EQ_UINT(id, ids[0]);
	/* no symptom: the heaviest (ids[1] weight 1ms, ids[2] weight 2ms) */
	CHECK_EQ_INT(gstore_key_resolve(r, "req-2", &id), 0);
	CHECK_EQ_UINT(id, ids[2]);
	char hash[32];
	snprintf(hash, sizeof(hash), "#%llu", (unsigned long long)ids[4]);
	CHECK_EQ_INT(gstore_key_resolve(r, hash, &id), 0);
	CHECK_EQ_UINT(id, ids[4]);
	CHECK_EQ_INT(gstore_key_resolve(r, "#0", &id), -ENOENT);
	CHECK_EQ_INT(gstore_key_resolve(r, "#12x", &id), -ENOENT);
	CHECK_EQ_INT(gstore_key_resolve(r, "missing", &id), -ENOENT);

	/* incidents: newest first, range, paging */
	struct gstore_incident inc[8];
	CHECK_EQ_INT(gstore_incidents(r, 0, UINT64_MAX, NULL, inc, 8, &n), 0);
	CHECK_EQ_INT(n, 4);
	CHECK_EQ_UINT(inc[0].id, ids[0]);
	CHECK_EQ_UINT(inc[3].id, ids[9]);
	CHECK_EQ_UINT(inc[1].time_ns, T0 + 7 * MS);
	CHECK_EQ_INT(gstore_incidents(r, T0 + 4 * MS, T0 + 7 * MS, NULL, inc, 8, &n), 0);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_UINT(inc[0].id, ids[3]);
	CHECK_EQ_UINT(inc[1].id, ids[6]);
	CHECK_EQ_INT(gstore_incidents(r, 0, UINT64_MAX, NULL, inc, 1, &n), 0);
	CHECK_EQ_INT(n, 1);
	struct gstore_incident last = inc[0];
	CHECK_EQ_INT(gstore_incidents(r, 0, UINT64_MAX, &last, inc, 2, &n), 0);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_UINT(inc[0].id, ids[3]);
	CHECK_EQ_UINT(inc[1].id, ids[6]);

	/* the incidents page as JSON */
	struct kp_buf jb = {0};
	CHECK_EQ_INT(gstore_incidents(r, 0, UINT64_MAX, NULL, inc, 2, &n), 0);
	CHECK_EQ_INT(gstore_json_incidents(&jb, r, inc, n, 2), 0);
	buf_append(&jb, "", 1);
	{
		struct json *root;
		char err[128];
		size_t pos;
		struct json_doc *doc =
			json_parse(jb.data, jb.len - 1, &root, err, sizeof(err), &pos);
		CHECKF(doc != NULL, "%s in %s", err, jb.data);
		const struct json *list = json_get(root, "incidents"),
				  *next = json_get(root, "next");
		CHECK_EQ_INT(list->u.arr.n, 2);
		CHECK_EQ_STR(json_get(list->u.arr.items[0], "kind")->u.str.s, "symptom");
		int64_t v;
		CHECK_EQ_INT(json_int(json_get(list->u.arr.items[1], "time_ns"), &v), 0);
		CHECK_EQ_UINT((uint64_t)v, T0 + 7 * MS);
		CHECK_EQ_INT(json_int(json_get(next, "id"), &v), 0);
		CHECK_EQ_UINT((uint64_t)v, ids[3]);
		json_free(doc);
	}
	jb.len = 0;
	CHECK_EQ_INT(gstore_json_incidents(&jb, r, inc, 1, 2), 0);
	buf_append(&jb, "", 1);
	CHECK_CONTAINS(jb.data, "\"next\":null");
	buf_free(&jb);

	/* scans */
	struct gstore_scan s;
	struct gstore_node nd;
	CHECK_EQ_INT(gstore_scan_nodes(r, ids[4], &s), 0);
	int cnt = 0;
	while (gstore_scan_node_next(&s, &nd) == 1)
		CHECK_EQ_UINT(nd.id, ids[4 + cnt++]);
	CHECK_EQ_INT(cnt, 6);
	CHECK_EQ_INT(gstore_scan_nodes_by_time(r, T0 + 2 * MS, T0 + 5 * MS, &s), 0);
	cnt = 0;
	uint64_t pt = 0;
	while (gstore_scan_node_next(&s, &nd) == 1) {
		CHECK(nd.end_ns >= T0 + 2 * MS && nd.end_ns <= T0 + 5 * MS);
		CHECK_GE_UINT(nd.end_ns, pt);
		pt = nd.end_ns;
		cnt++;
	}
	CHECK_EQ_INT(cnt, 4); /* ends 2, 3, 4, 5 ms */
	gstore_rend(r);

	/* Deleting a node unmaps its keys. */
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	CHECK_EQ_INT(gstore_node_del(w, ids[2]), 0);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_key_lookup(r, "req-2", 5, got, 16, &n), 0);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_UINT(got[0], ids[1]);
	gstore_rend(r);
	check_ok(g);
	gstore_close(g);
}

/*
 * The README's example incident: request req-9f21 fails because its database write waited
 * 800 ms on memory pressure caused by batch-job PID 4721. Edges point cause -> effect.
 */
struct incident {
	uint64_t req, auth, dbw, reclaim, batch, timeout, failed;
};

static void build_incident(struct gstore_wtxn *w, struct incident *x)
{
	x->req = add_node(w, GN_SPAN, 2847, T0, T0 + 802 * MS, 802 * MS, "api-worker",
			  "POST /checkout");
	x->auth = add_node(w, GN_SPAN, 2847, T0, T0 + 1200000, 1200000, "api-worker",
			   "auth + validation");
	x->dbw = add_node(w, GN_SYSCALL, 2847, T0 + 2 * MS, T0 + 802 * MS, 800 * MS, "api-worker",
			  "write /var/lib/ledger/0001");
	x->reclaim = add_node(w, GN_RECLAIM, 2847, T0 + 3 * MS, T0 + 791 * MS, 788 * MS,
			      "api-worker", "memcg reclaim");
	x->batch =
		add_node(w, GN_PROCESS, 4721, T0 - 60000 * MS, T0 + 900 * MS, 0, "batch-job", NULL);
	x->timeout = add_node(w, GN_SYMPTOM, 2847, T0, T0 + 750 * MS, 750 * MS, "api-worker",
			      "TIMEOUT: api-worker exceeded 750ms threshold");
	x->failed = add_node(w, GN_SYMPTOM, 2847, T0, T0 + 802 * MS, 802 * MS, "api-worker",
			     "request failed");
	edge(w, x->auth, x->req, GE_CHILD_OF, 1200000);
	edge(w, x->dbw, x->req, GE_CONTAINS, 800 * MS);
	edge(w, x->req, x->timeout, GE_DELAYED_BY, 750 * MS);
	edge(w, x->timeout, x->failed, GE_DELAYED_BY, 750 * MS);
	edge(w, x->reclaim, x->dbw, GE_DELAYED_BY, 788 * MS);
	edge(w, x->batch, x->reclaim, GE_MEMORY_PRESSURE_FROM, 788 * MS);
	CHECK_EQ_INT(gstore_key_add(w, "req-9f21", 8, x->req), 0);
	CHECK_EQ_INT(gstore_key_add(w, "req-9f21", 8, x->timeout), 0);
	CHECK_EQ_INT(gstore_key_add(w, "req-9f21", 8, x->failed), 0);
}

TEST(gstore_rootcause_example_incident)
{
	struct gstore *g = open_store("g", 0);
	struct gstore_wtxn *w;
	struct gstore_rtxn *r;
	struct incident x;
	struct gstore_chain c;
	uint64_t id;
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	build_incident(w, &x);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	/* "request failed" ends last: it is what ROOTCAUSE OF 'req-9f21' starts from */
	CHECK_EQ_INT(gstore_key_resolve(r, "req-9f21", &id), 0);
	CHECK_EQ_UINT(id, x.failed);
	CHECK_EQ_INT(gstore_rootcause(r, id, 8, &c), 0);
	CHECK_EQ_INT(c.n, 6);
	CHECK_EQ_INT(c.stop, GSTORE_STOP_LEAF);
	uint64_t want[] = {x.failed, x.timeout, x.req, x.dbw, x.reclaim, x.batch};
	for (int i = 0; i < 6; i++)
		CHECK_EQ_UINT(c.steps[i].id, want[i]);
	CHECK_EQ_INT(c.steps[5].pid, 4721);
	CHECK_EQ_STR(c.steps[5].comm, "batch-job");
	CHECK_EQ_INT(c.steps[5].edge_kind, GE_MEMORY_PRESSURE_FROM);
	CHECK_EQ_UINT(c.steps[5].latency_ns, 788 * MS);
	CHECK(c.steps[5].share > 0.98 && c.steps[5].share < 0.99); /* 788 / 802 */
	CHECK_EQ_INT(c.steps[3].edge_kind, GE_CONTAINS);
	CHECK(c.steps[3].share > 0.99 && c.steps[3].share < 1.0); /* 800 / 802 */

	struct kp_buf b = {0};
	gstore_json_chain(&b, "req-9f21", &c);
	buf_append(&b, "", 1);
	struct json *root;
	char err[128];
	size_t pos;
	struct json_doc *doc = json_parse(b.data, b.len - 1, &root, err, sizeof(err), &pos);
	CHECKF(doc != NULL, "%s at %zu in %s", err, pos, b.data);
	CHECK_EQ_STR(json_get(root, "key")->u.str.s, "req-9f21");
	const struct json *sym = json_get(root, "symptom"), *chain = json_get(root, "chain");
	CHECK_EQ_STR(json_get(sym, "text")->u.str.s, "request failed");
	CHECK_EQ_INT(chain->u.arr.n, 5);
	const struct json *last = chain->u.arr.items[4];
	CHECK_EQ_STR(json_get(last, "kind")->u.str.s, "process");
	CHECK_EQ_STR(json_get(last, "comm")->u.str.s, "batch-job");
	CHECK_EQ_STR(json_get(last, "edge")->u.str.s, "memory-pressure-from");
	int64_t v;
	CHECK_EQ_INT(json_int(json_get(last, "pid"), &v), 0);
	CHECK_EQ_INT(v, 4721);
	CHECK_EQ_INT(json_int(json_get(last, "latency_ns"), &v), 0);
	CHECK_EQ_INT(v, 788 * MS);
	CHECK(json_get(last, "share")->type == JSON_NUM);
	CHECK_EQ_STR(json_get(root, "stop")->u.str.s, "leaf");
	CHECK_EQ_STR(json_get(json_get(root, "root_cause"), "comm")->u.str.s, "batch-job");
	json_free(doc);
	buf_free(&b);

	/* max steps */
	CHECK_EQ_INT(gstore_rootcause(r, id, 2, &c), 0);
	CHECK_EQ_INT(c.n, 3);
	CHECK_EQ_INT(c.stop, GSTORE_STOP_STEPS);
	CHECK_EQ_INT(gstore_rootcause(r, id, 0, &c), -EINVAL);
	CHECK_EQ_INT(gstore_rootcause(r, 4242, 8, &c), -ENOENT);
	/* a leaf start */
	CHECK_EQ_INT(gstore_rootcause(r, x.batch, 8, &c), 0);
	CHECK_EQ_INT(c.n, 1);
	CHECK_EQ_INT(c.stop, GSTORE_STOP_LEAF);
	gstore_rend(r);

	/* A cycle: batch <- failed (heavier than anything). The walk takes the lighter way out. */
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	edge(w, x.failed, x.batch, GE_WOKEN_BY, 10000 * MS);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_rootcause(r, x.failed, 8, &c), 0);
	CHECK_EQ_INT(c.n, 6);
	CHECK_EQ_INT(c.stop, GSTORE_STOP_CYCLE); /* batch's only cause is already in the chain */
	gstore_rend(r);
	check_ok(g);
	gstore_close(g);
}

TEST(gstore_rootcause_ties_go_to_newest)
{
	struct gstore *g = open_store("g", 0);
	struct gstore_wtxn *w;
	struct gstore_rtxn *r;
	struct gstore_chain c;
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	uint64_t s = add_node(w, GN_SYMPTOM, 1, T0, T0 + 10, 0, NULL, NULL);
	uint64_t a = add_node(w, GN_OFFCPU, 1, T0, T0 + 5, 5, NULL, NULL);
	uint64_t b = add_node(w, GN_OFFCPU, 1, T0, T0 + 5, 5, NULL, NULL);
	edge(w, a, s, GE_PREEMPTED_BY, 500);
	edge(w, b, s, GE_PREEMPTED_BY, 500);
	edge(w, a, b, GE_DELAYED_BY, 100);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_rootcause(r, s, 8, &c), 0);
	CHECK_EQ_INT(c.n, 3);
	CHECK_EQ_UINT(c.steps[1].id, b); /* tie at 500: b is newer */
	CHECK_EQ_UINT(c.steps[2].id, a);
	CHECK_EQ_UINT(c.symptom_latency_ns, 500); /* symptom weight 0: the first edge's */
	CHECK(c.steps[1].share == 1.0);
	CHECK(c.steps[2].share > 0.19 && c.steps[2].share < 0.21);
	gstore_rend(r);
	gstore_close(g);
}

TEST(gstore_traverse_and_path)
{
	struct gstore *g = open_store("g", 0);
	struct gstore_wtxn *w;
	struct gstore_rtxn *r;
	struct incident x;
	struct gstore_subgraph sg = {0};
	struct gstore_path p;
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	build_incident(w, &x);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	/* ancestors of req: auth, dbw (1), reclaim (2), batch (3) */
	CHECK_EQ_INT(gstore_traverse(r, x.req, GSTORE_IN, 6, 0, GSTORE_SG_EDGES, &sg), 0);
	CHECK_EQ_INT(sg.n_nodes, 5);
	CHECK_EQ_UINT(sg.nodes[0], x.req);
	CHECK_EQ_INT(sg.depth[0], 0);
	CHECK_EQ_UINT(sg.nodes[1], x.dbw); /* heavier first */
	CHECK_EQ_UINT(sg.nodes[2], x.auth);
	CHECK_EQ_UINT(sg.nodes[4], x.batch);
	CHECK_EQ_INT(sg.depth[4], 3);
	CHECK_EQ_INT(sg.n_edges, 4);
	CHECK(!sg.truncated);
	/* depth bound, node bound */
	CHECK_EQ_INT(gstore_traverse(r, x.req, GSTORE_IN, 1, 0, 0, &sg), 0);
	CHECK_EQ_INT(sg.n_nodes, 3);
	CHECK_EQ_INT(sg.n_edges, 0);
	CHECK_EQ_INT(gstore_traverse(r, x.req, GSTORE_IN, 6, 2, 0, &sg), 0);
	CHECK_EQ_INT(sg.n_nodes, 2);
	CHECK(sg.truncated);
	/* descendants of batch: reclaim, dbw, req, timeout, failed */
	CHECK_EQ_INT(gstore_traverse(r, x.batch, GSTORE_OUT, 6, 0, GSTORE_SG_EDGES, &sg), 0);
	CHECK_EQ_INT(sg.n_nodes, 6);
	CHECK_EQ_UINT(sg.nodes[5], x.failed);
	CHECK_EQ_INT(sg.depth[5], 5);

	struct kp_buf b = {0};
	CHECK_EQ_INT(gstore_json_subgraph(&b, r, "req-9f21", GSTORE_OUT, &sg), 0);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data, "\"direction\":\"descendants\"");
	CHECK_CONTAINS(b.data, "\"comm\":\"batch-job\"");
	CHECK_CONTAINS(b.data, "\"depth\":5}");
	CHECK_CONTAINS(b.data, "\"kind\":\"memory-pressure-from\"");
	struct json *root;
	char err[128];
	size_t pos;
	struct json_doc *doc = json_parse(b.data, b.len - 1, &root, err, sizeof(err), &pos);
	CHECKF(doc != NULL, "%s at %zu", err, pos);
	CHECK_EQ_INT(json_get(root, "nodes")->u.arr.n, 6);
	CHECK_EQ_INT(json_get(root, "edges")->u.arr.n, 5);
	json_free(doc);
	CHECK_EQ_INT(gstore_traverse(r, 999, GSTORE_OUT, 6, 0, 0, &sg), -ENOENT);

	/* path: batch causes failed in 5 hops; not the other way round */
	CHECK_EQ_INT(gstore_path(r, x.batch, x.failed, 16, 0, &p), 0);
	CHECK_EQ_INT(p.n_nodes, 6);
	uint64_t want[] = {x.batch, x.reclaim, x.dbw, x.req, x.timeout, x.failed};
	for (int i = 0; i < 6; i++)
		CHECK_EQ_UINT(p.nodes[i], want[i]);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_UINT(p.edges[i].src, want[i]);
		CHECK_EQ_UINT(p.edges[i].dst, want[i + 1]);
	}
	CHECK_EQ_INT(p.edges[0].kind, GE_MEMORY_PRESSURE_FROM);
	CHECK_EQ_INT(gstore_path(r, x.failed, x.batch, 16, 0, &p), -ENOENT);
	CHECK_EQ_INT(gstore_path(r, x.batch, x.failed, 4, 0, &p), -ENOENT); /* too far */
	CHECK_EQ_INT(gstore_path(r, x.auth, x.req, 16, 0, &p), 0);
	CHECK_EQ_INT(p.n_nodes, 2);
	CHECK_EQ_INT(gstore_path(r, x.auth, x.auth, 16, 0, &p), 0);
	CHECK_EQ_INT(p.n_nodes, 1);
	CHECK_EQ_INT(gstore_path(r, x.batch, x.failed, 16, 3, &p), -ENOENT);
	CHECK(p.truncated);
	b.len = 0;
	CHECK_EQ_INT(gstore_path(r, x.batch, x.failed, 16, 0, &p), 0);
	CHECK_EQ_INT(gstore_json_path(&b, r, &p), 0);
	buf_append(&b, "", 1);
	CHECK_CONTAINS(b.data, "\"kind\":\"reclaim\"");
	buf_free(&b);
	gstore_subgraph_free(&sg);
	gstore_rend(r);
	gstore_close(g);
}

/* Many edges between few nodes: the edge bound (4 * max_nodes) stops a traversal too. */
TEST(gstore_traverse_edge_bound)
{
	struct gstore *g = open_store("g", 0);
	struct gstore_wtxn *w;
	struct gstore_rtxn *r;
	struct gstore_subgraph sg = {0};
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	uint64_t a = add_node(w, GN_SYMPTOM, 1, T0, T0, 0, NULL, NULL);
	uint64_t b = add_node(w, GN_OFFCPU, 1, T0, T0, 0, NULL, NULL);
	for (int i = 0; i < 9; i++)
		edge(w, b, a, GE_PREEMPTED_BY, 1000 + (uint64_t)i);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_traverse(r, a, GSTORE_IN, 3, 2, GSTORE_SG_EDGES, &sg), 0);
	CHECK_EQ_INT(sg.n_nodes, 2);
	CHECK_EQ_INT(sg.n_edges, 8);
	CHECK(sg.truncated);
	CHECK_EQ_INT(gstore_traverse(r, a, GSTORE_IN, 3, 3, GSTORE_SG_EDGES, &sg), 0);
	CHECK_EQ_INT(sg.n_edges, 9);
	CHECK(!sg.truncated);
	gstore_subgraph_free(&sg);
	gstore_rend(r);
	gstore_close(g);
}

TEST(gstore_expire_in_batches)
{
	struct gstore *g = open_store("g", 0);
	struct gstore_wtxn *w;
	uint64_t ids[100];
	unsigned del;
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	for (int i = 0; i < 100; i++) {
		ids[i] = add_node(w, i % 10 ? GN_SYSCALL : GN_SYMPTOM, 1, T0 + (uint64_t)i * MS,
				  T0 + (uint64_t)i * MS, MS, NULL, NULL);
		if (i)
			edge(w, ids[i - 1], ids[i], GE_DELAYED_BY, MS);
		if (i > 5)
			edge(w, ids[i], ids[i - 5], GE_WOKEN_BY, MS);
		char key[16];
		snprintf(key, sizeof(key), "k%d", i % 7);
		CHECK_EQ_INT(gstore_key_add(w, key, strlen(key), ids[i]), 0);
	}
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	/* Delete everything older than 50 ms, 20 nodes per transaction. */
	int rounds = 0, rc;
	do {
		CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
		rc = gstore_expire(w, T0 + 50 * MS, 20, &del);
		CHECK(rc >= 0);
		CHECK(del <= 20);
		CHECK_EQ_INT(gstore_wcommit(w), 0);
		check_ok(g);
		rounds++;
	} while (rc == 1);
	CHECK_EQ_INT(rounds, 3);
	struct gstore_stats st;
	CHECK_EQ_INT(gstore_stats(g, &st), 0);
	CHECK_EQ_UINT(st.nodes, 50);
	CHECK_EQ_UINT(st.symptoms, 5);
	CHECK_EQ_UINT(st.edges, 49 + 45);
	CHECK_EQ_UINT(st.keys, 50);
	struct gstore_rtxn *r;
	struct gstore_node n;
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_node_get(r, ids[49], &n), -ENOENT);
	CHECK_EQ_INT(gstore_node_get(r, ids[50], &n), 0);
	gstore_rend(r);
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	CHECK_EQ_INT(gstore_expire(w, T0 + 50 * MS, 20, &del), 0);
	CHECK_EQ_INT(del, 0);
	gstore_wabort(w);
	gstore_close(g);
}

/* The graph's LMDB environment opened directly (behind the store's back) and a write txn. */
static void raw_begin(const char *dir, MDB_env **env, MDB_txn **txn)
{
	CHECK_EQ_INT(mdb_env_create(env), 0);
	CHECK_EQ_INT(mdb_env_set_maxdbs(*env, 16), 0);
	CHECK_EQ_INT(mdb_env_set_mapsize(*env, 256ull << 20), 0);
	CHECK_EQ_INT(mdb_env_open(*env, dir, 0, 0640), 0);
	CHECK_EQ_INT(mdb_txn_begin(*env, NULL, 0, txn), 0);
}

TEST(gstore_check_finds_damage)
{
	struct gstore *g = open_store("g", 0);
	struct gstore_wtxn *w;
	char dir[512], msg[256];
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	uint64_t a = add_node(w, GN_SPAN, 1, T0, T0, 0, NULL, NULL);
	uint64_t b = add_node(w, GN_SPAN, 1, T0, T0, 0, NULL, NULL);
	edge(w, a, b, GE_CHILD_OF, 5);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	check_ok(g);
	gstore_close(g);
	/* Remove one mirror behind the store's back. */
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	snprintf(dir, sizeof(dir), "%s/g", kt_tmpdir());
	raw_begin(dir, &env, &txn);
	CHECK_EQ_INT(mdb_dbi_open(txn, "in_blk", 0, &dbi), 0);
	uint8_t kb[8]; /* b's in-block: key b >> 6, big-endian */
	for (int i = 0; i < 8; i++)
		kb[i] = (uint8_t)((b >> 6) >> (56 - 8 * i));
	MDB_val k = {8, kb};
	CHECK_EQ_INT(mdb_del(txn, dbi, &k, NULL), 0);
	CHECK_EQ_INT(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	g = open_store("g", 0);
	CHECK_EQ_INT(gstore_check(g, msg, sizeof(msg)), GSTORE_ECORRUPT);
	CHECK_CONTAINS(msg, "no mirror");
	gstore_close(g);
}

/* Injected fault: the map fills mid-batch. The batch fails whole; the store stays usable. */
TEST(gstore_map_full_fault)
{
	struct gstore *g = open_store("g", 1ull << 20); /* 1 MiB */
	struct gstore_wtxn *w;
	int rc = 0, batches = 0;
	uint64_t committed = 0;
	for (; batches < 1000 && rc == 0; batches++) {
		CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
		uint64_t prev = 0;
		for (int i = 0; i < 200 && rc == 0; i++) {
			struct gstore_node n = {.kind = GN_SYSCALL,
						.start_ns = T0,
						.end_ns = T0,
						.service = "a-service-name-that-takes-room"};
			uint64_t id;
			rc = gstore_node_add(w, &n, &id);
			if (rc == 0 && prev) {
				struct gstore_edge e = {prev, id, 1000, GE_DELAYED_BY};
				rc = gstore_edge_add(w, &e);
			}
			prev = id;
		}
		if (rc == 0) {
			rc = gstore_wcommit(w);
			if (rc == 0)
				committed += 200;
		} else {
			gstore_wabort(w);
		}
	}
	CHECK_EQ_INT(rc, -ENOSPC);
	CHECK_CONTAINS(gstore_strerror(rc), "store.graphMaxMb");
	check_ok(g);
	struct gstore_stats st;
	CHECK_EQ_INT(gstore_stats(g, &st), 0);
	CHECK_EQ_UINT(st.nodes, committed);
	/* Retention makes room again. */
	unsigned del;
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	CHECK(gstore_expire(w, T0 + 1, 400, &del) >= 0);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	struct gstore_node n = {.kind = GN_SPAN, .start_ns = T0, .end_ns = T0};
	uint64_t id;
	CHECK_EQ_INT(gstore_node_add(w, &n, &id), 0);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	check_ok(g);
	gstore_close(g);
}

/* JSON stays valid whatever bytes labels and services hold. */
TEST(gstore_json_escapes)
{
	struct gstore_labels l = {0};
	CHECK_EQ_INT(gstore_labels_add(&l, "path", "/var/lib/\"ledger\"\n\xff\x01"), 0);
	CHECK_EQ_INT(gstore_labels_add(&l, "we\"ird", "x"), 0);
	struct gstore_node n = {.id = 9,
				.kind = GN_SYSCALL,
				.pid = 1,
				.start_ns = 5,
				.end_ns = 6,
				.service = "a\\b",
				.labels = l.buf,
				.labels_len = l.len};
	struct kp_buf b = {0};
	gstore_json_node(&b, &n);
	struct json *root;
	char err[128];
	size_t pos;
	struct json_doc *doc = json_parse(b.data, b.len, &root, err, sizeof(err), &pos);
	CHECKF(doc != NULL, "%s at %zu in %.*s", err, pos, (int)b.len, b.data);
	const struct json *labels = json_get(root, "labels");
	CHECK(labels && labels->type == JSON_OBJ);
	CHECK_EQ_INT(labels->u.arr.n, 2);
	CHECK_CONTAINS(json_get(labels, "path")->u.str.s, "\"ledger\"\n");
	CHECK_EQ_STR(json_get(root, "service")->u.str.s, "a\\b");
	CHECK_EQ_STR(json_get(root, "kind")->u.str.s, "syscall");
	json_free(doc);
	/* a chain that stopped at its start */
	struct gstore_chain c = {.n = 1, .stop = GSTORE_STOP_LEAF};
	c.steps[0] = (struct gstore_step){.id = 9, .kind = GN_SYMPTOM};
	b.len = 0;
	gstore_json_chain(&b, NULL, &c);
	doc = json_parse(b.data, b.len, &root, err, sizeof(err), &pos);
	CHECKF(doc != NULL, "%s", err);
	CHECK(json_get(root, "key")->type == JSON_NULL);
	CHECK_EQ_INT(json_get(root, "chain")->u.arr.n, 0);
	CHECK(json_get(root, "root_cause")->type == JSON_NULL);
	json_free(doc);
	buf_free(&b);
}

TEST(gstore_kind_names)
{
	for (int k = 1; k < GN__COUNT; k++)
		CHECK_EQ_INT(gstore_node_kind_parse(gstore_node_kind_name(k)), k);
	for (int k = 1; k < GE__COUNT; k++)
		CHECK_EQ_INT(gstore_edge_kind_parse(gstore_edge_kind_name(k)), k);
	CHECK_EQ_STR(gstore_node_kind_name(0), "?");
	CHECK_EQ_INT(gstore_edge_kind_parse("caused"), -EINVAL);
	CHECK_EQ_STR(gstore_edge_kind_name(GE_MEMORY_PRESSURE_FROM), "memory-pressure-from");
}

/*
 * The in direction is stored per block of 64 node ids (format 2): a node with more causes than
 * any page holds, edges added later to a block committed before, deletes whose mirrors sit in
 * other blocks, reads inside the write transaction (dirty blocks not yet written), a reopen.
 */
TEST(gstore_in_blocks)
{
	enum { NCAUSE = 5000 };
	struct gstore *g = open_store("g", 1ull << 30);
	struct gstore_wtxn *w;
	struct gstore_rtxn *r;
	struct gstore_iter it;
	struct gstore_edge e;
	struct gstore_chain c;
	struct gstore_subgraph sg = {0};
	uint64_t deg, prev_w = UINT64_MAX;
	static uint64_t cause[NCAUSE];
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	uint64_t x = add_node(w, GN_SYMPTOM, 1, T0, T0 + MS, MS, "app", "slow");
	for (int i = 0; i < NCAUSE; i++) {
		cause[i] = add_node(w, GN_SYSCALL, 2, T0, T0 + (uint64_t)i, 0, "c", NULL);
		/* weights not in id order: the slot must stay sorted heaviest first */
		edge(w, cause[i], x, GE_DELAYED_BY, 1 + (uint64_t)((i * 7919) % NCAUSE));
	}
	/* Duplicate add: a no-op, also for an edge still only in a dirty block. */
	struct gstore_edge dup = {cause[10], x, 1 + (10 * 7919) % NCAUSE, GE_DELAYED_BY};
	CHECK_EQ_INT(gstore_edge_add(w, &dup), 1);
	/* Reads inside the write transaction see the uncommitted blocks. */
	r = gstore_wtxn_reader(w);
	CHECK_EQ_INT(gstore_degree(r, x, GSTORE_IN, &deg), 0);
	CHECK_EQ_UINT(deg, NCAUSE);
	CHECK_EQ_INT(gstore_degree(r, cause[4999], GSTORE_OUT, &deg), 0);
	CHECK_EQ_UINT(deg, 1);
	CHECK_EQ_INT(gstore_rootcause(r, x, 4, &c), 0);
	CHECK_EQ_INT(c.n, 2);
	CHECK_EQ_UINT(c.steps[1].latency_ns, NCAUSE); /* the heaviest of 1..NCAUSE */
	CHECK_EQ_INT(gstore_traverse(r, x, GSTORE_IN, 2, 0, GSTORE_SG_EDGES, &sg), 0);
	CHECK_EQ_INT(sg.n_nodes, NCAUSE + 1);
	CHECK_EQ_INT(sg.n_edges, NCAUSE);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	check_ok(g);

	/* Reopen: everything committed comes back, in order. */
	gstore_close(g);
	g = open_store("g", 1ull << 30);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	int k = 0;
	CHECK_EQ_INT(gstore_edges_first(r, x, GSTORE_IN, &it), 0);
	while (gstore_edges_next(&it, &e) == 1) {
		CHECK_EQ_UINT(e.dst, x);
		CHECK(e.weight_ns < prev_w);
		prev_w = e.weight_ns;
		k++;
	}
	CHECK_EQ_INT(k, NCAUSE);
	gstore_rend(r);

	/* Edges into old blocks after the commit: x (block 0) and a cause in a middle block. */
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	uint64_t y = add_node(w, GN_RECLAIM, 3, T0, T0 + 2 * MS, 0, "kswapd", NULL);
	edge(w, y, x, GE_MEMORY_PRESSURE_FROM, 10 * MS);
	edge(w, y, cause[2500], GE_MEMORY_PRESSURE_FROM, 5 * MS);
	edge(w, cause[3000], cause[100], GE_WOKEN_BY, 7);
	r = gstore_wtxn_reader(w);
	CHECK_EQ_INT(gstore_rootcause(r, x, 4, &c), 0);
	CHECK_EQ_UINT(c.steps[1].id, y);
	CHECK_EQ_INT(gstore_degree(r, x, GSTORE_IN, &deg), 0);
	CHECK_EQ_UINT(deg, NCAUSE + 1);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	check_ok(g);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	CHECK_EQ_INT(gstore_degree(r, cause[2500], GSTORE_IN, &deg), 0);
	CHECK_EQ_UINT(deg, 1);
	CHECK_EQ_INT(gstore_degree(r, cause[100], GSTORE_IN, &deg), 0);
	CHECK_EQ_UINT(deg, 1);
	CHECK_EQ_INT(gstore_rootcause(r, x, 4, &c), 0);
	CHECK_EQ_UINT(c.steps[1].id, y);
	CHECK_EQ_INT(gstore_rootcause(r, cause[2500], 4, &c), 0);
	CHECK_EQ_INT(c.n, 2);
	CHECK_EQ_UINT(c.steps[1].id, y);
	gstore_rend(r);

	/* Deletes across blocks: an edge whose in side is in another block, then y (its out
	 * mirrors in two blocks), then x (5000 mirrors in the out lists of ~80 blocks' nodes). */
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	struct gstore_edge wk = {cause[3000], cause[100], 7, GE_WOKEN_BY};
	CHECK_EQ_INT(gstore_edge_del(w, &wk), 0);
	CHECK_EQ_INT(gstore_edge_del(w, &wk), -ENOENT);
	CHECK_EQ_INT(gstore_node_del(w, y), 0);
	r = gstore_wtxn_reader(w);
	CHECK_EQ_INT(gstore_degree(r, cause[2500], GSTORE_IN, &deg), 0);
	CHECK_EQ_UINT(deg, 0);
	CHECK_EQ_INT(gstore_degree(r, cause[100], GSTORE_IN, &deg), 0);
	CHECK_EQ_UINT(deg, 0);
	CHECK_EQ_INT(gstore_degree(r, x, GSTORE_IN, &deg), 0);
	CHECK_EQ_UINT(deg, NCAUSE);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	check_ok(g);
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	CHECK_EQ_INT(gstore_node_del(w, x), 0);
	r = gstore_wtxn_reader(w);
	CHECK_EQ_INT(gstore_degree(r, cause[0], GSTORE_OUT, &deg), 0);
	CHECK_EQ_UINT(deg, 0);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	check_ok(g);
	/* Retention over every block: the store ends empty and consistent. */
	unsigned del;
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	CHECK_EQ_INT(gstore_expire(w, UINT64_MAX, NCAUSE + 10, &del), 0);
	CHECK_EQ_UINT(del, NCAUSE);
	CHECK_EQ_INT(gstore_wcommit(w), 0);
	check_ok(g);
	struct gstore_stats st;
	CHECK_EQ_INT(gstore_stats(g, &st), 0);
	CHECK_EQ_UINT(st.nodes, 0);
	CHECK_EQ_UINT(st.edges, 0);
	/* An abort throws the dirty blocks away. */
	CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
	uint64_t a = add_node(w, GN_SPAN, 1, T0, T0, 0, NULL, NULL);
	uint64_t b = add_node(w, GN_SPAN, 1, T0, T0, 0, NULL, NULL);
	edge(w, a, b, GE_CHILD_OF, 1);
	gstore_wabort(w);
	check_ok(g);
	gstore_subgraph_free(&sg);
	gstore_close(g);
}

/* A graph of format version 1 (per-node "in" lists) is refused with what to do. */
TEST(gstore_old_format_refused)
{
	char dir[512], err[256];
	struct gstore *g = open_store("g", 0);
	gstore_close(g);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	snprintf(dir, sizeof(dir), "%s/g", kt_tmpdir());
	raw_begin(dir, &env, &txn);
	CHECK_EQ_INT(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	uint32_t f[2] = {GSTORE_MAGIC, 1};
	MDB_val k = {6, "format"}, v = {8, f};
	CHECK_EQ_INT(mdb_put(txn, dbi, &k, &v, 0), 0);
	CHECK_EQ_INT(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	CHECK_EQ_INT(gstore_open(dir, NULL, &g, err, sizeof(err)), GSTORE_EVERSION);
	CHECK_CONTAINS(err, "version 1, this build reads 2");
	CHECK_CONTAINS(err, "move the graph directory aside");
	CHECK_CONTAINS(gstore_strerror(GSTORE_EVERSION), "aside");
}
