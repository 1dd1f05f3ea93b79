/*
 * eventjson.c - kp_event -> JSON object, with the field names documented in eventjson.h.
 */
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "common/eventjson.h"
#include "common/json.h"

static const char *const type_names[KP_TYPE_MAX] = {
	[KP_NONE] = "none",       [KP_READ] = "read",         [KP_WRITE] = "write",
	[KP_FSYNC] = "fsync",     [KP_TCP_SEND] = "tcp_send", [KP_TCP_RECV] = "tcp_recv",
	[KP_CONN] = "conn",       [KP_RETRANSMIT] = "retransmit", [KP_OFFCPU] = "offcpu",
	[KP_RECLAIM] = "reclaim", [KP_FAULTS] = "faults",     [KP_PROC] = "proc",
};

const char *const eventjson_syscall_names[EVENTJSON_NSYSCALLS] = {
	[SYS_read] = "read",	       [SYS_write] = "write",	    [SYS_pread64] = "pread64",
	[SYS_pwrite64] = "pwrite64",   [SYS_readv] = "readv",	    [SYS_writev] = "writev",
	[SYS_sendto] = "sendto",       [SYS_recvfrom] = "recvfrom", [SYS_sendmsg] = "sendmsg",
	[SYS_recvmsg] = "recvmsg",     [SYS_fsync] = "fsync",	    [SYS_fdatasync] = "fdatasync",
	[SYS_preadv] = "preadv",       [SYS_pwritev] = "pwritev",   [SYS_preadv2] = "preadv2",
	[SYS_pwritev2] = "pwritev2",   [SYS_sync_file_range] = "sync_file_range",
};
_Static_assert(SYS_pwritev2 < EVENTJSON_NSYSCALLS, "EVENTJSON_NSYSCALLS too small");

const char *const eventjson_tcp_state_names[EVENTJSON_NTCPSTATES] = {
	"UNKNOWN",   "ESTABLISHED", "SYN_SENT", "SYN_RECV",   "FIN_WAIT1",    "FIN_WAIT2",
	"TIME_WAIT", "CLOSE",	    "CLOSE_WAIT", "LAST_ACK", "LISTEN",	      "CLOSING",
	"NEW_SYN_RECV", "BOUND_INACTIVE",
};

const char *const eventjson_family_names[EVENTJSON_NFAMILIES] = {[AF_INET] = "ipv4",
								   [AF_INET6] = "ipv6"};

const char *eventjson_name(const char *const *tab, int n, uint64_t v, const char *fallback)
{
	return v < (uint64_t)n && tab[v] ? tab[v] : fallback;
}

const char *eventjson_type_name(unsigned type)
{
	return type < KP_TYPE_MAX && type_names[type] ? type_names[type] : "unknown";
}

int eventjson_type_from_name(const char *name, size_t len)
{
	for (int t = 1; t < KP_TYPE_MAX; t++)
		if (strlen(type_names[t]) == len && !strncasecmp(type_names[t], name, len))
			return t;
	return -1;
}

static void put_u(struct kp_buf *b, const char *key, unsigned long long v)
{
	buf_printf(b, ",\"%s\":%llu", key, v);
}

static void put_s(struct kp_buf *b, const char *key, const char *v)
{
	buf_printf(b, ",\"%s\":", key);
	json_cstr(b, v);
}

static void put_ports(struct kp_buf *b, __u64 a)
{
	put_u(b, "sport", a & 0xffff);
	put_u(b, "dport", (a >> 16) & 0xffff);
}

static void put_conn(struct kp_buf *b, __u64 id)
{
	buf_printf(b, ",\"conn\":\"%016llx\"", (unsigned long long)id);
}

#define SYSCALL_NAME(v)	  eventjson_name(eventjson_syscall_names, EVENTJSON_NSYSCALLS, v, "unknown")
#define TCP_STATE_NAME(v) eventjson_name(eventjson_tcp_state_names, EVENTJSON_NTCPSTATES, v, "UNKNOWN")
#define FAMILY_NAME(v)	  eventjson_name(eventjson_family_names, EVENTJSON_NFAMILIES, v, "unknown")

