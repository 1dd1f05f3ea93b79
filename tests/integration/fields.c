/*
 * One name and one value per event field, everywhere: every field `kprobe-agent --stdout` writes
 * (agent/ndjson.c) is a column of FROM events with the same value (a name where NDJSON has a
 * name: syscall, family, TCP states, reason, kind, proc_event), and the live stream
 * (common/eventjson.c) writes the same fields. One event of each type goes through all three.
 */
#include <inttypes.h>
#include <sys/syscall.h>

#include "agent/ndjson.h"
#include "common/eventjson.h"
#include "common/json.h"
#include "tests/unit/store/helpers.h"

/* NDJSON fields that are not columns: flags and details the store keeps elsewhere (a wait
 * status stays in ret; a thread's fork or exit is a flag). */
static bool not_a_column(const char *k)
{
	static const char *const v[] = {"truncated", "thread", "exit_code", "signal"};
	for (size_t i = 0; i < KP_ARRAY_SIZE(v); i++)
		if (!strcmp(k, v[i]))
			return true;
	return false;
}

static struct json_doc *parse(const struct kp_buf *b, struct json **root)
{
	char err[128];
	size_t pos;
	struct json_doc *d = json_parse(b->data, b->len, root, err, sizeof(err), &pos);
	CHECKF(d != NULL, "%s at %zu: %.*s", err, pos, (int)b->len, b->data);
	return d;
}

/* The value of column col for the row at ts, as the query API's JSON writes it. */
static void column_value(struct store *st, const char *col, uint64_t ts, struct kp_buf *out)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT \"%s\" FROM events WHERE ts = %" PRIu64, col, ts);
	struct query_opts o = {.max_rows = 10, .timeout_ms = 5000};
	struct query_result *r = NULL;
	struct query_error err;
	int rc = query_exec(st, sql, strlen(sql), &o, &r, &err);
	CHECKF(rc == 0, "%s: %s", sql, err.message);
	out->len = 0;
	if (rc == 0) {
		query_result_write(r, QUERY_JSON, out);
		buf_append(out, "", 1);
		out->len--;
		query_result_free(r);
	}
}

