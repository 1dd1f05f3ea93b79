/*
 * capture.c - user side of the replay capture probe: open -> configure -> load -> attach, the
 * syscall descriptors from replay/sysc.c, process selection, and the ring-buffer drain.
 *
 * tp_btf is tried first; when the kernel refuses it (no BTF for tracepoints), the raw_tp twins of
 * the same programs are loaded instead (same code, arguments read through CO-RE).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/types.h>

#include "bpf/capture.h"
#include "bpf/capture.skel.h"
#include "common/util.h"
#include "replay/capture.h"
#include "replay/internal.h"
#include "replay/sysc.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

struct capture {
	struct capture_bpf *skel;
	struct ring_buffer *rb;
	capture_cb cb;
	void *ctx;
	int cb_ret;
	bool raw_tp;
};

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	if (getenv("KPROBE_LOG") && !strcmp(getenv("KPROBE_LOG"), "debug"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

static void set_autoload(struct capture_bpf *s, bool raw)
{
	bpf_program__set_autoload(s->progs.cap_enter_btf, !raw);
	bpf_program__set_autoload(s->progs.cap_exit_btf, !raw);
	bpf_program__set_autoload(s->progs.cap_fork_btf, !raw);
	bpf_program__set_autoload(s->progs.cap_exec_btf, !raw);
	bpf_program__set_autoload(s->progs.cap_task_exit_btf, !raw);
	bpf_program__set_autoload(s->progs.cap_enter_raw, raw);
	bpf_program__set_autoload(s->progs.cap_exit_raw, raw);
	bpf_program__set_autoload(s->progs.cap_fork_raw, raw);
	bpf_program__set_autoload(s->progs.cap_exec_raw, raw);
	bpf_program__set_autoload(s->progs.cap_task_exit_raw, raw);
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 4096;
	while (p < n)
		p <<= 1;
	return p;
}

static int cgroup_id_of(const char *path, __u64 *id, char *err, size_t errlen)
{
	struct statfs fs;
	struct stat st;
	if (statfs(path, &fs) < 0 || stat(path, &st) < 0) {
		snprintf(err, errlen, "replay.capture.cgroups: %s: %s", path, strerror(errno));
		return -errno;
	}
	if (fs.f_type != CGROUP2_SUPER_MAGIC) {
		snprintf(err, errlen,
			 "replay.capture.cgroups: %s is not a cgroup-v2 directory (use "
			 "the unified hierarchy, e.g. /sys/fs/cgroup/unified/...)",
			 path);
		return -EINVAL;
	}
	*id = st.st_ino;
	return 0;
}

static int load(struct capture *c, const struct capture_opts *o, bool raw, char *err, size_t errlen)
{
	struct capture_bpf *s = capture_bpf__open();
	if (!s) {
		snprintf(err, errlen, "cannot open the capture BPF object: %s", strerror(errno));
		return -errno ? -errno : -EINVAL;
	}
	s->rodata->max_bytes = o->max_bytes;
	s->rodata->n_comms = (__u32)o->ncomms;
	s->rodata->n_cgroups = (__u32)o->ncgroups;
	for (int i = 0; i < o->ncomms; i++)
		strncpy((char *)s->rodata->comms[i], o->comms[i], 15);
	int ncpu = libbpf_num_possible_cpus();
	bpf_map__set_max_entries(s->maps.scratch, (__u32)(ncpu > 0 ? ncpu : 1));
	bpf_map__set_max_entries(
		s->maps.rb, (__u32)pow2_at_least(o->ringbuf_bytes ? o->ringbuf_bytes : 64u << 20));
	set_autoload(s, raw);
	int ret = capture_bpf__load(s);
	if (ret) {
		snprintf(err, errlen, "cannot load the capture probe (%s): %s",
			 raw ? "raw_tp" : "tp_btf", strerror(-ret));
		capture_bpf__destroy(s);
		return ret;
	}
	c->skel = s;
	c->raw_tp = raw;
	return 0;
}

int capture_open(struct capture **out, const struct capture_opts *o, char *err, size_t errlen)
{
	struct capture *c = xcalloc(1, sizeof(*c));
	int ret;
	if (o->max_bytes > KP_CAP_MAX_PAYLOAD || o->ncomms > KP_CAP_MAX_COMMS) {
		snprintf(err, errlen,
			 "capture: maxBytes %u (max %u) or %d comms (max %d) out of "
			 "bounds",
			 o->max_bytes, KP_CAP_MAX_PAYLOAD, o->ncomms, KP_CAP_MAX_COMMS);
		free(c);
		return -EINVAL;
	}
	if (geteuid() != 0) {
		snprintf(err, errlen, "capture needs root (it loads a BPF program); run with sudo");
		free(c);
		return -EPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		snprintf(err, errlen,
			 "capture needs kernel BTF (/sys/kernel/btf/vmlinux is missing: "
			 "a kernel built with CONFIG_DEBUG_INFO_BTF)");
		free(c);
		return -ENOTSUP;
	}
	libbpf_set_print(libbpf_log);
	ret = o->force_raw_tp ? -1 : load(c, o, false, err, errlen);
	if (ret)
		ret = load(c, o, true, err, errlen);
	if (ret)
		goto cleanup;

	struct kp_cap_desc *descs = xcalloc(KP_CAP_NR_MAX, sizeof(*descs));
	sysc_fill_descs(descs);
	for (__u32 nr = 0; nr < KP_CAP_NR_MAX; nr++) {
		if (!descs[nr].flags)
			continue;
		ret = bpf_map__update_elem(c->skel->maps.descs, &nr, sizeof(nr), &descs[nr],
					   sizeof(descs[nr]), BPF_ANY);
		if (ret) {
			snprintf(err, errlen, "capture: cannot fill the syscall table: %s",
				 strerror(-ret));
			free(descs);
			goto cleanup;
		}
	}
	free(descs);
	for (int i = 0; i < o->ncgroups; i++) {
		__u64 id;
		__u8 one = 1;
		if ((ret = cgroup_id_of(o->cgroups[i], &id, err, errlen)) < 0)
			goto cleanup;
		bpf_map__update_elem(c->skel->maps.cgroups, &id, sizeof(id), &one, 1, BPF_ANY);
	}
	ret = capture_bpf__attach(c->skel);
	if (ret) {
		snprintf(err, errlen, "cannot attach the capture probe: %s", strerror(-ret));
		goto cleanup;
	}
	*out = c;
	return 0;
cleanup:
	capture_close(c);
	return ret;
}

int capture_open_config(struct capture **out, const struct kp_config *cfg, char *err, size_t errlen)
{
	const struct kp_strlist *comms = &cfg->replay_capture_comms,
				*cgs = &cfg->replay_capture_cgroups,
				*pids = &cfg->replay_capture_pids;
	if (!comms->n && !cgs->n && !pids->n) {
		snprintf(err, errlen,
			 "replay capture is off (replay.capture.comms, .cgroups and "
			 ".pids are empty)");
		return -ENOENT;
	}
	struct capture_opts o = {
		.max_bytes = (uint32_t)cfg->replay_capture_max_bytes,
		.comms = (const char *const *)comms->v,
		.ncomms = comms->n,
		.cgroups = (const char *const *)cgs->v,
		.ncgroups = cgs->n,
	};
	int ret = capture_open(out, &o, err, errlen);
	if (ret)
		return ret;
	for (int i = 0; i < pids->n; i++) {
		char *end;
		long p = strtol(pids->v[i], &end, 10);
		if (*end || p <= 0) {
			snprintf(err, errlen, "replay.capture.pids: '%s' is not a pid", pids->v[i]);
			capture_close(*out);
			*out = NULL;
			return -EINVAL;
		}
		capture_add_pid(*out, (pid_t)p, false, true);
	}
	return 0;
}

int capture_add_pid(struct capture *c, pid_t tgid, bool pending_exec, bool follow)
{
	__u32 k = (__u32)tgid;
	__u8 v = (pending_exec ? KP_CAP_PID_PENDING : KP_CAP_PID_ACTIVE) |
		 (follow ? KP_CAP_PID_FOLLOW : 0);
	return bpf_map__update_elem(c->skel->maps.pids, &k, sizeof(k), &v, sizeof(v), BPF_ANY);
}

static int on_rec(void *ctx, void *data, size_t size)
{
	struct capture *c = ctx;
	int r = c->cb(c->ctx, data, size);
	if (r)
		c->cb_ret = r;
	return r;
}

static int rb_ready(struct capture *c)
{
	if (!c->rb) {
		c->rb = ring_buffer__new(bpf_map__fd(c->skel->maps.rb), on_rec, c, NULL);
		if (!c->rb)
			return -errno ? -errno : -ENOMEM;
	}
	return 0;
}

int capture_fd(struct capture *c)
{
	int r = rb_ready(c);
	return r < 0 ? r : ring_buffer__epoll_fd(c->rb);
}

/* Drains the ring buffer into cb: what is there now, or (wait) what arrives within timeout_ms. */
static int drain(struct capture *c, int timeout_ms, bool wait, capture_cb cb, void *ctx)
{
	int r = rb_ready(c);
	if (r < 0)
		return r;
	c->cb = cb;
	c->ctx = ctx;
	c->cb_ret = 0;
	int n = wait ? ring_buffer__poll(c->rb, timeout_ms) : ring_buffer__consume(c->rb);
	if (c->cb_ret)
		return c->cb_ret;
	return n == -EINTR ? 0 : n;
}

