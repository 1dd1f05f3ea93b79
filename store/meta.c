/*
 * meta.c - the metadata beside the events: processes per (node, pid, start time), connection
 * 4-tuples per (node, connection id), node names; and the interned strings (symbols) they use.
 *
 * Metadata arrives once per process, so it must outlive the memtable: every record applied is
 * queued and written to an append-only log (meta.log) before the segment holding its frame is
 * renamed into place (store__meta_sync), and the log is replayed at open. Records are upserts,
 * so the overlap a WAL replay brings is harmless.
 *
 *   meta.log = magic u32 "KPM1" | version u16 | pad u16 | record*
 *   record   = len u32 | xxh3_64(node, kind, payload) low 32 bits u32 | node u64 | kind u16
 *              | payload[len] (a wire meta payload, agent/wire.h)
 *
 * A torn or corrupt tail (crash while appending) is cut at the first bad record. Readers (query
 * threads) take the read lock once per batch; the one writer (the appender) takes the write lock
 * per record, which is rare.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "agent/wire.h"
#include "common/util.h"
#include "store/internal.h"

#define META_MAGIC   0x314d504bu /* "KPM1" */
#define META_VERSION 1
#define META_REC_HDR 18

struct sym {
	const char *s;
	uint32_t len, next;
};

struct procv {
	uint64_t node;
	uint32_t pid, n, cap, next;
	struct store__proc *v; /* sorted by start_ns */
};

struct connv {
	struct store__conn c;
	uint32_t next;
};

struct nodev {
	uint64_t node;
	uint32_t sym, next;
};

/* A growable array + chained hash over it; index 0 is unused (0 = end of chain). */
#define HASHED(T)                                                                                  \
	struct {                                                                                   \
		T *v;                                                                              \
		uint32_t n, cap;                                                                   \
		uint32_t *head;                                                                    \
		uint32_t nhead;                                                                    \
	}

struct store__meta {
	pthread_rwlock_t lock;
	HASHED(struct sym) syms;
	HASHED(struct procv) procs;
	HASHED(struct connv) conns;
	HASHED(struct nodev) nodes;
	uint64_t nproc_entries;
	char *arena;
	size_t arena_left;
	void *chunks;	       /* arena chunks, chained through their first pointer */
	struct kp_buf pending; /* records not yet in the log (pending_mu: appender vs sealer) */
	pthread_mutex_t pending_mu;
	int fd;
};

#define H_INIT(h)                                                                                  \
	do {                                                                                       \
		(h).cap = 64;                                                                      \
		(h).v = xcalloc((h).cap, sizeof(*(h).v));                                          \
		(h).n = 1;                                                                         \
		(h).nhead = 256;                                                                   \
		(h).head = xcalloc((h).nhead, sizeof(uint32_t));                                   \
	} while (0)

static uint64_t mix2(uint64_t a, uint64_t b)
{
	return store__hash_u64(a * 0x9e3779b97f4a7c15ull ^ b);
}

/* ------------------------------------------------------------------ symbols */

static const char *arena_copy(struct store__meta *m, const char *s, size_t len)
{
	if (m->arena_left < len + 1) {
		size_t sz = len + 1 > 65536 ? len + 1 : 65536;
		void **chunk =
			xmalloc(sz + sizeof(void *)); /* freed at close: symbols are stable */
		chunk[0] = m->chunks;
		m->chunks = chunk;
		m->arena = (char *)(chunk + 1);
		m->arena_left = sz;
	}
	char *d = m->arena;
	memcpy(d, s, len);
	d[len] = '\0';
	m->arena += len + 1;
	m->arena_left -= len + 1;
	return d;
}

static uint32_t sym_find_locked(struct store__meta *m, const char *s, size_t len)
{
	uint64_t h = store__hash_str(s, len);
	for (uint32_t i = m->syms.head[h & (m->syms.nhead - 1)]; i; i = m->syms.v[i].next)
		if (m->syms.v[i].len == len && !memcmp(m->syms.v[i].s, s, len))
			return i;
	return 0;
}

static void sym_rehash(struct store__meta *m)
{
	uint32_t nh = m->syms.nhead * 4;
	uint32_t *head = xcalloc(nh, sizeof(uint32_t));
	for (uint32_t i = 1; i < m->syms.n; i++) {
		uint64_t h = store__hash_str(m->syms.v[i].s, m->syms.v[i].len);
		m->syms.v[i].next = head[h & (nh - 1)];
		head[h & (nh - 1)] = i;
	}
	free(m->syms.head);
	m->syms.head = head;
	m->syms.nhead = nh;
}

