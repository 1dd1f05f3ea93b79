/*
 * Shipping without loss, end to end: the agent side (the real ship sink on its own io_uring
 * loop, in its own process) ships generated events to a real bin/kprobed on loopback, and the
 * test reads back what kprobed made durable (its WAL). Every event carries a unique index;
 * "exactly once" means each index is there once and the checksum over (tid, index) agrees.
 *
 *  - kprobed is SIGKILLed twice mid-stream and restarted on the same data dir;
 *  - kprobed is away for the agent's whole run: the spool holds the frames, then drains;
 *  - the agent is SIGKILLed with frames in its spool: a new agent delivers them.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/spool.h"
#include "agent/wire.h"
#include "common/util.h"
#include "tests/integration/shipgen.h"
#include "tests/test.h"

static int wait_exit(pid_t pid, int seconds)
{
	int st;
	for (int i = 0; i < seconds * 100; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void wait_produced(struct shipgen_shared *sh, uint64_t n)
{
	for (int i = 0; i < 6000 && sh->produced < n; i++)
		usleep(5000);
	CHECKF(sh->produced >= n, "agent produced only %" PRIu64, sh->produced);
}

TEST_SLOW(ship_kprobed_sigkill_midstream_exactly_once, 180)
{
	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	int port = free_tcp_port();
	pid_t kd = kprobed_start(data, port, 2000);
	struct shipgen_opts o;
	shipgen_defaults(&o);
	snprintf(o.appliance, sizeof(o.appliance), "127.0.0.1:%d", port);
	o.count = 400000;
	o.per_ms = 100; /* ~4 s of production */
	struct shipgen_shared *sh = shipgen_shared_new();
	pid_t ag = shipgen_fork(&o, sh);

	wait_produced(sh, 100000);
	uint64_t acked_before = sh->st.events_acked;
	kprobed_kill(kd, SIGKILL);
	usleep(300000); /* the agent notices, backs off, keeps producing */
	kd = kprobed_start(data, port, 2000);
	wait_produced(sh, 250000);
	kprobed_kill(kd, SIGKILL);
	kd = kprobed_start(data, port, 2000); /* straight back */

	CHECK_EQ_INT(wait_exit(ag, 120), 0);
	CHECK(sh->idle);
	kprobed_kill(kd, SIGTERM);
	CHECK_GT_INT(acked_before, 0);
	CHECK_GE_UINT(sh->st.reconnects, 2);
	CHECK_EQ_UINT(sh->st.dropped_frames, 0);

	struct received r;
	CHECK_EQ_INT(received_from_wal(data, o.tid, 0, o.count, &r), 0);
	kt_note("%" PRIu64 " frames in the WAL, %" PRIu64 " resends acked as duplicates", r.frames,
		sh->st.dups);
	CHECK_EQ_UINT(r.distinct, o.count);
	CHECK_EQ_UINT(r.dups, 0);
	CHECK_EQ_UINT(r.out_of_range, 0);
	CHECK_EQ_UINT(r.seq_order_errors, 0);
	CHECK_EQ_UINT(r.sum, expected_sum(o.tid, 0, o.count));
	received_free(&r);
}

TEST_SLOW(ship_kprobed_away_for_whole_run_spool_drains, 120)
{
	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	int port = free_tcp_port();
	struct shipgen_opts o;
	shipgen_defaults(&o);
	snprintf(o.appliance, sizeof(o.appliance), "127.0.0.1:%d", port);
	o.count = 300000;
	o.per_ms = 1000;
	o.mem_mb = 1; /* most of it has to go to disk */
	struct shipgen_shared *sh = shipgen_shared_new();
	pid_t ag = shipgen_fork(&o, sh);
	for (int i = 0; i < 3000 && !sh->generated; i++)
		usleep(10000);
	CHECK(sh->generated);
	usleep(300000);
	CHECK_EQ_UINT(sh->st.events_acked, 0);
	CHECK_GT_INT(sh->st.spool_frames, 0);
	CHECK_EQ_UINT(sh->st.dropped_frames, 0);
	kt_note("kprobed away: %" PRIu64 " frames spooled (%" PRIu64 " bytes), %" PRIu64
		" in memory",
		sh->st.spool_frames, sh->st.spool_bytes, sh->st.mem_frames);

	pid_t kd = kprobed_start(data, port, 2000);
	CHECK_EQ_INT(wait_exit(ag, 60), 0);
	CHECK(sh->idle);
	kprobed_kill(kd, SIGTERM);
	struct received r;
	CHECK_EQ_INT(received_from_wal(data, o.tid, 0, o.count, &r), 0);
	CHECK_EQ_UINT(r.distinct, o.count);
	CHECK_EQ_UINT(r.dups, 0);
	CHECK_EQ_UINT(r.seq_order_errors, 0);
	CHECK_EQ_UINT(r.sum, expected_sum(o.tid, 0, o.count));
	received_free(&r);
}

/* Reads the spool left by a killed agent: which event indices it holds. */
static uint64_t spooled_events(const char *dir, uint32_t tid, uint8_t *in_spool, uint64_t count)
{
	struct spool *sp;
	struct spool_info info;
	CHECK_EQ_INT(spool_open(&sp, dir, 256 << 20, &info), 0);
	uint64_t n = 0;
	struct spool_frame f;
	void *raw = xmalloc(WIRE_MAX_RAW);
	while (spool_read_next(sp, UINT64_MAX, &f) == 1) {
		struct wire_hdr h;
		CHECK_EQ_INT(wire_hdr_decode(f.data, &h), 0);
		CHECK_EQ_INT(wire_body_decode(&h, f.data + WIRE_HDR_LEN, raw, WIRE_MAX_RAW), 0);
		const struct kp_event *ev = raw;
		for (uint32_t i = 0; i < h.n_events; i++)
			if (ev[i].tid == tid && ev[i].arg[0] < count) {
				in_spool[ev[i].arg[0]] = 1;
				n++;
			}
		free(f.data);
	}
	free(raw);
	spool_close(sp); /* nothing acked: the next agent finds them all again */
	return n;
}

