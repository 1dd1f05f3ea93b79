/*
 * query.c - the query language (grammar and semantics in query.h): lexer, recursive-descent
 * parser, analysis (names, types, constant folding, GROUP BY rewriting, pruning hints), the
 * vectorised executor, and the JSON / NDJSON / CSV writers.
 *
 * Execution is column-at-a-time over the batches a table provider hands out (store/table.h):
 * the WHERE clause is split into its AND-ed conjuncts, each evaluated over the current
 * selection vector (the row numbers still alive) and narrowing it; a column is fetched (and so
 * decoded) only when an expression over a non-empty selection needs it. Aggregation hashes the
 * group keys of the selected rows; ORDER BY ... LIMIT k keeps a bounded top-k.
 *
 * Every input bound is checked: text length, token count, nesting depth, list sizes, number of
 * groups and of values held for quantiles. Errors name the problem and its byte position.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "store/query.h"
#include "store/store.h"
#include "store/table.h"

#define BATCH_CAP   8192
#define MAX_TOKENS  16384
#define MAX_TREE    256 /* node depth, including left-deep chains like a+b+c+... */
#define MAX_KEYS    16
#define MAX_AGGS    64
#define MAX_OUT	    256
#define MAX_QVALUES (32u << 20) /* values held for exact quantiles, over all groups */
#define QEXACT	    4096
#define QHIST	    7424

/* ------------------------------------------------------------------ arena */

struct achunk {
	struct achunk *next;
	size_t used, cap;
	char data[];
};

struct arena {
	struct achunk *head;
	size_t total;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (!a->head || a->head->cap - a->head->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		struct achunk *c = xmalloc(sizeof(*c) + cap);
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		a->head = c;
		a->total += cap;
	}
	void *p = a->head->data + a->head->used;
	a->head->used += n;
	return p;
}

static void *arena_zalloc(struct arena *a, size_t n)
{
	void *p = arena_alloc(a, n);
	memset(p, 0, n);
	return p;
}

static char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *d = arena_alloc(a, n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct achunk *c = a->head;
		a->head = c->next;
		free(c);
	}
	a->total = 0;
}

/* ------------------------------------------------------------------ lexer */

enum tok {
	T_EOF,
	T_IDENT,
	T_INT,
	T_FLOAT,
	T_STR,
	T_LP,
	T_RP,
	T_COMMA,
	T_STAR,
	T_PLUS,
	T_MINUS,
	T_SLASH,
	T_PCT,
	T_EQ,
	T_NE,
	T_LT,
	T_LE,
	T_GT,
	T_GE,
	T_SEMI,
	/* keywords */
	T_SELECT,
	T_FROM,
	T_WHERE,
	T_GROUP,
	T_BY,
	T_ORDER,
	T_ASC,
	T_DESC,
	T_LIMIT,
	T_AND,
	T_OR,
	T_NOT,
	T_IN,
	T_BETWEEN,
	T_LIKE,
	T_IS,
	T_NULL,
	T_AS,
	T_TRUE,
	T_FALSE,
	T_HAVING,
	T_DISTINCT,
	T_OFFSET,
	T_JOIN,
};

static const struct {
	const char *w;
	int t;
} keywords[] = {
	{"select", T_SELECT}, {"from", T_FROM},
	{"where", T_WHERE},   {"group", T_GROUP},
	{"by", T_BY},	      {"order", T_ORDER},
	{"asc", T_ASC},	      {"desc", T_DESC},
	{"limit", T_LIMIT},   {"and", T_AND},
	{"or", T_OR},	      {"not", T_NOT},
	{"in", T_IN},	      {"between", T_BETWEEN},
	{"like", T_LIKE},     {"is", T_IS},
	{"null", T_NULL},     {"as", T_AS},
	{"true", T_TRUE},     {"false", T_FALSE},
	{"having", T_HAVING}, {"distinct", T_DISTINCT},
	{"offset", T_OFFSET}, {"join", T_JOIN},
};

static const char *tok_name(int t)
{
	static const char *n[] = {"end of query", "a name", "a number", "a number", "a string",
				  "'('",	  "')'",    "','",	"'*'",	    "'+'",
				  "'-'",	  "'/'",    "'%'",	"'='",	    "'!='",
				  "'<'",	  "'<='",   "'>'",	"'>='",	    "';'"};
	if (t < (int)KP_ARRAY_SIZE(n))
		return n[t];
	for (size_t i = 0; i < KP_ARRAY_SIZE(keywords); i++)
		if (keywords[i].t == t)
			return keywords[i].w;
	return "?";
}

struct token {
	int t, pos, len;
	int64_t i;
	double f;
	char *s; /* T_STR (unescaped), T_IDENT (as written) */
	uint32_t slen;
};

struct qctx; /* forward */
static int qerr(struct qctx *q, int pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ AST */

enum vt { V_NULL, V_BOOL, V_INT, V_FLOAT, V_STR, V_SYM };
static const char *vt_name[] = {"null", "boolean", "integer", "float", "string", "string"};

enum nk {
	N_LIT,
	N_COL,
	N_NEG,
	N_NOT,
	N_BIN,
	N_IN,
	N_BETWEEN,
	N_LIKE,
	N_ISNULL,
	N_CALL,
	N_AGG,
	N_AGGREF,
	N_KEYREF,
	N_TOSTR,
	N_STAR
};
enum fn { F_NOW, F_BUCKET, F_ABS };
enum ag { A_COUNT, A_SUM, A_MIN, A_MAX, A_AVG, A_QUANT };

struct vec {
	uint8_t vt;
	int symcol;
	int64_t *i;
	double *f;
	const char **s;
	uint32_t *sl;
	uint8_t *nul; /* NULL = none */
};

struct node {
	uint8_t k, op, vt;
	bool neg, is_time, is_unsigned, resolved;
	int pos, depth;
	int col;  /* N_COL; V_SYM: the column whose symbols these are */
	int idx;  /* N_CALL fn, N_AGG kind, N_AGGREF / N_KEYREF index */
	double q; /* quantile */
	/* literal */
	int64_t li;
	double lf;
	const char *ls;
	uint32_t lsl;
	struct node *a, *b, *c;
	struct node **args;
	int nargs;
	const char *name; /* identifier or function name as written */
	int namelen;
	/* IN: sorted literal ints, or strings */
	int64_t *set_i;
	int nset;
	/* evaluation output, capacity BATCH_CAP */
	struct vec v;
	int64_t like_id;
	bool like_res;
	bool hint_ts;	 /* a conjunct fully expressed by the ts range hint */
	uint32_t filled; /* N_LIT: rows of the buffer already holding the value */
	int64_t *own_i;	 /* v.i as allocated (a column node may point v.i at the batch) */
	uint8_t *own_nul;
};

/* ------------------------------------------------------------------ context */

struct selitem {
	struct node *e;
	char *name;
};
struct orditem {
	struct node *e;
	int selref; /* >= 0: output column */
	bool desc;
};

struct agg {
	int kind;
	double q;
	struct node *arg; /* NULL for count() */
	uint8_t vt;	  /* result type */
	struct node *src; /* the N_AGG node, for equality */
};

struct qsk {
	uint32_t n, cap;
	bool hist, allint;
	double *v;
	uint32_t *h;
	uint64_t total;
};

struct aggst {
	int64_t n;
	union {
		int64_t i;
		double f;
	} a;
	struct qsk *q;
};

struct gtab {
	uint64_t ng, cap;
	int64_t *keys;
	uint8_t *knull;
	struct aggst *st;
	uint32_t *slot;
	uint64_t nslot;
};

struct row {
	struct query_value *v; /* nout + nord hidden */
};

struct qctx {
	struct query_error *err;
	struct arena ar;   /* AST, literals */
	struct arena strs; /* strings copied out of batches (rows, group keys) */
	const char *text;
	size_t len;
	struct token *tk;
	int ntk, p;
	const struct query_opts *opts;
	uint64_t now_ns, deadline;
	struct store *st;
	const struct table_ops *tab;
	void *tctx;
	/* query */
	struct selitem sel[MAX_OUT];
	int nsel;
	struct node *where, *having;
	struct node *keys[MAX_KEYS];
	int nkeys;
	struct orditem ord[MAX_OUT];
	int nord;
	int64_t limit; /* -1: none */
	bool agg_mode;
	struct agg aggs[MAX_AGGS];
	int naggs;
	struct node *conj[64];
	int nconj;
	/* hints */
	struct table_hints h;
	int64_t hpid[QUERY_MAX_LIST], htid[QUERY_MAX_LIST];
	const char *htxn[QUERY_MAX_LIST];
	uint32_t htxn_len[QUERY_MAX_LIST];
	const char *htrace[QUERY_MAX_LIST];
	uint32_t htrace_len[QUERY_MAX_LIST];
	/* execution */
	struct table_batch *batch;
	struct table_vec colv[256];
	uint64_t colhave[4];
	uint32_t sel_a[BATCH_CAP], sel_b[BATCH_CAP], iota[BATCH_CAP];
	bool iota_filled;
	/* group context (post aggregation) */
	struct vec *gkeys, *gaggs;
	uint64_t gbase;
	struct gtab g;
	uint64_t qvalues;
	/* rows */
	struct row *rows;
	size_t nrows, caprows;
	int nout;	       /* nsel + hidden order columns */
	bool vol[MAX_OUT * 2]; /* output column c holds batch-owned (volatile) strings */
	struct row bound;
	bool have_bound;
	bool truncated;
	uint64_t matched;
	int exec_err;
	struct table_scan_stats ss;
	/* string interning for STR group keys */
	const char **istr;
	uint32_t *istrlen;
	uint32_t nistr, capistr;
	uint32_t *ihash;
	uint32_t nihash;
	bool sel_ident; /* the selection vector is 0..n-1 of the current batch */
	int64_t *dense; /* agg_dense: box index -> group, -1 when not seen in this batch */
	uint32_t *dense_used;
	uint32_t *dense_ix;  /* agg_dense: per row box index */
	uint32_t *dense_run; /* agg_runs: where each run of equal keys starts */
	uint32_t *dense_cnt;		/* agg_dense: rows per box (counts alone), zero between uses */
};

static int qerr(struct qctx *q, int pos, const char *fmt, ...)
{
	if (q->err->message[0])
		return -EINVAL; /* keep the first */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q->err->message, sizeof(q->err->message), fmt, ap);
	va_end(ap);
	q->err->position = pos;
	return -EINVAL;
}

/* ------------------------------------------------------------------ lexing */

