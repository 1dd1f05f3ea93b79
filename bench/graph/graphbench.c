/*
 * graphbench.c - bench/graph (issue 4): the same synthetic causal graph (gen.h) loaded into the
 * kprobe graph store (LMDB, graph/gstore.c) and into SQLite, then the two queries the product
 * answers, timed one by one over the same symptoms:
 *
 *   root cause  from a symptom, take at each step the incoming edge that explains the most
 *               latency (ties: newest cause), up to 8 steps; fetch each step's node
 *   ancestors   the set of nodes within 6 hops upstream (causes of causes ...)
 *
 * SQLite runs at its best: WAL, a covering index on edges(dst, weight DESC, src DESC, kind) (and a
 * second layout with the edges clustered on that key, WITHOUT ROWID), 1 GiB page cache, mmap,
 * prepared statements, one read transaction per query, as a C loop and as a recursive CTE.
 * Ingest: both load the graph in time order (each node, then its incoming edges), committing
 * every --batch edges, with durable commits (LMDB: fdatasync per commit; SQLite: WAL,
 * synchronous=FULL). Results are cross-checked: every chain and ancestor count must agree.
 *
 *   graphbench --dir DIR [--nodes N] [--symptoms S] [--batch B] [--seed X] [--csv]
 *
 * Prints "key value" result lines on stdout, progress on stderr; with --csv also writes
 * DIR/nodes.csv, DIR/edges.csv and DIR/expected.txt (symptom, chain ids, ancestor count) for the
 * Kuzu peer (kuzu.mjs).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/graph/gen.h"
#include "common/util.h"
#include "graph/gstore.h"

#define MAX_STEPS 8
#define DEPTH	  6

static uint64_t seed = 42, n_nodes = 1000000, batch = 10000;
static int n_sym = 1000, passes = 3, rounds = 2;
static const char *dir;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "graphbench: %s: %d (%s)\n", what, rc,
		rc < 0 ? gstore_strerror(rc) : "see above");
	exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report_pct(const char *name, uint64_t *lat, int n)
{
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	double p50 = (double)lat[n / 2] / 1000.0, p99 = (double)lat[(n * 99) / 100] / 1000.0;
	printf("%s_p50_us %.2f\n%s_p99_us %.2f\n", name, p50, name, p99);
	fprintf(stderr, "  %-28s p50 %9.2f us   p99 %9.2f us\n", name, p50, p99);
	fflush(stdout);
}

/* What each system answers for one symptom; all must agree. */
struct answer {
	int n; /* chain length including the symptom */
	uint64_t ids[MAX_STEPS + 1];
	uint32_t pid_sum; /* sum of pids along the chain: proves the node rows were read */
	uint64_t anc;	  /* ancestors including the symptom */
};

static struct answer *want;
static uint64_t *syms;

static void check_answer(const char *who, int i, const struct answer *got, int chain, int anc)
{
	const struct answer *w = &want[i];
	if (chain && (got->n != w->n || memcmp(got->ids, w->ids, sizeof(uint64_t) * (size_t)w->n) ||
		      got->pid_sum != w->pid_sum)) {
		fprintf(stderr, "graphbench: %s: root cause of %" PRIu64 " differs from LMDB's\n",
			who, syms[i]);
		exit(1);
	}
	if (anc && got->anc != w->anc) {
		fprintf(stderr,
			"graphbench: %s: %" PRIu64 " ancestors of %" PRIu64 ", LMDB found %" PRIu64
			"\n",
			who, got->anc, syms[i], w->anc);
		exit(1);
	}
}

/* ================================================================== CSV for Kuzu */

