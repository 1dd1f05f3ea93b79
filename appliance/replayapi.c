/*
 * replayapi.c - replay over HTTP: recordings built from the capture store, uploads, and replay
 * sessions run on this host for the dashboard's replay panel.
 *
 *   GET  /api/v1/replay/recording?pid=P&from=T&to=T[&node=N]
 *   GET  /api/v1/replay/recording?incident=KEY
 *        a self-contained recording (replay/rec.h) as application/octet-stream; headers
 *        X-Kprobe-Recording (what it holds) and X-Kprobe-Note (when something is off)
 *   POST /api/v1/replay/recordings[?node=N]
 *        body: a recording (`kprobe record --appliance`); its records join the capture store
 *   POST /api/v1/replay            JSON in, JSON out (shapes in the README of this endpoint,
 *                                  below api_replay_run); runs one replay in a worker process
 *   GET  /api/v1/replay/{id}       a finished run's answer again (the last 16 are kept)
 *   GET  /api/v1/replay/processes?incident=KEY
 *                                  the transaction's processes and whether each was captured
 *                                  (the replay panel's choices; below api_replay_processes)
 *
 * T is epoch ns, a duration ago ("15m"), or RFC 3339 UTC ("2026-05-01T10:00:00.5Z"). N is a
 * node id (decimal, or 0x-hex), needed only when several nodes captured the pid.
 *
 * An incident KEY (transaction, trace or span id, anything gstore_key_resolve takes) is turned
 * into a process and a range through the causal graph: the node the key resolves to and every
 * node filed under the key, each with its pid, host and time range; the first whose process was
 * captured then wins, and the recording runs from that process's exec to its exit (plus
 * REPLAY_LINGER, so what its peers sent after it gave up is in).
 *
 * Replays run in `kprobed --replay-worker` processes (replay/worker.c): kprobed is
 * many-threaded and a replay wants a process of its own (ptrace, SIGCHLD, CPU pinning, a kill
 * on timeout that takes nothing else down). At most replay.api.maxConcurrent at once (429
 * past that), each killed after replay.api.timeoutMs. The endpoint runs programs on this host:
 * replay.api.enabled (auto: only when api.bind is loopback) switches it off.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "appliance/internal.h"
#include "common/json.h"
#include "common/util.h"
#include "graph/gstore.h"
#include "replay/capstore.h"
#include "replay/rec.h"
#include "replay/replay.h"

#define REPLAY_LOOKBACK	 (3600ull * NSEC_PER_SEC) /* an incident's process exec'd this long ago */
#define REPLAY_LOOKAHEAD (60ull * NSEC_PER_SEC)	  /* ... and exited within this after it */
#define REPLAY_LINGER	 NSEC_PER_SEC		  /* peers' records kept past the exit */
#define OUT_CAP		 65536			  /* stdout/stderr bytes in an answer */
#define MAX_CANDIDATES	 256
#define MAX_ARGS	 64
#define MAX_INJ		 32

extern char **environ;

/* ------------------------------------------------------------------ parameters */

/* Epoch ns, a duration ago, or RFC 3339 in UTC. */
static int parse_time(const char *v, uint64_t *out)
{
	if (!v || !*v)
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (!*end && !errno && v[0] != '-') {
		*out = x;
		return 0;
	}
	uint64_t ago;
	if (parse_duration_ns(v, &ago) == 0) {
		uint64_t now = now_real_ns();
		*out = ago < now ? now - ago : 0;
		return 0;
	}
	struct tm tm = {0};
	const char *p = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	uint64_t frac = 0, scale = 100000000;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (uint64_t)(*p - '0') * scale;
	if (strcmp(p, "Z") && strcmp(p, "+00:00"))
		return -EINVAL;
	time_t t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*out = (uint64_t)t * NSEC_PER_SEC + frac;
	return 0;
}

static int parse_node(const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long x =
		!strncmp(v, "0x", 2) ? strtoull(v + 2, &end, 16) : strtoull(v, &end, 10);
	if (!*v || *end || errno)
		return -EINVAL;
	*out = x;
	return 0;
}

/* What to build a recording of: an incident key, or a pid and a range. */
struct recsel {
	char incident[300];
	uint64_t node;
	uint32_t pid;
	uint64_t from, to;
	bool have_from, have_to;
};

static int status_of(int rc)
{
	switch (rc) {
	case -EINVAL:
		return 400;
	case -ENOENT:
		return 404;
	case -ENOTUNIQ:
		return 409;
	case -E2BIG:
		return 413;
	case -ECANCELED:
		return 503;
	default:
		return 500;
	}
}

/* ------------------------------------------------------------------ incidents */

struct cand {
	uint64_t host;
	uint32_t pid;
	uint64_t start, end;
	char comm[32];
	char service[GSTORE_SERVICE_MAX + 1];
	bool chain; /* found along the root-cause chain, not filed under the key */
};

static void cand_add(struct cand *v, int *n, const struct gstore_node *nd)
{
	if (!nd->pid || *n >= MAX_CANDIDATES)
		return;
	for (int i = 0; i < *n; i++)
		if (v[i].pid == nd->pid && v[i].host == nd->host) {
			v[i].start = KP_MIN(v[i].start, nd->start_ns);
			v[i].end = KP_MAX(v[i].end, nd->end_ns);
			return;
		}
	struct cand *c = &v[(*n)++];
	c->host = nd->host;
	c->pid = nd->pid;
	c->start = nd->start_ns;
	c->end = nd->end_ns;
	const char *comm = gstore_node_label(nd, "comm");
	snprintf(c->comm, sizeof(c->comm), "%s", comm ? comm : "");
	snprintf(c->service, sizeof(c->service), "%s", nd->service);
}

