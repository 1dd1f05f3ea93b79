/*
 * Model test of graph/gstore.c: random transactions of node/edge/key adds, updates and deletes,
 * retention (expire) and aborts, applied both to the store and to a naive in-memory model
 * (arrays and linear scans). After every commit every read API and traversal is compared with
 * what the model computes the slow, obvious way, and gstore_check must pass. Reopens the store
 * now and then (what was committed must come back).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "graph/gstore.h"
#include "tests/test.h"

#define MAXN  1500
#define MAXE  6000
#define NKEYS 12

struct mnode {
	int live;
	struct gstore_node n;
	char comm[16];
	struct gstore_labels l;
};
struct medge {
	uint64_t src, dst, w;
	uint8_t kind;
};
struct mkey {
	int k;
	uint64_t id;
};
struct model {
	uint64_t next_id;
	struct mnode nodes[MAXN + 2]; /* by id */
	struct medge e[MAXE];
	int ne;
	struct mkey keys[MAXE];
	int nk;
};

static struct model M, SAVE;
static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static int rn(int n)
{
	return (int)(rnd() % (uint64_t)n);
}

static const char *keyname(int k)
{
	static char b[NKEYS][16];
	snprintf(b[k], sizeof(b[k]), "key-%d", k);
	return b[k];
}

static uint64_t sat(uint64_t w)
{
	return w > GSTORE_WEIGHT_MAX ? GSTORE_WEIGHT_MAX : w;
}

static uint64_t random_live(void)
{
	int n = 0;
	uint64_t pick = 0;
	for (uint64_t id = 1; id < M.next_id; id++)
		if (M.nodes[id].live && rn(++n) == 0)
			pick = id;
	return pick;
}

static void m_del_node(uint64_t id)
{
	M.nodes[id].live = 0;
	int j = 0;
	for (int i = 0; i < M.ne; i++)
		if (M.e[i].src != id && M.e[i].dst != id)
			M.e[j++] = M.e[i];
	M.ne = j;
	j = 0;
	for (int i = 0; i < M.nk; i++)
		if (M.keys[i].id != id)
			M.keys[j++] = M.keys[i];
	M.nk = j;
}

static void make_node(struct mnode *m, int kind)
{
	memset(m, 0, sizeof(*m));
	m->live = 1;
	snprintf(m->comm, sizeof(m->comm), "c%d", rn(50));
	CHECK_EQ_INT(gstore_labels_add(&m->l, "comm", m->comm), 0);
	if (rn(2))
		CHECK_EQ_INT(gstore_labels_add(&m->l, "text", "something slow"), 0);
	m->n.kind = (uint8_t)kind;
	m->n.pid = (uint32_t)rn(100);
	m->n.tid = m->n.pid + 1;
	m->n.host = (uint64_t)rn(3);
	/* coarse times: equal end times (ties in indexes, cutoff == end) happen often */
	m->n.start_ns = 1000 + (uint64_t)rn(20) * 50;
	m->n.end_ns = m->n.start_ns + (uint64_t)rn(20) * 50;
	m->n.weight_ns = (uint64_t)rn(5) * 100;
	m->n.service = "svc";
	m->n.labels = m->l.buf;
	m->n.labels_len = m->l.len;
}

static int random_kind(void)
{
	return rn(4) == 0 ? GN_SYMPTOM : 1 + rn(GN__COUNT - 1);
}

/* ------------------------------------------------------------------ one random operation */

