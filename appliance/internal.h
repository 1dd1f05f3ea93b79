/*
 * internal.h - the appliance's shared state, for its own files only (appliance.c, *api.c).
 */
#ifndef KP_APPLIANCE_INTERNAL_H
#define KP_APPLIANCE_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "appliance/appliance.h"
#include "common/hmap.h"
#include "httpd/httpd.h"

struct store;
struct wal;
struct ingest;
struct gstore;
struct engine;
struct correlate;
struct capstore;

struct appliance {
	const struct kp_config *cfg;
	char data_dir[512];
	struct store *store;
	struct wal *wal;
	struct ingest *ingest;
	struct gstore *graph;
	struct engine *engine;
	struct correlate *corr;
	struct httpd *http;
	uint64_t wal_released;

	/* (node, pid) -> comm/service for the live stream, fed from frames' metadata */
	pthread_mutex_t names_mu;
	struct hmap names;
	struct name_entry {
		char comm[16], service[48];
	} *name_v;
	size_t n_names;
	struct hmap nodes; /* node id -> index into node_names */
	char (*node_names)[32];
	char (*node_kernels)[64];
	size_t n_node_names;

	/* replay capture and replay sessions (replayapi.c) */
	struct capstore *cap; /* <dataDir>/syscalls; NULL when it could not open */
	uint64_t cap_retention_ns;
	char exe[4096]; /* the kprobed binary, for `kprobed --replay-worker` */
	bool replay_enabled;
	pthread_mutex_t rs_mu;
	atomic_int replays_running;
	_Atomic uint64_t replay_next;
	struct {
		uint64_t id;
		char *json;
	} sessions[16];
};

/* graphapi.c */
/* A time query parameter: epoch ns, or a duration ago ("15m"); def when absent or bad. */
uint64_t appliance__time_param(const struct httpd_req *req, const char *name, uint64_t def);
void api_rootcause(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
void api_graph(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
void api_incidents(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

/* txn.c */
struct store_txn_resolver;
extern const struct store_txn_resolver appliance_txn_resolver;

/* timeline.c */
void api_timeline(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

/* replayapi.c */
void api_replay_recording(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
void api_replay_upload(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
void api_replay_run(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
void api_replay_get(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
void api_replay_processes(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

/* queryapi.c */
void api_query(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
void api_otlp(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

#endif
