/*
 * agent.c - the pipeline from the ring buffer to the sink, on one thread and one io_uring loop.
 *
 * Completions the loop waits for: a multishot poll on the ring buffer's epoll fd (the kernel
 * side wakes it when probe.ebpf.wakeupKb are waiting), a read on a signalfd (SIGINT, SIGTERM),
 * and timers: drain (PROBE_DRAIN_INTERVAL_MS, the records committed without a wake-up), clock
 * (1 s: monotonic -> epoch offset, metadata expiry), batch (agent.batchMs: sink tick), stats
 * (agent.statsSec) and stop (--duration).
 *
 * The per-record path (on_record) makes no system call and no allocation: a 64-byte copy, an
 * add, cached metadata lookups and the sink's event call. A drain handles at most DRAIN_BUDGET
 * records before the loop gets a turn, so timers and signals are served under any load.
 *
 * Replay capture (replay.capture.*, off by default): when a list is set and the sink ships
 * (sink_ops.capture), the capture probe (replay/capture.h) is loaded beside the main one, its
 * ring buffer polled on the same loop and drained with the main one; each record goes to the
 * sink unchanged, with the clock offset and the process's metadata. Records the kernel side
 * lost are reported downstream as KP_CAP_LOST records (checked every second), so the appliance
 * can tell a recording is incomplete. With every list empty nothing of this runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/hmap.h"
#include "agent/loop.h"
#include "agent/meta.h"
#include "agent/probe.h"
#include "common/util.h"
#include "replay/capture.h"

#define DRAIN_BUDGET 65536

struct agent {
	const struct kp_config *cfg;
	struct hmap files; /* (pid, fd, inode) already described to the sink */
	uint64_t last_file_key, last_file_inode;
	uint64_t drain_ns; /* how often committed records are drained without a wake-up */
	struct probe *probe;
	struct meta *meta;
	struct sink *sink;
	struct loop *loop;
	int64_t offset; /* epoch ns = monotonic ns + offset */
	bool stop, more;

	struct loop_op poll_op, sig_op, cap_op;
	struct capture *cap; /* replay capture, NULL when off */
	uint64_t cap_records, cap_bytes, cap_errors, cap_lost;
	int sigfd;
	struct signalfd_siginfo si;
	struct loop_timer drain_t, clock_t, batch_t, stats_t, stop_t;

	uint64_t events, bad, sink_errors;
	uint64_t by_type[KP_TYPE_MAX];
	uint64_t last_cnt[KP_CNT_MAX], last_events, last_stats_ns;
};

int64_t agent_clock_offset(void)
{
	struct timespec r1, m, r2;
	int64_t best_gap = INT64_MAX, off = 0;
	for (int i = 0; i < 5; i++) {
		clock_gettime(CLOCK_REALTIME, &r1);
		clock_gettime(CLOCK_MONOTONIC, &m);
		clock_gettime(CLOCK_REALTIME, &r2);
		int64_t a = (int64_t)r1.tv_sec * 1000000000 + r1.tv_nsec;
		int64_t b = (int64_t)r2.tv_sec * 1000000000 + r2.tv_nsec;
		int64_t mm = (int64_t)m.tv_sec * 1000000000 + m.tv_nsec;
		if (b - a < best_gap) {
			best_gap = b - a;
			off = a + (b - a) / 2 - mm;
		}
	}
	return off;
}

/* ------------------------------------------------------------------ the per-record path */

/*
 * The path behind a syscall event's (pid, fd, inode), resolved once per triple from
 * /proc/PID/fd/FD and handed to the sink. Only regular paths (sockets, pipes and anonymous
 * inodes say what they are in the event already). Bounded: the set starts over when full.
 */
