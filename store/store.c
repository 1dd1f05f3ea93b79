/*
 * store.c - the event store: the memtable, the seal thread, open and recovery, retention,
 * quarantine, query snapshots, and the `events` table provider the query engine scans.
 *
 * Memtable: append-only chunks of STORE_GRANULE rows stored column-wise. The appender fills a
 * row and then publishes the row count with a release store; queries read the count with an
 * acquire load and never look past it, so they do not block appends. The chunk pointer array is
 * allocated once at its full size and never moves. When a memtable reaches store.memtableRows
 * (or its first row is store.sealSec old) it is frozen and handed to the seal thread; queries
 * keep reading it until its segments are published in its place under one mutex, so a query
 * sees every row exactly once.
 *
 * Seal: rows are sorted by (day, pid, node, ts) — why, see segment.c — the metadata log is
 * fsynced, one segment per day is written (temp name, fsync, rename, directory fsync), then
 * store.state records the new sealed LSN. Recovery trusts a segment group whose LSN is past
 * store.state only if all of its parts made it to disk; otherwise the WAL replay rewrites it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "agent/wire.h"
#include "common/eventjson.h"
#include "common/util.h"
#include "store/internal.h"
#include "store/table.h"

#define STATE_MAGIC    0x5453504bu /* "KPST" */
#define STATE_VERSION  1
#define MAX_FROZEN     2
#define MAX_TABLES     8
#define DAY_NS	       (86400ull * NSEC_PER_SEC)
#define SEAL_MAX_PARTS 512 /* day partitions one memtable may span */

/* ------------------------------------------------------------------ memtable */

/* Rows are kept whole (the 64-byte event plus node and txn beside it): the seal reads them in
 * (pid, node, ts) order, and one cache line per row is far cheaper than one per column. */
struct memside {
	uint64_t node;
	const char *txn; /* interned; its length is the byte before it */
};

struct memchunk {
	struct kp_event ev[STORE_GRANULE];
	struct memside side[STORE_GRANULE];
	/* zone of the chunk, complete once the chunk is full */
	uint64_t ts_min, ts_max, dur_max;
	uint32_t pid_min, pid_max, type_mask;
};

struct txnpool {
	const char **slot;
	uint32_t nslot, used;
	void *chunks;
	char *at;
	size_t left;
};

struct memtable {
	atomic_int refs;
	uint32_t cap_chunks;
	struct memchunk **chunks;
	atomic_uint nrows;
	uint64_t min_lsn, max_lsn, born_mono;
	struct txnpool txn;
};

static const char EMPTY_REC[2] = {0, 0}; /* length byte, then "" */
#define EMPTY (EMPTY_REC + 1)

static struct memtable *mt_new(uint32_t cap_rows)
{
	struct memtable *mt = xcalloc(1, sizeof(*mt));
	atomic_init(&mt->refs, 1);
	mt->cap_chunks = (cap_rows + STORE_GRANULE - 1) / STORE_GRANULE;
	mt->chunks = xcalloc(mt->cap_chunks, sizeof(*mt->chunks));
	mt->txn.nslot = 1024;
	mt->txn.slot = xcalloc(mt->txn.nslot, sizeof(char *));
	return mt;
}

static void mt_unref(struct memtable *mt)
{
	if (!mt || atomic_fetch_sub(&mt->refs, 1) != 1)
		return;
	for (uint32_t i = 0; i < mt->cap_chunks; i++)
		free(mt->chunks[i]);
	free(mt->chunks);
	free(mt->txn.slot);
	while (mt->txn.chunks) {
		void **c = mt->txn.chunks;
		mt->txn.chunks = c[0];
		free(c);
	}
	free(mt);
}

/* Interns a txn id in the memtable's pool: equal ids share one pointer (the segment encoder's
 * dictionary relies on it). Strings are stored as len u8 + bytes; the pointer is to the bytes. */
static const char *txn_intern(struct txnpool *p, const char *s, uint8_t len)
{
	uint64_t h = store__hash_str(s, len);
	uint32_t i = (uint32_t)h & (p->nslot - 1);
	while (p->slot[i]) {
		const char *q = p->slot[i];
		if ((uint8_t)q[-1] == len && !memcmp(q, s, len))
			return q;
		i = (i + 1) & (p->nslot - 1);
	}
	if (p->left < (size_t)len + 1) {
		void **c = xmalloc(65536 + sizeof(void *));
		c[0] = p->chunks;
		p->chunks = c;
		p->at = (char *)(c + 1);
		p->left = 65536;
	}
	p->at[0] = (char)len;
	memcpy(p->at + 1, s, len);
	const char *r = p->at + 1;
	p->at += len + 1;
	p->left -= len + 1;
	p->slot[i] = r;
	if (++p->used * 2 > p->nslot) {
		uint32_t nn = p->nslot * 2;
		const char **ns = xcalloc(nn, sizeof(char *));
		for (uint32_t k = 0; k < p->nslot; k++) {
			const char *q = p->slot[k];
			if (!q)
				continue;
			uint32_t j = (uint32_t)store__hash_str(q, (uint8_t)q[-1]) & (nn - 1);
			while (ns[j])
				j = (j + 1) & (nn - 1);
			ns[j] = q;
		}
		free(p->slot);
		p->slot = ns;
		p->nslot = nn;
	}
	return r;
}

/* ------------------------------------------------------------------ the store */

struct table_reg {
	const struct table_ops *ops;
	void *ctx;
};

struct store {
	char *dir, *evdir, *qdir, *state_path;
	int retention_days;
	bool by_day;
	uint32_t memtable_rows;
	uint64_t seal_ns;

	struct store__meta *meta;

	pthread_mutex_t mu; /* segments, frozen, active pointer, sealed_lsn */
	pthread_cond_t cond;
	struct store__seg **segs;
	uint32_t nseg, capseg;
	struct memtable *frozen[MAX_FROZEN + 1];
	int nfrozen;
	struct memtable *active;
	uint64_t sealed_lsn, next_seg_id;
	int last_seal_err;
	uint64_t seal_attempts;

	pthread_mutex_t append_mu; /* the appender vs. the seal thread freezing by age */
	uint64_t last_lsn;

	pthread_t thread;
	bool stop, thread_started;
	uint64_t last_retention_mono;

	struct table_reg tables[MAX_TABLES];
	int ntables;

	struct store_txn_resolver resolver; /* set once at start-up, before queries */
	void *resolver_ctx;

	atomic_uint_fast64_t events_appended, frames_appended, dup_frames, bad_meta, seals,
		seal_errors, seal_ns_total, corrupt, expired;
};

void store_set_txn_resolver(struct store *st, const struct store_txn_resolver *r, void *ctx)
{
	if (r)
		st->resolver = *r;
	else
		memset(&st->resolver, 0, sizeof(st->resolver));
	st->resolver_ctx = ctx;
}

const char *store_strerror(int err)
{
	switch (err) {
	case STORE_EMAGIC:
		return "not a kprobe store file (bad magic)";
	case STORE_EVERSION:
		return "store file written by an unsupported format version";
	case STORE_ECHECKSUM:
		return "checksum mismatch";
	case STORE_ETRUNC:
		return "store file truncated";
	case STORE_ELAYOUT:
		return "store file layout out of bounds";
	case STORE_ECORRUPT:
		return "segment failed its checksum and was quarantined; re-run the query";
	default:
		return err < 0 ? strerror(-err) : "success";
	}
}

static void day_name(uint32_t day, char *out, size_t cap)
{
	if (day == STORE_DAY_ALL) {
		snprintf(out, cap, "all");
		return;
	}
	time_t t = (time_t)day * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, cap, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static int parse_day(const char *name, uint32_t *day)
{
	if (!strcmp(name, "all")) {
		*day = STORE_DAY_ALL;
		return 0;
	}
	struct tm tm = {0};
	char *e = strptime(name, "%Y-%m-%d", &tm);
	if (!e || *e)
		return -1;
	*day = (uint32_t)(timegm(&tm) / 86400);
	return 0;
}

static int fsync_path(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

/* ---- state file: magic u32 | version u16 | pad u16 | sealed_lsn u64 | next_seg_id u64
 *      | xxh3_64 of the 24 bytes before it ---- */

static int state_write(struct store *st, uint64_t sealed, uint64_t next_id)
{
	uint8_t b[32] = {0};
	uint32_t m = STATE_MAGIC;
	uint16_t v = STATE_VERSION;
	memcpy(b, &m, 4);
	memcpy(b + 4, &v, 2);
	memcpy(b + 8, &sealed, 8);
	memcpy(b + 16, &next_id, 8);
	uint64_t x = XXH3_64bits(b, 24);
	memcpy(b + 24, &x, 8);
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", st->state_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = 0;
	if (fd < 0)
		return -errno;
	if ((rc = write_full(fd, b, sizeof(b))) == 0 && fsync(fd))
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, st->state_path))
		rc = -errno;
	if (!rc)
		rc = fsync_path(st->evdir);
	return rc;
}

