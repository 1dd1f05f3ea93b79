/*
 * server.c - the HTTP server proper: lifecycle (create, route, start, stop), the h2o event loop
 * thread, connection tracking, routing, auth, request bodies (bounded, gunzipped), responses,
 * the slow-handler worker pool with deadlines, and the built-in /healthz and /metrics.
 *
 * Everything h2o runs on one loop thread. h2o 2.2 keeps per-thread buffer prototypes, so every
 * h2o object is created, used and destroyed on that thread; httpd_start only binds the sockets
 * (to report errors synchronously) and waits for the thread to say it is serving.
 *
 * A request is copied out of h2o into a `job` (one allocation: method, path, params, headers,
 * body) before any handler sees it, so handlers never touch h2o memory and a slow job survives
 * its client going away: h2o's request pool owns a small guard that unhooks the job when the
 * request dies, and the job itself is freed by the loop thread when the worker hands it back.
 *
 * Stop: the caller cancels and joins the workers (running handlers see httpd_req_expired), then
 * tells the loop, which answers queued jobs 503, closes listeners and WebSocket clients, shuts
 * every connection's socket down, runs until h2o has closed them all and every job is back, and
 * tears h2o down. h2o 2.2's h2o_evloop_destroy does not close its epoll fd and its per-thread
 * caches die with a thread, so loop threads (each with its loop) are parked and reused by the
 * next server instead of exiting (start/stop cycles leak no descriptors and no memory).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "common/json.h"
#include "httpd/internal.h"

struct httpd_metrics httpd__m;

/* ------------------------------------------------------------------ metrics */

static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_register(void)
{
	httpd__m.requests = metrics_counter("kprobe_http_requests_total",
					    "HTTP requests answered, by route and status",
					    "route,code");
	httpd__m.latency = metrics_histogram("kprobe_http_request_duration_seconds",
					     "Time from request to response start, by route",
					     "route", metrics_buckets_latency,
					     metrics_buckets_latency_n);
	httpd__m.conns = metrics_gauge("kprobe_http_connections", "Open HTTP and WebSocket "
								  "connections", NULL);
	httpd__m.rejected = metrics_counter("kprobe_http_rejected_total",
					    "Requests or connections refused before a handler ran, "
					    "by reason",
					    "reason");
	httpd__m.ws_clients = metrics_gauge("kprobe_ws_clients", "Connected live-stream clients",
					    NULL);
	httpd__m.ws_sent = metrics_counter("kprobe_ws_messages_sent_total",
					   "Live-stream messages queued to clients", NULL);
	httpd__m.ws_dropped = metrics_counter("kprobe_ws_messages_dropped_total",
					      "Live-stream events lost by clients that fell behind",
					      NULL);
	httpd__m.ws_errors = metrics_counter("kprobe_ws_protocol_errors_total",
					     "WebSocket connections closed for a protocol violation "
					     "or a bad message",
					     NULL);
	httpd__m.ws_closed = metrics_counter("kprobe_ws_closed_total", "WebSocket connections "
								       "closed",
					     NULL);
	httpd__m.stream_published = metrics_counter("kprobe_stream_published_total",
						    "Events entered into the live-stream ring",
						    NULL);
	httpd__m.stream_lost_publish = metrics_counter(
		"kprobe_stream_skipped_total",
		"Events offered to the live stream that no client's type filter wanted", NULL);
	httpd__m.jobs_late = metrics_counter("kprobe_http_slow_late_total",
					     "Slow handlers that finished after their deadline or "
					     "after the client left (result dropped)",
					     NULL);
	httpd__m.protocol_errors = metrics_counter(
		"kprobe_http_protocol_errors_total",
		"Malformed HTTP answered by the protocol layer (bad request line, headers, chunked "
		"encoding, oversize body), by status",
		"status");
}

void httpd__count(const char *route, int status, uint64_t t0_ns)
{
	char code[16];
	snprintf(code, sizeof(code), "%d", status);
	metric_inc(metric_labels(httpd__m.requests, route, code));
	if (t0_ns)
		metric_observe(metric_labels(httpd__m.latency, route),
			       (double)(now_mono_ns() - t0_ns) / 1e9);
}

/* ------------------------------------------------------------------ options */

void httpd_opts_init(struct httpd_opts *o, const struct kp_config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->api_bind = "127.0.0.1";
	o->api_port = 8080;
	o->otlp_bind = "127.0.0.1";
	o->otlp_port = 4318;
	o->workers = 2;
	o->max_queued_jobs = 256;
	o->deadline_ms = 30000;
	o->req_timeout_ms = 10000;
	o->max_connections = 1024;
	o->stream_ring = 16384;
	o->stream_client_queue = 128; /* a control reply waits behind at most this many */
	o->stream_max_clients = 64;
	o->ws_max_message = 65536;
	if (!cfg)
		return;
	o->api_bind = cfg->api_bind;
	o->api_port = (int)cfg->api_port;
	o->otlp_bind = cfg->otlp_bind;
	o->otlp_port = (int)cfg->otlp_port;
	o->auth_enabled = cfg->api_auth_enabled;
	o->tokens = (const char *const *)cfg->api_auth_tokens.v;
	o->n_tokens = cfg->api_auth_tokens.n;
	o->deadline_ms = (uint64_t)cfg->api_query_timeout_ms;
}

/* ------------------------------------------------------------------ request / response API */

struct job {
	h2o_multithread_message_t msg; /* worker -> loop */
	struct job *qnext;             /* worker queue */
	h2o_linklist_t live;           /* s->live_jobs while req != NULL */
	struct httpd *s;
	struct httpd_route_ *rt;
	h2o_req_t *req; /* NULL once answered (deadline) or once the request died */
	struct job_guard *guard;
	h2o_timeout_entry_t deadline_entry;
	volatile int cancel;
	int gzip;
	uint64_t t0;
	struct httpd_req hreq;
	struct httpd_resp resp;
	char *arena; /* strings, params, headers */
	char *body;  /* raw body copy (NUL terminated), maybe gzip */
	size_t body_len;
	char *inflated;
};

struct job_guard {
	struct job *job;
};

const char *httpd_req_param(const struct httpd_req *r, const char *name)
{
	for (size_t i = 0; i < r->n_params; i++)
		if (!strcmp(r->params[i].name, name))
			return r->params[i].value;
	return NULL;
}

const char *httpd_req_header(const struct httpd_req *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (!strcasecmp(r->headers[i].name, name))
			return r->headers[i].value;
	return NULL;
}