TEST(fields_ndjson_stream_and_store_agree)
{
	struct kp_config cfg;
	struct store *st = th_open(kt_tmpdir(), 8192, &cfg);
	struct wire_batch mb = {0};
	th_proc_meta(&mb, 100, "payments", "pay");
	struct wire_conn c = {.conn = 0xabc, .family = 2, .sport = 40000, .dport = 5432};
	c.saddr[0] = 10, c.saddr[3] = 1, c.daddr[0] = 10, c.daddr[3] = 2;
	wire_batch_add_conn(&mb, &c);
	uint64_t t = T0_NS + 777;
	struct kp_event ev[] = {
		{.type = KP_READ, .ret = 10, .arg = {3, 4096, SYS_pread64, 11}},
		{.type = KP_WRITE, .ret = 100, .arg = {4, 100, SYS_write, 12}},
		{.type = KP_FSYNC, .ret = -5, .flags = KP_F_ERROR, .arg = {5, 0, SYS_fdatasync, 13}},
		{.type = KP_TCP_SEND, .ret = 300, .arg = {0xabc, 300, 1000, KP_PORTS(40000, 5432)}},
		{.type = KP_TCP_RECV, .ret = 30, .arg = {0xabc, 30, 77, KP_PORTS(40000, 5432)}},
		{.type = KP_CONN, .arg = {0xabc, 2, 1, KP_PORTS(40000, 5432) | 2ull << 32}},
		{.type = KP_RETRANSMIT, .arg = {0xabc, 1000, 1, KP_PORTS(40000, 5432)}},
		{.type = KP_OFFCPU, .arg = {KP_OFFCPU_PREEMPTED | 2 << 8, 101, 5000, 4721}},
		{.type = KP_RECLAIM, .arg = {900, KP_RECLAIM_MEMCG, 77, 2}},
		{.type = KP_FAULTS, .arg = {12, 0x7f0000001000ull, 0x7f0000009000ull, 3}},
		{.type = KP_PROC, .arg = {KP_PROC_FORK, 4722}},
		{.type = KP_PROC, .ret = 3 << 8, .arg = {KP_PROC_EXIT, 1}},
	};
	int n = (int)KP_ARRAY_SIZE(ev);
	for (int i = 0; i < n; i++) {
		ev[i].ts_ns = t + (uint64_t)i * 1000;
		ev[i].dur_ns = 500;
		ev[i].pid = 100;
		ev[i].tid = 100;
		ev[i].cpu = 1;
		if (ev[i].type == KP_PROC)
			memcpy(&ev[i].arg[2], "payments\0\0\0\0\0\0\0\0", 16);
	}
	CHECK_EQ_INT(store_append(st, 1, 7, ev, (uint32_t)n, mb.meta.data, mb.meta.len, NULL), 0);
	wire_batch_free(&mb);
	struct wire_proc p = {.pid = 100, .comm = "payments", .service = "pay"};
	struct kp_buf nb = {0}, sb = {0}, qb = {0};
	int compared = 0;
	for (int i = 0; i < n; i++) {
		const char *tn = eventjson_type_name(ev[i].type);
		nb.len = sb.len = 0;
		bool tcp = ev[i].type >= KP_TCP_SEND && ev[i].type <= KP_RETRANSMIT;
		ndjson_format(&nb, &ev[i], &p, tcp ? &c : NULL);
		struct eventjson_meta m = {"payments", "pay", NULL};
		eventjson_write(&sb, &ev[i], &m);
		struct json *nj, *sj;
		struct json_doc *nd = parse(&nb, &nj), *sd = parse(&sb, &sj);
		if (!nd || !sd) {
			json_free(nd);
			json_free(sd);
			continue;
		}
		for (size_t k = 0; k < nj->u.arr.n; k++) {
			const char *key = nj->u.arr.keys[k];
			const struct json *nv = nj->u.arr.items[k];
			/* the stream writes the same field (it has no connection table: no addresses) */
			if (strcmp(key, "saddr") && strcmp(key, "daddr"))
				CHECKF(json_get(sj, key) != NULL, "%s: the stream lacks \"%s\": %s", tn,
				       key, sb.data);
			const struct json *sv = json_get(sj, key);
			if (sv && nv->type != sv->type)
				CHECKF(false, "%s.%s: NDJSON and stream disagree on the type: %.*s vs %s",
				       tn, key, (int)nb.len, nb.data, sb.data);
			if (sv && nv->type == JSON_STR)
				CHECKF(!strcmp(nv->u.str.s, sv->u.str.s), "%s.%s: '%s' vs '%s'", tn, key,
				       nv->u.str.s, sv->u.str.s);
			if (sv && nv->type == JSON_NUM)
				CHECKF(!strcmp(nv->u.num.text, sv->u.num.text), "%s.%s: %s vs %s", tn,
				       key, nv->u.num.text, sv->u.num.text);
			if (not_a_column(key))
				continue;
			/* the store: a column of that name holding that value */
			column_value(st, key, ev[i].ts_ns, &qb);
			struct json *qj;
			struct json_doc *qd = parse(&qb, &qj);
			const struct json *rows = qd ? json_get(qj, "rows") : NULL;
			CHECKF(rows && rows->u.arr.n == 1, "%s.%s: %s", tn, key, qb.data);
			if (!rows || rows->u.arr.n != 1) {
				json_free(qd);
				continue;
			}
			const struct json *qv = rows->u.arr.items[0]->u.arr.items[0];
			if (!strcmp(key, "conn")) { /* 16 hex digits in JSON lines, a u64 column */
				uint64_t cv = 0;
				CHECK(json_uint(qv, &cv) == 0);
				CHECK_EQ_INT(cv, strtoull(nv->u.str.s, NULL, 16));
			} else if (nv->type == JSON_STR) {
				CHECKF(qv->type == JSON_STR && !strcmp(qv->u.str.s, nv->u.str.s),
				       "%s.%s: NDJSON '%s', store %s", tn, key, nv->u.str.s, qb.data);
			} else if (nv->type == JSON_NUM) {
				CHECKF(qv->type == JSON_NUM && !strcmp(qv->u.num.text, nv->u.num.text),
				       "%s.%s: NDJSON %s, store %s", tn, key, nv->u.num.text, qb.data);
			}
			compared++;
			json_free(qd);
		}
		/* and nothing on the stream that NDJSON lacks (but the node's name) */
		for (size_t k = 0; k < sj->u.arr.n; k++)
			if (strcmp(sj->u.arr.keys[k], "node") && strcmp(sj->u.arr.keys[k], "flags"))
				CHECKF(json_get(nj, sj->u.arr.keys[k]) != NULL,
				       "%s: NDJSON lacks the stream's \"%s\"", tn, sj->u.arr.keys[k]);
		json_free(nd);
		json_free(sd);
	}
	kt_note("%d field values compared with the store", compared);
	CHECK_GE_INT(compared, 100);
	buf_free(&nb);
	buf_free(&sb);
	buf_free(&qb);
	store_close(st);
	config_free(&cfg);
}
