/*
 * internal.h - what the store's files share and nothing outside store/ may use: the physical
 * columns, the column codecs (codec.c), the segment reader/writer (segment.c), the metadata
 * table (meta.c) and the table-provider seam the query engine scans through (table.h).
 */
#ifndef KP_STORE_INTERNAL_H
#define KP_STORE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_GRANULE 8192 /* rows per granule (segments) and per memtable chunk */
#define STORE_PAD     16   /* bytes of slack every decode buffer carries past its end */

/* Physical columns of the events table, in segment order. */
enum store_col {
	SC_TS,
	SC_DUR,
	SC_PID,
	SC_TID,
	SC_CPU,
	SC_TYPE,
	SC_FLAGS,
	SC_RET,
	SC_ARG0,
	SC_ARG1,
	SC_ARG2,
	SC_ARG3,
	SC_NODE,
	SC_TXN,
	SC_NCOLS
};

/* ---- codec.c: column block encodings (format in codec.c) ---- */

/* Upper bound of an encoded block of n values. */
#define STORE_ENC_BOUND(n) ((size_t)(n) * (STORE_TXN_MAX + 16) + 512)

/* Best-of encoding of n u64 values (CONST, PFOR, DELTA, DICT, RLE). Returns bytes written. */
size_t store__enc_u64(const uint64_t *v, uint32_t n, uint8_t *out);
/* Values partitioned by their row's type, each part encoded by store__enc_u64. The partition is
 * computed once per granule (store__typed_plan) and shared by its typed columns. */
struct store__typed_plan {
	uint32_t mask, n;
	uint32_t cnt[32];
	uint16_t order[STORE_GRANULE]; /* row numbers grouped by type, in row order within a type */
};
void store__typed_plan(const uint8_t *type, uint32_t n, struct store__typed_plan *pl);
size_t store__enc_typed(const uint64_t *v, const struct store__typed_plan *pl, uint8_t *out);
/* Interned strings (equal strings share one pointer): dictionary + indices. */
size_t store__enc_str(const char *const *s, const uint8_t *len, uint32_t n, uint8_t *out);

/* Decoders: p[0..len) must be followed by STORE_PAD readable bytes. Return 0 or STORE_ELAYOUT. */
int store__dec_u64(const uint8_t *p, size_t len, uint32_t n, uint64_t *out);
int store__dec_typed(const uint8_t *p, size_t len, const struct store__typed_plan *pl,
		     uint64_t *out);
/* Strings: out_ptr/out_len per row point into dictbuf (capacity >= len). */
int store__dec_str(const uint8_t *p, size_t len, uint32_t n, const char **out_ptr,
		   uint32_t *out_len, char *dictbuf);

/* Column codecs by physical column: which encoder a column uses. */
static inline bool store__col_typed(int c)
{
	return c == SC_DUR || c == SC_RET || c == SC_FLAGS || (c >= SC_ARG0 && c <= SC_ARG3);
}

/* ---- bloom filters (codec.c) ---- */
uint64_t store__hash_u64(uint64_t v);
uint64_t store__hash_str(const char *s, size_t len);
/* Bits for n distinct keys (power of two, 64 .. 65536). */
uint32_t store__bloom_bits(uint32_t n);
void store__bloom_add(uint8_t *bits, uint32_t nbits, uint64_t h);
bool store__bloom_test(const uint8_t *bits, uint32_t nbits, uint64_t h);

/* ---- segment.c ---- */

enum { SB_PID, SB_TID, SB_TXN, SB_N }; /* bloom filters per granule */

struct store__gran {
	uint32_t rows;
	uint32_t pid_min, pid_max, type_mask; /* type_mask bit t = a row of type t (>= 31 -> 31) */
	uint64_t ts_min, ts_max, dur_min, dur_max;
	const uint8_t *blk[SC_NCOLS]; /* block (header included) inside the mapping */
	uint32_t blk_len[SC_NCOLS];
	const uint8_t *bloom[SB_N];
	uint32_t bloom_bits[SB_N];
};

