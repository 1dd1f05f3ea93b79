/*
 * correlate.c - the span index behind correlate.h: which span an event belongs to, and which
 * stored events to look at again when a span arrives late.
 *
 * Every span lives in four structures at once:
 *
 *   - an interval treap keyed by (pid, start, end descending, seq), each node carrying the
 *     largest end in its subtree. A lookup walks keys downward from (pid, ts) and prunes any
 *     subtree whose largest end is before the event, so the first span that passes the filters
 *     is the one with the latest start, then the shortest: the innermost. Spans without a pid
 *     are not in it (nothing can join them), but still in the three below;
 *   - a hash by (trace id, span id): duplicates, parents;
 *   - per trace: the list of its spans and the first transaction id seen in it;
 *   - the parent links: a span whose parent is indexed is in its parent's child list; one whose
 *     parent is not (yet) indexed is an orphan, in a hash by (trace id, parent id), adopted
 *     when the parent arrives. Children usually arrive before their parents (they end first),
 *     so adoption is the common case and must not scan.
 *
 * A binary min-heap by max(end, arrival time) picks what to evict (max_spans) and what to
 * expire: a span that arrives hours late still gets its full retention from its arrival.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "graph/correlate.h"

struct ctrace;

struct cspan {
	/* treap */
	struct cspan *l, *r;
	uint32_t prio;
	uint64_t max_end;
	/* hash by (trace, span id) */
	struct cspan *hnext;
	/* the trace's span list */
	struct ctrace *tr;
	struct cspan *tprev, *tnext;
	/* parent links: parent == NULL and a nonzero parent_id means an orphan */
	struct cspan *parent, *child;
	struct cspan *sprev, *snext; /* siblings, or fellow orphans of the same (trace, parent) */
	size_t heap_i;
	bool orphan; /* in the orphan hash (parent not indexed) */
	uint64_t seq;
	uint8_t trace_id[16], span_id[8], parent_id[8];
	uint64_t start, end;
	uint64_t keep; /* max(end, arrival): retention counts from here */
	uint64_t host; /* hash of the node name; 0 = unknown */
	uint32_t pid, tid;
	char *txn; /* own transaction attribute, or NULL */
};

struct ctrace {
	uint8_t id[16];
	struct ctrace *hnext;
	struct cspan *spans;
	size_t n;
	char *txn; /* the first transaction id seen in this trace, or NULL */
};

/* Orphans waiting for the parent (trace, parent_id): a chain through sprev/snext. */
struct corphans {
	uint8_t trace_id[16], parent_id[8];
	struct corphans *hnext;
	struct cspan *first;
};

struct correlate {
	struct corr_opts o;
	pthread_rwlock_t lock;
	struct cspan *root; /* treap */
	struct cspan **spans_h;
	struct ctrace **traces_h;
	struct corphans **orph_h;
	size_t nbuckets; /* power of two, shared by the three hashes */
	struct cspan **heap;
	size_t heap_n, heap_cap;
	uint64_t seq, rng;
	struct corr_stats st;	/* under the lock, but for: */
	uint64_t lookups, hits; /* atomics (lookups run concurrently) */
};

/* ------------------------------------------------------------------------------ hashing */

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static size_t bucket2(const struct correlate *c, const uint8_t t[16], const uint8_t s[8])
{
	uint64_t h = hash_bytes(t, 16, 0xcbf29ce484222325ull);
	return (size_t)(hash_bytes(s, 8, h) >> 7) & (c->nbuckets - 1);
}

static size_t bucket1(const struct correlate *c, const uint8_t t[16])
{
	return (size_t)(hash_bytes(t, 16, 0xcbf29ce484222325ull) >> 7) & (c->nbuckets - 1);
}

static uint64_t host_hash(const char *h)
{
	if (!h || !h[0])
		return 0;
	uint64_t v = hash_bytes(h, strlen(h), 0xcbf29ce484222325ull);
	return v ? v : 1;
}

