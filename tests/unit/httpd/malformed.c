/*
 * Tests that bad input never takes the server down: raw malformed HTTP (request lines, huge
 * headers, bad chunked encoding, truncated bodies, slowloris), malformed WebSocket frames (bad
 * opcodes, oversize, unmasked, fragmentation abuse, long control frames), and a fuzz-ish run of
 * a few thousand random and mutated requests, after which /healthz must still answer.
 */
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "tests/unit/httpd/helpers.h"

static void h_ok(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	buf_printf(&resp->body, "{\"ok\":true,\"len\":%zu}", req->body_len);
}

static struct httpd *start(int req_timeout_ms)
{
	struct httpd_opts o;
	th_opts(&o);
	o.req_timeout_ms = (uint64_t)req_timeout_ms;
	struct httpd *s = th_create(&o);
	httpd_route(s, HTTPD_API, "POST", "/api/v1/post", HTTPD_ROUTE_GZIP, 4096, h_ok, NULL);
	httpd_route(s, HTTPD_API, "GET", "/api/v1/get", 0, 0, h_ok, NULL);
	th_start(s);
	return s;
}

/*
 * Writes raw bytes, half-closes if asked, and reads whatever comes back until EOF or timeout.
 * Returns the HTTP status of the first response line, 0 if the server closed without one, -1
 * on timeout with the connection still open.
 */
static int raw_exchange(struct httpd *s, const void *data, size_t len, bool shut_wr,
			int timeout_ms, char *out, size_t outlen)
{
	char err[128];
	int fd = httpc_connect("127.0.0.1", httpd_port(s, HTTPD_API), 2000, err, sizeof(err));
	CHECKF(fd >= 0, "%s", err);
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, (const char *)data + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the server may close early (e.g. 413, 400): fine */
		off += (size_t)w;
	}
	if (shut_wr)
		shutdown(fd, SHUT_WR);
	size_t got = 0;
	int closed = 0;
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
	while (now_mono_ns() < deadline) {
		struct pollfd p = {fd, POLLIN, 0};
		int ms = (int)((deadline - now_mono_ns()) / NSEC_PER_MSEC) + 1;
		if (poll(&p, 1, ms) <= 0)
			break;
		char tmp[4096];
		ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
		if (r <= 0) {
			closed = 1;
			break;
		}
		size_t c = KP_MIN((size_t)r, outlen - 1 - got);
		memcpy(out + got, tmp, c);
		got += c;
	}
	out[got] = 0;
	close(fd);
	int status = 0;
	if (sscanf(out, "HTTP/1.%*d %d", &status) == 1)
		return status;
	return closed ? 0 : -1;
}

static void healthy(struct httpd *s)
{
	struct httpc_resp r;
	int st = th_get(s, "/healthz", &r);
	CHECKF(st == 200, "/healthz answered %d", st);
	httpc_resp_free(&r);
}

