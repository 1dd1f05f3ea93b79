/*
 * Tests store/segment.c: a segment written from columns reads back exactly (zone maps, blooms,
 * every column), and damaged files are refused at open with distinct errors.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"
#include "tests/test.h"
#include "tests/unit/store/helpers.h"

struct cols {
	uint64_t *c[SC_TXN];
	const char **txn;
	uint8_t *txn_len;
};

static void gather(void *ctx, uint32_t off, uint32_t cnt, uint64_t *const *col, const char **txn,
		   uint8_t *txn_len)
{
	struct cols *cs = ctx;
	for (int c = 0; c < SC_TXN; c++)
		memcpy(col[c], cs->c[c] + off, cnt * 8);
	memcpy(txn, cs->txn + off, cnt * sizeof(char *));
	memcpy(txn_len, cs->txn_len + off, cnt);
}

static const char *txns[] = {"", "txn-1", "txn-2", "pay-9f21"};

static void make_segment(const char *path, uint32_t n, struct cols *cs)
{
	uint64_t rng = 3;
	for (int c = 0; c < SC_TXN; c++)
		cs->c[c] = malloc(8ull * n + 8);
	cs->txn = malloc(sizeof(char *) * n + 8);
	cs->txn_len = malloc(n + 1);
	for (uint32_t i = 0; i < n; i++) {
		struct kp_event e = th_event(i, &rng, 20);
		e.pid = 100 + i / 1000; /* sorted by pid as the store does */
		cs->c[SC_TS][i] = e.ts_ns;
		cs->c[SC_DUR][i] = e.dur_ns;
		cs->c[SC_PID][i] = e.pid;
		cs->c[SC_TID][i] = e.tid;
		cs->c[SC_CPU][i] = e.cpu;
		cs->c[SC_TYPE][i] = e.type;
		cs->c[SC_FLAGS][i] = e.flags;
		cs->c[SC_RET][i] = (uint32_t)e.ret;
		for (int a = 0; a < 4; a++)
			cs->c[SC_ARG0 + a][i] = e.arg[a];
		cs->c[SC_NODE][i] = 77;
		cs->txn[i] = txns[(i / 50) % 4];
		cs->txn_len[i] = (uint8_t)strlen(cs->txn[i]);
	}
	struct store__seg_input si = {.n = n,
				      .ctx = cs,
				      .gather = gather,
				      .seg_id = 5,
				      .group_id = 5,
				      .min_lsn = 10,
				      .max_lsn = 20,
				      .part = 0,
				      .nparts = 1,
				      .day = 20000};
	CHECK_EQ_INT(store__seg_write(path, &si), 0);
}

static void free_cols(struct cols *cs)
{
	for (int c = 0; c < SC_TXN; c++)
		free(cs->c[c]);
	free(cs->txn);
	free(cs->txn_len);
}

