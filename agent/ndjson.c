/*
 * ndjson.c - the --stdout sink: formats each event as one JSON line (field names in ndjson.h)
 * with hand-rolled number formatting (no printf per field: this runs per event), buffers the
 * lines and writes them to the fd in large chunks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/ndjson.h"
#include "common/json.h"

#define FLUSH_AT (64 * 1024)

struct ndjson {
	int fd;
	struct kp_buf out;
	uint64_t lines, bytes, write_errors;
	int last_errno;
};

/* ------------------------------------------------------------------ formatting */

static inline void put(struct kp_buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
}
#define PUT_LIT(b, lit) put(b, lit, sizeof(lit) - 1)

static inline void put_u64(struct kp_buf *b, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[19 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(b, tmp + 20 - n, (size_t)n);
}

static inline void put_i64(struct kp_buf *b, int64_t v)
{
	if (v < 0) {
		PUT_LIT(b, "-");
		put_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		put_u64(b, (uint64_t)v);
	}
}

/* ,"key":<u64> */
#define FIELD_U(b, key, v)                                                                         \
	do {                                                                                       \
		PUT_LIT(b, ",\"" key "\":");                                                       \
		put_u64(b, v);                                                                     \
	} while (0)
#define FIELD_S(b, key, s)                                                                         \
	do {                                                                                       \
		PUT_LIT(b, ",\"" key "\":");                                                       \
		json_cstr(b, s);                                                                   \
	} while (0)

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
	switch (nr) {
	case SYS_read: return "read";
	case SYS_write: return "write";
	case SYS_pread64: return "pread64";
	case SYS_pwrite64: return "pwrite64";
	case SYS_readv: return "readv";
	case SYS_writev: return "writev";
	case SYS_recvfrom: return "recvfrom";
	case SYS_sendto: return "sendto";
	case SYS_recvmsg: return "recvmsg";
	case SYS_sendmsg: return "sendmsg";
	case SYS_fsync: return "fsync";
	case SYS_fdatasync: return "fdatasync";
	}
	return "unknown";
}

static const char *tcp_state_name(uint64_t s)
{
	static const char *const names[] = {
		"UNKNOWN",   "ESTABLISHED", "SYN_SENT", "SYN_RECV",   "FIN_WAIT1",
		"FIN_WAIT2", "TIME_WAIT",   "CLOSE",    "CLOSE_WAIT", "LAST_ACK",
		"LISTEN",    "CLOSING",     "NEW_SYN_RECV", "BOUND_INACTIVE",
	};
	return s < KP_ARRAY_SIZE(names) ? names[s] : "UNKNOWN";
}

static void put_addr(struct kp_buf *b, const char *key, int family, const uint8_t *a)
{
	char txt[INET6_ADDRSTRLEN];
	if (!inet_ntop(family == AF_INET6 ? AF_INET6 : AF_INET, a, txt, sizeof(txt)))
		return;
	PUT_LIT(b, ",\"");
	put(b, key, strlen(key));
	PUT_LIT(b, "\":\"");
	put(b, txt, strlen(txt));
	PUT_LIT(b, "\"");
}

static void put_conn_id(struct kp_buf *b, uint64_t id)
{
	static const char hex[] = "0123456789abcdef";
	char s[16];
	for (int i = 15; i >= 0; i--, id >>= 4)
		s[i] = hex[id & 15];
	PUT_LIT(b, ",\"conn\":\"");
	put(b, s, 16);
	PUT_LIT(b, "\"");
}

/* saddr/daddr of the event's own side: the stored connection may be the other end's view. */
static void put_conn_addrs(struct kp_buf *b, const struct kp_event *ev, const struct wire_conn *c)
{
	if (!c)
		return;
	uint16_t local = (uint16_t)ev->arg[3], remote = (uint16_t)(ev->arg[3] >> 16);
	const uint8_t *s = c->saddr, *d = c->daddr;
	if (c->sport == remote && c->dport == local && local != remote) {
		s = c->daddr;
		d = c->saddr;
	}
	put_addr(b, "saddr", c->family, s);
	put_addr(b, "daddr", c->family, d);
}

