/*
 * ingest.h - kprobed's agent-facing TCP server: receives frames (agent/wire.h), verifies them,
 * drops resends, appends the rest to the WAL (store/wal.h), acknowledges each frame once the
 * group-commit fdatasync covering it has completed, and hands every durable frame, in LSN
 * order, to a consumer (the store's memtable).
 *
 * It runs on its own thread, on an io_uring loop (agent/loop.h): accept, recv, send and the
 * WAL's fdatasync are all submissions; nothing blocks that thread but the consumer and the
 * page-cache write of an append.
 *
 * Per frame: read the 48-byte header and bound every length (wire_hdr_decode) before reading
 * the body; read the body; verify checksum, decompression and layout (wire_body_decode). A bad
 * frame is counted by reason, logged with the peer, answered WIRE_ACK_BAD and closes that
 * connection only; nothing of it is written. A frame whose seq is at or below the highest seq
 * held for its node is answered WIRE_ACK_DUP (once that earlier frame is durable) and not
 * written again. A frame started but not finished within ingest.frameTimeoutMs closes its
 * connection (slow or stuck peers cannot pin buffers). Reading from a connection pauses while
 * too much of its (or everyone's) data waits for the fsync.
 *
 * Startup order in kprobed:
 *     wal_open(dataDir/wal)          scans, cuts a torn tail, rebuilds the dedup table
 *     store recovery                 ingest_replay(wal, first LSN not sealed, store consumer)
 *     ingest_open + ingest_start     live frames go to the same consumer
 *     ... store seals segments ...   wal_release(last sealed LSN) from the store's thread
 *     ingest_stop, wal_close         on SIGINT/SIGTERM
 */
#ifndef KP_INGEST_H
#define KP_INGEST_H

#include <stdint.h>

#include "agent/wire.h"
#include "common/config.h"
#include "store/wal.h"

struct ingest;

/*
 * Called for every durable frame, in LSN order, on the ingest thread (or the caller's, for
 * ingest_replay). raw is the decoded body: h->n_events kp_event records (ts_ns in epoch ns)
 * followed by h->n_meta metadata records (walk them with wire_meta_next). Valid during the
 * call only. A slow consumer slows ingest (back-pressure reaches the agents).
 */
typedef void (*ingest_consumer_fn)(void *ctx, uint64_t lsn, const struct wire_hdr *h,
				   const void *raw);

struct ingest_opts {
	const char *bind;	     /* address to listen on (IPv4 or IPv6 literal, or a name) */
	int port;		     /* 0: an ephemeral port (see ingest_port) */
	int max_conns;		     /* more concurrent connections are refused */
	int commit_us;		     /* group commit: gather this long before the fdatasync */
	int frame_timeout_ms;	     /* a started frame must be complete within this */
	uint64_t max_pending_bytes;  /* decoded bytes awaiting fsync/consumer before reads pause */
	int sync_inline;	     /* fdatasync on the ingest thread, through the WAL's I/O
				      * functions, instead of IORING_OP_FSYNC (fault-injection
				      * tests; also the fallback when the kernel lacks the op) */
	ingest_consumer_fn consumer; /* may be NULL */
	void *consumer_ctx;
};

/* Fills opts from ingest.* keys (consumer left NULL). */
void ingest_opts_from_config(struct ingest_opts *o, const struct kp_config *cfg);

/*
 * Binds and listens (so the port is known and clients can connect at once), but serves
 * nothing until ingest_start. wal must stay open until ingest_free. Returns 0 or -errno
 * (-EADDRINUSE: the port is taken; the message logged says which).
 */
int ingest_open(struct ingest **out, struct wal *wal, const struct ingest_opts *o);
int ingest_port(const struct ingest *in); /* the bound port */

/* Starts the server thread. Returns 0 or -errno. */
int ingest_start(struct ingest *in);

/*
 * Stops accepting and reading, waits for the commit in flight, syncs what was appended,
 * delivers it to the consumer, closes every connection and joins the thread. Unacked frames
 * are resent by their agents later (and found to be duplicates). Idempotent.
 */
void ingest_stop(struct ingest *in);
void ingest_free(struct ingest *in); /* stops first if needed; NULL is a no-op */

enum ingest_reject {
	INGEST_REJ_MAGIC,      /* not a kprobe frame */
	INGEST_REJ_VERSION,    /* unsupported frame version */
	INGEST_REJ_TOOBIG,     /* a length over the bounds */
	INGEST_REJ_CHECKSUM,   /* body checksum mismatch */
	INGEST_REJ_DECOMPRESS, /* body does not decompress to its stated size */
	INGEST_REJ_LAYOUT,     /* counts/flags/records do not add up */
	INGEST_REJ_TRUNCATED,  /* connection ended inside a frame */
	INGEST_REJ_TIMEOUT,    /* frame not completed within frame_timeout_ms */
	INGEST_REJ_MAX
};
const char *ingest_reject_name(int reason); /* "magic", "checksum", ... */

#define INGEST_FSYNC_BUCKETS 12 /* upper bounds 0.125 ms * 2^i, the last is +Inf */

/* Counters (cumulative since ingest_open unless noted). Safe to read from any thread. */
struct ingest_stats {
	uint64_t frames, events, bytes; /* accepted and written (bytes as received) */
	uint64_t dups;			/* resends answered WIRE_ACK_DUP */
	uint64_t rejected[INGEST_REJ_MAX];
	uint64_t acks_sent;
	uint64_t delivered; /* frames handed to the consumer */
	uint64_t conns_accepted, conns_refused, conns_open /* now */;
	uint64_t wal_errors; /* appends or fsyncs that failed */
	uint64_t fsyncs, fsync_ns_sum, fsync_ns_max;
	uint64_t fsync_hist[INGEST_FSYNC_BUCKETS]; /* non-cumulative counts per bucket */
	uint64_t pending_bytes /* now */, pauses;
};
void ingest_stats(const struct ingest *in, struct ingest_stats *out);

/* Appends the counters in Prometheus text format (kprobe_ingest_* metrics). */
void ingest_metrics(const struct ingest *in, struct kp_buf *out);

/*
 * Replays the WAL from from_lsn through fn, decoding each frame as live ingest does: for the
 * store's recovery at startup, and for tests and `kprobed --dump-wal`. Returns the number of
 * frames delivered or a negative error. A record that no longer decodes is logged and skipped.
 */
int64_t ingest_replay(struct wal *w, uint64_t from_lsn, ingest_consumer_fn fn, void *ctx);

#endif
