/*
 * txn.c - the store's transaction resolver (store_set_txn_resolver): which transaction and trace
 * an event belongs to, answered at query time so a span that arrives late (or hours late)
 * still tags the events it contains.
 *
 *   lookup  one event -> its innermost span (graph/correlate.h, the in-memory span index)
 *   ranges  a transaction or trace id -> the (node, pid, thread, time) ranges of its spans,
 *           from the causal graph, which keeps every analyzed span: a transaction's ranges
 *           are those of every span of the traces it appears in (a child span inherits its
 *           root's transaction, as correlate does)
 */
#include <string.h>

#include "appliance/internal.h"
#include "common/util.h"
#include "graph/correlate.h"
#include "graph/gstore.h"
#include "store/store.h"

#define END_SLACK_NS (1 * NSEC_PER_MSEC) /* as correlate's otlp.joinSlackUs default */

static void node_name(struct appliance *a, uint64_t node, char *out, size_t cap)
{
	out[0] = '\0';
	pthread_mutex_lock(&a->names_mu);
	uint64_t *v = hmap_get(&a->nodes, node, 0);
	if (v)
		snprintf(out, cap, "%s", a->node_names[*v]);
	pthread_mutex_unlock(&a->names_mu);
}

static int txn_lookup(void *ctx, uint64_t node, uint32_t pid, uint32_t tid, uint64_t ts,
		      uint64_t dur, char txn[STORE_TXN_MAX + 1], char trace[STORE_TRACE_HEX + 1])
{
	struct appliance *a = ctx;
	char name[64];
	node_name(a, node, name, sizeof(name));
	struct corr_tag tag;
	if (correlate_lookup(a->corr, name[0] ? name : NULL, pid, tid, ts, dur, &tag) != 1)
		return 0;
	snprintf(txn, STORE_TXN_MAX + 1, "%s", tag.txn);
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		trace[2 * i] = hx[tag.trace_id[i] >> 4];
		trace[2 * i + 1] = hx[tag.trace_id[i] & 15];
	}
	trace[STORE_TRACE_HEX] = '\0';
	return 1;
}

/* The span nodes under key (kind span only), into ids; returns how many. */
static size_t spans_of(struct gstore_rtxn *r, const char *key, uint64_t *ids, size_t cap)
{
	size_t n = 0, total = 0;
	uint64_t tmp[512];
	if (gstore_key_lookup(r, key, strlen(key), tmp, KP_ARRAY_SIZE(tmp), &total) < 0)
		return 0;
	for (size_t i = 0; i < KP_MIN(total, KP_ARRAY_SIZE(tmp)) && n < cap; i++) {
		struct gstore_node nd;
		if (gstore_node_get(r, tmp[i], &nd) == 0 && nd.kind == GN_SPAN)
			ids[n++] = tmp[i];
	}
	return n;
}

static int add_range(struct gstore_rtxn *r, uint64_t id, struct store_txn_range *out, int n,
		     int cap)
{
	struct gstore_node nd;
	if (n >= cap || gstore_node_get(r, id, &nd) < 0 || !nd.pid)
		return n;
	for (int i = 0; i < n; i++) /* the same span twice (a trace and its txn) */
		if (out[i].pid == nd.pid && out[i].tid == nd.tid && out[i].t0 == nd.start_ns &&
		    out[i].t1 == nd.end_ns + END_SLACK_NS)
			return n;
	out[n] = (struct store_txn_range){nd.host, nd.pid, nd.tid, nd.start_ns,
					  nd.end_ns + END_SLACK_NS};
	return n + 1;
}

static int txn_ranges(void *ctx, const char *key, size_t len, int is_trace,
		      struct store_txn_range *out, int cap)
{
	struct appliance *a = ctx;
	char k[GSTORE_KEY_MAX + 1];
	if (!len || len > GSTORE_KEY_MAX)
		return 0;
	memcpy(k, key, len);
	k[len] = '\0';
	struct gstore_rtxn *r;
	if (gstore_rbegin(a->graph, &r) < 0)
		return 0;
	uint64_t ids[512];
	size_t n = spans_of(r, k, ids, KP_ARRAY_SIZE(ids));
	int got = 0;
	if (is_trace) {
		for (size_t i = 0; i < n; i++)
			got = add_range(r, ids[i], out, got, cap);
	} else {
		/* The traces this transaction appears in; all of their spans carry it. */
		char traces[8][40];
		int nt = 0;
		for (size_t i = 0; i < n && got < cap; i++) {
			struct gstore_node nd;
			if (gstore_node_get(r, ids[i], &nd) < 0)
				continue;
			const char *tr = gstore_node_label(&nd, "trace_id");
			got = add_range(r, ids[i], out, got, cap);
			int seen = 0;
			for (int t = 0; t < nt && tr; t++)
				seen |= !strcmp(traces[t], tr);
			if (tr && !seen && nt < 8)
				snprintf(traces[nt++], sizeof(traces[0]), "%s", tr);
		}
		for (int t = 0; t < nt && got < cap; t++) {
			uint64_t tids[512];
			size_t m = spans_of(r, traces[t], tids, KP_ARRAY_SIZE(tids));
			for (size_t i = 0; i < m; i++)
				got = add_range(r, tids[i], out, got, cap);
		}
	}
	gstore_rend(r);
	return got;
}

const struct store_txn_resolver appliance_txn_resolver = {txn_lookup, txn_ranges};
