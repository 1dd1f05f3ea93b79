/*
 * gstore.h - the causal graph's storage: one LMDB environment holding nodes, adjacency lists in
 * both directions, key and time indexes, and the traversals the product answers (root cause,
 * ancestors / descendants to a depth, shortest path). The causal engine writes through a
 * gstore_wtxn (one writer thread); HTTP threads read through gstore_rtxn (MVCC snapshots that
 * never block the writer, nor each other).
 *
 * Direction: an edge always points from cause (src) to effect (dst): "src explains weight_ns of
 * dst's latency". The root-cause walk therefore follows incoming edges; ancestors are causes,
 * descendants are effects. The edge kind names the relation as the engine found it (dst
 * delayed-by src, dst preempted-by src, src sent-to dst, src child-of dst, dst contains src, ...).
 *
 * Ids are 64-bit, allocated by the writer (1, 2, 3, ...), never reused, stable for the life of
 * the store; the top 8 bits are always 0 (edges store 56-bit peers).
 *
 * Errors: 0 on success, a negative errno, or a GSTORE_E* code (gstore_strerror). After any
 * error from a write function other than -EINVAL / -ENOENT / -E2BIG (which are checked before
 * anything is written) the write transaction is failed: abort it.
 *
 * Ownership: strings inside a struct gstore_node filled by a read point into the LMDB map and
 * stay valid until the transaction that read them ends (as mdb_get's data). Results of
 * traversals (gstore_chain, gstore_subgraph, gstore_path) are plain copies owned by the caller.
 *
 * Costs (bench/graph, 1M nodes / 3M edges, this 2-vCPU VM): a root-cause walk ~3-7 us, a 6-hop
 * ancestor set of ~500 nodes ~21-33 us p50 (format 2: in edges are stored per block of 64 node
 * ids, so a BFS level reads each block once; format 1, one B-tree key per node, took ~71 us),
 * ~0.8-1M edges/s ingested with a durable commit every 10k edges. A commit costs ~3 ms of
 * fdatasync: batch thousands of writes per transaction. A write transaction holds a copy of
 * every in-block it changed (~3.5 KB per 64 nodes at 3 causes each) until it ends.
 *
 * Using it in kprobed: open once (dir = store.dataDir + "/graph", map_size = store.graphMaxMb
 * MiB); one writer thread owns every gstore_wtxn, commits once per engine window and runs
 * gstore_expire in small batches; HTTP threads each keep a gstore_rtxn and gstore_rrenew it per
 * request (a reader never waits for the writer, and the writer never waits for readers).
 */
#ifndef KP_GSTORE_H
#define KP_GSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define GSTORE_MAGIC   0x3147504bu /* "KPG1", in the meta database */
#define GSTORE_VERSION 2	   /* 2: in edges stored per block of 64 node ids (gstore.c) */

#define GSTORE_ID_MAX	   ((1ull << 56) - 1) /* ids and peers are 56-bit */
#define GSTORE_WEIGHT_MAX  ((1ull << 56) - 1) /* edge weights saturate here (~2.3 years) */
#define GSTORE_KEY_MAX	   255		      /* by_key keys, bytes */
#define GSTORE_SERVICE_MAX 127		      /* service name, bytes */
#define GSTORE_LABELS_MAX  1536		      /* packed labels, bytes */
#define GSTORE_STEPS_MAX   64		      /* root-cause walk bound (engine.rootCauseMaxSteps) */

/* Errors of this module (negative, distinct from -errno). */
enum gstore_err {
	GSTORE_EMAGIC = -6001,	 /* the directory holds an LMDB environment that is not a graph */
	GSTORE_EVERSION = -6002, /* a graph of another format version (or another LMDB) */
	GSTORE_ECORRUPT = -6003, /* a record or page that cannot be right: run gstore_check */
};
const char *gstore_strerror(int err);

enum gstore_node_kind {
	GN_SPAN = 1,   /* an OpenTelemetry span */
	GN_REQUEST,    /* a request inferred from a TCP exchange (no OTel) */
	GN_SYSCALL,    /* a slow read / write / fsync */
	GN_OFFCPU,     /* an off-CPU episode (preempted or blocked) */
	GN_RECLAIM,    /* a reclaim stall */
	GN_FAULTS,     /* a burst of page faults */
	GN_TCP,	       /* a TCP message (send or receive) */
	GN_RETRANSMIT, /* a TCP retransmit */
	GN_PROCESS,    /* a process as a culprit (batch-job PID 4721) */
	GN_SYMPTOM,    /* timeout, error return, failed span: what people see */
	GN__COUNT
};

