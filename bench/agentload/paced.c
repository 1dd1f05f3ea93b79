/*
 * paced.c - a steady stream of system calls for benchmarks: `paced RATE SECONDS [SYSCALL]`
 * issues RATE calls per second (1-byte write() to /dev/null by default, or read() from
 * /dev/zero) for SECONDS, in slices of 1 ms so the rate is even, and prints what it did.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: paced RATE SECONDS [write|read]\n"
				"  issues RATE system calls per second for SECONDS, evenly\n");
		return argc < 3 ? 2 : 0;
	}
	long rate = atol(argv[1]);
	double secs = atof(argv[2]);
	int rd = argc > 3 && !strcmp(argv[3], "read");
	int fd = open(rd ? "/dev/zero" : "/dev/null", rd ? O_RDONLY : O_WRONLY);
	if (fd < 0 || rate <= 0 || secs <= 0) {
		perror("paced");
		return 1;
	}
	char c = 'x';
	double t0 = now();
	long done = 0;
	while (now() - t0 < secs) {
		long due = (long)((now() - t0) * (double)rate);
		for (; done < due; done++)
			if ((rd ? read(fd, &c, 1) : write(fd, &c, 1)) != 1)
				return 1;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	printf("%ld calls in %.2f s (%.0f/s)\n", done, now() - t0, (double)done / (now() - t0));
	return 0;
}
