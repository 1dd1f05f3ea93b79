/*
 * Tests graph/correlate.c: the join rule on hand-built cases (nesting, threads, siblings, the
 * end slack, clock edges), transactions inherited through parents and orphans, late spans and
 * the retag ranges, hosts, duplicates, eviction and expiry; then a randomized check against a
 * naive model: every lookup matches a brute-force scan, and every stored event whose answer
 * changes when spans arrive lies inside a range correlate_add_spans returned.
 */
#include <pthread.h>
#include <stdlib.h>

#include "graph/correlate.h"
#include "tests/test.h"

#define SLACK 1000 /* ns, in these tests */

static struct correlate *mk(size_t max_spans)
{
	struct corr_opts o = {
		.end_slack_ns = SLACK, .retention_ns = 1000000, .max_spans = max_spans};
	struct correlate *c;
	CHECK_EQ_INT(correlate_new(&o, &c), 0);
	return c;
}

/* A span in trace t (1 byte of id), id s, parent p (0 = root). */
static struct otlp_span sp(int t, int s, int p, uint32_t pid, uint32_t tid, uint64_t start,
			   uint64_t end, const char *txn)
{
	struct otlp_span x;
	memset(&x, 0, sizeof(x));
	x.trace_id[0] = (uint8_t)t;
	x.trace_id[15] = 0x77;
	x.span_id[0] = (uint8_t)s;
	x.span_id[7] = 0x55;
	if (p) {
		x.parent_id[0] = (uint8_t)p;
		x.parent_id[7] = 0x55;
	}
	x.pid = pid;
	x.tid = tid;
	x.start_ns = start;
	x.end_ns = end;
	x.txn = txn ? txn : "";
	x.host = "";
	x.name = "";
	x.service = "";
	return x;
}

static void add1(struct correlate *c, struct otlp_span s, struct corr_retag *rt)
{
	CHECK_EQ_INT(correlate_add_spans(c, &s, 1, 0, rt), 0);
}

/* The span id byte an event joins (0 = none) and its transaction. */
static int who(struct correlate *c, uint32_t pid, uint32_t tid, uint64_t ts, uint64_t dur,
	       char *txn)
{
	struct corr_tag t;
	if (!correlate_lookup(c, NULL, pid, tid, ts, dur, &t))
		return 0;
	if (txn)
		strcpy(txn, t.txn);
	return t.span_id[0];
}

TEST(correlate_nesting)
{
	struct correlate *c = mk(1024);
	struct corr_retag rt = {0};
	add1(c, sp(1, 1, 0, 100, 0, 1000, 2000, "req-1"), &rt);
	add1(c, sp(1, 2, 1, 100, 0, 1100, 1500, NULL), &rt);
	add1(c, sp(1, 3, 2, 100, 0, 1200, 1300, NULL), &rt);
	char txn[200];
	CHECK_EQ_INT(who(c, 100, 7, 1250, 10, txn), 3);
	CHECK_EQ_STR(txn, "req-1"); /* inherited through two parents */
	CHECK_EQ_INT(who(c, 100, 7, 1150, 10, NULL), 2);
	CHECK_EQ_INT(who(c, 100, 7, 1600, 10, NULL), 1);
	CHECK_EQ_INT(who(c, 100, 7, 1250, 1100, NULL), 2); /* outlives 3 beyond the slack */
	CHECK_EQ_INT(who(c, 100, 7, 999, 10, NULL), 0);	   /* starts before every span */
	CHECK_EQ_INT(who(c, 100, 7, 2001, 0, NULL), 0);
	CHECK_EQ_INT(who(c, 101, 7, 1250, 10, NULL), 0); /* another process */
	CHECK_EQ_INT(who(c, 0, 7, 1250, 10, NULL), 0);
	correlate_retag_free(&rt);
	correlate_free(c);
}

TEST(correlate_threads)
{
	struct correlate *c = mk(1024);
	struct corr_retag rt = {0};
	add1(c, sp(1, 1, 0, 100, 0, 0 + 1000, 10000, NULL), &rt); /* no thread.id: all threads */
	add1(c, sp(1, 2, 1, 100, 5, 2000, 3000, NULL), &rt);	  /* thread 5 */
	add1(c, sp(1, 3, 1, 100, 6, 2000, 3000, NULL), &rt);	  /* thread 6, same interval */
	CHECK_EQ_INT(who(c, 100, 5, 2500, 1, NULL), 2);
	CHECK_EQ_INT(who(c, 100, 6, 2500, 1, NULL), 3);
	CHECK_EQ_INT(who(c, 100, 7, 2500, 1, NULL), 1); /* a thread no child span names */
	correlate_retag_free(&rt);
	correlate_free(c);
}