static bool is_id0(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_id(int c)
{
	return is_id0(c) || (c >= '0' && c <= '9');
}

static int lex(struct qctx *q)
{
	const char *s = q->text;
	size_t n = q->len, i = 0;
	q->tk = arena_alloc(&q->ar, sizeof(struct token) * (MAX_TOKENS + 1));
	q->ntk = 0;
	while (1) {
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
			i++;
		if (i + 1 < n && s[i] == '-' && s[i + 1] == '-') { /* comment */
			while (i < n && s[i] != '\n')
				i++;
			continue;
		}
		if (q->ntk == MAX_TOKENS)
			return qerr(q, (int)i, "query has more than %d tokens; shorten it",
				    MAX_TOKENS);
		struct token *t = &q->tk[q->ntk++];
		memset(t, 0, sizeof(*t));
		t->pos = (int)i;
		if (i >= n) {
			t->t = T_EOF;
			return 0;
		}
		unsigned char c = (unsigned char)s[i];
		if (is_id0(c)) {
			size_t j = i;
			while (j < n && is_id((unsigned char)s[j]))
				j++;
			t->t = T_IDENT;
			t->len = (int)(j - i);
			for (size_t k = 0; k < KP_ARRAY_SIZE(keywords); k++)
				if (strlen(keywords[k].w) == j - i &&
				    !strncasecmp(keywords[k].w, s + i, j - i))
					t->t = keywords[k].t;
			t->s = arena_strndup(&q->ar, s + i, j - i);
			t->slen = (uint32_t)(j - i);
			i = j;
			continue;
		}
		if (c == '"' || c == '`') { /* quoted identifier */
			size_t j = i + 1;
			while (j < n && s[j] != (char)c)
				j++;
			if (j >= n)
				return qerr(q, (int)i, "unterminated quoted name starting at %zu",
					    i);
			if (j == i + 1)
				return qerr(q, (int)i, "empty quoted name at %zu", i);
			t->t = T_IDENT;
			t->s = arena_strndup(&q->ar, s + i + 1, j - i - 1);
			t->slen = (uint32_t)(j - i - 1);
			t->len = (int)(j + 1 - i);
			i = j + 1;
			continue;
		}
		if (c == '\'') {
			size_t j = i + 1, o = 0;
			char *d = arena_alloc(&q->ar, n - i + 1);
			for (;;) {
				if (j >= n)
					return qerr(q, (int)i,
						    "unterminated string starting at %zu; close it "
						    "with '",
						    i);
				if (s[j] == '\'') {
					if (j + 1 < n && s[j + 1] == '\'') {
						d[o++] = '\'';
						j += 2;
						continue;
					}
					break;
				}
				d[o++] = s[j++];
			}
			d[o] = '\0';
			t->t = T_STR;
			t->s = d;
			t->slen = (uint32_t)o;
			t->len = (int)(j + 1 - i);
			i = j + 1;
			continue;
		}
		if ((c >= '0' && c <= '9') ||
		    (c == '.' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')) {
			size_t j = i;
			bool isf = false;
			if (c == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
				j = i + 2;
				uint64_t v = 0;
				size_t d0 = j;
				while (j < n && ((s[j] >= '0' && s[j] <= '9') ||
						 ((s[j] | 32) >= 'a' && (s[j] | 32) <= 'f'))) {
					if (v >> 60)
						return qerr(q, (int)i, "number too large at %zu",
							    i);
					int dv = s[j] <= '9' ? s[j] - '0' : (s[j] | 32) - 'a' + 10;
					v = v * 16 + (uint64_t)dv;
					j++;
				}
				if (j == d0 || (j < n && is_id((unsigned char)s[j])))
					return qerr(q, (int)i, "bad hexadecimal number at %zu", i);
				t->t = T_INT;
				t->i = (int64_t)v;
				t->len = (int)(j - i);
				i = j;
				continue;
			}
			while (j < n && s[j] >= '0' && s[j] <= '9')
				j++;
			if (j < n && s[j] == '.') {
				isf = true;
				j++;
				while (j < n && s[j] >= '0' && s[j] <= '9')
					j++;
			}
			if (j < n && (s[j] == 'e' || s[j] == 'E') && j + 1 < n &&
			    ((s[j + 1] >= '0' && s[j + 1] <= '9') ||
			     ((s[j + 1] == '-' || s[j + 1] == '+') && j + 2 < n &&
			      s[j + 2] >= '0' && s[j + 2] <= '9'))) {
				isf = true;
				j += 2;
				while (j < n && s[j] >= '0' && s[j] <= '9')
					j++;
			}
			char num[64];
			if (j - i >= sizeof(num))
				return qerr(q, (int)i, "number too long at %zu", i);
			memcpy(num, s + i, j - i);
			num[j - i] = '\0';
			/* a unit right after the number makes it a duration in ns */
			size_t u = j;
			while (u < n && is_id((unsigned char)s[u]))
				u++;
			if (u > j) {
				static const struct {
					const char *u;
					double mul;
				} units[] = {{"ns", 1},	  {"us", 1e3},	 {"ms", 1e6},	{"s", 1e9},
					     {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9}};
				double mul = 0;
				for (size_t k = 0; k < KP_ARRAY_SIZE(units); k++)
					if (strlen(units[k].u) == u - j &&
					    !strncmp(units[k].u, s + j, u - j))
						mul = units[k].mul;
				if (!mul)
					return qerr(q, (int)i,
						    "bad number or duration '%.*s' at %zu; "
						    "durations end in "
						    "ns, us, ms, s, m, h or d",
						    (int)KP_MIN(u - i, 40), s + i, i);
				double v = strtod(num, NULL) * mul;
				if (!(v < 9.2e18))
					return qerr(q, (int)i, "duration too large at %zu", i);
				t->t = T_INT;
				t->i = (int64_t)llround(v);
				t->len = (int)(u - i);
				i = u;
				continue;
			}
			if (isf) {
				t->t = T_FLOAT;
				t->f = strtod(num, NULL);
				if (!isfinite(t->f))
					return qerr(q, (int)i, "number too large at %zu", i);
			} else {
				errno = 0;
				unsigned long long v = strtoull(num, NULL, 10);
				if (errno || v > INT64_MAX)
					return qerr(q, (int)i, "number too large at %zu", i);
				t->t = T_INT;
				t->i = (int64_t)v;
			}
			t->len = (int)(j - i);
			i = j;
			continue;
		}
		int tt = -1, l = 1;
		switch (c) {
		case '(':
			tt = T_LP;
			break;
		case ')':
			tt = T_RP;
			break;
		case ',':
			tt = T_COMMA;
			break;
		case '*':
			tt = T_STAR;
			break;
		case '+':
			tt = T_PLUS;
			break;
		case '-':
			tt = T_MINUS;
			break;
		case '/':
			tt = T_SLASH;
			break;
		case '%':
			tt = T_PCT;
			break;
		case ';':
			tt = T_SEMI;
			break;
		case '=':
			tt = T_EQ;
			l = (i + 1 < n && s[i + 1] == '=') ? 2 : 1;
			break;
		case '!':
			if (i + 1 < n && s[i + 1] == '=') {
				tt = T_NE;
				l = 2;
			}
			break;
		case '<':
			if (i + 1 < n && s[i + 1] == '=') {
				tt = T_LE;
				l = 2;
			} else if (i + 1 < n && s[i + 1] == '>') {
				tt = T_NE;
				l = 2;
			} else
				tt = T_LT;
			break;
		case '>':
			if (i + 1 < n && s[i + 1] == '=') {
				tt = T_GE;
				l = 2;
			} else
				tt = T_GT;
			break;
		}
		if (tt < 0) {
			if (c >= 0x20 && c < 0x7f)
				return qerr(q, (int)i, "unexpected character '%c' at %zu", c, i);
			return qerr(
				q, (int)i,
				"unexpected byte 0x%02x at %zu; queries are ASCII text (strings "
				"may hold UTF-8 inside quotes)",
				c, i);
		}
		t->t = tt;
		t->len = l;
		i += (size_t)l;
	}
}

/* ------------------------------------------------------------------ parsing */

static struct token *peek(struct qctx *q)
{
	return &q->tk[q->p];
}
static struct token *next(struct qctx *q)
{
	struct token *t = &q->tk[q->p];
	if (t->t != T_EOF)
		q->p++;
	return t;
}
static bool accept(struct qctx *q, int t)
{
	if (peek(q)->t == t) {
		next(q);
		return true;
	}
	return false;
}

static int expect(struct qctx *q, int t, const char *what)
{
	struct token *k = peek(q);
	if (k->t == t) {
		next(q);
		return 0;
	}
	if (k->t == T_EOF)
		return qerr(q, k->pos, "expected %s %s, found the end of the query at %d",
			    tok_name(t), what, k->pos);
	return qerr(q, k->pos, "expected %s %s, found '%.*s' at %d", tok_name(t), what,
		    KP_MIN(k->len, 40), q->text + k->pos, k->pos);
}

static int unexpected(struct qctx *q, const char *want)
{
	struct token *k = peek(q);
	if (k->t == T_EOF)
		return qerr(q, k->pos, "expected %s, found the end of the query at %d", want,
			    k->pos);
	return qerr(q, k->pos, "expected %s, found '%.*s' at %d", want, KP_MIN(k->len, 40),
		    q->text + k->pos, k->pos);
}

static struct node *mk(struct qctx *q, int k, int pos, struct node *a, struct node *b)
{
	struct node *n = arena_zalloc(&q->ar, sizeof(*n));
	n->k = (uint8_t)k;
	n->pos = pos;
	n->a = a;
	n->b = b;
	n->like_id = -2;
	int d = 0;
	if (a)
		d = a->depth;
	if (b && b->depth > d)
		d = b->depth;
	n->depth = d + 1;
	if (n->depth > MAX_TREE) {
		qerr(q, pos,
		     "expression nested too deeply (more than %d levels) at %d; simplify it",
		     MAX_TREE, pos);
		return NULL;
	}
	return n;
}

static struct node *parse_expr(struct qctx *q, int depth);

static struct node *parse_primary(struct qctx *q, int depth)
{
	struct token *t = peek(q);
	struct node *n;
	switch (t->t) {
	case T_INT:
		next(q);
		n = mk(q, N_LIT, t->pos, NULL, NULL);
		n->vt = V_INT;
		n->li = t->i;
		return n;
	case T_FLOAT:
		next(q);
		n = mk(q, N_LIT, t->pos, NULL, NULL);
		n->vt = V_FLOAT;
		n->lf = t->f;
		return n;
	case T_STR:
		next(q);
		n = mk(q, N_LIT, t->pos, NULL, NULL);
		n->vt = V_STR;
		n->ls = t->s;
		n->lsl = t->slen;
		return n;
	case T_NULL:
		next(q);
		n = mk(q, N_LIT, t->pos, NULL, NULL);
		n->vt = V_NULL;
		return n;
	case T_TRUE:
	case T_FALSE:
		next(q);
		n = mk(q, N_LIT, t->pos, NULL, NULL);
		n->vt = V_BOOL;
		n->li = t->t == T_TRUE;
		return n;
	case T_LP: {
		next(q);
		if (peek(q)->t == T_SELECT) {
			qerr(q, peek(q)->pos, "subqueries are not supported (at %d)", peek(q)->pos);
			return NULL;
		}
		n = parse_expr(q, depth + 1);
		if (!n || expect(q, T_RP, "to close the '('"))
			return NULL;
		return n;
	}
	case T_IDENT: {
		next(q);
		if (peek(q)->t != T_LP) {
			n = mk(q, N_COL, t->pos, NULL, NULL);
			if (n) {
				n->name = t->s;
				n->namelen = (int)t->slen;
			}
			return n;
		}
		next(q); /* ( */
		struct node *args[8];
		int na = 0;
		bool star = false;
		if (peek(q)->t == T_STAR) {
			next(q);
			star = true;
		} else if (peek(q)->t != T_RP) {
			do {
				if (na == (int)KP_ARRAY_SIZE(args)) {
					qerr(q, peek(q)->pos, "too many arguments to %s at %d",
					     t->s, t->pos);
					return NULL;
				}
				if (!(args[na++] = parse_expr(q, depth + 1)))
					return NULL;
			} while (accept(q, T_COMMA));
		}
		if (expect(q, T_RP, "to close the argument list"))
			return NULL;
		n = mk(q, N_CALL, t->pos, NULL, NULL);
		if (!n)
			return NULL;
		n->name = t->s;
		n->namelen = (int)t->slen;
		n->nargs = na;
		n->args = arena_alloc(&q->ar, sizeof(struct node *) * (size_t)(na ? na : 1));
		memcpy(n->args, args, sizeof(struct node *) * (size_t)na);
		n->neg = star; /* count(*) */
		/* quantile(q)(x): a parametric call */
		if (peek(q)->t == T_LP) {
			int pp = peek(q)->pos;
			next(q);
			struct node *x = parse_expr(q, depth + 1);
			if (!x || expect(q, T_RP, "to close quantile(q)(x)"))
				return NULL;
			struct node *m = mk(q, N_CALL, t->pos, x, NULL);
			if (!m)
				return NULL;
			m->name = t->s;
			m->namelen = (int)t->slen;
			m->args = n->args;
			m->nargs = n->nargs;
			m->c = x;
			m->idx = pp;
			m->op = 1; /* parametric */
			return m;
		}
		return n;
	}
	case T_STAR:
		qerr(q, t->pos, "'*' is only allowed alone in SELECT or in count(*) (at %d)",
		     t->pos);
		return NULL;
	default:
		unexpected(q, "a value, a column or '('");
		return NULL;
	}
}

static struct node *parse_unary(struct qctx *q, int depth)
{
	if (depth > QUERY_MAX_DEPTH) {
		qerr(q, peek(q)->pos, "expression nested too deeply (more than %d levels) at %d",
		     QUERY_MAX_DEPTH, peek(q)->pos);
		return NULL;
	}
	struct token *t = peek(q);
	if (t->t == T_MINUS) {
		next(q);
		struct node *a = parse_unary(q, depth + 1);
		return a ? mk(q, N_NEG, t->pos, a, NULL) : NULL;
	}
	if (t->t == T_PLUS) {
		next(q);
		return parse_unary(q, depth + 1);
	}
	return parse_primary(q, depth);
}

static struct node *parse_mul(struct qctx *q, int depth)
{
	struct node *a = parse_unary(q, depth);
	while (a && (peek(q)->t == T_STAR || peek(q)->t == T_SLASH || peek(q)->t == T_PCT)) {
		struct token *t = next(q);
		struct node *b = parse_unary(q, depth);
		if (!b)
			return NULL;
		a = mk(q, N_BIN, t->pos, a, b);
		if (a)
			a->op = (uint8_t)t->t;
	}
	return a;
}

static struct node *parse_add(struct qctx *q, int depth)
{
	struct node *a = parse_mul(q, depth);
	while (a && (peek(q)->t == T_PLUS || peek(q)->t == T_MINUS)) {
		struct token *t = next(q);
		struct node *b = parse_mul(q, depth);
		if (!b)
			return NULL;
		a = mk(q, N_BIN, t->pos, a, b);
		if (a)
			a->op = (uint8_t)t->t;
	}
	return a;
}

static struct node *parse_cmp(struct qctx *q, int depth)
{
	struct node *a = parse_add(q, depth);
	if (!a)
		return NULL;
	struct token *t = peek(q);
	switch (t->t) {
	case T_EQ:
	case T_NE:
	case T_LT:
	case T_LE:
	case T_GT:
	case T_GE: {
		next(q);
		struct node *b = parse_add(q, depth);
		if (!b)
			return NULL;
		struct node *n = mk(q, N_BIN, t->pos, a, b);
		if (n)
			n->op = (uint8_t)t->t;
		return n;
	}
	case T_IS: {
		next(q);
		bool neg = accept(q, T_NOT);
		if (expect(q, T_NULL, "after IS [NOT]"))
			return NULL;
		struct node *n = mk(q, N_ISNULL, t->pos, a, NULL);
		if (n)
			n->neg = neg;
		return n;
	}
	default:
		break;
	}
	bool neg = false;
	if (t->t == T_NOT) {
		int k = q->tk[q->p + 1].t;
		if (k == T_IN || k == T_BETWEEN || k == T_LIKE) {
			next(q);
			neg = true;
			t = peek(q);
		}
	}
	if (t->t == T_IN) {
		next(q);
		if (expect(q, T_LP, "after IN"))
			return NULL;
		struct node **items = arena_alloc(&q->ar, sizeof(struct node *) * QUERY_MAX_LIST);
		int ni = 0;
		if (peek(q)->t == T_RP) {
			qerr(q, peek(q)->pos, "IN () needs at least one value (at %d)",
			     peek(q)->pos);
			return NULL;
		}
		do {
			if (ni == QUERY_MAX_LIST) {
				qerr(q, peek(q)->pos, "IN list longer than %d values at %d",
				     QUERY_MAX_LIST, peek(q)->pos);
				return NULL;
			}
			if (!(items[ni++] = parse_add(q, depth + 1)))
				return NULL;
		} while (accept(q, T_COMMA));
		if (expect(q, T_RP, "to close the IN list"))
			return NULL;
		struct node *n = mk(q, N_IN, t->pos, a, NULL);
		if (!n)
			return NULL;
		n->args = items;
		n->nargs = ni;
		n->neg = neg;
		return n;
	}
	if (t->t == T_BETWEEN) {
		next(q);
		struct node *lo = parse_add(q, depth + 1);
		if (!lo || expect(q, T_AND, "between the BETWEEN bounds"))
			return NULL;
		struct node *hi = parse_add(q, depth + 1);
		if (!hi)
			return NULL;
		struct node *n = mk(q, N_BETWEEN, t->pos, a, lo);
		if (!n)
			return NULL;
		n->c = hi;
		n->neg = neg;
		return n;
	}
	if (t->t == T_LIKE) {
		next(q);
		struct node *b = parse_add(q, depth + 1);
		if (!b)
			return NULL;
		struct node *n = mk(q, N_LIKE, t->pos, a, b);
		if (n)
			n->neg = neg;
		return n;
	}
	return a;
}

static struct node *parse_not(struct qctx *q, int depth)
{
	if (depth > QUERY_MAX_DEPTH) {
		qerr(q, peek(q)->pos, "expression nested too deeply (more than %d levels) at %d",
		     QUERY_MAX_DEPTH, peek(q)->pos);
		return NULL;
	}
	struct token *t = peek(q);
	if (t->t == T_NOT) {
		next(q);
		struct node *a = parse_not(q, depth + 1);
		return a ? mk(q, N_NOT, t->pos, a, NULL) : NULL;
	}
	return parse_cmp(q, depth);
}

static struct node *parse_and(struct qctx *q, int depth)
{
	struct node *a = parse_not(q, depth);
	while (a && peek(q)->t == T_AND) {
		struct token *t = next(q);
		struct node *b = parse_not(q, depth);
		if (!b)
			return NULL;
		a = mk(q, N_BIN, t->pos, a, b);
		if (a)
			a->op = T_AND;
	}
	return a;
}

static struct node *parse_expr(struct qctx *q, int depth)
{
	if (depth > QUERY_MAX_DEPTH) {
		qerr(q, peek(q)->pos, "expression nested too deeply (more than %d levels) at %d",
		     QUERY_MAX_DEPTH, peek(q)->pos);
		return NULL;
	}
	struct node *a = parse_and(q, depth);
	while (a && peek(q)->t == T_OR) {
		struct token *t = next(q);
		struct node *b = parse_and(q, depth);
		if (!b)
			return NULL;
		a = mk(q, N_BIN, t->pos, a, b);
		if (a)
			a->op = T_OR;
	}
	return a;
}

static char *expr_text(struct qctx *q, int from, int to)
{
	while (to > from && (q->text[to - 1] == ' ' || q->text[to - 1] == '\n' ||
			     q->text[to - 1] == '\t' || q->text[to - 1] == '\r'))
		to--;
	return arena_strndup(&q->ar, q->text + from, (size_t)(to - from));
}

static int parse_query(struct qctx *q)
{
	if (peek(q)->t == T_EOF)
		return qerr(q, 0, "empty query; try: SELECT count() FROM events");
	if (peek(q)->t != T_SELECT)
		return qerr(q, peek(q)->pos, "expected SELECT at %d, found '%.*s'", peek(q)->pos,
			    KP_MIN(peek(q)->len, 40), q->text + peek(q)->pos);
	next(q);
	if (peek(q)->t == T_DISTINCT)
		return qerr(q, peek(q)->pos, "DISTINCT is not supported (at %d); use GROUP BY",
			    peek(q)->pos);
	do {
		if (q->nsel == MAX_OUT)
			return qerr(q, peek(q)->pos, "more than %d output columns at %d", MAX_OUT,
				    peek(q)->pos);
		struct token *t = peek(q);
		if (t->t == T_STAR) {
			next(q);
			struct node *s = mk(q, N_STAR, t->pos, NULL, NULL);
			q->sel[q->nsel++] = (struct selitem){s, NULL};
			continue;
		}
		int from = t->pos;
		struct node *e = parse_expr(q, 0);
		if (!e)
			return -EINVAL;
		char *name;
		if (accept(q, T_AS)) {
			struct token *a = peek(q);
			if (a->t != T_IDENT && a->t != T_STR)
				return unexpected(q, "a name after AS");
			next(q);
			name = a->s;
		} else if (peek(q)->t == T_IDENT) {
			name = next(q)->s; /* SELECT expr alias */
		} else {
			name = expr_text(q, from, peek(q)->pos);
		}
		q->sel[q->nsel++] = (struct selitem){e, name};
	} while (accept(q, T_COMMA));
	if (peek(q)->t != T_FROM)
		return unexpected(q, "FROM or ',' after the output columns");
	next(q);
	struct token *tt = peek(q);
	if (tt->t != T_IDENT)
		return unexpected(q, "a table name after FROM (events)");
	next(q);
	if (store_table_find(q->st, tt->s, tt->slen, &q->tab, &q->tctx)) {
		char names[256];
		store_table_names(q->st, names, sizeof(names));
		return qerr(q, tt->pos, "unknown table '%.*s' at %d; tables: %s",
			    (int)KP_MIN(tt->slen, 64), tt->s, tt->pos, names);
	}
	if (peek(q)->t == T_COMMA || peek(q)->t == T_JOIN)
		return qerr(q, peek(q)->pos,
			    "joins are not supported (at %d); metadata columns "
			    "(comm, service, node, ...) are already part of events",
			    peek(q)->pos);
	if (accept(q, T_WHERE) && !(q->where = parse_expr(q, 0)))
		return -EINVAL;
	if (accept(q, T_GROUP)) {
		if (expect(q, T_BY, "after GROUP"))
			return -EINVAL;
		do {
			if (q->nkeys == MAX_KEYS)
				return qerr(q, peek(q)->pos, "more than %d GROUP BY keys at %d",
					    MAX_KEYS, peek(q)->pos);
			if (!(q->keys[q->nkeys++] = parse_expr(q, 0)))
				return -EINVAL;
		} while (accept(q, T_COMMA));
	}
	if (accept(q, T_HAVING) && !(q->having = parse_expr(q, 0)))
		return -EINVAL;
	if (accept(q, T_ORDER)) {
		if (expect(q, T_BY, "after ORDER"))
			return -EINVAL;
		do {
			if (q->nord == MAX_OUT)
				return qerr(q, peek(q)->pos, "too many ORDER BY items at %d",
					    peek(q)->pos);
			struct node *e = parse_expr(q, 0);
			if (!e)
				return -EINVAL;
			bool desc = false;
			if (accept(q, T_DESC))
				desc = true;
			else
				accept(q, T_ASC);
			q->ord[q->nord++] = (struct orditem){e, -1, desc};
		} while (accept(q, T_COMMA));
	}
	q->limit = -1;
	if (accept(q, T_LIMIT)) {
		struct token *l = peek(q);
		if (l->t != T_INT)
			return unexpected(q, "a whole number after LIMIT");
		next(q);
		if (l->i > q->opts->max_rows)
			return qerr(q, l->pos,
				    "LIMIT %" PRId64 " at %d is above api.maxRows (%" PRId64
				    "); ask for fewer rows or raise api.maxRows",
				    l->i, l->pos, q->opts->max_rows);
		q->limit = l->i;
		if (peek(q)->t == T_OFFSET)
			return qerr(q, peek(q)->pos,
				    "OFFSET is not supported (at %d); narrow the "
				    "WHERE clause instead",
				    peek(q)->pos);
	}
	accept(q, T_SEMI);
	if (peek(q)->t != T_EOF)
		return unexpected(q, "the end of the query (or WHERE, GROUP BY, ORDER BY, LIMIT)");
	return 0;
}

/* ------------------------------------------------------------------ analysis */

static int lev(const char *a, size_t la, const char *b, size_t lb)
{
	if (la > 40 || lb > 40)
		return 99;
	int d[41][41];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			int c = (a[i - 1] | 32) == (b[j - 1] | 32) ? 0 : 1;
			int m = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < m)
				m = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + c < m)
				m = d[i - 1][j - 1] + c;
			d[i][j] = m;
		}
	return d[la][lb];
}

static int find_col(struct qctx *q, const char *name, size_t len)
{
	for (int i = 0; i < q->tab->ncols; i++)
		if (strlen(q->tab->cols[i].name) == len &&
		    !strncasecmp(q->tab->cols[i].name, name, len))
			return i;
	return -1;
}

static int err_unknown_col(struct qctx *q, struct node *n)
{
	int best = -1, bd = 3;
	for (int i = 0; i < q->tab->ncols; i++) {
		int d = lev(n->name, (size_t)n->namelen, q->tab->cols[i].name,
			    strlen(q->tab->cols[i].name));
		if (d < bd) {
			bd = d;
			best = i;
		}
	}
	if (best >= 0)
		return qerr(q, n->pos, "unknown column '%.*s' at %d; did you mean '%s'?",
			    KP_MIN(n->namelen, 64), n->name, n->pos, q->tab->cols[best].name);
	return qerr(q, n->pos, "unknown column '%.*s' at %d; SELECT * FROM %s LIMIT 1 lists them",
		    KP_MIN(n->namelen, 64), n->name, n->pos, q->tab->name);
}