enum gstore_edge_kind {
	GE_CHILD_OF = 1,
	GE_CONTAINS,
	GE_DELAYED_BY,
	GE_PREEMPTED_BY,
	GE_WOKEN_BY,
	GE_SENT_TO,
	GE_MEMORY_PRESSURE_FROM,
	GE_WAITED_ON,  /* dst (a client request) waited on src (the server request it called) */
	GE_SYMPTOM_OF, /* dst (a symptom) is what went wrong with src (a span, a request, a call) */
	GE__COUNT
};

/* "span", "syscall", ... / "child-of", "memory-pressure-from", ...; "?" when out of range. */
const char *gstore_node_kind_name(int kind);
const char *gstore_edge_kind_name(int kind);
/* The kind for a name (as above), or -EINVAL. */
int gstore_node_kind_parse(const char *name);
int gstore_edge_kind_parse(const char *name);

#define GN_F_ERROR 0x01 /* the node failed (error return, failed span) */

/*
 * A node. Labels are packed "key\0value\0key\0value\0" (labels_len bytes in all, each key and
 * value NUL terminated): comm, syscall, fd, path, text (a symptom's words), trace/span ids...
 * Build them with gstore_labels_add; read one with gstore_node_label.
 */
struct gstore_node {
	uint64_t id;		   /* 0 on add: the writer allocates it */
	uint8_t kind;		   /* enum gstore_node_kind */
	uint8_t flags;		   /* GN_F_* */
	uint32_t pid, tid;	   /* tgid and thread, root pid namespace; 0 when not a task */
	uint64_t host;		   /* the agent's node_id */
	uint64_t start_ns, end_ns; /* Unix epoch ns, end >= start; end is "the node's time" */
	uint64_t weight_ns;	   /* latency observed (symptom, span) or explained (cause) */
	const char *service;	   /* NUL terminated, may be "" (never NULL when read) */
	const char *labels;	   /* packed, see above; NULL when labels_len is 0 */
	uint32_t labels_len;
};

/* A label builder with a fixed buffer (no allocation). */
struct gstore_labels {
	uint32_t len;
	char buf[GSTORE_LABELS_MAX];
};
/* Appends key=value. Returns 0, or -E2BIG when it would not fit (nothing is appended). */
int gstore_labels_add(struct gstore_labels *l, const char *key, const char *value);
/* The value of key in n's labels (NUL terminated, same lifetime as n->labels), or NULL. */
const char *gstore_node_label(const struct gstore_node *n, const char *key);

struct gstore_edge {
	uint64_t src, dst;  /* cause -> effect */
	uint64_t weight_ns; /* latency explained, saturating at GSTORE_WEIGHT_MAX */
	uint8_t kind;	    /* enum gstore_edge_kind */
};

enum gstore_dir {
	GSTORE_IN = 0,	/* edges whose dst is the node (its causes) */
	GSTORE_OUT = 1, /* edges whose src is the node (its effects) */
};

/* ------------------------------------------------------------------ environment */

struct gstore;

struct gstore_opts {
	uint64_t map_size;    /* upper bound of the database, bytes (0 = 64 GiB); sparse on disk */
	unsigned max_readers; /* concurrent read transactions (0 = 126) */
	bool no_sync;	      /* commits are not flushed (tests, benchmark loads); a crash may
			       * lose the last commits but never corrupts */
	bool read_only;	      /* open for reading only (tools) */
};

/*
 * Opens (creates when missing) the graph in directory dir (created, mode 0750). Checks the
 * format magic and version. Open a directory once per process (an LMDB rule); other processes
 * (tools) may open it at the same time, read_only or not. Returns 0 and *out, or -errno /
 * GSTORE_EMAGIC / GSTORE_EVERSION with a message in err.
 */
int gstore_open(const char *dir, const struct gstore_opts *opts, struct gstore **out, char *err,
		size_t errlen);
/* Closes. No transaction may be open. */
void gstore_close(struct gstore *g);

struct gstore_stats {
	uint64_t nodes, edges, keys, symptoms; /* edges counted once (not per direction) */
	uint64_t next_id;
	uint64_t map_size, map_used; /* bytes */
	unsigned readers_used, readers_max;
};
/* Counts as of the latest commit. */
int gstore_stats(struct gstore *g, struct gstore_stats *st);

/* ------------------------------------------------------------------ writing (one thread) */

struct gstore_wtxn;

/*
 * Begins the write transaction. One at a time per environment: a second gstore_wbegin (another
 * thread or process) waits until the first commits or aborts; the same thread must not begin a
 * second one while it holds the first (it would wait for itself).
 */
