/*
 * metrics.h - the process-wide metrics registry: counters, gauges and histograms with names, help
 * and labels, rendered in the Prometheus text exposition format (version 0.0.4) on scrape.
 *
 * Modules register a family once (cold path, takes a lock) and keep the handle; updating is one
 * relaxed atomic operation on a 64-bit cell (hot paths: ingest, query, HTTP), with no lock and no
 * allocation. Labelled families hand out one child per distinct label-value tuple: look the child
 * up once (locked) and cache it where the label values are known in advance.
 *
 *     static struct kp_metric *frames;
 *     frames = metrics_counter("kprobe_ingest_frames_total", "Frames received from agents", NULL);
 *     metric_inc(metric_child(frames));                  // no labels: the one child
 *
 *     struct kp_metric *req = metrics_counter("kprobe_http_requests_total", "HTTP requests",
 *                                             "route,code");
 *     metric_inc(metric_labels(req, "/api/v1/query", "200"));
 *
 *     struct kp_metric *lat = metrics_histogram("kprobe_query_seconds", "Query latency",
 *                                               NULL, metrics_buckets_latency, 0);
 *     metric_observe(metric_child(lat), 0.012);
 *
 * Registering an existing name again returns the existing family when the type and label names
 * agree (so a server can be started and stopped many times), else NULL. Families and children
 * live until the process exits; there is no unregister. Bounds: at most METRICS_MAX_LABELS label
 * names per family and METRICS_MAX_CHILDREN children per family (further label tuples share one
 * overflow child labelled "_overflow" so a flood of distinct values cannot grow memory).
 *
 * Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; label names [a-zA-Z_][a-zA-Z0-9_]*. Label values
 * are escaped on output (backslash, quote, newline).
 */
#ifndef KP_METRICS_H
#define KP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define METRICS_MAX_LABELS   4
#define METRICS_MAX_CHILDREN 512
#define METRICS_MAX_BUCKETS  24

enum kp_metric_type { KP_METRIC_COUNTER, KP_METRIC_GAUGE, KP_METRIC_HISTOGRAM };

struct kp_metric;       /* a family: name, help, type, label names */
struct kp_metric_child; /* one time series (or one histogram) of a family */

/*
 * Register (or find) a family. labels: comma-separated label names, or NULL for none.
 * Returns NULL when the name or labels are invalid or clash with an existing family of another
 * type/labels (a programming error; it is logged).
 */
struct kp_metric *metrics_counter(const char *name, const char *help, const char *labels);
struct kp_metric *metrics_gauge(const char *name, const char *help, const char *labels);
/* bounds: n ascending upper bounds (the +Inf bucket is implicit), n <= METRICS_MAX_BUCKETS. */
struct kp_metric *metrics_histogram(const char *name, const char *help, const char *labels,
				    const double *bounds, int n);

/* Ready-made bucket sets (seconds): 100us .. 30s, roughly x2.5 per step. */
extern const double metrics_buckets_latency[];
extern const int metrics_buckets_latency_n;

/*
 * A gauge whose value is computed on scrape (uptime, queue depth, open connections). fn runs on
 * the scraping thread, under the registry lock: it must be quick and must not call metrics_*.
 * Re-registering the same name replaces fn/ctx (use metrics_gauge_fn_clear before ctx dies).
 */
int metrics_gauge_fn(const char *name, const char *help, double (*fn)(void *ctx), void *ctx);
void metrics_gauge_fn_clear(const char *name, void *ctx);

/* The child for these label values (as many as the family has label names). Never NULL for a
 * non-NULL family; NULL family gives NULL, and every update function accepts NULL (no-op). */
struct kp_metric_child *metric_labels(struct kp_metric *m, ...);
struct kp_metric_child *metric_labelv(struct kp_metric *m, const char *const *values);
/* The single child of a family without labels. */
struct kp_metric_child *metric_child(struct kp_metric *m);

/* Updates: lock-free, any thread. Counters only go up (negative adds are ignored). */
void metric_add(struct kp_metric_child *c, uint64_t n);
static inline void metric_inc(struct kp_metric_child *c)
{
	metric_add(c, 1);
}
void metric_gauge_set(struct kp_metric_child *c, int64_t v);
void metric_gauge_add(struct kp_metric_child *c, int64_t delta);
void metric_observe(struct kp_metric_child *c, double v);

/* Reads (tests, /healthz): a counter's or gauge's value; a histogram's count. */
int64_t metric_value(const struct kp_metric_child *c);

/* Renders every family, sorted by name, in the text exposition format. */
void metrics_render(struct kp_buf *out);

/* The content type to answer a scrape with. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
