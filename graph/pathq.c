/*
 * pathq.c - ROOTCAUSE OF / ANCESTORS OF / DESCENDANTS OF / PATH FROM ... TO: a small parser and
 * the graph traversals behind each (grammar in pathq.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "graph/gstore.h"
#include "graph/pathq.h"
#include "store/query.h"

struct lex {
	const char *s;
	size_t len, pos;
	struct query_error *err;
};

static void skip(struct lex *l)
{
	while (l->pos < l->len && isspace((unsigned char)l->s[l->pos]))
		l->pos++;
}

static int fail(struct lex *l, const char *fmt, const char *what)
{
	l->err->position = (int)l->pos;
	snprintf(l->err->message, sizeof(l->err->message), fmt, what);
	return -EINVAL;
}

/* Matches keyword w (case-insensitive, whole word). */
static int kw(struct lex *l, const char *w)
{
	skip(l);
	size_t n = strlen(w);
	if (l->len - l->pos < n || strncasecmp(l->s + l->pos, w, n) != 0)
		return 0;
	if (l->pos + n < l->len && (isalnum((unsigned char)l->s[l->pos + n]) || l->s[l->pos + n] == '_'))
		return 0;
	l->pos += n;
	return 1;
}

static int expect_kw(struct lex *l, const char *w)
{
	if (kw(l, w))
		return 0;
	return fail(l, "expected %s", w);
}

/* A key: 'quoted' (with '' for a quote) or #digits. */
static int key(struct lex *l, char *out, size_t cap)
{
	skip(l);
	if (l->pos < l->len && l->s[l->pos] == '#') {
		size_t st = l->pos++;
		while (l->pos < l->len && isdigit((unsigned char)l->s[l->pos]))
			l->pos++;
		if (l->pos - st < 2 || l->pos - st >= cap) {
			l->pos = st;
			return fail(l, "expected a node id after '#'%s", "");
		}
		memcpy(out, l->s + st, l->pos - st);
		out[l->pos - st] = '\0';
		return 0;
	}
	if (l->pos >= l->len || l->s[l->pos] != '\'')
		return fail(l, "expected a key in quotes ('pay-00017', a trace id, conn:<hex>) or "
			       "#<node id>%s",
			    "");
	size_t st = l->pos++, n = 0;
	for (;;) {
		if (l->pos >= l->len) {
			l->pos = st;
			return fail(l, "unterminated string%s", "");
		}
		char c = l->s[l->pos++];
		if (c == '\'') {
			if (l->pos < l->len && l->s[l->pos] == '\'')
				l->pos++;
			else
				break;
		}
		if (n + 1 >= cap || n >= GSTORE_KEY_MAX) {
			l->pos = st;
			return fail(l, "key longer than %s bytes", "255");
		}
		out[n++] = c;
	}
	out[n] = '\0';
	if (!n) {
		l->pos = st;
		return fail(l, "empty key%s", "");
	}
	return 0;
}

static int number(struct lex *l, long lo, long hi, long *out)
{
	skip(l);
	size_t st = l->pos;
	while (l->pos < l->len && isdigit((unsigned char)l->s[l->pos]))
		l->pos++;
	if (st == l->pos || l->pos - st > 9) {
		l->pos = st;
		return fail(l, "expected a number%s", "");
	}
	long v = strtol(l->s + st, NULL, 10);
	if (v < lo || v > hi) {
		l->pos = st;
		char b[64];
		snprintf(b, sizeof(b), "%ld..%ld", lo, hi);
		return fail(l, "number out of range (%s)", b);
	}
	*out = v;
	return 0;
}

static int at_end(struct lex *l)
{
	skip(l);
	if (l->pos < l->len && l->s[l->pos] == ';')
		l->pos++;
	skip(l);
	return l->pos == l->len ? 0 : fail(l, "unexpected text after the statement%s", "");
}

int pathq_is(const char *text, size_t len)
{
	struct query_error e;
	struct lex l = {text, len, 0, &e};
	return kw(&l, "rootcause") || kw(&l, "ancestors") || kw(&l, "descendants") ||
	       kw(&l, "path");
}

static int resolve(struct gstore_rtxn *r, const char *k, uint64_t *id, struct query_error *err,
		   int pos)
{
	int rc = gstore_key_resolve(r, k, id);
	if (rc == -ENOENT) {
		err->position = pos;
		snprintf(err->message, sizeof(err->message),
			 "nothing in the causal graph for '%s' (check the id; a transaction is "
			 "analyzed engine.lateMs after it ends)",
			 k);
	} else if (rc < 0) {
		err->position = -1;
		snprintf(err->message, sizeof(err->message), "%s", gstore_strerror(rc));
	}
	return rc;
}

