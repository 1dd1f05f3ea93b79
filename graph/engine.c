/*
 * engine.c - the causal engine (contract and edge semantics in engine.h).
 *
 * Three stages, all on the engine thread:
 *
 *   1. index   every event updates bounded in-memory state: per-thread logs of kernel episodes
 *              (slow or failed syscalls, off-CPU, reclaim, fault bursts), per-connection-side
 *              TCP bursts that become inferred requests, tid -> pid, process metadata, memory
 *              activity per process (for reclaim attribution).
 *   2. queue   items that may explain something to someone get queued for analysis: every span,
 *              client requests that were abandoned or slow, syscalls that failed.
 *   3. analyze once an item ended engine.lateMs ago, build its causal subgraph from the index
 *              and write it (one write transaction per window). Graph node ids are cached on
 *              the indexed objects, so a server request shared by several symptoms is written
 *              once.
 *
 * Memory is bounded: episodes by engine.maxEpisodes and engine.horizonSec, requests by a ring,
 * tables by caps with eviction of the least recently seen.
 */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hmap.h"
#include "common/util.h"
#include "graph/engine.h"
#include "graph/gstore.h"
#include "graph/otlp.h"

/* ------------------------------------------------------------------ limits */

#define MAX_PROCS     131072
#define MAX_TIDS      524288
#define MAX_SIDES     262144
#define MAX_FILES     262144
#define REQ_RING      (1u << 18) /* requests remembered */
#define SPAN_RING     (1u << 17) /* spans remembered */
#define QUEUE_BYTES   (256u << 20)
#define ACT_BUCKETS   16 /* memory activity: one bucket per second */
#define BURST_IDLE_NS (1000 * NSEC_PER_MSEC) /* a burst idle this long is over */

/* ------------------------------------------------------------------ input queue */

enum qkind { Q_FRAME = 1, Q_SPANS, Q_SYNC };

struct qitem {
	struct qitem *next;
	int kind;
	uint64_t host;
	uint32_t n;         /* events or spans */
	size_t meta_len;
	size_t bytes;       /* accounted size */
	uint64_t *sync_ack; /* Q_SYNC: set to 1 when done */
	void *data;         /* events then meta, or struct span_in[] */
};

/* A span as the engine keeps it (copied from otlp_span). */
struct span {
	uint8_t trace[16], id[8], parent[8];
	uint64_t start, end;
	uint32_t pid, tid;
	uint8_t status, kind, analyzed;
	char name[96], service[64], status_msg[160], txn[128], host_name[64];
	uint64_t host;  /* resolved agent node id, 0 if unknown */
	uint64_t gnode; /* graph node, 0 until written */
	uint64_t gsym;  /* its symptom node */
};

/* ------------------------------------------------------------------ index types */

struct proc {
	uint64_t host;
	uint32_t pid;
	uint64_t memcg, start_ns, last_seen;
	char comm[16], service[64], cgroup[128];
	uint64_t gnode; /* process node (a culprit) */
	uint64_t act_sec[ACT_BUCKETS];   /* which second each bucket holds */
	uint64_t act_bytes[ACT_BUCKETS]; /* read/write bytes + 4 KiB per fault */
};

struct ep { /* a kernel episode of one thread */
	struct kp_event ev;
	uint64_t gnode; /* syscall node once written */
};

struct tidlog {
	uint64_t host;
	uint32_t pid, tid;
	struct ep *v;
	size_t n, cap;
	uint64_t last_seen;
};

enum role { ROLE_UNKNOWN = 0, ROLE_CLIENT = 1, ROLE_SERVER = 2 };
enum { DIR_SEND = 1, DIR_RECV = 2 };

struct burst {
	uint8_t dir;
	uint32_t n, tid, pid;
	uint64_t first, last_end, bytes;
	uint64_t seq; /* seq of the first byte */
};

struct req {
	uint64_t serial; /* position in the ring; a stale index is detected by it */
	uint64_t host, conn;
	uint32_t pid, tid_req, tid_resp;
	uint16_t lport, rport;
	uint8_t role, done, abandoned, analyzed;
	uint8_t late_link; /* server: its client was analyzed first; link it once it is done */
	uint8_t linked;    /* server: the waited-on edge to its client is written */
	uint64_t start, end;
	uint64_t req_first, req_end, resp_first, resp_end; /* the two bursts */
	uint64_t req_seq, req_bytes, resp_bytes;
	int64_t peer; /* serial of the matched request on the other side, -1 */
	uint64_t gnode, gmsg; /* request node; its tcp message node (client: send, server: recv) */
};

struct side {
	uint64_t host, conn;
	uint16_t lport, rport;
	uint8_t role;
	int64_t cur; /* serial of the open request, -1 */
	struct burst b;
	uint64_t last_seen;
};

struct file {
	char path[256];
};

struct skew {
	uint64_t a, b;   /* host pair, sender -> receiver */
	int64_t min_d;   /* min(recv - send) */
	uint64_t pairs;
};

/* Pending analysis. */
enum item_kind { IT_SPAN = 1, IT_REQ, IT_ERR, IT_LINK };
struct item {
	int kind;
	uint64_t ref;  /* span ring index / req serial / (tidlog id, episode ts) */
	uint64_t host;
	uint32_t tid;
	uint64_t end;
};

struct rule {
	char *pattern, *name;
	int port;
};

struct engine {
	/* config */
	uint64_t window_ns, threshold_ns, late_ns, slow_req_ns, horizon_ns;
	size_t max_episodes;
	int max_steps;
	struct rule *file_rules, *port_rules;
	int n_file_rules, n_port_rules;
	struct gstore *g;

	/* queue */
	pthread_mutex_t mu;
	pthread_cond_t cv, done_cv;
	struct qitem *qhead, *qtail;
	size_t qbytes;
	int stop;
	pthread_t thread;

	/* index (engine thread only) */
	struct hmap procs_by;   /* (host, pid) -> index+1 in procs */
	struct proc *procs;
	size_t n_procs;
	struct hmap tid2pid;    /* (host, tid) -> pid */
	struct hmap tidlogs_by; /* (host, tid) -> index+1 */
	struct tidlog *tidlogs;
	size_t n_tidlogs, cap_tidlogs, episodes;
	struct hmap sides_by;   /* (host ^ lport, conn) -> index+1 */
	struct side *sides;
	size_t n_sides, cap_sides;
	struct hmap reqmatch;   /* (conn, req_seq) -> serial+1 */
	struct req *reqs;       /* ring of REQ_RING */
	uint64_t next_req;
	struct hmap files_by;   /* (host ^ pid<<32 ^ fd, inode) -> index+1 */
	struct file *files;
	size_t n_files;
	struct hmap hosts;      /* host -> 1; names in node_names */
	char (*node_names)[64];
	uint64_t *node_ids;
	size_t n_nodes_known;
	struct span *spans;     /* ring of SPAN_RING */
	uint64_t next_span;
	struct hmap span_by_id; /* (span id, trace lo) -> ring index+1 */
	struct skew *skews;
	size_t n_skews;
	uint64_t ref_host;

	struct item *items;
	size_t n_items, cap_items;
	uint64_t now; /* realtime at the current step */
	/* Per agent node: how far its events have arrived (max event end), and when it last
	 * sent (wall clock). An item is analyzed once every active node's events have arrived up
	 * to engine.lateMs past its end: a starved agent delays analysis instead of hiding causes. */
	struct hmap wm; /* host -> index into wm_v */
	struct hostwm {
		uint64_t host, mark, seen;
	} *wm_v;
	size_t n_wm;
	uint64_t sync_all_before; /* engine_sync: analyze items regardless of lateness */

	/* the current write transaction */
	struct gstore_wtxn *w;

	pthread_mutex_t stats_mu;
	struct engine_stats st;
};

/* ------------------------------------------------------------------ small helpers */

static uint64_t clip_overlap(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
	uint64_t lo = KP_MAX(a0, b0), hi = KP_MIN(a1, b1);
	return hi > lo ? hi - lo : 0;
}

static uint64_t ev_end(const struct kp_event *ev)
{
	return ev->ts_ns + ev->dur_ns;
}

