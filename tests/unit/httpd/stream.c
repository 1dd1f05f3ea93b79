/*
 * Tests httpd/stream.c with the project's WebSocket client against a real server: filters from
 * the query string and from JSON messages, 10k events published from another thread arrive
 * exactly and in order, pause/resume/rate, a stalled client neither blocks the publisher nor
 * grows memory (its losses are counted and reported).
 */
#include <pthread.h>

#include "common/json.h"
#include "common/metrics.h"
#include "tests/unit/httpd/helpers.h"

static void meta_fn(void *ctx, const struct kp_event *ev, struct httpd_stream_meta *m)
{
	snprintf(m->comm, sizeof(m->comm), "%s", ev->pid == 123 ? "nginx" : "other");
	snprintf(m->service, sizeof(m->service), "%s", ev->pid % 2 ? "payments" : "ledger");
	snprintf(m->node, sizeof(m->node), "n1");
}

/* Event i: type cycles through read/write/fsync/offcpu, pid cycles 121..124, ts = i. */
static void make_event(struct kp_event *e, uint64_t i)
{
	static const int types[] = {KP_READ, KP_WRITE, KP_FSYNC, KP_OFFCPU, KP_WRITE};
	memset(e, 0, sizeof(*e));
	e->ts_ns = i;
	e->dur_ns = 1000 + i;
	e->type = (__u8)types[i % 5];
	e->pid = 121 + (uint32_t)((i / 5) % 4);
	e->tid = e->pid;
	e->cpu = (__u16)(i % 2);
	e->arg[0] = 3;
	e->arg[1] = i;
}

static bool matches_filter(const struct kp_event *e)
{
	/* ?type=write,fsync&pid=123 (comm nginx is pid 123 too) */
	return (e->type == KP_WRITE || e->type == KP_FSYNC) && e->pid == 123;
}

struct pub_arg {
	struct httpd *s;
	uint64_t from, n;
	size_t batch;
	int pause_us; /* between batches */
	uint64_t max_call_ns;
	size_t accepted;
};

static void *publisher(void *p)
{
	struct pub_arg *a = p;
	struct kp_event *ev = calloc(a->batch, sizeof(*ev));
	for (uint64_t i = a->from; i < a->from + a->n;) {
		size_t k = 0;
		for (; k < a->batch && i < a->from + a->n; k++, i++)
			make_event(&ev[k], i);
		uint64_t t0 = now_mono_ns();
		a->accepted += httpd_stream_publish(a->s, ev, k, meta_fn, NULL);
		uint64_t d = now_mono_ns() - t0;
		if (d > a->max_call_ns)
			a->max_call_ns = d;
		if (a->pause_us)
			usleep((useconds_t)a->pause_us);
	}
	free(ev);
	return NULL;
}

static struct json_doc *recv_json(struct httpc_ws *ws, struct json **root, int timeout_ms)
{
	struct kp_buf m = {0};
	int op = 0;
	int rc = httpc_ws_recv(ws, &op, &m, 1 << 20, timeout_ms);
	CHECKF(rc == 1, "ws recv: %d", rc);
	CHECKF(op == 1, "opcode %d: %s", op, m.data ? m.data : "");
	char err[128];
	size_t pos;
	struct json_doc *d = json_parse(m.data, m.len, root, err, sizeof(err), &pos);
	CHECKF(d != NULL, "bad JSON %s: %s", err, m.data);
	buf_free(&m);
	return d;
}

static const char *jmsg(const struct json *j)
{
	const struct json *m = json_get(j, "msg");
	return m && m->type == JSON_STR ? m->u.str.s : NULL;
}

static int64_t jint(const struct json *j, const char *k)
{
	int64_t v = -1;
	const struct json *x = json_get(j, k);
	if (x)
		json_int(x, &v);
	return v;
}

