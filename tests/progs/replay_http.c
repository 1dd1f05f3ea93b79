/*
 * replay_http - a minimal HTTP/1.1 server for the curl replay test: listens on 127.0.0.1 (an
 * ephemeral port, printed as "port N"), answers every request with a small text body naming the
 * path and a random token (so a fresh run never repeats a recorded answer). Serves COUNT
 * requests (0: until killed).
 *
 *   replay_http [COUNT]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 0;
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	socklen_t sl = sizeof(sa);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 16) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
		perror("replay_http");
		return 1;
	}
	printf("port %d\n", ntohs(sa.sin_port));
	fflush(stdout);
	for (int served = 0; !count || served < count; served++) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			continue;
		char req[4096];
		size_t got = 0;
		while (got < sizeof(req) - 1) {
			ssize_t k = read(c, req + got, sizeof(req) - 1 - got);
			if (k <= 0)
				break;
			got += (size_t)k;
			req[got] = 0;
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[got] = 0;
		char path[256] = "?";
		sscanf(req, "%*s %255s", path);
		unsigned char tok[8];
		getrandom(tok, sizeof(tok), 0);
		char body[512];
		int bl = snprintf(body, sizeof(body),
				  "path=%s token=%02x%02x%02x%02x%02x%02x%02x%02x\n", path, tok[0],
				  tok[1], tok[2], tok[3], tok[4], tok[5], tok[6], tok[7]);
		char out[1024];
		int n = snprintf(out, sizeof(out),
				 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
				 "%d\r\nConnection: close\r\n\r\n%s",
				 bl, body);
		if (write(c, out, (size_t)n) < 0) {
			/* client gone */
		}
		close(c);
	}
	return 0;
}