bool httpd_req_expired(const struct httpd_req *r)
{
	if ((r->cancel && *r->cancel) || (r->stopping_ && *r->stopping_))
		return true;
	return r->deadline_ns && now_mono_ns() >= r->deadline_ns;
}

static void resp_init(struct httpd_resp *r)
{
	memset(r, 0, sizeof(*r));
	r->status = 200;
	snprintf(r->content_type, sizeof(r->content_type), "application/json");
}

static void resp_free(struct httpd_resp *r)
{
	buf_free(&r->body);
	buf_free(&r->headers_);
}

void httpd_resp_set_type(struct httpd_resp *r, const char *ct)
{
	if (ct && !strpbrk(ct, "\r\n"))
		snprintf(r->content_type, sizeof(r->content_type), "%s", ct);
}

int httpd_resp_header(struct httpd_resp *r, const char *name, const char *value)
{
	if (!name || !value || !*name || strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n"))
		return -EINVAL;
	buf_append(&r->headers_, name, strlen(name) + 1);
	buf_append(&r->headers_, value, strlen(value) + 1);
	return 0;
}

static void error_json(struct kp_buf *b, const char *msg, long position)
{
	buf_puts(b, "{\"error\":");
	json_cstr(b, msg);
	if (position >= 0)
		buf_printf(b, ",\"position\":%ld", position);
	buf_puts(b, "}\n");
}

void httpd_resp_error(struct httpd_resp *r, int status, const char *msg, long position)
{
	r->status = status;
	httpd_resp_set_type(r, "application/json");
	r->body.len = 0;
	error_json(&r->body, msg, position);
}

void httpd_resp_text(struct httpd_resp *r, int status, const char *text)
{
	r->status = status;
	httpd_resp_set_type(r, "text/plain; charset=utf-8");
	r->body.len = 0;
	buf_puts(&r->body, text);
}

/* ------------------------------------------------------------------ sending on the loop */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Error"
										      : "Server Error";
	}
}

static void free_linked(void *p)
{
	free(*(char **)p);
}

/*
 * Sends a complete response. body is copied into the request pool unless it is NULL. Returns 0.
 * extra_headers: "name\0value\0" pairs (httpd_resp.headers_), may be NULL.
 */
int httpd__send(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len,
		const struct kp_buf *extra)
{
	req->res.status = status;
	req->res.reason = reason_phrase(status);
	if (ctype && *ctype)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
			       strlen(ctype));
	if (extra) {
		size_t off = 0;
		while (off < extra->len) {
			const char *n = extra->data + off;
			size_t nl = strlen(n);
			const char *v = n + nl + 1;
			size_t vl = strlen(v);
			off += nl + vl + 2;
			char *lc = h2o_mem_alloc_pool(&req->pool, nl + 1);
			for (size_t i = 0; i <= nl; i++)
				lc[i] = (char)tolower((unsigned char)n[i]);
			h2o_add_header_by_str(&req->pool, &req->res.headers, lc, nl, 1, NULL,
					      h2o_strdup(&req->pool, v, vl).base, vl);
		}
	}
	req->res.content_length = len;
	static h2o_generator_t generator = {NULL, NULL};
	h2o_iovec_t buf = h2o_iovec_init(NULL, 0);
	if (len) {
		char **slot = h2o_mem_alloc_shared(&req->pool, sizeof(char *), free_linked);
		*slot = xmalloc(len);
		memcpy(*slot, body, len);
		buf = h2o_iovec_init(*slot, len);
	}
	h2o_start_response(req, &generator);
	if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")) || !len)
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
	else
		h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
	return 0;
}

void httpd__send_error(h2o_req_t *req, int status, const char *msg, const char *route,
		       uint64_t t0_ns)
{
	struct kp_buf b = {0};
	error_json(&b, msg, -1);
	struct kp_buf extra = {0};
	if (status == 401) {
		buf_append(&extra, "WWW-Authenticate", sizeof("WWW-Authenticate"));
		buf_append(&extra, "Bearer realm=\"kprobe\"", sizeof("Bearer realm=\"kprobe\""));
	}
	httpd__send(req, status, "application/json", b.data, b.len, extra.len ? &extra : NULL);
	buf_free(&b);
	buf_free(&extra);
	if (route)
		httpd__count(route, status, t0_ns);
}

static void send_resp(h2o_req_t *req, struct httpd_resp *r)
{
	int status = r->status;
	if (status < 200 || status > 599)
		status = 500;
	httpd__send(req, status, r->content_type, r->body.data, r->body.len,
		    r->headers_.len ? &r->headers_ : NULL);
}

/* ------------------------------------------------------------------ auth */

bool httpd__auth_token_ok(const struct httpd *s, const char *token, size_t len)
{
	unsigned char h[32];
	SHA256((const unsigned char *)token, len, h);
	int ok = 0;
	/* Compare against every token, without an early exit: the time taken says nothing about
	 * which token (or how much of one) matched. Hashing first makes lengths irrelevant. */
	for (int i = 0; i < s->n_tokens; i++)
		ok |= CRYPTO_memcmp(h, s->token_hash[i], sizeof(h)) == 0;
	return ok && len > 0;
}

static bool auth_header_ok(const struct httpd *s, h2o_req_t *req)
{
	ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
	if (i < 0)
		return false;
	h2o_iovec_t v = req->headers.entries[i].value;
	if (v.len < 7 || strncasecmp(v.base, "Bearer ", 7) != 0)
		return false;
	const char *t = v.base + 7;
	size_t tl = v.len - 7;
	while (tl && *t == ' ')
		t++, tl--;
	while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
		tl--;
	return httpd__auth_token_ok(s, t, tl);
}

/* ------------------------------------------------------------------ building a job */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes (and '+' -> ' ' when plus) src[0..n) into dst; NUL terminates. Returns the
 * length. Invalid escapes stay as they are. */
static size_t pct_decode(char *dst, const char *src, size_t n, bool plus)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = src[i];
		if (c == '%' && i + 2 < n && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
			dst[o++] = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
			i += 2;
		} else if (plus && c == '+') {
			dst[o++] = ' ';
		} else {
			dst[o++] = c;
		}
	}
	dst[o] = 0;
	return o;
}

#define MAX_PARAMS 128

/* Bump allocator over one block sized in advance. */
struct arena {
	char *p, *end;
};