static uint32_t sym_intern_locked(struct store__meta *m, const char *s, size_t len)
{
	if (!len)
		return 0;
	uint32_t id = sym_find_locked(m, s, len);
	if (id)
		return id;
	if (m->syms.n == m->syms.cap) {
		m->syms.cap *= 2;
		m->syms.v = xrealloc(m->syms.v, m->syms.cap * sizeof(*m->syms.v));
	}
	if (m->syms.n > m->syms.nhead)
		sym_rehash(m);
	id = m->syms.n++;
	uint64_t h = store__hash_str(s, len);
	m->syms.v[id].s = arena_copy(m, s, len);
	m->syms.v[id].len = (uint32_t)len;
	m->syms.v[id].next = m->syms.head[h & (m->syms.nhead - 1)];
	m->syms.head[h & (m->syms.nhead - 1)] = id;
	return id;
}

uint32_t store__sym_intern(struct store__meta *m, const char *s, size_t len)
{
	pthread_rwlock_wrlock(&m->lock);
	uint32_t id = sym_intern_locked(m, s, len);
	pthread_rwlock_unlock(&m->lock);
	return id;
}

uint32_t store__sym_find(struct store__meta *m, const char *s, size_t len)
{
	pthread_rwlock_rdlock(&m->lock);
	uint32_t id = len ? sym_find_locked(m, s, len) : 0;
	pthread_rwlock_unlock(&m->lock);
	return id;
}

const char *store__sym_str(struct store__meta *m, uint32_t id, uint32_t *len)
{
	const char *s = "";
	*len = 0;
	pthread_rwlock_rdlock(&m->lock);
	if (id && id < m->syms.n) {
		s = m->syms.v[id].s;
		*len = m->syms.v[id].len;
	}
	pthread_rwlock_unlock(&m->lock);
	return s;
}

/* ------------------------------------------------------------------ tables */

#define GROW(h)                                                                                    \
	do {                                                                                       \
		if ((h).n == (h).cap) {                                                            \
			(h).cap *= 2;                                                              \
			(h).v = xrealloc((h).v, (h).cap * sizeof(*(h).v));                         \
		}                                                                                  \
	} while (0)

#define REHASH(h, keyfn)                                                                           \
	do {                                                                                       \
		if ((h).n > (h).nhead) {                                                           \
			uint32_t nh_ = (h).nhead * 4;                                              \
			uint32_t *hd_ = xcalloc(nh_, sizeof(uint32_t));                            \
			for (uint32_t i_ = 1; i_ < (h).n; i_++) {                                  \
				uint64_t k_ = keyfn(&(h).v[i_]);                                   \
				(h).v[i_].next = hd_[k_ & (nh_ - 1)];                              \
				hd_[k_ & (nh_ - 1)] = i_;                                          \
			}                                                                          \
			free((h).head);                                                            \
			(h).head = hd_;                                                            \
			(h).nhead = nh_;                                                           \
		}                                                                                  \
	} while (0)

static uint64_t proc_key(const struct procv *p)
{
	return mix2(p->node, p->pid);
}
static uint64_t conn_key(const struct connv *c)
{
	return mix2(c->c.node, c->c.conn);
}
static uint64_t node_key(const struct nodev *n)
{
	return store__hash_u64(n->node);
}

static struct procv *procv_find(struct store__meta *m, uint64_t node, uint32_t pid)
{
	uint64_t h = mix2(node, pid);
	for (uint32_t i = m->procs.head[h & (m->procs.nhead - 1)]; i; i = m->procs.v[i].next)
		if (m->procs.v[i].node == node && m->procs.v[i].pid == pid)
			return &m->procs.v[i];
	return NULL;
}

/* The upserts return whether anything changed: agents resend metadata every
 * agent.metaResendSec, and only changes need to reach the log. */
