/*
 * otlp.h - OTLP/HTTP trace ingest: decodes an ExportTraceServiceRequest (protobuf or JSON,
 * optionally gzip-encoded) into a flat array of owned span records, and encodes the response.
 *
 * Nothing here knows HTTP servers: otlp_handle() takes the request's Content-Type,
 * Content-Encoding and body and answers with a status, a response body and its content type.
 * kprobed mounts it at POST /v1/traces on otlp.port.
 *
 * What the status means (the OTLP/HTTP specification, as exporters act on it):
 *   200  decoded; out->spans holds every accepted span. When some spans were rejected the body
 *        carries partial_success {rejected_spans, error_message} (exporters log it, no retry).
 *   400  undecodable body, or every span in it rejected; the body is a google.rpc.Status whose
 *        message says what and where ("resourceSpans[0].scopeSpans[0].spans[3]: trace_id must
 *        be 16 bytes, got 12", "byte 118: truncated varint"). Exporters do not retry a 400.
 *   413  body larger than otlp.maxBodyMb, before or after gunzip.
 *   415  Content-Type other than application/x-protobuf / application/json, or a
 *        Content-Encoding other than gzip / identity.
 *
 * Bounds (a request past them is never trusted further; see otlp.c for why each value):
 *   OTLP_MAX_SPANS spans per request (later spans are rejected, reported as partial success),
 *   OTLP_MAX_ATTRS attributes per span and per resource (extras are dropped and counted in
 *   dropped_attrs), OTLP_MAX_KEY bytes per attribute key (longer: attribute dropped),
 *   OTLP_MAX_VALUE bytes per rendered value and per name (strings are cut at a UTF-8 boundary;
 *   arrays/kvlists that render longer are dropped), OTLP_MAX_DEPTH levels of nested AnyValue
 *   arrays/kvlists (deeper: attribute dropped), OTLP_MAX_GROUP_DEPTH nested protobuf groups.
 */
#ifndef KP_OTLP_H
#define KP_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/util.h"

#define OTLP_MAX_SPANS	     65536
#define OTLP_MAX_ATTRS	     128
#define OTLP_MAX_KEY	     256
#define OTLP_MAX_VALUE	     4096
#define OTLP_MAX_DEPTH	     8
#define OTLP_MAX_GROUP_DEPTH 16
#define OTLP_MAX_MESSAGE     1024 /* the error / partial-success message */

enum otlp_format { OTLP_FMT_PROTOBUF = 1, OTLP_FMT_JSON = 2 };

/* Span kinds and status codes keep the OTLP numbers (unknown values decode as 0). */
enum otlp_kind {
	OTLP_KIND_UNSPECIFIED = 0,
	OTLP_KIND_INTERNAL = 1,
	OTLP_KIND_SERVER = 2,
	OTLP_KIND_CLIENT = 3,
	OTLP_KIND_PRODUCER = 4,
	OTLP_KIND_CONSUMER = 5,
};
enum otlp_status_code { OTLP_STATUS_UNSET = 0, OTLP_STATUS_OK = 1, OTLP_STATUS_ERROR = 2 };

/* How an attribute value was typed on the wire. */
enum otlp_vtype {
	OTLP_V_NONE = 0, /* empty AnyValue: value is "" */
	OTLP_V_STR,	 /* value is the string itself */
	OTLP_V_BOOL,	 /* "true" / "false" */
	OTLP_V_INT,	 /* decimal int64 */
	OTLP_V_DOUBLE,	 /* shortest round-tripping decimal ("NaN", "Infinity", "-Infinity") */
	OTLP_V_BYTES,	 /* lowercase hex */
	OTLP_V_ARRAY,	 /* JSON text: ["a",1,true] */
	OTLP_V_KVLIST,	 /* JSON text: {"k":"v"} */
};

struct otlp_attr {
	const char *key;   /* NUL terminated, may not contain NUL */
	const char *value; /* rendered as above, NUL terminated */
	uint32_t value_len;
	uint8_t type; /* enum otlp_vtype */
};

/*
 * One decoded span. Every pointer points into the otlp_result that holds it and lives as long
 * as that result. Strings are NUL terminated and "" when absent, never NULL.
 */
