/*
 * replay_threads - a multi-threaded replay subject: NTHREADS threads each draw random bytes
 * (getrandom), read the clock, read their slice of FILE with pread, and print a line when their
 * turn comes (a mutex and a condition variable: waits in futexes the replay does not see); main
 * joins them and prints a digest. A native rerun prints different numbers; a replay must print
 * exactly the recorded output. The lines come in thread order: which thread wins a user-space
 * lock between two system calls is not something a system-call level replay can place (see
 * docs/design-notes.md), so the program does not leave its output to that race.
 *
 *   replay_threads FILE [NTHREADS]
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int fd;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cv = PTHREAD_COND_INITIALIZER;
static int turn;
static unsigned long long digest[64];

static void *work(void *arg)
{
	int id = (int)(long)arg;
	unsigned long long r = 0;
	getrandom(&r, sizeof(r), 0);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char buf[64] = {0};
	ssize_t n = pread(fd, buf, 16, id * 16);
	unsigned long long h = r ^ (unsigned long long)ts.tv_nsec;
	for (ssize_t i = 0; i < n; i++)
		h = h * 131 + (unsigned char)buf[i];
	pthread_mutex_lock(&mu);
	while (turn != id)
		pthread_cond_wait(&turn_cv, &mu);
	printf("thread %d: random %016llx, read %zd bytes \"%.16s\"\n", id, r, n, buf);
	fflush(stdout);
	turn++;
	pthread_cond_broadcast(&turn_cv);
	pthread_mutex_unlock(&mu);
	digest[id] = h;
	return NULL;
}

int main(int argc, char **argv)
{
	int nt = argc > 2 ? atoi(argv[2]) : 4;
	if (argc < 2 || nt < 1 || nt > 64) {
		fprintf(stderr, "usage: replay_threads FILE [NTHREADS<=64]\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	pthread_t th[64];
	for (int i = 0; i < nt; i++)
		pthread_create(&th[i], NULL, work, (void *)(long)i);
	unsigned long long all = 0;
	for (int i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		all ^= digest[i] * (unsigned long long)(i + 1);
	}
	printf("digest %016llx\n", all);
	return 0;
}
