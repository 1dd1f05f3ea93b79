/*
 * graphapi.c - the causal graph's HTTP endpoints: incidents, root cause, subgraph.
 *
 *   GET /api/v1/incidents?from=&to=&service=&q=&limit=&after_time=&after_id=
 *       failed or slow transactions, newest first, each with a one-line root cause
 *   GET /api/v1/rootcause/{key}?steps=N
 *       the chain from the symptom to the kernel cause (the `kprobe demo --json` shape)
 *   GET /api/v1/graph/{key}?depth=N&direction=ancestors|descendants&max=N
 *       the causal subgraph around a transaction, for the dashboard's graph view
 *
 * {key} is a transaction id, trace id, span id, "conn:<hex>", "pid:<n>" or "#<node id>".
 * Handlers read through short MVCC snapshots: they never block the engine's writer.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/internal.h"
#include "common/json.h"
#include "common/util.h"
#include "graph/gstore.h"

/* "1700000000000000000" (epoch ns), or a duration ago ("15m", "1h"), or "" -> def. */
uint64_t appliance__time_param(const struct httpd_req *req, const char *name, uint64_t def)
{
	const char *v = httpd_req_param(req, name);
	if (!v || !*v)
		return def;
	char *end;
	unsigned long long x = strtoull(v, &end, 10);
	if (*end == '\0')
		return x;
	uint64_t ago;
	if (parse_duration_ns(v, &ago) == 0) {
		uint64_t now = now_real_ns();
		return ago < now ? now - ago : 0;
	}
	return def;
}

static long int_param(const struct httpd_req *req, const char *name, long def, long lo, long hi)
{
	const char *v = httpd_req_param(req, name);
	if (!v || !*v)
		return def;
	char *end;
	long x = strtol(v, &end, 10);
	if (*end)
		return def;
	return x < lo ? lo : x > hi ? hi : x;
}

static void key_from_rest(const struct httpd_req *req, char *key, size_t cap)
{
	snprintf(key, cap, "%s", req->rest[0] == '/' ? req->rest + 1 : req->rest);
}

/* One line: "KERNEL: memory pressure (reclaim) from batch-job PID 4721 — 612 ms (82%)". */
static void one_line(const struct gstore_chain *c, char *out, size_t cap, int *mech_pid,
		     const char **mechanism)
{
	*mech_pid = 0;
	*mechanism = "";
	out[0] = '\0';
	/* The most specific kernel cause: the last offcpu/reclaim/faults step; else the root. */
	int pick = -1;
	for (int i = 1; i < c->n; i++)
		if (c->steps[i].kind == GN_OFFCPU || c->steps[i].kind == GN_RECLAIM ||
		    c->steps[i].kind == GN_FAULTS)
			pick = i;
	if (pick < 0 && c->n > 1)
		pick = c->n - 1;
	if (pick < 0)
		return;
	const struct gstore_step *s = &c->steps[pick];
	if (s->kind == GN_RECLAIM)
		*mechanism = "reclaim";
	else if (s->kind == GN_OFFCPU)
		*mechanism = "preemption";
	else if (s->kind == GN_FAULTS)
		*mechanism = "faults";
	if (pick + 1 < c->n && c->steps[pick + 1].kind == GN_PROCESS)
		*mech_pid = (int)c->steps[pick + 1].pid;
	snprintf(out, cap, "%s — %.1f ms (%.0f%%)", s->text[0] ? s->text : s->comm,
		 (double)s->latency_ns / 1e6, s->share * 100.0);
}

static int resolve_or_404(struct gstore_rtxn *r, const char *key, uint64_t *id,
			  struct httpd_resp *resp)
{
	if (!key[0]) {
		httpd_resp_error(resp, 400, "missing key: /api/v1/.../{transaction id, trace id, "
					    "conn:<hex>, pid:<n> or #<node id>}",
				 -1);
		return -EINVAL;
	}
	int rc = gstore_key_resolve(r, key, id);
	if (rc == -ENOENT) {
		char msg[400];
		snprintf(msg, sizeof(msg),
			 "nothing in the causal graph for '%.200s' (a transaction is analyzed "
			 "engine.lateMs after it ends; check the id, or the time range)",
			 key);
		httpd_resp_error(resp, 404, msg, -1);
	} else if (rc < 0) {
		httpd_resp_error(resp, 500, gstore_strerror(rc), -1);
	}
	return rc;
}

void api_rootcause(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	char key[300];
	key_from_rest(req, key, sizeof(key));
	struct gstore_rtxn *r;
	int rc = gstore_rbegin(a->graph, &r);
	if (rc < 0) {
		httpd_resp_error(resp, 503, gstore_strerror(rc), -1);
		return;
	}
	uint64_t id;
	if (resolve_or_404(r, key, &id, resp) == 0) {
		struct gstore_chain *c = xmalloc(sizeof(*c));
		int steps = (int)int_param(req, "steps", a->cfg->engine_max_steps, 1, GSTORE_STEPS_MAX);
		rc = gstore_rootcause(r, id, steps, c);
		if (rc < 0)
			httpd_resp_error(resp, 500, gstore_strerror(rc), -1);
		else
			gstore_json_chain(&resp->body, key, c);
		free(c);
	}
	gstore_rend(r);
}