int gstore_wbegin(struct gstore *g, struct gstore_wtxn **out);
/* Commits (durable unless opts.no_sync) and frees w, whatever the result. */
int gstore_wcommit(struct gstore_wtxn *w);
/* Discards everything written in w and frees it. */
void gstore_wabort(struct gstore_wtxn *w);

/*
 * Adds a node; n->id is ignored, the new id is returned in *id. -EINVAL for a bad kind or
 * end_ns < start_ns, -E2BIG for a service or labels over their bounds.
 */
int gstore_node_add(struct gstore_wtxn *w, const struct gstore_node *n, uint64_t *id);
/* Replaces node n->id (edges and keys stay). -ENOENT when it does not exist. */
int gstore_node_update(struct gstore_wtxn *w, const struct gstore_node *n);
/*
 * Deletes a node with its edges (both directions, both ends) and its keys. -ENOENT when it does
 * not exist.
 */
int gstore_node_del(struct gstore_wtxn *w, uint64_t id);

/*
 * Adds the edge (src, dst, kind, weight). Both nodes must exist (-ENOENT), src != dst (-EINVAL).
 * An edge is the whole tuple: adding the same tuple again is a no-op (returns 1, else 0); the same
 * (src, dst, kind) with another weight is another edge.
 */
int gstore_edge_add(struct gstore_wtxn *w, const struct gstore_edge *e);
/* Deletes exactly that tuple. -ENOENT when absent. */
int gstore_edge_del(struct gstore_wtxn *w, const struct gstore_edge *e);

/* Maps key (1..GSTORE_KEY_MAX bytes) to node id (which must exist). Idempotent (returns 1). */
int gstore_key_add(struct gstore_wtxn *w, const void *key, size_t len, uint64_t id);

/*
 * Retention: deletes up to max_nodes nodes whose end_ns < cutoff_ns (oldest first), with their
 * edges and keys. *deleted gets the count. Returns 1 when more old nodes remain (call again,
 * ideally in the next transaction to keep commits small), 0 when none, or an error.
 */
int gstore_expire(struct gstore_wtxn *w, uint64_t cutoff_ns, unsigned max_nodes, unsigned *deleted);

/* ------------------------------------------------------------------ reading (any thread) */

struct gstore_rtxn;

/*
 * Begins a read-only snapshot. It sees every commit made before it began and nothing after.
 * Keep it short: while it lives, pages it sees cannot be reused by the writer (the file grows).
 * -EAGAIN when all max_readers slots are taken.
 */
int gstore_rbegin(struct gstore *g, struct gstore_rtxn **out);
/* Ends the snapshot and frees r. */
void gstore_rend(struct gstore_rtxn *r);
/*
 * Moves r to a fresh snapshot of the latest commit, keeping its reader slot and cursors
 * (cheaper than rend + rbegin: a request loop renews one handle per request).
 */
int gstore_rrenew(struct gstore_rtxn *r);
/*
 * A read handle on the writer's own transaction (it sees what w wrote so far). Valid until w
 * commits or aborts; do not rend it. Do not interleave its iterators with writes.
 */
struct gstore_rtxn *gstore_wtxn_reader(struct gstore_wtxn *w);

/* Reads node id into *n (strings point into the map, see the top). -ENOENT when absent. */
int gstore_node_get(struct gstore_rtxn *r, uint64_t id, struct gstore_node *n);

/*
 * Edge iteration, zero-copy over LMDB's pages. For one node and direction, edges come heaviest
 * first; equal weights: the newest peer (highest id) first; then by kind. The iterator borrows the
 * read handle's cursor for that direction: another iteration in the same direction, or a
 * traversal, on the same handle ends it.
 */
struct gstore_iter { /* private: fill with gstore_edges_first */
	struct gstore_rtxn *r;
	const uint8_t *p, *end;
	uint64_t id;
	int dir, state;
};
/* Positions it on node id's edges in direction dir. 0 (also when there are none) or an error. */
int gstore_edges_first(struct gstore_rtxn *r, uint64_t id, enum gstore_dir dir,
		       struct gstore_iter *it);
/* 1 with the next edge in *e, 0 at the end, or an error. */
int gstore_edges_next(struct gstore_iter *it, struct gstore_edge *e);
/* Number of edges of node id in direction dir. */
int gstore_degree(struct gstore_rtxn *r, uint64_t id, enum gstore_dir dir, uint64_t *n);

/*
 * Node ids mapped to key, ascending, into ids[0..cap); *n gets the total (may exceed cap).
 * 0 also when the key is unknown (*n = 0).
 */
