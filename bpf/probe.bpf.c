// SPDX-License-Identifier: GPL-2.0
/*
 * probe.bpf.c - the kernel side of kprobe-agent: every program that turns kernel activity into
 * kp_event records (bpf/event.h) in one ring buffer. The user side is agent/probe.c, which picks
 * the programs to load (hooks, attach mode, features this kernel has) and sets the `const
 * volatile` settings below between open and load.
 *
 * Sources, all tracepoints (kprobe/fentry attachment is not available everywhere):
 *   syscalls     tp_btf/sys_enter + sys_exit filtered on the syscall id ("raw" mode), or the
 *                per-syscall tracepoints tp/syscalls/sys_{enter,exit}_* ("tracepoint" mode)
 *   tcp          tp_btf/sock_send_length, sock_recv_length, inet_sock_set_state,
 *                tcp_retransmit_skb
 *   sched        tp_btf/sched_switch, sched_wakeup, sched_wakeup_new
 *   faults       tp_btf/page_fault_user (x86), flushed on switch-out and exit
 *   memory       tp_btf/mm_vmscan_{direct,memcg}_reclaim_{begin,end}
 *   process      tp_btf/sched_process_{exec,fork,exit}
 *
 * Per-thread state (a syscall in flight, an off-CPU interval, a reclaim stall, a fault burst)
 * lives in one task-local storage map: a lookup is a pointer walk from the task (no hashing, no
 * lock), the kernel frees the entry when the task dies, and it cannot fill up the way a hash map
 * keyed by tid can. Records are reserved in the ring buffer and committed without waking the
 * consumer (BPF_RB_NO_WAKEUP) until `wakeup_bytes` are waiting; the agent also drains on a timer.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/connid.h"
#include "bpf/event.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET	     2
#define AF_INET6     10
#define MSG_PEEK     2
#define TASK_RUNNING 0
#define MAX_COMMS    8
#define MAX_IOV	     8

/* ------------------------------------------------------------------ syscall numbers per arch */

#if defined(__TARGET_ARCH_x86)
#define NR_read	     0
#define NR_write     1
#define NR_pread64   17
#define NR_pwrite64  18
#define NR_readv     19
#define NR_writev    20
#define NR_sendto    44
#define NR_recvfrom  45
#define NR_sendmsg   46
#define NR_recvmsg   47
#define NR_fsync     74
#define NR_fdatasync 75
#define SC_NR(r)     ((r)->orig_ax)
#define SC_ARG0(r)   ((r)->di)
#define SC_ARG1(r)   ((r)->si)
#define SC_ARG2(r)   ((r)->dx)
#elif defined(__TARGET_ARCH_arm64)
#define NR_read	     63
#define NR_write     64
#define NR_readv     65
#define NR_writev    66
#define NR_pread64   67
#define NR_pwrite64  68
#define NR_fsync     82
#define NR_fdatasync 83
#define NR_sendto    206
#define NR_recvfrom  207
#define NR_sendmsg   211
#define NR_recvmsg   212
#define SC_NR(r)     ((r)->syscallno)
#define SC_ARG0(r)   ((r)->regs[0])
#define SC_ARG1(r)   ((r)->regs[1])
#define SC_ARG2(r)   ((r)->regs[2])
#else
#error "probe.bpf.c: syscall numbers for this architecture are missing"
#endif

/* ------------------------------------------------------------------ settings (set before load) */

const volatile __u32 self_tgid = 0;	       /* the agent: never recorded */
const volatile __u64 min_ns[KP_TYPE_MAX] = {}; /* episodes shorter than this are counted "short" */
const volatile __u64 fault_window_ns = 10000000;
const volatile __u32 fault_min_count = 1;
const volatile __u8 filter_pids = 0;	/* 1: only tgids in pid_filter */
const volatile __u8 filter_cgroups = 0; /* 1: only tasks in a cgroup of cgroup_filter */
/* Comm lists: each name as two words, and a mask covering the name and its NUL (the bytes after
 * the NUL are stale on kernels that rename with strlcpy, so they are masked off). */
