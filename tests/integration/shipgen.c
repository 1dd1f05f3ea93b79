/*
 * shipgen.c - helpers for the shipping tests (see shipgen.h): an agent-side process, kprobed
 * processes, and reading back what kprobed holds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "agent/loop.h"
#include "agent/ship.h"
#include "common/config.h"
#include "common/util.h"
#include "store/ingest.h"
#include "store/wal.h"
#include "tests/integration/shipgen.h"
#include "tests/test.h"

void shipgen_defaults(struct shipgen_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->node_name, sizeof(o->node_name), "shipgen-%d", getpid());
	snprintf(o->spool_dir, sizeof(o->spool_dir), "%s/spool", kt_tmpdir());
	o->tid = 4242;
	o->per_ms = 200;
	o->batch_events = 500;
	o->batch_ms = 20;
	o->mem_mb = 16;
	o->spool_mb = 256;
	o->reconnect_max_ms = 200;
	o->drain_ms = 10000;
	o->close_when_idle = 1;
}

struct shipgen_shared *shipgen_shared_new(void)
{
	void *p = mmap(NULL, sizeof(struct shipgen_shared), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	memset(p, 0, sizeof(struct shipgen_shared));
	return p;
}

uint64_t shipgen_event_key(uint32_t tid, uint64_t idx)
{
	uint64_t k[2] = {tid, idx};
	return XXH3_64bits(k, sizeof(k));
}

struct gen {
	const struct shipgen_opts *o;
	struct shipgen_shared *sh;
	struct sink sink;
	struct loop_timer t;
	uint64_t next, last_ns;
	struct wire_proc proc;
};

static void gen_tick(struct loop *l, struct loop_timer *t)
{
	struct gen *g = t->ctx;
	uint64_t now = now_mono_ns();
	uint64_t due = g->o->per_ms * ((now - g->last_ns) / NSEC_PER_MSEC + 1);
	g->last_ns = now;
	uint64_t end = g->o->first + g->o->count;
	for (uint64_t i = 0; i < due && g->next < end; i++, g->next++) {
		struct kp_event ev = {.ts_ns = now_real_ns(),
				      .dur_ns = g->next % 1000,
				      .pid = (uint32_t)getpid(),
				      .tid = g->o->tid,
				      .cpu = 0,
				      .type = KP_WRITE,
				      .ret = 1,
				      .arg = {g->next, 1, 1, 0}};
		/* Process metadata every 1000 events, as a pipeline marks it fresh. */
		g->sink.ops->event(g->sink.ctx, &ev, &g->proc, g->next % 1000 == 0, NULL, 0);
		g->sh->produced++;
	}
	g->sink.ops->tick(g->sink.ctx, now);
	ship_sink_stats(&g->sink, &g->sh->st);
	if (g->next >= end)
		g->sh->generated = 1;
	g->sh->idle = g->sh->generated && ship_sink_idle(&g->sink);
	loop_timer_arm(l, t, NSEC_PER_MSEC);
}

int shipgen_run(const struct shipgen_opts *o, struct shipgen_shared *sh)
{
	struct kp_config cfg;
	config_init(&cfg);
	char set[700], err[256];
#define SET(...)                                                                                   \
	do {                                                                                       \
		snprintf(set, sizeof(set), __VA_ARGS__);                                           \
		if (config_set(&cfg, set, err, sizeof(err)) < 0) {                                 \
			fprintf(stderr, "shipgen: %s\n", err);                                     \
			return -EINVAL;                                                            \
		}                                                                                  \
	} while (0)
	SET("agent.appliance=%s", o->appliance);
	SET("agent.spoolDir=%s", o->spool_dir);
	SET("agent.nodeName=%s", o->node_name);
	SET("agent.batchEvents=%d", o->batch_events);
	SET("agent.batchMs=%d", o->batch_ms);
	SET("agent.memoryQueueMb=%d", o->mem_mb);
	SET("agent.spoolMaxMb=%d", o->spool_mb);
	SET("agent.reconnectMaxMs=%d", o->reconnect_max_ms);
#undef SET
	struct loop *l;
	int r = loop_init(&l, 256);
	if (r < 0)
		return r;
	static struct gen g;
	memset(&g, 0, sizeof(g));
	g.o = o;
	g.sh = sh;
	g.next = o->first;
	g.last_ns = now_mono_ns();
	g.proc.pid = (uint32_t)getpid();
	snprintf(g.proc.comm, sizeof(g.proc.comm), "shipgen");
	if ((r = ship_sink_open(&cfg, l, &g.sink)) < 0) {
		loop_free(l);
		config_free(&cfg);
		return r;
	}
	g.t = (struct loop_timer){.fn = gen_tick, .ctx = &g};
	loop_timer_arm(l, &g.t, NSEC_PER_MSEC);
	while (!sh->stop && !(o->close_when_idle && sh->idle))
		loop_run_once(l, 100);
	loop_timer_cancel(l, &g.t);
	while (g.t.op.pending)
		loop_run_once(l, 100);
	g.sink.ops->close(g.sink.ctx, o->drain_ms);
	sh->closed = 1;
	loop_free(l);
	config_free(&cfg);
	return 0;
}

