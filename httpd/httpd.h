/*
 * httpd.h - kprobed's HTTP layer (on h2o 2.2, libh2o-evloop): two listeners (the API port and
 * the OTLP port) with separate route tables, a worker pool for slow handlers, bearer-token auth,
 * /healthz, /metrics, the dashboard's static files and the WebSocket live event stream.
 *
 * It knows no file format and no business logic: modules register handlers on paths and get a
 * plain request (method, path, decoded query parameters, headers, a bounded and already
 * decompressed body) and fill a plain response (status, content type, body, extra headers).
 * No h2o type appears here.
 *
 * Threads:
 *   - one event-loop thread runs h2o for both listeners: parsing, routing, auth, static files,
 *     fast handlers (the default), WebSocket I/O, and the live-stream fan-out;
 *   - `workers` threads run routes registered with HTTPD_ROUTE_SLOW (queries, graph walks); the
 *     result goes back to the loop thread through an h2o multithread queue. A slow route has a
 *     deadline (opts.deadline_ms): past it the client gets 504 and the late result is dropped
 *     (counted); handlers should poll httpd_req_expired() in long loops;
 *   - any thread may call httpd_stream_publish(); it never blocks and never allocates.
 *
 * Lifecycle: httpd_create -> httpd_route... -> httpd_start -> ... -> httpd_stop -> httpd_destroy.
 * Routes are fixed once started. httpd_stop closes the listeners and every connection, joins the
 * workers and waits until the loop thread has torn h2o down (prompt: it waits for running slow
 * handlers only, which see httpd_req_expired() turn true). The loop thread itself is parked and
 * reused by the next server (h2o 2.2 cannot free an event loop cleanly). Publishers must stop
 * calling httpd_stream_publish before httpd_destroy (after httpd_stop it is a no-op).
 *
 * Errors are negative errno values; httpd_create/httpd_start also write a message to err.
 */
#ifndef KP_HTTPD_H
#define KP_HTTPD_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/event.h"
#include "common/config.h"
#include "common/util.h"

struct httpd; /* opaque server */

enum httpd_listener {
	HTTPD_API = 0,  /* api.bind:api.port - API, dashboard, stream, /metrics, /healthz */
	HTTPD_OTLP = 1, /* otlp.bind:otlp.port - OTLP/HTTP */
	HTTPD_NLISTENERS
};

struct httpd_opts {
	const char *api_bind;  /* default "127.0.0.1" */
	int api_port;          /* 0 = ephemeral (read back with httpd_port) */
	const char *otlp_bind; /* default "127.0.0.1" */
	int otlp_port;         /* 0 = ephemeral, -1 = no OTLP listener */
	bool auth_enabled;     /* api.auth.enabled: bearer token on every API request but /healthz */
	const char *const *tokens; /* api.auth.tokens (copied) */
	int n_tokens;
	const char *static_dir;  /* dashboard/dist; NULL = no static files (API 404s only) */
	int workers;             /* slow-route worker threads; default 2 */
	int max_queued_jobs;     /* slow requests waiting for a worker before 503; default 256 */
	uint64_t deadline_ms;    /* api.queryTimeoutMs; default 30000 */
	uint64_t req_timeout_ms; /* a request's head and body must arrive within this (slowloris);
				  * also the keep-alive idle timeout; default 10000 */
	int max_connections;     /* open HTTP + WebSocket connections; more are closed at accept;
				  * default 1024 */
	size_t stream_ring;      /* live-stream ring, events (rounded up to a power of 2); 16384 */
	int stream_client_queue; /* messages queued per WebSocket client (the rest waits in the
				  * ring at its cursor); a control reply waits behind at most
				  * this many events; 128 */
	int stream_max_clients;  /* WebSocket clients at once; default 64 */
	size_t ws_max_message;   /* largest message a client may send; default 65536 */
};

/* Defaults, then the api.* / otlp.* keys of cfg (cfg may be NULL: defaults only). The strings
 * point into cfg, which must outlive httpd_create (which copies what it keeps). */
void httpd_opts_init(struct httpd_opts *o, const struct kp_config *cfg);

/* ------------------------------------------------------------------ requests and responses */

struct httpd_header {
	const char *name;  /* lower case, NUL terminated */
	const char *value; /* NUL terminated (a value holding NUL bytes is cut there) */
};

struct httpd_param {
	const char *name, *value; /* percent- and '+'-decoded, NUL terminated */
};

/*
 * A request as a handler sees it. Everything it points to is owned by the server and valid
 * until the handler returns; copy what you keep.
 */
struct httpd_req {
	const char *method;     /* "GET", "POST", ... */
	const char *path;       /* normalized path without the query ("/api/v1/query") */
	const char *rest;       /* prefix routes: the decoded path after the prefix; else "" */
	const char *query;      /* raw query string without '?', "" if none */
	const struct httpd_param *params;
	size_t n_params;
	const struct httpd_header *headers;
	size_t n_headers;
	const char *body;       /* decompressed when the route allows gzip; NUL terminated */
	size_t body_len;
	const char *remote;     /* peer "ip:port" */
	enum httpd_listener listener;
	uint64_t deadline_ns;   /* CLOCK_MONOTONIC deadline of slow routes; 0 = none */
	const volatile int *cancel; /* non-zero once the deadline passed or the client left */
	const volatile int *stopping_; /* private: the server is stopping */
};

