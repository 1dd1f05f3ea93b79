/* Tests agent/wire.c: round trips, and every kind of bad frame is rejected with its own error. */
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "agent/wire.h"
#include "tests/test.h"

static void fill_batch(struct wire_batch *b, int n)
{
	for (int i = 0; i < n; i++) {
		struct kp_event ev = {.ts_ns = 1700000000000000000ull + (uint64_t)i * 1000,
				      .dur_ns = (uint64_t)i,
				      .pid = 100 + (uint32_t)(i % 7),
				      .tid = 200 + (uint32_t)i,
				      .cpu = (uint16_t)(i % 2),
				      .type = KP_WRITE,
				      .ret = i,
				      .arg = {3, (uint64_t)i, 1, 0}};
		wire_batch_add_event(b, &ev);
	}
	struct wire_proc p = {.pid = 100, .ppid = 1, .start_ns = 42, .cgroup_id = 7};
	strcpy(p.comm, "payment-handler");
	strcpy(p.cmdline, "payment-handler --port 9000");
	strcpy(p.cgroup, "/kubepods/pod123/abc");
	strcpy(p.service, "payments");
	wire_batch_add_proc(b, &p);
	struct wire_conn c = {.conn = 99, .family = AF_INET, .sport = 1234, .dport = 80};
	c.saddr[0] = 127, c.saddr[3] = 1, c.daddr[0] = 127, c.daddr[3] = 1;
	wire_batch_add_conn(b, &c);
	wire_batch_add_node(b, "node-a", "6.18.0");
	struct wire_file fl = {.pid = 100, .fd = 7, .inode = 12345};
	strcpy(fl.path, "/var/lib/ledger/ledger.dat");
	wire_batch_add_file(b, &fl);
}

static void decode_ok(const struct kp_buf *f, struct wire_hdr *h, char **raw)
{
	CHECK_EQ_INT(wire_hdr_decode(f->data, h), 0);
	CHECK_EQ_UINT(f->len, WIRE_HDR_LEN + h->body_len);
	*raw = malloc(h->raw_len + 1);
	CHECK_EQ_INT(wire_body_decode(h, f->data + WIRE_HDR_LEN, *raw, h->raw_len), 0);
}

TEST(wire_round_trip)
{
	for (int compress = 0; compress <= 1; compress++) {
		struct wire_batch b = {0};
		struct kp_buf f = {0};
		fill_batch(&b, 1000);
		CHECK_EQ_INT(wire_frame_encode(&b, 0xabcdefull, 77, compress, &f), 0);
		struct wire_hdr h;
		char *raw;
		decode_ok(&f, &h, &raw);
		CHECK_EQ_UINT(h.node_id, 0xabcdefull);
		CHECK_EQ_UINT(h.seq, 77);
		CHECK_EQ_INT(h.n_events, 1000);
		CHECK_EQ_INT(h.n_meta, 4);
		CHECK_EQ_INT(!!(h.flags & WIRE_F_LZ4), compress);
		if (compress)
			CHECK_LT_INT(h.body_len, h.raw_len);
		const struct kp_event *ev = (const void *)raw;
		CHECK_EQ_UINT(ev[999].tid, 200 + 999);
		CHECK_EQ_UINT(ev[999].arg[1], 999);
		struct wire_meta_iter it = {(const uint8_t *)raw + 64 * 1000,
					    (const uint8_t *)raw + h.raw_len};
		uint16_t kind, len;
		const void *pl;
		CHECK(wire_meta_next(&it, &kind, &pl, &len));
		CHECK_EQ_INT(kind, WIRE_META_PROC);
		struct wire_proc p;
		CHECK_EQ_INT(wire_proc_decode(pl, len, &p), 0);
		CHECK_EQ_STR(p.comm, "payment-handler");
		CHECK_EQ_STR(p.cgroup, "/kubepods/pod123/abc");
		CHECK_EQ_STR(p.service, "payments");
		CHECK_EQ_UINT(p.start_ns, 42);
		CHECK(wire_meta_next(&it, &kind, &pl, &len));
		CHECK_EQ_INT(kind, WIRE_META_CONN);
		struct wire_conn c;
		CHECK_EQ_INT(wire_conn_decode(pl, len, &c), 0);
		CHECK_EQ_UINT(c.conn, 99);
		CHECK_EQ_INT(c.dport, 80);
		CHECK(wire_meta_next(&it, &kind, &pl, &len));
		char name[64], kernel[64];
		CHECK_EQ_INT(wire_node_decode(pl, len, name, sizeof(name), kernel, sizeof(kernel)),
			     0);
		CHECK_EQ_STR(name, "node-a");
		CHECK(wire_meta_next(&it, &kind, &pl, &len));
		CHECK_EQ_INT(kind, WIRE_META_FILE);
		struct wire_file fl;
		CHECK_EQ_INT(wire_file_decode(pl, len, &fl), 0);
		CHECK_EQ_UINT(fl.inode, 12345);
		CHECK_EQ_STR(fl.path, "/var/lib/ledger/ledger.dat");
		CHECK(!wire_meta_next(&it, &kind, &pl, &len));
		free(raw);
		buf_free(&f);
		wire_batch_free(&b);
	}
}

