/*
 * loop.c - io_uring event loop: submission slots, op dispatch, timers, opcode probing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/loop.h"
#include "common/util.h"

struct loop {
	struct io_uring ring;
	struct io_uring_probe *probe;
};

int loop_init(struct loop **out, unsigned entries)
{
	struct loop *l = xcalloc(1, sizeof(*l));
	int r = io_uring_queue_init(entries, &l->ring, 0);
	if (r < 0) {
		free(l);
		return r;
	}
	l->probe = io_uring_get_probe_ring(&l->ring);
	*out = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->probe)
		io_uring_free_probe(l->probe);
	io_uring_queue_exit(&l->ring);
	free(l);
}

int loop_has_op(struct loop *l, int opcode)
{
	return l->probe ? io_uring_opcode_supported(l->probe, opcode) : 0;
}

struct io_uring_sqe *loop_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	while (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

void loop_op_set(struct io_uring_sqe *sqe, struct loop_op *op)
{
	io_uring_sqe_set_data(sqe, op);
	op->pending++;
}

void loop_cancel(struct loop *l, struct loop_op *op)
{
	if (op->pending <= 0)
		return;
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_cancel(sqe, op, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data(sqe, NULL); /* the cancel's own completion is ignored */
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct io_uring_cqe *cqe;
	int r;
	if (timeout_ms < 0) {
		r = io_uring_submit_and_wait(&l->ring, 1);
	} else {
		struct __kernel_timespec ts = {timeout_ms / 1000, (long long)(timeout_ms % 1000) * 1000000};
		io_uring_submit(&l->ring);
		r = io_uring_wait_cqe_timeout(&l->ring, &cqe, &ts);
		if (r == -ETIME)
			return 0;
	}
	if (r < 0 && r != -EINTR && r != -ETIME)
		return r;
	int n = 0;
	unsigned head;
	/* Callbacks may submit; take completions one at a time so the ring stays consistent. */
	while (io_uring_peek_cqe(&l->ring, &cqe) == 0) {
		struct loop_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		uint32_t flags = cqe->flags;
		io_uring_cqe_seen(&l->ring, cqe);
		n++;
		if (!op)
			continue;
		if (!(flags & IORING_CQE_F_MORE))
			op->pending--;
		op->cb(l, op, res, flags);
	}
	(void)head;
	return n;
}

static void timer_fired(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct loop_timer *t = (struct loop_timer *)op;
	t->armed = 0;
	if (res == -ECANCELED)
		return;
	/* -ETIME is the normal expiry of an IORING_OP_TIMEOUT. */
	t->fn(l, t);
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t ns)
{
	t->op.cb = timer_fired;
	t->ts.tv_sec = (long long)(ns / NSEC_PER_SEC);
	t->ts.tv_nsec = (long long)(ns % NSEC_PER_SEC);
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_timeout(sqe, &t->ts, 0, 0);
	loop_op_set(sqe, &t->op);
	t->armed = 1;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (t->armed)
		loop_cancel(l, &t->op);
}
