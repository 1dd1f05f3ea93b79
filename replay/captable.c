/*
 * captable.c - the capture store as a query-language table (store/table.h provider):
 *
 *   FROM syscalls   one row per stored capture record:
 *     ts         when the call returned (epoch ns; for fork/exec/exit: when it happened)
 *     start      when it was entered (NULL when capture began inside the call, and for
 *                non-calls)
 *     dur        ts - start (NULL with start)
 *     host       the agent's node id
 *     pid, tid   process and thread
 *     kind       call, fork, exec, exit, lost (records the kernel side lost: arg0 = how many)
 *     nr, name   system call number and name (NULL and '' for non-calls)
 *     arg0..arg5 the argument registers, args the six as text
 *     ret        return value (-errno on failure; exit: the wait status)
 *     bytes      payload bytes kept (what a read returned, a write wrote, a path)
 *     truncated  1 when the payload was cut at replay.capture.maxBytes
 *     payload    the first PREVIEW bytes of it as text (non-printable bytes as \xNN)
 *
 * A WHERE clause on ts and pid narrows the logs read (time range and pid bloom filter of each).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/capstore.h"
#include "replay/rec.h"
#include "replay/sysc.h"
#include "store/table.h"

#define BATCH	4096
#define PREVIEW 160

enum {
	C_TS,
	C_START,
	C_DUR,
	C_HOST,
	C_PID,
	C_TID,
	C_KIND,
	C_NR,
	C_NAME,
	C_ARG0,
	C_ARG1,
	C_ARG2,
	C_ARG3,
	C_ARG4,
	C_ARG5,
	C_ARGS,
	C_RET,
	C_BYTES,
	C_TRUNC,
	C_PAYLOAD,
	C__N
};

static const struct table_col cols[C__N] = {
	[C_TS] = {"ts", TT_INT, TC_TIME, "when the call returned, epoch ns"},
	[C_START] = {"start", TT_INT, TC_TIME | TC_NULLABLE, "when the call was entered"},
	[C_DUR] = {"dur", TT_INT, TC_NULLABLE, "ts - start, ns"},
	[C_HOST] = {"host", TT_INT, TC_UNSIGNED, "agent node id"},
	[C_PID] = {"pid", TT_INT, 0, "process id"},
	[C_TID] = {"tid", TT_INT, 0, "thread id"},
	[C_KIND] = {"kind", TT_SYM, 0, "call, fork, exec, exit, lost"},
	[C_NR] = {"nr", TT_INT, TC_NULLABLE, "system call number (x86-64)"},
	[C_NAME] = {"name", TT_SYM, 0, "system call name"},
	[C_ARG0] = {"arg0", TT_INT, 0, "first argument register (fd for fd calls)"},
	[C_ARG1] = {"arg1", TT_INT, 0, "second argument register"},
	[C_ARG2] = {"arg2", TT_INT, 0, "third argument register"},
	[C_ARG3] = {"arg3", TT_INT, 0, "fourth argument register"},
	[C_ARG4] = {"arg4", TT_INT, 0, "fifth argument register"},
	[C_ARG5] = {"arg5", TT_INT, 0, "sixth argument register"},
	[C_ARGS] = {"args", TT_STR, 0, "the six arguments as text"},
	[C_RET] = {"ret", TT_INT, 0, "return value or -errno (exit: wait status)"},
	[C_BYTES] = {"bytes", TT_INT, 0, "payload bytes kept"},
	[C_TRUNC] = {"truncated", TT_INT, 0, "1 when the payload was cut at maxBytes"},
	[C_PAYLOAD] = {"payload", TT_STR, 0, "start of the payload, as text"},
};

static const char *const kinds[] = {"", "call", "fork", "exec", "exit", "loader", "lost"};

static const char *sym_str(void *ctx, int col, int64_t id, uint32_t *len)
{
	const char *s = "";
	if (col == C_KIND && id > 0 && id < (int64_t)KP_ARRAY_SIZE(kinds))
		s = kinds[id];
	else if (col == C_NAME && id > 0)
		s = sysc_name(id - 1);
	*len = (uint32_t)strlen(s);
	return s;
}

static int64_t sym_find(void *ctx, int col, const char *s, size_t len)
{
	char name[64];
	if (len >= sizeof(name))
		return -1;
	memcpy(name, s, len);
	name[len] = 0;
	if (col == C_KIND) {
		for (size_t i = 1; i < KP_ARRAY_SIZE(kinds); i++)
			if (!strcmp(kinds[i], name))
				return (int64_t)i;
		return -1;
	}
	if (col != C_NAME)
		return -1;
	const struct sysc *sc = sysc_by_name(name);
	if (sc)
		return sc->nr + 1;
	if (!strncmp(name, "syscall_", 8))
		return strtol(name + 8, NULL, 10) + 1;
	return -1;
}

/* ------------------------------------------------------------------ batches */

