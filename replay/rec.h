/*
 * rec.h - the recording file: a self-contained system-call recording of a process tree (and of the
 * peers recorded beside it), as written by `kprobe record` and read by `kprobe replay`. The writer
 * takes capture records (bpf/capture.h) in any order, so the agent and the appliance can build a
 * recording from stored events with the same code.
 *
 * A recording holds one stream per thread. Each stream is that thread's capture records in the
 * order they returned, each stamped with a global sequence number (the order of exits across all
 * threads, from 1) and a per-thread ordinal (from 0). The thread table says who created whom (the
 * k-th child of a thread), so a replay can map the threads it sees to recorded streams. File
 * layout and checks: see the diagram above rec_writer_finish in rec.c. Every length is checked on
 * open; a damaged file is refused with a message that names what is wrong and where.
 */
#ifndef KP_REPLAY_REC_H
#define KP_REPLAY_REC_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/capture.h"
#include "common/util.h"

#define REC_MAGIC	  0x4352504bu /* "KPRC" */
#define REC_TRAILER_MAGIC 0x4552504bu /* "KPRE" */
#define REC_VERSION	  1
#define REC_MAX_THREADS	  65536
#define REC_MAX_ARGS	  256
#define REC_MAX_ENV	  4096
#define REC_MAX_META	  (256 << 10)

/* rec_meta.flags */
#define REC_F_INCOMPLETE 0x0001 /* records were lost while recording: do not trust a replay */

/* rec_thread.flags */
#define REC_T_ROOT   0x01 /* the recorded command's first thread */
#define REC_T_TREE   0x02 /* the command or one of its descendants (what a replay re-runs) */
#define REC_T_PEER   0x04 /* recorded beside it (kprobe record --pid): the world's other side */
#define REC_T_THREAD 0x08 /* created as a thread (CLONE_THREAD), not a process */
#define REC_T_EXITED 0x10 /* its exit was seen */

struct rec_stdfd {
	uint64_t dev,
		ino; /* the inode behind fd 0/1/2 of the command when it started (0: closed) */
};

struct rec_meta {
	uint16_t flags;
	uint64_t mono_base; /* CLOCK_MONOTONIC when recording started */
	uint64_t real_base; /* CLOCK_REALTIME at the same instant (epoch ns) */
	uint64_t boot_base; /* CLOCK_BOOTTIME at the same instant */
	uint64_t mono_end;  /* CLOCK_MONOTONIC when it stopped */
	uint32_t root_tid;
	int32_t root_status; /* wait status of the command, -1 unknown */
	uint32_t max_bytes;  /* replay.capture.maxBytes in force */
	uint64_t dropped;    /* records lost in the kernel (REC_F_INCOMPLETE when > 0) */
	uint64_t truncated;  /* records whose payload was cut at max_bytes */
	struct rec_stdfd std[3];
	int argc;
	char **argv;  /* the command line */
	char *cwd;    /* its working directory */
	char *host;   /* where it was recorded */
	char *kernel; /* uname -r there */
	int envc;
	char **envp; /* its environment (a replay runs with it, unless told otherwise) */
};

struct rec_thread {
	uint32_t tid, tgid;
	uint32_t parent_tid;  /* 0: none recorded (the root, a peer) */
	uint32_t child_index; /* this is the child_index-th child (from 0) its parent created */
	uint32_t flags;	      /* REC_T_* */
	int32_t exit_code;
	uint32_t n_calls;
	uint32_t n_children;
	uint64_t start_ns, end_ns; /* first and last record seen */
	char exe[56];		   /* base name of the last program it executed ("" if none) */
};

struct rec_summary {
	uint64_t calls, payload_bytes, truncated, file_bytes;
	uint32_t threads, processes, peers;
};

/* ---- writing ---- */

struct rec_writer;

struct rec_writer *rec_writer_new(void);
/* Copies m (strings included). Call before finish; may be called again to update. */
void rec_writer_meta(struct rec_writer *w, const struct rec_meta *m);
/*
 * Adds one capture record (copied). Malformed records (len out of bounds, lengths that do not
 * add up, unknown kind) are refused with -EINVAL and counted; they never reach the file.
 */
int rec_writer_add(struct rec_writer *w, const void *rec, size_t len);
uint64_t rec_writer_rejected(const struct rec_writer *w);
/*
 * Orders the records, assigns sequence numbers and ordinals, builds the thread table and writes
 * the file atomically (PATH.tmp, fsync, rename). Returns 0 or -errno with a message in err.
 */
int rec_writer_finish(struct rec_writer *w, const char *path, struct rec_summary *sum, char *err,
		      size_t errlen);
/* The same into out (replaced; the caller frees it), for the appliance's HTTP answers. */
int rec_writer_finish_mem(struct rec_writer *w, struct kp_buf *out, struct rec_summary *sum,
			  char *err, size_t errlen);
void rec_writer_free(struct rec_writer *w);

/* ---- reading ---- */

struct rec;

/* Opens and checks a recording (magic, version, every checksum and bound). */
int rec_open(struct rec **out, const char *path, char *err, size_t errlen);
/* The same over a buffer (copied). */
int rec_open_mem(struct rec **out, const void *data, size_t len, char *err, size_t errlen);
void rec_close(struct rec *r);

const struct rec_meta *rec_meta(const struct rec *r);
int rec_nthreads(const struct rec *r);
const struct rec_thread *rec_thread(const struct rec *r, int i);
int rec_thread_find(const struct rec *r, uint32_t tid); /* index, or -1 */
/* The ord-th call of thread i, NULL past the end. Valid until rec_close. */
const struct kp_cap_rec *rec_call(const struct rec *r, int i, uint32_t ord);
uint64_t rec_ncalls(const struct rec *r);
/* The n-th call in global order (n from 0), and its thread index in *thread. */
const struct kp_cap_rec *rec_call_seq(const struct rec *r, uint64_t n, int *thread);
/* Thread index of the k-th child (from 0) thread i created, or -1. */
int rec_child(const struct rec *r, int i, uint32_t k);

/* ---- record accessors ---- */

static inline const uint8_t *kp_cap_payload(const struct kp_cap_rec *c)
{
	return (const uint8_t *)c + KP_CAP_HDR_LEN;
}
static inline const uint8_t *kp_cap_aux(const struct kp_cap_rec *c)
{
	return kp_cap_payload(c) + c->payload_len;
}
/* Copies the socket description into *out; false when the record has none. */
bool kp_cap_sock_get(const struct kp_cap_rec *c, struct kp_cap_sock *out);
/* Checks one record's internal lengths against len (the bytes available). */
bool kp_cap_rec_valid(const void *rec, size_t len);

#endif
