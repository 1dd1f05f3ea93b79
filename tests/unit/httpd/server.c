/*
 * Tests httpd/server.c against a real server on loopback: routes, methods, params, bodies
 * (plain, chunked, gzip), 413/404/405/415, auth, /healthz, /metrics, slow handlers and
 * deadlines, start/stop without leaking descriptors.
 */
#include <pthread.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/json.h"
#include "tests/unit/httpd/helpers.h"

/* Echoes what the handler saw, as JSON. */
static void h_echo(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct kp_buf *b = &resp->body;
	buf_puts(b, "{\"method\":");
	json_cstr(b, req->method);
	buf_puts(b, ",\"path\":");
	json_cstr(b, req->path);
	buf_puts(b, ",\"rest\":");
	json_cstr(b, req->rest);
	buf_puts(b, ",\"query\":");
	json_cstr(b, req->query);
	buf_puts(b, ",\"params\":{");
	for (size_t i = 0; i < req->n_params; i++) {
		buf_puts(b, i ? "," : "");
		json_cstr(b, req->params[i].name);
		buf_puts(b, ":");
		json_cstr(b, req->params[i].value);
	}
	buf_printf(b, "},\"body_len\":%zu,\"body\":", req->body_len);
	json_str(b, req->body, req->body_len);
	const char *xt = httpd_req_header(req, "X-Test");
	buf_puts(b, ",\"x_test\":");
	json_cstr(b, xt ? xt : "");
	buf_printf(b, ",\"ctx\":%d}", ctx ? *(int *)ctx : -1);
	httpd_resp_header(resp, "X-Echo", "yes");
}

static int ctx_a = 1, ctx_b = 2;

static struct json_doc *parse(const struct httpc_resp *r, struct json **root)
{
	char err[128];
	size_t pos;
	struct json_doc *d = json_parse(r->body.data, r->body.len, root, err, sizeof(err), &pos);
	CHECKF(d != NULL, "bad JSON (%s at %zu): %s", err, pos, r->body.data);
	return d;
}

static const char *jstr(const struct json *o, const char *k)
{
	const struct json *v = json_get(o, k);
	return v && v->type == JSON_STR ? v->u.str.s : "(missing)";
}

