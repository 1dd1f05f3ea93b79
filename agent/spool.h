/*
 * spool.h - the agent's on-disk queue of unacknowledged frames (agent.spoolDir), used when the
 * appliance is away or slower than the node: an append-only FIFO of frames in files
 * `<first seq, 16 hex>.kps`, bounded by agent.spoolMaxMb (the oldest file goes first, its
 * unsent frames counted as dropped and logged).
 *
 * Files start with magic + version; every record is checksummed (layout diagram in spool.c).
 * Opening the directory takes its lock (one agent per spool), validates every record and cuts a
 * torn tail (an agent killed in the middle of an append). Frames found there are read back first
 * (spool_read_next), in seq order, before anything newer.
 *
 * The spool also keeps the agent's `state` file: the highest frame seq acknowledged (so a
 * restart does not resend frames known to be acked) and a reserved upper bound of frame seqs
 * (so seqs keep increasing across restarts even if the clock steps back).
 *
 * Not thread-safe: it belongs to the agent's loop thread. Writes go to the page cache (a killed
 * agent loses nothing written); spool_close and file rotation fdatasync.
 */
#ifndef KP_SPOOL_H
#define KP_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

enum spool_err {
	SPOOL_EMAGIC = -5201, /* a .kps file that is not a spool file (skipped, renamed .bad) */
	SPOOL_EVERSION =
		-5202, /* spool written by another format version (skipped, renamed .bad) */
};
const char *spool_strerror(int err);

/* What spool_open found. */
struct spool_info {
	uint64_t files, frames, events, bytes; /* unacked frames waiting in the spool */
	uint64_t skipped_acked;		       /* frames already acknowledged, not resent */
	uint64_t torn_bytes;		       /* cut from tails */
	uint64_t bad_files;		       /* unreadable files set aside as *.bad */
	uint64_t max_seq;		       /* highest frame seq found (0 if none) */
};

/*
 * Opens (creating) the spool in dir with a size bound of max_bytes. -EBUSY when another agent
 * holds it. info may be NULL. Returns 0 or -errno.
 */
int spool_open(struct spool **out, const char *dir, uint64_t max_bytes, struct spool_info *info);

/* Seals the tail file (fdatasync), saves the state file, unlocks, frees. NULL is a no-op. */
void spool_close(struct spool *sp);

/*
 * Appends one frame (wire bytes; seq and n_events as in its header) at the tail. Makes room by
 * dropping the oldest files when the bound would be passed. Returns 0, -EFBIG when the frame
 * alone is over the bound (it is dropped and counted), or -errno on a write error (the partial
 * record is cut off; the frame was not spooled).
 */
int spool_append(struct spool *sp, const void *frame, uint32_t len, uint64_t seq,
		 uint32_t n_events);

/*
 * Writes frames that are older than everything spooled (the agent's in-memory queue at
 * shutdown) into a file of their own that sorts before the rest. frames[i]/lens[i]/seqs[i]/
 * events[i], ascending seqs. The oldest are dropped (counted) if the bound would be passed.
 * Returns 0 or -errno.
 */
int spool_write_older(struct spool *sp, const void *const *frames, const uint32_t *lens,
		      const uint64_t *seqs, const uint32_t *events, size_t n);

/* The next append starts a new file (keeps files holding contiguous runs of seqs). */
void spool_seal(struct spool *sp);

/* A frame read back; data is malloc'd and owned by the caller. token names its file. */
struct spool_frame {
	uint8_t *data;
	uint32_t len, n_events;
	uint64_t seq;
	uint64_t token;
};

/*
 * Reads the oldest frame not yet read. Returns 1 with *f filled, 0 when nothing is unread,
 * -E2BIG when the next frame is longer than max_len (left unread).
 */
int spool_read_next(struct spool *sp, uint64_t max_len, struct spool_frame *f);

/*
 * A frame read earlier (token from spool_read_next) was acknowledged or rejected for good: a
 * file whose frames are all done is deleted.
 */
void spool_ack(struct spool *sp, uint64_t token);
/*
 * Every frame with a seq up to this one is acknowledged (in order): a restart skips them.
 * Never pass the seq of a frame acked out of order.
 */
void spool_note_acked(struct spool *sp, uint64_t seq);
/* 1 while the file behind token still exists. */
int spool_has(const struct spool *sp, uint64_t token);

/*
 * Frame seqs. spool_seq_floor: the lowest seq that is safe to use now (above every seq ever
 * reserved or spooled). spool_seq_reserve: persists that seqs below upto may be in use
 * (fdatasync + rename; call it rarely, with a generous upto). Returns 0 or -errno.
 */
uint64_t spool_seq_floor(const struct spool *sp);
int spool_seq_reserve(struct spool *sp, uint64_t upto);

struct spool_stats {
	uint64_t frames, bytes;	 /* unacked frames held on disk, and the files' size */
	uint64_t unread, events; /* frames not yet read back, and their events */
	uint64_t files;
	uint64_t appended, dropped_frames, dropped_events, torn_bytes, write_errors;
};
void spool_stats(const struct spool *sp, struct spool_stats *out);

#endif
