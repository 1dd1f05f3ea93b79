/*
 * internal.h - what the files of httpd/ share: the server struct and the httpd__ functions that
 * cross files (server.c: lifecycle, routing, jobs; stream.c: the live stream over WebSocket;
 * static.c: the dashboard's files). Nothing outside httpd/ includes this.
 */
#ifndef KP_HTTPD_INTERNAL_H
#define KP_HTTPD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0 /* libh2o-evloop: h2o's own event loop */
#endif
#include <h2o.h>
#include <h2o/websocket.h>

#include "common/metrics.h"
#include "httpd/httpd.h"

#define HTTPD_STREAM_PATH "/api/v1/stream"

struct httpd_route_ {
	char *method; /* NULL = any */
	char *path;
	size_t path_len;
	unsigned flags;
	size_t max_body;
	httpd_handler_fn fn;
	void *ctx;
	struct kp_metric_child *lat; /* latency histogram child for this route */
};

/* One entry of the live-stream ring: written by any publisher, read by the loop thread. */
struct stream_entry {
	_Atomic uint64_t seq; /* position + 1 once complete, 0 while being written */
	struct kp_event ev;
	struct httpd_stream_meta meta;
} __attribute__((aligned(64)));

struct stream {
	struct stream_entry *ring;
	uint64_t mask;
	_Atomic uint64_t head;      /* next position to claim */
	_Atomic uint32_t type_mask; /* union of the clients' type filters (bit per kp_type) */
	_Atomic int nclients;
	_Atomic int wake_pending;
	h2o_multithread_message_t wake_msg;
	h2o_multithread_receiver_t wake_rx;
	h2o_linklist_t clients; /* struct ws_client */
	h2o_timeout_t tick;     /* refills clients whose socket drained */
	h2o_timeout_entry_t tick_entry;
};

struct conn_track {
	h2o_linklist_t link;
	h2o_socket_t *sock;
	struct httpd *s;
};

struct job;

struct httpd {
	struct httpd_opts o;
	char *bind[HTTPD_NLISTENERS];
	char *static_dir;
	unsigned char (*token_hash)[32];
	int n_tokens;
	struct httpd_route_ *routes[HTTPD_NLISTENERS];
	int nroutes[HTTPD_NLISTENERS];
	size_t max_entity;

	int state; /* 0 created, 1 started, 2 stopped */
	int port[HTTPD_NLISTENERS];
	int listen_fd[HTTPD_NLISTENERS];
	uint64_t started_ns;

	/* loop thread (a parked one reused, see server.c) */
	pthread_mutex_t init_lock;
	pthread_cond_t init_cond;
	int init_done, init_err, loop_done;
	char init_msg[256];
	h2o_evloop_t *loop;
	h2o_globalconf_t gconf;
	h2o_hostconf_t *host[HTTPD_NLISTENERS];
	h2o_hostconf_t *hosts[HTTPD_NLISTENERS][2];
	h2o_context_t ctx;
	h2o_accept_ctx_t accept_ctx[HTTPD_NLISTENERS];
	h2o_socket_t *listener[HTTPD_NLISTENERS];
	h2o_linklist_t conns; /* struct conn_track */
	int nconns;
	_Atomic int stop_flag;
	int stop_seen; /* loop thread: the stop message arrived */
	h2o_multithread_message_t stop_msg;
	h2o_multithread_receiver_t stop_rx;
	h2o_multithread_receiver_t done_rx; /* finished slow jobs */
	h2o_timeout_t deadline_to;
	h2o_linklist_t live_jobs; /* jobs with a request still waiting (loop thread) */
	int outstanding_jobs;     /* created and not yet freed (loop thread) */
	volatile int cancel_all;

	/* worker pool */
	pthread_t *workers;
	int nworkers;
	pthread_mutex_t jq_lock;
	pthread_cond_t jq_cond;
	struct job *jq_head, *jq_tail;
	int jq_len;
	int jq_stop;

	struct stream st;
};

/* Metrics shared by the files (registered once per process). */
struct httpd_metrics {
	struct kp_metric *requests;  /* route, code */
	struct kp_metric *latency;   /* route */
	struct kp_metric *conns;     /* gauge */
	struct kp_metric *rejected;  /* reason */
	struct kp_metric *ws_clients;
	struct kp_metric *ws_sent, *ws_dropped, *ws_errors, *ws_closed;
	struct kp_metric *stream_published, *stream_lost_publish;
	struct kp_metric *jobs_late;
	struct kp_metric *protocol_errors; /* status */
};
extern struct httpd_metrics httpd__m;

/* server.c */
void httpd__count(const char *route, int status, uint64_t t0_ns);
int httpd__send(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len,
		const struct kp_buf *extra_headers);
void httpd__send_error(h2o_req_t *req, int status, const char *msg, const char *route,
		       uint64_t t0_ns);
bool httpd__auth_token_ok(const struct httpd *s, const char *token, size_t len);

/* stream.c */
int httpd__stream_init(struct httpd *s);     /* create time */
void httpd__stream_free(struct httpd *s);
void httpd__stream_start(struct httpd *s);   /* loop thread, after the context exists */
void httpd__stream_stop(struct httpd *s);    /* loop thread: close every client */
void httpd__stream_handle(struct httpd *s, h2o_req_t *req, uint64_t t0_ns);

/* static.c */
void httpd__static_handle(struct httpd *s, h2o_req_t *req, const char *path, uint64_t t0_ns);

#endif
