/*
 * segment.c - one sealed segment file: writer (from sorted columns), reader (mmap + checks),
 * granule decoding. Segments are immutable once renamed into place.
 *
 * Layout (all integers little-endian):
 *
 *   +--------------------------------------------------------------------------------+
 *   | header, 32 bytes                                                               |
 *   |   magic u32 "KPS1" | version u16 | flags u16 | n_rows u32 | n_gran u32         |
 *   |   n_cols u16 | pad u16 | seg_id u64 | pad u32                                  |
 *   +--------------------------------------------------------------------------------+
 *   | granule 0: block(col 0) block(col 1) ... block(col SC_NCOLS-1)                 |
 *   | granule 1: ...                     (8192 rows per granule, the last may be less)|
 *   +--------------------------------------------------------------------------------+
 *   | footer                                                                         |
 *   |   seg_id u64 | group_id u64 | min_lsn u64 | max_lsn u64 | ts_min u64 | ts_max u64|
 *   |   part u32 | nparts u32 | day u32 | n_rows u32 | n_gran u32 | n_cols u32         |
 *   |   per granule:                                                                 |
 *   |     rows u32 | pid_min u32 | pid_max u32 | type_mask u32                        |
 *   |     ts_min u64 | ts_max u64 | dur_min u64 | dur_max u64        (zone maps)      |
 *   |     n_cols x (offset u64, length u32)                          (block directory)|
 *   |     3 x (nbits u32, nbits/8 bytes)       bloom filters over pid, tid, txn      |
 *   +--------------------------------------------------------------------------------+
 *   | trailer, 32 bytes                                                              |
 *   |   footer_off u64 | footer_len u32 | pad u32 | xxh3(footer) u64                  |
 *   |   magic u32 "KPSE" | version u16 | pad u16                                      |
 *   +--------------------------------------------------------------------------------+
 *
 *   block = flags u8 (bit 0: LZ4) | col u8 | pad u16 | enc_len u32 | stored_len u32
 *           | rows u32 | xxh3_64(stored bytes, seed = the first 16 header bytes) u64
 *           | stored bytes (the column encoding of codec.c, LZ4-compressed when smaller)
 *
 * Rows are sorted by (pid, node, ts): a process's events sit together, so pid and tid are runs,
 * per-type arguments (fds, connection ids, buffer sizes) repeat, the zone maps and bloom filters
 * of a granule name few processes (pid / transaction lookups touch one or two granules per
 * segment), and time-range scans still prune whole segments by their ts range. The per-process
 * timestamp deltas are wider than in a global time order; the delta + patched-FOR codec keeps
 * that cost small (bench/store/RESULT.md has the numbers).
 *
 * Version 1. A reader refuses other magics (STORE_EMAGIC) and versions (STORE_EVERSION), checks
 * the footer's XXH3 and every bound, and on open with verify checks every block's XXH3 too.
 */
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/util.h"
#include "store/internal.h"

#define SEG_MAGIC     0x3153504bu /* "KPS1" */
#define SEG_END_MAGIC 0x4553504bu /* "KPSE" */
#define SEG_VERSION   1
#define SEG_HDR_LEN   32
#define SEG_TRL_LEN   32
#define BLK_HDR_LEN   24
#define BLK_F_LZ4     1
#define GRAN_FIXED    (48 + SC_NCOLS * 12)

static void put32(struct kp_buf *b, uint32_t v)
{
	buf_append(b, &v, 4);
}
static void put64(struct kp_buf *b, uint64_t v)
{
	buf_append(b, &v, 8);
}

static uint64_t blk_seed(const uint8_t *h16)
{
	uint64_t a, b;
	memcpy(&a, h16, 8);
	memcpy(&b, h16 + 8, 8);
	return a * 0x9e3779b97f4a7c15ull ^ b;
}

/* ------------------------------------------------------------------ writer */

