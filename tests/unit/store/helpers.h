/*
 * helpers.h - shared by the store's unit tests: a store in the test's scratch directory,
 * deterministic events, metadata records, and a query helper that fails the test on error.
 */
#ifndef KP_TEST_STORE_HELPERS_H
#define KP_TEST_STORE_HELPERS_H

#include <stdlib.h>
#include <string.h>

#include "agent/wire.h"
#include "common/config.h"
#include "store/query.h"
#include "store/store.h"
#include "tests/test.h"

#define T0_NS 1795000000000000000ull /* 2026-11-18T...Z */

static inline struct store *th_open(const char *dir, int memtable_rows, struct kp_config *cfg)
{
	config_init(cfg);
	free(cfg->store_data_dir);
	cfg->store_data_dir = strdup(dir);
	cfg->store_memtable_rows = memtable_rows;
	cfg->store_retention_days = 36500;
	struct store *st = NULL;
	int rc = store_open(cfg, &st);
	CHECKF(rc == 0, "store_open: %s", store_strerror(rc));
	return st;
}

static inline uint64_t th_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A plausible event i: types cycle, pids among npid, timestamps increasing. */
static inline struct kp_event th_event(uint64_t i, uint64_t *rng, int npid)
{
	struct kp_event e = {0};
	e.ts_ns = T0_NS + i * 1000 + th_rand(rng) % 500;
	e.pid = 100 + (uint32_t)(th_rand(rng) % (uint64_t)npid);
	e.tid = e.pid + (uint32_t)(th_rand(rng) % 3);
	e.cpu = (uint16_t)(th_rand(rng) % 4);
	e.type = (uint8_t)(1 + th_rand(rng) % 10);
	e.dur_ns = th_rand(rng) % 100000;
	e.ret = (int32_t)(th_rand(rng) % 4096);
	if (th_rand(rng) % 50 == 0)
		e.ret = -11;
	e.arg[0] = th_rand(rng) % 16;
	e.arg[1] = 4096 << (th_rand(rng) % 3);
	e.arg[2] = th_rand(rng) % 300;
	e.arg[3] = th_rand(rng);
	return e;
}

static inline void th_proc_meta(struct wire_batch *b, uint32_t pid, const char *comm,
				const char *service)
{
	struct wire_proc p = {0};
	p.pid = pid;
	p.ppid = 1;
	p.start_ns = T0_NS - 1000000000ull;
	snprintf(p.comm, sizeof(p.comm), "%s", comm);
	snprintf(p.service, sizeof(p.service), "%s", service);
	snprintf(p.cmdline, sizeof(p.cmdline), "/usr/bin/%s --serve", comm);
	wire_batch_add_proc(b, &p);
}

static inline struct query_result *th_query(struct store *st, const char *sql)
{
	struct query_opts o = {
		.max_rows = 100000, .timeout_ms = 30000, .now_ns = T0_NS + 3600ull * 1000000000ull};
	struct query_result *r = NULL;
	struct query_error err;
	int rc = query_exec(st, sql, strlen(sql), &o, &r, &err);
	CHECKF(rc == 0, "query '%s' failed (%d): %s at %d", sql, rc, err.message, err.position);
	return r;
}

static inline int64_t th_query_int(struct store *st, const char *sql)
{
	struct query_result *r = th_query(st, sql);
	CHECKF(r->nrows == 1 && r->ncols >= 1, "query '%s': %zu rows", sql, r->nrows);
	int64_t v = r->cells[0].u.i;
	query_result_free(r);
	return v;
}

#endif
