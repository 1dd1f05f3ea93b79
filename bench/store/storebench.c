/*
 * storebench.c - the store benchmark's C side (run by bench/store/run.sh):
 *
 *   storebench gen EVENTS FORMAT FILE PARAMS   deterministic synthetic events, written as
 *        FORMAT = frames    agent wire frames (agent/wire.h) + a txn id block per frame (ours)
 *                 rowbinary ClickHouse RowBinary for the original schema (seeds/004)
 *                 csv       the same rows as CSV (DuckDB)
 *        PARAMS gets shell variables for the queries (Q1 pid and window, Q3 window, Q5 txn).
 *   storebench load DIR FILE                   loads a frames file into a store at DIR through
 *        store_append and store_flush (durable); prints events/s and bytes on disk.
 *   storebench send PORT FILE                  sends a frames file to kprobed's ingest port as an
 *        agent would and waits for every ack (durable in its WAL); prints events/s.
 *   storebench query DIR RUNS SQL              runs SQL RUNS times (after one warm-up) and
 *        prints the median ms, the row count and the scan stats.
 *
 * The generator: 2 nodes, 200 processes (100 per node) with Zipf-distributed activity, 1-16
 * threads each, five behaviour profiles (web, app, db, batch, infra) with their own type mixes,
 * log-normal durations per type, sticky CPUs, per-thread fds and inodes, per-connection TCP
 * sequence numbers, and transaction ids on the threads of web/app processes (a transaction
 * lasts ~30 events of its thread). Events arrive at BENCH_RATE per second (default 14000, so
 * 50M events span about an hour), Poisson.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/wire.h"
#include "common/config.h"
#include "common/util.h"
#include "store/internal.h"
#include "store/query.h"
#include "store/store.h"

#define T0    1795168800000000000ull /* 2026-11-20T08:00:00Z */
#define NPROC 200
#define MAXTH 16
#define BATCH 4096

/* ------------------------------------------------------------------ rng */

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static inline uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}
static inline double urnd(void)
{
	return ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0;
}
static double nrnd(void)
{
	return sqrt(-2 * log(urnd())) * cos(2 * M_PI * urnd());
}
static double lognorm(double median, double sigma)
{
	return median * exp(sigma * nrnd());
}

/* ------------------------------------------------------------------ the world */

enum prof { P_WEB, P_APP, P_DB, P_BATCH, P_INFRA };
static const double mix[5][12] = {
	/* none rd  wr  fs   snd rcv con  rtx  off rcl  flt proc */
	[P_WEB] = {0, 10, 8, 0, 30, 30, 1, 0.3, 18, 0.1, 2, 0.01},
	[P_APP] = {0, 20, 12, 0.5, 18, 18, 0.5, 0.2, 25, 0.3, 5, 0.01},
	[P_DB] = {0, 35, 25, 4, 10, 10, 0.2, 0.1, 14, 0.5, 2, 0.005},
	[P_BATCH] = {0, 30, 30, 1, 2, 2, 0.1, 0, 25, 3, 8, 0.02},
	[P_INFRA] = {0, 25, 25, 1, 10, 10, 0.2, 0.1, 25, 0.2, 3, 0.01},
};
static const struct {
	const char *comm, *service;
	int prof;
} kinds[] = {
	{"nginx", "frontend", P_WEB},	   {"envoy", "mesh", P_WEB},
	{"checkout", "checkout", P_APP},   {"payment-svc", "payments", P_APP},
	{"java", "orders", P_APP},	   {"node", "catalog", P_APP},
	{"python3", "recommend", P_APP},   {"inventory", "inventory", P_APP},
	{"postgres", "postgres", P_DB},	   {"redis-server", "redis", P_DB},
	{"kafka", "kafka", P_DB},	   {"batch-job", "batch", P_BATCH},
	{"etl-worker", "etl", P_BATCH},	   {"kubelet", "system", P_INFRA},
	{"containerd", "system", P_INFRA}, {"fluent-bit", "logging", P_INFRA},
};
#define NKINDS ((int)(sizeof(kinds) / sizeof(kinds[0])))

struct gthread {
	uint32_t tid;
	int cpu, nfd;
	int fds[6];
	char txn[24];
	int txn_left;
};

struct gproc {
	uint32_t pid;
	int node, kind, nth;
	double cum; /* cumulative weight */
	struct gthread th[MAXTH];
	uint64_t conn[8], seq[8], memcg;
	uint16_t lport[8], rport[8];
	uint8_t saddr[8][4], daddr[8][4];
	uint64_t inode_base;
	char pod[64], ns[32], container[72], cgroup[128];
};

static struct gproc procs[NPROC];
static const uint64_t node_ids[2] = {0x6e6f64652d610001ull, 0x6e6f64652d620002ull};
static const char *node_names[2] = {"node-a", "node-b"};
static double total_w;

