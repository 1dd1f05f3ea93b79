/*
 * rec.c - writes and reads recording files (see rec.h): ordering of capture records into
 * per-thread streams, the thread table, checksums, and every bound check on the way in.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/le.h"
#include "common/util.h"
#include "replay/rec.h"

#define HDR_FIXED   144
#define THREAD_ENT  128
#define TRAILER_LEN 16

bool kp_cap_rec_valid(const void *rec, size_t len)
{
	if (len < KP_CAP_HDR_LEN)
		return false;
	const struct kp_cap_rec *c = rec;
	if (c->len < KP_CAP_HDR_LEN || c->len > len || c->len > KP_CAP_REC_MAX)
		return false;
	if (c->kind < KP_CAP_CALL || c->kind > KP_CAP_LOADER)
		return false;
	uint64_t need = (uint64_t)KP_CAP_HDR_LEN + c->payload_len + c->aux_len +
			((c->flags & KP_CAP_F_SOCK) ? KP_CAP_SOCK_LEN : 0);
	return need <= c->len && c->payload_len <= KP_CAP_MAX_PAYLOAD &&
	       c->aux_len <= KP_CAP_MAX_AUX;
}

bool kp_cap_sock_get(const struct kp_cap_rec *c, struct kp_cap_sock *out)
{
	if (!(c->flags & KP_CAP_F_SOCK))
		return false;
	memcpy(out, kp_cap_aux(c) + c->aux_len, sizeof(*out));
	return true;
}

static char *xstrdup_or_empty(const char *s)
{
	return xstrdup(s ? s : "");
}

static void meta_copy(struct rec_meta *dst, const struct rec_meta *src)
{
	*dst = *src;
	dst->argv = xcalloc((size_t)src->argc + 1, sizeof(char *));
	for (int i = 0; i < src->argc; i++)
		dst->argv[i] = xstrdup(src->argv[i]);
	dst->cwd = xstrdup_or_empty(src->cwd);
	dst->host = xstrdup_or_empty(src->host);
	dst->kernel = xstrdup_or_empty(src->kernel);
	dst->envp = xcalloc((size_t)src->envc + 1, sizeof(char *));
	for (int i = 0; i < src->envc; i++)
		dst->envp[i] = xstrdup(src->envp[i]);
}

static void meta_free(struct rec_meta *m)
{
	if (m->argv)
		for (int i = 0; i < m->argc; i++)
			free(m->argv[i]);
	free(m->argv);
	free(m->cwd);
	free(m->host);
	free(m->kernel);
	if (m->envp)
		for (int i = 0; i < m->envc; i++)
			free(m->envp[i]);
	free(m->envp);
	memset(m, 0, sizeof(*m));
}

/* ================================================================== writer */

struct wrec {
	struct kp_cap_rec *r; /* owned copy */
	uint64_t arrival;
};

struct wthread {
	struct rec_thread t;
	struct kp_buf stream;
	uint64_t last_exec_ts;
	uint32_t tpos; /* index in the final table */
};

struct rec_writer {
	struct rec_meta meta;
	bool have_meta;
	struct wrec *recs;
	size_t n, cap;
	uint64_t rejected;
};

struct rec_writer *rec_writer_new(void)
{
	return xcalloc(1, sizeof(struct rec_writer));
}

void rec_writer_meta(struct rec_writer *w, const struct rec_meta *m)
{
	if (w->have_meta)
		meta_free(&w->meta);
	meta_copy(&w->meta, m);
	w->have_meta = true;
}

int rec_writer_add(struct rec_writer *w, const void *rec, size_t len)
{
	if (!kp_cap_rec_valid(rec, len)) {
		w->rejected++;
		return -EINVAL;
	}
	const struct kp_cap_rec *c = rec;
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 1024;
		w->recs = xrealloc(w->recs, w->cap * sizeof(*w->recs));
	}
	struct kp_cap_rec *copy = xmalloc(c->len);
	memcpy(copy, c, c->len);
	w->recs[w->n] = (struct wrec){copy, w->n};
	w->n++;
	return 0;
}

