/*
 * kprobed - the appliance: receives agent frames and OTLP spans, stores events, runs the causal
 * engine, serves queries, the live stream and the dashboard. Thin: flags and config here.
 *
 * The appliance itself is appliance/appliance.h; --ingest-only runs just the agent ingest with
 * its WAL (a receiver that makes frames durable and acks them, e.g. for relays and tests).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "appliance/appliance.h"
#include "common/config.h"
#include "common/util.h"
#include "replay/cli.h"
#include "store/ingest.h"
#include "store/wal.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kprobed [--config FILE] [--set key=value ...] [options]\n"
		"       kprobed --dump-wal DIR [--events]\n"
		"\n"
		"The kprobe appliance. Listens on ingest.port (agent frames), api.port (HTTP API,\n"
		"dashboard, /metrics) and otlp.port (OTLP/HTTP spans); data in store.dataDir.\n"
		"Stops cleanly on SIGINT/SIGTERM: what was received is synced to the WAL first.\n"
		"\n"
		"  --config FILE       configuration file (default: $KPROBE_CONFIG, "
		"./kprobe.conf)\n"
		"  --set key=value     override one configuration key (repeatable)\n"
		"  --ingest-only       run only the agent ingest with its WAL (a receiver)\n"
		"  --port-file FILE    write the ingest port there once listening (for scripts;\n"
		"                      the full appliance also writes store.dataDir/kprobed.ports)\n"
		"  --dashboard DIR     serve the dashboard from DIR (default: api.dashboardDir, else\n"
		"                      dashboard/dist next to the binaries)\n"
		"  --dump-wal DIR      print the frames held in a WAL (DIR = store.dataDir or its\n"
		"                      wal/ directory), one line per frame, read-only, and exit\n"
		"  --events            with --dump-wal: also one line per event\n"
		"  --print-config      print the effective configuration and exit\n"
		"  --help-config       list every configuration key with its default and exit\n"
		"  -h, --help          this help\n"
		"\n"
		"kprobed --replay-worker ... is internal: kprobed starts itself that way to run one\n"
		"replay for POST /api/v1/replay in a process of its own.\n");
}

/* ---- --dump-wal ---- */

static const char *type_name(unsigned t)
{
	static const char *n[] = {"none", "read",	"write",  "fsync",   "tcp_send", "tcp_recv",
				  "conn", "retransmit", "offcpu", "reclaim", "faults",	 "proc"};
	return t < KP_ARRAY_SIZE(n) ? n[t] : "?";
}

struct dump_ctx {
	int events;
	uint64_t frames, nevents;
};

static void dump_frame(void *arg, uint64_t lsn, const struct wire_hdr *h, const void *raw)
{
	struct dump_ctx *d = arg;
	printf("frame lsn=%" PRIu64 " node=%016" PRIx64 " seq=%" PRIu64 " events=%u meta=%u "
	       "raw=%u body=%u\n",
	       lsn, h->node_id, h->seq, h->n_events, h->n_meta, h->raw_len, h->body_len);
	d->frames++;
	d->nevents += h->n_events;
	if (!d->events)
		return;
	const struct kp_event *ev = raw;
	for (uint32_t i = 0; i < h->n_events; i++) {
		const struct kp_event *e = &ev[i];
		printf("event lsn=%" PRIu64 " seq=%" PRIu64 " i=%u ts=%" PRIu64 " dur=%" PRIu64
		       " type=%s pid=%u tid=%u cpu=%u flags=%u ret=%d arg=%" PRIu64 ",%" PRIu64
		       ",%" PRIu64 ",%" PRIu64 "\n",
		       lsn, h->seq, i, (uint64_t)e->ts_ns, (uint64_t)e->dur_ns, type_name(e->type),
		       e->pid, e->tid, e->cpu, e->flags, e->ret, (uint64_t)e->arg[0],
		       (uint64_t)e->arg[1], (uint64_t)e->arg[2], (uint64_t)e->arg[3]);
	}
}

