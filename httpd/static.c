/*
 * static.c - the dashboard's files (opts.static_dir, normally dashboard/dist) on the API
 * listener, for every GET/HEAD path outside /api/ that no route took.
 *
 *   /                     -> index.html                      Cache-Control: no-cache
 *   /assets/<hashed name> -> the file                        public, max-age=31536000, immutable
 *   /other.ext            -> the file                        public, max-age=300
 *   /unknown/route        -> index.html (the SPA routes it)  no-cache
 *   /missing.js, /assets/missing.* -> 404 JSON (an asset must not silently become HTML)
 *
 * Safety: the decoded path may not contain NUL, backslash, "." or ".." segments; the file's
 * realpath must lie under the root's realpath (symlinks out of the tree are refused). h2o's
 * file sender does the I/O (ETag, Last-Modified, 304, ranges).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "httpd/internal.h"

static const struct {
	const char *ext, *type;
} types[] = {
	{"html", "text/html; charset=utf-8"},
	{"htm", "text/html; charset=utf-8"},
	{"js", "text/javascript; charset=utf-8"},
	{"mjs", "text/javascript; charset=utf-8"},
	{"css", "text/css; charset=utf-8"},
	{"svg", "image/svg+xml"},
	{"png", "image/png"},
	{"jpg", "image/jpeg"},
	{"jpeg", "image/jpeg"},
	{"gif", "image/gif"},
	{"webp", "image/webp"},
	{"ico", "image/x-icon"},
	{"woff2", "font/woff2"},
	{"woff", "font/woff"},
	{"ttf", "font/ttf"},
	{"json", "application/json"},
	{"map", "application/json"},
	{"webmanifest", "application/manifest+json"},
	{"txt", "text/plain; charset=utf-8"},
	{"wasm", "application/wasm"},
};

static const char *ext_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');
	return dot && dot[1] ? dot + 1 : NULL;
}

static const char *type_of(const char *ext)
{
	if (ext)
		for (size_t i = 0; i < KP_ARRAY_SIZE(types); i++)
			if (!strcasecmp(types[i].ext, ext))
				return types[i].type;
	return "application/octet-stream";
}

static int unhex(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
					    : c >= 'A' && c <= 'F' ? c - 'A' + 10
								   : -1;
}

/* Decodes and checks the path. Returns false for anything that could step outside the root. */
static bool safe_decode(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; in[i]; i++) {
		int c = (unsigned char)in[i];
		if (c == '%' && unhex(in[i + 1]) >= 0 && unhex(in[i + 2]) >= 0) {
			c = unhex(in[i + 1]) * 16 + unhex(in[i + 2]);
			i += 2;
		}
		if (c == 0 || c == '\\' || o + 1 >= cap)
			return false;
		out[o++] = (char)c;
	}
	out[o] = 0;
	if (out[0] != '/')
		return false;
	/* Segment checks on the decoded path: "%2e%2e" is "..", whatever h2o normalized. */
	for (const char *p = out; *p;) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if ((l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += l;
	}
	return true;
}

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
	h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value,
			      strlen(value));
}

void httpd__static_handle(struct httpd *s, h2o_req_t *req, const char *path, uint64_t t0)
{
	bool head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
	if (!head && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
		httpd__send_error(req, 405, "static files answer GET and HEAD only", "static", t0);
		return;
	}
	char dec[1024];
	if (!safe_decode(path, dec, sizeof(dec))) {
		metric_inc(metric_labels(httpd__m.rejected, "bad_path"));
		httpd__send_error(req, 400, "bad path: '.', '..', backslashes and NUL bytes are not "
					    "allowed in static paths",
				  "static", t0);
		return;
	}
	char root[PATH_MAX];
	if (!realpath(s->static_dir, root)) {
		httpd__send_error(req, 404, "the dashboard is not installed (no static directory; "
					    "build it with 'make dashboard')",
				  "static", t0);
		return;
	}
	char full[PATH_MAX + 1100];
	bool fallback = false;
	snprintf(full, sizeof(full), "%s%s", root, dec);
	struct stat st;
	if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
		size_t l = strlen(full);
		snprintf(full + l, sizeof(full) - l, "%sindex.html", full[l - 1] == '/' ? "" : "/");
	}
	if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
		const char *ext = ext_of(dec);
		bool asset = !strncmp(dec, "/assets/", 8) ||
			     (ext && strcasecmp(ext, "html") && strcmp(type_of(ext),
								      "application/octet-stream"));
		if (asset) {
			char m[1200];
			snprintf(m, sizeof(m), "no such file: %s", dec);
			httpd__send_error(req, 404, m, "static", t0);
			return;
		}
		snprintf(full, sizeof(full), "%s/index.html", root);
		fallback = true;
	}
	char real[PATH_MAX];
	size_t rl = strlen(root);
	if (!realpath(full, real) || strncmp(real, root, rl) != 0 || real[rl] != '/') {
		httpd__send_error(req, 404, fallback ? "the dashboard has no index.html"
						     : "no such file",
				  "static", t0);
		return;
	}
	const char *ext = ext_of(real);
	bool is_index = ext && !strcasecmp(ext, "html");
	if (is_index)
		add_header(req, "cache-control", "no-cache");
	else if (!strncmp(dec, "/assets/", 8))
		add_header(req, "cache-control", "public, max-age=31536000, immutable");
	else
		add_header(req, "cache-control", "public, max-age=300");
	add_header(req, "x-content-type-options", "nosniff");
	const char *mime = type_of(ext);
	if (h2o_file_send(req, 200, "OK", real, h2o_iovec_init(mime, strlen(mime)), 0) != 0) {
		/* Raced with a deploy, or unreadable: the headers we added are not sent. */
		req->res.headers = (h2o_headers_t){NULL, 0, 0};
		httpd__send_error(req, 404, "file could not be opened", "static", t0);
		return;
	}
	httpd__count("static", req->res.status ? req->res.status : 200, t0);
}