uint64_t rec_writer_rejected(const struct rec_writer *w)
{
	return w->rejected;
}

void rec_writer_free(struct rec_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++)
		free(w->recs[i].r);
	free(w->recs);
	if (w->have_meta)
		meta_free(&w->meta);
	free(w);
}

static int wrec_cmp(const void *a, const void *b)
{
	const struct wrec *x = a, *y = b;
	if (x->r->ts_exit != y->r->ts_exit)
		return x->r->ts_exit < y->r->ts_exit ? -1 : 1;
	return x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
}

struct lrange {
	uint32_t tgid;
	uint64_t lo, hi;
};

static void lrange_set(struct lrange **v, int *n, uint32_t tgid, uint64_t lo, uint64_t hi)
{
	int k = 0;
	while (k < *n && (*v)[k].tgid != tgid)
		k++;
	if (k == *n) {
		*v = xrealloc(*v, sizeof(**v) * (size_t)(*n + 1));
		(*n)++;
	}
	(*v)[k] = (struct lrange){tgid, lo, hi};
}

struct tmap {
	struct wthread *v;
	int n, cap;
};

static struct wthread *thread_get(struct tmap *m, uint32_t tid, uint32_t tgid)
{
	for (int i = m->n - 1; i >= 0; i--)
		if (m->v[i].t.tid == tid)
			return &m->v[i];
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->v = xrealloc(m->v, (size_t)m->cap * sizeof(*m->v));
	}
	struct wthread *t = &m->v[m->n++];
	memset(t, 0, sizeof(*t));
	t->t.tid = tid;
	t->t.tgid = tgid;
	return t;
}

static const char *base_name(const char *p, size_t n)
{
	const char *b = p;
	for (size_t i = 0; i < n && p[i]; i++)
		if (p[i] == '/')
			b = p + i + 1;
	return b;
}

/*
 * File layout (little-endian):
 *
 *   offset  size  field
 *        0     4  magic        "KPRC"
 *        4     2  version      1
 *        6     2  flags        REC_F_INCOMPLETE
 *        8     4  hdr_len      fixed header + meta strings + 8 (checksum), multiple of 8
 *       12     4  n_threads
 *       16     8  n_calls
 *       24     8  mono_base    \
 *       32     8  real_base     | the three clocks at the same instant, and the end
 *       40     8  boot_base     |
 *       48     8  mono_end     /
 *       56     4  root_tid
 *       60     4  root_status  wait status, -1 unknown
 *       64     4  max_bytes
 *       68     4  argc
 *       72     8  dropped
 *       80     8  truncated
 *       88    48  std fds 0..2: dev u64, ino u64
 *      136     4  meta_len
 *      140     4  envc
 *      144        meta: argv[0..argc), cwd, host, kernel, env[0..envc), each NUL-terminated;
 *                 zero padding to 8
 * hdr_len-8    8  xxh3_64(bytes [0, hdr_len-8))
 *
 *   thread table, n_threads entries of 128 bytes:
 *        0  tid u32 | tgid u32 | parent_tid u32 | child_index u32 | flags u32 | exit_code i32
 *       24  n_calls u32 | n_children u32 | start_ns u64 | end_ns u64
 *       48  stream_off u64 (from the start of the file) | stream_len u64 | xxh3(stream) u64
 *       72  exe[56] (NUL-padded)
 *   then xxh3_64(thread table) u64
 *
 *   streams: each thread's struct kp_cap_rec records back to back (8-aligned, seq and ord set)
 *
 *   trailer: magic "KPRE" u32 | zero u32 | file length u64 (a cut file is detected)
 */
