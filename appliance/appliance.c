/*
 * appliance.c - kprobed's start-up order, the frame consumer that feeds store, engine and live
 * stream, housekeeping (WAL release, span expiry), and shutdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/wire.h"
#include "appliance/internal.h"
#include "common/metrics.h"
#include "common/util.h"
#include "graph/correlate.h"
#include "graph/engine.h"
#include "graph/gstore.h"
#include "graph/tables.h"
#include "replay/capstore.h"
#include "store/ingest.h"
#include "store/store.h"
#include "store/table.h"
#include "store/wal.h"

/* ------------------------------------------------------------------ names for the live stream */

static void names_note(struct appliance *a, uint64_t node, const void *meta, size_t len)
{
	struct wire_meta_iter it = {meta, (const uint8_t *)meta + len};
	uint16_t kind, plen;
	const void *pl;
	pthread_mutex_lock(&a->names_mu);
	while (wire_meta_next(&it, &kind, &pl, &plen)) {
		if (kind == WIRE_META_PROC) {
			struct wire_proc p;
			if (wire_proc_decode(pl, plen, &p) < 0)
				continue;
			if (a->n_names >= (1u << 20) && !hmap_get(&a->names, node, p.pid))
				continue; /* bounded: the stream then shows no comm for new pids */
			int created;
			uint64_t *v = hmap_put(&a->names, node, p.pid, &created);
			if (created) {
				a->name_v = xrealloc(a->name_v, (a->n_names + 1) * sizeof(*a->name_v));
				*v = a->n_names++;
			}
			struct name_entry *n = &a->name_v[*v];
			snprintf(n->comm, sizeof(n->comm), "%s", p.comm);
			snprintf(n->service, sizeof(n->service), "%s", p.service);
		} else if (kind == WIRE_META_NODE) {
			char name[32], kernel[64];
			if (wire_node_decode(pl, plen, name, sizeof(name), kernel, sizeof(kernel)) < 0)
				continue;
			int created;
			uint64_t *v = hmap_put(&a->nodes, node, 0, &created);
			if (created) {
				a->node_names = xrealloc(a->node_names, (a->n_node_names + 1) *
									 sizeof(*a->node_names));
				a->node_kernels =
					xrealloc(a->node_kernels,
						 (a->n_node_names + 1) * sizeof(*a->node_kernels));
				*v = a->n_node_names++;
			}
			snprintf(a->node_names[*v], sizeof(a->node_names[0]), "%s", name);
			snprintf(a->node_kernels[*v], sizeof(a->node_kernels[0]), "%s", kernel);
		}
	}
	pthread_mutex_unlock(&a->names_mu);
}

struct stream_ctx {
	struct appliance *a;
	uint64_t node;
};

static void stream_meta(void *ctx, const struct kp_event *ev, struct httpd_stream_meta *m)
{
	struct stream_ctx *sc = ctx;
	struct appliance *a = sc->a;
	pthread_mutex_lock(&a->names_mu);
	uint64_t *v = hmap_get(&a->names, sc->node, ev->pid);
	if (v) {
		snprintf(m->comm, sizeof(m->comm), "%s", a->name_v[*v].comm);
		snprintf(m->service, sizeof(m->service), "%s", a->name_v[*v].service);
	}
	v = hmap_get(&a->nodes, sc->node, 0);
	if (v)
		snprintf(m->node, sizeof(m->node), "%s", a->node_names[*v]);
	pthread_mutex_unlock(&a->names_mu);
}

/* ------------------------------------------------------------------ the frame consumer */

