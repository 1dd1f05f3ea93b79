/*
 * ship.c - the shipping sink: batch -> frame -> queue (memory, then spool) -> TCP send over
 * io_uring -> ack -> forget. Contract in ship.h.
 *
 * The queue of unacknowledged frames is a ring of absolute indices:
 *
 *     q_head ........ q_acked ........ q_send ........ q_tail
 *     |acked, waiting|sent, waiting   |not sent yet   |
 *     |for a send in |for their ack   |               |
 *     |flight to end |                |               |
 *
 * Frames in memory are the oldest unacknowledged ones; when memory is full (or the spool
 * already holds unread frames) new frames are appended to the spool instead, and read back
 * into memory as acknowledgements make room. So memory, then the spool's unread frames, is
 * always seq order. On reconnect q_send goes back to q_acked and everything unacknowledged is
 * sent again, in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>

#include "agent/loop.h"
#include "agent/ship.h"
#include "agent/spool.h"
#include "agent/wire.h"

#define SHIP_IOV	   64	      /* frames per sendmsg */
#define SHIP_SEND_MAX	   (8u << 20) /* bytes per sendmsg */
#define SHIP_META_CUT	   (3u << 20) /* cut a frame when its metadata grows past this */
#define SHIP_NMETA_CUT	   60000
#define SEQ_RESERVE	   (1ull << 20)
#define BACKOFF_START_MS   50
#define CONNECT_TIMEOUT_MS 3000

struct qframe {
	uint8_t *data;
	uint32_t len, n_events;
	uint64_t seq;
	uint64_t token; /* spool file it was read from; 0: only in memory */
	int bad;	/* rejected by the appliance: never sent again */
};

struct ship {
	struct loop *loop;
	char host[256], port[16];
	uint32_t batch_events;
	uint64_t batch_ns, mem_max;
	uint64_t reconnect_max_ms;
	char node_name[256], kernel[128];
	uint64_t node_id;

	struct wire_batch batch;
	uint64_t batch_first_ns;
	struct kp_buf enc; /* frames are encoded here, then copied out at their size */
	uint64_t next_seq, reserved_seq;

	struct qframe *q;
	uint64_t qcap; /* power of two */
	uint64_t q_head, q_acked, q_send, q_tail;
	uint64_t send_off;	      /* bytes of q[q_send] already sent */
	uint64_t inflight_from;	      /* first frame of the send in flight */
	uint64_t iov_frame[SHIP_IOV]; /* frame index of each iovec in flight */
	int iov_n;
	uint64_t mem_bytes;
	struct spool *spool;

	enum ship_link link;
	int fd;
	struct loop_op connect_op, send_op, recv_op;
	struct loop_timer reconnect_timer, connect_timer;
	int connect_by_poll;
	uint64_t connect_deadline;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct msghdr msg;
	struct iovec iov[SHIP_IOV];
	uint8_t abuf[4096];
	size_t alen;
	uint64_t backoff_ms;
	int acked_on_conn, was_up, closing;
	int has_connect, has_sendmsg, has_recv;
	uint64_t log_ns;

	struct ship_stats st;
};

static void kick_send(struct ship *s);
static void connect_start(struct ship *s);
static void link_down(struct ship *s, const char *why, int err);

static inline struct qframe *qat(struct ship *s, uint64_t i)
{
	return &s->q[i & (s->qcap - 1)];
}