static void hexs(char *out, const uint8_t *b, size_t n)
{
	static const char h[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = h[b[i] >> 4];
		out[2 * i + 1] = h[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Copies src into dst[cap], cut to fit, always NUL terminated. */
static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strnlen(src, cap - 1) : 0;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

static const char *syscall_name(uint64_t nr, int type)
{
	switch (nr) {
	case 0:
		return "read";
	case 1:
		return "write";
	case 17:
		return "pread64";
	case 18:
		return "pwrite64";
	case 19:
		return "readv";
	case 20:
		return "writev";
	case 44:
		return "sendto";
	case 45:
		return "recvfrom";
	case 46:
		return "sendmsg";
	case 47:
		return "recvmsg";
	case 74:
		return "fsync";
	case 75:
		return "fdatasync";
	}
	return type == KP_READ ? "read" : type == KP_WRITE ? "write" : "fsync";
}

/* ------------------------------------------------------------------ rules */

static void rules_parse(const struct kp_strlist *l, struct rule **out, int *n, int ports)
{
	*out = xcalloc((size_t)l->n + 1, sizeof(**out));
	*n = 0;
	for (int i = 0; i < l->n; i++) {
		const char *eq = strrchr(l->v[i], '=');
		if (!eq || eq == l->v[i] || !eq[1]) {
			log_warn("engine: rule '%s' is not PATTERN=name; ignored", l->v[i]);
			continue;
		}
		struct rule *r = &(*out)[(*n)++];
		r->pattern = xstrndup(l->v[i], (size_t)(eq - l->v[i]));
		r->name = xstrdup(eq + 1);
		r->port = ports ? atoi(r->pattern) : 0;
	}
}

static const char *rule_for_path(const struct engine *e, const char *path)
{
	for (int i = 0; i < e->n_file_rules; i++)
		if (fnmatch(e->file_rules[i].pattern, path, 0) == 0)
			return e->file_rules[i].name;
	return NULL;
}

static const char *rule_for_port(const struct engine *e, int port)
{
	for (int i = 0; i < e->n_port_rules; i++)
		if (e->port_rules[i].port == port)
			return e->port_rules[i].name;
	return NULL;
}

/* ------------------------------------------------------------------ processes, threads */

static struct proc *proc_get(struct engine *e, uint64_t host, uint32_t pid, int create)
{
	uint64_t *v = hmap_get(&e->procs_by, host, pid);
	if (v)
		return &e->procs[*v - 1];
	if (!create)
		return NULL;
	if (e->n_procs == MAX_PROCS) {
		/* Full: forget the least recently seen (a linear pass, rare). */
		size_t victim = 0;
		for (size_t i = 1; i < e->n_procs; i++)
			if (e->procs[i].last_seen < e->procs[victim].last_seen)
				victim = i;
		struct proc *p = &e->procs[victim];
		hmap_del(&e->procs_by, p->host, p->pid);
		e->procs[victim] = e->procs[--e->n_procs];
		if (victim < e->n_procs)
			*hmap_get(&e->procs_by, e->procs[victim].host, e->procs[victim].pid) =
				victim + 1;
	}
	struct proc *p = &e->procs[e->n_procs++];
	memset(p, 0, sizeof(*p));
	p->host = host;
	p->pid = pid;
	*hmap_put(&e->procs_by, host, pid, NULL) = e->n_procs;
	return p;
}

static uint32_t tid_to_pid(struct engine *e, uint64_t host, uint32_t tid)
{
	uint64_t *v = hmap_get(&e->tid2pid, host, tid);
	return v ? (uint32_t)*v : 0;
}

static void activity_add(struct proc *p, uint64_t ts, uint64_t bytes)
{
	uint64_t sec = ts / NSEC_PER_SEC;
	unsigned b = (unsigned)(sec % ACT_BUCKETS);
	if (p->act_sec[b] != sec) {
		p->act_sec[b] = sec;
		p->act_bytes[b] = 0;
	}
	p->act_bytes[b] += bytes;
}

static uint64_t activity_sum(const struct proc *p, uint64_t from, uint64_t to)
{
	uint64_t s = 0, f = from / NSEC_PER_SEC, t = to / NSEC_PER_SEC;
	for (unsigned b = 0; b < ACT_BUCKETS; b++)
		if (p->act_sec[b] >= f && p->act_sec[b] <= t)
			s += p->act_bytes[b];
	return s;
}

/* ------------------------------------------------------------------ per-thread episode logs */

static struct tidlog *tidlog_get(struct engine *e, uint64_t host, uint32_t tid, uint32_t pid)
{
	int created;
	uint64_t *v = hmap_put(&e->tidlogs_by, host, tid, &created);
	if (!created)
		return &e->tidlogs[*v - 1];
	if (e->n_tidlogs == e->cap_tidlogs) {
		e->cap_tidlogs = e->cap_tidlogs ? e->cap_tidlogs * 2 : 1024;
		e->tidlogs = xrealloc(e->tidlogs, e->cap_tidlogs * sizeof(*e->tidlogs));
	}
	struct tidlog *t = &e->tidlogs[e->n_tidlogs++];
	memset(t, 0, sizeof(*t));
	t->host = host;
	t->tid = tid;
	t->pid = pid;
	*v = e->n_tidlogs;
	return t;
}

static struct tidlog *tidlog_find(struct engine *e, uint64_t host, uint32_t tid)
{
	uint64_t *v = hmap_get(&e->tidlogs_by, host, tid);
	return v ? &e->tidlogs[*v - 1] : NULL;
}

static void tidlog_add(struct engine *e, const struct kp_event *ev, uint64_t host)
{
	struct tidlog *t = tidlog_get(e, host, ev->tid, ev->pid);
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	t->v[t->n].ev = *ev;
	t->v[t->n].gnode = 0;
	t->n++;
	t->last_seen = e->now;
	e->episodes++;
}

/*
 * Drops episodes that ended before cutoff. Logs are in arrival order, which is end order up to
 * the agent's batching: a prefix scan is exact enough, and what remains is bounded by the
 * horizon anyway.
 */
static void tidlogs_expire(struct engine *e, uint64_t cutoff)
{
	for (size_t i = 0; i < e->n_tidlogs; i++) {
		struct tidlog *t = &e->tidlogs[i];
		size_t k = 0;
		while (k < t->n && ev_end(&t->v[k].ev) < cutoff)
			k++;
		if (k) {
			memmove(t->v, t->v + k, (t->n - k) * sizeof(*t->v));
			t->n -= k;
			e->episodes -= k;
		}
	}
	/* Threads with empty logs that were not seen for a horizon go. */
	for (size_t i = 0; i < e->n_tidlogs;) {
		struct tidlog *t = &e->tidlogs[i];
		if (t->n == 0 && t->last_seen + e->horizon_ns < e->now) {
			hmap_del(&e->tidlogs_by, t->host, t->tid);
			free(t->v);
			e->tidlogs[i] = e->tidlogs[--e->n_tidlogs];
			if (i < e->n_tidlogs)
				*hmap_get(&e->tidlogs_by, e->tidlogs[i].host, e->tidlogs[i].tid) = i + 1;
			continue;
		}
		i++;
	}
}

/* Keeps the total under max_episodes by expiring progressively newer cutoffs. */
static void episodes_bound(struct engine *e)
{
	uint64_t span = e->horizon_ns;
	while (e->episodes > e->max_episodes && span > NSEC_PER_SEC) {
		span /= 2;
		tidlogs_expire(e, e->now - span);
	}
}

/* ------------------------------------------------------------------ requests from TCP */

static struct req *req_by_serial(struct engine *e, int64_t serial)
{
	if (serial < 0)
		return NULL;
	struct req *r = &e->reqs[(uint64_t)serial % REQ_RING];
	return r->serial == (uint64_t)serial && r->start ? r : NULL;
}

static struct req *req_new(struct engine *e)
{
	uint64_t s = e->next_req++;
	struct req *r = &e->reqs[s % REQ_RING];
	if (r->start) /* overwriting an old one: unlink its match entry */
		hmap_del(&e->reqmatch, r->conn, r->req_seq ^ ((uint64_t)r->role << 62));
	memset(r, 0, sizeof(*r));
	r->serial = s;
	r->peer = -1;
	return r;
}

static void queue_item(struct engine *e, int kind, uint64_t ref, uint64_t host, uint32_t tid,
		       uint64_t end)
{
	if (e->n_items == e->cap_items) {
		e->cap_items = e->cap_items ? e->cap_items * 2 : 256;
		e->items = xrealloc(e->items, e->cap_items * sizeof(*e->items));
	}
	e->items[e->n_items++] = (struct item){kind, ref, host, tid, end};
}

static void skew_observe(struct engine *e, uint64_t a, uint64_t b, int64_t d)
{
	for (size_t i = 0; i < e->n_skews; i++) {
		struct skew *s = &e->skews[i];
		if (s->a == a && s->b == b) {
			if (d < s->min_d)
				s->min_d = d;
			s->pairs++;
			return;
		}
	}
	if (e->n_skews >= 4096)
		return;
	e->skews = xrealloc(e->skews, (e->n_skews + 1) * sizeof(*e->skews));
	e->skews[e->n_skews++] = (struct skew){a, b, d, 1};
}

/* Links a request to the one on the other side carrying the same bytes (conn + seq). */
static void req_match(struct engine *e, struct req *r)
{
	int other_role = r->role == ROLE_CLIENT ? ROLE_SERVER : ROLE_CLIENT;
	uint64_t other = r->req_seq ^ ((uint64_t)other_role << 62);
	uint64_t *v = hmap_get(&e->reqmatch, r->conn, other);
	/*
	 * A receive that also consumed the peer's FIN reports a sequence one higher: the kernel
	 * advances copied_seq past the FIN in the same recvmsg, and the probe takes
	 * copied_seq - bytes as the first byte. A client that gave up (and closed) before the
	 * server read its request looks exactly like that.
	 */
	if (!v) {
		uint64_t alt = r->role == ROLE_SERVER ? r->req_seq - 1 : r->req_seq + 1;
		v = hmap_get(&e->reqmatch, r->conn, (alt & 0xffffffffull) ^ ((uint64_t)other_role << 62));
	}
	if (v) {
		struct req *p = req_by_serial(e, (int64_t)*v - 1);
		if (p && p->role != r->role) {
			p->peer = (int64_t)r->serial;
			r->peer = (int64_t)p->serial;
			pthread_mutex_lock(&e->stats_mu);
			e->st.matched++;
			pthread_mutex_unlock(&e->stats_mu);
			struct req *c = r->role == ROLE_CLIENT ? r : p, *s = r->role == ROLE_CLIENT ? p : r;
			if (c->gnode)
				s->late_link = 1;
			if (c->gnode && s->done)
				queue_item(e, IT_LINK, s->serial, s->host, s->tid_req, s->end);
			if (c->host != s->host)
				skew_observe(e, c->host, s->host,
					     (int64_t)s->req_first - (int64_t)c->req_first);
			if (c->resp_first && s->resp_first && c->host != s->host)
				skew_observe(e, s->host, c->host,
					     (int64_t)c->resp_first - (int64_t)s->resp_first);
			return;
		}
	}
	*hmap_put(&e->reqmatch, r->conn, r->req_seq ^ ((uint64_t)r->role << 62), NULL) =
		r->serial + 1;
}

static void req_finish(struct engine *e, struct req *r, uint64_t end, int abandoned)
{
	r->done = 1;
	r->abandoned = (uint8_t)abandoned;
	r->end = end > r->start ? end : r->start;
	pthread_mutex_lock(&e->stats_mu);
	e->st.requests++;
	pthread_mutex_unlock(&e->stats_mu);
	/* A client request that was abandoned or slow explains itself to someone: analyze it.
	 * (Requests inside spans are analyzed through their span.) */
	/* A client that waited engine.slowRequestMs or more, answered or not, is a symptom; one
	 * that closed sooner without waiting for an answer (fire and forget) is not. */
	if (r->role == ROLE_CLIENT && r->end - r->start >= e->slow_req_ns)
		queue_item(e, IT_REQ, r->serial, r->host, r->tid_req, r->end);
	if (r->role == ROLE_SERVER && r->late_link)
		queue_item(e, IT_LINK, r->serial, r->host, r->tid_req, r->end);
}

/* A burst on a side is over (the other direction started, the connection closed, or idle). */
static void burst_close(struct engine *e, struct side *s)
{
	struct burst *b = &s->b;
	if (!b->n)
		return;
	if (s->role == ROLE_UNKNOWN)
		s->role = b->dir == DIR_SEND ? ROLE_CLIENT : ROLE_SERVER;
	/* The burst that opens a request: client sends, server receives. */
	int opens = (s->role == ROLE_CLIENT) == (b->dir == DIR_SEND);
	struct req *cur = req_by_serial(e, s->cur);
	if (opens) {
		if (cur && !cur->done) /* a request that never got its response: it lasted until
					* the next one began */
			req_finish(e, cur, b->first, s->role == ROLE_CLIENT);
		struct req *r = req_new(e);
		r->host = s->host;
		r->conn = s->conn;
		r->pid = b->pid;
		r->tid_req = b->tid;
		r->lport = s->lport;
		r->rport = s->rport;
		r->role = s->role;
		r->start = r->req_first = b->first;
		r->req_end = r->end = b->last_end;
		r->req_seq = b->seq;
		r->req_bytes = b->bytes;
		s->cur = (int64_t)r->serial;
		req_match(e, r);
	} else if (cur && !cur->done) {
		cur->resp_first = b->first;
		cur->resp_end = b->last_end;
		cur->resp_bytes = b->bytes;
		cur->tid_resp = b->tid;
		req_finish(e, cur, b->last_end, 0);
		s->cur = -1;
	}
	memset(b, 0, sizeof(*b));
}

static struct side *side_get(struct engine *e, uint64_t host, uint64_t conn, uint16_t lport,
			     uint16_t rport, int create)
{
	uint64_t a = host ^ ((uint64_t)lport << 48);
	uint64_t *v = hmap_get(&e->sides_by, a, conn);
	if (v)
		return &e->sides[*v - 1];
	if (!create)
		return NULL;
	if (e->n_sides >= MAX_SIDES)
		return NULL; /* counted as unmatched; idle sides are reaped in ticks */
	if (e->n_sides == e->cap_sides) {
		e->cap_sides = e->cap_sides ? e->cap_sides * 2 : 1024;
		e->sides = xrealloc(e->sides, e->cap_sides * sizeof(*e->sides));
	}
	struct side *s = &e->sides[e->n_sides++];
	memset(s, 0, sizeof(*s));
	s->host = host;
	s->conn = conn;
	s->lport = lport;
	s->rport = rport;
	s->cur = -1;
	*hmap_put(&e->sides_by, a, conn, NULL) = e->n_sides;
	return s;
}

static void side_drop(struct engine *e, struct side *s)
{
	size_t i = (size_t)(s - e->sides);
	hmap_del(&e->sides_by, s->host ^ ((uint64_t)s->lport << 48), s->conn);
	e->sides[i] = e->sides[--e->n_sides];
	if (i < e->n_sides) {
		struct side *m = &e->sides[i];
		*hmap_get(&e->sides_by, m->host ^ ((uint64_t)m->lport << 48), m->conn) = i + 1;
	}
}

/*
 * The connection side is over: close its burst, finish its open request at the close. A client
 * closing without its answer abandoned the request; a server closing without answering held it
 * until then (its answer may have drawn a reset: the peer had gone).
 */
static void side_close(struct engine *e, struct side *s, uint64_t ts)
{
	burst_close(e, s);
	struct req *cur = req_by_serial(e, s->cur);
	if (cur && !cur->done)
		req_finish(e, cur, ts, s->role == ROLE_CLIENT);
	side_drop(e, s);
}

static void tcp_event(struct engine *e, uint64_t host, const struct kp_event *ev)
{
	uint16_t lport = (uint16_t)(ev->arg[3] & 0xffff), rport = (uint16_t)(ev->arg[3] >> 16);
	struct side *s = side_get(e, host, ev->arg[0], lport, rport, 1);
	if (!s)
		return;
	s->last_seen = e->now;
	uint8_t dir = ev->type == KP_TCP_SEND ? DIR_SEND : DIR_RECV;
	if (s->b.n && s->b.dir != dir)
		burst_close(e, s);
	if (!s->b.n) {
		s->b.dir = dir;
		s->b.first = ev->ts_ns;
		s->b.seq = ev->arg[2];
		s->b.tid = ev->tid;
		s->b.pid = ev->pid;
	}
	s->b.n++;
	s->b.bytes += ev->arg[1];
	uint64_t end = ev_end(ev);
	if (end > s->b.last_end)
		s->b.last_end = end;
}

static void conn_event(struct engine *e, uint64_t host, const struct kp_event *ev)
{
	/*
	 * TCP states: FIN_WAIT1 4, CLOSE 7, CLOSE_WAIT 8, LAST_ACK 9. This side closing
	 * (FIN_WAIT1, LAST_ACK, CLOSE) ends its exchange. CLOSE_WAIT only says the peer closed: a
	 * server still reads the request and answers after it; a client waiting for an answer
	 * will not get one.
	 */
	uint64_t ns = ev->arg[2];
	if (ns != 4 && ns != 7 && ns != 8 && ns != 9)
		return;
	uint16_t lport = (uint16_t)(ev->arg[3] & 0xffff), rport = (uint16_t)((ev->arg[3] >> 16) & 0xffff);
	struct side *s = side_get(e, host, ev->arg[0], lport, rport, 0);
	if (!s)
		return;
	if (ns == 8) {
		if (s->role == ROLE_CLIENT) {
			burst_close(e, s);
			struct req *cur = req_by_serial(e, s->cur);
			if (cur && !cur->done) {
				req_finish(e, cur, ev->ts_ns, 1);
				s->cur = -1;
			}
		}
		return;
	}
	side_close(e, s, ev->ts_ns);
}

/* Sides whose burst is idle are closed (keep-alive connections between requests). */
#define REQ_QUIET_NS (10 * NSEC_PER_SEC) /* a server request this quiet will not be answered */

static void sides_idle(struct engine *e)
{
	for (size_t i = 0; i < e->n_sides;) {
		struct side *s = &e->sides[i];
		if (s->b.n && s->b.last_end + BURST_IDLE_NS < e->now)
			burst_close(e, s);
		/* A server that never answers (it died, or its answer was lost): the request ends
		 * where its side went quiet, so its client can still be linked to it. */
		struct req *cur = req_by_serial(e, s->cur);
		if (cur && !cur->done && s->role == ROLE_SERVER && s->last_seen + REQ_QUIET_NS < e->now) {
			req_finish(e, cur, cur->req_end, 0);
			s->cur = -1;
		}
		if (!s->b.n && s->cur < 0 && s->last_seen + e->horizon_ns < e->now) {
			side_drop(e, s);
			continue;
		}
		i++;
	}
}

/* ------------------------------------------------------------------ indexing a frame */

static int is_file_io_error(int ret)
{
	return ret == -5 /* EIO */ || ret == -28 /* ENOSPC */ || ret == -122 /* EDQUOT */ ||
	       ret == -30 /* EROFS */;
}

static void watermark(struct engine *e, uint64_t host, uint64_t end)
{
	int created;
	uint64_t *v = hmap_put(&e->wm, host, 0, &created);
	if (created) {
		e->wm_v = xrealloc(e->wm_v, (e->n_wm + 1) * sizeof(*e->wm_v));
		e->wm_v[e->n_wm] = (struct hostwm){host, 0, 0};
		*v = e->n_wm++;
	}
	struct hostwm *w = &e->wm_v[*v];
	if (end > w->mark)
		w->mark = end;
	w->seen = e->now;
}

/* The stream time every node that sent in the last few seconds has delivered up to. */
static uint64_t global_watermark(struct engine *e)
{
	uint64_t low = UINT64_MAX;
	for (size_t i = 0; i < e->n_wm; i++)
		if (e->wm_v[i].seen + 3 * NSEC_PER_SEC >= e->now && e->wm_v[i].mark < low)
			low = e->wm_v[i].mark;
	return low == UINT64_MAX ? e->now : low;
}

static void index_event(struct engine *e, uint64_t host, const struct kp_event *ev)
{
	if (ev->tid && ev->pid && ev->type != KP_CONN)
		*hmap_put(&e->tid2pid, host, ev->tid, NULL) = ev->pid;
	struct proc *p = NULL;
	switch (ev->type) {
	case KP_READ:
	case KP_WRITE:
	case KP_FSYNC:
		if (ev->ret > 0 && ev->type != KP_FSYNC && (p = proc_get(e, host, ev->pid, 1)))
			activity_add(p, ev->ts_ns, (uint64_t)ev->ret);
		if (ev->dur_ns >= e->threshold_ns || (ev->ret < 0 && is_file_io_error(ev->ret)))
			tidlog_add(e, ev, host);
		if (ev->ret < 0 && is_file_io_error(ev->ret))
			queue_item(e, IT_ERR, ev->ts_ns, host, ev->tid, ev_end(ev));
		break;
	case KP_OFFCPU:
	case KP_RECLAIM:
		tidlog_add(e, ev, host);
		if (ev->type == KP_RECLAIM && (p = proc_get(e, host, ev->pid, 1)))
			activity_add(p, ev->ts_ns, ev->arg[0] * 4096);
		break;
	case KP_FAULTS:
		if ((p = proc_get(e, host, ev->pid, 1)))
			activity_add(p, ev->ts_ns, ev->arg[0] * 4096);
		if (ev->dur_ns >= e->threshold_ns)
			tidlog_add(e, ev, host);
		break;
	case KP_TCP_SEND:
	case KP_TCP_RECV:
		tcp_event(e, host, ev);
		break;
	case KP_CONN:
		conn_event(e, host, ev);
		break;
	case KP_PROC:
		if (ev->arg[0] == KP_PROC_EXEC && (p = proc_get(e, host, ev->pid, 1))) {
			memcpy(p->comm, &ev->arg[2], 15);
			p->comm[15] = '\0';
		}
		break;
	default:
		break;
	}
	if (p)
		p->last_seen = e->now;
}

static void index_meta(struct engine *e, uint64_t host, const void *meta, size_t len)
{
	struct wire_meta_iter it = {meta, (const uint8_t *)meta + len};
	uint16_t kind, plen;
	const void *pl;
	while (wire_meta_next(&it, &kind, &pl, &plen)) {
		if (kind == WIRE_META_PROC) {
			struct wire_proc wp;
			if (wire_proc_decode(pl, plen, &wp) < 0)
				continue;
			struct proc *p = proc_get(e, host, wp.pid, 1);
			copy_str(p->comm, sizeof(p->comm), wp.comm);
			copy_str(p->service, sizeof(p->service), wp.service);
			copy_str(p->cgroup, sizeof(p->cgroup), wp.cgroup);
			p->memcg = wp.cgroup_id;
			p->start_ns = wp.start_ns;
			p->last_seen = e->now;
		} else if (kind == WIRE_META_FILE) {
			struct wire_file f;
			if (wire_file_decode(pl, plen, &f) < 0 || e->n_files >= MAX_FILES)
				continue;
			int created;
			uint64_t *v = hmap_put(&e->files_by, host ^ ((uint64_t)f.pid << 32) ^ f.fd,
					       f.inode, &created);
			if (created) {
				*v = ++e->n_files;
				e->files = xrealloc(e->files, e->n_files * sizeof(*e->files));
			}
			copy_str(e->files[*v - 1].path, sizeof(e->files[0].path), f.path);
		} else if (kind == WIRE_META_NODE) {
			char name[64], kernel[64];
			if (wire_node_decode(pl, plen, name, sizeof(name), kernel, sizeof(kernel)) < 0)
				continue;
			int created;
			uint64_t *v = hmap_put(&e->hosts, host, 0, &created);
			if (created) {
				e->node_names = xrealloc(e->node_names,
							 (e->n_nodes_known + 1) * sizeof(*e->node_names));
				e->node_ids = xrealloc(e->node_ids,
						       (e->n_nodes_known + 1) * sizeof(*e->node_ids));
				*v = e->n_nodes_known++;
				if (!e->ref_host)
					e->ref_host = host;
			}
			copy_str(e->node_names[*v], 64, name);
			e->node_ids[*v] = host;
		}
	}
}

static const char *file_path(struct engine *e, uint64_t host, const struct kp_event *ev)
{
	uint64_t *v = hmap_get(&e->files_by, host ^ ((uint64_t)ev->pid << 32) ^ ev->arg[0],
			       ev->arg[3]);
	return v ? e->files[*v - 1].path : NULL;
}

/* ------------------------------------------------------------------ spans */

static void index_span(struct engine *e, const struct span *in)
{
	uint64_t slot = e->next_span++ % SPAN_RING;
	struct span *s = &e->spans[slot];
	if (s->end) {
		uint64_t id, lo;
		memcpy(&id, s->id, 8);
		memcpy(&lo, s->trace, 8);
		hmap_del(&e->span_by_id, id, lo);
	}
	*s = *in;
	/* Which agent node is the span's host? By name, else the node where its pid lives. */
	for (size_t i = 0; i < e->n_nodes_known && !s->host; i++)
		if (s->host_name[0] && strcmp(e->node_names[i], s->host_name) == 0)
			s->host = e->node_ids[i];
	if (!s->host && s->pid) {
		for (size_t i = 0; i < e->n_procs; i++)
			if (e->procs[i].pid == s->pid)
				s->host = e->procs[i].host;
	}
	uint64_t id, lo;
	memcpy(&id, s->id, 8);
	memcpy(&lo, s->trace, 8);
	*hmap_put(&e->span_by_id, id, lo, NULL) = slot + 1;
	queue_item(e, IT_SPAN, slot, s->host, s->tid, s->end);
}

/* ------------------------------------------------------------------ graph writing */

static int g_node(struct engine *e, struct gstore_node *n, uint64_t *id)
{
	int r = gstore_node_add(e->w, n, id);
	if (r < 0)
		return r;
	pthread_mutex_lock(&e->stats_mu);
	e->st.nodes++;
	if (n->kind == GN_SYMPTOM)
		e->st.symptoms++;
	pthread_mutex_unlock(&e->stats_mu);
	return 0;
}

static void g_edge(struct engine *e, uint64_t src, uint64_t dst, int kind, uint64_t weight,
		   int always)
{
	if (!src || !dst || src == dst || (!always && weight < e->threshold_ns))
		return;
	struct gstore_edge ed = {src, dst, weight, (uint8_t)kind};
	if (gstore_edge_add(e->w, &ed) == 0) {
		pthread_mutex_lock(&e->stats_mu);
		e->st.edges++;
		pthread_mutex_unlock(&e->stats_mu);
	}
}

static void g_key(struct engine *e, const char *key, uint64_t id)
{
	size_t l = strlen(key);
	if (l && l <= GSTORE_KEY_MAX && id)
		gstore_key_add(e->w, key, l, id);
}

static void labels_comm(struct engine *e, struct gstore_labels *l, uint64_t host, uint32_t pid,
			const char **service)
{
	struct proc *p = proc_get(e, host, pid, 0);
	if (p && p->comm[0])
		gstore_labels_add(l, "comm", p->comm);
	*service = p && p->service[0] ? p->service : "";
}

/* The process node of a culprit, written once per (host, pid) and reused. */
static uint64_t proc_node(struct engine *e, uint64_t host, uint32_t pid, uint64_t t0, uint64_t t1)
{
	struct proc *p = proc_get(e, host, pid, 1);
	if (p->gnode)
		return p->gnode;
	struct gstore_labels l = {0};
	char buf[32];
	const char *service;
	labels_comm(e, &l, host, pid, &service);
	if (p->cgroup[0])
		gstore_labels_add(&l, "cgroup", p->cgroup);
	snprintf(buf, sizeof(buf), "%u", pid);
	gstore_labels_add(&l, "text", p->comm[0] ? p->comm : buf);
	struct gstore_node n = {.kind = GN_PROCESS,
				.pid = pid,
				.tid = pid,
				.host = host,
				.start_ns = t0,
				.end_ns = t1,
				.service = service,
				.labels = l.buf,
				.labels_len = l.len};
	if (g_node(e, &n, &p->gnode) < 0)
		return 0;
	snprintf(buf, sizeof(buf), "pid:%u", pid);
	g_key(e, buf, p->gnode);
	return p->gnode;
}

/* ------------------------------------------------------------------ analysis: kernel causes */

enum mech { M_PREEMPT = 1, M_RECLAIM, M_FAULTS };

struct cause {
	int mech;
	uint32_t culprit_pid, culprit_tid;
	uint64_t total, first, last;
	uint32_t episodes;
};

static void cause_add(struct cause *cs, int *n, int max, int mech, uint32_t pid, uint32_t tid,
		      uint64_t w, uint64_t t0, uint64_t t1)
{
	for (int i = 0; i < *n; i++) {
		if (cs[i].mech == mech && cs[i].culprit_pid == pid &&
		    (pid || cs[i].culprit_tid == tid)) {
			cs[i].total += w;
			cs[i].episodes++;
			cs[i].first = KP_MIN(cs[i].first, t0);
			cs[i].last = KP_MAX(cs[i].last, t1);
			return;
		}
	}
	if (*n < max)
		cs[(*n)++] = (struct cause){mech, pid, tid, w, t0, t1, 1};
}

/* The heaviest memory user of memcg around [t0, t1], other than the victim. */
static uint32_t memory_culprit(struct engine *e, uint64_t host, uint64_t memcg, uint32_t victim,
			       uint64_t t0, uint64_t t1)
{
	uint32_t best = 0;
	uint64_t best_w = 0;
	for (size_t i = 0; i < e->n_procs; i++) {
		struct proc *p = &e->procs[i];
		if (p->host != host || p->pid == victim || (memcg && p->memcg != memcg))
			continue;
		uint64_t w = activity_sum(p, t0 > 2 * NSEC_PER_SEC ? t0 - 2 * NSEC_PER_SEC : 0, t1);
		if (w > best_w) {
			best_w = w;
			best = p->pid;
		}
	}
	return best ? best : victim;
}

/*
 * The kernel causes of a thread's delay inside [t0, t1], aggregated per mechanism and culprit:
 * reclaim stalls (attributed to the heaviest memory user of the memory cgroup), time preempted
 * or waiting in the run queue (attributed to the task that held the CPU), fault bursts (the
 * thread itself). Off-CPU episodes inside a reclaim stall are part of the stall.
 */
static int kernel_causes(struct engine *e, struct tidlog *t, uint64_t t0, uint64_t t1,
			 struct cause *cs, int max)
{
	int n = 0;
	if (!t)
		return 0;
	uint64_t rc_lo[64], rc_hi[64];
	int nrc = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct kp_event *ev = &t->v[i].ev;
		if (ev->type != KP_RECLAIM)
			continue;
		uint64_t w = clip_overlap(ev->ts_ns, ev_end(ev), t0, t1);
		if (!w)
			continue;
		uint32_t culprit = memory_culprit(e, t->host, ev->arg[2], t->pid, ev->ts_ns, ev_end(ev));
		cause_add(cs, &n, max, M_RECLAIM, culprit, 0, w, ev->ts_ns, ev_end(ev));
		if (nrc < 64) {
			rc_lo[nrc] = ev->ts_ns;
			rc_hi[nrc++] = ev_end(ev);
		}
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct kp_event *ev = &t->v[i].ev;
		if (ev->type == KP_OFFCPU) {
			uint64_t end = ev_end(ev);
			if (!clip_overlap(ev->ts_ns, end, t0, t1))
				continue;
			int inside = 0;
			for (int k = 0; k < nrc && !inside; k++)
				inside = ev->ts_ns >= rc_lo[k] && end <= rc_hi[k];
			if (inside)
				continue;
			/* Preempted: all of it was waiting for the CPU. Blocked: only the run-queue
			 * wait after the wake-up (the rest was the thread's own wait). */
			uint64_t wait = (ev->arg[0] & 0xff) == KP_OFFCPU_PREEMPTED ? ev->dur_ns
										  : ev->arg[2];
			uint64_t w0 = end > wait ? end - wait : ev->ts_ns;
			uint64_t w = clip_overlap(w0, end, t0, t1);
			if (w < 1000)
				continue;
			uint32_t holder = (uint32_t)ev->arg[3];
			if (!holder)
				continue; /* the CPU was idle: a wake-up latency, not contention */
			uint32_t hpid = tid_to_pid(e, t->host, holder);
			cause_add(cs, &n, max, M_PREEMPT, hpid, holder, w, w0, end);
		} else if (ev->type == KP_FAULTS) {
			uint64_t w = clip_overlap(ev->ts_ns, ev_end(ev), t0, t1);
			if (w)
				cause_add(cs, &n, max, M_FAULTS, t->pid, t->tid, w, ev->ts_ns,
					  ev_end(ev));
		}
	}
	return n;
}

/* Writes the cause nodes of [t0, t1] on thread t, each delaying node `victim`. */
static void write_causes(struct engine *e, struct tidlog *t, uint64_t t0, uint64_t t1,
			 uint64_t victim)
{
	struct cause cs[32];
	int n = kernel_causes(e, t, t0, t1, cs, 32);
	for (int i = 0; i < n; i++) {
		struct cause *c = &cs[i];
		if (c->total < e->threshold_ns)
			continue;
		struct proc *cp = c->culprit_pid ? proc_get(e, t->host, c->culprit_pid, 0) : NULL;
		struct gstore_labels l = {0};
		char buf[192], who[64];
		if (cp && cp->comm[0])
			snprintf(who, sizeof(who), "%s PID %u", cp->comm, c->culprit_pid);
		else if (c->culprit_pid)
			snprintf(who, sizeof(who), "PID %u", c->culprit_pid);
		else
			snprintf(who, sizeof(who), "TID %u", c->culprit_tid);
		const char *mech = c->mech == M_PREEMPT	  ? "preemption"
				   : c->mech == M_RECLAIM ? "reclaim"
							  : "faults";
		gstore_labels_add(&l, "mechanism", mech);
		if (c->mech == M_PREEMPT)
			snprintf(buf, sizeof(buf), "KERNEL: preemption by %s", who);
		else if (c->mech == M_RECLAIM)
			snprintf(buf, sizeof(buf), "KERNEL: memory pressure (reclaim) from %s", who);
		else
			snprintf(buf, sizeof(buf), "KERNEL: page-fault burst");
		gstore_labels_add(&l, "text", buf);
		snprintf(buf, sizeof(buf), "%u", c->episodes);
		gstore_labels_add(&l, "episodes", buf);
		if (c->culprit_pid) {
			snprintf(buf, sizeof(buf), "%u", c->culprit_pid);
			gstore_labels_add(&l, "culprit_pid", buf);
			if (cp && cp->comm[0])
				gstore_labels_add(&l, "culprit_comm", cp->comm);
		}
		const char *service;
		labels_comm(e, &l, t->host, t->pid, &service);
		struct gstore_node nd = {.kind = c->mech == M_PREEMPT	  ? GN_OFFCPU
						 : c->mech == M_RECLAIM ? GN_RECLAIM
									: GN_FAULTS,
					 .pid = t->pid,
					 .tid = t->tid,
					 .host = t->host,
					 .start_ns = c->first,
					 .end_ns = KP_MAX(c->first, c->last),
					 .weight_ns = c->total,
					 .service = service,
					 .labels = l.buf,
					 .labels_len = l.len};
		uint64_t id;
		if (g_node(e, &nd, &id) < 0)
			continue;
		g_edge(e, id, victim, GE_DELAYED_BY, c->total, 0);
		if (c->culprit_pid) {
			uint64_t pn = proc_node(e, t->host, c->culprit_pid, c->first, c->last);
			g_edge(e, pn, id,
			       c->mech == M_RECLAIM ? GE_MEMORY_PRESSURE_FROM : GE_PREEMPTED_BY,
			       c->total, 0);
		}
	}
}

/* The syscall node of episode ep (written once), with its kernel causes. */
static uint64_t syscall_node(struct engine *e, struct tidlog *t, struct ep *ep)
{
	if (ep->gnode)
		return ep->gnode;
	const struct kp_event *ev = &ep->ev;
	struct gstore_labels l = {0};
	char buf[64];
	const char *sc = syscall_name(ev->arg[2], ev->type);
	const char *path = file_path(e, t->host, ev);
	const char *rule = path ? rule_for_path(e, path) : NULL;
	gstore_labels_add(&l, "syscall", sc);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)ev->arg[0]);
	gstore_labels_add(&l, "fd", buf);
	if (path)
		gstore_labels_add(&l, "path", path);
	gstore_labels_add(&l, "name", rule ? rule : sc);
	gstore_labels_add(&l, "text", rule ? rule : sc);
	snprintf(buf, sizeof(buf), "%d", ev->ret);
	gstore_labels_add(&l, "ret", buf);
	const char *service;
	labels_comm(e, &l, t->host, t->pid, &service);
	struct gstore_node n = {.kind = GN_SYSCALL,
				.flags = ev->ret < 0 ? GN_F_ERROR : 0,
				.pid = ev->pid,
				.tid = ev->tid,
				.host = t->host,
				.start_ns = ev->ts_ns,
				.end_ns = ev_end(ev),
				.weight_ns = ev->dur_ns,
				.service = service,
				.labels = l.buf,
				.labels_len = l.len};
	if (g_node(e, &n, &ep->gnode) < 0)
		return 0;
	write_causes(e, t, ev->ts_ns, ev_end(ev), ep->gnode);
	return ep->gnode;
}

