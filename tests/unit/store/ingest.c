/*
 * Tests store/ingest.c with a real server on loopback and real client sockets: acks only after
 * fsync, delivery in LSN order, dedup of resends (also across a restart), every kind of bad
 * input rejected and counted while a good connection keeps being served, connection limits,
 * back-pressure, WAL append failures, metrics.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "agent/wire.h"
#include "common/util.h"
#include "store/ingest.h"
#include "store/wal.h"
#include "tests/test.h"

#define NODE_A 0xA11CEull
#define NODE_B 0xB0Bull

/* ---- a consumer that records what it got ---- */

struct got {
	uint64_t frames, events, last_lsn, order_errors;
	uint64_t node[512], seq[512];
	uint64_t evsum; /* sum over events of tid * 1e6 + arg0 */
};

static void on_frame(void *ctx, uint64_t lsn, const struct wire_hdr *h, const void *raw)
{
	struct got *g = ctx;
	if (lsn <= g->last_lsn)
		g->order_errors++;
	g->last_lsn = lsn;
	if (g->frames < 512)
		g->node[g->frames] = h->node_id, g->seq[g->frames] = h->seq;
	g->frames++;
	g->events += h->n_events;
	const struct kp_event *ev = raw;
	for (uint32_t i = 0; i < h->n_events; i++)
		g->evsum += ev[i].tid * 1000000ull + ev[i].arg[0];
}

/* ---- frames ---- */

static void make_frame(struct kp_buf *out, uint64_t node, uint64_t seq, int nev)
{
	struct wire_batch b = {0};
	for (int i = 0; i < nev; i++) {
		struct kp_event ev = {.ts_ns = 1700000000000000000ull + seq * 1000 + (uint64_t)i,
				      .pid = 42,
				      .tid = (uint32_t)seq,
				      .type = KP_WRITE,
				      .arg = {(uint64_t)i, 100, 1, 0}};
		wire_batch_add_event(&b, &ev);
	}
	wire_batch_add_node(&b, "test-node", "6.18");
	out->len = 0;
	CHECK_EQ_INT(wire_frame_encode(&b, node, seq, 1, out), 0);
	wire_batch_free(&b);
}

/* ---- server and client ---- */

struct srv {
	struct wal *wal;
	struct ingest *in;
	struct got got;
	char dir[512];
};

static int g_sync_inline;

static void srv_start(struct srv *s, int frame_timeout_ms, int max_conns, uint64_t max_pending,
		      const struct wal_opts *wo)
{
	snprintf(s->dir, sizeof(s->dir), "%s/wal", kt_tmpdir());
	int r = wal_open(&s->wal, s->dir, wo, NULL);
	CHECKF(r == 0, "wal_open: %s", wal_strerror(r));
	struct ingest_opts o = {.bind = "127.0.0.1",
				.port = 0,
				.max_conns = max_conns,
				.commit_us = 500,
				.frame_timeout_ms = frame_timeout_ms,
				.max_pending_bytes = max_pending,
				.consumer = on_frame,
				.consumer_ctx = &s->got,
				.sync_inline = g_sync_inline};
	CHECK_EQ_INT(ingest_open(&s->in, s->wal, &o), 0);
	CHECK_GT_INT(ingest_port(s->in), 0);
	CHECK_EQ_INT(ingest_start(s->in), 0);
}

static void srv_stop(struct srv *s)
{
	ingest_free(s->in);
	wal_close(s->wal);
	s->in = NULL;
	s->wal = NULL;
}

static int client(const struct srv *s)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)ingest_port(s->in))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
	CHECK_EQ_INT(write_full(fd, p, n), 0);
}

/* Reads one ack; returns 0, or -1 on EOF/timeout. */
static int read_ack(int fd, uint64_t *seq, uint32_t *status)
{
	uint8_t a[WIRE_ACK_LEN];
	if (read_full(fd, a, sizeof(a)) < 0)
		return -1;
	CHECK_EQ_INT(wire_ack_decode(a, seq, status), 0);
	return 0;
}

static void expect_ack(int fd, uint64_t seq, uint32_t status)
{
	uint64_t s;
	uint32_t st;
	CHECKF(read_ack(fd, &s, &st) == 0, "no ack for seq %" PRIu64, seq);
	CHECK_EQ_UINT(s, seq);
	CHECK_EQ_UINT(st, status);
}

