/*
 * fresh.c - how fresh are root causes? Runs kprobed + kprobe-agent on this host (the stack
 * `kprobe up` runs), a background load of system calls recorded by the probe, and a series of
 * failing transactions: a client asks a server (which writes and fsyncs a ledger record) on
 * loopback and reports its span over OTLP with an error status. For each, the time from the
 * transaction's end to the moment GET /api/v1/rootcause/{txn} answers 200 with a chain.
 *
 *   fresh [--transactions N] [--background RATE] [--json]
 *
 * Prints p50 / p90 / p99 / max in ms, and with --json one JSON line for bench/engine/run.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/stack.h"
#include "common/util.h"
#include "httpd/client.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static pid_t server(int *port, const char *dir)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 64) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	pid_t p = fork();
	if (p == 0) {
		char path[600];
		snprintf(path, sizeof(path), "%s/ledger.dat", dir);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		static char rec[256 << 10];
		memset(rec, 'L', sizeof(rec));
		for (;;) {
			int c = accept(ls, NULL, NULL);
			char b[64];
			if (c < 0 || recv(c, b, 32, MSG_WAITALL) != 32)
				_exit(1);
			if (write(fd, rec, sizeof(rec)) < 0 || fsync(fd) < 0)
				_exit(2);
			if (send(c, "OK", 2, 0) != 2)
				_exit(3);
			close(c);
		}
	}
	close(ls);
	return p;
}

static int post(int port, const char *path, const char *type, const char *body, int *status)
{
	const char *hdr[] = {type, NULL};
	struct httpc_req req = {.method = "POST", .path = path, .headers = hdr, .body = body,
				.body_len = strlen(body), .timeout_ms = 5000};
	struct httpc_resp resp = {0};
	char err[256];
	int r = httpc_request("127.0.0.1", port, &req, &resp, err, sizeof(err));
	*status = resp.status;
	httpc_resp_free(&resp);
	return r;
}

static int get_status(int port, const char *path)
{
	struct httpc_req req = {.method = "GET", .path = path, .timeout_ms = 5000};
	struct httpc_resp resp = {0};
	char err[256];
	int r = httpc_request("127.0.0.1", port, &req, &resp, err, sizeof(err));
	int st = r < 0 ? r : resp.status;
	/* answered, and the chain reaches past the span (the engine linked the request) */
	if (st == 200 && !strstr(resp.body.data, "\"kind\":\"request\""))
		st = 202;
	httpc_resp_free(&resp);
	return st;
}

/* One failing transaction: the request, then its span (error) over OTLP. Returns its end. */
static uint64_t transaction(int i, int srv_port, int otlp_port, const char *txn)
{
	uint64_t start = now_real_ns();
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv_port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char b[32] = "PAY";
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 && send(c, b, 32, 0) == 32) {
		char r[2];
		if (recv(c, r, 2, MSG_WAITALL) != 2)
			fprintf(stderr, "fresh: transaction %d: no answer\n", i);
	}
	close(c);
	uint64_t end = now_real_ns();
	uint8_t rnd[24];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, i, sizeof(rnd));
	char trace[33], span[17];
	for (int k = 0; k < 16; k++)
		sprintf(trace + 2 * k, "%02x", rnd[k]);
	for (int k = 0; k < 8; k++)
		sprintf(span + 2 * k, "%02x", rnd[16 + k]);
	char body[2048];
	snprintf(body, sizeof(body),
		 "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
		 "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"fresh-client\"}},"
		 "{\"key\":\"process.pid\",\"value\":{\"intValue\":\"%d\"}}]},"
		 "\"scopeSpans\":[{\"spans\":[{\"traceId\":\"%s\",\"spanId\":\"%s\",\"name\":\"pay\","
		 "\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\",\"attributes\":["
		 "{\"key\":\"transaction.id\",\"value\":{\"stringValue\":\"%s\"}},"
		 "{\"key\":\"thread.id\",\"value\":{\"intValue\":\"%ld\"}}],"
		 "\"status\":{\"code\":2,\"message\":\"declined\"}}]}]}]}",
		 getpid(), trace, span, (unsigned long long)start, (unsigned long long)end, txn,
		 (long)syscall(SYS_gettid));
	int st;
	if (post(otlp_port, "/v1/traces", "Content-Type: application/json", body, &st) < 0 ||
	    st != 200)
		fprintf(stderr, "fresh: span %d: OTLP answered %d\n", i, st);
	return end;
}

