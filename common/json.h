/*
 * json.h - JSON out (appending to a kp_buf) and in (a bounded DOM parser).
 *
 * The parser is for untrusted input (OTLP/JSON, API bodies): depth, size and element counts are
 * bounded, every error carries the byte offset, and nothing it is given can crash it. Numbers keep
 * their source text so 64-bit integers survive (json_int).
 */
#ifndef KP_JSON_H
#define KP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

/* ---- writing ---- */

/* Appends s (len bytes) as a quoted, escaped JSON string. Invalid UTF-8 bytes become U+FFFD. */
void json_str(struct kp_buf *b, const char *s, size_t len);
static inline void json_cstr(struct kp_buf *b, const char *s)
{
	json_str(b, s, __builtin_strlen(s));
}

/* ---- reading ---- */

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json {
	enum json_type type;
	union {
		bool b;
		struct {
			const char *text; /* points into the parse arena, NUL terminated */
			double d;
		} num;
		struct {
			char *s; /* unescaped, NUL terminated (may contain NULs: use len) */
			size_t len;
		} str;
		struct {
			struct json **items;
			char **keys; /* objects only */
			size_t n;
		} arr;
	} u;
};

#define JSON_MAX_DEPTH 64

struct json_doc; /* owns every node and string of one parse */

/*
 * Parses text[0..len). Returns the document (free with json_free) and its root in *root, or NULL
 * with a message and the byte offset of the error in err / *errpos.
 */
struct json_doc *json_parse(const char *text, size_t len, struct json **root, char *err,
			    size_t errlen, size_t *errpos);
void json_free(struct json_doc *doc);

/* Object member by key, or NULL. */
const struct json *json_get(const struct json *obj, const char *key);
/* Integer value of a number, or of a string holding a decimal integer. Returns 0 or -EINVAL. */
int json_int(const struct json *v, int64_t *out);
int json_uint(const struct json *v, uint64_t *out);

#endif