void api_graph(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	char key[300];
	key_from_rest(req, key, sizeof(key));
	const char *dirp = httpd_req_param(req, "direction");
	enum gstore_dir dir = dirp && !strcmp(dirp, "descendants") ? GSTORE_OUT : GSTORE_IN;
	if (dirp && strcmp(dirp, "descendants") && strcmp(dirp, "ancestors")) {
		httpd_resp_error(resp, 400, "direction must be ancestors or descendants", -1);
		return;
	}
	int depth = (int)int_param(req, "depth", 8, 0, 64);
	size_t max = (size_t)int_param(req, "max", 5000, 1, 100000);
	struct gstore_rtxn *r;
	int rc = gstore_rbegin(a->graph, &r);
	if (rc < 0) {
		httpd_resp_error(resp, 503, gstore_strerror(rc), -1);
		return;
	}
	uint64_t id;
	if (resolve_or_404(r, key, &id, resp) == 0) {
		struct gstore_subgraph sg = {0};
		rc = gstore_traverse(r, id, dir, depth, max, GSTORE_SG_EDGES, &sg);
		if (rc == 0)
			rc = gstore_json_subgraph(&resp->body, r, key, dir, &sg);
		if (rc < 0) {
			resp->body.len = 0;
			httpd_resp_error(resp, 500, gstore_strerror(rc), -1);
		}
		gstore_subgraph_free(&sg);
	}
	gstore_rend(r);
}

static int contains_ci(const char *hay, const char *needle)
{
	return !needle || !*needle || (hay && strcasestr(hay, needle));
}

void api_incidents(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	uint64_t to = appliance__time_param(req, "to", UINT64_MAX), from = appliance__time_param(req, "from", 0);
	long limit = int_param(req, "limit", 100, 1, 1000);
	const char *service = httpd_req_param(req, "service");
	const char *q = httpd_req_param(req, "q");
	struct gstore_incident after = {0}, *afterp = NULL;
	if (httpd_req_param(req, "after_time")) {
		after.time_ns = appliance__time_param(req, "after_time", 0);
		after.id = (uint64_t)int_param(req, "after_id", 0, 0, LONG_MAX);
		afterp = &after;
	}
	struct gstore_rtxn *r;
	int rc = gstore_rbegin(a->graph, &r);
	if (rc < 0) {
		httpd_resp_error(resp, 503, gstore_strerror(rc), -1);
		return;
	}
	struct kp_buf *b = &resp->body;
	buf_puts(b, "{\"incidents\":[");
	struct gstore_chain *c = xmalloc(sizeof(*c));
	struct gstore_incident page[128], last = {0};
	long emitted = 0;
	int more = 1, scanned = 0;
	/* Filters apply after the time index: page through it until limit rows match, with a
	 * bound on the symptoms examined per request. */
	while (emitted < limit && more && scanned < 20000) {
		size_t n = 0;
		rc = gstore_incidents(r, from, to, afterp, page, KP_ARRAY_SIZE(page), &n);
		if (rc < 0 || n == 0)
			break;
		more = n == KP_ARRAY_SIZE(page);
		for (size_t i = 0; i < n && emitted < limit; i++) {
			scanned++;
			last = page[i];
			struct gstore_node nd;
			if (gstore_node_get(r, page[i].id, &nd) < 0)
				continue;
			const char *key = gstore_node_label(&nd, "key");
			const char *text = gstore_node_label(&nd, "text");
			const char *comm = gstore_node_label(&nd, "comm");
			if (service && *service && strcmp(nd.service, service) != 0)
				continue;
			if (q && *q && !contains_ci(key, q) && !contains_ci(text, q) &&
			    !contains_ci(nd.service, q) && !contains_ci(comm, q))
				continue;
			char line[400];
			int mpid;
			const char *mech;
			if (gstore_rootcause(r, page[i].id, (int)a->cfg->engine_max_steps, c) < 0)
				c->n = 0;
			one_line(c, line, sizeof(line), &mpid, &mech);
			buf_puts(b, emitted ? ",{" : "{");
			buf_printf(b, "\"id\":%llu,\"time_ns\":%llu,\"start_ns\":%llu,\"end_ns\":%llu,"
				      "\"duration_ns\":%llu,\"pid\":%u,\"host\":%llu,\"key\":",
				   (unsigned long long)nd.id, (unsigned long long)page[i].time_ns,
				   (unsigned long long)nd.start_ns, (unsigned long long)nd.end_ns,
				   (unsigned long long)(nd.end_ns - nd.start_ns), nd.pid,
				   (unsigned long long)nd.host);
			json_cstr(b, key ? key : "");
			buf_puts(b, ",\"service\":");
			json_cstr(b, nd.service);
			buf_puts(b, ",\"comm\":");
			json_cstr(b, comm ? comm : "");
			buf_puts(b, ",\"text\":");
			json_cstr(b, text ? text : "");
			buf_puts(b, ",\"root_cause\":");
			json_cstr(b, line);
			buf_printf(b, ",\"root_cause_pid\":%d,\"mechanism\":", mpid);
			json_cstr(b, mech);
			buf_printf(b, ",\"steps\":%d}", c->n);
			emitted++;
		}
		after = last;
		afterp = &after;
	}
	free(c);
	gstore_rend(r);
	if (emitted == limit && (more || scanned)) 
		buf_printf(b, "],\"next\":{\"after_time\":%llu,\"after_id\":%llu}}",
			   (unsigned long long)last.time_ns, (unsigned long long)last.id);
	else
		buf_puts(b, "],\"next\":null}");
}
