/*
 * demo_roles.c - the three programs of the demo incident, and the code that starts them.
 *
 *   settlement-svc   accepts payments over TCP; per payment: one ledger write + fsync, then "OK".
 *                    No OpenTelemetry: kprobe infers its requests from the TCP exchange.
 *   payment-handler  sends payments one at a time with a 750 ms timeout and exports one OTLP/JSON
 *                    span per payment (service.name, process.pid, thread.id, payment.id).
 *   batch-job        during its CPU phase, threads pinned to settlement's CPU at high priority
 *                    hold the CPU; during its memory phase it dirties page cache on a slow volume
 *                    inside settlement's memory cgroup, so settlement's writes stall in reclaim.
 *
 * Nothing here fakes an outcome: payments time out only when the kernel makes them slow.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/demo.h"
#include "common/util.h"

static volatile sig_atomic_t role_stop;
static void on_term(int sig)
{
	role_stop = 1;
}

static void pin_cpu(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof(s), &s);
}

static int gettid_(void)
{
	return (int)syscall(SYS_gettid);
}

/* Reads one '\n'-terminated line of at most cap-1 bytes within timeout_ms. */
static int read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t n = 0;
	while (n < cap - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		int r = poll(&p, 1, timeout_ms);
		if (r <= 0)
			return r == 0 ? -ETIMEDOUT : -errno;
		ssize_t k = read(fd, buf + n, cap - 1 - n);
		if (k <= 0)
			return k == 0 ? -EPIPE : -errno;
		n += (size_t)k;
		if (memchr(buf, '\n', n))
			break;
	}
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (!nl)
		return -EMSGSIZE;
	*nl = '\0';
	return (int)(nl - buf);
}

/* ---------------------------------------------------------------- settlement-svc */

static int settlement_main(int argc, char **argv)
{
	const char *port_file = NULL, *ledger_dir = NULL;
	int record_kb = 1024, cpu = -1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port-file"))
			port_file = argv[i + 1];
		else if (!strcmp(argv[i], "--ledger"))
			ledger_dir = argv[i + 1];
		else if (!strcmp(argv[i], "--record-kb"))
			record_kb = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--cpu"))
			cpu = atoi(argv[i + 1]);
	}
	if (!port_file || !ledger_dir || record_kb <= 0 || record_kb > 65536) {
		fprintf(stderr, "usage: settlement-svc --port-file F --ledger DIR [--record-kb N] "
				"[--cpu C]\n");
		return 2;
	}
	if (cpu >= 0)
		pin_cpu(cpu);
	signal(SIGTERM, on_term);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/ledger.dat", ledger_dir);
	int lfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (lfd < 0) {
		fprintf(stderr, "settlement-svc: %s: %s\n", path, strerror(errno));
		return 1;
	}
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 64) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
		fprintf(stderr, "settlement-svc: listen: %s\n", strerror(errno));
		return 1;
	}
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
	FILE *pf = fopen(tmp, "w");
	if (!pf || fprintf(pf, "%d\n", ntohs(a.sin_port)) < 0 || fclose(pf) != 0 ||
	    rename(tmp, port_file) < 0) {
		fprintf(stderr, "settlement-svc: %s: %s\n", port_file, strerror(errno));
		return 1;
	}
	size_t reclen = (size_t)record_kb * 1024;
	char *rec = xmalloc(reclen);
	for (size_t i = 0; i < reclen; i++)
		rec[i] = (char)('A' + i % 26);
	off_t written = 0;
	long served = 0;
	while (!role_stop) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		char line[256];
		if (read_line(c, line, sizeof(line), 5000) > 4 && !strncmp(line, "PAY ", 4)) {
			/* The ledger entry: the payment line, padded to the record size. */
			size_t ll = strlen(line);
			memcpy(rec, line, ll < reclen ? ll : reclen);
			if (write(lfd, rec, reclen) < 0 || fsync(lfd) < 0) {
				dprintf(c, "ERR ledger: %s\n", strerror(errno));
			} else {
				char *id = line + 4, *sp = strchr(id, ' ');
				if (sp)
					*sp = '\0';
				dprintf(c, "OK %s\n", id);
			}
			written += (off_t)reclen;
			if (written > (64 << 20)) { /* keep the ledger small: this is a demo */
				if (ftruncate(lfd, 0) == 0)
					written = 0;
			}
		}
		close(c);
		/* How many connections it has served: the demo waits for its backlog. */
		served++;
		char st[PATH_MAX + 16], tmp[PATH_MAX + 24];
		snprintf(st, sizeof(st), "%s.served", port_file);
		snprintf(tmp, sizeof(tmp), "%s.tmp", st);
		FILE *sf = fopen(tmp, "w");
		if (sf) {
			fprintf(sf, "%ld\n", served);
			if (fclose(sf) == 0)
				rename(tmp, st);
		}
	}
	free(rec);
	return 0;
}

