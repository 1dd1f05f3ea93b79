/*
 * ingest.c - the agent-facing TCP server on an io_uring loop: connection state machine, frame
 * verification, dedup, WAL appends, group commit with IORING_OP_FSYNC, acks, back-pressure,
 * delivery to the consumer, counters. Contract in ingest.h.
 *
 * Life of a frame:
 *
 *   recv -> rbuf --header (48 B, bounded)--> body complete? --wire_body_decode--> raw
 *        -> seq <= node max?  yes: ack DUP once the earlier record is durable
 *                             no:  wal_append (page cache) -> LSN
 *        -> group commit: fdatasync(s) in flight as io_uring ops; appends go on meanwhile
 *        -> durable: consumer(lsn, hdr, raw) in LSN order; acks sent per connection in order
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/loop.h"
#include "store/ingest.h"

#define RBUF_INIT	    (64u << 10)
#define RBUF_SHRINK	    (1u << 20)
#define CONN_MAX_ACKS	    4096	/* acks waiting for durability before reads pause */
#define CONN_MAX_PENDING    (64u << 20) /* decoded bytes of one connection waiting */
#define DEFAULT_MAX_PENDING (256ull << 20)
#define LOG_BURST	    20 /* rejection log lines per second before suppression */
#define LINGER_NS	    (2 * NSEC_PER_SEC) /* after a rejection, wait this long for EOF */

struct pend_ack {
	uint64_t seq, lsn, bytes;
	uint32_t status;
};

struct conn {
	struct ingest *in;
	struct conn *prev, *next;
	int fd;
	char peer[64];
	struct loop_op recv_op, send_op;

	uint8_t *rbuf; /* received, not yet consumed; a frame in progress starts at 0 */
	size_t rcap, rlen;
	struct wire_hdr hdr; /* of the frame in progress, once its 48 bytes are in */
	int have_hdr;
	uint64_t partial_since; /* monotonic ns when the frame in progress started; 0: none */

	struct pend_ack *acks; /* ring, in frame order */
	size_t acap, ahead, acount;
	uint64_t pending_bytes;

	struct kp_buf out, wout; /* acks staged / in flight */
	size_t woff;

	int recv_armed, send_armed, closing, paused;
	int lingering;	       /* rejected: sending WIRE_ACK_BAD, then discarding input */
	int shut_wr;	       /* FIN sent after the BAD ack */
	uint64_t linger_until; /* monotonic ns */
};

struct delivery {
	uint64_t lsn;
	struct wire_hdr hdr;
	void *raw;
};

struct ingest {
	struct ingest_opts o;
	char bind[256];
	struct wal *wal;
	struct loop *loop;
	int lfd, efd, port;
	pthread_t thread;
	int started, stopped, stopping;

	struct loop_op accept_op, stop_op, commit_op;
	struct loop_timer commit_timer, sweep_timer, accept_retry;
	struct sockaddr_storage acc_addr;
	socklen_t acc_len;
	uint64_t efd_val;
	int has_fsync_op, has_recv_op, has_send_op;

	struct conn *conns;
	uint64_t nconns;

	struct wal_sync_req req;
	int commit_inflight, commit_err;

	struct delivery *dq; /* ring, LSN order */
	size_t dcap, dhead, dcount;
	uint64_t pending_bytes;

	uint64_t log_window, log_suppressed;
	int log_count;

	struct ingest_stats st; /* written by the ingest thread only, atomically */
};

#define ST_ADD(in, f, v) __atomic_add_fetch(&(in)->st.f, (v), __ATOMIC_RELAXED)
#define ST_SET(in, f, v) __atomic_store_n(&(in)->st.f, (v), __ATOMIC_RELAXED)

static const char *reject_names[INGEST_REJ_MAX] = {
	"magic", "version", "toobig", "checksum", "decompress", "layout", "truncated", "timeout",
};

const char *ingest_reject_name(int reason)
{
	return reason >= 0 && reason < INGEST_REJ_MAX ? reject_names[reason] : "unknown";
}

static int reject_reason(int wire_err)
{
	switch (wire_err) {
	case WIRE_EMAGIC:
		return INGEST_REJ_MAGIC;
	case WIRE_EVERSION:
		return INGEST_REJ_VERSION;
	case WIRE_ETOOBIG:
		return INGEST_REJ_TOOBIG;
	case WIRE_ECHECKSUM:
		return INGEST_REJ_CHECKSUM;
	case WIRE_EDECOMPRESS:
		return INGEST_REJ_DECOMPRESS;
	default:
		return INGEST_REJ_LAYOUT;
	}
}

void ingest_opts_from_config(struct ingest_opts *o, const struct kp_config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->bind = cfg->ingest_bind;
	o->port = (int)cfg->ingest_port;
	o->max_conns = (int)cfg->ingest_max_conns;
	o->commit_us = (int)cfg->ingest_commit_us;
	o->frame_timeout_ms = (int)cfg->ingest_frame_timeout_ms;
	o->max_pending_bytes = DEFAULT_MAX_PENDING;
}

