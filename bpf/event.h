/*
 * event.h - the one definition of a kprobe event, shared by the kernel side (the bpf programs), the
 * agent, the wire format and the appliance's store.
 *
 * A kp_event is 64 bytes, fixed, from the ring buffer to the disk. Its meaning per type lives in
 * the arg[] table below; nothing else in the project may reinterpret arg[] differently. The header
 * holds plain fixed-width structs and no includes: the kernel side gets __u64 & co. from
 * vmlinux.h, user space from <linux/types.h> (include it first).
 *
 * Timestamps: in the kernel and in the ring buffer, ts_ns is CLOCK_MONOTONIC (bpf_ktime_get_ns).
 * The agent rewrites it to Unix epoch ns before the event leaves the node; from the wire on, every
 * ts_ns is epoch ns. For episodes (a syscall, an off-CPU interval, a reclaim stall, a fault burst)
 * ts_ns is the start and dur_ns the length.
 */
#ifndef KP_EVENT_H
#define KP_EVENT_H

enum kp_type {
	KP_NONE = 0,
	KP_READ = 1,       /* arg0 fd, arg1 bytes asked, arg2 syscall nr, arg3 inode (0 if none) */
	KP_WRITE = 2,      /* arg0 fd, arg1 bytes asked, arg2 syscall nr, arg3 inode (0 if none) */
	KP_FSYNC = 3,      /* arg0 fd, arg1 0, arg2 syscall nr, arg3 inode */
	KP_TCP_SEND = 4,   /* arg0 conn id, arg1 bytes, arg2 TCP seq of the first byte (write_seq),
			    * arg3 KP_PORTS(local port, remote port) */
	KP_TCP_RECV = 5,   /* arg0 conn id, arg1 bytes, arg2 TCP seq of the first byte (copied_seq,
			    * in the sender's sequence space), arg3 KP_PORTS(local, remote) */
	KP_CONN = 6,       /* arg0 conn id, arg1 old state, arg2 new state (TCP_* numbers),
			    * arg3 KP_PORTS(sport, dport) | family << 32; addresses travel as
			    * connection metadata (struct kp_conn_info) */
	KP_RETRANSMIT = 7, /* arg0 conn id, arg1 seq, arg2 TCP state, arg3 KP_PORTS(sport, dport) */
	KP_OFFCPU = 8,     /* dur off-CPU time; arg0 reason (KP_OFFCPU_*) | prev_state << 8,
			    * arg1 waker tid (0 if none), arg2 run-queue delay ns,
			    * arg3 tid that held the CPU while it waited (the longest stretch on
			    * that CPU during the wait; the last one before it when unknown) */
	KP_RECLAIM = 9,    /* dur stall; arg0 pages reclaimed, arg1 KP_RECLAIM_DIRECT|MEMCG,
			    * arg2 memory cgroup id (kernfs id; 0 if unknown), arg3 allocation order */
	KP_FAULTS = 10,    /* dur span of the burst; arg0 fault count, arg1 first address,
			    * arg2 last address, arg3 write faults */
	KP_PROC = 11,      /* arg0 KP_PROC_EXEC|FORK|EXIT, arg1 parent pid (fork: child pid),
			    * arg2..arg3 comm (16 bytes, NUL padded); ret exit code on EXIT */
	KP_TYPE_MAX
};

#define KP_OFFCPU_BLOCKED   0 /* the thread went to sleep (I/O, lock, futex, poll) */
#define KP_OFFCPU_PREEMPTED 1 /* the thread was runnable and lost the CPU */

#define KP_RECLAIM_DIRECT 0
#define KP_RECLAIM_MEMCG  1

#define KP_PROC_EXEC 1
#define KP_PROC_FORK 2
#define KP_PROC_EXIT 3

/* flags */
#define KP_F_ERROR     0x01 /* ret < 0 */
#define KP_F_TRUNCATED 0x02 /* an episode cut short (agent restart, map full) */
#define KP_F_IPV6      0x04 /* CONN / TCP events on an AF_INET6 socket */
#define KP_F_THREAD    0x08 /* PROC: a thread, not a process (fork of a thread, exit of a thread) */

#define KP_PORTS(local, remote) ((__u64)(local) | ((__u64)(remote) << 16))

struct kp_event {       /* 64 bytes */
	__u64 ts_ns;    /* kernel: CLOCK_MONOTONIC; from the agent on: Unix epoch ns */
	__u64 dur_ns;   /* 0 for instantaneous events */
	__u32 pid, tid; /* tgid and thread id, root pid namespace */
	__u16 cpu;
	__u8 type;      /* enum kp_type */
	__u8 flags;     /* KP_F_* */
	__s32 ret;      /* syscall return value or -errno */
	__u64 arg[4];   /* meaning per type, see enum kp_type */
};

/*
 * CONN records are larger in the ring buffer: the event followed by both addresses. The agent
 * splits one into a kp_event and connection metadata (conn id -> 4-tuple), sent once per
 * connection beside the events. IPv4 addresses sit in the first 4 bytes, network order.
 */
struct kp_conn_record {
	struct kp_event ev;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Kernel-side counters, one slot per CPU in a PERCPU_ARRAY; the agent sums them. */
enum kp_counter {
	KP_CNT_EMITTED = 0, /* records committed to the ring buffer */
	KP_CNT_DROP_RINGBUF, /* ring buffer full: record lost */
	KP_CNT_DROP_MAP,     /* per-thread state map full: episode lost */
	KP_CNT_FILTERED,     /* events discarded by pid/comm/cgroup filters */
	KP_CNT_SHORT,        /* episodes under the minimum duration */
	KP_CNT_MAX
};

#endif
