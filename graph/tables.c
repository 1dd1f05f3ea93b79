/*
 * tables.c - the causal graph as query-language tables (store/table.h providers):
 *
 *   FROM spans   OpenTelemetry spans the engine has analyzed (span nodes): trace_id, span_id,
 *                txn, name, service, pid, tid, ts (start), end, dur, status, comm, host
 *   FROM nodes   every node: id, kind, pid, tid, host, service, ts (start), end, dur,
 *                weight, error, text, comm, key (symptoms), labels (all, JSON)
 *   FROM edges   every edge: src, dst, kind, weight, src_kind, dst_kind
 *
 * Scans read one MVCC snapshot (they never block the engine's writer); a time constraint in
 * the WHERE clause (ts) narrows nodes and spans through the graph's age index.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "graph/gstore.h"
#include "graph/tables.h"
#include "store/store.h"
#include "store/table.h"

#define BATCH 4096

/* ------------------------------------------------------------------ row buffers */

/* One batch of rows: integers per column, and strings (copied, owned by the batch). */
struct rows {
	uint32_t n, ncols;
	int64_t *i;          /* ncols * BATCH */
	const char **s;      /* ncols * BATCH */
	uint32_t *slen;      /* ncols * BATCH */
	uint8_t *null;       /* ncols * BATCH */
	struct kp_buf strs;  /* string storage (offsets until finalized) */
	size_t *soff;        /* ncols * BATCH: offset into strs, or SIZE_MAX for NULL */
};

static void rows_init(struct rows *r, uint32_t ncols)
{
	memset(r, 0, sizeof(*r));
	r->ncols = ncols;
	r->i = xcalloc((size_t)ncols * BATCH, sizeof(*r->i));
	r->s = xcalloc((size_t)ncols * BATCH, sizeof(*r->s));
	r->slen = xcalloc((size_t)ncols * BATCH, sizeof(*r->slen));
	r->null = xcalloc((size_t)ncols * BATCH, sizeof(*r->null));
	r->soff = xcalloc((size_t)ncols * BATCH, sizeof(*r->soff));
}

static void rows_free(struct rows *r)
{
	free(r->i);
	free(r->s);
	free(r->slen);
	free(r->null);
	free(r->soff);
	buf_free(&r->strs);
}

static void set_int(struct rows *r, uint32_t col, int64_t v)
{
	r->i[(size_t)col * BATCH + r->n] = v;
	r->null[(size_t)col * BATCH + r->n] = 0;
}

static void set_str(struct rows *r, uint32_t col, const char *s)
{
	size_t k = (size_t)col * BATCH + r->n;
	if (!s) {
		r->soff[k] = SIZE_MAX;
		r->null[k] = 1;
		return;
	}
	size_t len = strlen(s);
	r->soff[k] = r->strs.len;
	r->slen[k] = (uint32_t)len;
	buf_append(&r->strs, s, len + 1);
	r->null[k] = 0;
}

/* Turns string offsets into pointers (strs no longer grows for this batch). */
static void rows_finalize(struct rows *r)
{
	for (uint32_t c = 0; c < r->ncols; c++)
		for (uint32_t k = 0; k < r->n; k++) {
			size_t x = (size_t)c * BATCH + k;
			r->s[x] = r->soff[x] == SIZE_MAX ? NULL : r->strs.data + r->soff[x];
		}
}

struct gbatch {
	struct table_batch b;
	struct rows *r;
	const struct table_col *cols;
};

static int rows_fetch(struct table_batch *tb, int col, struct table_vec *out)
{
	struct gbatch *g = (struct gbatch *)tb;
	size_t base = (size_t)col * BATCH;
	memset(out, 0, sizeof(*out));
	if (g->cols[col].type == TT_STR) {
		out->s = g->r->s + base;
		out->slen = g->r->slen + base;
	} else {
		out->i = g->r->i + base;
	}
	out->null = g->r->null + base;
	return 0;
}

static int emit(struct rows *r, const struct table_col *cols, int (*fn)(void *, struct table_batch *),
		void *arg)
{
	if (!r->n)
		return 0;
	rows_finalize(r);
	struct gbatch g = {{r->n, 0, rows_fetch}, r, cols};
	int rc = fn(arg, &g.b);
	r->n = 0;
	r->strs.len = 0;
	return rc;
}

/* ------------------------------------------------------------------ kinds as symbols */

static const char *kind_sym(int nodes, int64_t id, uint32_t *len)
{
	const char *s = id <= 0 ? "" : nodes ? gstore_node_kind_name((int)id)
					       : gstore_edge_kind_name((int)id);
	*len = (uint32_t)strlen(s);
	return s;
}