TEST(httpd_stream_filters_10k_in_order)
{
	struct httpd_opts o;
	th_opts(&o);
	struct httpd *s = th_create(&o);
	th_start(s);
	int port = httpd_port(s, HTTPD_API);
	char err[256];
	struct httpc_ws ws, all;
	CHECKF(httpc_ws_connect(&ws, "127.0.0.1", port,
				"/api/v1/stream?type=write,fsync&pid=123&comm=nginx", NULL, 5000,
				err, sizeof(err)) == 0,
	       "%s", err);
	CHECKF(httpc_ws_connect(&all, "127.0.0.1", port, "/api/v1/stream?service=payments", NULL,
				5000, err, sizeof(err)) == 0,
	       "%s", err);
	struct json *j;
	struct json_doc *d = recv_json(&ws, &j, 5000);
	CHECK_EQ_STR(jmsg(j), "subscribed");
	CHECK_CONTAINS(ws.head, "101");
	json_free(d);
	d = recv_json(&all, &j, 5000);
	CHECK_EQ_STR(jmsg(j), "subscribed");
	json_free(d);
	CHECK_EQ_INT(httpd_stream_clients(s), 2);

	uint64_t N = 10000;
	struct pub_arg a = {s, 0, N, 97, 0, 0, 0};
	pthread_t t;
	uint64_t t0 = now_mono_ns();
	pthread_create(&t, NULL, publisher, &a);

	uint64_t want = 0, got = 0;
	for (uint64_t i = 0; i < N; i++) {
		struct kp_event e;
		make_event(&e, i);
		want += matches_filter(&e);
	}
	uint64_t next = 0;
	while (got < want) {
		d = recv_json(&ws, &j, 5000);
		CHECKF(jmsg(j) == NULL, "control message %s", jmsg(j));
		int64_t ts = jint(j, "ts");
		struct kp_event e;
		do
			make_event(&e, next++);
		while (next <= N && !matches_filter(&e));
		CHECKF((uint64_t)ts == next - 1, "got ts %lld, want %llu", (long long)ts,
		       (unsigned long long)(next - 1));
		const struct json *ty = json_get(j, "type");
		CHECK(ty && (!strcmp(ty->u.str.s, "write") || !strcmp(ty->u.str.s, "fsync")));
		CHECK_EQ_INT(jint(j, "pid"), 123);
		CHECK_EQ_STR(json_get(j, "comm")->u.str.s, "nginx");
		CHECK_EQ_STR(json_get(j, "service")->u.str.s, "payments");
		if (!strcmp(ty->u.str.s, "write"))
			CHECK_EQ_INT(jint(j, "bytes"), ts);
		else
			CHECK_EQ_INT(jint(j, "fd"), 3);
		json_free(d);
		got++;
	}
	pthread_join(t, NULL);
	kt_note("%llu of %llu events matched and arrived in order in %.1f ms; longest publish "
		"call %.3f ms",
		(unsigned long long)got, (unsigned long long)N, (now_mono_ns() - t0) / 1e6,
		a.max_call_ns / 1e6);
	/* Nothing extra after the last match. */
	struct kp_buf m = {0};
	int op;
	CHECK_EQ_INT(httpc_ws_recv(&ws, &op, &m, 1 << 20, 300), 0);

	/* The other client (service=payments: odd pids) got its own exact set. */
	uint64_t want2 = 0;
	for (uint64_t i = 0; i < N; i++) {
		struct kp_event e;
		make_event(&e, i);
		want2 += e.pid % 2;
	}
	uint64_t got2 = 0;
	int64_t last = -1;
	while (got2 < want2) {
		d = recv_json(&all, &j, 5000);
		int64_t ts = jint(j, "ts");
		CHECK_GT_INT(ts, last);
		CHECK(jint(j, "pid") % 2 == 1);
		last = ts;
		json_free(d);
		got2++;
	}
	kt_note("second client: %llu events in %.1f ms since publishing began",
		(unsigned long long)got2, (now_mono_ns() - t0) / 1e6);
	CHECK_EQ_INT(httpc_ws_recv(&all, &op, &m, 1 << 20, 300), 0);
	buf_free(&m);

	httpc_ws_close(&ws);
	httpc_ws_close(&all);
	for (int i = 0; i < 100 && httpd_stream_clients(s) > 0; i++)
		usleep(10000);
	CHECK_EQ_INT(httpd_stream_clients(s), 0);
	/* Nobody watching: publish is a no-op. */
	struct kp_event e;
	make_event(&e, 1);
	CHECK_EQ_INT(httpd_stream_publish(s, &e, 1, meta_fn, NULL), 0);
	httpd_destroy(s);
}

