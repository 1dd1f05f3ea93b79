/*
 * Tests replay/capstore.c, capbuild.c and captable.c without the kernel: frames carrying capture
 * records (WIRE_META_CAPTURE pieces, as agents send them) are stored, scanned by pid and time,
 * survive a torn tail and a restart, rotate into indexed logs, expire by age and size, and become
 * recordings whose metadata (command line, exit status, stdout inode, peers) comes from the
 * records themselves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/wire.h"
#include "replay/capstore.h"
#include "replay/rec.h"
#include "replay/replay.h"
#include "tests/test.h"

#define OFF 1700000000000000000ll /* clock offset: monotonic ns -> epoch ns */

static uint8_t rb[KP_CAP_REC_MAX];

static struct kp_cap_rec *mk(uint8_t kind, uint32_t pid, uint32_t tid, uint16_t nr, uint64_t ts,
			     int64_t ret, const void *p, uint32_t n)
{
	struct kp_cap_rec *c = (void *)rb;
	memset(rb, 0, KP_CAP_HDR_LEN + n + 64);
	c->kind = kind;
	c->pid = pid;
	c->tid = tid;
	c->nr = nr;
	c->ts_enter = ts - 10;
	c->ts_exit = ts;
	c->ret = ret;
	c->payload_len = n;
	if (n)
		memcpy(rb + KP_CAP_HDR_LEN, p, n);
	c->len = (KP_CAP_HDR_LEN + n + 7) & ~7u;
	return c;
}

/* A frame's metadata: the records' pieces (plus a node record, as real frames have). */
struct frame {
	struct wire_batch b;
};

static void fr_add(struct frame *f, const struct kp_cap_rec *c)
{
	CHECK_GE_INT(wire_batch_add_capture(&f->b, c, c->len, OFF), 1);
}

static int fr_store(struct capstore *cs, struct frame *f, uint64_t lsn, uint64_t node)
{
	wire_batch_add_node(&f->b, "n", "k");
	int r = capstore_append_frame(cs, lsn, node, f->b.meta.data, f->b.meta.len);
	wire_batch_free(&f->b);
	return r;
}

struct count {
	int n, pid11, big;
	uint64_t last_ts;
};

static int count_cb(void *ctx, uint64_t node, int64_t clock_off, const struct kp_cap_rec *c)
{
	struct count *k = ctx;
	CHECK_EQ_INT(clock_off, OFF);
	k->n++;
	k->pid11 += c->pid == 11;
	k->big += c->payload_len == 20000;
	k->last_ts = c->ts_exit;
	return 0;
}

static struct count scan_all(struct capstore *cs, uint32_t pid, uint64_t from, uint64_t to)
{
	struct count k = {0};
	struct capstore_sel sel = {0, pid ? &pid : NULL, pid ? 1 : 0, from, to};
	CHECK_EQ_INT(capstore_scan(cs, &sel, count_cb, &k, NULL, NULL), 0);
	return k;
}

static struct capstore *open_at(const char *dir, uint64_t file_max)
{
	struct capstore_opts o = {
		.dir = dir, .max_bytes = 1ull << 30, .retention_days = 30, .file_max = file_max};
	struct capstore *cs;
	char err[256];
	CHECKF(capstore_open(&cs, &o, err, sizeof(err)) == 0, "%s", err);
	return cs;
}

