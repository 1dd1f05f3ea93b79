/*
 * client.c - blocking HTTP/1.1 and WebSocket client over plain TCP (see client.h). Every wait
 * is a poll() against one deadline for the whole exchange; every length from the peer is
 * bounded before use.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd/client.h"

#define HEAD_MAX (64 * 1024)

static int ms_left(uint64_t deadline)
{
	uint64_t now = now_mono_ns();
	if (now >= deadline)
		return 0;
	uint64_t ms = (deadline - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static int wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {fd, ev, 0};
		int rc = poll(&p, 1, ms_left(deadline));
		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int httpc_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
		return -EINVAL;
	}
	uint64_t deadline = now_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000) *
						    NSEC_PER_MSEC;
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto fail;
		}
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc < 0)
			goto fail;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			rc = -soerr;
			goto fail;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); /* our own I/O uses MSG_DONTWAIT */
	rc = fd;
	goto out;
fail:
	snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(-rc));
	close(fd);
out:
	freeaddrinfo(res);
	return rc;
}

static int send_all(int fd, const void *p, size_t n, uint64_t deadline)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			c += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(fd, POLLOUT, deadline);
			if (rc < 0)
				return rc;
			continue;
		}
		return -errno;
	}
	return 0;
}

/* Reads more into b (at most cap bytes total). Returns bytes read, 0 at EOF, or -errno. */
static ssize_t recv_some(int fd, struct kp_buf *b, size_t cap, uint64_t deadline)
{
	if (b->len >= cap)
		return -EFBIG;
	buf_reserve(b, KP_MIN((size_t)65536, cap - b->len) + 1);
	for (;;) {
		ssize_t r = recv(fd, b->data + b->len, KP_MIN((size_t)65536, cap - b->len), MSG_DONTWAIT);
		if (r >= 0) {
			b->len += (size_t)r;
			b->data[b->len] = 0;
			return r;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int rc = wait_fd(fd, POLLIN, deadline);
			if (rc < 0)
				return rc;
			continue;
		}
		return -errno;
	}
}

