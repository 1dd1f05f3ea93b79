// SPDX-License-Identifier: GPL-2.0
/*
 * capture.bpf.c - the kernel side of replay capture: for selected processes, one record per
 * system call the replay will serve or compare (bpf/capture.h), with the bytes the call moved.
 *
 * Hooks: sys_enter / sys_exit as tp_btf (raw_tp fallback chosen by the loader), and
 * sched_process_fork / exec / exit. Selection: the `pids` hash (tgid -> KP_CAP_PID_*), which
 * follows fork when KP_CAP_PID_FOLLOW is set, plus optional comm and cgroup-v2 sets for the agent's
 * replay.capture.* keys. Everything per syscall number (record it? which argument is the fd, where
 * the payload and the aux structures are) comes from the `descs` array that user space fills from
 * replay/sysc.c, so nothing here knows a syscall by name.
 *
 * A record is built in a per-CPU scratch slot (an ARRAY indexed by CPU: per-CPU arrays cap values
 * at 32 KiB) and sent with bpf_ringbuf_output, which takes a variable length; the copy from user
 * memory is bounded by max_bytes. The busy flag in the slot catches a nested or preempted run on
 * the same CPU: that record is dropped and counted, never corrupted.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "bpf/capture.h"

char LICENSE[] SEC("license") = "GPL";

#define S_IFMT	 00170000
#define S_IFSOCK 0140000
#define AF_INET	 2
#define AF_INET6 10

#define SCRATCH_DATA (3 * KP_CAP_MAX_PAYLOAD + 4096)

const volatile __u32 max_bytes = 4096;
const volatile __u32 n_comms = 0;
const volatile __u32 n_cgroups = 0;
const volatile char comms[KP_CAP_MAX_COMMS][16] = {};

/* x & mask, emitted as is: the compiler cannot drop it, so the verifier always sees the bound */
static __always_inline __u64 bound(__u64 x, const __u64 mask)
{
	asm volatile("%[x] &= %[m]" : [x] "+r"(x) : [m] "i"(mask));
	return x;
}

struct scratch {
	struct kp_cap_rec hdr;
	__u8 data[SCRATCH_DATA];
	__u32 busy;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set to the number of possible CPUs before load */
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KP_CAP_NR_MAX);
	__type(key, __u32);
	__type(value, struct kp_cap_desc);
} descs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u8);
} cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} enter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KP_CAP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += 1;
}

static __always_inline int comm_eq(const char *a, const volatile char *b)
{
	for (int i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return 0;
		if (!a[i])
			return 1;
	}
	return 1;
}

/* Is this process selected? Caches comm and cgroup matches in `pids`. */
static __always_inline int selected(__u32 tgid)
{
	__u8 *st = bpf_map_lookup_elem(&pids, &tgid);
	if (st)
		return (*st & 0x0f) == KP_CAP_PID_ACTIVE;
	if (n_comms) {
		char c[16];
		bpf_get_current_comm(c, sizeof(c));
		for (int i = 0; i < KP_CAP_MAX_COMMS; i++) {
			if (i >= n_comms)
				break;
			if (comm_eq(c, comms[i])) {
				__u8 v = KP_CAP_PID_ACTIVE;
				bpf_map_update_elem(&pids, &tgid, &v, BPF_NOEXIST);
				return 1;
			}
		}
	}
	if (n_cgroups) {
		__u64 id = bpf_get_current_cgroup_id();
		if (bpf_map_lookup_elem(&cgroups, &id))
			return 1;
	}
	return 0;
}

static __always_inline const struct kp_cap_desc *desc_of(__u64 nr)
{
	if (nr >= KP_CAP_NR_MAX)
		return 0;
	__u32 k = (__u32)nr;
	const struct kp_cap_desc *d = bpf_map_lookup_elem(&descs, &k);
	if (!d || !(d->flags & KP_CAPD_RECORD))
		return 0;
	return d;
}