struct seg_wscratch {
	uint8_t enc[STORE_ENC_BOUND(STORE_GRANULE)];
	char lz[LZ4_COMPRESSBOUND(STORE_ENC_BOUND(STORE_GRANULE))];
	uint8_t type[STORE_GRANULE];
	uint8_t bloom[SB_N][8192];
	uint64_t col[SC_TXN][STORE_GRANULE];
	const char *txn[STORE_GRANULE];
	uint8_t txn_len[STORE_GRANULE];
	struct store__typed_plan plan;
	uint64_t hslot[2 * STORE_GRANULE], tmp[STORE_GRANULE];
	uint8_t hused[2 * STORE_GRANULE];
};

static void write_block(struct kp_buf *out, int col, uint32_t rows, const uint8_t *enc,
			size_t enc_len, struct seg_wscratch *ws)
{
	const uint8_t *data = enc;
	size_t stored = enc_len;
	uint8_t flags = 0;
	if (enc_len > 64) {
		int z = LZ4_compress_default((const char *)enc, ws->lz, (int)enc_len,
					     (int)sizeof(ws->lz));
		if (z > 0 && (size_t)z < enc_len) {
			data = (const uint8_t *)ws->lz;
			stored = (size_t)z;
			flags = BLK_F_LZ4;
		}
	}
	uint8_t h[BLK_HDR_LEN] = {0};
	h[0] = flags;
	h[1] = (uint8_t)col;
	uint32_t el = (uint32_t)enc_len, sl = (uint32_t)stored;
	memcpy(h + 4, &el, 4);
	memcpy(h + 8, &sl, 4);
	memcpy(h + 12, &rows, 4);
	uint64_t x = XXH3_64bits_withSeed(data, stored, blk_seed(h));
	memcpy(h + 16, &x, 8);
	buf_append(out, h, sizeof(h));
	buf_append(out, data, stored);
}

/* Distinct values among v[0..n) (exact: blooms are sized from it). */
static uint32_t count_distinct(const uint64_t *v, uint32_t n, uint64_t *slots, uint8_t *used)
{
	const uint32_t cap = 2 * STORE_GRANULE;
	uint32_t d = 0;
	memset(used, 0, cap);
	for (uint32_t i = 0; i < n; i++) {
		if (i && v[i] == v[i - 1])
			continue;
		uint32_t h = (uint32_t)store__hash_u64(v[i]) & (cap - 1);
		while (used[h] && slots[h] != v[i])
			h = (h + 1) & (cap - 1);
		if (!used[h]) {
			used[h] = 1;
			slots[h] = v[i];
			d++;
		}
	}
	return d;
}

static int fsync_dir_of(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *s = strrchr(dir, '/');
	if (!s)
		return 0;
	*s = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) ? -errno : 0;
	close(fd);
	return r;
}