const volatile __u32 n_comms = 0; /* only these comms (0 = any) */
const volatile __u64 comms[MAX_COMMS][2] = {};
const volatile __u64 comms_mask[MAX_COMMS][2] = {};
const volatile __u32 n_excl = 0; /* never these comms */
const volatile __u64 excl[MAX_COMMS][2] = {};
const volatile __u64 excl_mask[MAX_COMMS][2] = {};
const volatile __u64 wakeup_bytes = 0;	  /* 0: let the kernel wake the consumer per record */
const volatile __u8 faults_on = 0;	  /* the fault hook is loaded: flush on switch/exit */
const volatile __u8 proc_on = 0;	  /* the process hook is loaded: emit exits */
const volatile __u8 have_rdonly_cast = 0; /* the kernel has the bpf_rdonly_cast kfunc */

/* Linux 6.2+: turns a pointer read with a probe read into a typed (BTF) pointer, so the fields
 * behind it can be loaded directly. Weak: on older kernels it resolves to nothing, and the
 * branch using it is dead code the verifier never sees (have_rdonly_cast = 0). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* ------------------------------------------------------------------ maps */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the agent before load */
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} pid_filter SEC(".maps");

/* kind: 0 the task's cgroup v2, 1 its v1 memory cgroup, 2 its v1 cpu cgroup (each hierarchy
 * numbers its kernfs nodes on its own, so the id alone could match the wrong one). */
struct cg_key {
	__u64 id;
	__u32 kind;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct cg_key);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

/* Everything one thread has in flight. */
struct tstate {
	/* a syscall between enter and exit */
	__u64 sc_ts, sc_a0, sc_a1, sc_a2;
	__u32 sc_nr; /* syscall nr + 1 while one is in flight, else 0 */
	__u32 waker;
	/* off CPU since out_ts (0: on CPU, or not seen leaving) */
	__u64 out_ts, wake_ts;
	__u32 out_state;
	__u32 out_reason;
	/* a reclaim stall */
	__u64 rc_ts;
	__u32 rc_order, rc_kind;
	/* a burst of page faults */
	__u64 f_first_ts, f_last_ts, f_first_addr, f_last_addr;
	__u32 f_count, f_writes;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tstate);
} tasks SEC(".maps");

/* ------------------------------------------------------------------ small helpers */

static __always_inline void count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &i);
	if (v)
		(*v)++;
}

static __always_inline void *rec_reserve(__u64 size)
{
	void *r = bpf_ringbuf_reserve(&rb, size, 0);
	if (!r)
		count(KP_CNT_DROP_RINGBUF);
	return r;
}

/*
 * Commits a record of `size` bytes. With a wake-up threshold, only the record that makes the
 * waiting data cross it wakes the consumer: a wake-up is an irq_work (a self-IPI, a VM exit
 * under virtualization), and forcing one per record while the consumer catches up cost more
 * than the rest of the record. The consumer also drains on a timer, so a missed crossing only
 * delays delivery.
 */
static __always_inline void rec_submit(void *r, __u64 size)
{
	__u64 flags = 0;
	if (wakeup_bytes) {
		__u64 avail = bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);
		flags = BPF_RB_NO_WAKEUP;
		if (avail >= wakeup_bytes && avail < wakeup_bytes + size + 8)
			flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(r, flags);
	count(KP_CNT_EMITTED);
}

static __always_inline void ev_init(struct kp_event *e, __u8 type, __u32 pid, __u32 tid, __u64 ts,
				    __u64 dur)
{
	e->ts_ns = ts;
	e->dur_ns = dur;
	e->pid = pid;
	e->tid = tid;
	e->cpu = bpf_get_smp_processor_id();
	e->type = type;
	e->flags = 0;
	e->ret = 0;
}

static __always_inline int comm_in(const __u64 c[2], int which)
{
	__u32 n = which ? n_excl : n_comms;
#pragma unroll
	for (int i = 0; i < MAX_COMMS; i++) {
		if (i >= n)
			break;
		__u64 w0 = which ? excl[i][0] : comms[i][0];
		__u64 w1 = which ? excl[i][1] : comms[i][1];
		__u64 m0 = which ? excl_mask[i][0] : comms_mask[i][0];
		__u64 m1 = which ? excl_mask[i][1] : comms_mask[i][1];
		if ((c[0] & m0) == w0 && (c[1] & m1) == w1)
			return 1;
	}
	return 0;
}