/* args[i] for a small i read from a map (a switch keeps the verifier's bounds simple) */
static __always_inline __u64 arg_at(const __u64 *a, __u32 i)
{
	switch (i) {
	case 0:
		return a[0];
	case 1:
		return a[1];
	case 2:
		return a[2];
	case 3:
		return a[3];
	case 4:
		return a[4];
	default:
		return a[5];
	}
}

static __always_inline int argf_ok(const struct kp_cap_desc *d, const __u64 *args)
{
	if (!(d->flags & KP_CAPD_ARGF))
		return 1;
	__u32 v = (__u32)arg_at(args, d->argf_idx);
	for (int i = 0; i < 4; i++)
		if (d->argf_vals[i] != 0xffffffffu && d->argf_vals[i] == v)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ enter */

static __always_inline int on_enter(struct pt_regs *regs, long id)
{
	__u64 pt = bpf_get_current_pid_tgid();
	if (!desc_of((__u64)id) || !selected(pt >> 32))
		return 0;
	__u32 tid = (__u32)pt;
	__u64 ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&enter, &tid, &ts, BPF_ANY);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(cap_enter_btf, struct pt_regs *regs, long id)
{
	return on_enter(regs, id);
}

SEC("raw_tp/sys_enter")
int BPF_PROG(cap_enter_raw, struct pt_regs *regs, long id)
{
	return on_enter(regs, id);
}

/* ------------------------------------------------------------------ exit */

/* Copies up to n bytes of user memory to data[off..]; offsets and sizes are masked for the
 * verifier (callers keep off < KP_CAP_MAX_PAYLOAD*2 and n <= KP_CAP_MAX_PAYLOAD). */
static __always_inline long copy_user(struct scratch *s, __u32 off, __u32 n, const void *src)
{
	if (n > KP_CAP_MAX_PAYLOAD)
		n = KP_CAP_MAX_PAYLOAD;
	/* masks, not just comparisons: bounds the verifier keeps through any codegen */
	__u64 nn = bound(n, 2 * KP_CAP_MAX_PAYLOAD - 1), oo = bound(off, KP_CAP_MAX_PAYLOAD - 1);
	return bpf_probe_read_user(&s->data[oo], nn, src);
}

struct iovec_u {
	__u64 base, len;
};

static __always_inline struct scratch *scratch_cur(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&scratch, &cpu);
}

/*
 * The steps below are global functions: the verifier checks each once, on its own, instead of
 * once per path through the caller (the iovec loops times the aux kinds would not fit its
 * budget). Their arguments are plain scalars; the record under construction is found again in
 * this CPU's scratch slot, whose busy flag the caller holds.
 */

#define CAP_TRUNC_BIT (1 << 30)

/* Copies `total` bytes scattered over cnt iovecs at uptr to data[0..]; returns the bytes kept,
 * | CAP_TRUNC_BIT when some were cut. */
__noinline int cap_iov(__u64 uptr, __u64 cnt, __u64 total)
{
	struct scratch *s = scratch_cur();
	if (!s)
		return 0;
	__u32 off = 0, lim = max_bytes, trunc = 0;
	__u64 left = total;
	for (int i = 0; i < KP_CAP_MAX_IOV; i++) {
		if (i >= cnt || left == 0 || off >= lim)
			break;
		struct iovec_u v;
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(uptr + i * sizeof(v))))
			break;
		__u64 n = v.len < left ? v.len : left;
		__u64 room = lim - off;
		if (n > room) {
			n = room;
			trunc = CAP_TRUNC_BIT;
		}
		if (copy_user(s, off, (__u32)n, (void *)v.base))
			break;
		off += (__u32)n;
		left -= v.len < left ? v.len : left;
	}
	if (left)
		trunc = CAP_TRUNC_BIT;
	return (int)(off | trunc);
}

struct msghdr_u {
	__u64 name;
	__s32 namelen, pad0;
	__u64 iov, iovlen, control, controllen;
	__u32 flags, pad1;
};