static struct cspan *span_find(const struct correlate *c, const uint8_t t[16], const uint8_t s[8])
{
	for (struct cspan *x = c->spans_h[bucket2(c, t, s)]; x; x = x->hnext)
		if (!memcmp(x->span_id, s, 8) && !memcmp(x->trace_id, t, 16))
			return x;
	return NULL;
}

static struct ctrace *trace_find(const struct correlate *c, const uint8_t t[16])
{
	for (struct ctrace *x = c->traces_h[bucket1(c, t)]; x; x = x->hnext)
		if (!memcmp(x->id, t, 16))
			return x;
	return NULL;
}

static struct corphans **orph_slot(const struct correlate *c, const uint8_t t[16],
				   const uint8_t p[8])
{
	struct corphans **pp = &c->orph_h[bucket2(c, t, p)];
	while (*pp && (memcmp((*pp)->parent_id, p, 8) || memcmp((*pp)->trace_id, t, 16)))
		pp = &(*pp)->hnext;
	return pp;
}

/* ------------------------------------------------------------------------------ treap */

/* Key order: (pid, start, end descending, seq). */
static int key_cmp(const struct cspan *a, const struct cspan *b)
{
	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	if (a->end != b->end)
		return a->end > b->end ? -1 : 1;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return 0;
}

static void fix(struct cspan *n)
{
	uint64_t m = n->end;
	if (n->l && n->l->max_end > m)
		m = n->l->max_end;
	if (n->r && n->r->max_end > m)
		m = n->r->max_end;
	n->max_end = m;
}

static struct cspan *rot_right(struct cspan *n)
{
	struct cspan *l = n->l;
	n->l = l->r;
	l->r = n;
	fix(n);
	fix(l);
	return l;
}

static struct cspan *rot_left(struct cspan *n)
{
	struct cspan *r = n->r;
	n->r = r->l;
	r->l = n;
	fix(n);
	fix(r);
	return r;
}

static struct cspan *treap_insert(struct cspan *t, struct cspan *n)
{
	if (!t) {
		n->l = n->r = NULL;
		fix(n);
		return n;
	}
	if (key_cmp(n, t) < 0) {
		t->l = treap_insert(t->l, n);
		if (t->l->prio > t->prio)
			t = rot_right(t);
	} else {
		t->r = treap_insert(t->r, n);
		if (t->r->prio > t->prio)
			t = rot_left(t);
	}
	fix(t);
	return t;
}

static struct cspan *treap_remove(struct cspan *t, struct cspan *n)
{
	if (!t)
		return NULL; /* NEVER: n is in the tree */
	if (t == n) {
		if (!t->l)
			return t->r;
		if (!t->r)
			return t->l;
		if (t->l->prio > t->r->prio) {
			t = rot_right(t);
			t->r = treap_remove(t->r, n);
		} else {
			t = rot_left(t);
			t->l = treap_remove(t->l, n);
		}
	} else if (key_cmp(n, t) < 0) {
		t->l = treap_remove(t->l, n);
	} else {
		t->r = treap_remove(t->r, n);
	}
	fix(t);
	return t;
}

struct query {
	uint32_t pid, tid;
	uint64_t ts, need; /* an event starting at ts needs a span ending at or after need */
	uint64_t host;
};

static bool qualifies(const struct cspan *n, const struct query *q)
{
	return n->end >= q->need && (n->tid == 0 || n->tid == q->tid) &&
	       (n->host == 0 || q->host == 0 || n->host == q->host);
}

/*
 * The first span in descending key order at or below (pid, ts) that qualifies: the latest
 * start, then the shortest. Subtrees ending before the event are skipped whole.
 */
static struct cspan *treap_best(struct cspan *n, const struct query *q)
{
	while (n) {
		if (n->max_end < q->need)
			return NULL;
		if (n->pid > q->pid || (n->pid == q->pid && n->start > q->ts)) {
			n = n->l; /* n and its right subtree start after the event */
			continue;
		}
		struct cspan *b = treap_best(n->r, q);
		if (b)
			return b;
		if (n->pid < q->pid)
			return NULL; /* n and its left subtree belong to smaller pids */
		if (qualifies(n, q))
			return n;
		n = n->l;
	}
	return NULL;
}