static void *arena_take(struct arena *a, size_t n, size_t align)
{
	uintptr_t x = ((uintptr_t)a->p + align - 1) & ~(uintptr_t)(align - 1);
	char *r = (char *)x;
	assert(r + n <= a->end);
	a->p = r + n;
	return r;
}

static char *arena_str(struct arena *a, const char *s, size_t n)
{
	char *d = arena_take(a, n + 1, 1);
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

/*
 * Copies what a handler may see out of the h2o request. Returns NULL with *err set (a static
 * message) for requests that must be refused (400).
 */
static struct job *job_build(struct httpd *s, enum httpd_listener l, struct httpd_route_ *rt,
			     h2o_req_t *req, const char *path, size_t path_len, uint64_t t0,
			     const char **err)
{
	const char *q = "";
	size_t ql = 0;
	if (req->query_at != SIZE_MAX) {
		q = req->path.base + req->query_at + 1;
		ql = req->path.len - req->query_at - 1;
	}
	size_t nparams = 0;
	if (ql) {
		nparams = 1;
		for (size_t i = 0; i < ql; i++)
			nparams += q[i] == '&';
	}
	if (nparams > MAX_PARAMS) {
		*err = "too many query parameters (at most 128)";
		return NULL;
	}
	size_t need = 256 + NI_MAXHOST + 32 + req->method.len + path_len * 2 + ql * 2 + nparams * 2 + 64 +
		      sizeof(struct httpd_param) * (nparams + 1) +
		      sizeof(struct httpd_header) * (req->headers.size + 1);
	for (size_t i = 0; i < req->headers.size; i++)
		need += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 2;

	struct job *j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->rt = rt;
	j->req = req;
	j->t0 = t0;
	j->arena = xmalloc(need);
	struct arena a = {j->arena, j->arena + need};
	struct httpd_req *r = &j->hreq;
	r->listener = l;
	r->method = arena_str(&a, req->method.base, req->method.len);
	r->path = arena_str(&a, path, path_len);
	r->query = arena_str(&a, q, ql);
	r->rest = "";
	if (rt && (rt->flags & HTTPD_ROUTE_PREFIX)) {
		char *d = arena_take(&a, path_len - rt->path_len + 1, 1);
		pct_decode(d, path + rt->path_len, path_len - rt->path_len, false);
		r->rest = d;
	}
	struct httpd_param *params = arena_take(&a, sizeof(*params) * (nparams + 1), 8);
	size_t np = 0;
	for (size_t i = 0; i < ql;) {
		size_t e = i;
		while (e < ql && q[e] != '&')
			e++;
		if (e > i) {
			size_t eq = i;
			while (eq < e && q[eq] != '=')
				eq++;
			char *n = arena_take(&a, eq - i + 1, 1);
			pct_decode(n, q + i, eq - i, true);
			size_t vs = eq < e ? eq + 1 : e;
			char *v = arena_take(&a, e - vs + 1, 1);
			pct_decode(v, q + vs, e - vs, true);
			params[np++] = (struct httpd_param){n, v};
		}
		i = e + 1;
	}
	r->params = params;
	r->n_params = np;
	struct httpd_header *hdrs = arena_take(&a, sizeof(*hdrs) * (req->headers.size + 1), 8);
	for (size_t i = 0; i < req->headers.size; i++) {
		const h2o_header_t *h = &req->headers.entries[i];
		char *n = arena_str(&a, h->name->base, h->name->len);
		for (char *c = n; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		hdrs[i] = (struct httpd_header){n, arena_str(&a, h->value.base, h->value.len)};
	}
	r->headers = hdrs;
	r->n_headers = req->headers.size;
	char host[NI_MAXHOST + 16] = "";
	struct sockaddr_storage ss;
	socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
	if (sl) {
		size_t hl = h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, host);
		if (hl == SIZE_MAX)
			hl = 0;
		host[hl] = 0;
		int32_t port = h2o_socket_getport((struct sockaddr *)&ss);
		snprintf(host + hl, sizeof(host) - hl, ":%d", port);
	}
	r->remote = arena_str(&a, host, strlen(host));

	size_t bl = req->entity.base ? req->entity.len : 0;
	j->body = xmalloc(bl + 1);
	if (bl)
		memcpy(j->body, req->entity.base, bl);
	j->body[bl] = 0;
	j->body_len = bl;
	r->body = j->body;
	r->body_len = bl;
	r->cancel = &j->cancel;
	r->stopping_ = &s->cancel_all;
	resp_init(&j->resp);
	return j;
}

static void job_free(struct job *j)
{
	resp_free(&j->resp);
	free(j->arena);
	free(j->body);
	free(j->inflated);
	free(j);
}

/* Inflates a gzip body into j->inflated, bounded by max. Fills resp with the error (413/400). */
static int job_inflate(struct job *j, size_t max)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		httpd_resp_error(&j->resp, 500, "cannot start zlib", -1);
		return -ENOMEM;
	}
	size_t cap = KP_MIN(max + 1, KP_MAX(j->body_len * 4, (size_t)4096));
	char *out = xmalloc(cap + 1);
	size_t len = 0;
	zs.next_in = (Bytef *)j->body;
	zs.avail_in = (uInt)j->body_len;
	int rc;
	for (;;) {
		if (len == cap) {
			if (cap > max) {
				char m[160];
				snprintf(m, sizeof(m),
					 "request body exceeds %zu bytes after gzip decompression",
					 max);
				httpd_resp_error(&j->resp, 413, m, -1);
				rc = -EFBIG;
				goto out;
			}
			cap = KP_MIN(cap * 2, max + 1);
			out = xrealloc(out, cap + 1);
		}
		zs.next_out = (Bytef *)out + len;
		zs.avail_out = (uInt)(cap - len);
		rc = inflate(&zs, Z_NO_FLUSH);
		len = cap - zs.avail_out;
		if (rc == Z_STREAM_END) {
			if (zs.avail_in != 0) {
				/* Concatenated gzip members: continue with the next one. */
				if (inflateReset(&zs) == Z_OK)
					continue;
			}
			rc = 0;
			break;
		}
		if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
			httpd_resp_error(&j->resp, 400, "gzip body is truncated",
					 (long)zs.total_in);
			rc = -EINVAL;
			goto out;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			char m[200];
			snprintf(m, sizeof(m), "bad gzip body: %s (Content-Encoding says gzip)",
				 zs.msg ? zs.msg : "corrupt data");
			httpd_resp_error(&j->resp, 400, m, (long)zs.total_in);
			rc = -EINVAL;
			goto out;
		}
	}
	if (len > max) {
		char m[160];
		snprintf(m, sizeof(m), "request body exceeds %zu bytes after gzip decompression",
			 max);
		httpd_resp_error(&j->resp, 413, m, -1);
		rc = -EFBIG;
		goto out;
	}
	out[len] = 0;
	j->inflated = out;
	out = NULL;
	j->hreq.body = j->inflated;
	j->hreq.body_len = len;
