/*
 * wal.h - kprobed's write-ahead log. Every agent frame the ingest server accepts is appended
 * here, made durable by one fdatasync shared by many appends (group commit), and only then
 * acknowledged; after a crash the store replays it from the first LSN it had not yet sealed.
 *
 * A WAL is a directory of append-only files `<first lsn, 16 hex>.wal` (layout diagram above the
 * encoder in wal.c). Each record carries an LSN (1, 2, 3 ... never reused, also across restarts
 * and releases), the (node_id, seq) of the frame it holds and the frame bytes exactly as they
 * arrived (header + LZ4 body), checksummed with XXH3. Opening the directory scans every record:
 * a torn tail (a crash in the middle of an append) is cut; a bad record followed by valid ones
 * (damage, not a crash) stops recovery there too, and what follows is moved aside into
 * `aside/` and reported, since nothing after an unsynced record can have been acknowledged.
 *
 * Dedup state. The WAL keeps, per node, the highest seq it holds and the LSN of that record.
 * When the store has sealed frames into segments it calls wal_release(upto); whole files at or
 * below upto are deleted, after the per-node maxima of their records have been merged into
 * `checkpoint` (written to a temp file, fsynced, renamed). Opening = checkpoint + scan, so a
 * resent frame is recognised as a duplicate across releases and restarts.
 *
 * Threads: appends, syncs and replays come from one thread (kprobed's ingest loop);
 * wal_release may be called from another (the store's sealer); the lookups below are for the
 * appending thread.
 */
#ifndef KP_WAL_H
#define KP_WAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct wal;

/* Distinct errors (negative, apart from -errno). */
enum wal_err {
	WAL_EMAGIC = -5101,	 /* a file in the WAL directory is not a kprobe WAL file */
	WAL_EVERSION = -5102,	 /* written by a newer/older format version */
	WAL_ECHECKPOINT = -5103, /* the checkpoint file is damaged (see wal_strerror) */
	WAL_EFAILED = -5104,	 /* an earlier write or fdatasync failed: the WAL refuses appends
				  * until kprobed is restarted (recovery re-validates every record) */
	WAL_ETOOBIG = -5105,	 /* record payload over WAL_MAX_PAYLOAD */
	WAL_ERDONLY = -5106,	 /* opened read-only */
};
const char *wal_strerror(int err);

#define WAL_MAX_PAYLOAD (16u << 20)

/* System calls the WAL writes through; tests replace them to inject I/O faults. */
struct wal_io {
	ssize_t (*pwritev)(int fd, const struct iovec *iov, int iovcnt, off_t off);
	int (*fdatasync)(int fd);
};

struct wal_opts {
	uint64_t file_max_bytes; /* start a new file past this size (0: 64 MiB) */
	int read_only;		 /* inspect only (kprobed --dump-wal): no lock, no repair, no
				  * appends; a torn tail is reported and ignored */
	const struct wal_io *io; /* NULL: the real system calls */
};

/* What wal_open found. */
struct wal_recovery {
	uint64_t files, records, bytes; /* valid records kept (bytes = payload bytes) */
	uint64_t first_lsn, last_lsn;	/* of the records kept; 0 when none */
	uint64_t torn_bytes;		/* cut from the tail (an interrupted append) */
	uint64_t aside_bytes;		/* valid-looking data after a damaged record, moved aside */
	uint64_t nodes;			/* nodes known to the dedup table */
	char note[256];			/* human-readable summary of any repair, "" if none */
};

/*
 * Opens (creating if needed) the WAL in dir, takes its lock (one kprobed per directory:
 * -EBUSY otherwise), loads the checkpoint, scans and repairs as described above, and starts a
 * new file for appends. opts may be NULL. rec (may be NULL) receives what was found.
 * Returns 0 or a negative error (-errno, WAL_E*); *out is only set on success.
 */
int wal_open(struct wal **out, const char *dir, const struct wal_opts *opts,
	     struct wal_recovery *rec);