int store__seg_write(const char *path, const struct store__seg_input *in)
{
	struct kp_buf out = {0}, foot = {0};
	struct seg_wscratch *ws = malloc(sizeof(*ws));
	char tmp[4096];
	int fd = -1, rc = 0;
	if (!ws)
		return -ENOMEM;
	uint32_t n = in->n, ng = (n + STORE_GRANULE - 1) / STORE_GRANULE;
	buf_reserve(&out, (size_t)n * 16 + 4096);

	uint8_t hdr[SEG_HDR_LEN] = {0};
	uint32_t m = SEG_MAGIC;
	uint16_t ver = SEG_VERSION, ncols = SC_NCOLS;
	memcpy(hdr, &m, 4);
	memcpy(hdr + 4, &ver, 2);
	memcpy(hdr + 8, &n, 4);
	memcpy(hdr + 12, &ng, 4);
	memcpy(hdr + 16, &ncols, 2);
	memcpy(hdr + 20, &in->seg_id, 8);
	buf_append(&out, hdr, sizeof(hdr));

	uint64_t ts_min = UINT64_MAX, ts_max = 0;
	put64(&foot, in->seg_id);
	put64(&foot, in->group_id);
	put64(&foot, in->min_lsn);
	put64(&foot, in->max_lsn);
	size_t ts_at = foot.len;
	put64(&foot, 0);
	put64(&foot, 0);
	put32(&foot, in->part);
	put32(&foot, in->nparts);
	put32(&foot, in->day);
	put32(&foot, n);
	put32(&foot, ng);
	put32(&foot, SC_NCOLS);

	for (uint32_t g = 0; g < ng; g++) {
		uint32_t off = g * STORE_GRANULE, rows = KP_MIN(STORE_GRANULE, n - off);
		uint64_t *cols[SC_TXN];
		for (int c = 0; c < SC_TXN; c++)
			cols[c] = ws->col[c];
		in->gather(in->ctx, off, rows, cols, ws->txn, ws->txn_len);
		const uint64_t *ts = ws->col[SC_TS], *pid = ws->col[SC_PID], *dur = ws->col[SC_DUR],
			       *ty = ws->col[SC_TYPE], *tid = ws->col[SC_TID];
		uint64_t gts_min = UINT64_MAX, gts_max = 0, dmin = UINT64_MAX, dmax = 0;
		uint64_t pmin = UINT64_MAX, pmax = 0;
		uint32_t mask = 0;
		for (uint32_t i = 0; i < rows; i++) {
			gts_min = KP_MIN(gts_min, ts[i]);
			gts_max = KP_MAX(gts_max, ts[i]);
			dmin = KP_MIN(dmin, dur[i]);
			dmax = KP_MAX(dmax, dur[i]);
			pmin = KP_MIN(pmin, pid[i]);
			pmax = KP_MAX(pmax, pid[i]);
			ws->type[i] = (uint8_t)ty[i];
			mask |= 1u << (ty[i] < 31 ? ty[i] : 31);
		}
		ts_min = KP_MIN(ts_min, gts_min);
		ts_max = KP_MAX(ts_max, gts_max);
		put32(&foot, rows);
		put32(&foot, (uint32_t)pmin);
		put32(&foot, (uint32_t)pmax);
		put32(&foot, mask);
		put64(&foot, gts_min);
		put64(&foot, gts_max);
		put64(&foot, dmin);
		put64(&foot, dmax);
		store__typed_plan(ws->type, rows, &ws->plan);
		for (int c = 0; c < SC_NCOLS; c++) {
			size_t at = out.len, el;
			if (c == SC_TXN)
				el = store__enc_str(ws->txn, ws->txn_len, rows, ws->enc);
			else if (store__col_typed(c))
				el = store__enc_typed(ws->col[c], &ws->plan, ws->enc);
			else
				el = store__enc_u64(ws->col[c], rows, ws->enc);
			write_block(&out, c, rows, ws->enc, el, ws);
			put64(&foot, at);
			put32(&foot, (uint32_t)(out.len - at));
		}
		/* blooms, sized for ~1% false positives at the granule's distinct values */
		uint32_t nb[SB_N];
		nb[SB_PID] = store__bloom_bits(count_distinct(pid, rows, ws->hslot, ws->hused));
		nb[SB_TID] = store__bloom_bits(count_distinct(tid, rows, ws->hslot, ws->hused));
		for (uint32_t i = 0; i < rows; i++) /* interned: the pointer is the identity */
			ws->tmp[i] = ws->txn_len[i] ? (uint64_t)(uintptr_t)ws->txn[i] : 0;
		nb[SB_TXN] = store__bloom_bits(count_distinct(ws->tmp, rows, ws->hslot, ws->hused));
		for (int b = 0; b < SB_N; b++)
			memset(ws->bloom[b], 0, nb[b] / 8);
		for (uint32_t i = 0; i < rows; i++) {
			if (!i || pid[i] != pid[i - 1])
				store__bloom_add(ws->bloom[SB_PID], nb[SB_PID],
						 store__hash_u64(pid[i]));
			if (!i || tid[i] != tid[i - 1])
				store__bloom_add(ws->bloom[SB_TID], nb[SB_TID],
						 store__hash_u64(tid[i]));
			if (ws->txn_len[i] && (!i || ws->txn[i] != ws->txn[i - 1]))
				store__bloom_add(ws->bloom[SB_TXN], nb[SB_TXN],
						 store__hash_str(ws->txn[i], ws->txn_len[i]));
		}
		for (int b = 0; b < SB_N; b++) {
			put32(&foot, nb[b]);
			buf_append(&foot, ws->bloom[b], nb[b] / 8);
		}
	}
	if (!n)
		ts_min = 0;
	memcpy(foot.data + ts_at, &ts_min, 8);
	memcpy(foot.data + ts_at + 8, &ts_max, 8);

	uint64_t foff = out.len;
	buf_append(&out, foot.data, foot.len);
	uint8_t trl[SEG_TRL_LEN] = {0};
	uint32_t flen = (uint32_t)foot.len, em = SEG_END_MAGIC;
	uint64_t fx = XXH3_64bits(foot.data, foot.len);
	memcpy(trl, &foff, 8);
	memcpy(trl + 8, &flen, 4);
	memcpy(trl + 16, &fx, 8);
	memcpy(trl + 24, &em, 4);
	memcpy(trl + 28, &ver, 2);
	buf_append(&out, trl, sizeof(trl));

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto cleanup;
	}
	if ((rc = write_full(fd, out.data, out.len)) < 0)
		goto cleanup;
	if (fsync(fd)) {
		rc = -errno;
		goto cleanup;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path)) {
		rc = -errno;
		goto cleanup;
	}
	rc = fsync_dir_of(path);
