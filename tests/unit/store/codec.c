/*
 * Tests store/codec.c: every encoding round-trips, the encoder picks the cheap one for the data
 * shapes it exists for, and damaged input is refused without crashing.
 */
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "tests/test.h"
#include "tests/unit/store/helpers.h"

static uint8_t enc[STORE_ENC_BOUND(STORE_GRANULE) + STORE_PAD];
static uint64_t in[STORE_GRANULE], out[STORE_GRANULE];

static size_t roundtrip(uint32_t n)
{
	size_t l = store__enc_u64(in, n, enc);
	memset(enc + l, 0, STORE_PAD);
	memset(out, 0xa5, sizeof(out));
	int rc = store__dec_u64(enc, l, n, out);
	CHECKF(rc == 0, "decode failed: %d (tag %u, n %u)", rc, enc[0], n);
	for (uint32_t i = 0; i < n; i++)
		CHECKF(in[i] == out[i], "row %u: %llu != %llu (tag %u)", i,
		       (unsigned long long)in[i], (unsigned long long)out[i], enc[0]);
	return l;
}

TEST(store_codec_roundtrip_shapes)
{
	uint64_t rng = 7;
	for (uint32_t n = 0; n <= 64; n++) { /* small sizes and edge widths */
		for (uint32_t i = 0; i < n; i++)
			in[i] = th_rand(&rng) >> (th_rand(&rng) % 64);
		roundtrip(n);
	}
	/* constant */
	for (int i = 0; i < STORE_GRANULE; i++)
		in[i] = 42;
	CHECK_LE_INT(roundtrip(STORE_GRANULE), 16);
	CHECK_EQ_INT(enc[0], 0);
	/* increasing timestamps: delta */
	uint64_t t = T0_NS;
	for (int i = 0; i < STORE_GRANULE; i++)
		in[i] = t += 1000 + th_rand(&rng) % 1000;
	CHECK_LE_INT(roundtrip(STORE_GRANULE), STORE_GRANULE * 11 / 8 + 64);
	CHECK_EQ_INT(enc[0], 2);
	/* a few far-apart values: dictionary */
	static const uint64_t sz[] = {4096, 65536, 1, 131072};
	for (int i = 0; i < STORE_GRANULE; i++)
		in[i] = sz[th_rand(&rng) % 4];
	CHECK_LE_INT(roundtrip(STORE_GRANULE), STORE_GRANULE / 4 + 64);
	CHECK_EQ_INT(enc[0], 3);
	/* long runs: RLE */
	for (int i = 0; i < STORE_GRANULE; i++)
		in[i] = 1000 + (uint64_t)(i / 700) * 77777;
	CHECK_LE_INT(roundtrip(STORE_GRANULE), 128);
	CHECK(enc[0] == 4 || enc[0] == 2); /* RLE, or deltas that are all 0 but 11 exceptions */
	for (int i = 0; i < STORE_GRANULE; i++) /* runs of a repeating pattern: RLE */
		in[i] = (uint64_t)((i / 100) % 3) * 1000000007ull;
	CHECK_LE_INT(roundtrip(STORE_GRANULE), 400);
	CHECK_EQ_INT(enc[0], 4);
	/* heavy tail: patched FOR keeps the bulk narrow */
	for (int i = 0; i < STORE_GRANULE; i++)
		in[i] = (i % 100 == 0) ? (1ull << 40) + th_rand(&rng) % 1000 : th_rand(&rng) % 256;
	size_t l = roundtrip(STORE_GRANULE);
	CHECK_LE_INT(l, STORE_GRANULE + STORE_GRANULE / 100 * 8 + 128);
	/* full 64-bit randomness */
	for (int i = 0; i < STORE_GRANULE; i++)
		in[i] = th_rand(&rng);
	roundtrip(STORE_GRANULE);
	/* decreasing and wrapping deltas */
	for (int i = 0; i < STORE_GRANULE; i++)
		in[i] = UINT64_MAX - (uint64_t)i * 3 - (i % 7 == 0 ? UINT64_MAX / 2 : 0);
	roundtrip(STORE_GRANULE);
}

TEST(store_codec_roundtrip_random)
{
	uint64_t rng = 99;
	for (int round = 0; round < 300; round++) {
		uint32_t n = 1 + (uint32_t)(th_rand(&rng) % STORE_GRANULE);
		int shape = (int)(th_rand(&rng) % 5);
		uint64_t base = th_rand(&rng), v = base;
		for (uint32_t i = 0; i < n; i++) {
			switch (shape) {
			case 0:
				in[i] = th_rand(&rng) % 3;
				break;
			case 1:
				in[i] = v += th_rand(&rng) % 100000;
				break;
			case 2:
				in[i] = base + th_rand(&rng) % 16 * 1000003;
				break;
			case 3:
				in[i] = th_rand(&rng) >> (th_rand(&rng) % 64);
				break;
			default:
				in[i] = i % 50 ? base : th_rand(&rng);
				break;
			}
		}
		roundtrip(n);
	}
}