static void write_csv(void)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/nodes.csv", dir);
	FILE *fn = fopen(p, "w");
	snprintf(p, sizeof(p), "%s/edges.csv", dir);
	FILE *fe = fopen(p, "w");
	if (!fn || !fe)
		die("creating CSV files", -errno);
	fprintf(fn, "id,kind,pid,comm,weight,start_ns,end_ns\n");
	fprintf(fe, "src,dst,kind,weight\n");
	struct gen_node g;
	for (uint64_t id = 1; id <= n_nodes; id++) {
		gen_node_make(seed, id, &g);
		fprintf(fn, "%" PRIu64 ",%d,%u,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n", id,
			g.kind, g.pid, g.comm, g.weight_ns, g.start_ns, g.end_ns);
		for (int k = 0; k < g.n_in; k++)
			fprintf(fe, "%" PRIu64 ",%" PRIu64 ",%d,%" PRIu64 "\n", g.in[k].src, id,
				g.in[k].kind, g.in[k].weight_ns);
	}
	fclose(fn);
	fclose(fe);
}

static void write_expected(void)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/expected.txt", dir);
	FILE *f = fopen(p, "w");
	if (!f)
		die("creating expected.txt", -errno);
	for (int i = 0; i < n_sym; i++) {
		fprintf(f, "%" PRIu64 " %" PRIu64 " %u", syms[i], want[i].anc, want[i].pid_sum);
		for (int k = 0; k < want[i].n; k++)
			fprintf(f, " %" PRIu64, want[i].ids[k]);
		fprintf(f, "\n");
	}
	fclose(f);
}

/* ================================================================== LMDB (gstore) */

/* Best load of each system over the rounds (loads alternate between systems). */
struct loadres {
	double rate, secs;
	uint64_t bytes;
	double cpu_s;       /* user + system CPU of the load */
	uint64_t written;   /* bytes the load passed to write calls (/proc/self/io wchar) */
};