TEST(correlate_edges)
{
	struct correlate *c = mk(1024);
	struct corr_retag rt = {0};
	add1(c, sp(1, 1, 0, 100, 0, 1000, 100000, NULL), &rt);
	add1(c, sp(1, 2, 1, 100, 0, 2000, 3000, NULL), &rt); /* siblings touching at 3000 */
	add1(c, sp(1, 3, 1, 100, 0, 3000, 4000, NULL), &rt);
	add1(c, sp(1, 4, 1, 100, 0, 5000, 5000, NULL), &rt); /* zero length */
	add1(c, sp(1, 5, 1, 100, 0, 1000, 1500, NULL), &rt); /* same start as the root */
	/* inclusive bounds */
	CHECK_EQ_INT(who(c, 100, 1, 2000, 0, NULL), 2);
	CHECK_EQ_INT(who(c, 100, 1, 3000, 0, NULL), 3);	  /* at the boundary the later start wins */
	CHECK_EQ_INT(who(c, 100, 1, 2999, 900, NULL), 2); /* overhangs 899 ns: within the slack */
	CHECK_EQ_INT(who(c, 100, 1, 2999, SLACK + 2, NULL), 1); /* overhangs 1001: the root's */
	CHECK_EQ_INT(who(c, 100, 1, 2500, 1500, NULL), 2);	/* ends exactly at end + slack */
	CHECK_EQ_INT(who(c, 100, 1, 5000, 0, NULL), 4);
	CHECK_EQ_INT(who(c, 100, 1, 5000, SLACK, NULL), 4);
	CHECK_EQ_INT(who(c, 100, 1, 1000, 10, NULL), 5); /* same start: the shorter */
	/* overflow: a huge duration saturates, an event at the end of time matches nothing */
	CHECK_EQ_INT(who(c, 100, 1, 2500, UINT64_MAX, NULL), 0);
	CHECK_EQ_INT(who(c, 100, 1, UINT64_MAX, 5, NULL), 0);
	CHECK_EQ_INT(who(c, 100, 1, 0, 0, NULL), 0);
	/* a span ending at the end of time */
	add1(c, sp(2, 1, 0, 200, 0, UINT64_MAX - 10, UINT64_MAX, NULL), &rt);
	CHECK_EQ_INT(who(c, 200, 1, UINT64_MAX - 5, 100, NULL), 1);
	correlate_retag_free(&rt);
	correlate_free(c);
}

TEST(correlate_hosts)
{
	struct correlate *c = mk(1024);
	struct corr_retag rt = {0};
	struct otlp_span a = sp(1, 1, 0, 100, 0, 1000, 2000, NULL);
	a.host = "node-a";
	struct otlp_attr ra = {"k8s.node.name", "node-k", 6, OTLP_V_STR};
	struct otlp_span b = sp(2, 1, 0, 100, 0, 1000, 2000, NULL);
	b.host = "pod-7f9c"; /* in Kubernetes host.name is the pod; k8s.node.name wins */
	b.res_attrs = &ra;
	b.n_res_attrs = 1;
	add1(c, a, &rt);
	add1(c, b, &rt);
	struct corr_tag t;
	CHECK_EQ_INT(correlate_lookup(c, "node-a", 100, 1, 1500, 0, &t), 1);
	CHECK_EQ_INT(t.trace_id[0], 1);
	CHECK_EQ_INT(correlate_lookup(c, "node-k", 100, 1, 1500, 0, &t), 1);
	CHECK_EQ_INT(t.trace_id[0], 2);
	CHECK_EQ_INT(correlate_lookup(c, "node-z", 100, 1, 1500, 0, &t), 0);
	CHECK_EQ_INT(correlate_lookup(c, NULL, 100, 1, 1500, 0, &t), 1); /* host unknown */
	correlate_retag_free(&rt);
	correlate_free(c);
}