/* Syncs what was appended (best effort), releases the lock and frees. NULL is a no-op. */
void wal_close(struct wal *w);

/*
 * Appends one record (not yet durable). iov/iovcnt: the payload (a frame, usually header and
 * body as received), at most WAL_MAX_PAYLOAD bytes in all. The caller has checked that seq is
 * above wal_node_max() for node_id (the WAL records it as the node's new maximum).
 * On success *lsn is the record's LSN. On a write error the partial record is cut off again
 * and the error returned; if even that fails, or after any fdatasync failure, the WAL is
 * failed (WAL_EFAILED from then on).
 */
int wal_append(struct wal *w, uint64_t node_id, uint64_t seq, const struct iovec *iov, int iovcnt,
	       uint64_t *lsn);

/*
 * Group commit, split so the caller can run the fdatasyncs where it likes (kprobed: as
 * io_uring IORING_OP_FSYNC, off its loop thread). prepare fills req with the descriptors to
 * fdatasync (files written since the last sync, and the directory when a file was created)
 * and the LSN they cover; returns 1, or 0 when everything appended is already durable.
 * The descriptors stay open until finish. finish(res) with res = 0 when every fdatasync
 * succeeded makes everything up to req->upto_lsn durable; a negative res fails the WAL.
 * One prepare/finish pair at a time; appends may continue in between.
 */
#define WAL_SYNC_MAX_FDS 8
struct wal_sync_req {
	int fds[WAL_SYNC_MAX_FDS];
	int nfds;
	uint64_t upto_lsn;
	uint64_t started_ns; /* monotonic, for latency accounting */
};
int wal_sync_prepare(struct wal *w, struct wal_sync_req *req);
int wal_sync_finish(struct wal *w, const struct wal_sync_req *req, int res);
/* Runs req's fdatasyncs synchronously through the WAL's I/O functions: 0 or -errno. */
int wal_sync_run(struct wal *w, const struct wal_sync_req *req);
/* prepare + fdatasync each + finish, synchronously. Returns 0 or a negative error. */
int wal_sync(struct wal *w);

uint64_t wal_last_lsn(const struct wal *w);    /* last appended; 0 if none ever */
uint64_t wal_durable_lsn(const struct wal *w); /* everything <= it is fdatasynced */
uint64_t wal_first_lsn(const struct wal *w);   /* oldest record still held; 0 if none */
int wal_failed(const struct wal *w);	       /* 0, or the error that failed it */

/*
 * The dedup table: the highest seq held for node_id (also of released records) and the LSN
 * of that record (0 when it came from the checkpoint, i.e. long durable). Returns 1 when the
 * node is known, 0 otherwise.
 */
int wal_node_max(const struct wal *w, uint64_t node_id, uint64_t *max_seq, uint64_t *lsn);

/*
 * Calls fn for every record with lsn >= from_lsn, in LSN order (records below wal_first_lsn()
 * were released and are gone). payload is valid during the call only. fn returns 0 to go on,
 * anything else stops the replay and is returned. Returns 0 or a negative error.
 */
typedef int (*wal_replay_fn)(void *ctx, uint64_t lsn, uint64_t node_id, uint64_t seq,
			     const void *payload, uint32_t len);
int wal_replay(struct wal *w, uint64_t from_lsn, wal_replay_fn fn, void *ctx);

/*
 * Deletes every WAL file whose records all have lsn <= upto_lsn (never the file being appended
 * to, never beyond wal_durable_lsn()), after saving their per-node maxima in the checkpoint.
 * Safe to call from another thread than the appender. Returns the number of files deleted or a
 * negative error (nothing deleted then).
 */
int wal_release(struct wal *w, uint64_t upto_lsn);

/* Counters. */
struct wal_stats {
	uint64_t appends, append_bytes, syncs, files_created, files_released;
	uint64_t sync_ns_sum, sync_ns_max;
	uint64_t files_held, bytes_held;
};
void wal_stats(const struct wal *w, struct wal_stats *out);

#endif
