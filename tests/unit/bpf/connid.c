/* Tests bpf/connid.h: one id for both ends of a connection, IPv4 equal to its mapped IPv6 form,
 * and different tuples giving different ids. */
#include <arpa/inet.h>
#include <linux/types.h>
#include <string.h>

#include "bpf/connid.h"
#include "tests/test.h"

static struct kp_endpoint v6(const char *addr, __u16 port)
{
	struct kp_endpoint e = {.port = port};
	unsigned char b[16];
	CHECK_EQ_INT(inet_pton(AF_INET6, addr, b), 1);
	memcpy(&e.a0, b, 8);
	memcpy(&e.a1, b + 8, 8);
	return e;
}

static struct kp_endpoint v4(const char *addr, __u16 port)
{
	struct kp_endpoint e;
	__u32 a;
	CHECK_EQ_INT(inet_pton(AF_INET, addr, &a), 1);
	kp_endpoint_v4(&e, a, port);
	return e;
}

TEST(connid_both_ends_agree)
{
	struct kp_endpoint c = v4("10.0.0.1", 40000), s = v4("10.0.0.2", 5432);
	CHECK_EQ_UINT(kp_connid(&c, &s), kp_connid(&s, &c));
	/* an IPv4 endpoint is its IPv4-mapped IPv6 form */
	struct kp_endpoint c6 = v6("::ffff:10.0.0.1", 40000), s6 = v6("::ffff:10.0.0.2", 5432);
	CHECK_EQ_UINT(kp_connid(&c, &s), kp_connid(&s6, &c6));
	/* anything else differs */
	struct kp_endpoint c2 = v4("10.0.0.1", 40001), s2 = v4("10.0.0.3", 5432);
	CHECK(kp_connid(&c, &s) != kp_connid(&c2, &s));
	CHECK(kp_connid(&c, &s) != kp_connid(&c, &s2));
	struct kp_endpoint a = v6("2001:db8::1", 443), b = v6("2001:db8::2", 50000);
	CHECK_EQ_UINT(kp_connid(&a, &b), kp_connid(&b, &a));
	CHECK(kp_connid(&a, &b) != kp_connid(&c, &s));
	/* same address, ports swapped: still one connection seen from either end */
	struct kp_endpoint l1 = v4("127.0.0.1", 1000), l2 = v4("127.0.0.1", 2000);
	CHECK_EQ_UINT(kp_connid(&l1, &l2), kp_connid(&l2, &l1));
	CHECK(kp_connid(&l1, &l2) != 0);
}
