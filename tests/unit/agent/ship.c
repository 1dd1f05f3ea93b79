/*
 * Tests agent/ship.c against the real ingest server (store/ingest.c, on its own thread) on
 * loopback: everything produced arrives once and in seq order with node metadata in every
 * frame; with the appliance away frames go to the spool and drain when it appears; the spool
 * bound drops (and counts) frames instead of growing; the stats line has every counter.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/loop.h"
#include "agent/ship.h"
#include "common/util.h"
#include "store/ingest.h"
#include "store/wal.h"
#include "tests/integration/shipgen.h"
#include "tests/test.h"

struct meta_check {
	uint64_t frames, node_meta_ok, proc_meta;
	char want_node[64];
};

static void check_meta(void *ctx, uint64_t lsn, const struct wire_hdr *h, const void *raw)
{
	struct meta_check *m = ctx;
	m->frames++;
	struct wire_meta_iter it = {(const uint8_t *)raw + 64ull * h->n_events,
				    (const uint8_t *)raw + h->raw_len};
	uint16_t kind, len;
	const void *p;
	while (wire_meta_next(&it, &kind, &p, &len)) {
		if (kind == WIRE_META_NODE) {
			char name[256], kernel[256];
			if (wire_node_decode(p, len, name, sizeof(name), kernel, sizeof(kernel)) ==
				    0 &&
			    !strcmp(name, m->want_node) && kernel[0])
				m->node_meta_ok++;
		} else if (kind == WIRE_META_PROC) {
			struct wire_proc pr;
			if (wire_proc_decode(p, len, &pr) == 0 && !strcmp(pr.comm, "shipgen"))
				m->proc_meta++;
		}
	}
}

struct server {
	struct wal *wal;
	struct ingest *in;
	char data[512];
};

static void server_start(struct server *s, int port, ingest_consumer_fn fn, void *ctx)
{
	snprintf(s->data, sizeof(s->data), "%s/data", kt_tmpdir());
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/wal", s->data);
	CHECK_EQ_INT(wal_open(&s->wal, dir, NULL, NULL), 0);
	struct ingest_opts o = {.bind = "127.0.0.1",
				.port = port,
				.commit_us = 1000,
				.consumer = fn,
				.consumer_ctx = ctx};
	CHECK_EQ_INT(ingest_open(&s->in, s->wal, &o), 0);
	CHECK_EQ_INT(ingest_start(s->in), 0);
}

static void server_stop(struct server *s)
{
	ingest_free(s->in);
	wal_close(s->wal);
}

TEST_SLOW(ship_roundtrip_in_order_with_metadata, 60)
{
	static struct server srv;
	static struct meta_check mc;
	struct shipgen_opts o;
	shipgen_defaults(&o);
	snprintf(mc.want_node, sizeof(mc.want_node), "%s", o.node_name);
	server_start(&srv, 0, check_meta, &mc);
	snprintf(o.appliance, sizeof(o.appliance), "127.0.0.1:%d", ingest_port(srv.in));
	o.count = 60000;
	o.per_ms = 2000;
	struct shipgen_shared *sh = shipgen_shared_new();
	CHECK_EQ_INT(shipgen_run(&o, sh), 0);
	CHECK(sh->idle);
	CHECK_EQ_UINT(sh->st.events_acked, 60000);
	CHECK_EQ_UINT(sh->st.dropped_frames, 0);
	CHECK_EQ_UINT(sh->st.frames_rejected, 0);
	CHECK_EQ_INT(sh->st.link, SHIP_LINK_UP);
	server_stop(&srv);
	CHECK_EQ_UINT(mc.node_meta_ok, mc.frames); /* node metadata in every frame */
	CHECK_GE_UINT(mc.proc_meta, 60);	   /* fresh process metadata rode along */
	struct received r;
	CHECK_EQ_INT(received_from_wal(srv.data, o.tid, 0, o.count, &r), 0);
	CHECK_EQ_UINT(r.distinct, o.count);
	CHECK_EQ_UINT(r.dups, 0);
	CHECK_EQ_UINT(r.seq_order_errors, 0);
	CHECK_EQ_UINT(r.sum, expected_sum(o.tid, 0, o.count));
	received_free(&r);
}