static void world_init(void)
{
	for (int i = 0; i < NPROC; i++) {
		struct gproc *p = &procs[i];
		p->node = i % 2;
		p->kind = (int)(rnd() % NKINDS);
		if (i < 16)
			p->kind = i % NKINDS; /* every kind among the busiest */
		p->pid = 1000 + (uint32_t)(rnd() % 60000);
		for (int j = 0; j < i; j++)
			if (procs[j].pid == p->pid && procs[j].node == p->node)
				p->pid += 1;
		p->nth = 1 + (int)(rnd() % MAXTH);
		for (int t = 0; t < p->nth; t++) {
			struct gthread *th = &p->th[t];
			th->tid = t ? p->pid + 1 + (uint32_t)(rnd() % 500) : p->pid;
			th->cpu = (int)(rnd() % 16);
			th->nfd = 1 + (int)(rnd() % 6);
			for (int f = 0; f < th->nfd; f++)
				th->fds[f] = 3 + (int)(rnd() % 60);
		}
		for (int c = 0; c < 8; c++) {
			p->conn[c] = rnd();
			p->seq[c] = rnd() & 0xffffffff;
			p->lport[c] = (uint16_t)(32768 + rnd() % 28000);
			static const uint16_t ports[] = {5432, 6379, 9092, 443,
							 8080, 80,   3306, 7077};
			p->rport[c] = ports[rnd() % 8];
			uint8_t s[4] = {10, 0, (uint8_t)p->node, (uint8_t)(10 + i)};
			uint8_t d[4] = {10, 0, (uint8_t)(rnd() % 2), (uint8_t)(10 + rnd() % 200)};
			memcpy(p->saddr[c], s, 4);
			memcpy(p->daddr[c], d, 4);
		}
		p->memcg = 1000 + rnd() % 5000;
		p->inode_base = 100000 + rnd() % 10000000;
		const char *svc = kinds[p->kind].service;
		snprintf(p->ns, sizeof(p->ns), "%s",
			 kinds[p->kind].prof == P_INFRA ? "kube-system" : "shop");
		snprintf(p->pod, sizeof(p->pod), "%s-%05x", svc, (unsigned)(rnd() & 0xfffff));
		snprintf(p->container, sizeof(p->container), "%016" PRIx64 "%016" PRIx64, rnd(),
			 rnd());
		snprintf(p->cgroup, sizeof(p->cgroup), "/kubepods/burstable/pod%s/%.12s", p->pod,
			 p->container);
		total_w += 1.0 / (i + 1); /* Zipf s=1 over the process rank */
		p->cum = total_w;
	}
}

static struct gproc *pick_proc(void)
{
	double x = urnd() * total_w;
	int lo = 0, hi = NPROC - 1;
	while (lo < hi) {
		int m = (lo + hi) / 2;
		if (procs[m].cum < x)
			lo = m + 1;
		else
			hi = m;
	}
	return &procs[lo];
}

static int pick_type(int prof)
{
	double tot = 0;
	for (int t = 1; t < 12; t++)
		tot += mix[prof][t];
	double x = urnd() * tot;
	for (int t = 1; t < 12; t++) {
		x -= mix[prof][t];
		if (x <= 0)
			return t;
	}
	return KP_READ;
}

static const uint64_t sizes[] = {4096, 8192, 16384, 65536, 131072, 512, 1, 32768};