static int64_t kind_find(int nodes, const char *s, size_t len)
{
	char name[64];
	if (len >= sizeof(name))
		return -1;
	memcpy(name, s, len);
	name[len] = '\0';
	int k = nodes ? gstore_node_kind_parse(name) : gstore_edge_kind_parse(name);
	return k < 0 ? -1 : k;
}

/* ------------------------------------------------------------------ nodes */

enum { NC_ID, NC_KIND, NC_PID, NC_TID, NC_HOST, NC_SERVICE, NC_TS, NC_END, NC_DUR, NC_WEIGHT,
       NC_ERROR, NC_TEXT, NC_COMM, NC_KEY, NC_LABELS, NC__N };

static const struct table_col node_cols[NC__N] = {
	[NC_ID] = {"id", TT_INT, TC_UNSIGNED, "node id"},
	[NC_KIND] = {"kind", TT_SYM, 0, "span, request, syscall, offcpu, reclaim, faults, tcp, "
					 "retransmit, process, symptom"},
	[NC_PID] = {"pid", TT_INT, 0, "process id"},
	[NC_TID] = {"tid", TT_INT, 0, "thread id"},
	[NC_HOST] = {"host", TT_INT, TC_UNSIGNED, "agent node id"},
	[NC_SERVICE] = {"service", TT_STR, 0, "service name"},
	[NC_TS] = {"ts", TT_INT, TC_TIME, "start, epoch ns"},
	[NC_END] = {"end", TT_INT, TC_TIME, "end, epoch ns"},
	[NC_DUR] = {"dur", TT_INT, 0, "end - start, ns"},
	[NC_WEIGHT] = {"weight", TT_INT, 0, "latency observed or explained, ns"},
	[NC_ERROR] = {"error", TT_INT, 0, "1 when the node failed"},
	[NC_TEXT] = {"text", TT_STR, 0, "what it is, in words"},
	[NC_COMM] = {"comm", TT_STR, 0, "process name"},
	[NC_KEY] = {"key", TT_STR, TC_NULLABLE, "symptoms: transaction, trace or conn key"},
	[NC_LABELS] = {"labels", TT_STR, 0, "every label, as a JSON object"},
};

static void labels_json(struct kp_buf *b, const struct gstore_node *n)
{
	buf_puts(b, "{");
	const char *p = n->labels, *end = n->labels ? n->labels + n->labels_len : NULL;
	int first = 1;
	while (p && p < end) {
		const char *k = p, *v = k + strlen(k) + 1;
		if (v >= end)
			break;
		if (!first)
			buf_puts(b, ",");
		json_cstr(b, k);
		buf_puts(b, ":");
		json_cstr(b, v);
		first = 0;
		p = v + strlen(v) + 1;
	}
	buf_puts(b, "}");
}

static void node_row(struct rows *r, const struct gstore_node *n)
{
	set_int(r, NC_ID, (int64_t)n->id);
	set_int(r, NC_KIND, n->kind);
	set_int(r, NC_PID, n->pid);
	set_int(r, NC_TID, n->tid);
	set_int(r, NC_HOST, (int64_t)n->host);
	set_str(r, NC_SERVICE, n->service ? n->service : "");
	set_int(r, NC_TS, (int64_t)n->start_ns);
	set_int(r, NC_END, (int64_t)n->end_ns);
	set_int(r, NC_DUR, (int64_t)(n->end_ns - n->start_ns));
	set_int(r, NC_WEIGHT, (int64_t)n->weight_ns);
	set_int(r, NC_ERROR, (n->flags & GN_F_ERROR) != 0);
	const char *t = gstore_node_label(n, "text"), *c = gstore_node_label(n, "comm");
	set_str(r, NC_TEXT, t ? t : "");
	set_str(r, NC_COMM, c ? c : "");
	set_str(r, NC_KEY, gstore_node_label(n, "key"));
	struct kp_buf lj = {0};
	labels_json(&lj, n);
	set_str(r, NC_LABELS, lj.data ? lj.data : "{}");
	buf_free(&lj);
	r->n++;
}

static const char *nodes_sym_str(void *ctx, int col, int64_t id, uint32_t *len)
{
	return kind_sym(1, id, len);
}

static int64_t nodes_sym_find(void *ctx, int col, const char *s, size_t len)
{
	return kind_find(1, s, len);
}