/* ------------------------------------------------------------------------------ heap by keep */

static bool heap_less(const struct cspan *a, const struct cspan *b)
{
	return a->keep < b->keep || (a->keep == b->keep && a->seq < b->seq);
}

static void heap_set(struct correlate *c, size_t i, struct cspan *s)
{
	c->heap[i] = s;
	s->heap_i = i;
}

static void heap_up(struct correlate *c, size_t i)
{
	struct cspan *s = c->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!heap_less(s, c->heap[p]))
			break;
		heap_set(c, i, c->heap[p]);
		i = p;
	}
	heap_set(c, i, s);
}

static void heap_down(struct correlate *c, size_t i)
{
	struct cspan *s = c->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct cspan *best = s;
		if (l < c->heap_n && heap_less(c->heap[l], best))
			m = l, best = c->heap[l];
		if (l + 1 < c->heap_n && heap_less(c->heap[l + 1], best))
			m = l + 1, best = c->heap[l + 1];
		if (m == i)
			break;
		heap_set(c, i, best);
		i = m;
	}
	heap_set(c, i, s);
}

static void heap_remove(struct correlate *c, struct cspan *s)
{
	size_t i = s->heap_i;
	struct cspan *last = c->heap[--c->heap_n];
	if (last == s)
		return;
	heap_set(c, i, last);
	heap_up(c, i);
	heap_down(c, last->heap_i);
}

/* ------------------------------------------------------------------------------ lifecycle */

void correlate_opts_from_config(struct corr_opts *o, const struct kp_config *cfg)
{
	o->end_slack_ns = (uint64_t)cfg->otlp_join_slack_us * NSEC_PER_USEC;
	o->retention_ns = (uint64_t)cfg->otlp_span_retention_sec * NSEC_PER_SEC;
	o->max_spans = (size_t)cfg->otlp_span_index_max;
}

