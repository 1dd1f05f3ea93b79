/*
 * floor.c - the bare cost of the mechanisms the replay engine is built on, measured beside it.
 * A child makes N read() calls that a seccomp filter turns into user notifications; the parent
 * answers each one and does nothing else. Parent and child share one CPU, as in a replay. Prints
 * microseconds per call.
 *
 *   floor N CPU [MODE]
 *     mem    64 bytes written through /proc/PID/mem (pwrite), then NOTIF_SEND (the default:
 *            what the engine does for a served read)
 *     vm     the same 64 bytes written with process_vm_writev instead
 *     none   NOTIF_SEND with the return value only: no payload (notification round trip alone)
 *     pipe   no seccomp at all: parent and child pass one byte back and forth over two pipes,
 *            the two context switches any supervisor process costs per call, and four system
 *            calls
 *
 * Per served call the engine makes the same system calls as `mem` (NOTIF_RECV, pwrite,
 * NOTIF_SEND), so served minus this floor is the engine's own user-space work.
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
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum mode { M_MEM, M_VM, M_NONE, M_PIPE };

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* two processes, one CPU, one byte each way per round: two context switches */
static int pipe_pingpong(long n)
{
	int a[2], b[2];
	char c = 0;
	if (pipe(a) < 0 || pipe(b) < 0)
		return 1;
	pid_t ch = fork();
	if (ch == 0) {
		for (long i = 0; i < n; i++)
			if (read(a[0], &c, 1) != 1 || write(b[1], &c, 1) != 1)
				_exit(2);
		_exit(0);
	}
	double t0 = now();
	for (long i = 0; i < n; i++)
		if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
			return 1;
	double t1 = now();
	int st;
	waitpid(ch, &st, 0);
	printf("%.3f\n", (t1 - t0) / (double)n * 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	const char *ms = argc > 3 ? argv[3] : "mem";
	int mode = !strcmp(ms, "vm")	 ? M_VM
		   : !strcmp(ms, "none") ? M_NONE
		   : !strcmp(ms, "pipe") ? M_PIPE
		   : !strcmp(ms, "mem")	 ? M_MEM
					 : -1;
	if (n <= 0 || mode < 0) {
		fprintf(stderr, "usage: floor N CPU [mem|vm|none|pipe]\n");
		return 2;
	}
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(argc > 2 ? atoi(argv[2]) : 0, &s);
	sched_setaffinity(0, sizeof(s), &s);
	if (mode == M_PIPE)
		return pipe_pingpong(n);
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
		if (mode == M_MEM &&
		    pwrite(mem, data, sizeof(data), (off_t)req.data.args[1]) != sizeof(data))
			break;
		if (mode == M_VM) {
			struct iovec l = {data, sizeof(data)};
			struct iovec r = {(void *)(unsigned long)req.data.args[1], sizeof(data)};
			if (process_vm_writev(c, &l, 1, &r, 1, 0) != sizeof(data))
				break;
		}
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		resp.val = sizeof(data);
		if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0)
			break;
	}
	double t1 = now();
	int st;
	waitpid(c, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "floor: the child failed (status 0x%x)\n", st);
		return 1;
	}
	printf("%.3f\n", (t1 - t0) / (double)n * 1e6);
	return 0;
}
