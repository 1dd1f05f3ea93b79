/*
 * ndjson.c - the --stdout sink: formats each event as one JSON line (field names in ndjson.h)
 * with hand-rolled number formatting (no printf per field: this runs per event), buffers the
 * lines and writes them to the fd in large chunks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/ndjson.h"
#include "common/eventjson.h"
#include "common/json.h"

#define FLUSH_AT (64 * 1024)

/*
 * The escaped comm and metadata strings of a process change only when the pipeline says so
 * (proc_fresh), so they are rendered once per process into a small direct-mapped cache keyed
 * by pid and the metadata's address.
 */
#define RCACHE 256

struct rendered {
	uint32_t pid;
	const struct wire_proc *proc;
	struct kp_buf comm, meta;
};

struct ndjson {
	int fd;
	struct kp_buf out;
	struct rendered cache[RCACHE];
	uint64_t lines, bytes, write_errors;
	int last_errno;
};

/* ------------------------------------------------------------------ formatting */

/*
 * Lines are written through a cursor into space reserved once per event (numbers and names
 * have known maximum lengths; the strings of the process metadata are measured first), so no
 * field pays for a bounds check or a call.
 */
#define MAX_FIXED 1024 /* every field but comm and the metadata strings, with room to spare */

static inline char *put(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}
#define PUT_LIT(o, lit) put(o, lit, sizeof(lit) - 1)

static const char digits2[201] = "00010203040506070809101112131415161718192021222324252627282930"
				 "31323334353637383940414243444546474849505152535455565758596061"
				 "62636465666768697071727374757677787980818283848586878889909192"
				 "93949596979899";

static inline char *put_u64(char *o, uint64_t v)
{
	char tmp[20];
	int n = 20;
	while (v >= 100) {
		unsigned d = (unsigned)(v % 100) * 2;
		v /= 100;
		tmp[--n] = digits2[d + 1];
		tmp[--n] = digits2[d];
	}
	if (v >= 10) {
		tmp[--n] = digits2[v * 2 + 1];
		tmp[--n] = digits2[v * 2];
	} else {
		tmp[--n] = (char)('0' + v);
	}
	return put(o, tmp + n, (size_t)(20 - n));
}

static inline char *put_i64(char *o, int64_t v)
{
	if (v < 0) {
		*o++ = '-';
		return put_u64(o, (uint64_t)0 - (uint64_t)v);
	}
	return put_u64(o, (uint64_t)v);
}

/* ,"key":<u64> and ,"key":"<plain ASCII literal>" */
#define FIELD_U(o, key, v) (o = put_u64(PUT_LIT(o, ",\"" key "\":"), v))
#define FIELD_L(o, key, s) (o = put_cstr(PUT_LIT(o, ",\"" key "\":\""), s), *o++ = '"')

static inline char *put_cstr(char *o, const char *s)
{
	return put(o, s, strlen(s));
}

static const char *const type_names[KP_TYPE_MAX] = {
	[KP_READ] = "read",
	[KP_WRITE] = "write",
	[KP_FSYNC] = "fsync",
	[KP_TCP_SEND] = "tcp_send",
	[KP_TCP_RECV] = "tcp_recv",
	[KP_CONN] = "conn",
	[KP_RETRANSMIT] = "retransmit",
	[KP_OFFCPU] = "offcpu",
	[KP_RECLAIM] = "reclaim",
	[KP_FAULTS] = "faults",
	[KP_PROC] = "proc",
};

static const char *syscall_name(uint64_t nr)
{
	return eventjson_name(eventjson_syscall_names, EVENTJSON_NSYSCALLS, nr, "unknown");
}

static const char *tcp_state_name(uint64_t s)
{
	return eventjson_name(eventjson_tcp_state_names, EVENTJSON_NTCPSTATES, s, "UNKNOWN");
}

