/*
 * Tests httpd/static.c: content types, cache headers, SPA fallback, 404 for missing assets and
 * unknown API paths, directory traversal (plain, encoded, symlinks) refused.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "tests/unit/httpd/helpers.h"

static void put_file(const char *dir, const char *name, const char *content)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECKF(fd >= 0, "open %.900s", p);
	CHECK(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
	close(fd);
}

static struct httpd *start_static(char *dist, size_t len)
{
	const char *tmp = kt_tmpdir();
	snprintf(dist, len, "%s/dist", tmp);
	char p[1024];
	mkdir(dist, 0755);
	snprintf(p, sizeof(p), "%s/assets", dist);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sub", dist);
	mkdir(p, 0755);
	put_file(dist, "index.html", "<!doctype html><title>kprobe</title>");
	put_file(dist, "assets/index-3f2a9c.js", "console.log(1)");
	put_file(dist, "assets/mod-77.mjs", "export default 1");
	put_file(dist, "assets/index-3f2a9c.css", "body{}");
	put_file(dist, "assets/logo.svg", "<svg/>");
	put_file(dist, "assets/x.png", "\x89PNG");
	put_file(dist, "assets/f.woff2", "wOF2");
	put_file(dist, "assets/index-3f2a9c.js.map", "{}");
	put_file(dist, "manifest.json", "{}");
	put_file(dist, "favicon.ico", "ico");
	put_file(dist, "sub/index.html", "<p>sub</p>");
	/* A secret next to dist, and a symlink inside dist pointing at it. */
	put_file(tmp, "secret.txt", "TOPSECRET");
	snprintf(p, sizeof(p), "%s/leak.txt", dist);
	char target[1024];
	snprintf(target, sizeof(target), "%s/secret.txt", tmp);
	CHECK_EQ_INT(symlink(target, p), 0);

	struct httpd_opts o;
	th_opts(&o);
	o.static_dir = dist;
	struct httpd *s = th_create(&o);
	th_start(s);
	return s;
}

static void expect(struct httpd *s, const char *path, int status, const char *ctype,
		   const char *cache, const char *body_has)
{
	struct httpc_resp r;
	int st = th_get(s, path, &r);
	CHECKF(st == status, "GET %s: %d, want %d: %s", path, st, status,
	       st > 0 ? r.body.data : "");
	char hv[256];
	if (ctype) {
		const char *ct = httpc_resp_header(&r, "content-type", hv, sizeof(hv));
		CHECKF(ct && !strcmp(ct, ctype), "GET %s: content-type %s, want %s", path,
		       ct ? ct : "(none)", ctype);
	}
	if (cache) {
		const char *cc = httpc_resp_header(&r, "cache-control", hv, sizeof(hv));
		CHECKF(cc && !strcmp(cc, cache), "GET %s: cache-control %s, want %s", path,
		       cc ? cc : "(none)", cache);
	}
	if (body_has)
		CHECK_CONTAINS(r.body.data, body_has);
	CHECKF(!strstr(r.body.data, "TOPSECRET"), "GET %s leaked the secret", path);
	httpc_resp_free(&r);
}

