/*
 * agent.h - the agent's pipeline: ring buffer -> clock conversion -> metadata -> sink.
 *
 * agent_run loads the probe (agent/probe.h), then runs one io_uring loop (agent/loop.h) on the
 * calling thread: it drains the ring buffer when the kernel side wakes it and every
 * PROBE_DRAIN_INTERVAL_MS, rewrites each record's CLOCK_MONOTONIC timestamp to Unix epoch ns
 * (offset re-sampled every second), splits CONN records into an event and connection metadata,
 * looks up process metadata (agent/meta.h) and calls sink->ops->event; sink->ops->tick every
 * agent.batchMs; one stats line every agent.statsSec. It stops on SIGINT / SIGTERM or after
 * opts->duration_ns, drains what is left, and calls sink->ops->close.
 */
#ifndef KP_AGENT_H
#define KP_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "agent/sink.h"
#include "common/config.h"

struct agent_opts {
	uint64_t duration_ns; /* 0 = until SIGINT / SIGTERM */
	const uint32_t *pids; /* added to probe.filter.pids (--pid) */
	size_t npids;
	const char *const *comms; /* added to probe.filter.comms (--comm) */
	size_t ncomms;
	int drain_ms; /* passed to sink->ops->close; 0 = 5000 */
	/* The loop to run on (the shipping sink was opened on it); NULL: agent_run makes its own.
	 * A caller's loop outlives agent_run: the sink is closed (and may drain on it) first. */
	struct loop *loop;
	const char *ready_file; /* created once the probe is attached (for supervisors); NULL */
};

/*
 * Runs the agent until it is told to stop. The sink is closed before returning, whatever
 * happened. Returns 0 after a clean stop, or -errno when the probe could not be loaded (the
 * reason is logged: what is missing and what to do) or the loop failed.
 */
int agent_run(const struct kp_config *cfg, const struct agent_opts *opts, struct sink *sink);

/*
 * The current offset from CLOCK_MONOTONIC to Unix epoch ns (realtime - monotonic), from the
 * tightest of a few realtime / monotonic / realtime samples. Exposed for the tests.
 */
int64_t agent_clock_offset(void);

#endif
