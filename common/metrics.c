/*
 * metrics.c - the process-wide metrics registry and its Prometheus text renderer.
 *
 * Families sit in a small array under one mutex, taken only to register, to look up a label
 * tuple and to render. Each child holds its values in 64-bit atomics updated with relaxed
 * ordering: a scrape may see a histogram's count and buckets a few observations apart, which
 * Prometheus tolerates (and which costs nothing on the hot path). Gauges are integers; a
 * histogram's sum is a double kept in a 64-bit cell and added with a compare-and-swap loop.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"

#define METRICS_MAX_FAMILIES 512

const double metrics_buckets_latency[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
					  0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
					  5,      10,      30};
const int metrics_buckets_latency_n = KP_ARRAY_SIZE(metrics_buckets_latency);

struct kp_metric_child {
	struct kp_metric *family;
	char **values;               /* label values (family->nlabels of them) */
	_Atomic uint64_t value;      /* counter; gauge (as int64); histogram count */
	_Atomic uint64_t sum_bits;   /* histogram: sum as double bits */
	_Atomic uint64_t *buckets;   /* histogram: per-bucket (non-cumulative) counts, nbounds+1 */
};

struct kp_metric {
	char *name, *help;
	enum kp_metric_type type;
	int nlabels;
	char *labels[METRICS_MAX_LABELS];
	double bounds[METRICS_MAX_BUCKETS];
	int nbounds;
	double (*fn)(void *ctx); /* computed gauge */
	void *fn_ctx;
	struct kp_metric_child **children;
	int nchildren;
	struct kp_metric_child *overflow;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kp_metric *families[METRICS_MAX_FAMILIES];
static int nfamilies;

/* ------------------------------------------------------------------ registration */

static bool valid_name(const char *s, bool colon_ok)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon_ok && c == ':') || (p != s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* Splits "a,b" into names; returns the count or -EINVAL. */
static int split_labels(const char *labels, char out[METRICS_MAX_LABELS][64])
{
	int n = 0;
	if (!labels || !*labels)
		return 0;
	const char *p = labels;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (n == METRICS_MAX_LABELS || len == 0 || len >= 64)
			return -EINVAL;
		memcpy(out[n], p, len);
		out[n][len] = 0;
		if (!valid_name(out[n], false) || !strcmp(out[n], "le"))
			return -EINVAL;
		n++;
		p = e ? e + 1 : p + len;
	}
	return n;
}

static struct kp_metric *find_locked(const char *name)
{
	for (int i = 0; i < nfamilies; i++)
		if (!strcmp(families[i]->name, name))
			return families[i];
	return NULL;
}

