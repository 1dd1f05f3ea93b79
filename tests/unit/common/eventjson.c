/* Tests common/eventjson.c: the field names per type (the documented mapping), valid JSON for
 * every type, escaping of metadata, type names both ways. */
#include <linux/types.h>

#include "common/eventjson.h"
#include "common/json.h"
#include "tests/test.h"

static struct json_doc *render(const struct kp_event *e, const struct eventjson_meta *m,
			       struct json **root, struct kp_buf *b)
{
	b->len = 0;
	eventjson_write(b, e, m);
	char err[128];
	size_t pos;
	struct json_doc *d = json_parse(b->data, b->len, root, err, sizeof(err), &pos);
	CHECKF(d != NULL, "invalid JSON (%s at %zu): %s", err, pos, b->data);
	return d;
}

TEST(eventjson_fields_per_type)
{
	struct kp_buf b = {0};
	struct json *j;
	struct kp_event e = {.ts_ns = 1700000000123456789ull, .dur_ns = 2500, .pid = 4721,
			     .tid = 4722, .cpu = 3, .type = KP_WRITE, .ret = 4096,
			     .arg = {7, 4096, 1, 99}};
	struct eventjson_meta m = {"postgres", "ledger \"db\"", "node-1"};
	struct json_doc *d = render(&e, &m, &j, &b);
	CHECK_EQ_STR(b.data,
		     "{\"type\":\"write\",\"ts\":1700000000123456789,\"dur\":2500,\"pid\":4721,"
		     "\"tid\":4722,\"cpu\":3,\"ret\":4096,\"comm\":\"postgres\",\"service\":"
		     "\"ledger \\\"db\\\"\",\"node\":\"node-1\",\"fd\":7,\"bytes\":4096,"
		     "\"syscall\":\"write\",\"inode\":99}");
	json_free(d);

	e = (struct kp_event){.type = KP_TCP_SEND, .ret = 10, .arg = {55, 10, 1000, KP_PORTS(
										       5432, 40000)}};
	d = render(&e, NULL, &j, &b);
	CHECK_CONTAINS(b.data, "\"conn\":\"0000000000000037\",\"bytes\":10,\"seq\":1000,"
			       "\"sport\":5432,\"dport\":40000");
	CHECK(!strstr(b.data, "comm"));
	json_free(d);

	e = (struct kp_event){.type = KP_CONN, .flags = KP_F_IPV6,
			      .arg = {55, 2, 1, KP_PORTS(1, 2) | (10ull << 32)}};
	d = render(&e, NULL, &j, &b);
	CHECK_CONTAINS(b.data, "\"flags\":4");
	CHECK_CONTAINS(b.data, "\"family\":\"ipv6\",\"sport\":1,\"dport\":2,"
			       "\"old_state\":\"SYN_SENT\",\"new_state\":\"ESTABLISHED\"");
	json_free(d);

	e = (struct kp_event){.type = KP_OFFCPU, .dur_ns = 388000000,
			      .arg = {KP_OFFCPU_PREEMPTED | (0 << 8), 0, 12345, 4721}};
	d = render(&e, NULL, &j, &b);
	CHECK_CONTAINS(b.data, "\"reason\":\"preempted\",\"waker\":0,\"runq\":12345,"
			       "\"holder_tid\":4721,\"prev_state\":0");
	json_free(d);

	e = (struct kp_event){.type = KP_RECLAIM, .arg = {900, KP_RECLAIM_MEMCG, 77, 0}};
	d = render(&e, NULL, &j, &b);
	CHECK_CONTAINS(b.data, "\"pages\":900,\"kind\":\"memcg\",\"memcg\":77,\"order\":0");
	json_free(d);

	e = (struct kp_event){.type = KP_FAULTS, .arg = {12, 0x7f0000001000ull, 0xffffffffffffffffull,
							3}};
	d = render(&e, NULL, &j, &b);
	CHECK_CONTAINS(b.data, "\"count\":12,\"addr\":139637976731648,"
			       "\"last_addr\":18446744073709551615,\"write_faults\":3");
	json_free(d);

	e = (struct kp_event){.type = KP_PROC, .ret = 1 << 8 | 9, .arg = {KP_PROC_EXIT, 1}};
	memcpy(&e.arg[2], "batch-job\"\n", 11);
	d = render(&e, NULL, &j, &b);
	CHECK_CONTAINS(b.data, "\"proc_event\":\"exit\",\"ppid\":1,\"comm\":\"batch-job\\\"\\n\","
			       "\"exit_code\":1,\"signal\":9");
	json_free(d);
	e.arg[0] = KP_PROC_FORK;
	e.arg[1] = 999;
	d = render(&e, NULL, &j, &b);
	CHECK_CONTAINS(b.data, "\"proc_event\":\"fork\",\"child\":999");
	json_free(d);

	/* Every type, and out-of-range ones, give valid JSON. */
	for (int t = 0; t < 256; t++) {
		e = (struct kp_event){.type = (__u8)t, .ret = -11, .flags = KP_F_ERROR,
				      .arg = {~0ull, ~0ull, ~0ull, ~0ull}};
		memset(&e.arg[2], 0xff, 16);
		d = render(&e, NULL, &j, &b);
		CHECK_EQ_STR(json_get(j, "type")->u.str.s, eventjson_type_name((unsigned)t));
		json_free(d);
	}
	buf_free(&b);
}

TEST(eventjson_type_names)
{
	for (int t = 1; t < KP_TYPE_MAX; t++) {
		const char *n = eventjson_type_name((unsigned)t);
		CHECK_EQ_INT(eventjson_type_from_name(n, strlen(n)), t);
	}
	CHECK_EQ_INT(eventjson_type_from_name("TCP_SEND", 8), KP_TCP_SEND);
	CHECK_EQ_INT(eventjson_type_from_name("none", 4), -1);
	CHECK_EQ_INT(eventjson_type_from_name("writes", 6), -1);
	CHECK_EQ_INT(eventjson_type_from_name("writ", 4), -1);
	CHECK_EQ_STR(eventjson_type_name(200), "unknown");
}