/* Every durable frame, in LSN order, on the ingest thread. */
static void on_frame(void *ctx, uint64_t lsn, const struct wire_hdr *h, const void *raw)
{
	struct appliance *a = ctx;
	const struct kp_event *ev = raw;
	size_t evb = (size_t)h->n_events * sizeof(*ev);
	const void *meta = (const uint8_t *)raw + evb;
	size_t meta_len = h->raw_len - evb;
	int r = store_append(a->store, lsn, h->node_id, ev, h->n_events, meta, meta_len, NULL);
	if (r < 0)
		log_error("store: append of frame lsn %llu failed: %s", (unsigned long long)lsn,
			  store_strerror(r));
	if (a->cap)
		capstore_append_frame(a->cap, lsn, h->node_id, meta, meta_len);
	if (meta_len)
		names_note(a, h->node_id, meta, meta_len);
	engine_submit_frame(a->engine, h->node_id, ev, h->n_events, meta, meta_len);
	if (a->http && httpd_stream_clients(a->http) > 0) {
		struct stream_ctx sc = {a, h->node_id};
		httpd_stream_publish(a->http, ev, h->n_events, stream_meta, &sc);
	}
}

/*
 * WAL replay at start: back into the store and the capture store only (the engine analyzes
 * live traffic). The replay starts at the lower of the two's recovered LSNs; each takes only
 * the frames it does not hold.
 */
static void on_replay(void *ctx, uint64_t lsn, const struct wire_hdr *h, const void *raw)
{
	struct appliance *a = ctx;
	const struct kp_event *ev = raw;
	size_t evb = (size_t)h->n_events * sizeof(*ev);
	if (lsn > store_sealed_lsn(a->store))
		store_append(a->store, lsn, h->node_id, ev, h->n_events, (const uint8_t *)raw + evb,
			     h->raw_len - evb, NULL);
	if (a->cap)
		capstore_append_frame(a->cap, lsn, h->node_id, (const uint8_t *)raw + evb,
				      h->raw_len - evb);
	if (h->raw_len > evb)
		names_note(a, h->node_id, (const uint8_t *)raw + evb, h->raw_len - evb);
}

/* ------------------------------------------------------------------ metrics */

#define STAT_GAUGE(fn, expr)                                                                       \
	static double fn(void *ctx)                                                                \
	{                                                                                          \
		struct appliance *a = ctx;                                                         \
		struct store_stats ss;                                                             \
		struct ingest_stats is;                                                            \
		struct engine_stats es;                                                            \
		store_stats_get(a->store, &ss);                                                    \
		ingest_stats(a->ingest, &is);                                                      \
		engine_stats(a->engine, &es);                                                      \
		(void)ss, (void)is, (void)es;                                                      \
		return (double)(expr);                                                             \
	}

STAT_GAUGE(m_frames, is.frames)
STAT_GAUGE(m_events, is.events)
STAT_GAUGE(m_bytes_in, is.bytes)
STAT_GAUGE(m_dups, is.dups)
STAT_GAUGE(m_rejected,
	   is.rejected[0] + is.rejected[1] + is.rejected[2] + is.rejected[3] + is.rejected[4] +
		   is.rejected[5] + is.rejected[6] + is.rejected[7])
STAT_GAUGE(m_conns, is.conns_open)
STAT_GAUGE(m_fsyncs, is.fsyncs)
STAT_GAUGE(m_fsync_seconds, (double)is.fsync_ns_sum / 1e9)
STAT_GAUGE(m_fsync_max_seconds, (double)is.fsync_ns_max / 1e9)
STAT_GAUGE(m_segments, ss.segments)
STAT_GAUGE(m_segment_bytes, ss.segment_bytes)
STAT_GAUGE(m_segment_rows, ss.segment_rows)
STAT_GAUGE(m_memtable_rows, ss.memtable_rows)
STAT_GAUGE(m_corrupt, ss.corrupt_segments)
STAT_GAUGE(m_sealed_lsn, ss.sealed_lsn)
STAT_GAUGE(m_engine_events, es.events)
STAT_GAUGE(m_engine_dropped, es.dropped)
STAT_GAUGE(m_engine_symptoms, es.symptoms)
STAT_GAUGE(m_engine_nodes, es.nodes)
STAT_GAUGE(m_engine_edges, es.edges)
STAT_GAUGE(m_engine_requests, es.requests)

#define CAP_GAUGE(fn, field)                                                                       \
	static double fn(void *ctx)                                                                \
	{                                                                                          \
		struct appliance *a = ctx;                                                         \
		struct capstore_stats cs;                                                          \
		if (!a->cap)                                                                       \
			return 0;                                                                  \
		capstore_stats(a->cap, &cs);                                                       \
		return (double)cs.field;                                                           \
	}