static int is_syscall_ep(const struct kp_event *ev)
{
	return ev->type == KP_READ || ev->type == KP_WRITE || ev->type == KP_FSYNC;
}

/*
 * The work of thread tid inside [t0, t1], as causes of node `into`: its slow syscalls (each with
 * its own kernel causes) and the kernel delays outside any syscall.
 */
static void thread_work(struct engine *e, uint64_t host, uint32_t tid, uint64_t t0, uint64_t t1,
			uint64_t into, uint64_t answer_ts)
{
	struct tidlog *t = tidlog_find(e, host, tid);
	if (!t)
		return;
	uint64_t lo[256], hi[256];
	int nsys = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct ep *ep = &t->v[i];
		if (!is_syscall_ep(&ep->ev))
			continue;
		/* A client's read that received the answer is the wait for it: the server request
		 * explains it (waited-on), it is not a cause of its own. */
		if (answer_ts && ep->ev.type == KP_READ && ep->ev.ts_ns <= answer_ts &&
		    answer_ts <= ev_end(&ep->ev) + NSEC_PER_MSEC)
			continue;
		uint64_t w = clip_overlap(ep->ev.ts_ns, ev_end(&ep->ev), t0, t1);
		if (!w || (w < e->threshold_ns && ep->ev.ret >= 0))
			continue;
		uint64_t sn = syscall_node(e, t, ep);
		g_edge(e, sn, into, GE_CONTAINS, w, ep->ev.ret < 0);
		if (nsys < 256) {
			lo[nsys] = ep->ev.ts_ns;
			hi[nsys++] = ev_end(&ep->ev);
		}
	}
	/* Kernel delays between syscalls (user-space preemption, fault bursts). */
	uint64_t cur = t0;
	for (int k = 0; k <= nsys; k++) {
		/* gaps between the syscalls (they are in arrival order; sort-free: use the gaps
		 * only when the syscalls are ordered, the common case of one thread) */
		uint64_t gap_end = k < nsys ? KP_MAX(lo[k], cur) : t1;
		if (gap_end > cur + e->threshold_ns)
			write_causes(e, t, cur, gap_end, into);
		if (k < nsys)
			cur = KP_MAX(cur, hi[k]);
	}
}

