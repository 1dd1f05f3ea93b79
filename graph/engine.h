/*
 * engine.h - the causal engine: turns the stream of kernel events (from every agent) and
 * OpenTelemetry spans into causal nodes and edges in the LMDB graph (graph/gstore.h).
 *
 * What it infers (edges point cause -> effect, weight = latency explained, ns):
 *
 *   symptom   <-symptom-of-   span or request      a failed span, a request abandoned without
 *                                                   a response, a slow request, an I/O error
 *   span      <-child-of-     child span
 *   span      <-contains-     client request        the span's thread sent it inside the span
 *   client request <-waited-on- server request      matched on connection + TCP sequence, across
 *                                                   processes and nodes
 *   tcp send  -sent-to->      tcp receive           the message itself (weight: transit time)
 *   request/span <-contains-  slow syscall          the thread's read/write/fsync inside it
 *   syscall   <-delayed-by-   off-CPU / reclaim / fault burst, aggregated per culprit
 *   off-CPU   <-preempted-by- process               the task that held the CPU (preempted, or
 *                                                   the run-queue wait after a wake-up)
 *   reclaim   <-memory-pressure-from- process       the heaviest memory user in the same memory
 *                                                   cgroup during the stall
 *
 * Edges explaining less than engine.causalThresholdNs are not drawn (sent-to edges are: they
 * are the message link itself). The root cause is then gstore_rootcause() from the symptom.
 *
 * Threading: engine_submit_* may be called from any thread and never block for long (bounded
 * queue; past it, input is dropped and counted — the store still has every event). One engine
 * thread indexes what arrives and, every engine.windowMs, analyzes every item whose end is
 * older than engine.lateMs (so late events of the same moment have arrived) and writes the
 * result in one graph write transaction.
 */
#ifndef KP_ENGINE_H
#define KP_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "agent/wire.h"
#include "common/config.h"

struct gstore;
struct otlp_span;

struct engine;

/* Starts the engine thread writing into g (which must outlive the engine). 0 or -errno. */
int engine_open(const struct kp_config *cfg, struct gstore *g, struct engine **out);
/* Analyzes what is pending, commits, stops the thread and frees. */
void engine_close(struct engine *e);

/* A durable agent frame: events (epoch ts) and its metadata records (wire_meta_next). */
void engine_submit_frame(struct engine *e, uint64_t host, const struct kp_event *ev, uint32_t n,
			 const void *meta, size_t meta_len);
/* Decoded OTLP spans (copied). */
void engine_submit_spans(struct engine *e, const struct otlp_span *spans, size_t n);

/*
 * Waits until everything submitted before the call has been analyzed and committed, treating
 * it as old enough (tests and `kprobe demo` use it instead of sleeping past engine.lateMs).
 * Returns 0, or -ETIMEDOUT after timeout_ms.
 */
int engine_sync(struct engine *e, int timeout_ms);

struct engine_stats {
	uint64_t events, spans, frames;
	uint64_t dropped;            /* input dropped: queue full */
	uint64_t requests;           /* requests inferred from TCP exchanges */
	uint64_t matched;            /* ... matched to their peer on the other side */
	uint64_t analyzed;           /* items analyzed (spans, symptoms) */
	uint64_t symptoms, nodes, edges;
	uint64_t commits, commit_errors;
	uint64_t last_commit_ns;     /* CLOCK_REALTIME of the last commit */
};
void engine_stats(struct engine *e, struct engine_stats *st);

/*
 * Clock skew of host relative to the reference host (the first seen), estimated from matched
 * send -> receive pairs in both directions: subtract it from host's timestamps to align them.
 * Returns 0 and *offset_ns, or -ENOENT when no estimate exists yet.
 */
int engine_skew(struct engine *e, uint64_t host, int64_t *offset_ns, uint64_t *pairs);

#endif