TEST_SLOW(ship_spools_while_appliance_away_then_drains, 90)
{
	struct shipgen_opts o;
	shipgen_defaults(&o);
	int port = free_tcp_port();
	snprintf(o.appliance, sizeof(o.appliance), "127.0.0.1:%d", port);
	o.count = 150000;
	o.per_ms = 3000;
	o.mem_mb = 1;
	struct shipgen_shared *sh = shipgen_shared_new();
	pid_t pid = shipgen_fork(&o, sh);
	for (int i = 0; i < 3000 && !sh->generated; i++)
		usleep(10000);
	CHECK(sh->generated);
	usleep(200000); /* the last batch is cut by the tick */
	CHECK_EQ_UINT(sh->st.frames_acked, 0);
	CHECK_GT_INT(sh->st.spool_frames, 0);
	CHECK_GE_INT(sh->st.connect_failures, 1);
	CHECK(sh->st.link != SHIP_LINK_UP);
	kt_note("appliance away: %" PRIu64 " frames in memory, %" PRIu64 " in the spool (%" PRIu64
		" bytes)",
		sh->st.mem_frames, sh->st.spool_frames, sh->st.spool_bytes);

	static struct server srv;
	static struct meta_check mc;
	server_start(&srv, port, check_meta, &mc);
	int st;
	for (int i = 0; i < 3000 && waitpid(pid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	CHECK(sh->closed);
	CHECK(sh->idle);
	server_stop(&srv);
	struct received r;
	CHECK_EQ_INT(received_from_wal(srv.data, o.tid, 0, o.count, &r), 0);
	CHECK_EQ_UINT(r.distinct, o.count);
	CHECK_EQ_UINT(r.dups, 0);
	CHECK_EQ_UINT(r.seq_order_errors, 0);
	CHECK_EQ_UINT(r.sum, expected_sum(o.tid, 0, o.count));
	received_free(&r);
}

TEST_SLOW(ship_spool_bound_drops_and_counts, 90)
{
	struct shipgen_opts o;
	shipgen_defaults(&o);
	int port = free_tcp_port();
	snprintf(o.appliance, sizeof(o.appliance), "127.0.0.1:%d", port);
	o.count = 400000;
	o.per_ms = 8000;
	o.mem_mb = 1;
	o.spool_mb = 1;
	o.drain_ms = 0;
	o.close_when_idle = 0;
	struct shipgen_shared *sh = shipgen_shared_new();
	pid_t pid = shipgen_fork(&o, sh);
	uint64_t max_spool = 0;
	for (int i = 0; i < 3000 && !sh->generated; i++) {
		max_spool = KP_MAX(max_spool, sh->st.spool_bytes);
		usleep(5000);
	}
	CHECK(sh->generated);
	for (int i = 0; i < 1000 && !sh->st.dropped_events; i++) { /* the last frames are cut */
		max_spool = KP_MAX(max_spool, sh->st.spool_bytes);
		usleep(5000);
	}
	usleep(100000);
	uint64_t dropped = sh->st.dropped_events;
	CHECK_GT_INT(dropped, 0);
	CHECK_LE_INT(max_spool, 1 << 20);
	sh->stop = 1; /* close without an appliance: leftovers go to the (bounded) spool */
	int st;
	CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* A second run, with the appliance up, sends what the spool kept. */
	static struct server srv;
	static struct meta_check mc;
	server_start(&srv, port, check_meta, &mc);
	struct shipgen_opts o2 = o;
	o2.first = o.count;
	o2.count = 1000;
	o2.drain_ms = 10000;
	o2.close_when_idle = 1;
	struct shipgen_shared *sh2 = shipgen_shared_new();
	CHECK_EQ_INT(shipgen_run(&o2, sh2), 0);
	CHECK(sh2->idle);
	server_stop(&srv);
	struct received r;
	CHECK_EQ_INT(received_from_wal(srv.data, o.tid, 0, o.count + o2.count, &r), 0);
	CHECK_EQ_UINT(r.dups, 0);
	CHECK_EQ_UINT(r.seq_order_errors, 0);
	CHECK_LE_INT(r.distinct, o.count + o2.count - dropped);
	CHECK_GT_INT(r.distinct, o2.count);
	kt_note("produced %" PRIu64 ", dropped %" PRIu64 " (spool bound), delivered %" PRIu64,
		o.count + o2.count, dropped, r.distinct);
	received_free(&r);
}

TEST(ship_stats_line_and_bad_config)
{
	struct loop *l;
	CHECK_EQ_INT(loop_init(&l, 64), 0);
	struct kp_config cfg;
	config_init(&cfg);
	char err[256], set[600];
	snprintf(set, sizeof(set), "agent.spoolDir=%s/spool", kt_tmpdir());
	CHECK_EQ_INT(config_set(&cfg, set, err, sizeof(err)), 0);
	CHECK_EQ_INT(config_set(&cfg, "agent.appliance=nocolon", err, sizeof(err)), 0);
	struct sink s;
	CHECK_EQ_INT(ship_sink_open(&cfg, l, &s), -EINVAL);
	snprintf(set, sizeof(set), "agent.appliance=127.0.0.1:%d", free_tcp_port());
	CHECK_EQ_INT(config_set(&cfg, set, err, sizeof(err)), 0);
	CHECK_EQ_INT(ship_sink_open(&cfg, l, &s), 0);
	struct sink s2;
	CHECK_EQ_INT(ship_sink_open(&cfg, l, &s2), -EBUSY); /* one agent per spool */
	struct kp_buf line = {0};
	s.ops->stats(s.ctx, &line);
	const char *keys[] = {
		"link=",	 "frames_sent=", "events_sent=",	"frames_acked=",
		"events_acked=", "bytes_sent=",	 "unacked_mem_frames=", "unacked_mem_bytes=",
		"spool_frames=", "spool_bytes=", "dropped_frames=",	"rejected_frames=",
		"reconnects="};
	for (size_t i = 0; i < KP_ARRAY_SIZE(keys); i++)
		CHECK_CONTAINS(line.data, keys[i]);
	buf_free(&line);
	struct ship_stats st;
	ship_sink_stats(&s, &st);
	struct utsname u;
	CHECK_EQ_INT(uname(&u), 0);
	CHECK_EQ_UINT(st.node_id, ship_node_id(u.nodename)); /* agent.nodeName empty: host name */
	CHECK_GE_UINT(st.next_seq, now_real_ns() / 1000 - 60000000ull);
	CHECK(ship_node_id("a") != ship_node_id("b"));
	CHECK_EQ_UINT(ship_node_id("a"), ship_node_id("a"));
	s.ops->close(s.ctx, 0);
	loop_free(l);
	config_free(&cfg);
}

/*
 * A hostile appliance: rejects the 3rd frame it ever sees (WIRE_ACK_BAD, then closes), answers
 * the first frame of its 2nd connection with an ack for a frame that does not exist, and acks
 * everything else. The sink must drop the rejected frame (and never send it again), reconnect
 * after the bogus ack, and get every other frame acknowledged.
 */
struct fake {
	int lfd, port;
	volatile int stop;
	pthread_t t;
	int conns, frames;
	uint64_t bad_seq;
	int bad_seen_again;
	uint64_t seqs[4096];
	int nseqs;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	while (!f->stop) {
		struct pollfd p = {f->lfd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		f->conns++;
		int first_on_conn = 1;
		for (;;) {
			uint8_t h[WIRE_HDR_LEN];
			struct wire_hdr hdr;
			if (read_full(fd, h, sizeof(h)) < 0 || wire_hdr_decode(h, &hdr) != 0)
				break;
			void *body = xmalloc(hdr.body_len + 1);
			int r = read_full(fd, body, hdr.body_len);
			free(body);
			if (r < 0)
				break;
			f->frames++;
			if (f->nseqs < 4096)
				f->seqs[f->nseqs++] = hdr.seq;
			if (f->bad_seq && hdr.seq == f->bad_seq)
				f->bad_seen_again = 1;
			uint8_t a[WIRE_ACK_LEN];
			if (f->frames == 3) {
				f->bad_seq = hdr.seq;
				wire_ack_encode(a, hdr.seq, WIRE_ACK_BAD);
				write_full(fd, a, sizeof(a));
				/* as kprobed does: FIN after the BAD ack, read until the agent
				 * closes (a close with unread input would RST the ack away) */
				shutdown(fd, SHUT_WR);
				char sink[4096];
				while (read(fd, sink, sizeof(sink)) > 0)
					;
				break;
			}
			if (f->conns == 2 && first_on_conn)
				wire_ack_encode(a, hdr.seq + 1000000, WIRE_ACK_OK);
			else
				wire_ack_encode(a, hdr.seq, WIRE_ACK_OK);
			first_on_conn = 0;
			if (write_full(fd, a, sizeof(a)) < 0)
				break;
		}
		close(fd);
	}
	return NULL;
}

TEST_SLOW(ship_drops_rejected_frames_and_survives_bogus_acks, 60)
{
	static struct fake f;
	signal(SIGPIPE, SIG_IGN); /* the fake writes acks to connections the agent dropped */
	f.lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ_INT(bind(f.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ_INT(listen(f.lfd, 16), 0);
	socklen_t l = sizeof(a);
	getsockname(f.lfd, (struct sockaddr *)&a, &l);
	CHECK_EQ_INT(pthread_create(&f.t, NULL, fake_main, &f), 0);

	struct shipgen_opts o;
	shipgen_defaults(&o);
	snprintf(o.appliance, sizeof(o.appliance), "127.0.0.1:%d", ntohs(a.sin_port));
	o.count = 3000;
	o.batch_events = 100;
	o.per_ms = 100; /* a frame or so per millisecond: acks interleave with sends */
	struct shipgen_shared *sh = shipgen_shared_new();
	CHECK_EQ_INT(shipgen_run(&o, sh), 0);
	f.stop = 1;
	pthread_join(f.t, NULL);
	close(f.lfd);
	CHECK(sh->idle);
	CHECK_EQ_UINT(sh->st.frames_rejected, 1);
	CHECK_EQ_UINT(sh->st.frames_acked, sh->st.frames_cut - 1);
	CHECK_EQ_UINT(sh->st.events_acked, o.count - 100);
	CHECK_GE_UINT(sh->st.reconnects, 2);
	CHECK_GE_INT(f.conns, 3);
	CHECK(f.bad_seq != 0);
	CHECK(!f.bad_seen_again); /* a rejected frame is never sent again */
}

/* Replay capture records (ship_capture): frames that carry only them are cut by age like any
 * other, pieces of the largest records add up again on the appliance, every record arrives
 * once. */
struct cap_check {
	uint64_t records, bytes_ok, frames_without_events, bad;
};

static void check_caps(void *ctx, uint64_t lsn, const struct wire_hdr *h, const void *raw)
{
	struct cap_check *c = ctx;
	static struct wire_cap_asm a;
	wire_cap_asm_reset(&a);
	if (!h->n_events)
		c->frames_without_events++;
	struct wire_meta_iter it = {(const uint8_t *)raw + 64ull * h->n_events,
				    (const uint8_t *)raw + h->raw_len};
	uint16_t kind, len;
	const void *p;
	while (wire_meta_next(&it, &kind, &p, &len)) {
		if (kind != WIRE_META_CAPTURE)
			continue;
		int r = wire_cap_piece(&a, p, len);
		if (r < 0)
			c->bad++;
		if (r != 1)
			continue;
		const struct kp_cap_rec *rec = (const void *)a.buf;
		uint8_t want = (uint8_t)rec->tid;
		int ok = a.clock_off == 12345;
		for (uint32_t i = 0; i < rec->payload_len && ok; i++)
			ok = a.buf[KP_CAP_HDR_LEN + i] == want;
		c->bytes_ok += ok;
		c->records++;
		wire_cap_asm_reset(&a);
	}
}

TEST_SLOW(ship_capture_records_meta_only_frames, 60)
{
	static struct server srv;
	static struct cap_check cc;
	server_start(&srv, 0, check_caps, &cc);
	struct kp_config cfg;
	config_init(&cfg);
	char set[700], err[256];
	snprintf(set, sizeof(set), "agent.appliance=127.0.0.1:%d", ingest_port(srv.in));
	CHECK_EQ_INT(config_set(&cfg, set, err, sizeof(err)), 0);
	snprintf(set, sizeof(set), "agent.spoolDir=%s/spool", kt_tmpdir());
	CHECK_EQ_INT(config_set(&cfg, set, err, sizeof(err)), 0);
	CHECK_EQ_INT(config_set(&cfg, "agent.batchMs=20", err, sizeof(err)), 0);
	struct loop *l;
	CHECK_EQ_INT(loop_init(&l, 256), 0);
	struct sink sk;
	CHECK_EQ_INT(ship_sink_open(&cfg, l, &sk), 0);
	CHECK(sk.ops->capture != NULL);
	static uint8_t buf[KP_CAP_REC_MAX];
	const uint32_t sizes[] = {0, 100, 5000, KP_CAP_MAX_PAYLOAD};
	for (uint32_t i = 0; i < 200; i++) {
		uint32_t pl = sizes[i % 4];
		struct kp_cap_rec *c = (void *)buf;
		memset(c, 0, KP_CAP_HDR_LEN);
		c->kind = KP_CAP_CALL;
		c->pid = 77;
		c->tid = i;
		c->payload_len = pl;
		memset(buf + KP_CAP_HDR_LEN, (uint8_t)i, pl);
		c->len = (KP_CAP_HDR_LEN + pl + 7) & ~7u;
		CHECK_EQ_INT(sk.ops->capture(sk.ctx, c, c->len, 12345, NULL, 0), 0);
	}
	/* no event at all: only the tick cuts these frames */
	uint64_t deadline = now_mono_ns() + 20 * NSEC_PER_SEC;
	while (!ship_sink_idle(&sk) && now_mono_ns() < deadline) {
		sk.ops->tick(sk.ctx, now_mono_ns());
		loop_run_once(l, 10);
	}
	CHECK(ship_sink_idle(&sk));
	struct ship_stats st;
	ship_sink_stats(&sk, &st);
	CHECK_EQ_UINT(st.captures_in, 200);
	struct kp_buf line = {0};
	sk.ops->stats(sk.ctx, &line);
	buf_append(&line, "", 1);
	CHECK_CONTAINS(line.data, "capture_records=200");
	buf_free(&line);
	sk.ops->close(sk.ctx, 1000);
	loop_free(l);
	config_free(&cfg);
	server_stop(&srv);
	CHECK_EQ_UINT(cc.records, 200);
	CHECK_EQ_UINT(cc.bytes_ok, 200);
	CHECK_EQ_UINT(cc.bad, 0);
	CHECK_GE_UINT(cc.frames_without_events, 1);
}
