/*
 * synthgraph.c - writes a large layered causal graph under one key into a kprobe data
 * directory's graph store (DIR/graph, the real LMDB format through graph/gstore.h), so the
 * dashboard's graph view can be measured on 2,000 nodes (tests/e2e) without staging an incident
 * that large.
 *
 *   synthgraph --data DIR [--nodes N] [--key KEY] [--seed X] [--time NS]
 *
 * Shape (symptom on top, kernel causes at the bottom; every edge points cause -> effect, as the
 * engine writes them, and every node reaches the symptom, so an ancestors traversal of the key
 * finds them all):
 *
 *   layer 0  symptom      1      "TIMEOUT: 750 ms exceeded"
 *   layer 1  span         ~0.5%  child-of
 *   layer 2  request      ~2%    waited-on
 *   layer 3  syscall      ~8%    delayed-by
 *   layer 4  tcp          ~15%   sent-to
 *   layer 5  offcpu       ~25%   preempted-by
 *   layer 6  reclaim      ~25%   memory-pressure-from
 *   layer 7  process      rest   (culprits)
 *
 * Each node below layer 0 explains part of one to three nodes in the layer above (weights
 * shrink with depth). Run it while no kprobed uses DIR. Prints the key and the counts.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "graph/gstore.h"

static uint64_t rng_state;
static uint64_t rnd(void)
{
	/* splitmix64: deterministic for a seed */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: synthgraph --data DIR [--nodes N] [--key KEY] [--seed X] [--time NS]\n"
		"\n"
		"Writes a layered causal graph of N nodes (default 2000) under KEY (default\n"
		"synth-2000) into DIR/graph. TIME is the symptom's end, epoch ns (default: one\n"
		"hour ago). Run it while no kprobed uses DIR.\n");
}

static const struct {
	int kind, edge;
	double share; /* of the nodes */
	const char *what;
} layers[] = {
	{GN_SYMPTOM, 0, 0, "TIMEOUT: 750 ms exceeded"},
	{GN_SPAN, GE_CHILD_OF, 0.005, "POST /pay"},
	{GN_REQUEST, GE_WAITED_ON, 0.02, "request to settlement-svc"},
	{GN_SYSCALL, GE_DELAYED_BY, 0.08, "ledger write"},
	{GN_TCP, GE_SENT_TO, 0.15, "sent 1432 bytes"},
	{GN_OFFCPU, GE_PREEMPTED_BY, 0.25, "KERNEL: preemption by batch-job"},
	{GN_RECLAIM, GE_MEMORY_PRESSURE_FROM, 0.25, "KERNEL: memory pressure (reclaim)"},
	{GN_PROCESS, GE_MEMORY_PRESSURE_FROM, 0, "batch-job"},
};
#define NLAYERS ((int)KP_ARRAY_SIZE(layers))

