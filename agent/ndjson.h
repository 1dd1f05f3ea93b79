/*
 * ndjson.h - the stdout sink of kprobe-agent (--stdout): one JSON object per event and line.
 *
 *   {"type":"write","ts":1732269600123456789,"dur":5120,"pid":4721,"tid":4721,"cpu":1,
 *    "comm":"postgres","ret":4321,"fd":7,"bytes":4321,"syscall":"write","inode":1835011,
 *    "service":"postgres","cgroup":"/system.slice/postgresql.service"}
 *
 * Common fields: type (read, write, fsync, tcp_send, tcp_recv, conn, retransmit, offcpu,
 * reclaim, faults, proc), ts (epoch ns), dur (ns), pid, tid, cpu, comm, ret. Per type:
 *   read/write         fd, bytes (asked), syscall (name), inode
 *   fsync              fd, syscall ("fsync"|"fdatasync"), inode
 *   tcp_send/tcp_recv  conn (16 hex digits), bytes, seq, sport, dport (local, remote),
 *                      saddr, daddr (when the connection's CONN record was seen)
 *   conn               conn, family ("ipv4"|"ipv6"), sport, dport, saddr, daddr, old_state,
 *                      new_state ("ESTABLISHED", ...)
 *   retransmit         conn, seq, tcp_state, sport, dport (+ saddr, daddr when known)
 *   offcpu             reason ("preempted"|"blocked"), waker, runq, holder_tid, prev_state
 *   reclaim            pages, kind ("direct"|"memcg"), memcg, order
 *   faults             count, addr, last_addr, write_faults
 *   proc               proc_event ("exec"|"fork"|"exit"), ppid (exec, exit), child and thread
 *                      (fork), exit_code and signal (exit)
 * The names are the event store's column names (FROM events) and the live stream's
 * (common/eventjson.h); tests/integration/fields.c holds the three to it.
 * plus "truncated":true when the kernel cut an episode or a byte count short, and the process
 * metadata when known and not empty: service, container, pod, cgroup.
 *
 * Lines are buffered and written in large chunks (on agent.batchMs ticks, when 64 KiB are
 * waiting, and on close).
 */
#ifndef KP_NDJSON_H
#define KP_NDJSON_H

#include "agent/sink.h"
#include "common/util.h"

/* Makes *out a sink writing NDJSON to fd (the sink does not close fd). Returns 0. */
int ndjson_sink_open(struct sink *out, int fd);

/* Appends the JSON object of one event (no newline) to b; what the sink writes per line. */
void ndjson_format(struct kp_buf *b, const struct kp_event *ev, const struct wire_proc *proc,
		   const struct wire_conn *conn);

#endif