static __always_inline __u32 copy_aux_user(struct scratch *s, __u32 at, __u32 n, __u64 src,
					   __u32 cap)
{
	if (!src || !n)
		return 0;
	if (n > cap)
		n = cap;
	if (n > KP_CAP_MAX_AUX)
		n = KP_CAP_MAX_AUX;
	__u64 nn = bound(n, 2 * KP_CAP_MAX_AUX - 1), aa = bound(at, 2 * KP_CAP_MAX_PAYLOAD - 1);
	if (bpf_probe_read_user(&s->data[aa], nn, (void *)src))
		return 0;
	return n;
}

static __always_inline void put_u32(struct scratch *s, __u32 at, __u32 v)
{
	at = bound(at, 2 * KP_CAP_MAX_PAYLOAD - 1);
	__builtin_memcpy(&s->data[at], &v, 4);
}

/* The aux blob at data[at..]; returns its length. */
__noinline int cap_aux(__u32 at, long ret)
{
	struct scratch *s = scratch_cur();
	if (!s)
		return 0;
	const struct kp_cap_desc *d = desc_of(s->hdr.nr);
	if (!d)
		return 0;
	const __u64 *a = s->hdr.args;
	__u32 n = 0, len = 0;
	__u64 p;
	switch (d->aux) {
	case KP_AUX_FIXED:
		if (ret < 0)
			return 0;
		return copy_aux_user(s, at, d->aux_size, arg_at(a, d->aux_arg), KP_CAP_MAX_AUX);
	case KP_AUX_SOCKADDR:
	case KP_AUX_SOCKOPT: {
		__u64 vp = d->aux == KP_AUX_SOCKOPT ? a[3] : arg_at(a, d->aux_arg);
		__u64 lp = d->aux == KP_AUX_SOCKOPT ? a[4] : arg_at(a, d->aux_arg + 1);
		if (ret < 0 || !lp)
			return 0;
		if (bpf_probe_read_user(&len, 4, (void *)lp))
			return 0;
		put_u32(s, at, len);
		n = copy_aux_user(s, at + 4, len, vp, d->aux == KP_AUX_SOCKOPT ? 256 : 128);
		return 4 + n;
	}
	case KP_AUX_POLL:
		if (a[1] > 128)
			return 0;
		return copy_aux_user(s, at, (__u32)a[1] * 8, a[0], 1024);
	case KP_AUX_EPOLL:
		if (ret <= 0)
			return 0;
		return copy_aux_user(s, at, (__u32)ret * 12, a[1], 1020);
	case KP_AUX_FDSETS: {
		__u64 nfds = a[0];
		if (nfds > 1024)
			nfds = 1024;
		__u32 setlen = (((__u32)nfds + 63) / 64) * 8;
		if (setlen > 128)
			setlen = 128;
		at = bound(at, 2 * KP_CAP_MAX_PAYLOAD - 1);
		__builtin_memset(&s->data[at], 0, 4 + 3 * 128 + 16);
		put_u32(s, at, setlen);
		__u32 o = at + 4;
		for (int i = 1; i <= 3; i++) {
			copy_aux_user(s, o, setlen, a[i], 128);
			o += setlen;
		}
		copy_aux_user(s, o, 16, a[4], 16);
		return 4 + 3 * setlen + 16;
	}
	case KP_AUX_MSG: {
		struct msghdr_u m;
		if (ret < 0 || bpf_probe_read_user(&m, sizeof(m), (void *)a[1]))
			return 0;
		__u32 nl = m.name ? (__u32)m.namelen : 0, cl = m.control ? (__u32)m.controllen : 0;
		if (nl > 128)
			nl = 128;
		if (cl > 512)
			cl = 512;
		put_u32(s, at, nl);
		put_u32(s, at + 4, m.flags);
		put_u32(s, at + 8, cl);
		put_u32(s, at + 12, 0);
		n = 16;
		n += copy_aux_user(s, at + n, nl, m.name, 128);
		n += copy_aux_user(s, at + n, cl, m.control, 512);
		return n;
	}
	case KP_AUX_IOCTL:
		if (ret < 0)
			return 0;
		p = a[2];
		switch ((__u32)a[1]) {
		case 0x5401: /* TCGETS */
			return copy_aux_user(s, at, 36, p, 36);
		case 0x5413: /* TIOCGWINSZ */
			return copy_aux_user(s, at, 8, p, 8);
		case 0x541B: /* FIONREAD */
			return copy_aux_user(s, at, 4, p, 4);
		}
		return 0;
	}
	return 0;
}