TEST(capstore_append_scan_recover)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/syscalls", kt_tmpdir());
	struct capstore *cs = open_at(dir, 0);
	CHECK_EQ_UINT(capstore_recovered_lsn(cs), 0);
	struct frame f = {0};
	fr_add(&f, mk(KP_CAP_CALL, 10, 10, 0, 1000, 5, "hello", 5));
	fr_add(&f, mk(KP_CAP_CALL, 10, 10, 1, 2000, 3, "abc", 3));
	fr_add(&f, mk(KP_CAP_CALL, 11, 11, 0, 3000, 0, NULL, 0));
	CHECK_EQ_INT(fr_store(cs, &f, 1, 7), 3);
	CHECK_EQ_INT(fr_store(cs, &f, 2, 7), 0); /* a frame without capture */
	static uint8_t big[20000];
	memset(big, 'x', sizeof(big));
	fr_add(&f, mk(KP_CAP_CALL, 12, 12, 0, 4000, 20000, big, 20000));
	CHECK_EQ_INT(fr_store(cs, &f, 3, 7), 1);
	/* the same LSN again (a WAL replay overlap): skipped */
	fr_add(&f, mk(KP_CAP_CALL, 12, 12, 0, 5000, 1, "y", 1));
	CHECK_EQ_INT(fr_store(cs, &f, 3, 7), 0);
	/* a malformed record (kind out of range) is counted, not stored */
	struct kp_cap_rec *bad = mk(KP_CAP_CALL, 13, 13, 0, 6000, 0, NULL, 0);
	bad->kind = 42;
	fr_add(&f, bad);
	CHECK_EQ_INT(fr_store(cs, &f, 4, 7), 0);

	struct count k = scan_all(cs, 0, 0, UINT64_MAX);
	CHECK_EQ_INT(k.n, 4);
	CHECK_EQ_INT(k.big, 1);
	CHECK_EQ_INT(scan_all(cs, 11, 0, UINT64_MAX).n, 1);
	CHECK_EQ_INT(scan_all(cs, 10, 0, UINT64_MAX).n, 2);
	CHECK_EQ_INT(scan_all(cs, 0, OFF + 1500, OFF + 3000).n, 2);
	CHECK_EQ_INT(scan_all(cs, 99, 0, UINT64_MAX).n, 0);
	CHECK_EQ_INT(capstore_sync(cs), 0);
	CHECK_EQ_UINT(capstore_synced_lsn(cs), 4);
	struct capstore_stats st;
	capstore_stats(cs, &st);
	CHECK_EQ_UINT(st.records, 4);
	CHECK_EQ_UINT(st.bad_records, 1);
	capstore_close(cs);

	/* a torn group at the end (a crash mid-write): cut at the last whole group */
	char log[600];
	snprintf(log, sizeof(log), "%s/%016x.kcl", dir, 1);
	struct stat sb;
	CHECK(stat(log, &sb) == 0);
	int fd = open(log, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	uint8_t junk[100];
	memset(junk, 0x5a, sizeof(junk));
	memcpy(junk, &(uint32_t){200}, 4);
	CHECK(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
	close(fd);
	cs = open_at(dir, 0);
	CHECK_EQ_UINT(capstore_recovered_lsn(cs), 4);
	CHECK(stat(log, &sb) == 0);
	k = scan_all(cs, 0, 0, UINT64_MAX);
	CHECK_EQ_INT(k.n, 4);
	fr_add(&f, mk(KP_CAP_CALL, 10, 10, 0, 7000, 1, "z", 1));
	CHECK_EQ_INT(fr_store(cs, &f, 5, 7), 1);
	CHECK_EQ_INT(scan_all(cs, 10, 0, UINT64_MAX).n, 3);
	capstore_close(cs);

	/* a group whose last entry is missing (no CE_LAST) goes too: its frame replays */
	cs = open_at(dir, 0);
	CHECK_EQ_INT(scan_all(cs, 0, 0, UINT64_MAX).n, 5);
	capstore_close(cs);
	CHECK(stat(log, &sb) == 0);
	/* cut the last entry in half */
	CHECK(truncate(log, sb.st_size - 40) == 0);
	cs = open_at(dir, 0);
	CHECK_EQ_INT(scan_all(cs, 0, 0, UINT64_MAX).n, 4);
	capstore_close(cs);
}

TEST(capstore_rotation_index_retention_corruption)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/syscalls", kt_tmpdir());
	struct capstore *cs = open_at(dir, 1u << 20);
	static uint8_t pay[30000];
	memset(pay, 'p', sizeof(pay));
	for (int i = 0; i < 100; i++) {
		struct frame f = {0};
		fr_add(&f, mk(KP_CAP_CALL, 20 + (uint32_t)(i % 3), 20, 0,
			      (uint64_t)(i + 1) * NSEC_PER_SEC, 30000, pay, 30000));
		CHECK_EQ_INT(fr_store(cs, &f, (uint64_t)i + 1, 9), 1);
	}
	struct capstore_stats st;
	capstore_stats(cs, &st);
	CHECK_GE_UINT(st.files, 3);
	CHECK_EQ_INT(scan_all(cs, 0, 0, UINT64_MAX).n, 100);
	CHECK_EQ_INT(scan_all(cs, 21, 0, UINT64_MAX).n, 33);
	capstore_close(cs);
	/* reopened: sealed logs come from their index */
	cs = open_at(dir, 1u << 20);
	CHECK_EQ_INT(scan_all(cs, 0, 0, UINT64_MAX).n, 100);
	CHECK_EQ_INT(scan_all(cs, 0, OFF + 10 * NSEC_PER_SEC, OFF + 19 * NSEC_PER_SEC).n, 10);

	/* a flipped byte inside a sealed log: counted, the rest of that log is not read */
	char log[600];
	snprintf(log, sizeof(log), "%s/%016x.kcl", dir, 1);
	int fd = open(log, O_RDWR);
	CHECK(fd >= 0);
	char c;
	CHECK(pread(fd, &c, 1, 5000) == 1);
	c ^= 1;
	CHECK(pwrite(fd, &c, 1, 5000) == 1);
	close(fd);
	int n = scan_all(cs, 0, 0, UINT64_MAX).n;
	CHECK_LT_INT(n, 100);
	capstore_stats(cs, &st);
	CHECK_GE_UINT(st.corrupt, 1);

	/* retention: everything older than 30 days (all sealed logs) goes, the active one stays */
	uint64_t files_before = st.files;
	int removed = capstore_retention_run(cs, OFF + 400ull * 86400 * NSEC_PER_SEC);
	CHECK_EQ_INT(removed, (int)files_before - 1);
	capstore_stats(cs, &st);
	CHECK_EQ_UINT(st.files, 1);
	capstore_close(cs);

	/* the size bound: oldest sealed logs go until under it */
	char dir2[512];
	snprintf(dir2, sizeof(dir2), "%s/small", kt_tmpdir());
	struct capstore_opts o = {
		.dir = dir2, .max_bytes = 3u << 20, .retention_days = 30, .file_max = 1u << 20};
	char err[256];
	CHECK_EQ_INT(capstore_open(&cs, &o, err, sizeof(err)), 0);
	for (int i = 0; i < 200; i++) {
		struct frame f = {0};
		fr_add(&f, mk(KP_CAP_CALL, 5, 5, 0, (uint64_t)(i + 1) * 1000, 30000, pay, 30000));
		CHECK_EQ_INT(fr_store(cs, &f, (uint64_t)i + 1, 9), 1);
	}
	CHECK_GE_INT(capstore_retention_run(cs, OFF + 2000000), 1);
	capstore_stats(cs, &st);
	CHECK_LE_INT((int)(st.disk_bytes >> 20), 3);
	struct count k = scan_all(cs, 0, 0, UINT64_MAX);
	CHECK_LT_INT(k.n, 200);
	CHECK_EQ_UINT(k.last_ts, 200 * 1000); /* the newest are kept */
	capstore_close(cs);
}

