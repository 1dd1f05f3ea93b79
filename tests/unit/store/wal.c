/*
 * Tests store/wal.c: round trips across files, torn tails cut, damage set aside, replay from an
 * LSN, release + dedup state across restarts, a model test of random operations with crashes
 * (a child process appends and dies, losing part of its unsynced tail), and injected I/O faults.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "store/wal.h"
#include "tests/test.h"

/* Payload of record (node, seq): deterministic bytes, length from the seq. */
static uint32_t payload_len(uint64_t seq)
{
	return (uint32_t)(1 + (seq * 2654435761u) % 3000);
}

static void payload_fill(uint8_t *p, uint32_t len, uint64_t node, uint64_t seq)
{
	uint64_t x = node * 31 + seq * 0x9E3779B97F4A7C15ull;
	for (uint32_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static uint64_t append1(struct wal *w, uint64_t node, uint64_t seq)
{
	uint8_t buf[4096];
	uint32_t len = payload_len(seq);
	payload_fill(buf, len, node, seq);
	/* Split in two iovecs like the ingest does (frame header, body). */
	uint32_t h = len / 3;
	struct iovec iov[2] = {{buf, h}, {buf + h, len - h}};
	uint64_t lsn = 0;
	int r = wal_append(w, node, seq, iov, 2, &lsn);
	CHECKF(r == 0, "wal_append: %s", wal_strerror(r));
	return lsn;
}

struct seen {
	uint64_t n, first, last;
	uint64_t lsn[4096], node[4096], seq[4096];
	int bad;
};

static int on_rec(void *ctx, uint64_t lsn, uint64_t node, uint64_t seq, const void *p, uint32_t len)
{
	struct seen *s = ctx;
	uint8_t buf[4096];
	if (len != payload_len(seq) || len > sizeof(buf)) {
		s->bad++;
		return 0;
	}
	payload_fill(buf, len, node, seq);
	if (memcmp(buf, p, len))
		s->bad++;
	if (s->n < 4096) {
		s->lsn[s->n] = lsn, s->node[s->n] = node, s->seq[s->n] = seq;
	}
	if (!s->n)
		s->first = lsn;
	s->last = lsn;
	s->n++;
	return 0;
}

static void wal_dir(char *out, size_t cap)
{
	snprintf(out, cap, "%s/wal", kt_tmpdir());
}

static int count_wal_files(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += strlen(e->d_name) == 20 && !strcmp(e->d_name + 16, ".wal");
	if (d)
		closedir(d);
	return n;
}

/* The newest .wal file's path. */
static void newest_file(const char *dir, char *out, size_t cap)
{
	DIR *d = opendir(dir);
	char best[64] = "";
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strlen(e->d_name) == 20 && !strcmp(e->d_name + 16, ".wal") &&
		    strcmp(e->d_name, best) > 0)
			snprintf(best, sizeof(best), "%s", e->d_name);
	if (d)
		closedir(d);
	snprintf(out, cap, "%s/%s", dir, best);
}

static off_t file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? st.st_size : -1;
}