TEST(httpd_routes_params_methods)
{
	struct httpd_opts o;
	th_opts(&o);
	struct httpd *s = th_create(&o);
	CHECK_EQ_INT(httpd_route(s, HTTPD_API, "GET", "/api/v1/echo", 0, 1024, h_echo, &ctx_a), 0);
	CHECK_EQ_INT(httpd_route(s, HTTPD_API, "POST", "/api/v1/echo", 0, 1024, h_echo, &ctx_b),
		     0);
	CHECK_EQ_INT(httpd_route(s, HTTPD_API, "GET", "/api/v1/graph/", HTTPD_ROUTE_PREFIX, 0,
				 h_echo, &ctx_a),
		     0);
	CHECK_EQ_INT(httpd_route(s, HTTPD_API, "GET", "/api/v1/graph/special", 0, 0, h_echo,
				 &ctx_b),
		     0);
	CHECK_EQ_INT(httpd_route(s, HTTPD_API, "GET", "/api/v1/echo", 0, 1024, h_echo, NULL),
		     -EEXIST);
	CHECK_EQ_INT(httpd_route(s, HTTPD_OTLP, "POST", "/v1/traces", 0, 1024, h_echo, &ctx_b), 0);
	th_start(s);
	CHECK_EQ_INT(httpd_route(s, HTTPD_API, "GET", "/late", 0, 0, h_echo, NULL), -EBUSY);

	struct httpc_resp r;
	struct json *j;
	struct json_doc *d;

	/* Decoded params: percent escapes and '+'. */
	CHECK_EQ_INT(th_req(s, HTTPD_API, "GET", "/api/v1/echo?a=1&b=x%20y+z&c=%E2%82%AC&flag",
			    (const char *[]){"X-Test: hello", NULL}, NULL, 0, &r),
		     200);
	char hv[64];
	CHECK_EQ_STR(httpc_resp_header(&r, "x-echo", hv, sizeof(hv)), "yes");
	CHECK_CONTAINS(httpc_resp_header(&r, "content-type", hv, sizeof(hv)), "application/json");
	d = parse(&r, &j);
	CHECK_EQ_STR(jstr(j, "method"), "GET");
	CHECK_EQ_STR(jstr(j, "path"), "/api/v1/echo");
	CHECK_EQ_STR(jstr(json_get(j, "params"), "b"), "x y z");
	CHECK_EQ_STR(jstr(json_get(j, "params"), "c"), "\xe2\x82\xac");
	CHECK_EQ_STR(jstr(json_get(j, "params"), "flag"), "");
	CHECK_EQ_STR(jstr(j, "x_test"), "hello");
	int64_t ctx;
	CHECK_EQ_INT(json_int(json_get(j, "ctx"), &ctx), 0);
	CHECK_EQ_INT(ctx, 1);
	json_free(d);
	httpc_resp_free(&r);

	/* Same path, other method -> other handler. */
	CHECK_EQ_INT(th_req(s, HTTPD_API, "POST", "/api/v1/echo", NULL, "hi", 2, &r), 200);
	d = parse(&r, &j);
	CHECK_EQ_STR(jstr(j, "body"), "hi");
	CHECK_EQ_INT(json_int(json_get(j, "ctx"), &ctx), 0);
	CHECK_EQ_INT(ctx, 2);
	json_free(d);
	httpc_resp_free(&r);

	/* Unregistered method on a known path -> 405 JSON. */
	CHECK_EQ_INT(th_req(s, HTTPD_API, "DELETE", "/api/v1/echo", NULL, NULL, 0, &r), 405);
	CHECK_CONTAINS(r.body.data, "\"error\"");
	httpc_resp_free(&r);

	/* Prefix route, decoded rest; exact route beats the prefix. */
	CHECK_EQ_INT(th_get(s, "/api/v1/graph/req-9f21%2Fx", &r), 200);
	d = parse(&r, &j);
	CHECK_EQ_STR(jstr(j, "rest"), "req-9f21/x");
	json_free(d);
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_get(s, "/api/v1/graph/special", &r), 200);
	d = parse(&r, &j);
	CHECK_EQ_INT(json_int(json_get(j, "ctx"), &ctx), 0);
	CHECK_EQ_INT(ctx, 2);
	json_free(d);
	httpc_resp_free(&r);

	/* HEAD on a GET route: headers, no body. */
	CHECK_EQ_INT(th_req(s, HTTPD_API, "HEAD", "/api/v1/echo", NULL, NULL, 0, &r), 200);
	CHECK_EQ_INT(r.body.len, 0);
	httpc_resp_free(&r);

	/* Unknown API path -> 404 JSON naming the path. */
	CHECK_EQ_INT(th_get(s, "/api/v1/nope", &r), 404);
	CHECK_CONTAINS(r.body.data, "/api/v1/nope");
	CHECK_CONTAINS(httpc_resp_header(&r, "content-type", hv, sizeof(hv)), "application/json");
	httpc_resp_free(&r);

	/* Separate route tables: the OTLP port has /v1/traces and not the API routes. */
	CHECK_EQ_INT(th_req(s, HTTPD_OTLP, "POST", "/v1/traces", NULL, "{}", 2, &r), 200);
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_req(s, HTTPD_OTLP, "GET", "/api/v1/echo", NULL, NULL, 0, &r), 404);
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_req(s, HTTPD_API, "POST", "/v1/traces", NULL, "{}", 2, &r), 404);
	httpc_resp_free(&r);

	httpd_destroy(s);
}

static void h_len(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	/* The body is NUL terminated and checksummed so tests can compare exactly. */
	CHECK(req->body[req->body_len] == 0);
	buf_printf(&resp->body, "{\"len\":%zu,\"crc\":%lu}", req->body_len,
		   crc32(0, (const Bytef *)req->body, (uInt)req->body_len));
}

static size_t gzip_buf(const char *in, size_t n, char **out)
{
	z_stream zs = {0};
	CHECK_EQ_INT(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
		     Z_OK);
	size_t cap = deflateBound(&zs, n);
	*out = malloc(cap);
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)n;
	zs.next_out = (Bytef *)*out;
	zs.avail_out = (uInt)cap;
	CHECK_EQ_INT(deflate(&zs, Z_FINISH), Z_STREAM_END);
	size_t len = zs.total_out;
	deflateEnd(&zs);
	return len;
}

