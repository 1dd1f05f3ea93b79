/*
 * loop.h - the agent's single-threaded event loop over io_uring.
 *
 * Everything the agent waits for is one submission: the ring buffer's epoll fd becoming readable
 * (a poll), a socket connect/send/recv, a timer. Each submission carries a struct loop_op in
 * user_data; its callback gets cqe->res (a -errno on failure). An op must stay alive until its
 * completion has been delivered: to abandon one, cancel it (loop_cancel) and wait for the
 * callback (res -ECANCELED), or free its owner only from the callback.
 *
 *     struct loop *l;  loop_init(&l, 256);
 *     struct io_uring_sqe *sqe = loop_sqe(l);
 *     io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
 *     loop_op_set(sqe, &conn->send_op);   // op.cb = on_sent, op.ctx = conn
 *     while (!stop) loop_run_once(l, -1);
 */
#ifndef KP_LOOP_H
#define KP_LOOP_H

#include <liburing.h>
#include <stdint.h>

struct loop;
struct loop_op;

typedef void (*loop_cb)(struct loop *l, struct loop_op *op, int res, uint32_t cqe_flags);

struct loop_op {
	loop_cb cb;
	void *ctx;
	int pending; /* submissions of this op still in flight (multishot counts as one) */
};

/* Creates a loop with room for `entries` submissions. Returns 0 or -errno. */
int loop_init(struct loop **out, unsigned entries);
void loop_free(struct loop *l);

/* A free submission slot (submits queued ones first when the queue is full); never NULL. */
struct io_uring_sqe *loop_sqe(struct loop *l);
/* Ties sqe to op (sets user_data, counts it pending). */
void loop_op_set(struct io_uring_sqe *sqe, struct loop_op *op);
/* Cancels every in-flight submission of op; its callback still runs (res -ECANCELED). */
void loop_cancel(struct loop *l, struct loop_op *op);

/*
 * Submits what is queued, waits up to timeout_ms (-1: until something completes) and runs the
 * callbacks of every completion available. Returns the number handled, or -errno.
 */
int loop_run_once(struct loop *l, int timeout_ms);

/* A one-shot timer: fires cb once, after ns. Re-arm from the callback for periodic work. */
struct loop_timer {
	struct loop_op op;
	struct __kernel_timespec ts;
	void (*fn)(struct loop *l, struct loop_timer *t);
	void *ctx;
	int armed;
};
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t ns);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/* Whether this kernel supports the opcode (probed once at init). */
int loop_has_op(struct loop *l, int opcode);

#endif