CAP_GAUGE(m_cap_records, records)
CAP_GAUGE(m_cap_bad, bad_records)
CAP_GAUGE(m_cap_write_errors, write_errors)
CAP_GAUGE(m_cap_disk, disk_bytes)
CAP_GAUGE(m_cap_corrupt, corrupt)

static const struct {
	const char *name, *help;
	double (*fn)(void *);
} gauges[] = {
	{"kprobe_ingest_frames_total", "agent frames accepted and made durable", m_frames},
	{"kprobe_ingest_events_total", "events in accepted frames", m_events},
	{"kprobe_ingest_bytes_total", "frame bytes received", m_bytes_in},
	{"kprobe_ingest_duplicates_total", "resent frames acknowledged as duplicates", m_dups},
	{"kprobe_ingest_frames_rejected_total", "malformed frames rejected (all reasons)",
	 m_rejected},
	{"kprobe_ingest_connections", "agent connections open", m_conns},
	{"kprobe_wal_fsyncs_total", "WAL group-commit fsyncs", m_fsyncs},
	{"kprobe_wal_fsync_seconds_total", "time spent in WAL fsyncs", m_fsync_seconds},
	{"kprobe_wal_fsync_max_seconds", "slowest WAL fsync", m_fsync_max_seconds},
	{"kprobe_store_segments", "sealed segments", m_segments},
	{"kprobe_store_bytes_on_disk", "bytes of sealed segments", m_segment_bytes},
	{"kprobe_store_segment_rows", "rows in sealed segments", m_segment_rows},
	{"kprobe_store_memtable_rows", "rows not yet sealed", m_memtable_rows},
	{"kprobe_store_corrupt_segments_total", "segments quarantined after a checksum failure",
	 m_corrupt},
	{"kprobe_store_sealed_lsn", "highest WAL LSN sealed into segments", m_sealed_lsn},
	{"kprobe_engine_events_total", "events indexed by the causal engine", m_engine_events},
	{"kprobe_engine_dropped_total", "input the engine dropped (queue full)", m_engine_dropped},
	{"kprobe_engine_symptoms_total", "symptoms found", m_engine_symptoms},
	{"kprobe_engine_nodes_total", "graph nodes written", m_engine_nodes},
	{"kprobe_engine_edges_total", "graph edges written", m_engine_edges},
	{"kprobe_engine_requests_total", "requests inferred from TCP exchanges", m_engine_requests},
	{"kprobe_capture_records_total", "replay capture records stored", m_cap_records},
	{"kprobe_capture_bad_records_total", "malformed replay capture records skipped", m_cap_bad},
	{"kprobe_capture_write_errors_total", "capture records lost to failed writes",
	 m_cap_write_errors},
	{"kprobe_capture_bytes_on_disk", "bytes of capture logs", m_cap_disk},
	{"kprobe_capture_corrupt_total", "capture log entries that failed their checksum in a read",
	 m_cap_corrupt},
};

/* ------------------------------------------------------------------ life cycle */

static int write_ports(struct appliance *a)
{
	char path[600], tmp[620];
	snprintf(path, sizeof(path), "%s/kprobed.ports", a->data_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "api=%d ingest=%d otlp=%d pid=%d\n", httpd_port(a->http, HTTPD_API),
		ingest_port(a->ingest), httpd_port(a->http, HTTPD_OTLP), getpid());
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		return -errno;
	return 0;
}

int appliance_port(struct appliance *a, const char *which)
{
	if (!strcmp(which, "api"))
		return httpd_port(a->http, HTTPD_API);
	if (!strcmp(which, "otlp"))
		return httpd_port(a->http, HTTPD_OTLP);
	if (!strcmp(which, "ingest"))
		return ingest_port(a->ingest);
	return -1;
}

static void route(struct appliance *a, enum httpd_listener l, const char *method, const char *path,
		  unsigned flags, size_t max_body, httpd_handler_fn fn)
{
	int r = httpd_route(a->http, l, method, path, flags, max_body, fn, a);
	if (r < 0)
		log_error("httpd: cannot route %s %s: %s", method ? method : "*", path, strerror(-r));
}