static bool proc_upsert(struct store__meta *m, uint64_t node, const struct wire_proc *w)
{
	struct procv *pv = procv_find(m, node, w->pid);
	if (!pv) {
		GROW(m->procs);
		uint32_t id = m->procs.n++;
		pv = &m->procs.v[id];
		memset(pv, 0, sizeof(*pv));
		pv->node = node;
		pv->pid = w->pid;
		uint64_t h = mix2(node, w->pid);
		pv->next = m->procs.head[h & (m->procs.nhead - 1)];
		m->procs.head[h & (m->procs.nhead - 1)] = id;
		REHASH(m->procs, proc_key);
		pv = procv_find(m, node, w->pid);
	}
	struct store__proc e = {
		.node = node,
		.start_ns = w->start_ns,
		.cgroup_id = w->cgroup_id,
		.pid = w->pid,
		.ppid = w->ppid,
		.comm = sym_intern_locked(m, w->comm, strlen(w->comm)),
		.cmdline = sym_intern_locked(m, w->cmdline, strlen(w->cmdline)),
		.cgroup = sym_intern_locked(m, w->cgroup, strlen(w->cgroup)),
		.container = sym_intern_locked(m, w->container, strlen(w->container)),
		.pod = sym_intern_locked(m, w->pod, strlen(w->pod)),
		.ns = sym_intern_locked(m, w->ns, strlen(w->ns)),
		.service = sym_intern_locked(m, w->service, strlen(w->service)),
	};
	uint32_t i = 0;
	while (i < pv->n && pv->v[i].start_ns < e.start_ns)
		i++;
	if (i < pv->n && pv->v[i].start_ns == e.start_ns) {
		struct store__proc o = pv->v[i];
		bool same = o.cgroup_id == e.cgroup_id && o.ppid == e.ppid && o.comm == e.comm &&
			    o.cmdline == e.cmdline && o.cgroup == e.cgroup &&
			    o.container == e.container && o.pod == e.pod && o.ns == e.ns &&
			    o.service == e.service;
		pv->v[i] = e;
		return !same;
	}
	if (pv->n == pv->cap) {
		pv->cap = pv->cap ? pv->cap * 2 : 1;
		pv->v = xrealloc(pv->v, pv->cap * sizeof(*pv->v));
	}
	memmove(pv->v + i + 1, pv->v + i, (pv->n - i) * sizeof(*pv->v));
	pv->v[i] = e;
	pv->n++;
	m->nproc_entries++;
	return true;
}

static struct connv *conn_find(struct store__meta *m, uint64_t node, uint64_t conn)
{
	uint64_t h = mix2(node, conn);
	for (uint32_t i = m->conns.head[h & (m->conns.nhead - 1)]; i; i = m->conns.v[i].next)
		if (m->conns.v[i].c.node == node && m->conns.v[i].c.conn == conn)
			return &m->conns.v[i];
	return NULL;
}

static uint32_t addr_sym(struct store__meta *m, int family, const uint8_t *a)
{
	char txt[INET6_ADDRSTRLEN] = "";
	if (family == AF_INET6)
		inet_ntop(AF_INET6, a, txt, sizeof(txt));
	else
		inet_ntop(AF_INET, a, txt, sizeof(txt));
	return sym_intern_locked(m, txt, strlen(txt));
}

static bool conn_upsert(struct store__meta *m, uint64_t node, const struct wire_conn *w)
{
	struct connv *cv = conn_find(m, node, w->conn);
	bool fresh = !cv;
	if (!cv) {
		GROW(m->conns);
		uint32_t id = m->conns.n++;
		cv = &m->conns.v[id];
		memset(cv, 0, sizeof(*cv));
		cv->c.node = node;
		cv->c.conn = w->conn;
		uint64_t h = mix2(node, w->conn);
		cv->next = m->conns.head[h & (m->conns.nhead - 1)];
		m->conns.head[h & (m->conns.nhead - 1)] = id;
		REHASH(m->conns, conn_key);
		cv = conn_find(m, node, w->conn);
	}
	struct store__conn o = cv->c;
	cv->c.family = w->family;
	cv->c.sport = w->sport;
	cv->c.dport = w->dport;
	cv->c.saddr = addr_sym(m, w->family, w->saddr);
	cv->c.daddr = addr_sym(m, w->family, w->daddr);
	return fresh || o.family != cv->c.family || o.sport != cv->c.sport ||
	       o.dport != cv->c.dport || o.saddr != cv->c.saddr || o.daddr != cv->c.daddr;
}

static bool node_upsert(struct store__meta *m, uint64_t node, const char *name)
{
	uint64_t h = store__hash_u64(node);
	uint32_t sym = sym_intern_locked(m, name, strlen(name));
	for (uint32_t i = m->nodes.head[h & (m->nodes.nhead - 1)]; i; i = m->nodes.v[i].next)
		if (m->nodes.v[i].node == node) {
			bool changed = m->nodes.v[i].sym != sym;
			m->nodes.v[i].sym = sym;
			return changed;
		}
	GROW(m->nodes);
	uint32_t id = m->nodes.n++;
	m->nodes.v[id] = (struct nodev){node, sym, m->nodes.head[h & (m->nodes.nhead - 1)]};
	m->nodes.head[h & (m->nodes.nhead - 1)] = id;
	REHASH(m->nodes, node_key);
	return true;
}