TEST(httpd_static_types_and_cache)
{
	char dist[512];
	struct httpd *s = start_static(dist, sizeof(dist));
	const char *imm = "public, max-age=31536000, immutable";
	expect(s, "/", 200, "text/html; charset=utf-8", "no-cache", "<title>kprobe");
	expect(s, "/index.html", 200, "text/html; charset=utf-8", "no-cache", "kprobe");
	expect(s, "/assets/index-3f2a9c.js", 200, "text/javascript; charset=utf-8", imm,
	       "console");
	expect(s, "/assets/mod-77.mjs", 200, "text/javascript; charset=utf-8", imm, NULL);
	expect(s, "/assets/index-3f2a9c.css", 200, "text/css; charset=utf-8", imm, NULL);
	expect(s, "/assets/logo.svg", 200, "image/svg+xml", imm, NULL);
	expect(s, "/assets/x.png", 200, "image/png", imm, NULL);
	expect(s, "/assets/f.woff2", 200, "font/woff2", imm, NULL);
	expect(s, "/assets/index-3f2a9c.js.map", 200, "application/json", imm, NULL);
	expect(s, "/manifest.json", 200, "application/json", "public, max-age=300", NULL);
	expect(s, "/favicon.ico", 200, "image/x-icon", NULL, NULL);
	expect(s, "/sub/", 200, "text/html; charset=utf-8", "no-cache", "sub");
	/* SPA fallback for client-side routes. */
	expect(s, "/incidents/42", 200, "text/html; charset=utf-8", "no-cache", "<title>kprobe");
	expect(s, "/graph/req-9f21?x=1", 200, "text/html; charset=utf-8", NULL, "kprobe");
	/* Missing assets are 404, not HTML. */
	expect(s, "/assets/gone-123.js", 404, "application/json", NULL, "\"error\"");
	expect(s, "/missing.css", 404, "application/json", NULL, NULL);
	/* Unknown API paths are JSON 404s even with a dashboard. */
	expect(s, "/api/v1/nothing", 404, "application/json", NULL, "/api/v1/nothing");
	/* Validators for caches. */
	struct httpc_resp r;
	CHECK_EQ_INT(th_get(s, "/assets/logo.svg", &r), 200);
	char etag[128];
	CHECK(httpc_resp_header(&r, "etag", etag, sizeof(etag)) != NULL);
	CHECK_EQ_STR(httpc_resp_header(&r, "x-content-type-options", etag, sizeof(etag)),
		     "nosniff");
	httpc_resp_free(&r);
	/* POST to a static path -> 405. */
	CHECK_EQ_INT(th_req(s, HTTPD_API, "POST", "/index.html", NULL, "x", 1, &r), 405);
	httpc_resp_free(&r);
	httpd_destroy(s);
}

/* Sends a raw request line (the client would normalize nothing, but be explicit). */
static void raw_get(struct httpd *s, const char *path, char *out, size_t outlen)
{
	char err[128];
	int fd = httpc_connect("127.0.0.1", httpd_port(s, HTTPD_API), 2000, err, sizeof(err));
	CHECK(fd >= 0);
	char rq[1024];
	int n = snprintf(rq, sizeof(rq), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 path);
	CHECK(write(fd, rq, (size_t)n) == n);
	size_t got = 0;
	ssize_t r;
	while (got + 1 < outlen && (r = read(fd, out + got, outlen - 1 - got)) > 0)
		got += (size_t)r;
	out[got] = 0;
	close(fd);
}

TEST(httpd_static_traversal_blocked)
{
	char dist[512];
	struct httpd *s = start_static(dist, sizeof(dist));
	const char *paths[] = {
		"/../secret.txt",         "/assets/../../secret.txt", "/%2e%2e/secret.txt",
		"/%2E%2E%2Fsecret.txt",   "/assets/%2e%2e/%2e%2e/secret.txt",
		"/..%2fsecret.txt",       "/leak.txt",                "/%5c..%5csecret.txt",
		"/assets/..%5c..%5csecret.txt", "/index.html%00.js", "//etc/passwd",
		"/./../secret.txt",
	};
	for (size_t i = 0; i < KP_ARRAY_SIZE(paths); i++) {
		char out[8192];
		raw_get(s, paths[i], out, sizeof(out));
		CHECKF(strncmp(out, "HTTP/1.1 ", 9) == 0, "%s: no HTTP answer: %.100s", paths[i],
		       out);
		CHECKF(!strstr(out, "TOPSECRET"), "%s leaked: %.300s", paths[i], out);
		CHECKF(!strstr(out, "root:"), "%s leaked /etc/passwd", paths[i]);
		kt_note("%-34s -> %.12s", paths[i], out + 9);
	}
	/* Still serving. */
	struct httpc_resp r;
	CHECK_EQ_INT(th_get(s, "/", &r), 200);
	httpc_resp_free(&r);
	httpd_destroy(s);
}

TEST(httpd_static_missing_dir)
{
	struct httpd_opts o;
	th_opts(&o);
	char p[512];
	snprintf(p, sizeof(p), "%s/nope", kt_tmpdir());
	o.static_dir = p;
	struct httpd *s = th_create(&o);
	th_start(s);
	struct httpc_resp r;
	CHECK_EQ_INT(th_get(s, "/", &r), 404);
	CHECK_CONTAINS(r.body.data, "dashboard");
	httpc_resp_free(&r);
	httpd_destroy(s);
}
