/*
 * wal.c - the write-ahead log: file format, appends, group commit, recovery (torn tails,
 * damage), replay, release and the dedup checkpoint. Contract in wal.h.
 *
 * Why the WAL holds frames as received (header + LZ4 body) and not decoded events: it is what
 * the agent checksummed, so a record proves exactly what was acknowledged; it is 3-5x smaller
 * than the decoded events, so the disk writes less per event; and replay re-decodes at LZ4's
 * 4-5 GB/s, which costs nothing next to the fsync budget. The frame header's (node_id, seq) is
 * copied into the record header so that recovery can rebuild the dedup table without decoding.
 */
#define XXH_STATIC_LINKING_ONLY
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/le.h"
#include "common/util.h"
#include "store/wal.h"

/* ------------------------------------------------------------------------------------------ */
/* On-disk layout                                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * A WAL file, `<first_lsn as 16 hex digits>.wal`, little-endian:
 *
 *   file header (32 bytes)
 *   +--------+---------+-------+-----------+------------+------------------------+
 *   | magic  | version | flags | first_lsn | created_ns | xxh3_64(bytes 0..24)   |
 *   | "KPW1" |  u16 =1 | u16 0 |    u64    |    u64     |          u64           |
 *   +--------+---------+-------+-----------+------------+------------------------+
 *    0        4         6       8           16           24                      32
 *
 *   record (40-byte header + payload), repeated, no padding
 *   +--------+---------+-----+---------+-----+---------------------------------+---------+
 *   | magic  | len     | lsn | node_id | seq | xxh3_64(bytes 0..32 ‖ payload)  | payload |
 *   | "KPR1" | u32     | u64 |   u64   | u64 |              u64                | len B   |
 *   +--------+---------+-----+---------+-----+---------------------------------+---------+
 *    0        4         8     16        24    32                                40
 *
 * LSNs are consecutive inside a file and across files (file i+1 starts at last lsn of i + 1).
 * The record magic lets recovery tell a torn tail (nothing valid after the first bad byte)
 * from damage (valid records further on). The payload is a wire frame as received.
 *
 * `checkpoint` (dedup state of released files), replaced atomically with rename:
 *
 *   +--------+---------+-----+--------------+---------+-----+----------------------+--------+
 *   | magic  | version | pad | released_lsn | n_nodes | pad | n_nodes x            | xxh3   |
 *   | "KPC1" |  u16 =1 | u16 |     u64      |   u32   | u32 | {node_id, max_seq}   | of all |
 *   +--------+---------+-----+--------------+---------+-----+----------------------+--------+
 *    0        4         6     8              16        20    24                     24+16n
 */
#define WAL_FILE_MAGIC	 0x3157504bu /* "KPW1" */
#define WAL_REC_MAGIC	 0x3152504bu /* "KPR1" */
#define WAL_CKPT_MAGIC	 0x3143504bu /* "KPC1" */
#define WAL_VERSION	 1
#define WAL_FILE_HDR	 32
#define WAL_REC_HDR	 40
#define WAL_DEFAULT_FILE (64ull << 20)


static void file_hdr_encode(uint8_t *h, uint64_t first_lsn, uint64_t created_ns)
{
	le_put32(h, WAL_FILE_MAGIC);
	le_put16(h + 4, WAL_VERSION);
	le_put16(h + 6, 0);
	le_put64(h + 8, first_lsn);
	le_put64(h + 16, created_ns);
	le_put64(h + 24, XXH3_64bits(h, 24));
}

/* Fills the 40-byte record header; the checksum covers bytes 0..32 and the payload. */
static void rec_hdr_encode(uint8_t *h, XXH3_state_t *st, uint64_t lsn, uint64_t node_id,
			   uint64_t seq, const struct iovec *iov, int iovcnt, uint32_t len)
{
	le_put32(h, WAL_REC_MAGIC);
	le_put32(h + 4, len);
	le_put64(h + 8, lsn);
	le_put64(h + 16, node_id);
	le_put64(h + 24, seq);
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, h, 32);
	for (int i = 0; i < iovcnt; i++)
		XXH3_64bits_update(st, iov[i].iov_base, iov[i].iov_len);
	le_put64(h + 32, XXH3_64bits_digest(st));
}

/* A record parsed from a mapped file. */
struct rec {
	uint64_t lsn, node_id, seq;
	uint32_t len;
	const uint8_t *payload;
};

/* Validates the record at p (avail bytes). Returns its total size, or 0 if it is not valid. */
static size_t rec_decode(const uint8_t *p, size_t avail, XXH3_state_t *st, struct rec *r)
{
	if (avail < WAL_REC_HDR || le_get32(p) != WAL_REC_MAGIC)
		return 0;
	uint32_t len = le_get32(p + 4);
	if (len > WAL_MAX_PAYLOAD || avail - WAL_REC_HDR < len)
		return 0;
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, p, 32);
	XXH3_64bits_update(st, p + WAL_REC_HDR, len);
	if (XXH3_64bits_digest(st) != le_get64(p + 32))
		return 0;
	r->len = len;
	r->lsn = le_get64(p + 8);
	r->node_id = le_get64(p + 16);
	r->seq = le_get64(p + 24);
	r->payload = p + WAL_REC_HDR;
	return WAL_REC_HDR + (size_t)len;
}

