/*
 * Fuzz target: the query language (store/query.c) on arbitrary text, parsed and executed
 * against a small real store (memtable + one sealed segment) built once per process, so the
 * analyser, the executor and the writers all see what the parser lets through.
 */
// clang-format off
// fuzz-sources: store/query.c store/store.c store/segment.c store/codec.c store/meta.c agent/wire.c common/util.c common/config.c common/json.c common/eventjson.c
// fuzz-libs: -llz4 -lxxhash -lm
// clang-format on
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/wire.h"
#include "store/query.h"
#include "store/store.h"

static struct store *st;
static struct kp_config cfg;

static void build(void)
{
	char dir[] = "/tmp/kprobe-fuzz-query-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	config_init(&cfg);
	free(cfg.store_data_dir);
	cfg.store_data_dir = strdup(dir);
	cfg.store_memtable_rows = 8192;
	if (store_open(&cfg, &st))
		abort();
	struct wire_batch mb = {0};
	struct wire_proc p = {.pid = 100, .start_ns = 1};
	strcpy(p.comm, "nginx");
	strcpy(p.service, "web");
	wire_batch_add_proc(&mb, &p);
	wire_batch_add_node(&mb, "node-a", "6.1");
	static struct kp_event ev[4000];
	static const char *tx[4000];
	uint64_t r = 1;
	for (int f = 0; f < 4; f++) {
		for (int i = 0; i < 4000; i++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			ev[i] = (struct kp_event){.ts_ns = 1795000000000000000ull +
							   (uint64_t)(f * 4000 + i) * 997,
						  .dur_ns = r >> 44,
						  .pid = 100 + (uint32_t)(r >> 60),
						  .tid = 100 + (uint32_t)(r >> 58),
						  .cpu = (uint16_t)(r >> 62),
						  .type = (uint8_t)(1 + (r >> 33) % 11),
						  .ret = (int32_t)(r >> 40),
						  .arg = {r >> 50, r >> 30, r >> 20, r}};
			tx[i] = (r >> 37) % 3 ? "" : ((r >> 39) % 2 ? "t-1" : "t-2");
		}
		store_append(st, (uint64_t)f + 1, 7, ev, 4000, f ? NULL : mb.meta.data,
			     f ? 0 : mb.meta.len, tx);
		if (f == 2)
			store_flush(st);
	}
	wire_batch_free(&mb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!st)
		build();
	struct query_opts o = {
		.max_rows = 1000, .timeout_ms = 200, .now_ns = 1795000000000000000ull};
	struct query_result *r = NULL;
	struct query_error err;
	int rc = query_exec(st, (const char *)data, size, &o, &r, &err);
	if (rc == 0) {
		struct kp_buf b = {0};
		query_result_write(r, QUERY_JSON, &b);
		query_result_write(r, QUERY_CSV, &b);
		query_result_write(r, QUERY_NDJSON, &b);
		buf_free(&b);
		query_result_free(r);
	} else if (!err.message[0] || err.position > (int)size) {
		abort(); /* every error says what and where */
	}
	return 0;
}