/* The peer answers WIRE_ACK_BAD (for seq) and closes, even with our input still unread. */
static void expect_bad_and_close(int fd, uint64_t seq)
{
	uint8_t a[WIRE_ACK_LEN];
	CHECK_EQ_INT(read_full(fd, a, sizeof(a)), 0);
	uint64_t s;
	uint32_t st;
	CHECK_EQ_INT(wire_ack_decode(a, &s, &st), 0);
	CHECK_EQ_UINT(st, WIRE_ACK_BAD);
	CHECK_EQ_UINT(s, seq);
	ssize_t n = read(fd, a, sizeof(a));
	CHECKF(n == 0, "expected EOF after the BAD ack, got %zd (%s)", n,
	       n < 0 ? strerror(errno) : "data");
	close(fd);
}

static struct ingest_stats stats_of(const struct srv *s)
{
	struct ingest_stats st;
	ingest_stats(s->in, &st);
	return st;
}

static void wait_for(const struct srv *s, int (*cond)(const struct ingest_stats *, uint64_t),
		     uint64_t arg)
{
	for (int i = 0; i < 500; i++) {
		struct ingest_stats st = stats_of(s);
		if (cond(&st, arg))
			return;
		usleep(10000);
	}
	CHECKF(0, "condition not reached in 5 s");
}

static int conns_open_is(const struct ingest_stats *st, uint64_t n)
{
	return st->conns_open == n;
}

/* ------------------------------------------------------------------------------------------ */

TEST(ingest_acks_after_fsync_dedups_and_delivers_in_order)
{
	static struct srv s;
	srv_start(&s, 30000, 16, 0, NULL);
	int fd = client(&s);
	struct kp_buf all = {0}, f = {0};
	for (uint64_t seq = 1; seq <= 50; seq++) {
		make_frame(&f, NODE_A, seq, 10 + (int)seq);
		buf_append(&all, f.data, f.len);
	}
	send_all(fd, all.data, all.len); /* many frames in one write: parsed out of one buffer */
	for (uint64_t seq = 1; seq <= 50; seq++)
		expect_ack(fd, seq, WIRE_ACK_OK);
	/* Acked means durable. */
	CHECK_GE_UINT(wal_durable_lsn(s.wal), 50);
	/* Resend 40..55: the held ones are duplicates, the rest new. */
	for (uint64_t seq = 40; seq <= 55; seq++) {
		make_frame(&f, NODE_A, seq, 10 + (int)seq);
		send_all(fd, f.data, f.len);
	}
	for (uint64_t seq = 40; seq <= 55; seq++)
		expect_ack(fd, seq, seq <= 50 ? WIRE_ACK_DUP : WIRE_ACK_OK);
	close(fd);
	srv_stop(&s);
	CHECK_EQ_UINT(s.got.frames, 55);
	CHECK_EQ_UINT(s.got.order_errors, 0);
	for (uint64_t i = 0; i < 55; i++)
		CHECK_EQ_UINT(s.got.seq[i], i + 1);
	uint64_t events = 0;
	for (uint64_t seq = 1; seq <= 55; seq++)
		events += 10 + seq;
	CHECK_EQ_UINT(s.got.events, events);

	/* Restart on the same WAL: dedup state survives; replay returns the same frames. */
	static struct srv s2;
	srv_start(&s2, 30000, 16, 0, NULL);
	static struct got replayed;
	CHECK_EQ_INT(ingest_replay(s2.wal, 1, on_frame, &replayed), 55);
	CHECK_EQ_UINT(replayed.evsum, s.got.evsum);
	fd = client(&s2);
	for (uint64_t seq = 54; seq <= 57; seq++) {
		make_frame(&f, NODE_A, seq, 3);
		send_all(fd, f.data, f.len);
		expect_ack(fd, seq, seq <= 55 ? WIRE_ACK_DUP : WIRE_ACK_OK);
	}
	struct ingest_stats st = stats_of(&s2);
	CHECK_EQ_UINT(st.dups, 2);
	CHECK_EQ_UINT(st.frames, 2);
	CHECK_GE_UINT(st.fsyncs, 1);
	CHECK_GE_UINT(st.acks_sent, 4);
	close(fd);
	srv_stop(&s2);
	buf_free(&all);
	buf_free(&f);
}

