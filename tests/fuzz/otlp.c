/*
 * Fuzz target: OTLP/HTTP trace ingest (graph/otlp.c) on arbitrary bodies, as kprobed's
 * /v1/traces sees them, and the span index (graph/correlate.c) fed with whatever decodes.
 *
 * The first byte picks the path: bit 0 protobuf or JSON, bit 1 gzip-encoded; the rest is the
 * body. Every accepted span then goes through correlate_add_spans and a lookup inside it, and
 * the response must be consistent with the status.
 */
// fuzz-sources: graph/otlp.c graph/correlate.c common/json.c common/util.c
// fuzz-libs: -lz -lm
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/correlate.h"
#include "graph/otlp.h"

static const char *const TXN_KEYS[] = {"transaction.id", "txn.id", "request.id", "payment.id"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int mode = data[0];
	struct otlp_opts o = {.max_body = 1 << 20, .txn_keys = TXN_KEYS, .n_txn_keys = 4};
	struct otlp_result r;
	memset(&r, 0, sizeof(r));
	int st = otlp_handle(mode & 1 ? "application/json" : "application/x-protobuf",
			     mode & 2 ? "gzip" : NULL, data + 1, size - 1, &o, &r);
	if (st != 200 && st != 400 && st != 413)
		abort();
	if (st != 200 && (r.n_spans != 0 && r.rejected == 0))
		abort();
	if (st == 400 && !r.message[0])
		abort();
	for (size_t i = 0; i < r.n_spans; i++) {
		const struct otlp_span *s = &r.spans[i];
		if (s->end_ns < s->start_ns || strlen(s->name) > OTLP_MAX_VALUE)
			abort();
		for (int k = 0; k < s->n_attrs; k++)
			if (strlen(s->attrs[k].value) != s->attrs[k].value_len &&
			    s->attrs[k].type != OTLP_V_STR)
				abort();
		struct kp_buf j = {0};
		otlp_attrs_json(s->attrs, s->n_attrs, &j);
		buf_free(&j);
	}
	struct corr_opts co = {
		.end_slack_ns = 1000, .retention_ns = 1000000000, .max_spans = OTLP_MAX_SPANS};
	struct correlate *c;
	if (r.n_spans && correlate_new(&co, &c) == 0) {
		struct corr_retag rt = {0};
		correlate_add_spans(c, r.spans, r.n_spans, 0, &rt);
		for (size_t i = 0; i < r.n_spans && r.n_spans <= 256; i++) {
			const struct otlp_span *s = &r.spans[i];
			bool dup = false; /* a repeated span id: only the first is indexed */
			for (size_t k = 0; k < i; k++)
				dup |= !memcmp(r.spans[k].trace_id, s->trace_id, 16) &&
				       !memcmp(r.spans[k].span_id, s->span_id, 8);
			struct corr_tag t;
			if (s->pid && !dup &&
			    !correlate_lookup(c, NULL, s->pid, s->tid, s->start_ns, 0, &t))
				abort(); /* a span always contains its own start */
		}
		correlate_expire(c, UINT64_MAX);
		correlate_retag_free(&rt);
		correlate_free(c);
	}
	otlp_result_free(&r);
	return 0;
}