TEST(httpd_malformed_http)
{
	struct httpd *s = start(500);
	char out[16384];
	struct {
		const char *name, *data;
		bool shut;
		int want; /* expected status; 0 = closed without answer acceptable; -2 = any */
	} cases[] = {
		{"garbage line", "HELLO THERE\r\n\r\n", false, 400},
		{"no version", "GET /\r\n\r\n", false, -2},
		{"bad version", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", false, -2},
		{"binary", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", true, -2},
		{"spaces", "   \r\n\r\n", false, -2},
		{"bad header", "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", false, 400},
		{"ctl in header", "GET /healthz HTTP/1.1\r\nHost: a\x01b\r\n\r\n", false, -2},
		{"bad content-length", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n"
				       "\r\n", false, -2},
		{"negative content-length", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nContent-Length: "
					    "-5\r\n\r\n", false, -2},
		{"huge content-length", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nContent-Length: "
					"99999999999999999999\r\n\r\n", false, -2},
		{"content-length over bound", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nContent-Length: "
					      "100000\r\n\r\nabc", false, 413},
		{"bad chunk size", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
				   "chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", false, -2},
		{"chunk size overflow", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
					"chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n", false, -2},
		{"chunks over bound", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
				      "chunked\r\n\r\n1000\r\n", false, -2},
		{"truncated body", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
				   "\r\nabc", true, -2},
		{"truncated chunked", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
				      "chunked\r\n\r\n5\r\nab", true, -2},
		{"bad gzip", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
			     "Content-Length: 5\r\n\r\nhello", false, 400},
		{"unknown encoding", "POST /api/v1/post HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\n"
				     "Content-Length: 5\r\n\r\nhello", false, 415},
		{"path without slash", "GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", false, -2},
		{"NUL in path", "GET /api/v1/get%00x HTTP/1.1\r\nHost: x\r\n\r\n", false, -2},
		{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false, -2},
		{"h2c upgrade", "GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nHTTP2-Settings: "
				"AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
		 false, 200},
		{"ws upgrade elsewhere", "GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
					 "Connection: Upgrade\r\nSec-WebSocket-Key: "
					 "dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", false, 200},
		{"ws bad key", "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			       "Connection: Upgrade\r\nSec-WebSocket-Key: short\r\n\r\n", false, 400},
		{"ws POST", "POST /api/v1/stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		 false, 405},
	};
	for (size_t i = 0; i < KP_ARRAY_SIZE(cases); i++) {
		int st = raw_exchange(s, cases[i].data, strlen(cases[i].data), cases[i].shut, 1500,
				      out, sizeof(out));
		kt_note("%-26s -> %d", cases[i].name, st);
		if (cases[i].want > 0)
			CHECKF(st == cases[i].want, "%s: got %d want %d: %.200s", cases[i].name, st,
			       cases[i].want, out);
		CHECKF(st == -1 || st == 0 || (st >= 100 && st < 600), "%s: %d", cases[i].name, st);
		healthy(s);
	}

	/* Huge request head (~1 MB of headers): refused or closed, never buffered forever. */
	struct kp_buf big = {0};
	buf_puts(&big, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 20000; i++)
		buf_printf(&big, "X-Pad-%d: %050d\r\n", i, i);
	buf_puts(&big, "\r\n");
	int st = raw_exchange(s, big.data, big.len, false, 3000, out, sizeof(out));
	kt_note("1 MB of headers -> %d", st);
	CHECK(st != 200);
	buf_free(&big);
	/* One enormous header line. */
	struct kp_buf line = {0};
	buf_puts(&line, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ");
	for (int i = 0; i < 600000; i++)
		buf_append(&line, "a", 1);
	buf_puts(&line, "\r\n\r\n");
	st = raw_exchange(s, line.data, line.len, false, 3000, out, sizeof(out));
	kt_note("600 kB header line -> %d", st);
	CHECK(st != 200);
	buf_free(&line);
	/* A very long path. */
	struct kp_buf lp = {0};
	buf_puts(&lp, "GET /api/v1/");
	for (int i = 0; i < 5000; i++)
		buf_append(&lp, "x", 1);
	buf_puts(&lp, " HTTP/1.1\r\nHost: x\r\n\r\n");
	st = raw_exchange(s, lp.data, lp.len, false, 2000, out, sizeof(out));
	CHECK(st == 414 || st == 404 || st == 400);
	buf_free(&lp);
	healthy(s);

	/* Many requests pipelined on one connection, one of them bad in the middle. */
	struct kp_buf pipe = {0};
	for (int i = 0; i < 50; i++)
		buf_puts(&pipe, "GET /api/v1/get HTTP/1.1\r\nHost: x\r\n\r\n");
	buf_puts(&pipe, "BROKEN\r\n\r\n");
	st = raw_exchange(s, pipe.data, pipe.len, false, 2000, out, sizeof(out));
	CHECK_EQ_INT(st, 200);
	buf_free(&pipe);
	healthy(s);
	httpd_destroy(s);
}

TEST(httpd_slowloris_closed)
{
	/* Request timeout 500 ms: a client dribbling its head must be cut off, and others served
	 * meanwhile. */
	struct httpd *s = start(500);
	char err[128];
	int fds[20];
	for (int i = 0; i < 20; i++) {
		fds[i] = httpc_connect("127.0.0.1", httpd_port(s, HTTPD_API), 2000, err,
				       sizeof(err));
		CHECK(fds[i] >= 0);
		CHECK(send(fds[i], "GET /healthz HTTP/1.1\r\nX-A: ", 28, MSG_NOSIGNAL) == 28);
	}
	uint64_t t0 = now_mono_ns();
	int closed = 0;
	for (int round = 0; round < 30 && closed < 20; round++) {
		healthy(s);
		for (int i = 0; i < 20; i++) {
			if (fds[i] < 0)
				continue;
			/* one byte every 100 ms keeps a naive server waiting forever */
			if (send(fds[i], "a", 1, MSG_NOSIGNAL) != 1) {
				close(fds[i]);
				fds[i] = -1;
				closed++;
				continue;
			}
			struct pollfd p = {fds[i], POLLIN, 0};
			if (poll(&p, 1, 0) > 0) {
				char b[512];
				if (recv(fds[i], b, sizeof(b), MSG_DONTWAIT) <= 0) {
					close(fds[i]);
					fds[i] = -1;
					closed++;
				}
			}
		}
		usleep(100 * 1000);
	}
	kt_note("%d of 20 slowloris connections closed after %.1f s", closed,
		(now_mono_ns() - t0) / 1e9);
	CHECK_EQ_INT(closed, 20);
	for (int i = 0; i < 20; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	healthy(s);
	httpd_destroy(s);
}

/* ------------------------------------------------------------------ WebSocket abuse */

static int ws_abuse(struct httpd *s, int opcode, bool fin, unsigned rsv, const void *p,
		    size_t len, bool mask, const char *then_text)
{
	char err[256];
	struct httpc_ws ws;
	CHECKF(httpc_ws_connect(&ws, "127.0.0.1", httpd_port(s, HTTPD_API), "/api/v1/stream",
				NULL, 5000, err, sizeof(err)) == 0,
	       "%s", err);
	struct kp_buf m = {0};
	int op = 0;
	CHECK_EQ_INT(httpc_ws_recv(&ws, &op, &m, 1 << 20, 5000), 1); /* subscribed */
	httpc_ws_send_frame(&ws, opcode, fin, rsv, p, len, mask);
	if (then_text)
		httpc_ws_send_frame(&ws, 1, true, 0, then_text, strlen(then_text), true);
	/* Expect a close frame, or the connection dropped, within 3 s. */
	int result = 0;
	for (int i = 0; i < 10; i++) {
		int rc = httpc_ws_recv(&ws, &op, &m, 1 << 20, 3000);
		if (rc == 1 && op == 8) {
			result = m.len >= 2 ? ((unsigned char)m.data[0] << 8) |
						      (unsigned char)m.data[1]
					    : 1005;
			break;
		}
		if (rc < 0) {
			result = -1; /* dropped */
			break;
		}
		if (rc == 0) {
			result = -2; /* still open, silent */
			break;
		}
	}
	buf_free(&m);
	httpc_ws_close(&ws);
	return result;
}

TEST(httpd_malformed_websocket)
{
	struct httpd_opts o;
	th_opts(&o);
	o.ws_max_message = 4096;
	struct httpd *s = th_create(&o);
	th_start(s);
	char big[70000];
	memset(big, 'a', sizeof(big));
	struct {
		const char *name;
		int opcode;
		bool fin;
		unsigned rsv;
		size_t len;
		bool mask;
		const char *then;
	} cases[] = {
		{"reserved opcode 3", 3, true, 0, 5, true, NULL},
		{"reserved control 0xb", 0xb, true, 0, 5, true, NULL},
		{"unmasked text", 1, true, 0, 5, false, NULL},
		{"rsv bits set", 1, true, 5, 5, true, NULL},
		{"oversize message", 1, true, 0, 70000, true, NULL},
		{"ping of 200 bytes", 9, true, 0, 200, true, NULL},
		{"fragmented ping", 9, false, 0, 5, true, NULL},
		{"continuation first", 0, true, 0, 5, true, NULL},
		{"text then text mid-fragment", 1, false, 0, 5, true, "{\"op\":\"rate\"}"},
		{"invalid utf-8", 1, true, 0, 0, true, NULL},
	};
	for (size_t i = 0; i < KP_ARRAY_SIZE(cases); i++) {
		const void *p = big;
		size_t len = cases[i].len;
		if (!strcmp(cases[i].name, "invalid utf-8")) {
			p = "\xff\xfe\xc0\x80";
			len = 4;
		}
		int r = ws_abuse(s, cases[i].opcode, cases[i].fin, cases[i].rsv, p, len,
				 cases[i].mask, cases[i].then);
		kt_note("%-28s -> %s %d", cases[i].name, r > 0 ? "close" : r == -1 ? "dropped"
										   : "open",
			r);
		CHECKF(r != -2, "%s: the connection stayed open", cases[i].name);
		healthy(s);
	}
	/* Fragmentation abuse: endless continuation frames past the message bound. */
	char err[256];
	struct httpc_ws ws;
	CHECK_EQ_INT(httpc_ws_connect(&ws, "127.0.0.1", httpd_port(s, HTTPD_API),
				      "/api/v1/stream", NULL, 5000, err, sizeof(err)),
		     0);
	httpc_ws_send_frame(&ws, 1, false, 0, big, 1000, true);
	int sent = 1;
	for (; sent < 200; sent++)
		if (httpc_ws_send_frame(&ws, 0, false, 0, big, 1000, true) < 0)
			break;
	struct kp_buf m = {0};
	int op = 0, rc;
	bool ended = false;
	for (int i = 0; i < 20 && !ended; i++) {
		rc = httpc_ws_recv(&ws, &op, &m, 1 << 20, 3000);
		ended = rc < 0 || (rc == 1 && op == 8);
		if (rc == 0)
			break;
	}
	kt_note("fragment flood: %d frames sent before the server %s", sent,
		ended ? "closed" : "did NOT close");
	CHECK(ended);
	buf_free(&m);
	httpc_ws_close(&ws);
	/* Abuse is counted. */
	struct httpc_resp r;
	CHECK_EQ_INT(th_get(s, "/metrics", &r), 200);
	const char *p = strstr(r.body.data, "\nkprobe_ws_protocol_errors_total ");
	CHECK(p);
	long long errs = atoll(p + strlen("\nkprobe_ws_protocol_errors_total "));
	kt_note("kprobe_ws_protocol_errors_total %lld", errs);
	CHECK_GE_INT(errs, 3);
	httpc_resp_free(&r);
	/* The stream still works. */
	CHECK_EQ_INT(httpc_ws_connect(&ws, "127.0.0.1", httpd_port(s, HTTPD_API),
				      "/api/v1/stream?type=write", NULL, 5000, err, sizeof(err)),
		     0);
	CHECK_EQ_INT(httpc_ws_recv(&ws, &op, &m, 1 << 20, 3000), 1);
	struct kp_event e = {.type = KP_WRITE, .pid = 7, .ts_ns = 99};
	CHECK_EQ_INT(httpd_stream_publish(s, &e, 1, NULL, NULL), 1);
	CHECK_EQ_INT(httpc_ws_recv(&ws, &op, &m, 1 << 20, 3000), 1);
	CHECK_CONTAINS(m.data, "\"ts\":99");
	buf_free(&m);
	httpc_ws_close(&ws);
	httpd_destroy(s);
}

/* ------------------------------------------------------------------ fuzz-ish */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

TEST_SLOW(httpd_fuzz_requests_then_healthy, 180)
{
	struct httpd *s = start(300);
	const char *seeds[] = {
		"GET /api/v1/get?a=1&b=%20 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /api/v1/post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /api/v1/post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
		"GET /api/v1/stream?type=write HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		"Sec-WebSocket-Version: 13\r\n\r\n\x81\x85\x01\x02\x03\x04zzzzz",
		"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n\r\n",
		"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
	};
	const char *tokens[] = {"\r\n", "%", "%00", "..", "/", "?", "&", "=", ":", " ",
				"Content-Length: 99999\r\n", "Transfer-Encoding: chunked\r\n",
				"\xff", "\0", "HTTP/1.1", "\r\n\r\n", "ffffffff\r\n"};
	int n = 2000, answered = 0, closed = 0, silent = 0;
	char out[4096];
	uint64_t t0 = now_mono_ns();
	for (int i = 0; i < n; i++) {
		const char *seed = seeds[rnd() % KP_ARRAY_SIZE(seeds)];
		char buf[2048];
		size_t len = strlen(seed);
		if (seed == seeds[3])
			len += 11; /* include the binary frame */
		memcpy(buf, seed, len);
		int muts = 1 + (int)(rnd() % 6);
		for (int k = 0; k < muts; k++) {
			size_t pos = len ? rnd() % len : 0;
			switch (rnd() % 5) {
			case 0: /* flip a byte */
				buf[pos] = (char)rnd();
				break;
			case 1: /* truncate */
				len = pos;
				break;
			case 2: { /* insert a token */
				const char *t = tokens[rnd() % KP_ARRAY_SIZE(tokens)];
				size_t tl = strlen(t) ? strlen(t) : 1;
				if (len + tl < sizeof(buf)) {
					memmove(buf + pos + tl, buf + pos, len - pos);
					memcpy(buf + pos, t, tl);
					len += tl;
				}
				break;
			}
			case 3: /* duplicate a span */
				if (len * 2 < sizeof(buf)) {
					memcpy(buf + len, buf, len);
					len *= 2;
				}
				break;
			default: /* random bytes */
				for (int b = 0; b < 8 && pos + b < len; b++)
					buf[pos + b] = (char)rnd();
			}
		}
		/* Mostly half-close (so truncated requests end); sometimes leave it hanging. */
		bool shut = rnd() % 4 != 0;
		int st = raw_exchange(s, buf, len, shut, shut ? 1000 : 50, out, sizeof(out));
		if (st > 0)
			answered++;
		else if (st == 0)
			closed++;
		else
			silent++;
		if (i % 500 == 499)
			healthy(s);
	}
	kt_note("%d mutated requests in %.1f s: %d answered, %d closed, %d left waiting", n,
		(now_mono_ns() - t0) / 1e9, answered, closed, silent);
	healthy(s);
	struct httpc_resp r;
	CHECK_EQ_INT(th_get(s, "/metrics", &r), 200);
	CHECK_CONTAINS(r.body.data, "kprobe_http_protocol_errors_total{status=\"400\"}");
	httpc_resp_free(&r);
	httpd_destroy(s);
}
