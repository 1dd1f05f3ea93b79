/*
 * probe.c - loads bpf/probe.bpf.c (skeleton probe_bpf): checks what the kernel offers, picks
 * the programs (hooks, syscall attach mode, tracepoints this kernel has), sets the read-only
 * settings, loads, fills the filter maps, attaches, and drains the ring buffer for the caller.
 *
 * Setup reads top to bottom in probe_open: checks -> open -> configure -> load -> filters ->
 * attach -> ring buffer, with one cleanup label.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "agent/probe.h"
#include "bpf/probe.skel.h"
#include "common/util.h"

#define MAX_COMMS 8 /* as in probe.bpf.c */

/*
 * The ring buffer as mapped from the map fd (the kernel's layout): one read-write page holding
 * the consumer position, one read-only page holding the producer position, then the data area
 * mapped twice in a row so a record that wraps reads as one piece. Each record has an 8-byte
 * header: u32 length (bit 31 busy: reserved, not committed yet; bit 30 discarded) and u32 page
 * offset; records are 8-byte aligned.
 *
 * We consume it ourselves rather than through libbpf's ring_buffer: libbpf publishes the
 * consumer position after every record, and the producer reads that position on every
 * reserve, so each record cost a cache-line transfer between the two CPUs. Here the position
 * is published every RB_PUBLISH_BYTES and at the end of a drain.
 */
#define RB_PUBLISH_BYTES (64 * 1024)

struct ring {
	int fd;
	size_t size, pgsz; /* data size (a power of two), page size */
	unsigned long *consumer, *producer;
	uint8_t *data;
};

struct probe {
	struct probe_bpf *skel;
	struct ring ring;
	int ncpu;
	bool pid_filter, faults, raw, kfuncs;
	const char *sc_mode;
	uint64_t ring_bytes, wake_bytes;
	char desc[512];
};

/* ------------------------------------------------------------------ libbpf messages */

/* libbpf's last lines (the verifier's complaint ends up here) for the error message. */
static __thread char libbpf_tail[1024];

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	if (!n)
		return 0;
	if (level == LIBBPF_DEBUG) {
		log_debug("libbpf: %s", line);
		return 0;
	}
	size_t have = strlen(libbpf_tail);
	if (have + n + 3 >= sizeof(libbpf_tail)) {
		memmove(libbpf_tail, libbpf_tail + have / 2, have - have / 2 + 1);
		have = strlen(libbpf_tail);
	}
	snprintf(libbpf_tail + have, sizeof(libbpf_tail) - have, "%s%s", have ? " | " : "", line);
	log_debug("libbpf: %s", line);
	return 0;
}

/* ------------------------------------------------------------------ checks */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* The tracefs directory holding events/syscalls, mounting tracefs when it is missing. */
static int tracefs_ready(char *err, size_t errlen)
{
	if (!access("/sys/kernel/tracing/events/syscalls", F_OK) ||
	    !access("/sys/kernel/debug/tracing/events/syscalls", F_OK))
		return 0;
	if (!access("/sys/kernel/tracing/events", F_OK))
		return fail(err, errlen, -ENOENT,
			    "this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS): set "
			    "probe.ebpf.syscallAttach = raw");
	if (geteuid() != 0)
		return fail(
			err, errlen, -EPERM,
			"probe.ebpf.syscallAttach = tracepoint needs tracefs, which is not "
			"mounted: "
			"mount it (mount -t tracefs nodev /sys/kernel/tracing) or run as root, or "
			"set probe.ebpf.syscallAttach = raw");
	if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) < 0)
		return fail(
			err, errlen, -errno,
			"probe.ebpf.syscallAttach = tracepoint needs tracefs and mounting it at "
			"/sys/kernel/tracing failed (%s): mount it by hand or set "
			"probe.ebpf.syscallAttach = raw",
			strerror(errno));
	log_info("mounted tracefs at /sys/kernel/tracing (for the syscall tracepoints)");
	if (access("/sys/kernel/tracing/events/syscalls", F_OK))
		return fail(err, errlen, -ENOENT,
			    "this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS): set "
			    "probe.ebpf.syscallAttach = raw");
	return 0;
}

