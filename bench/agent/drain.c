/*
 * drain.c - bench/agent: the agent's drain path measured end to end on one core.
 *
 *   producer thread (another CPU): BPF_PROG_TEST_RUN of bpf/benchgen.bpf.c, bpf_loop writing
 *       realistic kp_event records into a real BPF ring buffer
 *   consumer (this thread, pinned): libbpf ring_buffer consumer whose callback does the
 *       agent's per-event work (copy, monotonic -> epoch ns, append to the batch) -> ship sink
 *       (agent/ship.c: frame, LZ4, XXH3, io_uring send) -> kprobed ingest on loopback (WAL on
 *       disk, group commit) -> acked
 *
 * Reports events acked per second, and the same as a share of LZ4_compress_default's
 * throughput on the same event bytes (a sample kept during warm-up), measured in the same run
 * on the same CPU. The last line is machine readable: "RESULT key=value ...".
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <lz4.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/loop.h"
#include "agent/ship.h"
#include "bpf/benchgen.skel.h"
#include "common/config.h"
#include "common/util.h"

struct benchgen_args { /* as in bpf/benchgen.bpf.c */
	uint32_t n, pad;
	uint64_t seq, written, dropped;
};

#define SAMPLE_EVENTS  (256u << 10) /* 16 MiB of events for the LZ4 reference */
#define CONSUME_BUDGET 16384	    /* records per ring_buffer__consume before the loop runs */

struct bench {
	struct sink sink;
	int64_t epoch_off;
	uint64_t consumed, budget;
	struct kp_event *sample;
	uint64_t nsample;
	int sampling;
};

static volatile int stop_producer;
static uint64_t produced, ring_drops;

static void usage(FILE *out)
{
	fprintf(out, "usage: drain --appliance HOST:PORT --spool DIR [options]\n"
		     "\n"
		     "Measures the agent's drain rate: BPF ring buffer -> ship sink -> kprobed -> "
		     "acked.\n"
		     "Needs root (BPF). Start kprobed first (bench/agent/run.sh does all of it).\n"
		     "\n"
		     "  --appliance H:P     kprobed ingest address\n"
		     "  --spool DIR         the sink's spool directory (fresh)\n"
		     "  --seconds S         measured time (default 5)\n"
		     "  --warmup S          warm-up before measuring (default 1)\n"
		     "  --batch N           events per frame, agent.batchEvents (default 4096)\n"
		     "  --ring-mb M         ring buffer size (default 64)\n"
		     "  --cpu C             pin the consumer (the agent) to CPU C (default 0)\n"
		     "  --producer-cpu C    pin the BPF producer thread to CPU C (default 1)\n"
		     "  -h, --help          this help\n");
}

static void pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		fprintf(stderr, "drain: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}

static double mono_s(void)
{
	return (double)now_mono_ns() / 1e9;
}

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct producer {
	int prog_fd, cpu;
};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	pin(p->cpu);
	struct benchgen_args a = {.n = 4096};
	while (!stop_producer) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = &a, .ctx_size_in = sizeof(a));
		if (bpf_prog_test_run_opts(p->prog_fd, &o) < 0) {
			fprintf(stderr, "drain: BPF_PROG_TEST_RUN: %s\n", strerror(errno));
			break;
		}
		__atomic_add_fetch(&produced, a.written, __ATOMIC_RELAXED);
		__atomic_add_fetch(&ring_drops, a.dropped, __ATOMIC_RELAXED);
		if (a.dropped) /* the ring is full: the consumer is the bottleneck, as wanted */
			usleep(20);
	}
	return NULL;
}

/* The agent's per-event work: copy out of the ring, rebase the clock, hand to the sink. */
static int on_record(void *ctx, void *data, size_t size)
{
	struct bench *b = ctx;
	if (size < sizeof(struct kp_event))
		return 0;
	struct kp_event ev;
	memcpy(&ev, data, sizeof(ev));
	ev.ts_ns += (uint64_t)b->epoch_off;
	if (KP_UNLIKELY(b->sampling) && b->nsample < SAMPLE_EVENTS)
		b->sample[b->nsample++] = ev;
	b->sink.ops->event(b->sink.ctx, &ev, NULL, 0, NULL, 0);
	b->consumed++;
	if (++b->budget >= CONSUME_BUDGET) {
		b->budget = 0;
		return -EAGAIN; /* libbpf has consumed this record; give the loop a turn */
	}
	return 0;
}

static int64_t epoch_offset(void)
{
	return (int64_t)(now_real_ns() - now_mono_ns());
}