static int state_read(struct store *st, uint64_t *sealed, uint64_t *next_id)
{
	uint8_t b[32];
	int fd = open(st->state_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 : -errno;
	int rc = read_full(fd, b, sizeof(b));
	close(fd);
	if (rc < 0)
		return STORE_ETRUNC;
	uint32_t m;
	uint16_t v;
	uint64_t x;
	memcpy(&m, b, 4);
	memcpy(&v, b + 4, 2);
	memcpy(&x, b + 24, 8);
	if (m != STATE_MAGIC)
		return STORE_EMAGIC;
	if (v != STATE_VERSION)
		return STORE_EVERSION;
	if (XXH3_64bits(b, 24) != x)
		return STORE_ECHECKSUM;
	memcpy(sealed, b + 8, 8);
	memcpy(next_id, b + 16, 8);
	return 0;
}

/* ------------------------------------------------------------------ segments list */

static void segs_add_locked(struct store *st, struct store__seg *s)
{
	if (st->nseg == st->capseg) {
		st->capseg = st->capseg ? st->capseg * 2 : 64;
		st->segs = xrealloc(st->segs, st->capseg * sizeof(*st->segs));
	}
	st->segs[st->nseg++] = s;
}

static void quarantine_file(struct store *st, const char *path, uint32_t day, int err)
{
	char dst[9000], dn[32];
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	day_name(day, dn, sizeof(dn));
	snprintf(dst, sizeof(dst), "%s/%s-%s", st->qdir, dn, base);
	if (rename(path, dst))
		log_error("store: cannot move %s to quarantine: %s", path, strerror(errno));
	atomic_fetch_add(&st->corrupt, 1);
	log_error("store: segment %s is corrupt (%s): moved to %s, not served", path,
		  store_strerror(err), dst);
}

/* Called by a scan that found a bad block: the segment leaves the list at once. */
static void store__quarantine(struct store *st, struct store__seg *s)
{
	int expected = 0;
	if (!atomic_compare_exchange_strong(&s->corrupt, &expected, 1))
		return;
	pthread_mutex_lock(&st->mu);
	for (uint32_t i = 0; i < st->nseg; i++)
		if (st->segs[i] == s) {
			memmove(st->segs + i, st->segs + i + 1,
				(st->nseg - i - 1) * sizeof(*st->segs));
			st->nseg--;
			quarantine_file(st, s->path, s->day, STORE_ECHECKSUM);
			store__seg_unref(s);
			break;
		}
	pthread_mutex_unlock(&st->mu);
}

/* ------------------------------------------------------------------ seal */

struct sealctx {
	struct memtable *mt;
	const uint32_t *rows; /* final order: row ids of the memtable */
};

static void seal_gather(void *ctx, uint32_t off, uint32_t cnt, uint64_t *const *col,
			const char **txn, uint8_t *txn_len)
{
	struct sealctx *sc = ctx;
	struct memchunk *const *ch = sc->mt->chunks;
	for (uint32_t i = 0; i < cnt; i++) {
		if (i + 8 < cnt) {
			uint32_t pr = sc->rows[off + i + 8];
			__builtin_prefetch(&ch[pr / STORE_GRANULE]->ev[pr % STORE_GRANULE]);
			__builtin_prefetch(&ch[pr / STORE_GRANULE]->side[pr % STORE_GRANULE]);
		}
		uint32_t r = sc->rows[off + i];
		const struct memchunk *k = ch[r / STORE_GRANULE];
		const struct kp_event *e = &k->ev[r % STORE_GRANULE];
		const struct memside *sd = &k->side[r % STORE_GRANULE];
		col[SC_TS][i] = e->ts_ns;
		col[SC_DUR][i] = e->dur_ns;
		col[SC_PID][i] = e->pid;
		col[SC_TID][i] = e->tid;
		col[SC_CPU][i] = e->cpu;
		col[SC_TYPE][i] = e->type;
		col[SC_FLAGS][i] = e->flags;
		col[SC_RET][i] = (uint32_t)e->ret;
		col[SC_ARG0][i] = e->arg[0];
		col[SC_ARG1][i] = e->arg[1];
		col[SC_ARG2][i] = e->arg[2];
		col[SC_ARG3][i] = e->arg[3];
		col[SC_NODE][i] = sd->node;
		txn[i] = sd->txn;
		txn_len[i] = (uint8_t)sd->txn[-1];
	}
}

struct sgroup {
	uint64_t key, last_ts;
	uint32_t count, start, fill;
	bool unsorted; /* arrival order within the group was not ts order */
};

static int cmp_group(const void *a, const void *b)
{
	uint64_t x = ((const struct sgroup *)a)->key, y = ((const struct sgroup *)b)->key;
	return x < y ? -1 : x > y;
}

static __thread const struct memtable *tls_sort_mt;

static int cmp_row_ts(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	const struct memtable *mt = tls_sort_mt;
	uint64_t tx = mt->chunks[x / STORE_GRANULE]->ev[x % STORE_GRANULE].ts_ns;
	uint64_t ty = mt->chunks[y / STORE_GRANULE]->ev[y % STORE_GRANULE].ts_ns;
	if (tx != ty)
		return tx < ty ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Writes the frozen memtable's segments. Returns 0 or -errno; on success *out holds nparts
 * opened segments. */
static int seal_write(struct store *st, struct memtable *mt, struct store__seg **out,
		      uint32_t *nout)
{
	uint32_t n = atomic_load(&mt->nrows), ngr = 0, capgr = 1024, nodes = 0;
	int rc = 0;
	uint64_t node_ids[64];
	uint32_t *rows = xmalloc(sizeof(uint32_t) * (n ? n : 1));
	uint64_t *key = xmalloc(sizeof(uint64_t) * (n ? n : 1));
	struct sgroup *gr = xmalloc(sizeof(*gr) * capgr);
	uint32_t hslots = 4096, *hs = xcalloc(hslots, sizeof(uint32_t)); /* group index + 1 */

	/* events spread over more days than a seal can hold mean a clock gone wrong: rather than
	 * refuse the seal (which would stall ingest), they all go to the newest day */
	uint64_t dmin = UINT64_MAX, dmax = 0;
	for (uint32_t r = 0; st->by_day && r < n; r++) {
		uint64_t d = mt->chunks[r / STORE_GRANULE]->ev[r % STORE_GRANULE].ts_ns / DAY_NS;
		dmin = KP_MIN(dmin, d);
		dmax = KP_MAX(dmax, d);
	}
	bool collapse = st->by_day && n && dmax - dmin >= SEAL_MAX_PARTS;
	if (collapse)
		log_warn("store: a memtable spans %" PRIu64 " days (an agent's clock is off?); its "
			 "rows all go to the newest day's partition",
			 dmax - dmin + 1);

	/* group rows by (day, pid, node): a counting sort, stable, so arrival order (almost
	 * always ts order) survives inside a group */
	for (uint32_t r = 0; r < n; r++) {
		const struct memchunk *k = mt->chunks[r / STORE_GRANULE];
		uint32_t j = r % STORE_GRANULE;
		uint64_t day = !st->by_day ? 0 : collapse ? dmax : k->ev[j].ts_ns / DAY_NS, ni = 0;
		while (ni < nodes && node_ids[ni] != k->side[j].node)
			ni++;
		if (ni == nodes && nodes < 64)
			node_ids[nodes++] = k->side[j].node;
		uint64_t kk = (day << 48) | ((uint64_t)k->ev[j].pid << 16) | (ni & 0xffff);
		key[r] = kk;
		uint32_t h = (uint32_t)store__hash_u64(kk) & (hslots - 1);
		while (hs[h] && gr[hs[h] - 1].key != kk)
			h = (h + 1) & (hslots - 1);
		if (!hs[h]) {
			if (ngr == capgr) {
				capgr *= 2;
				gr = xrealloc(gr, sizeof(*gr) * capgr);
			}
			gr[ngr] = (struct sgroup){kk, 0, 0, 0, 0, false};
			hs[h] = ++ngr;
			if (ngr * 2 > hslots) {
				uint32_t nh = hslots * 4, *n2 = xcalloc(nh, sizeof(uint32_t));
				for (uint32_t g = 0; g < ngr; g++) {
					uint32_t q =
						(uint32_t)store__hash_u64(gr[g].key) & (nh - 1);
					while (n2[q])
						q = (q + 1) & (nh - 1);
					n2[q] = g + 1;
				}
				free(hs);
				hs = n2;
				hslots = nh;
			}
		}
	}
	/* the hash maps a key to its group; count with a second pass (the table is final) */
	for (uint32_t r = 0; r < n; r++) {
		uint32_t h = (uint32_t)store__hash_u64(key[r]) & (hslots - 1);
		while (gr[hs[h] - 1].key != key[r])
			h = (h + 1) & (hslots - 1);
		struct sgroup *g = &gr[hs[h] - 1];
		uint64_t ts = mt->chunks[r / STORE_GRANULE]->ev[r % STORE_GRANULE].ts_ns;
		g->unsorted |= ts < g->last_ts;
		g->last_ts = ts;
		g->count++;
	}
	/* order groups by key, then place rows */
	qsort(gr, ngr, sizeof(*gr), cmp_group);
	uint32_t at = 0;
	for (uint32_t g = 0; g < ngr; g++) {
		gr[g].start = at;
		gr[g].fill = at;
		at += gr[g].count;
	}
	/* rebuild the hash after the sort: key -> sorted group */
	memset(hs, 0, hslots * sizeof(uint32_t));
	for (uint32_t g = 0; g < ngr; g++) {
		uint32_t q = (uint32_t)store__hash_u64(gr[g].key) & (hslots - 1);
		while (hs[q])
			q = (q + 1) & (hslots - 1);
		hs[q] = g + 1;
	}
	for (uint32_t r = 0; r < n; r++) {
		uint32_t h = (uint32_t)store__hash_u64(key[r]) & (hslots - 1);
		while (gr[hs[h] - 1].key != key[r])
			h = (h + 1) & (hslots - 1);
		rows[gr[hs[h] - 1].fill++] = r;
	}
	tls_sort_mt = mt;
	for (uint32_t g = 0; g < ngr; g++) {
		if (gr[g].unsorted)
			qsort(rows + gr[g].start, gr[g].count, sizeof(uint32_t), cmp_row_ts);
	}

	/* one part per day */
	uint32_t nparts = 0;
	for (uint32_t g = 0; g < ngr; g++)
		if (!g || (gr[g].key >> 48) != (gr[g - 1].key >> 48))
			nparts++;
	if (nparts > SEAL_MAX_PARTS)
		abort(); /* NEVER: collapsed above */
	pthread_mutex_lock(&st->mu);
	uint64_t first_id = st->next_seg_id;
	st->next_seg_id += nparts;
	pthread_mutex_unlock(&st->mu);
	*nout = 0;
	uint32_t part = 0;
	for (uint32_t g = 0; g < ngr;) {
		uint32_t g2 = g;
		while (g2 < ngr && (gr[g2].key >> 48) == (gr[g].key >> 48))
			g2++;
		uint32_t start = gr[g].start, cnt = gr[g2 - 1].start + gr[g2 - 1].count - start;
		uint32_t day = st->by_day ? (uint32_t)(gr[g].key >> 48) : STORE_DAY_ALL;
		char dn[32], dir[4200], path[4300];
		day_name(day, dn, sizeof(dn));
		snprintf(dir, sizeof(dir), "%s/%s", st->evdir, dn);
		if ((rc = mkdir_p(dir, 0755)) < 0)
			break;
		if ((rc = fsync_path(st->evdir)) < 0)
			break;
		snprintf(path, sizeof(path), "%s/%012" PRIu64 ".kps", dir, first_id + part);
		struct sealctx psc = {mt, rows + start};
		struct store__seg_input in = {
			.n = cnt,
			.ctx = &psc,
			.gather = seal_gather,
			.seg_id = first_id + part,
			.group_id = first_id,
			.min_lsn = mt->min_lsn,
			.max_lsn = mt->max_lsn,
			.part = part,
			.nparts = nparts,
			.day = day,
		};
		if ((rc = store__seg_write(path, &in)) < 0)
			break;
		struct store__seg *s;
		if ((rc = store__seg_open(path, false, &s)) < 0)
			break;
		out[(*nout)++] = s;
		part++;
		g = g2;
	}
	free(hs);
	free(gr);
	free(key);
	free(rows);
	return rc;
}

/* Seals the oldest frozen memtable. Called by the seal thread only, without locks. */
static int seal_one(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	struct memtable *mt = st->nfrozen ? st->frozen[0] : NULL;
	pthread_mutex_unlock(&st->mu);
	if (!mt)
		return 0;
	uint64_t t0 = now_mono_ns();
	struct store__seg *parts[SEAL_MAX_PARTS];
	uint32_t nparts = 0;
	int rc = store__meta_sync(st->meta);
	if (!rc && atomic_load(&mt->nrows) > 0) {
		rc = seal_write(st, mt, parts, &nparts);
	}
	if (!rc)
		rc = state_write(st, mt->max_lsn, st->next_seg_id);
	pthread_mutex_lock(&st->mu);
	st->seal_attempts++;
	if (rc) {
		st->last_seal_err = rc;
		pthread_mutex_unlock(&st->mu);
		for (uint32_t i = 0; i < nparts; i++)
			store__seg_unref(parts[i]);
		atomic_fetch_add(&st->seal_errors, 1);
		log_error("store: sealing %u rows failed: %s (retrying)", atomic_load(&mt->nrows),
			  store_strerror(rc));
		pthread_cond_broadcast(&st->cond);
		return rc;
	}
	st->last_seal_err = 0;
	for (uint32_t i = 0; i < nparts; i++)
		segs_add_locked(st, parts[i]);
	memmove(st->frozen, st->frozen + 1, (st->nfrozen - 1) * sizeof(st->frozen[0]));
	st->nfrozen--;
	if (mt->max_lsn > st->sealed_lsn)
		st->sealed_lsn = mt->max_lsn;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->mu);
	atomic_fetch_add(&st->seals, 1);
	atomic_fetch_add(&st->seal_ns_total, now_mono_ns() - t0);
	mt_unref(mt);
	return 0;
}

/* Freezes the active memtable (append_mu held). Waits while MAX_FROZEN are pending. */
static void freeze_locked(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	while (st->nfrozen >= MAX_FROZEN && !st->stop)
		pthread_cond_wait(&st->cond, &st->mu);
	struct memtable *mt = st->active;
	if (mt && (atomic_load(&mt->nrows) > 0 || mt->max_lsn > st->sealed_lsn)) {
		st->frozen[st->nfrozen++] = mt;
		st->active = NULL;
		pthread_cond_broadcast(&st->cond);
	}
	pthread_mutex_unlock(&st->mu);
}

static void *seal_thread(void *arg)
{
	struct store *st = arg;
	for (;;) {
		pthread_mutex_lock(&st->mu);
		if (!st->nfrozen && !st->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&st->cond, &st->mu, &ts);
		}
		bool stop = st->stop, have = st->nfrozen > 0;
		pthread_mutex_unlock(&st->mu);
		if (have) {
			if (seal_one(st) < 0) {
				if (stop)
					break; /* give up at close: the WAL replays it */
				usleep(1000 * 1000);
			}
			continue;
		}
		if (stop)
			break;
		/* store.sealSec: the appender's lock makes the memtable's fields stable here */
		pthread_mutex_lock(&st->append_mu);
		struct memtable *act = st->active;
		if (act && now_mono_ns() - act->born_mono >= st->seal_ns)
			freeze_locked(st); /* rows, or only metadata frames: the sealed LSN moves */
		pthread_mutex_unlock(&st->append_mu);
		if (now_mono_ns() - st->last_retention_mono > 3600 * NSEC_PER_SEC)
			store_retention_run(st, 0);
	}
	return NULL;
}