static char *put_addr(char *o, const char *key, int family, const uint8_t *a)
{
	char txt[INET6_ADDRSTRLEN];
	if (!inet_ntop(family == AF_INET6 ? AF_INET6 : AF_INET, a, txt, sizeof(txt)))
		return o;
	o = PUT_LIT(o, ",\"");
	o = put_cstr(o, key);
	o = PUT_LIT(o, "\":\"");
	o = put_cstr(o, txt);
	*o++ = '"';
	return o;
}

static char *put_conn_id(char *o, uint64_t id)
{
	static const char hex[] = "0123456789abcdef";
	o = PUT_LIT(o, ",\"conn\":\"");
	for (int i = 15; i >= 0; i--, id >>= 4)
		o[i] = hex[id & 15];
	o += 16;
	*o++ = '"';
	return o;
}

/* saddr/daddr of the event's own side: the stored connection may be the other end's view. */
static char *put_conn_addrs(char *o, const struct kp_event *ev, const struct wire_conn *c)
{
	if (!c)
		return o;
	uint16_t local = (uint16_t)ev->arg[3], remote = (uint16_t)(ev->arg[3] >> 16);
	const uint8_t *s = c->saddr, *d = c->daddr;
	if (c->sport == remote && c->dport == local && local != remote) {
		s = c->daddr;
		d = c->saddr;
	}
	o = put_addr(o, "saddr", c->family, s);
	return put_addr(o, "daddr", c->family, d);
}

/* The type's own fields (everything after "ret"). */
static char *put_body(char *o, const struct kp_event *ev, const struct wire_conn *conn)
{
	switch (ev->type) {
	case KP_READ:
	case KP_WRITE:
	case KP_FSYNC:
		FIELD_U(o, "fd", ev->arg[0]);
		if (ev->type != KP_FSYNC)
			FIELD_U(o, "bytes", ev->arg[1]);
		FIELD_L(o, "syscall", syscall_name(ev->arg[2]));
		FIELD_U(o, "inode", ev->arg[3]);
		break;
	case KP_TCP_SEND:
	case KP_TCP_RECV:
		o = put_conn_id(o, ev->arg[0]);
		FIELD_U(o, "bytes", ev->arg[1]);
		FIELD_U(o, "seq", ev->arg[2]);
		FIELD_U(o, "sport", ev->arg[3] & 0xffff);
		FIELD_U(o, "dport", (ev->arg[3] >> 16) & 0xffff);
		o = put_conn_addrs(o, ev, conn);
		break;
	case KP_CONN: {
		int family = (int)(ev->arg[3] >> 32);
		o = put_conn_id(o, ev->arg[0]);
		FIELD_L(o, "family", family == AF_INET6 ? "ipv6" : "ipv4");
		FIELD_U(o, "sport", ev->arg[3] & 0xffff);
		FIELD_U(o, "dport", (ev->arg[3] >> 16) & 0xffff);
		o = put_conn_addrs(o, ev, conn);
		FIELD_L(o, "old_state", tcp_state_name(ev->arg[1]));
		FIELD_L(o, "new_state", tcp_state_name(ev->arg[2]));
		break;
	}
	case KP_RETRANSMIT:
		o = put_conn_id(o, ev->arg[0]);
		FIELD_U(o, "seq", ev->arg[1]);
		FIELD_L(o, "tcp_state", tcp_state_name(ev->arg[2]));
		FIELD_U(o, "sport", ev->arg[3] & 0xffff);
		FIELD_U(o, "dport", (ev->arg[3] >> 16) & 0xffff);
		o = put_conn_addrs(o, ev, conn);
		break;
	case KP_OFFCPU:
		FIELD_L(o, "reason",
			(ev->arg[0] & 0xff) == KP_OFFCPU_PREEMPTED ? "preempted" : "blocked");
		FIELD_U(o, "waker", ev->arg[1]);
		FIELD_U(o, "runq", ev->arg[2]);
		FIELD_U(o, "holder_tid", ev->arg[3]);
		FIELD_U(o, "prev_state", ev->arg[0] >> 8);
		break;
	case KP_RECLAIM:
		FIELD_U(o, "pages", ev->arg[0]);
		FIELD_L(o, "kind", ev->arg[1] == KP_RECLAIM_MEMCG ? "memcg" : "direct");
		FIELD_U(o, "memcg", ev->arg[2]);
		FIELD_U(o, "order", ev->arg[3]);
		break;
	case KP_FAULTS:
		FIELD_U(o, "count", ev->arg[0]);
		FIELD_U(o, "addr", ev->arg[1]);
		FIELD_U(o, "last_addr", ev->arg[2]);
		FIELD_U(o, "write_faults", ev->arg[3]);
		break;
	case KP_PROC:
		switch (ev->arg[0]) {
		case KP_PROC_EXEC:
			FIELD_L(o, "proc_event", "exec");
			FIELD_U(o, "ppid", ev->arg[1]);
			break;
		case KP_PROC_FORK:
			FIELD_L(o, "proc_event", "fork");
			FIELD_U(o, "child", ev->arg[1]);
			if (ev->flags & KP_F_THREAD)
				o = PUT_LIT(o, ",\"thread\":true");
			break;
		case KP_PROC_EXIT:
			FIELD_L(o, "proc_event", "exit");
			FIELD_U(o, "ppid", ev->arg[1]);
			/* the kernel's exit_code is a wait status: code << 8 | terminating signal
			 */
			FIELD_U(o, "exit_code", ((uint32_t)ev->ret >> 8) & 0xff);
			if (ev->ret & 0x7f)
				FIELD_U(o, "signal", (uint32_t)ev->ret & 0x7f);
			if (ev->flags & KP_F_THREAD)
				o = PUT_LIT(o, ",\"thread\":true");
			break;
		default:
			FIELD_L(o, "proc_event", "unknown");
		}
		break;
	}
	if (ev->flags & KP_F_TRUNCATED)
		o = PUT_LIT(o, ",\"truncated\":true");
	return o;
}

