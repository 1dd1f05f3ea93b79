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
