/*
 * codec.c - the column encodings inside a segment block, before the optional LZ4 pass, and the
 * per-granule bloom filters.
 *
 * Every encoding of n u64 values starts with a one-byte tag; all integers in headers are LEB128
 * varints; packed sections are little-endian bit streams padded to a byte:
 *
 *   CONST   tag=0 | value
 *   PFOR    tag=1 | pfor(v)
 *   DELTA   tag=2 | v[0] | pfor(v[i] - v[i-1], i = 1..n-1)      (wrapping u64 differences)
 *   DICT    tag=3 | ndict | pfor(sorted distinct values) | pfor(index of each row)
 *   RLE     tag=4 | nruns | pfor(run values) | pfor(run lengths)
 *   TYPED   tag=5 | u32 mask | per set bit t (ascending): len | encoding of the values of the rows
 *                   whose type maps to t (type < 31 ? type : 31), in row order
 *   STRDICT tag=6 | ndict | pfor(string lengths) | string bytes | pfor(index of each row)
 *
 *   pfor(x[0..m)) = base | w | nexc | [hw] | m*w bits: low bits of x - base
 *                   | nexc * pw bits: positions (pw = bits of m-1) | nexc * hw bits: high parts
 *
 * Patched frame-of-reference ("pfor") keeps the bulk of the values at the width that minimises
 * the total, and stores the few outliers (heavy-tailed durations, the jump where the sort key
 * changes in a delta stream) as exceptions instead of widening every value for them. The encoder
 * computes the exact cost of each candidate from bit-length histograms and encodes only the
 * winner, so sealing stays cheap. TYPED exists because arg0..arg3 mean different things per type
 * (bpf/event.h): an fd, a connection id and an off-CPU reason do not share a frame of reference.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/util.h"
#include "store/internal.h"

enum { E_CONST, E_PFOR, E_DELTA, E_DICT, E_RLE, E_TYPED, E_STRDICT };

/* ------------------------------------------------------------------ varints and bits */

static inline int bitlen(uint64_t v)
{
	return v ? 64 - __builtin_clzll(v) : 0;
}

static inline uint8_t *put_var(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)v | 0x80;
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static inline int get_var(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (int s = 0; s < 70; s += 7) {
		if (*p >= end)
			return -1;
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << s;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
		if (s == 63)
			return -1;
	}
	return -1;
}

struct bitw {
	uint8_t *p;
	uint64_t acc;
	int n;
};

static inline void bw_put(struct bitw *w, uint64_t v, int bits)
{
	if (!bits)
		return;
	if (bits < 64)
		v &= (1ull << bits) - 1;
	w->acc |= v << w->n;
	int t = w->n + bits;
	if (t >= 64) {
		memcpy(w->p, &w->acc, 8);
		w->p += 8;
		w->acc = w->n ? v >> (64 - w->n) : 0;
		t -= 64;
	}
	w->n = t;
}

static inline uint8_t *bw_end(struct bitw *w)
{
	int bytes = (w->n + 7) / 8;
	memcpy(w->p, &w->acc, 8); /* STORE_ENC_BOUND leaves room */
	return w->p + bytes;
}

/* Reads w bits at bit position pos; p has STORE_PAD readable bytes past the section. */
static inline uint64_t get_bits(const uint8_t *p, uint64_t pos, int w)
{
	uint64_t x;
	memcpy(&x, p + (pos >> 3), 8);
	int s = pos & 7;
	x >>= s;
	if (s + w > 64)
		x |= (uint64_t)p[(pos >> 3) + 8] << (64 - s);
	return w == 64 ? x : x & ((1ull << w) - 1);
}

static void unpack(const uint8_t *p, uint32_t n, int w, uint64_t *out)
{
	if (!w) {
		memset(out, 0, sizeof(*out) * n);
		return;
	}
	uint64_t pos = 0;
	if (w <= 56) {
		uint64_t mask = (1ull << w) - 1;
		for (uint32_t i = 0; i < n; i++, pos += (uint64_t)w) {
			uint64_t x;
			memcpy(&x, p + (pos >> 3), 8);
			out[i] = (x >> (pos & 7)) & mask;
		}
		return;
	}
	for (uint32_t i = 0; i < n; i++, pos += (uint64_t)w)
		out[i] = get_bits(p, pos, w);
}