/* ---------------------------------------------------------------- payment-handler */

static void hex(char *out, const uint8_t *b, size_t n)
{
	static const char h[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = h[b[i] >> 4];
		out[2 * i + 1] = h[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* POSTs one OTLP/JSON span for a payment. Failures are counted, never fatal: the payment path
 * must not depend on the observability pipeline. */
static int export_span(int otlp_port, const char *id, int tid, int timeout_ms, uint64_t start,
		       uint64_t end, int ok)
{
	uint8_t rnd[24];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	char trace[33], span[17];
	hex(trace, rnd, 16);
	hex(span, rnd + 16, 8);
	char status[160];
	if (ok)
		snprintf(status, sizeof(status), "{\"code\":1}");
	else
		snprintf(status, sizeof(status),
			 "{\"code\":2,\"message\":\"TIMEOUT: %d ms exceeded\"}", timeout_ms);
	struct kp_buf b = {0};
	buf_printf(&b,
		   "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
		   "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"payment-handler\"}},"
		   "{\"key\":\"process.pid\",\"value\":{\"intValue\":\"%d\"}}]},"
		   "\"scopeSpans\":[{\"scope\":{\"name\":\"kprobe-demo\"},\"spans\":[{"
		   "\"traceId\":\"%s\",\"spanId\":\"%s\",\"name\":\"payment\",\"kind\":3,"
		   "\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\",\"attributes\":["
		   "{\"key\":\"payment.id\",\"value\":{\"stringValue\":\"%s\"}},"
		   "{\"key\":\"thread.id\",\"value\":{\"intValue\":\"%d\"}},"
		   "{\"key\":\"payment.timeout_ms\",\"value\":{\"intValue\":\"%d\"}},"
		   "{\"key\":\"peer.service\",\"value\":{\"stringValue\":\"settlement-svc\"}}],"
		   "\"status\":%s}]}]}]}",
		   getpid(), trace, span, (unsigned long long)start, (unsigned long long)end, id, tid,
		   timeout_ms, status);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)otlp_port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {1, 0};
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int rc = -EIO;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
		char hdr[256];
		int hl = snprintf(hdr, sizeof(hdr),
				  "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
				  "Content-Type: application/json\r\nContent-Length: %zu\r\n"
				  "Connection: close\r\n\r\n",
				  otlp_port, b.len);
		char resp[64] = "";
		if (write_full(s, hdr, (size_t)hl) == 0 && write_full(s, b.data, b.len) == 0 &&
		    read(s, resp, sizeof(resp) - 1) > 12 && !strncmp(resp + 9, "200", 3))
			rc = 0;
	}
	close(s);
	buf_free(&b);
	return rc;
}

static int payment_main(int argc, char **argv)
{
	int port = 0, count = 10, interval_ms = 200, timeout_ms = 750, otlp_port = 0;
	const char *results = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--count"))
			count = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--interval-ms"))
			interval_ms = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--timeout-ms"))
			timeout_ms = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--otlp-port"))
			otlp_port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--results"))
			results = argv[i + 1];
	}
	if (port <= 0 || !results || count <= 0) {
		fprintf(stderr, "usage: payment-handler --port P --results F [--count N] "
				"[--interval-ms I] [--timeout-ms T] [--otlp-port P]\n");
		return 2;
	}
	FILE *rf = fopen(results, "w");
	if (!rf) {
		fprintf(stderr, "payment-handler: %s: %s\n", results, strerror(errno));
		return 1;
	}
	signal(SIGTERM, on_term);
	int tid = gettid_(), failed_exports = 0, timeouts = 0;
	for (int i = 0; i < count && !role_stop; i++) {
		/* One payment at a time, interval_ms after the previous one ended. */
		if (i > 0) {
			struct timespec ts = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000};
			nanosleep(&ts, NULL);
		}
		char id[32];
		snprintf(id, sizeof(id), "pay-%05d", i + 1);
		uint64_t start = now_real_ns();
		const char *outcome = "error";
		int lport = 0;
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons((uint16_t)port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
			struct sockaddr_in l;
			socklen_t ll = sizeof(l);
			getsockname(s, (struct sockaddr *)&l, &ll);
			lport = ntohs(l.sin_port);
			char req[96];
			int n = snprintf(req, sizeof(req), "PAY %s 100.00\n", id);
			if (write_full(s, req, (size_t)n) == 0) {
				char line[128];
				int r = read_line(s, line, sizeof(line), timeout_ms);
				if (r == -ETIMEDOUT)
					outcome = "timeout";
				else if (r > 3 && !strncmp(line, "OK ", 3))
					outcome = "ok";
			}
		}
		close(s);
		uint64_t end = now_real_ns();
		int ok = !strcmp(outcome, "ok");
		timeouts += !strcmp(outcome, "timeout");
		fprintf(rf, "%s %llu %llu %s %d %d\n", id, (unsigned long long)start,
			(unsigned long long)end, outcome, tid, lport);
		fflush(rf);
		if (otlp_port && export_span(otlp_port, id, tid, timeout_ms, start, end, ok) < 0)
			failed_exports++;
	}
	fclose(rf);
	if (failed_exports)
		fprintf(stderr, "payment-handler: %d span exports failed (is kprobed up on %d?)\n",
			failed_exports, otlp_port);
	return 0;
}