static struct kp_metric *family_register(const char *name, const char *help, const char *labels,
					 enum kp_metric_type type, const double *bounds, int nb)
{
	char names[METRICS_MAX_LABELS][64];
	int nl = split_labels(labels, names);
	if (!valid_name(name, true) || nl < 0 || nb < 0 || nb > METRICS_MAX_BUCKETS) {
		log_error("metrics: bad registration of '%s' (labels '%s')", name ? name : "(null)",
			  labels ? labels : "");
		return NULL;
	}
	for (int i = 1; i < nb; i++)
		if (!(bounds[i] > bounds[i - 1]))
			return NULL;
	pthread_mutex_lock(&reg_lock);
	struct kp_metric *m = find_locked(name);
	if (m) {
		bool same = m->type == type && m->nlabels == nl && !m->fn;
		for (int i = 0; same && i < nl; i++)
			same = !strcmp(m->labels[i], names[i]);
		pthread_mutex_unlock(&reg_lock);
		if (!same) {
			log_error("metrics: '%s' registered twice with different type or labels", name);
			return NULL;
		}
		return m;
	}
	if (nfamilies == METRICS_MAX_FAMILIES) {
		pthread_mutex_unlock(&reg_lock);
		log_error("metrics: too many families (max %d), '%s' dropped", METRICS_MAX_FAMILIES,
			  name);
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->name = xstrdup(name);
	m->help = xstrdup(help ? help : "");
	m->type = type;
	m->nlabels = nl;
	for (int i = 0; i < nl; i++)
		m->labels[i] = xstrdup(names[i]);
	m->nbounds = nb;
	for (int i = 0; i < nb; i++)
		m->bounds[i] = bounds[i];
	families[nfamilies++] = m;
	pthread_mutex_unlock(&reg_lock);
	return m;
}

struct kp_metric *metrics_counter(const char *name, const char *help, const char *labels)
{
	return family_register(name, help, labels, KP_METRIC_COUNTER, NULL, 0);
}

struct kp_metric *metrics_gauge(const char *name, const char *help, const char *labels)
{
	return family_register(name, help, labels, KP_METRIC_GAUGE, NULL, 0);
}

struct kp_metric *metrics_histogram(const char *name, const char *help, const char *labels,
				    const double *bounds, int n)
{
	return family_register(name, help, labels, KP_METRIC_HISTOGRAM, bounds, n);
}

int metrics_gauge_fn(const char *name, const char *help, double (*fn)(void *ctx), void *ctx)
{
	if (!valid_name(name, true) || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg_lock);
	struct kp_metric *m = find_locked(name);
	if (m && !m->fn) {
		pthread_mutex_unlock(&reg_lock);
		return -EEXIST;
	}
	if (!m) {
		if (nfamilies == METRICS_MAX_FAMILIES) {
			pthread_mutex_unlock(&reg_lock);
			return -ENOSPC;
		}
		m = xcalloc(1, sizeof(*m));
		m->name = xstrdup(name);
		m->help = xstrdup(help ? help : "");
		m->type = KP_METRIC_GAUGE;
		families[nfamilies++] = m;
	}
	m->fn = fn;
	m->fn_ctx = ctx;
	pthread_mutex_unlock(&reg_lock);
	return 0;
}

void metrics_gauge_fn_clear(const char *name, void *ctx)
{
	pthread_mutex_lock(&reg_lock);
	struct kp_metric *m = find_locked(name);
	if (m && m->fn && m->fn_ctx == ctx) {
		/* Keep the family (handles may be cached nowhere, but the name stays reserved). */
		m->fn = NULL;
		m->fn_ctx = NULL;
	}
	pthread_mutex_unlock(&reg_lock);
}

/* ------------------------------------------------------------------ children */

static struct kp_metric_child *child_new(struct kp_metric *m, const char *const *values)
{
	struct kp_metric_child *c = xcalloc(1, sizeof(*c));
	c->family = m;
	if (m->nlabels) {
		c->values = xcalloc((size_t)m->nlabels, sizeof(char *));
		for (int i = 0; i < m->nlabels; i++)
			c->values[i] = xstrdup(values[i] ? values[i] : "");
	}
	if (m->type == KP_METRIC_HISTOGRAM)
		c->buckets = xcalloc((size_t)m->nbounds + 1, sizeof(*c->buckets));
	return c;
}

struct kp_metric_child *metric_labelv(struct kp_metric *m, const char *const *values)
{
	if (!m)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	struct kp_metric_child *c = NULL;
	for (int i = 0; i < m->nchildren && !c; i++) {
		struct kp_metric_child *x = m->children[i];
		bool same = true;
		for (int j = 0; same && j < m->nlabels; j++)
			same = !strcmp(x->values[j], values[j] ? values[j] : "");
		if (same)
			c = x;
	}
	if (!c) {
		if (m->nchildren < METRICS_MAX_CHILDREN) {
			c = child_new(m, values);
			if (m->nchildren % 16 == 0)
				m->children = xrealloc(m->children, sizeof(*m->children) *
									(size_t)(m->nchildren + 16));
			m->children[m->nchildren++] = c;
		} else {
			/* Defensive: an unbounded label (a path, a pid) must not grow memory. */
			if (!m->overflow) {
				const char *ov[METRICS_MAX_LABELS];
				for (int j = 0; j < m->nlabels; j++)
					ov[j] = "_overflow";
				m->overflow = child_new(m, ov);
			}
			c = m->overflow;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return c;
}

struct kp_metric_child *metric_labels(struct kp_metric *m, ...)
{
	if (!m)
		return NULL;
	const char *v[METRICS_MAX_LABELS] = {0};
	va_list ap;
	va_start(ap, m);
	for (int i = 0; i < m->nlabels; i++)
		v[i] = va_arg(ap, const char *);
	va_end(ap);
	return metric_labelv(m, v);
}

struct kp_metric_child *metric_child(struct kp_metric *m)
{
	return metric_labelv(m, NULL);
}

/* ------------------------------------------------------------------ updates */

void metric_add(struct kp_metric_child *c, uint64_t n)
{
	if (c)
		atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void metric_gauge_set(struct kp_metric_child *c, int64_t v)
{
	if (c)
		atomic_store_explicit(&c->value, (uint64_t)v, memory_order_relaxed);
}

void metric_gauge_add(struct kp_metric_child *c, int64_t delta)
{
	if (c)
		atomic_fetch_add_explicit(&c->value, (uint64_t)delta, memory_order_relaxed);
}

void metric_observe(struct kp_metric_child *c, double v)
{
	if (!c || !c->buckets || isnan(v))
		return;
	const struct kp_metric *m = c->family;
	int lo = 0, hi = m->nbounds; /* first bound >= v, or nbounds (+Inf) */
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (v <= m->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&c->buckets[lo], 1, memory_order_relaxed);
	uint64_t old = atomic_load_explicit(&c->sum_bits, memory_order_relaxed), nw;
	do {
		double d;
		memcpy(&d, &old, sizeof(d));
		d += v;
		memcpy(&nw, &d, sizeof(nw));
	} while (!atomic_compare_exchange_weak_explicit(&c->sum_bits, &old, nw,
							memory_order_relaxed, memory_order_relaxed));
	atomic_fetch_add_explicit(&c->value, 1, memory_order_relaxed);
}

int64_t metric_value(const struct kp_metric_child *c)
{
	if (!c)
		return 0;
	return (int64_t)atomic_load_explicit(&((struct kp_metric_child *)c)->value,
					     memory_order_relaxed);
}

/* ------------------------------------------------------------------ rendering */

static void put_escaped(struct kp_buf *out, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(out, "\\\\");
		else if (*s == '\n')
			buf_puts(out, "\\n");
		else if (quote && *s == '"')
			buf_puts(out, "\\\"");
		else
			buf_append(out, s, 1);
	}
}

static void put_double(struct kp_buf *out, double d)
{
	if (isinf(d))
		buf_puts(out, d > 0 ? "+Inf" : "-Inf");
	else if (isnan(d))
		buf_puts(out, "NaN");
	else
		buf_printf(out, "%.17g", d);
}

/* {a="x",b="y"[,le="..."]} */
static void put_labels(struct kp_buf *out, const struct kp_metric_child *c, const char *le)
{
	const struct kp_metric *m = c->family;
	if (!m->nlabels && !le)
		return;
	buf_puts(out, "{");
	for (int i = 0; i < m->nlabels; i++) {
		buf_printf(out, "%s%s=\"", i ? "," : "", m->labels[i]);
		put_escaped(out, c->values[i], true);
		buf_puts(out, "\"");
	}
	if (le)
		buf_printf(out, "%sle=\"%s\"", m->nlabels ? "," : "", le);
	buf_puts(out, "}");
}

static void render_child(struct kp_buf *out, struct kp_metric_child *c)
{
	struct kp_metric *m = c->family;
	uint64_t v = atomic_load_explicit(&c->value, memory_order_relaxed);
	if (m->type == KP_METRIC_COUNTER || m->type == KP_METRIC_GAUGE) {
		buf_puts(out, m->name);
		put_labels(out, c, NULL);
		if (m->type == KP_METRIC_COUNTER)
			buf_printf(out, " %llu\n", (unsigned long long)v);
		else
			buf_printf(out, " %lld\n", (long long)(int64_t)v);
		return;
	}
	uint64_t cum = 0;
	for (int i = 0; i <= m->nbounds; i++) {
		char le[40];
		cum += atomic_load_explicit(&c->buckets[i], memory_order_relaxed);
		if (i < m->nbounds)
			snprintf(le, sizeof(le), "%.17g", m->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		buf_printf(out, "%s_bucket", m->name);
		put_labels(out, c, le);
		buf_printf(out, " %llu\n", (unsigned long long)cum);
	}
	uint64_t bits = atomic_load_explicit(&c->sum_bits, memory_order_relaxed);
	double sum;
	memcpy(&sum, &bits, sizeof(sum));
	buf_printf(out, "%s_sum", m->name);
	put_labels(out, c, NULL);
	buf_puts(out, " ");
	put_double(out, sum);
	buf_printf(out, "\n%s_count", m->name);
	put_labels(out, c, NULL);
	/* The +Inf bucket and _count must agree even while observations race the scrape. */
	buf_printf(out, " %llu\n", (unsigned long long)cum);
	(void)v;
}

static int cmp_family(const void *a, const void *b)
{
	const struct kp_metric *x = *(struct kp_metric *const *)a, *y = *(struct kp_metric *const *)b;
	return strcmp(x->name, y->name);
}

void metrics_render(struct kp_buf *out)
{
	static const char *tnames[] = {"counter", "gauge", "histogram"};
	pthread_mutex_lock(&reg_lock);
	struct kp_metric *sorted[METRICS_MAX_FAMILIES];
	memcpy(sorted, families, sizeof(sorted[0]) * (size_t)nfamilies);
	qsort(sorted, (size_t)nfamilies, sizeof(sorted[0]), cmp_family);
	for (int i = 0; i < nfamilies; i++) {
		struct kp_metric *m = sorted[i];
		if (!m->fn && m->nchildren == 0 && !m->overflow) {
			/* A family without labels shows 0 before its first update. */
			if (m->nlabels || m->type == KP_METRIC_HISTOGRAM)
				continue;
		}
		if (m->help[0]) {
			buf_printf(out, "# HELP %s ", m->name);
			put_escaped(out, m->help, false);
			buf_puts(out, "\n");
		}
		buf_printf(out, "# TYPE %s %s\n", m->name, tnames[m->type]);
		if (m->fn) {
			buf_printf(out, "%s ", m->name);
			put_double(out, m->fn(m->fn_ctx));
			buf_puts(out, "\n");
			continue;
		}
		if (m->nchildren == 0 && !m->overflow) {
			buf_printf(out, "%s 0\n", m->name);
			continue;
		}
		for (int j = 0; j < m->nchildren; j++)
			render_child(out, m->children[j]);
		if (m->overflow)
			render_child(out, m->overflow);
	}
	pthread_mutex_unlock(&reg_lock);
}