/*
 * The processes of incident `key` in *cv (n of them, at most MAX_CANDIDATES): the node the key
 * resolves to and every node filed under the key, then (with_chain) the processes along its
 * root-cause chain (a server it waited on, the culprit). 0, or an error with a message.
 */
static int incident_candidates(struct appliance *a, const char *key, bool with_chain,
			       struct cand *cv, int *n, char *err, size_t errlen)
{
	*n = 0;
	struct gstore_rtxn *r;
	int rc = gstore_rbegin(a->graph, &r);
	if (rc < 0) {
		snprintf(err, errlen, "the causal graph cannot be read: %s", gstore_strerror(rc));
		return -EIO;
	}
	uint64_t id;
	rc = gstore_key_resolve(r, key, &id);
	if (rc < 0) {
		gstore_rend(r);
		snprintf(err, errlen,
			 "nothing in the causal graph for '%.200s' (a transaction is analyzed "
			 "engine.lateMs after it ends; check the id)",
			 key);
		return rc == -ENOENT ? -ENOENT : -EIO;
	}
	struct gstore_node nd;
	if (gstore_node_get(r, id, &nd) == 0)
		cand_add(cv, n, &nd);
	uint64_t *ids = xcalloc(MAX_CANDIDATES, sizeof(*ids));
	size_t total = 0;
	if (gstore_key_lookup(r, key, strlen(key), ids, MAX_CANDIDATES, &total) == 0)
		for (size_t i = 0; i < KP_MIN(total, (size_t)MAX_CANDIDATES); i++)
			if (gstore_node_get(r, ids[i], &nd) == 0)
				cand_add(cv, n, &nd);
	free(ids);
	if (with_chain) {
		struct gstore_chain *ch = xcalloc(1, sizeof(*ch));
		int first = *n;
		if (gstore_rootcause(r, id, GSTORE_STEPS_MAX, ch) == 0)
			for (int i = 1; i < ch->n; i++)
				if (gstore_node_get(r, ch->steps[i].id, &nd) == 0)
					cand_add(cv, n, &nd);
		for (int i = first; i < *n; i++)
			cv[i].chain = true;
		free(ch);
	}
	gstore_rend(r);
	return 0;
}

/* A candidate's capture around its time (found->node etc.): 1, 0 when none, or -errno. */
static int candidate_capture(struct appliance *a, const struct cand *c,
			     struct capstore_found *found)
{
	int f = capstore_find_process_info(a->cap, c->host, c->pid, c->start, c->end,
					   REPLAY_LOOKBACK, REPLAY_LOOKAHEAD, found);
	if (f == 0 && c->host) /* spans without the agent's node id */
		f = capstore_find_process_info(a->cap, 0, c->pid, c->start, c->end,
					       REPLAY_LOOKBACK, REPLAY_LOOKAHEAD, found);
	return f;
}

/* Resolves s->incident into s->node, pid, from, to. 0, or an error with a message. */
static int resolve_incident(struct appliance *a, struct recsel *s, char *err, size_t errlen)
{
	struct cand *cv = xcalloc(MAX_CANDIDATES, sizeof(*cv));
	int n = 0;
	int rc = incident_candidates(a, s->incident, false, cv, &n, err, errlen);
	if (rc < 0) {
		free(cv);
		return rc;
	}
	struct capstore_found *fd = xcalloc(1, sizeof(*fd));
	rc = -ENOENT;
	for (int i = 0; i < n; i++) {
		int f = candidate_capture(a, &cv[i], fd);
		if (f < 0) {
			rc = f;
			snprintf(err, errlen, "reading the capture store failed: %s", strerror(-f));
			break;
		}
		if (f == 1) {
			s->node = fd->node;
			s->pid = cv[i].pid;
			s->from = fd->from_ns;
			s->to = fd->to_ns + REPLAY_LINGER;
			rc = 0;
			break;
		}
	}
	free(fd);
	if (rc == -ENOENT) {
		int o = snprintf(err, errlen, "no process of '%.120s' was captured for replay",
				 s->incident);
		for (int i = 0; i < n && i < 6 && o > 0 && (size_t)o < errlen; i++)
			o += snprintf(err + o, errlen - (size_t)o, "%s pid %u%s%s%s",
				      i ? "," : " (", cv[i].pid, cv[i].comm[0] ? " (" : "",
				      cv[i].comm, cv[i].comm[0] ? ")" : "");
		if (o > 0 && (size_t)o < errlen)
			snprintf(err + o, errlen - (size_t)o,
				 "%s: replay capture is off by default; set "
				 "replay.capture.comms=%s on that node's agent",
				 n ? ")" : " (the graph names no process for it)",
				 n && cv[0].comm[0] ? cv[0].comm : "NAME");
	}
	free(cv);
	return rc;
}

