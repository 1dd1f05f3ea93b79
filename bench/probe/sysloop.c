/*
 * sysloop - the workload of bench/probe: a tight loop of 1-byte write() to /dev/null and
 * read() from /dev/zero on one CPU, timed per call.
 *
 *   sysloop CPU CALLS ROUNDS   prints "write_ns=<median> read_ns=<median> write_min=.. read_min=.."
 *
 * Each round times CALLS writes, then CALLS reads; the median over ROUNDS is reported (and the
 * minimum, the least disturbed round on a shared machine).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: sysloop CPU CALLS ROUNDS\n");
		return 2;
	}
	int cpu = atoi(argv[1]);
	long calls = atol(argv[2]);
	int rounds = atoi(argv[3]);
	if (calls <= 0 || rounds <= 0 || rounds > 100) {
		fprintf(stderr, "sysloop: bad CALLS or ROUNDS\n");
		return 2;
	}
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		perror("sysloop: sched_setaffinity");
		return 1;
	}
	int wfd = open("/dev/null", O_WRONLY), rfd = open("/dev/zero", O_RDONLY);
	if (wfd < 0 || rfd < 0) {
		perror("sysloop: open");
		return 1;
	}
	double w[100], r[100];
	char c = 'x';
	for (int k = 0; k < rounds; k++) {
		double t0 = now_ns();
		for (long i = 0; i < calls; i++)
			if (write(wfd, &c, 1) != 1)
				return 1;
		double t1 = now_ns();
		for (long i = 0; i < calls; i++)
			if (read(rfd, &c, 1) != 1)
				return 1;
		double t2 = now_ns();
		w[k] = (t1 - t0) / (double)calls;
		r[k] = (t2 - t1) / (double)calls;
	}
	double wmin = w[0], rmin = r[0];
	for (int k = 1; k < rounds; k++) {
		wmin = w[k] < wmin ? w[k] : wmin;
		rmin = r[k] < rmin ? r[k] : rmin;
	}
	qsort(w, (size_t)rounds, sizeof(double), cmp);
	qsort(r, (size_t)rounds, sizeof(double), cmp);
	printf("write_ns=%.0f read_ns=%.0f write_min=%.0f read_min=%.0f\n", w[rounds / 2],
	       r[rounds / 2], wmin, rmin);
	return 0;
}