TEST(httpd_bodies_plain_chunked_gzip_413)
{
	struct httpd_opts o;
	th_opts(&o);
	struct httpd *s = th_create(&o);
	httpd_route(s, HTTPD_API, "POST", "/small", 0, 100, h_len, NULL);
	httpd_route(s, HTTPD_API, "POST", "/big", HTTPD_ROUTE_GZIP, 1 << 20, h_len, NULL);
	httpd_route(s, HTTPD_API, "POST", "/big-slow", HTTPD_ROUTE_GZIP | HTTPD_ROUTE_SLOW, 1 << 20,
		    h_len, NULL);
	th_start(s);
	int port = httpd_port(s, HTTPD_API);
	char err[256];
	struct httpc_resp r;

	size_t n = 700000;
	char *body = malloc(n);
	for (size_t i = 0; i < n; i++)
		body[i] = (char)('a' + (i * 7 + i / 13) % 26);
	unsigned long crc = crc32(0, (const Bytef *)body, (uInt)n);
	char want[64];
	snprintf(want, sizeof(want), "{\"len\":%zu,\"crc\":%lu}", n, crc);

	/* Plain. */
	struct httpc_req q = {.method = "POST", .path = "/big", .body = body, .body_len = n};
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &q, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK_EQ_STR(r.body.data, want);
	httpc_resp_free(&r);

	/* Chunked, in odd sizes. */
	q.chunked = true;
	q.chunk_size = 4093;
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &q, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK_EQ_STR(r.body.data, want);
	httpc_resp_free(&r);

	/* Gzip, chunked and not, on the loop and on a worker. */
	char *gz;
	size_t gzl = gzip_buf(body, n, &gz);
	const char *gzh[] = {"Content-Encoding: gzip", NULL};
	for (int slow = 0; slow < 2; slow++)
		for (int ch = 0; ch < 2; ch++) {
			struct httpc_req g = {.method = "POST", .path = slow ? "/big-slow" : "/big",
					      .headers = gzh, .body = gz, .body_len = gzl,
					      .chunked = ch, .chunk_size = 777};
			CHECK_EQ_INT(httpc_request("127.0.0.1", port, &g, &r, err, sizeof(err)), 0);
			CHECKF(r.status == 200, "slow=%d chunked=%d: %d %s", slow, ch, r.status,
			       r.body.data);
			CHECK_EQ_STR(r.body.data, want);
			httpc_resp_free(&r);
		}

	/* Gzip on a route that does not allow it -> 415. */
	struct httpc_req g = {.method = "POST", .path = "/small", .headers = gzh, .body = gz,
			      .body_len = 50};
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &g, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 415);
	httpc_resp_free(&r);

	/* A gzip bomb: small compressed, over the limit decompressed -> 413. */
	size_t bn = 8 << 20;
	char *zeros = calloc(1, bn);
	char *bomb;
	size_t bl = gzip_buf(zeros, bn, &bomb);
	CHECK_LT_INT(bl, 1 << 20);
	g = (struct httpc_req){.method = "POST", .path = "/big", .headers = gzh, .body = bomb,
			       .body_len = bl};
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &g, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 413);
	CHECK_CONTAINS(r.body.data, "decompression");
	httpc_resp_free(&r);

	/* Corrupt and truncated gzip -> 400 with a position. */
	gz[gzl / 2] ^= 0x55;
	gz[gzl / 2 + 1] ^= 0x33;
	g = (struct httpc_req){.method = "POST", .path = "/big", .headers = gzh, .body = gz,
			       .body_len = gzl};
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &g, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 400);
	CHECK_CONTAINS(r.body.data, "gzip");
	httpc_resp_free(&r);
	g.body_len = gzl / 3;
	gz[gzl / 2] ^= 0x55;
	gz[gzl / 2 + 1] ^= 0x33;
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &g, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 400);
	CHECK_CONTAINS(r.body.data, "truncated");
	CHECK_CONTAINS(r.body.data, "\"position\"");
	httpc_resp_free(&r);

	/* Per-route bound: 101 bytes on a 100-byte route -> 413, plain and chunked. */
	q = (struct httpc_req){.method = "POST", .path = "/small", .body = body, .body_len = 101};
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &q, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 413);
	httpc_resp_free(&r);
	q.chunked = true;
	q.chunk_size = 10;
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &q, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 413);
	httpc_resp_free(&r);
	q = (struct httpc_req){.method = "POST", .path = "/small", .body = body, .body_len = 100};
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &q, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 200);
	httpc_resp_free(&r);

	/* Past the largest route bound, h2o itself refuses (Content-Length checked first). */
	size_t huge = (1 << 20) + 1;
	char *hb = calloc(1, huge);
	q = (struct httpc_req){.method = "POST", .path = "/big", .body = hb, .body_len = huge};
	CHECK_EQ_INT(httpc_request("127.0.0.1", port, &q, &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.status, 413);
	httpc_resp_free(&r);

	free(hb);
	free(zeros);
	free(bomb);
	free(gz);
	free(body);
	httpd_destroy(s);
}