TEST(wal_roundtrip_across_files)
{
	char dir[512];
	wal_dir(dir, sizeof(dir));
	struct wal *w;
	struct wal_opts o = {.file_max_bytes = 16384};
	struct wal_recovery rec;
	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), 0);
	CHECK_EQ_INT(rec.records, 0);
	for (uint64_t i = 1; i <= 200; i++)
		CHECK_EQ_UINT(append1(w, 1 + i % 3, i), i);
	CHECK_EQ_INT(wal_durable_lsn(w), 0);
	CHECK_EQ_INT(wal_sync(w), 0);
	CHECK_EQ_UINT(wal_durable_lsn(w), 200);
	uint64_t seq, lsn;
	CHECK(wal_node_max(w, 2, &seq, &lsn));
	CHECK_EQ_UINT(seq, 199);
	CHECK_EQ_UINT(lsn, 199);
	CHECK(!wal_node_max(w, 77, &seq, &lsn));
	wal_close(w);
	CHECK_GT_INT(count_wal_files(dir), 5);

	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), 0);
	CHECK_EQ_UINT(rec.records, 200);
	CHECK_EQ_UINT(rec.torn_bytes, 0);
	CHECK_EQ_UINT(rec.aside_bytes, 0);
	CHECK_EQ_UINT(rec.nodes, 3);
	static struct seen s;
	memset(&s, 0, sizeof(s));
	CHECK_EQ_INT(wal_replay(w, 1, on_rec, &s), 0);
	CHECK_EQ_UINT(s.n, 200);
	CHECK_EQ_INT(s.bad, 0);
	for (uint64_t i = 0; i < 200; i++) {
		CHECK_EQ_UINT(s.lsn[i], i + 1);
		CHECK_EQ_UINT(s.seq[i], i + 1);
	}
	memset(&s, 0, sizeof(s));
	CHECK_EQ_INT(wal_replay(w, 137, on_rec, &s), 0);
	CHECK_EQ_UINT(s.n, 64);
	CHECK_EQ_UINT(s.first, 137);
	/* Appends continue after the last LSN. */
	CHECK_EQ_UINT(append1(w, 1, 1000), 201);
	wal_close(w);
}

TEST(wal_lock_refuses_second_writer)
{
	char dir[512];
	wal_dir(dir, sizeof(dir));
	struct wal *a, *b;
	CHECK_EQ_INT(wal_open(&a, dir, NULL, NULL), 0);
	CHECK_EQ_INT(wal_open(&b, dir, NULL, NULL), -EBUSY);
	struct wal_opts ro = {.read_only = 1};
	CHECK_EQ_INT(wal_open(&b, dir, &ro, NULL), 0); /* a reader is fine */
	CHECK_EQ_INT(append1(a, 1, 1), 1);
	CHECK_EQ_INT(wal_sync(a), 0);
	uint64_t lsn;
	struct iovec iov = {"x", 1};
	CHECK_EQ_INT(wal_append(b, 1, 2, &iov, 1, &lsn), WAL_ERDONLY);
	wal_close(b);
	wal_close(a);
}

TEST(wal_torn_tail_is_cut)
{
	char dir[512], path[600];
	wal_dir(dir, sizeof(dir));
	srand(7);
	for (int round = 0; round < 40; round++) {
		struct wal *w;
		struct wal_recovery rec;
		CHECK_EQ_INT(wal_open(&w, dir, NULL, &rec), 0);
		uint64_t base = wal_last_lsn(w);
		for (int i = 0; i < 5; i++)
			append1(w, 9, base + (uint64_t)i + 1);
		CHECK_EQ_INT(wal_sync(w), 0);
		uint64_t last = wal_last_lsn(w);
		wal_close(w);
		newest_file(dir, path, sizeof(path));
		off_t size = file_size(path);
		/* Tear inside the last record (never its first byte: that would be a clean cut),
		 * or leave a complete record and add garbage, or a half record header. */
		int mode = rand() % 3;
		int fd = open(path, O_RDWR);
		CHECK(fd >= 0);
		uint64_t expect = last;
		if (mode == 0) {
			uint32_t lastlen = 40 + payload_len(base + 5);
			CHECK_EQ_INT(ftruncate(fd, size - 1 - rand() % (lastlen - 1)), 0);
			expect = last - 1;
		} else if (mode == 1) {
			char junk[300];
			for (size_t i = 0; i < sizeof(junk); i++)
				junk[i] = (char)rand();
			ssize_t k = 1 + rand() % 299;
			CHECK_EQ_INT(pwrite(fd, junk, (size_t)k, size), k);
		} else {
			uint8_t half[20] = {'K', 'P', 'R', '1', 10};
			CHECK_EQ_INT(pwrite(fd, half, sizeof(half), size), (int)sizeof(half));
		}
		close(fd);
		CHECK_EQ_INT(wal_open(&w, dir, NULL, &rec), 0);
		CHECK_EQ_UINT(wal_last_lsn(w), expect);
		CHECK_GT_INT(rec.torn_bytes, 0);
		CHECK_EQ_UINT(rec.aside_bytes, 0);
		static struct seen s;
		memset(&s, 0, sizeof(s));
		CHECK_EQ_INT(wal_replay(w, 1, on_rec, &s), 0);
		CHECK_EQ_INT(s.bad, 0);
		CHECK_EQ_UINT(s.last, expect);
		wal_close(w);
		/* A second open finds nothing left to repair. */
		CHECK_EQ_INT(wal_open(&w, dir, NULL, &rec), 0);
		CHECK_EQ_UINT(rec.torn_bytes, 0);
		wal_close(w);
	}
}