/* Whether the kernel's BTF knows the tracepoint a tp_btf/ program attaches to. */
static bool tp_btf_exists(const struct btf *vmlinux, const struct bpf_program *prog)
{
	const char *sec = bpf_program__section_name(prog);
	if (strncmp(sec, "tp_btf/", 7) != 0)
		return true;
	char name[128];
	snprintf(name, sizeof(name), "btf_trace_%s", sec + 7);
	return btf__find_by_name_kind(vmlinux, name, BTF_KIND_TYPEDEF) > 0;
}

/* Copies a comm list (at most MAX_COMMS names, 15 bytes each) into the rodata array. */
static int comms_set(volatile __u64 (*dst)[2], volatile __u64 (*mask)[2], volatile __u32 *n,
		     const struct kp_strlist *cfg, const char *const *extra, size_t nextra,
		     const char *key, char *err, size_t errlen)
{
	size_t total = (size_t)cfg->n + nextra;
	if (total > MAX_COMMS)
		return fail(err, errlen, -EINVAL,
			    "%s: %zu command names given, at most %d are supported", key, total,
			    MAX_COMMS);
	for (size_t i = 0; i < total; i++) {
		const char *name = i < (size_t)cfg->n ? cfg->v[i] : extra[i - (size_t)cfg->n];
		char c[16] = {0};
		strncpy(c, name, 15); /* the kernel's comm is 15 bytes + NUL */
		/* the mask covers the name and its NUL: what follows may be stale in the kernel */
		char m[16] = {0};
		memset(m, 0xff, strlen(c) + 1);
		__u64 w[2], mw[2];
		memcpy(w, c, 16);
		memcpy(mw, m, 16);
		dst[i][0] = w[0];
		dst[i][1] = w[1];
		mask[i][0] = mw[0];
		mask[i][1] = mw[1];
	}
	*n = (__u32)total;
	return 0;
}