static int dump_wal(const char *dir, int events)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/wal", dir);
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		snprintf(path, sizeof(path), "%s", dir);
	struct wal *w;
	struct wal_opts o = {.read_only = 1};
	struct wal_recovery rec;
	int r = wal_open(&w, path, &o, &rec);
	if (r < 0) {
		fprintf(stderr, "kprobed: cannot open the WAL in %s: %s\n", path, wal_strerror(r));
		return 1;
	}
	if (rec.note[0])
		fprintf(stderr, "kprobed: %s\n", rec.note);
	struct dump_ctx d = {events, 0, 0};
	int64_t n = ingest_replay(w, 1, dump_frame, &d);
	wal_close(w);
	if (n < 0) {
		fprintf(stderr, "kprobed: replay of %s failed: %s\n", path, wal_strerror((int)n));
		return 1;
	}
	fprintf(stderr, "kprobed: %" PRIu64 " frames, %" PRIu64 " events in %s\n", d.frames,
		d.nevents, path);
	return 0;
}

/* ---- the appliance ---- */

/* Until the store hooks in: count what would be stored. */
struct counting {
	uint64_t frames, events;
};

static void count_frame(void *arg, uint64_t lsn, const struct wire_hdr *h, const void *raw)
{
	struct counting *c = arg;
	__atomic_add_fetch(&c->frames, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->events, h->n_events, __ATOMIC_RELAXED);
}

static void log_ingest(struct ingest *in, const char *when)
{
	struct ingest_stats s;
	ingest_stats(in, &s);
	uint64_t rej = 0;
	for (int i = 0; i < INGEST_REJ_MAX; i++)
		rej += s.rejected[i];
	log_info("ingest%s: frames=%" PRIu64 " events=%" PRIu64 " bytes=%" PRIu64 " dups=%" PRIu64
		 " rejected=%" PRIu64 " conns=%" PRIu64 " fsyncs=%" PRIu64 " fsync_avg_us=%" PRIu64
		 " fsync_max_us=%" PRIu64 " wal_errors=%" PRIu64,
		 when, s.frames, s.events, s.bytes, s.dups, rej, s.conns_open, s.fsyncs,
		 s.fsyncs ? s.fsync_ns_sum / s.fsyncs / 1000 : 0, s.fsync_ns_max / 1000,
		 s.wal_errors);
}

static int run_ingest_only(const struct kp_config *cfg, const char *port_file)
{
	char waldir[4096];
	snprintf(waldir, sizeof(waldir), "%s/wal", cfg->store_data_dir);
	int r = mkdir_p(cfg->store_data_dir, 0755);
	if (r < 0) {
		log_error("cannot create store.dataDir %s: %s", cfg->store_data_dir, strerror(-r));
		return 1;
	}
	/* Signals are taken by sigtimedwait below; block them before any thread exists. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct wal *wal = NULL;
	struct ingest *in = NULL;
	struct wal_recovery rec;
	int rc = 1;
	if ((r = wal_open(&wal, waldir, NULL, &rec)) < 0) {
		log_error("cannot open the WAL in %s: %s", waldir, wal_strerror(r));
		if (r == -EBUSY)
			log_error("another kprobed uses %s (set store.dataDir)",
				  cfg->store_data_dir);
		goto cleanup;
	}
	log_info("WAL %s: %" PRIu64 " records (LSN %" PRIu64 "..%" PRIu64 ") in %" PRIu64
		 " files, %" PRIu64 " nodes known%s%s",
		 waldir, rec.records, rec.first_lsn, rec.last_lsn, rec.files, rec.nodes,
		 rec.note[0] ? "; " : "", rec.note);

	struct counting counter = {0};
	/* The store's recovery goes here: ingest_replay(wal, first unsealed LSN, ...). */
	struct ingest_opts o;
	ingest_opts_from_config(&o, cfg);
	o.consumer = count_frame;
	o.consumer_ctx = &counter;
	if ((r = ingest_open(&in, wal, &o)) < 0)
		goto cleanup;
	if ((r = ingest_start(in)) < 0) {
		log_error("cannot start the ingest thread: %s", strerror(-r));
		goto cleanup;
	}
	log_info("ingest listening on %s:%d (WAL %s, group commit %" PRId64 " us)",
		 cfg->ingest_bind, ingest_port(in), waldir, cfg->ingest_commit_us);
	if (port_file) {
		char tmp[4200];
		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", ingest_port(in)) < 0 || fclose(f) != 0 ||
		    rename(tmp, port_file) != 0) {
			log_error("cannot write --port-file %s: %s", port_file, strerror(errno));
			goto cleanup;
		}
	}

	uint64_t last_frames = 0;
	for (;;) {
		struct timespec ts = {10, 0};
		int sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM) {
			log_info("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
			break;
		}
		struct ingest_stats s;
		ingest_stats(in, &s);
		if (s.frames != last_frames) {
			log_ingest(in, "");
			last_frames = s.frames;
		}
	}
	ingest_stop(in);
	log_ingest(in, " (final)");
	rc = 0;