/* CPU seconds used so far, and bytes passed to write system calls so far (0 when unknown). */
static double cpu_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t written_now(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	unsigned long long v = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "wchar: %llu", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static double load_cpu0;
static uint64_t load_wr0;

static void load_start(void)
{
	load_cpu0 = cpu_now();
	load_wr0 = written_now();
}
static struct loadres ld_lmdb, ld_sq_index, ld_sq_clustered;
static uint64_t n_edges;

static void keep_best(struct loadres *b, double secs, uint64_t edges, uint64_t bytes)
{
	double rate = (double)edges / secs;
	if (rate > b->rate)
		*b = (struct loadres){rate, secs, bytes, cpu_now() - load_cpu0,
				      written_now() - load_wr0};
	n_edges = edges;
}

static void lmdb_load(struct gstore *g)
{
	struct gstore_wtxn *w = NULL;
	struct gen_node gn;
	uint64_t edges = 0, in_batch = 0;
	int rc;
	load_start();
	double t0 = now_s();
	if ((rc = gstore_wbegin(g, &w)))
		die("wbegin", rc);
	for (uint64_t id = 1; id <= n_nodes; id++) {
		gen_node_make(seed, id, &gn);
		struct gstore_labels l = {0};
		gstore_labels_add(&l, "comm", gn.comm);
		struct gstore_node n = {.kind = (uint8_t)gn.kind,
					.pid = gn.pid,
					.tid = gn.pid,
					.host = 1,
					.start_ns = gn.start_ns,
					.end_ns = gn.end_ns,
					.weight_ns = gn.weight_ns,
					.service = gn.comm,
					.labels = l.buf,
					.labels_len = l.len};
		uint64_t nid;
		if ((rc = gstore_node_add(w, &n, &nid)))
			die("node_add", rc);
		if (nid != id)
			die("ids do not follow the generator (not a fresh directory?)", -EEXIST);
		for (int k = 0; k < gn.n_in; k++)
			if ((rc = gstore_edge_add(w, &gn.in[k])) < 0)
				die("edge_add", rc);
		edges += (uint64_t)gn.n_in;
		in_batch += (uint64_t)gn.n_in;
		if (in_batch >= batch || id == n_nodes) {
			if ((rc = gstore_wcommit(w)))
				die("commit", rc);
			w = NULL;
			in_batch = 0;
			if (id < n_nodes && (rc = gstore_wbegin(g, &w)))
				die("wbegin", rc);
		}
		if (id % 200000 == 0)
			fprintf(stderr, "  lmdb: %" PRIu64 " nodes, %" PRIu64 " edges, %.1f s\n",
				id, edges, now_s() - t0);
	}
	double dt = now_s() - t0;
	struct gstore_stats st;
	gstore_stats(g, &st);
	keep_best(&ld_lmdb, dt, edges, st.map_used);
	fprintf(stderr,
		"  lmdb: loaded %" PRIu64 " nodes + %" PRIu64 " edges in %.1f s: %.0f edges/s,"
		" %.0f MB\n",
		n_nodes, edges, dt, (double)edges / dt, (double)st.map_used / 1e6);
	fflush(stdout);
}

/* One query of kind q (0: root cause, 1: ancestors, 2: ancestors with their edges). */
static uint64_t lmdb_one(struct gstore_rtxn *r, struct gstore_subgraph *sg, int q, uint64_t from,
			 struct answer *a)
{
	struct gstore_chain c;
	int rc;
	uint64_t t0 = now_ns();
	if ((rc = gstore_rrenew(r)))
		die("rrenew", rc);
	if (q == 0)
		rc = gstore_rootcause(r, from, MAX_STEPS, &c);
	else
		rc = gstore_traverse(r, from, GSTORE_IN, DEPTH, 0, q == 2 ? GSTORE_SG_EDGES : 0,
				     sg);
	uint64_t dt = now_ns() - t0;
	if (rc)
		die(q ? "traverse" : "rootcause", rc);
	if (q == 0) {
		a->n = c.n;
		a->pid_sum = 0;
		for (int k = 0; k < c.n; k++) {
			a->ids[k] = c.steps[k].id;
			a->pid_sum += c.steps[k].pid;
		}
	} else {
		a->anc = sg->n_nodes;
	}
	return dt;
}

static void lmdb_queries(struct gstore *g)
{
	static const char *const names[] = {"lmdb_rootcause", "lmdb_ancestors",
					    "lmdb_ancestors_edges"};
	struct gstore_rtxn *r;
	struct gstore_subgraph sg = {0};
	uint64_t *lat = calloc((size_t)n_sym, 8);
	struct answer a;
	int rc;
	if ((rc = gstore_rbegin(g, &r)))
		die("rbegin", rc);
	/* Warm-up pass; its answers are the reference every other system is checked against. */
	for (int i = 0; i < n_sym; i++) {
		lmdb_one(r, &sg, 0, syms[i], &want[i]);
		lmdb_one(r, &sg, 1, syms[i], &want[i]);
	}
	uint64_t tot = 0, chain = 0;
	for (int i = 0; i < n_sym; i++)
		tot += want[i].anc, chain += (uint64_t)want[i].n;
	printf("anc_mean %.1f\nchain_mean %.2f\n", (double)tot / n_sym, (double)chain / n_sym);
	fprintf(stderr, "  mean ancestor set %.1f nodes, mean chain %.2f nodes\n",
		(double)tot / n_sym, (double)chain / n_sym);
	for (int q = 0; q < 3; q++) {
		for (int i = 0; i < n_sym; i++)
			lat[i] = UINT64_MAX;
		for (int pass = 0; pass < passes; pass++) {
			for (int i = 0; i < n_sym; i++) {
				a = want[i];
				uint64_t t = lmdb_one(r, &sg, q, syms[i], &a);
				lat[i] = t < lat[i] ? t : lat[i];
				check_answer("lmdb", i, &a, q == 0, q != 0);
			}
		}
		report_pct(names[q], lat, n_sym);
	}
	gstore_subgraph_free(&sg);
	gstore_rend(r);
	free(lat);
}

/* ================================================================== SQLite */

static void sq_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "graphbench: sqlite: %s: %s\n", sql, err);
		exit(1);
	}
}

