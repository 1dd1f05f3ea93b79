/*
 * sysc.c - the table of recorded / served system calls (see sysc.h), the kernel capture
 * descriptors derived from it, and the replay's seccomp program.
 *
 * Why these calls: a replay must answer every call whose result depends on the world outside the
 * program (file and socket contents, readiness, clocks, random bytes, the machine's identity), must
 * see every call that changes the fd table (so numbers stay those of the recording), and must see
 * every output it compares. Everything else (memory, threads, signals, futexes, process control)
 * runs for real and unobserved, at native speed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "replay/sysc.h"

#define R  KP_CAPD_RECORD
#define F  KP_CAPD_FD
#define NF KP_CAPD_NEWFD
#define AF KP_CAPD_ARGF

#define CAP(...) CAP_(__VA_ARGS__)
#define CAP_(fl, fda, py, pa, ax, aa, as)                                                          \
	{                                                                                          \
		.flags = R | (fl), .fd_arg = (fda), .pay = (py), .pay_arg = (pa), .aux = (ax),     \
		.aux_arg = (aa), .aux_size = (as)                                                  \
	}
#define CAPF(...) CAPF_(__VA_ARGS__)
#define CAPF_(fl, fda, idx, v0, v1, v2, ax, aa)                                                    \
	{                                                                                          \
		.flags = R | AF | (fl), .fd_arg = (fda), .aux = (ax), .aux_arg = (aa),             \
		.argf_idx = (idx), .argf_vals = {                                                  \
			v0,                                                                        \
			v1,                                                                        \
			v2,                                                                        \
			0xffffffffu                                                                \
		}                                                                                  \
	}
#define NONE  KP_PAY_NONE, 0
#define NOAUX KP_AUX_NONE, 0, 0

/* Sorted by number (sysc_by_nr and the filter builder rely on it). */
static const struct sysc table[] = {
	{0, "read", SK_IN, CAP(F, 0, KP_PAY_BUF, 1, NOAUX)},
	{1, "write", SK_OUT, CAP(F, 0, KP_PAY_BUF, 1, NOAUX)},
	{2, "open", SK_NEWFD, CAP(NF, 0, KP_PAY_STR, 0, NOAUX)},
	{3, "close", SK_CLOSE, CAP(F, 0, NONE, NOAUX)},
	{4, "stat", SK_STAT, CAP(0, 0, KP_PAY_STR, 0, KP_AUX_FIXED, 1, 144)},
	{5, "fstat", SK_STAT, CAP(F, 0, NONE, KP_AUX_FIXED, 1, 144)},
	{6, "lstat", SK_STAT, CAP(0, 0, KP_PAY_STR, 0, KP_AUX_FIXED, 1, 144)},
	{7, "poll", SK_WAIT, CAP(0, 0, NONE, KP_AUX_POLL, 0, 0)},
	{8, "lseek", SK_IN, CAP(F, 0, NONE, NOAUX)},
	{16, "ioctl", SK_STAT, CAPF(F, 0, 1, 0x5401, 0x5413, 0x541B, KP_AUX_IOCTL, 2)},
	{17, "pread64", SK_IN, CAP(F, 0, KP_PAY_BUF, 1, NOAUX)},
	{18, "pwrite64", SK_OUT, CAP(F, 0, KP_PAY_BUF, 1, NOAUX)},
	{19, "readv", SK_IN, CAP(F, 0, KP_PAY_IOV, 1, NOAUX)},
	{20, "writev", SK_OUT, CAP(F, 0, KP_PAY_IOV, 1, NOAUX)},
	{21, "access", SK_STAT, CAP(0, 0, KP_PAY_STR, 0, NOAUX)},
	{22, "pipe", SK_NEWFD, CAP(0, 0, NONE, KP_AUX_FIXED, 0, 8)},
	{23, "select", SK_WAIT, CAP(0, 0, NONE, KP_AUX_FDSETS, 0, 0)},
	{32, "dup", SK_DUP, CAP(F, 0, NONE, NOAUX)},
	{33, "dup2", SK_DUP, CAP(F, 0, NONE, NOAUX)},
	{35, "nanosleep", SK_SLEEP, CAP(0, 0, NONE, KP_AUX_FIXED, 0, 16)},
	{41, "socket", SK_NEWFD, CAP(NF, 0, NONE, NOAUX)},
	{42, "connect", SK_CONNECT, CAP(F, 0, KP_PAY_ARGLEN, 1, NOAUX)},
	{43, "accept", SK_NEWFD, CAP(NF, 0, NONE, KP_AUX_SOCKADDR, 1, 0)},
	{44, "sendto", SK_OUT, CAP(F, 0, KP_PAY_BUF, 1, NOAUX)},
	{45, "recvfrom", SK_IN, CAP(F, 0, KP_PAY_BUF, 1, KP_AUX_SOCKADDR, 4, 0)},
	{46, "sendmsg", SK_OUT, CAP(F, 0, KP_PAY_MSG, 1, NOAUX)},
	{47, "recvmsg", SK_IN, CAP(F, 0, KP_PAY_MSG, 1, KP_AUX_MSG, 1, 0)},
	{48, "shutdown", SK_SOCKOP, CAP(F, 0, NONE, NOAUX)},
	{49, "bind", SK_SOCKOP, CAP(F, 0, KP_PAY_ARGLEN, 1, NOAUX)},
	{50, "listen", SK_SOCKOP, CAP(F, 0, NONE, NOAUX)},
	{51, "getsockname", SK_STAT, CAP(F, 0, NONE, KP_AUX_SOCKADDR, 1, 0)},
	{52, "getpeername", SK_STAT, CAP(F, 0, NONE, KP_AUX_SOCKADDR, 1, 0)},
	{53, "socketpair", SK_NEWFD, CAP(0, 0, NONE, KP_AUX_FIXED, 3, 8)},
	{54, "setsockopt", SK_SOCKOP, CAP(F, 0, NONE, NOAUX)},
	{55, "getsockopt", SK_STAT, CAP(F, 0, NONE, KP_AUX_SOCKOPT, 3, 0)},
	{63, "uname", SK_STAT, CAP(0, 0, NONE, KP_AUX_FIXED, 0, 390)},
	{72, "fcntl", SK_DUP, CAPF(F, 0, 1, F_DUPFD, F_DUPFD_CLOEXEC, 0xffffffffu, KP_AUX_NONE, 0)},
	{74, "fsync", SK_OUT, CAP(F, 0, NONE, NOAUX)},
	{75, "fdatasync", SK_OUT, CAP(F, 0, NONE, NOAUX)},
	{77, "ftruncate", SK_OUT, CAP(F, 0, NONE, NOAUX)},
	{79, "getcwd", SK_IN, CAP(0, 0, KP_PAY_BUF, 0, NOAUX)},
	{85, "creat", SK_NEWFD, CAP(NF, 0, KP_PAY_STR, 0, NOAUX)},
	{89, "readlink", SK_IN, CAP(0, 0, KP_PAY_BUF, 1, NOAUX)},
	{96, "gettimeofday", SK_TIME, CAP(0, 0, NONE, KP_AUX_FIXED, 0, 16)},
	{99, "sysinfo", SK_STAT, CAP(0, 0, NONE, KP_AUX_FIXED, 0, 112)},
	{201, "time", SK_TIME, CAP(0, 0, NONE, KP_AUX_FIXED, 0, 8)},
	{204, "sched_getaffinity", SK_IN, CAP(0, 0, KP_PAY_BUF, 2, NOAUX)},
	{213, "epoll_create", SK_NEWFD, CAP(NF, 0, NONE, NOAUX)},
	{217, "getdents64", SK_IN, CAP(F, 0, KP_PAY_BUF, 1, NOAUX)},
	{228, "clock_gettime", SK_TIME, CAP(0, 0, NONE, KP_AUX_FIXED, 1, 16)},
	{230, "clock_nanosleep", SK_SLEEP, CAP(0, 0, NONE, KP_AUX_FIXED, 2, 16)},
	{232, "epoll_wait", SK_WAIT, CAP(0, 0, NONE, KP_AUX_EPOLL, 1, 0)},
	{257, "openat", SK_NEWFD, CAP(NF, 0, KP_PAY_STR, 1, NOAUX)},
	{262, "newfstatat", SK_STAT, CAP(0, 0, KP_PAY_STR, 1, KP_AUX_FIXED, 2, 144)},
	{267, "readlinkat", SK_IN, CAP(0, 0, KP_PAY_BUF, 2, NOAUX)},
	{269, "faccessat", SK_STAT, CAP(0, 0, KP_PAY_STR, 1, NOAUX)},
	{270, "pselect6", SK_WAIT, CAP(0, 0, NONE, KP_AUX_FDSETS, 0, 0)},
	{271, "ppoll", SK_WAIT, CAP(0, 0, NONE, KP_AUX_POLL, 0, 0)},
	{281, "epoll_pwait", SK_WAIT, CAP(0, 0, NONE, KP_AUX_EPOLL, 1, 0)},
	{283, "timerfd_create", SK_NEWFD, CAP(NF, 0, NONE, NOAUX)},
	{284, "eventfd", SK_NEWFD, CAP(NF, 0, NONE, NOAUX)},
	{288, "accept4", SK_NEWFD, CAP(NF, 0, NONE, KP_AUX_SOCKADDR, 1, 0)},
	{289, "signalfd4", SK_NEWFD, CAP(NF, 0, NONE, NOAUX)},
	{290, "eventfd2", SK_NEWFD, CAP(NF, 0, NONE, NOAUX)},
	{291, "epoll_create1", SK_NEWFD, CAP(NF, 0, NONE, NOAUX)},
	{292, "dup3", SK_DUP, CAP(F, 0, NONE, NOAUX)},
	{293, "pipe2", SK_NEWFD, CAP(0, 0, NONE, KP_AUX_FIXED, 0, 8)},
	{294, "inotify_init1", SK_NEWFD, CAP(NF, 0, NONE, NOAUX)},
	{295, "preadv", SK_IN, CAP(F, 0, KP_PAY_IOV, 1, NOAUX)},
	{296, "pwritev", SK_OUT, CAP(F, 0, KP_PAY_IOV, 1, NOAUX)},
	{299, "recvmmsg", SK_UNSUP, CAP(F, 0, NONE, NOAUX)},
	{307, "sendmmsg", SK_UNSUP, CAP(F, 0, NONE, NOAUX)},
	{318, "getrandom", SK_IN, CAP(0, 0, KP_PAY_BUF, 0, NOAUX)},
	{319, "memfd_create", SK_NEWFD, CAP(NF, 0, KP_PAY_STR, 0, NOAUX)},
	{327, "preadv2", SK_IN, CAP(F, 0, KP_PAY_IOV, 1, NOAUX)},
	{328, "pwritev2", SK_OUT, CAP(F, 0, KP_PAY_IOV, 1, NOAUX)},
	{332, "statx", SK_STAT, CAP(0, 0, KP_PAY_STR, 1, KP_AUX_FIXED, 4, 256)},
	{437, "openat2", SK_UNSUP, CAP(NF, 0, KP_PAY_STR, 1, NOAUX)},
	{439, "faccessat2", SK_STAT, CAP(0, 0, KP_PAY_STR, 1, NOAUX)},
	{441, "epoll_pwait2", SK_WAIT, CAP(0, 0, NONE, KP_AUX_EPOLL, 1, 0)},
};