/* Children first, the root (with the transaction) last: as exporters deliver them. */
TEST(correlate_late_root)
{
	struct correlate *c = mk(1024);
	struct corr_retag rt = {0};
	char txn[200];
	add1(c, sp(1, 3, 2, 100, 7, 1200, 1300, NULL), &rt); /* grandchild: an orphan */
	CHECK_EQ_INT(rt.n, 1);
	CHECK(rt.v[0].pid == 100 && rt.v[0].tid == 7 && rt.v[0].t0 == 1200 && rt.v[0].t1 == 1300);
	CHECK_EQ_INT(who(c, 100, 7, 1250, 1, txn), 3);
	CHECK_EQ_STR(txn, "");
	correlate_retag_free(&rt);

	add1(c, sp(1, 2, 1, 100, 0, 1100, 1500, NULL), &rt); /* its parent, no txn: nothing new */
	CHECK_EQ_INT(rt.n, 1);
	CHECK(rt.v[0].tid == 0 && rt.v[0].t0 == 1100 && rt.v[0].t1 == 1500);
	correlate_retag_free(&rt);

	/* Another process's span of the same trace, and then the root with the transaction. */
	add1(c, sp(1, 9, 2, 200, 0, 1400, 1450, NULL), &rt);
	correlate_retag_free(&rt);
	add1(c, sp(1, 1, 0, 100, 0, 1000, 2000, "req-9f21"), &rt);
	/* The whole trace is re-tagged: the root's range (covering pid 100's spans) and pid 200's.
	 */
	CHECK_EQ_INT(rt.n, 3);
	CHECK(rt.v[0].pid == 100 && rt.v[0].tid == 0 && rt.v[0].t0 == 1000 && rt.v[0].t1 == 2000);
	CHECK(rt.v[1].pid == 100 && rt.v[1].tid == 7 && rt.v[1].t0 == 1200 && rt.v[1].t1 == 1300);
	CHECK(rt.v[2].pid == 200 && rt.v[2].t0 == 1400 && rt.v[2].t1 == 1450);
	CHECK_EQ_INT(who(c, 100, 7, 1250, 1, txn), 3);
	CHECK_EQ_STR(txn, "req-9f21");
	CHECK_EQ_INT(who(c, 200, 1, 1420, 1, txn), 9);
	CHECK_EQ_STR(txn, "req-9f21");
	correlate_retag_free(&rt);

	struct corr_stats st;
	correlate_stats(c, &st);
	CHECK_EQ_INT(st.spans, 4);
	CHECK_EQ_INT(st.traces, 1);
	correlate_free(c);
}

/* A batch job: one trace, one transaction per item span; children inherit their item's. */
TEST(correlate_txn_per_subtree)
{
	struct correlate *c = mk(1024);
	struct corr_retag rt = {0};
	char txn[200];
	add1(c, sp(5, 1, 0, 100, 0, 0 + 10, 100000, NULL), &rt);
	add1(c, sp(5, 2, 1, 100, 0, 1000, 2000, "pay-1"), &rt);
	add1(c, sp(5, 4, 3, 100, 0, 3100, 3200, NULL), &rt); /* child of item 2, which is late */
	CHECK_EQ_INT(who(c, 100, 1, 3150, 1, txn), 4);
	CHECK_EQ_STR(txn, "pay-1"); /* for now: the trace's first transaction */
	correlate_retag_free(&rt);
	add1(c, sp(5, 3, 1, 100, 0, 3000, 4000, "pay-2"), &rt);
	/* item 2 adopted its child, whose transaction changed: both ranges, merged */
	CHECK_EQ_INT(rt.n, 1);
	CHECK(rt.v[0].t0 == 3000 && rt.v[0].t1 == 4000);
	CHECK_EQ_INT(who(c, 100, 1, 3150, 1, txn), 4);
	CHECK_EQ_STR(txn, "pay-2");
	CHECK_EQ_INT(who(c, 100, 1, 1500, 1, txn), 2);
	CHECK_EQ_STR(txn, "pay-1");
	CHECK_EQ_INT(who(c, 100, 1, 50, 1, txn), 1);
	CHECK_EQ_STR(txn, "pay-1"); /* the root has none: the trace's first */
	correlate_retag_free(&rt);
	correlate_free(c);
}