/* First query parameter / header by name (headers: case-insensitive), or NULL. */
const char *httpd_req_param(const struct httpd_req *r, const char *name);
const char *httpd_req_header(const struct httpd_req *r, const char *name);
/* True once the request's deadline has passed or the server is stopping: stop working. */
bool httpd_req_expired(const struct httpd_req *r);

/*
 * A response. The handler starts with status 200, content type application/json and an empty
 * body. The body is sent with a Content-Length (HEAD requests get headers only).
 */
struct httpd_resp {
	int status;
	char content_type[128];
	struct kp_buf body;
	struct kp_buf headers_; /* private: "name\0value\0" pairs; use httpd_resp_header */
};

void httpd_resp_set_type(struct httpd_resp *r, const char *content_type);
/* Adds a response header (copied). Names/values with CR or LF are refused (-EINVAL). */
int httpd_resp_header(struct httpd_resp *r, const char *name, const char *value);
/* status + `{"error": msg}` (+ `"position": N` when position >= 0) as application/json. */
void httpd_resp_error(struct httpd_resp *r, int status, const char *msg, long position);
/* status + text/plain body. */
void httpd_resp_text(struct httpd_resp *r, int status, const char *text);

typedef void (*httpd_handler_fn)(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

enum {
	HTTPD_ROUTE_PREFIX = 0x1, /* path is a prefix ("/api/v1/graph/"); req->rest is the rest */
	HTTPD_ROUTE_SLOW = 0x2,   /* run on the worker pool, with the deadline */
	HTTPD_ROUTE_GZIP = 0x4,   /* accept Content-Encoding: gzip bodies (bounded after inflate) */
	HTTPD_ROUTE_NOAUTH = 0x8, /* no bearer token needed (like /healthz) */
};

/*
 * Registers a handler for method ("GET", "POST", ...; NULL = any; GET also answers HEAD) and
 * path on one listener. Exact routes win over prefix routes; the longest prefix wins. A path
 * that matches a route with another method answers 405. max_body bounds the request body in
 * bytes (after decompression); larger bodies get 413. Returns 0, -EBUSY once started, -EINVAL,
 * -EEXIST for a duplicate.
 */
int httpd_route(struct httpd *s, enum httpd_listener l, const char *method, const char *path,
		unsigned flags, size_t max_body, httpd_handler_fn fn, void *ctx);

/* ------------------------------------------------------------------ lifecycle */

int httpd_create(const struct httpd_opts *opts, struct httpd **out, char *err, size_t errlen);
/* Binds the listeners and starts the threads. -EADDRINUSE etc. with a message in err. */
int httpd_start(struct httpd *s, char *err, size_t errlen);
/* The bound port of a listener (after httpd_start), or -1. */
int httpd_port(const struct httpd *s, enum httpd_listener l);
/* Idempotent; safe before httpd_start. Must not be called from a handler. */
void httpd_stop(struct httpd *s);
void httpd_destroy(struct httpd *s);

/* ------------------------------------------------------------------ live stream */

/*
 * WebSocket at GET /api/v1/stream on the API listener.
 *
 * Subscribing: query parameters and/or a JSON text message, all optional, AND across keys and OR
 * within a key (comma separated lists or JSON arrays):
 *     /api/v1/stream?type=write,fsync&pid=123&comm=nginx&service=payments&node=n1
 *     {"op":"subscribe","type":["write"],"pid":[123],"tid":[],"comm":"nginx","service":[]}
 * Other client messages: {"op":"pause"}, {"op":"resume"} (continues from live, the paused span
 * is skipped, not counted as dropped), {"op":"rate"}.
 *
 * Server messages: one JSON object per event (eventjson.h field names); control messages carry
 * a "msg" key: {"msg":"subscribed","filter":{...}}, {"msg":"paused"}, {"msg":"resumed"},
 * {"msg":"rate","events_per_sec":R,"sent":N,"dropped":D,"seconds":S},
 * {"msg":"dropped","count":N,"total":T} (this client fell behind: N events it matched were lost),
 * {"msg":"error","error":"..."}.
 *
 * Events pass through one shared ring (opts.stream_ring) that each client reads at its own
 * cursor, at most stream_client_queue messages ahead of its socket. A client that falls a whole
 * ring behind loses the oldest events (counted, and told); the publisher is never slowed.
 */
struct httpd_stream_meta {
	char comm[16];
	char service[48];
	char node[32];
};

/*
 * Fills m for ev (called by the publisher, on its thread, only for events some client may
 * want). m is zeroed before the call; leave unknown fields empty.
 */
typedef void (*httpd_meta_fn)(void *ctx, const struct kp_event *ev, struct httpd_stream_meta *m);

/*
 * Offers n events to the live stream. Cheap when nobody watches (one atomic load); never blocks.
 * meta may be NULL. Returns how many events entered the ring (those of a type some client
 * subscribed to).
 */
size_t httpd_stream_publish(struct httpd *s, const struct kp_event *ev, size_t n,
			    httpd_meta_fn meta, void *meta_ctx);

/* Connected WebSocket clients (for tests and status pages). */
int httpd_stream_clients(const struct httpd *s);

#endif
