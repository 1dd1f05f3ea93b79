/*
 * timeline.c - GET /api/v1/timeline: kernel events as bars in lanes (per thread, service or CPU)
 * for a time range, with server-side level of detail and clock-skew alignment.
 *
 *   ?from=NS&to=NS           the visible range (epoch ns, or a duration ago: from=15m)
 *   &lane=thread|service|cpu (default thread)
 *   &max=N                   at most N bars per lane (default 500, at most 5000)
 *   &pid= &tid= &service= &comm= &node= &type=write,fsync    filters
 *
 * When the range holds at most max events, every event is a bar with its exact ns timestamps
 * ("exact": true). Otherwise events are grouped per lane into buckets of (to - from) / max ns and
 * each (bucket, type) is one bar spanning its events, with their count and busy time. Times of
 * a node whose clock is skewed against the reference node (estimated by the causal engine from
 * matched TCP send/receive pairs) are shifted onto the reference clock; each lane reports the
 * offset applied.
 *
 * Both modes are queries in kprobe's own language, so the timeline sees exactly what
 * POST /api/v1/query sees.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/internal.h"
#include "common/hmap.h"
#include "common/json.h"
#include "common/util.h"
#include "graph/engine.h"
#include "store/query.h"


/* Appends " AND col = 'value'" with the value quoted; values with a quote are refused. */
static int filter_str(struct kp_buf *q, const struct httpd_req *req, const char *name)
{
	const char *v = httpd_req_param(req, name);
	if (!v || !*v)
		return 0;
	if (strchr(v, '\'') || strlen(v) > 256)
		return -EINVAL;
	buf_printf(q, " AND %s = '%s'", name, v);
	return 0;
}

static int filter_int(struct kp_buf *q, const struct httpd_req *req, const char *name)
{
	const char *v = httpd_req_param(req, name);
	if (!v || !*v)
		return 0;
	char *end;
	long long x = strtoll(v, &end, 10);
	if (*end || x < 0)
		return -EINVAL;
	buf_printf(q, " AND %s = %lld", name, x);
	return 0;
}

/* type=write,fsync -> " AND type IN ('write','fsync')" (names checked: letters and '_'). */
static int filter_types(struct kp_buf *q, const struct httpd_req *req)
{
	const char *v = httpd_req_param(req, "type");
	if (!v || !*v)
		return 0;
	buf_puts(q, " AND type IN (");
	int first = 1;
	const char *p = v;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 0 || len > 16)
			return -EINVAL;
		for (size_t i = 0; i < len; i++)
			if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] == '_'))
				return -EINVAL;
		buf_printf(q, "%s'%.*s'", first ? "" : ",", (int)len, p);
		first = 0;
		if (!e)
			break;
		p = e + 1;
	}
	buf_puts(q, ")");
	return 0;
}

static const char *cell_str(const struct query_result *r, size_t row, int col, char *buf,
			    size_t cap)
{
	const struct query_value *v = &r->cells[row * (size_t)r->ncols + (size_t)col];
	if (v->type == QV_STR) {
		snprintf(buf, cap, "%.*s", (int)v->u.s.len, v->u.s.p);
		return buf;
	}
	if (v->type == QV_INT || v->type == QV_BOOL)
		snprintf(buf, cap, "%lld", (long long)v->u.i);
	else if (v->type == QV_UINT)
		snprintf(buf, cap, "%llu", (unsigned long long)v->u.i);
	else if (v->type == QV_FLOAT)
		snprintf(buf, cap, "%g", v->u.f);
	else
		buf[0] = '\0';
	return buf;
}

static int64_t cell_int(const struct query_result *r, size_t row, int col)
{
	const struct query_value *v = &r->cells[row * (size_t)r->ncols + (size_t)col];
	if (v->type == QV_INT || v->type == QV_UINT || v->type == QV_BOOL)
		return v->u.i;
	if (v->type == QV_FLOAT)
		return (int64_t)v->u.f;
	return 0;
}

struct lane {
	char key[160], label[200];
	uint64_t node_id;
	int64_t skew;
	struct kp_buf bars;
	int nbars;
};