int rec_writer_finish_mem(struct rec_writer *w, struct kp_buf *out, struct rec_summary *sum,
			  char *err, size_t errlen)
{
	struct tmap tm = {0};
	int ret = 0;
	struct rec_meta *m = &w->meta;
	out->len = 0;
	if (!w->have_meta) {
		snprintf(err, errlen, "recording has no metadata (internal error)");
		return -EINVAL;
	}
	if (sum)
		memset(sum, 0, sizeof(*sum));

	qsort(w->recs, w->n, sizeof(*w->recs), wrec_cmp);

	/* Threads: the root first, then in order of appearance. */
	thread_get(&tm, m->root_tid, m->root_tid);
	uint64_t seq = 0;
	/* loader ranges per process, in time order (a fork inherits its parent's) */
	struct lrange *lr = NULL;
	int nlr = 0;
	for (size_t i = 0; i < w->n; i++) {
		struct kp_cap_rec *c = w->recs[i].r;
		struct wthread *t = thread_get(&tm, c->tid, c->pid);
		if (!t->t.start_ns || c->ts_exit < t->t.start_ns)
			t->t.start_ns = c->ts_exit;
		if (c->ts_exit > t->t.end_ns)
			t->t.end_ns = c->ts_exit;
		switch (c->kind) {
		case KP_CAP_CALL:
			for (int k = 0; k < nlr; k++)
				if (lr[k].tgid == c->pid && c->ip >= lr[k].lo && c->ip < lr[k].hi)
					c->flags |= KP_CAP_F_LOADER;
			c->seq = ++seq;
			c->ord = t->t.n_calls++;
			buf_append(&t->stream, c, c->len);
			if (sum) {
				sum->payload_bytes += c->payload_len;
				if (c->flags & KP_CAP_F_TRUNC)
					sum->truncated++;
			}
			break;
		case KP_CAP_LOADER:
			lrange_set(&lr, &nlr, c->pid, c->args[0], c->args[1]);
			break;
		case KP_CAP_FORK: {
			if (!(c->flags & KP_CAP_F_THREAD))
				for (int k = 0; k < nlr; k++)
					if (lr[k].tgid == c->pid) {
						lrange_set(&lr, &nlr, (uint32_t)c->args[1],
							   lr[k].lo, lr[k].hi);
						break;
					}
			struct wthread *ch =
				thread_get(&tm, (uint32_t)c->args[0], (uint32_t)c->args[1]);
			t = thread_get(&tm, c->tid, c->pid); /* thread_get may have moved it */
			ch->t.parent_tid = c->tid;
			ch->t.child_index = t->t.n_children++;
			if (c->flags & KP_CAP_F_THREAD)
				ch->t.flags |= REC_T_THREAD;
			else
				memcpy(ch->t.exe, t->t.exe, sizeof(ch->t.exe));
			if (!ch->t.start_ns)
				ch->t.start_ns = c->ts_exit;
			break;
		}
		case KP_CAP_EXEC: {
			const char *fn = (const char *)kp_cap_payload(c);
			const char *b = base_name(fn, c->payload_len);
			size_t bl = strnlen(b, c->payload_len - (size_t)(b - fn));
			memset(t->t.exe, 0, sizeof(t->t.exe));
			memcpy(t->t.exe, b, KP_MIN(bl, sizeof(t->t.exe) - 1));
			break;
		}
		case KP_CAP_EXIT:
			t->t.flags |= REC_T_EXITED;
			t->t.exit_code = (int32_t)c->ret;
			break;
		}
	}
	/* Exe names of threads follow their process leader. */
	for (int i = 0; i < tm.n; i++) {
		struct wthread *t = &tm.v[i];
		if (t->t.exe[0])
			continue;
		for (int j = 0; j < tm.n; j++)
			if (tm.v[j].t.tid == t->t.tgid && tm.v[j].t.exe[0])
				memcpy(t->t.exe, tm.v[j].t.exe, sizeof(t->t.exe));
	}
	/* Tree membership: the root and everything it created, transitively. */
	tm.v[0].t.flags |= REC_T_ROOT | REC_T_TREE;
	for (bool changed = true; changed;) {
		changed = false;
		for (int i = 0; i < tm.n; i++) {
			struct wthread *t = &tm.v[i];
			if (t->t.flags & REC_T_TREE)
				continue;
			bool in = false;
			for (int j = 0; j < tm.n; j++) {
				struct wthread *p = &tm.v[j];
				if (!(p->t.flags & REC_T_TREE))
					continue;
				if ((t->t.parent_tid && p->t.tid == t->t.parent_tid) ||
				    (p->t.tgid == t->t.tgid && p->t.tid == p->t.tgid))
					in = true;
			}
			if (in) {
				t->t.flags |= REC_T_TREE;
				changed = true;
			}
		}
	}
	for (int i = 0; i < tm.n; i++)
		if (!(tm.v[i].t.flags & REC_T_TREE))
			tm.v[i].t.flags |= REC_T_PEER;
	if (tm.n > REC_MAX_THREADS) {
		snprintf(err, errlen, "%d threads: over the format's bound of %d", tm.n,
			 REC_MAX_THREADS);
		ret = -E2BIG;
		goto cleanup;
	}

	/* Header + meta. */
	struct kp_buf meta = {0};
	for (int i = 0; i < m->argc; i++)
		buf_append(&meta, m->argv[i], strlen(m->argv[i]) + 1);
	buf_append(&meta, m->cwd, strlen(m->cwd) + 1);
	buf_append(&meta, m->host, strlen(m->host) + 1);
	buf_append(&meta, m->kernel, strlen(m->kernel) + 1);
	for (int i = 0; i < m->envc; i++)
		buf_append(&meta, m->envp[i], strlen(m->envp[i]) + 1);
	while (meta.len % 8)
		buf_append(&meta, "", 1);
	uint32_t hdr_len = HDR_FIXED + (uint32_t)meta.len + 8;
	uint8_t h[HDR_FIXED] = {0};
	le_put32(h + 0, REC_MAGIC);
	le_put16(h + 4, REC_VERSION);
	le_put16(h + 6, (uint16_t)(m->flags | (m->dropped ? REC_F_INCOMPLETE : 0)));
	le_put32(h + 8, hdr_len);
	le_put32(h + 12, (uint32_t)tm.n);
	le_put64(h + 16, seq);
	le_put64(h + 24, m->mono_base);
	le_put64(h + 32, m->real_base);
	le_put64(h + 40, m->boot_base);
	le_put64(h + 48, m->mono_end);
	le_put32(h + 56, m->root_tid);
	le_put32(h + 60, (uint32_t)m->root_status);
	le_put32(h + 64, m->max_bytes);
	le_put32(h + 68, (uint32_t)m->argc);
	le_put64(h + 72, m->dropped);
	le_put64(h + 80, m->truncated);
	for (int i = 0; i < 3; i++) {
		le_put64(h + 88 + 16 * i, m->std[i].dev);
		le_put64(h + 96 + 16 * i, m->std[i].ino);
	}
	le_put32(h + 136, (uint32_t)meta.len);
	le_put32(h + 140, (uint32_t)m->envc);
	buf_append(out, h, sizeof(h));
	buf_append(out, meta.data, meta.len);
	buf_free(&meta);
	uint8_t ck[8];
	le_put64(ck, XXH3_64bits(out->data, out->len));
	buf_append(out, ck, 8);

	/* Thread table, then streams. */
	size_t table_at = out->len;
	uint64_t stream_off = table_at + (uint64_t)tm.n * THREAD_ENT + 8;
	for (int i = 0; i < tm.n; i++) {
		struct wthread *t = &tm.v[i];
		uint8_t e[THREAD_ENT] = {0};
		le_put32(e + 0, t->t.tid);
		le_put32(e + 4, t->t.tgid);
		le_put32(e + 8, t->t.parent_tid);
		le_put32(e + 12, t->t.child_index);
		le_put32(e + 16, t->t.flags);
		le_put32(e + 20, (uint32_t)t->t.exit_code);
		le_put32(e + 24, t->t.n_calls);
		le_put32(e + 28, t->t.n_children);
		le_put64(e + 32, t->t.start_ns);
		le_put64(e + 40, t->t.end_ns);
		le_put64(e + 48, stream_off);
		le_put64(e + 56, t->stream.len);
		le_put64(e + 64, XXH3_64bits(t->stream.data, t->stream.len));
		memcpy(e + 72, t->t.exe, 56);
		buf_append(out, e, sizeof(e));
		stream_off += t->stream.len;
		if (sum) {
			sum->threads++;
			if (t->t.tid == t->t.tgid && (t->t.flags & REC_T_TREE))
				sum->processes++;
			else if (t->t.tid == t->t.tgid)
				sum->peers++;
		}
	}
	le_put64(ck, XXH3_64bits(out->data + table_at, out->len - table_at));
	buf_append(out, ck, 8);
	for (int i = 0; i < tm.n; i++)
		buf_append(out, tm.v[i].stream.data, tm.v[i].stream.len);
	uint8_t tr[TRAILER_LEN] = {0};
	le_put32(tr, REC_TRAILER_MAGIC);
	le_put64(tr + 8, out->len + TRAILER_LEN);
	buf_append(out, tr, sizeof(tr));

	if (sum) {
		sum->calls = seq;
		sum->file_bytes = out->len;
	}
cleanup:
	for (int i = 0; i < tm.n; i++)
		buf_free(&tm.v[i].stream);
	free(tm.v);
	free(lr);
	return ret;
}

