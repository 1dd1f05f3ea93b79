/*
 * Fuzz target: the capture store (replay/capstore.c, capbuild.c) on an arbitrary active log: it
 * is opened (recovery cuts it back to whole groups), scanned, turned into a recording for the
 * first pid it holds (which must read back), appended to and reopened, and must never crash.
 * The first two bytes pick whether a sealed log with an index comes first.
 */
// fuzz-sources: common/util.c agent/wire.c replay/capstore.c replay/capbuild.c replay/rec.c
// fuzz-libs: -lxxhash -llz4
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/wire.h"
#include "common/util.h"
#include "replay/capstore.h"
#include "replay/rec.h"

static char g_dir[64];

static void clear_dir(void)
{
	DIR *d = opendir(g_dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[512];
		snprintf(p, sizeof(p), "%s/%s", g_dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
}

static void put_file(const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		abort();
	if (n && write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

struct first {
	uint32_t pid;
	uint64_t n, node;
};

static int first_pid(void *ctx, uint64_t node, int64_t clock_off, const struct kp_cap_rec *c)
{
	struct first *f = ctx;
	if (!kp_cap_rec_valid(c, c->len) && c->kind != KP_CAP_LOST)
		abort(); /* the store hands out only what it validated */
	if (!f->pid && c->pid) {
		f->pid = c->pid;
		f->node = node;
	}
	f->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_dir[0]) {
		snprintf(g_dir, sizeof(g_dir), "/tmp/kprobe-fuzz-capstore-%d", getpid());
		mkdir_p(g_dir, 0700);
	}
	clear_dir();
	if (size < 2)
		return 0;
	size_t cut = size > 2 ? 2 + (data[0] | data[1] << 8) % (size - 1) : 2;
	if (data[0] & 1) {
		put_file("0000000000000001.kcl", data + 2, cut - 2);
		put_file("0000000000000001.kcx", data + cut, size - cut);
		put_file("0000000000000002.kcl", data + 2, size - 2);
	} else {
		put_file("0000000000000001.kcl", data + 2, size - 2);
		put_file("state", data + cut, size - cut);
	}
	struct capstore_opts o = {.dir = g_dir, .max_bytes = 1 << 26, .retention_days = 30};
	struct capstore *cs;
	char err[512];
	if (capstore_open(&cs, &o, err, sizeof(err)) < 0)
		return 0;
	struct capstore_sel all = {0, NULL, 0, 0, UINT64_MAX};
	struct first f = {0};
	capstore_scan(cs, &all, first_pid, &f, NULL, NULL);
	if (f.pid) {
		struct capstore_recq q = {.node = f.node,
					  .pid = f.pid,
					  .from_ns = 0,
					  .to_ns = UINT64_MAX,
					  .max_bytes = 1 << 24};
		struct kp_buf out = {0};
		struct capstore_recinfo info;
		if (capstore_recording(cs, &q, &out, &info, err, sizeof(err)) == 0) {
			struct rec *r;
			if (rec_open_mem(&r, out.data, out.len, err, sizeof(err)) < 0)
				abort(); /* what the builder writes must read back */
			rec_close(r);
		}
		buf_free(&out);
		uint64_t node, from, to;
		capstore_find_process(cs, 0, f.pid, 0, UINT64_MAX / 2, 1000, 1000, &node, &from,
				      &to);
	}
	/* appending after recovery keeps the log readable */
	struct wire_batch b = {0};
	struct kp_cap_rec c = {.len = KP_CAP_HDR_LEN, .kind = KP_CAP_CALL, .pid = 9, .tid = 9};
	wire_batch_add_capture(&b, &c, c.len, 0);
	capstore_append_frame(cs, capstore_recovered_lsn(cs) + 1, 1, b.meta.data, b.meta.len);
	wire_batch_free(&b);
	capstore_close(cs);
	if (capstore_open(&cs, &o, err, sizeof(err)) == 0) {
		struct first g = {0};
		capstore_scan(cs, &all, first_pid, &g, NULL, NULL);
		if (g.n < 1)
			abort(); /* the appended record survived the reopen */
		capstore_close(cs);
	}
	return 0;
}
