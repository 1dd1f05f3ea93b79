/*
 * replay_client - the replay tests' client: reads its config, connects to the server, sends one
 * request and waits for the answer with a timeout from argv, measured with CLOCK_MONOTONIC
 * (through the vDSO, as real programs do).
 *
 *   replay_client CONFIG TIMEOUT_MS [REQUEST]
 *   CONFIG lines: host=127.0.0.1, port=N, request=TEXT
 *
 * Prints "answer: ..." and exits 0, or "request failed: no answer within N ms" and exits 1;
 * exit 2 when it cannot connect, 3 on a bad config.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: replay_client CONFIG TIMEOUT_MS [REQUEST]\n");
		return 3;
	}
	char cfg[1024] = "", host[64] = "127.0.0.1", req[256] = "hello";
	int port = 0, timeout = atoi(argv[2]);
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		fprintf(stderr, "cannot read %s: %s\n", argv[1], strerror(errno));
		return 3;
	}
	size_t n = fread(cfg, 1, sizeof(cfg) - 1, f);
	fclose(f);
	cfg[n] = 0;
	for (char *line = strtok(cfg, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strncmp(line, "port=", 5))
			port = atoi(line + 5);
		else if (!strncmp(line, "host=", 5))
			snprintf(host, sizeof(host), "%s", line + 5);
		else if (!strncmp(line, "request=", 8))
			snprintf(req, sizeof(req), "%s", line + 8);
	}
	if (argc > 3)
		snprintf(req, sizeof(req), "%s", argv[3]);
	if (!port) {
		fprintf(stderr, "no port in %s\n", argv[1]);
		return 3;
	}
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		printf("connect failed: %s\n", strerror(errno));
		return 2;
	}
	char line[300];
	int len = snprintf(line, sizeof(line), "%s\n", req);
	if (send(fd, line, (size_t)len, 0) != len) {
		printf("send failed\n");
		return 2;
	}
	long long t0 = now_ms();
	char ans[1024];
	size_t got = 0;
	for (;;) {
		long long left = timeout - (now_ms() - t0);
		if (left <= 0)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r <= 0)
			continue;
		ssize_t k = recv(fd, ans + got, sizeof(ans) - 1 - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
		if (memchr(ans, '\n', got))
			break;
	}
	close(fd);
	if (!got) {
		printf("request failed: no answer within %d ms\n", timeout);
		return 1;
	}
	ans[got] = 0;
	printf("answer: %s", ans);
	return 0;
}
