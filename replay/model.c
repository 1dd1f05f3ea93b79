/*
 * model.c - the recorded world as the off-script replay sees it: for every recorded TCP
 * connection side, the bytes it could read and from which recorded time.
 *
 * Sources, in one pass over the recording in global order: a side's own reads (bytes it read at
 * time t were there by t) and, when the other side was recorded too (same session), that side's
 * sends (bytes sent at t are readable from t on loopback). Both ends name the connection the same
 * way: the directed address/port pair of one end is the reverse of the other's, so matching needs
 * no shared ids; the byte offset in each direction plays the role of the TCP sequence number.
 * Where both sources cover a byte, the earlier time wins, and availability is made monotone (a
 * later byte being readable means every earlier one was). EOF comes from the peer closing (or
 * exiting) or from a recorded read returning 0.
 *
 * This is what lets a replay with a longer timeout succeed "for the real reason": the answer the
 * client never read in the recording is there, at the time the server sent it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/util.h"
#include "replay/internal.h"
#include "replay/sysc.h"

static bool tuple_eq(const struct kp_cap_sock *a, const struct kp_cap_sock *b)
{
	return a->family == b->family && a->sport == b->sport && a->dport == b->dport &&
	       !memcmp(a->saddr, b->saddr, 16) && !memcmp(a->daddr, b->daddr, 16);
}

static bool tuple_rev(const struct kp_cap_sock *a, const struct kp_cap_sock *b)
{
	return a->family == b->family && a->sport == b->dport && a->dport == b->sport &&
	       !memcmp(a->saddr, b->daddr, 16) && !memcmp(a->daddr, b->saddr, 16);
}

int replay__model_find(const struct replay__model *m, const struct kp_cap_sock *s)
{
	for (int i = 0; i < m->neps; i++)
		if (tuple_eq(&m->eps[i].tuple, s))
			return i;
	return -1;
}

/* (tgid, fd) -> endpoint, while walking the recording */
struct fdmap {
	uint64_t *key;
	int *ep;
	int n, cap;
};

static int fdmap_find(struct fdmap *f, uint64_t k)
{
	for (int i = 0; i < f->n; i++)
		if (f->key[i] == k)
			return i;
	return -1;
}

static void fdmap_set(struct fdmap *f, uint64_t k, int ep)
{
	int i = fdmap_find(f, k);
	if (i >= 0) {
		f->ep[i] = ep;
		return;
	}
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 32;
		f->key = xrealloc(f->key, sizeof(*f->key) * (size_t)f->cap);
		f->ep = xrealloc(f->ep, sizeof(*f->ep) * (size_t)f->cap);
	}
	f->key[f->n] = k;
	f->ep[f->n++] = ep;
}

static void fdmap_del(struct fdmap *f, uint64_t k)
{
	int i = fdmap_find(f, k);
	if (i >= 0) {
		f->key[i] = f->key[f->n - 1];
		f->ep[i] = f->ep[f->n - 1];
		f->n--;
	}
}

static void seg_push(struct replay__seg **v, int *n, struct replay__seg s)
{
	if (*n == 0 || (*n >= 4 && !(*n & (*n - 1)))) /* capacity 4, then doubling */
		*v = xrealloc(*v, sizeof(**v) * (size_t)(*n ? *n * 2 : 4));
	(*v)[(*n)++] = s;
}

static int ep_get(struct replay__model *m, const struct kp_cap_sock *s, uint32_t tgid)
{
	int i = replay__model_find(m, s);
	if (i >= 0)
		return i;
	m->eps = xrealloc(m->eps, sizeof(*m->eps) * (size_t)(m->neps + 1));
	struct replay__ep *e = &m->eps[m->neps];
	memset(e, 0, sizeof(*e));
	e->tuple = *s;
	e->tgid = tgid;
	e->peer = -1;
	return m->neps++;
}