TEST(httpd_auth_bearer)
{
	struct httpd_opts o;
	th_opts(&o);
	o.auth_enabled = true;
	const char *toks[] = {"s3cret-token", "second"};
	o.tokens = toks;
	o.n_tokens = 2;
	struct httpd *s = th_create(&o);
	httpd_route(s, HTTPD_API, "GET", "/api/v1/echo", 0, 0, h_echo, &ctx_a);
	httpd_route(s, HTTPD_OTLP, "POST", "/v1/traces", 0, 100, h_echo, &ctx_a);
	th_start(s);
	struct httpc_resp r;
	char hv[128];

	CHECK_EQ_INT(th_get(s, "/api/v1/echo", &r), 401);
	CHECK_CONTAINS(httpc_resp_header(&r, "www-authenticate", hv, sizeof(hv)), "Bearer");
	CHECK_CONTAINS(r.body.data, "\"error\"");
	httpc_resp_free(&r);
	const char *bad[] = {"Authorization: Bearer s3cret-toke", NULL};
	CHECK_EQ_INT(th_req(s, HTTPD_API, "GET", "/api/v1/echo", bad, NULL, 0, &r), 401);
	httpc_resp_free(&r);
	const char *bad2[] = {"Authorization: Basic czNjcmV0LXRva2Vu", NULL};
	CHECK_EQ_INT(th_req(s, HTTPD_API, "GET", "/api/v1/echo", bad2, NULL, 0, &r), 401);
	httpc_resp_free(&r);
	const char *bad3[] = {"Authorization: Bearer ", NULL};
	CHECK_EQ_INT(th_req(s, HTTPD_API, "GET", "/api/v1/echo", bad3, NULL, 0, &r), 401);
	httpc_resp_free(&r);
	const char *good[] = {"Authorization: Bearer s3cret-token", NULL};
	CHECK_EQ_INT(th_req(s, HTTPD_API, "GET", "/api/v1/echo", good, NULL, 0, &r), 200);
	httpc_resp_free(&r);
	const char *good2[] = {"authorization: bearer second", NULL};
	CHECK_EQ_INT(th_req(s, HTTPD_API, "GET", "/api/v1/echo", good2, NULL, 0, &r), 200);
	httpc_resp_free(&r);
	/* /healthz needs no token, /metrics does, unknown paths say 401 not 404. */
	CHECK_EQ_INT(th_get(s, "/healthz", &r), 200);
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_get(s, "/metrics", &r), 401);
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_req(s, HTTPD_API, "GET", "/metrics", good, NULL, 0, &r), 200);
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_get(s, "/api/v1/whatever", &r), 401);
	httpc_resp_free(&r);
	/* The live stream: header, or ?access_token= (browsers cannot set WebSocket headers). */
	struct httpc_ws ws;
	char err[256];
	int port = httpd_port(s, HTTPD_API);
	CHECK_EQ_INT(httpc_ws_connect(&ws, "127.0.0.1", port, "/api/v1/stream", NULL, 3000, err,
				      sizeof(err)),
		     -EPROTO);
	CHECK_CONTAINS(err, "401");
	CHECK_EQ_INT(httpc_ws_connect(&ws, "127.0.0.1", port, "/api/v1/stream?access_token=nope",
				      NULL, 3000, err, sizeof(err)),
		     -EPROTO);
	CHECK_EQ_INT(httpc_ws_connect(&ws, "127.0.0.1", port,
				      "/api/v1/stream?type=write&access_token=s3cret%2Dtoken", NULL,
				      3000, err, sizeof(err)),
		     0);
	httpc_ws_close(&ws);
	CHECK_EQ_INT(httpc_ws_connect(&ws, "127.0.0.1", port, "/api/v1/stream", good, 3000, err,
				      sizeof(err)),
		     0);
	httpc_ws_close(&ws);
	/* The OTLP port is not behind api.auth. */
	CHECK_EQ_INT(th_req(s, HTTPD_OTLP, "POST", "/v1/traces", NULL, "{}", 2, &r), 200);
	httpc_resp_free(&r);
	httpd_destroy(s);

	/* With the dashboard installed, its files load without a token (the page asks for one);
	 * the API, the stream and /metrics behind it still need it. */
	char dist[1024], p[1100];
	snprintf(dist, sizeof(dist), "%s/dist", kt_tmpdir());
	CHECK_EQ_INT(mkdir(dist, 0755), 0);
	snprintf(p, sizeof(p), "%s/index.html", dist);
	FILE *f = fopen(p, "w");
	CHECK(f != NULL);
	fputs("<div id=\"root\"></div>", f);
	fclose(f);
	o.static_dir = dist;
	s = th_create(&o);
	httpd_route(s, HTTPD_API, "GET", "/api/v1/echo", 0, 0, h_echo, &ctx_a);
	th_start(s);
	CHECK_EQ_INT(th_get(s, "/", &r), 200);
	CHECK_CONTAINS(r.body.data, "root");
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_get(s, "/txn/pay-00017", &r), 200); /* SPA route -> index.html */
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_get(s, "/api/v1/echo", &r), 401);
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_get(s, "/api/v1/unknown", &r), 401);
	httpc_resp_free(&r);
	CHECK_EQ_INT(th_get(s, "/metrics", &r), 401);
	httpc_resp_free(&r);
	CHECK_EQ_INT(httpc_ws_connect(&ws, "127.0.0.1", httpd_port(s, HTTPD_API), "/api/v1/stream",
				      NULL, 3000, err, sizeof(err)),
		     -EPROTO);
	httpd_destroy(s);
	o.static_dir = NULL;

	/* Enabled without tokens is a configuration error. */
	o.n_tokens = 0;
	struct httpd *s2 = NULL;
	CHECK_EQ_INT(httpd_create(&o, &s2, err, sizeof(err)), -EINVAL);
	CHECK_CONTAINS(err, "api.auth.tokens");
}