int rec_writer_finish(struct rec_writer *w, const char *path, struct rec_summary *sum, char *err,
		      size_t errlen)
{
	struct kp_buf out = {0};
	char tmp[4096];
	int fd = -1;
	int ret = rec_writer_finish_mem(w, &out, sum, err, errlen);
	if (ret < 0)
		goto cleanup;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	if ((ret = write_full(fd, out.data, out.len)) < 0 || (fsync(fd) < 0 && (ret = -errno))) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-ret));
		unlink(tmp);
		goto cleanup;
	}
	if (rename(tmp, path) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		goto cleanup;
	}
cleanup:
	if (fd >= 0)
		close(fd);
	buf_free(&out);
	return ret;
}

/* ================================================================== reader */

struct rthread {
	struct rec_thread t;
	const struct kp_cap_rec **calls; /* n_calls */
	int *children;			 /* n_children thread indexes (-1 unknown) */
};

struct rec {
	uint8_t *data;
	size_t len;
	bool mapped;
	struct rec_meta meta;
	struct rthread *th;
	int nth;
	uint64_t ncalls;
	const struct kp_cap_rec **by_seq;
	int *by_seq_thread;
};

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

static const char *meta_str(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
	if (!z)
		return NULL;
	const char *s = (const char *)*p;
	*p = z + 1;
	return s;
}