void ndjson_format(struct kp_buf *b, const struct kp_event *ev, const struct wire_proc *proc,
		   const struct wire_conn *conn)
{
	const char *type = ev->type < KP_TYPE_MAX && type_names[ev->type] ? type_names[ev->type]
									  : "unknown";
	PUT_LIT(b, "{\"type\":\"");
	put(b, type, strlen(type));
	PUT_LIT(b, "\"");
	FIELD_U(b, "ts", ev->ts_ns);
	FIELD_U(b, "dur", ev->dur_ns);
	FIELD_U(b, "pid", ev->pid);
	FIELD_U(b, "tid", ev->tid);
	FIELD_U(b, "cpu", ev->cpu);
	char comm[17] = "";
	if (ev->type == KP_PROC)
		memcpy(comm, &ev->arg[2], 16); /* the event's own: it may be newer than the cache */
	else if (proc)
		memcpy(comm, proc->comm, 16);
	comm[16] = 0;
	FIELD_S(b, "comm", comm);
	PUT_LIT(b, ",\"ret\":");
	put_i64(b, ev->ret);

	switch (ev->type) {
	case KP_READ:
	case KP_WRITE:
	case KP_FSYNC:
		FIELD_U(b, "fd", ev->arg[0]);
		FIELD_U(b, "bytes", ev->arg[1]);
		FIELD_S(b, "syscall", syscall_name(ev->arg[2]));
		FIELD_U(b, "inode", ev->arg[3]);
		break;
	case KP_TCP_SEND:
	case KP_TCP_RECV:
		put_conn_id(b, ev->arg[0]);
		FIELD_U(b, "bytes", ev->arg[1]);
		FIELD_U(b, "seq", ev->arg[2]);
		FIELD_U(b, "sport", ev->arg[3] & 0xffff);
		FIELD_U(b, "dport", (ev->arg[3] >> 16) & 0xffff);
		put_conn_addrs(b, ev, conn);
		break;
	case KP_CONN: {
		int family = (int)(ev->arg[3] >> 32);
		put_conn_id(b, ev->arg[0]);
		FIELD_S(b, "family", family == AF_INET6 ? "ipv6" : "ipv4");
		FIELD_U(b, "sport", ev->arg[3] & 0xffff);
		FIELD_U(b, "dport", (ev->arg[3] >> 16) & 0xffff);
		put_conn_addrs(b, ev, conn);
		FIELD_S(b, "oldstate", tcp_state_name(ev->arg[1]));
		FIELD_S(b, "newstate", tcp_state_name(ev->arg[2]));
		break;
	}
	case KP_RETRANSMIT:
		put_conn_id(b, ev->arg[0]);
		FIELD_U(b, "seq", ev->arg[1]);
		FIELD_S(b, "state", tcp_state_name(ev->arg[2]));
		FIELD_U(b, "sport", ev->arg[3] & 0xffff);
		FIELD_U(b, "dport", (ev->arg[3] >> 16) & 0xffff);
		put_conn_addrs(b, ev, conn);
		break;
	case KP_OFFCPU:
		FIELD_S(b, "reason",
			(ev->arg[0] & 0xff) == KP_OFFCPU_PREEMPTED ? "preempted" : "blocked");
		FIELD_U(b, "waker", ev->arg[1]);
		FIELD_U(b, "runq", ev->arg[2]);
		FIELD_U(b, "holder_tid", ev->arg[3]);
		FIELD_U(b, "prev_state", ev->arg[0] >> 8);
		break;
	case KP_RECLAIM:
		FIELD_U(b, "pages", ev->arg[0]);
		FIELD_S(b, "kind", ev->arg[1] == KP_RECLAIM_MEMCG ? "memcg" : "direct");
		FIELD_U(b, "memcg", ev->arg[2]);
		FIELD_U(b, "order", ev->arg[3]);
		break;
	case KP_FAULTS:
		FIELD_U(b, "count", ev->arg[0]);
		FIELD_U(b, "addr", ev->arg[1]);
		FIELD_U(b, "last_addr", ev->arg[2]);
		FIELD_U(b, "write", ev->arg[3]);
		break;
	case KP_PROC:
		switch (ev->arg[0]) {
		case KP_PROC_EXEC:
			FIELD_S(b, "event", "exec");
			FIELD_U(b, "ppid", ev->arg[1]);
			break;
		case KP_PROC_FORK:
			FIELD_S(b, "event", "fork");
			FIELD_U(b, "child", ev->arg[1]);
			if (ev->flags & KP_F_THREAD)
				PUT_LIT(b, ",\"thread\":true");
			break;
		case KP_PROC_EXIT:
			FIELD_S(b, "event", "exit");
			FIELD_U(b, "ppid", ev->arg[1]);
			/* the kernel's exit_code is a wait status: code << 8 | terminating signal */
			FIELD_U(b, "exit_code", ((uint32_t)ev->ret >> 8) & 0xff);
			if (ev->ret & 0x7f)
				FIELD_U(b, "signal", (uint32_t)ev->ret & 0x7f);
			if (ev->flags & KP_F_THREAD)
				PUT_LIT(b, ",\"thread\":true");
			break;
		default:
			FIELD_S(b, "event", "unknown");
		}
		break;
	}
	if (ev->flags & KP_F_TRUNCATED)
		PUT_LIT(b, ",\"truncated\":true");
	if (proc) {
		if (proc->service[0])
			FIELD_S(b, "service", proc->service);
		if (proc->container[0])
			FIELD_S(b, "container", proc->container);
		if (proc->pod[0])
			FIELD_S(b, "pod", proc->pod);
		if (proc->cgroup[0])
			FIELD_S(b, "cgroup", proc->cgroup);
	}
	PUT_LIT(b, "}");
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
	ndjson_format(&s->out, ev, proc, conn);
	PUT_LIT(&s->out, "\n");
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