/*
 * GET /api/v1/replay/processes?incident=KEY - what the dashboard's replay panel offers: the
 * transaction's processes and those along its root-cause chain, each with whether the capture
 * store holds it around the incident and, when it does, the range a recording would cover
 * (exec to exit) and the command line it was started with:
 *   {"incident":KEY,"processes":[{"pid","host","comm","service","role":"transaction"|"chain",
 *     "start_ns","end_ns","captured":bool, and when captured: "node","from_ns","to_ns",
 *     "records","exec_seen","exit_seen","command":[...]}],"hint":"..."}
 */
void api_replay_processes(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	char err[1024];
	const char *key = httpd_req_param(req, "incident");
	if (!key || !*key) {
		httpd_resp_error(resp, 400, "incident: a transaction, trace or span id", -1);
		return;
	}
	if (strlen(key) >= 300) {
		httpd_resp_error(resp, 400, "incident: a key of at most 299 bytes", -1);
		return;
	}
	if (!a->cap) {
		httpd_resp_error(resp, 503, "the capture store is not open (see kprobed's log)",
				 -1);
		return;
	}
	struct cand *cv = xcalloc(MAX_CANDIDATES, sizeof(*cv));
	int n = 0;
	int rc = incident_candidates(a, key, true, cv, &n, err, sizeof(err));
	if (rc < 0) {
		free(cv);
		httpd_resp_error(resp, rc == -ENOENT ? 404 : 500, err, -1);
		return;
	}
	struct capstore_found *fd = xcalloc(1, sizeof(*fd));
	struct kp_buf *b = &resp->body;
	buf_puts(b, "{\"incident\":");
	json_cstr(b, key);
	buf_puts(b, ",\"processes\":[");
	int captured = 0;
	for (int i = 0; i < n; i++) {
		const struct cand *c = &cv[i];
		int f = candidate_capture(a, c, fd);
		if (f < 0) {
			free(fd);
			free(cv);
			buf_free(b);
			snprintf(err, sizeof(err), "reading the capture store failed: %s",
				 strerror(-f));
			httpd_resp_error(resp, 500, err, -1);
			return;
		}
		buf_printf(b, "%s{\"pid\":%u,\"host\":%" PRIu64 ",\"comm\":", i ? "," : "", c->pid,
			   c->host);
		json_cstr(b, c->comm);
		buf_puts(b, ",\"service\":");
		json_cstr(b, c->service);
		buf_printf(b,
			   ",\"role\":\"%s\",\"start_ns\":%" PRIu64 ",\"end_ns\":%" PRIu64
			   ",\"captured\":%s",
			   c->chain ? "chain" : "transaction", c->start, c->end,
			   f == 1 ? "true" : "false");
		if (f == 1) {
			captured++;
			buf_printf(b,
				   ",\"node\":%" PRIu64 ",\"from_ns\":%" PRIu64 ",\"to_ns\":%" PRIu64
				   ",\"records\":%" PRIu64 ",\"exec_seen\":%s,\"exit_seen\":%s"
				   ",\"command\":[",
				   fd->node, fd->from_ns, (uint64_t)(fd->to_ns + REPLAY_LINGER), fd->records,
				   fd->exec_seen ? "true" : "false", fd->exit_seen ? "true" : "false");
			for (int k = 0; k < fd->argc; k++) {
				if (k)
					buf_puts(b, ",");
				json_cstr(b, fd->argv[k]);
			}
			buf_puts(b, "]");
		}
		buf_puts(b, "}");
	}
	buf_puts(b, "],\"hint\":");
	if (captured)
		buf_puts(b, "null");
	else
		json_cstr(b, n ? "none of these processes was captured for replay: replay capture "
				 "is off by default; set replay.capture.comms (or .pids, .cgroups) "
				 "on the node's agent before the next incident"
			       : "the causal graph names no process for this key");
	buf_puts(b, "}");
	free(fd);
	free(cv);
}

/* ------------------------------------------------------------------ building */

static void node_names(void *ctx, uint64_t node, char *host, size_t hc, char *kernel, size_t kc)
{
	struct appliance *a = ctx;
	pthread_mutex_lock(&a->names_mu);
	uint64_t *v = hmap_get(&a->nodes, node, 0);
	if (v) {
		snprintf(host, hc, "%s", a->node_names[*v]);
		snprintf(kernel, kc, "%s", a->node_kernels[*v]);
	}
	pthread_mutex_unlock(&a->names_mu);
}

static bool req_cancel(void *arg)
{
	return arg && httpd_req_expired(arg);
}

static int build(struct appliance *a, struct recsel *s, const struct httpd_req *req,
		 struct kp_buf *out, struct capstore_recinfo *info, char *err, size_t errlen)
{
	if (!a->cap) {
		snprintf(err, errlen, "the capture store is not open (see kprobed's log)");
		return -EIO;
	}
	if (s->incident[0]) {
		int rc = resolve_incident(a, s, err, errlen);
		if (rc < 0)
			return rc;
	} else {
		if (!s->pid) {
			snprintf(err, errlen,
				 "say what to replay: pid=P&from=T&to=T, or incident=KEY");
			return -EINVAL;
		}
		if (!s->have_from || !s->have_to) {
			snprintf(err, errlen,
				 "pid=%u needs from=T and to=T (epoch ns, 15m, or "
				 "2026-05-01T10:00:00Z)",
				 s->pid);
			return -EINVAL;
		}
		if (s->from > s->to) {
			snprintf(err, errlen, "from is after to");
			return -EINVAL;
		}
	}
	struct capstore_recq q = {
		.node = s->node,
		.pid = s->pid,
		.from_ns = s->from,
		.to_ns = s->to,
		.max_bytes = (uint64_t)a->cfg->replay_api_max_recording_mb << 20,
		.node_names = node_names,
		.names_ctx = a,
		.cancel = req ? req_cancel : NULL,
		.cancel_arg = (void *)req,
	};
	return capstore_recording(a->cap, &q, out, info, err, errlen);
}

