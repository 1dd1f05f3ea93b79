/*
 * Tests store/store.c: sealed LSN and restart, duplicate frames, kill -9 during appends and
 * seals, corrupt segments (at open and during a scan), temp leftovers, incomplete seal groups,
 * retention of whole day partitions, torn metadata logs, and queries racing appends.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/internal.h"
#include "tests/unit/store/helpers.h"

#define FRAME 1000

/* Frame lsn's events: deterministic, so any process can rebuild them. */
static void frame_events(uint64_t lsn, struct kp_event *ev, uint64_t day_ns)
{
	uint64_t rng = lsn * 2654435761ull + 1;
	for (int i = 0; i < FRAME; i++) {
		ev[i] = th_event((lsn - 1) * FRAME + (uint64_t)i, &rng, 30);
		ev[i].ts_ns += day_ns;
		ev[i].dur_ns = lsn; /* sum(dur) tells which frames are present */
	}
}

static int64_t count_all(struct store *st)
{
	return th_query_int(st, "SELECT count() FROM events");
}

static void append_frames(struct store *st, uint64_t from, uint64_t to)
{
	static struct kp_event ev[FRAME];
	for (uint64_t l = from; l <= to; l++) {
		frame_events(l, ev, 0);
		CHECK_EQ_INT(store_append(st, l, 1, ev, FRAME, NULL, 0, NULL), 0);
	}
}

static int count_files(const char *dir, const char *suffix)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "find %s -name '*%s' | wc -l", dir, suffix);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

TEST(store_sealed_lsn_restart_and_dups)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 8192, &cfg);
	append_frames(st, 1, 30);
	CHECK_EQ_INT(store_flush(st), 0);
	CHECK_EQ_UINT(store_sealed_lsn(st), 30);
	append_frames(st, 31, 35); /* unsealed at close? close seals them */
	store_close(st);
	st = th_open(kt_tmpdir(), 8192, &cfg);
	CHECK_EQ_UINT(store_sealed_lsn(st), 35);
	CHECK_EQ_INT(count_all(st), 35 * FRAME);
	/* a WAL replay that starts too early duplicates nothing */
	append_frames(st, 20, 40);
	struct store_stats ss;
	store_stats_get(st, &ss);
	CHECK_EQ_UINT(ss.dup_frames, 16);
	CHECK_EQ_INT(count_all(st), 40 * FRAME);
	CHECK_EQ_INT(th_query_int(st, "SELECT sum(dur) FROM events"), FRAME * 40 * 41 / 2);
	store_close(st);
	config_free(&cfg);
}

TEST_SLOW(store_crash_kill9_during_seals, 120)
{
	for (int round = 0; round < 5; round++) {
		char dir[512];
		snprintf(dir, sizeof(dir), "%s/r%d", kt_tmpdir(), round);
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			struct kp_config cfg;
			struct store *st = NULL;
			config_init(&cfg);
			free(cfg.store_data_dir);
			cfg.store_data_dir = strdup(dir);
			cfg.store_memtable_rows = 8192;
			if (store_open(&cfg, &st))
				_exit(3);
			static struct kp_event ev[FRAME];
			for (uint64_t l = 1; l <= 100000; l++) {
				frame_events(l, ev, 0);
				if (store_append(st, l, 1, ev, FRAME, NULL, 0, NULL))
					_exit(4);
				if (l % 37 == 0)
					store_flush(st);
			}
			_exit(0);
		}
		usleep(100000 + (unsigned)round * 70000);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		CHECK(WIFSIGNALED(status));

		struct kp_config cfg;
		struct store *st = th_open(dir, 8192, &cfg);
		CHECK_EQ_INT(count_files(dir, ".tmp"), 0);
		uint64_t L = store_sealed_lsn(st);
		CHECK_GT_INT(L, 0);
		kt_note("round %d: sealed LSN %llu after kill -9", round, (unsigned long long)L);
		CHECK_EQ_INT(count_all(st), (int64_t)L * FRAME);
		CHECK_EQ_INT(th_query_int(st, "SELECT sum(dur) FROM events"),
			     (int64_t)(FRAME * L * (L + 1) / 2));
		/* the WAL replays from the start: exactly the unsealed frames are added */
		append_frames(st, 1, L + 50);
		CHECK_EQ_INT(count_all(st), (int64_t)(L + 50) * FRAME);
		CHECK_EQ_INT(store_flush(st), 0);
		store_close(st);
		st = th_open(dir, 8192, &cfg);
		CHECK_EQ_UINT(store_sealed_lsn(st), L + 50);
		CHECK_EQ_INT(th_query_int(st, "SELECT sum(dur) FROM events"),
			     (int64_t)(FRAME * (L + 50) * (L + 51) / 2));
		store_close(st);
		config_free(&cfg);
	}
}