#define FILE_CACHE_MAX 65536
static void file_note(struct agent *a, const struct kp_event *ev)
{
	if (!a->sink->ops->file || !ev->arg[3])
		return;
	uint64_t k = ((uint64_t)ev->pid << 32) | (uint32_t)ev->arg[0];
	if (k == a->last_file_key && ev->arg[3] == a->last_file_inode)
		return; /* the same file as the previous event: the common run */
	a->last_file_key = k;
	a->last_file_inode = ev->arg[3];
	int created;
	if (a->files.n >= FILE_CACHE_MAX)
		hmap_free(&a->files);
	hmap_put(&a->files, k, ev->arg[3], &created);
	if (!created)
		return;
	char link[64];
	struct wire_file f = {.pid = ev->pid, .fd = (uint32_t)ev->arg[0], .inode = ev->arg[3]};
	snprintf(link, sizeof(link), "/proc/%u/fd/%u", ev->pid, (uint32_t)ev->arg[0]);
	ssize_t n = readlink(link, f.path, sizeof(f.path) - 1);
	if (n <= 0 || f.path[0] != '/')
		return; /* gone already, or not a file: the event still carries fd and inode */
	f.path[n] = '\0';
	a->sink->ops->file(a->sink->ctx, &f);
}

static void on_record(void *ctx, const void *rec, size_t len)
{
	struct agent *a = ctx;
	if (KP_UNLIKELY(len < sizeof(struct kp_event))) {
		a->bad++;
		return;
	}
	struct kp_event ev;
	memcpy(&ev, rec, sizeof(ev));
	if (KP_UNLIKELY(ev.type == KP_NONE || ev.type >= KP_TYPE_MAX)) {
		a->bad++;
		return;
	}
	ev.ts_ns += (uint64_t)a->offset;
	const struct wire_conn *conn = NULL;
	int conn_fresh = 0, proc_fresh = 0;
	switch (ev.type) {
	case KP_CONN: {
		if (KP_UNLIKELY(len < sizeof(struct kp_conn_record))) {
			a->bad++;
			return;
		}
		struct kp_conn_record r;
		memcpy(&r, rec, sizeof(r));
		r.ev.ts_ns = ev.ts_ns;
		conn = meta_conn_update(a->meta, &r, ev.ts_ns, &conn_fresh);
		break;
	}
	case KP_TCP_SEND:
	case KP_TCP_RECV:
	case KP_RETRANSMIT:
		conn = meta_conn(a->meta, ev.arg[0], ev.ts_ns, &conn_fresh);
		break;
	case KP_PROC:
		meta_proc_event(a->meta, &ev, ev.ts_ns);
		break;
	case KP_READ:
	case KP_WRITE:
	case KP_FSYNC:
		file_note(a, &ev);
		break;
	}
	const struct wire_proc *proc = meta_proc(a->meta, ev.pid, ev.ts_ns, &proc_fresh);
	if (KP_UNLIKELY(a->sink->ops->event(a->sink->ctx, &ev, proc, proc_fresh, conn, conn_fresh) <
			0))
		a->sink_errors++;
	a->events++;
	a->by_type[ev.type]++;
}

static void drain(struct agent *a)
{
	long n = probe_consume(a->probe, on_record, a, DRAIN_BUDGET);
	if (n < 0) {
		log_error("reading the ring buffer failed: %s", strerror((int)-n));
		a->more = false;
		return;
	}
	a->more = n >= DRAIN_BUDGET;
}

/* ------------------------------------------------------------------ replay capture */

/*
 * What a replay needs of a process that just exec'd and the kernel side cannot see, read from
 * /proc while it runs (its first milliseconds are its dynamic loader's), sent as a
 * KP_CAP_LOADER record at the exec's time:
 *   - args[0..1]: where its dynamic loader lives: a replay makes the loader's calls for real and
 *     must know which recorded calls were the loader's (without this record the recording
 *     builder falls back on the exec record's AT_BASE);
 *   - payload: its working directory, NUL, then its environment as /proc/PID/environ has it
 *     (NUL-separated, up to CAP_ENV_MAX bytes): a replay runs the command in them, as it does
 *     for `kprobe record`'s recordings. Capture is opt-in per process (replay.capture.*); the
 *     environment travels and is stored like the payloads.
 */