static void info_json(struct kp_buf *b, const struct capstore_recinfo *in, const struct rec *r)
{
	buf_printf(b,
		   "{\"pid\":%u,\"node\":%" PRIu64 ",\"from_ns\":%" PRIu64 ",\"to_ns\":%" PRIu64
		   ",\"calls\":%" PRIu64 ",\"threads\":%u,\"processes\":%u,\"bytes\":%" PRIu64
		   ",\"payload_bytes\":%" PRIu64 ",\"lost\":%" PRIu64
		   ",\"exec_seen\":%s,\"exit_seen\":%s,\"command\":[",
		   in->pid, in->node, in->first_ns, in->last_ns, in->calls, in->threads,
		   in->processes, in->file_bytes, in->payload_bytes, in->lost,
		   in->exec_seen ? "true" : "false", in->exit_seen ? "true" : "false");
	const struct rec_meta *m = r ? rec_meta(r) : NULL;
	for (int i = 0; m && i < m->argc; i++) {
		if (i)
			buf_puts(b, ",");
		json_cstr(b, m->argv[i]);
	}
	buf_puts(b, "],\"executable\":");
	json_cstr(b, in->argv0);
	buf_puts(b, ",\"note\":");
	json_cstr(b, in->note);
	buf_puts(b, "}");
}

void api_replay_recording(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	struct recsel s = {0};
	const char *v;
	char err[1024];
	if ((v = httpd_req_param(req, "incident")) && *v) {
		if (httpd_req_param(req, "pid")) {
			httpd_resp_error(resp, 400, "give incident or pid, not both", -1);
			return;
		}
		if (strlen(v) >= sizeof(s.incident)) {
			httpd_resp_error(resp, 400, "incident: a key of at most 299 bytes", -1);
			return;
		}
		snprintf(s.incident, sizeof(s.incident), "%s", v);
	} else {
		if ((v = httpd_req_param(req, "pid"))) {
			char *end;
			unsigned long p = strtoul(v, &end, 10);
			if (*end || !p || p > UINT32_MAX) {
				httpd_resp_error(resp, 400, "pid: a process id", -1);
				return;
			}
			s.pid = (uint32_t)p;
		}
		if ((v = httpd_req_param(req, "from"))) {
			if (parse_time(v, &s.from) < 0) {
				httpd_resp_error(resp, 400,
						 "from: epoch ns, a duration ago (15m) or RFC 3339 "
						 "UTC (2026-05-01T10:00:00Z)",
						 -1);
				return;
			}
			s.have_from = true;
		}
		if ((v = httpd_req_param(req, "to"))) {
			if (parse_time(v, &s.to) < 0) {
				httpd_resp_error(resp, 400,
						 "to: epoch ns, a duration ago (15m) or RFC 3339 "
						 "UTC (2026-05-01T10:00:00Z)",
						 -1);
				return;
			}
			s.have_to = true;
		}
	}
	if ((v = httpd_req_param(req, "node")) && parse_node(v, &s.node) < 0) {
		httpd_resp_error(resp, 400, "node: a node id (decimal, or 0x-hex)", -1);
		return;
	}
	struct kp_buf out = {0};
	struct capstore_recinfo info;
	int rc = build(a, &s, req, &out, &info, err, sizeof(err));
	if (rc < 0) {
		httpd_resp_error(resp, status_of(rc), err, -1);
		buf_free(&out);
		return;
	}
	httpd_resp_set_type(resp, "application/octet-stream");
	char h[512];
	snprintf(h, sizeof(h), "attachment; filename=\"pid-%u.kprc\"", info.pid);
	httpd_resp_header(resp, "Content-Disposition", h);
	snprintf(h, sizeof(h),
		 "pid=%u node=%" PRIu64 " from=%" PRIu64 " to=%" PRIu64 " calls=%" PRIu64
		 " threads=%u processes=%u exec=%d exit=%d lost=%" PRIu64,
		 info.pid, info.node, info.first_ns, info.last_ns, info.calls, info.threads,
		 info.processes, info.exec_seen, info.exit_seen, info.lost);
	httpd_resp_header(resp, "X-Kprobe-Recording", h);
	if (info.note[0])
		httpd_resp_header(resp, "X-Kprobe-Note", info.note);
	buf_free(&resp->body);
	resp->body = out;
}