TEST(store_segment_roundtrip)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/1.kps", kt_tmpdir());
	struct cols cs;
	uint32_t n = 3 * STORE_GRANULE + 123;
	make_segment(path, n, &cs);
	struct store__seg *s;
	CHECK_EQ_INT(store__seg_open(path, true, &s), 0);
	CHECK_EQ_INT(s->n_rows, n);
	CHECK_EQ_INT(s->n_gran, 4);
	CHECK_EQ_UINT(s->max_lsn, 20);
	CHECK_EQ_INT(s->day, 20000);
	uint8_t *scratch = malloc(STORE_ENC_BOUND(STORE_GRANULE) + STORE_PAD);
	char *dict = malloc(STORE_ENC_BOUND(STORE_GRANULE));
	uint64_t *col = malloc(8 * STORE_GRANULE);
	uint8_t type8[STORE_GRANULE];
	struct store__typed_plan *pl = malloc(sizeof(*pl));
	for (uint32_t g = 0; g < s->n_gran; g++) {
		const struct store__gran *gr = &s->g[g];
		uint32_t off = g * STORE_GRANULE;
		CHECK_EQ_INT(store__seg_read_u64(gr, SC_TYPE, NULL, col, scratch), 0);
		for (uint32_t i = 0; i < gr->rows; i++)
			type8[i] = (uint8_t)col[i];
		store__typed_plan(type8, gr->rows, pl);
		for (int c = 0; c < SC_TXN; c++) {
			CHECK_EQ_INT(store__seg_read_u64(gr, c, pl, col, scratch), 0);
			for (uint32_t i = 0; i < gr->rows; i++)
				CHECKF(col[i] == cs.c[c][off + i], "col %d row %u", c, off + i);
		}
		const char *tp[STORE_GRANULE];
		uint32_t tl[STORE_GRANULE];
		CHECK_EQ_INT(store__seg_read_str(gr, tp, tl, scratch, dict), 0);
		for (uint32_t i = 0; i < gr->rows; i++)
			CHECK(tl[i] == cs.txn_len[off + i] &&
			      !memcmp(tp[i], cs.txn[off + i], tl[i]));
		/* zone maps and blooms */
		CHECK_EQ_UINT(gr->ts_min, cs.c[SC_TS][off]);
		CHECK_EQ_UINT(gr->pid_min, cs.c[SC_PID][off]);
		CHECK(store__bloom_test(gr->bloom[SB_PID], gr->bloom_bits[SB_PID],
					store__hash_u64(cs.c[SC_PID][off])));
		CHECK(store__bloom_test(gr->bloom[SB_TXN], gr->bloom_bits[SB_TXN],
					store__hash_str("txn-1", 5)));
		CHECK(!store__bloom_test(gr->bloom[SB_TXN], gr->bloom_bits[SB_TXN],
					 store__hash_str("txn-404", 7)) ||
		      true); /* a false positive is allowed, a false negative is not */
	}
	store__seg_unref(s);
	free(pl);
	free(col);
	free(dict);
	free(scratch);
	free_cols(&cs);
}

static void patch(const char *path, off_t at, const void *b, size_t n)
{
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0);
	CHECK_EQ_INT(pwrite(fd, b, n, at), (ssize_t)n);
	close(fd);
}

TEST(store_segment_damage_detected)
{
	char path[512], p2[600];
	snprintf(path, sizeof(path), "%s/1.kps", kt_tmpdir());
	struct cols cs;
	make_segment(path, 2 * STORE_GRANULE, &cs);
	struct stat sb;
	CHECK_EQ_INT(stat(path, &sb), 0);
	struct store__seg *s;
	char cmd[1400];
	/* a flipped byte in every region: header, a block, the footer, the trailer */
	off_t spots[] = {40, 1000, sb.st_size / 2, sb.st_size - 100, sb.st_size - 20};
	for (size_t k = 0; k < KP_ARRAY_SIZE(spots); k++) {
		snprintf(p2, sizeof(p2), "%s/flip%zu.kps", kt_tmpdir(), k);
		snprintf(cmd, sizeof(cmd), "cp %s %s", path, p2);
		CHECK_EQ_INT(system(cmd), 0);
		uint8_t b;
		int fd = open(p2, O_RDWR);
		CHECK_EQ_INT(pread(fd, &b, 1, spots[k]), 1);
		b ^= 0x10;
		CHECK_EQ_INT(pwrite(fd, &b, 1, spots[k]), 1);
		close(fd);
		int rc = store__seg_open(p2, true, &s);
		CHECKF(rc == STORE_ECHECKSUM || rc == STORE_ELAYOUT || rc == STORE_ETRUNC,
		       "flip at %lld: %d", (long long)spots[k], rc);
	}
	/* wrong magic, wrong version, cut short */
	snprintf(p2, sizeof(p2), "%s/magic.kps", kt_tmpdir());
	snprintf(cmd, sizeof(cmd), "cp %s %s", path, p2);
	CHECK_EQ_INT(system(cmd), 0);
	patch(p2, 0, "XXXX", 4);
	CHECK_EQ_INT(store__seg_open(p2, true, &s), STORE_EMAGIC);
	uint16_t v = 99;
	snprintf(cmd, sizeof(cmd), "cp %s %s", path, p2);
	CHECK_EQ_INT(system(cmd), 0);
	patch(p2, 4, &v, 2);
	CHECK_EQ_INT(store__seg_open(p2, true, &s), STORE_EVERSION);
	CHECK_EQ_INT(truncate(path, sb.st_size - 1000), 0);
	CHECK_EQ_INT(store__seg_open(path, true, &s), STORE_ETRUNC);
	CHECK_EQ_INT(truncate(path, 10), 0);
	CHECK_EQ_INT(store__seg_open(path, true, &s), STORE_ETRUNC);
	free_cols(&cs);
}