static void names(void *ctx, uint64_t node, char *host, size_t hc, char *kernel, size_t kc)
{
	snprintf(host, hc, "host-%llx", (unsigned long long)node);
	snprintf(kernel, kc, "6.18.0");
}

static struct kp_cap_rec *with_sock(struct kp_cap_rec *c, uint16_t sport, uint16_t dport)
{
	struct kp_cap_sock s = {
		.family = AF_INET, .type = SOCK_STREAM, .sport = sport, .dport = dport};
	s.saddr[0] = s.daddr[0] = 127;
	s.saddr[3] = s.daddr[3] = 1;
	uint32_t at = KP_CAP_HDR_LEN + c->payload_len + c->aux_len;
	memcpy((uint8_t *)c + at, &s, sizeof(s));
	c->flags |= KP_CAP_F_SOCK;
	c->len = (at + KP_CAP_SOCK_LEN + 7) & ~7u;
	return c;
}

/* A process (exec with argv, a connect, a write to stdout, a fork, its exit) and its server
 * peer, both captured on node 7; unrelated records of the same pid on node 8. */
TEST(capstore_recording_from_records)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/syscalls", kt_tmpdir());
	struct capstore *cs = open_at(dir, 0);
	struct frame f = {0};
	fr_add(&f, mk(KP_CAP_CALL, 30, 30, 0, 500, 1, "before exec", 11)); /* the shell part */
	struct kp_cap_rec *e = mk(KP_CAP_EXEC, 30, 30, 0, 1000, 0, "/bin/client", 12);
	memcpy(rb + KP_CAP_HDR_LEN + 12, "client\0--fast\0", 14);
	e->aux_len = 14;
	e->len = (KP_CAP_HDR_LEN + 12 + 14 + 7) & ~7u;
	fr_add(&f, e);
	struct kp_cap_rec *ld = mk(KP_CAP_LOADER, 30, 30, 0, 1000, 0, "/srv/app\0HOME=/root\0LANG=C\0",
				   27);
	ld->ts_enter = 1000;
	ld->args[0] = 0x7f0000000000;
	ld->args[1] = 0x7f0000040000;
	fr_add(&f, ld);
	fr_add(&f, with_sock(mk(KP_CAP_CALL, 30, 30, 42, 2000, 0, NULL, 0), 40000, 8080));
	fr_add(&f, with_sock(mk(KP_CAP_CALL, 40, 41, 43, 2100, 4, NULL, 0), 8080, 40000));
	fr_add(&f, with_sock(mk(KP_CAP_CALL, 40, 41, 1, 2500, 6, "answer", 6), 8080, 40000));
	struct kp_cap_rec *w = mk(KP_CAP_CALL, 30, 30, 1, 3000, 6, "hello\n", 6);
	w->args[0] = 1;
	w->fd_ino = 777;
	fr_add(&f, w);
	struct kp_cap_rec *fk = mk(KP_CAP_FORK, 30, 30, 0, 3500, 0, NULL, 0);
	fk->args[0] = fk->args[1] = 31;
	fr_add(&f, fk);
	fr_add(&f, mk(KP_CAP_CALL, 31, 31, 1, 3600, 2, "hi", 2));
	fr_add(&f, mk(KP_CAP_EXIT, 30, 30, 0, 4000, 3 << 8, NULL, 0));
	CHECK_EQ_INT(fr_store(cs, &f, 1, 7), 10);
	fr_add(&f, mk(KP_CAP_CALL, 30, 30, 0, 1500, 1, "other node", 10));
	CHECK_EQ_INT(fr_store(cs, &f, 2, 8), 1);

	struct capstore_recq q = {.pid = 30,
				  .from_ns = OFF,
				  .to_ns = OFF + 10000,
				  .max_bytes = 1 << 20,
				  .node_names = names};
	struct kp_buf out = {0};
	struct capstore_recinfo info;
	char err[512];
	/* two nodes captured pid 30: which one? */
	CHECK_EQ_INT(capstore_recording(cs, &q, &out, &info, err, sizeof(err)), -ENOTUNIQ);
	CHECK_CONTAINS(err, "node=");
	q.node = 7;
	CHECKF(capstore_recording(cs, &q, &out, &info, err, sizeof(err)) == 0, "%s", err);
	CHECK(info.exec_seen && info.exit_seen);
	CHECK_EQ_STR(info.argv0, "/bin/client");
	CHECK_EQ_INT(info.processes, 2);
	struct rec *r;
	CHECKF(rec_open_mem(&r, out.data, out.len, err, sizeof(err)) == 0, "%s", err);
	const struct rec_meta *m = rec_meta(r);
	CHECK_EQ_INT(m->argc, 2);
	CHECK_EQ_STR(m->argv[0], "client");
	CHECK_EQ_STR(m->argv[1], "--fast");
	CHECK_EQ_INT(m->root_tid, 30);
	CHECK(WIFEXITED(m->root_status) && WEXITSTATUS(m->root_status) == 3);
	CHECK_EQ_UINT(m->std[1].ino, 777);
	CHECK_EQ_STR(m->host, "host-7");
	CHECK_EQ_STR(m->cwd, "/srv/app");
	CHECK_EQ_INT(m->envc, 2);
	CHECK_EQ_STR(m->envp[1], "LANG=C");
	CHECK_EQ_UINT(m->real_base - m->mono_base, (uint64_t)OFF);
	CHECK_EQ_INT(m->flags & REC_F_INCOMPLETE, 0);
	/* the server is in as a peer; the shell part before the exec is not */
	int peer = rec_thread_find(r, 41);
	CHECK_GE_INT(peer, 0);
	CHECK(rec_thread(r, peer)->flags & REC_T_PEER);
	CHECK(rec_thread(r, rec_thread_find(r, 31))->flags & REC_T_TREE);
	CHECK_EQ_UINT(rec_ncalls(r), 5);
	struct replay_outcome ro;
	replay_recorded_outcome(r, &ro);
	CHECK_EQ_INT((int)ro.out.len, 6);
	CHECK(!memcmp(ro.out.data, "hello\n", 6));
	buf_free(&ro.out);
	rec_close(r);

	/* nothing in the range; a bound too small */
	q.from_ns = OFF + 100000;
	q.to_ns = OFF + 200000;
	CHECK_EQ_INT(capstore_recording(cs, &q, &out, &info, err, sizeof(err)), -ENOENT);
	CHECK_CONTAINS(err, "replay.capture.comms");
	q.from_ns = OFF;
	q.to_ns = OFF + 10000;
	q.max_bytes = 600;
	CHECK_EQ_INT(capstore_recording(cs, &q, &out, &info, err, sizeof(err)), -E2BIG);
	CHECK_CONTAINS(err, "narrow");

	/* a loss in the kernel then: the recording is marked incomplete */
	struct kp_cap_rec *l = mk(KP_CAP_LOST, 0, 0, 0, 2200, 0, NULL, 0);
	l->args[0] = 17;
	fr_add(&f, l);
	CHECK_EQ_INT(fr_store(cs, &f, 3, 7), 1);
	q.max_bytes = 1 << 20;
	CHECK_EQ_INT(capstore_recording(cs, &q, &out, &info, err, sizeof(err)), 0);
	CHECK_EQ_UINT(info.lost, 17);
	CHECK_CONTAINS(info.note, "incomplete");
	CHECK_EQ_INT(rec_open_mem(&r, out.data, out.len, err, sizeof(err)), 0);
	CHECK(rec_meta(r)->flags & REC_F_INCOMPLETE);
	rec_close(r);

	/* around an incident at [2000, 3000]: from the exec to the exit */
	uint64_t node, from, to;
	CHECK_EQ_INT(capstore_find_process(cs, 7, 30, OFF + 2000, OFF + 3000, NSEC_PER_SEC,
					   NSEC_PER_SEC, &node, &from, &to),
		     1);
	CHECK_EQ_UINT(node, 7);
	CHECK_EQ_UINT(from, OFF + 1000);
	CHECK_EQ_UINT(to, OFF + 4000);
	CHECK_EQ_INT(capstore_find_process(cs, 7, 99, OFF + 2000, OFF + 3000, NSEC_PER_SEC,
					   NSEC_PER_SEC, &node, &from, &to),
		     0);
	buf_free(&out);
	capstore_close(cs);
}