/* ------------------------------------------------------------------ analysis: requests */

static uint64_t tcp_msg_node(struct engine *e, const struct req *r, int is_send, uint64_t t0,
			     uint64_t t1, uint64_t bytes)
{
	struct gstore_labels l = {0};
	char buf[64];
	const char *service;
	labels_comm(e, &l, r->host, r->pid, &service);
	gstore_labels_add(&l, "direction", is_send ? "send" : "receive");
	snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)r->conn);
	gstore_labels_add(&l, "conn", buf);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)bytes);
	gstore_labels_add(&l, "bytes", buf);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->req_seq);
	gstore_labels_add(&l, "seq", buf);
	snprintf(buf, sizeof(buf), "%s %llu bytes", is_send ? "sent" : "received",
		 (unsigned long long)bytes);
	gstore_labels_add(&l, "text", buf);
	struct gstore_node n = {.kind = GN_TCP,
				.pid = r->pid,
				.tid = is_send == (r->role == ROLE_CLIENT) ? r->tid_req : r->tid_resp,
				.host = r->host,
				.start_ns = t0,
				.end_ns = KP_MAX(t0, t1),
				.service = service,
				.labels = l.buf,
				.labels_len = l.len};
	uint64_t id = 0;
	g_node(e, &n, &id);
	return id;
}