TEST(httpd_healthz_and_metrics_format)
{
	struct httpd_opts o;
	th_opts(&o);
	struct httpd *s = th_create(&o);
	httpd_route(s, HTTPD_API, "GET", "/api/v1/echo", 0, 0, h_echo, &ctx_a);
	th_start(s);
	struct httpc_resp r;
	CHECK_EQ_INT(th_get(s, "/healthz", &r), 200);
	struct json *j;
	struct json_doc *d = parse(&r, &j);
	CHECK_EQ_STR(jstr(j, "status"), "ok");
	CHECK(json_get(j, "uptime_sec") && json_get(j, "uptime_sec")->type == JSON_NUM);
	json_free(d);
	httpc_resp_free(&r);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(th_get(s, "/api/v1/echo", &r), 200);
		httpc_resp_free(&r);
	}
	CHECK_EQ_INT(th_get(s, "/api/v1/missing", &r), 404);
	httpc_resp_free(&r);

	CHECK_EQ_INT(th_get(s, "/metrics", &r), 200);
	char hv[128];
	CHECK_CONTAINS(httpc_resp_header(&r, "content-type", hv, sizeof(hv)), "text/plain");
	CHECK_CONTAINS(hv, "version=0.0.4");
	const char *m = r.body.data;
	CHECK_CONTAINS(m, "# TYPE kprobe_http_requests_total counter");
	CHECK_CONTAINS(m, "kprobe_http_requests_total{route=\"/api/v1/echo\",code=\"200\"} 3");
	CHECK_CONTAINS(m, "kprobe_http_requests_total{route=\"unmatched\",code=\"404\"} 1");
	CHECK_CONTAINS(m, "# TYPE kprobe_http_request_duration_seconds histogram");
	CHECK_CONTAINS(m, "kprobe_http_request_duration_seconds_bucket{route=\"/api/v1/echo\","
			  "le=\"+Inf\"} 3");
	CHECK_CONTAINS(m, "kprobe_http_request_duration_seconds_count{route=\"/api/v1/echo\"} 3");
	CHECK_CONTAINS(m, "# TYPE kprobe_ws_clients gauge");
	CHECK_CONTAINS(m, "kprobe_ws_messages_dropped_total");
	/* Every line is a comment or "name{labels} value" with a number value. */
	int lines = 0;
	for (const char *p = m; *p;) {
		const char *e = strchr(p, '\n');
		CHECKF(e != NULL, "last line not terminated: %s", p);
		size_t l = (size_t)(e - p);
		char line[1024];
		CHECK(l < sizeof(line));
		memcpy(line, p, l);
		line[l] = 0;
		if (line[0] == '#') {
			CHECKF(!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7), "%.200s",
			       line);
		} else {
			const char *sp = strrchr(line, ' ');
			CHECKF(sp != NULL, "%.200s", line);
			char *end;
			strtod(sp + 1, &end);
			CHECKF(*end == 0 || !strcmp(sp + 1, "+Inf") || !strcmp(sp + 1, "NaN"),
			       "bad value: %.200s", line);
			CHECKF((line[0] >= 'a' && line[0] <= 'z') || line[0] == '_', "%.200s", line);
			lines++;
		}
		p = e + 1;
	}
	CHECK_GT_INT(lines, 10);
	httpc_resp_free(&r);
	httpd_destroy(s);
}

