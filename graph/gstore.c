/*
 * gstore.c - the causal graph on LMDB: the databases and their encodings, the writer (nodes,
 * edges, keys, retention), the readers (records, zero-copy adjacency with MDB_GET_MULTIPLE, key
 * and time indexes, scans), the traversals (root cause, bounded BFS, bidirectional shortest path),
 * their JSON, and a checker that walks everything. The contract is gstore.h.
 *
 * Every ordering question is answered by how keys and duplicate items are encoded, so LMDB's
 * B-tree order does the work: big-endian ids make id order = key order (and node ids only grow,
 * so node inserts append), and adjacency items start with the inverted weight so the first
 * duplicate under a node is its heaviest edge (the root-cause walk reads one item per step).
 */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "graph/gstore.h"

/* ================================================================== databases and encodings */

/*
 * One environment, eight named databases (format version 2; version 1 kept the in direction as
 * per-node duplicate lists in a database named "in" and is refused on open):
 *
 *   meta       "format"  -> magic u32 | version u32        (little-endian, checked on open)
 *              "next_id" -> u64 (little-endian): the next id the writer will hand out
 *   nodes      id (8 B, big-endian) -> node record (below)
 *   out        src id (8 B BE) -> sorted 16 B items (DUPSORT|DUPFIXED), one per edge
 *   in_blk     dst id >> 6 (8 B BE) -> one in-block (below): the in items of 64 consecutive ids
 *   by_key     key bytes (1..255) -> node id (8 B BE) (DUPSORT|DUPFIXED)
 *   node_keys  id (8 B BE) -> key bytes (DUPSORT): what retention must unmap
 *   by_time    end_ns (8 B BE) | id (8 B BE) -> empty: symptoms only, for incident lists
 *   age        end_ns (8 B BE) | id (8 B BE) -> empty: every node, for retention and time scans
 *
 * Adjacency item (memcmp order = LMDB's default for duplicates):
 *
 *    0               7               14   15   16
 *   +---------------+---------------+----+----+
 *   | ~weight  (56) |  ~peer   (56) |kind|flag|      both fields big-endian, bit-inverted
 *   +---------------+---------------+----+----+
 *
 * so a node's items come heaviest first, equal weights newest peer (highest id) first, then by
 * kind. The weight saturates at 2^56-1 ns (2.3 years); ids stay below 2^56.
 *
 * In-block (the value under key b in in_blk; node b*64+j is slot j):
 *
 *    0        4        8              256      260
 *   +--------+--------+-----   -----+--------+--------+--------+-----
 *   | off[0] | off[1] |     ...     | off[63]| off[64]| item 0 | item 1 ...   (16 B each)
 *   +--------+--------+-----   -----+--------+--------+--------+-----
 *
 * off[] are u32 little-endian item indexes: slot j's items are items[off[j] .. off[j+1]), sorted
 * as above (no duplicates); off[0] = 0, off[64] = the item count, the value is 260 + 16 * count
 * bytes; a block with no items is not stored. Why blocks: an ancestor walk touches a few hundred
 * nodes whose ids are close (causes are recent), and with one B-tree key per node those lookups
 * land on ~80 distinct leaf pages of a table too large to stay in cache; with one key per 64
 * nodes the values live in overflow pages and the tree's ~100 leaf pages stay hot, and a BFS
 * level reads each block once. The writer keeps the blocks it changes in memory for the whole
 * transaction (reads through the write transaction see them) and writes each once at commit.
 * The out direction stays per node: the walks that matter (root cause, ancestors) go inward.
 */
enum { DB_META, DB_NODES, DB_OUT, DB_IN, DB_BYKEY, DB_NODEKEYS, DB_BYTIME, DB_AGE, DB__N };

static const struct {
	const char *name;
	unsigned flags;
} db_def[DB__N] = {
	[DB_META] = {"meta", 0},
	[DB_NODES] = {"nodes", 0},
	[DB_OUT] = {"out", MDB_DUPSORT | MDB_DUPFIXED},
	[DB_IN] = {"in_blk", 0},
	[DB_BYKEY] = {"by_key", MDB_DUPSORT | MDB_DUPFIXED},
	[DB_NODEKEYS] = {"node_keys", MDB_DUPSORT},
	[DB_BYTIME] = {"by_time", 0},
	[DB_AGE] = {"age", 0},
};

#define BLK_SHIFT 6
#define BLK_NODES (1u << BLK_SHIFT)
#define BLK_HDR	  ((BLK_NODES + 1) * 4)

#define ITEM_LEN 16

static inline void put_be64(uint8_t *p, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(p, &v, 8);
}

static inline uint64_t get_be64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return __builtin_bswap64(v);
}