/* ---------------------------------------------------------------- batch-job */

struct batch {
	int cpu, nice;
	uint64_t t0; /* CLOCK_REALTIME ns, shared with the orchestrator */
	uint64_t cpu_from, cpu_to, mem_from, mem_to, end;
	const char *volume;
	atomic_ulong spins, dirty_mb;
};

/* ns since the scenario's start (0 before it). */
static uint64_t batch_clock(const struct batch *b)
{
	uint64_t now = now_real_ns();
	return now > b->t0 ? now - b->t0 : 0;
}

static int in_phase(uint64_t now, uint64_t from, uint64_t to)
{
	return from < to && now >= from && now < to;
}

static void idle_10ms(void)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

static void *batch_hog(void *arg)
{
	struct batch *b = arg;
	pin_cpu(b->cpu);
	/* Per-thread priority: a batch job that was (wrongly) given a high priority. */
	setpriority(PRIO_PROCESS, (id_t)gettid_(), b->nice);
	while (!role_stop) {
		uint64_t now = batch_clock(b);
		if (now >= b->end)
			break;
		if (!in_phase(now, b->cpu_from, b->cpu_to)) {
			idle_10ms();
			continue;
		}
		for (volatile int i = 0; i < 100000; i++)
			;
		atomic_fetch_add(&b->spins, 1);
	}
	return NULL;
}

