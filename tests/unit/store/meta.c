/*
 * Tests store/meta.c: process metadata per (node, pid, start time) with pid reuse, connection
 * tuples, node names, interned symbols, and the log's replay and torn-tail cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "store/internal.h"
#include "tests/unit/store/helpers.h"

static void add_proc(struct store__meta *m, uint64_t node, uint32_t pid, uint64_t start,
		     const char *comm)
{
	struct wire_batch b = {0};
	struct wire_proc p = {.pid = pid, .ppid = 1, .start_ns = start};
	snprintf(p.comm, sizeof(p.comm), "%s", comm);
	snprintf(p.service, sizeof(p.service), "svc-%s", comm);
	wire_batch_add_proc(&b, &p);
	struct wire_meta_iter it = {(const uint8_t *)b.meta.data,
				    (const uint8_t *)b.meta.data + b.meta.len};
	uint16_t kind, len;
	const void *pl;
	CHECK(wire_meta_next(&it, &kind, &pl, &len));
	CHECK_EQ_INT(store__meta_apply(m, node, kind, pl, len, true), 0);
	wire_batch_free(&b);
}

static const char *comm_of(struct store__meta *m, uint64_t node, uint32_t pid, uint64_t ts)
{
	struct store__proc p;
	if (!store__meta_proc(m, node, pid, ts, &p))
		return NULL;
	uint32_t l;
	return store__sym_str(m, p.comm, &l);
}

TEST(store_meta_procs_conns_nodes_and_log)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/meta.log", kt_tmpdir());
	struct store__meta *m;
	CHECK_EQ_INT(store__meta_open(path, &m), 0);
	add_proc(m, 1, 42, 1000, "old");
	add_proc(m, 1, 42, 5000, "new"); /* the pid was reused */
	add_proc(m, 2, 42, 1000, "other-node");
	add_proc(m, 1, 42, 5000, "renamed"); /* same process again: an update */
	for (uint32_t i = 0; i < 3000; i++)  /* grow every table past its first sizes */
		add_proc(m, 3, 1000 + i, 1, "bulk");
	CHECK_EQ_STR(comm_of(m, 1, 42, 2000), "old");
	CHECK_EQ_STR(comm_of(m, 1, 42, 6000), "renamed");
	CHECK_EQ_STR(comm_of(m, 1, 42, 10), "old"); /* before any start: the earliest */
	CHECK_EQ_STR(comm_of(m, 2, 42, 6000), "other-node");
	CHECK_EQ_STR(comm_of(m, 3, 3999, 6000), "bulk");
	CHECK(comm_of(m, 1, 43, 0) == NULL);
	struct store__proc p;
	CHECK(store__meta_proc(m, 1, 42, 2000, &p));
	CHECK_EQ_UINT(p.valid_from, 0);
	CHECK_EQ_UINT(p.valid_to, 5000);

	struct wire_batch b = {0};
	struct wire_conn c = {.conn = 77, .family = 10, .sport = 1, .dport = 2};
	c.saddr[15] = 1; /* ::1 */
	c.daddr[0] = 0xfe, c.daddr[1] = 0x80, c.daddr[15] = 2;
	wire_batch_add_conn(&b, &c);
	wire_batch_add_node(&b, "node-x", "6.1");
	struct wire_meta_iter it = {(const uint8_t *)b.meta.data,
				    (const uint8_t *)b.meta.data + b.meta.len};
	uint16_t kind, len;
	const void *pl;
	while (wire_meta_next(&it, &kind, &pl, &len))
		CHECK_EQ_INT(store__meta_apply(m, 9, kind, pl, len, true), 0);
	wire_batch_free(&b);
	struct store__conn cc;
	CHECK(store__meta_conn(m, 9, 77, &cc));
	uint32_t l;
	CHECK_EQ_STR(store__sym_str(m, cc.saddr, &l), "::1");
	CHECK_EQ_STR(store__sym_str(m, cc.daddr, &l), "fe80::2");
	CHECK(!store__meta_conn(m, 8, 77, &cc));
	CHECK_EQ_STR(store__sym_str(m, store__meta_node(m, 9), &l), "node-x");
	CHECK_EQ_INT(store__meta_node(m, 10), 0);
	/* symbols */
	uint32_t a = store__sym_intern(m, "abc", 3);
	CHECK_EQ_INT(store__sym_intern(m, "abc", 3), a);
	CHECK_EQ_INT(store__sym_find(m, "abc", 3), a);
	CHECK_EQ_INT(store__sym_find(m, "abd", 3), 0);
	CHECK_EQ_INT(store__meta_apply(m, 1, 99, "x", 1, true), -EINVAL);
	CHECK_EQ_INT(store__meta_sync(m), 0);
	/* agents resend metadata periodically: repeats do not grow the log */
	int lfd = open(path, O_RDONLY);
	off_t sz = lseek(lfd, 0, SEEK_END);
	add_proc(m, 1, 42, 5000, "renamed");
	add_proc(m, 3, 1000, 1, "bulk");
	CHECK_EQ_INT(store__meta_sync(m), 0);
	CHECK_EQ_INT(lseek(lfd, 0, SEEK_END), sz);
	add_proc(m, 3, 1000, 1, "changed");
	CHECK_EQ_INT(store__meta_sync(m), 0);
	CHECK_GT_INT(lseek(lfd, 0, SEEK_END), sz);
	close(lfd);
	add_proc(m, 3, 1000, 1, "bulk");
	store__meta_close(m);

	/* replay, then a torn tail is cut and the rest survives */
	int fd = open(path, O_WRONLY | O_APPEND);
	CHECK_EQ_INT(write(fd, "\x10\x00\x00\x00\x01\x02", 6), 6);
	close(fd);
	off_t before = lseek(open(path, O_RDONLY), 0, SEEK_END);
	CHECK_EQ_INT(store__meta_open(path, &m), 0);
	CHECK_EQ_STR(comm_of(m, 1, 42, 6000), "renamed");
	CHECK_EQ_STR(comm_of(m, 3, 1500, 6000), "bulk");
	CHECK(store__meta_conn(m, 9, 77, &cc));
	uint64_t procs, conns, nodes;
	store__meta_counts(m, &procs, &conns, &nodes);
	CHECK_EQ_UINT(procs, 3003);
	CHECK_EQ_UINT(conns, 1);
	CHECK_EQ_UINT(nodes, 1);
	store__meta_close(m);
	fd = open(path, O_RDONLY);
	CHECK_EQ_INT(lseek(fd, 0, SEEK_END), before - 6);
	close(fd);
	/* a foreign file is refused */
	fd = open(path, O_WRONLY);
	CHECK_EQ_INT(pwrite(fd, "NOPE", 4, 0), 4);
	close(fd);
	CHECK_EQ_INT(store__meta_open(path, &m), STORE_EMAGIC);
}
