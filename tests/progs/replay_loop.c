/*
 * replay_loop - the replay benchmark's workload: N iterations of one system call.
 *   replay_loop read N      N reads of 64 bytes from /dev/urandom (each one served by a replay)
 *   replay_loop getppid N   N getppid calls (never stopped by a replay: native speed)
 * Prints a checksum of what it read, so a replay is checked for identical output.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: replay_loop read|getppid N\n");
		return 2;
	}
	long n = atol(argv[2]);
	unsigned long long sum = 0;
	if (!strcmp(argv[1], "read")) {
		int fd = open("/dev/urandom", O_RDONLY);
		unsigned char b[64];
		for (long i = 0; i < n; i++) {
			if (read(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
				return 1;
			for (int k = 0; k < 64; k++)
				sum = sum * 31 + b[k];
		}
	} else {
		for (long i = 0; i < n; i++)
			sum += (unsigned long long)getppid();
		sum = n;
	}
	printf("%s %ld %016llx\n", argv[1], n, sum);
	return 0;
}
