/*
 * internal.h - the appliance's shared state, for its own files only (appliance.c, *api.c).
 */
#ifndef KP_APPLIANCE_INTERNAL_H
#define KP_APPLIANCE_INTERNAL_H

#include <pthread.h>
#include <signal.h>

#include "appliance/appliance.h"
#include "common/hmap.h"
#include "httpd/httpd.h"

struct store;
struct wal;
struct ingest;
struct gstore;
struct engine;
struct correlate;

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
	size_t n_node_names;
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

/* queryapi.c */
void api_query(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
void api_otlp(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

#endif
