/*
 * stream.c - the live event stream: a shared ring that any thread publishes into without
 * blocking, and WebSocket clients (h2o_upgrade_to_websocket + wslay) that each read the ring at
 * their own cursor, filter, format (eventjson) and send.
 *
 * The ring (seqlock per slot, multi-producer):
 *
 *     head (atomic, next position to claim)
 *       |
 *   [ seq | kp_event | meta ] [ seq | ... ] ... N = 2^k slots, slot = position & (N - 1)
 *
 *   publisher: p = head++; slot.seq = 0; release fence; write event + meta; slot.seq = p + 1
 *   reader at cursor c: s1 = slot.seq (acquire); copy; acquire fence; s2 = slot.seq
 *     s1 == s2 == c + 1  -> the event at c
 *     s1 <  c + 1        -> not written yet (a publisher is mid-write): stop, retry later
 *     otherwise          -> overwritten: the client lost it (counted)
 *   a cursor more than N behind head jumps to head - N, counting the gap as lost.
 *
 * The reader copies the slot while a publisher may be rewriting it; the sequence check
 * discards such torn copies (the usual seqlock argument).
 *
 * A client holds at most stream_client_queue messages in wslay's queue; the rest waits in the
 * ring, so a stalled client costs at most its queue, and a client more than a ring behind loses
 * the oldest events and is told {"msg":"dropped",...}. The loop is woken by one message per
 * drain (wake_pending) and, while some client is behind, a 10 ms tick refills clients whose
 * sockets drained.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/eventjson.h"
#include "common/json.h"
#include "httpd/internal.h"

#define FILTER_MAX_NUM 16
#define FILTER_MAX_STR 8
#define TICK_MS        10
#define MAX_BAD_MSGS   16

struct filter {
	uint32_t types; /* bit per kp_type; 0 = all */
	int npid, ntid, ncomm, nsvc, nnode;
	uint32_t pid[FILTER_MAX_NUM], tid[FILTER_MAX_NUM];
	char comm[FILTER_MAX_STR][16];
	char svc[FILTER_MAX_STR][48];
	char node[FILTER_MAX_STR][32];
};

struct ws_client {
	h2o_linklist_t link;
	struct httpd *s;
	h2o_websocket_conn_t *conn;
	struct filter f;
	uint64_t cursor;
	bool paused;
	uint64_t sent, dropped, unreported;
	uint64_t rate_t0, rate_sent0;
	int bad_msgs;
	struct kp_buf scratch;
};

/* ------------------------------------------------------------------ ring */

int httpd__stream_init(struct httpd *s)
{
	size_t n = 1024;
	while (n < s->o.stream_ring && n < ((size_t)1 << 24))
		n <<= 1;
	s->o.stream_ring = n;
	s->st.ring = aligned_alloc(64, n * sizeof(struct stream_entry));
	if (!s->st.ring)
		return -ENOMEM;
	memset(s->st.ring, 0, n * sizeof(struct stream_entry));
	s->st.mask = n - 1;
	atomic_store(&s->st.head, 0);
	return 0;
}

void httpd__stream_free(struct httpd *s)
{
	free(s->st.ring);
	s->st.ring = NULL;
}

static void wake(struct httpd *s)
{
	if (!atomic_exchange(&s->st.wake_pending, 1))
		h2o_multithread_send_message(&s->st.wake_rx, &s->st.wake_msg);
}

size_t httpd_stream_publish(struct httpd *s, const struct kp_event *ev, size_t n,
			    httpd_meta_fn meta, void *meta_ctx)
{
	struct stream *st = &s->st;
	if (!atomic_load_explicit(&st->nclients, memory_order_acquire))
		return 0;
	uint32_t mask = atomic_load_explicit(&st->type_mask, memory_order_relaxed);
	size_t put = 0;
	for (size_t i = 0; i < n; i++) {
		if (ev[i].type >= 32 || !(mask & (1u << ev[i].type)))
			continue;
		uint64_t p = atomic_fetch_add_explicit(&st->head, 1, memory_order_relaxed);
		struct stream_entry *e = &st->ring[p & st->mask];
		atomic_store_explicit(&e->seq, 0, memory_order_relaxed);
		atomic_thread_fence(memory_order_release);
		e->ev = ev[i];
		memset(&e->meta, 0, sizeof(e->meta));
		if (meta) {
			meta(meta_ctx, &ev[i], &e->meta);
			e->meta.comm[sizeof(e->meta.comm) - 1] = 0;
			e->meta.service[sizeof(e->meta.service) - 1] = 0;
			e->meta.node[sizeof(e->meta.node) - 1] = 0;
		}
		atomic_store_explicit(&e->seq, p + 1, memory_order_release);
		put++;
	}
	if (put) {
		metric_add(metric_child(httpd__m.stream_published), put);
		wake(s);
	}
	if (n > put)
		metric_add(metric_child(httpd__m.stream_lost_publish), n - put);
	return put;
}