/* Scans nodes (only_kind: 0 = all), by time when the WHERE clause bounds ts. */
static int scan_nodes(struct gstore *g, const struct table_hints *h, int only_kind,
		      void (*row)(struct rows *, const struct gstore_node *), struct rows *r,
		      const struct table_col *cols, int (*fn)(void *, struct table_batch *),
		      void *arg, bool (*cancel)(void *), struct table_scan_stats *st)
{
	struct gstore_rtxn *rt;
	int rc = gstore_rbegin(g, &rt);
	if (rc < 0)
		return rc;
	struct gstore_scan sc;
	int by_time = h->ts_min > 0 || h->ts_max < UINT64_MAX;
	/* The age index orders by end time: a node that starts at or after ts_min ends after it. */
	rc = by_time ? gstore_scan_nodes_by_time(rt, h->ts_min, UINT64_MAX, &sc)
		     : gstore_scan_nodes(rt, 1, &sc);
	struct gstore_node n;
	uint64_t seen = 0;
	while (rc >= 0 && (rc = gstore_scan_node_next(&sc, &n)) == 1) {
		seen++;
		if ((seen & 1023) == 0 && cancel && cancel(arg)) {
			rc = -ECANCELED;
			break;
		}
		if (only_kind && n.kind != only_kind)
			continue;
		if (n.start_ns < h->ts_min || n.start_ns > h->ts_max)
			continue;
		if (h->npid > 0) {
			int ok = 0;
			for (int i = 0; i < h->npid && !ok; i++)
				ok = h->pid[i] == (int64_t)n.pid;
			if (!ok)
				continue;
		}
		row(r, &n);
		if (r->n == BATCH && (rc = emit(r, cols, fn, arg)) != 0)
			break;
	}
	if (rc >= 0)
		rc = emit(r, cols, fn, arg);
	if (st)
		st->rows_scanned += seen;
	gstore_rend(rt);
	return rc;
}

/* One thread: the graph is small beside the events; args[0] is the engine's batch arg. */
static int nodes_scan(void *ctx, const struct table_hints *h, int nworkers,
		      int (*fn)(void *arg, struct table_batch *b), void *const *args,
		      bool (*cancel)(void *arg), struct table_scan_stats *st)
{
	void *arg = args[0];
	struct rows r;
	rows_init(&r, NC__N);
	int rc = scan_nodes(ctx, h, 0, node_row, &r, node_cols, fn, arg, cancel, st);
	rows_free(&r);
	return rc;
}

static const struct table_ops nodes_table = {"nodes", node_cols, NC__N, nodes_sym_str,
					     nodes_sym_find, nodes_scan};

/* ------------------------------------------------------------------ spans */

enum { SC_TRACE, SC_SPAN, SC_TXN, SC_NAME, SC_SERVICE, SC_PID, SC_TID, SC_TS, SC_END, SC_DUR,
       SC_STATUS, SC_COMM, SC_HOST, SC_ID, SC__N };

static const struct table_col span_cols[SC__N] = {
	[SC_TRACE] = {"trace_id", TT_STR, 0, "trace id (hex)"},
	[SC_SPAN] = {"span_id", TT_STR, 0, "span id (hex)"},
	[SC_TXN] = {"txn", TT_STR, 0, "transaction id ('' when none)"},
	[SC_NAME] = {"name", TT_STR, 0, "span name"},
	[SC_SERVICE] = {"service", TT_STR, 0, "service.name"},
	[SC_PID] = {"pid", TT_INT, 0, "process.pid"},
	[SC_TID] = {"tid", TT_INT, 0, "thread.id (0 when absent)"},
	[SC_TS] = {"ts", TT_INT, TC_TIME, "start, epoch ns"},
	[SC_END] = {"end", TT_INT, TC_TIME, "end, epoch ns"},
	[SC_DUR] = {"dur", TT_INT, 0, "duration ns"},
	[SC_STATUS] = {"status", TT_STR, 0, "ok, error or unset"},
	[SC_COMM] = {"comm", TT_STR, 0, "process name"},
	[SC_HOST] = {"host", TT_INT, TC_UNSIGNED, "agent node id (0 when unknown)"},
	[SC_ID] = {"node_id", TT_INT, TC_UNSIGNED, "the span's node in the causal graph"},
};

static void span_row(struct rows *r, const struct gstore_node *n)
{
	const char *v;
	set_str(r, SC_TRACE, (v = gstore_node_label(n, "trace_id")) ? v : "");
	set_str(r, SC_SPAN, (v = gstore_node_label(n, "span_id")) ? v : "");
	set_str(r, SC_TXN, (v = gstore_node_label(n, "txn")) ? v : "");
	set_str(r, SC_NAME, (v = gstore_node_label(n, "name")) ? v : "");
	set_str(r, SC_SERVICE, n->service ? n->service : "");
	set_int(r, SC_PID, n->pid);
	set_int(r, SC_TID, n->tid);
	set_int(r, SC_TS, (int64_t)n->start_ns);
	set_int(r, SC_END, (int64_t)n->end_ns);
	set_int(r, SC_DUR, (int64_t)(n->end_ns - n->start_ns));
	set_str(r, SC_STATUS, (v = gstore_node_label(n, "status")) ? v : "");
	set_str(r, SC_COMM, (v = gstore_node_label(n, "comm")) ? v : "");
	set_int(r, SC_HOST, (int64_t)n->host);
	set_int(r, SC_ID, (int64_t)n->id);
	r->n++;
}