TEST(wal_damage_stops_recovery_and_is_set_aside)
{
	char dir[512], path[600];
	wal_dir(dir, sizeof(dir));
	struct wal *w;
	struct wal_opts o = {.file_max_bytes = 20000};
	struct wal_recovery rec;
	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), 0);
	for (uint64_t i = 1; i <= 100; i++)
		append1(w, 5, i);
	CHECK_EQ_INT(wal_sync(w), 0);
	wal_close(w);
	/* Flip one payload byte of the 3rd record of the first file (LSN 1). */
	snprintf(path, sizeof(path), "%s/%016x.wal", dir, 1);
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	off_t off = 32 + (40 + payload_len(1)) + (40 + payload_len(2)) + 40 + 1;
	uint8_t b;
	CHECK_EQ_INT(pread(fd, &b, 1, off), 1);
	b ^= 0x40;
	CHECK_EQ_INT(pwrite(fd, &b, 1, off), 1);
	close(fd);

	/* Read-only: reports, changes nothing. */
	struct wal_opts ro = {.read_only = 1};
	CHECK_EQ_INT(wal_open(&w, dir, &ro, &rec), 0);
	CHECK_EQ_UINT(rec.records, 2);
	CHECK_GT_INT(rec.aside_bytes, 0);
	CHECK_CONTAINS(rec.note, "damaged record");
	wal_close(w);
	int files_before = count_wal_files(dir);

	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), 0);
	CHECK_EQ_UINT(rec.records, 2);
	CHECK_EQ_UINT(rec.torn_bytes, 0);
	CHECK_GT_INT(rec.aside_bytes, 0);
	CHECK_EQ_UINT(wal_last_lsn(w), 2);
	/* The dedup table only knows what was kept, so resends of the rest are accepted. */
	uint64_t seq, lsn;
	CHECK(wal_node_max(w, 5, &seq, &lsn));
	CHECK_EQ_UINT(seq, 2);
	CHECK_EQ_UINT(append1(w, 5, 3), 3);
	CHECK_EQ_INT(wal_sync(w), 0);
	wal_close(w);
	CHECK_LT_INT(count_wal_files(dir), files_before + 1);
	char aside[600];
	snprintf(aside, sizeof(aside), "%s/aside", dir);
	DIR *d = opendir(aside);
	CHECK(d != NULL);
	int sub = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		sub += e->d_name[0] != '.';
	closedir(d);
	CHECK_EQ_INT(sub, 1);
	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), 0);
	CHECK_EQ_UINT(rec.records, 3);
	CHECK_EQ_UINT(rec.aside_bytes, 0);
	wal_close(w);
}