/* ------------------------------------------------------------------------------------------ */
/* The dedup table: node_id -> highest seq (open addressing, linear probing)                   */
/* ------------------------------------------------------------------------------------------ */

struct node_ent {
	uint64_t node_id, max_seq, lsn;
	uint64_t file_gen;  /* the file whose node list holds this node's entry ... */
	uint32_t file_slot; /* ... at this index */
	uint8_t used;
};

struct node_map {
	struct node_ent *v;
	size_t cap, n; /* cap: power of two */
};

static size_t nmap_slot(uint64_t id, size_t cap)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static struct node_ent *nmap_find(const struct node_map *m, uint64_t id)
{
	if (!m->cap)
		return NULL;
	for (size_t i = nmap_slot(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (!m->v[i].used)
			return NULL;
		if (m->v[i].node_id == id)
			return &m->v[i];
	}
}

static struct node_ent *nmap_add(struct node_map *m, uint64_t id)
{
	struct node_ent *e = nmap_find(m, id);
	if (e)
		return e;
	if ((m->n + 1) * 2 > m->cap) {
		struct node_map g = {xcalloc(m->cap ? m->cap * 2 : 64, sizeof(struct node_ent)),
				     m->cap ? m->cap * 2 : 64, 0};
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->v[i].used)
				continue;
			struct node_ent *d = nmap_add(&g, m->v[i].node_id);
			*d = m->v[i];
		}
		free(m->v);
		*m = g;
	}
	size_t i = nmap_slot(id, m->cap);
	while (m->v[i].used)
		i = (i + 1) & (m->cap - 1);
	m->v[i] = (struct node_ent){.node_id = id, .used = 1};
	m->n++;
	return &m->v[i];
}

/* ------------------------------------------------------------------------------------------ */
/* State                                                                                       */
/* ------------------------------------------------------------------------------------------ */

struct file_node {
	uint64_t node_id, max_seq;
};

struct wal_file {
	uint64_t first_lsn, last_lsn; /* last_lsn = first_lsn - 1 while empty */
	uint64_t size;
	uint64_t gen;
	int fd;			 /* open while appended to or not yet synced; -1 otherwise */
	struct file_node *nodes; /* per-node maxima of this file's records (for release) */
	size_t nnodes, capnodes;
};

struct wal {
	char dir[PATH_MAX];
	int dirfd, lockfd;
	int read_only;
	uint64_t file_max;
	struct wal_io io;
	XXH3_state_t *xxh;

	pthread_mutex_t mu; /* files[] (rotation vs release), ckpt */
	pthread_mutex_t release_mu;
	struct wal_file **files; /* by first_lsn; the last is the active one (writable WAL) */
	size_t nfiles, capfiles;
	struct wal_file *active;
	uint64_t gen_counter;

	struct node_map nodes; /* checkpoint + every record held: what dedup consults */
	struct node_map ckpt;  /* maxima of released records (release_mu) */
	uint64_t released_lsn;

	uint64_t next_lsn;
	uint64_t last_lsn, durable_lsn; /* atomics: read from other threads */
	int failed;
	int dir_dirty;
	struct wal_stats st;
};

const char *wal_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case WAL_EMAGIC:
		return "not a kprobe WAL file (bad magic)";
	case WAL_EVERSION:
		return "WAL file of an unsupported format version";
	case WAL_ECHECKPOINT:
		return "WAL checkpoint damaged (move wal/checkpoint away to start; duplicates of "
		       "released frames will then be stored again)";
	case WAL_EFAILED:
		return "WAL failed after an I/O error; restart kprobed once the disk is healthy";
	case WAL_ETOOBIG:
		return "WAL record larger than the maximum payload";
	case WAL_ERDONLY:
		return "WAL opened read-only";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}

static ssize_t sys_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	return pwritev(fd, iov, iovcnt, off);
}
static const struct wal_io sys_io = {sys_pwritev, fdatasync};

static void file_path(const struct wal *w, uint64_t first_lsn, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 ".wal", w->dir, first_lsn);
}

static void stat_add(uint64_t *p, uint64_t v)
{
	__atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}

static void file_free(struct wal_file *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->nodes);
	free(f);
}

static void file_note_node(struct wal *w, struct wal_file *f, uint64_t node_id, uint64_t seq,
			   uint64_t lsn)
{
	struct node_ent *e = nmap_add(&w->nodes, node_id);
	if (e->file_gen != f->gen) {
		if (f->nnodes == f->capnodes) {
			f->capnodes = f->capnodes ? f->capnodes * 2 : 8;
			f->nodes = xrealloc(f->nodes, f->capnodes * sizeof(*f->nodes));
		}
		e->file_gen = f->gen;
		e->file_slot = (uint32_t)f->nnodes;
		f->nodes[f->nnodes++] = (struct file_node){node_id, seq};
	} else if (seq > f->nodes[e->file_slot].max_seq) {
		f->nodes[e->file_slot].max_seq = seq;
	}
	if (seq >= e->max_seq) {
		e->max_seq = seq;
		e->lsn = lsn;
	}
}