static uint64_t umin_nz(uint64_t a, uint64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

/* Finds the segment of v covering offset o (v sorted, contiguous from 0), or -1. */
static int seg_at(const struct replay__seg *v, int n, uint64_t o)
{
	int lo = 0, hi = n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (o < v[mid].off)
			hi = mid - 1;
		else if (o >= v[mid].off + v[mid].len)
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Merges own reads and the peer's sends into e->in. */
static void merge(struct replay__ep *e, const struct replay__ep *p)
{
	int nb = 0, cap = 2 * (e->nrd + (p ? p->nwr : 0)) + 2;
	uint64_t *b = xmalloc(sizeof(*b) * (size_t)cap);
	uint64_t total = e->rd_total;
	if (p && p->wr_total > total)
		total = p->wr_total;
	b[nb++] = 0;
	b[nb++] = total;
	for (int i = 0; i < e->nrd; i++) {
		b[nb++] = e->rd[i].off;
		b[nb++] = e->rd[i].off + e->rd[i].len;
	}
	for (int i = 0; p && i < p->nwr; i++) {
		b[nb++] = p->wr[i].off;
		b[nb++] = p->wr[i].off + p->wr[i].len;
	}
	qsort(b, (size_t)nb, sizeof(*b), u64_cmp);
	for (int i = 0; i + 1 < nb; i++) {
		uint64_t lo = b[i], hi = b[i + 1];
		if (hi == lo || hi > total)
			continue;
		struct replay__seg s = {.off = lo, .len = hi - lo, .t = UINT64_MAX};
		int r = seg_at(e->rd, e->nrd, lo);
		if (r >= 0) {
			s.t = e->rd[r].t;
			s.data = e->rd[r].data ? e->rd[r].data + (lo - e->rd[r].off) : NULL;
		}
		int w = p ? seg_at(p->wr, p->nwr, lo) : -1;
		if (w >= 0) {
			if (p->wr[w].t < s.t)
				s.t = p->wr[w].t;
			if (!s.data && p->wr[w].data)
				s.data = p->wr[w].data + (lo - p->wr[w].off);
		}
		seg_push(&e->in, &e->nin, s);
	}
	free(b);
	/* availability is monotone: a later byte readable at t means every earlier one was */
	for (int i = e->nin - 2; i >= 0; i--)
		if (e->in[i + 1].t < e->in[i].t)
			e->in[i].t = e->in[i + 1].t;
	e->in_total = total;
	e->in_eof_t = umin_nz(p ? p->close_t : 0, e->eof_read_t);
}

/*
 * A segment's data pointer covers `dlen` captured bytes; segments are split so that a segment is
 * either fully captured or not at all: a truncated read yields a captured part and a bare part.
 */
static void add_seg(struct replay__seg **v, int *n, uint64_t *total, const struct kp_cap_rec *c,
		    uint64_t len)
{
	uint64_t cap = KP_MIN(len, (uint64_t)c->payload_len);
	if (cap)
		seg_push(v, n, (struct replay__seg){*total, cap, c->ts_exit, kp_cap_payload(c)});
	if (len > cap)
		seg_push(v, n, (struct replay__seg){*total + cap, len - cap, c->ts_exit, NULL});
	*total += len;
}

int replay__model_build(struct replay__model **out, const struct rec *r, char *err, size_t errlen)
{
	struct replay__model *m = xcalloc(1, sizeof(*m));
	struct fdmap fm = {0};
	for (uint64_t n = 0; n < rec_ncalls(r); n++) {
		int th;
		const struct kp_cap_rec *c = rec_call_seq(r, n, &th);
		const struct sysc *s = sysc_by_nr(c->nr);
		if (!s)
			continue;
		struct kp_cap_sock k;
		long fd = (s->cap.flags & KP_CAPD_NEWFD) ? (long)c->ret : (long)(int)c->args[0];
		/*
		 * An fd joins a connection at connect/accept, or at its first call with a complete
		 * address pair (a socket from before the recording). Later tuples do not move it:
		 * once the peer resets, the kernel unhashes the socket and its local port reads 0.
		 */
		bool has = kp_cap_sock_get(c, &k) && k.dport != 0 && k.sport != 0 &&
			   k.type == SOCK_STREAM;
		uint64_t key = (uint64_t)c->pid << 32 | (uint32_t)fd;
		bool opens = s->kind == SK_CONNECT || (s->kind == SK_NEWFD && c->ret >= 0);
		if (has && fd >= 0 && (opens || fdmap_find(&fm, key) < 0)) {
			int e = ep_get(m, &k, c->pid);
			fdmap_set(&fm, key, e);
			if (opens)
				m->eps[e].connect_t = c->ts_exit;
		}
		if (!(s->cap.flags & (KP_CAPD_FD | KP_CAPD_NEWFD)) || fd < 0)
			continue;
		int fi = fdmap_find(&fm, (uint64_t)c->pid << 32 | (uint32_t)fd);
		if (fi < 0)
			continue;
		struct replay__ep *e = &m->eps[fm.ep[fi]];
		switch (s->kind) {
		case SK_IN:
			if (c->nr == 8) /* lseek */
				break;
			if (c->ret > 0)
				add_seg(&e->rd, &e->nrd, &e->rd_total, c, (uint64_t)c->ret);
			else if (c->ret == 0 && !e->eof_read_t)
				e->eof_read_t = c->ts_exit;
			break;
		case SK_OUT:
			if (c->ret > 0 && c->nr != 74 && c->nr != 75 && c->nr != 77)
				add_seg(&e->wr, &e->nwr, &e->wr_total, c, (uint64_t)c->ret);
			break;
		case SK_CLOSE:
			e->close_t = umin_nz(e->close_t, c->ts_exit);
			fdmap_del(&fm, (uint64_t)c->pid << 32 | (uint32_t)fd);
			break;
		case SK_SOCKOP:
			if (c->nr == 48 && c->args[1] != SHUT_RD)
				e->close_t = umin_nz(e->close_t, c->ts_exit);
			break;
		default:
			break;
		}
	}
	free(fm.key);
	free(fm.ep);
	/* a side whose process ended closed then, at the latest */
	for (int i = 0; i < m->neps; i++) {
		struct replay__ep *e = &m->eps[i];
		uint64_t end = 0;
		bool exited = false;
		for (int t = 0; t < rec_nthreads(r); t++) {
			const struct rec_thread *rt = rec_thread(r, t);
			if (rt->tgid != e->tgid)
				continue;
			if (rt->end_ns > end)
				end = rt->end_ns;
			if (rt->tid == rt->tgid && (rt->flags & REC_T_EXITED))
				exited = true;
		}
		if (exited)
			e->close_t = umin_nz(e->close_t, end);
	}
	for (int i = 0; i < m->neps; i++)
		for (int j = 0; j < m->neps; j++)
			if (i != j && tuple_rev(&m->eps[i].tuple, &m->eps[j].tuple))
				m->eps[i].peer = j;
	for (int i = 0; i < m->neps; i++)
		merge(&m->eps[i], m->eps[i].peer >= 0 ? &m->eps[m->eps[i].peer] : NULL);
	(void)err;
	(void)errlen;
	*out = m;
	return 0;
}

void replay__model_free(struct replay__model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->neps; i++) {
		free(m->eps[i].rd);
		free(m->eps[i].wr);
		free(m->eps[i].in);
	}
	free(m->eps);
	free(m);
}

uint64_t replay__model_avail(const struct replay__model *m, int ep, uint64_t t)
{
	const struct replay__ep *e = &m->eps[ep];
	/* first segment not yet there; t is monotone over segments */
	int lo = 0, hi = e->nin;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (e->in[mid].t <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < e->nin ? e->in[lo].off : e->in_total;
}

uint64_t replay__model_arrival(const struct replay__model *m, int ep, uint64_t off)
{
	const struct replay__ep *e = &m->eps[ep];
	int i = seg_at(e->in, e->nin, off);
	return i >= 0 ? e->in[i].t : UINT64_MAX;
}

bool replay__model_bytes(const struct replay__model *m, int ep, uint64_t off, uint64_t n,
			 uint8_t *out)
{
	const struct replay__ep *e = &m->eps[ep];
	while (n) {
		int i = seg_at(e->in, e->nin, off);
		if (i < 0 || !e->in[i].data)
			return false;
		uint64_t k = KP_MIN(n, e->in[i].off + e->in[i].len - off);
		memcpy(out, e->in[i].data + (off - e->in[i].off), k);
		out += k;
		off += k;
		n -= k;
	}
	return true;
}
