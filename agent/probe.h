/*
 * probe.h - the kernel side of the agent, seen from user space: load the BPF programs of
 * bpf/probe.bpf.c with the hooks, filters and thresholds of the configuration, attach them,
 * and hand the ring buffer's records to a callback.
 *
 *     struct probe *p;
 *     if (probe_open(&p, cfg, &opts, err, sizeof(err)) < 0) die(err);
 *     ... poll probe_poll_fd(p) for readability, or drain on a timer ...
 *     probe_consume(p, on_record, ctx, 0);
 *     probe_close(p);
 *
 * Records are struct kp_event (64 bytes) or, for KP_CONN, struct kp_conn_record (96 bytes), with
 * ts_ns in CLOCK_MONOTONIC. The kernel side commits records without waking the consumer until
 * probe.ebpf.wakeupKb are waiting, so a consumer must also drain on a timer
 * (PROBE_DRAIN_INTERVAL_MS).
 */
#ifndef KP_PROBE_H
#define KP_PROBE_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/event.h"
#include "common/config.h"

/* How often a consumer should drain the ring buffer when it is not woken. */
#define PROBE_DRAIN_INTERVAL_MS 10

struct probe;

struct probe_opts {
	uint32_t self_tgid;   /* never recorded; 0 = this process */
	const uint32_t *pids; /* added to probe.filter.pids */
	size_t npids;
	const char *const *comms; /* added to probe.filter.comms */
	size_t ncomms;
	bool pid_filter; /* filter on pids even when none is given (probe_filter_pid_add) */
	bool no_kfuncs;	 /* do not use kernel functions (bpf_rdonly_cast) even when the
			  * kernel has them: the path older kernels take */
};

/*
 * Opens, configures, loads and attaches the programs the configuration asks for (hooks,
 * probe.ebpf.syscallAttach, filters, minimum durations, ring buffer size). Programs whose
 * tracepoint this kernel lacks are left out with a warning in the log. Returns 0, or -errno with
 * a message in err that names what is missing and what to do (not root, no BTF, no tracefs, a
 * program the verifier refused, ...). opts may be NULL.
 */
int probe_open(struct probe **out, const struct kp_config *cfg, const struct probe_opts *opts,
	       char *err, size_t errlen);

/* An fd that polls readable when the kernel side wakes the consumer (the ring buffer map). */
int probe_poll_fd(const struct probe *p);

/*
 * Calls fn for each record waiting in the ring buffer, at most `budget` of them (0 = until
 * empty; with a busy producer a budget keeps the caller responsive). rec is valid only during
 * the call. Returns the number of records handled, or -errno.
 */
typedef void (*probe_record_fn)(void *ctx, const void *rec, size_t len);
long probe_consume(struct probe *p, probe_record_fn fn, void *ctx, long budget);

/* The kernel-side counters (enum kp_counter), summed over CPUs. Returns 0 or -errno. */
int probe_counters(struct probe *p, uint64_t out[KP_CNT_MAX]);
const char *probe_counter_name(int i); /* "emitted", "ringbuf_drops", ... */

/* Adds / removes a tgid of the pid filter (only with a pid filter: probe.filter.pids,
 * opts->pids or opts->pid_filter). Returns 0 or -errno (-EINVAL without a pid filter). */
int probe_filter_pid_add(struct probe *p, uint32_t tgid);
int probe_filter_pid_del(struct probe *p, uint32_t tgid);

/* "raw" or "tracepoint" (how syscalls are hooked), or "off". */
const char *probe_syscall_mode(const struct probe *p);
/* One line naming the loaded hooks, attach mode and ring buffer size, for the log. */
const char *probe_describe(const struct probe *p);

void probe_close(struct probe *p);

#endif