static void *batch_dirty(void *arg)
{
	struct batch *b = arg;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/batch.dat", b->volume);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "batch-job: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	char *chunk = xmalloc(1 << 20);
	memset(chunk, 'b', 1 << 20);
	off_t off = 0;
	while (!role_stop) {
		uint64_t now = batch_clock(b);
		if (now >= b->end)
			break;
		if (!in_phase(now, b->mem_from, b->mem_to)) {
			/* Leaving the phase, the job deletes its scratch data: truncating discards
			 * the dirty pages, so the pressure ends with the phase. */
			if (off && ftruncate(fd, 0) == 0)
				off = 0;
			idle_10ms();
			continue;
		}
		/* Dirty page cache faster than the volume can write it back: the memory cgroup
		 * fills with dirty pages, and everyone in it who needs memory waits in reclaim. */
		if (pwrite(fd, chunk, 1 << 20, off) < 0)
			break;
		off += 1 << 20;
		if (off >= (200 << 20)) { /* the volume holds 256 MiB: start over, fresh pages */
			if (ftruncate(fd, 0) < 0)
				break;
			off = 0;
		}
		atomic_fetch_add(&b->dirty_mb, 1);
	}
	free(chunk);
	close(fd);
	return NULL;
}

static int batch_main(int argc, char **argv)
{
	struct batch b = {.cpu = 0, .nice = -19};
	int hogs = 4;
	uint64_t ms[5] = {0};
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--cpu"))
			b.cpu = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--hogs"))
			hogs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--nice"))
			b.nice = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--t0"))
			b.t0 = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--volume"))
			b.volume = argv[i + 1];
		else if (!strcmp(argv[i], "--phases"))
			sscanf(argv[i + 1], "%lu-%lu,%lu-%lu,%lu", &ms[0], &ms[1], &ms[2], &ms[3],
			       &ms[4]);
	}
	if (!b.t0 || hogs < 0 || hogs > 64) {
		fprintf(stderr, "usage: batch-job --t0 REALTIME_NS --phases CPUFROM-CPUTO,MEMFROM-"
				"MEMTO,END (ms) [--cpu C] [--hogs N] [--nice X] [--volume DIR]\n");
		return 2;
	}
	b.cpu_from = ms[0] * NSEC_PER_MSEC, b.cpu_to = ms[1] * NSEC_PER_MSEC;
	b.mem_from = ms[2] * NSEC_PER_MSEC, b.mem_to = ms[3] * NSEC_PER_MSEC;
	b.end = ms[4] * NSEC_PER_MSEC;
	signal(SIGTERM, on_term);
	pthread_t th[65];
	int n = 0;
	for (int i = 0; i < hogs; i++)
		pthread_create(&th[n++], NULL, batch_hog, &b);
	if (b.volume && b.mem_from < b.mem_to)
		pthread_create(&th[n++], NULL, batch_dirty, &b);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "batch-job: %lu spin rounds, %lu MiB dirtied\n",
		(unsigned long)atomic_load(&b.spins), (unsigned long)atomic_load(&b.dirty_mb));
	return 0;
}

/* ---------------------------------------------------------------- dispatch */

int demo_role_main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (!strcmp(base, "settlement-svc"))
		return settlement_main(argc, argv);
	if (!strcmp(base, "payment-handler"))
		return payment_main(argc, argv);
	if (!strcmp(base, "batch-job"))
		return batch_main(argc, argv);
	return -1;
}

int demo_results_read(const char *path, struct demo_payment *out, int max)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int n = 0;
	char line[256];
	while (n < max && fgets(line, sizeof(line), f)) {
		struct demo_payment *p = &out[n];
		char outcome[16];
		unsigned long long s, e;
		if (sscanf(line, "%31s %llu %llu %15s %d %d", p->id, &s, &e, outcome, &p->tid,
			   &p->port) != 6)
			continue;
		p->start_ns = s;
		p->end_ns = e;
		p->ok = !strcmp(outcome, "ok");
		p->timed_out = !strcmp(outcome, "timeout");
		n++;
	}
	fclose(f);
	return n;
}

/* ---------------------------------------------------------------- orchestration */