/* The fuzzer cannot forge checksums; under KP_FUZZ it reaches the parser behind them. */
#ifdef KP_FUZZ
#define CHECKSUM_OK(a, b) ((void)(a), (void)(b), 1)
#else
#define CHECKSUM_OK(a, b) ((a) == (b))
#endif

static int parse(struct rec *r, char *err, size_t errlen)
{
	const uint8_t *d = r->data;
	size_t len = r->len;
	if (len < HDR_FIXED + 8 + TRAILER_LEN)
		return fail(err, errlen, -EINVAL, "file is %zu bytes: too short for a recording",
			    len);
	if (le_get32(d) != REC_MAGIC)
		return fail(err, errlen, -EINVAL,
			    "bad magic 0x%08x at offset 0: not a kprobe "
			    "recording",
			    le_get32(d));
	if (le_get16(d + 4) != REC_VERSION)
		return fail(err, errlen, -ENOTSUP,
			    "recording version %u, this kprobe reads version "
			    "%u",
			    le_get16(d + 4), REC_VERSION);
	const uint8_t *tr = d + len - TRAILER_LEN;
	if (le_get32(tr) != REC_TRAILER_MAGIC || le_get32(tr + 4) != 0 || le_get64(tr + 8) != len)
		return fail(err, errlen, -EINVAL,
			    "trailer missing or wrong length: the file was cut "
			    "(%zu bytes)",
			    len);
	uint32_t hdr_len = le_get32(d + 8), nth = le_get32(d + 12), meta_len = le_get32(d + 136);
	if (hdr_len < HDR_FIXED + 8 || hdr_len % 8 || hdr_len > len - TRAILER_LEN ||
	    meta_len > REC_MAX_META || HDR_FIXED + (uint64_t)meta_len + 8 != hdr_len)
		return fail(err, errlen, -EINVAL, "header length %u (meta %u) out of bounds",
			    hdr_len, meta_len);
	if (!CHECKSUM_OK(XXH3_64bits(d, hdr_len - 8), le_get64(d + hdr_len - 8)))
		return fail(err, errlen, -EINVAL, "header checksum mismatch at offset %u",
			    hdr_len - 8);
	if (nth == 0 || nth > REC_MAX_THREADS)
		return fail(err, errlen, -EINVAL, "%u threads: out of bounds", nth);
	uint64_t table_end = hdr_len + (uint64_t)nth * THREAD_ENT;
	if (table_end + 8 > len - TRAILER_LEN)
		return fail(err, errlen, -EINVAL, "thread table (%u entries) runs past the end",
			    nth);
	if (!CHECKSUM_OK(XXH3_64bits(d + hdr_len, table_end - hdr_len), le_get64(d + table_end)))
		return fail(err, errlen, -EINVAL,
			    "thread table checksum mismatch at offset %" PRIu64, table_end);

	struct rec_meta *m = &r->meta;
	m->flags = le_get16(d + 6);
	r->ncalls = le_get64(d + 16);
	m->mono_base = le_get64(d + 24);
	m->real_base = le_get64(d + 32);
	m->boot_base = le_get64(d + 40);
	m->mono_end = le_get64(d + 48);
	m->root_tid = le_get32(d + 56);
	m->root_status = (int32_t)le_get32(d + 60);
	m->max_bytes = le_get32(d + 64);
	m->argc = (int)le_get32(d + 68);
	m->dropped = le_get64(d + 72);
	m->truncated = le_get64(d + 80);
	for (int i = 0; i < 3; i++) {
		m->std[i].dev = le_get64(d + 88 + 16 * i);
		m->std[i].ino = le_get64(d + 96 + 16 * i);
	}
	if (m->argc < 0 || m->argc > REC_MAX_ARGS)
		return fail(err, errlen, -EINVAL, "argc %d out of bounds", m->argc);
	const uint8_t *p = d + HDR_FIXED, *end = d + HDR_FIXED + meta_len;
	m->argv = xcalloc((size_t)m->argc + 1, sizeof(char *));
	for (int i = 0; i < m->argc; i++) {
		const char *s = meta_str(&p, end);
		if (!s)
			return fail(err, errlen, -EINVAL, "argument %d runs past the meta block",
				    i);
		m->argv[i] = xstrdup(s);
	}
	const char *cwd = meta_str(&p, end), *host = cwd ? meta_str(&p, end) : NULL,
		   *kern = host ? meta_str(&p, end) : NULL;
	if (!kern)
		return fail(err, errlen, -EINVAL, "meta block lacks cwd/host/kernel strings");
	m->cwd = xstrdup(cwd);
	m->host = xstrdup(host);
	m->kernel = xstrdup(kern);
	m->envc = (int)le_get32(d + 140);
	if (m->envc < 0 || m->envc > REC_MAX_ENV)
		return fail(err, errlen, -EINVAL, "%d environment strings: out of bounds", m->envc);
	m->envp = xcalloc((size_t)m->envc + 1, sizeof(char *));
	for (int i = 0; i < m->envc; i++) {
		const char *v = meta_str(&p, end);
		if (!v)
			return fail(err, errlen, -EINVAL,
				    "environment string %d runs past the meta "
				    "block",
				    i);
		m->envp[i] = xstrdup(v);
	}

	r->th = xcalloc(nth, sizeof(*r->th));
	r->nth = (int)nth;
	uint64_t streams_lo = table_end + 8, streams_hi = len - TRAILER_LEN, total = 0;
	for (uint32_t i = 0; i < nth; i++) {
		const uint8_t *e = d + hdr_len + (uint64_t)i * THREAD_ENT;
		struct rthread *t = &r->th[i];
		t->t.tid = le_get32(e);
		t->t.tgid = le_get32(e + 4);
		t->t.parent_tid = le_get32(e + 8);
		t->t.child_index = le_get32(e + 12);
		t->t.flags = le_get32(e + 16);
		t->t.exit_code = (int32_t)le_get32(e + 20);
		t->t.n_calls = le_get32(e + 24);
		t->t.n_children = le_get32(e + 28);
		t->t.start_ns = le_get64(e + 32);
		t->t.end_ns = le_get64(e + 40);
		uint64_t off = le_get64(e + 48), sl = le_get64(e + 56);
		memcpy(t->t.exe, e + 72, 56);
		t->t.exe[55] = 0;
		if (off < streams_lo || off > streams_hi || sl > streams_hi - off || off % 8)
			return fail(err, errlen, -EINVAL,
				    "thread %u: stream [%" PRIu64 ", +%" PRIu64
				    ") outside the file",
				    t->t.tid, off, sl);
		if (!CHECKSUM_OK(XXH3_64bits(d + off, sl), le_get64(e + 64)))
			return fail(err, errlen, -EINVAL,
				    "thread %u: stream checksum mismatch at "
				    "offset %" PRIu64,
				    t->t.tid, off);
		if (t->t.n_calls > sl / KP_CAP_HDR_LEN || t->t.n_children > nth)
			return fail(err, errlen, -EINVAL,
				    "thread %u: %u calls / %u children do not "
				    "fit its stream",
				    t->t.tid, t->t.n_calls, t->t.n_children);
		t->calls = xcalloc(t->t.n_calls ? t->t.n_calls : 1, sizeof(*t->calls));
		uint64_t pos = off, prev_seq = 0;
		for (uint32_t k = 0; k < t->t.n_calls; k++) {
			const struct kp_cap_rec *c = (const void *)(d + pos);
			if (!kp_cap_rec_valid(c, off + sl - pos) || c->len % 8 ||
			    c->kind != KP_CAP_CALL || c->tid != t->t.tid || c->ord != k ||
			    c->seq <= prev_seq || c->seq > r->ncalls)
				return fail(err, errlen, -EINVAL,
					    "thread %u: call %u at offset %" PRIu64 " is malformed",
					    t->t.tid, k, pos);
			prev_seq = c->seq;
			t->calls[k] = c;
			pos += c->len;
		}
		if (pos != off + sl)
			return fail(err, errlen, -EINVAL,
				    "thread %u: %" PRIu64 " stray bytes after "
				    "its last call",
				    t->t.tid, off + sl - pos);
		total += t->t.n_calls;
	}
	if (total != r->ncalls)
		return fail(err, errlen, -EINVAL,
			    "streams hold %" PRIu64 " calls, header says %" PRIu64, total,
			    r->ncalls);
	/* Children lists and the global order. */
	for (int i = 0; i < r->nth; i++) {
		struct rthread *t = &r->th[i];
		t->children = xmalloc((t->t.n_children ? t->t.n_children : 1) * sizeof(int));
		for (uint32_t k = 0; k < t->t.n_children; k++)
			t->children[k] = -1;
	}
	for (int i = 0; i < r->nth; i++) {
		struct rthread *c = &r->th[i];
		if (!c->t.parent_tid)
			continue;
		int p = rec_thread_find(r, c->t.parent_tid);
		if (p >= 0 && c->t.child_index < r->th[p].t.n_children)
			r->th[p].children[c->t.child_index] = i;
	}
	r->by_seq = xcalloc(r->ncalls ? r->ncalls : 1, sizeof(*r->by_seq));
	r->by_seq_thread = xcalloc(r->ncalls ? r->ncalls : 1, sizeof(int));
	for (int i = 0; i < r->nth; i++)
		for (uint32_t k = 0; k < r->th[i].t.n_calls; k++) {
			const struct kp_cap_rec *c = r->th[i].calls[k];
			if (r->by_seq[c->seq - 1])
				return fail(err, errlen, -EINVAL,
					    "sequence number %" PRIu64 " used "
					    "twice",
					    (uint64_t)c->seq);
			r->by_seq[c->seq - 1] = c;
			r->by_seq_thread[c->seq - 1] = i;
		}
	if (rec_thread_find(r, m->root_tid) < 0)
		return fail(err, errlen, -EINVAL, "root thread %u has no entry", m->root_tid);
	return 0;
}