static sqlite3_stmt *sq_prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "graphbench: sqlite: preparing %s: %s\n", sql, sqlite3_errmsg(db));
		exit(1);
	}
	return st;
}

static sqlite3 *sq_open(const char *name, int clustered, int create)
{
	char p[1024];
	sqlite3 *db;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (create) {
		unlink(p);
		char x[1100];
		snprintf(x, sizeof(x), "%s-wal", p);
		unlink(x);
		snprintf(x, sizeof(x), "%s-shm", p);
		unlink(x);
	}
	if (sqlite3_open(p, &db) != SQLITE_OK)
		die("sqlite3_open", -EIO);
	sq_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-1048576;"
		    " PRAGMA mmap_size=8589934592; PRAGMA temp_store=MEMORY;");
	if (create) {
		sq_exec(db, "CREATE TABLE nodes(id INTEGER PRIMARY KEY, kind INTEGER, pid INTEGER,"
			    " tid INTEGER, host INTEGER, start_ns INTEGER, end_ns INTEGER,"
			    " weight INTEGER, service TEXT, comm TEXT)");
		if (clustered)
			sq_exec(db,
				"CREATE TABLE edges(src INTEGER NOT NULL, dst INTEGER NOT NULL,"
				" kind INTEGER NOT NULL, weight INTEGER NOT NULL,"
				" PRIMARY KEY(dst, weight DESC, src DESC, kind)) WITHOUT ROWID");
		else
			sq_exec(db, "CREATE TABLE edges(src INTEGER NOT NULL, dst INTEGER NOT NULL,"
				    " kind INTEGER NOT NULL, weight INTEGER NOT NULL);"
				    " CREATE INDEX edges_in ON edges(dst, weight DESC, src DESC, "
				    "kind)");
	}
	return db;
}

static void sqlite_load(const char *name, int clustered, const char *tag)
{
	sqlite3 *db = sq_open(name, clustered, 1);
	sqlite3_stmt *in = sq_prep(db, "INSERT INTO nodes VALUES(?,?,?,?,?,?,?,?,?,?)");
	sqlite3_stmt *ie = sq_prep(db, "INSERT INTO edges VALUES(?,?,?,?)");
	struct gen_node gn;
	uint64_t edges = 0, in_batch = 0;
	load_start();
	double t0 = now_s();
	sq_exec(db, "BEGIN");
	for (uint64_t id = 1; id <= n_nodes; id++) {
		gen_node_make(seed, id, &gn);
		sqlite3_bind_int64(in, 1, (sqlite3_int64)id);
		sqlite3_bind_int(in, 2, gn.kind);
		sqlite3_bind_int64(in, 3, gn.pid);
		sqlite3_bind_int64(in, 4, gn.pid);
		sqlite3_bind_int64(in, 5, 1);
		sqlite3_bind_int64(in, 6, (sqlite3_int64)gn.start_ns);
		sqlite3_bind_int64(in, 7, (sqlite3_int64)gn.end_ns);
		sqlite3_bind_int64(in, 8, (sqlite3_int64)gn.weight_ns);
		sqlite3_bind_text(in, 9, gn.comm, -1, SQLITE_STATIC);
		sqlite3_bind_text(in, 10, gn.comm, -1, SQLITE_STATIC);
		if (sqlite3_step(in) != SQLITE_DONE)
			die(sqlite3_errmsg(db), -EIO);
		sqlite3_reset(in);
		for (int k = 0; k < gn.n_in; k++) {
			sqlite3_bind_int64(ie, 1, (sqlite3_int64)gn.in[k].src);
			sqlite3_bind_int64(ie, 2, (sqlite3_int64)id);
			sqlite3_bind_int(ie, 3, gn.in[k].kind);
			sqlite3_bind_int64(ie, 4, (sqlite3_int64)gn.in[k].weight_ns);
			if (sqlite3_step(ie) != SQLITE_DONE)
				die(sqlite3_errmsg(db), -EIO);
			sqlite3_reset(ie);
		}
		edges += (uint64_t)gn.n_in;
		in_batch += (uint64_t)gn.n_in;
		if (in_batch >= batch || id == n_nodes) {
			sq_exec(db, "COMMIT");
			in_batch = 0;
			if (id < n_nodes)
				sq_exec(db, "BEGIN");
		}
		if (id % 200000 == 0)
			fprintf(stderr, "  %s: %" PRIu64 " nodes, %" PRIu64 " edges, %.1f s\n", tag,
				id, edges, now_s() - t0);
	}
	double dt = now_s() - t0;
	sqlite3_finalize(in);
	sqlite3_finalize(ie);
	sq_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	sqlite3_close(db);
	char p[1024];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	stat(p, &sb);
	keep_best(clustered ? &ld_sq_clustered : &ld_sq_index, dt, edges, (uint64_t)sb.st_size);
	fprintf(stderr, "  %s: loaded in %.1f s: %.0f edges/s, %.0f MB\n", tag, dt,
		(double)edges / dt, (double)sb.st_size / 1e6);
	fflush(stdout);
}

