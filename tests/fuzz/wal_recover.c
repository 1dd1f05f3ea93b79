/*
 * Fuzz target: WAL recovery (store/wal.c) on arbitrary directory contents. The input is split
 * into up to three files (byte 0 picks the cut points) named as consecutive WAL files, next to
 * an optional checkpoint; the WAL is opened read-only, then writable (repairing), replayed, and
 * must report consistent counts and never crash.
 */
// fuzz-sources: common/util.c store/wal.c
// fuzz-libs: -lxxhash
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "store/wal.h"

static char g_dir[64];

static void clear_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[512];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (unlink(p) != 0 && e->d_type == DT_DIR) {
			clear_dir(p);
			rmdir(p);
		}
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

static int count(void *ctx, uint64_t lsn, uint64_t node, uint64_t seq, const void *p, uint32_t len)
{
	uint64_t *c = ctx;
	if (lsn <= c[1])
		abort(); /* replay must be in LSN order */
	c[1] = lsn;
	c[0]++;
	return 0;
}

static void cleanup(void)
{
	clear_dir(g_dir);
	rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_dir[0]) {
		setenv("KPROBE_LOG", "error", 1);
		log_init("fuzz");
		snprintf(g_dir, sizeof(g_dir), "/dev/shm/kprobe-fuzz-wal-XXXXXX");
		if (!mkdtemp(g_dir))
			abort();
		atexit(cleanup);
	}
	clear_dir(g_dir);
	if (size < 2)
		return 0;
	size_t a = (size - 1) * (data[0] & 0x0f) / 16, b = (size - 1) * (data[0] >> 4) / 16;
	if (a > b) {
		size_t t = a;
		a = b, b = t;
	}
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	put_file("0000000000000001.wal", p, a);
	put_file("0000000000000002.wal", p + a, b - a);
	if (data[0] & 1)
		put_file("checkpoint", p + b, n - b);
	else
		put_file("0000000000000003.wal", p + b, n - b);

	struct wal *w;
	struct wal_recovery rec;
	struct wal_opts ro = {.read_only = 1};
	if (wal_open(&w, g_dir, &ro, &rec) == 0) {
		uint64_t c[2] = {0, 0};
		if (wal_replay(w, 1, count, c) == 0 && c[0] != rec.records)
			abort();
		wal_close(w);
	}
	if (wal_open(&w, g_dir, NULL, &rec) == 0) {
		uint64_t c[2] = {0, 0};
		if (wal_replay(w, 1, count, c) == 0 && c[0] != rec.records)
			abort();
		struct iovec iov = {"x", 1};
		uint64_t lsn;
		if (wal_append(w, 1, UINT64_MAX, &iov, 1, &lsn) == 0 && lsn != wal_last_lsn(w))
			abort();
		wal_close(w);
	}
	return 0;
}