void eventjson_write(struct kp_buf *b, const struct kp_event *ev, const struct eventjson_meta *meta)
{
	buf_printf(b, "{\"type\":\"%s\",\"ts\":%llu,\"dur\":%llu,\"pid\":%u,\"tid\":%u,\"cpu\":%u,"
		      "\"ret\":%d",
		   eventjson_type_name(ev->type), (unsigned long long)ev->ts_ns,
		   (unsigned long long)ev->dur_ns, ev->pid, ev->tid, ev->cpu, ev->ret);
	if (ev->flags)
		put_u(b, "flags", ev->flags);
	if (meta && meta->comm && meta->comm[0])
		put_s(b, "comm", meta->comm);
	if (meta && meta->service && meta->service[0])
		put_s(b, "service", meta->service);
	if (meta && meta->node && meta->node[0])
		put_s(b, "node", meta->node);
	const __u64 *a = ev->arg;
	switch (ev->type) {
	case KP_READ:
	case KP_WRITE:
	case KP_FSYNC:
		put_u(b, "fd", a[0]);
		if (ev->type != KP_FSYNC)
			put_u(b, "bytes", a[1]);
		put_s(b, "syscall", SYSCALL_NAME(a[2]));
		put_u(b, "inode", a[3]);
		break;
	case KP_TCP_SEND:
	case KP_TCP_RECV:
		put_conn(b, a[0]);
		put_u(b, "bytes", a[1]);
		put_u(b, "seq", a[2]);
		put_ports(b, a[3]);
		break;
	case KP_CONN:
		put_conn(b, a[0]);
		put_s(b, "family", FAMILY_NAME(a[3] >> 32));
		put_ports(b, a[3]);
		put_s(b, "old_state", TCP_STATE_NAME(a[1]));
		put_s(b, "new_state", TCP_STATE_NAME(a[2]));
		break;
	case KP_RETRANSMIT:
		put_conn(b, a[0]);
		put_u(b, "seq", a[1]);
		put_s(b, "tcp_state", TCP_STATE_NAME(a[2]));
		put_ports(b, a[3]);
		break;
	case KP_OFFCPU:
		put_s(b, "reason", (a[0] & 0xff) == KP_OFFCPU_PREEMPTED ? "preempted" : "blocked");
		put_u(b, "waker", a[1]);
		put_u(b, "runq", a[2]);
		put_u(b, "holder_tid", a[3]);
		put_u(b, "prev_state", a[0] >> 8);
		break;
	case KP_RECLAIM:
		put_u(b, "pages", a[0]);
		put_s(b, "kind", a[1] == KP_RECLAIM_MEMCG ? "memcg" : "direct");
		put_u(b, "memcg", a[2]);
		put_u(b, "order", a[3]);
		break;
	case KP_FAULTS:
		put_u(b, "count", a[0]);
		put_u(b, "addr", a[1]);
		put_u(b, "last_addr", a[2]);
		put_u(b, "write_faults", a[3]);
		break;
	case KP_PROC: {
		const char *ev_name = a[0] == KP_PROC_EXEC   ? "exec"
				      : a[0] == KP_PROC_FORK ? "fork"
				      : a[0] == KP_PROC_EXIT ? "exit"
							     : "unknown";
		put_s(b, "proc_event", ev_name);
		put_u(b, a[0] == KP_PROC_FORK ? "child" : "ppid", a[1]);
		if (!(meta && meta->comm && meta->comm[0])) {
			char comm[17];
			memcpy(comm, &a[2], 16);
			comm[16] = 0;
			buf_puts(b, ",\"comm\":");
			json_str(b, comm, strnlen(comm, 16));
		}
		if (a[0] == KP_PROC_EXIT) {
			/* the kernel's exit_code is a wait status: code << 8 | terminating signal */
			put_u(b, "exit_code", ((uint32_t)ev->ret >> 8) & 0xff);
			if (ev->ret & 0x7f)
				put_u(b, "signal", (uint32_t)ev->ret & 0x7f);
		}
		if (ev->flags & KP_F_THREAD)
			buf_puts(b, ",\"thread\":true");
		break;
	}
	default:
		for (int i = 0; i < 4; i++)
			buf_printf(b, ",\"arg%d\":%llu", i, (unsigned long long)a[i]);
	}
	buf_puts(b, "}");
}
