/*
 * eventjson.h - one kp_event as one JSON object: the field names every JSON output of kprobe
 * uses (the agent's NDJSON on stdout, the live WebSocket stream, query results that return raw
 * events), so a line from any of them parses the same way.
 *
 * Field mapping. These names are also the event store's column names (FROM events), so a field
 * seen in `kprobe-agent --stdout` or on the live stream is queried by the same name with the same
 * value (tests/unit/common/eventjson.c checks the three agree):
 *
 *   every type   type  "read" | "write" | "fsync" | "tcp_send" | "tcp_recv" | "conn" |
 *                      "retransmit" | "offcpu" | "reclaim" | "faults" | "proc" (eventjson_type_name)
 *                ts    ts_ns (Unix epoch ns from the agent on)       dur   dur_ns
 *                pid, tid, cpu, ret                                  flags (only when non-zero)
 *                comm, service, node (when known: struct eventjson_meta; proc: the event's comm)
 *   read, write  fd = arg0, bytes = arg1, syscall = name of arg2 ("pwrite64"), inode = arg3
 *   fsync        fd, syscall ("fsync", "fdatasync"), inode
 *   tcp_send,    conn = arg0 as 16 hex digits, bytes = arg1, seq = arg2,
 *   tcp_recv     sport = arg3 & 0xffff (local), dport = (arg3 >> 16) & 0xffff (remote)
 *   conn         conn, family = "ipv4" | "ipv6" (arg3 >> 32), sport, dport,
 *                old_state = arg1, new_state = arg2 (TCP state names: "ESTABLISHED", ...)
 *   retransmit   conn, seq = arg1, tcp_state = arg2 (name), sport, dport
 *   (tcp types   saddr, daddr: where the writer knows the connection's addresses)
 *   offcpu       reason = "blocked" | "preempted" (arg0 & 0xff), prev_state = arg0 >> 8,
 *                waker = arg1, runq = arg2 (run-queue delay, ns), holder_tid = arg3
 *   reclaim      pages = arg0, kind = "direct" | "memcg" (arg1), memcg = arg2, order = arg3
 *   faults       count = arg0, addr = arg1, last_addr = arg2, write_faults = arg3
 *   proc         proc_event = "exec" | "fork" | "exit" (arg0), ppid = arg1 (exec, exit) or
 *                child = arg1 (fork); exit: exit_code and signal from the wait status in ret
 *   other types  arg0..arg3 raw
 */
#ifndef KP_EVENTJSON_H
#define KP_EVENTJSON_H

#include <linux/types.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/event.h"
#include "common/util.h"

/* Optional per-process names; NULL or "" fields are left out. */
struct eventjson_meta {
	const char *comm;
	const char *service;
	const char *node;
};

/* Appends one JSON object (no newline) for ev. Never fails (out-of-memory aborts). */
void eventjson_write(struct kp_buf *out, const struct kp_event *ev,
		     const struct eventjson_meta *meta);

/* "read", "write", ... for a kp_type; "unknown" outside the enum. */
const char *eventjson_type_name(unsigned type);
/* The kp_type for a name ("write", also "WRITE"), or -1. */
int eventjson_type_from_name(const char *name, size_t len);

/*
 * Value names, indexed by the raw value (NULL where there is no name): the system calls the
 * probe times (x86-64 numbers), TCP states, address families. The store's symbol columns
 * (syscall, old_state, new_state, tcp_state, family) show the same names.
 */
#define EVENTJSON_NSYSCALLS 333
#define EVENTJSON_NTCPSTATES 14
#define EVENTJSON_NFAMILIES 11
extern const char *const eventjson_syscall_names[EVENTJSON_NSYSCALLS];
extern const char *const eventjson_tcp_state_names[EVENTJSON_NTCPSTATES];
extern const char *const eventjson_family_names[EVENTJSON_NFAMILIES];
/* The name of a value, or fallback when it has none. */
const char *eventjson_name(const char *const *tab, int n, uint64_t v, const char *fallback);

#endif