int capture_consume(struct capture *c, capture_cb cb, void *ctx)
{
	return drain(c, 0, false, cb, ctx);
}

int capture_poll(struct capture *c, int timeout_ms, capture_cb cb, void *ctx)
{
	return drain(c, timeout_ms, true, cb, ctx);
}

void capture_stats(struct capture *c, struct capture_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->raw_tp = c->raw_tp;
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return;
	__u64 *v = xcalloc((size_t)ncpu, sizeof(__u64));
	for (__u32 k = 0; k < KP_CAP_CNT_MAX; k++) {
		if (bpf_map__lookup_elem(c->skel->maps.counters, &k, sizeof(k), v,
					 sizeof(__u64) * (size_t)ncpu, 0))
			continue;
		__u64 sum = 0;
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
		if (k == KP_CAP_CNT_EMITTED)
			st->emitted = sum;
		else if (k == KP_CAP_CNT_DROP_RINGBUF)
			st->dropped = sum;
		else if (k == KP_CAP_CNT_TRUNC)
			st->truncated = sum;
	}
	free(v);
}

void capture_close(struct capture *c)
{
	if (!c)
		return;
	ring_buffer__free(c->rb);
	capture_bpf__destroy(c->skel);
	free(c);
}

int capture_loader_range(pid_t pid, uint64_t *lo, uint64_t *hi)
{
	return replay__loader_range(pid, lo, hi);
}