static void files_push(struct wal *w, struct wal_file *f)
{
	pthread_mutex_lock(&w->mu);
	if (w->nfiles == w->capfiles) {
		w->capfiles = w->capfiles ? w->capfiles * 2 : 16;
		w->files = xrealloc(w->files, w->capfiles * sizeof(*w->files));
	}
	w->files[w->nfiles++] = f;
	pthread_mutex_unlock(&w->mu);
}

/* ------------------------------------------------------------------------------------------ */
/* Checkpoint                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static int ckpt_load(struct wal *w)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/checkpoint", w->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	struct stat st;
	int r = 0;
	uint8_t *b = NULL;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto cleanup;
	}
	if (st.st_size < 32 || st.st_size > (64 << 20)) {
		r = WAL_ECHECKPOINT;
		goto cleanup;
	}
	b = xmalloc((size_t)st.st_size);
	if ((r = read_full(fd, b, (size_t)st.st_size)) < 0)
		goto cleanup;
	if (le_get32(b) != WAL_CKPT_MAGIC) {
		r = WAL_ECHECKPOINT;
		goto cleanup;
	}
	if (le_get16(b + 4) != WAL_VERSION) {
		r = WAL_EVERSION;
		goto cleanup;
	}
	uint32_t n = le_get32(b + 16);
	if ((uint64_t)st.st_size != 24 + 16ull * n + 8 ||
	    XXH3_64bits(b, (size_t)st.st_size - 8) != le_get64(b + st.st_size - 8)) {
		r = WAL_ECHECKPOINT;
		goto cleanup;
	}
	w->released_lsn = le_get64(b + 8);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = le_get64(b + 24 + 16 * i), seq = le_get64(b + 32 + 16 * i);
		struct node_ent *c = nmap_add(&w->ckpt, id);
		c->max_seq = KP_MAX(c->max_seq, seq);
		struct node_ent *e = nmap_add(&w->nodes, id);
		e->max_seq = KP_MAX(e->max_seq, seq);
	}
cleanup:
	free(b);
	close(fd);
	return r;
}

/* Writes m as the new checkpoint: temp file, fdatasync, rename, directory fsync. */
static int ckpt_write(struct wal *w, const struct node_map *m, uint64_t released_lsn)
{
	struct kp_buf b = {0};
	uint8_t h[24] = {0};
	le_put32(h, WAL_CKPT_MAGIC);
	le_put16(h + 4, WAL_VERSION);
	le_put64(h + 8, released_lsn);
	le_put32(h + 16, (uint32_t)m->n);
	buf_append(&b, h, sizeof(h));
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->v[i].used)
			continue;
		uint8_t e[16];
		le_put64(e, m->v[i].node_id);
		le_put64(e + 8, m->v[i].max_seq);
		buf_append(&b, e, sizeof(e));
	}
	uint8_t sum[8];
	le_put64(sum, XXH3_64bits(b.data, b.len));
	buf_append(&b, sum, 8);

	char tmp[PATH_MAX + 16], path[PATH_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s/checkpoint.tmp", w->dir);
	snprintf(path, sizeof(path), "%s/checkpoint", w->dir);
	int r = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		goto cleanup;
	}
	struct iovec iov = {b.data, b.len};
	ssize_t n = w->io.pwritev(fd, &iov, 1, 0);
	if (n != (ssize_t)b.len) {
		r = n < 0 ? -errno : -EIO;
		goto cleanup;
	}
	if (w->io.fdatasync(fd) < 0) {
		r = -errno;
		goto cleanup;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto cleanup;
	}
	if (fsync(w->dirfd) < 0)
		r = -errno;
cleanup:
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	buf_free(&b);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Open and recovery                                                                           */
/* ------------------------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Lists the LSNs of every `<16 hex>.wal` file, sorted. */
static int list_files(const char *dir, uint64_t **out, size_t *n)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *s = e->d_name;
		if (strlen(s) != 20 || strcmp(s + 16, ".wal"))
			continue;
		char *end;
		uint64_t lsn = strtoull(s, &end, 16);
		if (end != s + 16)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		(*out)[(*n)++] = lsn;
	}
	closedir(d);
	if (*n)
		qsort(*out, *n, sizeof(**out), cmp_u64);
	return 0;
}

struct scan_file {
	uint64_t name_lsn;
	int fd;
	uint8_t *map;
	size_t size;
};

static void scan_unmap(struct scan_file *s)
{
	if (s->map)
		munmap(s->map, s->size);
	if (s->fd >= 0)
		close(s->fd);
	s->map = NULL;
	s->fd = -1;
}