static void node_cells(struct query_result *res, size_t row, int c0, const struct gstore_node *n)
{
	const char *v;
	query_result_set_uint(res, row, c0, n->id);
	query_result_set_str(res, row, c0 + 1, gstore_node_kind_name(n->kind));
	query_result_set_int(res, row, c0 + 2, n->pid);
	query_result_set_int(res, row, c0 + 3, n->tid);
	query_result_set_str(res, row, c0 + 4, (v = gstore_node_label(n, "comm")) ? v : "");
	query_result_set_str(res, row, c0 + 5, n->service ? n->service : "");
	query_result_set_str(res, row, c0 + 6, (v = gstore_node_label(n, "text")) ? v : "");
	query_result_set_uint(res, row, c0 + 7, n->start_ns);
	query_result_set_uint(res, row, c0 + 8, n->end_ns);
	query_result_set_uint(res, row, c0 + 9, n->weight_ns);
}

#define NODE_COLS "id", "kind", "pid", "tid", "comm", "service", "text", "start", "end", "weight_ns"
#define NODE_TYPES QV_UINT, QV_STR, QV_INT, QV_INT, QV_STR, QV_STR, QV_STR, QV_UINT, QV_UINT, QV_UINT

static int do_rootcause(struct gstore_rtxn *r, struct lex *l, int max_steps,
			struct query_result **out)
{
	char k[GSTORE_KEY_MAX + 1];
	int kpos;
	skip(l);
	kpos = (int)l->pos;
	int rc = key(l, k, sizeof(k));
	long steps = max_steps;
	if (rc == 0 && kw(l, "steps"))
		rc = number(l, 1, GSTORE_STEPS_MAX, &steps);
	if (rc == 0)
		rc = at_end(l);
	uint64_t id;
	if (rc == 0)
		rc = resolve(r, k, &id, l->err, kpos);
	if (rc < 0)
		return rc;
	struct gstore_chain *c = xmalloc(sizeof(*c));
	rc = gstore_rootcause(r, id, (int)steps, c);
	if (rc < 0) {
		free(c);
		snprintf(l->err->message, sizeof(l->err->message), "%s", gstore_strerror(rc));
		return rc;
	}
	static const char *names[] = {"step", "kind", "edge", "pid", "tid", "comm", "service",
				      "text", "latency_ns", "share", "start", "end", "id"};
	static const uint8_t types[] = {QV_INT, QV_STR, QV_STR, QV_INT, QV_INT, QV_STR, QV_STR,
					QV_STR, QV_UINT, QV_FLOAT, QV_UINT, QV_UINT, QV_UINT};
	struct query_result *res = query_result_new(13, names, types);
	for (int i = 0; i < c->n; i++) {
		const struct gstore_step *s = &c->steps[i];
		size_t row = query_result_add_row(res);
		query_result_set_int(res, row, 0, i);
		query_result_set_str(res, row, 1, gstore_node_kind_name(s->kind));
		query_result_set_str(res, row, 2, i ? gstore_edge_kind_name(s->edge_kind) : "");
		query_result_set_int(res, row, 3, s->pid);
		query_result_set_int(res, row, 4, s->tid);
		query_result_set_str(res, row, 5, s->comm);
		query_result_set_str(res, row, 6, s->service);
		query_result_set_str(res, row, 7, s->text);
		query_result_set_uint(res, row, 8, s->latency_ns);
		query_result_set_float(res, row, 9, s->share);
		query_result_set_uint(res, row, 10, s->start_ns);
		query_result_set_uint(res, row, 11, s->end_ns);
		query_result_set_uint(res, row, 12, s->id);
	}
	free(c);
	*out = res;
	return 0;
}

static int do_traverse(struct gstore_rtxn *r, struct lex *l, enum gstore_dir dir,
		       struct query_result **out)
{
	char k[GSTORE_KEY_MAX + 1];
	skip(l);
	int kpos = (int)l->pos;
	int rc = key(l, k, sizeof(k));
	long depth = 6, limit = 10000;
	for (int i = 0; rc == 0 && i < 2; i++) {
		if (kw(l, "depth"))
			rc = number(l, 0, 64, &depth);
		else if (kw(l, "limit"))
			rc = number(l, 1, 100000, &limit);
	}
	if (rc == 0)
		rc = at_end(l);
	uint64_t id;
	if (rc == 0)
		rc = resolve(r, k, &id, l->err, kpos);
	if (rc < 0)
		return rc;
	struct gstore_subgraph sg = {0};
	rc = gstore_traverse(r, id, dir, (int)depth, (size_t)limit, 0, &sg);
	if (rc < 0) {
		gstore_subgraph_free(&sg);
		snprintf(l->err->message, sizeof(l->err->message), "%s", gstore_strerror(rc));
		return rc;
	}
	static const char *names[] = {"depth", NODE_COLS};
	static const uint8_t types[] = {QV_INT, NODE_TYPES};
	struct query_result *res = query_result_new(11, names, types);
	for (size_t i = 0; i < sg.n_nodes; i++) {
		struct gstore_node n;
		if (gstore_node_get(r, sg.nodes[i], &n) < 0)
			continue;
		size_t row = query_result_add_row(res);
		query_result_set_int(res, row, 0, sg.depth[i]);
		node_cells(res, row, 1, &n);
	}
	res->stats.truncated = sg.truncated;
	gstore_subgraph_free(&sg);
	*out = res;
	return 0;
}