/* A good frame on the good connection is still served while bad ones are dealt with. */
static uint64_t good_seq;
static void good_roundtrip(int good)
{
	struct kp_buf f = {0};
	good_seq++;
	make_frame(&f, NODE_B, good_seq, 5);
	send_all(good, f.data, f.len);
	expect_ack(good, good_seq, WIRE_ACK_OK);
	buf_free(&f);
}

static void put_u32(struct kp_buf *f, size_t off, uint32_t v)
{
	memcpy(f->data + off, &v, 4);
}

static void reseal(struct kp_buf *f)
{
	uint32_t body_len;
	memcpy(&body_len, f->data + 36, 4);
	uint64_t h = XXH3_64bits(f->data + WIRE_HDR_LEN, body_len);
	memcpy(f->data + 40, &h, 8);
}

static int rejected_is(const struct ingest_stats *st, uint64_t n)
{
	uint64_t t = 0;
	for (int i = 0; i < INGEST_REJ_MAX; i++)
		t += st->rejected[i];
	return t == n;
}

TEST(ingest_rejects_bad_input_and_keeps_serving)
{
	static struct srv s;
	srv_start(&s, 400, 64, 0, NULL);
	int good = client(&s);
	good_roundtrip(good);
	struct kp_buf f = {0};
	int fd;

	/* wrong magic */
	make_frame(&f, NODE_A, 1, 4);
	f.data[0] ^= 0xff;
	fd = client(&s);
	send_all(fd, f.data, f.len);
	expect_bad_and_close(fd, 0);
	good_roundtrip(good);

	/* unsupported version */
	make_frame(&f, NODE_A, 2, 4);
	f.data[4] = 9;
	fd = client(&s);
	send_all(fd, f.data, f.len);
	expect_bad_and_close(fd, 2);

	/* oversize length: rejected on the header alone, before any body is read */
	make_frame(&f, NODE_A, 3, 4);
	put_u32(&f, 36, 9u << 20);
	fd = client(&s);
	send_all(fd, f.data, WIRE_HDR_LEN);
	expect_bad_and_close(fd, 3);
	good_roundtrip(good);

	/* corrupt body: checksum */
	make_frame(&f, NODE_A, 4, 40);
	f.data[WIRE_HDR_LEN + 7] ^= 0x10;
	fd = client(&s);
	send_all(fd, f.data, f.len);
	expect_bad_and_close(fd, 4);

	/* a body that checks but does not decompress */
	make_frame(&f, NODE_A, 5, 40);
	CHECK(f.data[6] & WIRE_F_LZ4);
	for (size_t i = WIRE_HDR_LEN; i < f.len; i++)
		f.data[i] = (char)(0xF0 | (i & 0x0F));
	reseal(&f);
	fd = client(&s);
	send_all(fd, f.data, f.len);
	expect_bad_and_close(fd, 5);
	good_roundtrip(good);

	/* layout: event type 0, body uncompressed and correctly checksummed */
	{
		struct wire_batch b = {0};
		struct kp_event ev = {.type = KP_NONE};
		wire_batch_add_event(&b, &ev);
		f.len = 0;
		CHECK_EQ_INT(wire_frame_encode(&b, NODE_A, 6, 0, &f), 0);
		wire_batch_free(&b);
	}
	fd = client(&s);
	send_all(fd, f.data, f.len);
	expect_bad_and_close(fd, 6);

	/* garbage bytes */
	char junk[1000];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	fd = client(&s);
	send_all(fd, junk, sizeof(junk));
	expect_bad_and_close(fd, 0);
	good_roundtrip(good);

	/* truncated: header and half the body, then the client goes away */
	make_frame(&f, NODE_A, 7, 100);
	fd = client(&s);
	send_all(fd, f.data, WIRE_HDR_LEN + (f.len - WIRE_HDR_LEN) / 2);
	close(fd);
	/* ... or a partial header */
	fd = client(&s);
	send_all(fd, f.data, 20);
	close(fd);
	wait_for(&s, rejected_is, 9);

	/* slowloris: a few header bytes, then nothing; cut off after frameTimeoutMs, while the
	 * good connection goes on */
	fd = client(&s);
	send_all(fd, f.data, 10);
	uint64_t t0 = now_mono_ns();
	good_roundtrip(good);
	usleep(100000);
	send_all(fd, f.data + 10, 5); /* dribbling does not reset the clock */
	expect_bad_and_close(fd, 0);
	uint64_t waited = (now_mono_ns() - t0) / NSEC_PER_MSEC;
	CHECKF(waited >= 350 && waited < 3000, "cut after %" PRIu64 " ms", waited);
	good_roundtrip(good);

	struct ingest_stats st = stats_of(&s);
	CHECK_EQ_UINT(st.rejected[INGEST_REJ_MAGIC], 2);
	CHECK_EQ_UINT(st.rejected[INGEST_REJ_VERSION], 1);
	CHECK_EQ_UINT(st.rejected[INGEST_REJ_TOOBIG], 1);
	CHECK_EQ_UINT(st.rejected[INGEST_REJ_CHECKSUM], 1);
	CHECK_GE_UINT(st.rejected[INGEST_REJ_DECOMPRESS] + st.rejected[INGEST_REJ_LAYOUT], 2);
	CHECK_EQ_UINT(st.rejected[INGEST_REJ_TRUNCATED], 2);
	CHECK_EQ_UINT(st.rejected[INGEST_REJ_TIMEOUT], 1);
	CHECK_EQ_UINT(st.frames, good_seq);
	close(good);
	wait_for(&s, conns_open_is, 0);

	struct kp_buf m = {0};
	ingest_metrics(s.in, &m);
	CHECK_CONTAINS(m.data, "kprobe_ingest_rejected_total{reason=\"checksum\"} 1");
	CHECK_CONTAINS(m.data, "kprobe_ingest_fsync_seconds_bucket{le=\"+Inf\"}");
	buf_free(&m);
	srv_stop(&s);

	/* Nothing of the bad frames reached the WAL: only node B's frames are there. */
	CHECK_EQ_UINT(s.got.frames, good_seq);
	for (uint64_t i = 0; i < s.got.frames; i++)
		CHECK_EQ_UINT(s.got.node[i], NODE_B);
	static struct srv s2;
	srv_start(&s2, 400, 64, 0, NULL);
	static struct got g;
	CHECK_EQ_INT(ingest_replay(s2.wal, 1, on_frame, &g), (int)good_seq);
	CHECK(!wal_node_max(s2.wal, NODE_A, &(uint64_t){0}, &(uint64_t){0}));
	srv_stop(&s2);
	buf_free(&f);
}