static const struct {
	const char *name;
	int agg; /* -1: scalar */
	int fn;
	double q;
} funcs[] = {
	{"count", A_COUNT, 0, 0},  {"sum", A_SUM, 0, 0},	{"min", A_MIN, 0, 0},
	{"max", A_MAX, 0, 0},	   {"avg", A_AVG, 0, 0},	{"quantile", A_QUANT, 0, -1},
	{"p50", A_QUANT, 0, 0.5},  {"p90", A_QUANT, 0, 0.9},	{"p95", A_QUANT, 0, 0.95},
	{"p99", A_QUANT, 0, 0.99}, {"p999", A_QUANT, 0, 0.999}, {"median", A_QUANT, 0, 0.5},
	{"now", -1, F_NOW, 0},	   {"bucket", -1, F_BUCKET, 0}, {"abs", -1, F_ABS, 0},
};

/* Parses a UTC time text into epoch ns. */
static int parse_time(const char *s, uint32_t len, int64_t *out)
{
	char buf[64];
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	struct tm tm = {0};
	char *e = strptime(buf, "%Y-%m-%d", &tm);
	if (!e)
		return -1;
	if (*e == ' ' || *e == 'T') {
		e = strptime(e + 1, "%H:%M:%S", &tm);
		if (!e)
			return -1;
	}
	int64_t frac = 0;
	if (*e == '.') {
		int digits = 0;
		e++;
		while (*e >= '0' && *e <= '9') {
			if (digits < 9) {
				frac = frac * 10 + (*e - '0');
				digits++;
			}
			e++;
		}
		while (digits++ < 9)
			frac *= 10;
	}
	if (*e == 'Z')
		e++;
	if (*e)
		return -1;
	time_t t = timegm(&tm);
	if (t < 0 || t >= INT64_MAX / 1000000000 - 1) /* epoch ns end in 2262 */
		return -1;
	*out = (int64_t)t * 1000000000 + frac;
	return 0;
}

static int resolve(struct qctx *q, struct node *n, bool allow_agg);
static int fold(struct qctx *q, struct node *n);

static bool is_lit(const struct node *n)
{
	return n->k == N_LIT;
}

/* A string literal meeting a symbol column becomes the symbol's id (or -1: matches nothing). */
static int lit_to_sym(struct qctx *q, struct node *lit, int symcol)
{
	int64_t id = q->tab->sym_find(q->tctx, symcol, lit->ls, lit->lsl);
	if (id < 0 && !strcmp(q->tab->cols[symcol].name, "type")) {
		char names[256] = "";
		size_t at = 0;
		for (int i = 1; i < 12 && at < sizeof(names); i++) {
			uint32_t l;
			const char *s = q->tab->sym_str(q->tctx, symcol, i, &l);
			at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%.*s",
					       i > 1 ? ", " : "", (int)l, s);
		}
		return qerr(q, lit->pos, "unknown event type '%.*s' at %d; types: %s",
			    (int)KP_MIN(lit->lsl, 40), lit->ls, lit->pos, names);
	}
	lit->vt = V_SYM;
	lit->col = symcol;
	lit->li = id;
	return 0;
}

static struct node *wrap_tostr(struct qctx *q, struct node *n)
{
	struct node *w = mk(q, N_TOSTR, n->pos, n, NULL);
	if (w) {
		w->vt = V_STR;
		w->col = n->col;
	}
	return w;
}

/* Makes a and b comparable; may rewrite literals. */
static int unify_cmp(struct qctx *q, struct node *parent, struct node **pa, struct node **pb)
{
	struct node *a = *pa, *b = *pb;
	if (a->vt == V_NULL || b->vt == V_NULL)
		return 0;
	/* time column vs string literal */
	if (a->is_time && b->k == N_LIT && b->vt == V_STR) {
		int64_t t;
		if (parse_time(b->ls, b->lsl, &t))
			return qerr(q, b->pos,
				    "cannot read '%.*s' at %d as a time; use 'YYYY-MM-DD "
				    "HH:MM:SS[.fff]' (UTC), epoch ns, or now() - 5m",
				    (int)KP_MIN(b->lsl, 40), b->ls, b->pos);
		b->vt = V_INT;
		b->li = t;
		return 0;
	}
	if (b->is_time && a->k == N_LIT && a->vt == V_STR)
		return unify_cmp(q, parent, pb, pa);
	if (a->vt == V_SYM && b->k == N_LIT && b->vt == V_STR)
		return lit_to_sym(q, b, a->col);
	if (b->vt == V_SYM && a->k == N_LIT && a->vt == V_STR)
		return lit_to_sym(q, a, b->col);
	if (a->vt == V_SYM && b->vt == V_SYM && a->col == b->col)
		return 0;
	if (a->vt == V_SYM && (b->vt == V_STR || b->vt == V_SYM))
		*pa = a = wrap_tostr(q, a);
	if (b->vt == V_SYM && (a->vt == V_STR || a->vt == V_SYM))
		*pb = b = wrap_tostr(q, b);
	if (!a || !b)
		return -EINVAL;
	bool an = a->vt == V_INT || a->vt == V_FLOAT, bn = b->vt == V_INT || b->vt == V_FLOAT;
	if ((an && bn) || (a->vt == b->vt))
		return 0;
	return qerr(q, parent->pos, "cannot compare %s with %s at %d", vt_name[a->vt],
		    vt_name[b->vt], parent->pos);
}

static int resolve1(struct qctx *q, struct node *n, bool allow_agg);

static int resolve(struct qctx *q, struct node *n, bool allow_agg)
{
	if (n->resolved)
		return 0;
	int rc = resolve1(q, n, allow_agg);
	if (!rc)
		n->resolved = true;
	return rc;
}

static int resolve1(struct qctx *q, struct node *n, bool allow_agg)
{
	int rc;
	switch (n->k) {
	case N_LIT:
		return 0;
	case N_STAR:
		return qerr(q, n->pos, "'*' is only allowed alone in SELECT (at %d)", n->pos);
	case N_COL: {
		int c = find_col(q, n->name, (size_t)n->namelen);
		if (c < 0)
			return err_unknown_col(q, n);
		n->col = c;
		const struct table_col *tc = &q->tab->cols[c];
		n->vt = tc->type == TT_INT ? V_INT : tc->type == TT_STR ? V_STR : V_SYM;
		n->is_time = tc->flags & TC_TIME;
		n->is_unsigned = tc->flags & TC_UNSIGNED;
		return 0;
	}
	case N_NEG:
		if ((rc = resolve(q, n->a, allow_agg)))
			return rc;
		if (n->a->vt != V_INT && n->a->vt != V_FLOAT && n->a->vt != V_NULL)
			return qerr(q, n->pos, "cannot negate a %s at %d", vt_name[n->a->vt],
				    n->pos);
		n->vt = n->a->vt;
		return fold(q, n);
	case N_NOT:
		if ((rc = resolve(q, n->a, allow_agg)))
			return rc;
		if (n->a->vt != V_BOOL && n->a->vt != V_NULL)
			return qerr(q, n->pos, "NOT needs a condition, not a %s, at %d",
				    vt_name[n->a->vt], n->pos);
		n->vt = V_BOOL;
		return fold(q, n);
	case N_BIN: {
		if ((rc = resolve(q, n->a, allow_agg)) || (rc = resolve(q, n->b, allow_agg)))
			return rc;
		switch (n->op) {
		case T_AND:
		case T_OR:
			if ((n->a->vt != V_BOOL && n->a->vt != V_NULL) ||
			    (n->b->vt != V_BOOL && n->b->vt != V_NULL))
				return qerr(q, n->pos,
					    "%s needs conditions on both sides at %d "
					    "(found %s and %s)",
					    n->op == T_AND ? "AND" : "OR", n->pos,
					    vt_name[n->a->vt], vt_name[n->b->vt]);
			n->vt = V_BOOL;
			break;
		case T_EQ:
		case T_NE:
		case T_LT:
		case T_LE:
		case T_GT:
		case T_GE:
			if ((rc = unify_cmp(q, n, &n->a, &n->b)))
				return rc;
			if (n->op != T_EQ && n->op != T_NE && n->a->vt == V_SYM) {
				n->a = wrap_tostr(q, n->a);
				if (n->b->vt == V_SYM && n->b->k == N_LIT) {
					/* ordering against a symbol literal: back to its text */
					n->b->vt = V_STR;
				} else if (n->b->vt == V_SYM)
					n->b = wrap_tostr(q, n->b);
			}
			n->vt = V_BOOL;
			break;
		default: { /* arithmetic */
			struct node *a = n->a, *b = n->b;
			if (a->vt == V_NULL || b->vt == V_NULL) {
				n->vt = V_NULL;
				break;
			}
			if ((a->vt != V_INT && a->vt != V_FLOAT) ||
			    (b->vt != V_INT && b->vt != V_FLOAT))
				return qerr(q, n->pos,
					    "arithmetic needs numbers at %d (found %s and %s)",
					    n->pos, vt_name[a->vt], vt_name[b->vt]);
			n->vt = (a->vt == V_FLOAT || b->vt == V_FLOAT) ? V_FLOAT : V_INT;
			n->is_time = (a->is_time || b->is_time) && n->op != T_SLASH;
			break;
		}
		}
		return fold(q, n);
	}
	case N_IN: {
		if ((rc = resolve(q, n->a, allow_agg)))
			return rc;
		for (int i = 0; i < n->nargs; i++) {
			struct node *x = n->args[i];
			if ((rc = resolve(q, x, false)))
				return rc;
			if (!is_lit(x))
				return qerr(q, x->pos,
					    "IN (...) takes constant values; the value at %d "
					    "is not",
					    x->pos);
			if ((rc = unify_cmp(q, n, &n->a, &n->args[i])))
				return rc;
		}
		if (n->a->vt == V_SYM && n->args[0]->vt == V_STR)
			n->a = wrap_tostr(q, n->a);
		n->vt = V_BOOL;
		return 0;
	}
	case N_BETWEEN:
		if ((rc = resolve(q, n->a, allow_agg)) || (rc = resolve(q, n->b, allow_agg)) ||
		    (rc = resolve(q, n->c, allow_agg)))
			return rc;
		if ((rc = unify_cmp(q, n, &n->a, &n->b)) || (rc = unify_cmp(q, n, &n->a, &n->c)))
			return rc;
		if (n->a->vt == V_SYM || n->a->vt == V_STR || n->a->vt == V_BOOL)
			return qerr(q, n->pos, "BETWEEN needs numbers or times at %d", n->pos);
		n->vt = V_BOOL;
		return 0;
	case N_LIKE:
		if ((rc = resolve(q, n->a, allow_agg)) || (rc = resolve(q, n->b, false)))
			return rc;
		if (n->a->vt != V_STR && n->a->vt != V_SYM)
			return qerr(q, n->pos, "LIKE needs a string on its left at %d (found %s)",
				    n->pos, vt_name[n->a->vt]);
		if (!is_lit(n->b) || n->b->vt != V_STR)
			return qerr(q, n->b->pos, "LIKE needs a 'pattern' string at %d", n->b->pos);
		n->vt = V_BOOL;
		return 0;
	case N_ISNULL:
		if ((rc = resolve(q, n->a, allow_agg)))
			return rc;
		n->vt = V_BOOL;
		return 0;
	case N_CALL: {
		int f = -1;
		for (size_t i = 0; i < KP_ARRAY_SIZE(funcs); i++)
			if ((int)strlen(funcs[i].name) == n->namelen &&
			    !strncasecmp(funcs[i].name, n->name, (size_t)n->namelen))
				f = (int)i;
		if (f < 0) {
			int best = -1, bd = 3;
			for (size_t i = 0; i < KP_ARRAY_SIZE(funcs); i++) {
				int d = lev(n->name, (size_t)n->namelen, funcs[i].name,
					    strlen(funcs[i].name));
				if (d < bd) {
					bd = d;
					best = (int)i;
				}
			}
			if (best >= 0)
				return qerr(q, n->pos,
					    "unknown function '%.*s' at %d; did you mean "
					    "'%s'?",
					    KP_MIN(n->namelen, 40), n->name, n->pos,
					    funcs[best].name);
			return qerr(q, n->pos,
				    "unknown function '%.*s' at %d; functions: count, "
				    "sum, min, max, avg, quantile(q)(x), p50, p90, p99, now, "
				    "bucket, abs",
				    KP_MIN(n->namelen, 40), n->name, n->pos);
		}
		const char *fname = funcs[f].name;
		if (funcs[f].agg < 0) {
			if (n->op)
				return qerr(q, n->pos, "%s is not parametric at %d", fname, n->pos);
			n->idx = funcs[f].fn;
			switch (n->idx) {
			case F_NOW:
				if (n->nargs)
					return qerr(q, n->pos, "now() takes no arguments (at %d)",
						    n->pos);
				n->k = N_LIT;
				n->vt = V_INT;
				n->li = (int64_t)q->now_ns;
				n->is_time = true;
				return 0;
			case F_BUCKET:
				if (n->nargs != 2)
					return qerr(q, n->pos,
						    "bucket(x, step) takes 2 arguments "
						    "(at %d)",
						    n->pos);
				if ((rc = resolve(q, n->args[0], allow_agg)) ||
				    (rc = resolve(q, n->args[1], false)))
					return rc;
				if (n->args[0]->vt != V_INT)
					return qerr(q, n->args[0]->pos,
						    "bucket() needs an integer or "
						    "time at %d",
						    n->args[0]->pos);
				if (!is_lit(n->args[1]) || n->args[1]->vt != V_INT ||
				    n->args[1]->li <= 0)
					return qerr(q, n->args[1]->pos,
						    "bucket() needs a positive "
						    "constant step such as 1s at %d",
						    n->args[1]->pos);
				n->vt = V_INT;
				n->is_time = n->args[0]->is_time;
				n->a = n->args[0];
				n->b = n->args[1];
				return fold(q, n);
			case F_ABS:
				if (n->nargs != 1)
					return qerr(q, n->pos, "abs(x) takes 1 argument (at %d)",
						    n->pos);
				if ((rc = resolve(q, n->args[0], allow_agg)))
					return rc;
				if (n->args[0]->vt != V_INT && n->args[0]->vt != V_FLOAT)
					return qerr(q, n->pos, "abs() needs a number at %d",
						    n->pos);
				n->vt = n->args[0]->vt;
				n->a = n->args[0];
				return fold(q, n);
			}
			return -EINVAL;
		}
		/* aggregates */
		if (!allow_agg)
			return qerr(q, n->pos,
				    "aggregate %s() is not allowed here (at %d): not in "
				    "WHERE, GROUP BY or inside another aggregate",
				    fname, n->pos);
		int kind = funcs[f].agg;
		n->k = N_AGG;
		n->idx = kind;
		struct node *arg = NULL;
		if (kind == A_QUANT && funcs[f].q < 0) {
			if (!n->op || n->nargs != 1)
				return qerr(q, n->pos,
					    "quantile is written quantile(0.99)(x) (at %d)",
					    n->pos);
			struct node *qa = n->args[0];
			if ((rc = resolve(q, qa, false)))
				return rc;
			double qq = qa->vt == V_FLOAT ? qa->lf : (double)qa->li;
			if (!is_lit(qa) || (qa->vt != V_FLOAT && qa->vt != V_INT) || !(qq >= 0) ||
			    qq > 1)
				return qerr(q, qa->pos,
					    "quantile level must be a constant between 0 "
					    "and 1 (at %d)",
					    qa->pos);
			n->q = qq;
			arg = n->c;
		} else {
			if (n->op)
				return qerr(q, n->pos, "%s is not parametric at %d; write %s(x)",
					    fname, n->pos, fname);
			n->q = funcs[f].q;
			if (kind == A_COUNT) {
				if (n->nargs > 1)
					return qerr(q, n->pos,
						    "count takes at most one argument "
						    "(at %d)",
						    n->pos);
				arg = n->nargs ? n->args[0] : NULL;
			} else {
				if (n->nargs != 1)
					return qerr(q, n->pos, "%s(x) takes one argument (at %d)",
						    fname, n->pos);
				arg = n->args[0];
			}
		}
		n->a = arg;
		if (arg) {
			if ((rc = resolve(q, arg, false)))
				return rc;
			if (kind != A_COUNT && arg->vt != V_INT && arg->vt != V_FLOAT)
				return qerr(q, arg->pos, "%s() needs a number at %d (found %s)",
					    fname, arg->pos, vt_name[arg->vt]);
		}
		n->vt = kind == A_COUNT ? V_INT : kind == A_AVG ? V_FLOAT : arg->vt;
		n->is_time = kind != A_COUNT && kind != A_SUM && arg && arg->is_time;
		return 0;
	}
	default:
		return 0;
	}
}

/* ------------------------------------------------------------------ evaluation */

struct ectx {
	struct qctx *q;
};

/* Output buffers by the node's type (a float node also keeps ints: literals fill both). */
static void vec_alloc(struct node *n)
{
	if (n->own_nul)
		return;
	n->v.nul = n->own_nul = xmalloc(BATCH_CAP);
	n->v.i = n->own_i = xmalloc(sizeof(int64_t) * BATCH_CAP);
	if (n->vt == V_FLOAT || n->k == N_LIT || n->k == N_AGGREF || n->k == N_KEYREF ||
	    n->k == N_NEG || n->k == N_CALL)
		n->v.f = xmalloc(sizeof(double) * BATCH_CAP);
	if (n->vt == V_STR || n->k == N_LIT) {
		n->v.s = xmalloc(sizeof(char *) * BATCH_CAP);
		n->v.sl = xmalloc(sizeof(uint32_t) * BATCH_CAP);
	}
}

static void node_free_bufs(struct node *n)
{
	if (!n)
		return;
	free(n->own_i);
	free(n->v.f);
	free(n->v.s);
	free(n->v.sl);
	free(n->own_nul);
	n->own_i = NULL;
	n->own_nul = NULL;
	n->v.i = NULL;
	n->v.f = NULL;
	n->v.s = NULL;
	n->v.sl = NULL;
	n->v.nul = NULL;
	n->filled = 0;
	free(n->set_i);
	n->set_i = NULL;
	node_free_bufs(n->a);
	node_free_bufs(n->b);
	node_free_bufs(n->c);
	for (int i = 0; i < n->nargs; i++)
		if (n->args[i] != n->a && n->args[i] != n->b && n->args[i] != n->c)
			node_free_bufs(n->args[i]);
}