static char *first_segment(const char *dir)
{
	char cmd[1024];
	static char path[1024];
	snprintf(cmd, sizeof(cmd), "find %s/events -name '*.kps' | sort | head -1", dir);
	FILE *p = popen(cmd, "r");
	CHECK(p && fgets(path, sizeof(path), p));
	pclose(p);
	path[strcspn(path, "\n")] = '\0';
	return path;
}

TEST(store_corrupt_segment_at_open_is_quarantined)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 8192, &cfg);
	append_frames(st, 1, 40);
	CHECK_EQ_INT(store_flush(st), 0);
	store_close(st);
	char *seg = first_segment(kt_tmpdir());
	struct store__seg *s;
	CHECK_EQ_INT(store__seg_open(seg, true, &s), 0);
	uint32_t rows = s->n_rows;
	uint64_t at = (uint64_t)(s->g[0].blk[SC_DUR] - s->map) + 30;
	store__seg_unref(s);
	int fd = open(seg, O_RDWR);
	uint8_t b;
	CHECK_EQ_INT(pread(fd, &b, 1, (off_t)at), 1);
	b ^= 1;
	CHECK_EQ_INT(pwrite(fd, &b, 1, (off_t)at), 1);
	close(fd);

	st = th_open(kt_tmpdir(), 8192, &cfg);
	struct store_stats ss;
	store_stats_get(st, &ss);
	CHECK_EQ_UINT(ss.corrupt_segments, 1);
	CHECK_EQ_INT(count_all(st), 40 * FRAME - (int64_t)rows);
	CHECK(access(seg, F_OK) != 0);
	char q[600];
	snprintf(q, sizeof(q), "%s/quarantine", kt_tmpdir());
	CHECK_EQ_INT(count_files(q, ".kps"), 1);
	store_close(st);
	config_free(&cfg);
}

TEST(store_corrupt_block_during_scan_is_not_served)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 8192, &cfg);
	append_frames(st, 1, 40);
	CHECK_EQ_INT(store_flush(st), 0);
	int64_t before = count_all(st);
	/* bit rot after open: the mapping is shared, the scan sees the damage */
	char *seg = first_segment(kt_tmpdir());
	struct store__seg *s;
	CHECK_EQ_INT(store__seg_open(seg, true, &s), 0);
	uint32_t rows = s->n_rows;
	uint64_t at = (uint64_t)(s->g[0].blk[SC_DUR] - s->map) + 40;
	store__seg_unref(s);
	int fd = open(seg, O_RDWR);
	uint8_t b;
	CHECK_EQ_INT(pread(fd, &b, 1, (off_t)at), 1);
	b ^= 0x80;
	CHECK_EQ_INT(pwrite(fd, &b, 1, (off_t)at), 1);
	close(fd);
	const char *sql = "SELECT sum(dur), count() FROM events";
	struct query_opts o = {.max_rows = 1000, .timeout_ms = 10000};
	struct query_result *r = NULL;
	struct query_error err;
	int rc = query_exec(st, sql, strlen(sql), &o, &r, &err);
	CHECK_EQ_INT(rc, STORE_ECORRUPT);
	CHECK_CONTAINS(err.message, "quarantined");
	CHECK(r == NULL);
	struct store_stats ss;
	store_stats_get(st, &ss);
	CHECK_EQ_UINT(ss.corrupt_segments, 1);
	CHECK_EQ_INT(count_all(st), before - rows);
	store_close(st);
	config_free(&cfg);
}