/* ------------------------------------------------------------------ append */

int store_append(struct store *st, uint64_t lsn, uint64_t node_id, const struct kp_event *ev,
		 uint32_t n, const void *meta, size_t meta_len, const char *const *txn)
{
	if (n > WIRE_MAX_EVENTS || (n && !ev) || (meta_len && !meta))
		return -EINVAL;
	pthread_mutex_lock(&st->append_mu);
	if (lsn <= st->last_lsn || lsn <= store_sealed_lsn(st)) {
		atomic_fetch_add(&st->dup_frames, 1);
		pthread_mutex_unlock(&st->append_mu);
		return 0;
	}
	st->last_lsn = lsn;
	if (meta_len) {
		struct wire_meta_iter it = {meta, (const uint8_t *)meta + meta_len};
		uint16_t kind, len;
		const void *pl;
		while (wire_meta_next(&it, &kind, &pl, &len)) {
			/* kinds kept elsewhere: file paths (the engine), replay capture records
			 * (kprobed's capture store) */
			if (kind == WIRE_META_FILE || kind == WIRE_META_CAPTURE)
				continue;
			if (store__meta_apply(st->meta, node_id, kind, pl, len, true))
				atomic_fetch_add(&st->bad_meta, 1);
		}
		if (it.p != it.end)
			atomic_fetch_add(&st->bad_meta, 1); /* a torn trailing record */
	}

	pthread_mutex_lock(&st->mu);
	if (!st->active) {
		st->active = mt_new(st->memtable_rows + WIRE_MAX_EVENTS);
		st->active->born_mono = now_mono_ns();
	}
	struct memtable *mt = st->active;
	pthread_mutex_unlock(&st->mu);
	if (!mt->min_lsn)
		mt->min_lsn = lsn;
	mt->max_lsn = lsn;
	uint32_t r = atomic_load_explicit(&mt->nrows, memory_order_relaxed);
	for (uint32_t i = 0; i < n; i++, r++) {
		uint32_t c = r / STORE_GRANULE, j = r % STORE_GRANULE;
		struct memchunk *k = mt->chunks[c];
		if (!k) {
			k = mt->chunks[c] = malloc(sizeof(*k));
			if (!k) {
				atomic_store_explicit(&mt->nrows, r, memory_order_release);
				pthread_mutex_unlock(&st->append_mu);
				return -ENOMEM;
			}
			k->ts_min = UINT64_MAX;
			k->ts_max = k->dur_max = 0;
			k->pid_min = UINT32_MAX;
			k->pid_max = k->type_mask = 0;
		}
		const struct kp_event *e = &ev[i];
		k->ev[j] = *e;
		k->side[j].node = node_id;
		const char *t = txn ? txn[i] : NULL;
		if (t && t[0]) {
			size_t tl = strnlen(t, STORE_TXN_MAX);
			k->side[j].txn = txn_intern(&mt->txn, t, (uint8_t)tl);
		} else {
			k->side[j].txn = EMPTY;
		}
		k->ts_min = KP_MIN(k->ts_min, e->ts_ns);
		k->ts_max = KP_MAX(k->ts_max, e->ts_ns);
		k->dur_max = KP_MAX(k->dur_max, e->dur_ns);
		k->pid_min = KP_MIN(k->pid_min, e->pid);
		k->pid_max = KP_MAX(k->pid_max, e->pid);
		k->type_mask |= 1u << (e->type < 31 ? e->type : 31);
	}
	atomic_store_explicit(&mt->nrows, r, memory_order_release);
	atomic_fetch_add(&st->events_appended, n);
	atomic_fetch_add(&st->frames_appended, 1);
	if (r >= st->memtable_rows)
		freeze_locked(st);
	pthread_mutex_unlock(&st->append_mu);
	return 0;
}