/* One event; txn receives its transaction id ("" for none). */
static void gen_event(uint64_t ts, struct kp_event *e, char *txn, struct gproc **pp)
{
	struct gproc *p = pick_proc();
	struct gthread *th = &p->th[rnd() % (uint64_t)p->nth];
	int prof = kinds[p->kind].prof;
	memset(e, 0, sizeof(*e));
	*pp = p;
	e->ts_ns = ts;
	e->pid = p->pid;
	e->tid = th->tid;
	if (rnd() % 10 == 0)
		th->cpu = (int)(rnd() % 16);
	e->cpu = (uint16_t)th->cpu;
	e->type = (uint8_t)pick_type(prof);
	int fd = th->fds[rnd() % (uint64_t)th->nfd];
	int c = (int)(rnd() % 8);
	switch (e->type) {
	case KP_READ:
	case KP_WRITE: {
		uint64_t ask = sizes[rnd() % 8];
		e->dur_ns = (uint64_t)lognorm(e->type == KP_READ ? 5000 : 10000, 1.2);
		e->arg[0] = (uint64_t)fd;
		e->arg[1] = ask;
		static const uint64_t rd[] = {0, 17, 19, 45, 47}, wr[] = {1, 18, 20, 44, 46};
		e->arg[2] = e->type == KP_READ ? rd[rnd() % 5] : wr[rnd() % 5];
		e->arg[3] = p->inode_base + (uint64_t)fd;
		e->ret = (int32_t)(e->type == KP_WRITE || rnd() % 3 ? ask : rnd() % ask);
		if (rnd() % 200 == 0) {
			e->ret = -11;
			e->flags = KP_F_ERROR;
		}
		break;
	}
	case KP_FSYNC:
		e->dur_ns = (uint64_t)lognorm(2000000, 1.0);
		e->arg[0] = (uint64_t)fd;
		e->arg[2] = rnd() % 2 ? 74 : 75;
		e->arg[3] = p->inode_base + (uint64_t)fd;
		break;
	case KP_TCP_SEND:
	case KP_TCP_RECV: {
		uint64_t b = rnd() % 4 ? 200 + rnd() % 1800 : sizes[rnd() % 5];
		e->dur_ns = (uint64_t)lognorm(e->type == KP_TCP_SEND ? 8000 : 6000, 1.0);
		e->arg[0] = p->conn[c];
		e->arg[1] = b;
		e->arg[2] = p->seq[c] & 0xffffffff;
		p->seq[c] += b;
		e->arg[3] = KP_PORTS(p->lport[c], p->rport[c]);
		e->ret = (int32_t)b;
		break;
	}
	case KP_CONN:
		e->arg[0] = p->conn[c];
		e->arg[1] = 2;
		e->arg[2] = 1;
		e->arg[3] = KP_PORTS(p->lport[c], p->rport[c]) | (2ull << 32);
		break;
	case KP_RETRANSMIT:
		e->arg[0] = p->conn[c];
		e->arg[1] = p->seq[c] & 0xffffffff;
		e->arg[2] = 1;
		e->arg[3] = KP_PORTS(p->lport[c], p->rport[c]);
		break;
	case KP_OFFCPU: {
		bool pre = prof == P_BATCH ? rnd() % 2 : rnd() % 5 == 0;
		e->dur_ns = 50000 + (uint64_t)lognorm(pre ? 400000 : 150000, 1.5);
		e->arg[0] = (pre ? KP_OFFCPU_PREEMPTED : KP_OFFCPU_BLOCKED) |
			    ((pre ? 0ull : 1ull) << 8);
		e->arg[1] = pre ? 0 : p->th[rnd() % (uint64_t)p->nth].tid;
		e->arg[2] = (uint64_t)lognorm(20000, 1.2);
		struct gproc *o = &procs[rnd() % NPROC];
		e->arg[3] = o->th[rnd() % (uint64_t)o->nth].tid;
		break;
	}
	case KP_RECLAIM:
		e->dur_ns = (uint64_t)lognorm(1000000, 1.0);
		e->arg[0] = 32 + rnd() % 900;
		e->arg[1] = KP_RECLAIM_MEMCG;
		e->arg[2] = p->memcg;
		break;
	case KP_FAULTS: {
		e->dur_ns = (uint64_t)lognorm(50000, 1.0);
		uint64_t n = 1 + rnd() % 200, a = 0x7f0000000000ull + ((rnd() % 0x1000000) << 12);
		e->arg[0] = n;
		e->arg[1] = a;
		e->arg[2] = a + ((rnd() % 64) << 12);
		e->arg[3] = rnd() % (n + 1);
		break;
	}
	case KP_PROC:
		e->arg[0] = 1 + rnd() % 3;
		e->arg[1] = 1;
		memcpy(&e->arg[2], kinds[p->kind].comm, KP_MIN(strlen(kinds[p->kind].comm), 15));
		break;
	}
	txn[0] = '\0';
	if (prof == P_WEB || prof == P_APP) {
		if (th->txn_left <= 0) {
			th->txn_left = 1 + (int)(-log(urnd()) * 30);
			if (rnd() % 10 < 7)
				snprintf(th->txn, sizeof(th->txn), "txn-%016" PRIx64, rnd());
			else
				th->txn[0] = '\0';
		}
		th->txn_left--;
		strcpy(txn, th->txn);
	}
}

/* ------------------------------------------------------------------ writers */

static FILE *out;

static void w_var(uint64_t v)
{
	while (v >= 0x80) {
		fputc((int)(v & 0x7f) | 0x80, out);
		v >>= 7;
	}
	fputc((int)v, out);
}
static void w_str(const char *s)
{
	size_t l = strlen(s);
	w_var(l);
	fwrite(s, 1, l, out);
}

static const char *type_name[] = {"none", "read",	"write",  "fsync",   "tcp_send", "tcp_recv",
				  "conn", "retransmit", "offcpu", "reclaim", "faults",	 "proc"};

