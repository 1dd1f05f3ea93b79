/*
 * replay_procs - a multi-process replay subject: the parent forks a child that draws random
 * bytes and reports them through a pipe, then exits with status 7; the parent signals itself
 * (SIGUSR1, counted by a handler), reads the pipe, reaps the child and prints what it saw.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_usr1(int sig)
{
	(void)sig;
	got++;
}

int main(void)
{
	int p[2];
	if (pipe(p) < 0)
		return 2;
	signal(SIGUSR1, on_usr1);
	pid_t c = fork();
	if (c == 0) {
		unsigned long long r = 0;
		getrandom(&r, sizeof(r), 0);
		char m[64];
		int n = snprintf(m, sizeof(m), "%016llx", r);
		if (write(p[1], m, (size_t)n) != n)
			_exit(3);
		_exit(7);
	}
	close(p[1]);
	kill(getpid(), SIGUSR1);
	char m[64] = {0};
	ssize_t n = read(p[0], m, sizeof(m) - 1);
	int st = 0;
	waitpid(c, &st, 0);
	printf("child said %s (%zd bytes), exited %d, signals seen %d\n", m, n,
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1, (int)got);
	return 0;
}