/* Rejection and error lines are rate limited: a flood of bad peers must not flood the log. */
static int log_ok(struct ingest *in)
{
	uint64_t now = now_mono_ns();
	if (now - in->log_window > NSEC_PER_SEC) {
		if (in->log_suppressed)
			log_warn("ingest: %" PRIu64 " more rejection messages suppressed",
				 in->log_suppressed);
		in->log_window = now;
		in->log_count = 0;
		in->log_suppressed = 0;
	}
	if (in->log_count++ < LOG_BURST)
		return 1;
	in->log_suppressed++;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Connections                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void conn_arm_recv(struct conn *c);
static void conn_kick_send(struct conn *c);
static void start_commit(struct ingest *in);

static void conn_maybe_free(struct conn *c)
{
	if (!c->closing || c->recv_op.pending || c->send_op.pending)
		return;
	struct ingest *in = c->in;
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		in->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	in->nconns--;
	ST_SET(in, conns_open, in->nconns);
	ST_SET(in, pending_bytes, in->pending_bytes);
	free(c->rbuf);
	free(c->acks);
	buf_free(&c->out);
	buf_free(&c->wout);
	free(c);
}

/* Closes c: in-flight ops are cancelled; c is freed once their completions have arrived. Its
 * unsent acks are dropped: the agent resends those frames and gets WIRE_ACK_DUP. */
static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	shutdown(c->fd, SHUT_RDWR);
	loop_cancel(c->in->loop, &c->recv_op);
	loop_cancel(c->in->loop, &c->send_op);
	conn_maybe_free(c);
}

static void conn_arm_discard(struct conn *c);

/* Rejects the frame in progress and ends the connection (see below). */
static void conn_reject(struct conn *c, int reason, const char *what)
{
	struct ingest *in = c->in;
	ST_ADD(in, rejected[reason], 1);
	if (log_ok(in)) {
		if (c->have_hdr)
			log_warn("ingest: rejected frame from %s: %s (node %016" PRIx64
				 " seq %" PRIu64
				 ", %u body bytes); connection closed, nothing written",
				 c->peer, what, c->hdr.node_id, c->hdr.seq, c->hdr.body_len);
		else
			log_warn("ingest: rejected frame from %s: %s; connection closed, nothing "
				 "written",
				 c->peer, what);
	}
	if (reason == INGEST_REJ_TRUNCATED) { /* the peer is gone: nobody to tell */
		conn_close(c);
		return;
	}
	/*
	 * Tell the agent, reliably: a plain close() with unread input sends an RST, which can
	 * destroy the BAD ack before the agent reads it, and an agent that never learns its frame
	 * is bad resends it forever. So: BAD goes out after the acks already due (acks of frames
	 * not yet durable are dropped: resent, they will be duplicates), then FIN, and input is
	 * discarded until the agent closes or LINGER_NS passes.
	 */
	uint64_t seq = c->have_hdr ? c->hdr.seq : 0;
	c->lingering = 1;
	c->linger_until = now_mono_ns() + LINGER_NS;
	c->partial_since = 0;
	c->have_hdr = 0;
	c->rlen = 0;
	c->acount = 0;
	c->pending_bytes = 0;
	uint8_t a[WIRE_ACK_LEN];
	wire_ack_encode(a, seq, WIRE_ACK_BAD);
	buf_append(&c->out, a, sizeof(a));
	conn_kick_send(c);
	conn_arm_discard(c);
}

static void push_ack(struct conn *c, uint64_t seq, uint64_t lsn, uint32_t status, uint64_t bytes)
{
	if (c->acount == c->acap) {
		size_t ncap = c->acap ? c->acap * 2 : 64;
		struct pend_ack *n = xmalloc(ncap * sizeof(*n));
		for (size_t i = 0; i < c->acount; i++)
			n[i] = c->acks[(c->ahead + i) % c->acap];
		free(c->acks);
		c->acks = n;
		c->acap = ncap;
		c->ahead = 0;
	}
	c->acks[(c->ahead + c->acount) % c->acap] = (struct pend_ack){seq, lsn, bytes, status};
	c->acount++;
	c->pending_bytes += bytes;
}

/* Sends the acks of c whose frames are durable, in order. */
static void conn_flush_acks(struct conn *c, uint64_t durable)
{
	struct ingest *in = c->in;
	int n = 0;
	while (c->acount && c->acks[c->ahead].lsn <= durable) {
		struct pend_ack *a = &c->acks[c->ahead];
		uint8_t b[WIRE_ACK_LEN];
		wire_ack_encode(b, a->seq, a->status);
		buf_append(&c->out, b, sizeof(b));
		c->pending_bytes -= a->bytes;
		c->ahead = (c->ahead + 1) % c->acap;
		c->acount--;
		n++;
	}
	if (n) {
		ST_ADD(in, acks_sent, (uint64_t)n);
		conn_kick_send(c);
	}
}