/* Inode kind (and connection, for inet sockets) of fd in the current task; 1 when a
 * struct kp_cap_sock was written at data[sock_at]. */
__noinline int cap_fd(long fd, __u32 sock_at)
{
	struct scratch *s = scratch_cur();
	if (!s || fd < 0)
		return 0;
	struct task_struct *t = (void *)bpf_get_current_task();
	struct files_struct *files = BPF_CORE_READ(t, files);
	if (!files)
		return 0;
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	if (!fdt || (unsigned long)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **arr = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &arr[fd]);
	if (!f)
		return 0;
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	__u16 mode = BPF_CORE_READ(ino, i_mode);
	s->hdr.fd_mode = mode & S_IFMT;
	s->hdr.fd_ino = BPF_CORE_READ(ino, i_ino);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *so = BPF_CORE_READ(f, private_data);
	struct sock *sk = so ? BPF_CORE_READ(so, sk) : 0;
	if (!sk)
		return 0;
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (fam != AF_INET && fam != AF_INET6)
		return 0;
	struct kp_cap_sock k = {};
	k.family = fam;
	k.type = BPF_CORE_READ(sk, sk_type);
	k.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	k.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (fam == AF_INET) {
		__u32 sa = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 da = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(k.saddr, &sa, 4);
		__builtin_memcpy(k.daddr, &da, 4);
	} else {
		BPF_CORE_READ_INTO(&k.saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&k.daddr, sk, __sk_common.skc_v6_daddr);
	}
	sock_at = bound(sock_at, 2 * KP_CAP_MAX_PAYLOAD - 1);
	__builtin_memcpy(&s->data[sock_at], &k, sizeof(k));
	return 1;
}

/* The payload at data[0..]; returns its length | CAP_TRUNC_BIT when cut. */
__noinline int cap_payload(long ret)
{
	struct scratch *s = scratch_cur();
	if (!s)
		return 0;
	const struct kp_cap_desc *d = desc_of(s->hdr.nr);
	if (!d)
		return 0;
	const __u64 *a = s->hdr.args;
	__u32 plen = 0, lim = max_bytes, trunc = 0;
	__u64 src = arg_at(a, d->pay_arg);
	switch (d->pay) {
	case KP_PAY_BUF:
	case KP_PAY_ARGLEN: {
		__u64 n = d->pay == KP_PAY_BUF ? (ret > 0 ? (__u64)ret : 0)
					       : arg_at(a, d->pay_arg + 1);
		if (d->pay == KP_PAY_ARGLEN && n > 128)
			n = 128;
		if (n > lim) {
			n = lim;
			trunc = CAP_TRUNC_BIT;
		}
		if (n && !copy_user(s, 0, (__u32)n, (void *)src))
			plen = (__u32)n;
		break;
	}
	case KP_PAY_IOV:
		if (ret > 0)
			return cap_iov(src, arg_at(a, d->pay_arg + 1), (__u64)ret);
		break;
	case KP_PAY_MSG:
		if (ret > 0) {
			struct msghdr_u m;
			if (!bpf_probe_read_user(&m, sizeof(m), (void *)src))
				return cap_iov(m.iov, m.iovlen, (__u64)ret);
		}
		break;
	case KP_PAY_STR: {
		long n = bpf_probe_read_user_str(&s->data[0], KP_CAP_MAX_PATH, (void *)src);
		if (n > 0)
			plen = (__u32)n;
		break;
	}
	}
	return (int)(plen | trunc);
}

static __always_inline struct scratch *scratch_get(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return 0;
	if (s->busy) {
		count(KP_CAP_CNT_DROP_RINGBUF);
		return 0;
	}
	s->busy = 1;
	return s;
}

