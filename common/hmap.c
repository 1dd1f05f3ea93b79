/*
 * hmap.c - open addressing with linear probing and backward-shift deletion.
 */
#include <stdlib.h>
#include <string.h>

#include "common/hmap.h"
#include "common/util.h"

static inline uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

uint64_t *hmap_get(const struct hmap *m, uint64_t a, uint64_t b)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = mix(a, b) & mask;; i = (i + 1) & mask) {
		struct hmap_slot *s = &m->slots[i];
		if (!s->used)
			return NULL;
		if (s->a == a && s->b == b)
			return &s->val;
	}
}

static void grow(struct hmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;
	struct hmap_slot *old = m->slots;
	size_t ocap = m->cap;
	m->slots = xcalloc(ncap, sizeof(*m->slots));
	m->cap = ncap;
	m->n = 0;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].used)
			*hmap_put(m, old[i].a, old[i].b, NULL) = old[i].val;
	free(old);
}

uint64_t *hmap_put(struct hmap *m, uint64_t a, uint64_t b, int *created)
{
	if ((m->n + 1) * 10 > m->cap * 7)
		grow(m);
	size_t mask = m->cap - 1;
	for (size_t i = mix(a, b) & mask;; i = (i + 1) & mask) {
		struct hmap_slot *s = &m->slots[i];
		if (!s->used) {
			s->used = 1;
			s->a = a;
			s->b = b;
			s->val = 0;
			m->n++;
			if (created)
				*created = 1;
			return &s->val;
		}
		if (s->a == a && s->b == b) {
			if (created)
				*created = 0;
			return &s->val;
		}
	}
}

int hmap_del(struct hmap *m, uint64_t a, uint64_t b)
{
	if (!m->cap)
		return 0;
	size_t mask = m->cap - 1;
	size_t i = mix(a, b) & mask;
	for (;; i = (i + 1) & mask) {
		if (!m->slots[i].used)
			return 0;
		if (m->slots[i].a == a && m->slots[i].b == b)
			break;
	}
	/* Backward shift: pull later entries of the probe run into the hole when their home slot
	 * does not lie (cyclically) between the hole and them. */
	size_t hole = i;
	for (size_t j = (i + 1) & mask; m->slots[j].used; j = (j + 1) & mask) {
		size_t home = mix(m->slots[j].a, m->slots[j].b) & mask;
		int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!between) {
			m->slots[hole] = m->slots[j];
			hole = j;
		}
	}
	memset(&m->slots[hole], 0, sizeof(m->slots[hole]));
	m->n--;
	return 1;
}

void hmap_free(struct hmap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

int hmap_next(const struct hmap *m, size_t *i, const struct hmap_slot **slot)
{
	while (*i < m->cap) {
		const struct hmap_slot *s = &m->slots[(*i)++];
		if (s->used) {
			*slot = s;
			return 1;
		}
	}
	return 0;
}