static void op(struct gstore_wtxn *w)
{
	int r = rn(100);
	uint64_t a = random_live(), b = random_live();
	if (r < 25 || !a) { /* add node */
		if (M.next_id > MAXN)
			return;
		uint64_t id;
		struct mnode *m = &M.nodes[M.next_id];
		make_node(m, random_kind());
		CHECK_EQ_INT(gstore_node_add(w, &m->n, &id), 0);
		CHECK_EQ_UINT(id, M.next_id);
		m->n.id = id;
		M.next_id++;
		struct gstore_node got;
		CHECK_EQ_INT(gstore_node_get(gstore_wtxn_reader(w), id, &got), 0);
		CHECK_EQ_UINT(got.end_ns, m->n.end_ns);
	} else if (r < 30) { /* update */
		struct mnode *m = &M.nodes[a];
		struct mnode nm;
		make_node(&nm, random_kind());
		nm.n.id = a;
		*m = nm;
		m->n.labels = m->l.buf;
		CHECK_EQ_INT(gstore_node_update(w, &m->n), 0);
	} else if (r < 35) { /* delete node */
		CHECK_EQ_INT(gstore_node_del(w, a), 0);
		m_del_node(a);
		CHECK_EQ_INT(gstore_node_del(w, a), -ENOENT);
	} else if (r < 70) { /* add edge */
		if (a == b || M.ne >= MAXE)
			return;
		static const uint64_t ws[] = {100, 200, 300, 300, 500, UINT64_MAX};
		struct gstore_edge e = {a, b, ws[rn(6)], (uint8_t)(1 + rn(GE__COUNT - 1))};
		int exists = 0;
		for (int i = 0; i < M.ne; i++)
			exists |= M.e[i].src == a && M.e[i].dst == b && M.e[i].kind == e.kind &&
				  M.e[i].w == sat(e.weight_ns);
		CHECK_EQ_INT(gstore_edge_add(w, &e), exists);
		if (!exists)
			M.e[M.ne++] = (struct medge){a, b, sat(e.weight_ns), e.kind};
		if (rn(10) == 0) { /* to a node that is gone or never was */
			uint64_t dead = 0;
			for (uint64_t id = 1; id < M.next_id && !dead; id++)
				if (!M.nodes[id].live)
					dead = id;
			struct gstore_edge d = {a, dead ? dead : M.next_id + 5, 1, GE_WOKEN_BY};
			CHECK_EQ_INT(gstore_edge_add(w, &d), -ENOENT);
		}
	} else if (r < 78) { /* delete edge */
		if (!M.ne)
			return;
		int i = rn(M.ne);
		struct gstore_edge e = {M.e[i].src, M.e[i].dst, M.e[i].w, M.e[i].kind};
		CHECK_EQ_INT(gstore_edge_del(w, &e), 0);
		M.e[i] = M.e[--M.ne];
		CHECK_EQ_INT(gstore_edge_del(w, &e), -ENOENT);
	} else if (r < 93) { /* key */
		int k = rn(NKEYS), exists = 0;
		for (int i = 0; i < M.nk; i++)
			exists |= M.keys[i].k == k && M.keys[i].id == a;
		CHECK_EQ_INT(gstore_key_add(w, keyname(k), strlen(keyname(k)), a), exists);
		if (!exists)
			M.keys[M.nk++] = (struct mkey){k, a};
	} else { /* retention */
		uint64_t cutoff = 1000 + (uint64_t)rn(24) * 50;
		unsigned max = 1 + (unsigned)rn(8), del;
		/* the model: oldest (end, id) first */
		uint64_t victims[8];
		unsigned nv = 0;
		int more = 0;
		for (;;) {
			uint64_t best = 0;
			for (uint64_t id = 1; id < M.next_id; id++) {
				struct mnode *m = &M.nodes[id];
				int taken = 0;
				for (unsigned v = 0; v < nv; v++)
					taken |= victims[v] == id;
				if (!m->live || taken || m->n.end_ns >= cutoff)
					continue;
				if (!best || m->n.end_ns < M.nodes[best].n.end_ns)
					best = id;
			}
			if (!best)
				break;
			if (nv == max) {
				more = 1;
				break;
			}
			victims[nv++] = best;
		}
		CHECK_EQ_INT(gstore_expire(w, cutoff, max, &del), more);
		CHECK_EQ_INT(del, nv);
		for (unsigned v = 0; v < nv; v++)
			m_del_node(victims[v]);
	}
}

/* ------------------------------------------------------------------ verification */

/* Model order of a node's edges in one direction: heaviest, then newest peer, then kind. */
static int edge_before(const struct medge *x, const struct medge *y, int dir)
{
	uint64_t px = dir == GSTORE_OUT ? x->dst : x->src, py = dir == GSTORE_OUT ? y->dst : y->src;
	if (x->w != y->w)
		return x->w > y->w;
	if (px != py)
		return px > py;
	return x->kind < y->kind;
}

