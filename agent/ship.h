/*
 * ship.h - the shipping sink (struct sink_ops, agent/sink.h): batches events into frames
 * (agent/wire.h), sends them to kprobed over one TCP connection driven by the agent's io_uring
 * loop (agent/loop.h), and forgets a frame only once kprobed has acknowledged it.
 *
 *  - Batching: a frame is cut at agent.batchEvents events, when its oldest event is
 *    agent.batchMs old (the pipeline's tick), or when its metadata grows large. Process and
 *    connection metadata ride in the frame of the event that brought them (when the pipeline
 *    marks them fresh); node metadata (agent.nodeName or the host name, kernel release) is in
 *    every frame. Frames are LZ4-compressed and XXH3-checksummed (wire_frame_encode).
 *    Replay capture records (replay.capture.*) ride as WIRE_META_CAPTURE metadata; a frame may
 *    carry only those, and is then cut by age like any other.
 *  - Identity: node_id = XXH3(/etc/machine-id, node name), stable across restarts. Frame seqs
 *    increase strictly, across restarts too: they start above both the realtime clock in µs
 *    and a bound reserved in the spool directory.
 *  - Unacked frames wait in memory up to agent.memoryQueueMb, then in the disk spool
 *    (agent/spool.h, agent.spoolDir, bounded by agent.spoolMaxMb: the oldest spooled frames
 *    are dropped, counted and logged). Frames go out in seq order: what was spooled before a
 *    restart first. A frame kprobed rejects (WIRE_ACK_BAD) is dropped and counted.
 *  - Connection: reconnects with exponential backoff (50 ms doubling to agent.reconnectMaxMs,
 *    with jitter), resending every unacknowledged frame in order; kprobed answers resends it
 *    already holds with WIRE_ACK_DUP.
 *  - close(drain_ms) cuts the last batch, waits up to drain_ms for acks, then writes whatever is
 *    still unacknowledged to the spool: stopping the agent loses nothing it produced. A killed
 *    agent loses its in-memory queue (at most agent.memoryQueueMb) and the current batch.
 *
 * Everything runs on the loop's thread; the pipeline must not call the sink from another one,
 * and must stop feeding it before close. The loop must outlive the sink.
 */
#ifndef KP_SHIP_H
#define KP_SHIP_H

#include <stdint.h>

#include "agent/sink.h"
#include "common/config.h"

struct loop;

/*
 * Opens the sink: computes the node identity, opens (and takes the lock of) the spool, and
 * starts connecting to agent.appliance. Frames found in the spool are sent first. Returns 0,
 * or -errno with the reason logged (-EBUSY: another agent uses agent.spoolDir; -EINVAL: bad
 * agent.appliance).
 */
int ship_sink_open(const struct kp_config *cfg, struct loop *loop, struct sink *out);

enum ship_link { SHIP_LINK_DOWN, SHIP_LINK_CONNECTING, SHIP_LINK_UP, SHIP_LINK_CLOSING };

struct ship_stats {
	uint64_t events_in, frames_cut;	   /* events taken, frames built from them */
	uint64_t captures_in, capture_bytes_in; /* replay capture records taken */
	uint64_t frames_sent, events_sent; /* sends (resends included) */
	uint64_t bytes_sent;
	uint64_t frames_acked, events_acked, dups; /* dups: acked as WIRE_ACK_DUP */
	uint64_t frames_rejected;		   /* WIRE_ACK_BAD: dropped */
	uint64_t batch_events;			   /* in the batch being built */
	uint64_t mem_frames, mem_bytes;		   /* unacked, in memory */
	uint64_t spool_frames, spool_bytes; /* unacked, on disk (spool_bytes: size of its files) */
	uint64_t spool_unread;		    /* spooled frames not yet loaded for sending */
	uint64_t dropped_frames, dropped_events; /* lost to the spool bound or spool errors */
	uint64_t reconnects, connect_failures;
	enum ship_link link;
	uint64_t node_id, next_seq;
};

/* Counters of a sink opened by ship_sink_open. */
void ship_sink_stats(const struct sink *s, struct ship_stats *out);

/* 1 when every event taken has been acknowledged (batch, memory queue and spool empty). */
int ship_sink_idle(const struct sink *s);

/* The node id this agent ships under (for tests and logs). */
uint64_t ship_node_id(const char *node_name);

#endif
