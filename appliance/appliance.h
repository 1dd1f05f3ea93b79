/*
 * appliance.h - kprobed, composed: the event store with its WAL and ingest server, the causal
 * engine and its graph, span ingest (OTLP), and the HTTP API, live stream and dashboard.
 *
 *   agent frames -> ingest (verify, dedup, WAL, group commit, ack)
 *                -> store_append (columnar store) + causal engine + live stream
 *   OTLP spans   -> engine (spans, symptoms) + correlation (events <-> transactions)
 *   HTTP         -> queries, incidents, root causes, graph, timeline, metrics, dashboard
 *
 * At start the store is opened (corrupt segments quarantined), the WAL is replayed from the
 * store's sealed LSN so every acked frame is back in the memtable, and only then does ingest
 * accept agents. Ports 0 mean ephemeral; the bound ports are written to <dataDir>/kprobed.ports
 * ("api=P ingest=P otlp=P pid=N") once everything listens.
 */
#ifndef KP_APPLIANCE_H
#define KP_APPLIANCE_H

#include "common/config.h"

struct appliance;

/* Opens and starts everything. Returns 0, or -errno with a message saying what to do in err. */
int appliance_open(const struct kp_config *cfg, const char *static_dir, struct appliance **out,
		   char *err, size_t errlen);
/* Housekeeping (WAL release after seals, span expiry); call a few times a second. */
void appliance_tick(struct appliance *a);
/* Stops in reverse order (HTTP, ingest, engine, store flush) and frees. */
void appliance_close(struct appliance *a);

int appliance_port(struct appliance *a, const char *which); /* "api", "ingest", "otlp" */

#endif
