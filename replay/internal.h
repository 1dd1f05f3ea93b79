/*
 * internal.h - what the replay module's files share and nobody else sees: the model of the
 * recorded world (model.c) and vDSO patching (vdso.c).
 */
#ifndef KP_REPLAY_INTERNAL_H
#define KP_REPLAY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "replay/rec.h"

/* ---- model.c: per-connection byte timelines ---- */

/* A run of bytes of one direction of a stream, available from recorded time t. */
struct replay__seg {
	uint64_t off, len, t;
	const uint8_t *data; /* NULL: not captured (truncated) */
};

/* One side of a recorded TCP connection, as seen from a recorded process. */
struct replay__ep {
	struct kp_cap_sock tuple; /* local = saddr/sport, remote = daddr/dport */
	uint32_t tgid;		  /* recorded process that owned this side */
	int peer;		  /* the other side, if it was recorded too (-1) */
	uint64_t connect_t;
	uint64_t close_t; /* closed, shut down for writing, or its process ended (0) */
	/* what it read and sent while recorded */
	struct replay__seg *rd, *wr;
	int nrd, nwr;
	uint64_t rd_total, wr_total, eof_read_t;
	/* merged incoming timeline: bytes this side can read, and from when */
	struct replay__seg *in;
	int nin;
	uint64_t in_total;
	uint64_t in_eof_t; /* recorded time from which reading past in_total gives EOF (0: never
			    * known: the recording ends there) */
};

struct replay__model {
	struct replay__ep *eps;
	int neps;
};

int replay__model_build(struct replay__model **out, const struct rec *r, char *err, size_t errlen);
void replay__model_free(struct replay__model *m);
/* The endpoint whose local/remote pair is s (directed), or -1. */
int replay__model_find(const struct replay__model *m, const struct kp_cap_sock *s);
/* Bytes of ep readable by recorded time t (an offset into the incoming stream). */
uint64_t replay__model_avail(const struct replay__model *m, int ep, uint64_t t);
/* Recorded time at which the byte at offset off arrives (UINT64_MAX: never, per the recording). */
uint64_t replay__model_arrival(const struct replay__model *m, int ep, uint64_t off);
/* Copies incoming bytes [off, off+n); false when some were not captured. */
bool replay__model_bytes(const struct replay__model *m, int ep, uint64_t off, uint64_t n,
			 uint8_t *out);

/* ---- vdso.c ---- */

/*
 * Redirects the vDSO clock functions of a stopped tracee (just after exec) to real system calls,
 * writing through memfd (/proc/PID/mem). Returns the number of entry points patched, or -errno
 * with a message.
 */
int replay__vdso_patch(pid_t pid, int memfd, char *err, size_t errlen);

/*
 * The address range of a process's dynamic loader (the ELF interpreter mapped at AT_BASE), just
 * after exec. Returns 0, or -ENOENT for a static program.
 */
int replay__loader_range(pid_t pid, uint64_t *lo, uint64_t *hi);

#endif