void api_timeline(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	uint64_t to = appliance__time_param(req, "to", now_real_ns());
	uint64_t from = appliance__time_param(req, "from", to > 60 * NSEC_PER_SEC ? to - 60 * NSEC_PER_SEC : 0);
	if (from >= to) {
		httpd_resp_error(resp, 400, "from must be before to", -1);
		return;
	}
	const char *lane = httpd_req_param(req, "lane");
	if (!lane || !*lane)
		lane = "thread";
	const char *lane_cols;
	if (!strcmp(lane, "thread"))
		lane_cols = "node_id, node, pid, tid, comm, service";
	else if (!strcmp(lane, "service"))
		lane_cols = "node_id, node, service";
	else if (!strcmp(lane, "cpu"))
		lane_cols = "node_id, node, cpu";
	else {
		httpd_resp_error(resp, 400, "lane must be thread, service or cpu", -1);
		return;
	}
	int nlane_cols = !strcmp(lane, "thread") ? 6 : 3;
	const char *mp = httpd_req_param(req, "max");
	long max = mp ? strtol(mp, NULL, 10) : 500;
	if (max < 10)
		max = 10;
	if (max > 5000)
		max = 5000;

	struct kp_buf where = {0};
	buf_printf(&where, "ts >= %llu AND ts <= %llu", (unsigned long long)from,
		   (unsigned long long)to);
	if (filter_int(&where, req, "pid") || filter_int(&where, req, "tid") ||
	    filter_str(&where, req, "service") || filter_str(&where, req, "comm") ||
	    filter_str(&where, req, "node") || filter_types(&where, req)) {
		buf_free(&where);
		httpd_resp_error(resp, 400, "bad filter: pid/tid are numbers; service, comm, node "
					    "are names without quotes; type is a comma list of "
					    "event types",
				 -1);
		return;
	}

	struct query_opts o;
	query_opts_from_config(&o, a->cfg);
	o.cancel = req->cancel;
	o.max_rows = 1000000;
	struct query_error qerr;
	struct query_result *res = NULL;
	struct kp_buf q = {0};
	buf_printf(&q, "SELECT count() FROM events WHERE %s", where.data);
	int rc = query_exec(a->store, q.data, q.len, &o, &res, &qerr);
	int64_t total = rc == 0 && res->nrows ? cell_int(res, 0, 0) : 0;
	if (res)
		query_result_free(res);
	res = NULL;
	/* Exact when no lane can hold more than max events: the whole range has at most max. */
	int exact = rc == 0 && total <= max;
	uint64_t width = (to - from) / (uint64_t)max;
	if (width == 0)
		width = 1;
	q.len = 0;
	if (rc == 0 && exact)
		buf_printf(&q,
			   "SELECT %s, type, ts, dur, ret, cpu, 1 AS n, dur AS busy FROM events WHERE "
			   "%s ORDER BY ts LIMIT %ld",
			   lane_cols, where.data, max);
	else if (rc == 0)
		buf_printf(&q,
			   "SELECT %s, type, min(ts) AS t0, max(ts + dur) - min(ts) AS span, 0 AS ret, "
			   "0 AS cpu0, count() AS n, sum(dur) AS busy, bucket(ts, %llu) AS b FROM events "
			   "WHERE %s GROUP BY %s, type, b ORDER BY b",
			   lane_cols, (unsigned long long)width, where.data, lane_cols);
	if (rc == 0)
		rc = query_exec(a->store, q.data, q.len, &o, &res, &qerr);
	buf_free(&where);
	buf_free(&q);
	if (rc < 0) {
		httpd_resp_error(resp, 500, qerr.message, -1);
		return;
	}

	/* Lanes in order of first appearance; bars per lane, at most max in exact mode too. */
	struct hmap idx = {0};
	struct lane *lanes = NULL;
	size_t nl = 0;
	int truncated = 0;
	int lc = nlane_cols;
	for (size_t r = 0; r < res->nrows; r++) {
		char key[160] = "", part[96];
		for (int c = 0; c < lc; c++) {
			cell_str(res, r, c, part, sizeof(part));
			size_t kl = strlen(key);
			snprintf(key + kl, sizeof(key) - kl, "%s%s", c ? "/" : "", part);
		}
		uint64_t h = 1469598103934665603ull;
		for (const char *p = key; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
		int created;
		uint64_t *v = hmap_put(&idx, h, 0, &created);
		if (created) {
			lanes = xrealloc(lanes, (nl + 1) * sizeof(*lanes));
			struct lane *l = &lanes[nl];
			memset(l, 0, sizeof(*l));
			snprintf(l->key, sizeof(l->key), "%s", key);
			l->node_id = (uint64_t)cell_int(res, r, 0);
			char n1[64], n2[64], n3[64], n4[64];
			if (!strcmp(lane, "thread"))
				snprintf(l->label, sizeof(l->label), "%s · %s · tid %s (%s)",
					 cell_str(res, r, 5, n1, sizeof(n1))[0] ? n1
										: cell_str(res, r, 4, n1, sizeof(n1)),
					 cell_str(res, r, 4, n2, sizeof(n2)),
					 cell_str(res, r, 3, n3, sizeof(n3)),
					 cell_str(res, r, 1, n4, sizeof(n4)));
			else if (!strcmp(lane, "service"))
				snprintf(l->label, sizeof(l->label), "%s (%s)",
					 cell_str(res, r, 2, n1, sizeof(n1)),
					 cell_str(res, r, 1, n2, sizeof(n2)));
			else
				snprintf(l->label, sizeof(l->label), "cpu %s (%s)",
					 cell_str(res, r, 2, n1, sizeof(n1)),
					 cell_str(res, r, 1, n2, sizeof(n2)));
			uint64_t pairs;
			if (engine_skew(a->engine, l->node_id, &l->skew, &pairs) < 0)
				l->skew = 0;
			*v = nl++;
		}
		struct lane *l = &lanes[*v];
		if (l->nbars >= max) { /* several types in one bucket: the lane is full */
			truncated = 1;
			continue;
		}
		char type[32];
		cell_str(res, r, lc, type, sizeof(type));
		int64_t t0 = cell_int(res, r, lc + 1) - l->skew;
		int64_t dur = cell_int(res, r, lc + 2);
		buf_printf(&l->bars,
			   "%s{\"start\":%lld,\"end\":%lld,\"type\":\"%s\",\"count\":%lld,\"busy_ns\":%lld",
			   l->nbars ? "," : "", (long long)t0, (long long)(t0 + dur), type,
			   (long long)cell_int(res, r, lc + 5), (long long)cell_int(res, r, lc + 6));
		if (exact)
			buf_printf(&l->bars, ",\"ret\":%lld,\"cpu\":%lld",
				   (long long)cell_int(res, r, lc + 3), (long long)cell_int(res, r, lc + 4));
		if (!strcmp(lane, "thread"))
			buf_printf(&l->bars, ",\"pid\":%lld,\"tid\":%lld", (long long)cell_int(res, r, 2),
				   (long long)cell_int(res, r, 3));
		buf_puts(&l->bars, "}");
		l->nbars++;
	}
	struct kp_buf *b = &resp->body;
	buf_printf(b,
		   "{\"from\":%llu,\"to\":%llu,\"lane\":\"%s\",\"exact\":%s,\"resolution_ns\":%llu,"
		   "\"events\":%lld,\"max_bars\":%ld,\"truncated\":%s,\"lanes\":[",
		   (unsigned long long)from, (unsigned long long)to, lane, exact ? "true" : "false",
		   (unsigned long long)(exact ? 1 : width), (long long)total, max,
		   truncated ? "true" : "false");
	for (size_t i = 0; i < nl; i++) {
		struct lane *l = &lanes[i];
		buf_puts(b, i ? ",{\"key\":" : "{\"key\":");
		json_cstr(b, l->key);
		buf_puts(b, ",\"label\":");
		json_cstr(b, l->label);
		buf_printf(b, ",\"node_id\":%llu,\"skew_ns\":%lld,\"bars\":[",
			   (unsigned long long)l->node_id, (long long)l->skew);
		if (l->bars.len)
			buf_append(b, l->bars.data, l->bars.len);
		buf_puts(b, "]}");
		buf_free(&l->bars);
	}
	buf_puts(b, "]}");
	free(lanes);
	hmap_free(&idx);
	query_result_free(res);
}
