/*
 * otlp.c - OTLP/HTTP trace ingest: a bounded protobuf wire-format reader, the OTLP JSON mapping,
 * gzip, the span records both produce, and the responses (contract in otlp.h).
 *
 * Both decoders feed one span builder (span_begin / span_finish), so the validation, the join
 * keys (process.pid, thread.id, the transaction id) and the bounds are the same whichever way a
 * span arrived. Where errors land:
 *
 *   - above the span (the request, ResourceSpans, Resource, ScopeSpans): the framing is broken,
 *     nothing in the body can be trusted, the request is undecodable (400);
 *   - inside one Span message: its bytes are delimited by a length that was itself in bounds, so
 *     the damage is contained; that span is rejected, the others are kept (partial success).
 *
 * The limits in otlp.h are sized for real exporters with room to spare: the JS and Go SDKs batch
 * 512 spans per export and the Collector 8192, so 65536 spans only stop abuse; the SDKs' default
 * attribute count limit is 128; 4 KiB per value keeps SQL text and URLs while a 16 MiB body cannot
 * expand into gigabytes of records.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "common/json.h"
#include "graph/otlp.h"

/* Join keys are kept even past OTLP_MAX_ATTRS: up to this many more slots are reserved. */
#define JOIN_SLOTS  16
#define SPAN_ERRLEN 320
#define KEEP_ERRS   3 /* span error messages quoted in the partial-success message */

/* ------------------------------------------------------------------------------ arena */

struct otlp_arena_blk {
	struct otlp_arena_blk *next;
	size_t used, cap;
	char mem[];
};

static void *arena_alloc(struct otlp_result *r, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct otlp_arena_blk *b = r->arena;
	if (!b || b->used + n > b->cap) {
		size_t cap = n > 65536 ? n : 65536;
		struct otlp_arena_blk *nb = xmalloc(sizeof(*nb) + cap);
		nb->next = b;
		nb->used = 0;
		nb->cap = cap;
		r->arena = nb;
		b = nb;
	}
	void *p = b->mem + b->used;
	b->used += n;
	return p;
}

static char *arena_strndup(struct otlp_result *r, const char *s, size_t n)
{
	char *p = arena_alloc(r, n + 1);
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void otlp_result_free(struct otlp_result *out)
{
	struct otlp_arena_blk *b = out->arena;
	while (b) {
		struct otlp_arena_blk *n = b->next;
		free(b);
		b = n;
	}
	free(out->spans);
	buf_free(&out->resp);
	memset(out, 0, sizeof(*out));
}

/* ------------------------------------------------------------------------------ small helpers */

char *otlp_hex(const uint8_t *id, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[id[i] >> 4];
		out[2 * i + 1] = hx[id[i] & 15];
	}
	out[2 * n] = '\0';
	return out;
}

static void hex_append(struct kp_buf *b, const uint8_t *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	buf_reserve(b, 2 * n + 1);
	for (size_t i = 0; i < n; i++) {
		b->data[b->len++] = hx[p[i] >> 4];
		b->data[b->len++] = hx[p[i] & 15];
	}
	b->data[b->len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/*
 * Decodes base64 (standard or URL alphabet, padding optional) into out (at most cap bytes).
 * Returns the decoded length, or -1 on a bad character, bad padding or overflow.
 */
static long b64_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
	while (n && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)o;
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t i = max;
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	return i;
}

static void fmt_double(struct kp_buf *b, double d, bool quoted_specials)
{
	if (isnan(d)) {
		buf_puts(b, quoted_specials ? "\"NaN\"" : "NaN");
		return;
	}
	if (isinf(d)) {
		buf_puts(b, d < 0 ? (quoted_specials ? "\"-Infinity\"" : "-Infinity")
				  : (quoted_specials ? "\"Infinity\"" : "Infinity"));
		return;
	}
	char t[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(t, sizeof(t), "%.*g", prec, d);
		if (strtod(t, NULL) == d)
			break;
	}
	buf_puts(b, t);
}

/* ------------------------------------------------------------------------------ decode context */

struct dctx {
	const struct otlp_opts *o;
	struct otlp_result *out;
	enum otlp_format fmt;
	const uint8_t *base; /* protobuf: start of the body, for byte offsets */
	bool failed;	     /* undecodable: out->message holds why */
	uint64_t spans_seen;
	char errs[KEEP_ERRS][SPAN_ERRLEN + 200];
	struct kp_buf tmp; /* value rendering scratch */
	struct span_b *sb; /* see span_begin */
};

static void fatal(struct dctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fatal(struct dctx *c, const char *fmt, ...)
{
	if (c->failed)
		return;
	c->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->out->message, sizeof(c->out->message), fmt, ap);
	va_end(ap);
}

static void reject(struct dctx *c, const char *msg)
{
	if (c->out->rejected < KEEP_ERRS) {
		char *d = c->errs[c->out->rejected];
		size_t n = KP_MIN(strlen(msg), sizeof(c->errs[0]) - 1);
		memcpy(d, msg, n);
		d[n] = '\0';
	}
	c->out->rejected++;
}

static const char *lvl_name(const struct dctx *c, int lvl)
{
	static const char *pb[] = {"resource_spans", "scope_spans", "spans"};
	static const char *js[] = {"resourceSpans", "scopeSpans", "spans"};
	return c->fmt == OTLP_FMT_JSON ? js[lvl] : pb[lvl];
}

/* "resource_spans[0].scope_spans[1].spans[3]" */
static void path_str(const struct dctx *c, char *b, size_t n, int ri, int si, int pi)
{
	if (si < 0)
		snprintf(b, n, "%s[%d]", lvl_name(c, 0), ri);
	else if (pi < 0)
		snprintf(b, n, "%s[%d].%s[%d]", lvl_name(c, 0), ri, lvl_name(c, 1), si);
	else
		snprintf(b, n, "%s[%d].%s[%d].%s[%d]", lvl_name(c, 0), ri, lvl_name(c, 1), si,
			 lvl_name(c, 2), pi);
}

/* ------------------------------------------------------------------------------ attributes */

struct attrs_b {
	struct otlp_attr a[OTLP_MAX_ATTRS + JOIN_SLOTS];
	int n;
	uint32_t dropped;
};

static bool is_join_key(const struct dctx *c, const char *k)
{
	if (!strcmp(k, "thread.id") || !strcmp(k, "process.pid") || !strcmp(k, "service.name") ||
	    !strcmp(k, "host.name"))
		return true;
	for (int i = 0; i < c->o->n_txn_keys; i++)
		if (!strcmp(k, c->o->txn_keys[i]))
			return true;
	return false;
}

/*
 * Adds one attribute whose rendered value is in c->tmp. Enforces the key and value bounds and
 * the attribute count (join keys get the reserved slots).
 */
static void attrs_add(struct dctx *c, struct attrs_b *b, const char *key, size_t klen, int type)
{
	if (klen == 0 || klen > OTLP_MAX_KEY || memchr(key, '\0', klen)) {
		b->dropped++;
		return;
	}
	char kb[OTLP_MAX_KEY + 1];
	memcpy(kb, key, klen);
	kb[klen] = '\0';
	bool join = is_join_key(c, kb);
	if (b->n >= OTLP_MAX_ATTRS + (join ? JOIN_SLOTS : 0)) {
		b->dropped++;
		return;
	}
	size_t vlen = c->tmp.len;
	if (vlen > OTLP_MAX_VALUE) {
		if (type != OTLP_V_STR) {
			b->dropped++; /* cutting JSON text would leave it unparseable */
			return;
		}
		vlen = utf8_cut(c->tmp.data, vlen, OTLP_MAX_VALUE);
		c->out->truncated++;
	}
	struct otlp_attr *a = &b->a[b->n++];
	a->key = arena_strndup(c->out, kb, klen);
	a->value = arena_strndup(c->out, vlen ? c->tmp.data : "", vlen);
	a->value_len = (uint32_t)vlen;
	a->type = (uint8_t)type;
}

static const struct otlp_attr *attrs_find(const struct otlp_attr *a, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(a[i].key, key))
			return &a[i];
	return NULL;
}

