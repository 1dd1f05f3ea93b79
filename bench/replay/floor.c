/*
 * floor.c - the bare cost of the mechanism the replay engine is built on, measured beside it:
 * a child makes N read() calls that a seccomp filter turns into user notifications; the parent
 * answers each with 64 bytes written through /proc/PID/mem and SECCOMP_IOCTL_NOTIF_SEND, doing
 * nothing else. Parent and child share one CPU, as in a replay. Prints microseconds per call.
 *
 *   floor N CPU
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
	long n = argc > 1 ? atol(argv[1]) : 100000;
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(argc > 2 ? atoi(argv[2]) : 0, &s);
	sched_setaffinity(0, sizeof(s), &s);
	int sp[2];
	if (pipe(sp) < 0)
		return 1;
	pid_t c = fork();
	if (c == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_read, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog p = {4, f};
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		int lfd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
				       SECCOMP_FILTER_FLAG_NEW_LISTENER, &p);
		if (write(sp[1], &lfd, 4) != 4)
			_exit(1);
		kill(getpid(), SIGSTOP);
		char buf[64];
		for (long i = 0; i < n; i++)
			if (read(1000, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				_exit(2);
		_exit(0);
	}
	int lfd;
	if (read(sp[0], &lfd, 4) != 4)
		return 1;
	waitpid(c, NULL, WSTOPPED);
	int pfd = (int)syscall(SYS_pidfd_open, c, 0);
	int fd = (int)syscall(SYS_pidfd_getfd, pfd, lfd, 0);
	char mp[64];
	snprintf(mp, sizeof(mp), "/proc/%d/mem", c);
	int mem = open(mp, O_RDWR);
	if (fd < 0 || mem < 0)
		return 1;
	ioctl(fd, SECCOMP_IOW(4, __u64), (__u64)1); /* sync wake-up where available */
	kill(c, SIGCONT);
	char data[64];
	memset(data, 'x', sizeof(data));
	double t0 = now();
	for (long i = 0; i < n; i++) {
		struct seccomp_notif req;
		struct seccomp_notif_resp resp;
		memset(&req, 0, sizeof(req));
		if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
			break;
		if (pwrite(mem, data, sizeof(data), (off_t)req.data.args[1]) < 0)
			break;
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		resp.val = sizeof(data);
		if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0)
			break;
	}
	double t1 = now();
	waitpid(c, NULL, 0);
	printf("%.3f\n", (t1 - t0) / (double)n * 1e6);
	return 0;
}