static __always_inline void emit(struct scratch *s, __u64 len)
{
	len = (len + 7) & ~7ull;
	asm volatile("" : "+r"(len)); /* keep the clamp below: the verifier needs it */
	if (len > sizeof(s->hdr) + SCRATCH_DATA)
		len = sizeof(s->hdr) + SCRATCH_DATA;
	s->hdr.len = (__u32)len;
	if (bpf_ringbuf_output(&rb, s, len, 0))
		count(KP_CAP_CNT_DROP_RINGBUF);
	else
		count(KP_CAP_CNT_EMITTED);
	s->busy = 0;
}

static __always_inline void hdr_init(struct scratch *s, __u8 kind, __u64 pt)
{
	__builtin_memset(&s->hdr, 0, sizeof(s->hdr));
	s->hdr.kind = kind;
	s->hdr.pid = pt >> 32;
	s->hdr.tid = (__u32)pt;
	s->hdr.ts_exit = bpf_ktime_get_ns();
}

static __always_inline int on_exit(struct pt_regs *regs, long ret)
{
	__u64 pt = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pt;
	__u64 nr = BPF_CORE_READ(regs, orig_ax);
	const struct kp_cap_desc *d = desc_of(nr);
	if (!d)
		return 0;
	__u64 *tsp = bpf_map_lookup_elem(&enter, &tid);
	__u64 ts_enter = 0;
	if (tsp) {
		ts_enter = *tsp;
		bpf_map_delete_elem(&enter, &tid);
	} else if (!selected(pt >> 32)) {
		return 0;
	}
	__u64 a[6];
	a[0] = BPF_CORE_READ(regs, di);
	a[1] = BPF_CORE_READ(regs, si);
	a[2] = BPF_CORE_READ(regs, dx);
	a[3] = BPF_CORE_READ(regs, r10);
	a[4] = BPF_CORE_READ(regs, r8);
	a[5] = BPF_CORE_READ(regs, r9);
	if (!argf_ok(d, a))
		return 0;

	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	hdr_init(s, KP_CAP_CALL, pt);
	s->hdr.nr = (__u16)nr;
	s->hdr.ret = ret;
	s->hdr.ip = BPF_CORE_READ(regs, ip);
	s->hdr.ts_enter = ts_enter;
	if (!ts_enter)
		s->hdr.flags |= KP_CAP_F_NOENTER;
	for (int i = 0; i < 6; i++)
		s->hdr.args[i] = a[i];

	__u64 plen = (__u32)cap_payload(ret);
	__u8 flags = 0;
	if (plen & CAP_TRUNC_BIT)
		flags |= KP_CAP_F_TRUNC;
	plen &= CAP_TRUNC_BIT - 1;
	if (plen > KP_CAP_MAX_PAYLOAD)
		plen = KP_CAP_MAX_PAYLOAD;
	s->hdr.payload_len = (__u32)plen;

	/* aux */
	__u64 alen = (__u32)cap_aux((__u32)plen, ret);
	if (alen > KP_CAP_MAX_AUX)
		alen = KP_CAP_MAX_AUX;
	s->hdr.aux_len = (__u16)alen;

	/* fd description */
	__u64 sock_at = plen + alen;
	long fd = -1;
	if (d->flags & KP_CAPD_NEWFD)
		fd = ret;
	else if (d->flags & KP_CAPD_FD)
		fd = (long)(int)arg_at(a, d->fd_arg);
	if (fd >= 0 && cap_fd(fd, (__u32)sock_at)) {
		flags |= KP_CAP_F_SOCK;
		sock_at += KP_CAP_SOCK_LEN;
	}
	s->hdr.flags |= flags;
	if (flags & KP_CAP_F_TRUNC)
		count(KP_CAP_CNT_TRUNC);
	emit(s, KP_CAP_HDR_LEN + sock_at);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(cap_exit_btf, struct pt_regs *regs, long ret)
{
	return on_exit(regs, ret);
}

SEC("raw_tp/sys_exit")
int BPF_PROG(cap_exit_raw, struct pt_regs *regs, long ret)
{
	return on_exit(regs, ret);
}

/* ------------------------------------------------------------------ processes */

static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u8 *st = bpf_map_lookup_elem(&pids, &ptgid);
	if (!selected(ptgid))
		return 0;
	__u32 ctgid = BPF_CORE_READ(child, tgid), ctid = BPF_CORE_READ(child, pid);
	if (ctgid != ptgid && st && (*st & KP_CAP_PID_FOLLOW)) {
		__u8 v = KP_CAP_PID_ACTIVE | KP_CAP_PID_FOLLOW;
		bpf_map_update_elem(&pids, &ctgid, &v, BPF_ANY);
	}
	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	hdr_init(s, KP_CAP_FORK, bpf_get_current_pid_tgid());
	s->hdr.pid = ptgid;
	s->hdr.tid = BPF_CORE_READ(parent, pid);
	s->hdr.args[0] = ctid;
	s->hdr.args[1] = ctgid;
	if (ctgid == ptgid)
		s->hdr.flags |= KP_CAP_F_THREAD;
	emit(s, KP_CAP_HDR_LEN);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(cap_fork_btf, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child);
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(cap_fork_raw, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child);
}