TEST(ingest_refuses_connections_over_the_limit)
{
	static struct srv s;
	srv_start(&s, 30000, 2, 0, NULL);
	int a = client(&s), b = client(&s);
	wait_for(&s, conns_open_is, 2);
	int c = client(&s); /* the kernel accepts it; kprobed closes it at once */
	char x;
	CHECK_EQ_INT(read(c, &x, 1), 0);
	close(c);
	struct ingest_stats st = stats_of(&s);
	CHECK_EQ_UINT(st.conns_refused, 1);
	close(a);
	wait_for(&s, conns_open_is, 1);
	int d = client(&s);
	good_seq = 0;
	good_roundtrip(d);
	close(b);
	close(d);
	srv_stop(&s);
}

TEST(ingest_backpressure_pauses_reads_and_loses_nothing)
{
	static struct srv s;
	/* Every frame fills the pending budget: reads pause until each group commit. */
	srv_start(&s, 30000, 16, 1, NULL);
	int fd = client(&s);
	struct kp_buf all = {0}, f = {0};
	for (uint64_t seq = 1; seq <= 300; seq++) {
		make_frame(&f, NODE_A, seq, 64);
		buf_append(&all, f.data, f.len);
	}
	send_all(fd, all.data, all.len);
	for (uint64_t seq = 1; seq <= 300; seq++)
		expect_ack(fd, seq, WIRE_ACK_OK);
	struct ingest_stats st = stats_of(&s);
	CHECK_GT_INT(st.pauses, 0);
	CHECK_EQ_UINT(st.frames, 300);
	close(fd);
	srv_stop(&s);
	CHECK_EQ_UINT(s.got.frames, 300);
	buf_free(&all);
	buf_free(&f);
}

static int fail_writes;
static ssize_t flaky_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (fail_writes && __atomic_load_n(&fail_writes, __ATOMIC_RELAXED)) {
		errno = ENOSPC;
		return -1;
	}
	return pwritev(fd, iov, cnt, off);
}