/* A visited set for the SQLite loop: the same generation-stamped open addressing gstore uses. */
struct vs {
	uint64_t *id;
	uint32_t *gen;
	uint32_t g;
	size_t cap;
};

static int vs_add(struct vs *v, uint64_t id)
{
	size_t h = (size_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & (v->cap - 1);
	while (v->gen[h] == v->g) {
		if (v->id[h] == id)
			return 0;
		h = (h + 1) & (v->cap - 1);
	}
	v->gen[h] = v->g;
	v->id[h] = id;
	return 1;
}

struct sq {
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *rc_step, *node, *anc_step, *rc_cte, *anc_cte;
	struct vs vs;
	uint64_t *q;
	uint8_t *qd;
};

static void sq_txn(sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		die("sqlite BEGIN/COMMIT", -EIO);
	sqlite3_reset(st);
}

static void sq_rootcause_loop(struct sq *s, uint64_t from, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	sq_txn(s->begin);
	a->ids[a->n++] = from;
	for (int step = 0; step < MAX_STEPS; step++) {
		sqlite3_bind_int64(s->rc_step, 1, (sqlite3_int64)a->ids[a->n - 1]);
		uint64_t next = 0;
		while (sqlite3_step(s->rc_step) == SQLITE_ROW) {
			uint64_t src = (uint64_t)sqlite3_column_int64(s->rc_step, 0);
			int seen = 0;
			for (int k = 0; k < a->n; k++)
				seen |= a->ids[k] == src;
			if (!seen) {
				next = src;
				(void)sqlite3_column_int(s->rc_step, 1);   /* kind */
				(void)sqlite3_column_int64(s->rc_step, 2); /* weight */
				break;
			}
		}
		sqlite3_reset(s->rc_step);
		if (!next)
			break;
		a->ids[a->n++] = next;
	}
	for (int k = 0; k < a->n; k++) {
		sqlite3_bind_int64(s->node, 1, (sqlite3_int64)a->ids[k]);
		if (sqlite3_step(s->node) != SQLITE_ROW)
			die("sqlite node row missing", -ENOENT);
		a->pid_sum += (uint32_t)sqlite3_column_int64(s->node, 1);
		(void)sqlite3_column_text(s->node, 2);
		sqlite3_reset(s->node);
	}
	sq_txn(s->commit);
}

static void sq_rootcause_cte(struct sq *s, uint64_t from, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	sq_txn(s->begin);
	sqlite3_bind_int64(s->rc_cte, 1, (sqlite3_int64)from);
	while (sqlite3_step(s->rc_cte) == SQLITE_ROW && a->n <= MAX_STEPS) {
		a->ids[a->n++] = (uint64_t)sqlite3_column_int64(s->rc_cte, 0);
		a->pid_sum += (uint32_t)sqlite3_column_int64(s->rc_cte, 4);
		(void)sqlite3_column_text(s->rc_cte, 5);
	}
	sqlite3_reset(s->rc_cte);
	sq_txn(s->commit);
}

static void sq_ancestors_loop(struct sq *s, uint64_t from, struct answer *a)
{
	size_t head = 0, n = 0;
	sq_txn(s->begin);
	if (++s->vs.g == 0) {
		memset(s->vs.gen, 0, s->vs.cap * 4);
		s->vs.g = 1;
	}
	vs_add(&s->vs, from);
	s->q[n] = from;
	s->qd[n++] = 0;
	while (head < n) {
		uint64_t u = s->q[head];
		uint8_t d = s->qd[head++];
		if (d >= DEPTH)
			break;
		sqlite3_bind_int64(s->anc_step, 1, (sqlite3_int64)u);
		while (sqlite3_step(s->anc_step) == SQLITE_ROW) {
			uint64_t src = (uint64_t)sqlite3_column_int64(s->anc_step, 0);
			if (vs_add(&s->vs, src)) {
				s->q[n] = src;
				s->qd[n++] = (uint8_t)(d + 1);
			}
		}
		sqlite3_reset(s->anc_step);
	}
	sq_txn(s->commit);
	a->anc = n;
}

static void sq_ancestors_cte(struct sq *s, uint64_t from, struct answer *a)
{
	sq_txn(s->begin);
	sqlite3_bind_int64(s->anc_cte, 1, (sqlite3_int64)from);
	if (sqlite3_step(s->anc_cte) != SQLITE_ROW)
		die("ancestors CTE", -EIO);
	a->anc = (uint64_t)sqlite3_column_int64(s->anc_cte, 0);
	sqlite3_reset(s->anc_cte);
	sq_txn(s->commit);
}

static void sqlite_queries(const char *name, int clustered, const char *tag)
{
	struct sq s = {0};
	char nm[128];
	s.db = sq_open(name, clustered, 0);
	s.begin = sq_prep(s.db, "BEGIN");
	s.commit = sq_prep(s.db, "COMMIT");
	s.rc_step = sq_prep(s.db, "SELECT src, kind, weight FROM edges WHERE dst = ?1"
				  " ORDER BY weight DESC, src DESC");
	s.node = sq_prep(s.db, "SELECT kind, pid, comm, weight, start_ns, end_ns FROM nodes"
			       " WHERE id = ?1");
	s.anc_step = sq_prep(s.db, "SELECT src FROM edges WHERE dst = ?1");
	s.rc_cte = sq_prep(
		s.db, "WITH RECURSIVE walk(id, step, ekind, w) AS ("
		      " SELECT ?1, 0, 0, 0"
		      " UNION ALL"
		      " SELECT e.src, walk.step + 1, e.kind, e.weight FROM walk JOIN edges e"
		      "  ON e.dst = walk.id AND (e.weight, e.src) = (SELECT weight, src FROM edges"
		      "   WHERE dst = walk.id ORDER BY weight DESC, src DESC LIMIT 1)"
		      " WHERE walk.step < 8)"
		      " SELECT walk.id, walk.ekind, walk.w, n.kind, n.pid, n.comm"
		      " FROM walk JOIN nodes n ON n.id = walk.id ORDER BY walk.step");
	s.anc_cte = sq_prep(s.db,
			    "WITH RECURSIVE anc(id, d) AS ("
			    " SELECT ?1, 0"
			    " UNION SELECT e.src, anc.d + 1 FROM anc JOIN edges e ON e.dst = anc.id"
			    " WHERE anc.d < 6)"
			    " SELECT count(DISTINCT id) FROM anc");
	s.vs.cap = 1 << 22;
	s.vs.id = calloc(s.vs.cap, 8);
	s.vs.gen = calloc(s.vs.cap, 4);
	s.q = calloc(n_nodes + 1, 8);
	s.qd = calloc(n_nodes + 1, 1);
	uint64_t *lat = calloc((size_t)n_sym, 8);
	struct answer a;
	struct {
		const char *what;
		void (*fn)(struct sq *, uint64_t, struct answer *);
		int chain;
	} q[] = {{"rootcause_loop", sq_rootcause_loop, 1},
		 {"rootcause_cte", sq_rootcause_cte, 1},
		 {"ancestors_loop", sq_ancestors_loop, 0},
		 {"ancestors_cte", sq_ancestors_cte, 0}};
	for (size_t k = 0; k < KP_ARRAY_SIZE(q); k++) {
		for (int i = 0; i < n_sym; i++) /* warm-up */
			q[k].fn(&s, syms[i], &a);
		for (int i = 0; i < n_sym; i++)
			lat[i] = UINT64_MAX;
		for (int pass = 0; pass < passes; pass++) {
			for (int i = 0; i < n_sym; i++) {
				uint64_t t0 = now_ns();
				q[k].fn(&s, syms[i], &a);
				uint64_t t = now_ns() - t0;
				lat[i] = t < lat[i] ? t : lat[i];
				check_answer(tag, i, &a, q[k].chain, !q[k].chain);
			}
		}
		snprintf(nm, sizeof(nm), "%s_%s", tag, q[k].what);
		report_pct(nm, lat, n_sym);
	}
	sqlite3_stmt *all[] = {s.begin,	   s.commit, s.rc_step, s.node,
			       s.anc_step, s.rc_cte, s.anc_cte};
	for (size_t k = 0; k < KP_ARRAY_SIZE(all); k++)
		sqlite3_finalize(all[k]);
	sqlite3_close(s.db);
	free(s.vs.id);
	free(s.vs.gen);
	free(s.q);
	free(s.qd);
	free(lat);
}

/* ================================================================== main */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: graphbench --dir DIR [--nodes N] [--symptoms S] [--batch EDGES]"
		" [--seed X] [--passes P] [--load-rounds L] [--csv] [--skip-sqlite]"
		" [--reuse-lmdb]\n"
		"Loads the synthetic causal graph into LMDB (gstore) and SQLite, times root-cause"
		" walks and\n6-hop ancestor sets over S symptoms (each query P times in P separate"
		" passes, the\nfastest kept: filters preemptions on a shared machine), prints"
		" 'key value' lines.\nLoads run L rounds, alternating systems, best rate kept.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", 1, 0, 'd'},	    {"nodes", 1, 0, 'n'},	{"symptoms", 1, 0, 's'},
		{"batch", 1, 0, 'b'},	    {"seed", 1, 0, 'x'},	{"csv", 0, 0, 'c'},
		{"skip-sqlite", 0, 0, 'q'}, {"help", 0, 0, 'h'},	{"reuse-lmdb", 0, 0, 'r'},
		{"passes", 1, 0, 'p'},	    {"load-rounds", 1, 0, 'l'}, {0, 0, 0, 0}};
	int c, csv = 0, skip_sqlite = 0, reuse = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			n_nodes = strtoull(optarg, NULL, 10);
			break;
		case 's':
			n_sym = atoi(optarg);
			break;
		case 'b':
			batch = strtoull(optarg, NULL, 10);
			break;
		case 'x':
			seed = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			csv = 1;
			break;
		case 'q':
			skip_sqlite = 1;
			break;
		case 'r':
			reuse = 1;
			break;
		case 'p':
			passes = atoi(optarg);
			break;
		case 'l':
			rounds = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!dir || n_nodes < 10000 || n_sym < 10 || batch < 1 || passes < 1 || rounds < 1) {
		usage(stderr);
		return 2;
	}
	mkdir_p(dir, 0755);
	syms = calloc((size_t)n_sym, 8);
	want = calloc((size_t)n_sym, sizeof(*want));
	n_sym = gen_symptoms(seed, n_nodes, syms, n_sym);
	printf("symptoms %d\nbatch %" PRIu64 "\npasses %d\n", n_sym, batch, passes);
	if (csv) {
		fprintf(stderr, "graphbench: writing CSV for Kuzu\n");
		write_csv();
	}

	char p[1024], err[256], cmd[1100];
	struct gstore *g;
	struct gstore_opts o = {.map_size = 16ull << 30}; /* durable commits: fdatasync each */
	int rc;
	snprintf(p, sizeof(p), "%s/lmdb", dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	/* Loads alternate between the systems, rounds times; each keeps its best rate. */
	for (int round = 0; round < (reuse ? 0 : rounds); round++) {
		fprintf(stderr, "graphbench: load round %d/%d\n", round + 1, rounds);
		if (system(cmd) != 0)
			die("removing the old LMDB directory", -EIO);
		if ((rc = gstore_open(p, &o, &g, err, sizeof(err)))) {
			fprintf(stderr, "graphbench: %s\n", err);
			return 1;
		}
		fprintf(stderr,
			"graphbench: LMDB load (%" PRIu64 " nodes, commit every %" PRIu64
			" edges, fdatasync per commit)\n",
			n_nodes, batch);
		lmdb_load(g);
		gstore_close(g);
		if (skip_sqlite)
			continue;
		fprintf(stderr,
			"graphbench: SQLite load, covering index (WAL, synchronous=FULL)\n");
		sqlite_load("sqlite-index.db", 0, "sqlite_index");
		fprintf(stderr, "graphbench: SQLite load, edges clustered WITHOUT ROWID\n");
		sqlite_load("sqlite-clustered.db", 1, "sqlite_clustered");
	}
	if (!reuse) {
		printf("edges %" PRIu64 "\nnodes %" PRIu64 "\nload_rounds %d\n", n_edges, n_nodes,
		       rounds);
		const struct {
			const char *tag;
			struct loadres *r;
		} lr[] = {{"lmdb", &ld_lmdb},
			  {"sqlite_index", &ld_sq_index},
			  {"sqlite_clustered", &ld_sq_clustered}};
		for (size_t i = 0; i < KP_ARRAY_SIZE(lr); i++)
			if (lr[i].r->rate > 0)
				printf("%s_load_s %.2f\n%s_edges_per_s %.0f\n%s_bytes %" PRIu64
				       "\n%s_load_cpu_s %.2f\n%s_edges_per_cpu_s %.0f\n"
				       "%s_written_per_edge %.0f\n",
				       lr[i].tag, lr[i].r->secs, lr[i].tag, lr[i].r->rate, lr[i].tag,
				       lr[i].r->bytes, lr[i].tag, lr[i].r->cpu_s, lr[i].tag,
				       (double)n_edges / lr[i].r->cpu_s, lr[i].tag,
				       (double)lr[i].r->written / (double)n_edges);
		fflush(stdout);
	}
	if ((rc = gstore_open(p, &o, &g, err, sizeof(err)))) {
		fprintf(stderr, "graphbench: %s\n", err);
		return 1;
	}
	fprintf(stderr, "graphbench: LMDB queries over %d symptoms\n", n_sym);
	lmdb_queries(g);
	gstore_close(g);
	if (csv)
		write_expected();
	if (skip_sqlite)
		return 0;

	fprintf(stderr, "graphbench: SQLite queries, covering index\n");
	sqlite_queries("sqlite-index.db", 0, "sqlite_index");
	fprintf(stderr, "graphbench: SQLite queries, clustered\n");
	sqlite_queries("sqlite-clustered.db", 1, "sqlite_clustered");
	return 0;
}