static int scan_map(struct wal *w, struct scan_file *s)
{
	char path[PATH_MAX + 32];
	file_path(w, s->name_lsn, path, sizeof(path));
	s->fd = open(path, (w->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (s->fd < 0)
		return -errno;
	struct stat st;
	if (fstat(s->fd, &st) < 0)
		return -errno;
	s->size = (size_t)st.st_size;
	s->map = NULL;
	if (s->size) {
		void *m = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
		if (m == MAP_FAILED)
			return -errno;
		s->map = m;
	}
	return 0;
}

/* Returns 1 when bytes [from, size) of s hold at least one valid record. */
static int has_valid_record(const struct scan_file *s, size_t from, XXH3_state_t *st)
{
	for (size_t off = from; off + WAL_REC_HDR <= s->size; off++) {
		const uint8_t *p = memmem(s->map + off, s->size - off, "KPR1", 4);
		if (!p)
			return 0;
		off = (size_t)(p - s->map);
		struct rec r;
		if (rec_decode(p, s->size - off, st, &r))
			return 1;
	}
	return 0;
}

/* Checks a file header; returns 0, WAL_EMAGIC / WAL_EVERSION, or 1 when torn or damaged. */
static int scan_header(const struct scan_file *s)
{
	if (s->size < WAL_FILE_HDR)
		return 1;
	if (le_get32(s->map) != WAL_FILE_MAGIC)
		return WAL_EMAGIC;
	if (le_get16(s->map + 4) != WAL_VERSION)
		return WAL_EVERSION;
	if (XXH3_64bits(s->map, 24) != le_get64(s->map + 24) || le_get64(s->map + 8) != s->name_lsn)
		return 1;
	return 0;
}

static int copy_range(int from_fd, off_t off, size_t len, const char *to)
{
	int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = 0;
	char buf[65536];
	while (len) {
		ssize_t n = pread(from_fd, buf, KP_MIN(len, sizeof(buf)), off);
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		if ((r = write_full(fd, buf, (size_t)n)) < 0)
			break;
		off += n;
		len -= (size_t)n;
	}
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * Scans every file in LSN order. Stops at the first record that is not valid (bad bytes, or an
 * LSN that does not follow). What comes after is a torn tail when nothing valid follows (cut),
 * damage otherwise (kept in aside/, reported). Fills files[] and the dedup table.
 */
static int recover(struct wal *w, struct wal_recovery *rec)
{
	uint64_t *lsns = NULL;
	size_t n = 0;
	int r = list_files(w->dir, &lsns, &n);
	if (r < 0)
		return r;
	struct scan_file *sf = xcalloc(n ? n : 1, sizeof(*sf));
	for (size_t i = 0; i < n; i++)
		sf[i] = (struct scan_file){lsns[i], -1, NULL, 0};
	XXH3_state_t *st = w->xxh;
	uint64_t expect = 0; /* next LSN expected; 0 before the first record */
	size_t stop_file = n, stop_off = 0;

	for (size_t i = 0; i < n && stop_file == n; i++) {
		struct scan_file *s = &sf[i];
		if ((r = scan_map(w, s)) < 0)
			goto cleanup;
		int h = scan_header(s);
		if (h < 0) {
			log_error("WAL file %s/%016" PRIx64 ".wal: %s", w->dir, s->name_lsn,
				  wal_strerror(h));
			r = h;
			goto cleanup;
		}
		if (h == 1 || (expect && s->name_lsn != expect)) {
			stop_file = i, stop_off = 0;
			break;
		}
		struct wal_file *f = xcalloc(1, sizeof(*f));
		f->first_lsn = s->name_lsn;
		f->last_lsn = s->name_lsn - 1;
		f->gen = ++w->gen_counter;
		f->fd = -1;
		size_t off = WAL_FILE_HDR;
		while (off < s->size) {
			struct rec rr;
			size_t len = rec_decode(s->map + off, s->size - off, st, &rr);
			if (!len || rr.lsn != f->last_lsn + 1) {
				stop_file = i, stop_off = off;
				break;
			}
			f->last_lsn = rr.lsn;
			file_note_node(w, f, rr.node_id, rr.seq, rr.lsn);
			if (rec) {
				rec->records++;
				rec->bytes += rr.len;
				if (!rec->first_lsn)
					rec->first_lsn = rr.lsn;
				rec->last_lsn = rr.lsn;
			}
			off += len;
		}
		f->size = stop_file == i ? stop_off : s->size;
		expect = f->last_lsn + 1;
		files_push(w, f);
	}

	if (stop_file < n) {
		/* Torn tail or damage? Damage when a valid record or file follows the stop point.
		 */
		struct scan_file *s = &sf[stop_file];
		int damaged =
			s->map && stop_off >= WAL_FILE_HDR && has_valid_record(s, stop_off + 1, st);
		for (size_t j = stop_file + 1; j < n && !damaged; j++) {
			if ((r = scan_map(w, &sf[j])) < 0)
				goto cleanup;
			damaged = scan_header(&sf[j]) == 0 && sf[j].size > WAL_FILE_HDR;
		}
		uint64_t cut = 0;
		for (size_t j = stop_file; j < n; j++)
			cut += sf[j].size - (j == stop_file ? stop_off : 0);
		if (rec) {
			if (damaged)
				rec->aside_bytes += cut;
			else
				rec->torn_bytes += cut;
			snprintf(rec->note, sizeof(rec->note),
				 "%s at %016" PRIx64 ".wal offset %zu: %" PRIu64 " bytes %s",
				 damaged ? "damaged record" : "torn tail", s->name_lsn, stop_off,
				 cut,
				 w->read_only ? "ignored (read-only)"
				 : damaged    ? "moved to wal/aside/"
					      : "cut");
		}
		if (damaged)
			log_error("WAL: damaged record in %s/%016" PRIx64 ".wal at offset %zu; "
				  "recovery stops there, the %" PRIu64 " bytes after it are %s",
				  w->dir, s->name_lsn, stop_off, cut,
				  w->read_only ? "ignored" : "kept in wal/aside/ for inspection");
		else if (cut)
			log_warn("WAL: torn tail of %" PRIu64 " bytes in %016" PRIx64
				 ".wal (interrupted append) %s",
				 cut, s->name_lsn, w->read_only ? "ignored" : "cut");
		if (!w->read_only) {
			char aside[PATH_MAX + 16], path[PATH_MAX + 64];
			/* One directory per recovery, so nothing set aside earlier is overwritten.
			 */
			snprintf(aside, sizeof(aside), "%s/aside/%" PRIu64, w->dir, now_real_ns());
			if (damaged && (r = mkdir_p(aside, 0755)) < 0)
				goto cleanup;
			for (size_t j = stop_file; j < n; j++) {
				struct scan_file *t = &sf[j];
				if (j == stop_file && stop_off > WAL_FILE_HDR) {
					if (damaged) {
						snprintf(path, sizeof(path),
							 "%s/%016" PRIx64 ".wal.from-%zu", aside,
							 t->name_lsn, stop_off);
						if ((r = copy_range(t->fd, (off_t)stop_off,
								    t->size - stop_off, path)) < 0)
							goto cleanup;
					}
					if (ftruncate(t->fd, (off_t)stop_off) < 0 ||
					    fdatasync(t->fd) < 0) {
						r = -errno;
						goto cleanup;
					}
					continue;
				}
				char from[PATH_MAX + 32];
				file_path(w, t->name_lsn, from, sizeof(from));
				if (damaged) {
					snprintf(path, sizeof(path), "%s/%016" PRIx64 ".wal", aside,
						 t->name_lsn);
					if (rename(from, path) < 0) {
						r = -errno;
						goto cleanup;
					}
				} else if (unlink(from) < 0) {
					r = -errno;
					goto cleanup;
				}
				/* An emptied file goes from files[] as well. */
				if (j == stop_file && w->nfiles &&
				    w->files[w->nfiles - 1]->first_lsn == t->name_lsn) {
					file_free(w->files[--w->nfiles]);
				}
			}
			if (fsync(w->dirfd) < 0) {
				r = -errno;
				goto cleanup;
			}
		}
	}

	/* Records that survived a SIGKILL may still be only in the page cache: make them durable
	 * before they count as such (a resend of them will be acked as a duplicate). */
	if (!w->read_only)
		for (size_t i = 0; i < n; i++)
			if (sf[i].fd >= 0 && sf[i].map && w->io.fdatasync(sf[i].fd) < 0) {
				r = -errno;
				goto cleanup;
			}
	r = 0;
cleanup:
	for (size_t i = 0; i < n; i++)
		scan_unmap(&sf[i]);
	free(sf);
	free(lsns);
	return r;
}

static int file_create(struct wal *w, uint64_t first_lsn, struct wal_file **out)
{
	char path[PATH_MAX + 32];
	file_path(w, first_lsn, path, sizeof(path));
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	uint8_t h[WAL_FILE_HDR];
	file_hdr_encode(h, first_lsn, now_real_ns());
	struct iovec iov = {h, sizeof(h)};
	ssize_t n = w->io.pwritev(fd, &iov, 1, 0);
	if (n != (ssize_t)sizeof(h)) {
		int r = n < 0 ? -errno : -EIO;
		close(fd);
		unlink(path);
		return r;
	}
	struct wal_file *f = xcalloc(1, sizeof(*f));
	f->first_lsn = first_lsn;
	f->last_lsn = first_lsn - 1;
	f->size = WAL_FILE_HDR;
	f->gen = ++w->gen_counter;
	f->fd = fd;
	w->dir_dirty = 1;
	stat_add(&w->st.files_created, 1);
	*out = f;
	return 0;
}

int wal_open(struct wal **out, const char *dir, const struct wal_opts *opts,
	     struct wal_recovery *rec)
{
	struct wal_opts o = opts ? *opts : (struct wal_opts){0};
	struct wal *w = xcalloc(1, sizeof(*w));
	int r;
	w->dirfd = w->lockfd = -1;
	w->read_only = o.read_only;
	w->file_max = o.file_max_bytes ? o.file_max_bytes : WAL_DEFAULT_FILE;
	w->io = o.io ? *o.io : sys_io;
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->release_mu, NULL);
	w->xxh = XXH3_createState();
	if (!w->xxh) {
		r = -ENOMEM;
		goto fail;
	}
	if (rec)
		memset(rec, 0, sizeof(*rec));
	if (strlen(dir) >= sizeof(w->dir) - 64) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	if (!w->read_only && (r = mkdir_p(dir, 0755)) < 0)
		goto fail;
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		r = -errno;
		goto fail;
	}
	if (!w->read_only) {
		char lock[PATH_MAX + 8];
		snprintf(lock, sizeof(lock), "%s/LOCK", dir);
		w->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (w->lockfd < 0) {
			r = -errno;
			goto fail;
		}
		if (flock(w->lockfd, LOCK_EX | LOCK_NB) < 0) {
			r = errno == EWOULDBLOCK ? -EBUSY : -errno;
			goto fail;
		}
		char tmp[PATH_MAX + 16];
		snprintf(tmp, sizeof(tmp), "%s/checkpoint.tmp", dir);
		unlink(tmp); /* a release interrupted before its rename */
	}
	if ((r = ckpt_load(w)) < 0)
		goto fail;
	if ((r = recover(w, rec)) < 0)
		goto fail;
	uint64_t last = w->nfiles ? w->files[w->nfiles - 1]->last_lsn : 0;
	if (w->nfiles && w->files[0]->first_lsn > w->released_lsn + 1 && w->released_lsn)
		log_warn("WAL: LSNs %" PRIu64 "..%" PRIu64
			 " are missing (files removed by hand?); continuing",
			 w->released_lsn + 1, w->files[0]->first_lsn - 1);
	last = KP_MAX(last, w->released_lsn);
	w->next_lsn = last + 1;
	w->last_lsn = w->durable_lsn = last;
	/* Files that ended up without records are not worth keeping. */
	if (!w->read_only) {
		for (size_t i = 0; i < w->nfiles;) {
			struct wal_file *f = w->files[i];
			if (f->last_lsn >= f->first_lsn) {
				i++;
				continue;
			}
			char path[PATH_MAX + 32];
			file_path(w, f->first_lsn, path, sizeof(path));
			unlink(path);
			file_free(f);
			memmove(&w->files[i], &w->files[i + 1],
				(w->nfiles - i - 1) * sizeof(*w->files));
			w->nfiles--;
		}
		struct wal_file *f;
		if ((r = file_create(w, w->next_lsn, &f)) < 0)
			goto fail;
		files_push(w, f);
		w->active = f;
		if ((r = wal_sync(w)) < 0)
			goto fail;
	}
	if (rec) {
		rec->files = w->nfiles;
		rec->nodes = w->nodes.n;
	}
	*out = w;
	return 0;
fail:
	wal_close(w);
	return r;
}

void wal_close(struct wal *w)
{
	if (!w)
		return;
	if (!w->read_only && !w->failed && w->active)
		wal_sync(w);
	for (size_t i = 0; i < w->nfiles; i++)
		file_free(w->files[i]);
	free(w->files);
	free(w->nodes.v);
	free(w->ckpt.v);
	if (w->xxh)
		XXH3_freeState(w->xxh);
	if (w->dirfd >= 0)
		close(w->dirfd);
	if (w->lockfd >= 0)
		close(w->lockfd); /* releases the flock */
	pthread_mutex_destroy(&w->mu);
	pthread_mutex_destroy(&w->release_mu);
	free(w);
}

/* ------------------------------------------------------------------------------------------ */
/* Appends and group commit                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void wal_fail(struct wal *w, int err, const char *what)
{
	if (!w->failed)
		log_error("WAL %s: %s: %s; no more frames are accepted until kprobed restarts",
			  w->dir, what, strerror(-err));
	w->failed = WAL_EFAILED;
}

int wal_append(struct wal *w, uint64_t node_id, uint64_t seq, const struct iovec *iov, int iovcnt,
	       uint64_t *lsn)
{
	if (w->read_only)
		return WAL_ERDONLY;
	if (w->failed)
		return WAL_EFAILED;
	if (iovcnt < 0 || iovcnt > 7)
		return -EINVAL;
	uint64_t len = 0;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (len > WAL_MAX_PAYLOAD)
		return WAL_ETOOBIG;
	struct wal_file *f = w->active;
	if (f->size + WAL_REC_HDR + len > w->file_max && f->last_lsn >= f->first_lsn) {
		struct wal_file *nf;
		int r = file_create(w, w->next_lsn, &nf);
		if (r < 0)
			return r;
		files_push(w, nf);
		w->active = f = nf;
		/* The previous file keeps its fd until a sync has covered it. */
	}
	uint8_t h[WAL_REC_HDR];
	rec_hdr_encode(h, w->xxh, w->next_lsn, node_id, seq, iov, iovcnt, (uint32_t)len);
	struct iovec v[8];
	v[0] = (struct iovec){h, sizeof(h)};
	memcpy(v + 1, iov, (size_t)iovcnt * sizeof(*iov));
	int nv = iovcnt + 1;
	uint64_t total = WAL_REC_HDR + len, done = 0;
	struct iovec *cur = v;
	while (done < total) {
		ssize_t n = w->io.pwritev(f->fd, cur, nv, (off_t)(f->size + done));
		if (n <= 0) {
			int err = n < 0 ? -errno : -EIO;
			if (n < 0 && errno == EINTR)
				continue;
			/* Cut the partial record off again so the file stays a clean sequence. */
			if (ftruncate(f->fd, (off_t)f->size) < 0)
				wal_fail(w, -errno, "cannot cut a partial record");
			return err;
		}
		done += (uint64_t)n;
		/* Advance the iovec past what was written (short write). */
		size_t k = (size_t)n;
		while (nv && k >= cur->iov_len) {
			k -= cur->iov_len;
			cur++;
			nv--;
		}
		if (nv) {
			cur->iov_base = (char *)cur->iov_base + k;
			cur->iov_len -= k;
		}
	}
	f->size += total;
	f->last_lsn = w->next_lsn;
	file_note_node(w, f, node_id, seq, w->next_lsn);
	*lsn = w->next_lsn++;
	__atomic_store_n(&w->last_lsn, *lsn, __ATOMIC_RELEASE);
	stat_add(&w->st.appends, 1);
	stat_add(&w->st.append_bytes, total);
	return 0;
}