static uint64_t req_node(struct engine *e, struct req *r);

/*
 * A server request: its threads' work inside it. The window opens when the client sent the
 * request (same node), not when the server read it: a server too starved of CPU to even read
 * is delayed by whatever starved it.
 */
static void server_work(struct engine *e, struct req *s)
{
	uint64_t t0 = s->start;
	struct req *c = req_by_serial(e, s->peer);
	if (c && c->host == s->host && c->req_first < t0)
		t0 = c->req_first;
	thread_work(e, s->host, s->tid_req, t0, s->end, s->gnode, 0);
	if (s->tid_resp && s->tid_resp != s->tid_req)
		thread_work(e, s->host, s->tid_resp, t0, s->end, s->gnode, 0);
}

/*
 * How much of client request c's wait server request s explains: from when c sent the request
 * (the server had it from then on, received or queued) to when s answered, within c.
 */
static uint64_t waited_on_weight(const struct req *c, const struct req *s)
{
	uint64_t from = c->host == s->host ? KP_MIN(c->req_first, s->start) : s->start;
	return clip_overlap(from, s->end, c->start, c->end);
}

/* The edges between an analyzed client request and its (finished) server request. */
static void link_server(struct engine *e, struct req *c, struct req *s)
{
	if (s->linked || !c->gnode)
		return;
	s->linked = 1;
	uint64_t sn = req_node(e, s);
	g_edge(e, sn, c->gnode, GE_WAITED_ON, waited_on_weight(c, s), 1);
	if (s->gmsg && c->gmsg)
		g_edge(e, c->gmsg, s->gmsg, GE_SENT_TO,
		       s->req_first > c->req_first ? s->req_first - c->req_first : 0, 1);
}