cleanup:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(tmp);
	buf_free(&out);
	buf_free(&foot);
	free(ws);
	return rc;
}

/* ------------------------------------------------------------------ reader */

struct rd {
	const uint8_t *p, *end;
	bool bad;
};
static uint32_t rd32(struct rd *r)
{
	uint32_t v = 0;
	if (r->end - r->p < 4) {
		r->bad = true;
		return 0;
	}
	memcpy(&v, r->p, 4);
	r->p += 4;
	return v;
}
static uint64_t rd64(struct rd *r)
{
	uint64_t v = 0;
	if (r->end - r->p < 8) {
		r->bad = true;
		return 0;
	}
	memcpy(&v, r->p, 8);
	r->p += 8;
	return v;
}

/* Checks a block's header and checksum. Returns 0 or STORE_ECHECKSUM / STORE_ELAYOUT. */
static int blk_check(const uint8_t *b, uint32_t len, int col, uint32_t rows)
{
	if (len < BLK_HDR_LEN)
		return STORE_ELAYOUT;
	uint32_t el, sl, r;
	memcpy(&el, b + 4, 4);
	memcpy(&sl, b + 8, 4);
	memcpy(&r, b + 12, 4);
	uint64_t x;
	memcpy(&x, b + 16, 8);
	if (XXH3_64bits_withSeed(b + BLK_HDR_LEN, len - BLK_HDR_LEN, blk_seed(b)) != x)
		return STORE_ECHECKSUM;
	if (sl != len - BLK_HDR_LEN || b[1] != col || r != rows || (b[0] & ~BLK_F_LZ4) ||
	    el > STORE_ENC_BOUND(STORE_GRANULE) || (!(b[0] & BLK_F_LZ4) && el != sl))
		return STORE_ELAYOUT;
	return 0;
}

static void seg_free(struct store__seg *s)
{
	if (s->map)
		munmap(s->map, s->map_len);
	free(s->g);
	free(s->path);
	free(s);
}

void store__seg_unref(struct store__seg *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		seg_free(s);
}