int main(int argc, char **argv)
{
	int n = 100, json = 0;
	long bg = 100000;
	static const struct option opts[] = {{"transactions", required_argument, 0, 'n'},
					     {"background", required_argument, 0, 'b'},
					     {"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'n')
			n = atoi(optarg);
		else if (c == 'b')
			bg = atol(optarg);
		else if (c == 'j')
			json = 1;
		else {
			printf("usage: fresh [--transactions N] [--background RATE] [--json]\n"
			       "  time from a transaction's end to its root cause being queryable\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (n < 1 || n > 100000)
		n = 100;
	signal(SIGPIPE, SIG_IGN);
	char dir[] = "/tmp/kprobe-bench-fresh.XXXXXX";
	if (!mkdtemp(dir)) {
		perror("fresh: mkdtemp");
		return 1;
	}
	char data[600];
	snprintf(data, sizeof(data), "%s/data", dir);
	struct stack s;
	struct stack_opts so = {.data_dir = data, .ephemeral_ports = 1, .quiet = 1};
	char err[512];
	if (stack_start(&s, &so, err, sizeof(err)) < 0) {
		fprintf(stderr, "fresh: %s\n", err);
		return 1;
	}
	int srv_port = 0;
	pid_t srv = server(&srv_port, dir);
	pid_t load = 0;
	if (bg > 0) {
		char paced[600], rate[32];
		snprintf(paced, sizeof(paced), "%s/bench/agentload/paced", stack_bindir());
		snprintf(rate, sizeof(rate), "%ld", bg);
		load = fork();
		if (load == 0) {
			int nul = open("/dev/null", O_WRONLY);
			dup2(nul, 1);
			execl(paced, "paced", rate, "3600", "write", (char *)NULL);
			_exit(127);
		}
		sleep(2); /* the load is steady before the first transaction */
	}
	uint64_t *lat = xcalloc((size_t)n, sizeof(*lat));
	int missing = 0;
	for (int i = 0; i < n; i++) {
		char txn[64], path[128];
		snprintf(txn, sizeof(txn), "fresh-%d-%d", getpid(), i);
		uint64_t end = transaction(i, srv_port, s.otlp_port, txn);
		snprintf(path, sizeof(path), "/api/v1/rootcause/%s", txn);
		uint64_t deadline = now_real_ns() + 10 * NSEC_PER_SEC;
		int st = 0;
		while ((st = get_status(s.api_port, path)) != 200 && now_real_ns() < deadline)
			usleep(2000);
		if (st == 200)
			lat[i] = now_real_ns() - end;
		else {
			lat[i] = 10 * NSEC_PER_SEC;
			missing++;
		}
		if ((i + 1) % 20 == 0)
			fprintf(stderr, "fresh: %d/%d transactions\n", i + 1, n);
		usleep(50000);
	}
	if (load > 0)
		kill(load, SIGTERM);
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	if (load > 0)
		waitpid(load, NULL, 0);
	stack_stop(&s, 10000);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fresh: could not remove %s\n", dir);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	double p50 = (double)lat[n / 2] / 1e6, p90 = (double)lat[(n * 9) / 10] / 1e6,
	       p99 = (double)lat[KP_MIN(n - 1, (n * 99) / 100)] / 1e6, mx = (double)lat[n - 1] / 1e6;
	printf("freshness over %d transactions with %ld background calls/s: p50 %.1f ms, p90 %.1f ms, "
	       "p99 %.1f ms, max %.1f ms, %d never answered in 10 s\n",
	       n, bg, p50, p90, p99, mx, missing);
	if (json)
		printf("{\"n\":%d,\"background\":%ld,\"p50_ms\":%.1f,\"p90_ms\":%.1f,\"p99_ms\":%.1f,"
		       "\"max_ms\":%.1f,\"missing\":%d}\n",
		       n, bg, p50, p90, p99, mx, missing);
	free(lat);
	return missing ? 1 : 0;
}