out:
	free(out);
	inflateEnd(&zs);
	return rc;
}

/* Runs the handler (on whichever thread runs the job). */
static void job_run(struct job *j)
{
	if (j->gzip && job_inflate(j, j->rt->max_body) < 0)
		return;
	j->rt->fn(j->rt->ctx, &j->hreq, &j->resp);
}

/* ------------------------------------------------------------------ slow jobs */

static void job_detach(struct job *j)
{
	if (j->guard) {
		j->guard->job = NULL;
		j->guard = NULL;
	}
	if (h2o_linklist_is_linked(&j->live))
		h2o_linklist_unlink(&j->live);
	if (h2o_timeout_is_linked(&j->deadline_entry))
		h2o_timeout_unlink(&j->deadline_entry);
	j->req = NULL;
}

static void on_guard_dispose(void *p)
{
	struct job_guard *g = p;
	if (g->job) {
		/* The request died (client gone) while its job runs: keep the job, forget req. */
		struct job *j = g->job;
		j->guard = NULL;
		job_detach(j);
		j->cancel = 1;
	}
}

static void on_deadline(h2o_timeout_entry_t *e)
{
	struct job *j = H2O_STRUCT_FROM_MEMBER(struct job, deadline_entry, e);
	h2o_req_t *req = j->req;
	j->cancel = 1;
	if (!req)
		return;
	job_detach(j);
	char m[160];
	snprintf(m, sizeof(m), "request timed out after %llu ms (api.queryTimeoutMs)",
		 (unsigned long long)j->s->o.deadline_ms);
	httpd__send_error(req, 504, m, j->rt->path, j->t0);
}

/* Loop thread: finished jobs from the workers. */
static void on_jobs_done(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
	struct httpd *s = H2O_STRUCT_FROM_MEMBER(struct httpd, done_rx, rx);
	while (!h2o_linklist_is_empty(messages)) {
		h2o_multithread_message_t *m =
			H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
		h2o_linklist_unlink(&m->link);
		struct job *j = (struct job *)m;
		h2o_req_t *req = j->req;
		if (req && j->hreq.deadline_ns && now_mono_ns() >= j->hreq.deadline_ns) {
			/* Finished, but after its deadline (the deadline timer had not fired yet on
			 * this loop): the answer is late either way, and says so the same way. */
			on_deadline(&j->deadline_entry);
			metric_inc(metric_child(httpd__m.jobs_late));
		} else if (req) {
			job_detach(j);
			send_resp(req, &j->resp);
			httpd__count(j->rt->path, j->resp.status, j->t0);
		} else {
			metric_inc(metric_child(httpd__m.jobs_late));
		}
		job_free(j);
		s->outstanding_jobs--;
	}
}

static void *worker_main(void *arg)
{
	struct httpd *s = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		pthread_mutex_lock(&s->jq_lock);
		while (!s->jq_head && !s->jq_stop)
			pthread_cond_wait(&s->jq_cond, &s->jq_lock);
		if (s->jq_stop) {
			/* Queued jobs stay queued: the loop answers them 503 at stop. */
			pthread_mutex_unlock(&s->jq_lock);
			break;
		}
		struct job *j = s->jq_head;
		s->jq_head = j->qnext;
		if (!s->jq_head)
			s->jq_tail = NULL;
		s->jq_len--;
		pthread_mutex_unlock(&s->jq_lock);

		if (j->cancel || s->cancel_all)
			httpd_resp_error(&j->resp, 504, "request timed out before it could run", -1);
		else
			job_run(j);
		h2o_multithread_send_message(&s->done_rx, &j->msg);
	}
	return NULL;
}

static void job_enqueue(struct httpd *s, struct job *j)
{
	struct job_guard *g = h2o_mem_alloc_shared(&j->req->pool, sizeof(*g), on_guard_dispose);
	g->job = j;
	j->guard = g;
	h2o_linklist_insert(&s->live_jobs, &j->live);
	j->deadline_entry.cb = on_deadline;
	h2o_timeout_link(s->loop, &s->deadline_to, &j->deadline_entry);
	j->hreq.deadline_ns = j->t0 + s->o.deadline_ms * NSEC_PER_MSEC;
	s->outstanding_jobs++;
	pthread_mutex_lock(&s->jq_lock);
	if (s->jq_tail)
		s->jq_tail->qnext = j;
	else
		s->jq_head = j;
	s->jq_tail = j;
	s->jq_len++;
	pthread_cond_signal(&s->jq_cond);
	pthread_mutex_unlock(&s->jq_lock);
}

/* ------------------------------------------------------------------ routing */

