/*
 * store.h - kprobed's embedded event store: memtable, sealed columnar segments, metadata,
 * recovery and retention. The query language sits on top of it (store/query.h).
 *
 * Data flow: the ingest thread (store/ingest.c) takes every durable WAL frame, in LSN order, and
 * calls store_append() with its events and metadata records. Events go into the memtable (column
 * chunks readable by concurrent queries); a background thread seals full (store.memtableRows) or
 * old (store.sealSec) memtables into one segment file per UTC day partition:
 *
 *     <dataDir>/events/YYYY-MM-DD/<segid>.kps     (store.partitionByDay, else events/all/)
 *     <dataDir>/events/meta.log                   process / connection / node metadata
 *     <dataDir>/events/store.state                sealed LSN, next segment id
 *     <dataDir>/quarantine/                       segments that failed a checksum
 *
 * store_sealed_lsn() is the highest LSN whose events and metadata are all durable in segments:
 * after a restart the WAL is replayed from sealed_lsn + 1 and WAL files up to it may be released.
 * Frames at or below the sealed LSN given again are skipped (counted as dup_frames), so a replay
 * that starts too early duplicates nothing.
 *
 * The segment format is documented in store/segment.c (layout diagram above the encoder).
 *
 * Threads: one appender (store_append, store_flush); any number of query threads; the store's
 * own seal thread. Errors are negative errno or the STORE_E* codes below (store_strerror).
 */
#ifndef KP_STORE_H
#define KP_STORE_H

#include <linux/types.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/event.h"
#include "common/config.h"

struct store;

/* Errors (negative, distinct from -errno). */
enum store_err {
	STORE_EMAGIC = -6001,	 /* not a kprobe segment / state / meta file */
	STORE_EVERSION = -6002,	 /* a format version this build cannot read */
	STORE_ECHECKSUM = -6003, /* a block, footer or record failed its XXH3 check */
	STORE_ETRUNC = -6004,	 /* file shorter than its layout says */
	STORE_ELAYOUT = -6005,	 /* a length, offset or count out of bounds */
	STORE_ECORRUPT = -6006,	 /* a segment was found corrupt during a scan (quarantined) */
};
const char *store_strerror(int err);

/*
 * Opens (creating) the store under cfg->store_data_dir: removes temp leftovers of an
 * interrupted seal, opens and verifies every segment (checksums of all blocks; a corrupt one is
 * moved to quarantine/, logged and counted, never served), loads metadata, applies retention and
 * starts the seal thread. The config is copied (store.*, api.* keys). Returns 0 and *out, or a
 * negative error (-errno for I/O).
 */
int store_open(const struct kp_config *cfg, struct store **out);

/* Seals whatever the memtable holds, waits for it, stops the seal thread, frees everything.
 * No query may run and no result may be alive (results point at the store's symbols). */
void store_close(struct store *st);

/*
 * Appends one durable frame: n events (already in epoch ns) from node_id, and the metadata
 * records meta[0..meta_len) (kind u16 | len u16 | payload, as in a decoded wire body; iterate
 * with wire_meta_next). txn, when not NULL, gives each event's transaction id (NUL-terminated,
 * "" or NULL = none; at most STORE_TXN_MAX bytes are kept) — the causal engine sets them.
 *
 * lsn must increase from call to call, starting at 1; a frame with lsn <= the last one appended
 * (or <= the sealed LSN, a WAL replay overlap) is skipped and counted. Frames without events
 * (metadata only) count too: their LSN is sealed with the next seal. Malformed metadata records are
 * skipped and counted. Never blocks for long, except when two sealed memtables are still being
 * written (back-pressure). Only one thread may append. Returns 0 or -ENOMEM / -EINVAL.
 */
#define STORE_TXN_MAX 64
int store_append(struct store *st, uint64_t lsn, uint64_t node_id, const struct kp_event *ev,
		 uint32_t n, const void *meta, size_t meta_len, const char *const *txn);

/*
 * Transactions and traces of events that were not tagged when stored. Spans arrive whenever
 * their exporter sends them (seconds or hours after the events); instead of rewriting sealed
 * segments, the events table asks a resolver at query time:
 *   lookup  the transaction and trace of one event (the span it happened in), for the txn and
 *           trace_id columns of rows stored untagged; 1 when found, else 0;
 *   ranges  for WHERE txn = 'k' / trace_id = 'k': the (node, pid, tid, time) ranges of the spans
 *           with that transaction or trace, so granules outside them are skipped and rows
 *           inside them answer k. Returns the number written (<= cap) or -errno.
 * Called from query threads concurrently; the resolver must be thread safe.
 */
#define STORE_TRACE_HEX 32
struct store_txn_range {
	uint64_t node_id; /* 0: any node */
	uint32_t pid, tid; /* tid 0: any thread of pid */
	uint64_t t0, t1;   /* event start within [t0, t1] */
};
struct store_txn_resolver {
	int (*lookup)(void *ctx, uint64_t node_id, uint32_t pid, uint32_t tid, uint64_t ts,
		      uint64_t dur, char txn[STORE_TXN_MAX + 1], char trace[STORE_TRACE_HEX + 1]);
	int (*ranges)(void *ctx, const char *key, size_t len, int is_trace,
		      struct store_txn_range *out, int cap);
};
/* Sets (or with r NULL clears) the resolver; r and ctx must outlive the store's queries. */
void store_set_txn_resolver(struct store *st, const struct store_txn_resolver *r, void *ctx);

/* Seals the memtable now and waits until it (and any earlier one) is durable. Returns 0 or the
 * seal's error. Appender thread only. */
int store_flush(struct store *st);

/* Highest LSN whose events and metadata are all in sealed, fsynced segments (0 = none). */
uint64_t store_sealed_lsn(struct store *st);

/* Deletes day partitions older than store.retentionDays relative to now_ns (0 = the clock).
 * Runs on its own every hour; exposed for tests. Returns the number of partitions removed. */
int store_retention_run(struct store *st, uint64_t now_ns);

/* Counters for /metrics and logs. */
struct store_stats {
	uint64_t events_appended, frames_appended, dup_frames, bad_meta;
	uint64_t memtable_rows; /* rows not yet sealed (active + sealing) */
	uint64_t segments, segment_rows, segment_bytes;
	uint64_t seals, seal_errors, seal_ns_total;
	uint64_t corrupt_segments; /* found corrupt (at open or in a scan), quarantined */
	uint64_t partitions_expired;
	uint64_t procs, conns, nodes; /* metadata entries */
	uint64_t sealed_lsn;
};
void store_stats_get(struct store *st, struct store_stats *out);

#endif