struct store__seg {
	atomic_int refs;
	char *path;
	uint64_t seg_id, group_id;
	uint32_t part, nparts,
		day; /* day: days since the epoch, STORE_DAY_ALL without partitions */
	uint64_t min_lsn, max_lsn, ts_min, ts_max;
	uint32_t n_rows, n_gran;
	uint8_t *map;
	size_t map_len;
	struct store__gran *g;
	atomic_int corrupt; /* a scan found a bad block: quarantined, never read again */
};
#define STORE_DAY_ALL 0xffffffffu

/* Rows to seal, in their final order, handed out per granule by gather callbacks. */
struct store__seg_input {
	uint32_t n;
	void *ctx;
	/* rows [off, off+cnt): every numeric column into col[c][0..cnt), and the txn strings,
	 * interned (equal strings share a pointer) */
	void (*gather)(void *ctx, uint32_t off, uint32_t cnt, uint64_t *const *col,
		       const char **txn, uint8_t *txn_len);
	uint64_t seg_id, group_id, min_lsn, max_lsn;
	uint32_t part, nparts, day;
};

/* Writes path.tmp, fsyncs, renames to path. Returns 0 or -errno. */
int store__seg_write(const char *path, const struct store__seg_input *in);
/* Maps and checks a segment (magic, version, footer, and every block's checksum if verify). */
int store__seg_open(const char *path, bool verify, struct store__seg **out);
void store__seg_unref(struct store__seg *s);

/* Decodes granule column c into out (u64 per row); typed columns need the granule's type plan
 * (store__typed_plan over its SC_TYPE values). scratch: >= STORE_ENC_BOUND(STORE_GRANULE) +
 * STORE_PAD bytes. */
int store__seg_read_u64(const struct store__gran *g, int c, const struct store__typed_plan *pl,
			uint64_t *out, uint8_t *scratch);
/* Txn strings of granule g: pointers into dictbuf (>= blk_len bytes). */
int store__seg_read_str(const struct store__gran *g, const char **ptr, uint32_t *len,
			uint8_t *scratch, char *dictbuf);

/* ---- meta.c: process / connection / node metadata ---- */

struct store__meta;
struct store__proc {
	uint64_t node, start_ns, cgroup_id;
	uint64_t valid_from, valid_to; /* filled by lookup: the ts range this entry answers for */
	uint32_t pid, ppid;
	/* interned symbol ids (0 = empty) */
	uint32_t comm, cmdline, cgroup, container, pod, ns, service;
};
struct store__conn {
	uint64_t node, conn;
	uint16_t family, sport, dport;
	uint32_t saddr, daddr; /* symbol ids of the address text */
};

int store__meta_open(const char *path, struct store__meta **out);
void store__meta_close(struct store__meta *m);
/* Applies a record (from a frame); queues it for the log. Returns 0 or WIRE_EMETA-like error. */
int store__meta_apply(struct store__meta *m, uint64_t node, uint16_t kind, const void *payload,
		      uint16_t len, bool log);
/* Writes queued records to the log and fsyncs it. */
int store__meta_sync(struct store__meta *m);
/* Lookups (query threads; each takes the read lock briefly). */
/* The process (node, pid) that ran at ts (the latest start at or before ts, else the earliest);
 * copied into *out. Returns false when unknown. */
bool store__meta_proc(struct store__meta *m, uint64_t node, uint32_t pid, uint64_t ts,
		      struct store__proc *out);
bool store__meta_conn(struct store__meta *m, uint64_t node, uint64_t conn, struct store__conn *out);
uint32_t store__meta_node(struct store__meta *m, uint64_t node); /* symbol of its name */
/* Symbols: interned strings, stable for the life of the store. */
const char *store__sym_str(struct store__meta *m, uint32_t id, uint32_t *len);
/* Returns the id of s, or 0 when never interned (nothing can equal it). */
uint32_t store__sym_find(struct store__meta *m, const char *s, size_t len);
uint32_t store__sym_intern(struct store__meta *m, const char *s, size_t len);
void store__meta_counts(struct store__meta *m, uint64_t *procs, uint64_t *conns, uint64_t *nodes);

#endif