int store_flush(struct store *st)
{
	pthread_mutex_lock(&st->append_mu);
	freeze_locked(st);
	pthread_mutex_unlock(&st->append_mu);
	pthread_mutex_lock(&st->mu);
	uint64_t attempts = st->seal_attempts;
	int rc = 0;
	while (st->nfrozen) {
		pthread_cond_wait(&st->cond, &st->mu);
		if (st->seal_attempts != attempts && st->last_seal_err) {
			rc = st->last_seal_err;
			break;
		}
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}

uint64_t store_sealed_lsn(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	uint64_t v = st->sealed_lsn;
	pthread_mutex_unlock(&st->mu);
	return v;
}

/* ------------------------------------------------------------------ retention */

int store_retention_run(struct store *st, uint64_t now_ns)
{
	if (!now_ns)
		now_ns = now_real_ns();
	st->last_retention_mono = now_mono_ns();
	uint64_t today = now_ns / DAY_NS;
	uint64_t cutoff = today >= (uint64_t)st->retention_days ? today - st->retention_days : 0;
	int removed = 0;
	/* collect expired days (partitioned) or expired segments (unpartitioned) */
	pthread_mutex_lock(&st->mu);
	uint32_t keep = 0;
	struct store__seg **gone = xmalloc(sizeof(*gone) * (st->nseg ? st->nseg : 1));
	uint32_t ngone = 0;
	for (uint32_t i = 0; i < st->nseg; i++) {
		struct store__seg *s = st->segs[i];
		bool exp = s->day == STORE_DAY_ALL ? s->ts_max / DAY_NS < cutoff : s->day < cutoff;
		if (exp)
			gone[ngone++] = s;
		else
			st->segs[keep++] = s;
	}
	st->nseg = keep;
	pthread_mutex_unlock(&st->mu);
	for (uint32_t i = 0; i < ngone; i++) {
		unlink(gone[i]->path); /* queries holding it keep reading the mapping */
		store__seg_unref(gone[i]);
	}
	free(gone);
	/* whole directories of expired days go, including anything a crash left in them */
	DIR *d = opendir(st->evdir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		uint32_t day;
		if (de->d_name[0] == '.' || parse_day(de->d_name, &day) || day == STORE_DAY_ALL ||
		    day >= cutoff)
			continue;
		char p[4200];
		snprintf(p, sizeof(p), "%s/%s", st->evdir, de->d_name);
		DIR *d2 = opendir(p);
		struct dirent *f;
		while (d2 && (f = readdir(d2))) {
			if (f->d_name[0] == '.')
				continue;
			char fp[4500];
			snprintf(fp, sizeof(fp), "%s/%s", p, f->d_name);
			unlink(fp);
		}
		if (d2)
			closedir(d2);
		if (!rmdir(p)) {
			removed++;
			atomic_fetch_add(&st->expired, 1);
			log_info("store: retention removed partition %s (older than %d days)",
				 de->d_name, st->retention_days);
		}
	}
	if (d)
		closedir(d);
	if (removed)
		fsync_path(st->evdir);
	return removed;
}

/* ------------------------------------------------------------------ open / close */

static int load_segments(struct store *st, uint64_t state_lsn, bool have_state)
{
	DIR *d = opendir(st->evdir);
	if (!d)
		return -errno;
	struct dirent *de;
	uint64_t max_id = 0;
	while ((de = readdir(d))) {
		uint32_t day;
		if (de->d_name[0] == '.' || parse_day(de->d_name, &day))
			continue;
		char p[4200];
		snprintf(p, sizeof(p), "%s/%s", st->evdir, de->d_name);
		DIR *d2 = opendir(p);
		struct dirent *f;
		while (d2 && (f = readdir(d2))) {
			size_t l = strlen(f->d_name);
			char fp[4500];
			snprintf(fp, sizeof(fp), "%s/%s", p, f->d_name);
			if (l > 4 && !strcmp(f->d_name + l - 4, ".tmp")) {
				log_info("store: removing %s left by an interrupted seal", fp);
				unlink(fp);
				continue;
			}
			if (l < 5 || strcmp(f->d_name + l - 4, ".kps"))
				continue;
			uint64_t id = strtoull(f->d_name, NULL, 10);
			max_id = KP_MAX(max_id, id);
			struct store__seg *s;
			int rc = store__seg_open(fp, true, &s);
			if (rc == -ENOMEM) {
				closedir(d2);
				closedir(d);
				return rc;
			}
			if (rc) {
				quarantine_file(st, fp, day, rc);
				continue;
			}
			segs_add_locked(st, s);
		}
		if (d2)
			closedir(d2);
	}
	closedir(d);
	/* groups past the recorded sealed LSN count only when complete */
	uint32_t keep = 0;
	uint64_t sealed = state_lsn;
	for (uint32_t i = 0; i < st->nseg; i++) {
		struct store__seg *s = st->segs[i];
		bool ok = true;
		if (!have_state || s->max_lsn > state_lsn) {
			uint32_t parts = 0;
			for (uint32_t j = 0; j < st->nseg; j++)
				parts += st->segs[j]->group_id == s->group_id;
			ok = parts == s->nparts;
		}
		if (!ok) {
			log_warn("store: %s is part of an incomplete seal (LSN %" PRIu64
				 "): removed, the WAL replay restores its rows",
				 s->path, s->max_lsn);
			unlink(s->path);
			store__seg_unref(s);
			continue;
		}
		sealed = KP_MAX(sealed, s->max_lsn);
		st->segs[keep++] = s;
	}
	st->nseg = keep;
	st->sealed_lsn = sealed;
	st->next_seg_id = KP_MAX(st->next_seg_id, max_id + 1);
	return 0;
}

static const struct table_ops events_ops;

int store_open(const struct kp_config *cfg, struct store **out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	char buf[4200];
	int rc;
	st->dir = xstrdup(cfg->store_data_dir);
	snprintf(buf, sizeof(buf), "%s/events", st->dir);
	st->evdir = xstrdup(buf);
	snprintf(buf, sizeof(buf), "%s/quarantine", st->dir);
	st->qdir = xstrdup(buf);
	snprintf(buf, sizeof(buf), "%s/events/store.state", st->dir);
	st->state_path = xstrdup(buf);
	st->retention_days = (int)cfg->store_retention_days;
	st->by_day = cfg->store_partition_by_day;
	st->memtable_rows = (uint32_t)cfg->store_memtable_rows;
	st->seal_ns = (uint64_t)cfg->store_seal_sec * NSEC_PER_SEC;
	st->next_seg_id = 1;
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->append_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&st->cond, &ca);
	st->tables[st->ntables++] = (struct table_reg){&events_ops, st};

	if ((rc = mkdir_p(st->evdir, 0755)) < 0 || (rc = mkdir_p(st->qdir, 0755)) < 0)
		goto fail;
	snprintf(buf, sizeof(buf), "%s.tmp", st->state_path);
	unlink(buf);
	uint64_t sl = 0, nid = 1;
	rc = state_read(st, &sl, &nid);
	bool have_state = rc == 0;
	if (rc < 0) {
		log_error("store: %s: %s; trusting complete segment groups only", st->state_path,
			  store_strerror(rc));
		sl = 0;
		nid = 1;
	}
	st->next_seg_id = nid;
	if ((rc = load_segments(st, sl, have_state)) < 0)
		goto fail;
	snprintf(buf, sizeof(buf), "%s/meta.log", st->evdir);
	if ((rc = store__meta_open(buf, &st->meta)) < 0) {
		log_error("store: %s: %s", buf, store_strerror(rc));
		goto fail;
	}
	st->last_lsn = st->sealed_lsn;
	store_retention_run(st, 0);
	if ((rc = pthread_create(&st->thread, NULL, seal_thread, st))) {
		rc = -rc;
		goto fail;
	}
	st->thread_started = true;
	log_info("store: opened %s: %u segments, sealed LSN %" PRIu64, st->dir, st->nseg,
		 st->sealed_lsn);
	*out = st;
	return 0;
fail:
	store_close(st);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->thread_started) {
		pthread_mutex_lock(&st->append_mu);
		freeze_locked(st);
		pthread_mutex_unlock(&st->append_mu);
		pthread_mutex_lock(&st->mu);
		st->stop = true;
		pthread_cond_broadcast(&st->cond);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->thread, NULL);
	}
	for (int i = 0; i < st->nfrozen; i++)
		mt_unref(st->frozen[i]);
	mt_unref(st->active);
	for (uint32_t i = 0; i < st->nseg; i++)
		store__seg_unref(st->segs[i]);
	free(st->segs);
	store__meta_close(st->meta);
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->append_mu);
	pthread_cond_destroy(&st->cond);
	free(st->dir);
	free(st->evdir);
	free(st->qdir);
	free(st->state_path);
	free(st);
}

void store_stats_get(struct store *st, struct store_stats *o)
{
	memset(o, 0, sizeof(*o));
	o->events_appended = atomic_load(&st->events_appended);
	o->frames_appended = atomic_load(&st->frames_appended);
	o->dup_frames = atomic_load(&st->dup_frames);
	o->bad_meta = atomic_load(&st->bad_meta);
	o->seals = atomic_load(&st->seals);
	o->seal_errors = atomic_load(&st->seal_errors);
	o->seal_ns_total = atomic_load(&st->seal_ns_total);
	o->corrupt_segments = atomic_load(&st->corrupt);
	o->partitions_expired = atomic_load(&st->expired);
	pthread_mutex_lock(&st->mu);
	o->segments = st->nseg;
	for (uint32_t i = 0; i < st->nseg; i++) {
		o->segment_rows += st->segs[i]->n_rows;
		o->segment_bytes += st->segs[i]->map_len;
	}
	for (int i = 0; i < st->nfrozen; i++)
		o->memtable_rows += atomic_load(&st->frozen[i]->nrows);
	if (st->active)
		o->memtable_rows += atomic_load(&st->active->nrows);
	o->sealed_lsn = st->sealed_lsn;
	pthread_mutex_unlock(&st->mu);
	store__meta_counts(st->meta, &o->procs, &o->conns, &o->nodes);
}

/* ------------------------------------------------------------------ tables */

int store_table_register(struct store *st, const struct table_ops *ops, void *ctx)
{
	const struct table_ops *o;
	void *c;
	if (!store_table_find(st, ops->name, strlen(ops->name), &o, &c))
		return -EEXIST;
	if (st->ntables == MAX_TABLES)
		return -ENOSPC;
	st->tables[st->ntables++] = (struct table_reg){ops, ctx};
	return 0;
}

int store_table_find(struct store *st, const char *name, size_t len, const struct table_ops **ops,
		     void **ctx)
{
	for (int i = 0; i < st->ntables; i++)
		if (strlen(st->tables[i].ops->name) == len &&
		    !strncasecmp(st->tables[i].ops->name, name, len)) {
			*ops = st->tables[i].ops;
			*ctx = st->tables[i].ctx;
			return 0;
		}
	return -ENOENT;
}

void store_table_names(struct store *st, char *out, size_t cap)
{
	size_t at = 0;
	out[0] = '\0';
	for (int i = 0; i < st->ntables && at < cap; i++)
		at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? ", " : "",
				       st->tables[i].ops->name);
}

/* ------------------------------------------------------------------ the events table */

/*
 * Logical columns: the physical ones, metadata joined by (node, pid, ts) and (node, conn), and
 * the per-type views of arg[] (bpf/event.h), NULL for rows of other types.
 */
enum evcol {
	EC_TS,
	EC_DUR,
	EC_PID,
	EC_TID,
	EC_CPU,
	EC_TYPE,
	EC_FLAGS,
	EC_RET,
	EC_NODE,
	EC_NODE_ID,
	EC_TXN,
	EC_TRACE,
	EC_COMM,
	EC_CMDLINE,
	EC_CGROUP,
	EC_CONTAINER,
	EC_POD,
	EC_NAMESPACE,
	EC_SERVICE,
	EC_PPID,
	EC_FD,
	EC_BYTES,
	EC_SYSCALL,
	EC_INODE,
	EC_CONN,
	EC_SEQ,
	EC_SPORT,
	EC_DPORT,
	EC_FAMILY,
	EC_OLD_STATE,
	EC_NEW_STATE,
	EC_TCP_STATE,
	EC_REASON,
	EC_PREV_STATE,
	EC_WAKER,
	EC_RUNQ,
	EC_HOLDER,
	EC_PAGES,
	EC_KIND,
	EC_MEMCG,
	EC_ORDER,
	EC_COUNT,
	EC_ADDR,
	EC_LAST_ADDR,
	EC_WRITE_FAULTS,
	EC_PROC_EVENT,
	EC_CHILD,
	EC_SADDR,
	EC_DADDR,
	EC_NCOLS
};
#define EC_META_FIRST EC_COMM
#define EC_META_LAST  EC_PPID
#define EC_PT_FIRST   EC_FD
#define EC_PT_LAST    EC_CHILD