#define NTABLE ((int)(sizeof(table) / sizeof(table[0])))

static const struct sysc *by_nr[KP_CAP_NR_MAX];
static int by_nr_ready;

static void index_build(void)
{
	if (__atomic_load_n(&by_nr_ready, __ATOMIC_ACQUIRE))
		return;
	for (int i = 0; i < NTABLE; i++)
		by_nr[table[i].nr] = &table[i];
	__atomic_store_n(&by_nr_ready, 1, __ATOMIC_RELEASE);
}

const struct sysc *sysc_by_nr(long nr)
{
	if (nr < 0 || nr >= KP_CAP_NR_MAX)
		return NULL;
	index_build();
	return by_nr[nr];
}

const struct sysc *sysc_by_name(const char *name)
{
	for (int i = 0; i < NTABLE; i++)
		if (!strcmp(table[i].name, name))
			return &table[i];
	return NULL;
}

int sysc_count(void)
{
	return NTABLE;
}

const struct sysc *sysc_at(int i)
{
	return i >= 0 && i < NTABLE ? &table[i] : NULL;
}

const char *sysc_name(long nr)
{
	static __thread char buf[32];
	const struct sysc *s = sysc_by_nr(nr);
	if (s)
		return s->name;
	snprintf(buf, sizeof(buf), "syscall_%ld", nr);
	return buf;
}

