/*
 * Tests agent/spool.c: FIFO order across files and restarts, acknowledged frames skipped after
 * a restart, torn tails cut, the size bound dropping the oldest frames (counted), shutdown
 * frames sorting before newer spooled ones, the seq floor, the lock, foreign files set aside.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/spool.h"
#include "common/util.h"
#include "tests/test.h"

static uint32_t flen(uint64_t seq, uint32_t base)
{
	return base + (uint32_t)(seq * 7919 % 997);
}

static uint8_t *fdata(uint64_t seq, uint32_t len)
{
	uint8_t *p = xmalloc(len);
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seq * 31 + i);
	return p;
}

static void append(struct spool *sp, uint64_t seq, uint32_t base)
{
	uint32_t len = flen(seq, base);
	uint8_t *p = fdata(seq, len);
	int r = spool_append(sp, p, len, seq, (uint32_t)seq % 100);
	CHECKF(r == 0, "spool_append(%" PRIu64 "): %s", seq, spool_strerror(r));
	free(p);
}

/* Reads the next frame, checks its bytes, returns its seq (0 when none). */
static uint64_t read1(struct spool *sp, uint32_t base, uint64_t *token)
{
	struct spool_frame f;
	int r = spool_read_next(sp, UINT64_MAX, &f);
	CHECK(r >= 0);
	if (!r)
		return 0;
	CHECK_EQ_UINT(f.len, flen(f.seq, base));
	uint8_t *want = fdata(f.seq, f.len);
	CHECK(memcmp(want, f.data, f.len) == 0);
	CHECK_EQ_UINT(f.n_events, f.seq % 100);
	free(want);
	free(f.data);
	if (token)
		*token = f.token;
	return f.seq;
}

static int count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	size_t sl = strlen(suffix);
	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		n += l > sl && !strcmp(e->d_name + l - sl, suffix);
	}
	if (d)
		closedir(d);
	return n;
}

static const char *spool_dir(void)
{
	static char d[512];
	snprintf(d, sizeof(d), "%s/spool", kt_tmpdir());
	return d;
}

TEST(spool_fifo_ack_and_restart)
{
	struct spool *sp;
	struct spool_info info;
	CHECK_EQ_INT(spool_open(&sp, spool_dir(), 64 << 20, &info), 0);
	CHECK_EQ_UINT(info.frames, 0);
	for (uint64_t s = 100; s < 150; s++)
		append(sp, s, 1000);
	spool_seal(sp);
	for (uint64_t s = 150; s < 160; s++)
		append(sp, s, 1000);
	CHECK_EQ_INT(count_files(spool_dir(), ".kps"), 2);
	uint64_t tok[20];
	for (uint64_t i = 0; i < 20; i++)
		CHECK_EQ_UINT(read1(sp, 1000, &tok[i]), 100 + i);
	for (uint64_t i = 0; i < 10; i++) {
		spool_ack(sp, tok[i]);
		spool_note_acked(sp, 100 + i);
	}
	struct spool_stats st;
	spool_stats(sp, &st);
	CHECK_EQ_UINT(st.frames, 50);
	CHECK_EQ_UINT(st.unread, 40);
	spool_close(sp);

	/* Restart: the 10 acknowledged frames are not sent again; the other 50 are, in order. */
	CHECK_EQ_INT(spool_open(&sp, spool_dir(), 64 << 20, &info), 0);
	CHECK_EQ_UINT(info.skipped_acked, 10);
	CHECK_EQ_UINT(info.frames, 50);
	CHECK_EQ_UINT(info.max_seq, 159);
	CHECK_GE_UINT(spool_seq_floor(sp), 160);
	for (uint64_t s = 110; s < 160; s++) {
		uint64_t t;
		CHECK_EQ_UINT(read1(sp, 1000, &t), s);
		spool_ack(sp, t);
		spool_note_acked(sp, s);
	}
	CHECK_EQ_UINT(read1(sp, 1000, NULL), 0);
	/* Everything done: the files are gone. */
	CHECK_EQ_INT(count_files(spool_dir(), ".kps"), 0);
	/* New appends after a full drain are read too. */
	append(sp, 200, 10);
	CHECK_EQ_UINT(read1(sp, 10, NULL), 200);
	spool_close(sp);
}

TEST(spool_lock_and_limits)
{
	struct spool *a, *b;
	CHECK_EQ_INT(spool_open(&a, spool_dir(), 1 << 20, NULL), 0);
	CHECK_EQ_INT(spool_open(&b, spool_dir(), 1 << 20, NULL), -EBUSY);
	/* A frame larger than the whole bound is refused and counted. */
	uint8_t *big = xcalloc(1, 2 << 20);
	CHECK_EQ_INT(spool_append(a, big, 2 << 20, 5, 7), -EFBIG);
	free(big);
	struct spool_stats st;
	spool_stats(a, &st);
	CHECK_EQ_UINT(st.dropped_frames, 1);
	CHECK_EQ_UINT(st.dropped_events, 7);
	/* -E2BIG leaves the frame to be read later. */
	append(a, 6, 5000);
	struct spool_frame f;
	CHECK_EQ_INT(spool_read_next(a, 100, &f), -E2BIG);
	CHECK_EQ_UINT(read1(a, 5000, NULL), 6);
	spool_close(a);
}