static bool method_is(h2o_req_t *req, const char *m)
{
	return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static bool route_method_ok(const struct httpd_route_ *rt, h2o_req_t *req)
{
	if (!rt->method)
		return true;
	if (method_is(req, rt->method))
		return true;
	return !strcmp(rt->method, "GET") && method_is(req, "HEAD");
}

/*
 * Finds the route for path: exact first, then the longest prefix. *path_match is set when some
 * route matches the path with another method (-> 405).
 */
static struct httpd_route_ *route_find(struct httpd *s, enum httpd_listener l, h2o_req_t *req,
				       const char *path, size_t len, bool *path_match)
{
	struct httpd_route_ *best = NULL;
	*path_match = false;
	for (int i = 0; i < s->nroutes[l]; i++) {
		struct httpd_route_ *rt = &s->routes[l][i];
		if (rt->flags & HTTPD_ROUTE_PREFIX)
			continue;
		if (rt->path_len == len && !memcmp(rt->path, path, len)) {
			*path_match = true;
			if (route_method_ok(rt, req))
				return rt;
		}
	}
	for (int i = 0; i < s->nroutes[l]; i++) {
		struct httpd_route_ *rt = &s->routes[l][i];
		if (!(rt->flags & HTTPD_ROUTE_PREFIX))
			continue;
		if (rt->path_len <= len && !memcmp(rt->path, path, rt->path_len)) {
			*path_match = true;
			if (route_method_ok(rt, req) && (!best || rt->path_len > best->path_len))
				best = rt;
		}
	}
	return best;
}

struct listener_handler {
	h2o_handler_t super;
	struct httpd *s;
	enum httpd_listener l;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct listener_handler *lh = (struct listener_handler *)self;
	struct httpd *s = lh->s;
	enum httpd_listener l = lh->l;
	uint64_t t0 = now_mono_ns();
	const char *path = req->path_normalized.base;
	size_t plen = req->path_normalized.len;
	char pathz[1024];

	if (s->stop_flag) {
		httpd__send_error(req, 503, "server is shutting down", "unmatched", t0);
		return 0;
	}
	if (plen == 0 || plen >= sizeof(pathz) || path[0] != '/') {
		metric_inc(metric_labels(httpd__m.rejected, "bad_path"));
		httpd__send_error(req, plen >= sizeof(pathz) ? 414 : 400,
				  plen >= sizeof(pathz) ? "request path too long (max 1023 bytes)"
							: "request path must start with '/'",
				  "unmatched", t0);
		return 0;
	}
	memcpy(pathz, path, plen);
	pathz[plen] = 0;
	if (strlen(pathz) != plen) {
		metric_inc(metric_labels(httpd__m.rejected, "bad_path"));
		httpd__send_error(req, 400, "request path contains a NUL byte", "unmatched", t0);
		return 0;
	}

	bool path_match;
	struct httpd_route_ *rt = route_find(s, l, req, pathz, plen, &path_match);
	bool is_stream = l == HTTPD_API && !strcmp(pathz, HTTPD_STREAM_PATH);
	/* The dashboard's own files need no token: the page must load before its user can type
	 * one, and it holds no data (everything it shows comes through /api/, which does). */
	bool is_static = l == HTTPD_API && !rt && !is_stream && !path_match && s->static_dir &&
			 strncmp(pathz, "/api/", 5) != 0 && strcmp(pathz, "/api") != 0;
	bool noauth = (rt && (rt->flags & HTTPD_ROUTE_NOAUTH)) || is_static ||
		      (l == HTTPD_API && !strcmp(pathz, "/healthz"));

	if (l == HTTPD_API && s->o.auth_enabled && !noauth) {
		bool ok = auth_header_ok(s, req);
		if (!ok && is_stream && req->query_at != SIZE_MAX) {
			/* Browsers cannot set headers on a WebSocket: accept ?access_token=. */
			const char *q = req->path.base + req->query_at + 1;
			size_t ql = req->path.len - req->query_at - 1;
			for (size_t i = 0; i < ql && !ok;) {
				size_t e = i;
				while (e < ql && q[e] != '&')
					e++;
				if (e - i > 13 && !memcmp(q + i, "access_token=", 13)) {
					char tok[512];
					if (e - i - 13 < sizeof(tok)) {
						size_t tl = pct_decode(tok, q + i + 13, e - i - 13,
								       true);
						ok = httpd__auth_token_ok(s, tok, tl);
					}
				}
				i = e + 1;
			}
		}
		if (!ok) {
			metric_inc(metric_labels(httpd__m.rejected, "auth"));
			httpd__send_error(req, 401,
					  "missing or invalid bearer token: send 'Authorization: "
					  "Bearer <token>' with a token from api.auth.tokens",
					  "auth", t0);
			return 0;
		}
	}

	if (is_stream && !rt) {
		httpd__stream_handle(s, req, t0);
		return 0;
	}
	if (!rt) {
		if (path_match) {
			httpd__send_error(req, 405, "method not allowed on this path", "unmatched",
					  t0);
			return 0;
		}
		if (l == HTTPD_API && s->static_dir && strncmp(pathz, "/api/", 5) != 0 &&
		    strcmp(pathz, "/api") != 0) {
			httpd__static_handle(s, req, pathz, t0);
			return 0;
		}
		char m[1200];
		snprintf(m, sizeof(m), "no such endpoint: %s %.*s", pathz, (int)req->method.len,
			 req->method.base);
		httpd__send_error(req, 404, m, "unmatched", t0);
		return 0;
	}

	/* Body: bounded per route, one known encoding. */
	size_t bl = req->entity.base ? req->entity.len : 0;
	if (bl > rt->max_body) {
		char m[160];
		snprintf(m, sizeof(m), "request body of %zu bytes exceeds this endpoint's limit of "
				       "%zu bytes",
			 bl, rt->max_body);
		metric_inc(metric_labels(httpd__m.rejected, "too_large"));
		httpd__send_error(req, 413, m, rt->path, t0);
		return 0;
	}
	int gzip = 0;
	ssize_t ce = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_ENCODING, -1);
	if (ce >= 0) {
		h2o_iovec_t v = req->headers.entries[ce].value;
		if (h2o_lcstris(v.base, v.len, H2O_STRLIT("gzip")) ||
		    h2o_lcstris(v.base, v.len, H2O_STRLIT("x-gzip"))) {
			if (!(rt->flags & HTTPD_ROUTE_GZIP)) {
				httpd__send_error(req, 415, "this endpoint does not accept "
							    "Content-Encoding: gzip",
						  rt->path, t0);
				return 0;
			}
			gzip = bl > 0;
		} else if (!h2o_lcstris(v.base, v.len, H2O_STRLIT("identity"))) {
			httpd__send_error(req, 415, "unsupported Content-Encoding (only gzip and "
						    "identity)",
					  rt->path, t0);
			return 0;
		}
	}

	const char *err = NULL;
	struct job *j = job_build(s, l, rt, req, pathz, plen, t0, &err);
	if (!j) {
		httpd__send_error(req, 400, err, rt->path, t0);
		return 0;
	}
	j->gzip = gzip;
	if (!(rt->flags & HTTPD_ROUTE_SLOW)) {
		job_run(j);
		send_resp(req, &j->resp);
		httpd__count(rt->path, j->resp.status, t0);
		job_free(j);
		return 0;
	}
	if (s->jq_len >= s->o.max_queued_jobs) {
		job_free(j);
		metric_inc(metric_labels(httpd__m.rejected, "busy"));
		httpd__send_error(req, 503, "too many slow requests queued; retry later", rt->path,
				  t0);
		return 0;
	}
	job_enqueue(s, j);
	return 0;
}

/* ------------------------------------------------------------------ built-in routes */

static void h_healthz(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct httpd *s = ctx;
	buf_printf(&resp->body, "{\"status\":\"ok\",\"uptime_sec\":%.3f}\n",
		   (double)(now_mono_ns() - s->started_ns) / 1e9);
}