/* ------------------------------------------------------------------ slow handlers */

static void h_slow(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	const char *ms = httpd_req_param(req, "ms");
	uint64_t until = now_mono_ns() + (uint64_t)atoi(ms ? ms : "500") * NSEC_PER_MSEC;
	while (now_mono_ns() < until && !httpd_req_expired(req))
		usleep(1000);
	buf_printf(&resp->body, "{\"expired\":%s}", httpd_req_expired(req) ? "true" : "false");
}

struct slow_arg {
	struct httpd *s;
	const char *path;
	int status;
	uint64_t took_ns;
};

static void *slow_thread(void *p)
{
	struct slow_arg *a = p;
	struct httpc_resp r;
	uint64_t t0 = now_mono_ns();
	a->status = th_get(a->s, a->path, &r);
	a->took_ns = now_mono_ns() - t0;
	if (a->status > 0)
		httpc_resp_free(&r);
	return NULL;
}

TEST(httpd_slow_handler_does_not_block_loop)
{
	struct httpd_opts o;
	th_opts(&o);
	o.deadline_ms = 2000;
	struct httpd *s = th_create(&o);
	httpd_route(s, HTTPD_API, "GET", "/api/v1/slow", HTTPD_ROUTE_SLOW, 0, h_slow, NULL);
	httpd_route(s, HTTPD_API, "GET", "/api/v1/fast", 0, 0, h_echo, &ctx_a);
	th_start(s);

	struct slow_arg a = {s, "/api/v1/slow?ms=800", 0, 0};
	pthread_t t;
	pthread_create(&t, NULL, slow_thread, &a);
	usleep(100 * 1000); /* the slow request is running on a worker */
	struct httpc_resp r;
	uint64_t t0 = now_mono_ns();
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_INT(th_get(s, "/api/v1/fast", &r), 200);
		httpc_resp_free(&r);
	}
	uint64_t fast = now_mono_ns() - t0;
	pthread_join(t, NULL);
	CHECK_EQ_INT(a.status, 200);
	kt_note("5 fast requests took %.1f ms while a slow one (%.0f ms) ran", fast / 1e6,
		a.took_ns / 1e6);
	CHECK_LT_INT(fast, 400 * NSEC_PER_MSEC);
	CHECK_GE_INT(a.took_ns, 750 * NSEC_PER_MSEC);
	httpd_destroy(s);
}

