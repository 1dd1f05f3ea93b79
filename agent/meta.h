/*
 * meta.h - what the agent knows about the processes and TCP connections behind its events.
 *
 * Processes: pid -> struct wire_proc (comm, cmdline head, ppid, start time, cgroup path and id,
 * container id, Kubernetes pod uid, service), read from /proc on first sight, cached, re-read
 * after an exec, kept a grace period after the process exits so late events still find it.
 * A process gone before /proc could be read keeps what its PROC events said (comm, parent).
 * Connections: conn id -> struct wire_conn from CONN records, kept a grace period after close.
 * Both tables are bounded (least recently used entries are evicted when full) and a lookup on
 * the hot path makes no system call: only a first sight or an exec reads /proc.
 *
 * "fresh" out-parameters say whether a sink should send the metadata along with the event:
 * first sight, changed, or not sent for agent.metaResendSec.
 *
 * Not thread-safe: one meta per pipeline thread. Returned pointers stay valid until the next
 * call into the same meta.
 */
#ifndef KP_META_H
#define KP_META_H

#include <stddef.h>
#include <stdint.h>

#include "agent/wire.h"
#include "bpf/event.h"
#include "common/config.h"

#define META_MAX_PROCS 8192		       /* processes kept at once */
#define META_MAX_CONNS 32768		       /* connections kept at once */
#define META_GRACE_NS  (30ull * 1000000000ull) /* kept this long after exit / close */

struct meta;

/* Opens the tables. Fails with -EINVAL (message in err) on a malformed agent.serviceRules. */
int meta_open(struct meta **out, const struct kp_config *cfg, char *err, size_t errlen);
void meta_close(struct meta *m);

/*
 * The metadata of process pid (tgid), or NULL when nothing is known about it (gone before /proc
 * was read and no PROC event named it). now_ns: the event's time (epoch ns), used for resending.
 */
const struct wire_proc *meta_proc(struct meta *m, uint32_t pid, uint64_t now_ns, int *fresh);

/* Feeds a KP_PROC event: exec re-reads the process (and keeps the event's comm if it is gone),
 * fork seeds the child with the parent's cgroup, exit of a process starts its grace period. */
void meta_proc_event(struct meta *m, const struct kp_event *ev, uint64_t now_ns);

/* Feeds a CONN record and returns that connection's metadata (never NULL). */
const struct wire_conn *meta_conn_update(struct meta *m, const struct kp_conn_record *r,
					 uint64_t now_ns, int *fresh);
/* The metadata of connection `conn`, or NULL when no CONN record named it. */
const struct wire_conn *meta_conn(struct meta *m, uint64_t conn, uint64_t now_ns, int *fresh);

/* Drops processes and connections whose grace period is over. Call about once a second. */
void meta_expire(struct meta *m, uint64_t now_ns);

struct meta_stats {
	uint64_t procs, conns;		     /* entries now */
	uint64_t proc_reads;		     /* /proc reads (first sight, exec) */
	uint64_t proc_gone;		     /* ... that found the process gone */
	uint64_t proc_evicted, conn_evicted; /* dropped because a table was full */
};
void meta_stats(const struct meta *m, struct meta_stats *out);

/* ---- cgroup paths (pure functions, exposed for the tests) ---- */

/* What a cgroup path shows about containers and Kubernetes. Empty strings when it does not. */
struct meta_cgroup {
	char container[72]; /* 64-hex container id (docker, containerd, cri-o, podman) */
	char pod[128];	    /* pod uid as the path spells it (systemd paths use '_' for '-') */
	char qos[16];	    /* "guaranteed", "burstable" or "besteffort" when pod is set */
	char ns[64];	    /* Kubernetes namespace; only when the path shows one (rare) */
};
void meta_cgroup_parse(const char *path, struct meta_cgroup *out);

/*
 * Picks the cgroup path of a process from the text of /proc/PID/cgroup: the cgroup v1 memory
 * controller's path when memory is a v1 controller here, else the cgroup v2 ("0::") path.
 * Returns 2 (v1 memory), 1 (v2) or 0 (neither found; path set to "").
 */
int meta_cgroup_pick(const char *proc_cgroup, char *path, size_t pathlen);

#endif
