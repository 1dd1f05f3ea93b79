/*
 * otlp_pb.h - a tiny protobuf writer for the OTLP tests: builds ExportTraceServiceRequest bodies
 * field by field, so tests can also write what no real encoder would (wrong wire types, lengths
 * past the end, groups, unknown fields).
 */
#ifndef KP_TEST_OTLP_PB_H
#define KP_TEST_OTLP_PB_H

#include <stdint.h>
#include <string.h>

#include "common/util.h"

static inline void tpb_varint(struct kp_buf *b, uint64_t v)
{
	do {
		uint8_t c = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			c |= 0x80;
		buf_append(b, &c, 1);
	} while (v);
}

static inline void tpb_tag(struct kp_buf *b, uint32_t field, int wt)
{
	tpb_varint(b, (uint64_t)field << 3 | (uint64_t)wt);
}

static inline void tpb_uint(struct kp_buf *b, uint32_t field, uint64_t v)
{
	tpb_tag(b, field, 0);
	tpb_varint(b, v);
}

static inline void tpb_fixed64(struct kp_buf *b, uint32_t field, uint64_t v)
{
	tpb_tag(b, field, 1);
	buf_append(b, &v, 8);
}

static inline void tpb_fixed32(struct kp_buf *b, uint32_t field, uint32_t v)
{
	tpb_tag(b, field, 5);
	buf_append(b, &v, 4);
}

static inline void tpb_bytes(struct kp_buf *b, uint32_t field, const void *p, size_t n)
{
	tpb_tag(b, field, 2);
	tpb_varint(b, n);
	buf_append(b, p, n);
}

static inline void tpb_str(struct kp_buf *b, uint32_t field, const char *s)
{
	tpb_bytes(b, field, s, strlen(s));
}

/* Appends sub as a length-delimited field and frees it. */
static inline void tpb_msg(struct kp_buf *b, uint32_t field, struct kp_buf *sub)
{
	tpb_bytes(b, field, sub->data ? sub->data : "", sub->len);
	buf_free(sub);
}

/* KeyValue{key, AnyValue{string_value}} as field `field` (9 in Span, 1 in Resource). */
static inline void tpb_attr_str(struct kp_buf *b, uint32_t field, const char *k, const char *v)
{
	struct kp_buf kv = {0}, av = {0};
	tpb_str(&kv, 1, k);
	tpb_str(&av, 1, v);
	tpb_msg(&kv, 2, &av);
	tpb_msg(b, field, &kv);
}

static inline void tpb_attr_int(struct kp_buf *b, uint32_t field, const char *k, int64_t v)
{
	struct kp_buf kv = {0}, av = {0};
	tpb_str(&kv, 1, k);
	tpb_uint(&av, 3, (uint64_t)v);
	tpb_msg(&kv, 2, &av);
	tpb_msg(b, field, &kv);
}

/* KeyValue with a raw, pre-encoded AnyValue. */
static inline void tpb_attr_raw(struct kp_buf *b, uint32_t field, const char *k,
				struct kp_buf *anyvalue)
{
	struct kp_buf kv = {0};
	tpb_str(&kv, 1, k);
	tpb_msg(&kv, 2, anyvalue);
	tpb_msg(b, field, &kv);
}

/* A span with the usual fields; extra (already encoded span fields) is appended and freed. */
static inline void tpb_span(struct kp_buf *scope_spans, const uint8_t trace[16],
			    const uint8_t id[8], const uint8_t *parent, const char *name, int kind,
			    uint64_t start, uint64_t end, struct kp_buf *extra)
{
	struct kp_buf s = {0};
	tpb_bytes(&s, 1, trace, 16);
	tpb_bytes(&s, 2, id, 8);
	if (parent)
		tpb_bytes(&s, 4, parent, 8);
	tpb_str(&s, 5, name);
	tpb_uint(&s, 6, (uint64_t)kind);
	tpb_fixed64(&s, 7, start);
	tpb_fixed64(&s, 8, end);
	if (extra) {
		buf_append(&s, extra->data ? extra->data : "", extra->len);
		buf_free(extra);
	}
	tpb_msg(scope_spans, 2, &s);
}

/* Wraps scope spans (field 2 of ScopeSpans already appended) and resource attrs into a request. */
static inline void tpb_request(struct kp_buf *req, struct kp_buf *resource_attrs,
			       struct kp_buf *scope_spans, const char *scope_name)
{
	struct kp_buf rs = {0}, res = {0}, ss = {0}, sc = {0};
	if (resource_attrs) {
		buf_append(&res, resource_attrs->data ? resource_attrs->data : "",
			   resource_attrs->len);
		buf_free(resource_attrs);
		tpb_msg(&rs, 1, &res);
	}
	tpb_str(&sc, 1, scope_name);
	tpb_msg(&ss, 1, &sc);
	buf_append(&ss, scope_spans->data ? scope_spans->data : "", scope_spans->len);
	buf_free(scope_spans);
	tpb_msg(&rs, 2, &ss);
	tpb_msg(req, 1, &rs);
}

#endif