TEST(httpd_slow_handler_deadline_504)
{
	struct httpd_opts o;
	th_opts(&o);
	o.deadline_ms = 300;
	o.workers = 1;
	struct httpd *s = th_create(&o);
	httpd_route(s, HTTPD_API, "GET", "/api/v1/slow", HTTPD_ROUTE_SLOW, 0, h_slow, NULL);
	th_start(s);
	struct httpc_resp r;
	uint64_t t0 = now_mono_ns();
	CHECK_EQ_INT(th_get(s, "/api/v1/slow?ms=5000", &r), 504);
	uint64_t took = now_mono_ns() - t0;
	CHECK_CONTAINS(r.body.data, "timed out");
	httpc_resp_free(&r);
	CHECK_LT_INT(took, 2 * NSEC_PER_SEC);
	/* The worker saw the deadline and is free again. */
	CHECK_EQ_INT(th_get(s, "/api/v1/slow?ms=10", &r), 200);
	CHECK_CONTAINS(r.body.data, "false");
	httpc_resp_free(&r);
	httpd_destroy(s);
}

TEST(httpd_stop_with_slow_request_in_flight)
{
	struct httpd_opts o;
	th_opts(&o);
	o.deadline_ms = 60000;
	o.workers = 1;
	struct httpd *s = th_create(&o);
	httpd_route(s, HTTPD_API, "GET", "/api/v1/slow", HTTPD_ROUTE_SLOW, 0, h_slow, NULL);
	th_start(s);
	struct slow_arg a[3] = {{s, "/api/v1/slow?ms=30000", 0, 0},
				{s, "/api/v1/slow?ms=30000", 0, 0},
				{s, "/api/v1/slow?ms=30000", 0, 0}};
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, slow_thread, &a[i]);
	usleep(200 * 1000);
	uint64_t t0 = now_mono_ns();
	httpd_stop(s);
	uint64_t took = now_mono_ns() - t0;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	kt_note("stop with 1 running + 2 queued slow requests took %.1f ms", took / 1e6);
	CHECK_LT_INT(took, 3 * NSEC_PER_SEC);
	/* Each client got an answer or a closed connection, not a hang. */
	for (int i = 0; i < 3; i++)
		CHECKF(a[i].took_ns < 5 * NSEC_PER_SEC, "client %d waited %.1f s", i,
		       a[i].took_ns / 1e9);
	httpd_destroy(s);
}

TEST_SLOW(httpd_start_stop_50_no_fd_leak, 120)
{
	/* Warm up once: libraries open what they keep (e.g. /dev/urandom) on first use. */
	struct httpd_opts o;
	th_opts(&o);
	struct httpd *s = th_create(&o);
	th_start(s);
	struct httpc_resp r;
	CHECK_EQ_INT(th_get(s, "/healthz", &r), 200);
	httpc_resp_free(&r);
	httpd_destroy(s);
	int before = th_count_fds();
	for (int i = 0; i < 50; i++) {
		s = th_create(&o);
		httpd_route(s, HTTPD_API, "GET", "/api/v1/slow", HTTPD_ROUTE_SLOW, 0, h_slow, NULL);
		th_start(s);
		CHECK_EQ_INT(th_get(s, "/healthz", &r), 200);
		httpc_resp_free(&r);
		/* Leave an idle keep-alive connection and a half-sent request open. */
		char err[128];
		int fd1 = httpc_connect("127.0.0.1", httpd_port(s, HTTPD_API), 1000, err,
					sizeof(err));
		int fd2 = httpc_connect("127.0.0.1", httpd_port(s, HTTPD_API), 1000, err,
					sizeof(err));
		CHECK(fd1 >= 0 && fd2 >= 0);
		CHECK(write(fd1, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 34) == 34);
		CHECK(write(fd2, "GET /healthz HTTP/1.1\r\nHo", 25) == 25);
		usleep(2000);
		httpd_destroy(s);
		close(fd1);
		close(fd2);
	}
	int after = th_count_fds();
	kt_note("open fds before %d, after 50 start/stop cycles %d", before, after);
	CHECK_EQ_INT(after, before);
}