int wal_sync_prepare(struct wal *w, struct wal_sync_req *req)
{
	memset(req, 0, sizeof(*req));
	if (w->read_only || w->failed)
		return w->read_only ? WAL_ERDONLY : WAL_EFAILED;
	uint64_t durable = w->durable_lsn;
	if (w->last_lsn == durable && !w->dir_dirty)
		return 0;
	req->started_ns = now_mono_ns();
	req->upto_lsn = durable;
	if (w->dir_dirty)
		req->fds[req->nfds++] = w->dirfd;
	w->dir_dirty = 0;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->nfiles; i++) {
		struct wal_file *f = w->files[i];
		if (f->fd < 0 || (f->last_lsn <= durable && f != w->active))
			continue;
		if (req->nfds == WAL_SYNC_MAX_FDS)
			break; /* the rest waits for the next round */
		req->fds[req->nfds++] = f->fd;
		req->upto_lsn = KP_MAX(req->upto_lsn, f->last_lsn);
	}
	pthread_mutex_unlock(&w->mu);
	return 1;
}

int wal_sync_finish(struct wal *w, const struct wal_sync_req *req, int res)
{
	if (res < 0) {
		wal_fail(w, res, "fdatasync failed");
		return WAL_EFAILED;
	}
	if (w->failed)
		return WAL_EFAILED;
	uint64_t ns = now_mono_ns() - req->started_ns;
	stat_add(&w->st.syncs, 1);
	stat_add(&w->st.sync_ns_sum, ns);
	if (ns > w->st.sync_ns_max)
		__atomic_store_n(&w->st.sync_ns_max, ns, __ATOMIC_RELAXED);
	/* Rotated files fully covered now need no descriptor any more. */
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->nfiles; i++) {
		struct wal_file *f = w->files[i];
		if (f->fd >= 0 && f != w->active && f->last_lsn <= req->upto_lsn) {
			close(f->fd);
			f->fd = -1;
		}
	}
	pthread_mutex_unlock(&w->mu);
	if (req->upto_lsn > w->durable_lsn)
		__atomic_store_n(&w->durable_lsn, req->upto_lsn, __ATOMIC_RELEASE);
	return 0;
}