/* ,"comm":"..." of an event into b (escaped). */
static void render_comm(struct kp_buf *b, const struct kp_event *ev, const struct wire_proc *proc)
{
	char comm[17] = "";
	if (ev->type == KP_PROC)
		memcpy(comm, &ev->arg[2], 16); /* the event's own: it may be newer than the cache */
	else if (proc)
		memcpy(comm, proc->comm, 16);
	comm[16] = 0;
	buf_append(b, ",\"comm\":", 8);
	json_cstr(b, comm);
}

/* ,"service":...,"container":...,"pod":...,"cgroup":... (the non-empty ones) into b. */
static void render_meta(struct kp_buf *b, const struct wire_proc *proc)
{
	if (!proc)
		return;
	static const struct {
		const char *key;
		size_t off;
	} f[] = {
		{",\"service\":", offsetof(struct wire_proc, service)},
		{",\"container\":", offsetof(struct wire_proc, container)},
		{",\"pod\":", offsetof(struct wire_proc, pod)},
		{",\"cgroup\":", offsetof(struct wire_proc, cgroup)},
	};
	for (size_t i = 0; i < KP_ARRAY_SIZE(f); i++) {
		const char *v = (const char *)proc + f[i].off;
		if (v[0]) {
			buf_puts(b, f[i].key);
			json_cstr(b, v);
		}
	}
}