/* Replay sessions: the worker binary, and whether POST /api/v1/replay may run programs. */
static void replay_setup(struct appliance *a)
{
	const char *e = a->cfg->replay_api_enabled;
	bool loop = !strcmp(a->cfg->api_bind, "127.0.0.1") ||
		    !strncmp(a->cfg->api_bind, "127.", 4) || !strcmp(a->cfg->api_bind, "::1") ||
		    !strcmp(a->cfg->api_bind, "localhost");
	a->replay_enabled = !strcmp(e, "true") || (!strcmp(e, "auto") && loop);
	/* the worker is kprobed itself; an appliance run inside another binary (the tests)
	 * uses the kprobed next to it */
	char self[4000];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	snprintf(a->exe, sizeof(a->exe), "%s", self);
	char *slash = strrchr(self, '/');
	if (slash && strcmp(slash + 1, "kprobed")) {
		snprintf(slash + 1, sizeof(self) - (size_t)(slash + 1 - self), "kprobed");
		if (access(self, X_OK) == 0)
			snprintf(a->exe, sizeof(a->exe), "%s", self);
	}
	if (!a->replay_enabled)
		log_info("replay through the API is off (replay.api.enabled = %s, api.bind %s)", e,
			 a->cfg->api_bind);
}

int appliance_open(const struct kp_config *cfg, const char *static_dir, struct appliance **out,
		   char *err, size_t errlen)
{
	struct appliance *a = xcalloc(1, sizeof(*a));
	a->cfg = cfg;
	pthread_mutex_init(&a->names_mu, NULL);
	pthread_mutex_init(&a->rs_mu, NULL);
	snprintf(a->data_dir, sizeof(a->data_dir), "%s", cfg->store_data_dir);
	int r = mkdir_p(a->data_dir, 0750);
	if (r < 0) {
		snprintf(err, errlen, "cannot create store.dataDir %s: %s (set store.dataDir to a "
				      "writable directory)",
			 a->data_dir, strerror(-r));
		goto fail;
	}

	/* 1. The store: segments verified, metadata loaded. */
	r = store_open(cfg, &a->store);
	if (r < 0) {
		snprintf(err, errlen, "cannot open the event store in %s: %s", a->data_dir,
			 store_strerror(r));
		goto fail;
	}

	/* 2. The graph and the engine. */
	char gdir[600];
	snprintf(gdir, sizeof(gdir), "%s/graph", a->data_dir);
	struct gstore_opts go = {.map_size = (uint64_t)cfg->store_graph_max_mb << 20};
	r = gstore_open(gdir, &go, &a->graph, err, errlen);
	if (r == GSTORE_EVERSION) {
		/* A graph written by another version: the causal graph is derived from the events
		 * (which the store keeps), so the appliance starts a new one instead of refusing to
		 * start; the old one is kept beside it for the version that wrote it. */
		char moved[700];
		snprintf(moved, sizeof(moved), "%s.old-%lld", gdir, (long long)time(NULL));
		if (rename(gdir, moved) < 0) {
			snprintf(err, errlen, "%s; moving it to %s failed: %s", gstore_strerror(r), moved,
				 strerror(errno));
			goto fail;
		}
		log_warn("graph: %s: moved to %s, a new causal graph starts (the recorded events are "
			 "kept; run the previous kprobed on the moved directory to read the old graph)",
			 err, moved);
		r = gstore_open(gdir, &go, &a->graph, err, errlen);
	}
	if (r < 0)
		goto fail;
	r = graph_tables_register(a->store, a->graph);
	if (r < 0) {
		snprintf(err, errlen, "cannot register the graph tables: %s", strerror(-r));
		goto fail;
	}
	/* 2b. The capture store (replay.capture.* records), queryable as FROM syscalls. */
	char cdir[600];
	snprintf(cdir, sizeof(cdir), "%s/syscalls", a->data_dir);
	struct capstore_opts cso = {.dir = cdir,
				    .max_bytes = (uint64_t)cfg->replay_capture_store_max_mb << 20,
				    .retention_days = (int)cfg->store_retention_days};
	r = capstore_open(&a->cap, &cso, err, errlen);
	if (r < 0)
		goto fail;
	r = store_table_register(a->store, capstore_table(), a->cap);
	if (r < 0) {
		snprintf(err, errlen, "cannot register the syscalls table: %s", strerror(-r));
		goto fail;
	}
	replay_setup(a);
	r = engine_open(cfg, a->graph, &a->engine);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the causal engine: %s", strerror(-r));
		goto fail;
	}
	struct corr_opts co;
	correlate_opts_from_config(&co, cfg);
	r = correlate_new(&co, &a->corr);
	if (r < 0) {
		snprintf(err, errlen, "cannot create the span index: %s", strerror(-r));
		goto fail;
	}

	/* Events stored untagged learn their transaction from spans at query time. */
	store_set_txn_resolver(a->store, &appliance_txn_resolver, a);

	/* 3. The WAL: everything acked since the last seal goes back into the store. */
	char wdir[600];
	snprintf(wdir, sizeof(wdir), "%s/wal", a->data_dir);
	struct wal_recovery rec;
	r = wal_open(&a->wal, wdir, NULL, &rec);
	if (r < 0) {
		snprintf(err, errlen, "cannot open the WAL in %s: %s%s", wdir, wal_strerror(r),
			 r == -EBUSY ? " (another kprobed uses this store.dataDir)" : "");
		goto fail;
	}
	if (rec.note[0])
		log_warn("wal: %s", rec.note);
	uint64_t sealed = KP_MIN(store_sealed_lsn(a->store), capstore_recovered_lsn(a->cap));
	int64_t replayed = ingest_replay(a->wal, sealed + 1, on_replay, a);
	if (replayed < 0) {
		snprintf(err, errlen, "WAL replay from LSN %llu failed: %s",
			 (unsigned long long)sealed + 1, wal_strerror((int)replayed));
		r = (int)replayed;
		goto fail;
	}
	if (replayed)
		log_info("recovery: %lld frames replayed from the WAL (after sealed LSN %llu)",
			 (long long)replayed, (unsigned long long)sealed);

	/* 4. HTTP (API + OTLP listeners). */
	struct httpd_opts ho;
	httpd_opts_init(&ho, cfg);
	ho.static_dir = static_dir;
	r = httpd_create(&ho, &a->http, err, errlen);
	if (r < 0)
		goto fail;
	route(a, HTTPD_API, "POST", "/api/v1/query", HTTPD_ROUTE_SLOW | HTTPD_ROUTE_GZIP, 1 << 20,
	      api_query);
	route(a, HTTPD_API, "GET", "/api/v1/incidents", HTTPD_ROUTE_SLOW, 0, api_incidents);
	route(a, HTTPD_API, "GET", "/api/v1/rootcause/", HTTPD_ROUTE_PREFIX | HTTPD_ROUTE_SLOW, 0,
	      api_rootcause);
	route(a, HTTPD_API, "GET", "/api/v1/graph/", HTTPD_ROUTE_PREFIX | HTTPD_ROUTE_SLOW, 0,
	      api_graph);
	route(a, HTTPD_API, "GET", "/api/v1/timeline", HTTPD_ROUTE_SLOW, 0, api_timeline);
	route(a, HTTPD_API, "GET", "/api/v1/replay/recording", HTTPD_ROUTE_SLOW, 0,
	      api_replay_recording);
	route(a, HTTPD_API, "GET", "/api/v1/replay/processes", HTTPD_ROUTE_SLOW, 0,
	      api_replay_processes);
	route(a, HTTPD_API, "POST", "/api/v1/replay/recordings", HTTPD_ROUTE_SLOW,
	      (size_t)cfg->replay_api_max_recording_mb << 20, api_replay_upload);
	route(a, HTTPD_API, "POST", "/api/v1/replay", HTTPD_ROUTE_SLOW, 64 << 10, api_replay_run);
	route(a, HTTPD_API, "GET", "/api/v1/replay/", HTTPD_ROUTE_PREFIX, 0, api_replay_get);
	route(a, HTTPD_OTLP, "POST", "/v1/traces", HTTPD_ROUTE_SLOW | HTTPD_ROUTE_GZIP,
	      (size_t)cfg->otlp_max_body_mb << 20, api_otlp);
	r = httpd_start(a->http, err, errlen);
	if (r < 0)
		goto fail;

	/* 5. Ingest last: agents are acked only once everything behind them runs. */
	struct ingest_opts io;
	ingest_opts_from_config(&io, cfg);
	io.consumer = on_frame;
	io.consumer_ctx = a;
	r = ingest_open(&a->ingest, a->wal, &io);
	if (r == 0)
		r = ingest_start(a->ingest);
	if (r < 0) {
		snprintf(err, errlen, "cannot listen for agents on %s:%lld: %s (is another kprobed "
				      "running? set ingest.port)",
			 cfg->ingest_bind, (long long)cfg->ingest_port, strerror(-r));
		goto fail;
	}
	for (size_t i = 0; i < KP_ARRAY_SIZE(gauges); i++)
		metrics_gauge_fn(gauges[i].name, gauges[i].help, gauges[i].fn, a);
	r = write_ports(a);
	if (r < 0)
		log_warn("cannot write %s/kprobed.ports: %s", a->data_dir, strerror(-r));
	log_info("kprobed up: api http://%s:%d/  ingest %s:%d  otlp http://%s:%d/v1/traces  data %s",
		 cfg->api_bind, httpd_port(a->http, HTTPD_API), cfg->ingest_bind,
		 ingest_port(a->ingest), cfg->otlp_bind, httpd_port(a->http, HTTPD_OTLP),
		 a->data_dir);
	*out = a;
	return 0;