/* LZ4_compress_default over the sample in frames of batch events, for >= 1 s. */
static double lz4_events_per_s(const struct kp_event *ev, uint64_t n, uint32_t batch, double *ratio)
{
	int src = (int)(batch * sizeof(*ev));
	char *dst = xmalloc((size_t)LZ4_compressBound(src));
	uint64_t events = 0, in = 0, out = 0;
	/* CPU time of this thread, like the agent's figure: the machine is shared. */
	double t0 = thread_cpu_s(), t;
	do {
		for (uint64_t i = 0; i + batch <= n; i += batch) {
			int c = LZ4_compress_default((const char *)(ev + i), dst, src,
						     LZ4_compressBound(src));
			events += batch;
			in += (uint64_t)src;
			out += (uint64_t)c;
		}
		t = thread_cpu_s() - t0;
	} while (t < 1.0);
	free(dst);
	*ratio = (double)in / (double)out;
	return (double)events / t;
}

int main(int argc, char **argv)
{
	const char *appliance = NULL, *spool = NULL;
	double seconds = 5, warmup = 1;
	int batch = 4096, ring_mb = 64, cpu = 0, pcpu = 1;
	static const struct option opts[] = {{"appliance", 1, 0, 'a'}, {"spool", 1, 0, 's'},
					     {"seconds", 1, 0, 'S'},   {"warmup", 1, 0, 'w'},
					     {"batch", 1, 0, 'b'},     {"ring-mb", 1, 0, 'r'},
					     {"cpu", 1, 0, 'c'},       {"producer-cpu", 1, 0, 'p'},
					     {"help", 0, 0, 'h'},      {0, 0, 0, 0}};
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'a':
			appliance = optarg;
			break;
		case 's':
			spool = optarg;
			break;
		case 'S':
			seconds = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'b':
			batch = atoi(optarg);
			break;
		case 'r':
			ring_mb = atoi(optarg);
			break;
		case 'c':
			cpu = atoi(optarg);
			break;
		case 'p':
			pcpu = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!appliance || !spool) {
		usage(stderr);
		return 2;
	}
	log_init("drain");
	signal(SIGPIPE, SIG_IGN);
	pin(cpu);

	struct benchgen_bpf *skel = benchgen_bpf__open();
	if (!skel) {
		fprintf(stderr, "drain: cannot open the BPF object: %s\n", strerror(errno));
		return 1;
	}
	bpf_map__set_max_entries(skel->maps.benchgen_rb, (uint32_t)ring_mb << 20);
	if (benchgen_bpf__load(skel)) {
		fprintf(stderr,
			"drain: cannot load bpf/benchgen.bpf.c (root and a 5.17+ kernel "
			"with bpf_loop are needed): %s\n",
			strerror(errno));
		return 1;
	}

	struct kp_config cfg;
	config_init(&cfg);
	char set[1024], err[256];
	const char *sets[] = {"agent.appliance=%s",	 "agent.spoolDir=%s",
			      "agent.batchEvents=%d",	 "agent.nodeName=bench-drain",
			      "agent.memoryQueueMb=256", "agent.batchMs=50"};
	for (size_t i = 0; i < KP_ARRAY_SIZE(sets); i++) {
		if (i == 0)
			snprintf(set, sizeof(set), sets[i], appliance);
		else if (i == 1)
			snprintf(set, sizeof(set), sets[i], spool);
		else if (i == 2)
			snprintf(set, sizeof(set), sets[i], batch);
		else
			snprintf(set, sizeof(set), "%s", sets[i]);
		if (config_set(&cfg, set, err, sizeof(err)) < 0) {
			fprintf(stderr, "drain: %s\n", err);
			return 2;
		}
	}
	struct loop *l;
	if (loop_init(&l, 256) < 0)
		return 1;
	static struct bench b;
	b.sample = xmalloc(SAMPLE_EVENTS * sizeof(struct kp_event));
	b.epoch_off = epoch_offset();
	if (ship_sink_open(&cfg, l, &b.sink) < 0)
		return 1;
	struct ring_buffer *rb =
		ring_buffer__new(bpf_map__fd(skel->maps.benchgen_rb), on_record, &b, NULL);
	if (!rb) {
		fprintf(stderr, "drain: ring_buffer__new: %s\n", strerror(errno));
		return 1;
	}
	/* Connected before producing, so the measurement is not a reconnect. */
	for (int i = 0; i < 500; i++) {
		struct ship_stats st;
		ship_sink_stats(&b.sink, &st);
		if (st.link == SHIP_LINK_UP)
			break;
		loop_run_once(l, 10);
	}

	struct producer prod = {bpf_program__fd(skel->progs.benchgen_run), pcpu};
	pthread_t pt;
	pthread_create(&pt, NULL, producer_main, &prod);
	printf("drain: warm-up %.1f s, then measuring %.1f s; batch %d events, ring %d MiB, agent "
	       "on CPU %d, producer on CPU %d\n",
	       warmup, seconds, batch, ring_mb, cpu, pcpu);
	fflush(stdout);

	double t_start = mono_s(), t_measure = t_start + warmup, t_end = t_measure + seconds;
	double last_tick = t_start, last_epoch = t_start;
	int measuring = 0;
	b.sampling = 1;
	struct ship_stats s0 = {0}, s1;
	uint64_t c0 = 0;
	double w0 = 0, cpu0 = 0, t_consume = 0, t_loop = 0;
	for (;;) {
		double now = mono_s();
		if (!measuring && now >= t_measure) {
			measuring = 1;
			b.sampling = 0;
			ship_sink_stats(&b.sink, &s0);
			c0 = b.consumed;
			w0 = now;
			cpu0 = thread_cpu_s();
			t_consume = t_loop = 0;
		}
		if (now >= t_end)
			break;
		double a = mono_s();
		int n = ring_buffer__consume(rb);
		double m = mono_s();
		loop_run_once(l, 0);
		double z = mono_s();
		t_consume += m - a;
		t_loop += z - m;
		if (n < 0 && n != -EAGAIN) {
			fprintf(stderr, "drain: ring_buffer__consume: %s\n", strerror(-n));
			break;
		}
		if (z - last_tick >= 0.05) {
			b.sink.ops->tick(b.sink.ctx, now_mono_ns());
			last_tick = z;
		}
		if (z - last_epoch >=
		    1.0) { /* the agent re-samples the clock offset every second */
			b.epoch_off = epoch_offset();
			last_epoch = z;
		}
	}
	double wall = mono_s() - w0, cpu_used = thread_cpu_s() - cpu0;
	ship_sink_stats(&b.sink, &s1);
	uint64_t consumed = b.consumed - c0;
	uint64_t acked = s1.events_acked - s0.events_acked;
	stop_producer = 1;
	pthread_join(pt, NULL);

	/* Drain what is left and make sure every event taken was acknowledged. */
	while (ring_buffer__consume(rb) == -EAGAIN)
		loop_run_once(l, 0);
	uint64_t total = b.consumed;
	struct ship_stats fin;
	ship_sink_stats(&b.sink, &fin);
	b.sink.ops->tick(b.sink.ctx, UINT64_MAX);
	for (int i = 0; i < 3000 && !ship_sink_idle(&b.sink); i++)
		loop_run_once(l, 10);
	ship_sink_stats(&b.sink, &fin);
	uint64_t lost = total - fin.events_acked;

	double lz_ratio;
	double lz4_eps = lz4_events_per_s(b.sample, b.nsample, (uint32_t)batch, &lz_ratio);
	double agent_eps = (double)acked / wall;
	double bytes_per_event = s1.events_sent > s0.events_sent
					 ? (double)(s1.bytes_sent - s0.bytes_sent) /
						   (double)(s1.events_sent - s0.events_sent)
					 : 0;
	printf("drain: consumed %" PRIu64 " events in %.2f s (%.0f/s), acked %" PRIu64
	       " (%.0f/s); agent thread CPU %.2f s (%.0f events per CPU-second)\n",
	       consumed, wall, (double)consumed / wall, acked, agent_eps, cpu_used,
	       (double)consumed / cpu_used);
	printf("drain: consumer time: ring buffer + per-event work + framing %.0f%%, io_uring loop "
	       "(send/ack completions) %.0f%%\n",
	       100 * t_consume / wall, 100 * t_loop / wall);
	double cpu_eps = (double)consumed / cpu_used;
	printf("drain: LZ4_compress_default on the same events, %d-event frames: %.0f events per "
	       "CPU-second (ratio %.2fx); the agent reaches %.0f%% of it per CPU-second (%.0f%% "
	       "wall-clock)\n",
	       batch, lz4_eps, lz_ratio, 100 * cpu_eps / lz4_eps, 100 * agent_eps / lz4_eps);
	printf("drain: %.1f wire bytes per event; ring-buffer drops (producer faster than the "
	       "agent, expected) %" PRIu64 "; events taken but not acked at the end: %" PRIu64 "\n",
	       bytes_per_event, __atomic_load_n(&ring_drops, __ATOMIC_RELAXED), lost);
	printf("RESULT agent_eps=%.0f consumed_eps=%.0f cpu_eps=%.0f lz4_eps=%.0f ratio_cpu=%.3f "
	       "ratio_wall=%.3f lz4_ratio=%.2f bytes_per_event=%.1f lost=%" PRIu64
	       " wall=%.2f cpu=%.2f consume_share=%.3f loop_share=%.3f drops=%" PRIu64 "\n",
	       agent_eps, (double)consumed / wall, cpu_eps, lz4_eps, cpu_eps / lz4_eps,
	       agent_eps / lz4_eps, lz_ratio, bytes_per_event, lost, wall, cpu_used,
	       t_consume / wall, t_loop / wall, __atomic_load_n(&ring_drops, __ATOMIC_RELAXED));
	b.sink.ops->close(b.sink.ctx, 5000);
	ring_buffer__free(rb);
	loop_free(l);
	benchgen_bpf__destroy(skel);
	config_free(&cfg);
	free(b.sample);
	return lost ? 1 : 0;
}