int httpd_stream_clients(const struct httpd *s)
{
	return atomic_load(&((struct httpd *)s)->st.nclients);
}

enum rd { RD_OK, RD_EMPTY, RD_LOST };

static enum rd ring_read(struct stream *st, uint64_t c, struct stream_entry *out)
{
	struct stream_entry *e = &st->ring[c & st->mask];
	uint64_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
	if (s1 < c + 1)
		return RD_EMPTY;
	if (s1 != c + 1)
		return RD_LOST;
	out->ev = e->ev;
	out->meta = e->meta;
	atomic_thread_fence(memory_order_acquire);
	uint64_t s2 = atomic_load_explicit(&e->seq, memory_order_relaxed);
	return s2 == s1 ? RD_OK : RD_LOST;
}

/* ------------------------------------------------------------------ filters */

static bool filter_match(const struct filter *f, const struct stream_entry *e)
{
	if (f->types && !(e->ev.type < 32 && (f->types & (1u << e->ev.type))))
		return false;
	if (f->npid) {
		bool ok = false;
		for (int i = 0; i < f->npid && !ok; i++)
			ok = f->pid[i] == e->ev.pid;
		if (!ok)
			return false;
	}
	if (f->ntid) {
		bool ok = false;
		for (int i = 0; i < f->ntid && !ok; i++)
			ok = f->tid[i] == e->ev.tid;
		if (!ok)
			return false;
	}
	if (f->ncomm) {
		bool ok = false;
		for (int i = 0; i < f->ncomm && !ok; i++)
			ok = !strcmp(f->comm[i], e->meta.comm);
		if (!ok)
			return false;
	}
	if (f->nsvc) {
		bool ok = false;
		for (int i = 0; i < f->nsvc && !ok; i++)
			ok = !strcmp(f->svc[i], e->meta.service);
		if (!ok)
			return false;
	}
	if (f->nnode) {
		bool ok = false;
		for (int i = 0; i < f->nnode && !ok; i++)
			ok = !strcmp(f->node[i], e->meta.node);
		if (!ok)
			return false;
	}
	return true;
}

/* Adds one value (not a list) for key. Returns 0, or -EINVAL with a message in err. */
static int filter_add_one(struct filter *f, const char *key, const char *v, size_t vl, char *err,
			  size_t errlen)
{
	if (vl == 0)
		return 0;
	if (!strcmp(key, "type")) {
		int t = eventjson_type_from_name(v, vl);
		if (t < 0) {
			snprintf(err, errlen, "unknown event type '%.*s' (read, write, fsync, "
					      "tcp_send, tcp_recv, conn, retransmit, offcpu, reclaim, "
					      "faults, proc)",
				 (int)KP_MIN(vl, (size_t)40), v);
			return -EINVAL;
		}
		f->types |= 1u << t;
		return 0;
	}
	if (!strcmp(key, "pid") || !strcmp(key, "tid")) {
		bool pid = key[0] == 'p';
		char tmp[24];
		if (vl >= sizeof(tmp))
			goto badnum;
		memcpy(tmp, v, vl);
		tmp[vl] = 0;
		char *end;
		errno = 0;
		unsigned long x = strtoul(tmp, &end, 10);
		if (errno || *end || x > UINT32_MAX || tmp[0] == '-')
			goto badnum;
		int *n = pid ? &f->npid : &f->ntid;
		if (*n == FILTER_MAX_NUM) {
			snprintf(err, errlen, "too many %s values (at most %d)", key,
				 FILTER_MAX_NUM);
			return -EINVAL;
		}
		(pid ? f->pid : f->tid)[(*n)++] = (uint32_t)x;
		return 0;
	badnum:
		snprintf(err, errlen, "%s must be a decimal number, got '%.*s'", key,
			 (int)KP_MIN(vl, (size_t)40), v);
		return -EINVAL;
	}
	char *dst;
	size_t cap;
	int *n;
	if (!strcmp(key, "comm")) {
		if (f->ncomm == FILTER_MAX_STR)
			goto toomany;
		dst = f->comm[f->ncomm];
		cap = sizeof(f->comm[0]);
		n = &f->ncomm;
	} else if (!strcmp(key, "service")) {
		if (f->nsvc == FILTER_MAX_STR)
			goto toomany;
		dst = f->svc[f->nsvc];
		cap = sizeof(f->svc[0]);
		n = &f->nsvc;
	} else if (!strcmp(key, "node")) {
		if (f->nnode == FILTER_MAX_STR)
			goto toomany;
		dst = f->node[f->nnode];
		cap = sizeof(f->node[0]);
		n = &f->nnode;
	} else {
		return 0; /* other keys (access_token, op) are not filters */
	}
	if (vl >= cap) {
		snprintf(err, errlen, "%s value too long (at most %zu bytes)", key, cap - 1);
		return -EINVAL;
	}
	memcpy(dst, v, vl);
	dst[vl] = 0;
	(*n)++;
	return 0;
toomany:
	snprintf(err, errlen, "too many %s values (at most %d)", key, FILTER_MAX_STR);
	return -EINVAL;
}

