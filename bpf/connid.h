/*
 * connid.h - the TCP connection id, computed the same way by the kernel side (bpf/probe.bpf.c)
 * and by user space (agent tests, the appliance when it needs to recompute one).
 *
 * Both ends of one connection, on one host or on two, must derive the same 64-bit id, so a send
 * on one side can be matched to the receive on the other by (conn id, TCP sequence range). The
 * id is a hash of the canonical 4-tuple:
 *
 *   - every address is taken as 16 bytes, IPv4 mapped into IPv6 (::ffff:a.b.c.d), so an AF_INET
 *     client and a dual-stack AF_INET6 server (which sees ::ffff:a.b.c.d) agree;
 *   - the two endpoints (address, port) are sorted, so "local/remote" does not matter;
 *   - the words are hashed with a 64-bit multiply-xorshift mix (murmur3's finalizer).
 *
 * Addresses are hashed as they are loaded from memory on a little-endian host (x86, arm64); a
 * big-endian host would compute different ids. Plain C, no includes: the includer provides
 * __u8/__u16/__u32/__u64 (vmlinux.h in the kernel side, <linux/types.h> in user space).
 */
#ifndef KP_CONNID_H
#define KP_CONNID_H

struct kp_endpoint {
	__u64 a0, a1; /* the 16-byte address as two words, IPv4 mapped */
	__u16 port;   /* host order */
};

static inline __u64 kp_mix64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* An IPv4 address (as the __be32 loaded from memory) as the two words of ::ffff:a.b.c.d. */
static inline void kp_endpoint_v4(struct kp_endpoint *e, __u32 addr_be, __u16 port)
{
	e->a0 = 0;
	e->a1 = 0xffff0000ULL | ((__u64)addr_be << 32);
	e->port = port;
}

/* 1 when endpoint a sorts before b (address words, then port). */
static inline int kp_endpoint_less(const struct kp_endpoint *a, const struct kp_endpoint *b)
{
	if (a->a0 != b->a0)
		return a->a0 < b->a0;
	if (a->a1 != b->a1)
		return a->a1 < b->a1;
	return a->port < b->port;
}

/* The connection id of the two endpoints, in either order. Never 0 (0 means "unknown"). */
static inline __u64 kp_connid(const struct kp_endpoint *x, const struct kp_endpoint *y)
{
	const struct kp_endpoint *lo = x, *hi = y;
	if (kp_endpoint_less(y, x)) {
		lo = y;
		hi = x;
	}
	__u64 h = 0x6b70726f62650001ULL; /* "kprobe" | 1: a version of the scheme */
	h = kp_mix64(h ^ lo->a0);
	h = kp_mix64(h ^ lo->a1);
	h = kp_mix64(h ^ hi->a0);
	h = kp_mix64(h ^ hi->a1);
	h = kp_mix64(h ^ ((__u64)lo->port << 16 | hi->port));
	return h ? h : 1;
}

#endif