#define CAP_ENV_MAX 16384
static void cap_exec_note(struct agent *a, const struct kp_cap_rec *e)
{
	static uint8_t buf[KP_CAP_HDR_LEN + 4096 + CAP_ENV_MAX + 8];
	struct kp_cap_rec *l = (void *)buf;
	memset(l, 0, KP_CAP_HDR_LEN);
	uint64_t lo = 0, hi = 0;
	bool range = e->args[0] && capture_loader_range((pid_t)e->pid, &lo, &hi) == 0 &&
		     lo <= e->args[0] && e->args[0] < hi;
	char path[64];
	uint8_t *pl = buf + KP_CAP_HDR_LEN;
	snprintf(path, sizeof(path), "/proc/%u/cwd", e->pid);
	ssize_t n = readlink(path, (char *)pl, 4095);
	if (n <= 0 && !range)
		return; /* gone already */
	size_t len = n > 0 ? (size_t)n : 0;
	pl[len++] = 0;
	snprintf(path, sizeof(path), "/proc/%u/environ", e->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t k = read(fd, pl + len, CAP_ENV_MAX);
		if (k > 0)
			len += (size_t)k;
		close(fd);
	}
	l->kind = KP_CAP_LOADER;
	l->pid = e->pid;
	l->tid = e->tid;
	l->ts_enter = l->ts_exit = e->ts_exit;
	l->args[0] = range ? lo : 0;
	l->args[1] = range ? hi : 0;
	l->payload_len = (uint32_t)len;
	l->len = (uint32_t)((KP_CAP_HDR_LEN + len + 7) & ~(size_t)7);
	memset(buf + KP_CAP_HDR_LEN + len, 0, l->len - KP_CAP_HDR_LEN - len);
	if (a->sink->ops->capture(a->sink->ctx, l, l->len, a->offset, NULL, 0) < 0)
		a->cap_errors++;
}

static int on_cap_record(void *ctx, const void *rec, size_t len)
{
	struct agent *a = ctx;
	const struct kp_cap_rec *c = rec;
	if (KP_UNLIKELY(len < KP_CAP_HDR_LEN || c->len < KP_CAP_HDR_LEN || c->len > len ||
			c->len > KP_CAP_REC_MAX || c->len % 8)) {
		a->bad++;
		return 0;
	}
	int fresh = 0;
	const struct wire_proc *proc =
		c->pid ? meta_proc(a->meta, c->pid, c->ts_exit + (uint64_t)a->offset, &fresh)
		       : NULL;
	if (a->sink->ops->capture(a->sink->ctx, rec, c->len, a->offset, proc, fresh) < 0)
		a->cap_errors++;
	a->cap_records++;
	a->cap_bytes += c->len;
	if (c->kind == KP_CAP_EXEC)
		cap_exec_note(a, c);
	return 0;
}

static void cap_drain(struct agent *a)
{
	if (!a->cap)
		return;
	int n = capture_consume(a->cap, on_cap_record, a);
	if (n < 0)
		log_warn("reading the replay capture ring buffer failed: %s", strerror(-n));
}

/* Records the kernel side lost since the last check travel as one KP_CAP_LOST record. */
static void cap_check_lost(struct agent *a)
{
	if (!a->cap)
		return;
	struct capture_stats st;
	capture_stats(a->cap, &st);
	if (st.dropped <= a->cap_lost)
		return;
	struct kp_cap_rec r = {.len = KP_CAP_HDR_LEN, .kind = KP_CAP_LOST};
	r.ts_enter = r.ts_exit = now_mono_ns();
	r.args[0] = st.dropped - a->cap_lost;
	log_warn("replay capture: %llu records lost in the kernel (ring buffer full); recordings "
		 "of this time are incomplete",
		 (unsigned long long)r.args[0]);
	a->cap_lost = st.dropped;
	if (a->sink->ops->capture(a->sink->ctx, &r, r.len, a->offset, NULL, 0) < 0)
		a->cap_errors++;
}

static void cap_poll_arm(struct agent *a);

static void on_cap_poll(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct agent *a = op->ctx;
	if (res == -ECANCELED || a->stop)
		return;
	if (res < 0)
		log_warn("polling the replay capture ring buffer: %s (re-arming)", strerror(-res));
	else
		cap_drain(a);
	if (!(flags & IORING_CQE_F_MORE))
		cap_poll_arm(a);
}