static void write_state(const char *dir, uint64_t sealed, uint64_t next)
{
	uint8_t b[32] = {0};
	uint32_t m = 0x5453504bu;
	uint16_t v = 1;
	memcpy(b, &m, 4);
	memcpy(b + 4, &v, 2);
	memcpy(b + 8, &sealed, 8);
	memcpy(b + 16, &next, 8);
	uint64_t x = XXH3_64bits(b, 24);
	memcpy(b + 24, &x, 8);
	char p[600];
	snprintf(p, sizeof(p), "%s/events/store.state", dir);
	int fd = open(p, O_WRONLY | O_TRUNC | O_CREAT, 0644);
	CHECK_EQ_INT(write(fd, b, 32), 32);
	close(fd);
}

TEST(store_recovery_tmp_files_and_incomplete_groups)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 65536, &cfg);
	/* one memtable spanning two days: one seal, two parts */
	static struct kp_event ev[FRAME];
	frame_events(1, ev, 0);
	CHECK_EQ_INT(store_append(st, 1, 1, ev, FRAME, NULL, 0, NULL), 0);
	frame_events(2, ev, 86400ull * NSEC_PER_SEC);
	CHECK_EQ_INT(store_append(st, 2, 1, ev, FRAME, NULL, 0, NULL), 0);
	CHECK_EQ_INT(store_flush(st), 0);
	store_close(st);
	CHECK_EQ_INT(count_files(kt_tmpdir(), ".kps"), 2);
	/* a crash after the first rename, before the second and before store.state */
	char *seg = first_segment(kt_tmpdir());
	CHECK_EQ_INT(unlink(seg), 0);
	write_state(kt_tmpdir(), 0, 1);
	char tmp[700], d[600];
	snprintf(d, sizeof(d), "%s/events/2020-01-01", kt_tmpdir());
	mkdir(d, 0755);
	snprintf(tmp, sizeof(tmp), "%s/000000000042.kps.tmp", d);
	close(open(tmp, O_CREAT | O_WRONLY, 0644));
	st = th_open(kt_tmpdir(), 65536, &cfg);
	CHECK_EQ_UINT(store_sealed_lsn(st), 0);
	CHECK_EQ_INT(count_all(st), 0);
	CHECK(access(tmp, F_OK) != 0);
	CHECK_EQ_INT(count_files(kt_tmpdir(), ".kps"), 0);
	/* the WAL replay restores both frames */
	frame_events(1, ev, 0);
	CHECK_EQ_INT(store_append(st, 1, 1, ev, FRAME, NULL, 0, NULL), 0);
	frame_events(2, ev, 86400ull * NSEC_PER_SEC);
	CHECK_EQ_INT(store_append(st, 2, 1, ev, FRAME, NULL, 0, NULL), 0);
	CHECK_EQ_INT(store_flush(st), 0);
	CHECK_EQ_INT(count_all(st), 2 * FRAME);
	store_close(st);
	config_free(&cfg);
}

TEST(store_retention_removes_whole_expired_days)
{
	struct kp_config cfg;
	config_init(&cfg);
	free(cfg.store_data_dir);
	cfg.store_data_dir = strdup(kt_tmpdir());
	cfg.store_retention_days = 30;
	struct store *st;
	CHECK_EQ_INT(store_open(&cfg, &st), 0);
	uint64_t day = 86400ull * NSEC_PER_SEC, now = T0_NS + 100 * day;
	static struct kp_event ev[FRAME];
	uint64_t offs[] = {100 * day - 40 * day, 100 * day - 35 * day, 100 * day - day};
	for (int i = 0; i < 3; i++) {
		frame_events((uint64_t)i + 1, ev, offs[i] - 0);
		CHECK_EQ_INT(store_append(st, (uint64_t)i + 1, 1, ev, FRAME, NULL, 0, NULL), 0);
		CHECK_EQ_INT(store_flush(st), 0);
	}
	CHECK_EQ_INT(count_all(st), 3 * FRAME);
	char other[600];
	snprintf(other, sizeof(other), "%s/events/not-a-day", kt_tmpdir());
	mkdir(other, 0755);
	int dirs_before = count_files(kt_tmpdir(), "-??");
	CHECK_EQ_INT(store_retention_run(st, now), 2);
	CHECK_EQ_INT(count_all(st), FRAME);
	CHECK_EQ_INT(th_query_int(st, "SELECT min(dur) FROM events"), 3);
	CHECK_EQ_INT(count_files(kt_tmpdir(), "-??"), dirs_before - 2);
	CHECK(access(other, F_OK) == 0);
	struct store_stats ss;
	store_stats_get(st, &ss);
	CHECK_EQ_UINT(ss.partitions_expired, 2);
	CHECK_EQ_INT(store_retention_run(st, now), 0);
	store_close(st);
	config_free(&cfg);
}

