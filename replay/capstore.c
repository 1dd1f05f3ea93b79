/*
 * capstore.c - the capture store's logs (contract in capstore.h): append in LSN order, group by
 * frame, sync and publish the synced LSN, recover to the last whole group, index sealed logs,
 * delete by age and size, and scan with per-log pruning (time range, pid bloom filter).
 *
 * Section banners: formats / logs in memory / open and recovery / appending / sync and
 * retention / scanning.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/le.h"
#include "agent/wire.h"
#include "replay/capstore.h"
#include "replay/rec.h"

/* ================================================================== formats */

#define CL_MAGIC    0x4c43504bu /* "KPCL": a log */
#define CX_MAGIC    0x5843504bu /* "KPCX": a sealed log's index */
#define CS_MAGIC    0x5343504bu /* "KPCS": the state file */
#define CL_VERSION  1
#define CL_HDR	    32
#define CE_HDR	    32
#define CE_TAIL	    8
#define CE_MAX	    (CE_HDR + KP_CAP_REC_MAX + CE_TAIL)
#define CE_LAST	    0x0001 /* the last entry of its group (a frame, an upload) */
#define BLOOM_BITS  8192
#define CX_LEN	    (56 + BLOOM_BITS / 8 + 8)
#define CS_LEN	    24
#define READ_BLOCK  (1u << 20)
#define FILE_MAX_HI (64ull << 20)

/* The fuzzer cannot forge checksums; under KP_FUZZ it reaches the parsing behind them. */
#ifdef KP_FUZZ
#define SUM_OK(a, b) ((void)(a), (void)(b), 1)
#else
#define SUM_OK(a, b) ((a) == (b))
#endif

/* A record the store keeps: a valid capture record, or the agent's KP_CAP_LOST marker. */
static bool rec_ok(const void *rec, size_t len)
{
	const struct kp_cap_rec *c = rec;
	if (len >= KP_CAP_HDR_LEN && c->kind == KP_CAP_LOST)
		return c->len == KP_CAP_HDR_LEN;
	return kp_cap_rec_valid(rec, len) && c->len == len;
}

/* The record's end time in epoch ns. */
static inline uint64_t rec_end(const struct kp_cap_rec *c, int64_t clock_off)
{
	return c->ts_exit + (uint64_t)clock_off;
}

static inline void bloom_add(uint8_t *b, uint32_t pid)
{
	uint64_t h = XXH3_64bits(&pid, sizeof(pid));
	for (int k = 0; k < 3; k++, h >>= 16)
		b[(h % BLOOM_BITS) / 8] |= (uint8_t)(1u << (h % 8));
}

static inline bool bloom_has(const uint8_t *b, uint32_t pid)
{
	uint64_t h = XXH3_64bits(&pid, sizeof(pid));
	for (int k = 0; k < 3; k++, h >>= 16)
		if (!(b[(h % BLOOM_BITS) / 8] & (1u << (h % 8))))
			return false;
	return true;
}

/* ================================================================== logs in memory */

/* What is known of one log without reading it: its committed size and zone map. */
struct clog {
	uint64_t id;
	uint64_t size; /* bytes of whole groups (readers never look past it) */
	uint64_t n;    /* entries */
	uint64_t ts_min, ts_max;
	uint64_t max_lsn;
	uint8_t bloom[BLOOM_BITS / 8];
};

struct zone {
	uint64_t n, ts_min, ts_max, max_lsn;
	uint8_t bloom[BLOOM_BITS / 8];
};

static void zone_init(struct zone *z)
{
	memset(z, 0, sizeof(*z));
	z->ts_min = UINT64_MAX;
}

static void zone_add(struct zone *z, const struct kp_cap_rec *c, int64_t clock_off, uint64_t lsn)
{
	uint64_t t = rec_end(c, clock_off);
	z->n++;
	z->ts_min = KP_MIN(z->ts_min, t);
	z->ts_max = KP_MAX(z->ts_max, t);
	z->max_lsn = KP_MAX(z->max_lsn, lsn);
	bloom_add(z->bloom, c->pid);
}

static void clog_merge(struct clog *l, const struct zone *z)
{
	l->n += z->n;
	l->ts_min = KP_MIN(l->ts_min, z->ts_min);
	l->ts_max = KP_MAX(l->ts_max, z->ts_max);
	l->max_lsn = KP_MAX(l->max_lsn, z->max_lsn);
	for (size_t i = 0; i < sizeof(l->bloom); i++)
		l->bloom[i] |= z->bloom[i];
}