/* A filter cgroup directory -> (kernfs id, hierarchy kind) as the kernel side matches it. */
static int cgroup_key(const char *dir, uint64_t *id, uint32_t *kind, char *err, size_t errlen)
{
	struct stat st;
	struct statfs sf;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return fail(err, errlen, -ENOENT,
			    "probe.filter.cgroups: '%s' is not a directory: give the cgroup's "
			    "directory, e.g. /sys/fs/cgroup/memory/payments or "
			    "/sys/fs/cgroup/unified/payments",
			    dir);
	if (statfs(dir, &sf) < 0)
		return fail(err, errlen, -errno, "probe.filter.cgroups: statfs %s: %s", dir,
			    strerror(errno));
	*id = st.st_ino;
	if (sf.f_type == CGROUP2_SUPER_MAGIC) {
		*kind = 0;
		return 0;
	}
	if (sf.f_type != CGROUP_SUPER_MAGIC)
		return fail(err, errlen, -EINVAL,
			    "probe.filter.cgroups: '%s' is not in a cgroup file system", dir);
	char path[4096];
	snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", dir);
	if (!access(path, F_OK)) {
		*kind = 1;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/cpu.shares", dir);
	if (!access(path, F_OK)) {
		*kind = 2;
		return 0;
	}
	return fail(err, errlen, -EINVAL,
		    "probe.filter.cgroups: '%s' is in a cgroup v1 hierarchy other than memory or "
		    "cpu: use the process's memory or cpu cgroup, or its cgroup v2 directory",
		    dir);
}

/* ------------------------------------------------------------------ the ring buffer */

static int ring_map(struct ring *r, int fd, size_t size)
{
	r->fd = fd;
	r->size = size;
	r->pgsz = (size_t)getpagesize();
	void *c = mmap(NULL, r->pgsz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (c == MAP_FAILED)
		return -errno;
	void *p = mmap(NULL, r->pgsz + 2 * size, PROT_READ, MAP_SHARED, fd, (off_t)r->pgsz);
	if (p == MAP_FAILED) {
		int e = -errno;
		munmap(c, r->pgsz);
		return e;
	}
	r->consumer = c;
	r->producer = p;
	r->data = (uint8_t *)p + r->pgsz;
	return 0;
}

static void ring_unmap(struct ring *r)
{
	if (r->consumer)
		munmap(r->consumer, r->pgsz);
	if (r->producer)
		munmap(r->producer, r->pgsz + 2 * r->size);
	r->consumer = r->producer = NULL;
}

/* ------------------------------------------------------------------ open */

static void hook(struct bpf_program *prog, bool on)
{
	bpf_program__set_autoload(prog, on);
}

/*
 * Opens the skeleton, sets its settings, picks its programs and loads it. kfuncs: use the
 * kernel functions this kernel's BTF names (bpf_rdonly_cast); the caller retries without them
 * when the load fails, in case a kernel names one but refuses it to these programs.
 */
static int skel_load(struct probe *p, const struct kp_config *cfg, const struct probe_opts *opts,
		     const struct btf *vmlinux, bool kfuncs, char *err, size_t errlen)
{
	/* open */
	p->skel = probe_bpf__open();
	if (!p->skel)
		return fail(err, errlen, -errno ? -errno : -EINVAL,
			    "opening the BPF object failed: %s", libbpf_tail);
	struct probe_bpf *s = p->skel;
	struct bpf_program *prog;
	int r;

	/* configure: settings */
	s->rodata->self_tgid = opts->self_tgid ? opts->self_tgid : (uint32_t)getpid();
	s->rodata->min_ns[KP_READ] = (__u64)cfg->probe_min_read_ns;
	s->rodata->min_ns[KP_WRITE] = (__u64)cfg->probe_min_write_ns;
	s->rodata->min_ns[KP_FSYNC] = (__u64)cfg->probe_min_fsync_ns;
	s->rodata->min_ns[KP_OFFCPU] = (__u64)cfg->probe_min_offcpu_ns;
	s->rodata->min_ns[KP_RECLAIM] = (__u64)cfg->probe_min_reclaim_ns;
	s->rodata->fault_window_ns = (__u64)cfg->probe_faults_window_ms * NSEC_PER_MSEC;
	s->rodata->fault_min_count = (__u32)cfg->probe_faults_min_count;
	p->pid_filter = opts->pid_filter || cfg->probe_filter_pids.n > 0 || opts->npids > 0;
	s->rodata->filter_pids = p->pid_filter;
	s->rodata->filter_cgroups = cfg->probe_filter_cgroups.n > 0;
	r = comms_set(s->rodata->comms, s->rodata->comms_mask, &s->rodata->n_comms,
		      &cfg->probe_filter_comms, opts->comms, opts->ncomms, "probe.filter.comms",
		      err, errlen);
	if (r < 0)
		return r;
	r = comms_set(s->rodata->excl, s->rodata->excl_mask, &s->rodata->n_excl,
		      &cfg->probe_exclude_comms, NULL, 0, "probe.filter.excludeComms", err, errlen);
	if (r < 0)
		return r;

	/* configure: ring buffer size, a power of two of at least a page */
	uint64_t rb_bytes = (uint64_t)cfg->probe_ringbuf_kb * 1024, pg = (uint64_t)getpagesize();
	uint64_t sz = pg;
	while (sz < rb_bytes)
		sz <<= 1;
	r = bpf_map__set_max_entries(s->maps.rb, (uint32_t)sz);
	if (r < 0) {
		r = fail(err, errlen, r,
			 "probe.ebpf.ringBufferSizeKb: cannot size the ring buffer");
		return r;
	}
	uint64_t wake = (uint64_t)cfg->probe_wakeup_kb * 1024;
	if (wake > sz / 2)
		wake = sz / 2;
	s->rodata->wakeup_bytes = wake;
	s->rodata->have_rdonly_cast = kfuncs;
	p->kfuncs = kfuncs;
	p->ring_bytes = sz;
	p->wake_bytes = wake;

	/* configure: which programs load */
	bpf_object__for_each_program(prog, s->obj) hook(prog, false);
	bool sys_on = cfg->probe_hooks_syscall, raw = true;
	if (sys_on) {
		const char *mode = cfg->probe_syscall_attach ? cfg->probe_syscall_attach : "auto";
		/* auto = raw: cheaper here (bench/probe/RESULT.md) and needs no tracefs */
		raw = strcmp(mode, "tracepoint") != 0;
		if (!raw) {
			r = tracefs_ready(err, errlen);
			if (r < 0)
				return r;
		}
		p->sc_mode = raw ? "raw" : "tracepoint";
		bpf_object__for_each_program(prog, s->obj)
		{
			const char *sec = bpf_program__section_name(prog);
			if (!strncmp(sec, "tp/syscalls/", 12))
				hook(prog, !raw);
		}
		hook(s->progs.sys_enter_raw, raw);
		hook(s->progs.sys_exit_raw, raw);
	} else {
		p->sc_mode = "off";
	}
	if (cfg->probe_hooks_tcp) {
		hook(s->progs.tcp_send, true);
		hook(s->progs.tcp_recv, true);
		hook(s->progs.tcp_state, true);
		hook(s->progs.tcp_retransmit, true);
	}
	if (cfg->probe_hooks_sched) {
		hook(s->progs.sched_switch, true);
		hook(s->progs.sched_wakeup, true);
		hook(s->progs.sched_wakeup_new, true);
	}
	if (cfg->probe_hooks_memory) {
		hook(s->progs.direct_reclaim_begin, true);
		hook(s->progs.direct_reclaim_end, true);
		hook(s->progs.memcg_reclaim_begin, true);
		hook(s->progs.memcg_reclaim_end, true);
	}
	if (cfg->probe_hooks_process) {
		hook(s->progs.proc_exec, true);
		hook(s->progs.proc_fork, true);
	}
	bool faults = cfg->probe_hooks_fault;
	if (faults && !tp_btf_exists(vmlinux, s->progs.fault_user)) {
		log_warn("page faults are not recorded: this kernel has no "
			 "exceptions:page_fault_user tracepoint (x86 only)");
		faults = false;
	}
	if (faults) {
		hook(s->progs.fault_user, true);
		if (!cfg->probe_hooks_sched)
			hook(s->progs.sched_switch_faults, true);
	}
	s->rodata->faults_on = faults;
	p->faults = faults;
	p->raw = raw;
	s->rodata->proc_on = cfg->probe_hooks_process;
	if (faults || cfg->probe_hooks_process)
		hook(s->progs.proc_exit, true);
	/* leave out what this kernel cannot attach, and say so */
	bpf_object__for_each_program(prog, s->obj)
	{
		if (bpf_program__autoload(prog) && !tp_btf_exists(vmlinux, prog)) {
			log_warn("%s is not recorded: this kernel has no '%s' tracepoint",
				 bpf_program__name(prog), bpf_program__section_name(prog) + 7);
			hook(prog, false);
		}
	}

	/* load */
	r = probe_bpf__load(s);
	if (r < 0) {
		r = fail(err, errlen, r,
			 "loading the BPF programs failed (%s); libbpf said: %s. Switch off the "
			 "hook named there (probe.ebpf.hooks.*) or report this kernel (%s)",
			 strerror(-r), libbpf_tail[0] ? libbpf_tail : "nothing", "uname -r");
		return r;
	}
	return 0;
}

int probe_open(struct probe **out, const struct kp_config *cfg, const struct probe_opts *opts,
	       char *err, size_t errlen)
{
	static const struct probe_opts no_opts;
	struct probe *p = NULL;
	struct btf *vmlinux = NULL;
	int r = 0;

	if (!opts)
		opts = &no_opts;
	*out = NULL;
	libbpf_set_print(libbpf_print);
	libbpf_tail[0] = 0;

	/* checks: what is missing is named before libbpf says it in its own words */
	if (geteuid() != 0)
		return fail(err, errlen, -EPERM,
			    "loading the BPF probe needs root (or CAP_BPF + CAP_PERFMON + "
			    "CAP_SYS_RESOURCE): run kprobe-agent as root");
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		return fail(err, errlen, -ENOENT,
			    "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): kprobe "
			    "needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.15+)");
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) != 1)
		return fail(err, errlen, -EOPNOTSUPP,
			    "this kernel has no BPF ring buffer (needs Linux 5.8+)");
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_TASK_STORAGE, NULL) != 1)
		return fail(err, errlen, -EOPNOTSUPP,
			    "this kernel has no BPF task storage (needs Linux 5.11+)");
	vmlinux = btf__load_vmlinux_btf();
	if (!vmlinux)
		return fail(err, errlen, -errno ? -errno : -ENOENT,
			    "cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): %s",
			    strerror(errno));

	p = xcalloc(1, sizeof(*p));
	p->ncpu = libbpf_num_possible_cpus();
	if (p->ncpu <= 0) {
		r = fail(err, errlen, -EINVAL, "cannot count the possible CPUs");
		goto cleanup;
	}

	bool kfuncs = !opts->no_kfuncs &&
		      btf__find_by_name_kind(vmlinux, "bpf_rdonly_cast", BTF_KIND_FUNC) > 0;
	r = skel_load(p, cfg, opts, vmlinux, kfuncs, err, errlen);
	if (r < 0 && kfuncs) {
		log_debug("loading with kfuncs failed (%s); retrying without", err);
		probe_bpf__destroy(p->skel);
		p->skel = NULL;
		libbpf_tail[0] = 0;
		r = skel_load(p, cfg, opts, vmlinux, false, err, errlen);
	}
	if (r < 0)
		goto cleanup;
	struct probe_bpf *s = p->skel;

	/* filters */
	uint8_t one = 1;
	for (int i = 0; i < cfg->probe_filter_pids.n; i++) {
		char *end;
		unsigned long v = strtoul(cfg->probe_filter_pids.v[i], &end, 10);
		if (*end || !v || v > UINT32_MAX) {
			r = fail(err, errlen, -EINVAL, "probe.filter.pids: '%s' is not a pid",
				 cfg->probe_filter_pids.v[i]);
			goto cleanup;
		}
		r = probe_filter_pid_add(p, (uint32_t)v);
		if (r < 0)
			goto cleanup_map;
	}
	for (size_t i = 0; i < opts->npids; i++) {
		r = probe_filter_pid_add(p, opts->pids[i]);
		if (r < 0)
			goto cleanup_map;
	}
	for (int i = 0; i < cfg->probe_filter_cgroups.n; i++) {
		struct {
			uint64_t id;
			uint32_t kind, pad;
		} key = {0};
		r = cgroup_key(cfg->probe_filter_cgroups.v[i], &key.id, &key.kind, err, errlen);
		if (r < 0)
			goto cleanup;
		r = bpf_map__update_elem(s->maps.cgroup_filter, &key, sizeof(key), &one, 1,
					 BPF_ANY);
		if (r < 0)
			goto cleanup_map;
	}

	/* attach */
	r = probe_bpf__attach(s);
	if (r < 0) {
		r = fail(err, errlen, r,
			 "attaching the BPF programs failed (%s); libbpf said: %s. If a tracepoint "
			 "is named there, switch its hook off (probe.ebpf.hooks.*)%s",
			 strerror(-r), libbpf_tail[0] ? libbpf_tail : "nothing",
			 p->raw ? "" : " or set probe.ebpf.syscallAttach = raw");
		goto cleanup;
	}

	/* ring buffer */
	r = ring_map(&p->ring, bpf_map__fd(s->maps.rb), (size_t)p->ring_bytes);
	if (r < 0) {
		r = fail(err, errlen, r, "cannot map the ring buffer: %s", strerror(-r));
		goto cleanup;
	}

	snprintf(p->desc, sizeof(p->desc),
		 "hooks: syscall=%s tcp=%s sched=%s fault=%s memory=%s process=%s; ring buffer "
		 "%llu KiB, wake-up at %llu KiB; filters: pids=%s comms=%u cgroups=%d; kfuncs=%s",
		 p->sc_mode, cfg->probe_hooks_tcp ? "on" : "off",
		 cfg->probe_hooks_sched ? "on" : "off", p->faults ? "on" : "off",
		 cfg->probe_hooks_memory ? "on" : "off", cfg->probe_hooks_process ? "on" : "off",
		 (unsigned long long)(p->ring_bytes / 1024),
		 (unsigned long long)(p->wake_bytes / 1024), p->pid_filter ? "on" : "off",
		 s->rodata->n_comms, cfg->probe_filter_cgroups.n, p->kfuncs ? "on" : "off");
	btf__free(vmlinux);
	*out = p;
	return 0;