static bool like_match(const char *s, size_t sl, const char *p, size_t pl)
{
	size_t si = 0, pi = 0, star_p = (size_t)-1, star_s = 0;
	while (si < sl) {
		if (pi < pl && (p[pi] == '_' || p[pi] == s[si])) {
			si++;
			pi++;
		} else if (pi < pl && p[pi] == '%') {
			star_p = pi++;
			star_s = si;
		} else if (star_p != (size_t)-1) {
			pi = star_p + 1;
			si = ++star_s;
		} else
			return false;
	}
	while (pi < pl && p[pi] == '%')
		pi++;
	return pi == pl;
}

static int cmp_str(const char *a, uint32_t al, const char *b, uint32_t bl)
{
	int c = memcmp(a, b, KP_MIN(al, bl));
	return c ? c : (al > bl) - (al < bl);
}

static int eval(struct qctx *q, struct node *n, const uint32_t *sel, uint32_t ns);

static double as_f(const struct node *n, uint32_t i)
{
	return n->vt == V_FLOAT ? n->v.f[i] : (double)n->v.i[i];
}

static int fetch_col(struct qctx *q, int col, struct table_vec **out)
{
	if (col >= 256)
		return -EINVAL;
	if (!(q->colhave[col / 64] & (1ull << (col % 64)))) {
		int rc = q->batch->fetch(q->batch, col, &q->colv[col]);
		if (rc)
			return rc;
		q->colhave[col / 64] |= 1ull << (col % 64);
	}
	*out = &q->colv[col];
	return 0;
}

#define CMP_LOOP(EXPR)                                                                             \
	do {                                                                                       \
		switch (op) {                                                                      \
		case T_EQ:                                                                         \
			for (uint32_t i = 0; i < ns; i++) {                                        \
				int64_t x = (EXPR);                                                \
				o[i] = x == y;                                                     \
			}                                                                          \
			break;                                                                     \
		case T_NE:                                                                         \
			for (uint32_t i = 0; i < ns; i++) {                                        \
				int64_t x = (EXPR);                                                \
				o[i] = x != y;                                                     \
			}                                                                          \
			break;                                                                     \
		case T_LT:                                                                         \
			for (uint32_t i = 0; i < ns; i++) {                                        \
				int64_t x = (EXPR);                                                \
				o[i] = x < y;                                                      \
			}                                                                          \
			break;                                                                     \
		case T_LE:                                                                         \
			for (uint32_t i = 0; i < ns; i++) {                                        \
				int64_t x = (EXPR);                                                \
				o[i] = x <= y;                                                     \
			}                                                                          \
			break;                                                                     \
		case T_GT:                                                                         \
			for (uint32_t i = 0; i < ns; i++) {                                        \
				int64_t x = (EXPR);                                                \
				o[i] = x > y;                                                      \
			}                                                                          \
			break;                                                                     \
		default:                                                                           \
			for (uint32_t i = 0; i < ns; i++) {                                        \
				int64_t x = (EXPR);                                                \
				o[i] = x >= y;                                                     \
			}                                                                          \
			break;                                                                     \
		}                                                                                  \
	} while (0)

static int eval_cmp(struct node *n, uint32_t ns)
{
	struct node *a = n->a, *b = n->b;
	int op = n->op;
	/* the common case, an integer against a constant, as tight loops */
	if (b->k == N_LIT && b->vt != V_NULL &&
	    (a->vt == V_INT || a->vt == V_SYM || a->vt == V_BOOL) && b->vt != V_FLOAT &&
	    b->vt != V_STR) {
		int64_t y = b->li, *o = n->v.i;
		const int64_t *av = a->v.i;
		CMP_LOOP(av[i]);
		memcpy(n->v.nul, a->v.nul, ns);
		return 0;
	}
	for (uint32_t i = 0; i < ns; i++) {
		n->v.nul[i] = a->v.nul[i] | b->v.nul[i];
		int c;
		if (a->vt == V_STR)
			c = cmp_str(a->v.s[i], a->v.sl[i], b->v.s[i], b->v.sl[i]);
		else if (a->vt == V_FLOAT || b->vt == V_FLOAT) {
			double x = as_f(a, i), y = as_f(b, i);
			c = (x > y) - (x < y);
		} else {
			int64_t x = a->v.i[i], y = b->v.i[i];
			c = (x > y) - (x < y);
		}
		bool r;
		switch (op) {
		case T_EQ:
			r = c == 0;
			break;
		case T_NE:
			r = c != 0;
			break;
		case T_LT:
			r = c < 0;
			break;
		case T_LE:
			r = c <= 0;
			break;
		case T_GT:
			r = c > 0;
			break;
		default:
			r = c >= 0;
			break;
		}
		n->v.i[i] = r;
	}
	return 0;
}

static int eval(struct qctx *q, struct node *n, const uint32_t *sel, uint32_t ns)
{
	int rc;
	vec_alloc(n);
	switch (n->k) {
	case N_LIT: /* constant: fill once, up to the largest batch seen */
		if (ns <= n->filled)
			return 0;
		n->filled = ns;
		for (uint32_t i = 0; i < ns; i++) {
			n->v.i[i] = n->li;
			n->v.f[i] = n->lf;
			n->v.s[i] = n->ls;
			n->v.sl[i] = n->lsl;
			n->v.nul[i] = n->vt == V_NULL;
		}
		return 0;
	case N_COL: {
		struct table_vec *tv;
		if ((rc = fetch_col(q, n->col, &tv)))
			return rc;
		if (n->vt != V_STR && q->sel_ident && ns == q->batch->n) {
			/* every row selected: read the batch's own vector, no copy */
			static const uint8_t zeros[BATCH_CAP];
			n->v.i = (int64_t *)(uintptr_t)tv->i;
			n->v.nul = (uint8_t *)(uintptr_t)(tv->null ? tv->null : zeros);
			return 0;
		}
		n->v.i = n->own_i;
		n->v.nul = n->own_nul;
		if (n->vt == V_STR) {
			for (uint32_t i = 0; i < ns; i++) {
				n->v.s[i] = tv->s[sel[i]];
				n->v.sl[i] = tv->slen[sel[i]];
			}
		} else {
			for (uint32_t i = 0; i < ns; i++)
				n->v.i[i] = tv->i[sel[i]];
		}
		if (tv->null)
			for (uint32_t i = 0; i < ns; i++)
				n->v.nul[i] = tv->null[sel[i]];
		else
			memset(n->v.nul, 0, ns);
		return 0;
	}
	case N_KEYREF:
	case N_AGGREF: {
		struct vec *src = n->k == N_KEYREF ? &q->gkeys[n->idx] : &q->gaggs[n->idx];
		for (uint32_t i = 0; i < ns; i++) {
			uint64_t g = q->gbase + sel[i];
			n->v.i[i] = src->i[g];
			n->v.f[i] = src->f[g];
			n->v.nul[i] = src->nul[g];
			if (n->vt == V_STR) {
				n->v.s[i] = src->s[g];
				n->v.sl[i] = src->sl[g];
			}
		}
		return 0;
	}
	case N_TOSTR:
		if ((rc = eval(q, n->a, sel, ns)))
			return rc;
		for (uint32_t i = 0; i < ns; i++) {
			n->v.s[i] = q->tab->sym_str(q->tctx, n->a->col, n->a->v.i[i], &n->v.sl[i]);
			n->v.nul[i] = n->a->v.nul[i];
		}
		return 0;
	case N_NEG:
		if ((rc = eval(q, n->a, sel, ns)))
			return rc;
		for (uint32_t i = 0; i < ns; i++) {
			if (n->vt == V_FLOAT)
				n->v.f[i] = -n->a->v.f[i];
			else
				n->v.i[i] = (int64_t)(0 - (uint64_t)n->a->v.i[i]);
			n->v.nul[i] = n->a->v.nul[i];
		}
		return 0;
	case N_NOT:
		if ((rc = eval(q, n->a, sel, ns)))
			return rc;
		for (uint32_t i = 0; i < ns; i++) {
			n->v.i[i] = !n->a->v.i[i];
			n->v.nul[i] = n->a->v.nul[i];
		}
		return 0;
	case N_ISNULL:
		if ((rc = eval(q, n->a, sel, ns)))
			return rc;
		for (uint32_t i = 0; i < ns; i++) {
			n->v.i[i] = n->a->v.nul[i] ^ n->neg;
			n->v.nul[i] = 0;
		}
		return 0;
	case N_BIN:
		if ((rc = eval(q, n->a, sel, ns)) || (rc = eval(q, n->b, sel, ns)))
			return rc;
		switch (n->op) {
		case T_AND:
			for (uint32_t i = 0; i < ns; i++) {
				bool af = !n->a->v.nul[i] && !n->a->v.i[i];
				bool bf = !n->b->v.nul[i] && !n->b->v.i[i];
				n->v.nul[i] = !af && !bf && (n->a->v.nul[i] | n->b->v.nul[i]);
				n->v.i[i] = !af && !bf && !n->v.nul[i];
			}
			return 0;
		case T_OR:
			for (uint32_t i = 0; i < ns; i++) {
				bool at = !n->a->v.nul[i] && n->a->v.i[i];
				bool bt = !n->b->v.nul[i] && n->b->v.i[i];
				n->v.i[i] = at || bt;
				n->v.nul[i] = !n->v.i[i] && (n->a->v.nul[i] | n->b->v.nul[i]);
			}
			return 0;
		case T_EQ:
		case T_NE:
		case T_LT:
		case T_LE:
		case T_GT:
		case T_GE:
			return eval_cmp(n, ns);
		default:
			break;
		}
		for (uint32_t i = 0; i < ns; i++) {
			n->v.nul[i] = n->a->v.nul[i] | n->b->v.nul[i];
			if (n->vt == V_FLOAT) {
				double x = as_f(n->a, i), y = as_f(n->b, i), r;
				switch (n->op) {
				case T_PLUS:
					r = x + y;
					break;
				case T_MINUS:
					r = x - y;
					break;
				case T_STAR:
					r = x * y;
					break;
				case T_SLASH:
					r = x / y;
					break;
				default:
					r = y != 0 ? fmod(x, y) : NAN;
					break;
				}
				if (!isfinite(r))
					n->v.nul[i] = 1;
				n->v.f[i] = r;
			} else if (n->vt == V_INT) {
				uint64_t x = (uint64_t)n->a->v.i[i], y = (uint64_t)n->b->v.i[i];
				int64_t sy = (int64_t)y, sx = (int64_t)x, r = 0;
				switch (n->op) {
				case T_PLUS:
					r = (int64_t)(x + y);
					break;
				case T_MINUS:
					r = (int64_t)(x - y);
					break;
				case T_STAR:
					r = (int64_t)(x * y);
					break;
				case T_SLASH:
				case T_PCT:
					if (sy == 0 || (sy == -1 && sx == INT64_MIN)) {
						n->v.nul[i] = 1;
						break;
					}
					r = n->op == T_SLASH ? sx / sy : sx % sy;
					break;
				}
				n->v.i[i] = r;
			} else
				n->v.nul[i] = 1;
		}
		return 0;
	case N_CALL:
		if ((rc = eval(q, n->a, sel, ns)))
			return rc;
		if (n->idx == F_BUCKET) {
			if ((rc = eval(q, n->b, sel, ns)))
				return rc;
			/* the step is a positive constant (checked at analysis). Values of a batch
			 * lie close together: offsets from the first row's bucket are small enough
			 * for a multiply by the reciprocal (corrected by one) instead of a 64-bit
			 * division */
			int64_t s = n->b->li, base = 0;
			double inv = 1.0 / (double)s;
			bool have = false;
			for (uint32_t i = 0; i < ns; i++) {
				int64_t x = n->a->v.i[i];
				n->v.nul[i] = n->a->v.nul[i];
				if (!have) {
					int64_t m = x % s;
					base = x - (m < 0 ? m + s : m);
					have = true;
				}
				uint64_t d = (uint64_t)x - (uint64_t)base;
				if (x >= base && d < (1ull << 50)) {
					uint64_t qd = (uint64_t)((double)d * inv);
					if (qd * (uint64_t)s > d)
						qd--;
					else if ((qd + 1) * (uint64_t)s <= d)
						qd++;
					n->v.i[i] = base + (int64_t)(qd * (uint64_t)s);
				} else {
					int64_t m = x % s;
					n->v.i[i] = x - (m < 0 ? m + s : m);
				}
			}
		} else { /* abs */
			for (uint32_t i = 0; i < ns; i++) {
				if (n->vt == V_FLOAT) {
					n->v.f[i] = fabs(n->a->v.f[i]);
				} else {
					int64_t x = n->a->v.i[i];
					n->v.i[i] = x < 0 ? (int64_t)(0 - (uint64_t)x) : x;
				}
				n->v.nul[i] = n->a->v.nul[i];
			}
		}
		return 0;
	case N_IN: {
		if ((rc = eval(q, n->a, sel, ns)))
			return rc;
		struct node *a = n->a;
		if (a->vt == V_STR) {
			for (uint32_t i = 0; i < ns; i++) {
				bool hit = false;
				for (int k = 0; k < n->nargs && !hit; k++)
					hit = n->args[k]->vt == V_STR &&
					      !cmp_str(a->v.s[i], a->v.sl[i], n->args[k]->ls,
						       n->args[k]->lsl);
				n->v.i[i] = hit ^ n->neg;
				n->v.nul[i] = a->v.nul[i];
			}
			return 0;
		}
		for (uint32_t i = 0; i < ns; i++) {
			bool hit = false;
			for (int k = 0; k < n->nargs && !hit; k++) {
				struct node *x = n->args[k];
				if (x->vt == V_NULL)
					continue;
				if (a->vt == V_FLOAT || x->vt == V_FLOAT)
					hit = as_f(a, i) ==
					      (x->vt == V_FLOAT ? x->lf : (double)x->li);
				else
					hit = a->v.i[i] == x->li;
			}
			n->v.i[i] = hit ^ n->neg;
			n->v.nul[i] = a->v.nul[i];
		}
		return 0;
	}
	case N_BETWEEN:
		if ((rc = eval(q, n->a, sel, ns)) || (rc = eval(q, n->b, sel, ns)) ||
		    (rc = eval(q, n->c, sel, ns)))
			return rc;
		for (uint32_t i = 0; i < ns; i++) {
			bool r;
			if (n->a->vt == V_FLOAT || n->b->vt == V_FLOAT || n->c->vt == V_FLOAT) {
				double x = as_f(n->a, i);
				r = x >= as_f(n->b, i) && x <= as_f(n->c, i);
			} else
				r = n->a->v.i[i] >= n->b->v.i[i] && n->a->v.i[i] <= n->c->v.i[i];
			n->v.i[i] = r ^ n->neg;
			n->v.nul[i] = n->a->v.nul[i] | n->b->v.nul[i] | n->c->v.nul[i];
		}
		return 0;
	case N_LIKE:
		if ((rc = eval(q, n->a, sel, ns)))
			return rc;
		for (uint32_t i = 0; i < ns; i++) {
			bool r;
			if (n->a->vt == V_SYM) {
				int64_t id = n->a->v.i[i];
				if (id != n->like_id) {
					uint32_t l;
					const char *s = q->tab->sym_str(q->tctx, n->a->col, id, &l);
					n->like_res = like_match(s, l, n->b->ls, n->b->lsl);
					n->like_id = id;
				}
				r = n->like_res;
			} else
				r = like_match(n->a->v.s[i], n->a->v.sl[i], n->b->ls, n->b->lsl);
			n->v.i[i] = r ^ n->neg;
			n->v.nul[i] = n->a->v.nul[i];
		}
		return 0;
	default:
		return -EINVAL;
	}
}

/* Evaluates a constant node once and turns it into a literal. */
static int fold(struct qctx *q, struct node *n)
{
	if (n->k == N_LIT || n->k == N_COL || n->k == N_AGG)
		return 0;
	if (n->a && !is_lit(n->a))
		return 0;
	if (n->b && !is_lit(n->b))
		return 0;
	if (n->c && !is_lit(n->c))
		return 0;
	if (n->k == N_IN || n->k == N_LIKE || n->k == N_TOSTR)
		return 0;
	if (n->vt == V_STR || n->vt == V_SYM)
		return 0;
	uint32_t z = 0;
	int rc = eval(q, n, &z, 1);
	if (rc)
		return rc;
	int64_t i = n->v.i[0];
	double f = n->v.f ? n->v.f[0] : 0;
	bool nul = n->v.nul[0];
	node_free_bufs(n);
	n->k = N_LIT;
	n->li = i;
	n->lf = f;
	if (nul)
		n->vt = V_NULL;
	n->a = n->b = n->c = NULL;
	n->nargs = 0;
	return 0;
}

/* ------------------------------------------------------------------ GROUP BY rewriting */

static bool node_eq(const struct node *a, const struct node *b)
{
	if (!a || !b)
		return a == b;
	if (a->k != b->k || a->op != b->op || a->vt != b->vt || a->neg != b->neg)
		return false;
	switch (a->k) {
	case N_LIT:
		return a->li == b->li && a->lf == b->lf && a->lsl == b->lsl &&
		       (!a->lsl || !memcmp(a->ls, b->ls, a->lsl));
	case N_COL:
		return a->col == b->col;
	case N_AGG:
		if (a->idx != b->idx || a->q != b->q)
			return false;
		break;
	case N_CALL:
		if (a->idx != b->idx)
			return false;
		break;
	default:
		break;
	}
	if (a->nargs != b->nargs && a->k == N_IN)
		return false;
	if (a->k == N_IN)
		for (int i = 0; i < a->nargs; i++)
			if (!node_eq(a->args[i], b->args[i]))
				return false;
	return node_eq(a->a, b->a) && node_eq(a->b, b->b) && node_eq(a->c, b->c);
}