static int model_edges(uint64_t id, int dir, struct medge *out)
{
	int n = 0;
	for (int i = 0; i < M.ne; i++)
		if ((dir == GSTORE_OUT ? M.e[i].src : M.e[i].dst) == id)
			out[n++] = M.e[i];
	for (int i = 1; i < n; i++) /* insertion sort */
		for (int j = i; j > 0 && edge_before(&out[j], &out[j - 1], dir); j--) {
			struct medge t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static struct medge tmp[MAXE];

static void verify_rootcause(struct gstore_rtxn *r, uint64_t from, int max_steps)
{
	struct gstore_chain c;
	uint64_t chain[70];
	int n = 1, stop = 0;
	chain[0] = from;
	for (;;) {
		int ne = model_edges(chain[n - 1], GSTORE_IN, tmp), any = ne > 0;
		uint64_t next = 0;
		for (int i = 0; i < ne && !next; i++) {
			int seen = 0;
			for (int k = 0; k < n; k++)
				seen |= chain[k] == tmp[i].src;
			if (!seen)
				next = tmp[i].src;
		}
		if (!next) {
			stop = any ? GSTORE_STOP_CYCLE : GSTORE_STOP_LEAF;
			break;
		}
		if (n == max_steps + 1) {
			stop = GSTORE_STOP_STEPS;
			break;
		}
		chain[n++] = next;
	}
	CHECK_EQ_INT(gstore_rootcause(r, from, max_steps, &c), 0);
	CHECK_EQ_INT(c.n, n);
	CHECK_EQ_INT(c.stop, stop);
	for (int i = 0; i < n; i++) {
		CHECK_EQ_UINT(c.steps[i].id, chain[i]);
		CHECK_EQ_STR(c.steps[i].comm, M.nodes[chain[i]].comm);
		CHECK(c.steps[i].share >= 0 && c.steps[i].share <= 1);
	}
}

static void verify_traverse(struct gstore_rtxn *r, struct gstore_subgraph *sg, uint64_t from,
			    int dir, int depth)
{
	static int dist[MAXN + 2];
	static uint64_t q[MAXN + 2];
	for (uint64_t id = 0; id < M.next_id; id++)
		dist[id] = -1;
	int h = 0, t = 0, expect_edges = 0;
	dist[from] = 0;
	q[t++] = from;
	while (h < t) {
		uint64_t u = q[h++];
		if (dist[u] >= depth)
			continue;
		int ne = model_edges(u, dir, tmp);
		expect_edges += ne;
		for (int i = 0; i < ne; i++) {
			uint64_t v = dir == GSTORE_OUT ? tmp[i].dst : tmp[i].src;
			if (dist[v] < 0) {
				dist[v] = dist[u] + 1;
				q[t++] = v;
			}
		}
	}
	CHECK_EQ_INT(gstore_traverse(r, from, dir, depth, 0, GSTORE_SG_EDGES, sg), 0);
	CHECK_EQ_INT(sg->n_nodes, t);
	CHECK(!sg->truncated);
	CHECK_EQ_INT(sg->n_edges, expect_edges);
	CHECK_EQ_UINT(sg->nodes[0], from);
	for (size_t i = 0; i < sg->n_nodes; i++) {
		CHECK_EQ_INT(sg->depth[i], dist[sg->nodes[i]]);
		if (i)
			CHECK_GE_INT(sg->depth[i], sg->depth[i - 1]);
	}
	if (t > 2) { /* the node bound */
		CHECK_EQ_INT(gstore_traverse(r, from, dir, depth, 2, 0, sg), 0);
		CHECK_EQ_INT(sg->n_nodes, 2);
		CHECK(sg->truncated);
	}
}

static void verify_path(struct gstore_rtxn *r, uint64_t a, uint64_t b)
{
	static int dist[MAXN + 2];
	static uint64_t q[MAXN + 2];
	struct gstore_path p;
	for (uint64_t id = 0; id < M.next_id; id++)
		dist[id] = -1;
	int h = 0, t = 0;
	dist[a] = 0;
	q[t++] = a;
	while (h < t) {
		uint64_t u = q[h++];
		for (int i = 0; i < M.ne; i++)
			if (M.e[i].src == u && dist[M.e[i].dst] < 0) {
				dist[M.e[i].dst] = dist[u] + 1;
				q[t++] = M.e[i].dst;
			}
	}
	int rc = gstore_path(r, a, b, 64, 0, &p);
	if (dist[b] < 0) {
		CHECK_EQ_INT(rc, -ENOENT);
		return;
	}
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(p.n_nodes - 1, dist[b]);
	CHECK_EQ_UINT(p.nodes[0], a);
	CHECK_EQ_UINT(p.nodes[p.n_nodes - 1], b);
	for (int i = 0; i + 1 < p.n_nodes; i++) {
		int found = 0;
		CHECK_EQ_UINT(p.edges[i].src, p.nodes[i]);
		CHECK_EQ_UINT(p.edges[i].dst, p.nodes[i + 1]);
		for (int k = 0; k < M.ne && !found; k++)
			found = M.e[k].src == p.edges[i].src && M.e[k].dst == p.edges[i].dst &&
				M.e[k].kind == p.edges[i].kind && M.e[k].w == p.edges[i].weight_ns;
		CHECK(found);
	}
	if (dist[b] > 1)
		CHECK_EQ_INT(gstore_path(r, a, b, dist[b] - 1, 0, &p), -ENOENT);
}

/* id's edges both ways (order included) and degrees, as r sees them. */
static void verify_edges(struct gstore_rtxn *r, uint64_t id)
{
	for (int dir = 0; dir < 2; dir++) {
		int ne = model_edges(id, dir, tmp), k = 0;
		struct gstore_iter it;
		struct gstore_edge e;
		uint64_t deg;
		CHECK_EQ_INT(gstore_edges_first(r, id, dir, &it), 0);
		while (gstore_edges_next(&it, &e) == 1) {
			CHECK_LT_INT(k, ne);
			CHECK_EQ_UINT(e.src, tmp[k].src);
			CHECK_EQ_UINT(e.dst, tmp[k].dst);
			CHECK_EQ_UINT(e.weight_ns, tmp[k].w);
			CHECK_EQ_INT(e.kind, tmp[k].kind);
			k++;
		}
		CHECK_EQ_INT(k, ne);
		CHECK_EQ_INT(gstore_degree(r, id, dir, &deg), 0);
		CHECK_EQ_UINT(deg, ne);
	}
}

/*
 * Inside a write transaction, through its reader: every read of edges must see what the
 * transaction wrote so far (the writer's dirty in-blocks), before any commit.
 */
/* Root cause, traversal and path from n random live nodes, against the model. */
static void verify_walks(struct gstore_rtxn *r, struct gstore_subgraph *sg, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t a = random_live(), b = random_live();
		if (!a)
			break;
		verify_rootcause(r, a, 1 + rn(10));
		verify_traverse(r, sg, a, rn(2), rn(5));
		verify_path(r, a, b);
	}
}

static void verify_view(struct gstore_wtxn *w)
{
	struct gstore_rtxn *r = gstore_wtxn_reader(w);
	struct gstore_subgraph sg = {0};
	for (uint64_t id = 1; id < M.next_id; id++)
		if (M.nodes[id].live)
			verify_edges(r, id);
	verify_walks(r, &sg, 3);
	gstore_subgraph_free(&sg);
}

static void verify(struct gstore *g)
{
	struct gstore_rtxn *r;
	struct gstore_stats st;
	struct gstore_subgraph sg = {0};
	uint64_t live = 0, sym = 0;
	char msg[256];
	CHECKF(gstore_check(g, msg, sizeof(msg)) == 0, "%s", msg);
	CHECK_EQ_INT(gstore_rbegin(g, &r), 0);
	for (uint64_t id = 1; id < M.next_id + 2; id++) {
		struct gstore_node n;
		struct mnode *m = &M.nodes[id];
		int rc = gstore_node_get(r, id, &n);
		if (id >= M.next_id || !m->live) {
			CHECK_EQ_INT(rc, -ENOENT);
			continue;
		}
		CHECK_EQ_INT(rc, 0);
		live++;
		sym += m->n.kind == GN_SYMPTOM;
		CHECK_EQ_INT(n.kind, m->n.kind);
		CHECK_EQ_INT(n.pid, m->n.pid);
		CHECK_EQ_UINT(n.end_ns, m->n.end_ns);
		CHECK_EQ_UINT(n.weight_ns, m->n.weight_ns);
		CHECK_EQ_INT(n.labels_len, m->l.len);
		CHECK_EQ_STR(gstore_node_label(&n, "comm"), m->comm);
		verify_edges(r, id);
	}
	CHECK_EQ_INT(gstore_stats(g, &st), 0);
	CHECK_EQ_UINT(st.nodes, live);
	CHECK_EQ_UINT(st.symptoms, sym);
	CHECK_EQ_UINT(st.edges, M.ne);
	CHECK_EQ_UINT(st.keys, M.nk);
	CHECK_EQ_UINT(st.next_id, M.next_id);
	/* keys */
	for (int k = 0; k < NKEYS; k++) {
		uint64_t ids[MAXN], want[MAXN];
		size_t n, nw = 0;
		for (uint64_t id = 1; id < M.next_id; id++)
			for (int i = 0; i < M.nk; i++)
				if (M.keys[i].k == k && M.keys[i].id == id)
					want[nw++] = id;
		CHECK_EQ_INT(gstore_key_lookup(r, keyname(k), strlen(keyname(k)), ids, MAXN, &n),
			     0);
		CHECK_EQ_INT(n, nw);
		for (size_t i = 0; i < n; i++)
			CHECK_EQ_UINT(ids[i], want[i]);
		uint64_t best = 0, got;
		int bsym = 0;
		for (size_t i = 0; i < nw; i++) {
			struct gstore_node *c = &M.nodes[want[i]].n, *bn = &M.nodes[best].n;
			int s = c->kind == GN_SYMPTOM;
			if (!best || s > bsym ||
			    (s == bsym &&
			     (s ? c->end_ns >= bn->end_ns : c->weight_ns >= bn->weight_ns))) {
				best = want[i];
				bsym = s;
			}
		}
		int rc = gstore_key_resolve(r, keyname(k), &got);
		if (!best) {
			CHECK_EQ_INT(rc, -ENOENT);
		} else {
			CHECK_EQ_INT(rc, 0);
			CHECK_EQ_UINT(got, best);
		}
	}
	/* incidents: every symptom, newest first */
	static struct gstore_incident inc[MAXN];
	size_t ni;
	CHECK_EQ_INT(gstore_incidents(r, 0, UINT64_MAX, NULL, inc, MAXN, &ni), 0);
	CHECK_EQ_UINT(ni, sym);
	for (size_t i = 0; i < ni; i++) {
		struct mnode *m = &M.nodes[inc[i].id];
		CHECK(m->live && m->n.kind == GN_SYMPTOM);
		CHECK_EQ_UINT(inc[i].time_ns, m->n.end_ns);
		if (i)
			CHECK(inc[i].time_ns < inc[i - 1].time_ns ||
			      (inc[i].time_ns == inc[i - 1].time_ns && inc[i].id < inc[i - 1].id));
	}
	/* scans */
	struct gstore_scan s;
	struct gstore_node n;
	struct gstore_edge e;
	uint64_t cnt = 0;
	CHECK_EQ_INT(gstore_scan_nodes_by_time(r, 0, UINT64_MAX, &s), 0);
	while (gstore_scan_node_next(&s, &n) == 1)
		cnt++;
	CHECK_EQ_UINT(cnt, live);
	cnt = 0;
	CHECK_EQ_INT(gstore_scan_edges(r, 0, &s), 0);
	while (gstore_scan_edge_next(&s, &e) == 1)
		cnt++;
	CHECK_EQ_UINT(cnt, M.ne);
	/* traversals from a few random live nodes */
	verify_walks(r, &sg, 6);
	gstore_subgraph_free(&sg);
	gstore_rend(r);
}

static struct gstore *model_open(void)
{
	char dir[512], err[256];
	struct gstore *g;
	struct gstore_opts o = {.map_size = 256ull << 20, .no_sync = true};
	snprintf(dir, sizeof(dir), "%s/model", kt_tmpdir());
	int rc = gstore_open(dir, &o, &g, err, sizeof(err));
	CHECKF(rc == 0, "%s", err);
	return g;
}

TEST_SLOW(gstore_model_random_ops, 120)
{
	const char *s = getenv("KPROBE_SEED");
	rng = s ? strtoull(s, NULL, 0) : 0x5eed5eedull;
	kt_note("seed 0x%llx (set KPROBE_SEED to replay)", (unsigned long long)rng);
	memset(&M, 0, sizeof(M));
	M.next_id = 1;
	struct gstore *g = model_open();
	int commits = 0, aborts = 0;
	for (int t = 0; t < 300; t++) {
		struct gstore_wtxn *w;
		CHECK_EQ_INT(gstore_wbegin(g, &w), 0);
		memcpy(&SAVE, &M, sizeof(M));
		int nops = 1 + rn(25);
		for (int i = 0; i < nops; i++)
			op(w);
		for (uint64_t id = 1; id < M.next_id; id++)
			M.nodes[id].n.labels = M.nodes[id].l.buf;
		verify_view(w);
		if (rn(10) == 0) {
			gstore_wabort(w);
			memcpy(&M, &SAVE, sizeof(M));
			aborts++;
		} else {
			CHECK_EQ_INT(gstore_wcommit(w), 0);
			commits++;
		}
		for (uint64_t id = 1; id < M.next_id; id++)
			M.nodes[id].n.labels = M.nodes[id].l.buf;
		verify(g);
		if (t % 50 == 49) {
			gstore_close(g);
			g = model_open();
			verify(g);
		}
	}
	kt_note("%d commits, %d aborts, %d live edges, next id %llu", commits, aborts, M.ne,
		(unsigned long long)M.next_id);
	CHECK_GT_INT(aborts, 0);
	gstore_close(g);
}