/* kernfs id of the cgroup of t in the v1 (or v2) hierarchy of controller `subsys`. */
static __always_inline __u64 task_css_id(struct task_struct *t, int subsys)
{
	struct css_set *cs = BPF_CORE_READ(t, cgroups);
	struct cgroup_subsys_state *css = NULL;
	if (!cs || bpf_core_read(&css, sizeof(css), &cs->subsys[subsys]) || !css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

static __always_inline __u64 task_memcg_id(struct task_struct *t)
{
	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		return 0;
	return task_css_id(t, bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id));
}

static __always_inline int cgroup_pass(void)
{
	struct cg_key k = {.id = bpf_get_current_cgroup_id(), .kind = 0};
	if (bpf_map_lookup_elem(&cgroup_filter, &k))
		return 1;
	struct task_struct *t = bpf_get_current_task_btf();
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id)) {
		k.kind = 1;
		k.id = task_css_id(t, bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id));
		if (k.id && bpf_map_lookup_elem(&cgroup_filter, &k))
			return 1;
	}
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, cpu_cgrp_id)) {
		k.kind = 2;
		k.id = task_css_id(t, bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id));
		if (k.id && bpf_map_lookup_elem(&cgroup_filter, &k))
			return 1;
	}
	return 0;
}

/*
 * Whether the current task is recorded: never the agent, then the pid, comm and cgroup
 * filters (each only when configured; the settings are constants to the verifier, so an unused
 * filter costs nothing). A miss is counted as "filtered".
 */
static __always_inline int pass_current(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;
	if (tgid == self_tgid)
		goto out;
	if (filter_pids && !bpf_map_lookup_elem(&pid_filter, &tgid))
		goto out;
	if (n_comms || n_excl) {
		/* The process's name, not the thread's: threads may rename themselves, and io_uring
		 * workers are called iou-wrk-N (kprobed's WAL fsyncs run on them). Two direct loads
		 * from the group leader: cheaper than bpf_get_current_comm's copy. */
		struct task_struct *t = bpf_get_current_task_btf()->group_leader;
		__u64 c[2] = {*(__u64 *)&t->comm[0], *(__u64 *)&t->comm[8]};
		if (n_excl && comm_in(c, 1))
			goto out;
		if (n_comms && !comm_in(c, 0))
			goto out;
	}
	if (filter_cgroups && !cgroup_pass())
		goto out;
	return 1;
out:
	count(KP_CNT_FILTERED);
	return 0;
}

static __always_inline struct tstate *state_get(struct task_struct *t, int create)
{
	return bpf_task_storage_get(&tasks, t, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

/* ------------------------------------------------------------------ syscalls */

static __always_inline int sc_kind(long nr)
{
	switch (nr) {
	case NR_read:
	case NR_pread64:
	case NR_readv:
	case NR_recvfrom:
	case NR_recvmsg:
		return KP_READ;
	case NR_write:
	case NR_pwrite64:
	case NR_writev:
	case NR_sendto:
	case NR_sendmsg:
		return KP_WRITE;
	case NR_fsync:
	case NR_fdatasync:
		return KP_FSYNC;
	}
	return 0;
}

static __always_inline int sc_enter(long nr, __u64 a0, __u64 a1, __u64 a2)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!pass_current(id))
		return 0;
	struct tstate *s = state_get(bpf_get_current_task_btf(), 1);
	if (!s) {
		count(KP_CNT_DROP_MAP);
		return 0;
	}
	s->sc_a0 = a0;
	s->sc_a1 = a1;
	s->sc_a2 = a2;
	s->sc_nr = nr + 1;
	s->sc_ts = bpf_ktime_get_ns();
	return 0;
}

/* Sum of the iovec lengths (the first MAX_IOV of them; *more is set when there are more). */
static __always_inline __u64 iov_bytes(const struct iovec *iov, __u64 cnt, int *more)
{
	__u64 sum = 0;
	*more = cnt > MAX_IOV;
#pragma unroll
	for (int i = 0; i < MAX_IOV; i++) {
		if (i >= cnt)
			break;
		struct iovec v;
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i]))
			break;
		sum += v.iov_len;
	}
	return sum;
}