static int do_path(struct gstore_rtxn *r, struct lex *l, struct query_result **out)
{
	char a[GSTORE_KEY_MAX + 1], b[GSTORE_KEY_MAX + 1];
	int rc = expect_kw(l, "from");
	skip(l);
	int apos = (int)l->pos, bpos = 0;
	if (rc == 0)
		rc = key(l, a, sizeof(a));
	if (rc == 0)
		rc = expect_kw(l, "to");
	skip(l);
	bpos = (int)l->pos;
	if (rc == 0)
		rc = key(l, b, sizeof(b));
	long hops = 16;
	if (rc == 0 && kw(l, "max"))
		rc = number(l, 1, 64, &hops);
	if (rc == 0)
		rc = at_end(l);
	uint64_t ia, ib;
	if (rc == 0)
		rc = resolve(r, a, &ia, l->err, apos);
	if (rc == 0)
		rc = resolve(r, b, &ib, l->err, bpos);
	if (rc < 0)
		return rc;
	/* Causes point to effects: from a symptom to its cause the path runs against the edges.
	 * Either direction is an answer; report it from FROM to TO. */
	struct gstore_path *p = xmalloc(sizeof(*p));
	int reversed = 0;
	rc = gstore_path(r, ia, ib, (int)hops, 0, p);
	if (rc == -ENOENT) {
		rc = gstore_path(r, ib, ia, (int)hops, 0, p);
		reversed = rc == 0;
	}
	if (rc < 0) {
		free(p);
		l->err->position = -1;
		snprintf(l->err->message, sizeof(l->err->message),
			 rc == -ENOENT ? "no causal path between '%s' and the other key within the "
					 "hop limit"
				       : "%s",
			 rc == -ENOENT ? a : gstore_strerror(rc));
		return rc;
	}
	static const char *names[] = {"hop", "edge", "edge_weight_ns", NODE_COLS};
	static const uint8_t types[] = {QV_INT, QV_STR, QV_UINT, NODE_TYPES};
	struct query_result *res = query_result_new(13, names, types);
	for (int i = 0; i < p->n_nodes; i++) {
		int k = reversed ? p->n_nodes - 1 - i : i;
		struct gstore_node n;
		if (gstore_node_get(r, p->nodes[k], &n) < 0)
			continue;
		size_t row = query_result_add_row(res);
		query_result_set_int(res, row, 0, i);
		/* The edge that leads to the next node of the answer. */
		if (i + 1 < p->n_nodes) {
			const struct gstore_edge *e = reversed ? &p->edges[k - 1] : &p->edges[k];
			char label[64];
			snprintf(label, sizeof(label), "%s%s", gstore_edge_kind_name(e->kind),
				 reversed ? " (caused by next)" : " (causes next)");
			query_result_set_str(res, row, 1, label);
			query_result_set_uint(res, row, 2, e->weight_ns);
		} else {
			query_result_set_str(res, row, 1, "");
		}
		node_cells(res, row, 3, &n);
	}
	free(p);
	*out = res;
	return 0;
}

int pathq_exec(struct gstore *g, const char *text, size_t len, int max_steps,
	       struct query_result **out, struct query_error *err)
{
	memset(err, 0, sizeof(*err));
	err->position = -1;
	uint64_t t0 = now_mono_ns();
	struct lex l = {text, len, 0, err};
	struct gstore_rtxn *r;
	int rc = gstore_rbegin(g, &r);
	if (rc < 0) {
		snprintf(err->message, sizeof(err->message), "%s", gstore_strerror(rc));
		return rc;
	}
	if (kw(&l, "rootcause")) {
		rc = expect_kw(&l, "of");
		if (rc == 0)
			rc = do_rootcause(r, &l, max_steps, out);
	} else if (kw(&l, "ancestors") || kw(&l, "descendants")) {
		/* The keyword just read ends at l.pos: its first letter tells which. */
		size_t st = l.pos;
		while (st > 0 && isalpha((unsigned char)text[st - 1]))
			st--;
		enum gstore_dir dir = tolower((unsigned char)text[st]) == 'd' ? GSTORE_OUT : GSTORE_IN;
		rc = expect_kw(&l, "of");
		if (rc == 0)
			rc = do_traverse(r, &l, dir, out);
	} else if (kw(&l, "path")) {
		rc = do_path(r, &l, out);
	} else {
		rc = fail(&l, "expected ROOTCAUSE, ANCESTORS, DESCENDANTS or PATH%s", "");
	}
	gstore_rend(r);
	if (rc == 0)
		(*out)->stats.ms = (double)(now_mono_ns() - t0) / 1e6;
	return rc;
}