TEST(wal_release_keeps_dedup_and_lsn_across_restarts)
{
	char dir[512];
	wal_dir(dir, sizeof(dir));
	struct wal *w;
	struct wal_opts o = {.file_max_bytes = 8192};
	struct wal_recovery rec;
	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), 0);
	for (uint64_t i = 1; i <= 60; i++)
		append1(w, i % 2 ? 0xA : 0xB, 1000 + i);
	/* Nothing is released past the durable LSN. */
	CHECK_EQ_INT(wal_release(w, 60), 0);
	CHECK_EQ_INT(wal_sync(w), 0);
	int before = count_wal_files(dir);
	int n = wal_release(w, 45);
	CHECK_GT_INT(n, 0);
	CHECK_EQ_INT(count_wal_files(dir), before - n);
	uint64_t first = wal_first_lsn(w);
	CHECK_GT_INT(first, 1);
	CHECK_LE_INT(first, 46);
	static struct seen s;
	memset(&s, 0, sizeof(s));
	CHECK_EQ_INT(wal_replay(w, 1, on_rec, &s), 0);
	CHECK_EQ_UINT(s.first, first);
	CHECK_EQ_UINT(s.last, 60);
	wal_close(w);

	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), 0);
	uint64_t seq, lsn;
	CHECK(wal_node_max(w, 0xA, &seq, &lsn));
	CHECK_EQ_UINT(seq, 1059);
	CHECK(wal_node_max(w, 0xB, &seq, &lsn));
	CHECK_EQ_UINT(seq, 1060);
	/* Release everything (the active file stays), restart: dedup and LSNs survive on the
	 * checkpoint alone. */
	append1(w, 0xC, 7);
	CHECK_EQ_INT(wal_sync(w), 0);
	wal_close(w);
	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), 0);
	CHECK_GT_INT(wal_release(w, 61), 0);
	CHECK_EQ_UINT(wal_first_lsn(w), 0);
	wal_close(w);
	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), 0);
	CHECK_EQ_UINT(rec.records, 0);
	CHECK(wal_node_max(w, 0xA, &seq, &lsn));
	CHECK_EQ_UINT(seq, 1059);
	CHECK_EQ_UINT(lsn, 0);
	CHECK(wal_node_max(w, 0xC, &seq, &lsn));
	CHECK_EQ_UINT(seq, 7);
	CHECK_EQ_UINT(append1(w, 0xC, 8), 62);
	wal_close(w);

	/* A damaged checkpoint is refused with its own error. */
	char ck[600];
	snprintf(ck, sizeof(ck), "%s/checkpoint", dir);
	int fd = open(ck, O_RDWR);
	CHECK(fd >= 0);
	CHECK_EQ_INT(pwrite(fd, "\xff", 1, 30), 1);
	close(fd);
	CHECK_EQ_INT(wal_open(&w, dir, &o, &rec), WAL_ECHECKPOINT);
}

/*
 * Model test. Sessions of random operations run in a child process that then exits cleanly or
 * "crashes": it dies after cutting the newest file at a random point past what was synced (the
 * page cache lost the unsynced tail). The model lives in shared memory. After each session the
 * parent reopens and checks: the records are exactly a prefix of what was appended, at least
 * everything durable; the dedup table matches; replay from random LSNs matches the model.
 */
#define MODEL_MAX 6000
struct model {
	uint64_t n; /* records appended (LSN = index + 1) */
	uint64_t node[MODEL_MAX], seq[MODEL_MAX];
	uint64_t durable;     /* highest LSN known durable */
	uint64_t released;    /* highest LSN passed to wal_release */
	uint64_t synced_size; /* size of the newest file at the last sync */
	char synced_file[600];
};

static uint64_t model_max_seq(const struct model *m, uint64_t node, uint64_t upto)
{
	uint64_t best = 0;
	for (uint64_t i = 0; i < upto; i++)
		if (m->node[i] == node && m->seq[i] > best)
			best = m->seq[i];
	return best;
}

static int model_check_rec(void *ctx, uint64_t lsn, uint64_t node, uint64_t seq, const void *p,
			   uint32_t len)
{
	struct model *m = ctx;
	if (lsn == 0 || lsn > m->n || m->node[lsn - 1] != node || m->seq[lsn - 1] != seq)
		return 1;
	uint8_t buf[4096];
	payload_fill(buf, len, node, seq);
	return len != payload_len(seq) || memcmp(buf, p, len) ? 2 : 0;
}