/*
 * Inode number of the file behind fd in the current task, 0 when not resolvable. The task,
 * files and fdtable are walked with direct (BTF) loads, which cost a fraction of a probe read
 * each; the fd array slot needs a probe read; file -> inode -> i_ino are direct loads again
 * after bpf_rdonly_cast, or two more probe reads on kernels without it (~30 ns each here).
 * (Caching the last file pointer would save those, but a closed file's memory is soon reused
 * for the next one opened, and the cache would then name the wrong inode.)
 */
static __always_inline __u64 fd_inode(__u64 fd)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct files_struct *files = t->files;
	if (!files)
		return 0;
	struct fdtable *fdt = files->fdt;
	if (!fdt || fd >= fdt->max_fds)
		return 0;
	struct file *f = NULL;
	if (bpf_core_read(&f, sizeof(f), &fdt->fd[fd]) || !f)
		return 0;
	if (have_rdonly_cast) {
		struct file *bf = bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file));
		return bf->f_inode->i_ino;
	}
	return BPF_CORE_READ(f, f_inode, i_ino);
}

static __always_inline int sc_exit(long nr, long ret)
{
	struct tstate *s = state_get(bpf_get_current_task_btf(), 0);
	if (!s || s->sc_nr != nr + 1)
		return 0;
	s->sc_nr = 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 dur = now - s->sc_ts;
	int kind = sc_kind(nr);
	if (kind <= 0 || kind >= KP_TYPE_MAX)
		return 0;
	if (dur < min_ns[kind]) {
		count(KP_CNT_SHORT);
		return 0;
	}
	struct kp_event *e = rec_reserve(sizeof(*e));
	if (!e)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	ev_init(e, kind, id >> 32, (__u32)id, s->sc_ts, dur);
	e->ret = ret;
	if (ret < 0)
		e->flags |= KP_F_ERROR;
	__u64 bytes = s->sc_a2, fd = s->sc_a0;
	int more = 0;
	if (nr == NR_readv || nr == NR_writev) {
		bytes = iov_bytes((const struct iovec *)s->sc_a1, s->sc_a2, &more);
	} else if (nr == NR_recvmsg || nr == NR_sendmsg) {
		struct user_msghdr m = {};
		bytes = 0;
		if (!bpf_probe_read_user(&m, sizeof(m), (void *)s->sc_a1))
			bytes = iov_bytes(m.msg_iov, m.msg_iovlen, &more);
	} else if (kind == KP_FSYNC) {
		bytes = 0;
	}
	if (more)
		e->flags |= KP_F_TRUNCATED;
	e->arg[0] = (__u32)fd;
	e->arg[1] = bytes;
	e->arg[2] = nr;
	e->arg[3] = fd_inode((__u32)fd);
	rec_submit(e, sizeof(*e));
	return 0;
}

/* "raw" mode: every syscall passes here, so the id is checked before anything else. */
SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter_raw, struct pt_regs *regs, long nr)
{
	if (!sc_kind(nr))
		return 0;
	return sc_enter(nr, SC_ARG0(regs), SC_ARG1(regs), SC_ARG2(regs));
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_raw, struct pt_regs *regs, long ret)
{
	long nr = SC_NR(regs);
	if (!sc_kind(nr))
		return 0;
	return sc_exit(nr, ret);
}

/* "tracepoint" mode: the kernel calls only the programs of the syscalls asked for. The record
 * layout is the stable one of the tracepoint format files (id at 8, args / ret at 16). */
struct sc_enter_rec {
	__u64 common;
	int nr;
	int pad;
	__u64 args[6];
};
struct sc_exit_rec {
	__u64 common;
	int nr;
	int pad;
	long ret;
};

/* The kernel refuses a program that reads past the record (-EACCES at attach): fsync and
 * fdatasync have one argument, the others at least three. */