struct capstore {
	char dir[512];
	uint64_t max_bytes, file_max;
	int retention_days;

	pthread_mutex_t mu; /* files, sizes, zone maps, appended_lsn, dirty, counters */
	struct clog *files; /* ascending id; the last one is the active log */
	size_t nfiles;
	int fd; /* the active log (appends; dup'ed for syncs) */
	uint64_t appended_lsn;
	bool dirty;
	_Atomic uint64_t synced_lsn;
	uint64_t recovered_lsn, state_written_lsn, state_written_ns;

	pthread_mutex_t amu; /* one appender at a time (ingest thread, uploads) */
	struct kp_buf pending;
	struct wire_cap_asm *as;
	uint64_t last_lsn;

	_Atomic uint64_t records, bytes, bad, write_errors, corrupt, expired;
};

static void log_path(const struct capstore *cs, uint64_t id, const char *ext, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 ".%s", cs->dir, id, ext);
}

/* ================================================================== open and recovery */

/*
 * Index of a sealed log (.kcx), little-endian:
 *
 *   0 magic "KPCX" u32 | 4 version u16 | 6 zero u16 | 8 log id u64 | 16 log size u64
 *  24 entries u64 | 32 ts_min u64 | 40 ts_max u64 | 48 max_lsn u64
 *  56 pid bloom filter [BLOOM_BITS / 8] | xxh3_64 of everything before u64
 */
static int index_write(struct capstore *cs, const struct clog *l)
{
	uint8_t b[CX_LEN] = {0};
	le_put32(b, CX_MAGIC);
	le_put16(b + 4, CL_VERSION);
	le_put64(b + 8, l->id);
	le_put64(b + 16, l->size);
	le_put64(b + 24, l->n);
	le_put64(b + 32, l->ts_min);
	le_put64(b + 40, l->ts_max);
	le_put64(b + 48, l->max_lsn);
	memcpy(b + 56, l->bloom, sizeof(l->bloom));
	le_put64(b + CX_LEN - 8, XXH3_64bits(b, CX_LEN - 8));
	char path[600], tmp[620];
	log_path(cs, l->id, "kcx", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	int r = write_full(fd, b, sizeof(b));
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r; /* an index that is lost is rebuilt from the log at the next open */
}

static bool index_read(struct capstore *cs, struct clog *l, uint64_t file_size)
{
	char path[600];
	log_path(cs, l->id, "kcx", path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	uint8_t b[CX_LEN];
	bool ok = read_full(fd, b, sizeof(b)) == 0 && le_get32(b) == CX_MAGIC &&
		  le_get16(b + 4) == CL_VERSION && le_get64(b + 8) == l->id &&
		  le_get64(b + 16) == file_size &&
		  SUM_OK(le_get64(b + CX_LEN - 8), XXH3_64bits(b, CX_LEN - 8));
	close(fd);
	if (!ok)
		return false;
	l->size = file_size;
	l->n = le_get64(b + 24);
	l->ts_min = le_get64(b + 32);
	l->ts_max = le_get64(b + 40);
	l->max_lsn = le_get64(b + 48);
	memcpy(l->bloom, b + 56, sizeof(l->bloom));
	return true;
}

/* Checks one entry at p (avail bytes there). Returns its length, or 0 when it is not whole or
 * not valid. */
static uint32_t entry_check(const uint8_t *p, uint64_t avail)
{
	if (avail < CE_HDR + KP_CAP_HDR_LEN + CE_TAIL)
		return 0;
	uint32_t len = le_get32(p);
	if (len < CE_HDR + KP_CAP_HDR_LEN + CE_TAIL || len > CE_MAX || len % 8 || len > avail)
		return 0;
	if (!SUM_OK(le_get64(p + len - CE_TAIL), XXH3_64bits(p, len - CE_TAIL)))
		return 0;
	if (!rec_ok(p + CE_HDR, len - CE_HDR - CE_TAIL))
		return 0;
	return len;
}

/*
 * Reads a log from its header on, entry by entry, building its zone map. *whole gets the end of
 * the last whole group (what recovery keeps of an active log), *valid the end of the last valid
 * entry. Returns 0, or -errno / -EINVAL for a bad file header.
 */
static int log_scan(int fd, uint64_t id, uint64_t size, struct clog *l, uint64_t *whole,
		    uint64_t *valid)
{
	uint8_t h[CL_HDR];
	if (size < CL_HDR || pread(fd, h, CL_HDR, 0) != CL_HDR || le_get32(h) != CL_MAGIC ||
	    le_get16(h + 4) != CL_VERSION || le_get64(h + 8) != id || le_get64(h + 24) != XXH3_64bits(h, 24))
		return -EINVAL;
	uint8_t *buf = xmalloc(READ_BLOCK + CE_MAX);
	uint64_t off = CL_HDR;
	struct zone group, all;
	zone_init(&group);
	zone_init(&all);
	*whole = *valid = CL_HDR;
	for (;;) {
		uint64_t want = KP_MIN((uint64_t)READ_BLOCK + CE_MAX, size - off);
		if (!want)
			break;
		ssize_t got = pread(fd, buf, want, (off_t)off);
		if (got <= 0)
			break;
		uint64_t at = 0;
		uint32_t len;
		while ((len = entry_check(buf + at, (uint64_t)got - at)) > 0) {
			const struct kp_cap_rec *c = (const void *)(buf + at + CE_HDR);
			zone_add(&group, c, (int64_t)le_get64(buf + at + 24), le_get64(buf + at + 8));
			at += len;
			*valid = off + at;
			if (le_get16(buf + at - len + 4) & CE_LAST) {
				*whole = off + at;
				all.n += group.n;
				all.ts_min = KP_MIN(all.ts_min, group.ts_min);
				all.ts_max = KP_MAX(all.ts_max, group.ts_max);
				all.max_lsn = KP_MAX(all.max_lsn, group.max_lsn);
				for (size_t i = 0; i < sizeof(all.bloom); i++)
					all.bloom[i] |= group.bloom[i];
				zone_init(&group);
			}
		}
		if (at == 0)
			break; /* an entry that is not whole or not valid: the log ends here */
		off += at;
	}
	free(buf);
	l->id = id;
	l->size = *whole;
	l->n = all.n;
	l->ts_min = all.ts_min;
	l->ts_max = all.ts_max;
	l->max_lsn = all.max_lsn;
	memcpy(l->bloom, all.bloom, sizeof(l->bloom));
	return 0;
}

/*
 * Log file header, 32 bytes: magic "KPCL" u32 | version u16 | zero u16 | log id u64 |
 * created (epoch ns) u64 | xxh3_64 of the first 24 bytes u64.
 */
static int log_create(struct capstore *cs, uint64_t id, int *fdout, char *err, size_t errlen)
{
	char path[600];
	log_path(cs, id, "kcl", path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -errno;
	}
	uint8_t h[CL_HDR] = {0};
	le_put32(h, CL_MAGIC);
	le_put16(h + 4, CL_VERSION);
	le_put64(h + 8, id);
	le_put64(h + 16, now_real_ns());
	le_put64(h + 24, XXH3_64bits(h, 24));
	int r = write_full(fd, h, sizeof(h));
	if (r < 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-r));
		close(fd);
		unlink(path);
		return r;
	}
	*fdout = fd;
	return 0;
}