TEST(ingest_wal_append_failure_is_not_acked)
{
	static struct srv s;
	static const struct wal_io io = {flaky_pwritev, fdatasync};
	struct wal_opts wo = {.io = &io};
	srv_start(&s, 30000, 16, 0, &wo);
	int fd = client(&s);
	struct kp_buf f = {0};
	make_frame(&f, NODE_A, 1, 8);
	send_all(fd, f.data, f.len);
	expect_ack(fd, 1, WIRE_ACK_OK);
	__atomic_store_n(&fail_writes, 1, __ATOMIC_RELAXED);
	make_frame(&f, NODE_A, 2, 8);
	send_all(fd, f.data, f.len);
	uint64_t seq;
	uint32_t status;
	CHECK_EQ_INT(read_ack(fd, &seq, &status), -1); /* closed, no ack */
	close(fd);
	CHECK_EQ_UINT(stats_of(&s).wal_errors, 1);
	/* The disk recovers; the agent's resend is accepted (not taken for a duplicate). */
	__atomic_store_n(&fail_writes, 0, __ATOMIC_RELAXED);
	fd = client(&s);
	send_all(fd, f.data, f.len);
	expect_ack(fd, 2, WIRE_ACK_OK);
	close(fd);
	srv_stop(&s);
	CHECK_EQ_UINT(s.got.frames, 2);
	buf_free(&f);
}

static int fail_syncs;
static int flaky_fdatasync(int fd)
{
	if (__atomic_load_n(&fail_syncs, __ATOMIC_RELAXED)) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

TEST(ingest_fsync_failure_acks_nothing_more)
{
	static struct srv s;
	static const struct wal_io io = {pwritev, flaky_fdatasync};
	struct wal_opts wo = {.io = &io};
	g_sync_inline = 1;
	srv_start(&s, 30000, 16, 0, &wo);
	int fd = client(&s);
	struct kp_buf f = {0};
	make_frame(&f, NODE_A, 1, 8);
	send_all(fd, f.data, f.len);
	expect_ack(fd, 1, WIRE_ACK_OK);
	/* The disk fails under the next group commit: frame 2 is appended, never acked; the
	 * WAL refuses more; every connection is closed. */
	__atomic_store_n(&fail_syncs, 1, __ATOMIC_RELAXED);
	make_frame(&f, NODE_A, 2, 8);
	send_all(fd, f.data, f.len);
	uint64_t seq;
	uint32_t status;
	CHECK_EQ_INT(read_ack(fd, &seq, &status), -1);
	close(fd);
	struct ingest_stats st = stats_of(&s);
	CHECK_GE_UINT(st.wal_errors, 1);
	CHECK_EQ_UINT(s.got.frames, 1); /* only the durable frame reached the consumer */
	fd = client(&s);
	make_frame(&f, NODE_A, 3, 8);
	send_all(fd, f.data, f.len);
	CHECK_EQ_INT(read_ack(fd, &seq, &status), -1); /* still refused */
	close(fd);
	srv_stop(&s);
	__atomic_store_n(&fail_syncs, 0, __ATOMIC_RELAXED);
	g_sync_inline = 0;

	/* Restart on a healthy disk: recovery finds frame 2 in the file and makes it durable,
	 * so the agent's resend is a duplicate; frame 3 is new. */
	static struct srv s2;
	srv_start(&s2, 30000, 16, 0, NULL);
	fd = client(&s2);
	make_frame(&f, NODE_A, 2, 8);
	send_all(fd, f.data, f.len);
	expect_ack(fd, 2, WIRE_ACK_DUP);
	make_frame(&f, NODE_A, 3, 8);
	send_all(fd, f.data, f.len);
	expect_ack(fd, 3, WIRE_ACK_OK);
	close(fd);
	srv_stop(&s2);
	struct wal *w;
	struct wal_opts ro = {.read_only = 1};
	CHECK_EQ_INT(wal_open(&w, s2.dir, &ro, NULL), 0);
	static struct got g;
	CHECK_EQ_INT(ingest_replay(w, 1, on_frame, &g), 3);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_UINT(g.seq[i], (uint64_t)i + 1);
	wal_close(w);
	buf_free(&f);
}
