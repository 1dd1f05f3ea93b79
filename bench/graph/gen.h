/*
 * gen.h - the deterministic synthetic causal graph of bench/graph (issue 4), the same for every
 * system measured: LMDB (gstore), SQLite, and Kuzu (which loads the CSV this generator writes).
 *
 * Shape: N nodes with ids 1..N in time order (100 us apart). Every 1000th node is a hub process
 * (GN_PROCESS, no causes of its own). Every other node j gets its causes ("in" edges, cause ->
 * effect) from earlier nodes: 0..5 local causes (mean 2.7), 70% from the previous 64 nodes and
 * 30% from the previous 5000, plus with probability 0.3 one edge from one of the 20 most recent
 * hubs, so each hub fans out to ~300 nodes. About 3 edges per node in all; the graph is a DAG.
 * Weights are log-uniform over 50 us .. 500 ms (the latency each edge explains).
 * Each node's randomness comes from a hash of (seed, id), so any node can be generated alone.
 */
#ifndef KP_BENCH_GRAPH_GEN_H
#define KP_BENCH_GRAPH_GEN_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "graph/gstore.h"

#define GEN_T0	    1700000000000000000ull
#define GEN_STEP_NS 100000ull
#define GEN_HUB	    1000 /* every GEN_HUB-th node is a hub process */
#define GEN_MAX_IN  8

struct gen_node {
	uint64_t id;
	int kind;
	uint32_t pid;
	uint64_t start_ns, end_ns, weight_ns;
	const char *comm;
	int n_in;
	struct gstore_edge in[GEN_MAX_IN]; /* dst == id, distinct srcs */
};

static inline uint64_t gen_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

struct gen_rng {
	uint64_t s;
};

static inline uint64_t gen_next(struct gen_rng *r)
{
	r->s += 0x9e3779b97f4a7c15ull;
	return gen_mix(r->s);
}

static inline double gen_unit(struct gen_rng *r)
{
	return (double)(gen_next(r) >> 11) / 9007199254740992.0;
}

static inline uint64_t gen_weight(struct gen_rng *r)
{
	/* log-uniform 50 us .. 500 ms */
	return (uint64_t)(50000.0 * exp(gen_unit(r) * log(10000.0)));
}

static inline int gen_is_hub(uint64_t id)
{
	return id % GEN_HUB == 1;
}

static const char *const gen_comms[] = {"api-worker", "postgres", "nginx",   "payment-svc",
					"redis",      "kafka",	  "envoy",   "ledger",
					"auth-svc",   "java",	  "python3", "node"};

static inline void gen_node_make(uint64_t seed, uint64_t id, struct gen_node *n)
{
	struct gen_rng r = {gen_mix(seed ^ (id * 0x2545f4914f6cdd1dull))};
	memset(n, 0, sizeof(*n));
	n->id = id;
	n->start_ns = GEN_T0 + id * GEN_STEP_NS;
	if (gen_is_hub(id)) {
		n->kind = GN_PROCESS;
		n->pid = 40000 + (uint32_t)(id / GEN_HUB);
		n->comm = "batch-job";
		n->end_ns = n->start_ns + 20000 * GEN_STEP_NS;
		n->weight_ns = 0;
		return;
	}
	static const int kinds[20] = {
		GN_SYMPTOM, GN_SPAN,	GN_SPAN,    GN_SPAN,	GN_SPAN,   GN_SYSCALL,	 GN_SYSCALL,
		GN_SYSCALL, GN_SYSCALL, GN_SYSCALL, GN_SYSCALL, GN_OFFCPU, GN_OFFCPU,	 GN_OFFCPU,
		GN_OFFCPU,  GN_RECLAIM, GN_FAULTS,  GN_TCP,	GN_TCP,	   GN_RETRANSMIT};
	uint64_t x = gen_next(&r);
	n->kind = kinds[x % 20];
	n->pid = 1000 + (uint32_t)((x >> 8) % 500);
	n->comm = gen_comms[n->pid % (sizeof(gen_comms) / sizeof(gen_comms[0]))];
	n->weight_ns = gen_weight(&r);
	n->end_ns = n->start_ns + n->weight_ns;
	int d = (int)(gen_next(&r) % 6) + (gen_unit(&r) < 0.2);
	for (int i = 0; i < d && id > 1; i++) {
		uint64_t span = gen_unit(&r) < 0.7 ? 64 : 5000;
		uint64_t off = 1 + gen_next(&r) % span;
		if (off >= id)
			off = 1 + gen_next(&r) % (id - 1);
		uint64_t src = id - off;
		int dup = 0;
		for (int k = 0; k < n->n_in; k++)
			dup |= n->in[k].src == src;
		if (dup)
			continue;
		n->in[n->n_in++] = (struct gstore_edge){
			src, id, gen_weight(&r), (uint8_t)(1 + gen_next(&r) % (GE__COUNT - 1))};
	}
	if (gen_unit(&r) < 0.3 && id > GEN_HUB) {
		uint64_t last_hub = (id - 1) / GEN_HUB * GEN_HUB + 1;
		if (last_hub >= id)
			last_hub -= GEN_HUB;
		uint64_t back = gen_next(&r) % 20;
		if (back * GEN_HUB < last_hub) {
			uint64_t hub = last_hub - back * GEN_HUB;
			int dup = 0;
			for (int k = 0; k < n->n_in; k++)
				dup |= n->in[k].src == hub;
			if (!dup)
				n->in[n->n_in++] = (struct gstore_edge){hub, id, gen_weight(&r),
									GE_MEMORY_PRESSURE_FROM};
		}
	}
}

/* The query starts: n symptoms spread over the last 90% of the ids (deterministic). */
static inline int gen_symptoms(uint64_t seed, uint64_t n_nodes, uint64_t *out, int n)
{
	int k = 0;
	uint64_t stride = (n_nodes * 9 / 10) / (uint64_t)n;
	struct gen_node g;
	for (uint64_t id = n_nodes / 10; id <= n_nodes && k < n; id += stride) {
		for (uint64_t j = id; j < id + stride && j <= n_nodes; j++) {
			gen_node_make(seed, j, &g);
			if (g.kind == GN_SYMPTOM && g.n_in > 0) {
				out[k++] = j;
				break;
			}
		}
	}
	return k;
}

#endif