static int open_common(struct rec *r, struct rec **out, char *err, size_t errlen)
{
	int ret = parse(r, err, errlen);
	if (ret < 0) {
		rec_close(r);
		return ret;
	}
	*out = r;
	return 0;
}

int rec_open(struct rec **out, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size <= 0) {
		close(fd);
		return fail(err, errlen, -EINVAL, "%s is empty", path);
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return fail(err, errlen, -errno, "cannot map %s: %s", path, strerror(errno));
	struct rec *r = xcalloc(1, sizeof(*r));
	r->data = p;
	r->len = (size_t)st.st_size;
	r->mapped = true;
	int ret = open_common(r, out, err, errlen);
	if (ret < 0) {
		char tmp[512];
		snprintf(tmp, sizeof(tmp), "%s: %s", path, err);
		snprintf(err, errlen, "%s", tmp);
	}
	return ret;
}

int rec_open_mem(struct rec **out, const void *data, size_t len, char *err, size_t errlen)
{
	struct rec *r = xcalloc(1, sizeof(*r));
	r->data = xmalloc(len ? len : 1);
	memcpy(r->data, data, len);
	r->len = len;
	return open_common(r, out, err, errlen);
}

void rec_close(struct rec *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nth; i++) {
		free(r->th[i].calls);
		free(r->th[i].children);
	}
	free(r->th);
	free(r->by_seq);
	free(r->by_seq_thread);
	meta_free(&r->meta);
	if (r->mapped)
		munmap(r->data, r->len);
	else
		free(r->data);
	free(r);
}