struct rows {
	uint32_t n;
	int64_t *i;	    /* C__N * BATCH */
	uint8_t *null;	    /* C__N * BATCH */
	const char **s;	    /* C__N * BATCH, after finalize */
	uint32_t *slen;	    /* C__N * BATCH */
	size_t *soff;	    /* C__N * BATCH */
	struct kp_buf strs; /* string bytes of this batch */
};

struct tbatch {
	struct table_batch b;
	struct rows *r;
};

static int fetch(struct table_batch *tb, int col, struct table_vec *out)
{
	struct rows *r = ((struct tbatch *)tb)->r;
	size_t base = (size_t)col * BATCH;
	memset(out, 0, sizeof(*out));
	if (cols[col].type == TT_STR) {
		out->s = r->s + base;
		out->slen = r->slen + base;
	} else {
		out->i = r->i + base;
	}
	out->null = r->null + base;
	return 0;
}

struct scanctx {
	struct rows r;
	int (*fn)(void *, struct table_batch *);
	void *arg;
};

static int emit(struct scanctx *sc)
{
	struct rows *r = &sc->r;
	if (!r->n)
		return 0;
	for (int c = 0; c < C__N; c++) {
		if (cols[c].type != TT_STR)
			continue;
		for (uint32_t k = 0; k < r->n; k++) {
			size_t x = (size_t)c * BATCH + k;
			r->s[x] = r->strs.data + r->soff[x];
		}
	}
	struct tbatch b = {{r->n, 0, fetch}, r};
	int rc = sc->fn(sc->arg, &b.b);
	r->n = 0;
	r->strs.len = 0;
	return rc;
}

static void set_i(struct rows *r, int col, int64_t v, bool null)
{
	size_t x = (size_t)col * BATCH + r->n;
	r->i[x] = v;
	r->null[x] = null;
}

static void set_s(struct rows *r, int col, const char *s, size_t len)
{
	size_t x = (size_t)col * BATCH + r->n;
	r->soff[x] = r->strs.len;
	r->slen[x] = (uint32_t)len;
	r->null[x] = 0;
	buf_append(&r->strs, s, len);
	buf_append(&r->strs, "", 1);
}

static void fmt_arg(struct kp_buf *b, uint64_t v)
{
	int64_t sv = (int64_t)v;
	if (sv > -65536 && sv < (1 << 24))
		buf_printf(b, "%lld", (long long)sv);
	else
		buf_printf(b, "0x%llx", (unsigned long long)v);
}