static void cap_poll_arm(struct agent *a)
{
	struct io_uring_sqe *sqe = loop_sqe(a->loop);
	io_uring_prep_poll_multishot(sqe, capture_fd(a->cap), POLLIN);
	loop_op_set(sqe, &a->cap_op);
}

/* Loads the capture probe when replay.capture.* selects anything (and the sink can ship it). */
static void cap_open(struct agent *a)
{
	const struct kp_config *cfg = a->cfg;
	if (!cfg->replay_capture_comms.n && !cfg->replay_capture_pids.n &&
	    !cfg->replay_capture_cgroups.n)
		return;
	if (!a->sink->ops->capture) {
		log_warn("replay.capture.* is set, but capture records only travel to kprobed: "
			 "ignored with --stdout");
		return;
	}
	char err[512];
	int r = capture_open_config(&a->cap, cfg, err, sizeof(err));
	if (r < 0) {
		a->cap = NULL;
		log_error("replay capture is NOT running: %s (events are still recorded)", err);
		return;
	}
	if (capture_fd(a->cap) < 0) {
		log_error("replay capture is NOT running: its ring buffer cannot be polled");
		capture_close(a->cap);
		a->cap = NULL;
		return;
	}
	struct kp_buf sel = {0};
	const struct kp_strlist *ls[] = {&cfg->replay_capture_comms, &cfg->replay_capture_pids,
					 &cfg->replay_capture_cgroups};
	const char *names[] = {"comms", "pids", "cgroups"};
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < ls[i]->n; k++)
			buf_printf(&sel, "%s%s=%s", sel.len ? " " : "", names[i], ls[i]->v[k]);
	buf_append(&sel, "", 1);
	log_info("replay capture on (payloads up to %lld bytes per call): %s",
		 (long long)cfg->replay_capture_max_bytes, sel.data);
	buf_free(&sel);
}

/* ------------------------------------------------------------------ loop callbacks */

static void poll_arm(struct agent *a);

static void on_poll(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct agent *a = op->ctx;
	if (res == -ECANCELED || a->stop)
		return;
	if (res < 0)
		log_warn("polling the ring buffer: %s (re-arming)", strerror(-res));
	else
		drain(a);
	if (!(flags & IORING_CQE_F_MORE))
		poll_arm(a);
}

static void poll_arm(struct agent *a)
{
	struct io_uring_sqe *sqe = loop_sqe(a->loop);
	io_uring_prep_poll_multishot(sqe, probe_poll_fd(a->probe), POLLIN);
	loop_op_set(sqe, &a->poll_op);
}

static void sig_arm(struct agent *a);

static void on_signal(struct loop *l, struct loop_op *op, int res, uint32_t flags)
{
	struct agent *a = op->ctx;
	if (res == -ECANCELED)
		return;
	if (res == (int)sizeof(a->si)) {
		log_info("stopping on %s", strsignal((int)a->si.ssi_signo));
		a->stop = true;
		return;
	}
	if (res < 0)
		log_warn("reading the signalfd: %s", strerror(-res));
	if (!a->stop)
		sig_arm(a);
}

static void sig_arm(struct agent *a)
{
	struct io_uring_sqe *sqe = loop_sqe(a->loop);
	io_uring_prep_read(sqe, a->sigfd, &a->si, sizeof(a->si), 0);
	loop_op_set(sqe, &a->sig_op);
}

static void on_drain_timer(struct loop *l, struct loop_timer *t)
{
	struct agent *a = t->ctx;
	if (a->stop)
		return;
	drain(a);
	cap_drain(a);
	loop_timer_arm(l, t, a->drain_ns);
}

static void on_clock_timer(struct loop *l, struct loop_timer *t)
{
	struct agent *a = t->ctx;
	if (a->stop)
		return;
	a->offset = agent_clock_offset();
	meta_expire(a->meta, now_real_ns());
	cap_check_lost(a);
	loop_timer_arm(l, t, NSEC_PER_SEC);
}

static void on_batch_timer(struct loop *l, struct loop_timer *t)
{
	struct agent *a = t->ctx;
	if (a->stop)
		return;
	a->sink->ops->tick(a->sink->ctx, now_mono_ns());
	loop_timer_arm(l, t, (uint64_t)a->cfg->agent_batch_ms * NSEC_PER_MSEC);
}