const struct rec_meta *rec_meta(const struct rec *r)
{
	return &r->meta;
}

int rec_nthreads(const struct rec *r)
{
	return r->nth;
}

const struct rec_thread *rec_thread(const struct rec *r, int i)
{
	return i >= 0 && i < r->nth ? &r->th[i].t : NULL;
}

int rec_thread_find(const struct rec *r, uint32_t tid)
{
	for (int i = 0; i < r->nth; i++)
		if (r->th[i].t.tid == tid)
			return i;
	return -1;
}

const struct kp_cap_rec *rec_call(const struct rec *r, int i, uint32_t ord)
{
	if (i < 0 || i >= r->nth || ord >= r->th[i].t.n_calls)
		return NULL;
	return r->th[i].calls[ord];
}

uint64_t rec_ncalls(const struct rec *r)
{
	return r->ncalls;
}

const struct kp_cap_rec *rec_call_seq(const struct rec *r, uint64_t n, int *thread)
{
	if (n >= r->ncalls)
		return NULL;
	if (thread)
		*thread = r->by_seq_thread[n];
	return r->by_seq[n];
}

int rec_child(const struct rec *r, int i, uint32_t k)
{
	if (i < 0 || i >= r->nth || k >= r->th[i].t.n_children)
		return -1;
	return r->th[i].children[k];
}