static int add_agg(struct qctx *q, struct node *n)
{
	for (int i = 0; i < q->naggs; i++)
		if (node_eq(q->aggs[i].src, n))
			return i;
	if (q->naggs == MAX_AGGS) {
		qerr(q, n->pos, "more than %d aggregates (at %d)", MAX_AGGS, n->pos);
		return -1;
	}
	q->aggs[q->naggs] = (struct agg){n->idx, n->q, n->a, n->vt, n};
	return q->naggs++;
}

/* Replaces group keys and aggregates in n by references; a bare column left is an error. */
static int rewrite(struct qctx *q, struct node **pn)
{
	struct node *n = *pn;
	for (int k = 0; k < q->nkeys; k++)
		if (node_eq(n, q->keys[k])) {
			struct node *r = mk(q, N_KEYREF, n->pos, NULL, NULL);
			r->idx = k;
			r->vt = n->vt;
			r->col = n->col;
			r->is_time = n->is_time;
			r->is_unsigned = n->is_unsigned;
			*pn = r;
			return 0;
		}
	if (n->k == N_AGG) {
		int i = add_agg(q, n);
		if (i < 0)
			return -EINVAL;
		struct node *r = mk(q, N_AGGREF, n->pos, NULL, NULL);
		r->idx = i;
		r->vt = n->vt;
		r->is_time = n->is_time;
		*pn = r;
		return 0;
	}
	if (n->k == N_COL)
		return qerr(q, n->pos,
			    "column '%s' at %d must be in GROUP BY or inside an aggregate "
			    "such as count(), max(%s)",
			    q->tab->cols[n->col].name, n->pos, q->tab->cols[n->col].name);
	int rc;
	if (n->a && n->k != N_IN && (rc = rewrite(q, &n->a)))
		return rc;
	if (n->k == N_IN && (rc = rewrite(q, &n->a)))
		return rc;
	if (n->b && (rc = rewrite(q, &n->b)))
		return rc;
	if (n->c && (rc = rewrite(q, &n->c)))
		return rc;
	return 0;
}

static bool has_agg(const struct node *n)
{
	if (!n)
		return false;
	if (n->k == N_AGG)
		return true;
	if (has_agg(n->a) || has_agg(n->b) || has_agg(n->c))
		return true;
	return false;
}

/* ------------------------------------------------------------------ hints */

static void split_conj(struct qctx *q, struct node *n)
{
	if (n->k == N_BIN && n->op == T_AND && q->nconj < 62) {
		split_conj(q, n->a);
		split_conj(q, n->b);
		return;
	}
	q->conj[q->nconj++] = n;
}

static const char *colname(struct qctx *q, const struct node *n)
{
	return n->k == N_COL ? q->tab->cols[n->col].name : "";
}

static void hint_range(struct qctx *q, const char *c, int op, int64_t v)
{
	if (!strcmp(c, "ts")) {
		uint64_t u = v < 0 ? 0 : (uint64_t)v;
		switch (op) {
		case T_EQ:
			q->h.ts_min = KP_MAX(q->h.ts_min, u);
			q->h.ts_max = KP_MIN(q->h.ts_max, u);
			break;
		case T_GT:
			q->h.ts_min = KP_MAX(q->h.ts_min, u + 1);
			break;
		case T_GE:
			q->h.ts_min = KP_MAX(q->h.ts_min, u);
			break;
		case T_LT:
			q->h.ts_max = KP_MIN(q->h.ts_max, u ? u - 1 : 0);
			if (v <= 0)
				q->h.ts_max = 0;
			break;
		case T_LE:
			q->h.ts_max = KP_MIN(q->h.ts_max, u);
			if (v < 0)
				q->h.ts_max = 0;
			break;
		}
		if (v < 0 && (op == T_LT || op == T_LE || op == T_EQ))
			q->h.ts_min = 1, q->h.ts_max = 0; /* nothing */
	} else if (!strcmp(c, "dur")) {
		if (op == T_GE || op == T_EQ)
			q->h.dur_min = KP_MAX(q->h.dur_min, (uint64_t)KP_MAX(v, 0));
		else if (op == T_GT)
			q->h.dur_min = KP_MAX(q->h.dur_min, (uint64_t)KP_MAX(v, 0) + (v >= 0));
	}
}

static void hint_set(struct qctx *q, const struct node *col, struct node **vals, int nv)
{
	const char *c = colname(q, col);
	if (!strcmp(c, "pid") || !strcmp(c, "tid")) {
		bool pid = c[0] == 'p';
		if ((pid ? q->h.npid : q->h.ntid) >= 0)
			return;
		int64_t *dst = pid ? q->hpid : q->htid;
		int k = 0;
		for (int i = 0; i < nv; i++)
			if (vals[i]->vt == V_INT)
				dst[k++] = vals[i]->li;
		if (pid) {
			q->h.npid = k;
			q->h.pid = dst;
		} else {
			q->h.ntid = k;
			q->h.tid = dst;
		}
	} else if (!strcmp(c, "type") && col->vt == V_SYM) {
		uint32_t m = 0;
		for (int i = 0; i < nv; i++)
			if (vals[i]->vt == V_SYM && vals[i]->li >= 0)
				m |= 1u << (vals[i]->li < 31 ? vals[i]->li : 31);
		q->h.type_mask = q->h.type_mask ? q->h.type_mask & m : m;
		if (!q->h.type_mask)
			q->h.ts_min = 1, q->h.ts_max = 0; /* matches nothing */
	} else if (!strcmp(c, "txn") && q->h.ntxn < 0) {
		for (int i = 0; i < nv; i++)
			if (vals[i]->vt != V_STR || !vals[i]->lsl)
				return; /* '' is in no bloom filter: no pruning */
		int k = 0;
		for (int i = 0; i < nv; i++)
			if (vals[i]->vt == V_STR) {
				q->htxn[k] = vals[i]->ls;
				q->htxn_len[k++] = vals[i]->lsl;
			}
		q->h.ntxn = k;
		q->h.txn = q->htxn;
		q->h.txn_len = q->htxn_len;
	} else if (!strcmp(c, "trace_id") && q->h.ntrace < 0) {
		for (int i = 0; i < nv; i++)
			if (vals[i]->vt != V_STR || !vals[i]->lsl)
				return;
		int k = 0;
		for (int i = 0; i < nv; i++)
			if (vals[i]->vt == V_STR) {
				q->htrace[k] = vals[i]->ls;
				q->htrace_len[k++] = vals[i]->lsl;
			}
		q->h.ntrace = k;
		q->h.trace = q->htrace;
		q->h.trace_len = q->htrace_len;
	}
}

static void extract_hints(struct qctx *q)
{
	q->h.ts_min = 0;
	q->h.ts_max = UINT64_MAX;
	q->h.npid = q->h.ntid = q->h.ntxn = q->h.ntrace = -1;
	for (int i = 0; i < q->nconj; i++) {
		struct node *n = q->conj[i];
		if (n->k == N_BIN && n->op >= T_EQ && n->op <= T_GE && n->op != T_NE) {
			struct node *c = n->a, *v = n->b;
			int op = n->op;
			if (c->k != N_COL) {
				c = n->b;
				v = n->a;
				static const int flip[] = {[T_EQ] = T_EQ,
							   [T_LT] = T_GT,
							   [T_LE] = T_GE,
							   [T_GT] = T_LT,
							   [T_GE] = T_LE};
				op = flip[op];
			}
			if (c->k != N_COL || v->k != N_LIT)
				continue;
			if (v->vt == V_INT)
				hint_range(q, colname(q, c), op, v->li);
			n->hint_ts = v->vt == V_INT && !strcmp(colname(q, c), "ts");
			if (op == T_EQ)
				hint_set(q, c, &v, 1);
		} else if (n->k == N_IN && !n->neg && n->a->k == N_COL) {
			hint_set(q, n->a, n->args, n->nargs);
		} else if (n->k == N_BETWEEN && !n->neg && n->a->k == N_COL && n->b->k == N_LIT &&
			   n->c->k == N_LIT && n->b->vt == V_INT && n->c->vt == V_INT) {
			hint_range(q, colname(q, n->a), T_GE, n->b->li);
			hint_range(q, colname(q, n->a), T_LE, n->c->li);
			n->hint_ts = !strcmp(colname(q, n->a), "ts");
		}
	}
}

/* ------------------------------------------------------------------ quantile sketch */

static uint32_t qh_index(uint64_t v)
{
	if (v < 64)
		return (uint32_t)v;
	int e = 63 - __builtin_clzll(v);
	uint32_t mant = (uint32_t)(v >> (e - 6)) & 63;
	return 64 + (uint32_t)(e - 6) * 64 + mant;
}

/* A bucket's middle: within 1/128 (0.8%) of any value in it. */
static double qh_value(uint32_t idx)
{
	if (idx < 64)
		return idx;
	uint32_t e = (idx - 64) / 64 + 6, mant = (idx - 64) % 64;
	double lo = ldexp(64 + mant, (int)e - 6), w = ldexp(1, (int)e - 6);
	return floor(lo + w / 2);
}

/* Appends to the exact list (bounded over the whole query). */
static int qsk_push(struct qctx *q, struct qsk *s, double x)
{
	if (s->n == s->cap) {
		if (q->qvalues >= MAX_QVALUES)
			return -E2BIG;
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, sizeof(double) * s->cap);
	}
	s->v[s->n++] = x;
	q->qvalues++;
	return 0;
}

/* Integer sketches past QEXACT values become a histogram of the non-negative values; negative
 * ones (rare: error returns) stay exact in v, below every bucket. */
static void qsk_to_hist(struct qctx *q, struct qsk *s)
{
	s->h = xcalloc(QHIST, sizeof(uint32_t));
	uint32_t keep = 0;
	for (uint32_t i = 0; i < s->n; i++) {
		if (s->v[i] >= 0)
			s->h[qh_index((uint64_t)s->v[i])]++;
		else
			s->v[keep++] = s->v[i];
	}
	q->qvalues -= s->n - keep;
	s->n = keep;
	s->hist = true;
}

