/*
 * table.h - the table-provider seam: what the query engine (store/query.c) scans. A provider is
 * a small function table: its schema, symbol lookups for dictionary-coded string columns, and a
 * scan that hands out batches of rows. The store provides `events`; the causal engine registers
 * `spans`, `nodes`, `edges` the same way (store_table_register).
 *
 * Batches are columnar: the engine asks for the columns it needs (fetch), one at a time, so a
 * provider decodes only those; rows it can rule out from the hints it may skip before any decode.
 */
#ifndef KP_STORE_TABLE_H
#define KP_STORE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Column value types. SYM: a dictionary-coded string (int64 id, 0 = empty; sym_str names it). */
enum table_type { TT_INT = 1, TT_STR, TT_SYM };

#define TC_UNSIGNED 0x1 /* print as u64 */
#define TC_NULLABLE 0x2 /* may be NULL (per-type fields for other types) */
#define TC_TIME	    0x4 /* epoch ns */

struct table_col {
	const char *name;
	uint8_t type;  /* enum table_type */
	uint8_t flags; /* TC_* */
	const char *doc;
};

/* Constraints implied by the WHERE clause (all must hold); a provider may use any to skip rows
 * and may ignore all of them: the engine still evaluates the full WHERE on what it gets. */
struct table_hints {
	uint64_t ts_min, ts_max; /* inclusive; 0 .. UINT64_MAX when unconstrained */
	uint64_t dur_min;	 /* dur >= dur_min */
	int npid, ntid, ntxn;	 /* -1: unconstrained */
	const int64_t *pid, *tid;
	const char *const *txn;
	const uint32_t *txn_len;
	uint32_t type_mask; /* bit t: type t may match; 0 = unconstrained */
	int ntrace;         /* trace_id = / IN: -1 unconstrained */
	const char *const *trace;
	const uint32_t *trace_len;
};

/* One column of a batch, filled by fetch for rows [0, n). Pointers stay valid until the batch
 * callback returns. */
struct table_vec {
	const int64_t *i;     /* TT_INT, TT_SYM */
	const char *const *s; /* TT_STR */
	const uint32_t *slen; /* TT_STR */
	const uint8_t *null;  /* NULL = no nulls; else 1 byte per row, 1 = NULL */
};

#define TB_HOLDS_TS 0x1 /* every row's ts is inside the hints' [ts_min, ts_max] */

struct table_batch {
	uint32_t n;
	uint32_t holds; /* TB_HOLDS_*: what the provider guarantees about every row */
	/* Returns 0 or a negative error (STORE_ECORRUPT: the data failed its checksum). */
	int (*fetch)(struct table_batch *b, int col, struct table_vec *out);
};

struct table_scan_stats {
	uint64_t rows_scanned, granules_total, granules_skipped, segments_skipped, bytes_read;
};

struct table_ops {
	const char *name;
	const struct table_col *cols;
	int ncols;
	/* Name of symbol id of column col (empty string for 0). */
	const char *(*sym_str)(void *ctx, int col, int64_t id, uint32_t *len);
	/* Id of the string s in column col, or -1 when no row can hold it. */
	int64_t (*sym_find)(void *ctx, int col, const char *s, size_t len);
	/* Calls fn for each batch that may match h, from up to nworkers threads at once: worker w
	 * (0 = the calling thread) calls fn(args[w], batch), never two batches at a time, so each
	 * args[w] needs no locking. All workers see one snapshot. A non-zero return of fn stops
	 * the scan (every worker) and is returned; an error wins over a positive "stop" value.
	 * cancel(args[w]) is polled between batches; true stops the scan with -ECANCELED. */
	int (*scan)(void *ctx, const struct table_hints *h, int nworkers,
		    int (*fn)(void *arg, struct table_batch *b), void *const *args,
		    bool (*cancel)(void *arg), struct table_scan_stats *st);
};

/* Registers another table on the store (at most 8; the name must be new). Returns 0, -EEXIST or
 * -ENOSPC. ops and ctx must outlive the store. */
int store_table_register(struct store *st, const struct table_ops *ops, void *ctx);
/* The provider of table name, or -ENOENT. */
int store_table_find(struct store *st, const char *name, size_t len, const struct table_ops **ops,
		     void **ctx);
/* Names of the tables, for error messages ("tables: events, spans"). */
void store_table_names(struct store *st, char *out, size_t cap);

#endif
