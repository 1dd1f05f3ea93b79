/* Tests agent/loop.c: timers fire in order, ops complete with cqe->res, cancel reaches the cb. */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "agent/loop.h"
#include "common/util.h"
#include "tests/test.h"

static int fired[4], nfired;

static void on_timer(struct loop *l, struct loop_timer *t)
{
	fired[nfired++] = (int)(intptr_t)t->ctx;
}

TEST(loop_timers_fire_in_order)
{
	struct loop *l;
	CHECK_EQ_INT(loop_init(&l, 64), 0);
	struct loop_timer a = {.fn = on_timer, .ctx = (void *)1},
			  b = {.fn = on_timer, .ctx = (void *)2},
			  c = {.fn = on_timer, .ctx = (void *)3};
	uint64_t t0 = now_mono_ns();
	loop_timer_arm(l, &b, 20 * NSEC_PER_MSEC);
	loop_timer_arm(l, &a, 5 * NSEC_PER_MSEC);
	loop_timer_arm(l, &c, 500 * NSEC_PER_MSEC);
	while (nfired < 2)
		CHECK(loop_run_once(l, 1000) >= 0);
	CHECK_EQ_INT(fired[0], 1);
	CHECK_EQ_INT(fired[1], 2);
	CHECK_GE_INT(now_mono_ns() - t0, 20 * NSEC_PER_MSEC);
	loop_timer_cancel(l, &c);
	for (int i = 0; i < 5 && c.op.pending; i++)
		loop_run_once(l, 100);
	CHECK_EQ_INT(c.op.pending, 0);
	CHECK_EQ_INT(nfired, 2); /* the cancelled timer never ran its function */
	loop_free(l);
}

static int poll_res = 12345;
static void on_poll(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	poll_res = res;
}

TEST(loop_poll_op_completes)
{
	struct loop *l;
	CHECK_EQ_INT(loop_init(&l, 64), 0);
	int p[2];
	CHECK_EQ_INT(pipe(p), 0);
	struct loop_op op = {.cb = on_poll};
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_poll_add(sqe, p[0], POLLIN);
	loop_op_set(sqe, &op);
	CHECK_EQ_INT(loop_run_once(l, 20), 0);
	CHECK_EQ_INT(poll_res, 12345);
	CHECK_EQ_INT(write(p[1], "x", 1), 1);
	CHECK_EQ_INT(loop_run_once(l, 1000), 1);
	CHECK(poll_res & POLLIN);
	CHECK_EQ_INT(op.pending, 0);
	CHECK(loop_has_op(l, IORING_OP_SEND));
	loop_free(l);
}