static void h_metrics(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct httpd *s = ctx;
	/* Errors h2o answered itself (bad request lines, oversize bodies) never reach a route:
	 * take its counters at scrape time. This runs on the loop thread, which owns ctx. */
	static const struct {
		int idx, status;
	} errs[] = {{H2O_STATUS_ERROR_400, 400}, {H2O_STATUS_ERROR_413, 413},
		    {H2O_STATUS_ERROR_417, 417}, {H2O_STATUS_ERROR_500, 500},
		    {H2O_STATUS_ERROR_503, 503}};
	for (size_t i = 0; i < KP_ARRAY_SIZE(errs); i++) {
		char code[8];
		snprintf(code, sizeof(code), "%d", errs[i].status);
		metric_gauge_set(metric_labels(httpd__m.protocol_errors, code),
				 (int64_t)s->ctx.emitted_error_status[errs[i].idx]);
	}
	metric_gauge_set(metric_child(httpd__m.conns), s->nconns);
	httpd_resp_set_type(resp, METRICS_CONTENT_TYPE);
	metrics_render(&resp->body);
}

/* ------------------------------------------------------------------ connections */

static void on_sock_close(void *data)
{
	struct conn_track *t = data;
	h2o_linklist_unlink(&t->link);
	t->s->nconns--;
	metric_gauge_add(metric_child(httpd__m.conns), -1);
	free(t);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
	struct httpd *s = listener->data;
	if (err)
		return;
	for (int n = 0; n < 16; n++) {
		h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
		if (!sock)
			return;
		enum httpd_listener l = listener == s->listener[HTTPD_API] ? HTTPD_API : HTTPD_OTLP;
		if (s->nconns >= s->o.max_connections || s->stop_flag) {
			metric_inc(metric_labels(httpd__m.rejected, "max_connections"));
			h2o_socket_close(sock);
			continue;
		}
		struct conn_track *t = xcalloc(1, sizeof(*t));
		t->sock = sock;
		t->s = s;
		h2o_linklist_insert(&s->conns, &t->link);
		s->nconns++;
		metric_gauge_add(metric_child(httpd__m.conns), 1);
		sock->on_close.cb = on_sock_close;
		sock->on_close.data = t;
		h2o_accept(&s->accept_ctx[l], sock);
	}
}

/* ------------------------------------------------------------------ loop threads */

/*
 * Loop threads outlive servers: h2o 2.2 leaks its epoll fd in h2o_evloop_destroy and keeps
 * per-thread memory caches (request pools, socket buffers) that a thread's exit would lose. A
 * stopped server's thread parks here with its loop and serves the next server started.
 */
struct loop_thread {
	struct loop_thread *next;
	h2o_evloop_t *loop;
	struct httpd *srv;
	pthread_cond_t cond;
};

static pthread_mutex_t lt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct loop_thread *lt_idle;

/* ------------------------------------------------------------------ the loop thread */

static void on_stop_msg(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
	struct httpd *s = H2O_STRUCT_FROM_MEMBER(struct httpd, stop_rx, rx);
	while (!h2o_linklist_is_empty(messages))
		h2o_linklist_unlink(messages->next);
	/* The loop checks this after every iteration; the message must have been taken off the
	 * queue before its receiver is unregistered. */
	s->stop_seen = 1;
}

static int h2o_setup(struct httpd *s)
{
	h2o_config_init(&s->gconf);
	s->gconf.server_name = h2o_iovec_init(H2O_STRLIT("kprobed"));
	s->gconf.max_request_entity_size = s->max_entity;
	s->gconf.http1.req_timeout = s->o.req_timeout_ms;
	s->gconf.http1.upgrade_to_http2 = 0; /* HTTP/1.1 only: the WebSocket needs it, and no
					      * h2c surface to harden */
	s->gconf.filecache.capacity = 0;     /* no descriptors kept open between requests */
	static const char *names[] = {"api", "otlp"};
	for (int l = 0; l < HTTPD_NLISTENERS; l++) {
		s->host[l] = h2o_config_register_host(&s->gconf,
						      h2o_iovec_init(names[l], strlen(names[l])),
						      65535);
		h2o_pathconf_t *pc = h2o_config_register_path(s->host[l], "/", 0);
		struct listener_handler *h =
			(void *)h2o_create_handler(pc, sizeof(struct listener_handler));
		h->super.on_req = on_req;
		h->s = s;
		h->l = (enum httpd_listener)l;
		s->hosts[l][0] = s->host[l];
		s->hosts[l][1] = NULL;
	}
	h2o_context_init(&s->ctx, s->loop, &s->gconf);
	for (int l = 0; l < HTTPD_NLISTENERS; l++) {
		s->accept_ctx[l].ctx = &s->ctx;
		s->accept_ctx[l].hosts = s->hosts[l];
	}
	h2o_linklist_init_anchor(&s->conns);
	h2o_linklist_init_anchor(&s->live_jobs);
	h2o_multithread_register_receiver(s->ctx.queue, &s->done_rx, on_jobs_done);
	h2o_multithread_register_receiver(s->ctx.queue, &s->stop_rx, on_stop_msg);
	h2o_timeout_init(s->loop, &s->deadline_to, s->o.deadline_ms);
	httpd__stream_start(s);
	for (int l = 0; l < HTTPD_NLISTENERS; l++) {
		if (s->listen_fd[l] < 0)
			continue;
		s->listener[l] = h2o_evloop_socket_create(s->loop, s->listen_fd[l],
							  H2O_SOCKET_FLAG_DONT_READ);
		s->listen_fd[l] = -1; /* owned by h2o now */
		s->listener[l]->data = s;
		h2o_socket_read_start(s->listener[l], on_accept);
	}
	return 0;
}