static void on_send(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct conn *c = op->ctx;
	c->send_armed = 0;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	if (c->lingering && res >= 0 && c->woff + (size_t)res >= c->wout.len && !c->out.len) {
		c->wout.len = c->woff = 0;
		if (!c->shut_wr) {
			c->shut_wr = 1;
			shutdown(c->fd, SHUT_WR); /* the BAD ack is out: FIN after it */
		}
		return;
	}
	if (res < 0) {
		if (res == -EINTR || res == -EAGAIN) {
			conn_kick_send(c);
			return;
		}
		conn_close(c); /* the peer went away; it will resend */
		return;
	}
	c->woff += (size_t)res;
	if (c->woff >= c->wout.len) {
		c->wout.len = 0;
		c->woff = 0;
	}
	conn_kick_send(c);
	conn_arm_recv(c); /* it may have paused on unsent acks */
}

static void conn_kick_send(struct conn *c)
{
	struct ingest *in = c->in;
	if (c->send_armed || c->closing)
		return;
	if (c->woff >= c->wout.len) {
		if (!c->out.len)
			return;
		struct kp_buf t = c->wout; /* swap: the staged acks go in flight */
		c->wout = c->out;
		c->out = t;
		c->out.len = 0;
		c->woff = 0;
	}
	struct io_uring_sqe *sqe = loop_sqe(in->loop);
	if (in->has_send_op)
		io_uring_prep_send(sqe, c->fd, c->wout.data + c->woff, c->wout.len - c->woff,
				   MSG_NOSIGNAL);
	else
		io_uring_prep_write(sqe, c->fd, c->wout.data + c->woff,
				    (unsigned)(c->wout.len - c->woff), 0);
	loop_op_set(sqe, &c->send_op);
	c->send_armed = 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Frames                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void schedule_commit(struct ingest *in)
{
	if (in->commit_inflight || in->commit_timer.armed)
		return; /* the commit in flight reschedules when it completes */
	if (in->o.commit_us <= 0)
		start_commit(in);
	else
		loop_timer_arm(in->loop, &in->commit_timer, (uint64_t)in->o.commit_us * 1000);
}

/* One complete frame at p (header + body). Returns 0, or -1 when c was closed. */
static int conn_frame(struct conn *c, const uint8_t *p, size_t len)
{
	struct ingest *in = c->in;
	const struct wire_hdr *h = &c->hdr;
	void *raw = xmalloc(h->raw_len ? h->raw_len : 1);
	int r = wire_body_decode(h, p + WIRE_HDR_LEN, raw, h->raw_len);
	if (r) {
		free(raw);
		conn_reject(c, reject_reason(r), wire_strerror(r));
		return -1;
	}
	uint64_t max_seq, lsn;
	if (wal_node_max(in->wal, h->node_id, &max_seq, &lsn) && h->seq <= max_seq) {
		/* A resend: already held. Ack it once the record holding the node's maximum is
		 * durable (every lower seq is then durable too). */
		free(raw);
		ST_ADD(in, dups, 1);
		push_ack(c, h->seq, lsn, WIRE_ACK_DUP, 0);
		if (lsn <= wal_durable_lsn(in->wal))
			conn_flush_acks(c, wal_durable_lsn(in->wal));
		return 0;
	}
	struct iovec iov = {(void *)p, len};
	r = wal_append(in->wal, h->node_id, h->seq, &iov, 1, &lsn);
	if (r) {
		free(raw);
		ST_ADD(in, wal_errors, 1);
		if (log_ok(in))
			log_error(
				"ingest: cannot append a frame from %s to the WAL: %s; closing the "
				"connection (the agent keeps the frame and retries)",
				c->peer, wal_strerror(r));
		conn_close(c);
		return -1;
	}
	if (in->dcount == in->dcap) {
		size_t ncap = in->dcap ? in->dcap * 2 : 256;
		struct delivery *n = xmalloc(ncap * sizeof(*n));
		for (size_t i = 0; i < in->dcount; i++)
			n[i] = in->dq[(in->dhead + i) % in->dcap];
		free(in->dq);
		in->dq = n;
		in->dcap = ncap;
		in->dhead = 0;
	}
	in->dq[(in->dhead + in->dcount) % in->dcap] = (struct delivery){lsn, *h, raw};
	in->dcount++;
	push_ack(c, h->seq, lsn, WIRE_ACK_OK, h->raw_len);
	in->pending_bytes += h->raw_len;
	ST_SET(in, pending_bytes, in->pending_bytes);
	ST_ADD(in, frames, 1);
	ST_ADD(in, events, h->n_events);
	ST_ADD(in, bytes, len);
	schedule_commit(in);
	return 0;
}

/*
 * Consumes every complete frame in rbuf; keeps the one in progress at the front. Returns 0, or
 * -1 when c was closed (and may be freed already: do not touch it then).
 */
static int conn_parse(struct conn *c)
{
	size_t pos = 0;
	int progress = 0;
	for (;;) {
		if (!c->have_hdr) {
			if (c->rlen - pos < WIRE_HDR_LEN)
				break;
			/* Every length is bounded here, before the body is read or allocated. */
			int r = wire_hdr_decode(c->rbuf + pos, &c->hdr);
			if (r) {
				c->have_hdr = r != WIRE_EMAGIC; /* the fields mean something */
				conn_reject(c, reject_reason(r), wire_strerror(r));
				return -1;
			}
			c->have_hdr = 1;
		}
		size_t need = WIRE_HDR_LEN + (size_t)c->hdr.body_len;
		if (c->rlen - pos < need)
			break;
		if (conn_frame(c, c->rbuf + pos, need) < 0)
			return -1;
		pos += need;
		c->have_hdr = 0;
		progress = 1;
	}
	if (pos) {
		memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
		c->rlen -= pos;
	}
	if (!c->rlen)
		c->partial_since = 0;
	else if (progress || !c->partial_since)
		c->partial_since = now_mono_ns();
	return 0;
}

static void on_recv(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct conn *c = op->ctx;
	c->recv_armed = 0;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	if (c->lingering) {
		if (res > 0 || res == -EINTR || res == -EAGAIN)
			conn_arm_discard(c);
		else
			conn_close(c); /* the agent read the BAD ack and closed */
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		conn_arm_recv(c);
		return;
	}
	if (res <= 0) {
		if (c->rlen) {
			char what[128];
			snprintf(what, sizeof(what),
				 "connection ended inside a frame (%zu bytes of %zu received)",
				 c->rlen,
				 c->have_hdr ? WIRE_HDR_LEN + (size_t)c->hdr.body_len
					     : (size_t)WIRE_HDR_LEN);
			conn_reject(c, INGEST_REJ_TRUNCATED, what);
		} else {
			conn_close(c);
		}
		return;
	}
	c->rlen += (size_t)res;
	if (conn_parse(c) == 0)
		conn_arm_recv(c);
}

/* While lingering: receive into rbuf and throw it away. */
static void conn_arm_discard(struct conn *c)
{
	struct ingest *in = c->in;
	if (c->recv_armed || c->closing)
		return;
	c->rlen = 0;
	struct io_uring_sqe *sqe = loop_sqe(in->loop);
	if (in->has_recv_op)
		io_uring_prep_recv(sqe, c->fd, c->rbuf, c->rcap, 0);
	else
		io_uring_prep_read(sqe, c->fd, c->rbuf, (unsigned)c->rcap, 0);
	loop_op_set(sqe, &c->recv_op);
	c->recv_armed = 1;
}

static int conn_backpressure(const struct conn *c)
{
	const struct ingest *in = c->in;
	return c->acount >= CONN_MAX_ACKS || c->pending_bytes > CONN_MAX_PENDING ||
	       in->pending_bytes > in->o.max_pending_bytes ||
	       c->out.len + c->wout.len > (1u << 20); /* the peer does not read its acks */
}

/*
 * Makes room in rbuf for the next receive and returns how much. It grows with what arrives,
 * never ahead of it: a header claiming 8 MiB costs nothing until the bytes are here. Never 0:
 * a frame in progress is at most need bytes and the buffer is grown past that.
 */
static size_t conn_rbuf_prepare(struct conn *c)
{
	if (!c->rlen && c->rcap > RBUF_SHRINK) { /* idle after a big frame: give it back */
		free(c->rbuf);
		c->rbuf = xmalloc(RBUF_INIT);
		c->rcap = RBUF_INIT;
	}
	size_t need = c->have_hdr ? WIRE_HDR_LEN + (size_t)c->hdr.body_len : RBUF_INIT;
	if (c->rcap - c->rlen < 16384 && c->rcap < need + RBUF_INIT) {
		size_t ncap = KP_MIN(KP_MAX(c->rcap * 2, c->rlen + RBUF_INIT), need + RBUF_INIT);
		c->rbuf = xrealloc(c->rbuf, ncap);
		c->rcap = ncap;
	}
	return c->rcap - c->rlen;
}

static void conn_arm_recv(struct conn *c)
{
	struct ingest *in = c->in;
	if (c->recv_armed || c->closing || c->lingering || in->stopping)
		return;
	if (conn_backpressure(c)) {
		if (!c->paused) {
			c->paused = 1;
			ST_ADD(in, pauses, 1);
		}
		return;
	}
	c->paused = 0;
	size_t room = conn_rbuf_prepare(c);
	struct io_uring_sqe *sqe = loop_sqe(in->loop);
	if (in->has_recv_op)
		io_uring_prep_recv(sqe, c->fd, c->rbuf + c->rlen, room, 0);
	else
		io_uring_prep_read(sqe, c->fd, c->rbuf + c->rlen, (unsigned)room, 0);
	loop_op_set(sqe, &c->recv_op);
	c->recv_armed = 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Group commit and delivery                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void release_durable(struct ingest *in)
{
	uint64_t durable = wal_durable_lsn(in->wal);
	while (in->dcount && in->dq[in->dhead].lsn <= durable) {
		struct delivery *d = &in->dq[in->dhead];
		if (in->o.consumer)
			in->o.consumer(in->o.consumer_ctx, d->lsn, &d->hdr, d->raw);
		in->pending_bytes -= d->hdr.raw_len;
		free(d->raw);
		in->dhead = (in->dhead + 1) % in->dcap;
		in->dcount--;
		ST_ADD(in, delivered, 1);
	}
	for (struct conn *c = in->conns, *next; c; c = next) {
		next = c->next;
		if (!c->closing && !c->lingering) {
			conn_flush_acks(c, durable);
			if (c->paused)
				conn_arm_recv(c);
		}
	}
	ST_SET(in, pending_bytes, in->pending_bytes);
}

static void note_fsync(struct ingest *in, uint64_t ns)
{
	ST_ADD(in, fsyncs, 1);
	ST_ADD(in, fsync_ns_sum, ns);
	if (ns > in->st.fsync_ns_max)
		ST_SET(in, fsync_ns_max, ns);
	int b = 0;
	uint64_t bound = 125000; /* 0.125 ms */
	while (b < INGEST_FSYNC_BUCKETS - 1 && ns > bound)
		b++, bound *= 2;
	ST_ADD(in, fsync_hist[b], 1);
}

/* The WAL failed: nothing appended since the last good sync will ever be acknowledged. Drop
 * it and every connection; agents keep their frames and retry (and keep failing until an
 * operator has fixed the disk and restarted kprobed). */
static void wal_failed_drop(struct ingest *in)
{
	uint64_t durable = wal_durable_lsn(in->wal);
	while (in->dcount) {
		struct delivery *d = &in->dq[(in->dhead + in->dcount - 1) % in->dcap];
		if (d->lsn <= durable)
			break;
		in->pending_bytes -= d->hdr.raw_len;
		free(d->raw);
		in->dcount--;
	}
	ST_SET(in, pending_bytes, in->pending_bytes);
	for (struct conn *c = in->conns, *next; c; c = next) {
		next = c->next;
		conn_close(c);
	}
}

static void commit_done(struct ingest *in, int err)
{
	int r = wal_sync_finish(in->wal, &in->req, err);
	if (r < 0) {
		ST_ADD(in, wal_errors, 1);
		wal_failed_drop(in);
		return;
	}
	note_fsync(in, now_mono_ns() - in->req.started_ns);
	release_durable(in);
	/* Frames appended while this fsync ran have waited long enough: go again now. */
	if (wal_last_lsn(in->wal) > wal_durable_lsn(in->wal))
		start_commit(in);
}

static void on_commit(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct ingest *in = op->ctx;
	if (res < 0 && !in->commit_err)
		in->commit_err = res;
	if (op->pending)
		return; /* more fdatasyncs of this round to come */
	in->commit_inflight = 0;
	commit_done(in, in->commit_err);
}

static void start_commit(struct ingest *in)
{
	if (in->commit_inflight)
		return;
	int r = wal_sync_prepare(in->wal, &in->req);
	if (r <= 0) {
		if (r == 0)
			release_durable(in);
		return;
	}
	if (!in->has_fsync_op || in->o.sync_inline) {
		/* Fallback without IORING_OP_FSYNC: fdatasync on the loop thread. */
		commit_done(in, wal_sync_run(in->wal, &in->req));
		return;
	}
	in->commit_inflight = 1;
	in->commit_err = 0;
	for (int i = 0; i < in->req.nfds; i++) {
		struct io_uring_sqe *sqe = loop_sqe(in->loop);
		io_uring_prep_fsync(sqe, in->req.fds[i], IORING_FSYNC_DATASYNC);
		loop_op_set(sqe, &in->commit_op);
	}
}

static void on_commit_timer(struct loop *l, struct loop_timer *t)
{
	start_commit(t->ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* Accept, sweep, stop                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void arm_accept(struct ingest *in)
{
	if (in->stopping)
		return;
	in->acc_len = sizeof(in->acc_addr);
	struct io_uring_sqe *sqe = loop_sqe(in->loop);
	io_uring_prep_accept(sqe, in->lfd, (struct sockaddr *)&in->acc_addr, &in->acc_len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
	loop_op_set(sqe, &in->accept_op);
}

static void peer_name(const struct sockaddr_storage *a, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)a;
		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		port = ntohs(s->sin_port);
		snprintf(out, cap, "%s:%d", host, port);
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)a;
		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		port = ntohs(s->sin6_port);
		snprintf(out, cap, "[%s]:%d", host, port);
	} else {
		snprintf(out, cap, "unknown peer");
	}
}

static void on_accept_retry(struct loop *l, struct loop_timer *t)
{
	arm_accept(t->ctx);
}

static void on_accept(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct ingest *in = op->ctx;
	if (in->stopping) {
		if (res >= 0)
			close(res);
		return;
	}
	if (res < 0) {
		if (res != -EINTR && res != -EAGAIN && res != -ECONNABORTED && log_ok(in))
			log_error("ingest: accept failed: %s; retrying in 100 ms", strerror(-res));
		loop_timer_arm(l, &in->accept_retry, 100 * NSEC_PER_MSEC);
		return;
	}
	char peer[64];
	peer_name(&in->acc_addr, peer, sizeof(peer));
	if (in->nconns >= (uint64_t)in->o.max_conns) {
		ST_ADD(in, conns_refused, 1);
		if (log_ok(in))
			log_warn("ingest: refused %s: ingest.maxConnections (%d) reached", peer,
				 in->o.max_conns);
		close(res);
		arm_accept(in);
		return;
	}
	struct conn *c = xcalloc(1, sizeof(*c));
	c->in = in;
	c->fd = res;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	int one = 1;
	setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->recv_op = (struct loop_op){.cb = on_recv, .ctx = c};
	c->send_op = (struct loop_op){.cb = on_send, .ctx = c};
	c->rbuf = xmalloc(RBUF_INIT);
	c->rcap = RBUF_INIT;
	c->next = in->conns;
	if (in->conns)
		in->conns->prev = c;
	in->conns = c;
	in->nconns++;
	ST_ADD(in, conns_accepted, 1);
	ST_SET(in, conns_open, in->nconns);
	log_debug("ingest: connection from %s", peer);
	conn_arm_recv(c);
	arm_accept(in);
}

static uint64_t sweep_ns(const struct ingest *in)
{
	uint64_t ms = (uint64_t)in->o.frame_timeout_ms / 4;
	return KP_MAX(KP_MIN(ms, 1000), 10) * NSEC_PER_MSEC;
}

static void on_sweep(struct loop *l, struct loop_timer *t)
{
	struct ingest *in = t->ctx;
	uint64_t now = now_mono_ns(), limit = (uint64_t)in->o.frame_timeout_ms * NSEC_PER_MSEC;
	for (struct conn *c = in->conns, *next; c; c = next) {
		next = c->next;
		if (!c->closing && c->lingering && now > c->linger_until) {
			conn_close(c);
			continue;
		}
		if (!c->closing && !c->lingering && c->partial_since &&
		    now - c->partial_since > limit) {
			char what[160];
			snprintf(what, sizeof(what),
				 "frame not complete after %d ms (%zu bytes received); "
				 "ingest.frameTimeoutMs bounds how long a frame may take",
				 in->o.frame_timeout_ms, c->rlen);
			conn_reject(c, INGEST_REJ_TIMEOUT, what);
		}
	}
	if (!in->stopping)
		loop_timer_arm(l, &in->sweep_timer, sweep_ns(in));
}

static void on_stop(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct ingest *in = op->ctx;
	in->stopping = 1;
	loop_cancel(l, &in->accept_op);
	loop_timer_cancel(l, &in->sweep_timer);
	loop_timer_cancel(l, &in->accept_retry);
	loop_timer_cancel(l, &in->commit_timer);
	for (struct conn *c = in->conns, *next; c; c = next) {
		next = c->next;
		conn_close(c);
	}
}

static int all_settled(const struct ingest *in)
{
	return in->stopping && !in->conns && !in->accept_op.pending && !in->stop_op.pending &&
	       !in->commit_op.pending && !in->sweep_timer.op.pending &&
	       !in->accept_retry.op.pending && !in->commit_timer.op.pending;
}

static void *ingest_main(void *arg)
{
	struct ingest *in = arg;
	arm_accept(in);
	struct io_uring_sqe *sqe = loop_sqe(in->loop);
	io_uring_prep_poll_add(sqe, in->efd, POLLIN);
	loop_op_set(sqe, &in->stop_op);
	loop_timer_arm(in->loop, &in->sweep_timer, sweep_ns(in));
	while (!all_settled(in)) {
		int r = loop_run_once(in->loop, -1);
		if (r < 0 && r != -EINTR) {
			log_error("ingest: io_uring wait failed: %s", strerror(-r));
			break;
		}
	}
	/* What was appended and not yet synced: make it durable and deliver it. */
	if (!wal_failed(in->wal) && wal_sync(in->wal) == 0)
		release_durable(in);
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Public                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static int listen_on(const char *host, int port, int *fd_out, int *port_out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int r = getaddrinfo(host && *host ? host : NULL, ps, &hints, &res);
	if (r) {
		log_error("ingest: cannot resolve ingest.bind '%s': %s", host, gai_strerror(r));
		return -EINVAL;
	}
	int err = -EADDRNOTAVAIL;
	/*
	 * A kprobed that just died may still hold the port for a moment: io_uring releases the
	 * files of its in-flight requests (our accept) asynchronously after the process exits.
	 * Retry EADDRINUSE for a few seconds, as a supervisor's quick restart would need.
	 */
	for (int attempt = 0; attempt < 50; attempt++) {
		if (attempt) {
			if (attempt == 1)
				log_info("ingest: %s:%d is still in use; retrying for 5 s", host,
					 port);
			usleep(100000);
		}
		for (struct addrinfo *a = res; a; a = a->ai_next) {
			int fd =
				socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (fd < 0) {
				err = -errno;
				continue;
			}
			int one = 1;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
				err = -errno;
				close(fd);
				continue;
			}
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			getsockname(fd, (struct sockaddr *)&ss, &sl);
			*port_out = ntohs(ss.ss_family == AF_INET6
						  ? ((struct sockaddr_in6 *)&ss)->sin6_port
						  : ((struct sockaddr_in *)&ss)->sin_port);
			*fd_out = fd;
			freeaddrinfo(res);
			return 0;
		}
		if (err != -EADDRINUSE)
			break;
	}
	freeaddrinfo(res);
	log_error("ingest: cannot listen on %s:%d: %s%s", host, port, strerror(-err),
		  err == -EADDRINUSE ? " (another kprobed? set ingest.port)" : "");
	return err;
}

int ingest_open(struct ingest **out, struct wal *wal, const struct ingest_opts *o)
{
	struct ingest *in = xcalloc(1, sizeof(*in));
	in->o = *o;
	snprintf(in->bind, sizeof(in->bind), "%s", o->bind ? o->bind : "127.0.0.1");
	in->o.bind = in->bind;
	if (in->o.max_conns <= 0)
		in->o.max_conns = 1024;
	if (in->o.frame_timeout_ms <= 0)
		in->o.frame_timeout_ms = 30000;
	if (!in->o.max_pending_bytes)
		in->o.max_pending_bytes = DEFAULT_MAX_PENDING;
	in->wal = wal;
	in->lfd = in->efd = -1;
	int r = loop_init(&in->loop, 1024);
	if (r < 0) {
		log_error("ingest: io_uring unavailable: %s (kernel too old, or "
			  "kernel.io_uring_disabled set?)",
			  strerror(-r));
		free(in);
		return r;
	}
	in->has_fsync_op = loop_has_op(in->loop, IORING_OP_FSYNC);
	in->has_recv_op = loop_has_op(in->loop, IORING_OP_RECV);
	in->has_send_op = loop_has_op(in->loop, IORING_OP_SEND);
	if (!loop_has_op(in->loop, IORING_OP_ACCEPT)) {
		log_error("ingest: this kernel's io_uring has no ACCEPT (Linux 5.5+ needed)");
		loop_free(in->loop);
		free(in);
		return -EOPNOTSUPP;
	}
	in->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (in->efd < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = listen_on(in->bind, o->port, &in->lfd, &in->port)) < 0)
		goto fail;
	in->accept_op = (struct loop_op){.cb = on_accept, .ctx = in};
	in->stop_op = (struct loop_op){.cb = on_stop, .ctx = in};
	in->commit_op = (struct loop_op){.cb = on_commit, .ctx = in};
	in->commit_timer = (struct loop_timer){.fn = on_commit_timer, .ctx = in};
	in->sweep_timer = (struct loop_timer){.fn = on_sweep, .ctx = in};
	in->accept_retry = (struct loop_timer){.fn = on_accept_retry, .ctx = in};
	*out = in;
	return 0;
fail:
	if (in->efd >= 0)
		close(in->efd);
	loop_free(in->loop);
	free(in);
	return r;
}

int ingest_port(const struct ingest *in)
{
	return in->port;
}

int ingest_start(struct ingest *in)
{
	if (in->started)
		return -EALREADY;
	int r = pthread_create(&in->thread, NULL, ingest_main, in);
	if (r)
		return -r;
	in->started = 1;
	return 0;
}

void ingest_stop(struct ingest *in)
{
	if (!in->started || in->stopped)
		return;
	uint64_t one = 1;
	if (write(in->efd, &one, sizeof(one)) < 0) {
		/* an eventfd write cannot fail short of a bug; the join below would hang */
		log_error("ingest: cannot signal the ingest thread: %s", strerror(errno));
	}
	pthread_join(in->thread, NULL);
	in->stopped = 1;
}

void ingest_free(struct ingest *in)
{
	if (!in)
		return;
	ingest_stop(in);
	for (size_t i = 0; i < in->dcount; i++)
		free(in->dq[(in->dhead + i) % in->dcap].raw);
	free(in->dq);
	if (in->lfd >= 0)
		close(in->lfd);
	if (in->efd >= 0)
		close(in->efd);
	loop_free(in->loop);
	free(in);
}

void ingest_stats(const struct ingest *in, struct ingest_stats *out)
{
	const uint64_t *s = (const uint64_t *)&in->st;
	uint64_t *d = (uint64_t *)out;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

void ingest_metrics(const struct ingest *in, struct kp_buf *b)
{
	struct ingest_stats s;
	ingest_stats(in, &s);
	buf_printf(b,
		   "# HELP kprobe_ingest_frames_total Agent frames accepted and written.\n"
		   "# TYPE kprobe_ingest_frames_total counter\n"
		   "kprobe_ingest_frames_total %" PRIu64 "\n",
		   s.frames);
	buf_printf(b,
		   "# TYPE kprobe_ingest_events_total counter\n"
		   "kprobe_ingest_events_total %" PRIu64 "\n",
		   s.events);
	buf_printf(b,
		   "# TYPE kprobe_ingest_bytes_total counter\n"
		   "kprobe_ingest_bytes_total %" PRIu64 "\n",
		   s.bytes);
	buf_printf(b,
		   "# HELP kprobe_ingest_duplicates_total Resent frames already held.\n"
		   "# TYPE kprobe_ingest_duplicates_total counter\n"
		   "kprobe_ingest_duplicates_total %" PRIu64 "\n",
		   s.dups);
	buf_puts(b, "# HELP kprobe_ingest_rejected_total Bad frames, by reason.\n"
		    "# TYPE kprobe_ingest_rejected_total counter\n");
	for (int i = 0; i < INGEST_REJ_MAX; i++)
		buf_printf(b, "kprobe_ingest_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
			   reject_names[i], s.rejected[i]);
	buf_printf(b,
		   "# TYPE kprobe_ingest_connections_total counter\n"
		   "kprobe_ingest_connections_total %" PRIu64 "\n"
		   "# TYPE kprobe_ingest_connections_refused_total counter\n"
		   "kprobe_ingest_connections_refused_total %" PRIu64 "\n"
		   "# TYPE kprobe_ingest_connections gauge\n"
		   "kprobe_ingest_connections %" PRIu64 "\n",
		   s.conns_accepted, s.conns_refused, s.conns_open);
	buf_printf(b,
		   "# TYPE kprobe_ingest_wal_errors_total counter\n"
		   "kprobe_ingest_wal_errors_total %" PRIu64 "\n"
		   "# TYPE kprobe_ingest_pending_bytes gauge\n"
		   "kprobe_ingest_pending_bytes %" PRIu64 "\n",
		   s.wal_errors, s.pending_bytes);
	buf_puts(b, "# HELP kprobe_ingest_fsync_seconds WAL group-commit fdatasync latency.\n"
		    "# TYPE kprobe_ingest_fsync_seconds histogram\n");
	uint64_t cum = 0;
	double bound = 0.000125;
	for (int i = 0; i < INGEST_FSYNC_BUCKETS; i++, bound *= 2) {
		cum += s.fsync_hist[i];
		if (i == INGEST_FSYNC_BUCKETS - 1)
			buf_printf(b,
				   "kprobe_ingest_fsync_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
				   cum);
		else
			buf_printf(b, "kprobe_ingest_fsync_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
				   bound, cum);
	}
	buf_printf(
		b,
		"kprobe_ingest_fsync_seconds_sum %.9f\nkprobe_ingest_fsync_seconds_count %" PRIu64
		"\n",
		(double)s.fsync_ns_sum / 1e9, s.fsyncs);
}

/* ---- replay ---- */

struct replay_ctx {
	ingest_consumer_fn fn;
	void *ctx;
	void *raw;
	size_t cap;
	int64_t n;
};

static int replay_rec(void *arg, uint64_t lsn, uint64_t node_id, uint64_t seq, const void *payload,
		      uint32_t len)
{
	struct replay_ctx *rc = arg;
	struct wire_hdr h;
	int r = len >= WIRE_HDR_LEN ? wire_hdr_decode(payload, &h) : WIRE_ELAYOUT;
	if (!r && len != WIRE_HDR_LEN + (uint64_t)h.body_len)
		r = WIRE_ELAYOUT;
	if (!r && h.raw_len > rc->cap) {
		free(rc->raw);
		rc->cap = KP_MAX((size_t)h.raw_len, 1u << 20);
		rc->raw = xmalloc(rc->cap);
	}
	if (!r)
		r = wire_body_decode(&h, (const uint8_t *)payload + WIRE_HDR_LEN, rc->raw, rc->cap);
	if (r) {
		log_error("WAL record %" PRIu64 " (node %016" PRIx64 " seq %" PRIu64
			  ") does not decode as a frame: %s; skipped",
			  lsn, node_id, seq, wire_strerror(r));
		return 0;
	}
	rc->fn(rc->ctx, lsn, &h, rc->raw);
	rc->n++;
	return 0;
}

int64_t ingest_replay(struct wal *w, uint64_t from_lsn, ingest_consumer_fn fn, void *ctx)
{
	struct replay_ctx rc = {fn, ctx, NULL, 0, 0};
	int r = wal_replay(w, from_lsn, replay_rec, &rc);
	free(rc.raw);
	return r < 0 ? r : rc.n;
}