TEST(spool_torn_tail_is_cut)
{
	struct spool *sp;
	CHECK_EQ_INT(spool_open(&sp, spool_dir(), 64 << 20, NULL), 0);
	for (uint64_t s = 1; s <= 10; s++)
		append(sp, s, 300);
	spool_close(sp);
	char path[600];
	snprintf(path, sizeof(path), "%s/%016x.kps", spool_dir(), 1);
	struct stat stt;
	CHECK_EQ_INT(stat(path, &stt), 0);
	CHECK_EQ_INT(truncate(path, stt.st_size - 50), 0); /* inside the last record */
	struct spool_info info;
	CHECK_EQ_INT(spool_open(&sp, spool_dir(), 64 << 20, &info), 0);
	CHECK_GT_INT(info.torn_bytes, 0);
	CHECK_EQ_UINT(info.frames, 9);
	for (uint64_t s = 1; s <= 9; s++)
		CHECK_EQ_UINT(read1(sp, 300, NULL), s);
	CHECK_EQ_UINT(read1(sp, 300, NULL), 0);
	/* Appends go on after the cut. */
	append(sp, 11, 300);
	CHECK_EQ_UINT(read1(sp, 300, NULL), 11);
	spool_close(sp);
}

TEST(spool_bound_drops_the_oldest)
{
	struct spool *sp;
	CHECK_EQ_INT(spool_open(&sp, spool_dir(), 1 << 20, NULL), 0);
	for (uint64_t s = 1; s <= 100; s++) {
		append(sp, s, 40000);
		struct spool_stats st;
		spool_stats(sp, &st);
		CHECK_LE_INT(st.bytes, 1 << 20);
	}
	struct spool_stats st;
	spool_stats(sp, &st);
	CHECK_GT_INT(st.dropped_frames, 50);
	CHECK_EQ_UINT(st.dropped_frames + st.unread, 100);
	/* What is left is the newest, contiguous, in order. */
	uint64_t first = read1(sp, 40000, NULL);
	CHECK_EQ_UINT(first, st.dropped_frames + 1);
	for (uint64_t s = first + 1; s <= 100; s++)
		CHECK_EQ_UINT(read1(sp, 40000, NULL), s);
	spool_close(sp);
}

TEST(spool_shutdown_frames_sort_first)
{
	struct spool *sp;
	CHECK_EQ_INT(spool_open(&sp, spool_dir(), 64 << 20, NULL), 0);
	for (uint64_t s = 20; s < 30; s++)
		append(sp, s, 100);
	/* The in-memory queue at shutdown: older than the spool. */
	const void *frames[10];
	uint32_t lens[10], evs[10];
	uint64_t seqs[10];
	for (int i = 0; i < 10; i++) {
		seqs[i] = 10 + (uint64_t)i;
		lens[i] = flen(seqs[i], 100);
		frames[i] = fdata(seqs[i], lens[i]);
		evs[i] = (uint32_t)seqs[i] % 100;
	}
	CHECK_EQ_INT(spool_write_older(sp, frames, lens, seqs, evs, 10), 0);
	for (int i = 0; i < 10; i++)
		free((void *)frames[i]);
	CHECK_EQ_INT(spool_seq_reserve(sp, 5000), 0);
	spool_close(sp);
	struct spool_info info;
	CHECK_EQ_INT(spool_open(&sp, spool_dir(), 64 << 20, &info), 0);
	CHECK_EQ_UINT(info.frames, 20);
	for (uint64_t s = 10; s < 30; s++)
		CHECK_EQ_UINT(read1(sp, 100, NULL), s);
	CHECK_EQ_UINT(spool_seq_floor(sp), 5000);
	spool_close(sp);
}

TEST(spool_sets_foreign_files_aside)
{
	mkdir(spool_dir(), 0700);
	char path[600];
	snprintf(path, sizeof(path), "%s/%016x.kps", spool_dir(), 77);
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	CHECK(fd >= 0);
	CHECK_EQ_INT(write(fd, "this is not a spool file at all", 31), 31);
	close(fd);
	struct spool *sp;
	struct spool_info info;
	CHECK_EQ_INT(spool_open(&sp, spool_dir(), 64 << 20, &info), 0);
	CHECK_EQ_UINT(info.bad_files, 1);
	CHECK_EQ_UINT(info.frames, 0);
	CHECK_EQ_INT(count_files(spool_dir(), ".bad"), 1);
	spool_close(sp);
}