int wal_sync_run(struct wal *w, const struct wal_sync_req *req)
{
	for (int i = 0; i < req->nfds; i++)
		if (w->io.fdatasync(req->fds[i]) < 0)
			return -errno;
	return 0;
}

int wal_sync(struct wal *w)
{
	struct wal_sync_req req;
	int r;
	while ((r = wal_sync_prepare(w, &req)) == 1) {
		int res = wal_sync_run(w, &req);
		if ((r = wal_sync_finish(w, &req, res)) < 0)
			return r;
		if (req.upto_lsn >= w->last_lsn && !w->dir_dirty)
			return 0;
	}
	return r;
}

uint64_t wal_last_lsn(const struct wal *w)
{
	return __atomic_load_n(&w->last_lsn, __ATOMIC_ACQUIRE);
}

uint64_t wal_durable_lsn(const struct wal *w)
{
	return __atomic_load_n(&w->durable_lsn, __ATOMIC_ACQUIRE);
}

uint64_t wal_first_lsn(const struct wal *w)
{
	struct wal *m = (struct wal *)w;
	uint64_t first = 0;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nfiles; i++)
		if (m->files[i]->last_lsn >= m->files[i]->first_lsn) {
			first = m->files[i]->first_lsn;
			break;
		}
	pthread_mutex_unlock(&m->mu);
	return first;
}