/* ------------------------------------------------------------------ apply, log */

/* Returns 1 when the record changed the state, 0 when it repeated it, or -EINVAL. */
static int apply_locked(struct store__meta *m, uint64_t node, uint16_t kind, const void *payload,
			uint16_t len)
{
	switch (kind) {
	case WIRE_META_PROC: {
		struct wire_proc w;
		if (wire_proc_decode(payload, len, &w))
			return -EINVAL;
		return proc_upsert(m, node, &w);
	}
	case WIRE_META_CONN: {
		struct wire_conn w;
		if (wire_conn_decode(payload, len, &w))
			return -EINVAL;
		return conn_upsert(m, node, &w);
	}
	case WIRE_META_NODE: {
		char name[256], kernel[128];
		if (wire_node_decode(payload, len, name, sizeof(name), kernel, sizeof(kernel)))
			return -EINVAL;
		return node_upsert(m, node, name);
	}
	default:
		return -EINVAL;
	}
}

static uint32_t rec_sum(uint64_t node, uint16_t kind, const void *payload, uint16_t len)
{
	uint8_t b[10 + WIRE_META_MAX_LEN];
	size_t n = KP_MIN((size_t)len, (size_t)WIRE_META_MAX_LEN);
	memcpy(b, &node, 8);
	memcpy(b + 8, &kind, 2);
	memcpy(b + 10, payload, n);
	return (uint32_t)XXH3_64bits(b, 10 + n);
}

int store__meta_apply(struct store__meta *m, uint64_t node, uint16_t kind, const void *payload,
		      uint16_t len, bool log)
{
	if (len > WIRE_META_MAX_LEN)
		return -EINVAL;
	pthread_rwlock_wrlock(&m->lock);
	int rc = apply_locked(m, node, kind, payload, len);
	pthread_rwlock_unlock(&m->lock);
	if (rc <= 0 || !log)
		return rc < 0 ? rc : 0; /* an error, or nothing new to log */
	uint32_t l = len, sum = rec_sum(node, kind, payload, len);
	pthread_mutex_lock(&m->pending_mu);
	buf_append(&m->pending, &l, 4);
	buf_append(&m->pending, &sum, 4);
	buf_append(&m->pending, &node, 8);
	buf_append(&m->pending, &kind, 2);
	buf_append(&m->pending, payload, len);
	pthread_mutex_unlock(&m->pending_mu);
	return 0;
}

int store__meta_sync(struct store__meta *m)
{
	pthread_mutex_lock(&m->pending_mu);
	int rc = 0;
	if (m->pending.len) {
		off_t at = lseek(m->fd, 0, SEEK_CUR);
		rc = write_full(m->fd, m->pending.data, m->pending.len);
		if (!rc && fdatasync(m->fd))
			rc = -errno;
		if (!rc)
			m->pending.len = 0;
		else if (at >= 0 && (ftruncate(m->fd, at) || lseek(m->fd, at, SEEK_SET) < 0))
			log_error("store: cannot cut a failed metadata write: %s", strerror(errno));
	}
	pthread_mutex_unlock(&m->pending_mu);
	return rc;
}