static void log_stats(struct agent *a, const char *what)
{
	uint64_t cnt[KP_CNT_MAX] = {0}, now = now_mono_ns();
	if (probe_counters(a->probe, cnt) < 0)
		log_warn("reading the kernel counters failed");
	double secs = a->last_stats_ns ? (double)(now - a->last_stats_ns) / 1e9 : 0;
	struct kp_buf line = {0};
	buf_printf(&line, "%s: events=%llu rate=%.0f/s", what, (unsigned long long)a->events,
		   secs > 0 ? (double)(a->events - a->last_events) / secs : 0.0);
	buf_printf(&line, " kernel: emitted=%llu", (unsigned long long)cnt[KP_CNT_EMITTED]);
	for (int i = KP_CNT_DROP_RINGBUF; i < KP_CNT_MAX; i++)
		buf_printf(&line, " %s=%llu(+%llu)", probe_counter_name(i),
			   (unsigned long long)cnt[i],
			   (unsigned long long)(cnt[i] - a->last_cnt[i]));
	struct meta_stats ms;
	meta_stats(a->meta, &ms);
	buf_printf(&line, " agent: bad_records=%llu sink_errors=%llu procs=%llu conns=%llu",
		   (unsigned long long)a->bad, (unsigned long long)a->sink_errors,
		   (unsigned long long)ms.procs, (unsigned long long)ms.conns);
	if (a->cap)
		buf_printf(&line, " capture: records=%llu bytes=%llu lost=%llu errors=%llu",
			   (unsigned long long)a->cap_records, (unsigned long long)a->cap_bytes,
			   (unsigned long long)a->cap_lost, (unsigned long long)a->cap_errors);
	a->sink->ops->stats(a->sink->ctx, &line);
	buf_append(&line, "", 1);
	log_info("%s", line.data);
	buf_free(&line);
	memcpy(a->last_cnt, cnt, sizeof(cnt));
	a->last_events = a->events;
	a->last_stats_ns = now;
}

static void on_stats_timer(struct loop *l, struct loop_timer *t)
{
	struct agent *a = t->ctx;
	if (a->stop)
		return;
	log_stats(a, "stats");
	loop_timer_arm(l, t, (uint64_t)a->cfg->agent_stats_sec * NSEC_PER_SEC);
}

static void on_stop_timer(struct loop *l, struct loop_timer *t)
{
	struct agent *a = t->ctx;
	log_info("stopping: --duration reached");
	a->stop = true;
}

/* ------------------------------------------------------------------ run */