static uint64_t req_node(struct engine *e, struct req *r)
{
	if (r->gnode)
		return r->gnode;
	struct gstore_labels l = {0};
	char buf[160];
	const char *service;
	labels_comm(e, &l, r->host, r->pid, &service);
	gstore_labels_add(&l, "role", r->role == ROLE_CLIENT ? "client" : "server");
	snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)r->conn);
	gstore_labels_add(&l, "conn", buf);
	snprintf(buf, sizeof(buf), "%u", r->lport);
	gstore_labels_add(&l, "local_port", buf);
	snprintf(buf, sizeof(buf), "%u", r->rport);
	gstore_labels_add(&l, "remote_port", buf);
	const char *name = rule_for_port(e, r->role == ROLE_CLIENT ? r->rport : r->lport);
	if (name)
		gstore_labels_add(&l, "name", name);
	if (r->role == ROLE_SERVER)
		snprintf(buf, sizeof(buf), "request received (%llu bytes)",
			 (unsigned long long)r->req_bytes);
	else
		snprintf(buf, sizeof(buf), "%s sent (%llu bytes) to port %u",
			 name ? name : "request", (unsigned long long)r->req_bytes, r->rport);
	gstore_labels_add(&l, "text", buf);
	if (r->abandoned)
		gstore_labels_add(&l, "outcome", "abandoned (no response)");
	struct gstore_node n = {.kind = GN_REQUEST,
				.flags = r->abandoned ? GN_F_ERROR : 0,
				.pid = r->pid,
				.tid = r->tid_req,
				.host = r->host,
				.start_ns = r->start,
				.end_ns = r->end,
				.weight_ns = r->end - r->start,
				.service = service,
				.labels = l.buf,
				.labels_len = l.len};
	if (g_node(e, &n, &r->gnode) < 0)
		return 0;
	/* The message that opened it. */
	r->gmsg = tcp_msg_node(e, r, r->role == ROLE_CLIENT, r->req_first, r->req_end, r->req_bytes);
	/* Structural: the message belongs to the request but explains none of its latency (weight
	 * 0: the root-cause walk never takes it). */
	g_edge(e, r->gmsg, r->gnode, GE_CONTAINS, 0, 1);
	if (r->role == ROLE_SERVER) {
		server_work(e, r);
	} else {
		/* The server request it waited on: now if it is over, else once it is. */
		struct req *s = req_by_serial(e, r->peer);
		if (s && s->done)
			link_server(e, r, s);
		else if (s)
			s->late_link = 1;
		/* The client thread's own work outside the wait (e.g. preempted before sending). */
		thread_work(e, r->host, r->tid_req, r->start, r->end, r->gnode, r->resp_first);
	}
	return r->gnode;
}

static uint64_t symptom_node(struct engine *e, uint64_t host, uint32_t pid, uint32_t tid,
			     uint64_t t0, uint64_t t1, const char *text, const char **keys, int nkeys)
{
	struct gstore_labels l = {0};
	const char *service;
	labels_comm(e, &l, host, pid, &service);
	gstore_labels_add(&l, "text", text);
	/* The first key is how people name it (transaction id, else trace id, else conn):
	 * incident lists and deep links use it. */
	for (int i = 0; i < nkeys; i++) {
		if (keys[i]) {
			gstore_labels_add(&l, "key", keys[i]);
			break;
		}
	}
	struct gstore_node n = {.kind = GN_SYMPTOM,
				.flags = GN_F_ERROR,
				.pid = pid,
				.tid = tid,
				.host = host,
				.start_ns = t0,
				.end_ns = t1,
				.weight_ns = t1 - t0,
				.service = service,
				.labels = l.buf,
				.labels_len = l.len};
	uint64_t id = 0;
	if (g_node(e, &n, &id) < 0)
		return 0;
	for (int i = 0; i < nkeys; i++)
		if (keys[i])
			g_key(e, keys[i], id);
	return id;
}

static void analyze_req(struct engine *e, struct req *r)
{
	if (r->analyzed)
		return;
	r->analyzed = 1;
	uint64_t rn = req_node(e, r);
	char text[192], key[64];
	uint64_t ms = (r->end - r->start) / NSEC_PER_MSEC;
	if (r->abandoned)
		snprintf(text, sizeof(text), "TIMEOUT: request abandoned after %llu ms (no response)",
			 (unsigned long long)ms);
	else
		snprintf(text, sizeof(text), "SLOW: request took %llu ms", (unsigned long long)ms);
	snprintf(key, sizeof(key), "conn:%016llx", (unsigned long long)r->conn);
	const char *keys[] = {key};
	uint64_t y = symptom_node(e, r->host, r->pid, r->tid_req, r->start, r->end, text, keys, 1);
	g_edge(e, rn, y, GE_SYMPTOM_OF, r->end - r->start, 1);
	g_key(e, key, rn);
}

/* ------------------------------------------------------------------ analysis: spans */