void sysc_fill_descs(struct kp_cap_desc *descs)
{
	memset(descs, 0, sizeof(*descs) * KP_CAP_NR_MAX);
	for (int i = 0; i < NTABLE; i++)
		descs[table[i].nr] = table[i].cap;
}

bool sysc_argf_ok(const struct sysc *s, const __u64 *args)
{
	if (!(s->cap.flags & KP_CAPD_ARGF))
		return true;
	__u32 v = (__u32)args[s->cap.argf_idx % 6];
	for (int i = 0; i < 4; i++)
		if (s->cap.argf_vals[i] != 0xffffffffu && s->cap.argf_vals[i] == v)
			return true;
	return false;
}

/* ------------------------------------------------------------------ seccomp program */

/*
 * Shape of the program (classic BPF, forward jumps only):
 *
 *   ld arch; jne X86_64 -> ALLOW; ld nr; jge 0x40000000 (x32) -> ALLOW
 *   binary search on nr: internal nodes `jgt K`, leaves of up to 4 `jeq nr -> NOTIF|ARGF_i`,
 *   then `ja ALLOW`
 *   ARGF_i (one per table entry with an argument filter): ld args[idx] (low word);
 *          jeq v -> NOTIF ...; ret ALLOW
 *   ALLOW: ret ALLOW
 *   NOTIF: ret USER_NOTIF
 *
 * Conditional jumps reach at most 255 instructions ahead; the builder checks that.
 */