int agent_run(const struct kp_config *cfg, const struct agent_opts *opts, struct sink *sink)
{
	static const struct agent_opts no_opts;
	struct agent a = {.cfg = cfg, .sink = sink, .sigfd = -1};
	sigset_t mask, old;
	bool masked = false;
	char err[1024];
	int r;

	if (!opts)
		opts = &no_opts;
	r = meta_open(&a.meta, cfg, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		goto cleanup;
	}
	struct probe_opts po = {
		.pids = opts->pids,
		.npids = opts->npids,
		.comms = opts->comms,
		.ncomms = opts->ncomms,
	};
	r = probe_open(&a.probe, cfg, &po, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		goto cleanup;
	}
	if (opts->loop)
		a.loop = opts->loop;
	else
		r = loop_init(&a.loop, 64);
	if (r < 0) {
		log_error("io_uring is not available (%s): kprobe-agent needs Linux 5.19+ with "
			  "io_uring enabled (sysctl kernel.io_uring_disabled=0)",
			  strerror(-r));
		goto cleanup;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, &old);
	masked = true;
	a.sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (a.sigfd < 0) {
		r = -errno;
		log_error("signalfd: %s", strerror(errno));
		goto cleanup;
	}

	a.offset = agent_clock_offset();
	a.poll_op = (struct loop_op){.cb = on_poll, .ctx = &a};
	a.sig_op = (struct loop_op){.cb = on_signal, .ctx = &a};
	a.cap_op = (struct loop_op){.cb = on_cap_poll, .ctx = &a};
	poll_arm(&a);
	sig_arm(&a);
	cap_open(&a);
	if (a.cap)
		cap_poll_arm(&a);
	a.drain_t = (struct loop_timer){.fn = on_drain_timer, .ctx = &a};
	a.clock_t = (struct loop_timer){.fn = on_clock_timer, .ctx = &a};
	a.batch_t = (struct loop_timer){.fn = on_batch_timer, .ctx = &a};
	a.stats_t = (struct loop_timer){.fn = on_stats_timer, .ctx = &a};
	a.stop_t = (struct loop_timer){.fn = on_stop_timer, .ctx = &a};
	/* Half a batch period: records are on the wire within agent.batchMs either way, and an
	 * idle-ish agent wakes far less (each wake-up costs more than draining). */
	a.drain_ns = (uint64_t)KP_MAX(PROBE_DRAIN_INTERVAL_MS, KP_MIN(cfg->agent_batch_ms / 2, 50)) *
		     NSEC_PER_MSEC;
	loop_timer_arm(a.loop, &a.drain_t, a.drain_ns);
	loop_timer_arm(a.loop, &a.clock_t, NSEC_PER_SEC);
	loop_timer_arm(a.loop, &a.batch_t, (uint64_t)cfg->agent_batch_ms * NSEC_PER_MSEC);
	if (cfg->agent_stats_sec > 0)
		loop_timer_arm(a.loop, &a.stats_t, (uint64_t)cfg->agent_stats_sec * NSEC_PER_SEC);
	if (opts->duration_ns)
		loop_timer_arm(a.loop, &a.stop_t, opts->duration_ns);
	a.last_stats_ns = now_mono_ns();
	log_info("recording: %s", probe_describe(a.probe));
	if (opts->ready_file) {
		int fd = open(opts->ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			log_warn("cannot create --ready-file %s: %s", opts->ready_file,
				 strerror(errno));
		else
			close(fd);
	}

	while (!a.stop) {
		r = loop_run_once(a.loop, a.more ? 0 : -1);
		if (r < 0 && r != -EINTR) {
			log_error("the event loop failed: %s", strerror(-r));
			goto cleanup;
		}
		if (a.more && !a.stop)
			drain(&a);
	}
	/* what the kernel side committed before the stop still goes out (bounded: 1 s) */
	uint64_t until = now_mono_ns() + NSEC_PER_SEC;
	do {
		drain(&a);
		cap_drain(&a);
	} while (a.more && now_mono_ns() < until);
	cap_check_lost(&a);
	log_stats(&a, "final");
	r = 0;

cleanup:
	/* Our pending ops point into `a`: cancel them and let their completions arrive before the
	 * sink (which may drain on the same loop) closes; the loop goes last. */
	if (a.loop) {
		a.stop = 1;
		loop_cancel(a.loop, &a.poll_op);
		loop_cancel(a.loop, &a.sig_op);
		if (a.cap_op.pending)
			loop_cancel(a.loop, &a.cap_op);
		struct loop_timer *ts[] = {&a.drain_t, &a.clock_t, &a.batch_t, &a.stats_t, &a.stop_t};
		for (size_t i = 0; i < KP_ARRAY_SIZE(ts); i++)
			loop_timer_cancel(a.loop, ts[i]);
		for (int i = 0; i < 500; i++) {
			int pending = a.poll_op.pending + a.sig_op.pending + a.cap_op.pending;
			for (size_t k = 0; k < KP_ARRAY_SIZE(ts); k++)
				pending += ts[k]->op.pending;
			if (!pending)
				break;
			loop_run_once(a.loop, 10);
		}
	}
	sink->ops->close(sink->ctx, opts->drain_ms ? opts->drain_ms : 5000);
	if (!opts->loop)
		loop_free(a.loop);
	if (a.sigfd >= 0)
		close(a.sigfd);
	if (masked)
		sigprocmask(SIG_SETMASK, &old, NULL);
	capture_close(a.cap);
	probe_close(a.probe);
	meta_close(a.meta);
	hmap_free(&a.files);
	return r;
}