fail:
	appliance_close(a);
	return r < 0 ? r : -EINVAL;
}

void appliance_tick(struct appliance *a)
{
	/* WAL files whose frames are all sealed into segments, and whose capture records are
	 * synced into the capture store, can go. */
	uint64_t sealed = store_sealed_lsn(a->store);
	if (a->cap) {
		int r = capstore_sync(a->cap);
		if (r < 0)
			log_warn("capture store: sync failed: %s (the WAL keeps the frames)",
				 strerror(-r));
		sealed = KP_MIN(sealed, capstore_synced_lsn(a->cap));
		uint64_t now = now_mono_ns();
		if (now - a->cap_retention_ns > 60 * NSEC_PER_SEC) {
			capstore_retention_run(a->cap, 0);
			a->cap_retention_ns = now;
		}
	}
	if (sealed > a->wal_released) {
		int r = wal_release(a->wal, sealed);
		if (r < 0)
			log_warn("wal: release up to %llu failed: %s", (unsigned long long)sealed,
				 wal_strerror(r));
		else
			a->wal_released = sealed;
	}
	correlate_expire(a->corr, now_real_ns());
}

void appliance_close(struct appliance *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < KP_ARRAY_SIZE(gauges); i++)
		metrics_gauge_fn_clear(gauges[i].name, a);
	/* Producers first: no new frames, no new requests; then what they fed. */
	if (a->ingest)
		ingest_free(a->ingest);
	if (a->http) {
		httpd_stop(a->http);
		httpd_destroy(a->http);
	}
	if (a->engine)
		engine_close(a->engine);
	if (a->store)
		store_close(a->store);
	capstore_close(a->cap);
	if (a->wal)
		wal_close(a->wal);
	if (a->graph)
		gstore_close(a->graph);
	if (a->corr)
		correlate_free(a->corr);
	hmap_free(&a->names);
	hmap_free(&a->nodes);
	free(a->name_v);
	free(a->node_names);
	free(a->node_kernels);
	for (size_t i = 0; i < KP_ARRAY_SIZE(a->sessions); i++)
		free(a->sessions[i].json);
	pthread_mutex_destroy(&a->rs_mu);
	pthread_mutex_destroy(&a->names_mu);
	free(a);
}