/* The original schema keeps everything but the fixed columns in metadata Map(String,String):
 * node, comm, ret, flags and the per-type fields, named as our columns. */
static int meta_kv(const struct kp_event *e, const struct gproc *p, char k[][16], char v[][48])
{
	int n = 0;
#define KV(key, ...)                                                                               \
	do {                                                                                       \
		snprintf(k[n], 16, "%s", key);                                                     \
		snprintf(v[n], 48, __VA_ARGS__);                                                   \
		n++;                                                                               \
	} while (0)
	KV("node", "%s", node_names[p->node]);
	KV("comm", "%s", kinds[p->kind].comm);
	KV("ret", "%d", e->ret);
	if (e->flags)
		KV("flags", "%u", e->flags);
	switch (e->type) {
	case KP_READ:
	case KP_WRITE:
	case KP_FSYNC:
		KV("fd", "%" PRIu64, (uint64_t)(e->arg[0]));
		if (e->type != KP_FSYNC)
			KV("bytes", "%" PRIu64, (uint64_t)(e->arg[1]));
		KV("syscall", "%" PRIu64, (uint64_t)(e->arg[2]));
		KV("inode", "%" PRIu64, (uint64_t)(e->arg[3]));
		break;
	case KP_TCP_SEND:
	case KP_TCP_RECV:
		KV("conn", "%" PRIu64, (uint64_t)(e->arg[0]));
		KV("bytes", "%" PRIu64, (uint64_t)(e->arg[1]));
		KV("seq", "%" PRIu64, (uint64_t)(e->arg[2]));
		KV("sport", "%" PRIu64, (uint64_t)(e->arg[3] & 0xffff));
		KV("dport", "%" PRIu64, (uint64_t)((e->arg[3] >> 16) & 0xffff));
		break;
	case KP_CONN:
	case KP_RETRANSMIT:
		KV("conn", "%" PRIu64, (uint64_t)(e->arg[0]));
		KV(e->type == KP_CONN ? "old_state" : "seq", "%" PRIu64, (uint64_t)(e->arg[1]));
		KV(e->type == KP_CONN ? "new_state" : "tcp_state", "%" PRIu64,
		   (uint64_t)(e->arg[2]));
		KV("sport", "%" PRIu64, (uint64_t)(e->arg[3] & 0xffff));
		KV("dport", "%" PRIu64, (uint64_t)((e->arg[3] >> 16) & 0xffff));
		break;
	case KP_OFFCPU:
		KV("reason", "%s", (e->arg[0] & 0xff) ? "preempted" : "blocked");
		KV("prev_state", "%" PRIu64, (uint64_t)(e->arg[0] >> 8));
		KV("waker", "%" PRIu64, (uint64_t)(e->arg[1]));
		KV("runq", "%" PRIu64, (uint64_t)(e->arg[2]));
		KV("holder_tid", "%" PRIu64, (uint64_t)(e->arg[3]));
		break;
	case KP_RECLAIM:
		KV("pages", "%" PRIu64, (uint64_t)(e->arg[0]));
		KV("kind", "%s", e->arg[1] ? "memcg" : "direct");
		KV("memcg", "%" PRIu64, (uint64_t)(e->arg[2]));
		KV("order", "%" PRIu64, (uint64_t)(e->arg[3]));
		break;
	case KP_FAULTS:
		KV("count", "%" PRIu64, (uint64_t)(e->arg[0]));
		KV("addr", "%" PRIu64, (uint64_t)(e->arg[1]));
		KV("last_addr", "%" PRIu64, (uint64_t)(e->arg[2]));
		KV("write_faults", "%" PRIu64, (uint64_t)(e->arg[3]));
		break;
	case KP_PROC:
		KV("proc_event", "%" PRIu64, (uint64_t)(e->arg[0]));
		KV("ppid", "%" PRIu64, (uint64_t)(e->arg[1]));
		break;
	}
	return n;
}

struct nodebatch {
	struct wire_batch b;
	struct kp_buf txn; /* u8 len + bytes per event */
	bool sent_meta;
};

static uint64_t frame_seq;

static void flush_frame(int node, struct nodebatch *nb)
{
	if (!nb->b.n_events)
		return;
	struct kp_buf f = {0};
	if (wire_frame_encode(&nb->b, node_ids[node], ++frame_seq, 1, &f)) {
		fprintf(stderr, "storebench: frame too big\n");
		exit(1);
	}
	uint32_t tl = (uint32_t)nb->txn.len;
	fwrite(f.data, 1, f.len, out);
	fwrite(&tl, 4, 1, out);
	fwrite(nb->txn.data, 1, nb->txn.len, out);
	buf_free(&f);
	wire_batch_reset(&nb->b);
	nb->txn.len = 0;
}