static const struct table_col ev_cols[EC_NCOLS] = {
	[EC_TS] = {"ts", TT_INT, TC_TIME, "start, Unix epoch ns"},
	[EC_DUR] = {"dur", TT_INT, 0, "duration ns (0 for instantaneous events)"},
	[EC_PID] = {"pid", TT_INT, 0, "process id (tgid)"},
	[EC_TID] = {"tid", TT_INT, 0, "thread id"},
	[EC_CPU] = {"cpu", TT_INT, 0, "CPU"},
	[EC_TYPE] = {"type", TT_SYM, 0, "read, write, fsync, tcp_send, tcp_recv, conn, ..."},
	[EC_FLAGS] = {"flags", TT_INT, 0, "KP_F_* bits"},
	[EC_RET] = {"ret", TT_INT, 0, "return value or -errno"},
	[EC_NODE] = {"node", TT_SYM, 0, "node name"},
	[EC_NODE_ID] = {"node_id", TT_INT, TC_UNSIGNED, "node id"},
	[EC_TXN] = {"txn", TT_STR, 0, "transaction id ('' when unknown)"},
	[EC_TRACE] = {"trace_id", TT_STR, 0,
		      "OpenTelemetry trace id (filled by the causal engine)"},
	[EC_COMM] = {"comm", TT_SYM, 0, "process name"},
	[EC_CMDLINE] = {"cmdline", TT_SYM, 0, "command line (head)"},
	[EC_CGROUP] = {"cgroup", TT_SYM, 0, "cgroup path"},
	[EC_CONTAINER] = {"container", TT_SYM, 0, "container id"},
	[EC_POD] = {"pod", TT_SYM, 0, "Kubernetes pod"},
	[EC_NAMESPACE] = {"namespace", TT_SYM, 0, "Kubernetes namespace"},
	[EC_SERVICE] = {"service", TT_SYM, 0, "service name"},
	[EC_PPID] = {"ppid", TT_INT, TC_NULLABLE, "parent pid"},
	[EC_FD] = {"fd", TT_INT, TC_NULLABLE, "read/write/fsync: file descriptor"},
	[EC_BYTES] = {"bytes", TT_INT, TC_NULLABLE, "read/write: bytes asked; tcp: bytes"},
	[EC_SYSCALL] = {"syscall", TT_SYM, TC_NULLABLE, "read/write/fsync: system call (pwrite64, ...)"},
	[EC_INODE] = {"inode", TT_INT, TC_NULLABLE | TC_UNSIGNED, "read/write/fsync: inode"},
	[EC_CONN] = {"conn", TT_INT, TC_NULLABLE | TC_UNSIGNED, "tcp/conn/retransmit: conn id"},
	[EC_SEQ] = {"seq", TT_INT, TC_NULLABLE, "tcp_send/tcp_recv/retransmit: TCP sequence"},
	[EC_SPORT] = {"sport", TT_INT, TC_NULLABLE, "tcp/conn/retransmit: local port"},
	[EC_DPORT] = {"dport", TT_INT, TC_NULLABLE, "tcp/conn/retransmit: remote port"},
	[EC_FAMILY] = {"family", TT_SYM, TC_NULLABLE, "conn: ipv4 or ipv6"},
	[EC_OLD_STATE] = {"old_state", TT_SYM, TC_NULLABLE, "conn: previous TCP state (ESTABLISHED, ...)"},
	[EC_NEW_STATE] = {"new_state", TT_SYM, TC_NULLABLE, "conn: new TCP state"},
	[EC_TCP_STATE] = {"tcp_state", TT_SYM, TC_NULLABLE, "retransmit: TCP state"},
	[EC_REASON] = {"reason", TT_SYM, TC_NULLABLE, "offcpu: blocked or preempted"},
	[EC_PREV_STATE] = {"prev_state", TT_INT, TC_NULLABLE,
			   "offcpu: task state when switched out"},
	[EC_WAKER] = {"waker", TT_INT, TC_NULLABLE, "offcpu: waker tid (0 if none)"},
	[EC_RUNQ] = {"runq", TT_INT, TC_NULLABLE, "offcpu: run-queue delay ns"},
	[EC_HOLDER] = {"holder_tid", TT_INT, TC_NULLABLE, "offcpu: tid that held the CPU"},
	[EC_PAGES] = {"pages", TT_INT, TC_NULLABLE, "reclaim: pages reclaimed"},
	[EC_KIND] = {"kind", TT_SYM, TC_NULLABLE, "reclaim: direct or memcg"},
	[EC_MEMCG] = {"memcg", TT_INT, TC_NULLABLE | TC_UNSIGNED, "reclaim: memory cgroup id"},
	[EC_ORDER] = {"order", TT_INT, TC_NULLABLE, "reclaim: allocation order"},
	[EC_COUNT] = {"count", TT_INT, TC_NULLABLE, "faults: fault count"},
	[EC_ADDR] = {"addr", TT_INT, TC_NULLABLE | TC_UNSIGNED, "faults: first address"},
	[EC_LAST_ADDR] = {"last_addr", TT_INT, TC_NULLABLE | TC_UNSIGNED, "faults: last address"},
	[EC_WRITE_FAULTS] = {"write_faults", TT_INT, TC_NULLABLE, "faults: write faults"},
	[EC_PROC_EVENT] = {"proc_event", TT_SYM, TC_NULLABLE, "proc: exec, fork or exit"},
	[EC_CHILD] = {"child", TT_INT, TC_NULLABLE, "proc fork: the child's pid"},
	[EC_SADDR] = {"saddr", TT_SYM, TC_NULLABLE, "tcp/conn/retransmit: local address"},
	[EC_DADDR] = {"daddr", TT_SYM, TC_NULLABLE, "tcp/conn/retransmit: remote address"},
};

/* Per-type views: arg index per type (-1: NULL), then shift and mask. */
struct ptview {
	int8_t arg[KP_TYPE_MAX];
	uint8_t shift;
	uint64_t mask;
};
#define NA -1
#define ALLNA                                                                                      \
	{                                                                                          \
		NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA                                     \
	}
/*                      none rd  wr  fs  snd rcv con rtx off rcl flt proc */
static const struct ptview ptv[EC_PT_LAST - EC_PT_FIRST + 1] = {
	[EC_FD - EC_PT_FIRST] = {{NA, 0, 0, 0, NA, NA, NA, NA, NA, NA, NA, NA}, 0, ~0ull},
	[EC_BYTES - EC_PT_FIRST] = {{NA, 1, 1, NA, 1, 1, NA, NA, NA, NA, NA, NA}, 0, ~0ull},
	[EC_SYSCALL - EC_PT_FIRST] = {{NA, 2, 2, 2, NA, NA, NA, NA, NA, NA, NA, NA}, 0, ~0ull},
	[EC_INODE - EC_PT_FIRST] = {{NA, 3, 3, 3, NA, NA, NA, NA, NA, NA, NA, NA}, 0, ~0ull},
	[EC_CONN - EC_PT_FIRST] = {{NA, NA, NA, NA, 0, 0, 0, 0, NA, NA, NA, NA}, 0, ~0ull},
	[EC_SEQ - EC_PT_FIRST] = {{NA, NA, NA, NA, 2, 2, NA, 1, NA, NA, NA, NA}, 0, ~0ull},
	[EC_SPORT - EC_PT_FIRST] = {{NA, NA, NA, NA, 3, 3, 3, 3, NA, NA, NA, NA}, 0, 0xffff},
	[EC_DPORT - EC_PT_FIRST] = {{NA, NA, NA, NA, 3, 3, 3, 3, NA, NA, NA, NA}, 16, 0xffff},
	[EC_FAMILY - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, 3, NA, NA, NA, NA, NA}, 32, 0xffff},
	[EC_OLD_STATE - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, 1, NA, NA, NA, NA, NA}, 0, ~0ull},
	[EC_NEW_STATE - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, 2, NA, NA, NA, NA, NA}, 0, ~0ull},
	[EC_TCP_STATE - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, 2, NA, NA, NA, NA}, 0, ~0ull},
	[EC_REASON - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, 0, NA, NA, NA}, 0, 0xff},
	[EC_PREV_STATE - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, 0, NA, NA, NA}, 8, ~0ull},
	[EC_WAKER - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, 1, NA, NA, NA}, 0, ~0ull},
	[EC_RUNQ - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, 2, NA, NA, NA}, 0, ~0ull},
	[EC_HOLDER - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, 3, NA, NA, NA}, 0, ~0ull},
	[EC_PAGES - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, 0, NA, NA}, 0, ~0ull},
	[EC_KIND - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, 1, NA, NA}, 0, ~0ull},
	[EC_MEMCG - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, 2, NA, NA}, 0, ~0ull},
	[EC_ORDER - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, 3, NA, NA}, 0, ~0ull},
	[EC_COUNT - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, 0, NA}, 0, ~0ull},
	[EC_ADDR - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, 1, NA}, 0, ~0ull},
	[EC_LAST_ADDR - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, 2, NA}, 0, ~0ull},
	[EC_WRITE_FAULTS -
		EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, 3, NA}, 0, ~0ull},
	[EC_PROC_EVENT - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, 0}, 0, ~0ull},
	[EC_CHILD - EC_PT_FIRST] = {{NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, 1}, 0, ~0ull},
};

static const char *const type_names[] = {"none",     "read",	 "write",  "fsync",
					 "tcp_send", "tcp_recv", "conn",   "retransmit",
					 "offcpu",   "reclaim",	 "faults", "proc"};
static const char *const reason_names[] = {"blocked", "preempted"};
static const char *const kind_names[] = {"direct", "memcg"};
static const char *const procev_names[] = {"", "exec", "fork", "exit"};

static const char *const *static_syms(int col, int *n)
{
	switch (col) {
	case EC_TYPE:
		*n = (int)KP_ARRAY_SIZE(type_names);
		return type_names;
	case EC_REASON:
		*n = (int)KP_ARRAY_SIZE(reason_names);
		return reason_names;
	case EC_KIND:
		*n = (int)KP_ARRAY_SIZE(kind_names);
		return kind_names;
	case EC_PROC_EVENT:
		*n = (int)KP_ARRAY_SIZE(procev_names);
		return procev_names;
	case EC_SYSCALL:
		*n = EVENTJSON_NSYSCALLS;
		return eventjson_syscall_names;
	case EC_FAMILY:
		*n = EVENTJSON_NFAMILIES;
		return eventjson_family_names;
	case EC_OLD_STATE:
	case EC_NEW_STATE:
	case EC_TCP_STATE:
		*n = EVENTJSON_NTCPSTATES;
		return eventjson_tcp_state_names;
	default:
		return NULL;
	}
}

static const char *ev_sym_str(void *ctx, int col, int64_t id, uint32_t *len)
{
	struct store *st = ctx;
	int n;
	const char *const *tab = static_syms(col, &n);
	if (tab) {
		static __thread char other[32];
		if (id >= 0 && id < n && tab[id]) {
			*len = (uint32_t)strlen(tab[id]);
			return tab[id];
		}
		*len = (uint32_t)snprintf(other, sizeof(other), "%" PRId64, id);
		return other;
	}
	return store__sym_str(st->meta, (uint32_t)id, len);
}

static int64_t ev_sym_find(void *ctx, int col, const char *s, size_t len)
{
	struct store *st = ctx;
	int n;
	const char *const *tab = static_syms(col, &n);
	if (tab) {
		for (int i = 0; i < n; i++)
			if (tab[i] && strlen(tab[i]) == len && !memcmp(tab[i], s, len))
				return i;
		return -1;
	}
	if (!len)
		return 0;
	uint32_t id = store__sym_find(st->meta, s, len);
	return id ? (int64_t)id : -1;
}

