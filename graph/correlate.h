/*
 * correlate.h - joins kernel events to OpenTelemetry spans: which span (and so which trace and
 * transaction) a syscall, an off-CPU episode or a reclaim stall happened in.
 *
 * The rule. An event (pid, tid, ts, dur) belongs to span S when
 *   - S's process is the event's process: S.pid (resource process.pid) == pid, and, when both
 *     sides know it, S.host (k8s.node.name, else host.name) is the event's node;
 *   - S's thread is the event's thread when S says which (span attribute thread.id); a span
 *     without thread.id covers every thread of its process;
 *   - the event started inside S: S.start <= ts <= S.end;
 *   - and it ended inside S, give or take the slack: ts + dur <= S.end + end_slack.
 * When several spans qualify, the innermost wins: the latest start, then the shortest.
 *
 * Why the end gets a slack and the start none: a syscall issued inside a span was issued for
 * it, but the span's timestamps come from the application's clock and the event's from the
 * kernel's (through the agent's monotonic-to-epoch offset). The JS SDK for one takes a span's
 * start from Date.now() in whole milliseconds and its end from performance.now() relative to
 * that start, so its spans sit up to 1 ms early against the kernel clock: events near the end
 * overhang by up to that much, events near the start do not underhang. A slack at the start
 * would also hand a syscall at the very end of one span to the next sibling (latest start
 * wins). An event that outlives its span by more than the slack (a write flushed after the
 * request returned) is not that span's work: it falls to the next enclosing span, or none.
 *
 * The transaction of a span is its own transaction attribute (otlp_span.txn), else its nearest
 * ancestor's (walking parent ids through the spans indexed here), else the first one seen
 * anywhere in its trace: a "database write" child span carries no payment.id, its root does.
 *
 * Both arrival orders work. Events that arrive after their span: correlate_lookup finds the
 * span in the index. Spans that arrive after their events (exporters batch for seconds, and a
 * root span is exported last because it ends last): correlate_add_spans returns the ranges of
 * (pid, tid, start time) whose stored events may now have a different answer; the store
 * re-runs correlate_lookup on the events it holds there and updates their span, trace and
 * transaction columns. The ranges are a superset; the lookup is the authority.
 *
 * Memory is bounded: at most max_spans spans, and correlate_expire drops a span once retention
 * has passed since it ended, or since it arrived when it arrived later than it ended (so a span
 * delivered hours late is still joined to the events that come after it). When full, the span
 * that would expire first is evicted. Neither untags stored events; an event arriving later
 * than that finds nothing (it keeps whatever tag the store gave it).
 *
 * Thread safety: one internal read-write lock. correlate_lookup may run on many threads at
 * once; correlate_add_spans and correlate_expire take the lock exclusively.
 */
#ifndef KP_CORRELATE_H
#define KP_CORRELATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "graph/otlp.h"

#define CORR_TXN_MAX	 128 /* bytes of a transaction id kept (longer ones are cut, counted) */
#define CORR_PARENT_HOPS 64  /* ancestor hops when looking for a transaction id */

struct correlate;

struct corr_opts {
	uint64_t end_slack_ns; /* otlp.joinSlackUs */
	uint64_t retention_ns; /* otlp.spanRetentionSec */
	size_t max_spans;      /* otlp.spanIndexMax */
};

void correlate_opts_from_config(struct corr_opts *o, const struct kp_config *cfg);

/* What an event is tagged with. */
struct corr_tag {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint64_t start_ns, end_ns;  /* the span's interval */
	char txn[CORR_TXN_MAX + 1]; /* "" when the trace has none */
};

/* Re-evaluate stored events of pid (of thread tid; 0 = every thread) with t0 <= ts <= t1. */
struct corr_range {
	uint32_t pid, tid;
	uint64_t t0, t1;
};

/* A growing list of ranges, owned by the caller (zero it first; correlate_retag_free). */
struct corr_retag {
	struct corr_range *v;
	size_t n, cap;
};

struct corr_stats {
	uint64_t spans;	  /* in the index now */
	uint64_t traces;  /* traces with at least one span in the index */
	uint64_t added;	  /* spans ever added */
	uint64_t dups;	  /* spans received again (same trace and span id): ignored */
	uint64_t no_pid;  /* spans without process.pid: kept for ids and transactions only */
	uint64_t evicted; /* dropped to stay within max_spans */
	uint64_t expired; /* dropped by correlate_expire */
	uint64_t txn_cut; /* transaction ids longer than CORR_TXN_MAX */
	uint64_t lookups, hits;
};

/* Returns 0 and the index in *out, or -ENOMEM / -EINVAL (a zero max_spans). */
int correlate_new(const struct corr_opts *o, struct correlate **out);
void correlate_free(struct correlate *c);

/*
 * Indexes spans (a decoded batch; nothing in it is kept by reference) and appends to retag the
 * ranges whose stored events must be looked up again, merged and sorted by (pid, tid, t0).
 * now_ns is the appliance's clock (epoch ns; retention counts from max(end, now_ns)). Apply the
 * retag before the next correlate_expire. Returns 0 or -ENOMEM (the spans before the failure
 * are indexed, retag covers them).
 */
int correlate_add_spans(struct correlate *c, const struct otlp_span *spans, size_t n,
			uint64_t now_ns, struct corr_retag *retag);

/*
 * The span an event belongs to (the rule above). host: the event's node name, or NULL / "" when
 * unknown. Returns 1 with *out filled, 0 when no span qualifies.
 */
int correlate_lookup(struct correlate *c, const char *host, uint32_t pid, uint32_t tid, uint64_t ts,
		     uint64_t dur, struct corr_tag *out);

/* Drops spans whose max(end, arrival) is before now_ns - retention. Returns how many. */
size_t correlate_expire(struct correlate *c, uint64_t now_ns);

void correlate_stats(struct correlate *c, struct corr_stats *st);

void correlate_retag_free(struct corr_retag *r);

#endif