TEST(httpd_stream_json_subscribe_pause_rate)
{
	struct httpd_opts o;
	th_opts(&o);
	struct httpd *s = th_create(&o);
	th_start(s);
	char err[256];
	struct httpc_ws ws;
	CHECKF(httpc_ws_connect(&ws, "127.0.0.1", httpd_port(s, HTTPD_API), "/api/v1/stream",
				NULL, 5000, err, sizeof(err)) == 0,
	       "%s", err);
	struct json *j;
	struct json_doc *d = recv_json(&ws, &j, 5000);
	CHECK_EQ_STR(jmsg(j), "subscribed");
	json_free(d);

	const char *sub = "{\"op\":\"subscribe\",\"type\":[\"offcpu\"],\"pid\":[122, \"124\"]}";
	CHECK_EQ_INT(httpc_ws_send_text(&ws, sub, strlen(sub)), 0);
	d = recv_json(&ws, &j, 5000);
	CHECK_EQ_STR(jmsg(j), "subscribed");
	const struct json *f = json_get(j, "filter");
	CHECK(f && json_get(f, "type")->u.arr.n == 1);
	CHECK_EQ_INT(json_get(f, "pid")->u.arr.n, 2);
	json_free(d);

	struct pub_arg a = {s, 0, 1000, 50, 0, 0, 0};
	publisher(&a);
	/* offcpu events with pid 122 or 124: i % 5 == 3. */
	int n = 0;
	for (uint64_t i = 0; i < 1000; i++) {
		struct kp_event e;
		make_event(&e, i);
		if (e.type == KP_OFFCPU && (e.pid == 122 || e.pid == 124)) {
			d = recv_json(&ws, &j, 5000);
			CHECK_EQ_INT(jint(j, "ts"), (int64_t)i);
			CHECK_EQ_STR(json_get(j, "type")->u.str.s, "offcpu");
			CHECK_EQ_STR(json_get(j, "reason")->u.str.s, "blocked");
			json_free(d);
			n++;
		}
	}
	CHECK_GT_INT(n, 0);

	/* Bad messages get an error, not a close. */
	const char *bad[] = {"not json", "{\"op\":\"fly\"}", "{\"op\":\"subscribe\",\"type\":"
							       "\"bogus\"}",
			     "{\"op\":\"subscribe\",\"pid\":\"-1\"}", "[1,2]"};
	for (size_t i = 0; i < KP_ARRAY_SIZE(bad); i++) {
		CHECK_EQ_INT(httpc_ws_send_text(&ws, bad[i], strlen(bad[i])), 0);
		d = recv_json(&ws, &j, 5000);
		CHECKF(jmsg(j) && !strcmp(jmsg(j), "error"), "for %s got %s", bad[i], jmsg(j));
		json_free(d);
	}

	/* Pause: nothing arrives; resume continues from live. */
	CHECK_EQ_INT(httpc_ws_send_text(&ws, "{\"op\":\"pause\"}", 14), 0);
	d = recv_json(&ws, &j, 5000);
	CHECK_EQ_STR(jmsg(j), "paused");
	json_free(d);
	publisher(&a);
	struct kp_buf m = {0};
	int op;
	CHECK_EQ_INT(httpc_ws_recv(&ws, &op, &m, 1 << 20, 300), 0);
	CHECK_EQ_INT(httpc_ws_send_text(&ws, "{\"op\":\"resume\"}", 15), 0);
	d = recv_json(&ws, &j, 5000);
	CHECK_EQ_STR(jmsg(j), "resumed");
	json_free(d);
	struct pub_arg b = {s, 5000, 10, 10, 0, 0, 0};
	publisher(&b);
	d = recv_json(&ws, &j, 5000);
	CHECK_GE_INT(jint(j, "ts"), 5000); /* nothing from the paused span */
	json_free(d);
	CHECK_EQ_INT(httpc_ws_send_text(&ws, "{\"op\":\"rate\"}", 13), 0);
	d = recv_json(&ws, &j, 5000);
	CHECK_EQ_STR(jmsg(j), "rate");
	CHECK_GE_INT(jint(j, "sent"), n + 1);
	CHECK_EQ_INT(jint(j, "dropped"), 0);
	CHECK(json_get(j, "events_per_sec") != NULL);
	json_free(d);
	buf_free(&m);
	httpc_ws_close(&ws);
	httpd_destroy(s);
}

