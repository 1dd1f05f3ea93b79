/*
 * replay_server - the replay tests' slow server: listens on 127.0.0.1 (an ephemeral port, printed
 * as "port N" on stdout), and for each connection reads one request line, waits DELAY_MS, and
 * answers "answer to 'REQUEST': NUMBER" with a random number (so a fresh run never repeats a
 * recorded one), then closes. Serves COUNT connections (0: until killed).
 *
 *   replay_server DELAY_MS [COUNT]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int delay = argc > 1 ? atoi(argv[1]) : 0, count = argc > 2 ? atoi(argv[2]) : 0;
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	socklen_t sl = sizeof(sa);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 16) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
		perror("replay_server");
		return 1;
	}
	printf("port %d\n", ntohs(sa.sin_port));
	fflush(stdout);
	for (int served = 0; !count || served < count; served++) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			continue;
		char req[512];
		size_t got = 0;
		while (got < sizeof(req) - 1) {
			ssize_t k = read(c, req + got, sizeof(req) - 1 - got);
			if (k <= 0)
				break;
			got += (size_t)k;
			if (memchr(req, '\n', got))
				break;
		}
		req[got] = 0;
		char *nl = strchr(req, '\n');
		if (nl)
			*nl = 0;
		struct timespec d = {delay / 1000, (delay % 1000) * 1000000L};
		nanosleep(&d, NULL);
		unsigned r = 0;
		getrandom(&r, sizeof(r), 0);
		char ans[600];
		int n = snprintf(ans, sizeof(ans), "answer to '%s': %u\n", req, r % 100000);
		if (write(c, ans, (size_t)n) < 0) {
			/* the client is gone */
		}
		close(c);
	}
	return 0;
}