static inline void put_be56(uint8_t *p, uint64_t v)
{
	for (int i = 6; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline void item_encode(uint8_t *it, uint64_t weight, uint64_t peer, uint8_t kind)
{
	if (weight > GSTORE_WEIGHT_MAX)
		weight = GSTORE_WEIGHT_MAX;
	put_be56(it, GSTORE_WEIGHT_MAX - weight);
	put_be56(it + 7, GSTORE_ID_MAX - peer);
	it[14] = kind;
	it[15] = 0;
}

/* Decoders read one 8-byte word each (items are 16 bytes, so both reads stay inside). */
static inline uint64_t item_weight(const uint8_t *it)
{
	return GSTORE_WEIGHT_MAX - (get_be64(it) >> 8);
}

static inline uint64_t item_peer(const uint8_t *it)
{
	return GSTORE_ID_MAX - (get_be64(it + 7) >> 8);
}

/*
 * Node record (native little-endian: values are never compared by LMDB):
 *
 *    0    1    2    3    4        8        12       14       16
 *   +----+----+----+----+--------+--------+--------+--------+
 *   |ver |kind|flag| 0  |  pid   |  tid   |svc_len |lab_len |
 *   +----+----+----+----+--------+--------+--------+--------+
 *   16 host u64 | 24 start_ns u64 | 32 end_ns u64 | 40 weight_ns u64
 *   48 service (svc_len bytes, NUL terminated, svc_len >= 1)
 *      labels  (lab_len bytes: "k\0v\0k\0v\0")
 */
#define REC_VERSION 1
#define REC_HDR	    48
#define REC_MAX	    (REC_HDR + GSTORE_SERVICE_MAX + 1 + GSTORE_LABELS_MAX)

static int rec_encode(const struct gstore_node *n, uint8_t *rec, size_t *len)
{
	const char *svc = n->service ? n->service : "";
	size_t slen = strlen(svc) + 1;
	if (n->kind < 1 || n->kind >= GN__COUNT || n->end_ns < n->start_ns)
		return -EINVAL;
	if (slen > GSTORE_SERVICE_MAX + 1 || n->labels_len > GSTORE_LABELS_MAX)
		return -E2BIG;
	if (n->labels_len && (!n->labels || n->labels[n->labels_len - 1] != '\0'))
		return -EINVAL;
	uint16_t sl = (uint16_t)slen, ll = (uint16_t)n->labels_len;
	rec[0] = REC_VERSION;
	rec[1] = n->kind;
	rec[2] = n->flags;
	rec[3] = 0;
	memcpy(rec + 4, &n->pid, 4);
	memcpy(rec + 8, &n->tid, 4);
	memcpy(rec + 12, &sl, 2);
	memcpy(rec + 14, &ll, 2);
	memcpy(rec + 16, &n->host, 8);
	memcpy(rec + 24, &n->start_ns, 8);
	memcpy(rec + 32, &n->end_ns, 8);
	memcpy(rec + 40, &n->weight_ns, 8);
	memcpy(rec + REC_HDR, svc, slen);
	if (ll)
		memcpy(rec + REC_HDR + slen, n->labels, ll);
	*len = REC_HDR + slen + ll;
	return 0;
}

static int rec_decode(uint64_t id, const MDB_val *v, struct gstore_node *n)
{
	const uint8_t *rec = v->mv_data;
	uint16_t sl, ll;
	if (v->mv_size < REC_HDR + 1 || rec[0] != REC_VERSION)
		return GSTORE_ECORRUPT;
	memcpy(&sl, rec + 12, 2);
	memcpy(&ll, rec + 14, 2);
	if (sl < 1 || v->mv_size != (size_t)REC_HDR + sl + ll || rec[REC_HDR + sl - 1] != '\0' ||
	    (ll && rec[REC_HDR + sl + ll - 1] != '\0'))
		return GSTORE_ECORRUPT;
	n->id = id;
	n->kind = rec[1];
	n->flags = rec[2];
	memcpy(&n->pid, rec + 4, 4);
	memcpy(&n->tid, rec + 8, 4);
	memcpy(&n->host, rec + 16, 8);
	memcpy(&n->start_ns, rec + 24, 8);
	memcpy(&n->end_ns, rec + 32, 8);
	memcpy(&n->weight_ns, rec + 40, 8);
	n->service = (const char *)rec + REC_HDR;
	n->labels = ll ? (const char *)rec + REC_HDR + sl : NULL;
	n->labels_len = ll;
	return 0;
}

/* ================================================================== errors and names */

static int merr(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
	case MDB_DBS_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
	case MDB_MAP_RESIZED:
		return -EAGAIN;
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
		return -ENOBUFS;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_PAGE_FULL:
		return GSTORE_ECORRUPT;
	case MDB_VERSION_MISMATCH:
		return GSTORE_EVERSION;
	case MDB_INVALID:
		return GSTORE_EMAGIC;
	case MDB_BAD_TXN:
	case MDB_BAD_VALSIZE:
	case MDB_BAD_DBI:
	case MDB_INCOMPATIBLE:
		return -EINVAL;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

const char *gstore_strerror(int err)
{
	switch (err) {
	case GSTORE_EMAGIC:
		return "not a kprobe graph (wrong magic): point store.dataDir elsewhere";
	case GSTORE_EVERSION:
		return "graph format version not supported by this kprobed: stop kprobed and move "
		       "the graph directory aside (a new graph starts empty)";
	case GSTORE_ECORRUPT:
		return "graph store is corrupt: stop kprobed and move the graph directory away "
		       "(recorded events are kept; a new graph starts empty)";
	case -ENOSPC:
		return "graph map is full: raise store.graphMaxMb or shorten retention";
	case -ENOBUFS:
		return "write transaction too large: commit smaller batches";
	case -EAGAIN:
		return "all graph reader slots in use: retry, or raise max_readers";
	default:
		return strerror(err < 0 ? -err : err);
	}
}

static const char *const node_kind_names[GN__COUNT] = {
	[GN_SPAN] = "span",	  [GN_REQUEST] = "request",	  [GN_SYSCALL] = "syscall",
	[GN_OFFCPU] = "offcpu",	  [GN_RECLAIM] = "reclaim",	  [GN_FAULTS] = "faults",
	[GN_TCP] = "tcp",	  [GN_RETRANSMIT] = "retransmit", [GN_PROCESS] = "process",
	[GN_SYMPTOM] = "symptom",
};
static const char *const edge_kind_names[GE__COUNT] = {
	[GE_CHILD_OF] = "child-of",
	[GE_CONTAINS] = "contains",
	[GE_DELAYED_BY] = "delayed-by",
	[GE_PREEMPTED_BY] = "preempted-by",
	[GE_WOKEN_BY] = "woken-by",
	[GE_SENT_TO] = "sent-to",
	[GE_MEMORY_PRESSURE_FROM] = "memory-pressure-from",
	[GE_WAITED_ON] = "waited-on",	[GE_SYMPTOM_OF] = "symptom-of",
};

const char *gstore_node_kind_name(int kind)
{
	return kind > 0 && kind < GN__COUNT ? node_kind_names[kind] : "?";
}

const char *gstore_edge_kind_name(int kind)
{
	return kind > 0 && kind < GE__COUNT ? edge_kind_names[kind] : "?";
}

int gstore_node_kind_parse(const char *name)
{
	for (int i = 1; i < GN__COUNT; i++)
		if (strcmp(name, node_kind_names[i]) == 0)
			return i;
	return -EINVAL;
}

int gstore_edge_kind_parse(const char *name)
{
	for (int i = 1; i < GE__COUNT; i++)
		if (strcmp(name, edge_kind_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *gstore_stop_name(int stop)
{
	switch (stop) {
	case GSTORE_STOP_LEAF:
		return "leaf";
	case GSTORE_STOP_CYCLE:
		return "cycle";
	case GSTORE_STOP_STEPS:
		return "max-steps";
	default:
		return "?";
	}
}

/* ================================================================== labels */

int gstore_labels_add(struct gstore_labels *l, const char *key, const char *value)
{
	size_t kl = strlen(key), vl = strlen(value);
	if (kl == 0)
		return -EINVAL;
	if (l->len + kl + vl + 2 > sizeof(l->buf))
		return -E2BIG;
	memcpy(l->buf + l->len, key, kl + 1);
	memcpy(l->buf + l->len + kl + 1, value, vl + 1);
	l->len += (uint32_t)(kl + vl + 2);
	return 0;
}

const char *gstore_node_label(const struct gstore_node *n, const char *key)
{
	const char *p = n->labels, *end = n->labels ? n->labels + n->labels_len : NULL;
	while (p && p < end) {
		const char *k = p;
		const char *v = memchr(k, '\0', (size_t)(end - k));
		if (!v || ++v >= end)
			return NULL;
		const char *next = memchr(v, '\0', (size_t)(end - v));
		if (!next)
			return NULL;
		if (strcmp(k, key) == 0)
			return v;
		p = next + 1;
	}
	return NULL;
}

/* ================================================================== environment */

struct gstore {
	MDB_env *env;
	MDB_dbi dbi[DB__N];
	bool read_only;
};

struct gstore_rtxn {
	struct gstore *g;
	MDB_txn *txn;
	MDB_cursor *cur[DB__N]; /* opened on first use, renewed with the transaction */
	bool view;		/* borrowed from a write transaction */
	struct gstore_wtxn *w;	/* the view's writer: its dirty in-blocks come first */
};

/*
 * An in-block the writer changed in this transaction: the whole value (layout above) in a
 * growable buffer. The map is open addressing over block ids; a slot is used when buf != NULL.
 */
struct dblk {
	uint64_t blk;
	uint8_t *buf;
	size_t len, cap;
};
struct dmap {
	struct dblk *s;
	size_t cap, n; /* cap: power of two */
};

struct gstore_wtxn {
	struct gstore *g;
	MDB_txn *txn;
	uint64_t next_id, next_id0;
	bool deleted; /* a node was deleted in this transaction */
	MDB_cursor
		*wc[DB__N]; /* write cursors, kept so that puts near the last one skip descents */
	struct gstore_rtxn view;
	uint8_t *scratch; /* node_del copies adjacency here */
	size_t scratch_cap;
	struct dmap dirty; /* in-blocks changed in this transaction, written at commit */
};

/*
 * Comparators. They order exactly as memcmp does on these fixed-size big-endian encodings (so
 * the files stay readable, in the same order, by mdb_dump / mdb_load), but compare 64-bit words
 * instead of calling memcmp: key and duplicate comparisons were the largest single cost of
 * loading (perf: ~12% in memcmp).
 */
static int cmp_mem(const MDB_val *a, const MDB_val *b)
{
	int c = memcmp(a->mv_data, b->mv_data, KP_MIN(a->mv_size, b->mv_size));
	return c ? c : (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

/* 8-byte keys (ids) and 8-byte duplicates (by_key ids). */
static int cmp_be8(const MDB_val *a, const MDB_val *b)
{
	if (KP_UNLIKELY((a->mv_size | b->mv_size) != 8))
		return cmp_mem(a, b); /* defensive: no such keys are ever written */
	uint64_t u = get_be64(a->mv_data), v = get_be64(b->mv_data);
	return (u > v) - (u < v);
}

/* 16-byte keys (time | id) and adjacency items. */
static int cmp_be16(const MDB_val *a, const MDB_val *b)
{
	if (KP_UNLIKELY(a->mv_size != 16 || b->mv_size != 16))
		return cmp_mem(a, b);
	const uint8_t *x = a->mv_data, *y = b->mv_data;
	uint64_t u = get_be64(x), v = get_be64(y);
	if (u == v) {
		u = get_be64(x + 8);
		v = get_be64(y + 8);
	}
	return (u > v) - (u < v);
}

static const uint8_t META_FORMAT[] = "format", META_NEXT[] = "next_id";

static int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, uint64_t *out)
{
	MDB_val k = {sizeof(META_NEXT) - 1, (void *)META_NEXT}, v;
	int rc = mdb_get(txn, dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*out = 1;
		return 0;
	}
	if (rc)
		return merr(rc);
	if (v.mv_size != 8)
		return GSTORE_ECORRUPT;
	memcpy(out, v.mv_data, 8);
	return 0;
}

/* Opens (or creates) the named databases and checks / writes the format record. */
static int open_dbs(struct gstore *g, char *err, size_t errlen)
{
	MDB_txn *txn = NULL;
	MDB_dbi main;
	MDB_stat st;
	int rc, create = g->read_only ? 0 : MDB_CREATE;
	rc = merr(mdb_txn_begin(g->env, NULL, g->read_only ? MDB_RDONLY : 0, &txn));
	if (rc)
		goto cleanup;
	/* An environment whose main database holds keys but no "meta" is someone else's. */
	if ((rc = merr(mdb_dbi_open(txn, NULL, 0, &main))) || (rc = merr(mdb_stat(txn, main, &st))))
		goto cleanup;
	MDB_val mk = {4, (void *)"meta"}, mv;
	int has_meta = mdb_get(txn, main, &mk, &mv) == 0;
	if (!has_meta && st.ms_entries > 0) {
		rc = GSTORE_EMAGIC;
		snprintf(err, errlen, "the LMDB environment holds other databases, not a graph");
		goto cleanup;
	}
	if (!has_meta && g->read_only) {
		rc = -ENOENT;
		snprintf(err, errlen, "no graph here (read-only open of an empty environment)");
		goto cleanup;
	}
	/*
	 * meta first: the format must be checked before anything else is created, else an older
	 * graph would get this version's databases added (or fail with a full database table).
	 */
	rc = merr(mdb_dbi_open(txn, "meta", create, &g->dbi[DB_META]));
	if (rc) {
		snprintf(err, errlen, "opening database meta: %s", gstore_strerror(rc));
		goto cleanup;
	}
	MDB_val fk = {sizeof(META_FORMAT) - 1, (void *)META_FORMAT}, fv;
	rc = mdb_get(txn, g->dbi[DB_META], &fk, &fv);
	if (rc == MDB_NOTFOUND && !g->read_only) {
		uint32_t f[2] = {GSTORE_MAGIC, GSTORE_VERSION};
		fv = (MDB_val){sizeof(f), f};
		rc = merr(mdb_put(txn, g->dbi[DB_META], &fk, &fv, 0));
		if (rc)
			goto cleanup;
	} else if (rc) {
		rc = rc == MDB_NOTFOUND ? GSTORE_EMAGIC : merr(rc);
		snprintf(err, errlen, "reading the format record: %s", gstore_strerror(rc));
		goto cleanup;
	} else {
		uint32_t f[2];
		if (fv.mv_size != sizeof(f)) {
			rc = GSTORE_EMAGIC;
			snprintf(err, errlen, "format record of %zu bytes, expected 8", fv.mv_size);
			goto cleanup;
		}
		memcpy(f, fv.mv_data, sizeof(f));
		if (f[0] != GSTORE_MAGIC) {
			rc = GSTORE_EMAGIC;
			snprintf(err, errlen, "magic 0x%08x, expected 0x%08x", f[0], GSTORE_MAGIC);
			goto cleanup;
		}
		if (f[1] != GSTORE_VERSION) {
			rc = GSTORE_EVERSION;
			snprintf(err, errlen,
				 "graph format version %u, this build reads %u: stop kprobed "
				 "and move the graph directory aside (a new graph starts "
				 "empty; recorded events are kept)",
				 f[1], GSTORE_VERSION);
			goto cleanup;
		}
	}
	for (int i = 1; i < DB__N; i++) {
		rc = merr(mdb_dbi_open(txn, db_def[i].name, db_def[i].flags | create, &g->dbi[i]));
		if (rc) {
			snprintf(err, errlen, "opening database %s: %s", db_def[i].name,
				 gstore_strerror(rc));
			goto cleanup;
		}
		/* every fixed-size big-endian key, and the adjacency items */
		if (i == DB_NODES || i == DB_OUT || i == DB_IN || i == DB_NODEKEYS)
			mdb_set_compare(txn, g->dbi[i], cmp_be8);
		if (i == DB_BYTIME || i == DB_AGE)
			mdb_set_compare(txn, g->dbi[i], cmp_be16);
		if (i == DB_OUT)
			mdb_set_dupsort(txn, g->dbi[i], cmp_be16);
		if (i == DB_BYKEY)
			mdb_set_dupsort(txn, g->dbi[i], cmp_be8);
	}
	/* commit even when read-only: aborting would close the database handles just opened */
	rc = merr(mdb_txn_commit(txn));
	txn = NULL;
	if (rc)
		snprintf(err, errlen, "committing the format record: %s", gstore_strerror(rc));
cleanup:
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

int gstore_open(const char *dir, const struct gstore_opts *opts, struct gstore **out, char *err,
		size_t errlen)
{
	struct gstore_opts o = opts ? *opts : (struct gstore_opts){0};
	struct gstore *g = NULL;
	int rc, dead;
	if (!o.map_size)
		o.map_size = 64ull << 30;
	if (!o.max_readers)
		o.max_readers = 126;
	snprintf(err, errlen, "ok");
	if (!o.read_only && (rc = mkdir_p(dir, 0750))) {
		snprintf(err, errlen, "creating %s: %s", dir, strerror(-rc));
		return rc;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->read_only = o.read_only;
	if ((rc = merr(mdb_env_create(&g->env))))
		goto fail;
	if ((rc = merr(mdb_env_set_maxdbs(g->env, DB__N))) ||
	    (rc = merr(mdb_env_set_mapsize(g->env, (size_t)o.map_size))) ||
	    (rc = merr(mdb_env_set_maxreaders(g->env, o.max_readers))))
		goto fail;
	/*
	 * NOTLS: a read transaction belongs to its handle, not to a thread, so HTTP threads can
	 * hold several and pass them around. NORDAHEAD: the graph is read randomly.
	 */
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (o.no_sync ? MDB_NOSYNC : 0) |
			 (o.read_only ? MDB_RDONLY : 0);
	rc = merr(mdb_env_open(g->env, dir, flags, 0640));
	if (rc) {
		snprintf(err, errlen, "opening LMDB environment %s: %s", dir, gstore_strerror(rc));
		goto fail_msg;
	}
	/* Reader slots of processes that died (kill -9) would pin old pages forever. */
	mdb_reader_check(g->env, &dead);
	if ((rc = open_dbs(g, err, errlen)))
		goto fail_msg;
	*out = g;
	return 0;
fail:
	snprintf(err, errlen, "setting up LMDB for %s: %s", dir, gstore_strerror(rc));
fail_msg:
	if (g->env)
		mdb_env_close(g->env);
	free(g);
	return rc;
}

void gstore_close(struct gstore *g)
{
	if (!g)
		return;
	mdb_env_close(g->env);
	free(g);
}

int gstore_stats(struct gstore *g, struct gstore_stats *st)
{
	MDB_txn *txn;
	MDB_stat s;
	MDB_envinfo info;
	int rc = merr(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn));
	if (rc)
		return rc;
	memset(st, 0, sizeof(*st));
	uint64_t *dst[] = {&st->nodes, &st->edges, &st->keys, &st->symptoms};
	int dbs[] = {DB_NODES, DB_OUT, DB_BYKEY, DB_BYTIME};
	for (size_t i = 0; i < KP_ARRAY_SIZE(dbs) && !rc; i++) {
		rc = merr(mdb_stat(txn, g->dbi[dbs[i]], &s));
		*dst[i] = s.ms_entries;
	}
	if (!rc)
		rc = meta_get_u64(txn, g->dbi[DB_META], &st->next_id);
	mdb_txn_abort(txn);
	mdb_env_stat(g->env, &s);
	mdb_env_info(g->env, &info);
	st->map_size = info.me_mapsize;
	st->map_used = (uint64_t)(info.me_last_pgno + 1) * s.ms_psize;
	st->readers_used = info.me_numreaders;
	st->readers_max = info.me_maxreaders;
	return rc;
}

/* ================================================================== transactions */

static int cursor(struct gstore_rtxn *r, int db, MDB_cursor **c)
{
	if (!r->cur[db]) {
		int rc = mdb_cursor_open(r->txn, r->g->dbi[db], &r->cur[db]);
		if (rc)
			return merr(rc);
	}
	*c = r->cur[db];
	return 0;
}

static void cursors_close(struct gstore_rtxn *r)
{
	for (int i = 0; i < DB__N; i++) {
		if (r->cur[i])
			mdb_cursor_close(r->cur[i]);
		r->cur[i] = NULL;
	}
}

int gstore_rbegin(struct gstore *g, struct gstore_rtxn **out)
{
	struct gstore_rtxn *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->g = g;
	int rc = merr(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &r->txn));
	if (rc) {
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void gstore_rend(struct gstore_rtxn *r)
{
	if (!r || r->view)
		return;
	cursors_close(r);
	mdb_txn_abort(r->txn);
	free(r);
}

int gstore_rrenew(struct gstore_rtxn *r)
{
	if (r->view)
		return -EINVAL;
	mdb_txn_reset(r->txn);
	int rc = merr(mdb_txn_renew(r->txn));
	for (int i = 0; i < DB__N && !rc; i++)
		if (r->cur[i])
			rc = merr(mdb_cursor_renew(r->txn, r->cur[i]));
	return rc;
}

int gstore_wbegin(struct gstore *g, struct gstore_wtxn **out)
{
	struct gstore_wtxn *w;
	int rc;
	if (g->read_only)
		return -EROFS;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->g = g;
	if ((rc = merr(mdb_txn_begin(g->env, NULL, 0, &w->txn)))) {
		free(w);
		return rc;
	}
	if ((rc = meta_get_u64(w->txn, g->dbi[DB_META], &w->next_id))) {
		mdb_txn_abort(w->txn);
		free(w);
		return rc;
	}
	w->next_id0 = w->next_id;
	w->view = (struct gstore_rtxn){.g = g, .txn = w->txn, .view = true, .w = w};
	*out = w;
	return 0;
}

static void wtxn_free(struct gstore_wtxn *w)
{
	for (int i = 0; i < DB__N; i++)
		if (w->wc[i])
			mdb_cursor_close(w->wc[i]);
	for (size_t i = 0; i < w->dirty.cap; i++)
		free(w->dirty.s[i].buf);
	free(w->dirty.s);
	free(w->scratch);
	free(w);
}

static int dirty_flush(struct gstore_wtxn *w);

int gstore_wcommit(struct gstore_wtxn *w)
{
	int rc = dirty_flush(w);
	cursors_close(&w->view); /* write-transaction cursors must go before the commit */
	for (int i = 0; i < DB__N; i++)
		if (w->wc[i])
			mdb_cursor_close(w->wc[i]);
	memset(w->wc, 0, sizeof(w->wc));
	if (!rc && w->next_id != w->next_id0) {
		MDB_val k = {sizeof(META_NEXT) - 1, (void *)META_NEXT}, v = {8, &w->next_id};
		rc = merr(mdb_put(w->txn, w->g->dbi[DB_META], &k, &v, 0));
	}
	if (rc)
		mdb_txn_abort(w->txn);
	else
		rc = merr(mdb_txn_commit(w->txn));
	wtxn_free(w);
	return rc;
}

void gstore_wabort(struct gstore_wtxn *w)
{
	if (!w)
		return;
	cursors_close(&w->view);
	for (int i = 0; i < DB__N; i++)
		if (w->wc[i])
			mdb_cursor_close(w->wc[i]);
	memset(w->wc, 0, sizeof(w->wc));
	mdb_txn_abort(w->txn);
	wtxn_free(w);
}

struct gstore_rtxn *gstore_wtxn_reader(struct gstore_wtxn *w)
{
	return &w->view;
}

/* ================================================================== writing */

/*
 * A put through the transaction's cursor for db: mdb_cursor_put first checks whether the key
 * falls on the page the cursor is on, so the writer's local, mostly ascending puts (a new node's
 * causes, recent sources, recent end times) skip the descent from the root. Returns an MDB code.
 */
static int wput(struct gstore_wtxn *w, int db, MDB_val *k, MDB_val *v, unsigned flags)
{
	if (!w->wc[db]) {
		int rc = mdb_cursor_open(w->txn, w->g->dbi[db], &w->wc[db]);
		if (rc)
			return rc;
	}
	return mdb_cursor_put(w->wc[db], k, v, flags);
}

static inline MDB_val idkey(uint8_t *buf, uint64_t id)
{
	put_be64(buf, id);
	return (MDB_val){8, buf};
}

static inline MDB_val timekey(uint8_t *buf, uint64_t t, uint64_t id)
{
	put_be64(buf, t);
	put_be64(buf + 8, id);
	return (MDB_val){16, buf};
}

/* ================================================================== in-blocks */

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4); /* values in leaf pages are only 2-byte aligned */
	return v;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline size_t blk_items(size_t len)
{
	return (len - BLK_HDR) / ITEM_LEN;
}

/* A stored or dirty block value: the size and the last offset agree. 0 or GSTORE_ECORRUPT. */
static inline int blk_valid(const uint8_t *v, size_t len)
{
	if (len < BLK_HDR || (len - BLK_HDR) % ITEM_LEN || get_le32(v) != 0 ||
	    get_le32(v + 4 * BLK_NODES) != blk_items(len))
		return GSTORE_ECORRUPT;
	return 0;
}

/* blk_valid, and every slot's offsets in order (what the writer checks before editing). */
static int blk_valid_full(const uint8_t *v, size_t len)
{
	if (blk_valid(v, len))
		return GSTORE_ECORRUPT;
	for (unsigned j = 0; j < BLK_NODES; j++)
		if (get_le32(v + 4 * j) > get_le32(v + 4 * (j + 1)))
			return GSTORE_ECORRUPT;
	return 0;
}

/* Slot j's items: 1 with [*p, *end), 0 when it has none, or GSTORE_ECORRUPT. */
static inline int blk_slice(const uint8_t *v, size_t len, unsigned j, const uint8_t **p,
			    const uint8_t **end)
{
	uint32_t a = get_le32(v + 4 * j), b = get_le32(v + 4 * (j + 1));
	if (a > b || b > blk_items(len))
		return GSTORE_ECORRUPT;
	*p = v + BLK_HDR + (size_t)a * ITEM_LEN;
	*end = v + BLK_HDR + (size_t)b * ITEM_LEN;
	return b > a;
}

static inline size_t dhash(uint64_t blk, size_t cap)
{
	return (size_t)(blk ^ (blk >> 24)) & (cap - 1);
}

static struct dblk *dmap_find(const struct dmap *m, uint64_t blk)
{
	if (!m->n)
		return NULL;
	for (size_t h = dhash(blk, m->cap);; h = (h + 1) & (m->cap - 1)) {
		if (!m->s[h].buf)
			return NULL;
		if (m->s[h].blk == blk)
			return &m->s[h];
	}
}

/* A free slot for blk (not in the map), growing the map first when needed; NULL on ENOMEM. */
static struct dblk *dmap_slot(struct dmap *m, uint64_t blk)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct dblk *s = calloc(cap, sizeof(*s));
		if (!s)
			return NULL;
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->s[i].buf)
				continue;
			size_t h = dhash(m->s[i].blk, cap);
			while (s[h].buf)
				h = (h + 1) & (cap - 1);
			s[h] = m->s[i];
		}
		free(m->s);
		m->s = s;
		m->cap = cap;
	}
	size_t h = dhash(blk, m->cap);
	while (m->s[h].buf)
		h = (h + 1) & (m->cap - 1);
	return &m->s[h];
}

/*
 * The block value of blk as r sees it: the writer's dirty copy when r is a write transaction's
 * view and the block changed, else the committed value. 1 with *v / *len, 0 when there is none.
 */
static int blk_get(struct gstore_rtxn *r, uint64_t blk, const uint8_t **v, size_t *len)
{
	if (r->w) {
		const struct dblk *d = dmap_find(&r->w->dirty, blk);
		if (d) {
			*v = d->buf;
			*len = d->len;
			return 1;
		}
	}
	MDB_cursor *c = NULL;
	uint8_t kb[8];
	MDB_val k = idkey(kb, blk), val;
	int rc = cursor(r, DB_IN, &c);
	if (rc)
		return rc;
	rc = mdb_cursor_get(c, &k, &val, MDB_SET);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return merr(rc);
	/* The size only, without touching the value: blk_slice bounds every slot by it. */
	if (val.mv_size < BLK_HDR || (val.mv_size - BLK_HDR) % ITEM_LEN)
		return GSTORE_ECORRUPT;
	*v = val.mv_data;
	*len = val.mv_size;
	return 1;
}

/*
 * The writer's dirty copy of blk, made on first change from the committed value (or empty).
 * The pointer is valid until the next dblk_get (the map may grow).
 */
static int dblk_get(struct gstore_wtxn *w, uint64_t blk, struct dblk **out)
{
	struct dblk *d = dmap_find(&w->dirty, blk);
	if (d) {
		*out = d;
		return 0;
	}
	uint8_t kb[8];
	MDB_val k = idkey(kb, blk), v = {0, NULL};
	int rc = mdb_get(w->txn, w->g->dbi[DB_IN], &k, &v);
	if (rc && rc != MDB_NOTFOUND)
		return merr(rc);
	if (rc == 0 && (rc = blk_valid_full(v.mv_data, v.mv_size)))
		return rc;
	size_t len = v.mv_size ? v.mv_size : BLK_HDR, cap = len + 16 * ITEM_LEN;
	uint8_t *buf = malloc(cap);
	if (!buf || !(d = dmap_slot(&w->dirty, blk))) {
		free(buf);
		return -ENOMEM;
	}
	if (v.mv_size)
		memcpy(buf, v.mv_data, len);
	else
		memset(buf, 0, len);
	*d = (struct dblk){.blk = blk, .buf = buf, .len = len, .cap = cap};
	w->dirty.n++;
	*out = d;
	return 0;
}

/* Where item goes in slot j (sorted): its index, *found when it is already there. */
static size_t dblk_find(const struct dblk *d, unsigned j, const uint8_t *item, int *found)
{
	size_t lo = get_le32(d->buf + 4 * j), hi = get_le32(d->buf + 4 * (j + 1));
	const uint8_t *items = d->buf + BLK_HDR;
	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(items + mid * ITEM_LEN, item, ITEM_LEN);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Shifts off[j+1..64] by delta items. */
static void dblk_shift(struct dblk *d, unsigned j, int64_t delta)
{
	for (unsigned k = j + 1; k <= BLK_NODES; k++) {
		uint8_t *o = d->buf + 4 * k;
		put_le32(o, (uint32_t)((int64_t)get_le32(o) + delta));
	}
}

/* Inserts item into slot j: 0, 1 when it was there already, or -ENOMEM / -E2BIG. */
static int dblk_insert(struct dblk *d, unsigned j, const uint8_t *item)
{
	int found;
	size_t pos = dblk_find(d, j, item, &found), n = blk_items(d->len);
	if (found)
		return 1;
	if (n >= UINT32_MAX - 1)
		return -E2BIG;
	if (d->len + ITEM_LEN > d->cap) {
		size_t cap = d->cap * 2;
		uint8_t *b = realloc(d->buf, cap);
		if (!b)
			return -ENOMEM;
		d->buf = b;
		d->cap = cap;
	}
	uint8_t *at = d->buf + BLK_HDR + pos * ITEM_LEN;
	memmove(at + ITEM_LEN, at, (n - pos) * ITEM_LEN);
	memcpy(at, item, ITEM_LEN);
	d->len += ITEM_LEN;
	dblk_shift(d, j, 1);
	return 0;
}

/* Removes count items of slot j from index pos on. */
static void dblk_cut(struct dblk *d, unsigned j, size_t pos, size_t count)
{
	size_t n = blk_items(d->len);
	uint8_t *at = d->buf + BLK_HDR + pos * ITEM_LEN;
	memmove(at, at + count * ITEM_LEN, (n - pos - count) * ITEM_LEN);
	d->len -= count * ITEM_LEN;
	dblk_shift(d, j, -(int64_t)count);
}

/* Removes item from slot j: 0, or -ENOENT when it is not there. */
static int dblk_remove(struct dblk *d, unsigned j, const uint8_t *item)
{
	int found;
	size_t pos = dblk_find(d, j, item, &found);
	if (!found)
		return -ENOENT;
	dblk_cut(d, j, pos, 1);
	return 0;
}

static int cmp_dblk(const void *a, const void *b)
{
	uint64_t x = (*(const struct dblk *const *)a)->blk;
	uint64_t y = (*(const struct dblk *const *)b)->blk;
	return (x > y) - (x < y);
}

/*
 * Commit: writes every dirty block once, in key order (puts near the previous one skip the
 * descent), reserving the space and copying in (MDB_RESERVE: no intermediate buffer); a block
 * left without items is deleted.
 */
static int dirty_flush(struct gstore_wtxn *w)
{
	struct dmap *m = &w->dirty;
	struct dblk **order = NULL;
	size_t n = 0;
	int rc = 0;
	if (!m->n)
		return 0;
	if (!(order = malloc(m->n * sizeof(*order))))
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->s[i].buf)
			order[n++] = &m->s[i];
	qsort(order, n, sizeof(*order), cmp_dblk);
	for (size_t i = 0; i < n && !rc; i++) {
		struct dblk *d = order[i];
		uint8_t kb[8];
		MDB_val k = idkey(kb, d->blk), v = {d->len, NULL};
		if (blk_items(d->len) == 0) {
			int mrc = mdb_del(w->txn, w->g->dbi[DB_IN], &k, NULL);
			rc = mrc == MDB_NOTFOUND ? 0 : merr(mrc);
			continue;
		}
		if ((rc = merr(wput(w, DB_IN, &k, &v, MDB_RESERVE))))
			break;
		memcpy(v.mv_data, d->buf, d->len);
	}
	free(order);
	return rc;
}

static int node_exists(struct gstore_wtxn *w, uint64_t id)
{
	uint8_t kb[8];
	MDB_val k = idkey(kb, id), v;
	if (id == 0 || id > GSTORE_ID_MAX || id >= w->next_id)
		return -ENOENT;
	/* Nodes added by this transaction exist unless it deleted some: no lookup needed. */
	if (id >= w->next_id0 && !w->deleted)
		return 0;
	return merr(mdb_get(w->txn, w->g->dbi[DB_NODES], &k, &v));
}

/* Adds (add=1) or removes the node's entries in the age and by_time indexes. */
static int index_node(struct gstore_wtxn *w, uint64_t id, int kind, uint64_t end_ns, int add)
{
	uint8_t tb[16];
	MDB_val k = timekey(tb, end_ns, id), v = {0, NULL};
	int dbs[2] = {DB_AGE, DB_BYTIME}, rc;
	for (int i = 0; i < (kind == GN_SYMPTOM ? 2 : 1); i++) {
		rc = add ? wput(w, dbs[i], &k, &v, 0)
			 : mdb_del(w->txn, w->g->dbi[dbs[i]], &k, NULL);
		if (rc)
			return rc == MDB_NOTFOUND ? GSTORE_ECORRUPT : merr(rc);
	}
	return 0;
}

int gstore_node_add(struct gstore_wtxn *w, const struct gstore_node *n, uint64_t *id)
{
	uint8_t rec[REC_MAX], kb[8];
	size_t len;
	int rc = rec_encode(n, rec, &len);
	if (rc)
		return rc;
	if (w->next_id > GSTORE_ID_MAX)
		return -ENOSPC;
	uint64_t nid = w->next_id;
	MDB_val k = idkey(kb, nid), v = {len, rec};
	/* Ids only grow and are never reused, so every new node goes at the end of the tree. */
	if ((rc = merr(wput(w, DB_NODES, &k, &v, MDB_APPEND))))
		return rc;
	if ((rc = index_node(w, nid, n->kind, n->end_ns, 1)))
		return rc;
	w->next_id++;
	if (id)
		*id = nid;
	return 0;
}

int gstore_node_update(struct gstore_wtxn *w, const struct gstore_node *n)
{
	uint8_t rec[REC_MAX], kb[8];
	size_t len;
	struct gstore_node old;
	int rc = rec_encode(n, rec, &len);
	if (rc)
		return rc;
	if (n->id == 0 || n->id > GSTORE_ID_MAX)
		return -ENOENT;
	MDB_val k = idkey(kb, n->id), v;
	if ((rc = merr(mdb_get(w->txn, w->g->dbi[DB_NODES], &k, &v))))
		return rc;
	if ((rc = rec_decode(n->id, &v, &old)))
		return rc;
	if (old.kind != n->kind || old.end_ns != n->end_ns) {
		if ((rc = index_node(w, n->id, old.kind, old.end_ns, 0)) ||
		    (rc = index_node(w, n->id, n->kind, n->end_ns, 1)))
			return rc;
	}
	v = (MDB_val){len, rec};
	return merr(wput(w, DB_NODES, &k, &v, 0));
}

int gstore_edge_add(struct gstore_wtxn *w, const struct gstore_edge *e)
{
	uint8_t ks[8], is[ITEM_LEN], id[ITEM_LEN];
	int rc;
	if (e->kind < 1 || e->kind >= GE__COUNT || e->src == e->dst)
		return -EINVAL;
	if ((rc = node_exists(w, e->src)) || (rc = node_exists(w, e->dst)))
		return rc;
	MDB_val k1 = idkey(ks, e->src);
	item_encode(id, e->weight_ns, e->dst, e->kind);
	item_encode(is, e->weight_ns, e->src, e->kind);
	MDB_val v1 = {ITEM_LEN, id};
	rc = wput(w, DB_OUT, &k1, &v1, MDB_NODUPDATA);
	if (rc == MDB_KEYEXIST)
		return 1; /* the mirror exists too (gstore_check's invariant) */
	if (rc)
		return merr(rc);
	struct dblk *d;
	if ((rc = dblk_get(w, e->dst >> BLK_SHIFT, &d)))
		return rc;
	rc = dblk_insert(d, (unsigned)(e->dst & (BLK_NODES - 1)), is);
	return rc == 1 ? GSTORE_ECORRUPT : rc; /* in without out: the mirror invariant broke */
}

int gstore_edge_del(struct gstore_wtxn *w, const struct gstore_edge *e)
{
	uint8_t ks[8], is[ITEM_LEN], id[ITEM_LEN];
	int rc;
	if (e->kind < 1 || e->kind >= GE__COUNT || e->src > GSTORE_ID_MAX || e->dst > GSTORE_ID_MAX)
		return -EINVAL;
	MDB_val k1 = idkey(ks, e->src);
	item_encode(id, e->weight_ns, e->dst, e->kind);
	item_encode(is, e->weight_ns, e->src, e->kind);
	MDB_val v1 = {ITEM_LEN, id};
	if ((rc = merr(mdb_del(w->txn, w->g->dbi[DB_OUT], &k1, &v1))))
		return rc;
	struct dblk *d;
	if ((rc = dblk_get(w, e->dst >> BLK_SHIFT, &d)))
		return rc;
	rc = dblk_remove(d, (unsigned)(e->dst & (BLK_NODES - 1)), is);
	return rc == -ENOENT ? GSTORE_ECORRUPT : rc;
}

int gstore_key_add(struct gstore_wtxn *w, const void *key, size_t len, uint64_t id)
{
	uint8_t kb[8];
	int rc;
	if (len < 1 || len > GSTORE_KEY_MAX)
		return -EINVAL;
	if ((rc = node_exists(w, id)))
		return rc;
	MDB_val k = {len, (void *)key}, v = idkey(kb, id);
	rc = wput(w, DB_BYKEY, &k, &v, MDB_NODUPDATA);
	if (rc == MDB_KEYEXIST)
		return 1;
	if (rc)
		return merr(rc);
	MDB_val k2 = v, v2 = {len, (void *)key};
	return merr(wput(w, DB_NODEKEYS, &k2, &v2, MDB_NODUPDATA));
}

static int scratch_reserve(struct gstore_wtxn *w, size_t need)
{
	if (need <= w->scratch_cap)
		return 0;
	size_t cap = w->scratch_cap ? w->scratch_cap : 4096;
	while (cap < need)
		cap *= 2;
	uint8_t *p = realloc(w->scratch, cap);
	if (!p)
		return -ENOMEM;
	w->scratch = p;
	w->scratch_cap = cap;
	return 0;
}

/*
 * Copies every duplicate of key under db into w->scratch (items of item_len bytes, or for the
 * variable-sized node_keys, u16 length + bytes). Copies, because the deletes that follow touch
 * pages a cursor would still be reading.
 */
static int collect_dups(struct gstore_wtxn *w, int db, MDB_val *key, size_t *used)
{
	MDB_cursor *c = NULL;
	MDB_val k = *key, v;
	int rc = merr(mdb_cursor_open(w->txn, w->g->dbi[db], &c));
	if (rc)
		return rc;
	*used = 0;
	int op = MDB_SET_KEY;
	while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
		op = MDB_NEXT_DUP;
		if ((rc = scratch_reserve(w, *used + v.mv_size + 2)))
			break;
		uint16_t l = (uint16_t)v.mv_size;
		memcpy(w->scratch + *used, &l, 2);
		memcpy(w->scratch + *used + 2, v.mv_data, v.mv_size);
		*used += v.mv_size + 2;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : merr(rc);
}

int gstore_node_del(struct gstore_wtxn *w, uint64_t id)
{
	uint8_t kb[8], pk[8], mirror[ITEM_LEN];
	struct gstore_node n;
	size_t used;
	int rc;
	if (id == 0 || id > GSTORE_ID_MAX)
		return -ENOENT;
	MDB_val k = idkey(kb, id), v;
	if ((rc = merr(mdb_get(w->txn, w->g->dbi[DB_NODES], &k, &v))))
		return rc;
	if ((rc = rec_decode(id, &v, &n)))
		return rc;
	int kind = n.kind;
	uint64_t end = n.end_ns;
	w->deleted = true;
	/* Out edges: each has its mirror in the in-block of its effect. */
	if ((rc = collect_dups(w, DB_OUT, &k, &used)))
		return rc;
	for (size_t off = 0; off < used; off += 2 + ITEM_LEN) {
		const uint8_t *it = w->scratch + off + 2;
		uint64_t peer = item_peer(it);
		struct dblk *d;
		item_encode(mirror, item_weight(it), id, it[14]);
		if ((rc = dblk_get(w, peer >> BLK_SHIFT, &d)))
			return rc;
		if (dblk_remove(d, (unsigned)(peer & (BLK_NODES - 1)), mirror))
			return GSTORE_ECORRUPT;
	}
	if (used && (rc = merr(mdb_del(w->txn, w->g->dbi[DB_OUT], &k, NULL))))
		return rc;
	/* In edges: cut the node's slot out of its block (a copy first), then the out mirrors. */
	unsigned j = (unsigned)(id & (BLK_NODES - 1));
	const uint8_t *bv, *bp, *be;
	size_t blen, cnt = 0;
	/* peek first: retention deletes many causeless nodes, whose blocks need no copy */
	if ((rc = blk_get(&w->view, id >> BLK_SHIFT, &bv, &blen)) < 0)
		return rc;
	if (rc == 1 && (rc = blk_slice(bv, blen, j, &bp, &be)) < 0)
		return rc;
	if (rc == 1) {
		struct dblk *d;
		if ((rc = dblk_get(w, id >> BLK_SHIFT, &d)))
			return rc;
		size_t a = get_le32(d->buf + 4 * j);
		cnt = get_le32(d->buf + 4 * (j + 1)) - a;
		if ((rc = scratch_reserve(w, cnt * ITEM_LEN)))
			return rc;
		memcpy(w->scratch, d->buf + BLK_HDR + a * ITEM_LEN, cnt * ITEM_LEN);
		dblk_cut(d, j, a, cnt);
	}
	for (size_t i = 0; i < cnt; i++) {
		const uint8_t *it = w->scratch + i * ITEM_LEN;
		item_encode(mirror, item_weight(it), id, it[14]);
		MDB_val pkv = idkey(pk, item_peer(it)), mv = {ITEM_LEN, mirror};
		rc = mdb_del(w->txn, w->g->dbi[DB_OUT], &pkv, &mv);
		if (rc)
			return rc == MDB_NOTFOUND ? GSTORE_ECORRUPT : merr(rc);
	}
	/* Keys. */
	if ((rc = collect_dups(w, DB_NODEKEYS, &k, &used)))
		return rc;
	for (size_t off = 0; off < used;) {
		uint16_t l;
		memcpy(&l, w->scratch + off, 2);
		MDB_val kk = {l, w->scratch + off + 2}, iv = {8, kb};
		rc = mdb_del(w->txn, w->g->dbi[DB_BYKEY], &kk, &iv);
		if (rc)
			return rc == MDB_NOTFOUND ? GSTORE_ECORRUPT : merr(rc);
		off += 2u + l;
	}
	if (used && (rc = merr(mdb_del(w->txn, w->g->dbi[DB_NODEKEYS], &k, NULL))))
		return rc;
	if ((rc = index_node(w, id, kind, end, 0)))
		return rc;
	return merr(mdb_del(w->txn, w->g->dbi[DB_NODES], &k, NULL));
}

int gstore_expire(struct gstore_wtxn *w, uint64_t cutoff_ns, unsigned max_nodes, unsigned *deleted)
{
	MDB_cursor *c = NULL;
	MDB_val k, v;
	uint64_t *ids = NULL;
	unsigned n = 0;
	int rc;
	*deleted = 0;
	if (max_nodes == 0)
		max_nodes = 1;
	ids = malloc(sizeof(*ids) * max_nodes);
	if (!ids)
		return -ENOMEM;
	/* Collect first, delete after: the deletes rewrite the age index under the cursor. */
	if ((rc = merr(mdb_cursor_open(w->txn, w->g->dbi[DB_AGE], &c))))
		goto cleanup;
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0 && n < max_nodes) {
		if (k.mv_size != 16) {
			rc = GSTORE_ECORRUPT;
			goto cleanup;
		}
		if (get_be64(k.mv_data) >= cutoff_ns)
			break;
		ids[n++] = get_be64((const uint8_t *)k.mv_data + 8);
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	if (rc && rc != MDB_NOTFOUND) {
		rc = merr(rc);
		goto cleanup;
	}
	mdb_cursor_close(c);
	c = NULL;
	for (unsigned i = 0; i < n; i++) {
		if ((rc = gstore_node_del(w, ids[i])))
			goto cleanup;
		(*deleted)++;
	}
	/* More left? */
	if ((rc = merr(mdb_cursor_open(w->txn, w->g->dbi[DB_AGE], &c))))
		goto cleanup;
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	else if (rc == 0)
		rc = k.mv_size == 16 && get_be64(k.mv_data) < cutoff_ns;
	else
		rc = merr(rc);
cleanup:
	if (c)
		mdb_cursor_close(c);
	free(ids);
	return rc;
}

/* ================================================================== reading */

int gstore_node_get(struct gstore_rtxn *r, uint64_t id, struct gstore_node *n)
{
	uint8_t kb[8];
	if (id == 0 || id > GSTORE_ID_MAX)
		return -ENOENT;
	MDB_val k = idkey(kb, id), v;
	int rc = mdb_get(r->txn, r->g->dbi[DB_NODES], &k, &v);
	if (rc)
		return merr(rc);
	return rec_decode(id, &v, n);
}

/*
 * Adjacency reads: position on the node (MDB_SET), then take whole pages of items at a time
 * (MDB_GET_MULTIPLE, then MDB_NEXT_MULTIPLE): one call per 255 edges instead of one per edge.
 * Returns 1 with [*p, *end) holding items, 0 when there are no (more), or an error.
 */
static int adj_first(struct gstore_rtxn *r, uint64_t id, int dir, const uint8_t **p,
		     const uint8_t **end)
{
	MDB_cursor *c = NULL;
	uint8_t kb[8];
	MDB_val k = idkey(kb, id), v;
	int rc;
	if (dir == GSTORE_IN) { /* one slot of a block: every item at once */
		const uint8_t *bv;
		size_t blen;
		if ((rc = blk_get(r, id >> BLK_SHIFT, &bv, &blen)) <= 0)
			return rc;
		return blk_slice(bv, blen, (unsigned)(id & (BLK_NODES - 1)), p, end);
	}
	if ((rc = cursor(r, DB_OUT, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc || (rc = mdb_cursor_get(c, &k, &v, MDB_GET_MULTIPLE)))
		return merr(rc);
	if (v.mv_size % ITEM_LEN)
		return GSTORE_ECORRUPT;
	*p = v.mv_data;
	*end = *p + v.mv_size;
	return *p < *end;
}

static int adj_next(struct gstore_rtxn *r, int dir, const uint8_t **p, const uint8_t **end)
{
	if (dir == GSTORE_IN)
		return 0; /* adj_first gave the whole slot */
	MDB_cursor *c = r->cur[DB_OUT];
	MDB_val k, v;
	int rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_MULTIPLE);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return merr(rc);
	if (v.mv_size % ITEM_LEN)
		return GSTORE_ECORRUPT;
	*p = v.mv_data;
	*end = *p + v.mv_size;
	return *p < *end;
}

static inline void item_to_edge(const uint8_t *it, uint64_t self, int dir, struct gstore_edge *e)
{
	uint64_t peer = item_peer(it);
	e->src = dir == GSTORE_OUT ? self : peer;
	e->dst = dir == GSTORE_OUT ? peer : self;
	e->weight_ns = item_weight(it);
	e->kind = it[14];
}

int gstore_edges_first(struct gstore_rtxn *r, uint64_t id, enum gstore_dir dir,
		       struct gstore_iter *it)
{
	memset(it, 0, sizeof(*it));
	it->r = r;
	it->id = id;
	it->dir = dir;
	if (id == 0 || id > GSTORE_ID_MAX)
		return 0;
	int rc = adj_first(r, id, dir, &it->p, &it->end);
	if (rc < 0)
		return rc;
	it->state = rc; /* 1: items pending, 0: done */
	return 0;
}

int gstore_edges_next(struct gstore_iter *it, struct gstore_edge *e)
{
	while (it->state == 1) {
		if (it->p < it->end) {
			item_to_edge(it->p, it->id, it->dir, e);
			it->p += ITEM_LEN;
			return 1;
		}
		int rc = adj_next(it->r, it->dir, &it->p, &it->end);
		if (rc < 0)
			return rc;
		it->state = rc;
	}
	return 0;
}

int gstore_degree(struct gstore_rtxn *r, uint64_t id, enum gstore_dir dir, uint64_t *n)
{
	MDB_cursor *c = NULL;
	uint8_t kb[8];
	MDB_val k = idkey(kb, id), v;
	size_t cnt = 0;
	int rc;
	*n = 0;
	if (id == 0 || id > GSTORE_ID_MAX)
		return 0;
	if (dir == GSTORE_IN) {
		const uint8_t *p, *end;
		if ((rc = adj_first(r, id, GSTORE_IN, &p, &end)) <= 0)
			return rc;
		*n = (uint64_t)(end - p) / ITEM_LEN;
		return 0;
	}
	if ((rc = cursor(r, DB_OUT, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc || (rc = mdb_cursor_count(c, &cnt)))
		return merr(rc);
	*n = cnt;
	return 0;
}

int gstore_key_lookup(struct gstore_rtxn *r, const void *key, size_t len, uint64_t *ids, size_t cap,
		      size_t *n)
{
	MDB_cursor *c = NULL;
	MDB_val k = {len, (void *)key}, v;
	int rc;
	*n = 0;
	if (len < 1 || len > GSTORE_KEY_MAX)
		return -EINVAL;
	if ((rc = cursor(r, DB_BYKEY, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc || (rc = mdb_cursor_get(c, &k, &v, MDB_GET_MULTIPLE)))
		return merr(rc);
	for (;;) {
		if (v.mv_size % 8)
			return GSTORE_ECORRUPT;
		for (size_t i = 0; i < v.mv_size; i += 8, (*n)++)
			if (*n < cap)
				ids[*n] = get_be64((const uint8_t *)v.mv_data + i);
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_MULTIPLE);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc)
			return merr(rc);
	}
}

int gstore_key_resolve(struct gstore_rtxn *r, const char *key, uint64_t *id)
{
	enum { CAP = 4096 };
	uint64_t *ids = NULL, best = 0, best_t = 0, best_w = 0;
	size_t n = 0;
	int rc, best_sym = 0;
	if (key[0] == '#' && key[1]) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(key + 1, &end, 10);
		struct gstore_node nd;
		if (*end || errno || v == 0)
			return -ENOENT;
		if ((rc = gstore_node_get(r, v, &nd)))
			return rc;
		*id = v;
		return 0;
	}
	size_t len = strlen(key);
	if (len < 1 || len > GSTORE_KEY_MAX)
		return -ENOENT;
	ids = malloc(sizeof(*ids) * CAP);
	if (!ids)
		return -ENOMEM;
	if ((rc = gstore_key_lookup(r, key, len, ids, CAP, &n)))
		goto cleanup;
	for (size_t i = 0; i < KP_MIN(n, (size_t)CAP); i++) {
		struct gstore_node nd;
		if ((rc = gstore_node_get(r, ids[i], &nd)))
			goto cleanup;
		int sym = nd.kind == GN_SYMPTOM;
		/* ids ascend, so ">=" lets a later (newer) node win ties */
		if (sym > best_sym ||
		    (sym == best_sym && (sym ? nd.end_ns >= best_t : nd.weight_ns >= best_w))) {
			best = ids[i];
			best_sym = sym;
			best_t = nd.end_ns;
			best_w = nd.weight_ns;
		}
	}
	rc = best ? 0 : -ENOENT;
	if (best)
		*id = best;
cleanup:
	free(ids);
	return rc;
}

int gstore_incidents(struct gstore_rtxn *r, uint64_t from_ns, uint64_t to_ns,
		     const struct gstore_incident *after, struct gstore_incident *out, size_t cap,
		     size_t *n)
{
	MDB_cursor *c = NULL;
	uint8_t tb[16];
	MDB_val k, v;
	int rc;
	*n = 0;
	if ((rc = cursor(r, DB_BYTIME, &c)))
		return rc;
	/* Start just below (to_ns, +inf) or below `after`, and walk backwards. */
	if (after)
		k = timekey(tb, after->time_ns, after->id);
	else
		k = timekey(tb, to_ns, UINT64_MAX);
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	else if (rc == 0)
		rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
	/*
	 * SET_RANGE lands on the first key >= the bound; when it equals (to_ns, UINT64_MAX) it is
	 * no bound at all, so only `after` (an exact key) needs stepping past, which PREV does.
	 * A key exactly equal to (to_ns, UINT64_MAX) cannot exist (ids are below 2^56).
	 */
	while (rc == 0 && *n < cap) {
		if (k.mv_size != 16)
			return GSTORE_ECORRUPT;
		uint64_t t = get_be64(k.mv_data), id = get_be64((const uint8_t *)k.mv_data + 8);
		if (t < from_ns)
			break;
		if (t <= to_ns)
			out[(*n)++] = (struct gstore_incident){t, id};
		rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
	}
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : merr(rc);
}

/* ------------------------------------------------------------------ scans */

enum { SCAN_NODES = 1, SCAN_TIME, SCAN_EDGES };

int gstore_scan_nodes(struct gstore_rtxn *r, uint64_t start_id, struct gstore_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->r = r;
	s->mode = SCAN_NODES;
	s->a = start_id;
	return 0;
}

int gstore_scan_nodes_by_time(struct gstore_rtxn *r, uint64_t from_ns, uint64_t to_ns,
			      struct gstore_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->r = r;
	s->mode = SCAN_TIME;
	s->a = from_ns;
	s->b = to_ns;
	return 0;
}

int gstore_scan_node_next(struct gstore_scan *s, struct gstore_node *n)
{
	MDB_cursor *c = NULL;
	uint8_t kb[16];
	MDB_val k, v;
	int rc;
	if (s->state == 2)
		return 0;
	if (s->mode == SCAN_NODES) {
		if ((rc = cursor(s->r, DB_NODES, &c)))
			return rc;
		if (s->state == 0) {
			k = idkey(kb, s->a);
			rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		} else {
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		s->state = 1;
		if (rc == MDB_NOTFOUND) {
			s->state = 2;
			return 0;
		}
		if (rc)
			return merr(rc);
		if (k.mv_size != 8)
			return GSTORE_ECORRUPT;
		if ((rc = rec_decode(get_be64(k.mv_data), &v, n)))
			return rc;
		return 1;
	}
	if (s->mode != SCAN_TIME)
		return -EINVAL;
	if ((rc = cursor(s->r, DB_AGE, &c)))
		return rc;
	if (s->state == 0) {
		k = timekey(kb, s->a, 0);
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	} else {
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	s->state = 1;
	if (rc == 0 && k.mv_size != 16)
		return GSTORE_ECORRUPT;
	if (rc == MDB_NOTFOUND || (rc == 0 && get_be64(k.mv_data) > s->b)) {
		s->state = 2;
		return 0;
	}
	if (rc)
		return merr(rc);
	rc = gstore_node_get(s->r, get_be64((const uint8_t *)k.mv_data + 8), n);
	return rc == -ENOENT ? GSTORE_ECORRUPT : rc ? rc : 1;
}

int gstore_scan_edges(struct gstore_rtxn *r, uint64_t start_src, struct gstore_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->r = r;
	s->mode = SCAN_EDGES;
	s->a = start_src;
	return 0;
}

int gstore_scan_edge_next(struct gstore_scan *s, struct gstore_edge *e)
{
	MDB_cursor *c = NULL;
	uint8_t kb[8];
	MDB_val k, v;
	int rc;
	if (s->mode != SCAN_EDGES)
		return -EINVAL;
	for (;;) {
		if (s->state == 2)
			return 0;
		if (s->state == 1) {
			rc = gstore_edges_next(&s->it, e);
			if (rc != 0)
				return rc;
			s->a++; /* this src is done; look for the next one */
		}
		if ((rc = cursor(s->r, DB_OUT, &c)))
			return rc;
		k = idkey(kb, s->a);
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND) {
			s->state = 2;
			return 0;
		}
		if (rc)
			return merr(rc);
		if (k.mv_size != 8)
			return GSTORE_ECORRUPT;
		s->a = get_be64(k.mv_data);
		if ((rc = gstore_edges_first(s->r, s->a, GSTORE_OUT, &s->it)))
			return rc;
		s->state = 1;
	}
}

/* ================================================================== root cause */

static inline void copy_str(char *dst, size_t cap, const char *src)
{
	size_t l = src ? strnlen(src, cap - 1) : 0;
	memcpy(dst, src, l);
	dst[l] = '\0';
}

static void step_fill(struct gstore_step *s, const struct gstore_node *n)
{
	s->id = n->id;
	s->kind = n->kind;
	s->flags = n->flags;
	s->pid = n->pid;
	s->tid = n->tid;
	s->host = n->host;
	s->start_ns = n->start_ns;
	s->end_ns = n->end_ns;
	s->weight_ns = n->weight_ns;
	s->comm[0] = s->text[0] = '\0';
	/* one pass over the labels for both (this runs once per step of every walk) */
	const char *p = n->labels, *end = n->labels ? n->labels + n->labels_len : NULL;
	while (p && p < end) {
		size_t kl = strnlen(p, (size_t)(end - p));
		const char *v = p + kl + 1;
		if (v >= end)
			break;
		size_t vl = strnlen(v, (size_t)(end - v));
		if (kl == 4 && memcmp(p, "comm", 4) == 0)
			copy_str(s->comm, sizeof(s->comm), v);
		else if (kl == 4 && memcmp(p, "text", 4) == 0)
			copy_str(s->text, sizeof(s->text), v);
		p = v + vl + 1;
	}
	copy_str(s->service, sizeof(s->service), n->service);
}

/* The heaviest incoming edge of id whose cause is not in the chain: 1 found, 0 none, < 0. */
static int heaviest_cause(struct gstore_rtxn *r, uint64_t id, const struct gstore_chain *c,
			  int *any, const uint8_t **out)
{
	const uint8_t *p, *end;
	*any = 0;
	int rc = adj_first(r, id, GSTORE_IN, &p, &end);
	if (rc <= 0)
		return rc;
	for (; p < end; p += ITEM_LEN) {
		/*
		 * Heaviest first: once the weight is 0 nothing left explains any latency
		 * (structural edges, e.g. a message and the request it opened): the walk ends.
		 */
		if (item_weight(p) == 0)
			break;
		*any = 1;
		uint64_t peer = item_peer(p);
		int seen = 0;
		for (int i = 0; i < c->n && !seen; i++)
			seen = c->steps[i].id == peer;
		if (!seen) {
			*out = p;
			return 1;
		}
	}
	return 0;
}

int gstore_rootcause(struct gstore_rtxn *r, uint64_t from, int max_steps, struct gstore_chain *c)
{
	struct gstore_node n;
	const uint8_t *it = NULL;
	int rc, any;
	if (max_steps < 1 || max_steps > GSTORE_STEPS_MAX)
		return -EINVAL;
	c->n = 0;
	c->stop = 0;
	if ((rc = gstore_node_get(r, from, &n)))
		return rc;
	step_fill(&c->steps[0], &n);
	c->steps[0].edge_kind = 0;
	c->steps[0].latency_ns = n.weight_ns;
	c->symptom_latency_ns = n.weight_ns;
	c->n = 1;
	for (;;) {
		rc = heaviest_cause(r, c->steps[c->n - 1].id, c, &any, &it);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			c->stop = any ? GSTORE_STOP_CYCLE : GSTORE_STOP_LEAF;
			break;
		}
		if (c->n == max_steps + 1) {
			c->stop = GSTORE_STOP_STEPS;
			break;
		}
		/* Copy out of the page before the next read moves the cursor. */
		uint64_t peer = item_peer(it), w = item_weight(it);
		uint8_t ek = it[14];
		if ((rc = gstore_node_get(r, peer, &n)))
			return rc == -ENOENT ? GSTORE_ECORRUPT : rc;
		struct gstore_step *s = &c->steps[c->n++];
		step_fill(s, &n);
		s->edge_kind = ek;
		s->latency_ns = w;
		if (c->symptom_latency_ns == 0)
			c->symptom_latency_ns = w;
	}
	for (int i = 0; i < c->n; i++) {
		double sh = c->symptom_latency_ns
				    ? (double)c->steps[i].latency_ns / (double)c->symptom_latency_ns
				    : 0;
		c->steps[i].share = sh > 1 ? 1 : sh;
	}
	return 0;
}

/* ================================================================== bounded BFS */

/*
 * The visited set: open addressing over ids (never 0), with a generation per slot so that
 * starting a new traversal costs nothing (bump the generation) instead of clearing the table.
 */
struct vslot {
	uint64_t id;
	uint32_t gen;
	uint32_t pad;
};
struct vset {
	struct vslot *s;
	size_t cap, n; /* cap: power of two */
	uint32_t gen;
	/* one BFS level's in-blocks: block id -> value (generation per level, like the set) */
	struct bslot *bs;
	size_t bcap; /* power of two */
	uint32_t bgen;
	uint64_t *bl; /* the level's distinct blocks */
	size_t blcap;
	struct lslice *sl; /* the level's nodes' items, in queue order */
	size_t slcap;
};
struct lslice {
	const uint8_t *p, *end;
};
struct bslot {
	uint64_t blk;
	const uint8_t *v; /* NULL: no such block */
	size_t len;
	uint32_t gen;
};

/*
 * Ids that are causes of one another sit close together (the engine allocates in time order), so
 * the hash keeps neighbouring ids in neighbouring slots: a traversal's set stays in few cache
 * lines, and ids only collide when they differ by a multiple of the table size.
 */
static inline size_t vhash(uint64_t id, size_t cap)
{
	return (size_t)(id ^ (id >> 20)) & (cap - 1);
}

static int vset_grow(struct vset *v, size_t want)
{
	size_t cap = v->cap ? v->cap : 1024;
	while (cap < want * 2)
		cap *= 2;
	if (cap == v->cap)
		return 0;
	struct vslot *s = calloc(cap, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < v->cap; i++) {
		if (v->s[i].gen != v->gen || !v->s[i].id)
			continue;
		size_t h = vhash(v->s[i].id, cap);
		while (s[h].gen == v->gen && s[h].id)
			h = (h + 1) & (cap - 1);
		s[h] = v->s[i];
	}
	free(v->s);
	v->s = s;
	v->cap = cap;
	return 0;
}

static int vset_reset(struct vset *v)
{
	v->n = 0;
	if (++v->gen == 0) { /* wrapped: really clear */
		memset(v->s, 0, v->cap * sizeof(*v->s));
		v->gen = 1;
	}
	return v->cap ? 0 : vset_grow(v, 512);
}

/* 1 when id was added, 0 when it was there, or -ENOMEM. */
static inline int vset_add(struct vset *v, uint64_t id)
{
	if (KP_UNLIKELY((v->n + 1) * 2 > v->cap)) {
		int rc = vset_grow(v, v->n + 1);
		if (rc)
			return rc;
	}
	size_t h = vhash(id, v->cap);
	for (;;) {
		struct vslot *s = &v->s[h];
		if (s->gen != v->gen) {
			s->id = id;
			s->gen = v->gen;
			v->n++;
			return 1;
		}
		if (s->id == id)
			return 0;
		h = (h + 1) & (v->cap - 1);
	}
}

static inline int vset_has(const struct vset *v, uint64_t id)
{
	size_t h = vhash(id, v->cap);
	for (;;) {
		const struct vslot *s = &v->s[h];
		if (s->gen != v->gen)
			return 0;
		if (s->id == id)
			return 1;
		h = (h + 1) & (v->cap - 1);
	}
}

static int sg_push_node(struct gstore_subgraph *sg, uint64_t id, uint8_t depth)
{
	if (sg->n_nodes == sg->cap_nodes) {
		size_t cap = sg->cap_nodes ? sg->cap_nodes * 2 : 256;
		uint64_t *n = realloc(sg->nodes, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		sg->nodes = n;
		uint8_t *d = realloc(sg->depth, cap);
		if (!d)
			return -ENOMEM;
		sg->depth = d;
		sg->cap_nodes = cap;
	}
	sg->nodes[sg->n_nodes] = id;
	sg->depth[sg->n_nodes++] = depth;
	return 0;
}

static int sg_push_edge(struct gstore_subgraph *sg, const uint8_t *it, uint64_t self, int dir)
{
	if (sg->n_edges == sg->cap_edges) {
		size_t cap = sg->cap_edges ? sg->cap_edges * 2 : 256;
		struct gstore_edge *e = realloc(sg->edges, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		sg->edges = e;
		sg->cap_edges = cap;
	}
	item_to_edge(it, self, dir, &sg->edges[sg->n_edges++]);
	return 0;
}

/* Sorts ids ascending: quicksort without a comparison callback, insertion sort for short runs. */
static void u64_sort(uint64_t *a, size_t n)
{
	while (n > 24) {
		uint64_t x = a[0], y = a[n / 2], z = a[n - 1]; /* median of three */
		uint64_t piv =
			x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
		size_t i = 0, j = n - 1;
		for (;;) {
			while (a[i] < piv)
				i++;
			while (a[j] > piv)
				j--;
			if (i >= j)
				break;
			uint64_t t = a[i];
			a[i++] = a[j];
			a[j--] = t;
		}
		/* recurse into the smaller part, loop on the larger */
		if (j + 1 < n - j - 1) {
			u64_sort(a, j + 1);
			a += j + 1;
			n -= j + 1;
		} else {
			u64_sort(a + j + 1, n - j - 1);
			n = j + 1;
		}
	}
	for (size_t i = 1; i < n; i++) {
		uint64_t x = a[i];
		size_t j = i;
		for (; j > 0 && a[j - 1] > x; j--)
			a[j] = a[j - 1];
		a[j] = x;
	}
}

/*
 * How many nodes ahead the expansion prefetches items: all of a level at once measured slower
 * (bench/graph: p50 24 us against 20 us), far enough ahead to hide a miss, few enough to leave
 * fill buffers for the misses the expansion itself takes.
 */
#define LEVEL_AHEAD 8

static inline struct bslot *level_slot(struct vset *v, uint64_t blk)
{
	size_t h = (size_t)blk & (v->bcap - 1); /* block ids of one level are close together */
	while (v->bs[h].gen == v->bgen && v->bs[h].blk != blk)
		h = (h + 1) & (v->bcap - 1);
	return &v->bs[h];
}

/*
 * Reads the in-blocks of the n nodes of one BFS level: each distinct block once, in key order
 * (the cursor stays on the leaf page it is on when the next key is there too), then each node's
 * items into v->sl[0..n) in queue order. The passes prefetch what the next one reads (slot
 * offsets, then items), so the cache misses of a level overlap instead of queueing one by one.
 */
static int level_blocks(struct gstore_rtxn *r, struct vset *v, const uint64_t *ids, size_t n)
{
	size_t nb = 0;
	int rc;
	if (n * 2 > v->bcap) {
		size_t cap = v->bcap ? v->bcap : 256;
		while (cap < n * 2)
			cap *= 2;
		struct bslot *bs = calloc(cap, sizeof(*bs));
		uint64_t *bl = malloc(cap * sizeof(*bl));
		if (!bs || !bl) {
			free(bs);
			free(bl);
			return -ENOMEM;
		}
		free(v->bs);
		free(v->bl);
		v->bs = bs;
		v->bl = bl;
		v->bcap = v->blcap = cap;
		v->bgen = 0;
	}
	if (++v->bgen == 0) { /* wrapped: really clear */
		memset(v->bs, 0, v->bcap * sizeof(*v->bs));
		v->bgen = 1;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t blk = ids[i] >> BLK_SHIFT;
		struct bslot *s = level_slot(v, blk);
		if (s->gen != v->bgen) {
			*s = (struct bslot){.blk = blk, .gen = v->bgen};
			v->bl[nb++] = blk;
		}
	}
	u64_sort(v->bl, nb);
	for (size_t i = 0; i < nb; i++) {
		struct bslot *s = level_slot(v, v->bl[i]);
		if ((rc = blk_get(r, v->bl[i], &s->v, &s->len)) < 0)
			return rc;
		if (rc == 0)
			s->v = NULL;
	}
	if (n > v->slcap) {
		size_t cap = v->slcap ? v->slcap : 256;
		while (cap < n)
			cap *= 2;
		struct lslice *sl = realloc(v->sl, cap * sizeof(*sl));
		if (!sl)
			return -ENOMEM;
		v->sl = sl;
		v->slcap = cap;
	}
	for (size_t i = 0; i < n; i++) { /* block of each node; prefetch its slot offsets */
		const struct bslot *s = level_slot(v, ids[i] >> BLK_SHIFT);
		v->sl[i] = (struct lslice){s->v, s->v ? s->v + s->len : NULL};
		if (s->v)
			__builtin_prefetch(s->v + 4 * (ids[i] & (BLK_NODES - 1)));
	}
	for (size_t i = 0; i < n; i++) { /* the slots; prefetch their first items */
		struct lslice *l = &v->sl[i];
		if (!l->p)
			continue;
		rc = blk_slice(l->p, (size_t)(l->end - l->p), (unsigned)(ids[i] & (BLK_NODES - 1)),
			       &l->p, &l->end);
		if (rc < 0)
			return rc;
		if (rc == 0)
			l->p = l->end = NULL;
		else if (i < LEVEL_AHEAD)
			__builtin_prefetch(l->p); /* the rest as the expansion gets near them */
	}
	return 0;
}

/*
 * Level by level: for ancestors (in) every block a level needs is read once up front
 * (level_blocks), then the level's nodes are expanded in queue order as before, so the result
 * (order included) does not depend on the layout.
 */
int gstore_traverse(struct gstore_rtxn *r, uint64_t from, enum gstore_dir dir, int depth,
		    size_t max_nodes, unsigned flags, struct gstore_subgraph *sg)
{
	struct gstore_node n;
	struct vset *vs;
	int rc;
	sg->n_nodes = sg->n_edges = 0;
	sg->truncated = false;
	if (depth < 0 || depth > 255)
		return -EINVAL;
	if (!max_nodes)
		max_nodes = 100000;
	if ((rc = gstore_node_get(r, from, &n)))
		return rc;
	if (!sg->visited && !(sg->visited = calloc(1, sizeof(struct vset))))
		return -ENOMEM;
	vs = sg->visited;
	if ((rc = vset_reset(vs)) || (rc = sg_push_node(sg, from, 0)) ||
	    (rc = vset_add(vs, from)) < 0)
		return rc;
	for (size_t lo = 0, hi; lo < sg->n_nodes; lo = hi) {
		hi = sg->n_nodes;
		uint8_t d = sg->depth[lo];
		if (d >= depth)
			break; /* BFS order: every later node is at least this deep */
		if (dir == GSTORE_IN && (rc = level_blocks(r, vs, sg->nodes + lo, hi - lo)))
			return rc;
		for (size_t head = lo; head < hi; head++) {
			uint64_t u = sg->nodes[head];
			const uint8_t *p, *end;
			if (dir == GSTORE_IN) {
				if (head + LEVEL_AHEAD < hi && vs->sl[head + LEVEL_AHEAD - lo].p)
					__builtin_prefetch(vs->sl[head + LEVEL_AHEAD - lo].p);
				p = vs->sl[head - lo].p;
				end = vs->sl[head - lo].end;
				rc = p != NULL;
			} else {
				rc = adj_first(r, u, dir, &p, &end);
			}
			while (rc == 1) {
				for (; p < end; p += ITEM_LEN) {
					uint64_t peer = item_peer(p);
					if (!vset_has(vs, peer)) {
						if (sg->n_nodes >= max_nodes) {
							sg->truncated = true;
							return 0;
						}
						if ((rc = vset_add(vs, peer)) < 0 ||
						    (rc = sg_push_node(sg, peer, (uint8_t)(d + 1))))
							return rc;
					}
					if (flags & GSTORE_SG_EDGES) {
						if (sg->n_edges >=
						    4 * max_nodes) { /* hubs: bound the edges too */
							sg->truncated = true;
							return 0;
						}
						if ((rc = sg_push_edge(sg, p, u, dir)))
							return rc;
					}
				}
				rc = adj_next(r, dir, &p, &end);
			}
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

void gstore_subgraph_free(struct gstore_subgraph *sg)
{
	struct vset *vs = sg->visited;
	if (vs) {
		free(vs->s);
		free(vs->bs);
		free(vs->bl);
		free(vs->sl);
	}
	free(vs);
	free(sg->nodes);
	free(sg->depth);
	free(sg->edges);
	memset(sg, 0, sizeof(*sg));
}

/* ================================================================== shortest path */

struct pslot {
	uint64_t id, parent, weight;
	uint8_t kind, depth, used;
};
struct pmap {
	struct pslot *s;
	size_t cap, n;
};

static struct pslot *pmap_find(struct pmap *m, uint64_t id)
{
	size_t h = vhash(id, m->cap);
	while (m->s[h].used) {
		if (m->s[h].id == id)
			return &m->s[h];
		h = (h + 1) & (m->cap - 1);
	}
	return NULL;
}

static int pmap_add(struct pmap *m, const struct pslot *v)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		struct pslot *s = calloc(cap, sizeof(*s));
		if (!s)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->s[i].used)
				continue;
			size_t h = vhash(m->s[i].id, cap);
			while (s[h].used)
				h = (h + 1) & (cap - 1);
			s[h] = m->s[i];
		}
		free(m->s);
		m->s = s;
		m->cap = cap;
	}
	size_t h = vhash(v->id, m->cap);
	while (m->s[h].used)
		h = (h + 1) & (m->cap - 1);
	m->s[h] = *v;
	m->s[h].used = 1;
	m->n++;
	return 0;
}

struct frontier {
	uint64_t *v;
	size_t n, cap;
};

static int fr_push(struct frontier *f, uint64_t id)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 256;
		uint64_t *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = id;
	return 0;
}

int gstore_path(struct gstore_rtxn *r, uint64_t a, uint64_t b, int max_hops, size_t max_nodes,
		struct gstore_path *p)
{
	struct pmap side[2] = {{0}}; /* 0: forward from a, 1: backward from b */
	struct frontier fr[2] = {{0}}, next = {0};
	struct gstore_node n;
	int depth[2] = {0, 0}, rc;
	memset(p, 0, sizeof(*p));
	if (max_hops < 1 || max_hops > 64)
		return -EINVAL;
	if (!max_nodes)
		max_nodes = 100000;
	if ((rc = gstore_node_get(r, a, &n)) || (rc = gstore_node_get(r, b, &n)))
		return rc;
	if (a == b) {
		p->n_nodes = 1;
		p->nodes[0] = a;
		return 0;
	}
	struct pslot ra = {.id = a}, rb = {.id = b};
	if ((rc = pmap_add(&side[0], &ra)) || (rc = pmap_add(&side[1], &rb)) ||
	    (rc = fr_push(&fr[0], a)) || (rc = fr_push(&fr[1], b)))
		goto cleanup;
	/* meet: the edge joining the two searches (src on the forward side, dst on the backward).
	 */
	struct gstore_edge meet = {0};
	int best = INT32_MAX;
	rc = -ENOENT;
	while (depth[0] + depth[1] < max_hops && fr[0].n && fr[1].n) {
		int s = fr[0].n <= fr[1].n ? 0 : 1; /* expand the smaller frontier one level */
		int dir = s == 0 ? GSTORE_OUT : GSTORE_IN;
		next.n = 0;
		for (size_t i = 0; i < fr[s].n; i++) {
			uint64_t u = fr[s].v[i];
			const uint8_t *it, *end;
			int ar = adj_first(r, u, dir, &it, &end);
			while (ar == 1) {
				for (; it < end; it += ITEM_LEN) {
					uint64_t v = item_peer(it);
					struct pslot *o = pmap_find(&side[!s], v);
					if (o) {
						int len = depth[s] + 1 + o->depth;
						if (len < best) {
							best = len;
							item_to_edge(it, u, dir, &meet);
						}
					}
					if (pmap_find(&side[s], v))
						continue;
					if (side[0].n + side[1].n >= max_nodes) {
						p->truncated = true;
						rc = -ENOENT;
						goto cleanup;
					}
					struct pslot ps = {.id = v,
							   .parent = u,
							   .weight = item_weight(it),
							   .kind = it[14],
							   .depth = (uint8_t)(depth[s] + 1)};
					if ((rc = pmap_add(&side[s], &ps)) ||
					    (rc = fr_push(&next, v)))
						goto cleanup;
				}
				ar = adj_next(r, dir, &it, &end);
			}
			if (ar < 0) {
				rc = ar;
				goto cleanup;
			}
		}
		depth[s]++;
		struct frontier t = fr[s];
		fr[s] = next;
		next = t;
		if (best <= max_hops) {
			rc = 0;
			break;
		}
		rc = -ENOENT;
	}
	if (rc)
		goto cleanup;
	/* Forward half: from meet.src back to a (reversed), then meet, then back half to b. */
	uint64_t fwd[65];
	struct gstore_edge fe[64];
	int nf = 0;
	for (uint64_t x = meet.src; x != a;) {
		struct pslot *ps = pmap_find(&side[0], x);
		fe[nf] = (struct gstore_edge){ps->parent, x, ps->weight, ps->kind};
		fwd[nf++] = x;
		x = ps->parent;
	}
	p->nodes[p->n_nodes++] = a;
	for (int i = nf - 1; i >= 0; i--) {
		p->edges[p->n_nodes - 1] = fe[i];
		p->nodes[p->n_nodes++] = fwd[i];
	}
	p->edges[p->n_nodes - 1] = meet;
	p->nodes[p->n_nodes++] = meet.dst;
	for (uint64_t x = meet.dst; x != b;) {
		struct pslot *ps = pmap_find(&side[1], x);
		p->edges[p->n_nodes - 1] =
			(struct gstore_edge){x, ps->parent, ps->weight, ps->kind};
		p->nodes[p->n_nodes++] = ps->parent;
		x = ps->parent;
	}
cleanup:
	for (int i = 0; i < 2; i++) {
		free(side[i].s);
		free(fr[i].v);
	}
	free(next.v);
	return rc;
}

/* ================================================================== JSON */

static void json_labels(struct kp_buf *b, const struct gstore_node *n)
{
	const char *p = n->labels, *end = n->labels ? n->labels + n->labels_len : NULL;
	int first = 1;
	buf_puts(b, "{");
	while (p && p < end) {
		size_t kl = strnlen(p, (size_t)(end - p));
		if (p + kl + 1 >= end)
			break;
		const char *v = p + kl + 1;
		size_t vl = strnlen(v, (size_t)(end - v));
		if (!first)
			buf_puts(b, ",");
		first = 0;
		json_str(b, p, kl);
		buf_puts(b, ":");
		json_str(b, v, vl);
		p = v + vl + 1;
	}
	buf_puts(b, "}");
}

void gstore_json_node(struct kp_buf *b, const struct gstore_node *n)
{
	buf_printf(b, "{\"id\":%" PRIu64 ",\"kind\":", n->id);
	json_cstr(b, gstore_node_kind_name(n->kind));
	buf_printf(b,
		   ",\"flags\":%u,\"error\":%s,\"pid\":%u,\"tid\":%u,\"host\":%" PRIu64
		   ",\"service\":",
		   n->flags, (n->flags & GN_F_ERROR) ? "true" : "false", n->pid, n->tid, n->host);
	json_cstr(b, n->service ? n->service : "");
	buf_printf(b,
		   ",\"start_ns\":%" PRIu64 ",\"end_ns\":%" PRIu64 ",\"weight_ns\":%" PRIu64
		   ",\"labels\":",
		   n->start_ns, n->end_ns, n->weight_ns);
	json_labels(b, n);
	buf_puts(b, "}");
}

static void json_step(struct kp_buf *b, const struct gstore_step *s, int with_edge)
{
	buf_printf(b, "{\"id\":%" PRIu64 ",\"kind\":", s->id);
	json_cstr(b, gstore_node_kind_name(s->kind));
	if (with_edge) {
		buf_puts(b, ",\"edge\":");
		json_cstr(b, gstore_edge_kind_name(s->edge_kind));
	}
	buf_printf(b, ",\"pid\":%u,\"tid\":%u,\"host\":%" PRIu64 ",\"comm\":", s->pid, s->tid,
		   s->host);
	json_cstr(b, s->comm);
	buf_puts(b, ",\"service\":");
	json_cstr(b, s->service);
	buf_puts(b, ",\"text\":");
	json_cstr(b, s->text);
	buf_printf(b,
		   ",\"error\":%s,\"latency_ns\":%" PRIu64 ",\"share\":%.4f,\"start_ns\":%" PRIu64
		   ",\"end_ns\":%" PRIu64 "}",
		   (s->flags & GN_F_ERROR) ? "true" : "false", s->latency_ns, s->share, s->start_ns,
		   s->end_ns);
}

void gstore_json_chain(struct kp_buf *b, const char *key, const struct gstore_chain *c)
{
	buf_puts(b, "{\"key\":");
	if (key)
		json_cstr(b, key);
	else
		buf_puts(b, "null");
	buf_puts(b, ",\"symptom\":");
	if (c->n > 0)
		json_step(b, &c->steps[0], 0);
	else
		buf_puts(b, "null");
	buf_puts(b, ",\"chain\":[");
	for (int i = 1; i < c->n; i++) {
		if (i > 1)
			buf_puts(b, ",");
		json_step(b, &c->steps[i], 1);
	}
	buf_puts(b, "],\"root_cause\":");
	if (c->n > 1)
		json_step(b, &c->steps[c->n - 1], 1);
	else
		buf_puts(b, "null");
	buf_printf(b, ",\"symptom_latency_ns\":%" PRIu64 ",\"stop\":", c->symptom_latency_ns);
	json_cstr(b, gstore_stop_name(c->stop));
	buf_puts(b, "}");
}

static void json_edge(struct kp_buf *b, const struct gstore_edge *e)
{
	buf_printf(b, "{\"src\":%" PRIu64 ",\"dst\":%" PRIu64 ",\"kind\":", e->src, e->dst);
	json_cstr(b, gstore_edge_kind_name(e->kind));
	buf_printf(b, ",\"weight_ns\":%" PRIu64 "}", e->weight_ns);
}

static int json_node_by_id(struct kp_buf *b, struct gstore_rtxn *r, uint64_t id, int depth)
{
	struct gstore_node n;
	int rc = gstore_node_get(r, id, &n);
	if (rc == -ENOENT) {
		buf_printf(b, "{\"id\":%" PRIu64 ",\"missing\":true}", id);
		return 0;
	}
	if (rc)
		return rc;
	gstore_json_node(b, &n);
	if (depth >= 0) { /* splice "depth" in before the closing brace */
		b->len--;
		buf_printf(b, ",\"depth\":%d}", depth);
	}
	return 0;
}

int gstore_json_subgraph(struct kp_buf *b, struct gstore_rtxn *r, const char *key,
			 enum gstore_dir dir, const struct gstore_subgraph *sg)
{
	int rc;
	buf_puts(b, "{\"key\":");
	if (key)
		json_cstr(b, key);
	else
		buf_puts(b, "null");
	if (sg->n_nodes)
		buf_printf(b, ",\"root\":%" PRIu64, sg->nodes[0]);
	buf_printf(b, ",\"direction\":\"%s\",\"truncated\":%s,\"nodes\":[",
		   dir == GSTORE_IN ? "ancestors" : "descendants",
		   sg->truncated ? "true" : "false");
	for (size_t i = 0; i < sg->n_nodes; i++) {
		if (i)
			buf_puts(b, ",");
		if ((rc = json_node_by_id(b, r, sg->nodes[i], sg->depth[i])))
			return rc;
	}
	buf_puts(b, "],\"edges\":[");
	for (size_t i = 0; i < sg->n_edges; i++) {
		if (i)
			buf_puts(b, ",");
		json_edge(b, &sg->edges[i]);
	}
	buf_puts(b, "]}");
	return 0;
}

int gstore_json_incidents(struct kp_buf *b, struct gstore_rtxn *r,
			  const struct gstore_incident *inc, size_t n, size_t cap_asked)
{
	int rc;
	buf_puts(b, "{\"incidents\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_puts(b, ",");
		size_t at = b->len;
		if ((rc = json_node_by_id(b, r, inc[i].id, -1)))
			return rc;
		if (b->len > at && b->data[b->len - 1] == '}') {
			b->len--;
			buf_printf(b, ",\"time_ns\":%" PRIu64 "}", inc[i].time_ns);
		}
	}
	buf_puts(b, "],\"next\":");
	if (n && n >= cap_asked)
		buf_printf(b, "{\"time_ns\":%" PRIu64 ",\"id\":%" PRIu64 "}", inc[n - 1].time_ns,
			   inc[n - 1].id);
	else
		buf_puts(b, "null");
	buf_puts(b, "}");
	return 0;
}

int gstore_json_path(struct kp_buf *b, struct gstore_rtxn *r, const struct gstore_path *p)
{
	int rc;
	buf_puts(b, "{\"nodes\":[");
	for (int i = 0; i < p->n_nodes; i++) {
		if (i)
			buf_puts(b, ",");
		if ((rc = json_node_by_id(b, r, p->nodes[i], -1)))
			return rc;
	}
	buf_puts(b, "],\"edges\":[");
	for (int i = 0; i + 1 < p->n_nodes; i++) {
		if (i)
			buf_puts(b, ",");
		json_edge(b, &p->edges[i]);
	}
	buf_puts(b, "]}");
	return 0;
}

/* ================================================================== checker */

#define CHK(cond, ...)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			snprintf(msg, msglen, __VA_ARGS__);                                        \
			rc = GSTORE_ECORRUPT;                                                      \
			goto cleanup;                                                              \
		}                                                                                  \
	} while (0)

static int has_dup(MDB_cursor *c, const MDB_val *key, const void *data, size_t len)
{
	MDB_val k = *key, v = {len, (void *)data};
	return mdb_cursor_get(c, &k, &v, MDB_GET_BOTH) == 0;
}

int gstore_check(struct gstore *g, char *msg, size_t msglen)
{
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL, *c2 = NULL;
	MDB_val k, v;
	uint64_t next_id, n_nodes = 0, n_sym = 0, n_out = 0, n_in = 0, n_keys = 0, n_nk = 0;
	uint8_t kb[16], item[ITEM_LEN];
	int rc = merr(mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn));
	snprintf(msg, msglen, "ok");
	if (rc)
		return rc;
	if ((rc = meta_get_u64(txn, g->dbi[DB_META], &next_id)))
		goto cleanup;
	/* Nodes: decode, id bound, in the age index (and by_time for symptoms). */
	if ((rc = merr(mdb_cursor_open(txn, g->dbi[DB_NODES], &c))))
		goto cleanup;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct gstore_node n;
		CHK(k.mv_size == 8, "node key of %zu bytes", k.mv_size);
		uint64_t id = get_be64(k.mv_data);
		CHK(id && id < next_id, "node id %" PRIu64 " not below next_id %" PRIu64, id,
		    next_id);
		CHK(rec_decode(id, &v, &n) == 0, "node %" PRIu64 ": record does not decode", id);
		CHK(n.kind >= 1 && n.kind < GN__COUNT, "node %" PRIu64 ": kind %d", id, n.kind);
		MDB_val tk = timekey(kb, n.end_ns, id), tv;
		CHK(mdb_get(txn, g->dbi[DB_AGE], &tk, &tv) == 0, "node %" PRIu64 " not in age", id);
		if (n.kind == GN_SYMPTOM) {
			CHK(mdb_get(txn, g->dbi[DB_BYTIME], &tk, &tv) == 0,
			    "symptom %" PRIu64 " not in by_time", id);
			n_sym++;
		}
		n_nodes++;
	}
	CHK(rc == MDB_NOTFOUND, "walking nodes: %s", mdb_strerror(rc));
	rc = 0;
	MDB_stat st;
	mdb_stat(txn, g->dbi[DB_AGE], &st);
	CHK(st.ms_entries == n_nodes, "age has %zu entries for %" PRIu64 " nodes", st.ms_entries,
	    n_nodes);
	mdb_stat(txn, g->dbi[DB_BYTIME], &st);
	CHK(st.ms_entries == n_sym, "by_time has %zu entries for %" PRIu64 " symptoms",
	    st.ms_entries, n_sym);
	mdb_cursor_close(c);
	c = NULL;
	/* Out edges: both ends exist, and the mirror is in the effect's in-block. */
	if ((rc = merr(mdb_cursor_open(txn, g->dbi[DB_OUT], &c))))
		goto cleanup;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		CHK(k.mv_size == 8 && v.mv_size == ITEM_LEN, "out: bad item size");
		uint64_t self = get_be64(k.mv_data), peer = item_peer(v.mv_data);
		uint8_t ek = ((const uint8_t *)v.mv_data)[14];
		CHK(ek >= 1 && ek < GE__COUNT, "out: edge kind %d", ek);
		CHK(self != peer, "out: self loop on %" PRIu64, self);
		MDB_val nk = idkey(kb, self), nv;
		CHK(mdb_get(txn, g->dbi[DB_NODES], &nk, &nv) == 0,
		    "out: edge of missing node %" PRIu64, self);
		nk = idkey(kb, peer);
		CHK(mdb_get(txn, g->dbi[DB_NODES], &nk, &nv) == 0,
		    "out: edge %" PRIu64 " -> missing node %" PRIu64, self, peer);
		item_encode(item, item_weight(v.mv_data), self, ek);
		MDB_val bk = idkey(kb, peer >> BLK_SHIFT), bv;
		const uint8_t *p = NULL, *end = NULL;
		int found = 0;
		if (mdb_get(txn, g->dbi[DB_IN], &bk, &bv) == 0) {
			CHK(blk_valid_full(bv.mv_data, bv.mv_size) == 0,
			    "in_blk: block %" PRIu64 " does not decode", peer >> BLK_SHIFT);
			blk_slice(bv.mv_data, bv.mv_size, (unsigned)(peer & (BLK_NODES - 1)), &p,
				  &end);
			for (; p && p < end && !found; p += ITEM_LEN)
				found = memcmp(p, item, ITEM_LEN) == 0;
		}
		CHK(found, "out: edge %" PRIu64 "/%" PRIu64 " has no mirror in in_blk", self, peer);
		n_out++;
	}
	CHK(rc == MDB_NOTFOUND, "walking out: %s", mdb_strerror(rc));
	rc = 0;
	mdb_cursor_close(c);
	c = NULL;
	/* In-blocks: decode, slots of existing nodes, items sorted, every item mirrored in out. */
	if ((rc = merr(mdb_cursor_open(txn, g->dbi[DB_IN], &c))) ||
	    (rc = merr(mdb_cursor_open(txn, g->dbi[DB_OUT], &c2))))
		goto cleanup;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		CHK(k.mv_size == 8, "in_blk: key of %zu bytes", k.mv_size);
		uint64_t blk = get_be64(k.mv_data);
		CHK(blk <= (GSTORE_ID_MAX >> BLK_SHIFT), "in_blk: block %" PRIu64 " too high", blk);
		CHK(blk_valid_full(v.mv_data, v.mv_size) == 0,
		    "in_blk: block %" PRIu64 " does not decode (%zu bytes)", blk, v.mv_size);
		CHK(blk_items(v.mv_size) > 0, "in_blk: empty block %" PRIu64 " stored", blk);
		for (unsigned j = 0; j < BLK_NODES; j++) {
			const uint8_t *p, *end;
			uint64_t self = blk << BLK_SHIFT | j;
			if (blk_slice(v.mv_data, v.mv_size, j, &p, &end) != 1)
				continue;
			MDB_val nk = idkey(kb, self), nv;
			CHK(self && mdb_get(txn, g->dbi[DB_NODES], &nk, &nv) == 0,
			    "in_blk: edges of missing node %" PRIu64, self);
			for (const uint8_t *q = p; q < end; q += ITEM_LEN) {
				uint64_t peer = item_peer(q);
				uint8_t ek = q[14];
				CHK(ek >= 1 && ek < GE__COUNT, "in_blk: edge kind %d", ek);
				CHK(self != peer, "in_blk: self loop on %" PRIu64, self);
				CHK(q == p || memcmp(q - ITEM_LEN, q, ITEM_LEN) < 0,
				    "in_blk: items of %" PRIu64 " out of order", self);
				nk = idkey(kb, peer);
				CHK(mdb_get(txn, g->dbi[DB_NODES], &nk, &nv) == 0,
				    "in_blk: edge %" PRIu64 " <- missing node %" PRIu64, self,
				    peer);
				item_encode(item, item_weight(q), self, ek);
				CHK(has_dup(c2, &nk, item, ITEM_LEN),
				    "in_blk: edge %" PRIu64 "/%" PRIu64 " has no mirror in out",
				    self, peer);
				n_in++;
			}
		}
	}
	CHK(rc == MDB_NOTFOUND, "walking in_blk: %s", mdb_strerror(rc));
	rc = 0;
	mdb_cursor_close(c);
	mdb_cursor_close(c2);
	c = c2 = NULL;
	CHK(n_out == n_in, "out has %" PRIu64 " items, in %" PRIu64, n_out, n_in);
	/* Keys both ways. */
	if ((rc = merr(mdb_cursor_open(txn, g->dbi[DB_BYKEY], &c))) ||
	    (rc = merr(mdb_cursor_open(txn, g->dbi[DB_NODEKEYS], &c2))))
		goto cleanup;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		CHK(v.mv_size == 8, "by_key: value of %zu bytes", v.mv_size);
		MDB_val nv, nk = {8, v.mv_data};
		CHK(mdb_get(txn, g->dbi[DB_NODES], &nk, &nv) == 0,
		    "by_key: key maps to missing node %" PRIu64, get_be64(v.mv_data));
		CHK(has_dup(c2, &nk, k.mv_data, k.mv_size),
		    "by_key: no node_keys entry for %" PRIu64, get_be64(v.mv_data));
		n_keys++;
	}
	CHK(rc == MDB_NOTFOUND, "walking by_key: %s", mdb_strerror(rc));
	rc = 0;
	mdb_stat(txn, g->dbi[DB_NODEKEYS], &st);
	n_nk = st.ms_entries;
	CHK(n_nk == n_keys, "node_keys has %" PRIu64 " entries, by_key %" PRIu64, n_nk, n_keys);
cleanup:
	if (c)
		mdb_cursor_close(c);
	if (c2)
		mdb_cursor_close(c2);
	mdb_txn_abort(txn);
	return rc;
}
