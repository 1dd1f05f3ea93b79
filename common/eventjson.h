/*
 * eventjson.h - one kp_event as one JSON object: the field names every JSON output of kprobe
 * uses (the agent's NDJSON on stdout, the live WebSocket stream, query results that return raw
 * events), so a line from any of them parses the same way.
 *
 * Field mapping (integers are JSON numbers; u64 values above 2^53 lose nothing in C readers but
 * may in JavaScript, so addresses are hex strings):
 *
 *   every type   type  "read" | "write" | "fsync" | "tcp_send" | "tcp_recv" | "conn" |
 *                      "retransmit" | "offcpu" | "reclaim" | "faults" | "proc" (eventjson_type_name)
 *                ts    ts_ns (Unix epoch ns from the agent on)       dur   dur_ns
 *                pid, tid, cpu, ret                                  flags (only when non-zero)
 *                comm, service, node (only when the caller knows them: struct eventjson_meta)
 *   read, write  fd = arg0, bytes = arg1, syscall = arg2, inode = arg3
 *   fsync        fd = arg0, syscall = arg2, inode = arg3
 *   tcp_send,    conn = arg0, bytes = arg1, seq = arg2,
 *   tcp_recv     lport = arg3 & 0xffff, rport = (arg3 >> 16) & 0xffff
 *   conn         conn = arg0, old_state = arg1, new_state = arg2 (TCP_* numbers),
 *                sport = arg3 & 0xffff, dport = (arg3 >> 16) & 0xffff, family = arg3 >> 32
 *   retransmit   conn = arg0, seq = arg1, state = arg2, sport, dport (as conn)
 *   offcpu       reason = "blocked" | "preempted" (arg0 & 0xff), prev_state = arg0 >> 8,
 *                waker = arg1, rq_delay = arg2 (ns), cpu_holder = arg3
 *   reclaim      pages = arg0, kind = "direct" | "memcg" (arg1), memcg = arg2, order = arg3
 *   faults       count = arg0, first_addr = "0x..." (arg1), last_addr = "0x..." (arg2),
 *                write_faults = arg3
 *   proc         event = "exec" | "fork" | "exit" (arg0), ppid = arg1 (exec/exit) or
 *                child = arg1 (fork), pcomm = arg2..arg3 as a string, exit_code = ret (exit)
 *   other types  arg0..arg3 raw
 */
#ifndef KP_EVENTJSON_H
#define KP_EVENTJSON_H

#include <linux/types.h>
#include <stddef.h>

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

#endif