static void analyze_span(struct engine *e, struct span *s)
{
	if (s->analyzed)
		return;
	s->analyzed = 1;
	struct gstore_labels l = {0};
	char trace[33], sid[17], buf[64];
	hexs(trace, s->trace, 16);
	hexs(sid, s->id, 8);
	gstore_labels_add(&l, "trace_id", trace);
	gstore_labels_add(&l, "span_id", sid);
	if (s->txn[0])
		gstore_labels_add(&l, "txn", s->txn);
	gstore_labels_add(&l, "name", s->name);
	gstore_labels_add(&l, "text", s->name);
	snprintf(buf, sizeof(buf), "%s", s->status == 2 ? "error" : s->status == 1 ? "ok" : "unset");
	gstore_labels_add(&l, "status", buf);
	if (s->host) {
		struct proc *p = proc_get(e, s->host, s->pid, 0);
		if (p && p->comm[0])
			gstore_labels_add(&l, "comm", p->comm);
	}
	struct gstore_node n = {.kind = GN_SPAN,
				.flags = s->status == 2 ? GN_F_ERROR : 0,
				.pid = s->pid,
				.tid = s->tid,
				.host = s->host,
				.start_ns = s->start,
				.end_ns = s->end,
				.weight_ns = s->end - s->start,
				.service = s->service,
				.labels = l.buf,
				.labels_len = l.len};
	if (g_node(e, &n, &s->gnode) < 0)
		return;
	const char *keys[] = {trace, sid, s->txn[0] ? s->txn : NULL};
	for (int i = 0; i < 3; i++)
		if (keys[i])
			g_key(e, keys[i], s->gnode);

	/* Parent / children. */
	static const uint8_t zero[8];
	if (memcmp(s->parent, zero, 8) != 0) {
		uint64_t pid_, lo;
		memcpy(&pid_, s->parent, 8);
		memcpy(&lo, s->trace, 8);
		uint64_t *v = hmap_get(&e->span_by_id, pid_, lo);
		if (v && e->spans[*v - 1].gnode)
			g_edge(e, s->gnode, e->spans[*v - 1].gnode, GE_CHILD_OF,
			       clip_overlap(s->start, s->end, e->spans[*v - 1].start,
					    e->spans[*v - 1].end),
			       1);
	}
	for (uint64_t i = 0; i < SPAN_RING && i < e->next_span; i++) {
		struct span *c = &e->spans[i];
		if (c->gnode && c != s && memcmp(c->parent, s->id, 8) == 0 &&
		    memcmp(c->trace, s->trace, 16) == 0)
			g_edge(e, c->gnode, s->gnode, GE_CHILD_OF,
			       clip_overlap(c->start, c->end, s->start, s->end), 1);
	}

	if (s->status == 2) {
		char text[200];
		if (s->status_msg[0])
			snprintf(text, sizeof(text), "%s", s->status_msg);
		else
			snprintf(text, sizeof(text), "span '%s' failed", s->name);
		const char *skeys[] = {s->txn[0] ? s->txn : NULL, trace};
		uint64_t y = symptom_node(e, s->host, s->pid, s->tid, s->start, s->end, text, skeys,
					  2);
		s->gsym = y;
		g_edge(e, s->gnode, y, GE_SYMPTOM_OF, s->end - s->start, 1);
	}

	/* Client requests the span's process made inside it (on its thread when known). */
	if (!s->host)
		return;
	int found = 0;
	uint64_t first = e->next_req > REQ_RING ? e->next_req - REQ_RING : 0;
	for (uint64_t q = first; q < e->next_req; q++) {
		struct req *r = &e->reqs[q % REQ_RING];
		if (r->serial != q || !r->start || r->role != ROLE_CLIENT || r->host != s->host ||
		    r->pid != s->pid || (s->tid && r->tid_req != s->tid))
			continue;
		uint64_t w = clip_overlap(r->start, r->end, s->start, s->end);
		if (!w || r->start + NSEC_PER_MSEC < s->start)
			continue;
		found++;
		r->analyzed = 1; /* explained through the span */
		uint64_t rn = req_node(e, r);
		g_edge(e, rn, s->gnode, GE_CONTAINS, w, 1);
	}
	/* The span's own thread work outside those requests. */
	if (s->tid && !found)
		thread_work(e, s->host, s->tid, s->start, s->end, s->gnode, 0);
}

/* ------------------------------------------------------------------ analysis: errors */

static void analyze_err(struct engine *e, const struct item *it)
{
	struct tidlog *t = tidlog_find(e, it->host, it->tid);
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		struct ep *ep = &t->v[i];
		if (ep->ev.ts_ns != it->ref || !is_syscall_ep(&ep->ev) || ep->gnode)
			continue;
		uint64_t sn = syscall_node(e, t, ep);
		char text[160];
		snprintf(text, sizeof(text), "ERROR: %s returned %d (%s)",
			 syscall_name(ep->ev.arg[2], ep->ev.type), ep->ev.ret, strerror(-ep->ev.ret));
		uint64_t y = symptom_node(e, it->host, ep->ev.pid, ep->ev.tid, ep->ev.ts_ns,
					  ev_end(&ep->ev), text, NULL, 0);
		g_edge(e, sn, y, GE_SYMPTOM_OF, ep->ev.dur_ns, 1);
		/* The request being served when it failed, if any. */
		return;
	}
}

/* ------------------------------------------------------------------ the engine thread */

static void process_item(struct engine *e, struct qitem *q)
{
	if (q->kind == Q_FRAME) {
		const struct kp_event *ev = q->data;
		if (q->meta_len)
			index_meta(e, q->host, (const uint8_t *)q->data + (size_t)q->n * sizeof(*ev),
				   q->meta_len);
		uint64_t mark = 0;
		for (uint32_t i = 0; i < q->n; i++) {
			index_event(e, q->host, &ev[i]);
			if (ev_end(&ev[i]) > mark)
				mark = ev_end(&ev[i]);
		}
		if (q->n)
			watermark(e, q->host, mark);
		pthread_mutex_lock(&e->stats_mu);
		e->st.events += q->n;
		e->st.frames++;
		pthread_mutex_unlock(&e->stats_mu);
	} else if (q->kind == Q_SPANS) {
		const struct span *sp = q->data;
		for (uint32_t i = 0; i < q->n; i++)
			index_span(e, &sp[i]);
		pthread_mutex_lock(&e->stats_mu);
		e->st.spans += q->n;
		pthread_mutex_unlock(&e->stats_mu);
	}
}

#define MAX_WAIT_NS (10 * NSEC_PER_SEC) /* past this (wall clock), analyze with what is there */

static int item_ready(struct engine *e, const struct item *it, uint64_t wm)
{
	return e->sync_all_before || it->end + e->late_ns <= wm || it->end + MAX_WAIT_NS <= e->now;
}

