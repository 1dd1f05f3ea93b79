/*
 * capstore.h - kprobed's store of replay capture records (bpf/capture.h): what agents ship for
 * processes selected by replay.capture.* (WIRE_META_CAPTURE pieces in their frames) and what
 * `kprobe record --appliance` uploads. It keeps them queryable (`FROM syscalls`) and builds
 * self-contained recordings (replay/rec.h) from them for a process and a time range.
 *
 * On disk, under <dataDir>/syscalls/ (layouts above capstore__append in capstore.c):
 *
 *     NNNNNNNNNNNNNNNN.kcl   append-only logs of checksummed entries (one per record), written
 *                            in WAL LSN order, one group per frame; rotated at a bound
 *     NNNNNNNNNNNNNNNN.kcx   the index of a sealed log: time range and a pid bloom filter
 *     state                  the LSN up to which every frame's records are durable here
 *
 * Durability: the WAL makes frames durable first; capstore_sync (kprobed's housekeeping, a few
 * times a second) fdatasyncs the log and advances capstore_synced_lsn, and kprobed releases WAL
 * files only up to the lower of that and the event store's sealed LSN. After a crash the log is
 * cut back to its last whole group and the WAL is replayed from capstore_recovered_lsn() + 1;
 * frames at or below what the log already holds are skipped, so nothing is kept twice.
 * Retention: sealed logs whose newest record is older than store.retentionDays, and the oldest
 * sealed logs while the total is over replay.capture.storeMaxMb, are deleted.
 *
 * Threads: one appender (the ingest thread: capstore_append_frame; capstore_append_upload takes
 * the same lock), one housekeeper (capstore_sync, capstore_retention_run), any number of
 * readers (capstore_scan, the table, recordings). Errors are negative errno values.
 */
#ifndef KP_REPLAY_CAPSTORE_H
#define KP_REPLAY_CAPSTORE_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/capture.h"
#include "common/util.h"

struct capstore;
struct rec;
struct table_ops;

struct capstore_opts {
	const char *dir;    /* <dataDir>/syscalls (created) */
	uint64_t max_bytes; /* replay.capture.storeMaxMb << 20 */
	int retention_days; /* store.retentionDays */
	uint64_t file_max;  /* rotate logs at this size; 0 = min(64 MiB, max_bytes / 8) */
};

/* Opens (creating) the store: indexes sealed logs, cuts the active one back to its last whole
 * group. Returns 0, or -errno with a message in err. */
int capstore_open(struct capstore **out, const struct capstore_opts *o, char *err, size_t errlen);
/* Syncs and closes. */
void capstore_close(struct capstore *cs);

/* Frames with an LSN at or below this are already held: replay the WAL from the next one. */
uint64_t capstore_recovered_lsn(struct capstore *cs);

/*
 * Takes the capture records of one durable frame (meta: its metadata records, as in a decoded
 * wire body). Called for every frame in LSN order, with or without records; a frame at or
 * below the last LSN taken is skipped. Records that are malformed (pieces that do not add up,
 * a record that fails kp_cap_rec_valid) are counted and skipped. Returns the number of records
 * kept, or -errno when the log cannot be written (the records are lost, counted, logged).
 */
int capstore_append_frame(struct capstore *cs, uint64_t lsn, uint64_t node, const void *meta,
			  size_t meta_len);

/*
 * Takes every record of a recording (an upload from `kprobe record --appliance`) as coming from
 * node, and syncs before returning. Returns the number of records kept or -errno.
 */
int capstore_append_upload(struct capstore *cs, uint64_t node, const struct rec *r);

/* fdatasyncs what was appended and publishes the new synced LSN. 0 or -errno. */
int capstore_sync(struct capstore *cs);
/* Every frame's records up to this LSN are durable here (see Durability above). */
uint64_t capstore_synced_lsn(struct capstore *cs);

/* Retention as described above, against now_ns (0 = the clock). Returns logs deleted. */
int capstore_retention_run(struct capstore *cs, uint64_t now_ns);

struct capstore_stats {
	uint64_t records, bytes;	    /* records taken since open, bytes of entries */
	uint64_t bad_records, write_errors; /* malformed (skipped), lost to a failed write */
	uint64_t files, disk_bytes;	    /* logs now, their size */
	uint64_t corrupt;		    /* entries that failed their checksum in a read */
	uint64_t expired_files;		    /* logs deleted by retention or the size bound */
	uint64_t synced_lsn;
};
void capstore_stats(struct capstore *cs, struct capstore_stats *st);

/* ---- reading ---- */

