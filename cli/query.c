/*
 * query.c - `kprobe query`: runs a query on kprobed and prints an aligned table (or the JSON,
 * NDJSON or CSV the API returns). A query error is shown under the query with a caret at its
 * position.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/stack.h"
#include "common/config.h"
#include "common/json.h"
#include "common/util.h"
#include "httpd/client.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kprobe query [--json | --format json|ndjson|csv] [--api HOST:PORT]\n"
		"                    [--data DIR] [--token T] \"QUERY\"\n"
		"\n"
		"Runs QUERY on kprobed and prints the result as an aligned table. Examples:\n"
		"  kprobe query \"SELECT type, count() FROM events GROUP BY type\"\n"
		"  kprobe query \"SELECT comm, p99(dur) FROM events WHERE type = 'write' AND ts > "
		"now() - 5m GROUP BY comm\"\n"
		"  kprobe query \"ROOTCAUSE OF 'pay-00017'\"\n"
		"\n"
		"  --json            print the API's JSON answer as is\n"
		"  --format F        json, ndjson or csv, as the API returns it\n"
		"  --api HOST:PORT   kprobed's API (default: the one `kprobe up` runs from --data,\n"
		"                    else 127.0.0.1:api.port)\n"
		"  --data DIR        where `kprobe up` keeps its data (default ./kprobe-data)\n"
		"  --token T         bearer token when api.auth.enabled (or $KPROBE_TOKEN)\n");
}

/* Renders a JSON value of a result cell as text. */
static void cell_text(const struct json *v, struct kp_buf *o)
{
	o->len = 0;
	if (!v || v->type == JSON_NULL)
		buf_puts(o, "");
	else if (v->type == JSON_STR)
		buf_append(o, v->u.str.s, v->u.str.len);
	else if (v->type == JSON_NUM)
		buf_puts(o, v->u.num.text);
	else if (v->type == JSON_BOOL)
		buf_puts(o, v->u.b ? "true" : "false");
	else if (v->type == JSON_OBJ && json_get(v, "name")) /* a column: {"name", "type"} */
		cell_text(json_get(v, "name"), o);
	else
		buf_puts(o, "…");
	if (!o->data)
		buf_puts(o, "");
}

static int print_table(const char *body, size_t len)
{
	struct json *root;
	char err[128];
	size_t pos;
	struct json_doc *d = json_parse(body, len, &root, err, sizeof(err), &pos);
	if (!d) {
		fprintf(stderr, "kprobe query: cannot read the answer: %s\n", err);
		return 1;
	}
	const struct json *cols = json_get(root, "columns"), *rows = json_get(root, "rows");
	if (!cols || cols->type != JSON_ARR || !rows || rows->type != JSON_ARR) {
		/* Path queries answer other shapes: print them as they are. */
		fwrite(body, 1, len, stdout);
		putchar('\n');
		json_free(d);
		return 0;
	}
	size_t nc = cols->u.arr.n, nr = rows->u.arr.n;
	size_t *w = xcalloc(nc ? nc : 1, sizeof(*w));
	struct kp_buf t = {0};
	for (size_t c = 0; c < nc; c++) {
		cell_text(cols->u.arr.items[c], &t);
		w[c] = t.len;
	}
	for (size_t r = 0; r < nr; r++) {
		const struct json *row = rows->u.arr.items[r];
		for (size_t c = 0; c < nc && row->type == JSON_ARR && c < row->u.arr.n; c++) {
			cell_text(row->u.arr.items[c], &t);
			if (t.len > w[c])
				w[c] = t.len > 60 ? 60 : t.len;
		}
	}
	for (size_t c = 0; c < nc; c++) {
		cell_text(cols->u.arr.items[c], &t);
		printf("%s%-*s", c ? "  " : "", (int)w[c], t.data);
	}
	putchar('\n');
	for (size_t c = 0; c < nc; c++) {
		printf("%s", c ? "  " : "");
		for (size_t k = 0; k < w[c]; k++)
			putchar('-');
	}
	putchar('\n');
	for (size_t r = 0; r < nr; r++) {
		const struct json *row = rows->u.arr.items[r];
		for (size_t c = 0; c < nc; c++) {
			const struct json *v =
				row->type == JSON_ARR && c < row->u.arr.n ? row->u.arr.items[c] : NULL;
			cell_text(v, &t);
			int num = v && v->type == JSON_NUM;
			if (num)
				printf("%s%*.*s", c ? "  " : "", (int)w[c], (int)w[c], t.data);
			else
				printf("%s%-*.*s", c ? "  " : "", (int)w[c], (int)w[c], t.data);
		}
		putchar('\n');
	}
	const struct json *stats = json_get(root, "stats");
	const struct json *ms = json_get(stats, "ms");
	fflush(stdout);
	fprintf(stderr, "(%zu row%s%s%s ms)\n", nr, nr == 1 ? "" : "s", ms ? ", " : "",
		ms ? ms->u.num.text : "");
	buf_free(&t);
	free(w);
	json_free(d);
	return 0;
}