void api_replay_upload(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	char err[1024];
	if (!a->cap) {
		httpd_resp_error(resp, 503, "the capture store is not open (see kprobed's log)",
				 -1);
		return;
	}
	struct rec *r;
	if (rec_open_mem(&r, req->body, req->body_len, err, sizeof(err)) < 0) {
		char m[1200];
		snprintf(m, sizeof(m), "not a recording: %s", err);
		httpd_resp_error(resp, 400, m, -1);
		return;
	}
	const struct rec_meta *m = rec_meta(r);
	uint64_t node = 0;
	const char *v = httpd_req_param(req, "node");
	if (v && parse_node(v, &node) < 0) {
		rec_close(r);
		httpd_resp_error(resp, 400, "node: a node id (decimal, or 0x-hex)", -1);
		return;
	}
	if (!node)
		node = XXH3_64bits(m->host, strlen(m->host)) | 1;
	int n = capstore_append_upload(a->cap, node, r);
	if (n < 0) {
		rec_close(r);
		snprintf(err, sizeof(err), "cannot store the recording: %s", strerror(-n));
		httpd_resp_error(resp, 500, err, -1);
		return;
	}
	int64_t off = (int64_t)(m->real_base - m->mono_base);
	buf_printf(&resp->body,
		   "{\"records\":%d,\"node\":%" PRIu64 ",\"pid\":%u,\"from_ns\":%" PRIu64
		   ",\"to_ns\":%" PRIu64 ",\"incomplete\":%s}",
		   n, node, m->root_tid, m->mono_base + (uint64_t)off, m->mono_end + (uint64_t)off,
		   m->flags & REC_F_INCOMPLETE ? "true" : "false");
	rec_close(r);
}

/* ------------------------------------------------------------------ sessions */

/*
 * POST /api/v1/replay, body (JSON object; unknown fields are refused):
 *   {"incident": "KEY"}                       or
 *   {"pid": P, "from": T, "to": T, "node": N} (T as for the recording endpoint; N optional)
 *   "command":    ["/abs/path", "arg", ...]   optional: the recorded command line
 *   "delays":     ["poll:+1s", ...]           as kprobe replay --delay
 *   "fails":      ["fsync:EIO", ...]          as kprobe replay --fail
 *   "time_scale": 2.0                         as --time-scale
 *   "keep_env":   false                       as --keep-env
 *   "timeout_ms": 10000                       at most replay.api.timeoutMs
 * Answer 200: {"id":"r-N","state":"done"|"diverged"|"failed"|"timed out",
 *   "recording":{pid,node,from_ns,to_ns,calls,threads,processes,bytes,payload_bytes,lost,
 *                exec_seen,exit_seen,command,executable,note},
 *   "command":[...the command run...], then replay_result_json's fields (replay.h)}.
 * Errors: 400 (malformed; what and where), 403 (disabled), 404 (nothing captured), 409 (node
 * ambiguous, or the recording is incomplete), 413 (too large), 429 (busy), 500.
 */

static int strlist(const struct json *arr, const char *name, char **out, int max, int *n, char *err,
		   size_t errlen)
{
	*n = 0;
	if (!arr)
		return 0;
	if (arr->type != JSON_ARR) {
		snprintf(err, errlen, "%s: an array of strings", name);
		return -EINVAL;
	}
	if (arr->u.arr.n > (size_t)max) {
		snprintf(err, errlen, "%s: at most %d entries", name, max);
		return -EINVAL;
	}
	for (size_t i = 0; i < arr->u.arr.n; i++) {
		const struct json *s = arr->u.arr.items[i];
		if (s->type != JSON_STR || !s->u.str.len || s->u.str.len > 4096 ||
		    strlen(s->u.str.s) != s->u.str.len) {
			snprintf(err, errlen,
				 "%s[%zu]: a non-empty string without NUL bytes "
				 "(at most 4096 bytes)",
				 name, i);
			return -EINVAL;
		}
		out[(*n)++] = s->u.str.s;
	}
	return 0;
}

static int json_time(const struct json *v, const char *name, uint64_t *out, char *err,
		     size_t errlen)
{
	if (v->type == JSON_STR && parse_time(v->u.str.s, out) == 0)
		return 0;
	if (v->type == JSON_NUM && json_uint(v, out) == 0)
		return 0;
	snprintf(err, errlen,
		 "%s: epoch ns (a number or a string), a duration ago (\"15m\") or "
		 "RFC 3339 UTC",
		 name);
	return -EINVAL;
}

struct runreq {
	struct recsel sel;
	char *cmd[MAX_ARGS + 1];
	int ncmd;
	char *delays[MAX_INJ], *fails[MAX_INJ];
	int ndelays, nfails;
	double time_scale;
	bool keep_env;
	int64_t timeout_ms;
};

