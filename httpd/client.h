/*
 * client.h - a small blocking HTTP/1.1 client (for `kprobe query` and the tests) and a minimal
 * WebSocket client (for the tests): plain TCP to host:port, one request per connection,
 * bounded responses, timeouts on every wait. No TLS.
 *
 *     struct httpc_resp r;
 *     struct httpc_req q = {.method = "POST", .path = "/api/v1/query", .body = sql,
 *                           .body_len = strlen(sql),
 *                           .headers = (const char *[]){"Content-Type: text/plain", NULL}};
 *     if (httpc_request("127.0.0.1", 8080, &q, &r, err, sizeof(err)) == 0) { ...r.status,
 *         r.body.data...; httpc_resp_free(&r); }
 *
 * Errors are negative errno values with a message in err: -ECONNREFUSED, -ETIMEDOUT, -EPROTO
 * (a malformed response), -EFBIG (response larger than max_body).
 */
#ifndef KP_HTTPD_CLIENT_H
#define KP_HTTPD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

struct httpc_req {
	const char *method;          /* default "GET" */
	const char *path;            /* "/api/v1/query?x=1" (sent as is) */
	const char *const *headers;  /* "Name: value" lines, NULL terminated; may be NULL */
	const char *body;            /* may be NULL */
	size_t body_len;
	bool chunked;                /* send the body as Transfer-Encoding: chunked */
	size_t chunk_size;           /* chunk size when chunked (default 1000) */
	size_t max_body;             /* response body bound, default 64 MiB */
	int timeout_ms;              /* whole exchange, default 10000 */
};

struct httpc_resp {
	int status;
	struct kp_buf head; /* status line and headers as received, NUL terminated */
	struct kp_buf body; /* decoded (de-chunked) body, NUL terminated */
};

/* Connects (with timeout) to host:port; returns the fd (blocking, CLOEXEC) or -errno. */
int httpc_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen);

/* One request, one response, the connection closed after. 0 or -errno. */
int httpc_request(const char *host, int port, const struct httpc_req *req,
		  struct httpc_resp *out, char *err, size_t errlen);

/* A response header's value (case-insensitive name) copied into buf, or NULL. */
const char *httpc_resp_header(const struct httpc_resp *r, const char *name, char *buf,
			      size_t buflen);

void httpc_resp_free(struct httpc_resp *r);

/* ------------------------------------------------------------------ WebSocket */

struct httpc_ws {
	int fd;
	struct kp_buf in; /* bytes received, not yet parsed */
	char *head;       /* the 101 response head */
};

/* Opens a WebSocket (handshake checked, Sec-WebSocket-Accept verified). 0 or -errno; a refused
 * upgrade gives -EPROTO with the status and body in err. */
int httpc_ws_connect(struct httpc_ws *ws, const char *host, int port, const char *path,
		     const char *const *headers, int timeout_ms, char *err, size_t errlen);

/* Sends one masked text message. 0 or -errno. */
int httpc_ws_send_text(struct httpc_ws *ws, const char *text, size_t len);

/* Sends one raw frame (tests of malformed traffic): any opcode, FIN bit, masked or not,
 * rsv bits (0..7). 0 or -errno. */
int httpc_ws_send_frame(struct httpc_ws *ws, int opcode, bool fin, unsigned rsv,
			const void *payload, size_t len, bool mask);

/*
 * Receives one whole message (fragments joined, pings answered). Returns 1 with *opcode (1 text,
 * 2 binary, 8 close) and the payload in msg (replaced, NUL terminated), 0 on timeout, or -errno
 * (-ECONNRESET when the peer closed the TCP connection, -EPROTO on a malformed frame, -EFBIG
 * past max_len).
 */
int httpc_ws_recv(struct httpc_ws *ws, int *opcode, struct kp_buf *msg, size_t max_len,
		  int timeout_ms);

void httpc_ws_close(struct httpc_ws *ws);

#endif
