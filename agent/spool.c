/*
 * spool.c - the agent's on-disk FIFO of unacknowledged frames: file format, open-time
 * validation and torn-tail cut, appends with the size bound (oldest file dropped first),
 * read-back, acknowledgement bookkeeping, and the small state file (acked seq, reserved seqs).
 * Contract in spool.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/le.h"
#include "agent/spool.h"
#include "agent/wire.h"
#include "common/util.h"

/*
 * A spool file, `<first seq as 16 hex digits>.kps`, little-endian:
 *
 *   file header (24 bytes)
 *   +--------+---------+-------+-----------+----------------------+
 *   | magic  | version | flags | first_seq | xxh3_64(bytes 0..16) |
 *   | "KPS1" |  u16 =1 | u16 0 |    u64    |         u64          |
 *   +--------+---------+-------+-----------+----------------------+
 *    0        4         6       8           16                    24
 *
 *   record (24-byte header + frame), repeated
 *   +-----+----------+-----+--------------------------------------------+----------------+
 *   | len | n_events | seq | xxh3_64_withSeed(frame, seq ^ len<<32 ^ n) | frame (len B)  |
 *   | u32 |   u32    | u64 |                    u64                     | as on the wire |
 *   +-----+----------+-----+--------------------------------------------+----------------+
 *    0     4          8     16                                           24
 *
 * Records in a file have increasing seqs; files hold disjoint runs, so name order is seq order.
 *
 * `state` (32 bytes, replaced with rename):
 *   magic "KPT1" u32 | version u16 | pad u16 | reserved_seq u64 | acked_seq u64 | xxh3 u64
 */
#define SPOOL_MAGIC   0x3153504bu /* "KPS1" */
#define STATE_MAGIC   0x3154504bu /* "KPT1" */
#define SPOOL_VERSION 1
#define FILE_HDR      24
#define REC_HDR	      24
#define REC_MAX	      (WIRE_HDR_LEN + WIRE_MAX_BODY)

struct spool_file {
	uint64_t first_seq, last_seq, size;
	uint32_t n_frames, n_read, n_done; /* done: acknowledged, rejected or skipped */
	uint64_t events, events_read;
	uint64_t rd_start; /* offset of the first record not skipped at open */
	int fd;
};

struct spool {
	char dir[PATH_MAX];
	int dirfd, lockfd;
	uint64_t max_bytes, file_max;
	struct spool_file *files; /* by first_seq */
	size_t n, cap;
	int tail_open;	/* files[n-1] takes appends */
	size_t rd_file; /* read cursor */
	uint64_t rd_off;
	uint64_t bytes;
	uint64_t acked_seq, reserved_seq, max_seq;
	struct spool_stats st;
	uint64_t log_ns;
};

const char *spool_strerror(int err)
{
	switch (err) {
	case SPOOL_EMAGIC:
		return "not a kprobe spool file";
	case SPOOL_EVERSION:
		return "spool file of another format version";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}


static uint64_t rec_sum(const void *frame, uint32_t len, uint64_t seq, uint32_t n_events)
{
	return XXH3_64bits_withSeed(frame, len, seq ^ ((uint64_t)len << 32) ^ n_events);
}

static void rec_hdr_encode(uint8_t *h, const void *frame, uint32_t len, uint64_t seq,
			   uint32_t n_events)
{
	le_put32(h, len);
	le_put32(h + 4, n_events);
	le_put64(h + 8, seq);
	le_put64(h + 16, rec_sum(frame, len, seq, n_events));
}

static void file_hdr_encode(uint8_t *h, uint64_t first_seq)
{
	le_put32(h, SPOOL_MAGIC);
	le_put16(h + 4, SPOOL_VERSION);
	le_put16(h + 6, 0);
	le_put64(h + 8, first_seq);
	le_put64(h + 16, XXH3_64bits(h, 16));
}

static void file_path(const struct spool *sp, uint64_t first_seq, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 ".kps", sp->dir, first_seq);
}