int main(int argc, char **argv)
{
	const char *data = NULL, *key = "synth-2000";
	long nodes = 2000;
	uint64_t seed = 42, t_end = 0;
	static const struct option opts[] = {{"data", required_argument, 0, 'd'},
					     {"nodes", required_argument, 0, 'n'},
					     {"key", required_argument, 0, 'k'},
					     {"seed", required_argument, 0, 's'},
					     {"time", required_argument, 0, 't'},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			data = optarg;
			break;
		case 'n':
			nodes = strtol(optarg, NULL, 10);
			break;
		case 'k':
			key = optarg;
			break;
		case 's':
			seed = strtoull(optarg, NULL, 10);
			break;
		case 't':
			t_end = strtoull(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!data || nodes < NLAYERS || nodes > 1000000 || strlen(key) > GSTORE_KEY_MAX) {
		usage(stderr);
		return 2;
	}
	rng_state = seed;
	if (!t_end)
		t_end = now_real_ns() - 3600ull * NSEC_PER_SEC;

	/* Layer sizes: the shares, the remainder to the culprits (at least one each). */
	long size[NLAYERS], left = nodes - 1;
	size[0] = 1;
	for (int l = 1; l < NLAYERS - 1; l++) {
		size[l] = KP_MAX(1, (long)(layers[l].share * (double)nodes));
		left -= size[l];
	}
	size[NLAYERS - 1] = KP_MAX(1, left);

	char gdir[1024], err[256];
	snprintf(gdir, sizeof(gdir), "%s/graph", data);
	struct gstore *g;
	struct gstore_opts go = {.no_sync = false};
	int rc = gstore_open(gdir, &go, &g, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "synthgraph: %s\n", err);
		return 1;
	}
	struct gstore_wtxn *w;
	if ((rc = gstore_wbegin(g, &w)) < 0)
		goto fail;

	uint64_t *ids[NLAYERS];
	uint64_t *weight[NLAYERS];
	long total = 0, edges = 0;
	const uint64_t sym_ns = 812 * NSEC_PER_MSEC;
	uint64_t host = 0x5eed0000ull + seed;
	for (int l = 0; l < NLAYERS; l++) {
		ids[l] = xcalloc((size_t)size[l], sizeof(uint64_t));
		weight[l] = xcalloc((size_t)size[l], sizeof(uint64_t));
		for (long i = 0; i < size[l]; i++) {
			/* weights shrink with depth and spread within a layer */
			uint64_t wmax = l == 0 ? sym_ns : weight[l - 1][0];
			uint64_t wt = l == 0 ? sym_ns
					     : wmax / 4 + rnd() % KP_MAX(1, wmax / 2 + 1) +
						       (i == 0 ? wmax / 2 : 0);
			if (l > 0 && i == 0)
				wt = wmax * 9 / 10; /* a clear heaviest chain */
			weight[l][i] = wt;
			struct gstore_labels lb = {0};
			char text[128], buf[32];
			uint32_t pid = 2000 + (uint32_t)(rnd() % 6000);
			const char *comm = l == NLAYERS - 1 ? "batch-job"
					   : l <= 3	    ? "settlement"
							    : "worker";
			gstore_labels_add(&lb, "comm", comm);
			if (l == NLAYERS - 1)
				snprintf(text, sizeof(text), "batch-job");
			else if (l == 0)
				snprintf(text, sizeof(text), "%s", layers[l].what);
			else
				snprintf(text, sizeof(text), "%s #%ld", layers[l].what, i);
			gstore_labels_add(&lb, "text", text);
			if (l == 0)
				gstore_labels_add(&lb, "key", key);
			if (layers[l].kind == GN_OFFCPU || layers[l].kind == GN_RECLAIM) {
				gstore_labels_add(&lb, "mechanism",
						  layers[l].kind == GN_OFFCPU ? "preemption"
									      : "reclaim");
				snprintf(buf, sizeof(buf), "%u", 4000 + (unsigned)(rnd() % 1000));
				gstore_labels_add(&lb, "culprit_pid", buf);
			}
			uint64_t start = t_end - sym_ns + (uint64_t)l * 1000 + rnd() % (sym_ns / 2);
			struct gstore_node n = {.kind = (uint8_t)layers[l].kind,
						.flags = l == 0 ? GN_F_ERROR : 0,
						.pid = pid,
						.tid = pid + (uint32_t)(rnd() % 8),
						.host = host,
						.start_ns = l == 0 ? t_end - sym_ns : start,
						.end_ns = l == 0 ? t_end : start + wt,
						.weight_ns = wt,
						.service = l <= 1   ? "payment-handler"
							   : l <= 4 ? "settlement-svc"
								    : "",
						.labels = lb.buf,
						.labels_len = lb.len};
			if ((rc = gstore_node_add(w, &n, &ids[l][i])) < 0)
				goto abort;
			total++;
			if (l == 0) {
				if ((rc = gstore_key_add(w, key, strlen(key), ids[0][0])) < 0)
					goto abort;
				continue;
			}
			/* one to three effects in the layer above; node 0 always feeds node 0 */
			int k = 1 + (int)(rnd() % 3);
			for (int j = 0; j < k; j++) {
				long dst = i == 0 && j == 0 ? 0
							    : (long)(rnd() % (uint64_t)size[l - 1]);
				struct gstore_edge e = {.src = ids[l][i],
							.dst = ids[l - 1][dst],
							.weight_ns = KP_MIN(wt, weight[l - 1][dst]),
							.kind = (uint8_t)layers[l].edge};
				rc = gstore_edge_add(w, &e);
				if (rc < 0)
					goto abort;
				edges += rc == 0;
			}
		}
	}
	if ((rc = gstore_wcommit(w)) < 0)
		goto fail;
	for (int l = 0; l < NLAYERS; l++) {
		free(ids[l]);
		free(weight[l]);
	}
	gstore_close(g);
	printf("key %s\nnodes %ld\nedges %ld\nlayers %d\n", key, total, edges, NLAYERS);
	return 0;
abort:
	gstore_wabort(w);
fail:
	fprintf(stderr, "synthgraph: %s\n", gstore_strerror(rc));
	gstore_close(g);
	return 1;
}