TEST(httpd_stream_bad_query_and_not_websocket)
{
	struct httpd_opts o;
	th_opts(&o);
	o.stream_max_clients = 1;
	struct httpd *s = th_create(&o);
	th_start(s);
	char err[256];
	struct httpc_ws ws;
	CHECK_EQ_INT(httpc_ws_connect(&ws, "127.0.0.1", httpd_port(s, HTTPD_API),
				      "/api/v1/stream?type=nope", NULL, 5000, err, sizeof(err)),
		     -EPROTO);
	CHECK_CONTAINS(err, "400");
	CHECK_CONTAINS(err, "unknown event type");
	struct httpc_resp r;
	CHECK_EQ_INT(th_get(s, "/api/v1/stream", &r), 400);
	CHECK_CONTAINS(r.body.data, "WebSocket");
	httpc_resp_free(&r);
	/* Client limit. */
	struct httpc_ws w1, w2;
	CHECK_EQ_INT(httpc_ws_connect(&w1, "127.0.0.1", httpd_port(s, HTTPD_API),
				      "/api/v1/stream", NULL, 5000, err, sizeof(err)),
		     0);
	CHECK_EQ_INT(httpc_ws_connect(&w2, "127.0.0.1", httpd_port(s, HTTPD_API),
				      "/api/v1/stream", NULL, 5000, err, sizeof(err)),
		     -EPROTO);
	CHECK_CONTAINS(err, "503");
	httpc_ws_close(&w1);
	httpd_destroy(s);
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, rss = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

TEST_SLOW(httpd_stream_stalled_client_bounded, 120)
{
	struct httpd_opts o;
	th_opts(&o);
	o.stream_ring = 65536; /* 130 ms of headroom at 500k events/s on a busy machine */
	o.stream_client_queue = 256;
	struct httpd *s = th_create(&o);
	th_start(s);
	char err[256];
	struct httpc_ws slow, fast;
	CHECK_EQ_INT(httpc_ws_connect(&slow, "127.0.0.1", httpd_port(s, HTTPD_API),
				      "/api/v1/stream", NULL, 5000, err, sizeof(err)),
		     0);
	struct json *j;
	struct json_doc *d = recv_json(&slow, &j, 5000);
	json_free(d);
	/* A second, healthy client with a narrow filter keeps up the whole time. */
	CHECK_EQ_INT(httpc_ws_connect(&fast, "127.0.0.1", httpd_port(s, HTTPD_API),
				      "/api/v1/stream?type=fsync&pid=121", NULL, 5000, err,
				      sizeof(err)),
		     0);
	d = recv_json(&fast, &j, 5000);
	json_free(d);

	long rss0 = rss_kb();
	/* The slow client never reads while 600k events (~120 MB of JSON) go by, at ~500k/s. */
	uint64_t N = 600000;
	struct pub_arg a = {s, 0, N, 1000, 2000, 0, 0};
	pthread_t t;
	uint64_t t0 = now_mono_ns();
	pthread_create(&t, NULL, publisher, &a);
	uint64_t fast_got = 0, fast_want = 0;
	int64_t last_match = -1;
	for (uint64_t i = 0; i < N; i++) {
		struct kp_event e;
		make_event(&e, i);
		if (e.type == KP_FSYNC && e.pid == 121) {
			fast_want++;
			last_match = (int64_t)i;
		}
	}
	int64_t last = -1;
	uint64_t fast_dropped = 0;
	while (fast_got + fast_dropped < fast_want) {
		d = recv_json(&fast, &j, 10000);
		if (jmsg(j)) {
			CHECK_EQ_STR(jmsg(j), "dropped");
			fast_dropped += (uint64_t)jint(j, "count");
		} else {
			CHECK_GT_INT(jint(j, "ts"), last);
			last = jint(j, "ts");
			fast_got++;
		}
		json_free(d);
		if (last == last_match)
			break;
	}
	pthread_join(t, NULL);
	uint64_t took = now_mono_ns() - t0;
	long rss1 = rss_kb();
	kt_note("published %llu events in %.0f ms (longest call %.2f ms); rss %ld -> %ld KiB; "
		"fast client got %llu, lost %llu",
		(unsigned long long)N, took / 1e6, a.max_call_ns / 1e6, rss0, rss1,
		(unsigned long long)fast_got, (unsigned long long)fast_dropped);
	CHECK_EQ_INT(a.accepted, N);
	CHECK_LT_INT(a.max_call_ns, 500 * NSEC_PER_MSEC);
	CHECK_LT_INT(rss1 - rss0, 40 * 1024);
	/* The stalled client does not starve the healthy one. */
	CHECK_GE_INT(fast_got * 2, fast_want);

	/* The slow client's losses are counted ... */
	struct httpc_resp r;
	CHECK_EQ_INT(th_get(s, "/metrics", &r), 200);
	const char *p = strstr(r.body.data, "\nkprobe_ws_messages_dropped_total ");
	CHECK(p != NULL);
	long long dropped = atoll(p + strlen("\nkprobe_ws_messages_dropped_total "));
	CHECK_GT_INT(dropped, (long long)N / 2);
	httpc_resp_free(&r);
	/* ... and it is told once it reads again: first what was queued, then a "dropped". */
	bool told = false;
	for (int i = 0; i < 500000 && !told; i++) { /* kernel buffers hold ~20k+ */
		struct kp_buf m = {0};
		int op;
		int rc = httpc_ws_recv(&slow, &op, &m, 1 << 20, 5000);
		CHECKF(rc == 1, "slow client recv %d after %d messages", rc, i);
		told = strstr(m.data, "\"msg\":\"dropped\"") != NULL;
		buf_free(&m);
	}
	CHECK(told);
	httpc_ws_close(&slow);
	httpc_ws_close(&fast);
	httpd_destroy(s);
}
