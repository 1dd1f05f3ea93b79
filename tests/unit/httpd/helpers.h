/*
 * helpers.h - shared by the httpd tests: start a real server on ephemeral loopback ports, do
 * requests with the project's client, count open descriptors.
 */
#ifndef KP_TEST_HTTPD_HELPERS_H
#define KP_TEST_HTTPD_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpd/client.h"
#include "httpd/httpd.h"
#include "tests/test.h"

static inline void th_opts(struct httpd_opts *o)
{
	httpd_opts_init(o, NULL);
	o->api_port = 0;
	o->otlp_port = 0;
	o->workers = 2;
}

static inline void th_start(struct httpd *s)
{
	char err[256];
	int rc = httpd_start(s, err, sizeof(err));
	CHECKF(rc == 0, "httpd_start: %s", err);
}

static inline struct httpd *th_create(const struct httpd_opts *o)
{
	struct httpd *s = NULL;
	char err[256];
	int rc = httpd_create(o, &s, err, sizeof(err));
	CHECKF(rc == 0, "httpd_create: %s", err);
	return s;
}

/* GET/POST helper: returns the status (or the negative error), body in r. */
static inline int th_req(struct httpd *s, enum httpd_listener l, const char *method,
			 const char *path, const char *const *headers, const char *body,
			 size_t body_len, struct httpc_resp *r)
{
	char err[256];
	struct httpc_req q = {.method = method, .path = path, .headers = headers, .body = body,
			      .body_len = body_len, .timeout_ms = 10000};
	int rc = httpc_request("127.0.0.1", httpd_port(s, l), &q, r, err, sizeof(err));
	if (rc < 0) {
		kt_note("request %s %s: %s", method, path, err);
		return rc;
	}
	return r->status;
}

static inline int th_get(struct httpd *s, const char *path, struct httpc_resp *r)
{
	return th_req(s, HTTPD_API, "GET", path, NULL, NULL, 0, r);
}

static inline int th_count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n - 1; /* the DIR itself */
}

#endif