struct evbatch {
	struct table_batch b; /* first: the engine's handle */
	struct store *st;
	const struct store__gran *g;
	struct store__seg *seg;
	const struct memchunk *mc;
	uint32_t have_phys;
	uint64_t have_log;
	uint64_t *phys[SC_NCOLS];
	int64_t *log[EC_NCOLS];
	uint8_t *null[EC_NCOLS];
	uint8_t type8[STORE_GRANULE];
	struct store__typed_plan plan;
	/* metadata: a process per distinct (node, pid, validity) run, and each row's index */
	struct store__proc *procs;
	uint32_t *procrun; /* meta_procs: row where each process's run starts; [nprocrun] = n */
	uint32_t nprocrun;
	uint8_t *procfound;
	const char *txn[STORE_GRANULE];
	uint32_t txn_len[STORE_GRANULE];
	const char *trace[STORE_GRANULE];
	uint32_t trace_len[STORE_GRANULE];
	/* resolved at query time (store_set_txn_resolver): strings for untagged rows, and the
	 * ranges of the transactions / traces the WHERE clause names */
	char *rtxn, *rtrace; /* STORE_GRANULE slots of STORE_TXN_MAX+1 / STORE_TRACE_HEX+1 */
	const struct store_txn_range *rr;
	const char *const *rr_key; /* the key each range answers */
	const uint32_t *rr_key_len;
	const uint8_t *rr_trace;   /* 1: the key is a trace id */
	int nrr;
	bool no_resolve;
	char *dictbuf;
	uint8_t *scratch;
	bool busy, owned, have_plan;
	struct table_scan_stats *ss;
};

static int phys_get(struct evbatch *eb, int c)
{
	if (eb->have_phys & (1u << c))
		return 0;
	if (!eb->phys[c])
		eb->phys[c] = xmalloc(sizeof(uint64_t) * STORE_GRANULE);
	uint64_t *o = eb->phys[c];
	uint32_t n = eb->b.n;
	if (eb->mc) {
		const struct memchunk *k = eb->mc;
		const struct kp_event *e = k->ev;
		switch (c) {
		case SC_TS:
			for (uint32_t i = 0; i < n; i++)
				o[i] = e[i].ts_ns;
			break;
		case SC_DUR:
			for (uint32_t i = 0; i < n; i++)
				o[i] = e[i].dur_ns;
			break;
		case SC_NODE:
			for (uint32_t i = 0; i < n; i++)
				o[i] = k->side[i].node;
			break;
		case SC_PID:
			for (uint32_t i = 0; i < n; i++)
				o[i] = e[i].pid;
			break;
		case SC_TID:
			for (uint32_t i = 0; i < n; i++)
				o[i] = e[i].tid;
			break;
		case SC_CPU:
			for (uint32_t i = 0; i < n; i++)
				o[i] = e[i].cpu;
			break;
		case SC_TYPE:
			for (uint32_t i = 0; i < n; i++)
				o[i] = e[i].type;
			break;
		case SC_FLAGS:
			for (uint32_t i = 0; i < n; i++)
				o[i] = e[i].flags;
			break;
		case SC_RET:
			for (uint32_t i = 0; i < n; i++)
				o[i] = (uint32_t)e[i].ret;
			break;
		default:
			for (uint32_t i = 0; i < n; i++)
				o[i] = e[i].arg[c - SC_ARG0];
			break;
		}
		if (c == SC_TYPE)
			for (uint32_t i = 0; i < n; i++)
				eb->type8[i] = e[i].type;
	} else {
		if (store__col_typed(c)) {
			int rc = phys_get(eb, SC_TYPE);
			if (rc)
				return rc;
			if (!eb->have_plan) { /* only typed columns need it */
				store__typed_plan(eb->type8, n, &eb->plan);
				eb->have_plan = true;
			}
		}
		eb->ss->bytes_read += eb->g->blk_len[c];
		int rc = store__seg_read_u64(eb->g, c, &eb->plan, o, eb->scratch);
		if (rc) {
			if (rc == STORE_ECORRUPT || rc == STORE_ELAYOUT) {
				store__quarantine(eb->st, eb->seg);
				return STORE_ECORRUPT;
			}
			return rc;
		}
		if (c == SC_TYPE) {
			for (uint32_t i = 0; i < n; i++)
				eb->type8[i] = (uint8_t)o[i];
		}
	}
	eb->have_phys |= 1u << c;
	return 0;
}

static int64_t *log_buf(struct evbatch *eb, int col, bool nulls)
{
	if (!eb->log[col])
		eb->log[col] = xmalloc(sizeof(int64_t) * STORE_GRANULE);
	if (nulls && !eb->null[col])
		eb->null[col] = xmalloc(STORE_GRANULE);
	return eb->log[col];
}

/* Resolves each row's process once per batch; a metadata column is then one indexed load. */
static int meta_procs(struct evbatch *eb)
{
	int rc;
	if ((rc = phys_get(eb, SC_NODE)) || (rc = phys_get(eb, SC_PID)))
		return rc;
	if (!eb->procs) {
		eb->procs = xmalloc(sizeof(*eb->procs) * STORE_GRANULE);
		eb->procrun = xmalloc(sizeof(uint32_t) * (STORE_GRANULE + 1));
		eb->procfound = xmalloc(STORE_GRANULE);
	}
	const uint64_t *node = eb->phys[SC_NODE], *pid = eb->phys[SC_PID], *ts = NULL;
	uint32_t n = eb->b.n;
	/* rows of one process come in runs (segments are sorted by pid): one lookup per run.
	 * Timestamps matter only when a pid was reused; decode them only then */
	for (int pass = 0; pass < 2; pass++) {
		uint32_t np = 0;
		bool bounded = false;
		for (uint32_t i = 0; i < n;) {
			uint64_t nd = node[i], pd = pid[i], t = ts ? ts[i] : 0;
			struct store__proc *p = &eb->procs[np];
			eb->procfound[np] = store__meta_proc(eb->st->meta, nd, (uint32_t)pd, t, p);
			if (!eb->procfound[np]) {
				memset(p, 0, sizeof(*p));
				p->node = nd;
				p->pid = (uint32_t)pd;
				p->valid_to = UINT64_MAX;
			}
			bounded |= p->valid_from != 0 || p->valid_to != UINT64_MAX;
			eb->procrun[np++] = i;
			uint32_t j = i + 1;
			if (ts)
				while (j < n && node[j] == nd && pid[j] == pd && ts[j] >= p->valid_from &&
				       ts[j] < p->valid_to)
					j++;
			else
				while (j < n && node[j] == nd && pid[j] == pd)
					j++;
			i = j;
		}
		eb->procrun[np] = n;
		eb->nprocrun = np;
		if (ts || !bounded)
			break;
		if ((rc = phys_get(eb, SC_TS)))
			return rc;
		ts = eb->phys[SC_TS];
	}
	eb->have_log |= 1ull << EC_NCOLS; /* marker: procs resolved */
	return 0;
}

static int meta_fill(struct evbatch *eb, int col)
{
	if (!(eb->have_log & (1ull << EC_NCOLS))) {
		int rc = meta_procs(eb);
		if (rc)
			return rc;
	}
	int64_t *o = log_buf(eb, col, col == EC_PPID);
	const uint32_t *run = eb->procrun;
	const struct store__proc *pr = eb->procs;
	if (col == EC_PPID) {
		for (uint32_t r = 0; r < eb->nprocrun; r++)
			for (uint32_t i = run[r]; i < run[r + 1]; i++) {
				o[i] = pr[r].ppid;
				eb->null[col][i] = !eb->procfound[r];
			}
		return 0;
	}
	size_t off;
	switch (col) {
	case EC_COMM:
		off = offsetof(struct store__proc, comm);
		break;
	case EC_CMDLINE:
		off = offsetof(struct store__proc, cmdline);
		break;
	case EC_CGROUP:
		off = offsetof(struct store__proc, cgroup);
		break;
	case EC_CONTAINER:
		off = offsetof(struct store__proc, container);
		break;
	case EC_POD:
		off = offsetof(struct store__proc, pod);
		break;
	case EC_NAMESPACE:
		off = offsetof(struct store__proc, ns);
		break;
	default:
		off = offsetof(struct store__proc, service);
		break;
	}
	for (uint32_t r = 0; r < eb->nprocrun; r++) {
		uint32_t v;
		memcpy(&v, (const char *)&pr[r] + off, sizeof(v));
		for (uint32_t i = run[r]; i < run[r + 1]; i++)
			o[i] = v;
	}
	return 0;
}

static int ev_fetch(struct table_batch *b, int col, struct table_vec *out);

/*
 * The txn (or trace) of rows stored untagged: a range of the WHERE clause's transactions first
 * (they come from the causal graph, which keeps them), else the resolver's lookup (the span
 * index). Both columns are filled together: one lookup answers both.
 */
static int resolve_rows(struct evbatch *eb, int col)
{
	int rc;
	uint64_t need = (1ull << EC_TXN) | (1ull << EC_TRACE);
	if ((eb->have_log & need) != need) {
		/* the other column first, from storage */
		int other = col == EC_TXN ? EC_TRACE : EC_TXN;
		struct table_vec tmp;
		if (!(eb->have_log & (1ull << other))) {
			eb->no_resolve = true; /* the stored values only: no recursion */
			rc = ev_fetch(&eb->b, other, &tmp);
			eb->no_resolve = false;
			if (rc)
				return rc;
		}
	}
	if ((rc = phys_get(eb, SC_TS)) || (rc = phys_get(eb, SC_DUR)) || (rc = phys_get(eb, SC_PID)) ||
	    (rc = phys_get(eb, SC_TID)) || (rc = phys_get(eb, SC_NODE)))
		return rc;
	if (!eb->rtxn) {
		eb->rtxn = xmalloc((size_t)STORE_GRANULE * (STORE_TXN_MAX + 1));
		eb->rtrace = xmalloc((size_t)STORE_GRANULE * (STORE_TRACE_HEX + 1));
	}
	const struct store_txn_resolver *r = &eb->st->resolver;
	for (uint32_t i = 0; i < eb->b.n; i++) {
		if (eb->txn_len[i] && eb->trace_len[i])
			continue;
		uint64_t ts = eb->phys[SC_TS][i], node = eb->phys[SC_NODE][i];
		uint32_t pid = (uint32_t)eb->phys[SC_PID][i], tid = (uint32_t)eb->phys[SC_TID][i];
		char *tx = eb->rtxn + (size_t)i * (STORE_TXN_MAX + 1);
		char *tr = eb->rtrace + (size_t)i * (STORE_TRACE_HEX + 1);
		tx[0] = tr[0] = '\0';
		int found = 0;
		for (int k = 0; k < eb->nrr; k++) {
			const struct store_txn_range *q = &eb->rr[k];
			if (q->pid == pid && (!q->tid || q->tid == tid) &&
			    (!q->node_id || q->node_id == node) && ts >= q->t0 && ts <= q->t1) {
				char *dst = eb->rr_trace[k] ? tr : tx;
				size_t cap = eb->rr_trace[k] ? STORE_TRACE_HEX : STORE_TXN_MAX;
				size_t l = KP_MIN(eb->rr_key_len[k], cap);
				memcpy(dst, eb->rr_key[k], l);
				dst[l] = '\0';
				found = 1;
			}
		}
		if (!found || !tx[0] || !tr[0]) {
			char t2[STORE_TXN_MAX + 1], r2[STORE_TRACE_HEX + 1];
			if (r->lookup(eb->st->resolver_ctx, node, pid, tid, ts, eb->phys[SC_DUR][i], t2,
				      r2) == 1) {
				if (!tx[0])
					snprintf(tx, STORE_TXN_MAX + 1, "%s", t2);
				if (!tr[0])
					snprintf(tr, STORE_TRACE_HEX + 1, "%s", r2);
			}
		}
		if (!eb->txn_len[i] && tx[0]) {
			eb->txn[i] = tx;
			eb->txn_len[i] = (uint32_t)strlen(tx);
		}
		if (!eb->trace_len[i] && tr[0]) {
			eb->trace[i] = tr;
			eb->trace_len[i] = (uint32_t)strlen(tr);
		}
	}
	eb->have_log |= need;
	return 0;
}