/* Drop messages at most once a second (a full spool drops a file per frame appended). */
static int log_ok(struct spool *sp)
{
	uint64_t now = now_mono_ns();
	if (now - sp->log_ns < NSEC_PER_SEC && sp->log_ns)
		return 0;
	sp->log_ns = now;
	return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* State file                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void state_load(struct spool *sp)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/state", sp->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	uint8_t b[32];
	if (read_full(fd, b, sizeof(b)) == 0 && le_get32(b) == STATE_MAGIC &&
	    le_get16(b + 4) == SPOOL_VERSION && XXH3_64bits(b, 24) == le_get64(b + 24)) {
		sp->reserved_seq = le_get64(b + 8);
		sp->acked_seq = le_get64(b + 16);
	} else {
		log_warn("spool %s: state file unreadable, ignored (frames may be resent once)",
			 sp->dir);
	}
	close(fd);
}

static int state_save(struct spool *sp)
{
	uint8_t b[32] = {0};
	le_put32(b, STATE_MAGIC);
	le_put16(b + 4, SPOOL_VERSION);
	le_put64(b + 8, sp->reserved_seq);
	le_put64(b + 16, sp->acked_seq);
	le_put64(b + 24, XXH3_64bits(b, 24));
	char tmp[PATH_MAX + 16], path[PATH_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s/state.tmp", sp->dir);
	snprintf(path, sizeof(path), "%s/state", sp->dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = write_full(fd, b, sizeof(b));
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (!r)
		fsync(sp->dirfd);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void file_close_fd(struct spool_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static void files_remove(struct spool *sp, size_t i)
{
	struct spool_file *f = &sp->files[i];
	char path[PATH_MAX + 32];
	file_path(sp, f->first_seq, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("spool: cannot delete %s: %s", path, strerror(errno));
	file_close_fd(f);
	sp->bytes -= f->size;
	if (i == sp->n - 1)
		sp->tail_open = 0;
	memmove(&sp->files[i], &sp->files[i + 1], (sp->n - i - 1) * sizeof(*f));
	sp->n--;
	if (sp->rd_file > i) {
		sp->rd_file--;
	} else if (sp->rd_file == i) {
		sp->rd_off = i < sp->n ? sp->files[i].rd_start : 0;
	}
}

/* Deletes file i when every frame in it is read and done, unless it still takes appends. */
static void file_maybe_delete(struct spool *sp, size_t i)
{
	struct spool_file *f = &sp->files[i];
	if (f->n_done < f->n_frames || f->n_read < f->n_frames)
		return;
	if (i == sp->n - 1 && sp->tail_open)
		return;
	files_remove(sp, i);
}

/* Drops the oldest file to make room: its unread frames are lost, counted and logged. */
static void drop_oldest(struct spool *sp)
{
	struct spool_file *f = &sp->files[0];
	uint64_t frames = f->n_frames - f->n_read, events = f->events - f->events_read;
	sp->st.dropped_frames += frames;
	sp->st.dropped_events += events;
	if (frames && log_ok(sp))
		log_warn("spool full (agent.spoolMaxMb = %" PRIu64 "): dropped the oldest %" PRIu64
			 " frames (%" PRIu64 " events, seq %" PRIu64 "..%" PRIu64 "); %" PRIu64
			 " frames dropped so far. The appliance is unreachable or "
			 "too slow: check agent.appliance, or raise agent.spoolMaxMb",
			 sp->max_bytes >> 20, frames, events, f->first_seq, f->last_seq,
			 sp->st.dropped_frames);
	files_remove(sp, 0);
}

static int file_create(struct spool *sp, uint64_t first_seq, int *fd_out)
{
	char path[PATH_MAX + 32];
	file_path(sp, first_seq, path, sizeof(path));
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	uint8_t h[FILE_HDR];
	file_hdr_encode(h, first_seq);
	int r = write_full(fd, h, sizeof(h));
	if (r < 0) {
		close(fd);
		unlink(path);
		return r;
	}
	*fd_out = fd;
	return 0;
}

static void files_push(struct spool *sp, const struct spool_file *f)
{
	if (sp->n == sp->cap) {
		sp->cap = sp->cap ? sp->cap * 2 : 16;
		sp->files = xrealloc(sp->files, sp->cap * sizeof(*sp->files));
	}
	sp->files[sp->n++] = *f;
}

/* ------------------------------------------------------------------------------------------ */
/* Open                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void set_aside(struct spool *sp, uint64_t seq, const char *why, struct spool_info *info)
{
	char from[PATH_MAX + 32], to[PATH_MAX + 40];
	file_path(sp, seq, from, sizeof(from));
	snprintf(to, sizeof(to), "%s.bad", from);
	log_error("spool: %s: %s; renamed to %s (its frames are not sent)", from, why, to);
	rename(from, to);
	if (info)
		info->bad_files++;
}

/* Validates one file, cuts its torn tail; fills f. Returns 0, 1 (set aside) or -errno. */
static int scan_file(struct spool *sp, uint64_t seq, struct spool_file *f, struct spool_info *info,
		     struct kp_buf *buf)
{
	char path[PATH_MAX + 32];
	file_path(sp, seq, path, sizeof(path));
	*f = (struct spool_file){.first_seq = seq, .fd = -1};
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	uint64_t size = (uint64_t)st.st_size;
	uint8_t h[FILE_HDR];
	if (size < FILE_HDR || pread(fd, h, FILE_HDR, 0) != FILE_HDR) {
		/* Created, then killed before its header was written: nothing in it. */
		close(fd);
		unlink(path);
		return 1;
	}
	int bad = le_get32(h) != SPOOL_MAGIC				       ? SPOOL_EMAGIC
		  : le_get16(h + 4) != SPOOL_VERSION			       ? SPOOL_EVERSION
		  : XXH3_64bits(h, 16) != le_get64(h + 16) || le_get64(h + 8) != seq ? SPOOL_EMAGIC
									       : 0;
	if (bad) {
		close(fd);
		set_aside(sp, seq, spool_strerror(bad), info);
		return 1;
	}
	uint64_t off = FILE_HDR;
	f->rd_start = FILE_HDR;
	while (off < size) {
		uint8_t rh[REC_HDR];
		if (size - off < REC_HDR || pread(fd, rh, REC_HDR, (off_t)off) != REC_HDR)
			break;
		uint32_t len = le_get32(rh), nev = le_get32(rh + 4);
		uint64_t rseq = le_get64(rh + 8);
		if (len > REC_MAX || size - off - REC_HDR < len)
			break;
		buf->len = 0;
		buf_reserve(buf, len);
		if (pread(fd, buf->data, len, (off_t)(off + REC_HDR)) != (ssize_t)len ||
		    rec_sum(buf->data, len, rseq, nev) != le_get64(rh + 16) ||
		    (f->n_frames && rseq <= f->last_seq))
			break;
		f->n_frames++;
		f->events += nev;
		f->last_seq = rseq;
		sp->max_seq = KP_MAX(sp->max_seq, rseq);
		if (rseq <= sp->acked_seq && f->n_read == f->n_frames - 1) {
			/* Acknowledged before the agent stopped: do not send it again. */
			f->n_read++;
			f->n_done++;
			f->events_read += nev;
			f->rd_start = off + REC_HDR + len;
			if (info)
				info->skipped_acked++;
		}
		off += REC_HDR + len;
	}
	if (off < size) {
		log_warn("spool: %s: torn tail of %" PRIu64
			 " bytes cut (the agent stopped in the middle of an append)",
			 path, size - off);
		if (ftruncate(fd, (off_t)off) < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
		sp->st.torn_bytes += size - off;
		if (info)
			info->torn_bytes += size - off;
	}
	f->size = off;
	close(fd);
	if (!f->n_frames || f->n_done == f->n_frames) {
		unlink(path); /* nothing left to send */
		return 1;
	}
	return 0;
}

int spool_open(struct spool **out, const char *dir, uint64_t max_bytes, struct spool_info *info)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));
	sp->dirfd = sp->lockfd = -1;
	sp->max_bytes = KP_MAX(max_bytes, 1u << 20);
	sp->file_max = KP_MIN(KP_MAX(sp->max_bytes / 8, 64u << 10), 64u << 20);
	if (info)
		memset(info, 0, sizeof(*info));
	int r;
	uint64_t *seqs = NULL;
	size_t nseq = 0, capseq = 0;
	struct kp_buf buf = {0};
	if (strlen(dir) >= sizeof(sp->dir) - 64) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	snprintf(sp->dir, sizeof(sp->dir), "%s", dir);
	if ((r = mkdir_p(dir, 0700)) < 0)
		goto fail;
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0) {
		r = -errno;
		goto fail;
	}
	char lock[PATH_MAX + 8];
	snprintf(lock, sizeof(lock), "%s/LOCK", dir);
	sp->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sp->lockfd < 0) {
		r = -errno;
		goto fail;
	}
	if (flock(sp->lockfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	state_load(sp);

	DIR *d = opendir(dir);
	if (!d) {
		r = -errno;
		goto fail;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *s = e->d_name;
		char *end;
		if (strlen(s) != 20 || strcmp(s + 16, ".kps"))
			continue;
		uint64_t seq = strtoull(s, &end, 16);
		if (end != s + 16)
			continue;
		if (nseq == capseq) {
			capseq = capseq ? capseq * 2 : 16;
			seqs = xrealloc(seqs, capseq * sizeof(*seqs));
		}
		seqs[nseq++] = seq;
	}
	closedir(d);
	if (nseq)
		qsort(seqs, nseq, sizeof(*seqs), cmp_u64);
	for (size_t i = 0; i < nseq; i++) {
		struct spool_file f;
		r = scan_file(sp, seqs[i], &f, info, &buf);
		if (r < 0)
			goto fail;
		if (r == 1)
			continue;
		files_push(sp, &f);
		sp->bytes += f.size;
	}
	sp->rd_file = 0;
	sp->rd_off = sp->n ? sp->files[0].rd_start : 0;
	if (info) {
		struct spool_stats st;
		spool_stats(sp, &st);
		info->files = sp->n;
		info->frames = st.frames;
		info->events = 0;
		for (size_t i = 0; i < sp->n; i++)
			info->events += sp->files[i].events - sp->files[i].events_read;
		info->bytes = sp->bytes;
		info->max_seq = sp->max_seq;
	}
	/* Over the bound (agent.spoolMaxMb lowered since): the oldest go now. */
	while (sp->n && sp->bytes > sp->max_bytes)
		drop_oldest(sp);
	free(seqs);
	buf_free(&buf);
	*out = sp;
	return 0;
fail:
	free(seqs);
	buf_free(&buf);
	spool_close(sp);
	return r;
}

void spool_close(struct spool *sp)
{
	if (!sp)
		return;
	if (sp->lockfd >= 0) {
		spool_seal(sp);
		if (sp->dirfd >= 0)
			state_save(sp);
	}
	for (size_t i = 0; i < sp->n; i++)
		file_close_fd(&sp->files[i]);
	free(sp->files);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	if (sp->lockfd >= 0)
		close(sp->lockfd);
	free(sp);
}

/* ------------------------------------------------------------------------------------------ */
/* Appends                                                                                     */
/* ------------------------------------------------------------------------------------------ */

void spool_seal(struct spool *sp)
{
	if (!sp->tail_open || !sp->n)
		return;
	struct spool_file *t = &sp->files[sp->n - 1];
	if (t->fd >= 0)
		fdatasync(t->fd); /* rotation: keep what is on disk if the machine goes down */
	sp->tail_open = 0;
	if (sp->rd_file != sp->n - 1)
		file_close_fd(t);
	file_maybe_delete(sp, sp->n - 1);
}

int spool_append(struct spool *sp, const void *frame, uint32_t len, uint64_t seq, uint32_t n_events)
{
	uint64_t need = REC_HDR + (uint64_t)len;
	if (need + FILE_HDR > sp->max_bytes) {
		sp->st.dropped_frames++;
		sp->st.dropped_events += n_events;
		return -EFBIG;
	}
	int new_file = !sp->tail_open || sp->files[sp->n - 1].size + need > sp->file_max;
	if (new_file)
		spool_seal(sp);
	while (sp->n && sp->bytes + need + (new_file ? FILE_HDR : 0) > sp->max_bytes) {
		if (sp->tail_open && sp->n == 1) {
			spool_seal(sp);
			new_file = 1;
			continue; /* the sealed tail is now the oldest file */
		}
		drop_oldest(sp);
	}
	if (new_file) {
		struct spool_file f = {.first_seq = seq, .rd_start = FILE_HDR, .size = FILE_HDR};
		int r = file_create(sp, seq, &f.fd);
		if (r < 0) {
			sp->st.write_errors++;
			return r;
		}
		size_t before = sp->n;
		files_push(sp, &f);
		sp->bytes += FILE_HDR;
		sp->tail_open = 1;
		if (sp->rd_file >= before) { /* the cursor was past the end: it starts here */
			sp->rd_file = before;
			sp->rd_off = FILE_HDR;
		}
	}
	struct spool_file *t = &sp->files[sp->n - 1];
	uint8_t h[REC_HDR];
	rec_hdr_encode(h, frame, len, seq, n_events);
	struct iovec iov[2] = {{h, REC_HDR}, {(void *)frame, len}};
	ssize_t n = pwritev(t->fd, iov, 2, (off_t)t->size);
	if (n != (ssize_t)need) {
		int r = n < 0 ? -errno : -ENOSPC;
		if (ftruncate(t->fd, (off_t)t->size) < 0) {
			/* the next open cuts the partial record as a torn tail */
		}
		sp->st.write_errors++;
		return r;
	}
	t->size += need;
	sp->bytes += need;
	t->n_frames++;
	t->events += n_events;
	t->last_seq = seq;
	sp->max_seq = KP_MAX(sp->max_seq, seq);
	sp->st.appended++;
	return 0;
}

int spool_write_older(struct spool *sp, const void *const *frames, const uint32_t *lens,
		      const uint64_t *seqs, const uint32_t *events, size_t n)
{
	uint64_t total = FILE_HDR;
	for (size_t i = 0; i < n; i++)
		total += REC_HDR + (uint64_t)lens[i];
	size_t first = 0;
	/* These are older than everything spooled: over the bound, they are the ones to go. */
	while (first < n && sp->bytes + total > sp->max_bytes) {
		total -= REC_HDR + (uint64_t)lens[first];
		sp->st.dropped_frames++;
		sp->st.dropped_events += events[first];
		first++;
	}
	if (first && log_ok(sp))
		log_warn("spool full (agent.spoolMaxMb = %" PRIu64 "): dropped %zu frames at "
			 "shutdown",
			 sp->max_bytes >> 20, first);
	if (first == n)
		return 0;
	int fd, r = file_create(sp, seqs[first], &fd);
	if (r < 0) {
		log_error(
			"spool: cannot create a file for %zu frames at shutdown: %s; they are lost",
			n - first, strerror(-r));
		sp->st.write_errors++;
		sp->st.dropped_frames += n - first;
		return r;
	}
	uint64_t off = FILE_HDR;
	for (size_t i = first; i < n && !r; i++) {
		uint8_t h[REC_HDR];
		rec_hdr_encode(h, frames[i], lens[i], seqs[i], events[i]);
		struct iovec iov[2] = {{h, REC_HDR}, {(void *)frames[i], lens[i]}};
		ssize_t w = pwritev(fd, iov, 2, (off_t)off);
		if (w != (ssize_t)(REC_HDR + lens[i]))
			r = w < 0 ? -errno : -ENOSPC;
		off += REC_HDR + lens[i];
	}
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0) {
		log_error("spool: writing %zu frames at shutdown failed: %s", n - first,
			  strerror(-r));
		sp->st.write_errors++;
		return r;
	}
	sp->bytes += off;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading back and acknowledgements                                                           */
/* ------------------------------------------------------------------------------------------ */

/* The rest of file i cannot be read: count what is lost and move on. */
static void file_give_up(struct spool *sp, size_t i, const char *why)
{
	struct spool_file *f = &sp->files[i];
	uint64_t frames = f->n_frames - f->n_read;
	log_error("spool: cannot read back %016" PRIx64 ".kps: %s; %" PRIu64 " frames lost",
		  f->first_seq, why, frames);
	sp->st.dropped_frames += frames;
	sp->st.dropped_events += f->events - f->events_read;
	f->n_done += f->n_frames - f->n_read;
	f->events_read = f->events;
	f->n_read = f->n_frames;
	sp->rd_off = f->size;
}

int spool_read_next(struct spool *sp, uint64_t max_len, struct spool_frame *out)
{
	while (sp->rd_file < sp->n) {
		size_t i = sp->rd_file;
		struct spool_file *f = &sp->files[i];
		if (f->n_read >= f->n_frames || sp->rd_off >= f->size) {
			if (i == sp->n - 1 && sp->tail_open)
				return 0; /* the tail may still grow */
			file_close_fd(f);
			sp->rd_file++;
			sp->rd_off = sp->rd_file < sp->n ? sp->files[sp->rd_file].rd_start : 0;
			file_maybe_delete(sp, i);
			continue;
		}
		if (f->fd < 0) {
			char path[PATH_MAX + 32];
			file_path(sp, f->first_seq, path, sizeof(path));
			f->fd = open(path, O_RDONLY | O_CLOEXEC);
			if (f->fd < 0) {
				file_give_up(sp, i, strerror(errno));
				continue;
			}
		}
		uint8_t h[REC_HDR];
		if (pread(f->fd, h, REC_HDR, (off_t)sp->rd_off) != REC_HDR) {
			file_give_up(sp, i, "short read");
			continue;
		}
		uint32_t len = le_get32(h), nev = le_get32(h + 4);
		uint64_t seq = le_get64(h + 8);
		if (len > REC_MAX) {
			file_give_up(sp, i, "record length out of bounds");
			continue;
		}
		if (len > max_len)
			return -E2BIG;
		uint8_t *data = xmalloc(len ? len : 1);
		if (pread(f->fd, data, len, (off_t)(sp->rd_off + REC_HDR)) != (ssize_t)len ||
		    rec_sum(data, len, seq, nev) != le_get64(h + 16)) {
			free(data);
			file_give_up(sp, i, "record changed on disk (checksum)");
			continue;
		}
		sp->rd_off += REC_HDR + len;
		f->n_read++;
		f->events_read += nev;
		*out = (struct spool_frame){data, len, nev, seq, f->first_seq};
		return 1;
	}
	return 0;
}

void spool_note_acked(struct spool *sp, uint64_t seq)
{
	if (seq > sp->acked_seq)
		sp->acked_seq = seq;
}

void spool_ack(struct spool *sp, uint64_t token)
{
	for (size_t i = 0; i < sp->n; i++) {
		if (sp->files[i].first_seq != token)
			continue;
		sp->files[i].n_done++;
		file_maybe_delete(sp, i);
		return;
	}
	/* The file was dropped meanwhile: nothing to do. */
}

int spool_has(const struct spool *sp, uint64_t token)
{
	for (size_t i = 0; i < sp->n; i++)
		if (sp->files[i].first_seq == token)
			return 1;
	return 0;
}

uint64_t spool_seq_floor(const struct spool *sp)
{
	uint64_t f = KP_MAX(sp->reserved_seq, sp->max_seq + 1);
	return KP_MAX(f, sp->acked_seq + 1);
}

int spool_seq_reserve(struct spool *sp, uint64_t upto)
{
	if (upto <= sp->reserved_seq)
		return 0;
	uint64_t old = sp->reserved_seq;
	sp->reserved_seq = upto;
	int r = state_save(sp);
	if (r < 0)
		sp->reserved_seq = old;
	return r;
}

void spool_stats(const struct spool *sp, struct spool_stats *out)
{
	*out = sp->st;
	out->frames = out->unread = out->events = 0;
	for (size_t i = 0; i < sp->n; i++) {
		const struct spool_file *f = &sp->files[i];
		out->frames += f->n_frames - f->n_done;
		out->unread += f->n_frames - f->n_read;
		out->events += f->events - f->events_read;
	}
	out->bytes = sp->bytes;
	out->files = sp->n;
}