/* Analyzes every ready item in one write transaction. */
static void analyze_ready(struct engine *e)
{
	size_t ready = 0;
	uint64_t wm = global_watermark(e);
	for (size_t i = 0; i < e->n_items; i++)
		ready += (size_t)item_ready(e, &e->items[i], wm);
	if (!ready)
		return;
	if (gstore_wbegin(e->g, &e->w) < 0) {
		pthread_mutex_lock(&e->stats_mu);
		e->st.commit_errors++;
		pthread_mutex_unlock(&e->stats_mu);
		return;
	}
	/* Spans first: requests inside spans are explained through them. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < e->n_items; i++) {
			struct item *it = &e->items[i];
			if (!item_ready(e, it, wm) || (pass == 0) != (it->kind == IT_SPAN))
				continue;
			if (it->kind == IT_SPAN)
				analyze_span(e, &e->spans[it->ref]);
			else if (it->kind == IT_REQ) {
				struct req *r = req_by_serial(e, (int64_t)it->ref);
				if (r)
					analyze_req(e, r);
			} else if (it->kind == IT_ERR) {
				analyze_err(e, it);
			} else if (it->kind == IT_LINK) {
				struct req *sv = req_by_serial(e, (int64_t)it->ref);
				struct req *cl = sv ? req_by_serial(e, sv->peer) : NULL;
				if (sv && cl)
					link_server(e, cl, sv);
			}
		}
	}
	size_t k = 0;
	for (size_t i = 0; i < e->n_items; i++)
		if (!item_ready(e, &e->items[i], wm))
			e->items[k++] = e->items[i];
	e->n_items = k;
	int r = gstore_wcommit(e->w);
	e->w = NULL;
	pthread_mutex_lock(&e->stats_mu);
	e->st.analyzed += ready;
	if (r < 0) {
		e->st.commit_errors++;
		log_warn("engine: graph commit failed: %s", gstore_strerror(r));
	} else {
		e->st.commits++;
		e->st.last_commit_ns = now_real_ns();
	}
	pthread_mutex_unlock(&e->stats_mu);
}

static void *engine_main(void *arg)
{
	struct engine *e = arg;
	uint64_t next_tick = now_mono_ns() + e->window_ns, next_expire = 0;
	pthread_mutex_lock(&e->mu);
	for (;;) {
		while (!e->qhead && !e->stop && now_mono_ns() < next_tick) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t wait = next_tick - now_mono_ns();
			if ((int64_t)wait <= 0)
				break;
			wait = KP_MIN(wait, 50 * NSEC_PER_MSEC);
			ts.tv_nsec += (long)(wait % NSEC_PER_SEC);
			ts.tv_sec += (time_t)(wait / NSEC_PER_SEC) + ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&e->cv, &e->mu, &ts);
		}
		struct qitem *q = e->qhead;
		e->qhead = e->qtail = NULL;
		e->qbytes = 0;
		int stop = e->stop;
		pthread_mutex_unlock(&e->mu);

		uint64_t *acks[64];
		int nacks = 0;
		e->now = now_real_ns();
		while (q) {
			struct qitem *next = q->next;
			if (q->kind == Q_SYNC) {
				e->sync_all_before = 1;
				if (nacks < 64)
					acks[nacks++] = q->sync_ack;
			} else {
				process_item(e, q);
			}
			free(q->data);
			free(q);
			q = next;
		}
		if (now_mono_ns() >= next_tick || nacks || stop) {
			next_tick = now_mono_ns() + e->window_ns;
			e->now = now_real_ns();
			sides_idle(e);
			analyze_ready(e);
			if (e->now > next_expire) {
				tidlogs_expire(e, e->now - e->horizon_ns);
				next_expire = e->now + NSEC_PER_SEC;
			}
			episodes_bound(e);
			e->sync_all_before = 0;
		}
		pthread_mutex_lock(&e->mu);
		for (int i = 0; i < nacks; i++)
			*acks[i] = 1;
		if (nacks)
			pthread_cond_broadcast(&e->done_cv);
		if (stop)
			break;
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* ------------------------------------------------------------------ public */

static void enqueue(struct engine *e, struct qitem *q)
{
	pthread_mutex_lock(&e->mu);
	if (q->kind != Q_SYNC && e->qbytes + q->bytes > QUEUE_BYTES) {
		pthread_mutex_unlock(&e->mu);
		pthread_mutex_lock(&e->stats_mu);
		e->st.dropped += q->n;
		pthread_mutex_unlock(&e->stats_mu);
		free(q->data);
		free(q);
		return;
	}
	q->next = NULL;
	if (e->qtail)
		e->qtail->next = q;
	else
		e->qhead = q;
	e->qtail = q;
	e->qbytes += q->bytes;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

void engine_submit_frame(struct engine *e, uint64_t host, const struct kp_event *ev, uint32_t n,
			 const void *meta, size_t meta_len)
{
	struct qitem *q = xcalloc(1, sizeof(*q));
	size_t evb = (size_t)n * sizeof(*ev);
	q->kind = Q_FRAME;
	q->host = host;
	q->n = n;
	q->meta_len = meta_len;
	q->bytes = evb + meta_len;
	q->data = xmalloc(q->bytes ? q->bytes : 1);
	memcpy(q->data, ev, evb);
	if (meta_len)
		memcpy((char *)q->data + evb, meta, meta_len);
	enqueue(e, q);
}

void engine_submit_spans(struct engine *e, const struct otlp_span *in, size_t n)
{
	if (!n)
		return;
	struct qitem *q = xcalloc(1, sizeof(*q));
	struct span *s = xcalloc(n, sizeof(*s));
	for (size_t i = 0; i < n; i++) {
		memcpy(s[i].trace, in[i].trace_id, 16);
		memcpy(s[i].id, in[i].span_id, 8);
		memcpy(s[i].parent, in[i].parent_id, 8);
		s[i].start = in[i].start_ns;
		s[i].end = KP_MAX(in[i].end_ns, in[i].start_ns);
		s[i].pid = in[i].pid;
		s[i].tid = in[i].tid;
		s[i].status = in[i].status;
		s[i].kind = in[i].kind;
		copy_str(s[i].name, sizeof(s[i].name), in[i].name);
		copy_str(s[i].service, sizeof(s[i].service), in[i].service);
		copy_str(s[i].status_msg, sizeof(s[i].status_msg), in[i].status_msg);
		copy_str(s[i].txn, sizeof(s[i].txn), in[i].txn);
		copy_str(s[i].host_name, sizeof(s[i].host_name), in[i].host);
	}
	q->kind = Q_SPANS;
	q->n = (uint32_t)n;
	q->bytes = n * sizeof(*s);
	q->data = s;
	enqueue(e, q);
}

int engine_sync(struct engine *e, int timeout_ms)
{
	uint64_t done = 0;
	struct qitem *q = xcalloc(1, sizeof(*q));
	q->kind = Q_SYNC;
	q->sync_ack = &done;
	enqueue(e, q);
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
	pthread_mutex_lock(&e->mu);
	while (!done && now_mono_ns() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&e->done_cv, &e->mu, &ts);
	}
	int r = done ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&e->mu);
	/* On timeout the ack slot may still be written later: keep it valid by leaking nothing
	 * but waiting for the engine to pass once more is not possible here, so the engine
	 * thread is the one to finish: wait for it without a bound in that rare case. */
	if (r < 0) {
		pthread_mutex_lock(&e->mu);
		while (!done)
			pthread_cond_wait(&e->done_cv, &e->mu);
		pthread_mutex_unlock(&e->mu);
	}
	return r;
}

int engine_open(const struct kp_config *cfg, struct gstore *g, struct engine **out)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	e->g = g;
	e->window_ns = (uint64_t)cfg->engine_window_ms * NSEC_PER_MSEC;
	e->threshold_ns = (uint64_t)cfg->engine_threshold_ns;
	e->late_ns = (uint64_t)cfg->engine_late_ms * NSEC_PER_MSEC;
	e->slow_req_ns = (uint64_t)cfg->engine_slow_request_ms * NSEC_PER_MSEC;
	e->horizon_ns = (uint64_t)cfg->engine_horizon_sec * NSEC_PER_SEC;
	e->max_episodes = (size_t)cfg->engine_max_episodes;
	e->max_steps = (int)cfg->engine_max_steps;
	rules_parse(&cfg->engine_file_rules, &e->file_rules, &e->n_file_rules, 0);
	rules_parse(&cfg->engine_port_rules, &e->port_rules, &e->n_port_rules, 1);
	e->procs = xcalloc(MAX_PROCS, sizeof(*e->procs));
	e->reqs = xcalloc(REQ_RING, sizeof(*e->reqs));
	e->spans = xcalloc(SPAN_RING, sizeof(*e->spans));
	pthread_mutex_init(&e->mu, NULL);
	pthread_mutex_init(&e->stats_mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	pthread_cond_init(&e->done_cv, NULL);
	int r = pthread_create(&e->thread, NULL, engine_main, e);
	if (r) {
		engine_close(NULL);
		free(e);
		return -r;
	}
	*out = e;
	return 0;
}

void engine_close(struct engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = 1;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->thread, NULL);
	for (size_t i = 0; i < e->n_tidlogs; i++)
		free(e->tidlogs[i].v);
	free(e->tidlogs);
	hmap_free(&e->tidlogs_by);
	hmap_free(&e->procs_by);
	hmap_free(&e->tid2pid);
	hmap_free(&e->sides_by);
	hmap_free(&e->reqmatch);
	hmap_free(&e->files_by);
	hmap_free(&e->hosts);
	hmap_free(&e->span_by_id);
	hmap_free(&e->wm);
	free(e->wm_v);
	free(e->procs);
	free(e->sides);
	free(e->reqs);
	free(e->spans);
	free(e->files);
	free(e->node_names);
	free(e->node_ids);
	free(e->skews);
	free(e->items);
	for (int i = 0; i < e->n_file_rules; i++) {
		free(e->file_rules[i].pattern);
		free(e->file_rules[i].name);
	}
	for (int i = 0; i < e->n_port_rules; i++) {
		free(e->port_rules[i].pattern);
		free(e->port_rules[i].name);
	}
	free(e->file_rules);
	free(e->port_rules);
	pthread_mutex_destroy(&e->mu);
	pthread_mutex_destroy(&e->stats_mu);
	pthread_cond_destroy(&e->cv);
	pthread_cond_destroy(&e->done_cv);
	free(e);
}

void engine_stats(struct engine *e, struct engine_stats *st)
{
	pthread_mutex_lock(&e->stats_mu);
	*st = e->st;
	pthread_mutex_unlock(&e->stats_mu);
}

int engine_skew(struct engine *e, uint64_t host, int64_t *offset_ns, uint64_t *pairs)
{
	/* Skews are written by the engine thread; a torn read of one pair only skews an
	 * estimate momentarily. Read under the queue lock to keep it simple. */
	pthread_mutex_lock(&e->mu);
	int r = -ENOENT;
	if (host == e->ref_host) {
		*offset_ns = 0;
		*pairs = 0;
		r = 0;
	}
	int64_t ab = 0, ba = 0;
	uint64_t nab = 0, nba = 0;
	for (size_t i = 0; i < e->n_skews && r < 0; i++) {
		if (e->skews[i].a == e->ref_host && e->skews[i].b == host) {
			ab = e->skews[i].min_d;
			nab = e->skews[i].pairs;
		} else if (e->skews[i].a == host && e->skews[i].b == e->ref_host) {
			ba = e->skews[i].min_d;
			nba = e->skews[i].pairs;
		}
	}
	if (r < 0 && (nab || nba)) {
		/* d_ab = delay + off, d_ba = delay - off (off = host's clock - ref's). With both
		 * directions: off = (d_ab - d_ba) / 2; with one, the minimum is an upper bound. */
		*offset_ns = nab && nba ? (ab - ba) / 2 : nab ? ab : -ba;
		*pairs = nab + nba;
		r = 0;
	}
	pthread_mutex_unlock(&e->mu);
	return r;
}