TEST(correlate_dups_and_no_pid)
{
	struct correlate *c = mk(1024);
	struct corr_retag rt = {0};
	char txn[200];
	/* a root from a process that reports no pid (a browser, a gateway) brings the txn */
	add1(c, sp(1, 1, 0, 0, 0, 1000, 2000, "T"), &rt);
	CHECK_EQ_INT(rt.n, 0); /* no events can join it */
	add1(c, sp(1, 2, 1, 100, 0, 1100, 1200, NULL), &rt);
	add1(c, sp(1, 2, 1, 100, 0, 1100, 1200, NULL), &rt); /* a retried export */
	CHECK_EQ_INT(rt.n, 1);
	CHECK_EQ_INT(who(c, 100, 3, 1150, 0, txn), 2);
	CHECK_EQ_STR(txn, "T");
	struct corr_stats st;
	correlate_stats(c, &st);
	CHECK_EQ_INT(st.dups, 1);
	CHECK_EQ_INT(st.no_pid, 1);
	CHECK_EQ_INT(st.spans, 2);
	/* a long transaction id is cut and counted */
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	add1(c, sp(2, 1, 0, 300, 0, 1, 2, big), &rt);
	CHECK_EQ_INT(who(c, 300, 3, 1, 0, txn), 1);
	CHECK_EQ_INT(strlen(txn), CORR_TXN_MAX);
	correlate_stats(c, &st);
	CHECK_EQ_INT(st.txn_cut, 1);
	correlate_retag_free(&rt);
	correlate_free(c);
}

TEST(correlate_bounded)
{
	struct correlate *c = mk(1024);
	struct corr_retag rt = {0};
	/* 1100 spans: the 76 that end first are evicted */
	for (int i = 0; i < 1100; i++) {
		struct otlp_span s = sp(1 + i % 200, 1 + i / 200, 0, 100, 0, 1000000 + 10 * i,
					1000000 + 10 * i + 5, NULL);
		add1(c, s, &rt);
	}
	struct corr_stats st;
	correlate_stats(c, &st);
	CHECK_EQ_INT(st.spans, 1024);
	CHECK_EQ_INT(st.evicted, 76);
	CHECK_EQ_INT(who(c, 100, 1, 1000000 + 10 * 75, 0, NULL), 0);
	CHECK(who(c, 100, 1, 1000000 + 10 * 76, 0, NULL) != 0);
	/* expiry: retention is 1 ms here; spans ending before now - 1 ms go */
	size_t gone = correlate_expire(c, 1000000 + 10 * 600 + 5 + 1000000);
	CHECK_EQ_INT(gone, 600 - 76);
	CHECK_EQ_INT(who(c, 100, 1, 1000000 + 10 * 599, 0, NULL), 0);
	CHECK(who(c, 100, 1, 1000000 + 10 * 600, 0, NULL) != 0);
	CHECK_EQ_INT(correlate_expire(c, UINT64_MAX), 500);
	correlate_stats(c, &st);
	CHECK_EQ_INT(st.spans, 0);
	CHECK_EQ_INT(st.traces, 0);
	CHECK_EQ_INT(correlate_expire(c, 5), 0); /* before the retention: nothing, no underflow */

	/* A span delivered late keeps its full retention from its arrival. */
	struct otlp_span late = sp(9, 1, 0, 100, 0, 5000, 6000, NULL);
	CHECK_EQ_INT(correlate_add_spans(c, &late, 1, 50000000, &rt), 0);
	add1(c, sp(9, 2, 0, 100, 0, 7000, 8000, NULL), &rt);	 /* arrived in time */
	CHECK_EQ_INT(correlate_expire(c, 50000000 + 999999), 1); /* the punctual one goes */
	CHECK_EQ_INT(who(c, 100, 1, 5500, 0, NULL), 1);
	CHECK_EQ_INT(correlate_expire(c, 50000000 + 1000001), 1);
	CHECK_EQ_INT(who(c, 100, 1, 5500, 0, NULL), 0);
	correlate_retag_free(&rt);
	correlate_free(c);
}

/* ---------------------------------------------------------------- against a naive model */

struct mspan {
	struct otlp_span s;
	uint64_t seq;
	bool live;
	char txn[16];
};

struct mevent {
	uint32_t pid, tid;
	uint64_t ts, dur;
	int span; /* model answer: index into spans, -1 none */
	char txn[16];
};

static uint64_t rnd_state;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static int m_find(struct mspan *v, int n, const uint8_t *t, const uint8_t *s)
{
	for (int i = 0; i < n; i++)
		if (v[i].live && !memcmp(v[i].s.trace_id, t, 16) && !memcmp(v[i].s.span_id, s, 8))
			return i;
	return -1;
}