cleanup_map:
	fail(err, errlen, r,
	     "filling the filter maps failed: %s (the maps hold 8192 pids and "
	     "1024 cgroups)",
	     strerror(-r));
cleanup:
	if (p) {
		ring_unmap(&p->ring);
		probe_bpf__destroy(p->skel);
		free(p);
	}
	btf__free(vmlinux);
	return r;
}

/* ------------------------------------------------------------------ consume */

/*
 * Consumes up to the producer position seen on entry, not beyond: chasing the producer's head
 * would read cache lines it is still writing and bounce them between the two CPUs.
 */
long probe_consume(struct probe *p, probe_record_fn fn, void *ctx, long budget)
{
	struct ring *r = &p->ring;
	unsigned long cons = __atomic_load_n(r->consumer, __ATOMIC_RELAXED), published = cons;
	unsigned long prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);
	long done = 0;
	const unsigned long mask = r->size - 1;
	while (cons < prod) {
		const uint8_t *hdr = r->data + (cons & mask);
		uint32_t len = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);
		if (len & BPF_RINGBUF_BUSY_BIT)
			break; /* reserved, not committed yet: the next drain gets it */
		uint32_t n = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
		if (KP_UNLIKELY(n > r->size)) {
			/* defensive: the kernel never writes this; skip to the producer */
			log_error("ring buffer record of %u bytes at %lu: resynchronizing", n,
				  cons);
			cons = prod;
			break;
		}
		cons += (n + BPF_RINGBUF_HDR_SZ + 7) & ~7ul;
		if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
			fn(ctx, hdr + BPF_RINGBUF_HDR_SZ, n);
			done++;
		}
		if (cons - published >= RB_PUBLISH_BYTES) {
			__atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
			published = cons;
		}
		if (budget && done >= budget)
			break;
	}
	if (cons != published)
		__atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
	return done;
}