TEST(wire_rejects_bad_frames)
{
	struct wire_batch b = {0};
	struct kp_buf f = {0};
	fill_batch(&b, 100);
	CHECK_EQ_INT(wire_frame_encode(&b, 1, 1, 1, &f), 0);
	struct wire_hdr h;
	char raw[1 << 16];

	/* wrong magic */
	char *bad = malloc(f.len);
	memcpy(bad, f.data, f.len);
	bad[0] ^= 1;
	CHECK_EQ_INT(wire_hdr_decode(bad, &h), WIRE_EMAGIC);
	/* version */
	memcpy(bad, f.data, f.len);
	bad[4] = 9;
	CHECK_EQ_INT(wire_hdr_decode(bad, &h), WIRE_EVERSION);
	/* oversize lengths */
	memcpy(bad, f.data, f.len);
	uint32_t huge = WIRE_MAX_BODY + 1;
	memcpy(bad + 36, &huge, 4);
	CHECK_EQ_INT(wire_hdr_decode(bad, &h), WIRE_ETOOBIG);
	memcpy(bad, f.data, f.len);
	huge = WIRE_MAX_EVENTS + 1;
	memcpy(bad + 24, &huge, 4);
	CHECK_EQ_INT(wire_hdr_decode(bad, &h), WIRE_ETOOBIG);
	/* more events than the raw length can hold */
	memcpy(bad, f.data, f.len);
	uint32_t n = 5000;
	memcpy(bad + 24, &n, 4);
	CHECK_EQ_INT(wire_hdr_decode(bad, &h), WIRE_ELAYOUT);
	/* corrupt body: checksum */
	memcpy(bad, f.data, f.len);
	bad[WIRE_HDR_LEN + 10] ^= 0x40;
	CHECK_EQ_INT(wire_hdr_decode(bad, &h), 0);
	CHECK_EQ_INT(wire_body_decode(&h, bad + WIRE_HDR_LEN, raw, sizeof(raw)), WIRE_ECHECKSUM);
	/* a lying raw_len whose checksum still matches: decompression must catch it */
	memcpy(bad, f.data, f.len);
	CHECK_EQ_INT(wire_hdr_decode(bad, &h), 0);
	h.raw_len -= 1;
	CHECK_EQ_INT(wire_body_decode(&h, bad + WIRE_HDR_LEN, raw, sizeof(raw)), WIRE_EDECOMPRESS);
	/* raw_len over the caller's buffer */
	CHECK_EQ_INT(wire_hdr_decode(f.data, &h), 0);
	CHECK_EQ_INT(wire_body_decode(&h, f.data + WIRE_HDR_LEN, raw, 10), WIRE_ETOOBIG);
	free(bad);
	buf_free(&f);

	/* An uncompressed frame with a meta record whose length runs past the end. */
	wire_batch_reset(&b);
	struct kp_event ev = {.type = KP_READ};
	wire_batch_add_event(&b, &ev);
	wire_batch_add_meta(&b, WIRE_META_CONN, "xxxxxxxx", 8);
	CHECK_EQ_INT(wire_frame_encode(&b, 1, 2, 0, &f), 0);
	CHECK_EQ_INT(wire_hdr_decode(f.data, &h), 0);
	uint16_t biglen = 200;
	memcpy(f.data + WIRE_HDR_LEN + 64 + 2, &biglen, 2);
	/* re-checksum so only the layout is wrong */
	extern unsigned long long XXH3_64bits(const void *, size_t);
	h.checksum = XXH3_64bits(f.data + WIRE_HDR_LEN, h.body_len);
	CHECK_EQ_INT(wire_body_decode(&h, f.data + WIRE_HDR_LEN, raw, sizeof(raw)), WIRE_ELAYOUT);
	/* an event type out of range */
	memcpy(f.data + WIRE_HDR_LEN + 64 + 2, &(uint16_t){8}, 2);
	f.data[WIRE_HDR_LEN + offsetof(struct kp_event, type)] = (char)KP_TYPE_MAX;
	h.checksum = XXH3_64bits(f.data + WIRE_HDR_LEN, h.body_len);
	CHECK_EQ_INT(wire_body_decode(&h, f.data + WIRE_HDR_LEN, raw, sizeof(raw)), WIRE_ELAYOUT);
	/* a malformed conn payload */
	struct wire_conn c;
	CHECK_EQ_INT(wire_conn_decode("abc", 3, &c), WIRE_EMETA);
	struct wire_proc p;
	CHECK_EQ_INT(wire_proc_decode("abc", 3, &p), WIRE_EMETA);
	buf_free(&f);
	wire_batch_free(&b);
}