int gstore_key_lookup(struct gstore_rtxn *r, const void *key, size_t len, uint64_t *ids, size_t cap,
		      size_t *n);
/*
 * The node a query "OF 'key'" starts from: among the first 4096 nodes of key, the symptom with
 * the latest end_ns, else the node with the largest weight_ns; ties go to the highest id. Also
 * accepts "#<decimal id>" for a node id. -ENOENT when nothing matches.
 */
int gstore_key_resolve(struct gstore_rtxn *r, const char *key, uint64_t *id);

/* A symptom in the time index. */
struct gstore_incident {
	uint64_t time_ns; /* the symptom's end_ns */
	uint64_t id;
};
/*
 * Symptoms with from_ns <= time <= to_ns, newest first (ties: highest id first), at most cap in
 * out; *n gets how many were written. For the next page pass the last one as after (else NULL).
 */
int gstore_incidents(struct gstore_rtxn *r, uint64_t from_ns, uint64_t to_ns,
		     const struct gstore_incident *after, struct gstore_incident *out, size_t cap,
		     size_t *n);

/*
 * Scans for FROM nodes / FROM edges. Nodes: by id from start_id upward; or by time (end_ns in
 * [from_ns, to_ns], oldest first). Edges: by src from start_src, each src's edges heaviest first.
 * A scan borrows the handle's cursors like an iterator (one scan per handle at a time, and no
 * traversal in between).
 */
struct gstore_scan { /* private */
	struct gstore_rtxn *r;
	uint64_t a, b;
	int mode, state;
	struct gstore_iter it;
};
int gstore_scan_nodes(struct gstore_rtxn *r, uint64_t start_id, struct gstore_scan *s);
int gstore_scan_nodes_by_time(struct gstore_rtxn *r, uint64_t from_ns, uint64_t to_ns,
			      struct gstore_scan *s);
/* 1 with the next node, 0 at the end, or an error. */
int gstore_scan_node_next(struct gstore_scan *s, struct gstore_node *n);
int gstore_scan_edges(struct gstore_rtxn *r, uint64_t start_src, struct gstore_scan *s);
int gstore_scan_edge_next(struct gstore_scan *s, struct gstore_edge *e);

/* ------------------------------------------------------------------ traversals */

enum gstore_stop {
	GSTORE_STOP_LEAF = 1, /* a node with no incoming edge: the root cause */
	GSTORE_STOP_CYCLE,    /* every incoming edge leads back into the chain */
	GSTORE_STOP_STEPS,    /* max_steps reached */
};
const char *gstore_stop_name(int stop);

/* One node of a chain, copied out of the store. */
struct gstore_step {
	uint64_t id;
	uint8_t kind;	   /* node kind */
	uint8_t edge_kind; /* kind of the edge from this node to the previous step (0 at 0) */
	uint8_t flags;
	uint32_t pid, tid;
	uint64_t host, start_ns, end_ns, weight_ns;
	uint64_t latency_ns; /* the edge's weight (step 0: the symptom's weight_ns) */
	double share;	     /* latency_ns / the symptom's latency, clamped to [0, 1] */
	char comm[32];	     /* label "comm", "" when absent */
	char service[GSTORE_SERVICE_MAX + 1];
	char text[128]; /* label "text" (a symptom's words, a span's name), cut to fit */
};

/*
 * Root cause: from node `from`, repeatedly take the incoming edge that explains the most latency
 * (ties: the newest cause, i.e. the highest id; then the lower kind), skipping edges that lead back
 * into the chain and never following an edge of weight 0 (it explains nothing), for at most
 * max_steps (1..GSTORE_STEPS_MAX) edges. steps[0] is the start; the
 * last step is the root cause. The symptom's latency is its weight_ns, or when 0 the first edge's
 * weight.
 */
struct gstore_chain {
	int n;	  /* steps used (1 + edges followed) */
	int stop; /* enum gstore_stop */
	uint64_t symptom_latency_ns;
	struct gstore_step steps[GSTORE_STEPS_MAX + 1];
};
int gstore_rootcause(struct gstore_rtxn *r, uint64_t from, int max_steps, struct gstore_chain *c);

/*
 * A bounded breadth-first traversal: ancestors (dir GSTORE_IN: causes) or descendants (GSTORE_OUT:
 * effects) of `from` within `depth` hops. nodes[0] is `from` at depth 0; the others are in BFS
 * order, each at its smallest hop count. With GSTORE_SG_EDGES, edges holds every edge followed
 * between two nodes of the result. At most max_nodes nodes (0 = 100000) and 4 * max_nodes edges
 * are kept; past either the traversal stops and truncated is set. A subgraph is reusable
 * (capacity is kept across calls);
 * start it zeroed, free it with gstore_subgraph_free.
 */