int store__seg_open(const char *path, bool verify, struct store__seg **out)
{
	struct store__seg *s = calloc(1, sizeof(*s));
	int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (!s) {
		rc = -ENOMEM;
		goto cleanup;
	}
	atomic_init(&s->refs, 1);
	s->path = xstrdup(path);
	if (fd < 0 || fstat(fd, &sb)) {
		rc = -errno;
		goto cleanup;
	}
	if (sb.st_size < SEG_HDR_LEN + SEG_TRL_LEN) {
		rc = STORE_ETRUNC;
		goto cleanup;
	}
	s->map_len = (size_t)sb.st_size;
	s->map = mmap(NULL, s->map_len, PROT_READ, MAP_SHARED, fd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		rc = -errno;
		goto cleanup;
	}
	const uint8_t *m = s->map;
	uint32_t magic, em, flen, n_rows, n_gran;
	uint16_t ver, tver;
	memcpy(&magic, m, 4);
	memcpy(&ver, m + 4, 2);
	if (magic != SEG_MAGIC) {
		rc = STORE_EMAGIC;
		goto cleanup;
	}
	if (ver != SEG_VERSION) {
		rc = STORE_EVERSION;
		goto cleanup;
	}
	const uint8_t *t = m + s->map_len - SEG_TRL_LEN;
	uint64_t foff, fx;
	memcpy(&foff, t, 8);
	memcpy(&flen, t + 8, 4);
	memcpy(&fx, t + 16, 8);
	memcpy(&em, t + 24, 4);
	memcpy(&tver, t + 28, 2);
	if (em != SEG_END_MAGIC) {
		rc = STORE_ETRUNC; /* a segment cut short has no trailer */
		goto cleanup;
	}
	if (tver != SEG_VERSION) {
		rc = STORE_EVERSION;
		goto cleanup;
	}
	if (foff < SEG_HDR_LEN || foff > s->map_len - SEG_TRL_LEN ||
	    flen != s->map_len - SEG_TRL_LEN - foff) {
		rc = STORE_ELAYOUT;
		goto cleanup;
	}
	if (XXH3_64bits(m + foff, flen) != fx) {
		rc = STORE_ECHECKSUM;
		goto cleanup;
	}
	struct rd r = {m + foff, m + foff + flen, false};
	s->seg_id = rd64(&r);
	s->group_id = rd64(&r);
	s->min_lsn = rd64(&r);
	s->max_lsn = rd64(&r);
	s->ts_min = rd64(&r);
	s->ts_max = rd64(&r);
	s->part = rd32(&r);
	s->nparts = rd32(&r);
	s->day = rd32(&r);
	n_rows = rd32(&r);
	n_gran = rd32(&r);
	uint32_t ncols = rd32(&r);
	/* every header and trailer byte is checked: the counts agree with the footer, the pads
	 * and flags are zero, so a flipped byte anywhere in the file is caught */
	uint32_t h_rows, h_gran, zero = 0;
	uint16_t h_cols;
	uint64_t h_id;
	memcpy(&h_rows, m + 8, 4);
	memcpy(&h_gran, m + 12, 4);
	memcpy(&h_cols, m + 16, 2);
	memcpy(&h_id, m + 20, 8);
	for (int i = 6; i < 8; i++)
		zero |= m[i];
	for (int i = 18; i < 20; i++)
		zero |= m[i];
	for (int i = 28; i < 32; i++)
		zero |= m[i];
	for (int i = 12; i < 16; i++)
		zero |= t[i];
	for (int i = 30; i < 32; i++)
		zero |= t[i];
	if (r.bad || ncols != SC_NCOLS || h_rows != n_rows || h_gran != n_gran ||
	    h_cols != SC_NCOLS || h_id != s->seg_id || zero ||
	    n_gran != (n_rows + STORE_GRANULE - 1) / STORE_GRANULE ||
	    (uint64_t)n_gran * GRAN_FIXED > flen || s->part >= s->nparts) {
		rc = STORE_ELAYOUT;
		goto cleanup;
	}
	s->n_rows = n_rows;
	s->n_gran = n_gran;
	s->g = calloc(n_gran ? n_gran : 1, sizeof(*s->g));
	if (!s->g) {
		rc = -ENOMEM;
		goto cleanup;
	}
	uint64_t total = 0;
	for (uint32_t gi = 0; gi < n_gran; gi++) {
		struct store__gran *g = &s->g[gi];
		g->rows = rd32(&r);
		g->pid_min = rd32(&r);
		g->pid_max = rd32(&r);
		g->type_mask = rd32(&r);
		g->ts_min = rd64(&r);
		g->ts_max = rd64(&r);
		g->dur_min = rd64(&r);
		g->dur_max = rd64(&r);
		for (int c = 0; c < SC_NCOLS; c++) {
			uint64_t off = rd64(&r);
			uint32_t len = rd32(&r);
			if (off < SEG_HDR_LEN || off > foff || len > foff - off) {
				rc = STORE_ELAYOUT;
				goto cleanup;
			}
			g->blk[c] = m + off;
			g->blk_len[c] = len;
		}
		for (int b = 0; b < SB_N; b++) {
			uint32_t nb = rd32(&r);
			if (nb < 64 || nb > 65536 || (nb & (nb - 1)) ||
			    (size_t)(r.end - r.p) < nb / 8) {
				rc = STORE_ELAYOUT;
				goto cleanup;
			}
			g->bloom[b] = r.p;
			g->bloom_bits[b] = nb;
			r.p += nb / 8;
		}
		uint32_t want = KP_MIN(STORE_GRANULE, n_rows - gi * STORE_GRANULE);
		if (r.bad || g->rows != want) {
			rc = STORE_ELAYOUT;
			goto cleanup;
		}
		total += g->rows;
		if (verify)
			for (int c = 0; c < SC_NCOLS; c++)
				if ((rc = blk_check(g->blk[c], g->blk_len[c], c, g->rows)))
					goto cleanup;
	}
	if (r.bad || r.p != r.end || total != n_rows) {
		rc = STORE_ELAYOUT;
		goto cleanup;
	}
	*out = s;
	s = NULL;
cleanup:
	if (fd >= 0)
		close(fd);
	if (s)
		seg_free(s);
	return rc;
}