struct otlp_span {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t parent_id[8]; /* all zero for a root span */
	uint64_t start_ns;    /* Unix epoch ns, start <= end */
	uint64_t end_ns;
	uint32_t pid;		/* resource attribute process.pid; 0 when absent or out of range */
	uint32_t tid;		/* span attribute thread.id; 0 when absent */
	uint8_t kind;		/* enum otlp_kind */
	uint8_t status;		/* enum otlp_status_code */
	uint16_t n_attrs;	/* span attributes */
	uint16_t n_res_attrs;	/* resource attributes (shared by every span of the resource) */
	uint16_t n_events;	/* span events seen (not decoded further) */
	uint32_t dropped_attrs; /* over the bounds here, plus what the sender reported dropped */
	const char *service;	/* resource service.name */
	const char *host;	/* resource host.name */
	const char *scope;	/* instrumentation scope name */
	const char *name;
	const char *status_msg;
	const char *txn; /* transaction id: see otlp_opts.txn_keys */
	const struct otlp_attr *attrs;
	const struct otlp_attr *res_attrs;
};

struct otlp_opts {
	size_t max_body; /* bytes, before and after gunzip (otlp.maxBodyMb) */
	/*
	 * Keys whose value is the transaction id (otlp.transactionAttributes). The earliest key in
	 * this list that is present wins; for one key a span attribute beats a resource attribute.
	 * Not copied: must outlive the calls.
	 */
	const char *const *txn_keys;
	int n_txn_keys;
};

/* Options from the config (max_body from otlp.maxBodyMb, txn_keys from the list it owns). */
void otlp_opts_from_config(struct otlp_opts *o, const struct kp_config *cfg);

struct otlp_arena_blk;

struct otlp_result {
	int status;	       /* HTTP status (otlp_handle) */
	const char *resp_type; /* content type of resp: "application/x-protobuf" or ".../json" */
	struct kp_buf resp;    /* response body (may be empty: a valid empty protobuf message) */
	struct otlp_span *spans;
	size_t n_spans;
	uint64_t rejected;  /* spans rejected (reported as partial success, or in the 400) */
	uint64_t truncated; /* string values cut to OTLP_MAX_VALUE */
	char message[OTLP_MAX_MESSAGE]; /* "" on full success; else what was wrong and where */
	/* internal */
	struct otlp_arena_blk *arena;
	size_t cap_spans;
};

/*
 * Decodes one request body (already gunzipped) of the given format into out (zero it first, or
 * reuse one after otlp_result_free). Returns 0 when the body decoded (some spans may still have
 * been rejected: out->rejected, out->message), -EINVAL when it is undecodable (out->message says
 * what and where; out->spans is empty). Never reads outside body[0..len).
 */
int otlp_decode(enum otlp_format fmt, const void *body, size_t len, const struct otlp_opts *o,
		struct otlp_result *out);

/*
 * Gunzips src into *dst (caller frees with buf_free), at most max bytes. Returns 0, -EFBIG when
 * the output would pass max, -EINVAL for data that is not gzip or is corrupt or truncated (msg
 * says which and at what input byte).
 */
int otlp_gunzip(const void *src, size_t len, size_t max, struct kp_buf *dst, char *msg,
		size_t msglen);

/*
 * The whole POST /v1/traces: content negotiation, size bound, gunzip, decode, response. Fills
 * out (zero it first) and returns out->status. content_type / content_encoding may be NULL
 * (absent header). The caller stores out->spans, sends out->resp with Content-Type
 * out->resp_type, then calls otlp_result_free.
 */
int otlp_handle(const char *content_type, const char *content_encoding, const void *body,
		size_t len, const struct otlp_opts *o, struct otlp_result *out);

/* Frees what out owns (spans, strings, response) and zeroes it. */
void otlp_result_free(struct otlp_result *out);

/*
 * Response encoders, exposed for tests. ExportTraceServiceResponse: empty on full success,
 * else partial_success {rejected_spans = 1 (int64), error_message = 2 (string)} in field 1.
 * JSON: {} or {"partialSuccess":{"rejectedSpans":"N","errorMessage":"..."}} (int64 as a string,
 * as the proto3 JSON mapping says). Errors (400/413/415) use google.rpc.Status
 * {code = 1 (int32), message = 2 (string)}; JSON {"code":N,"message":"..."}.
 */
void otlp_response_encode(enum otlp_format fmt, uint64_t rejected, const char *msg,
			  struct kp_buf *out);
void otlp_status_encode(enum otlp_format fmt, int grpc_code, const char *msg, struct kp_buf *out);

/* Attributes as one JSON object, typed ({"k":"v","n":3,"b":true,"a":[1,2]}), appended to out. */
void otlp_attrs_json(const struct otlp_attr *attrs, size_t n, struct kp_buf *out);

/* Lowercase hex of n bytes into out (2n+1 bytes). Returns out. */
char *otlp_hex(const uint8_t *id, size_t n, char *out);

#endif