static int ev_fetch(struct table_batch *b, int col, struct table_vec *out)
{
	struct evbatch *eb = (struct evbatch *)b;
	uint32_t n = b->n;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	static const int direct[EC_NCOLS] = {
		[EC_TS] = SC_TS + 1,	   [EC_DUR] = SC_DUR + 1,      [EC_PID] = SC_PID + 1,
		[EC_TID] = SC_TID + 1,	   [EC_CPU] = SC_CPU + 1,      [EC_TYPE] = SC_TYPE + 1,
		[EC_FLAGS] = SC_FLAGS + 1, [EC_NODE_ID] = SC_NODE + 1,
	};
	if (col < 0 || col >= EC_NCOLS)
		return -EINVAL;
	if (direct[col]) {
		if ((rc = phys_get(eb, direct[col] - 1)))
			return rc;
		out->i = (const int64_t *)eb->phys[direct[col] - 1];
		return 0;
	}
	if (eb->have_log & (1ull << col)) {
		out->i = eb->log[col];
		out->null = eb->null[col];
		if (col == EC_TXN) {
			out->s = eb->txn;
			out->slen = eb->txn_len;
		} else if (col == EC_TRACE) {
			out->s = eb->trace;
			out->slen = eb->trace_len;
		}
		return 0;
	}
	if (col == EC_RET) {
		if ((rc = phys_get(eb, SC_RET)))
			return rc;
		int64_t *o = log_buf(eb, col, false);
		for (uint32_t i = 0; i < n; i++)
			o[i] = (int32_t)(uint32_t)eb->phys[SC_RET][i];
	} else if (col == EC_NODE) {
		if ((rc = phys_get(eb, SC_NODE)))
			return rc;
		int64_t *o = log_buf(eb, col, false);
		uint64_t last = 0;
		int64_t sym = 0;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t nd = eb->phys[SC_NODE][i];
			if (!i || nd != last) {
				last = nd;
				sym = store__meta_node(eb->st->meta, nd);
				if (!sym) {
					char t[32];
					int l = snprintf(t, sizeof(t), "node-%016" PRIx64, nd);
					sym = store__sym_intern(eb->st->meta, t, (size_t)l);
				}
			}
			o[i] = sym;
		}
	} else if (col == EC_TXN) {
		if (eb->mc) {
			for (uint32_t i = 0; i < n; i++) {
				eb->txn[i] = eb->mc->side[i].txn;
				eb->txn_len[i] = (uint8_t)eb->mc->side[i].txn[-1];
			}
		} else {
			eb->ss->bytes_read += eb->g->blk_len[SC_TXN];
			rc = store__seg_read_str(eb->g, eb->txn, eb->txn_len, eb->scratch,
						 eb->dictbuf);
			if (rc) {
				store__quarantine(eb->st, eb->seg);
				return STORE_ECORRUPT;
			}
		}
	} else if (col == EC_TRACE) {
		for (uint32_t i = 0; i < n; i++) {
			eb->trace[i] = EMPTY;
			eb->trace_len[i] = 0;
		}
	} else if (col >= EC_META_FIRST && col <= EC_META_LAST) {
		if ((rc = meta_fill(eb, col)))
			return rc;
	} else if (col >= EC_PT_FIRST && col <= EC_PT_LAST) {
		const struct ptview *v = &ptv[col - EC_PT_FIRST];
		if ((rc = phys_get(eb, SC_TYPE)))
			return rc;
		for (int a = 0; a < 4; a++) {
			bool need = false;
			for (int t = 0; t < KP_TYPE_MAX; t++)
				need |= v->arg[t] == a;
			if ((need || (col == EC_CHILD && a == 0)) &&
			    (rc = phys_get(eb, SC_ARG0 + a)))
				return rc;
		}
		int64_t *o = log_buf(eb, col, true);
		uint8_t *nl = eb->null[col];
		for (uint32_t i = 0; i < n; i++) {
			uint8_t t = eb->type8[i];
			int a = t < KP_TYPE_MAX ? v->arg[t] : NA;
			if (a == NA) {
				nl[i] = 1;
				o[i] = 0;
				continue;
			}
			nl[i] = 0;
			o[i] = (int64_t)((eb->phys[SC_ARG0 + a][i] >> v->shift) & v->mask);
		}
		if (col == EC_CHILD) /* a pid only for forks (exec and exit carry the parent's) */
			for (uint32_t i = 0; i < n; i++)
				if (!nl[i] && eb->phys[SC_ARG0][i] != KP_PROC_FORK) {
					nl[i] = 1;
					o[i] = 0;
				}
	} else if (col == EC_SADDR || col == EC_DADDR) {
		if ((rc = phys_get(eb, SC_TYPE)) || (rc = phys_get(eb, SC_ARG0)) ||
		    (rc = phys_get(eb, SC_NODE)))
			return rc;
		int64_t *o = log_buf(eb, col, true);
		uint8_t *nl = eb->null[col];
		uint64_t lc = 0, ln = 0;
		struct store__conn c;
		bool have = false, found = false;
		for (uint32_t i = 0; i < n; i++) {
			uint8_t t = eb->type8[i];
			if (t < KP_TCP_SEND || t > KP_RETRANSMIT) {
				nl[i] = 1;
				o[i] = 0;
				continue;
			}
			uint64_t cid = eb->phys[SC_ARG0][i], nd = eb->phys[SC_NODE][i];
			if (!have || cid != lc || nd != ln) {
				found = store__meta_conn(eb->st->meta, nd, cid, &c);
				lc = cid;
				ln = nd;
				have = true;
			}
			nl[i] = !found;
			o[i] = found ? (col == EC_SADDR ? c.saddr : c.daddr) : 0;
		}
	}
	eb->have_log |= 1ull << col;
	if ((col == EC_TXN || col == EC_TRACE) && eb->st->resolver.lookup && !eb->no_resolve &&
	    (rc = resolve_rows(eb, col)))
		return rc;
	return ev_fetch(b, col, out);
}

/*
 * With transaction ranges: may a granule hold a row of the WHERE clause's transactions or
 * traces? Yes when a range overlaps its pids and times, or when its bloom filter says the txn
 * column stored at append time may hold one of the transactions (h: the query's own hints).
 */
static bool txn_admits(const struct table_hints *h, const struct store_txn_range *rr, int nrr,
		       uint64_t ts_min, uint64_t ts_max, uint32_t pid_min, uint32_t pid_max,
		       const struct store__gran *g)
{
	for (int i = 0; i < nrr; i++)
		if (rr[i].pid >= pid_min && rr[i].pid <= pid_max && rr[i].t0 <= ts_max &&
		    rr[i].t1 >= ts_min)
			return true;
	for (int i = 0; g && i < h->ntxn; i++)
		if (h->txn_len[i] && store__bloom_test(g->bloom[SB_TXN], g->bloom_bits[SB_TXN],
						       store__hash_str(h->txn[i], h->txn_len[i])))
			return true;
	return false;
}

/* Does a zone (min/max) + optional blooms admit the hints? */
static bool zone_admits(const struct table_hints *h, uint64_t ts_min, uint64_t ts_max,
			uint64_t dur_max, uint32_t pid_min, uint32_t pid_max, uint32_t type_mask,
			const struct store__gran *g)
{
	if (ts_max < h->ts_min || ts_min > h->ts_max || dur_max < h->dur_min)
		return false;
	if (h->type_mask && !(h->type_mask & type_mask))
		return false;
	if (h->npid >= 0) {
		bool any = false;
		for (int i = 0; i < h->npid && !any; i++) {
			int64_t p = h->pid[i];
			if (p < pid_min || p > pid_max)
				continue;
			any = !g || store__bloom_test(g->bloom[SB_PID], g->bloom_bits[SB_PID],
						      store__hash_u64((uint64_t)p));
		}
		if (!any)
			return false;
	}
	if (g && h->ntid >= 0) {
		bool any = false;
		for (int i = 0; i < h->ntid && !any; i++)
			any = store__bloom_test(g->bloom[SB_TID], g->bloom_bits[SB_TID],
						store__hash_u64((uint64_t)h->tid[i]));
		if (!any)
			return false;
	}
	if (g && h->ntxn >= 0) {
		bool any = false;
		for (int i = 0; i < h->ntxn && !any; i++)
			any = h->txn_len[i] &&
			      store__bloom_test(g->bloom[SB_TXN], g->bloom_bits[SB_TXN],
						store__hash_str(h->txn[i], h->txn_len[i]));
		if (!any)
			return false;
	}
	return true;
}

/* Batch buffers (a few MB) are kept per thread between scans: allocating them per query costs
 * more in page faults than a small query takes. */
static pthread_key_t eb_key;
static pthread_once_t eb_once = PTHREAD_ONCE_INIT;

static void evbatch_free(void *p)
{
	struct evbatch *eb = p;
	if (!eb)
		return;
	for (int c = 0; c < SC_NCOLS; c++)
		free(eb->phys[c]);
	for (int c = 0; c < EC_NCOLS; c++) {
		free(eb->log[c]);
		free(eb->null[c]);
	}
	free(eb->procs);
	free(eb->procrun);
	free(eb->procfound);
	free(eb->scratch);
	free(eb->dictbuf);
	free(eb->rtxn);
	free(eb->rtrace);
	free(eb);
}

static void eb_key_init(void)
{
	pthread_key_create(&eb_key, evbatch_free);
}

static struct evbatch *evbatch_get(void)
{
	pthread_once(&eb_once, eb_key_init);
	struct evbatch *eb = pthread_getspecific(eb_key);
	if (eb && eb->busy) /* a scan inside a scan on this thread: use a private one */
		eb = NULL;
	if (!eb) {
		eb = xcalloc(1, sizeof(*eb));
		eb->scratch = xmalloc(STORE_ENC_BOUND(STORE_GRANULE) + STORE_PAD);
		eb->dictbuf = xmalloc(STORE_ENC_BOUND(STORE_GRANULE));
		if (!pthread_getspecific(eb_key))
			pthread_setspecific(eb_key, eb);
		else
			eb->owned = true;
	}
	eb->busy = true;
	return eb;
}