#define SC_TRACEPOINT_ARGS(name, a1, a2)                                                           \
	SEC("tp/syscalls/sys_enter_" #name)                                                        \
	int tp_enter_##name(struct sc_enter_rec *ctx)                                              \
	{                                                                                          \
		return sc_enter(NR_##name, ctx->args[0], a1, a2);                                  \
	}                                                                                          \
	SEC("tp/syscalls/sys_exit_" #name)                                                         \
	int tp_exit_##name(struct sc_exit_rec *ctx)                                                \
	{                                                                                          \
		return sc_exit(NR_##name, ctx->ret);                                               \
	}

#define SC_TRACEPOINT(name)  SC_TRACEPOINT_ARGS(name, ctx->args[1], ctx->args[2])
#define SC_TRACEPOINT1(name) SC_TRACEPOINT_ARGS(name, 0, 0)

SC_TRACEPOINT(read)
SC_TRACEPOINT(pread64)
SC_TRACEPOINT(readv)
SC_TRACEPOINT(recvfrom)
SC_TRACEPOINT(recvmsg)
SC_TRACEPOINT(write)
SC_TRACEPOINT(pwrite64)
SC_TRACEPOINT(writev)
SC_TRACEPOINT(sendto)
SC_TRACEPOINT(sendmsg)
SC_TRACEPOINT1(fsync)
SC_TRACEPOINT1(fdatasync)

/* ------------------------------------------------------------------ TCP */

struct tuple {
	struct kp_endpoint local, remote;
	__u16 family;
	__u8 laddr[16], raddr[16]; /* as the socket holds them (IPv4: first 4 bytes) */
};

/* Reads the 4-tuple of a TCP socket. Returns 0, or -1 when it is not an inet TCP socket. */
static __always_inline int sock_tuple(const struct sock *sk, struct tuple *t)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return -1;
	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	/* A socket reset while its send was in flight (the peer had gone: the answer drew an RST)
	 * has its local port number cleared by the time the send returns; inet_sport keeps it,
	 * and with it the connection id both ends agree on. */
	if (!lport)
		lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (t->family == AF_INET) {
		__u32 la = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 ra = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		kp_endpoint_v4(&t->local, la, lport);
		kp_endpoint_v4(&t->remote, ra, rport);
		__builtin_memset(t->laddr, 0, 16);
		__builtin_memset(t->raddr, 0, 16);
		__builtin_memcpy(t->laddr, &la, 4);
		__builtin_memcpy(t->raddr, &ra, 4);
	} else if (t->family == AF_INET6) {
		BPF_CORE_READ_INTO(&t->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&t->raddr, sk, __sk_common.skc_v6_daddr);
		__builtin_memcpy(&t->local.a0, t->laddr, 8);
		__builtin_memcpy(&t->local.a1, t->laddr + 8, 8);
		__builtin_memcpy(&t->remote.a0, t->raddr, 8);
		__builtin_memcpy(&t->remote.a1, t->raddr + 8, 8);
		t->local.port = lport;
		t->remote.port = rport;
	} else {
		return -1;
	}
	return 0;
}

static __always_inline int tcp_io(struct sock *sk, int len, __u8 type)
{
	if (len <= 0)
		return 0;
	struct tuple t;
	if (sock_tuple(sk, &t))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if (!pass_current(id))
		return 0;
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u32 end =
		type == KP_TCP_SEND ? BPF_CORE_READ(tp, write_seq) : BPF_CORE_READ(tp, copied_seq);
	struct kp_event *e = rec_reserve(sizeof(*e));
	if (!e)
		return 0;
	ev_init(e, type, id >> 32, (__u32)id, bpf_ktime_get_ns(), 0);
	e->ret = len;
	if (t.family == AF_INET6)
		e->flags |= KP_F_IPV6;
	e->arg[0] = kp_connid(&t.local, &t.remote);
	e->arg[1] = len;
	e->arg[2] = (__u32)(end - (__u32)len);
	e->arg[3] = KP_PORTS(t.local.port, t.remote.port);
	rec_submit(e, sizeof(*e));
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tcp_send, struct sock *sk, int ret, int flags)
{
	return tcp_io(sk, ret, KP_TCP_SEND);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tcp_recv, struct sock *sk, int ret, int flags)
{
	if (flags & MSG_PEEK) /* nothing was consumed: copied_seq did not move */
		return 0;
	return tcp_io(sk, ret, KP_TCP_RECV);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcp_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct tuple t;
	if (sock_tuple(sk, &t))
		return 0;
	/* CLOSE -> SYN_SENT happens before connect() picks the local port: no 4-tuple yet. */
	if (!t.local.port)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if (!pass_current(id))
		return 0;
	struct kp_conn_record *r = rec_reserve(sizeof(*r));
	if (!r)
		return 0;
	ev_init(&r->ev, KP_CONN, id >> 32, (__u32)id, bpf_ktime_get_ns(), 0);
	if (t.family == AF_INET6)
		r->ev.flags |= KP_F_IPV6;
	r->ev.arg[0] = kp_connid(&t.local, &t.remote);
	r->ev.arg[1] = oldstate;
	r->ev.arg[2] = newstate;
	r->ev.arg[3] = KP_PORTS(t.local.port, t.remote.port) | (__u64)t.family << 32;
	__builtin_memcpy(r->saddr, t.laddr, 16);
	__builtin_memcpy(r->daddr, t.raddr, 16);
	rec_submit(r, sizeof(*r));
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	struct tuple t;
	if (sock_tuple(sk, &t))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if (!pass_current(id))
		return 0;
	struct tcp_skb_cb *cb = (struct tcp_skb_cb *)BPF_CORE_READ(skb, cb);
	__u32 seq = 0;
	bpf_core_read(&seq, sizeof(seq), &cb->seq);
	struct kp_event *e = rec_reserve(sizeof(*e));
	if (!e)
		return 0;
	ev_init(e, KP_RETRANSMIT, id >> 32, (__u32)id, bpf_ktime_get_ns(), 0);
	if (t.family == AF_INET6)
		e->flags |= KP_F_IPV6;
	e->arg[0] = kp_connid(&t.local, &t.remote);
	e->arg[1] = seq;
	e->arg[2] = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->arg[3] = KP_PORTS(t.local.port, t.remote.port);
	rec_submit(e, sizeof(*e));
	return 0;
}

/* ------------------------------------------------------------------ page faults */

static __always_inline void faults_flush(struct tstate *s, __u32 pid, __u32 tid)
{
	__u32 n = s->f_count;
	s->f_count = 0;
	if (n < fault_min_count) {
		count(KP_CNT_SHORT);
		return;
	}
	struct kp_event *e = rec_reserve(sizeof(*e));
	if (!e)
		return;
	ev_init(e, KP_FAULTS, pid, tid, s->f_first_ts, s->f_last_ts - s->f_first_ts);
	e->arg[0] = n;
	e->arg[1] = s->f_first_addr;
	e->arg[2] = s->f_last_addr;
	e->arg[3] = s->f_writes;
	rec_submit(e, sizeof(*e));
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(fault_user, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!pass_current(id))
		return 0;
	struct tstate *s = state_get(bpf_get_current_task_btf(), 1);
	if (!s) {
		count(KP_CNT_DROP_MAP);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	if (s->f_count && now - s->f_first_ts >= fault_window_ns)
		faults_flush(s, id >> 32, (__u32)id);
	if (!s->f_count) {
		s->f_first_ts = now;
		s->f_first_addr = address;
		s->f_writes = 0;
	}
	s->f_count++;
	s->f_last_ts = now;
	s->f_last_addr = address;
	if (error_code & 2) /* X86_PF_WRITE */
		s->f_writes++;
	return 0;
}

/* ------------------------------------------------------------------ scheduler */

struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

static __always_inline __u32 task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return BPF_CORE_READ((struct task_struct___old *)t, state);
}

/*
 * Who ran on each CPU lately: the last RUNHIST switch-ins (when, which thread). When a thread
 * gets the CPU back after waiting, the thread that held the CPU is the one that ran longest in
 * one stretch during the wait -- not merely the last one before it (a kernel worker that ran
 * for a few microseconds last would take the blame for a wait spent behind a CPU hog).
 */
#define RUNHIST 32
struct runhist {
	__u32 head; /* next slot */
	__u32 pad;
	__u64 ts[RUNHIST];
	__u32 tid[RUNHIST];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct runhist);
} runhist SEC(".maps");

/* The thread with the longest stretch on this CPU within [from, now], else fallback. */
static __always_inline __u32 cpu_holder(struct runhist *h, __u64 from, __u64 now, __u32 fallback)
{
	if (!h)
		return fallback;
	__u32 best = fallback;
	__u64 best_run = 0, end = now;
	for (__u32 k = 0; k < RUNHIST; k++) {
		__u32 i = (h->head - 1 - k) & (RUNHIST - 1);
		__u64 start = h->ts[i];
		if (!start || end <= from)
			break;
		__u64 run = end - (start > from ? start : from);
		if (h->tid[i] && run > best_run) { /* tid 0: the CPU was idle, nobody's fault */
			best_run = run;
			best = h->tid[i];
		}
		end = start;
	}
	return best;
}

static __always_inline void runhist_note(struct runhist *h, __u64 now, __u32 tid)
{
	if (!h)
		return;
	__u32 i = h->head & (RUNHIST - 1);
	h->ts[i] = now;
	h->tid[i] = tid;
	h->head++;
}

/*
 * On the switch-out of prev (still `current` here): remember when and why it left. On the
 * switch-in of next: if it was seen leaving, emit the off-CPU episode with the victim's ids,
 * its waker and run-queue delay, and the thread that held the CPU while it waited.
 */
static __always_inline void switch_out(bool preempt, struct task_struct *prev, __u64 now)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!(__u32)id || !pass_current(id)) /* the idle task never waits */
		return;
	struct tstate *s = state_get(prev, 1);
	if (!s) {
		count(KP_CNT_DROP_MAP);
		return;
	}
	__u32 st = task_state(prev);
	s->out_ts = now;
	s->out_state = st;
	s->out_reason = (preempt || st == TASK_RUNNING) ? KP_OFFCPU_PREEMPTED : KP_OFFCPU_BLOCKED;
	s->wake_ts = 0;
	s->waker = 0;
	if (faults_on && s->f_count && now - s->f_first_ts >= fault_window_ns)
		faults_flush(s, id >> 32, (__u32)id);
}

