/* Quick end-to-end check of store + query on a few thousand rows. */
#include "tests/unit/store/helpers.h"

TEST(store_smoke_append_query)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 8192, &cfg);
	struct wire_batch mb = {0};
	th_proc_meta(&mb, 100, "nginx", "web");
	th_proc_meta(&mb, 101, "postgres", "db");
	uint64_t rng = 42;
	struct kp_event ev[1000];
	for (int f = 0; f < 20; f++) {
		for (int i = 0; i < 1000; i++)
			ev[i] = th_event((uint64_t)f * 1000 + i, &rng, 4);
		CHECK_EQ_INT(store_append(st, (uint64_t)f + 1, 7, ev, 1000, f ? NULL : mb.meta.data,
					  f ? 0 : mb.meta.len, NULL),
			     0);
	}
	CHECK_EQ_INT(th_query_int(st, "SELECT count() FROM events"), 20000);
	CHECK_EQ_INT(store_flush(st), 0);
	CHECK_EQ_UINT(store_sealed_lsn(st), 20);
	CHECK_EQ_INT(th_query_int(st, "SELECT count() FROM events"), 20000);
	struct query_result *r = th_query(st, "SELECT comm, count() AS n FROM events WHERE pid IN "
					      "(100, 101) GROUP BY comm ORDER BY comm");
	CHECK_EQ_INT(r->nrows, 2);
	CHECK_EQ_STR(r->cells[0].u.s.p, "nginx");
	CHECK_EQ_STR(r->cells[2].u.s.p, "postgres");
	query_result_free(r);
	store_close(st);
	st = th_open(kt_tmpdir(), 8192, &cfg);
	CHECK_EQ_UINT(store_sealed_lsn(st), 20);
	CHECK_EQ_INT(th_query_int(st, "SELECT count() FROM events WHERE comm = 'nginx'"),
		     th_query_int(st, "SELECT count() FROM events WHERE pid = 100"));
	store_close(st);
	wire_batch_free(&mb);
	config_free(&cfg);
}
