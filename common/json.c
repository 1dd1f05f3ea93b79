/*
 * json.c - JSON string escaping and a recursive-descent parser with hard bounds.
 *
 * Nodes and strings are allocated from one arena per document, freed together.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

/* ---------------------------------------------------------------- writing */

static void put_u8(struct kp_buf *b, uint32_t cp)
{
	char o[4];
	size_t n;
	if (cp < 0x80) {
		o[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		o[0] = (char)(0xF0 | (cp >> 18));
		o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	buf_append(b, o, n);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
	unsigned c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0)
		n = 2, cp = c & 0x1F;
	else if ((c & 0xF0) == 0xE0)
		n = 3, cp = c & 0x0F;
	else if ((c & 0xF8) == 0xF0)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

void json_str(struct kp_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	buf_reserve(b, len + 2);
	b->data[b->len++] = '"';
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			size_t j = i;
			while (j < len && (unsigned char)s[j] >= 0x20 && (unsigned char)s[j] < 0x80 &&
			       s[j] != '"' && s[j] != '\\')
				j++;
			buf_append(b, s + i, j - i);
			i = j;
			continue;
		}
		if (c >= 0x80) {
			size_t n = utf8_len((const unsigned char *)s + i, len - i);
			if (n) {
				buf_append(b, s + i, n);
				i += n;
			} else {
				put_u8(b, 0xFFFD);
				i++;
			}
			continue;
		}
		switch (c) {
		case '"':
			buf_append(b, "\\\"", 2);
			break;
		case '\\':
			buf_append(b, "\\\\", 2);
			break;
		case '\n':
			buf_append(b, "\\n", 2);
			break;
		case '\r':
			buf_append(b, "\\r", 2);
			break;
		case '\t':
			buf_append(b, "\\t", 2);
			break;
		default: {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_append(b, e, 6);
		}
		}
		i++;
	}
	buf_append(b, "\"", 1);
}

/* ---------------------------------------------------------------- reading */

struct arena_blk {
	struct arena_blk *next;
	size_t used, cap;
	char mem[];
};

struct json_doc {
	struct arena_blk *blk;
};

static void *arena_alloc(struct json_doc *d, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct arena_blk *b = d->blk;
	if (!b || b->used + n > b->cap) {
		size_t cap = n > 65536 ? n : 65536;
		struct arena_blk *nb = malloc(sizeof(*nb) + cap);
		if (!nb)
			return NULL;
		nb->next = b;
		nb->used = 0;
		nb->cap = cap;
		d->blk = nb;
		b = nb;
	}
	void *p = b->mem + b->used;
	b->used += n;
	return p;
}

struct parser {
	const char *s;
	size_t len, pos;
	struct json_doc *doc;
	char *err;
	size_t errlen;
	int failed;
};

static void *perr(struct parser *p, const char *msg)
{
	if (!p->failed) {
		p->failed = 1;
		snprintf(p->err, p->errlen, "%s at byte %zu", msg, p->pos);
	}
	return NULL;
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static struct json *node(struct parser *p, enum json_type t)
{
	struct json *j = arena_alloc(p->doc, sizeof(*j));
	if (!j)
		return perr(p, "out of memory");
	memset(j, 0, sizeof(*j));
	j->type = t;
	return j;
}

static int hex4(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Parses a string at p->pos (which is at the opening quote) into arena memory. */
static char *parse_string(struct parser *p, size_t *outlen)
{
	p->pos++; /* opening quote */
	size_t start = p->pos;
	/* The unescaped string is never longer than the escaped one. */
	size_t end = start;
	while (end < p->len && p->s[end] != '"') {
		if (p->s[end] == '\\')
			end++;
		end++;
	}
	if (end >= p->len)
		return perr(p, "unterminated string");
	char *o = arena_alloc(p->doc, end - start + 1);
	if (!o)
		return perr(p, "out of memory");
	size_t n = 0;
	while (p->pos < end) {
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c < 0x20)
			return perr(p, "control character in string");
		if (c != '\\') {
			o[n++] = (char)c;
			p->pos++;
			continue;
		}
		p->pos++;
		char e = p->s[p->pos++];
		switch (e) {
		case '"':
		case '\\':
		case '/':
			o[n++] = e;
			break;
		case 'b':
			o[n++] = '\b';
			break;
		case 'f':
			o[n++] = '\f';
			break;
		case 'n':
			o[n++] = '\n';
			break;
		case 'r':
			o[n++] = '\r';
			break;
		case 't':
			o[n++] = '\t';
			break;
		case 'u': {
			uint32_t cp;
			if (p->pos + 4 > end || hex4(p->s + p->pos, &cp) < 0)
				return perr(p, "bad \\u escape");
			p->pos += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				uint32_t lo;
				if (p->pos + 6 <= end && p->s[p->pos] == '\\' &&
				    p->s[p->pos + 1] == 'u' && hex4(p->s + p->pos + 2, &lo) == 0 &&
				    lo >= 0xDC00 && lo <= 0xDFFF) {
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					p->pos += 6;
				} else {
					cp = 0xFFFD;
				}
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				cp = 0xFFFD;
			}
			/* Encoded length <= 4 <= the 6 (or 12) escaped bytes consumed. */
			struct kp_buf tmp = {0};
			put_u8(&tmp, cp);
			memcpy(o + n, tmp.data, tmp.len);
			n += tmp.len;
			buf_free(&tmp);
			break;
		}
		default:
			return perr(p, "bad escape in string");
		}
	}
	p->pos = end + 1;
	o[n] = '\0';
	*outlen = n;
	return o;
}

static struct json *parse_value(struct parser *p, int depth);