static void h2o_teardown(struct httpd *s)
{
	/* 1. No new connections. */
	for (int l = 0; l < HTTPD_NLISTENERS; l++) {
		if (s->listener[l]) {
			h2o_socket_read_stop(s->listener[l]);
			h2o_socket_close(s->listener[l]);
			s->listener[l] = NULL;
		}
	}
	/* 2. Jobs still queued (the workers are gone) get 503. */
	pthread_mutex_lock(&s->jq_lock);
	struct job *q = s->jq_head;
	s->jq_head = s->jq_tail = NULL;
	s->jq_len = 0;
	pthread_mutex_unlock(&s->jq_lock);
	while (q) {
		struct job *next = q->qnext;
		h2o_req_t *req = q->req;
		if (req) {
			job_detach(q);
			httpd__send_error(req, 503, "server is shutting down", q->rt->path, q->t0);
		}
		job_free(q);
		s->outstanding_jobs--;
		q = next;
	}
	/* 3. WebSocket clients. */
	httpd__stream_stop(s);
	/* 4. Every connection: shut the socket down so h2o sees EOF (or a failed write) and
	 * closes it through its own paths, then run until they are all gone and every job came
	 * back from the workers. */
	for (h2o_linklist_t *n = s->conns.next; n != &s->conns; n = n->next) {
		struct conn_track *t = H2O_STRUCT_FROM_MEMBER(struct conn_track, link, n);
		int fd = h2o_socket_get_fd(t->sock);
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
	}
	uint64_t until = now_mono_ns() + 3 * NSEC_PER_SEC;
	while ((s->nconns > 0 || s->outstanding_jobs > 0) && now_mono_ns() < until)
		h2o_evloop_run(s->loop, 10);
	if (s->nconns > 0 || s->outstanding_jobs > 0)
		log_warn("httpd: %d connections and %d jobs still open at shutdown", s->nconns,
			 s->outstanding_jobs);
	/* 5. h2o itself. */
	h2o_timeout_dispose(s->loop, &s->deadline_to);
	h2o_multithread_unregister_receiver(s->ctx.queue, &s->done_rx);
	h2o_multithread_unregister_receiver(s->ctx.queue, &s->stop_rx);
	h2o_multithread_unregister_receiver(s->ctx.queue, &s->st.wake_rx);
	h2o_context_dispose(&s->ctx);
	/* h2o 2.2's h2o_multithread_destroy_queue closes the queue's descriptors but does not
	 * free it (fixed in later h2o); the context keeps the pointer. */
	free(s->ctx.queue);
	s->ctx.queue = NULL;
	h2o_config_dispose(&s->gconf);
	/* Let the loop free the sockets disposed above before it is parked. */
	h2o_evloop_run(s->loop, 0);
	s->loop = NULL;
}

static void serve(struct httpd *s)
{
	int rc = h2o_setup(s);
	pthread_mutex_lock(&s->init_lock);
	s->init_done = 1;
	s->init_err = rc;
	pthread_cond_broadcast(&s->init_cond);
	pthread_mutex_unlock(&s->init_lock);
	if (rc < 0)
		return;
	while (!s->stop_seen)
		h2o_evloop_run(s->loop, 1000);
	h2o_teardown(s);
}

static void *loop_thread_main(void *arg)
{
	struct loop_thread *t = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	t->loop = h2o_evloop_create();
	pthread_mutex_lock(&lt_lock);
	for (;;) {
		while (!t->srv)
			pthread_cond_wait(&t->cond, &lt_lock);
		struct httpd *s = t->srv;
		pthread_mutex_unlock(&lt_lock);
		s->loop = t->loop;
		serve(s);
		pthread_mutex_lock(&lt_lock);
		t->srv = NULL;
		t->next = lt_idle;
		lt_idle = t;
		/* Last touch of s: httpd_stop may free it as soon as it sees loop_done. */
		pthread_mutex_lock(&s->init_lock);
		s->loop_done = 1;
		pthread_cond_broadcast(&s->init_cond);
		pthread_mutex_unlock(&s->init_lock);
	}
	return NULL;
}

/* Hands s to a parked loop thread, or to a new one. */
static void loop_thread_run(struct httpd *s)
{
	pthread_mutex_lock(&lt_lock);
	struct loop_thread *t = lt_idle;
	if (t) {
		lt_idle = t->next;
		t->srv = s;
		pthread_cond_signal(&t->cond);
	} else {
		t = xcalloc(1, sizeof(*t));
		pthread_cond_init(&t->cond, NULL);
		t->srv = s;
		pthread_t tid;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_create(&tid, &attr, loop_thread_main, t);
		pthread_attr_destroy(&attr);
	}
	pthread_mutex_unlock(&lt_lock);
}

/* ------------------------------------------------------------------ lifecycle */

int httpd_create(const struct httpd_opts *opts, struct httpd **out, char *err, size_t errlen)
{
	pthread_once(&metrics_once, metrics_register);
	if (opts->auth_enabled && opts->n_tokens <= 0) {
		snprintf(err, errlen, "api.auth.enabled is set but api.auth.tokens is empty: add "
				      "at least one token");
		return -EINVAL;
	}
	struct httpd *s = xcalloc(1, sizeof(*s));
	s->o = *opts;
	if (s->o.workers <= 0)
		s->o.workers = 2;
	if (s->o.max_queued_jobs <= 0)
		s->o.max_queued_jobs = 256;
	if (!s->o.deadline_ms)
		s->o.deadline_ms = 30000;
	if (!s->o.req_timeout_ms)
		s->o.req_timeout_ms = 10000;
	if (s->o.max_connections <= 0)
		s->o.max_connections = 1024;
	if (s->o.stream_client_queue <= 0)
		s->o.stream_client_queue = 128;
	if (s->o.stream_max_clients <= 0)
		s->o.stream_max_clients = 64;
	if (!s->o.ws_max_message)
		s->o.ws_max_message = 65536;
	s->bind[HTTPD_API] = xstrdup(opts->api_bind ? opts->api_bind : "127.0.0.1");
	s->bind[HTTPD_OTLP] = xstrdup(opts->otlp_bind ? opts->otlp_bind : "127.0.0.1");
	s->o.api_bind = s->bind[HTTPD_API];
	s->o.otlp_bind = s->bind[HTTPD_OTLP];
	s->static_dir = opts->static_dir ? xstrdup(opts->static_dir) : NULL;
	s->o.static_dir = s->static_dir;
	s->n_tokens = opts->n_tokens > 0 ? opts->n_tokens : 0;
	s->token_hash = xcalloc((size_t)s->n_tokens + 1, 32);
	for (int i = 0; i < s->n_tokens; i++) {
		const char *t = opts->tokens[i] ? opts->tokens[i] : "";
		SHA256((const unsigned char *)t, strlen(t), s->token_hash[i]);
	}
	s->o.tokens = NULL;
	s->listen_fd[0] = s->listen_fd[1] = -1;
	s->port[0] = s->port[1] = -1;
	pthread_mutex_init(&s->init_lock, NULL);
	pthread_cond_init(&s->init_cond, NULL);
	pthread_mutex_init(&s->jq_lock, NULL);
	pthread_cond_init(&s->jq_cond, NULL);
	if (httpd__stream_init(s) < 0) {
		snprintf(err, errlen, "cannot allocate the live-stream ring");
		httpd_destroy(s);
		return -ENOMEM;
	}
	httpd_route(s, HTTPD_API, "GET", "/healthz", HTTPD_ROUTE_NOAUTH, 0, h_healthz, s);
	httpd_route(s, HTTPD_API, "GET", "/metrics", 0, 0, h_metrics, s);
	*out = s;
	return 0;
}