static int qsk_add(struct qctx *q, struct qsk *s, double x)
{
	s->total++;
	if (s->hist) {
		if (x >= 0 && x < 1.8e19) {
			s->h[qh_index((uint64_t)x)]++;
			return 0;
		}
		return qsk_push(q, s, x);
	}
	if (x != floor(x) || !(fabs(x) < 1.8e19))
		s->allint = false;
	int rc = qsk_push(q, s, x);
	if (!rc && s->n > QEXACT && s->allint)
		qsk_to_hist(q, s);
	return rc;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double qsk_get(struct qsk *s, double qq)
{
	uint64_t n = s->total;
	uint64_t k = (uint64_t)floor(qq * (double)(n - 1));
	if (s->n)
		qsort(s->v, s->n, sizeof(double), cmp_dbl);
	if (!s->hist || k < s->n)
		return s->v[k < s->n ? k : s->n - 1];
	k -= s->n; /* the exact negatives come first */
	uint64_t acc = 0;
	for (uint32_t i = 0; i < QHIST; i++) {
		acc += s->h[i];
		if (acc > k)
			return qh_value(i);
	}
	return 0;
}

/* ------------------------------------------------------------------ grouping */

static uint64_t hmix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

/* Interns a string for a group key: equal strings get the same id. */
static int64_t intern_str(struct qctx *q, const char *s, uint32_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (uint32_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
	if (q->nistr * 2 >= q->nihash) {
		uint32_t nh = q->nihash ? q->nihash * 2 : 1024;
		uint32_t *t = xcalloc(nh, sizeof(uint32_t));
		for (uint32_t i = 0; i < q->nistr; i++) {
			uint64_t hh = 1469598103934665603ull;
			for (uint32_t k = 0; k < q->istrlen[i]; k++)
				hh = (hh ^ (uint8_t)q->istr[i][k]) * 1099511628211ull;
			uint32_t p = (uint32_t)hh & (nh - 1);
			while (t[p])
				p = (p + 1) & (nh - 1);
			t[p] = i + 1;
		}
		free(q->ihash);
		q->ihash = t;
		q->nihash = nh;
	}
	uint32_t p = (uint32_t)h & (q->nihash - 1);
	while (q->ihash[p]) {
		uint32_t i = q->ihash[p] - 1;
		if (q->istrlen[i] == len && !memcmp(q->istr[i], s, len))
			return i;
		p = (p + 1) & (q->nihash - 1);
	}
	if (q->nistr == q->capistr) {
		q->capistr = q->capistr ? q->capistr * 2 : 256;
		q->istr = xrealloc(q->istr, sizeof(char *) * q->capistr);
		q->istrlen = xrealloc(q->istrlen, sizeof(uint32_t) * q->capistr);
	}
	q->istr[q->nistr] = arena_strndup(&q->strs, s, len);
	q->istrlen[q->nistr] = len;
	q->ihash[p] = q->nistr + 1;
	return q->nistr++;
}

static int key_val(struct qctx *q, struct node *k, uint32_t i, int64_t *out)
{
	switch (k->vt) {
	case V_STR:
		*out = intern_str(q, k->v.s[i], k->v.sl[i]);
		return 0;
	case V_FLOAT: {
		double d = k->v.f[i] == 0 ? 0 : k->v.f[i];
		memcpy(out, &d, 8);
		return 0;
	}
	default:
		*out = k->v.i[i];
		return 0;
	}
}

static void gtab_grow(struct qctx *q)
{
	struct gtab *g = &q->g;
	uint64_t ncap = g->cap ? g->cap * 2 : 1024;
	g->keys = xrealloc(g->keys, sizeof(int64_t) * ncap * (q->nkeys ? q->nkeys : 1));
	g->knull = xrealloc(g->knull, ncap * (q->nkeys ? q->nkeys : 1));
	g->st = xrealloc(g->st, sizeof(struct aggst) * ncap * (q->naggs ? q->naggs : 1));
	g->cap = ncap;
	/* rehash */
	uint64_t ns = ncap * 2;
	free(g->slot);
	g->slot = xcalloc(ns, sizeof(uint32_t));
	g->nslot = ns;
	for (uint64_t gi = 0; gi < g->ng; gi++) {
		uint64_t h = 0;
		for (int k = 0; k < q->nkeys; k++)
			h = hmix(h, (uint64_t)g->keys[gi * q->nkeys + k] ^
					    g->knull[gi * q->nkeys + k]);
		uint64_t p = h & (ns - 1);
		while (g->slot[p])
			p = (p + 1) & (ns - 1);
		g->slot[p] = (uint32_t)gi + 1;
	}
}

static int64_t group_of(struct qctx *q, const int64_t *kv, const uint8_t *kn)
{
	struct gtab *g = &q->g;
	if (g->ng + 1 > g->cap) {
		if (g->ng >= QUERY_MAX_GROUPS)
			return -E2BIG;
		gtab_grow(q);
	}
	uint64_t h = 0;
	for (int k = 0; k < q->nkeys; k++)
		h = hmix(h, (uint64_t)kv[k] ^ kn[k]);
	uint64_t p = h & (g->nslot - 1);
	while (g->slot[p]) {
		uint64_t gi = g->slot[p] - 1;
		const int64_t *gk = &g->keys[gi * q->nkeys];
		const uint8_t *gn = &g->knull[gi * q->nkeys];
		int k = 0;
		while (k < q->nkeys && gk[k] == kv[k] && gn[k] == kn[k])
			k++;
		if (k == q->nkeys)
			return (int64_t)gi;
		p = (p + 1) & (g->nslot - 1);
	}
	uint64_t gi = g->ng++;
	memcpy(&g->keys[gi * q->nkeys], kv, sizeof(int64_t) * q->nkeys);
	memcpy(&g->knull[gi * q->nkeys], kn, q->nkeys);
	memset(&g->st[gi * q->naggs], 0, sizeof(struct aggst) * q->naggs);
	g->slot[p] = (uint32_t)gi + 1;
	return (int64_t)gi;
}

static int agg_update(struct qctx *q, struct aggst *s, const struct agg *a, struct node *x,
		      uint32_t i)
{
	if (a->kind == A_COUNT) {
		if (!x || !x->v.nul[i])
			s->n++;
		return 0;
	}
	if (x->v.nul[i])
		return 0;
	bool fl = x->vt == V_FLOAT;
	switch (a->kind) {
	case A_SUM:
		if (fl)
			s->a.f += x->v.f[i];
		else
			s->a.i = (int64_t)((uint64_t)s->a.i + (uint64_t)x->v.i[i]);
		break;
	case A_MIN:
		if (fl)
			s->a.f = !s->n || x->v.f[i] < s->a.f ? x->v.f[i] : s->a.f;
		else
			s->a.i = !s->n || x->v.i[i] < s->a.i ? x->v.i[i] : s->a.i;
		break;
	case A_MAX:
		if (fl)
			s->a.f = !s->n || x->v.f[i] > s->a.f ? x->v.f[i] : s->a.f;
		else
			s->a.i = !s->n || x->v.i[i] > s->a.i ? x->v.i[i] : s->a.i;
		break;
	case A_AVG:
		s->a.f += fl ? x->v.f[i] : (double)x->v.i[i];
		break;
	case A_QUANT:
		if (!s->q) {
			s->q = xcalloc(1, sizeof(*s->q));
			s->q->allint = true;
		}
		if (!fl && s->q->hist && x->v.i[i] >= 0) { /* the hot path: a histogram of ints */
			s->q->total++;
			s->q->h[qh_index((uint64_t)x->v.i[i])]++;
			break;
		}
		if (qsk_add(q, s->q, fl ? x->v.f[i] : (double)x->v.i[i]))
			return -E2BIG;
		break;
	}
	s->n++;
	return 0;
}

/* ------------------------------------------------------------------ rows */

static void val_of(struct qctx *q, struct node *n, uint32_t i, struct query_value *o, bool copy)
{
	if (n->v.nul[i] || n->vt == V_NULL) {
		o->type = QV_NULL;
		return;
	}
	switch (n->vt) {
	case V_BOOL:
		o->type = QV_BOOL;
		o->u.i = n->v.i[i];
		break;
	case V_INT:
		o->type = n->is_unsigned ? QV_UINT : QV_INT;
		o->u.i = n->v.i[i];
		break;
	case V_FLOAT:
		o->type = QV_FLOAT;
		o->u.f = n->v.f[i];
		break;
	case V_STR:
		o->type = QV_STR;
		o->u.s.p = copy ? arena_strndup(&q->strs, n->v.s[i], n->v.sl[i]) : n->v.s[i];
		o->u.s.len = n->v.sl[i];
		break;
	case V_SYM: /* stable for the store's life */
		o->type = QV_STR;
		o->u.s.p = q->tab->sym_str(q->tctx, n->col, n->v.i[i], &o->u.s.len);
		break;
	}
}

static int cmp_val(const struct query_value *a, const struct query_value *b)
{
	if (a->type == QV_NULL || b->type == QV_NULL)
		return (a->type == QV_NULL) - (b->type == QV_NULL); /* NULL sorts last */
	if (a->type == QV_STR && b->type == QV_STR)
		return cmp_str(a->u.s.p, a->u.s.len, b->u.s.p, b->u.s.len);
	if (a->type == QV_FLOAT || b->type == QV_FLOAT) {
		double x = a->type == QV_FLOAT ? a->u.f : (double)a->u.i;
		double y = b->type == QV_FLOAT ? b->u.f : (double)b->u.i;
		return (x > y) - (x < y);
	}
	if (a->type == QV_UINT && b->type == QV_UINT)
		return ((uint64_t)a->u.i > (uint64_t)b->u.i) -
		       ((uint64_t)a->u.i < (uint64_t)b->u.i);
	return (a->u.i > b->u.i) - (a->u.i < b->u.i);
}

static __thread struct qctx *sort_q;

static int cmp_rows(const void *pa, const void *pb)
{
	const struct row *a = pa, *b = pb;
	struct qctx *q = sort_q;
	for (int k = 0; k < q->nord; k++) {
		int col = q->ord[k].selref >= 0 ? q->ord[k].selref : q->nsel + k;
		int c = cmp_val(&a->v[col], &b->v[col]);
		if (c)
			return q->ord[k].desc ? -c : c;
	}
	return 0;
}

static void rows_push(struct qctx *q, struct row r)
{
	if (q->nrows == q->caprows) {
		q->caprows = q->caprows ? q->caprows * 2 : 256;
		q->rows = xrealloc(q->rows, sizeof(struct row) * q->caprows);
	}
	q->rows[q->nrows++] = r;
}

static void rows_sort_trim(struct qctx *q, size_t keep)
{
	sort_q = q;
	if (q->nrows > 1)
		qsort(q->rows, q->nrows, sizeof(struct row), cmp_rows);
	if (q->nrows > keep)
		q->nrows = keep;
}

/* ------------------------------------------------------------------ dense grouping */

/*
 * When every group key of a batch is an integer (or symbol) without NULLs and the keys span a
 * small box (a second bucket and a type over one granule, say), rows map to their group by
 * array index instead of hashing: the hash table is touched once per distinct key per batch.
 * Returns 0 when done, 1 when the batch does not qualify, or a negative error.
 */
#define DENSE_MAX 65536

/*
 * Rows i0..i1-1 of the batch all belong to group g: aggregate them in tight loops, one
 * aggregate at a time (the common case of a pid-sorted granule, where a key such as the service
 * is constant for thousands of rows).
 */
static int agg_range(struct qctx *q, int64_t g, uint32_t i0, uint32_t i1)
{
	struct aggst *st = &q->g.st[(uint64_t)g * q->naggs];
	for (int a = 0; a < q->naggs; a++) {
		const struct agg *ag = &q->aggs[a];
		struct node *x = ag->arg;
		struct aggst *sa = &st[a];
		if (ag->kind == A_COUNT && !x) {
			sa->n += i1 - i0;
			continue;
		}
		uint32_t i = i0;
		if (x && x->vt == V_INT && ag->kind == A_QUANT) {
			/* values go one by one until the sketch is a histogram, then in a tight
			 * loop */
			for (; i < i1 && !(sa->q && sa->q->hist); i++) {
				int rc = agg_update(q, sa, ag, x, i);
				if (rc)
					return rc;
			}
			if (i < i1) {
				struct qsk *k = sa->q;
				uint32_t *h = k->h;
				const int64_t *v = x->v.i;
				const uint8_t *nl = x->v.nul;
				uint64_t added = 0;
				for (; i < i1; i++) {
					if (nl[i])
						continue;
					if (v[i] < 0) { /* not for the histogram: the slow path */
						int rc = agg_update(q, sa, ag, x, i);
						if (rc)
							return rc;
						continue;
					}
					h[qh_index((uint64_t)v[i])]++;
					added++;
				}
				k->total += added;
				sa->n += (int64_t)added;
			}
			continue;
		}
		if (x && x->vt == V_INT && (ag->kind == A_MAX || ag->kind == A_MIN ||
					    ag->kind == A_SUM)) {
			const int64_t *v = x->v.i;
			const uint8_t *nl = x->v.nul;
			int64_t acc = sa->a.i, n = sa->n;
			for (; i < i1; i++) {
				if (nl[i])
					continue;
				if (ag->kind == A_SUM)
					acc = (int64_t)((uint64_t)acc + (uint64_t)v[i]);
				else if (ag->kind == A_MAX)
					acc = !n || v[i] > acc ? v[i] : acc;
				else
					acc = !n || v[i] < acc ? v[i] : acc;
				n++;
			}
			sa->a.i = acc;
			sa->n = n;
			continue;
		}
		for (; i < i1; i++) {
			int rc = agg_update(q, sa, ag, x, i);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/*
 * Runs of rows with equal keys (a pid-sorted granule holds a few processes, so a service or a
 * comm key changes a few times per batch): one group lookup per run and tight loops over it.
 * Gives up (returns 1) as soon as the runs turn out short.
 */
static int agg_runs(struct qctx *q, uint32_t ns)
{
	if (!q->nkeys || !ns)
		return 1;
	for (int k = 0; k < q->nkeys; k++) {
		int vt = q->keys[k]->vt;
		if (vt != V_INT && vt != V_SYM && vt != V_BOOL)
			return 1;
	}
	if (!q->dense_run)
		q->dense_run = xmalloc(sizeof(uint32_t) * (BATCH_CAP + 1));
	uint32_t *run = q->dense_run, nrun = 1, lim = ns / 16 + 1;
	run[0] = 0;
	if (q->nkeys == 1) {
		const int64_t *v = q->keys[0]->v.i;
		const uint8_t *nl = q->keys[0]->v.nul;
		for (uint32_t i = 1; i < ns; i++)
			if (v[i] != v[i - 1] || nl[i] != nl[i - 1]) {
				if (nrun == lim)
					return 1;
				run[nrun++] = i;
			}
	} else {
		for (uint32_t i = 1; i < ns; i++) {
			bool diff = false;
			for (int k = 0; k < q->nkeys; k++)
				diff |= q->keys[k]->v.i[i] != q->keys[k]->v.i[i - 1] ||
					q->keys[k]->v.nul[i] != q->keys[k]->v.nul[i - 1];
			if (diff) {
				if (nrun == lim)
					return 1;
				run[nrun++] = i;
			}
		}
	}
	run[nrun] = ns;
	for (uint32_t r = 0; r < nrun; r++) {
		int64_t kv[MAX_KEYS];
		uint8_t kn[MAX_KEYS];
		for (int k = 0; k < q->nkeys; k++) {
			kn[k] = q->keys[k]->v.nul[run[r]];
			kv[k] = kn[k] ? 0 : q->keys[k]->v.i[run[r]];
		}
		int64_t g = group_of(q, kv, kn);
		if (g < 0)
			return (int)g;
		int rc = agg_range(q, g, run[r], run[r + 1]);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * For batches whose keys change often (agg_runs gave up): every row's box index first (a loop
 * per key over its column), then a group for each box with rows, then the aggregates row by
 * row, one aggregate at a time; count-only queries keep a counter per box instead.
 */
static int agg_dense(struct qctx *q, uint32_t ns)
{
	if (!q->nkeys)
		return 1;
	int64_t lo[MAX_KEYS], scale[MAX_KEYS];
	uint32_t stride[MAX_KEYS];
	uint64_t span = 1;
	for (int k = 0; k < q->nkeys; k++) {
		struct node *e = q->keys[k];
		if (e->vt != V_INT && e->vt != V_SYM && e->vt != V_BOOL)
			return 1;
		/* bucket(x, step) values are step apart: index them by (v - min) / step */
		scale[k] = e->k == N_CALL && e->idx == F_BUCKET ? e->b->li : 1;
		int64_t mn = INT64_MAX, mx = INT64_MIN;
		uint8_t anynull = 0;
		const int64_t *v = e->v.i;
		const uint8_t *nl = e->v.nul;
		for (uint32_t i = 0; i < ns; i++) {
			mn = v[i] < mn ? v[i] : mn;
			mx = v[i] > mx ? v[i] : mx;
			anynull |= nl[i];
		}
		if (anynull || ((uint64_t)mx - (uint64_t)mn) / (uint64_t)scale[k] >= DENSE_MAX)
			return 1;
		lo[k] = mn;
		stride[k] = (uint32_t)span;
		span *= ((uint64_t)mx - (uint64_t)mn) / (uint64_t)scale[k] + 1;
		if (span > DENSE_MAX)
			return 1;
	}
	int64_t kv[MAX_KEYS];
	uint8_t kn[MAX_KEYS] = {0};
	if (!q->dense) {
		q->dense = xmalloc(sizeof(int64_t) * DENSE_MAX);
		for (uint32_t i = 0; i < DENSE_MAX; i++)
			q->dense[i] = -1;
		q->dense_used = xmalloc(sizeof(uint32_t) * BATCH_CAP);
		q->dense_ix = xmalloc(sizeof(uint32_t) * BATCH_CAP);
	}
	/* phase 1: box indexes, one key at a time */
	uint32_t *ix = q->dense_ix;
	for (int k = 0; k < q->nkeys; k++) {
		const int64_t *v = q->keys[k]->v.i;
		uint64_t l = (uint64_t)lo[k], sc = (uint64_t)scale[k];
		uint32_t sd = stride[k];
		if (sc == 1) {
			if (k == 0)
				for (uint32_t i = 0; i < ns; i++)
					ix[i] = (uint32_t)((uint64_t)v[i] - l) * sd;
			else
				for (uint32_t i = 0; i < ns; i++)
					ix[i] += (uint32_t)((uint64_t)v[i] - l) * sd;
			continue;
		}
		/* d is an exact multiple of the step and below 2^53 * step: a multiply by the
		 * reciprocal, corrected by one, replaces a 64-bit division */
		double inv = 1.0 / (double)sc;
		for (uint32_t i = 0; i < ns; i++) {
			uint64_t d = (uint64_t)v[i] - l;
			uint64_t qd = (uint64_t)((double)d * inv + 0.5);
			qd -= qd * sc > d;
			qd += (qd + 1) * sc <= d;
			uint32_t c = (uint32_t)qd * sd;
			ix[i] = k == 0 ? c : ix[i] + c;
		}
	}
	/* counts alone (count by second and type, say): a counter per box, then one group
	 * lookup per box that has rows; a box's keys follow from its index */
	bool counts_only = span <= 2 * (uint64_t)ns;
	for (int a = 0; a < q->naggs; a++)
		counts_only &= q->aggs[a].kind == A_COUNT && !q->aggs[a].arg;
	if (counts_only) {
		if (!q->dense_cnt)
			q->dense_cnt = xcalloc(DENSE_MAX, sizeof(uint32_t));
		uint32_t *cnt = q->dense_cnt;
		for (uint32_t i = 0; i < ns; i++)
			cnt[ix[i]]++;
		int rc = 0;
		for (uint32_t b = 0; b < (uint32_t)span; b++) {
			if (!cnt[b])
				continue;
			uint32_t c = cnt[b];
			cnt[b] = 0;
			if (rc)
				continue; /* keep clearing: the counters must be zero for the next batch */
			uint32_t rest = b;
			for (int k = q->nkeys - 1; k >= 0; k--) {
				kv[k] = lo[k] + (int64_t)(rest / stride[k]) * scale[k];
				rest %= stride[k];
			}
			int64_t g = group_of(q, kv, kn);
			if (g < 0) {
				rc = (int)g;
				continue;
			}
			for (int a = 0; a < q->naggs; a++)
				q->g.st[(uint64_t)g * q->naggs + a].n += c;
		}
		return rc;
	}
	/* phase 2: a group for every box with rows (long runs of one key were agg_runs') */
	uint32_t nused = 0;
	int rc = 0;
	for (uint32_t i = 0; i < ns; i++) {
		uint32_t b = ix[i];
		if (q->dense[b] >= 0)
			continue;
		for (int k = 0; k < q->nkeys; k++)
			kv[k] = q->keys[k]->v.i[i];
		int64_t g = group_of(q, kv, kn);
		if (g < 0) {
			rc = (int)g;
			goto cleanup;
		}
		q->dense[b] = g;
		q->dense_used[nused++] = b;
	}
	/* phase 3: aggregate, one aggregate at a time */
	for (int a = 0; a < q->naggs && !rc; a++) {
		const struct agg *ag = &q->aggs[a];
		struct node *x = ag->arg;
		struct aggst *st = &q->g.st[a];
		uint32_t na = (uint32_t)q->naggs;
		if (ag->kind == A_COUNT && !x) { /* the hot one: a counter per row */
			for (uint32_t i = 0; i < ns; i++)
				st[(uint64_t)q->dense[ix[i]] * na].n++;
			continue;
		}
		for (uint32_t i = 0; i < ns && !rc; i++) {
			struct aggst *sa = &st[(uint64_t)q->dense[ix[i]] * na];
			if (x && x->vt == V_INT && !x->v.nul[i] && ag->kind == A_QUANT && sa->q &&
			    sa->q->hist && x->v.i[i] >= 0) {
				sa->q->total++;
				sa->q->h[qh_index((uint64_t)x->v.i[i])]++;
				sa->n++;
				continue;
			}
			rc = agg_update(q, sa, ag, x, i);
		}
	}
cleanup:
	for (uint32_t k = 0; k < nused; k++)
		q->dense[q->dense_used[k]] = -1;
	return rc;
}

/* ------------------------------------------------------------------ scan callback */

static bool q_cancel(void *arg)
{
	struct qctx *q = arg;
	if (q->opts->cancel && *q->opts->cancel)
		return true;
	return now_mono_ns() > q->deadline;
}

static int64_t eff_limit(struct qctx *q)
{
	return q->limit >= 0 ? q->limit : q->opts->max_rows;
}

static int on_batch(void *arg, struct table_batch *b)
{
	struct qctx *q = arg;
	int rc;
	q->batch = b;
	memset(q->colhave, 0, sizeof(q->colhave));
	uint32_t n = b->n, ns = n;
	/* the selection starts as the identity (filled once); filters write into the two
	 * scratch vectors in turn */
	if (!q->iota_filled) {
		for (uint32_t i = 0; i < BATCH_CAP; i++)
			q->iota[i] = i;
		q->iota_filled = true;
	}
	uint32_t *sel = q->iota, *alt = q->sel_a;
	for (int c = 0; c < q->nconj && ns; c++) {
		struct node *e = q->conj[c];
		q->sel_ident = ns == n;
		if (e->hint_ts && (b->holds & TB_HOLDS_TS))
			continue; /* the provider vouches that every row is in the ts range */
		if ((rc = eval(q, e, sel, ns)))
			return rc;
		uint32_t k = 0;
		for (uint32_t i = 0; i < ns; i++)
			if (e->v.i[i] && !e->v.nul[i])
				alt[k++] = sel[i];
		sel = alt;
		alt = alt == q->sel_a ? q->sel_b : q->sel_a;
		ns = k;
	}
	q->matched += ns;
	if (!ns)
		return 0;
	q->sel_ident = ns == n; /* rows only leave the selection, in order */
	if (q->agg_mode) {
		for (int k = 0; k < q->nkeys; k++)
			if ((rc = eval(q, q->keys[k], sel, ns)))
				return rc;
		for (int a = 0; a < q->naggs; a++)
			if (q->aggs[a].arg && (rc = eval(q, q->aggs[a].arg, sel, ns)))
				return rc;
		int64_t kv[MAX_KEYS];
		uint8_t kn[MAX_KEYS];
		int64_t last = -1;
		rc = agg_runs(q, ns);
		if (rc == 1)
			rc = agg_dense(q, ns);
		if (rc <= 0)
			return rc;
		for (uint32_t i = 0; i < ns; i++) {
			bool same = last >= 0;
			for (int k = 0; k < q->nkeys; k++) {
				int64_t v;
				key_val(q, q->keys[k], i, &v);
				uint8_t nl = q->keys[k]->v.nul[i];
				if (nl)
					v = 0;
				if (same && (kv[k] != v || kn[k] != nl))
					same = false;
				kv[k] = v;
				kn[k] = nl;
			}
			int64_t g = same ? last : group_of(q, kv, kn);
			if (g < 0)
				return (int)g;
			last = g;
			struct aggst *st = &q->g.st[(uint64_t)g * q->naggs];
			for (int a = 0; a < q->naggs; a++)
				if ((rc = agg_update(q, &st[a], &q->aggs[a], q->aggs[a].arg, i)))
					return rc;
		}
		return 0;
	}
	/* plain rows */
	int64_t lim = eff_limit(q);
	for (int c = 0; c < q->nsel; c++)
		if ((rc = eval(q, q->sel[c].e, sel, ns)))
			return rc;
	for (int k = 0; k < q->nord; k++)
		if (q->ord[k].selref < 0 && (rc = eval(q, q->ord[k].e, sel, ns)))
			return rc;
	for (uint32_t i = 0; i < ns; i++) {
		struct query_value tmp[MAX_OUT * 2];
		if (!q->nord && (int64_t)q->nrows >= lim) {
			q->truncated = q->limit < 0;
			return 1; /* enough rows: stop the scan */
		}
		/* values go straight into the kept row unless a top-k bound may reject it */
		struct row r = {q->have_bound ? tmp
					      : arena_alloc(&q->strs,
							    sizeof(struct query_value) * q->nout)};
		for (int c = 0; c < q->nsel; c++)
			val_of(q, q->sel[c].e, i, &r.v[c], false);
		for (int k = 0; k < q->nord; k++)
			if (q->ord[k].selref < 0)
				val_of(q, q->ord[k].e, i, &r.v[q->nsel + k], false);
		if (q->nord && q->have_bound) {
			sort_q = q;
			if (cmp_rows(&r, &q->bound) >= 0)
				continue; /* cannot enter the top k */
		}
		struct row keep = r;
		if (r.v == tmp) {
			keep.v = arena_alloc(&q->strs, sizeof(struct query_value) * q->nout);
			memcpy(keep.v, tmp, sizeof(struct query_value) * q->nout);
		}
		for (int c = 0; c < q->nout; c++) /* symbols are stable; batch strings are not */
			if (keep.v[c].type == QV_STR && q->vol[c])
				keep.v[c].u.s.p =
					arena_strndup(&q->strs, keep.v[c].u.s.p, keep.v[c].u.s.len);
		rows_push(q, keep);
		if (q->nord && (int64_t)q->nrows >= 2 * lim + 1024) {
			if (q->limit < 0)
				q->truncated = true;
			rows_sort_trim(q, (size_t)lim);
			if (q->nrows) {
				q->bound = q->rows[q->nrows - 1];
				q->have_bound = (int64_t)q->nrows == lim;
			}
			if (q->strs.total > (512u << 20))
				return -E2BIG;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ finishing */

static int finish_groups(struct qctx *q)
{
	uint64_t ng = q->g.ng;
	if (!q->nkeys && ng == 0) { /* a global aggregate over no rows still answers one row */
		int64_t kv[1] = {0};
		uint8_t kn[1] = {0};
		if (group_of(q, kv, kn) < 0)
			return -ENOMEM;
		ng = q->g.ng;
	}
	q->gkeys = xcalloc((size_t)(q->nkeys ? q->nkeys : 1), sizeof(struct vec));
	q->gaggs = xcalloc((size_t)(q->naggs ? q->naggs : 1), sizeof(struct vec));
	size_t cnt = (size_t)(ng ? ng : 1);
	for (int k = 0; k < q->nkeys; k++) {
		struct vec *v = &q->gkeys[k];
		v->i = xmalloc(sizeof(int64_t) * cnt);
		v->f = xmalloc(sizeof(double) * cnt);
		v->s = xmalloc(sizeof(char *) * cnt);
		v->sl = xmalloc(sizeof(uint32_t) * cnt);
		v->nul = xmalloc(cnt);
		for (uint64_t g = 0; g < ng; g++) {
			int64_t kv = q->g.keys[g * q->nkeys + k];
			v->nul[g] = q->g.knull[g * q->nkeys + k];
			v->i[g] = kv;
			memcpy(&v->f[g], &kv, 8);
			if (q->keys[k]->vt == V_STR && !v->nul[g]) {
				v->s[g] = q->istr[kv];
				v->sl[g] = q->istrlen[kv];
			}
		}
	}
	for (int a = 0; a < q->naggs; a++) {
		struct vec *v = &q->gaggs[a];
		const struct agg *ag = &q->aggs[a];
		v->i = xcalloc(cnt, sizeof(int64_t));
		v->f = xcalloc(cnt, sizeof(double));
		v->nul = xcalloc(cnt, 1);
		for (uint64_t g = 0; g < ng; g++) {
			struct aggst *s = &q->g.st[g * q->naggs + a];
			bool fl = ag->arg && ag->arg->vt == V_FLOAT;
			if (ag->kind == A_COUNT) {
				v->i[g] = s->n;
				continue;
			}
			if (!s->n) {
				v->nul[g] = 1;
				continue;
			}
			switch (ag->kind) {
			case A_SUM:
			case A_MIN:
			case A_MAX:
				v->i[g] = s->a.i;
				v->f[g] = s->a.f;
				break;
			case A_AVG:
				v->f[g] = s->a.f / (double)s->n;
				break;
			case A_QUANT: {
				double r = qsk_get(s->q, ag->q);
				if (fl)
					v->f[g] = r;
				else
					v->i[g] = (int64_t)r;
				break;
			}
			}
			(void)fl;
		}
	}
	/* evaluate HAVING, outputs and order keys over the groups, BATCH_CAP at a time */
	int64_t lim = eff_limit(q);
	for (uint64_t base = 0; base < ng; base += BATCH_CAP) {
		uint32_t n = (uint32_t)KP_MIN((uint64_t)BATCH_CAP, ng - base), ns = n;
		q->gbase = base;
		for (uint32_t i = 0; i < n; i++)
			q->sel_a[i] = i;
		int rc;
		if (q->having) {
			if ((rc = eval(q, q->having, q->sel_a, n)))
				return rc;
			uint32_t k = 0;
			for (uint32_t i = 0; i < n; i++)
				if (q->having->v.i[i] && !q->having->v.nul[i])
					q->sel_b[k++] = q->sel_a[i];
			memcpy(q->sel_a, q->sel_b, sizeof(uint32_t) * k);
			ns = k;
		}
		if (!ns)
			continue;
		for (int c = 0; c < q->nsel; c++)
			if ((rc = eval(q, q->sel[c].e, q->sel_a, ns)))
				return rc;
		for (int k = 0; k < q->nord; k++)
			if (q->ord[k].selref < 0 && (rc = eval(q, q->ord[k].e, q->sel_a, ns)))
				return rc;
		for (uint32_t i = 0; i < ns; i++) {
			struct row r = {
				arena_alloc(&q->strs, sizeof(struct query_value) * q->nout)};
			for (int c = 0; c < q->nsel; c++)
				val_of(q, q->sel[c].e, i, &r.v[c], true);
			for (int k = 0; k < q->nord; k++)
				if (q->ord[k].selref < 0)
					val_of(q, q->ord[k].e, i, &r.v[q->nsel + k], true);
			rows_push(q, r);
		}
		if (q->nord && (int64_t)q->nrows >= 2 * lim + 1024)
			rows_sort_trim(q, (size_t)lim);
	}
	if (q->nord)
		rows_sort_trim(q, (size_t)q->nrows);
	if ((int64_t)q->nrows > lim) {
		if (q->limit < 0)
			q->truncated = true;
		q->nrows = (size_t)lim;
	}
	return 0;
}

/* ------------------------------------------------------------------ analysis driver */

/* In HAVING and ORDER BY expressions a name that is not a column may be an output alias. */
static void subst_alias(struct qctx *q, struct node **pn)
{
	struct node *n = *pn;
	if (!n)
		return;
	if (n->k == N_COL && find_col(q, n->name, (size_t)n->namelen) < 0) {
		for (int i = 0; i < q->nsel; i++)
			if (q->sel[i].name && strlen(q->sel[i].name) == (size_t)n->namelen &&
			    !strncasecmp(q->sel[i].name, n->name, (size_t)n->namelen)) {
				*pn = q->sel[i].e;
				return;
			}
		return;
	}
	if (n->k == N_AGG || n->k == N_CALL)
		return; /* names inside calls are columns */
	subst_alias(q, &n->a);
	subst_alias(q, &n->b);
	subst_alias(q, &n->c);
}

static int analyse(struct qctx *q)
{
	int rc;
	/* expand '*' */
	struct selitem sel[MAX_OUT];
	int ns = 0;
	for (int i = 0; i < q->nsel; i++) {
		if (q->sel[i].e->k != N_STAR) {
			sel[ns++] = q->sel[i];
			continue;
		}
		for (int c = 0; c < q->tab->ncols; c++) {
			if (ns == MAX_OUT)
				return qerr(q, q->sel[i].e->pos, "too many output columns");
			struct node *n = mk(q, N_COL, q->sel[i].e->pos, NULL, NULL);
			n->name = q->tab->cols[c].name;
			n->namelen = (int)strlen(n->name);
			sel[ns++] = (struct selitem){n, (char *)q->tab->cols[c].name};
		}
	}
	memcpy(q->sel, sel, sizeof(sel[0]) * (size_t)ns);
	q->nsel = ns;

	if (q->where) {
		if ((rc = resolve(q, q->where, false)))
			return rc;
		if (q->where->vt != V_BOOL && q->where->vt != V_NULL)
			return qerr(q, q->where->pos, "WHERE needs a condition (found %s at %d)",
				    vt_name[q->where->vt], q->where->pos);
		split_conj(q, q->where);
	}
	for (int i = 0; i < q->nsel; i++)
		if ((rc = resolve(q, q->sel[i].e, true)))
			return rc;
	/* GROUP BY items: an output alias, an ordinal, or an expression */
	for (int k = 0; k < q->nkeys; k++) {
		struct node *e = q->keys[k];
		if (e->k == N_COL) {
			for (int i = 0; i < q->nsel; i++)
				if (q->sel[i].name &&
				    strlen(q->sel[i].name) == (size_t)e->namelen &&
				    !strncasecmp(q->sel[i].name, e->name, (size_t)e->namelen) &&
				    find_col(q, e->name, (size_t)e->namelen) < 0) {
					e = q->keys[k] = q->sel[i].e;
					break;
				}
		} else if (e->k == N_LIT && e->vt == V_INT) {
			if (e->li < 1 || e->li > q->nsel)
				return qerr(q, e->pos,
					    "GROUP BY %" PRId64 " at %d: there are %d output "
					    "columns",
					    e->li, e->pos, q->nsel);
			e = q->keys[k] = q->sel[e->li - 1].e;
		}
		if ((rc = resolve(q, e, true)))
			return rc;
		if (has_agg(e))
			return qerr(q, e->pos, "GROUP BY cannot hold an aggregate (at %d)", e->pos);
	}
	if (q->having) {
		subst_alias(q, &q->having);
		if ((rc = resolve(q, q->having, true)))
			return rc;
	}
	/* ORDER BY: output alias, ordinal, or expression */
	for (int k = 0; k < q->nord; k++) {
		struct node *e = q->ord[k].e;
		if (e->k == N_COL) {
			for (int i = 0; i < q->nsel; i++)
				if (q->sel[i].name &&
				    strlen(q->sel[i].name) == (size_t)e->namelen &&
				    !strncasecmp(q->sel[i].name, e->name, (size_t)e->namelen)) {
					q->ord[k].selref = i;
					break;
				}
		} else if (e->k == N_LIT && e->vt == V_INT) {
			if (e->li < 1 || e->li > q->nsel)
				return qerr(q, e->pos,
					    "ORDER BY %" PRId64 " at %d: there are %d output "
					    "columns",
					    e->li, e->pos, q->nsel);
			q->ord[k].selref = (int)e->li - 1;
		}
		if (q->ord[k].selref < 0) {
			subst_alias(q, &q->ord[k].e);
			e = q->ord[k].e;
			if ((rc = resolve(q, e, true)))
				return rc;
		}
		if (q->ord[k].selref < 0) /* the same expression as an output: use it */
			for (int i = 0; i < q->nsel; i++)
				if (node_eq(q->sel[i].e, e)) {
					q->ord[k].selref = i;
					break;
				}
	}
	bool any_agg = q->nkeys > 0 || (q->having != NULL);
	for (int i = 0; i < q->nsel; i++)
		any_agg |= has_agg(q->sel[i].e);
	for (int k = 0; k < q->nord; k++)
		any_agg |= q->ord[k].selref < 0 && has_agg(q->ord[k].e);
	q->agg_mode = any_agg;
	if (q->agg_mode) {
		for (int i = 0; i < q->nsel; i++)
			if ((rc = rewrite(q, &q->sel[i].e)))
				return rc;
		if (q->having) {
			if ((rc = rewrite(q, &q->having)))
				return rc;
			if (q->having->vt != V_BOOL)
				return qerr(q, q->having->pos, "HAVING needs a condition (at %d)",
					    q->having->pos);
		}
		for (int k = 0; k < q->nord; k++)
			if (q->ord[k].selref < 0 && (rc = rewrite(q, &q->ord[k].e)))
				return rc;
	}
	q->nout = q->nsel + q->nord;
	for (int c = 0; c < q->nsel; c++)
		q->vol[c] = q->sel[c].e->vt == V_STR;
	for (int k = 0; k < q->nord; k++)
		q->vol[q->nsel + k] = q->ord[k].selref < 0 && q->ord[k].e->vt == V_STR;
	extract_hints(q);
	return 0;
}

/* ------------------------------------------------------------------ entry point */

void query_opts_from_config(struct query_opts *o, const struct kp_config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->max_rows = cfg->api_max_rows;
	o->timeout_ms = cfg->api_query_timeout_ms;
}

struct query_priv {
	struct arena strs;
};

static uint8_t out_type(const struct node *n)
{
	switch (n->vt) {
	case V_BOOL:
		return QV_BOOL;
	case V_INT:
		return n->is_unsigned ? QV_UINT : QV_INT;
	case V_FLOAT:
		return QV_FLOAT;
	case V_STR:
	case V_SYM:
		return QV_STR;
	default:
		return QV_NULL;
	}
}

static void free_all_nodes(struct qctx *q)
{
	for (int i = 0; i < q->nsel; i++)
		node_free_bufs(q->sel[i].e);
	for (int k = 0; k < q->nkeys; k++)
		node_free_bufs(q->keys[k]);
	for (int k = 0; k < q->nord; k++)
		node_free_bufs(q->ord[k].e);
	for (int a = 0; a < q->naggs; a++)
		node_free_bufs(q->aggs[a].arg);
	node_free_bufs(q->where);
	node_free_bufs(q->having);
}

/* Frees what a context (the main one or a worker's) holds, not the struct itself. */
static void qctx_release(struct qctx *q)
{
	free_all_nodes(q);
	for (int i = 0; i < q->nconj; i++) /* a worker's conjuncts hang off no WHERE tree */
		node_free_bufs(q->conj[i]);
	if (q->g.st)
		for (uint64_t i = 0; i < q->g.ng * (uint64_t)q->naggs; i++)
			if (q->g.st[i].q) {
				free(q->g.st[i].q->v);
				free(q->g.st[i].q->h);
				free(q->g.st[i].q);
			}
	free(q->g.keys);
	free(q->g.knull);
	free(q->g.st);
	free(q->g.slot);
	if (q->gkeys)
		for (int k = 0; k < q->nkeys; k++) {
			free(q->gkeys[k].i);
			free(q->gkeys[k].f);
			free(q->gkeys[k].s);
			free(q->gkeys[k].sl);
			free(q->gkeys[k].nul);
		}
	if (q->gaggs)
		for (int a = 0; a < q->naggs; a++) {
			free(q->gaggs[a].i);
			free(q->gaggs[a].f);
			free(q->gaggs[a].nul);
		}
	free(q->gkeys);
	free(q->gaggs);
	free(q->rows);
	free(q->istr);
	free(q->istrlen);
	free(q->ihash);
	free(q->dense);
	free(q->dense_used);
	free(q->dense_ix);
	free(q->dense_run);
	free(q->dense_cnt);
	arena_free(&q->ar);
	arena_free(&q->strs);
}

/* ------------------------------------------------------------------ parallel workers */

struct clonemap {
	struct node **from, **to;
	int n, cap;
};

/* Deep copy of an analysed expression for another worker: same plan, private buffers. Shared
 * sub-expressions stay shared (the map), literals are simply copied. */
static struct node *nclone(struct qctx *w, struct clonemap *m, struct node *n)
{
	if (!n)
		return NULL;
	if (n->k != N_LIT)
		for (int i = 0; i < m->n; i++)
			if (m->from[i] == n)
				return m->to[i];
	struct node *c = arena_alloc(&w->ar, sizeof(*c));
	*c = *n;
	memset(&c->v, 0, sizeof(c->v));
	c->own_i = NULL;
	c->own_nul = NULL;
	c->filled = 0;
	c->like_id = -2;
	c->set_i = NULL;
	if (n->k != N_LIT) {
		if (m->n == m->cap) {
			m->cap = m->cap ? m->cap * 2 : 64;
			m->from = xrealloc(m->from, sizeof(*m->from) * (size_t)m->cap);
			m->to = xrealloc(m->to, sizeof(*m->to) * (size_t)m->cap);
		}
		m->from[m->n] = n;
		m->to[m->n++] = c;
	}
	c->a = nclone(w, m, n->a);
	c->b = nclone(w, m, n->b);
	c->c = nclone(w, m, n->c);
	if (n->nargs) {
		c->args = arena_alloc(&w->ar, sizeof(struct node *) * (size_t)n->nargs);
		for (int k = 0; k < n->nargs; k++)
			c->args[k] = nclone(w, m, n->args[k]);
	}
	return c;
}

static struct qctx *worker_new(struct qctx *q)
{
	struct qctx *w = xcalloc(1, sizeof(*w));
	struct clonemap m = {0};
	w->err = q->err;
	w->opts = q->opts;
	w->now_ns = q->now_ns;
	w->deadline = q->deadline;
	w->st = q->st;
	w->tab = q->tab;
	w->tctx = q->tctx;
	w->limit = q->limit;
	w->agg_mode = q->agg_mode;
	w->nout = q->nout;
	memcpy(w->vol, q->vol, sizeof(w->vol));
	w->nconj = q->nconj;
	for (int i = 0; i < q->nconj; i++)
		w->conj[i] = nclone(w, &m, q->conj[i]);
	w->nkeys = q->nkeys;
	for (int k = 0; k < q->nkeys; k++)
		w->keys[k] = nclone(w, &m, q->keys[k]);
	w->naggs = q->naggs;
	for (int a = 0; a < q->naggs; a++) {
		w->aggs[a] = q->aggs[a];
		w->aggs[a].arg = nclone(w, &m, q->aggs[a].arg);
		w->aggs[a].src = NULL;
	}
	if (!q->agg_mode) { /* rows are built by the workers; groups only after the merge */
		w->nsel = q->nsel;
		for (int i = 0; i < q->nsel; i++)
			w->sel[i] = (struct selitem){nclone(w, &m, q->sel[i].e), q->sel[i].name};
		w->nord = q->nord;
		for (int k = 0; k < q->nord; k++)
			w->ord[k] = (struct orditem){
				q->ord[k].selref < 0 ? nclone(w, &m, q->ord[k].e) : NULL,
				q->ord[k].selref, q->ord[k].desc};
	}
	free(m.from);
	free(m.to);
	return w;
}

static void qsk_merge(struct qctx *q, struct qsk *d, struct qsk *s)
{
	if (!s->hist) {
		for (uint32_t i = 0; i < s->n; i++)
			qsk_add(q, d, s->v[i]);
		return;
	}
	if (!d->hist)
		qsk_to_hist(q, d); /* fractional values in d round down to their bucket */
	for (uint32_t i = 0; i < QHIST; i++)
		d->h[i] += s->h[i];
	d->total += s->total - s->n;
	for (uint32_t i = 0; i < s->n; i++) /* s's exact negatives */
		qsk_add(q, d, s->v[i]);
}

static void agg_merge(struct qctx *q, struct aggst *d, struct aggst *s, const struct agg *a)
{
	bool fl = a->arg && a->arg->vt == V_FLOAT;
	switch (a->kind) {
	case A_COUNT:
		break;
	case A_SUM:
	case A_AVG:
		if (fl || a->kind == A_AVG)
			d->a.f += s->a.f;
		else
			d->a.i = (int64_t)((uint64_t)d->a.i + (uint64_t)s->a.i);
		break;
	case A_MIN:
	case A_MAX:
		if (!s->n)
			break;
		if (!d->n || (a->kind == A_MIN ? (fl ? s->a.f < d->a.f : s->a.i < d->a.i)
					       : (fl ? s->a.f > d->a.f : s->a.i > d->a.i)))
			d->a = s->a;
		break;
	case A_QUANT:
		if (!s->q)
			break;
		if (!d->q) {
			d->q = s->q; /* moved */
			s->q = NULL;
		} else {
			qsk_merge(q, d->q, s->q);
		}
		break;
	}
	d->n += s->n;
}

static void arena_splice(struct arena *dst, struct arena *src)
{
	while (src->head) {
		struct achunk *c = src->head;
		src->head = c->next;
		c->next = dst->head ? dst->head->next : NULL;
		if (dst->head)
			dst->head->next =
				c; /* behind the current chunk: it stays the one to fill */
		else
			dst->head = c;
		dst->total += c->cap;
	}
	src->total = 0;
}

static int worker_merge(struct qctx *q, struct qctx *w)
{
	q->matched += w->matched;
	q->truncated |= w->truncated;
	if (!q->agg_mode) {
		for (size_t i = 0; i < w->nrows; i++)
			rows_push(q, w->rows[i]);
		arena_splice(&q->strs, &w->strs);
		return 0;
	}
	int64_t kv[MAX_KEYS + 1] = {0};
	uint8_t kn[MAX_KEYS + 1] = {0};
	for (uint64_t gi = 0; gi < w->g.ng; gi++) {
		for (int k = 0; k < q->nkeys; k++) {
			kv[k] = w->g.keys[gi * q->nkeys + k];
			kn[k] = w->g.knull[gi * q->nkeys + k];
			if (!kn[k] && q->keys[k]->vt == V_STR) /* worker-local string ids */
				kv[k] = intern_str(q, w->istr[kv[k]], w->istrlen[kv[k]]);
		}
		int64_t g = group_of(q, kv, kn);
		if (g < 0)
			return (int)g;
		for (int a = 0; a < q->naggs; a++)
			agg_merge(q, &q->g.st[(uint64_t)g * q->naggs + a],
				  &w->g.st[gi * q->naggs + a], &q->aggs[a]);
	}
	return 0;
}

static int query_threads(const struct query_opts *o)
{
	if (o->threads > 0)
		return o->threads > 8 ? 8 : o->threads;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 4 ? 4 : (int)n;
}

int query_exec(struct store *st, const char *text, size_t len, const struct query_opts *opts,
	       struct query_result **out, struct query_error *err)
{
	struct qctx *q = xcalloc(1, sizeof(*q));
	int rc;
	uint64_t t0 = now_mono_ns();
	memset(err, 0, sizeof(*err));
	err->position = -1;
	*out = NULL;
	q->err = err;
	q->text = text;
	q->len = len;
	/* a zeroed opts means the configured defaults (api.maxRows, api.queryTimeoutMs) */
	struct query_opts dflt = *opts;
	if (dflt.max_rows <= 0)
		dflt.max_rows = 100000;
	if (dflt.timeout_ms <= 0)
		dflt.timeout_ms = 30000;
	opts = &dflt;
	q->opts = opts;
	q->st = st;
	q->now_ns = opts->now_ns ? opts->now_ns : now_real_ns();
	q->deadline =
		t0 + (uint64_t)(opts->timeout_ms > 0 ? opts->timeout_ms : 30000) * NSEC_PER_MSEC;
	if (len > QUERY_MAX_TEXT) {
		rc = qerr(q, QUERY_MAX_TEXT, "query longer than %d bytes", QUERY_MAX_TEXT);
		goto cleanup;
	}
	if (!text && len) {
		rc = qerr(q, 0, "no query text");
		goto cleanup;
	}
	if ((rc = lex(q)) || (rc = parse_query(q)) || (rc = analyse(q)))
		goto cleanup;
	/* run: worker 0 is this context, the others are clones merged afterwards */
	int nw = query_threads(opts);
	struct qctx *wk[8] = {q};
	void *args[8] = {q};
	for (int i = 1; i < nw; i++)
		args[i] = wk[i] = worker_new(q);
	rc = q->tab->scan(q->tctx, &q->h, nw, on_batch, args, q_cancel, &q->ss);
	if (rc == 1)
		rc = 0; /* stopped early: LIMIT reached */
	for (int i = 1; i < nw; i++) {
		if (!rc)
			rc = worker_merge(q, wk[i]);
		qctx_release(wk[i]);
		free(wk[i]);
	}
	if (!rc && !q->agg_mode && !q->nord && (int64_t)q->nrows > eff_limit(q)) {
		q->nrows = (size_t)eff_limit(q); /* the workers together found more than enough */
		q->truncated = q->limit < 0;
	}
	if (rc == -ECANCELED && !(opts->cancel && *opts->cancel) && now_mono_ns() > q->deadline)
		rc = -ETIMEDOUT;
	if (rc == 0 && q->agg_mode)
		rc = finish_groups(q);
	else if (rc == 0 && q->nord) {
		if ((int64_t)q->nrows > eff_limit(q) && q->limit < 0)
			q->truncated = true;
		rows_sort_trim(q, (size_t)KP_MIN((int64_t)q->nrows, eff_limit(q)));
	}
	if (rc) {
		if (rc == -ETIMEDOUT)
			snprintf(err->message, sizeof(err->message),
				 "query ran longer than api.queryTimeoutMs (%" PRId64
				 " ms) and was "
				 "cancelled; narrow the time range or raise the limit",
				 opts->timeout_ms);
		else if (rc == -ECANCELED)
			snprintf(err->message, sizeof(err->message), "query cancelled");
		else if (rc == -E2BIG)
			snprintf(err->message, sizeof(err->message),
				 "query holds too much (more than %d groups or %u values for "
				 "quantiles or sorting); narrow the WHERE clause or group by less",
				 QUERY_MAX_GROUPS, MAX_QVALUES);
		else if (!err->message[0])
			snprintf(err->message, sizeof(err->message), "%s", store_strerror(rc));
		goto cleanup;
	}
	struct query_result *r = xcalloc(1, sizeof(*r));
	struct query_priv *pv = xcalloc(1, sizeof(*pv));
	r->priv = pv;
	r->ncols = q->nsel;
	r->names = xcalloc((size_t)(q->nsel ? q->nsel : 1), sizeof(char *));
	r->types = xcalloc((size_t)(q->nsel ? q->nsel : 1), 1);
	for (int c = 0; c < q->nsel; c++) {
		r->names[c] = xstrdup(q->sel[c].name ? q->sel[c].name : "?");
		r->types[c] = out_type(q->sel[c].e);
	}
	r->nrows = q->nrows;
	r->cells = xmalloc((q->nrows * (size_t)q->nsel + 1) * sizeof(struct query_value));
	for (size_t i = 0; i < q->nrows; i++)
		memcpy(&r->cells[i * (size_t)q->nsel], q->rows[i].v,
		       sizeof(struct query_value) * (size_t)q->nsel);
	/* strings stay where they are: in the query's string arena, which the result now owns,
	 * or in the store's symbol table (stable until store_close) */
	pv->strs = q->strs;
	memset(&q->strs, 0, sizeof(q->strs));
	r->stats.rows_scanned = q->ss.rows_scanned;
	r->stats.rows_matched = q->matched;
	r->stats.granules_total = q->ss.granules_total;
	r->stats.granules_skipped = q->ss.granules_skipped;
	r->stats.segments_skipped = q->ss.segments_skipped;
	r->stats.groups = q->g.ng;
	r->stats.bytes_read = q->ss.bytes_read;
	r->stats.truncated = q->truncated;
	r->stats.ms = (double)(now_mono_ns() - t0) / 1e6;
	*out = r;
cleanup:
	if (rc && err->position < 0 && rc == -EINVAL && !err->message[0])
		snprintf(err->message, sizeof(err->message), "invalid query");
	qctx_release(q);
	free(q);
	return rc;
}

void query_result_free(struct query_result *r)
{
	if (!r)
		return;
	for (int c = 0; c < r->ncols; c++)
		free(r->names[c]);
	free(r->names);
	free(r->types);
	free(r->cells);
	if (r->priv) {
		struct query_priv *pv = r->priv;
		arena_free(&pv->strs);
		free(pv);
	}
	free(r);
}

/* ------------------------------------------------------------------ writers */

int query_format_parse(const char *name, enum query_format *f)
{
	if (!name || !*name || !strcmp(name, "json"))
		*f = QUERY_JSON;
	else if (!strcmp(name, "ndjson"))
		*f = QUERY_NDJSON;
	else if (!strcmp(name, "csv"))
		*f = QUERY_CSV;
	else
		return -EINVAL;
	return 0;
}

static char *put_digits(char *p, uint64_t v, bool neg)
{
	char t[24];
	int n = 0;
	do {
		t[23 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (neg)
		t[23 - n++] = '-';
	memcpy(p, t + 24 - n, (size_t)n);
	return p + n;
}

static void put_u64(struct kp_buf *b, uint64_t v, bool neg)
{
	buf_reserve(b, 24);
	b->len = (size_t)(put_digits(b->data + b->len, v, neg) - b->data);
	b->data[b->len] = '\0';
}

static void put_i64(struct kp_buf *b, int64_t v)
{
	put_u64(b, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0);
}

static void json_val(struct kp_buf *b, const struct query_value *v)
{
	switch (v->type) {
	case QV_NULL:
		buf_append(b, "null", 4);
		break;
	case QV_BOOL:
		buf_puts(b, v->u.i ? "true" : "false");
		break;
	case QV_INT:
		put_i64(b, v->u.i);
		break;
	case QV_UINT:
		put_u64(b, (uint64_t)v->u.i, false);
		break;
	case QV_FLOAT:
		if (isfinite(v->u.f))
			buf_printf(b, "%.17g", v->u.f);
		else
			buf_puts(b, "null");
		break;
	case QV_STR:
		json_str(b, v->u.s.p, v->u.s.len);
		break;
	}
}

/*
 * One JSON row written straight into the buffer: room for the whole row is reserved first
 * (numbers take at most 24 bytes, a string at most 6 per byte when every byte is escaped), so
 * the common values (integers, plain ASCII strings) need no per-value bounds checks. Strings
 * that need escaping or hold UTF-8 go through json_str.
 */
static void json_row(struct kp_buf *out, const struct query_value *v, size_t nc, bool comma)
{
	size_t need = 8;
	for (size_t c = 0; c < nc; c++)
		need += 2 + (v[c].type == QV_STR ? (size_t)v[c].u.s.len * 6 + 2 : 32);
	buf_reserve(out, need);
	char *p = out->data + out->len;
	if (comma)
		*p++ = ',';
	*p++ = '[';
	for (size_t c = 0; c < nc; c++, v++) {
		if (c)
			*p++ = ',';
		switch (v->type) {
		case QV_INT:
			p = put_digits(p, v->u.i < 0 ? 0 - (uint64_t)v->u.i : (uint64_t)v->u.i,
				       v->u.i < 0);
			continue;
		case QV_UINT:
			p = put_digits(p, (uint64_t)v->u.i, false);
			continue;
		case QV_NULL:
			memcpy(p, "null", 4);
			p += 4;
			continue;
		case QV_STR: {
			const unsigned char *s = (const unsigned char *)v->u.s.p;
			uint32_t l = v->u.s.len, k = 0;
			while (k < l && s[k] >= 0x20 && s[k] < 0x80 && s[k] != '"' && s[k] != '\\')
				k++;
			if (k == l) {
				*p++ = '"';
				memcpy(p, s, l);
				p += l;
				*p++ = '"';
				continue;
			}
			break;
		}
		default:
			break;
		}
		out->len = (size_t)(p - out->data);
		json_val(out, v);
		p = out->data + out->len;
	}
	*p++ = ']';
	out->len = (size_t)(p - out->data);
	out->data[out->len] = '\0';
}

static const char *type_str(uint8_t t)
{
	static const char *n[] = {"null", "int", "uint", "float", "string", "bool"};
	return t < KP_ARRAY_SIZE(n) ? n[t] : "null";
}

static void csv_field(struct kp_buf *b, const char *s, size_t n)
{
	bool quote = false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
			quote = true;
	if (!quote) {
		buf_append(b, s, n);
		return;
	}
	buf_puts(b, "\"");
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			buf_puts(b, "\"");
		buf_append(b, s + i, 1);
	}
	buf_puts(b, "\"");
}

void query_result_write(const struct query_result *r, enum query_format f, struct kp_buf *out)
{
	size_t nc = (size_t)r->ncols;
	buf_reserve(out, r->nrows * nc * 12 + 1024); /* one allocation, not a dozen copies */
	if (f == QUERY_JSON) {
		buf_puts(out, "{\"columns\":[");
		for (size_t c = 0; c < nc; c++) {
			buf_puts(out, c ? ",{\"name\":" : "{\"name\":");
			json_cstr(out, r->names[c]);
			buf_printf(out, ",\"type\":\"%s\"}", type_str(r->types[c]));
		}
		buf_puts(out, "],\"rows\":[");
		for (size_t i = 0; i < r->nrows; i++)
			json_row(out, &r->cells[i * nc], nc, i > 0);
		buf_printf(out,
			   "],\"stats\":{\"rows\":%zu,\"rows_scanned\":%" PRIu64
			   ",\"rows_matched\":%" PRIu64 ",\"granules_total\":%" PRIu64
			   ",\"granules_skipped\":%" PRIu64 ",\"segments_skipped\":%" PRIu64
			   ",\"groups\":%" PRIu64 ",\"bytes_read\":%" PRIu64
			   ",\"truncated\":%s,\"ms\":%.3f}}\n",
			   r->nrows, r->stats.rows_scanned, r->stats.rows_matched,
			   r->stats.granules_total, r->stats.granules_skipped,
			   r->stats.segments_skipped, r->stats.groups, r->stats.bytes_read,
			   r->stats.truncated ? "true" : "false", r->stats.ms);
	} else if (f == QUERY_NDJSON) {
		for (size_t i = 0; i < r->nrows; i++) {
			buf_puts(out, "{");
			for (size_t c = 0; c < nc; c++) {
				if (c)
					buf_puts(out, ",");
				json_cstr(out, r->names[c]);
				buf_puts(out, ":");
				json_val(out, &r->cells[i * nc + c]);
			}
			buf_puts(out, "}\n");
		}
	} else {
		for (size_t c = 0; c < nc; c++) {
			if (c)
				buf_puts(out, ",");
			csv_field(out, r->names[c], strlen(r->names[c]));
		}
		buf_puts(out, "\r\n");
		for (size_t i = 0; i < r->nrows; i++) {
			for (size_t c = 0; c < nc; c++) {
				const struct query_value *v = &r->cells[i * nc + c];
				if (c)
					buf_puts(out, ",");
				switch (v->type) {
				case QV_NULL:
					break;
				case QV_BOOL:
					buf_puts(out, v->u.i ? "true" : "false");
					break;
				case QV_INT:
					put_i64(out, v->u.i);
					break;
				case QV_UINT:
					put_u64(out, (uint64_t)v->u.i, false);
					break;
				case QV_FLOAT:
					buf_printf(out, "%.17g", v->u.f);
					break;
				case QV_STR:
					csv_field(out, v->u.s.p, v->u.s.len);
					break;
				}
			}
			buf_puts(out, "\r\n");
		}
	}
}

/* ------------------------------------------------------------------ results built elsewhere */

struct query_result *query_result_new(int ncols, const char *const *names, const uint8_t *types)
{
	struct query_result *r = xcalloc(1, sizeof(*r));
	r->priv = xcalloc(1, sizeof(struct query_priv));
	r->ncols = ncols;
	r->names = xcalloc((size_t)(ncols ? ncols : 1), sizeof(char *));
	r->types = xcalloc((size_t)(ncols ? ncols : 1), 1);
	for (int c = 0; c < ncols; c++) {
		r->names[c] = xstrdup(names[c]);
		r->types[c] = types[c];
	}
	r->cells = xcalloc(1, sizeof(struct query_value));
	return r;
}

size_t query_result_add_row(struct query_result *r)
{
	size_t row = r->nrows++;
	r->cells = xrealloc(r->cells, (r->nrows * (size_t)r->ncols + 1) * sizeof(struct query_value));
	memset(&r->cells[row * (size_t)r->ncols], 0, sizeof(struct query_value) * (size_t)r->ncols);
	return row;
}

void query_result_set_int(struct query_result *r, size_t row, int col, int64_t v)
{
	struct query_value *x = &r->cells[row * (size_t)r->ncols + (size_t)col];
	x->type = QV_INT;
	x->u.i = v;
}

void query_result_set_uint(struct query_result *r, size_t row, int col, uint64_t v)
{
	struct query_value *x = &r->cells[row * (size_t)r->ncols + (size_t)col];
	x->type = QV_UINT;
	x->u.i = (int64_t)v;
}

void query_result_set_float(struct query_result *r, size_t row, int col, double v)
{
	struct query_value *x = &r->cells[row * (size_t)r->ncols + (size_t)col];
	x->type = QV_FLOAT;
	x->u.f = v;
}

void query_result_set_str(struct query_result *r, size_t row, int col, const char *s)
{
	struct query_priv *pv = r->priv;
	struct query_value *x = &r->cells[row * (size_t)r->ncols + (size_t)col];
	size_t len = strlen(s);
	x->type = QV_STR;
	x->u.s.p = arena_strndup(&pv->strs, s, len);
	x->u.s.len = (uint32_t)len;
}