/* A comma-separated list. */
static int filter_add_list(struct filter *f, const char *key, const char *v, char *err,
			   size_t errlen)
{
	while (*v) {
		const char *e = strchr(v, ',');
		size_t l = e ? (size_t)(e - v) : strlen(v);
		while (l && *v == ' ')
			v++, l--;
		while (l && v[l - 1] == ' ')
			l--;
		if (filter_add_one(f, key, v, l, err, errlen) < 0)
			return -EINVAL;
		if (!e)
			break;
		v = e + 1;
	}
	return 0;
}

static bool is_filter_key(const char *k)
{
	return !strcmp(k, "type") || !strcmp(k, "pid") || !strcmp(k, "tid") ||
	       !strcmp(k, "comm") || !strcmp(k, "service") || !strcmp(k, "node");
}

/* JSON value: string (comma list), number, or an array of those. */
static int filter_add_json(struct filter *f, const char *key, const struct json *v, char *err,
			   size_t errlen)
{
	if (v->type == JSON_STR)
		return filter_add_list(f, key, v->u.str.s, err, errlen);
	if (v->type == JSON_NUM)
		return filter_add_one(f, key, v->u.num.text, strlen(v->u.num.text), err, errlen);
	if (v->type == JSON_NULL)
		return 0;
	if (v->type == JSON_ARR) {
		for (size_t i = 0; i < v->u.arr.n; i++) {
			const struct json *x = v->u.arr.items[i];
			if (x->type != JSON_STR && x->type != JSON_NUM)
				goto bad;
			if (filter_add_json(f, key, x, err, errlen) < 0)
				return -EINVAL;
		}
		return 0;
	}
bad:
	snprintf(err, errlen, "%s must be a string, a number or an array of them", key);
	return -EINVAL;
}

static void filter_json(struct kp_buf *b, const struct filter *f)
{
	buf_puts(b, "{\"type\":[");
	int k = 0;
	for (int t = 1; t < KP_TYPE_MAX; t++)
		if (f->types & (1u << t))
			buf_printf(b, "%s\"%s\"", k++ ? "," : "", eventjson_type_name((unsigned)t));
	buf_puts(b, "],\"pid\":[");
	for (int i = 0; i < f->npid; i++)
		buf_printf(b, "%s%u", i ? "," : "", f->pid[i]);
	buf_puts(b, "],\"tid\":[");
	for (int i = 0; i < f->ntid; i++)
		buf_printf(b, "%s%u", i ? "," : "", f->tid[i]);
	buf_puts(b, "],\"comm\":[");
	for (int i = 0; i < f->ncomm; i++) {
		buf_puts(b, i ? "," : "");
		json_cstr(b, f->comm[i]);
	}
	buf_puts(b, "],\"service\":[");
	for (int i = 0; i < f->nsvc; i++) {
		buf_puts(b, i ? "," : "");
		json_cstr(b, f->svc[i]);
	}
	buf_puts(b, "],\"node\":[");
	for (int i = 0; i < f->nnode; i++) {
		buf_puts(b, i ? "," : "");
		json_cstr(b, f->node[i]);
	}
	buf_puts(b, "]}");
}

/* ------------------------------------------------------------------ clients */

static void update_type_mask(struct httpd *s)
{
	uint32_t m = 0;
	for (h2o_linklist_t *n = s->st.clients.next; n != &s->st.clients; n = n->next) {
		struct ws_client *c = H2O_STRUCT_FROM_MEMBER(struct ws_client, link, n);
		m |= c->f.types ? c->f.types : 0xffffffffu;
	}
	atomic_store(&s->st.type_mask, m);
}