int correlate_new(const struct corr_opts *o, struct correlate **out)
{
	if (!o->max_spans)
		return -EINVAL;
	struct correlate *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->o = *o;
	/* Buckets: the next power of two at or above max_spans / 2, at least 1024. */
	c->nbuckets = 1024;
	while (c->nbuckets < o->max_spans / 2 && c->nbuckets < (1u << 26))
		c->nbuckets <<= 1;
	c->spans_h = calloc(c->nbuckets, sizeof(*c->spans_h));
	c->traces_h = calloc(c->nbuckets, sizeof(*c->traces_h));
	c->orph_h = calloc(c->nbuckets, sizeof(*c->orph_h));
	c->rng = 0x9e3779b97f4a7c15ull;
	/* Writers first: lookups come from every ingest thread all the time, and glibc's default
	 * (readers first) would starve the span adds. */
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	int lrc = pthread_rwlock_init(&c->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	if (!c->spans_h || !c->traces_h || !c->orph_h || lrc) {
		free(c->spans_h);
		free(c->traces_h);
		free(c->orph_h);
		free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void correlate_free(struct correlate *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->heap_n; i++) {
		free(c->heap[i]->txn);
		free(c->heap[i]);
	}
	for (size_t b = 0; b < c->nbuckets; b++) {
		for (struct ctrace *t = c->traces_h[b], *n; t; t = n) {
			n = t->hnext;
			free(t->txn);
			free(t);
		}
		for (struct corphans *o = c->orph_h[b], *n; o; o = n) {
			n = o->hnext;
			free(o);
		}
	}
	free(c->heap);
	free(c->spans_h);
	free(c->traces_h);
	free(c->orph_h);
	pthread_rwlock_destroy(&c->lock);
	free(c);
}

void correlate_retag_free(struct corr_retag *r)
{
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------------------------ retag ranges */

static int retag_add(struct corr_retag *r, const struct cspan *s)
{
	if (!s->pid)
		return 0; /* no events join a span without a pid */
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct corr_range *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (struct corr_range){s->pid, s->tid, s->start, s->end};
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct corr_range *x = a, *y = b;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	if (x->t0 != y->t0)
		return x->t0 < y->t0 ? -1 : 1;
	return (x->t1 > y->t1) - (x->t1 < y->t1);
}

/* Sorts the ranges and merges those of one thread that overlap or touch. */
static void retag_merge(struct corr_retag *r)
{
	if (r->n < 2)
		return;
	qsort(r->v, r->n, sizeof(*r->v), range_cmp);
	size_t o = 0;
	for (size_t i = 1; i < r->n; i++) {
		struct corr_range *a = &r->v[o], *b = &r->v[i];
		if (a->pid == b->pid && a->tid == b->tid && b->t0 <= a->t1 + 1) {
			if (b->t1 > a->t1)
				a->t1 = b->t1;
		} else {
			r->v[++o] = *b;
		}
	}
	r->n = o + 1;
}

/* Every span of the subtree under s (s excluded), for its new effective transaction. */
static int retag_descendants(struct corr_retag *r, const struct cspan *s, int depth)
{
	if (depth > CORR_PARENT_HOPS)
		return 0;
	for (const struct cspan *k = s->child; k; k = k->snext) {
		if (retag_add(r, k) < 0 || retag_descendants(r, k, depth + 1) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------------------------ txn */

/* The effective transaction of s: its own, an ancestor's, the trace's; or NULL. */
static const char *effective_txn(const struct cspan *s)
{
	const struct cspan *x = s;
	for (int hop = 0; x && hop <= CORR_PARENT_HOPS; hop++, x = x->parent)
		if (x->txn)
			return x->txn;
	return s->tr->txn;
}

/* ------------------------------------------------------------------------------ add / remove */

static void orphan_unlink(struct correlate *c, struct cspan *s)
{
	if (!s->orphan)
		return;
	struct corphans **pp = orph_slot(c, s->trace_id, s->parent_id);
	struct corphans *o = *pp;
	s->orphan = false;
	if (!o)
		return; /* NEVER: an orphan's entry exists while it is in it */
	if (s->sprev)
		s->sprev->snext = s->snext;
	else
		o->first = s->snext;
	if (s->snext)
		s->snext->sprev = s->sprev;
	s->sprev = s->snext = NULL;
	if (!o->first) {
		*pp = o->hnext;
		free(o);
	}
}

static int orphan_link(struct correlate *c, struct cspan *s)
{
	struct corphans **pp = orph_slot(c, s->trace_id, s->parent_id);
	if (!*pp) {
		struct corphans *o = calloc(1, sizeof(*o));
		if (!o)
			return -ENOMEM;
		memcpy(o->trace_id, s->trace_id, 16);
		memcpy(o->parent_id, s->parent_id, 8);
		*pp = o;
	}
	s->parent = NULL;
	s->orphan = true;
	s->sprev = NULL;
	s->snext = (*pp)->first;
	if (s->snext)
		s->snext->sprev = s;
	(*pp)->first = s;
	return 0;
}

static void child_link(struct cspan *parent, struct cspan *s)
{
	s->parent = parent;
	s->sprev = NULL;
	s->snext = parent->child;
	if (s->snext)
		s->snext->sprev = s;
	parent->child = s;
}

static void child_unlink(struct cspan *s)
{
	if (s->sprev)
		s->sprev->snext = s->snext;
	else
		s->parent->child = s->snext;
	if (s->snext)
		s->snext->sprev = s->sprev;
	s->sprev = s->snext = NULL;
	s->parent = NULL;
}

static bool is_root(const struct cspan *s)
{
	static const uint8_t z[8];
	return !memcmp(s->parent_id, z, 8);
}

/* Takes s out of every structure and frees it. Its children become orphans again. */
static void span_remove(struct correlate *c, struct cspan *s)
{
	if (s->pid)
		c->root = treap_remove(c->root, s);
	heap_remove(c, s);
	struct cspan **pp = &c->spans_h[bucket2(c, s->trace_id, s->span_id)];
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	if (s->parent)
		child_unlink(s);
	else
		orphan_unlink(c, s);
	while (s->child) {
		struct cspan *k = s->child;
		child_unlink(k);
		orphan_link(c, k); /* on out-of-memory it stays findable, just not adoptable */
	}
	struct ctrace *t = s->tr;
	if (s->tprev)
		s->tprev->tnext = s->tnext;
	else
		t->spans = s->tnext;
	if (s->tnext)
		s->tnext->tprev = s->tprev;
	if (--t->n == 0) {
		struct ctrace **tp = &c->traces_h[bucket1(c, t->id)];
		while (*tp != t)
			tp = &(*tp)->hnext;
		*tp = t->hnext;
		free(t->txn);
		free(t);
		c->st.traces--;
	}
	free(s->txn);
	free(s);
	c->st.spans--;
}

static const char *node_name(const struct otlp_span *sp)
{
	for (int i = 0; i < sp->n_res_attrs; i++)
		if (!strcmp(sp->res_attrs[i].key, "k8s.node.name") && sp->res_attrs[i].value[0])
			return sp->res_attrs[i].value;
	return sp->host;
}

static char *txn_copy(struct correlate *c, const char *txn)
{
	if (!txn || !txn[0])
		return NULL;
	size_t n = strlen(txn);
	if (n > CORR_TXN_MAX) {
		n = CORR_TXN_MAX;
		c->st.txn_cut++;
	}
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, txn, n);
		p[n] = '\0';
	}
	return p;
}

static int span_add(struct correlate *c, const struct otlp_span *sp, uint64_t now_ns,
		    struct corr_retag *rt)
{
	if (span_find(c, sp->trace_id, sp->span_id)) {
		c->st.dups++;
		return 0;
	}
	while (c->heap_n >= c->o.max_spans) {
		span_remove(c, c->heap[0]);
		c->st.evicted++;
	}
	if (c->heap_n == c->heap_cap) {
		size_t cap = c->heap_cap ? c->heap_cap * 2 : 1024;
		struct cspan **h = realloc(c->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		c->heap = h;
		c->heap_cap = cap;
	}
	struct cspan *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s->trace_id, sp->trace_id, 16);
	memcpy(s->span_id, sp->span_id, 8);
	memcpy(s->parent_id, sp->parent_id, 8);
	s->start = sp->start_ns;
	s->end = sp->end_ns;
	s->keep = sp->end_ns > now_ns ? sp->end_ns : now_ns;
	s->pid = sp->pid;
	s->tid = sp->tid;
	s->host = host_hash(node_name(sp));
	s->seq = ++c->seq;
	s->txn = txn_copy(c, sp->txn);
	if (sp->txn && sp->txn[0] && !s->txn) {
		free(s);
		return -ENOMEM;
	}
	/* xorshift64: treap priorities */
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	s->prio = (uint32_t)(c->rng >> 32);

	struct ctrace *t = trace_find(c, s->trace_id);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t) {
			free(s->txn);
			free(s);
			return -ENOMEM;
		}
		memcpy(t->id, s->trace_id, 16);
		size_t b = bucket1(c, t->id);
		t->hnext = c->traces_h[b];
		c->traces_h[b] = t;
		c->st.traces++;
	}
	/* Parent: link under it if indexed, else wait as an orphan. A span naming itself as its
	 * parent (a broken exporter) is treated as a root. */
	if (!is_root(s) && memcmp(s->parent_id, s->span_id, 8)) {
		struct cspan *p = span_find(c, s->trace_id, s->parent_id);
		if (p) {
			child_link(p, s);
		} else if (orphan_link(c, s) < 0) {
			if (!t->n) {
				struct ctrace **tp = &c->traces_h[bucket1(c, t->id)];
				while (*tp != t)
					tp = &(*tp)->hnext;
				*tp = t->hnext;
				free(t);
				c->st.traces--;
			}
			free(s->txn);
			free(s);
			return -ENOMEM;
		}
	}
	/* From here nothing fails. */
	s->tr = t;
	s->tnext = t->spans;
	if (t->spans)
		t->spans->tprev = s;
	t->spans = s;
	t->n++;
	size_t b = bucket2(c, s->trace_id, s->span_id);
	s->hnext = c->spans_h[b];
	c->spans_h[b] = s;
	heap_set(c, c->heap_n++, s);
	heap_up(c, c->heap_n - 1);
	if (s->pid)
		c->root = treap_insert(c->root, s);
	else
		c->st.no_pid++;
	c->st.spans++;
	c->st.added++;

	/* Children that arrived first are adopted; what they inherit may change. */
	const char *old_trace_txn = t->txn;
	struct corphans **op = orph_slot(c, s->trace_id, s->span_id);
	bool adopted = *op != NULL;
	if (*op) {
		struct corphans *o = *op;
		*op = o->hnext;
		while (o->first) {
			struct cspan *k = o->first;
			o->first = k->snext;
			k->sprev = k->snext = NULL;
			k->orphan = false;
			child_link(s, k);
		}
		free(o);
	}
	if (s->txn && !t->txn)
		t->txn = strdup(s->txn); /* failure only loses the trace-wide fallback */

	/*
	 * The ranges: s itself (events in it may have s as their innermost span now); if the
	 * trace just got its first transaction, every span of it; else, if s changed what its
	 * adopted descendants inherit, those.
	 */
	if (retag_add(rt, s) < 0)
		return -ENOMEM;
	if (!old_trace_txn && t->txn) {
		for (struct cspan *x = t->spans; x; x = x->tnext)
			if (x != s && retag_add(rt, x) < 0)
				return -ENOMEM;
	} else if (adopted) {
		const char *now = effective_txn(s);
		if (now != old_trace_txn && (!now || !old_trace_txn || strcmp(now, old_trace_txn)))
			if (retag_descendants(rt, s, 0) < 0)
				return -ENOMEM;
	}
	return 0;
}

int correlate_add_spans(struct correlate *c, const struct otlp_span *spans, size_t n,
			uint64_t now_ns, struct corr_retag *retag)
{
	int rc = 0;
	pthread_rwlock_wrlock(&c->lock);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = span_add(c, &spans[i], now_ns, retag);
	pthread_rwlock_unlock(&c->lock);
	retag_merge(retag);
	return rc;
}

int correlate_lookup(struct correlate *c, const char *host, uint32_t pid, uint32_t tid, uint64_t ts,
		     uint64_t dur, struct corr_tag *out)
{
	uint64_t end = ts + dur < ts ? UINT64_MAX : ts + dur;
	struct query q = {
		.pid = pid,
		.tid = tid,
		.ts = ts,
		.need = end - ts > c->o.end_slack_ns ? end - c->o.end_slack_ns : ts,
		.host = host_hash(host),
	};
	__atomic_fetch_add(&c->lookups, 1, __ATOMIC_RELAXED);
	if (!pid)
		return 0;
	pthread_rwlock_rdlock(&c->lock);
	const struct cspan *s = treap_best(c->root, &q);
	if (s) {
		memcpy(out->trace_id, s->trace_id, 16);
		memcpy(out->span_id, s->span_id, 8);
		out->start_ns = s->start;
		out->end_ns = s->end;
		const char *txn = effective_txn(s);
		snprintf(out->txn, sizeof(out->txn), "%s", txn ? txn : "");
	}
	pthread_rwlock_unlock(&c->lock);
	if (s)
		__atomic_fetch_add(&c->hits, 1, __ATOMIC_RELAXED);
	return s != NULL;
}

size_t correlate_expire(struct correlate *c, uint64_t now_ns)
{
	if (now_ns < c->o.retention_ns)
		return 0;
	uint64_t horizon = now_ns - c->o.retention_ns;
	size_t n = 0;
	pthread_rwlock_wrlock(&c->lock);
	while (c->heap_n && c->heap[0]->keep < horizon) {
		span_remove(c, c->heap[0]);
		n++;
	}
	c->st.expired += n;
	pthread_rwlock_unlock(&c->lock);
	return n;
}

void correlate_stats(struct correlate *c, struct corr_stats *st)
{
	pthread_rwlock_rdlock(&c->lock);
	*st = c->st;
	st->lookups = __atomic_load_n(&c->lookups, __ATOMIC_RELAXED);
	st->hits = __atomic_load_n(&c->hits, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&c->lock);
}
