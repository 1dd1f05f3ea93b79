/*
 * sink.h - where the agent's events go: a small function table, so the pipeline does not care
 * whether events are printed (--stdout, agent/ndjson.c) or framed and shipped to kprobed
 * (agent/ship.c).
 *
 * The pipeline (agent/agent.c) converts every ring-buffer record into a kp_event whose ts_ns is
 * already Unix epoch ns, and passes it with the process metadata it knows (agent/meta.h) and,
 * for TCP events, the connection's 4-tuple when known. A sink copies what it keeps: pointers are
 * valid only during the call.
 */
#ifndef KP_SINK_H
#define KP_SINK_H

#include <stdint.h>

#include "agent/wire.h"

struct loop;

struct sink_ops {
	/*
	 * One event. proc: the process's metadata, or NULL when unknown; proc_fresh: 1 when the
	 * pipeline wants this metadata sent along (first sight, changed, or due for resending).
	 * conn: the 4-tuple of ev's connection when ev is a TCP/CONN event and it is known;
	 * conn_fresh as proc_fresh. Returns 0, or -errno (the pipeline counts it and goes on).
	 */
	int (*event)(void *ctx, const struct kp_event *ev, const struct wire_proc *proc,
		     int proc_fresh, const struct wire_conn *conn, int conn_fresh);
	/* Called every agent.batchMs: cut a partial batch whose oldest event is due. */
	void (*tick)(void *ctx, uint64_t now_mono_ns);
	/* Flush everything and stop; `drain_ms` bounds how long to wait for acks. */
	void (*close)(void *ctx, int drain_ms);
	/* Appends "key=value ..." counters for the periodic stats line. */
	void (*stats)(void *ctx, struct kp_buf *line);
	/* Optional (may be NULL): what a (pid, fd, inode) of a read/write/fsync refers to, sent
	 * once per file before the event that names it (for rules like "ledger write"). */
	void (*file)(void *ctx, const struct wire_file *f);
	/*
	 * Optional (may be NULL: the pipeline then does not load the capture probe): one replay
	 * capture record (bpf/capture.h, rec[0..len)) of a process selected by replay.capture.*,
	 * with clock_off = epoch ns - monotonic ns (the record keeps its monotonic times), and
	 * the process's metadata as for event. Returns 0 or -errno (counted).
	 */
	int (*capture)(void *ctx, const void *rec, uint32_t len, int64_t clock_off,
		       const struct wire_proc *proc, int proc_fresh);
};

struct sink {
	const struct sink_ops *ops;
	void *ctx;
};

#endif