static const char *m_txn(struct mspan *v, int n, int i)
{
	static const uint8_t z[8];
	int x = i;
	for (int hop = 0; x >= 0 && hop <= CORR_PARENT_HOPS; hop++) {
		if (v[x].txn[0])
			return v[x].txn;
		if (!memcmp(v[x].s.parent_id, z, 8))
			break;
		x = m_find(v, n, v[x].s.trace_id, v[x].s.parent_id);
	}
	/* the first transaction seen in the trace, among live spans */
	const char *first = "";
	uint64_t best = UINT64_MAX;
	for (int k = 0; k < n; k++)
		if (v[k].live && v[k].txn[0] && !memcmp(v[k].s.trace_id, v[i].s.trace_id, 16) &&
		    v[k].seq < best)
			best = v[k].seq, first = v[k].txn;
	return first;
}

static int m_lookup(struct mspan *v, int n, const struct mevent *e)
{
	int best = -1;
	uint64_t end = e->ts + e->dur;
	for (int i = 0; i < n; i++) {
		const struct otlp_span *s = &v[i].s;
		if (!v[i].live || !s->pid || s->pid != e->pid || (s->tid && s->tid != e->tid))
			continue;
		if (s->start_ns > e->ts || s->end_ns < e->ts || end > s->end_ns + SLACK)
			continue;
		if (best < 0 || s->start_ns > v[best].s.start_ns ||
		    (s->start_ns == v[best].s.start_ns &&
		     (s->end_ns < v[best].s.end_ns ||
		      (s->end_ns == v[best].s.end_ns && v[i].seq > v[best].seq))))
			best = i;
	}
	return best;
}

static bool in_ranges(const struct corr_retag *rt, const struct mevent *e)
{
	for (size_t i = 0; i < rt->n; i++) {
		const struct corr_range *r = &rt->v[i];
		if (r->pid == e->pid && (r->tid == 0 || r->tid == e->tid) && r->t0 <= e->ts &&
		    e->ts <= r->t1)
			return true;
	}
	return false;
}

