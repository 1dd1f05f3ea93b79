/* Tests common/metrics.c: registration rules, label children, histograms, concurrent updates,
 * and the exact text exposition output. */
#include <pthread.h>

#include "common/metrics.h"
#include "tests/test.h"

TEST(metrics_register_and_render)
{
	struct kp_metric *c = metrics_counter("t_requests_total", "Requests\nserved", "route,code");
	CHECK(c != NULL);
	CHECK(metrics_counter("t_requests_total", "x", "route,code") == c); /* idempotent */
	CHECK(metrics_counter("t_requests_total", "x", "route") == NULL);   /* label clash */
	CHECK(metrics_gauge("t_requests_total", "x", "route,code") == NULL); /* type clash */
	CHECK(metrics_counter("bad name", "x", NULL) == NULL);
	CHECK(metrics_counter("t_ok", "x", "le") == NULL); /* reserved label */
	CHECK(metrics_counter("t_ok2", "x", "a,b,c,d,e") == NULL);

	metric_add(metric_labels(c, "/q", "200"), 3);
	metric_inc(metric_labels(c, "/q", "200"));
	metric_inc(metric_labels(c, "say \"hi\"\\", "500"));
	CHECK_EQ_INT(metric_value(metric_labels(c, "/q", "200")), 4);

	struct kp_metric *g = metrics_gauge("t_clients", "Clients", NULL);
	metric_gauge_set(metric_child(g), 5);
	metric_gauge_add(metric_child(g), -7);

	static const double b[] = {0.1, 1, 10};
	struct kp_metric *h = metrics_histogram("t_latency_seconds", "Latency", NULL, b, 3);
	CHECK(h != NULL);
	metric_observe(metric_child(h), 0.05);
	metric_observe(metric_child(h), 0.1); /* le is inclusive */
	metric_observe(metric_child(h), 5);
	metric_observe(metric_child(h), 50);
	static const double bad[] = {1, 1};
	CHECK(metrics_histogram("t_bad_hist", "x", NULL, bad, 2) == NULL);

	CHECK_EQ_INT(metrics_gauge_fn("t_uptime_seconds", "Up", NULL, NULL), -22);

	struct kp_buf out = {0};
	metrics_render(&out);
	const char *m = out.data;
	CHECK_CONTAINS(m, "# HELP t_requests_total Requests\\nserved\n# TYPE t_requests_total "
			  "counter\n");
	CHECK_CONTAINS(m, "t_requests_total{route=\"/q\",code=\"200\"} 4\n");
	CHECK_CONTAINS(m, "t_requests_total{route=\"say \\\"hi\\\"\\\\\",code=\"500\"} 1\n");
	CHECK_CONTAINS(m, "# TYPE t_clients gauge\nt_clients -2\n");
	CHECK_CONTAINS(m, "t_latency_seconds_bucket{le=\"0.10000000000000001\"} 2\n");
	CHECK_CONTAINS(m, "t_latency_seconds_bucket{le=\"1\"} 2\n");
	CHECK_CONTAINS(m, "t_latency_seconds_bucket{le=\"10\"} 3\n");
	CHECK_CONTAINS(m, "t_latency_seconds_bucket{le=\"+Inf\"} 4\n");
	CHECK_CONTAINS(m, "t_latency_seconds_sum 55.149999999999999\n");
	CHECK_CONTAINS(m, "t_latency_seconds_count 4\n");
	/* Families come out sorted by name. */
	CHECK(strstr(m, "# TYPE t_clients") < strstr(m, "# TYPE t_latency_seconds"));
	CHECK(strstr(m, "# TYPE t_latency_seconds") < strstr(m, "# TYPE t_requests_total"));
	buf_free(&out);
}

static double fn_val(void *ctx)
{
	return *(double *)ctx;
}

TEST(metrics_gauge_fn_and_overflow)
{
	double v = 12.5;
	CHECK_EQ_INT(metrics_gauge_fn("t_fn", "computed", fn_val, &v), 0);
	struct kp_buf out = {0};
	metrics_render(&out);
	CHECK_CONTAINS(out.data, "t_fn 12.5\n");
	out.len = 0;
	metrics_gauge_fn_clear("t_fn", &v);
	metrics_render(&out);
	CHECK(!strstr(out.data, "t_fn 12.5"));
	buf_free(&out);

	/* Unbounded label values collapse into one overflow child. */
	struct kp_metric *c = metrics_counter("t_by_pid_total", "x", "pid");
	for (int i = 0; i < METRICS_MAX_CHILDREN + 100; i++) {
		char p[16];
		snprintf(p, sizeof(p), "%d", i);
		metric_inc(metric_labels(c, p));
	}
	out = (struct kp_buf){0};
	metrics_render(&out);
	CHECK_CONTAINS(out.data, "t_by_pid_total{pid=\"_overflow\"} 100\n");
	buf_free(&out);
}

static struct kp_metric_child *race_c, *race_h;

static void *hammer(void *p)
{
	for (int i = 0; i < 200000; i++) {
		metric_inc(race_c);
		metric_observe(race_h, 0.5);
	}
	return NULL;
}

TEST(metrics_concurrent_updates_exact)
{
	race_c = metric_child(metrics_counter("t_race_total", "x", NULL));
	static const double b[] = {1};
	race_h = metric_child(metrics_histogram("t_race_seconds", "x", NULL, b, 1));
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ_INT(metric_value(race_c), 800000);
	CHECK_EQ_INT(metric_value(race_h), 800000);
	struct kp_buf out = {0};
	metrics_render(&out);
	CHECK_CONTAINS(out.data, "t_race_seconds_sum 400000\n");
	CHECK_CONTAINS(out.data, "t_race_seconds_bucket{le=\"1\"} 800000\n");
	buf_free(&out);
}
