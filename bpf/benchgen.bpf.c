// SPDX-License-Identifier: GPL-2.0
/*
 * benchgen.bpf.c - bench only (bench/agent): fills the ring buffer with realistic kp_event
 * records as fast as the kernel can, so the agent's drain path can be measured from a real BPF
 * ring buffer. A SEC("syscall") program run with BPF_PROG_TEST_RUN; each run writes
 * args->n records with bpf_loop. Not loaded by kprobe-agent.
 *
 * The records mimic what the probes emit: a handful of threads of a few processes, mostly
 * reads/writes on small fds, TCP sends/receives on a few connections with advancing sequence
 * numbers, off-CPU episodes, some fsyncs and faults; timestamps advance with jitter.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "bpf/event.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20); /* resized by the bench before load */
} benchgen_rb SEC(".maps");

struct benchgen_args {
	__u32 n; /* records to write in this run */
	__u32 pad;
	__u64 seq;		/* running record counter (stamped into each record) */
	__u64 written, dropped; /* out */
};

struct gen_state {
	__u64 seq, now, x;
	__u64 written, dropped;
};

static __always_inline __u64 next_rand(struct gen_state *s)
{
	s->x ^= s->x << 13;
	s->x ^= s->x >> 7;
	s->x ^= s->x << 17;
	return s->x;
}

static long gen_one(__u32 i, void *ctx)
{
	struct gen_state *s = ctx;
	struct kp_event *e = bpf_ringbuf_reserve(&benchgen_rb, sizeof(*e), 0);
	if (!e) {
		s->dropped++;
		return 0;
	}
	__u64 r = next_rand(s);
	__u32 thread = r & 31;
	s->now += 200 + ((r >> 8) & 1023);
	e->ts_ns = s->now;
	e->pid = 1000 + (thread >> 3);
	e->tid = 1000 + thread;
	e->cpu = thread & 1;
	e->flags = 0;
	e->ret = 0;
	__u32 kind = (r >> 20) & 15;
	if (kind < 6) { /* read / write */
		e->type = kind & 1 ? KP_WRITE : KP_READ;
		e->dur_ns = 1000 + ((r >> 24) & 16383);
		e->arg[0] = 3 + ((r >> 40) & 7);
		e->arg[1] = 4096;
		e->arg[2] = kind & 1 ? 1 : 0;
		e->arg[3] = 131072 + ((r >> 40) & 7);
		e->ret = 4096;
	} else if (kind < 10) { /* tcp send / receive */
		e->type = kind & 1 ? KP_TCP_SEND : KP_TCP_RECV;
		e->dur_ns = 0;
		e->arg[0] = 0xffff888000000000ull + (((r >> 40) & 63) << 12);
		e->arg[1] = 512 + ((r >> 28) & 1023);
		e->arg[2] = s->seq * 700;
		e->arg[3] = KP_PORTS(8080, 40000 + ((r >> 40) & 63));
		e->ret = (int)e->arg[1];
	} else if (kind < 13) { /* off-CPU */
		e->type = KP_OFFCPU;
		e->dur_ns = 50000 + ((r >> 24) & 0xfffff);
		e->arg[0] = (r >> 50) & 1;
		e->arg[1] = 1000 + ((r >> 52) & 31);
		e->arg[2] = (r >> 30) & 0xffff;
		e->arg[3] = 1000 + ((r >> 55) & 31);
	} else if (kind < 14) {
		e->type = KP_FSYNC;
		e->dur_ns = 200000 + ((r >> 24) & 0xfffff);
		e->arg[0] = 5;
		e->arg[1] = 0;
		e->arg[2] = 75;
		e->arg[3] = 131077;
	} else {
		e->type = KP_FAULTS;
		e->dur_ns = 10000000;
		e->arg[0] = 1 + ((r >> 24) & 255);
		e->arg[1] = 0x7f0000000000ull + ((r >> 32) & 0xfffff000);
		e->arg[2] = e->arg[1] + 0x10000;
		e->arg[3] = (r >> 40) & 15;
	}
	s->seq++;
	s->written++;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("syscall")
int benchgen_run(struct benchgen_args *args)
{
	struct gen_state s = {.seq = args->seq,
			      .now = bpf_ktime_get_ns(),
			      .x = args->seq * 0x9E3779B97F4A7C15ull + 1};
	bpf_loop(args->n, gen_one, &s, 0);
	args->seq = s.seq;
	args->written = s.written;
	args->dropped = s.dropped;
	return 0;
}
