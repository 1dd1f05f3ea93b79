/*
 * wire.h - the agent -> appliance frame format, shared by kprobe-agent and kprobed.
 *
 * A frame is a 48-byte header and a body. The body, once decompressed, is n_events kp_event
 * records (64 bytes each, little-endian, as in bpf/event.h) followed by n_meta metadata records
 * (process and connection metadata, once per process / connection, beside the events).
 *
 *   offset  size  field
 *        0     4  magic     "KPF1" (0x3146504b)
 *        4     2  version   1
 *        6     2  flags     WIRE_F_LZ4: body is one LZ4 block
 *        8     8  node_id   the agent's node (stable across restarts)
 *       16     8  seq       frame sequence, strictly increasing per node
 *       24     4  n_events
 *       28     4  n_meta
 *       32     4  raw_len   body length after decompression = 64*n_events + meta bytes
 *       36     4  body_len  bytes that follow the header
 *       40     8  xxh3_64(body as sent)
 *       48        body
 *
 *   meta record:  kind u16 | len u16 | payload[len]
 *
 *   WIRE_META_CAPTURE payload (one piece of a replay capture record, bpf/capture.h):
 *        0     4  rec_len    the whole record's length (KP_CAP_HDR_LEN .. KP_CAP_REC_MAX, x8)
 *        4     4  off        where this piece starts in the record
 *        8     8  clock_off  epoch ns - CLOCK_MONOTONIC ns on the agent (the record keeps its
 *                            monotonic times: a replay needs them as the program saw them)
 *       16        bytes[len - 16]
 *   A record longer than one meta record allows is split into pieces that follow each other
 *   in the same frame: the first at off 0 (holding at least the record's 128-byte header,
 *   whose own len field equals rec_len), each next one where the previous ended, with the same
 *   rec_len and clock_off, until rec_len bytes are there. A frame whose pieces do not add up
 *   (a gap, an overlap, another record kind in between, a record left unfinished) is rejected
 *   whole by wire_body_decode.
 *
 * Ack (appliance -> agent), 16 bytes: magic "KPA1" u32 | status u32 | seq u64. The appliance
 * acks a frame only once it is durable; (node_id, seq) makes a resend idempotent (WIRE_ACK_DUP).
 * Every length is bounded (WIRE_MAX_*) before it is trusted.
 */
#ifndef KP_WIRE_H
#define KP_WIRE_H

#include <linux/types.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/capture.h"
#include "bpf/event.h"
#include "common/util.h"

#define WIRE_MAGIC      0x3146504bu /* "KPF1" */
#define WIRE_ACK_MAGIC  0x3141504bu /* "KPA1" */
#define WIRE_VERSION    1
#define WIRE_HDR_LEN    48
#define WIRE_ACK_LEN    16
#define WIRE_F_LZ4      0x0001
#define WIRE_MAX_EVENTS 65536
#define WIRE_MAX_META   65536
#define WIRE_MAX_RAW    (8u << 20) /* decompressed body */
#define WIRE_MAX_BODY   (8u << 20) /* body as sent */
#define WIRE_META_MAX_LEN 4096     /* one metadata record's payload */

enum wire_ack_status {
	WIRE_ACK_OK = 0,  /* durable */
	WIRE_ACK_DUP = 1, /* already had it (a resend); also durable */
	WIRE_ACK_BAD = 2, /* rejected; the appliance closes the connection */
};

enum wire_meta_kind {
	WIRE_META_NODE = 1,    /* str name, str kernel release (str = u16 len + bytes) */
	WIRE_META_PROC = 2,    /* struct wire_proc_fixed, then str comm, cmdline, cgroup, container,
				* pod, namespace, service */
	WIRE_META_CONN = 3,    /* struct wire_conn */
	WIRE_META_FILE = 4,    /* u32 pid, u32 fd, u64 inode, then str path: what a read/write/fsync
				* event's (pid, fd, inode) refers to, for rules like "ledger write" */
	WIRE_META_CAPTURE = 5, /* a piece of a replay capture record (layout above); only for
				* processes selected by replay.capture.* */
};

#define WIRE_CAP_PIECE_HDR 16
#define WIRE_CAP_PIECE_MAX (WIRE_META_MAX_LEN - WIRE_CAP_PIECE_HDR) /* record bytes per piece */

struct wire_hdr {
	uint32_t magic;
	uint16_t version, flags;
	uint64_t node_id, seq;
	uint32_t n_events, n_meta, raw_len, body_len;
	uint64_t checksum;
};

struct wire_proc_fixed {
	uint32_t pid, ppid;
	uint64_t start_ns;  /* process start, epoch ns (tells a reused pid apart) */
	uint64_t cgroup_id; /* kernfs id of its cgroup (v2, else v1 memory) */
} __attribute__((packed));

struct wire_conn {
	uint64_t conn;
	uint16_t family; /* AF_INET or AF_INET6 */
	uint16_t sport, dport;
	uint16_t pad;
	uint8_t saddr[16], daddr[16];
} __attribute__((packed));

