/*
 * capture.h - loads the replay capture probe (bpf/capture.bpf.c) and hands its records out.
 *
 * `kprobe record` uses it for one command tree (capture_add_pid with pending_exec + follow); the
 * agent can use it for the replay.capture.* keys (capture_open_config). Records come out through
 * capture_poll as struct kp_cap_rec (bpf/capture.h), ready for rec_writer_add or for shipping.
 *
 *   open -> add pids -> poll ... poll -> stats (were records lost?) -> close
 */
#ifndef KP_REPLAY_CAPTURE_H
#define KP_REPLAY_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"

struct capture_opts {
	uint32_t max_bytes;	  /* payload bytes kept per call (<= KP_CAP_MAX_PAYLOAD) */
	size_t ringbuf_bytes;	  /* kernel ring buffer; 0 = 64 MiB; rounded up to a power of 2 */
	const char *const *comms; /* capture processes with these command names (<= 8) */
	int ncomms;
	const char *const *cgroups; /* ... and tasks in these cgroup-v2 directories */
	int ncgroups;
	bool force_raw_tp; /* skip tp_btf (tests of the fallback) */
};

struct capture;

/*
 * Loads and attaches the probe. Needs root (CAP_BPF + CAP_PERFMON) and BTF. Returns 0, or -errno
 * with a message in err that says what is missing.
 */
int capture_open(struct capture **out, const struct capture_opts *o, char *err, size_t errlen);

/*
 * The agent's entry: the replay.capture.* keys (comms, cgroups, pids, maxBytes). Returns -ENOENT
 * when every list is empty (capture is off by default).
 */
int capture_open_config(struct capture **out, const struct kp_config *cfg, char *err,
			size_t errlen);

/*
 * Selects process tgid. pending_exec: start at its next execve (a child that will exec the
 * recorded command). follow: its future children are selected too. Returns 0 or -errno.
 */
int capture_add_pid(struct capture *c, pid_t tgid, bool pending_exec, bool follow);

/* Called once per record; a non-zero return stops the current poll and is passed back. */
typedef int (*capture_cb)(void *ctx, const void *rec, size_t len);

/* Waits up to timeout_ms for records and delivers them all. Returns the count or -errno. */
int capture_poll(struct capture *c, int timeout_ms, capture_cb cb, void *ctx);

/* An fd that polls readable when records wait (for callers with their own event loop), and a
 * non-blocking drain of what is there. */
int capture_fd(struct capture *c);
int capture_consume(struct capture *c, capture_cb cb, void *ctx);

struct capture_stats {
	uint64_t emitted;   /* records committed by the kernel side */
	uint64_t dropped;   /* records lost (ring buffer full): the recording is incomplete */
	uint64_t truncated; /* records whose payload was cut at max_bytes */
	bool raw_tp;	    /* the raw_tp fallback is in use */
};
void capture_stats(struct capture *c, struct capture_stats *st);

void capture_close(struct capture *c);

/*
 * The address range of a running process's dynamic loader (the ELF interpreter mapped at
 * AT_BASE), for a KP_CAP_LOADER record. Returns 0, -ENOENT for a static program, or -errno
 * (the process is gone).
 */
int capture_loader_range(pid_t pid, uint64_t *lo, uint64_t *hi);

#endif