/* One line from pre-rendered comm and metadata strings. */
static void format_with(struct kp_buf *b, const struct kp_event *ev, const struct wire_conn *conn,
			const char *comm, size_t comm_len, const char *meta, size_t meta_len)
{
	buf_reserve(b, MAX_FIXED + comm_len + meta_len);
	char *o = b->data + b->len;
	const char *type =
		ev->type < KP_TYPE_MAX && type_names[ev->type] ? type_names[ev->type] : "unknown";
	o = PUT_LIT(o, "{\"type\":\"");
	o = put_cstr(o, type);
	*o++ = '"';
	FIELD_U(o, "ts", ev->ts_ns);
	FIELD_U(o, "dur", ev->dur_ns);
	FIELD_U(o, "pid", ev->pid);
	FIELD_U(o, "tid", ev->tid);
	FIELD_U(o, "cpu", ev->cpu);
	o = put(o, comm, comm_len);
	o = PUT_LIT(o, ",\"ret\":");
	o = put_i64(o, ev->ret);
	o = put_body(o, ev, conn);
	o = put(o, meta, meta_len);
	*o++ = '}';
	b->len = (size_t)(o - b->data);
}

void ndjson_format(struct kp_buf *b, const struct kp_event *ev, const struct wire_proc *proc,
		   const struct wire_conn *conn)
{
	struct kp_buf c = {0}, m = {0};
	render_comm(&c, ev, proc);
	render_meta(&m, proc);
	format_with(b, ev, conn, c.data, c.len, m.data ? m.data : "", m.len);
	buf_free(&c);
	buf_free(&m);
}

/* ------------------------------------------------------------------ the sink */

static void flush(struct ndjson *s)
{
	if (!s->out.len)
		return;
	int r = write_full(s->fd, s->out.data, s->out.len);
	if (r < 0) {
		/* a closed pipe or a full disk: count it, say it once per errno, keep going */
		s->write_errors++;
		if (s->last_errno != -r)
			log_error("--stdout: writing events failed: %s (counted as write_errors)",
				  strerror(-r));
		s->last_errno = -r;
	} else {
		s->bytes += s->out.len;
	}
	s->out.len = 0;
}

static int ndjson_event(void *ctx, const struct kp_event *ev, const struct wire_proc *proc,
			int proc_fresh, const struct wire_conn *conn, int conn_fresh)
{
	struct ndjson *s = ctx;
	if (!proc || ev->type == KP_PROC) {
		ndjson_format(&s->out, ev, proc, conn);
	} else {
		struct rendered *r = &s->cache[proc->pid & (RCACHE - 1)];
		if (proc_fresh || r->pid != proc->pid || r->proc != proc) {
			r->pid = proc->pid;
			r->proc = proc;
			r->comm.len = r->meta.len = 0;
			render_comm(&r->comm, ev, proc);
			render_meta(&r->meta, proc);
			buf_reserve(&r->meta, 1);
		}
		format_with(&s->out, ev, conn, r->comm.data, r->comm.len, r->meta.data,
			    r->meta.len);
	}
	buf_append(&s->out, "\n", 1);
	s->lines++;
	if (s->out.len >= FLUSH_AT)
		flush(s);
	return 0;
}

static void ndjson_tick(void *ctx, uint64_t now_mono_ns)
{
	flush(ctx);
}

static void ndjson_close(void *ctx, int drain_ms)
{
	struct ndjson *s = ctx;
	flush(s);
	buf_free(&s->out);
	for (int i = 0; i < RCACHE; i++) {
		buf_free(&s->cache[i].comm);
		buf_free(&s->cache[i].meta);
	}
	free(s);
}

static void ndjson_stats(void *ctx, struct kp_buf *line)
{
	struct ndjson *s = ctx;
	buf_printf(line, " stdout_lines=%llu stdout_bytes=%llu write_errors=%llu",
		   (unsigned long long)s->lines, (unsigned long long)s->bytes,
		   (unsigned long long)s->write_errors);
}

static const struct sink_ops ndjson_ops = {
	.event = ndjson_event,
	.tick = ndjson_tick,
	.close = ndjson_close,
	.stats = ndjson_stats,
};

int ndjson_sink_open(struct sink *out, int fd)
{
	struct ndjson *s = xcalloc(1, sizeof(*s));
	s->fd = fd;
	buf_reserve(&s->out, FLUSH_AT + 4096);
	out->ops = &ndjson_ops;
	out->ctx = s;
	return 0;
}