int store__meta_open(const char *path, struct store__meta **out)
{
	struct store__meta *m = xcalloc(1, sizeof(*m));
	pthread_rwlock_init(&m->lock, NULL);
	pthread_mutex_init(&m->pending_mu, NULL);
	H_INIT(m->syms);
	H_INIT(m->procs);
	H_INIT(m->conns);
	H_INIT(m->nodes);
	int rc = 0;
	char *data = NULL;
	m->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (m->fd < 0) {
		rc = -errno;
		goto cleanup;
	}
	struct stat sb;
	if (fstat(m->fd, &sb)) {
		rc = -errno;
		goto cleanup;
	}
	size_t size = (size_t)sb.st_size, good = 8;
	if (size < 8) {
		/* new (or a header torn by a crash at creation): write the header */
		uint8_t h[8] = {0};
		uint32_t mg = META_MAGIC;
		uint16_t v = META_VERSION;
		memcpy(h, &mg, 4);
		memcpy(h + 4, &v, 2);
		if (ftruncate(m->fd, 0) || pwrite(m->fd, h, 8, 0) != 8 || fdatasync(m->fd)) {
			rc = -errno;
			goto cleanup;
		}
	} else {
		data = xmalloc(size);
		if (pread(m->fd, data, size, 0) != (ssize_t)size) {
			rc = -EIO;
			goto cleanup;
		}
		uint32_t mg;
		uint16_t v;
		memcpy(&mg, data, 4);
		memcpy(&v, data + 4, 2);
		if (mg != META_MAGIC) {
			rc = STORE_EMAGIC;
			goto cleanup;
		}
		if (v != META_VERSION) {
			rc = STORE_EVERSION;
			goto cleanup;
		}
		size_t at = 8;
		while (size - at >= META_REC_HDR) {
			uint32_t l, sum;
			uint64_t node;
			uint16_t kind;
			memcpy(&l, data + at, 4);
			memcpy(&sum, data + at + 4, 4);
			memcpy(&node, data + at + 8, 8);
			memcpy(&kind, data + at + 16, 2);
			if (l > WIRE_META_MAX_LEN || size - at - META_REC_HDR < l)
				break;
			const char *pl = data + at + META_REC_HDR;
			if (rec_sum(node, kind, pl, (uint16_t)l) != sum)
				break;
			apply_locked(m, node, kind, pl, (uint16_t)l);
			at += META_REC_HDR + l;
		}
		good = at;
		if (good != size) {
			log_warn("store: %s: cutting a torn or corrupt tail at byte %zu of %zu",
				 path, good, size);
			if (ftruncate(m->fd, (off_t)good) || fdatasync(m->fd)) {
				rc = -errno;
				goto cleanup;
			}
		}
	}
	if (lseek(m->fd, (off_t)good, SEEK_SET) < 0) {
		rc = -errno;
		goto cleanup;
	}
	*out = m;
	m = NULL;
cleanup:
	free(data);
	if (m)
		store__meta_close(m);
	return rc;
}

void store__meta_close(struct store__meta *m)
{
	if (!m)
		return;
	if (m->fd >= 0)
		close(m->fd);
	for (uint32_t i = 1; i < m->procs.n; i++)
		free(m->procs.v[i].v);
	free(m->syms.v);
	free(m->syms.head);
	free(m->procs.v);
	free(m->procs.head);
	free(m->conns.v);
	free(m->conns.head);
	free(m->nodes.v);
	free(m->nodes.head);
	buf_free(&m->pending);
	pthread_rwlock_destroy(&m->lock);
	pthread_mutex_destroy(&m->pending_mu);
	while (m->chunks) {
		void **c = m->chunks;
		m->chunks = c[0];
		free(c);
	}
	free(m);
}

/* ------------------------------------------------------------------ lookups */

/* Lookups are called by query threads holding no lock; they take the read lock and copy the
 * entry out, since the writer may move the arrays once the lock is released. */
bool store__meta_proc(struct store__meta *m, uint64_t node, uint32_t pid, uint64_t ts,
		      struct store__proc *out)
{
	bool found = false;
	pthread_rwlock_rdlock(&m->lock);
	struct procv *pv = procv_find(m, node, pid);
	if (pv && pv->n) {
		uint32_t k = 0;
		for (uint32_t i = 1; i < pv->n; i++)
			if (pv->v[i].start_ns <= ts)
				k = i;
		*out = pv->v[k];
		out->valid_from = k ? pv->v[k].start_ns : 0;
		out->valid_to = k + 1 < pv->n ? pv->v[k + 1].start_ns : UINT64_MAX;
		found = true;
	}
	pthread_rwlock_unlock(&m->lock);
	return found;
}

bool store__meta_conn(struct store__meta *m, uint64_t node, uint64_t conn, struct store__conn *out)
{
	pthread_rwlock_rdlock(&m->lock);
	struct connv *cv = conn_find(m, node, conn);
	if (cv)
		*out = cv->c;
	pthread_rwlock_unlock(&m->lock);
	return cv != NULL;
}

uint32_t store__meta_node(struct store__meta *m, uint64_t node)
{
	uint32_t sym = 0;
	uint64_t h = store__hash_u64(node);
	pthread_rwlock_rdlock(&m->lock);
	for (uint32_t i = m->nodes.head[h & (m->nodes.nhead - 1)]; i; i = m->nodes.v[i].next)
		if (m->nodes.v[i].node == node)
			sym = m->nodes.v[i].sym;
	pthread_rwlock_unlock(&m->lock);
	return sym;
}

void store__meta_counts(struct store__meta *m, uint64_t *procs, uint64_t *conns, uint64_t *nodes)
{
	pthread_rwlock_rdlock(&m->lock);
	*procs = m->nproc_entries;
	*conns = m->conns.n - 1;
	*nodes = m->nodes.n - 1;
	pthread_rwlock_unlock(&m->lock);
}