/* State file, 24 bytes: magic "KPCS" u32 | version u16 | zero u16 | synced LSN u64 | xxh3_64 of
 * the first 16 bytes u64. A missing or damaged one reads as 0 (the WAL is replayed further back,
 * which is safe: what the logs hold is skipped). */
static uint64_t state_read(struct capstore *cs)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/state", cs->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint8_t b[CS_LEN];
	bool ok = read_full(fd, b, sizeof(b)) == 0 && le_get32(b) == CS_MAGIC &&
		  le_get16(b + 4) == CL_VERSION && le_get64(b + 16) == XXH3_64bits(b, 16);
	close(fd);
	return ok ? le_get64(b + 8) : 0;
}

static void state_write(struct capstore *cs, uint64_t lsn)
{
	uint8_t b[CS_LEN] = {0};
	le_put32(b, CS_MAGIC);
	le_put16(b + 4, CL_VERSION);
	le_put64(b + 8, lsn);
	le_put64(b + 16, XXH3_64bits(b, 16));
	char path[600], tmp[620];
	snprintf(path, sizeof(path), "%s/state", cs->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return;
	int r = write_full(fd, b, sizeof(b));
	close(fd);
	if (r < 0 || rename(tmp, path) < 0)
		unlink(tmp);
}

static int id_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int capstore_open(struct capstore **out, const struct capstore_opts *o, char *err, size_t errlen)
{
	struct capstore *cs = xcalloc(1, sizeof(*cs));
	uint64_t *ids = NULL;
	size_t nids = 0;
	int r;
	snprintf(cs->dir, sizeof(cs->dir), "%s", o->dir);
	cs->max_bytes = o->max_bytes ? o->max_bytes : (1ull << 30);
	cs->file_max = o->file_max ? o->file_max : KP_MIN(FILE_MAX_HI, cs->max_bytes / 8);
	if (cs->file_max < (1u << 20))
		cs->file_max = 1u << 20;
	cs->retention_days = o->retention_days;
	cs->fd = -1;
	pthread_mutex_init(&cs->mu, NULL);
	pthread_mutex_init(&cs->amu, NULL);
	cs->as = xmalloc(sizeof(*cs->as));
	wire_cap_asm_reset(cs->as);
	if ((r = mkdir_p(cs->dir, 0750)) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", cs->dir, strerror(-r));
		goto fail;
	}
	DIR *d = opendir(cs->dir);
	if (!d) {
		r = -errno;
		snprintf(err, errlen, "cannot read %s: %s", cs->dir, strerror(errno));
		goto fail;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		uint64_t id = strtoull(de->d_name, &end, 16);
		size_t nl = strlen(de->d_name);
		if (nl > 4 && !strcmp(de->d_name + nl - 4, ".tmp")) {
			char p[600];
			snprintf(p, sizeof(p), "%s/%s", cs->dir, de->d_name);
			unlink(p); /* an index or state write that was cut short */
			continue;
		}
		if (end == de->d_name + 16 && !strcmp(end, ".kcl") && id) {
			ids = xrealloc(ids, (nids + 1) * sizeof(*ids));
			ids[nids++] = id;
		}
	}
	closedir(d);
	qsort(ids, nids, sizeof(*ids), id_cmp);
	cs->files = xcalloc(nids + 1, sizeof(*cs->files));
	for (size_t i = 0; i < nids; i++) {
		char path[600];
		log_path(cs, ids[i], "kcl", path, sizeof(path));
		bool last = i + 1 == nids;
		int fd = open(path, O_RDWR | (last ? O_APPEND : 0) | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			log_warn("capture store: cannot open %s: %s (skipped)", path,
				 strerror(errno));
			if (fd >= 0)
				close(fd);
			continue;
		}
		struct clog *l = &cs->files[cs->nfiles];
		memset(l, 0, sizeof(*l));
		l->id = ids[i];
		uint64_t whole = 0, valid = 0;
		if (!last && index_read(cs, l, (uint64_t)st.st_size)) {
			close(fd);
			cs->nfiles++;
			continue;
		}
		if (log_scan(fd, ids[i], (uint64_t)st.st_size, l, &whole, &valid) < 0) {
			log_warn("capture store: %s is not a capture log (bad header): moved aside",
				 path);
			char bad[620];
			snprintf(bad, sizeof(bad), "%s.bad", path);
			rename(path, bad);
			close(fd);
			continue;
		}
		if (whole < (uint64_t)st.st_size) {
			log_warn("capture store: %s: %" PRIu64
				 " bytes after the last whole group %s "
				 "(cut; the WAL still holds their frames)",
				 path, (uint64_t)st.st_size - whole,
				 valid < (uint64_t)st.st_size ? "are torn or damaged" : "");
			if (ftruncate(fd, (off_t)whole) < 0)
				log_warn("capture store: cannot cut %s: %s", path, strerror(errno));
		}
		cs->nfiles++;
		if (last) {
			cs->fd = fd;
		} else {
			index_write(cs, l);
			close(fd);
		}
	}
	if (cs->fd < 0) {
		uint64_t id = cs->nfiles ? cs->files[cs->nfiles - 1].id + 1 : 1;
		if ((r = log_create(cs, id, &cs->fd, err, errlen)) < 0)
			goto fail;
		struct clog *l = &cs->files[cs->nfiles++];
		memset(l, 0, sizeof(*l));
		l->id = id;
		l->size = CL_HDR;
		l->ts_min = UINT64_MAX;
	}
	uint64_t maxl = 0;
	for (size_t i = 0; i < cs->nfiles; i++)
		maxl = KP_MAX(maxl, cs->files[i].max_lsn);
	cs->recovered_lsn = KP_MAX(maxl, state_read(cs));
	cs->last_lsn = cs->appended_lsn = cs->recovered_lsn;
	atomic_store(&cs->synced_lsn, cs->recovered_lsn);
	cs->state_written_lsn = cs->recovered_lsn;
	free(ids);
	*out = cs;
	return 0;
fail:
	free(ids);
	capstore_close(cs);
	return r < 0 ? r : -EINVAL;
}

void capstore_close(struct capstore *cs)
{
	if (!cs)
		return;
	if (cs->fd >= 0) {
		capstore_sync(cs);
		state_write(cs, atomic_load(&cs->synced_lsn));
		close(cs->fd);
	}
	pthread_mutex_destroy(&cs->mu);
	pthread_mutex_destroy(&cs->amu);
	free(cs->files);
	free(cs->as);
	buf_free(&cs->pending);
	free(cs);
}

uint64_t capstore_recovered_lsn(struct capstore *cs)
{
	return cs->recovered_lsn;
}

/* ================================================================== appending */

/*
 * Log entry (8-aligned), one per record:
 *
 *   0  len u32        whole entry, CE_HDR + record + CE_TAIL
 *   4  flags u16      CE_LAST on the last entry of a group
 *   6  zero u16
 *   8  lsn u64        the frame's WAL LSN (0: an upload)
 *  16  node u64       the agent's node id
 *  24  clock_off i64  epoch ns - monotonic ns on that node
 *  32  the kp_cap_rec record (its own len bytes)
 *  len-8  xxh3_64 of bytes [0, len-8)
 *
 * A group's entries are written with one write() and become visible to readers (the log's
 * committed size) together; recovery keeps whole groups only.
 */
static void entry_add(struct kp_buf *b, uint64_t lsn, uint64_t node, int64_t clock_off,
		      const void *rec, uint32_t rec_len)
{
	uint8_t h[CE_HDR] = {0};
	le_put32(h, CE_HDR + rec_len + CE_TAIL);
	le_put64(h + 8, lsn);
	le_put64(h + 16, node);
	le_put64(h + 24, (uint64_t)clock_off);
	buf_append(b, h, sizeof(h));
	buf_append(b, rec, rec_len);
	buf_append(b, "\0\0\0\0\0\0\0\0", CE_TAIL); /* the checksum, filled by group_seal */
}

/* Marks the last entry and fills every checksum. */
static void group_seal(struct kp_buf *b)
{
	uint8_t *p = (uint8_t *)b->data, *end = p + b->len, *last = NULL;
	for (uint8_t *q = p; q < end; q += le_get32(q))
		last = q;
	if (last)
		le_put16(last + 4, CE_LAST);
	for (uint8_t *q = p; q < end; q += le_get32(q)) {
		uint32_t len = le_get32(q);
		le_put64(q + len - CE_TAIL, XXH3_64bits(q, len - CE_TAIL));
	}
}

/* Seals the active log (synced, indexed) and starts the next one. Caller holds amu. */
static int rotate(struct capstore *cs)
{
	char err[256];
	int nfd;
	pthread_mutex_lock(&cs->mu);
	struct clog *a = &cs->files[cs->nfiles - 1];
	uint64_t nid = a->id + 1;
	pthread_mutex_unlock(&cs->mu);
	if (fdatasync(cs->fd) < 0)
		return -errno;
	int r = log_create(cs, nid, &nfd, err, sizeof(err));
	if (r < 0) {
		log_error("capture store: %s", err);
		return r;
	}
	pthread_mutex_lock(&cs->mu);
	cs->files = xrealloc(cs->files, (cs->nfiles + 1) * sizeof(*cs->files));
	a = &cs->files[cs->nfiles - 1];
	index_write(cs, a);
	struct clog *l = &cs->files[cs->nfiles++];
	memset(l, 0, sizeof(*l));
	l->id = nid;
	l->size = CL_HDR;
	l->ts_min = UINT64_MAX;
	int old = cs->fd;
	cs->fd = nfd;
	pthread_mutex_unlock(&cs->mu);
	close(old);
	return 0;
}

/* Writes the pending group to the active log and publishes it. Caller holds amu. */
static int group_write(struct capstore *cs, const struct zone *z, uint64_t lsn)
{
	struct kp_buf *b = &cs->pending;
	group_seal(b);
	pthread_mutex_lock(&cs->mu);
	uint64_t asize = cs->files[cs->nfiles - 1].size;
	pthread_mutex_unlock(&cs->mu);
	if (asize > CL_HDR && asize + b->len > cs->file_max) {
		int r = rotate(cs);
		if (r < 0)
			log_warn("capture store: cannot start a new log: %s (appending to the "
				 "current one)",
				 strerror(-r));
	}
	int r = write_full(cs->fd, b->data, b->len);
	pthread_mutex_lock(&cs->mu);
	struct clog *a = &cs->files[cs->nfiles - 1];
	if (r < 0) {
		/* keep the log whole: cut back what this group may have left behind */
		if (ftruncate(cs->fd, (off_t)a->size) < 0)
			r = -errno;
		atomic_fetch_add(&cs->write_errors, z->n);
	} else {
		a->size += b->len;
		clog_merge(a, z);
		cs->dirty = true;
		atomic_fetch_add(&cs->records, z->n);
		atomic_fetch_add(&cs->bytes, b->len);
	}
	if (lsn)
		cs->appended_lsn = lsn;
	pthread_mutex_unlock(&cs->mu);
	b->len = 0;
	return r;
}

int capstore_append_frame(struct capstore *cs, uint64_t lsn, uint64_t node, const void *meta,
			  size_t meta_len)
{
	pthread_mutex_lock(&cs->amu);
	if (lsn <= cs->last_lsn) {
		pthread_mutex_unlock(&cs->amu);
		return 0; /* held already (a WAL replay that starts earlier than needed) */
	}
	cs->last_lsn = lsn;
	struct zone z;
	zone_init(&z);
	cs->pending.len = 0;
	wire_cap_asm_reset(cs->as);
	struct wire_meta_iter it = {meta, (const uint8_t *)meta + meta_len};
	uint16_t kind, len;
	const void *pl;
	while (meta_len && wire_meta_next(&it, &kind, &pl, &len)) {
		if (kind != WIRE_META_CAPTURE)
			continue;
		int r = wire_cap_piece(cs->as, pl, len);
		if (r < 0) {
			atomic_fetch_add(&cs->bad, 1); /* NEVER after wire_body_decode */
			continue;
		}
		if (r == 0)
			continue;
		const struct kp_cap_rec *c = (const void *)cs->as->buf;
		if (!rec_ok(c, cs->as->rec_len)) {
			atomic_fetch_add(&cs->bad, 1);
		} else {
			entry_add(&cs->pending, lsn, node, cs->as->clock_off, c, cs->as->rec_len);
			zone_add(&z, c, cs->as->clock_off, lsn);
		}
		wire_cap_asm_reset(cs->as);
	}
	int r = 0;
	if (cs->pending.len) {
		r = group_write(cs, &z, lsn);
		if (r < 0)
			log_error("capture store: cannot write %" PRIu64
				  " capture records of frame "
				  "%" PRIu64 ": %s; they are lost (check space in %s)",
				  z.n, lsn, strerror(-r), cs->dir);
	} else {
		pthread_mutex_lock(&cs->mu);
		cs->appended_lsn = lsn;
		pthread_mutex_unlock(&cs->mu);
	}
	pthread_mutex_unlock(&cs->amu);
	return r < 0 ? r : (int)z.n;
}

int capstore_append_upload(struct capstore *cs, uint64_t node, const struct rec *r)
{
	const struct rec_meta *m = rec_meta(r);
	int64_t off = (int64_t)(m->real_base - m->mono_base);
	pthread_mutex_lock(&cs->amu);
	struct zone z;
	zone_init(&z);
	cs->pending.len = 0;
	/* the records in global order; process events are not kept as records by the reader
	 * (rec.h keeps calls only), so fork/exec/exit are rebuilt from the thread table */
	for (int i = 0; i < rec_nthreads(r); i++) {
		const struct rec_thread *t = rec_thread(r, i);
		if (t->parent_tid) {
			int p = rec_thread_find(r, t->parent_tid);
			struct kp_cap_rec f = {.len = KP_CAP_HDR_LEN, .kind = KP_CAP_FORK};
			f.pid = p >= 0 ? rec_thread(r, p)->tgid : t->parent_tid;
			f.tid = t->parent_tid;
			f.ts_enter = f.ts_exit = t->start_ns;
			f.args[0] = t->tid;
			f.args[1] = t->tgid;
			if (t->flags & REC_T_THREAD)
				f.flags |= KP_CAP_F_THREAD;
			entry_add(&cs->pending, 0, node, off, &f, f.len);
			zone_add(&z, &f, off, 0);
		}
		if (t->tid == m->root_tid) {
			/* the exec that starts the recording, with the command line in aux */
			uint8_t buf[KP_CAP_HDR_LEN + 256 + KP_CAP_MAX_AUX + 8] = {0};
			struct kp_cap_rec *e = (void *)buf;
			e->kind = KP_CAP_EXEC;
			e->pid = t->tgid;
			e->tid = t->tid;
			e->ts_enter = e->ts_exit = m->mono_base;
			const char *a0 = m->argc ? m->argv[0] : "";
			size_t pl = KP_MIN(strlen(a0) + 1, (size_t)256);
			memcpy(buf + KP_CAP_HDR_LEN, a0, pl);
			buf[KP_CAP_HDR_LEN + pl - 1] = 0;
			size_t al = 0;
			for (int k = 0; k < m->argc; k++) {
				size_t n = strlen(m->argv[k]) + 1;
				if (al + n > KP_CAP_MAX_AUX)
					break;
				memcpy(buf + KP_CAP_HDR_LEN + pl + al, m->argv[k], n);
				al += n;
			}
			e->payload_len = (uint32_t)pl;
			e->aux_len = (uint16_t)al;
			e->len = (uint32_t)((KP_CAP_HDR_LEN + pl + al + 7) & ~7ul);
			entry_add(&cs->pending, 0, node, off, e, e->len);
			zone_add(&z, e, off, 0);
		}
	}
	for (uint64_t n = 0; n < rec_ncalls(r); n++) {
		int th;
		const struct kp_cap_rec *c = rec_call_seq(r, n, &th);
		entry_add(&cs->pending, 0, node, off, c, c->len);
		zone_add(&z, c, off, 0);
	}
	for (int i = 0; i < rec_nthreads(r); i++) {
		const struct rec_thread *t = rec_thread(r, i);
		if (!(t->flags & REC_T_EXITED))
			continue;
		struct kp_cap_rec x = {.len = KP_CAP_HDR_LEN, .kind = KP_CAP_EXIT};
		x.pid = t->tgid;
		x.tid = t->tid;
		x.ts_enter = x.ts_exit = KP_MAX(t->end_ns, t->start_ns) + 1;
		x.ret = t->tid == m->root_tid && m->root_status >= 0 ? m->root_status
								     : t->exit_code;
		entry_add(&cs->pending, 0, node, off, &x, x.len);
		zone_add(&z, &x, off, 0);
	}
	int ret = cs->pending.len ? group_write(cs, &z, 0) : 0;
	pthread_mutex_unlock(&cs->amu);
	if (ret == 0)
		ret = capstore_sync(cs);
	return ret < 0 ? ret : (int)z.n;
}

/* ================================================================== sync and retention */

int capstore_sync(struct capstore *cs)
{
	pthread_mutex_lock(&cs->mu);
	uint64_t lsn = cs->appended_lsn;
	bool dirty = cs->dirty;
	int fd = dirty && cs->fd >= 0 ? dup(cs->fd) : -1;
	cs->dirty = false;
	pthread_mutex_unlock(&cs->mu);
	if (dirty) {
		int r = fd < 0 || fdatasync(fd) < 0 ? -errno : 0;
		if (fd >= 0)
			close(fd);
		if (r < 0) {
			pthread_mutex_lock(&cs->mu);
			cs->dirty = true;
			pthread_mutex_unlock(&cs->mu);
			return r;
		}
	}
	if (lsn > atomic_load(&cs->synced_lsn))
		atomic_store(&cs->synced_lsn, lsn);
	/* the state file only saves WAL replay work at the next start: once a second is enough */
	uint64_t now = now_mono_ns();
	if (lsn > cs->state_written_lsn && now - cs->state_written_ns > NSEC_PER_SEC) {
		state_write(cs, lsn);
		cs->state_written_lsn = lsn;
		cs->state_written_ns = now;
	}
	return 0;
}

uint64_t capstore_synced_lsn(struct capstore *cs)
{
	return atomic_load(&cs->synced_lsn);
}

int capstore_retention_run(struct capstore *cs, uint64_t now_ns)
{
	if (!now_ns)
		now_ns = now_real_ns();
	uint64_t keep = (uint64_t)cs->retention_days * 86400ull * NSEC_PER_SEC;
	uint64_t cutoff = now_ns > keep ? now_ns - keep : 0;
	int removed = 0;
	pthread_mutex_lock(&cs->mu);
	uint64_t total = 0;
	for (size_t i = 0; i < cs->nfiles; i++)
		total += cs->files[i].size;
	/* sealed logs only (never the last, active one), oldest first */
	while (cs->nfiles > 1) {
		struct clog *l = &cs->files[0];
		bool old = l->n == 0 || l->ts_max < cutoff;
		if (!old && total <= cs->max_bytes)
			break;
		char p[600];
		log_path(cs, l->id, "kcl", p, sizeof(p));
		unlink(p);
		log_path(cs, l->id, "kcx", p, sizeof(p));
		unlink(p);
		total -= l->size;
		memmove(cs->files, cs->files + 1, (cs->nfiles - 1) * sizeof(*cs->files));
		cs->nfiles--;
		removed++;
	}
	pthread_mutex_unlock(&cs->mu);
	if (removed) {
		atomic_fetch_add(&cs->expired, (uint64_t)removed);
		log_info("capture store: %d logs deleted (older than %d days, or over "
			 "replay.capture.storeMaxMb)",
			 removed, cs->retention_days);
	}
	return removed;
}

void capstore_stats(struct capstore *cs, struct capstore_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->records = atomic_load(&cs->records);
	st->bytes = atomic_load(&cs->bytes);
	st->bad_records = atomic_load(&cs->bad);
	st->write_errors = atomic_load(&cs->write_errors);
	st->corrupt = atomic_load(&cs->corrupt);
	st->expired_files = atomic_load(&cs->expired);
	st->synced_lsn = atomic_load(&cs->synced_lsn);
	pthread_mutex_lock(&cs->mu);
	st->files = cs->nfiles;
	for (size_t i = 0; i < cs->nfiles; i++)
		st->disk_bytes += cs->files[i].size;
	pthread_mutex_unlock(&cs->mu);
}

/* ================================================================== scanning */

static bool clog_may_match(const struct clog *l, const struct capstore_sel *sel)
{
	if (!l->n || l->ts_max < sel->from_ns || l->ts_min > sel->to_ns)
		return false;
	if (sel->npids <= 0)
		return true;
	for (int i = 0; i < sel->npids; i++)
		if (bloom_has(l->bloom, sel->pids[i]))
			return true;
	return false;
}

static bool sel_match(const struct capstore_sel *sel, uint64_t node, int64_t clock_off,
		      const struct kp_cap_rec *c)
{
	if (sel->node && node != sel->node)
		return false;
	uint64_t t = rec_end(c, clock_off);
	if (t < sel->from_ns || t > sel->to_ns)
		return false;
	if (sel->npids <= 0)
		return true;
	for (int i = 0; i < sel->npids; i++)
		if (sel->pids[i] == c->pid)
			return true;
	return false;
}

int capstore_scan(struct capstore *cs, const struct capstore_sel *sel, capstore_fn fn, void *ctx,
		  bool (*cancel)(void *), void *cancel_arg)
{
	pthread_mutex_lock(&cs->mu);
	size_t n = 0;
	struct clog *snap = xmalloc((cs->nfiles + 1) * sizeof(*snap));
	for (size_t i = 0; i < cs->nfiles; i++)
		if (clog_may_match(&cs->files[i], sel))
			snap[n++] = cs->files[i];
	pthread_mutex_unlock(&cs->mu);
	uint8_t *buf = n ? xmalloc(READ_BLOCK + CE_MAX) : NULL;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		char path[600];
		log_path(cs, snap[i].id, "kcl", path, sizeof(path));
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* deleted by retention since the snapshot */
		uint64_t off = CL_HDR, size = snap[i].size;
		while (off < size && !rc) {
			if (cancel && cancel(cancel_arg)) {
				rc = -ECANCELED;
				break;
			}
			uint64_t want = KP_MIN((uint64_t)READ_BLOCK + CE_MAX, size - off);
			ssize_t got = pread(fd, buf, want, (off_t)off);
			if (got <= 0) {
				rc = got < 0 ? -errno : 0;
				break;
			}
			uint64_t at = 0;
			uint32_t len;
			while (!rc && (len = entry_check(buf + at, (uint64_t)got - at)) > 0) {
				const struct kp_cap_rec *c = (const void *)(buf + at + CE_HDR);
				uint64_t node = le_get64(buf + at + 16);
				int64_t co = (int64_t)le_get64(buf + at + 24);
				if (sel_match(sel, node, co, c))
					rc = fn(ctx, node, co, c);
				at += len;
				if (at >= READ_BLOCK)
					break;
			}
			if (!at) {
				/* committed bytes that do not read back as entries: damage */
				atomic_fetch_add(&cs->corrupt, 1);
				log_error("capture store: %s is damaged at byte %" PRIu64
					  " (checksum or length); the rest of it is not read",
					  path, off);
				break;
			}
			off += at;
		}
		close(fd);
	}
	free(buf);
	free(snap);
	return rc;
}