/* At most one warning a second for conditions that repeat per frame. */
static int log_ok(struct ship *s)
{
	uint64_t now = now_mono_ns();
	if (s->log_ns && now - s->log_ns < NSEC_PER_SEC)
		return 0;
	s->log_ns = now;
	return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Queue                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void q_push(struct ship *s, const struct qframe *f)
{
	if (s->q_tail - s->q_head == s->qcap) {
		uint64_t ncap = s->qcap * 2;
		struct qframe *n = xmalloc(ncap * sizeof(*n));
		for (uint64_t i = s->q_head; i < s->q_tail; i++)
			n[i & (ncap - 1)] = *qat(s, i);
		free(s->q);
		s->q = n;
		s->qcap = ncap;
	}
	*qat(s, s->q_tail++) = *f;
	s->mem_bytes += f->len;
}

/* Frees acknowledged frames, except those a send in flight still points into. */
static void reap(struct ship *s)
{
	while (s->q_head < s->q_acked) {
		if (s->send_op.pending && s->q_head >= s->inflight_from)
			break;
		struct qframe *f = qat(s, s->q_head);
		s->mem_bytes -= f->len;
		free(f->data);
		f->data = NULL;
		s->q_head++;
	}
}

static uint64_t spool_unread(const struct ship *s)
{
	struct spool_stats st;
	spool_stats(s->spool, &st);
	return st.unread;
}

/* Loads spooled frames into memory while there is room (always at least one). */
static void refill(struct ship *s)
{
	for (;;) {
		uint64_t room = s->q_tail == s->q_head	     ? UINT64_MAX
				: s->mem_bytes >= s->mem_max ? 0
							     : s->mem_max - s->mem_bytes;
		if (!room)
			return;
		struct spool_frame f;
		if (spool_read_next(s->spool, room, &f) <= 0)
			return;
		struct qframe q = {f.data, f.len, f.n_events, f.seq, f.token, 0};
		q_push(s, &q);
	}
}

static void enqueue(struct ship *s, uint8_t *data, uint32_t len, uint64_t seq, uint32_t nev)
{
	if (spool_unread(s) || s->mem_bytes + len > s->mem_max) {
		int r = spool_append(s->spool, data, len, seq, nev);
		free(data);
		if (r < 0 && r != -EFBIG) { /* (-EFBIG is counted by the spool) */
			s->st.dropped_frames++;
			s->st.dropped_events += nev;
		}
		if (r < 0 && log_ok(s))
			log_error("ship: cannot spool frame %" PRIu64
				  " (%u events): %s; it is lost. "
				  "Check agent.spoolDir (space, permissions)",
				  seq, nev, strerror(-r));
		refill(s);
	} else {
		/* The next spooled frame must start a new file: files hold contiguous runs. */
		spool_seal(s->spool);
		struct qframe q = {data, len, nev, seq, 0, 0};
		q_push(s, &q);
	}
	kick_send(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Batching                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void next_seq_reserve(struct ship *s)
{
	uint64_t upto = s->next_seq + SEQ_RESERVE;
	int r = spool_seq_reserve(s->spool, upto);
	if (r < 0)
		log_warn("ship: cannot persist the frame seq bound in %s: %s (seqs stay above the "
			 "realtime clock)",
			 "agent.spoolDir", strerror(-r));
	s->reserved_seq = upto;
}

static void cut(struct ship *s)
{
	struct wire_batch *b = &s->batch;
	if (!b->n_events && !b->n_meta)
		return;
	wire_batch_add_node(b, s->node_name, s->kernel);
	uint64_t seq = s->next_seq++;
	if (s->next_seq + 1 >= s->reserved_seq)
		next_seq_reserve(s);
	uint32_t nev = b->n_events;
	/*
	 * The body is the events then the metadata, one LZ4 block. Given separate buffers,
	 * wire_frame_encode copies both into a joined one first; moving the (small) metadata
	 * behind the events here lets LZ4 read the events where they are. Same bytes on the wire.
	 */
	buf_append(&b->events, b->meta.data, b->meta.len);
	struct wire_batch flat = {
		.events = b->events, .n_events = b->n_events, .n_meta = b->n_meta};
	s->enc.len = 0;
	int r = wire_frame_encode(&flat, s->node_id, seq, 1, &s->enc);
	wire_batch_reset(b);
	if (r < 0) {
		/* NEVER: cut() keeps batches within the bounds. */
		log_error("ship: cannot encode frame %" PRIu64 ": %s; %u events lost", seq,
			  wire_strerror(r), nev);
		s->st.dropped_frames++;
		s->st.dropped_events += nev;
		return;
	}
	s->st.frames_cut++;
	/* The encoder reserves for the worst case (incompressible); the queue keeps only what the
	 * frame uses, and the scratch buffer is reused (no fresh pages to fault in per frame). */
	uint8_t *data = xmalloc(s->enc.len);
	memcpy(data, s->enc.data, s->enc.len);
	enqueue(s, data, (uint32_t)s->enc.len, seq, nev);
}

static int ship_event(void *ctx, const struct kp_event *ev, const struct wire_proc *proc,
		      int proc_fresh, const struct wire_conn *conn, int conn_fresh)
{
	struct ship *s = ctx;
	struct wire_batch *b = &s->batch;
	if (KP_UNLIKELY(!b->n_events && !b->n_meta))
		s->batch_first_ns = now_mono_ns();
	if (KP_UNLIKELY(proc && proc_fresh))
		wire_batch_add_proc(b, proc);
	if (KP_UNLIKELY(conn && conn_fresh))
		wire_batch_add_conn(b, conn);
	/* wire_batch_add_event, without the call and the NUL terminator kp_buf keeps. */
	if (KP_UNLIKELY(b->events.len + sizeof(*ev) >= b->events.cap))
		buf_reserve(&b->events, (size_t)s->batch_events * sizeof(*ev) + 4096);
	memcpy(b->events.data + b->events.len, ev, sizeof(*ev));
	b->events.len += sizeof(*ev);
	b->n_events++;
	s->st.events_in++;
	if (KP_UNLIKELY(b->n_events >= s->batch_events || b->meta.len > SHIP_META_CUT ||
			b->n_meta > SHIP_NMETA_CUT))
		cut(s);
	return 0;
}

/*
 * Replay capture records ride as WIRE_META_CAPTURE pieces in the batch being built, like any
 * metadata: a frame may hold only them (a captured process whose events the probe's filters
 * leave out). Frames stay within their bounds: the batch is cut before a record would push its
 * metadata past SHIP_META_CUT.
 */
static int ship_capture(void *ctx, const void *rec, uint32_t len, int64_t clock_off,
			const struct wire_proc *proc, int proc_fresh)
{
	struct ship *s = ctx;
	struct wire_batch *b = &s->batch;
	if (b->meta.len + len + 2 * WIRE_META_MAX_LEN > SHIP_META_CUT ||
	    b->n_meta + len / WIRE_CAP_PIECE_MAX + 2 > SHIP_NMETA_CUT)
		cut(s);
	if (!b->n_events && !b->n_meta)
		s->batch_first_ns = now_mono_ns();
	if (proc && proc_fresh)
		wire_batch_add_proc(b, proc);
	int r = wire_batch_add_capture(b, rec, len, clock_off);
	if (r < 0)
		return -EINVAL;
	s->st.captures_in++;
	s->st.capture_bytes_in += len;
	return 0;
}

static void ship_tick(void *ctx, uint64_t now)
{
	struct ship *s = ctx;
	if ((s->batch.n_events || s->batch.n_meta) && now - s->batch_first_ns >= s->batch_ns)
		cut(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Sending                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void on_send(struct loop *l, struct loop_op *op, int res, uint32_t flags);

static void kick_send(struct ship *s)
{
	if (s->link != SHIP_LINK_UP || s->send_op.pending)
		return;
	while (s->q_send < s->q_tail && qat(s, s->q_send)->bad && !s->send_off)
		s->q_send++;
	if (s->q_send == s->q_tail)
		return;
	int n = 0;
	uint64_t bytes = 0;
	for (uint64_t i = s->q_send; i < s->q_tail && n < SHIP_IOV && bytes < SHIP_SEND_MAX; i++) {
		struct qframe *f = qat(s, i);
		if (f->bad)
			continue;
		uint64_t off = i == s->q_send ? s->send_off : 0;
		s->iov[n] = (struct iovec){f->data + off, f->len - off};
		s->iov_frame[n] = i;
		bytes += f->len - off;
		n++;
	}
	s->iov_n = n;
	s->inflight_from = s->q_send;
	struct io_uring_sqe *sqe = loop_sqe(s->loop);
	if (s->has_sendmsg) {
		memset(&s->msg, 0, sizeof(s->msg));
		s->msg.msg_iov = s->iov;
		s->msg.msg_iovlen = (size_t)n;
		io_uring_prep_sendmsg(sqe, s->fd, &s->msg, MSG_NOSIGNAL);
	} else {
		io_uring_prep_writev(sqe, s->fd, s->iov, (unsigned)n, 0);
	}
	loop_op_set(sqe, &s->send_op);
}

static void on_send(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct ship *s = op->ctx;
	if (s->link != SHIP_LINK_UP) {
		link_down(s, NULL, 0); /* tearing down: this was one of the ops to wait for */
		return;
	}
	if (res < 0) {
		if (res == -EINTR || res == -EAGAIN) {
			kick_send(s);
			return;
		}
		link_down(s, "send failed", res);
		return;
	}
	s->st.bytes_sent += (uint64_t)res;
	/* Walk the frames of this send by what went out (a short send stops mid-frame). */
	uint64_t left = (uint64_t)res;
	for (int k = 0; k < s->iov_n && left; k++) {
		uint64_t i = s->iov_frame[k];
		struct qframe *f = qat(s, i);
		uint64_t off = i == s->q_send ? s->send_off : 0;
		uint64_t rest = f->len - off;
		if (left < rest) {
			s->q_send = i;
			s->send_off = off + left;
			left = 0;
			break;
		}
		left -= rest;
		s->q_send = i + 1;
		s->send_off = 0;
		s->st.frames_sent++;
		s->st.events_sent += f->n_events;
	}
	reap(s);
	kick_send(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Acknowledgements                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void frame_done(struct ship *s, struct qframe *f)
{
	if (f->token)
		spool_ack(s->spool, f->token);
}

/* Moves q_acked over frames rejected earlier (they wait for nothing). */
static void skip_bad(struct ship *s)
{
	while (s->q_acked < s->q_send && qat(s, s->q_acked)->bad) {
		spool_note_acked(s->spool, qat(s, s->q_acked)->seq);
		s->q_acked++;
	}
}

static void reject(struct ship *s, struct qframe *f)
{
	log_error("ship: the appliance rejected frame %" PRIu64 " (%u events, %u bytes) as "
		  "malformed; dropped. This is a bug or memory corruption on this node: please "
		  "report it with kprobed's log line for this frame",
		  f->seq, f->n_events, f->len);
	f->bad = 1;
	s->st.frames_rejected++;
	frame_done(s, f);
}

static int handle_ack(struct ship *s, uint64_t seq, uint32_t status)
{
	skip_bad(s);
	if (s->q_acked < s->q_send && qat(s, s->q_acked)->seq == seq) {
		struct qframe *f = qat(s, s->q_acked);
		if (status == WIRE_ACK_BAD) {
			reject(s, f);
		} else {
			s->st.frames_acked++;
			s->st.events_acked += f->n_events;
			s->st.dups += status == WIRE_ACK_DUP;
			frame_done(s, f);
		}
		spool_note_acked(s->spool, seq);
		s->q_acked++;
		skip_bad(s);
		return 0;
	}
	if (status == WIRE_ACK_BAD) {
		/* A rejection can overtake acks: kprobed drops the acks of frames not yet durable
		 * when it rejects one (resent, they come back as duplicates). */
		for (uint64_t i = s->q_acked; i < s->q_send; i++)
			if (qat(s, i)->seq == seq && !qat(s, i)->bad) {
				reject(s, qat(s, i));
				return 0;
			}
	}
	log_warn("ship: unexpected ack for frame %" PRIu64 " (status %u); expected %" PRIu64
		 "; reconnecting",
		 seq, status, s->q_acked < s->q_send ? qat(s, s->q_acked)->seq : 0);
	return -EPROTO;
}

static void arm_recv(struct ship *s);

static void on_recv(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct ship *s = op->ctx;
	if (s->link != SHIP_LINK_UP) {
		link_down(s, NULL, 0);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		arm_recv(s);
		return;
	}
	if (res <= 0) {
		link_down(s, res == 0 ? "the appliance closed the connection" : "receive failed",
			  res);
		return;
	}
	s->alen += (size_t)res;
	size_t pos = 0;
	while (s->alen - pos >= WIRE_ACK_LEN) {
		uint64_t seq;
		uint32_t status;
		if (wire_ack_decode(s->abuf + pos, &seq, &status) != 0) {
			link_down(s, "malformed ack (is agent.appliance a kprobed ingest port?)",
				  -EPROTO);
			return;
		}
		pos += WIRE_ACK_LEN;
		if (handle_ack(s, seq, status) < 0) {
			link_down(s, "protocol error", -EPROTO);
			return;
		}
		if (!s->acked_on_conn) {
			s->acked_on_conn = 1;
			s->backoff_ms = BACKOFF_START_MS; /* the appliance works: start afresh */
		}
	}
	memmove(s->abuf, s->abuf + pos, s->alen - pos);
	s->alen -= pos;
	reap(s);
	refill(s);
	kick_send(s);
	arm_recv(s);
}

static void arm_recv(struct ship *s)
{
	struct io_uring_sqe *sqe = loop_sqe(s->loop);
	if (s->has_recv)
		io_uring_prep_recv(sqe, s->fd, s->abuf + s->alen, sizeof(s->abuf) - s->alen, 0);
	else
		io_uring_prep_read(sqe, s->fd, s->abuf + s->alen,
				   (unsigned)(sizeof(s->abuf) - s->alen), 0);
	loop_op_set(sqe, &s->recv_op);
}

/* ------------------------------------------------------------------------------------------ */
/* Connection                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void schedule_reconnect(struct ship *s)
{
	if (s->closing)
		return;
	/* ±25 % jitter: agents restarted together do not come back together. */
	uint64_t ms = s->backoff_ms;
	uint64_t j = ms / 4 ? (uint64_t)rand() % (ms / 2 + 1) : 0;
	ms = ms - ms / 4 + j;
	loop_timer_arm(s->loop, &s->reconnect_timer, ms * NSEC_PER_MSEC);
	s->backoff_ms = KP_MIN(s->backoff_ms * 2, s->reconnect_max_ms);
}

/* The ops that use the socket (the connect timer does not: it only looks at the state). */
static int ops_pending(const struct ship *s)
{
	return s->connect_op.pending || s->send_op.pending || s->recv_op.pending;
}

/*
 * Takes the link down (why != NULL: a new failure) and, once every op of the connection has
 * completed, closes the socket and schedules a reconnect. Called again from each completion.
 */
static void link_down(struct ship *s, const char *why, int err)
{
	if (why && s->link != SHIP_LINK_CLOSING) {
		if (s->closing) {
			/* stopping: nothing to report */
		} else if (s->link == SHIP_LINK_UP) {
			log_warn("ship: connection to %s:%s lost: %s%s%s; reconnecting (unacked "
				 "frames are kept and resent)",
				 s->host, s->port, why, err ? ": " : "", err ? strerror(-err) : "");
		} else {
			s->st.connect_failures++;
			if (log_ok(s) || s->st.connect_failures == 1)
				log_warn("ship: cannot connect to %s:%s: %s%s%s; retrying in "
					 "%" PRIu64
					 " ms (frames wait in memory, then in agent.spoolDir)",
					 s->host, s->port, why, err ? ": " : "",
					 err ? strerror(-err) : "", s->backoff_ms);
		}
		s->link = SHIP_LINK_CLOSING;
		shutdown(s->fd, SHUT_RDWR);
		loop_cancel(s->loop, &s->connect_op);
		loop_cancel(s->loop, &s->send_op);
		loop_cancel(s->loop, &s->recv_op);
	}
	if (s->link != SHIP_LINK_CLOSING || ops_pending(s))
		return;
	close(s->fd);
	s->fd = -1;
	s->link = SHIP_LINK_DOWN;
	s->q_send = s->q_acked;
	s->send_off = 0;
	s->alen = 0;
	reap(s);
	schedule_reconnect(s);
}

static void on_connected(struct ship *s)
{
	s->link = SHIP_LINK_UP;
	if (s->was_up)
		s->st.reconnects++;
	log_info("ship: connected to %s:%s; %" PRIu64 " frames to (re)send", s->host, s->port,
		 s->q_tail - s->q_acked + spool_unread(s));
	s->was_up = 1;
	s->acked_on_conn = 0;
	s->q_send = s->q_acked;
	s->send_off = 0;
	s->alen = 0;
	arm_recv(s);
	kick_send(s);
}

static void on_connect(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct ship *s = op->ctx;
	if (s->link != SHIP_LINK_CONNECTING) {
		link_down(s, NULL, 0);
		return;
	}
	if (s->connect_by_poll && res >= 0) {
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		res = -err;
	}
	if (res < 0) {
		link_down(s, res == -ECANCELED ? "connect timed out" : "connect failed",
			  res == -ECANCELED ? 0 : res);
		return;
	}
	on_connected(s);
}

/*
 * One timer serves every attempt and is never cancelled while connecting (a cancellation
 * racing a re-arm would hit the next attempt): it compares the attempt's deadline instead.
 */
static void on_connect_timeout(struct loop *l, struct loop_timer *t)
{
	struct ship *s = t->ctx;
	if (s->link != SHIP_LINK_CONNECTING || s->closing)
		return;
	uint64_t now = now_mono_ns();
	if (now >= s->connect_deadline)
		loop_cancel(l, &s->connect_op);
	else
		loop_timer_arm(l, t, s->connect_deadline - now);
}

static int resolve(struct ship *s)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int r = getaddrinfo(s->host, s->port, &hints, &res);
	if (r || !res) {
		if (log_ok(s))
			log_warn("ship: cannot resolve agent.appliance host '%s': %s", s->host,
				 gai_strerror(r));
		return -EHOSTUNREACH;
	}
	memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
	s->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void connect_start(struct ship *s)
{
	if (s->closing)
		return;
	int r = resolve(s);
	if (r < 0) {
		s->st.connect_failures++;
		schedule_reconnect(s);
		return;
	}
	s->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		log_error("ship: socket: %s", strerror(errno));
		schedule_reconnect(s);
		return;
	}
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(s->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	s->link = SHIP_LINK_CONNECTING;
	struct io_uring_sqe *sqe;
	if (s->has_connect) {
		s->connect_by_poll = 0;
		sqe = loop_sqe(s->loop);
		io_uring_prep_connect(sqe, s->fd, (struct sockaddr *)&s->addr, s->addrlen);
	} else {
		/* Fallback without IORING_OP_CONNECT: non-blocking connect, then poll. */
		s->connect_by_poll = 1;
		if (connect(s->fd, (struct sockaddr *)&s->addr, s->addrlen) == 0) {
			on_connected(s);
			return;
		}
		if (errno != EINPROGRESS) {
			int err = -errno;
			s->link = SHIP_LINK_CLOSING;
			link_down(s, "connect failed", err);
			return;
		}
		sqe = loop_sqe(s->loop);
		io_uring_prep_poll_add(sqe, s->fd, POLLOUT);
	}
	loop_op_set(sqe, &s->connect_op);
	s->connect_deadline = now_mono_ns() + CONNECT_TIMEOUT_MS * NSEC_PER_MSEC;
	if (!s->connect_timer.op.pending)
		loop_timer_arm(s->loop, &s->connect_timer, CONNECT_TIMEOUT_MS * NSEC_PER_MSEC);
}

static void on_reconnect_timer(struct loop *l, struct loop_timer *t)
{
	struct ship *s = t->ctx;
	if (s->link == SHIP_LINK_DOWN)
		connect_start(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Stats, close                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void fill_stats(const struct ship *s, struct ship_stats *o)
{
	*o = s->st;
	o->batch_events = s->batch.n_events;
	o->mem_frames = s->q_tail - s->q_acked;
	o->mem_bytes = s->mem_bytes;
	struct spool_stats ss;
	spool_stats(s->spool, &ss);
	o->spool_frames = ss.frames;
	o->spool_bytes = ss.bytes;
	o->spool_unread = ss.unread;
	o->dropped_frames += ss.dropped_frames;
	o->dropped_events += ss.dropped_events;
	o->link = s->link;
	o->node_id = s->node_id;
	o->next_seq = s->next_seq;
}

static const char *link_name(enum ship_link l)
{
	static const char *n[] = {"down", "connecting", "up", "closing"};
	return n[l];
}

static void ship_stats_line(void *ctx, struct kp_buf *line)
{
	struct ship_stats st;
	fill_stats(ctx, &st);
	buf_printf(line, " link=%s frames_sent=%" PRIu64 " events_sent=%" PRIu64, link_name(st.link),
		   st.frames_sent, st.events_sent);
	buf_printf(line, " frames_acked=%" PRIu64 " events_acked=%" PRIu64 " bytes_sent=%" PRIu64,
		   st.frames_acked, st.events_acked, st.bytes_sent);
	buf_printf(line, " unacked_mem_frames=%" PRIu64 " unacked_mem_bytes=%" PRIu64,
		   st.mem_frames, st.mem_bytes);
	buf_printf(line, " spool_frames=%" PRIu64 " spool_bytes=%" PRIu64, st.spool_frames,
		   st.spool_bytes);
	buf_printf(line,
		   " dropped_frames=%" PRIu64 " dropped_events=%" PRIu64
		   " rejected_frames=%" PRIu64,
		   st.dropped_frames, st.dropped_events, st.frames_rejected);
	buf_printf(line, " reconnects=%" PRIu64 " connect_failures=%" PRIu64, st.reconnects,
		   st.connect_failures);
	if (st.captures_in)
		buf_printf(line, " capture_records=%" PRIu64 " capture_bytes=%" PRIu64,
			   st.captures_in, st.capture_bytes_in);
}

static int idle(const struct ship *s)
{
	return !s->batch.n_events && !s->batch.n_meta && s->q_acked == s->q_tail &&
	       !spool_unread(s);
}

/* Writes what is still unacknowledged and only in memory to the spool, oldest first. */
static void spool_leftovers(struct ship *s)
{
	uint64_t n = s->q_tail - s->q_acked, k = 0;
	if (!n)
		return;
	const void **frames = xcalloc(n, sizeof(*frames));
	uint32_t *lens = xcalloc(n, sizeof(*lens)), *evs = xcalloc(n, sizeof(*evs));
	uint64_t *seqs = xcalloc(n, sizeof(*seqs));
	uint64_t saved = 0;
	/* Runs of memory-only frames between spooled ones each become a file (sorted by seq). */
	for (uint64_t i = s->q_acked; i <= s->q_tail; i++) {
		struct qframe *f = i < s->q_tail ? qat(s, i) : NULL;
		int mem_only = f && !f->bad && (!f->token || !spool_has(s->spool, f->token));
		if (mem_only) {
			frames[k] = f->data, lens[k] = f->len, seqs[k] = f->seq,
			evs[k] = f->n_events;
			k++;
			continue;
		}
		if (k && spool_write_older(s->spool, frames, lens, seqs, evs, k) == 0)
			saved += k;
		k = 0;
	}
	if (saved)
		log_info("ship: %" PRIu64 " unacknowledged frames written to the spool; they are "
			 "sent when the agent starts again",
			 saved);
	free(frames);
	free(lens);
	free(evs);
	free(seqs);
}

static void ship_close(void *ctx, int drain_ms)
{
	struct ship *s = ctx;
	cut(s);
	uint64_t deadline = now_mono_ns() + (uint64_t)KP_MAX(drain_ms, 0) * NSEC_PER_MSEC;
	if (!idle(s) && s->link == SHIP_LINK_DOWN && drain_ms > 0) {
		loop_timer_cancel(s->loop, &s->reconnect_timer);
		connect_start(s); /* do not wait out a long backoff */
	}
	while (!idle(s)) {
		uint64_t now = now_mono_ns();
		if (now >= deadline)
			break;
		loop_run_once(s->loop, (int)KP_MAX((deadline - now) / NSEC_PER_MSEC, 1));
	}
	if (!idle(s))
		log_warn("ship: %" PRIu64
			 " frames still unacknowledged after %d ms; keeping them in "
			 "the spool",
			 s->q_tail - s->q_acked + spool_unread(s), drain_ms);
	/* Events that arrived while the loop ran the drain (a source not yet stopped) are kept
	 * too: they go to the spool with the rest. */
	cut(s);
	s->closing = 1;
	loop_timer_cancel(s->loop, &s->reconnect_timer);
	loop_timer_cancel(s->loop, &s->connect_timer);
	if (s->link == SHIP_LINK_UP || s->link == SHIP_LINK_CONNECTING)
		link_down(s, "agent stopping", 0);
	for (int i = 0; i < 2000 && (ops_pending(s) || s->reconnect_timer.op.pending ||
				     s->connect_timer.op.pending);
	     i++)
		loop_run_once(s->loop, 10);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	spool_leftovers(s);
	struct ship_stats st;
	fill_stats(s, &st);
	log_info("ship: closed; frames acked=%" PRIu64 " dups=%" PRIu64 " rejected=%" PRIu64
		 " dropped=%" PRIu64 " spooled=%" PRIu64,
		 st.frames_acked, st.dups, st.frames_rejected, st.dropped_frames,
		 st.mem_frames + st.spool_frames);
	spool_close(s->spool);
	for (uint64_t i = s->q_head; i < s->q_tail; i++)
		free(qat(s, i)->data);
	free(s->q);
	wire_batch_free(&s->batch);
	buf_free(&s->enc);
	free(s);
}

/* File metadata rides in the batch being built, ahead of the event that names the file. */
static void ship_file(void *ctx, const struct wire_file *f)
{
	struct ship *s = ctx;
	wire_batch_add_file(&s->batch, f);
}

static const struct sink_ops ship_ops = {
	.event = ship_event,
	.tick = ship_tick,
	.close = ship_close,
	.stats = ship_stats_line,
	.file = ship_file,
	.capture = ship_capture,
};

void ship_sink_stats(const struct sink *sk, struct ship_stats *out)
{
	fill_stats(sk->ctx, out);
}

int ship_sink_idle(const struct sink *sk)
{
	return idle(sk->ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* Open                                                                                        */
/* ------------------------------------------------------------------------------------------ */

uint64_t ship_node_id(const char *node_name)
{
	char mid[128] = "";
	int fd = open("/etc/machine-id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, mid, sizeof(mid) - 1);
		mid[n > 0 ? n : 0] = '\0';
		close(fd);
		mid[strcspn(mid, "\r\n")] = '\0';
	}
	struct kp_buf b = {0};
	buf_printf(&b, "%s\n%s", mid, node_name);
	uint64_t id = XXH3_64bits(b.data, b.len);
	buf_free(&b);
	return id ? id : 1;
}

/* "host:port", "[v6]:port" or "v6-literal" without port is refused: the port is required. */
static int parse_appliance(const char *s, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		snprintf(host, hcap, "%.*s", (int)(end - s - 1), s + 1);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		snprintf(host, hcap, "%.*s", (int)(colon - s), s);
	}
	char *e;
	long p = strtol(colon + 1, &e, 10);
	if (*e || p < 1 || p > 65535 || !*host)
		return -EINVAL;
	snprintf(port, pcap, "%ld", p);
	return 0;
}

int ship_sink_open(const struct kp_config *cfg, struct loop *loop, struct sink *out)
{
	struct ship *s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->fd = -1;
	if (parse_appliance(cfg->agent_appliance, s->host, sizeof(s->host), s->port,
			    sizeof(s->port)) < 0) {
		log_error("agent.appliance '%s' is not host:port (e.g. 10.0.0.5:7077, "
			  "[fd00::5]:7077)",
			  cfg->agent_appliance);
		free(s);
		return -EINVAL;
	}
	s->batch_events = (uint32_t)KP_MIN(cfg->agent_batch_events, WIRE_MAX_EVENTS);
	s->batch_ns = (uint64_t)cfg->agent_batch_ms * NSEC_PER_MSEC;
	s->mem_max = (uint64_t)cfg->agent_memory_queue_mb << 20;
	s->reconnect_max_ms = (uint64_t)KP_MAX(cfg->agent_reconnect_max_ms, BACKOFF_START_MS);
	s->backoff_ms = BACKOFF_START_MS;
	struct utsname u;
	if (uname(&u) == 0) {
		snprintf(s->kernel, sizeof(s->kernel), "%s", u.release);
		snprintf(s->node_name, sizeof(s->node_name), "%s", u.nodename);
	}
	if (cfg->agent_node_name && *cfg->agent_node_name)
		snprintf(s->node_name, sizeof(s->node_name), "%s", cfg->agent_node_name);
	s->node_id = ship_node_id(s->node_name);

	struct spool_info info;
	int r = spool_open(&s->spool, cfg->agent_spool_dir, (uint64_t)cfg->agent_spool_max_mb << 20,
			   &info);
	if (r < 0) {
		if (r == -EBUSY)
			log_error("agent.spoolDir %s is in use by another kprobe-agent (one agent "
				  "per "
				  "node; give each its own spool directory)",
				  cfg->agent_spool_dir);
		else
			log_error("cannot open agent.spoolDir %s: %s", cfg->agent_spool_dir,
				  strerror(-r));
		free(s);
		return r;
	}
	if (info.frames || info.torn_bytes || info.bad_files)
		log_info("ship: spool %s holds %" PRIu64 " unacknowledged frames (%" PRIu64
			 " events, %" PRIu64 " bytes); they go first%s",
			 cfg->agent_spool_dir, info.frames, info.events, info.bytes,
			 info.torn_bytes ? " (a torn tail was cut)" : "");
	s->next_seq = KP_MAX(now_real_ns() / 1000, spool_seq_floor(s->spool));
	next_seq_reserve(s);

	s->qcap = 256;
	s->q = xcalloc(s->qcap, sizeof(*s->q));
	s->has_connect = loop_has_op(loop, IORING_OP_CONNECT);
	s->has_sendmsg = loop_has_op(loop, IORING_OP_SENDMSG);
	s->has_recv = loop_has_op(loop, IORING_OP_RECV);
	s->connect_op = (struct loop_op){.cb = on_connect, .ctx = s};
	s->send_op = (struct loop_op){.cb = on_send, .ctx = s};
	s->recv_op = (struct loop_op){.cb = on_recv, .ctx = s};
	s->reconnect_timer = (struct loop_timer){.fn = on_reconnect_timer, .ctx = s};
	s->connect_timer = (struct loop_timer){.fn = on_connect_timeout, .ctx = s};
	srand((unsigned)(s->node_id ^ now_mono_ns()));
	log_info("ship: node %s (id %016" PRIx64 "), shipping to %s:%s, frames from seq %" PRIu64,
		 s->node_name, s->node_id, s->host, s->port, s->next_seq);
	refill(s);
	connect_start(s);
	out->ops = &ship_ops;
	out->ctx = s;
	return 0;
}
