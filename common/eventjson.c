/*
 * eventjson.c - kp_event -> JSON object, with the field names documented in eventjson.h.
 */
#include <string.h>
#include <strings.h>

#include "common/eventjson.h"
#include "common/json.h"

static const char *const type_names[KP_TYPE_MAX] = {
	[KP_NONE] = "none",       [KP_READ] = "read",         [KP_WRITE] = "write",
	[KP_FSYNC] = "fsync",     [KP_TCP_SEND] = "tcp_send", [KP_TCP_RECV] = "tcp_recv",
	[KP_CONN] = "conn",       [KP_RETRANSMIT] = "retransmit", [KP_OFFCPU] = "offcpu",
	[KP_RECLAIM] = "reclaim", [KP_FAULTS] = "faults",     [KP_PROC] = "proc",
};

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

static void put_ports(struct kp_buf *b, const char *k1, const char *k2, __u64 a)
{
	put_u(b, k1, a & 0xffff);
	put_u(b, k2, (a >> 16) & 0xffff);
}

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
		put_u(b, "fd", a[0]);
		put_u(b, "bytes", a[1]);
		put_u(b, "syscall", a[2]);
		put_u(b, "inode", a[3]);
		break;
	case KP_FSYNC:
		put_u(b, "fd", a[0]);
		put_u(b, "syscall", a[2]);
		put_u(b, "inode", a[3]);
		break;
	case KP_TCP_SEND:
	case KP_TCP_RECV:
		put_u(b, "conn", a[0]);
		put_u(b, "bytes", a[1]);
		put_u(b, "seq", a[2]);
		put_ports(b, "lport", "rport", a[3]);
		break;
	case KP_CONN:
		put_u(b, "conn", a[0]);
		put_u(b, "old_state", a[1]);
		put_u(b, "new_state", a[2]);
		put_ports(b, "sport", "dport", a[3]);
		put_u(b, "family", a[3] >> 32);
		break;
	case KP_RETRANSMIT:
		put_u(b, "conn", a[0]);
		put_u(b, "seq", a[1]);
		put_u(b, "state", a[2]);
		put_ports(b, "sport", "dport", a[3]);
		break;
	case KP_OFFCPU:
		put_s(b, "reason", (a[0] & 0xff) == KP_OFFCPU_PREEMPTED ? "preempted" : "blocked");
		put_u(b, "prev_state", a[0] >> 8);
		put_u(b, "waker", a[1]);
		put_u(b, "rq_delay", a[2]);
		put_u(b, "cpu_holder", a[3]);
		break;
	case KP_RECLAIM:
		put_u(b, "pages", a[0]);
		put_s(b, "kind", a[1] == KP_RECLAIM_MEMCG ? "memcg" : "direct");
		put_u(b, "memcg", a[2]);
		put_u(b, "order", a[3]);
		break;
	case KP_FAULTS:
		put_u(b, "count", a[0]);
		buf_printf(b, ",\"first_addr\":\"0x%llx\",\"last_addr\":\"0x%llx\"",
			   (unsigned long long)a[1], (unsigned long long)a[2]);
		put_u(b, "write_faults", a[3]);
		break;
	case KP_PROC: {
		const char *ev_name = a[0] == KP_PROC_EXEC   ? "exec"
				      : a[0] == KP_PROC_FORK ? "fork"
				      : a[0] == KP_PROC_EXIT ? "exit"
							     : "unknown";
		put_s(b, "event", ev_name);
		put_u(b, a[0] == KP_PROC_FORK ? "child" : "ppid", a[1]);
		char comm[17];
		memcpy(comm, &a[2], 16);
		comm[16] = 0;
		buf_puts(b, ",\"pcomm\":");
		json_str(b, comm, strnlen(comm, 16));
		if (a[0] == KP_PROC_EXIT)
			buf_printf(b, ",\"exit_code\":%d", ev->ret);
		break;
	}
	default:
		for (int i = 0; i < 4; i++)
			buf_printf(b, ",\"arg%d\":%llu", i, (unsigned long long)a[i]);
	}
	buf_puts(b, "}");
}
