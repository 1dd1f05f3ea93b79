/* Tests replay/rec.c: round trip of a recording, ordering, thread table, and every check on open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/types.h>

#include "replay/rec.h"
#include "tests/test.h"

static uint8_t recbuf[KP_CAP_REC_MAX];

/* A capture record with payload p (n bytes). */
static const struct kp_cap_rec *mk(uint8_t kind, uint32_t pid, uint32_t tid, uint16_t nr,
				   uint64_t ts, int64_t ret, const void *p, uint32_t n)
{
	struct kp_cap_rec *c = (void *)recbuf;
	memset(recbuf, 0, KP_CAP_HDR_LEN + n + 8);
	c->kind = kind;
	c->pid = pid;
	c->tid = tid;
	c->nr = nr;
	c->ts_enter = ts - 10;
	c->ts_exit = ts;
	c->ret = ret;
	c->payload_len = n;
	if (n)
		memcpy(recbuf + KP_CAP_HDR_LEN, p, n);
	c->len = (KP_CAP_HDR_LEN + n + 7) & ~7u;
	return c;
}

static void add(struct rec_writer *w, const struct kp_cap_rec *c)
{
	CHECK_EQ_INT(rec_writer_add(w, c, c->len), 0);
}

static const char *path(const char *n)
{
	static char b[512];
	snprintf(b, sizeof(b), "%s/%s", kt_tmpdir(), n);
	return b;
}

static void write_sample(const char *file)
{
	struct rec_writer *w = rec_writer_new();
	char *argv[] = {"prog", "--flag", NULL};
	struct rec_meta m = {.mono_base = 1000,
			     .real_base = 5000,
			     .boot_base = 2000,
			     .mono_end = 9000,
			     .root_tid = 100,
			     .root_status = 256,
			     .max_bytes = 4096,
			     .argc = 2,
			     .argv = argv,
			     .cwd = "/tmp",
			     .host = "h",
			     .kernel = "6.18"};
	rec_writer_meta(w, &m);
	/* out of order on purpose: the writer orders by exit time */
	add(w, mk(KP_CAP_CALL, 100, 101, 0, 1500, 5, "hello", 5));
	add(w, mk(KP_CAP_CALL, 100, 100, 1, 1100, 3, "abc", 3));
	mk(KP_CAP_FORK, 100, 100, 0, 1050, 0, NULL, 0);
	struct kp_cap_rec *f = (void *)recbuf;
	f->args[0] = 101;
	f->args[1] = 100;
	f->flags = KP_CAP_F_THREAD;
	CHECK_EQ_INT(rec_writer_add(w, f, f->len), 0);
	add(w, mk(KP_CAP_CALL, 100, 100, 3, 1600, 0, NULL, 0));
	add(w, mk(KP_CAP_EXEC, 100, 100, 0, 1010, 0, "/usr/bin/prog", 14));
	add(w, mk(KP_CAP_CALL, 200, 200, 0, 1200, 2, "zz", 2)); /* a peer */
	/* malformed ones never get in */
	struct kp_cap_rec *bad = (void *)recbuf;
	mk(KP_CAP_CALL, 100, 100, 0, 1, 0, "x", 1);
	bad->payload_len = 4000;
	CHECK_EQ_INT(rec_writer_add(w, bad, bad->len), -EINVAL);
	CHECK_EQ_INT(rec_writer_add(w, bad, 10), -EINVAL);
	CHECK_EQ_INT(rec_writer_rejected(w), 2);
	struct rec_summary sum;
	char err[256];
	CHECK_EQ_INT(rec_writer_finish(w, file, &sum, err, sizeof(err)), 0);
	rec_writer_free(w);
	CHECK_EQ_INT(sum.calls, 4);
	CHECK_EQ_INT(sum.threads, 3);
	CHECK_EQ_INT(sum.peers, 1);
}