/* Process metadata as the agent knows it (strings NUL terminated; empty when unknown). */
struct wire_proc {
	uint32_t pid, ppid;
	uint64_t start_ns, cgroup_id;
	char comm[16];
	char cmdline[512];
	char cgroup[256];
	char container[72];
	char pod[128];
	char ns[64];
	char service[64];
};

struct wire_file {
	uint32_t pid, fd;
	uint64_t inode;
	char path[256];
};

/* Errors (negative, distinct from -errno). */
enum wire_err {
	WIRE_EMAGIC = -5001,
	WIRE_EVERSION = -5002,
	WIRE_ETOOBIG = -5003,
	WIRE_ECHECKSUM = -5004,
	WIRE_EDECOMPRESS = -5005,
	WIRE_ELAYOUT = -5006,
	WIRE_EMETA = -5007,
};
const char *wire_strerror(int err);

/* ---- building a frame (agent) ---- */

struct wire_batch {
	struct kp_buf events; /* n_events * 64 bytes */
	struct kp_buf meta;   /* meta records */
	uint32_t n_events, n_meta;
};

static inline void wire_batch_add_event(struct wire_batch *b, const struct kp_event *ev)
{
	buf_append(&b->events, ev, sizeof(*ev));
	b->n_events++;
}
void wire_batch_add_meta(struct wire_batch *b, uint16_t kind, const void *payload, uint16_t len);
void wire_batch_add_proc(struct wire_batch *b, const struct wire_proc *p);
void wire_batch_add_conn(struct wire_batch *b, const struct wire_conn *c);
void wire_batch_add_node(struct wire_batch *b, const char *name, const char *kernel);
void wire_batch_add_file(struct wire_batch *b, const struct wire_file *f);
/*
 * Adds one replay capture record (rec[0..len), len = its own len field, at most
 * KP_CAP_REC_MAX) as WIRE_META_CAPTURE pieces. clock_off: epoch ns - monotonic ns now.
 * Returns the number of meta records added, or WIRE_ETOOBIG for a length out of bounds.
 */
int wire_batch_add_capture(struct wire_batch *b, const void *rec, uint32_t len, int64_t clock_off);
void wire_batch_reset(struct wire_batch *b);
void wire_batch_free(struct wire_batch *b);

/*
 * Appends one frame (header + body) for the batch to out. compress: try LZ4 and keep it when it
 * is smaller. Returns 0, or WIRE_ETOOBIG when the batch exceeds the bounds.
 */
int wire_frame_encode(const struct wire_batch *b, uint64_t node_id, uint64_t seq, int compress,
		      struct kp_buf *out);

/* ---- reading a frame (appliance) ---- */

/* Decodes and checks a header (magic, version, every bound). */
int wire_hdr_decode(const void *p, struct wire_hdr *h);

/*
 * Verifies the body's checksum, decompresses it into raw (capacity rawcap >= h->raw_len) and
 * checks its layout: events then exactly n_meta well-formed meta records. On success the events
 * are at raw[0 .. 64*n_events) and the meta records right after.
 */
int wire_body_decode(const struct wire_hdr *h, const void *body, void *raw, size_t rawcap);

/* Iterates meta records of a decoded body. Returns 1 with the next record, 0 at the end. */
struct wire_meta_iter {
	const uint8_t *p, *end;
};
int wire_meta_next(struct wire_meta_iter *it, uint16_t *kind, const void **payload,
		   uint16_t *len);

/* Parses a WIRE_META_PROC / _CONN payload. Returns 0 or WIRE_EMETA. */
int wire_proc_decode(const void *payload, uint16_t len, struct wire_proc *p);
int wire_conn_decode(const void *payload, uint16_t len, struct wire_conn *c);
int wire_file_decode(const void *payload, uint16_t len, struct wire_file *f);
int wire_node_decode(const void *payload, uint16_t len, char *name, size_t namecap, char *kernel,
		     size_t kernelcap);

/*
 * Reassembles capture records from the WIRE_META_CAPTURE pieces of a decoded body, fed in
 * order (wire_body_decode has checked that they add up; this checks again, for callers that
 * feed pieces from elsewhere). Start with wire_cap_asm_reset.
 */
struct wire_cap_asm {
	uint32_t rec_len, have;
	int64_t clock_off;
	_Alignas(8) uint8_t buf[KP_CAP_REC_MAX];
};
void wire_cap_asm_reset(struct wire_cap_asm *a);
/* 1: a record is complete in a->buf (a->rec_len bytes, a->clock_off); 0: more pieces needed;
 * WIRE_EMETA: the piece does not continue the record being built (the assembler is reset). */
int wire_cap_piece(struct wire_cap_asm *a, const void *payload, uint16_t len);

/* Acks. */
void wire_ack_encode(void *out16, uint64_t seq, uint32_t status);
int wire_ack_decode(const void *in16, uint64_t *seq, uint32_t *status);

/* Static checks of the ABI both sides rely on. */
_Static_assert(sizeof(struct kp_event) == 64, "kp_event must stay 64 bytes");
_Static_assert(sizeof(struct wire_proc_fixed) == 24, "wire_proc_fixed layout");
_Static_assert(sizeof(struct wire_conn) == 48, "wire_conn layout");

#endif