static void session(struct model *m, const char *dir, unsigned seed)
{
	srand(seed);
	struct wal *w;
	struct wal_opts o = {.file_max_bytes = 4096 + (uint64_t)(rand() % 20000)};
	if (wal_open(&w, dir, &o, NULL) != 0)
		_exit(10);
	int ops = 20 + rand() % 200;
	for (int i = 0; i < ops && m->n < MODEL_MAX - 1; i++) {
		int op = rand() % 100;
		if (op < 70) {
			uint64_t node = 1 + (uint64_t)(rand() % 4);
			uint64_t seq = model_max_seq(m, node, m->n) + 1 + (uint64_t)(rand() % 3);
			uint64_t lsn = append1(w, node, seq);
			if (lsn != m->n + 1)
				_exit(11);
			m->node[m->n] = node, m->seq[m->n] = seq;
			m->n++;
		} else if (op < 85) {
			if (wal_sync(w) != 0)
				_exit(12);
			m->durable = wal_durable_lsn(w);
			if (m->durable != m->n)
				_exit(13);
			newest_file(dir, m->synced_file, sizeof(m->synced_file));
			m->synced_size = (uint64_t)file_size(m->synced_file);
		} else if (op < 92) {
			uint64_t upto = m->durable ? (uint64_t)rand() % (m->durable + 1) : 0;
			if (wal_release(w, upto) < 0)
				_exit(14);
			if (upto > m->released)
				m->released = upto;
		} else {
			uint64_t from = 1 + (uint64_t)rand() % (m->n + 1);
			if (wal_replay(w, from, model_check_rec, m) != 0)
				_exit(15);
		}
	}
	if (rand() % 2) {
		wal_close(w);
		m->durable = m->n;
		_exit(0);
	}
	/* Crash: the newest file loses a random part of what was not synced. */
	char newest[600];
	newest_file(dir, newest, sizeof(newest));
	off_t size = file_size(newest);
	off_t from = !strcmp(newest, m->synced_file) ? (off_t)m->synced_size : 0;
	if (size > from && truncate(newest, from + rand() % (size - from + 1)) != 0)
		_exit(16);
	_exit(0);
}

TEST_SLOW(wal_model_random_ops_and_crashes, 120)
{
	char dir[512];
	wal_dir(dir, sizeof(dir));
	struct model *m =
		mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	memset(m, 0, sizeof(*m));
	int crashes = 0;
	for (unsigned round = 0; round < 60 && m->n < MODEL_MAX - 300; round++) {
		uint64_t n_before = m->n;
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0)
			session(m, dir, 1000 + round);
		int status;
		CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
		CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "session %u exit %d", round,
		       WEXITSTATUS(status));
		struct wal *w;
		struct wal_recovery rec;
		struct wal_opts o = {.file_max_bytes = 10000};
		int r = wal_open(&w, dir, &o, &rec);
		CHECKF(r == 0, "open after round %u: %s", round, wal_strerror(r));
		uint64_t last = wal_last_lsn(w);
		CHECKF(last >= m->durable && last <= m->n,
		       "round %u: recovered up to %" PRIu64 ", durable %" PRIu64
		       ", appended %" PRIu64,
		       round, last, m->durable, m->n);
		CHECK_EQ_UINT(rec.aside_bytes, 0);
		crashes += last < m->n || rec.torn_bytes > 0;
		m->n = last; /* what was lost was never durable */
		m->durable = last;
		m->synced_file[0] = '\0';
		/* Nothing above the released LSN is gone. */
		uint64_t first = wal_first_lsn(w);
		CHECK(first == 0 || first <= m->released + 1);
		if (first)
			CHECK_EQ_INT(wal_replay(w, first, model_check_rec, m), 0);
		for (uint64_t node = 1; node <= 4; node++) {
			uint64_t seq = 0, lsn;
			uint64_t want = model_max_seq(m, node, m->n);
			int known = wal_node_max(w, node, &seq, &lsn);
			CHECKF(want == 0 ? !known || seq == 0 : known && seq == want,
			       "round %u node %" PRIu64 ": wal %" PRIu64 " model %" PRIu64, round,
			       node, seq, want);
		}
		wal_close(w);
		(void)n_before;
	}
	kt_note("model: %" PRIu64 " records, %d sessions lost an unsynced tail", m->n, crashes);
	CHECK_GT_INT(crashes, 3);
}

