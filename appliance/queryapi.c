/*
 * queryapi.c - POST /api/v1/query (the query language over events) and POST /v1/traces (OTLP
 * spans into the causal engine and the span index).
 */
#include <errno.h>
#include <string.h>

#include "appliance/internal.h"
#include "common/util.h"
#include "graph/correlate.h"
#include "graph/engine.h"
#include "graph/otlp.h"
#include "graph/pathq.h"
#include "store/query.h"

/*
 * Body: the query text. ?format=json (default) | ndjson | csv. Errors: 400 with
 * {"error": "...", "position": N}; a query cancelled by the deadline: 504 from the server.
 */
void api_query(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	enum query_format fmt = QUERY_JSON;
	const char *f = httpd_req_param(req, "format");
	if (f && query_format_parse(f, &fmt) < 0) {
		httpd_resp_error(resp, 400, "format must be json, ndjson or csv", -1);
		return;
	}
	const char *text = req->body;
	size_t len = req->body_len;
	if (!len) {
		httpd_resp_error(resp, 400, "empty query: POST the query text as the body", 0);
		return;
	}
	struct query_opts o;
	query_opts_from_config(&o, a->cfg);
	o.cancel = req->cancel;
	struct query_result *res = NULL;
	struct query_error err;
	int r = pathq_is(text, len)
			? pathq_exec(a->graph, text, len, (int)a->cfg->engine_max_steps, &res, &err)
			: query_exec(a->store, text, len, &o, &res, &err);
	if (r < 0) {
		httpd_resp_error(resp, r == -ENOENT ? 404 : 400, err.message, err.position);
		return;
	}
	if (fmt == QUERY_NDJSON)
		httpd_resp_set_type(resp, "application/x-ndjson");
	else if (fmt == QUERY_CSV)
		httpd_resp_set_type(resp, "text/csv; charset=utf-8");
	query_result_write(res, fmt, &resp->body);
	query_result_free(res);
}

void api_otlp(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct appliance *a = ctx;
	struct otlp_opts o;
	otlp_opts_from_config(&o, a->cfg);
	struct otlp_result res;
	memset(&res, 0, sizeof(res));
	/* The server already inflated gzip bodies for this route. */
	otlp_handle(httpd_req_header(req, "content-type"), NULL, req->body, req->body_len, &o,
		    &res);
	if (res.n_spans) {
		engine_submit_spans(a->engine, res.spans, res.n_spans);
		/* Events already stored are joined at query time (see appliance.c), so the
		 * ranges to retag are not needed here. */
		struct corr_retag rt = {0};
		correlate_add_spans(a->corr, res.spans, res.n_spans, now_real_ns(), &rt);
		correlate_retag_free(&rt);
	}
	resp->status = res.status;
	httpd_resp_set_type(resp, res.resp_type ? res.resp_type : "application/json");
	if (res.resp.len)
		buf_append(&resp->body, res.resp.data, res.resp.len);
	otlp_result_free(&res);
}