TEST(rec_round_trip)
{
	write_sample(path("a.kprc"));
	struct rec *r;
	char err[256];
	CHECKF(rec_open(&r, path("a.kprc"), err, sizeof(err)) == 0, "%s", err);
	const struct rec_meta *m = rec_meta(r);
	CHECK_EQ_INT(m->root_tid, 100);
	CHECK_EQ_INT(m->root_status, 256);
	CHECK_EQ_INT(m->argc, 2);
	CHECK_EQ_STR(m->argv[1], "--flag");
	CHECK_EQ_STR(m->cwd, "/tmp");
	CHECK_EQ_INT(rec_ncalls(r), 4);
	CHECK_EQ_INT(rec_nthreads(r), 3);
	int root = rec_thread_find(r, 100), th = rec_thread_find(r, 101),
	    peer = rec_thread_find(r, 200);
	CHECK(root >= 0 && th >= 0 && peer >= 0);
	CHECK(rec_thread(r, root)->flags & REC_T_ROOT);
	CHECK(rec_thread(r, th)->flags & REC_T_THREAD);
	CHECK(rec_thread(r, th)->flags & REC_T_TREE);
	CHECK(rec_thread(r, peer)->flags & REC_T_PEER);
	CHECK_EQ_STR(rec_thread(r, root)->exe, "prog");
	CHECK_EQ_INT(rec_child(r, root, 0), th);
	CHECK_EQ_INT(rec_child(r, root, 1), -1);
	/* global order by exit time: write(1100), read by peer(1200), read(1500), close(1600) */
	int t;
	const struct kp_cap_rec *c = rec_call_seq(r, 0, &t);
	CHECK_EQ_INT(c->nr, 1);
	CHECK_EQ_INT(t, root);
	CHECK_EQ_INT(c->seq, 1);
	CHECK(!memcmp(kp_cap_payload(c), "abc", 3));
	c = rec_call_seq(r, 2, &t);
	CHECK_EQ_INT(t, th);
	CHECK_EQ_INT(c->ord, 0);
	CHECK(!memcmp(kp_cap_payload(c), "hello", 5));
	c = rec_call(r, root, 1);
	CHECK_EQ_INT(c->nr, 3);
	CHECK_EQ_INT(c->ord, 1);
	CHECK_EQ_INT(c->seq, 4);
	CHECK(rec_call(r, root, 2) == NULL);
	rec_close(r);
}

static int open_mutated(size_t at, uint8_t xor_, off_t cut, char *err, size_t errlen)
{
	int fd = open(path("a.kprc"), O_RDONLY);
	struct stat st;
	fstat(fd, &st);
	uint8_t *d = malloc((size_t)st.st_size);
	CHECK(read(fd, d, (size_t)st.st_size) == st.st_size);
	close(fd);
	if (at < (size_t)st.st_size)
		d[at] ^= xor_;
	struct rec *r = NULL;
	int ret = rec_open_mem(&r, d, cut ? (size_t)cut : (size_t)st.st_size, err, errlen);
	rec_close(r);
	free(d);
	return ret;
}

TEST(rec_open_refuses_damage)
{
	write_sample(path("a.kprc"));
	char err[256];
	CHECK(open_mutated(0, 0xff, 0, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "bad magic");
	CHECK(open_mutated(4, 0x02, 0, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "version");
	CHECK(open_mutated(30, 0x01, 0, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "header checksum");
	int fd = open(path("a.kprc"), O_RDONLY);
	struct stat st;
	fstat(fd, &st);
	close(fd);
	CHECK(open_mutated(SIZE_MAX, 0, 100, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "too short");
	CHECK(open_mutated(SIZE_MAX, 0, st.st_size - 40, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "cut");
	/* every single-byte flip is caught, none crashes */
	for (off_t i = 0; i < st.st_size; i += 3)
		CHECKF(open_mutated((size_t)i, 0x10, 0, err, sizeof(err)) < 0,
		       "flip at %lld "
		       "accepted",
		       (long long)i);
	CHECK(open_mutated(SIZE_MAX, 0, 0, err, sizeof(err)) == 0);
}