static void evbatch_put(struct evbatch *eb)
{
	eb->busy = false;
	if (eb->owned)
		evbatch_free(eb);
}

static void evbatch_reset(struct evbatch *eb, uint32_t n)
{
	eb->b.n = n;
	eb->have_plan = false;
	eb->have_phys = 0;
	eb->have_log = 0;
}

/* One unit of scan work: a segment granule or a memtable chunk that survived pruning. */
struct scanitem {
	struct store__seg *seg;
	const struct store__gran *g;
	const struct memchunk *mc;
	uint32_t rows, holds;
};

struct scanjob {
	struct store *st;
	const struct scanitem *items;
	uint32_t nitems;
	atomic_uint next;
	atomic_int stop; /* the first non-zero return of fn, or of cancel */
	int (*fn)(void *arg, struct table_batch *b);
	void *const *args;
	bool (*cancel)(void *arg);
	/* the WHERE clause's transactions / traces as span ranges (store_set_txn_resolver) */
	const struct store_txn_range *rr;
	const char *const *rr_key;
	const uint32_t *rr_key_len;
	const uint8_t *rr_trace;
	int nrr;
};

struct scanworker {
	struct scanjob *job;
	int w, rc;
	struct table_scan_stats ss;
};

static void *scan_worker(void *p)
{
	struct scanworker *sw = p;
	struct scanjob *job = sw->job;
	void *arg = job->args[sw->w];
	struct evbatch *eb = evbatch_get();
	eb->b.fetch = ev_fetch;
	eb->st = job->st;
	eb->ss = &sw->ss;
	eb->rr = job->rr;
	eb->rr_key = job->rr_key;
	eb->rr_key_len = job->rr_key_len;
	eb->rr_trace = job->rr_trace;
	eb->nrr = job->nrr;
	for (;;) {
		if (atomic_load(&job->stop))
			break;
		uint32_t k = atomic_fetch_add(&job->next, 1);
		if (k >= job->nitems)
			break;
		if (job->cancel && job->cancel(arg)) {
			sw->rc = -ECANCELED;
			break;
		}
		const struct scanitem *it = &job->items[k];
		eb->g = it->g;
		eb->seg = it->seg;
		eb->mc = it->mc;
		evbatch_reset(eb, it->rows);
		eb->b.holds = it->holds;
		sw->ss.rows_scanned += it->rows;
		if ((sw->rc = job->fn(arg, &eb->b)))
			break;
	}
	if (sw->rc) {
		int zero = 0;
		atomic_compare_exchange_strong(&job->stop, &zero, sw->rc);
	}
	eb->rr = NULL;
	eb->nrr = 0;
	evbatch_put(eb);
	return NULL;
}

/* Below this many batches a scan stays on the calling thread. */
#define SCAN_PARALLEL_MIN 64

static int ev_scan(void *ctx, const struct table_hints *h, int nworkers,
		   int (*fn)(void *arg, struct table_batch *b), void *const *args,
		   bool (*cancel)(void *arg), struct table_scan_stats *ss)
{
	struct store *st = ctx;
	struct store__seg **segs;
	struct memtable *mts[MAX_FROZEN + 2];
	uint32_t mrows[MAX_FROZEN + 2];
	int nmt = 0, rc = 0;
	/* snapshot: every row exactly once (segments, then the memtables not yet in them) */
	pthread_mutex_lock(&st->mu);
	uint32_t nseg = st->nseg;
	segs = xmalloc(sizeof(*segs) * (nseg ? nseg : 1));
	for (uint32_t i = 0; i < nseg; i++) {
		segs[i] = st->segs[i];
		atomic_fetch_add(&segs[i]->refs, 1);
	}
	for (int i = 0; i < st->nfrozen; i++)
		mts[nmt++] = st->frozen[i];
	if (st->active)
		mts[nmt++] = st->active;
	for (int i = 0; i < nmt; i++) {
		atomic_fetch_add(&mts[i]->refs, 1);
		mrows[i] = atomic_load_explicit(&mts[i]->nrows, memory_order_acquire);
	}
	pthread_mutex_unlock(&st->mu);

	/*
	 * WHERE txn / trace_id name keys whose events may be stored untagged: their spans' ranges
	 * (from the resolver) let granules in, beside the txn bloom filters, and answer the rows.
	 */
	struct table_hints hh = *h;
	enum { MAX_RR = 1024 };
	struct store_txn_range *rr = NULL;
	const char **rr_key = NULL;
	uint32_t *rr_key_len = NULL;
	uint8_t *rr_trace = NULL;
	int nrr = 0, by_ranges = 0;
	if (st->resolver.ranges && (h->ntxn >= 0 || h->ntrace >= 0)) {
		rr = xmalloc(sizeof(*rr) * MAX_RR);
		rr_key = xmalloc(sizeof(*rr_key) * MAX_RR);
		rr_key_len = xmalloc(sizeof(*rr_key_len) * MAX_RR);
		rr_trace = xmalloc(MAX_RR);
		for (int t = 0; t < 2; t++) {
			int nk = t ? h->ntrace : h->ntxn;
			for (int k = 0; k < nk && nrr < MAX_RR; k++) {
				const char *key = t ? h->trace[k] : h->txn[k];
				uint32_t kl = t ? h->trace_len[k] : h->txn_len[k];
				int got = st->resolver.ranges(st->resolver_ctx, key, kl, t, rr + nrr,
							      MAX_RR - nrr);
				for (int j = 0; j < got; j++) {
					rr_key[nrr + j] = key;
					rr_key_len[nrr + j] = kl;
					rr_trace[nrr + j] = (uint8_t)t;
				}
				if (got > 0)
					nrr += got;
			}
		}
		by_ranges = 1;
		hh.ntxn = -1; /* blooms are checked below, or-ed with the ranges */
	}
	const struct table_hints *hq = h; /* the query's own, with its txn list */
	h = &hh;

	/* prune with the footers' zone maps and bloom filters (and the chunks' zones) */
	uint32_t cap = 0, n = 0;
	for (uint32_t i = 0; i < nseg; i++)
		cap += segs[i]->n_gran;
	for (int m = 0; m < nmt; m++)
		cap += (mrows[m] + STORE_GRANULE - 1) / STORE_GRANULE;
	struct scanitem *items = xmalloc(sizeof(*items) * (cap ? cap : 1));
	for (uint32_t i = 0; i < nseg; i++) {
		struct store__seg *s = segs[i];
		ss->granules_total += s->n_gran;
		if (s->ts_max < h->ts_min || s->ts_min > h->ts_max || atomic_load(&s->corrupt)) {
			ss->segments_skipped++;
			ss->granules_skipped += s->n_gran;
			continue;
		}
		for (uint32_t gi = 0; gi < s->n_gran; gi++) {
			const struct store__gran *g = &s->g[gi];
			if (!zone_admits(h, g->ts_min, g->ts_max, g->dur_max, g->pid_min,
					 g->pid_max, g->type_mask, g) ||
			    (by_ranges && !txn_admits(hq, rr, nrr, g->ts_min, g->ts_max, g->pid_min,
						      g->pid_max, g))) {
				ss->granules_skipped++;
				continue;
			}
			items[n++] = (struct scanitem){
				s, g, NULL, g->rows,
				g->ts_min >= h->ts_min && g->ts_max <= h->ts_max ? TB_HOLDS_TS : 0};
		}
	}
	for (int m = 0; m < nmt; m++) {
		uint32_t nch = (mrows[m] + STORE_GRANULE - 1) / STORE_GRANULE;
		for (uint32_t c = 0; c < nch; c++) {
			const struct memchunk *k = mts[m]->chunks[c];
			uint32_t rows = KP_MIN(STORE_GRANULE, mrows[m] - c * STORE_GRANULE);
			bool full = rows == STORE_GRANULE; /* a full chunk's zone is final */
			ss->granules_total++;
			/* Memtable chunks have no bloom filters: only the zone prunes them. */
			if (full && !zone_admits(h, k->ts_min, k->ts_max, k->dur_max, k->pid_min,
						 k->pid_max, k->type_mask, NULL)) {
				ss->granules_skipped++;
				continue;
			}
			items[n++] = (struct scanitem){NULL, NULL, k, rows,
						       full && k->ts_min >= h->ts_min &&
								       k->ts_max <= h->ts_max
							       ? TB_HOLDS_TS
							       : 0};
		}
	}

	/* workers pull items from a shared cursor; worker 0 is this thread */
	struct scanjob job = {.st = st,
			      .items = items,
			      .nitems = n,
			      .fn = fn,
			      .args = args,
			      .cancel = cancel,
			      .rr = rr,
			      .rr_key = rr_key,
			      .rr_key_len = rr_key_len,
			      .rr_trace = rr_trace,
			      .nrr = nrr};
	atomic_init(&job.next, 0);
	atomic_init(&job.stop, 0);
	if (nworkers < 1 || n < SCAN_PARALLEL_MIN)
		nworkers = 1;
	if (nworkers > 8)
		nworkers = 8;
	struct scanworker sw[8];
	pthread_t th[8];
	bool started[8] = {false};
	for (int w = 0; w < nworkers; w++) {
		sw[w] = (struct scanworker){.job = &job, .w = w};
		if (w && !pthread_create(&th[w], NULL, scan_worker, &sw[w]))
			started[w] = true;
	}
	scan_worker(&sw[0]);
	for (int w = 1; w < nworkers; w++) {
		if (started[w])
			pthread_join(th[w], NULL);
		else
			scan_worker(&sw[w]); /* could not start a thread: do its share here */
	}
	for (int w = 0; w < nworkers; w++) {
		ss->rows_scanned += sw[w].ss.rows_scanned;
		ss->bytes_read += sw[w].ss.bytes_read;
		if (sw[w].rc && (!rc || rc == 1))
			rc = sw[w].rc; /* an error wins over an early stop */
	}
	free(items);
	free(rr);
	free(rr_key);
	free(rr_key_len);
	free(rr_trace);
	for (uint32_t i = 0; i < nseg; i++)
		store__seg_unref(segs[i]);
	free(segs);
	for (int i = 0; i < nmt; i++)
		mt_unref(mts[i]);
	return rc;
}

static const struct table_ops events_ops = {
	.name = "events",
	.cols = ev_cols,
	.ncols = EC_NCOLS,
	.sym_str = ev_sym_str,
	.sym_find = ev_sym_find,
	.scan = ev_scan,
};