static void client_queue(struct ws_client *c, const char *msg, size_t len)
{
	struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)msg, len};
	if (wslay_event_queue_msg(c->conn->ws_ctx, &m) == 0)
		metric_inc(metric_child(httpd__m.ws_sent));
}

static void client_control(struct ws_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void client_control(struct ws_client *c, const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > 0)
		client_queue(c, b, (size_t)KP_MIN(n, (int)sizeof(b) - 1));
}

static void client_error(struct ws_client *c, const char *msg)
{
	struct kp_buf b = {0};
	buf_puts(&b, "{\"msg\":\"error\",\"error\":");
	json_cstr(&b, msg);
	buf_puts(&b, "}");
	client_queue(c, b.data, b.len);
	buf_free(&b);
}

static void client_subscribed(struct ws_client *c)
{
	struct kp_buf b = {0};
	buf_puts(&b, "{\"msg\":\"subscribed\",\"filter\":");
	filter_json(&b, &c->f);
	buf_puts(&b, "}");
	client_queue(c, b.data, b.len);
	buf_free(&b);
}

/* Moves the client's cursor forward, queueing matching events up to its bound. Returns true
 * when the client is still behind head (more to send once its socket drains). */
static bool client_fill(struct ws_client *c)
{
	struct httpd *s = c->s;
	struct stream *st = &s->st;
	uint64_t head = atomic_load_explicit(&st->head, memory_order_acquire);
	if (c->paused) {
		c->cursor = head;
		return false;
	}
	uint64_t n = st->mask + 1;
	if (head - c->cursor > n) {
		uint64_t lost = head - n - c->cursor;
		metric_add(metric_child(httpd__m.ws_dropped), lost);
		c->dropped += lost;
		c->unreported += lost;
		c->cursor = head - n;
	}
	size_t qmax = (size_t)s->o.stream_client_queue;
	wslay_event_context_ptr ws = c->conn->ws_ctx;
	while (wslay_event_get_queued_msg_count(ws) < qmax) {
		if (c->unreported) {
			client_control(c, "{\"msg\":\"dropped\",\"count\":%llu,\"total\":%llu}",
				       (unsigned long long)c->unreported,
				       (unsigned long long)c->dropped);
			c->unreported = 0;
			continue;
		}
		if (c->cursor >= head)
			return false;
		struct stream_entry e;
		enum rd r = ring_read(st, c->cursor, &e);
		if (r == RD_EMPTY)
			return true; /* a publisher is mid-write; its wake-up comes */
		c->cursor++;
		if (r == RD_LOST) {
			metric_inc(metric_child(httpd__m.ws_dropped));
			c->dropped++;
			c->unreported++;
			continue;
		}
		if (!filter_match(&c->f, &e))
			continue;
		c->scratch.len = 0;
		struct eventjson_meta m = {e.meta.comm, e.meta.service, e.meta.node};
		eventjson_write(&c->scratch, &e.ev, &m);
		client_queue(c, c->scratch.data, c->scratch.len);
		c->sent++;
	}
	return true;
}

static void tick_arm(struct httpd *s)
{
	if (!h2o_timeout_is_linked(&s->st.tick_entry) && !s->stop_flag)
		h2o_timeout_link(s->loop, &s->st.tick, &s->st.tick_entry);
}

/* Fills every client and lets h2o write; re-arms the tick while someone is behind. */
static void pump_all(struct httpd *s)
{
	bool behind = false;
	h2o_linklist_t *n = s->st.clients.next;
	while (n != &s->st.clients) {
		struct ws_client *c = H2O_STRUCT_FROM_MEMBER(struct ws_client, link, n);
		n = n->next; /* proceed may close and free c */
		if (!c->conn->sock)
			continue; /* upgrade not complete yet: h2o proceeds on completion */
		behind |= client_fill(c);
		h2o_websocket_proceed(c->conn);
	}
	if (behind)
		tick_arm(s);
}

static void on_tick(h2o_timeout_entry_t *e)
{
	struct httpd *s = H2O_STRUCT_FROM_MEMBER(struct httpd, st.tick_entry, e);
	pump_all(s);
}

static void on_wake(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
	struct httpd *s = H2O_STRUCT_FROM_MEMBER(struct httpd, st.wake_rx, rx);
	while (!h2o_linklist_is_empty(messages))
		h2o_linklist_unlink(messages->next);
	atomic_store(&s->st.wake_pending, 0);
	pump_all(s);
}