static int cmd_gen(uint64_t n, const char *fmt, const char *path, const char *params)
{
	world_init();
	double rate = getenv("BENCH_RATE") ? atof(getenv("BENCH_RATE")) : 14000;
	out = fopen(path, "wb");
	if (!out) {
		perror(path);
		return 1;
	}
	static char obuf[1 << 20];
	setvbuf(out, obuf, _IOFBF, sizeof(obuf));
	int f = !strcmp(fmt, "frames") ? 0 : !strcmp(fmt, "rowbinary") ? 1 : 2;
	struct nodebatch nb[2] = {0};
	double t = 0;
	char txn[24], q5[24] = "";
	uint64_t span = (uint64_t)((double)n / rate * 1e9), mid = T0 + span / 2;
	uint32_t q1pid = 0;
	uint64_t q1n = 0;
	char k[24][16], v[24][48];
	for (uint64_t i = 0; i < n; i++) {
		t += -log(urnd()) / rate;
		struct kp_event e;
		struct gproc *p;
		gen_event(T0 + (uint64_t)(t * 1e9), &e, txn, &p);
		if (i >= n / 2 && !q5[0] && txn[0])
			strcpy(q5, txn);
		if (p == &procs[20] && e.ts_ns >= mid && e.ts_ns < mid + 60 * NSEC_PER_SEC) {
			q1pid = p->pid;
			q1n++;
		}
		if (f == 0) {
			struct nodebatch *b = &nb[p->node];
			if (!b->sent_meta) {
				wire_batch_add_node(&b->b, node_names[p->node], "6.1.0");
				for (int j = 0; j < NPROC; j++) {
					if (procs[j].node != p->node)
						continue;
					struct wire_proc wp = {0};
					wp.pid = procs[j].pid;
					wp.ppid = 1;
					wp.start_ns = T0 - 3600 * NSEC_PER_SEC;
					snprintf(wp.comm, sizeof(wp.comm), "%s",
						 kinds[procs[j].kind].comm);
					snprintf(wp.cmdline, sizeof(wp.cmdline), "/usr/bin/%s",
						 kinds[procs[j].kind].comm);
					snprintf(wp.cgroup, sizeof(wp.cgroup), "%s",
						 procs[j].cgroup);
					snprintf(wp.container, sizeof(wp.container), "%s",
						 procs[j].container);
					snprintf(wp.pod, sizeof(wp.pod), "%s", procs[j].pod);
					snprintf(wp.ns, sizeof(wp.ns), "%s", procs[j].ns);
					snprintf(wp.service, sizeof(wp.service), "%s",
						 kinds[procs[j].kind].service);
					wire_batch_add_proc(&b->b, &wp);
					for (int c = 0; c < 8; c++) {
						struct wire_conn wc = {0};
						wc.conn = procs[j].conn[c];
						wc.family = 2;
						wc.sport = procs[j].lport[c];
						wc.dport = procs[j].rport[c];
						memcpy(wc.saddr, procs[j].saddr[c], 4);
						memcpy(wc.daddr, procs[j].daddr[c], 4);
						wire_batch_add_conn(&b->b, &wc);
					}
				}
				b->sent_meta = true;
			}
			wire_batch_add_event(&b->b, &e);
			uint8_t l = (uint8_t)strlen(txn);
			buf_append(&b->txn, &l, 1);
			buf_append(&b->txn, txn, l);
			if (b->b.n_events == BATCH)
				flush_frame(p->node, b);
		} else if (f == 1) {
			fwrite(&e.ts_ns, 8, 1, out); /* RowBinary is little-endian */
			fwrite(&e.pid, 4, 1, out);
			fwrite(&e.tid, 4, 1, out);
			fwrite(&e.cpu, 2, 1, out);
			w_str(type_name[e.type]);
			fwrite(&e.dur_ns, 8, 1, out);
			w_str(kinds[p->kind].service);
			w_str(txn);
			int m = meta_kv(&e, p, k, v);
			w_var((uint64_t)m);
			for (int j = 0; j < m; j++)
				w_str(k[j]);
			w_var((uint64_t)m);
			for (int j = 0; j < m; j++)
				w_str(v[j]);
		} else {
			int m = meta_kv(&e, p, k, v);
			fprintf(out, "%" PRIu64 ",%u,%u,%u,%s,%" PRIu64 ",%s,%s,\"{",
				(uint64_t)e.ts_ns, e.pid, e.tid, e.cpu, type_name[e.type],
				(uint64_t)e.dur_ns, kinds[p->kind].service, txn);
			for (int j = 0; j < m; j++)
				fprintf(out, "%s%s=%s", j ? ", " : "", k[j], v[j]);
			fputs("}\"\n", out);
		}
		if ((i + 1) % 5000000 == 0)
			fprintf(stderr, "storebench: generated %" PRIu64 "M events\n",
				(i + 1) / 1000000);
	}
	if (f == 0)
		for (int i = 0; i < 2; i++) {
			flush_frame(i, &nb[i]);
			wire_batch_free(&nb[i].b);
			buf_free(&nb[i].txn);
		}
	if (fclose(out)) {
		perror(path);
		return 1;
	}
	FILE *pf = fopen(params, "w");
	if (!pf) {
		perror(params);
		return 1;
	}
	fprintf(pf, "Q1_PID=%u\nQ1_T1=%" PRIu64 "\nQ1_T2=%" PRIu64 "\nQ1_ROWS=%" PRIu64 "\n", q1pid,
		mid, (uint64_t)(mid + 60 * NSEC_PER_SEC - 1), q1n);
	fprintf(pf, "Q3_T1=%" PRIu64 "\nQ3_T2=%" PRIu64 "\nQ5_TXN=%s\nSPAN_S=%" PRIu64 "\n", mid,
		(uint64_t)(mid + 600 * NSEC_PER_SEC), q5, (uint64_t)(span / NSEC_PER_SEC));
	fclose(pf);
	return 0;
}