#define GSTORE_SG_EDGES 0x1
struct gstore_subgraph {
	uint64_t *nodes;
	uint8_t *depth;
	size_t n_nodes, cap_nodes;
	struct gstore_edge *edges;
	size_t n_edges, cap_edges;
	bool truncated;
	void *visited; /* private: the hash set, kept for reuse */
};
int gstore_traverse(struct gstore_rtxn *r, uint64_t from, enum gstore_dir dir, int depth,
		    size_t max_nodes, unsigned flags, struct gstore_subgraph *sg);
void gstore_subgraph_free(struct gstore_subgraph *sg);

/*
 * Shortest path by hops from a to b following edge direction (a causes ... causes b), at most
 * max_hops (1..64) edges and max_nodes visited (0 = 100000). Bidirectional BFS (forward from a,
 * backward from b, expanding the smaller frontier); among equally short paths the one found first
 * in adjacency order (heavier edges first) wins, which is deterministic. Returns 0 with the path
 * (n_nodes = hops + 1, edges[i] goes from nodes[i] to nodes[i+1]), -ENOENT when there is none
 * within the bounds, -ENOENT also when a or b does not exist.
 */
struct gstore_path {
	int n_nodes;
	uint64_t nodes[65];
	struct gstore_edge edges[64];
	bool truncated; /* max_nodes was reached before an answer */
};
int gstore_path(struct gstore_rtxn *r, uint64_t a, uint64_t b, int max_hops, size_t max_nodes,
		struct gstore_path *p);

/* ------------------------------------------------------------------ JSON */

/*
 * {"id":..,"kind":"syscall","flags":..,"pid":..,"tid":..,"host":..,"service":"..",
 *  "start_ns":..,"end_ns":..,"weight_ns":..,"labels":{"comm":"..",..}}
 */
void gstore_json_node(struct kp_buf *b, const struct gstore_node *n);
/*
 * The root-cause contract (key may be NULL -> null):
 * {"key":"req-9f21","symptom":{"id":..,"kind":"symptom","pid":..,"comm":"..","service":"..",
 *   "text":"..","latency_ns":..,"start_ns":..,"end_ns":..},
 *  "chain":[{"id":..,"kind":"reclaim","edge":"memory-pressure-from","pid":..,"tid":..,
 *   "comm":"..","service":"..","text":"..","latency_ns":..,"share":0.97,"start_ns":..,
 *   "end_ns":..},..],
 *  "root_cause":{same as the last chain element} or null,"stop":"leaf"|"cycle"|"max-steps"}
 * chain holds the steps after the symptom (steps[1..n)).
 */
void gstore_json_chain(struct kp_buf *b, const char *key, const struct gstore_chain *c);
/*
 * {"key":..,"root":id,"direction":"ancestors"|"descendants","truncated":false,
 *  "nodes":[{node as gstore_json_node, plus "depth"}..],
 *  "edges":[{"src":..,"dst":..,"kind":"..","weight_ns":..}..]}
 * Node records are read through r (a node deleted since the traversal is written as
 * {"id":..,"missing":true}). Returns 0 or an error from the reads.
 */
int gstore_json_subgraph(struct kp_buf *b, struct gstore_rtxn *r, const char *key,
			 enum gstore_dir dir, const struct gstore_subgraph *sg);
/*
 * {"incidents":[{node as gstore_json_node, plus "time_ns"},..],"next":{"time_ns":..,"id":..}}
 * for n incidents from gstore_incidents; "next" (the `after` of the next page) is null when
 * n < cap_asked. Symptoms deleted since are written as {"id":..,"missing":true}.
 */
int gstore_json_incidents(struct kp_buf *b, struct gstore_rtxn *r,
			  const struct gstore_incident *inc, size_t n, size_t cap_asked);
/* {"nodes":[..],"edges":[..]} for a path. */
int gstore_json_path(struct kp_buf *b, struct gstore_rtxn *r, const struct gstore_path *p);

/* ------------------------------------------------------------------ checking */

/*
 * Walks the whole store and checks every invariant: each out item has its in mirror and back,
 * both ends of every edge exist, every node is in the age index (and symptoms in by_time) and
 * nothing else is, every key maps to existing nodes and back, no id is >= next_id, records decode.
 * Returns 0 when consistent, else GSTORE_ECORRUPT with the first problem in msg.
 */
int gstore_check(struct gstore *g, char *msg, size_t msglen);

#endif