static __always_inline void switch_in(struct task_struct *prev, struct task_struct *next, __u64 now,
				      struct runhist *h)
{
	__u32 tid = next->pid;
	if (!tid)
		return;
	struct tstate *s = state_get(next, 0);
	if (!s || !s->out_ts)
		return;
	__u64 out = s->out_ts;
	s->out_ts = 0;
	__u64 dur = now - out;
	if (dur < min_ns[KP_OFFCPU]) {
		count(KP_CNT_SHORT);
		return;
	}
	struct kp_event *e = rec_reserve(sizeof(*e));
	if (!e)
		return;
	ev_init(e, KP_OFFCPU, next->tgid, tid, out, dur);
	__u64 ready = out;
	if (s->out_reason == KP_OFFCPU_BLOCKED && s->wake_ts)
		ready = s->wake_ts;
	e->arg[0] = s->out_reason | (__u64)s->out_state << 8;
	e->arg[1] = s->waker;
	e->arg[2] = now > ready ? now - ready : 0;
	e->arg[3] = cpu_holder(h, ready, now, prev->pid);
	rec_submit(e, sizeof(*e));
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 zero = 0;
	struct runhist *h = bpf_map_lookup_elem(&runhist, &zero);
	switch_out(preempt, prev, now);
	switch_in(prev, next, now, h);
	runhist_note(h, now, next->pid);
	return 0;
}