TEST_SLOW(correlate_random_vs_model, 120)
{
	enum { NSPANS = 1000, NEV = 300, ROUNDS = 5 };
	for (int round = 0; round < ROUNDS; round++) {
		rnd_state = 0x1234567ull + (uint64_t)round * 7919;
		struct correlate *c = mk(NSPANS + 10);
		struct mspan *v = xcalloc(NSPANS, sizeof(*v));
		struct mevent *ev = xcalloc(NEV, sizeof(*ev));
		/* the events "stored" before any span arrives */
		for (int i = 0; i < NEV; i++) {
			ev[i].pid = 1 + (uint32_t)(rnd() % 3);
			ev[i].tid = (uint32_t)(rnd() % 4);
			ev[i].ts = rnd() % 100000;
			ev[i].dur = rnd() % 4 == 0 ? 0 : rnd() % 3000;
			ev[i].span = -1;
			ev[i].txn[0] = '\0';
		}
		int n = 0;
		while (n < NSPANS) {
			/* a batch of 1..8 spans */
			int b = 1 + (int)(rnd() % 8);
			struct otlp_span batch[8];
			int nb = 0;
			for (int k = 0; k < b && n < NSPANS; k++, n++) {
				struct mspan *m = &v[n];
				/* spans come in blocks of 32 per trace; parents are drawn from the
				 * block, so they arrive before, after (orphans), or are the span
				 * itself (a broken exporter) */
				int trace = 1 + n / 32;
				m->s.trace_id[0] = (uint8_t)trace;
				m->s.trace_id[1] = (uint8_t)round;
				m->s.span_id[0] = (uint8_t)(n & 0xff);
				m->s.span_id[1] = (uint8_t)(n >> 8);
				m->s.span_id[2] = 1;
				/* parent: none, a random earlier or later span id of the same trace
				 */
				if (rnd() % 4) {
					int p = (n / 32) * 32 + (int)(rnd() % 32);
					m->s.parent_id[0] = (uint8_t)(p & 0xff);
					m->s.parent_id[1] = (uint8_t)(p >> 8);
					m->s.parent_id[2] = 1;
				}
				m->s.pid = (uint32_t)(rnd() % 4); /* 0: no pid */
				m->s.tid = rnd() % 3 == 0 ? (uint32_t)(rnd() % 4) : 0;
				m->s.start_ns = rnd() % 100000;
				m->s.end_ns =
					m->s.start_ns + (rnd() % 2 ? rnd() % 500 : rnd() % 20000);
				if (rnd() % 5 == 0)
					snprintf(m->txn, sizeof(m->txn), "T%d", n);
				m->s.txn = m->txn;
				m->s.host = "";
				m->seq = (uint64_t)n + 1;
				m->live = true;
				/* a duplicate of an earlier span now and then: ignored */
				if (rnd() % 50 == 0 && n > 0) {
					int d = (int)(rnd() % (uint64_t)n);
					*m = v[d];
					m->live = false;
					m->s.txn = m->txn;
				}
				batch[nb++] = m->s;
			}
			struct corr_retag rt = {0};
			CHECK_EQ_INT(correlate_add_spans(c, batch, (size_t)nb, 0, &rt), 0);
			/* every stored event: the lookup agrees with the model, and if its answer
			 * changed, it lies in a returned range */
			for (int i = 0; i < NEV; i++) {
				struct mevent *e = &ev[i];
				int want = m_lookup(v, n, e);
				const char *wtxn = want >= 0 ? m_txn(v, n, want) : "";
				struct corr_tag t;
				int got = correlate_lookup(c, NULL, e->pid, e->tid, e->ts, e->dur,
							   &t);
				CHECKF(got == (want >= 0), "round %d n %d event %d: got %d want %d",
				       round, n, i, got, want);
				if (want >= 0) {
					CHECKF(!memcmp(t.span_id, v[want].s.span_id, 8) &&
						       !memcmp(t.trace_id, v[want].s.trace_id, 16),
					       "round %d event %d: wrong span", round, i);
					CHECKF(!strcmp(t.txn, wtxn),
					       "round %d event %d: txn '%s' want '%s'", round, i,
					       t.txn, wtxn);
				}
				if (want != e->span || strcmp(wtxn, e->txn))
					CHECKF(in_ranges(&rt, e),
					       "round %d n %d event %d changed (%d -> %d, '%s' -> "
					       "'%s') "
					       "outside the retag ranges",
					       round, n, i, e->span, want, e->txn, wtxn);
				e->span = want;
				snprintf(e->txn, sizeof(e->txn), "%s", wtxn);
			}
			/* the ranges come sorted and merged */
			for (size_t i = 1; i < rt.n; i++) {
				const struct corr_range *a = &rt.v[i - 1], *b = &rt.v[i];
				CHECK(a->pid < b->pid || (a->pid == b->pid && a->tid < b->tid) ||
				      (a->pid == b->pid && a->tid == b->tid && a->t1 + 1 < b->t0));
			}
			correlate_retag_free(&rt);
		}
		struct corr_stats st;
		correlate_stats(c, &st);
		int live = 0;
		for (int i = 0; i < NSPANS; i++)
			live += v[i].live;
		CHECK_EQ_INT(st.spans, live);
		CHECK_EQ_INT(st.dups, NSPANS - live);
		correlate_free(c);
		free(v);
		free(ev);
	}
}

/* Lookups from several threads while spans arrive and expire (run it under TSan too). */
static struct correlate *mt_c;
static int mt_stop; /* atomic */

static void *mt_reader(void *arg)
{
	(void)arg;
	uint64_t x = 99;
	while (!__atomic_load_n(&mt_stop, __ATOMIC_RELAXED)) {
		struct corr_tag t;
		x = x * 6364136223846793005ull + 1;
		correlate_lookup(mt_c, NULL, 100, (uint32_t)(x >> 60), (x >> 20) % 2000000, 10, &t);
	}
	return NULL;
}

TEST(correlate_threads_concurrent)
{
	mt_c = mk(4096);
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		CHECK(pthread_create(&th[i], NULL, mt_reader, NULL) == 0);
	for (int i = 0; i < 20000; i++) {
		struct corr_retag rt = {0};
		struct otlp_span s =
			sp(1 + i % 250, 1 + i / 250, i % 3 ? 1 + (i + 1) / 250 : 0, 100,
			   (uint32_t)(i % 4), (uint64_t)i * 100, (uint64_t)i * 100 + 5000, "t");
		CHECK_EQ_INT(correlate_add_spans(mt_c, &s, 1, (uint64_t)i * 100, &rt), 0);
		correlate_retag_free(&rt);
		if (i % 1000 == 0)
			correlate_expire(mt_c, (uint64_t)i * 100);
	}
	__atomic_store_n(&mt_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	struct corr_stats st;
	correlate_stats(mt_c, &st);
	CHECK_GT_INT(st.lookups, 0);
	CHECK_LE_INT(st.spans, 4096);
	correlate_free(mt_c);
}