int cli_resolve_api(const char *api, const char *data, char *host, size_t hostcap, int *port)
{
	if (api) {
		const char *colon = strrchr(api, ':');
		if (!colon) {
			snprintf(host, hostcap, "127.0.0.1");
			*port = atoi(api);
		} else {
			snprintf(host, hostcap, "%.*s", (int)(colon - api), api);
			*port = atoi(colon + 1);
		}
		return *port > 0 ? 0 : -EINVAL;
	}
	snprintf(host, hostcap, "127.0.0.1");
	if (stack_read_ports(data ? data : "./kprobe-data", port, NULL, NULL, NULL) == 0)
		return 0;
	struct kp_config cfg;
	config_init(&cfg);
	char err[256];
	const char *path = config_default_path();
	if (path)
		config_load_file(&cfg, path, err, sizeof(err));
	*port = (int)cfg.api_port;
	snprintf(host, hostcap, "%s", cfg.api_bind);
	config_free(&cfg);
	return 0;
}

int cli_query(int argc, char **argv)
{
	const char *api = NULL, *data = NULL, *format = NULL, *token = getenv("KPROBE_TOKEN");
	int json = 0;
	static const struct option opts[] = {{"json", no_argument, 0, 'j'},
					     {"format", required_argument, 0, 'f'},
					     {"api", required_argument, 0, 'a'},
					     {"data", required_argument, 0, 'd'},
					     {"token", required_argument, 0, 't'},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'f':
			format = optarg;
			break;
		case 'a':
			api = optarg;
			break;
		case 'd':
			data = optarg;
			break;
		case 't':
			token = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	const char *q = argv[optind];
	char host[256];
	int port;
	if (cli_resolve_api(api, data, host, sizeof(host), &port) < 0) {
		fprintf(stderr, "kprobe query: bad --api '%s' (expected HOST:PORT)\n", api);
		return 2;
	}
	char path[64], auth[600];
	snprintf(path, sizeof(path), "/api/v1/query%s%s", format ? "?format=" : "",
		 format ? format : "");
	const char *headers[3] = {"Content-Type: text/plain; charset=utf-8", NULL, NULL};
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		headers[1] = auth;
	}
	struct httpc_req req = {.method = "POST",
				.path = path,
				.headers = headers,
				.body = q,
				.body_len = strlen(q),
				.timeout_ms = 120000};
	struct httpc_resp resp = {0};
	char err[256];
	int r = httpc_request(host, port, &req, &resp, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "kprobe query: cannot reach kprobed at %s:%d: %s (is it running? "
				"`kprobe up`, or --api HOST:PORT)\n",
			host, port, err);
		return 1;
	}
	int rc = 0;
	if (resp.status != 200) {
		struct json *root;
		char jerr[64];
		size_t pos;
		struct json_doc *d =
			json_parse(resp.body.data, resp.body.len, &root, jerr, sizeof(jerr), &pos);
		const struct json *m = d ? json_get(root, "error") : NULL;
		const struct json *p = d ? json_get(root, "position") : NULL;
		int64_t at = -1;
		if (p)
			json_int(p, &at);
		fprintf(stderr, "kprobe query: error (HTTP %d): %s\n", resp.status,
			m && m->type == JSON_STR ? m->u.str.s : resp.body.data);
		if (at >= 0 && (size_t)at <= strlen(q) && !strchr(q, '\n')) {
			fprintf(stderr, "  %s\n  %*s^\n", q, (int)at, "");
		}
		json_free(d);
		rc = 1;
	} else if (json || format) {
		fwrite(resp.body.data, 1, resp.body.len, stdout);
		if (resp.body.len && resp.body.data[resp.body.len - 1] != '\n')
			putchar('\n');
	} else {
		rc = print_table(resp.body.data, resp.body.len);
	}
	httpc_resp_free(&resp);
	return rc;
}
