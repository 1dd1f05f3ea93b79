/*
 * query.h - kprobe's query language over the store's tables (events, and those registered by
 * other modules through store/table.h), and the result writers the HTTP layer and the CLI use.
 *
 *   SELECT expr [AS name], ... | *
 *   FROM events
 *   [WHERE cond] [GROUP BY expr, ...] [HAVING cond]
 *   [ORDER BY expr [ASC|DESC], ...] [LIMIT n]
 *
 * Expressions: columns (the agent's NDJSON field names, see `SELECT * FROM events LIMIT 1` or
 * store.c's column table), integer / float / 'string' literals, durations (10us 250ms 1s 5m 2h
 * 1d, as ns), + - * / %, = != <> < <= > >=, [NOT] IN (...), [NOT] BETWEEN a AND b,
 * [NOT] LIKE 'pat%_', IS [NOT] NULL, AND OR NOT, now(), bucket(ts, 1s), abs(x), and the
 * aggregates count() count(x) sum min max avg quantile(q)(x) p50 p90 p95 p99 p999.
 * A string compared with a time column (ts) is read as a UTC time '2026-11-22 10:00:00[.123]'.
 *
 * Semantics worth knowing: NULL compares as unknown (a per-type column is NULL on rows of other
 * types, so `fd = 3` keeps only read/write/fsync rows); integer division truncates and x/0 is
 * NULL; quantile(q) is the value at index floor(q*(n-1)) of the sorted values, exact up to 4096
 * values per group and within 0.8% beyond (a log-linear histogram). Without LIMIT a query
 * returns at most opts->max_rows rows (stats.truncated says so); a LIMIT above it is an error.
 *
 * Errors carry a message and the byte position in the query text; nothing the text holds can
 * crash the engine (bounded length, tokens, nesting, list sizes, groups).
 */
#ifndef KP_QUERY_H
#define KP_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/util.h"

struct store;

#define QUERY_MAX_TEXT	 65536 /* bytes of query text */
#define QUERY_MAX_DEPTH	 64    /* expression nesting */
#define QUERY_MAX_LIST	 4096  /* IN (...) elements */
#define QUERY_MAX_GROUPS 2000000

enum query_type { QV_NULL, QV_INT, QV_UINT, QV_FLOAT, QV_STR, QV_BOOL };

struct query_value {
	uint8_t type; /* enum query_type */
	union {
		int64_t i; /* QV_INT, QV_BOOL; QV_UINT as the same bits */
		double f;  /* QV_FLOAT */
		struct {
			const char *p; /* the result's, or the store's symbol table */
			uint32_t len;
		} s;
	} u;
};

struct query_stats {
	uint64_t rows_scanned, rows_matched, granules_total, granules_skipped, segments_skipped;
	uint64_t groups, bytes_read; /* bytes_read: compressed column blocks decoded */
	double ms;
	bool truncated; /* no LIMIT and more rows than max_rows */
};

struct query_result {
	int ncols;
	char **names;	/* column headers */
	uint8_t *types; /* declared type per column (enum query_type; QV_NULL = mixed/unknown) */
	size_t nrows;
	struct query_value *cells; /* nrows * ncols, row-major */
	struct query_stats stats;
	void *priv; /* string storage */
};

struct query_error {
	int position; /* byte offset in the text, -1 when not about a place */
	char message[512];
};

struct query_opts {
	int64_t max_rows;	    /* api.maxRows */
	int64_t timeout_ms;	    /* api.queryTimeoutMs */
	uint64_t now_ns;	    /* now() (0 = the clock); tests pin it */
	const volatile int *cancel; /* polled between batches; non-zero cancels */
	int threads;		    /* scan threads (0 = the CPUs online, at most 4) */
};

void query_opts_from_config(struct query_opts *o, const struct kp_config *cfg);

/*
 * Parses and runs text[0..len) against st. Returns 0 and *out (free with query_result_free), or
 * a negative error with err filled: -EINVAL (the query is wrong: err says what and where),
 * -ETIMEDOUT, -ECANCELED, STORE_ECORRUPT (data failed a checksum; the segment is quarantined),
 * -ENOMEM / -E2BIG (too many groups or rows kept for sorting).
 */
int query_exec(struct store *st, const char *text, size_t len, const struct query_opts *opts,
	       struct query_result **out, struct query_error *err);
/* Frees a result. Its strings may point into the store's symbol table: free results before
 * store_close. */
void query_result_free(struct query_result *r);

/*
 * Building a result outside the query engine (path queries answer in the same shape, through
 * the same writers). Cells start NULL; strings are copied into the result.
 */
struct query_result *query_result_new(int ncols, const char *const *names, const uint8_t *types);
size_t query_result_add_row(struct query_result *r); /* returns the new row's index */
void query_result_set_int(struct query_result *r, size_t row, int col, int64_t v);
void query_result_set_uint(struct query_result *r, size_t row, int col, uint64_t v);
void query_result_set_float(struct query_result *r, size_t row, int col, double v);
void query_result_set_str(struct query_result *r, size_t row, int col, const char *s);

/* Writers (append to out):
 *   JSON    {"columns":[{"name":..,"type":..}],"rows":[[..]],"stats":{..}}
 *   NDJSON  one {"col":value,...} object per row
 *   CSV     RFC 4180, a header line first */
enum query_format { QUERY_JSON, QUERY_NDJSON, QUERY_CSV };
int query_format_parse(const char *name, enum query_format *f); /* "json"|"ndjson"|"csv" */
void query_result_write(const struct query_result *r, enum query_format f, struct kp_buf *out);

#endif