TEST(store_codec_typed_and_strings)
{
	uint64_t rng = 5;
	uint8_t type[STORE_GRANULE];
	for (int i = 0; i < STORE_GRANULE; i++) {
		type[i] = (uint8_t)(th_rand(&rng) % 12);
		if (i % 1000 == 0)
			type[i] = 200; /* out-of-range types share the last group */
		in[i] = type[i] == 1 ? (uint64_t)(th_rand(&rng) % 8) : th_rand(&rng) % 1000000;
	}
	struct store__typed_plan *pl = malloc(sizeof(*pl));
	store__typed_plan(type, STORE_GRANULE, pl);
	size_t l = store__enc_typed(in, pl, enc);
	memset(enc + l, 0, STORE_PAD);
	CHECK_EQ_INT(store__dec_typed(enc, l, pl, out), 0);
	CHECK(!memcmp(in, out, sizeof(in)));
	/* a plan for other types must not decode it */
	type[3] = (uint8_t)(type[3] == 5 ? 6 : 5);
	type[4] = 30;
	store__typed_plan(type, STORE_GRANULE, pl);
	CHECK_NE_INT(store__dec_typed(enc, l, pl, out), 0);
	free(pl);

	/* strings: interned pointers, dictionary per block */
	static const char *pool[] = {"", "txn-a", "txn-bb", "txn-ccc"};
	const char *s[STORE_GRANULE], *o[STORE_GRANULE];
	uint8_t len[STORE_GRANULE];
	uint32_t olen[STORE_GRANULE];
	for (int i = 0; i < STORE_GRANULE; i++) {
		s[i] = pool[th_rand(&rng) % 4];
		len[i] = (uint8_t)strlen(s[i]);
	}
	l = store__enc_str(s, len, STORE_GRANULE, enc);
	CHECK_LE_INT(l, STORE_GRANULE / 4 + 128);
	memset(enc + l, 0, STORE_PAD);
	char *dict = malloc(l + 64);
	CHECK_EQ_INT(store__dec_str(enc, l, STORE_GRANULE, o, olen, dict), 0);
	for (int i = 0; i < STORE_GRANULE; i++)
		CHECK(olen[i] == len[i] && !memcmp(o[i], s[i], len[i]));
	free(dict);
}

TEST(store_codec_damaged_input)
{
	uint64_t rng = 11;
	for (int i = 0; i < STORE_GRANULE; i++)
		in[i] = T0_NS + (uint64_t)i * 1000 + th_rand(&rng) % 100;
	size_t l = store__enc_u64(in, STORE_GRANULE, enc);
	static uint8_t bad[STORE_ENC_BOUND(STORE_GRANULE) + STORE_PAD];
	int refused = 0;
	for (int k = 0; k < 2000; k++) {
		memcpy(bad, enc, l);
		memset(bad + l, 0, STORE_PAD);
		size_t bl = l;
		switch (k % 3) {
		case 0:
			bad[th_rand(&rng) % l] ^= (uint8_t)(1 + th_rand(&rng) % 255);
			break;
		case 1:
			bl = th_rand(&rng) % l;
			memset(bad + bl, 0, STORE_PAD);
			break;
		default:
			bad[th_rand(&rng) % 8] = (uint8_t)th_rand(&rng);
			break;
		}
		/* must return (0 or an error), never crash or read out of bounds (ASan in fuzz) */
		if (store__dec_u64(bad, bl, STORE_GRANULE, out))
			refused++;
	}
	CHECK_GT_INT(refused, 500);
	CHECK_NE_INT(store__dec_u64(enc, l, STORE_GRANULE + 1, out), 0);
	CHECK_NE_INT(store__dec_u64(enc, 0, 10, out), 0);
}

TEST(store_codec_bloom)
{
	static uint8_t bits[8192];
	uint32_t nb = store__bloom_bits(500);
	CHECK_EQ_INT(nb, 8192);
	memset(bits, 0, sizeof(bits));
	for (uint64_t i = 0; i < 500; i++)
		store__bloom_add(bits, nb, store__hash_u64(i * 7919));
	for (uint64_t i = 0; i < 500; i++)
		CHECK(store__bloom_test(bits, nb, store__hash_u64(i * 7919)));
	int fp = 0;
	for (uint64_t i = 0; i < 10000; i++)
		fp += store__bloom_test(bits, nb, store__hash_u64(1000000007ull + i));
	CHECK_LT_INT(fp, 300); /* ~1% expected */
}