/* Loaded instead of sched_switch when faults are on and off-CPU episodes are off: only flushes
 * a leaving thread's expired fault burst. */
SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch_faults, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct tstate *s = state_get(prev, 0);
	if (!s || !s->f_count)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	if (now - s->f_first_ts >= fault_window_ns)
		faults_flush(s, prev->tgid, prev->pid);
	return 0;
}

static __always_inline int on_wakeup(struct task_struct *p)
{
	struct tstate *s = state_get(p, 0);
	if (!s || !s->out_ts || s->wake_ts)
		return 0;
	s->wake_ts = bpf_ktime_get_ns();
	s->waker = (__u32)bpf_get_current_pid_tgid();
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
	return on_wakeup(p);
}

/* A new task waits from its first wake-up until it first runs: an episode of pure run-queue
 * delay, woken by its parent. */
SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!pass_current(id))
		return 0;
	struct tstate *s = state_get(p, 1);
	if (!s) {
		count(KP_CNT_DROP_MAP);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	s->out_ts = now;
	s->wake_ts = now;
	s->waker = (__u32)id;
	s->out_state = 0;
	s->out_reason = KP_OFFCPU_BLOCKED;
	return 0;
}

/* ------------------------------------------------------------------ reclaim */

static __always_inline int reclaim_begin(int order, __u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!pass_current(id))
		return 0;
	struct tstate *s = state_get(bpf_get_current_task_btf(), 1);
	if (!s) {
		count(KP_CNT_DROP_MAP);
		return 0;
	}
	s->rc_ts = bpf_ktime_get_ns();
	s->rc_order = order;
	s->rc_kind = kind;
	return 0;
}