void demo_plan_default(struct demo_plan *p, int quick)
{
	memset(p, 0, sizeof(*p));
	p->quick = quick;
	p->timeout_ms = 750;
	p->interval_ms = 250;
	if (quick) {
		/* calm 1.5 s | CPU contention 4 s | calm 1.5 s | memory pressure 5 s | calm 1.5 s */
		p->payments = 54;
		p->cpu_from_ms = 1500, p->cpu_to_ms = 5500;
		p->mem_from_ms = 7000, p->mem_to_ms = 12000;
	} else {
		p->payments = 120;
		p->cpu_from_ms = 4000, p->cpu_to_ms = 12000;
		p->mem_from_ms = 16000, p->mem_to_ms = 26000;
	}
}

/* fork + exec the kprobe binary under a role's name (a symlink in e->dir). */
static pid_t spawn_role(const struct demo_env *e, const char *role, char *const args[],
			int join_memcg)
{
	/* The roles live in the kprobe binary, next to whichever binary runs the demo (kprobe
	 * itself, or the test runner in bin/). */
	char link[PATH_MAX + 64], self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 8);
	if (n <= 0)
		return -errno;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash || strcmp(slash + 1, "kprobe") != 0) {
		if (slash)
			slash[1] = '\0';
		strcat(self, "kprobe");
	}
	if (access(self, X_OK) < 0)
		return -errno;
	snprintf(link, sizeof(link), "%s/%s", e->dir, role);
	unlink(link);
	if (symlink(self, link) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (join_memcg && e->memcg[0])
			demo_env_join_memcg(e, getpid());
		char *argv[32];
		int i = 0;
		argv[i++] = link;
		for (int j = 0; args[j] && i < 31; j++)
			argv[i++] = args[j];
		argv[i] = NULL;
		execv(link, argv);
		_exit(127);
	}
	return pid;
}

int demo_run_start(const struct demo_env *e, const struct demo_plan *p, struct demo_run *r,
		   char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	char ledger[PATH_MAX + 16], cpu[16];
	char *port_file = r->port_file;
	snprintf(r->port_file, sizeof(r->port_file), "%s/settlement.port", e->dir);
	snprintf(ledger, sizeof(ledger), "%s/ledger", e->dir);
	snprintf(cpu, sizeof(cpu), "%d", e->cpu);
	snprintf(r->results, sizeof(r->results), "%s/payments.txt", e->dir);
	mkdir(ledger, 0755);
	unlink(port_file);

	char *sargs[] = {"--port-file", port_file, "--ledger", ledger, "--record-kb", "2048",
			 "--cpu", cpu, NULL};
	r->settlement = spawn_role(e, "settlement-svc", sargs, 1);
	if (r->settlement < 0) {
		snprintf(err, errlen, "cannot start settlement-svc: %s", strerror(-r->settlement));
		return r->settlement;
	}
	for (int i = 0; i < 500 && !r->settlement_port; i++) {
		FILE *f = fopen(port_file, "r");
		if (f) {
			if (fscanf(f, "%d", &r->settlement_port) != 1)
				r->settlement_port = 0;
			fclose(f);
		}
		if (!r->settlement_port)
			usleep(10000);
	}
	if (!r->settlement_port) {
		snprintf(err, errlen, "settlement-svc did not start listening within 5 s");
		demo_run_stop(r);
		return -ETIMEDOUT;
	}

	char t0[32], phases[96], port[16], count[16], interval[16], timeout[16], otlp[16];
	uint64_t start = now_real_ns() + 100 * NSEC_PER_MSEC;
	r->env = e;
	r->t0_ns = start;
	snprintf(t0, sizeof(t0), "%llu", (unsigned long long)start);
	int end_ms = p->payments * p->interval_ms + 2 * p->timeout_ms + 1000;
	int mem_from = e->mnt[0] ? p->mem_from_ms : 0, mem_to = e->mnt[0] ? p->mem_to_ms : 0;
	snprintf(phases, sizeof(phases), "%d-%d,%d-%d,%d", p->cpu_from_ms, p->cpu_to_ms, mem_from,
		 mem_to, end_ms);
	char *bargs[] = {"--t0", t0, "--phases", phases, "--cpu", cpu, "--hogs", "8", "--nice",
			 "-19", e->mnt[0] ? "--volume" : NULL, (char *)e->mnt, NULL};
	r->batch = spawn_role(e, "batch-job", bargs, 1);
	if (r->batch < 0) {
		snprintf(err, errlen, "cannot start batch-job: %s", strerror(-r->batch));
		demo_run_stop(r);
		return r->batch;
	}

	/* payment-handler starts on the same clock as batch-job's phases. */
	uint64_t now = now_real_ns();
	if (start > now)
		usleep((useconds_t)((start - now) / 1000));
	snprintf(port, sizeof(port), "%d", r->settlement_port);
	snprintf(count, sizeof(count), "%d", p->payments);
	snprintf(interval, sizeof(interval), "%d", p->interval_ms);
	snprintf(timeout, sizeof(timeout), "%d", p->timeout_ms);
	snprintf(otlp, sizeof(otlp), "%d", p->otlp_port);
	char *pargs[] = {"--port", port, "--count", count, "--interval-ms", interval,
			 "--timeout-ms", timeout, "--results", r->results, "--otlp-port", otlp,
			 NULL};
	r->payments = spawn_role(e, "payment-handler", pargs, 0);
	if (r->payments < 0) {
		snprintf(err, errlen, "cannot start payment-handler: %s", strerror(-r->payments));
		demo_run_stop(r);
		return r->payments;
	}
	return 0;
}