static struct json *parse_container(struct parser *p, int depth, int is_obj)
{
	if (depth >= JSON_MAX_DEPTH)
		return perr(p, "nesting too deep");
	struct json *j = node(p, is_obj ? JSON_OBJ : JSON_ARR);
	if (!j)
		return NULL;
	p->pos++; /* [ or { */
	size_t cap = 0;
	char close = is_obj ? '}' : ']';
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		return j;
	}
	for (;;) {
		char *key = NULL;
		skip_ws(p);
		if (is_obj) {
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return perr(p, "expected a string key");
			size_t kl;
			key = parse_string(p, &kl);
			if (!key)
				return NULL;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return perr(p, "expected ':'");
			p->pos++;
		}
		struct json *v = parse_value(p, depth + 1);
		if (!v)
			return NULL;
		if (j->u.arr.n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct json **ni = arena_alloc(p->doc, ncap * sizeof(*ni));
			char **nk = is_obj ? arena_alloc(p->doc, ncap * sizeof(*nk)) : NULL;
			if (!ni || (is_obj && !nk))
				return perr(p, "out of memory");
			if (cap) {
				memcpy(ni, j->u.arr.items, cap * sizeof(*ni));
				if (is_obj)
					memcpy(nk, j->u.arr.keys, cap * sizeof(*nk));
			}
			j->u.arr.items = ni;
			j->u.arr.keys = nk;
			cap = ncap;
		}
		j->u.arr.items[j->u.arr.n] = v;
		if (is_obj)
			j->u.arr.keys[j->u.arr.n] = key;
		j->u.arr.n++;
		skip_ws(p);
		if (p->pos >= p->len)
			return perr(p, is_obj ? "unterminated object" : "unterminated array");
		char c = p->s[p->pos++];
		if (c == close)
			return j;
		if (c != ',')
			return perr(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static struct json *parse_value(struct parser *p, int depth)
{
	skip_ws(p);
	if (p->pos >= p->len)
		return perr(p, "unexpected end of input");
	char c = p->s[p->pos];
	if (c == '{' || c == '[')
		return parse_container(p, depth, c == '{');
	if (c == '"') {
		struct json *j = node(p, JSON_STR);
		if (!j)
			return NULL;
		j->u.str.s = parse_string(p, &j->u.str.len);
		return j->u.str.s ? j : NULL;
	}
	static const struct {
		const char *w;
		enum json_type t;
		bool b;
	} words[] = {{"true", JSON_BOOL, true}, {"false", JSON_BOOL, false}, {"null", JSON_NULL, 0}};
	for (size_t i = 0; i < 3; i++) {
		size_t wl = strlen(words[i].w);
		if (p->len - p->pos >= wl && memcmp(p->s + p->pos, words[i].w, wl) == 0) {
			struct json *j = node(p, words[i].t);
			if (!j)
				return NULL;
			j->u.b = words[i].b;
			p->pos += wl;
			return j;
		}
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		size_t st = p->pos;
		if (p->s[p->pos] == '-')
			p->pos++;
		if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
			return perr(p, "bad number");
		while (p->pos < p->len &&
		       ((p->s[p->pos] >= '0' && p->s[p->pos] <= '9') || p->s[p->pos] == '.' ||
			p->s[p->pos] == 'e' || p->s[p->pos] == 'E' || p->s[p->pos] == '+' ||
			p->s[p->pos] == '-'))
			p->pos++;
		size_t nl = p->pos - st;
		if (nl > 64)
			return perr(p, "number too long");
		struct json *j = node(p, JSON_NUM);
		char *t = arena_alloc(p->doc, nl + 1);
		if (!j || !t)
			return perr(p, "out of memory");
		memcpy(t, p->s + st, nl);
		t[nl] = '\0';
		char *end;
		j->u.num.d = strtod(t, &end);
		if (*end != '\0') {
			p->pos = st;
			return perr(p, "bad number");
		}
		j->u.num.text = t;
		return j;
	}
	return perr(p, "unexpected character");
}

struct json_doc *json_parse(const char *text, size_t len, struct json **root, char *err,
			    size_t errlen, size_t *errpos)
{
	struct json_doc *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	struct parser p = {text, len, 0, d, err, errlen, 0};
	struct json *j = parse_value(&p, 0);
	if (j) {
		skip_ws(&p);
		if (p.pos != p.len)
			j = perr(&p, "trailing characters after the JSON value");
	}
	if (!j) {
		if (errpos)
			*errpos = p.pos;
		json_free(d);
		return NULL;
	}
	*root = j;
	return d;
}

void json_free(struct json_doc *doc)
{
	if (!doc)
		return;
	struct arena_blk *b = doc->blk;
	while (b) {
		struct arena_blk *n = b->next;
		free(b);
		b = n;
	}
	free(doc);
}

const struct json *json_get(const struct json *obj, const char *key)
{
	if (!obj || obj->type != JSON_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->u.arr.n; i++)
		if (strcmp(obj->u.arr.keys[i], key) == 0)
			return obj->u.arr.items[i];
	return NULL;
}

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int json_int(const struct json *v, int64_t *out)
{
	if (!v)
		return -EINVAL;
	if (v->type == JSON_NUM)
		return parse_i64(v->u.num.text, out);
	if (v->type == JSON_STR)
		return parse_i64(v->u.str.s, out);
	return -EINVAL;
}

int json_uint(const struct json *v, uint64_t *out)
{
	if (!v)
		return -EINVAL;
	const char *s = v->type == JSON_NUM ? v->u.num.text : v->type == JSON_STR ? v->u.str.s : NULL;
	if (!s || *s == '-' || *s == '\0')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = x;
	return 0;
}