static __always_inline int reclaim_end(unsigned long pages, __u32 kind)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct tstate *s = state_get(t, 0);
	if (!s || !s->rc_ts || s->rc_kind != kind)
		return 0;
	__u64 start = s->rc_ts;
	s->rc_ts = 0;
	__u64 dur = bpf_ktime_get_ns() - start;
	if (dur < min_ns[KP_RECLAIM]) {
		count(KP_CNT_SHORT);
		return 0;
	}
	struct kp_event *e = rec_reserve(sizeof(*e));
	if (!e)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	ev_init(e, KP_RECLAIM, id >> 32, (__u32)id, start, dur);
	e->arg[0] = pages;
	e->arg[1] = kind;
	e->arg[2] = task_memcg_id(t);
	e->arg[3] = s->rc_order;
	rec_submit(e, sizeof(*e));
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(direct_reclaim_begin, int order)
{
	return reclaim_begin(order, KP_RECLAIM_DIRECT);
}

SEC("tp_btf/mm_vmscan_direct_reclaim_end")
int BPF_PROG(direct_reclaim_end, unsigned long nr_reclaimed)
{
	return reclaim_end(nr_reclaimed, KP_RECLAIM_DIRECT);
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(memcg_reclaim_begin, int order)
{
	return reclaim_begin(order, KP_RECLAIM_MEMCG);
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(memcg_reclaim_end, unsigned long nr_reclaimed)
{
	return reclaim_end(nr_reclaimed, KP_RECLAIM_MEMCG);
}

/* ------------------------------------------------------------------ process lifecycle */

static __always_inline void proc_emit(struct task_struct *t, __u32 what, __u64 arg1, int ret,
				      __u8 flags)
{
	struct kp_event *e = rec_reserve(sizeof(*e));
	if (!e)
		return;
	ev_init(e, KP_PROC, BPF_CORE_READ(t, tgid), BPF_CORE_READ(t, pid), bpf_ktime_get_ns(), 0);
	e->flags = flags;
	e->ret = ret;
	e->arg[0] = what;
	e->arg[1] = arg1;
	e->arg[2] = 0;
	e->arg[3] = 0;
	BPF_CORE_READ_STR_INTO((char(*)[16]) & e->arg[2], t, comm);
	rec_submit(e, sizeof(*e));
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(proc_exec, struct task_struct *p)
{
	if (!pass_current(bpf_get_current_pid_tgid()))
		return 0;
	proc_emit(p, KP_PROC_EXEC, BPF_CORE_READ(p, real_parent, tgid), 0, 0);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(proc_fork, struct task_struct *parent, struct task_struct *child)
{
	if (!pass_current(bpf_get_current_pid_tgid()))
		return 0;
	__u8 flags = BPF_CORE_READ(child, tgid) == BPF_CORE_READ(parent, tgid) ? KP_F_THREAD : 0;
	proc_emit(parent, KP_PROC_FORK, BPF_CORE_READ(child, pid), 0, flags);
	return 0;
}

/* Loaded when the process or the fault hook is on: a dying thread's fault burst is flushed
 * here, so nothing stays behind in its (about to be freed) state. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(proc_exit, struct task_struct *p)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (faults_on) {
		struct tstate *s = state_get(p, 0);
		if (s && s->f_count)
			faults_flush(s, id >> 32, (__u32)id);
	}
	if (!proc_on || !pass_current(id))
		return 0;
	__u32 pid = BPF_CORE_READ(p, pid), tgid = BPF_CORE_READ(p, tgid);
	proc_emit(p, KP_PROC_EXIT, BPF_CORE_READ(p, real_parent, tgid), BPF_CORE_READ(p, exit_code),
		  pid != tgid ? KP_F_THREAD : 0);
	return 0;
}