int httpd_route(struct httpd *s, enum httpd_listener l, const char *method, const char *path,
		unsigned flags, size_t max_body, httpd_handler_fn fn, void *ctx)
{
	if (s->state != 0)
		return -EBUSY;
	if ((unsigned)l >= HTTPD_NLISTENERS || !path || path[0] != '/' || !fn ||
	    strlen(path) >= 1024)
		return -EINVAL;
	for (int i = 0; i < s->nroutes[l]; i++) {
		struct httpd_route_ *r = &s->routes[l][i];
		bool same_m = (!r->method && !method) ||
			      (r->method && method && !strcasecmp(r->method, method));
		if (same_m && !strcmp(r->path, path) &&
		    (r->flags & HTTPD_ROUTE_PREFIX) == (flags & HTTPD_ROUTE_PREFIX))
			return -EEXIST;
	}
	s->routes[l] = xrealloc(s->routes[l], sizeof(struct httpd_route_) * (size_t)(s->nroutes[l] + 1));
	struct httpd_route_ *r = &s->routes[l][s->nroutes[l]++];
	memset(r, 0, sizeof(*r));
	if (method) {
		r->method = xstrdup(method);
		for (char *c = r->method; *c; c++)
			*c = (char)toupper((unsigned char)*c);
	}
	r->path = xstrdup(path);
	r->path_len = strlen(path);
	r->flags = flags;
	r->max_body = max_body;
	r->fn = fn;
	r->ctx = ctx;
	return 0;
}

static int listen_on(const char *host, int port, int *fd_out, int *port_out, char *err,
		     size_t errlen)
{
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve bind address '%s': %s", host,
			 gai_strerror(rc));
		return -EINVAL;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto out;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s:%d: %s%s", host, port, strerror(errno),
			 errno == EADDRINUSE ? " (another process has the port: pick another "
					       "with --set api.port=N / otlp.port=N)"
					     : "");
		close(fd);
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	rc = 0;
out:
	freeaddrinfo(res);
	return rc;
}

int httpd_start(struct httpd *s, char *err, size_t errlen)
{
	if (s->state != 0) {
		snprintf(err, errlen, "server already started");
		return -EBUSY;
	}
	int rc = listen_on(s->o.api_bind, s->o.api_port, &s->listen_fd[HTTPD_API],
			   &s->port[HTTPD_API], err, errlen);
	if (rc < 0)
		return rc;
	if (s->o.otlp_port >= 0) {
		rc = listen_on(s->o.otlp_bind, s->o.otlp_port, &s->listen_fd[HTTPD_OTLP],
			       &s->port[HTTPD_OTLP], err, errlen);
		if (rc < 0) {
			close(s->listen_fd[HTTPD_API]);
			s->listen_fd[HTTPD_API] = -1;
			s->port[HTTPD_API] = -1;
			return rc;
		}
	}
	/* h2o buffers a whole body before routing: bound it by the largest route limit. */
	s->max_entity = 1;
	for (int l = 0; l < HTTPD_NLISTENERS; l++)
		for (int i = 0; i < s->nroutes[l]; i++) {
			struct httpd_route_ *r = &s->routes[l][i];
			s->max_entity = KP_MAX(s->max_entity, r->max_body);
		}
	s->started_ns = now_mono_ns();
	s->state = 1;
	s->nworkers = s->o.workers;
	s->workers = xcalloc((size_t)s->nworkers, sizeof(pthread_t));
	for (int i = 0; i < s->nworkers; i++)
		pthread_create(&s->workers[i], NULL, worker_main, s);
	loop_thread_run(s);
	pthread_mutex_lock(&s->init_lock);
	while (!s->init_done)
		pthread_cond_wait(&s->init_cond, &s->init_lock);
	rc = s->init_err;
	pthread_mutex_unlock(&s->init_lock);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start the HTTP event loop");
		httpd_stop(s);
	}
	return rc;
}

int httpd_port(const struct httpd *s, enum httpd_listener l)
{
	if ((unsigned)l >= HTTPD_NLISTENERS)
		return -1;
	return s->port[l];
}

void httpd_stop(struct httpd *s)
{
	if (s->state != 1) {
		for (int l = 0; l < HTTPD_NLISTENERS; l++)
			if (s->listen_fd[l] >= 0) {
				close(s->listen_fd[l]);
				s->listen_fd[l] = -1;
			}
		s->state = 2;
		return;
	}
	s->state = 2;
	s->cancel_all = 1;
	/* Workers first: running handlers see httpd_req_expired() and return; their results go
	 * to the loop, which is still running. */
	pthread_mutex_lock(&s->jq_lock);
	s->jq_stop = 1;
	pthread_cond_broadcast(&s->jq_cond);
	pthread_mutex_unlock(&s->jq_lock);
	for (int i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
	s->workers = NULL;
	s->nworkers = 0;
	atomic_store(&s->stop_flag, 1);
	if (s->init_err == 0)
		h2o_multithread_send_message(&s->stop_rx, &s->stop_msg);
	pthread_mutex_lock(&s->init_lock);
	while (!s->loop_done)
		pthread_cond_wait(&s->init_cond, &s->init_lock);
	pthread_mutex_unlock(&s->init_lock);
}

void httpd_destroy(struct httpd *s)
{
	if (!s)
		return;
	httpd_stop(s);
	for (int l = 0; l < HTTPD_NLISTENERS; l++) {
		for (int i = 0; i < s->nroutes[l]; i++) {
			free(s->routes[l][i].method);
			free(s->routes[l][i].path);
		}
		free(s->routes[l]);
		free(s->bind[l]);
	}
	httpd__stream_free(s);
	free(s->static_dir);
	free(s->token_hash);
	pthread_mutex_destroy(&s->init_lock);
	pthread_cond_destroy(&s->init_cond);
	pthread_mutex_destroy(&s->jq_lock);
	pthread_cond_destroy(&s->jq_cond);
	free(s);
}