TEST(wire_ack)
{
	uint8_t a[WIRE_ACK_LEN];
	uint64_t seq;
	uint32_t st;
	wire_ack_encode(a, 123456789012ull, WIRE_ACK_DUP);
	CHECK_EQ_INT(wire_ack_decode(a, &seq, &st), 0);
	CHECK_EQ_UINT(seq, 123456789012ull);
	CHECK_EQ_INT(st, WIRE_ACK_DUP);
	a[0] = 0;
	CHECK_EQ_INT(wire_ack_decode(a, &seq, &st), WIRE_EMAGIC);
}

/* A capture record of total length len with a recognisable payload. */
static struct kp_cap_rec *cap_rec(uint32_t len, uint32_t tid)
{
	struct kp_cap_rec *c = calloc(1, len);
	c->len = len;
	c->kind = KP_CAP_CALL;
	c->nr = 0;
	c->pid = c->tid = tid;
	c->ts_exit = 1000 + tid;
	c->payload_len = len - KP_CAP_HDR_LEN;
	for (uint32_t i = 0; i < c->payload_len; i++)
		((uint8_t *)c)[KP_CAP_HDR_LEN + i] = (uint8_t)(i * 7 + tid);
	return c;
}

/* Records of every size class (one piece, exactly one piece, many pieces, the largest) go
 * through a frame, between other metadata, and come out whole with their clock offset. */
TEST(wire_capture_round_trip)
{
	const uint32_t lens[] = {KP_CAP_HDR_LEN,	 1024,	WIRE_CAP_PIECE_MAX & ~7u,
				 WIRE_CAP_PIECE_MAX + 8, 16384, KP_CAP_REC_MAX & ~7u};
	struct wire_batch b = {0};
	struct kp_event ev = {.type = KP_READ, .pid = 5};
	wire_batch_add_event(&b, &ev);
	wire_batch_add_node(&b, "node-a", "6.18.0");
	struct kp_cap_rec *in[6];
	for (int i = 0; i < 6; i++) {
		in[i] = cap_rec(lens[i], (uint32_t)i + 1);
		int np = wire_batch_add_capture(&b, in[i], lens[i], -12345 - i);
		CHECK_EQ_INT(np, (int)((lens[i] + WIRE_CAP_PIECE_MAX - 1) / WIRE_CAP_PIECE_MAX));
		if (i == 2)
			wire_batch_add_node(&b, "node-b", "6.18.0"); /* between records: fine */
	}
	CHECK_EQ_INT(wire_batch_add_capture(&b, in[0], 100, 0), WIRE_ETOOBIG);
	CHECK_EQ_INT(wire_batch_add_capture(&b, in[0], KP_CAP_REC_MAX + 8, 0), WIRE_ETOOBIG);
	struct kp_buf f = {0};
	CHECK_EQ_INT(wire_frame_encode(&b, 9, 1, 1, &f), 0);
	struct wire_hdr h;
	char *raw;
	decode_ok(&f, &h, &raw);
	struct wire_meta_iter it = {(const uint8_t *)raw + 64, (const uint8_t *)raw + h.raw_len};
	uint16_t kind, len;
	const void *pl;
	struct wire_cap_asm *a = malloc(sizeof(*a));
	wire_cap_asm_reset(a);
	int got = 0, others = 0;
	while (wire_meta_next(&it, &kind, &pl, &len)) {
		if (kind != WIRE_META_CAPTURE) {
			others++;
			continue;
		}
		int r = wire_cap_piece(a, pl, len);
		CHECK_GE_INT(r, 0);
		if (r == 1) {
			CHECK_EQ_UINT(a->rec_len, lens[got]);
			CHECK_EQ_INT(a->clock_off, -12345 - got);
			CHECKF(!memcmp(a->buf, in[got], lens[got]), "record %d differs", got);
			wire_cap_asm_reset(a);
			got++;
		}
	}
	CHECK_EQ_INT(got, 6);
	CHECK_EQ_INT(others, 2);
	for (int i = 0; i < 6; i++)
		free(in[i]);
	free(a);
	free(raw);
	buf_free(&f);
	wire_batch_free(&b);
}