/* ---- injected I/O faults ---- */

static int fail_write_after = -1, fail_sync;
static ssize_t faulty_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (fail_write_after == 0) {
		/* A short write, then ENOSPC: the record must not stay half written. */
		fail_write_after = -2;
		struct iovec one = {iov[0].iov_base, iov[0].iov_len / 2};
		return pwritev(fd, &one, 1, off);
	}
	if (fail_write_after == -2) {
		fail_write_after = -1;
		errno = ENOSPC;
		return -1;
	}
	if (fail_write_after > 0)
		fail_write_after--;
	return pwritev(fd, iov, cnt, off);
}
static int faulty_fdatasync(int fd)
{
	if (fail_sync) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

TEST(wal_io_faults)
{
	char dir[512];
	wal_dir(dir, sizeof(dir));
	static const struct wal_io io = {faulty_pwritev, faulty_fdatasync};
	struct wal_opts o = {.io = &io};
	struct wal *w;
	CHECK_EQ_INT(wal_open(&w, dir, &o, NULL), 0);
	for (uint64_t i = 1; i <= 10; i++)
		append1(w, 1, i);
	/* ENOSPC in the middle of a record: error returned, partial record cut, WAL usable. */
	fail_write_after = 0;
	uint8_t buf[4096];
	payload_fill(buf, payload_len(11), 1, 11);
	struct iovec iov = {buf, payload_len(11)};
	uint64_t lsn = 0;
	CHECK_EQ_INT(wal_append(w, 1, 11, &iov, 1, &lsn), -ENOSPC);
	CHECK_EQ_INT(wal_failed(w), 0);
	uint64_t seq;
	CHECK(wal_node_max(w, 1, &seq, &lsn));
	CHECK_EQ_UINT(seq, 10); /* the failed frame is not counted as held */
	CHECK_EQ_UINT(append1(w, 1, 11), 11);
	CHECK_EQ_INT(wal_sync(w), 0);
	CHECK_EQ_UINT(wal_durable_lsn(w), 11);
	/* fdatasync fails: nothing more becomes durable, the WAL refuses appends. */
	append1(w, 1, 12);
	fail_sync = 1;
	CHECK_EQ_INT(wal_sync(w), WAL_EFAILED);
	CHECK_EQ_UINT(wal_durable_lsn(w), 11);
	CHECK_EQ_INT(wal_failed(w), WAL_EFAILED);
	iov.iov_len = 1;
	CHECK_EQ_INT(wal_append(w, 1, 13, &iov, 1, &lsn), WAL_EFAILED);
	wal_close(w);
	fail_sync = 0;
	/* Restart: every record is checked; the half-written one never existed. */
	struct wal_recovery rec;
	CHECK_EQ_INT(wal_open(&w, dir, NULL, &rec), 0);
	CHECK_EQ_UINT(rec.records, 12);
	CHECK_EQ_UINT(rec.torn_bytes, 0);
	static struct seen s;
	memset(&s, 0, sizeof(s));
	CHECK_EQ_INT(wal_replay(w, 1, on_rec, &s), 0);
	CHECK_EQ_UINT(s.n, 12);
	CHECK_EQ_INT(s.bad, 0);
	wal_close(w);
}