int demo_run_wait(struct demo_run *r, const struct demo_plan *p)
{
	uint64_t t0 = now_mono_ns();
	int status = 0, last = -1, lifted = 0;
	for (;;) {
		pid_t w = waitpid(r->payments, &status, WNOHANG);
		if (w == r->payments)
			break;
		if (!lifted && r->env && p->mem_to_ms > 0 &&
		    now_real_ns() >= r->t0_ns + (uint64_t)p->mem_to_ms * NSEC_PER_MSEC) {
			demo_env_unthrottle(r->env);
			lifted = 1;
		}
		int done = (int)((now_mono_ns() - t0) / NSEC_PER_MSEC / (uint64_t)p->interval_ms);
		if (done > p->payments)
			done = p->payments;
		if (done / 10 != last / 10) {
			fprintf(stderr, "demo: %d/%d payments sent\n", done, p->payments);
			last = done;
		}
		usleep(100000);
	}
	r->payments = 0;
	/* settlement-svc may still be working through requests whose clients gave up (that is
	 * the incident): let it finish, so what the kernel did to them is recorded too. */
	char served_path[PATH_MAX + 32];
	snprintf(served_path, sizeof(served_path), "%s.served", r->port_file);
	uint64_t until = now_mono_ns() + 30 * NSEC_PER_SEC;
	long served = 0, logged = -1;
	while (now_mono_ns() < until) {
		FILE *f = fopen(served_path, "r");
		if (f) {
			if (fscanf(f, "%ld", &served) != 1)
				served = 0;
			fclose(f);
		}
		if (served >= p->payments)
			break;
		if (served != logged && served / 5 != logged / 5) {
			fprintf(stderr, "demo: settlement-svc has served %ld/%d (working through its "
					"backlog)\n",
				served, p->payments);
			logged = served;
		}
		usleep(100000);
	}
	demo_run_stop(r);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

void demo_run_stop(struct demo_run *r)
{
	pid_t *pids[] = {&r->payments, &r->batch, &r->settlement};
	for (size_t i = 0; i < 3; i++)
		if (*pids[i] > 0)
			kill(*pids[i], SIGTERM);
	for (size_t i = 0; i < 3; i++) {
		if (*pids[i] <= 0)
			continue;
		int waited = 0;
		for (int k = 0; k < 200 && !waited; k++) {
			if (waitpid(*pids[i], NULL, WNOHANG) == *pids[i])
				waited = 1;
			else
				usleep(10000);
		}
		if (!waited) {
			kill(*pids[i], SIGKILL);
			waitpid(*pids[i], NULL, 0);
		}
		*pids[i] = 0;
	}
}