TEST_SLOW(ship_agent_sigkill_spool_delivered_after_restart, 120)
{
	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	int port = free_tcp_port();
	struct shipgen_opts o;
	shipgen_defaults(&o);
	snprintf(o.appliance, sizeof(o.appliance), "127.0.0.1:%d", port);
	o.count = 200000;
	o.per_ms = 2000;
	o.mem_mb = 1;
	struct shipgen_shared *sh = shipgen_shared_new();
	pid_t ag = shipgen_fork(&o, sh);
	for (int i = 0; i < 3000 && !sh->generated; i++)
		usleep(10000);
	usleep(200000);
	CHECK_GT_INT(sh->st.spool_frames, 0);
	kill(ag, SIGKILL); /* no close: the memory queue is lost, the spool is not */
	waitpid(ag, NULL, 0);

	uint8_t *in_spool = xcalloc(o.count, 1);
	uint64_t n_spool = spooled_events(o.spool_dir, o.tid, in_spool, o.count);
	CHECK_GT_INT(n_spool, 0);
	kt_note("agent killed: %" PRIu64 " of %" PRIu64 " events were in its spool", n_spool,
		o.count);

	pid_t kd = kprobed_start(data, port, 2000);
	struct shipgen_opts o2 = o;
	o2.first = o.count;
	o2.count = 20000;
	struct shipgen_shared *sh2 = shipgen_shared_new();
	ag = shipgen_fork(&o2, sh2);
	CHECK_EQ_INT(wait_exit(ag, 60), 0);
	CHECK(sh2->idle);
	kprobed_kill(kd, SIGTERM);

	struct received r;
	CHECK_EQ_INT(received_from_wal(data, o.tid, 0, o.count + o2.count, &r), 0);
	CHECK_EQ_UINT(r.dups, 0);
	CHECK_EQ_UINT(r.seq_order_errors, 0);
	for (uint64_t i = 0; i < o.count; i++)
		CHECKF(r.seen[i] == in_spool[i], "event %" PRIu64 ": spooled %d, received %d", i,
		       in_spool[i], r.seen[i]);
	for (uint64_t i = o.count; i < o.count + o2.count; i++)
		CHECKF(r.seen[i] == 1, "event %" PRIu64 " of the second agent received %d times", i,
		       r.seen[i]);
	CHECK_EQ_UINT(r.distinct, n_spool + o2.count);
	free(in_spool);
	received_free(&r);
}

/* Runs cmd, returns its stdout (caller frees) and exit status. */
static char *run_cmd(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	CHECK(p != NULL);
	struct kp_buf b = {0};
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		buf_append(&b, buf, n);
	*status = pclose(p);
	if (!b.data)
		buf_append(&b, "", 0);
	return b.data;
}

TEST_SLOW(kprobed_dump_wal_and_help, 60)
{
	char cmd[1400];
	int st;
	snprintf(cmd, sizeof(cmd), "%s/bin/kprobed --help", kt_root());
	char *out = run_cmd(cmd, &st);
	CHECK_EQ_INT(st, 0);
	CHECK_CONTAINS(out, "--dump-wal");
	CHECK_CONTAINS(out, "--port-file");
	free(out);

	char data[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	int port = free_tcp_port();
	pid_t kd = kprobed_start(data, port, 1000);
	struct shipgen_opts o;
	shipgen_defaults(&o);
	snprintf(o.appliance, sizeof(o.appliance), "127.0.0.1:%d", port);
	o.count = 2500;
	o.batch_events = 1000;
	struct shipgen_shared *sh = shipgen_shared_new();
	CHECK_EQ_INT(shipgen_run(&o, sh), 0);
	CHECK(sh->idle);
	kprobed_kill(kd, SIGTERM);

	snprintf(cmd, sizeof(cmd), "%s/bin/kprobed --dump-wal %s --events 2>/dev/null", kt_root(),
		 data);
	out = run_cmd(cmd, &st);
	CHECK_EQ_INT(st, 0);
	uint64_t frames = 0, events = 0;
	for (char *l = out; l && *l;) {
		char *e = strchr(l, '\n');
		if (!strncmp(l, "frame ", 6))
			frames++;
		else if (!strncmp(l, "event ", 6) && strstr(l, " tid=4242 ") &&
			 strstr(l, " type=write "))
			events++;
		l = e ? e + 1 : NULL;
	}
	CHECK_GE_UINT(frames, 3); /* 1000-event frames, or cut earlier by the batch timer */
	CHECK_EQ_UINT(events, o.count);
	CHECK_CONTAINS(out, "frame lsn=1 node=");
	free(out);
	/* A directory that is not a WAL is an error with a message, not a crash. */
	snprintf(cmd, sizeof(cmd), "%s/bin/kprobed --dump-wal /nonexistent/x 2>&1", kt_root());
	out = run_cmd(cmd, &st);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	CHECK_CONTAINS(out, "cannot open the WAL");
	free(out);
}