/* Re-encodes the body of an uncompressed frame whose meta records were edited. */
static int decode_edited(struct kp_buf *f, char *raw, size_t cap)
{
	struct wire_hdr h;
	CHECK_EQ_INT(wire_hdr_decode(f->data, &h), 0);
	extern unsigned long long XXH3_64bits(const void *, size_t);
	h.checksum = XXH3_64bits(f->data + WIRE_HDR_LEN, h.body_len);
	return wire_body_decode(&h, f->data + WIRE_HDR_LEN, raw, cap);
}

/* Pieces that do not add up make the whole frame bad: a gap, a changed length or clock offset,
 * another kind in the middle, a frame ending inside a record, a first piece without the whole
 * header or whose header disagrees with the stated length. */
TEST(wire_capture_rejects_bad_pieces)
{
	static char raw[1 << 18];
	struct kp_cap_rec *c = cap_rec(3 * WIRE_CAP_PIECE_MAX & ~7u, 3); /* three pieces */
	for (int variant = 0; variant < 8; variant++) {
		struct wire_batch b = {0};
		struct wire_batch pieces = {0};
		wire_batch_add_capture(&pieces, c, c->len, 77);
		/* walk the three pieces and re-add them, edited per variant */
		struct wire_meta_iter it = {(const uint8_t *)pieces.meta.data,
					    (const uint8_t *)pieces.meta.data + pieces.meta.len};
		uint16_t kind, len;
		const void *pl;
		int k = 0;
		while (wire_meta_next(&it, &kind, &pl, &len)) {
			uint8_t p[WIRE_META_MAX_LEN];
			memcpy(p, pl, len);
			uint16_t l = len;
			if (variant == 1 && k == 1)
				memcpy(p + 4, &(uint32_t){(uint32_t)WIRE_CAP_PIECE_MAX + 8},
				       4); /* gap */
			if (variant == 2 && k == 2)
				memcpy(p, &(uint32_t){c->len + 8}, 4); /* another length */
			if (variant == 3 && k == 1)
				memcpy(p + 8, &(int64_t){78}, 8); /* another clock */
			if (variant == 4 && k == 1)
				wire_batch_add_node(&b, "x", "y"); /* another kind inside */
			if (variant == 5 && k == 2)
				break; /* ends inside the record */
			if (variant == 6 && k == 0)
				l = WIRE_CAP_PIECE_HDR + 64; /* first piece shorter than a header */
			if (variant == 7 && k == 0)
				memcpy(p + WIRE_CAP_PIECE_HDR, &(uint32_t){c->len - 8}, 4);
			if (variant == 6 && k > 0)
				break;
			wire_batch_add_meta(&b, WIRE_META_CAPTURE, p, l);
			k++;
		}
		struct kp_buf f = {0};
		CHECK_EQ_INT(wire_frame_encode(&b, 1, 1, 0, &f), 0);
		int r = decode_edited(&f, raw, sizeof(raw));
		CHECKF(r == (variant == 0 ? 0 : WIRE_EMETA), "variant %d: %d", variant, r);
		buf_free(&f);
		wire_batch_free(&b);
		wire_batch_free(&pieces);
	}
	/* the assembler refuses out-of-order pieces on its own too */
	struct wire_cap_asm *a = malloc(sizeof(*a));
	wire_cap_asm_reset(a);
	uint8_t p[32] = {0};
	memcpy(p, &(uint32_t){256}, 4);
	memcpy(p + 4, &(uint32_t){128}, 4);
	CHECK_EQ_INT(wire_cap_piece(a, p, sizeof(p)), WIRE_EMETA);
	CHECK_EQ_INT(wire_cap_piece(a, p, 10), WIRE_EMETA);
	free(a);
	free(c);
}