TEST(store_meta_log_torn_tail)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 8192, &cfg);
	struct wire_batch mb = {0};
	th_proc_meta(&mb, 100, "nginx", "web");
	static struct kp_event ev[FRAME];
	frame_events(1, ev, 0);
	CHECK_EQ_INT(store_append(st, 1, 1, ev, FRAME, mb.meta.data, mb.meta.len, NULL), 0);
	/* a malformed record is skipped and counted */
	uint8_t junk[7] = {2, 0, 3, 0, 1, 2, 3}; /* a PROC record too short to parse */
	CHECK_EQ_INT(store_append(st, 2, 1, ev, 1, junk, sizeof(junk), NULL), 0);
	struct store_stats ss;
	store_stats_get(st, &ss);
	CHECK_EQ_UINT(ss.bad_meta, 1);
	CHECK_EQ_INT(store_flush(st), 0);
	store_close(st);
	char p[600];
	snprintf(p, sizeof(p), "%s/events/meta.log", kt_tmpdir());
	int fd = open(p, O_WRONLY | O_APPEND);
	CHECK_EQ_INT(write(fd, "\x40\x00\x00\x00garbage", 11), 11);
	close(fd);
	st = th_open(kt_tmpdir(), 8192, &cfg);
	CHECK_EQ_INT(th_query_int(st, "SELECT count() FROM events WHERE comm = 'nginx'"),
		     th_query_int(st, "SELECT count() FROM events WHERE pid = 100"));
	CHECK_GT_INT(th_query_int(st, "SELECT count() FROM events WHERE comm = 'nginx'"), 0);
	store_close(st);
	wire_batch_free(&mb);
	config_free(&cfg);
}

struct race {
	struct store *st;
	atomic_int done;
	atomic_llong appended;
};

static void *appender(void *arg)
{
	struct race *r = arg;
	static struct kp_event ev[FRAME];
	for (uint64_t l = 1; l <= 120; l++) {
		frame_events(l, ev, 0);
		store_append(r->st, l, 1, ev, FRAME, NULL, 0, NULL);
		atomic_store(&r->appended, (long long)l * FRAME);
	}
	atomic_store(&r->done, 1);
	return NULL;
}

TEST(store_queries_race_appends_and_seals)
{
	struct kp_config cfg;
	struct race r = {0};
	r.st = th_open(kt_tmpdir(), 8192, &cfg);
	pthread_t t;
	pthread_create(&t, NULL, appender, &r);
	int64_t last = 0;
	int checks = 0;
	while (!atomic_load(&r.done) || checks < 5) {
		long long lo = atomic_load(&r.appended);
		int64_t c = count_all(r.st);
		long long hi = atomic_load(&r.appended) + FRAME;
		CHECKF(c >= last && c >= lo && c <= hi,
		       "count %lld, last %lld, appended %lld..%lld", (long long)c, (long long)last,
		       lo, hi);
		last = c;
		checks++;
	}
	pthread_join(t, NULL);
	CHECK_EQ_INT(count_all(r.st), 120 * FRAME);
	CHECK_EQ_INT(th_query_int(r.st, "SELECT sum(dur) FROM events"), FRAME * 120 * 121 / 2);
	store_close(r.st);
	config_free(&cfg);
}

TEST(store_bad_clock_does_not_stall_seals)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 8192, &cfg);
	static struct kp_event ev[2];
	uint64_t rng = 1;
	ev[0] = th_event(0, &rng, 3);
	ev[1] = th_event(1, &rng, 3);
	ev[1].ts_ns += 600ull * 86400 * NSEC_PER_SEC; /* 600 days apart in one memtable */
	CHECK_EQ_INT(store_append(st, 1, 1, ev, 2, NULL, 0, NULL), 0);
	CHECK_EQ_INT(store_flush(st), 0);
	CHECK_EQ_UINT(store_sealed_lsn(st), 1);
	CHECK_EQ_INT(count_files(kt_tmpdir(), ".kps"), 1);
	CHECK_EQ_INT(count_all(st), 2);
	store_close(st);
	config_free(&cfg);
}