/* Checks the block and returns its encoding in a buffer with STORE_PAD readable bytes after. */
static int blk_open(const struct store__gran *g, int c, uint8_t *scratch, const uint8_t **enc,
		    uint32_t *enc_len)
{
	const uint8_t *b = g->blk[c];
	int rc = blk_check(b, g->blk_len[c], c, g->rows);
	if (rc)
		return rc == STORE_ECHECKSUM ? STORE_ECORRUPT : rc;
	uint32_t el;
	memcpy(&el, b + 4, 4);
	*enc_len = el;
	if (b[0] & BLK_F_LZ4) {
		int d = LZ4_decompress_safe((const char *)b + BLK_HDR_LEN, (char *)scratch,
					    (int)(g->blk_len[c] - BLK_HDR_LEN), (int)el);
		if (d < 0 || (uint32_t)d != el)
			return STORE_ELAYOUT;
		memset(scratch + el, 0, STORE_PAD);
		*enc = scratch;
	} else {
		/* in place: the footer and trailer follow every block, so the padding is mapped */
		*enc = b + BLK_HDR_LEN;
	}
	return 0;
}

int store__seg_read_u64(const struct store__gran *g, int c, const struct store__typed_plan *pl,
			uint64_t *out, uint8_t *scratch)
{
	const uint8_t *enc;
	uint32_t el;
	int rc = blk_open(g, c, scratch, &enc, &el);
	if (rc)
		return rc;
	if (store__col_typed(c))
		return pl->n == g->rows ? store__dec_typed(enc, el, pl, out) : STORE_ELAYOUT;
	return store__dec_u64(enc, el, g->rows, out);
}

int store__seg_read_str(const struct store__gran *g, const char **ptr, uint32_t *len,
			uint8_t *scratch, char *dictbuf)
{
	const uint8_t *enc;
	uint32_t el;
	int rc = blk_open(g, SC_TXN, scratch, &enc, &el);
	if (rc)
		return rc;
	return store__dec_str(enc, el, g->rows, ptr, len, dictbuf);
}