static void client_free(struct ws_client *c)
{
	struct httpd *s = c->s;
	h2o_linklist_unlink(&c->link);
	atomic_fetch_sub(&s->st.nclients, 1);
	metric_gauge_add(metric_child(httpd__m.ws_clients), -1);
	metric_inc(metric_child(httpd__m.ws_closed));
	update_type_mask(s);
	buf_free(&c->scratch);
	free(c);
}

static void handle_text(struct ws_client *c, const char *text, size_t len)
{
	char err[256];
	size_t errpos = 0;
	struct json *root;
	struct json_doc *doc = json_parse(text, len, &root, err, sizeof(err), &errpos);
	if (!doc) {
		char m[400];
		snprintf(m, sizeof(m), "bad JSON at byte %zu: %s", errpos, err);
		client_error(c, m);
		c->bad_msgs++;
		return;
	}
	const struct json *op = root->type == JSON_OBJ ? json_get(root, "op") : NULL;
	if (!op || op->type != JSON_STR) {
		client_error(c, "expected an object with \"op\": subscribe, pause, resume or rate");
		c->bad_msgs++;
		goto out;
	}
	const char *o = op->u.str.s;
	if (!strcmp(o, "subscribe")) {
		struct filter f;
		memset(&f, 0, sizeof(f));
		for (size_t i = 0; i < root->u.arr.n; i++) {
			const char *k = root->u.arr.keys[i];
			if (!is_filter_key(k))
				continue;
			if (filter_add_json(&f, k, root->u.arr.items[i], err, sizeof(err)) < 0) {
				client_error(c, err);
				c->bad_msgs++;
				goto out;
			}
		}
		c->f = f;
		update_type_mask(c->s);
		client_subscribed(c);
	} else if (!strcmp(o, "pause")) {
		c->paused = true;
		client_control(c, "{\"msg\":\"paused\"}");
	} else if (!strcmp(o, "resume")) {
		c->paused = false;
		c->cursor = atomic_load(&c->s->st.head);
		client_control(c, "{\"msg\":\"resumed\"}");
	} else if (!strcmp(o, "rate")) {
		uint64_t now = now_mono_ns();
		double secs = (double)(now - c->rate_t0) / 1e9;
		double rate = secs > 0 ? (double)(c->sent - c->rate_sent0) / secs : 0;
		client_control(c,
			       "{\"msg\":\"rate\",\"events_per_sec\":%.1f,\"sent\":%llu,"
			       "\"dropped\":%llu,\"seconds\":%.3f,\"paused\":%s}",
			       rate, (unsigned long long)c->sent, (unsigned long long)c->dropped,
			       secs, c->paused ? "true" : "false");
		c->rate_t0 = now;
		c->rate_sent0 = c->sent;
	} else {
		client_error(c, "unknown op (subscribe, pause, resume, rate)");
		c->bad_msgs++;
	}
out:
	json_free(doc);
}

static void on_ws_msg(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
	struct ws_client *c = conn->data;
	if (!arg) {
		uint16_t code = wslay_event_get_status_code_sent(conn->ws_ctx);
		if (code == 1002 || code == 1007 || code == 1008 || code == 1009)
			metric_inc(metric_child(httpd__m.ws_errors));
		h2o_websocket_close(conn);
		client_free(c);
		return;
	}
	if (arg->opcode == WSLAY_TEXT_FRAME) {
		handle_text(c, (const char *)arg->msg, arg->msg_length);
	} else if (arg->opcode == WSLAY_BINARY_FRAME) {
		client_error(c, "binary messages are not understood: send JSON text");
		c->bad_msgs++;
	} else {
		return; /* ping, pong, close: wslay answers them */
	}
	if (c->bad_msgs > MAX_BAD_MSGS) {
		metric_inc(metric_child(httpd__m.ws_errors));
		wslay_event_queue_close(conn->ws_ctx, 1008, (const uint8_t *)"too many bad messages",
					21);
		return;
	}
	/* Replies are queued; the h2o proceed loop we are called from sends them. */
	client_fill(c);
}