static int runreq_parse(const struct json *root, struct runreq *q, char *err, size_t errlen)
{
	static const char *const known[] = {"incident",	  "pid",      "from",	   "to",
					    "node",	  "command",  "delays",	   "fails",
					    "time_scale", "keep_env", "timeout_ms"};
	if (!root || root->type != JSON_OBJ) {
		snprintf(err, errlen, "the body must be a JSON object");
		return -EINVAL;
	}
	for (size_t i = 0; i < root->u.arr.n; i++) {
		bool ok = false;
		for (size_t k = 0; k < KP_ARRAY_SIZE(known) && !ok; k++)
			ok = !strcmp(root->u.arr.keys[i], known[k]);
		if (!ok) {
			snprintf(err, errlen,
				 "unknown field '%.60s' (known: incident, pid, from, to, "
				 "node, command, delays, fails, time_scale, keep_env, "
				 "timeout_ms)",
				 root->u.arr.keys[i]);
			return -EINVAL;
		}
	}
	const struct json *v;
	q->time_scale = 1.0;
	if ((v = json_get(root, "incident"))) {
		if (v->type != JSON_STR || !v->u.str.len ||
		    v->u.str.len >= sizeof(q->sel.incident) || strlen(v->u.str.s) != v->u.str.len) {
			snprintf(err, errlen, "incident: a key (transaction, trace or span id)");
			return -EINVAL;
		}
		snprintf(q->sel.incident, sizeof(q->sel.incident), "%s", v->u.str.s);
	}
	if ((v = json_get(root, "pid"))) {
		int64_t p;
		if (json_int(v, &p) < 0 || p <= 0 || p > UINT32_MAX) {
			snprintf(err, errlen, "pid: a process id");
			return -EINVAL;
		}
		q->sel.pid = (uint32_t)p;
	}
	if (q->sel.incident[0] && q->sel.pid) {
		snprintf(err, errlen, "give incident or pid, not both");
		return -EINVAL;
	}
	if ((v = json_get(root, "from"))) {
		if (json_time(v, "from", &q->sel.from, err, errlen) < 0)
			return -EINVAL;
		q->sel.have_from = true;
	}
	if ((v = json_get(root, "to"))) {
		if (json_time(v, "to", &q->sel.to, err, errlen) < 0)
			return -EINVAL;
		q->sel.have_to = true;
	}
	if ((v = json_get(root, "node"))) {
		if (!((v->type == JSON_STR && parse_node(v->u.str.s, &q->sel.node) == 0) ||
		      (v->type == JSON_NUM && json_uint(v, &q->sel.node) == 0))) {
			snprintf(err, errlen, "node: a node id");
			return -EINVAL;
		}
	}
	if (strlist(json_get(root, "command"), "command", q->cmd, MAX_ARGS, &q->ncmd, err, errlen) <
		    0 ||
	    strlist(json_get(root, "delays"), "delays", q->delays, MAX_INJ, &q->ndelays, err,
		    errlen) < 0 ||
	    strlist(json_get(root, "fails"), "fails", q->fails, MAX_INJ, &q->nfails, err, errlen) <
		    0)
		return -EINVAL;
	if (json_get(root, "command") && !q->ncmd) {
		snprintf(err, errlen, "command: at least the program to run");
		return -EINVAL;
	}
	if ((v = json_get(root, "time_scale"))) {
		if (v->type != JSON_NUM || !(v->u.num.d > 0.0) || v->u.num.d > 1e6) {
			snprintf(err, errlen,
				 "time_scale: a positive number (2 = the world is twice "
				 "as slow)");
			return -EINVAL;
		}
		q->time_scale = v->u.num.d;
	}
	if ((v = json_get(root, "keep_env"))) {
		if (v->type != JSON_BOOL) {
			snprintf(err, errlen, "keep_env: true or false");
			return -EINVAL;
		}
		q->keep_env = v->u.b;
	}
	if ((v = json_get(root, "timeout_ms"))) {
		if (json_int(v, &q->timeout_ms) < 0 || q->timeout_ms < 100) {
			snprintf(err, errlen, "timeout_ms: a number of milliseconds (>= 100)");
			return -EINVAL;
		}
	}
	/* the injections are checked here, so a typo is a 400 and not a failed run */
	for (int i = 0; i < q->ndelays + q->nfails; i++) {
		struct replay_inj inj;
		bool d = i < q->ndelays;
		const char *spec = d ? q->delays[i] : q->fails[i - q->ndelays];
		char m[300];
		if (replay_inj_parse(spec, d ? REPLAY_DELAY : REPLAY_FAIL, &inj, m, sizeof(m)) <
		    0) {
			snprintf(err, errlen, "%s[%d]: %s", d ? "delays" : "fails",
				 d ? i : i - q->ndelays, m);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_exe(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (path[0] != '/') {
		snprintf(err, errlen,
			 "command[0] '%.300s' must be an absolute path to an executable "
			 "on the appliance host",
			 path);
		return -EINVAL;
	}
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0) {
		snprintf(err, errlen,
			 "command[0] '%.300s' is not an executable file on the appliance "
			 "host",
			 path);
		return -EINVAL;
	}
	return 0;
}

static void session_keep(struct appliance *a, uint64_t id, const struct kp_buf *json)
{
	pthread_mutex_lock(&a->rs_mu);
	int k = (int)(id % KP_ARRAY_SIZE(a->sessions));
	free(a->sessions[k].json);
	a->sessions[k].id = id;
	a->sessions[k].json = xstrndup(json->data, json->len);
	pthread_mutex_unlock(&a->rs_mu);
}

void api_replay_get(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	const char *rest = req->rest[0] == '/' ? req->rest + 1 : req->rest;
	char *end;
	uint64_t id = strncmp(rest, "r-", 2) ? 0 : strtoull(rest + 2, &end, 10);
	if (!id || *end) {
		httpd_resp_error(resp, 400, "a replay id: /api/v1/replay/r-N", -1);
		return;
	}
	pthread_mutex_lock(&a->rs_mu);
	int k = (int)(id % KP_ARRAY_SIZE(a->sessions));
	if (a->sessions[k].id == id && a->sessions[k].json)
		buf_puts(&resp->body, a->sessions[k].json);
	pthread_mutex_unlock(&a->rs_mu);
	if (!resp->body.len)
		httpd_resp_error(resp, 404, "no such replay (only the last 16 are kept)", -1);
}

/* Runs the worker; fills out with its stdout. 0, -ETIMEDOUT, or -errno. */
static int worker_run(struct appliance *a, char *const *wargv, const char *logpath,
		      uint64_t deadline_mono, const struct httpd_req *req, struct kp_buf *out,
		      int *status)
{
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pp[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawnattr_init(&at);
	sigset_t none, def;
	sigemptyset(&none);
	sigemptyset(&def);
	int sigs[] = {SIGCHLD, SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < KP_ARRAY_SIZE(sigs); i++)
		sigaddset(&def, sigs[i]);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	pid_t pid;
	int rc = posix_spawn(&pid, a->exe, &fa, &at, wargv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pp[1]);
	if (rc) {
		close(pp[0]);
		return -rc;
	}
	rc = 0;
	for (;;) {
		uint64_t now = now_mono_ns();
		if (now >= deadline_mono || httpd_req_expired(req)) {
			rc = -ETIMEDOUT;
			break;
		}
		struct pollfd pf = {pp[0], POLLIN, 0};
		int to = (int)KP_MIN((deadline_mono - now) / NSEC_PER_MSEC + 1, (uint64_t)100);
		if (poll(&pf, 1, to) <= 0)
			continue;
		char buf[65536];
		ssize_t n = read(pp[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		if (out->len < (4u << 20))
			buf_append(out, buf, (size_t)n);
	}
	close(pp[0]);
	if (rc == -ETIMEDOUT)
		kill(-pid, SIGKILL); /* the worker's group: it and the command it traces */
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	if (rc == -ETIMEDOUT)
		kill(-pid, SIGKILL); /* stragglers the command started in that group */
	return rc;
}

static void slurp(const char *path, struct kp_buf *b, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	buf_reserve(b, cap + 1);
	ssize_t n = read(fd, b->data + b->len, cap);
	if (n > 0)
		b->len += (size_t)n;
	b->data[b->len] = 0;
	close(fd);
}

void api_replay_run(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	char err[1400];
	if (!a->replay_enabled) {
		httpd_resp_error(
			resp, 403,
			"replay through the API is off on this appliance: it runs programs "
			"on the appliance host (replay.api.enabled = false, or auto with "
			"api.bind not on loopback). Fetch the recording and replay it "
			"elsewhere: kprobe replay --pid P --from T --to T",
			-1);
		return;
	}
	struct json *root;
	char jerr[128];
	size_t pos = 0;
	struct json_doc *doc =
		json_parse(req->body, req->body_len, &root, jerr, sizeof(jerr), &pos);
	if (!doc) {
		snprintf(err, sizeof(err), "the body is not JSON: %s at byte %zu", jerr, pos);
		httpd_resp_error(resp, 400, err, (long)pos);
		return;
	}
	struct runreq *q = xcalloc(1, sizeof(*q));
	if (runreq_parse(root, q, err, sizeof(err)) < 0) {
		httpd_resp_error(resp, 400, err, -1);
		goto out_doc;
	}
	if (atomic_fetch_add(&a->replays_running, 1) >= a->cfg->replay_api_max_concurrent) {
		atomic_fetch_sub(&a->replays_running, 1);
		snprintf(err, sizeof(err),
			 "%lld replay(s) already running (replay.api.maxConcurrent): try again "
			 "when they end",
			 (long long)a->cfg->replay_api_max_concurrent);
		httpd_resp_error(resp, 429, err, -1);
		goto out_doc;
	}
	uint64_t id = atomic_fetch_add(&a->replay_next, 1) + 1;
	char base[700], recp[720], outp[720], errp[720], logp[720];
	snprintf(base, sizeof(base), "%s/replay/r-%" PRIu64 "-%d", a->data_dir, id, getpid());
	snprintf(recp, sizeof(recp), "%s.kprc", base);
	snprintf(outp, sizeof(outp), "%s.out", base);
	snprintf(errp, sizeof(errp), "%s.err", base);
	snprintf(logp, sizeof(logp), "%s.log", base);
	struct kp_buf rb = {0}, wout = {0}, body = {0};
	struct capstore_recinfo info;
	struct rec *r = NULL;
	int rc = build(a, &q->sel, req, &rb, &info, err, sizeof(err));
	if (rc < 0) {
		httpd_resp_error(resp, status_of(rc), err, -1);
		goto out;
	}
	char m[600];
	if (rec_open_mem(&r, rb.data, rb.len, m, sizeof(m)) < 0) {
		snprintf(err, sizeof(err), "the recording built does not read back: %s", m);
		httpd_resp_error(resp, 500, err, -1);
		goto out;
	}
	if (rec_meta(r)->flags & REC_F_INCOMPLETE) {
		snprintf(err, sizeof(err),
			 "the recording of pid %u is incomplete (%" PRIu64 " capture records were "
			 "lost in the kernel then): a replay would not be faithful; raise the "
			 "agent's probe.ebpf.ringBufferSizeKb",
			 info.pid, info.lost);
		httpd_resp_error(resp, 409, err, -1);
		goto out;
	}
	/* the command: given, or the recorded one (its executable, as exec'd, and its args) */
	char *cmd[MAX_ARGS + 1] = {0};
	int ncmd = 0;
	if (q->ncmd) {
		for (int i = 0; i < q->ncmd; i++)
			cmd[ncmd++] = q->cmd[i];
	} else {
		const struct rec_meta *rm = rec_meta(r);
		cmd[ncmd++] = info.argv0;
		for (int i = 1; i < rm->argc && ncmd < MAX_ARGS; i++)
			cmd[ncmd++] = rm->argv[i];
	}
	if (check_exe(cmd[0], err, sizeof(err)) < 0) {
		httpd_resp_error(resp, 400, err, -1);
		goto out;
	}
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/replay", a->data_dir);
	mkdir_p(dir, 0700);
	int fd = open(recp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, rb.data, rb.len) < 0) {
		snprintf(err, sizeof(err), "cannot write %s: %s", recp, strerror(errno));
		if (fd >= 0)
			close(fd);
		httpd_resp_error(resp, 500, err, -1);
		goto out;
	}
	close(fd);

	/* kprobed --replay-worker --rec R --out O --err E [--delay D].. [--fail F].. -- CMD */
	char *wargv[16 + 2 * MAX_INJ + MAX_ARGS];
	int w = 0;
	char scale[32], cap[32];
	wargv[w++] = a->exe;
	wargv[w++] = "--replay-worker";
	wargv[w++] = "--rec";
	wargv[w++] = recp;
	wargv[w++] = "--out";
	wargv[w++] = outp;
	wargv[w++] = "--err";
	wargv[w++] = errp;
	for (int i = 0; i < q->ndelays; i++) {
		wargv[w++] = "--delay";
		wargv[w++] = q->delays[i];
	}
	for (int i = 0; i < q->nfails; i++) {
		wargv[w++] = "--fail";
		wargv[w++] = q->fails[i];
	}
	snprintf(scale, sizeof(scale), "%.17g", q->time_scale);
	wargv[w++] = "--time-scale";
	wargv[w++] = scale;
	snprintf(cap, sizeof(cap), "%d", OUT_CAP);
	wargv[w++] = "--cap";
	wargv[w++] = cap;
	if (q->keep_env)
		wargv[w++] = "--keep-env";
	wargv[w++] = "--";
	for (int i = 0; i < ncmd; i++)
		wargv[w++] = cmd[i];
	wargv[w] = NULL;

	uint64_t tmo = (uint64_t)a->cfg->replay_api_timeout_ms;
	if (q->timeout_ms > 0)
		tmo = KP_MIN(tmo, (uint64_t)q->timeout_ms);
	uint64_t deadline = now_mono_ns() + tmo * NSEC_PER_MSEC;
	if (req->deadline_ns && req->deadline_ns > 2 * NSEC_PER_SEC)
		deadline = KP_MIN(deadline, req->deadline_ns - 2 * NSEC_PER_SEC);
	int wst = 0;
	log_info("replay r-%" PRIu64 ": pid %u (%" PRIu64 " calls) with %s%s", id, info.pid,
		 info.calls, cmd[0], q->ndelays + q->nfails ? " and injections" : "");
	rc = worker_run(a, wargv, logp, deadline, req, &wout, &wst);
	buf_printf(&body, "{\"id\":\"r-%" PRIu64 "\",\"recording\":", id);
	info_json(&body, &info, r);
	buf_puts(&body, ",\"command\":[");
	for (int i = 0; i < ncmd; i++) {
		if (i)
			buf_puts(&body, ",");
		json_cstr(&body, cmd[i]);
	}
	buf_puts(&body, "]");
	if (rc == -ETIMEDOUT) {
		struct kp_buf so = {0};
		slurp(outp, &so, OUT_CAP);
		buf_printf(&body,
			   ",\"state\":\"timed out\",\"outcome\":null,\"error\":\"the replay did "
			   "not finish within %" PRIu64 " ms (replay.api.timeoutMs, timeout_ms): "
			   "it was killed\",\"stdout\":",
			   tmo);
		json_str(&body, so.data ? so.data : "", so.len);
		buf_puts(&body, "}");
		buf_free(&so);
		resp->status = 200;
	} else if (rc < 0) {
		body.len = 0;
		snprintf(err, sizeof(err), "cannot start the replay worker %s: %s", a->exe,
			 strerror(-rc));
		httpd_resp_error(resp, 500, err, -1);
		goto out;
	} else {
		struct json *wr;
		struct json_doc *wd =
			wout.len ? json_parse(wout.data, wout.len, &wr, jerr, sizeof(jerr), &pos)
				 : NULL;
		const struct json *we = wd ? json_get(wr, "error") : NULL;
		if (!wd || wr->type != JSON_OBJ || we) {
			struct kp_buf lg = {0};
			slurp(logp, &lg, 2000);
			snprintf(err, sizeof(err), "the replay could not run: %s%s%.1000s",
				 we && we->type == JSON_STR ? we->u.str.s : "the worker failed",
				 lg.len ? "; " : "", lg.len ? lg.data : "");
			buf_free(&lg);
			json_free(wd);
			body.len = 0;
			httpd_resp_error(resp, we ? 422 : 500, err, -1);
			goto out;
		}
		json_free(wd);
		/* the worker's object, merged after ours: drop its opening brace */
		while (wout.len &&
		       (wout.data[wout.len - 1] == '\n' || wout.data[wout.len - 1] == ' '))
			wout.len--;
		buf_puts(&body, ",");
		buf_append(&body, wout.data + 1, wout.len - 1);
	}
	session_keep(a, id, &body);
	buf_free(&resp->body);
	resp->body = body;
	body = (struct kp_buf){0};
out:
	atomic_fetch_sub(&a->replays_running, 1);
	unlink(recp);
	unlink(outp);
	unlink(errp);
	unlink(logp);
	if (r)
		rec_close(r);
	buf_free(&rb);
	buf_free(&wout);
	buf_free(&body);
out_doc:
	free(q);
	json_free(doc);
}