static inline size_t packed_bytes(uint64_t n, int w)
{
	return (n * (uint64_t)w + 7) / 8;
}

/* ------------------------------------------------------------------ pfor */

struct pfor_plan {
	uint64_t base;
	int w, hw, pw;
	uint32_t nexc;
	uint64_t bits; /* total payload bits */
};

static void pfor_plan(const uint64_t *x, uint32_t m, struct pfor_plan *pl)
{
	uint64_t base = UINT64_MAX;
	for (uint32_t i = 0; i < m; i++)
		if (x[i] < base)
			base = x[i];
	if (!m)
		base = 0;
	uint32_t hist[65] = {0};
	for (uint32_t i = 0; i < m; i++)
		hist[bitlen(x[i] - base)]++;
	int maxb = 0;
	for (int b = 64; b >= 0; b--)
		if (hist[b]) {
			maxb = b;
			break;
		}
	int pw = m > 1 ? bitlen(m - 1) : 0;
	uint64_t best = UINT64_MAX;
	uint32_t above = 0; /* values with bitlen > w, for w descending */
	pl->base = base;
	pl->w = maxb;
	pl->hw = 0;
	pl->nexc = 0;
	pl->pw = pw;
	for (int w = maxb; w >= 0; w--) {
		uint64_t cost =
			(uint64_t)m * w + (uint64_t)above * (pw + (maxb - w)) + (above ? 8 : 0);
		if (cost <= best) {
			best = cost;
			pl->w = w;
			pl->nexc = above;
			pl->hw = above ? maxb - w : 0;
		}
		above += hist[w];
	}
	pl->bits = best;
}

static uint8_t *pfor_write(const uint64_t *x, uint32_t m, const struct pfor_plan *pl, uint8_t *p)
{
	p = put_var(p, pl->base);
	*p++ = (uint8_t)pl->w;
	p = put_var(p, pl->nexc);
	if (pl->nexc)
		*p++ = (uint8_t)pl->hw;
	struct bitw bw = {p, 0, 0};
	for (uint32_t i = 0; i < m; i++)
		bw_put(&bw, x[i] - pl->base, pl->w);
	p = bw_end(&bw);
	if (!pl->nexc)
		return p;
	bw = (struct bitw){p, 0, 0};
	for (uint32_t i = 0; i < m; i++)
		if (pl->w < 64 && ((x[i] - pl->base) >> pl->w))
			bw_put(&bw, i, pl->pw);
	p = bw_end(&bw);
	bw = (struct bitw){p, 0, 0};
	for (uint32_t i = 0; i < m; i++)
		if (pl->w < 64 && ((x[i] - pl->base) >> pl->w))
			bw_put(&bw, (x[i] - pl->base) >> pl->w, pl->hw);
	return bw_end(&bw);
}

static uint8_t *pfor_enc(const uint64_t *x, uint32_t m, uint8_t *p)
{
	struct pfor_plan pl;
	pfor_plan(x, m, &pl);
	return pfor_write(x, m, &pl, p);
}

/* Decodes m values; *p advances. Returns 0 or -1. */
static int pfor_dec(const uint8_t **pp, const uint8_t *end, uint32_t m, uint64_t *out)
{
	uint64_t base, nexc, w, hw = 0;
	const uint8_t *p = *pp;
	if (get_var(&p, end, &base) || p >= end)
		return -1;
	w = *p++;
	if (w > 64 || get_var(&p, end, &nexc) || nexc > m)
		return -1;
	if (nexc) {
		if (p >= end)
			return -1;
		hw = *p++;
		if (hw == 0 || w + hw > 64)
			return -1;
	}
	size_t lb = packed_bytes(m, (int)w);
	if ((size_t)(end - p) < lb)
		return -1;
	unpack(p, m, (int)w, out);
	p += lb;
	if (nexc) {
		int pw = m > 1 ? bitlen(m - 1) : 0;
		size_t pb = packed_bytes(nexc, pw), hb = packed_bytes(nexc, (int)hw);
		if ((size_t)(end - p) < pb + hb)
			return -1;
		const uint8_t *hp = p + pb;
		for (uint64_t k = 0; k < nexc; k++) {
			uint64_t pos = pw ? get_bits(p, k * pw, pw) : 0;
			if (pos >= m)
				return -1;
			out[pos] |= get_bits(hp, k * hw, (int)hw) << w;
		}
		p += pb + hb;
	}
	if (base)
		for (uint32_t i = 0; i < m; i++)
			out[i] += base;
	*pp = p;
	return 0;
}

