/*
 * hmap.h - an open-addressing hash map from a 128-bit key (two u64) to a u64 value.
 *
 * Linear probing, power-of-two capacity, backward-shift deletion (no tombstones), grows at 70%
 * load. Not thread safe. Values are plain u64: store an index into your own array, or a pointer.
 */
#ifndef KP_HMAP_H
#define KP_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap_slot {
	uint64_t a, b; /* the key; a slot is empty when used == 0 */
	uint64_t val;
	uint64_t used;
};

struct hmap {
	struct hmap_slot *slots;
	size_t cap, n; /* cap is 0 or a power of two */
};

/* Returns a pointer to key's value, or NULL. Valid until the next insert or delete. */
uint64_t *hmap_get(const struct hmap *m, uint64_t a, uint64_t b);
/* Inserts key (value 0) if absent; returns its value slot. *created tells which (may be NULL). */
uint64_t *hmap_put(struct hmap *m, uint64_t a, uint64_t b, int *created);
/* Removes key; returns 1 if it was there. */
int hmap_del(struct hmap *m, uint64_t a, uint64_t b);
void hmap_free(struct hmap *m);

/* Iteration: for (size_t i = 0; hmap_next(m, &i, &slot); ) ... (no inserts/deletes meanwhile). */
int hmap_next(const struct hmap *m, size_t *i, const struct hmap_slot **slot);

#endif