int wal_failed(const struct wal *w)
{
	return w->failed;
}

int wal_node_max(const struct wal *w, uint64_t node_id, uint64_t *max_seq, uint64_t *lsn)
{
	const struct node_ent *e = nmap_find(&w->nodes, node_id);
	if (!e)
		return 0;
	*max_seq = e->max_seq;
	*lsn = e->lsn;
	return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Replay and release                                                                          */
/* ------------------------------------------------------------------------------------------ */

int wal_replay(struct wal *w, uint64_t from_lsn, wal_replay_fn fn, void *ctx)
{
	pthread_mutex_lock(&w->release_mu); /* no file disappears under us */
	pthread_mutex_lock(&w->mu);
	size_t n = w->nfiles;
	struct {
		uint64_t first, last, size;
	} *v = xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		v[i].first = w->files[i]->first_lsn;
		v[i].last = w->files[i]->last_lsn;
		v[i].size = w->files[i]->size;
	}
	pthread_mutex_unlock(&w->mu);
	XXH3_state_t *st = XXH3_createState();
	int r = st ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && !r; i++) {
		if (v[i].last < from_lsn || v[i].last < v[i].first)
			continue;
		struct scan_file s = {v[i].first, -1, NULL, 0};
		char path[PATH_MAX + 32];
		file_path(w, v[i].first, path, sizeof(path));
		s.fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s.fd < 0) {
			r = -errno;
			break;
		}
		s.size = v[i].size;
		void *m = mmap(NULL, s.size, PROT_READ, MAP_SHARED, s.fd, 0);
		if (m == MAP_FAILED) {
			r = -errno;
			scan_unmap(&s);
			break;
		}
		s.map = m;
		size_t off = WAL_FILE_HDR;
		uint64_t expect = v[i].first;
		while (off < s.size && expect <= v[i].last) {
			struct rec rr;
			size_t len = rec_decode(s.map + off, s.size - off, st, &rr);
			if (!len || rr.lsn != expect) {
				log_error("WAL replay: record %" PRIu64 " in %s at offset %zu no "
					  "longer checks (changed on disk since open)",
					  expect, path, off);
				r = -EIO;
				break;
			}
			if (rr.lsn >= from_lsn &&
			    (r = fn(ctx, rr.lsn, rr.node_id, rr.seq, rr.payload, rr.len)) != 0)
				break;
			off += len;
			expect++;
		}
		scan_unmap(&s);
	}
	if (st)
		XXH3_freeState(st);
	free(v);
	pthread_mutex_unlock(&w->release_mu);
	return r;
}

