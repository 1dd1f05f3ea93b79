/*
 * Fuzz target: the recording reader (replay/rec.c) and the model built from what it accepts
 * (replay/model.c), on arbitrary bytes as `kprobe replay FILE` would read them.
 */
// fuzz-sources: replay/rec.c replay/model.c replay/sysc.c common/util.c
// fuzz-libs: -lxxhash
#include <stdint.h>
#include <stdlib.h>

#include "replay/internal.h"
#include "replay/rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rec *r = NULL;
	char err[256];
	if (rec_open_mem(&r, data, size, err, sizeof(err)) != 0)
		return 0;
	for (uint64_t n = 0; n < rec_ncalls(r); n++) {
		int th;
		const struct kp_cap_rec *c = rec_call_seq(r, n, &th);
		struct kp_cap_sock k;
		kp_cap_sock_get(c, &k);
		(void)rec_thread(r, th);
	}
	for (int i = 0; i < rec_nthreads(r); i++)
		(void)rec_child(r, i, 0);
	struct replay__model *m = NULL;
	if (replay__model_build(&m, r, err, sizeof(err)) == 0) {
		for (int i = 0; i < m->neps; i++) {
			uint8_t buf[64];
			uint64_t a = replay__model_avail(m, i, UINT64_MAX);
			(void)replay__model_arrival(m, i, 0);
			replay__model_bytes(m, i, 0, a < sizeof(buf) ? a : sizeof(buf), buf);
		}
		replay__model_free(m);
	}
	rec_close(r);
	return 0;
}