/* Integer value of an INT attribute, or of a STR one holding only decimal digits. */
static int attr_uint(const struct otlp_attr *a, uint64_t *v)
{
	if (!a || (a->type != OTLP_V_INT && a->type != OTLP_V_STR) || !a->value[0] ||
	    a->value[0] == '-')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(a->value, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*v = x;
	return 0;
}

/* ------------------------------------------------------------------------------ resources */

struct res {
	struct otlp_attr *attrs;
	int n_attrs;
	uint32_t dropped;
	const char *service, *host;
	uint32_t pid;
};

#define PID_MAX 4194304 /* PID_MAX_LIMIT on 64-bit Linux */

static void res_finish(struct dctx *c, struct attrs_b *b, struct res *r)
{
	r->n_attrs = b->n;
	r->dropped = b->dropped;
	r->attrs = arena_alloc(c->out, sizeof(struct otlp_attr) * (size_t)(b->n ? b->n : 1));
	memcpy(r->attrs, b->a, sizeof(struct otlp_attr) * (size_t)b->n);
	const struct otlp_attr *a = attrs_find(r->attrs, r->n_attrs, "service.name");
	r->service = a ? a->value : "";
	a = attrs_find(r->attrs, r->n_attrs, "host.name");
	r->host = a ? a->value : "";
	uint64_t pid;
	r->pid = attr_uint(attrs_find(r->attrs, r->n_attrs, "process.pid"), &pid) == 0 && pid > 0 &&
				 pid <= PID_MAX
			 ? (uint32_t)pid
			 : 0;
}

/* ------------------------------------------------------------------------------ span builder */

struct span_b {
	struct otlp_span s;
	bool have_trace, have_span, have_start, have_end;
	const char *name, *status_msg; /* arena */
	char err[SPAN_ERRLEN];	       /* first problem, "" if none */
	struct attrs_b at;	       /* last: span_begin clears only its counts */
};

/* The one span builder of a decode (a few KiB: reused, not allocated per span). */
static struct span_b *span_begin(struct dctx *c)
{
	if (!c->sb)
		c->sb = xmalloc(sizeof(*c->sb));
	struct span_b *b = c->sb;
	memset(b, 0, offsetof(struct span_b, at));
	b->at.n = 0;
	b->at.dropped = 0;
	return b;
}

static void span_err(struct span_b *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void span_err(struct span_b *b, const char *fmt, ...)
{
	if (b->err[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->err, sizeof(b->err), fmt, ap);
	va_end(ap);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* The transaction id: earliest configured key present, a span attribute before a resource one. */
static const char *find_txn(const struct dctx *c, const struct otlp_attr *sa, int sn,
			    const struct res *r)
{
	for (int i = 0; i < c->o->n_txn_keys; i++) {
		const struct otlp_attr *a = attrs_find(sa, sn, c->o->txn_keys[i]);
		if (!a || !a->value[0])
			a = attrs_find(r->attrs, r->n_attrs, c->o->txn_keys[i]);
		if (a && a->value[0])
			return a->value;
	}
	return "";
}

/*
 * Validates a built span and appends it to the result, or rejects it with a message that
 * says where (path, byte offset for protobuf) and what.
 */
static void span_finish(struct dctx *c, struct span_b *b, const struct res *r, const char *scope,
			const char *where)
{
	if (!b->err[0]) {
		if (!b->have_trace)
			span_err(b, "trace_id missing");
		else if (all_zero(b->s.trace_id, 16))
			span_err(b, "trace_id is all zero (invalid)");
		else if (!b->have_span)
			span_err(b, "span_id missing");
		else if (all_zero(b->s.span_id, 8))
			span_err(b, "span_id is all zero (invalid)");
		else if (!b->have_start || b->s.start_ns == 0)
			span_err(b, "start_time_unix_nano missing");
		else if (!b->have_end || b->s.end_ns == 0)
			span_err(b,
				 "end_time_unix_nano missing (only ended spans can be exported)");
		else if (b->s.end_ns < b->s.start_ns)
			span_err(b,
				 "end_time_unix_nano %" PRIu64
				 " is before start_time_unix_nano %" PRIu64,
				 b->s.end_ns, b->s.start_ns);
	}
	if (b->err[0]) {
		char m[SPAN_ERRLEN + 200];
		if (b->name && b->name[0])
			snprintf(m, sizeof(m), "%s (name '%.40s'): %s", where, b->name, b->err);
		else
			snprintf(m, sizeof(m), "%s: %s", where, b->err);
		reject(c, m);
		return;
	}
	struct otlp_result *o = c->out;
	if (o->n_spans == o->cap_spans) {
		o->cap_spans = o->cap_spans ? o->cap_spans * 2 : 64;
		o->spans = xrealloc(o->spans, o->cap_spans * sizeof(*o->spans));
	}
	struct otlp_span *s = &o->spans[o->n_spans++];
	*s = b->s;
	s->n_attrs = (uint16_t)b->at.n;
	struct otlp_attr *sa = arena_alloc(o, sizeof(*sa) * (size_t)(b->at.n ? b->at.n : 1));
	memcpy(sa, b->at.a, sizeof(*sa) * (size_t)b->at.n);
	s->attrs = sa;
	s->res_attrs = r->attrs;
	s->n_res_attrs = (uint16_t)r->n_attrs;
	s->dropped_attrs += b->at.dropped;
	s->service = r->service;
	s->host = r->host;
	s->pid = r->pid;
	s->scope = scope;
	s->name = b->name ? b->name : "";
	s->status_msg = b->status_msg ? b->status_msg : "";
	uint64_t tid;
	s->tid = attr_uint(attrs_find(sa, b->at.n, "thread.id"), &tid) == 0 && tid <= UINT32_MAX
			 ? (uint32_t)tid
			 : 0;
	s->txn = find_txn(c, sa, b->at.n, r);
}

/* ================================================================== protobuf wire format */

/*
 * The wire format, as read here (https://protobuf.dev/programming-guides/encoding/):
 *
 *   field   := tag value
 *   tag     := varint (field_number << 3 | wire_type)
 *   value   := varint              wire type 0 (int32/64, uint, bool, enum), at most 10 bytes
 *            | 8 bytes LE          wire type 1 (fixed64, double)
 *            | varint len, bytes   wire type 2 (string, bytes, sub-message, packed)
 *            | fields, end-group   wire type 3 (start group, deprecated) ... 4 (end group)
 *            | 4 bytes LE          wire type 5 (fixed32, float)
 *
 * Every length is checked against the bytes left in its enclosing message before it is used.
 */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

struct pb {
	const uint8_t *base; /* the body, for offsets in messages */
	const uint8_t *p, *end;
};

struct pb_field {
	uint32_t num;
	uint8_t wt;
	uint64_t v;	     /* varint, fixed64, fixed32 */
	const uint8_t *data; /* WT_LEN */
	size_t len;
	size_t off; /* byte offset of the tag in the body */
};

static const char *wt_name(int wt)
{
	static const char *n[] = {"0 (varint)",	     "1 (fixed64)",   "2 (length-delimited)",
				  "3 (start group)", "4 (end group)", "5 (fixed32)",
				  "6 (invalid)",     "7 (invalid)"};
	return n[wt & 7];
}

static int pb_varint(struct pb *r, uint64_t *v, char *err, size_t errlen)
{
	uint64_t x = 0;
	const uint8_t *st = r->p;
	for (int i = 0; i < 10; i++) {
		if (r->p >= r->end) {
			snprintf(err, errlen, "byte %zu: truncated varint", (size_t)(st - r->base));
			return -EINVAL;
		}
		uint8_t b = *r->p++;
		if (i == 9 && b > 1) {
			snprintf(err, errlen, "byte %zu: varint longer than 64 bits",
				 (size_t)(st - r->base));
			return -EINVAL;
		}
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	snprintf(err, errlen, "byte %zu: varint longer than 10 bytes", (size_t)(st - r->base));
	return -EINVAL;
}

static int pb_read_value(struct pb *r, struct pb_field *f, int depth, char *err, size_t errlen);

/* Skips the fields of a group (wire type 3) up to its end-group tag for field num. */
static int pb_skip_group(struct pb *r, uint32_t num, int depth, char *err, size_t errlen)
{
	if (depth >= OTLP_MAX_GROUP_DEPTH) {
		snprintf(err, errlen, "byte %zu: groups nested deeper than %d",
			 (size_t)(r->p - r->base), OTLP_MAX_GROUP_DEPTH);
		return -EINVAL;
	}
	for (;;) {
		if (r->p >= r->end) {
			snprintf(err, errlen, "byte %zu: group (field %u) not closed",
				 (size_t)(r->p - r->base), num);
			return -EINVAL;
		}
		struct pb_field f = {.off = (size_t)(r->p - r->base)};
		uint64_t tag;
		if (pb_varint(r, &tag, err, errlen) < 0)
			return -EINVAL;
		if (tag > UINT32_MAX || (tag >> 3) == 0) {
			snprintf(err, errlen, "byte %zu: bad field tag %" PRIu64, f.off, tag);
			return -EINVAL;
		}
		f.num = (uint32_t)(tag >> 3);
		f.wt = (uint8_t)(tag & 7);
		if (f.wt == WT_EGROUP) {
			if (f.num != num) {
				snprintf(err, errlen, "byte %zu: end of group %u inside group %u",
					 f.off, f.num, num);
				return -EINVAL;
			}
			return 0;
		}
		if (pb_read_value(r, &f, depth + 1, err, errlen) < 0)
			return -EINVAL;
	}
}

/* Reads the value of a field whose tag is in f (num, wt, off). */
static int pb_read_value(struct pb *r, struct pb_field *f, int depth, char *err, size_t errlen)
{
	switch (f->wt) {
	case WT_VARINT:
		return pb_varint(r, &f->v, err, errlen);
	case WT_I64:
	case WT_I32: {
		size_t n = f->wt == WT_I64 ? 8 : 4;
		if ((size_t)(r->end - r->p) < n) {
			snprintf(err, errlen,
				 "byte %zu: field %u: fixed%zu value truncated (%zu bytes left)",
				 f->off, f->num, n * 8, (size_t)(r->end - r->p));
			return -EINVAL;
		}
		uint64_t v = 0;
		for (size_t i = 0; i < n; i++)
			v |= (uint64_t)r->p[i] << (8 * i);
		f->v = v;
		r->p += n;
		return 0;
	}
	case WT_LEN: {
		uint64_t len;
		if (pb_varint(r, &len, err, errlen) < 0)
			return -EINVAL;
		size_t left = (size_t)(r->end - r->p);
		if (len > left) {
			snprintf(err, errlen,
				 "byte %zu: field %u: length %" PRIu64
				 " runs past the end of its message (%zu bytes left)",
				 f->off, f->num, len, left);
			return -EINVAL;
		}
		f->data = r->p;
		f->len = (size_t)len;
		r->p += len;
		return 0;
	}
	case WT_SGROUP: {
		const uint8_t *st = r->p;
		if (pb_skip_group(r, f->num, depth, err, errlen) < 0)
			return -EINVAL;
		f->data = st;
		f->len = (size_t)(r->p - st);
		return 0;
	}
	case WT_EGROUP:
		snprintf(err, errlen, "byte %zu: field %u: end-group tag without a group", f->off,
			 f->num);
		return -EINVAL;
	default:
		snprintf(err, errlen, "byte %zu: field %u: invalid wire type %d", f->off, f->num,
			 f->wt);
		return -EINVAL;
	}
}

/*
 * Reads the next field. Returns 1 with *f filled, 0 at the end of the message, -EINVAL on
 * malformed input (err says what and at which byte). Unknown fields of every wire type can be
 * skipped by ignoring what this returns.
 */
static int pb_next(struct pb *r, struct pb_field *f, char *err, size_t errlen)
{
	if (r->p >= r->end)
		return 0;
	memset(f, 0, sizeof(*f));
	f->off = (size_t)(r->p - r->base);
	uint64_t tag;
	if (pb_varint(r, &tag, err, errlen) < 0)
		return -EINVAL;
	if (tag > UINT32_MAX || (tag >> 3) == 0) {
		snprintf(err, errlen,
			 "byte %zu: bad field tag %" PRIu64 " (field number 0 or too large)",
			 f->off, tag);
		return -EINVAL;
	}
	f->num = (uint32_t)(tag >> 3);
	f->wt = (uint8_t)(tag & 7);
	return pb_read_value(r, f, 0, err, errlen) < 0 ? -EINVAL : 1;
}

static struct pb pb_sub(const struct pb *parent, const struct pb_field *f)
{
	struct pb s = {parent->base, f->data, f->data + f->len};
	return s;
}

/* A known field with the wrong wire type. */
static bool pb_want(const struct pb_field *f, int wt, const char *name, char *err, size_t errlen)
{
	if (f->wt == wt)
		return true;
	snprintf(err, errlen, "byte %zu: field %u (%s) has wire type %s, expected %s", f->off,
		 f->num, name, wt_name(f->wt), wt_name(wt));
	return false;
}

/* ---- AnyValue rendering */

static int pb_kv_parts(struct pb *r, const struct pb_field *kvf, const uint8_t **key, size_t *klen,
		       struct pb_field *val, bool *has_val, char *err, size_t errlen);

/*
 * Renders the AnyValue in [r->p, r->end) into c->tmp. Top level (nested == false): a string is
 * its raw bytes, other types as described in otlp.h; nested: JSON text. Returns the
 * otlp_vtype, -EINVAL on malformed bytes (err set), -E2BIG when nested too deep or too long.
 */
static int pb_value(struct dctx *c, struct pb *r, int depth, bool nested, char *err, size_t errlen)
{
	struct kp_buf *o = &c->tmp;
	if (depth > OTLP_MAX_DEPTH || o->len > 2 * OTLP_MAX_VALUE)
		return -E2BIG;
	size_t mark = o->len;
	int type = OTLP_V_NONE;
	struct pb_field f;
	int rc;
	while ((rc = pb_next(r, &f, err, errlen)) > 0) {
		if (f.num < 1 || f.num > 7)
			continue; /* unknown member: skipped */
		static const int want[8] = {0,	    WT_LEN, WT_VARINT, WT_VARINT,
					    WT_I64, WT_LEN, WT_LEN,    WT_LEN};
		static const char *names[8] = {"",
					       "string_value",
					       "bool_value",
					       "int_value",
					       "double_value",
					       "array_value",
					       "kvlist_value",
					       "bytes_value"};
		if (!pb_want(&f, want[f.num], names[f.num], err, errlen))
			return -EINVAL;
		o->len = mark; /* oneof: the last member present wins */
		if (o->data)
			o->data[mark] = '\0';
		switch (f.num) {
		case 1:
			type = OTLP_V_STR;
			if (nested)
				json_str(o, (const char *)f.data, f.len);
			else /* attrs_add cuts it to the bound; copy no more than that needs */
				buf_append(o, f.data, KP_MIN(f.len, (size_t)OTLP_MAX_VALUE + 4));
			break;
		case 2:
			type = OTLP_V_BOOL;
			buf_puts(o, f.v ? "true" : "false");
			break;
		case 3:
			type = OTLP_V_INT;
			buf_printf(o, "%" PRId64, (int64_t)f.v);
			break;
		case 4: {
			type = OTLP_V_DOUBLE;
			double d;
			memcpy(&d, &f.v, 8);
			fmt_double(o, d, nested);
			break;
		}
		case 5: { /* ArrayValue { repeated AnyValue values = 1; } */
			type = OTLP_V_ARRAY;
			struct pb ar = pb_sub(r, &f);
			struct pb_field e;
			int n = 0, erc;
			buf_puts(o, "[");
			while ((erc = pb_next(&ar, &e, err, errlen)) > 0) {
				if (e.num != 1)
					continue;
				if (!pb_want(&e, WT_LEN, "array values", err, errlen))
					return -EINVAL;
				if (n++)
					buf_puts(o, ",");
				struct pb ev = pb_sub(&ar, &e);
				int t = pb_value(c, &ev, depth + 1, true, err, errlen);
				if (t < 0)
					return t;
			}
			if (erc < 0)
				return -EINVAL;
			buf_puts(o, "]");
			break;
		}
		case 6: { /* KeyValueList { repeated KeyValue values = 1; } */
			type = OTLP_V_KVLIST;
			struct pb kl = pb_sub(r, &f);
			struct pb_field e;
			int n = 0, erc;
			buf_puts(o, "{");
			while ((erc = pb_next(&kl, &e, err, errlen)) > 0) {
				if (e.num != 1)
					continue;
				if (!pb_want(&e, WT_LEN, "kvlist values", err, errlen))
					return -EINVAL;
				const uint8_t *k;
				size_t kn;
				struct pb_field vf;
				bool hv;
				if (pb_kv_parts(&kl, &e, &k, &kn, &vf, &hv, err, errlen) < 0)
					return -EINVAL;
				if (n++)
					buf_puts(o, ",");
				json_str(o, (const char *)k, kn);
				buf_puts(o, ":");
				if (!hv) {
					buf_puts(o, "null");
					continue;
				}
				struct pb vv = pb_sub(&kl, &vf);
				int t = pb_value(c, &vv, depth + 1, true, err, errlen);
				if (t < 0)
					return t;
			}
			if (erc < 0)
				return -EINVAL;
			buf_puts(o, "}");
			break;
		}
		case 7:
			type = OTLP_V_BYTES;
			if (f.len > (size_t)OTLP_MAX_VALUE / 2)
				return -E2BIG; /* hex would pass the value bound */
			if (nested)
				buf_puts(o, "\"");
			hex_append(o, f.data, f.len);
			if (nested)
				buf_puts(o, "\"");
			break;
		}
		if (o->len > 2 * OTLP_MAX_VALUE + 8)
			return -E2BIG;
	}
	if (rc < 0)
		return -EINVAL;
	if (type == OTLP_V_NONE && nested)
		buf_puts(o, "null");
	return type;
}

/* Splits a KeyValue {key = 1; value = 2} message into its key bytes and value field. */
static int pb_kv_parts(struct pb *r, const struct pb_field *kvf, const uint8_t **key, size_t *klen,
		       struct pb_field *val, bool *has_val, char *err, size_t errlen)
{
	struct pb kv = pb_sub(r, kvf);
	struct pb_field f;
	int rc;
	*key = (const uint8_t *)"";
	*klen = 0;
	*has_val = false;
	while ((rc = pb_next(&kv, &f, err, errlen)) > 0) {
		if (f.num == 1) {
			if (!pb_want(&f, WT_LEN, "key", err, errlen))
				return -EINVAL;
			*key = f.data;
			*klen = f.len;
		} else if (f.num == 2) {
			if (!pb_want(&f, WT_LEN, "value", err, errlen))
				return -EINVAL;
			*val = f;
			*has_val = true;
		}
	}
	return rc < 0 ? -EINVAL : 0;
}

/* One attribute (a KeyValue field) into the builder. -EINVAL on malformed bytes. */
static int pb_attr(struct dctx *c, struct pb *r, const struct pb_field *kvf, struct attrs_b *b,
		   char *err, size_t errlen)
{
	const uint8_t *k;
	size_t kn;
	struct pb_field vf;
	bool hv;
	if (pb_kv_parts(r, kvf, &k, &kn, &vf, &hv, err, errlen) < 0)
		return -EINVAL;
	c->tmp.len = 0;
	if (c->tmp.data)
		c->tmp.data[0] = '\0';
	int t = OTLP_V_NONE;
	if (hv) {
		struct pb v = pb_sub(r, &vf);
		t = pb_value(c, &v, 0, false, err, errlen);
		if (t == -EINVAL)
			return -EINVAL;
		if (t < 0) { /* too deep or too long: dropped, counted */
			b->dropped++;
			return 0;
		}
	}
	attrs_add(c, b, (const char *)k, kn, t);
	return 0;
}

/* ---- spans */

static void pb_id(struct span_b *b, const struct pb_field *f, uint8_t *dst, size_t n,
		  const char *name, bool *have)
{
	if (f->len == 0 && dst == b->s.parent_id)
		return; /* an empty parent_span_id is a root */
	if (f->len != n) {
		span_err(b, "%s must be %zu bytes, got %zu", name, n, f->len);
		return;
	}
	memcpy(dst, f->data, n);
	if (have)
		*have = true;
}

static void pb_span(struct dctx *c, struct pb *r, const struct pb_field *sf, const struct res *res,
		    const char *scope, int ri, int si, int pi)
{
	char where[160], pth[120];
	path_str(c, pth, sizeof(pth), ri, si, pi);
	snprintf(where, sizeof(where), "%s at byte %zu", pth, sf->off);
	if (c->spans_seen++ >= OTLP_MAX_SPANS) {
		char m[200];
		snprintf(m, sizeof(m),
			 "%s: more than %d spans in one request; lower the exporter's batch size",
			 pth, OTLP_MAX_SPANS);
		reject(c, m);
		return;
	}
	struct span_b *b = span_begin(c);
	struct pb sp = pb_sub(r, sf);
	struct pb_field f;
	char err[SPAN_ERRLEN] = "";
	int rc;
	/* Semantic problems are noted and decoding goes on (the name helps the message); a
	 * framing error ends it. */
	while ((rc = pb_next(&sp, &f, err, sizeof(err))) != 0) {
		if (rc < 0) {
			span_err(b, "%s", err);
			break;
		}
		err[0] = '\0';
		switch (f.num) {
		case 1:
			if (pb_want(&f, WT_LEN, "trace_id", err, sizeof(err)))
				pb_id(b, &f, b->s.trace_id, 16, "trace_id", &b->have_trace);
			break;
		case 2:
			if (pb_want(&f, WT_LEN, "span_id", err, sizeof(err)))
				pb_id(b, &f, b->s.span_id, 8, "span_id", &b->have_span);
			break;
		case 4:
			if (pb_want(&f, WT_LEN, "parent_span_id", err, sizeof(err)))
				pb_id(b, &f, b->s.parent_id, 8, "parent_span_id", NULL);
			break;
		case 5:
			if (pb_want(&f, WT_LEN, "name", err, sizeof(err))) {
				size_t n = utf8_cut((const char *)f.data, f.len, OTLP_MAX_VALUE);
				c->out->truncated += n < f.len;
				b->name = arena_strndup(c->out, (const char *)f.data, n);
			}
			break;
		case 6:
			if (pb_want(&f, WT_VARINT, "kind", err, sizeof(err)))
				b->s.kind = f.v <= OTLP_KIND_CONSUMER ? (uint8_t)f.v : 0;
			break;
		case 7:
			if (pb_want(&f, WT_I64, "start_time_unix_nano", err, sizeof(err))) {
				b->s.start_ns = f.v;
				b->have_start = true;
			}
			break;
		case 8:
			if (pb_want(&f, WT_I64, "end_time_unix_nano", err, sizeof(err))) {
				b->s.end_ns = f.v;
				b->have_end = true;
			}
			break;
		case 9:
			if (pb_want(&f, WT_LEN, "attributes", err, sizeof(err)) &&
			    pb_attr(c, &sp, &f, &b->at, err, sizeof(err)) < 0 && !err[0])
				snprintf(err, sizeof(err), "byte %zu: bad attribute", f.off);
			break;
		case 10:
			if (pb_want(&f, WT_VARINT, "dropped_attributes_count", err, sizeof(err)))
				b->s.dropped_attrs += (uint32_t)KP_MIN(f.v, UINT32_MAX / 2);
			break;
		case 11:
			if (pb_want(&f, WT_LEN, "events", err, sizeof(err)) &&
			    b->s.n_events < UINT16_MAX)
				b->s.n_events++;
			break;
		case 15: { /* Status { string message = 2; StatusCode code = 3; } */
			if (!pb_want(&f, WT_LEN, "status", err, sizeof(err)))
				break;
			struct pb st = pb_sub(&sp, &f);
			struct pb_field g;
			int src;
			while ((src = pb_next(&st, &g, err, sizeof(err))) > 0) {
				if (g.num == 2 &&
				    pb_want(&g, WT_LEN, "status.message", err, sizeof(err))) {
					size_t n = utf8_cut((const char *)g.data, g.len,
							    OTLP_MAX_VALUE);
					b->status_msg =
						arena_strndup(c->out, (const char *)g.data, n);
				} else if (g.num == 3 && pb_want(&g, WT_VARINT, "status.code", err,
								 sizeof(err))) {
					b->s.status = g.v <= OTLP_STATUS_ERROR ? (uint8_t)g.v : 0;
				}
				if (err[0])
					break;
			}
			break;
		}
		default:
			break; /* trace_state, links, flags, and fields added later: skipped */
		}
		if (err[0])
			span_err(b, "%s", err);
	}
	span_finish(c, b, res, scope, where);
}

/* ---- the levels above the span: errors here are fatal */

static int pb_attrs_msg(struct dctx *c, struct pb *m, uint32_t attr_field, struct attrs_b *b,
			const char *what)
{
	struct pb_field f;
	char err[SPAN_ERRLEN] = "";
	int rc;
	while ((rc = pb_next(m, &f, err, sizeof(err))) > 0) {
		if (f.num != attr_field)
			continue;
		if (!pb_want(&f, WT_LEN, "attributes", err, sizeof(err)) ||
		    pb_attr(c, m, &f, b, err, sizeof(err)) < 0) {
			fatal(c, "%s: %s", what, err);
			return -EINVAL;
		}
	}
	if (rc < 0) {
		fatal(c, "%s: %s", what, err);
		return -EINVAL;
	}
	return 0;
}

static int pb_scope_spans(struct dctx *c, struct pb *r, const struct pb_field *ssf,
			  const struct res *res, int ri, int si)
{
	char pth[120], err[SPAN_ERRLEN] = "";
	path_str(c, pth, sizeof(pth), ri, si, -1);
	struct pb m = pb_sub(r, ssf);
	struct pb_field f;
	const char *scope = "";
	int rc;
	/* Pass 1: the scope (it may follow the spans on the wire). */
	while ((rc = pb_next(&m, &f, err, sizeof(err))) > 0) {
		if (f.num != 1)
			continue;
		if (!pb_want(&f, WT_LEN, "scope", err, sizeof(err)))
			break;
		struct pb sm = pb_sub(&m, &f);
		struct pb_field g;
		int src;
		while ((src = pb_next(&sm, &g, err, sizeof(err))) > 0)
			if (g.num == 1 && pb_want(&g, WT_LEN, "scope.name", err, sizeof(err)))
				scope = arena_strndup(c->out, (const char *)g.data,
						      utf8_cut((const char *)g.data, g.len, 256));
			else if (err[0])
				break;
		if (err[0])
			break;
	}
	if (rc < 0 || err[0]) {
		fatal(c, "%s: %s", pth, err);
		return -EINVAL;
	}
	/* Pass 2: the spans. */
	m = pb_sub(r, ssf);
	int pi = 0;
	while ((rc = pb_next(&m, &f, err, sizeof(err))) > 0) {
		if (f.num != 2)
			continue;
		if (!pb_want(&f, WT_LEN, "spans", err, sizeof(err))) {
			fatal(c, "%s: %s", pth, err);
			return -EINVAL;
		}
		pb_span(c, &m, &f, res, scope, ri, si, pi++);
	}
	if (rc < 0) {
		fatal(c, "%s: %s", pth, err);
		return -EINVAL;
	}
	return 0;
}

static int pb_resource_spans(struct dctx *c, struct pb *r, const struct pb_field *rsf, int ri)
{
	char pth[120], err[SPAN_ERRLEN] = "";
	path_str(c, pth, sizeof(pth), ri, -1, -1);
	struct pb m = pb_sub(r, rsf);
	struct pb_field f;
	struct attrs_b *ab = xcalloc(1, sizeof(*ab));
	struct res res;
	int rc, ret = -EINVAL;
	/* Pass 1: the resource (its attributes apply to every span, wherever it sits). */
	while ((rc = pb_next(&m, &f, err, sizeof(err))) > 0) {
		if (f.num != 1)
			continue;
		if (!pb_want(&f, WT_LEN, "resource", err, sizeof(err)))
			break;
		char what[160];
		snprintf(what, sizeof(what), "%s.resource", pth);
		struct pb rm = pb_sub(&m, &f);
		if (pb_attrs_msg(c, &rm, 1, ab, what) < 0)
			goto cleanup;
	}
	if (rc < 0 || err[0]) {
		fatal(c, "%s: %s", pth, err);
		goto cleanup;
	}
	res_finish(c, ab, &res);
	/* Pass 2: scope_spans (2), or the pre-1.0 instrumentation_library_spans (1000). */
	m = pb_sub(r, rsf);
	int si = 0;
	while ((rc = pb_next(&m, &f, err, sizeof(err))) > 0) {
		if (f.num != 2 && f.num != 1000)
			continue;
		if (!pb_want(&f, WT_LEN, "scope_spans", err, sizeof(err))) {
			fatal(c, "%s: %s", pth, err);
			goto cleanup;
		}
		if (pb_scope_spans(c, &m, &f, &res, ri, si++) < 0)
			goto cleanup;
	}
	if (rc < 0) {
		fatal(c, "%s: %s", pth, err);
		goto cleanup;
	}
	ret = 0;
cleanup:
	free(ab);
	return ret;
}

static int pb_request(struct dctx *c, const uint8_t *p, size_t len)
{
	struct pb r = {p, p, p + len};
	struct pb_field f;
	char err[SPAN_ERRLEN] = "";
	int rc, ri = 0;
	while ((rc = pb_next(&r, &f, err, sizeof(err))) > 0) {
		if (f.num != 1)
			continue;
		if (!pb_want(&f, WT_LEN, "resource_spans", err, sizeof(err))) {
			fatal(c, "%s", err);
			return -EINVAL;
		}
		if (pb_resource_spans(c, &r, &f, ri++) < 0)
			return -EINVAL;
	}
	if (rc < 0) {
		fatal(c, "%s", err);
		return -EINVAL;
	}
	return 0;
}

/* ================================================================== OTLP JSON */

/*
 * The OTLP JSON mapping differs from the proto3 JSON mapping in a few ways real senders rely on:
 * trace and span ids are hex strings (not base64), enums are integers (names are accepted
 * too), keys are lowerCamelCase (the proto field names in snake_case are accepted too), and
 * unknown keys are ignored. 64-bit integers arrive as strings or as numbers.
 */

/* A member by its camelCase or snake_case name; null counts as absent. */
static const struct json *jget(const struct json *o, const char *camel, const char *snake)
{
	const struct json *v = json_get(o, camel);
	if (!v || v->type == JSON_NULL)
		v = json_get(o, snake);
	return v && v->type != JSON_NULL ? v : NULL;
}

static const char *jtype_name(const struct json *v)
{
	static const char *n[] = {"null",     "a boolean", "a number",
				  "a string", "an array",  "an object"};
	return v ? n[v->type] : "absent";
}

static int js_value(struct dctx *c, const struct json *v, int depth, bool nested);

/* A KeyValue object's key and value, or -EINVAL with err. */
static int js_kv(const struct json *kv, const char **key, size_t *klen, const struct json **val,
		 char *err, size_t errlen)
{
	if (!kv || kv->type != JSON_OBJ) {
		snprintf(err, errlen, "attribute is %s, expected an object {key, value}",
			 jtype_name(kv));
		return -EINVAL;
	}
	const struct json *k = json_get(kv, "key");
	if (!k || k->type != JSON_STR) {
		snprintf(err, errlen, "attribute key is %s, expected a string", jtype_name(k));
		return -EINVAL;
	}
	*key = k->u.str.s;
	*klen = k->u.str.len;
	*val = json_get(kv, "value");
	if (*val && (*val)->type == JSON_NULL)
		*val = NULL;
	if (*val && (*val)->type != JSON_OBJ) {
		snprintf(err, errlen, "attribute '%.60s': value is %s, expected an AnyValue object",
			 k->u.str.s, jtype_name(*val));
		return -EINVAL;
	}
	return 0;
}

/*
 * Renders a JSON AnyValue object into c->tmp (same conventions as pb_value). Returns the type,
 * -EINVAL for a malformed value, -E2BIG when too deep or too long.
 */
static int js_value(struct dctx *c, const struct json *v, int depth, bool nested)
{
	struct kp_buf *o = &c->tmp;
	if (depth > OTLP_MAX_DEPTH || o->len > 2 * OTLP_MAX_VALUE)
		return -E2BIG;
	if (!v || v->type != JSON_OBJ || v->u.arr.n == 0) {
		if (v && v->type != JSON_OBJ)
			return -EINVAL;
		if (nested)
			buf_puts(o, "null");
		return OTLP_V_NONE;
	}
	const struct json *x;
	if ((x = jget(v, "stringValue", "string_value"))) {
		if (x->type != JSON_STR)
			return -EINVAL;
		if (nested)
			json_str(o, x->u.str.s, x->u.str.len);
		else
			buf_append(o, x->u.str.s, KP_MIN(x->u.str.len, (size_t)OTLP_MAX_VALUE + 4));
		return OTLP_V_STR;
	}
	if ((x = jget(v, "boolValue", "bool_value"))) {
		if (x->type != JSON_BOOL)
			return -EINVAL;
		buf_puts(o, x->u.b ? "true" : "false");
		return OTLP_V_BOOL;
	}
	if ((x = jget(v, "intValue", "int_value"))) {
		int64_t i;
		if (json_int(x, &i) < 0)
			return -EINVAL;
		buf_printf(o, "%" PRId64, i);
		return OTLP_V_INT;
	}
	if ((x = jget(v, "doubleValue", "double_value"))) {
		double d;
		if (x->type == JSON_NUM)
			d = x->u.num.d;
		else if (x->type == JSON_STR && !strcmp(x->u.str.s, "NaN"))
			d = NAN;
		else if (x->type == JSON_STR && !strcmp(x->u.str.s, "Infinity"))
			d = INFINITY;
		else if (x->type == JSON_STR && !strcmp(x->u.str.s, "-Infinity"))
			d = -INFINITY;
		else
			return -EINVAL;
		fmt_double(o, d, nested);
		return OTLP_V_DOUBLE;
	}
	if ((x = jget(v, "bytesValue", "bytes_value"))) {
		if (x->type != JSON_STR || x->u.str.len > OTLP_MAX_VALUE)
			return x->type != JSON_STR ? -EINVAL : -E2BIG;
		uint8_t raw[OTLP_MAX_VALUE];
		long n = b64_decode(x->u.str.s, x->u.str.len, raw, sizeof(raw));
		if (n < 0)
			return -EINVAL;
		if (nested)
			buf_puts(o, "\"");
		hex_append(o, raw, (size_t)n);
		if (nested)
			buf_puts(o, "\"");
		return OTLP_V_BYTES;
	}
	if ((x = jget(v, "arrayValue", "array_value"))) {
		const struct json *vals = x->type == JSON_OBJ ? json_get(x, "values") : NULL;
		if (x->type != JSON_OBJ || (vals && vals->type != JSON_ARR))
			return -EINVAL;
		buf_puts(o, "[");
		for (size_t i = 0; vals && i < vals->u.arr.n; i++) {
			if (i)
				buf_puts(o, ",");
			int t = js_value(c, vals->u.arr.items[i], depth + 1, true);
			if (t < 0)
				return t;
		}
		buf_puts(o, "]");
		return OTLP_V_ARRAY;
	}
	if ((x = jget(v, "kvlistValue", "kvlist_value"))) {
		const struct json *vals = x->type == JSON_OBJ ? json_get(x, "values") : NULL;
		if (x->type != JSON_OBJ || (vals && vals->type != JSON_ARR))
			return -EINVAL;
		buf_puts(o, "{");
		for (size_t i = 0; vals && i < vals->u.arr.n; i++) {
			const char *k;
			size_t kn;
			const struct json *val;
			char err[8];
			if (js_kv(vals->u.arr.items[i], &k, &kn, &val, err, sizeof(err)) < 0)
				return -EINVAL;
			if (i)
				buf_puts(o, ",");
			json_str(o, k, kn);
			buf_puts(o, ":");
			int t = js_value(c, val, depth + 1, true);
			if (t < 0)
				return t;
		}
		buf_puts(o, "}");
		return OTLP_V_KVLIST;
	}
	/* Only unknown members: an empty value, as protobuf would skip them. */
	if (nested)
		buf_puts(o, "null");
	return OTLP_V_NONE;
}

static int js_attrs(struct dctx *c, const struct json *arr, struct attrs_b *b, char *err,
		    size_t errlen)
{
	if (!arr || arr->type == JSON_NULL)
		return 0;
	if (arr->type != JSON_ARR) {
		snprintf(err, errlen, "attributes is %s, expected an array", jtype_name(arr));
		return -EINVAL;
	}
	for (size_t i = 0; i < arr->u.arr.n; i++) {
		const char *k;
		size_t kn;
		const struct json *val;
		if (js_kv(arr->u.arr.items[i], &k, &kn, &val, err, errlen) < 0)
			return -EINVAL;
		c->tmp.len = 0;
		if (c->tmp.data)
			c->tmp.data[0] = '\0';
		int t = js_value(c, val, 0, false);
		if (t == -EINVAL) {
			snprintf(err, errlen,
				 "attribute '%.60s': malformed AnyValue (a value member of the "
				 "wrong "
				 "JSON type)",
				 k);
			return -EINVAL;
		}
		if (t < 0) {
			b->dropped++;
			continue;
		}
		attrs_add(c, b, k, kn, t);
	}
	return 0;
}

/* A trace or span id: hex (the OTLP rule) or, from old senders, base64. */
static void js_id(struct span_b *b, const struct json *v, uint8_t *dst, size_t n, const char *name,
		  bool *have)
{
	if (!v || v->type == JSON_NULL)
		return;
	if (v->type != JSON_STR) {
		span_err(b, "%s is %s, expected a hex string", name, jtype_name(v));
		return;
	}
	const char *s = v->u.str.s;
	size_t len = v->u.str.len;
	if (len == 0) {
		if (dst != b->s.parent_id)
			span_err(b, "%s is empty", name);
		return;
	}
	if (len == 2 * n) {
		for (size_t i = 0; i < n; i++) {
			int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				span_err(b, "%s '%.40s' is not hex (bad character at %zu)", name, s,
					 (size_t)(hi < 0 ? 2 * i : 2 * i + 1));
				return;
			}
			dst[i] = (uint8_t)(hi << 4 | lo);
		}
		if (have)
			*have = true;
		return;
	}
	uint8_t raw[16];
	if (len <= 24 && b64_decode(s, len, raw, sizeof(raw)) == (long)n) {
		memcpy(dst, raw, n);
		if (have)
			*have = true;
		return;
	}
	span_err(b, "%s must be %zu hex digits (%zu bytes), got '%.40s' (%zu characters)", name,
		 2 * n, n, s, len);
}

/* An enum: an integer, or one of names[] (with or without its prefix). -1 if neither. */
static int js_enum(const struct json *v, const char *prefix, const char *const *names, int n)
{
	int64_t i;
	if (json_int(v, &i) == 0)
		return i >= 0 && i < n ? (int)i : 0; /* unknown numbers: unspecified */
	if (!v || v->type != JSON_STR)
		return -1;
	const char *s = v->u.str.s;
	size_t pl = strlen(prefix);
	if (!strncasecmp(s, prefix, pl))
		s += pl;
	for (int k = 0; k < n; k++)
		if (!strcasecmp(s, names[k]))
			return k;
	return -1;
}

static bool js_time(struct span_b *b, const struct json *v, uint64_t *dst, const char *name)
{
	if (!v || v->type == JSON_NULL)
		return false;
	if (json_uint(v, dst) < 0) {
		span_err(b, "%s must be an unsigned integer (string or number), got %s", name,
			 jtype_name(v));
		return false;
	}
	return true;
}

static void js_span(struct dctx *c, const struct json *sp, const struct res *res, const char *scope,
		    int ri, int si, int pi)
{
	char pth[120];
	path_str(c, pth, sizeof(pth), ri, si, pi);
	if (c->spans_seen++ >= OTLP_MAX_SPANS) {
		char m[200];
		snprintf(m, sizeof(m),
			 "%s: more than %d spans in one request; lower the exporter's batch size",
			 pth, OTLP_MAX_SPANS);
		reject(c, m);
		return;
	}
	struct span_b *b = span_begin(c);
	if (sp->type != JSON_OBJ) {
		span_err(b, "span is %s, expected an object", jtype_name(sp));
		goto done;
	}
	const struct json *nm = json_get(sp, "name");
	if (nm && nm->type == JSON_STR) {
		size_t n = utf8_cut(nm->u.str.s, nm->u.str.len, OTLP_MAX_VALUE);
		c->out->truncated += n < nm->u.str.len;
		b->name = arena_strndup(c->out, nm->u.str.s, n);
	} else if (nm && nm->type != JSON_NULL) {
		span_err(b, "name is %s, expected a string", jtype_name(nm));
	}
	js_id(b, jget(sp, "traceId", "trace_id"), b->s.trace_id, 16, "traceId", &b->have_trace);
	js_id(b, jget(sp, "spanId", "span_id"), b->s.span_id, 8, "spanId", &b->have_span);
	js_id(b, jget(sp, "parentSpanId", "parent_span_id"), b->s.parent_id, 8, "parentSpanId",
	      NULL);
	static const char *const kinds[] = {"UNSPECIFIED", "INTERNAL", "SERVER",
					    "CLIENT",	   "PRODUCER", "CONSUMER"};
	const struct json *k = json_get(sp, "kind");
	if (k && k->type != JSON_NULL) {
		int kv = js_enum(k, "SPAN_KIND_", kinds, 6);
		if (kv < 0)
			span_err(b, "kind must be 0..5 or SPAN_KIND_*, got %s", jtype_name(k));
		else
			b->s.kind = (uint8_t)kv;
	}
	b->have_start = js_time(b, jget(sp, "startTimeUnixNano", "start_time_unix_nano"),
				&b->s.start_ns, "startTimeUnixNano");
	b->have_end = js_time(b, jget(sp, "endTimeUnixNano", "end_time_unix_nano"), &b->s.end_ns,
			      "endTimeUnixNano");
	char err[SPAN_ERRLEN] = "";
	if (js_attrs(c, json_get(sp, "attributes"), &b->at, err, sizeof(err)) < 0)
		span_err(b, "%s", err);
	uint64_t dr;
	if (json_uint(jget(sp, "droppedAttributesCount", "dropped_attributes_count"), &dr) == 0)
		b->s.dropped_attrs += (uint32_t)KP_MIN(dr, UINT32_MAX / 2);
	const struct json *ev = json_get(sp, "events");
	if (ev && ev->type == JSON_ARR)
		b->s.n_events = (uint16_t)KP_MIN(ev->u.arr.n, UINT16_MAX);
	const struct json *st = json_get(sp, "status");
	if (st && st->type == JSON_OBJ) {
		static const char *const codes[] = {"UNSET", "OK", "ERROR"};
		const struct json *sc = json_get(st, "code");
		if (sc && sc->type != JSON_NULL) {
			int cv = js_enum(sc, "STATUS_CODE_", codes, 3);
			if (cv < 0)
				span_err(b, "status.code must be 0..2 or STATUS_CODE_*");
			else
				b->s.status = (uint8_t)cv;
		}
		const struct json *sm = json_get(st, "message");
		if (sm && sm->type == JSON_STR)
			b->status_msg =
				arena_strndup(c->out, sm->u.str.s,
					      utf8_cut(sm->u.str.s, sm->u.str.len, OTLP_MAX_VALUE));
	} else if (st && st->type != JSON_NULL) {
		span_err(b, "status is %s, expected an object", jtype_name(st));
	}
done:
	span_finish(c, b, res, scope, pth);
}

/* An optional array member: NULL when absent or null; -EINVAL (fatal) when not an array. */
static int js_arr(struct dctx *c, const struct json *o, const char *camel, const char *snake,
		  const char *where, const struct json **out)
{
	const struct json *v = jget(o, camel, snake);
	*out = NULL;
	if (!v || v->type == JSON_NULL)
		return 0;
	if (v->type != JSON_ARR) {
		fatal(c, "%s%s%s is %s, expected an array", where, where[0] ? "." : "", camel,
		      jtype_name(v));
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int js_request(struct dctx *c, const char *text, size_t len)
{
	struct json *root;
	char err[256];
	size_t pos = 0;
	struct json_doc *doc = json_parse(text, len, &root, err, sizeof(err), &pos);
	if (!doc) {
		fatal(c, "invalid JSON: %s", err);
		return -EINVAL;
	}
	int ret = -EINVAL;
	if (root->type != JSON_OBJ) {
		fatal(c, "the body is %s, expected an ExportTraceServiceRequest object",
		      jtype_name(root));
		goto cleanup;
	}
	const struct json *rss;
	if (js_arr(c, root, "resourceSpans", "resource_spans", "", &rss) < 0)
		goto cleanup;
	for (size_t ri = 0; rss && ri < rss->u.arr.n; ri++) {
		const struct json *rs = rss->u.arr.items[ri];
		char pth[120];
		path_str(c, pth, sizeof(pth), (int)ri, -1, -1);
		if (rs->type != JSON_OBJ) {
			fatal(c, "%s is %s, expected an object", pth, jtype_name(rs));
			goto cleanup;
		}
		struct attrs_b *ab = xcalloc(1, sizeof(*ab));
		const struct json *rsrc = json_get(rs, "resource");
		if (rsrc && rsrc->type != JSON_OBJ && rsrc->type != JSON_NULL) {
			fatal(c, "%s.resource is %s, expected an object", pth, jtype_name(rsrc));
			free(ab);
			goto cleanup;
		}
		if (rsrc && rsrc->type == JSON_OBJ &&
		    js_attrs(c, json_get(rsrc, "attributes"), ab, err, sizeof(err)) < 0) {
			fatal(c, "%s.resource: %s", pth, err);
			free(ab);
			goto cleanup;
		}
		struct res res;
		res_finish(c, ab, &res);
		free(ab);
		const struct json *sss;
		if (js_arr(c, rs, "scopeSpans", "scope_spans", pth, &sss) < 0)
			goto cleanup;
		if (!sss && js_arr(c, rs, "instrumentationLibrarySpans",
				   "instrumentation_library_spans", pth, &sss) < 0)
			goto cleanup;
		for (size_t si = 0; sss && si < sss->u.arr.n; si++) {
			const struct json *ss = sss->u.arr.items[si];
			char sp[160];
			path_str(c, sp, sizeof(sp), (int)ri, (int)si, -1);
			if (ss->type != JSON_OBJ) {
				fatal(c, "%s is %s, expected an object", sp, jtype_name(ss));
				goto cleanup;
			}
			const char *scope = "";
			const struct json *sc = json_get(ss, "scope");
			if (!sc)
				sc = jget(ss, "instrumentationLibrary", "instrumentation_library");
			const struct json *sn = json_get(sc, "name");
			if (sn && sn->type == JSON_STR)
				scope = arena_strndup(c->out, sn->u.str.s,
						      utf8_cut(sn->u.str.s, sn->u.str.len, 256));
			const struct json *spans;
			if (js_arr(c, ss, "spans", "spans", sp, &spans) < 0)
				goto cleanup;
			for (size_t pi = 0; spans && pi < spans->u.arr.n; pi++)
				js_span(c, spans->u.arr.items[pi], &res, scope, (int)ri, (int)si,
					(int)pi);
		}
	}
	ret = 0;
cleanup:
	json_free(doc);
	return ret;
}

/* ================================================================== entry points */

void otlp_opts_from_config(struct otlp_opts *o, const struct kp_config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->max_body = (size_t)cfg->otlp_max_body_mb << 20;
	o->txn_keys = (const char *const *)cfg->otlp_txn_attributes.v;
	o->n_txn_keys = cfg->otlp_txn_attributes.n;
}

int otlp_decode(enum otlp_format fmt, const void *body, size_t len, const struct otlp_opts *o,
		struct otlp_result *out)
{
	struct dctx c = {.o = o, .out = out, .fmt = fmt, .base = body};
	out->message[0] = '\0';
	int rc;
	if (fmt == OTLP_FMT_PROTOBUF)
		rc = pb_request(&c, body, len);
	else
		rc = js_request(&c, body, len);
	buf_free(&c.tmp);
	free(c.sb);
	if (rc < 0) {
		/* Undecodable: nothing in it is trusted, not even the spans before the damage. */
		out->n_spans = 0;
		out->rejected = 0;
		return -EINVAL;
	}
	if (out->rejected) {
		struct kp_buf m = {0};
		for (uint64_t i = 0; i < out->rejected && i < KEEP_ERRS; i++)
			buf_printf(&m, "%s%s", i ? "; " : "", c.errs[i]);
		if (out->rejected > KEEP_ERRS)
			buf_printf(&m, "; and %" PRIu64 " more rejected spans",
				   out->rejected - KEEP_ERRS);
		snprintf(out->message, sizeof(out->message), "%s", m.data);
		buf_free(&m);
	}
	return 0;
}

int otlp_gunzip(const void *src, size_t len, size_t max, struct kp_buf *dst, char *msg,
		size_t msglen)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		snprintf(msg, msglen, "cannot start gunzip (out of memory)");
		return -ENOMEM;
	}
	int ret = -EINVAL;
	zs.next_in = (Bytef *)src;
	/* zlib counts in uInt; bodies are bounded far below 4 GiB before we get here. */
	zs.avail_in = (uInt)KP_MIN(len, (size_t)UINT32_MAX);
	dst->len = 0;
	for (;;) {
		if (dst->len >= max + 1) {
			snprintf(
				msg, msglen,
				"body is larger than %zu bytes after gunzip (otlp.maxBodyMb); send "
				"smaller batches",
				max);
			ret = -EFBIG;
			goto cleanup;
		}
		size_t room = KP_MIN((size_t)65536, max + 1 - dst->len);
		buf_reserve(dst, room + 1);
		zs.next_out = (Bytef *)dst->data + dst->len;
		zs.avail_out = (uInt)room;
		int zr = inflate(&zs, Z_NO_FLUSH);
		dst->len += room - zs.avail_out;
		size_t at = (size_t)(zs.next_in - (const Bytef *)src);
		if (zr == Z_STREAM_END) {
			if (zs.avail_in == 0)
				break;
			/* Another gzip member may follow (gzip allows concatenation). */
			if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
				inflateReset(&zs);
				continue;
			}
			snprintf(msg, msglen, "byte %zu: data after the end of the gzip stream",
				 at);
			goto cleanup;
		}
		if (zr == Z_OK)
			continue;
		if (zr == Z_BUF_ERROR && zs.avail_in == 0) {
			snprintf(msg, msglen, "byte %zu: gzip body truncated", at);
			goto cleanup;
		}
		if (zr == Z_BUF_ERROR && zs.avail_out == 0)
			continue; /* output full: the bound check above decides */
		snprintf(msg, msglen, "byte %zu: gzip data corrupt (%s)", at,
			 zs.msg ? zs.msg : "zlib error");
		goto cleanup;
	}
	if (dst->len > max) {
		snprintf(
			msg, msglen,
			"body is larger than %zu bytes after gunzip (otlp.maxBodyMb); send smaller "
			"batches",
			max);
		ret = -EFBIG;
		goto cleanup;
	}
	buf_reserve(dst, 1);
	dst->data[dst->len] = '\0';
	ret = 0;
cleanup:
	inflateEnd(&zs);
	return ret;
}

/* ---- responses */

/*
 * ExportTraceServiceResponse, as encoded here:
 *
 *   0x0a len                      field 1 partial_success (ExportTracePartialSuccess)
 *        0x08 varint              field 1 rejected_spans (int64)
 *        0x12 len bytes           field 2 error_message (string)
 *
 * and on full success nothing at all (an empty message). google.rpc.Status for errors:
 *
 *   0x08 varint                   field 1 code (int32)
 *   0x12 len bytes                field 2 message (string)
 */
static void put_varint(struct kp_buf *b, uint64_t v)
{
	uint8_t t[10];
	int n = 0;
	do {
		t[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			t[n] |= 0x80;
		n++;
	} while (v);
	buf_append(b, t, (size_t)n);
}

static void put_bytes_field(struct kp_buf *b, uint8_t tag, const void *p, size_t n)
{
	buf_append(b, &tag, 1);
	put_varint(b, n);
	buf_append(b, p, n);
}

void otlp_response_encode(enum otlp_format fmt, uint64_t rejected, const char *msg,
			  struct kp_buf *out)
{
	bool partial = rejected > 0 || (msg && msg[0]);
	if (fmt == OTLP_FMT_JSON) {
		if (!partial) {
			buf_puts(out, "{}");
			return;
		}
		buf_printf(out, "{\"partialSuccess\":{\"rejectedSpans\":\"%" PRIu64 "\"", rejected);
		if (msg && msg[0]) {
			buf_puts(out, ",\"errorMessage\":");
			json_cstr(out, msg);
		}
		buf_puts(out, "}}");
		return;
	}
	if (!partial) {
		buf_reserve(out, 1); /* an empty message, but a valid (non-NULL) buffer */
		out->data[out->len] = '\0';
		return;
	}
	struct kp_buf ps = {0};
	if (rejected) {
		uint8_t t = 0x08;
		buf_append(&ps, &t, 1);
		put_varint(&ps, rejected);
	}
	if (msg && msg[0])
		put_bytes_field(&ps, 0x12, msg, strlen(msg));
	put_bytes_field(out, 0x0a, ps.data, ps.len);
	buf_free(&ps);
}

void otlp_status_encode(enum otlp_format fmt, int grpc_code, const char *msg, struct kp_buf *out)
{
	if (fmt == OTLP_FMT_JSON) {
		buf_printf(out, "{\"code\":%d,\"message\":", grpc_code);
		json_cstr(out, msg ? msg : "");
		buf_puts(out, "}");
		return;
	}
	uint8_t t = 0x08;
	buf_append(out, &t, 1);
	put_varint(out, (uint64_t)(uint32_t)grpc_code);
	if (msg && msg[0])
		put_bytes_field(out, 0x12, msg, strlen(msg));
}

void otlp_attrs_json(const struct otlp_attr *attrs, size_t n, struct kp_buf *out)
{
	buf_puts(out, "{");
	for (size_t i = 0; i < n; i++) {
		const struct otlp_attr *a = &attrs[i];
		if (i)
			buf_puts(out, ",");
		json_cstr(out, a->key);
		buf_puts(out, ":");
		switch (a->type) {
		case OTLP_V_BOOL:
		case OTLP_V_INT:
		case OTLP_V_ARRAY:
		case OTLP_V_KVLIST:
			buf_append(out, a->value, a->value_len);
			break;
		case OTLP_V_DOUBLE:
			if (isdigit((unsigned char)a->value[0]) ||
			    (a->value[0] == '-' && isdigit((unsigned char)a->value[1])))
				buf_append(out, a->value, a->value_len);
			else
				json_str(out, a->value, a->value_len); /* NaN, Infinity */
			break;
		case OTLP_V_NONE:
			buf_puts(out, "null");
			break;
		default:
			json_str(out, a->value, a->value_len);
		}
	}
	buf_puts(out, "}");
}

/* ---- the handler */

#define GRPC_INVALID_ARGUMENT	3
#define GRPC_RESOURCE_EXHAUSTED 8
#define GRPC_UNIMPLEMENTED	12

static const char *const CT_PROTO = "application/x-protobuf";
static const char *const CT_JSON = "application/json";

/* Media type of a Content-Type header, without parameters or case. 0 if unsupported. */
static int media_format(const char *ct)
{
	if (!ct)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	size_t n = strcspn(ct, ";");
	while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	if ((n == 22 && !strncasecmp(ct, "application/x-protobuf", n)) ||
	    (n == 20 && !strncasecmp(ct, "application/protobuf", n)))
		return OTLP_FMT_PROTOBUF;
	if (n == 16 && !strncasecmp(ct, "application/json", n))
		return OTLP_FMT_JSON;
	return 0;
}

static int respond_error(struct otlp_result *out, enum otlp_format fmt, int status, int grpc,
			 const char *msg)
{
	out->status = status;
	out->resp_type = fmt == OTLP_FMT_PROTOBUF ? CT_PROTO : CT_JSON;
	if (msg != out->message)
		snprintf(out->message, sizeof(out->message), "%s", msg);
	out->resp.len = 0;
	otlp_status_encode(fmt, grpc, out->message, &out->resp);
	return status;
}

int otlp_handle(const char *content_type, const char *content_encoding, const void *body,
		size_t len, const struct otlp_opts *o, struct otlp_result *out)
{
	char msg[OTLP_MAX_MESSAGE];
	int fmt = media_format(content_type);
	if (!fmt) {
		snprintf(msg, sizeof(msg),
			 "unsupported Content-Type '%.100s': send application/x-protobuf or "
			 "application/json",
			 content_type ? content_type : "(none)");
		return respond_error(out, OTLP_FMT_JSON, 415, GRPC_UNIMPLEMENTED, msg);
	}
	bool gzip = false;
	if (content_encoding && content_encoding[0]) {
		const char *e = content_encoding;
		while (*e == ' ')
			e++;
		size_t n = strcspn(e, " ;,");
		if (n == 4 && !strncasecmp(e, "gzip", 4))
			gzip = true;
		else if (!(n == 8 && !strncasecmp(e, "identity", 8))) {
			snprintf(msg, sizeof(msg),
				 "unsupported Content-Encoding '%.60s': send gzip or no encoding",
				 content_encoding);
			return respond_error(out, fmt, 415, GRPC_UNIMPLEMENTED, msg);
		}
	}
	if (len > o->max_body) {
		snprintf(msg, sizeof(msg),
			 "body of %zu bytes is larger than %zu (otlp.maxBodyMb); send smaller "
			 "batches",
			 len, o->max_body);
		return respond_error(out, fmt, 413, GRPC_RESOURCE_EXHAUSTED, msg);
	}
	struct kp_buf plain = {0};
	if (gzip) {
		int rc = otlp_gunzip(body, len, o->max_body, &plain, msg, sizeof(msg));
		if (rc < 0) {
			buf_free(&plain);
			if (rc == -EFBIG)
				return respond_error(out, fmt, 413, GRPC_RESOURCE_EXHAUSTED, msg);
			return respond_error(out, fmt, 400, GRPC_INVALID_ARGUMENT, msg);
		}
		body = plain.data;
		len = plain.len;
	}
	int rc = otlp_decode(fmt, body ? body : "", len, o, out);
	buf_free(&plain);
	if (rc < 0)
		return respond_error(out, fmt, 400, GRPC_INVALID_ARGUMENT, out->message);
	if (out->rejected && out->n_spans == 0)
		return respond_error(out, fmt, 400, GRPC_INVALID_ARGUMENT, out->message);
	out->status = 200;
	out->resp_type = fmt == OTLP_FMT_PROTOBUF ? CT_PROTO : CT_JSON;
	out->resp.len = 0;
	otlp_response_encode(fmt, out->rejected, out->message, &out->resp);
	return 200;
}