/* ------------------------------------------------------------------ load */

static uint64_t du(const char *dir)
{
	char cmd[9000];
	snprintf(cmd, sizeof(cmd), "du -sb '%s' 2>/dev/null", dir);
	FILE *p = popen(cmd, "r");
	unsigned long long v = 0;
	if (p) {
		if (fscanf(p, "%llu", &v) != 1)
			v = 0;
		pclose(p);
	}
	return v;
}

static struct store *open_store(const char *dir, struct kp_config *cfg)
{
	config_init(cfg);
	free(cfg->store_data_dir);
	cfg->store_data_dir = xstrdup(dir);
	cfg->store_retention_days = 36500;
	if (getenv("BENCH_MEMTABLE_ROWS"))
		cfg->store_memtable_rows = atoll(getenv("BENCH_MEMTABLE_ROWS"));
	struct store *st;
	int rc = store_open(cfg, &st);
	if (rc) {
		fprintf(stderr, "storebench: store_open %s: %s\n", dir, store_strerror(rc));
		exit(1);
	}
	return st;
}

static int cmd_load(const char *dir, const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	struct kp_config cfg;
	struct store *st = open_store(dir, &cfg);
	uint8_t *hdr = xmalloc(WIRE_HDR_LEN), *body = xmalloc(WIRE_MAX_BODY),
		*raw = xmalloc(WIRE_MAX_RAW), *tb = xmalloc(65536 * 65);
	const char **txn = xmalloc(sizeof(char *) * 65536);
	char *tstr = xmalloc(65536 * 65);
	uint64_t lsn = 0, events = 0, t0 = now_mono_ns();
	FILE *in = fdopen(fd, "rb");
	static char ibuf[1 << 22];
	setvbuf(in, ibuf, _IOFBF, sizeof(ibuf));
	while (fread(hdr, 1, WIRE_HDR_LEN, in) == WIRE_HDR_LEN) {
		struct wire_hdr h;
		uint32_t tl;
		if (wire_hdr_decode(hdr, &h) || fread(body, 1, h.body_len, in) != h.body_len ||
		    wire_body_decode(&h, body, raw, WIRE_MAX_RAW) || fread(&tl, 4, 1, in) != 1 ||
		    tl > 65536 * 65 || fread(tb, 1, tl, in) != tl) {
			fprintf(stderr, "storebench: bad input at frame %" PRIu64 "\n", lsn + 1);
			return 1;
		}
		const uint8_t *p = tb;
		char *o = tstr;
		for (uint32_t i = 0; i < h.n_events; i++) {
			uint8_t l = *p++;
			memcpy(o, p, l);
			o[l] = '\0';
			txn[i] = o;
			o += l + 1;
			p += l;
		}
		size_t evb = 64ull * h.n_events;
		int rc = store_append(st, ++lsn, h.node_id, (const struct kp_event *)raw,
				      h.n_events, raw + evb, h.raw_len - evb, txn);
		if (rc) {
			fprintf(stderr, "storebench: store_append: %s\n", store_strerror(rc));
			return 1;
		}
		events += h.n_events;
		if (events % 5000000 < h.n_events)
			fprintf(stderr, "storebench: loaded %" PRIu64 "M events\n",
				events / 1000000);
	}
	int rc = store_flush(st);
	uint64_t t1 = now_mono_ns();
	if (rc) {
		fprintf(stderr, "storebench: flush: %s\n", store_strerror(rc));
		return 1;
	}
	struct store_stats ss;
	store_stats_get(st, &ss);
	store_close(st);
	char evdir[8400];
	snprintf(evdir, sizeof(evdir), "%s/events", dir);
	uint64_t bytes = du(evdir);
	double secs = (double)(t1 - t0) / 1e9;
	printf("events=%" PRIu64 " seconds=%.3f events_per_s=%.0f bytes=%" PRIu64
	       " bytes_per_event=%.3f segments=%" PRIu64 " seal_s=%.3f\n",
	       events, secs, (double)events / secs, bytes, (double)bytes / (double)events,
	       ss.segments, (double)ss.seal_ns_total / 1e9);
	config_free(&cfg);
	return 0;
}