static const char *find_header(const char *head, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");
	while (p && p[2] && !(p[2] == '\r' && p[3] == '\n')) {
		const char *line = p + 2;
		const char *end = strstr(line, "\r\n");
		if (!end)
			return NULL;
		if ((size_t)(end - line) > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			const char *ve = end;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		p = end;
	}
	return NULL;
}

const char *httpc_resp_header(const struct httpc_resp *r, const char *name, char *buf,
			      size_t buflen)
{
	size_t vl;
	if (!r->head.data)
		return NULL;
	const char *v = find_header(r->head.data, name, &vl);
	if (!v || buflen == 0)
		return NULL;
	vl = KP_MIN(vl, buflen - 1);
	memcpy(buf, v, vl);
	buf[vl] = 0;
	return buf;
}

void httpc_resp_free(struct httpc_resp *r)
{
	buf_free(&r->head);
	buf_free(&r->body);
}

/* Reads until the end of the response head; moves any excess into *rest. */
static int read_head(int fd, struct kp_buf *head, struct kp_buf *rest, uint64_t deadline,
		     char *err, size_t errlen)
{
	for (;;) {
		char *e = head->data ? strstr(head->data, "\r\n\r\n") : NULL;
		if (e) {
			size_t hl = (size_t)(e - head->data) + 4;
			buf_append(rest, head->data + hl, head->len - hl);
			head->len = hl;
			head->data[hl] = 0;
			return 0;
		}
		ssize_t r = recv_some(fd, head, HEAD_MAX, deadline);
		if (r == 0) {
			snprintf(err, errlen, "connection closed before a complete response head "
					      "(%zu bytes received)",
				 head->len);
			return -ECONNRESET;
		}
		if (r < 0) {
			snprintf(err, errlen, "reading the response head: %s",
				 r == -EFBIG ? "head larger than 64 KiB" : strerror((int)-r));
			return r == -EFBIG ? -EPROTO : (int)r;
		}
	}
}

static int parse_status(const char *head, int *status)
{
	int maj, min, st;
	if (sscanf(head, "HTTP/%d.%d %d", &maj, &min, &st) != 3 || st < 100 || st > 999)
		return -EPROTO;
	*status = st;
	return 0;
}

/* Decodes a chunked body from `in` (more read from fd as needed) into out. */
static int read_chunked(int fd, struct kp_buf *in, struct kp_buf *out, size_t max,
			uint64_t deadline, char *err, size_t errlen)
{
	size_t pos = 0;
	for (;;) {
		char *nl;
		while (!(nl = memmem(in->data + pos, in->len - pos, "\r\n", 2))) {
			if (in->len - pos > 1024) {
				snprintf(err, errlen, "bad chunk size line");
				return -EPROTO;
			}
			ssize_t r = recv_some(fd, in, max + 65536 + in->len, deadline);
			if (r <= 0) {
				snprintf(err, errlen, "connection closed inside a chunked body");
				return r < 0 ? (int)r : -EPROTO;
			}
		}
		char *end;
		unsigned long long sz = strtoull(in->data + pos, &end, 16);
		if (end == in->data + pos) {
			snprintf(err, errlen, "bad chunk size");
			return -EPROTO;
		}
		pos = (size_t)(nl - in->data) + 2;
		if (sz == 0)
			return 0; /* trailers ignored */
		if (sz > max || out->len + sz > max) {
			snprintf(err, errlen, "response body larger than %zu bytes", max);
			return -EFBIG;
		}
		while (in->len - pos < sz + 2) {
			ssize_t r = recv_some(fd, in, in->len + (size_t)sz + 65536, deadline);
			if (r <= 0) {
				snprintf(err, errlen, "connection closed inside a chunk");
				return r < 0 ? (int)r : -EPROTO;
			}
		}
		buf_append(out, in->data + pos, (size_t)sz);
		pos += (size_t)sz + 2;
	}
}

int httpc_request(const char *host, int port, const struct httpc_req *req,
		  struct httpc_resp *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	int timeout = req->timeout_ms > 0 ? req->timeout_ms : 10000;
	size_t max = req->max_body ? req->max_body : (size_t)64 << 20;
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout * NSEC_PER_MSEC;
	int fd = httpc_connect(host, port, timeout, err, errlen);
	if (fd < 0)
		return fd;
	struct kp_buf rq = {0}, rest = {0};
	int rc;
	buf_printf(&rq, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n",
		   req->method ? req->method : "GET", req->path ? req->path : "/", host, port);
	for (const char *const *h = req->headers; h && *h; h++)
		buf_printf(&rq, "%s\r\n", *h);
	if (req->chunked)
		buf_puts(&rq, "Transfer-Encoding: chunked\r\n");
	else if (req->body || (req->method && strcmp(req->method, "GET") &&
			       strcmp(req->method, "HEAD")))
		buf_printf(&rq, "Content-Length: %zu\r\n", req->body_len);
	buf_puts(&rq, "\r\n");
	if (req->chunked) {
		size_t cs = req->chunk_size ? req->chunk_size : 1000;
		for (size_t off = 0; off < req->body_len; off += cs) {
			size_t n = KP_MIN(cs, req->body_len - off);
			buf_printf(&rq, "%zx\r\n", n);
			buf_append(&rq, req->body + off, n);
			buf_puts(&rq, "\r\n");
		}
		buf_puts(&rq, "0\r\n\r\n");
	} else if (req->body_len) {
		buf_append(&rq, req->body, req->body_len);
	}
	rc = send_all(fd, rq.data, rq.len, deadline);
	if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET) {
		snprintf(err, errlen, "sending the request: %s", strerror(-rc));
		goto out;
	}
	/* On EPIPE/ECONNRESET the server may still have answered (413 before the body): read. */
	rc = read_head(fd, &out->head, &rest, deadline, err, errlen);
	if (rc < 0)
		goto out;
	if (parse_status(out->head.data, &out->status) < 0) {
		snprintf(err, errlen, "malformed status line: %.60s", out->head.data);
		rc = -EPROTO;
		goto out;
	}
	size_t vl;
	const char *te = find_header(out->head.data, "Transfer-Encoding", &vl);
	const char *cl = find_header(out->head.data, "Content-Length", &vl);
	bool is_head = req->method && !strcmp(req->method, "HEAD");
	if (is_head || out->status == 204 || out->status == 304 || out->status / 100 == 1) {
		rc = 0;
	} else if (te && !strncasecmp(te, "chunked", 7)) {
		rc = read_chunked(fd, &rest, &out->body, max, deadline, err, errlen);
	} else if (cl) {
		unsigned long long n = strtoull(cl, NULL, 10);
		if (n > max) {
			snprintf(err, errlen, "response body of %llu bytes exceeds the %zu byte limit",
				 n, max);
			rc = -EFBIG;
			goto out;
		}
		while (rest.len < n) {
			ssize_t r = recv_some(fd, &rest, (size_t)n, deadline);
			if (r <= 0) {
				snprintf(err, errlen, "connection closed after %zu of %llu body bytes",
					 rest.len, n);
				rc = r < 0 ? (int)r : -EPROTO;
				goto out;
			}
		}
		buf_append(&out->body, rest.data, (size_t)n);
		rc = 0;
	} else {
		for (;;) {
			ssize_t r = recv_some(fd, &rest, max, deadline);
			if (r == 0)
				break;
			if (r < 0) {
				snprintf(err, errlen, "reading the body: %s", strerror((int)-r));
				rc = (int)r;
				goto out;
			}
		}
		buf_append(&out->body, rest.data, rest.len);
		rc = 0;
	}
	buf_reserve(&out->body, 1);
	out->body.data[out->body.len] = 0;
out:
	if (rc < 0 && rc != -EFBIG && !out->status)
		httpc_resp_free(out);
	buf_free(&rq);
	buf_free(&rest);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ WebSocket */

static void ws_accept_key(const char *key, char out[29])
{
	unsigned char sha[20];
	char src[128];
	snprintf(src, sizeof(src), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
	SHA1((const unsigned char *)src, strlen(src), sha);
	EVP_EncodeBlock((unsigned char *)out, sha, 20);
}

int httpc_ws_connect(struct httpc_ws *ws, const char *host, int port, const char *path,
		     const char *const *headers, int timeout_ms, char *err, size_t errlen)
{
	memset(ws, 0, sizeof(*ws));
	ws->fd = -1;
	int timeout = timeout_ms > 0 ? timeout_ms : 10000;
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout * NSEC_PER_MSEC;
	int fd = httpc_connect(host, port, timeout, err, errlen);
	if (fd < 0)
		return fd;
	unsigned char raw[16];
	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		for (int i = 0; i < 16; i++)
			raw[i] = (unsigned char)rand();
	char key[32], want[29];
	EVP_EncodeBlock((unsigned char *)key, raw, 16);
	ws_accept_key(key, want);
	struct kp_buf rq = {0}, head = {0};
	buf_printf(&rq,
		   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
		   path, host, port, key);
	for (const char *const *h = headers; h && *h; h++)
		buf_printf(&rq, "%s\r\n", *h);
	buf_puts(&rq, "\r\n");
	int rc = send_all(fd, rq.data, rq.len, deadline);
	if (rc < 0) {
		snprintf(err, errlen, "sending the handshake: %s", strerror(-rc));
		goto fail;
	}
	rc = read_head(fd, &head, &ws->in, deadline, err, errlen);
	if (rc < 0)
		goto fail;
	int status = 0;
	parse_status(head.data, &status);
	if (status != 101) {
		/* Best effort: read the error body for the message. */
		size_t vl;
		const char *cl = find_header(head.data, "Content-Length", &vl);
		size_t n = cl ? KP_MIN((size_t)strtoull(cl, NULL, 10), (size_t)4096) : 0;
		while (ws->in.len < n && recv_some(fd, &ws->in, n, deadline) > 0)
			;
		snprintf(err, errlen, "upgrade refused: HTTP %d %.*s", status,
			 (int)KP_MIN(ws->in.len, (size_t)400), ws->in.data ? ws->in.data : "");
		rc = -EPROTO;
		goto fail;
	}
	size_t vl;
	const char *acc = find_header(head.data, "Sec-WebSocket-Accept", &vl);
	if (!acc || vl != 28 || memcmp(acc, want, 28) != 0) {
		snprintf(err, errlen, "bad Sec-WebSocket-Accept in the 101 response");
		rc = -EPROTO;
		goto fail;
	}
	ws->fd = fd;
	ws->head = head.data;
	buf_free(&rq);
	return 0;
fail:
	buf_free(&rq);
	buf_free(&head);
	buf_free(&ws->in);
	close(fd);
	return rc;
}

int httpc_ws_send_frame(struct httpc_ws *ws, int opcode, bool fin, unsigned rsv,
			const void *payload, size_t len, bool mask)
{
	unsigned char hdr[14];
	size_t hl = 0;
	hdr[hl++] = (unsigned char)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0xf));
	unsigned char m = mask ? 0x80 : 0;
	if (len < 126) {
		hdr[hl++] = m | (unsigned char)len;
	} else if (len <= 0xffff) {
		hdr[hl++] = m | 126;
		hdr[hl++] = (unsigned char)(len >> 8);
		hdr[hl++] = (unsigned char)len;
	} else {
		hdr[hl++] = m | 127;
		for (int i = 7; i >= 0; i--)
			hdr[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	unsigned char key[4] = {0};
	if (mask) {
		if (getrandom(key, 4, 0) != 4)
			key[0] = 0x5a;
		memcpy(hdr + hl, key, 4);
		hl += 4;
	}
	struct kp_buf b = {0};
	buf_append(&b, hdr, hl);
	buf_reserve(&b, len);
	const unsigned char *p = payload;
	for (size_t i = 0; i < len; i++)
		b.data[b.len + i] = (char)(p[i] ^ key[i & 3]);
	b.len += len;
	uint64_t deadline = now_mono_ns() + 10 * NSEC_PER_SEC;
	int rc = send_all(ws->fd, b.data, b.len, deadline);
	buf_free(&b);
	return rc;
}

int httpc_ws_send_text(struct httpc_ws *ws, const char *text, size_t len)
{
	return httpc_ws_send_frame(ws, 1, true, 0, text, len, true);
}

/* Parses one frame at the start of ws->in. Returns 1 with the frame, 0 if incomplete. */
static int ws_parse(struct httpc_ws *ws, int *op, bool *fin, size_t *off, size_t *plen,
		    size_t max_len)
{
	const unsigned char *d = (const unsigned char *)ws->in.data;
	size_t n = ws->in.len;
	if (n < 2)
		return 0;
	*fin = d[0] & 0x80;
	*op = d[0] & 0xf;
	bool masked = d[1] & 0x80;
	uint64_t len = d[1] & 0x7f;
	size_t h = 2;
	if (len == 126) {
		if (n < 4)
			return 0;
		len = ((uint64_t)d[2] << 8) | d[3];
		h = 4;
	} else if (len == 127) {
		if (n < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | d[2 + i];
		h = 10;
	}
	if (masked)
		return -EPROTO; /* a server must not mask */
	if (len > max_len)
		return -EFBIG;
	if (n < h + len)
		return 0;
	*off = h;
	*plen = (size_t)len;
	return 1;
}

int httpc_ws_recv(struct httpc_ws *ws, int *opcode, struct kp_buf *msg, size_t max_len,
		  int timeout_ms)
{
	uint64_t deadline = now_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) *
						    NSEC_PER_MSEC;
	msg->len = 0;
	int msg_op = -1;
	for (;;) {
		int op;
		bool fin;
		size_t off, plen;
		int r = ws_parse(ws, &op, &fin, &off, &plen, max_len);
		if (r < 0)
			return r;
		if (r == 1) {
			const char *p = ws->in.data + off;
			if (op == 9) { /* ping -> pong */
				httpc_ws_send_frame(ws, 10, true, 0, p, plen, true);
			} else if (op == 10) {
				/* pong: ignore */
			} else if (op == 8) {
				buf_reserve(msg, plen + 1);
				msg->len = 0;
				buf_append(msg, p, plen);
				msg->data[msg->len] = 0;
				*opcode = 8;
				memmove(ws->in.data, ws->in.data + off + plen,
					ws->in.len - off - plen);
				ws->in.len -= off + plen;
				return 1;
			} else {
				if (op != 0)
					msg_op = op;
				if (msg->len + plen > max_len)
					return -EFBIG;
				buf_append(msg, p, plen);
			}
			memmove(ws->in.data, ws->in.data + off + plen, ws->in.len - off - plen);
			ws->in.len -= off + plen;
			if (r == 1 && fin && op != 9 && op != 10 && msg_op >= 0) {
				buf_reserve(msg, 1);
				msg->data[msg->len] = 0;
				*opcode = msg_op;
				return 1;
			}
			continue;
		}
		ssize_t got = recv_some(ws->fd, &ws->in, ws->in.len + max_len + 16, deadline);
		if (got == -ETIMEDOUT)
			return 0;
		if (got == 0)
			return -ECONNRESET;
		if (got < 0)
			return (int)got;
	}
}

void httpc_ws_close(struct httpc_ws *ws)
{
	if (ws->fd >= 0)
		close(ws->fd);
	ws->fd = -1;
	buf_free(&ws->in);
	free(ws->head);
	ws->head = NULL;
}