int wal_release(struct wal *w, uint64_t upto_lsn)
{
	if (w->read_only)
		return WAL_ERDONLY;
	pthread_mutex_lock(&w->release_mu);
	upto_lsn = KP_MIN(upto_lsn, wal_durable_lsn(w));
	/* The deletable prefix: files entirely <= upto, synced, not the active one. Only this
	 * function removes files, and it holds release_mu, so they stay put while unlocked. */
	pthread_mutex_lock(&w->mu);
	size_t k = 0;
	while (k < w->nfiles && w->files[k] != w->active && w->files[k]->last_lsn <= upto_lsn &&
	       w->files[k]->fd < 0)
		k++;
	struct wal_file **dead = xcalloc(k ? k : 1, sizeof(*dead));
	memcpy(dead, w->files, k * sizeof(*dead));
	pthread_mutex_unlock(&w->mu);
	int r = 0;
	if (k) {
		/* Merge their per-node maxima into the checkpoint first (a crash between the
		 * rename and the unlinks only leaves files whose maxima are already counted). */
		uint64_t released = w->released_lsn;
		for (size_t i = 0; i < k; i++) {
			for (size_t j = 0; j < dead[i]->nnodes; j++) {
				struct node_ent *c = nmap_add(&w->ckpt, dead[i]->nodes[j].node_id);
				c->max_seq = KP_MAX(c->max_seq, dead[i]->nodes[j].max_seq);
			}
			released = KP_MAX(released, dead[i]->last_lsn);
		}
		if ((r = ckpt_write(w, &w->ckpt, released)) < 0) {
			log_error("WAL %s: cannot write the checkpoint: %s; nothing released",
				  w->dir, wal_strerror(r));
			goto cleanup;
		}
		w->released_lsn = released;
		pthread_mutex_lock(&w->mu);
		memmove(w->files, w->files + k, (w->nfiles - k) * sizeof(*w->files));
		w->nfiles -= k;
		pthread_mutex_unlock(&w->mu);
		for (size_t i = 0; i < k; i++) {
			char path[PATH_MAX + 32];
			file_path(w, dead[i]->first_lsn, path, sizeof(path));
			if (unlink(path) < 0 && errno != ENOENT)
				log_warn("WAL: cannot delete released %s: %s", path,
					 strerror(errno));
			file_free(dead[i]);
		}
		fsync(w->dirfd);
		stat_add(&w->st.files_released, k);
		r = (int)k;
	}
cleanup:
	free(dead);
	pthread_mutex_unlock(&w->release_mu);
	return r;
}

void wal_stats(const struct wal *w, struct wal_stats *out)
{
	struct wal *m = (struct wal *)w;
	out->appends = __atomic_load_n(&w->st.appends, __ATOMIC_RELAXED);
	out->append_bytes = __atomic_load_n(&w->st.append_bytes, __ATOMIC_RELAXED);
	out->syncs = __atomic_load_n(&w->st.syncs, __ATOMIC_RELAXED);
	out->files_created = __atomic_load_n(&w->st.files_created, __ATOMIC_RELAXED);
	out->files_released = __atomic_load_n(&w->st.files_released, __ATOMIC_RELAXED);
	out->sync_ns_sum = __atomic_load_n(&w->st.sync_ns_sum, __ATOMIC_RELAXED);
	out->sync_ns_max = __atomic_load_n(&w->st.sync_ns_max, __ATOMIC_RELAXED);
	pthread_mutex_lock(&m->mu);
	out->files_held = m->nfiles;
	out->bytes_held = 0;
	for (size_t i = 0; i < m->nfiles; i++)
		out->bytes_held += m->files[i]->size;
	pthread_mutex_unlock(&m->mu);
}