/* ------------------------------------------------------------------ query */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int cmd_query(const char *dir, int runs, const char *sql)
{
	struct kp_config cfg;
	struct store *st = open_store(dir, &cfg);
	struct query_opts o;
	query_opts_from_config(&o, &cfg);
	o.max_rows = 10000000;
	if (getenv("BENCH_THREADS"))
		o.threads = atoi(getenv("BENCH_THREADS"));
	double ms[64], cpu[64];
	struct query_result *r = NULL;
	if (runs > 63)
		runs = 63;
	for (int i = 0; i <= runs; i++) {
		struct query_error err;
		query_result_free(r);
		struct timespec c0, c1;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		uint64_t t0 = now_mono_ns();
		int rc = query_exec(st, sql, strlen(sql), &o, &r, &err);
		if (rc) {
			fprintf(stderr, "storebench: query failed: %s (at %d)\n", err.message,
				err.position);
			return 1;
		}
		/* what a client gets: the JSON answer */
		struct kp_buf b = {0};
		query_result_write(r, QUERY_JSON, &b);
		buf_free(&b);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		if (i) {
			ms[i - 1] = (double)(now_mono_ns() - t0) / 1e6;
			cpu[i - 1] = (double)(c1.tv_sec - c0.tv_sec) * 1e3 +
				     (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
		}
	}
	qsort(ms, (size_t)runs, sizeof(double), cmp_d);
	qsort(cpu, (size_t)runs, sizeof(double), cmp_d);
	printf("ms=%.3f cpu_ms=%.3f rows=%zu scanned=%" PRIu64 " granules=%" PRIu64
	       " skipped=%" PRIu64 "\n",
	       ms[runs / 2], cpu[runs / 2], r->nrows, r->stats.rows_scanned,
	       r->stats.granules_total, r->stats.granules_skipped);
	if (getenv("BENCH_SHOW")) {
		struct kp_buf b = {0};
		query_result_write(r, QUERY_CSV, &b);
		fwrite(b.data, 1, KP_MIN(b.len, 2000), stderr);
		buf_free(&b);
	}
	query_result_free(r);
	store_close(st);
	config_free(&cfg);
	return 0;
}

/* Bytes per column over every segment under DIR/events (diagnostics for the format). */
static int cmd_colstats(const char *dir)
{
	static const char *names[SC_NCOLS] = {"ts",   "dur",   "pid",  "tid",  "cpu",
					      "type", "flags", "ret",  "arg0", "arg1",
					      "arg2", "arg3",  "node", "txn"};
	uint64_t tot[SC_NCOLS] = {0}, rows = 0, all = 0, foot = 0;
	char cmd[8400];
	snprintf(cmd, sizeof(cmd), "find '%s/events' -name '*.kps'", dir);
	FILE *p = popen(cmd, "r");
	char path[4096];
	while (p && fgets(path, sizeof(path), p)) {
		path[strcspn(path, "\n")] = '\0';
		struct store__seg *s;
		if (store__seg_open(path, false, &s))
			continue;
		rows += s->n_rows;
		all += s->map_len;
		uint64_t blocks = 0;
		for (uint32_t g = 0; g < s->n_gran; g++)
			for (int c = 0; c < SC_NCOLS; c++) {
				tot[c] += s->g[g].blk_len[c];
				blocks += s->g[g].blk_len[c];
			}
		foot += s->map_len - blocks;
		store__seg_unref(s);
	}
	if (p)
		pclose(p);
	for (int c = 0; c < SC_NCOLS; c++)
		printf("%-6s %8.3f B/row\n", names[c], rows ? (double)tot[c] / (double)rows : 0);
	printf("footer %8.3f B/row (zone maps, blooms, headers)\ntotal  %8.3f B/row over %" PRIu64
	       " rows\n",
	       rows ? (double)foot / (double)rows : 0, rows ? (double)all / (double)rows : 0, rows);
	return 0;
}

/* ------------------------------------------------------------------ send (wire ingest) */

struct sender {
	int fd;
	FILE *in;
	uint64_t frames, events;
	int err, done;
};

/* Writes every frame of the file (without our txn blocks) to the socket, as an agent would. */
static void *send_frames(void *arg)
{
	struct sender *s = arg;
	uint8_t *buf = xmalloc(WIRE_HDR_LEN + WIRE_MAX_BODY);
	static uint8_t tb[65536 * 65];
	struct wire_hdr h;
	uint32_t tl;
	while (fread(buf, 1, WIRE_HDR_LEN, s->in) == WIRE_HDR_LEN) {
		if (wire_hdr_decode(buf, &h) ||
		    fread(buf + WIRE_HDR_LEN, 1, h.body_len, s->in) != h.body_len ||
		    fread(&tl, 4, 1, s->in) != 1 || tl > sizeof(tb) || fread(tb, 1, tl, s->in) != tl) {
			fprintf(stderr, "storebench: bad input at frame %" PRIu64 "\n", s->frames + 1);
			s->err = 1;
			break;
		}
		size_t n = WIRE_HDR_LEN + h.body_len, off = 0;
		while (off < n) {
			ssize_t w = write(s->fd, buf + off, n - off);
			if (w <= 0) {
				perror("storebench: send");
				s->err = 1;
				goto out;
			}
			off += (size_t)w;
		}
		s->events += h.n_events;
		__atomic_store_n(&s->frames, s->frames + 1, __ATOMIC_RELEASE);
	}
out:
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	free(buf);
	return NULL;
}

/* Sends a frames file to kprobed's ingest port and waits for every frame's ack (durable: in
 * its WAL, fsynced). Prints events/s from the first byte sent to the last ack. */
static int cmd_send(int port, const char *path)
{
	struct sender s = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (s.fd < 0 || connect(s.fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("storebench: connect to kprobed's ingest port");
		return 1;
	}
	if (!(s.in = fopen(path, "rb"))) {
		perror(path);
		return 1;
	}
	static char ibuf[1 << 22];
	setvbuf(s.in, ibuf, _IOFBF, sizeof(ibuf));
	uint64_t t0 = now_mono_ns();
	pthread_t th;
	pthread_create(&th, NULL, send_frames, &s);
	uint64_t acked = 0, bad = 0, dup = 0;
	uint8_t ack[WIRE_ACK_LEN];
	size_t got = 0;
	for (;;) {
		if (__atomic_load_n(&s.done, __ATOMIC_ACQUIRE) &&
		    acked == __atomic_load_n(&s.frames, __ATOMIC_ACQUIRE))
			break;
		/* poll, so the end is seen even when the last ack came before the writer finished */
		struct pollfd pf = {.fd = s.fd, .events = POLLIN};
		if (poll(&pf, 1, 50) == 0)
			continue;
		ssize_t r = read(s.fd, ack + got, sizeof(ack) - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got < sizeof(ack))
			continue;
		got = 0;
		uint64_t seq;
		uint32_t st;
		if (wire_ack_decode(ack, &seq, &st)) {
			fprintf(stderr, "storebench: a malformed ack\n");
			bad++;
			break;
		}
		acked++;
		bad += st == WIRE_ACK_BAD;
		dup += st == WIRE_ACK_DUP;
		if (acked % 2000 == 0)
			fprintf(stderr, "storebench: %" PRIu64 " frames acked\n", acked);
		if (st == WIRE_ACK_BAD)
			break;
	}
	uint64_t t1 = now_mono_ns();
	pthread_join(th, NULL);
	close(s.fd);
	fclose(s.in);
	double secs = (double)(t1 - t0) / 1e9;
	printf("events=%" PRIu64 " frames=%" PRIu64 " acked=%" PRIu64 " dup=%" PRIu64
	       " bad=%" PRIu64 " seconds=%.3f events_per_s=%.0f\n",
	       s.events, s.frames, acked, dup, bad, secs, (double)s.events / secs);
	return s.err || bad || acked != s.frames ? 1 : 0;
}

int main(int argc, char **argv)
{
	log_init("storebench");
	kp_malloc_tune(); /* as kprobed runs */
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: storebench gen EVENTS frames|rowbinary|csv FILE PARAMS\n"
		       "       storebench load DIR FILE\n"
		       "       storebench send PORT FILE\n"
		       "       storebench query DIR RUNS SQL\n");
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "gen"))
		return cmd_gen(strtoull(argv[2], NULL, 10), argv[3], argv[4], argv[5]);
	if (argc == 4 && !strcmp(argv[1], "load"))
		return cmd_load(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "send"))
		return cmd_send(atoi(argv[2]), argv[3]);
	if (argc == 3 && !strcmp(argv[1], "colstats"))
		return cmd_colstats(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "query"))
		return cmd_query(argv[2], atoi(argv[3]), argv[4]);
	fprintf(stderr, "usage: storebench gen|load|query ... (--help)\n");
	return 2;
}