enum { L_ALLOW = -1, L_NOTIF = -2 }; /* labels; >= 0: ARGF block of table entry i */

struct fixup {
	int at;	   /* instruction index */
	int label; /* L_* or table index */
	int field; /* 0: jt, 1: k (ja) */
};

struct fbuild {
	struct sock_filter *out;
	int n, max;
	struct fixup fx[512];
	int nfx;
	int err;
};

static int put(struct fbuild *b, struct sock_filter f)
{
	if (b->n >= b->max) {
		b->err = -ENOSPC;
		return b->n;
	}
	b->out[b->n] = f;
	return b->n++;
}

static void fix(struct fbuild *b, int at, int label, int field)
{
	if (b->nfx >= (int)(sizeof(b->fx) / sizeof(b->fx[0]))) {
		b->err = -ENOSPC;
		return;
	}
	b->fx[b->nfx++] = (struct fixup){at, label, field};
}

static void tree(struct fbuild *b, int lo, int hi)
{
	if (hi - lo < 4) {
		for (int i = lo; i <= hi; i++) {
			int at = put(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
								     (__u32)table[i].nr, 0, 0));
			fix(b, at, (table[i].cap.flags & KP_CAPD_ARGF) ? i : L_NOTIF, 0);
		}
		int at = put(b, (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 0));
		fix(b, at, L_ALLOW, 1);
		return;
	}
	int mid = (lo + hi) / 2;
	int at = put(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K,
						     (__u32)table[mid].nr, 0, 0));
	tree(b, lo, mid);
	int right = b->n;
	if (!b->err) {
		if (right - at - 1 > 255)
			b->err = -E2BIG;
		b->out[at].jt = (__u8)(right - at - 1);
	}
	tree(b, mid + 1, hi);
}

int sysc_filter_build(struct sock_filter *out, int max)
{
	struct fbuild b = {.out = out, .max = max};
	put(&b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					     offsetof(struct seccomp_data, arch)));
	int at = put(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64,
						      1, 0));
	int at_arch = put(&b, (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 0));
	(void)at;
	fix(&b, at_arch, L_ALLOW, 1);
	put(&b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					     offsetof(struct seccomp_data, nr)));
	int at_x32 =
		put(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 0));
	fix(&b, at_x32, L_ALLOW, 0);
	tree(&b, 0, NTABLE - 1);

	int pos_argf[NTABLE];
	for (int i = 0; i < NTABLE; i++) {
		pos_argf[i] = -1;
		const struct kp_cap_desc *c = &table[i].cap;
		if (!(c->flags & KP_CAPD_ARGF))
			continue;
		pos_argf[i] =
			put(&b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
							     offsetof(struct seccomp_data, args) +
								     8 * c->argf_idx));
		for (int v = 0; v < 4; v++) {
			if (c->argf_vals[v] == 0xffffffffu)
				continue;
			int j = put(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
								     c->argf_vals[v], 0, 0));
			fix(&b, j, L_NOTIF, 0);
		}
		put(&b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	}
	int pos_allow = put(&b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	int pos_notif =
		put(&b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF));
	if (b.err)
		return b.err;
	for (int i = 0; i < b.nfx; i++) {
		struct fixup *f = &b.fx[i];
		int target = f->label == L_ALLOW   ? pos_allow
			     : f->label == L_NOTIF ? pos_notif
						   : pos_argf[f->label];
		int off = target - f->at - 1;
		if (off < 0)
			return -EINVAL; /* defensive: every target lies ahead */
		if (f->field == 1) {
			out[f->at].k = (__u32)off;
		} else {
			if (off > 255)
				return -E2BIG;
			out[f->at].jt = (__u8)off;
		}
	}
	return b.n;
}