pid_t shipgen_fork(const struct shipgen_opts *o, struct shipgen_shared *sh)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		log_init("shipgen");
		int r = shipgen_run(o, sh);
		_exit(r < 0 ? 1 : 0);
	}
	return pid;
}

/* ---- kprobed ---- */

int free_tcp_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ_INT(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t l = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

static int port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

pid_t kprobed_start(const char *datadir, int port, int commit_us)
{
	char bin[600], dd[700], pt[64], cu[64], log[700];
	snprintf(bin, sizeof(bin), "%s/bin/kprobed", kt_root());
	snprintf(dd, sizeof(dd), "store.dataDir=%s", datadir);
	snprintf(pt, sizeof(pt), "ingest.port=%d", port);
	snprintf(cu, sizeof(cu), "ingest.groupCommitUs=%d", commit_us);
	snprintf(log, sizeof(log), "%s/kprobed.log", kt_tmpdir());
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, "kprobed", "--ingest-only", "--set", dd, "--set", pt, "--set", cu,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1500; i++) {
		if (port_open(port))
			return pid;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			CHECKF(0, "kprobed exited (status %d) before listening; see %s", st, log);
		usleep(10000);
	}
	CHECKF(0, "kprobed did not listen on %d within 15 s", port);
	return -1;
}

void kprobed_kill(pid_t pid, int sig)
{
	kill(pid, sig);
	int st;
	waitpid(pid, &st, 0);
	if (sig == SIGTERM)
		CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "kprobed did not stop cleanly (%d)",
		       st);
}

/* ---- checking ---- */

struct rctx {
	struct received *r;
	uint32_t tid;
	uint64_t last_seq[64], node[64];
	int nodes;
};

static void tally(void *ctx, uint64_t lsn, const struct wire_hdr *h, const void *raw)
{
	struct rctx *c = ctx;
	struct received *r = c->r;
	r->frames++;
	int k;
	for (k = 0; k < c->nodes && c->node[k] != h->node_id; k++)
		;
	if (k == c->nodes && k < 64) {
		c->node[k] = h->node_id;
		c->last_seq[k] = 0;
		c->nodes++;
	}
	if (k < 64) {
		if (h->seq <= c->last_seq[k])
			r->seq_order_errors++;
		c->last_seq[k] = h->seq;
	}
	const struct kp_event *ev = raw;
	for (uint32_t i = 0; i < h->n_events; i++) {
		if (ev[i].tid != c->tid)
			continue;
		r->events++;
		uint64_t idx = ev[i].arg[0];
		if (idx < r->first || idx >= r->first + r->count) {
			r->out_of_range++;
			continue;
		}
		uint8_t *s = &r->seen[idx - r->first];
		if (*s) {
			r->dups++;
		} else {
			r->distinct++;
			r->sum += shipgen_event_key(c->tid, idx);
		}
		if (*s < 255)
			(*s)++;
	}
}

int received_from_wal(const char *datadir, uint32_t tid, uint64_t first, uint64_t count,
		      struct received *out)
{
	memset(out, 0, sizeof(*out));
	out->first = first;
	out->count = count;
	out->seen = xcalloc(count ? count : 1, 1);
	char dir[700];
	snprintf(dir, sizeof(dir), "%s/wal", datadir);
	struct wal *w;
	struct wal_opts o = {.read_only = 1};
	int r = wal_open(&w, dir, &o, NULL);
	if (r < 0)
		return r;
	static struct rctx c;
	memset(&c, 0, sizeof(c));
	c.r = out;
	c.tid = tid;
	int64_t n = ingest_replay(w, 1, tally, &c);
	wal_close(w);
	return n < 0 ? (int)n : 0;
}

void received_free(struct received *r)
{
	free(r->seen);
	r->seen = NULL;
}

uint64_t expected_sum(uint32_t tid, uint64_t first, uint64_t count)
{
	uint64_t s = 0;
	for (uint64_t i = first; i < first + count; i++)
		s += shipgen_event_key(tid, i);
	return s;
}