/* ------------------------------------------------------------------ distinct values */

#define DICT_CAP   1024 /* more distinct values than this: no dictionary */
#define HASH_SLOTS 4096

struct dset {
	uint64_t key[HASH_SLOTS];
	uint16_t idx[HASH_SLOTS];
	uint8_t used[HASH_SLOTS];
	uint64_t vals[DICT_CAP];
	uint32_t n;
};

static inline uint32_t slot_of(uint64_t v)
{
	return (uint32_t)(store__hash_u64(v) & (HASH_SLOTS - 1));
}

/* Collects distinct values; returns false when there are more than DICT_CAP. */
static bool dset_build(struct dset *d, const uint64_t *v, uint32_t n)
{
	memset(d->used, 0, sizeof(d->used));
	d->n = 0;
	uint64_t last = 0;
	bool have = false;
	for (uint32_t i = 0; i < n; i++) {
		if (have && v[i] == last)
			continue;
		last = v[i];
		have = true;
		uint32_t s = slot_of(v[i]);
		while (d->used[s] && d->key[s] != v[i])
			s = (s + 1) & (HASH_SLOTS - 1);
		if (d->used[s])
			continue;
		if (d->n == DICT_CAP)
			return false;
		d->used[s] = 1;
		d->key[s] = v[i];
		d->vals[d->n++] = v[i];
	}
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint16_t dset_index(const struct dset *d, uint64_t v)
{
	uint32_t s = slot_of(v);
	while (d->key[s] != v)
		s = (s + 1) & (HASH_SLOTS - 1);
	return d->idx[s];
}

/* ------------------------------------------------------------------ u64 best-of */

#define SSLOTS (STORE_GRANULE * 2)

struct enc_scratch {
	struct dset d;
	uint64_t skey[SSLOTS];
	uint16_t sidx[SSLOTS];
	uint8_t sused[SSLOTS];
	uint64_t tmp[STORE_GRANULE * 2];
	uint64_t tmp2[STORE_GRANULE * 2];
};

static __thread struct enc_scratch *tls_scratch;

static struct enc_scratch *scratch_get(void)
{
	if (!tls_scratch)
		tls_scratch = xmalloc(sizeof(*tls_scratch));
	return tls_scratch;
}

static size_t enc_u64_n(const uint64_t *v, uint32_t n, uint8_t *out, struct enc_scratch *sc)
{
	uint8_t *p = out;
	if (n == 0) {
		*p++ = E_CONST;
		return (size_t)(put_var(p, 0) - out);
	}
	if (n > STORE_GRANULE)
		abort(); /* NEVER: callers split into granules */
	uint32_t runs = 1;
	for (uint32_t i = 1; i < n; i++)
		runs += v[i] != v[i - 1];
	if (runs == 1) {
		*p++ = E_CONST;
		return (size_t)(put_var(p, v[0]) - out);
	}
	/* candidates, in bits */
	struct pfor_plan pf, pd;
	pfor_plan(v, n, &pf);
	uint64_t best = pf.bits;
	int kind = E_PFOR;
	uint64_t *d = sc->tmp;
	for (uint32_t i = 1; i < n; i++)
		d[i - 1] = v[i] - v[i - 1];
	pfor_plan(d, n - 1, &pd);
	if (pd.bits + 64 < best) {
		best = pd.bits + 64;
		kind = E_DELTA;
	}
	if (runs <= n / 4) {
		/* run values at pf.w-ish, lengths at their bit width: a cheap upper estimate */
		uint64_t est = (uint64_t)runs * (pf.w + pf.hw + bitlen(n)) + 32;
		if (est < best) {
			best = est;
			kind = E_RLE;
		}
	}
	bool dict_ok = false;
	if (pf.w > 2 && dset_build(&sc->d, v, n)) {
		dict_ok = true;
		uint64_t est =
			(uint64_t)n * bitlen(sc->d.n - 1) + (uint64_t)sc->d.n * (pf.w + pf.hw);
		if (est < best) {
			best = est;
			kind = E_DICT;
		}
	}
	*p++ = (uint8_t)kind;
	switch (kind) {
	case E_PFOR:
		p = pfor_write(v, n, &pf, p);
		break;
	case E_DELTA:
		p = put_var(p, v[0]);
		p = pfor_write(d, n - 1, &pd, p);
		break;
	case E_RLE: {
		uint64_t *rv = sc->tmp, *rl = sc->tmp2;
		uint32_t r = 0;
		for (uint32_t i = 0; i < n; i++) {
			if (i && v[i] == v[i - 1]) {
				rl[r - 1]++;
				continue;
			}
			rv[r] = v[i];
			rl[r++] = 1;
		}
		p = put_var(p, r);
		p = pfor_enc(rv, r, p);
		p = pfor_enc(rl, r, p);
		break;
	}
	case E_DICT: {
		(void)dict_ok;
		struct dset *ds = &sc->d;
		qsort(ds->vals, ds->n, sizeof(uint64_t), cmp_u64);
		for (uint32_t k = 0; k < ds->n; k++) {
			uint32_t s = slot_of(ds->vals[k]);
			while (ds->key[s] != ds->vals[k])
				s = (s + 1) & (HASH_SLOTS - 1);
			ds->idx[s] = (uint16_t)k;
		}
		p = put_var(p, ds->n);
		p = pfor_enc(ds->vals, ds->n, p);
		uint64_t *ix = sc->tmp2;
		uint64_t last = v[0];
		uint16_t li = dset_index(ds, last);
		for (uint32_t i = 0; i < n; i++) {
			if (v[i] != last) {
				last = v[i];
				li = dset_index(ds, last);
			}
			ix[i] = li;
		}
		p = pfor_enc(ix, n, p);
		break;
	}
	}
	return (size_t)(p - out);
}

size_t store__enc_u64(const uint64_t *v, uint32_t n, uint8_t *out)
{
	return enc_u64_n(v, n, out, scratch_get());
}

static inline int type_group(uint8_t t)
{
	return t < 31 ? t : 31;
}

void store__typed_plan(const uint8_t *type, uint32_t n, struct store__typed_plan *pl)
{
	uint32_t at[32];
	memset(pl->cnt, 0, sizeof(pl->cnt));
	for (uint32_t i = 0; i < n; i++)
		pl->cnt[type_group(type[i])]++;
	pl->mask = 0;
	pl->n = n;
	uint32_t sum = 0;
	for (int t = 0; t < 32; t++) {
		if (pl->cnt[t])
			pl->mask |= 1u << t;
		at[t] = sum;
		sum += pl->cnt[t];
	}
	for (uint32_t i = 0; i < n; i++)
		pl->order[at[type_group(type[i])]++] = (uint16_t)i;
}

size_t store__enc_typed(const uint64_t *v, const struct store__typed_plan *pl, uint8_t *out)
{
	struct enc_scratch *sc = scratch_get();
	uint8_t *p = out;
	*p++ = E_TYPED;
	memcpy(p, &pl->mask, 4);
	p += 4;
	static __thread uint64_t *gather;
	if (!gather)
		gather = xmalloc(sizeof(uint64_t) * STORE_GRANULE);
	uint32_t at = 0;
	for (int t = 0; t < 32; t++) {
		uint32_t c = pl->cnt[t];
		if (!c)
			continue;
		const uint64_t *src = v;
		if (c != pl->n) { /* a group with every row needs no gather */
			for (uint32_t k = 0; k < c; k++)
				gather[k] = v[pl->order[at + k]];
			src = gather;
		}
		at += c;
		uint8_t *lenp = p;
		p += 3; /* a 3-byte varint for the length (blocks are < 2 MiB) */
		size_t sub = enc_u64_n(src, c, p, sc);
		lenp[0] = (uint8_t)(sub | 0x80);
		lenp[1] = (uint8_t)((sub >> 7) | 0x80);
		lenp[2] = (uint8_t)(sub >> 14);
		p += sub;
	}
	return (size_t)(p - out);
}

/* ------------------------------------------------------------------ u64 decode */

static int dec_u64_at(const uint8_t **pp, const uint8_t *end, uint32_t n, uint64_t *out,
		      uint64_t *tmp)
{
	const uint8_t *p = *pp;
	if (p >= end)
		return -1;
	int kind = *p++;
	uint64_t x, r;
	switch (kind) {
	case E_CONST:
		if (get_var(&p, end, &x))
			return -1;
		for (uint32_t i = 0; i < n; i++)
			out[i] = x;
		break;
	case E_PFOR:
		if (pfor_dec(&p, end, n, out))
			return -1;
		break;
	case E_DELTA:
		if (!n || get_var(&p, end, &x) || pfor_dec(&p, end, n - 1, out + 1))
			return -1;
		out[0] = x;
		for (uint32_t i = 1; i < n; i++)
			out[i] += out[i - 1];
		break;
	case E_DICT: {
		if (get_var(&p, end, &x) || x == 0 || x > DICT_CAP || x > n)
			return -1;
		uint64_t dict[DICT_CAP];
		if (pfor_dec(&p, end, (uint32_t)x, dict) || pfor_dec(&p, end, n, out))
			return -1;
		for (uint32_t i = 0; i < n; i++) {
			if (out[i] >= x)
				return -1;
			out[i] = dict[out[i]];
		}
		break;
	}
	case E_RLE: {
		if (get_var(&p, end, &r) || r == 0 || r > n)
			return -1;
		uint64_t *rv = tmp, *rl = tmp + n;
		if (pfor_dec(&p, end, (uint32_t)r, rv) || pfor_dec(&p, end, (uint32_t)r, rl))
			return -1;
		uint32_t k = 0;
		for (uint64_t j = 0; j < r; j++) {
			if (rl[j] > n - k)
				return -1;
			for (uint64_t q = 0; q < rl[j]; q++)
				out[k++] = rv[j];
		}
		if (k != n)
			return -1;
		break;
	}
	default:
		return -1;
	}
	*pp = p;
	return 0;
}

static __thread uint64_t *dec_tmp;

static uint64_t *dec_tmp_get(void)
{
	if (!dec_tmp)
		dec_tmp = xmalloc(sizeof(uint64_t) * STORE_GRANULE * 8);
	return dec_tmp;
}

int store__dec_u64(const uint8_t *p, size_t len, uint32_t n, uint64_t *out)
{
	if (n > STORE_GRANULE)
		return STORE_ELAYOUT;
	const uint8_t *end = p + len;
	if (p < end && *p == E_TYPED)
		return STORE_ELAYOUT;
	if (dec_u64_at(&p, end, n, out, dec_tmp_get()) || p != end)
		return STORE_ELAYOUT;
	return 0;
}

int store__dec_typed(const uint8_t *p, size_t len, const struct store__typed_plan *pl,
		     uint64_t *out)
{
	uint32_t n = pl->n;
	if (n > STORE_GRANULE)
		return STORE_ELAYOUT;
	const uint8_t *end = p + len;
	if (len < 5 || *p != E_TYPED)
		return store__dec_u64(p, len, n, out);
	p++;
	uint32_t mask;
	memcpy(&mask, p, 4);
	p += 4;
	if (mask != pl->mask)
		return STORE_ELAYOUT;
	uint64_t *tmp = dec_tmp_get();
	uint64_t *part = tmp + STORE_GRANULE * 4; /* RLE uses tmp[0 .. 2n) */
	uint32_t at = 0;
	for (int t = 0; t < 32; t++) {
		uint32_t c = pl->cnt[t];
		if (!c)
			continue;
		uint64_t sub;
		if (get_var(&p, end, &sub) || sub > (uint64_t)(end - p))
			return STORE_ELAYOUT;
		const uint8_t *q = p, *qend = p + sub;
		if (c == n) {
			if (dec_u64_at(&q, qend, n, out, tmp) || q != qend)
				return STORE_ELAYOUT;
		} else {
			if (dec_u64_at(&q, qend, c, part, tmp) || q != qend)
				return STORE_ELAYOUT;
			const uint16_t *ord = pl->order + at;
			for (uint32_t k = 0; k < c; k++)
				out[ord[k]] = part[k];
		}
		at += c;
		p = qend;
	}
	return p == end ? 0 : STORE_ELAYOUT;
}

/* ------------------------------------------------------------------ strings */

size_t store__enc_str(const char *const *s, const uint8_t *len, uint32_t n, uint8_t *out)
{
	/* dictionary keyed by pointer: strings are interned, so equal strings share one */
	struct enc_scratch *sc = scratch_get();
	memset(sc->sused, 0, sizeof(sc->sused));
	uint64_t *ix = sc->tmp2, *lens = sc->tmp;
	const char **dict = (const char **)(void *)(sc->tmp + STORE_GRANULE);
	uint32_t nd = 0;
	if (n > STORE_GRANULE)
		abort(); /* NEVER */
	for (uint32_t i = 0; i < n; i++) {
		uint64_t key = (uintptr_t)s[i];
		uint32_t sl = (uint32_t)(store__hash_u64(key) & (SSLOTS - 1));
		while (sc->sused[sl] && sc->skey[sl] != key)
			sl = (sl + 1) & (SSLOTS - 1);
		if (sc->sused[sl]) {
			ix[i] = sc->sidx[sl];
			continue;
		}
		sc->sused[sl] = 1;
		sc->skey[sl] = key;
		sc->sidx[sl] = (uint16_t)nd;
		ix[i] = nd;
		dict[nd] = s[i];
		lens[nd++] = len[i];
	}
	uint8_t *p = out;
	*p++ = E_STRDICT;
	p = put_var(p, nd);
	p = pfor_enc(lens, nd, p);
	for (uint32_t k = 0; k < nd; k++) {
		memcpy(p, dict[k], lens[k]);
		p += lens[k];
	}
	p = pfor_enc(ix, n, p);
	return (size_t)(p - out);
}

int store__dec_str(const uint8_t *p, size_t len, uint32_t n, const char **out_ptr,
		   uint32_t *out_len, char *dictbuf)
{
	const uint8_t *end = p + len;
	uint64_t nd;
	if (n > STORE_GRANULE || len < 1 || *p++ != E_STRDICT || get_var(&p, end, &nd) || nd > n ||
	    (n && !nd))
		return STORE_ELAYOUT;
	uint64_t *tmp = dec_tmp_get(), *lens = tmp, *ix = tmp + STORE_GRANULE * 2;
	if (pfor_dec(&p, end, (uint32_t)nd, lens))
		return STORE_ELAYOUT;
	const char **dp = (const char **)(void *)(tmp + STORE_GRANULE);
	char *q = dictbuf;
	for (uint64_t k = 0; k < nd; k++) {
		if (lens[k] > STORE_TXN_MAX || lens[k] > (uint64_t)(end - p))
			return STORE_ELAYOUT;
		memcpy(q, p, lens[k]);
		dp[k] = q;
		q += lens[k];
		p += lens[k];
	}
	if (pfor_dec(&p, end, n, ix) || p != end)
		return STORE_ELAYOUT;
	for (uint32_t i = 0; i < n; i++) {
		if (ix[i] >= nd)
			return STORE_ELAYOUT;
		out_ptr[i] = dp[ix[i]];
		out_len[i] = (uint32_t)lens[ix[i]];
	}
	return 0;
}

/* ------------------------------------------------------------------ blooms */

uint64_t store__hash_u64(uint64_t v)
{
	/* splitmix64 finaliser: cheap, well mixed */
	v += 0x9e3779b97f4a7c15ull;
	v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull;
	v = (v ^ (v >> 27)) * 0x94d049bb133111ebull;
	return v ^ (v >> 31);
}

uint64_t store__hash_str(const char *s, size_t len)
{
	return XXH3_64bits(s, len);
}

uint32_t store__bloom_bits(uint32_t n)
{
	uint64_t want = (uint64_t)n * 10;
	uint32_t b = 64;
	while (b < want && b < 65536)
		b <<= 1;
	return b;
}

void store__bloom_add(uint8_t *bits, uint32_t nbits, uint64_t h)
{
	uint32_t h1 = (uint32_t)h, h2 = (uint32_t)(h >> 32) | 1;
	for (int i = 0; i < 4; i++) {
		uint32_t b = (h1 + (uint32_t)i * h2) & (nbits - 1);
		bits[b >> 3] |= (uint8_t)(1u << (b & 7));
	}
}

bool store__bloom_test(const uint8_t *bits, uint32_t nbits, uint64_t h)
{
	uint32_t h1 = (uint32_t)h, h2 = (uint32_t)(h >> 32) | 1;
	for (int i = 0; i < 4; i++) {
		uint32_t b = (h1 + (uint32_t)i * h2) & (nbits - 1);
		if (!(bits[b >> 3] & (1u << (b & 7))))
			return false;
	}
	return true;
}