void httpd__stream_handle(struct httpd *s, h2o_req_t *req, uint64_t t0)
{
	const char *key = NULL;
	if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
		httpd__send_error(req, 405, "the live stream is a WebSocket: GET with Upgrade",
				  "stream", t0);
		return;
	}
	if (req->version >= 0x200 || h2o_is_websocket_handshake(req, &key) != 0 || !key) {
		httpd__send_error(req, 400,
				  "this endpoint is a WebSocket: connect with 'Upgrade: websocket' "
				  "and a 24-character Sec-WebSocket-Key",
				  "stream", t0);
		return;
	}
	struct filter f;
	memset(&f, 0, sizeof(f));
	if (req->query_at != SIZE_MAX) {
		const char *q = req->path.base + req->query_at + 1;
		size_t ql = req->path.len - req->query_at - 1;
		for (size_t i = 0; i < ql;) {
			size_t e = i;
			while (e < ql && q[e] != '&')
				e++;
			const char *eq = memchr(q + i, '=', e - i);
			if (eq) {
				char k[16], v[1024];
				size_t kl = (size_t)(eq - (q + i)), vl = e - (size_t)(eq + 1 - q);
				if (kl < sizeof(k) && vl < sizeof(v)) {
					memcpy(k, q + i, kl);
					k[kl] = 0;
					/* percent-decode the value */
					size_t o = 0;
					for (size_t x = 0; x < vl; x++) {
						char ch = eq[1 + x];
						if (ch == '%' && x + 2 < vl) {
							char hx[3] = {eq[2 + x], eq[3 + x], 0};
							char *end;
							long val = strtol(hx, &end, 16);
							if (!*end) {
								v[o++] = (char)val;
								x += 2;
								continue;
							}
						}
						v[o++] = ch == '+' ? ' ' : ch;
					}
					v[o] = 0;
					char err[256];
					if (is_filter_key(k) &&
					    filter_add_list(&f, k, v, err, sizeof(err)) < 0) {
						httpd__send_error(req, 400, err, "stream", t0);
						return;
					}
				} else if (kl < sizeof(k)) {
					httpd__send_error(req, 400, "query value too long", "stream",
							  t0);
					return;
				}
			}
			i = e + 1;
		}
	}
	if (atomic_load(&s->st.nclients) >= s->o.stream_max_clients) {
		metric_inc(metric_labels(httpd__m.rejected, "ws_clients"));
		httpd__send_error(req, 503, "too many live-stream clients; retry later", "stream",
				  t0);
		return;
	}
	struct ws_client *c = xcalloc(1, sizeof(*c));
	c->s = s;
	c->f = f;
	c->cursor = atomic_load(&s->st.head);
	c->rate_t0 = now_mono_ns();
	httpd__count("stream", 101, t0);
	c->conn = h2o_upgrade_to_websocket(req, key, c, on_ws_msg);
	wslay_event_config_set_max_recv_msg_length(c->conn->ws_ctx, s->o.ws_max_message);
	h2o_linklist_insert(&s->st.clients, &c->link);
	atomic_fetch_add(&s->st.nclients, 1);
	metric_gauge_add(metric_child(httpd__m.ws_clients), 1);
	update_type_mask(s);
	client_subscribed(c);
}

void httpd__stream_start(struct httpd *s)
{
	h2o_linklist_init_anchor(&s->st.clients);
	h2o_multithread_register_receiver(s->ctx.queue, &s->st.wake_rx, on_wake);
	h2o_timeout_init(s->loop, &s->st.tick, TICK_MS);
	s->st.tick_entry.cb = on_tick;
}

void httpd__stream_stop(struct httpd *s)
{
	h2o_linklist_t *n = s->st.clients.next;
	while (n != &s->st.clients) {
		struct ws_client *c = H2O_STRUCT_FROM_MEMBER(struct ws_client, link, n);
		n = n->next;
		/* A client whose 101 is still being written belongs to h2o's upgrade callback,
		 * which reports it to on_ws_msg when the socket is shut down: leave it. */
		if (!c->conn->sock)
			continue;
		h2o_websocket_close(c->conn);
		client_free(c);
	}
	if (h2o_timeout_is_linked(&s->st.tick_entry))
		h2o_timeout_unlink(&s->st.tick_entry);
	/* No publisher may post a wake-up any more: wait for one in flight, then keep the flag
	 * set for good. */
	uint64_t until = now_mono_ns() + 2 * NSEC_PER_SEC;
	int zero = 0;
	while (!atomic_compare_exchange_strong(&s->st.wake_pending, &zero, 1) &&
	       now_mono_ns() < until) {
		zero = 0;
		h2o_evloop_run(s->loop, 10);
	}
	h2o_timeout_dispose(s->loop, &s->st.tick);
}