static int row(void *ctx, uint64_t node, int64_t clock_off, const struct kp_cap_rec *c)
{
	struct scanctx *sc = ctx;
	struct rows *r = &sc->r;
	bool call = c->kind == KP_CAP_CALL;
	bool has_start =
		call && c->ts_enter && !(c->flags & KP_CAP_F_NOENTER) && c->ts_enter <= c->ts_exit;
	set_i(r, C_TS, (int64_t)(c->ts_exit + (uint64_t)clock_off), false);
	set_i(r, C_START, has_start ? (int64_t)(c->ts_enter + (uint64_t)clock_off) : 0, !has_start);
	set_i(r, C_DUR, has_start ? (int64_t)(c->ts_exit - c->ts_enter) : 0, !has_start);
	set_i(r, C_HOST, (int64_t)node, false);
	set_i(r, C_PID, c->pid, false);
	set_i(r, C_TID, c->tid, false);
	set_i(r, C_KIND, c->kind, false);
	set_i(r, C_NR, call ? c->nr : 0, !call);
	set_i(r, C_NAME, call ? (int64_t)c->nr + 1 : 0, false);
	for (int k = 0; k < 6; k++)
		set_i(r, C_ARG0 + k, (int64_t)c->args[k], false);
	struct kp_buf a = {0};
	for (int k = 0; k < 6; k++) {
		if (k)
			buf_puts(&a, ", ");
		fmt_arg(&a, c->args[k]);
	}
	set_s(r, C_ARGS, a.data, a.len);
	buf_free(&a);
	set_i(r, C_RET, c->ret, false);
	set_i(r, C_BYTES, c->payload_len, false);
	set_i(r, C_TRUNC, (c->flags & KP_CAP_F_TRUNC) != 0, false);
	char pv[PREVIEW * 4 + 8];
	size_t o = 0;
	const uint8_t *p = kp_cap_payload(c);
	for (uint32_t k = 0; k < c->payload_len && k < PREVIEW; k++) {
		uint8_t ch = p[k];
		if (ch >= 32 && ch < 127 && ch != '\\')
			pv[o++] = (char)ch;
		else
			o += (size_t)snprintf(pv + o, sizeof(pv) - o, "\\x%02x", ch);
	}
	if (c->payload_len > PREVIEW)
		o += (size_t)snprintf(pv + o, sizeof(pv) - o, "...");
	set_s(r, C_PAYLOAD, pv, o);
	r->n++;
	return r->n == BATCH ? emit(sc) : 0;
}

/* One thread (args[0]): captured system calls are few beside the events. */
static int scan(void *ctx, const struct table_hints *h, int nworkers,
		int (*fn)(void *arg, struct table_batch *b), void *const *args,
		bool (*cancel)(void *arg), struct table_scan_stats *st)
{
	void *arg = args[0];
	struct capstore *cs = ctx;
	struct scanctx sc = {.fn = fn, .arg = arg};
	struct rows *r = &sc.r;
	r->i = xcalloc((size_t)C__N * BATCH, sizeof(*r->i));
	r->null = xcalloc((size_t)C__N * BATCH, 1);
	r->s = xcalloc((size_t)C__N * BATCH, sizeof(*r->s));
	r->slen = xcalloc((size_t)C__N * BATCH, sizeof(*r->slen));
	r->soff = xcalloc((size_t)C__N * BATCH, sizeof(*r->soff));
	uint32_t *pids = NULL;
	struct capstore_sel sel = {0, NULL, 0, h->ts_min, h->ts_max};
	if (h->npid > 0) {
		pids = xcalloc((size_t)h->npid, sizeof(*pids));
		for (int i = 0; i < h->npid; i++)
			pids[i] = (uint32_t)h->pid[i];
		sel.pids = pids;
		sel.npids = h->npid;
	}
	int rc = capstore_scan(cs, &sel, row, &sc, cancel, arg);
	if (rc == 0)
		rc = emit(&sc);
	(void)st;
	free(pids);
	free(r->i);
	free(r->null);
	free(r->s);
	free(r->slen);
	free(r->soff);
	buf_free(&r->strs);
	return rc;
}

static const struct table_ops syscalls_table = {"syscalls", cols, C__N, sym_str, sym_find, scan};

const struct table_ops *capstore_table(void)
{
	return &syscalls_table;
}