cleanup:
	ingest_free(in);
	wal_close(wal);
	return rc;
}

/* dashboard/dist next to the binaries (bin/../dashboard/dist), if built. */
static const char *default_dashboard(const struct kp_config *cfg)
{
	static char dir[4096];
	if (cfg->api_dashboard_dir[0])
		return cfg->api_dashboard_dir;
	char exe[4000];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *s = strrchr(exe, '/');
	if (!s)
		return NULL;
	*s = '\0';
	snprintf(dir, sizeof(dir), "%s/../dashboard/dist", exe);
	struct stat st;
	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? dir : NULL;
}

static int run_appliance(const struct kp_config *cfg, const char *port_file, const char *dash)
{
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!dash)
		dash = default_dashboard(cfg);
	if (!dash)
		log_warn("no dashboard found (run make with npm installed, or --dashboard DIR); the "
			 "API works without it");
	struct appliance *a;
	char err[1024];
	int r = appliance_open(cfg, dash, &a, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		return 1;
	}
	if (port_file) {
		char tmp[4200];
		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", appliance_port(a, "ingest")) < 0 || fclose(f) != 0 ||
		    rename(tmp, port_file) != 0)
			log_error("cannot write --port-file %s: %s", port_file, strerror(errno));
	}
	for (;;) {
		struct timespec ts = {0, 200 * 1000 * 1000};
		int sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM) {
			log_info("%s: stopping (sealing the memtable, syncing the graph)",
				 sig == SIGINT ? "SIGINT" : "SIGTERM");
			break;
		}
		appliance_tick(a);
	}
	appliance_close(a);
	log_info("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	/* internal: one replay for POST /api/v1/replay, started by kprobed itself */
	if (argc > 1 && !strcmp(argv[1], "--replay-worker"))
		return replay_worker_main(argc - 1, argv + 1);
	log_init("kprobed");
	kp_malloc_tune();
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--help-config")) {
			config_help(stdout);
			return 0;
		}
	}
	struct kp_config cfg;
	char err[512];
	config_init(&cfg);
	if (config_from_args(&cfg, &argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "kprobed: %s\n", err);
		return 2;
	}
	const char *dump = NULL, *port_file = NULL, *dash = NULL;
	int events = 0, ingest_only = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--print-config")) {
			config_print(&cfg, stdout);
			config_free(&cfg);
			return 0;
		} else if (!strcmp(argv[i], "--dump-wal") && i + 1 < argc) {
			dump = argv[++i];
		} else if (!strcmp(argv[i], "--events")) {
			events = 1;
		} else if (!strcmp(argv[i], "--port-file") && i + 1 < argc) {
			port_file = argv[++i];
		} else if (!strcmp(argv[i], "--ingest-only")) {
			ingest_only = 1;
		} else if (!strcmp(argv[i], "--dashboard") && i + 1 < argc) {
			dash = argv[++i];
		} else {
			fprintf(stderr, "kprobed: unknown argument '%s' (see kprobed --help)\n",
				argv[i]);
			config_free(&cfg);
			return 2;
		}
	}
	int rc = dump	     ? dump_wal(dump, events)
		 : ingest_only ? run_ingest_only(&cfg, port_file)
			       : run_appliance(&cfg, port_file, dash);
	config_free(&cfg);
	return rc;
}