int probe_poll_fd(const struct probe *p)
{
	return p->ring.fd;
}

int probe_counters(struct probe *p, uint64_t out[KP_CNT_MAX])
{
	uint64_t vals[p->ncpu];
	for (uint32_t i = 0; i < KP_CNT_MAX; i++) {
		int r = bpf_map__lookup_elem(p->skel->maps.counters, &i, sizeof(i), vals,
					     sizeof(vals), 0);
		if (r < 0)
			return r;
		out[i] = 0;
		for (int c = 0; c < p->ncpu; c++)
			out[i] += vals[c];
	}
	return 0;
}

const char *probe_counter_name(int i)
{
	static const char *names[KP_CNT_MAX] = {
		[KP_CNT_EMITTED] = "emitted",	 [KP_CNT_DROP_RINGBUF] = "ringbuf_drops",
		[KP_CNT_DROP_MAP] = "map_drops", [KP_CNT_FILTERED] = "filtered",
		[KP_CNT_SHORT] = "short",
	};
	return i >= 0 && i < KP_CNT_MAX && names[i] ? names[i] : "?";
}

int probe_filter_pid_add(struct probe *p, uint32_t tgid)
{
	if (!p->pid_filter)
		return -EINVAL;
	uint8_t one = 1;
	return bpf_map__update_elem(p->skel->maps.pid_filter, &tgid, sizeof(tgid), &one, 1,
				    BPF_ANY);
}

int probe_filter_pid_del(struct probe *p, uint32_t tgid)
{
	if (!p->pid_filter)
		return -EINVAL;
	return bpf_map__delete_elem(p->skel->maps.pid_filter, &tgid, sizeof(tgid), 0);
}

const char *probe_syscall_mode(const struct probe *p)
{
	return p->sc_mode;
}

const char *probe_describe(const struct probe *p)
{
	return p->desc;
}

void probe_close(struct probe *p)
{
	if (!p)
		return;
	ring_unmap(&p->ring);
	probe_bpf__destroy(p->skel);
	free(p);
}
