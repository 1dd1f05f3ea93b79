/*
 * Fuzz target: the agent frame decoder (agent/wire.c) on arbitrary bytes, as kprobed's ingest
 * sees them: header, then body, then every metadata record (capture pieces reassembled, as
 * kprobed's capture store does).
 */
// fuzz-sources: agent/wire.c common/util.c
// fuzz-libs: -llz4 -lxxhash
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < WIRE_HDR_LEN)
		return 0;
	struct wire_hdr h;
	if (wire_hdr_decode(data, &h) != 0)
		return 0;
	if (size - WIRE_HDR_LEN < h.body_len)
		return 0;
	void *raw = malloc(h.raw_len ? h.raw_len : 1);
	static struct wire_cap_asm cap;
	wire_cap_asm_reset(&cap);
	if (wire_body_decode(&h, data + WIRE_HDR_LEN, raw, h.raw_len) == 0) {
		struct wire_meta_iter it = {(const uint8_t *)raw + 64ull * h.n_events,
					    (const uint8_t *)raw + h.raw_len};
		uint16_t kind, len;
		const void *pl;
		while (wire_meta_next(&it, &kind, &pl, &len)) {
			struct wire_proc p;
			struct wire_conn c;
			char a[64], b[64];
			if (kind == WIRE_META_PROC)
				wire_proc_decode(pl, len, &p);
			else if (kind == WIRE_META_CONN)
				wire_conn_decode(pl, len, &c);
			else if (kind == WIRE_META_NODE)
				wire_node_decode(pl, len, a, sizeof(a), b, sizeof(b));
			else if (kind == WIRE_META_CAPTURE && wire_cap_piece(&cap, pl, len) < 0)
				__builtin_trap(); /* wire_body_decode let through pieces that do
						   * not add up */
		}
	}
	free(raw);
	return 0;
}