/* What to read: node 0 = any; npids 0 = any; [from_ns, to_ns] on the record's end time
 * (epoch ns), inclusive. */
struct capstore_sel {
	uint64_t node;
	const uint32_t *pids;
	int npids;
	uint64_t from_ns, to_ns;
};

/* One record as stored: its node, its clock offset (epoch = monotonic + clock_off), the record
 * (valid during the call only). A non-zero return stops the scan and is returned. */
typedef int (*capstore_fn)(void *ctx, uint64_t node, int64_t clock_off,
			   const struct kp_cap_rec *rec);

/*
 * Calls fn for every stored record the selection matches, log by log in append order (per
 * node, that is the agent's order). cancel (may be NULL) is polled between blocks; when it
 * returns true the scan stops with -ECANCELED. Entries failing their checksum are counted and
 * end the read of that log. Returns 0, fn's non-zero return, or -errno.
 */
int capstore_scan(struct capstore *cs, const struct capstore_sel *sel, capstore_fn fn, void *ctx,
		  bool (*cancel)(void *), void *cancel_arg);

/* `FROM syscalls`, for store_table_register(st, capstore_table(), cs). Columns: see captable.c
 * or `SELECT * FROM syscalls LIMIT 1`. */
const struct table_ops *capstore_table(void);

/* ---- recordings (capbuild.c) ---- */

struct capstore_recq {
	uint64_t node;		 /* 0: whichever node captured pid (it must be one) */
	uint32_t pid;		 /* the process to replay (its descendants come along) */
	uint64_t from_ns, to_ns; /* epoch ns; records with their end time inside */
	uint64_t max_bytes;	 /* refuse a recording larger than this (-E2BIG) */
	/* names of the node, for the recording's metadata: called once the node is known */
	void (*node_names)(void *ctx, uint64_t node, char *host, size_t hostcap, char *kernel,
			   size_t kernelcap);
	void *names_ctx;
	bool (*cancel)(void *);
	void *cancel_arg;
};

struct capstore_recinfo {
	uint64_t node;
	uint32_t pid;
	uint64_t calls, payload_bytes, file_bytes, lost;
	uint32_t threads, processes;
	uint64_t first_ns, last_ns; /* epoch ns of the first and last record kept */
	bool exec_seen;		    /* the recording starts at the process's exec */
	bool exit_seen;		    /* ... and holds its exit (root_status known) */
	int argc;
	char argv0[256]; /* the recorded command, as exec'd */
	char note[512];	 /* what a user should know (started before the range, incomplete) */
};

/*
 * Builds a self-contained recording of process q->pid (and the processes it forked in the
 * range) from the stored records into out (replaced). The process's records before its first
 * exec in the range are left out (a replay starts the command at exec). Returns 0, or -ENOENT
 * (nothing captured for it in the range), -ENOTUNIQ (several nodes captured that pid: give
 * node), -E2BIG (over max_bytes), -ECANCELED, -errno; with a message in err that says what to do.
 */
int capstore_recording(struct capstore *cs, const struct capstore_recq *q, struct kp_buf *out,
		       struct capstore_recinfo *info, char *err, size_t errlen);

/*
 * Looks for a process's capture around [from_ns, to_ns] (an incident): its latest exec at or
 * before from_ns (looking back up to lookback_ns) and its exit after to_ns (looking ahead up to
 * lookahead_ns). Returns 1 with the range to ask capstore_recording for in *rfrom, *rto (and
 * the node that captured it in *rnode), 0 when nothing was captured for it then, or -errno.
 */
int capstore_find_process(struct capstore *cs, uint64_t node, uint32_t pid, uint64_t from_ns,
			  uint64_t to_ns, uint64_t lookback_ns, uint64_t lookahead_ns,
			  uint64_t *rnode, uint64_t *rfrom, uint64_t *rto);

/* The same, with what the dashboard shows about it: how many records the scan saw, whether the
 * range starts at an exec and ends at an exit, and that exec's command line (argv[i] point into
 * argv_buf; argc 0 when no exec was seen or its vector was cut). */
#define CAPSTORE_FOUND_ARGS 64
struct capstore_found {
	uint64_t node, from_ns, to_ns, records;
	bool exec_seen, exit_seen;
	int argc;
	const char *argv[CAPSTORE_FOUND_ARGS];
	char argv_buf[KP_CAP_MAX_AUX + 1];
};
int capstore_find_process_info(struct capstore *cs, uint64_t node, uint32_t pid, uint64_t from_ns,
			       uint64_t to_ns, uint64_t lookback_ns, uint64_t lookahead_ns,
			       struct capstore_found *out);

#endif
