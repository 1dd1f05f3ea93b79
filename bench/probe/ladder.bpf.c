// SPDX-License-Identifier: GPL-2.0
/*
 * ladder.bpf.c - bench/probe's cost ladder: the syscall path of bpf/probe.bpf.c rebuilt one
 * piece at a time, so run.sh can say what each piece adds per instrumented syscall:
 *
 *   empty   tp_btf/sys_enter + sys_exit doing nothing (the hook itself: every syscall of every
 *           task takes the traced slow path and runs two programs)
 *   clock   + the syscall id check and one bpf_ktime_get_ns() on each side
 *   state   + the per-thread enter/exit pairing in task storage (what probe.bpf.c does)
 *   record  + a 64-byte ring buffer record per call (reserve/commit, no wake-up)
 *   inode   + the fd -> inode walk, as the probe does it on 6.2+ (one probe read, then direct
 *           loads after bpf_rdonly_cast)
 *   inodepr + the fd -> inode walk with three probe reads (the probe on older kernels)
 *   tp      the per-syscall tracepoints sys_{enter,exit}_{write,read} doing nothing
 *
 * x86-64 syscall numbers (write 1, read 0) only: this is a benchmark, not the probe.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} rb SEC(".maps");

struct slot {
	__u64 ts, a0, a1, a2;
	__u32 nr, pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct slot);
} tasks SEC(".maps");

struct rec {
	__u64 ts, dur;
	__u32 pid, tid;
	__u16 cpu;
	__u8 type, flags;
	__s32 ret;
	__u64 arg[4];
};

#define WANT(nr) ((nr) == 0 || (nr) == 1)

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

static __always_inline __u64 fd_inode(__u64 fd, int cast)
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
	if (cast) {
		struct file *bf = bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file));
		return bf->f_inode->i_ino;
	}
	return BPF_CORE_READ(f, f_inode, i_ino);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(empty_enter, struct pt_regs *regs, long nr)
{
	return 0;
}
SEC("tp_btf/sys_exit")
int BPF_PROG(empty_exit, struct pt_regs *regs, long ret)
{
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(clock_enter, struct pt_regs *regs, long nr)
{
	if (WANT(nr))
		bpf_ktime_get_ns();
	return 0;
}
SEC("tp_btf/sys_exit")
int BPF_PROG(clock_exit, struct pt_regs *regs, long ret)
{
	if (WANT(regs->orig_ax))
		bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(state_enter, struct pt_regs *regs, long nr)
{
	if (!WANT(nr))
		return 0;
	struct slot *s = bpf_task_storage_get(&tasks, bpf_get_current_task_btf(), 0,
					      BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	s->a0 = regs->di;
	s->a1 = regs->si;
	s->a2 = regs->dx;
	s->nr = nr + 1;
	s->ts = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int exit_common(struct pt_regs *regs, long ret, int record, int inode)
{
	long nr = regs->orig_ax;
	if (!WANT(nr))
		return 0;
	struct slot *s = bpf_task_storage_get(&tasks, bpf_get_current_task_btf(), 0, 0);
	if (!s || s->nr != nr + 1)
		return 0;
	s->nr = 0;
	__u64 dur = bpf_ktime_get_ns() - s->ts;
	if (!record) {
		s->a1 = dur;
		return 0;
	}
	struct rec *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	e->ts = s->ts;
	e->dur = dur;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	e->type = 2;
	e->flags = 0;
	e->ret = ret;
	e->arg[0] = s->a0;
	e->arg[1] = s->a2;
	e->arg[2] = nr;
	e->arg[3] = inode ? fd_inode(s->a0, inode == 1) : 0;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(state_exit, struct pt_regs *regs, long ret)
{
	return exit_common(regs, ret, 0, 0);
}
SEC("tp_btf/sys_exit")
int BPF_PROG(record_exit, struct pt_regs *regs, long ret)
{
	return exit_common(regs, ret, 1, 0);
}
SEC("tp_btf/sys_exit")
int BPF_PROG(inode_exit, struct pt_regs *regs, long ret)
{
	return exit_common(regs, ret, 1, 1);
}
SEC("tp_btf/sys_exit")
int BPF_PROG(inodepr_exit, struct pt_regs *regs, long ret)
{
	return exit_common(regs, ret, 1, 2);
}

SEC("tp/syscalls/sys_enter_write")
int tp_enter_write(void *ctx)
{
	return 0;
}
SEC("tp/syscalls/sys_exit_write")
int tp_exit_write(void *ctx)
{
	return 0;
}
SEC("tp/syscalls/sys_enter_read")
int tp_enter_read(void *ctx)
{
	return 0;
}
SEC("tp/syscalls/sys_exit_read")
int tp_exit_read(void *ctx)
{
	return 0;
}