/* One thread: the graph is small beside the events; args[0] is the engine's batch arg. */
static int spans_scan(void *ctx, const struct table_hints *h, int nworkers,
		      int (*fn)(void *arg, struct table_batch *b), void *const *args,
		      bool (*cancel)(void *arg), struct table_scan_stats *st)
{
	void *arg = args[0];
	struct rows r;
	rows_init(&r, SC__N);
	int rc = scan_nodes(ctx, h, GN_SPAN, span_row, &r, span_cols, fn, arg, cancel, st);
	rows_free(&r);
	return rc;
}

static const char *no_sym(void *ctx, int col, int64_t id, uint32_t *len)
{
	*len = 0;
	return "";
}

static int64_t no_find(void *ctx, int col, const char *s, size_t len)
{
	return -1;
}

static const struct table_ops spans_table = {"spans", span_cols, SC__N, no_sym, no_find,
					     spans_scan};

/* ------------------------------------------------------------------ edges */

enum { EC_SRC, EC_DST, EC_KIND, EC_WEIGHT, EC_SRC_KIND, EC_DST_KIND, EC__N };

static const struct table_col edge_cols[EC__N] = {
	[EC_SRC] = {"src", TT_INT, TC_UNSIGNED, "cause node id"},
	[EC_DST] = {"dst", TT_INT, TC_UNSIGNED, "effect node id"},
	[EC_KIND] = {"kind", TT_SYM, 0, "child-of, contains, delayed-by, preempted-by, woken-by, "
					 "sent-to, memory-pressure-from, waited-on, symptom-of"},
	[EC_WEIGHT] = {"weight", TT_INT, 0, "latency explained, ns"},
	[EC_SRC_KIND] = {"src_kind", TT_STR, 0, "kind of the cause node"},
	[EC_DST_KIND] = {"dst_kind", TT_STR, 0, "kind of the effect node"},
};

static const char *edges_sym_str(void *ctx, int col, int64_t id, uint32_t *len)
{
	return kind_sym(0, id, len);
}

static int64_t edges_sym_find(void *ctx, int col, const char *s, size_t len)
{
	return kind_find(0, s, len);
}

/* One thread: the graph is small beside the events; args[0] is the engine's batch arg. */
static int edges_scan(void *ctx, const struct table_hints *h, int nworkers,
		      int (*fn)(void *arg, struct table_batch *b), void *const *args,
		      bool (*cancel)(void *arg), struct table_scan_stats *st)
{
	void *arg = args[0];
	struct gstore *g = ctx;
	struct gstore_rtxn *rt, *rk;
	int rc = gstore_rbegin(g, &rt);
	if (rc < 0)
		return rc;
	/* A second snapshot for node kinds: a scan borrows its handle's cursors. */
	rc = gstore_rbegin(g, &rk);
	if (rc < 0) {
		gstore_rend(rt);
		return rc;
	}
	struct rows r;
	rows_init(&r, EC__N);
	struct gstore_scan sc;
	rc = gstore_scan_edges(rt, 0, &sc);
	struct gstore_edge e;
	uint64_t seen = 0;
	while (rc >= 0 && (rc = gstore_scan_edge_next(&sc, &e)) == 1) {
		if ((++seen & 1023) == 0 && cancel && cancel(arg)) {
			rc = -ECANCELED;
			break;
		}
		struct gstore_node a, b;
		set_int(&r, EC_SRC, (int64_t)e.src);
		set_int(&r, EC_DST, (int64_t)e.dst);
		set_int(&r, EC_KIND, e.kind);
		set_int(&r, EC_WEIGHT, (int64_t)e.weight_ns);
		set_str(&r, EC_SRC_KIND,
			gstore_node_get(rk, e.src, &a) == 0 ? gstore_node_kind_name(a.kind) : "");
		set_str(&r, EC_DST_KIND,
			gstore_node_get(rk, e.dst, &b) == 0 ? gstore_node_kind_name(b.kind) : "");
		r.n++;
		if (r.n == BATCH && (rc = emit(&r, edge_cols, fn, arg)) != 0)
			break;
	}
	if (rc >= 0)
		rc = emit(&r, edge_cols, fn, arg);
	if (st)
		st->rows_scanned += seen;
	rows_free(&r);
	gstore_rend(rk);
	gstore_rend(rt);
	return rc;
}

static const struct table_ops edges_table = {"edges", edge_cols, EC__N, edges_sym_str,
					     edges_sym_find, edges_scan};

int graph_tables_register(struct store *st, struct gstore *g)
{
	int r = store_table_register(st, &spans_table, g);
	if (r == 0)
		r = store_table_register(st, &nodes_table, g);
	if (r == 0)
		r = store_table_register(st, &edges_table, g);
	return r;
}