static __always_inline int on_exec(struct task_struct *p, struct linux_binprm *bprm)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	__u8 *st = bpf_map_lookup_elem(&pids, &tgid);
	if (st && (*st & 0x0f) == KP_CAP_PID_PENDING) {
		__u8 v = KP_CAP_PID_ACTIVE | (*st & KP_CAP_PID_FOLLOW);
		bpf_map_update_elem(&pids, &tgid, &v, BPF_ANY);
	} else if (!selected(tgid)) {
		return 0;
	}
	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	hdr_init(s, KP_CAP_EXEC, bpf_get_current_pid_tgid());
	const char *fn = BPF_CORE_READ(bprm, filename);
	long n = bpf_probe_read_kernel_str(&s->data[0], 256, fn);
	__u64 plen = n > 0 ? (__u32)n : 0;
	s->hdr.payload_len = (__u32)plen;
	/* aux: the argument vector, already on the new stack (current is p, its mm the new one) */
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 a0 = mm ? BPF_CORE_READ(mm, arg_start) : 0, a1 = mm ? BPF_CORE_READ(mm, arg_end) : 0;
	__u64 alen = a1 > a0 ? a1 - a0 : 0;
	if (alen > KP_CAP_MAX_AUX)
		alen = KP_CAP_MAX_AUX;
	plen = bound(plen, 511);
	alen = bound(alen, 2 * KP_CAP_MAX_AUX - 1);
	if (alen && bpf_probe_read_user(&s->data[plen], alen, (const void *)a0) == 0)
		s->hdr.aux_len = (__u16)alen;
	/* args[0]: AT_BASE, where the dynamic loader was mapped (the auxv the kernel saved) */
	if (mm) {
		const __u64 *auxv =
			(const void *)mm + bpf_core_field_offset(struct mm_struct, saved_auxv);
		for (int i = 0; i < 28; i++) {
			__u64 kv[2];
			if (bpf_probe_read_kernel(kv, sizeof(kv), auxv + 2 * i) || kv[0] == 0)
				break;
			if (kv[0] == 7 /* AT_BASE */) {
				s->hdr.args[0] = kv[1];
				break;
			}
		}
	}
	emit(s, KP_CAP_HDR_LEN + plen + s->hdr.aux_len);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(cap_exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(p, bprm);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(cap_exec_raw, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(p, bprm);
}

static __always_inline int on_exit_task(struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	if (!selected(tgid))
		return 0;
	__u32 tid = BPF_CORE_READ(p, pid);
	bpf_map_delete_elem(&enter, &tid);
	struct scratch *s = scratch_get();
	if (!s)
		return 0;
	hdr_init(s, KP_CAP_EXIT, bpf_get_current_pid_tgid());
	s->hdr.pid = tgid;
	s->hdr.tid = tid;
	s->hdr.ret = BPF_CORE_READ(p, exit_code);
	emit(s, KP_CAP_HDR_LEN);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(cap_task_exit_btf, struct task_struct *p)
{
	return on_exit_task(p);
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(cap_task_exit_raw, struct task_struct *p)
{
	return on_exit_task(p);
}
