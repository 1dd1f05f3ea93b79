/* Tests common/hmap.c against a naive model on random inserts, lookups and deletes. */
#include <stdlib.h>

#include "common/hmap.h"
#include "tests/test.h"

TEST(hmap_model_random_ops)
{
	enum { KEYS = 5000 };
	static uint64_t model[KEYS];
	static int present[KEYS];
	struct hmap m = {0};
	srand(7);
	for (int op = 0; op < 400000; op++) {
		int k = rand() % KEYS;
		int what = rand() % 3;
		if (what == 0) {
			int created;
			uint64_t *v = hmap_put(&m, (uint64_t)k * 31, (uint64_t)k ^ 0xabc, &created);
			CHECK_EQ_INT(created, !present[k]);
			*v = model[k] = (uint64_t)rand();
			present[k] = 1;
		} else if (what == 1) {
			CHECK_EQ_INT(hmap_del(&m, (uint64_t)k * 31, (uint64_t)k ^ 0xabc), present[k]);
			present[k] = 0;
		} else {
			uint64_t *v = hmap_get(&m, (uint64_t)k * 31, (uint64_t)k ^ 0xabc);
			CHECK_EQ_INT(v != NULL, present[k]);
			if (v)
				CHECK_EQ_UINT(*v, model[k]);
		}
	}
	size_t n = 0, i = 0;
	const struct hmap_slot *s;
	while (hmap_next(&m, &i, &s))
		n++;
	size_t want = 0;
	for (int k = 0; k < KEYS; k++)
		want += (size_t)present[k];
	CHECK_EQ_UINT(n, want);
	CHECK_EQ_UINT(m.n, want);
	hmap_free(&m);
}
