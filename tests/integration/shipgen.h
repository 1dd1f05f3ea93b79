/*
 * shipgen.h - test helpers for the shipping path: an agent-side process (the real ship sink on
 * its own io_uring loop, fed with generated events that each carry a unique index in arg[0]),
 * a real kprobed process on loopback, and a checker that reads back what kprobed made durable.
 */
#ifndef KP_TEST_SHIPGEN_H
#define KP_TEST_SHIPGEN_H

#include <stdint.h>
#include <sys/types.h>

#include "agent/ship.h"

/* Lives in MAP_SHARED memory so the parent sees the child's progress. */
struct shipgen_shared {
	volatile uint64_t produced; /* events handed to the sink so far */
	volatile int generated;	    /* every event produced */
	volatile int idle;	    /* every produced event acknowledged */
	volatile int closed;	    /* the sink was closed */
	volatile int stop;	    /* parent: stop now (close with drain) */
	struct ship_stats st;	    /* refreshed every few ms */
};

struct shipgen_opts {
	char appliance[64];
	char spool_dir[512];
	char node_name[64];
	uint32_t tid;	       /* marks our events */
	uint64_t first, count; /* event indices [first, first + count) */
	uint64_t per_ms;       /* production rate: events per millisecond */
	int batch_events, batch_ms, mem_mb, spool_mb, reconnect_max_ms;
	int drain_ms;	     /* for close */
	int close_when_idle; /* after producing, close once everything is acked */
};

void shipgen_defaults(struct shipgen_opts *o);
struct shipgen_shared *shipgen_shared_new(void);

/* Runs the agent side in this process until closed. Returns 0 or -errno. */
int shipgen_run(const struct shipgen_opts *o, struct shipgen_shared *sh);
/* Forks a process running shipgen_run (in the test's process group); returns its pid. */
pid_t shipgen_fork(const struct shipgen_opts *o, struct shipgen_shared *sh);

/* The event generated for index i (so the checker can recompute it). */
uint64_t shipgen_event_key(uint32_t tid, uint64_t idx);

/* ---- kprobed ---- */

int free_tcp_port(void);
/* Starts bin/kprobed on port with its data in datadir; waits until it accepts. */
pid_t kprobed_start(const char *datadir, int port, int commit_us);
void kprobed_kill(pid_t pid, int sig); /* and reaps it */

/* ---- checking what arrived ---- */

struct received {
	uint64_t events; /* our events (tid) seen */
	uint64_t distinct, dups, out_of_range;
	uint64_t sum; /* sum of shipgen_event_key over distinct events */
	uint64_t frames;
	uint64_t seq_order_errors; /* frames of a node not in increasing seq */
	uint8_t *seen;		   /* count per index (saturating) */
	uint64_t first, count;
};
/* Replays the WAL under datadir (read-only) and tallies events of tid in [first, +count). */
int received_from_wal(const char *datadir, uint32_t tid, uint64_t first, uint64_t count,
		      struct received *out);
void received_free(struct received *r);
/* The expected sum over [first, first + count). */
uint64_t expected_sum(uint32_t tid, uint64_t first, uint64_t count);

#endif
